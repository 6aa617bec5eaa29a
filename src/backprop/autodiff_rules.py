"""The autodiff engine's rule tables: each primitive's forward, VJPs, JVPs.

:data:`~backprop.autodiff.RULES` maps a primitive's name to
``(forward, vjps)``,
:data:`~backprop.autodiff.JVP_RULES` to its JVPs. Everything here works on
numpy arrays; the tensor, the graph and the order of the calls are in
:mod:`backprop.autodiff`. Where a chapter derived a VJP, the table calls that
chapter's ``*_vjp`` function, so each derivation is written once.

A rule is given the forward output as well as the inputs, as HIPS autograd's
are, so that ``exp``, ``tanh``, ``sigmoid`` and ``softmax`` read their
derivative off the output instead of evaluating the function again. Most
primitives have one rule per input, ``vjp_i(g, out, *inputs, **params)`` and
``jvp_i(t_i, out, *inputs, **params)``, and the engine calls only those of
the inputs that need one: no gradient is formed for a constant. A fused op,
whose chapter function returns every gradient at once, has one function
instead; the engine keeps what it needs.
"""

from __future__ import annotations

import math
import string
from collections import Counter
from collections.abc import Callable

import numpy as np

from backprop import attention as attn
from backprop import conv, implicit, layers, losses, norm, pooling, recurrent
from backprop.broadcasting import reshape_vjp, transpose_vjp

__all__ = ["RULES", "JVP_RULES"]


# --- VJPs and JVPs that take more than a line ------------------------------


def _power_slope(x, c):
    """``d(xᶜ)/dx = c x^(c−1)``, taken as 0 for ``c = 0`` even at ``x = 0``.

    The exponent ``c − 1`` is raised to 0 where ``c = 0``: ``0 · x⁰ = 0``,
    where ``0 · 0⁻¹`` would be NaN.
    """
    return c * x ** (c - 1 + (c == 0))


def _reshape(x, shape):
    # positional: numpy < 2.1 names the argument newshape, not shape
    return np.reshape(x, shape)


def _sum_vjp(g, out, x, axis=None, keepdims=False):
    """A sum sends the same ``g`` back to every entry it added."""
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    return np.broadcast_to(g, x.shape)


def _mean_vjp(g, out, x, axis=None, keepdims=False):
    n = (
        x.size
        if axis is None
        else math.prod(x.shape[a] for a in np.atleast_1d(axis))
    )
    return _sum_vjp(g, out, x, axis, keepdims) / n


def _as_matrices(g, A, B):
    """``g``, ``A``, ``B``; a vector made one row (A) or one column (B)."""
    if B.ndim == 1:
        B, g = B[:, None], np.expand_dims(g, -1)
    if A.ndim == 1:
        A, g = A[None, :], np.expand_dims(g, -2)
    return g, A, B


def _matmul_vjp_a(g, C, A, B):
    """``C = A B``: ``dA = dC Bᵀ`` (eq. ``grad-a``, W = Bᵀ), one product."""
    g2, _, B2 = _as_matrices(g, A, B)
    dA = g2 @ np.swapaxes(B2, -1, -2)
    return dA[..., 0, :] if A.ndim == 1 else dA


def _matmul_vjp_b(g, C, A, B):
    """``C = A B``: ``dB = Aᵀ dC``, eq. ``grad-w`` transposed. One product.

    Stacked matrices broadcast; the engine sums their gradients back over the
    copies.
    """
    g2, A2, _ = _as_matrices(g, A, B)
    dB = np.swapaxes(A2, -1, -2) @ g2
    return dB[..., 0] if B.ndim == 1 else dB


def _getitem_vjp(g, out, x, index):
    """Indexing picks entries; its adjoint adds ``g`` back where it took."""
    return _scatter_add(g, index, x.shape, np.result_type(g, x))


def _scatter_add(x, index, shape, dtype=None):
    """Zeros of ``shape`` with ``x`` added where ``[index]`` reads; repeated
    entries add (``np.add.at``). The adjoint of indexing, and linear."""
    out = np.zeros(shape, dtype=x.dtype if dtype is None else dtype)
    np.add.at(out, index, x)
    return out


def _sigmoid(x):
    """``layers.sigmoid``, which never overflows, extended to 0-d arrays."""
    return layers.sigmoid(np.atleast_1d(x)).reshape(x.shape)


