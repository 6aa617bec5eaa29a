"""Output layers and losses, with PyTorch's default ``reduction='mean'``.

Each loss maps a batch of predictions to one number ``E``; its VJP takes the
scalar upstream gradient ``g = ∂(whatever follows)/∂E``
(1 when ``E`` is the final loss) and returns ∂/∂(predictions), with the
predictions' shape. The mean is what makes every per-example gradient carry a
factor ``1/B``
(or ``1/(B·n)`` for the MSE, which averages over every entry, as
``torch.nn.MSELoss`` does).

- ``mse(P, Y)``: ``mean((P − Y)²)`` over all entries.
- ``sigmoid_binary_cross_entropy(Z, Y)``: binary cross-entropy of ``σ(Z)``
  against targets ``Y ∈ [0, 1]``, computed from the logits ``Z`` without
  forming ``σ(Z)`` (``torch.nn.BCEWithLogitsLoss``).
- ``softmax(Z)``: row-wise, the one output layer here whose Jacobian is not
  diagonal.
- ``softmax_cross_entropy(Z, labels)``: the fused loss of
  ``torch.nn.CrossEntropyLoss`` with integer class labels; returns
  ``(loss, dZ)`` with ``dZ = (softmax(Z) − onehot) / B``.
"""

from __future__ import annotations

import numpy as np

from backprop._checks import as_real_array, check_batch, check_same_shape

__all__ = [
    "mse",
    "mse_vjp",
    "sigmoid_binary_cross_entropy",
    "sigmoid_binary_cross_entropy_vjp",
    "logsumexp",
    "softmax",
    "softmax_vjp",
    "softmax_cross_entropy",
    "check_labels",
]


