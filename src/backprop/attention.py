"""Scaled dot-product attention and its VJP, batched over a leading axis.

For a batch of ``B`` sequences, queries ``Q`` (B, Tq, d), keys ``K`` (B, Tk, d) and
values ``V`` (B, Tk, dv):

- scores ``S = Q Kᵀ / √d`` (B, Tq, Tk), one row per query (eq. ``attn-forward``);
- weights ``P = softmax(S)`` row by row, over the keys (the last axis);
- output ``O = P V`` (B, Tq, dv): each query's weighted average of the values.

With ``causal=True``, query ``i`` may look at keys ``j ≤ i`` only (the mask is
top-left aligned, ``ones(Tq, Tk).tril(0)``, as in PyTorch's
``scaled_dot_product_attention(..., is_causal=True)``); the other scores are set
to ``−∞`` before the softmax, so their weights are exactly zero (eq. ``attn-mask``).
Key 0 is visible to every query, so no row is ever fully masked.

The backward pass (eqs. ``attn-grad-v``, ``attn-grad-s``, ``attn-grad-qk``) is

    dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ⊙ (dP − rowsum(dO ⊙ O)),
    dQ = dS K / √d,   dK = dSᵀ Q / √d,

every "ᵀ" a swap of the last two axes, every product batched over ``B``. The
softmax backward is the row-wise rule of the losses chapter, not an element-wise
one, and its row sums ``rowsum(dP ⊙ P)`` equal ``rowsum(dO ⊙ O)`` (eq.
``attn-rowsum``), which needs only the output and its gradient, not ``P``.
"""

from __future__ import annotations

import numpy as np

from backprop._checks import as_real_array, check_same_shape, positive_int

__all__ = [
    "causal_mask",
    "attention_weights",
    "softmax_rows_vjp",
    "attention",
    "attention_vjp",
]


def _t(X: np.ndarray) -> np.ndarray:
    """Transpose each matrix of a batch: swap the last two axes."""
    return np.swapaxes(X, -1, -2)


def _check_causal(causal) -> bool:
    if not isinstance(causal, bool | np.bool_):
        raise ValueError(f"causal must be True or False; got {causal!r}")
    return bool(causal)


def _check_qk(Q, K) -> tuple[np.ndarray, np.ndarray]:
    Q = as_real_array("Q", Q, ndim=3)
    K = as_real_array("K", K, ndim=3)
    if K.shape[0] != Q.shape[0]:
        raise ValueError(
            f"Q has a batch of {Q.shape[0]} but K has a batch of {K.shape[0]}"
        )
    if K.shape[2] != Q.shape[2]:
        raise ValueError(
            f"queries and keys must have the same width d: Q has shape {Q.shape} "
            f"(d = {Q.shape[2]}) but K has shape {K.shape} (d = {K.shape[2]})"
        )
    return Q, K


def _check_qkv(Q, K, V) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Q, K = _check_qk(Q, K)
    V = as_real_array("V", V, ndim=3)
    if V.shape[0] != K.shape[0]:
        raise ValueError(
            f"K has a batch of {K.shape[0]} but V has a batch of {V.shape[0]}"
        )
    if V.shape[1] != K.shape[1]:
        raise ValueError(
            f"need one value per key: K has shape {K.shape} (Tk = {K.shape[1]}) "
            f"but V has shape {V.shape} ({V.shape[1]} values)"
        )
    return Q, K, V


def causal_mask(Tq: int, Tk: int) -> np.ndarray:
    """Which keys each query may see: ``M[i, j] = (j ≤ i)``  (eq. ``attn-mask``).

    Tq, Tk: numbers of queries and keys. Returns a (Tq, Tk) boolean array, the
    lower triangle including the diagonal, aligned at the top-left corner
    (``torch.ones(Tq, Tk).tril(0)``).
    """
    Tq = positive_int("Tq", Tq)
    Tk = positive_int("Tk", Tk)
    return np.tri(Tq, Tk, dtype=bool)


