"""The component view, exactly: sympy differentiates every entry and the matrix formulas match."""

from __future__ import annotations

import pytest
import sympy as sp

from backprop import symbolic


@pytest.mark.parametrize(("n_out", "n_in"), [(1, 1), (2, 3), (3, 2), (3, 3)])
def test_one_layer_gradients_equal_the_matrix_formulas(n_out, n_in):
    L = symbolic.one_layer(n_out, n_in)
    delta = L.g.multiply_elementwise(L.fprime)  # ∇z = ∇a' ⊙ f'(z)
    # ∇z itself: differentiate E with respect to z through a fresh symbol per entry.
    zs = symbolic.symbolic_vector("s", n_out)
    E_of_z = (L.g.T * zs.applyfunc(L.f))[0, 0]
    grad_z = symbolic.gradient(E_of_z, zs).subs(dict(zip(zs, L.z)))
    assert symbolic.is_zero_matrix(grad_z - delta)
    assert symbolic.is_zero_matrix(symbolic.gradient(L.E, L.a) - L.W.T * delta)
    assert symbolic.is_zero_matrix(symbolic.gradient(L.E, L.W) - delta * L.a.T)
    assert symbolic.is_zero_matrix(symbolic.gradient(L.E, L.b) - delta)


def test_the_shape_fitted_formula_is_wrong_for_square_w():
    L = symbolic.one_layer(3, 3)
    delta = L.g.multiply_elementwise(L.fprime)
    wrong_a = L.W * delta  # right shape, wrong map
    wrong_W = L.a * delta.T
    assert not symbolic.is_zero_matrix(symbolic.gradient(L.E, L.a) - wrong_a)
    assert not symbolic.is_zero_matrix(symbolic.gradient(L.E, L.W) - wrong_W)


def test_a_concrete_activation():
    L = symbolic.one_layer(2, 2, f=sp.tanh)
    delta = L.g.multiply_elementwise(L.z.applyfunc(lambda z: 1 - sp.tanh(z) ** 2))
    assert symbolic.is_zero_matrix(symbolic.gradient(L.E, L.W) - delta * L.a.T)


def test_symbols_are_distinct_and_named_from_one():
    W = symbolic.symbolic_matrix("W", 2, 3)
    assert len(set(W)) == 6
    assert str(W[1, 2]) == "W_{23}"
    assert str(symbolic.symbolic_vector("a", 2)[1]) == "a_{2}"
