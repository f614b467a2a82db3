r"""M-step: parameters from sufficient statistics, maximum likelihood or MAP.

With a :class:`~bayesgmm.priors.GMMPrior` the update is the posterior mode given the
responsibilities (Fraley & Raftery 2007), with ``n_k``, ``xbar_k``, ``W_k`` the weighted
count, mean and scatter:

.. math::

    \pi_k &= (n_k + \alpha_k - 1) / (N + \textstyle\sum_j \alpha_j - K) \\
    \mu_k &= (n_k \bar x_k + \kappa_0 m_0) / (n_k + \kappa_0) \\
    \Sigma_k &= \frac{\Psi_0 + W_k + \frac{\kappa_0 n_k}{\kappa_0 + n_k}
               (\bar x_k - m_0)(\bar x_k - m_0)^T}{\nu_0 + n_k + d + 2}

(conjugate means prior, full covariances; the covariance table has the other types).
With the independent means prior :math:`\mu_k \sim N(m_0, S_0)` the means update uses
the previous covariances and the covariances then use the new means: an ECM step,
which still never decreases the MAP objective.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesgmm.core.covariance import InnerControl, get_covariance_model
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats

if TYPE_CHECKING:
    from bayesgmm.priors import GMMPrior

__all__ = ["m_step"]

# Added to every count so that an empty component gives finite means (as scikit-learn).
_COUNT_EPS = 10 * np.finfo(np.float64).eps


def m_step(
    stats: SufficientStats,
    reg_covar: float,
    prior: GMMPrior | None = None,
    previous: GMMParams | None = None,
    control: InnerControl | None = None,
) -> GMMParams:
    """Maximum-likelihood (``prior=None``) or MAP parameters from sufficient statistics.

    Parameters
    ----------
    stats : SufficientStats
    reg_covar : float
        Non-negative value added to the diagonal of every covariance (set 0 for the
        exact posterior mode).
    prior : GMMPrior, optional
        Validated against the model beforehand.
    previous : GMMParams, optional
        Current parameters; the independent means prior conditions on their
        covariances (without them, on the covariances given the sample means). The
        iterative M-steps of the mclust families (VEI, VEE, VEV, EVE, VVE) start at
        their covariances (a warm start: the M-step then never lowers the objective).
    control : InnerControl, optional
        Tolerance and iteration cap of those iterative M-steps.

    Returns
    -------
    GMMParams

    Raises
    ------
    CollapsedComponentError
        If a covariance is not positive definite.
    """
    model = get_covariance_model(stats.covariance_type)
    n_components, n_features = stats.sum_x.shape
    nk = stats.n + _COUNT_EPS
    weights_prior = None if prior is None else prior.weights
    means_prior = None if prior is None else prior.means
    cov_prior = None if prior is None else prior.covariances
    dof = None if cov_prior is None else cov_prior.dof
    scale = None if cov_prior is None else model.prior_scale(dof, cov_prior.scale, n_features)

    if weights_prior is None:
        weights = nk / nk.sum()
    else:
        alpha = weights_prior.concentration(n_components)
        weights = (nk + alpha - 1.0) / (nk.sum() + alpha.sum() - n_components)

    sample_means = stats.sum_x / nk[:, None]
    extra_count = 0.0
    if means_prior is None:
        means = sample_means
        scatter = model.scatter(nk, stats.sum_x, stats.sum_xx, means)
    elif means_prior.form == "conjugate":
        kappa, m0 = means_prior.shrinkage, means_prior.mean
        means = (stats.sum_x + kappa * m0) / (nk + kappa)[:, None]
        # The prior acts as kappa pseudo-observations at m0 in the scatter, and it
        deviation = means - m0
        scatter = model.scatter(nk, stats.sum_x, stats.sum_xx, means) + model.second_moment(
            deviation, kappa * np.eye(n_components)
        )
        # adds one factor |Sigma_k|^{-1/2} per component (one more count).
        extra_count = 1.0
    else:
        if previous is None:
            scatter = model.scatter(nk, stats.sum_x, stats.sum_xx, sample_means)
            covs = model.update(nk, scatter, reg_covar, dof, scale)
            prec_chol = model.precision_cholesky(covs)
        else:
            prec_chol = previous.precisions_cholesky
        means = _independent_means_update(
            model, nk, sample_means, prec_chol, means_prior.mean, means_prior.covariance
        )
        scatter = model.scatter(nk, stats.sum_x, stats.sum_xx, means)

    covariances = model.update_from(
        nk + extra_count if extra_count else nk,
        scatter,
        reg_covar,
        dof,
        scale,
        previous=None if previous is None else previous.covariances,
        control=control,
    )
    return GMMParams(
        weights=weights,
        means=means,
        covariances=covariances,
        precisions_cholesky=model.precision_cholesky(covariances),
    )


def _independent_means_update(model, nk, sample_means, prec_chol, m0, s0) -> np.ndarray:
    r""":math:`\mu_k = (S_0^{-1} + n_k P_k)^{-1}(S_0^{-1} m_0 + n_k P_k \bar x_k)`."""
    n_components, n_features = sample_means.shape
    precisions = model.to_full(model.precisions(prec_chol), n_components, n_features)
    s0_inv_m0 = np.linalg.solve(s0, m0)
    s0_inv = np.linalg.solve(s0, np.eye(n_features))
    means = np.empty_like(sample_means)
    for k in range(n_components):
        lhs = s0_inv + nk[k] * precisions[k]
        rhs = s0_inv_m0 + nk[k] * precisions[k] @ sample_means[k]
        means[k] = np.linalg.solve(lhs, rhs)
    return means
