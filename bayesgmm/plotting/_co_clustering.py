"""The co-clustering matrix: a label-free view of the posterior's partitions.

Part of the uncertainty plots; see :mod:`bayesgmm.plotting`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesgmm.plotting._mixture import (
    _get_ax,
)
from bayesgmm.plotting._posterior_common import _colorbar

if TYPE_CHECKING:
    from matplotlib.axes import Axes


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
