"""A label is a promise: every labelled equation in the book is verified by a check.

The convention: a notebook code cell (run by strict nbval) or a test module that
checks equation ``grad-w`` has a line starting with the comment ``# checks:``
followed by the label (several labels may follow, separated by commas), and
contains an ``assert``. This test reads every page in the table of contents and
refuses a labelled equation that no check names, a check that names a label the
book does not define, and a duplicated label. The reader lives in
``_ext/equation_index.py``, which also renders the appendix's traceability table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
import equation_index  # noqa: E402  (the same reader builds the site's index)

sys.path.pop(0)


def equation_labels() -> dict[str, list[str]]:
    return equation_index.equation_labels(ROOT)


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
        f"equation {label!r} has no code cell with '# checks: {label}' and an assert; a label is a promise"
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
