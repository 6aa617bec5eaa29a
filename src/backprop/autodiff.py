"""A reverse-mode automatic differentiation engine built from the book's VJPs.

Every operation on a :class:`Tensor` records which primitive made it and from
which tensors. ``loss.backward()`` then walks that graph once, from the loss back
to the inputs in reverse topological order, and at every node applies the
primitive's VJP to the gradient that has arrived there (eq. ``ad-reverse``).
Three facts do all the work:

- **one rule table**: :data:`RULES` maps each primitive to its forward function
  and its VJP. Where a chapter derived the VJP, the table calls that chapter's
  ``*_vjp`` function, so each derivation is written once;
- **broadcasting is handled once**: a gradient whose shape is not its input's is
  summed over the broadcast axes by ``unbroadcast`` (eq. ``mb-unbroadcast``), in
  :meth:`Tensor.backward`, not in each rule;
- **reuse adds**: a tensor used twice receives the sum of the gradients of its
  uses (the fan-out rule, eq. ``mb-fanout``).

Forward mode runs on the same graph: give an input a ``tangent`` and every
operation pushes it forward with the JVP in :data:`JVP_RULES` (eq. ``ad-jvp``);
see :func:`jvp`.

Usage::

    from backprop import autodiff as ad
    X, W, b = ad.Tensor(X), ad.Tensor(W), ad.Tensor(b)
    loss = ad.softmax_cross_entropy(ad.tanh(X @ W.T + b), labels)
    loss.backward()            # X.grad, W.grad, b.grad are numpy arrays
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Callable

import numpy as np

from backprop import attention as attn
from backprop import conv, layers, losses, norm, recurrent
from backprop.broadcasting import reshape_vjp, transpose_vjp, unbroadcast

__all__ = [
    "Tensor",
    "RULES",
    "JVP_RULES",
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
    "sum",
    "mean",
    "reshape",
    "transpose",
    "einsum",
    "softmax",
    "softmax_cross_entropy",
    "mse",
    "linear",
    "layer_norm",
    "batch_norm",
    "conv2d",
    "rnn",
    "attention",
    "embedding",
    "grad",
    "jvp",
]


# --- VJPs that take more than a line ---------------------------------------------


def _sum_vjp(g, x, axis=None, keepdims=False):
    """A sum sends the same ``g`` back to every entry it added."""
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    return (np.broadcast_to(g, x.shape),)


def _mean_vjp(g, x, axis=None, keepdims=False):
    n = x.size if axis is None else np.prod([x.shape[a] for a in np.atleast_1d(axis)])
    return (_sum_vjp(g, x, axis, keepdims)[0] / n,)


def _matmul_vjp(g, A, B):
    """``C = A B``: ``dA = dC Bᵀ`` and ``dB = Aᵀ dC`` — the linear layer's rule."""
    if A.ndim == 2 and B.ndim == 2:
        dA, dBt, _ = layers.linear_vjp(g, A, B.T)  # C = A (Bᵀ)ᵀ: a layer, W = Bᵀ
        return dA, dBt.T
    if A.ndim == 1 and B.ndim == 1:  # the inner product aᵀb
        return g * B, g * A
    # A vector is a one-row (A) or one-column (B) matrix; stacked matrices
    # broadcast, and backward() sums their gradients back over the batch axes.
    A2 = A[None, :] if A.ndim == 1 else A
    B2 = B[:, None] if B.ndim == 1 else B
    g2 = np.expand_dims(g, -2) if A.ndim == 1 else g
    g2 = np.expand_dims(g2, -1) if B.ndim == 1 else g2
    dA = g2 @ np.swapaxes(B2, -1, -2)
    dB = np.swapaxes(A2, -1, -2) @ g2
    return (dA[..., 0, :] if A.ndim == 1 else dA), (dB[..., 0] if B.ndim == 1 else dB)


def _getitem_vjp(g, x, index):
    """Indexing picks entries; its adjoint puts ``g`` back, adding repeated picks."""
    dx = np.zeros(x.shape, dtype=np.result_type(g, x))
    np.add.at(dx, index, g)
    return (dx,)


def _elementwise(f_vjp):
    """A chapter's element-wise VJP, extended to 0-d arrays (scalar Tensors)."""
    return lambda g, x: (f_vjp(np.atleast_1d(g), np.atleast_1d(x)).reshape(x.shape),)


