"""The whole book as one PDF: ``python tools/book_pdf.py`` -> ``_build/pdf/book.pdf``.

Run it after ``jupyter-book build .``: it reads the built site, not the sources.

1. Assemble one HTML document, ``_build/pdf/book.html``: a title page, a table of
   contents, then every page of ``_toc.yml`` in order, each from its ``<article>``
   without the site's navigation. Ids are made unique per page (``page--id``) and
   internal links rewritten to them, so "(3.8)" and "Fig. 5.1" stay links. Each
   chapter's exercise solutions (collapsed on the site) are shown in a "Solutions"
   section at its end. The typeset formulas keep their SVG; the glyphs every page
   holds once are merged into one hidden ``<svg>``.
2. Print it with Chromium (through Playwright, offline): once to learn the page on
   which each chapter starts (from the table of contents' own links in the PDF),
   then again with those numbers written into the table of contents, whose number
   column has a fixed width so that the pagination does not move. The numbers are
   read back from the second PDF and must agree.
"""

from __future__ import annotations

import argparse
import html as html_lib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from bs4 import BeautifulSoup
from chromium import LAUNCH_ARGS, find_chromium

ROOT = Path(__file__).resolve().parents[1]
CSS = Path(__file__).with_name("book_pdf.css")

# A4, and the margins the footer lives in. LAYOUT_WIDTH is the width of the text
# block in CSS pixels (96 per inch): the width Chromium lays the book out at.
PAPER = "A4"
MARGIN = {"top": "16mm", "bottom": "18mm", "left": "17mm", "right": "17mm"}
LAYOUT_WIDTH = round((210 - 17 - 17) / 25.4 * 96)

FOOTER = (
    '<div style="width:100%; font-size:8pt; color:#555; text-align:center;'
    ' font-family:sans-serif;"><span class="pageNumber"></span></div>'
)
# Elements of a page that belong to the site, not to the text.
DROP = ", ".join(
    [
        "script",
        "a.headerlink",
        "footer",
        ".prev-next-area",
        "button",
        "nav",
        "form",
        # a code cell the site shows only on request (tag hide-input): its output stays
        "details.hide.above-input",
    ]
)

GLYPH_CACHE = re.compile(
    r'<svg\b[^>]*\bid="MJX-SVG-global-cache"[^>]*>.*?</svg>', flags=re.DOTALL
)
GLYPH = re.compile(r'<path [^>]*?id="([^"]+)"[^>]*?(?:/>|></path>)')
FORMULA = re.compile(r"<mjx-container\b.*?</mjx-container>", flags=re.DOTALL)
ASSISTIVE = re.compile(r"<mjx-assistive-mml\b.*?</mjx-assistive-mml>", flags=re.DOTALL)
USE = re.compile(r'<use [^>]*href="#(MJX-[^"]+)"')
SLOT = re.compile(r'<mjx-slot n="(\d+)"></mjx-slot>')


@dataclass
class Page:
    name: str  # "chapters/network.html"
    part: str | None  # the caption of the part this page opens, if it opens one
    title: str = ""  # "5. Backpropagation through a network"
    key: str = ""  # "chapters-network", the page's id in the book


