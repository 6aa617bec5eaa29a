"""The engine without sharp edges: what a tensor holds, and what backward keeps.

dtype (a Python number is weak), gradients owned by their tensor, no aliasing of
the caller's arrays and changes caught by version counters, constants that get no
gradient and cost no product, what backward keeps and releases, powers without
NaN, ``mse`` broadcast in backward as in forward, and forward mode that records
nothing. Each behaviour is PyTorch's.
"""

from __future__ import annotations

import weakref

import numpy as np
import pytest
from conftest import TOL

import backprop as bp
from backprop import autodiff as ad

# --- dtype: a Python number takes the dtype of the arrays it meets -------------------

FLOAT32_EXPRESSIONS = {
    "x * 2.0": lambda x: x * 2.0,
    "2.0 * x": lambda x: 2.0 * x,
    "-x": lambda x: -x,
    "x + 1": lambda x: x + 1,
    "1 - x": lambda x: 1 - x,
    "x / 3": lambda x: x / 3,
    "1 / x": lambda x: 1 / x,
    "x ** 2": lambda x: x**2,
    "2.0 ** x": lambda x: 2.0**x,
    "x.mean()": lambda x: x.mean(),
    "x.mean(axis=0)": lambda x: x.mean(axis=0),
    "tanh(x) * 0.5 + exp(x)": lambda x: ad.tanh(x) * 0.5 + ad.exp(x),
    "mse(x, 0.0)": lambda x: ad.mse(x, 0.0),
    "softmax_cross_entropy": lambda x: ad.softmax_cross_entropy(x, [0, 2, 1]),
}


@pytest.mark.parametrize("name", FLOAT32_EXPRESSIONS)
def test_float32_stays_float32_with_python_numbers(name, rng):
    f = FLOAT32_EXPRESSIONS[name]
    x0 = rng.uniform(0.5, 1.5, size=(3, 4)).astype(np.float32)
    x = ad.Tensor(x0)
    y = f(x)
    assert y.dtype == np.float32, name
    y.backward(np.ones(y.shape, np.float32))
    assert x.grad.dtype == np.float32, name
    value, tangent = ad.jvp(f, x0, np.ones_like(x0))
    assert value.dtype == tangent.dtype == np.float32, name
    # and the float32 result is the float64 one, rounded
    x64 = ad.Tensor(x0.astype(np.float64))
    f(x64).backward(np.ones(y.shape))
    assert bp.relative_error(x.grad, x64.grad) < 1e-5, name


def test_a_numpy_scalar_is_not_weak(rng):
    """As in numpy: np.float64(2.0) is a float64 array, a Python 2.0 is not."""
    x = ad.Tensor(rng.normal(size=3).astype(np.float32))
    assert (x * np.float64(2.0)).dtype == np.float64
    assert (x * 2.0).dtype == np.float32


# --- gradients are owned ---------------------------------------------------------------


def test_grad_is_a_writable_array_of_its_own(rng):
    x = ad.Tensor(rng.normal(size=(3, 4)))
    x.sum().backward()  # the sum's VJP is a read-only broadcast of one number
    x.grad *= 0  # must not raise
    assert x.grad.flags.writeable and x.grad.flags.owndata


def test_two_tensors_never_share_a_grad(rng):
    x, y = ad.Tensor(rng.normal(size=3)), ad.Tensor(rng.normal(size=3))
    (x + y).sum().backward()  # add sends the same g to both inputs
    assert x.grad is not y.grad and not np.shares_memory(x.grad, y.grad)
    x.grad[0] = 7.0
    assert y.grad[0] == 1.0


def test_grad_is_never_the_seed(rng):
    x = ad.Tensor(rng.normal(size=3))
    seed = np.ones(3)
    (x + 1.0).backward(seed)
    assert not np.shares_memory(x.grad, seed)
    leaf = ad.Tensor(rng.normal(size=3))
    leaf.backward(seed)
    assert not np.shares_memory(leaf.grad, seed)
    leaf.grad += 1
    assert np.array_equal(seed, np.ones(3))


