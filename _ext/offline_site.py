"""Keep the built site self-contained and its pages free of duplicate scripts.

With thebe switched off, Jupyter Book 1 still emits thebe's inline configuration
(which names a CDN) and, like sphinx-togglebutton's, emits it twice, a redeclared
``const`` that the browser reports as a script error. This extension drops those
scripts and any exact duplicates. Nothing else changes.

It also drops the theme's ``fontawesome.js`` (1.5 MB, parsed on every page a
reader opens): it draws custom icons as SVG, and this book has none; the theme's
own stylesheet draws every icon the pages use from Font Awesome's web font.

(Jupyter Book also adds every ``.js`` file under a static path to every page, so
a script meant for some pages only must not live in ``_static``.)
"""

from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx

# The theme writes this tag into its page template, not through script_files.
FONTAWESOME_JS = re.compile(
    r'\s*<script defer src="[^"]*/fontawesome\.js[^"]*"></script>'
)


def _clean_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    kept, seen = [], set()
    for script in scripts:
        filename = str(getattr(script, "filename", script) or "")
        attributes = dict(getattr(script, "attributes", {}) or {})
        body = str(attributes.get("body", ""))
        if "thebe" in filename or "THEBE_JS_URL" in body:
            continue
        key = (filename, tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    scripts[:] = kept


def _drop_fontawesome_js(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        slim = FONTAWESOME_JS.sub("", text)
        if slim != text:
            page.write_text(slim, encoding="utf-8")


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _clean_scripts, priority=900)
    app.connect("build-finished", _drop_fontawesome_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
