"""Scaled dot-product attention, ``backprop.attention``: forward, mask and VJP.

The VJP is checked against central differences of ``E = ⟨G, attention(Q, K, V)⟩``
for each of ``Q``, ``K``, ``V``, with and without the causal mask, over shapes drawn by
hypothesis (no leading axis, a batch, a batch and heads; batch 1, ``d = 1``,
``Tq ≠ Tk`` and square ``Tq = Tk`` included), with leading axes that broadcast, against
explicit Jacobians at a small size, and, for ``V``, in which the output is linear, with
the adjoint test. The wrong derivations (an element-wise softmax, a misplaced
transpose) must fail the same instruments. float32 stays float32.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st
from measures import fd_floor

import backprop as bp
from backprop.attention import (
    attention,
    attention_vjp,
    attention_weights,
    causal_mask,
    softmax_rows_vjp,
)
from backprop.broadcasting import unbroadcast

small = st.integers(min_value=1, max_value=4)
#: the leading axes: none (rank 2), a batch (rank 3), a batch and heads (rank 4)
leads = st.lists(st.integers(min_value=1, max_value=3), max_size=2).map(tuple)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
ROUNDOFF = 1e-12


def draw_qkv(rng, B, Tq, Tk, d, dv, dtype=np.float64):
    """Q, K, V and an upstream gradient G; B: the leading axes, a tuple or one int."""
    lead = (B,) if isinstance(B, int) else tuple(B)
    shapes = [(*lead, Tq, d), (*lead, Tk, d), (*lead, Tk, dv), (*lead, Tq, dv)]
    return tuple(rng.normal(size=shape).astype(dtype) for shape in shapes)


def gradient_scales(Q, K, V, G) -> tuple[float, float, float]:
    """Sizes of the terms that ``dQ``, ``dK`` and ``dV`` are sums of.

    ``dQ = dS K / √d`` with ``dS = P ⊙ (dP − rowsum(dP ⊙ P))`` and ``dP = G Vᵀ``, so
    ``‖dQ‖`` is at most about ``2 ‖G‖ ‖V‖ ‖K‖ / √d``; ``dK`` likewise with ``Q``; and
    ``dV = Pᵀ G``, the entries of ``P`` at most 1, is of the size of ``‖G‖``.
    """
    g, root_d = np.linalg.norm(G), np.sqrt(np.shape(Q)[-1])
    v = np.linalg.norm(V)
    return g * v * np.linalg.norm(K) / root_d, g * v * np.linalg.norm(Q) / root_d, g


def agreement(a, b, floor: float) -> float:
    """Relative error, but 0 when ``a`` and ``b`` differ by less than ``floor``.

    floor: the round-off the comparison must allow, relative to the sizes involved:
    ``ROUNDOFF`` times the size of the terms the gradient is a sum of
    (``gradient_scales``), and for central differences their own floor (see
    ``fd_errors``). With one visible key per query the exact ``dQ`` and ``dK`` are
    zero: central differences return exact zeros, and ``dS = P ⊙ (dP − rowsum(dO ⊙
    O))`` returns round-off of about 1e-17 of the scale, a relative error of 1 between
    two zeros. The floor is relative: scaling ``Q``, ``K``, ``V`` or ``G`` changes
    nothing, and a wrong gradient is wrong at every scale.
    """
    if np.linalg.norm(np.subtract(a, b)) <= floor:
        return 0.0
    return bp.relative_error(a, b)


def fd_errors(Q, K, V, G, causal):
    """Errors of (dQ, dK, dV) against central differences of ⟨G, O⟩ (see agreement).

    A difference of E = ⟨G, O⟩ carries E's round-off, about 4ε Σ|G ⊙ O|, divided by
    the step: it cannot resolve a gradient entry below that, which matters when a
    gradient is small next to E's terms (a softmax row close to one-hot, say)."""

    def E(Q_=Q, K_=K, V_=V):
        return np.sum(G * attention(Q_, K_, V_, causal=causal))

    grads = attention_vjp(G, Q, K, V, causal=causal)
    numerical = (
        bp.numerical_gradient(lambda Q_: E(Q_=Q_), Q),
        bp.numerical_gradient(lambda K_: E(K_=K_), K),
        bp.numerical_gradient(lambda V_: E(V_=V_), V),
    )
    terms = np.sum(np.abs(G * attention(Q, K, V, causal=causal)))
    return [
        agreement(g, n, max(ROUNDOFF * s, fd_floor(terms, g.size)))
        for g, n, s in zip(grads, numerical, gradient_scales(Q, K, V, G))
    ]


