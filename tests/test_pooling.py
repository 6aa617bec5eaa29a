"""Max and average pooling (``backprop.pooling``) and dropout (``backprop.layers``).

The forward passes are checked against loops over the windows; the VJPs against
central differences of ``E = ⟨G, f(X)⟩`` in float64, against an explicit Jacobian at
small sizes and with the adjoint test (the average pool and dropout are linear; the
max pool's VJP is the transpose of its tangent map, a selection). Ties in the max go
to the first entry of the window in row-major order, each window on its own, as
PyTorch on CPU: checked against a loop that does exactly that, on integer images full
of ties, and against two gradients PyTorch 2.13 printed. The average pool is a
convolution with the constant kernel ``[o = c]/(kh·kw)``. Shapes, kernels, strides
and paddings are drawn by hypothesis (batch 1, 1 × 1 kernels, overlapping windows,
windows with gaps between them); bad input, purity, float32 and the engine follow.
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
from backprop.conv import conv2d, conv2d_vjp
from backprop.layers import dropout, dropout_mask, dropout_vjp, relu_vjp
from backprop.pooling import (
    _max_pool2d_jvp,
    avg_pool2d,
    avg_pool2d_vjp,
    max_pool2d,
    max_pool2d_vjp,
)

seeds = st.integers(min_value=0, max_value=2**32 - 1)
ROUNDOFF = 1e-12
POOLS = {"max": (max_pool2d, max_pool2d_vjp), "avg": (avg_pool2d, avg_pool2d_vjp)}


@st.composite
def settings(draw):
    """``(shape, kernel, stride, padding)`` that PyTorch accepts: padding at most
    half the kernel, the kernel no larger than the padded image."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    Ny = draw(st.integers(max(1, k[0] - 2 * p[0]), 6))
    Nx = draw(st.integers(max(1, k[1] - 2 * p[1]), 6))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), Ny, Nx)
    return shape, k, s, p


def separated(rng, shape):
    """Distinct entries at least 0.05 apart: no near-tie for a difference step."""
    n = int(np.prod(shape))
    return (0.1 * rng.permutation(n) + rng.uniform(0, 0.05, n)).reshape(shape)


def loop_windows(X, k, s, p, fill):
    """Each window as a list in row-major order, padding entries ``fill``; with the
    position ``(y, x)`` in X of each entry (None for padding)."""
    B, C, Ny, Nx = X.shape
    Ni, Nj = (Ny + 2 * p[0] - k[0]) // s[0] + 1, (Nx + 2 * p[1] - k[1]) // s[1] + 1
    for n in range(B):
        for c in range(C):
            for i in range(Ni):
                for j in range(Nj):
                    values, where = [], []
                    for a in range(k[0]):
                        for b in range(k[1]):
                            y, x = s[0] * i + a - p[0], s[1] * j + b - p[1]
                            inside = 0 <= y < Ny and 0 <= x < Nx
                            values.append(X[n, c, y, x] if inside else fill)
                            where.append((y, x) if inside else None)
                    yield (n, c, i, j), values, where


def loop_max(X, k, s, p):
    Y = {}
    for key, values, _ in loop_windows(X, k, s, p, -np.inf):
        Y[key] = max(values)
    return Y


def loop_max_vjp(dY, X, k, s, p):
    """Each window hands its gradient to its first largest entry, nothing else."""
    dX = np.zeros_like(X)
    for (n, c, i, j), values, where in loop_windows(X, k, s, p, -np.inf):
        first = values.index(max(values))
        y, x = where[first]
        dX[n, c, y, x] += dY[n, c, i, j]
    return dX


def to_array(Y, shape):
    out = np.zeros(shape)
    for key, value in Y.items():
        out[key] = value
    return out


# --- forward --------------------------------------------------------------------------


@given(seed=seeds, setting=settings())
def test_pools_match_loops_over_the_windows(seed, setting):
    shape, k, s, p = setting
    X = np.random.default_rng(seed).normal(size=shape)
    Y = max_pool2d(X, k, s, p)
    A = avg_pool2d(X, k, s, p)
    assert Y.shape == A.shape
    assert Y.shape[:2] == shape[:2]
    np.testing.assert_array_equal(Y, to_array(loop_max(X, k, s, p), Y.shape))
    means = {key: sum(v) / (k[0] * k[1]) for key, v, _ in loop_windows(X, k, s, p, 0.0)}
    np.testing.assert_allclose(A, to_array(means, A.shape), rtol=1e-14, atol=1e-15)


