"""Sampler diagnostics of the posterior draws (ArviZ's trace, rank and ESS plots).

Part of the uncertainty plots; see :mod:`bayesgmm.plotting`."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bayesgmm.plotting._posterior_common import _check_posterior

if TYPE_CHECKING:
    from arviz_plots import PlotCollection

    from bayesgmm.bayes import PosteriorGaussianMixture


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
