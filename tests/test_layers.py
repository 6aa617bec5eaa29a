"""Every op against central differences and against its explicit Jacobian, in float64.

The linear layer is checked for each of its three inputs; each activation for its
one input. Shapes are drawn by hypothesis, batch 1 and square W included: with a
square W, a transposed formula has the right shape, so only the numbers can tell.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st

import backprop as bp

dims = st.integers(min_value=1, max_value=5)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def layer_data(seed, B, n_in, n_out):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(B, n_in))
    W = rng.normal(size=(n_out, n_in))
    b = rng.normal(size=n_out)
    G = rng.normal(size=(B, n_out))  # an upstream gradient dZ, E = <G, Z>
    return A, W, b, G


def away_from_zero(rng, shape):
    """Entries of magnitude 0.05 to 2: relu's kink stays out of the
    finite-difference stencil."""
    signs = rng.choice([-1.0, 1.0], size=shape)
    return signs * rng.uniform(0.05, 2.0, size=shape)


# --- the linear layer -------------------------------------------------------------


def test_linear_is_the_column_form_row_by_row(rng):
    A, W, b, _ = layer_data(1, 4, 3, 2)
    Z = bp.linear(A, W, b)
    assert Z.shape == (4, 2)
    for r in range(4):
        np.testing.assert_allclose(Z[r], W @ A[r] + b, rtol=1e-14)


def check_linear_against_finite_differences(A, W, b, G):
    """E = ⟨G, A Wᵀ + b⟩ is linear in each argument: a central difference
    has no truncation error at any step, so the step is 1, and the
    round-off of E, about ε Σ|G ⊙ Z|, is not divided by a small h (with
    h = 1e-6 a gradient such as db = Σ_rows G that cancels to 1e-4 of E's
    terms fails the 1e-7 test)."""
    dA, dW, db = bp.linear_vjp(G, A, W)
    assert (dA.shape, dW.shape, db.shape) == (A.shape, W.shape, b.shape)

    def E(A, W, b):
        return np.sum(G * bp.linear(A, W, b))

    num_A = bp.numerical_gradient(lambda X: E(X, W, b), A, h=1.0)
    num_W = bp.numerical_gradient(lambda X: E(A, X, b), W, h=1.0)
    num_b = bp.numerical_gradient(lambda X: E(A, W, X), b, h=1.0)
    assert bp.relative_error(dA, num_A) <= TOL
    assert bp.relative_error(dW, num_W) <= TOL
    assert bp.relative_error(db, num_b) <= TOL


@given(seed=seeds, B=dims, n_in=dims, n_out=dims)
def test_linear_vjp_matches_finite_differences(seed, B, n_in, n_out):
    data = layer_data(seed, B, n_in, n_out)
    check_linear_against_finite_differences(*data)


@given(seed=seeds, n=dims)
def test_linear_vjp_batch_one_square_w(seed, n):
    check_linear_against_finite_differences(*layer_data(seed, 1, n, n))


@given(seed=seeds, B=dims, n_in=dims, n_out=dims)
def test_linear_vjp_matches_explicit_jacobians(seed, B, n_in, n_out):
    A, W, b, G = layer_data(seed, B, n_in, n_out)
    dA, dW, db = bp.linear_vjp(G, A, W)
    J_A, J_W, J_b = bp.linear_jacobians(A, W)
    # The builders agree with central differences of the forward map ...
    assert (
        bp.relative_error(J_A, bp.numerical_jacobian(lambda X: bp.linear(X, W, b), A))
        <= TOL
    )
    assert (
        bp.relative_error(J_W, bp.numerical_jacobian(lambda X: bp.linear(A, X, b), W))
        <= TOL
    )
    assert (
        bp.relative_error(J_b, bp.numerical_jacobian(lambda X: bp.linear(A, W, X), b))
        <= TOL
    )
    # ... and the VJP is Jᵀ g, reshaped to the variable.
    assert bp.relative_error(dA, bp.unvec(bp.vjp_from_jacobian(J_A, G), A.shape)) <= TOL
    assert bp.relative_error(dW, bp.unvec(bp.vjp_from_jacobian(J_W, G), W.shape)) <= TOL
    assert bp.relative_error(db, bp.vjp_from_jacobian(J_b, G)) <= TOL


@given(seed=seeds, n_in=dims, n_out=dims)
def test_batch_one_jacobians_are_the_column_form(seed, n_in, n_out):
    A, W, _, _ = layer_data(seed, 1, n_in, n_out)
    J_A, J_W, J_b = bp.linear_jacobians(A, W)
    a = A[0]
    np.testing.assert_allclose(J_A, W, rtol=0, atol=0)
    np.testing.assert_allclose(
        J_W, np.kron(a[None, :], np.eye(n_out)), rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(J_b, np.eye(n_out), rtol=0, atol=0)


@given(seed=seeds, B=dims, n_in=dims, n_out=dims)
def test_linear_vjp_passes_the_adjoint_test(seed, B, n_in, n_out):
    A, W, b, G = layer_data(seed, B, n_in, n_out)
    rng = np.random.default_rng(seed + 1)
    V_A, V_W = rng.normal(size=A.shape), rng.normal(size=W.shape)
    # Z is linear in A (and in W), so J V is the forward map of V with no bias.
    gap_A = bp.adjoint_test(
        lambda V: V @ W.T, lambda U: bp.linear_vjp(U, A, W)[0], V_A, G
    )
    gap_W = bp.adjoint_test(
        lambda V: A @ V.T, lambda U: bp.linear_vjp(U, A, W)[1], V_W, G
    )
    assert gap_A <= 1e-12 and gap_W <= 1e-12


def test_adjoint_test_rejects_the_shape_fitted_formula():
    """With square W, dA = dZ Wᵀ type-checks; the numbers refuse it."""
    A, W, b, G = layer_data(7, 3, 4, 4)
    gap = bp.adjoint_test(
        lambda V: V @ W.T,
        lambda U: U @ W.T,
        np.random.default_rng(8).normal(size=A.shape),
        G,
    )
    assert gap > 1e-2


# --- activations --------------------------------------------------------------------

ACTIVATION_NAMES = sorted(bp.ACTIVATIONS)
shapes = st.lists(dims, min_size=1, max_size=3).map(tuple)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(seed=seeds, shape=shapes)
def test_activation_vjp_matches_finite_differences(name, seed, shape):
    f, f_vjp = bp.ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    Z = away_from_zero(rng, shape)
    G = rng.normal(size=shape)
    dZ = f_vjp(G, Z)
    assert dZ.shape == Z.shape
    num = bp.numerical_gradient(lambda X: np.sum(G * f(X)), Z)
    assert bp.relative_error(dZ, num) <= TOL


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(seed=seeds, B=dims, n=dims)
def test_activation_jacobian_is_diagonal_and_matches_vjp(name, seed, B, n):
    f, f_vjp = bp.ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    Z = away_from_zero(rng, (B, n))
    G = rng.normal(size=(B, n))
    J_num = bp.numerical_jacobian(f, Z)
    fprime = f_vjp(np.ones_like(Z), Z)  # the VJP of a ones vector is f'(Z)
    J = bp.elementwise_jacobian(fprime)
    assert bp.relative_error(J, J_num) <= TOL
    assert np.count_nonzero(J - np.diag(np.diag(J))) == 0
    assert (
        bp.relative_error(f_vjp(G, Z), bp.unvec(bp.vjp_from_jacobian(J, G), Z.shape))
        <= TOL
    )


# Saturation: |z| up to 30, where tanh' = 4e^{-2|z|}/(1 + e^{-2|z|})² falls to 4e-26 and
# σ' to 1e-13. There a float64 difference of f cancels to nothing (tanh(30 ± h) is 1.0
# for every usable h), so the finite differences are taken in 60-digit arithmetic
# (mpmath), with a step relative to |z|: truncation ~h²|f‴/f'| and round-off ~1e-60/h
# both stay far below 1e-15 of f'. The error measure is absolute, in units of ε|g|: the
# package forms 1 − tanh² and σ(1 − σ), whose cancellation leaves an absolute error of a
# few ε whatever the size of f' (f' ≤ 1 for all three). So a derivative of 1e-13 may
# carry a relative error of 1e-3, and one below 1e-16 rounds to 0, as in every framework
# that uses these formulas; but any wrong term of size 2ε|g| or more (a clipped σ, an
# added epsilon, a step in float32) fails. For |z| ≤ 2 the relative test above holds.
SATURATED_Z = np.array(
    [-30, -25, -20, -19, -15, -10, -6, -3, 3, 6, 10, 15, 19, 20, 25, 30]
)
MP_FUNCTIONS = {
    "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
    "tanh": mpmath.tanh,
    "relu": lambda x: max(x, 0),
}


def high_precision_derivative(name: str, z: float) -> float:
    """f'(z) by a central difference in 60-digit arithmetic, step 1e-12·max(1, |z|)."""
    f = MP_FUNCTIONS[name]
    with mpmath.workdps(60):
        x = mpmath.mpf(float(z))
        h = mpmath.mpf("1e-12") * max(1, abs(x))
        return float((f(x + h) - f(x - h)) / (2 * h))


