"""The cells run in the page: Pyodide in the reader's browser prints what the book shows.

- the vendored runtime is whole and every file is the pinned one
  (``tools/fetch_pyodide.py --check``), and a changed byte is caught;
- every chapter, run under Node with the site's own ``_pyodide/`` (the same boot.js
  and session.py as the page's worker), prints in each runnable cell what its stored
  output shows, as strict nbval compares it (``tests/sanitize.cfg``);
- in headless Chromium, a page downloads nothing of the runtime until Run is pressed;
  pressing Run on the last cell of three chapters runs every cell above it, and each
  prints its stored output; a figure arrives as an image; Stop ends a long cell and
  the next Run starts afresh;
- a cell marked ``browser_skip`` says why, on the page, in place of its Run button.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_book import open_page
from test_portable_outputs import sanitize  # as nbval does, with its own parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
sys.path.insert(0, str(ROOT / "tools"))
import fetch_pyodide  # noqa: E402
from prerender_math import node_executable  # noqa: E402
from runnable_cells import page_cells  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
# Run in the browser by the Chromium test, through the page's own buttons: sympy and
# IPython's display, hypothesis, and figures with their captions.
IN_BROWSER = ["component-view", "gradcheck", "jacobian-view"]


def stored_text(cell: dict) -> str:
    """What strict nbval compares of a stored cell: its streams and its text."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append("".join(output["text"]))
        elif "image/png" not in output.get("data", {}):
            parts.append("".join(output.get("data", {}).get("text/plain", "")))
    return sanitize("".join(parts))


def code_cells(notebook: Path) -> list[dict]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [cell for cell in cells if cell["cell_type"] == "code"]


def compared(notebook: Path) -> list[tuple[int, str | None]]:
    """(index, stored text) of each runnable cell; None where nbval ignores it."""
    result = []
    for index, cell in enumerate(code_cells(notebook)):
        if cell["metadata"].get("browser_skip"):
            continue
        ignored = "nbval-ignore-output" in cell["metadata"].get("tags", [])
        result.append((index, None if ignored else stored_text(cell)))
    return result


def mismatches(notebook: Path, live: dict[int, list[tuple[str, str]]]) -> list[str]:
    """Each runnable cell whose live output differs from its stored output."""
    problems = []
    for index, want in compared(notebook):
        outputs = live.get(index, [])
        errors = [text for kind, text in outputs if kind == "error"]
        if errors:
            problems.append(f"cell {index + 1} raised:\n{errors[0][-1500:]}")
            continue
        got = sanitize(
            "".join(t for k, t in outputs if k in ("stdout", "stderr", "text"))
        )
        if want is not None and got != want:
            problems.append(f"cell {index + 1} printed\n{got}\ninstead of\n{want}")
    return problems


# --- the runtime ---------------------------------------------------------------------


def test_the_vendored_runtime_is_the_pinned_one():
    assert fetch_pyodide.check() == []


def test_a_changed_file_of_the_runtime_is_caught(tmp_path, monkeypatch):
    copy = tmp_path / "pyodide"
    shutil.copytree(fetch_pyodide.VENDOR, copy)
    monkeypatch.setattr(fetch_pyodide, "VENDOR", copy)
    wheel = copy / "sympy-1.14.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[100] ^= 1
    wheel.write_bytes(bytes(data))
    assert fetch_pyodide.check() == [
        "sympy-1.14.0-py3-none-any.whl: sha256 differs from SHA256SUMS"
    ]
    (copy / "extra.whl").write_bytes(b"")
    assert "extra.whl: not in SHA256SUMS" in fetch_pyodide.check()


def test_each_cell_marked_not_runnable_says_why():
    for notebook in CHAPTERS:
        for index, cell in enumerate(code_cells(notebook)):
            why = cell["metadata"].get("browser_skip")
            if why is not None:
                assert isinstance(why, str) and len(why.split()) >= 4, (
                    f"{notebook.name} cell {index + 1}: say why it cannot run"
                )


def test_the_runtime_is_served_outside_the_static_folder(site):
    html, _, _ = site
    assert (html / "_pyodide" / "pyodide.asm.wasm").exists()
    assert not list((html / "_static").rglob("pyodide*"))
    for page in html.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        loads = re.findall(r'<(?:script|link)\b[^>]*_pyodide/([^"]+)"', text)
        is_chapter = page.parent.name == "chapters"
        assert sorted(loads) == (["runcells.css", "runcells.js"] if is_chapter else [])


# --- every chapter, under Node ---------------------------------------------------------


