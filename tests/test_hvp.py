"""Hessian-vector products of the MLP: ``MLP.hvp`` (the R-operator by hand) and
``MLP.gnvp`` (Gauss–Newton), with the helpers of ``backprop.second_order``.

``hvp`` is checked against central differences of the gradients of
``loss_and_grads`` along the direction, for symmetry ⟨U, HV⟩ = ⟨HU, V⟩, and, on a
tiny network, by the whole Hessian built column by column (symmetric, equal to the
finite-difference Jacobian of the gradient). ``gnvp`` against Jᵀ ∇²_Z E J built
from a finite-difference Jacobian of the logits; it is symmetric and positive
semi-definite, equal to ``hvp`` for one layer and not for two. Shapes, depths and
activations are drawn by hypothesis, batch 1 and one-unit layers included.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import backprop as bp
from backprop.second_order import (
    activation_curvature,
    check_like,
    flatten,
    hessian_matrix,
    param_dot,
    power_iteration,
    unflatten,
)

ACTS = ("tanh", "sigmoid", "relu")
dims = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
depths = st.integers(min_value=1, max_value=3)
HV_TOL = 1e-6  # issue 14: H·V against differences of gradients, float64


def make(seed, B, n_in, hidden, n_classes, activation, dtype=np.float64):
    """A network with random biases (so no bias is zero), a batch and a label."""
    rng = np.random.default_rng(seed)
    net = bp.MLP(
        [n_in, *hidden, n_classes], activation=activation, seed=seed, dtype=dtype
    )
    net.params = [
        (W, (0.3 * rng.normal(size=b.shape)).astype(dtype)) for W, b in net.params
    ]
    X = rng.normal(size=(B, n_in))
    y = rng.integers(0, n_classes, size=B)
    return net, X, y, rng


def direction(rng, params):
    return [(rng.normal(size=W.shape), rng.normal(size=b.shape)) for W, b in params]


def moved(net, V, t):
    """The network's parameters moved by t·V (a new list: nothing in place)."""
    return [(W + t * Wd, b + t * bd) for (W, b), (Wd, bd) in zip(net.params, V)]


def fd_hvp(net, X, y, V, h=1e-5):
    """Central differences of the gradient along V: (∇E(θ + hV) − ∇E(θ − hV)) / 2h."""
    params = net.params
    grads = []
    for t in (h, -h):
        net.params = moved(net, V, t)
        grads.append(flatten(net.loss_and_grads(X, y)[1]))
        net.params = params
    return (grads[0] - grads[1]) / (2 * h)


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b)))


def away_from_kinks(net, X, margin=1e-3):
    """A ReLU network is twice differentiable only off its kinks: the differences
    must not cross Z = 0."""
    if net.activation != "relu":
        return True
    _, cache = net.forward_with_cache(X)
    return all(np.min(np.abs(Z)) > margin for _, Z in cache[1:] + cache[:1])


# -- H·V against differences of gradients
# ---------------------------------------


@pytest.mark.parametrize("activation", ACTS)
@given(
    seed=seeds,
    B=dims,
    n_in=dims,
    width=dims,
    depth=depths,
    n_classes=st.integers(2, 4),
)
def test_hvp_matches_differences_of_gradients(
    activation, seed, B, n_in, width, depth, n_classes
):
    net, X, y, rng = make(seed, B, n_in, [width] * (depth - 1), n_classes, activation)
    assume(away_from_kinks(net, X))
    V = direction(rng, net.params)
    HV = flatten(net.hvp(X, y, V))
    assert rel(HV, fd_hvp(net, X, y, V)) <= HV_TOL


@pytest.mark.parametrize("activation", ACTS)
@given(seed=seeds, B=dims, n_in=dims, width=dims, depth=depths)
def test_hvp_is_symmetric(activation, seed, B, n_in, width, depth):
    net, X, y, rng = make(seed, B, n_in, [width] * (depth - 1), 3, activation)
    U, V = direction(rng, net.params), direction(rng, net.params)
    left = param_dot(U, net.hvp(X, y, V))
    right = param_dot(net.hvp(X, y, U), V)
    scale = np.sqrt(param_dot(U, U) * param_dot(V, V)) * max(
        np.linalg.norm(flatten(net.hvp(X, y, V))) / np.sqrt(param_dot(V, V)),
        1e-300,
    )
    assert abs(left - right) <= 1e-12 * scale


