"""The recurrent layer of ``backprop.recurrent`` and its backpropagation through time.

``rnn`` is checked against a loop over time in the column form of the book;
``rnn_vjp`` against central differences of ``E = ⟨G, rnn(…)⟩`` for every input,
against an explicit Jacobian at small sizes, and with the adjoint test against an
exact forward-mode tangent (the JVP), of which the VJP must be the transpose.
Shapes are drawn by hypothesis, batch 1, ``T = 1`` and square weights included.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st
from measures import fd_error, float32_error_ratio

import backprop as bp
from backprop.layers import linear, linear_vjp, tanh, tanh_vjp
from backprop.recurrent import (
    gradient_norms_by_radius,
    rnn,
    rnn_vjp,
    scale_to_spectral_radius,
    state_jacobians,
)

dims = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
ROUNDOFF = 1e-12
NAMES = ("X", "h0", "W_xh", "W_hh", "b")


def make(rng, B, T, n_in, n_h):
    """Random arguments ``(X, h0, W_xh, W_hh, b)``, scaled so that tanh rarely saturates."""
    return (
        rng.normal(size=(B, T, n_in)),
        0.5 * rng.normal(size=(B, n_h)),
        0.8 * rng.normal(size=(n_h, n_in)) / np.sqrt(n_in),
        0.8 * rng.normal(size=(n_h, n_h)) / np.sqrt(n_h),
        0.3 * rng.normal(size=n_h),
    )


def loop_reference(X, h0, W_xh, W_hh, b):
    """The book's column form, one example and one step at a time."""
    B, T, _ = X.shape
    H = np.zeros((B, T, W_hh.shape[0]))
    for r in range(B):
        h = h0[r]
        for t in range(T):
            h = np.tanh(W_xh @ X[r, t] + W_hh @ h + b)
            H[r, t] = h
    return H


def jvp(args, tangents):
    """Forward-mode tangent of rnn: dh_t = (1 − h_t²) ⊙ (d of the pre-activation)."""
    X, h0, W_xh, W_hh, b = args
    dX, dh0, dW_xh, dW_hh, db = tangents
    h, dh = h0, dh0
    out = []
    for t in range(X.shape[1]):
        z = X[:, t] @ W_xh.T + h @ W_hh.T + b
        dz = dX[:, t] @ W_xh.T + X[:, t] @ dW_xh.T + dh @ W_hh.T + h @ dW_hh.T + db
        h, dh = np.tanh(z), (1 - np.tanh(z) ** 2) * dz
        out.append(dh)
    return np.stack(out, axis=1)


def finite_difference_errors(args, G):
    """Errors (``fd_error``, step 1e-5 as below) of each gradient of ``rnn_vjp``
    against central differences of E = ⟨G, rnn(args)⟩."""
    terms = np.sum(np.abs(G * rnn(*args)))
    errors = []
    for i, grad in enumerate(rnn_vjp(G, *args)):

        def E(v, i=i):
            trial = list(args)
            trial[i] = v
            return np.sum(G * rnn(*trial))

        errors.append(fd_error(grad, E, args[i], terms, h=1e-5))
    return errors


def finite_difference_grads(args, G):
    """∂⟨G, rnn(args)⟩ / ∂ each argument, by central differences.

    The step is 1e-5, not the default 1e-6: a gradient that has come back through
    several tanh steps (``dh0`` with one hidden unit, say) can be a thousand times
    smaller than ``E``, and the round-off of a difference of ``E`` is about ``ε|E|/h``.
    Over 400 random cases the largest relative error is then 2e-8, against 2e-7
    with ``h = 1e-6``; the truncation error, O(h²), stays below 1e-9.
    """
    grads = []
    for i in range(5):

        def E(v, i=i):
            trial = list(args)
            trial[i] = v
            return np.sum(G * rnn(*trial))

        grads.append(bp.numerical_gradient(E, args[i], h=1e-5))
    return grads


# --- forward --------------------------------------------------------------------------


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims)
def test_rnn_matches_a_loop_over_time(seed, B, T, n_in, n_h):
    args = make(np.random.default_rng(seed), B, T, n_in, n_h)
    H = rnn(*args)
    assert H.shape == (B, T, n_h)
    np.testing.assert_allclose(H, loop_reference(*args), rtol=1e-13, atol=1e-14)


