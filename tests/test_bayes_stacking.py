"""Stacking of chains: exact posteriors, a brute-force optimum, equal weights when mixed."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayesgmm.bayes import stack_chains
from bayesgmm.bayes.stacking import stacking_weights

N, DRAWS = 60, 1000


def _normal_mean_tree(shifts, seed=0):
    """Chains of draws of mu in y_n ~ N(mu, 1) with a flat prior: the exact posterior
    is N(ybar, 1/N); chain c draws from N(ybar + shifts[c], 1/N) (a shift = a chain
    stuck away from the posterior's mass)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(1.0, 1.0, N)
    sd = 1.0 / np.sqrt(N)
    mu = np.stack([rng.normal(y.mean() + s, sd, DRAWS) for s in shifts])
    ll = -0.5 * (y[None, None, :] - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"mu": (("chain", "draw"), mu)}),
            "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)}),
        }
    )
    return tree, y


def test_a_stuck_chain_gets_no_weight_and_the_stacked_posterior_is_exact():
    tree, y = _normal_mean_tree([0.0, 0.0, 0.0, 0.8])
    result = stack_chains(tree, random_state=1)
    assert result.weights.shape == (4,)
    assert result.groups.tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(result.weights.sum(), 1.0)
    assert result.weights[3] < 0.05
    stacked = result.posterior["mu"].values.ravel()
    assert stacked.size == 4 * DRAWS
    sd = 1.0 / np.sqrt(N)
    # the exact posterior N(ybar, 1/N); the pooled chains are off by 0.8 / 4 = 0.2 = 1.5 sd
    assert abs(stacked.mean() - y.mean()) < 0.2 * sd
    np.testing.assert_allclose(stacked.std(), sd, rtol=0.1)
    pooled = tree["posterior"]["mu"].values.ravel()
    assert abs(pooled.mean() - y.mean()) > 1.0 * sd


def test_well_mixed_chains_get_equal_weights():
    tree, _ = _normal_mean_tree([0.0, 0.0, 0.0, 0.0], seed=3)
    result = stack_chains(tree, random_state=0)
    assert result.groups.tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(result.weights, 0.25, atol=1e-12)
    # plain stacking of the same chains is not identified: it need not split evenly
    assert stacking_weights(result.pointwise).shape == (4,)
    assert np.all(result.pareto_k < 0.7)


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_weights_are_the_brute_force_optimum(penalty):
    rng = np.random.default_rng(0)
    lpd = np.log(rng.uniform(0.05, 1.0, size=(2, 40)))
    w = stacking_weights(lpd, penalty=penalty)
    grid = np.linspace(1e-6, 1 - 1e-6, 200001)
    mix = np.log(grid[:, None] * np.exp(lpd[0]) + (1 - grid[:, None]) * np.exp(lpd[1]))
    value = mix.sum(axis=1) + penalty * (np.log(grid) + np.log(1 - grid))
    np.testing.assert_allclose(w[0], grid[value.argmax()], atol=1e-4)


def test_stack_chains_needs_a_variable_name_when_ambiguous():
    tree, _ = _normal_mean_tree([0.0, 0.0])
    ll = tree["log_likelihood"].to_dataset()
    tree["log_likelihood"] = xr.DataTree(ll.assign(z=ll["y"]))
    with pytest.raises(ValueError, match="var_name"):
        stack_chains(tree)
    assert stack_chains(tree, var_name="z").weights.shape == (2,)


def test_progress_is_off_under_pytest_and_writes_one_status_line():
    import io
    from types import SimpleNamespace

    from bayesgmm.bayes._sampling import ChainProgress, progress_default

    assert progress_default() is False
    stream = io.StringIO()
    progress = ChainProgress(2, 100, stream=stream)
    update = progress.callback(1)
    update([SimpleNamespace(finished_draws=40, divergences=3, tuning=False)])
    progress.show(final=True)
    text = stream.getvalue()
    assert "2 chains, 40/200 draws" in text
    assert "3 divergences" in text


