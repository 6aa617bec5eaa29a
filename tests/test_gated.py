"""The gated recurrent layers of ``backprop.recurrent``: the LSTM and the GRU.

``lstm`` and ``gru`` are checked against a loop over time in the column form of
the book and against values known in closed form that pin PyTorch's gate orders
(i, f, g, o and r, z, n) and the GRU's bias inside the reset gate. ``lstm_vjp`` and
``gru_vjp`` are checked against central differences of ``E = ⟨G, H⟩ (+ ⟨G_C, C⟩)``
for every input, against an explicit Jacobian, with the adjoint test against the
engine's forward mode (written from the differentials, independently of the VJPs),
and against the engine's reverse mode. Shapes are drawn by hypothesis, batch 1 and
``T = 1`` included. The comparison with PyTorch itself is made by hand (PyTorch is
not a dependency).
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
from backprop.recurrent import first_step_gradient_norms, gru, gru_vjp, lstm, lstm_vjp

dims = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
ROUNDOFF = 1e-12
LSTM_NAMES = ("X", "h0", "c0", "W_xh", "W_hh", "b")
GRU_NAMES = ("X", "h0", "W_xh", "W_hh", "b_xh", "b_hh")


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def make_lstm(rng, B, T, n_in, n_h):
    """Random ``(X, h0, c0, W_xh, W_hh, b)``, scaled so that gates rarely saturate."""
    return (
        rng.normal(size=(B, T, n_in)),
        0.5 * rng.normal(size=(B, n_h)),
        0.5 * rng.normal(size=(B, n_h)),
        0.8 * rng.normal(size=(4 * n_h, n_in)) / np.sqrt(n_in),
        0.8 * rng.normal(size=(4 * n_h, n_h)) / np.sqrt(n_h),
        0.3 * rng.normal(size=4 * n_h),
    )


def make_gru(rng, B, T, n_in, n_h):
    """Random ``(X, h0, W_xh, W_hh, b_xh, b_hh)``."""
    return (
        rng.normal(size=(B, T, n_in)),
        0.5 * rng.normal(size=(B, n_h)),
        0.8 * rng.normal(size=(3 * n_h, n_in)) / np.sqrt(n_in),
        0.8 * rng.normal(size=(3 * n_h, n_h)) / np.sqrt(n_h),
        0.3 * rng.normal(size=3 * n_h),
        0.3 * rng.normal(size=3 * n_h),
    )


def lstm_loop(X, h0, c0, W_xh, W_hh, b):
    """The book's column form, one example and one step at a time."""
    B, T, _ = X.shape
    n_h = h0.shape[1]
    H, C = np.zeros((B, T, n_h)), np.zeros((B, T, n_h))
    W = [W_xh[k * n_h : (k + 1) * n_h] for k in range(4)]
    U = [W_hh[k * n_h : (k + 1) * n_h] for k in range(4)]
    c_ = [b[k * n_h : (k + 1) * n_h] for k in range(4)]
    for r in range(B):
        h, c = h0[r], c0[r]
        for t in range(T):
            x = X[r, t]
            i = sigmoid(W[0] @ x + U[0] @ h + c_[0])
            f = sigmoid(W[1] @ x + U[1] @ h + c_[1])
            g = np.tanh(W[2] @ x + U[2] @ h + c_[2])
            o = sigmoid(W[3] @ x + U[3] @ h + c_[3])
            c = f * c + i * g
            h = o * np.tanh(c)
            H[r, t], C[r, t] = h, c
    return H, C


def gru_loop(X, h0, W_xh, W_hh, b_xh, b_hh):
    """PyTorch's GRU formulas in column form, one example and one step at a time."""
    B, T, _ = X.shape
    n_h = h0.shape[1]
    H = np.zeros((B, T, n_h))
    blk = lambda M, k: M[k * n_h : (k + 1) * n_h]  # noqa: E731
    for r in range(B):
        h = h0[r]
        for t in range(T):
            x = X[r, t]
            rr = sigmoid(
                blk(W_xh, 0) @ x + blk(b_xh, 0) + blk(W_hh, 0) @ h + blk(b_hh, 0)
            )
            z = sigmoid(
                blk(W_xh, 1) @ x + blk(b_xh, 1) + blk(W_hh, 1) @ h + blk(b_hh, 1)
            )
            n = np.tanh(
                blk(W_xh, 2) @ x + blk(b_xh, 2) + rr * (blk(W_hh, 2) @ h + blk(b_hh, 2))
            )
            h = (1 - z) * n + z * h
            H[r, t] = h
    return H


