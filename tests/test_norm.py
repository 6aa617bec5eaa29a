"""Layer norm, batch norm and residual blocks: each VJP against finite differences and
against an explicitly built Jacobian, at shapes drawn by hypothesis (batch 1 and rank 3
included); the identities the chapter states; the compact batch-norm VJP against the
composition of its elementary steps; refusals; and arguments left untouched.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st
from measures import fd_error, float32_error_ratio

import backprop as bp
from backprop.norm import (
    batch_norm,
    batch_norm_steps,
    batch_norm_vjp,
    batch_norm_vjp_steps,
    layer_norm,
    layer_norm_vjp,
)
from backprop.residual import (
    residual_block,
    residual_block_vjp,
    residual_stack_grad_norms,
)

dims = st.integers(min_value=1, max_value=4)
# Sizes of the normalised axis for the relative-error tests. Two entries standardise to
# ±√(v/(v + ε)) ≈ ±1 whatever they are, so the gradient is O(ε) and mostly cancellation;
# that case has its own test, at the scale of the gradient that flows in.
group = st.sampled_from([1, 3, 4, 5])
seeds = st.integers(min_value=0, max_value=2**32 - 1)
epss = st.sampled_from([1e-5, 1e-3, 0.5])
ROUNDOFF = 1e-12


def reference_standardize(X, axis, eps):
    """The textbook formula, written independently of the package (np.var is biased)."""
    mu = np.mean(X, axis=axis, keepdims=True)
    var = np.var(X, axis=axis, keepdims=True)
    return (X - mu) / np.sqrt(var + eps)


def fd_errors(forward, vjp_result, args, G):
    """Errors (``fd_error``) of each gradient in ``vjp_result`` against central
    differences of E = ⟨G, forward(*args)⟩, one argument at a time."""
    terms = np.sum(np.abs(G * forward(*args)))
    errors = []
    for i, (arg, grad) in enumerate(zip(args, vjp_result)):

        def E(x, i=i):
            moved = list(args)
            moved[i] = x
            return np.sum(G * forward(*moved))

        errors.append(fd_error(grad, E, arg, terms))
    return errors


def jacobian_from_vjp(vjp, out_shape, in_size):
    """Numerator-layout Jacobian (in vec order) assembled row by row from a VJP."""
    rows = []
    for k in range(int(np.prod(out_shape))):
        e = np.zeros(int(np.prod(out_shape)))
        e[k] = 1.0
        rows.append(bp.vec(vjp(bp.unvec(e, out_shape))))
    J = np.stack(rows)
    assert J.shape[1] == in_size
    return J


def layer_norm_row_jacobian(x, gamma, eps):
    """diag(γ) (1/σ) (I − 𝟏𝟏ᵀ/n − x̂x̂ᵀ/n) for one row x: the chapter's formula."""
    n = x.size
    sigma = np.sqrt(np.var(x) + eps)
    xhat = (x - x.mean()) / sigma
    M = np.eye(n) - np.ones((n, n)) / n - np.outer(xhat, xhat) / n
    return np.diag(gamma) @ M / sigma


# --- layer norm -----------------------------------------------------------------------


@st.composite
def ln_shapes(draw):
    """X of rank 1 to 3; the last axis is the normalised one."""
    return (*draw(st.lists(dims, max_size=2)), draw(group))


@given(seed=seeds, shape=ln_shapes(), eps=epss)
def test_layer_norm_forward_matches_the_formula(seed, shape, eps):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=shape)
    gamma, beta = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
    Y = layer_norm(X, gamma, beta, eps)
    assert Y.shape == X.shape
    expected = gamma * reference_standardize(X, -1, eps) + beta
    assert bp.relative_error(Y, expected) < ROUNDOFF


@given(seed=seeds, shape=ln_shapes(), eps=epss)
def test_layer_norm_vjp_matches_finite_differences(seed, shape, eps):
    rng = np.random.default_rng(seed)
    X, G = rng.normal(size=shape), rng.normal(size=shape)
    gamma, beta = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
    grads = layer_norm_vjp(G, X, gamma, eps)
    assert [g.shape for g in grads] == [X.shape, gamma.shape, beta.shape]

    def forward(X_, gamma_, beta_):
        return layer_norm(X_, gamma_, beta_, eps)

    for err in fd_errors(forward, grads, (X, gamma, beta), G):
        assert err <= TOL