@pytest.mark.parametrize("size", [1e-20, 1.0, 1e20])
def test_agreement_is_relative_at_every_scale(rng, size):
    """A gradient off by 1e-6 is refused, and round-off around an exact zero (one key
    per query) accepted, whatever the size of the gradient that flows in."""
    Q, K, V, G = draw_qkv(rng, 2, 3, 4, 2, 2)
    grads = attention_vjp(size * G, Q, K, V)
    for dX, scale in zip(grads, gradient_scales(Q, K, V, size * G)):
        assert agreement(dX * (1 + 1e-6), dX, ROUNDOFF * scale) == pytest.approx(
            1e-6, rel=1e-3
        )
    Q, K, V, G = draw_qkv(rng, 2, 3, 1, 2, 7)  # Tk = 1: P = 1, dQ = dK = 0 exactly
    assert max(fd_errors(Q, K, V, size * G, causal=False)) <= TOL


# --- forward --------------------------------------------------------------------------


def test_forward_is_the_index_expression(rng):
    Q, K, V, _ = draw_qkv(rng, 2, 3, 5, 4, 2)
    S = np.einsum("bid,bjd->bij", Q, K) / 2.0  # √d = 2
    P = np.exp(S) / np.exp(S).sum(axis=2, keepdims=True)
    O = np.einsum("bij,bjc->bic", P, V)
    np.testing.assert_allclose(attention_weights(Q, K), P, rtol=1e-13)
    np.testing.assert_allclose(attention(Q, K, V), O, rtol=1e-13, atol=1e-15)
    assert attention(Q, K, V).shape == (2, 3, 2)


@given(seed=seeds, B=leads, Tq=small, Tk=small, d=small, causal=st.booleans())
def test_weights_are_rows_of_probabilities(seed, B, Tq, Tk, d, causal):
    Q, K, _, _ = draw_qkv(np.random.default_rng(seed), B, Tq, Tk, d, 1)
    P = attention_weights(Q, K, causal)
    assert P.shape == (*B, Tq, Tk) and np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=-1), 1.0, rtol=1e-14)


def test_large_scores_do_not_overflow(rng):
    Q, K, V, _ = draw_qkv(rng, 1, 3, 4, 2, 2)
    O = attention(1e3 * Q, 1e3 * K, V)
    assert np.all(np.isfinite(O))
    # each query takes the value of its best key, a one-hot row of P
    best = np.argmax((Q @ K[0].T)[0], axis=-1)
    np.testing.assert_allclose(O[0], V[0, best], atol=1e-12)


# --- the VJP against finite differences and Jacobians ---------------------------------


@given(seed=seeds, B=leads, Tq=small, Tk=small, d=small, dv=small, causal=st.booleans())
def test_vjp_matches_finite_differences(seed, B, Tq, Tk, d, dv, causal):
    rng = np.random.default_rng(seed)
    Q, K, V, G = draw_qkv(rng, B, Tq, Tk, d, dv)
    dQ, dK, dV = attention_vjp(G, Q, K, V, causal=causal)
    assert (dQ.shape, dK.shape, dV.shape) == (Q.shape, K.shape, V.shape)
    assert max(fd_errors(Q, K, V, G, causal)) <= TOL


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "shape",
    [
        (1, 3, 5, 2, 4),  # batch 1, Tq < Tk
        (2, 5, 3, 3, 2),  # Tq > Tk
        (2, 4, 4, 4, 4),  # everything square: a transposed formula would type-check
        (3, 4, 3, 1, 1),  # d = 1, dv = 1
        (1, 1, 1, 1, 1),  # one query, one key: P = 1, dQ = dK = 0
        ((), 3, 5, 2, 4),  # no leading axis: Q (Tq, d)
        ((), 5, 3, 3, 2),  # no leading axis, Tq > Tk
        ((2, 3), 5, 3, 2, 2),  # batch and heads: Q (B, H, Tq, d), Tq > Tk
        ((1, 2), 3, 5, 3, 1),  # batch 1, two heads, Tq < Tk
        ((1, 1), 4, 4, 2, 3),  # one sequence, one head
    ],
)
def test_vjp_named_shapes(rng, shape, causal):
    Q, K, V, G = draw_qkv(rng, *shape)
    errors = fd_errors(Q, K, V, G, causal)
    assert max(errors) <= TOL, errors


