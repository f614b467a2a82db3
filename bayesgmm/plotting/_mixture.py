"""Plots of fitted mixtures: components, model selection, EM convergence, 1-D densities.

Every function draws on ``ax`` (a new figure from :func:`matplotlib.pyplot.subplots` only
when ``ax`` is None) and returns the Axes. Nothing here computes a density or a criterion
itself: the numbers come from the estimator, :mod:`bayesgmm.core` and the selection table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator
from sklearn.utils.validation import check_is_fitted

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import log_component_densities
from bayesgmm.core.params import GMMParams
from bayesgmm.plotting._mclust_style import mclust_style

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from bayesgmm.mixture import GaussianMixture
    from bayesgmm.selection import ModelSelection

__all__ = [
    "plot_components",
    "plot_convergence",
    "plot_density_1d",
    "plot_model_selection",
]

_CRITERIA = ("bic", "aic", "icl")


# -- small helpers ------------------------------------------------------------------------
def _get_ax(ax: Axes | None) -> Axes:
    """``ax`` itself, or the Axes of a new figure."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(layout="constrained")
    return ax


def _ellipse_geometry(covariance: np.ndarray, n_std: float) -> tuple[float, float, float]:
    """Width, height and angle of the ``n_std`` contour of a 2-D Gaussian.

    The contour ``(x - mu)^T Sigma^{-1} (x - mu) = n_std^2`` is an ellipse whose
    semi-axes are ``n_std * sqrt(lambda)`` along the eigenvectors of ``Sigma``.

    Parameters
    ----------
    covariance : ndarray of shape (2, 2)
        Symmetric positive semi-definite matrix.
    n_std : float
        Mahalanobis radius of the contour.

    Returns
    -------
    width : float
        Full length of the major axis, ``2 n_std sqrt(lambda_max)``.
    height : float
        Full length of the minor axis, ``2 n_std sqrt(lambda_min)``.
    angle : float
        Counter-clockwise angle of the major axis from the x axis, in degrees in
        ``[0, 180)`` (as :class:`matplotlib.patches.Ellipse` expects).

    Examples
    --------
    >>> import numpy as np
    >>> _ellipse_geometry(np.diag([4.0, 1.0]), 1.0)
    (4.0, 2.0, 0.0)
    >>> _ellipse_geometry(np.diag([1.0, 9.0]), 2.0)
    (12.0, 4.0, 90.0)
    """
    eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(covariance, dtype=float))
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # round-off on a singular matrix
    major = eigenvectors[:, 1]  # eigh sorts eigenvalues in ascending order
    angle = float(np.degrees(np.arctan2(major[1], major[0])) % 180.0)
    if np.isclose(angle, 180.0):
        angle = 0.0
    width = float(2.0 * n_std * np.sqrt(eigenvalues[1]))
    height = float(2.0 * n_std * np.sqrt(eigenvalues[0]))
    return width, height, angle


def _add_ellipse(ax, mean: np.ndarray, covariance: np.ndarray, n_std: float, **style) -> None:
    """Draw the ``n_std`` contour of a 2-D Gaussian (``style``: Ellipse keyword arguments)."""
    width, height, angle = _ellipse_geometry(covariance, n_std)
    ax.add_patch(
        Ellipse(
            xy=(mean[0], mean[1]),
            width=width,
            height=height,
            angle=angle,
            facecolor="none",
            **style,
        )
    )


