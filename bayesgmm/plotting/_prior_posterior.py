"""Prior vs posterior of one parameter element, with the MLE and the MAP marked.

Part of the uncertainty plots; see :mod:`bayesgmm.plotting`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import gaussian_kde

from bayesgmm._intervals import check_prob, level_label
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.plotting._mixture import (
    _get_ax,
)
from bayesgmm.plotting._posterior_common import (
    _PARAMETERS,
    _SAMPLE_DIMS,
    _check_posterior,
    _posterior_dataset,
    _stacked,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.mixture import GaussianMixture


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