@pytest.mark.parametrize("causal", [False, True])
def test_vjp_against_explicit_jacobians(rng, causal):
    B, Tq, Tk, d, dv = 2, 3, 2, 2, 2
    Q, K, V, G = draw_qkv(rng, B, Tq, Tk, d, dv)
    grads = attention_vjp(G, Q, K, V, causal=causal)
    maps = (
        lambda Q_: attention(Q_, K, V, causal=causal),
        lambda K_: attention(Q, K_, V, causal=causal),
        lambda V_: attention(Q, K, V_, causal=causal),
    )
    scales = gradient_scales(Q, K, V, G)
    for f, X, dX, scale in zip(maps, (Q, K, V), grads, scales):
        J = bp.numerical_jacobian(f, X)  # (B·Tq·dv, size of X), dense
        assert J.shape == (G.size, X.size)
        JTg = bp.unvec(bp.vjp_from_jacobian(J, G), X.shape)
        assert agreement(dX, JTg, ROUNDOFF * scale) <= TOL


@given(seed=seeds, B=leads, Tq=small, Tk=small, d=small, dv=small, causal=st.booleans())
def test_adjoint_test_in_V(seed, B, Tq, Tk, d, dv, causal):
    rng = np.random.default_rng(seed)
    Q, K, V, G = draw_qkv(rng, B, Tq, Tk, d, dv)
    forward = lambda V_: attention(Q, K, V_, causal=causal)  # noqa: E731
    gap = bp.adjoint_test(
        forward, lambda G_: attention_vjp(G_, Q, K, V, causal=causal)[2], V, G
    )
    # the gap is relative to ⟨O, G⟩, whose round-off is relative to the sum of its
    # terms' sizes: allow for the cancellation between them
    terms = forward(V) * G
    assert gap < ROUNDOFF * max(1.0, np.sum(np.abs(terms)) / abs(np.sum(terms)))


def test_dV_without_the_transpose_fails_the_adjoint_test(rng):
    Q, K, V, G = draw_qkv(rng, 2, 4, 4, 3, 4)  # square P: P dO type-checks
    P = attention_weights(Q, K)
    forward = lambda V_: attention(Q, K, V_)  # noqa: E731
    assert bp.adjoint_test(forward, lambda G_: np.swapaxes(P, 1, 2) @ G_, V, G) < 1e-12
    assert bp.adjoint_test(forward, lambda G_: P @ G_, V, G) > 1e-2


def test_the_traps_fail_finite_differences(rng):
    B, T, d, dv = 2, 4, 4, 3  # Tq = Tk = d: every wrong form has the right shape
    Q, K, V, G = draw_qkv(rng, B, T, T, d, dv)
    P = attention_weights(Q, K)
    dP = G @ np.swapaxes(V, 1, 2)
    fd_Q = bp.numerical_gradient(lambda Q_: np.sum(G * attention(Q_, K, V)), Q)
    fd_K = bp.numerical_gradient(lambda K_: np.sum(G * attention(Q, K_, V)), K)
    dS = softmax_rows_vjp(dP, P)
    assert bp.relative_error(dS @ K / 2.0, fd_Q) <= TOL
    assert bp.relative_error(np.swapaxes(dS, 1, 2) @ Q / 2.0, fd_K) <= TOL
    elementwise = dP * P * (1 - P)  # softmax treated as an element-wise function
    assert bp.relative_error(elementwise @ K / 2.0, fd_Q) > 0.1
    assert bp.relative_error(dS @ Q / 2.0, fd_K) > 0.1  # dK without the transpose


