"""2-D convolution: the forward against nested loops, the VJP against finite differences.

The forward is checked against a direct loop over output pixels (the definition, with
no patches and no einsum). The VJP is checked against central differences of
``E = ⟨G, conv2d(X, W, b)⟩``, and, since the convolution is linear in ``X`` for fixed
``W`` and linear in ``W`` for fixed ``X``, by the adjoint test in each argument. The
transposed-convolution form of ``dX`` must equal the im2col/col2im one. Shapes are
drawn by hypothesis: stride 2 with padding, strides that leave rows unused, batch 1,
one channel, non-square kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st
from measures import float32_error_ratio

import backprop as bp
from backprop.conv import (
    col2im,
    conv2d,
    conv2d_matrix,
    conv2d_transpose,
    conv2d_vjp,
    dilate,
    im2col,
)

ROUNDOFF = 1e-12
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def conv2d_loops(X, W, b, stride, padding):
    """The definition, one output pixel at a time: window of Xp times kernel, summed."""
    (sh, sw), (ph, pw) = stride, padding
    B, C, H, W_in = X.shape
    O, _, kh, kw = W.shape
    Xp = np.zeros((B, C, H + 2 * ph, W_in + 2 * pw))
    Xp[:, :, ph : ph + H, pw : pw + W_in] = X
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W_in + 2 * pw - kw) // sw + 1
    Y = np.zeros((B, O, Ho, Wo))
    for n in range(B):
        for o in range(O):
            for i in range(Ho):
                for j in range(Wo):
                    window = Xp[n, :, sh * i : sh * i + kh, sw * j : sw * j + kw]
                    Y[n, o, i, j] = np.sum(window * W[o]) + (0.0 if b is None else b[o])
    return Y


@st.composite
def conv_cases(draw):
    """(X, W, b, stride, padding, G) with small random shapes, every case valid."""
    rng = np.random.default_rng(draw(seeds))
    B, C, O = (draw(st.integers(1, n)) for n in (2, 3, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    H = max(draw(st.integers(1, 6)), kh - 2 * padding[0])
    W_in = max(draw(st.integers(1, 6)), kw - 2 * padding[1])
    X = rng.normal(size=(B, C, H, W_in))
    W = rng.normal(size=(O, C, kh, kw))
    b = rng.normal(size=O)
    Ho = (H + 2 * padding[0] - kh) // stride[0] + 1
    Wo = (W_in + 2 * padding[1] - kw) // stride[1] + 1
    G = rng.normal(size=(B, O, Ho, Wo))
    return X, W, b, stride, padding, G


# hand-picked cases: stride 2 + padding, rows left unused, batch 1, C = O = 1, 1 × k
CASES = [
    ((2, 3, 5, 5), (4, 3, 3, 3), (1, 1), (0, 0)),
    ((2, 2, 6, 6), (3, 2, 3, 3), (2, 2), (1, 1)),
    ((1, 2, 6, 7), (2, 2, 2, 3), (2, 2), (0, 0)),  # (6 − 2) % 2 = 0, (7 − 3) % 2 = 0
    ((1, 2, 7, 6), (2, 2, 2, 3), (2, 3), (0, 1)),  # last rows/columns unused
    ((1, 1, 5, 4), (1, 1, 3, 2), (1, 2), (2, 0)),  # C = O = 1, non-square kernel
    ((3, 1, 4, 4), (2, 1, 1, 4), (1, 1), (0, 0)),  # a 1 × 4 kernel
    ((1, 1, 2, 2), (1, 1, 4, 4), (1, 1), (1, 1)),  # kernel as large as padded input
]


def make(rng, x_shape, w_shape, stride, padding):
    X, W, b = (
        rng.normal(size=x_shape),
        rng.normal(size=w_shape),
        rng.normal(size=w_shape[0]),
    )
    Y = conv2d(X, W, b, stride, padding)
    return X, W, b, rng.normal(size=Y.shape)


# --- forward --------------------------------------------------------------------------


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding"), CASES)
def test_forward_matches_loops(rng, x_shape, w_shape, stride, padding):
    X, W, b, G = make(rng, x_shape, w_shape, stride, padding)
    Y = conv2d(X, W, b, stride, padding)
    assert Y.shape == G.shape
    np.testing.assert_allclose(Y, conv2d_loops(X, W, b, stride, padding), atol=1e-12)


@given(case=conv_cases())
def test_forward_matches_loops_random_shapes(case):
    X, W, b, stride, padding, G = case
    np.testing.assert_allclose(
        conv2d(X, W, b, stride, padding),
        conv2d_loops(X, W, b, stride, padding),
        atol=1e-12,
    )


def test_int_and_pair_arguments_agree_and_no_bias_is_zero_bias(rng):
    X, W = rng.normal(size=(2, 2, 6, 6)), rng.normal(size=(3, 2, 3, 3))
    np.testing.assert_array_equal(
        conv2d(X, W, None, 2, 1), conv2d(X, W, None, (2, 2), (1, 1))
    )
    np.testing.assert_array_equal(
        conv2d(X, W, None, 2, 1), conv2d(X, W, np.zeros(3), 2, 1)
    )


def test_it_is_a_correlation_not_a_flipped_convolution(rng):
    # a one-hot input reproduces the kernel unflipped, as torch's conv2d does
    X = np.zeros((1, 1, 5, 5))
    X[0, 0, 2, 2] = 1.0
    W = rng.normal(size=(1, 1, 3, 3))
    Y = conv2d(X, W, padding=1)
    np.testing.assert_allclose(Y[0, 0, 1:4, 1:4], W[0, 0, ::-1, ::-1])
    np.testing.assert_allclose(conv2d(X[:, :, 1:4, 1:4], W)[0, 0, 0, 0], W[0, 0, 1, 1])


# --- VJP: finite differences and adjoint tests ----------------------------------------


def fd_errors(X, W, b, stride, padding, G):
    """Relative errors of (dX, dW, db) against central differences of ⟨G, conv2d⟩.

    E is linear in each argument: a central difference has no truncation error at
    any step, so the step is 1, and E's round-off is not divided by a small h (with
    h = 1e-6, a db = Σ G that cancels to 1e-4 of E's terms fails the 1e-7 test)."""
    dX, dW, db = conv2d_vjp(G, X, W, stride, padding)
    E = lambda X_, W_, b_: np.sum(G * conv2d(X_, W_, b_, stride, padding))  # noqa: E731
    return (
        bp.relative_error(dX, bp.numerical_gradient(lambda X_: E(X_, W, b), X, h=1.0)),
        bp.relative_error(dW, bp.numerical_gradient(lambda W_: E(X, W_, b), W, h=1.0)),
        bp.relative_error(db, bp.numerical_gradient(lambda b_: E(X, W, b_), b, h=1.0)),
    )


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding"), CASES)
def test_vjp_matches_finite_differences(rng, x_shape, w_shape, stride, padding):
    X, W, b, G = make(rng, x_shape, w_shape, stride, padding)
    assert max(fd_errors(X, W, b, stride, padding, G)) <= TOL


