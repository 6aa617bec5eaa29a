"""Keep the ``# checks: <label>`` bookkeeping off the page.

A notebook code cell that verifies a labelled equation says so in a comment line,
``# checks: <label>``, which ``equation_index`` reads from the notebook's source to
hold the rule "a label is a promise". The reader needs the check, not the comment:
this extension removes those lines from the code that the site shows for each cell.
The notebooks, and so the downloaded ``.ipynb`` and the label rule, keep them.

It removes exactly the lines that ``equation_index`` counts as check comments (a
real comment alone on its line), and the blank lines the removal leaves at the top
or bottom of the cell. A cell whose code was nothing but such comments shows no
code box at all, only its output.
"""

from __future__ import annotations

from docutils import nodes
from equation_index import _check_comments
from sphinx.application import Sphinx


def visible_code(source: str) -> str:
    """``source`` without its ``# checks:`` comment lines (and the blank lines the
    removal leaves at its ends)."""
    hidden = {line for line, _ in _check_comments(source)}
    if not hidden:
        return source
    kept = [
        text
        for number, text in enumerate(source.splitlines(), start=1)
        if number not in hidden
    ]
    while kept and not kept[0].strip():
        kept.pop(0)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def _is_cell_input(node: nodes.Node) -> bool:
    return isinstance(node, nodes.container) and (
        node.get("nb_element") == "cell_code_source"
        or "cell_input" in node.get("classes", [])
    )


def _hide_check_comments(app: Sphinx, doctree: nodes.document) -> None:
    for cell_input in list(doctree.findall(_is_cell_input)):
        for block in list(cell_input.findall(nodes.literal_block)):
            source = block.astext()
            shown = visible_code(source)
            if shown == source:
                continue
            if not shown.strip():
                block.parent.remove(block)
                continue
            block.rawsource = shown
            block.children = []
            block += nodes.Text(shown)
        if not list(cell_input.findall(nodes.literal_block)):
            cell_input.parent.remove(cell_input)


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", _hide_check_comments)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