def toc_pages(root: Path = ROOT) -> list[Page]:
    """The pages of ``_toc.yml`` in order, the root first; each part's caption on
    the first page of the part."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    pages = [Page(f"{toc['root']}.html", None)]
    for part in toc.get("parts", []):
        for i, chapter in enumerate(part.get("chapters", [])):
            caption = part.get("caption") if i == 0 else None
            pages.append(Page(f"{chapter['file']}.html", caption))
    for page in pages:
        page.key = re.sub(r"[^A-Za-z0-9]+", "-", page.name.removesuffix(".html"))
    return pages


# --- one HTML document ----------------------------------------------------------------


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


class Assembler:
    """Builds ``book.html`` from the site in ``html`` for the folder ``out_dir``."""

    def __init__(self, html: Path, out_dir: Path, pages: list[Page]):
        self.html = html.resolve()
        self.out_dir = out_dir.resolve()
        self.pages = pages
        self.keys = {page.name: page.key for page in pages}
        self.glyphs: dict[str, str] = {}
        self.n_solutions = 0

    def url(self, target: Path) -> str:
        """A file of the site as seen from book.html."""
        return _relative(target, self.out_dir)

    def link(self, href: str, here: Page) -> str | None:
        """``href`` of an ``<a>`` on page ``here`` in the book; None: not a link."""
        parts = urlsplit(href)
        if parts.scheme or parts.netloc:
            return href  # another site: stays a link
        if not parts.path:
            target = here.name
        else:
            folder = (self.html / here.name).parent
            target = _relative((folder / parts.path).resolve(), self.html)
        if target in self.keys:
            key = self.keys[target]
            return f"#{key}--{parts.fragment}" if parts.fragment else f"#{key}"
        if target.endswith(".html"):
            return None  # a page that is not in the book (the index, the search)
        path = self.html / target
        return self.url(path) if path.exists() else None

    def page(self, page: Page) -> str:
        """One page of the site as a ``<section>`` of the book."""
        text = (self.html / page.name).read_text(encoding="utf-8")
        cache = GLYPH_CACHE.search(text)
        if cache:
            for glyph in GLYPH.finditer(cache.group(0)):
                seen = self.glyphs.setdefault(glyph.group(1), glyph.group(0))
                if seen != glyph.group(0):
                    raise ValueError(f"glyph {glyph.group(1)} differs in {page.name}")
            text = text[: cache.start()] + text[cache.end() :]
        # The typeset formulas (most of the page) go past the parser untouched: each
        # is set aside, its MathML for screen readers dropped (on paper the SVG is
        # all there is, and laying out both takes Chromium twice as long).
        formulas: list[str] = []

        def set_aside(match: re.Match) -> str:
            formulas.append(ASSISTIVE.sub("", match.group(0)))
            return f'<mjx-slot n="{len(formulas) - 1}"></mjx-slot>'

        soup = BeautifulSoup(FORMULA.sub(set_aside, text), "html.parser")
        article = soup.select_one("article.bd-article")
        if article is None:
            raise ValueError(f"{page.name} has no <article class='bd-article'>")
        for element in article.select(DROP):
            element.decompose()
        heading = article.find("h1")
        if heading is None:
            raise ValueError(f"{page.name} has no <h1>")
        page.title = " ".join(heading.get_text(" ", strip=True).split())
        folder = (self.html / page.name).parent
        for element in article.find_all(id=True):
            element["id"] = f"{page.key}--{element['id']}"
        for element in article.find_all("a", href=True):
            href = self.link(element["href"], page)
            if href is None:
                element.unwrap()
            else:
                element["href"] = href
        for element in article.find_all("img", src=True):
            if not urlsplit(element["src"]).scheme:
                element["src"] = self.url(folder / urlsplit(element["src"]).path)
            element["loading"] = "eager"
        # The title links to its own page, so that the PDF names the page's start
        # (a named destination that the contents' links point at).
        link = soup.new_tag("a", href=f"#{page.key}", attrs={"class": "book-self"})
        for child in list(heading.children):
            link.append(child.extract())
        heading.append(link)

        # Solutions: shown, and gathered at the end of their chapter.
        solutions = article.select("div.solution")
        section = soup.new_tag("section", attrs={"class": "book-page", "id": page.key})
        if page.part:
            caption = soup.new_tag("p", attrs={"class": "book-part"})
            caption.string = page.part
            section.append(caption)
        for child in list(article.children):
            section.append(child.extract())
        if solutions:
            gathered = soup.new_tag(
                "section",
                attrs={"class": "book-solutions", "id": f"{page.key}--book-solutions"},
            )
            title = soup.new_tag("h2")
            title.string = "Solutions"
            gathered.append(title)
            for solution in solutions:
                solution.extract()
                solution["class"] = [
                    c for c in solution.get("class", []) if c != "dropdown"
                ]
                gathered.append(solution)
            section.append(gathered)
            self.n_solutions += len(solutions)
        return SLOT.sub(lambda m: formulas[int(m.group(1))], str(section))

    def wrap(self, title: str, content: str, glyphs: str = "") -> str:
        """A whole HTML document in the site's stylesheets and the print style."""
        head_page = BeautifulSoup(
            (self.html / self.pages[0].name).read_text(encoding="utf-8"), "html.parser"
        )
        sheets = []
        for link in head_page.find_all("link", rel="stylesheet"):
            path = self.html / urlsplit(link["href"]).path
            if path.exists():
                sheets.append(self.url(path))
        sheets.append(self.url(CSS))
        links = "\n".join(f'<link rel="stylesheet" href="{s}">' for s in sheets)
        cache = (
            f'<svg id="MJX-SVG-global-cache" style="display: none;"><defs>{glyphs}'
            "</defs></svg>"
        )
        return f"""<!DOCTYPE html>
<html lang="en" data-theme="light" data-mode="light">
<head><meta charset="utf-8"><title>{html_lib.escape(title)}</title>
{links}
</head>
<body>
<main class="bd-main"><div class="bd-content"><div class="bd-article-container">
<article class="bd-article">
{content}
</article></div></div></main>
{cache if glyphs else ""}
</body></html>
"""

    def body(self, title: str) -> str:
        """Every page of the book, in order: the document printed with page numbers."""
        pages = "\n".join(self.page(page) for page in self.pages)
        lacking = set(USE.findall(pages)) - set(self.glyphs)
        if lacking:
            raise ValueError(f"{len(lacking)} glyphs are used but not defined")
        return self.wrap(title, pages, "".join(self.glyphs.values()))

    def front(self, config: dict, numbers: dict[str, int]) -> str:
        """The title page and the contents, each entry with the number of the page
        the entry starts on. Its links point at placeholders (``toc--page``) that
        the merge (``merge``) turns into links to those pages."""
        title = html_lib.escape(config.get("title", "Book"))
        author = html_lib.escape(config.get("author", ""))
        rows, targets = [], []
        for page in self.pages:
            if page.part:
                rows.append(f'<li class="toc-part">{html_lib.escape(page.part)}</li>')
            rows.append(
                f'<li class="toc-entry"><a href="#toc--{page.key}">'
                f'<span class="toc-title">{html_lib.escape(page.title)}</span>'
                f'<span class="toc-page">{numbers[page.key]}</span></a></li>'
            )
            targets.append(f'<span id="toc--{page.key}"></span>')
        content = f"""<section class="book-title-page">
<h1 class="book-title">{title}</h1>
<p class="book-author">{author}</p>
</section>
<section class="book-contents"><h1>Contents</h1>
<ul class="toc-list">{"".join(rows)}</ul>
<div class="toc-targets">{"".join(targets)}</div></section>"""
        return self.wrap(config.get("title", "Book"), content)


