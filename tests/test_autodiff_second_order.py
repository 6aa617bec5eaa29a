"""The engine differentiates twice: ``backward(create_graph=True)``,
``ad.gradients`` and ``ad.hvp``.

Every rule the engine has in Tensor operations is checked at random shapes, on
``E = ⟨G, f(x)⟩ + ½‖f(x)‖²`` (whose Hessian involves f's first and second
derivatives):

- the recorded gradient equals the ordinary one (the Tensor rules are the numpy
  rules, line by line);
- ``H V`` by reverse-over-reverse against central differences of gradients,
  ``(∇E(x + hV) − ∇E(x − hV)) / 2h``, to 1e-6 in float64;
- forward-over-reverse equals reverse-over-reverse to round-off.

Then Hessians with a closed form (xᵀAx, log-sum-exp, the cross-entropy, a third
derivative of tanh), the symmetry ⟨U, H V⟩ = ⟨H U, V⟩, the fused ops' refusal,
and what ``create_graph`` keeps, as in PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_autodiff import CASES

import backprop as bp
from backprop import autodiff as ad
from backprop.autodiff_tensor_rules import FIRST_ORDER_HINTS, TENSOR_RULES

seeds = st.integers(min_value=0, max_value=2**32 - 1)
shapes = st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=4).map(
    tuple
)
ROUNDOFF = 1e-10
FD_TOL = 1e-6  # H V against central differences of gradients (issue 14)


def ops_of(f, xs):
    """The primitives a case's graph is made of."""
    out = f(*[ad.Tensor(x) for x in xs])
    ops, stack = set(), [out]
    while stack:
        node = stack.pop()
        ops.add(node._op)
        stack.extend(node._parents)
    return ops - {""}


def _twice(case):
    f, xs = CASES[case](np.random.default_rng(0), (2, 2))
    return ops_of(f, xs) <= set(TENSOR_RULES)


SECOND_ORDER_CASES = sorted(c for c in CASES if _twice(c))
FIRST_ORDER_CASES = sorted(c for c in CASES if not _twice(c))


def quadratic_in(f, G):
    """``E(xs) = ⟨G, f(xs)⟩ + ½‖f(xs)‖²``, a scalar function of a list."""

    def E(P):
        Y = f(*P)
        return ad.sum(Y * G) + 0.5 * ad.sum(Y * Y)

    return E


def gradient(E, xs):
    """∇E at ``xs`` by the ordinary (numpy) reverse pass: a list of arrays."""
    P = [ad.Tensor(x) for x in xs]
    return ad.gradients(E(P), P)


def fd_hvp(E, xs, V, h=1e-5):
    """Central differences of the gradient along V, every input at once."""
    up = gradient(E, [x + h * v for x, v in zip(xs, V)])
    down = gradient(E, [x - h * v for x, v in zip(xs, V)])
    return [(a - b) / (2 * h) for a, b in zip(up, down)]


def flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def test_every_elementary_op_is_differentiated_twice():
    """The ops of issue 14 §1 have a rule in Tensor operations and reach a case."""
    elementary = {"add", "sub", "mul", "div", "pow", "pow_const", "matmul", "exp"}
    elementary |= {"log", "tanh", "sigmoid", "relu", "sum", "mean", "reshape"}
    elementary |= {"transpose", "getitem", "softmax", "softmax_cross_entropy"}
    assert elementary <= set(TENSOR_RULES)
    reached = set().union(
        *(
            ops_of(*CASES[c](np.random.default_rng(0), (2, 2)))
            for c in SECOND_ORDER_CASES
        )
    )
    assert set(TENSOR_RULES) <= reached, sorted(set(TENSOR_RULES) - reached)
    assert not set(TENSOR_RULES) & set(FIRST_ORDER_HINTS)


