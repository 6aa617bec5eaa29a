"""The book as one PDF (tools/book_pdf.py), printed from this run's build of the site.

What the PDF itself is checked for (pypdf): its length; a contents page that lists
every page of ``_toc.yml`` in order, each with a page number, and the page of that
number opens with that title and carries that number in its footer; every figure of
the site is an image in it. What the printed document is checked for (the HTML the
PDF was printed from, laid out in Chromium for print at the page's width): no TeX
left, no unresolved reference ("??"), every exercise solution visible at the end of
its chapter, no code block or table wider than the page. Reading the text of all
400 pages back from the PDF with pypdf takes minutes, so the text checks are made
on the layout Chromium printed, and the PDF is read on its front pages and on the
first page of every chapter.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from chromium import find_chromium, toc_pages

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser

# The book printed to 504 A4 pages when this test was written (December 2026).
PAGES = (350, 660)


@pytest.fixture(scope="session")
def book(site, tmp_path_factory):
    html, _, returncode = site
    assert returncode == 0, "the site did not build"
    executable = find_chromium()
    if executable is None:
        how = "install Chromium (see tests/test_book.py)"
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium to print the book: {how}")
        pytest.skip(f"no Chromium to print the book; {how}")
    out = tmp_path_factory.mktemp("pdf") / "book.pdf"
    command = [sys.executable, str(ROOT / "tools" / "book_pdf.py")]
    command += ["--html", str(html), "--out", str(out)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "CHROMIUM": executable},
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)
    return html, out, executable


def titles(html: Path) -> list[str]:
    """Each page's title as the site shows it: "5. Backpropagation through a network"."""
    found = []
    for name in toc_pages():
        text = (html / name).read_text(encoding="utf-8")
        heading = re.search(r"<h1[^>]*>(.*?)</h1>", text, flags=re.DOTALL).group(1)
        heading = re.sub(r'<a class="headerlink".*?</a>', "", heading)
        found.append(
            " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", heading)).split())
        )
    return found


def flat(text: str) -> str:
    """Words of ``text`` one space apart, ligatures ("ﬀ") spelled out."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def test_contents_and_chapters_of_the_pdf(book):
    from pypdf import PdfReader

    html, out, _ = book
    reader = PdfReader(out)
    n = len(reader.pages)
    assert PAGES[0] <= n <= PAGES[1], f"{n} pages"

    # The front matter: up to the first page whose footer reads 1.
    front = []
    for sheet in reader.pages[:10]:
        text = sheet.extract_text()
        if text.split()[-1:] == ["1"]:
            break
        front.append(flat(text))
    n_front = len(front)
    assert 2 <= n_front <= 5, f"{n_front} pages before page 1"
    contents = " ".join(front)
    assert "Contents" in contents

    # Each title in the contents, in order, with a number; that page opens with it.
    position, previous = 0, 0
    for title in titles(html):
        entry = re.compile(re.escape(title) + r" (\d+)")
        match = entry.search(contents, position)
        assert match, f"{title!r} is not in the contents (in order)"
        position, number = match.end(), int(match.group(1))
        assert number > previous, f"{title!r} on page {number}, before the last one"
        previous = number
        text = flat(reader.pages[n_front + number - 1].extract_text())
        assert text.split()[-1] == str(number), (
            f"page {number} of the contents is numbered {text.split()[-1]!r}"
        )
        assert title in text[: len(title) + 200], (
            f"page {number} does not open with {title!r}: {text[:120]!r}"
        )
    assert previous <= n - n_front

    # Every figure of the site is an image in the PDF.
    figures = sum(
        len(re.findall(r"<img\b", main))
        for name in toc_pages()
        for main in re.findall(
            r"<main\b.*?</main>",
            (html / name).read_text(encoding="utf-8"),
            flags=re.DOTALL,
        )
    )
    images = 0
    for sheet in reader.pages:
        objects = (sheet.get("/Resources") or {}).get("/XObject") or {}
        images += sum(
            1 for x in objects.values() if x.get_object().get("/Subtype") == "/Image"
        )
    assert figures > 30 and images >= figures, (images, figures)


# TeX that a reader would see as source, and a reference Sphinx could not resolve.
RAW = re.compile(
    r"\\[()[\]]|\$\$|\\(?:begin|end)\{|\\(?:mathbf|frac|partial|nabla|sum|top"
    r"|boldsymbol|operatorname|odot|otimes|mathrm|diag)\b|\?\?"
)


def test_the_printed_text(book):
    """What Chromium laid out and printed (tools/book_pdf.py writes it beside the
    PDF, read off the page it printed): no TeX, no "??", every solution shown after
    its chapter's exercises, every glyph defined, nothing wider than the page."""
    html, out, _ = book
    report = json.loads(
        out.with_name(out.stem + "-printed.json").read_text(encoding="utf-8")
    )
    n_solutions = {
        re.sub(r"[^A-Za-z0-9]+", "-", name.removesuffix(".html")): len(
            re.findall(
                r'<div class="solution\b', (html / name).read_text(encoding="utf-8")
            )
        )
        for name in toc_pages()
    }
    printed, wide = report["pages"], report["wide"]
    n_glyphs, undrawn = report["glyphs"], report["undrawn"]
    assert [key for key, _ in printed] == list(n_solutions), "pages missing"
    assert not wide, f"wider than the page: {wide[:5]}"
    assert n_glyphs > 10000 and not undrawn, f"{undrawn} of {n_glyphs} glyphs undrawn"
    for key, text in printed:
        raw = RAW.search(text)
        assert not raw, f"{key}: {text[max(0, raw.start() - 80) : raw.end() + 40]!r}"
        shown = re.findall(r"^Solution to Exercise \S+", text, flags=re.MULTILINE)
        assert len(shown) == n_solutions[key], (key, len(shown), n_solutions[key])
        if shown:
            exercises = text.rfind("\nExercise ")
            gathered = text.find("\nSolutions\n")
            assert gathered > exercises > 0, f"{key}: solutions before the exercises"
            assert not re.search(r"^Solution to", text[:gathered], flags=re.MULTILINE)
    assert sum(n_solutions.values()) > 50
