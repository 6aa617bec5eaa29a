"""The kernel of a page: runs its cells, in Pyodide, one namespace for the page.

Loaded by boot.js, in the browser's Web Worker and under Node (the tests). JavaScript
calls ``needs(code)`` to learn which vendored packages to load first, then
``run(code, emit)``; ``emit(kind, text)`` receives, in order:

- ``("stdout", text)`` / ``("stderr", text)`` — what the cell prints;
- ``("text", text)`` — the repr of a last expression, or of an object passed to
  ``display()``, as Jupyter's ``text/plain``;
- ``("png", base64)`` — each figure, when ``plt.show()`` is called or the cell ends;
- ``("error", traceback)`` — an exception, with the frames of this module left out.
"""

import ast
import base64
import io
import sys
import traceback
import types

# What a cell's imports need loaded first, beyond numpy (always there).
PACKAGES = {
    "matplotlib": ["matplotlib"],
    "sympy": ["mpmath", "sympy"],
    "hypothesis": ["sortedcontainers", "hypothesis"],
}
# Modules of the book's package that import one of them.
PACKAGE_MODULES = {"backprop.plotting": "matplotlib", "backprop.symbolic": "sympy"}

namespace = {"__name__": "__main__", "__builtins__": __builtins__}
_emit = None


def needs(code):
    """The vendored packages, beyond numpy, that running ``code`` imports."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    wanted = []
    for name in sorted(names):
        top = PACKAGE_MODULES.get(name, name.split(".")[0])
        for package in PACKAGES.get(top, []):
            if package not in wanted:
                wanted.append(package)
    return wanted


class _Stream(io.TextIOBase):
    def __init__(self, name):
        self.name = name

    def writable(self):
        return True

    def write(self, text):
        if text:
            _emit(self.name, text)
        return len(text)


def display(*objects):
    """Jupyter's ``display``: each object's text form, under the cell."""
    for obj in objects:
        _emit("text", repr(obj))


def _install_ipython_shim():
    # the one name the chapters take from IPython
    ipython = types.ModuleType("IPython")
    ipython.display = types.ModuleType("IPython.display")
    ipython.display.display = display
    ipython.get_ipython = lambda: None  # matplotlib asks: no IPython shell here
    sys.modules["IPython"] = ipython
    sys.modules["IPython.display"] = ipython.display


def _show_figures(*args, **kwargs):
    # what Jupyter's inline backend does: each open figure as a PNG, then closed
    import matplotlib.pyplot as plt

    for number in plt.get_fignums():
        figure = plt.figure(number)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        _emit("png", base64.b64encode(buffer.getvalue()).decode("ascii"))
    plt.close("all")


def _prepare_matplotlib():
    # once: draw off screen, and make plt.show() send the figures to the page
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.show = _show_figures


def _traceback(error):
    # the reader's frames only: drop those of this module
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename != __file__
    ]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    return "".join(lines)


def run(code, emit):
    """Run one cell in the page's namespace; True if it raised nothing."""
    global _emit
    _emit = emit
    _install_ipython_shim()
    if any(name in needs(code) for name in PACKAGES["matplotlib"]):
        _prepare_matplotlib()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Stream("stdout"), _Stream("stderr")
    try:
        tree = ast.parse(code, filename="<cell>")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), namespace)
            if value is not None:
                namespace["_"] = value
                emit("text", repr(value))
        if "matplotlib.pyplot" in sys.modules:
            _prepare_matplotlib()
            _show_figures()
        return True
    except BaseException as error:  # a cell's KeyboardInterrupt is reported too
        emit("error", _traceback(error))
        return False
    finally:
        sys.stdout, sys.stderr = stdout, stderr
