"""A pre-LN transformer block, forward and backward by hand.

For tokens ``X`` (B, T, n_emb), the block is (eqs. ``tb-forward``,
``tb-mha``, ``tb-mlp``)::

    A_att = LN1(X)                               (B, T, n_emb)
    [Q | K | V] = A_att W_qkvᵀ + b_qkv           (B, T, 3 n_emb), split in 3
    Qh, Kh, Vh = heads(Q), heads(K), heads(V)    (B, n_heads, T, d_k)
    Oh = attention(Qh, Kh, Vh, causal)           (B, n_heads, T, d_k)
    X1 = X + merge(Oh) W_oᵀ + b_o                (B, T, n_emb)
    A_mlp = LN2(X1)                              (B, T, n_emb)
    Z = A_mlp W_1ᵀ + b_1,   Ap = gelu(Z)         (B, T, n_ff)
    Y = X1 + Ap W_2ᵀ + b_2                       (B, T, n_emb)

``heads`` is PyTorch's ``view(B, T, n_heads, d_k).transpose(1, 2)`` and
``merge`` its inverse, ``transpose(1, 2).reshape(B, T, n_emb)``; each is the
other's adjoint (eq. ``tb-heads-adjoint``). Layer norm has ε = 1e-5.

The backward pass (:func:`block_backward`) runs the same lines in reverse,
each line the VJP of one op the book has derived: the linear map, GELU, layer
norm, attention, and the adjoints of the reshape, the transpose, the split
(a concatenation) and of the residual fan-out (a sum).

Every function is pure: it checks its arguments, never modifies them, and
returns new arrays. float32 in, float32 out.
"""

from __future__ import annotations

import numpy as np

from backprop._checks import as_real_array, check_same_shape, positive_int
from backprop.attention import attention, attention_vjp
from backprop.layers import (
    embedding,
    embedding_vjp,
    gelu,
    gelu_vjp,
    linear,
    linear_vjp,
)
from backprop.losses import softmax_cross_entropy
from backprop.norm import layer_norm, layer_norm_vjp

__all__ = [
    "PARAM_KEYS",
    "param_shapes",
    "init_params",
    "split_heads",
    "merge_heads",
    "block_forward",
    "block_backward",
    "block",
    "block_vjp",
    "block_autodiff",
    "lm_init",
    "lm_leaves",
    "lm_loss",
    "lm_generate",
]

#: The keys of a block's parameters, in the order of the forward pass.
PARAM_KEYS = (
    "ln1_gamma",
    "ln1_beta",
    "W_qkv",
    "b_qkv",
    "W_o",
    "b_o",
    "ln2_gamma",
    "ln2_beta",
    "W_1",
    "b_1",
    "W_2",
    "b_2",
)

EPS = 1e-5  # layer norm's ε, PyTorch's default


def param_shapes(n_emb: int, n_ff: int) -> dict[str, tuple[int, ...]]:
    """The shape of each parameter for token width ``n_emb`` and MLP width
    ``n_ff``."""
    n, f = n_emb, n_ff
    return {
        "ln1_gamma": (n,),
        "ln1_beta": (n,),
        "W_qkv": (3 * n, n),
        "b_qkv": (3 * n,),
        "W_o": (n, n),
        "b_o": (n,),
        "ln2_gamma": (n,),
        "ln2_beta": (n,),
        "W_1": (f, n),
        "b_1": (f,),
        "W_2": (n, f),
        "b_2": (n,),
    }


def init_params(
    n_emb: int, n_ff: int, rng: np.random.Generator, scale: float = 1.0
) -> dict[str, np.ndarray]:
    """Random parameters: weights normal with variance ``scale² / fan-in``,
    biases and shifts small normal, scales near 1. For tests and examples."""
    n_emb = positive_int("n_emb", n_emb)
    n_ff = positive_int("n_ff", n_ff)
    params = {}
    for key, shape in param_shapes(n_emb, n_ff).items():
        if key.startswith("W_"):
            params[key] = scale * rng.normal(size=shape) / np.sqrt(shape[1])
        elif key.endswith("gamma"):
            params[key] = 1.0 + 0.1 * rng.normal(size=shape)
        else:
            params[key] = 0.1 * rng.normal(size=shape)
    return params