@given(seed=seeds, n=group, eps=epss)
def test_layer_norm_one_row_has_the_chapter_jacobian(seed, n, eps):
    """Batch of one: the Jacobian of one row is diag(γ)(1/σ)(I − 𝟏𝟏ᵀ/n − x̂x̂ᵀ/n)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(1, n))
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    J_formula = layer_norm_row_jacobian(X[0], gamma, eps)
    # β shifts Y and not its Jacobian; without it the differences' round-off stays
    # at the scale of Y − β (γ may be small)
    J_fd = bp.numerical_jacobian(lambda X_: layer_norm(X_, gamma, 0 * beta, eps), X)
    assert bp.relative_error(J_fd, J_formula) <= TOL
    J_vjp = jacobian_from_vjp(lambda g: layer_norm_vjp(g, X, gamma, eps)[0], X.shape, n)
    assert bp.relative_error(J_vjp, J_formula) < ROUNDOFF


@pytest.mark.parametrize("shape", [(1, 5), (3, 4), (2, 3, 4), (4,)])
def test_layer_norm_jacobian_is_block_diagonal_over_rows(rng, shape):
    """Rank 1, 2 and 3: rows do not mix; within a row the block is the formula's."""
    X = rng.normal(size=shape)
    n = shape[-1]
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    rows = X.reshape(-1, n)
    # with rows flattened row-major, the Jacobian is block diagonal, one block per row
    blocks = [layer_norm_row_jacobian(x, gamma, 1e-5) for x in rows]
    expected = np.zeros((X.size, X.size))
    for r, block in enumerate(blocks):
        expected[r * n : (r + 1) * n, r * n : (r + 1) * n] = block

    def flat(X_flat):
        return layer_norm(X_flat.reshape(shape), gamma, beta).reshape(-1)

    J_fd = bp.numerical_jacobian(flat, X.reshape(-1))
    assert bp.relative_error(J_fd, expected) <= TOL

    def vjp_flat(g_flat):
        return layer_norm_vjp(g_flat.reshape(shape), X, gamma)[0].reshape(-1)

    J_vjp = jacobian_from_vjp(vjp_flat, (X.size,), X.size)
    assert bp.relative_error(J_vjp, expected) < ROUNDOFF


def test_layer_norm_jacobian_is_not_diagonal(rng):
    """Every output of a row depends on every input of that row: the map is coupled."""
    x = rng.normal(size=(1, 5))
    gamma, beta = rng.normal(size=5), rng.normal(size=5)
    J = bp.numerical_jacobian(lambda X_: layer_norm(X_, gamma, beta), x)
    off_diagonal = J - np.diag(np.diag(J))
    assert np.all(np.abs(off_diagonal[~np.eye(5, dtype=bool)]) > 1e-6)
    assert np.linalg.norm(off_diagonal) > 0.1 * np.linalg.norm(J)


def test_the_elementwise_guess_is_wrong(rng):
    """The trap: dX = dY ⊙ γ / σ treats μ and σ as constants; finite differences refuse it."""
    X, G = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    gamma, beta = rng.normal(size=6), rng.normal(size=6)
    sigma = np.sqrt(X.var(axis=-1, keepdims=True) + 1e-5)
    guess = G * gamma / sigma
    fd = bp.numerical_gradient(lambda X_: np.sum(G * layer_norm(X_, gamma, beta)), X)
    assert bp.relative_error(guess, fd) > 0.1
    assert bp.relative_error(layer_norm_vjp(G, X, gamma)[0], fd) <= TOL


