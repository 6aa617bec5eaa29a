"""Losses and output layers against central differences, in float64, batch 1 included."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st
from measures import fd_error

import backprop as bp
from backprop import losses

dims = st.integers(min_value=1, max_value=5)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@given(seed=seeds, B=dims, n=dims)
def test_mse_vjp(seed, B, n):
    rng = np.random.default_rng(seed)
    P, Y = rng.normal(size=(B, n)), rng.normal(size=(B, n))
    num = bp.numerical_gradient(lambda X: losses.mse(X, Y), P)
    assert bp.relative_error(losses.mse_vjp(1.0, P, Y), num) <= TOL
    # The mean is over all B·n entries, as torch.nn.MSELoss(reduction="mean").
    assert losses.mse(P, Y) == pytest.approx(np.sum((P - Y) ** 2) / (B * n), rel=1e-12)


@given(seed=seeds, B=dims, n=dims)
def test_sigmoid_binary_cross_entropy_vjp(seed, B, n):
    rng = np.random.default_rng(seed)
    Z, T = rng.normal(scale=3, size=(B, n)), rng.uniform(size=(B, n))
    dZ = losses.sigmoid_binary_cross_entropy_vjp(1.0, Z, T)
    E = lambda X: losses.sigmoid_binary_cross_entropy(X, T)  # noqa: E731
    # E = mean(log(1 + e^z) − t z): terms of size |z| that cancel when σ(z) ≈ t
    terms = np.mean(np.logaddexp(0.0, Z) + np.abs(T * Z))
    assert fd_error(dZ, E, Z, terms) <= TOL
    s = 1 / (1 + np.exp(-Z))
    naive = np.mean(-T * np.log(s) - (1 - T) * np.log(1 - s))
    assert losses.sigmoid_binary_cross_entropy(Z, T) == pytest.approx(naive, rel=1e-9)


@given(seed=seeds, B=dims, K=st.integers(min_value=2, max_value=5))
def test_softmax_vjp_and_jacobian(seed, B, K):
    rng = np.random.default_rng(seed)
    Z, G = rng.normal(size=(B, K)), rng.normal(size=(B, K))
    # A row of softmax sums to 1: a constant added to a row of G moves E and not its
    # gradient. Centred rows keep E, and the round-off of its differences, at the
    # scale of the gradient (which is small when a row's entries are close).
    G -= G.mean(axis=1, keepdims=True)
    num = bp.numerical_gradient(lambda X: np.sum(G * losses.softmax(X)), Z)
    assert bp.relative_error(losses.softmax_vjp(G, Z), num) <= TOL
    # One row's Jacobian is diag(s) − s sᵀ: dense, symmetric, rows summing to zero.
    s = losses.softmax(Z[:1])[0]
    J = bp.numerical_jacobian(lambda x: losses.softmax(x[None, :])[0], Z[0])
    assert bp.relative_error(J, np.diag(s) - np.outer(s, s)) <= TOL


@given(seed=seeds, B=dims, K=st.integers(min_value=1, max_value=5))
def test_softmax_cross_entropy_and_its_gradient(seed, B, K):
    rng = np.random.default_rng(seed)
    Z = rng.normal(scale=2, size=(B, K))
    y = rng.integers(0, K, size=B)
    loss, dZ = losses.softmax_cross_entropy(Z, y)
    E = lambda X: losses.softmax_cross_entropy(X, y)[0]  # noqa: E731
    # E = mean(logsumexp(z) − z_y): terms that cancel when softmax(z)_y ≈ 1
    terms = np.mean(np.abs(losses.logsumexp(Z)) + np.abs(Z[np.arange(B), y]))
    assert fd_error(dZ, E, Z, terms) <= TOL
    onehot = np.eye(K)[y]
    np.testing.assert_allclose(
        dZ, (losses.softmax(Z) - onehot) / B, rtol=1e-12, atol=1e-15
    )
    naive = -np.mean(np.log(np.exp(Z[np.arange(B), y]) / np.exp(Z).sum(axis=1)))
    assert loss == pytest.approx(naive, rel=1e-10)


def test_large_logits_stay_finite():
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]])
    y = np.array([1, 1])
    loss, dZ = losses.softmax_cross_entropy(Z, y)
    assert np.isfinite(loss) and np.all(np.isfinite(dZ))
    assert loss == pytest.approx(
        1e4, rel=1e-12
    )  # row 0: logsumexp = 1e4, target logit -1e4 → 2e4; row 1: 0
    assert np.all(np.isfinite(losses.softmax(Z)))
    assert np.isfinite(losses.sigmoid_binary_cross_entropy(Z, np.ones_like(Z)))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        naive = -np.log(np.exp(Z[0, 1]) / np.exp(Z[0]).sum())
    assert not np.isfinite(naive)  # what the stable form avoids


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: losses.softmax_cross_entropy(np.zeros((2, 3)), [0, 3]),
            r"labels must lie in 0 … 2 for 3 classes",
        ),
        (
            lambda: losses.softmax_cross_entropy(np.zeros((2, 3)), [-1, 0]),
            r"labels must lie in 0 … 2",
        ),
        (
            lambda: losses.softmax_cross_entropy(np.zeros((2, 3)), [0]),
            r"logits have 2 rows, labels have 1",
        ),
        (
            lambda: losses.softmax_cross_entropy(np.zeros((2, 3)), [0.5, 1]),
            r"labels must be integer classes",
        ),
        (
            lambda: losses.softmax_cross_entropy(np.zeros((0, 3)), []),
            r"logits must not be empty",
        ),
        (
            lambda: losses.softmax_cross_entropy(np.array([[np.nan, 0.0]]), [0]),
            r"logits must be finite",
        ),
        (
            lambda: losses.mse(np.zeros((2, 3)), np.zeros((3, 2))),
            r"Y must have the shape of P, \(2, 3\); got \(3, 2\)",
        ),
        (
            lambda: losses.mse_vjp(np.ones(2), np.zeros(2), np.zeros(2)),
            r"g must be a real scalar",
        ),
        (
            lambda: losses.sigmoid_binary_cross_entropy(
                np.zeros(2), np.array([0.0, 2.0])
            ),
            r"must lie in \[0, 1\]",
        ),
        (
            lambda: losses.softmax_vjp(np.zeros((2, 2)), np.zeros((2, 3))),
            r"g must have the shape of Z",
        ),
    ],
)
def test_loss_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()


LARGE_LOGITS = np.array(
    [
        [1e3, 1e3 - 0.5, 1e3 - 3.0, -1e3],  # about 1e3: three classes share the mass
        [1e3 - 20.0, 1e3, 1e3 - 1.0, 1e3 - 1.0],
        [1e4, -1e4, 0.0, 1e4 - 1.0],  # ±1e4: exp(±1e4) overflows or vanishes
        [-1e4, 1e4, 5e3, -1e4],  # a winner by 5e3: the others are 0 in float64
        [1e4, 1e4, 1e4, 1e4],  # a tie at 1e4
    ]
)
LARGE_LABELS = np.array([1, 1, 0, 1, 2])


def mp_softmax_cross_entropy(Z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss and (softmax − onehot)/B in 50-digit arithmetic, rounded once at the end."""
    B, K = Z.shape
    loss, dZ = mpmath.mpf(0), np.zeros((B, K))
    with mpmath.workdps(50):
        for r in range(B):
            z = [mpmath.mpf(float(v)) for v in Z[r]]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
            loss += (lse - z[y[r]]) / B
            for k in range(K):
                dZ[r, k] = float((mpmath.exp(z[k] - lse) - (k == y[r])) / B)
        return float(loss), dZ