def _sigmoid(x):
    """``layers.sigmoid``, which never overflows, extended to 0-d arrays."""
    return layers.sigmoid(np.atleast_1d(x)).reshape(x.shape)


def _rows(f):
    """Apply a row-wise (B, K) function of the losses chapter along the last axis."""

    def along_last_axis(*arrays):
        K = arrays[-1].shape[-1]
        return f(*(a.reshape(-1, K) for a in arrays)).reshape(arrays[-1].shape)

    return along_last_axis


def _mse_vjp(g, P, Y):
    dP = losses.mse_vjp(g, np.atleast_1d(P), np.atleast_1d(Y)).reshape(P.shape)
    return dP, -dP


# --- einsum: one rule for every index expression ----------------------------------


def _einsum_parts(spec: str, shapes) -> tuple[list[str], str]:
    """Explicit subscripts: ``...`` spelled out with unused letters, and the output."""
    spec = spec.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    subs = inputs.split(",")
    if len(subs) != len(shapes):
        raise ValueError(
            f"einsum {spec!r} names {len(subs)} operands but got {len(shapes)}"
        )
    free = [c for c in string.ascii_letters if c not in spec]
    ranks = [len(shape) - len(s.replace("...", "")) for s, shape in zip(subs, shapes)]
    ell = "".join(free[: max([r for s, r in zip(subs, ranks) if "..." in s] or [0])])
    subs = [
        s.replace("...", ell[len(ell) - r :] if r else "") for s, r in zip(subs, ranks)
    ]
    if not arrow:  # implicit mode: the broadcast axes, then the letters seen once
        counts = Counter("".join(subs))
        output = ell + "".join(
            sorted(c for c, k in counts.items() if k == 1 and c not in ell)
        )
        return subs, output
    return subs, output.replace("...", ell)


def _einsum_vjp(g, spec, xs):
    """The gradient of operand ``i``: contract ``g`` with every other operand.

    In index form ``C[out] = Σ Π_j X_j[s_j]``, so ``∂E/∂X_i[s_i]`` is the same sum
    with ``X_i`` replaced by ``G[out]`` — another einsum, into ``s_i``. Letters that
    only ``s_i`` has were summed away in the forward pass: their gradient is ``g``
    copied along them. A repeated letter (``ii``) lies on a diagonal.
    """
    subs, out = _einsum_parts(spec, [x.shape for x in xs])
    sizes = {c: n for s, x in zip(subs, xs) for c, n in zip(s, x.shape) if n != 1}
    full = [np.broadcast_to(x, [sizes.get(c, 1) for c in s]) for s, x in zip(subs, xs)]
    grads = []
    for i, s in enumerate(subs):
        others = [(subs[j], full[j]) for j in range(len(xs)) if j != i]
        letters = "".join(dict.fromkeys(s))
        seen = set(out).union(*(o for o, _ in others))
        only_here = "".join(c for c in letters if c not in seen)
        terms, operands = [out, *(o for o, _ in others)], [g, *(x for _, x in others)]
        if only_here:  # copy g along the letters it was summed over
            terms.append(only_here)
            operands.append(np.ones([sizes.get(c, 1) for c in only_here]))
        gi = np.einsum(",".join(terms) + "->" + letters, *operands)
        if len(letters) < len(s):  # a diagonal: write gi onto it, zeros elsewhere
            d = np.zeros(full[i].shape, dtype=gi.dtype)
            np.einsum(f"{s}->{letters}", d)[...] = gi
            gi = d
        grads.append(gi)
    return tuple(grads)


def _einsum_jvp(tangents, spec, xs):
    """An einsum is linear in each operand: add the einsums with one tangent each."""
    out = 0.0
    for i, t in enumerate(tangents):
        out = out + np.einsum(spec, *xs[:i], t, *xs[i + 1 :])
    return out


def _sce(logits, labels):
    return np.array(losses.softmax_cross_entropy(logits, labels)[0])


def _sce_vjp(g, logits, labels):
    return (g * losses.softmax_cross_entropy(logits, labels)[1],)


# --- the rule table: one primitive per line ---------------------------------------
#
#   name: (forward(*values, **params), vjp(g, *values, **params) -> one gradient per
#          input, with the input's shape or a shape that broadcasts to it)