def lstm_loss(args, G, GC):
    """E = ⟨G, H⟩ + ⟨G_C, C⟩, with G_C = 0 when ``GC`` is None."""
    H, C = lstm(*args)
    return np.sum(G * H) + (0.0 if GC is None else np.sum(GC * C))


def lstm_terms(args, G, GC):
    H, C = lstm(*args)
    return float(np.sum(np.abs(G * H)) + (0 if GC is None else np.sum(np.abs(GC * C))))


def lstm_fd_errors(args, G, GC=None, h=1e-5):
    """``fd_error`` of each gradient of ``lstm_vjp`` (step 1e-5: a gradient that
    has come back through several gates can be much smaller than E)."""
    terms = lstm_terms(args, G, GC)
    errors = []
    for i, grad in enumerate(lstm_vjp(G, *args, dC=GC)):

        def E(v, i=i):
            trial = list(args)
            trial[i] = v
            return lstm_loss(trial, G, GC)

        errors.append(fd_error(grad, E, args[i], terms, h=h))
    return errors


def gru_fd_errors(args, G, h=1e-5):
    terms = float(np.sum(np.abs(G * gru(*args))))
    errors = []
    for i, grad in enumerate(gru_vjp(G, *args)):

        def E(v, i=i):
            trial = list(args)
            trial[i] = v
            return np.sum(G * gru(*trial))

        errors.append(fd_error(grad, E, args[i], terms, h=h))
    return errors


# --- forward --------------------------------------------------------------------------


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims)
def test_lstm_matches_a_loop_over_time(seed, B, T, n_in, n_h):
    args = make_lstm(np.random.default_rng(seed), B, T, n_in, n_h)
    H, C = lstm(*args)
    assert H.shape == C.shape == (B, T, n_h)
    H_ref, C_ref = lstm_loop(*args)
    np.testing.assert_allclose(H, H_ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(C, C_ref, rtol=1e-13, atol=1e-14)


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims)
def test_gru_matches_a_loop_over_time(seed, B, T, n_in, n_h):
    args = make_gru(np.random.default_rng(seed), B, T, n_in, n_h)
    H = gru(*args)
    assert H.shape == (B, T, n_h)
    np.testing.assert_allclose(H, gru_loop(*args), rtol=1e-13, atol=1e-14)


def test_lstm_gate_order_is_i_f_g_o(rng):
    """Zero weights: the gates are σ or tanh of their bias blocks alone. A forget
    gate near 1 and an input gate near 0 keep c0; the output gate scales tanh(c)."""
    B, T, n_in, n_h = 2, 3, 2, 3
    X, h0, c0 = (
        rng.normal(size=(B, T, n_in)),
        rng.normal(size=(B, n_h)),
        rng.normal(size=(B, n_h)),
    )
    W_xh, W_hh = np.zeros((4 * n_h, n_in)), np.zeros((4 * n_h, n_h))
    b = np.concatenate(
        [np.full(n_h, -40.0), np.full(n_h, 40.0), np.full(n_h, 0.5), np.full(n_h, 0.3)]
    )
    H, C = lstm(X, h0, c0, W_xh, W_hh, b)
    np.testing.assert_allclose(C, np.repeat(c0[:, None], T, axis=1), rtol=1e-15)
    np.testing.assert_allclose(H, sigmoid(0.3) * np.tanh(C), rtol=1e-14)
    # input gate open, forget gate shut: c_t = g = tanh(0.5) at every step
    b2 = np.concatenate(
        [np.full(n_h, 40.0), np.full(n_h, -40.0), np.full(n_h, 0.5), np.full(n_h, 0.3)]
    )
    _, C2 = lstm(X, h0, c0, W_xh, W_hh, b2)
    np.testing.assert_allclose(C2, np.tanh(0.5), rtol=1e-14)


