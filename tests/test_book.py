"""The site: built with warnings as errors, then opened in a real browser, offline.

One build per test session (the fixture ``site``), into a temporary folder so that
the reader's ``_build/`` is left alone. The browser tests serve that build on
127.0.0.1 and load every page in headless Chromium, recording every request the
page makes: the math must arrive typeset (it is typeset when the site is built) and
the page must ask nothing of any other host.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import book_build
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from chromium import toc_pages  # noqa: E402


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


def html_pages(html: Path) -> list[Path]:
    """Every page of the built site (not the themes' templates in _static/)."""
    return sorted(
        p
        for p in html.rglob("*.html")
        if p.relative_to(html).parts[0] not in ("_static", "_sources")
    )


# A math element as Sphinx writes it, after _ext/prerender_math.py typeset it.
MATH_ELEMENT = re.compile(
    r'<(span|div) class="(?:[^"]* )?math(?: [^"]*)?"[^>]*>(.*?)</\1>', flags=re.DOTALL
)
CONTAINER = re.compile(r"<mjx-container\b.*?</mjx-container>", flags=re.DOTALL)
# TeX a reader would see as source: a delimiter or an environment left in the text.
TEX_LEFT = re.compile(r"\\[()[\]]|\$\$|\\(?:begin|end)\{")


def test_pages_do_not_load_fontawesome_js(site):
    """The theme's 1.5 MB icon script is dropped (_ext/offline_site.py)."""
    html, _, _ = site
    for path in html_pages(html):
        assert "fontawesome.js" not in path.read_text(encoding="utf-8"), path


def test_math_is_typeset_when_the_site_is_built(site):
    """Every formula arrives typeset: an SVG for the eye, MathML for a screen reader.

    No page loads MathJax; every math element holds one or more ``mjx-container``
    and no TeX outside them; each page with math links the stylesheet and holds its
    shared glyphs.
    """
    html, _, _ = site
    n_formulas = 0
    for path in html_pages(html):
        text = path.read_text(encoding="utf-8")
        page = path.relative_to(html)
        assert not re.search(r"<script[^>]*mathjax", text, flags=re.IGNORECASE), (
            f"{page} loads MathJax"
        )
        elements = MATH_ELEMENT.findall(text)
        for _, inner in elements:
            containers = CONTAINER.findall(inner)
            assert containers, f"{page}: a formula was not typeset: {inner[:200]!r}"
            for container in containers:
                assert "data-mjx-error" not in container, f"{page}: {container[:300]}"
                assert re.search(r'<svg [^>]*aria-hidden="true"', container), page
                assert re.search(r"<mjx-assistive-mml[^>]*><math\b", container), (
                    f"{page}: a formula without MathML for screen readers"
                )
            outside = re.sub(r"<[^>]+>", "", CONTAINER.sub("", inner))
            assert not TEX_LEFT.search(outside), f"{page}: raw TeX {outside[:200]!r}"
            n_formulas += len(containers)
        if elements:
            assert 'id="MJX-SVG-global-cache"' in text, f"{page} lacks its glyphs"
            assert "_static/prerendered-math.css" in text, page
    assert n_formulas > 4000, n_formulas
    css = (html / "_static" / "prerendered-math.css").read_text(encoding="utf-8")
    assert "mjx-assistive-mml" in css and 'mjx-container[jax="SVG"]' in css
    assert not (html / "_static" / "mathjax").exists(), "MathJax is still copied"


def test_every_equation_reference_names_a_numbered_equation(site):
    """Each {eq} link points at a displayed equation that carries a number, and its
    text is that number: "(3.8)" for equation (3.8)."""
    html, _, _ = site
    numbers: dict[tuple[str, str], str] = {}
    equation = re.compile(
        r'<div class="math[^"]*" id="(equation-[^"]+)">\s*'
        r'<span class="eqno">(\([^<]+\))'
    )
    for path in html_pages(html):
        text = path.read_text(encoding="utf-8")
        for anchor, number in equation.findall(text):
            numbers[(path.relative_to(html).as_posix(), anchor)] = number
    link = re.compile(
        r'<a class="reference internal" href="([^"#]*)#(equation-[^"]+)">'
        r"([^<]*)</a>"
    )
    n_links = 0
    for path in html_pages(html):
        here = path.relative_to(html)
        for target, anchor, shown in link.findall(path.read_text(encoding="utf-8")):
            where = (here.parent / target).as_posix() if target else here.as_posix()
            where = os.path.normpath(where)
            assert (where, anchor) in numbers, (
                f"{here}: #{anchor} in {where} is no numbered equation"
            )
            assert shown == numbers[(where, anchor)], (
                f"{here}: the link to {anchor} reads {shown!r}, "
                f"the equation is {numbers[(where, anchor)]}"
            )
            n_links += 1
    assert len(numbers) > 200 and n_links > 300, (len(numbers), n_links)


# --- in a real browser ----------------------------------------------------------------


SHOTS = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "_build" / "screenshots")


