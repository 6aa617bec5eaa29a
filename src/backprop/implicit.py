"""Implicit layers: a linear solve, a fixed point, the optimum of ridge.

Each output here is defined by an equation, not by the steps that compute
it: ``M x = r``, ``h⋆ = F(h⋆, θ)``, ``(XᵀX + λ_wd I) w⋆ = Xᵀ y``. The
gradient comes from differentiating the equation, so it costs one more
solve of the same kind and never depends on how the forward pass got
there (how many iterations, from which start).

- :func:`solve` and :func:`solve_vjp`: ``x = M⁻¹ r``; the VJP is one solve
  with ``Mᵀ``, ``dr = M⁻ᵀ g``, and an outer product, ``dM = −dr xᵀ``.
- :func:`fixed_point` and :func:`fixed_point_vjp`: ``h⋆ = F(h⋆, θ)`` by
  iteration; the gradient with respect to ``θ`` by the implicit function
  theorem, its adjoint system ``ξ = g + (∂F/∂h)ᵀ ξ`` solved by the same
  kind of iteration. :func:`unrolled` and :func:`unrolled_vjp` are the
  alternative this replaces: backpropagation through the stored iterates.
- :func:`ridge` and :func:`ridge_vjp`: ``w⋆ = (XᵀX + λ_wd I)⁻¹ Xᵀ y``,
  differentiated through its solve; :func:`ridge_validation` gives a
  validation loss and its derivative with respect to ``λ_wd`` (the
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


def _check_solve(M, r) -> tuple[np.ndarray, np.ndarray]:
    """A square, invertible ``M`` (n, n) and ``r`` (n,) or (n, k)."""
    M = as_real_array("M", M, ndim=2)
    r = as_real_array("r", r)
    n = M.shape[0]
    if M.shape[1] != n:
        raise ValueError(f"M must be square (n, n); got shape {M.shape}")
    if r.ndim > 2 or r.shape[0] != n:
        raise ValueError(
            f"r must have shape ({n},) or ({n}, k) for M of shape "
            f"{M.shape}; got {r.shape}"
        )
    if not (np.all(np.isfinite(M)) and np.all(np.isfinite(r))):
        raise ValueError("M and r must be finite; got inf or nan")
    # singular, or so close to it that the solve keeps no digit (the
    # condition number costs an SVD: a check for the sizes of a book)
    eps = np.finfo(np.result_type(M, r)).eps
    cond = np.linalg.cond(M)
    if not np.isfinite(cond) or cond * eps >= 1:
        raise ValueError(
            f"M must be invertible; got a singular M (condition number "
            f"{cond:.1e}, at least 1/eps = {1 / eps:.1e} in {M.dtype})"
        )
    return M, r


def _solve(M, r) -> np.ndarray:
    """``M⁻¹ r`` for checked input, r (n,) or (n, k)."""
    try:
        x = np.linalg.solve(M, r[:, None] if r.ndim == 1 else r)
    except np.linalg.LinAlgError as exc:  # an exactly zero pivot
        raise ValueError(
            f"M must be invertible; got a singular M ({exc})"
        ) from None
    return x.reshape(r.shape)


def solve(M, r) -> np.ndarray:
    """The solution ``x = M⁻¹ r`` of ``M x = r``, without forming ``M⁻¹``
    (eq. ``im-solve``).

    M: (n, n), invertible; r: (n,) or (n, k), k right-hand sides at once.
    Returns x with the shape of r. Refuses a non-square or singular M.
    """
    M, r = _check_solve(M, r)
    return _solve(M, r)


def solve_vjp(g, M, r, x=None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients through ``x = M⁻¹ r``: ``dr = M⁻ᵀ g``, ``dM = −dr xᵀ``
    (eq. ``im-solve-grad``).

    g: (n,) or (n, k), the gradient at x; M: (n, n); r: as x. ``x``, if
    given, is the forward's solution (it saves solving again). One solve
    with ``Mᵀ`` and one outer product; no inverse is formed. (numpy
    factors ``Mᵀ`` afresh; a library that keeps the LU factors of ``M``,
    as ``scipy.linalg.lu_solve(..., trans=1)``, reuses them.)
    Returns (dM (n, n), dr with the shape of r).
    """
    M, r = _check_solve(M, r)
    g = as_real_array("g", g)
    if g.shape != r.shape:
        raise ValueError(
            f"g must have the shape of x = M⁻¹ r, {r.shape}; got {g.shape}"
        )
    x = _solve(M, r) if x is None else as_real_array("x", x)
    if x.shape != r.shape:
        raise ValueError(
            f"x must have the shape of r, {r.shape}; got {x.shape}"
        )
    dr = _solve(M.T, g)
    columns = r.shape[0], -1
    dM = -(dr.reshape(columns) @ x.reshape(columns).T)
    return dM, dr


