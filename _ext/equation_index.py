"""Equation traceability: which check verifies each labelled equation.

A label is a promise. Every ``{math}`` block with a ``:label:`` in the book must be
named by a check: a notebook code cell (run by strict nbval) or a test in
``tests/`` that carries the comment ``# checks: <label>`` and an ``assert``.

This module reads the book's sources and answers two questions:

- for the test suite (``tests/test_equation_labels.py``): which labels exist,
  which are checked, and by what;
- for the site: the directive ``{equation-index}`` renders the table of every
  label, its equation number, the page that derives it, the checks that verify it
  and the package modules whose docstrings cite it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.application import Sphinx

LABEL = re.compile(r"^:label:\s*(\S+)", re.MULTILINE)
MATH_BLOCK = re.compile(r"```\{math\}\s*\n(.*?)```", re.DOTALL)
DOLLAR_LABEL = re.compile(r"\$\$\s*\((\S+?)\)")
CHECKS = re.compile(r"^[ \t]*#\s*checks:\s*([^\n]+)", re.MULTILINE)
CITED = re.compile(r"eqs?\.\s+((?:``[\w-]+``[,\s]*)+)")


def book_pages(root: Path) -> list[Path]:
    """The pages in the table of contents, in reading order (the root page first)."""
    toc = (root / "_toc.yml").read_text(encoding="utf-8")
    first = re.search(r"^root:\s*(\S+)", toc, flags=re.MULTILINE).group(1)
    pages = []
    for name in [first, *re.findall(r"file:\s*(\S+)", toc)]:
        for suffix in (".ipynb", ".md"):
            if (root / f"{name}{suffix}").exists():
                pages.append(root / f"{name}{suffix}")
                break
    return pages


def cells(path: Path) -> list[tuple[str, str]]:
    """(cell_type, source) pairs; a Markdown page is one markdown cell."""
    if path.suffix == ".md":
        return [("markdown", path.read_text(encoding="utf-8"))]
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]


def _named(line: str) -> list[str]:
    return [label for label in re.split(r"[,\s]+", line.strip()) if label]


def equation_labels(root: Path) -> dict[str, list[str]]:
    """label -> the pages (relative paths) that define it, in reading order."""
    found: dict[str, list[str]] = {}
    for path in book_pages(root):
        for kind, source in cells(path):
            if kind != "markdown":
                continue
            labels = [
                label
                for block in MATH_BLOCK.findall(source)
                for label in LABEL.findall(block)
            ] + DOLLAR_LABEL.findall(source)
            for label in labels:
                found.setdefault(label, []).append(path.relative_to(root).as_posix())
    return found


def checks(root: Path) -> dict[str, list[str]]:
    """label -> the checks that name it: ``chapters/x.ipynb, cell 7`` or a test file.

    A check is a notebook code cell, or a test module, that contains ``assert`` and
    the comment ``# checks: <label>``.
    """
    found: dict[str, list[str]] = {}
    for path in book_pages(root):
        for number, (kind, source) in enumerate(cells(path), start=1):
            if kind != "code" or "assert" not in source:
                continue
            for line in CHECKS.findall(source):
                where = f"{path.relative_to(root).as_posix()}, cell {number}"
                for label in _named(line):
                    found.setdefault(label, []).append(where)
    for path in sorted((root / "tests").glob("test_*.py")):
        source = path.read_text(encoding="utf-8")
        if "assert" not in source:
            continue
        for line in CHECKS.findall(source):
            for label in _named(line):
                found.setdefault(label, []).append(path.relative_to(root).as_posix())
    return {label: sorted(set(w), key=w.index) for label, w in found.items()}


def package_citations(root: Path) -> dict[str, list[str]]:
    """label -> the package modules whose docstrings cite it (``eq. ``grad-w````)."""
    found: dict[str, list[str]] = {}
    for path in sorted((root / "src" / "backprop").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for group in CITED.findall(text):
            for label in re.findall(r"``([\w-]+)``", group):
                module = f"backprop.{path.stem}"
                if module not in found.setdefault(label, []):
                    found[label].append(module)
    return found


def index_rows(root: Path) -> list[tuple[str, str, list[str], list[str]]]:
    """(label, defining page, checks, package modules), in reading order."""
    defined, checked, cited = (
        equation_labels(root),
        checks(root),
        package_citations(root),
    )
    return [
        (label, pages[0], checked.get(label, []), cited.get(label, []))
        for label, pages in defined.items()
    ]


def _short(verified: list[str], page: str) -> str:
    """``cells 9, 13; component-view cell 24; `tests/test_x.py```, grouped by file."""
    cells_by_file: dict[str, list[str]] = {}
    for where in verified:
        path, _, cell = where.partition(", cell ")
        cells_by_file.setdefault(path, [])
        if cell:
            cells_by_file[path].append(cell)
    parts = []
    for path, numbers in cells_by_file.items():
        if not numbers:
            parts.append(f"`{path}`")
            continue
        word = "cell" if len(numbers) == 1 else "cells"
        name = word if path == page else f"{Path(path).stem} {word}"
        parts.append(f"{name} {', '.join(numbers)}")
    return "; ".join(parts)


class EquationIndex(Directive):
    """``{equation-index}``: the traceability table, built from the sources."""

    has_content = False

    def run(self):
        env = self.state.document.settings.env
        root = Path(env.srcdir)
        lines: list[str] = []
        page_before = None
        for label, page, verified, modules in index_rows(root):
            if page != page_before:  # one table per page, under a link to it
                doc = "/" + page.rsplit(".", 1)[0]
                lines += ["", f"**{{doc}}`{doc}`**", ""]
                lines += [
                    "| Eq. | Label | Checked by | Cited in |",
                    "|---|---|---|---|",
                ]
                page_before = page
            checked = _short(verified, page) or "**unchecked**"
            cited = ", ".join(f"`{m}`" for m in modules) or "—"
            lines.append(f"| {{eq}}`{label}` | `{label}` | {checked} | {cited} |")
        for path in [*book_pages(root), *(root / "tests").glob("test_*.py")]:
            env.note_dependency(str(path))
        wrapper = nodes.container(classes=["equation-index"])
        self.state.nested_parse(StringList(lines, source="equation-index"), 0, wrapper)
        return [wrapper]


def setup(app: Sphinx) -> dict:
    app.add_directive("equation-index", EquationIndex)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
