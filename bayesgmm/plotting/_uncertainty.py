"""Plots of uncertainty: posterior ellipses, memberships, estimates, prior vs posterior.

These plots show what a point estimate hides: the spread of the posterior draws of a
:class:`~bayesgmm.bayes.PosteriorGaussianMixture` (relabelled to its MAP fit), how certain
each point's membership is, and how the MLE, the MAP and the posterior compare element by
element. As everywhere in :mod:`bayesgmm.plotting`, every function draws on ``ax`` (a new
figure only when ``ax`` is None) and returns what it drew; the numbers come from the
estimators and the comparison tables, never from here.

The posterior is read duck-typed: ``idata_["posterior"]`` with the relabelled draws
``weights`` (chain, draw, component), ``means`` (chain, draw, component, feature) and
``covariances`` (chain, draw, *dims of the covariance type), plus ``map_``,
``covariance_type``, ``n_components``, ``prior_``, ``predict_proba`` and
``membership_interval``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy.stats import gaussian_kde

from bayesgmm._intervals import check_prob, level_label
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.plotting._mixture import (
    _add_ellipse,
    _as_2d_array,
    _check_features,
    _component_colors,
    _feature_names,
    _full_covariances,
    _get_ax,
    _legend,
    _mark_means,
    _model_input,
    scatter_observed,
)

if TYPE_CHECKING:
    from arviz_plots import PlotCollection
    from matplotlib.axes import Axes

    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.mixture import GaussianMixture

__all__ = [
    "plot_co_clustering",
    "plot_estimates",
    "plot_membership",
    "plot_membership_intervals",
    "plot_posterior_ellipses",
    "plot_prior_posterior",
    "plot_sampler_diagnostics",
]

_PARAMETERS = ("weights", "means", "covariances")
_SAMPLE_DIMS = ("chain", "draw")


# -- helpers ------------------------------------------------------------------------------
def _posterior_dataset(posterior):
    """The relabelled draws as an :class:`xarray.Dataset` (from a DataTree node or not)."""
    node = posterior.idata_["posterior"]
    return node.to_dataset() if hasattr(node, "to_dataset") else node


def _thin_index(n_samples: int, max_draws: int | None) -> np.ndarray:
    """Evenly spaced draw indices (all of them when there are at most ``max_draws``)."""
    if max_draws is None or n_samples <= max_draws:
        return np.arange(n_samples)
    return np.unique(np.linspace(0, n_samples - 1, max_draws).round().astype(int))


def _stacked(da) -> np.ndarray:
    """Draws of one variable as an array with the (chain, draw) axes merged first."""
    return da.stack(sample=_SAMPLE_DIMS).transpose("sample", ...).values


def _posterior_means_and_covariances(
    posterior, max_draws: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Thinned draws of the means ``(S, K, D)`` and full covariances ``(S, K, D, D)``."""
    ds = _posterior_dataset(posterior)
    means = _stacked(ds["means"])
    covariances = _stacked(ds["covariances"])
    index = _thin_index(means.shape[0], max_draws)
    n_components, n_features = means.shape[1:]
    cov_model = get_covariance_model(posterior.covariance_type)
    full = np.stack([cov_model.to_full(covariances[s], n_components, n_features) for s in index])
    return means[index], full


def _n_features(model) -> int:
    """D of a GaussianMixture (``means_``) or a posterior (its MAP fit's ``means_``)."""
    means = getattr(model, "means_", None)
    if means is None:
        means = getattr(getattr(model, "map_", None), "means_", None)
    if means is None:
        raise ValueError(
            f"This {type(model).__name__} is not fitted yet (it has no means_); call fit first."
        )
    return int(np.shape(means)[1])


def _check_posterior(posterior) -> None:
    """A clear error for an unfitted posterior or an object that is not one."""
    if not (hasattr(posterior, "idata_") and hasattr(posterior, "map_")):
        raise ValueError(
            "Expected a fitted PosteriorGaussianMixture (with idata_ and map_); got "
            f"{type(posterior).__name__} without them. Call fit first."
        )


def _colorbar(ax: Axes, mappable, label: str):
    return ax.get_figure().colorbar(mappable, ax=ax, label=label, fraction=0.05, pad=0.02)


