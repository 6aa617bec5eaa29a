"""A recurrent layer and backpropagation through time (BPTT).

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
from backprop.layers import linear_vjp, tanh_vjp

__all__ = [
    "rnn",
    "rnn_vjp",
    "scale_to_spectral_radius",
    "state_jacobians",
    "gradient_norms_by_radius",
]


def _check_rnn(X, h0, W_xh, W_hh, b):
    """The layer's five arguments, as float arrays of consistent shapes."""
    X = as_real_array("X", X)
    if X.ndim != 3:
        raise ValueError(
            f"X must be 3-D (batch, time, features); got {X.ndim}-D shape "
            f"{X.shape}"
        )
    B, _, n_in = X.shape
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
