"""Launch buttons (Binder, Colab) from one setting: ``repository.url`` in _config.yml.

A fork sets its GitHub URL once; every notebook page then offers "launch on
Binder" and "open in Colab" for that repository. With the setting left empty (as
in this repository, which may be served from anywhere) the buttons are left out
altogether, instead of pointing at nowhere: sphinx-book-theme would otherwise warn
that the empty URL is not on GitHub, and the -W build would fail.
"""

from __future__ import annotations

from sphinx.application import Sphinx

PROVIDERS = ("binderhub_url", "jupyterhub_url", "colab_url", "jupyterlite_url")


def launch_settings(theme_options: dict) -> dict:
    """The theme options with the launch buttons kept only if a repository is named."""
    options = dict(theme_options)
    url = str(options.get("repository_url") or "").strip()
    if not url:
        options["launch_buttons"] = {}
        for button in ("use_repository_button", "use_issues_button"):
            options[button] = False
        options["use_edit_page_button"] = False
        return options
    buttons = dict(options.get("launch_buttons") or {})
    options["launch_buttons"] = {
        k: v for k, v in buttons.items() if k not in PROVIDERS or str(v).strip()
    }
    return options


def _apply(app: Sphinx, config) -> None:
    config.html_theme_options = launch_settings(config.html_theme_options or {})


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _apply)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
