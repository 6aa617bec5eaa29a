"""The Chromium that checks, measures and prints the site, how it is started, and
the site it opens: its pages in order and a local server for them.

Shared by the browser tests (tests/conftest.py, test_book.py, test_pdf.py,
test_runcells.py), the benchmarks (benchmarks/page_load.py, first_run.py) and the PDF
(tools/book_pdf.py).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Headless, offline: without the background-networking switches Chromium asks
# Google's hosts for updates and field trials, which this site's checks forbid.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """``$CHROMIUM``, Debian's ``chromium`` (what .ci/run installs), else
    Playwright's own build; None if there is none."""
    found = (
        os.environ.get("CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if found:
        return found
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            bundled = p.chromium.executable_path
    except Exception:  # playwright missing, or without a downloaded browser
        return None
    return bundled if bundled and Path(bundled).exists() else None


def toc_pages() -> list[str]:
    """The site's pages in the order of ``_toc.yml``, the root first."""
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    root = re.search(r"^root:\s*(\S+)", toc, flags=re.MULTILINE).group(1)
    return [f"{root}.html"] + [
        f"{name}.html" for name in re.findall(r"file:\s*(\S+)", toc)
    ]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the output readable
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve the built site on 127.0.0.1 in a background thread; return the
    server (``.shutdown()`` it) and its base URL."""
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