@pytest.mark.parametrize("case", SECOND_ORDER_CASES)
@settings(max_examples=12)
@given(seed=seeds, shape=shapes)
def test_hvp_of_every_rule_against_differences_of_gradients(case, seed, shape):
    rng = np.random.default_rng(seed)
    f, xs = CASES[case](rng, shape)
    G = rng.normal(size=f(*[ad.Tensor(x) for x in xs]).shape)
    E = quadratic_in(f, G)
    # the recorded gradient is the ordinary one
    P = [ad.Tensor(x) for x in xs]
    recorded = ad.gradients(E(P), P, create_graph=True)
    assert all(isinstance(g, ad.Tensor) for g in recorded)
    plain = gradient(E, xs)
    for g, p in zip(recorded, plain):
        assert g.shape == p.shape and g.dtype == p.dtype
        assert bp.relative_error(g.value, p) <= ROUNDOFF
    # H V, two ways, against differences of gradients
    V = [rng.normal(size=x.shape) for x in xs]
    HV = ad.hvp(E, xs, V)
    HV_fwd = ad.hvp(E, xs, V, mode="forward")
    assert [h.shape for h in HV] == [x.shape for x in xs]
    fd = fd_hvp(E, xs, V)
    scale = max(np.linalg.norm(flat(fd)), 1e-8)
    assert np.linalg.norm(flat(HV) - flat(fd)) / scale <= FD_TOL
    assert np.linalg.norm(flat(HV) - flat(HV_fwd)) / scale <= ROUNDOFF


# --- one function that mixes every elementary op ------------------------------------

LABELS = np.array([2, 0, 1])


def mixture(P):
    """A scalar of (W, b, X, c) through every op that has a rule in Tensors."""
    W, b, X, c = P
    Z = X @ W.T + b  # matmul, transpose, add
    A = ad.tanh(Z) * ad.sigmoid(Z) - ad.relu(Z) / (1 + ad.exp(Z))
    A = A + ad.log(1 + Z**2) + (2.0 + ad.sigmoid(b)) ** c[0]  # pow, pow_const
    S = A.reshape(-1).reshape(5, 3)[np.array([0, 2, 4])]  # reshape, getitem
    E = ad.softmax_cross_entropy(S, LABELS) + ad.mean(ad.softmax(S) ** 2)
    E = E + ad.mse(S, 0.5) + ad.linear(X, W, b).mean(axis=0).sum() ** 2
    E = E + ad.gelu(Z).sum() / 7 + ad.embedding([1, 0, 1], W).sum() ** 2
    return E + (ad.dropout(Z, np.eye(5, 3), 0.5) ** 3).sum() - ad.mean(Z, axis=1).sum()


def mixture_point(rng):
    return [
        rng.normal(size=(3, 4)),
        rng.normal(size=3),
        rng.normal(size=(5, 4)),
        rng.normal(size=2),
    ]


@given(seed=seeds)
@settings(max_examples=10)
def test_hvp_of_a_function_mixing_every_op(seed):
    rng = np.random.default_rng(seed)
    xs = mixture_point(rng)
    V = [rng.normal(size=x.shape) for x in xs]
    HV = ad.hvp(mixture, xs, V)
    fd = fd_hvp(mixture, xs, V)
    assert bp.relative_error(flat(HV), flat(fd)) <= FD_TOL
    HV_fwd = ad.hvp(mixture, xs, V, mode="forward")
    assert bp.relative_error(flat(HV_fwd), flat(HV)) <= ROUNDOFF


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_the_hessian_is_symmetric(mode, rng):
    """⟨U, H V⟩ = ⟨H U, V⟩ for a function of several arrays."""
    xs = mixture_point(rng)
    U, V = ([rng.normal(size=x.shape) for x in xs] for _ in range(2))
    HU, HV = (flat(ad.hvp(mixture, xs, D, mode)) for D in (U, V))
    lhs, rhs = flat(U) @ HV, HU @ flat(V)
    assert abs(lhs - rhs) <= ROUNDOFF * max(abs(lhs), abs(rhs))


# --- Hessians with a closed form ----------------------------------------------------