def scatter_observed(ax, x, y, **kwargs):
    """``ax.scatter`` of the rows with both coordinates observed; a row missing one of
    them becomes a tick on the axis of the other (a rug), so no row vanishes silently.

    Per-point keyword arguments (arrays or lists with one entry per row, e.g. ``c``)
    are subset along with the points. A note in the corner counts the rows shown as
    ticks and the rows with neither coordinate. Returns the main ``PathCollection``.
    """
    from matplotlib.transforms import blended_transform_factory

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = x.size

    def subset(mask):
        out = {}
        for key, value in kwargs.items():
            if not isinstance(value, str) and np.ndim(value) >= 1 and len(value) == n:
                value = np.asarray(value)[mask] if np.ndim(value) == 1 else np.asarray(value)
                if isinstance(kwargs[key], list):
                    value = [kwargs[key][i] for i in np.flatnonzero(mask)]
            out[key] = value
        return out

    seen_x, seen_y = ~np.isnan(x), ~np.isnan(y)
    both = seen_x & seen_y
    collection = ax.scatter(x[both], y[both], **subset(both))
    rugs = (
        (seen_x & ~seen_y, "|", blended_transform_factory(ax.transData, ax.transAxes), 0),
        (~seen_x & seen_y, "_", blended_transform_factory(ax.transAxes, ax.transData), 1),
    )
    shown = 0
    for mask, marker, transform, axis in rugs:
        if not mask.any():
            continue
        shown += int(mask.sum())
        style = subset(mask)
        style.update(marker=marker, s=80, alpha=0.7, linewidths=1.0, clip_on=False)
        style.pop("edgecolors", None)
        coords = (x[mask], np.zeros(mask.sum())) if axis == 0 else (np.zeros(mask.sum()), y[mask])
        ax.scatter(*coords, transform=transform, **style)
    hidden = int((~seen_x & ~seen_y).sum())
    if shown or hidden:
        words = []
        if shown:
            words.append(f"{shown} row(s) missing one coordinate: ticks on the axes")
        if hidden:
            words.append(f"{hidden} missing both: not shown")
        ax.annotate(
            "; ".join(words),
            xy=(0.99, 0.01),
            xycoords="axes fraction",
            ha="right",
            va="bottom",
            fontsize="x-small",
            color="0.3",
        )
    return collection


def _mark_means(ax, means: np.ndarray, colors, zorder: int) -> None:
    """Component means (K, 2) as black-edged crosses in the components' colours."""
    ax.scatter(
        means[:, 0],
        means[:, 1],
        c=colors,
        marker="X",
        s=110,
        edgecolors="black",
        linewidths=1.0,
        zorder=zorder,
    )


def _component_colors(n_components: int) -> list:
    """One colour per component: the rc colour cycle, or a qualitative map if it is short."""
    cycle = mpl.rcParams["axes.prop_cycle"].by_key().get("color", [])
    if n_components <= len(cycle):
        return list(cycle[:n_components])
    if n_components <= 20:
        cmap = mpl.colormaps["tab20"]
        return [cmap(k) for k in range(n_components)]
    cmap = mpl.colormaps["turbo"]
    return [cmap(t) for t in np.linspace(0.0, 1.0, n_components)]


def _as_2d_array(X, n_features: int) -> np.ndarray:
    """``X`` as a float array of shape ``(N, n_features)``, with a clear error otherwise."""
    arr = np.asarray(X, dtype=float)
    if arr.ndim == 1 and n_features == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(
            f"X must have shape (n_samples, {n_features}) to match the model's "
            f"{n_features} feature(s); got shape {np.shape(X)}."
        )
    if arr.shape[0] == 0:
        raise ValueError("X has no samples; there is nothing to plot.")
    return arr


def _check_features(features, n_features: int) -> tuple[int, int]:
    """``features`` as two distinct valid column indices, with a clear error otherwise."""
    try:
        i, j = (int(f) for f in features)
    except (TypeError, ValueError):
        raise ValueError(
            f"features must be a pair of column indices, e.g. (0, 1); got {features!r}."
        ) from None
    if i == j or not (0 <= i < n_features and 0 <= j < n_features):
        raise ValueError(
            f"features must be two distinct column indices in [0, {n_features - 1}]; "
            f"got {features!r}."
        )
    return i, j


def _model_input(model: GaussianMixture, X, arr: np.ndarray):
    """Data in the form the model was fitted with, so scikit-learn's name checks agree.

    A model fitted with feature names gets a DataFrame (``X`` itself when it is one, so
    mismatched names are caught); a model fitted on an array gets the array.
    """
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return arr
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(arr, columns=names)