@pytest.fixture(scope="session")
def report():
    """Per-page figures from the browser, written to _build/screenshots/report.json.

    Each worker writes its own pages, then merges every worker's file into the
    report, so the worker that finishes last leaves the whole of it.
    """
    pages: dict[str, dict] = {}
    yield pages
    if not pages:
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    mine = book_build.run_dir() / f"report-{worker}.json"
    mine.write_text(json.dumps(pages), encoding="utf-8")
    merged: dict[str, dict] = {}
    for part in sorted(book_build.run_dir().glob("report-*.json")):
        merged.update(json.loads(part.read_text(encoding="utf-8")))
    merged = {name: merged[name] for name in toc_pages() if name in merged}
    totals = {
        "pages": len(merged),
        "formulas_typeset": sum(p["typeset"] for p in merged.values()),
        "requests_to_other_hosts": sum(p["foreign"] for p in merged.values()),
        "images": sum(p["images"] for p in merged.values()),
    }
    out = SHOTS / f"report.{worker}.json"
    out.write_text(
        json.dumps({"totals": totals, "pages": merged}, indent=2), encoding="utf-8"
    )
    os.replace(out, SHOTS / "report.json")


# The window every page is checked in: a common laptop width. No code block may
# scroll sideways in it (check_code_blocks).
VIEWPORT = {"width": 1280, "height": 900}


def open_page(browser, url):
    """Load ``url``; return the page and what it asked for and complained about."""
    context = browser.new_context(viewport=VIEWPORT)
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
    page.goto(url, wait_until="load")  # the math arrives typeset
    page.wait_for_load_state("networkidle")
    return context, page, seen


DARK_MODE_PAGE = "chapters/jacobian-view.html"  # a chapter with several figures

# The text of a page's prose: ``main`` without code, cell outputs and the typeset
# math. textContent, not innerText, so that collapsed solutions count too.
PROSE_TEXT = """() => {
    const main = document.querySelector("main").cloneNode(true);
    const skip = "pre, code, .cell_output, mjx-container, script, style";
    main.querySelectorAll(skip).forEach((element) => element.remove());
    return main.textContent;
}"""
# The TeX source of every formula on the page, which the build keeps beside it.
MATH_SOURCES = """() => Array.from(document.querySelectorAll("mjx-container"),
    (container) => container.getAttribute("data-tex"))"""

_MYST_NAMES = (
    r"eq|cite(?::[a-z]+)?|ref|numref|doc|term|download|prf:ref|math|exercise|"
    r"solution(?:-start|-end)?|literalinclude|figure|admonition|note|warning|tip|"
    r"dropdown|bibliography|glossary|toctree|list-table|code-cell"
)
MYST_ROLE = r"\{[\w:+-]+\}`|\{(?:" + _MYST_NAMES + r")\}"  # {eq}`label`, {cite}
# What is left as text when MyST or MathJax fails to parse something: TeX outside
# math (a dollar, a command, a delimiter), a role, a directive fence, an option line.
UNRENDERED = re.compile(
    r"\$|\\[A-Za-z]+|\\[()[\]{}]"
    rf"|{MYST_ROLE}"
    r"|(?:```|~~~|:::)\s*\{"
    r"|^[ \t]*:(?:label|class|name|caption|nowrap):",
    flags=re.MULTILINE,
)


