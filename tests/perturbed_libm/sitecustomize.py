"""Another CPU's libm, for checking that the notebooks' printed digits hold on any CPU.

With this folder on ``PYTHONPATH`` and ``BACKPROP_PERTURB_LIBM`` set to a number,
every Python process that imports numpy (the notebook kernels included) gets
``np.exp``, ``np.tanh``, ``np.log``, ``np.log1p`` and ``np.expm1`` that return, for
about a quarter of the inputs, the neighbouring floating-point number above or below
numpy's result: an error of one unit in the last place, as a different but correct
implementation of these functions would make (numpy's own SIMD code paths differ from
each other by as much). Which inputs move, and in which direction, is a hash of the
input's bits and of the number, so a process gives the same result for the same input
every time, as a real CPU does.

``.ci/run`` re-runs every notebook under strict nbval this way: a printed digit that
moves is one that depends on how a CPU rounds. The one-process check
``python -c "import numpy"`` is unaffected unless the variable is set.
"""

import os

if os.environ.get("BACKPROP_PERTURB_LIBM"):
    import numpy as np

    _SALT = np.uint64(
        int(os.environ["BACKPROP_PERTURB_LIBM"]) * 0x9E3779B97F4A7C15 % 2**64
    )
    _MIX = np.uint64(0xBF58476D1CE4E5B9)

    class _OneUlpOff:
        """A ufunc whose plain calls are moved by one ulp; its methods are untouched."""

        def __init__(self, ufunc):
            self._ufunc = ufunc

        def __getattr__(self, name):
            return getattr(self._ufunc, name)

        def __call__(self, x, *args, **kwargs):
            result = self._ufunc(x, *args, **kwargs)
            if args or "out" in kwargs:
                return result
            r = np.asarray(result)
            if r.dtype not in (np.float32, np.float64):
                return result
            uint = np.uint32 if r.dtype == np.float32 else np.uint64
            x_bits = np.ascontiguousarray(
                np.broadcast_to(np.asarray(x, r.dtype), r.shape)
            )
            bits = x_bits.reshape(r.shape).view(uint).astype(np.uint64)
            with np.errstate(over="ignore"):
                draw = ((bits ^ _SALT) * _MIX) >> np.uint64(61)  # 0 … 7
            target = np.where(draw == 0, np.inf, np.where(draw == 1, -np.inf, r))
            moved = np.where(np.isfinite(r) & (r != 0), np.nextafter(r, target), r)
            moved = moved.astype(r.dtype)
            return moved if isinstance(result, np.ndarray) else moved[()]

    for _name in ("exp", "tanh", "log", "log1p", "expm1"):
        setattr(np, _name, _OneUlpOff(getattr(np, _name)))
