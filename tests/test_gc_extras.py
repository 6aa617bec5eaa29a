"""``step_size_errors``: the measured error-versus-step curve of finite differences.

It must reproduce the textbook behaviour (truncation O(h) forward and O(h²) central,
round-off O(ε/h), the best step near ε^{1/2} and ε^{1/3}), agree with
``numerical_gradient``, compute in the precision it is asked for, and still be able
to say that a wrong gradient is wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.gradcheck import step_size_errors


def tanh_layer(seed=3, n_out=3, n_in=4):
    """E(W) = ⟨G, tanh(A Wᵀ + b)⟩ at a random point and its exact gradient ∂E/∂W."""
    rng = np.random.default_rng(seed)
    A, W = rng.normal(size=(5, n_in)), rng.normal(size=(n_out, n_in))
    b, G = rng.normal(size=n_out), rng.normal(size=(5, n_out))
    dZ = bp.tanh_vjp(G, bp.linear(A, W, b))
    _, dW, _ = bp.linear_vjp(dZ, A, W)

    def E(W_):  # computes in the dtype of W_
        dt = W_.dtype
        return np.sum(G.astype(dt) * np.tanh(A.astype(dt) @ W_.T + b.astype(dt)))

    return E, W, dW


def test_truncation_orders():
    x = np.array([0.7])
    f, fprime = (lambda v: np.exp(v[0])), np.exp(x)
    fwd = step_size_errors(f, x, fprime, [1e-2, 1e-3], scheme="forward")
    cen = step_size_errors(f, x, fprime, [1e-2, 1e-3], scheme="central")
    assert 9 < fwd[0] / fwd[1] < 11  # error ∝ h
    assert 90 < cen[0] / cen[1] < 110  # error ∝ h²
    # leading terms: (h/2) f'' / f' and (h²/6) f''' / f', here h/2 and h²/6
    assert fwd[1] == pytest.approx(1e-3 / 2, rel=1e-2)
    assert cen[1] == pytest.approx(1e-6 / 6, rel=1e-2)


def test_agrees_with_numerical_gradient():
    E, W, dW = tanh_layer()
    expected = bp.relative_error(bp.numerical_gradient(E, W, h=1e-6), dW)
    (got,) = step_size_errors(E, W, dW, [1e-6])
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("scheme", "power"), [("forward", 2), ("central", 3)])
def test_the_best_step_is_near_the_predicted_one(dtype, scheme, power):
    E, W, dW = tanh_layer()
    hs = 10.0 ** np.arange(-14, 0.01, 0.25)
    errors = step_size_errors(E, W, dW, hs, scheme=scheme, dtype=dtype)
    eps = np.finfo(dtype).eps
    best = hs[np.argmin(errors)]
    # near ε^{1/2} or ε^{1/3}: the derivatives of E are not known, so only roughly
    # (the next test pins the central step to a factor of 3 where they are)
    assert eps ** (1 / power) / 30 < best < 30 * eps ** (1 / power)
    # The best error is about ε^{1/2} (forward) or ε^{2/3} (central) ...
    assert errors.min() < 30 * eps ** ((power - 1) / power)
    # ... and tiny steps are ruined by round-off.
    assert errors[0] > 1e3 * errors.min()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_best_central_step_is_the_theory_within_a_factor_of_3(dtype):
    """For f = exp, f‴ = f: the error bound h²|f‴|/6 + ε|f|/h of a central difference
    is smallest at h* = (3ε |f| / |f‴|)^{1/3} = (3ε)^{1/3}, at every x. The measured
    curve, averaged over 50 points in [−½, ½] so that the luck of single round-offs
    averages out, has its minimum within a factor of 3 of h* (a little below it: the
    typical round-off is a fraction of its bound). The grid is 20 steps a decade."""
    hs = 10.0 ** np.arange(-10, -0.99, 0.05)
    xs = np.random.default_rng(0).uniform(-0.5, 0.5, size=50)
    errors = np.mean(
        [
            step_size_errors(lambda v: np.exp(v[0]), [x], np.exp([x]), hs, dtype=dtype)
            for x in xs
        ],
        axis=0,
    )
    best, theory = hs[np.argmin(errors)], (3 * np.finfo(dtype).eps) ** (1 / 3)
    assert theory / 3 < best < 3 * theory


def test_float32_is_really_float32():
    E, W, dW = tanh_layer()
    (e64,) = step_size_errors(E, W, dW, [1e-6], dtype=np.float64)
    (e32,) = step_size_errors(E, W, dW, [1e-6], dtype=np.float32)
    assert e64 < 1e-8 and e32 > 1e-3


def test_a_wrong_gradient_is_reported_wrong():
    E, W, dW = tanh_layer()
    errors = step_size_errors(E, W, 2 * dW, [1e-2, 1e-5, 1e-8])
    assert np.all(np.abs(errors - 0.5) < 1e-3)
    # A square layer: the transposed gradient has the right shape and is refused.
    E, W, dW = tanh_layer(n_out=3, n_in=3)
    assert np.all(step_size_errors(E, W, dW.T, [1e-3, 1e-6]) > 1e-2)
    assert np.all(step_size_errors(E, W, dW, [1e-3, 1e-6]) < 1e-5)


def test_inputs_are_left_alone_and_refused_when_bad():
    E, W, dW = tanh_layer()
    W0, dW0 = W.copy(), dW.copy()
    step_size_errors(E, W, dW, [1e-3, 1e-6], scheme="forward", dtype=np.float32)
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(dW, dW0)
    with pytest.raises(ValueError, match="scheme"):
        step_size_errors(E, W, dW, [1e-3], scheme="backward")
    with pytest.raises(ValueError, match="dtype"):
        step_size_errors(E, W, dW, [1e-3], dtype=np.float16)
    with pytest.raises(ValueError, match="positive"):
        step_size_errors(E, W, dW, [1e-3, 0.0])
    with pytest.raises(ValueError, match="shape"):
        step_size_errors(E, W, dW.T, [1e-3])