# -- posterior ellipses -------------------------------------------------------------------
def plot_posterior_ellipses(
    posterior: PosteriorGaussianMixture,
    X,
    *,
    features: tuple[int, int] = (0, 1),
    n_draws: int = 40,
    n_std: float = 2.0,
    mle: GaussianMixture | None = None,
    ax: Axes | None = None,
) -> Axes:
    r"""Posterior uncertainty of the components: ellipses of many posterior draws.

    Over a grey scatter of two features of ``X``, for each of ``n_draws`` evenly
    spaced (relabelled) posterior draws and each component ``k`` the contour

    .. math:: (x - \mu_k)^T \Sigma_k^{-1} (x - \mu_k) = c^2, \quad c = \text{n\_std}

    of the component's 2-D marginal is drawn faintly in the component's colour; the
    cloud of ellipses shows how well the data pin down location, size and
    orientation. The MAP fit's ellipses (``posterior.map_``) are drawn solid on top,
    its means as crosses, and, when given, an MLE fit's ellipses dashed black.

    Parameters
    ----------
    posterior : PosteriorGaussianMixture
        A fitted posterior with ``D >= 2`` features (any covariance type).
    X : array-like or DataFrame of shape (N, D)
        Data to scatter.
    features : tuple of two int, default=(0, 1)
        Column indices of the horizontal and vertical features.
    n_draws : int, default=40
        Number of posterior draws to draw (all of them if there are fewer).
    n_std : float, default=2.0
        Mahalanobis radius of every ellipse.
    mle : GaussianMixture, optional
        A maximum-likelihood fit on the same features (any K and covariance type).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when None.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.patches`` holds, in order, ``K * S`` draw ellipses (component by
        component, ``S = min(n_draws, number of draws)``), the ``K`` MAP ellipses and
        the MLE's ellipses. ``ax.collections[0]`` is the data, ``ax.collections[1]``
        the MAP means.

    Raises
    ------
    ValueError
        If the data are 1-D (use :func:`plot_prior_posterior` or
        :func:`plot_membership`), if ``features`` is not two distinct valid column
        indices, or for a bad ``n_draws`` or ``n_std``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.bayes import PosteriorGaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm.plotting import plot_posterior_ellipses
    >>> X = load_faithful()
    >>> post = PosteriorGaussianMixture(2, draws=200, tune=200, chains=2).fit(X)  # doctest: +SKIP
    >>> mle = GaussianMixture(2, random_state=0).fit(X)
    >>> ax = plot_posterior_ellipses(post, X, n_draws=30, mle=mle)  # doctest: +SKIP
    >>> len(ax.patches)  # 2 x 30 draws, 2 MAP, 2 MLE  # doctest: +SKIP
    64
    """
    _check_posterior(posterior)
    map_fit = posterior.map_
    n_components, n_features = map_fit.means_.shape
    if n_features < 2:
        raise ValueError(
            "plot_posterior_ellipses needs at least 2 features, but the posterior is of "
            "1-D data; use plot_prior_posterior(posterior, parameter='means') or "
            "plot_membership(posterior, X) for 1-D data."
        )
    i, j = _check_features(features, n_features)
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive integer; got {n_draws!r}.")
    if not (np.isfinite(n_std) and n_std > 0):
        raise ValueError(f"n_std must be a positive number; got {n_std!r}.")
    if mle is not None and _n_features(mle) != n_features:
        raise ValueError(
            f"mle has {_n_features(mle)} features but the posterior has {n_features}."
        )
    arr = _as_2d_array(X, n_features)
    names = _feature_names(posterior, X, None, n_features)
    idx = [i, j]
    means, covariances = _posterior_means_and_covariances(posterior, n_draws)
    n_shown = means.shape[0]
    colors = _component_colors(n_components)

    ax = _get_ax(ax)
    scatter_observed(
        ax, arr[:, i], arr[:, j], s=10, color="0.55", alpha=0.5, edgecolors="none", zorder=1
    )
    draw_alpha = float(np.clip(6.0 / n_shown, 0.08, 0.5))
    for k in range(n_components):
        for s in range(n_shown):
            _add_ellipse(
                ax,
                means[s, k, idx],
                covariances[s, k][np.ix_(idx, idx)],
                n_std,
                edgecolor=colors[k],
                linewidth=0.8,
                alpha=draw_alpha,
                zorder=2,
            )
    map_cov = _full_covariances(map_fit)
    for k in range(n_components):
        _add_ellipse(
            ax,
            map_fit.means_[k, idx],
            map_cov[k][np.ix_(idx, idx)],
            n_std,
            edgecolor=colors[k],
            linewidth=2.4,
            zorder=4,
        )
    if mle is not None:
        mle_cov = _full_covariances(mle)
        for k in range(mle.means_.shape[0]):
            _add_ellipse(
                ax,
                mle.means_[k, idx],
                mle_cov[k][np.ix_(idx, idx)],
                n_std,
                edgecolor="black",
                linestyle="--",
                linewidth=1.5,
                zorder=5,
            )
    _mark_means(ax, map_fit.means_[:, idx], colors, zorder=6)
    ax.autoscale_view()

    handles = [
        Line2D(
            [],
            [],
            color=colors[k],
            linewidth=2.4,
            label=f"component {k} (MAP weight {map_fit.weights_[k]:.2f})",
        )
        for k in range(n_components)
    ]
    handles.append(
        Line2D([], [], color="0.4", linewidth=0.8, alpha=0.6, label=f"{n_shown} posterior draws")
    )
    handles.append(Line2D([], [], color="0.2", linewidth=2.4, label="MAP"))
    if mle is not None:
        handles.append(Line2D([], [], color="black", linestyle="--", label="MLE"))
    _legend(ax, handles=handles, n_entries=len(handles))
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    ax.set_title(f"Posterior of the components ({n_std:g} sd ellipses)")
    return ax


