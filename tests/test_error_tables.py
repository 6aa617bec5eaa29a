"""What "right" looks like, once per chapter (GUIDE §2b, issue 12).

Each chapter records the errors of its checks and prints them as one table,
``bp.error_table``, with at least one row shown as its order of magnitude
(``≈ 1e-09``), so that readers see the size of a correct gradient's error and
not only a pass mark. The checks themselves assert where they stand; no cell
prints a line per passing check ("relative error < 1e-7").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def chapters() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [
        c["file"]
        for part in toc["parts"]
        for c in part.get("chapters", [])
        if c["file"].startswith("chapters/")
    ]
    return [ROOT / f"{f}.ipynb" for f in files]


def outputs(cell) -> str:
    text = []
    for out in cell.get("outputs", []):
        text.append("".join(out.get("text", "")))
        text.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(text)


@pytest.mark.parametrize("page", chapters(), ids=lambda p: p.stem)
def test_one_error_table_per_chapter(page):
    cells = [
        c for c in json.loads(page.read_text())["cells"] if c["cell_type"] == "code"
    ]
    tables = [c for c in cells if "bp.error_table(" in "".join(c["source"])]
    assert len(tables) == 1, f"{len(tables)} cells call bp.error_table"
    printed = outputs(tables[0])
    assert printed.splitlines()[0].startswith("check"), printed[:200]
    assert re.search(r"≈ 1e-\d\d", printed), (
        "no row is shown as its order of magnitude (orders=[...])"
    )


@pytest.mark.parametrize("page", chapters(), ids=lambda p: p.stem)
def test_no_line_per_passing_check(page):
    cells = json.loads(page.read_text())["cells"]
    lines = [
        line
        for c in cells
        if c["cell_type"] == "code"
        for line in outputs(c).splitlines()
        if re.search(r"relative error < 1e-", line)
    ]
    assert not lines, lines[:3]