@given(case=conv_cases())
def test_vjp_random_shapes(case):
    X, W, b, stride, padding, G = case
    dX, dW, db = conv2d_vjp(G, X, W, stride, padding)
    assert (dX.shape, dW.shape, db.shape) == (X.shape, W.shape, b.shape)
    assert max(fd_errors(X, W, b, stride, padding, G)) <= TOL
    in_X = bp.adjoint_test(
        lambda X_: conv2d(X_, W, None, stride, padding),
        lambda G_: conv2d_vjp(G_, X, W, stride, padding)[0],
        X,
        G,
    )
    in_W = bp.adjoint_test(
        lambda W_: conv2d(X, W_, None, stride, padding),
        lambda G_: conv2d_vjp(G_, X, W, stride, padding)[1],
        W,
        G,
    )
    assert in_X < ROUNDOFF and in_W < ROUNDOFF


@given(case=conv_cases())
def test_transposed_convolution_is_the_vjp(case):
    X, W, b, stride, padding, G = case
    dX = conv2d_vjp(G, X, W, stride, padding)[0]
    dX_t = conv2d_transpose(G, W, stride, padding, input_size=X.shape[2:])
    assert dX_t.shape == X.shape
    assert bp.relative_error(dX_t, dX) < ROUNDOFF


@given(case=conv_cases())
def test_the_explicit_matrix(case):
    X, W, b, stride, padding, G = case
    K = conv2d_matrix(W, X.shape[2:], stride, padding)
    Y = conv2d(X[:1], W, None, stride, padding)
    assert K.shape == (Y.size, X[0].size)
    np.testing.assert_allclose(K @ X[0].ravel(), Y.ravel(), atol=1e-12)
    dX = conv2d_vjp(G[:1], X[:1], W, stride, padding)[0]
    np.testing.assert_allclose(K.T @ G[0].ravel(), dX.ravel(), atol=1e-12)


