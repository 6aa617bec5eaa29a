"""A label is a promise: every labelled equation in the book is verified by a check.

The convention: a notebook code cell (run by strict nbval) or a test function that
checks equation ``grad-w`` has a line with the comment ``# checks:`` followed by the
label (several labels may follow, separated by commas), and runs an ``assert``
statement. The rule reads code, not text: the comment must be a comment, the
``assert`` a parsed statement that runs, and the check neither skipped nor allowed
to fail (the full rule is in the docstring of ``_ext/equation_index.py``). This test
reads every page in the table of contents and refuses a labelled equation that no
check names, a check that names a label the book does not define, and a duplicated
label; and it feeds the rule hollow checks, which it must refuse. The reader lives in
``_ext/equation_index.py``, which also renders the appendix's traceability table.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
import equation_index  # noqa: E402  (the same reader builds the site's index)

sys.path.pop(0)


@functools.cache
def equation_labels() -> dict[str, list[str]]:
    return equation_index.equation_labels(ROOT)


@functools.cache
def checked_labels() -> dict[str, list[str]]:
    return equation_index.checks(ROOT)


def test_the_book_has_labelled_equations():
    assert len(equation_labels()) >= 10


def test_no_label_is_defined_twice():
    twice = {
        label: pages for label, pages in equation_labels().items() if len(pages) > 1
    }
    assert not twice, f"labels defined more than once: {twice}"


@pytest.mark.parametrize("label", sorted(equation_labels()))
def test_every_labelled_equation_is_checked_by_an_asserting_cell(label):
    assert label in checked_labels(), (
        f"equation {label!r} has no code cell with '# checks: {label}' "
        "and an assert; a label is a promise"
    )


def test_every_checked_label_exists():
    unknown = sorted(set(checked_labels()) - set(equation_labels()))
    assert not unknown, (
        f"cells claim to check labels the book does not define: {unknown}"
    )


def test_labels_named_in_the_package_exist():
    """Docstrings say which equation a function implements (``eq. `grad-w```); that equation exists."""
    named = set(equation_index.package_citations(ROOT))
    assert {"linear-forward", "grad-z", "grad-a", "grad-w", "grad-b"} <= named
    missing = sorted(named - set(equation_labels()))
    assert not missing, (
        f"the package names equations the book does not define: {missing}"
    )


# --- the rule refuses hollow checks -----------------------------------------------------

REAL_CELL = """# checks: grad-w
dW = dZ.T @ A
assert bp.relative_error(dW, dW_fd) < 1e-7
"""

HOLLOW_CELLS = {
    "no assert at all": "# checks: grad-w\ndW = dZ.T @ A\nprint(dW)\n",
    "assert only in a comment": "# checks: grad-w\ndW = dZ.T @ A  # assert dW ok\n",
    "assert only in a string": '# checks: grad-w\nnote = "assert dW == dW_fd"\n',
    "assert only in a docstring": '# checks: grad-w\n"""assert dW == dW_fd"""\n',
    "assert in a function never called": (
        "# checks: grad-w\ndef check():\n    assert dW == dW_fd\n"
    ),
    "assert on a literal": "# checks: grad-w\nassert True\n",
    "assert on a tuple, always true": '# checks: grad-w\nassert (dW == 0, "msg")\n',
    "the comment only inside a string": (
        's = """\n# checks: grad-w\n"""\nassert dW.shape == (3, 4)\n'
    ),
    "the label only after code": "x = 1  # checks: grad-w\nassert x == 1\n",
    "NBVAL_SKIP marker": "# NBVAL_SKIP\n" + REAL_CELL,
    "NBVAL_RAISES_EXCEPTION marker": REAL_CELL + "#  NBVAL_RAISES_EXCEPTION\n",
    "code that does not parse": REAL_CELL + "dW = (\n",
    "a cell magic's body": "%%time\n" + REAL_CELL,
}


@pytest.mark.parametrize("why", sorted(HOLLOW_CELLS))
def test_a_hollow_cell_checks_nothing(why):
    assert equation_index.cell_checks(HOLLOW_CELLS[why]) == [], why


