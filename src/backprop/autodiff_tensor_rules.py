"""The engine's VJPs written with Tensor operations, to differentiate twice.

``backward(create_graph=True)`` calls these rules instead of the numpy ones
of :mod:`backprop.autodiff_rules`: each VJP is then itself a few recorded
operations of the engine, so the gradient it returns is a
:class:`~backprop.autodiff.Tensor` with a graph, and the engine can take its
derivative again (a Hessian-vector product, a third derivative). The
formulas are the numpy rules' own, line by line; the ordinary first-order
pass keeps the numpy rules, which build no graph and are faster.

``TENSOR_RULES`` maps a primitive's name to one rule per input,
``vjp_i(g, out, *inputs, **params)``, where ``g``, ``out`` (the node
itself) and the inputs are Tensors; a rule returns a Tensor of its input's
shape, or of a shape that broadcasts to it (the engine sums it back, with
Tensor operations too). The fused layers (``layer_norm``, ``conv2d``,
``lstm``, ``attention`` …) have no entry: they are first-order only, and
``FIRST_ORDER_HINTS`` says how to build each from elementary operations.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable

import numpy as np

from backprop import autodiff as ad
from backprop.autodiff_rules import _einsum_parts
from backprop.layers import _GELU_A, _GELU_C

__all__ = [
    "TENSOR_RULES",
    "FIRST_ORDER_HINTS",
    "broadcast_to",
    "unbroadcast",
]


def _const(a, like: ad.Tensor) -> np.ndarray:
    """A constant array in ``like``'s dtype: float32 stays float32."""
    return np.asarray(a, dtype=like.dtype)


def broadcast_to(g: ad.Tensor, shape) -> ad.Tensor:
    """``g`` copied along the axes of ``shape`` it lacks: ``g + 0``.

    An addition of zeros is the broadcast, and its VJP, the sum back over
    the copies, is the engine's own (eq. ``mb-unbroadcast``).
    """
    shape = tuple(shape)
    if g.shape == shape:
        return g
    return ad.add(g, np.zeros(shape, g.dtype))


def unbroadcast(g: ad.Tensor, shape) -> ad.Tensor:
    """``backprop.broadcasting.unbroadcast`` with Tensor operations: sum over
    the leading axes broadcasting added, then over each stretched axis of
    length 1, kept (eq. ``mb-unbroadcast``)."""
    shape = tuple(shape)
    added = g.ndim - len(shape)
    if added:
        g = ad.sum(g, axis=tuple(range(added)))
    stretched = tuple(
        axis
        for axis, (s, S) in enumerate(zip(shape, g.shape))
        if s == 1 and S != 1
    )
    if stretched:
        g = ad.sum(g, axis=stretched, keepdims=True)
    return g.reshape(shape) if g.shape != shape else g


