"""The forest plot of compare_estimates: MLE, MAP and the posterior, with four intervals.

Part of the uncertainty plots; see :mod:`bayesgmm.plotting`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

if TYPE_CHECKING:
    from matplotlib.axes import Axes


# -- point estimates vs posterior ---------------------------------------------------------
def _numeric(rows: pd.DataFrame, column: str) -> np.ndarray:
    if column not in rows.columns:
        return np.full(len(rows), np.nan)
    return rows[column].to_numpy(dtype=float)


#: Intervals drawn besides the credible and bootstrap ones: (column prefix, y offset,
#: colour, line style, legend label). Information: the Wald interval, next to the MLE;
#: Laplace: the Gaussian at the MAP, on the MAP's line.
_EXTRA_INTERVALS = (
    ("info", 0.40, "C4", "dashed", "Wald interval (observed information)"),
    ("laplace", -0.27, "C2", "solid", "Laplace interval"),
)


def _forest(ax: Axes, rows: pd.DataFrame, *, legend: bool) -> bool:
    """One forest panel: a row per table row, top to bottom in table order."""
    y = np.arange(len(rows), dtype=float)
    lo, hi = _numeric(rows, "ci_lower"), _numeric(rows, "ci_upper")
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.hlines(
        y[ok], lo[ok], hi[ok], colors="C0", linewidth=3.0, alpha=0.6, label="credible interval"
    )
    ax.plot(_numeric(rows, "post_mean"), y, "o", color="C0", markersize=5, label="posterior mean")
    mle_lo, mle_hi = _numeric(rows, "mle_lower"), _numeric(rows, "mle_upper")
    boot = np.isfinite(mle_lo) & np.isfinite(mle_hi)
    if boot.any():
        ax.hlines(
            y[boot] + 0.27,
            mle_lo[boot],
            mle_hi[boot],
            colors="C1",
            linewidth=1.2,
            label="MLE bootstrap interval",
        )
    for column, offset, color, style, label in _EXTRA_INTERVALS:
        lo_x, hi_x = _numeric(rows, f"{column}_lower"), _numeric(rows, f"{column}_upper")
        has = np.isfinite(lo_x) & np.isfinite(hi_x)
        if has.any():
            ax.hlines(
                y[has] + offset,
                lo_x[has],
                hi_x[has],
                colors=color,
                linewidth=1.2,
                linestyles=style,
                label=label,
            )
    mle = _numeric(rows, "mle")
    if np.isfinite(mle).any():
        ax.plot(
            mle,
            y + 0.27,
            "s",
            color="C1",
            markerfacecolor="white",
            markeredgewidth=1.4,
            markersize=5,
            label="MLE",
        )
    map_ = _numeric(rows, "map")
    if np.isfinite(map_).any():
        ax.plot(map_, y - 0.27, "D", color="C2", markersize=4.5, label="MAP")
    ax.set_yticks(y, [str(label) for label in rows["label"]])
    r_hat = _numeric(rows, "r_hat")
    for tick, value in zip(ax.get_yticklabels(), r_hat, strict=True):
        if value > 1.01:
            tick.set_color("C3")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    flagged = bool(np.any(r_hat > 1.01))
    if legend:
        ax.legend(handles=_forest_handles(ax, flagged), fontsize="small", framealpha=0.85)
    return flagged


def _forest_handles(ax: Axes, flagged: bool) -> list:
    handles = ax.get_legend_handles_labels()[0]
    if flagged:
        handles.append(Line2D([], [], linestyle="none", label="red label: R-hat > 1.01"))
    return handles


def plot_estimates(
    table: pd.DataFrame,
    *,
    parameters: Sequence[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Axes | list[Axes]:
    """Forest plot of MLE, MAP and posterior, one row per parameter element.

    For each row of the comparison table: the posterior credible interval
    (``ci_lower``..``ci_upper``, thick blue line) with the posterior mean (dot); the
    MLE (white square, just below) with its bootstrap interval (thin orange line)
    where ``mle_lower``/``mle_upper`` are finite; the MAP (green diamond, just
    above) with the Laplace interval (thin green line, ``laplace_lower``/
    ``laplace_upper``); the observed-information Wald interval (dashed purple line,
    ``info_lower``/``info_upper``, below the MLE). So all four uncertainty methods
    (NUTS, bootstrap, information, Laplace) show side by side. Row labels are the
    table's ``label``; a label in red flags ``r_hat > 1.01``. Parameters live on
    different scales (weights in [0, 1], covariances in squared data units), so each
    parameter group gets its own panel and x-axis.

    Parameters
    ----------
    table : pandas.DataFrame
        The comparison table: columns ``parameter``, ``label``, ``post_mean``,
        ``ci_lower``, ``ci_upper`` and, where available, ``mle``, ``mle_lower``,
        ``mle_upper``, ``map``, ``info_lower``, ``info_upper``, ``laplace_lower``,
        ``laplace_upper``, ``r_hat`` (missing columns or NaN entries are skipped).
    parameters : sequence of str, optional
        Parameter groups to show, in this order (e.g. ``["means"]``); all groups in
        the table's order by default.
    ax : matplotlib.axes.Axes or sequence of Axes, optional
        One Axes per group, or a single Axes to put every group on one x-axis
        (separated by horizontal lines). By default a new figure with one panel per
        group, its height growing with the number of rows.

    Returns
    -------
    matplotlib.axes.Axes or list of Axes
        The Axes when one Axes holds everything (one group, or a single ``ax``);
        otherwise the list of Axes, one per group, top to bottom. On each, the
        y-tick labels are the rows' labels (top to bottom) and the lines labelled
        "posterior mean", "MLE" and "MAP" have x-data equal to the ``post_mean``,
        ``mle`` and ``map`` columns.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import pandas as pd
    >>> from bayesgmm.plotting import plot_estimates
    >>> table = pd.DataFrame({
    ...     "parameter": ["weights", "weights", "means", "means"],
    ...     "label": ["weights[0]", "weights[1]", "means[0, x]", "means[1, x]"],
    ...     "mle": [0.3, 0.7, -2.1, 3.0], "mle_lower": [0.2, 0.6, -2.4, 2.8],
    ...     "mle_upper": [0.4, 0.8, -1.8, 3.2], "map": [0.31, 0.69, -2.0, 3.0],
    ...     "post_mean": [0.32, 0.68, -2.0, 2.9], "ci_lower": [0.22, 0.58, -2.3, 2.7],
    ...     "ci_upper": [0.42, 0.78, -1.7, 3.1]})
    >>> weights_ax, means_ax = plot_estimates(table)
    >>> [t.get_text() for t in means_ax.get_yticklabels()]
    ['means[0, x]', 'means[1, x]']
    >>> plt.close("all")
    """
    missing = {"parameter", "label", "post_mean", "ci_lower", "ci_upper"} - set(table.columns)
    if missing:
        raise ValueError(f"The comparison table lacks the column(s) {sorted(missing)}.")
    available = list(pd.unique(table["parameter"]))
    groups = available if parameters is None else [str(p) for p in parameters]
    unknown = [g for g in groups if g not in available]
    if unknown or not groups:
        raise ValueError(
            f"parameters must name groups of the table {available}; got {parameters!r}."
        )
    parts = [table[table["parameter"] == g] for g in groups]

    if ax is not None and not isinstance(ax, Sequence | np.ndarray):
        rows = pd.concat(parts)
        _forest(ax, rows, legend=True)
        bounds = np.cumsum([len(p) for p in parts])[:-1]
        for b in bounds:
            ax.axhline(b - 0.5, color="0.3", linewidth=0.8)
        ax.set_xlabel("value")
        ax.set_title("Estimates: MLE, MAP and posterior")
        return ax
    created = ax is None
    if created:
        import matplotlib.pyplot as plt

        n_rows = sum(len(p) for p in parts)
        _, axes = plt.subplots(
            len(parts),
            1,
            figsize=(7.5, min(1.8 + 0.9 * len(parts) + 0.3 * n_rows, 60.0)),
            height_ratios=[len(p) + 1.5 for p in parts],
            layout="constrained",
            squeeze=False,
        )
        axes = list(axes[:, 0])
    else:
        axes = list(np.ravel(ax))
        if len(axes) != len(parts):
            raise ValueError(f"Pass one Axes per parameter group ({len(parts)}); got {len(axes)}.")
    flagged = False
    for n, (group_ax, rows) in enumerate(zip(axes, parts, strict=True)):
        flagged |= _forest(group_ax, rows, legend=False)
        group_ax.set_title(groups[n], loc="left", fontsize="medium")
    figure = axes[0].get_figure()
    handles = _forest_handles(axes[0], flagged)
    if created:  # a figure of our own: legend below the panels, clear of the data
        figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small")
    else:
        axes[0].legend(handles=handles, fontsize="small", framealpha=0.85)
    figure.suptitle("Estimates: MLE, MAP and posterior")
    return axes[0] if len(axes) == 1 else axes
