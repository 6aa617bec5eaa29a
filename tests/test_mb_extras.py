"""The adjoint pairs of ``backprop.broadcasting``: copy ↔ sum, relabel ↔ relabel back.

Each pair is checked three ways: the VJP against central differences of the scalar
``E = ⟨G, F(x)⟩`` (whose gradient in ``x`` is the VJP of ``G``), the dot-product
identity ``⟨F(x), g⟩ = ⟨x, F*(g)⟩`` with ``bp.adjoint_test``, and a wrong VJP that
the same instruments must reject. Shapes are drawn by hypothesis, batch 1 included.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from hypothesis import assume, given
from hypothesis import strategies as st

import backprop as bp
from backprop.broadcasting import (
    broadcast,
    broadcast_rows,
    broadcast_rows_vjp,
    fanout,
    fanout_vjp,
    reshape,
    reshape_vjp,
    transpose,
    transpose_vjp,
    unbroadcast,
)

dims = st.integers(min_value=1, max_value=5)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
ROUNDOFF = 1e-12


def vjp_matches_finite_differences(forward, vjp, x, G) -> float:
    """Relative error of ``vjp(G)`` against central differences of ⟨G, forward(x)⟩."""
    numerical = bp.numerical_gradient(lambda x_: np.sum(G * forward(x_)), x)
    return bp.relative_error(vjp(G), numerical)


def assert_adjoint_pair(forward, vjp, x, G) -> None:
    """``vjp`` matches central differences and passes the adjoint test at (x, G)."""
    assert vjp_matches_finite_differences(forward, vjp, x, G) <= TOL
    assert bp.adjoint_test(forward, vjp, x, G) < ROUNDOFF


# --- broadcast rows ↔ column sum ------------------------------------------------------


@given(seed=seeds, B=dims, n=dims)
def test_broadcast_rows_pair(seed, B, n):
    rng = np.random.default_rng(seed)
    b, G = rng.normal(size=n), rng.normal(size=(B, n))
    Y = broadcast_rows(b, B)
    assert Y.shape == (B, n)
    np.testing.assert_array_equal(Y, np.ones((B, 1)) * b)
    assert broadcast_rows_vjp(G).shape == b.shape
    assert_adjoint_pair(lambda b_: broadcast_rows(b_, B), broadcast_rows_vjp, b, G)


def test_broadcast_rows_vjp_is_a_sum_not_a_mean(rng):
    b, G = rng.normal(size=3), rng.normal(size=(4, 3))
    mean_instead = lambda G_: G_.mean(axis=0)  # noqa: E731
    assert bp.adjoint_test(lambda b_: broadcast_rows(b_, 4), mean_instead, b, G) > 0.5
    np.testing.assert_allclose(broadcast_rows_vjp(G), G.sum(axis=0), rtol=1e-14)


# --- broadcast ↔ unbroadcast, arbitrary numpy shapes ----------------------------------


@st.composite
def broadcast_pairs(draw):
    """(small, big): a shape and a shape it broadcasts to, under numpy's rules."""
    big = tuple(draw(st.lists(dims, min_size=1, max_size=4)))
    keep = draw(st.integers(min_value=0, max_value=len(big)))
    tail = big[len(big) - keep :]
    small = tuple(d if draw(st.booleans()) else 1 for d in tail)
    return small, big


@given(seed=seeds, pair=broadcast_pairs())
def test_broadcast_unbroadcast_pair(seed, pair):
    small, big = pair
    rng = np.random.default_rng(seed)
    x, G = rng.normal(size=small), rng.normal(size=big)
    assume(x.ndim >= 1)  # the package's arrays have at least one axis
    Y = broadcast(x, big)
    np.testing.assert_array_equal(Y, np.broadcast_to(x, big))
    dx = unbroadcast(G, small)
    assert dx.shape == small
    assert np.isclose(np.sum(dx), np.sum(G))  # every entry of G lands somewhere once
    assert_adjoint_pair(
        lambda x_: broadcast(x_, big), lambda G_: unbroadcast(G_, small), x, G
    )


def test_unbroadcast_to_a_scalar_sums_everything(rng):
    G = rng.normal(size=(3, 4))
    assert unbroadcast(G, ()).shape == ()
    assert np.isclose(unbroadcast(G, ()), G.sum())


