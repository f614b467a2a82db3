"""Drawing from a Gaussian mixture."""

from __future__ import annotations

import numpy as np

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams

__all__ = ["sample_mixture"]


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
