"""A reverse-mode automatic differentiation engine built from the VJPs.

Every operation on a :class:`Tensor` records which primitive made it and from
which tensors. ``loss.backward()`` then walks that graph once, from the loss
back to the inputs in reverse topological order, and at every node applies
the primitive's VJPs to the gradient that has arrived there
(eq. ``ad-reverse``). The rules are one table, :data:`RULES`,
in :mod:`backprop.autodiff_rules`; here are the graph and the order of the
calls. Broadcasting is handled once: a gradient whose shape is not its
input's is summed over the broadcast axes by ``unbroadcast``
(eq. ``mb-unbroadcast``). Reuse adds: a tensor used twice receives the sum of
the gradients of its uses (eq. ``mb-fanout``).

What a tensor holds, and what backward keeps, as in PyTorch:

- ``Tensor(value)`` copies ``value`` and requires a gradient;
  ``Tensor(value, requires_grad=False)``, a numpy array or a Python number
  mixed into an operation are constants. An output requires a gradient iff an
  input does, and backward forms no gradient for an input that needs none. A
  Python number takes the dtype of the arrays it meets
  (it is "weak", as in numpy's NEP 50), so float32 stays float32.
- After ``backward()`` the leaves (the tensors no operation made) hold
  ``.grad``, a fresh array of their own; other tensors only if
  ``retain_grad()`` was called. The graph is released; a second
  ``backward()`` through it needs ``backward(retain_graph=True)`` the first
  time.
- A tensor's array is read-only. The one way to change it is to assign
  ``t.value = new``, which bumps ``t``'s version; every node records the
  versions of the tensors it saved, and backward refuses, naming the op, if
  one has changed since: the gradient would belong to values the forward pass
  never saw.

Forward mode pushes a ``tangent`` along with every value,
with :data:`JVP_RULES` (eq. ``ad-jvp``); :func:`jvp` runs it
under :func:`no_grad`, so it records nothing.

Twice: ``backward(create_graph=True)`` (and :func:`gradients`) computes each
VJP with Tensor operations, the rules of
:mod:`backprop.autodiff_tensor_rules`, so the backward pass is recorded too
and the gradients it leaves are Tensors that can be differentiated again;
:func:`hvp` builds a Hessian-vector product on it. The first-order pass keeps
the numpy rules, which record nothing. The fused layers (layer norm,
convolution, the recurrent cells, attention, pooling) stay first-order and
say so.

Usage::

    from backprop import autodiff as ad
    W, b = ad.Tensor(W), ad.Tensor(b)
    loss = ad.softmax_cross_entropy(ad.tanh(X @ W.T + b), labels)  # X: data
    loss.backward()            # W.grad, b.grad are numpy arrays
    W.value = W.value - 0.1 * W.grad  # a step of gradient descent

    # twice: H·V, V with the structure of the parameters
    HV = ad.hvp(lambda P: ad.sum(ad.tanh(X @ P[0].T + P[1]) ** 2),
                [W0, b0], [V_W, V_b])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np

from backprop.autodiff_rules import JVP_RULES, RULES, _einsum_parts
from backprop.broadcasting import unbroadcast

__all__ = [
    "Tensor",
    "RULES",
    "JVP_RULES",
    "no_grad",
    "add",
    "sub",
    "mul",
    "div",
    "power",
    "matmul",
    "exp",
    "log",
    "tanh",
    "sigmoid",
    "relu",
    "gelu",
    "sum",
    "mean",
    "reshape",
    "transpose",
    "scatter_add",
    "astype",
    "einsum",
    "softmax",
    "softmax_cross_entropy",
    "mse",
    "linear",
    "layer_norm",
    "batch_norm",
    "conv2d",
    "rnn",
    "lstm",
    "gru",
    "attention",
    "embedding",
    "max_pool2d",
    "avg_pool2d",
    "dropout",
    "solve",
    "grad",
    "jvp",
    "gradients",
    "hvp",
]


# --- the tensor ------------------------------------------------------------


def _frozen(value, dtype=None) -> np.ndarray:
    """A read-only copy of ``value``, in ``dtype`` or its own float dtype."""
    arr = np.array(
        value.value if isinstance(value, Tensor) else value, dtype=dtype
    )
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"a Tensor holds real numbers; got an array of dtype {arr.dtype}"
        )
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    arr.flags.writeable = False
    return arr


class Tensor:
    """A numpy array that remembers how it was computed.

    ``value``: a read-only copy of the array
    (any rank; integers become float64, float32 stays float32). Assigning
    ``t.value = new`` replaces it, with the same shape and dtype, and bumps
    the tensor's version. ``requires_grad``: whether ``backward()`` computes
    ∂E/∂(this tensor). ``grad``: after ``backward()``, on a leaf that
    requires it (or after ``retain_grad()``), ∂E/∂(this tensor), an array of
    the same shape and dtype; ``None`` otherwise. Gradients accumulate over
    calls to ``backward()``, as in PyTorch; ``zero_grad()`` clears them.
    ``tangent``: for forward mode, the direction in which this input moves.
    """

    # numpy defers to us: ndarray @ Tensor is a Tensor
    __array_ufunc__ = None

    def __init__(self, value, *, requires_grad: bool = True, tangent=None):
        self._value = _frozen(value)
        self._version = 0
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self.tangent = (
            None if tangent is None else _tangent_like(tangent, self._value)
        )
        self._op = ""  # the primitive that made this tensor; "" for a leaf
        self._parents: tuple[Tensor, ...] = ()
        self._params: dict = {}
        # of (self, *parents) when recorded
        self._versions: tuple[int, ...] = ()
        self._retains_grad = False

    # -- what it
    # is ------------------------------------------------------------------

    shape = property(lambda self: self._value.shape)
    ndim = property(lambda self: self._value.ndim)
    size = property(lambda self: self._value.size)
    dtype = property(lambda self: self._value.dtype)
    is_leaf = property(
        lambda self: not self._op, doc="Made by no operation."
    )

    @property
    def value(self) -> np.ndarray:
        return self._value

    @value.setter
    def value(self, new) -> None:
        arr = _frozen(new, self.dtype)
        if arr.shape != self.shape:
            raise ValueError(
                f"a new value must keep the tensor's shape {self.shape}; "
                f"got {arr.shape}"
            )
        self._value = arr
        self._version += 1

    def __repr__(self) -> str:
        made_by = f", op={self._op!r}" if self._op else ""
        return (
            f"Tensor({np.array2string(self._value, precision=4)}{made_by})"
        )

    def __len__(self) -> int:
        return len(self._value)

    def item(self) -> float:
        return self._value.item()

    # -- the
    # operators -------------------------------------------------------------

    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __pow__(self, other):
        return power(self, other)

    def __rpow__(self, other):
        return power(other, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __neg__(self):
        return mul(self, -1)

    def __getitem__(self, index):
        return _apply("getitem", self, index=_plain_index(index))

    @property
    def T(self) -> Tensor:
        return transpose(self)

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        return sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        return mean(self, axis, keepdims)

    def reshape(self, *shape) -> Tensor:
        return reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes) -> Tensor:
        return transpose(self, (axes[0] if len(axes) == 1 else axes) or None)

    # -- reverse
    # mode ----------------------------------------------------------------

    def backward(
        self,
        grad=None,
        retain_graph: bool = False,
        create_graph: bool = False,
    ) -> None:
        """Fill ``.grad`` on the leaves this tensor was computed from
        (eq. ``ad-reverse``).

        grad: the seed ∂E/∂(this tensor), with this tensor's shape. It may be
        left out only when this tensor holds a single number (the loss); it
        is then 1. retain_graph: keep the graph, to go through it again; by
        default it is released as the pass goes. create_graph: record the
        backward pass itself, each VJP computed with Tensor operations, so
        that ``.grad`` is a Tensor with a graph (``requires_grad`` wherever
        it depends on an input that requires one) and can be differentiated
        again; it implies ``retain_graph``, as in PyTorch. A fused layer
        (``linear`` excepted) is then refused: it is first-order only.
        """
        seed = _seed(self, grad, create_graph)
        _backward(self, seed, retain_graph or create_graph, create_graph)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this tensor too, though an operation made it."""
        self._retains_grad = True

    def zero_grad(self) -> None:
        """Clear ``.grad`` on this tensor and on all it was computed from.

        On a leaf, only its own. Refused once backward() has released the
        graph, which no longer knows the leaves: clear theirs,
        ``leaf.zero_grad()``.
        """
        order = _topological_order(self)
        if any(node._op and not node._parents for node in order):
            raise RuntimeError(
                "zero_grad() on a graph that backward() has released: call "
                "zero_grad() on the leaves (or set leaf.grad = None)"
            )
        for node in order:
            node.grad = None


