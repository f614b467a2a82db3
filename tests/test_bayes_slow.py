"""Statistical checks of the NUTS posterior (slow: run with ``make test-slow``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesgmm.bayes import PosteriorGaussianMixture
from bayesgmm.bayes.relabel import match_to_reference
from bayesgmm.datasets import make_mixture

pytestmark = pytest.mark.slow


def _coverage(post, truth, prob=0.94):
    """Fraction of true parameter elements inside the equal-tailed credible intervals."""
    # align the true components with the posterior's (MAP) labels
    perm = match_to_reference(truth.params.means[None], post.map_._params(), "full")[0]
    true = {
        "weights": truth.params.weights[perm],
        "means": truth.params.means[perm],
        "covariances": truth.params.covariances[perm],
    }
    post_ds = post.idata_["posterior"].to_dataset()
    inside = []
    for name, value in true.items():
        draws = post_ds[name].values.reshape(-1, *value.shape)
        lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        mask = np.ones(value.shape, bool)
        if name == "covariances":  # each symmetric entry once
            mask = np.broadcast_to(np.triu(np.ones(value.shape[-2:], bool)), value.shape)
        inside.extend(((lo <= value) & (value <= hi))[mask].ravel())
    return np.asarray(inside)


def test_well_separated_posterior_converges_and_covers_the_truth():
    inside = []
    for seed in range(4):
        truth = make_mixture(600, n_components=3, n_features=2, separation=6.0, random_state=seed)
        post = PosteriorGaussianMixture(3, draws=1000, tune=1000, chains=4, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error", category=UserWarning)  # no SamplingWarning
            warnings.filterwarnings("ignore", message=".*feature names.*")
            post.fit(truth.X)
        after = post.diagnostics_.xs("relabelled", level="draws")
        assert after["max_rhat"].max() <= 1.01
        assert post.n_divergences_ == 0
        inside.append(_coverage(post, truth))
    rate = np.concatenate(inside).mean()
    print(f"coverage of the 94% intervals: {rate:.3f} over {len(np.concatenate(inside))} elements")
    # 4 data sets x 18 parameter elements; nominal 0.94
    assert 0.82 <= rate <= 1.0, rate
