"""Name the mistake in a wrong gradient: ``diagnose`` and ``check_vjp``.

A relative error of 0.83 says *that* a gradient is wrong. The book's
mistakes each leave a mark: a transposed matrix, a factor of B, a wrong
sign, some rows right and others not. ``diagnose`` compares two arrays
and names the mark; ``check_vjp`` runs a reader's VJP against central
differences of the op itself, on inputs drawn so the usual mistakes show,
and tests named hypotheses (f′ at the output, the diagonal of a dense
Jacobian, W where Wᵀ belongs) to name the cause.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from itertools import islice

import numpy as np

from backprop.gradcheck import numerical_gradient, relative_error
from backprop.jacobians import numerical_jacobian, unvec

__all__ = ["Diagnosis", "Report", "diagnose", "check_vjp"]

KINDS = (
    "correct",
    "wrong-shape",
    "transposed",
    "scaled",
    "wrong-rows",
    "unknown",
)
TOL = 1e-6  # relative error of a right gradient, float64 against FD


@dataclass(frozen=True)
class Diagnosis:
    """What is wrong with one gradient: ``kind`` (one of ``KINDS``),
    ``factor`` (for ``"scaled"``), ``mistake`` (the book's name, or
    ``None``), ``message`` (one sentence) and ``where`` (which input, when
    it came from :func:`check_vjp`)."""

    kind: str
    message: str
    factor: float | None = None
    mistake: str | None = None
    where: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "correct"

    def __str__(self) -> str:
        if self.where is None:
            return self.message
        # the book's name for the mistake when there is one, else the kind
        label = self.mistake or self.kind
        text = "correct" if self.ok else f"{label} — {self.message}"
        return f"{self.where}: {text}"


class Report(tuple):
    """One :class:`Diagnosis` per input, in order. Prints an entry each,
    wrapped at ``WIDTH`` columns, its continuation lines indented, so that
    a report fits a notebook cell's output."""

    WIDTH = 72

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self)

    def __str__(self) -> str:
        return "\n".join(
            textwrap.fill(str(d), self.WIDTH, subsequent_indent="    ")
            for d in self
        )