# --- recording -------------------------------------------------------------

_recording = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run operations without recording them, as ``torch.no_grad``.

    Inside, every output is a constant with no parents: values (and tangents)
    are computed, no graph is kept.
    """
    global _recording
    before, _recording = _recording, False
    try:
        yield
    finally:
        _recording = before


def _apply(op: str, *inputs, **params) -> Tensor:
    """Run ``op`` forward; record it if an input needs a gradient."""
    tensors = _as_tensors(inputs)
    values = [t.value for t in tensors]
    out = Tensor(RULES[op][0](*values, **params), requires_grad=False)
    # record the node
    if _recording and any(t.requires_grad for t in tensors):
        out.requires_grad, out._op, out._params = True, op, params
        out._parents = tensors
        out._versions = tuple(t._version for t in (out, *tensors))
    # forward mode, eq. ad-jvp
    if any(t.tangent is not None for t in tensors):
        out.tangent = _push_tangent(op, out, tensors, params)
    return out


def _as_tensors(inputs) -> tuple[Tensor, ...]:
    """An operation's inputs as Tensors; arrays and numbers are constants.

    A Python number takes the dtype of the arrays it meets, as in numpy
    (NEP 50).
    """
    xs = [
        x
        if isinstance(x, Tensor) or _is_number(x)
        else Tensor(x, requires_grad=False)
        for x in inputs
    ]
    dtypes = [x.dtype for x in xs if isinstance(x, Tensor)]
    # the dtype a number gets
    weak = np.result_type(*dtypes) if dtypes else np.float64
    return tuple(
        x
        if isinstance(x, Tensor)
        else Tensor(np.array(x, weak), requires_grad=False)
        for x in xs
    )


def _is_number(x) -> bool:
    """A Python int or float (numpy scalars, np.float64 too, are arrays)."""
    return isinstance(x, int | float) and not isinstance(x, np.generic)


def _push_tangent(op: str, out: Tensor, tensors, params) -> np.ndarray:
    """``J v`` of one primitive: the sum over its inputs of ``J_i v_i``
    (eq. ``ad-jvp``)."""
    if op not in JVP_RULES:
        raise NotImplementedError(f"forward mode has no JVP rule for {op!r}")
    jvp, values = JVP_RULES[op], [t.value for t in tensors]
    # a fused op: every tangent at once, zeros where there is none
    if callable(jvp):
        ts = [
            np.zeros_like(t.value) if t.tangent is None else t.tangent
            for t in tensors
        ]
        tangent = jvp(ts, out.value, *values, **params)
    else:  # one JVP per input that has a tangent
        tangent = np.zeros((), out.dtype)
        for jvp_i, t in zip(jvp, tensors):
            if t.tangent is not None:
                tangent = tangent + jvp_i(
                    t.tangent, out.value, *values, **params
                )
    return np.broadcast_to(tangent, out.shape).astype(out.dtype)


def _tangent_like(tangent, value: np.ndarray) -> np.ndarray:
    t = np.array(tangent, dtype=value.dtype)
    if t.shape != value.shape:
        raise ValueError(
            f"a tangent must have its tensor's shape {value.shape}; got "
            f"{t.shape}"
        )
    return t


def _plain_index(index):
    """An index with any Tensor in it replaced by its integers (a copy)."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.value.astype(np.intp)
    if isinstance(index, np.ndarray):
        return index.copy()
    return index