# -- memberships --------------------------------------------------------------------------
def plot_membership(
    model: GaussianMixture | PosteriorGaussianMixture,
    X,
    *,
    features: tuple[int, int] = (0, 1),
    ax: Axes | None = None,
) -> Axes:
    r"""Points coloured by how certain their component membership is.

    The colour of point ``n`` is its largest membership probability
    :math:`\max_k p(z_n = k \mid x_n)`, from ``1/K`` (red: no idea which component)
    to 1 (blue: certain). For a :class:`~bayesgmm.GaussianMixture` these are the
    responsibilities at the point estimate; for a
    :class:`~bayesgmm.bayes.PosteriorGaussianMixture` the posterior means of the
    responsibilities, ``predict_proba``, which also carry the parameters'
    uncertainty. Uncertain points are drawn last (on top). For ``D >= 2`` two
    features are scattered with the model's 2-sd ellipses in grey; for 1-D data the
    probability is plotted against ``x``.

    Parameters
    ----------
    model : GaussianMixture or PosteriorGaussianMixture
        A fitted model with ``predict_proba``.
    X : array-like or DataFrame of shape (N, D)
    features : tuple of two int, default=(0, 1)
        Column indices to plot (ignored for 1-D data).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when None.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.collections[0]`` is the scatter, its points in order of decreasing
        certainty, ``order = argsort(-max_prob, kind="stable")``: offsets
        ``X[order][:, features]`` (1-D: ``(x, max_prob)``), colour values
        ``get_array() = max_prob[order]``. For ``D >= 2``, ``ax.patches`` holds the K
        ellipses of ``model.means_``/``covariances_`` (posterior means for a
        posterior). A colour bar is added beside ``ax``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm.plotting import plot_membership
    >>> X = load_faithful()
    >>> gm = GaussianMixture(3, random_state=0).fit(X)
    >>> ax = plot_membership(gm, X)
    >>> values = ax.collections[0].get_array()
    >>> bool(values.min() >= 1 / 3), bool(values.max() <= 1)
    (True, True)
    >>> plt.close("all")
    """
    n_features = _n_features(model)
    arr = _as_2d_array(X, n_features)
    names = _feature_names(model, X, None, n_features)
    proba = np.asarray(model.predict_proba(_model_input(model, X, arr)))
    n_components = proba.shape[1]
    certainty = proba.max(axis=1)
    order = np.argsort(-certainty, kind="stable")
    bayesian = hasattr(model, "membership_interval")
    what = "posterior mean" if bayesian else "max"
    norm = mpl.colors.Normalize(vmin=1.0 / n_components, vmax=1.0)

    ax = _get_ax(ax)
    scatter_kwargs = {
        "c": certainty[order],
        "cmap": "coolwarm_r",
        "norm": norm,
        "s": 18,
        "edgecolors": "0.25",
        "linewidths": 0.3,
        "zorder": 3,
    }
    if n_features == 1:
        sc = ax.scatter(arr[order, 0], certainty[order], **scatter_kwargs)
        ax.axhline(1.0 / n_components, color="0.4", linestyle="--", linewidth=1.0, zorder=1)
        ax.annotate(
            f"1/K = {1 / n_components:.2f} (no information)",
            xy=(0.01, 1.0 / n_components),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize="small",
            color="0.3",
        )
        ax.set_ylim(1.0 / n_components - 0.05, 1.03)
        ax.set_xlabel(names[0])
        ax.set_ylabel(f"{what} membership probability")
    else:
        i, j = _check_features(features, n_features)
        sc = scatter_observed(ax, arr[order, i], arr[order, j], **scatter_kwargs)
        idx = [i, j]
        covariances = _full_covariances(model)
        for k in range(n_components):
            _add_ellipse(
                ax,
                model.means_[k, idx],
                covariances[k][np.ix_(idx, idx)],
                2.0,
                edgecolor="0.35",
                linewidth=1.0,
                zorder=2,
            )
        ax.autoscale_view()
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
    cbar = _colorbar(ax, sc, f"{what} membership probability")
    ticks = np.linspace(1.0 / n_components, 1.0, 5)
    tick_labels = [f"{t:.2f}" for t in ticks]
    tick_labels[0] += "\nuncertain"
    tick_labels[-1] += "\ncertain"
    cbar.set_ticks(ticks, labels=tick_labels)
    n_uncertain = int(np.sum(certainty < 0.9))
    source = "posterior" if bayesian else "point estimate"
    ax.set_title(
        f"Membership certainty ({source})\n{n_uncertain} of {len(certainty)} points below 0.9",
        fontsize="medium",
    )
    return ax


