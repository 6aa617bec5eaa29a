"""Implicit layers (``backprop.implicit``): a linear solve, a fixed point, ridge.

``solve_vjp`` is checked against central differences in float64 for r of shape (n,)
and (n, k), against the explicit Jacobians ``I_k ⊗ M⁻¹`` and ``−xᵀ ⊗ M⁻¹`` (columns
stacked), with the adjoint test against the forward-mode rule (written from the
differential ``dx = M⁻¹(dr − dM x)``, independently of the VJP), and on square,
non-symmetric M, where a missing transpose would still type-check. The fixed point's
implicit gradient is checked against central differences of the whole iteration and
against backpropagation through many unrolled iterations; the unrolled gradient of an
iteration stopped early is shown to be wrong. Ridge's gradients with respect to X, y
and λ_wd and the validation hypergradient are checked against central differences.
Shapes are drawn by hypothesis (n = 1, k = 1 and batch 1 included); bad input,
purity, float32 and the engine follow. The comparison with PyTorch
(``torch.linalg.solve`` and autograd) is made by hand: PyTorch is not a dependency.
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
from backprop.implicit import (
    _solve_jvp,
    fixed_point,
    fixed_point_vjp,
    ridge,
    ridge_validation,
    ridge_vjp,
    solve,
    solve_vjp,
    unrolled,
    unrolled_vjp,
)

seeds = st.integers(min_value=0, max_value=2**32 - 1)
sizes = st.integers(min_value=1, max_value=5)
ROUNDOFF = 1e-12


def well_conditioned(rng, n):
    """A square, non-symmetric A whose condition number stays below about 10."""
    M = rng.normal(size=(n, n))
    return M / np.linalg.norm(M, 2) + 2 * np.eye(n)


def rhs(rng, n, k):
    """b of shape (n,) when k is 0, else (n, k)."""
    return rng.normal(size=(n,) if k == 0 else (n, k))


# --- the solve -------------------------------------------------------------------------


@given(seed=seeds, n=sizes, k=st.integers(0, 3))
def test_solve_solves(seed, n, k):
    rng = np.random.default_rng(seed)
    A, b = well_conditioned(rng, n), rhs(rng, n, k)
    x = solve(A, b)
    assert x.shape == b.shape
    np.testing.assert_allclose(A @ x, b, atol=1e-12)


@given(seed=seeds, n=sizes, k=st.integers(0, 3))
def test_solve_vjp_matches_finite_differences(seed, n, k):
    rng = np.random.default_rng(seed)
    A, b = well_conditioned(rng, n), rhs(rng, n, k)
    G = rng.normal(size=b.shape)
    dA, db = solve_vjp(G, A, b)
    assert dA.shape == A.shape and db.shape == b.shape
    terms = float(np.sum(np.abs(G * solve(A, b))))
    assert fd_error(dA, lambda a: np.sum(G * solve(a, b)), A, terms) <= TOL
    assert fd_error(db, lambda v: np.sum(G * solve(A, v)), b, terms) <= TOL


@given(seed=seeds, n=sizes, k=st.integers(0, 3))
def test_solve_vjp_is_the_adjoint_of_the_tangent_map(seed, n, k):
    """⟨J [dA, db], G⟩ = ⟨dA, ∇_A⟩ + ⟨db, ∇_b⟩, the tangent map from the differential."""
    rng = np.random.default_rng(seed)
    A, b = well_conditioned(rng, n), rhs(rng, n, k)
    x = solve(A, b)
    G, tA, tb = (
        rng.normal(size=b.shape),
        rng.normal(size=A.shape),
        rng.normal(size=b.shape),
    )
    dA, db = solve_vjp(G, A, b)
    lhs = float(np.sum(_solve_jvp((tA, tb), x, A, b) * G))
    rhs_ = float(np.sum(tA * dA) + np.sum(tb * db))
    assert abs(lhs - rhs_) <= ROUNDOFF * max(1.0, abs(lhs))
    # x is linear in b: the db part alone, with the package's adjoint test
    assert (
        bp.adjoint_test(lambda v: solve(A, v), lambda g: solve_vjp(g, A, b)[1], tb, G)
        < ROUNDOFF
    )


def test_solve_jacobians_are_the_kronecker_products(rng):
    """∂vec x/∂vec b = I_k ⊗ A⁻¹ and ∂vec x/∂vec A = −(xᵀ ⊗ A⁻¹), vec stacking columns."""
    n, k = 3, 2
    A, b = well_conditioned(rng, n), rng.normal(size=(n, k))
    x, A_inv = solve(A, b), np.linalg.inv(A)
    J_b = bp.numerical_jacobian(lambda v: solve(A, v), b)
    J_A = bp.numerical_jacobian(lambda a: solve(a, b), A)
    assert bp.relative_error(J_b, np.kron(np.eye(k), A_inv)) < 1e-8
    assert bp.relative_error(J_A, -np.kron(x.T, A_inv)) < 1e-8
    # the VJP is the transpose of that Jacobian, applied to vec G
    G = rng.normal(size=(n, k))
    dA, db = solve_vjp(G, A, b)
    assert bp.relative_error(bp.vec(dA), -np.kron(x.T, A_inv).T @ bp.vec(G)) < 1e-12
    assert (
        bp.relative_error(bp.vec(db), np.kron(np.eye(k), A_inv).T @ bp.vec(G)) < 1e-12
    )


def test_the_transpose_matters(rng):
    """The trap: db = A⁻¹ g (no transpose) type-checks on a square A and is wrong."""
    A, b, G = well_conditioned(rng, 4), rng.normal(size=4), rng.normal(size=4)
    _, db = solve_vjp(G, A, b)
    assert bp.relative_error(db, solve(A, G)) > 1e-2
    assert bp.relative_error(db, solve(A.T, G)) < 1e-14


def test_solve_vjp_reuses_a_given_solution(rng):
    A, b, G = well_conditioned(rng, 3), rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    for given_, computed in zip(solve_vjp(G, A, b, x=solve(A, b)), solve_vjp(G, A, b)):
        np.testing.assert_array_equal(given_, computed)


# --- the fixed point -------------------------------------------------------------------


def tanh_layer(rng, n, rho=0.6):
    """``z = tanh(W z + x)`` with ‖W‖₂ = rho < 1, a contraction; θ = W.

    Returns (f, f_vjp_z, f_vjp_theta, W).
    """
    x = rng.normal(size=n)
    M = rng.normal(size=(n, n))
    W = rho * M / np.linalg.norm(M, 2)

    def f(z, W):
        return np.tanh(W @ z + x)

    def slope(z, W):
        return 1 - np.tanh(W @ z + x) ** 2

    def f_vjp_z(v, z, W):
        return W.T @ (v * slope(z, W))

    def f_vjp_theta(v, z, W):
        return np.outer(v * slope(z, W), z)

    return f, f_vjp_z, f_vjp_theta, W


@given(seed=seeds, n=sizes)
def test_fixed_point_gradient_matches_finite_differences(seed, n):
    rng = np.random.default_rng(seed)
    f, f_vjp_z, f_vjp_theta, W = tanh_layer(rng, n)
    z0, g = np.zeros(n), rng.normal(size=n)
    z_star = fixed_point(f, z0, W, tol=1e-15)
    np.testing.assert_allclose(f(z_star, W), z_star, atol=1e-14)
    dW = fixed_point_vjp(g, z_star, W, f_vjp_z, f_vjp_theta, tol=1e-15)

    def E(w):
        return float(g @ fixed_point(f, z0, w, tol=1e-15))

    assert fd_error(dW, E, W, float(np.sum(np.abs(g * z_star)))) <= TOL


@given(seed=seeds, n=sizes)
def test_fixed_point_gradient_is_unrolled_backprop_in_the_limit(seed, n):
    """Backprop through 200 iterations (ρ ≤ 0.6: 0.6²⁰⁰ is nothing) gives the same."""
    rng = np.random.default_rng(seed)
    f, f_vjp_z, f_vjp_theta, W = tanh_layer(rng, n)
    z0, g = rng.normal(size=n), rng.normal(size=n)
    z_star = fixed_point(f, z0, W)
    dW = fixed_point_vjp(g, z_star, W, f_vjp_z, f_vjp_theta)
    Z = unrolled(f, z0, W, 200)
    dW_unrolled, dz0 = unrolled_vjp(g, Z, W, f_vjp_z, f_vjp_theta)
    assert bp.relative_error(dW_unrolled, dW) < 1e-10
    # and the start is forgotten: z⋆ does not depend on z0
    assert np.linalg.norm(dz0) < 1e-12 * max(1.0, np.linalg.norm(g))


def test_unrolled_vjp_matches_finite_differences_of_the_iterations(rng):
    """The unrolled gradient is the exact gradient of the truncated iteration."""
    f, f_vjp_z, f_vjp_theta, W = tanh_layer(rng, 4, rho=0.9)
    z0, g = rng.normal(size=4), rng.normal(size=4)
    Z = unrolled(f, z0, W, 5)
    dW, dz0 = unrolled_vjp(g, Z, W, f_vjp_z, f_vjp_theta)
    terms = float(np.sum(np.abs(g * Z[-1])))
    assert fd_error(dW, lambda w: g @ unrolled(f, z0, w, 5)[-1], W, terms) <= TOL
    assert fd_error(dz0, lambda v: g @ unrolled(f, v, W, 5)[-1], z0, terms) <= TOL


def test_an_early_stopped_unrolled_gradient_is_wrong(rng):
    """The trap of the chapter: 5 iterations of a slow contraction are not z⋆."""
    f, f_vjp_z, f_vjp_theta, W = tanh_layer(rng, 4, rho=0.9)
    z0, g = np.zeros(4), rng.normal(size=4)
    dW = fixed_point_vjp(g, fixed_point(f, z0, W), W, f_vjp_z, f_vjp_theta)
    errors = [
        bp.relative_error(
            unrolled_vjp(g, unrolled(f, z0, W, k), W, f_vjp_z, f_vjp_theta)[0], dW
        )
        for k in (5, 20, 80)
    ]
    assert errors[0] > 1e-3 and errors[2] < errors[1] < errors[0]


def test_fixed_point_reports_its_steps(rng):
    f, f_vjp_z, f_vjp_theta, W = tanh_layer(rng, 3)
    z, k = fixed_point(f, np.zeros(3), W, return_steps=True)
    assert 1 < k < 1000 and np.array_equal(z, fixed_point(f, np.zeros(3), W))
    dW, k_adj = fixed_point_vjp(
        np.ones(3), z, W, f_vjp_z, f_vjp_theta, return_steps=True
    )
    assert 1 < k_adj < 1000 and dW.shape == W.shape


def test_a_vector_theta(rng):
    """θ a bias: z = tanh(W z + θ); dθ = (I − diag(s) W)⁻ᵀ ... read off a solve."""
    n = 3
    M = rng.normal(size=(n, n))
    W = 0.5 * M / np.linalg.norm(M, 2)
    theta, g = rng.normal(size=n), rng.normal(size=n)

    def f(z, t):
        return np.tanh(W @ z + t)

    z = fixed_point(f, np.zeros(n), theta)
    s = 1 - z**2  # tanh' at the fixed point
    dtheta = fixed_point_vjp(
        g, z, theta, lambda v, z, t: W.T @ (v * s), lambda v, z, t: v * s
    )
    # the implicit function theorem written as one linear solve
    expected = s * solve((np.eye(n) - np.diag(s) @ W).T, g)
    assert bp.relative_error(dtheta, expected) < 1e-12


# --- ridge -----------------------------------------------------------------------------


@given(seed=seeds, B=st.integers(1, 6), n=sizes)
def test_ridge_solves_the_normal_equations(seed, B, n):
    rng = np.random.default_rng(seed)
    X, y, lam = rng.normal(size=(B, n)), rng.normal(size=B), float(rng.uniform(0.1, 2))
    w = ridge(X, y, lam)
    np.testing.assert_allclose(X.T @ (X @ w - y) + lam * w, 0, atol=1e-12)


@given(seed=seeds, B=st.integers(1, 6), n=sizes)
def test_ridge_vjp_matches_finite_differences(seed, B, n):
    rng = np.random.default_rng(seed)
    X, y, lam = rng.normal(size=(B, n)), rng.normal(size=B), float(rng.uniform(0.1, 2))
    g = rng.normal(size=n)
    dX, dy, dlam = ridge_vjp(g, X, y, lam)
    terms = float(np.sum(np.abs(g * ridge(X, y, lam))))
    assert fd_error(dX, lambda v: g @ ridge(v, y, lam), X, terms) <= TOL
    assert fd_error(dy, lambda v: g @ ridge(X, v, lam), y, terms) <= TOL
    lam_fd = np.array(lam)
    assert fd_error(dlam, lambda v: g @ ridge(X, y, float(v)), lam_fd, terms) <= TOL


@given(seed=seeds, n=sizes)
def test_the_validation_hypergradient_matches_finite_differences(seed, n):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(8, n)), rng.normal(size=8)
    X_val, y_val = rng.normal(size=(5, n)), rng.normal(size=5)
    lam = float(rng.uniform(0.1, 3))
    E, dlam = ridge_validation(lam, X, y, X_val, y_val)
    assert E == pytest.approx(
        np.mean((X_val @ ridge(X, y, lam) - y_val) ** 2), rel=1e-14
    )
    assert (
        fd_error(
            dlam,
            lambda v: ridge_validation(float(v), X, y, X_val, y_val)[0],
            np.array(lam),
            E,
        )
        <= TOL
    )


# --- refusals, purity, float32 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("A", "b", "message"),
    [
        (
            np.zeros((2, 3)),
            np.zeros(2),
            r"M must be square \(n, n\); got shape \(2, 3\)",
        ),
        (np.eye(3), np.zeros(2), r"r must have shape \(3,\) or \(3, k\) .* got \(2,\)"),
        (np.eye(3), np.zeros((3, 2, 1)), r"r must have shape \(3,\) or"),
        (np.zeros(3), np.zeros(3), r"M must be 2-D; got 1-D"),
        (np.ones((3, 3)), np.zeros(3), r"M must be invertible; got a singular M"),
        (
            np.diag([1.0, 1e-17]),
            np.zeros(2),
            r"M must be invertible; .* \(condition number 1\.0e\+17",
        ),
        (np.array([[1.0, np.nan], [0, 1]]), np.zeros(2), r"must be finite"),
    ],
)
def test_bad_solves_are_refused(A, b, message):
    with pytest.raises(ValueError, match=message):
        solve(A, b)
    with pytest.raises(ValueError, match=message):
        solve_vjp(np.zeros(b.shape), A, b)


def test_a_gradient_of_the_wrong_shape_is_refused():
    with pytest.raises(
        ValueError, match=r"g must have the shape of x = M⁻¹ r, \(3, 2\)"
    ):
        solve_vjp(np.zeros(3), np.eye(3), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"g must have the shape of h_star, \(2,\)"):
        fixed_point_vjp(np.zeros(3), np.zeros(2), np.zeros(1), np.add, np.add)
    with pytest.raises(ValueError, match=r"g must have the shape of w, \(2,\)"):
        ridge_vjp(np.zeros(3), np.ones((4, 2)), np.ones(4), 1.0)


def test_a_fixed_point_that_does_not_converge_says_how_far_it_got():
    # z ↦ 1 − z oscillates between z0 and 1 − z0 forever: each step moves by |1 − 2 z0|
    with pytest.raises(
        ValueError,
        match=r"did not converge in max_iter=50 steps: the last step moved by 6\.000e-01",
    ):
        fixed_point(lambda z, t: 1 - z, np.array([0.2]), np.zeros(1), max_iter=50)
    with pytest.raises(ValueError, match=r"the adjoint iteration did not converge"):
        fixed_point_vjp(
            np.ones(1), np.zeros(1), np.zeros(1), lambda v, z, t: -v, lambda v, z, t: v
        )
    # the iterates overflow on purpose: numpy's overflow warnings are expected
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(ValueError, match=r"diverged: a value became inf or nan"),
    ):
        fixed_point(lambda z, t: z * 1e300, np.ones(1), np.zeros(1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tol": 0.0}, r"tol must be a positive number; got 0\.0"),
        ({"tol": "1e-8"}, r"tol must be a positive number"),
        ({"max_iter": 0}, r"max_iter must be a positive integer; got 0"),
        ({"max_iter": 2.5}, r"max_iter must be a positive integer"),
    ],
)
def test_bad_iteration_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fixed_point(lambda z, t: z / 2, np.ones(2), np.zeros(1), **kwargs)
    with pytest.raises(ValueError, match=message):
        fixed_point_vjp(np.ones(2), np.ones(2), np.zeros(1), np.add, np.add, **kwargs)


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match=r"F must be a function; got ndarray"):
        fixed_point(np.zeros(2), np.ones(2), np.zeros(1))
    with pytest.raises(
        ValueError, match=r"must keep the shape \(2,\); it returned shape \(3,\)"
    ):
        fixed_point(lambda z, t: np.zeros(3), np.ones(2), np.zeros(1))
    with pytest.raises(
        ValueError, match=r"F_vjp_theta must return theta's shape \(1,\)"
    ):
        fixed_point_vjp(
            np.ones(2),
            np.ones(2),
            np.zeros(1),
            lambda v, z, t: 0 * v,
            lambda v, z, t: v,
        )
    with pytest.raises(ValueError, match=r"n_iter must be a positive integer"):
        unrolled(np.add, np.ones(2), np.zeros(1), 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (np.ones((4, 2)), np.ones(3), 1.0),
            r"y must have one target per row of X, 4; got 3",
        ),
        ((np.ones(4), np.ones(4), 1.0), r"X must be 2-D"),
        (
            (np.ones((4, 2)), np.ones(4), 0.0),
            r"wd must be a positive number; got 0\.0",
        ),
        ((np.ones((4, 2)), np.ones(4), -1), r"wd must be a positive number"),
        ((np.ones((4, 2)), np.ones(4), np.ones(2)), r"wd must be a positive number"),
    ],
)
def test_bad_ridge_input_is_refused(args, message):
    with pytest.raises(ValueError, match=message):
        ridge(*args)
    with pytest.raises(ValueError, match=message):
        ridge_vjp(np.zeros(2), *args)


def test_bad_validation_data_is_refused():
    X, y = np.ones((4, 2)), np.ones(4)
    with pytest.raises(ValueError, match=r"X_val must have X's 2 features"):
        ridge_validation(1.0, X, y, np.ones((3, 3)), np.ones(3))


def test_nothing_is_modified(rng):
    A, b, G = well_conditioned(rng, 3), rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    X, y = rng.normal(size=(5, 3)), rng.normal(size=5)
    f, f_vjp_z, f_vjp_theta, W = tanh_layer(rng, 3)
    z0, g = rng.normal(size=3), rng.normal(size=3)
    inputs = (A, b, G, X, y, W, z0, g)
    for array in inputs:
        array.flags.writeable = False  # any write raises
    x = solve(A, b)
    dA, db = solve_vjp(G, A, b)
    z = fixed_point(f, z0, W)
    fixed_point_vjp(g, z, W, f_vjp_z, f_vjp_theta)
    unrolled_vjp(g, unrolled(f, z0, W, 3), W, f_vjp_z, f_vjp_theta)
    ridge_vjp(y[:3], X, y, 0.5)
    ridge_validation(0.5, X, y, X, y)
    assert not any(np.shares_memory(out, a) for out in (x, dA, db, z) for a in inputs)


def test_float32_stays_float32(rng):
    A, b, G = well_conditioned(rng, 4), rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    A32, b32, G32 = (a.astype(np.float32) for a in (A, b, G))
    x32 = solve(A32, b32)
    dA32, db32 = solve_vjp(G32, A32, b32)
    assert x32.dtype == dA32.dtype == db32.dtype == np.float32
    dA, db = solve_vjp(G32.astype(float), A32.astype(float), b32.astype(float))
    assert bp.relative_error(dA32, dA) < 1e-5 and bp.relative_error(db32, db) < 1e-5
    f, f_vjp_z, f_vjp_theta, W = tanh_layer(rng, 3)
    W32, z32 = W.astype(np.float32), np.zeros(3, np.float32)
    x32 = f(np.zeros(3), np.zeros((3, 3))).astype(np.float32)  # tanh(x)
    z = fixed_point(lambda z, W: np.tanh(W @ z + np.arctanh(x32)), z32, W32, tol=1e-6)

    def vjp_W(v, z, W):
        return np.outer(v * (1 - np.tanh(W @ z + np.arctanh(x32)) ** 2), z)

    def vjp_z(v, z, W):
        return W.T @ (v * (1 - np.tanh(W @ z + np.arctanh(x32)) ** 2))

    dW = fixed_point_vjp(np.ones(3, np.float32), z, W32, vjp_z, vjp_W, tol=1e-6)
    z64 = fixed_point(f, np.zeros(3), W)
    dW64 = fixed_point_vjp(np.ones(3), z64, W, f_vjp_z, f_vjp_theta)
    assert bp.relative_error(z, z64) < 1e-5 and bp.relative_error(dW, dW64) < 1e-5
    assert z.dtype == dW.dtype == np.float32
    X, y = (
        rng.normal(size=(6, 3)).astype(np.float32),
        rng.normal(size=6).astype(np.float32),
    )
    assert ridge(X, y, 0.5).dtype == np.float32
    assert all(
        np.asarray(d).dtype == np.float32
        for d in ridge_vjp(np.ones(3, np.float32), X, y, 0.5)[:2]
    )


# --- the engine ------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_engine_uses_solve_vjp(rng, k, dtype):
    A, b = well_conditioned(rng, 3).astype(dtype), rhs(rng, 3, k).astype(dtype)
    G = rng.normal(size=b.shape).astype(dtype)
    At, bt = ad.Tensor(A), ad.Tensor(b)
    x = ad.solve(At, bt)
    assert x.dtype == dtype
    x.backward(G)
    dA, db = solve_vjp(G, A, b)
    np.testing.assert_array_equal(x.value, solve(A, b))
    assert (
        bp.relative_error(At.grad, dA) < 1e-15
        and bp.relative_error(bt.grad, db) < 1e-15
    )
    # forward mode: the JVP rule is the differential of A x = b
    tA, tb = (
        rng.normal(size=A.shape).astype(dtype),
        rng.normal(size=b.shape).astype(dtype),
    )
    _, Jv = ad.jvp(ad.solve, [A, b], [tA, tb])
    assert bp.relative_error(Jv, _solve_jvp((tA, tb), solve(A, b), A, b)) < 1e-15