def test_stride_defaults_to_the_kernel(rng):
    X = rng.normal(size=(2, 3, 7, 6))
    for pool, _ in POOLS.values():
        np.testing.assert_array_equal(pool(X, (3, 2)), pool(X, (3, 2), (3, 2)))
        assert pool(X, (3, 2)).shape == (2, 3, 2, 3)


def test_padding_never_wins_the_max():
    X = -np.ones((1, 1, 2, 2))  # every pixel below the zero that padding would be
    np.testing.assert_array_equal(max_pool2d(X, 2, 1, 1), -np.ones((1, 1, 3, 3)))


@given(seed=seeds, setting=settings())
def test_average_pool_is_a_convolution_with_a_constant_kernel(seed, setting):
    shape, k, s, p = setting
    rng = np.random.default_rng(seed)
    X = rng.normal(size=shape)
    C = shape[1]
    W = np.eye(C)[:, :, None, None] * np.ones(k) / (k[0] * k[1])
    Y = avg_pool2d(X, k, s, p)
    np.testing.assert_allclose(Y, conv2d(X, W, None, s, p), rtol=1e-13, atol=1e-15)
    G = rng.normal(size=Y.shape)
    dX = avg_pool2d_vjp(G, X, k, s, p)
    np.testing.assert_allclose(dX, conv2d_vjp(G, X, W, s, p)[0], rtol=1e-13, atol=1e-15)


# --- backward: finite differences, the adjoint, the Jacobian ---------------------------


@pytest.mark.parametrize("kind", sorted(POOLS))
@given(seed=seeds, setting=settings())
def test_pool_vjps_match_finite_differences(kind, seed, setting):
    shape, k, s, p = setting
    pool, pool_vjp = POOLS[kind]
    rng = np.random.default_rng(seed)
    X = separated(rng, shape)
    Y = pool(X, k, s, p)
    G = rng.normal(size=Y.shape)
    dX = pool_vjp(G, X, k, s, p)
    assert dX.shape == X.shape

    def E(v):
        return np.sum(G * pool(v, k, s, p))

    assert fd_error(dX, E, X, float(np.sum(np.abs(G * Y)))) <= TOL


@given(seed=seeds, setting=settings())
def test_pool_vjps_are_the_adjoints_of_the_tangent_maps(seed, setting):
    shape, k, s, p = setting
    rng = np.random.default_rng(seed)
    X, V = separated(rng, shape), rng.normal(size=shape)
    U = rng.normal(size=max_pool2d(X, k, s, p).shape)
    # the average pool is linear: its tangent map is itself
    gap = bp.adjoint_test(
        lambda v: avg_pool2d(v, k, s, p),
        lambda u: avg_pool2d_vjp(u, X, k, s, p),
        V,
        U,
    )
    assert gap < ROUNDOFF
    # the max pool at X: the tangent map picks dX at each window's winner
    gap = bp.adjoint_test(
        lambda v: _max_pool2d_jvp(v, X, k, s, p),
        lambda u: max_pool2d_vjp(u, X, k, s, p),
        V,
        U,
    )
    assert gap < ROUNDOFF


def test_the_max_pool_tangent_map_is_the_derivative(rng):
    X, V = separated(rng, (2, 3, 5, 5)), rng.normal(size=(2, 3, 5, 5))
    h = 1e-6
    fd = (max_pool2d(X + h * V, 3, 2, 1) - max_pool2d(X - h * V, 3, 2, 1)) / (2 * h)
    assert bp.relative_error(_max_pool2d_jvp(V, X, 3, 2, 1), fd) < TOL


@pytest.mark.parametrize("kind", sorted(POOLS))
def test_pool_vjps_against_the_explicit_jacobian(rng, kind):
    pool, pool_vjp = POOLS[kind]
    X = separated(rng, (2, 2, 4, 5))
    G = rng.normal(size=pool(X, (3, 2), (1, 2), (1, 1)).shape)
    J = bp.numerical_jacobian(lambda v: pool(v, (3, 2), (1, 2), (1, 1)), X)
    assert J.shape == (G.size, X.size)
    dX_J = bp.unvec(J.T @ bp.vec(G), X.shape)
    assert bp.relative_error(pool_vjp(G, X, (3, 2), (1, 2), (1, 1)), dX_J) <= TOL
    if kind == "max":  # a selection: each row of J is one unit row vector
        np.testing.assert_allclose(np.sort(J, axis=1)[:, -1], 1.0, rtol=1e-8)
        np.testing.assert_allclose(np.abs(J).sum(axis=1), 1.0, rtol=1e-8)