@pytest.mark.parametrize(
    ("small", "axes"),
    [
        ((4,), (0,)),  # (n,): the batch axis was added
        ((1, 4), (0,)),  # (1, n): the batch axis was stretched, kept
        ((3, 1), (1,)),  # (B, 1): the feature axis was stretched
        ((1, 1), (0, 1)),  # (1, 1): both
        ((3, 4), ()),  # same shape: nothing to sum
    ],
)
def test_unbroadcast_sums_exactly_the_broadcast_axes(rng, small, axes):
    G = rng.normal(size=(3, 4))
    expected = G.sum(axis=axes, keepdims=True).reshape(small) if axes else G
    np.testing.assert_allclose(unbroadcast(G, small), expected, rtol=1e-14)


def test_a_wrong_unbroadcast_fails_the_adjoint_test(rng):
    x, G = rng.normal(size=(3, 1)), rng.normal(size=(3, 4))
    # summing over the wrong axis has the wrong shape; averaging has the right one
    wrong = lambda G_: G_.mean(axis=1, keepdims=True)  # noqa: E731
    assert bp.adjoint_test(lambda x_: broadcast(x_, (3, 4)), wrong, x, G) > 0.5


# --- fan-out ↔ add --------------------------------------------------------------------


@given(seed=seeds, k=dims, B=dims, n=dims)
def test_fanout_pair(seed, k, B, n):
    rng = np.random.default_rng(seed)
    x, G = rng.normal(size=(B, n)), rng.normal(size=(k, B, n))
    copies = fanout(x, k)
    assert len(copies) == k and all(np.array_equal(c, x) for c in copies)
    stacked = lambda x_: np.stack(fanout(x_, k))  # noqa: E731
    assert fanout_vjp(list(G)).shape == x.shape
    err = vjp_matches_finite_differences(stacked, lambda G_: fanout_vjp(list(G_)), x, G)
    assert err <= TOL
    assert bp.adjoint_test(stacked, fanout_vjp, x, G) < ROUNDOFF


def test_fanout_copies_are_independent(rng):
    x = rng.normal(size=3)
    first, second = fanout(x, 2)
    first[0] = 99.0
    assert second[0] == x[0] != 99.0


def test_fanout_keeping_one_gradient_fails_the_adjoint_test(rng):
    x, G = rng.normal(size=4), rng.normal(size=(3, 4))
    stacked = lambda x_: np.stack(fanout(x_, 3))  # noqa: E731
    assert bp.adjoint_test(stacked, lambda G_: G_[-1], x, G) > 0.1


# --- transpose ↔ transpose, reshape ↔ reshape -----------------------------------------


@given(seed=seeds, shape=st.lists(dims, min_size=1, max_size=4), data=st.data())
def test_transpose_pair(seed, shape, data):
    rng = np.random.default_rng(seed)
    axes = tuple(data.draw(st.permutations(range(len(shape)))))
    X = rng.normal(size=shape)
    Y = transpose(X, axes)
    G = rng.normal(size=Y.shape)
    np.testing.assert_array_equal(Y, np.transpose(X, axes))
    assert transpose_vjp(G, axes).shape == X.shape
    assert_adjoint_pair(
        lambda X_: transpose(X_, axes), lambda G_: transpose_vjp(G_, axes), X, G
    )


@given(seed=seeds, n=dims)
def test_matrix_transpose_square(seed, n):
    rng = np.random.default_rng(seed)
    X, G = rng.normal(size=(n, n)), rng.normal(size=(n, n))
    np.testing.assert_array_equal(transpose_vjp(G), G.T)
    assert bp.adjoint_test(transpose, transpose_vjp, X, G) < ROUNDOFF


def test_the_identity_is_not_the_adjoint_of_a_square_transpose(rng):
    X, G = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    assert bp.adjoint_test(transpose, lambda G_: G_, X, G) > 1e-2


def test_transpose_vjp_uses_the_inverse_permutation(rng):
    X = rng.normal(size=(3, 3, 3))  # equal lengths: a wrong permutation keeps the shape
    axes = (1, 2, 0)  # a 3-cycle, not its own inverse
    G = rng.normal(size=(3, 3, 3))
    forward = lambda X_: transpose(X_, axes)  # noqa: E731
    right = bp.adjoint_test(forward, lambda G_: transpose_vjp(G_, axes), X, G)
    again = bp.adjoint_test(forward, lambda G_: np.transpose(G_, axes), X, G)
    assert right < ROUNDOFF and again > 1e-2


