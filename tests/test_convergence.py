"""The vectorized R-hat / ESS against ArviZ's, element by element."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr
from arviz_stats.validate import validate_ci_prob

from bayesgmm.core.convergence import rhat_ess


def _cases(chains: int, draws: int, seed: int) -> np.ndarray:
    """(chains, draws, 7): normal, a sticky AR(1), a constant, ties (rounded values),
    a NaN, chains that disagree, a heavy tail."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(chains, draws, 7))
    for s in range(1, draws):
        x[:, s, 0] = 0.95 * x[:, s - 1, 0] + 0.3 * rng.normal(size=chains)
    x[:, :, 1] = 2.5
    x[:, :, 3] = np.round(x[:, :, 3])
    x[0, 0, 4] = np.nan
    x[1:, :, 5] += 3.0
    x[:, :, 6] = rng.standard_cauchy(size=(chains, draws))
    return x


@pytest.mark.parametrize(("chains", "draws"), [(4, 1000), (2, 5), (3, 61), (4, 100), (8, 40)])
def test_equals_arviz_on_every_element(chains, draws):
    x = _cases(chains, draws, seed=chains * draws)
    da = xr.DataArray(x, dims=("chain", "draw", "element"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ArviZ's 0/0 on the constant
        expected = (
            az.rhat(da).values,
            az.ess(da, method="bulk").values,
            az.ess(da, method="tail").values,
        )
    ours = rhat_ess(x, validate_ci_prob(None))
    for got, want in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(ours[0][4])  # the NaN element
    assert np.isnan(ours[1][4])
    assert ours[1][1] == 2 * chains * (draws // 2)  # a constant: the split size, as ArviZ


def test_one_chain_has_no_rhat_but_an_ess():
    x = _cases(1, 300, seed=1)
    rhat, bulk, tail = rhat_ess(x, 0.89)
    assert np.isnan(rhat).all()
    ref = az.ess(xr.DataArray(x, dims=("chain", "draw", "element")), method="bulk").values
    np.testing.assert_allclose(bulk, ref, rtol=1e-12)
    assert np.isfinite(tail[[0, 2, 3, 5, 6]]).all()


def test_a_sticky_chain_scores_low():
    """Sanity beyond ArviZ's own numbers: an AR(1) with rho 0.95 has an ESS near
    N (1 - rho) / (1 + rho), and chains at different levels an R-hat far above 1."""
    x = _cases(4, 4000, seed=2)
    rhat, bulk, _ = rhat_ess(x, 0.89)
    expected = 4 * 4000 * 0.05 / 1.95
    assert 0.6 * expected < bulk[0] < 1.6 * expected
    assert rhat[5] > 1.3
    assert rhat[2] < 1.01