def test_the_max_is_not_spread_over_the_window(rng):
    """The trap of the chapter: the average pool's rule applied to the max."""
    X = separated(rng, (1, 2, 4, 4))
    G = rng.normal(size=(1, 2, 2, 2))
    right = max_pool2d_vjp(G, X, 2)
    fd = bp.numerical_gradient(lambda v: np.sum(G * max_pool2d(v, 2)), X)
    assert bp.relative_error(right, fd) <= TOL
    assert bp.relative_error(avg_pool2d_vjp(G, X, 2), fd) > 0.5


# --- ties: the first entry of each window, in row-major order ---------------------------


@given(seed=seeds, setting=settings())
def test_ties_go_to_the_first_entry_of_each_window(seed, setting):
    shape, k, s, p = setting
    rng = np.random.default_rng(seed)
    X = rng.integers(-1, 2, size=shape).astype(float)  # three values: many ties
    G = rng.normal(size=max_pool2d(X, k, s, p).shape)
    np.testing.assert_allclose(
        max_pool2d_vjp(G, X, k, s, p),
        loop_max_vjp(G, X, k, s, p),
        rtol=1e-14,
        atol=1e-15,
    )


def test_ties_as_pytorch_breaks_them():
    """Gradients that ``torch.nn.functional.max_pool2d`` (2.13, CPU) gives for dY = 1.

    A constant image pooled by overlapping 3 × 3 windows: every window sends its
    gradient to its own top-left entry. With padding 1 and 2 × 2 windows at stride 1,
    each window's first largest entry collects one count.
    """
    dX = max_pool2d_vjp(np.ones((1, 1, 2, 2)), np.ones((1, 1, 4, 4)), 3, 1)
    expected = np.zeros((4, 4))
    expected[:2, :2] = 1
    np.testing.assert_array_equal(dX[0, 0], expected)
    X = np.array([[[[1.0, 2, 2], [2, 0, 2], [2, 2, 2]]]])
    dX = max_pool2d_vjp(np.ones((1, 1, 4, 4)), X, 2, 1, 1)
    np.testing.assert_array_equal(dX[0, 0], [[1, 4, 2], [3, 0, 2], [2, 1, 1]])


# --- refusals, purity, float32 ----------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(POOLS))
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((2, 3, 4)), 2), r"X must be 4-D; got 3-D"),
        ((np.zeros((1, 1, 4, 4)), 2.0), r"kernel_size must be a positive integer"),
        ((np.zeros((1, 1, 4, 4)), 0), r"kernel_size must be a positive integer"),
        ((np.zeros((1, 1, 4, 4)), (2, 2, 2)), r"or a pair of positive integers"),
        ((np.zeros((1, 1, 4, 4)), 2, 0), r"stride must be a positive integer"),
        ((np.zeros((1, 1, 4, 4)), 2, 1, -1), r"padding must be a non-negative"),
        ((np.zeros((1, 1, 4, 4)), 2, 1, 2), r"at most half the kernel size; got "),
        ((np.zeros((1, 1, 4, 4)), (3, 1), 1, (1, 1)), r"padding \(1, 1\) for kern"),
        ((np.zeros((1, 1, 2, 5)), 3), r"kernel height 3 exceeds the padded input"),
        ((np.zeros((1, 1, 5, 1)), (1, 4), 1, (0, 1)), r"kernel width 4 exceeds"),
        ((np.array([[[["a"]]]]), 1), r"X must have a real numeric dtype"),
    ],
)
def test_bad_input_is_refused(kind, args, message):
    pool, pool_vjp = POOLS[kind]
    with pytest.raises(ValueError, match=message):
        pool(*args)
    with pytest.raises(ValueError, match=message):
        pool_vjp(np.zeros((1, 1, 1, 1)), *args)


@pytest.mark.parametrize("kind", sorted(POOLS))
def test_a_gradient_of_the_wrong_shape_is_refused(kind):
    _, pool_vjp = POOLS[kind]
    X = np.zeros((2, 3, 6, 6))
    with pytest.raises(ValueError, match=r"the pooled X, \(2, 3, 3, 3\); got"):
        pool_vjp(np.zeros((2, 3, 3, 2)), X, 2)
    with pytest.raises(ValueError, match=r"dY must be 4-D"):
        pool_vjp(np.zeros((3, 3, 3)), X, 2)


