"""Implicit layers: a linear solve, a fixed point, the optimum of ridge.

Each output here is defined by an equation, not by the steps that compute
it: ``A x = b``, ``z⋆ = f(z⋆, θ)``, ``(XᵀX + λ I) w⋆ = Xᵀ y``. The
gradient comes from differentiating the equation, so it costs one more
solve of the same kind and never depends on how the forward pass got
there (how many iterations, from which start).

- :func:`solve` and :func:`solve_vjp`: ``x = A⁻¹ b``; the VJP is one solve
  with ``Aᵀ``, ``db = A⁻ᵀ g``, and an outer product, ``dA = −db xᵀ``.
- :func:`fixed_point` and :func:`fixed_point_vjp`: ``z⋆ = f(z⋆, θ)`` by
  iteration; the gradient with respect to ``θ`` by the implicit function
  theorem, its adjoint system ``w = g + (∂f/∂z)ᵀ w`` solved by the same
  kind of iteration. :func:`unrolled` and :func:`unrolled_vjp` are the
  alternative this replaces: backpropagation through the stored iterates.
- :func:`ridge` and :func:`ridge_vjp`: ``w⋆ = (XᵀX + λ I)⁻¹ Xᵀ y``,
  differentiated through its solve; :func:`ridge_validation` gives a
  validation loss and its derivative with respect to ``λ`` (the
  hypergradient).

Every function checks its input and never modifies it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backprop._checks import as_real_array, positive_int

__all__ = [
    "solve",
    "solve_vjp",
    "fixed_point",
    "fixed_point_vjp",
    "unrolled",
    "unrolled_vjp",
    "ridge",
    "ridge_vjp",
    "ridge_validation",
]


# -- the linear solve -----------------------------------------------------


def _check_solve(A, b) -> tuple[np.ndarray, np.ndarray]:
    """A square, invertible ``A`` (n, n) and ``b`` (n,) or (n, k)."""
    A = as_real_array("A", A, ndim=2)
    b = as_real_array("b", b)
    n = A.shape[0]
    if A.shape[1] != n:
        raise ValueError(f"A must be square (n, n); got shape {A.shape}")
    if b.ndim > 2 or b.shape[0] != n:
        raise ValueError(
            f"b must have shape ({n},) or ({n}, k) for A of shape "
            f"{A.shape}; got {b.shape}"
        )
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
        raise ValueError("A and b must be finite; got inf or nan")
    # singular, or so close to it that the solve keeps no digit (the
    # condition number costs an SVD: a check for the sizes of a book)
    eps = np.finfo(np.result_type(A, b)).eps
    cond = np.linalg.cond(A)
    if not np.isfinite(cond) or cond * eps >= 1:
        raise ValueError(
            f"A must be invertible; got a singular A (condition number "
            f"{cond:.1e}, at least 1/eps = {1 / eps:.1e} in {A.dtype})"
        )
    return A, b


def _solve(A, b) -> np.ndarray:
    """``A⁻¹ b`` for checked input, b (n,) or (n, k)."""
    try:
        x = np.linalg.solve(A, b[:, None] if b.ndim == 1 else b)
    except np.linalg.LinAlgError as exc:  # an exactly zero pivot
        raise ValueError(
            f"A must be invertible; got a singular A ({exc})"
        ) from None
    return x.reshape(b.shape)


def solve(A, b) -> np.ndarray:
    """The solution ``x = A⁻¹ b`` of ``A x = b``, without forming ``A⁻¹``.

    A: (n, n), invertible; b: (n,) or (n, k), k right-hand sides at once.
    Returns x with the shape of b. Refuses a non-square or singular A.
    """
    A, b = _check_solve(A, b)
    return _solve(A, b)


def solve_vjp(g, A, b, x=None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients through ``x = A⁻¹ b``: ``db = A⁻ᵀ g``, ``dA = −db xᵀ``.

    g: (n,) or (n, k), the gradient at x; A: (n, n); b: as x. ``x``, if
    given, is the forward's solution (it saves solving again). One solve
    with ``Aᵀ`` and one outer product; no inverse is formed. (numpy
    factors ``Aᵀ`` afresh; a library that keeps the LU factors of ``A``,
    as ``scipy.linalg.lu_solve(..., trans=1)``, reuses them.)
    Returns (dA (n, n), db with the shape of b).
    """
    A, b = _check_solve(A, b)
    g = as_real_array("g", g)
    if g.shape != b.shape:
        raise ValueError(
            f"g must have the shape of x = A⁻¹ b, {b.shape}; got {g.shape}"
        )
    x = _solve(A, b) if x is None else as_real_array("x", x)
    if x.shape != b.shape:
        raise ValueError(
            f"x must have the shape of b, {b.shape}; got {x.shape}"
        )
    db = _solve(A.T, g)
    columns = b.shape[0], -1
    dA = -(db.reshape(columns) @ x.reshape(columns).T)
    return dA, db