def test_one_step_is_one_layer(rng):
    X, h0, W_xh, W_hh, b = make(rng, 3, 1, 4, 5)
    Z = linear(X[:, 0], W_xh, b) + h0 @ W_hh.T
    np.testing.assert_allclose(rnn(X, h0, W_xh, W_hh, b)[:, 0], tanh(Z), rtol=1e-14)


# --- backward: finite differences, every input -----------------------------------------


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims)
def test_rnn_vjp_matches_finite_differences(seed, B, T, n_in, n_h):
    rng = np.random.default_rng(seed)
    args = make(rng, B, T, n_in, n_h)
    G = rng.normal(size=(B, T, n_h))
    for name, g, x in zip(NAMES, rnn_vjp(G, *args), args):
        assert g.shape == x.shape, name
    for name, error in zip(NAMES, finite_difference_errors(args, G)):
        assert error <= TOL, name


@pytest.mark.parametrize(("B", "T"), [(1, 1), (1, 6), (4, 1), (3, 7)])
def test_batch_one_and_one_step(rng, B, T):
    args = make(rng, B, T, 3, 3)  # n_in = n_h: a swapped weight would type-check
    G = rng.normal(size=(B, T, 3))
    for name, error in zip(NAMES, finite_difference_errors(args, G)):
        assert error <= TOL, name


def test_one_step_vjp_is_the_layer_vjps(rng):
    X, h0, W_xh, W_hh, b = make(rng, 3, 1, 4, 5)
    G = rng.normal(size=(3, 1, 5))
    dX, dh0, dW_xh, dW_hh, db = rnn_vjp(G, X, h0, W_xh, W_hh, b)
    dZ = tanh_vjp(G[:, 0], X[:, 0] @ W_xh.T + h0 @ W_hh.T + b)
    dX_ref, dW_xh_ref, db_ref = linear_vjp(dZ, X[:, 0], W_xh)
    dh0_ref, dW_hh_ref, _ = linear_vjp(dZ, h0, W_hh)
    for got, ref in [
        (dX[:, 0], dX_ref),
        (dh0, dh0_ref),
        (dW_xh, dW_xh_ref),
        (dW_hh, dW_hh_ref),
        (db, db_ref),
    ]:
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-15)


# --- backward: the VJP is the transpose of the JVP --------------------------------------


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims)
def test_rnn_vjp_is_the_adjoint_of_the_tangent_map(seed, B, T, n_in, n_h):
    rng = np.random.default_rng(seed)
    args = make(rng, B, T, n_in, n_h)
    tangents = [rng.normal(size=np.shape(x)) for x in args]
    G = rng.normal(size=(B, T, n_h))
    # the linear map (dX, dh0, dW_xh, dW_hh, db) ↦ dH, one input at a time
    for i, name in enumerate(NAMES):

        def forward(v, i=i):
            t = [np.zeros_like(x) for x in args]
            t[i] = v
            return jvp(args, t)

        def backward(g, i=i):
            return rnn_vjp(g, *args)[i]

        # the gap is relative to ⟨Jv, G⟩, whose round-off is relative to the sum of
        # its terms' sizes: allow for the cancellation between them
        terms = forward(tangents[i]) * G
        cancellation = max(1.0, np.sum(np.abs(terms)) / abs(np.sum(terms)))
        gap = bp.adjoint_test(forward, backward, tangents[i], G)
        assert gap < ROUNDOFF * cancellation, name


def test_the_jvp_reference_is_the_derivative(rng):
    args = make(rng, 2, 4, 3, 3)
    tangents = [rng.normal(size=np.shape(x)) for x in args]
    eps = 1e-6
    plus = rnn(*[x + eps * v for x, v in zip(args, tangents)])
    minus = rnn(*[x - eps * v for x, v in zip(args, tangents)])
    assert bp.relative_error(jvp(args, tangents), (plus - minus) / (2 * eps)) < TOL


def test_rnn_vjp_against_the_explicit_jacobian(rng):
    X, h0, W_xh, W_hh, b = make(rng, 2, 3, 2, 3)
    G = rng.normal(size=(2, 3, 3))
    dX, dh0, _, dW_hh, _ = rnn_vjp(G, X, h0, W_xh, W_hh, b)
    J_h0 = bp.numerical_jacobian(lambda v: rnn(X, v, W_xh, W_hh, b), h0)
    J_W = bp.numerical_jacobian(lambda v: rnn(X, h0, W_xh, v, b), W_hh)
    assert J_h0.shape == (G.size, h0.size) and J_W.shape == (G.size, W_hh.size)
    dh0_J = bp.unvec(J_h0.T @ bp.vec(G), h0.shape)
    dW_J = bp.unvec(J_W.T @ bp.vec(G), W_hh.shape)
    assert bp.relative_error(dh0, dh0_J) <= TOL
    assert bp.relative_error(dW_hh, dW_J) <= TOL