def _check_finite(name: str, x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(
            f"{name} must be finite; got {bad} NaN or infinite entries of "
            f"{x.size}"
        )


def _scalar(name: str, g) -> float:
    arr = np.asarray(g)
    if arr.dtype.kind not in "iuf" or arr.size != 1:
        raise ValueError(
            f"{name} must be a real scalar (the gradient of the loss); got "
            f"{arr.dtype} of shape {arr.shape}"
        )
    return float(arr.reshape(()))


def mse(P, Y) -> float:
    """Mean squared error ``E = (1/N) Σ (P − Y)²`` over all ``N`` entries
    (eq. ``loss-mse``).

    P, Y: predictions and targets, same shape (B, n) or (B,).
    """
    P = as_real_array("P", P)
    Y = as_real_array("Y", Y)
    check_same_shape("Y", Y, "P", P)
    return float(np.mean((P - Y) ** 2))


def mse_vjp(g, P, Y) -> np.ndarray:
    """``∂E/∂P = g · 2 (P − Y) / N``, with the shape of ``P``
    (eq. ``grad-mse``)."""
    g = _scalar("g", g)
    P = as_real_array("P", P)
    Y = as_real_array("Y", Y)
    check_same_shape("Y", Y, "P", P)
    return g * 2.0 * (P - Y) / P.size


def sigmoid_binary_cross_entropy(Z, Y) -> float:
    """Mean binary cross-entropy of ``σ(Z)`` against ``Y``, from the logits
    (eq. ``loss-bce``).

    ``E = mean(−Y log σ(Z) − (1 − Y) log(1 − σ(Z))) = mean(softplus(Z) − Y
    Z)``, and ``softplus(Z) = log(1 +
    e^Z)`` is evaluated with ``logaddexp`` so that no logit, however large,
    overflows. Z, Y: same shape; Y in [0, 1].
    """
    Z = as_real_array("Z", Z)
    Y = as_real_array("Y", Y)
    check_same_shape("Y", Y, "Z", Z)
    if np.any((Y < 0) | (Y > 1)):
        raise ValueError(
            f"targets Y must lie in [0, 1]; got values from {Y.min()} to "
            f"{Y.max()}"
        )
    return float(np.mean(np.logaddexp(0.0, Z) - Y * Z))


def sigmoid_binary_cross_entropy_vjp(g, Z, Y) -> np.ndarray:
    """``∂E/∂Z = g · (σ(Z) − Y) / N``: the sigmoid's derivative cancels
    (eq. ``grad-bce``)."""
    g = _scalar("g", g)
    Z = as_real_array("Z", Z)
    Y = as_real_array("Y", Y)
    check_same_shape("Y", Y, "Z", Z)
    sigma = np.exp(-np.logaddexp(0.0, -Z))
    return g * (sigma - Y) / Z.size


def logsumexp(Z) -> np.ndarray:
    """Row-wise ``log Σ_k exp(Z_rk)``, as ``m + log Σ exp(Z − m)``, m = max.

    Z: (B, n_L). Returns (B,). Finite for any finite logits: the largest
    exponent is 0.
    """
    Z = check_batch("Z", Z)
    m = Z.max(axis=1, keepdims=True)
    return (m + np.log(np.sum(np.exp(Z - m), axis=1, keepdims=True)))[:, 0]


def softmax(Z) -> np.ndarray:
    """Row-wise softmax ``S_rk = exp(Z_rk) / Σ_l exp(Z_rl)``
    (eq. ``softmax-forward``).

    Z: (B, n_L) logits, one row per example. Returns (B, n_L); each row sums
    to one. Shifted by the row maximum, so it never overflows.
    """
    Z = check_batch("Z", Z)
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def softmax_vjp(g, Z) -> np.ndarray:
    """Pull ``g = ∂E/∂P`` back through ``P = softmax(Z)``, row by row
    (eq. ``grad-softmax``).

    The Jacobian of one row is ``diag(p) − p pᵀ``, dense, so the VJP is not
    element-wise: ``(diag(p) − p pᵀ) g = p ⊙ (g − (pᵀ g) 𝟏)``. g, Z: (B,
    n_L). Returns (B, n_L).
    """
    Z = check_batch("Z", Z)
    g = check_batch("g", g)
    check_same_shape("g", g, "Z", Z)
    P = softmax(Z)
    return P * (g - np.sum(g * P, axis=1, keepdims=True))


def check_labels(labels, n_rows: int, n_classes: int) -> np.ndarray:
    """Integer labels ``(B,)`` in ``0 … n_classes − 1``, as int64."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(
            f"labels must be 1-D (B,) integer classes; got shape {arr.shape}"
        )
    if (
        arr.size
        and arr.dtype.kind == "f"
        and np.all(np.isfinite(arr))
        and np.all(arr == np.round(arr))
    ):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(
            f"labels must be integer classes; got dtype {arr.dtype}"
        )
    if arr.shape[0] != n_rows:
        raise ValueError(
            f"need one label per example: logits have {n_rows} rows, labels "
            f"have {arr.shape[0]}"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"labels must lie in 0 … {n_classes - 1} for {n_classes} "
            f"classes; got values from {arr.min()} to {arr.max()}"
        )
    return arr.astype(np.int64, copy=False)


def softmax_cross_entropy(logits, labels) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``softmax(logits)``, and its gradient.

    ``E = (1/B) Σ_r (logsumexp(Z_r) − Z_{r, y_r})``  (eq. ``loss-ce``),
    computed with log-sum-exp so that it stays finite for logits of any
    magnitude, and ``∂E/∂Z = (softmax(Z) − onehot(y)) / B``
    (eq. ``grad-ce``).

    logits: (B, n_L).  labels: (B,) integers in ``0 … n_L − 1``.
    Returns ``(loss, dlogits)`` with ``dlogits`` of shape (B, n_L).
    """
    Z = check_batch("logits", logits)
    _check_finite("logits", Z)
    y = check_labels(labels, Z.shape[0], Z.shape[1])
    B = Z.shape[0]
    rows = np.arange(B)
    loss = float(np.mean(logsumexp(Z) - Z[rows, y]))
    dZ = softmax(Z)
    dZ[rows, y] -= 1.0
    return loss, dZ / B
