"""Recurrent layers and backpropagation through time (BPTT).

A tanh RNN first; the gated layers, the LSTM and the GRU, at the end.

The book derives, for one sequence in column form,

    z_t = W_xh x_t + W_hh h_{t−1} + b,   h_t = tanh(z_t),   t = 1, …, T,

and, with ``g_t = ∇_{h_t} E`` the gradient that the outputs send to each
state,

    ∇_{h_t} E = g_t + W_hhᵀ δ_{t+1},
    δ_t = ∇_{z_t} E = ∇_{h_t} E ⊙ (1 − h_t²),
    ∇_{W_hh} E = Σ_t δ_t h_{t−1}ᵀ,  ∇_{W_xh} E = Σ_t δ_t x_tᵀ,
    ∇_b E = Σ_t δ_t.

The weights are *tied*: the same ``W_xh``, ``W_hh`` and ``b`` are used at
every step, so each collects one term per step, summed (the fan-out rule, eq.
``mb-fanout``).

The code stores a batch of sequences with one example per row and time on the
second axis (PyTorch's ``batch_first=True`` layout): ``X`` is
``(B, T, n_in)``, ``h0`` is ``(B, n_h)``, and the hidden states ``H`` are
``(B, T, n_h)``; row ``r`` of ``H[:, t]`` is ``h_{t+1}`` of example ``r``
(Python counts from 0, the book from 1). Every function is pure: it checks
its arguments, never modifies them, and returns new arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backprop._checks import as_real_array, check_batch, positive_int
from backprop.layers import linear_vjp, sigmoid, tanh_vjp

__all__ = [
    "rnn",
    "rnn_vjp",
    "scale_to_spectral_radius",
    "state_jacobians",
    "gradient_norms_by_radius",
    "lstm",
    "lstm_vjp",
    "gru",
    "gru_vjp",
    "first_step_gradient_norms",
]


def _check_sequence(X):
    """X as a float (batch, time, features) array, with B and n_in."""
    X = as_real_array("X", X)
    if X.ndim != 3:
        raise ValueError(
            f"X must be 3-D (batch, time, features); got {X.ndim}-D shape "
            f"{X.shape}"
        )
    B, _, n_in = X.shape
    return X, B, n_in


def _check_rnn(X, h0, W_xh, W_hh, b):
    """The layer's five arguments, as float arrays of consistent shapes."""
    X, B, n_in = _check_sequence(X)
    W_hh = as_real_array("W_hh", W_hh, ndim=2)
    n_h = W_hh.shape[0]
    if W_hh.shape != (n_h, n_h):
        raise ValueError(
            "W_hh must be square (n_h, n_h), mapping a state to a state; "
            f"got shape {W_hh.shape}"
        )
    W_xh = as_real_array("W_xh", W_xh, ndim=2)
    if W_xh.shape != (n_h, n_in):
        raise ValueError(
            f"W_xh must have shape (n_h, n_in) = ({n_h}, {n_in}): W_hh "
            f"{W_hh.shape} has {n_h} hidden units and X {X.shape} has "
            f"{n_in} features; got {W_xh.shape}"
        )
    b = as_real_array("b", b, ndim=1)
    if b.shape != (n_h,):
        raise ValueError(
            f"b must have shape ({n_h},), one entry per hidden unit; got "
            f"{b.shape}"
        )
    h0 = check_batch("h0", h0)
    if h0.shape != (B, n_h):
        raise ValueError(
            f"h0 must have shape (B, n_h) = ({B}, {n_h}), one state per "
            f"sequence of X {X.shape}; got {h0.shape}"
        )
    return X, h0, W_xh, W_hh, b


def _forward(X, h0, W_xh, W_hh, b):
    """Pre-activations Z and states H, both (B, T, n_h); arguments checked.

    Their dtype is that of the arguments (float32 stays float32).
    """
    B, T, _ = X.shape
    Z = np.empty(
        (B, T, W_hh.shape[0]), dtype=np.result_type(X, h0, W_xh, W_hh, b)
    )
    H = np.empty_like(Z)
    h = h0
    for t in range(T):
        Z[:, t] = X[:, t] @ W_xh.T + h @ W_hh.T + b
        h = H[:, t] = np.tanh(Z[:, t])
    return Z, H