def test_gru_gate_order_is_r_z_n(rng):
    B, T, n_in, n_h = 2, 3, 2, 3
    X, h0 = rng.normal(size=(B, T, n_in)), rng.normal(size=(B, n_h))
    W_xh, W_hh = np.zeros((3 * n_h, n_in)), np.zeros((3 * n_h, n_h))
    zeros = np.zeros(3 * n_h)
    # update gate z ≈ 1: the state is carried unchanged
    keep = np.concatenate([np.zeros(n_h), np.full(n_h, 40.0), np.zeros(n_h)])
    np.testing.assert_allclose(
        gru(X, h0, W_xh, W_hh, keep, zeros),
        np.repeat(h0[:, None], T, axis=1),
        rtol=1e-15,
    )
    # z ≈ 0: h_t = n = tanh(b_in + r ⊙ b_hn), with r = σ(b_ir + b_hr)
    b_xh = np.concatenate([np.full(n_h, 0.2), np.full(n_h, -40.0), np.full(n_h, 0.1)])
    b_hh = np.concatenate([np.full(n_h, 0.3), np.zeros(n_h), np.full(n_h, 0.7)])
    H = gru(X, h0, W_xh, W_hh, b_xh, b_hh)
    np.testing.assert_allclose(H, np.tanh(0.1 + sigmoid(0.5) * 0.7), rtol=1e-14)


def test_gru_b_hn_does_not_merge_with_b_in(rng):
    """The r and z blocks of the two biases only ever appear summed; the n block of
    b_hh is multiplied by the reset gate, so moving it to b_xh changes H."""
    args = make_gru(rng, 2, 4, 3, 3)
    X, h0, W_xh, W_hh, b_xh, b_hh = args
    n_h = 3
    moved = b_xh + b_hh, np.zeros_like(b_hh)
    partly = b_xh.copy(), b_hh.copy()
    partly[0][: 2 * n_h] += partly[1][: 2 * n_h]
    partly[1][: 2 * n_h] = 0
    H = gru(*args)
    np.testing.assert_allclose(gru(X, h0, W_xh, W_hh, *partly), H, rtol=1e-13)
    assert bp.relative_error(gru(X, h0, W_xh, W_hh, *moved), H) > 1e-3


def test_the_cell_path_is_diagonal(rng):
    """With W_hh = 0 no state feeds back through the gates, and ∂c_t/∂c_0 is the
    product of diag(f_s), s = 1 … t (eq. gr-cell-jacobian)."""
    X, h0, c0, W_xh, _, b = make_lstm(rng, 1, 5, 2, 3)
    W_hh = np.zeros((12, 3))
    _, C = lstm(X, h0, c0, W_xh, W_hh, b)
    f = sigmoid(X[0] @ W_xh[3:6].T + b[3:6])  # (T, n_h): the forget gates
    for t in range(5):
        J = bp.numerical_jacobian(
            lambda v, t=t: lstm(X, h0, v[None], W_xh, W_hh, b)[1][0, t], c0[0]
        )
        np.testing.assert_allclose(J, np.diag(np.prod(f[: t + 1], axis=0)), atol=1e-9)


def test_the_gru_direct_path_is_diagonal(rng):
    """With W_hh = 0, ∂h_t/∂h_{t−1} = diag(z_t)."""
    X, h0, W_xh, _, b_xh, b_hh = make_gru(rng, 1, 1, 2, 3)
    W_hh = np.zeros((9, 3))
    z = sigmoid(X[0, 0] @ W_xh[3:6].T + b_xh[3:6] + b_hh[3:6])
    J = bp.numerical_jacobian(
        lambda v: gru(X, v[None], W_xh, W_hh, b_xh, b_hh)[0, 0], h0[0]
    )
    np.testing.assert_allclose(J, np.diag(z), atol=1e-9)


# --- backward: finite differences, every input -----------------------------------------


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims, with_dC=st.booleans())
def test_lstm_vjp_matches_finite_differences(seed, B, T, n_in, n_h, with_dC):
    rng = np.random.default_rng(seed)
    args = make_lstm(rng, B, T, n_in, n_h)
    G = rng.normal(size=(B, T, n_h))
    GC = rng.normal(size=(B, T, n_h)) if with_dC else None
    for name, g, x in zip(LSTM_NAMES, lstm_vjp(G, *args, dC=GC), args):
        assert g.shape == x.shape, name
    for name, error in zip(LSTM_NAMES, lstm_fd_errors(args, G, GC)):
        assert error <= TOL, name


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims)
def test_gru_vjp_matches_finite_differences(seed, B, T, n_in, n_h):
    rng = np.random.default_rng(seed)
    args = make_gru(rng, B, T, n_in, n_h)
    G = rng.normal(size=(B, T, n_h))
    for name, g, x in zip(GRU_NAMES, gru_vjp(G, *args), args):
        assert g.shape == x.shape, name
    for name, error in zip(GRU_NAMES, gru_fd_errors(args, G)):
        assert error <= TOL, name


