"""Keep the built site self-contained and its pages free of duplicate scripts.

Jupyter Book 1 does two things this book does not want:

- it adds every ``.js`` file found under a static path to every page, which
  would load each of MathJax's optional components eagerly (MathJax loads them
  itself, from the same local folder, when a reader asks for them);
- with thebe switched off it still emits thebe's inline configuration (which
  names a CDN) and, like sphinx-togglebutton's, emits it twice, a redeclared
  ``const`` that the browser reports as a script error.

This extension drops those scripts and any exact duplicates. Nothing else changes.
"""

from __future__ import annotations

from sphinx.application import Sphinx

VENDORED = "mathjax/"


def _drop_vendored_components(app: Sphinx, config) -> None:
    def name(entry):
        return entry[0] if isinstance(entry, tuple | list) else entry

    config.html_js_files = [
        e for e in config.html_js_files if not str(name(e)).startswith(VENDORED)
    ]


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


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _drop_vendored_components)
    app.connect("html-page-context", _clean_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