def _swap_last(x: ad.Tensor) -> ad.Tensor:
    """``x`` with its last two axes swapped: a stack of transposes."""
    axes = list(range(x.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return ad.transpose(x, axes)


def _as_matrices(g, A, B):
    """``g, A, B`` with a vector made one row (A) or one column (B)."""
    if B.ndim == 1:
        B, g = B.reshape((B.shape[0], 1)), g.reshape(g.shape + (1,))
    if A.ndim == 1:
        A = A.reshape((1, A.shape[0]))
        g = g.reshape(g.shape[:-1] + (1,) + g.shape[-1:])
    return g, A, B


def _matmul_vjp_a(g, C, A, B):
    """``C = A B``: ``dA = dC Bᵀ`` (eq. ``grad-a``)."""
    g2, _, B2 = _as_matrices(g, A, B)
    dA = g2 @ _swap_last(B2)
    return dA[..., 0, :] if A.ndim == 1 else dA


def _matmul_vjp_b(g, C, A, B):
    """``C = A B``: ``dB = Aᵀ dC`` (eq. ``grad-w``, transposed)."""
    g2, A2, _ = _as_matrices(g, A, B)
    dB = _swap_last(A2) @ g2
    return dB[..., 0] if B.ndim == 1 else dB


def _pow_slope(x, c):
    """``c x^(c−1)``, 0 where ``c = 0`` (see ``autodiff_rules``)."""
    if isinstance(c, ad.Tensor):  # the exponent is a Tensor
        return c * x ** (c - 1 + _const(c.value == 0, c))
    if not ad._is_number(c):
        c = _const(c, x)
    return c * x ** (c - 1 + (c == 0))


def _kept_shape(x, axis) -> tuple[int, ...]:
    """``x``'s shape with the summed axes kept as length 1."""
    if axis is None:
        return (1,) * x.ndim
    axes = {a % x.ndim for a in np.atleast_1d(axis)}
    return tuple(1 if i in axes else n for i, n in enumerate(x.shape))


def _sum_vjp(g, y, x, axis=None, keepdims=False):
    """A sum sends the same ``g`` back to every entry it added."""
    return broadcast_to(g.reshape(_kept_shape(x, axis)), x.shape)


def _mean_vjp(g, y, x, axis=None, keepdims=False):
    n = x.size if axis is None else x.size // math.prod(_kept_shape(x, axis))
    return _sum_vjp(g, y, x, axis, keepdims) / n


def _transpose_vjp(g, y, x, axes=None):
    """The inverse permutation (eq. ``mb-transpose``)."""
    return ad.transpose(g, None if axes is None else np.argsort(axes))


def _softmax_vjp(g, y, x):
    """``y ⊙ (g − rowsum(g ⊙ y))`` along the last axis
    (eq. ``grad-softmax``)."""
    return y * (g - ad.sum(g * y, axis=-1, keepdims=True))


def _sce_vjp(g, E, Z, labels):
    """``g (softmax(Z) − Y)/B`` (eq. ``grad-ce``), softmax an engine op so
    that it can be differentiated again."""
    B = Z.shape[0]
    onehot = np.zeros(Z.shape, Z.dtype)
    onehot[np.arange(B), labels] = 1
    return (ad.softmax(Z) - onehot) * (g / B)


def _mse_vjp(g, E, p, y):
    """``2 g (p − y)/N``, N the size of the broadcast difference."""
    d = p - y
    return d * (g * (2 / d.size))


def _gelu_vjp(g, y, Z):
    """``layers.gelu_vjp``: ``g ⊙ (s + 2 z s s₋ u')`` with ``s = σ(2u)``,
    ``s₋ = σ(−2u)``, ``u = √(2/π)(z + 0.044715 z³)``."""
    u = _GELU_C * (Z + _GELU_A * Z**3)
    s, s_neg = ad.sigmoid(2 * u), ad.sigmoid(-2 * u)
    du = _GELU_C * (1.0 + 3.0 * _GELU_A * Z**2)
    return g * (s + 2.0 * Z * s * s_neg * du)


def _einsum_vjp_i(i):
    """The VJP of operand ``i`` of an einsum: ``g`` contracted with every
    other operand, another einsum (as ``autodiff_rules._einsum_vjp``).

    Letters only operand ``i`` has were summed away: ``g`` is copied along
    them (a product with ones). A repeated letter (``ii``) lies on a
    diagonal: each repeat gets a letter of its own, tied to the first by a
    Kronecker delta, an identity matrix.
    """

    def vjp(g, out, *xs, spec):
        subs, result = _einsum_parts(spec, [x.shape for x in xs])
        sizes = {
            c: n
            for s, x in zip(subs, xs)
            for c, n in zip(s, x.shape)
            if n != 1
        }
        s = subs[i]
        terms, operands = [result], [g]
        for j, (sj, xj) in enumerate(zip(subs, xs)):
            if j != i:
                terms.append(sj)
                operands.append(
                    broadcast_to(xj, [sizes.get(c, 1) for c in sj])
                )
        seen = set("".join(terms))
        only_here = "".join(c for c in dict.fromkeys(s) if c not in seen)
        if only_here:
            terms.append(only_here)
            operands.append(
                np.ones([sizes.get(c, 1) for c in only_here], g.dtype)
            )
        free = (c for c in string.ascii_letters if c not in spec + result)
        target, firsts = "", set()
        for c in s:
            if c in firsts:  # a repeat: a new letter, δ-tied to c
                new = next(free)
                terms.append(c + new)
                operands.append(np.eye(sizes.get(c, 1), dtype=g.dtype))
                target += new
            else:
                firsts.add(c)
                target += c
        return ad.einsum(",".join(terms) + "->" + target, *operands)

    return vjp


def _solve_vjp_M(g, x, M, r):
    """``x = M⁻¹ r``: ``dM = −dr xᵀ`` with ``dr = M⁻ᵀ g``, one more solve
    (``implicit.solve_vjp``); a vector ``r`` is one column."""
    columns = (r.shape[0], -1)
    dr = ad.solve(M.T, g)
    return -(dr.reshape(columns) @ x.reshape(columns).T)


# name: one VJP per input, vjp_i(g, out, *inputs, **params), in Tensors.
TENSOR_RULES: dict[str, tuple[Callable, ...]] = {
    "add":       (lambda g, z, x, y: g, lambda g, z, x, y: g),
    "sub":       (lambda g, z, x, y: g, lambda g, z, x, y: -g),
    "mul":       (lambda g, z, x, y: g * y, lambda g, z, x, y: g * x),
    "div":       (lambda g, z, x, y: g / y,
                  lambda g, z, x, y: -g * z / y),
    "pow":       (lambda g, z, x, y: g * _pow_slope(x, y),
                  lambda g, z, x, y: g * z * ad.log(x)),
    "pow_const": (lambda g, y, x, c: g * _pow_slope(x, c),),
    "matmul":    (_matmul_vjp_a, _matmul_vjp_b),
    "exp":       (lambda g, y, x: g * y,),
    "log":       (lambda g, y, x: g / x,),
    "tanh":      (lambda g, y, x: g * (1 - y * y),),
    "sigmoid":   (lambda g, y, x: g * y * (1 - y),),
    "relu":      (lambda g, y, x: g * _const(x.value > 0, g),),
    "gelu":      (_gelu_vjp,),
    "sum":       (_sum_vjp,),
    "mean":      (_mean_vjp,),
    "reshape":   (lambda g, y, x, shape: g.reshape(x.shape),),
    "transpose": (_transpose_vjp,),
    "getitem":   (lambda g, y, x, index: ad.scatter_add(g, index, x.shape),),
    "astype":    (lambda g, y, x, dtype: ad.astype(g, x.dtype),),
    "scatter_add": (lambda g, y, x, index, shape: g[index],),
    "einsum":    tuple(_einsum_vjp_i(i) for i in range(52)),
    "softmax":   (_softmax_vjp,),
    "softmax_cross_entropy": (_sce_vjp,),
    "mse":       (_mse_vjp, lambda g, E, p, y: -_mse_vjp(g, E, p, y)),
    "linear":    (lambda g, Z, A, W, b: g @ W,
                  lambda g, Z, A, W, b: g.T @ A,
                  lambda g, Z, A, W, b: ad.sum(g, axis=0)),
    "embedding": (lambda g, Y, W_emb, ids:
                  ad.scatter_add(g, ids, W_emb.shape),),
    "dropout":   (lambda g, Y, X, mask, p: g * (mask / (1 - p)),),
    "solve":     (_solve_vjp_M, lambda g, x, M, r: ad.solve(M.T, g)),
}  # fmt: skip

# The fused layers, first-order only: how to write each with the elementary
# operations above, to differentiate it twice.
FIRST_ORDER_HINTS: dict[str, str] = {
    "layer_norm": "standardise with ad.mean, ad.sub, ad.power and ad.div, "
    "then gamma * Xhat + beta",
    "batch_norm": "standardise over axis 0 with ad.mean, ad.sub, "
    "ad.power and ad.div, then gamma * Xhat + beta",
    "conv2d": "write it as a matmul of the unfolded patches "
    "(ad.getitem, ad.reshape, ad.matmul)",
    "rnn": "unroll it: h = ad.tanh(x_t @ W_xh.T + h @ W_hh.T + b) at each t",
    "lstm": "unroll it with ad.sigmoid, ad.tanh, ad.matmul and ad.mul",
    "gru": "unroll it with ad.sigmoid, ad.tanh, ad.matmul and ad.mul",
    "attention": "write ad.softmax(Q @ K.T / sqrt(d_k)) @ V",
    "max_pool2d": "select the maxima with indexing (ad.getitem)",
    "avg_pool2d": "average the windows with indexing and ad.mean",
}
