"""One meaning per symbol (GUIDE §2a): the symbol table is the single source.

``appendix/symbols.md`` is the book's table of symbols; the notation chapter and
the glossary both show it (``{include}``). These tests hold the pages to it:

- every bold letter written in a page's prose is a row of the table;
- the letters the book renamed to give each symbol one meaning do not come back
  (the commutation matrix is Π, not K; a Kronecker delta is [i = j], not δ_ij;
  a bar is a gradient, never "padded"; the attention width is d_k, never a bare d,
  which is the differential; ...), each rule with the pages where the letter is
  allowed;
- code cells use the table's names: ``ap``/``Ap`` for a′; ``a1``/``A1`` only for
  the first layer's activation a⁽¹⁾, on pages that number layers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ROOT / "appendix" / "symbols.md"
PAGES = sorted(
    [*ROOT.glob("chapters/*.ipynb"), *ROOT.glob("appendix/*.ipynb")]
    + [*ROOT.glob("appendix/*.md"), ROOT / "intro.md"]
)
BOLD = re.compile(r"\\(?:mathbf|boldsymbol)\s*\{\s*(\\?[A-Za-z]+)\s*\}")


def prose(page: Path) -> str:
    """The page's markdown, inline code removed (code is not notation)."""
    if page.suffix == ".md":
        text = page.read_text()
    else:
        cells = json.loads(page.read_text())["cells"]
        text = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
        )
    kept, in_code = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            tag = line.lstrip()[3:].strip()
            if in_code:
                in_code = False
            elif tag in ("", "python", "text", "console", "bash"):
                # a code block, or the closing fence of a directive
                in_code = tag != "" or not kept_open(kept)
            kept.append(line)
            continue
        if not in_code:
            kept.append(line)
    return "\n".join(
        line if line.lstrip().startswith("```") else re.sub(r"`[^`]*`", "", line)
        for line in kept
    )


def kept_open(lines: list[str]) -> bool:
    """Whether a directive (a fence with a ``{name}``) is open at the end."""
    depth = 0
    for line in lines:
        tag = line.lstrip()
        if tag.startswith("```{"):
            depth += 1
        elif tag.startswith("```") and depth:
            depth -= 1
    return depth > 0


def code(page: Path) -> str:
    cells = json.loads(page.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_notation_chapter_and_the_glossary_show_the_table():
    include = re.compile(r"```\{include\}\s+(\S*symbols\.md)\s*\n```")
    for page in (ROOT / "chapters/notation.ipynb", ROOT / "appendix/glossary.md"):
        found = include.findall(prose(page))
        assert len(found) == 1, f"{name(page)} must include appendix/symbols.md once"
        assert (page.parent / found[0]).resolve() == SYMBOLS


def table_letters() -> set[str]:
    return set(BOLD.findall(SYMBOLS.read_text()))


def test_every_bold_letter_of_the_book_is_in_the_table():
    known = table_letters()
    # a lower-case bold letter may be a row (or column) of its upper-case matrix
    known |= {letter.lower() for letter in known if len(letter) == 1}
    missing = {}
    for page in PAGES:
        if page == SYMBOLS:
            continue
        for letter in set(BOLD.findall(prose(page))) - known:
            missing.setdefault(letter, []).append(name(page))
    assert not missing, f"bold letters not in appendix/symbols.md: {missing}"


# A letter or form that was renamed, with the pages where it may still appear.
ONE_MEANING = [
    (r"\\mathbf\{K\}_", (), "the commutation matrix is Π_{m,n}; K is the keys"),
    (
        r"\\mathbf\{K\}",
        (
            "chapters/attention.ipynb",
            "appendix/cheatsheet.md",
            "appendix/glossary.md",
            "appendix/symbols.md",
        ),
        "bold K is attention's keys only",
    ),
    (r"\\mathbf\{E\}", (), "the embedding table is W_emb; E is the loss"),
    (r"\\tilde|\\widetilde", (), "no tilde: padded, masked, rotated are subscripts"),
    (
        r"\\delta_\{[ijklpq]'?\s*,?\s*[ijklpq]'?\}",
        (),
        "a Kronecker delta is written [i = j]; δ is the gradient at z",
    ),
    (
        r"\\sqrt\s*\{?\s*d\s*\}?(?!_)",
        (),
        "the attention width is d_k; d is the differential",
    ),
    (
        r"[HW]_\\text\{(?:out|in)\}|[HW]_p\b|H\s*\\times\s*W",
        (),
        "image sizes are N_y×N_x and N_i×N_j; W is the weights",
    ),
    (r"(?<![\\\w])m\(\s*\\mathbf", (), "a mean is mean(·); m is a size"),
    (
        r"\\times\s*K\b|\bK\s*\\times|\^\{?K\}?\b|\$K\$",
        ("chapters/attention.ipynb",),
        "the number of classes is n_L",
    ),
    (
        r"\\bar",
        (
            "chapters/autodiff.ipynb",
            "chapters/attention.ipynb",
            "chapters/cost.ipynb",
            "appendix/crosswalk.md",
            "appendix/glossary.md",
            "appendix/symbols.md",
            "appendix/cheatsheet.md",
        ),
        "a bar is the reverse-mode gradient, used where reverse mode is written so",
    ),
    (
        r"\\mathbf\{T\}",
        (
            "chapters/convolution.ipynb",
            "appendix/cheatsheet.md",
            "appendix/glossary.md",
            "appendix/symbols.md",
        ),
        "bold T is the convolution's matrix",
    ),
    (
        r"\\mathbf\{U\}",
        (
            "chapters/notation.ipynb",
            "chapters/component-view.ipynb",
            "chapters/jacobian-view.ipynb",
            "chapters/network.ipynb",
            "chapters/minibatch.ipynb",
            "appendix/cheatsheet.md",
            "appendix/crosswalk.md",
            "appendix/glossary.md",
            "appendix/symbols.md",
        ),
        "bold U is the kernel, Wᵀ, of Keras and Flax",
    ),
]


@pytest.mark.parametrize(
    "pattern, allowed, why", ONE_MEANING, ids=[r[2] for r in ONE_MEANING]
)
def test_a_renamed_symbol_does_not_come_back(pattern, allowed, why):
    rule = re.compile(pattern)
    found = {}
    for page in PAGES:
        if name(page) in allowed or page == SYMBOLS:
            continue
        hits = rule.findall(prose(page))
        if hits:
            found[name(page)] = sorted(set(hits))[:5]
    assert not found, f"{why}: {found}"


def test_code_names_follow_the_table():
    # a1/A1 may only be the first layer's activation a⁽¹⁾, on pages that number
    # layers; an example, a batch or a′ has another name (a, A, ap, Ap)
    rule = re.compile(r"\b[aA]1\b")
    found = [
        name(p)
        for p in PAGES
        if p.suffix == ".ipynb" and rule.search(code(p)) and "^{(1)}" not in prose(p)
    ]
    assert not found, f"a1/A1 in code is a⁽¹⁾ only, on pages with layers: {found}"