def _gelu(x):
    """``layers.gelu``, extended to 0-d arrays."""
    return layers.gelu(np.atleast_1d(x)).reshape(x.shape)


def _gelu_vjp(g, x):
    """``layers.gelu_vjp``: ``g ⊙ gelu'(x)``, also for 0-d arrays. The
    Jacobian is diagonal, so this is the JVP too."""
    g1, x1 = np.atleast_1d(g), np.atleast_1d(x)
    return layers.gelu_vjp(g1, x1).reshape(np.shape(g))


def _rows(f):
    """Apply a row-wise (B, n_L) function of the losses chapter along
    axis -1."""

    def along_last_axis(*arrays):
        n_L = arrays[-1].shape[-1]
        return f(*(a.reshape(-1, n_L) for a in arrays)).reshape(
            arrays[-1].shape
        )

    return along_last_axis


def _sce(logits, labels):
    return np.array(
        losses.softmax_cross_entropy(logits, labels)[0], logits.dtype
    )


def _sce_vjp(g, E, logits, labels):
    """``g (softmax(Z) − Y)/B``, the fused gradient of the cross-entropy
    (eq. ``grad-ce``)."""
    return g * losses.softmax_cross_entropy(logits, labels)[1]


def _mse_vjp(g, p, y):
    """``losses.mse_vjp`` on the broadcast arrays: the mean runs over every
    entry of the broadcast difference, as in the forward pass."""
    P, Y = (np.atleast_1d(a) for a in np.broadcast_arrays(p, y))
    return losses.mse_vjp(g, P, Y).reshape(
        np.broadcast_shapes(p.shape, y.shape)
    )


def _norm_jvp(tangents, X, gamma, eps, axis):
    """``dY = dγ ⊙ X̂ + γ ⊙ dX̂ + dβ`` with ``dX̂ = (1/σ) M dX``
    (eq. ``rn-ln-diff``).

    ``M`` is symmetric, so the JVP of the standardisation is its VJP.
    """
    dX, dgamma, dbeta = tangents
    Xhat, sigma = norm._standardize(X, axis, eps)
    return (
        dgamma * Xhat
        + gamma * norm._standardize_vjp(dX, Xhat, sigma, axis)
        + dbeta
    )


def _rnn_jvp(tangents, H, X, h0, W_xh, W_hh, b):
    """Forward mode through time, from the states ``H`` of the forward pass:

    ``dh_t = (1 − h_t²) ⊙ (dx_t W_xhᵀ + x_t dW_xhᵀ + dh_{t−1} W_hhᵀ + h_{t−1}
    dW_hhᵀ
    + db)``, starting from the tangent ``dh_0`` of ``h0``.
    """
    dX, dh0, dW_xh, dW_hh, db = tangents
    dH = np.empty_like(H)
    dh, h_prev = dh0, h0
    for t in range(X.shape[1]):
        dZ = (
            dX[:, t] @ W_xh.T
            + X[:, t] @ dW_xh.T
            + dh @ W_hh.T
            + h_prev @ dW_hh.T
            + db
        )
        dh = dH[:, t] = (1 - H[:, t] ** 2) * dZ
        h_prev = H[:, t]
    return dH


def _lstm_joined(X, h0, c0, W_xh, W_hh, b):
    """``recurrent.lstm``'s ``(H, C)`` as one array ``[H, C]``
    (B, T, 2 n_h): the engine's ops have one output."""
    return np.concatenate(recurrent.lstm(X, h0, c0, W_xh, W_hh, b), axis=-1)


def _lstm_joined_vjp(g, X, h0, c0, W_xh, W_hh, b):
    """``recurrent.lstm_vjp`` with ``g = [dH, dC]`` split in two."""
    dH, dC = np.split(g, 2, axis=-1)
    return recurrent.lstm_vjp(dH, X, h0, c0, W_xh, W_hh, b, dC=dC)


