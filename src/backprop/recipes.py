"""Two layers derived by the recipe of the page "Deriving any layer".

The recipe: write ``dE = ⟨∇_Y E, dY⟩``, push the differential through the
layer, move every factor across the inner product, read off the gradient.

- ``glu``: the gated linear unit, ``Y = Z₁ ⊙ σ(Z₂)`` with two affine maps
  ``Zₖ = X Wₖᵀ + 𝟏 bₖᵀ`` of the same input (eqs. ``rc-glu-forward``,
  ``rc-glu-grads``);
- ``l2_normalize``: each row divided by its length, ``Y = diag(ζ)⁻¹ X``
  with ``ζᵣ = √(‖xᵣ‖² + ε)`` (eqs. ``rc-l2-forward``, ``rc-l2-grad``).

Batch-first, one example per row, as everywhere in the package. Every
function is pure: it checks its arguments, never modifies them, and
returns new arrays.
"""

from __future__ import annotations

import numpy as np

from backprop._checks import as_real_array, check_batch
from backprop.layers import _check_linear, sigmoid
from backprop.norm import _check_eps

__all__ = ["glu", "glu_vjp", "l2_normalize", "l2_normalize_vjp"]


# --- the gated linear unit ----------------------------------------


def _check_glu(X, W1, b1, W2, b2):
    X, W1, b1 = _check_linear(X, W1, b1, names=("X", "W1", "b1"))
    W2 = as_real_array("W2", W2, ndim=2)
    if W2.shape != W1.shape:
        raise ValueError(
            f"W2 must have the shape of W1, {W1.shape} (one gate per "
            f"output); got {W2.shape}"
        )
    _, W2, b2 = _check_linear(X, W2, b2, names=("X", "W2", "b2"))
    return X, W1, b1, W2, b2


def glu(X, W1, b1, W2, b2) -> np.ndarray:
    """Gated linear unit ``Y = Z₁ ⊙ σ(Z₂)``  (eq. ``rc-glu-forward``).

    X: (B, n_in), one example per row.  W1, W2: (n_out, n_in).
    b1, b2: (n_out,).  ``Zₖ = X Wₖᵀ + 𝟏 bₖᵀ``.  Returns Y: (B, n_out).
    """
    X, W1, b1, W2, b2 = _check_glu(X, W1, b1, W2, b2)
    return (X @ W1.T + b1) * sigmoid(X @ W2.T + b2)


def glu_vjp(dY, X, W1, b1, W2, b2) -> tuple[np.ndarray, ...]:
    """Pull ``dY`` back through the GLU.

    Implements eqs. ``rc-glu-dz``, ``rc-glu-grads``.

    dY: (B, n_out), ∂E/∂Y.  X, W1, b1, W2, b2: as for :func:`glu`.
    Returns ``(dX, dW1, db1, dW2, db2)``, each with its input's shape:

    - ``G₁ = dY ⊙ σ(Z₂)``,  ``G₂ = dY ⊙ Z₁ ⊙ σ(Z₂) ⊙ (1 − σ(Z₂))``;
    - ``dX = G₁ W₁ + G₂ W₂`` (X fans out to both paths);
    - ``dWₖ = Gₖᵀ X``,  ``dbₖ = Gₖᵀ 𝟏``.
    """
    X, W1, b1, W2, b2 = _check_glu(X, W1, b1, W2, b2)
    dY = check_batch("dY", dY)
    expected = (X.shape[0], W1.shape[0])
    if dY.shape != expected:
        raise ValueError(
            f"dY must have the shape of Y = glu(X, W1, b1, W2, b2), "
            f"{expected} (batch, outputs); got {dY.shape}"
        )
    Z1 = X @ W1.T + b1
    S = sigmoid(X @ W2.T + b2)
    G1 = dY * S
    G2 = dY * Z1 * S * (1.0 - S)
    dX = G1 @ W1 + G2 @ W2
    return dX, G1.T @ X, G1.sum(axis=0), G2.T @ X, G2.sum(axis=0)


# --- L2 normalisation of rows -------------------------------------


def _check_l2(X, eps) -> tuple[np.ndarray, np.ndarray]:
    """X as a batch and its row lengths ``ζ = √((X ⊙ X) 𝟏 + ε)``."""
    X = check_batch("X", X)
    eps = _check_eps(eps)
    zeta = np.sqrt(np.sum(X * X, axis=1) + eps)
    if not np.all(zeta > 0):
        r = int(np.flatnonzero(~(zeta > 0))[0])
        raise ValueError(
            f"row {r} of X has length {zeta[r]}, so it has no direction; "
            f"pass eps > 0 to map a zero row to zero"
        )
    return X, zeta


def l2_normalize(X, eps: float = 0.0) -> np.ndarray:
    """Each row scaled to length 1: ``Y = diag(ζ)⁻¹ X``.

    Implements eq. ``rc-l2-forward``.

    X: (B, n_in), one example per row.  eps: ``ε ≥ 0``, added under the
    root: row ``r`` is divided by ``ζᵣ = √(‖xᵣ‖² + ε)``.  With ``ε = 0``
    a zero row is refused; with ``ε > 0`` it maps to zero.
    Returns Y: (B, n_in), each row of length 1 when ``ε = 0``.
    """
    X, zeta = _check_l2(X, eps)
    return X / zeta[:, None]


def l2_normalize_vjp(dY, X, eps: float = 0.0) -> np.ndarray:
    """Pull ``dY`` back through ``Y = diag(ζ)⁻¹ X``  (eq. ``rc-l2-grad``).

    dY, X: (B, n_in).  eps: as for :func:`l2_normalize`.
    Returns dX: (B, n_in), ``diag(ζ)⁻¹ (dY − diag((dY ⊙ Y) 𝟏) Y)``;
    row by row, ``(g − (yᵀg) y) / ζ = (I − y yᵀ) g / ζ``.
    """
    X, zeta = _check_l2(X, eps)
    dY = as_real_array("dY", dY)
    if dY.shape != X.shape:
        raise ValueError(
            f"dY must have the shape of Y = l2_normalize(X), which is "
            f"the shape of X, {X.shape}; got {dY.shape}"
        )
    Y = X / zeta[:, None]
    along = np.sum(dY * Y, axis=1, keepdims=True)  # yᵣᵀ gᵣ, one per row
    return (dY - along * Y) / zeta[:, None]