RULES: dict[str, tuple[Callable, Callable]] = {
    "add":       (np.add,        lambda g, x, y: (g, g)),
    "sub":       (np.subtract,   lambda g, x, y: (g, -g)),
    "mul":       (np.multiply,   lambda g, x, y: (g * y, g * x)),
    "div":       (np.divide,     lambda g, x, y: (g / y, -g * x / y**2)),
    "pow":       (np.power,      lambda g, x, y: (g * y * x ** (y - 1), g * x**y * np.log(x))),
    "pow_const": (lambda x, c: x**c, lambda g, x, c: (g * c * x ** (c - 1),)),
    "matmul":    (np.matmul,     _matmul_vjp),
    "exp":       (np.exp,        lambda g, x: (g * np.exp(x),)),
    "log":       (np.log,        lambda g, x: (g / x,)),
    "tanh":      (np.tanh,       _elementwise(layers.tanh_vjp)),
    "sigmoid":   (_sigmoid,      _elementwise(layers.sigmoid_vjp)),
    "relu":      (lambda x: np.maximum(x, 0), _elementwise(layers.relu_vjp)),
    "sum":       (np.sum,        _sum_vjp),
    "mean":      (np.mean,       _mean_vjp),
    "reshape":   (np.reshape,    lambda g, x, shape: (reshape_vjp(np.atleast_1d(g), x.shape),)),
    "transpose": (np.transpose,  lambda g, x, axes=None: (transpose_vjp(g, axes),)),
    "getitem":   (lambda x, index: x[index], _getitem_vjp),
    "einsum":    (lambda *xs, spec: np.einsum(spec, *xs), lambda g, *xs, spec: _einsum_vjp(g, spec, xs)),
    "softmax":   (_rows(losses.softmax), lambda g, x: (_rows(losses.softmax_vjp)(g, x),)),
    "softmax_cross_entropy": (_sce, _sce_vjp),
    "mse":       (lambda p, y: np.mean((p - y) ** 2), _mse_vjp),
    "linear":    (layers.linear, lambda g, A, W, b: layers.linear_vjp(g, A, W)),
    # the layers beyond the MLP: each chapter's op and its VJP, as they are
    "layer_norm": (norm.layer_norm, lambda g, X, gamma, beta, eps: norm.layer_norm_vjp(g, X, gamma, eps)),
    "batch_norm": (norm.batch_norm, lambda g, X, gamma, beta, eps: norm.batch_norm_vjp(g, X, gamma, eps)),
    "conv2d":    (conv.conv2d,   lambda g, X, W, b, **p: conv.conv2d_vjp(g, X, W, **p)),
    "rnn":       (recurrent.rnn, recurrent.rnn_vjp),
    "attention": (attn.attention, attn.attention_vjp),
    "embedding": (lambda E, ids: layers.embedding(ids, E), lambda g, E, ids: (layers.embedding_vjp(g, ids, E),)),
}  # fmt: skip

# Forward mode: the tangent of the output from the tangents ``t`` of the inputs.
JVP_RULES: dict[str, Callable] = {
    "add":       lambda t, x, y: t[0] + t[1],
    "sub":       lambda t, x, y: t[0] - t[1],
    "mul":       lambda t, x, y: t[0] * y + x * t[1],
    "div":       lambda t, x, y: t[0] / y - x * t[1] / y**2,
    "pow":       lambda t, x, y: t[0] * y * x ** (y - 1) + t[1] * x**y * np.log(x),
    "pow_const": lambda t, x, c: t[0] * c * x ** (c - 1),
    "matmul":    lambda t, x, y: t[0] @ y + x @ t[1],
    "exp":       lambda t, x: t[0] * np.exp(x),
    "log":       lambda t, x: t[0] / x,
    "tanh":      lambda t, x: t[0] * (1 - np.tanh(x) ** 2),
    "sigmoid":   lambda t, x: t[0] * _sigmoid(x) * (1 - _sigmoid(x)),
    "relu":      lambda t, x: t[0] * (x > 0),
    "sum":       lambda t, x, **p: np.sum(t[0], **p),
    "mean":      lambda t, x, **p: np.mean(t[0], **p),
    "reshape":   lambda t, x, shape: np.reshape(t[0], shape),
    "transpose": lambda t, x, axes=None: np.transpose(t[0], axes),
    "getitem":   lambda t, x, index: t[0][index],
    "einsum":    lambda t, *xs, spec: _einsum_jvp(t, spec, xs),
    "softmax":   lambda t, x: _rows(losses.softmax_vjp)(t[0], x),  # its Jacobian is symmetric
    "softmax_cross_entropy": lambda t, z, labels: np.sum(_sce_vjp(1.0, z, labels)[0] * t[0]),
    "mse":       lambda t, p, y: np.mean(2 * (p - y) * (t[0] - t[1])),
    "linear":    lambda t, A, W, b: t[0] @ W.T + A @ t[1].T + t[2],
    "conv2d":    lambda t, X, W, b, **p: conv.conv2d(t[0], W, t[2], **p) + conv.conv2d(X, t[1], None, **p),
    "embedding": lambda t, E, ids: layers.embedding(ids, t[0]),
}  # fmt: skip
# layer_norm, batch_norm, rnn and attention have no JVP rule here: forward mode
# through them raises NotImplementedError (exercise: derive one).


