"""Static hygiene of the book's sources; strict nbval (``pytest chapters/``) re-runs them.

- every notebook in ``chapters/`` and ``appendix/`` is in the table of contents, and every page there exists;
- each notebook was executed top to bottom in one kernel, so its stored outputs are the
  ones a reader's "Run All" produces;
- no cell reaches outside the project (``sys.path`` edits, absolute paths, the network);
- code in notebooks, package and tests is ``ruff check`` and ``ruff format`` clean.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb")) + sorted(
    (ROOT / "appendix").glob("*.ipynb")
)


def toc_files() -> list[str]:
    return re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text(encoding="utf-8"))


def test_toc_and_chapters_agree():
    listed = set(toc_files())
    on_disk = {p.relative_to(ROOT).with_suffix("").as_posix() for p in NOTEBOOKS}
    assert on_disk <= listed, (
        f"notebooks missing from _toc.yml: {sorted(on_disk - listed)}"
    )
    for name in listed:
        assert any((ROOT / f"{name}{s}").exists() for s in (".ipynb", ".md")), (
            f"{name} in _toc.yml does not exist"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_run_top_to_bottom(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    counts = [
        c.get("execution_count")
        for c in nb["cells"]
        if c["cell_type"] == "code" and "".join(c["source"]).strip()
    ]
    assert counts, f"{path.name} has no code"
    assert None not in counts, f"{path.name} has code cells that were never run"
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name} was not run top to bottom in one kernel: {counts}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stays_inside_the_project(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    forbidden = re.compile(
        r"sys\.path|/work/|/tmp/|/home/|/root/|urllib|requests\.get|http\.client|socket\."
    )
    for index, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            assert not forbidden.search(source), (
                f"{path.name} cell {index} reaches outside: {source[:120]!r}"
            )
            for output in cell.get("outputs", []):
                text = json.dumps(output.get("text", "")) + json.dumps(
                    output.get("data", {}).get("text/plain", "")
                )
                assert not re.search(r"/work/|/tmp/|/home/|/root/", text), (
                    f"{path.name} cell {index} prints a path"
                )
                assert output.get("output_type") != "error", (
                    f"{path.name} cell {index} stored an error"
                )
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", (
                f"{path.name} cell {index} wrote to stderr: {output.get('text')!r}"
            )


LINTED = ("src", "tests", "chapters", "appendix", "_ext", "benchmarks")


def ruff(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("ruff")
    command = [str(exe) if exe.exists() else (shutil.which("ruff") or "ruff"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def test_ruff_check_is_clean():
    result = ruff("check", *LINTED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = ruff("format", "--check", *LINTED)
    assert result.returncode == 0, result.stdout + result.stderr


CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "_ext"))
import equation_index  # noqa: E402  (the label rule, the one the index uses)

sys.path.pop(0)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_anatomy(path):
    """Every chapter has the anatomy of ../shared/GUIDE.md, section 2.

    A title; "The setting" first, then the derivation with a cell that checks a
    labelled equation (by the rule of ``_ext/equation_index.py``: a parsed ``assert``
    in a cell that is neither skipped nor allowed to raise), the package's code
    shown from ``src/``, and at the end
    "Summary", "Exercises" (each with a gated solution) and "Further reading".
    """
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [("".join(c["source"]), c["cell_type"]) for c in nb["cells"]]
    markdown = "\n".join(s for s, kind in cells if kind == "markdown")
    headings = re.findall(r"^(#{1,3}) (.+)$", markdown, flags=re.MULTILINE)
    assert headings and headings[0][0] == "#", f"{path.name} has no title"
    sections = [title.strip() for level, title in headings if level == "##"]

    def where(pattern):
        found = [i for i, t in enumerate(sections) if re.match(pattern, t, re.I)]
        assert found, f"{path.name} has no section {pattern!r}: {sections}"
        return found[0]

    order = [
        where(r"The setting"),
        where(r"Summary$"),
        where(r"Exercises$"),
        where(r"Further reading$"),
    ]
    assert order == sorted(order), f"{path.name}: sections out of order {sections}"
    assert any(re.search(r"\bin code\b", t, re.I) for _, t in headings), path.name
    assert re.search(r"literalinclude\}\s*\.\./src/backprop/", markdown) or any(
        "getsource" in s for s, kind in cells if kind == "code"
    ), f"{path.name} does not show the package's code from src/"
    # the label rule of the traceability index: a real assert, in a cell that runs
    checks = equation_index.notebook_checks(path)
    assert checks, f"{path.name} has no cell that checks a labelled equation"
    exercises = re.findall(r"```\{exercise\}[^\n]*\n:label: (\S+)", markdown)
    solved = set(re.findall(r"```\{solution(?:-start)?\} (\S+)", markdown))
    assert exercises, f"{path.name} has no exercises"
    assert set(exercises) <= solved, (
        f"{path.name}: exercises without a solution {set(exercises) - solved}"
    )
    further = markdown[markdown.rindex("Further reading") :]
    assert "{cite" in further, f"{path.name}: Further reading cites nothing"
