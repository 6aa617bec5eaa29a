"""diagnose and check_vjp name the book's mistakes (issue 16, part 2).

For each named mistake a deliberately wrong VJP of one of the package's
ops is diagnosed as exactly that mistake, and the right VJP as correct.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import Diagnosis, check_vjp, diagnose
from backprop.mistakes import KINDS, MISTAKES, Report

rng = np.random.default_rng(0)
A, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 3)), rng.normal(size=3)
Z = rng.normal(size=(4, 3))
Y = rng.normal(size=(4, 3))
labels = np.array([0, 2, 1, 2])


def linear_vjp(dZ, A, W, b):
    return bp.linear_vjp(dZ, A, W)


def shape_fitted_dA(dZ, A, W, b):  # "∂Z/∂A is Wᵀ", transposed if it fails
    dA = dZ @ W.T if dZ.shape[1] == W.shape[1] else dZ @ W
    return dA, dZ.T @ A, dZ.sum(axis=0)


def shape_fitted_dW(dZ, A, W, b):  # the gradcheck chapter's trap
    dW = A.T @ dZ
    return dZ @ W, dW if dW.shape == W.shape else dW.T, dZ.sum(axis=0)


def mean_db(dZ, A, W, b):
    return dZ @ W, dZ.T @ A, dZ.mean(axis=0)


def ce(Z, y):
    return bp.softmax_cross_entropy(Z, y)[0]


def ce_vjp(g, Z, y):
    return g * bp.softmax_cross_entropy(Z, y)[1], None


def ce_summed_vjp(g, Z, y):  # the 1/B of the mean forgotten
    return g * Z.shape[0] * bp.softmax_cross_entropy(Z, y)[1], None


def mse_vjp(g, P, Y):
    dP = bp.mse_vjp(g, P, Y)
    return dP, -dP


def mse_sign_vjp(g, P, Y):  # Y − P for P − Y
    dP = g * 2 * (Y - P) / P.size
    return dP, -bp.mse_vjp(g, P, Y)


def tanh_at_output(g, Z):  # tanh′ taken at A = tanh(Z)
    return bp.tanh_vjp(g, bp.tanh(Z))


def sigmoid_at_output(g, Z):
    return bp.sigmoid_vjp(g, bp.sigmoid(Z))


def softmax_diagonal(g, Z):  # p ⊙ (1 − p): as if softmax were element-wise
    P = bp.softmax(Z)
    return g * P * (1 - P)


# (name, my_vjp, op, inputs, which input is wrong, kind, mistake, factor)
MISTAKE_CASES = [
    ("shape-fitted dA", shape_fitted_dA, bp.linear, (A, W, b), 0,
     "transposed", "shape-fitted-transpose", None),
    ("shape-fitted dW", shape_fitted_dW, bp.linear, (A, W, b), 1,
     "transposed", "outer-product-order", None),
    ("db as a mean", mean_db, bp.linear, (A, W, b), 2,
     "scaled", "mean-for-sum", 0.25),
    ("cross-entropy without 1/B", ce_summed_vjp, ce, (Z, labels), 0,
     "scaled", "sum-for-mean", 4.0),
    ("MSE, Y − P", mse_sign_vjp, bp.mse, (Z, Y), 0,
     "scaled", "sign", -1.0),
    ("tanh′ at the output", tanh_at_output, bp.tanh, (Z,), 0,
     "unknown", "f-prime-wrong-array", None),
    ("sigmoid′ at the output", sigmoid_at_output, bp.sigmoid, (Z,), 0,
     "unknown", "f-prime-wrong-array", None),
    ("tanh without f′", lambda g, Z: g, bp.tanh, (Z,), 0,
     "unknown", "missing-f-prime", None),
    ("relu without f′", lambda g, Z: g, bp.relu, (Z,), 0,
     "wrong-rows", "missing-f-prime", None),
    ("softmax, diagonal only", softmax_diagonal, bp.softmax, (Z,), 0,
     "unknown", "jacobian-diagonal", None),
]  # fmt: skip

RIGHT_CASES = [
    ("linear", linear_vjp, bp.linear, (A, W, b)),
    ("tanh", bp.tanh_vjp, bp.tanh, (Z,)),
    ("sigmoid", bp.sigmoid_vjp, bp.sigmoid, (Z,)),
    ("relu", bp.relu_vjp, bp.relu, (Z,)),
    ("softmax", bp.softmax_vjp, bp.softmax, (Z,)),
    ("cross-entropy", ce_vjp, ce, (Z, labels)),
    ("MSE", mse_vjp, bp.mse, (Z, Y)),
]


@pytest.mark.parametrize(
    ("my_vjp", "op", "inputs", "i", "kind", "mistake", "factor"),
    [case[1:] for case in MISTAKE_CASES],
    ids=[case[0] for case in MISTAKE_CASES],
)
def test_each_mistake_is_named(my_vjp, op, inputs, i, kind, mistake, factor):
    report = check_vjp(my_vjp, op, *inputs)
    assert len(report) == len(inputs) and not report.ok
    d = report[i]
    assert (d.kind, d.mistake, d.factor) == (kind, mistake, factor)
    assert not d.ok and kind in KINDS and mistake in MISTAKES
    assert all(other.ok for j, other in enumerate(report) if j != i)
    print(f"{mistake:22} | {d.kind:10} | {d.message}")


def test_every_named_mistake_has_a_case():
    assert {case[6] for case in MISTAKE_CASES} == set(MISTAKES)


@pytest.mark.parametrize(
    ("my_vjp", "op", "inputs"),
    [case[1:] for case in RIGHT_CASES],
    ids=[case[0] for case in RIGHT_CASES],
)
def test_right_vjps_are_correct(my_vjp, op, inputs):
    report = check_vjp(my_vjp, op, *inputs)
    assert report.ok, str(report)
    assert all(d.kind == "correct" and d.mistake is None for d in report)


def test_float32_inputs_are_checked_in_float64():
    report = check_vjp(
        linear_vjp, bp.linear, *(x.astype(np.float32) for x in (A, W, b))
    )
    assert report.ok


def test_report_prints_one_stable_entry_per_input():
    report = check_vjp(shape_fitted_dW, bp.linear, A, W, b)
    assert str(report) == (
        "input 1 (A, shape (4, 3)): correct\n"
        "input 2 (W, shape (3, 3)): outer-product-order — the gradient is the\n"
        "    transpose of the right one: check the order of the outer product\n"
        "input 3 (b, shape (3,)): correct"
    )
    assert isinstance(report, tuple) and isinstance(report[1], Diagnosis)
    # a diagnosis prints on one line; the report wraps it
    assert " ".join(str(report).splitlines()[1:3]).replace("     ", " ") == str(
        report[1]
    )
    labelled = check_vjp(ce_summed_vjp, lambda *xs: ce(*xs), Z, labels)
    assert str(labelled) == (
        "input 1 (shape (4, 3)): sum-for-mean — the gradient is B = 4 times the\n"
        "    right one: the op averages over the batch, and the 1/B of the mean\n"
        "    is missing\n"
        "input 2 (shape (4,)): correct"
    )
    assert all(len(line) <= Report.WIDTH for line in str(labelled).splitlines())


def test_the_mean_over_all_entries_is_named_with_N():
    def summed(g, P, Y):  # Σ (P − Y)², the 1/N of the mean forgotten
        return g * 2 * (P - Y), -g * 2 * (P - Y)

    report = check_vjp(summed, bp.mse, Z, Y)
    assert [d.mistake for d in report] == ["sum-for-mean"] * 2
    assert report[0].factor == 12.0 and "N = 12" in report[0].message


def test_a_formula_for_square_W_only_raises_its_own_error_with_a_note():
    def transposed_dA(dZ, A, W, b):  # W where Wᵀ... the other way round
        return dZ @ W.T, dZ.T @ A, dZ.sum(axis=0)

    with pytest.raises(ValueError, match="matmul") as info:
        check_vjp(transposed_dA, bp.linear, A, W, b)
    (note,) = info.value.__notes__
    assert "ran on inputs of shapes [(4, 3), (3, 3), (3,)]" in note
    assert "raised on [(4, 3), (2, 3), (2,)]" in note and "Wᵀ" in note


def test_a_raising_vjp_surfaces_its_own_exception():
    def broken(g, Z):
        raise KeyError("the reader's own message")

    with pytest.raises(KeyError, match="the reader's own message"):
        check_vjp(broken, bp.tanh, Z)


def test_an_op_that_refuses_the_inputs_raises_its_own_error():
    with pytest.raises(ValueError, match="W has shape") as info:
        check_vjp(linear_vjp, bp.linear, A, rng.normal(size=(2, 5)), b)
    assert "op raised on the inputs" in info.value.__notes__[0]


# --- diagnose on plain arrays -----------------------------------------

G = rng.normal(size=(4, 3))
S = rng.normal(size=(3, 3))
flip_one_a_row = G.copy()
flip_one_a_row[range(4), [0, 1, 2, 0]] *= -1  # every row has a wrong entry


@pytest.mark.parametrize(
    ("candidate", "expected", "kind", "factor", "words"),
    [
        (G.copy(), G, "correct", None, "right"),
        (np.float32(2.5), 2.5, "correct", None, "right"),
        (G.astype(np.float32), G, "correct", None, "right"),
        (G[:, :2], G, "wrong-shape", None, "shape (4, 2)"),
        (G.sum(axis=0, keepdims=True), G.sum(axis=0), "wrong-shape", None, "(1, 3)"),
        (G.T, G, "transposed", None, "outer product"),
        (S.T, S, "transposed", None, "outer product"),
        (-G, G, "scaled", -1.0, "sign error"),
        (4 * G, G, "scaled", 4.0, "a sum over 4 things"),
        (G / 4, G, "scaled", 0.25, "1/4: a mean over 4 things"),
        (2.5 * G, G, "scaled", 2.5, "times 2.5: a constant factor"),
        (np.vstack([G[:2], -G[2:3], G[3:]]), G, "wrong-rows", None, "rows 2 of 4"),
        (flip_one_a_row, G, "wrong-rows", None, "entries are wrong"),
        (G[::-1], G, "unknown", None, "no pattern"),
        (np.zeros(3), np.arange(3.0) + 1, "unknown", None, "no pattern"),
    ],
)
def test_diagnose_kinds(candidate, expected, kind, factor, words):
    d = diagnose(candidate, expected)
    assert (d.kind, d.mistake) == (kind, None)
    assert d.factor == (None if factor is None else pytest.approx(factor))
    assert d.ok == (kind == "correct") and words in d.message
    assert str(d) == d.message and "\n" not in d.message


def test_diagnose_messages_print_no_round_off():
    # a factor a few ulps from 4 prints as 4, and is 4
    d = diagnose(G * (4 + 1e-12), G)
    assert d.factor == 4.0 and "4 times" in d.message


# --- bad input ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: diagnose("abc", G),
            TypeError,
            r"candidate must be a real numeric.*str",
        ),
        (
            lambda: diagnose(G, [[1, None]]),
            TypeError,
            r"expected must be a real numeric",
        ),
        (
            lambda: diagnose(G * np.nan, G),
            ValueError,
            r"candidate must be finite; got 12 NaN",
        ),
        (
            lambda: diagnose(G, np.full(3, np.inf)),
            ValueError,
            r"expected must be finite",
        ),
        (
            lambda: check_vjp(bp.tanh_vjp, bp.tanh, "Z"),
            TypeError,
            r"input 1 must be a real numeric",
        ),
        (
            lambda: check_vjp(bp.tanh_vjp, bp.tanh, Z * np.nan),
            ValueError,
            r"input 1 must be finite",
        ),
        (lambda: check_vjp(bp.tanh_vjp, bp.tanh), ValueError, r"at least one input"),
        (
            lambda: check_vjp("vjp", bp.tanh, Z),
            TypeError,
            r"my_vjp must be a function; got str",
        ),
        (lambda: check_vjp(bp.tanh_vjp, None, Z), TypeError, r"op must be a function"),
        (
            lambda: check_vjp(lambda g, A, W, b: (g @ W, g.T @ A), bp.linear, A, W, b),
            ValueError,
            r"one gradient per input, 3 in all.*got 2 gradients",
        ),
        (
            lambda: check_vjp(lambda g, Z: (g, g), bp.tanh, Z),
            ValueError,
            r"one gradient per input, 1 in all.*got 2 gradients",
        ),
        (
            lambda: check_vjp(lambda g, Z: "dZ", bp.tanh, Z),
            TypeError,
            r"my_vjp's gradient for input 1 must be a real numeric",
        ),
        (
            lambda: check_vjp(lambda g, Z: g * np.nan, bp.tanh, Z),
            ValueError,
            r"my_vjp's gradient for input 1 must be finite",
        ),
        (
            lambda: check_vjp(lambda g, Z, y: (None, None), ce, Z, labels),
            ValueError,
            r"returned None for input 1, a float array",
        ),
        (
            lambda: check_vjp(lambda g, Z, y: g, bp.softmax_cross_entropy, Z, labels),
            TypeError,
            r"op must return one array or scalar; got a tuple of 2",
        ),
    ],
)
def test_bad_input_is_refused_clearly(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_check_vjp_does_not_modify_its_inputs():
    copies = [x.copy() for x in (A, W, b)]
    check_vjp(shape_fitted_dA, bp.linear, A, W, b)
    assert all(np.array_equal(x, c) for x, c in zip((A, W, b), copies))
