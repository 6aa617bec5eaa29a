"""Second order: helpers around Hessian-vector products.

A Hessian-vector product ``∇²E θ̇`` is computed by ``MLP.hvp`` (the
R-operator, written out by hand) or ``MLP.gnvp`` (the Gauss–Newton
product). Both take and return lists of ``(W, b)`` pairs with the structure
of ``MLP.params``; the helpers here work on that structure:

- :func:`check_like` — refuse a direction whose structure is not that of
  the parameters, naming the first mismatch;
- :func:`param_dot`, :func:`flatten`, :func:`unflatten` — the inner
  product ``⟨X, Y⟩`` summed over every array, and the vector ``θ``;
- :func:`activation_curvature` — ``f''(Z)``, the second derivative of an
  element-wise activation;
- :func:`hessian_matrix` — the ``n_θ × n_θ`` Hessian, column by column, for
  checking on a tiny network;
- :func:`power_iteration` — the eigenvalue of largest absolute value of a
  symmetric map given only as a product.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from backprop._checks import as_real_array, positive_int

__all__ = [
    "PowerIteration",
    "activation_curvature",
    "check_like",
    "flatten",
    "hessian_matrix",
    "param_dot",
    "power_iteration",
    "unflatten",
]

Params = list[tuple[np.ndarray, np.ndarray]]


def check_like(name: str, V, params: Params) -> Params:
    """Return ``V`` as a list of ``(W, b)`` arrays shaped as ``params``.

    V: a list (or tuple) of ``len(params)`` pairs of arrays, pair ``k``
    with the shapes of ``params[k]``. The arrays are converted to the dtype
    of ``params`` (a float32 network keeps a float32 direction); nothing is
    modified in place. A mismatch raises a ``ValueError`` that names the
    first one found: its layer index, ``W`` or ``b``, and both shapes.
    """
    if not isinstance(V, list | tuple):
        raise ValueError(
            f"{name} must be a list of (W, b) pairs like params; got "
            f"{type(V).__name__}"
        )
    if len(V) != len(params):
        raise ValueError(
            f"{name} must have one (W, b) pair per layer, {len(params)}; "
            f"got {len(V)}"
        )
    out = []
    for k, (pair, (W, b)) in enumerate(zip(V, params)):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(
                f"{name}[{k}] must be a pair (W, b); got "
                f"{type(pair).__name__}"
                + (
                    f" of length {len(pair)}"
                    if hasattr(pair, "__len__")
                    else ""
                )
            )
        arrays = []
        for which, given, like in zip("Wb", pair, (W, b)):
            arr = as_real_array(f"{name}[{k}] {which}", given)
            if arr.shape != like.shape:
                raise ValueError(
                    f"{name}[{k}] {which} (layer {k + 1}) has shape "
                    f"{arr.shape} but params[{k}] {which} has shape "
                    f"{like.shape}"
                )
            if not np.all(np.isfinite(arr)):
                raise ValueError(
                    f"{name}[{k}] {which} (layer {k + 1}) must be finite"
                )
            arrays.append(arr.astype(like.dtype, copy=False))
        out.append((arrays[0], arrays[1]))
    return out


def param_dot(X: Params, Y: Params) -> float:
    """``⟨X, Y⟩``: the sum of ``⟨W_X, W_Y⟩ + ⟨b_X, b_Y⟩`` over the layers."""
    return float(
        sum(
            np.sum(WX * WY) + np.sum(bX * bY)
            for (WX, bX), (WY, bY) in zip(X, Y)
        )
    )


def flatten(P: Params) -> np.ndarray:
    """The vector ``θ`` of a parameter list: ``vec W⁽¹⁾, b⁽¹⁾, vec W⁽²⁾, …``.

    ``vec`` stacks columns, as ``bp.vec`` does. Returns ``(n_θ,)``.
    """
    return np.concatenate(
        [np.concatenate([W.reshape(-1, order="F"), b]) for W, b in P]
    )


def unflatten(theta, like: Params) -> Params:
    """The inverse of :func:`flatten`, with the shapes of ``like``."""
    theta = as_real_array("theta", theta, ndim=1)
    n_theta = sum(W.size + b.size for W, b in like)
    if theta.size != n_theta:
        raise ValueError(
            f"theta must have {n_theta} entries, one per parameter; got "
            f"{theta.size}"
        )
    out, start = [], 0
    for W, b in like:
        W_new = theta[start : start + W.size].reshape(W.shape, order="F")
        start += W.size
        b_new = theta[start : start + b.size].copy()
        start += b.size
        out.append((W_new.copy(), b_new))
    return out


def activation_curvature(name: str, Z) -> np.ndarray:
    """``f''(Z)``, element-wise, for ``"tanh"``, ``"sigmoid"``, ``"relu"``.

    tanh'' = −2 tanh (1 − tanh²); σ'' = σ (1 − σ)(1 − 2σ); relu'' = 0 (the
    kink at 0 is a set of measure zero).
    """
    Z = as_real_array("Z", Z)
    if name == "tanh":
        t = np.tanh(Z)
        return -2 * t * (1 - t * t)
    if name == "sigmoid":
        s = np.exp(-np.logaddexp(0, -Z)).astype(Z.dtype, copy=False)
        return s * (1 - s) * (1 - 2 * s)
    if name == "relu":
        return np.zeros_like(Z)
    raise ValueError(
        f"activation must be 'relu', 'sigmoid' or 'tanh'; got {name!r}"
    )


def hessian_matrix(
    product: Callable[[Params], Params], like: Params
) -> np.ndarray:
    """The ``n_θ × n_θ`` matrix of a product, one column per unit vector.

    The Hessian as the Jacobian of the gradient (eq.
    ``so-hessian-jacobian``).

    product: ``V ↦ ∇²E V`` on parameter lists, such as
    ``lambda V: net.hvp(X, y, V)``; like: a parameter list giving the
    shapes. Column ``j`` is the
    product with the ``j``-th unit vector of :func:`flatten`'s order. Costs
    ``n_θ`` products: for checking on a tiny network only.
    """
    n_theta = sum(W.size + b.size for W, b in like)
    dtype = like[0][0].dtype
    columns = []
    for j in range(n_theta):
        e = np.zeros(n_theta, dtype=dtype)
        e[j] = 1
        columns.append(flatten(product(unflatten(e, like))))
    return np.stack(columns, axis=1)


class PowerIteration(NamedTuple):
    """What :func:`power_iteration` found."""

    lam: float
    """The eigenvalue of largest absolute value, with its sign."""
    V: Params
    """Its eigenvector, of unit norm, in the structure of the parameters."""
    iterations: int
    """The products computed."""
    converged: bool
    """Whether two successive estimates agreed to ``tol`` (relative)."""


def power_iteration(
    product: Callable[[Params], Params],
    like: Params,
    seed: int = 0,
    tol: float = 1e-6,
    max_iter: int = 200,
) -> PowerIteration:
    """The dominant eigenvalue of a symmetric map known only by its product.

    Its top eigenvalue bounds the stable learning rate (eq.
    ``so-stability``).

    product: ``V ↦ ∇²E V`` on parameter lists; like: the parameters (for
    their shapes and dtype). From a direction drawn with
    ``np.random.default_rng(seed)``, repeat ``V ← product(V) / ‖product(V)‖``
    and take the Rayleigh quotient ``λ = ⟨V, product(V)⟩``. The iteration
    finds the eigenvalue of largest **absolute** value, returned with its
    sign; near a minimum of the loss, where the Hessian is nearly positive
    semi-definite, that is the top one. It stops when two successive
    estimates differ by at most ``tol · |λ|``, or after ``max_iter``
    products (``converged`` is then False).
    """
    tol = float(tol)
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol must be a positive number; got {tol}")
    max_iter = positive_int("max_iter", max_iter)
    rng = np.random.default_rng(seed)
    V = [
        (
            rng.standard_normal(W.shape).astype(W.dtype),
            rng.standard_normal(b.shape).astype(b.dtype),
        )
        for W, b in like
    ]
    norm = np.sqrt(param_dot(V, V))
    V = [(W / norm, b / norm) for W, b in V]
    lam = np.nan
    for iteration in range(1, max_iter + 1):
        HV = product(V)
        new = param_dot(V, HV)
        norm = np.sqrt(param_dot(HV, HV))
        if norm == 0:
            return PowerIteration(0.0, V, iteration, True)
        V = [(W / norm, b / norm) for W, b in HV]
        if abs(new - lam) <= tol * abs(new):
            return PowerIteration(float(new), V, iteration, True)
        lam = new
    return PowerIteration(float(lam), V, max_iter, False)
