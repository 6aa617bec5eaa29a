"""The two layers of "Deriving any layer": the gated linear unit and L2
normalisation of rows, against finite differences, the explicit Jacobian and
the adjoint test, in float64.

Shapes are drawn by hypothesis, batch 1 and square weights included: with a
square W₁ a transposed formula has the right shape, so only the numbers can
tell. The finite differences are compared down to their round-off floor
(``measures.fd_error``): a bias gradient is a sum over the batch that can
cancel far below the terms E adds up.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st
from measures import fd_error

import backprop as bp
from backprop.recipes import glu, glu_vjp, l2_normalize, l2_normalize_vjp

dims = st.integers(min_value=1, max_value=5)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
epsilons = st.sampled_from([0.0, 1e-3, 0.5])


def glu_data(seed, B, n_in, n_out):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, n_in))
    W1, W2 = rng.normal(size=(2, n_out, n_in))
    b1, b2 = rng.normal(size=(2, n_out))
    G = rng.normal(size=(B, n_out))  # dY, with E = <G, Y>
    return X, W1, b1, W2, b2, G


def glu_terms(X, W1, b1, W2, b2, G) -> float:
    """A bound on the sizes of what E = ⟨G, Z₁ ⊙ σ(Z₂)⟩ adds up."""
    Z1 = np.abs(X) @ np.abs(W1).T + np.abs(b1)
    Z2 = np.abs(X) @ np.abs(W2).T + np.abs(b2)
    return float(np.sum(np.abs(G) * Z1 * (1.0 + Z2)))


# --- the gated linear unit --------------------------------------------------------


def test_glu_is_the_column_form_row_by_row():
    X, W1, b1, W2, b2, _ = glu_data(1, 4, 3, 2)
    Y = glu(X, W1, b1, W2, b2)
    assert Y.shape == (4, 2)
    for r in range(4):
        z1, z2 = W1 @ X[r] + b1, W2 @ X[r] + b2
        np.testing.assert_allclose(Y[r], z1 / (1 + np.exp(-z2)), rtol=1e-14)


def check_glu_against_finite_differences(X, W1, b1, W2, b2, G):
    args = [X, W1, b1, W2, b2]
    grads = glu_vjp(G, *args)
    terms = glu_terms(*args, G)
    for k, (arg, grad) in enumerate(zip(args, grads)):
        assert grad.shape == arg.shape

        def E(V, k=k):
            return np.sum(G * glu(*args[:k], V, *args[k + 1 :]))

        assert fd_error(grad, E, arg, terms) <= TOL, k


@given(seed=seeds, B=dims, n_in=dims, n_out=dims)
def test_glu_vjp_matches_finite_differences(seed, B, n_in, n_out):
    # checks: rc-glu-dz, rc-glu-grads
    check_glu_against_finite_differences(*glu_data(seed, B, n_in, n_out))


@given(seed=seeds, n=dims)
def test_glu_vjp_batch_one_square_weights(seed, n):
    # checks: rc-glu-dz, rc-glu-grads
    check_glu_against_finite_differences(*glu_data(seed, 1, n, n))


@given(seed=seeds, B=dims, n_in=dims, n_out=dims)
def test_glu_vjp_is_the_explicit_jacobian_transposed(seed, B, n_in, n_out):
    """Per row, ∂y/∂x = diag(σ(z₂)) W₁ + diag(z₁ ⊙ σ'(z₂)) W₂; across rows
    the Jacobian is block diagonal, and the VJP is Jᵀ g."""
    X, W1, b1, W2, b2, G = glu_data(seed, B, n_in, n_out)
    J = bp.numerical_jacobian(lambda V: glu(V, W1, b1, W2, b2), X)
    dX = glu_vjp(G, X, W1, b1, W2, b2)[0]
    assert bp.relative_error(dX, bp.unvec(bp.vjp_from_jacobian(J, G), X.shape)) <= TOL
    # the explicit formula, row by row
    for r in range(B):
        z1, z2 = W1 @ X[r] + b1, W2 @ X[r] + b2
        s = 1 / (1 + np.exp(-z2))
        J_r = s[:, None] * W1 + (z1 * s * (1 - s))[:, None] * W2
        J_num = bp.numerical_jacobian(
            lambda x: glu(x[None, :], W1, b1, W2, b2)[0], X[r]
        )
        assert bp.relative_error(J_r, J_num) <= TOL
        np.testing.assert_allclose(G[r] @ J_r, dX[r], rtol=1e-12, atol=1e-14)


@given(seed=seeds, B=dims, n_in=dims, n_out=dims)
def test_glu_vjp_passes_the_adjoint_test(seed, B, n_in, n_out):
    """The JVP by the product rule, against every output of the VJP."""
    X, W1, b1, W2, b2, G = glu_data(seed, B, n_in, n_out)
    rng = np.random.default_rng(seed + 1)
    Z1, Z2 = X @ W1.T + b1, X @ W2.T + b2
    S = bp.sigmoid(Z2)

    def jvp(dX, dW1, db1, dW2, db2):  # dY = dZ₁ ⊙ σ(Z₂) + Z₁ ⊙ σ'(Z₂) ⊙ dZ₂
        dZ1 = dX @ W1.T + X @ dW1.T + db1
        dZ2 = dX @ W2.T + X @ dW2.T + db2
        return dZ1 * S + Z1 * S * (1 - S) * dZ2

    args = [X, W1, b1, W2, b2]
    for k, arg in enumerate(args):
        zeros = [np.zeros_like(a) for a in args]

        def along(V, k=k, zeros=zeros):
            return jvp(*zeros[:k], V, *zeros[k + 1 :])

        gap = bp.adjoint_test(
            along, lambda U, k=k: glu_vjp(U, *args)[k], rng.normal(size=arg.shape), G
        )
        assert gap <= 1e-10, k


def test_adjoint_test_rejects_a_transposed_glu_gradient():
    """With square weights, dX = G₁ W₁ᵀ + G₂ W₂ᵀ type-checks; the numbers refuse it."""
    X, W1, b1, W2, b2, G = glu_data(3, 3, 4, 4)
    S = bp.sigmoid(X @ W2.T + b2)
    Z1 = X @ W1.T + b1
    G1, G2 = G * S, G * Z1 * S * (1 - S)
    wrong = G1 @ W1.T + G2 @ W2.T
    fd = bp.numerical_gradient(lambda V: np.sum(G * glu(V, W1, b1, W2, b2)), X)
    assert bp.relative_error(wrong, fd) > 1e-2
    assert bp.relative_error(glu_vjp(G, X, W1, b1, W2, b2)[0], fd) <= TOL


# --- L2 normalisation of rows -----------------------------------------------------


def l2_data(seed, B, n):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n)), rng.normal(size=(B, n))


def test_l2_normalize_values():
    X = np.array([[3.0, 4.0], [0.0, -2.0]])
    np.testing.assert_allclose(l2_normalize(X), [[0.6, 0.8], [0.0, -1.0]])
    # ε under the root: √(25 + 11) = 6
    np.testing.assert_allclose(l2_normalize(X[:1], eps=11), [[0.5, 2 / 3]])
    np.testing.assert_array_equal(l2_normalize(np.zeros((1, 3)), eps=1e-6), 0)


@given(seed=seeds, B=dims, n=dims, eps=epsilons)
def test_l2_normalize_vjp_matches_finite_differences(seed, B, n, eps):
    # checks: rc-l2-diff, rc-l2-grad
    X, G = l2_data(seed, B, n)
    dX = l2_normalize_vjp(G, X, eps)
    assert dX.shape == X.shape
    terms = float(np.sum(np.abs(G))) * (n + 1)
    E = lambda V: np.sum(G * l2_normalize(V, eps))  # noqa: E731
    assert fd_error(dX, E, X, terms) <= TOL


@given(seed=seeds, n=dims, eps=epsilons)
def test_l2_normalize_vjp_batch_one(seed, n, eps):
    # checks: rc-l2-diff, rc-l2-grad
    X, G = l2_data(seed, 1, n)
    E = lambda V: np.sum(G * l2_normalize(V, eps))  # noqa: E731
    terms = float(np.sum(np.abs(G))) * (n + 1)
    assert fd_error(l2_normalize_vjp(G, X, eps), E, X, terms) <= TOL


@given(seed=seeds, B=dims, n=dims, eps=epsilons)
def test_l2_normalize_jacobian_is_block_diagonal_projectors(seed, B, n, eps):
    """Row r's block is (I − yᵣyᵣᵀ)/ℓᵣ, symmetric; other blocks are zero."""
    X, G = l2_data(seed, B, n)
    Y = l2_normalize(X, eps)
    ell = np.sqrt(np.sum(X * X, axis=1) + eps)
    J = bp.numerical_jacobian(lambda V: l2_normalize(V, eps), X)
    # vec stacks columns: entry (r, j) of X is vec index r + B j
    blocks, sizes = np.zeros((2, B, n, B, n))
    for r in range(B):
        blocks[r, :, r, :] = (np.eye(n) - np.outer(Y[r], Y[r])) / ell[r]
        sizes[r, :, r, :] = (np.eye(n) + np.abs(np.outer(Y[r], Y[r]))) / ell[r]
    J_exact = blocks.transpose(1, 0, 3, 2).reshape(B * n, B * n)
    # With n = 1 and a small ε the block is (1 − y²)/ℓ = ε/ℓ³: its two terms
    # cancel, so the error is measured against the size of the terms.
    scale = max(np.linalg.norm(J_exact), np.linalg.norm(sizes))
    assert np.linalg.norm(J_exact - J) <= TOL * scale
    dX = l2_normalize_vjp(G, X, eps)
    JtG = bp.unvec(bp.vjp_from_jacobian(J_exact, G), X.shape)
    assert bp.relative_error(dX, JtG) <= TOL


@given(seed=seeds, B=dims, n=dims, eps=epsilons)
def test_l2_normalize_vjp_passes_the_adjoint_test(seed, B, n, eps):
    X, G = l2_data(seed, B, n)
    ell = np.sqrt(np.sum(X * X, axis=1, keepdims=True) + eps)
    Y = X / ell

    def jvp(dX):  # dY = diag(ℓ)⁻¹ (dX − diag((Y ⊙ dX) 𝟏) Y)
        return (dX - np.sum(Y * dX, axis=1, keepdims=True) * Y) / ell

    V = np.random.default_rng(seed + 1).normal(size=X.shape)
    gap = bp.adjoint_test(jvp, lambda U: l2_normalize_vjp(U, X, eps), V, G)
    assert gap <= 1e-10


@given(seed=seeds, B=dims, n=dims)
def test_l2_gradient_is_orthogonal_to_each_row(seed, B, n):
    """With ε = 0, Y does not change when a row is scaled, so each row of
    ∇_X E is orthogonal to that row of X."""
    X, G = l2_data(seed, B, n)
    dX = l2_normalize_vjp(G, X)
    scale = np.linalg.norm(dX, axis=1) * np.linalg.norm(X, axis=1)
    assert np.all(np.abs(np.sum(dX * X, axis=1)) <= 1e-13 * (scale + 1e-300))


# --- refusals and pure functions --------------------------------------------------

X0, W0, b0 = np.ones((2, 3)), np.ones((4, 3)), np.ones(4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: glu(np.ones(3), W0, b0, W0, b0), r"X must be 2-D"),
        (lambda: glu(X0, np.ones((4, 2)), b0, W0, b0), r"W1 has shape \(4, 2\)"),
        (lambda: glu(X0, W0, b0, np.ones((3, 3)), b0), r"W2 must have the shape"),
        (lambda: glu(X0, W0, np.ones(3), W0, b0), r"b1 must have shape \(4,\)"),
        (lambda: glu(X0, W0, b0, W0, np.ones(5)), r"b2 must have shape \(4,\)"),
        (
            lambda: glu_vjp(np.ones((2, 3)), X0, W0, b0, W0, b0),
            r"dY must have the shape of Y .*\(2, 4\)",
        ),
        (lambda: glu(X0.astype(str), W0, b0, W0, b0), r"real numeric dtype"),
        (lambda: l2_normalize(np.ones((0, 3))), r"must not be empty"),
        (lambda: l2_normalize(np.zeros((2, 3))), r"row 0 of X has length 0"),
        (lambda: l2_normalize(X0, eps=-1.0), r"eps must be non-negative"),
        (lambda: l2_normalize(X0, eps=True), r"eps must be a non-negative"),
        (
            lambda: l2_normalize_vjp(np.ones((3, 2)), X0),
            r"dY must have the shape of Y .*\(2, 3\)",
        ),
    ],
)
def test_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_inputs_are_not_modified(rng):
    X, W1, b1, W2, b2, G = glu_data(5, 3, 4, 2)
    dY = rng.normal(size=X.shape)
    args = (X, W1, b1, W2, b2, G, dY)
    saved = [a.copy() for a in args]
    glu(X, W1, b1, W2, b2)
    glu_vjp(G, X, W1, b1, W2, b2)
    l2_normalize(X, eps=0.1)
    l2_normalize_vjp(dY, X, eps=0.1)
    for a, s in zip(args, saved):
        np.testing.assert_array_equal(a, s)


def test_float32_stays_float32():
    X, W1, b1, W2, b2, G = (a.astype(np.float32) for a in glu_data(6, 2, 3, 2))
    assert glu(X, W1, b1, W2, b2).dtype == np.float32
    assert all(g.dtype == np.float32 for g in glu_vjp(G, X, W1, b1, W2, b2))
    assert l2_normalize(X).dtype == np.float32
    assert l2_normalize_vjp(X, X).dtype == np.float32