@given(seed=seeds, shape=ln_shapes(), eps=epss)
def test_layer_norm_dx_sums_to_zero_and_is_almost_orthogonal_to_xhat(seed, shape, eps):
    """Each row of dX sums to 0 (shifting a row changes nothing) and
    ⟨dx, x̂⟩ = (ε/σ²) ⟨g, x̂⟩/σ, g = γ ⊙ dy: zero when ε = 0 (scaling changes nothing)."""
    rng = np.random.default_rng(seed)
    X, dY = rng.normal(size=shape), rng.normal(size=shape)
    gamma = rng.normal(size=shape[-1])
    dX = layer_norm_vjp(dY, X, gamma, eps)[0]
    scale = np.linalg.norm(dX) + 1.0
    assert np.max(np.abs(dX.sum(axis=-1))) < ROUNDOFF * scale
    sigma = np.sqrt(X.var(axis=-1) + eps)
    xhat = reference_standardize(X, -1, eps)
    along_xhat = np.sum(dX * xhat, axis=-1)
    predicted = eps / sigma**2 * np.sum(dY * gamma * xhat, axis=-1) / sigma
    assert np.allclose(along_xhat, predicted, rtol=1e-9, atol=1e-12 * scale)


def test_layer_norm_dx_is_orthogonal_to_xhat_for_tiny_eps(rng):
    X, dY = rng.normal(size=(4, 7)), rng.normal(size=(4, 7))
    gamma = rng.normal(size=7)
    dX = layer_norm_vjp(dY, X, gamma, eps=1e-14)[0]
    xhat = reference_standardize(X, -1, 1e-14)
    cosines = np.sum(dX * xhat, axis=-1) / (
        np.linalg.norm(dX, axis=-1) * np.linalg.norm(xhat, axis=-1)
    )
    assert np.max(np.abs(cosines)) < 1e-10


def test_layer_norm_is_batch_norm_of_the_transpose(rng):
    """With γ = 1 and β = 0 the two standardise the same numbers along different axes."""
    X = rng.normal(size=(5, 3))
    ln = layer_norm(X, np.ones(3), np.zeros(3))
    bn = batch_norm(X.T, np.ones(5), np.zeros(5))
    assert bp.relative_error(ln, bn.T) < ROUNDOFF


# --- batch norm -----------------------------------------------------------------------

batches = st.sampled_from([3, 4, 5])


@given(seed=seeds, B=batches, n=dims, eps=epss)
def test_batch_norm_forward_matches_the_formula(seed, B, n, eps):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, n))
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    Y = batch_norm(X, gamma, beta, eps)
    expected = gamma * reference_standardize(X, 0, eps) + beta
    assert bp.relative_error(Y, expected) < ROUNDOFF
    Y_steps, _ = batch_norm_steps(X, gamma, beta, eps)
    assert bp.relative_error(Y_steps, Y) < ROUNDOFF


@given(seed=seeds, B=batches, n=dims, eps=epss)
def test_batch_norm_vjp_matches_finite_differences(seed, B, n, eps):
    rng = np.random.default_rng(seed)
    X, G = rng.normal(size=(B, n)), rng.normal(size=(B, n))
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    grads = batch_norm_vjp(G, X, gamma, eps)
    assert [g.shape for g in grads] == [X.shape, gamma.shape, beta.shape]

    def forward(X_, gamma_, beta_):
        return batch_norm(X_, gamma_, beta_, eps)

    for err in fd_errors(forward, grads, (X, gamma, beta), G):
        assert err <= TOL


