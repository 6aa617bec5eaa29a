"""Time from the first press of Run to the first result, in headless Chromium.

    jupyter-book build . && python benchmarks/first_run.py [--runs 5]

Serves ``_build/html`` on 127.0.0.1, opens a chapter in a fresh browser context (an
empty cache: what a first visit costs), presses the Run button of one cell and waits
for that cell's output. Two cases:

- ``numpy``: a cell that needs numpy and the book's package only (its code is
  replaced by a one-line gradient check before the click);
- ``chapter``: the first cell of the notation chapter as it stands, which also
  imports matplotlib.

For each run it records the seconds and the bytes the page fetched from
``_pyodide/``; ``benchmarks/first-run.json`` keeps the runs and their medians.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from page_load import chromium  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from chromium import LAUNCH_ARGS, serve  # noqa: E402

NUMPY_ONLY = (
    "import numpy as np\nimport backprop as bp\n"
    "A, W = np.ones((2, 3)), np.ones((4, 3))\n"
    "print(bp.linear(A, W, np.zeros(4)).shape)"
)
CASES = {"numpy": NUMPY_ONLY, "chapter": None}


def first_result(browser, url: str, code: str | None) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    fetched = []
    page.on(
        "requestfinished",
        lambda r: (
            "/_pyodide/" in r.url and fetched.append(r.sizes()["responseBodySize"])
        ),
    )
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    before = sum(fetched)
    cell = page.locator("article div.cell").first
    if code is not None:
        cell.locator(".cell_input pre").evaluate(
            "(pre, code) => { pre.textContent = code }", code
        )
    start = time.monotonic()
    cell.locator("button.runcells-run").click()
    page.wait_for_function(
        "(cell) => ['done', 'error'].includes(cell.dataset.runcells)",
        arg=cell.element_handle(),
        timeout=600_000,
    )
    seconds = time.monotonic() - start
    state = cell.get_attribute("data-runcells")
    context.close()
    if state != "done":
        raise SystemExit(f"the cell ended in state {state}")
    return {"seconds": round(seconds, 2), "bytes": sum(fetched) - before}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "first-run.json"
    )
    args = parser.parse_args(argv)
    httpd, base = serve(args.site)
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=LAUNCH_ARGS)
        for name, code in CASES.items():
            runs = [
                first_result(browser, f"{base}/chapters/notation.html", code)
                for _ in range(args.runs)
            ]
            results[name] = {
                "runs": runs,
                "median_seconds": statistics.median(r["seconds"] for r in runs),
                "bytes": statistics.median(r["bytes"] for r in runs),
            }
            print(
                f"{name:8} first result after {results[name]['median_seconds']:.1f} s"
                f" (median of {args.runs}; runs "
                f"{', '.join(str(r['seconds']) for r in runs)}),"
                f" {results[name]['bytes'] / 1e6:.1f} MB fetched"
            )
        browser.close()
    httpd.shutdown()
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {platform.system()}",
                "cases": results,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