# --- leading axes: heads, broadcasting, none; float32 ---------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_heads_and_sequences_are_independent(rng, causal):
    Q, K, V, G = draw_qkv(
        rng, (2, 3), 4, 5, 3, 2
    )  # (B, H, T, ·): two batches of 3 heads
    O = attention(Q, K, V, causal)
    grads = attention_vjp(G, Q, K, V, causal)
    for b, h in np.ndindex(2, 3):  # each (b, h) is rank-2 attention on its own
        one = (Q[b, h], K[b, h], V[b, h])
        np.testing.assert_allclose(O[b, h], attention(*one, causal), rtol=1e-13)
        for dX, dX_one in zip(grads, attention_vjp(G[b, h], *one, causal)):
            np.testing.assert_allclose(dX[b, h], dX_one, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "shapes",
    [
        (
            (2, 3, 4, 2),
            (2, 1, 5, 2),
            (2, 1, 5, 3),
        ),  # keys and values shared by the heads
        ((2, 3, 4, 2), (5, 2), (5, 3)),  # one set of keys and values for everything
        ((4, 2), (2, 3, 5, 2), (1, 3, 5, 3)),  # one set of queries
    ],
)
def test_broadcast_leading_axes_sum_their_gradients(rng, shapes, causal):
    Q, K, V = (rng.normal(size=shape) for shape in shapes)
    O = attention(Q, K, V, causal)
    lead = np.broadcast_shapes(*(shape[:-2] for shape in shapes))
    assert O.shape == (*lead, 4, 3)
    G = rng.normal(size=O.shape)
    # the same as attention on explicit copies, whose gradients are summed back
    copies = [np.broadcast_to(X, (*lead, *X.shape[-2:])) for X in (Q, K, V)]
    np.testing.assert_allclose(O, attention(*copies, causal), rtol=1e-13)
    for dX, X, dX_copies in zip(
        attention_vjp(G, Q, K, V, causal), (Q, K, V), attention_vjp(G, *copies, causal)
    ):
        np.testing.assert_allclose(dX, unbroadcast(dX_copies, X.shape), rtol=1e-12)
    errors = fd_errors(Q, K, V, G, causal)
    assert max(errors) <= TOL, errors


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("B", "Tq", "Tk"), [((), 3, 5), (1, 5, 3), ((2, 3), 4, 4)])
def test_float32_in_float32_out(rng, B, Tq, Tk, causal):
    Q, K, V, G = draw_qkv(rng, B, Tq, Tk, 3, 2, dtype=np.float32)
    O = attention(Q, K, V, causal)
    grads = attention_vjp(G, Q, K, V, causal)
    assert O.dtype == np.float32 and attention_weights(Q, K, causal).dtype == np.float32
    assert [dX.dtype for dX in grads] == [np.float32] * 3
    # close to the float64 result, to float32 precision
    as64 = [X.astype(np.float64) for X in (Q, K, V, G)]
    np.testing.assert_allclose(O, attention(*as64[:3], causal), rtol=1e-5, atol=1e-6)
    for dX, dX64 in zip(grads, attention_vjp(as64[3], *as64[:3], causal)):
        np.testing.assert_allclose(dX, dX64, rtol=1e-4, atol=1e-5)
    # a float64 upstream gradient still gives each variable a gradient of its dtype
    grads = attention_vjp(as64[3], Q, K, V, causal)
    assert [dX.dtype for dX in grads] == [np.float32] * 3


# --- the softmax backward and the row-sum identity -----------------------------------


@given(seed=seeds, B=leads, Tq=small, Tk=small, d=small, dv=small, causal=st.booleans())
def test_rowsum_identity(seed, B, Tq, Tk, d, dv, causal):
    rng = np.random.default_rng(seed)
    Q, K, V, dO = draw_qkv(rng, B, Tq, Tk, d, dv)
    P = attention_weights(Q, K, causal)
    O, dP = P @ V, dO @ np.swapaxes(V, -1, -2)
    left = np.sum(dP * P, axis=-1)  # (..., Tq), needs P
    right = np.sum(dO * O, axis=-1)  # (..., Tq), needs only O and dO
    np.testing.assert_allclose(left, right, rtol=1e-12, atol=1e-12)


