"""Label switching: relabel posterior draws to a reference fit.

A mixture's likelihood is invariant to permuting its components, so posterior draws may
swap labels within and between chains. Each draw is matched to a reference (the MAP
fit) by the assignment that minimizes the summed squared Mahalanobis distance between
the draw's means and the reference means (in the reference components' metrics),
solved exactly with :func:`scipy.optimize.linear_sum_assignment`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams

__all__ = ["match_to_reference", "relabel_dataset"]


def match_to_reference(
    means: np.ndarray, reference: GMMParams, covariance_type: str
) -> np.ndarray:
    """Permutations that align each draw's components with the reference's.

    Parameters
    ----------
    means : ndarray of shape (S, K, D)
        Component means of ``S`` draws.
    reference : GMMParams
        The reference fit (its means and precision Cholesky factors define the cost).
    covariance_type : str

    Returns
    -------
    ndarray of shape (S, K)
        ``perm[s, k]`` is the draw-``s`` component that plays reference component ``k``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.core.params import GMMParams
    >>> ref = GMMParams(np.array([0.5, 0.5]), np.array([[0.0], [5.0]]),
    ...                 np.ones(2), np.ones(2))
    >>> match_to_reference(np.array([[[5.1], [0.2]]]), ref, "spherical").tolist()
    [[1, 0]]
    """
    n_draws, n_components, n_features = means.shape
    model = get_covariance_model(covariance_type)
    cost = model.squared_mahalanobis(
        means.reshape(-1, n_features), reference.means, reference.precisions_cholesky
    ).reshape(n_draws, n_components, n_components)
    perms = np.empty((n_draws, n_components), dtype=np.intp)
    for s in range(n_draws):
        rows, cols = linear_sum_assignment(cost[s])
        perms[s, cols] = rows
    return perms


def relabel_dataset(posterior: xr.Dataset, perms: xr.DataArray) -> xr.Dataset:
    """Reorder every variable with a ``component`` dimension, draw by draw.

    ``perms`` has dims ``(chain, draw, component)``; variables without a
    ``component`` dimension (a tied covariance) are unchanged.
    """
    relabelled = posterior.isel(component=perms)
    return relabelled.assign_coords(component=posterior["component"])
