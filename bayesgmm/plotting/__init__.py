"""Plots of fitted mixtures; the only part of bayesgmm that imports matplotlib.

Every ``plot_*`` function takes ``ax=None`` (a new figure is made only when it is None)
and returns what it drew: the :class:`matplotlib.axes.Axes` (a tuple or list of them
where a plot has several panels, as documented), or an arviz-plots ``PlotCollection``
for :func:`plot_sampler_diagnostics`.
"""

from bayesgmm.plotting._co_clustering import plot_co_clustering
from bayesgmm.plotting._estimates import plot_estimates
from bayesgmm.plotting._membership import plot_membership, plot_membership_intervals
from bayesgmm.plotting._mixture import (
    plot_components,
    plot_convergence,
    plot_density_1d,
    plot_model_selection,
)
from bayesgmm.plotting._posterior_ellipses import plot_posterior_ellipses
from bayesgmm.plotting._prior_posterior import plot_prior_posterior
from bayesgmm.plotting._sampler import plot_sampler_diagnostics
from bayesgmm.plotting._sbc import plot_sbc

__all__ = [
    "plot_co_clustering",
    "plot_components",
    "plot_convergence",
    "plot_density_1d",
    "plot_estimates",
    "plot_membership",
    "plot_membership_intervals",
    "plot_model_selection",
    "plot_posterior_ellipses",
    "plot_prior_posterior",
    "plot_sampler_diagnostics",
    "plot_sbc",
]