# --- tied weights: one term per step, summed --------------------------------------------


def test_tied_weights_collect_one_term_per_step(rng):
    X, h0, W_xh, W_hh, b = make(rng, 2, 4, 3, 3)
    G = rng.normal(size=(2, 4, 3))
    T = X.shape[1]

    def untied(copies):  # step t uses its own copy W_hh⁽ᵗ⁾
        h, out = h0, []
        for t in range(T):
            h = np.tanh(X[:, t] @ W_xh.T + h @ copies[t].T + b)
            out.append(h)
        return np.stack(out, axis=1)

    copies = np.stack([W_hh] * T)
    per_step = bp.numerical_gradient(lambda C: np.sum(G * untied(C)), copies)
    dW_hh = rnn_vjp(G, X, h0, W_xh, W_hh, b)[3]
    assert bp.relative_error(per_step.sum(axis=0), dW_hh) <= TOL
    # the last step's term alone (W_hh "used once") is not the gradient
    assert bp.relative_error(per_step[-1], dW_hh) > 0.1


def test_a_wrong_transpose_on_a_square_weight_is_caught(rng):
    X, h0, W_xh, W_hh, b = make(rng, 2, 3, 3, 3)
    G = rng.normal(size=(2, 3, 3))
    fd = finite_difference_grads((X, h0, W_xh, W_hh, b), G)[3]
    right = rnn_vjp(G, X, h0, W_xh, W_hh, b)[3]
    assert bp.relative_error(right, fd) <= TOL
    assert bp.relative_error(right.T, fd) > 0.1


# --- Jacobians over time and the spectral radius -----------------------------------------


def test_state_jacobians_match_finite_differences(rng):
    X, h0, W_xh, W_hh, b = make(rng, 1, 4, 2, 3)
    J = state_jacobians(X, h0, W_xh, W_hh, b)
    assert J.shape == (4, 3, 3)
    for t in range(4):
        Jt = bp.numerical_jacobian(lambda v, t=t: rnn(X, v, W_xh, W_hh, b)[0, t], h0)
        assert bp.relative_error(J[t], Jt) <= TOL
    # the product of the step Jacobians diag(1 − h_t²) W_hh, later steps on the left
    H = rnn(X, h0, W_xh, W_hh, b)[0]
    product = np.eye(3)
    for t in range(4):
        product = np.diag(1 - H[t] ** 2) @ W_hh @ product
        np.testing.assert_allclose(J[t], product, rtol=1e-12, atol=1e-15)


def test_scale_to_spectral_radius(rng):
    W = rng.normal(size=(5, 5))
    for rho in (0.5, 1.0, 1.5):
        S = scale_to_spectral_radius(W, rho)
        assert np.isclose(np.max(np.abs(np.linalg.eigvals(S))), rho)
    assert np.allclose(scale_to_spectral_radius(W, 0.0), 0.0)


def test_gradient_norms_at_the_zero_state_are_powers_of_w_hh():
    radii, T, n_h = [0.5, 1.0, 1.5], 12, 4
    norms = gradient_norms_by_radius(radii, T, n_in=2, n_h=n_h, input_scale=0.0)
    assert norms.shape == (3, T)
    W = np.random.default_rng(0).normal(size=(n_h, n_h))  # the helper's first draw
    for i, rho in enumerate(radii):
        W_hh = scale_to_spectral_radius(W, rho)
        powers = [np.linalg.matrix_power(W_hh, t) for t in range(1, T + 1)]
        np.testing.assert_allclose(
            norms[i], np.linalg.norm(powers, ord=2, axis=(1, 2)), rtol=1e-10
        )


def test_gradient_norms_are_bounded_by_the_norm_of_w_hh():
    radii, T = [0.5, 1.1], 10
    norms = gradient_norms_by_radius(radii, T, n_in=2, n_h=4, input_scale=1.0)
    W = np.random.default_rng(0).normal(size=(4, 4))
    for i, rho in enumerate(radii):
        sigma = np.linalg.norm(scale_to_spectral_radius(W, rho), ord=2)
        assert np.all(norms[i] <= sigma ** np.arange(1, T + 1) * (1 + 1e-12))


