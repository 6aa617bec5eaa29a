"""Error measures shared by the tests: finite differences down to their round-off
floor, and float32 results against float64 ones, against what rounding allows."""

from __future__ import annotations

import numpy as np
from conftest import TOL

import backprop as bp


def fd_floor(terms: float, n: int, h: float = 1e-6) -> float:
    """The smallest gradient norm that central differences at step ``h`` resolve.

    A difference of E carries E's round-off, about 4ε·terms (terms: the sum of the
    sizes of what E adds up, Σ|G ⊙ Y| for E = ⟨G, Y⟩), divided by h; over the n
    entries of a gradient, √n times that.
    """
    return 4 * np.finfo(np.float64).eps * terms * np.sqrt(n) / h


def fd_error(grad, E, x, terms: float, h: float = 1e-6) -> float:
    """Relative error of ``grad`` against central differences of the scalar ``E`` at
    ``x``, down to what the differences can resolve.

    Where a gradient is as small as ``fd_floor`` next to E's terms (a saturated
    unit, a small γ beside β, a sum of G that cancels), the error is measured against
    that floor: the relative error, with ‖grad‖ taken to be at least floor / TOL.
    """
    shape = np.shape(x)  # any shape, a 0-d array too
    flat = np.reshape(x, -1)
    fd = bp.numerical_gradient(lambda v: E(v.reshape(shape)), flat, h=h)
    fd = fd.reshape(shape)
    floor = fd_floor(terms, np.size(x), h)
    size = max(np.linalg.norm(grad), np.linalg.norm(fd), floor / TOL, 1e-300)
    return float(np.linalg.norm(np.subtract(grad, fd)) / size)


U32 = float(np.finfo(np.float32).eps) / 2  # float32's unit round-off, 2⁻²⁴


def float32_error_ratio(f, args, m: int) -> float:
    """How far ``f`` run in float32 is from ``f`` run in float64, against what rounding allows.

    Both runs get the same numbers: ``args`` are rounded to float32 first. A float32
    computation whose longest sum has ``m`` terms returns, to first order, the exact
    result for inputs moved by about m·u relative, itself rounded by about m·u
    relative (u = 2⁻²⁴). Its error is then about m·u·c at most, with
    c = |f(x)| + Σ_j |∂f/∂x_j| |x_j| the componentwise condition of ``f`` at ``x``:
    large where ``f`` cancels (x − μ for a group with a large mean) or where a product
    of Jacobians grows (an RNN). The partial derivatives come from float64 central
    differences. Returns ‖error‖ / (m·u·‖c‖) over every output of ``f`` (an array or
    a tuple of arrays): well under 1 for a float32 result right to float32 precision,
    thousands for one that loses precision on the way (a float16 step, say).
    """
    args64 = [np.asarray(a, dtype=np.float32).astype(np.float64) for a in args]
    outputs32 = f(*(a.astype(np.float32) for a in args64))
    outputs32 = outputs32 if isinstance(outputs32, tuple) else (outputs32,)
    assert all(out.dtype == np.float32 for out in outputs32)

    def flat64(*xs):
        outputs = f(*xs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return np.concatenate([out.ravel() for out in outputs])

    exact = flat64(*args64)
    condition = np.abs(exact)
    for i, x in enumerate(args64):
        moved = lambda v, i=i: flat64(*args64[:i], v, *args64[i + 1 :])  # noqa: E731
        condition += np.abs(bp.numerical_jacobian(moved, x)) @ np.abs(bp.vec(x))
    error = np.concatenate([out.ravel() for out in outputs32]) - exact
    return float(np.linalg.norm(error) / (m * U32 * np.linalg.norm(condition)))