def _solve_jvp(tangents, x, M, r) -> np.ndarray:
    """Forward mode of ``x = M⁻¹ r``: ``dx = M⁻¹ (dr − dM x)``, from the
    differential of ``M x = r`` (eq. ``im-solve-diff``; for the engine's
    table)."""
    dM, dr = tangents
    columns = M.shape[0], -1
    return _solve(M, dr - (dM @ x.reshape(columns)).reshape(x.shape))


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
    F: Callable,
    h0,
    theta,
    tol: float = 1e-12,
    max_iter: int = 1000,
    return_steps: bool = False,
):
    """The fixed point ``h⋆ = F(h⋆, θ)``, by the iteration
    ``h_{k+1} = F(h_k, θ)`` from ``h0`` (eq. ``im-fixed-point``).

    F: a map ``F(h, theta)`` that returns an array of h's shape (a
    contraction in h near h⋆, so that the iteration converges);
    h0: the start, any shape; theta: the parameters, any shape.
    Stops when a step moves h by at most ``tol · (1 + ‖h‖)``; raises
    ValueError with the residual reached if ``max_iter`` steps are not
    enough. Returns h⋆ (h0's shape) or, with ``return_steps``,
    ``(h⋆, number of steps)``.
    """
    _check_callable(F=F)
    h0 = as_real_array("h0", h0)
    theta = as_real_array("theta", theta)
    tol, max_iter = _check_tol(tol, max_iter)
    h, k = _iterate(
        lambda h: F(h, theta), h0, tol, max_iter, "the fixed-point iteration"
    )
    return (h, k) if return_steps else h


def fixed_point_vjp(
    g,
    h_star,
    theta,
    F_vjp_h: Callable,
    F_vjp_theta: Callable,
    tol: float = 1e-12,
    max_iter: int = 1000,
    return_steps: bool = False,
):
    """Gradient through ``h⋆ = F(h⋆, θ)`` with respect to ``θ``, by the
    implicit function theorem (eqs. ``im-ift``, ``im-adjoint``).

    Differentiating the equation, ``dh⋆ = (∂F/∂h) dh⋆ + (∂F/∂θ) dθ``, so
    ``dθ = (∂F/∂θ)ᵀ ξ`` where ``ξ`` solves the adjoint system
    ``ξ = g + (∂F/∂h)ᵀ ξ``, taken at h⋆. That system is a fixed point too:
    it is solved by the iteration ``ξ ← g + (∂F/∂h)ᵀ ξ`` from ``ξ = g``,
    which converges where the forward one does (the same Jacobian,
    transposed). Nothing of the forward iterations is kept or replayed:
    only h⋆ is used.

    g: the gradient at h⋆ (h⋆'s shape); h_star: the fixed point; theta:
    its parameters. ``F_vjp_h(v, h, theta)`` returns ``(∂F/∂h)ᵀ v``
    (h's shape); ``F_vjp_theta(v, h, theta)`` returns ``(∂F/∂θ)ᵀ v``
    (θ's shape). tol, max_iter: as :func:`fixed_point`, for ``ξ``.
    Returns ``dθ`` (θ's shape) or, with ``return_steps``, ``(dθ, steps)``.
    The gradient with respect to ``h0`` is zero: h⋆ does not depend on
    the start.
    """
    _check_callable(F_vjp_h=F_vjp_h, F_vjp_theta=F_vjp_theta)
    h_star = as_real_array("h_star", h_star)
    theta = as_real_array("theta", theta)
    g = as_real_array("g", g)
    if g.shape != h_star.shape:
        raise ValueError(
            f"g must have the shape of h_star, {h_star.shape}; got {g.shape}"
        )
    tol, max_iter = _check_tol(tol, max_iter)
    xi, k = _iterate(
        lambda xi: g + F_vjp_h(xi, h_star, theta),
        g,
        tol,
        max_iter,
        "the adjoint iteration",
    )
    dtheta = np.asarray(F_vjp_theta(xi, h_star, theta))
    if dtheta.shape != theta.shape:
        raise ValueError(
            f"F_vjp_theta must return theta's shape {theta.shape}; got "
            f"{dtheta.shape}"
        )
    return (dtheta, k) if return_steps else dtheta


def unrolled(F: Callable, h0, theta, n_iter: int) -> np.ndarray:
    """``n_iter`` steps of ``h_{k+1} = F(h_k, θ)``, every iterate kept.

    Returns the iterates ``(n_iter + 1, *h0.shape)``, ``h_0`` first: what
    backpropagation through the iterations must store.
    """
    _check_callable(F=F)
    h0 = as_real_array("h0", h0)
    theta = as_real_array("theta", theta)
    n_iter = positive_int("n_iter", n_iter)
    H = np.empty((n_iter + 1, *h0.shape), dtype=h0.dtype)
    H[0] = h0
    for k in range(n_iter):
        H[k + 1] = F(H[k], theta)
    return H


