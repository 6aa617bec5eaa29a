"""Gradient checks: central differences, relative error, the adjoint test.

These are the instruments with which every equation in the book is verified.
All of them work in float64 and never modify the arrays they are given.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backprop._checks import as_real_array, check_same_shape

__all__ = [
    "numerical_gradient",
    "directional_derivative",
    "relative_error",
    "pass_mark",
    "report",
    "order_of_magnitude",
    "error_table",
    "adjoint_test",
    "step_size_errors",
]


def numerical_gradient(
    f: Callable[[np.ndarray], float], X, h: float = 1e-6
) -> np.ndarray:
    """∂f/∂X for a scalar ``f`` by central differences; the shape of ``X``.

    Entry ``k`` is ``(f(X + h E_k) − f(X − h E_k)) / 2h``. The truncation
    error is O(h²) and the round-off error O(ε/h), so ``h = 1e-6`` gives
    about 1e-9 relative accuracy on smooth functions of order-one inputs in
    float64.
    """
    X = as_real_array("X", X)
    if not h > 0:
        raise ValueError(f"h must be positive; got {h}")
    # flat view below
    Xp = np.array(X, dtype=np.float64, copy=True, order="C")
    grad = np.zeros_like(Xp)
    flat, gflat = Xp.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        saved = flat[k]
        flat[k] = saved + h
        up = float(f(Xp))
        flat[k] = saved - h
        down = float(f(Xp))
        flat[k] = saved
        gflat[k] = (up - down) / (2 * h)
    return grad


def directional_derivative(
    f: Callable[[np.ndarray], np.ndarray], X, V, h: float = 1e-6
) -> np.ndarray:
    """The product ``J V`` of ``f``'s Jacobian at ``X``, by one difference.

    Returns ``(f(X + hV) − f(X − hV)) / 2h``, with the shape of ``f(X)``.
    """
    X = as_real_array("X", X)
    V = as_real_array("V", V)
    check_same_shape("V", V, "X", X)
    if not h > 0:
        raise ValueError(f"h must be positive; got {h}")
    up = np.asarray(f(X + h * V), dtype=np.float64)
    down = np.asarray(f(X - h * V), dtype=np.float64)
    return (up - down) / (2 * h)


def relative_error(a, b) -> float:
    """``‖a − b‖ / max(‖a‖, ‖b‖)``, Frobenius norm; 0 when both are zero.

    Scale-free: 1e-9 means the two agree to about nine significant digits.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"cannot compare arrays of shapes {a.shape} and {b.shape}"
        )
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    if scale == 0.0:
        return 0.0
    return float(np.linalg.norm(a - b) / scale)