@pytest.mark.parametrize("activation", ACTS)
def test_hvp_is_linear_in_v(activation):
    net, X, y, rng = make(3, 5, 3, [4, 3], 3, activation)
    U, V = direction(rng, net.params), direction(rng, net.params)
    UV = [(2 * a - 3 * c, 2 * b - 3 * d) for (a, b), (c, d) in zip(U, V)]
    lhs = flatten(net.hvp(X, y, UV))
    rhs = 2 * flatten(net.hvp(X, y, U)) - 3 * flatten(net.hvp(X, y, V))
    assert rel(lhs, rhs) < 1e-13


@pytest.mark.parametrize("activation", ACTS)
def test_explicit_hessian_of_a_tiny_network(activation):
    net, X, y, _ = make(7, 6, 2, [3], 3, activation)
    assert away_from_kinks(net, X)
    H = hessian_matrix(lambda V: net.hvp(X, y, V), net.params)
    n_theta = sum(W.size + b.size for W, b in net.params)
    assert H.shape == (n_theta, n_theta)
    assert np.max(np.abs(H - H.T)) <= 1e-14 * np.max(np.abs(H))

    # the Jacobian of the gradient, column j by differences along unit vector j
    def grad(theta):
        params = net.params
        net.params = unflatten(theta, params)
        g = flatten(net.loss_and_grads(X, y)[1])
        net.params = params
        return g

    J = bp.numerical_jacobian(grad, flatten(net.params), h=1e-5)
    assert rel(H, J) <= HV_TOL
    # the diagonal block of the last layer is not the whole story: H is not
    # block-diagonal across layers
    n_first = net.params[0][0].size + net.params[0][1].size
    assert np.linalg.norm(H[:n_first, n_first:]) > 0.05 * np.linalg.norm(H)


def test_the_hessian_is_not_gauss_newton_and_can_be_indefinite():
    net, X, y, _ = make(1, 8, 2, [4], 3, "tanh")
    H = hessian_matrix(lambda V: net.hvp(X, y, V), net.params)
    eig = np.linalg.eigvalsh(H)
    assert eig[0] < -1e-3 * eig[-1]  # a negative curvature the GN cannot show


# -- Gauss–Newton
# ----------------------------------------------------------------


def explicit_gauss_newton(net, X, y):
    """Jᵀ ∇²_Z E J from a finite-difference Jacobian J of the logits in θ."""

    def logits(theta):
        params = net.params
        net.params = unflatten(theta, params)
        Z = net.forward(X)
        net.params = params
        return Z.reshape(-1)  # row by row: example r's logits together

    J = bp.numerical_jacobian(logits, flatten(net.params), h=1e-6)
    P = net.predict_proba(X)
    B, n_L = P.shape
    HZ = np.zeros((B * n_L, B * n_L))
    for r in range(B):
        block = (np.diag(P[r]) - np.outer(P[r], P[r])) / B
        HZ[r * n_L : (r + 1) * n_L, r * n_L : (r + 1) * n_L] = block
    return J.T @ HZ @ J


@pytest.mark.parametrize("activation", ACTS)
def test_gnvp_is_jt_hz_j(activation):
    net, X, y, _ = make(5, 4, 2, [3], 3, activation)
    assert away_from_kinks(net, X)
    G = hessian_matrix(lambda V: net.gnvp(X, y, V), net.params)
    assert rel(G, explicit_gauss_newton(net, X, y)) <= 1e-7


@pytest.mark.parametrize("activation", ACTS)
@given(seed=seeds, B=dims, n_in=dims, width=dims, depth=depths)
def test_gnvp_is_symmetric_positive_semidefinite(
    activation, seed, B, n_in, width, depth
):
    net, X, y, rng = make(seed, B, n_in, [width] * (depth - 1), 3, activation)
    U, V = direction(rng, net.params), direction(rng, net.params)
    GV = net.gnvp(X, y, V)
    size = np.sqrt(param_dot(V, V) * param_dot(GV, GV))
    assert param_dot(V, GV) >= -1e-13 * size
    left, right = param_dot(U, GV), param_dot(net.gnvp(X, y, U), V)
    assert abs(left - right) <= 1e-12 * max(size, 1e-300) * np.sqrt(
        param_dot(U, U) / param_dot(V, V)
    )