def unrendered_markup(text: str, math: Sequence[str] = ()) -> list[str]:
    """The lines of the prose ``text`` that hold raw TeX or MyST markup, and the
    formulas of ``math`` into which a misplaced dollar sent a MyST role."""
    found = [
        line.strip()[:160] for line in text.splitlines() if UNRENDERED.search(line)
    ]
    found += [f"in a formula: {tex!r}" for tex in math if re.search(MYST_ROLE, tex)]
    return list(dict.fromkeys(found))


@pytest.mark.parametrize(
    ("text", "math", "flagged"),
    [
        ("The differential is $d\\mathbf{Y} = d\\mathbf{X}", [], True),  # minibatch
        ("a $x$ left as text", [], True),
        ("\\langle\\mathbf{G}, \\mathbf{V}\\rangle", [], True),
        ("a formula MathJax missed: \\(x^2\\)", [], True),
        ("see {eq}`mb-broadcast` above", [], True),
        ("cited as {cite:p} here", [], True),
        ("```{math}", [], True),
        (":::{note}", [], True),
        ("  :label: conv-forward", [], True),
        ("", [". With {eq}`diff-hadamard`, "], True),
        ("Plain prose, a set {1, 2} and a docstring's ∇_{h_t} E = g_t.", [], False),
        ("", ["\\nabla_{\\mathbf{X}}E = \\mathbf{A}^\\top"], False),
    ],
)
def test_unrendered_markup_is_recognised(text, math, flagged):
    assert bool(unrendered_markup(text, math)) == flagged


def check_page(browser, server, page_name, report):
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
        leftovers = unrendered_markup(
            page.evaluate(PROSE_TEXT), page.evaluate(MATH_SOURCES)
        )
        assert not leftovers, f"{page_name} shows unrendered markup: {leftovers}"

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
            alt = (image.get_attribute("alt") or "").strip()
            # docutils falls back to the file name when a notebook gives no alt text
            assert alt and not re.search(r"(_images/|\.(png|svg|jpe?g)$)", alt), (
                f"{page_name}: an image has no alt text (alt={alt!r})"
            )
            assert image.evaluate("i => i.complete && i.naturalWidth > 0"), (
                f"{page_name}: an image did not load"
            )
        n_images = page.locator("main img").count()
        report[page_name] = {
            "formulas": n_math,
            "typeset": n_typeset,
            "images": n_images,
            "requests": len(seen["requests"]),
            "foreign": len(foreign),
        }
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / (page_name.replace("/", "_") + ".png")))
        check_code_blocks(page, page_name)
        check_without_javascript(browser, f"{server}/{page_name}", page_name, n_math)
        # two more checks on pages already open, rather than opening them again
        if page_name == toc_pages()[0]:
            check_sidebar(page)
        if page_name == DARK_MODE_PAGE:
            check_dark_mode(page)
    finally:
        context.close()


# The formulas a reader sees: each container that is shown, and whether its drawing
# has a size (a missing stylesheet or a broken SVG draws nothing).
SHOWN_MATH = """() => {
    const shown = Array.from(document.querySelectorAll("mjx-container"))
        .filter((c) => c.checkVisibility());
    const drawn = shown.filter((c) => {
        const box = c.querySelector("svg").getBoundingClientRect();
        return box.width > 0 && box.height > 0;
    });
    return {containers: document.querySelectorAll("mjx-container").length,
            shown: shown.length, drawn: drawn.length};
}"""