@pytest.mark.parametrize("kind", sorted(POOLS))
def test_nothing_is_modified_or_shared(rng, kind):
    pool, pool_vjp = POOLS[kind]
    X = rng.normal(size=(2, 2, 5, 5))
    G = rng.normal(size=(2, 2, 3, 3))
    X0, G0 = X.copy(), G.copy()
    Y = pool(X, 3, 2, 1)
    dX = pool_vjp(G, X, 3, 2, 1)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(G, G0)
    assert not np.shares_memory(Y, X) and not np.shares_memory(dX, G)
    dX[...] = 7.0  # a result is an array of its own, writable
    Y[...] = 7.0
    np.testing.assert_array_equal(X, X0)


@pytest.mark.parametrize("kind", sorted(POOLS))
def test_float32_stays_float32(rng, kind):
    pool, pool_vjp = POOLS[kind]
    X = separated(rng, (2, 2, 5, 4))
    G = rng.normal(size=pool(X, (2, 3), 1, (1, 1)).shape)
    X32, G32 = X.astype(np.float32), G.astype(np.float32)
    Y32, dX32 = pool(X32, (2, 3), 1, (1, 1)), pool_vjp(G32, X32, (2, 3), 1, (1, 1))
    assert Y32.dtype == np.float32 and dX32.dtype == np.float32
    Y, dX = pool(X, (2, 3), 1, (1, 1)), pool_vjp(G, X, (2, 3), 1, (1, 1))
    assert bp.relative_error(Y32, Y) < 1e-6
    assert bp.relative_error(dX32, dX) < 1e-6