# --- printing -------------------------------------------------------------------------


def start_pages(reader, pages: list[Page]) -> dict[str, int]:
    """The number of the page (from 1) on which each page of the book starts in the
    printed body: where its title's link to itself points (``Assembler.page``)."""
    named = reader.named_destinations
    missing = [page.key for page in pages if f"/{page.key}" not in named]
    if missing:
        raise RuntimeError(f"the printed body does not name these pages: {missing}")
    return {
        page.key: reader.get_destination_page_number(named[f"/{page.key}"]) + 1
        for page in pages
    }


def merge(front: Path, body: Path, out: Path, numbers: dict[str, int]) -> int:
    """``front`` then ``body`` into ``out``; the contents' links go to the pages
    they name. Returns the number of pages of ``out``."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, NameObject, NullObject

    writer = PdfWriter()
    writer.append(PdfReader(front), import_outline=False)
    n_front = len(writer.pages)
    writer.append(PdfReader(body), import_outline=False)
    linked = set()
    for sheet in writer.pages[:n_front]:
        for annotation in sheet.get("/Annots") or []:
            annotation = annotation.get_object()
            name = str(annotation.get("/Dest", "")).lstrip("/")
            if name.startswith("toc--") and name[5:] in numbers:
                target = writer.pages[n_front + numbers[name[5:]] - 1]
                annotation[NameObject("/Dest")] = ArrayObject(
                    [target.indirect_reference, NameObject("/XYZ")] + [NullObject()] * 3
                )
                linked.add(name[5:])
    if linked != set(numbers):
        raise RuntimeError(f"the contents lack links to {set(numbers) - linked}")
    with open(out, "wb") as file:
        writer.write(file)
    return len(writer.pages)


OVERFLOW = """() => {
    const limit = document.querySelector("article").getBoundingClientRect().right;
    const out = [];
    for (const el of document.querySelectorAll("article pre, article table, article img, article mjx-container, article .cell_output")) {
        const right = el.getBoundingClientRect().right;
        if (el.scrollWidth > el.clientWidth + 1 || right > limit + 1) {
            const where = el.closest("section.book-page");
            out.push([where ? where.id : "", el.tagName.toLowerCase(),
                      Math.round(Math.max(el.scrollWidth, right)),
                      el.textContent.slice(0, 60)]);
        }
    }
    return out;
}"""


# What was printed, for the checks of tests/test_pdf.py, read off the layout
# Chromium printed (reading 500 pages back from the PDF takes minutes): every glyph
# a formula draws is defined (else it prints blank), and each page's prose as
# shown, code hidden (code may hold TeX on purpose, a plot's title).
PRINTED = """() => {
    const glyphs = Array.from(document.querySelectorAll("use"));
    const undrawn = glyphs.filter((use) => !document.getElementById(
        (use.getAttribute("xlink:href") || use.getAttribute("href")).slice(1)));
    const style = document.createElement("style");
    style.textContent = "pre, code { display: none !important; }";
    document.head.appendChild(style);
    const pages = Array.from(document.querySelectorAll("section.book-page"),
        (page) => [page.id, page.innerText]);
    style.remove();
    return {glyphs: glyphs.length, undrawn: undrawn.length, pages};
}"""


def print_pdf(
    browser, source: Path, out: Path, numbered: bool, report: dict | None = None
) -> list:
    """Print ``source`` to ``out``; return the elements wider than the page, and
    put what was printed (``PRINTED``) into ``report`` if one is given."""
    context = browser.new_context(viewport={"width": LAYOUT_WIDTH, "height": 1000})
    page = context.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: not r.url.startswith(("file:", "data:")) and outside.append(r.url),
    )
    page.goto(source.resolve().as_uri(), wait_until="load", timeout=0)
    page.emulate_media(media="print")
    wide = page.evaluate(OVERFLOW)
    page.pdf(
        path=str(out),
        format=PAPER,
        margin=MARGIN,
        print_background=True,
        display_header_footer=numbered,
        header_template="<span></span>",
        footer_template=FOOTER,
    )
    if report is not None:
        report.update(page.evaluate(PRINTED))
    context.close()
    if outside:
        raise RuntimeError(f"the book asked for files from elsewhere: {outside[:5]}")
    return wide


def build(html: Path, out: Path, browser) -> dict:
    """Write ``out``, and beside it the two documents printed (``book.html``, the
    pages of the book, and ``book-front.html``, title and contents); return what
    was measured."""
    from pypdf import PdfReader

    started = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    pages = toc_pages()
    missing = [page.name for page in pages if not (html / page.name).exists()]
    if missing:
        raise FileNotFoundError(f"{html} lacks {missing}: build the site again")

    assembler = Assembler(html, out.parent, pages)
    source = out.with_suffix(".html")
    source.write_text(assembler.body(config.get("title", "")), encoding="utf-8")
    assembled = time.monotonic()
    body = out.with_name(out.stem + "-body.pdf")
    layout: dict = {}
    wide = print_pdf(browser, source, body, numbered=True, report=layout)
    printed = time.monotonic()
    numbers = start_pages(PdfReader(body), pages)
    front_source = out.with_name(out.stem + "-front.html")
    front_source.write_text(assembler.front(config, numbers), encoding="utf-8")
    front = out.with_name(out.stem + "-front.pdf")
    wide += print_pdf(browser, front_source, front, numbered=False)
    n_pages = merge(front, body, out, numbers)
    for part in (front, body):
        part.unlink()
    return {
        "pages": n_pages,
        "bytes": out.stat().st_size,
        "seconds": time.monotonic() - started,
        "assemble": assembled - started,
        "print": printed - assembled,
        "starts": numbers,
        "solutions": assembler.n_solutions,
        "wide": wide,
        "layout": layout,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "_build" / "pdf" / "book.pdf"
    )
    args = parser.parse_args(argv)
    if not (args.html / "index.html").exists():
        print(
            f"no built site in {args.html}: run `jupyter-book build .` first",
            file=sys.stderr,
        )
        return 2
    executable = find_chromium()
    if executable is None:
        print(
            "no Chromium: install one (`apt-get install chromium`, or "
            "`python -m playwright install chromium`) or set CHROMIUM",
            file=sys.stderr,
        )
        return 2
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            result = build(args.html, args.out, browser)
        finally:
            browser.close()
    # The printed layout, for tests/test_pdf.py: beside the PDF, book-printed.json.
    printed = {"wide": result["wide"], **result["layout"]}
    args.out.with_name(args.out.stem + "-printed.json").write_text(
        json.dumps(printed), encoding="utf-8"
    )
    for key, tag, width, text in result["wide"]:
        print(f"wider than the page: {key} <{tag}> {width} px: {text!r}")
    print(
        f"{args.out}: {result['pages']} pages, {result['bytes'] / 1e6:.1f} MB, "
        f"{result['solutions']} solutions, in {result['seconds']:.0f} s "
        f"(assembled in {result['assemble']:.0f} s, printed in {result['print']:.0f} s)"
    )
    return 1 if result["wide"] else 0


if __name__ == "__main__":
    sys.exit(main())