def check_without_javascript(browser, url, page_name, n_math):
    """With JavaScript off the page shows its math typeset and no TeX source."""
    context = browser.new_context(viewport=VIEWPORT, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(url, wait_until="load")
        math = page.evaluate(SHOWN_MATH)
        assert math["containers"] >= n_math, (page_name, math, n_math)
        assert math["drawn"] == math["shown"], (
            f"{page_name} without JavaScript: {math['shown'] - math['drawn']} "
            "formulas shown but not drawn"
        )
        if n_math:
            assert math["shown"] > 0, (
                f"{page_name}: no formula shows without JavaScript"
            )
        leftovers = unrendered_markup(page.evaluate(PROSE_TEXT))
        assert not leftovers, f"{page_name} without JavaScript shows {leftovers}"
    finally:
        context.close()


# Every code block of the page, solutions and dropdowns opened: the code of each
# notebook cell as shown, and every box (a ``pre`` or a block around one) whose
# content is wider than the box, with the first line that does not fit.
CODE_BLOCKS = """() => {
    document.querySelectorAll("details").forEach((d) => { d.open = true; });
    document.querySelectorAll(".toggle-hidden")
        .forEach((e) => e.classList.remove("toggle-hidden"));
    const main = document.querySelector("main");
    const pres = Array.from(main.querySelectorAll("pre"));
    const boxes = new Set(pres);
    for (const pre of pres) {
        for (let e = pre.parentElement; e && e !== main; e = e.parentElement) {
            if (["auto", "scroll"].includes(getComputedStyle(e).overflowX)) {
                boxes.add(e);
            }
        }
    }
    const wide = [];
    for (const box of boxes) {
        if (box.scrollWidth <= box.clientWidth + 1) continue;
        const pre = box.tagName === "PRE" ? box : box.querySelector("pre");
        const style = getComputedStyle(pre);
        const room = pre.clientWidth - parseFloat(style.paddingLeft)
            - parseFloat(style.paddingRight);
        const ruler = document.createElement("span");
        ruler.style.whiteSpace = "pre";
        pre.appendChild(ruler);
        const lines = pre.textContent.split("\\n");
        let first = lines[0];
        for (const line of lines) {
            ruler.textContent = line;
            if (ruler.getBoundingClientRect().width > room + 1) { first = line; break; }
        }
        ruler.remove();
        wide.push({
            block: pres.indexOf(pre) + 1,
            where: pre.closest(".cell_input") ? "code cell"
                : pre.closest(".cell_output") ? "cell output" : "code block",
            starts: lines[0].slice(0, 60),
            line: first,
            width: box.scrollWidth,
            box: box.clientWidth,
        });
    }
    const cells = Array.from(main.querySelectorAll(".cell_input pre"),
        (pre) => pre.textContent);
    return {wide, cells};
}"""
# A ``# checks: <label>`` line in a notebook cell, as the label rule reads it.
CHECKS_LINE = re.compile(r"^\s*#\s*checks:", flags=re.MULTILINE)


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("# checks: linear-forward\nZ = A @ W.T + b", "Z = A @ W.T + b"),
        ("Z = A @ W.T\n\n# checks: a, b\n", "Z = A @ W.T"),
        ("for k in K:\n    # checks: a\n    assert k", "for k in K:\n    assert k"),
        ("# checks: a\n", ""),  # nothing left: the cell shows no code box
        ('s = """\n# checks: a\n"""', 's = """\n# checks: a\n"""'),  # in a string
        ("x = 1  # checks: a", "x = 1  # checks: a"),  # not alone on its line
    ],
)
def test_hidden_check_lines_are_the_ones_the_label_rule_reads(source, shown):
    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        from hide_checks import visible_code
    finally:
        sys.path.pop(0)
    assert visible_code(source) == shown


def check_code_blocks(page, page_name):
    """The reader sees the book, not its machinery: no cell shows its ``# checks:``
    line, and no code block scrolls sideways in a window 1280 px wide."""
    assert page.viewport_size["width"] == 1280, page.viewport_size
    found = page.evaluate(CODE_BLOCKS)
    shown = [
        code.splitlines()[0][:60] for code in found["cells"] if CHECKS_LINE.search(code)
    ]
    assert not shown, (
        f"{page_name}: {len(shown)} code cells show a '# checks:' line; "
        f"the first starts {shown[0]!r}"
    )
    wide = [
        f"block {w['block']} ({w['where']}, starts {w['starts']!r}): "
        f"{w['width']} px in a {w['box']} px box; first line too wide: {w['line']!r}"
        for w in found["wide"]
    ]
    assert not wide, (
        f"{page_name}: {len(wide)} code blocks scroll sideways at 1280 px:\n"
        + "\n".join(wide)
    )


