"""Copying, summing, rearranging: a batch's linear maps and their adjoints.

A batch adds no new calculus, only a few linear maps that move numbers around
without doing arithmetic on them. Each comes with its VJP, which for a linear
map is its adjoint ``F*``, the one map with ``⟨F(x), g⟩ = ⟨x, F*(g)⟩`` for
all ``x`` and ``g`` (eq. ``mb-adjoint``):

- broadcasting copies, so its adjoint sums over the copies
  (eqs. ``mb-broadcast``, ``mb-unbroadcast``); the bias of a batch,
  ``b ↦ 1 bᵀ``, is the case every layer meets;
- fanning a value out to ``k`` uses copies it, so its adjoint adds the ``k``
  gradients (eq. ``mb-fanout``);
- transposing (permuting axes) and reshaping only relabel the entries, so
  their adjoints relabel them back (eqs. ``mb-transpose``, ``mb-reshape``).

Every function is pure: it checks its arguments, never modifies them, and
returns a new array.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backprop._checks import as_real_array, check_batch, positive_int

__all__ = [
    "broadcast_rows",
    "broadcast_rows_vjp",
    "broadcast",
    "unbroadcast",
    "fanout",
    "fanout_vjp",
    "transpose",
    "transpose_vjp",
    "reshape",
    "reshape_vjp",
]


def _shape(name: str, shape) -> tuple[int, ...]:
    """A shape as a tuple of ints ≥ 0; an int ``n`` means ``(n,)``."""
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(
            f"{name} must be a tuple of integers; got {type(shape).__name__}"
        ) from None
    for d in dims:
        if (
            isinstance(d, bool)
            or not isinstance(d, int | np.integer)
            or d < 0
        ):
            raise ValueError(
                f"{name} must be a tuple of non-negative integers; got "
                f"{dims!r}"
            )
    return tuple(int(d) for d in dims)


# --- broadcast ↔ sum -------------------------------------------------------


def broadcast_rows(b, B: int) -> np.ndarray:
    """Copy a vector into every row: ``b ↦ 1 bᵀ``  (eq. ``mb-broadcast``).

    This is the bias term of eq. ``batch-forward``.
    b: (n,).  B: the number of rows, a positive integer.
    Returns a new (B, n) array whose every row is ``b``.
    """
    b = as_real_array("b", b, ndim=1)
    B = positive_int("B", B)
    return np.ones((B, 1)) @ b[None, :]


def broadcast_rows_vjp(G) -> np.ndarray:
    """The adjoint of ``b ↦ 1 bᵀ``: the column sums ``Gᵀ 1``
    (eq. ``mb-broadcast``).

    G: (B, n), the gradient with respect to ``1 bᵀ``.  Returns (n,), the sum
    of the rows of ``G``: every copy of ``b`` sends its gradient back, and
    they add (eq. ``diff-broadcast-adjoint``).
    """
    G = check_batch("G", G)
    return G.T @ np.ones(G.shape[0])


def broadcast(x, shape) -> np.ndarray:
    """numpy's broadcasting of ``x`` to ``shape``, as a new array.

    x: any shape that broadcasts to ``shape`` under numpy's rules: align the
    shapes at the right, prepend axes of length 1 to ``x`` as needed, and
    stretch every axis of length 1 to the length in ``shape``. Entry ``j`` of
    the result is entry ``π(j)`` of ``x``, where ``π`` drops the prepended
    axes and sets the index of every stretched axis to 0. Its adjoint is
    ``unbroadcast`` (eq. ``mb-unbroadcast``).
    """
    x = as_real_array("x", x)
    shape = _shape("shape", shape)
    _check_broadcastable("x of shape", x.shape, shape)
    return np.array(np.broadcast_to(x, shape))


def _check_broadcastable(
    name: str, small: tuple[int, ...], big: tuple[int, ...]
):
    """Refuse unless ``small`` broadcasts to ``big``, ``big`` unchanged."""
    if len(small) > len(big):
        raise ValueError(
            f"{name} {small} has {len(small)} axes and cannot be broadcast "
            f"to shape {big}, which has {len(big)}"
        )
    for axis, (s, S) in enumerate(zip(small, big[len(big) - len(small) :])):
        if s not in (1, S):
            raise ValueError(
                f"{name} {small} cannot be broadcast to shape {big}: its "
                f"axis {axis} has length {s}, which is neither 1 nor {S}"
            )


def unbroadcast(G, shape) -> np.ndarray:
    """The adjoint of broadcasting to ``G.shape``: sum ``G`` to ``shape``.

    G: the gradient with respect to the broadcast result.  shape: the shape
    of the array that was broadcast; it must broadcast to ``G.shape``.
    Returns an array of ``shape`` whose entry ``i`` is the sum of the entries
    ``G[j]`` with ``π(j) = i`` (eq. ``mb-unbroadcast``): sum over the leading
    axes that broadcasting added, then, keeping the axis, over every axis of
    length 1 that it stretched. This is the rule of HIPS autograd's
    ``unbroadcast``.
    """
    G = as_real_array("G", G)
    shape = _shape("shape", shape)
    _check_broadcastable("the target shape", shape, G.shape)
    added = G.ndim - len(shape)
    out = G.sum(axis=tuple(range(added))) if added else G
    stretched = tuple(
        axis
        for axis, (s, S) in enumerate(zip(shape, out.shape))
        if s == 1 and S != 1
    )
    if stretched:
        out = out.sum(axis=stretched, keepdims=True)
    return np.array(out, dtype=np.float64).reshape(shape)


# --- fan-out ↔ add ---------------------------------------------------------


def fanout(x, k: int) -> tuple[np.ndarray, ...]:
    """Hand the same value to ``k`` uses: ``x ↦ (x, …, x)``
    (eq. ``mb-fanout``).

    x: any shape.  k: a positive integer.  Returns a tuple of ``k``
    independent copies.
    """
    x = as_real_array("x", x)
    k = positive_int("k", k)
    return tuple(x.copy() for _ in range(k))


def fanout_vjp(gs: Sequence) -> np.ndarray:
    """The adjoint of fan-out: add the gradients of the uses
    (eq. ``mb-fanout``).

    gs: a non-empty sequence of ``k`` arrays of one shape (or one array whose
    leading axis counts the uses). Returns their sum, with that shape.
    """
    if isinstance(gs, np.ndarray) and gs.ndim < 2:
        raise ValueError(
            "gs must hold one gradient per use: a sequence of arrays, or "
            "an array with a leading axis for the uses; got an array of "
            f"shape {gs.shape}"
        )
    try:
        items = list(gs)
    except TypeError:
        raise ValueError(
            f"gs must be a sequence of gradients; got {type(gs).__name__}"
        ) from None
    if not items:
        raise ValueError("gs must hold at least one gradient; got none")
    arrays = [as_real_array(f"gs[{i}]", g) for i, g in enumerate(items)]
    for i, g in enumerate(arrays[1:], start=1):
        if g.shape != arrays[0].shape:
            raise ValueError(
                "every gradient must have the shape of the value, "
                f"{arrays[0].shape}; gs[{i}] has shape {g.shape}"
            )
    return np.sum(arrays, axis=0)


# --- transpose ↔ transpose -------------------------------------------------


def _axes(X: np.ndarray, axes) -> tuple[int, ...]:
    if axes is None:
        return tuple(reversed(range(X.ndim)))
    axes = _shape("axes", axes)
    if sorted(axes) != list(range(X.ndim)):
        raise ValueError(
            f"axes must be a permutation of 0 … {X.ndim - 1} for an array "
            f"of shape {X.shape}; got {axes}"
        )
    return axes


def transpose(X, axes=None) -> np.ndarray:
    """Permute the axes of ``X``: ``Xᵀ`` for a matrix
    (eq. ``mb-transpose``).

    X: any shape.  axes: a permutation of its axes, as for ``np.transpose``;
    ``None`` reverses them. Returns a new array of shape ``X.shape[axes]``.
    """
    X = as_real_array("X", X)
    return np.array(np.transpose(X, _axes(X, axes)))


def transpose_vjp(G, axes=None) -> np.ndarray:
    """The adjoint of permuting axes: the inverse permutation
    (eq. ``mb-transpose``).

    G: the gradient with respect to ``transpose(X, axes)``.  axes: the same
    permutation. Returns an array with the shape of ``X``; for a matrix,
    ``Gᵀ``.
    """
    G = as_real_array("G", G)
    perm = _axes(G, axes)
    return np.array(np.transpose(G, np.argsort(perm)))


# --- reshape ↔ reshape -----------------------------------------------------


def _check_size(name: str, x: np.ndarray, shape: tuple[int, ...]) -> None:
    if int(np.prod(shape)) != x.size:
        raise ValueError(
            f"cannot reshape {name} of shape {x.shape} ({x.size} entries) "
            f"into shape {shape} ({int(np.prod(shape))} entries)"
        )


def reshape(X, shape) -> np.ndarray:
    """``X``'s entries, in row-major order, laid out in ``shape``
    (eq. ``mb-reshape``).

    X: any shape.  shape: a tuple with the same number of entries
    (no ``-1``). Returns a new array; for instance ``(B, T, n) → (B·T, n)``
    turns a batch of sequences into one long batch.
    """
    X = as_real_array("X", X)
    shape = _shape("shape", shape)
    _check_size("X", X, shape)
    return np.array(X.reshape(shape))


def reshape_vjp(G, shape) -> np.ndarray:
    """The adjoint of a reshape is the reshape back  (eq. ``mb-reshape``).

    G: the gradient with respect to ``reshape(X, …)``.  shape: the shape of
    ``X``. Returns ``G`` laid out in ``shape``, in the same row-major order.
    """
    G = as_real_array("G", G)
    shape = _shape("shape", shape)
    _check_size("G", G, shape)
    return np.array(G.reshape(shape))
