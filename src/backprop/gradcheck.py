"""Gradient checking: central differences, relative error and the adjoint test.

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
    "adjoint_test",
]


def numerical_gradient(
    f: Callable[[np.ndarray], float], X, h: float = 1e-6
) -> np.ndarray:
    """∂f/∂X for a scalar ``f`` by central differences; the result has the shape of ``X``.

    Entry ``k`` is ``(f(X + h E_k) − f(X − h E_k)) / 2h``. The truncation error is
    O(h²) and the round-off error O(ε/h), so ``h = 1e-6`` gives about 1e-9 relative
    accuracy on smooth functions of order-one inputs in float64.
    """
    X = as_real_array("X", X)
    if not h > 0:
        raise ValueError(f"h must be positive; got {h}")
    Xp = np.array(X, dtype=np.float64, copy=True)
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
    """The Jacobian-vector product ``J V`` of ``f`` at ``X``, by one central difference.

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
    """``‖a − b‖ / max(‖a‖, ‖b‖)`` in the Frobenius norm; 0 when both are zero.

    Scale-free: 1e-9 means the two agree to about nine significant digits.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    if scale == 0.0:
        return 0.0
    return float(np.linalg.norm(a - b) / scale)


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
    Returns ``|⟨Jv, u⟩ − ⟨v, Jᵀu⟩| / max(|⟨Jv, u⟩|, |⟨v, Jᵀu⟩|)``, which is at
    round-off level (about 1e-15) when ``vjp`` is the adjoint of ``jvp``, and of
    order one when, say, a transpose is misplaced.
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
