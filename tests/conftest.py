"""Shared test settings: hypothesis profiles, the float64 tolerance of the book, and
the schedule of the run on pytest-xdist workers (``-n auto --dist loadscope`` in
pyproject.toml; loadscope keeps the cells of a notebook, which share one kernel, on
one worker and in order, as nbval requires).

Hypothesis profiles, chosen by the environment variable ``HYPOTHESIS_PROFILE``:

- ``default`` (no variable): 40 examples a property, derandomized, so that every run
  draws the same examples and a failure repeats;
- ``ci`` (the default when ``CI`` is set): the same with 60 examples;
- ``thorough``: 1,000 random examples a property, different on every run, to look
  beyond the fixed draws, for example before resolving an issue:
  ``HYPOTHESIS_PROFILE=thorough pytest tests/test_norm.py``. A failure prints the
  example and the ``@reproduce_failure`` blob that replays it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The BLAS thread cap of every run is in pyproject.toml (pytest-env), so that
# `pytest chapters/` runs the notebooks exactly as the whole suite does.
if os.environ.get("PYTEST_XDIST_WORKER"):
    # The site's build, started by the controller, is the longest single step and
    # the browser tests wait for it: the workers (and their notebook kernels) yield
    # the cores to it while it runs.
    os.nice(5)

import book_build  # noqa: E402  (tests/ is on sys.path, as for every test module)
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from chromium import LAUNCH_ARGS, find_chromium, serve  # noqa: E402

matplotlib.use("Agg")

# The book's promise: every op agrees with finite differences and with its explicit
# Jacobian in float64 to a relative error of at most this.
TOL = 1e-7

settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("default"),
    max_examples=60,
)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("default"),
    max_examples=1000,
    derandomize=False,
    print_blob=True,
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI") else "default")
)


# --- the built site and a browser, shared by tests/test_book.py and test_runcells.py


@pytest.fixture(scope="session")
def site():
    """The book built once per run: ``jupyter-book build . -W -n --keep-going``.

    Into a temporary folder, so that the reader's ``_build/`` is left alone; started
    in the background at collection (tests/book_build.py). Returns (html dir, log,
    return code).
    """
    return book_build.wait()


@pytest.fixture(scope="session")
def server(site):
    """The built site on 127.0.0.1 for the browser tests; its base URL."""
    html, _, _ = site
    httpd, base = serve(html)
    yield base
    httpd.shutdown()


@pytest.fixture(scope="session")
def browser():
    executable = find_chromium()
    if executable is None:
        how = (
            "install one with `apt-get install chromium` (Debian/Ubuntu, as .ci/run "
            "does) or `python -m playwright install chromium`"
        )
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium for the browser tests: {how}")
        pytest.skip(f"no Chromium for the browser tests; {how}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


def pytest_configure(config):
    """Under xdist, the controller starts the site's build before any worker starts.

    Only for a run of the whole suite (no paths, no ``-k``, no ``-m``); any other
    run starts it on collecting a test that needs it, if there is one.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") or not config.getoption(
        "numprocesses", None
    ):
        return
    whole = config.args_source == pytest.Config.ArgsSource.TESTPATHS or all(
        Path(arg).resolve() == config.rootpath for arg in config.args
    )
    if whole and not config.option.keyword and not config.option.markexpr:
        book_build.start()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Schedule the run for two (or more) pytest-xdist workers.

    - the site is built in the background as soon as a test that needs it is
      collected and selected (tests/book_build.py; ``trylast``, so after ``-k`` and
      ``-m`` have deselected what they deselect), and those tests go last, so that
      the build runs while the workers do everything else.
    """
    book = [item for item in items if "site" in getattr(item, "fixturenames", ())]
    if book:
        book_build.start()
        rest = [item for item in items if item not in book]
        items[:] = rest + book