# --- aliasing: copies in, read-only values, version counters -------------------------


def test_a_tensor_copies_the_callers_array():
    a = np.ones(3)
    t = ad.Tensor(a)
    a[0] = 5.0
    assert t.value[0] == 1.0


def test_a_tensors_array_is_read_only(rng):
    t = ad.Tensor(rng.normal(size=3))
    with pytest.raises(ValueError, match="read-only"):
        t.value[0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        t.value += 1.0
    y = t * 2.0
    with pytest.raises(ValueError, match="read-only"):
        y.value[...] = 0.0


def test_a_changed_input_is_caught_in_backward(rng):
    x = ad.Tensor(rng.normal(size=3))
    y = (x * x).sum()
    x.value = x.value + 1.0  # after the forward pass, before the backward pass
    with pytest.raises(
        RuntimeError,
        match=r"'mul': its input 0, of shape \(3,\), was changed .*"
        r"\(version 1, recorded at version 0\)",
    ):
        y.backward()


def test_a_changed_output_is_caught_in_backward(rng):
    """exp's VJP reads its output: changing it would change the gradient."""
    x = ad.Tensor(rng.normal(size=3))
    y = ad.exp(x)
    y.value = np.zeros(3)
    with pytest.raises(RuntimeError, match=r"'exp': its output, of shape \(3,\)"):
        y.sum().backward()


def test_a_changed_constant_is_caught_too(rng):
    X = ad.Tensor(rng.normal(size=(4, 3)), requires_grad=False)
    W = ad.Tensor(rng.normal(size=(2, 3)))
    E = (X @ W.T).sum()
    X.value = 2 * X.value
    with pytest.raises(RuntimeError, match=r"'matmul': its input 0, of shape \(4, 3\)"):
        E.backward()


def test_a_new_value_keeps_shape_and_dtype(rng):
    t = ad.Tensor(rng.normal(size=3).astype(np.float32))
    t.value = np.zeros(3)  # float64 in, float32 kept
    assert t.dtype == np.float32 and not t.value.flags.writeable
    with pytest.raises(ValueError, match=r"keep the tensor's shape \(3,\); got \(4,\)"):
        t.value = np.zeros(4)


def test_gradient_descent_with_the_value_setter(rng):
    """The supported update: assign a new value, then run the forward pass again."""
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    w0 = rng.normal(size=3)
    w, w_ref = ad.Tensor(w0), w0.copy()
    for _ in range(5):
        loss = ad.mse(X @ w, y)
        loss.backward()
        w.value = w.value - 0.1 * w.grad
        w.grad = None
        w_ref = w_ref - 0.1 * 2 * X.T @ (X @ w_ref - y) / len(y)
    assert bp.relative_error(w.value, w_ref) < 1e-12


# --- constants: no gradient, and no product formed for them ---------------------------


def test_requires_grad_is_the_default_and_false_marks_data(rng):
    x = ad.Tensor(rng.normal(size=3))
    c = ad.Tensor(rng.normal(size=3), requires_grad=False)
    assert x.requires_grad and not c.requires_grad
    assert (x * c).requires_grad and not (c * 2.0).requires_grad
    assert not (c * rng.normal(size=3)).requires_grad
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, c.value)


def test_numpy_arrays_and_numbers_in_an_operation_are_constants(rng):
    x = ad.Tensor(rng.normal(size=3))
    y = x * rng.normal(size=3) + 2.0
    assert y.requires_grad
    assert not any(p.requires_grad for p in y._parents[1:])
    assert not y._parents[0]._parents[1].requires_grad


def test_backward_needs_something_that_requires_a_gradient(rng):
    c = ad.Tensor(rng.normal(size=3), requires_grad=False)
    with pytest.raises(RuntimeError, match="requires no gradient"):
        (c * 2.0).sum().backward()


