"""Scaled dot-product attention and its VJP, batched over any leading axes.

For queries ``Q`` (..., Tq, d_k), keys ``K`` (..., Tk, d_k) and values ``V``
(..., Tk, d_v), where ``...`` is any number of leading axes
(none, a batch ``B``, or a batch and heads ``B, H``) that broadcast together,
as in PyTorch's ``scaled_dot_product_attention``:

- scores ``S = Q Kᵀ / √d_k`` (..., Tq, Tk), one row per query
  (eq. ``attn-forward``);
- weights ``P = softmax(S)`` row by row, over the keys (the last axis);
- output ``O = P V`` (..., Tq, d_v): each query's weighted average of the
  values.

With ``causal=True``, query ``i`` may look at keys ``j ≤ i`` only
(the mask is top-left aligned, ``ones(Tq, Tk).tril(0)``, as in PyTorch's
``scaled_dot_product_attention(..., is_causal=True)``); the other scores are
set to ``−∞`` before the softmax, so their weights are exactly zero
(eq. ``attn-mask``). Key 0 is visible to every query, so no row is ever fully
masked.

The backward pass (eqs. ``attn-grad-v``, ``attn-grad-s``, ``attn-grad-qk``)
is

    dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ⊙ (dP − rowsum(dO ⊙ O)),
    dQ = dS K / √d_k,   dK = dSᵀ Q / √d_k,

every "ᵀ" a swap of the last two axes, every product taken matrix by matrix
over the leading axes. The softmax backward is the row-wise rule of the
losses chapter, not an element-wise one, and its row sums ``rowsum(dP ⊙ P)``
equal ``rowsum(dO ⊙ O)`` (eq. ``attn-rowsum``), which needs only the output
and its gradient, not a pass over ``P``.
(A tiled backward pass such as FlashAttention's avoids storing ``P`` by
recomputing it; the identity saves it that pass.) Where a leading axis was
broadcast (one set of keys shared by every head), its gradient is summed back
over the copies (eq. ``mb-unbroadcast``). Each gradient has the dtype of its
variable: float32 stays float32.
"""

from __future__ import annotations

import math

import numpy as np

from backprop._checks import as_real_array, check_same_shape, positive_int
from backprop.broadcasting import unbroadcast

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


