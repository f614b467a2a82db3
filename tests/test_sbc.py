"""Simulation-based calibration (:mod:`bayesgmm.validation`): the prior sampler
against closed-form moments, the ECDF band's coverage by simulation, a correct method
passing and deliberately wrong ones failing (so the tool can fail), and (slow) NUTS."""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior
from bayesgmm.core.sampling import sample_prior
from bayesgmm.validation import _laplace_draws, ecdf_band, sbc

PRIOR_1D = GMMPrior(
    DirichletPrior(5.0), NormalMeanPrior(np.zeros(1), shrinkage=0.02), CovariancePrior(5.0, 4.0)
)


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_sample_prior_moments(cov):
    d, k, n = 2, 3, 3000
    psi = np.array([[2.0, 0.5], [0.5, 1.0]]) if cov in ("full", "tied") else 1.5
    prior = GMMPrior(
        DirichletPrior(np.array([1.0, 2.0, 3.0])),
        NormalMeanPrior(np.array([1.0, -1.0]), shrinkage=0.5),
        CovariancePrior(7.0, psi),
    )
    rng = np.random.default_rng(0)
    draws = [sample_prior(rng, prior, k, d, cov) for _ in range(n)]
    weights = np.array([p.weights for p in draws])
    np.testing.assert_allclose(weights.mean(0), [1 / 6, 2 / 6, 3 / 6], atol=0.02)
    covs = np.array([p.covariances for p in draws])
    # inverse-Wishart mean Psi / (nu - d - 1); inverse-gamma (nu/2, psi/2) mean psi/(nu - 2)
    expected = psi / (7.0 - d - 1) if cov in ("full", "tied") else psi / (7.0 - 2.0)
    np.testing.assert_allclose(covs.mean(0), np.broadcast_to(expected, covs.shape[1:]), rtol=0.08)
    means = np.array([p.means for p in draws])
    np.testing.assert_allclose(means.mean(0), np.tile([1.0, -1.0], (k, 1)), atol=0.1)
    # conjugate: Var(mu_k) = E[Sigma_k] / kappa0
    var_expected = (
        np.diag(np.broadcast_to(expected, (d, d)))
        if cov in ("full", "tied")
        else (np.full(d, expected))
    )
    np.testing.assert_allclose(means.var(0), np.tile(var_expected / 0.5, (k, 1)), rtol=0.2)


def test_ecdf_band_coverage():
    """The simultaneous band holds all points of uniform ranks' ECDF in ~95% of sets."""
    n_sims, n_draws, n_bins = 50, 39, 10
    z, lower, upper = ecdf_band(n_sims, n_draws, n_bins, prob=0.95, seed=1)
    edges = np.round(np.linspace(0, n_draws + 1, n_bins + 1)).astype(int)[1:-1]
    rng = np.random.default_rng(7)  # independent of the band's own simulation
    ranks = rng.integers(0, n_draws + 1, size=(2000, n_sims))
    ecdf = (ranks[:, :, None] < edges).mean(axis=1)
    inside = np.all((ecdf >= lower - 1e-12) & (ecdf <= upper + 1e-12), axis=1).mean()
    assert 0.93 <= inside <= 0.98
    np.testing.assert_allclose(z, edges / (n_draws + 1))


def _halved(X, prior, n_components, covariance_type, n_draws, seed, n_init):
    """A deliberately wrong method: the Laplace draws shrunk halfway to their centre."""
    draws = _laplace_draws(X, prior, n_components, covariance_type, n_draws, seed, n_init)
    return {k: v.mean(axis=0) + 0.5 * (v - v.mean(axis=0)) for k, v in draws.items()}


def test_sbc_passes_for_laplace_and_fails_for_halved_spread():
    kwargs = {"n_obs": 400, "n_sims": 60, "n_draws": 39, "random_state": 0}
    good = sbc(1, 1, "full", PRIOR_1D, method="laplace", **kwargs)
    assert list(good.ranks.columns) == ["means[0, x0]", "covariances[0, x0, x0]"]
    assert good.ranks.shape == (60, 2)
    assert good.ranks.to_numpy().min() >= 0
    assert good.ranks.to_numpy().max() <= 39
    assert good.uniform, good.table
    assert good.table["in_band"].all()
    bad = sbc(1, 1, "full", PRIOR_1D, method=_halved, **kwargs)
    assert not bad.uniform
    assert bad.p_value < 1e-6
    # too narrow: the truth falls outside the draws far more often than 2 / (L + 1)
    extreme = ((bad.ranks == 0) | (bad.ranks == 39)).to_numpy().mean()
    assert extreme > 0.25
    assert not bad.table["in_band"].all()
    # the truths are the same simulations for both (same seed)
    np.testing.assert_array_equal(good.truths.to_numpy(), bad.truths.to_numpy())