def saturation_error(name: str, Z: np.ndarray, G: np.ndarray) -> float:
    """max |f_vjp(G, Z) − G f'(Z)| / (ε |G|), f' from high-precision differences."""
    _, f_vjp = bp.ACTIVATIONS[name]
    fprime = np.vectorize(lambda z: high_precision_derivative(name, z))(Z)
    eps = np.finfo(np.float64).eps
    return float(np.max(np.abs(f_vjp(G, Z) - G * fprime) / (eps * np.abs(G))))


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_vjp_in_saturation(name):
    G = np.random.default_rng(5).normal(size=SATURATED_Z.size)
    assert saturation_error(name, SATURATED_Z.astype(float), G) <= 2.0


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(seed=seeds, shape=shapes)
def test_activation_vjp_in_saturation_random(name, seed, shape):
    rng = np.random.default_rng(seed)
    Z = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(2.0, 30.0, size=shape)
    G = rng.normal(size=shape)
    assert saturation_error(name, Z, G) <= 2.0


def test_activation_values():
    Z = np.array([[-1000.0, -1.0, 0.0, 1.0, 1000.0]])
    s = bp.sigmoid(Z)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(
        s,
        [[0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1)), 1.0]],
        rtol=1e-12,
        atol=1e-300,
    )
    np.testing.assert_allclose(bp.tanh(Z), np.tanh(Z))
    np.testing.assert_array_equal(bp.relu(Z), [[0.0, 0.0, 0.0, 1.0, 1000.0]])
    # The kink: relu'(0) is taken as 0, as the major frameworks do.
    np.testing.assert_array_equal(
        bp.relu_vjp(np.ones_like(Z), Z), [[0.0, 0.0, 0.0, 1.0, 1.0]]
    )
    np.testing.assert_allclose(
        bp.sigmoid_vjp(np.ones((1, 1)), np.zeros((1, 1))), [[0.25]]
    )
    np.testing.assert_allclose(bp.tanh_vjp(np.ones((1, 1)), np.zeros((1, 1))), [[1.0]])


def test_integer_inputs_are_accepted_as_float64():
    Z = bp.linear(
        np.array([[1, 2]]), np.array([[1, 0], [0, 1], [1, 1]]), np.array([0, 0, 1])
    )
    assert Z.dtype == np.float64
    np.testing.assert_array_equal(Z, [[1.0, 2.0, 4.0]])
