"""Figures the chapters share: heatmaps of Jacobians.

A Jacobian's pattern of zeros is the reason for the shape of its VJP: a diagonal
Jacobian gives an element-wise product, a Kronecker-structured one gives a
matrix product. These helpers draw that pattern.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from backprop._checks import as_real_array

__all__ = ["jacobian_heatmap", "jacobian_panels"]


def jacobian_heatmap(J, ax=None, title: str = "", xlabel: str = "", ylabel: str = ""):
    """Draw ``J`` as a diverging heatmap centred on zero, exact zeros shown white.

    Rows are outputs and columns inputs (numerator layout). Returns the image.
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
    jacobians, titles, xlabels=None, ylabel: str = "output entry", width: float = 3.0
):
    """Several Jacobians side by side, each with its shape in the title. Returns the figure."""
    jacobians = list(jacobians)
    titles = list(titles)
    if len(titles) != len(jacobians):
        raise ValueError(
            f"need one title per Jacobian: got {len(titles)} titles for {len(jacobians)} Jacobians"
        )
    xlabels = list(xlabels) if xlabels is not None else ["input entry"] * len(jacobians)
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