# Every page in the table of contents, dealt into six classes: pytest-xdist's
# "loadscope" sends a class to one worker, so the workers share the pages out and
# finish close together.
GROUPS = 6


def pages_in_a_browser(group: int) -> type:
    @pytest.mark.browser
    class PagesInABrowser:
        @pytest.mark.parametrize("page_name", toc_pages()[group::GROUPS])
        def test_page(self, browser, server, page_name, report):
            check_page(browser, server, page_name, report)

    return PagesInABrowser


TestPages0, TestPages1, TestPages2, TestPages3, TestPages4, TestPages5 = (
    pages_in_a_browser(group) for group in range(GROUPS)
)


def check_sidebar(page):
    """The sidebar names every part and numbers the chapters across them."""
    nav = page.locator("nav.bd-links").inner_text()
    for caption in re.findall(r"caption:\s*(.+)", (ROOT / "_toc.yml").read_text()):
        assert caption.strip().upper() in nav.upper(), (
            f"part {caption!r} missing from the sidebar"
        )
    assert re.search(r"1\.\s+Notation", nav), nav
    assert re.search(r"4\.\s+The differential view", nav), nav
    # The theme's icons are drawn from Font Awesome's web font by its stylesheet
    # (the page does not load fontawesome.js, _ext/offline_site.py): each shows.
    icons = page.evaluate("""() => Array.from(document.querySelectorAll("i.fa-solid, i.fas"))
        .filter((i) => i.checkVisibility())
        .map((i) => [i.className, getComputedStyle(i, "::before").fontFamily,
                     i.getBoundingClientRect().width])""")
    assert len(icons) >= 3, icons
    for name, font, width in icons:
        assert "Font Awesome" in font and width > 0, (name, font, width)


# --- links, search, download, dark mode ----------------------------------------------