# --- checks ----------------------------------------------------------------


def _check_tokens(name: str, X) -> np.ndarray:
    X = as_real_array(name, X)
    if X.ndim != 3:
        raise ValueError(
            f"{name} must be 3-D (B, T, n_emb); got {X.ndim}-D array of "
            f"shape {X.shape}"
        )
    return X


def _check_heads(n_heads, n_emb: int) -> int:
    n_heads = positive_int("n_heads", n_heads)
    if n_emb % n_heads:
        raise ValueError(
            f"n_emb must be divisible by n_heads: n_emb = {n_emb} does not "
            f"split into {n_heads} heads of equal width"
        )
    return n_heads


def _check_params(params, n_emb: int) -> dict[str, np.ndarray]:
    if not isinstance(params, dict):
        raise ValueError(
            f"params must be a dict with keys {', '.join(PARAM_KEYS)}; got "
            f"{type(params).__name__}"
        )
    missing = [k for k in PARAM_KEYS if k not in params]
    extra = sorted(str(k) for k in params if k not in PARAM_KEYS)
    if missing or extra:
        raise ValueError(
            f"params must have exactly the keys {', '.join(PARAM_KEYS)}; "
            f"missing {missing or 'none'}, extra {extra or 'none'}"
        )
    P = {k: as_real_array(k, params[k]) for k in PARAM_KEYS}
    W_1 = P["W_1"]
    if W_1.ndim != 2:
        raise ValueError(
            f"W_1 must be 2-D (n_ff, n_emb); got shape {W_1.shape}"
        )
    for key, shape in param_shapes(n_emb, W_1.shape[0]).items():
        if P[key].shape != shape:
            raise ValueError(
                f"{key} must have shape {shape} for n_emb = {n_emb} and "
                f"n_ff = {W_1.shape[0]}; got {P[key].shape}"
            )
    return P


# --- heads: a reshape and a transpose, and its adjoint ---------------------