def test_matrix_is_doubly_block_toeplitz(rng):
    W = rng.normal(size=(1, 1, 2, 3))
    H, W_in, Ho, Wo = 4, 5, 3, 3
    K = conv2d_matrix(W, (H, W_in)).reshape(Ho, Wo, H, W_in)
    for i in range(Ho):  # block (i, y) depends on y − i only ...
        for y in range(H):
            block = K[i, :, y, :]
            expected = K[0, :, y - i, :] if 0 <= y - i < H else np.zeros((Wo, W_in))
            np.testing.assert_array_equal(block, expected)
            for j in range(Wo):  # ... and each block on x − j only
                np.testing.assert_array_equal(
                    block[j], np.roll(block[0], j) * (np.arange(W_in) >= j)
                )


def test_unused_input_rows_get_zero_gradient(rng):
    # H + 2p − k = 7 − 2 = 5 is odd: with stride 2 the last row is in no window
    X, W, b, G = make(rng, (1, 2, 7, 7), (3, 2, 2, 2), (2, 2), (0, 0))
    dX = conv2d_vjp(G, X, W, 2, 0)[0]
    assert np.all(dX[:, :, -1, :] == 0.0) and np.all(dX[:, :, :, -1] == 0.0)
    assert np.all(dX[:, :, :-1, :-1] != 0.0)
    assert max(fd_errors(X, W, b, (2, 2), (0, 0), G)) <= TOL


def test_db_is_returned_without_a_bias(rng):
    X, W = rng.normal(size=(2, 1, 4, 4)), rng.normal(size=(1, 1, 3, 3))
    G = rng.normal(size=conv2d(X, W).shape)
    db = conv2d_vjp(G, X, W)[2]
    assert db.shape == (1,) and np.isclose(db[0], G.sum())


def test_the_unflipped_kernel_fails_the_adjoint_test(rng):
    # the trap: "the gradient of a convolution is a convolution with the same kernel"
    X, W = rng.normal(size=(1, 1, 6, 6)), rng.normal(size=(1, 1, 3, 3))
    G = rng.normal(size=conv2d(X, W, padding=1).shape)
    forward = lambda X_: conv2d(X_, W, padding=1)  # noqa: E731
    same_kernel = lambda G_: conv2d(G_, W, padding=1)  # noqa: E731
    flipped = lambda G_: conv2d(G_, W[:, :, ::-1, ::-1], padding=1)  # noqa: E731
    assert bp.adjoint_test(forward, same_kernel, X, G) > 1e-2
    assert bp.adjoint_test(forward, flipped, X, G) < ROUNDOFF


# --- the pieces: im2col ↔ col2im, dilate ↔ subsample ----------------------------------