class _Anchors(HTMLParser):
    """Collects the ids a page defines and the links it makes."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if tag in ("a", "img", "link", "script") and attrs.get(key):
                self.links.append(attrs[key])


def parse(path: Path) -> _Anchors:
    anchors = _Anchors()
    anchors.feed(path.read_text(encoding="utf-8"))
    return anchors


def test_no_internal_link_or_image_is_broken(site):
    """Every relative link of every page names a file that exists, and an anchor on it."""
    html, _, _ = site
    # _static/ holds the themes' Jinja macro files, templates rather than pages
    pages = {
        p: parse(p)
        for p in html.rglob("*.html")
        if p.relative_to(html).parts[0] != "_static"
    }
    broken = []
    for page, anchors in pages.items():
        for link in anchors.links:
            parts = urlparse(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue
            target = (page.parent / parts.path).resolve() if parts.path else page
            if not target.exists():
                broken.append(f"{page.relative_to(html)} -> {link}")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = (pages.get(target) or parse(target)).ids
                if parts.fragment not in ids:
                    broken.append(f"{page.relative_to(html)} -> {link} (no anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken[:40])


def test_notebook_pages_offer_the_notebook_for_download(site):
    html, _, _ = site
    for page in toc_pages():
        source = (ROOT / page).with_suffix(".ipynb")
        if not source.exists():
            continue
        text = (html / page).read_text(encoding="utf-8")
        link = f"_sources/{Path(page).with_suffix('.ipynb').as_posix()}"
        assert link in text, f"{page} has no download link to its notebook"
        assert (html / link).exists(), f"{link} is not in the built site"


def final_theme_options(repository_url: str, tmp_path: Path) -> dict:
    """The theme options Jupyter Book derives from _config.yml with this URL, after
    the repository_links extension has had its say."""
    import yaml
    from jupyter_book.config import get_final_config

    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        from repository_links import launch_settings
    finally:
        sys.path.pop(0)
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config["repository"]["url"] = repository_url
    user_yaml = tmp_path / "_config.yml"
    user_yaml.write_text(yaml.safe_dump(config), encoding="utf-8")
    final, _ = get_final_config(
        user_yaml=user_yaml,
        sourcedir=ROOT,
        cli_config={"latex_individualpages": False},
    )
    return launch_settings(final["html_theme_options"])


def test_launch_buttons_follow_the_repository_setting(tmp_path):
    """One setting, ``repository.url``: empty leaves the buttons out, a URL brings them."""
    off = final_theme_options("", tmp_path)
    assert off["launch_buttons"] == {} and not off["use_repository_button"]
    on = final_theme_options("https://github.com/someone/fork", tmp_path)
    assert on["repository_url"] == "https://github.com/someone/fork"
    assert on["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert on["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    # the options set in _config.yml's sphinx section survive the merge
    assert on["use_download_button"] and on["search_bar_text"]


def test_no_launch_button_without_a_repository(site):
    html, _, _ = site
    for page in toc_pages():
        text = (html / page).read_text(encoding="utf-8")
        assert "mybinder.org" not in text and "colab.research" not in text, page


@pytest.mark.browser
@pytest.mark.browser
def test_a_link_to_an_equation_lands_on_it(browser, server, site):
    """Following a link to an equation in the middle of a long chapter shows that
    equation at the top of the window, and it stays there as the page settles.
    (It did not when the site let the browser skip laying out blocks far from the
    screen, content-visibility: auto: the target ended 2,000 px below the window.)"""
    html, _, _ = site
    page_name = "chapters/jacobian-view.html"
    text = (html / page_name).read_text(encoding="utf-8")
    # every fourth section of the page, and an equation from its middle
    equations = re.findall(r'id="(equation-[^"]+)"', text)
    anchors = re.findall(r'<section id="([^"]+)"', text)[1::4]
    for anchor in [*anchors, equations[len(equations) // 2]]:
        check_anchor(browser, f"{server}/{page_name}", anchor)


def check_anchor(browser, url, anchor):
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{url}#{anchor}", wait_until="load")
        page.wait_for_timeout(1000)
        top, at_end = page.evaluate(
            f"""() => [document.getElementById('{anchor}').getBoundingClientRect().top,
                window.scrollY + innerHeight >= document.body.scrollHeight - 2]"""
        )
        # (a target near the end of the page can only come as high as the end allows)
        assert 0 <= top <= 200 or (at_end and top > 0), (
            f"#{anchor} is {top:.0f} px from the top of the window"
        )
    finally:
        context.close()


def test_search_finds_jacobian(browser, server):
    context, page, seen = open_page(browser, f"{server}/search.html?q=Jacobian")
    try:
        results = page.locator("#search-results ul.search li")
        results.first.wait_for(state="visible", timeout=20_000)
        assert results.count() >= 3, f"only {results.count()} results for Jacobian"
        assert not seen["errors"] and not seen["console"], seen
        assert all(urlparse(u).hostname == "127.0.0.1" for u in seen["requests"])
    finally:
        context.close()


def check_dark_mode(page):
    """In dark mode every figure sits on a white card, so its black axes show."""
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    images = page.locator("main img")
    assert images.count() > 0, "the page has no figure"
    for image in images.all():
        background = image.evaluate("i => getComputedStyle(i).backgroundColor")
        assert background == "rgb(255, 255, 255)", background
    # The formulas are drawn in currentColor: light on the dark page, as the prose.
    colours = page.evaluate("""() => {
        const c = document.querySelector("main p mjx-container");
        return [getComputedStyle(c.querySelector("svg")).color,
                getComputedStyle(c.closest("p")).color];
    }""")
    assert colours[0] == colours[1], colours
    rgb = [int(v) for v in re.findall(r"\d+", colours[0])[:3]]
    assert sum(rgb) > 3 * 160, f"formulas in dark mode are drawn in {colours[0]}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    images.first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "dark-mode.png"))