def hessian(f, x, mode="reverse"):
    """The explicit Hessian of f at a vector x, built column by column: H e_j."""
    columns = [ad.hvp(f, x, e, mode) for e in np.eye(x.size)]
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_hessian_of_a_quadratic_form(mode, rng):
    """f(x) = xᵀ A x with A not symmetric: H = A + Aᵀ."""
    A, x = rng.normal(size=(5, 5)), rng.normal(size=5)
    H = hessian(lambda x: x @ (A @ x), x, mode)
    assert bp.relative_error(H, A + A.T) <= 1e-14


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_hessian_of_log_sum_exp(mode, rng):
    """f(x) = log Σ exp(x): H = diag(p) − p pᵀ, p = softmax(x)."""
    x = rng.normal(size=6)
    p = np.exp(x) / np.exp(x).sum()
    H = hessian(lambda x: ad.log(ad.sum(ad.exp(x))), x, mode)
    assert bp.relative_error(H, np.diag(p) - np.outer(p, p)) <= 1e-13


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_hessian_of_the_cross_entropy_in_the_logits(mode, rng):
    """E(Z) = mean cross-entropy of B rows: block diagonal, (diag(p_r) − p_r p_rᵀ)/B."""
    B, n = 3, 4
    Z, labels = rng.normal(size=(B, n)), np.array([1, 3, 0])
    H = hessian(
        lambda z: ad.softmax_cross_entropy(z.reshape(B, n), labels), Z.ravel(), mode
    )
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    expected = np.zeros((B * n, B * n))
    for r in range(B):
        block = slice(r * n, (r + 1) * n)
        expected[block, block] = (np.diag(P[r]) - np.outer(P[r], P[r])) / B
    assert bp.relative_error(H, expected) <= 1e-13


def test_third_derivatives_of_tanh_and_sigmoid(rng):
    """grad of grad of grad: tanh''' = −2(1 − t²)(1 − 3t²); σ''' = σ'(1 − 6σ + 6σ²)."""
    x0 = rng.normal(size=7)
    x = ad.Tensor(x0)
    for f, expected in [
        (ad.tanh, -2 * (1 - np.tanh(x0) ** 2) * (1 - 3 * np.tanh(x0) ** 2)),
        (ad.sigmoid, (s := 1 / (1 + np.exp(-x0))) * (1 - s) * (1 - 6 * s + 6 * s**2)),
    ]:
        d1 = ad.gradients(f(x).sum(), x, create_graph=True)
        d2 = ad.gradients(d1.sum(), x, create_graph=True)
        d3 = ad.gradients(d2.sum(), x)
        assert bp.relative_error(d3, expected) <= 1e-13


def test_fourth_derivative_of_a_power_through_backward(rng):
    """x⁵: the fourth derivative 120 x, by backward(create_graph=True) three times."""
    x = ad.Tensor(rng.normal(size=4))
    g = x
    for _ in range(3):
        x.grad = None
        (g**5 if g is x else g).sum().backward(create_graph=True)
        g = x.grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad, 120 * x.value, rtol=1e-14)


# --- the fused ops say they are first-order only ------------------------------------


@pytest.mark.parametrize("case", FIRST_ORDER_CASES)
def test_a_fused_op_refuses_create_graph_naming_itself(case, rng):
    f, xs = CASES[case](rng, (2, 2))
    tensors = [ad.Tensor(x) for x in xs]
    out = f(*tensors)
    fused = sorted(ops_of(f, xs) - set(TENSOR_RULES))
    with pytest.raises(
        NotImplementedError, match=r"'(\w+)' is first-order only"
    ) as err:
        out.sum().backward(create_graph=True)
    assert err.value.args[0].split("'")[1] in fused
    assert "to differentiate twice" in str(err.value)
    # the ordinary backward still works
    out.sum().backward()


def test_the_first_order_error_says_how_to_build_the_op(rng):
    X = ad.Tensor(rng.normal(size=(3, 4)))
    Y = ad.layer_norm(X, np.ones(4), np.zeros(4))
    with pytest.raises(
        NotImplementedError, match="'layer_norm' is first-order only: standardise"
    ):
        ad.gradients(Y.sum(), X, create_graph=True)


# --- what create_graph keeps, as in PyTorch -----------------------------------------


def test_create_graph_leaves_a_tensor_grad_with_a_graph(rng):
    x = ad.Tensor(rng.normal(size=3))
    (x**3).sum().backward(create_graph=True)
    assert isinstance(x.grad, ad.Tensor) and x.grad.requires_grad
    np.testing.assert_allclose(x.grad.value, 3 * x.value**2, rtol=1e-15)
    g, x.grad = x.grad, None
    g.sum().backward()  # the gradient of the gradient, into x.grad
    np.testing.assert_allclose(x.grad, 6 * x.value, rtol=1e-15)