def _lstm_jvp(tangents, HC, X, h0, c0, W_xh, W_hh, b):
    """Forward mode through the LSTM, the differential of each step:

    ``dA = dx_t W_xhᵀ + x_t dW_xhᵀ + dh W_hhᵀ + h dW_hhᵀ + db``; each gate's
    tangent is its slope times its block of ``dA``;
    ``dc_t = df ⊙ c_{t−1} + f ⊙ dc_{t−1} + di ⊙ g + i ⊙ dg`` and
    ``dh_t = do ⊙ tanh(c_t) + o ⊙ (1 − tanh²(c_t)) ⊙ dc_t``.
    """
    dX, dh, dc, dW_xh, dW_hh, db = tangents
    gates, H, C = recurrent._lstm_forward(X, h0, c0, W_xh, W_hh, b)
    out = np.empty_like(HC)
    n_h, h, c = H.shape[-1], h0, c0
    for t in range(X.shape[1]):
        dA = (
            dX[:, t] @ W_xh.T
            + X[:, t] @ dW_xh.T
            + dh @ W_hh.T
            + h @ dW_hh.T
            + db
        )
        i, f, g, o = np.split(gates[:, t], 4, axis=1)
        di, df, dg, do = np.split(dA, 4, axis=1)
        di, df, do = di * i * (1 - i), df * f * (1 - f), do * o * (1 - o)
        dg = dg * (1 - g**2)
        dc = df * c + f * dc + di * g + i * dg
        tanh_c = np.tanh(C[:, t])
        dh = do * tanh_c + o * (1 - tanh_c**2) * dc
        out[:, t, :n_h], out[:, t, n_h:] = dh, dc
        h, c = H[:, t], C[:, t]
    return out


def _gru_jvp(tangents, H, X, h0, W_xh, W_hh, b_xh, b_hh):
    """Forward mode through the GRU, the differential of each step:

    ``dr = r(1 − r) ⊙ (dA_x,r + dA_h,r)``, likewise ``dz``;
    ``dn = (1 − n²) ⊙ (dA_x,n + dr ⊙ A_h,n + r ⊙ dA_h,n)``;
    ``dh_t = (1 − z) ⊙ dn + z ⊙ dh_{t−1} + dz ⊙ (h_{t−1} − n)``.
    """
    dX, dh, dW_xh, dW_hh, db_xh, db_hh = tangents
    gates, A_hn, _ = recurrent._gru_forward(X, h0, W_xh, W_hh, b_xh, b_hh)
    out = np.empty_like(H)
    h = h0
    for t in range(X.shape[1]):
        dA_x = dX[:, t] @ W_xh.T + X[:, t] @ dW_xh.T + db_xh
        dA_h = dh @ W_hh.T + h @ dW_hh.T + db_hh
        r, z, n = np.split(gates[:, t], 3, axis=1)
        (dx_r, dx_z, dx_n), (dh_r, dh_z, dh_n) = (
            np.split(dA_x, 3, axis=1),
            np.split(dA_h, 3, axis=1),
        )
        dr, dz = r * (1 - r) * (dx_r + dh_r), z * (1 - z) * (dx_z + dh_z)
        dn = (1 - n**2) * (dx_n + dr * A_hn[:, t] + r * dh_n)
        dh = out[:, t] = (1 - z) * dn + z * dh + dz * (h - n)
        h = H[:, t]
    return out


def _attention_jvp(tangents, O, Q, K, V, causal):
    """Forward mode through attention, the differential of each step in turn:

    ``dS = (dQ Kᵀ + Q dKᵀ)/√d_k``, ``dP = P ⊙ (dS − rowsum(P ⊙ dS))``,
    ``dO = dP V + P dV``. The softmax's row Jacobian is symmetric, so its JVP
    is ``softmax_rows_vjp``.
    """
    dQ, dK, dV = tangents
    P = attn.attention_weights(Q, K, causal)
    dS = (
        dQ @ np.swapaxes(K, -1, -2) + Q @ np.swapaxes(dK, -1, -2)
    ) / math.sqrt(Q.shape[-1])
    return attn.softmax_rows_vjp(dS, P) @ V + P @ dV


# --- einsum: one rule for every index expression ---------------------------


