"""sympy helpers for the component view: symbolic matrices, entry by entry.

A derivation in indices is a statement about every entry at once. With a few
symbols we can let sympy differentiate every entry by the scalar chain rule
and compare the result, exactly, with a matrix formula.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from backprop._checks import positive_int

__all__ = [
    "symbolic_matrix",
    "symbolic_vector",
    "gradient",
    "one_layer",
    "is_zero_matrix",
]


def _check_dims(**dims: int) -> None:
    for name, value in dims.items():
        positive_int(name, value)


def symbolic_matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    """A ``rows × cols`` matrix of real symbols ``name_{ij}``, from 1."""
    _check_dims(rows=rows, cols=cols)
    return sp.Matrix(
        rows,
        cols,
        lambda i, j: sp.Symbol(f"{name}_{{{i + 1}{j + 1}}}", real=True),
    )


def symbolic_vector(name: str, n: int) -> sp.Matrix:
    """An ``n × 1`` column of real symbols ``name_{i}``, indices from 1."""
    _check_dims(n=n)
    return sp.Matrix(
        n, 1, lambda i, _: sp.Symbol(f"{name}_{{{i + 1}}}", real=True)
    )


def gradient(E: sp.Expr, X: sp.Matrix) -> sp.Matrix:
    """The matrix of the partials ``∂E/∂X_ij``: the shape of the variable."""
    return X.applyfunc(lambda x: sp.diff(E, x))


def is_zero_matrix(M: sp.Matrix) -> bool:
    """True when every entry of ``M`` simplifies to zero."""
    return all(sp.simplify(entry) == 0 for entry in M)


def one_layer(
    n_out: int, n_in: int, f: sp.Function | None = None
) -> SimpleNamespace:
    """A symbolic layer ``z = W a + b``, ``a' = f(z)``, loss ``E = gᵀ a'``.

    The loss is linear in ``a'`` with symbolic coefficients ``g``, so
    ``∂E/∂a' = g`` exactly: ``g`` stands for whatever gradient arrives from
    the layers above, and every derivative of ``E`` is a derivative of the
    layer, nothing more.

    f: a sympy function of one argument; by default an undefined ``f``, so
    that results hold for every differentiable activation.
    Returns a namespace with ``a, W, b, z, a_next, g, E, f`` and ``fprime``,
    the column vector ``f'(z)``.
    """
    _check_dims(n_out=n_out, n_in=n_in)
    f = sp.Function("f") if f is None else f
    a = symbolic_vector("a", n_in)
    W = symbolic_matrix("W", n_out, n_in)
    b = symbolic_vector("b", n_out)
    g = symbolic_vector("g", n_out)
    z = W * a + b
    a_next = z.applyfunc(f)
    t = sp.Symbol("t", real=True)
    fprime = z.applyfunc(lambda zj: sp.diff(f(t), t).subs(t, zj))
    E = (g.T * a_next)[0, 0]
    return SimpleNamespace(
        a=a, W=W, b=b, z=z, a_next=a_next, g=g, E=E, f=f, fprime=fprime
    )