def _solve_jvp(tangents, x, A, b) -> np.ndarray:
    """Forward mode of ``x = A⁻¹ b``: ``dx = A⁻¹ (db − dA x)``, from the
    differential of ``A x = b`` (for the engine's table)."""
    dA, db = tangents
    columns = A.shape[0], -1
    return _solve(A, db - (dA @ x.reshape(columns)).reshape(x.shape))


# -- the fixed point ------------------------------------------------------


def _check_tol(tol, max_iter) -> tuple[float, int]:
    number = isinstance(tol, int | float | np.floating)
    if isinstance(tol, bool) or not number or not tol > 0:
        raise ValueError(f"tol must be a positive number; got {tol!r}")
    return float(tol), positive_int("max_iter", max_iter)


def _check_callable(**fs) -> None:
    for name, f in fs.items():
        if not callable(f):
            raise ValueError(
                f"{name} must be a function; got {type(f).__name__}"
            )


def _iterate(step, x0, tol, max_iter, what) -> tuple[np.ndarray, int]:
    """``x ← step(x)`` from ``x0`` until ``‖x_new − x‖ ≤ tol (1 + ‖x_new‖)``.

    Returns the last iterate and the number of steps. Raises ValueError
    with the residual reached if ``max_iter`` steps are not enough, and if
    ``step`` returns another shape or a value that is not finite.
    """
    x = x0
    residual = np.inf
    for k in range(1, max_iter + 1):
        x_new = np.asarray(step(x))
        if x_new.shape != x.shape:
            raise ValueError(
                f"{what}: the map must keep the shape {x.shape}; it "
                f"returned shape {x_new.shape}"
            )
        if not np.all(np.isfinite(x_new)):
            raise ValueError(
                f"{what} diverged: a value became inf or nan at step {k}"
            )
        residual = float(np.linalg.norm(x_new - x))
        x = x_new
        size = float(np.linalg.norm(x))
        if np.isfinite(size) and residual <= tol * (1 + size):
            return x, k
    raise ValueError(
        f"{what} did not converge in max_iter={max_iter} steps: the last "
        f"step moved by {residual:.3e}, more than tol={tol:.1e} times "
        f"(1 + the norm of the iterate, {float(np.linalg.norm(x)):.3e})"
    )


def fixed_point(
    f: Callable,
    z0,
    theta,
    tol: float = 1e-12,
    max_iter: int = 1000,
    return_steps: bool = False,
):
    """The fixed point ``z⋆ = f(z⋆, θ)``, by the iteration
    ``z_{k+1} = f(z_k, θ)`` from ``z0``.

    f: a map ``f(z, theta)`` that returns an array of z's shape (a
    contraction in z near z⋆, so that the iteration converges);
    z0: the start, any shape; theta: the parameters, any shape.
    Stops when a step moves z by at most ``tol · (1 + ‖z‖)``; raises
    ValueError with the residual reached if ``max_iter`` steps are not
    enough. Returns z⋆ (z0's shape) or, with ``return_steps``,
    ``(z⋆, number of steps)``.
    """
    _check_callable(f=f)
    z0 = as_real_array("z0", z0)
    theta = as_real_array("theta", theta)
    tol, max_iter = _check_tol(tol, max_iter)
    z, k = _iterate(
        lambda z: f(z, theta), z0, tol, max_iter, "the fixed-point iteration"
    )
    return (z, k) if return_steps else z


