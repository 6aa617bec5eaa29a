"""2-D max and average pooling (NCHW) and their VJPs.

As ``torch.nn.functional.max_pool2d`` and ``avg_pool2d``: ``X`` is
``(B, C_in, Ny, Nx)``, each channel is pooled on its own over ``kh × kw``
windows with stride ``(sh, sw)`` (by default the kernel size: windows that
tile the image) and padding ``(ph, pw)``. With ``Xp`` the padded input,

    Y[n, c, i, j] = max or mean over (p, q) of Xp[n, c, sh·i + p, sw·j + q],

of shape ``(B, C_in, Ni, Nj)``, ``Ni = (Ny + 2 ph − kh) // sh + 1``. The
max pads with −∞ (padding never wins), the average with zeros and divides
by ``kh·kw`` whatever the window covers (PyTorch's
``count_include_pad=True``). As PyTorch does, the padding may be at most
half the kernel, ``2 ph ≤ kh`` and ``2 pw ≤ kw``: then every window holds
at least one pixel of ``X``.

Both are built on the convolution's patches (:func:`backprop.conv.im2col`,
one ``kh × kw`` window per output pixel), and both VJPs end with
:func:`backprop.conv.col2im`, which adds each window's gradient back where
the window came from: overlapping windows add (a fan-out).

- The max *selects* one entry of its window, so its VJP scatters ``dY`` to
  that entry and nothing to the others (eq. ``pd-max-grad``). On ties the
  entry is the first in row-major order of the window, as PyTorch on CPU;
  each window chooses on its own, so one pixel may collect the gradient of
  several windows.
- The average is linear: a convolution with the constant kernel
  ``1/(kh·kw)`` on each channel alone (eq. ``pd-avg-conv``); its VJP
  spreads ``dY/(kh·kw)`` over the window (eq. ``pd-avg-grad``).

Every function checks its input and never modifies it.
"""

from __future__ import annotations

import numpy as np

from backprop._checks import as_real_array
from backprop.conv import _check_dY as _check_conv_dY
from backprop.conv import _output_size, _pair, col2im, im2col

__all__ = [
    "max_pool2d",
    "max_pool2d_vjp",
    "avg_pool2d",
    "avg_pool2d_vjp",
]


