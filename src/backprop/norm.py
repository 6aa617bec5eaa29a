"""Layer norm and batch norm: one standardisation, along two different axes.

Both subtract a mean and divide by a standard deviation, then scale and shift
each feature: ``Y = γ ⊙ X̂ + β`` with ``X̂ = (X − μ) / σ`` and
``σ = √(var + ε)``, the variance ``var`` biased
(divided by the count, not the count minus one). They differ only in the axis
the statistics run over:

- ``layer_norm`` standardises each example over its features (the last axis),
  as ``torch.nn.functional.layer_norm(X, (n,), γ, β, ε)`` does;
- ``batch_norm`` (training mode) standardises each feature over the batch
  (axis 0), as
  ``torch.nn.functional.batch_norm(X, None, None, γ, β, training=True,
  eps=ε)``.

Because every entry of ``X`` moves the mean and the variance, the map is not
element-wise: for one group of ``n`` standardised entries
(a row for layer norm, a column for batch norm) the Jacobian is
(eq. ``rn-ln-jacobian``)

    ∂y/∂x = diag(γ) (1/σ) (I − 𝟏𝟏ᵀ/n − x̂ x̂ᵀ/n),

dense, and the VJP has the compact form (eqs. ``rn-ln-vjp``, ``rn-bn-vjp``)

    g = γ ⊙ ∇y,    ∇x = (g − mean(g) 𝟏 − mean(g ⊙ x̂) x̂) / σ.

``batch_norm_steps`` writes batch norm as a chain of eight elementary
operations, each with a one-line VJP; composing their VJPs gives the compact
form.

Every function is pure: it checks its arguments, never modifies them, and
returns new arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backprop._checks import as_real_array, check_batch, check_same_shape

__all__ = [
    "layer_norm",
    "layer_norm_vjp",
    "batch_norm",
    "batch_norm_vjp",
    "batch_norm_steps",
    "batch_norm_vjp_steps",
]


# --- checks and the shared standardisation ---------------------------------


def _check_eps(eps) -> float:
    """``eps`` as a float: finite, ``>= 0`` (0 allowed, as in PyTorch)."""
    if isinstance(eps, bool) or not isinstance(
        eps, int | float | np.floating
    ):
        raise ValueError(f"eps must be a non-negative number; got {eps!r}")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be non-negative and finite; got {eps!r}")
    return float(eps)


def _check_feature_vector(
    name: str, vector, n: int, what: str
) -> np.ndarray:
    vector = as_real_array(name, vector, ndim=1)
    if vector.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},), one entry per {what}; got "
            f"{vector.shape}"
        )
    return vector


def _check_batch_norm_input(X) -> np.ndarray:
    X = check_batch("X", X)
    if X.shape[0] < 2:
        raise ValueError(
            "batch norm in training mode needs more than 1 example per "
            "feature (the batch variance of one example is 0); got X of "
            f"shape {X.shape}"
        )
    return X


def _standardize(
    X: np.ndarray, axis: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(X̂, σ)``: ``X`` minus its mean on ``axis``, over ``σ = √(var + ε)``.

    σ keeps the reduced axis (size 1), so that it broadcasts against ``X``.
    """
    Xc = X - X.mean(axis=axis, keepdims=True)
    sigma = np.sqrt(np.mean(Xc * Xc, axis=axis, keepdims=True) + eps)
    return Xc / sigma, sigma


def _standardize_vjp(
    g: np.ndarray, Xhat: np.ndarray, sigma: np.ndarray, axis: int
):
    """``∇x = (g − mean(g) − x̂ mean(g ⊙ x̂)) / σ``, means over ``axis``."""
    mean_g = g.mean(axis=axis, keepdims=True)
    mean_gx = (g * Xhat).mean(axis=axis, keepdims=True)
    return (g - mean_g - Xhat * mean_gx) / sigma


# --- layer norm ------------------------------------------------------------


def _check_layer_norm(X, gamma, beta=None):
    X = as_real_array("X", X)
    n = X.shape[-1]
    gamma = _check_feature_vector(
        "gamma", gamma, n, "feature (last axis of X)"
    )
    if beta is not None:
        beta = _check_feature_vector(
            "beta", beta, n, "feature (last axis of X)"
        )
    return X, gamma, beta