def rnn(X, h0, W_xh, W_hh, b) -> np.ndarray:
    """An Elman RNN, ``h_t = tanh(x_t W_xhᵀ + h_{t−1} W_hhᵀ + b)``.

    Implements eq. ``rnn-forward``.

    X: (B, T, n_in), ``X[:, t]`` the inputs at step ``t + 1``.  h0: (B, n_h),
    the initial states.  W_xh: (n_h, n_in).  W_hh: (n_h, n_h).  b: (n_h,).
    Returns H: (B, T, n_h), the states ``h_1 … h_T`` (not ``h0``), in the
    arguments' floating dtype (float32 stays float32). The same as
    ``torch.nn.RNN(batch_first=True)`` with one layer and one bias ``b``
    (PyTorch's ``b_ih + b_hh``).
    """
    return _forward(*_check_rnn(X, h0, W_xh, W_hh, b))[1]


def rnn_vjp(
    dH, X, h0, W_xh, W_hh, b
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backpropagation through time: pull ``dH`` back through :func:`rnn`.

    Implements eqs. ``rnn-bptt``, ``rnn-weight-grads``.

    dH: (B, T, n_h), ∂E/∂H, the gradient that the outputs send to every state
    (zero where a state feeds no output).  X, h0, W_xh, W_hh, b: as
    for :func:`rnn`. Returns ``(dX, dh0, dW_xh, dW_hh, db)`` with the shapes
    of the inputs. Going back in time, ``dh = dH[:, t] + dZ_{t+1} W_hh``
    collects the gradient from the step's own output and from the future;
    ``dZ_t = dh ⊙ (1 − h_t²)``; and each step adds its own terms
    ``dZ_tᵀ X_t``, ``dZ_tᵀ H_{t−1}``, ``dZ_tᵀ 1`` to the tied parameters'
    gradients.
    """
    X, h0, W_xh, W_hh, b = _check_rnn(X, h0, W_xh, W_hh, b)
    Z, H = _forward(X, h0, W_xh, W_hh, b)
    dH = as_real_array("dH", dH)
    if dH.shape != H.shape:
        raise ValueError(
            "dH must have the shape of H = rnn(X, …), (B, T, n_h) = "
            f"{H.shape}; got {dH.shape}"
        )
    T = X.shape[1]
    dtype = np.result_type(dH, Z)  # float32 in, float32 out
    dX = np.empty_like(X, dtype=dtype)
    dW_xh, dW_hh = (
        np.zeros_like(W_xh, dtype=dtype),
        np.zeros_like(W_hh, dtype=dtype),
    )
    db = np.zeros_like(b, dtype=dtype)
    # dZ_{t+1} W_hh; nothing after h_T
    from_future = np.zeros_like(h0, dtype=dtype)
    for t in reversed(range(T)):
        h_prev = H[:, t - 1] if t > 0 else h0
        dZ = tanh_vjp(dH[:, t] + from_future, Z[:, t])
        dX[:, t], dW_xh_t, db_t = linear_vjp(dZ, X[:, t], W_xh)
        from_future, dW_hh_t, _ = linear_vjp(dZ, h_prev, W_hh)
        dW_xh += dW_xh_t  # tied weights: one term per step, summed
        dW_hh += dW_hh_t
        db += db_t
    return dX, from_future, dW_xh, dW_hh, db


# --- vanishing and exploding gradients -------------------------------------


def scale_to_spectral_radius(W, rho: float) -> np.ndarray:
    """``W`` rescaled to spectral radius (``max |eigenvalue|``) ``rho``.

    W: (n, n), not nilpotent (its spectral radius must be positive).  rho: ≥
    0. Returns a new (n, n) array ``rho / ρ(W) · W``.
    """
    W = as_real_array("W", W, ndim=2)
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be square; got shape {W.shape}")
    if not (np.isfinite(rho) and rho >= 0):
        raise ValueError(f"rho must be a non-negative number; got {rho!r}")
    radius = float(np.max(np.abs(np.linalg.eigvals(W))))
    if radius == 0.0:
        raise ValueError("W has spectral radius 0 and cannot be rescaled")
    return W * (rho / radius)


def state_jacobians(X, h0, W_xh, W_hh, b) -> np.ndarray:
    """The Jacobians ``∂h_t/∂h_0``, ``t = 1 … T``, of one sequence, by BPTT.

    Implements eq. ``rnn-jacobian-product``.

    X: (1, T, n_in), one sequence.  h0: (1, n_h).  W_xh, W_hh, b: as
    for :func:`rnn`. Returns J: (T, n_h, n_h), ``J[t − 1] = ∂h_t/∂h_0`` in
    numerator layout. Row ``i`` of ``∂h_t/∂h_0`` is the ``dh0``
    that :func:`rnn_vjp` returns when the only gradient is ``e_i`` at
    ``h_t``, so all ``n_h`` rows come from one call with a batch of ``n_h``
    copies of the sequence and ``dH[:, t − 1] = I``.
    """
    X, h0, W_xh, W_hh, b = _check_rnn(X, h0, W_xh, W_hh, b)
    if X.shape[0] != 1:
        raise ValueError(
            f"X must hold one sequence, shape (1, T, n_in); got {X.shape}"
        )
    T, n_h = X.shape[1], W_hh.shape[0]
    copies = np.repeat(X, n_h, axis=0)  # (n_h, T, n_in)
    starts = np.repeat(h0, n_h, axis=0)  # (n_h, n_h)
    dtype = np.result_type(X, h0, W_xh, W_hh, b)
    J = np.empty((T, n_h, n_h), dtype=dtype)
    for t in range(T):
        dH = np.zeros((n_h, t + 1, n_h), dtype=dtype)
        dH[:, t] = np.eye(n_h)  # row i: the gradient e_i at h_{t+1}
        J[t] = rnn_vjp(dH, copies[:, : t + 1], starts, W_xh, W_hh, b)[1]
    return J


def gradient_norms_by_radius(
    radii: Sequence[float],
    T: int,
    n_in: int = 3,
    n_h: int = 16,
    input_scale: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Measured ``‖∂h_t/∂h_0‖₂`` against ``t``, for ``W_hh`` of given radii.

    For each radius ``ρ`` in ``radii``: one random RNN, with the same random
    ``W_hh`` direction, inputs, ``h0`` and ``b`` for every ``ρ``
    (all drawn from ``seed``) and ``W_hh`` rescaled to spectral radius ``ρ``;
    then the spectral norm of each Jacobian of :func:`state_jacobians`, which
    come from :func:`rnn_vjp`.

    radii: (m,) non-negative.  T: the sequence length.  n_in, n_h: the sizes.
    input_scale: ``s ≥ 0``; the inputs are drawn with standard deviation
    ``s``, and ``h0`` and ``b`` with ``0.1 s``. With ``s = 0`` every state
    stays at 0, where every slope ``1 − h²`` is 1, so ``∂h_t/∂h_0 = W_hh^t``
    exactly. Returns (m, T): entry ``[i, t − 1]`` is ``‖∂h_t/∂h_0‖₂`` for
    ``radii[i]``.
    """
    T = positive_int("T", T)
    n_in = positive_int("n_in", n_in)
    n_h = positive_int("n_h", n_h)
    radii = as_real_array("radii", np.atleast_1d(radii), ndim=1)
    if not np.all(np.isfinite(radii) & (radii >= 0)):
        raise ValueError(
            f"every radius must be a non-negative number; got {radii}"
        )
    if not (np.isfinite(input_scale) and input_scale >= 0):
        raise ValueError(
            f"input_scale must be a non-negative number; got {input_scale!r}"
        )
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_h, n_h))
    W_xh = rng.normal(size=(n_h, n_in)) / np.sqrt(n_in)
    X = input_scale * rng.normal(size=(1, T, n_in))
    h0 = 0.1 * input_scale * rng.normal(size=(1, n_h))
    b = 0.1 * input_scale * rng.normal(size=n_h)
    norms = np.empty((radii.size, T))
    for i, rho in enumerate(radii):
        W_hh = scale_to_spectral_radius(W, rho)
        J = state_jacobians(X, h0, W_xh, W_hh, b)
        norms[i] = np.linalg.norm(J, ord=2, axis=(1, 2))
    return norms


