"""Input checks shared by the public functions.

Every public function refuses bad input with a ``ValueError`` that names what
it expected and what it got. The checks never modify their arguments: an
array that needs converting (a list, an integer array) is copied, never
changed in place.
"""

from __future__ import annotations

import numpy as np


def as_real_array(
    name: str, x, ndim: int | None = None, allow_empty: bool = False
) -> np.ndarray:
    """Return ``x`` as a floating ndarray; refuse what is not real numbers.

    float32 and float64 arrays come back as they are (not copied), so that a
    float32 network stays float32 end to end; integers and other floats
    become float64.

    name: how the argument is called in the message (``"A"``, ``"dZ"``).
    ndim: the rank required, or ``None`` for any rank of at least one.
    allow_empty: accept an array with no entries
    (a gradient of an empty lookup).
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(
            f"{name} must be an array of real numbers; got "
            f"{type(x).__name__} ({exc})"
        ) from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(
            f"{name} must have a real numeric dtype (integer or float); got "
            f"dtype {arr.dtype}"
        )
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D; got {arr.ndim}-D array of shape "
            f"{arr.shape}"
        )
    if ndim is None and arr.ndim == 0:
        raise ValueError(
            f"{name} must be an array with at least one axis; got a scalar"
        )
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}")
    if arr.dtype in (np.float32, np.float64):
        return arr
    return arr.astype(np.float64)


def check_batch(name: str, x) -> np.ndarray:
    """A 2-D batch ``(B, n)``, ``B, n >= 1``; one row an example."""
    arr = as_real_array(name, x)
    if arr.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D (batch, features); got 1-D shape "
            f"{arr.shape}. For a single example pass {name}[None, :], of "
            f"shape (1, {arr.shape[0]})"
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D; got {arr.ndim}-D array of shape "
            f"{arr.shape}"
        )
    return arr


def check_same_shape(
    name_a: str, a: np.ndarray, name_b: str, b: np.ndarray
) -> None:
    """Refuse arrays of different shapes (a gradient has its variable's)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} must have the shape of {name_b}, {b.shape}; got "
            f"{a.shape}"
        )


def positive_int(name: str, value) -> int:
    """A count (a size, a number of copies, of epochs): an integer ≥ 1."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or value < 1
    ):
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)
