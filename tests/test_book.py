"""The site: built with warnings as errors, then opened in a real browser, offline.

One build per test session (the fixture ``site``), into a temporary folder so that
the reader's ``_build/`` is left alone. The browser tests serve that build on
127.0.0.1 and load every page in headless Chromium, recording every request the
page makes: the site must typeset its math with the local MathJax and ask nothing
of any other host.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = (
    os.environ.get("CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)


def toc_pages() -> list[str]:
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    root = re.search(r"^root:\s*(\S+)", toc, flags=re.MULTILINE).group(1)
    return [f"{root}.html"] + [
        f"{name}.html" for name in re.findall(r"file:\s*(\S+)", toc)
    ]


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """Build the book once: ``jupyter-book build . -W -n --keep-going``. Returns (html dir, log)."""
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        str(ROOT),
        "-W",
        "-n",
        "--keep-going",
    ]
    command += ["--path-output", str(out)]
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=900
    )
    log = result.stdout + result.stderr
    return out / "_build" / "html", log, result.returncode


def test_build_has_zero_warnings(site):
    html, log, returncode = site
    warnings = [
        line
        for line in log.splitlines()
        if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)
    ]
    assert not warnings, "the build warned:\n" + "\n".join(warnings)
    assert returncode == 0, log[-3000:]
    for page in ["index.html", *toc_pages()]:
        assert (html / page).exists(), f"{page} was not built"


def test_pages_load_nothing_from_another_host(site):
    """Scripts, styles, images and frames come from the site itself.

    Plain links that a reader may follow (a DOI in the bibliography) are allowed.
    """
    html, _, _ = site
    loads = re.compile(
        r"""<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)\s*=\s*["'](?:https?:)?//([^/"']+)"""
    )
    css_imports = re.compile(r"""(?:@import|url\()\s*["']?(?:https?:)?//([^/"')]+)""")
    for page in sorted(html.rglob("*.html")):
        hosts = sorted(set(loads.findall(page.read_text(encoding="utf-8"))))
        assert not hosts, f"{page.relative_to(html)} loads from {hosts}"
    for sheet in sorted(html.rglob("*.css")):
        hosts = sorted(
            set(
                css_imports.findall(sheet.read_text(encoding="utf-8", errors="replace"))
            )
        )
        assert not hosts, f"{sheet.relative_to(html)} imports from {hosts}"


def test_math_uses_the_local_mathjax(site):
    html, _, _ = site
    for page in toc_pages():
        text = (html / page).read_text(encoding="utf-8")
        if 'class="math' not in text:
            continue
        scripts = re.findall(
            r"<script[^>]*src=\"([^\"]*mathjax[^\"]*)\"", text, flags=re.IGNORECASE
        )
        assert scripts, f"{page} loads no MathJax"
        for src in scripts:
            path = src.split("?")[0]
            assert "//" not in path and path.endswith(
                "_static/mathjax/tex-svg-full.js"
            ), src
    assert (html / "_static" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000


# --- in a real browser ----------------------------------------------------------------


@pytest.fixture(scope="session")
def server(site):
    html, _, _ = site
    handler = functools.partial(QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output readable
        pass


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail(
                "Chromium is not installed; .ci/run installs it (apt-get install chromium)"
            )
        pytest.skip(
            "Chromium is not installed (apt-get install chromium); the browser checks need it"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def open_page(browser, url):
    """Load ``url``; return the page and what it asked for and complained about."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    seen = {"requests": [], "failed": [], "errors": [], "console": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    page.on(
        "response",
        lambda r: r.status >= 400 and seen["failed"].append(f"{r.status} {r.url}"),
    )
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: m.type == "error" and seen["console"].append(m.text))
    page.goto(url, wait_until="load")
    # MathJax 3 typesets asynchronously; wait for its promise when the page has math.
    page.wait_for_function(
        "() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise)"
    )
    page.evaluate("() => window.MathJax ? window.MathJax.startup.promise : null")
    page.wait_for_load_state("networkidle")
    return context, page, seen


@pytest.mark.browser
@pytest.mark.parametrize("page_name", toc_pages())
def test_page_in_a_browser(browser, server, page_name, tmp_path_factory):
    context, page, seen = open_page(browser, f"{server}/{page_name}")
    try:
        foreign = [
            u
            for u in seen["requests"]
            if urlparse(u).hostname not in ("127.0.0.1", None)
        ]
        assert not foreign, f"{page_name} asked other hosts for {foreign}"
        assert not seen["failed"], f"{page_name}: failed requests {seen['failed']}"
        assert not seen["errors"], f"{page_name}: script errors {seen['errors']}"
        assert not seen["console"], f"{page_name}: console errors {seen['console']}"

        title = page.locator("main h1").first.inner_text()
        assert title.strip(), f"{page_name} has no visible title"
        n_math = page.locator(".math").count()
        n_typeset = page.locator("mjx-container").count()
        n_broken = page.locator("mjx-merror, [data-mjx-error]").count()
        assert n_broken == 0, f"{page_name}: {n_broken} formulas failed to typeset"
        assert n_typeset >= n_math, (
            f"{page_name}: {n_math} formulas, {n_typeset} typeset"
        )
        # No raw TeX left where a reader would see it.
        body = page.locator("main").inner_text()
        assert "\\begin{" not in body and "$$" not in body, f"{page_name} shows raw TeX"

        if page_name.startswith("chapters/"):
            assert n_typeset > 0, f"{page_name} has no typeset math"
            # Solutions start collapsed behind a toggle ...
            solutions = page.locator(".solution")
            assert solutions.count() > 0, f"{page_name} has no exercise solutions"
            assert page.locator(".exercise").count() > 0, (
                f"{page_name} has no exercises"
            )
            for k in range(solutions.count()):
                body = solutions.nth(k).locator(":scope > :not(.admonition-title)")
                assert not body.first.is_visible(), (
                    f"{page_name}: solution {k + 1} shows"
                )
            # ... and the toggle opens them.
            solutions.first.locator("button.toggle-button").click()
            opened = solutions.first.locator(":scope > :not(.admonition-title)").first
            opened.wait_for(state="visible", timeout=5000)
            for image in page.locator("main img").all():
                assert image.get_attribute("alt"), (
                    f"{page_name}: an image has no alt text"
                )
                assert image.evaluate("i => i.complete && i.naturalWidth > 0"), (
                    f"{page_name}: an image did not load"
                )
        shots = tmp_path_factory.getbasetemp() / "screenshots"
        shots.mkdir(exist_ok=True)
        page.screenshot(
            path=str(shots / (page_name.replace("/", "_") + ".png")), full_page=False
        )
    finally:
        context.close()


@pytest.mark.browser
def test_sidebar_lists_the_numbered_chapters(browser, server):
    context, page, _ = open_page(browser, f"{server}/{toc_pages()[0]}")
    try:
        nav = page.locator("nav.bd-links").inner_text()
        for caption in re.findall(r"caption:\s*(.+)", (ROOT / "_toc.yml").read_text()):
            assert caption.strip().upper() in nav.upper(), (
                f"part {caption!r} missing from the sidebar"
            )
        assert re.search(r"1\.\s+Notation", nav), nav
        assert re.search(r"4\.\s+The differential view", nav), nav
    finally:
        context.close()