# --- gated recurrence: the LSTM and the GRU --------------------------------


def _check_gated(X, h0, W_xh, W_hh, biases, n_gates, c0=None):
    """A gated layer's arguments, as float arrays of consistent shapes.

    ``n_gates`` blocks of ``n_h`` rows are stacked in ``W_xh``, ``W_hh`` and
    each bias in ``biases`` (a dict name -> array): 4 for the LSTM, 3 for
    the GRU.
    """
    X, B, n_in = _check_sequence(X)
    W_hh = as_real_array("W_hh", W_hh, ndim=2)
    rows, n_h = W_hh.shape
    if rows != n_gates * n_h:
        raise ValueError(
            f"W_hh must have shape ({n_gates} n_h, n_h), the {n_gates} "
            f"gates' (n_h, n_h) blocks stacked; got {W_hh.shape}"
        )
    W_xh = as_real_array("W_xh", W_xh, ndim=2)
    if W_xh.shape != (n_gates * n_h, n_in):
        raise ValueError(
            f"W_xh must have shape ({n_gates} n_h, n_in) = "
            f"({n_gates * n_h}, {n_in}): W_hh {W_hh.shape} has n_h = {n_h} "
            f"and X {X.shape} has {n_in} features; got {W_xh.shape}"
        )
    checked = []
    for name, b in biases.items():
        b = as_real_array(name, b, ndim=1)
        if b.shape != (n_gates * n_h,):
            raise ValueError(
                f"{name} must have shape ({n_gates} n_h,) = "
                f"({n_gates * n_h},), one entry per unit of each gate; "
                f"got {b.shape}"
            )
        checked.append(b)
    states = [("h0", h0)] if c0 is None else [("h0", h0), ("c0", c0)]
    for name, s in states:
        s = check_batch(name, s)
        if s.shape != (B, n_h):
            raise ValueError(
                f"{name} must have shape (B, n_h) = ({B}, {n_h}), one state "
                f"per sequence of X {X.shape}; got {s.shape}"
            )
        checked.append(s)
    return X, W_xh, W_hh, checked