# --- the backward pass -----------------------------------------------------


def _seed(root: Tensor, grad, create_graph: bool):
    """The checked seed ∂E/∂root: an array, or a Tensor for create_graph."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward() on a tensor that requires no gradient: nothing "
            "it was computed from has requires_grad=True"
        )
    if grad is None:
        if root.size != 1:
            raise ValueError(
                "backward() without a seed gradient needs a single "
                f"number (a loss); this tensor has shape {root.shape}. "
                f"Pass backward(grad) with grad of shape {root.shape}, "
                "or reduce it first, e.g. y.sum().backward()"
            )
        grad = np.ones_like(root._value)
    if isinstance(grad, Tensor):
        seed = grad if create_graph else grad.value
    else:
        seed = np.asarray(grad, dtype=root.dtype)
    if seed.shape != root.shape:
        raise ValueError(
            "the seed gradient must have the tensor's shape "
            f"{root.shape}; got {seed.shape}"
        )
    if create_graph and not isinstance(seed, Tensor):
        seed = Tensor(seed, requires_grad=False)
    return seed


def _backward(root, seed, retain_graph, create_graph, wanted=None):
    """One reverse pass from ``root``, seeded with ``seed``.

    With ``wanted`` (ids of tensors) the gradients of those tensors are
    returned, by id, and no ``.grad`` is touched; otherwise the leaves (and
    the tensors that retain it) accumulate theirs in ``.grad``. With
    ``create_graph`` the VJPs are Tensor operations
    (:func:`_pullback_tensor`) and the gradients are Tensors.
    """
    pull = _pullback_tensor if create_graph else _pullback
    # gradients that have arrived, not yet passed on
    pending = {id(root): seed}
    found = {}
    order = [node for node in _topological_order(root) if node.requires_grad]
    for node in reversed(order):
        g = pending.pop(id(node))
        if wanted is not None:
            if id(node) in wanted:
                found[id(node)] = g
        elif node.is_leaf or node._retains_grad:
            # a fresh array of its own
            if node.grad is None:
                node.grad = g if create_graph else np.array(g)
            else:
                node.grad = node.grad + g
        if node.is_leaf:
            continue
        for parent, gp in zip(node._parents, pull(node, g)):
            if gp is None:  # a constant: no gradient
                continue
            # used more than once: the uses add
            if id(parent) in pending:
                pending[id(parent)] = pending[id(parent)] + gp
            else:
                pending[id(parent)] = gp
        # release the inputs, and the values the VJPs read
        if not retain_graph:
            node._parents = ()
    return found


def _pullback_tensor(node: Tensor, g: Tensor) -> list[Tensor | None]:
    """:func:`_pullback` with the VJPs in Tensor operations, recorded, so
    that the gradient can be differentiated again."""
    _check_saved(node)
    rules = TENSOR_RULES.get(node._op)
    if rules is None:
        hint = FIRST_ORDER_HINTS.get(
            node._op, "build it from the elementary operations"
        )
        raise NotImplementedError(
            f"{node._op!r} is first-order only: {hint} to differentiate "
            "twice (backward(create_graph=True) needs every VJP in "
            "Tensor operations)"
        )
    pulled = []
    for rule, parent in zip(rules, node._parents):
        if not parent.requires_grad:  # a constant: no gradient
            pulled.append(None)
            continue
        gp = rule(g, node, *node._parents, **node._params)
        if gp.shape != parent.shape:  # broadcast forward: sum the copies
            gp = _tensor_rules.unbroadcast(gp, parent.shape)
        if gp.dtype != parent.dtype:  # as the numpy pass: parent's dtype
            gp = astype(gp, parent.dtype)
        pulled.append(gp)
    return pulled


def _pullback(node: Tensor, g: np.ndarray) -> list[np.ndarray | None]:
    """What ``node`` sends back to each of its inputs, ``J_{node,input}ᵀ g``.

    The primitive's VJP for every input that requires a gradient
    (``None`` for the others), then, for an input that was broadcast in the
    forward pass, the sum over its copies (eq. ``mb-unbroadcast``): each
    result has its input's shape and dtype.
    """
    _check_saved(node)
    vjp, values = RULES[node._op][1], [p.value for p in node._parents]
    needs = [p.requires_grad for p in node._parents]
    # a fused op: every gradient at once; keep those needed
    if callable(vjp):
        every = vjp(g, node.value, *values, needs=needs, **node._params)
        grads = [gi if need else None for gi, need in zip(every, needs)]
    else:  # one VJP per input: call only those needed
        grads = [
            vjp_i(g, node.value, *values, **node._params) if need else None
            for vjp_i, need in zip(vjp, needs)
        ]
    pulled = []
    for parent, gp in zip(node._parents, grads):
        # broadcast forward:
        if gp is not None and np.shape(gp) != parent.shape:
            gp = unbroadcast(gp, parent.shape)  # sum over the copies
        pulled.append(None if gp is None else np.asarray(gp, parent.dtype))
    return pulled


def _check_saved(node: Tensor) -> None:
    """Refuse a node whose graph is released or whose inputs changed."""
    if not node._parents:
        raise RuntimeError(
            f"backward through {node._op!r} a second time: the first "
            "backward() released the graph. Call "
            "backward(retain_graph=True) the first time to go through it "
            "again, or compute the forward pass again"
        )
    for i, (t, version) in enumerate(
        zip((node, *node._parents), node._versions)
    ):
        if t._version != version:
            which = "its output" if i == 0 else f"its input {i - 1}"
            raise RuntimeError(
                f"{node._op!r}: {which}, of shape {t.shape}, was changed "
                f"after the forward pass (version {t._version}, recorded at "
                f"version {version}); its gradient would belong to values "
                "the forward pass never saw. Compute the forward pass "
                "again after the change"
            )


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor ``root`` depends on, each after all of its inputs.

    Depth-first, with an explicit stack instead of recursion, so that a chain
    of any length is fine: Python's recursion limit (1000) does not apply.
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))  # comes back after all of its inputs
        stack.extend(
            (p, False) for p in node._parents if id(p) not in visited
        )
    return order


def _binary(op: str, x, y) -> Tensor:
    """An element-wise primitive of two arrays that numpy broadcasts."""
    shapes = [
        np.shape(v.value if isinstance(v, Tensor) else v) for v in (x, y)
    ]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {shapes[0]} and {shapes[1]} do not broadcast; "
            "aligned at the right, each pair of lengths must be equal or "
            "contain a 1"
        ) from None
    return _apply(op, x, y)


# --- the primitives as functions -------------------------------------------


def add(x, y) -> Tensor:
    """``x + y``, with numpy broadcasting."""
    return _binary("add", x, y)


def sub(x, y) -> Tensor:
    """``x − y``, with numpy broadcasting."""
    return _binary("sub", x, y)


def mul(x, y) -> Tensor:
    """``x ⊙ y``, with numpy broadcasting."""
    return _binary("mul", x, y)


def div(x, y) -> Tensor:
    """``x / y``, with numpy broadcasting."""
    return _binary("div", x, y)


def power(x, y) -> Tensor:
    """``x ** y``; a constant exponent (number, array) gets no gradient."""
    if isinstance(y, Tensor):
        return _binary("pow", x, y)
    return _apply("pow_const", x, c=y)


def matmul(x, y) -> Tensor:
    """``x @ y`` as numpy does it: vectors, matrices, stacks of them."""
    sx, sy = (
        np.shape(v.value if isinstance(v, Tensor) else v) for v in (x, y)
    )
    inner_x, inner_y = sx[-1:], sy[-2:-1] if len(sy) > 1 else sy
    if not sx or not sy or inner_x != inner_y:
        raise ValueError(
            f"matmul: shapes {sx} and {sy} do not fit: x @ y needs the last "
            "axis of x to match the "
            f"{'first' if len(sy) == 1 else 'second-to-last'} axis of y"
        )
    return _apply("matmul", x, y)


def exp(x) -> Tensor:
    """``e^x``, element-wise."""
    return _apply("exp", x)


def log(x) -> Tensor:
    """Natural logarithm, element-wise."""
    return _apply("log", x)


def tanh(x) -> Tensor:
    """``tanh``, element-wise; its VJP is ``layers.tanh_vjp``
    (eq. ``grad-z``)."""
    return _apply("tanh", x)


def sigmoid(x) -> Tensor:
    """``σ``, element-wise; its VJP is ``layers.sigmoid_vjp``."""
    return _apply("sigmoid", x)


def relu(x) -> Tensor:
    """``max(x, 0)``, element-wise; its VJP is ``layers.relu_vjp``."""
    return _apply("relu", x)


def gelu(x) -> Tensor:
    """GELU (tanh form), element-wise; its VJP is ``layers.gelu_vjp``."""
    return _apply("gelu", x)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (an int, a tuple, or ``None`` for every axis)."""
    return _apply("sum", x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (an int, a tuple, or ``None`` for every axis)."""
    return _apply("mean", x, axis=axis, keepdims=keepdims)


def reshape(x, shape) -> Tensor:
    """The same entries in row-major order, laid out in ``shape``."""
    x = x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)
    try:
        np.empty(x.shape).reshape(shape)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"cannot reshape a tensor of shape {x.shape}: {exc}"
        ) from None
    return _apply("reshape", x, shape=shape)


def scatter_add(x, index, shape) -> Tensor:
    """Zeros of ``shape`` with ``x`` added at ``[index]``; repeats add.

    The adjoint of indexing: ``scatter_add(g, index, X.shape)`` is the VJP
    of ``X[index]``, and the VJP of ``scatter_add`` is indexing again, so
    a gradient through ``getitem`` can be differentiated twice. x: the
    shape that ``np.zeros(shape)[index]`` has.
    """
    x = x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)
    index, shape = _plain_index(index), tuple(shape)
    try:
        picked = np.empty(shape)[index].shape
    except (IndexError, TypeError, ValueError) as exc:
        raise ValueError(
            f"scatter_add: index does not fit shape {shape}: {exc}"
        ) from None
    if x.shape != picked:
        raise ValueError(
            f"scatter_add: an array of shape {shape} indexed so has shape "
            f"{picked}; x has shape {x.shape}"
        )
    return _apply("scatter_add", x, index=index, shape=shape)


def astype(x, dtype) -> Tensor:
    """``x`` in another float dtype (float32, float64); the gradient is
    cast back to ``x``'s."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"astype: a float dtype is needed; got {dtype}")
    return _apply("astype", x, dtype=dtype)


def transpose(x, axes=None) -> Tensor:
    """Permute the axes (reverse if ``axes`` is None); ``x.T`` if 2-D."""
    return _apply("transpose", x, axes=None if axes is None else tuple(axes))


def einsum(spec: str, *operands) -> Tensor:
    """``np.einsum(spec, *operands)``, differentiable in every operand.

    Explicit (``"bij,bjk->bik"``) and implicit (``"ij,jk"``) forms, repeated
    letters (``"ii->i"``) and ``...`` are all accepted.
    """
    values = [
        o.value if isinstance(o, Tensor) else np.asarray(o) for o in operands
    ]
    try:
        np.einsum(spec, *values)
        _einsum_parts(spec, [v.shape for v in values])
    except ValueError as exc:
        raise ValueError(
            f"einsum {spec!r} with shapes {[v.shape for v in values]}: {exc}"
        ) from None
    return _apply("einsum", *operands, spec=spec)


def softmax(x) -> Tensor:
    """Softmax along the last axis; its VJP is ``losses.softmax_vjp``
    (eq. ``grad-softmax``)."""
    return _apply("softmax", x)


def softmax_cross_entropy(logits, labels) -> Tensor:
    """Mean cross-entropy of ``softmax(logits)`` against integer labels.

    logits: (B, n_L).  labels: (B,) integers. Forward and VJP are
    ``losses.softmax_cross_entropy`` (eqs. ``loss-ce``, ``grad-ce``).
    """
    return _apply("softmax_cross_entropy", logits, labels=np.array(labels))


def mse(prediction, target) -> Tensor:
    """``losses.mse``, the mean squared error; differentiable in both."""
    return _binary("mse", prediction, target)


def linear(A, W, b) -> Tensor:
    """``A Wᵀ + b`` as one primitive, with ``layers.linear_vjp``
    (eq. ``batch-grads``)."""
    return _apply("linear", A, W, b)


def layer_norm(X, gamma, beta, eps: float = 1e-5) -> Tensor:
    """``norm.layer_norm`` over the last axis, with its VJP."""
    return _apply("layer_norm", X, gamma, beta, eps=eps)


def batch_norm(X, gamma, beta, eps: float = 1e-5) -> Tensor:
    """``norm.batch_norm`` (training mode, X (B, n)), with its VJP."""
    return _apply("batch_norm", X, gamma, beta, eps=eps)


def conv2d(X, W, b=None, stride=1, padding=0) -> Tensor:
    """``conv.conv2d`` (NCHW), with its VJP; ``b=None`` means no bias."""
    if b is None:
        W_value = W.value if isinstance(W, Tensor) else np.asarray(W)
        b = np.zeros(W_value.shape[0], W_value.dtype)
    return _apply("conv2d", X, W, b, stride=stride, padding=padding)


def rnn(X, h0, W_xh, W_hh, b) -> Tensor:
    """``recurrent.rnn``: the hidden states (B, T, n_h), with its VJP."""
    return _apply("rnn", X, h0, W_xh, W_hh, b)


def lstm(X, h0, c0, W_xh, W_hh, b) -> tuple[Tensor, Tensor]:
    """``recurrent.lstm``: the states ``(H, C)``, each (B, T, n_h).

    One primitive, ``"lstm"``, whose output is ``[H, C]`` (B, T, 2 n_h)
    (an op has one output); its VJP is ``recurrent.lstm_vjp`` with
    ``dH, dC`` the two halves of the gradient. H and C are its halves, taken
    by indexing, so a loss of H alone, of C alone or of both works.
    """
    HC = _apply("lstm", X, h0, c0, W_xh, W_hh, b)
    n_h = HC.shape[-1] // 2
    return HC[..., :n_h], HC[..., n_h:]


def gru(X, h0, W_xh, W_hh, b_xh, b_hh) -> Tensor:
    """``recurrent.gru``: the states H (B, T, n_h), with its VJP."""
    return _apply("gru", X, h0, W_xh, W_hh, b_xh, b_hh)


def attention(Q, K, V, causal: bool = False) -> Tensor:
    """``attention.attention``: ``softmax(Q Kᵀ/√d_k) V``, with its VJP."""
    return _apply("attention", Q, K, V, causal=causal)


def embedding(ids, W_emb) -> Tensor:
    """``layers.embedding``, the rows ``W_emb[ids]``; only W_emb gets a
    gradient."""
    return _apply("embedding", W_emb, ids=np.array(ids))


def max_pool2d(X, kernel_size, stride=None, padding=0) -> Tensor:
    """``pooling.max_pool2d`` (NCHW), with ``pooling.max_pool2d_vjp``."""
    return _apply(
        "max_pool2d",
        X,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
    )


def avg_pool2d(X, kernel_size, stride=None, padding=0) -> Tensor:
    """``pooling.avg_pool2d`` (NCHW), with ``pooling.avg_pool2d_vjp``."""
    return _apply(
        "avg_pool2d",
        X,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
    )


def dropout(X, mask, p) -> Tensor:
    """``X ⊙ D / (1 − p)`` for a given mask ``D``, with
    ``layers.dropout_vjp``.

    The engine does not draw the mask: it takes one, a constant of X's
    shape (``layers.dropout_mask(shape, p, rng)``, or the mask that
    ``layers.dropout`` returned). So the backward pass, a rerun for a
    finite-difference check and forward mode all see the same mask; it
    gets no gradient. It is stored as a read-only copy in X's dtype.
    """
    X_value = X.value if isinstance(X, Tensor) else np.asarray(X)
    dtype = X_value.dtype if X_value.dtype.kind == "f" else np.float64
    return _apply("dropout", X, mask=_frozen(mask, dtype), p=p)


def solve(M, r) -> Tensor:
    """``implicit.solve``, ``x = M⁻¹ r`` (r (n,) or (n, k)), with
    ``implicit.solve_vjp``."""
    return _apply("solve", M, r)


# --- conveniences ----------------------------------------------------------


def grad(f: Callable[[Tensor], Tensor], x) -> np.ndarray:
    """The gradient of a scalar ``f`` at ``x``, by one reverse pass."""
    x = Tensor(x)
    out = f(x)
    if isinstance(out, Tensor) and out.requires_grad:
        out.backward()
    return np.zeros_like(x.value) if x.grad is None else x.grad


def gradients(
    E: Tensor,
    inputs,
    grad=None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
):
    """∂E/∂x for each Tensor x of ``inputs``, as ``torch.autograd.grad``.

    One reverse pass from ``E``, which leaves every ``.grad`` untouched.
    inputs: a Tensor or a sequence of Tensors that require a gradient
    (leaves or not). grad: the seed, as for ``backward``. create_graph:
    record the pass (the VJPs in Tensor operations), so that the results
    can be differentiated again; retain_graph defaults to it. Returns, in
    the order of ``inputs`` (one result for one Tensor), numpy arrays, or
    Tensors when ``create_graph``; an input ``E`` does not depend on gets
    zeros (PyTorch would need ``allow_unused`` and give None).
    """
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            got = "a constant" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"gradients: inputs[{i}] must be a Tensor that requires a "
                f"gradient; got {got}"
            )
    seed = _seed(E, grad, create_graph)
    retain = create_graph if retain_graph is None else retain_graph
    found = _backward(
        E, seed, retain, create_graph, wanted={id(x) for x in inputs}
    )
    results = []
    for x in inputs:
        g = found.get(id(x))
        if g is None:
            g = np.zeros_like(x.value)
            g = Tensor(g, requires_grad=False) if create_graph else g
        elif not create_graph:
            g = np.array(g)
        results.append(g)
    return results[0] if single else results