def plot_membership_intervals(
    posterior: PosteriorGaussianMixture,
    X,
    *,
    component: int | None = None,
    prob: float | None = None,
    max_points: int = 100,
    ax: Axes | None = None,
) -> Axes:
    r"""Credible intervals of the points' membership probabilities.

    For each point ``n`` the posterior mean (dot, ``predict_proba``) and the
    equal-tailed ``prob`` credible interval (bar, ``membership_interval``) of
    :math:`p(z_n = k \mid x_n, \theta)` over the posterior draws of ``theta``, for
    ``k`` the point's most probable component (coloured by it) or the given
    ``component``. Points are sorted by the posterior mean, so with the most probable
    component the uncertain ones sit on the left. With more than ``max_points`` points
    only the ``max_points`` least certain ones (smallest largest membership
    probability, ties by position in ``X``) are shown: the well-classified rest would
    only add dots at 1.

    Parameters
    ----------
    posterior : PosteriorGaussianMixture
    X : array-like or DataFrame of shape (N, D)
    component : int, optional
        Plot every point's probability of this component instead.
    prob : float, optional
        Probability mass of the intervals; the package's one level,
        :func:`bayesgmm.default_ci_prob`, when None.
    max_points : int, default=100
        Most points to show (the least certain ones).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when None.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.containers`` holds one :class:`~matplotlib.container.ErrorbarContainer`
        per component shown (in component order); x is the point's rank ``0..M-1``
        in the sorted order, y the posterior mean and the bar spans the interval
        (a mean just outside an equal-tailed interval, possible for skewed draws,
        gets a zero-length bar on that side).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from bayesgmm.bayes import PosteriorGaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm.plotting import plot_membership_intervals
    >>> X = load_faithful()
    >>> post = PosteriorGaussianMixture(2, draws=200, tune=200, chains=2).fit(X)  # doctest: +SKIP
    >>> ax = plot_membership_intervals(post, X, max_points=50)  # doctest: +SKIP
    """
    prob = check_prob(prob)
    if isinstance(max_points, bool) or not isinstance(max_points, int | np.integer):
        raise ValueError(f"max_points must be a positive integer; got {max_points!r}.")
    if max_points < 1:
        raise ValueError(f"max_points must be a positive integer; got {max_points!r}.")
    n_features = _n_features(posterior)
    arr = _as_2d_array(X, n_features)
    proba = np.asarray(posterior.predict_proba(_model_input(posterior, X, arr)))
    n_points, n_components = proba.shape
    if component is None:
        chosen = proba.argmax(axis=1)
    else:
        if not (isinstance(component, int | np.integer) and 0 <= component < n_components):
            raise ValueError(
                f"component must be an integer in [0, {n_components - 1}]; got {component!r}."
            )
        chosen = np.full(n_points, int(component))
    value = proba[np.arange(n_points), chosen]
    # the least certain points (smallest max probability), then sorted by the plotted value
    least_certain = np.argsort(proba.max(axis=1), kind="stable")[:max_points]
    shown = least_certain[np.argsort(value[least_certain], kind="stable")]
    intervals = np.asarray(
        posterior.membership_interval(_model_input(posterior, None, arr[shown]), prob)
    )
    k_shown = chosen[shown]
    mean = value[shown]
    lower = intervals[np.arange(shown.size), k_shown, 0]
    upper = intervals[np.arange(shown.size), k_shown, 1]
    rank = np.arange(shown.size)
    colors = _component_colors(n_components)

    ax = _get_ax(ax)
    for k in np.unique(k_shown):
        sel = k_shown == k
        ax.errorbar(
            rank[sel],
            mean[sel],
            yerr=np.vstack(
                [
                    np.clip(mean[sel] - lower[sel], 0, None),
                    np.clip(upper[sel] - mean[sel], 0, None),
                ]
            ),
            fmt="o",
            color=colors[k],
            markersize=3.5,
            elinewidth=1.2,
            capsize=0,
            label=f"component {k}",
        )
    ax.axhline(1.0 / n_components, color="0.5", linestyle=":", linewidth=1.0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(-1, shown.size)
    subset = "" if shown.size == n_points else f" (the {shown.size} least certain of {n_points})"
    ax.set_xlabel(f"points sorted by posterior mean membership{subset}")
    which = "most probable component" if component is None else f"component {component}"
    ax.set_ylabel(f"P(point in {which})")
    ax.set_title(
        f"Membership probabilities: posterior mean and {level_label(prob)} credible interval"
    )
    ax.grid(alpha=0.3)
    _legend(ax, n_entries=n_components, loc="lower right")
    return ax


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


# -- prior vs posterior -------------------------------------------------------------------
def _element_label(da, index: tuple[int, ...]) -> str:
    """``name[coord, coord]`` of one element of a draws DataArray (e.g. means[0, x0])."""
    dims = [d for d in da.dims if d not in _SAMPLE_DIMS]
    coords = [
        str(da[d].values[i]) if d in da.coords else str(i)
        for d, i in zip(dims, index, strict=True)
    ]
    return f"{da.name}[{', '.join(coords)}]" if coords else str(da.name)


def _check_index(index, shape: tuple[int, ...], parameter: str) -> tuple[int, ...]:
    index = (index,) if isinstance(index, int | np.integer) else tuple(index)
    if len(index) != len(shape) or not all(
        isinstance(i, int | np.integer) and 0 <= i < n for i, n in zip(index, shape, strict=True)
    ):
        raise ValueError(
            f"index must give one position per dimension of {parameter!r} (shape "
            f"{shape}); got {index!r}."
        )
    return tuple(int(i) for i in index)


def _prior_draws(posterior, parameter: str, index, n_draws: int, seed) -> np.ndarray | None:
    """Draws of one element from the prior (``pm.sample_prior_predictive``), or None
    where the prior is flat (improper: nothing to draw)."""
    prior = posterior.prior_
    means_need_cov = prior.means is not None and prior.means.form == "conjugate"
    flat = {
        "weights": False,
        "means": prior.means is None or (means_need_cov and prior.covariances is None),
        "covariances": prior.covariances is None,
    }
    if flat[parameter]:
        return None
    import logging

    import pymc as pm

    from bayesgmm.bayes.model import build_model

    n_components, n_features = posterior.map_.means_.shape
    model = build_model(
        np.zeros((1, n_features)),
        n_components,
        covariance_type=posterior.covariance_type,
        prior=prior,
    )
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)  # no "Sampling: [...]" line
    try:
        draws = pm.sample_prior_predictive(
            draws=n_draws,
            model=model,
            var_names=[parameter],
            random_seed=seed,
            compile_kwargs={"mode": "FAST_COMPILE"},  # no numba compile for a few draws
        )
    finally:
        logger.setLevel(level)
    return _stacked(draws["prior"][parameter])[(slice(None), *index)]


