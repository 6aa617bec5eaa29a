"""numpy's SIMD code paths above its baseline, for re-running the notebooks without them.

``python tests/simd_baseline.py`` prints the SIMD features that this numpy build can
dispatch to and this CPU has (``numpy.show_runtime()`` lists them as "found"),
separated by spaces: the value for ``NPY_DISABLE_CPU_FEATURES``. With all of them
disabled, numpy's ``exp``, ``tanh``, ``log``, sums and friends take the code paths
of its baseline and round their last bits as a CPU without those features would.
``.ci/run`` re-runs every notebook under strict nbval that way, so that an output
which holds only on one CPU fails on any.

``python tests/simd_baseline.py --check`` exits with an error unless every
dispatchable feature is disabled in this process, i.e. unless the variable took
effect.
"""

from __future__ import annotations

import sys

try:  # numpy 2
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
except ImportError:  # numpy 1
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__


def features_above_baseline() -> list[str]:
    """The dispatchable features that are enabled now, in numpy's order."""
    return [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]


if __name__ == "__main__":
    enabled = features_above_baseline()
    if sys.argv[1:] == ["--check"]:
        if enabled:
            sys.exit(f"numpy still dispatches to {' '.join(enabled)}")
        print("numpy runs at its SIMD baseline")
    else:
        print(" ".join(enabled))
