"""Explicit Jacobians, for checking and for looking at.

Backpropagation never forms a Jacobian: it applies ``g ↦ Jᵀ g`` directly.
These builders form them anyway, at small sizes, so that the book can show
their structure (diagonal, Kronecker, dense) and compare them with the VJPs.

Conventions (chapter *Notation, shapes and conventions*):

- numerator layout: ``∂y/∂x`` has one row per entry of ``y`` and one column
  per entry of ``x``, so a chain of maps multiplies left to right;
- a matrix is flattened with ``vec``, which stacks its columns
  (``X.reshape(-1, order="F")``); the identity
  ``vec(A X B) = (Bᵀ ⊗ A) vec(X)`` holds in this convention.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backprop._checks import as_real_array
from backprop.layers import _check_linear

__all__ = [
    "vec",
    "unvec",
    "commutation_matrix",
    "elementwise_jacobian",
    "linear_jacobians",
    "numerical_jacobian",
    "vjp_from_jacobian",
]


def vec(X) -> np.ndarray:
    """Stack the columns of ``X`` into one vector (column-major order)."""
    X = as_real_array("X", X)
    # flatten always copies: the result never aliases X
    return X.flatten(order="F")


def unvec(v, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`vec`: fill ``shape`` column by column."""
    v = as_real_array("v", v, ndim=1)
    shape = tuple(int(s) for s in shape)
    if int(np.prod(shape)) != v.size:
        raise ValueError(
            f"cannot unvec {v.size} entries into shape {shape}, which holds "
            f"{int(np.prod(shape))}"
        )
    return v.reshape(shape, order="F").copy()


def commutation_matrix(m: int, n: int) -> np.ndarray:
    """The permutation ``K`` with ``K vec(X) = vec(Xᵀ)`` for all ``m × n`` X.

    Returns an ``(m n, m n)`` matrix of zeros and ones.
    """
    if int(m) < 1 or int(n) < 1:
        raise ValueError(
            f"commutation_matrix needs m >= 1 and n >= 1; got m={m}, n={n}"
        )
    m, n = int(m), int(n)
    K = np.zeros((m * n, m * n))
    for i in range(m):
        for j in range(n):
            # X[i, j] sits at j*m + i in vec(X) and at i*n + j in vec(Xᵀ).
            K[i * n + j, j * m + i] = 1.0
    return K


def elementwise_jacobian(fprime) -> np.ndarray:
    """Jacobian of an element-wise map whose derivatives are ``fprime``.

    ``∂f(Z)/∂Z = diag(vec f'(Z))``: output ``k`` depends on input ``k`` only.
    fprime: any shape with ``n`` entries.  Returns ``(n, n)``.
    """
    return np.diag(vec(fprime))


def linear_jacobians(A, W) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jacobians of ``vec(Z)``, ``Z = A Wᵀ + 1 bᵀ``, for vec(A), vec(W), b.

    A: (B, n_in).  W: (n_out, n_in).  With ``m = n_out`` and ``n = n_in``:

    - ``∂vec(Z)/∂vec(A) = W ⊗ I_B``                    shape (B m, B n);
    - ``∂vec(Z)/∂vec(W) = (I_m ⊗ A) Π_{m,n}``          shape (B m, m n);
    - ``∂vec(Z)/∂b      = I_m ⊗ 𝟏_B``                  shape (B m, m).

    For one example (``B = 1``, ``A = aᵀ``) they reduce to the column-form
    Jacobians ``W``, ``aᵀ ⊗ I_m`` and ``I_m`` of ``z = W a + b``.
    """
    A, W, _ = _check_linear(A, W)
    B, n = A.shape
    m = W.shape[0]
    J_A = np.kron(W, np.eye(B))
    J_W = np.kron(np.eye(m), A) @ commutation_matrix(m, n)
    J_b = np.kron(np.eye(m), np.ones((B, 1)))
    return J_A, J_W, J_b


def numerical_jacobian(
    f: Callable[[np.ndarray], np.ndarray], X, h: float = 1e-6
) -> np.ndarray:
    """Jacobian ``∂vec f(X) / ∂vec X`` by central differences (numerator).

    Column ``k`` is ``(vec f(X + h E_k) − vec f(X − h E_k)) / 2h``, where
    ``E_k`` is zero except for a one at position ``k`` of ``vec X``. ``X`` is
    not modified. Costs ``2 · X.size`` evaluations of ``f``: a checking tool
    for small sizes.
    """
    X = as_real_array("X", X)
    if not h > 0:
        raise ValueError(f"h must be positive; got {h}")
    x0 = vec(X)
    columns = []
    for k in range(x0.size):
        step = np.zeros_like(x0)
        step[k] = h
        plus = vec(
            np.asarray(f(unvec(x0 + step, X.shape)), dtype=np.float64)
        )
        minus = vec(
            np.asarray(f(unvec(x0 - step, X.shape)), dtype=np.float64)
        )
        columns.append((plus - minus) / (2 * h))
    return np.stack(columns, axis=1)


def vjp_from_jacobian(J, g) -> np.ndarray:
    """The vector-Jacobian product ``Jᵀ vec(g)``: what backprop computes.

    J: (dim y, dim x) in numerator layout.
    g: ∂E/∂y, any shape with ``dim y`` entries.
    Returns the vector ``vec(∂E/∂x)``; :func:`unvec` gives it the shape of
    ``x``.
    """
    J = as_real_array("J", J, ndim=2)
    g = vec(g)
    if g.size != J.shape[0]:
        raise ValueError(
            f"g has {g.size} entries but J has shape {J.shape}, with "
            f"{J.shape[0]} rows"
        )
    return J.T @ g
