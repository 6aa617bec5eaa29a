"""Stored notebook outputs that hold on any machine, and the few that are not compared.

Strict nbval compares every stored output with a fresh run, after the rules of
``tests/sanitize.cfg``. Three things keep that comparison honest:

- the sanitize rules replace what they are meant to and nothing else (nbval's own
  reader parses the file here, and the rules are applied in nbval's order);
- only the cells listed in ``NOT_COMPARED`` skip the comparison, each for the reason
  given there: a timing, or a value that depends on the machine by nature. No cell
  is skipped, or allowed to fail, by any other means;
- ``.ci/run`` re-runs every notebook twice more: with numpy's SIMD limited to its
  baseline (``tests/simd_baseline.py``), and with exp, tanh and log one ulp off as
  another CPU's libm could be (``tests/perturbed_libm``); each really takes effect.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
from nbval.plugin import get_sanitize_patterns

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb")) + sorted(
    (ROOT / "appendix").glob("*.ipynb")
)

# (notebook, cell id) -> why its output is not compared with a fresh run.
TIMING = "wall-clock times, which differ from run to run and from machine to machine"
NOT_COMPARED = {
    ("chapters/autodiff.ipynb", "43897515"): TIMING
    + ": forward against reverse mode as the number of inputs grows",
    ("chapters/cost.ipynb", "490a50c3"): TIMING
    + ": one training step's forward and backward pass",
    ("chapters/cost.ipynb", "81eacac3"): TIMING + ": a training step against width",
    ("chapters/cost.ipynb", "98917ac6"): TIMING + ": float64 against float32",
    ("chapters/second-order.ipynb", "so-25"): TIMING
    + ": one H·V and one Gauss–Newton product against the forward pass",
    ("chapters/implicit.ipynb", "im-15"): TIMING
    + ": one gradient by backpropagation through T steps and by the adjoint",
    ("chapters/gradcheck.ipynb", "085a6a0b"): (
        "the measured best finite-difference step: the bottom of each error curve is "
        "round-off, set by how this CPU's exp, tanh and sums round their last bits; "
        "the next cell asserts what holds on every machine"
    ),
}
# A cell that measures time says so in its code.
MEASURES_TIME = re.compile(r"median_time\(|perf_counter|timeit")
# Every other way a cell can skip the comparison, or fail without failing the test.
SKIP_TAGS = {"nbval-skip", "skip-execution", "raises-exception", "nbval-ignore-output"}
SKIP_MARKERS = re.compile(
    r"#\s*NBVAL_(SKIP|IGNORE_OUTPUT|RAISES_EXCEPTION|CHECK_OUTPUT)", re.IGNORECASE
)


def code_cells():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                yield path.relative_to(ROOT).as_posix(), cell


def test_only_the_listed_cells_skip_the_comparison():
    ignored = {}
    for page, cell in code_cells():
        tags = set(cell.get("metadata", {}).get("tags", []))
        source = "".join(cell["source"])
        assert not SKIP_MARKERS.search(source), (
            f"{page} cell {cell['id']} uses an NBVAL comment marker; tag it instead"
        )
        odd = (tags & SKIP_TAGS) - {"nbval-ignore-output"}
        assert not odd, f"{page} cell {cell['id']} is tagged {sorted(odd)}"
        if "nbval-ignore-output" in tags:
            ignored[page, cell["id"]] = source
    assert set(ignored) == set(NOT_COMPARED), (
        f"cells that skip the output comparison but are not listed: "
        f"{sorted(set(ignored) - set(NOT_COMPARED))}; listed but compared (or gone): "
        f"{sorted(set(NOT_COMPARED) - set(ignored))}"
    )
    for key, source in ignored.items():
        if NOT_COMPARED[key].startswith(TIMING):
            assert MEASURES_TIME.search(source), f"{key} is listed as a timing"


TELLS_THE_READER = re.compile(r"(not|n't) compare", re.IGNORECASE)


@pytest.mark.parametrize(
    "page", sorted({page for page, _ in NOT_COMPARED}), ids=lambda p: Path(p).name
)
def test_the_page_says_which_outputs_are_not_compared(page):
    """A reader whose rerun prints other numbers learns why before the first such cell."""
    nb = json.loads((ROOT / page).read_text(encoding="utf-8"))
    prose = []
    for cell in nb["cells"]:
        if (page, cell.get("id")) in NOT_COMPARED:
            break
        if cell["cell_type"] == "markdown":
            prose.append("".join(cell["source"]))
    assert TELLS_THE_READER.search(" ".join(prose[-3:])), (
        f"{page}: say in the prose before the cell that its printout is not compared"
    )


def sanitize(text: str) -> str:
    """What nbval does to a stored and to a fresh output before comparing them."""
    config = (ROOT / "tests" / "sanitize.cfg").read_text(encoding="utf-8")
    patterns = OrderedDict(get_sanitize_patterns(config))
    assert patterns, "nbval reads no rule from tests/sanitize.cfg"
    for regex, replace in patterns.items():
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("<function f at 0x7f3a9c2b1d30>", "<function f at 0xADDRESS>"),
        ("(0x55d1c0ffee, 0xABC)", "(0xADDRESS, 0xADDRESS)"),
        ("<Figure size 600x360 with 1 Axes>", "<Figure size WxH with 1 Axes>"),
        ("<Figure size 1150.5x300 with 12 Axes>", "<Figure size WxH with 12 Axes>"),
        # not addresses: a figure's size outside a repr, a product of sizes, a hex word
        ("image 600x360 px", "image 600x360 px"),
        ("W is 10x0, A is 3x0f", "W is 10x0, A is 3x0f"),
        ("(8, 8) 0.0x", "(8, 8) 0.0x"),
    ],
)
def test_sanitize_rules(output, expected):
    assert sanitize(output) == expected


def test_figure_rule_keeps_the_number_of_axes():
    assert sanitize("<Figure size 600x360 with 1 Axes>") != sanitize(
        "<Figure size 600x360 with 2 Axes>"
    )


def simd(*args: str, **env: str) -> subprocess.CompletedProcess:
    script = ROOT / "tests" / "simd_baseline.py"
    environ = {**os.environ, **env}
    if not env:
        environ.pop("NPY_DISABLE_CPU_FEATURES", None)
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=environ,
    )


def test_simd_baseline_takes_effect():
    """The variable .ci/run sets leaves numpy nothing above its baseline."""
    found = simd().stdout.split()
    limited = simd("--check", NPY_DISABLE_CPU_FEATURES=" ".join(found))
    assert limited.returncode == 0, limited.stderr
    if not found:
        pytest.skip("numpy finds no SIMD feature above its baseline on this CPU")
    # without the variable the check must fail: it can tell the two apart
    assert simd("--check").returncode != 0
    # and one feature left enabled is caught
    partly = simd("--check", NPY_DISABLE_CPU_FEATURES=" ".join(found[1:]))
    assert partly.returncode != 0


def test_ci_reruns_the_notebooks_at_the_simd_baseline():
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    after = run[run.index("\npytest\n") :]
    assert 'NPY_DISABLE_CPU_FEATURES="$(python tests/simd_baseline.py)"' in after
    assert "python tests/simd_baseline.py --check" in after
    assert re.search(r"^pytest chapters appendix$", after, flags=re.MULTILINE)
    assert not re.search(r"^[^#]*OPENBLAS_(CORETYPE|L2_SIZE)", run, flags=re.MULTILINE)


PROBE = """
import hashlib
import numpy as np
x = np.linspace(-4, 4, 4001)
for name in ("exp", "tanh", "log1p"):
    f = getattr(np, name)
    y = f(x / 5 if name == "log1p" else x)
    print(name, type(f).__name__, *y[::1000].tolist(), y.dtype, hashlib.md5(y).hexdigest())
"""


def probe(**env: str) -> list[str]:
    environ = {**os.environ, **env}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=environ
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_perturbed_libm_moves_results_by_one_ulp_and_no_more():
    """The third pass of .ci/run: another CPU's libm, one ulp off, deterministic."""
    import numpy as np

    on = {
        "BACKPROP_PERTURB_LIBM": "1",
        "PYTHONPATH": str(ROOT / "tests" / "perturbed_libm"),
    }
    plain, perturbed = probe(), probe(**on)
    assert perturbed == probe(**on), "the same input must give the same output"
    assert probe(PYTHONPATH=on["PYTHONPATH"]) == plain, "off unless the variable is set"
    for before, after in zip(plain, perturbed):
        name, kind, *values, dtype, total = after.split()
        assert kind == "_OneUlpOff" and dtype == "float64", after
        assert total != before.split()[-1], f"{name}: nothing moved"
        exact = np.array(before.split()[2:-2], dtype=float)
        moved = np.array(values, dtype=float)
        assert np.all(np.abs(moved - exact) <= np.spacing(np.abs(exact))), name