@given(seed=seeds, B=dims, n_in=dims, n_classes=st.integers(2, 4))
def test_gnvp_equals_hvp_for_a_linear_model(seed, B, n_in, n_classes):
    net, X, y, rng = make(seed, B, n_in, [], n_classes, "tanh")
    V = direction(rng, net.params)
    assert rel(flatten(net.gnvp(X, y, V)), flatten(net.hvp(X, y, V))) < 1e-13


@pytest.mark.parametrize("activation", ACTS)
def test_gnvp_differs_from_hvp_for_a_deeper_network(activation):
    net, X, y, rng = make(2, 8, 3, [4], 3, activation)
    V = direction(rng, net.params)
    assert rel(flatten(net.gnvp(X, y, V)), flatten(net.hvp(X, y, V))) > 0.05


# -- refusals, no change in place, float32
# --------------------------------------


def test_a_direction_of_the_wrong_structure_is_refused():
    net, X, y, rng = make(0, 3, 2, [4], 3, "tanh")
    V = direction(rng, net.params)
    cases = [
        (np.zeros(5), r"list of \(W, b\) pairs"),
        (V[:1], r"one \(W, b\) pair per layer, 2; got 1"),
        ([V[0], V[1][0]], r"V\[1\] must be a pair"),
        ([V[0], (V[1][0], V[1][1], V[1][1])], "of length 3"),
        (
            [(V[0][0].T, V[0][1]), V[1]],
            r"V\[0\] W \(layer 1\) has shape \(2, 4\) but params\[0\] W has "
            r"shape \(4, 2\)",
        ),
        (
            [V[0], (V[1][0], np.zeros(4))],
            r"V\[1\] b \(layer 2\) has shape \(4,\) but params\[1\] b has "
            r"shape \(3,\)",
        ),
        ([V[0], (V[1][0], np.array(["a", "b", "c"]))], "real numeric dtype"),
        ([V[0], (np.full((3, 4), np.nan), V[1][1])], r"V\[1\] W .* finite"),
    ]
    for bad, message in cases:
        for method in (net.hvp, net.gnvp):
            with pytest.raises(ValueError, match=message):
                method(X, y, bad)


def test_bad_data_and_labels_are_refused():
    net, X, y, rng = make(0, 3, 2, [4], 3, "tanh")
    V = direction(rng, net.params)
    with pytest.raises(ValueError, match="features"):
        net.hvp(X[:, :1], y, V)
    with pytest.raises(ValueError):
        net.gnvp(X, y[:2], V)


@pytest.mark.parametrize("method", ["hvp", "gnvp"])
def test_nothing_is_changed_in_place(method):
    net, X, y, rng = make(0, 3, 2, [4], 3, "sigmoid")
    V = direction(rng, net.params)
    copies = [[(W.copy(), b.copy()) for W, b in P] for P in (net.params, V)] + [
        X.copy(),
        y.copy(),
    ]
    getattr(net, method)(X, y, V)
    for P, Q in zip((net.params, V), copies[:2]):
        for (W, b), (W0, b0) in zip(P, Q):
            assert np.array_equal(W, W0) and np.array_equal(b, b0)
    assert np.array_equal(X, copies[2]) and np.array_equal(y, copies[3])