def counted_vjps(monkeypatch, op):
    """Replace the per-input VJPs of ``op`` with ones that log which input ran."""
    forward, vjps = ad.RULES[op]
    calls: list[int] = []

    def logged(i, vjp):
        def vjp_i(*args, **kwargs):
            calls.append(i)
            return vjp(*args, **kwargs)

        return vjp_i

    monkeypatch.setitem(
        ad.RULES, op, (forward, tuple(logged(i, v) for i, v in enumerate(vjps)))
    )
    return calls


@pytest.mark.parametrize(
    ("op", "make"),
    [
        ("matmul", lambda r: [r.normal(size=(5, 4)), r.normal(size=(4, 3))]),
        ("linear", lambda r: [r.normal(size=(5, 4)), r.normal(size=(3, 4)), r.normal(size=3)]),
        ("mul", lambda r: [r.normal(size=(5, 4)), r.normal(size=4)]),
        ("div", lambda r: [r.normal(size=(5, 4)), r.uniform(1, 2, size=4)]),
        ("pow", lambda r: [r.uniform(1, 2, size=(5, 4)), r.normal(size=4)]),
    ],
)  # fmt: skip
def test_no_gradient_is_formed_for_a_constant(op, make, rng, monkeypatch):
    """``X @ W`` with constant data X runs W's VJP only: no dX product."""
    xs = make(rng)
    calls = counted_vjps(monkeypatch, op)
    functions = {"matmul": ad.matmul, "linear": ad.linear, "mul": ad.mul}
    f = functions.get(op) or {"div": ad.div, "pow": ad.power}[op]
    for needed in range(len(xs)):
        calls.clear()
        inputs = [ad.Tensor(x, requires_grad=i == needed) for i, x in enumerate(xs)]
        f(*inputs).sum().backward()
        assert calls == [needed], (op, needed, calls)
        assert all(t.grad is None for i, t in enumerate(inputs) if i != needed)


def test_einsum_forms_no_gradient_for_a_constant(rng, monkeypatch):
    X, W = rng.normal(size=(5, 4)), ad.Tensor(rng.normal(size=(4, 3)))
    y = ad.einsum("bi,ij->bj", X, W).sum()
    einsums = []
    real_einsum = np.einsum
    monkeypatch.setattr(
        np, "einsum", lambda *a, **k: einsums.append(a[0]) or real_einsum(*a, **k)
    )
    y.backward()
    assert len(einsums) == 1  # W's gradient only, not X's
    np.testing.assert_allclose(W.grad, X.sum(axis=0)[:, None] * np.ones((1, 3)))


# --- what backward keeps, and releases -------------------------------------------------


def test_only_leaves_keep_grad(rng):
    x = ad.Tensor(rng.normal(size=3))
    h = ad.tanh(x)
    loss = (h * h).sum()
    loss.backward()
    assert x.grad is not None and x.is_leaf
    assert h.grad is None and loss.grad is None and not h.is_leaf


def test_retain_grad_keeps_an_intermediate_gradient(rng):
    x = ad.Tensor(rng.normal(size=3))
    h = ad.tanh(x)
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * np.tanh(x.value))


def test_a_second_backward_through_a_released_graph_is_refused(rng):
    x = ad.Tensor(rng.normal(size=3))
    loss = (ad.tanh(x) * 2.0).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match=r"a second time.*retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward_and_gradients_add(rng):
    x = ad.Tensor(rng.normal(size=3))
    loss = (ad.tanh(x) * 2.0).sum()
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, 2 * first)
    loss.zero_grad()  # the graph is still there: it reaches x
    assert x.grad is None


def test_zero_grad_after_the_graph_is_released(rng):
    x = ad.Tensor(rng.normal(size=3))
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="released.*on the leaves"):
        loss.zero_grad()  # it could no longer reach x: refused, not ignored
    x.zero_grad()
    assert x.grad is None


def test_backward_releases_the_graph(rng):
    """The intermediate tensors, and the arrays they hold, are freed."""
    x = ad.Tensor(rng.normal(size=(50, 50)))
    loss = (ad.tanh(x @ x) * 2.0).sum()
    intermediates = [weakref.ref(p) for p in loss._parents]
    assert all(r() is not None for r in intermediates)
    loss.backward()
    assert all(r() is None for r in intermediates)