@pytest.mark.parametrize(
    "tag",
    ["raises-exception", "nbval-raises-exception", "nbval-skip", "skip-execution"],
)
def test_a_cell_tagged_to_skip_or_to_raise_checks_nothing(tag):
    assert equation_index.cell_checks(REAL_CELL, [tag]) == []


@pytest.mark.parametrize(
    ("source", "tags"),
    [
        (REAL_CELL, []),
        (REAL_CELL, ["nbval-ignore-output", "hide-input"]),  # it still runs
        ("# NBVAL_IGNORE_OUTPUT\n" + REAL_CELL, []),
        ("%matplotlib inline\n" + REAL_CELL, []),  # a line magic is a call
        ("# checks: grad-w\nfor k in range(3):\n    assert k < 3\n", []),
        (  # a helper defined in the cell and called by it
            "# checks: grad-w\ndef check(x):\n    assert x > 0\n\ncheck(1)\n",
            [],
        ),
    ],
)
def test_a_real_check_is_accepted(source, tags):
    assert equation_index.cell_checks(source, tags) == ["grad-w"]


def test_several_labels_on_several_comment_lines():
    source = "# checks: grad-w, grad-b\n#checks: grad-a\nassert dW.shape == W.shape\n"
    assert equation_index.cell_checks(source) == ["grad-w", "grad-b", "grad-a"]


TEST_MODULE = """
import pytest


def helper(x):
    assert x > 0


# checks: grad-w
def test_above_counts():
    assert 1 + 1 == 2


def test_inside_counts():
    # checks: grad-a
    assert 1 + 1 == 2


# checks: grad-b
@pytest.mark.parametrize("x", [1, 2])
def test_above_the_decorators_counts(x):
    helper(x)


# checks: grad-z
@pytest.mark.skip(reason="later")
def test_skipped(x):
    assert x


# checks: batch-grads
@pytest.mark.xfail
def test_allowed_to_fail():
    assert False


@pytest.mark.skipif(True, reason="never here")
def test_skipped_if():
    # checks: nt-vjp
    assert 1


def test_skips_itself():
    # checks: nt-chain
    pytest.skip("not today")
    assert 1


def test_assert_in_a_comment():
    # checks: nt-jacobian
    x = 1  # assert x == 1


def test_assert_in_a_string():
    # checks: nt-frobenius
    message = "assert x == 1"


# checks: nt-grad-def

def test_after_a_blank_line():
    assert 1 + 1 == 2


def not_a_test():
    # checks: linear-forward
    assert 1 + 1 == 2


class TestGrouped:
    def test_in_a_class(self):
        # checks: act-forward
        assert 1 + 1 == 2


@pytest.mark.xfail
class TestGroupedXfail:
    def test_in_an_xfail_class(self):
        # checks: nt-first-order
        assert 1 + 1 == 2
"""


def test_the_rule_for_test_modules():
    assert equation_index.module_checks(TEST_MODULE) == {
        "test_above_counts": ["grad-w"],
        "test_inside_counts": ["grad-a"],
        "test_above_the_decorators_counts": ["grad-b"],
        "test_in_a_class": ["act-forward"],
    }


@pytest.mark.parametrize(
    "marker",
    [
        "pytestmark = pytest.mark.skip",
        "pytestmark = [pytest.mark.xfail(reason='x')]",
        "pytest.importorskip('torch')",
        "torch = pytest.importorskip('torch')",
        "pytest.skip('no', allow_module_level=True)",
    ],
)
def test_a_module_skipped_as_a_whole_checks_nothing(marker):
    source = TEST_MODULE.replace("import pytest\n", f"import pytest\n{marker}\n")
    assert equation_index.module_checks(source) == {}


def test_the_chapters_are_read_with_the_rule(tmp_path):
    """Through the notebook reader too: tags come from the cell's metadata."""
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# checks: grad-b"]},
        {"cell_type": "code", "metadata": {}, "source": [REAL_CELL]},
        {
            "cell_type": "code",
            "metadata": {"tags": ["nbval-skip"]},
            "source": [REAL_CELL],
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": [HOLLOW_CELLS["assert only in a string"]],
        },
    ]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells}), encoding="utf-8")
    assert equation_index.notebook_checks(path) == {2: ["grad-w"]}
