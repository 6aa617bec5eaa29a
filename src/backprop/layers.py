"""One layer: the affine map and the element-wise activations, with VJPs.

The book derives, for one example in column form,

    z = W a + b,      a' = f(z),
    ∇z = ∇a' ⊙ f'(z),  ∇a = Wᵀ ∇z,  ∇W = ∇z aᵀ,  ∇b = ∇z.

The code stores a batch with one example per row (PyTorch's ``nn.Linear``
layout): ``A`` is ``(B, n_in)``, ``W`` is ``(n_out, n_in)``, ``b`` is
``(n_out,)`` and ``Z = A Wᵀ + 1 bᵀ`` is ``(B, n_out)``. Transposing the
column results row by row gives the batch results below; ``dX`` is ∂E/∂X and
always has the shape of ``X``.

Every function is pure: it checks its arguments, never modifies them, and
returns new arrays.
"""

from __future__ import annotations

import math

import numpy as np

from backprop._checks import as_real_array, check_batch, check_same_shape

__all__ = [
    "linear",
    "linear_vjp",
    "sigmoid",
    "sigmoid_vjp",
    "tanh",
    "tanh_vjp",
    "relu",
    "relu_vjp",
    "gelu",
    "gelu_vjp",
    "ACTIVATIONS",
    "embedding",
    "embedding_vjp",
    "dropout_mask",
    "dropout",
    "dropout_vjp",
]


def _check_linear(A, W, b=None, names=("A", "W", "b")):
    """Check the inputs of ``A Wᵀ + b``; ``names`` are the caller's."""
    a_, w_, b_ = names
    A = check_batch(a_, A)
    W = as_real_array(w_, W, ndim=2)
    if W.shape[1] != A.shape[1]:
        raise ValueError(
            f"{w_} has shape {W.shape}, so it expects {W.shape[1]} input "
            f"features, but {a_} has shape {A.shape}, with {A.shape[1]} "
            "features"
        )
    if b is None:
        return A, W, None
    b = as_real_array(b_, b, ndim=1)
    if b.shape != (W.shape[0],):
        raise ValueError(
            f"{b_} must have shape ({W.shape[0]},), one entry per row of "
            f"{w_} {W.shape}; got {b.shape}"
        )
    return A, W, b


def linear(A, W, b) -> np.ndarray:
    """Affine map in row-batch form: ``Z = A Wᵀ + 1 bᵀ``
    (eq. ``linear-forward``).

    A: (B, n_in), one example per row.  W: (n_out, n_in).  b: (n_out,).
    Returns Z: (B, n_out); row ``r`` is ``W @ A[r] + b``, the column form
    ``z = W a + b``.
    """
    A, W, b = _check_linear(A, W, b)
    Z = A @ W.T  # a new array, this function's own
    if Z.dtype != np.result_type(Z, b):  # a float64 b promotes float32 Z
        return Z + b
    # The bias goes into the product's array: ``A @ W.T + b`` would write a
    # second (B, n_out) array and read the first once more.
    Z += b
    return Z