@given(seed=seeds, B=batches, n=st.integers(min_value=1, max_value=3))
def test_batch_norm_jacobian_couples_the_examples(seed, B, n):
    """In vec order (columns stacked) the Jacobian is block diagonal, one dense B × B
    block per feature: diag(γ_j)(1/σ_j)(I − 𝟏𝟏ᵀ/B − x̂x̂ᵀ/B)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, n))
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    expected = np.zeros((B * n, B * n))
    for j in range(n):
        block = layer_norm_row_jacobian(X[:, j], np.full(B, gamma[j]), 1e-5)
        expected[j * B : (j + 1) * B, j * B : (j + 1) * B] = block
    J_fd = bp.numerical_jacobian(
        lambda X_: batch_norm(X_, gamma, 0 * beta), X
    )  # β: above
    assert bp.relative_error(J_fd, expected) <= TOL
    J_vjp = jacobian_from_vjp(lambda g: batch_norm_vjp(g, X, gamma)[0], X.shape, X.size)
    assert bp.relative_error(J_vjp, expected) < ROUNDOFF
    # example 0's output depends on example 1's input
    assert np.abs(J_fd[0, 1]) > 1e-6


@given(seed=seeds, B=batches, n=dims, eps=epss)
def test_batch_norm_compact_vjp_equals_its_elementary_steps(seed, B, n, eps):
    rng = np.random.default_rng(seed)
    X, dY = rng.normal(size=(B, n)), rng.normal(size=(B, n))
    gamma = rng.normal(size=n)
    compact = batch_norm_vjp(dY, X, gamma, eps)
    steps = batch_norm_vjp_steps(dY, X, gamma, eps)
    for c, s in zip(compact, steps):
        assert c.shape == s.shape
        assert bp.relative_error(c, s) < ROUNDOFF
    assert np.max(np.abs(compact[0].sum(axis=0))) < ROUNDOFF * (
        1 + np.linalg.norm(compact[0])
    )


@given(seed=seeds, n=dims)
def test_groups_of_two_have_a_gradient_of_order_eps(seed, n):
    """Two entries standardise to ±√(v/(v + ε)): almost constant, so dX = O(ε) and
    a relative error means little. Measured at the scale ‖γ ⊙ G‖/σ of what flows in,
    the VJPs still agree with finite differences and with the elementary steps."""
    rng = np.random.default_rng(seed)
    X, G = rng.normal(size=(2, n)), rng.normal(size=(2, n))
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    sigma = np.sqrt(X.var(axis=0) + 1e-5)
    scale = np.linalg.norm(G * gamma / sigma)
    dX = batch_norm_vjp(G, X, gamma)[0]
    fd = bp.numerical_gradient(lambda X_: np.sum(G * batch_norm(X_, gamma, beta)), X)
    assert np.linalg.norm(dX) < 1e-4 * scale / np.min(sigma) ** 2
    assert np.linalg.norm(dX - fd) <= TOL * scale
    steps = batch_norm_vjp_steps(G, X, gamma)[0]
    assert np.linalg.norm(dX - steps) < ROUNDOFF * scale
    # layer norm of the transposed problem: rows of two. (A C-ordered copy: the
    # numerical_gradient of this version returns zeros for a transposed view.)
    Xt, Gt = np.ascontiguousarray(X.T), np.ascontiguousarray(G.T)
    dXt = layer_norm_vjp(Gt, Xt, np.ones(2))[0]
    fdt = bp.numerical_gradient(
        lambda X_: np.sum(Gt * layer_norm(X_, np.ones(2), np.zeros(2))), Xt
    )
    assert np.linalg.norm(dXt - fdt) <= TOL * np.linalg.norm(G / sigma)


def test_batch_norm_steps_backward_can_be_called_twice(rng):
    X, gamma, beta = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=3)
    _, backward = batch_norm_steps(X, gamma, beta)
    G1, G2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    first = backward(G1)
    backward(G2)
    assert bp.relative_error(backward(G1)[0], first[0]) == 0.0


# --- residual blocks ------------------------------------------------------------------


@given(
    seed=seeds,
    B=dims,
    n=dims,
    activation=st.sampled_from(["tanh", "sigmoid", "relu"]),
)
def test_residual_block_vjp_matches_finite_differences(seed, B, n, activation):
    rng = np.random.default_rng(seed)
    A, G = rng.normal(size=(B, n)), rng.normal(size=(B, n))
    W, b = rng.normal(size=(n, n)), rng.normal(size=n)
    grads = residual_block_vjp(G, A, W, b, activation)
    assert [g.shape for g in grads] == [A.shape, W.shape, b.shape]

    def forward(A_, W_, b_):
        return residual_block(A_, W_, b_, activation)

    for err in fd_errors(forward, grads, (A, W, b), G):
        assert err <= TOL


def test_residual_jacobian_is_identity_plus_branch(rng):
    A = rng.normal(size=(2, 3))
    W, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    J = bp.numerical_jacobian(lambda A_: residual_block(A_, W, b), A)
    J_branch = bp.numerical_jacobian(lambda A_: np.tanh(bp.linear(A_, W, b)), A)
    assert bp.relative_error(J, np.eye(6) + J_branch) <= TOL


def test_residual_stack_grad_norms_matches_finite_differences():
    """Rebuild the helper's stack (same draws, same order) and differentiate E = ⟨G, A⁽ᴸ⁾⟩."""
    depth, width, batch, seed = 3, 4, 2, 7
    for residual in (True, False):
        norms = residual_stack_grad_norms(
            depth, width, "tanh", residual, seed, batch=batch
        )
        assert norms.shape == (depth + 1,)
        assert np.isclose(norms[-1], 1.0)
        rng = np.random.default_rng(seed)
        Ws = [
            rng.normal(scale=1 / np.sqrt(width), size=(width, width))
            for _ in range(depth)
        ]
        G = rng.normal(size=(batch, width))
        G /= np.linalg.norm(G)
        A0 = rng.normal(size=(batch, width))

        def E(A, Ws=Ws, G=G, residual=residual):
            for W in Ws:
                A = A + np.tanh(A @ W.T) if residual else np.tanh(A @ W.T)
            return np.sum(G * A)

        fd = np.linalg.norm(bp.numerical_gradient(E, A0))
        assert abs(norms[0] - fd) / fd <= TOL


