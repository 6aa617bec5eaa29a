"""Statements of chapters 11 and 13 about how gradient norms change, held by tests.

- A residual block changes the squared norm of a gradient ``δ`` by
  ``2 δᵀ J_F δ + ‖J_Fᵀ δ‖²`` (eq. ``rn-res-norm``): it can shrink the gradient only
  where its branch points against it, and a stack of such blocks can make the
  gradient vanish geometrically even with the identity path.
- The slopes of tanh lower the bound ``‖∂h_t/∂h_0‖₂ ≤ Π_u max(s_u) ‖W_hh‖₂`` of
  eq. ``rnn-norm-bound``, but not always the norm: for a non-normal ``W_hh`` the
  driven chain's Jacobian can be larger than the one at the zero state.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backprop.layers import ACTIVATIONS
from backprop.recurrent import rnn, state_jacobians
from backprop.residual import residual_block, residual_block_vjp

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@given(seed=seeds, B=st.integers(1, 3), n=st.integers(1, 5))
def test_residual_block_changes_the_squared_norm_by_the_branch_terms(
    activation, seed, B, n
):
    # checks: rn-res-norm
    rng = np.random.default_rng(seed)
    A, W, b = rng.normal(size=(B, n)), rng.normal(size=(n, n)), rng.normal(size=n)
    dY = rng.normal(size=(B, n))
    dA = residual_block_vjp(dY, A, W, b, activation)[0]
    _, f_vjp = ACTIVATIONS[activation]
    slopes = f_vjp(np.ones((B, n)), A @ W.T + b)  # f'(z), one row per example
    for r in range(B):
        J_F = np.diag(slopes[r]) @ W  # the branch's Jacobian, column form
        delta = dY[r]
        terms = delta @ delta + 2 * delta @ J_F @ delta + np.sum((J_F.T @ delta) ** 2)
        assert np.isclose(dA[r] @ dA[r], terms, rtol=1e-12, atol=1e-12)
        if dA[r] @ dA[r] < (1 - 1e-9) * (
            delta @ delta
        ):  # it shrank: J_F points against δ
            assert delta @ J_F @ delta < 0


def test_a_residual_stack_can_make_the_gradient_vanish():
    # checks: rn-res-norm
    rng = np.random.default_rng(0)
    width, depth = 16, 50
    W, b = -0.5 * np.eye(width), np.zeros(width)  # I + J_F = diag(1 − f'(z)/2)
    As = [rng.normal(size=(4, width))]
    for _ in range(depth):
        As.append(residual_block(As[-1], W, b))
    g = rng.normal(size=(4, width))
    g /= np.linalg.norm(g)
    for A in reversed(As[:-1]):
        g_next = residual_block_vjp(g, A, W, b)[0]
        assert np.linalg.norm(g_next) < np.linalg.norm(g)  # every block shrinks it
        g = g_next
    assert 0.5**depth <= np.linalg.norm(g) < 1e-12


def test_slopes_can_raise_the_norm_for_a_non_normal_w_hh():
    # checks: rnn-norm-bound
    W_hh = np.array([[1.0, 1.0], [-1.0, -1.0]])  # W_hh² = 0, not normal
    W_xh, b, h0 = np.array([[1.0], [0.0]]), np.zeros(2), np.zeros((1, 2))
    X = np.ones((1, 2, 1))
    still = state_jacobians(0 * X, h0, W_xh, W_hh, b)[-1]  # every slope 1: W_hh²
    driven = state_jacobians(X, h0, W_xh, W_hh, b)[-1]
    assert np.linalg.norm(still, 2) == 0.0
    assert np.linalg.norm(driven, 2) > 0.4


@given(seed=seeds, n_h=st.integers(1, 5), T=st.integers(1, 12))
def test_the_bound_with_the_slopes_holds(seed, n_h, T):
    # checks: rnn-norm-bound
    rng = np.random.default_rng(seed)
    W_hh = 1.5 * rng.normal(size=(n_h, n_h)) / np.sqrt(n_h)
    W_xh, b = rng.normal(size=(n_h, 2)), rng.normal(size=n_h)
    X, h0 = rng.normal(size=(1, T, 2)), rng.normal(size=(1, n_h))
    J = state_jacobians(X, h0, W_xh, W_hh, b)
    max_slopes = (1 - rnn(X, h0, W_xh, W_hh, b)[0] ** 2).max(axis=1)  # ‖diag(s_t)‖₂
    bound = np.cumprod(max_slopes * np.linalg.norm(W_hh, 2))
    assert np.all(np.linalg.norm(J, 2, axis=(1, 2)) <= bound * (1 + 1e-12) + 1e-300)