def fixed_point_vjp(
    g,
    z_star,
    theta,
    f_vjp_z: Callable,
    f_vjp_theta: Callable,
    tol: float = 1e-12,
    max_iter: int = 1000,
    return_steps: bool = False,
):
    """Gradient through ``z⋆ = f(z⋆, θ)`` with respect to ``θ``, by the
    implicit function theorem.

    Differentiating the equation, ``dz⋆ = (∂f/∂z) dz⋆ + (∂f/∂θ) dθ``, so
    ``dθ = (∂f/∂θ)ᵀ w`` where ``w`` solves the adjoint system
    ``w = g + (∂f/∂z)ᵀ w``, taken at z⋆. That system is a fixed point too:
    it is solved by the iteration ``w ← g + (∂f/∂z)ᵀ w`` from ``w = g``,
    which converges where the forward one does (the same Jacobian,
    transposed). Nothing of the forward iterations is kept or replayed:
    only z⋆ is used.

    g: the gradient at z⋆ (z⋆'s shape); z_star: the fixed point; theta:
    its parameters. ``f_vjp_z(v, z, theta)`` returns ``(∂f/∂z)ᵀ v``
    (z's shape); ``f_vjp_theta(v, z, theta)`` returns ``(∂f/∂θ)ᵀ v``
    (θ's shape). tol, max_iter: as :func:`fixed_point`, for ``w``.
    Returns ``dθ`` (θ's shape) or, with ``return_steps``, ``(dθ, steps)``.
    The gradient with respect to ``z0`` is zero: z⋆ does not depend on
    the start.
    """
    _check_callable(f_vjp_z=f_vjp_z, f_vjp_theta=f_vjp_theta)
    z_star = as_real_array("z_star", z_star)
    theta = as_real_array("theta", theta)
    g = as_real_array("g", g)
    if g.shape != z_star.shape:
        raise ValueError(
            f"g must have the shape of z_star, {z_star.shape}; got {g.shape}"
        )
    tol, max_iter = _check_tol(tol, max_iter)
    w, k = _iterate(
        lambda w: g + f_vjp_z(w, z_star, theta),
        g,
        tol,
        max_iter,
        "the adjoint iteration",
    )
    dtheta = np.asarray(f_vjp_theta(w, z_star, theta))
    if dtheta.shape != theta.shape:
        raise ValueError(
            f"f_vjp_theta must return theta's shape {theta.shape}; got "
            f"{dtheta.shape}"
        )
    return (dtheta, k) if return_steps else dtheta


def unrolled(f: Callable, z0, theta, n_iter: int) -> np.ndarray:
    """``n_iter`` steps of ``z_{k+1} = f(z_k, θ)``, every iterate kept.

    Returns the iterates ``(n_iter + 1, *z0.shape)``, ``z_0`` first: what
    backpropagation through the iterations must store.
    """
    _check_callable(f=f)
    z0 = as_real_array("z0", z0)
    theta = as_real_array("theta", theta)
    n_iter = positive_int("n_iter", n_iter)
    Z = np.empty((n_iter + 1, *z0.shape), dtype=z0.dtype)
    Z[0] = z0
    for k in range(n_iter):
        Z[k + 1] = f(Z[k], theta)
    return Z


def unrolled_vjp(
    g, Z, theta, f_vjp_z: Callable, f_vjp_theta: Callable
) -> tuple[np.ndarray, np.ndarray]:
    """Backpropagation through the iterates of :func:`unrolled`.

    g: the gradient at the last iterate; Z: the iterates
    ``(n_iter + 1, *z.shape)``. From the last step to the first,
    ``dθ += (∂f/∂θ)ᵀ g_k`` and ``g_{k−1} = (∂f/∂z)ᵀ g_k``, each Jacobian
    taken at the iterate that step started from. Returns
    ``(dθ, dz0)``.
    """
    _check_callable(f_vjp_z=f_vjp_z, f_vjp_theta=f_vjp_theta)
    Z = as_real_array("Z", Z)
    theta = as_real_array("theta", theta)
    g = as_real_array("g", g)
    if Z.ndim < 2 or g.shape != Z.shape[1:]:
        raise ValueError(
            f"g must have the shape of one iterate of Z ({Z.shape}); got "
            f"{g.shape}"
        )
    dtheta = np.zeros_like(theta)
    for z in Z[-2::-1]:
        dtheta = dtheta + f_vjp_theta(g, z, theta)
        g = f_vjp_z(g, z, theta)
    return dtheta, g


