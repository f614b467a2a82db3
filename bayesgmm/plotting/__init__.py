"""Plots of fitted mixtures; the only part of bayesgmm that imports matplotlib.

Every ``plot_*`` function takes ``ax=None`` (a new figure is made only when it is None)
and returns the :class:`matplotlib.axes.Axes` it drew on.
"""

from bayesgmm.plotting._mixture import (
    plot_components,
    plot_convergence,
    plot_density_1d,
    plot_model_selection,
)

__all__ = [
    "plot_components",
    "plot_convergence",
    "plot_density_1d",
    "plot_model_selection",
]