def _array(name: str, x) -> np.ndarray:
    """``x`` as a real float64 array (0-d for a scalar); refuse the rest."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be numeric; got {exc}") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be a real numeric array or scalar; got "
            f"{type(x).__name__} of dtype {arr.dtype}"
        )
    if not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} must be finite; got {bad} NaN or infinite entries of "
            f"{arr.size}"
        )
    return arr


def _snap(c: float, tol: float) -> float:
    """A factor as the integer or 1/integer it is within ``tol`` of."""
    for k in (round(c), 1 / round(1 / c) if abs(c) < 1 else 0):
        if k and abs(c - k) <= tol * abs(c):
            return float(k)
    return c


def _factor_text(c: float) -> str:
    if c == round(c):
        return f"{int(c)}".replace("-", "−")
    if abs(1 / c - round(1 / c)) < 1e-12:
        return f"1/{round(1 / c)}".replace("1/-", "−1/")
    return f"{c:.3g}".replace("-", "−")


def _which(bad: np.ndarray) -> str:
    idx = [str(i) for i in np.flatnonzero(bad)]
    return ", ".join(idx[:6] + (["…"] if len(idx) > 6 else []))


def diagnose(candidate, expected, tol: float | None = None) -> Diagnosis:
    """Compare a gradient with the right one and name what is wrong.

    candidate, expected: arrays (or scalars); ``expected`` is the right
    gradient, with its variable's shape. tol: the relative error below
    which the two agree; by default 1e-6, or 1e-4 if either is float32 (or
    narrower). Looks, in order, for: a wrong shape, agreement, the
    transpose, a scalar factor, some rows (or entries) right and the others
    wrong. A shape that differs is a diagnosis, ``"wrong-shape"``, not an
    error.
    """
    c, e = _array("candidate", candidate), _array("expected", expected)
    if tol is None:
        narrow = min(
            np.finfo(a.dtype).bits if a.dtype.kind == "f" else 64
            for a in (c, e)
        )
        tol = TOL if narrow >= 64 else 1e-4
    c, e = c.astype(np.float64), e.astype(np.float64)
    if c.shape != e.shape:
        if c.ndim == e.ndim == 2 and c.shape == e.T.shape:
            if relative_error(c, e.T) <= tol:
                return _transposed()
        return Diagnosis(
            "wrong-shape",
            f"your gradient has shape {c.shape} but its variable has shape "
            f"{e.shape}: a gradient always has the shape of its variable",
        )
    if relative_error(c, e) <= tol:
        return Diagnosis("correct", "your gradient is right")
    if (
        e.ndim == 2
        and e.shape[0] == e.shape[1]
        and relative_error(c, e.T) <= tol
    ):
        return _transposed()
    ee = float(np.sum(e * e))
    if ee > 0:
        f = float(np.sum(c * e)) / ee
        if f != 0 and relative_error(c, f * e) <= tol:
            return _scaled(_snap(f, tol))
    scale = max(np.linalg.norm(c), np.linalg.norm(e))
    if e.ndim >= 2 and e.shape[0] >= 2:
        gap = np.linalg.norm((c - e).reshape(e.shape[0], -1), axis=1)
        bad = gap > tol * scale
        if bad.any() and not bad.all():
            return Diagnosis(
                "wrong-rows",
                f"rows {_which(bad)} of {e.shape[0]} are wrong and the "
                "others right: a bug that shows only for some examples, "
                "such as a kink, a mask or an index",
            )
    bad = np.abs(c - e) > tol * scale
    if bad.any() and bad.mean() <= 0.75:  # not a few near-coincidences
        return Diagnosis(
            "wrong-rows",
            f"{int(bad.sum())} of {bad.size} entries are wrong and the "
            "others right: a bug that shows only for some entries, such as "
            "a kink, a mask or an index",
        )
    return Diagnosis(
        "unknown",
        "your gradient differs from the right one in no pattern recognised "
        "here: compare it entry by entry, one array at a time",
    )


def _transposed() -> Diagnosis:
    return Diagnosis(
        "transposed",
        "your gradient is the transpose of the right one: check the order "
        "of the outer product",
    )


def _scaled(f: float) -> Diagnosis:
    t = _factor_text(f)
    if f == -1:
        why = "your gradient is the right one times −1: a sign error"
    elif f == round(f) and f > 1:
        why = (
            f"your gradient is {t} times the right one: a sum over {t} "
            "things (the batch, a window) where the mean belongs"
        )
    elif abs(f) < 1 and f == 1 / round(1 / f) and f > 0:
        why = (
            f"your gradient is the right one times {t}: a mean over "
            f"{t[2:]} things (the batch, a window) where the sum belongs"
        )
    else:
        why = (
            f"your gradient is the right one times {t}: a constant factor "
            "is wrong (−1 is a sign error, B or 1/B the sum or the mean "
            "over the batch)"
        )
    return Diagnosis("scaled", why, factor=f)


# --- check_vjp: the reader's VJP against central differences -----------


def _fd(op, xs, i, G=None) -> np.ndarray:
    """Central differences in ``xs[i]``, float64, its shape: the VJP
    ``∇⟨G, op(xs)⟩`` if ``G`` is given, else the Jacobian's diagonal
    ``∂y_k/∂x_k`` (for an op whose output has the shape of ``xs[i]``)."""

    def at(x):
        return np.asarray(op(*xs[:i], x, *xs[i + 1 :]), dtype=np.float64)

    x = np.asarray(xs[i], dtype=np.float64)
    if G is not None:
        return numerical_gradient(lambda x_: np.sum(G * at(x_)), x)
    return unvec(np.diag(numerical_jacobian(at, x)), x.shape)


def _partitions(items):
    """Every set partition of ``items``, as lists of blocks."""
    if len(items) <= 1:
        yield [list(items)]
        return
    first, rest = items[0], items[1:]
    for p in _partitions(rest):
        yield [[first], *p]
        for j in range(len(p)):
            yield [*p[:j], [first, *p[j]], *p[j + 1 :]]


def _runs(op, xs) -> bool:
    try:
        y = np.asarray(op(*xs), dtype=np.float64)
    except Exception:  # this shape does not fit the op: not a variant
        return False
    return bool(np.all(np.isfinite(y)))


def _draw(shapes, xs, rng) -> list:
    """Fresh standard-normal floats of the given shapes; integer inputs
    (labels) keep their values, resized."""
    return [
        np.resize(x, s) if x.dtype.kind in "iu" else rng.normal(size=s)
        for x, s in zip(xs, shapes)
    ]


def _cases(op, xs, rng, max_tries=30):
    """Inputs to check on: fresh values (batch ≥ 2, lengths ≤ 6), then for
    each class of axes of equal length one split into different lengths
    (most-split first) on which ``op`` runs, then the reader's values."""
    shapes = [x.shape for x in xs]
    lengths = sorted({n for s in shapes for n in s})
    small = [n for n in range(2, 30) if n not in lengths]
    resize = {n: (small.pop(0) if n > 6 else n) for n in lengths}
    if shapes[0] and shapes[0][0] == 1:
        resize[1] = small.pop(0)
    base = None
    for m in (resize, {n: n for n in lengths}):
        trial = _draw([tuple(m[n] for n in s) for s in shapes], xs, rng)
        if _runs(op, trial):
            base = trial
            break
    cases = [("fresh", base)] if base is not None else []
    if base is not None:
        bshapes = [x.shape for x in base]
        free = [n for n in range(2, 12) if all(n not in s for s in bshapes)]
        classes: dict[int, list] = {}
        for i, s in enumerate(bshapes):
            for ax, n in enumerate(s):
                classes.setdefault(n, []).append((i, ax))
        for members in classes.values():
            if len(members) < 2 or len(members) > 6:
                continue
            parts = sorted(_partitions(members), key=len, reverse=True)
            for part in islice((p for p in parts if len(p) > 1), max_tries):
                new = [list(s) for s in bshapes]
                for block, n in zip(part[1:], free):
                    for i, ax in block:
                        new[i][ax] = n
                trial = _draw([tuple(s) for s in new], xs, rng)
                if _runs(op, trial):
                    cases.append(("non-square", trial))
                    break
    cases.append(("yours", list(xs)))
    return cases