@given(case=conv_cases())
def test_im2col_col2im_are_adjoint(case):
    X, W, b, stride, (ph, pw), G = case
    kh, kw = W.shape[2:]
    Xp = np.pad(X, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    P = im2col(Xp, kh, kw, stride)
    assert P.shape == (X.shape[0], *G.shape[2:], X.shape[1], kh, kw)
    dP = np.random.default_rng(0).normal(size=P.shape)
    gap = bp.adjoint_test(
        lambda X_: im2col(X_, kh, kw, stride),
        lambda dP_: col2im(dP_, Xp.shape, stride),
        Xp,
        dP,
    )
    assert gap < ROUNDOFF


def test_im2col_is_a_read_only_view(rng):
    X = rng.normal(size=(1, 2, 4, 4))
    P = im2col(X, 2, 2, 2)
    assert np.shares_memory(P, X) and not P.flags.writeable
    np.testing.assert_array_equal(P[0, 1, 0, 1], X[0, 1, 2:4, 0:2])


def test_dilate_and_subsample_are_adjoint(rng):
    Y, D = rng.normal(size=(2, 3, 3, 4)), rng.normal(size=(2, 3, 5, 10))
    assert dilate(Y, (2, 3)).shape == D.shape
    gap = bp.adjoint_test(
        lambda Y_: dilate(Y_, (2, 3)), lambda D_: D_[:, :, ::2, ::3], Y, D
    )
    assert gap < ROUNDOFF


# --- refusals and purity --------------------------------------------------------------

X0, W0 = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: conv2d(np.zeros((1, 3, 5, 5)), W0),
            r"expects 2 input channels.*with 3",
        ),
        (lambda: conv2d(np.zeros((2, 5, 5)), W0), r"X must be 4-D"),
        (lambda: conv2d(X0, np.zeros((3, 2, 3))), r"W must be 4-D"),
        (lambda: conv2d(X0, np.zeros((1, 2, 6, 3))), r"kernel height 6 exceeds .* 5"),
        (
            lambda: conv2d(X0, np.zeros((1, 2, 3, 8)), padding=1),
            r"width 8 exceeds .* 7",
        ),
        (lambda: conv2d(X0, W0, stride=0), r"stride must be a positive integer"),
        (lambda: conv2d(X0, W0, stride=(1, -1)), r"stride must be a positive"),
        (lambda: conv2d(X0, W0, stride=1.5), r"stride must be a positive"),
        (lambda: conv2d(X0, W0, stride=(1, 2, 3)), r"stride must be a positive"),
        (lambda: conv2d(X0, W0, padding=-1), r"padding must be a non-negative"),
        (lambda: conv2d(X0, W0, padding=True), r"padding must be a non-negative"),
        (lambda: conv2d(X0, W0, np.zeros(2)), r"b must have shape \(3,\).*got \(2,\)"),
        (lambda: conv2d(X0, W0, np.zeros((3, 1))), r"b must be 1-D"),
        (
            lambda: conv2d_vjp(np.zeros((1, 3, 4, 4)), X0, W0),
            r"dY must have the shape of Y.*\(1, 3, 3, 3\); got \(1, 3, 4, 4\)",
        ),
        (lambda: conv2d_transpose(np.zeros((1, 2, 3, 3)), W0), r"dY has 2 channels"),
        (
            lambda: conv2d_transpose(np.zeros((1, 3, 3, 3)), W0, input_size=(8, 5)),
            r"cannot be the output of a convolution of an input of size \(8, 5\)",
        ),
        (lambda: im2col(X0, 6, 2), r"does not fit"),
        (lambda: col2im(np.zeros((1, 3, 3, 2, 3, 3)), (1, 2, 6, 6)), r"cannot come"),
        (lambda: conv2d(np.array([[[["a"]]]]), W0), r"real numeric dtype"),
    ],
)
def test_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_no_function_modifies_its_input(rng):
    X, W, b, G = make(rng, (2, 2, 6, 6), (3, 2, 3, 3), (2, 2), (1, 1))
    saved = [a.copy() for a in (X, W, b, G)]
    conv2d(X, W, b, 2, 1)
    conv2d_vjp(G, X, W, 2, 1)
    conv2d_transpose(G, W, 2, 1, X.shape[2:])
    conv2d_matrix(W, X.shape[2:], 2, 1)
    col2im(np.ascontiguousarray(im2col(X, 3, 3, 2)), X.shape, 2)
    dilate(G, 2)
    for before, after in zip(saved, (X, W, b, G)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_float_dtype_is_kept_end_to_end(rng, dtype):
    X, W, b, G = (
        a.astype(dtype) for a in make(rng, (2, 2, 6, 6), (3, 2, 3, 3), (2, 2), (1, 1))
    )
    outputs = [conv2d(X, W, b, 2, 1), *conv2d_vjp(G, X, W, 2, 1)]
    outputs += [conv2d_transpose(G, W, 2, 1, X.shape[2:]), dilate(G, 2)]
    outputs += [col2im(im2col(X, 3, 3, 2), X.shape, 2), conv2d_matrix(W, (6, 6))]
    assert [a.dtype for a in outputs] == [np.dtype(dtype)] * 8


@given(case=conv_cases())
def test_float32_agrees_with_float64(case):
    """Longest sums: C·kh·kw products and the bias (forward); O·kh·kw products into
    a pixel of dX, B·Ho·Wo into an entry of dW and db (backward)."""
    X, W, b, stride, padding, G = case
    O, C, kh, kw = W.shape
    m = C * kh * kw + 1
    forward = lambda X_, W_, b_: conv2d(X_, W_, b_, stride, padding)  # noqa: E731
    assert float32_error_ratio(forward, (X, W, b), m) <= 2.0
    m = max(O * kh * kw, G[:, 0].size)
    backward = lambda G_, X_, W_: conv2d_vjp(G_, X_, W_, stride, padding)  # noqa: E731
    assert float32_error_ratio(backward, (G, X, W), m) <= 2.0


# --- which input rows get no gradient -------------------------------------------------
# Row y of the padded input gets no gradient iff no window covers it: there is no output
# row i with s·i ≤ y ≤ s·i + k − 1. Windows start every s rows and are k rows tall, so
# such rows lie in the gaps between windows (y mod s ≥ k, only when s > k) or below the
# last window (y ≥ s·(H_out − 1) + k). The same holds for columns.


def rows_in_no_window(size: int, k: int, s: int, p: int) -> set[int]:
    """Rows of the unpadded input that no window covers, from the definition."""
    n_out = (size + 2 * p - k) // s + 1
    covered = {s * i + r for i in range(n_out) for r in range(k)}
    return {y for y in range(size) if y + p not in covered}


def rows_in_no_window_closed_form(size: int, k: int, s: int, p: int) -> set[int]:
    """The same set as the chapter states it: in a gap, or below the last window."""
    last = s * ((size + 2 * p - k) // s) + k  # one past the last window's bottom row
    return {y for y in range(size) if (y + p) % s >= k or y + p >= last}


def zero_rows_and_columns(dX: np.ndarray) -> tuple[set[int], set[int]]:
    """Rows and columns of dX that are zero for every example and channel."""
    rows = {y for y in range(dX.shape[2]) if np.all(dX[:, :, y, :] == 0.0)}
    cols = {x for x in range(dX.shape[3]) if np.all(dX[:, :, :, x] == 0.0)}
    return rows, cols


AXIS_CASES = [  # (size, k, s, p): every size 1–9, kernel 1–4, stride 1–4, padding 0–2
    (size, k, s, p)
    for size in range(1, 10)
    for k in range(1, 5)
    for s in range(1, 5)
    for p in range(3)
    if k <= size + 2 * p
]


def test_zero_gradient_rows_are_the_rows_no_window_covers(rng):
    # rows follow each case of AXIS_CASES, columns the case seven places after it
    n_gaps = n_below = 0
    for (H, kh, sh, ph), (W_in, kw, sw, pw) in zip(AXIS_CASES, AXIS_CASES[7:]):
        X, W, b, G = make(rng, (2, 2, H, W_in), (3, 2, kh, kw), (sh, sw), (ph, pw))
        dX = conv2d_vjp(G, X, W, (sh, sw), (ph, pw))[0]
        rows, cols = (
            rows_in_no_window(H, kh, sh, ph),
            rows_in_no_window(W_in, kw, sw, pw),
        )
        assert rows == rows_in_no_window_closed_form(H, kh, sh, ph)
        if len(rows) == H or len(cols) == W_in:  # no pixel is in any window: all zero
            rows, cols = set(range(H)), set(range(W_in))
        assert zero_rows_and_columns(dX) == (rows, cols)
        n_gaps += any((y + ph) % sh >= kh for y in rows)
        n_below += any((y + ph) % sh < kh for y in rows)
    assert n_gaps > 20 and n_below > 20  # both kinds of uncovered row were exercised


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding", "rows", "cols"),
    [  # uncovered rows and columns of X, worked out by hand
        # the ResNet shortcut: 1 × 1, stride 2; every other row, nothing left over
        ((1, 4, 7, 7), (8, 4, 1, 1), 2, 0, {1, 3, 5}, {1, 3, 5}),
        ((2, 3, 8, 8), (4, 3, 1, 1), 2, 0, {1, 3, 5, 7}, {1, 3, 5, 7}),
        # 2 rows tall, stride 3: gaps at 2 and 5, and row 8 below the last window
        ((1, 2, 9, 8), (2, 2, 2, 2), 3, 0, {2, 5, 8}, {2, 5}),
        # 3 × 3, stride 2 overlaps: only the leftover row below the last window
        ((1, 2, 8, 8), (2, 2, 3, 3), 2, 0, {7}, {7}),
        # the same with padding 1: the leftover row is padding, no input row is lost
        ((1, 2, 8, 8), (2, 2, 3, 3), 2, 1, set(), set()),
        # 1 × 1, stride 3, padding 1: the windows sit on padded rows 0, 3 and 6
        ((1, 1, 6, 5), (1, 1, 1, 1), 3, 1, {0, 1, 3, 4}, {0, 1, 3, 4}),
    ],
)
def test_rows_in_no_window_by_hand(rng, x_shape, w_shape, stride, padding, rows, cols):
    X, W, b, G = make(rng, x_shape, w_shape, (stride,) * 2, (padding,) * 2)
    dX = conv2d_vjp(G, X, W, stride, padding)[0]
    assert zero_rows_and_columns(dX) == (rows, cols)
    assert rows == rows_in_no_window(x_shape[2], w_shape[2], stride, padding)
    assert max(fd_errors(X, W, b, (stride,) * 2, (padding,) * 2, G)) <= TOL
    dX_t = conv2d_transpose(G, W, stride, padding, input_size=x_shape[2:])
    assert bp.relative_error(dX_t, dX) < ROUNDOFF