# -- ridge regression -----------------------------------------------------


def _check_ridge(X, y, lam) -> tuple[np.ndarray, np.ndarray, float]:
    X = as_real_array("X", X, ndim=2)
    y = as_real_array("y", y, ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must have one target per row of X, {X.shape[0]}; got "
            f"{y.shape[0]}"
        )
    if isinstance(lam, bool) or not np.isscalar(lam) or not lam > 0:
        raise ValueError(f"lam must be a positive number; got {lam!r}")
    return X, y, float(lam)


def _ridge_system(X, y, lam) -> tuple[np.ndarray, np.ndarray]:
    """``(XᵀX + λ I, Xᵀ y)``: the normal equations of ridge."""
    return X.T @ X + lam * np.eye(X.shape[1], dtype=X.dtype), X.T @ y


def ridge(X, y, lam) -> np.ndarray:
    """The minimizer ``w⋆`` of ``‖X w − y‖² + λ ‖w‖²``.

    X: (B, n) inputs, one row per example; y: (B,) targets; lam: λ > 0.
    Setting the gradient ``2 Xᵀ(X w − y) + 2 λ w`` to zero gives the
    normal equations ``(XᵀX + λ I) w⋆ = Xᵀ y``, solved by :func:`solve`.
    Returns w⋆: (n,).
    """
    X, y, lam = _check_ridge(X, y, lam)
    return solve(*_ridge_system(X, y, lam))


def ridge_vjp(g, X, y, lam) -> tuple[np.ndarray, np.ndarray, float]:
    """Gradients through ``w⋆ = (XᵀX + λ I)⁻¹ Xᵀ y``.

    g: (n,), the gradient at w⋆. With ``v = (XᵀX + λ I)⁻¹ g`` (one solve;
    the matrix is symmetric), :func:`solve_vjp` gives ``dA = −v w⋆ᵀ`` and
    ``db = v`` for ``A = XᵀX + λ I``, ``b = Xᵀ y``; then
    ``dλ = tr(dA) = −vᵀ w⋆``, ``dX = X (dA + dAᵀ) + y vᵀ``, ``dy = X v``.
    Returns (dX (B, n), dy (B,), dλ, a float).
    """
    X, y, lam = _check_ridge(X, y, lam)
    g = as_real_array("g", g, ndim=1)
    if g.shape != (X.shape[1],):
        raise ValueError(
            f"g must have the shape of w, ({X.shape[1]},); got {g.shape}"
        )
    A, b = _ridge_system(X, y, lam)
    w = solve(A, b)
    dA, v = solve_vjp(g, A, b, x=w)
    dX = X @ (dA + dA.T) + np.outer(y, v)
    return dX, X @ v, float(np.trace(dA))


def ridge_validation(lam, X, y, X_val, y_val) -> tuple[float, float]:
    """A validation loss of ridge and its derivative with respect to λ.

    ``E(λ) = (1/B_val) ‖X_val w⋆(λ) − y_val‖²``, the mean squared error
    of the ridge solution on held-out data (X_val (B_val, n), y_val
    (B_val,)). Its gradient at w⋆ is
    ``g = (2/B_val) X_valᵀ (X_val w⋆ − y_val)``, and
    ``dE/dλ = −vᵀ w⋆`` with ``v = (XᵀX + λ I)⁻¹ g`` (:func:`ridge_vjp`).
    Returns ``(E, dE/dλ)``; for a descent on ``log λ`` multiply the
    derivative by λ.
    """
    X, y, lam = _check_ridge(X, y, lam)
    X_val = as_real_array("X_val", X_val, ndim=2)
    y_val = as_real_array("y_val", y_val, ndim=1)
    if X_val.shape[1] != X.shape[1] or y_val.shape[0] != X_val.shape[0]:
        raise ValueError(
            f"X_val must have X's {X.shape[1]} features and one row per "
            f"entry of y_val ({y_val.shape[0]}); got X_val of shape "
            f"{X_val.shape}"
        )
    w = ridge(X, y, lam)
    r = X_val @ w - y_val
    g = 2 * X_val.T @ r / len(y_val)
    _, _, dlam = ridge_vjp(g, X, y, lam)
    return float(r @ r / len(y_val)), dlam
