"""The tanh-form GELU and the pre-LN transformer block, ``backprop.transformer``.

The hand-written ``block_vjp`` is checked three ways, over shapes drawn by hypothesis
(batch 1, one token, one head, heads of width 1, ``n_ff = n_emb``, causal or not):
against central differences of ``E = ⟨G, block(X)⟩`` in ``X`` and in every parameter;
against the same block built from the engine's ops (``block_autodiff``), whose
reverse pass runs the engine's own graph; and with the adjoint test
``⟨J v, u⟩ = ⟨v, Jᵀ u⟩``, ``J v`` from the engine's forward mode (JVP rules, no VJP
involved). ``split_heads`` and ``merge_heads`` are linear: each is the other's adjoint.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st
from measures import fd_error

import backprop as bp
from backprop import autodiff as ad
from backprop import transformer as tf
from backprop.datasets import tiny_sentences
from backprop.layers import gelu, gelu_vjp
from backprop.transformer import (
    PARAM_KEYS,
    block,
    block_autodiff,
    block_backward,
    block_forward,
    block_vjp,
    init_params,
    merge_heads,
    param_shapes,
    split_heads,
)

seeds = st.integers(min_value=0, max_value=2**32 - 1)
small = st.integers(min_value=1, max_value=3)
ROUNDOFF = 1e-12


def draw(rng, B, T, n_heads, d_k, n_ff, dtype=np.float64):
    """X, params and an upstream gradient G for a block of these sizes."""
    n = n_heads * d_k
    params = init_params(n, n_ff, rng)
    X = rng.normal(size=(B, T, n))
    G = rng.normal(size=(B, T, n))
    cast = lambda a: a.astype(dtype)  # noqa: E731
    return cast(X), {k: cast(v) for k, v in params.items()}, cast(G)


def fd_errors(X, params, G, n_heads, causal):
    """Errors of dX and of every dparams entry against central differences."""
    dX, dparams = block_vjp(G, X, params, n_heads, causal)
    terms = float(np.sum(np.abs(G * block(X, params, n_heads, causal))))

    def E_X(X_):
        return float(np.sum(G * block(X_, params, n_heads, causal)))

    errors = {"X": fd_error(dX, E_X, X, terms)}
    for key in PARAM_KEYS:

        def E(v, key=key):
            return float(np.sum(G * block(X, {**params, key: v}, n_heads, causal)))

        errors[key] = fd_error(dparams[key], E, params[key], terms)
    return errors


def engine_gradients(X, params, G, n_heads, causal):
    Xt = ad.Tensor(X)
    pt = {k: ad.Tensor(v) for k, v in params.items()}
    Y = block_autodiff(Xt, pt, n_heads, causal)
    Y.backward(G)
    return Y.value, Xt.grad, {k: t.grad for k, t in pt.items()}


# --- GELU ------------------------------------------------------------------------------


def test_gelu_is_z_times_a_sigmoid():
    """½(1 + tanh u) = σ(2u): the tanh form is z σ(2√(2/π)(z + 0.044715 z³))."""
    Z = np.linspace(-8, 8, 161)
    u = np.sqrt(2 / np.pi) * (Z + 0.044715 * Z**3)
    # 1 + tanh(u) cancels for z ≪ 0 (as in PyTorch): an absolute error of a few ε|z|
    np.testing.assert_allclose(gelu(Z), Z * bp.sigmoid(2 * u), rtol=1e-13, atol=1e-14)
    assert gelu(np.array([0.0]))[0] == 0.0
    np.testing.assert_allclose(gelu(np.array([10.0, -10.0])), [10.0, 0.0], atol=1e-12)


@given(seed=seeds, shape=st.lists(small, min_size=1, max_size=3).map(tuple))
def test_gelu_vjp_matches_finite_differences(seed, shape):
    rng = np.random.default_rng(seed)
    Z, G = 3 * rng.normal(size=shape), rng.normal(size=shape)
    dZ = gelu_vjp(G, Z)
    assert dZ.shape == Z.shape
    terms = float(np.sum(np.abs(G * gelu(Z))))
    assert fd_error(dZ, lambda Z_: float(np.sum(G * gelu(Z_))), Z, terms) <= TOL


def test_gelu_jacobian_is_diagonal(rng):
    Z = rng.normal(size=(2, 3))
    J = bp.numerical_jacobian(gelu, Z)
    J_hand = bp.elementwise_jacobian(gelu_vjp(np.ones_like(Z), Z))
    assert bp.relative_error(J_hand, J) <= TOL


def test_gelu_keeps_float32_and_refuses_mismatched_shapes(rng):
    Z = rng.normal(size=(3, 4)).astype(np.float32)
    assert gelu(Z).dtype == np.float32
    assert gelu_vjp(np.ones_like(Z), Z).dtype == np.float32
    with pytest.raises(ValueError, match=r"g must have the shape of Z"):
        gelu_vjp(np.ones((4, 3)), Z)


# --- heads: a reshape and a transpose ----------------------------------------------


@given(seed=seeds, B=small, T=small, n_heads=small, d_k=small)
def test_split_heads_is_pytorchs_view_transpose(seed, B, T, n_heads, d_k):
    Z = np.random.default_rng(seed).normal(size=(B, T, n_heads * d_k))
    Zh = split_heads(Z, n_heads)
    assert Zh.shape == (B, n_heads, T, d_k)
    for b, j, t, i in np.ndindex(*Zh.shape):
        assert Zh[b, j, t, i] == Z[b, t, j * d_k + i]
    np.testing.assert_array_equal(merge_heads(Zh), Z)


@given(seed=seeds, B=small, T=small, n_heads=small, d_k=small)
def test_merge_heads_is_the_adjoint_of_split_heads(seed, B, T, n_heads, d_k):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(B, T, n_heads * d_k))
    U = rng.normal(size=(B, n_heads, T, d_k))
    split = lambda Z_: split_heads(Z_, n_heads)  # noqa: E731
    assert bp.adjoint_test(split, merge_heads, Z, U) <= ROUNDOFF
    # a plain reshape to (B, n_heads, T, d_k) is not the adjoint (unless T = 1
    # or n_heads = 1, where it is the same map)
    if T > 1 and n_heads > 1:
        wrong = lambda U_: U_.reshape(Z.shape)  # noqa: E731
        assert bp.adjoint_test(split, wrong, Z, U) > 1e-3


# --- the block's backward, three ways ----------------------------------------------


@given(seed=seeds, B=small, T=st.integers(1, 4), n_heads=small, d_k=small,
       n_ff=st.integers(1, 5), causal=st.booleans())  # fmt: skip
def test_block_vjp_matches_finite_differences(seed, B, T, n_heads, d_k, n_ff, causal):
    X, params, G = draw(np.random.default_rng(seed), B, T, n_heads, d_k, n_ff)
    errors = fd_errors(X, params, G, n_heads, causal)
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "sizes",
    [
        (1, 5, 2, 3, 6),  # batch 1, n_ff = n_emb: a transposed W_1 would type-check
        (2, 1, 2, 2, 3),  # one token: attention is the identity on V
        (2, 4, 1, 4, 8),  # one head
        (1, 3, 4, 1, 4),  # heads of width 1
        (3, 4, 2, 2, 4),  # T = n_emb = n_ff
    ],
)
def test_block_vjp_named_shapes(rng, sizes, causal):
    B, T, n_heads, d_k, n_ff = sizes
    X, params, G = draw(rng, B, T, n_heads, d_k, n_ff)
    errors = fd_errors(X, params, G, n_heads, causal)
    assert max(errors.values()) <= TOL, errors


@given(seed=seeds, B=small, T=st.integers(1, 4), n_heads=small, d_k=small,
       n_ff=st.integers(1, 5), causal=st.booleans())  # fmt: skip
def test_block_vjp_matches_the_engine(seed, B, T, n_heads, d_k, n_ff, causal):
    X, params, G = draw(np.random.default_rng(seed), B, T, n_heads, d_k, n_ff)
    Y_engine, dX_engine, dparams_engine = engine_gradients(
        X, params, G, n_heads, causal
    )
    Y = block(X, params, n_heads, causal)
    dX, dparams = block_vjp(G, X, params, n_heads, causal)
    assert bp.relative_error(Y, Y_engine) <= ROUNDOFF
    assert bp.relative_error(dX, dX_engine) <= ROUNDOFF
    for key in PARAM_KEYS:
        assert dparams[key].shape == params[key].shape
        assert bp.relative_error(dparams[key], dparams_engine[key]) <= ROUNDOFF, key


@given(seed=seeds, B=small, T=st.integers(1, 4), n_heads=small, d_k=small,
       n_ff=st.integers(1, 5), causal=st.booleans())  # fmt: skip
def test_block_vjp_passes_the_adjoint_test(seed, B, T, n_heads, d_k, n_ff, causal):
    """⟨J v, u⟩ = ⟨v, Jᵀ u⟩ over X and every parameter at once; J v by forward mode."""
    rng = np.random.default_rng(seed)
    X, params, U = draw(rng, B, T, n_heads, d_k, n_ff)
    inputs = [X, *(params[k] for k in PARAM_KEYS)]
    tangents = [rng.normal(size=x.shape) for x in inputs]

    def f(X_, *ps):
        return block_autodiff(X_, dict(zip(PARAM_KEYS, ps)), n_heads, causal)

    _, Jv = ad.jvp(f, inputs, tangents)
    dX, dparams = block_vjp(U, X, params, n_heads, causal)
    grads = [dX, *(dparams[k] for k in PARAM_KEYS)]
    lhs = float(np.sum(Jv * U))
    rhs = sum(float(np.sum(v * g)) for v, g in zip(tangents, grads))
    terms = float(np.sum(np.abs(Jv * U)))  # ⟨J v, u⟩ may cancel
    assert abs(lhs - rhs) <= ROUNDOFF * max(1.0, terms)


def test_causal_block_does_not_look_ahead(rng):
    X, params, G = draw(rng, 2, 5, 2, 3, 7)
    Y = block(X, params, 2, causal=True)
    X_later = X.copy()
    X_later[:, 3:] += rng.normal(size=X[:, 3:].shape)
    np.testing.assert_array_equal(
        block(X_later, params, 2, causal=True)[:, :3], Y[:, :3]
    )
    assert not np.allclose(block(X_later, params, 2, causal=False)[:, :3], Y[:, :3])
    # a gradient at the first three tokens reaches no later token
    G[:, 3:] = 0.0
    dX, _ = block_vjp(G, X, params, 2, causal=True)
    assert np.all(dX[:, 3:] == 0.0) and np.any(dX[:, :3] != 0.0)


def test_cache_holds_8_n_emb_plus_2_n_ff_floats_per_token(rng):
    B, T, n_heads, d_k, n_ff = 2, 3, 2, 4, 32
    X, params, _ = draw(rng, B, T, n_heads, d_k, n_ff)
    _, cache = block_forward(X, params, n_heads)
    saved = sum(a.size for k, a in cache.items() if isinstance(a, np.ndarray))
    assert saved == B * T * (8 * n_heads * d_k + 2 * n_ff)


# --- float32, purity, bad input --------------------------------------------------------


def test_float32_stays_float32_and_agrees_with_float64(rng):
    X, params, G = draw(rng, 2, 4, 2, 4, 16)
    X32, G32 = X.astype(np.float32), G.astype(np.float32)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    Y32 = block(X32, p32, 2)
    dX32, dp32 = block_vjp(G32, X32, p32, 2)
    assert Y32.dtype == dX32.dtype == np.float32
    assert all(v.dtype == np.float32 for v in dp32.values())
    as64 = lambda a: a.astype(np.float64)  # noqa: E731
    Y, (dX, dp) = (
        block(as64(X32), {k: as64(v) for k, v in p32.items()}, 2),
        block_vjp(as64(G32), as64(X32), {k: as64(v) for k, v in p32.items()}, 2),
    )
    assert bp.relative_error(Y32, Y) < 1e-5
    assert bp.relative_error(dX32, dX) < 1e-5
    assert max(bp.relative_error(dp32[k], dp[k]) for k in PARAM_KEYS) < 1e-5


def test_nothing_is_modified_in_place(rng):
    X, params, G = draw(rng, 2, 3, 2, 2, 5)
    copies = (X.copy(), {k: v.copy() for k, v in params.items()}, G.copy())
    block(X, params, 2)
    dX, dparams = block_vjp(G, X, params, 2)
    _, cache = block_forward(X, params, 2)
    block_backward(G, cache)
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(G, copies[2])
    for k in PARAM_KEYS:
        np.testing.assert_array_equal(params[k], copies[1][k])
    assert not np.shares_memory(dX, G)


def _bad(params, **change):
    out = dict(params)
    for k, v in change.items():
        if v is None:
            del out[k]
        else:
            out[k] = v
    return out


def test_bad_input_is_refused(rng):
    X, params, G = draw(rng, 2, 3, 2, 3, 5)  # n_emb = 6
    with pytest.raises(ValueError, match=r"n_emb = 6 does not split into 4 heads"):
        block(X, params, 4)
    with pytest.raises(ValueError, match=r"n_heads must be a positive integer"):
        block(X, params, 0)
    with pytest.raises(ValueError, match=r"missing \['W_o'\], extra none"):
        block(X, _bad(params, W_o=None), 2)
    with pytest.raises(ValueError, match=r"missing none, extra \['W_3'\]"):
        block(X, {**params, "W_3": params["W_2"]}, 2)
    with pytest.raises(
        ValueError, match=r"W_qkv must have shape \(18, 6\).*got \(6, 18\)"
    ):
        block(X, _bad(params, W_qkv=params["W_qkv"].T), 2)
    with pytest.raises(ValueError, match=r"W_2 must have shape \(6, 5\).*got \(5, 6\)"):
        block(X, _bad(params, W_2=params["W_2"].T), 2)
    with pytest.raises(ValueError, match=r"ln2_beta must have shape \(6,\)"):
        block(X, _bad(params, ln2_beta=np.zeros(5)), 2)
    with pytest.raises(ValueError, match=r"X must be 3-D \(B, T, n_emb\); got 2-D"):
        block(X[0], params, 2)
    with pytest.raises(
        ValueError, match=r"ln1_gamma must have shape \(7,\) for n_emb = 7"
    ):
        block(np.zeros((2, 3, 7)), params, 1)
    with pytest.raises(ValueError, match=r"causal must be True or False"):
        block(X, params, 2, causal="yes")
    with pytest.raises(ValueError, match=r"params must be a dict"):
        block(X, list(params.values()), 2)
    with pytest.raises(ValueError, match=r"dY must have the shape of X"):
        block_vjp(G[:, :2], X, params, 2)
    with pytest.raises(ValueError, match=r"must be 3-D"):
        split_heads(X[0], 2)
    with pytest.raises(ValueError, match=r"Zh must be 4-D"):
        merge_heads(X)


def test_param_shapes_are_the_documented_ones():
    shapes = param_shapes(8, 20)
    assert tuple(shapes) == PARAM_KEYS
    assert shapes["W_qkv"] == (24, 8) and shapes["W_1"] == (20, 8)
    assert shapes["W_2"] == (8, 20) and shapes["b_qkv"] == (24,)


# --- the tiny language model ------------------------------------------------------------


def test_lm_loss_gradients_match_finite_differences(rng):
    """Every array, the tied W_emb (lookup + output layer) and W_pos included."""
    model = tf.lm_init(5, 4, 4, 6, 2, rng)
    ids, targets = rng.integers(0, 5, size=(2, 4)), rng.integers(0, 5, size=(2, 4))
    E0, grads = tf.lm_loss(model, ids, targets, n_heads=2)
    for x, gx in zip(tf.lm_leaves(model), tf.lm_leaves(grads)):
        assert gx.shape == x.shape

        def E(v, x=x):
            saved = x.copy()
            x[...] = v
            try:
                return tf.lm_loss(model, ids, targets, 2)[0]
            finally:
                x[...] = saved

        assert fd_error(gx, E, x.copy(), terms=E0) <= TOL


def test_tied_gradient_is_the_sum_of_both_uses(rng):
    model = tf.lm_init(5, 4, 4, 6, 1, rng)
    ids, targets = rng.integers(0, 5, size=(3, 4)), rng.integers(0, 5, size=(3, 4))
    E0, grads = tf.lm_loss(model, ids, targets, 2)

    def untied(W_in, W_out):
        """The same model with a lookup table and an output layer of their own."""
        X = W_in[ids] + model["W_pos"][:4]
        X = tf.block(X, model["blocks"][0], 2)
        A = bp.layer_norm(X, model["lnf_gamma"], model["lnf_beta"])
        return bp.softmax_cross_entropy(A.reshape(12, 4) @ W_out.T, targets.ravel())[0]

    W = model["W_emb"]
    assert untied(W, W) == pytest.approx(E0, rel=1e-14)
    d_in = bp.numerical_gradient(lambda V: untied(V, W), W)
    d_out = bp.numerical_gradient(lambda V: untied(W, V), W)
    assert bp.relative_error(grads["W_emb"], d_in + d_out) <= TOL
    assert bp.relative_error(grads["W_emb"], d_out) > 1e-2  # one use is not enough


def test_lm_refuses_bad_ids(rng):
    model = tf.lm_init(5, 4, 4, 6, 1, rng)
    with pytest.raises(ValueError, match=r"1 to 4 tokens per row"):
        tf.lm_loss(model, np.zeros((2, 5), int), np.zeros((2, 5), int), 2)
    with pytest.raises(ValueError, match=r"2-D \(B, T\) array of integers"):
        tf.lm_loss(model, np.zeros(3, int), np.zeros(3, int), 2)


def test_tiny_sentences_follow_the_grammar():
    text = tiny_sentences(50, seed=3)
    assert text == tiny_sentences(50, seed=3) and text.endswith(".\n")
    lines = text.splitlines()
    assert len(lines) == 50
    for line in lines:
        words = line.rstrip(".").split()
        assert len(words) == 5
        plural = words[0] == "two"
        assert words[2].endswith("s") != plural