def _einsum_parts(spec: str, shapes) -> tuple[list[str], str]:
    """Explicit subscripts (``...`` as unused letters), and the output."""
    spec = spec.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    subs = inputs.split(",")
    if len(subs) != len(shapes):
        raise ValueError(
            f"einsum {spec!r} names {len(subs)} operands but got "
            f"{len(shapes)}"
        )
    free = [c for c in string.ascii_letters if c not in spec]
    ranks = [
        len(shape) - len(s.replace("...", ""))
        for s, shape in zip(subs, shapes)
    ]
    ell = "".join(
        free[: max([r for s, r in zip(subs, ranks) if "..." in s] or [0])]
    )
    subs = [
        s.replace("...", ell[len(ell) - r :] if r else "")
        for s, r in zip(subs, ranks)
    ]
    # implicit mode: the broadcast axes, then the letters seen once
    if not arrow:
        counts = Counter("".join(subs))
        output = ell + "".join(
            sorted(c for c, k in counts.items() if k == 1 and c not in ell)
        )
        return subs, output
    return subs, output.replace("...", ell)


def _einsum_vjp(g, spec, xs, needs):
    """The gradient of operand ``i``, for each ``i`` that needs one: contract
    ``g`` with every other operand.

    In index form ``C[out] = Σ Π_j X_j[s_j]``, so ``∂E/∂X_i[s_i]`` is the
    same sum with ``X_i`` replaced by ``G[out]`` — another einsum, into
    ``s_i``. Letters that only ``s_i`` has were summed away in the forward
    pass: their gradient is ``g`` copied along them. A repeated letter
    (``ii``) lies on a diagonal.
    """
    subs, out = _einsum_parts(spec, [x.shape for x in xs])
    sizes = {
        c: n for s, x in zip(subs, xs) for c, n in zip(s, x.shape) if n != 1
    }
    full = [
        np.broadcast_to(x, [sizes.get(c, 1) for c in s])
        for s, x in zip(subs, xs)
    ]
    grads = []
    for i, s in enumerate(subs):
        if not needs[i]:
            grads.append(None)
            continue
        others = [(subs[j], full[j]) for j in range(len(xs)) if j != i]
        letters = "".join(dict.fromkeys(s))
        seen = set(out).union(*(o for o, _ in others))
        only_here = "".join(c for c in letters if c not in seen)
        terms, operands = (
            [out, *(o for o, _ in others)],
            [g, *(x for _, x in others)],
        )
        if only_here:  # copy g along the letters it was summed over
            terms.append(only_here)
            operands.append(
                np.ones([sizes.get(c, 1) for c in only_here], g.dtype)
            )
        gi = np.einsum(",".join(terms) + "->" + letters, *operands)
        # a diagonal: write gi onto it, zeros elsewhere
        if len(letters) < len(s):
            d = np.zeros(full[i].shape, dtype=gi.dtype)
            np.einsum(f"{s}->{letters}", d)[...] = gi
            gi = d
        grads.append(gi)
    return grads


def _einsum_jvp(tangents, spec, xs):
    """An einsum is linear in each operand: a sum, one tangent a term."""
    return [
        np.einsum(spec, *xs[:i], t, *xs[i + 1 :])
        for i, t in enumerate(tangents)
    ]


# --- the rule table: one primitive per entry -------------------------------
#
#   name: (forward(*inputs, **params), the VJPs)
#
# The VJPs: one per input, vjp_i(g, out, *inputs, **params) -> ∂E/∂input_i,
# with the input's shape or one that broadcasts to it. The engine calls only
# those of the inputs that need a gradient. A fused op has one function for
# all of them, vjp(g, out, *inputs, needs, **params) -> every ∂E/∂input; the
# engine drops the ones not needed.

