"""Equation traceability: which check verifies each labelled equation.

A label is a promise. Every ``{math}`` block with a ``:label:`` in the book must be
named by a check: a notebook code cell (run by strict nbval) or a test function in
``tests/`` that carries the comment ``# checks: <label>`` and runs an ``assert``.

The rule reads code, not text (see ``cell_checks`` and ``module_checks``):

- the ``# checks:`` line is a real comment (a ``tokenize`` comment token, alone on
  its line), not text inside a string;
- the code, parsed with ``ast``, runs an ``assert`` statement: one in the cell's (or
  the test function's) own statements, loops and branches included, or in a
  function defined in the same cell or module that those statements call by name.
  An ``assert`` inside a function that is never called, and an ``assert`` on a
  literal (``assert True``, ``assert (x, "message")``) do not count;
- the check runs and may not fail: a notebook cell has no ``raises-exception``,
  ``nbval-raises-exception``, ``nbval-skip`` or ``skip-execution`` tag and no
  ``NBVAL_SKIP`` or ``NBVAL_RAISES_EXCEPTION`` comment marker (matched as nbval
  matches them, on any line); a test function is named ``test_*``, the comment is
  inside it or in the comment lines right above it (and its decorators), and
  neither it, its class nor the module's ``pytestmark`` mentions ``skip``,
  ``skipif`` or ``xfail``, nor does its body call ``pytest.skip``,
  ``pytest.xfail`` or ``pytest.importorskip``.

``NBVAL_IGNORE_OUTPUT`` and the ``nbval-ignore-output`` tag are allowed: the cell
still runs, and its asserts still hold.

This module reads the book's sources and answers two questions:

- for the test suite (``tests/test_equation_labels.py``): which labels exist,
  which are checked, and by what;
- for the site: the directive ``{equation-index}`` renders the table of every
  label, its equation number, the page that derives it, the checks that verify it
  and the package modules whose docstrings cite it.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from collections.abc import Iterable
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.application import Sphinx

LABEL = re.compile(r"^:label:\s*(\S+)", re.MULTILINE)
MATH_BLOCK = re.compile(r"```\{math\}\s*\n(.*?)```", re.DOTALL)
DOLLAR_LABEL = re.compile(r"\$\$\s*\((\S+?)\)")
CHECKS = re.compile(r"#\s*checks:\s*(.+)")
# Cells that nbval skips or allows to raise: their asserts may never run or hold.
SKIPPED_TAGS = frozenset(
    {"raises-exception", "nbval-raises-exception", "nbval-skip", "skip-execution"}
)
SKIPPED_MARKERS = frozenset({"NBVAL_SKIP", "NBVAL_RAISES_EXCEPTION"})
# pytest marks and calls that skip a test or let it fail.
SKIPPING_NAMES = frozenset({"skip", "skipif", "xfail", "importorskip"})
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


def _check_comments(source: str) -> list[tuple[int, list[str]]]:
    """(line, labels) of each ``# checks:`` comment alone on its line; real comments
    only, as the tokenizer sees them (not text inside a string)."""
    found = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return []
    for token in tokens:
        if token.type != tokenize.COMMENT or token.line[: token.start[1]].strip():
            continue
        match = CHECKS.match(token.string)
        if match:
            found.append((token.start[0], _named(match.group(1))))
    return found


def _ipython_to_python(source: str) -> str:
    """A cell's code as the kernel runs it: IPython magics become the calls IPython
    makes (the body of a ``%%`` cell magic becomes a string)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        return source
    return TransformerManager().transform_cell(source)


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _own_nodes(statements: Iterable[ast.AST]) -> Iterable[ast.AST]:
    """Every node of ``statements`` outside nested function, class and lambda bodies."""
    todo = list(statements)
    while todo:
        node = todo.pop()
        yield node
        nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        if not isinstance(node, nested):
            todo.extend(ast.iter_child_nodes(node))


def _is_real_assert(node: ast.AST) -> bool:
    """An ``assert`` statement whose test is not a literal (which checks nothing)."""
    return isinstance(node, ast.Assert) and not isinstance(
        node.test, ast.Constant | ast.Tuple | ast.List | ast.Dict | ast.Set
    )


def _asserting_functions(tree: ast.Module) -> set[str]:
    """Names of the functions defined at the top of ``tree`` that run an ``assert``,
    directly or through another such function that they call by name."""
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    asserting: set[str] = set()
    changed = True
    while changed:  # a fixed point: helpers may call helpers
        changed = False
        for name, node in functions.items():
            if name not in asserting and _runs_assert(node.body, asserting):
                asserting.add(name)
                changed = True
    return asserting