@pytest.mark.parametrize("method", ["hvp", "gnvp"])
@pytest.mark.parametrize("activation", ACTS)
def test_float32_stays_float32(method, activation):
    net64, X, y, rng = make(4, 6, 3, [5], 3, activation)
    net32 = bp.MLP([3, 5, 3], activation=activation, dtype=np.float32)
    net32.params = [
        (W.astype(np.float32), b.astype(np.float32)) for W, b in net64.params
    ]
    net64.params = [
        (W.astype(np.float64), b.astype(np.float64)) for W, b in net32.params
    ]
    V = direction(rng, net64.params)  # float64: converted on the way in
    out32 = getattr(net32, method)(X.astype(np.float32), y, V)
    out64 = getattr(net64, method)(X.astype(np.float32).astype(np.float64), y, V)
    for (W, b), (W0, b0) in zip(out32, net32.params):
        assert W.dtype == b.dtype == np.float32
        assert W.shape == W0.shape and b.shape == b0.shape
    assert rel(flatten(out32), flatten(out64)) < 1e-4


# -- helpers
# ---------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTS)
def test_activation_curvature_is_the_slope_of_the_slope(activation):
    f_vjp = bp.ACTIVATIONS[activation][1]
    Z = np.random.default_rng(0).normal(size=(3, 4)) + 0.05  # off relu's kink
    h = 1e-6
    fd = (f_vjp(np.ones_like(Z), Z + h) - f_vjp(np.ones_like(Z), Z - h)) / (2 * h)
    assert np.max(np.abs(activation_curvature(activation, Z) - fd)) < 1e-8
    Z32 = Z.astype(np.float32)
    assert activation_curvature(activation, Z32).dtype == np.float32
    with pytest.raises(ValueError, match="activation must be"):
        activation_curvature("gelu", Z)


def test_flatten_and_unflatten_are_inverse_and_use_vec():
    net, _, _, rng = make(0, 1, 3, [2], 2, "tanh")
    theta = flatten(net.params)
    assert theta.shape == (3 * 2 + 2 + 2 * 2 + 2,)
    assert np.array_equal(theta[:6], bp.vec(net.params[0][0]))
    back = unflatten(theta, net.params)
    assert np.array_equal(flatten(back), theta)
    assert param_dot(back, back) == pytest.approx(theta @ theta)
    with pytest.raises(ValueError, match="14 entries"):
        unflatten(theta[:-1], net.params)
    assert check_like("V", back, net.params)[0][0] is not None


@pytest.mark.parametrize("activation", ACTS)
def test_power_iteration_finds_the_eigenvalue_of_largest_size(activation):
    net, X, y, _ = make(11, 10, 2, [3], 3, activation)
    H = hessian_matrix(lambda V: net.hvp(X, y, V), net.params)
    eig = np.linalg.eigvalsh(H)
    top = eig[np.argmax(np.abs(eig))]
    found = power_iteration(
        lambda V: net.hvp(X, y, V), net.params, tol=1e-10, max_iter=2000
    )
    assert found.converged
    assert abs(found.lam - top) <= 1e-6 * abs(top)
    v = flatten(found.V)
    assert rel(H @ v, top * v) < 1e-3
    again = power_iteration(
        lambda V: net.hvp(X, y, V), net.params, tol=1e-10, max_iter=2000
    )
    assert again.lam == found.lam and again.iterations == found.iterations


def test_power_iteration_reports_what_did_not_converge_and_refuses_bad_limits():
    net, X, y, _ = make(11, 10, 2, [3], 3, "tanh")
    product = lambda V: net.hvp(X, y, V)  # noqa: E731
    assert not power_iteration(product, net.params, max_iter=1).converged
    for kwargs, message in [
        ({"tol": 0}, "tol"),
        ({"tol": np.nan}, "tol"),
        ({"max_iter": 0}, "max_iter"),
    ]:
        with pytest.raises(ValueError, match=message):
            power_iteration(product, net.params, **kwargs)


def test_power_iteration_of_a_known_matrix():
    M = np.diag([3.0, -1.0, 0.5, 2.0])
    like = [(np.zeros((2, 1)), np.zeros(2))]

    def product(V):
        return unflatten(M @ flatten(V), like)

    found = power_iteration(product, like, tol=1e-12, max_iter=500)
    assert found.converged and found.lam == pytest.approx(3.0, rel=1e-10)
    M = np.diag([-3.0, 1.0, 0.5, 2.0])  # the largest in size is negative
    found = power_iteration(product, like, tol=1e-12, max_iter=500)
    assert found.lam == pytest.approx(-3.0, rel=1e-10)
