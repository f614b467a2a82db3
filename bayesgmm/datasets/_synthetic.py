"""Draws from a known Gaussian mixture, with the true labels and parameters."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm._validation import check_initial_params, check_random_state
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams
from bayesgmm.core.sampling import sample_mixture

__all__ = ["MixtureSample", "make_mixture"]


class MixtureSample(NamedTuple):
    """Data drawn from a known mixture.

    Attributes
    ----------
    X : ndarray of shape (N, D)
    labels : ndarray of shape (N,)
        True component of every row.
    params : GMMParams
        True weights, means, covariances and precision Cholesky factors.
    covariance_type : str
    """

    X: np.ndarray
    labels: np.ndarray
    params: GMMParams
    covariance_type: str


def _random_covariances(rng, n_components, n_features, covariance_type):
    """Random covariances with eigenvalues between 0.5 and 1.5, in the type's shape."""
    full = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        q, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
        full[k] = (q * rng.uniform(0.5, 1.5, n_features)) @ q.T
    return get_covariance_model(covariance_type).from_full(full)


def _separated_means(rng, n_components, n_features, separation):
    """Means at least ``separation`` apart, drawn uniformly in a box that fits them."""
    half_width = separation * max(1.0, n_components ** (1.0 / n_features))
    for _ in range(1000):
        means = rng.uniform(-half_width, half_width, (n_components, n_features))
        diffs = means[:, None, :] - means[None, :, :]
        dist = np.sqrt((diffs**2).sum(-1))
        np.fill_diagonal(dist, np.inf)
        if dist.min() >= separation:
            return means
        half_width *= 1.05
    raise RuntimeError("could not place the means; lower `separation`")  # pragma: no cover


def make_mixture(
    n_samples: int = 500,
    *,
    n_components: int = 3,
    n_features: int = 2,
    covariance_type: str = "full",
    weights=None,
    means=None,
    covariances=None,
    separation: float = 4.0,
    random_state=None,
) -> MixtureSample:
    """Draw ``n_samples`` points from a Gaussian mixture with known parameters.

    Parameters not given are drawn at random: weights from a Dirichlet(10)
    distribution, means at least ``separation`` apart (in units of roughly one
    standard deviation), covariances with variances between 0.5 and 1.5.

    Parameters
    ----------
    n_samples : int, default=500
    n_components : int, default=3
    n_features : int, default=2
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    weights : array-like of shape (K,), optional
    means : array-like of shape (K, D), optional
    covariances : array-like, optional
        In the shape of ``covariance_type``.
    separation : float, default=4.0
        Minimum distance between random means.
    random_state : int, numpy Generator, RandomState or None

    Returns
    -------
    MixtureSample
        ``X``, ``labels``, the true ``params`` and ``covariance_type``; rows are in
        random order.

    Examples
    --------
    >>> from bayesgmm.datasets import make_mixture
    >>> data = make_mixture(200, n_components=2, n_features=3, random_state=0)
    >>> data.X.shape, data.labels.shape, data.params.means.shape
    ((200, 3), (200,), (2, 3))
    """
    sizes = {"n_samples": n_samples, "n_components": n_components, "n_features": n_features}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    if not np.isfinite(separation) or separation < 0:
        raise ValueError(f"`separation` must be finite and >= 0; got {separation!r}.")
    model = get_covariance_model(covariance_type)
    rng = check_random_state(random_state)
    if weights is None:
        weights = rng.dirichlet(np.full(n_components, 10.0))
    if means is None:
        means = _separated_means(rng, n_components, n_features, separation)
    if covariances is None:
        covariances = _random_covariances(rng, n_components, n_features, covariance_type)
    weights, means, _ = check_initial_params(
        weights, means, None, n_components, n_features, covariance_type
    )
    covariances = np.array(covariances, dtype=float)
    model.check_shape(covariances, n_components, n_features, "covariances")
    params = GMMParams(weights, means, covariances, model.precision_cholesky(covariances))
    X, labels = sample_mixture(rng, n_samples, params, covariance_type)
    order = rng.permutation(n_samples)
    return MixtureSample(X[order], labels[order], params, covariance_type)