def _gradients(my_vjp, G, xs, n) -> list:
    got = my_vjp(G, *xs)
    if n == 1 and not isinstance(got, tuple | list):
        got = (got,)
    if not isinstance(got, tuple | list) or len(got) != n:
        what = (
            f"{len(got)} gradients"
            if isinstance(got, tuple | list)
            else type(got).__name__
        )
        raise ValueError(
            f"my_vjp must return one gradient per input, {n} in all (None "
            f"for an integer input); got {what}"
        )
    return list(got)


# The book's named mistakes; {M} is an input's name, {k} a count, such
# as "B = 4", {what} what it counts.
MISTAKES = {
    "shape-fitted-transpose": "the gradient is the right formula with "
    "{M}ᵀ in place of {M}: a transpose that the shapes allow only because "
    "{M} is square",
    "outer-product-order": "the gradient is the transpose of the right "
    "one: check the order of the outer product",
    "sum-for-mean": "the gradient is {k} times the right one: the op "
    "averages over {what}, and the 1/{s} of the mean is missing",
    "mean-for-sum": "the gradient is the right one divided by {k}: a mean "
    "over {what} where the op sums",
    "f-prime-wrong-array": "the gradient is g ⊙ f′(Y), f′ taken at the "
    "op's output Y instead of its input: pass the pre-activation to f′",
    "missing-f-prime": "the gradient is the incoming gradient g itself: "
    "the factor f′ is missing",
    "jacobian-diagonal": "the gradient is g ⊙ diag(J), the diagonal of a "
    "dense Jacobian: each output depends on every input of its row, so "
    "the off-diagonal terms are missing",
    "sign": "the gradient has the wrong sign, the right one times −1: "
    "look for a lost minus, or a difference written the wrong way round "
    "(Y − P for P − Y)",
}


def _hypotheses(op, xs, i, G, T, names):
    """Yield ``(mistake, what the gradient would be, message)`` for the
    gradient of input ``i``, whose right value is ``T``."""
    yield "sign", -T, MISTAKES["sign"]
    B, N = (xs[0].shape[0], xs[0].size) if xs[0].ndim else (1, 1)
    for s, n, what in (("B", B, "the batch"), ("N", N, "all N entries")):
        if n >= 2 and not (s == "N" and N == B):
            k = dict(k=f"{s} = {n}", s=s, what=what)
            yield "sum-for-mean", n * T, MISTAKES["sum-for-mean"].format(**k)
            yield "mean-for-sum", T / n, MISTAKES["mean-for-sum"].format(**k)
    if T.ndim == 2:
        yield "outer-product-order", T.T, MISTAKES["outer-product-order"]
    for j, M in enumerate(xs):
        if j != i and M.ndim == 2 and M.shape[0] == M.shape[1] > 1:
            swapped = [*xs[:j], M.T.copy(), *xs[j + 1 :]]
            message = MISTAKES["shape-fitted-transpose"].format(
                M=names[j] if names else f"input {j + 1}"
            )
            yield "shape-fitted-transpose", _fd(op, swapped, i, G), message
    if np.shape(G) != xs[i].shape:
        return
    d = _fd(op, xs, i)
    if relative_error(G * d, T) > TOL:  # a dense Jacobian, as softmax's
        yield "jacobian-diagonal", G * d, MISTAKES["jacobian-diagonal"]
    else:  # element-wise: f′ at the output Y instead of the input
        at_y = [*xs[:i], np.asarray(op(*xs), np.float64), *xs[i + 1 :]]
        if _runs(op, at_y):
            f_at_y = G * _fd(op, at_y, i)
            yield (
                "f-prime-wrong-array",
                f_at_y,
                MISTAKES["f-prime-wrong-array"],
            )
    yield "missing-f-prime", G, MISTAKES["missing-f-prime"]