@given(seed=seeds, B=dims, T=dims, n=dims)
def test_reshape_pair(seed, B, T, n):
    rng = np.random.default_rng(seed)
    X, G = rng.normal(size=(B, T, n)), rng.normal(size=(B * T, n))
    np.testing.assert_array_equal(reshape(X, (B * T, n)), X.reshape(B * T, n))
    assert reshape_vjp(G, X.shape).shape == X.shape
    assert_adjoint_pair(
        lambda X_: reshape(X_, (B * T, n)), lambda G_: reshape_vjp(G_, (B, T, n)), X, G
    )


def test_a_reshape_in_the_other_order_fails_the_adjoint_test(rng):
    X, G = rng.normal(size=(2, 3)), rng.normal(size=(3, 2))
    column_major = lambda G_: G_.reshape((2, 3), order="F")  # noqa: E731
    assert bp.adjoint_test(lambda X_: reshape(X_, (3, 2)), column_major, X, G) > 1e-2


# --- refusals and purity --------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: broadcast_rows(np.zeros((2, 3)), 4), r"b must be 1-D"),
        (lambda: broadcast_rows(np.zeros(3), 0), r"B must be a positive integer"),
        (lambda: broadcast_rows_vjp(np.zeros(3)), r"G must be 2-D"),
        (
            lambda: broadcast(np.zeros(3), (4,)),
            r"x of shape \(3,\) cannot be broadcast to shape \(4,\)",
        ),
        (lambda: broadcast(np.zeros((2, 3)), (3,)), r"has 2 axes"),
        (
            lambda: unbroadcast(np.zeros((3, 4)), (3, 2)),
            r"target shape \(3, 2\) cannot be broadcast to shape \(3, 4\)",
        ),
        (lambda: unbroadcast(np.zeros(4), (1, 4)), r"has 2 axes"),
        (lambda: unbroadcast(np.zeros(4), "ab"), r"tuple of non-negative integers"),
        (lambda: fanout(np.zeros(3), 0), r"k must be a positive integer"),
        (lambda: fanout_vjp([]), r"at least one gradient"),
        (lambda: fanout_vjp(np.zeros(3)), r"leading axis for the uses"),
        (
            lambda: fanout_vjp([np.zeros(2), np.zeros(3)]),
            r"shape of the value, \(2,\); gs\[1\] has shape \(3,\)",
        ),
        (lambda: transpose(np.zeros((2, 3)), (0, 0)), r"permutation of 0 … 1"),
        (lambda: transpose_vjp(np.zeros((2, 3)), (1,)), r"permutation"),
        (
            lambda: reshape(np.zeros((2, 3)), (4,)),
            r"cannot reshape X of shape \(2, 3\) \(6 entries\) into shape \(4,\)",
        ),
        (lambda: reshape_vjp(np.zeros(6), (4, 2)), r"cannot reshape G"),
        (lambda: transpose(np.array(["a", "b"])), r"real numeric dtype"),
    ],
)
def test_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_no_function_modifies_its_input(rng):
    b, G = rng.normal(size=3), rng.normal(size=(4, 3))
    X = rng.normal(size=(2, 3, 4))
    saved = [b.copy(), G.copy(), X.copy()]
    broadcast_rows(b, 4)
    broadcast_rows_vjp(G)
    broadcast(b, (4, 3))
    unbroadcast(G, (3,))
    fanout(b, 2)
    fanout_vjp([b, b])
    transpose(X, (2, 0, 1))
    transpose_vjp(X, (1, 2, 0))
    reshape(X, (6, 4))
    reshape_vjp(X, (24,))
    for before, after in zip(saved, [b, G, X]):
        np.testing.assert_array_equal(before, after)


def test_results_do_not_alias_their_input(rng):
    X = rng.normal(size=(2, 3))
    for out in (transpose(X), reshape(X, (3, 2)), broadcast(X, (2, 3))):
        out[...] = 0.0
    assert np.all(X != 0.0)