def split_heads(Z, n_heads: int) -> np.ndarray:
    """(B, T, n_emb) → (B, n_heads, T, d_k), ``d_k = n_emb / n_heads``
    (eq. ``tb-heads``).

    Head ``j`` takes columns ``j d_k … (j + 1) d_k − 1``: PyTorch's
    ``Z.view(B, T, n_heads, d_k).transpose(1, 2)``. A reshape and a
    transpose only move entries, so the adjoint is the inverse,
    :func:`merge_heads` (eq. ``tb-heads-adjoint``).
    """
    Z = _check_tokens("Z", Z)
    B, T, n_emb = Z.shape
    n_heads = _check_heads(n_heads, n_emb)
    Zh = Z.reshape(B, T, n_heads, n_emb // n_heads)
    return Zh.transpose(0, 2, 1, 3).copy()


def merge_heads(Zh) -> np.ndarray:
    """(B, n_heads, T, d_k) → (B, T, n_heads d_k), the inverse and the
    adjoint of :func:`split_heads` (eq. ``tb-heads-adjoint``)."""
    Zh = as_real_array("Zh", Zh)
    if Zh.ndim != 4:
        raise ValueError(
            f"Zh must be 4-D (B, n_heads, T, d_k); got {Zh.ndim}-D array "
            f"of shape {Zh.shape}"
        )
    B, H, T, d_k = Zh.shape
    return Zh.transpose(0, 2, 1, 3).reshape(B, T, H * d_k)


def _lin(A, W, b):
    """``linear`` on every token: (B, T, n_in) → (B, T, n_out)."""
    B, T, n_in = A.shape
    return linear(A.reshape(B * T, n_in), W, b).reshape(B, T, -1)


def _lin_vjp(dZ, A, W):
    """``linear_vjp`` on every token: the reshape is undone on ``dA``."""
    B, T, n_in = A.shape
    dA, dW, db = linear_vjp(dZ.reshape(B * T, -1), A.reshape(B * T, n_in), W)
    return dA.reshape(B, T, n_in), dW, db


# --- the block -------------------------------------------------------------


def block_forward(
    X, params, n_heads: int, causal: bool = True
) -> tuple[np.ndarray, dict]:
    """The block's output and what its backward pass reads
    (eqs. ``tb-forward``, ``tb-mha``, ``tb-mlp``).

    X: (B, T, n_emb).  params: a dict with the keys :data:`PARAM_KEYS`, of
    the shapes :func:`param_shapes` gives.  n_heads: divides n_emb.  causal:
    token ``t`` attends to tokens ``≤ t`` only. Returns ``(Y, cache)``, Y:
    (B, T, n_emb); ``cache`` holds the checked arguments and the
    intermediate arrays ``X, A_att, Qh, Kh, Vh, O, X1, A_mlp, Z, Ap`` (the
    attention weights are not kept: ``attention_vjp`` recomputes them).
    """
    X = _check_tokens("X", X)
    B, T, n = X.shape
    n_heads = _check_heads(n_heads, n)
    if not isinstance(causal, bool | np.bool_):
        raise ValueError(f"causal must be True or False; got {causal!r}")
    p = _check_params(params, n)
    # attention sublayer
    A_att = layer_norm(X, p["ln1_gamma"], p["ln1_beta"], EPS)
    QKV = _lin(A_att, p["W_qkv"], p["b_qkv"])  # (B, T, 3n)
    Q, K, V = QKV[..., :n], QKV[..., n : 2 * n], QKV[..., 2 * n :]
    Qh, Kh, Vh = (split_heads(M, n_heads) for M in (Q, K, V))
    O = merge_heads(attention(Qh, Kh, Vh, causal=bool(causal)))
    X1 = X + _lin(O, p["W_o"], p["b_o"])  # residual
    # MLP sublayer
    A_mlp = layer_norm(X1, p["ln2_gamma"], p["ln2_beta"], EPS)
    Z = _lin(A_mlp, p["W_1"], p["b_1"])  # (B, T, n_ff)
    Ap = gelu(Z)
    Y = X1 + _lin(Ap, p["W_2"], p["b_2"])  # residual
    cache = dict(
        params=p, n_heads=n_heads, causal=bool(causal),
        X=X, A_att=A_att, Qh=Qh, Kh=Kh, Vh=Vh, O=O,
        X1=X1, A_mlp=A_mlp, Z=Z, Ap=Ap,
    )  # fmt: skip
    return Y, cache


def block_backward(dY, cache: dict) -> tuple[np.ndarray, dict]:
    """Pull ``dY`` back through the block, one VJP per line of the forward
    pass, in reverse (eq. ``tb-backward``).

    dY: (B, T, n_emb).  cache: from :func:`block_forward`.
    Returns ``(dX, dparams)``, dX of X's shape and dparams a dict with the
    keys and shapes of ``params``.
    """
    c, p = cache, cache["params"]
    X = c["X"]
    dY = _check_tokens("dY", dY)
    check_same_shape("dY", dY, "X", X)
    n = X.shape[-1]
    d = {}
    # Y = X1 + Ap W_2ᵀ + b_2: X1 fans out to the residual and to LN2
    dAp, d["W_2"], d["b_2"] = _lin_vjp(dY, c["Ap"], p["W_2"])
    dZ = gelu_vjp(dAp, c["Z"])
    dA_mlp, d["W_1"], d["b_1"] = _lin_vjp(dZ, c["A_mlp"], p["W_1"])
    dX1_ln, d["ln2_gamma"], d["ln2_beta"] = layer_norm_vjp(
        dA_mlp, c["X1"], p["ln2_gamma"], EPS
    )
    dX1 = dY + dX1_ln  # the two uses of X1 add (fan-out)
    # X1 = X + merge(Oh) W_oᵀ + b_o
    dO, d["W_o"], d["b_o"] = _lin_vjp(dX1, c["O"], p["W_o"])
    dOh = split_heads(dO, c["n_heads"])  # adjoint of merge
    dQh, dKh, dVh = attention_vjp(
        dOh, c["Qh"], c["Kh"], c["Vh"], causal=c["causal"]
    )
    # adjoint of heads(·) is merge; adjoint of the split is concatenation
    dQKV = np.concatenate([merge_heads(G) for G in (dQh, dKh, dVh)], -1)
    assert dQKV.shape[-1] == 3 * n
    dA_att, d["W_qkv"], d["b_qkv"] = _lin_vjp(dQKV, c["A_att"], p["W_qkv"])
    dX_ln, d["ln1_gamma"], d["ln1_beta"] = layer_norm_vjp(
        dA_att, X, p["ln1_gamma"], EPS
    )
    dX = dX1 + dX_ln  # X fans out to the residual and to LN1
    return dX, {k: d[k] for k in PARAM_KEYS}


def block(X, params, n_heads: int, causal: bool = True) -> np.ndarray:
    """A pre-LN transformer block, ``Y`` (B, T, n_emb)
    (eqs. ``tb-forward``, ``tb-mha``, ``tb-mlp``).

    X: (B, T, n_emb).  params: dict with the keys :data:`PARAM_KEYS`.
    n_heads: divides n_emb.  causal: mask future tokens.
    """
    return block_forward(X, params, n_heads, causal)[0]


def block_vjp(
    dY, X, params, n_heads: int, causal: bool = True
) -> tuple[np.ndarray, dict]:
    """Gradients through :func:`block`: ``(dX, dparams)``
    (eq. ``tb-backward``).

    dY, X: (B, T, n_emb); params, n_heads, causal as for :func:`block`.
    dparams has the keys and shapes of params.
    """
    return block_backward(dY, block_forward(X, params, n_heads, causal)[1])


# --- the same block from the engine's ops ----------------------------------


def block_autodiff(X, params, n_heads: int, causal: bool = True):
    """The block built from :mod:`backprop.autodiff` ops, for checking.

    X: a (B, T, n_emb) Tensor or array; params: a dict of Tensors or arrays
    with the keys :data:`PARAM_KEYS`. Returns the output Tensor; its
    ``backward`` fills ``.grad`` of every Tensor given.
    """
    from backprop import autodiff as ad

    val = X.value if isinstance(X, ad.Tensor) else np.asarray(X)
    B, T, n = val.shape
    n_heads = _check_heads(n_heads, n)
    p = params
    H, d_k = n_heads, n // n_heads

    def lin(A, W, b):
        m = A.shape[-1]
        return ad.reshape(ad.linear(ad.reshape(A, (B * T, m)), W, b),
                          (B, T, -1))  # fmt: skip

    def heads(Z):
        return ad.transpose(ad.reshape(Z, (B, T, H, d_k)), (0, 2, 1, 3))

    def merge(Zh):
        return ad.reshape(ad.transpose(Zh, (0, 2, 1, 3)), (B, T, n))

    A_att = ad.layer_norm(X, p["ln1_gamma"], p["ln1_beta"], EPS)
    QKV = lin(A_att, p["W_qkv"], p["b_qkv"])
    Q, K, V = (QKV[..., i * n : (i + 1) * n] for i in range(3))
    O = merge(ad.attention(heads(Q), heads(K), heads(V), causal=causal))
    X1 = X + lin(O, p["W_o"], p["b_o"])
    A_mlp = ad.layer_norm(X1, p["ln2_gamma"], p["ln2_beta"], EPS)
    Ap = ad.gelu(lin(A_mlp, p["W_1"], p["b_1"]))
    return X1 + lin(Ap, p["W_2"], p["b_2"])


# --- a tiny causal language model ------------------------------------------


def lm_init(
    n_vocab: int,
    T: int,
    n_emb: int,
    n_ff: int,
    n_layers: int,
    rng: np.random.Generator,
) -> dict:
    """A language model's parameters: token table ``W_emb``
    (n_vocab, n_emb), also the output layer (tied); positions ``W_pos``
    (T, n_emb); ``blocks``, a list of ``n_layers`` block parameter dicts;
    the final layer norm's ``lnf_gamma``, ``lnf_beta`` (n_emb,). The
    residual branches' output weights ``W_o``, ``W_2`` start at half size.
    """
    n_vocab, T = positive_int("n_vocab", n_vocab), positive_int("T", T)
    n_layers = positive_int("n_layers", n_layers)
    blocks = [init_params(n_emb, n_ff, rng) for _ in range(n_layers)]
    for p in blocks:
        p["W_o"], p["W_2"] = 0.5 * p["W_o"], 0.5 * p["W_2"]
    return {
        "W_emb": 0.3 * rng.normal(size=(n_vocab, n_emb)),
        "W_pos": 0.1 * rng.normal(size=(T, n_emb)),
        "blocks": blocks,
        "lnf_gamma": np.ones(n_emb),
        "lnf_beta": np.zeros(n_emb),
    }


def lm_leaves(model: dict) -> list[np.ndarray]:
    """Every array of a model (or of its gradients), in a fixed order."""
    out = [model[k] for k in ("W_emb", "W_pos", "lnf_gamma", "lnf_beta")]
    for p in model["blocks"]:
        out += [p[k] for k in PARAM_KEYS]
    return out


def _check_ids(ids, model: dict) -> np.ndarray:
    ids = np.asarray(ids)
    T_max = model["W_pos"].shape[0]
    if ids.dtype.kind not in "iu" or ids.ndim != 2:
        raise ValueError(
            "ids must be a 2-D (B, T) array of integers; got dtype "
            f"{ids.dtype}, shape {ids.shape}"
        )
    if not 1 <= ids.shape[1] <= T_max:
        raise ValueError(
            f"ids must have 1 to {T_max} tokens per row (W_pos has "
            f"{T_max} rows); got shape {ids.shape}"
        )
    return ids


def lm_loss(model: dict, ids, targets, n_heads: int) -> tuple[float, dict]:
    """Mean next-token cross-entropy and its gradients, by hand
    (eqs. ``tb-lm``, ``tb-tied``).

    ids, targets: (B, T) integers; ``targets[r, t]`` is the token after
    ``ids[r, t]``. Forward: ``X0 = W_emb[ids] + W_pos[:T]``, the blocks
    (causal), ``A = LN_f(X_L)``, logits ``A W_embᵀ``. Returns ``(E,
    grads)``, ``grads`` shaped like ``model``. ``W_emb`` is used twice
    (lookup and output layer): its gradient is the sum of the two.
    """
    ids = _check_ids(ids, model)
    B, T = ids.shape
    W_emb, n = model["W_emb"], model["W_emb"].shape[1]
    X = embedding(ids, W_emb) + model["W_pos"][:T]  # W_pos broadcast over B
    caches = []
    for p in model["blocks"]:
        X, cache = block_forward(X, p, n_heads, causal=True)
        caches.append(cache)
    A = layer_norm(X, model["lnf_gamma"], model["lnf_beta"], EPS)
    logits = A.reshape(B * T, n) @ W_emb.T
    E, dlogits = softmax_cross_entropy(logits, np.reshape(targets, -1))
    g: dict = {}
    dA = (dlogits @ W_emb).reshape(B, T, n)
    dW_out = dlogits.T @ A.reshape(B * T, n)  # W_emb as the output layer
    dX, g["lnf_gamma"], g["lnf_beta"] = layer_norm_vjp(
        dA, X, model["lnf_gamma"], EPS
    )
    g["blocks"] = [None] * len(caches)
    for i in reversed(range(len(caches))):
        dX, g["blocks"][i] = block_backward(dX, caches[i])
    g["W_pos"] = np.zeros_like(model["W_pos"])
    g["W_pos"][:T] = dX.sum(axis=0)  # adjoint of the broadcast over B
    g["W_emb"] = embedding_vjp(dX, ids, W_emb) + dW_out  # fan-out: a sum
    return E, g


def lm_generate(
    model: dict, prompt, n_new: int, n_heads: int, stop=None
) -> list[int]:
    """Greedy decoding: append the most likely next token ``n_new`` times
    (or until ``stop``), the context cut to the last ``T`` tokens.

    prompt: a sequence of token ids. Returns the prompt and the new ids.
    """
    out = [int(i) for i in prompt]
    T_max = model["W_pos"].shape[0]
    for _ in range(positive_int("n_new", n_new)):
        ids = _check_ids(np.array(out[-T_max:])[None, :], model)
        X = embedding(ids, model["W_emb"]) + model["W_pos"][: ids.shape[1]]
        for p in model["blocks"]:
            X = block(X, p, n_heads, causal=True)
        a = layer_norm(X[:, -1], model["lnf_gamma"], model["lnf_beta"], EPS)
        out.append(int(np.argmax(a @ model["W_emb"].T)))
        if out[-1] == stop:
            break
    return out
