"""How long each page of the built site takes to be ready, in headless Chromium.

Each page of the table of contents is opened ``--runs`` times, each time in a fresh
browser context (an empty cache, as for a first visit), served from 127.0.0.1, in a
window 1280 × 900. Two times are taken from the start of the navigation:

- **ready**: the math is typeset. With math typeset in the browser, the moment
  MathJax's ``startup.promise`` resolves (the page's formulas are laid out); with
  math typeset when the site was built, the end of the load event, since then the
  math is in the page when it arrives.
- **stable**: the layout stops moving: the later of *ready* and the last layout
  shift Chromium reports (``PerformanceObserver`` of type ``layout-shift``), watched
  until nothing has moved for ``--quiet`` ms.

The median of the runs is reported per page, with the page's size in bytes and its
number of formulas. The JSON holds every run.

Usage::

    jupyter-book build .
    python benchmarks/page_load.py                      # _build/html, 5 runs a page
    python benchmarks/page_load.py --json benchmarks/page-load.json
    python benchmarks/page_load.py --site OTHER/_build/html --label mathjax

The figures in the README come from this script on the 2-core machine named there;
``--label`` names a run in the JSON (for example the build whose math MathJax
typeset in the browser, before build-time rendering).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from chromium import LAUNCH_ARGS, find_chromium, serve, toc_pages  # noqa: E402

# Installed before any script of the page runs: records layout shifts and, if the
# page has MathJax, the moment its startup promise resolves.
WATCH = """
window.__shifts = [];
new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__shifts.push(entry.startTime);
}).observe({type: "layout-shift", buffered: true});
(function waitForMathJax() {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
        mj.startup.promise.then(() => { window.__mathReady = performance.now(); });
    } else if (document.readyState !== "complete" || mj) {
        requestAnimationFrame(waitForMathJax);
    }
})();
"""

# After the load event: the page's own figures.
MEASURE = """async (quiet) => {
    const nav = performance.getEntriesByType("navigation")[0];
    const hasMathJax = !!(window.MathJax && window.MathJax.startup);
    if (hasMathJax) {
        while (window.__mathReady === undefined) {
            await new Promise((r) => setTimeout(r, 10));
        }
    }
    const ready = hasMathJax ? window.__mathReady : nav.loadEventEnd;
    // wait until nothing has moved for `quiet` ms
    let seen = -1;
    while (seen !== window.__shifts.length) {
        seen = window.__shifts.length;
        await new Promise((r) => setTimeout(r, quiet));
    }
    const last = window.__shifts.length ? Math.max(...window.__shifts) : 0;
    return {
        ready: ready,
        stable: Math.max(ready, last),
        load: nav.loadEventEnd,
        shifts: window.__shifts.length,
        mathjax: hasMathJax,
        formulas: document.querySelectorAll(".math").length,
        typeset: document.querySelectorAll("mjx-container").length,
        bytes: nav.decodedBodySize,
    };
}"""


def chromium() -> str:
    found = find_chromium()
    if not found:
        sys.exit("no Chromium: apt-get install chromium (or set CHROMIUM)")
    return found


def measure(site: Path, pages: list[str], runs: int, quiet: int) -> dict:
    from playwright.sync_api import sync_playwright

    httpd, base = serve(site)
    results: dict[str, dict] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=LAUNCH_ARGS)
            version = browser.version
            # one untimed visit, so that the first timed page does not pay for
            # starting the renderer
            context = browser.new_context()
            context.new_page().goto(f"{base}/{pages[0]}", wait_until="load")
            context.close()
            for name in pages:
                samples = []
                for _ in range(runs):
                    context = browser.new_context(
                        viewport={"width": 1280, "height": 900}
                    )
                    page = context.new_page()
                    page.add_init_script(WATCH)
                    page.goto(f"{base}/{name}", wait_until="load")
                    samples.append(page.evaluate(MEASURE, quiet))
                    context.close()
                results[name] = {
                    "ready_ms": statistics.median(s["ready"] for s in samples),
                    "stable_ms": statistics.median(s["stable"] for s in samples),
                    "load_ms": statistics.median(s["load"] for s in samples),
                    "formulas": samples[0]["formulas"],
                    "typeset": samples[0]["typeset"],
                    "mathjax_in_browser": samples[0]["mathjax"],
                    "bytes": samples[0]["bytes"],
                    "runs": samples,
                }
                r = results[name]
                print(
                    f"{name:40s} {r['ready_ms']:8.0f} {r['stable_ms']:8.0f} "
                    f"{r['formulas']:6d} {r['bytes'] / 1024:8.0f}",
                    flush=True,
                )
            browser.close()
    finally:
        httpd.shutdown()
    return {"chromium": version, "pages": results}


def site_bytes(site: Path) -> int:
    return sum(f.stat().st_size for f in site.rglob("*") if f.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quiet", type=int, default=500, help="ms without a shift")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--label", default="", help="a name for this run")
    parser.add_argument("--pages", nargs="*", help="only these pages")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").exists():
        sys.exit(f"{args.site} holds no built site: run `jupyter-book build .`")
    pages = args.pages or toc_pages()
    print(f"{'page':40s} {'ready':>8s} {'stable':>8s} {'math':>6s} {'KiB':>8s}")
    started = time.perf_counter()
    figures = measure(args.site, pages, args.runs, args.quiet)
    chapters = {
        k: v for k, v in figures["pages"].items() if k.startswith("chapters/")
    } or figures["pages"]  # with --pages and no chapter among them: those pages
    summary = {
        "chapter_ready_ms_max": max(v["ready_ms"] for v in chapters.values()),
        "chapter_ready_ms_median": statistics.median(
            v["ready_ms"] for v in chapters.values()
        ),
        "chapter_stable_ms_max": max(v["stable_ms"] for v in chapters.values()),
        "site_bytes": site_bytes(args.site),
        "formulas": sum(v["formulas"] for v in figures["pages"].values()),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        out = {
            "label": args.label,
            "date": time.strftime("%Y-%m-%d"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "chromium": figures["chromium"],
            },
            "runs_per_page": args.runs,
            "seconds": round(time.perf_counter() - started, 1),
            "summary": summary,
            "pages": figures["pages"],
        }
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
