"""Figures the chapters share: Jacobian heatmaps, training figures.

A Jacobian's pattern of zeros is the reason for the shape of its VJP: a
diagonal Jacobian gives an element-wise product, a Kronecker-structured one
gives a matrix product. These helpers draw that pattern.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from backprop._checks import as_real_array, check_batch

__all__ = [
    "jacobian_heatmap",
    "jacobian_panels",
    "plot_history",
    "plot_decision_boundary",
]


def jacobian_heatmap(
    J, ax=None, title: str = "", xlabel: str = "", ylabel: str = ""
):
    """Draw ``J`` as a diverging heatmap centred on 0, exact zeros white.

    Rows are outputs and columns inputs (numerator layout). Returns the
    image.
    """
    J = as_real_array("J", J, ndim=2)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    limit = float(np.max(np.abs(J))) or 1.0
    shown = np.ma.masked_where(J == 0.0, J)
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("white")
    image = ax.imshow(
        shown, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest"
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.6")
    return image


def jacobian_panels(
    jacobians,
    titles,
    xlabels=None,
    ylabel: str = "output entry",
    width: float = 3.0,
):
    """Several Jacobians side by side, their shapes in the titles."""
    jacobians = list(jacobians)
    titles = list(titles)
    if len(titles) != len(jacobians):
        raise ValueError(
            f"need one title per Jacobian: got {len(titles)} titles for "
            f"{len(jacobians)} Jacobians"
        )
    xlabels = (
        list(xlabels)
        if xlabels is not None
        else ["input entry"] * len(jacobians)
    )
    fig, axes = plt.subplots(
        1, len(jacobians), figsize=(width * len(jacobians), width + 0.4)
    )
    axes = np.atleast_1d(axes)
    for ax, J, title, xlabel in zip(axes, jacobians, titles, xlabels):
        J = np.asarray(J)
        jacobian_heatmap(
            J,
            ax=ax,
            title=f"{title}\n{J.shape[0]} × {J.shape[1]}",
            xlabel=xlabel,
            ylabel=ylabel,
        )
    fig.tight_layout()
    return fig


# -- training
# figures ------------------------------------------------------------------


def _history_curve(history, key: str) -> np.ndarray | None:
    if key not in history:
        return None
    try:
        curve = np.asarray(history[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"history[{key!r}] must be a sequence of numbers; got "
            f"{history[key]!r}"
        ) from None
    if curve.ndim != 1 or curve.size == 0:
        raise ValueError(
            f"history[{key!r}] must be a non-empty 1-D sequence, one number "
            f"per epoch; got shape {curve.shape}"
        )
    if not np.all(np.isfinite(curve)):
        raise ValueError(f"history[{key!r}] must be finite; got {curve}")
    return curve


def plot_history(
    history, axes=None, label: str | None = None, **line_kwargs
):
    """Loss and accuracy per epoch, from ``MLP.train``, on two panels.

    Parameters
    ----------
    history : mapping
        ``{"loss": [...], "accuracy": [...]}``, one finite number per epoch.
        ``"loss"`` is required; ``"accuracy"``, if present, must have the
        same length.
    axes : sequence of two matplotlib Axes, optional
        Where to draw (loss, accuracy). ``None`` makes a new figure with two
        panels. Pass the axes returned by a first call to draw a second model
        on top.
    label : str, optional
        Legend entry of the curves.
    **line_kwargs
        Passed to ``Axes.plot`` (colour, line style…).

    Returns
    -------
    numpy.ndarray
        The two Axes, loss on the left (log scale) and accuracy on the right.

    Raises
    ------
    ValueError
        If ``history`` has no ``"loss"``, holds non-finite or non-numeric
        values, if the two curves differ in length, or if ``axes`` is not two
        Axes.
    """
    if not hasattr(history, "keys") or "loss" not in history:
        raise ValueError(
            "history must be a mapping with a 'loss' entry, as returned by "
            f"MLP.train; got {type(history).__name__}"
        )
    loss = _history_curve(history, "loss")
    accuracy = _history_curve(history, "accuracy")
    if accuracy is not None and accuracy.size != loss.size:
        raise ValueError(
            f"history has {loss.size} loss values but {accuracy.size} "
            "accuracy values; need one of each per epoch"
        )
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
    axes = np.asarray(axes, dtype=object).reshape(-1)
    if axes.size != 2:
        raise ValueError(
            f"axes must be two Axes (loss, accuracy); got {axes.size}"
        )
    epochs = np.arange(1, loss.size + 1)
    axes[0].plot(epochs, loss, label=label, **line_kwargs)
    axes[0].set_yscale("log")
    axes[0].set(xlabel="epoch", ylabel="loss (mean cross-entropy)")
    if accuracy is not None:
        axes[1].plot(epochs, accuracy, label=label, **line_kwargs)
        axes[1].set_ylim(0.0, 1.02)
    axes[1].set(xlabel="epoch", ylabel="accuracy")
    for ax in axes:
        ax.grid(True, color="0.9")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return axes


def plot_decision_boundary(
    model,
    X,
    y,
    ax=None,
    resolution: int = 200,
    margin: float = 0.1,
    title: str = "",
):
    """Colour the plane by the class ``model`` predicts; draw the data.

    Parameters
    ----------
    model : object with ``predict``
        ``model.predict(P)`` maps points ``P`` of shape ``(N, 2)`` to ``N``
        integer classes (``MLP.predict`` does).
    X : array_like, shape (B, 2)
        Points in the plane, finite.
    y : array_like, shape (B,)
        Their integer labels, ``0 … n_classes − 1``.
    ax : matplotlib Axes, optional
        Where to draw; ``None`` makes a new figure.
    resolution : int
        Grid points per side, at least 2.
    margin : float
        Extra room around the data, as a fraction of its range; at least 0.
    title : str
        Panel title.

    Returns
    -------
    matplotlib.axes.Axes
        The panel drawn on. Neither ``X``, ``y`` nor the model is modified.

    Raises
    ------
    ValueError
        If ``X`` is not ``(B, 2)`` and finite, ``y`` is not ``B``
        non-negative integers, ``resolution`` or ``margin`` is out of range,
        or the model's predictions do not have one integer per grid point.
    """
    X = check_batch("X", X)
    if X.shape[1] != 2:
        raise ValueError(
            f"X must have 2 columns (points in the plane); got {X.shape}"
        )
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite")
    labels = np.asarray(y)
    if labels.shape != (X.shape[0],):
        raise ValueError(
            f"y must have shape ({X.shape[0]},), one label per row of X; "
            f"got {labels.shape}"
        )
    if labels.dtype.kind not in "iu" or np.any(labels < 0):
        raise ValueError(
            "y must hold non-negative integer labels; got dtype "
            f"{labels.dtype}"
        )
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int | np.integer)
        or resolution < 2
    ):
        raise ValueError(
            f"resolution must be an integer >= 2; got {resolution!r}"
        )
    margin = float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(
            f"margin must be a finite number >= 0; got {margin}"
        )
    if not callable(getattr(model, "predict", None)):
        raise ValueError(
            f"model must have a predict method; got {type(model).__name__}"
        )
    low, high = X.min(axis=0), X.max(axis=0)
    pad = margin * np.maximum(high - low, 1e-12)
    u = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    v = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    U, V = np.meshgrid(u, v)
    grid = np.column_stack([U.ravel(), V.ravel()])
    predicted = np.asarray(model.predict(grid))
    if (
        predicted.shape != (grid.shape[0],)
        or predicted.dtype.kind not in "iu"
    ):
        raise ValueError(
            f"model.predict must return {grid.shape[0]} integer classes for "
            f"a {grid.shape} grid; got shape {predicted.shape}, dtype "
            f"{predicted.dtype}"
        )
    n_classes = int(max(labels.max(), predicted.max())) + 1
    colours = plt.get_cmap("tab10").colors
    if n_classes > len(colours):
        raise ValueError(
            f"at most {len(colours)} classes can be drawn; got {n_classes}"
        )
    cmap = ListedColormap(colours[:n_classes])
    if ax is None:
        _, ax = plt.subplots(figsize=(4.0, 4.0))
    ax.pcolormesh(
        U,
        V,
        predicted.reshape(U.shape),
        cmap=cmap,
        vmin=-0.5,
        vmax=n_classes - 0.5,
        alpha=0.25,
        shading="auto",
    )
    ax.scatter(
        X[:, 0],
        X[:, 1],
        c=labels,
        cmap=cmap,
        vmin=-0.5,
        vmax=n_classes - 0.5,
        s=14,
        edgecolors="white",
        linewidths=0.4,
    )
    ax.set_aspect("equal")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title)
    return ax


def gc_step_size_panel(
    ax,
    hs,
    measured,
    eps: float,
    truncation=None,
    title: str = "",
    ylim=(1e-13, 10.0),
):
    """One panel of the error-versus-step figure of "Verifying gradients".

    ax: the axes to draw on.  hs: (m,) positive steps.
    measured: ``{"forward": (m,), "central": (m,)}`` (either or both), the
    measured relative errors, drawn as solid lines with small dots.
    eps: the machine epsilon of the precision that was measured.
    truncation: optional ``{"forward": C1, "central": C2}``; draws the
    truncation terms ``C1 h`` and ``C2 h²`` as dashed lines in the colour of
    their curve. Also drawn: the round-off term ``ε_mach/h`` (grey, dashed)
    and dotted vertical lines at the predicted best steps ``ε_mach^(1/2)``
    and ``ε_mach^(1/3)``; see eqs. ``gc-error-model``,
    ``gc-optimal-step``. Both axes are logarithmic. Returns ``ax``.
    """
    hs = as_real_array("hs", hs, ndim=1)
    # colour, truncation term's power of h, label of the predicted best step
    style = {
        "forward": ("C0", 1, "h = √ε_mach"),
        "central": ("C1", 2, "h = ∛ε_mach"),
    }
    truncation = {} if truncation is None else dict(truncation)
    for scheme, errors in measured.items():
        if scheme not in style:
            raise ValueError(
                f"schemes are 'forward' and 'central'; got {scheme!r}"
            )
        errors = as_real_array(scheme, errors, ndim=1)
        if errors.shape != hs.shape:
            raise ValueError(
                f"{scheme}: need one error per step, {hs.shape}; got "
                f"{errors.shape}"
            )
        colour, power, best = style[scheme]
        shown = np.maximum(errors, ylim[0])
        ax.loglog(hs, shown, ".-", ms=3, lw=1.2, color=colour, label=scheme)
        if scheme in truncation:
            label = "∝ h" if power == 1 else "∝ h²"
            line = truncation[scheme] * hs**power
            ax.loglog(hs, line, "--", lw=0.9, color=colour, label=label)
        ax.axvline(
            eps ** (1 / (power + 1)),
            ls=":",
            lw=1.2,
            color=colour,
            label=best,
        )
    ax.loglog(hs, eps / hs, "--", lw=0.9, color="0.5", label="ε_mach / h")
    ax.set_ylim(*ylim)
    ax.set_xlabel("step $h$")
    ax.set_ylabel("relative error of the gradient")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", color="0.9", lw=0.6)
    return ax


def plot_computational_graph(root, names, ax=None):
    """Draw the graph ``root`` was computed from, after its backward pass.

    root: a :class:`backprop.autodiff.Tensor` on which
    ``backward(retain_graph=True)`` has run, after ``retain_grad()`` on every
    tensor between the inputs and ``root``: the engine otherwise releases the
    graph and keeps ``.grad`` on the leaves only, as PyTorch does.
    names: ``{tensor: label}`` for the tensors to show; every tensor ``root``
    depends on must be named. Each node is drawn at the column of its longest
    path from an input and shows its name, the primitive that made it, its
    forward value and the gradient ``.grad`` that arrived at it
    (entries of single numbers, shapes otherwise). Each edge ``i → j``
    carries, in red, the part of ``.grad`` of ``i`` sent back along it,
    ``J_{j,i}ᵀ ḡ_j`` (eq. ``ad-reverse``). Returns ``ax``.
    """
    from backprop import autodiff as ad

    order = ad._topological_order(root)
    missing = [node for node in order if node not in names]
    if missing or root.grad is None:
        raise ValueError(
            "need a name for every node and "
            f"root.backward(retain_graph=True) run first; {len(missing)} "
            f"unnamed node(s), root.grad is {root.grad!r}"
        )
    depth: dict = {}
    for node in order:  # inputs first, so a node's parents have their depth
        depth[node] = 1 + max((depth[p] for p in node._parents), default=-1)
    columns: dict[int, list] = {}
    for node in order:
        columns.setdefault(depth[node], []).append(node)
    pos = {
        node: (d, (len(col) - 1) / 2 - i)
        for d, col in columns.items()
        for i, node in enumerate(col)
    }

    def shown(a):
        a = np.asarray(a)
        return f"{a.item():.3f}" if a.size == 1 else f"shape {a.shape}"

    if ax is None:
        _, ax = plt.subplots(figsize=(2.3 * (max(columns) + 1), 3.0))
    ys = [y for _, y in pos.values()]
    ax.set_xlim(-0.6, max(columns) + 0.6)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.9)
    to_screen, to_data = (
        ax.transData.transform,
        ax.transData.inverted().transform,
    )
    for node in order:
        if not node._parents:
            continue
        for parent, g in zip(node._parents, ad._pullback(node, node.grad)):
            start, end = np.array(pos[parent]), np.array(pos[node])
            # an edge that skips a column arcs away from the middle row
            bend = (
                0.0
                if end[0] - start[0] < 2
                else (-0.3 if start[1] >= 0 else 0.3)
            )
            ax.annotate(
                "",
                xy=end,
                xytext=start,
                arrowprops=dict(
                    arrowstyle="-|>",
                    color="0.55",
                    lw=1.0,
                    shrinkA=30,
                    shrinkB=44,
                    connectionstyle=f"arc3,rad={bend}",
                ),
            )
            # matplotlib's arc3 curve,
            p0, p2 = to_screen(start), to_screen(end)
            (dx, dy) = p2 - p0  # a quadratic Bézier, at its midpoint
            control = (p0 + p2) / 2 + bend * np.array([dy, -dx])
            mid = to_data(0.25 * p0 + 0.5 * control + 0.25 * p2)
            ax.annotate(
                shown(g),
                mid,
                xytext=(0, 6),
                textcoords="offset points",
                color="C3",
                fontsize=8,
                ha="center",
                va="bottom",
            )
    for node in order:
        made_by = ""
        if node._op:
            inputs = ", ".join(names[p] for p in node._parents)
            made_by = f" = {node._op}({inputs})"
        ax.text(
            *pos[node],
            f"{names[node]}{made_by}\nvalue {shown(node.value)}\ngrad "
            f"{shown(node.grad)}",
            ha="center",
            va="center",
            fontsize=8.5,
            linespacing=1.4,
            bbox=dict(
                boxstyle="round,pad=0.45", fc="#eef3fb", ec="C0", lw=1.0
            ),
        )
    ax.axis("off")
    return ax