# --- the tensor and its graph -----------------------------------------------------


class Tensor:
    """A numpy array that remembers how it was computed.

    ``value``: the array (any rank; integers become float64, float32 stays float32).
    ``grad``: after ``backward()``, ∂E/∂(this tensor), an array of the same shape;
    ``None`` for tensors the loss does not depend on. Gradients accumulate over
    calls to ``backward()``, as in PyTorch; ``zero_grad()`` clears them.
    ``tangent``: for forward mode, the direction in which this input moves.
    """

    __array_ufunc__ = None  # numpy defers to us: ndarray @ Tensor is a Tensor

    def __init__(self, value, tangent=None):
        if isinstance(value, Tensor):
            value = value.value
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"a Tensor holds real numbers; got an array of dtype {arr.dtype}"
            )
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float64)
        self.value = arr
        self.grad: np.ndarray | None = None
        self.tangent = None if tangent is None else _tangent_like(tangent, arr)
        self._parents: tuple[Tensor, ...] = ()
        self._op = ""
        self._params: dict = {}

    # -- what it is ------------------------------------------------------------------

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)
    dtype = property(lambda self: self.value.dtype)

    def __repr__(self) -> str:
        made_by = f", op={self._op!r}" if self._op else ""
        return f"Tensor({np.array2string(self.value, precision=4)}{made_by})"

    def __len__(self) -> int:
        return len(self.value)

    def item(self) -> float:
        return self.value.item()

    # -- the operators -----------------------------------------------------------------

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
        return mul(self, -1.0)

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

    # -- reverse mode ----------------------------------------------------------------

    def backward(self, grad=None) -> None:
        """Fill ``.grad`` on every tensor this one was computed from (eq. ``ad-reverse``).

        grad: the seed ∂E/∂(this tensor), with this tensor's shape. It may be left
        out only when this tensor holds a single number (the loss); it is then 1.
        """
        if grad is None:
            if self.size != 1:
                raise ValueError(
                    f"backward() without a seed gradient needs a single number (a "
                    f"loss); this tensor has shape {self.shape}. Pass "
                    f"backward(grad) with grad of shape {self.shape}, or reduce it "
                    f"first, e.g. y.sum().backward()"
                )
            grad = np.ones_like(self.value)
        grad = np.asarray(grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(
                f"the seed gradient must have the tensor's shape {self.shape}; "
                f"got {grad.shape}"
            )
        pending = {id(self): grad}  # cotangents that have arrived, not yet passed on
        for node in reversed(_topological_order(self)):
            g = pending.pop(id(node))
            node.grad = g if node.grad is None else node.grad + g
            if not node._parents:
                continue
            for parent, gp in zip(node._parents, _pullback(node, g)):
                if id(parent) in pending:  # used more than once: the uses add
                    pending[id(parent)] = pending[id(parent)] + gp
                else:
                    pending[id(parent)] = gp

    def zero_grad(self) -> None:
        """Clear ``.grad`` on this tensor and on everything it was computed from."""
        for node in _topological_order(self):
            node.grad = None


def _pullback(node: Tensor, g: np.ndarray) -> list[np.ndarray]:
    """What ``node`` sends back to each of its inputs, ``J_{node,input}ᵀ g``.

    The primitive's VJP, then, for an input that was broadcast in the forward pass,
    the sum over its copies (eq. ``mb-unbroadcast``): each result has its input's
    shape and dtype.
    """
    vjp = RULES[node._op][1]
    grads = vjp(g, *(p.value for p in node._parents), **node._params)
    pulled = []
    for parent, gp in zip(node._parents, grads):
        if np.shape(gp) != parent.shape:  # broadcast in the forward pass:
            gp = unbroadcast(gp, parent.shape)  # sum over the copies
        pulled.append(np.asarray(gp, dtype=parent.dtype))
    return pulled


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor ``root`` depends on, each after all of its inputs.

    Depth-first, with an explicit stack instead of recursion, so that a chain of
    any length is fine: Python's recursion limit (1000) does not apply.
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
        stack.extend((p, False) for p in node._parents if id(p) not in visited)
    return order


def _tangent_like(tangent, value: np.ndarray) -> np.ndarray:
    t = np.asarray(tangent, dtype=value.dtype)
    if t.shape != value.shape:
        raise ValueError(
            f"a tangent must have its tensor's shape {value.shape}; got {t.shape}"
        )
    return t


def _plain_index(index):
    """An index with any Tensor in it replaced by its integer values."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.value.astype(np.intp)
    return index


def _apply(op: str, *inputs, **params) -> Tensor:
    """Run primitive ``op`` forward and record it in the graph."""
    tensors = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
    values = [t.value for t in tensors]
    out = Tensor(RULES[op][0](*values, **params))
    out._parents, out._op, out._params = tensors, op, params
    if any(t.tangent is not None for t in tensors):  # forward mode, eq. ad-jvp
        if op not in JVP_RULES:
            raise NotImplementedError(f"forward mode has no JVP rule for {op!r}")
        tangents = [
            np.zeros_like(t.value) if t.tangent is None else t.tangent for t in tensors
        ]
        out.tangent = np.asarray(JVP_RULES[op](tangents, *values, **params))
    return out


def _binary(op: str, x, y) -> Tensor:
    """An element-wise primitive of two arrays that numpy broadcasts together."""
    shapes = [np.shape(v.value if isinstance(v, Tensor) else v) for v in (x, y)]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {shapes[0]} and {shapes[1]} do not broadcast; aligned at "
            f"the right, each pair of lengths must be equal or contain a 1"
        ) from None
    return _apply(op, x, y)


# --- the primitives as functions --------------------------------------------------


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
    """``x ** y``; a constant exponent (a number, or an array) is not differentiated."""
    if isinstance(y, Tensor):
        return _binary("pow", x, y)
    if not isinstance(x, Tensor):
        x = Tensor(x)
    return _apply("pow_const", x, c=y)


def matmul(x, y) -> Tensor:
    """``x @ y`` as numpy computes it: vectors, matrices, and stacks of matrices."""
    sx, sy = (np.shape(v.value if isinstance(v, Tensor) else v) for v in (x, y))
    inner_x, inner_y = sx[-1:], sy[-2:-1] if len(sy) > 1 else sy
    if not sx or not sy or inner_x != inner_y:
        raise ValueError(
            f"matmul: shapes {sx} and {sy} do not fit: x @ y needs the last axis of x "
            f"to match the {'first' if len(sy) == 1 else 'second-to-last'} axis of y"
        )
    return _apply("matmul", x, y)


def exp(x) -> Tensor:
    """``e^x``, element-wise."""
    return _apply("exp", x)


def log(x) -> Tensor:
    """Natural logarithm, element-wise."""
    return _apply("log", x)


def tanh(x) -> Tensor:
    """``tanh``, element-wise; its VJP is ``layers.tanh_vjp`` (eq. ``grad-z``)."""
    return _apply("tanh", x)


def sigmoid(x) -> Tensor:
    """``σ``, element-wise; its VJP is ``layers.sigmoid_vjp``."""
    return _apply("sigmoid", x)


def relu(x) -> Tensor:
    """``max(x, 0)``, element-wise; its VJP is ``layers.relu_vjp``."""
    return _apply("relu", x)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (an int, a tuple, or ``None`` for every axis)."""
    return _apply("sum", x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (an int, a tuple, or ``None`` for every axis)."""
    return _apply("mean", x, axis=axis, keepdims=keepdims)


def reshape(x, shape) -> Tensor:
    """The same entries in row-major order, laid out in ``shape``."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    try:
        np.empty(x.shape).reshape(shape)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot reshape a tensor of shape {x.shape}: {exc}") from None
    return _apply("reshape", x, shape=shape)


def transpose(x, axes=None) -> Tensor:
    """Permute the axes (reverse them when ``axes`` is ``None``); ``x.T`` for a matrix."""
    return _apply("transpose", x, axes=None if axes is None else tuple(axes))


def einsum(spec: str, *operands) -> Tensor:
    """``np.einsum(spec, *operands)``, differentiable in every operand.

    Explicit (``"bij,bjk->bik"``) and implicit (``"ij,jk"``) forms, repeated
    letters (``"ii->i"``) and ``...`` are all accepted.
    """
    values = [o.value if isinstance(o, Tensor) else np.asarray(o) for o in operands]
    try:
        np.einsum(spec, *values)
        _einsum_parts(spec, [v.shape for v in values])
    except ValueError as exc:
        raise ValueError(
            f"einsum {spec!r} with shapes {[v.shape for v in values]}: {exc}"
        ) from None
    return _apply("einsum", *operands, spec=spec)


def softmax(x) -> Tensor:
    """Softmax along the last axis; its VJP is ``losses.softmax_vjp`` (eq. ``grad-softmax``)."""
    return _apply("softmax", x)


def softmax_cross_entropy(logits, labels) -> Tensor:
    """Mean cross-entropy of ``softmax(logits)`` against integer labels: a scalar.

    logits: (B, K).  labels: (B,) integers. Forward and VJP are
    ``losses.softmax_cross_entropy`` (eqs. ``loss-ce``, ``grad-ce``).
    """
    return _apply("softmax_cross_entropy", logits, labels=np.asarray(labels))


def mse(prediction, target) -> Tensor:
    """Mean squared error over every entry (``losses.mse``); differentiable in both."""
    return _binary("mse", prediction, target)


def linear(A, W, b) -> Tensor:
    """``A Wᵀ + b`` as one primitive, with ``layers.linear_vjp`` (eq. ``batch-grads``)."""
    return _apply("linear", A, W, b)


def layer_norm(X, gamma, beta, eps: float = 1e-5) -> Tensor:
    """``norm.layer_norm`` over the last axis, with ``norm.layer_norm_vjp``."""
    return _apply("layer_norm", X, gamma, beta, eps=eps)


def batch_norm(X, gamma, beta, eps: float = 1e-5) -> Tensor:
    """``norm.batch_norm`` (training mode, X (B, n)), with ``norm.batch_norm_vjp``."""
    return _apply("batch_norm", X, gamma, beta, eps=eps)


def conv2d(X, W, b=None, stride=1, padding=0) -> Tensor:
    """``conv.conv2d`` (NCHW), with ``conv.conv2d_vjp``; ``b=None`` means no bias."""
    if b is None:
        b = np.zeros(np.shape(W.value if isinstance(W, Tensor) else W)[0])
    return _apply("conv2d", X, W, b, stride=stride, padding=padding)


def rnn(X, h0, W_xh, W_hh, b) -> Tensor:
    """``recurrent.rnn``: the hidden states (B, T, n_h), with ``recurrent.rnn_vjp``."""
    return _apply("rnn", X, h0, W_xh, W_hh, b)


def attention(Q, K, V, causal: bool = False) -> Tensor:
    """``attention.attention``: ``softmax(Q Kᵀ/√d) V``, with ``attention_vjp``."""
    return _apply("attention", Q, K, V, causal=causal)


def embedding(ids, E) -> Tensor:
    """``layers.embedding``: the rows ``E[ids]``; the gradient reaches ``E`` only."""
    return _apply("embedding", E, ids=np.asarray(ids))


# --- conveniences -------------------------------------------------------------------


def grad(f: Callable[[Tensor], Tensor], x) -> np.ndarray:
    """The gradient of a scalar function ``f`` at ``x``, by one reverse pass."""
    x = Tensor(x)
    f(x).backward()
    return np.zeros_like(x.value) if x.grad is None else x.grad


def jvp(f: Callable[..., Tensor], inputs, tangents) -> tuple[np.ndarray, np.ndarray]:
    """Forward mode: ``f(inputs)`` and its directional derivative ``J v`` (eq. ``ad-jvp``).

    inputs, tangents: sequences of arrays of matching shapes (or one array each).
    Every primitive pushes the tangent forward as the values flow; no graph is
    walked backward. Returns ``(value, tangent)`` of the output.
    """
    if not isinstance(inputs, list | tuple):
        inputs, tangents = [inputs], [tangents]
    xs = [Tensor(x, tangent=t) for x, t in zip(inputs, tangents, strict=True)]
    out = f(*xs)
    tangent = np.zeros_like(out.value) if out.tangent is None else out.tangent
    return out.value, tangent