def test_create_graph_implies_retain_graph(rng):
    x = ad.Tensor(rng.normal(size=3))
    y = ad.tanh(x).sum()
    y.backward(create_graph=True)
    first = x.grad
    y.backward()  # the graph was kept
    np.testing.assert_allclose(x.grad.value, 2 * first.value, rtol=1e-15)


def test_a_gradient_that_depends_on_nothing_requires_no_gradient(rng):
    """∇ of a linear function is a constant: as in PyTorch, requires_grad is False."""
    x = ad.Tensor(rng.normal(size=(2, 3)))
    g = ad.gradients((3.0 * x).sum(), x, create_graph=True)
    assert not g.requires_grad
    np.testing.assert_array_equal(g.value, np.full((2, 3), 3.0))
    # and the product with the Hessian is zero
    H = ad.hvp(lambda x: (3.0 * x).sum(), x.value, np.ones((2, 3)))
    np.testing.assert_array_equal(H, np.zeros((2, 3)))


def test_gradients_touches_no_grad_and_releases_the_graph(rng):
    x, w = ad.Tensor(rng.normal(size=3)), ad.Tensor(rng.normal(size=3))
    unused = ad.Tensor(rng.normal(size=2))
    y = (ad.exp(x) * w).sum()
    gx, gu = ad.gradients(y, [x, unused])
    np.testing.assert_allclose(gx, np.exp(x.value) * w.value, rtol=1e-15)
    np.testing.assert_array_equal(gu, np.zeros(2))
    assert x.grad is None and w.grad is None
    with pytest.raises(RuntimeError, match="second time"):
        ad.gradients(y, w)


def test_gradients_of_an_intermediate_tensor(rng):
    x = ad.Tensor(rng.normal(size=3))
    z = x * 2.0
    y = ad.tanh(z).sum()
    gz = ad.gradients(y, z, create_graph=True)
    np.testing.assert_allclose(gz.value, 1 - np.tanh(z.value) ** 2, rtol=1e-15)


def test_gradients_refuses_an_input_that_requires_no_gradient(rng):
    x = ad.Tensor(rng.normal(size=3))
    c = ad.Tensor(rng.normal(size=3), requires_grad=False)
    with pytest.raises(ValueError, match=r"inputs\[1\] must be a Tensor that requires"):
        ad.gradients((x * c).sum(), [x, c])


def test_a_change_after_the_forward_pass_is_caught_in_the_second_pass(rng):
    x = ad.Tensor(rng.normal(size=3))
    w = ad.Tensor(rng.normal(size=3))
    g = ad.gradients((ad.tanh(x * w)).sum(), x, create_graph=True)
    w.value = w.value + 1
    with pytest.raises(RuntimeError, match="was changed after the forward pass"):
        ad.gradients(g.sum(), x)


def test_no_grad_records_nothing_even_with_create_graph(rng):
    x = ad.Tensor(rng.normal(size=3))
    y = ad.tanh(x).sum()
    with ad.no_grad():
        g = ad.gradients(y, x, create_graph=True)
    assert not g.requires_grad
    np.testing.assert_allclose(g.value, 1 - np.tanh(x.value) ** 2, rtol=1e-15)


# --- hvp: structure, dtype, inputs untouched ----------------------------------------


def mlp_loss(X, y, activation="tanh"):
    f = getattr(ad, activation)

    def E(params):
        A = X
        for k, (W, b) in enumerate(params):
            Z = A @ W.T + b
            A = Z if k == len(params) - 1 else f(Z)
        return ad.softmax_cross_entropy(A, y)

    return E


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_engine_hvp_agrees_with_the_hand_written_r_operator(activation, mode, rng):
    """The engine's H·V of the MLP loss is ``MLP.hvp``'s, derived by hand (issue 14)."""
    X, y = bp.spirals(40, 3, seed=1)
    net = bp.MLP([2, 16, 16, 3], activation, seed=2)
    V = [(rng.normal(size=W.shape), rng.normal(size=b.shape)) for W, b in net.params]
    engine = ad.hvp(mlp_loss(X, y, activation), net.params, V, mode)
    by_hand = net.hvp(X, y, V)
    for (eW, eb), (hW, hb) in zip(engine, by_hand):
        assert bp.relative_error(eW, hW) <= 1e-10
        assert bp.relative_error(eb, hb) <= 1e-10