def _check_grad(name, g, shape):
    """A gradient sent to the outputs must have their shape."""
    g = as_real_array(name, g)
    if g.shape != shape:
        raise ValueError(
            f"{name} must have the shape of the states, (B, T, n_h) = "
            f"{shape}; got {g.shape}"
        )
    return g


def _lstm_forward(X, h0, c0, W_xh, W_hh, b):
    """The gates (B, T, 4 n_h), in the order i, f, g, o, and H, C."""
    B, T, _ = X.shape
    n_h = W_hh.shape[1]
    dtype = np.result_type(X, h0, c0, W_xh, W_hh, b)
    gates = np.empty((B, T, 4 * n_h), dtype=dtype)
    H = np.empty((B, T, n_h), dtype=dtype)
    C = np.empty_like(H)
    h, c = h0, c0
    for t in range(T):
        A = X[:, t] @ W_xh.T + h @ W_hh.T + b  # pre-activations, 4 blocks
        gate_i, gate_f, gate_g, gate_o = np.split(A, 4, axis=1)
        gate_i, gate_f, gate_o = (
            sigmoid(gate_i),
            sigmoid(gate_f),
            sigmoid(gate_o),
        )
        gate_g = np.tanh(gate_g)
        c = C[:, t] = gate_f * c + gate_i * gate_g
        h = H[:, t] = gate_o * np.tanh(c)
        gates[:, t] = np.concatenate([gate_i, gate_f, gate_g, gate_o], 1)
    return gates, H, C


def lstm(X, h0, c0, W_xh, W_hh, b) -> tuple[np.ndarray, np.ndarray]:
    """A long short-term memory layer, PyTorch's ``nn.LSTM`` formulas.

    Implements eq. ``gr-lstm-forward``: per step, with ``σ`` the logistic
    function and the four gates' pre-activations stacked in the order
    i, f, g, o,

        [a_i, a_f, a_g, a_o] = x_t W_xhᵀ + h_{t−1} W_hhᵀ + b,
        i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o),
        c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t).

    X: (B, T, n_in).  h0, c0: (B, n_h), the initial hidden and cell states.
    W_xh: (4 n_h, n_in).  W_hh: (4 n_h, n_h).  b: (4 n_h,), one bias
    (PyTorch's ``b_ih + b_hh``). Returns ``(H, C)``, the hidden and cell
    states of steps 1 … T, each (B, T, n_h), in the arguments' floating
    dtype (float32 stays float32). The same as
    ``torch.nn.LSTM(batch_first=True)`` with one layer.
    """
    X, W_xh, W_hh, (b, h0, c0) = _check_gated(
        X, h0, W_xh, W_hh, {"b": b}, 4, c0
    )
    _, H, C = _lstm_forward(X, h0, c0, W_xh, W_hh, b)
    return H, C


