"""The network: gradients against finite differences, training, and refusals."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import TOL

import backprop as bp
from backprop.datasets import blobs, spirals
from backprop.mlp import MLP


def network_gradient_by_finite_differences(net, X, y):
    grads = []
    for k, (W, b) in enumerate(net.params):

        def loss_with(new, k=k, which=0):
            saved = net.params[k]
            pair = list(saved)
            pair[which] = new
            net.params[k] = tuple(pair)
            try:
                return net.loss_and_grads(X, y)[0]
            finally:
                net.params[k] = saved

        grads.append(
            (
                bp.numerical_gradient(lambda V, f=loss_with: f(V, which=0), W),
                bp.numerical_gradient(lambda V, f=loss_with: f(V, which=1), b),
            )
        )
    return grads


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("batch", [1, 7])
def test_network_gradients_match_finite_differences(activation, batch):
    rng = np.random.default_rng(3)
    net = MLP([4, 6, 5, 3], activation=activation, seed=11)
    # Biases away from zero keep relu's kinks out of the finite-difference stencil.
    net.params = [(W, rng.uniform(0.1, 0.3, size=b.shape)) for W, b in net.params]
    X = rng.normal(size=(batch, 4))
    y = rng.integers(0, 3, size=batch)
    loss, grads = net.loss_and_grads(X, y)
    assert np.isfinite(loss)
    numeric = network_gradient_by_finite_differences(net, X, y)
    assert len(grads) == len(net.params)
    for (dW, db), (nW, nb), (W, b) in zip(grads, numeric, net.params):
        assert dW.shape == W.shape and db.shape == b.shape
        assert bp.relative_error(dW, nW) <= TOL
        assert bp.relative_error(db, nb) <= TOL


def test_parameters_have_the_pytorch_layout():
    net = MLP([5, 4, 3])
    assert [(W.shape, b.shape) for W, b in net.params] == [
        ((4, 5), (4,)),
        ((3, 4), (3,)),
    ]
    assert net.forward(np.zeros((2, 5))).shape == (2, 3)


def test_initialisation_is_deterministic():
    a, b = MLP([2, 8, 3], seed=5), MLP([2, 8, 3], seed=5)
    for (Wa, ba), (Wb, bb) in zip(a.params, b.params):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    assert not np.array_equal(a.params[0][0], MLP([2, 8, 3], seed=6).params[0][0])


def test_training_reaches_95_percent_on_spirals_deterministically():
    X, y = spirals(n_per_class=100, n_classes=3, noise=0.2, seed=0)
    runs = []
    for _ in range(2):
        net = MLP([2, 32, 32, 3], activation="tanh", seed=0)
        history = net.train(X, y, lr=0.3, epochs=200, batch_size=30, seed=0)
        runs.append((history, net.accuracy(X, y)))
    (history, accuracy), (history2, _) = runs
    assert accuracy >= 0.95
    assert history == history2  # same seed, same numbers, to the last bit
    assert history["loss"][-1] < 0.5 * history["loss"][0]


def test_datasets_are_deterministic_and_shaped():
    X, y = spirals(50, 4, seed=1)
    X2, y2 = spirals(50, 4, seed=1)
    assert X.shape == (200, 2) and y.shape == (200,) and set(y) == {0, 1, 2, 3}
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    Xb, yb = blobs(10, 3, n_features=5, seed=2)
    assert Xb.shape == (30, 5) and np.bincount(yb).tolist() == [10, 10, 10]


def snapshot(net):
    return copy.deepcopy(net.params)


def assert_unchanged(net, before):
    for (W, b), (W0, b0) in zip(net.params, before):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (
            np.zeros((3, 2)),
            np.array([0, 1, 3]),
            r"labels must lie in 0 … 2 for 3 classes; got values from 0 to 3",
        ),
        (np.zeros((3, 2)), np.array([0, -1, 1]), r"labels must lie in 0 … 2"),
        (
            np.zeros((3, 5)),
            np.array([0, 1, 2]),
            r"X has 5 features but the first layer expects 2",
        ),
        (
            np.array([[0.0, np.nan], [1.0, 1.0]]),
            np.array([0, 1]),
            r"X must be finite; got 1 NaN or inf",
        ),
        (np.array([[0.0, np.inf], [1.0, 1.0]]), np.array([0, 1]), r"X must be finite"),
        (np.zeros((0, 2)), np.array([], dtype=int), r"X must not be empty"),
        (
            np.zeros((3, 2)),
            np.array([0, 1]),
            r"logits have 3 rows, labels have 2|one label per example",
        ),
    ],
)
def test_bad_input_is_refused_and_leaves_parameters_alone(X, y, message):
    net = MLP([2, 4, 3], seed=0)
    before = snapshot(net)
    for call in (
        lambda: net.loss_and_grads(X, y),
        lambda: net.train(X, y, epochs=1),
        lambda: net.sgd_step(X, y, lr=0.1),
    ):
        with pytest.raises(ValueError, match=message):
            call()
        assert_unchanged(net, before)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"activation must be one of"):
        MLP([2, 3], activation="softsign")
    with pytest.raises(ValueError, match=r"at least \[n_in, n_out\]"):
        MLP([2])
    with pytest.raises(ValueError, match=r"positive integers"):
        MLP([2, 0, 3])
    net = MLP([2, 3])
    X, y = spirals(5, 3)
    with pytest.raises(ValueError, match=r"lr must be a positive number"):
        net.train(X, y, lr=-1.0)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer"):
        net.train(X, y, batch_size=0)


def test_a_diverging_step_is_refused_without_being_applied():
    X, y = spirals(20, 3, seed=0)
    net = MLP([2, 16, 3], activation="relu", seed=0)
    before = snapshot(net)
    with (
        pytest.raises(FloatingPointError, match=r"not applied"),
        np.errstate(over="ignore", invalid="ignore"),
    ):
        net.sgd_step(
            1e5 * X, y, lr=1e308
        )  # gradients of order 1e4 times lr: the update overflows to inf
    assert_unchanged(net, before)


def test_training_that_diverges_stops_with_an_error_and_finite_parameters():
    X, y = spirals(20, 3, seed=0)
    net = MLP([2, 16, 3], activation="relu", seed=0)
    with (
        pytest.raises(FloatingPointError),
        np.errstate(over="ignore", invalid="ignore"),
    ):
        net.train(X, y, lr=1e150, epochs=50, batch_size=10)
    assert all(np.all(np.isfinite(W)) and np.all(np.isfinite(b)) for W, b in net.params)
