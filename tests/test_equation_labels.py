"""A label is a promise: every labelled equation in the book is verified by a cell.

The convention: a code cell that checks equation ``grad-w`` carries a comment
``# checks: grad-w`` (several labels may follow, separated by commas) and contains
an ``assert``. This test reads every page in the table of contents and refuses
a labelled equation that no such cell names, a cell that names a label the book
does not define, and a duplicated label.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABEL = re.compile(r"^:label:\s*(\S+)", re.MULTILINE)
MATH_BLOCK = re.compile(r"```\{math\}\s*\n(.*?)```", re.DOTALL)
DOLLAR_LABEL = re.compile(r"\$\$\s*\((\S+?)\)")
CHECKS = re.compile(r"#\s*checks:\s*([^\n]+)")


def book_pages() -> list[Path]:
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    pages = [ROOT / "intro.md"]
    for name in re.findall(r"file:\s*(\S+)", toc):
        for suffix in (".ipynb", ".md"):
            path = ROOT / f"{name}{suffix}"
            if path.exists():
                pages.append(path)
    return pages


def cells(path: Path) -> list[tuple[str, str]]:
    """(cell_type, source) pairs; a Markdown page is one markdown cell."""
    if path.suffix == ".md":
        return [("markdown", path.read_text(encoding="utf-8"))]
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]


def equation_labels() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in book_pages():
        for kind, source in cells(path):
            if kind != "markdown":
                continue
            for block in MATH_BLOCK.findall(source):
                for label in LABEL.findall(block):
                    found.setdefault(label, []).append(path.name)
            for label in DOLLAR_LABEL.findall(source):
                found.setdefault(label, []).append(path.name)
    return found


def checked_labels() -> dict[str, list[str]]:
    checked: dict[str, list[str]] = {}
    for path in book_pages():
        for kind, source in cells(path):
            if kind != "code" or "assert" not in source:
                continue
            for line in CHECKS.findall(source):
                for label in re.split(r"[,\s]+", line.strip()):
                    if label:
                        checked.setdefault(label, []).append(path.name)
    return checked


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
    named = set()
    for path in (ROOT / "src" / "backprop").glob("*.py"):
        for group in re.findall(
            r"eqs?\.\s+((?:``[\w-]+``[,\s]*)+)", path.read_text(encoding="utf-8")
        ):
            named.update(re.findall(r"``([\w-]+)``", group))
    assert {"linear-forward", "grad-z", "grad-a", "grad-w", "grad-b"} <= named
    missing = sorted(named - set(equation_labels()))
    assert not missing, (
        f"the package names equations the book does not define: {missing}"
    )
