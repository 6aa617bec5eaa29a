"""2-D convolution (a cross-correlation, as in deep learning) and its VJP.

Layout NCHW, as in PyTorch: ``X`` is ``(B, C_in, Ny, Nx)``, the kernel
``W`` is ``(C_out, C_in, kh, kw)``, the bias ``b`` is ``(C_out,)``. With
stride ``(sh, sw)`` and zero padding ``(ph, pw)``, ``Xp`` is ``X`` with
``ph`` zero rows above and below and ``pw`` zero columns left and right,
and

    Y[n, o, i, j] = Σ_{c, p, q} Xp[n, c, sh·i + p, sw·j + q]
                                · W[o, c, p, q] + b[o],

of shape ``(B, C_out, Ni, Nj)`` with ``Ni = (Ny + 2 ph − kh) // sh + 1``
(and the same for the width). No kernel flip: this is what
``torch.nn.functional.conv2d`` computes.

The gradients, with ``dY = ∂E/∂Y``:

- ``dW[o, c, p, q] = Σ_{n, i, j} dY[n, o, i, j] · Xp[n, c, sh·i + p,
  sw·j + q]``, a correlation of the padded input with ``dY``;
- ``db[o] = Σ_{n, i, j} dY[n, o, i, j]``;
- ``dX``: each input pixel collects ``dY · W`` from every window that
  contains it. That is a *full* convolution of the stride-dilated ``dY`` with
  the kernel flipped in both spatial axes and with its two channel axes
  swapped, a transposed convolution (:func:`conv2d_transpose`).

The package computes all three through patches: :func:`im2col` cuts ``Xp``
into one ``C_in × kh × kw`` patch per output pixel, the convolution is then a
linear layer applied to the patches, and the VJP is the linear layer's rule
followed by :func:`col2im`, which adds each patch's gradient back where the
patch came from (fan-out: overlapping patches add). Every function checks its
input and never modifies it.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from backprop._checks import as_real_array

__all__ = [
    "im2col",
    "col2im",
    "dilate",
    "conv2d",
    "conv2d_vjp",
    "conv2d_transpose",
    "conv2d_matrix",
]


# -- argument
# checks -------------------------------------------------------------------


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each ≥ ``minimum``, as ``(v_h, v_w)``."""
    pair = (
        (value, value)
        if not isinstance(value, tuple | list)
        else tuple(value)
    )
    kind = "positive" if minimum == 1 else "non-negative"
    ok = len(pair) == 2 and all(
        isinstance(v, int | np.integer)
        and not isinstance(v, bool)
        and v >= minimum
        for v in pair
    )
    if not ok:
        raise ValueError(
            f"{name} must be a {kind} integer or a pair of {kind} integers; "
            f"got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def _check_conv(X, W, stride, padding):
    """Check ``X`` (B, C_in, Ny, Nx), ``W`` (C_out, C_in, kh, kw), stride,
    padding."""
    X = as_real_array("X", X, ndim=4)
    W = as_real_array("W", W, ndim=4)
    stride = _pair("stride", stride, 1)
    padding = _pair("padding", padding, 0)
    if W.shape[1] != X.shape[1]:
        raise ValueError(
            f"W has shape {W.shape}, so it expects {W.shape[1]} input "
            f"channels, but X has shape {X.shape}, with {X.shape[1]} "
            "channels"
        )
    for axis, name in ((2, "height"), (3, "width")):
        padded = X.shape[axis] + 2 * padding[axis - 2]
        if W.shape[axis] > padded:
            raise ValueError(
                f"the kernel {name} {W.shape[axis]} exceeds the padded "
                f"input {name} {padded} (X has shape {X.shape}, padding "
                f"{padding})"
            )
    return X, W, stride, padding


def _output_size(X_shape, W_shape, stride, padding) -> tuple[int, int]:
    """``(Ni, Nj)`` with ``Ni = (Ny + 2 ph − kh) // sh + 1``."""
    return tuple(
        (X_shape[a] + 2 * padding[a - 2] - W_shape[a]) // stride[a - 2] + 1
        for a in (2, 3)
    )


def _pad(X: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """``X`` with ``ph`` zero rows above, below, ``pw`` columns each side."""
    ph, pw = padding
    return np.pad(X, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _check_dY(
    dY, expected: tuple[int, ...], of: str = "Y = conv2d(X, W)"
) -> np.ndarray:
    """dY as a 4-D float array of the ``expected`` shape, that of ``of``."""
    dY = as_real_array("dY", dY, ndim=4)
    if dY.shape != expected:
        raise ValueError(
            f"dY must have the shape of {of}, {expected}; got {dY.shape}"
        )
    return dY


# --
# patches -------------------------------------------------------------------


def im2col(Xp, kh: int, kw: int, stride=1) -> np.ndarray:
    """The ``kh × kw`` patches of an (already padded) input, one a pixel out.

    The patch matrix of the im2col view (eq. ``conv-im2col``).

    Xp: (B, C_in, Ny + 2 ph, Nx + 2 pw), the padded input.  kh, kw: kernel
    size.  stride: an int or ``(sh, sw)``. Returns P: (B, Ni, Nj, C_in, kh,
    kw), a read-only view of ``Xp`` (nothing is copied) with

        P[n, i, j, c, p, q] = Xp[n, c, sh·i + p, sw·j + q].

    ``P.reshape(B·Ni·Nj, C_in·kh·kw)`` is the patch matrix of the im2col
    view: one row per output pixel, and the convolution is a linear layer
    applied to its rows.
    """
    Xp = as_real_array("Xp", Xp, ndim=4)
    kh = _pair("kh", kh, 1)[0]
    kw = _pair("kw", kw, 1)[0]
    sh, sw = _pair("stride", stride, 1)
    if kh > Xp.shape[2] or kw > Xp.shape[3]:
        raise ValueError(
            f"a {kh} × {kw} kernel does not fit in Xp of shape {Xp.shape}"
        )
    # (B, C_in, ., ., kh, kw)
    windows = sliding_window_view(Xp, (kh, kw), axis=(2, 3))
    return windows[:, :, ::sh, ::sw].transpose(0, 2, 3, 1, 4, 5)


def col2im(
    dP, padded_shape: tuple[int, int, int, int], stride=1
) -> np.ndarray:
    """Adjoint of :func:`im2col`: each patch's gradient added back in place.

    The last step of eq. ``conv-col2im``.

    dP: (B, Ni, Nj, C_in, kh, kw), a gradient for the patches.
    padded_shape: ``(B, C_in, Ny + 2 ph, Nx + 2 pw)``, the shape of ``Xp``.
    stride: int or ``(sh, sw)``. Returns dXp: (B, C_in, Ny + 2 ph,
    Nx + 2 pw) with

        dXp[n, c, y, x] = Σ over (i, j, p, q) with sh·i + p = y, sw·j + q = x
                          of dP[n, i, j, c, p, q].

    A pixel inside several patches was handed to each of them (a fan-out), so
    its gradient is the sum of theirs; a pixel that no window reaches gets
    zero.
    """
    dP = as_real_array("dP", dP, ndim=6)
    sh, sw = _pair("stride", stride, 1)
    B, Ni, Nj, C_in, kh, kw = dP.shape
    shape = tuple(padded_shape)
    expected_ok = (
        len(shape) == 4
        and shape[:2] == (B, C_in)
        and (shape[2] - kh) // sh + 1 == Ni
        and (shape[3] - kw) // sw + 1 == Nj
        and shape[2] >= kh
        and shape[3] >= kw
    )
    if not expected_ok:
        raise ValueError(
            f"dP of shape {dP.shape} cannot come from im2col of an input of "
            f"shape {shape} with stride {(sh, sw)}"
        )
    dXp = np.zeros(shape, dtype=dP.dtype)
    # one kernel offset at a time: a strided slice of dXp
    for p in range(kh):
        for q in range(kw):
            rows = slice(p, p + sh * (Ni - 1) + 1, sh)
            cols = slice(q, q + sw * (Nj - 1) + 1, sw)
            dXp[:, :, rows, cols] += dP[:, :, :, :, p, q].transpose(
                0, 3, 1, 2
            )
    return dXp


def dilate(Y, stride=1) -> np.ndarray:
    """Put ``sh − 1`` zero rows and ``sw − 1`` zero columns between ``Y``'s.

    Y: (B, C_out, Ni, Nj). Returns
    (B, C_out, sh·(Ni − 1) + 1, sw·(Nj − 1) + 1) with
    ``D[:, :, sh·i, sw·j] = Y[:, :, i, j]`` and zeros elsewhere: output pixel
    ``(i, j)`` moved to where its window starts in the input. Its adjoint
    keeps every ``sh``-th row and ``sw``-th column, ``D[:, :, ::sh, ::sw]``.
    """
    Y = as_real_array("Y", Y, ndim=4)
    sh, sw = _pair("stride", stride, 1)
    B, C_out, Ni, Nj = Y.shape
    shape = (B, C_out, sh * (Ni - 1) + 1, sw * (Nj - 1) + 1)
    D = np.zeros(shape, dtype=Y.dtype)
    D[:, :, ::sh, ::sw] = Y
    return D


# -- the convolution and its
# VJP -------------------------------------------------------


def conv2d(X, W, b=None, stride=1, padding=0) -> np.ndarray:
    """2-D cross-correlation, NCHW, as ``torch.nn.functional.conv2d``.

    Implements eqs. ``conv-forward``, ``conv-im2col``.

    X: (B, C_in, Ny, Nx).  W: (C_out, C_in, kh, kw).  b: (C_out,) or ``None``
    for no bias. stride, padding: an int or a pair ``(sh, sw)``,
    ``(ph, pw)``; zero padding. Returns Y: (B, C_out, Ni, Nj),
    ``Ni = (Ny + 2 ph − kh) // sh + 1``, with

        Y[n, o, i, j] = Σ_{c, p, q} Xp[n, c, sh·i + p, sw·j + q]
                                    · W[o, c, p, q] + b[o],

    computed as ``einsum('nijcpq,ocpq->noij', im2col(Xp), W)``: every output
    pixel is the dot product of its patch with each kernel.
    """
    X, W, stride, padding = _check_conv(X, W, stride, padding)
    if b is not None:
        b = as_real_array("b", b, ndim=1)
        if b.shape != (W.shape[0],):
            raise ValueError(
                f"b must have shape ({W.shape[0]},), one entry per output "
                f"channel of W {W.shape}; got {b.shape}"
            )
    P = im2col(_pad(X, padding), W.shape[2], W.shape[3], stride)
    Y = np.einsum("nijcpq,ocpq->noij", P, W)
    return Y if b is None else Y + b[:, None, None]


def conv2d_vjp(
    dY, X, W, stride=1, padding=0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pull ``dY`` back through ``Y = conv2d(X, W, b, stride, padding)``.

    Implements eqs. ``conv-col2im``, ``conv-grad-x-comp``, ``conv-grad-w``,
    ``conv-grad-b``.

    dY: (B, C_out, Ni, Nj), ∂E/∂Y.  X: (B, C_in, Ny, Nx).
    W: (C_out, C_in, kh, kw).
    Returns ``(dX, dW, db)`` with the shapes of ``X``, ``W`` and ``(C_out,)``
    (``db`` is returned even if the forward had no bias). With
    ``P = im2col(Xp)``:

    - ``dW = einsum('noij,nijcpq->ocpq', dY, P)``: the correlation of the
      padded input with ``dY``, the linear layer's ``dZᵀ A`` summed over
      every output pixel;
    - ``db = dY.sum(axis=(0, 2, 3))``;
    - ``dP = einsum('noij,ocpq->nijcpq', dY, W)``, the linear layer's
      ``dZ W`` for each patch, then ``dX = crop(col2im(dP))``: overlapping
      patches add. This equals
      :func:`conv2d_transpose`, the full convolution of the dilated ``dY``
      with the flipped, channel-swapped kernel.

    Row ``y`` of ``Xp`` gets zero gradient iff no window covers it: no output
    row ``i`` has ``sh·i ≤ y ≤ sh·i + kh − 1``. That is a row in a gap
    between windows
    (``y mod sh ≥ kh``, possible only when ``sh > kh``: a 1 × 1 kernel with
    stride 2 skips every other row) or below the last window
    (``y ≥ sh·(Ni − 1) + kh``). The same holds for columns.
    """
    X, W, stride, padding = _check_conv(X, W, stride, padding)
    Ni, Nj = _output_size(X.shape, W.shape, stride, padding)
    dY = _check_dY(dY, (X.shape[0], W.shape[0], Ni, Nj))
    Xp = _pad(X, padding)
    P = im2col(Xp, W.shape[2], W.shape[3], stride)
    dW = np.einsum("noij,nijcpq->ocpq", dY, P)
    db = dY.sum(axis=(0, 2, 3))
    dP = np.einsum("noij,ocpq->nijcpq", dY, W)
    dXp = col2im(dP, Xp.shape, stride)
    (ph, pw), (Ny, Nx) = padding, X.shape[2:]
    return dXp[:, :, ph : ph + Ny, pw : pw + Nx], dW, db


def conv2d_transpose(
    dY, W, stride=1, padding=0, input_size=None
) -> np.ndarray:
    """``dX`` of a convolution, as a convolution: the transposed convolution.

    Implements eqs. ``conv-grad-x``, ``conv-adjoint``.

    dY: (B, C_out, Ni, Nj).  W: (C_out, C_in, kh, kw), the forward kernel.
    stride, padding: those of the forward.  input_size: ``(Ny, Nx)`` of the
    forward input; by default the smallest, ``(Ni − 1)·sh + kh − 2 ph``
    (a larger one, by less than the stride, leaves rows that no window
    reached). Returns dX: (B, C_in, Ny, Nx), equal to
    ``conv2d_vjp(dY, X, W, ...)[0]``, in four steps:

    1. dilate ``dY`` by the stride (:func:`dilate`);
    2. pad it with ``kh − 1`` rows and ``kw − 1`` columns of zeros on every
       side;
    3. correlate (``conv2d``, stride 1) with
       ``W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)``, the kernel flipped in
       both spatial axes with in and out channels swapped; this gives the
       gradient of the part of ``Xp`` the windows covered;
    4. add zero rows/columns below and right of the last window, then crop
       the padding.
    """
    dY = as_real_array("dY", dY, ndim=4)
    W = as_real_array("W", W, ndim=4)
    (sh, sw), (ph, pw) = (
        _pair("stride", stride, 1),
        _pair("padding", padding, 0),
    )
    B, C_out, Ni, Nj = dY.shape
    _, C_in, kh, kw = W.shape
    if C_out != W.shape[0]:
        raise ValueError(
            f"dY has {C_out} channels but W has shape {W.shape}, with "
            f"{W.shape[0]} output channels"
        )
    if input_size is None:
        input_size = (
            (Ni - 1) * sh + kh - 2 * ph,
            (Nj - 1) * sw + kw - 2 * pw,
        )
    Ny, Nx = _pair("input_size", input_size, 1)
    X_shape = (B, C_in, Ny, Nx)
    if (
        Ny + 2 * ph < kh
        or Nx + 2 * pw < kw
        or _output_size(X_shape, W.shape, (sh, sw), (ph, pw)) != (Ni, Nj)
    ):
        raise ValueError(
            f"dY of shape {dY.shape} cannot be the output of a convolution "
            f"of an input of size {(Ny, Nx)} with W {W.shape}, stride "
            f"{(sh, sw)}, padding {(ph, pw)}"
        )
    full = _pad(dilate(dY, (sh, sw)), (kh - 1, kw - 1))  # steps 1 and 2
    # (C_in, C_out, kh, kw)
    flipped = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    # step 3: (B, C_in, (Ni−1)·sh + kh, (Nj−1)·sw + kw)
    dXp = conv2d(full, flipped)
    unreached = ((0, 0), (0, 0), (0, Ny + 2 * ph - dXp.shape[2]))
    # step 4
    dXp = np.pad(dXp, (*unreached, (0, Nx + 2 * pw - dXp.shape[3])))
    return dXp[:, :, ph : ph + Ny, pw : pw + Nx]


def conv2d_matrix(W, input_size, stride=1, padding=0) -> np.ndarray:
    """The matrix of ``x ↦ conv2d(x, W)`` for one example, without bias.

    The ``T`` of eq. ``conv-jacobian``.

    W: (C_out, C_in, kh, kw).  input_size: ``(Ny, Nx)``.  stride, padding:
    as in conv2d. Returns T: (C_out·Ni·Nj, C_in·Ny·Nx), numerator layout,
    both sides flattened in row-major (reading) order, so
    ``T @ x.ravel() = conv2d(x[None], W).ravel()`` and ``Tᵀ @ dy.ravel()`` is
    ``dX``. For ``C_in = C_out = 1`` and stride 1 it is doubly block
    Toeplitz: one block per (output row, input row), constant along block
    diagonals, each block Toeplitz. Built column by column from unit
    inputs; for looking at small cases only.
    """
    W = as_real_array("W", W, ndim=4)
    Ny, Nx = _pair("input_size", input_size, 1)
    C_in = W.shape[1]
    basis = np.eye(C_in * Ny * Nx, dtype=W.dtype).reshape(
        C_in * Ny * Nx, C_in, Ny, Nx
    )
    # one unit input per "batch" entry
    Y = conv2d(basis, W, None, stride, padding)
    return Y.reshape(C_in * Ny * Nx, -1).T