def lstm_vjp(
    dH, X, h0, c0, W_xh, W_hh, b, dC=None
) -> tuple[np.ndarray, ...]:
    """Backpropagation through time for :func:`lstm`.

    Implements eqs. ``gr-lstm-cell-grad``, ``gr-lstm-gate-grads``.

    dH: (B, T, n_h), ∂E/∂H.  dC: (B, T, n_h), ∂E/∂C, or ``None`` for a loss
    that reads only H.  The rest as for :func:`lstm`. Returns ``(dX, dh0,
    dc0, dW_xh, dW_hh, db)`` with the shapes of the inputs. Going back in
    time, two gradients are carried: ``dh`` at the hidden state and ``dc``
    at the cell state. Per step,

        dc ← dc + dh ⊙ o ⊙ (1 − tanh²(c_t)),
        d(i, f, g, o) = (dc ⊙ g, dc ⊙ c_{t−1}, dc ⊙ i, dh ⊙ tanh(c_t)),

    each through its own activation's slope to the pre-activations ``dA``
    (B, 4 n_h); then ``dc_{t−1} = dc ⊙ f`` (the additive path) and
    ``dh_{t−1} = dA W_hh``, and the tied weights collect ``dAᵀ X_t``,
    ``dAᵀ H_{t−1}`` and ``dAᵀ 1``.
    """
    X, W_xh, W_hh, (b, h0, c0) = _check_gated(
        X, h0, W_xh, W_hh, {"b": b}, 4, c0
    )
    gates, H, C = _lstm_forward(X, h0, c0, W_xh, W_hh, b)
    dH = _check_grad("dH", dH, H.shape)
    dC = np.zeros_like(dH) if dC is None else _check_grad("dC", dC, C.shape)
    T = X.shape[1]
    dtype = np.result_type(dH, dC, H)  # float32 in, float32 out
    dX = np.empty_like(X, dtype=dtype)
    dW_xh = np.zeros_like(W_xh, dtype=dtype)
    dW_hh = np.zeros_like(W_hh, dtype=dtype)
    db = np.zeros_like(b, dtype=dtype)
    dh = np.zeros_like(h0, dtype=dtype)  # from the future: dA_{t+1} W_hh
    dc = np.zeros_like(c0, dtype=dtype)  # from the future: dc_{t+1} ⊙ f
    for t in reversed(range(T)):
        h_prev = H[:, t - 1] if t > 0 else h0
        c_prev = C[:, t - 1] if t > 0 else c0
        gate_i, gate_f, gate_g, gate_o = np.split(gates[:, t], 4, axis=1)
        tanh_c = np.tanh(C[:, t])
        dh = dH[:, t] + dh
        dc = dC[:, t] + dc + dh * gate_o * (1 - tanh_c**2)
        dA = np.concatenate(
            [
                dc * gate_g * gate_i * (1 - gate_i),
                dc * c_prev * gate_f * (1 - gate_f),
                dc * gate_i * (1 - gate_g**2),
                dh * tanh_c * gate_o * (1 - gate_o),
            ],
            axis=1,
        )
        dc = dc * gate_f  # the cell path: ∂c_t/∂c_{t−1} = diag(f)
        dX[:, t], dW_xh_t, db_t = linear_vjp(dA, X[:, t], W_xh)
        dh, dW_hh_t, _ = linear_vjp(dA, h_prev, W_hh)
        dW_xh += dW_xh_t  # tied weights: one term per step, summed
        dW_hh += dW_hh_t
        db += db_t
    return dX, dh, dc, dW_xh, dW_hh, db