@pytest.mark.parametrize(("B", "T"), [(1, 1), (1, 6), (4, 1), (3, 7)])
def test_batch_one_and_one_step(rng, B, T):
    args = make_lstm(rng, B, T, 3, 3)
    G, GC = rng.normal(size=(B, T, 3)), rng.normal(size=(B, T, 3))
    for name, error in zip(LSTM_NAMES, lstm_fd_errors(args, G, GC)):
        assert error <= TOL, name
    args = make_gru(rng, B, T, 3, 3)
    for name, error in zip(GRU_NAMES, gru_fd_errors(args, G)):
        assert error <= TOL, name


def test_dC_none_is_dC_zero(rng):
    args = make_lstm(rng, 2, 3, 2, 3)
    G = rng.normal(size=(2, 3, 3))
    for a, b in zip(lstm_vjp(G, *args), lstm_vjp(G, *args, dC=np.zeros_like(G))):
        np.testing.assert_array_equal(a, b)


def test_a_gradient_at_c_alone_reaches_everything(rng):
    """dH = 0, dC ≠ 0: the cell path alone; the forget gates carry it back to c0."""
    args = make_lstm(rng, 2, 4, 2, 3)
    GC = rng.normal(size=(2, 4, 3))
    errors = lstm_fd_errors(args, np.zeros_like(GC), GC)
    assert max(errors) <= TOL


def test_lstm_vjp_against_the_explicit_jacobian(rng):
    args = make_lstm(rng, 2, 3, 2, 3)
    X, h0, c0, W_xh, W_hh, b = args
    G = rng.normal(size=(2, 3, 3))
    dh0, dW_hh = (lstm_vjp(G, *args)[k] for k in (1, 4))
    J_h0 = bp.numerical_jacobian(lambda v: lstm(X, v, c0, W_xh, W_hh, b)[0], h0)
    J_W = bp.numerical_jacobian(lambda v: lstm(X, h0, c0, W_xh, v, b)[0], W_hh)
    assert J_h0.shape == (G.size, h0.size) and J_W.shape == (G.size, W_hh.size)
    assert bp.relative_error(dh0, bp.unvec(J_h0.T @ bp.vec(G), h0.shape)) <= TOL
    assert bp.relative_error(dW_hh, bp.unvec(J_W.T @ bp.vec(G), W_hh.shape)) <= TOL


def test_gru_vjp_against_the_explicit_jacobian(rng):
    args = make_gru(rng, 2, 3, 2, 3)
    X, h0, W_xh, W_hh, b_xh, b_hh = args
    G = rng.normal(size=(2, 3, 3))
    dh0, dW_hh, db_hh = (gru_vjp(G, *args)[k] for k in (1, 3, 5))
    for got, k, x in [(dh0, 1, h0), (dW_hh, 3, W_hh), (db_hh, 5, b_hh)]:

        def f(v, k=k):
            trial = list(args)
            trial[k] = v
            return gru(*trial)

        J = bp.numerical_jacobian(f, x)
        assert bp.relative_error(got, bp.unvec(J.T @ bp.vec(G), x.shape)) <= TOL


