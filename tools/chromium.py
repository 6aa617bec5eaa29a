"""The Chromium that checks, measures and prints the site, and how it is started.

Shared by the browser tests (tests/test_book.py, tests/test_pdf.py), the page-load
benchmark (benchmarks/page_load.py) and the PDF (tools/book_pdf.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