def run_under_node(html: Path, notebooks: list[Path]) -> dict[str, dict]:
    pages = [
        {
            "page": notebook.stem,
            "cells": [None if c["skip"] else c["source"] for c in page_cells(notebook)],
        }
        for notebook in notebooks
    ]
    result = subprocess.run(
        [
            node_executable(),
            str(ROOT / "tests" / "runcells_node.js"),
            str(html / "_pyodide"),
        ],
        input=json.dumps(pages),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {line["page"]: line for line in map(json.loads, result.stdout.splitlines())}


def node_classes(groups: int) -> list[type]:
    """The chapters dealt into classes, which pytest-xdist shares out to its workers."""
    classes = []
    for group in range(groups):

        class UnderNode:
            @pytest.mark.parametrize(
                "notebook", CHAPTERS[group::groups], ids=lambda p: p.stem
            )
            def test_chapter_prints_its_stored_outputs(self, site, notebook):
                html, _, _ = site
                ran = run_under_node(html, [notebook])[notebook.stem]
                live = dict(enumerate(ran["outputs"]))
                problems = mismatches(notebook, live)
                assert not problems, f"{notebook.name} under Pyodide:\n" + "\n".join(
                    problems
                )

        classes.append(UnderNode)
    return classes


TestUnderNode0, TestUnderNode1 = node_classes(2)


# --- in the browser --------------------------------------------------------------------

RUNTIME_REQUEST = re.compile(r"/_pyodide/(?!runcells\.(?:js|css)$)")

LIVE_OUTPUTS = """() => Array.from(document.querySelectorAll("article div.cell"),
    (cell) => ({
        state: cell.dataset.runcells,
        outputs: Array.from(cell.querySelectorAll(".runcells-output > *"),
            (block) => [block.dataset.kind, block.textContent]),
    }))"""


@pytest.mark.browser
class TestInTheBrowser:
    @pytest.mark.parametrize("name", IN_BROWSER)
    def test_run_all_cells_in_the_page(self, browser, server, name):
        notebook = ROOT / "chapters" / f"{name}.ipynb"
        context, page, seen = open_page(browser, f"{server}/chapters/{name}.html")
        try:
            runtime = [url for url in seen["requests"] if RUNTIME_REQUEST.search(url)]
            assert runtime == [], f"downloaded before any Run: {runtime}"
            cells = page_cells(notebook)
            buttons = page.locator("button.runcells-run")
            assert buttons.count() == sum(1 for c in cells if not c["skip"])
            start = time.monotonic()
            # the last cell may sit in a folded solution: click it as a script would
            buttons.last.dispatch_event("click")
            page.wait_for_function(
                """() => !Array.from(document.querySelectorAll("article div.cell"))
                    .some((cell) => ["queued", "running"].includes(cell.dataset.runcells))""",
                timeout=600_000,
            )
            seconds = time.monotonic() - start
            states = page.evaluate(LIVE_OUTPUTS)
            live = {
                index: [tuple(output) for output in states[index]["outputs"]]
                for index in range(len(states))
            }
            problems = mismatches(notebook, live)
            assert not problems, f"{name} in the browser:\n" + "\n".join(problems)
            expected_figures = sum(
                1
                for cell in code_cells(notebook)
                for output in cell.get("outputs", [])
                if "image/png" in output.get("data", {})
            )
            figures = page.locator(".runcells-output img").count()
            assert figures == expected_figures
            foreign = [u for u in seen["requests"] if not u.startswith(server)]
            assert foreign == [] and seen["errors"] == []
            print(f"{name}: every cell in {seconds:.1f} s")
        finally:
            context.close()

    def test_a_cell_that_cannot_run_says_why(self, browser, server):
        marked = {
            notebook.stem: [c["skip"] for c in page_cells(notebook) if c["skip"]]
            for notebook in CHAPTERS
        }
        name = max(marked, key=lambda n: len(marked[n]))
        assert marked[name], "no chapter has a cell marked not runnable"
        context, page, _ = open_page(browser, f"{server}/chapters/{name}.html")
        try:
            notes = page.locator(".runcells-skip").all_inner_texts()
            assert [note.split(": ", 1)[1] for note in notes] == marked[name]
            cells = page.locator("article div.cell[data-runcells='skipped']")
            assert cells.count() == len(marked[name])
            assert cells.locator("button.runcells-run").count() == 0
        finally:
            context.close()

    def test_first_result_and_stop(self, browser, server):
        context, page, seen = open_page(browser, f"{server}/chapters/notation.html")
        try:
            start = time.monotonic()
            page.locator("button.runcells-run").first.click()
            first = page.locator("article div.cell").first
            page.wait_for_function(
                "(cell) => cell.dataset.runcells === 'done'",
                arg=first.element_handle(),
                timeout=300_000,
            )
            seconds = time.monotonic() - start
            assert "relative error" in first.locator(".runcells-output").inner_text()
            # a long cell: edit the code, run it, stop it, and run again
            code = first.locator(".cell_input pre")
            code.evaluate("(pre) => { pre.textContent = 'while True:\\n    pass' }")
            page.locator("button.runcells-run").first.click()
            page.wait_for_function(
                "(cell) => cell.dataset.runcells === 'running'",
                arg=first.element_handle(),
            )
            time.sleep(1)
            assert page.evaluate("1 + 1") == 2  # the page answers while Python runs
            page.locator("button.runcells-stop").click()
            page.wait_for_function(
                "(cell) => cell.dataset.runcells === 'idle'",
                arg=first.element_handle(),
            )
            code.evaluate("(pre) => { pre.textContent = 'print(6 * 7)' }")
            page.locator("button.runcells-run").first.click()
            page.wait_for_function(
                "(cell) => cell.dataset.runcells === 'done'",
                arg=first.element_handle(),
                timeout=300_000,
            )
            assert first.locator(".runcells-output").inner_text().strip() == "42"
            print(f"first result after the first click: {seconds:.1f} s")
        finally:
            context.close()