# --- the VJP is the transpose of the JVP, and the engine agrees -------------------------


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims)
def test_lstm_vjp_is_the_adjoint_of_the_tangent_map(seed, B, T, n_in, n_h):
    """⟨J v, (G, G_C)⟩ from the engine's forward mode = ⟨v, lstm_vjp(G, …, dC=G_C)⟩,
    one input at a time."""
    rng = np.random.default_rng(seed)
    args = make_lstm(rng, B, T, n_in, n_h)
    G, GC = rng.normal(size=(B, T, n_h)), rng.normal(size=(B, T, n_h))
    grads = lstm_vjp(G, *args, dC=GC)
    for i, name in enumerate(LSTM_NAMES):
        v = rng.normal(size=args[i].shape)
        tangents = [v if j == i else None for j in range(6)]
        _, dH = ad.jvp(lambda *a: ad.lstm(*a)[0], list(args), tangents)
        _, dC = ad.jvp(lambda *a: ad.lstm(*a)[1], list(args), tangents)
        terms = np.concatenate([(dH * G).ravel(), (dC * GC).ravel()])
        lhs, rhs = np.sum(terms), np.sum(v * grads[i])
        cancellation = max(1.0, np.sum(np.abs(terms)) / abs(lhs))
        assert abs(lhs - rhs) <= ROUNDOFF * cancellation * max(abs(lhs), 1e-300), name


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims)
def test_gru_vjp_is_the_adjoint_of_the_tangent_map(seed, B, T, n_in, n_h):
    rng = np.random.default_rng(seed)
    args = make_gru(rng, B, T, n_in, n_h)
    G = rng.normal(size=(B, T, n_h))
    grads = gru_vjp(G, *args)
    for i, name in enumerate(GRU_NAMES):
        v = rng.normal(size=args[i].shape)
        tangents = [v if j == i else None for j in range(6)]
        _, dH = ad.jvp(ad.gru, list(args), tangents)
        terms = dH * G
        lhs, rhs = np.sum(terms), np.sum(v * grads[i])
        cancellation = max(1.0, np.sum(np.abs(terms)) / abs(lhs))
        assert abs(lhs - rhs) <= ROUNDOFF * cancellation * max(abs(lhs), 1e-300), name


def test_the_tangent_maps_are_the_derivatives(rng):
    """The JVP rules used by the adjoint tests are right: against central differences
    along a random direction of every input at once."""
    eps = 1e-6
    for f, make in [
        (lambda *a: ad.lstm(*a)[0] + 2 * ad.lstm(*a)[1], make_lstm),
        (ad.gru, make_gru),
    ]:
        args = make(rng, 2, 4, 3, 3)
        vs = [rng.normal(size=np.shape(x)) for x in args]
        _, Jv = ad.jvp(f, list(args), vs)
        up, down = (
            f(*[ad.Tensor(x + s * v) for x, v in zip(args, vs)]).value
            for s in (eps, -eps)
        )
        assert bp.relative_error(Jv, (up - down) / (2 * eps)) < TOL


def test_engine_agrees_with_the_hand_vjps(rng):
    args = make_lstm(rng, 3, 5, 2, 4)
    G, GC = rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 5, 4))
    ts = [ad.Tensor(a) for a in args]
    H, C = ad.lstm(*ts)
    np.testing.assert_array_equal(H.value, lstm(*args)[0])
    (ad.sum(H * G) + ad.sum(C * GC)).backward()
    for name, t, g in zip(LSTM_NAMES, ts, lstm_vjp(G, *args, dC=GC)):
        assert bp.relative_error(t.grad, g) <= 1e-14, name
    args = make_gru(rng, 3, 5, 2, 4)
    ts = [ad.Tensor(a) for a in args]
    ad.sum(ad.gru(*ts) * G).backward()
    for name, t, g in zip(GRU_NAMES, ts, gru_vjp(G, *args)):
        assert bp.relative_error(t.grad, g) <= 1e-14, name


def test_engine_gradient_of_h_alone_or_c_alone(rng):
    args = make_lstm(rng, 2, 3, 2, 3)
    G = rng.normal(size=(2, 3, 3))
    for k in (0, 1):
        ts = [ad.Tensor(a) for a in args]
        ad.sum(ad.lstm(*ts)[k] * G).backward()
        dH, dC = (G, None) if k == 0 else (np.zeros_like(G), G)
        for t, g in zip(ts, lstm_vjp(dH, *args, dC=dC)):
            assert bp.relative_error(t.grad, g) <= 1e-14


# --- refusals, purity, dtypes -----------------------------------------------------------


def _ok_lstm():
    return dict(zip(LSTM_NAMES, make_lstm(np.random.default_rng(0), 2, 3, 4, 5)))


