"""``embedding`` and ``embedding_vjp`` of ``backprop.layers``: a gather and a scatter-add.

The lookup ``E[ids]`` is linear in the table ``E``: a product with a one-hot
matrix. So its VJP is checked against central differences, against the explicit
Jacobian ``I_d ⊗ P``, and with the adjoint test; repeated ids must accumulate.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st

import backprop as bp
from backprop.layers import embedding, embedding_vjp

seeds = st.integers(min_value=0, max_value=2**32 - 1)
ROUNDOFF = 1e-12


@st.composite
def lookups(draw):
    """(ids shape, V, d): any number of id axes (0 to 3), a small table."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    return shape, draw(st.integers(1, 6)), draw(st.integers(1, 4))


@given(seed=seeds, case=lookups())
def test_embedding_is_a_gather(seed, case):
    shape, V, d = case
    rng = np.random.default_rng(seed)
    ids, E = rng.integers(0, V, size=shape), rng.normal(size=(V, d))
    Y = embedding(ids, E)
    assert Y.shape == (*shape, d)
    for index in np.ndindex(shape):
        np.testing.assert_array_equal(Y[index], E[ids[index]])


@given(seed=seeds, case=lookups())
def test_embedding_vjp_matches_differences_and_is_the_adjoint(seed, case):
    shape, V, d = case
    rng = np.random.default_rng(seed)
    ids, E = rng.integers(0, V, size=shape), rng.normal(size=(V, d))
    G = rng.normal(size=(*shape, d))
    dE = embedding_vjp(G, ids, E)
    assert dE.shape == E.shape
    fd = bp.numerical_gradient(lambda E_: np.sum(G * embedding(ids, E_)), E)
    assert bp.relative_error(dE, fd) <= TOL
    gap = bp.adjoint_test(
        lambda E_: embedding(ids, E_), lambda G_: embedding_vjp(G_, ids, E), E, G
    )
    assert gap < ROUNDOFF


@given(seed=seeds, B=st.integers(1, 6), V=st.integers(1, 5), d=st.integers(1, 3))
def test_one_hot_product_and_its_jacobian(seed, B, V, d):
    rng = np.random.default_rng(seed)
    ids, E, G = (
        rng.integers(0, V, size=B),
        rng.normal(size=(V, d)),
        rng.normal(size=(B, d)),
    )
    P = np.eye(V)[ids]  # (B, V), one-hot rows
    np.testing.assert_allclose(embedding(ids, E), P @ E, rtol=1e-15)
    np.testing.assert_allclose(embedding_vjp(G, ids, E), P.T @ G, rtol=1e-13)
    J = bp.numerical_jacobian(lambda E_: embedding(ids, E_), E)  # ∂vec Y / ∂vec E
    np.testing.assert_allclose(J, np.kron(np.eye(d), P), atol=1e-9)


def test_repeated_ids_accumulate(rng):
    E = rng.normal(size=(5, 3))
    ids = np.array([[1, 3, 1], [1, 0, 3]])  # 1 three times, 3 twice, 2 and 4 never
    G = rng.normal(size=(2, 3, 3))
    dE = embedding_vjp(G, ids, E)
    np.testing.assert_allclose(dE[1], G[0, 0] + G[0, 2] + G[1, 0], rtol=1e-14)
    np.testing.assert_allclose(dE[3], G[0, 1] + G[1, 2], rtol=1e-14)
    np.testing.assert_allclose(dE[0], G[1, 1], rtol=1e-14)
    assert np.all(dE[[2, 4]] == 0.0)
    # buffered fancy-index assignment keeps one of the repeats, not their sum
    buffered = np.zeros_like(E)
    buffered[ids] += G
    assert bp.relative_error(buffered, dE) > 0.1


def test_scalar_id(rng):
    E, g = rng.normal(size=(4, 3)), rng.normal(size=3)
    np.testing.assert_array_equal(embedding(2, E), E[2])
    dE = embedding_vjp(g, np.int64(2), E)
    np.testing.assert_array_equal(dE[2], g)
    assert np.all(dE[[0, 1, 3]] == 0.0)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3)])
def test_empty_ids_read_nothing_and_return_no_gradient(rng, shape):
    E, ids = rng.normal(size=(4, 3)), np.zeros(shape, dtype=int)
    Y = embedding(ids, E)
    assert Y.shape == (
        *shape,
        3,
    )  # as torch.nn.functional.embedding: empty, not refused
    dE = embedding_vjp(np.zeros((*shape, 3)), ids, E)
    assert dE.shape == E.shape and np.all(dE == 0.0)


@pytest.mark.parametrize("dY_dtype", [np.float32, np.float64])
def test_the_table_keeps_its_dtype(rng, dY_dtype):
    E, ids = rng.normal(size=(4, 3)).astype(np.float32), np.array([[0, 2], [2, 3]])
    G = rng.normal(size=(2, 2, 3)).astype(dY_dtype)
    Y, dE = embedding(ids, E), embedding_vjp(G, ids, E)
    assert Y.dtype == np.float32 and dE.dtype == np.float32
    np.testing.assert_allclose(
        dE, embedding_vjp(G, ids, E.astype(np.float64)), rtol=1e-6
    )
    assert embedding(ids, np.eye(4, dtype=int)).dtype == np.float64  # integers: float64


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda E: embedding(np.array([0.0, 1.0]), E), r"ids must be an array of int"),
        (lambda E: embedding(np.array([True, False]), E), r"got dtype bool"),
        (lambda E: embedding([0, 4], E), r"ids must lie in 0 … 3.*got 4"),
        (lambda E: embedding([0, -1], E), r"got -1"),
        (lambda E: embedding([], E), r"ids must be an array of int.*float64"),
        (lambda E: embedding([0], E[0]), r"W_emb must be 2-D"),
        (lambda E: embedding([0], np.zeros((4, 3, 1))), r"W_emb must be 2-D"),
        (
            lambda E: embedding_vjp(np.zeros((2, 2)), [0, 1], E),
            r"dY must have the shape of Y = W_emb\[ids\], \(\*ids.shape, n_emb\) = \(2, 3\)",
        ),
        (lambda E: embedding_vjp(np.zeros(3), [0, 1], E), r"got \(3,\)"),
        (lambda E: embedding_vjp(np.zeros((1, 3)), [5], E), r"ids must lie"),
    ],
)
def test_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call(np.zeros((4, 3)))


def test_inputs_are_not_modified_and_results_do_not_alias(rng):
    E, ids = rng.normal(size=(4, 3)), np.array([0, 2, 2])
    G = rng.normal(size=(3, 3))
    saved = [E.copy(), ids.copy(), G.copy()]
    Y = embedding(ids, E)
    dE = embedding_vjp(G, ids, E)
    for before, after in zip(saved, [E, ids, G]):
        np.testing.assert_array_equal(before, after)
    Y[...] = 0.0
    dE[...] = 0.0
    assert np.all(E == saved[0]) and np.all(G == saved[2])