def test_softmax_rows_vjp_is_the_softmax_rule_of_the_losses_module(rng):
    S, dP = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    P = np.exp(S) / np.exp(S).sum(axis=-1, keepdims=True)
    flat = bp.softmax_vjp(dP.reshape(12, 5), S.reshape(12, 5)).reshape(S.shape)
    np.testing.assert_allclose(softmax_rows_vjp(dP, P), flat, rtol=1e-12, atol=1e-15)
    p, g = P[0, 0], dP[0, 0]
    J = np.diag(p) - np.outer(p, p)  # one row's Jacobian, dense and symmetric
    np.testing.assert_allclose(softmax_rows_vjp(g, p), J.T @ g, atol=1e-15)
    err = bp.relative_error(
        softmax_rows_vjp(g, p),
        bp.numerical_gradient(lambda s_: g @ bp.softmax(s_[None])[0], S[0, 0]),
    )
    assert err <= TOL


# --- the causal mask ------------------------------------------------------------------


@pytest.mark.parametrize(("Tq", "Tk"), [(4, 4), (3, 5), (5, 3), (1, 4), (4, 1)])
def test_causal_mask_is_top_left_aligned(Tq, Tk):
    M = causal_mask(Tq, Tk)
    expected = np.array([[j <= i for j in range(Tk)] for i in range(Tq)])
    np.testing.assert_array_equal(M, expected)  # torch.ones(Tq, Tk).tril(0)
    assert M[:, 0].all()  # key 0 is seen by every query: no row is empty


@pytest.mark.parametrize(("Tq", "Tk"), [(4, 4), (3, 5), (5, 3)])
def test_masked_weights_are_exactly_zero(rng, Tq, Tk):
    Q, K, V, G = draw_qkv(rng, 2, Tq, Tk, 3, 2)
    P = attention_weights(Q, K, causal=True)
    masked = ~causal_mask(Tq, Tk)
    assert np.all(P[:, masked] == 0.0)
    assert np.all(P[:, ~masked] > 0.0)
    dS = softmax_rows_vjp(G @ np.swapaxes(V, 1, 2), P)
    assert np.all(dS[:, masked] == 0.0)  # no gradient reaches a constant −∞


@pytest.mark.parametrize(("Tq", "Tk"), [(4, 4), (3, 5), (5, 3)])
def test_causal_attention_is_attention_on_the_prefix(rng, Tq, Tk):
    Q, K, V, _ = draw_qkv(rng, 2, Tq, Tk, 3, 2)
    O = attention(Q, K, V, causal=True)
    for i in range(Tq):
        seen = min(i + 1, Tk)
        prefix = attention(Q[:, i : i + 1], K[:, :seen], V[:, :seen])
        np.testing.assert_allclose(O[:, i : i + 1], prefix, rtol=1e-13)