def _feature_names(model: GaussianMixture, X, feature_names, n_features: int) -> list[str]:
    """``feature_names``, else DataFrame columns, else the model's names, else ``x0, x1, ...``."""
    if feature_names is not None:
        names = [str(name) for name in feature_names]
        if len(names) != n_features:
            raise ValueError(
                f"feature_names must name all {n_features} features; got {len(names)}: {names}."
            )
        return names
    if isinstance(X, pd.DataFrame):
        return [str(name) for name in X.columns]
    fitted_names = getattr(model, "feature_names_in_", None)
    if fitted_names is not None:
        return [str(name) for name in fitted_names]
    return [f"x{i}" for i in range(n_features)]


def _full_covariances(model: GaussianMixture) -> np.ndarray:
    """The fitted covariances as full matrices, shape ``(K, D, D)``, whatever the type."""
    n_components, n_features = model.means_.shape
    cov_model = get_covariance_model(model.covariance_type)
    return cov_model.to_full(model.covariances_, n_components, n_features)


def _legend(ax: Axes, n_entries: int, **kwargs) -> None:
    """A legend inside the axes, or to their right when it is long enough to hide data."""
    if n_entries > 8:
        kwargs.update(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.legend(fontsize="small", framealpha=0.85, **kwargs)


def _model_title(model: GaussianMixture) -> str:
    mclust = get_covariance_model(model.covariance_type).mclust_name
    k = model.n_components
    return f"{k} component{'s' if k != 1 else ''}, {model.covariance_type} ({mclust})"


# -- public plots -------------------------------------------------------------------------
def plot_components(
    model: GaussianMixture,
    X,
    *,
    features: tuple[int, int] = (0, 1),
    n_std: float | Sequence[float] = (1.0, 2.0),
    ax: Axes | None = None,
    feature_names: Sequence[str] | None = None,
) -> Axes:
    r"""Scatter two features coloured by component, with the components' ellipses.

    Each point is coloured by its most probable component (``model.predict(X)``).
    For every component and every radius ``c`` in ``n_std`` the contour

    .. math:: (x - \mu_k)^T \Sigma_k^{-1} (x - \mu_k) = c^2

    of the component's 2-D marginal (mean ``mu_k[features]``, covariance
    ``Sigma_k[features][:, features]``) is drawn as a
    :class:`matplotlib.patches.Ellipse`; the means are marked with black-edged crosses.

    Parameters
    ----------
    model : GaussianMixture
        A fitted mixture with ``D >= 2`` features (any covariance type).
    X : array-like or DataFrame of shape (N, D)
        Data to scatter.
    features : tuple of two int, default=(0, 1)
        Column indices of the horizontal and vertical features.
    n_std : float or sequence of float, default=(1.0, 2.0)
        Mahalanobis radii of the ellipses drawn for each component.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when None.
    feature_names : sequence of str of length D, optional
        Axis labels; by default the DataFrame's columns, else the names the model
        was fitted with, else ``"x0", "x1", ...``.

    Returns
    -------
    matplotlib.axes.Axes
        The scatter is ``ax.collections[0]`` (N points), the means
        ``ax.collections[1]``; ``ax.patches`` holds ``K * len(n_std)`` ellipses.

    Raises
    ------
    ValueError
        If the model has one feature (use :func:`plot_density_1d`), if ``features``
        is not two distinct valid column indices, or if ``X`` has the wrong shape.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm.plotting import plot_components
    >>> X = load_faithful()
    >>> gm = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    >>> ax = plot_components(gm, X)
    >>> len(ax.patches)  # 3 components x 2 ellipses
    6
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('eruptions', 'waiting')
    >>> plt.close("all")
    """
    check_is_fitted(model)
    n_components, n_features = model.means_.shape
    if n_features == 1:
        raise ValueError(
            "plot_components needs at least 2 features, but the model was fitted on 1-D "
            "data; use plot_density_1d(model, X) to plot a 1-D mixture."
        )
    i, j = _check_features(features, n_features)
    radii = np.atleast_1d(np.asarray(n_std, dtype=float))
    if radii.ndim != 1 or radii.size == 0 or not np.all(np.isfinite(radii) & (radii > 0)):
        raise ValueError(f"n_std must be one or more positive numbers; got {n_std!r}.")
    arr = _as_2d_array(X, n_features)
    names = _feature_names(model, X, feature_names, n_features)

    labels = np.asarray(model.predict(_model_input(model, X, arr)))
    colors = _component_colors(n_components)
    idx = [i, j]
    means = model.means_[:, idx]
    covariances = _full_covariances(model)[:, idx][:, :, idx]

    ax = _get_ax(ax)
    scatter_observed(
        ax,
        arr[:, i],
        arr[:, j],
        c=[colors[k] for k in labels],
        s=14,
        alpha=0.6,
        edgecolors="none",
        zorder=2,
    )
    # Inner contours more opaque than outer ones.
    alphas = np.linspace(0.95, 0.45, radii.size) if radii.size > 1 else np.array([0.9])
    for k in range(n_components):
        for radius, alpha in zip(np.sort(radii), alphas, strict=True):
            _add_ellipse(
                ax,
                means[k],
                covariances[k],
                radius,
                edgecolor=colors[k],
                linewidth=1.6,
                alpha=float(alpha),
                zorder=3,
            )
    _mark_means(ax, means, colors, zorder=4)
    ax.autoscale_view()

    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="none",
            color=colors[k],
            label=f"component {k} (weight {model.weights_[k]:.2f})",
        )
        for k in range(n_components)
    ]
    radii_text = ", ".join(f"{r:g}" for r in np.sort(radii))
    handles.append(
        Line2D(
            [],
            [],
            marker="X",
            linestyle="none",
            markerfacecolor="white",
            markeredgecolor="black",
            markersize=9,
            label="means",
        )
    )
    handles.append(Line2D([], [], color="0.4", label=f"ellipses: {radii_text} sd"))
    _legend(ax, handles=handles, n_entries=len(handles))
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    ax.set_title(_model_title(model))
    return ax