def _runs_assert(statements: list[ast.stmt], asserting: set[str]) -> bool:
    """True when ``statements`` contain a real ``assert`` or call a function of
    ``asserting`` by name."""
    for node in _own_nodes(statements):
        if _is_real_assert(node):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in asserting
        ):
            return True
    return False


def _nbval_markers(source: str) -> set[str]:
    """The nbval comment markers of a cell, found as nbval finds them: any line that,
    stripped, starts with ``#`` and, without its ``#`` and spaces, is a marker."""
    lines = (line.strip() for line in source.splitlines())
    return {line.lstrip("#").strip() for line in lines if line.startswith("#")}


def cell_checks(source: str, tags: Iterable[str] = ()) -> list[str]:
    """The labels that one notebook code cell checks under the rule (module docstring).

    source: the cell's code; tags: its ``metadata.tags``. Returns the labels of its
    ``# checks:`` comments, or ``[]`` when the cell is not a check: it is skipped or
    allowed to raise, or its parsed code runs no ``assert``.
    """
    if "checks:" not in source:  # the common case, and the cheap test first
        return []
    if SKIPPED_TAGS & set(tags) or SKIPPED_MARKERS & _nbval_markers(source):
        return []
    code = _ipython_to_python(source)
    comments = _check_comments(code)
    tree = _parse(code) if comments else None
    if tree is None or not _runs_assert(tree.body, _asserting_functions(tree)):
        return []
    return [label for _, labels in comments for label in labels]


def _mentions_skipping(nodes: Iterable[ast.AST]) -> bool:
    """True when an expression names ``skip``, ``skipif``, ``xfail`` or ``importorskip``."""
    for node in nodes:
        for sub in ast.walk(node):
            name = getattr(sub, "attr", None) or getattr(sub, "id", None)
            if name in SKIPPING_NAMES:
                return True
    return False


def module_checks(source: str) -> dict[str, list[str]]:
    """The labels that a test module checks under the rule: test name -> labels.

    A ``# checks:`` comment belongs to the ``test_*`` function that contains it or
    that it sits right above (only comment lines and decorators in between). The test
    counts when it runs an ``assert`` and nothing marks it skipped or failing.
    """
    tree = _parse(source) if "checks:" in source else None
    if tree is None:
        return {}
    for node in tree.body:  # is the whole module skipped or allowed to fail?
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        if any(getattr(t, "id", None) == "pytestmark" for t in targets):
            if _mentions_skipping([node.value]):
                return {}
        value = getattr(node, "value", None)  # pytest.skip(…), x = importorskip(…)
        if isinstance(value, ast.Call) and _mentions_skipping([value.func]):
            return {}
    asserting = _asserting_functions(tree)
    tests: list[tuple[ast.FunctionDef, list[ast.expr]]] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            tests += [
                (item, node.decorator_list)
                for item in node.body
                if isinstance(item, ast.FunctionDef) and item.name.startswith("test")
            ]
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            tests.append((node, []))
    lines = source.splitlines()
    found: dict[str, list[str]] = {}
    for line, labels in _check_comments(source):
        for test, class_marks in tests:
            first = min([test.lineno] + [d.lineno for d in test.decorator_list])
            above = all(
                lines[k - 1].strip().startswith("#") for k in range(line + 1, first)
            )
            if not (first <= line <= test.end_lineno or (line < first and above)):
                continue
            skipped = _mentions_skipping([*test.decorator_list, *class_marks])
            calls_skip = any(
                isinstance(n, ast.Call) and _mentions_skipping([n.func])
                for n in _own_nodes(test.body)
            )
            if not skipped and not calls_skip and _runs_assert(test.body, asserting):
                found.setdefault(test.name, []).extend(labels)
    return found


def notebook_checks(path: Path) -> dict[int, list[str]]:
    """Cell number (counting every cell from 1) -> the labels that cell checks."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = {}
    for number, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        labels = cell_checks("".join(cell["source"]), tags)
        if labels:
            found[number] = labels
    return found


def checks(root: Path) -> dict[str, list[str]]:
    """label -> the checks that name it: ``chapters/x.ipynb, cell 7`` or a test file.

    A check is a notebook code cell, or a test function, that passes the rule of the
    module docstring (``cell_checks``, ``module_checks``).
    """
    found: dict[str, list[str]] = {}
    for path in book_pages(root):
        if path.suffix != ".ipynb":
            continue
        for number, labels in notebook_checks(path).items():
            where = f"{path.relative_to(root).as_posix()}, cell {number}"
            for label in labels:
                found.setdefault(label, []).append(where)
    for path in sorted((root / "tests").glob("test_*.py")):
        where = path.relative_to(root).as_posix()
        for labels in module_checks(path.read_text(encoding="utf-8")).values():
            for label in labels:
                found.setdefault(label, []).append(where)
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
