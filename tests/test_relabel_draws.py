"""relabel_draws: the public relabelling, against brute force over all K! permutations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bayesgmm import GaussianMixture, relabel_draws
from bayesgmm.core.params import GMMParams
from bayesgmm.datasets import make_mixture
from bayesgmm.diagnostics import params_to_dataset

DATA = make_mixture(
    150, n_components=3, n_features=2, means=[[0, 0], [4, 0], [0, 4]], random_state=2
)


@pytest.fixture(scope="module")
def fitted():
    return GaussianMixture(3, covariance_type="full", random_state=0).fit(DATA.X)


def _noisy_draws(gm, rng, chains=2, n_draws=15):
    """Draws near the fit, each with its components in a random order."""
    p = gm._params()
    shuffles = np.array([[rng.permutation(3) for _ in range(n_draws)] for _ in range(chains)])
    means = p.means[shuffles] + 0.3 * rng.standard_normal((chains, n_draws, 3, 2))
    weights = p.weights[shuffles]
    covs = p.covariances[shuffles]
    stacked = GMMParams(weights, means, covs, np.zeros_like(covs))
    return params_to_dataset(stacked, "full", ["x0", "x1"], lead=("chain", "draw")), shuffles


def test_matches_brute_force_over_all_permutations(fitted):
    rng = np.random.default_rng(0)
    draws, _ = _noisy_draws(fitted, rng)
    relabelled, perms = relabel_draws(draws, fitted)
    prec = np.linalg.inv(fitted.covariances_)
    means = draws["means"].values
    for c, s in itertools.product(range(2), range(15)):

        def cost(perm, c=c, s=s):
            diff = means[c, s, list(perm)] - fitted.means_
            return np.einsum("ki,kij,kj->", diff, prec, diff)

        best = min(itertools.permutations(range(3)), key=cost)
        assert tuple(perms[c, s]) == best
        # every variable follows the permutation, draw by draw (a naive loop)
        for name in ("weights", "means", "covariances"):
            np.testing.assert_array_equal(
                relabelled[name].values[c, s], draws[name].values[c, s][list(best)]
            )


def test_undoes_a_constructed_switch_and_applies_given_permutations(fitted):
    rng = np.random.default_rng(1)
    draws, shuffles = _noisy_draws(fitted, rng)
    # the draws were built as fit[shuffles]: the matching recovers the shuffles
    _, perms = relabel_draws(draws, fitted)
    inverse = np.argsort(shuffles, axis=-1)
    np.testing.assert_array_equal(perms, inverse)
    # given permutations are applied as they are, with no matching
    given = np.tile([2, 0, 1], (2, 15, 1))
    swapped, out = relabel_draws(draws, fitted, permutations=given)
    np.testing.assert_array_equal(out, given)
    np.testing.assert_array_equal(
        swapped["weights"].values, draws["weights"].values[..., [2, 0, 1]]
    )
    assert draws["weights"].values.shape == (2, 15, 3)  # the input is not changed


def test_bad_input_is_named(fitted):
    rng = np.random.default_rng(2)
    draws, _ = _noisy_draws(fitted, rng)
    with pytest.raises(ValueError, match="dimensions chain, draw and component"):
        relabel_draws(draws.isel(chain=0), fitted)
    with pytest.raises(ValueError, match="have 2 components but the reference has 3"):
        relabel_draws(draws.isel(component=[0, 1]), fitted)
    with pytest.raises(ValueError, match=r"shape \(chain, draw, K\)"):
        relabel_draws(draws, fitted, permutations=np.zeros((2, 15, 2), int))
    with pytest.raises(ValueError, match=r"must be a permutation of 0\.\.2"):
        relabel_draws(draws, fitted, permutations=np.zeros((2, 15, 3), int))
