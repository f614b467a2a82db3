"""M-step: parameters from sufficient statistics (maximum likelihood)."""

from __future__ import annotations

import numpy as np

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats

__all__ = ["m_step"]

# Added to every count so that an empty component gives finite means (as scikit-learn).
_COUNT_EPS = 10 * np.finfo(np.float64).eps


def m_step(stats: SufficientStats, reg_covar: float) -> GMMParams:
    r"""Maximum-likelihood parameters from sufficient statistics.

    .. math:: \pi_k = n_k / \sum_j n_j, \quad \mu_k = s_k / n_k, \quad
              \Sigma_k = W_k / n_k + \epsilon I

    with ``W_k`` the centered scatter and ``epsilon = reg_covar`` (the pooled forms
    for tied, diagonal and spherical covariances are in the covariance table).

    Parameters
    ----------
    stats : SufficientStats
    reg_covar : float
        Non-negative value added to the diagonal of every covariance.

    Returns
    -------
    GMMParams

    Raises
    ------
    CollapsedComponentError
        If a covariance is not positive definite.
    """
    model = get_covariance_model(stats.covariance_type)
    nk = stats.n + _COUNT_EPS
    means = stats.sum_x / nk[:, None]
    scatter = model.scatter(nk, means, stats.sum_xx)
    covariances = model.mle(nk, scatter, reg_covar)
    return GMMParams(
        weights=nk / nk.sum(),
        means=means,
        covariances=covariances,
        precisions_cholesky=model.precision_cholesky(covariances),
    )
