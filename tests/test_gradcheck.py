"""The checking instruments themselves: they must be able to fail."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def test_numerical_gradient_of_a_quadratic_is_exact_to_roundoff(rng):
    M = rng.normal(size=(4, 4))
    x = rng.normal(size=4)
    # E = xᵀ M x has gradient (M + Mᵀ) x; central differences are exact for quadratics.
    num = bp.numerical_gradient(lambda v: v @ M @ v, x)
    assert bp.relative_error(num, (M + M.T) @ x) < 1e-9


def test_numerical_gradient_keeps_the_shape_and_the_input(rng):
    X = rng.normal(size=(2, 3, 2))
    X0 = X.copy()
    g = bp.numerical_gradient(lambda Y: np.sum(np.sin(Y)), X)
    assert g.shape == X.shape
    assert bp.relative_error(g, np.cos(X)) < 1e-9
    np.testing.assert_array_equal(X, X0)


def test_central_differences_are_second_order(rng):
    x = np.array([0.7])
    errors = [
        abs(bp.numerical_gradient(lambda v: np.exp(v[0]), x, h=h)[0] - np.exp(0.7))
        for h in (1e-2, 1e-3)
    ]
    # Truncation error ~ h²/6 f''': a tenfold smaller step gives a hundredfold smaller error.
    assert 80 < errors[0] / errors[1] < 120


def test_directional_derivative_is_a_jvp(rng):
    W = rng.normal(size=(3, 4))
    x, v = rng.normal(size=4), rng.normal(size=4)
    jv = bp.directional_derivative(lambda y: np.tanh(W @ y), x, v)
    exact = (1 - np.tanh(W @ x) ** 2) * (W @ v)
    assert bp.relative_error(jv, exact) < 1e-8


def test_relative_error_properties():
    a = np.array([1.0, 2.0, 3.0])
    assert bp.relative_error(a, a) == 0.0
    assert bp.relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert bp.relative_error(a, 2 * a) == pytest.approx(0.5)
    assert bp.relative_error(1e-20 * a, 2e-20 * a) == pytest.approx(0.5)  # scale-free
    assert bp.relative_error(a, -a) == pytest.approx(2.0)


def test_adjoint_test_accepts_the_transpose_and_rejects_others(rng):
    for m, n in [(3, 5), (4, 4), (1, 6)]:
        M = rng.normal(size=(m, n))
        v, u = rng.normal(size=n), rng.normal(size=m)
        assert (
            bp.adjoint_test(lambda x, M=M: M @ x, lambda y, M=M: M.T @ y, v, u) < 1e-13
        )
        assert bp.adjoint_test(
            lambda x, M=M: M @ x, lambda y, M=M: 2 * M.T @ y, v, u
        ) == pytest.approx(0.5)
    S = rng.normal(size=(4, 4))
    v, u = rng.normal(size=4), rng.normal(size=4)
    # For a square, non-symmetric matrix the matrix itself has the right shape but is not the adjoint.
    assert bp.adjoint_test(lambda x: S @ x, lambda y: S @ y, v, u) > 1e-2


def test_vec_unvec_and_the_kronecker_identity(rng):
    A, X, B = rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), rng.normal(size=(4, 5))
    assert np.allclose(bp.vec(A @ X @ B), np.kron(B.T, A) @ bp.vec(X))
    np.testing.assert_array_equal(bp.unvec(bp.vec(X), X.shape), X)
    np.testing.assert_array_equal(
        bp.vec(np.array([[1, 2], [3, 4]])), [1.0, 3.0, 2.0, 4.0]
    )


@pytest.mark.parametrize(("m", "n"), [(1, 1), (2, 3), (3, 2), (4, 4)])
def test_commutation_matrix(rng, m, n):
    X = rng.normal(size=(m, n))
    K = bp.commutation_matrix(m, n)
    np.testing.assert_array_equal(K @ bp.vec(X), bp.vec(X.T))
    np.testing.assert_array_equal(K.T @ K, np.eye(m * n))  # a permutation
    a = rng.normal(size=n)
    # (I_m ⊗ aᵀ) K_{m,n} = aᵀ ⊗ I_m: the batch-of-one Jacobian is the column-form one.
    assert np.allclose(
        np.kron(np.eye(m), a[None, :]) @ K, np.kron(a[None, :], np.eye(m))
    )


def test_numerical_gradient_of_a_transposed_view(rng):
    """A Fortran-ordered input (``X.T``) is perturbed entry by entry too."""
    X = rng.normal(size=(3, 4)).T
    assert not X.flags.c_contiguous
    grad = bp.numerical_gradient(lambda X_: float(np.sum(X_**2)), X)
    np.testing.assert_allclose(grad, 2 * X, rtol=1e-8)


@pytest.mark.parametrize(
    ("err", "tol", "spec", "printed"),
    [
        (3.2e-9, 1e-7, ".1e", "< 1e-7"),
        (9.99e-8, 1e-7, ".1e", "< 1e-7"),
        (1e-7, 1e-7, ".1e", "1.0e-07"),  # the tolerance itself fails
        (0.0, 1e-12, ".1e", "< 1e-12"),
        (1.41763, 1e-7, ".1e", "1.4e+00"),
        (1.41763, 1e-7, ".2f", "1.42"),
        (5e-3, 1e2, ".1e", "< 1e2"),
    ],
)
def test_pass_mark(err, tol, spec, printed):
    assert bp.pass_mark(err, tol, spec) == printed


def test_report_prints_one_line(capsys):
    bp.report("dW", 2.5e-10)
    bp.report("dW shape-fitted", 0.83, spec=".2f")
    assert capsys.readouterr().out == (
        "dW: relative error < 1e-7\ndW shape-fitted: relative error 0.83\n"
    )
    with pytest.raises(ValueError, match="tol must be positive"):
        bp.pass_mark(1.0, tol=0.0)


@pytest.mark.parametrize(
    "err, printed",
    [
        (1.2e-10, "1e-10"),
        (2.9e-10 / 2, "1e-10"),
        (7e-6, "1e-05"),
        (0.9, "1e00"),
        (5e-16, "1e-15"),
    ],
)
def test_order_of_magnitude(err, printed):
    assert bp.order_of_magnitude(err) == printed


@pytest.mark.parametrize(
    "err", [3.0e-9, 3.3e-9, 2.5e-9, 4.0e-9, 0.0, -1.0, float("nan")]
)
def test_order_of_magnitude_refuses_an_unstable_order(err):
    # within a factor 1.41 of 10**(k + 0.5) the printed order could flip
    with pytest.raises(ValueError):
        bp.order_of_magnitude(err)


def test_error_table(capsys):
    bp.error_table(
        [("dW = dZᵀ A", 1.2e-10), ("db", 3e-12), ("W dZ, shape-fitted", 0.57)],
        orders=["dW = dZᵀ A"],
    )
    assert capsys.readouterr().out.splitlines() == [
        "check               relative error",
        "dW = dZᵀ A          ≈ 1e-10",
        "db                  < 1e-7",
        "W dZ, shape-fitted  5.7e-01",
    ]
    with pytest.raises(ValueError, match="not there"):
        bp.error_table({"a": 1e-9}, orders=["b"])
    with pytest.raises(ValueError, match="empty"):
        bp.error_table({})