def test_masked_gradients_do_not_leak(rng):
    B, T, d, dv = 2, 5, 3, 2
    Q, K, V, G = draw_qkv(rng, B, T, T, d, dv)
    dQ, dK, dV = attention_vjp(G, Q, K, V, causal=True)
    for i in range(T):
        # query i's gradient ignores the keys and values it cannot see
        K2, V2 = K.copy(), V.copy()
        K2[:, i + 1 :] = rng.normal(size=K2[:, i + 1 :].shape)
        V2[:, i + 1 :] = rng.normal(size=V2[:, i + 1 :].shape)
        dQ2 = attention_vjp(G, Q, K2, V2, causal=True)[0]
        np.testing.assert_array_equal(dQ2[:, : i + 1], dQ[:, : i + 1])
        # key j receives gradient only from queries i >= j
        G2 = G.copy()
        G2[:, i:] = 0.0
        _, dK2, dV2 = attention_vjp(G2, Q, K, V, causal=True)
        assert np.all(dK2[:, i:] == 0.0) and np.all(dV2[:, i:] == 0.0)
    # the last key is seen by the last query only
    last_only = np.zeros_like(G)
    last_only[:, -1] = G[:, -1]
    _, dK3, dV3 = attention_vjp(last_only, Q, K, V, causal=True)
    np.testing.assert_allclose(dK3[:, -1], dK[:, -1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dV3[:, -1], dV[:, -1], rtol=1e-13, atol=1e-15)


# --- refusals and purity --------------------------------------------------------------

Q0, K0, V0 = np.zeros((2, 3, 4)), np.zeros((2, 5, 4)), np.zeros((2, 5, 6))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: attention(Q0, np.zeros((2, 5, 3)), V0), r"same width d.*d = 4.*d = 3"),
        (lambda: attention(Q0, K0, np.zeros((2, 4, 6))), r"one value per key.*Tk = 5"),
        (
            lambda: attention(Q0, np.zeros((3, 5, 4)), V0),
            r"leading \(batch\) axes must broadcast together; got Q \(2,\), K \(3,\)",
        ),
        (
            lambda: attention(Q0, K0, np.zeros((3, 5, 6))),
            r"leading \(batch\) axes .*K \(2,\), V \(3,\)",
        ),
        (
            lambda: attention(np.zeros((2, 3, 3, 4)), np.zeros((2, 2, 5, 4)), V0),
            r"got Q \(2, 3\), K \(2, 2\)",  # three heads of queries, two of keys
        ),
        (
            lambda: attention(Q0[0, 0], K0, V0),
            r"Q must have shape \(\.\.\., Tq, d_k\), at least 2-D; got 1-D",
        ),
        (lambda: attention(Q0, K0[0, 0], V0), r"K must have shape \(\.\.\., Tk, d_k\)"),
        (lambda: attention(Q0, K0, V0[0, 0]), r"V must have shape \(\.\.\., Tk, d_v\)"),
        (lambda: attention(Q0, K0, np.zeros((2, 0, 6))), r"V must not be empty"),
        (lambda: attention(Q0, K0, V0, causal="yes"), r"causal must be True or False"),
        (lambda: attention(Q0.astype(complex), K0, V0), r"real numeric dtype"),
        (lambda: attention_weights(Q0, np.zeros((2, 5, 1))), r"same width d"),
        (
            lambda: attention_vjp(np.zeros((2, 3, 5)), Q0, K0, V0),
            r"dO must have the shape of O, \(\.\.\., Tq, d_v\) = \(2, 3, 6\); got \(2, 3, 5\)",
        ),
        (lambda: attention_vjp(np.zeros((3, 6)), Q0, K0, V0), r"got \(3, 6\)"),
        (lambda: attention_vjp(np.zeros(6), Q0, K0, V0), r"dO must have shape"),
        (lambda: attention_vjp(np.zeros((2, 3, 6)), Q0, K0[:, :, :2], V0), r"width"),
        (lambda: softmax_rows_vjp(np.zeros((2, 3)), np.zeros((2, 4))), r"dP must have"),
        (lambda: causal_mask(0, 3), r"Tq must be a positive integer"),
        (lambda: causal_mask(3, 2.5), r"Tk must be a positive integer"),
    ],
)
def test_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_no_function_modifies_its_input(rng):
    Q, K, V, G = draw_qkv(rng, 2, 3, 4, 2, 2)
    saved = [X.copy() for X in (Q, K, V, G)]
    for causal in (False, True):
        P = attention_weights(Q, K, causal)
        attention(Q, K, V, causal)
        attention_vjp(G, Q, K, V, causal)
        P_saved = P.copy()
        softmax_rows_vjp(G @ np.swapaxes(V, 1, 2), P)
        np.testing.assert_array_equal(P, P_saved)
    for before, after in zip(saved, (Q, K, V, G)):
        np.testing.assert_array_equal(before, after)


def test_integer_inputs_are_accepted_and_not_changed():
    Q = np.arange(6).reshape(1, 3, 2)
    V = np.arange(9).reshape(1, 3, 3)
    O = attention(Q, Q, V, causal=True)
    assert O.dtype == np.float64 and Q.dtype.kind == "i"
    np.testing.assert_array_equal(O[0, 0], V[0, 0])  # the first query sees key 0 only