def _sum_to(dX: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``dX`` summed over the axes ``X`` was broadcast on, in its dtype."""
    if dX.shape != X.shape:
        dX = unbroadcast(dX, X.shape)  # eq. mb-unbroadcast
    return dX.astype(X.dtype, copy=False)


def _check_causal(causal) -> bool:
    if not isinstance(causal, bool | np.bool_):
        raise ValueError(f"causal must be True or False; got {causal!r}")
    return bool(causal)


def _matrices(name: str, X, rows: str, cols: str) -> np.ndarray:
    """A stack of matrices ``(..., rows, cols)``: a real array, rank ≥ 2."""
    X = as_real_array(name, X)
    if X.ndim < 2:
        raise ValueError(
            f"{name} must have shape (..., {rows}, {cols}), at least 2-D; "
            f"got {X.ndim}-D array of shape {X.shape}"
        )
    return X


def _leading_axes(**arrays: np.ndarray) -> tuple[int, ...]:
    """The broadcast shape of the arrays' leading (batch, head) axes."""
    try:
        return np.broadcast_shapes(*(X.shape[:-2] for X in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{n} {X.shape[:-2]}" for n, X in arrays.items())
        raise ValueError(
            f"the leading (batch) axes must broadcast together; got {shapes}"
        ) from None


def _check_qk(Q, K) -> tuple[np.ndarray, np.ndarray]:
    Q = _matrices("Q", Q, "Tq", "d_k")
    K = _matrices("K", K, "Tk", "d_k")
    if K.shape[-1] != Q.shape[-1]:
        raise ValueError(
            "queries and keys must have the same width d: Q has shape "
            f"{Q.shape} (d = {Q.shape[-1]}) but K has shape {K.shape} (d = "
            f"{K.shape[-1]})"
        )
    _leading_axes(Q=Q, K=K)
    return Q, K


def _check_qkv(Q, K, V) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Q, K = _check_qk(Q, K)
    V = _matrices("V", V, "Tk", "d_v")
    if V.shape[-2] != K.shape[-2]:
        raise ValueError(
            f"need one value per key: K has shape {K.shape} (Tk = "
            f"{K.shape[-2]}) but V has shape {V.shape} ({V.shape[-2]} "
            "values)"
        )
    _leading_axes(Q=Q, K=K, V=V)
    return Q, K, V


def causal_mask(Tq: int, Tk: int) -> np.ndarray:
    """Which keys each query may see: ``M[i, j] = (j ≤ i)``
    (eq. ``attn-mask``).

    Tq, Tk: numbers of queries and keys. Returns a (Tq, Tk) boolean array,
    the lower triangle including the diagonal, aligned at the top-left corner
    (``torch.ones(Tq, Tk).tril(0)``).
    """
    Tq = positive_int("Tq", Tq)
    Tk = positive_int("Tk", Tk)
    return np.tri(Tq, Tk, dtype=bool)


def attention_weights(Q, K, causal: bool = False) -> np.ndarray:
    """Attention weights ``P = softmax(Q Kᵀ / √d_k)``, row by row over the
    keys.

    Q: (..., Tq, d_k).  K: (..., Tk, d_k), leading axes broadcasting with
    those of Q. causal: mask the keys ``j > i`` of query ``i``. Returns P:
    (..., Tq, Tk); every row is non-negative and sums to one, and the masked
    entries are exactly 0. Shifted by the row maximum, so it never overflows.
    """
    Q, K = _check_qk(Q, K)
    causal = _check_causal(causal)
    S = Q @ _t(K) / math.sqrt(Q.shape[-1])  # a Python float keeps float32
    if causal:
        S = np.where(causal_mask(Q.shape[-2], K.shape[-2]), S, -np.inf)
    E = np.exp(S - S.max(axis=-1, keepdims=True))  # exp(−∞) = 0 exactly
    return E / E.sum(axis=-1, keepdims=True)


def softmax_rows_vjp(dP, P) -> np.ndarray:
    """Pull ``dP`` back through ``P = softmax(S)`` taken over the last axis.

    Row by row this is the softmax rule (eq. ``grad-softmax``),
    ``dS = P ⊙ (dP − rowsum(dP ⊙ P))``: the Jacobian of a row is
    ``diag(p) − p pᵀ``, dense, so the VJP is not ``dP ⊙ P ⊙ (1 − P)``.
    dP, P: same shape (..., T), P the softmax output (its rows sum to one).
    Returns dS with that shape. Where ``P`` is exactly 0 (a masked score), so
    is dS.
    """
    P = as_real_array("P", P)
    dP = as_real_array("dP", dP)
    check_same_shape("dP", dP, "P", P)
    return P * (dP - np.sum(dP * P, axis=-1, keepdims=True))


def attention(Q, K, V, causal: bool = False) -> np.ndarray:
    """Scaled dot-product attention ``O = softmax(Q Kᵀ / √d_k) V``
    (eq. ``attn-forward``).

    Q: (..., Tq, d_k) queries.  K: (..., Tk, d_k) keys.  V: (..., Tk, d_v)
    values. ``...``: any leading axes, e.g. (B,) or (B, n_heads),
    broadcasting together. causal: if True, query ``i`` attends to keys ``j ≤
    i`` only (eq. ``attn-mask``). Returns O: (..., Tq, d_v), row ``i`` the
    ``P``-weighted average of the values. Like
    ``torch.nn.functional.scaled_dot_product_attention(Q, K, V,
    is_causal=causal)``.
    """
    Q, K, V = _check_qkv(Q, K, V)
    return attention_weights(Q, K, causal) @ V


def attention_vjp(
    dO, Q, K, V, causal: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients through attention
    (eqs. ``attn-grad-v``, ``attn-grad-s``, ``attn-grad-qk``).

    dO: (..., Tq, d_v), the gradient with respect to ``O``; Q, K, V and
    causal as in :func:`attention`. ``P`` is recomputed here, and the softmax
    backward uses the row sums ``rowsum(dO ⊙ O)``, equal to ``rowsum(dP ⊙
    P)`` (eq. ``attn-rowsum``):

    ``dV = Pᵀ dO``,  ``dP = dO Vᵀ``,  ``dS = P ⊙ (dP − rowsum(dO ⊙ O))``,
    ``dQ = dS K / √d_k``,  ``dK = dSᵀ Q / √d_k``.

    Returns ``(dQ, dK, dV)`` with the shapes and dtypes of ``Q``, ``K``,
    ``V``; an input whose leading axes were broadcast gets the sum over its
    copies.
    """
    Q, K, V = _check_qkv(Q, K, V)
    dO = _matrices("dO", dO, "Tq", "d_v")
    expected = (*_leading_axes(Q=Q, K=K, V=V), Q.shape[-2], V.shape[-1])
    if dO.shape != expected:
        raise ValueError(
            f"dO must have the shape of O, (..., Tq, d_v) = {expected}; got "
            f"{dO.shape}"
        )
    P = attention_weights(Q, K, causal)  # (..., Tq, Tk)
    O = P @ V  # (..., Tq, d_v)
    dV = _t(P) @ dO  # (..., Tk, d_v)
    dP = dO @ _t(V)  # (..., Tq, Tk)
    # (..., Tq, 1), = rowsum(dP ⊙ P)
    D = np.sum(dO * O, axis=-1, keepdims=True)
    dS = P * (dP - D)  # (..., Tq, Tk); 0 where masked
    scale = 1.0 / math.sqrt(Q.shape[-1])
    dQ = dS @ K * scale  # (..., Tq, d_k)
    dK = _t(dS) @ Q * scale  # (..., Tk, d_k)
    return _sum_to(dQ, Q), _sum_to(dK, K), _sum_to(dV, V)
