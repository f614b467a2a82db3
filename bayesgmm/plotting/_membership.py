"""Membership plots: how certain each point's component is, with credible intervals.

Part of the uncertainty plots; see :mod:`bayesgmm.plotting`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np

from bayesgmm._intervals import check_prob, level_label
from bayesgmm.plotting._mixture import (
    _add_ellipse,
    _as_2d_array,
    _check_features,
    _component_colors,
    _feature_names,
    _full_covariances,
    _get_ax,
    _legend,
    _model_input,
    scatter_observed,
)
from bayesgmm.plotting._posterior_common import _colorbar, _n_features

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.mixture import GaussianMixture


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