def _is_positive(parameter: str, covariance_type: str, index: tuple[int, ...]) -> bool:
    """Whether the element lives on (0, inf): a variance (diagonal of a covariance)."""
    if parameter != "covariances":
        return False
    dims = get_covariance_model(covariance_type).dims
    if "feature" in dims and "feature_bis" in dims:
        return index[dims.index("feature")] == index[dims.index("feature_bis")]
    return True


def _mle_value(mle, posterior, parameter: str, index: tuple[int, ...], dims) -> float:
    """The MLE of the element, its components matched to the MAP fit's labels."""
    if mle.covariance_type != posterior.covariance_type or (
        mle.means_.shape != posterior.map_.means_.shape
    ):
        raise ValueError(
            "mle must have the posterior's covariance type and shape "
            f"({posterior.covariance_type!r}, {posterior.map_.means_.shape}); got "
            f"({mle.covariance_type!r}, {mle.means_.shape})."
        )
    from bayesgmm.bayes.relabel import match_to_reference

    values = np.asarray(getattr(mle, f"{parameter}_"))
    if "component" in dims:
        perm = match_to_reference(
            np.asarray(mle.means_)[None], posterior.map_._params(), posterior.covariance_type
        )[0]
        values = np.take(values, perm, axis=list(dims).index("component"))
    return float(values[index])


