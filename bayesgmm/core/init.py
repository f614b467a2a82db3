"""Initial responsibilities and parameters: k-means, k-means++, random, from data, user-given.

The methods and the order in which they draw from the random state mirror
scikit-learn's ``GaussianMixture``, so the same ``random_state`` gives the same start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from bayesgmm.core.covariance import InnerControl, get_covariance_model
from bayesgmm.core.hc import HC_SUBSET, hc_responsibilities
from bayesgmm.core.mstep import m_step
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats

if TYPE_CHECKING:
    from bayesgmm.priors import GMMPrior

__all__ = ["HC_SUBSET", "INIT_METHODS", "initial_params", "initial_responsibilities"]

INIT_METHODS: tuple[str, ...] = ("kmeans", "k-means++", "random", "random_from_data", "hc")


def initial_responsibilities(
    X: np.ndarray,
    n_components: int,
    method: str,
    rng: np.random.RandomState,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Starting responsibilities, shape ``(N, K)``.

    ``'kmeans'``: one-hot labels of a k-means run; ``'k-means++'``: one-hot rows at
    the k-means++ seeds; ``'random'``: uniform random rows normalized to one;
    ``'random_from_data'``: one-hot rows at ``K`` distinct random data points;
    ``'hc'``: mclust's start, the one-hot partition of model-based hierarchical
    clustering (:mod:`bayesgmm.core.hc`; deterministic up to 2000 rows, a random
    subset of 2000 rows above).
    """
    n_samples = X.shape[0]
    resp = np.zeros((n_samples, n_components))
    if method == "kmeans":
        labels = (
            KMeans(n_clusters=n_components, n_init=1, random_state=rng)
            .fit(X, sample_weight=sample_weight)
            .labels_
        )
        resp[np.arange(n_samples), labels] = 1.0
    elif method == "k-means++":
        _, indices = kmeans_plusplus(
            X, n_components, random_state=rng, sample_weight=sample_weight
        )
        resp[indices, np.arange(n_components)] = 1.0
    elif method == "random":
        resp = rng.uniform(size=(n_samples, n_components))
        resp /= resp.sum(axis=1)[:, None]
    elif method == "hc":
        resp = hc_responsibilities(X, n_components, rng)
    elif method == "random_from_data":
        indices = rng.choice(n_samples, size=n_components, replace=False)
        resp[indices, np.arange(n_components)] = 1.0
    else:
        raise ValueError(f"Unknown init_params {method!r}; expected one of {list(INIT_METHODS)}.")
    return resp


def initial_params(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    *,
    method: str,
    rng: np.random.RandomState,
    reg_covar: float,
    prior: GMMPrior | None = None,
    sample_weight: np.ndarray | None = None,
    weights_init: np.ndarray | None = None,
    means_init: np.ndarray | None = None,
    precisions_init: np.ndarray | None = None,
    control: InnerControl | None = None,
) -> GMMParams:
    """Starting parameters: an M-step (MAP if ``prior`` is given) from the initial
    responsibilities, then any user-given weights, means and precisions in their place
    (inputs are trusted)."""
    model = get_covariance_model(covariance_type)
    if weights_init is None or means_init is None or precisions_init is None:
        resp = initial_responsibilities(X, n_components, method, rng, sample_weight)
        stats = SufficientStats.from_responsibilities(X, resp, covariance_type, sample_weight)
        params = m_step(stats, reg_covar, prior, control=control)
    else:
        params = GMMParams(weights_init, means_init, None, None)
    if weights_init is not None:
        params = params._replace(weights=np.asarray(weights_init, dtype=float))
    if means_init is not None:
        params = params._replace(means=np.asarray(means_init, dtype=float))
    if precisions_init is not None:
        prec_chol = model.precision_cholesky_from_precisions(np.asarray(precisions_init, float))
        params = params._replace(
            precisions_cholesky=prec_chol,
            covariances=model.covariances_from_precision_cholesky(prec_chol),
        )
    return params