def unrolled_vjp(
    g, H, theta, F_vjp_h: Callable, F_vjp_theta: Callable
) -> tuple[np.ndarray, np.ndarray]:
    """Backpropagation through the iterates of :func:`unrolled`.

    g: the gradient at the last iterate; H: the iterates
    ``(n_iter + 1, *h.shape)``. From the last step to the first,
    ``dθ += (∂F/∂θ)ᵀ g_k`` and ``g_{k−1} = (∂F/∂h)ᵀ g_k``, each Jacobian
    taken at the iterate that step started from. Returns
    ``(dθ, dh0)``.
    """
    _check_callable(F_vjp_h=F_vjp_h, F_vjp_theta=F_vjp_theta)
    H = as_real_array("H", H)
    theta = as_real_array("theta", theta)
    g = as_real_array("g", g)
    if H.ndim < 2 or g.shape != H.shape[1:]:
        raise ValueError(
            f"g must have the shape of one iterate of H ({H.shape}); got "
            f"{g.shape}"
        )
    dtheta = np.zeros_like(theta)
    for h in H[-2::-1]:
        dtheta = dtheta + F_vjp_theta(g, h, theta)
        g = F_vjp_h(g, h, theta)
    return dtheta, g


# -- ridge regression -----------------------------------------------------


def _check_ridge(X, y, wd) -> tuple[np.ndarray, np.ndarray, float]:
    X = as_real_array("X", X, ndim=2)
    y = as_real_array("y", y, ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must have one target per row of X, {X.shape[0]}; got "
            f"{y.shape[0]}"
        )
    if isinstance(wd, bool) or not np.isscalar(wd) or not wd > 0:
        raise ValueError(f"wd must be a positive number; got {wd!r}")
    return X, y, float(wd)


def _ridge_system(X, y, wd) -> tuple[np.ndarray, np.ndarray]:
    """``(XᵀX + λ_wd I, Xᵀ y)``: the normal equations of ridge."""
    return X.T @ X + wd * np.eye(X.shape[1], dtype=X.dtype), X.T @ y


def ridge(X, y, wd) -> np.ndarray:
    """The minimizer ``w⋆`` of ``‖X w − y‖² + λ_wd ‖w‖²``.

    X: (B, n) inputs, one row per example; y: (B,) targets; wd: λ_wd > 0.
    Setting the gradient ``2 Xᵀ(X w − y) + 2 λ_wd w`` to zero gives the
    normal equations ``(XᵀX + λ_wd I) w⋆ = Xᵀ y``, solved by :func:`solve`
    (eq. ``im-ridge``).
    Returns w⋆: (n,).
    """
    X, y, wd = _check_ridge(X, y, wd)
    return solve(*_ridge_system(X, y, wd))


def ridge_vjp(g, X, y, wd) -> tuple[np.ndarray, np.ndarray, float]:
    """Gradients through ``w⋆ = (XᵀX + λ_wd I)⁻¹ Xᵀ y``.

    g: (n,), the gradient at w⋆. With ``ξ = (XᵀX + λ_wd I)⁻¹ g`` (one solve;
    the matrix is symmetric), :func:`solve_vjp` gives ``dM = −ξ w⋆ᵀ`` and
    ``dr = ξ`` for ``M = XᵀX + λ_wd I``, ``r = Xᵀ y``; then
    ``dλ_wd = tr(dM) = −ξᵀ w⋆``, ``dX = X (dM + dMᵀ) + y ξᵀ``, ``dy = X ξ``.
    Returns (dX (B, n), dy (B,), dλ_wd, a float).
    """
    X, y, wd = _check_ridge(X, y, wd)
    g = as_real_array("g", g, ndim=1)
    if g.shape != (X.shape[1],):
        raise ValueError(
            f"g must have the shape of w, ({X.shape[1]},); got {g.shape}"
        )
    M, r = _ridge_system(X, y, wd)
    w = solve(M, r)
    dM, xi = solve_vjp(g, M, r, x=w)
    dX = X @ (dM + dM.T) + np.outer(y, xi)
    return dX, X @ xi, float(np.trace(dM))


def ridge_validation(wd, X, y, X_val, y_val) -> tuple[float, float]:
    """A validation loss of ridge and its derivative with respect to λ_wd.

    ``E(λ_wd) = (1/B_val) ‖X_val w⋆(λ_wd) − y_val‖²``, the mean squared error
    of the ridge solution on held-out data (X_val (B_val, n), y_val
    (B_val,)). Its gradient at w⋆ is
    ``g = (2/B_val) X_valᵀ (X_val w⋆ − y_val)``, and
    ``dE/dλ_wd = −ξᵀ w⋆`` with ``ξ = (XᵀX + λ_wd I)⁻¹ g``
    (:func:`ridge_vjp`; eq. ``im-ridge-hypergrad``).
    Returns ``(E, dE/dλ_wd)``; for a descent on ``log λ_wd`` multiply the
    derivative by λ_wd.
    """
    X, y, wd = _check_ridge(X, y, wd)
    X_val = as_real_array("X_val", X_val, ndim=2)
    y_val = as_real_array("y_val", y_val, ndim=1)
    if X_val.shape[1] != X.shape[1] or y_val.shape[0] != X_val.shape[0]:
        raise ValueError(
            f"X_val must have X's {X.shape[1]} features and one row per "
            f"entry of y_val ({y_val.shape[0]}); got X_val of shape "
            f"{X_val.shape}"
        )
    w = ridge(X, y, wd)
    r = X_val @ w - y_val
    g = 2 * X_val.T @ r / len(y_val)
    _, _, dwd = ridge_vjp(g, X, y, wd)
    return float(r @ r / len(y_val)), dwd
