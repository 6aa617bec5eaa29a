"""One build of the book per test run, started early and shared by every worker.

``pytest`` runs on two workers (pytest-xdist, see ``pyproject.toml``). The site
takes the longest single step of the suite to build, so ``jupyter-book build . -W
-n --keep-going`` is started in the background before the workers start (see
conftest.py), into a folder named after the run; the workers go on with other
tests, and the fixture ``site`` of every worker waits for that one build. Without
xdist, the process starts it when it collects a test that needs the site.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One id per test run: the first process to import this module (the xdist
# controller, or the only process) makes it, and the workers inherit it.
_RUN = os.environ.setdefault("BACKPROP_BOOK_RUN", uuid.uuid4().hex)

# Run by a separate Python: build, then write the result in one atomic rename.
_BUILDER = """
import json, os, subprocess, sys
out, command = sys.argv[1], sys.argv[2:]
result = subprocess.run(command, capture_output=True, text=True, cwd=os.getcwd())
with open(out + ".part", "w", encoding="utf-8") as f:
    json.dump({"log": result.stdout + result.stderr, "returncode": result.returncode}, f)
os.replace(out + ".part", out)
"""


def run_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / f"backprop-book-{_RUN}"
    folder.mkdir(exist_ok=True)
    return folder


def start() -> Path:
    """Start the build unless this run already has; return the run's folder."""
    folder = run_dir()
    try:  # creating the marker is atomic: exactly one caller starts the build
        os.close(os.open(folder / "started", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return folder
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [str(jb) if jb.exists() else "jupyter-book", "build", str(ROOT)]
    command += ["-W", "-n", "--keep-going", "--path-output", str(folder)]
    subprocess.Popen(
        [sys.executable, "-c", _BUILDER, str(folder / "result.json"), *command],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return folder


def wait(timeout: float = 900) -> tuple[Path, str, int]:
    """The built site: (html folder, build log, return code)."""
    folder = start()
    result = folder / "result.json"
    deadline = time.monotonic() + timeout
    while not result.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the book did not build within {timeout} s")
        time.sleep(0.25)
    built = json.loads(result.read_text(encoding="utf-8"))
    return folder / "_build" / "html", built["log"], built["returncode"]
