"""The training figures of the network chapter: what they draw, and what they refuse."""

from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import numpy as np
import pytest

from backprop.datasets import spirals
from backprop.mlp import MLP
from backprop.plotting import plot_decision_boundary, plot_history


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


class HalfPlane:
    """Class 1 right of x₁ = 0, class 0 left of it: a boundary we know exactly."""

    def predict(self, P):
        return (np.asarray(P)[:, 0] > 0).astype(int)


def test_history_curves_are_the_numbers_given():
    history = {"loss": [1.0, 0.5, 0.25], "accuracy": [0.3, 0.6, 0.9]}
    before = copy.deepcopy(history)
    axes = plot_history(history, label="net")
    assert len(axes) == 2
    (loss_line,) = axes[0].get_lines()
    (acc_line,) = axes[1].get_lines()
    np.testing.assert_array_equal(loss_line.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(loss_line.get_ydata(), [1.0, 0.5, 0.25])
    np.testing.assert_array_equal(acc_line.get_ydata(), [0.3, 0.6, 0.9])
    assert axes[0].get_yscale() == "log"
    assert history == before


def test_a_second_history_draws_on_the_same_axes():
    axes = plot_history({"loss": [1.0, 0.9]}, label="a")
    again = plot_history({"loss": [2.0, 1.0], "accuracy": [0.1, 0.2]}, axes, label="b")
    assert list(again) == list(axes)
    assert len(axes[0].get_lines()) == 2 and len(axes[1].get_lines()) == 1


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([1.0, 0.5], r"mapping with a 'loss' entry"),
        ({"accuracy": [0.5]}, r"mapping with a 'loss' entry"),
        ({"loss": []}, r"non-empty 1-D"),
        ({"loss": [1.0, np.nan]}, r"must be finite"),
        ({"loss": ["high", "low"]}, r"sequence of numbers"),
        ({"loss": [1.0, 0.5], "accuracy": [0.5]}, r"2 loss values but 1 accuracy"),
    ],
)
def test_bad_histories_are_refused(history, message):
    with pytest.raises(ValueError, match=message):
        plot_history(history)


def test_history_needs_two_axes():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"two Axes"):
        plot_history({"loss": [1.0]}, axes=[ax])


def test_decision_boundary_colours_each_side_by_its_class():
    X = np.array([[-1.0, -1.0], [1.0, 1.0], [-0.5, 0.5], [0.5, -0.5]])
    y = np.array([0, 1, 0, 1])
    X0, y0 = X.copy(), y.copy()
    ax = plot_decision_boundary(HalfPlane(), X, y, resolution=11, margin=0.0)
    mesh = ax.collections[0]
    classes = np.asarray(mesh.get_array()).reshape(11, 11)
    # columns are x₁ from -1 to 1; the left half predicts 0, the right half 1
    assert np.all(classes[:, :5] == 0) and np.all(classes[:, 6:] == 1)
    scatter = ax.collections[1]
    np.testing.assert_array_equal(scatter.get_offsets(), X)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_decision_boundary_of_a_trained_network_matches_its_predictions():
    X, y = spirals(20, 3, seed=0)
    net = MLP([2, 8, 3], seed=0)
    params = copy.deepcopy(net.params)
    ax = plot_decision_boundary(net, X, y, resolution=7, margin=0.1)
    classes = np.asarray(ax.collections[0].get_array()).ravel()
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * (hi - lo)
    U, V = np.meshgrid(
        np.linspace(lo[0] - pad[0], hi[0] + pad[0], 7),
        np.linspace(lo[1] - pad[1], hi[1] + pad[1], 7),
    )
    expected = net.predict(np.column_stack([U.ravel(), V.ravel()]))
    np.testing.assert_array_equal(classes, expected)
    for (W, b), (W0, b0) in zip(net.params, params):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


class Broken:
    def predict(self, P):
        return np.zeros(3)


@pytest.mark.parametrize(
    ("model", "X", "y", "kwargs", "message"),
    [
        (HalfPlane(), np.zeros((4, 3)), np.zeros(4, int), {}, r"2 columns"),
        (HalfPlane(), np.zeros(4), np.zeros(4, int), {}, r"must be 2-D"),
        (HalfPlane(), [[0.0, np.inf]], [0], {}, r"X must be finite"),
        (HalfPlane(), np.zeros((4, 2)), np.zeros(3, int), {}, r"one label per row"),
        (HalfPlane(), np.zeros((2, 2)), np.array([0.5, 1.0]), {}, r"integer labels"),
        (HalfPlane(), np.zeros((2, 2)), np.array([0, -1]), {}, r"integer labels"),
        (HalfPlane(), np.zeros((2, 2)), [0, 1], {"resolution": 1}, r"resolution"),
        (HalfPlane(), np.zeros((2, 2)), [0, 1], {"margin": -0.1}, r"margin"),
        (object(), np.zeros((2, 2)), [0, 1], {}, r"predict method"),
        (Broken(), np.zeros((2, 2)), [0, 1], {"resolution": 3}, r"9 integer classes"),
    ],
)
def test_bad_decision_boundary_input_is_refused(model, X, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot_decision_boundary(model, X, y, **kwargs)