def test_integers_are_pooled_as_float64():
    X = np.arange(16).reshape(1, 1, 4, 4)
    assert max_pool2d(X, 2).dtype == np.float64
    np.testing.assert_array_equal(max_pool2d(X, 2)[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(avg_pool2d(X, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])


# --- dropout ----------------------------------------------------------------------------


def test_dropout_is_x_times_the_mask_over_the_keep_probability(rng):
    X = rng.normal(size=(3, 4, 5))
    Y, mask = dropout(X, 0.3, np.random.default_rng(1))
    assert mask.shape == X.shape and mask.dtype == X.dtype
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_allclose(Y, X * mask / 0.7, rtol=1e-15)
    # the same generator state draws the same mask
    np.testing.assert_array_equal(dropout(X, 0.3, np.random.default_rng(1))[1], mask)
    np.testing.assert_array_equal(
        dropout_mask(X.shape, 0.3, np.random.default_rng(1)), mask
    )


def test_dropout_keeps_each_entry_with_probability_one_minus_p():
    n = 200_000
    for p in (0.1, 0.5, 0.9):
        X = np.ones(n)
        Y, mask = dropout(X, p, np.random.default_rng(0))
        kept = mask.mean()
        assert abs(kept - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
        # inverted dropout keeps the mean: E[Y] = X
        assert abs(Y.mean() - 1) < 5 * np.sqrt(p / (1 - p) / n)


def test_dropout_with_p_zero_is_the_identity(rng):
    X = rng.normal(size=(4, 3))
    Y, mask = dropout(X, 0, rng)
    np.testing.assert_array_equal(Y, X)
    np.testing.assert_array_equal(mask, np.ones_like(X))
    assert not np.shares_memory(Y, X)
    np.testing.assert_array_equal(dropout_vjp(X, mask, 0.0), X)


@given(seed=seeds, shape=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_dropout_vjp_matches_finite_differences_and_is_the_adjoint(seed, shape):
    rng = np.random.default_rng(seed)
    p = float(rng.uniform(0, 0.95))
    X, G, V = (rng.normal(size=shape) for _ in range(3))
    Y, mask = dropout(X, p, rng)
    dX = dropout_vjp(G, mask, p)

    def E(v):  # the mask fixed, as in one training step
        return np.sum(G * v * mask / (1 - p))

    assert fd_error(dX, E, X, float(np.sum(np.abs(G * Y)))) <= TOL
    gap = bp.adjoint_test(
        lambda v: v * mask / (1 - p), lambda g: dropout_vjp(g, mask, p), V, G
    )
    assert gap < ROUNDOFF


def test_forgetting_the_scale_in_the_backward_is_caught(rng):
    X, G = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    _, mask = dropout(X, 0.5, rng)
    fd = bp.numerical_gradient(lambda v: np.sum(G * v * mask / 0.5), X)
    assert bp.relative_error(dropout_vjp(G, mask, 0.5), fd) <= TOL
    assert bp.relative_error(G * mask, fd) > 0.4


def test_relu_backward_is_a_dropout_backward_with_the_mask_z_positive(rng):
    Z, g = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    Z[0, 0] = 0.0  # f'(0) = 0: the zero is dropped
    mask = (Z > 0).astype(float)
    np.testing.assert_array_equal(relu_vjp(g, Z), dropout_vjp(g, mask, 0))


@pytest.mark.parametrize(
    ("p", "message"),
    [
        (1, r"\[0, 1\) \(p = 1 drops everything and divides by 0\); got 1"),
        (1.0, r"p = 1 drops everything"),
        (-0.1, r"must be a number in \[0, 1\); got -0.1"),
        (1.5, r"got 1.5"),
        (np.nan, r"got nan"),
        (True, r"got True"),
        ("0.5", r"got '0.5'"),
        (None, r"got None"),
    ],
)
def test_bad_probabilities_are_refused(p, message):
    X = np.ones((2, 2))
    with pytest.raises(ValueError, match=message):
        dropout(X, p, np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        dropout_vjp(X, X, p)
    with pytest.raises(ValueError, match=message):
        dropout_mask(X.shape, p, np.random.default_rng(0))


@pytest.mark.parametrize("rng_", [None, 0, np.random.RandomState(0)])
def test_a_generator_is_required(rng_):
    with pytest.raises(ValueError, match=r"rng must be a np.random.Generator"):
        dropout(np.ones(3), 0.5, rng_)


def test_bad_masks_are_refused():
    with pytest.raises(ValueError, match=r"mask must have the shape of dY, \(2, 3\)"):
        dropout_vjp(np.ones((2, 3)), np.ones((3, 2)), 0.5)
    with pytest.raises(ValueError, match=r"only zeros and ones .* such as 0.5"):
        dropout_vjp(np.ones((2, 3)), np.full((2, 3), 0.5), 0.5)
    with pytest.raises(ValueError, match=r"X must have a real numeric dtype"):
        dropout(np.array(["a"]), 0.5, np.random.default_rng(0))


def test_dropout_modifies_nothing_and_keeps_float32(rng):
    X, G = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    X0, G0 = X.copy(), G.copy()
    Y, mask = dropout(X, 0.25, rng)
    mask0 = mask.copy()
    dX = dropout_vjp(G, mask, 0.25)
    for a, a0 in [(X, X0), (G, G0), (mask, mask0)]:
        np.testing.assert_array_equal(a, a0)
    assert not np.shares_memory(Y, X) and not np.shares_memory(dX, G)
    Y32, mask32 = dropout(X.astype(np.float32), 0.25, np.random.default_rng(3))
    assert Y32.dtype == mask32.dtype == np.float32
    assert dropout_vjp(G.astype(np.float32), mask32, 0.25).dtype == np.float32
    Y64, _ = dropout(X, 0.25, np.random.default_rng(3))
    assert bp.relative_error(Y32, Y64) < 1e-7


# --- the engine: the same VJPs -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_engine_uses_these_vjps(rng, dtype):
    X = separated(rng, (2, 3, 6, 5)).astype(dtype)
    for (name, (pool, pool_vjp)), args in zip(
        sorted(POOLS.items()), [((3, 2), (2, 1), (1, 1)), (3, 1, 1)]
    ):
        G = rng.normal(size=pool(X, *args).shape).astype(dtype)
        x = ad.Tensor(X)
        y = getattr(ad, name + "_pool2d")(x, *args)
        y.backward(G)
        assert y.value.dtype == x.grad.dtype == dtype
        np.testing.assert_array_equal(y.value, pool(X, *args))
        np.testing.assert_allclose(x.grad, pool_vjp(G, X, *args), rtol=1e-6, atol=0)
    mask = dropout_mask(X.shape, 0.4, rng)
    G = rng.normal(size=X.shape).astype(dtype)
    x = ad.Tensor(X)
    y = ad.dropout(x, mask, 0.4)
    y.backward(G)
    assert y.value.dtype == x.grad.dtype == dtype
    np.testing.assert_array_equal(y.value, dropout_vjp(X, mask, 0.4))
    np.testing.assert_array_equal(x.grad, dropout_vjp(G, mask, 0.4))


def test_the_engine_keeps_its_own_copy_of_the_mask(rng):
    X, G = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    mask = dropout_mask(X.shape, 0.5, rng)
    x = ad.Tensor(X)
    y = ad.dropout(x, mask, 0.5)
    expected = dropout_vjp(G, mask, 0.5)
    mask[...] = 1.0  # changed after the forward pass: backward uses the old mask
    y.backward(G)
    np.testing.assert_array_equal(x.grad, expected)
