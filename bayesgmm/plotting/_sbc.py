"""Plots of simulation-based calibration: rank histograms and ECDF differences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_sbc"]

_KINDS = ("ecdf", "hist")


def plot_sbc(
    result,
    *,
    parameters: Sequence[str] | None = None,
    kind: str = "ecdf",
    prob: float = 0.95,
    ax: Axes | Sequence[Axes] | None = None,
) -> list[Axes]:
    r"""Rank histograms or ECDF-difference plots of an :func:`~bayesgmm.validation.sbc` run.

    ``kind='ecdf'`` (the default, Säilynoja et al. 2022): the ECDF of the fractional
    ranks minus the uniform CDF, :math:`F_n(z) - z`, at the bin edges, with the
    simultaneous ``prob`` band under uniformity (grey,
    :func:`~bayesgmm.validation.ecdf_band`): a calibrated method stays inside it; a
    curve bending below then above (an S) means too-wide intervals, above then below
    too-narrow ones, entirely on one side a bias. ``kind='hist'`` (Talts et al.
    2018): rank counts in ``result.n_bins`` bins with the expected count (line) and
    its pointwise central ``prob`` binomial interval (grey); a U shape means too
    narrow, a hump too wide, a slope a bias.

    Parameters
    ----------
    result : SBCResult
    parameters : sequence of str, optional
        Columns of ``result.ranks`` to show (default: all).
    kind : {'ecdf', 'hist'}
    prob : float, default=0.95
    ax : Axes or sequence of Axes, optional
        One Axes per parameter; by default a new figure, four panels per row.

    Returns
    -------
    list of matplotlib.axes.Axes
        One per parameter, titled with its label. For ``'ecdf'`` the line labelled
        ``'ECDF - uniform'`` holds :math:`F_n(z) - z`; for ``'hist'`` the bars are the
        counts.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from bayesgmm import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior
    >>> from bayesgmm.validation import sbc
    >>> from bayesgmm.plotting import plot_sbc
    >>> prior = GMMPrior(DirichletPrior(5.0), NormalMeanPrior(np.zeros(1), shrinkage=0.02),
    ...                  CovariancePrior(5.0, 4.0))
    >>> result = sbc(1, 1, "full", prior, n_obs=100, n_sims=20, n_draws=19, random_state=0)
    >>> [a.get_title() for a in plot_sbc(result)]
    ['means[0, x0]', 'covariances[0, x0, x0]']
    """
    from bayesgmm.validation import _bin_edges, ecdf_band

    if kind not in _KINDS:
        raise ValueError(f"Unknown kind {kind!r}; expected one of {_KINDS}.")
    if not 0.0 < prob < 1.0:
        raise ValueError(f"`prob` must lie strictly between 0 and 1; got {prob!r}.")
    columns = list(result.ranks.columns)
    chosen = columns if parameters is None else [str(p) for p in parameters]
    unknown = [p for p in chosen if p not in columns]
    if unknown or not chosen:
        raise ValueError(f"parameters must be columns of result.ranks {columns}; got {unknown}.")
    if ax is None:
        import matplotlib.pyplot as plt

        ncols = min(4, len(chosen))
        nrows = -(-len(chosen) // ncols)
        _, grid = plt.subplots(
            nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), layout="constrained", squeeze=False
        )
        axes = list(grid.ravel())
        for extra in axes[len(chosen) :]:
            extra.set_visible(False)
        axes = axes[: len(chosen)]
    else:
        axes = list(np.ravel(ax)) if isinstance(ax, Sequence | np.ndarray) else [ax]
        if len(axes) != len(chosen):
            raise ValueError(f"Pass one Axes per parameter ({len(chosen)}); got {len(axes)}.")
    n_sims = len(result.ranks)
    edges = _bin_edges(result.n_draws, result.n_bins)
    share = np.diff(edges) / (result.n_draws + 1.0)
    if kind == "ecdf":
        z, lower, upper = ecdf_band(n_sims, result.n_draws, result.n_bins, prob=prob)
        z_all = np.concatenate([[0.0], z, [1.0]])
        lower = np.concatenate([[0.0], lower - z, [0.0]])
        upper = np.concatenate([[0.0], upper - z, [0.0]])
    for axis, label in zip(axes, chosen, strict=True):
        ranks = result.ranks[label].to_numpy()
        counts = np.histogram(ranks, bins=edges)[0]
        if kind == "ecdf":
            ecdf = np.concatenate([[0.0], np.cumsum(counts)[:-1] / n_sims, [1.0]])
            axis.fill_between(z_all, lower, upper, color="0.85", label=f"{prob:.0%} band")
            axis.plot(z_all, ecdf - z_all, color="C0", label="ECDF - uniform")
            axis.axhline(0.0, color="0.4", linewidth=0.8)
            axis.set_xlabel("fractional rank")
        else:
            lo = stats.binom.ppf((1 - prob) / 2, n_sims, share)
            hi = stats.binom.ppf(1 - (1 - prob) / 2, n_sims, share)
            axis.fill_between(edges[:-1], lo, hi, step="post", color="0.85", label=f"{prob:.0%}")
            axis.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0",
                     alpha=0.8, label="ranks")  # fmt: skip
            axis.plot(edges[:-1] + np.diff(edges) / 2, n_sims * share, color="0.3",
                      label="expected")  # fmt: skip
            axis.set_xlabel("rank")
        axis.set_title(label, fontsize="medium")
    axes[0].legend(fontsize="small")
    axes[0].get_figure().suptitle(f"SBC ranks: {result.method} ({n_sims} simulations)")
    return axes