def test_modes_that_differ_on_a_few_points_are_not_grouped():
    """Chains in one mode differ by Monte Carlo noise; two modes that explain 3 of 60
    points differently differ by far more than that noise, even though their elpd
    difference (6) is within two sampling standard errors (6.8), the yardstick that
    would put them in one group and so give them equal weights."""
    from bayesgmm.bayes.stacking import group_chains

    rng = np.random.default_rng(0)
    base = np.log(rng.uniform(0.05, 0.5, N))
    other = base.copy()
    other[:3] += 2.0  # the second mode predicts three points better
    noise_sd = 0.01
    lpd = np.stack([base, base, other, other]) + noise_sd * rng.standard_normal((4, N))
    var = np.full((4, N), noise_sd**2)
    diff = lpd[0] - lpd[2]
    assert abs(diff.sum()) <= 2.0 * np.sqrt(N * diff.var())  # "alike" by the elpd se
    assert group_chains(lpd, var).tolist() == [0, 0, 1, 1]
    # with noise as large as the difference they cannot be told apart: one group
    assert group_chains(lpd, np.full((4, N), 1.0)).tolist() == [0, 0, 0, 0]
    # stacking the two groups: the better-predicting mode gets the larger weight, and
    # the weights are the brute-force optimum over the two group densities
    group_lpd = np.stack([lpd[:2].mean(0), lpd[2:].mean(0)])
    w = stacking_weights(group_lpd)
    grid = np.linspace(1e-6, 1 - 1e-6, 100001)
    value = np.log(
        grid[:, None] * np.exp(group_lpd[0]) + (1 - grid[:, None]) * np.exp(group_lpd[1])
    )
    np.testing.assert_allclose(w[0], grid[value.sum(axis=1).argmax()], atol=1e-4)
    assert w[1] > 0.5


def test_batch_variance_is_the_monte_carlo_variance_of_the_loo_values():
    """Independent check of the noise yardstick: the batch-means variance of a chain's
    pointwise LOO values is near the spread of the LOO values over many
    independent chains of the same length."""
    import arviz as az

    from bayesgmm.bayes.stacking import _batch_variance

    tree, _ = _normal_mean_tree([0.0] * 20, seed=5)
    post = tree["posterior"].to_dataset()
    ll = tree["log_likelihood"].to_dataset()
    values = np.stack(
        [
            np.asarray(
                az.loo(
                    xr.DataTree.from_dict(
                        {"posterior": post.isel(chain=[c]), "log_likelihood": ll.isel(chain=[c])}
                    ),
                    pointwise=True,
                ).elpd_i
            ).ravel()
            for c in range(20)
        ]
    )
    spread = values.var(axis=0, ddof=1).mean()
    batch = np.mean(
        [_batch_variance(post.isel(chain=[c]), ll.isel(chain=[c]), "y").mean() for c in range(20)]
    )
    # within a factor of two (0.61 here: PSIS-LOO of a quarter of the draws is not an
    # average, so batch means are only an approximation; group_chains' n_se allows it)
    assert 0.5 < batch / spread < 2.0, batch / spread


def test_a_stuck_chain_does_not_break_stacking():
    """A chain that never moved (every draw the same point: PSIS cannot fit its tail)
    gets plain importance-sampling LOO, exact for a constant log-likelihood, with
    Pareto k = inf; the other chains keep PSIS-LOO."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=30)
    mu = rng.normal(y.mean(), 0.2, (3, 200))
    mu[2] = mu[2, 0]  # stuck
    ll = -0.5 * (y[None, None] - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"mu": (("chain", "draw"), mu)}),
            "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)}),
        }
    )
    result = stack_chains(tree, random_state=0)
    assert np.isfinite(result.weights).all()
    assert result.pareto_k[2] == np.inf
    assert np.isfinite(result.pareto_k[:2]).all()
    np.testing.assert_allclose(result.pointwise[2], ll[2, 0], rtol=1e-12)


def test_chains_too_short_for_a_psis_tail_get_plain_importance_sampling():
    """Chains of 20 draws (PSIS needs 25 for a tail of 5: ArviZ raises "n_draws_tail
    must be at least 5") get plain importance-sampling LOO, -log mean_s exp(-ll), with
    Pareto k = inf; a short fit whose chains disagree (Faithful K=3 tied, 50 + 50
    draws, which raised that error from the batch variances) runs through."""
    from scipy.special import logsumexp

    rng = np.random.default_rng(1)
    y = rng.normal(size=25)
    mu = rng.normal(y.mean(), 0.2, (2, 20))
    ll = -0.5 * (y[None, None] - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"mu": (("chain", "draw"), mu)}),
            "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)}),
        }
    )
    result = stack_chains(tree, random_state=0)
    assert np.all(result.pareto_k == np.inf)
    for c in range(2):
        expected = np.log(20) - logsumexp(-ll[c], axis=0)
        np.testing.assert_allclose(result.pointwise[c], expected, rtol=1e-12)

    import warnings

    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.datasets import load_faithful

    post = PosteriorGaussianMixture(3, covariance_type="tied", random_state=0, draws=50, tune=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post.fit(load_faithful().to_numpy())
    if post.chains_disagree_:  # the case that raised; combined weights sum to one
        assert np.isclose(post.stacking_.weights.sum(), 1.0)