def test_large_logits_give_the_exact_gradient():
    """dZ = (softmax(Z) − onehot(y))/B against a 50-digit reference, entry by entry.

    An entry off the label is p/B, with p from exp of a shifted logit: relative error
    of a few ε times the shift (at most 20 here where p is not 0; an entry whose p
    is below the smallest double must come out 0, not NaN or a denormal). The label
    entry is (p − 1)/B, which cancels when p ≈ 1: its error is measured at the scale
    1/B of the entries. The loss adds logits of size 1e4, so it is measured at ε·max|Z|.
    """
    Z, y = LARGE_LOGITS, LARGE_LABELS
    B, K = Z.shape
    loss, dZ = losses.softmax_cross_entropy(Z, y)
    loss_ref, dZ_ref = mp_softmax_cross_entropy(Z, y)
    assert np.isfinite(loss) and np.all(np.isfinite(dZ))
    eps = np.finfo(np.float64).eps
    off = np.ones_like(Z, dtype=bool)
    off[np.arange(B), y] = False
    assert np.all(np.abs(dZ - dZ_ref)[off] <= 100 * eps * np.abs(dZ_ref)[off])
    assert np.all(np.abs(dZ - dZ_ref)[~off] <= 2 * eps / B)
    assert np.all(np.abs(dZ.sum(axis=1)) <= K * eps / B)
    assert abs(loss - loss_ref) <= 4 * eps * np.max(np.abs(Z))