def _ok_gru():
    return dict(zip(GRU_NAMES, make_gru(np.random.default_rng(0), 2, 3, 4, 5)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"X": np.zeros((2, 4))}, r"X must be 3-D \(batch, time, features\)"),
        ({"W_hh": np.zeros((15, 5))}, r"W_hh must have shape \(4 n_h, n_h\)"),
        ({"W_hh": np.zeros(20)}, r"W_hh must be 2-D"),
        (
            {"W_xh": np.zeros((20, 3))},
            r"W_xh must have shape \(4 n_h, n_in\) = \(20, 4\)",
        ),
        ({"W_xh": np.zeros((15, 4))}, r"got \(15, 4\)"),
        ({"b": np.zeros(5)}, r"b must have shape \(4 n_h,\) = \(20,\)"),
        ({"h0": np.zeros(5)}, r"h0 must be 2-D"),
        ({"c0": np.zeros((3, 5))}, r"c0 must have shape \(B, n_h\) = \(2, 5\)"),
        ({"c0": np.zeros((2, 4))}, r"got \(2, 4\)"),
        ({"X": np.zeros((2, 0, 4))}, r"X must not be empty"),
        ({"b": np.array(["a"] * 20)}, r"real numeric dtype"),
    ],
)
def test_lstm_refusals(change, message):
    args = _ok_lstm()
    args.update(change)
    with pytest.raises(ValueError, match=message):
        lstm(*args.values())
    with pytest.raises(ValueError, match=message):
        lstm_vjp(np.zeros((2, 3, 5)), *args.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"X": np.zeros((2, 3, 4, 1))}, r"X must be 3-D"),
        ({"W_hh": np.zeros((20, 5))}, r"W_hh must have shape \(3 n_h, n_h\)"),
        (
            {"W_xh": np.zeros((15, 5))},
            r"W_xh must have shape \(3 n_h, n_in\) = \(15, 4\)",
        ),
        ({"b_xh": np.zeros(20)}, r"b_xh must have shape \(3 n_h,\) = \(15,\)"),
        ({"b_hh": np.zeros((15, 1))}, r"b_hh must be 1-D"),
        ({"h0": np.zeros((2, 4))}, r"h0 must have shape \(B, n_h\) = \(2, 5\)"),
    ],
)
def test_gru_refusals(change, message):
    args = _ok_gru()
    args.update(change)
    with pytest.raises(ValueError, match=message):
        gru(*args.values())
    with pytest.raises(ValueError, match=message):
        gru_vjp(np.zeros((2, 3, 5)), *args.values())


def test_gradients_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"dH must have the shape of the states"):
        lstm_vjp(np.zeros((2, 3, 4)), *_ok_lstm().values())
    with pytest.raises(ValueError, match=r"dC must have the shape .* got \(2, 5\)"):
        lstm_vjp(np.zeros((2, 3, 5)), *_ok_lstm().values(), dC=np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"dH must have the shape .* got \(3, 3, 5\)"):
        gru_vjp(np.zeros((3, 3, 5)), *_ok_gru().values())


def test_no_function_modifies_its_input(rng):
    args = make_lstm(rng, 2, 3, 2, 3)
    G, GC = rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 3))
    saved = [x.copy() for x in (*args, G, GC)]
    lstm(*args)
    lstm_vjp(G, *args, dC=GC)
    for before, after in zip(saved, (*args, G, GC)):
        np.testing.assert_array_equal(before, after)
    args = make_gru(rng, 2, 3, 2, 3)
    saved = [x.copy() for x in (*args, G)]
    gru(*args)
    gru_vjp(G, *args)
    for before, after in zip(saved, (*args, G)):
        np.testing.assert_array_equal(before, after)


def test_integer_inputs_are_accepted_as_float64():
    X, h0 = np.ones((1, 2, 2), dtype=int), np.zeros((1, 2), dtype=int)
    H, C = lstm(X, h0, h0, np.zeros((8, 2), int), np.zeros((8, 2), int), [0] * 8)
    assert H.dtype == C.dtype == np.float64
    np.testing.assert_allclose(C[0, 1], 0.0)  # g = tanh(0) = 0
    H = gru(X, h0, np.zeros((6, 2), int), np.zeros((6, 2), int), [0] * 6, [0] * 6)
    assert H.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_float_dtype_is_kept_end_to_end(rng, dtype):
    args = [a.astype(dtype) for a in make_lstm(rng, 2, 3, 2, 4)]
    G = rng.normal(size=(2, 3, 4)).astype(dtype)
    outputs = [*lstm(*args), *lstm_vjp(G, *args), *lstm_vjp(G, *args, dC=G)]
    args = [a.astype(dtype) for a in make_gru(rng, 2, 3, 2, 4)]
    outputs += [gru(*args), *gru_vjp(G, *args)]
    assert [a.dtype for a in outputs] == [np.dtype(dtype)] * len(outputs)