def _check_pool(X, kernel_size, stride, padding):
    """Check ``X`` (B, C_in, Ny, Nx) and the window; return them as pairs.

    ``stride=None`` means the kernel size. Refuses a padding of more than
    half the kernel (PyTorch's rule) and a window larger than the padded
    input.
    """
    X = as_real_array("X", X, ndim=4)
    kernel = _pair("kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _pair("stride", stride, 1)
    padding = _pair("padding", padding, 0)
    for k, p, name in zip(kernel, padding, ("height", "width")):
        if 2 * p > k:
            raise ValueError(
                f"padding must be at most half the kernel size; got "
                f"padding {padding} for kernel_size {kernel} (the {name})"
            )
    for axis, name in ((2, "height"), (3, "width")):
        padded = X.shape[axis] + 2 * padding[axis - 2]
        if kernel[axis - 2] > padded:
            raise ValueError(
                f"the kernel {name} {kernel[axis - 2]} exceeds the padded "
                f"input {name} {padded} (X has shape {X.shape}, padding "
                f"{padding})"
            )
    return X, kernel, stride, padding


def _padded(X, padding, value) -> np.ndarray:
    """``X`` with ``ph`` rows, ``pw`` columns of ``value`` on each side."""
    ph, pw = padding
    pads = ((0, 0), (0, 0), (ph, ph), (pw, pw))
    return np.pad(X, pads, constant_values=value)


def _windows(Xp, kernel, stride) -> np.ndarray:
    """The windows of ``Xp`` as ``(B, Ni, Nj, C_in, kh·kw)``, row-major."""
    P = im2col(Xp, *kernel, stride)
    return P.reshape(*P.shape[:4], -1)


def _check_dY(dY, X, kernel, stride, padding) -> np.ndarray:
    """dY of the shape of the pooled X: the convolution's output size."""
    Ni, Nj = _output_size(X.shape, (0, 0, *kernel), stride, padding)
    return _check_conv_dY(dY, (*X.shape[:2], Ni, Nj), of="the pooled X")


def _back_to_X(dW, X, kernel, stride, padding) -> np.ndarray:
    """Windows' gradients ``(B, Ni, Nj, C_in, kh·kw)`` added back into
    ``X``'s shape: col2im, then the padding cropped."""
    dP = dW.reshape(*dW.shape[:4], *kernel)
    (ph, pw), (Ny, Nx) = padding, X.shape[2:]
    padded_shape = (*X.shape[:2], Ny + 2 * ph, Nx + 2 * pw)
    dXp = col2im(dP, padded_shape, stride)
    return dXp[:, :, ph : ph + Ny, pw : pw + Nx]


# -- max pooling: a selection, and its adjoint, a scatter -----------------


def max_pool2d(X, kernel_size, stride=None, padding=0) -> np.ndarray:
    """The largest entry of each window, as ``F.max_pool2d``
    (eq. ``pd-max``).

    X: (B, C_in, Ny, Nx).  kernel_size, stride, padding: an int or a pair;
    ``stride=None`` is the kernel size; the padding is −∞ and at most half
    the kernel. Returns Y: (B, C_in, Ni, Nj), ``Ni = (Ny + 2 ph − kh) //
    sh + 1``, with ``Y[n, c, i, j] = max_{p, q} Xp[n, c, sh·i + p,
    sw·j + q]``.
    """
    X, kernel, stride, padding = _check_pool(X, kernel_size, stride, padding)
    windows = _windows(_padded(X, padding, -np.inf), kernel, stride)
    return windows.max(axis=-1).transpose(0, 3, 1, 2)


def max_pool2d_vjp(dY, X, kernel_size, stride=None, padding=0) -> np.ndarray:
    """Pull ``dY`` back through ``max_pool2d`` (eqs. ``pd-max-grad``,
    ``pd-scatter``).

    dY: (B, C_in, Ni, Nj), ∂E/∂Y.  X, kernel_size, stride, padding: as in
    the forward. Returns dX: (B, C_in, Ny, Nx). Each window sends its
    ``dY[n, c, i, j]`` to the one entry that won it, the first in
    row-major order of the window on a tie (``np.argmax``, as PyTorch on
    CPU), and zero to the rest; a pixel that wins several overlapping
    windows collects the sum.
    """
    X, kernel, stride, padding = _check_pool(X, kernel_size, stride, padding)
    dY = _check_dY(dY, X, kernel, stride, padding)
    windows = _windows(_padded(X, padding, -np.inf), kernel, stride)
    winner = windows.argmax(axis=-1)  # (B, Ni, Nj, C_in)
    # the one-hot of the winner, times the window's gradient
    onehot = winner[..., None] == np.arange(windows.shape[-1])
    dW = onehot * dY.transpose(0, 2, 3, 1)[..., None]
    return _back_to_X(dW.astype(dY.dtype), X, kernel, stride, padding)


def _max_pool2d_jvp(
    dX, X, kernel_size, stride=None, padding=0
) -> np.ndarray:
    """Forward mode: a selection's JVP is the same selection of the
    tangent, ``dX`` at each window's winner. dX: X's shape."""
    X, kernel, stride, padding = _check_pool(X, kernel_size, stride, padding)
    windows = _windows(_padded(X, padding, -np.inf), kernel, stride)
    dX = as_real_array("dX", dX, ndim=4)
    tangents = _windows(_padded(dX, padding, 0), kernel, stride)
    winner = windows.argmax(axis=-1)[..., None]
    picked = np.take_along_axis(tangents, winner, axis=-1)[..., 0]
    return picked.transpose(0, 3, 1, 2)


# -- average pooling: a convolution with a constant kernel ----------------


def avg_pool2d(X, kernel_size, stride=None, padding=0) -> np.ndarray:
    """The mean of each window, as ``F.avg_pool2d`` with
    ``count_include_pad=True`` (eq. ``pd-avg``).

    X: (B, C_in, Ny, Nx).  kernel_size, stride, padding: as in
    :func:`max_pool2d`, but the padding is zeros and counts in the mean:
    ``Y[n, c, i, j] = (1/(kh·kw)) Σ_{p, q} Xp[n, c, sh·i + p, sw·j + q]``,
    which is ``conv2d(X, W)`` with ``W[o, c] = [o = c]/(kh·kw)``
    (eq. ``pd-avg-conv``). Returns Y: (B, C_in, Ni, Nj).
    """
    X, kernel, stride, padding = _check_pool(X, kernel_size, stride, padding)
    windows = _windows(_padded(X, padding, 0), kernel, stride)
    return windows.mean(axis=-1).transpose(0, 3, 1, 2)


def avg_pool2d_vjp(dY, X, kernel_size, stride=None, padding=0) -> np.ndarray:
    """Pull ``dY`` back through ``avg_pool2d`` (eq. ``pd-avg-grad``).

    dY: (B, C_in, Ni, Nj).  X, kernel_size, stride, padding: as in the
    forward (only ``X``'s shape and dtype matter: the map is linear).
    Returns dX: (B, C_in, Ny, Nx). Each window spreads
    ``dY[n, c, i, j]/(kh·kw)`` evenly over its entries; overlapping windows
    add, and the part that fell on the padding is dropped.
    """
    X, kernel, stride, padding = _check_pool(X, kernel_size, stride, padding)
    dY = _check_dY(dY, X, kernel, stride, padding)
    size = kernel[0] * kernel[1]
    share = dY.transpose(0, 2, 3, 1)[..., None] / dY.dtype.type(size)
    dW = np.broadcast_to(share, (*share.shape[:4], size))
    return _back_to_X(dW, X, kernel, stride, padding)