def _gru_forward(X, h0, W_xh, W_hh, b_xh, b_hh):
    """Gates r, z, n (B, T, 3 n_h), ``h W_hnᵀ + b_hn`` (B, T, n_h), and H."""
    B, T, _ = X.shape
    n_h = W_hh.shape[1]
    dtype = np.result_type(X, h0, W_xh, W_hh, b_xh, b_hh)
    gates = np.empty((B, T, 3 * n_h), dtype=dtype)
    A_hn = np.empty((B, T, n_h), dtype=dtype)
    H = np.empty_like(A_hn)
    h = h0
    for t in range(T):
        A_x = X[:, t] @ W_xh.T + b_xh  # (B, 3 n_h): r, z, n blocks
        A_h = h @ W_hh.T + b_hh
        gate_r = sigmoid(A_x[:, :n_h] + A_h[:, :n_h])
        gate_z = sigmoid(A_x[:, n_h : 2 * n_h] + A_h[:, n_h : 2 * n_h])
        A_hn[:, t] = A_h[:, 2 * n_h :]
        gate_n = np.tanh(A_x[:, 2 * n_h :] + gate_r * A_hn[:, t])
        h = H[:, t] = (1 - gate_z) * gate_n + gate_z * h
        gates[:, t] = np.concatenate([gate_r, gate_z, gate_n], axis=1)
    return gates, A_hn, H


def gru(X, h0, W_xh, W_hh, b_xh, b_hh) -> np.ndarray:
    """A gated recurrent unit layer, PyTorch's ``nn.GRU`` formulas.

    Implements eq. ``gr-gru-forward``: per step, with the three gates'
    blocks stacked in the order r, z, n,

        r = σ(x_t W_irᵀ + b_ir + h_{t−1} W_hrᵀ + b_hr),
        z = σ(x_t W_izᵀ + b_iz + h_{t−1} W_hzᵀ + b_hz),
        n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t−1} W_hnᵀ + b_hn)),
        h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}.

    X: (B, T, n_in).  h0: (B, n_h).  W_xh: (3 n_h, n_in), the blocks
    W_ir, W_iz, W_in.  W_hh: (3 n_h, n_h).  b_xh, b_hh: (3 n_h,) each; two
    biases, because b_hn sits inside the reset gate's product and does not
    merge with b_in. Returns H: (B, T, n_h), the states of steps 1 … T, in
    the arguments' floating dtype. The same as
    ``torch.nn.GRU(batch_first=True)`` with one layer.
    """
    X, W_xh, W_hh, (b_xh, b_hh, h0) = _check_gated(
        X, h0, W_xh, W_hh, {"b_xh": b_xh, "b_hh": b_hh}, 3
    )
    return _gru_forward(X, h0, W_xh, W_hh, b_xh, b_hh)[2]


def gru_vjp(dH, X, h0, W_xh, W_hh, b_xh, b_hh) -> tuple[np.ndarray, ...]:
    """Backpropagation through time for :func:`gru`.

    Implements eq. ``gr-gru-grads``.

    dH: (B, T, n_h), ∂E/∂H; the rest as for :func:`gru`. Returns ``(dX,
    dh0, dW_xh, dW_hh, db_xh, db_hh)`` with the shapes of the inputs. Per
    step, from ``dh`` = ∂E/∂h_t (own output plus the future):

        dn = dh ⊙ (1 − z),  dz = dh ⊙ (h_{t−1} − n),
        dA_n = dn ⊙ (1 − n²),  dr = dA_n ⊙ (h_{t−1} W_hnᵀ + b_hn),

    the input side's pre-activations get ``dA_x = [dr ⊙ r(1 − r),
    dz ⊙ z(1 − z), dA_n]`` and the state side's ``dA_h``, the same but
    ``r ⊙ dA_n`` in the last block; then ``dh_{t−1} = dh ⊙ z + dA_h W_hh``.
    """
    X, W_xh, W_hh, (b_xh, b_hh, h0) = _check_gated(
        X, h0, W_xh, W_hh, {"b_xh": b_xh, "b_hh": b_hh}, 3
    )
    gates, A_hn, H = _gru_forward(X, h0, W_xh, W_hh, b_xh, b_hh)
    dH = _check_grad("dH", dH, H.shape)
    T = X.shape[1]
    dtype = np.result_type(dH, H)
    dX = np.empty_like(X, dtype=dtype)
    dW_xh = np.zeros_like(W_xh, dtype=dtype)
    dW_hh = np.zeros_like(W_hh, dtype=dtype)
    db_xh = np.zeros_like(b_xh, dtype=dtype)
    db_hh = np.zeros_like(b_hh, dtype=dtype)
    dh = np.zeros_like(h0, dtype=dtype)  # from the future
    for t in reversed(range(T)):
        h_prev = H[:, t - 1] if t > 0 else h0
        gate_r, gate_z, gate_n = np.split(gates[:, t], 3, axis=1)
        dh = dH[:, t] + dh
        dA_n = dh * (1 - gate_z) * (1 - gate_n**2)
        dA_r = dA_n * A_hn[:, t] * gate_r * (1 - gate_r)
        dA_z = dh * (h_prev - gate_n) * gate_z * (1 - gate_z)
        dA_x = np.concatenate([dA_r, dA_z, dA_n], axis=1)
        dA_h = np.concatenate([dA_r, dA_z, gate_r * dA_n], axis=1)
        dX[:, t], dW_xh_t, db_xh_t = linear_vjp(dA_x, X[:, t], W_xh)
        dh_prev, dW_hh_t, db_hh_t = linear_vjp(dA_h, h_prev, W_hh)
        dh = dh * gate_z + dh_prev  # the direct path and the gates'
        dW_xh += dW_xh_t
        dW_hh += dW_hh_t
        db_xh += db_xh_t
        db_hh += db_hh_t
    return dX, dh, dW_xh, dW_hh, db_xh, db_hh