def _judge(op, xs, i, G, T, C, names) -> Diagnosis:
    d = diagnose(C, T, tol=TOL)
    if d.ok or C.shape != T.shape and d.kind != "transposed":
        return d
    for mistake, H, message in _hypotheses(op, xs, i, G, T, names):
        if H.shape == C.shape and relative_error(C, H) <= TOL:
            kind = "transposed" if "transpose" in mistake else d.kind
            return Diagnosis(kind, message, d.factor, mistake)
    return d


def check_vjp(my_vjp, op, *inputs, seed: int = 0) -> Report:
    """Check ``my_vjp`` against central differences of ``op``; name the
    mistake of each input's gradient.

    ``my_vjp(g, *inputs)`` returns one gradient per input, each of its
    input's shape (``None`` for an integer input, such as class labels; a
    single array when there is one input). ``op(*inputs)`` returns an array
    or a scalar. Floats are checked in float64 with a seeded random ``g``
    of the output's shape, on fresh standard-normal inputs (batch ≥ 2), on
    inputs whose equal lengths are made different (a square W made
    non-square), and on the inputs given. Returns a :class:`Report`, one
    :class:`Diagnosis` per input.
    """
    for name, f in (("my_vjp", my_vjp), ("op", op)):
        if not callable(f):
            raise TypeError(
                f"{name} must be a function; got {type(f).__name__}"
            )
    if not inputs:
        raise ValueError("check_vjp needs at least one input for op")
    xs = [_array(f"input {i + 1}", x) for i, x in enumerate(inputs)]
    xs = [x if x.dtype.kind in "iu" else x.astype(np.float64) for x in xs]
    try:  # the inputs' names in messages: op's parameters (A, W, b)
        params = list(inspect.signature(op).parameters.values())
    except (TypeError, ValueError):
        params = []
    named = len(params) == len(xs) and all(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        for p in params
    )
    names = [p.name for p in params] if named else []
    try:
        y = op(*xs)
    except Exception as exc:
        exc.add_note("check_vjp: op raised on the inputs given to it")
        raise
    if isinstance(y, tuple | list):
        raise TypeError(
            f"op must return one array or scalar; got a "
            f"{type(y).__name__} of {len(y)}"
        )
    _array("op's output", y)
    rng = np.random.default_rng(seed)
    found: list[Diagnosis | None] = [None] * len(xs)  # named mistakes
    first: list[Diagnosis | None] = [None] * len(xs)  # any other failure
    ran_on = None
    for label, case in _cases(op, xs, rng):
        G = rng.normal(size=np.shape(op(*case)))
        try:
            got = _gradients(my_vjp, G, case, len(xs))
        except Exception as exc:
            if label == "non-square" and ran_on is not None:
                exc.add_note(
                    "check_vjp: my_vjp ran on inputs of shapes "
                    f"{ran_on} but raised on {[x.shape for x in case]}, "
                    "where lengths that were equal differ: a formula that "
                    "fits only square shapes, such as W where Wᵀ belongs"
                )
            raise
        ran_on = [x.shape for x in case]
        for i, (x, C) in enumerate(zip(case, got)):
            if x.dtype.kind in "iu" or found[i] is not None:
                continue
            if C is None:
                raise ValueError(
                    f"my_vjp returned None for input {i + 1}, "
                    "a float array: return its gradient"
                )
            C = _array(f"my_vjp's gradient for input {i + 1}", C)
            T = _fd(op, case, i, G)
            d = _judge(op, case, i, G, T, C.astype(np.float64), names)
            if d.mistake is not None:
                found[i] = d
            elif not d.ok and first[i] is None:
                first[i] = d
    report = []
    for i, (x, d) in enumerate(zip(xs, found)):
        d = d or first[i]
        where = f"input {i + 1}"
        where += (
            f" ({names[i]}, shape {x.shape})"
            if names
            else (f" (shape {x.shape})")
        )
        if x.dtype.kind in "iu":
            d = Diagnosis("correct", "an integer input: no gradient")
        d = d or Diagnosis("correct", "your gradient is right")
        report.append(
            Diagnosis(d.kind, d.message, d.factor, d.mistake, where)
        )
    return Report(report)