# --- refusals and purity --------------------------------------------------------------


def _ok():
    return make(np.random.default_rng(0), 2, 3, 4, 5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"X": np.zeros((2, 4))}, r"X must be 3-D \(batch, time, features\)"),
        ({"W_hh": np.zeros((5, 4))}, r"W_hh must be square"),
        ({"W_hh": np.zeros(5)}, r"W_hh must be 2-D"),
        ({"W_xh": np.zeros((5, 3))}, r"W_xh must have shape \(n_h, n_in\) = \(5, 4\)"),
        ({"W_xh": np.zeros((4, 5))}, r"got \(4, 5\)"),
        ({"b": np.zeros(4)}, r"b must have shape \(5,\)"),
        ({"h0": np.zeros(5)}, r"h0 must be 2-D"),
        ({"h0": np.zeros((3, 5))}, r"h0 must have shape \(B, n_h\) = \(2, 5\)"),
        ({"X": np.zeros((2, 0, 4))}, r"X must not be empty"),
        ({"b": np.array(["a"] * 5)}, r"real numeric dtype"),
    ],
)
def test_refusals(change, message):
    args = dict(zip(NAMES, _ok()))
    args.update(change)
    with pytest.raises(ValueError, match=message):
        rnn(*args.values())
    with pytest.raises(ValueError, match=message):
        rnn_vjp(np.zeros((2, 3, 5)), *args.values())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: rnn_vjp(np.zeros((2, 3, 4)), *a), r"dH must have the shape of H"),
        (lambda a: rnn_vjp(np.zeros((2, 5)), *a), r"got \(2, 5\)"),
        (lambda a: state_jacobians(*a), r"one sequence"),
        (lambda a: scale_to_spectral_radius(np.zeros((2, 3)), 1.0), r"square"),
        (lambda a: scale_to_spectral_radius(np.zeros((2, 2)), 1.0), r"radius 0"),
        (lambda a: scale_to_spectral_radius(np.eye(2), -1.0), r"non-negative"),
        (lambda a: gradient_norms_by_radius([1.0], 0), r"T must be a positive"),
        (lambda a: gradient_norms_by_radius([-1.0], 3), r"non-negative"),
        (
            lambda a: gradient_norms_by_radius([1.0], 3, input_scale=-1),
            r"input_scale",
        ),
    ],
)
def test_other_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call(_ok())


def test_no_function_modifies_its_input(rng):
    args = make(rng, 2, 3, 2, 3)
    G = rng.normal(size=(2, 3, 3))
    saved = [x.copy() for x in (*args, G)]
    rnn(*args)
    rnn_vjp(G, *args)
    state_jacobians(args[0][:1], args[1][:1], *args[2:])
    scale_to_spectral_radius(args[3], 2.0)
    for before, after in zip(saved, (*args, G)):
        np.testing.assert_array_equal(before, after)