def test_sbc_information_halved_standard_errors_fail():
    from bayesgmm.validation import _information_draws

    def half_se(X, prior, n_components, covariance_type, n_draws, seed, n_init):
        draws = _information_draws(X, prior, n_components, covariance_type, n_draws, seed, n_init)
        return {k: v.mean(axis=0) + 0.5 * (v - v.mean(axis=0)) for k, v in draws.items()}

    kwargs = {"n_obs": 400, "n_sims": 40, "n_draws": 39, "random_state": 1}
    assert sbc(1, 1, "full", PRIOR_1D, method="information", **kwargs).uniform
    assert not sbc(1, 1, "full", PRIOR_1D, method=half_se, **kwargs).uniform


def test_sbc_bad_input():
    flat = GMMPrior(DirichletPrior(1.0), None, CovariancePrior(5.0, 4.0))
    with pytest.raises(ValueError, match="proper prior"):
        sbc(1, 1, "full", flat, n_obs=10, n_sims=3)
    with pytest.raises(ValueError, match="Unknown method"):
        sbc(1, 1, "full", PRIOR_1D, n_obs=10, n_sims=3, method="mcmc")
    with pytest.raises(ValueError, match="GMMPrior"):
        sbc(1, 1, "full", "default", n_obs=10, n_sims=3)
    with pytest.raises(ValueError, match="n_bins"):
        sbc(1, 1, "full", PRIOR_1D, n_obs=10, n_sims=3, n_draws=3, n_bins=10)


@pytest.mark.slow
@pytest.mark.parametrize("n_features", [1, 2])
def test_sbc_nuts_passes(n_features):
    """K = 2, well-separated prior draws: NUTS ranks are uniform."""
    prior = GMMPrior(
        DirichletPrior(5.0),
        NormalMeanPrior(np.zeros(n_features), shrinkage=0.02),
        CovariancePrior(n_features + 3.0, np.eye(n_features)),
    )
    result = sbc(2, n_features, "full", prior, n_obs=100, n_sims=50, n_draws=39,
                 method="nuts", random_state=0)  # fmt: skip
    assert result.uniform, result.table


def test_plot_sbc_draws_the_ranks_and_the_band():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesgmm.plotting import plot_sbc
    from bayesgmm.validation import _bin_edges

    result = sbc(1, 1, "full", PRIOR_1D, n_obs=100, n_sims=25, n_draws=19, random_state=3)
    label = "covariances[0, x0, x0]"
    ax = plot_sbc(result, parameters=[label])[0]
    (line,) = [li for li in ax.lines if li.get_label() == "ECDF - uniform"]
    z, ecdf_minus = line.get_data()
    edges = _bin_edges(result.n_draws, result.n_bins)
    inner = edges[1:-1]
    ranks = result.ranks[label].to_numpy()
    expected = (ranks[:, None] < inner).mean(axis=0) - inner / (result.n_draws + 1)
    np.testing.assert_allclose(ecdf_minus[1:-1], expected)
    _, lower, upper = ecdf_band(25, result.n_draws, result.n_bins, prob=0.95)
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(min(0.0, (lower - z[1:-1]).min()))
    assert band[:, 1].max() == pytest.approx(max(0.0, (upper - z[1:-1]).max()))
    axes = plot_sbc(result, kind="hist")
    assert [a.get_title() for a in axes] == list(result.ranks.columns)
    heights = [p.get_height() for p in axes[0].patches]
    np.testing.assert_array_equal(heights, np.histogram(result.ranks.iloc[:, 0], bins=edges)[0])
    with pytest.raises(ValueError, match="kind"):
        plot_sbc(result, kind="violin")
    with pytest.raises(ValueError, match="parameters"):
        plot_sbc(result, parameters=["weights[0]"])
    plt.close("all")