def first_step_gradient_norms(
    kind: str,
    lengths: Sequence[int],
    n_in: int = 4,
    n_h: int = 16,
    keep_bias: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """``‖∂E/∂x_1‖`` for ``E = ⟨u, h_T⟩``, one sequence, for each length T.

    kind: ``"rnn"``, ``"lstm"`` or ``"gru"``.  lengths: (m,) the T's, each
    ≥ 1.  n_in, n_h: the sizes.  keep_bias: the bias of the gate that keeps
    the old state, the LSTM's forget gate ``f`` or the GRU's update gate
    ``z`` (ignored for the RNN); every other bias is 0. From ``seed``, the
    same way for the three kinds: each weight entry is drawn from
    N(0, 1/fan-in) (``1/n_in`` in ``W_xh``, ``1/n_h`` in ``W_hh``), the
    inputs from N(0, 1), the unit direction ``u`` uniformly; ``h0`` and
    ``c0`` are 0. One call to the kind's VJP does all the lengths: a batch
    of copies of the sequence, copy ``j`` with ``u`` at step
    ``lengths[j]`` and 0 elsewhere. Returns (m,), the norms.
    """
    blocks = {"rnn": 1, "lstm": 4, "gru": 3}
    if kind not in blocks:
        raise ValueError(
            f"kind must be 'rnn', 'lstm' or 'gru'; got {kind!r}"
        )
    lengths = [positive_int("each length", T) for T in lengths]
    if not lengths:
        raise ValueError("lengths must hold at least one T; got none")
    n_in, n_h = positive_int("n_in", n_in), positive_int("n_h", n_h)
    if not np.isfinite(keep_bias):
        raise ValueError(f"keep_bias must be a number; got {keep_bias!r}")
    rng = np.random.default_rng(seed)
    k, m, T_max = blocks[kind], len(lengths), max(lengths)
    W_xh = rng.normal(size=(k * n_h, n_in)) / np.sqrt(n_in)
    W_hh = rng.normal(size=(k * n_h, n_h)) / np.sqrt(n_h)
    X = np.repeat(rng.normal(size=(1, T_max, n_in)), m, axis=0)
    u = rng.normal(size=n_h)
    dH = np.zeros((m, T_max, n_h))
    dH[np.arange(m), np.array(lengths) - 1] = u / np.linalg.norm(u)
    h0, b = np.zeros((m, n_h)), np.zeros(k * n_h)
    if kind == "rnn":
        dX = rnn_vjp(dH, X, h0, W_xh, W_hh, b)[0]
    elif kind == "lstm":
        b[n_h : 2 * n_h] = keep_bias  # i, [f], g, o
        dX = lstm_vjp(dH, X, h0, h0, W_xh, W_hh, b)[0]
    else:
        b[n_h : 2 * n_h] = keep_bias  # r, [z], n
        dX = gru_vjp(dH, X, h0, W_xh, W_hh, b, np.zeros(k * n_h))[0]
    return np.linalg.norm(dX[:, 0], axis=1)
