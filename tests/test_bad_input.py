"""Public functions refuse bad input with a ValueError naming what was expected and what came.

And they never modify their arguments.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import symbolic

rng = np.random.default_rng(0)
A = rng.normal(size=(4, 3))
W = rng.normal(size=(2, 3))
b = rng.normal(size=2)
dZ = rng.normal(size=(4, 2))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        # mismatched shapes
        (
            lambda: bp.linear(A, rng.normal(size=(2, 5)), b),
            r"W has shape \(2, 5\).*5 input features.*A has shape \(4, 3\)",
        ),
        (lambda: bp.linear(A, W, np.zeros(3)), r"b must have shape \(2,\).*got \(3,\)"),
        (
            lambda: bp.linear_vjp(np.zeros((4, 3)), A, W),
            r"dZ must have the shape of Z.*\(4, 2\); got \(4, 3\)",
        ),
        (lambda: bp.linear_vjp(np.zeros((5, 2)), A, W), r"\(4, 2\); got \(5, 2\)"),
        (
            lambda: bp.sigmoid_vjp(np.zeros((4, 2)), np.zeros((4, 3))),
            r"g must have the shape of Z, \(4, 3\); got \(4, 2\)",
        ),
        (lambda: bp.tanh_vjp(np.zeros(3), np.zeros(4)), r"g must have the shape of Z"),
        (
            lambda: bp.relu_vjp(np.zeros((2, 2)), np.zeros((2, 3))),
            r"g must have the shape of Z",
        ),
        (
            lambda: bp.linear_jacobians(A, rng.normal(size=(2, 4))),
            r"expects 4 input features",
        ),
        (
            lambda: bp.vjp_from_jacobian(np.zeros((3, 2)), np.zeros(4)),
            r"g has 4 entries but J has shape \(3, 2\)",
        ),
        (
            lambda: bp.unvec(np.zeros(5), (2, 3)),
            r"cannot unvec 5 entries into shape \(2, 3\)",
        ),
        (
            lambda: bp.relative_error(np.zeros(3), np.zeros(4)),
            r"shapes \(3,\) and \(4,\)",
        ),
        # wrong rank
        (lambda: bp.linear(A[0], W, b), r"A must be 2-D .*got 1-D shape \(3,\)"),
        (lambda: bp.linear(A[None], W, b), r"A must be 2-D; got 3-D"),
        (lambda: bp.linear(A, W[0], b), r"W must be 2-D; got 1-D"),
        (lambda: bp.linear(A, W, b[:, None]), r"b must be 1-D; got 2-D"),
        (
            lambda: bp.sigmoid(np.float64(1.0)),
            r"Z must be an array with at least one axis; got a scalar",
        ),
        # an empty batch
        (
            lambda: bp.linear(np.zeros((0, 3)), W, b),
            r"A must not be empty; got shape \(0, 3\)",
        ),
        (
            lambda: bp.linear_vjp(np.zeros((0, 2)), np.zeros((0, 3)), W),
            r"must not be empty",
        ),
        (lambda: bp.relu(np.zeros((0, 3))), r"Z must not be empty"),
        (lambda: bp.tanh_vjp(np.zeros((0, 3)), np.zeros((0, 3))), r"must not be empty"),
        # a non-numeric dtype
        (
            lambda: bp.linear(A.astype(str), W, b),
            r"A must have a real numeric dtype .*got dtype <U",
        ),
        (
            lambda: bp.linear(A, W.astype(object), b),
            r"W must have a real numeric dtype .*got dtype object",
        ),
        (
            lambda: bp.linear(A, W, np.array([True, False])),
            r"b must have a real numeric dtype .*got dtype bool",
        ),
        (lambda: bp.sigmoid(np.array(["a", "b"])), r"Z must have a real numeric dtype"),
        (
            lambda: bp.relu_vjp(np.ones(2), np.array([1 + 1j, 2j])),
            r"Z must have a real numeric dtype .*complex128",
        ),
        (
            lambda: bp.linear([[1, 2, 3], [4, 5]], W, b),
            r"A must be an array of real numbers",
        ),
        # bad settings of the checking tools
        (
            lambda: bp.numerical_gradient(np.sum, A, h=0.0),
            r"h must be positive; got 0.0",
        ),
        (lambda: bp.numerical_jacobian(np.tanh, A, h=-1.0), r"h must be positive"),
        (
            lambda: bp.directional_derivative(np.tanh, A, np.zeros((3, 4))),
            r"V must have the shape of X",
        ),
        (lambda: bp.commutation_matrix(0, 3), r"m >= 1 and n >= 1"),
        (
            lambda: symbolic.symbolic_matrix("W", 0, 2),
            r"rows must be a positive integer; got 0",
        ),
        (
            lambda: symbolic.one_layer(2, 1.5),
            r"n_in must be a positive integer; got 1.5",
        ),
    ],
)
def test_refusals_name_expected_and_actual(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_adjoint_test_refuses_maps_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"J v must have the shape of u"):
        bp.adjoint_test(lambda v: v, lambda u: u, np.ones(3), np.ones(4))


def test_no_public_function_modifies_its_arguments():
    A0, W0, b0, dZ0 = A.copy(), W.copy(), b.copy(), dZ.copy()
    Z = bp.linear(A, W, b)
    bp.linear_vjp(dZ, A, W)
    bp.linear_jacobians(A, W)
    for f, f_vjp in bp.ACTIVATIONS.values():
        Z0 = Z.copy()
        f(Z)
        f_vjp(dZ, Z)
        np.testing.assert_array_equal(Z, Z0)
    bp.numerical_gradient(lambda X: np.sum(np.tanh(X)), A)
    bp.numerical_jacobian(np.tanh, A)
    bp.directional_derivative(np.tanh, A, A)
    bp.vec(A)
    for name, before, after in [
        ("A", A0, A),
        ("W", W0, W),
        ("b", b0, b),
        ("dZ", dZ0, dZ),
    ]:
        np.testing.assert_array_equal(after, before, err_msg=f"{name} was modified")


def test_outputs_do_not_alias_inputs():
    out = bp.relu(A)
    out[...] = 123.0
    assert not np.any(A == 123.0)
    V = bp.vec(A)
    V[...] = 0.0
    assert np.any(A != 0.0)