# --- powers ----------------------------------------------------------------------------


@pytest.mark.parametrize("c", [2, 3, 2.0, -1, 0, 1])
def test_a_constant_exponent_with_negative_and_zero_bases(c):
    """No exponent gradient, no log, no NaN: d(xᶜ)/dx = c x^(c−1), and 0 for x⁰."""
    x0 = (
        np.array([-2.0, -0.5, 0.5, 3.0])
        if c == -1
        else np.array([-2.0, -0.5, 0.0, 3.0])
    )
    expected = np.zeros(4) if c == 0 else c * x0 ** (c - 1)
    for exponent in (c, ad.Tensor(float(c), requires_grad=False)):
        x = ad.Tensor(x0)
        with np.errstate(all="raise"):  # a NaN or inf formed anywhere would raise
            (x**exponent).sum().backward()
            _, tangent = ad.jvp(lambda x_, c=exponent: x_**c, x0, np.ones(4))
        np.testing.assert_allclose(x.grad, expected, rtol=1e-15)
        np.testing.assert_allclose(tangent, expected, rtol=1e-15)
        assert len((x**exponent)._parents) == (1 if exponent is c else 2)


def test_an_exponent_gets_its_gradient_only_when_it_requires_one():
    x0 = np.array([-2.0, 1.5])
    y = ad.Tensor(3.0)
    x = ad.Tensor(x0)
    with np.errstate(invalid="ignore"):  # log(−2) is NaN: x⁹ has no real slope in y
        (x**y).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * x0**2, rtol=1e-15)  # the base: no NaN
    assert np.isnan(y.grad)  # formed, because y requires it
    z = ad.Tensor(3.0)
    (ad.Tensor(np.array([2.0, 1.5])) ** z).sum().backward()
    np.testing.assert_allclose(
        z.grad, np.sum([2.0, 1.5] ** np.float64(3) * np.log([2.0, 1.5]))
    )


# --- broadcasting in mse ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_shape", "y_shape"), [((4, 1), (3,)), ((3,), (4, 3)), ((2, 3), ())]
)
def test_mse_broadcasts_in_backward_as_in_forward(p_shape, y_shape, rng):
    """The mean runs over the broadcast difference, as numpy computes the forward."""
    p0, y0 = rng.normal(size=p_shape), rng.normal(size=y_shape)
    p, y = ad.Tensor(p0), ad.Tensor(y0)
    E = ad.mse(p, y)
    assert np.isclose(E.item(), np.mean((p0 - y0) ** 2))
    E.backward()
    for t, x0, other, sign in ((p, p0, y0, 1), (y, y0, p0, -1)):
        fd = bp.numerical_gradient(
            lambda v, o=other, s=sign: np.mean((s * (v - o)) ** 2),
            np.atleast_1d(x0).astype(float),
        )
        assert t.grad.shape == np.shape(x0)
        assert bp.relative_error(np.atleast_1d(t.grad), fd) <= TOL


# --- forward mode records nothing --------------------------------------------------------


def test_jvp_keeps_no_graph(rng):
    W = ad.Tensor(
        rng.normal(size=(4, 3))
    )  # requires a gradient, but jvp records nothing
    seen: list[ad.Tensor] = []

    def f(x):
        h = ad.tanh(x @ W.T)
        seen.append(h)
        return (h * h).sum()

    value, tangent = ad.jvp(f, rng.normal(size=(2, 3)), rng.normal(size=(2, 3)))
    (h,) = seen
    assert h._parents == () and not h.requires_grad and h.tangent is not None
    assert np.ndim(tangent) == 0 and np.isfinite(tangent)


def test_no_grad_records_nothing(rng):
    x = ad.Tensor(rng.normal(size=3))
    with ad.no_grad():
        y = ad.exp(x) * 2.0
    assert y._parents == () and not y.requires_grad and y.is_leaf
    assert (ad.exp(x) * 2.0).requires_grad  # recording is back on