def test_hvp_keeps_the_structure_of_params_and_leaves_them_alone(rng):
    X, y = bp.spirals(10, 3, seed=1)
    net = bp.MLP([2, 5, 3], "tanh", seed=2)
    before = [(W.copy(), b.copy()) for W, b in net.params]
    V = [(rng.normal(size=W.shape), rng.normal(size=b.shape)) for W, b in net.params]
    HV = ad.hvp(mlp_loss(X, y), net.params, V)
    assert isinstance(HV, list) and all(isinstance(p, tuple) for p in HV)
    assert [(a.shape, b.shape) for a, b in HV] == [
        (W.shape, b.shape) for W, b in net.params
    ]
    for (W0, b0), (W, b) in zip(before, net.params):
        np.testing.assert_array_equal(W0, W)
        np.testing.assert_array_equal(b0, b)


def test_hvp_refuses_a_direction_of_another_structure_naming_the_first_mismatch(rng):
    params = [(np.ones((3, 2)), np.ones(3)), (np.ones((2, 3)), np.ones(2))]
    E = mlp_loss(np.ones((4, 2)), [0, 1, 0, 1])
    with pytest.raises(
        ValueError,
        match=r"V\[1\]\[0\] has shape \(3, 2\) but params\[1\]\[0\] has shape \(2, 3\)",
    ):
        ad.hvp(
            E, params, [(np.ones((3, 2)), np.ones(3)), (np.ones((3, 2)), np.ones(2))]
        )
    with pytest.raises(ValueError, match=r"V is 1 entries but params has 2"):
        ad.hvp(E, params, [(np.ones((3, 2)), np.ones(3))])
    with pytest.raises(ValueError, match=r"V\[0\] is an array of shape \(3, 2\)"):
        ad.hvp(E, params, [np.ones((3, 2)), (np.ones((2, 3)), np.ones(2))])
    with pytest.raises(ValueError, match="mode must be"):
        ad.hvp(E, params, params, mode="sideways")
    with pytest.raises(
        ValueError, match=r"f must return a Tensor of one number.*\(3, 2\)"
    ):
        ad.hvp(lambda P: P[0][0] * 2.0, params, params)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_hvp_in_float32_stays_float32(mode, rng):
    xs = [x.astype(np.float32) for x in mixture_point(rng)]
    V = [rng.normal(size=x.shape).astype(np.float32) for x in xs]
    HV = ad.hvp(mixture, xs, V, mode)
    assert all(h.dtype == np.float32 for h in HV)
    HV64 = ad.hvp(
        mixture, [x.astype(np.float64) for x in xs], [v.astype(np.float64) for v in V]
    )
    assert bp.relative_error(flat(HV), flat(HV64)) <= 1e-4


def test_a_recorded_gradient_has_its_leafs_dtype(rng):
    """A float32 leaf met by a float64 array: its gradient is cast back, as in the
    ordinary pass, by the ``astype`` op, which differentiates twice."""
    x0 = rng.normal(size=3).astype(np.float32)
    c = rng.normal(size=3)
    x = ad.Tensor(x0)
    g = ad.gradients((ad.tanh(x * c) ** 2).sum(), x, create_graph=True)
    assert g.dtype == np.float32 and g.requires_grad
    h = ad.gradients(g.sum(), x)
    assert h.dtype == np.float32
    x64 = ad.Tensor(x0.astype(np.float64))
    g64 = ad.gradients((ad.tanh(x64 * c) ** 2).sum(), x64, create_graph=True)
    assert bp.relative_error(h, ad.gradients(g64.sum(), x64)) <= 1e-5
    with pytest.raises(ValueError, match="float dtype"):
        ad.astype(x, np.int32)


def test_scatter_add_refuses_what_does_not_fit():
    with pytest.raises(
        ValueError, match=r"indexed so has shape \(2, 3\); x has shape \(3,\)"
    ):
        ad.scatter_add(np.ones(3), [0, 1], (4, 3))
    with pytest.raises(ValueError, match=r"index does not fit shape \(4,\)"):
        ad.scatter_add(np.ones(2), [0, 7], (4,))
