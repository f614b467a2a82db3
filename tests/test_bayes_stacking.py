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