def plot_model_selection(
    selection: ModelSelection | pd.DataFrame,
    *,
    criterion: str = "bic",
    mclust_sign: bool = False,
    loo: bool | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Axes | tuple[Axes, Axes]:
    """mclust-style plot of an information criterion against the number of components.

    mclust's ``plot.mclustBIC`` layout: one line of points joined by a solid line per
    covariance type over ``n_components`` (the table's order, as ``mclustBIC``'s
    columns), each family in mclust's symbol and colour (``mclust.options()``'s
    ``bicPlotSymbols`` and ``bicPlotColors``; see
    :data:`bayesgmm.plotting._mclust_style.MCLUST_BIC_STYLE`), a two-column legend
    when there are more than four lines, and a tick at every K. Lines are labelled
    with mclust's name, and scikit-learn's name first where the table uses it (e.g.
    ``"tied (EEE)"``). Fits that failed (NaN criterion) are gaps in their line. The
    best model is circled and annotated ("chosen" when ``criterion`` is the one the
    selection used). Lower is better, as the table; ``mclust_sign=True`` plots the
    negative (mclust's BIC and ICL, higher is better), as mclust does.

    When the table also has an ``elpd_loo`` column (PSIS-LOO expected log predictive
    density of the full posteriors, higher is better) with finite values, a second
    panel beside the first shows ``elpd_loo`` with ``+/- se_loo`` error bars per
    covariance type over ``n_components`` (NaN where LOO was not computed), the best
    model circled.

    Parameters
    ----------
    selection : ModelSelection or pandas.DataFrame
        Result of :func:`bayesgmm.select_model`, or a table with the columns
        ``n_components``, ``covariance_type`` and ``criterion`` (optionally
        ``elpd_loo`` and ``se_loo``).
    criterion : {'bic', 'aic', 'icl'}, default='bic'
        Column of the table to plot.
    mclust_sign : bool, default=False
        Plot minus the criterion (mclust's ``2 log L - p log n``, higher is better),
        with the legend in the lower right as mclust's.
    loo : bool, optional
        Draw the LOO panel. By default (None) it is drawn when the table has finite
        ``elpd_loo`` values and ``ax`` is None or a pair of Axes; True requires it
        (an error if there is no LOO or only one Axes); False never draws it.
    ax : matplotlib.axes.Axes or pair of Axes, optional
        Axes to draw on: one for the criterion, or two (criterion, LOO). A new
        figure (with two panels when LOO is drawn) is created when None.

    Returns
    -------
    matplotlib.axes.Axes or tuple of two Axes
        The criterion Axes alone when LOO is not drawn, else ``(criterion_ax,
        loo_ax)``. On ``criterion_ax``, ``ax.lines`` holds one line per covariance
        type (in the table's order), y-data the criterion (negated with
        ``mclust_sign``), and the chosen model's marker is ``ax.collections[0]``.
        On ``loo_ax``, ``loo_ax.containers`` holds one
        :class:`~matplotlib.container.ErrorbarContainer` per covariance type (same
        order and colours); its line's y-data are ``elpd_loo``, its x-data
        ``n_components`` shifted by a small dodge (at most +/- 0.1) so the error bars
        of different types do not overlap.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from bayesgmm import select_model
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm.plotting import plot_model_selection
    >>> sel = select_model(load_faithful(), range(1, 4), ["tied", "full"], random_state=0)
    >>> ax = plot_model_selection(sel)
    >>> [line.get_label() for line in ax.lines]
    ['tied (EEE)', 'full (VVV)']

    All fourteen of mclust's families, from mclust's start, in mclust's sign (its BIC
    plot), and ICL:

    >>> sel = select_model(load_faithful(), range(1, 4), "all", init_params="hc", n_init=1)
    >>> ax = plot_model_selection(sel, mclust_sign=True)
    >>> len(ax.lines), ax.get_ylabel()
    (14, 'BIC (mclust sign: higher is better)')
    >>> ax = plot_model_selection(sel, criterion="icl", mclust_sign=True)

    A table with LOO values (made up here) gets a second panel:

    >>> table = sel.table.assign(elpd_loo=-1130.0 + sel.table["n_components"], se_loo=9.0)
    >>> bic_ax, loo_ax = plot_model_selection(table)
    >>> loo_ax.get_ylabel()
    'ELPD-LOO (higher is better)'
    >>> plt.close("all")
    """
    if criterion not in _CRITERIA:
        raise ValueError(f"Unknown criterion {criterion!r}; expected one of {list(_CRITERIA)}.")
    table = getattr(selection, "table", selection)
    if not isinstance(table, pd.DataFrame):
        raise ValueError(
            "selection must be a ModelSelection or a DataFrame with columns n_components, "
            f"covariance_type and {criterion!r}; got {type(selection).__name__}."
        )
    missing = {"n_components", "covariance_type", criterion} - set(table.columns)
    if missing:
        raise ValueError(f"The model-selection table lacks the column(s) {sorted(missing)}.")
    values = table[criterion].to_numpy(dtype=float)
    if np.all(np.isnan(values)):
        raise ValueError(f"Every fit in the table failed; there is no {criterion} to plot.")

    has_loo = "elpd_loo" in table.columns and bool(
        np.isfinite(table["elpd_loo"].to_numpy(dtype=float)).any()
    )
    single_ax = ax is not None and not isinstance(ax, Sequence | np.ndarray)
    if loo and not has_loo:
        raise ValueError("loo=True, but the table has no finite 'elpd_loo' values.")
    if loo and single_ax:
        raise ValueError("loo=True needs two Axes: pass ax=(criterion_ax, loo_ax) or None.")
    draw_loo = has_loo and not single_ax if loo is None else bool(loo)

    if not draw_loo:
        crit_ax = _get_ax(ax if single_ax else (None if ax is None else np.ravel(ax)[0]))
        loo_ax = None
    elif ax is None:
        import matplotlib.pyplot as plt

        _, (crit_ax, loo_ax) = plt.subplots(1, 2, figsize=(12.0, 4.6), layout="constrained")
    else:
        crit_ax, loo_ax = np.ravel(ax)

    _plot_criterion(crit_ax, selection, table, criterion, values, mclust_sign)
    if loo_ax is None:
        return crit_ax
    _plot_loo(loo_ax, table)
    return crit_ax, loo_ax


def _covariance_label(cov: str) -> str:
    mclust = get_covariance_model(cov).mclust_name
    return mclust if cov == mclust else f"{cov} ({mclust})"


def _style(cov: str) -> dict:
    return mclust_style(get_covariance_model(cov).mclust_name)


def _plot_criterion(
    ax: Axes, selection, table: pd.DataFrame, criterion: str, values, mclust_sign: bool
) -> None:
    """The criterion panel of :func:`plot_model_selection`."""
    sign = -1.0 if mclust_sign else 1.0
    cov_types = list(pd.unique(table["covariance_type"]))
    for cov in cov_types:
        rows = table[table["covariance_type"] == cov].sort_values("n_components")
        ax.plot(
            rows["n_components"].to_numpy(),
            sign * rows[criterion].to_numpy(dtype=float),
            markersize=6,
            markeredgewidth=1.2,
            linewidth=1.2,
            label=_covariance_label(cov),
            **_style(cov),
        )

    best = table.iloc[int(np.nanargmin(values))]
    best_k, best_value = int(best["n_components"]), sign * float(best[criterion])
    ax.scatter(
        [best_k],
        [best_value],
        s=260,
        facecolors="none",
        edgecolors="black",
        linewidths=1.8,
        zorder=5,
    )
    # "chosen" only if this criterion is the one that picked selection.best_estimator.
    chosen = criterion == getattr(selection, "criterion", None)
    verb = "chosen" if chosen else f"{'highest' if mclust_sign else 'lowest'} {criterion.upper()}"
    _annotate_best(
        ax,
        table,
        best_k,
        best_value,
        f"{verb}: K={best_k}, {_covariance_label(str(best['covariance_type']))}\n"
        f"{criterion.upper()} = {best_value:.1f}",
        above=not mclust_sign,
    )
    ax.set_xticks(np.unique(table["n_components"].to_numpy()))
    ax.set_xlabel("number of components")
    if mclust_sign:
        ax.set_ylabel(f"{criterion.upper()} (mclust sign: higher is better)")
    else:
        ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_title(f"Model selection by {criterion.upper()}")
    ax.legend(
        title="covariance",
        fontsize="small",
        ncol=2 if len(cov_types) > 4 else 1,
        loc="lower right" if mclust_sign else "best",
    )
    ax.grid(alpha=0.3)


def _annotate_best(
    ax: Axes, table: pd.DataFrame, k: float, value: float, text: str, *, above: bool
) -> None:
    """An arrow and a boxed note at the best model, on the side with more room."""
    k_min, k_max = table["n_components"].min(), table["n_components"].max()
    right_half = k > (k_min + k_max) / 2
    ax.annotate(
        text,
        xy=(k, value),
        xytext=(-14 if right_half else 14, 28 if above else -28),
        textcoords="offset points",
        ha="right" if right_half else "left",
        va="bottom" if above else "top",
        fontsize="small",
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6", "alpha": 0.9},
        arrowprops={"arrowstyle": "->", "color": "black"},
        zorder=6,
    )


def _plot_loo(ax: Axes, table: pd.DataFrame) -> None:
    """The PSIS-LOO panel of :func:`plot_model_selection`: elpd_loo +/- se_loo over K."""
    cov_types = list(pd.unique(table["covariance_type"]))
    dodge = 0.2 / max(len(cov_types) - 1, 1)
    for n, cov in enumerate(cov_types):
        rows = table[table["covariance_type"] == cov].sort_values("n_components")
        elpd = rows["elpd_loo"].to_numpy(dtype=float)
        se = rows["se_loo"].to_numpy(dtype=float) if "se_loo" in rows.columns else None
        shift = (n - (len(cov_types) - 1) / 2) * dodge if len(cov_types) > 1 else 0.0
        ax.errorbar(
            rows["n_components"].to_numpy(dtype=float) + shift,
            elpd,
            yerr=se,
            markersize=6,
            markeredgewidth=1.2,
            linewidth=1.2,
            elinewidth=1.1,
            capsize=3,
            label=_covariance_label(cov),
            **_style(cov),
        )
    elpd_all = table["elpd_loo"].to_numpy(dtype=float)
    best = table.iloc[int(np.nanargmax(elpd_all))]
    best_k, best_value = int(best["n_components"]), float(best["elpd_loo"])
    n_best = cov_types.index(best["covariance_type"])
    x_best = best_k + ((n_best - (len(cov_types) - 1) / 2) * dodge if len(cov_types) > 1 else 0)
    ax.scatter(
        [x_best], [best_value], s=260, facecolors="none", edgecolors="black", linewidths=1.8
    )
    _annotate_best(
        ax,
        table,
        x_best,
        best_value,
        f"highest ELPD: K={best_k}, {_covariance_label(str(best['covariance_type']))}\n"
        f"ELPD-LOO = {best_value:.1f}",
        above=False,
    )
    k_all = table["n_components"].to_numpy(dtype=float)
    ax.set_xlim(k_all.min() - 0.35, k_all.max() + 0.35)  # the criterion panel's K range
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components")
    ax.set_ylabel("ELPD-LOO (higher is better)")
    ax.set_title("Posterior predictive fit by PSIS-LOO (+/- 1 se)")
    ax.legend(title="covariance", fontsize="small")
    ax.grid(alpha=0.3)


def plot_convergence(model: GaussianMixture, *, ax: Axes | None = None) -> Axes:
    """The EM objective at every iteration of the best start (``model.lower_bounds_``).

    The objective is the mean log-likelihood per sample, or for a MAP fit
    (``prior=`` given) ``(log-likelihood + log prior) / n``; EM never decreases it.

    Parameters
    ----------
    model : GaussianMixture
        A fitted mixture.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when None.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.lines[0]`` has x = iteration ``1..n_iter_`` and y = ``lower_bounds_``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm.plotting import plot_convergence
    >>> gm = GaussianMixture(2, random_state=0).fit(load_faithful())
    >>> ax = plot_convergence(gm)
    >>> len(ax.lines[0].get_ydata()) == gm.n_iter_
    True
    >>> plt.close("all")
    """
    check_is_fitted(model)
    history = np.asarray(model.lower_bounds_, dtype=float)
    if history.size == 0:
        raise ValueError("The model ran no EM iterations (max_iter=0); nothing to plot.")
    iterations = np.arange(1, history.size + 1)

    ax = _get_ax(ax)
    ax.plot(
        iterations,
        history,
        marker="o" if history.size <= 60 else None,
        markersize=3,
        linewidth=1.4,
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("EM iteration")
    if getattr(model, "prior_", None) is None:
        ax.set_ylabel("mean log-likelihood per sample")
    else:
        ax.set_ylabel("MAP objective: (log-likelihood + log prior) / n")
    state = "converged" if model.converged_ else "did not converge"
    ax.set_title(f"EM {state} after {history.size} iterations; {_model_title(model)}")
    ax.grid(alpha=0.3)
    return ax


def plot_density_1d(
    model: GaussianMixture, X, *, bins="auto", kde: bool = False, ax: Axes | None = None
) -> Axes:
    r"""Histogram of 1-D data with the mixture density and its weighted components.

    Draws ``K + 1`` lines on a grid that covers the data and ``mu_k +/- 4 sigma_k``
    of every component: the mixture density

    .. math:: p(x) = \sum_{k=1}^K \pi_k \, N(x \mid \mu_k, \sigma_k^2)

    (solid black, ``exp(model.score_samples(grid))``) and each term
    :math:`\pi_k N(x \mid \mu_k, \sigma_k^2)` (dashed), over a density histogram.
    With ``kde=True`` a model-free reference is added: a Gaussian kernel density
    estimate of the data (:class:`scipy.stats.gaussian_kde`, Scott's bandwidth).

    Parameters
    ----------
    model : GaussianMixture
        A fitted mixture with one feature.
    X : array-like or DataFrame of shape (N, 1) or (N,)
        Data for the histogram.
    bins : int, sequence or str, default='auto'
        Passed to :meth:`matplotlib.axes.Axes.hist`.
    kde : bool, default=False
        Also draw the kernel density estimate (dotted grey, labelled "KDE").
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when None.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.lines[0]`` is the mixture density, ``ax.lines[1:K + 1]`` the K
        components and, with ``kde=True``, ``ax.lines[K + 1]`` the KDE (same grid).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm.plotting import plot_density_1d
    >>> X = load_faithful()[["waiting"]]
    >>> gm = GaussianMixture(2, random_state=0).fit(X)
    >>> ax = plot_density_1d(gm, X)
    >>> len(ax.lines)  # the mixture and its 2 components
    3
    >>> ax = plot_density_1d(gm, X, kde=True)
    >>> ax.lines[-1].get_label()
    'KDE (Scott bandwidth)'
    >>> plt.close("all")
    """
    check_is_fitted(model)
    n_components, n_features = model.means_.shape
    if n_features != 1:
        raise ValueError(
            f"plot_density_1d needs a model of 1-D data; this one has {n_features} features. "
            "Use plot_components(model, X, features=(i, j)) for a pair of features."
        )
    arr = _as_2d_array(X, 1)
    name = _feature_names(model, X, None, 1)[0]

    x = arr[:, 0]
    sd = np.sqrt(_full_covariances(model)[:, 0, 0])
    mu = model.means_[:, 0]
    span = float(x.max() - x.min()) or 1.0
    lo = min(x.min() - 0.05 * span, float(np.min(mu - 4.0 * sd)))
    hi = max(x.max() + 0.05 * span, float(np.max(mu + 4.0 * sd)))
    grid = np.linspace(lo, hi, 1000)[:, None]
    mixture = np.exp(model.score_samples(_model_input(model, None, grid)))
    params = GMMParams(
        model.weights_, model.means_, model.covariances_, model.precisions_cholesky_
    )
    components = np.exp(log_component_densities(grid, params, model.covariance_type))

    ax = _get_ax(ax)
    ax.hist(x, bins=bins, density=True, color="0.82", edgecolor="white", label="data")
    ax.plot(grid[:, 0], mixture, color="black", linewidth=2.0, label="mixture", zorder=4)
    colors = _component_colors(n_components)
    for k in range(n_components):
        ax.plot(
            grid[:, 0],
            components[:, k],
            color=colors[k],
            linestyle="--",
            linewidth=1.5,
            label=f"component {k} (weight {model.weights_[k]:.2f})",
            zorder=3,
        )
    if kde:
        from scipy.stats import gaussian_kde

        if np.ptp(x) == 0:
            raise ValueError("kde=True needs data that are not all equal.")
        ax.plot(
            grid[:, 0],
            gaussian_kde(x)(grid[:, 0]),
            color="0.3",
            linestyle=":",
            linewidth=2.0,
            label="KDE (Scott bandwidth)",
            zorder=5,
        )
    ax.set_xlim(lo, hi)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(name)
    ax.set_ylabel("density")
    ax.set_title(_model_title(model))
    _legend(ax, n_entries=n_components + 2 + int(kde))
    return ax