def plot_prior_posterior(
    posterior: PosteriorGaussianMixture,
    *,
    parameter: str = "means",
    index: int | tuple[int, ...] = (0, 0),
    n_prior_draws: int = 2000,
    mle: GaussianMixture | None = None,
    show: str = "posterior",
    random_seed: int | None = 0,
    ax: Axes | None = None,
) -> Axes:
    """Prior and posterior density of one parameter element, with MAP and MLE marked.

    The posterior density is a Gaussian KDE (:class:`scipy.stats.gaussian_kde`) of
    the element's relabelled draws; the prior density a KDE of ``n_prior_draws``
    draws from the prior, sampled with :func:`pymc.sample_prior_predictive` on
    :func:`~bayesgmm.bayes.build_model` with ``posterior.prior_`` (the same model
    NUTS sampled, so the same prior for every covariance type and prior form; no
    closed form is used). Vertical lines mark the MAP (``posterior.map_``) and, if
    given, the MLE (its components matched to the MAP's labels). A KDE is not
    corrected at bounds, so near 0 for a variance or near 0 and 1 for a weight it
    spills over a little; the grid is clipped at those bounds.

    Parameters
    ----------
    posterior : PosteriorGaussianMixture
    parameter : {'weights', 'means', 'covariances'}, default='means'
    index : int or tuple of int, default=(0, 0)
        Position of the element in the parameter's array, in the covariance type's
        own shape for ``covariances`` (e.g. ``(k, i, j)`` for 'full', ``(i, j)``
        for 'tied', ``(k, i)`` for 'diag', ``k`` for 'spherical').
    n_prior_draws : int, default=2000
        Prior draws for the prior KDE.
    mle : GaussianMixture, optional
        Maximum-likelihood fit with the same K and covariance type.
    show : {'posterior', 'both'}, default='posterior'
        x-range: where the posterior (and MAP, MLE) are, with the prior density drawn
        over it (a vague prior then looks flat, which is what it is there); or
        'both', wide enough for the prior's central 98%.
    random_seed : int, optional
        Seed of the prior draws.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when None.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.lines[0]`` is the posterior density and ``ax.lines[1]`` the prior
        density (absent for a flat, improper prior part), on one grid; then the
        vertical MAP line (x = the MAP value) and, with ``mle``, the MLE line.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from bayesgmm.bayes import PosteriorGaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm.plotting import plot_prior_posterior
    >>> X = load_faithful()
    >>> post = PosteriorGaussianMixture(2, draws=200, tune=200, chains=2).fit(X)  # doctest: +SKIP
    >>> ax = plot_prior_posterior(post, parameter="weights", index=0)  # doctest: +SKIP
    """
    _check_posterior(posterior)
    if parameter not in _PARAMETERS:
        raise ValueError(f"parameter must be one of {list(_PARAMETERS)}; got {parameter!r}.")
    if show not in ("posterior", "both"):
        raise ValueError(f"show must be 'posterior' or 'both'; got {show!r}.")
    if isinstance(n_prior_draws, bool) or not isinstance(n_prior_draws, int | np.integer):
        raise ValueError(f"n_prior_draws must be an integer >= 10; got {n_prior_draws!r}.")
    if n_prior_draws < 10:
        raise ValueError(f"n_prior_draws must be an integer >= 10; got {n_prior_draws!r}.")
    da = _posterior_dataset(posterior)[parameter]
    dims = tuple(d for d in da.dims if d not in _SAMPLE_DIMS)
    draws_all = _stacked(da)
    index = _check_index(index, draws_all.shape[1:], parameter)
    post_draws = draws_all[(slice(None), *index)]
    if np.ptp(post_draws) == 0:
        raise ValueError(
            f"The posterior draws of {_element_label(da, index)} are all equal (e.g. the "
            "weight of a single component); there is no density to plot."
        )
    map_value = float(np.asarray(getattr(posterior.map_, f"{parameter}_"))[index])
    mle_value = None if mle is None else _mle_value(mle, posterior, parameter, index, dims)
    prior_draws = _prior_draws(posterior, parameter, index, int(n_prior_draws), random_seed)

    q_lo, q_hi = np.quantile(post_draws, [0.005, 0.995])
    points = [q_lo, q_hi, map_value] + ([] if mle_value is None else [mle_value])
    if show == "both" and prior_draws is not None:
        points += list(np.quantile(prior_draws, [0.01, 0.99]))
    lo, hi = min(points), max(points)
    pad = 0.25 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    if parameter == "weights":
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    elif _is_positive(parameter, posterior.covariance_type, index):
        lo = max(lo, 0.0)
    grid = np.linspace(lo, hi, 512)

    label = _element_label(da, index)
    ax = _get_ax(ax)
    post_density = gaussian_kde(post_draws)(grid)
    ax.plot(grid, post_density, color="C0", linewidth=2.0, label="posterior (KDE)")
    ax.fill_between(grid, post_density, color="C0", alpha=0.2, linewidth=0)
    if prior_draws is not None:
        level = check_prob(None)
        tail = (1.0 - level) / 2.0
        prior_lo, prior_hi = np.quantile(prior_draws, [tail, 1.0 - tail])
        ax.plot(
            grid,
            gaussian_kde(prior_draws)(grid),
            color="0.35",
            linestyle="--",
            linewidth=1.8,
            label=f"prior (KDE; {level_label(level)}: {prior_lo:.3g} to {prior_hi:.3g})",
        )
    else:
        ax.plot([], [], " ", label="prior: flat (improper), not drawn")
    ax.axvline(map_value, color="C2", linewidth=1.8, label=f"MAP = {map_value:.4g}")
    if mle_value is not None:
        ax.axvline(
            mle_value, color="C1", linestyle="-.", linewidth=1.6, label=f"MLE = {mle_value:.4g}"
        )
    ax.set_xlim(lo, hi)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.set_title(f"Prior and posterior of {label}")
    ax.legend(fontsize="small", framealpha=0.85)
    return ax


