"""Drawing from a Gaussian mixture."""

from __future__ import annotations

import numpy as np

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams

__all__ = ["sample_mixture", "sample_prior"]


def sample_mixture(
    rng: np.random.RandomState | np.random.Generator,
    n_samples: int,
    params: GMMParams,
    covariance_type: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_samples`` points; counts per component are multinomial.

    The draws are grouped by component (labels sorted), in the order of random
    numbers scikit-learn's ``GaussianMixture.sample`` uses, so a ``RandomState``
    with the same seed gives the same points.

    Returns
    -------
    X : ndarray of shape (n_samples, D)
    labels : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> p = GMMParams(np.array([0.5, 0.5]), np.array([[-5.0], [5.0]]),
    ...               np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    >>> X, y = sample_mixture(np.random.RandomState(0), 6, p, "spherical")
    >>> X.shape, bool(np.all((X[:, 0] > 0) == (y == 1)))
    ((6, 1), True)
    """
    model = get_covariance_model(covariance_type)
    counts = rng.multinomial(n_samples, params.weights)
    parts = model.sample(rng, params.means, params.covariances, counts)
    labels = np.repeat(np.arange(params.means.shape[0]), counts)
    return np.vstack(parts), labels


def sample_prior(
    rng: np.random.Generator,
    prior,
    n_components: int,
    n_features: int,
    covariance_type: str,
) -> GMMParams:
    r"""One draw of the mixture's parameters from a proper :class:`~bayesgmm.priors.GMMPrior`.

    :math:`\pi \sim \mathrm{Dirichlet}(\alpha)`; covariances from the covariance prior
    (inverse-Wishart per matrix for full and tied, inverse-gamma
    :math:`(\nu_0/2, \psi_0/2)` per variance for diag and spherical); means
    :math:`\mu_k \mid \Sigma_k \sim N(m_0, \Sigma_k/\kappa_0)` (conjugate) or
    :math:`N(m_0, S_0)` (independent). The same densities as
    :meth:`GMMPrior.log_prob <bayesgmm.priors.GMMPrior.log_prob>` and the PyMC model.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.priors import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior
    >>> prior = GMMPrior(DirichletPrior(1.0), NormalMeanPrior(np.zeros(2), shrinkage=0.1),
    ...                  CovariancePrior(4.0, np.eye(2)))
    >>> p = sample_prior(np.random.default_rng(0), prior, 3, 2, "full")
    >>> p.weights.shape, p.means.shape, p.covariances.shape
    ((3,), (3, 2), (3, 2, 2))
    """
    from scipy import stats

    if prior.weights is None or prior.means is None or prior.covariances is None:
        raise ValueError(
            "Drawing from the prior needs a proper prior on every part (weights, means, "
            "covariances); this GMMPrior has a flat (None) part."
        )
    model = get_covariance_model(covariance_type)
    weights = rng.dirichlet(prior.weights.concentration(n_components))
    dof = prior.covariances.dof
    scale = model.prior_scale(dof, prior.covariances.scale, n_features)
    shape = model.shape(n_components, n_features)
    if tuple(model.dims[-2:]) == ("feature", "feature_bis"):
        n_matrices = int(np.prod(shape[:-2], dtype=int))
        draws = stats.invwishart(df=dof, scale=scale).rvs(size=n_matrices, random_state=rng)
        covariances = np.reshape(draws, shape)
    else:
        psi = np.broadcast_to(np.asarray(scale, dtype=float), shape)
        covariances = 1.0 / rng.gamma(shape=dof / 2.0, scale=2.0 / psi)
    full = model.to_full(covariances, n_components, n_features)
    if prior.means.form == "conjugate":
        cov_means = full / prior.means.shrinkage
    else:
        cov_means = np.broadcast_to(prior.means.covariance, full.shape)
    chol = np.linalg.cholesky(cov_means)
    noise = rng.standard_normal((n_components, n_features))
    means = prior.means.mean + np.einsum("kij,kj->ki", chol, noise)
    return GMMParams(weights, means, covariances, model.precision_cholesky(covariances))