def test_the_identity_path_keeps_a_deep_gradient_alive():
    plain = residual_stack_grad_norms(50, 32, "relu", residual=False, seed=0)
    res = residual_stack_grad_norms(50, 32, "relu", residual=True, seed=0)
    assert plain[0] < 1e-6 < 1.0 < res[0]


# --- refusals and purity --------------------------------------------------------------

X34 = np.arange(12.0).reshape(3, 4) ** 1.5
g4 = np.linspace(0.5, 2.0, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: layer_norm(X34, np.ones(3), np.zeros(4)),
            r"gamma must have shape \(4,\)",
        ),
        (
            lambda: layer_norm(X34, np.ones(4), np.zeros(5)),
            r"beta must have shape \(4,\)",
        ),
        (lambda: layer_norm(X34, np.ones(4), np.zeros(4), eps=-1e-5), r"eps must be"),
        (lambda: layer_norm(X34, np.ones(4), np.zeros(4), eps=np.nan), r"eps must be"),
        (lambda: batch_norm(X34, g4, g4, eps=np.inf), r"eps must be"),
        (lambda: batch_norm_vjp(X34, X34, g4, eps=-1.0), r"eps must be"),
        (lambda: layer_norm(X34, np.ones(4), np.zeros(4), eps=True), r"eps must be"),
        (lambda: layer_norm(3.0, np.ones(1), np.zeros(1)), r"at least one axis"),
        (
            lambda: layer_norm_vjp(np.ones((3, 5)), X34, g4),
            r"dY must have the shape of X, \(3, 4\); got \(3, 5\)",
        ),
        (lambda: layer_norm_vjp(np.ones((3, 4)), X34, np.ones(2)), r"gamma"),
        (
            lambda: batch_norm(X34[:1], g4, g4),
            r"more than 1 example per feature.*\(1, 4\)",
        ),
        (lambda: batch_norm_vjp(X34[:1], X34[:1], g4), r"more than 1 example"),
        (lambda: batch_norm(X34, np.ones(3), g4), r"gamma must have shape \(4,\)"),
        (lambda: batch_norm(X34, g4, np.ones(3)), r"beta must have shape \(4,\)"),
        (lambda: batch_norm(X34[0], g4, g4), r"X must be 2-D"),
        (
            lambda: batch_norm_vjp(np.ones((2, 4)), X34, g4),
            r"dY must have the shape of X, \(3, 4\); got \(2, 4\)",
        ),
        (lambda: batch_norm_steps(X34[:1], g4, g4), r"more than 1 example"),
        (
            lambda: batch_norm_steps(X34, g4, g4)[1](np.ones((4, 3))),
            r"dY must have the shape of X",
        ),
        (
            lambda: residual_block(X34, np.ones((3, 4)), np.zeros(3)),
            r"W must be square; got W of shape \(3, 4\)",
        ),
        (
            lambda: residual_block(X34, np.eye(4), np.zeros(4), "swish"),
            r"activation must be one of",
        ),
        (
            lambda: residual_block_vjp(np.ones((2, 4)), X34, np.eye(4), np.zeros(4)),
            r"dY must have the shape of A",
        ),
        (lambda: residual_stack_grad_norms(0, 4), r"depth must be a positive integer"),
        (lambda: residual_stack_grad_norms(3, 4, gain=0.0), r"gain must be positive"),
    ],
)
def test_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_inputs_are_not_modified(rng):
    X, dY = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    W, b = rng.normal(size=(4, 4)), rng.normal(size=4)
    args = (X, dY, gamma, beta, W, b)
    saved = [a.copy() for a in args]
    layer_norm(X, gamma, beta)
    layer_norm_vjp(dY, X, gamma)
    batch_norm(X, gamma, beta)
    batch_norm_vjp(dY, X, gamma)
    _, backward = batch_norm_steps(X, gamma, beta)
    backward(dY)
    batch_norm_vjp_steps(dY, X, gamma)
    residual_block(X, W, b)
    residual_block_vjp(dY, X, W, b)
    for a, s in zip(args, saved):
        np.testing.assert_array_equal(a, s)