def linear_vjp(dZ, A, W) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pull ``dZ`` back through ``Z = A Wᵀ + 1 bᵀ``.

    Implements eqs. ``batch-grads``, ``grad-a``, ``grad-w``, ``grad-b``.

    dZ: (B, n_out), ∂E/∂Z.  A: (B, n_in), the layer's input.
    W: (n_out, n_in). Returns ``(dA, dW, db)`` with the shapes of ``A``,
    ``W`` and ``b``:

    - ``dA = dZ W``  (B, n_in)     — each row is ``Wᵀ ∇z``;
    - ``dW = dZᵀ A`` (n_out, n_in) — the sum over the batch of ``∇z aᵀ``;
    - ``db = dZᵀ 1`` (n_out,)      — the sum over the batch of ``∇z``.
    """
    A, W, _ = _check_linear(A, W)
    dZ = check_batch("dZ", dZ)
    expected = (A.shape[0], W.shape[0])
    if dZ.shape != expected:
        raise ValueError(
            f"dZ must have the shape of Z = A Wᵀ + b, {expected}; got "
            f"{dZ.shape}"
        )
    return dZ @ W, dZ.T @ A, dZ.sum(axis=0)


# Element-wise activations. Each maps Z to f(Z) entry by entry, so its
# Jacobian is diagonal and its VJP is an element-wise product
# (eq. ``grad-z``).


def sigmoid(Z) -> np.ndarray:
    """Logistic ``σ(Z) = 1 / (1 + e^{-Z})``, element-wise, any shape.

    Computed as ``exp(-log(1 + e^{-Z}))`` so that no entry overflows.
    """
    Z = as_real_array("Z", Z)
    return np.exp(-np.logaddexp(0.0, -Z))


def sigmoid_vjp(g, Z) -> np.ndarray:
    """``g ⊙ σ'(Z)`` with ``σ' = σ (1 − σ)``  (eq. ``grad-z``).

    g and Z: the same shape, any shape.
    """
    Z = as_real_array("Z", Z)
    g = as_real_array("g", g)
    check_same_shape("g", g, "Z", Z)
    s = sigmoid(Z)
    return g * s * (1.0 - s)


def tanh(Z) -> np.ndarray:
    """Hyperbolic tangent, element-wise, any shape."""
    Z = as_real_array("Z", Z)
    return np.tanh(Z)


def tanh_vjp(g, Z) -> np.ndarray:
    """``g ⊙ tanh'(Z)`` with ``tanh' = 1 − tanh²``  (eq. ``grad-z``).

    g and Z: the same shape, any shape.
    """
    Z = as_real_array("Z", Z)
    g = as_real_array("g", g)
    check_same_shape("g", g, "Z", Z)
    return g * (1.0 - np.tanh(Z) ** 2)


def relu(Z) -> np.ndarray:
    """Rectified linear unit ``max(Z, 0)``, element-wise, any shape."""
    Z = as_real_array("Z", Z)
    return np.maximum(Z, 0.0)


def relu_vjp(g, Z) -> np.ndarray:
    """``g ⊙ 1[Z > 0]``  (eq. ``grad-z``).  g and Z: same shape.

    At ``Z = 0`` the derivative is taken to be 0, as PyTorch, TensorFlow and
    JAX do. The output ``relu(Z)`` may be passed for ``Z``: it is positive
    at exactly the entries where ``Z`` is, so the result is the same and a
    backward pass need not keep ``Z`` (``MLP.loss_and_grads`` does this).
    """
    Z = as_real_array("Z", Z)
    g = as_real_array("g", g)
    check_same_shape("g", g, "Z", Z)
    return g * (Z > 0)


_GELU_C = math.sqrt(2.0 / math.pi)  # √(2/π), a Python float: keeps float32
_GELU_A = 0.044715


def gelu(Z) -> np.ndarray:
    """GELU, tanh form, element-wise, any shape  (eq. ``tb-gelu``).

    ``gelu(z) = ½ z (1 + tanh(u))`` with ``u = √(2/π) (z + 0.044715 z³)``,
    as ``torch.nn.functional.gelu(Z, approximate="tanh")``. Computed as
    ``z σ(2u)``, the same function, because ``1 + tanh(u)`` loses every
    digit to cancellation for large negative ``z``, where ``σ(2u)`` keeps
    them.
    """
    Z = as_real_array("Z", Z)
    u = _GELU_C * (Z + _GELU_A * Z**3)
    return Z * sigmoid(2 * u)


def gelu_vjp(g, Z) -> np.ndarray:
    """``g ⊙ gelu'(Z)``  (eqs. ``grad-z``, ``tb-gelu-slope``).

    ``gelu'(z) = ½ (1 + t) + ½ z (1 − t²) √(2/π) (1 + 3 · 0.044715 z²)``
    with ``t = tanh(u)``; computed, as :func:`gelu`, with ``½ (1 + t) =
    σ(2u)`` and ``½ (1 − t²) = 2 σ(2u) σ(−2u)``. g and Z: the same shape,
    any shape.
    """
    Z = as_real_array("Z", Z)
    g = as_real_array("g", g)
    check_same_shape("g", g, "Z", Z)
    u = _GELU_C * (Z + _GELU_A * Z**3)
    s, s_neg = sigmoid(2 * u), sigmoid(-2 * u)
    du = _GELU_C * (1.0 + 3.0 * _GELU_A * Z**2)
    return g * (s + 2.0 * Z * s * s_neg * du)


#: name -> (f, f_vjp), for code that picks an activation by name.
ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_vjp),
    "tanh": (tanh, tanh_vjp),
    "relu": (relu, relu_vjp),
}


# Embeddings: a lookup table. Reading rows is a product with a one-hot
# matrix, so its VJP is the transposed product, a scatter-add
# (eqs. ``emb-forward``, ``emb-grad``).


def _check_embedding(ids, W_emb):
    W_emb = as_real_array("W_emb", W_emb, ndim=2)
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise ValueError(
            "ids must be an array of integers (indices into the rows of "
            f"W_emb); got dtype {ids.dtype}"
        )
    n_vocab = W_emb.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= n_vocab):
        bad = ids[(ids < 0) | (ids >= n_vocab)].reshape(-1)[0]
        raise ValueError(
            f"ids must lie in 0 … {n_vocab - 1}, one per row of W_emb "
            f"{W_emb.shape}; got {bad}"
        )
    return ids, W_emb


def embedding(ids, W_emb) -> np.ndarray:
    """Look up rows: ``Y = W_emb[ids]``  (eq. ``emb-forward``).

    ids: integers in ``0 … n_vocab − 1``, any shape (a scalar, or empty,
    too). W_emb: (n_vocab, n_emb), one row per token. Returns Y:
    ``(*ids.shape, n_emb)``, a new array of W_emb's dtype; ``Y[..., :] =
    W_emb[ids[...]]`` (empty if ids is). For a 1-D ``ids`` of length ``B``
    this is ``R W_emb`` with ``R`` the (B, n_vocab) one-hot matrix of
    ``ids``. Like ``torch.nn.functional.embedding(ids, W_emb)``.
    """
    ids, W_emb = _check_embedding(ids, W_emb)
    return W_emb[ids]


def embedding_vjp(dY, ids, W_emb) -> np.ndarray:
    """Pull ``dY`` back to the table: ``dW_emb = Rᵀ dY``, a scatter-add
    (eq. ``emb-grad``).

    dY: ``(*ids.shape, n_emb)``, ∂E/∂Y.  ids, W_emb: as for
    :func:`embedding`. Returns dW_emb: (n_vocab, n_emb), of W_emb's dtype;
    row ``v`` is the sum of the rows of ``dY`` whose id is ``v``, so an id
    that occurs ``k`` times collects ``k`` gradients and an id that does not
    occur gets zero (every row, for empty ids). ``np.add.at`` accumulates
    repeats; ``dW_emb[ids] += dY`` would not.
    """
    ids, W_emb = _check_embedding(ids, W_emb)
    dY = as_real_array("dY", dY, allow_empty=True)  # empty when ids is
    expected = (*ids.shape, W_emb.shape[1])
    if dY.shape != expected:
        raise ValueError(
            "dY must have the shape of Y = W_emb[ids], "
            f"(*ids.shape, n_emb) = {expected}; got {dY.shape}"
        )
    dW_emb = np.zeros_like(W_emb)
    np.add.at(dW_emb, ids, dY)
    return dW_emb


# Dropout: a random 0/1 mask and a scale (inverted dropout, training mode).
# For a fixed mask the layer is linear and diagonal, so its VJP is itself
# (eqs. ``pd-dropout``, ``pd-dropout-grad``).


def _check_p(p) -> float:
    """A drop probability: a real number in [0, 1)."""
    number = isinstance(p, int | float | np.integer | np.floating)
    if isinstance(p, bool) or not number or not 0 <= p < 1:
        why = " (p = 1 drops everything and divides by 0)" if p == 1 else ""
        raise ValueError(
            "p, the probability of dropping an entry, must be a number in "
            f"[0, 1){why}; got {p!r}"
        )
    return float(p)


def dropout_mask(shape, p, rng, dtype=np.float64) -> np.ndarray:
    """A mask ``D`` of zeros and ones, each entry 0 with probability ``p``.

    shape: the shape of the input.  p: in [0, 1).  rng: a
    ``np.random.Generator``.  dtype: the input's. ``D = [u ≥ p]`` for
    ``u`` uniform on [0, 1): every entry is kept, independently, with
    probability ``1 − p`` (PyTorch's ``bernoulli(1 − p)``).
    """
    p = _check_p(p)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            "rng must be a np.random.Generator (np.random.default_rng(seed)"
            f"); got {type(rng).__name__}"
        )
    return (rng.random(shape) >= p).astype(dtype)


def dropout(X, p, rng) -> tuple[np.ndarray, np.ndarray]:
    """Inverted dropout: ``Y = X ⊙ D / (1 − p)``  (eq. ``pd-dropout``).

    X: any shape.  p: the probability of dropping an entry, in [0, 1);
    ``p = 0`` gives ``Y = X``.  rng: a ``np.random.Generator``, which draws
    the mask (:func:`dropout_mask`). Returns ``(Y, mask)``, both of X's
    shape and dtype; ``mask`` holds 0 and 1. Dividing by ``1 − p`` keeps
    the expected value, ``E[Y] = X``, as in ``F.dropout(X, p,
    training=True)``.
    """
    X = as_real_array("X", X)
    mask = dropout_mask(X.shape, p, rng, X.dtype)
    return X * mask / X.dtype.type(1 - _check_p(p)), mask


def dropout_vjp(dY, mask, p) -> np.ndarray:
    """``dX = dY ⊙ D / (1 − p)``  (eq. ``pd-dropout-grad``).

    dY: ∂E/∂Y.  mask: the ``D`` that :func:`dropout` returned, of dY's
    shape, zeros and ones.  p: the forward's. Returns dX, of dY's shape
    and dtype: the gradient goes through the kept entries, scaled as the
    forward scaled them, and is zero at the dropped ones.
    """
    dY = as_real_array("dY", dY)
    mask = as_real_array("mask", mask)
    check_same_shape("mask", mask, "dY", dY)
    other = mask[(mask != 0) & (mask != 1)]
    if other.size:
        raise ValueError(
            "mask must hold only zeros and ones (the mask dropout returned)"
            f"; got values such as {other[0].item()!r}"
        )
    scale = dY.dtype.type(1 - _check_p(p))
    return dY * mask.astype(dY.dtype, copy=False) / scale
