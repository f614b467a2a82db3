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


def test_average_ranks_are_scipys_with_ties_and_nan():
    from scipy.stats import rankdata

    from bayesgmm.core.convergence import average_ranks

    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 301))
    x[1] = np.round(x[1])  # many ties
    x[2, :150] = x[2, 150:300]  # every value twice
    x[3, 7] = np.nan  # a NaN row: all NaN
    x[4, :5] = [0.0, -0.0, np.inf, -np.inf, 0.0]  # signed zeros tie
    x[5] = 1.0  # one run
    got = average_ranks(x)
    want = rankdata(x, method="average", axis=1)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)  # NaN where scipy has NaN
    assert np.isnan(got[3]).all()
    assert (got[5] == 151.0).all()
    np.testing.assert_array_equal(average_ranks(np.array([3, 1, 2, 1])), [4.0, 1.5, 3.0, 1.5])


def test_split_and_folded_scores_from_one_sort_equal_ranking_each():
    """The folded scores come from the split values' own sort (a merge); they must be
    the scores of ranking |split - median| afresh, exactly."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    from bayesgmm.core.convergence import _split, _z_scale_split_and_folded

    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3, 200))  # (element, chain, draw)
    x[1] = np.round(x[1] * 2)  # ties in the values and in the folded values
    x[2, :, ::2] = x[2, :, 1::2]  # repeated draws
    x[3] = rng.standard_cauchy(size=(3, 200))
    split = _split(x)
    size = split.shape[1] * split.shape[2]
    flat = split.reshape(4, -1)
    folded = np.abs(flat - np.median(flat, axis=1)[:, None])

    def scores(values):
        return ndtri((rankdata(values, axis=1) - 0.375) / (size + 0.25)).reshape(split.shape)

    z, z_folded = _z_scale_split_and_folded(split)
    np.testing.assert_array_equal(z, scores(flat))
    np.testing.assert_array_equal(z_folded, scores(folded))


def _geyer_loop(rho: np.ndarray, n_draw: int) -> tuple[float, bool]:
    """ArviZ's initial positive and monotone sequence, as arviz_stats writes it."""
    rho_t = np.zeros(n_draw)
    rho_t[0] = 1.0
    even, odd = 1.0, rho[1]
    rho_t[1] = odd
    t = 1
    while t < (n_draw - 3) and (even + odd) > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if (even + odd) >= 0:
            rho_t[t + 1] = even
            rho_t[t + 2] = odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho_t[max_t + 1] = even
    t = 1
    while t <= max_t - 2:
        if (rho_t[t + 1] + rho_t[t + 2]) > (rho_t[t - 1] + rho_t[t]):
            rho_t[t + 1] = (rho_t[t - 1] + rho_t[t]) / 2.0
            rho_t[t + 2] = rho_t[t + 1]
        t += 2
    tau = -1.0 + 2.0 * np.sum(rho_t[: max_t + 1]) + np.sum(rho_t[max_t + 1 : max_t + 2])
    return tau, bool(np.isnan(rho_t).any())


@pytest.mark.parametrize("n_draw", [2, 3, 4, 5, 6, 9, 50, 51])
def test_vectorized_geyer_equals_the_loop(n_draw):
    from bayesgmm.core.convergence import _geyer

    rng = np.random.default_rng(n_draw)
    lags = np.arange(n_draw)
    rows = [
        0.9**lags,  # positive to the end
        (-0.6) ** lags,  # alternating: stops at once
        np.cos(lags / 3.0) * 0.97**lags,  # rises again: the monotone pass lowers pairs
        np.r_[1.0, 0.5, 0.2, -0.2, 0.1, rng.uniform(-1, 1, max(0, n_draw - 5))][:n_draw],
        np.r_[1.0, np.nan, rng.uniform(size=n_draw - 2)],  # a NaN at lag 1
        np.r_[1.0, 0.5, 0.4, -0.4, rng.uniform(size=max(0, n_draw - 4))][:n_draw],  # sum 0
        np.r_[1.0, 0.3, np.nan, 0.2, rng.uniform(size=max(0, n_draw - 4))][:n_draw],
        np.r_[1.0, 0.5, -0.25, 0.25, rng.uniform(-1, 1, max(0, n_draw - 4))][:n_draw],
        np.r_[1.0, np.resize([0.3, -0.125], n_draw - 1)],  # kept to the end, even < 0
    ]
    rho = np.stack([np.resize(r, n_draw) for r in rows])
    rho[:4] += rng.normal(scale=0.05, size=(4, n_draw)) * (lags > 0)  # the others exact
    tau, has_nan = _geyer(rho, n_draw)
    for i in range(rho.shape[0]):
        want_tau, want_nan = _geyer_loop(rho[i], n_draw)
        assert has_nan[i] == want_nan, i
        np.testing.assert_array_equal(tau[i], want_tau)
