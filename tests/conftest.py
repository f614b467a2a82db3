"""Shared fixtures: small data sets with known structure."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import settings

from bayesgmm.core.covariance import COVARIANCE_TYPES
from bayesgmm.datasets import load_faithful, load_galaxies, load_iris, make_mixture

# The property tests draw the same examples on every run (the test suite is a gate: a
# failure must reproduce, not come and go with the seed); set
# HYPOTHESIS_PROFILE=explore to search with fresh random examples.
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(params=COVARIANCE_TYPES)
def covariance_type(request) -> str:
    return request.param


def _datasets() -> dict[str, tuple[np.ndarray, int]]:
    iris = load_iris().select_dtypes("number").to_numpy()
    return {
        "faithful": (load_faithful().to_numpy(), 3),
        "iris": (iris, 3),
        "galaxies": (load_galaxies().to_numpy(), 4),
        "synthetic5d": (make_mixture(400, n_components=3, n_features=5, random_state=3).X, 3),
    }


DATASETS = _datasets()


@pytest.fixture(params=sorted(DATASETS))
def dataset(request) -> tuple[np.ndarray, int]:
    """(X, n_components) for several real and synthetic data sets."""
    return DATASETS[request.param]


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test drew (only where pyplot is in use at all)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_kernels():
    """One BLAS/OpenMP thread: the test data are small, and on a busy 2-core machine
    oversubscribed thread pools slow k-means and EM by an order of magnitude."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


# A well-separated 2-D, 2-component sample and one NUTS fit of it, shared by the tests of
# the posterior and of the comparisons (a NUTS fit costs a numba compile: ~15 s).
TWO_BLOBS = make_mixture(
    150,
    n_components=2,
    n_features=2,
    weights=[0.4, 0.6],
    means=[[-4.0, 0.0], [4.0, 1.0]],
    covariances=[[[1.0, 0.3], [0.3, 0.8]], [[0.7, -0.2], [-0.2, 1.2]]],
    random_state=0,
)


@pytest.fixture(scope="session")
def two_blobs_posterior():
    import warnings

    from bayesgmm.bayes import PosteriorGaussianMixture

    post = PosteriorGaussianMixture(2, draws=300, tune=300, chains=2, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return post.fit(TWO_BLOBS.X)