def layer_norm(X, gamma, beta, eps: float = 1e-5) -> np.ndarray:
    """Layer normalisation over the last axis  (eq. ``rn-ln-forward``).

    X: (..., n), any rank of at least one; every slice ``X[..., :]`` (a row)
    is standardised on its own.  gamma, beta: (n,).  eps: non-negative, added
    to the biased variance.  Returns Y: (..., n),
    ``Y = γ ⊙ (X − μ) / √(var + ε) + β`` with ``μ`` and ``var`` the mean
    and biased variance of each row.
    """
    eps = _check_eps(eps)
    X, gamma, beta = _check_layer_norm(X, gamma, beta)
    Xhat, _ = _standardize(X, -1, eps)
    return gamma * Xhat + beta


def layer_norm_vjp(
    dY, X, gamma, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pull ``dY`` back through ``Y = layer_norm(X, γ, β, ε)``
    (eq. ``rn-ln-vjp``).

    dY, X: (..., n), the same shape.  gamma: (n,).
    Returns ``(dX, dgamma, dbeta)`` with the shapes of ``X``, ``γ`` and
    ``β``:

    - ``dX = (G − mean(G) − X̂ ⊙ mean(G ⊙ X̂)) / σ`` with ``G = dY ⊙ γ``, the
      means and σ taken row by row (over the last axis);
    - ``dgamma = Σ dY ⊙ X̂`` and ``dbeta = Σ dY``, summed over every axis but
      the last (γ and β are shared by all rows).

    Each row of ``dX`` sums to zero.
    """
    eps = _check_eps(eps)
    X, gamma, _ = _check_layer_norm(X, gamma)
    dY = as_real_array("dY", dY)
    check_same_shape("dY", dY, "X", X)
    Xhat, sigma = _standardize(X, -1, eps)
    dX = _standardize_vjp(dY * gamma, Xhat, sigma, -1)
    batch_axes = tuple(range(X.ndim - 1))
    return (
        dX,
        np.sum(dY * Xhat, axis=batch_axes),
        np.sum(dY, axis=batch_axes),
    )


# --- batch norm ------------------------------------------------------------


def _check_batch_norm(X, gamma, beta=None):
    X = _check_batch_norm_input(X)
    n = X.shape[1]
    gamma = _check_feature_vector("gamma", gamma, n, "feature (column of X)")
    if beta is not None:
        beta = _check_feature_vector(
            "beta", beta, n, "feature (column of X)"
        )
    return X, gamma, beta


def batch_norm(X, gamma, beta, eps: float = 1e-5) -> np.ndarray:
    """Batch normalisation, training mode: statistics over the batch
    (eq. ``rn-bn-forward``).

    X: (B, n), one example per row, ``B >= 2``; every column (a feature) is
    standardised over the ``B`` examples.  gamma, beta: (n,).  eps:
    non-negative. Returns Y: (B, n), ``Y = γ ⊙ (X − μ) / √(var + ε) + β``
    with ``μ`` and ``var`` the mean and biased variance of each column.  With
    ``B = 1`` every output would be ``β`` whatever ``X`` is, so it is
    refused, as PyTorch refuses it in training.
    """
    eps = _check_eps(eps)
    X, gamma, beta = _check_batch_norm(X, gamma, beta)
    Xhat, _ = _standardize(X, 0, eps)
    return gamma * Xhat + beta


def batch_norm_vjp(
    dY, X, gamma, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pull ``dY`` back through ``Y = batch_norm(X, γ, β, ε)``
    (eq. ``rn-bn-vjp``).

    dY, X: (B, n).  gamma: (n,).
    Returns ``(dX, dgamma, dbeta)`` with the shapes of ``X``, ``γ`` and
    ``β``:

    - ``dX = (G − mean(G) − X̂ ⊙ mean(G ⊙ X̂)) / σ`` with ``G = dY ⊙ γ``, the
      means and σ taken column by column (over the batch): the examples are
      coupled;
    - ``dgamma = Σ_batch dY ⊙ X̂`` and ``dbeta = Σ_batch dY``.

    Each column of ``dX`` sums to zero.
    """
    eps = _check_eps(eps)
    X, gamma, _ = _check_batch_norm(X, gamma)
    dY = check_batch("dY", dY)
    check_same_shape("dY", dY, "X", X)
    Xhat, sigma = _standardize(X, 0, eps)
    dX = _standardize_vjp(dY * gamma, Xhat, sigma, 0)
    return dX, np.sum(dY * Xhat, axis=0), np.sum(dY, axis=0)


# --- batch norm, one elementary operation at a time ------------------------


def batch_norm_steps(
    X, gamma, beta, eps: float = 1e-5
) -> tuple[np.ndarray, Callable[[np.ndarray], tuple[np.ndarray, ...]]]:
    """Batch norm as eight elementary steps; returns ``(Y, backward)``.

    X: (B, n) with ``B >= 2``; gamma, beta: (n,).  The forward pass, with the
    shape of each intermediate (``mean(·) = 𝟏ᵀ(·) / B``, over the batch)::

        μ = mean(X)          (n,)     mean
        X_c = X − 𝟏μᵀ        (B, n)   centre
        X_c² = X_c ⊙ X_c     (B, n)   square
        var = mean(X_c²)     (n,)     mean
        σ² = var + ε         (n,)     add eps
        σ⁻¹ = (σ²)^(−1/2)    (n,)     rsqrt
        X̂ = X_c ⊙ 𝟏(σ⁻¹)ᵀ    (B, n)   multiply
        Y = X̂ ⊙ 𝟏γᵀ + 𝟏βᵀ    (B, n)   scale and shift

    ``backward(dY)`` runs the steps in reverse, each with its own VJP, and
    returns ``(dX, dgamma, dbeta)``. ``X_c`` is used twice
    (by the square and the multiply), so its two gradients add. The result
    equals :func:`batch_norm_vjp` to round-off.
    """
    eps = _check_eps(eps)
    X, gamma, beta = _check_batch_norm(X, gamma, beta)
    B = X.shape[0]

    mu = X.mean(axis=0)
    Xc = X - mu
    Xc_sq = Xc * Xc
    var = Xc_sq.mean(axis=0)
    sigma_sq = var + eps
    sigma_inv = sigma_sq**-0.5
    Xhat = Xc * sigma_inv
    Y = Xhat * gamma + beta

    def backward(dY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dY = check_batch("dY", dY)
        check_same_shape("dY", dY, "X", X)
        # scale and shift: Y = X̂ ⊙ 𝟏γᵀ + 𝟏βᵀ
        dXhat, dgamma, dbeta = (
            dY * gamma,
            (dY * Xhat).sum(axis=0),
            dY.sum(axis=0),
        )
        # multiply: X̂ = X_c ⊙ 𝟏(σ⁻¹)ᵀ  (σ⁻¹ is broadcast over the rows, so
        # its gradient sums)
        dXc = dXhat * sigma_inv
        dsigma_inv = (dXhat * Xc).sum(axis=0)
        # rsqrt: σ⁻¹ = (σ²)^(−1/2)
        dsigma_sq = dsigma_inv * (-0.5) * sigma_sq**-1.5
        # add eps: σ² = var + ε
        dvar = dsigma_sq
        # mean: var = 𝟏ᵀX_c² / B  (its adjoint copies dvar / B into each row)
        dXc_sq = np.broadcast_to(dvar / B, (B, dvar.size))
        # square: X_c² = X_c ⊙ X_c; X_c's second use, so the gradients add
        dXc = dXc + 2.0 * Xc * dXc_sq
        # centre: X_c = X − 𝟏μᵀ
        dX, dmu = dXc, -dXc.sum(axis=0)
        # mean: μ = 𝟏ᵀX / B; X's second use
        dX = dX + dmu / B
        return dX, dgamma, dbeta

    return Y, backward


def batch_norm_vjp_steps(
    dY, X, gamma, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`batch_norm_vjp` by :func:`batch_norm_steps`, step by step.

    dY, X: (B, n).  gamma: (n,).  Returns ``(dX, dgamma, dbeta)``.
    """
    gamma = as_real_array("gamma", gamma, ndim=1)
    _, backward = batch_norm_steps(X, gamma, np.zeros_like(gamma), eps)
    return backward(dY)