@given(seed=seeds, B=dims, T=dims, n_in=dims, n_h=dims)
def test_float32_agrees_with_float64(seed, B, T, n_in, n_h):
    """The same numbers (rounded to float32 first) in both precisions. The gates
    are bounded and their slopes at most 1, so with these scales the results agree to
    a few hundred units of float32's round-off, relative to the outputs' size."""
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(B, T, n_h)).astype(np.float32)
    both = lambda *a: lstm(*a)  # noqa: E731
    for f, vjp, make in [
        (both, lstm_vjp, make_lstm),
        (lambda *a: (gru(*a),), gru_vjp, make_gru),
    ]:
        args32 = [a.astype(np.float32) for a in make(rng, B, T, n_in, n_h)]
        args64 = [a.astype(np.float64) for a in args32]
        out32 = [*f(*args32), *vjp(G, *args32)]
        out64 = [*f(*args64), *vjp(G.astype(np.float64), *args64)]
        for a, b in zip(out32, out64):
            assert a.dtype == np.float32
            scale = max(np.max(np.abs(b)), 1.0)
            assert np.max(np.abs(a - b)) <= 300 * 2**-24 * (B * T + n_in + n_h) * scale


# --- the measurement of the chapter: ‖∂E/∂x_1‖ against T --------------------------------


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_first_step_gradient_norms_match_finite_differences(kind):
    """Each entry is ‖∂⟨u, h_T⟩/∂x_1‖ of one run of length T (the batch of copies
    changes nothing); checked against central differences in x_1."""
    lengths = [1, 4, 7]
    norms = first_step_gradient_norms(kind, lengths, n_in=2, n_h=3, seed=5)
    rng = np.random.default_rng(5)  # the helper's draws, in its order
    k = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    W_xh = rng.normal(size=(k * 3, 2)) / np.sqrt(2)
    W_hh = rng.normal(size=(k * 3, 3)) / np.sqrt(3)
    X = rng.normal(size=(1, 7, 2))
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    b, h0 = np.zeros(k * 3), np.zeros((1, 3))
    b[3:6] = 1.0 if kind != "rnn" else 0.0
    run = {
        "rnn": lambda X_: bp.rnn(X_, h0, W_xh, W_hh, b),
        "lstm": lambda X_: lstm(X_, h0, h0, W_xh, W_hh, b)[0],
        "gru": lambda X_: gru(X_, h0, W_xh, W_hh, b, np.zeros(9)),
    }[kind]
    for T, norm in zip(lengths, norms):

        def E(x1, T=T):
            X_ = X[:, :T].copy()
            X_[0, 0] = x1
            return run(X_)[0, -1] @ u

        fd = bp.numerical_gradient(E, X[0, 0], h=1e-5)
        assert abs(norm - np.linalg.norm(fd)) <= 1e-8 * np.linalg.norm(fd)


def test_the_keep_bias_sets_the_lstm_decay():
    """At the same weights the gradient through 60 steps grows with the forget
    gate's bias, and the RNN, which has no such gate, ignores it."""
    lstm_norms = [
        first_step_gradient_norms("lstm", [60], keep_bias=v)[0] for v in (0, 1, 3)
    ]
    assert lstm_norms[0] < lstm_norms[1] < lstm_norms[2]
    rnn_norms = [first_step_gradient_norms("rnn", [60], keep_bias=v)[0] for v in (0, 3)]
    assert rnn_norms[0] == rnn_norms[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"kind": "lstmx", "lengths": [3]},
            r"kind must be 'rnn', 'lstm' or 'gru'; got 'lstmx'",
        ),
        (
            {"kind": "gru", "lengths": [3, 0]},
            r"each length must be a positive integer; got 0",
        ),
        ({"kind": "gru", "lengths": []}, r"at least one T"),
        ({"kind": "rnn", "lengths": [3], "n_h": 0}, r"n_h must be a positive integer"),
        (
            {"kind": "rnn", "lengths": [3], "keep_bias": np.nan},
            r"keep_bias must be a number",
        ),
    ],
)
def test_first_step_gradient_norms_refusals(kwargs, message):
    with pytest.raises(ValueError, match=message):
        first_step_gradient_norms(**kwargs)
