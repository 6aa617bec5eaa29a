"""Let the reader edit and run every code cell of a chapter in the page itself.

The Python is Pyodide (CPython compiled to WebAssembly), vendored in
``vendor/pyodide`` by ``tools/fetch_pyodide.py`` and copied, when the build finishes,
to the site's ``_pyodide/`` folder with the page scripts of ``_ext/runcells`` and a
zip of the book's package (``src/backprop``). Nothing there is in ``_static``:
Jupyter Book adds every script of a static path to every page.

A chapter page gets its cells' code as JSON and one small script, ``runcells.js``,
which adds a Run button to each cell and loads nothing more until the reader presses
one. The first press starts a Web Worker (``worker.js``) that downloads Pyodide and
numpy; matplotlib, sympy and hypothesis follow when a cell imports them.

A cell that cannot run in the browser carries ``"browser_skip": "<why>"`` in its
metadata; the page shows the reason in place of the Run button, and the cells after
it run without it.
"""

from __future__ import annotations

import html
import json
import shutil
import zipfile
from pathlib import Path

from hide_checks import visible_code
from sphinx.application import Sphinx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENDOR = ROOT / "vendor" / "pyodide"
PACKAGE = ROOT / "src" / "backprop"
PAGE_FILES = ["runcells.js", "runcells.css", "worker.js", "boot.js", "session.py"]
OUT = "_pyodide"


def page_cells(notebook: Path) -> list[dict]:
    """The code cells of a notebook as the page runs them, in order."""
    cells = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        cells.append(
            {
                "source": visible_code("".join(cell["source"])),
                "shown": "remove-cell" not in tags,
                "skip": cell.get("metadata", {}).get("browser_skip", ""),
            }
        )
    return cells


def _add_cells(app: Sphinx, pagename, templatename, context, doctree) -> None:
    notebook = Path(app.srcdir) / f"{pagename}.ipynb"
    if not pagename.startswith("chapters/") or not notebook.exists():
        return
    data = json.dumps({"cells": page_cells(notebook)}).replace("</", "<\\/")
    base = context["pathto"](OUT, 1)
    context["body"] += (
        f'<script type="application/json" id="runcells-data">{data}</script>\n'
        f'<link rel="stylesheet" href="{html.escape(base)}/runcells.css">\n'
        f'<script defer src="{html.escape(base)}/runcells.js"></script>\n'
    )


def _write_runtime(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / OUT
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    # the wheels that are not Pyodide's own (not the lock's bytes, even where
    # the name is the lock's, as mpmath's), which boot.js unpacks itself
    lock = json.loads((VENDOR / "pyodide-lock.json").read_text(encoding="utf-8"))
    sums = (VENDOR / "SHA256SUMS").read_text(encoding="utf-8").split()
    digests = dict(zip(sums[1::2], sums[::2]))
    own = {
        entry["file_name"]
        for entry in lock["packages"].values()
        if digests.get(entry["file_name"]) == entry["sha256"]
    }
    wheels = {}
    for path in sorted(VENDOR.iterdir()):
        if path.name in ("SHA256SUMS", "README.md"):
            continue
        shutil.copyfile(path, out / path.name)
        if path.suffix == ".whl" and path.name not in own:
            wheels[path.name.split("-")[0]] = path.name
    for name in PAGE_FILES:
        shutil.copyfile(HERE / "runcells" / name, out / name)
    with zipfile.ZipFile(out / "backprop.zip", "w", zipfile.ZIP_DEFLATED) as book:
        for path in sorted(PACKAGE.rglob("*.py")):
            book.write(path, path.relative_to(PACKAGE.parent).as_posix())
    manifest = {"book": "backprop.zip", "wheels": wheels}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _add_cells)
    app.connect("build-finished", _write_runtime)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