RULES: dict[str, tuple[Callable, tuple[Callable, ...] | Callable]] = {
    "add":       (np.add,      (lambda g, z, x, y: g,
                                lambda g, z, x, y: g)),
    "sub":       (np.subtract, (lambda g, z, x, y: g,
                                lambda g, z, x, y: -g)),
    "mul":       (np.multiply, (lambda g, z, x, y: g * y,
                                lambda g, z, x, y: g * x)),
    "div":       (np.divide,   (lambda g, z, x, y: g / y,
                                lambda g, z, x, y: -g * z / y)),
    "pow":       (np.power,    (lambda g, z, x, y: g * _power_slope(x, y),
                                lambda g, z, x, y: g * z * np.log(x))),
    "pow_const": (lambda x, c: x**c,
                               (lambda g, y, x, c: g * _power_slope(x, c),)),
    "matmul":    (np.matmul,   (_matmul_vjp_a, _matmul_vjp_b)),
    "exp":       (np.exp,      (lambda g, y, x: g * y,)),
    "log":       (np.log,      (lambda g, y, x: g / x,)),
    "tanh":      (np.tanh,     (lambda g, y, x: g * (1 - y**2),)),
    "sigmoid":   (_sigmoid,    (lambda g, y, x: g * y * (1 - y),)),
    "relu":      (lambda x: np.maximum(x, 0),
                               (lambda g, y, x: g * (x > 0),)),
    "gelu":      (_gelu,       (lambda g, y, x: _gelu_vjp(g, x),)),
    "sum":       (np.sum,      (_sum_vjp,)),
    "mean":      (np.mean,     (_mean_vjp,)),
    "reshape":   (_reshape,    (lambda g, y, x, shape:
                                reshape_vjp(np.atleast_1d(g), x.shape),)),
    "transpose": (np.transpose,
                               (lambda g, y, x, axes=None:
                                transpose_vjp(g, axes),)),
    "getitem":   (lambda x, index: x[index], (_getitem_vjp,)),
    # a change of float dtype; its VJP casts back
    "astype":    (lambda x, dtype: x.astype(dtype),
                  (lambda g, y, x, dtype: g.astype(x.dtype),)),
    # the adjoint of getitem, so that its VJP can be differentiated again
    "scatter_add": (_scatter_add,
                  (lambda g, y, x, index, shape: g[index],)),
    "einsum":    (lambda *xs, spec: np.einsum(spec, *xs),
                  lambda g, z, *xs, needs, spec:
                  _einsum_vjp(g, spec, xs, needs)),
    "softmax":   (_rows(losses.softmax),
                  (lambda g, y, x: attn.softmax_rows_vjp(g, y),)),
    "softmax_cross_entropy":
                 (_sce,        (_sce_vjp,)),
    "mse":       (lambda p, y: np.mean((p - y) ** 2),
                               (lambda g, E, p, y: _mse_vjp(g, p, y),
                                lambda g, E, p, y: -_mse_vjp(g, p, y))),
    # linear_vjp, line by line
    "linear":    (layers.linear,
                               (lambda g, Z, A, W, b: g @ W,
                                lambda g, Z, A, W, b: g.T @ A,
                                lambda g, Z, A, W, b: g.sum(axis=0))),
    # the layers beyond the MLP: each chapter's op and its VJP, which
    # returns every gradient at once
    "layer_norm": (norm.layer_norm,
                  lambda g, Y, X, gamma, beta, needs, eps:
                  norm.layer_norm_vjp(g, X, gamma, eps)),
    "batch_norm": (norm.batch_norm,
                  lambda g, Y, X, gamma, beta, needs, eps:
                  norm.batch_norm_vjp(g, X, gamma, eps)),
    "conv2d":    (conv.conv2d,
                  lambda g, Y, X, W, b, needs, **p:
                  conv.conv2d_vjp(g, X, W, **p)),
    "rnn":       (recurrent.rnn,
                  lambda g, H, *inputs, needs:
                  recurrent.rnn_vjp(g, *inputs)),
    # one output, [H, C]; autodiff.lstm splits it
    "lstm":      (_lstm_joined,
                  lambda g, HC, *inputs, needs:
                  _lstm_joined_vjp(g, *inputs)),
    "gru":       (recurrent.gru,
                  lambda g, H, *inputs, needs:
                  recurrent.gru_vjp(g, *inputs)),
    "attention": (attn.attention,
                  lambda g, O, Q, K, V, needs, causal:
                  attn.attention_vjp(g, Q, K, V, causal)),
    "embedding": (lambda W_emb, ids: layers.embedding(ids, W_emb),
                  (lambda g, Y, W_emb, ids:
                   layers.embedding_vjp(g, ids, W_emb),)),
    "max_pool2d": (pooling.max_pool2d,
                  (lambda g, Y, X, **p: pooling.max_pool2d_vjp(g, X, **p),)),
    "avg_pool2d": (pooling.avg_pool2d,
                  (lambda g, Y, X, **p: pooling.avg_pool2d_vjp(g, X, **p),)),
    # X ⊙ D/(1 − p) for a constant mask D: diagonal, so it is its own VJP
    "dropout":   (lambda X, mask, p: layers.dropout_vjp(X, mask, p),
                  (lambda g, Y, X, mask, p:
                   layers.dropout_vjp(g, mask, p),)),
    # x = M⁻¹ r: one solve with Mᵀ, the forward's x reused
    "solve":     (implicit.solve,
                  lambda g, x, M, r, needs: implicit.solve_vjp(g, M, r, x)),
}  # fmt: skip