def pass_mark(err: float, tol: float = 1e-7, spec: str = ".1e") -> str:
    """An error as printed: ``"< 1e-7"`` below ``tol``, its size otherwise.

    Below the tolerance only the pass mark is printed, never the digits:
    those are round-off, and differ from one CPU to another. ``spec`` formats
    an error at or above ``tol``
    (``".1e"``, or ``".2f"`` for errors of order one).
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive; got {tol}")
    if err < tol:
        return f"< {tol:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return format(err, spec)


def report(
    name: str, err: float, tol: float = 1e-7, spec: str = ".1e"
) -> None:
    """Print ``name: relative error < 1e-7`` (or its size), one line."""
    print(f"{name}: relative error {pass_mark(err, tol, spec)}")


def order_of_magnitude(err: float, margin: float = 0.15) -> str:
    """An error as the power of ten nearest to it: ``"1e-10"`` for 1.2e-10.

    This is what a chapter prints to show a real error of a correct
    gradient: the digits of the error change from one CPU to another, its
    order of magnitude does not, unless the error lies near the boundary
    between two orders, ``10**(k + 0.5)``. Errors closer to a boundary than
    ``margin`` (in units of log10; 0.15 is a factor 1.4) are refused, so an
    order that is printed holds under perturbations of up to that factor.
    """
    if not (np.isfinite(err) and err > 0):
        raise ValueError(f"err must be positive and finite; got {err}")
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must lie in [0, 0.5); got {margin}")
    exponent = np.log10(err)
    k = int(np.round(exponent))
    if abs(abs(exponent - k) - 0.5) < margin:
        raise ValueError(
            f"error {err:.2e} lies within a factor {10**margin:.2f} of "
            f"{10 ** (k + np.sign(exponent - k) * 0.5):.2e}, the boundary "
            "between two orders of magnitude, so its printed order would "
            "not hold on every CPU; print it as a pass mark instead"
        )
    return f"1e{k:+03d}".replace("+", "")


def error_table(
    errors, tol: float = 1e-7, orders=(), title: str | None = None
) -> None:
    """Print a chapter's measured relative errors as one table.

    errors: a mapping (or pairs) of check name to relative error.
    tol: the pass mark; an error below it prints as ``< 1e-7``, one at or
    above it prints its value (``.1e``).
    orders: names of rows printed as their order of magnitude instead,
    ``≈ 1e-10`` (see :func:`order_of_magnitude`), so that a reader sees what
    the error of a correct gradient looks like.
    """
    rows = list(errors.items() if hasattr(errors, "items") else errors)
    if not rows:
        raise ValueError("errors is empty")
    names = [name for name, _ in rows]
    unknown = [name for name in orders if name not in names]
    if unknown:
        raise ValueError(f"orders names rows that are not there: {unknown}")
    shown = [
        f"≈ {order_of_magnitude(err)}"
        if name in orders
        else pass_mark(err, tol)
        for name, err in rows
    ]
    width = max(len(name) for name in names + ["check"])
    if title:
        print(title)
    print(f"{'check':<{width}}  relative error")
    for name, text in zip(names, shown):
        print(f"{name:<{width}}  {text}")


def adjoint_test(
    jvp: Callable[[np.ndarray], np.ndarray],
    vjp: Callable[[np.ndarray], np.ndarray],
    v,
    u,
) -> float:
    """Relative gap in the dot-product identity ``⟨J v, u⟩ = ⟨v, Jᵀ u⟩``.

    jvp: ``v ↦ J v`` (shape of the output).
    vjp: ``u ↦ Jᵀ u`` (shape of the input).
    v: a direction in input space.  u: a direction in output space.
    Returns ``|⟨Jv, u⟩ − ⟨v, Jᵀu⟩| / max(|⟨Jv, u⟩|, |⟨v, Jᵀu⟩|)``, which is
    at round-off level (about 1e-15) when ``vjp`` is the adjoint of ``jvp``,
    and of order one when, say, a transpose is misplaced.
    """
    v = as_real_array("v", v)
    u = as_real_array("u", u)
    Jv = np.asarray(jvp(v), dtype=np.float64)
    JTu = np.asarray(vjp(u), dtype=np.float64)
    check_same_shape("J v", Jv, "u", u)
    check_same_shape("Jᵀ u", JTu, "v", v)
    lhs = float(np.sum(Jv * u))
    rhs = float(np.sum(v * JTu))
    scale = max(abs(lhs), abs(rhs))
    return 0.0 if scale == 0.0 else abs(lhs - rhs) / scale


def step_size_errors(
    f: Callable[[np.ndarray], float],
    X,
    grad,
    hs,
    scheme: str = "central",
    dtype=np.float64,
) -> np.ndarray:
    """Relative error of a finite-difference gradient of ``f``, one a step.

    f: a scalar function of an array shaped like ``X``.  X: the point.  grad:
    the exact gradient at ``X`` (shape of ``X``), the reference.  hs: (m,)
    positive steps. scheme: ``"forward"``, entry ``k`` is
    ``(f(X + h E_k) − f(X)) / h`` with error O(h), or ``"central"``,
    ``(f(X + h E_k) − f(X − h E_k)) / 2h`` with error O(h²). dtype:
    ``np.float64`` or ``np.float32``, the precision of the differences: ``X``
    and each step are cast to it and every difference is formed in it, so
    ``f`` should compute in the precision of its argument
    (numpy keeps float32 as float32). The step is the nominal ``h``, not the
    step ``(x + h) − x`` that rounding leaves.

    Returns (m,) float64:
    ``relative_error(finite differences with step h, grad)`` for each ``h``
    in ``hs``, the measured error-versus-step curve.
    """
    X = as_real_array("X", X)
    grad = as_real_array("grad", grad)
    check_same_shape("grad", grad, "X", X)
    hs = as_real_array("hs", np.atleast_1d(hs), ndim=1)
    if not np.all(np.isfinite(hs) & (hs > 0)):
        raise ValueError(
            f"every step in hs must be positive and finite; got {hs}"
        )
    if scheme not in ("forward", "central"):
        raise ValueError(
            f"scheme must be 'forward' or 'central'; got {scheme!r}"
        )
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64; got {dt}")
    Xd = np.array(X, dtype=dt, copy=True)
    flat = Xd.reshape(-1)
    errors = np.empty(hs.size)
    for i, h in enumerate(hs):
        step = dt.type(h)
        base = dt.type(f(Xd)) if scheme == "forward" else None
        num = np.empty(X.size)
        for k in range(flat.size):
            saved = flat[k]
            flat[k] = saved + step
            up = dt.type(f(Xd))
            if scheme == "central":
                flat[k] = saved - step
                down = dt.type(f(Xd))
                num[k] = (up - down) / (dt.type(2) * step)
            else:
                num[k] = (up - base) / step
            flat[k] = saved
        errors[i] = relative_error(num.reshape(X.shape), grad)
    return errors