def hvp(f: Callable, params, V, mode: str = "reverse"):
    """The Hessian of a scalar ``f`` at ``params`` times ``V``, ``H V``,
    with no Hessian formed.

    params: an array, or a list/tuple (nested) of arrays, e.g. an MLP's
    ``[(W, b), ...]``. f: called once with the same structure of Tensors,
    returns a Tensor of one number, e.g. a loss. V: the direction, with the
    structure and shapes of ``params``. mode:

    - ``"reverse"``: reverse-over-reverse. ``g = ∇f`` by a recorded
      backward pass (``create_graph``), then the gradient of ``⟨g, V⟩``,
      ``d(∇f)[V] = H V``, by an ordinary one.
    - ``"forward"``: forward-over-reverse. The forward pass carries the
      tangent ``V``, the backward pass is computed with Tensor operations
      (recording nothing) and carries it on: the tangent of ``g`` is
      ``H V``.

    Returns ``H V`` in the structure of ``params`` (numpy arrays).
    """
    flat, rebuild = _flatten(params, "params")
    directions = _matching(V, params)
    if mode == "reverse":
        xs = [Tensor(p) for p in flat]
        E = _scalar_of(f, rebuild(xs))
        gs = gradients(E, xs, create_graph=True)
        inner = _dot(gs, directions)
        if not inner.requires_grad:  # ∇f does not depend on params
            return rebuild([np.zeros_like(x.value) for x in xs])
        return rebuild(gradients(inner, xs))
    if mode == "forward":
        xs = [Tensor(p, tangent=v) for p, v in zip(flat, directions)]
        E = _scalar_of(f, rebuild(xs))
        with no_grad():
            gs = gradients(E, xs, create_graph=True)
        return rebuild(
            [
                np.zeros_like(x.value) if g.tangent is None else g.tangent
                for x, g in zip(xs, gs)
            ]
        )
    raise ValueError(f'mode must be "reverse" or "forward"; got {mode!r}')


