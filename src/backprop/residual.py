"""Residual blocks ``Y = A + f(A Wᵀ + 𝟏bᵀ)``; gradients down a deep stack.

A residual block adds its input to what its branch computes, so its Jacobian
is the identity plus the branch's Jacobian (eq. ``rn-res-jacobian``), and its
VJP is the upstream gradient plus the branch's VJP (eq. ``rn-res-vjp``):

    dA = dY + F_vjp(dY).

The identity term carries ``dY`` down unchanged, however small the branch's
Jacobian is; without it the gradient is multiplied by one branch Jacobian per
layer and shrinks (or grows) geometrically with depth. With it the gradient
can still shrink, but only through a block whose branch points against it:
``δᵀ J_F δ < 0`` for an example's gradient ``δ`` (eq. ``rn-res-norm``).
:func:`residual_stack_grad_norms` measures that, for the chapter's figure.

Every function is pure: it checks its arguments, never modifies them, and
returns new arrays.
"""

from __future__ import annotations

import numpy as np

from backprop._checks import check_batch, check_same_shape, positive_int
from backprop.layers import ACTIVATIONS, _check_linear, linear, linear_vjp

__all__ = [
    "residual_block",
    "residual_block_vjp",
    "residual_stack_grad_norms",
]


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}; got {name!r}"
        )
    return ACTIVATIONS[name]


def _check_block(A, W, b):
    A, W, b = _check_linear(A, W, b)
    if W.shape[0] != W.shape[1]:
        raise ValueError(
            "a residual block adds its input to its output, so W must be "
            f"square; got W of shape {W.shape}"
        )
    return A, W, b


def residual_block(A, W, b, activation: str = "tanh") -> np.ndarray:
    """``Y = A + f(A Wᵀ + 𝟏bᵀ)``, the identity plus one layer
    (eq. ``rn-res-forward``).

    A: (B, n).  W: (n, n), square so that the branch keeps the width.  b:
    (n,). activation: a name in ``backprop.layers.ACTIVATIONS``.  Returns Y:
    (B, n).
    """
    f, _ = _activation(activation)
    A, W, b = _check_block(A, W, b)
    return A + f(linear(A, W, b))


def residual_block_vjp(
    dY, A, W, b, activation: str = "tanh"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pull ``dY`` back through ``Y = A + f(A Wᵀ + 𝟏bᵀ)``
    (eq. ``rn-res-vjp``).

    dY, A: (B, n).  W: (n, n).  b: (n,).
    Returns ``(dA, dW, db)`` with the shapes of ``A``, ``W`` and ``b``:
    ``dZ = dY ⊙ f'(Z)``, then ``dA = dY + dZ W``
    (the identity path plus the branch), ``dW = dZᵀ A`` and ``db = dZᵀ 𝟏``,
    as in ``linear_vjp``.
    """
    _, f_vjp = _activation(activation)
    A, W, b = _check_block(A, W, b)
    dY = check_batch("dY", dY)
    check_same_shape("dY", dY, "A", A)
    dZ = f_vjp(dY, linear(A, W, b))
    dA_branch, dW, db = linear_vjp(dZ, A, W)
    return dY + dA_branch, dW, db


def residual_stack_grad_norms(
    depth: int,
    width: int,
    activation: str = "tanh",
    residual: bool = True,
    seed: int = 0,
    batch: int = 8,
    gain: float = 1.0,
) -> np.ndarray:
    """‖∂E/∂A⁽ᵏ⁾‖ at every depth of a random stack of ``depth`` layers.

    Layer ``k`` maps ``A⁽ᵏ⁻¹⁾`` to ``A⁽ᵏ⁾ = A⁽ᵏ⁻¹⁾ + f(A⁽ᵏ⁻¹⁾ W⁽ᵏ⁾ᵀ)`` when
    ``residual`` is true and to ``A⁽ᵏ⁾ = f(A⁽ᵏ⁻¹⁾ W⁽ᵏ⁾ᵀ)`` otherwise; the
    biases are zero and each ``W⁽ᵏ⁾`` is ``(width, width)`` with entries
    drawn from ``N(0, gain² / width)``. The input ``A⁽⁰⁾`` is
    ``(batch, width)`` standard normal. The loss is ``E = ⟨G, A⁽ᴸ⁾⟩`` with a
    random ``G`` of unit Frobenius norm, so ``∂E/∂A⁽ᴸ⁾ = G`` and
    ``‖∂E/∂A⁽ᴸ⁾‖ = 1``. The backward pass uses ``residual_block_vjp`` or,
    without the identity, ``linear_vjp`` after the activation's VJP. The same
    ``seed`` gives the same weights with and without the identity, so the two
    curves differ by the identity path only.

    Returns (depth + 1,): entry ``k`` is the Frobenius norm of ``∂E/∂A⁽ᵏ⁾``,
    from ``k = 0`` (the input) to ``k = depth`` (the output, 1).
    """
    depth = positive_int("depth", depth)
    width = positive_int("width", width)
    batch = positive_int("batch", batch)
    f, f_vjp = _activation(activation)
    if not (np.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be positive and finite; got {gain!r}")
    rng = np.random.default_rng(seed)
    Ws = [
        rng.normal(scale=gain / np.sqrt(width), size=(width, width))
        for _ in range(depth)
    ]
    b = np.zeros(width)
    G = rng.normal(size=(batch, width))
    G /= np.linalg.norm(G)

    As = [rng.normal(size=(batch, width))]  # A⁽⁰⁾ … A⁽ᴸ⁾
    for W in Ws:
        A = As[-1]
        As.append(
            residual_block(A, W, b, activation)
            if residual
            else f(linear(A, W, b))
        )

    dA = G
    norms = [np.linalg.norm(dA)]
    for W, A in zip(reversed(Ws), reversed(As[:-1])):
        if residual:
            dA, _, _ = residual_block_vjp(dA, A, W, b, activation)
        else:
            dA, _, _ = linear_vjp(f_vjp(dA, linear(A, W, b)), A, W)
        norms.append(np.linalg.norm(dA))
    return np.array(norms[::-1])