# -- sampler diagnostics (ArviZ) ----------------------------------------------------------
_DIAGNOSTIC_PLOTS = {"trace": "plot_trace_dist", "rank": "plot_rank", "ess": "plot_ess"}


def plot_sampler_diagnostics(
    posterior: PosteriorGaussianMixture,
    *,
    var_names: Sequence[str] = ("weights", "means"),
    kind: str = "trace",
    relabelled: bool = True,
    **kwargs,
) -> PlotCollection:
    """ArviZ diagnostics of the NUTS draws: trace, rank or ESS plots.

    Thin wrapper around :mod:`arviz_plots` on ``posterior.idata_`` with the
    matplotlib backend: ``kind='trace'`` is :func:`arviz_plots.plot_trace_dist`
    (per-chain densities beside the traces), ``'rank'`` is
    :func:`arviz_plots.plot_rank` (fractional rank ECDFs per chain; chains that
    agree stay inside the envelope), ``'ess'`` is :func:`arviz_plots.plot_ess`
    (local ESS across quantiles). The draws are the relabelled ones by default;
    ``relabelled=False`` shows the raw draws (group ``posterior_raw``), where label
    switching appears as jumps between components.

    Parameters
    ----------
    posterior : PosteriorGaussianMixture
    var_names : sequence of str, default=('weights', 'means')
        Variables to plot (``'covariances'`` adds one panel per element).
    kind : {'trace', 'rank', 'ess'}, default='trace'
    relabelled : bool, default=True
        Plot group ``posterior`` (relabelled) or ``posterior_raw``.
    **kwargs
        Passed to the arviz-plots function (e.g. ``coords``, ``visuals``).

    Returns
    -------
    arviz_plots.PlotCollection
        Its ``viz["figure"]`` is the matplotlib Figure; ``.savefig(path)`` saves it.
        Trace and rank plots get a legend of the chains.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from bayesgmm.bayes import PosteriorGaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> from bayesgmm.plotting import plot_sampler_diagnostics
    >>> post = PosteriorGaussianMixture(2, draws=200, tune=200, chains=2)  # doctest: +SKIP
    >>> pc = plot_sampler_diagnostics(post.fit(load_faithful()), kind="rank")  # doctest: +SKIP
    """
    _check_posterior(posterior)
    if kind not in _DIAGNOSTIC_PLOTS:
        raise ValueError(f"kind must be one of {list(_DIAGNOSTIC_PLOTS)}; got {kind!r}.")
    import arviz_plots

    group = "posterior" if relabelled else "posterior_raw"
    if group not in posterior.idata_.children:
        raise ValueError(f"The posterior's idata_ has no {group!r} group.")
    names = [var_names] if isinstance(var_names, str) else list(var_names)
    available = list(posterior.idata_[group].data_vars)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ValueError(f"var_names must be among {available}; got {var_names!r}.")
    plot = getattr(arviz_plots, _DIAGNOSTIC_PLOTS[kind])
    kwargs.setdefault("backend", "matplotlib")
    if "plot_collection" not in kwargs:
        kwargs.setdefault("figure_kwargs", {"layout": "constrained"})
    pc = plot(posterior.idata_, var_names=names, group=group, **kwargs)
    if kind != "ess":  # chains differ by line style (trace) or colour (rank)
        with contextlib.suppress(ValueError):  # raised when no aesthetic maps the chains
            pc.add_legend("chain")
    return pc