def _scalar_of(f: Callable, P) -> Tensor:
    """``f(P)``, refused unless a Tensor of one number."""
    E = f(P)
    if not isinstance(E, Tensor) or E.size != 1:
        got = type(E).__name__
        got = f"shape {E.shape}" if isinstance(E, Tensor) else got
        raise ValueError(
            f"hvp: f must return a Tensor of one number (a loss); got {got}"
        )
    return E


def _dot(gs, vs) -> Tensor:
    """``⟨g, v⟩`` summed over the pairs: a Tensor of one number."""
    total = sum(gs[0] * vs[0])
    for g, v in zip(gs[1:], vs[1:]):
        total = total + sum(g * v)
    return total


def _flatten(tree, name: str):
    """The arrays of a nested list/tuple, and a function that puts a list
    of the same length back into the structure."""
    leaves = []

    def walk(t):
        if isinstance(t, list | tuple):
            for s in t:
                walk(s)
        else:
            leaves.append(t.value if isinstance(t, Tensor) else t)

    walk(tree)

    def rebuild(values):
        it = iter(values)

        def build(t):
            if isinstance(t, list | tuple):
                return type(t)(build(s) for s in t)
            return next(it)

        return build(tree)

    return leaves, rebuild


def _matching(V, params, path: str = "") -> list[np.ndarray]:
    """The arrays of ``V``, refused at its first difference from
    ``params`` in structure or shape; each in its parameter's dtype."""
    if isinstance(params, list | tuple):
        if not isinstance(V, list | tuple) or len(V) != len(params):
            what = (
                f"{len(V)} entries"
                if isinstance(V, list | tuple)
                else f"an array of shape {np.shape(V)}"
            )
            raise ValueError(
                f"V{path} is {what} but params{path} has {len(params)} "
                "entries: V must have the structure of params"
            )
        return [
            a
            for i, (v, p) in enumerate(zip(V, params))
            for a in _matching(v, p, f"{path}[{i}]")
        ]
    p = params.value if isinstance(params, Tensor) else np.asarray(params)
    if isinstance(V, list | tuple) or np.shape(V) != p.shape:
        what = (
            f"a list of {len(V)}"
            if isinstance(V, list | tuple)
            else f"shape {np.shape(V)}"
        )
        raise ValueError(
            f"V{path} has {what} but params{path} has shape {p.shape}"
        )
    dtype = p.dtype if p.dtype.kind == "f" else np.float64
    return [np.asarray(V, dtype=dtype)]


def jvp(
    f: Callable[..., Tensor], inputs, tangents
) -> tuple[np.ndarray, np.ndarray]:
    """Forward mode: ``f(inputs)`` and its directional derivative ``J v``
    (eq. ``ad-jvp``).

    inputs, tangents: sequences of arrays of matching shapes
    (or one array each); a tangent of ``None`` holds its input fixed. Every
    primitive pushes the tangent forward as the values flow,
    under :func:`no_grad`: no graph is recorded, nothing is kept for a
    backward pass. Returns ``(value, tangent)`` of the output.
    """
    if not isinstance(inputs, list | tuple):
        inputs, tangents = [inputs], [tangents]
    xs = [
        Tensor(x, requires_grad=False, tangent=t)
        for x, t in zip(inputs, tangents, strict=True)
    ]
    with no_grad():
        out = f(*xs)
    tangent = (
        np.zeros_like(out.value) if out.tangent is None else out.tangent
    )
    return np.array(out.value), tangent


# the Tensor rules call the operations above
from backprop import autodiff_tensor_rules as _tensor_rules  # noqa: E402
from backprop.autodiff_tensor_rules import (  # noqa: E402
    FIRST_ORDER_HINTS,
    TENSOR_RULES,
)