def attention_weights(Q, K, causal: bool = False) -> np.ndarray:
    """Attention weights ``P = softmax(Q Kᵀ / √d)``, row-wise over the keys.

    Q: (B, Tq, d).  K: (B, Tk, d).  causal: mask the keys ``j > i`` of query ``i``.
    Returns P: (B, Tq, Tk); every row is non-negative and sums to one, and the
    masked entries are exactly 0. Shifted by the row maximum, so it never overflows.
    """
    Q, K = _check_qk(Q, K)
    causal = _check_causal(causal)
    S = Q @ _t(K) / np.sqrt(Q.shape[2])
    if causal:
        S = np.where(causal_mask(Q.shape[1], K.shape[1]), S, -np.inf)
    E = np.exp(S - S.max(axis=-1, keepdims=True))  # exp(−∞) = 0 exactly
    return E / E.sum(axis=-1, keepdims=True)


def softmax_rows_vjp(dP, P) -> np.ndarray:
    """Pull ``dP`` back through ``P = softmax(S)`` taken over the last axis.

    Row by row this is the softmax rule (eq. ``grad-softmax``),
    ``dS = P ⊙ (dP − rowsum(dP ⊙ P))``: the Jacobian of a row is
    ``diag(p) − p pᵀ``, dense, so the VJP is not ``dP ⊙ P ⊙ (1 − P)``.
    dP, P: same shape (..., T), P the softmax output (its rows sum to one).
    Returns dS with that shape. Where ``P`` is exactly 0 (a masked score), so is dS.
    """
    P = as_real_array("P", P)
    dP = as_real_array("dP", dP)
    check_same_shape("dP", dP, "P", P)
    return P * (dP - np.sum(dP * P, axis=-1, keepdims=True))


def attention(Q, K, V, causal: bool = False) -> np.ndarray:
    """Scaled dot-product attention ``O = softmax(Q Kᵀ / √d) V``  (eq. ``attn-forward``).

    Q: (B, Tq, d) queries.  K: (B, Tk, d) keys.  V: (B, Tk, dv) values.
    causal: if True, query ``i`` attends to keys ``j ≤ i`` only (eq. ``attn-mask``).
    Returns O: (B, Tq, dv), row ``i`` the ``P``-weighted average of the values.
    """
    Q, K, V = _check_qkv(Q, K, V)
    return attention_weights(Q, K, causal) @ V


def attention_vjp(
    dO, Q, K, V, causal: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients through attention  (eqs. ``attn-grad-v``, ``attn-grad-s``, ``attn-grad-qk``).

    dO: (B, Tq, dv), the gradient with respect to ``O``; Q, K, V and causal as in
    :func:`attention`. ``P`` is recomputed here, and the softmax backward uses the
    row sums ``rowsum(dO ⊙ O)``, equal to ``rowsum(dP ⊙ P)`` (eq. ``attn-rowsum``):

    ``dV = Pᵀ dO``,  ``dP = dO Vᵀ``,  ``dS = P ⊙ (dP − rowsum(dO ⊙ O))``,
    ``dQ = dS K / √d``,  ``dK = dSᵀ Q / √d``.

    Returns ``(dQ, dK, dV)`` with the shapes of ``Q``, ``K``, ``V``.
    """
    Q, K, V = _check_qkv(Q, K, V)
    dO = as_real_array("dO", dO, ndim=3)
    expected = (Q.shape[0], Q.shape[1], V.shape[2])
    if dO.shape != expected:
        raise ValueError(
            f"dO must have the shape of O, (B, Tq, dv) = {expected}; got {dO.shape}"
        )
    P = attention_weights(Q, K, causal)  # (B, Tq, Tk)
    O = P @ V  # (B, Tq, dv)
    dV = _t(P) @ dO  # (B, Tk, dv)
    dP = dO @ _t(V)  # (B, Tq, Tk)
    D = np.sum(dO * O, axis=-1, keepdims=True)  # (B, Tq, 1), = rowsum(dP ⊙ P)
    dS = P * (dP - D)  # (B, Tq, Tk); 0 where masked
    scale = 1.0 / np.sqrt(Q.shape[2])
    dQ = dS @ K * scale  # (B, Tq, d)
    dK = _t(dS) @ Q * scale  # (B, Tk, d)
    return dQ, dK, dV