# -- co-clustering ------------------------------------------------------------------------
def _co_clustering_order(
    matrix: np.ndarray, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, list]:
    """Row order, group sizes and group names for :func:`plot_co_clustering`.

    With ``labels``: groups are the labels (sorted values). Without: a greedy pass
    over the points from the most certain (largest diagonal) down; each point not yet
    grouped starts a group with every ungrouped point it shares a component with
    more often than not (``matrix[i, j] > 0.5``); groups sorted by size. Within a
    group, points with the highest mean co-clustering with their group come first.
    """
    n = matrix.shape[0]
    if labels is None:
        groups = np.full(n, -1)
        n_groups = 0
        for i in np.argsort(-np.diag(matrix), kind="stable"):
            if groups[i] >= 0:
                continue
            members = (groups < 0) & (matrix[i] > 0.5)
            members[i] = True
            groups[members] = n_groups
            n_groups += 1
        sizes = np.bincount(groups, minlength=n_groups)
        rank = np.empty(n_groups, dtype=int)
        rank[np.argsort(-sizes, kind="stable")] = np.arange(n_groups)
        codes = rank[groups]
        names = list(range(n_groups))
    else:
        names, codes = np.unique(labels, return_inverse=True)
        names = list(names)
    cohesion = np.array([matrix[i, codes == codes[i]].mean() for i in range(n)])
    order = np.lexsort((-cohesion, codes))
    sizes = np.bincount(codes, minlength=len(names))
    return order, sizes, names


def plot_co_clustering(
    matrix,
    *,
    labels=None,
    ax: Axes | None = None,
) -> Axes:
    """Heat map of the posterior co-clustering matrix, points grouped by cluster.

    Entry ``(i, j)`` is the posterior probability that points ``i`` and ``j``
    belong to the same component (:meth:`PosteriorGaussianMixture.co_clustering
    <bayesgmm.bayes.PosteriorGaussianMixture.co_clustering>`); it does not depend
    on the component labels, so it is immune to label switching. Rows and columns
    are ordered by group, the most cohesive points of each group first; white lines
    mark group boundaries. Clear clusters show as solid blocks, uncertain points as
    stripes of intermediate values.

    Groups are ``labels`` if given (e.g. ``posterior.predict(X)``), else found
    without any clustering algorithm: going from the most certain point down, each
    point not yet grouped starts a group with every ungrouped point it shares a
    component with more often than not (probability > 0.5); groups are sorted by
    size.

    Parameters
    ----------
    matrix : array-like of shape (N, N)
        Symmetric matrix of probabilities in [0, 1].
    labels : array-like of shape (N,), optional
        Group of each point.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when None.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.images[0]`` holds ``matrix[order][:, order]``; ``ax.lines`` the group
        boundaries (a horizontal and a vertical line at each of the ``G - 1``
        boundaries, at cumulative group sizes minus 0.5); the ticks name the groups.
        A colour bar is added beside ``ax``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from bayesgmm.plotting import plot_co_clustering
    >>> resp = np.array([[1.0, 0.0], [0.1, 0.9], [0.95, 0.05], [0.0, 1.0]])
    >>> ax = plot_co_clustering(resp @ resp.T, labels=resp.argmax(axis=1))
    >>> ax.images[0].get_array()[0].round(2).tolist()  # points 0, 2 (group 0), then 3, 1
    [1.0, 0.95, 0.0, 0.1]
    >>> plt.close("all")
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix must be a square (N, N) array; got shape {matrix.shape}.")
    if not np.all(np.isfinite(matrix)) or matrix.min() < -1e-9 or matrix.max() > 1 + 1e-9:
        raise ValueError("matrix must hold probabilities in [0, 1] (co-clustering).")
    n = matrix.shape[0]
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},); got {labels.shape}.")
    order, sizes, names = _co_clustering_order(matrix, labels)
    ordered = matrix[np.ix_(order, order)]

    ax = _get_ax(ax)
    image = ax.imshow(ordered, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    for b in np.cumsum(sizes)[:-1]:
        ax.axhline(b - 0.5, color="white", linewidth=1.2)
        ax.axvline(b - 0.5, color="white", linewidth=1.2)
    centers = np.cumsum(sizes) - sizes / 2.0 - 0.5
    shown = sizes >= max(1, 0.02 * n)  # leave out ticks of tiny groups (crowding)
    group_names = [str(name) for name in names]
    ax.set_xticks(centers[shown], [g for g, s in zip(group_names, shown, strict=True) if s])
    ax.set_yticks(centers[shown], [g for g, s in zip(group_names, shown, strict=True) if s])
    how = "by label" if labels is not None else "by co-clustering > 0.5"
    ax.set_xlabel(f"points, grouped {how}")
    ax.set_ylabel("points")
    ax.set_title(f"Posterior co-clustering ({len(sizes)} groups, N = {n})")
    _colorbar(ax, image, "P(same component)")
    return ax