def test_integer_inputs_are_accepted_as_float64():
    X = np.ones((1, 2, 2), dtype=int)
    H = rnn(X, np.zeros((1, 2), dtype=int), np.eye(2, dtype=int), np.eye(2), [0, 0])
    assert H.dtype == np.float64
    np.testing.assert_allclose(H[0, 0], np.tanh(1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_float_dtype_is_kept_end_to_end(rng, dtype):
    args = [a.astype(dtype) for a in make(rng, 2, 3, 2, 4)]
    G = rng.normal(size=(2, 3, 4)).astype(dtype)
    outputs = [rnn(*args), *rnn_vjp(G, *args)]
    outputs.append(state_jacobians(args[0][:1], args[1][:1], *args[2:]))
    assert [a.dtype for a in outputs] == [np.dtype(dtype)] * 7


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims, gain=st.sampled_from([1, 3]))
def test_float32_agrees_with_float64(seed, B, T, n_in, n_h, gain):
    """Longest sums: n_in + n_h products and the bias in a step (forward); those, or
    the B·T terms of a weight gradient (backward). gain 3 makes ‖W_hh‖ large: the
    step Jacobians then grow, and so does the bound with them (through the condition).

    Backward, one more rounding that no condition of the problem shows: 1 − h² formed
    from a float32 h near ±1 has an absolute error of about 2u, a relative error of
    2u h²/(1 − h²) in dZ_t that every gradient through step t inherits; so each step
    adds 2 max h²/(1 − h²) to the count of roundings (the tanh VJP's saturation)."""
    rng = np.random.default_rng(seed)
    X, h0, W_xh, W_hh, b = make(rng, B, T, n_in, n_h)
    args = (X, h0, W_xh, gain * W_hh, b)
    G = rng.normal(size=(B, T, n_h))
    m = n_in + n_h + 1
    assert float32_error_ratio(rnn, args, m) <= 2.0
    H = rnn(*(np.float32(a).astype(np.float64) for a in args))
    saturation = 2 * np.sum(np.max(H**2 / (1 - H**2), axis=(0, 2)))
    m = max(m, B * T) + saturation
    assert float32_error_ratio(rnn_vjp, (G, *args), m) <= 2.0


# --- long sequences: T = 20, in three regimes -------------------------------------------
# Over 20 steps the gradient is a product of 20 step Jacobians diag(1 − h_t²) W_hh. With
# ‖W_hh‖ large and states near 0 the product grows (exploding): E's higher derivatives
# grow faster still, and a float64 difference needs a step below 1e-8 for dX but above
# 1e-6 for dW_hh, so no step serves all five. With large pre-activations it shrinks
# (saturating): 1 − h_t² and the gradient reaching h0 fall towards 1e-10 and below, where
# a float64 difference is all round-off. So the differences are taken in 40-digit
# arithmetic (step 1e-12: truncation and round-off both below 1e-20 of E's scale); the
# reference is then exact to float64's precision, and the VJP is held to 1e-10.

MP_TANH = np.frompyfunc(mpmath.tanh, 1, 1)
MP_FLOAT = np.frompyfunc(mpmath.mpf, 1, 1)


def mp_loss(X, h0, W_xh, W_hh, b, G):
    """E = ⟨G, rnn(X, h0, W_xh, W_hh, b)⟩ on arrays of mpmath numbers (object dtype)."""
    h, E = h0, 0
    for t in range(X.shape[1]):
        h = MP_TANH(X[:, t] @ W_xh.T + h @ W_hh.T + b)
        E += np.sum(G[:, t] * h)
    return E


def mp_finite_difference_grads(args, G):
    """∂E/∂ each argument by central differences in 40-digit arithmetic."""
    grads = []
    with mpmath.workdps(40):
        trial, Gm, h = [MP_FLOAT(x) for x in args], MP_FLOAT(G), mpmath.mpf("1e-12")
        for x in trial:
            grad = np.zeros(x.shape)
            for k in np.ndindex(x.shape):
                saved = x[k]
                x[k] = saved + h
                up = mp_loss(*trial, Gm)
                x[k] = saved - h
                grad[k] = float((up - mp_loss(*trial, Gm)) / (2 * h))
                x[k] = saved
            grads.append(grad)
    return grads


def long_sequence(regime, seed=0, B=2, T=20, n_in=2, n_h=3):
    rng = np.random.default_rng(seed)
    X, h0, W_xh, W_hh, b = make(rng, B, T, n_in, n_h)
    if regime == "exploding":  # small states, spectral radius 1.5: the linear regime
        X, h0, b = 1e-4 * X, 1e-4 * h0, 0 * b
        W_hh = scale_to_spectral_radius(W_hh, 1.5)
    elif regime == "saturating":  # inputs drive most |z| beyond 2
        W_xh = 12 * W_xh
    return (X, h0, W_xh, W_hh, b), rng.normal(size=(B, T, n_h))


@pytest.mark.parametrize("regime", ["ordinary", "exploding", "saturating"])
def test_bptt_over_twenty_steps_matches_finite_differences(regime):
    args, G = long_sequence(regime)
    X, h0, W_xh, W_hh, b = args
    # the regime is what it says: ∂h_T/∂h_0 of the first sequence, and tanh' = 1 − h²
    growth = np.linalg.norm(state_jacobians(X[:1], h0[:1], W_xh, W_hh, b)[-1], ord=2)
    slopes = 1 - rnn(*args) ** 2
    if regime == "exploding":
        assert growth > 1e3
    if regime == "saturating":
        assert growth < 1e-6 and np.median(slopes) < 0.05
    for name, g, fd in zip(
        NAMES, rnn_vjp(G, *args), mp_finite_difference_grads(args, G)
    ):
        assert bp.relative_error(g, fd) <= 1e-10, name