# Forward mode: the tangent of the output. One function per input,
# jvp_i(t_i, out, *inputs, **params) = J_i t_i, summed over the inputs that
# have a tangent (eq. ``ad-jvp``); or, for a fused op, one function
# jvp(tangents, out, *inputs, **params), given zeros for missing tangents.
JVP_RULES: dict[str, tuple[Callable, ...] | Callable] = {
    "add":       (lambda t, z, x, y: t, lambda t, z, x, y: t),
    "sub":       (lambda t, z, x, y: t, lambda t, z, x, y: -t),
    "mul":       (lambda t, z, x, y: t * y, lambda t, z, x, y: x * t),
    "div":       (lambda t, z, x, y: t / y,
                  lambda t, z, x, y: -t * z / y),
    "pow":       (lambda t, z, x, y: t * _power_slope(x, y),
                  lambda t, z, x, y: t * z * np.log(x)),
    "pow_const": (lambda t, y, x, c: t * _power_slope(x, c),),
    "matmul":    (lambda t, z, x, y: t @ y, lambda t, z, x, y: x @ t),
    "exp":       (lambda t, y, x: t * y,),
    "log":       (lambda t, y, x: t / x,),
    "tanh":      (lambda t, y, x: t * (1 - y**2),),
    "sigmoid":   (lambda t, y, x: t * y * (1 - y),),
    "relu":      (lambda t, y, x: t * (x > 0),),
    "gelu":      (lambda t, y, x: _gelu_vjp(t, x),),
    "sum":       (lambda t, y, x, **p: np.sum(t, **p),),
    "mean":      (lambda t, y, x, **p: np.mean(t, **p),),
    "reshape":   (lambda t, y, x, shape: np.reshape(t, shape),),
    "transpose": (lambda t, y, x, axes=None: np.transpose(t, axes),),
    "getitem":   (lambda t, y, x, index: t[index],),
    "astype":    (lambda t, y, x, dtype: t.astype(dtype),),
    "scatter_add": (lambda t, y, x, index, shape:
                  _scatter_add(t, index, shape),),
    "einsum":    lambda ts, z, *xs, spec: sum(_einsum_jvp(ts, spec, xs)),
    # its Jacobian is symmetric
    "softmax":   (lambda t, y, x: attn.softmax_rows_vjp(t, y),),
    "softmax_cross_entropy":
                 (lambda t, E, z, labels:
                  np.sum(_sce_vjp(1, E, z, labels) * t),),
    "mse":       (lambda t, E, p, y: np.mean(2 * (p - y) * t),
                  lambda t, E, p, y: -np.mean(2 * (p - y) * t)),
    "linear":    (lambda t, Z, A, W, b: t @ W.T,
                  lambda t, Z, A, W, b: A @ t.T,
                  lambda t, Z, A, W, b: t),
    "layer_norm": lambda ts, Y, X, gamma, beta, eps:
                  _norm_jvp(ts, X, gamma, eps, axis=-1),
    "batch_norm": lambda ts, Y, X, gamma, beta, eps:
                  _norm_jvp(ts, X, gamma, eps, axis=0),
    "conv2d":    (lambda t, Y, X, W, b, **p: conv.conv2d(t, W, None, **p),
                  lambda t, Y, X, W, b, **p: conv.conv2d(X, t, None, **p),
                  lambda t, Y, X, W, b, **p: t[:, None, None]),
    "rnn":       _rnn_jvp,
    "lstm":      _lstm_jvp,
    "gru":       _gru_jvp,
    "attention": _attention_jvp,
    "embedding": (lambda t, Y, W_emb, ids: layers.embedding(ids, t),),
    # a selection's tangent is the same selection; the others are linear
    "max_pool2d": (lambda t, Y, X, **p: pooling._max_pool2d_jvp(t, X, **p),),
    "avg_pool2d": (lambda t, Y, X, **p: pooling.avg_pool2d(t, **p),),
    "dropout":   (lambda t, Y, X, mask, p: layers.dropout_vjp(t, mask, p),),
    "solve":     implicit._solve_jvp,
}  # fmt: skip