def test_integer_inputs_are_promoted_to_float64():
    X = np.array([[1, 2, 4], [0, 3, 9]])
    Y = layer_norm(X, [1, 1, 1], [0, 0, 0])
    assert Y.dtype == np.float64
    assert np.allclose(Y.sum(axis=-1), 0.0)


def test_eps_zero_is_accepted_as_in_pytorch(rng):
    """ε = 0 standardises exactly: unit variance, and dX orthogonal to x̂ (eq. ``rn-ln-identities``)."""
    X, dY, gamma = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), np.ones(4)
    assert np.allclose(layer_norm(X, gamma, 0 * gamma, eps=0).var(axis=-1), 1.0)
    assert np.allclose(batch_norm(X, gamma, 0 * gamma, eps=0.0).var(axis=0), 1.0)
    dX = layer_norm_vjp(dY, X, gamma, eps=0)[0]
    assert np.allclose(np.sum(dX * layer_norm(X, gamma, 0 * gamma, eps=0), axis=-1), 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_float_dtype_is_kept_end_to_end(rng, dtype):
    X, dY = rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=(4, 3)).astype(dtype)
    gamma, beta = rng.normal(size=3).astype(dtype), rng.normal(size=3).astype(dtype)
    forwards = [layer_norm(X, gamma, beta), batch_norm(X, gamma, beta)]
    vjps = [*layer_norm_vjp(dY, X, gamma), *batch_norm_vjp(dY, X, gamma)]
    steps = batch_norm_vjp_steps(dY, X, gamma)
    assert [a.dtype for a in (*forwards, *vjps, *steps)] == [np.dtype(dtype)] * 11


# --- float32 in value ------------------------------------------------------------------


@given(seed=seeds, shape=ln_shapes(), shift=st.sampled_from([0.0, 3.0]))
def test_layer_norm_float32_agrees_with_float64(seed, shape, shift):
    """Longest sums: a row (n) in the forward; a row, or the rows, for the VJP."""
    rng = np.random.default_rng(seed)
    X, dY = shift + rng.normal(size=shape), rng.normal(size=shape)
    gamma, beta = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
    rows = X.size // shape[-1]
    assert float32_error_ratio(layer_norm, (X, gamma, beta), shape[-1]) <= 2.0
    m = max(shape[-1], rows)
    assert float32_error_ratio(layer_norm_vjp, (dY, X, gamma), m) <= 2.0


@given(seed=seeds, B=batches, n=dims, shift=st.sampled_from([0.0, 3.0]))
def test_batch_norm_float32_agrees_with_float64(seed, B, n, shift):
    """Longest sums: a column, B entries, forward and backward."""
    rng = np.random.default_rng(seed)
    X, dY = shift + rng.normal(size=(B, n)), rng.normal(size=(B, n))
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    assert float32_error_ratio(batch_norm, (X, gamma, beta), B) <= 2.0
    assert float32_error_ratio(batch_norm_vjp, (dY, X, gamma), B) <= 2.0
