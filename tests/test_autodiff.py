"""The autodiff engine: every rule in its table, broadcasting, fan-out, depth, refusals.

Each primitive is checked two ways at random shapes up to rank 4, with some of its
inputs constant:

- its VJP (through ``backward``) against central differences of ``E = ⟨G, f(x)⟩``;
- the dot-product (adjoint) test between the two modes of the same engine:
  ``⟨J v, G⟩`` from forward mode equals ``Σ_i ⟨v_i, ∂E/∂x_i⟩`` from reverse mode,
  in float64 to round-off, for every rule.

Then the engine, given the network of the book, must reproduce the gradients of
``MLP.loss_and_grads`` to 1e-12.
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

seeds = st.integers(min_value=0, max_value=2**32 - 1)
shapes = st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=4).map(
    tuple
)
ROUNDOFF = 1e-10


def away_from_zero(rng, shape, low=0.3):
    """Entries of size ≥ ``low`` and random sign: safe for 1/x, kinks and logs of |x|."""
    return rng.uniform(low, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def smaller_shape(rng, shape):
    """A shape that broadcasts to ``shape``: drop leading axes, shrink some to 1."""
    tail = shape[rng.integers(0, len(shape) + 1) :]
    return tuple(1 if rng.random() < 0.4 else n for n in tail)


def permuted(axes):
    return lambda x: x.transpose(*axes)


def picked(index):
    return lambda x: x[index]


def scattered(index, shape):
    return lambda x: ad.scatter_add(x, index, shape)


def looked_up(ids):
    return lambda E: ad.embedding(ids, E)


def dropped(mask, p):
    return lambda X: ad.dropout(X, mask, p)


def cross_entropy(labels):
    return lambda z: ad.softmax_cross_entropy(z, labels)


# Each case: rng, shape -> (function of Tensors, list of input arrays).
CASES = {
    "add": lambda r, s: (ad.add, [r.normal(size=s), r.normal(size=smaller_shape(r, s))]),
    "sub": lambda r, s: (ad.sub, [r.normal(size=smaller_shape(r, s)), r.normal(size=s)]),
    "mul": lambda r, s: (ad.mul, [r.normal(size=s), r.normal(size=smaller_shape(r, s))]),
    "div": lambda r, s: (ad.div, [r.normal(size=s), away_from_zero(r, smaller_shape(r, s))]),
    "pow": lambda r, s: (ad.power, [positive(r, s), r.normal(size=smaller_shape(r, s))]),
    "pow_const": lambda r, s: (lambda x: x**2.5, [positive(r, s)]),
    "matmul": lambda r, s: (ad.matmul, [r.normal(size=s[:-1] + (2,)), r.normal(size=(2, 3))]),
    "matmul_stacked": lambda r, s: (ad.matmul, [r.normal(size=(2,)), r.normal(size=s + (2, 3))]),
    "matmul_vector": lambda r, s: (ad.matmul, [r.normal(size=s[-2:]), r.normal(size=s[-1:])]),
    "exp": lambda r, s: (ad.exp, [r.normal(size=s)]),
    "log": lambda r, s: (ad.log, [positive(r, s)]),
    "tanh": lambda r, s: (ad.tanh, [r.normal(size=s)]),
    "sigmoid": lambda r, s: (ad.sigmoid, [r.normal(size=s)]),
    "relu": lambda r, s: (ad.relu, [away_from_zero(r, s)]),
    "gelu": lambda r, s: (ad.gelu, [3 * r.normal(size=s)]),
    "sum_all": lambda r, s: (ad.sum, [r.normal(size=s)]),
    "sum_axis": lambda r, s: (lambda x: x.sum(axis=-1, keepdims=True), [r.normal(size=s)]),
    "sum_axes": lambda r, s: (lambda x: ad.sum(x, axis=tuple(range(0, x.ndim, 2))), [r.normal(size=s)]),
    "mean_all": lambda r, s: (ad.mean, [r.normal(size=s)]),
    "mean_axis": lambda r, s: (lambda x: x.mean(axis=0), [r.normal(size=s)]),
    "reshape": lambda r, s: (lambda x: x.reshape(-1), [r.normal(size=s)]),
    "reshape_back": lambda r, s: (lambda x: x.reshape(s[::-1]), [r.normal(size=s)]),
    "transpose": lambda r, s: (permuted(r.permutation(len(s))), [r.normal(size=s)]),
    "T": lambda r, s: (lambda x: x.T, [r.normal(size=s)]),
    "getitem": lambda r, s: (picked(r.integers(0, s[0], size=5)), [r.normal(size=s)]),
    "getitem_slice": lambda r, s: (lambda x: x[..., ::2], [r.normal(size=s)]),
    "astype": lambda r, s: (lambda x: ad.astype(x, np.float64) * 2.0, [r.normal(size=s)]),
    "scatter_add": lambda r, s: (scattered(r.integers(0, s[0], size=5), (s[0] + 1,) + s[1:]), [r.normal(size=(5,) + s[1:])]),
    "einsum_batched": lambda r, s: (lambda a, b: ad.einsum("bij,bjk->bik", a, b), [r.normal(size=(s[0], 2, 3)), r.normal(size=(s[0], 3, s[-1]))]),
    "einsum_trace": lambda r, s: (lambda a: ad.einsum("ii", a), [r.normal(size=(s[0], s[0]))]),
    "einsum_diag": lambda r, s: (lambda a: ad.einsum("ii->i", a), [r.normal(size=(s[-1], s[-1]))]),
    "einsum_outer": lambda r, s: (lambda a, b: ad.einsum("i,j->ij", a, b), [r.normal(size=s[:1]), r.normal(size=s[-1:])]),
    "einsum_ellipsis": lambda r, s: (lambda a, b: ad.einsum("...ij,jk->...ik", a, b), [r.normal(size=s + (2,)), r.normal(size=(2, 3))]),
    "einsum_summed_away": lambda r, s: (lambda a, b: ad.einsum("ij,k->i", a, b), [r.normal(size=(3, 2)), r.normal(size=s[:1])]),
    "einsum_permute": lambda r, s: (lambda a: ad.einsum("abcd->dbca", a), [r.normal(size=(s + (2, 2, 2, 2))[:4])]),
    "softmax": lambda r, s: (ad.softmax, [r.normal(size=s)]),
    "softmax_cross_entropy": lambda r, s: (cross_entropy(r.integers(0, 3, size=s[0])), [r.normal(size=(s[0], 3))]),
    "mse": lambda r, s: (ad.mse, [r.normal(size=s), r.normal(size=s)]),
    "mse_broadcast": lambda r, s: (ad.mse, [r.normal(size=smaller_shape(r, s)), r.normal(size=s)]),
    "pow_negative_base": lambda r, s: (lambda x: x**3 + x**0 + x**1, [r.normal(size=s)]),
    "linear": lambda r, s: (ad.linear, [r.normal(size=(s[0], 3)), r.normal(size=(2, 3)), r.normal(size=2)]),
    "layer_norm": lambda r, s: (ad.layer_norm, [r.normal(size=s[:-1] + (s[-1] + 2,)), r.normal(size=s[-1] + 2), r.normal(size=s[-1] + 2)]),
    "batch_norm": lambda r, s: (ad.batch_norm, [r.normal(size=(s[0] + 2, s[-1])), r.normal(size=s[-1]), r.normal(size=s[-1])]),
    "conv2d": lambda r, s: (lambda X, W, b: ad.conv2d(X, W, b, stride=2, padding=1), [r.normal(size=(s[0], 2, 5, 4)), r.normal(size=(3, 2, 2, 3)), r.normal(size=3)]),
    "conv2d_no_bias": lambda r, s: (ad.conv2d, [r.normal(size=(s[0], s[-1], 3, 3)), r.normal(size=(2, s[-1], 2, 2))]),
    "rnn": lambda r, s: (ad.rnn, [r.normal(size=(s[0], s[-1] + 1, 2)), r.normal(size=(s[0], 3)), r.normal(size=(3, 2)), 0.5 * r.normal(size=(3, 3)), r.normal(size=3)]),
    "lstm": lambda r, s: (lambda *a: ad.add(*ad.lstm(*a)), [r.normal(size=(s[0], s[-1] + 1, 2)), r.normal(size=(s[0], 3)), r.normal(size=(s[0], 3)), 0.7 * r.normal(size=(12, 2)), 0.5 * r.normal(size=(12, 3)), r.normal(size=12)]),
    "lstm_cell": lambda r, s: (lambda *a: ad.lstm(*a)[1], [r.normal(size=(s[0], 2, 3)), r.normal(size=(s[0], 2)), r.normal(size=(s[0], 2)), r.normal(size=(8, 3)), r.normal(size=(8, 2)), r.normal(size=8)]),
    "gru": lambda r, s: (ad.gru, [r.normal(size=(s[0], s[-1] + 1, 2)), r.normal(size=(s[0], 3)), 0.7 * r.normal(size=(9, 2)), 0.5 * r.normal(size=(9, 3)), r.normal(size=9), r.normal(size=9)]),
    "attention": lambda r, s: (ad.attention, [r.normal(size=(s[0], 3, 2)), r.normal(size=(s[0], s[-1] + 1, 2)), r.normal(size=(s[0], s[-1] + 1, 3))]),
    "attention_heads": lambda r, s: (ad.attention, [r.normal(size=(s[0], 2, 3, 2)), r.normal(size=(1, 1, s[-1] + 1, 2)), r.normal(size=(s[0], 1, s[-1] + 1, 3))]),
    "attention_causal": lambda r, s: (lambda q, k, v: ad.attention(q, k, v, causal=True), [r.normal(size=(s[0], 3, 2)), r.normal(size=(s[0], 4, 2)), r.normal(size=(s[0], 4, 3))]),
    "embedding": lambda r, s: (looked_up(r.integers(0, 4, size=s)), [r.normal(size=(4, 3))]),
    "max_pool2d": lambda r, s: (lambda X: ad.max_pool2d(X, 3, stride=1, padding=1), [0.1 * r.permutation(s[0] * 40).reshape(s[0], 2, 4, 5)]),
    "avg_pool2d": lambda r, s: (lambda X: ad.avg_pool2d(X, (2, 3), padding=(1, 1)), [r.normal(size=(s[0], s[-1], 4, 5))]),
    "dropout": lambda r, s: (dropped(bp.dropout_mask(s, 0.3, r), 0.3), [r.normal(size=s)]),
    "solve": lambda r, s: (ad.solve, [r.normal(size=(s[0] + 1,) * 2) + 3 * np.eye(s[0] + 1), r.normal(size=(s[0] + 1, s[-1]))]),
    "solve_vector": lambda r, s: (ad.solve, [r.normal(size=(s[-1], s[-1])) + 3 * np.eye(s[-1]), r.normal(size=s[-1])]),
}  # fmt: skip


def engine_gradients(f, xs, G, constant=()):
    """∂E/∂x_i for ``E = ⟨G, f(x)⟩``, by the engine's reverse mode.

    The inputs whose index is in ``constant`` are given with ``requires_grad=False``.
    """
    tensors = [ad.Tensor(x, requires_grad=i not in constant) for i, x in enumerate(xs)]
    out = f(*tensors)
    out.backward(G)
    return out.value, [t.grad for t in tensors]


@pytest.mark.parametrize("case", sorted(CASES))
@given(seed=seeds, shape=shapes)
def test_rule_against_finite_differences_and_adjoint(case, seed, shape):
    rng = np.random.default_rng(seed)
    f, xs = CASES[case](rng, shape)
    value = f(*[ad.Tensor(x) for x in xs]).value
    G = rng.normal(size=value.shape)
    # some inputs, never all, are constants: no gradient is formed for them
    keep = rng.integers(len(xs))
    constant = {i for i in range(len(xs)) if rng.random() < 0.3 and i != keep}
    _, grads = engine_gradients(f, xs, G, constant)
    # central differences cannot resolve a gradient below their round-off floor
    terms = float(np.sum(np.abs(G * value)))
    for i, x in enumerate(xs):
        if i in constant:
            assert grads[i] is None
            continue
        assert grads[i].shape == x.shape

        def E(xi, i=i):
            args = [ad.Tensor(xi if j == i else xj) for j, xj in enumerate(xs)]
            return float(np.sum(G * f(*args).value))

        assert fd_error(grads[i], E, x, terms) <= TOL, i
    # forward mode against reverse mode, for every rule: ⟨J v, G⟩ = Σ ⟨v_i, Jᵢᵀ G⟩,
    # the constants held fixed (tangent None)
    vs = [None if i in constant else rng.normal(size=x.shape) for i, x in enumerate(xs)]
    rhs = sum(float(np.sum(v * g)) for v, g in zip(vs, grads) if v is not None)
    _, Jv = ad.jvp(f, xs, vs)
    lhs = float(np.sum(Jv * G))
    assert abs(lhs - rhs) <= ROUNDOFF * max(1.0, abs(lhs), abs(rhs))


def test_every_rule_is_exercised():
    """Each primitive of the table is reached by at least one case above."""
    reached = set()
    for make in CASES.values():
        f, xs = make(np.random.default_rng(0), (2, 2))
        out = f(*[ad.Tensor(x) for x in xs])
        stack = [out]
        while stack:
            node = stack.pop()
            reached.add(node._op)
            stack.extend(node._parents)
    assert set(ad.RULES) <= reached, sorted(set(ad.RULES) - reached)


def test_every_rule_has_a_jvp():
    """So the adjoint test above covers every rule, the fused ops included."""
    assert set(ad.JVP_RULES) == set(ad.RULES)


# --- broadcasting: summed back once, by the engine ------------------------------------


@pytest.mark.parametrize(
    ("big", "small"),
    [((4, 3), (3,)), ((4, 3), (1, 3)), ((4, 3), (4, 1)), ((2, 4, 3), (4, 1)), ((2, 1, 3), (5, 1))],
)  # fmt: skip
def test_broadcast_gradient_is_summed_over_the_copies(big, small, rng):
    x, y = ad.Tensor(rng.normal(size=big)), ad.Tensor(rng.normal(size=small))
    G = rng.normal(size=np.broadcast_shapes(big, small))
    (x * y).backward(G)
    assert y.grad.shape == small and x.grad.shape == big
    np.testing.assert_allclose(y.grad, bp.broadcasting.unbroadcast(G * x.value, small))
    np.testing.assert_allclose(x.grad, bp.broadcasting.unbroadcast(G * y.value, big))


def test_bias_gradient_is_the_column_sum(rng):
    A, W, b = rng.normal(size=(5, 4)), rng.normal(size=(3, 4)), rng.normal(size=3)
    bt = ad.Tensor(b)
    G = rng.normal(size=(5, 3))
    (ad.Tensor(A) @ ad.Tensor(W).T + bt).backward(G)
    np.testing.assert_allclose(bt.grad, G.sum(axis=0), rtol=1e-14)


def test_scalar_tensor_broadcast_against_an_array(rng):
    s, x = ad.Tensor(2.0), ad.Tensor(rng.normal(size=(3, 4)))
    (s * x).sum().backward()
    assert s.grad.shape == ()
    np.testing.assert_allclose(s.grad, x.value.sum())


# --- fan-out: a tensor used twice gets the sum -----------------------------------------


def test_reuse_adds_the_gradients(rng):
    x = ad.Tensor(rng.normal(size=(3, 2)))
    y = (x * x + ad.tanh(x) + x).sum()
    y.backward()
    expected = 2 * x.value + (1 - np.tanh(x.value) ** 2) + 1
    np.testing.assert_allclose(x.grad, expected, rtol=1e-13)


def test_diamond_graph(rng):
    """x feeds a and b, both feed c: the gradient reaches x along both paths."""
    x = ad.Tensor(rng.normal(size=4))
    a, b = ad.exp(x), x * 3.0
    (a * b).sum().backward()
    np.testing.assert_allclose(
        x.grad, np.exp(x.value) * 3 * x.value + np.exp(x.value) * 3, rtol=1e-13
    )


def test_same_tensor_on_both_sides_of_matmul(rng):
    M = ad.Tensor(rng.normal(size=(3, 3)))
    G = rng.normal(size=(3, 3))
    (M @ M).backward(G)
    expected = G @ M.value.T + M.value.T @ G
    np.testing.assert_allclose(M.grad, expected, rtol=1e-13)


def test_gradients_accumulate_over_calls_like_pytorch(rng):
    x = ad.Tensor(rng.normal(size=3))
    (x * x).sum().backward()
    first = x.grad.copy()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * first)
    y = (x * 1.0).sum()
    y.zero_grad()
    assert x.grad is None


# --- depth: no recursion limit ---------------------------------------------------------


def test_a_chain_of_ten_thousand_operations():
    x = ad.Tensor(np.array([0.5, -0.25]))
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(2, 1.0001**10_000), rtol=1e-10)


def test_a_deep_tanh_chain_matches_the_product_of_derivatives():
    x = ad.Tensor(np.array(0.3))
    y, value, derivative = x, 0.3, 1.0
    for _ in range(10_000):
        y = ad.tanh(y)
        derivative *= 1 - np.tanh(value) ** 2
        value = np.tanh(value)
    y.backward()
    np.testing.assert_allclose(x.grad, derivative, rtol=1e-9)


# --- the hand-written network, reproduced ---------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_engine_reproduces_the_hand_derived_network(activation):
    X, y = bp.spirals(40, 3, seed=1)
    net = bp.MLP([2, 16, 16, 3], activation, seed=2)
    loss, grads = net.loss_and_grads(X, y)
    f = getattr(ad, activation)
    params = [(ad.Tensor(W), ad.Tensor(b)) for W, b in net.params]
    A = ad.Tensor(X)
    for k, (W, b) in enumerate(params):
        Z = A @ W.T + b
        A = Z if k == len(params) - 1 else f(Z)
    E = ad.softmax_cross_entropy(A, y)
    E.backward()
    assert abs(E.item() - loss) <= 1e-12 * abs(loss)
    for (W, b), (dW, db) in zip(params, grads):
        assert bp.relative_error(W.grad, dW) <= 1e-12
        assert bp.relative_error(b.grad, db) <= 1e-12


# --- forward mode ------------------------------------------------------------------------


def test_forward_mode_gives_the_directional_derivative(rng):
    W = rng.normal(size=(4, 3))

    def f(x):
        return ad.tanh(x @ W.T).sum()

    x, v = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    value, tangent = ad.jvp(f, x, v)
    expected = bp.directional_derivative(lambda x_: np.tanh(x_ @ W.T).sum()[None], x, v)
    assert bp.relative_error(np.atleast_1d(tangent), expected) <= TOL
    assert bp.relative_error(ad.grad(f, x).ravel() @ v.ravel(), tangent) <= 1e-12


# --- refusals ----------------------------------------------------------------------------


def test_backward_on_a_non_scalar_needs_a_seed():
    y = ad.Tensor(np.ones((2, 3))) * 2.0
    with pytest.raises(ValueError, match=r"seed gradient.*shape \(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"shape \(2, 3\); got \(3,\)"):
        y.backward(np.ones(3))


@pytest.mark.parametrize("op", [ad.add, ad.sub, ad.mul, ad.div])
def test_shapes_that_do_not_broadcast_are_refused(op):
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2,\) do not broadcast"):
        op(ad.Tensor(np.ones((2, 3))), np.ones(2))


def test_matmul_and_einsum_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(2, 3\)"):
        ad.Tensor(np.ones((2, 3))) @ ad.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="einsum 'ij,jk->ik'"):
        ad.einsum("ij,jk->ik", np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="cannot reshape"):
        ad.Tensor(np.ones((2, 3))).reshape(4)


def test_non_numeric_values_are_refused():
    with pytest.raises(ValueError, match="real numbers"):
        ad.Tensor(np.array(["a", "b"]))


def test_numpy_on_the_left_gives_a_tensor(rng):
    W, x = rng.normal(size=(2, 3)), ad.Tensor(rng.normal(size=3))
    y = W @ x + np.ones(2)
    assert isinstance(y, ad.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, W.sum(axis=0))
