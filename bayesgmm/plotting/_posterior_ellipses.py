"""Posterior ellipses: the spread of the component covariances over the draws.

Part of the uncertainty plots; see :mod:`bayesgmm.plotting`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.lines import Line2D

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
    scatter_observed,
)
from bayesgmm.plotting._posterior_common import (
    _check_posterior,
    _n_features,
    _posterior_means_and_covariances,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.mixture import GaussianMixture


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
