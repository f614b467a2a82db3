"""Priors: hyperparameter validation, mclust's prior, the pooled prior, densities against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesgmm import (
    CovariancePrior,
    DirichletPrior,
    GaussianMixture,
    GMMPrior,
    NormalMeanPrior,
)
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams
from bayesgmm.datasets import load_galaxies, load_trees


def test_default_prior_matches_mclust_by_hand_on_trees():
    """mclust TR 597 prints colMeans(trees) = 13.248, 76.000, 30.171; the rest is
    defaultPrior's definition evaluated with explicit loops."""
    X = load_trees().to_numpy()
    n, d, k = X.shape[0], 3, 2
    prior = GMMPrior.mclust(X, k, "full")
    np.testing.assert_allclose(prior.means.mean, [13.248, 76.000, 30.171], atol=5e-4)
    assert prior.means.form == "conjugate"
    assert prior.means.shrinkage == 0.01
    assert prior.covariances.dof == d + 2
    mean = [sum(X[i, j] for i in range(n)) / n for j in range(d)]
    var = np.array(
        [
            [
                sum((X[i, a] - mean[a]) * (X[i, b] - mean[b]) for i in range(n)) / (n - 1)
                for b in range(d)
            ]
            for a in range(d)
        ]
    )
    np.testing.assert_allclose(prior.covariances.scale, var / k ** (2 / d), rtol=1e-12)
    assert prior.weights.alpha == 1.0
    for cov_type in ("diag", "spherical"):
        p = GMMPrior.mclust(X, k, cov_type)
        assert float(p.covariances.scale) == pytest.approx(
            np.trace(var) / d * (1 / k) ** (2 / d), rel=1e-12
        )
    assert GMMPrior.mclust(X, k, "tied").covariances.scale.shape == (3, 3)


def test_default_prior_one_dimension_is_var_over_k_squared_with_dof_3():
    X = load_galaxies().to_numpy()
    prior = GMMPrior.mclust(X, 4, "spherical")
    assert prior.covariances.dof == 3.0
    assert float(prior.covariances.scale) == pytest.approx(np.var(X, ddof=1) / 16, rel=1e-12)


def test_default_prior_with_frequency_weights_equals_repeated_rows():
    X = load_trees().to_numpy()
    w = np.arange(len(X)) % 3
    a = GMMPrior.mclust(X, 3, "full", sample_weight=w)
    b = GMMPrior.mclust(np.repeat(X, w, axis=0), 3, "full")
    np.testing.assert_allclose(a.means.mean, b.means.mean, rtol=1e-12)
    np.testing.assert_allclose(a.covariances.scale, b.covariances.scale, rtol=1e-12)


def _random_params(rng, k, d, cov_type):
    full = np.empty((k, d, d))
    for j in range(k):
        a = rng.standard_normal((d, d))
        full[j] = a @ a.T + np.eye(d)
    model = get_covariance_model(cov_type)
    cov = model.from_full(full)
    return GMMParams(
        rng.dirichlet(np.ones(k)), rng.normal(size=(k, d)), cov, model.precision_cholesky(cov)
    )


@pytest.mark.parametrize("form", ["conjugate", "independent"])
def test_log_prob_matches_scipy(covariance_type, form):
    rng = np.random.default_rng(0)
    k, d = 3, 3
    params = _random_params(rng, k, d, covariance_type)
    alpha = np.array([1.5, 2.0, 3.0])
    m0 = rng.normal(size=d)
    a = rng.standard_normal((d, d))
    psi = a @ a.T + d * np.eye(d)
    s0 = 2.0 * np.eye(d) + 0.3
    dof = d + 2.0
    means_prior = (
        NormalMeanPrior.conjugate(m0, 0.5)
        if form == "conjugate"
        else NormalMeanPrior.independent(m0, s0)
    )
    scale = (
        psi
        if covariance_type in ("full", "tied")
        else (np.array([1.0, 2.0, 3.0]) if covariance_type == "diag" else 1.7)
    )
    prior = GMMPrior(DirichletPrior(alpha), means_prior, CovariancePrior(dof, scale))
    full = get_covariance_model(covariance_type).to_full(params.covariances, k, d)

    expected = stats.dirichlet(alpha).logpdf(params.weights)
    for j in range(k):
        mean_cov = full[j] / 0.5 if form == "conjugate" else s0
        expected += stats.multivariate_normal(m0, mean_cov).logpdf(params.means[j])
    if covariance_type == "full":
        expected += sum(stats.invwishart(dof, psi).logpdf(full[j]) for j in range(k))
    elif covariance_type == "tied":
        expected += stats.invwishart(dof, psi).logpdf(full[0])
    elif covariance_type == "diag":
        expected += sum(
            stats.invgamma(dof / 2, scale=scale[i] / 2).logpdf(params.covariances[j, i])
            for j in range(k)
            for i in range(d)
        )
    else:
        expected += stats.invgamma(dof / 2, scale=scale / 2).logpdf(params.covariances).sum()
    assert prior.log_prob(params, covariance_type) == pytest.approx(expected, rel=1e-10)


def test_partial_prior_only_counts_its_parts():
    rng = np.random.default_rng(1)
    params = _random_params(rng, 2, 2, "full")
    only_weights = GMMPrior(weights=DirichletPrior([2.0, 5.0]))
    assert only_weights.log_prob(params, "full") == pytest.approx(
        stats.dirichlet([2.0, 5.0]).logpdf(params.weights)
    )
    assert GMMPrior().log_prob(params, "full") == 0.0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DirichletPrior(0.0), "alpha` must be > 0"),
        (lambda: DirichletPrior([1.0, np.nan]), "NaN"),
        (lambda: NormalMeanPrior([0.0, 0.0]), "exactly one of `shrinkage`"),
        (lambda: NormalMeanPrior([0.0], shrinkage=0.1, covariance=1.0), "exactly one"),
        (lambda: NormalMeanPrior.conjugate([0.0], -1.0), "`shrinkage` must be finite and > 0"),
        (lambda: NormalMeanPrior.independent([0.0, 0.0], [[1, 2], [2, 1]]), "positive definite"),
        (lambda: NormalMeanPrior.independent([0.0, 0.0], np.eye(3)), r"must be \(2, 2\)"),
        (lambda: CovariancePrior(dof=-1.0, scale=1.0), "`dof` must be finite and > 0"),
        (lambda: CovariancePrior(dof=3.0, scale=-1.0), "`scale` must be > 0"),
        (lambda: CovariancePrior(dof=3.0, scale=[[1, 0], [0, -1]]), "positive definite"),
        (lambda: GMMPrior(weights=2.0), "must be a DirichletPrior"),
    ],
)
def test_invalid_hyperparameters(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_prior_is_frozen():
    prior = GMMPrior.mclust(load_trees(), 2)
    with pytest.raises(AttributeError):
        prior.means = None
    with pytest.raises(ValueError, match="read-only"):
        prior.means.mean[0] = 1.0


def test_default_prior_on_singular_data_says_why():
    X = np.random.default_rng(0).normal(size=(3, 3))
    with pytest.raises(ValueError, match=r"singular here \(3 rows, 3 features"):
        GMMPrior.mclust(X, 2, "full")
    collinear = np.c_[X[:, 0], 2 * X[:, 0], X[:, 1]]
    with pytest.raises(ValueError, match="features 'column 0', 'column 1' are collinear"):
        GMMPrior.mclust(np.r_[collinear, 3 * collinear], 2, "diag")


def _income_rate(n: int = 200, seed: int = 0) -> np.ndarray:
    """Two columns in very different units: an income (~8e4) and a rate (~0.05)."""
    rng = np.random.default_rng(seed)
    income = rng.normal(8e4, 2e4, n)
    rate = 0.05 + 1e-7 * (income - 8e4) + rng.normal(0, 0.01, n)
    return np.c_[income, rate]


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_default_prior_accepts_features_in_different_units(cov):
    """The data covariance of income/rate has its smallest eigenvalue at ~1e-13 of its
    trace, only because of the units; its correlation matrix is far from singular."""
    X = _income_rate()
    cov_matrix = np.cov(X, rowvar=False)
    assert np.linalg.eigvalsh(cov_matrix).min() < 1e-12 * np.trace(cov_matrix)  # the old test
    prior = GMMPrior.mclust(X, 2, cov)
    assert prior.covariances.dof == 4.0


@pytest.mark.parametrize("factor", [1e-8, 1e8])
def test_default_prior_is_equivariant_under_rescaling_a_column(factor):
    X = _income_rate()
    scale = np.array([1.0, factor])
    prior = GMMPrior.mclust(X, 3, "full")
    scaled = GMMPrior.mclust(X * scale, 3, "full")
    np.testing.assert_allclose(scaled.means.mean, prior.means.mean * scale, rtol=1e-12)
    np.testing.assert_allclose(
        scaled.covariances.scale, prior.covariances.scale * np.outer(scale, scale), rtol=1e-10
    )


def test_default_prior_names_a_constant_column():
    X = _income_rate()
    df = pd.DataFrame({"income": X[:, 0], "country": 7.0, "rate": X[:, 1]})
    with pytest.raises(ValueError, match=r"constant feature\(s\) 'country' \(every row 7\)"):
        GMMPrior.mclust(df, 2, "full")
    # the same decision on a tiny and on a huge scale
    for factor in (1e-12, 1.0, 1e12):
        with pytest.raises(ValueError, match=r"constant feature.*'column 1'"):
            GMMPrior.mclust(np.c_[X[:, 0], np.full(len(X), 3.0 * factor)], 2, "full")


def test_estimator_names_a_constant_dataframe_column():
    X = _income_rate()
    df = pd.DataFrame({"income": X[:, 0], "flag": 1.0, "rate": X[:, 1]})
    with pytest.raises(ValueError, match=r"constant feature.*'flag'"):
        GaussianMixture(2, prior="default", random_state=0).fit(df)


def test_spd_scale_in_mixed_units_is_accepted_and_asymmetry_is_relative():
    """A covariance prior scale with variances 1e10 and 1e-10 (correlation 0.5) is
    positive definite; an asymmetric matrix of tiny entries is not symmetric."""
    big_small = np.array([[1e10, 0.5], [0.5, 1e-10]])
    CovariancePrior(dof=4.0, scale=big_small)
    tiny = np.array([[1e-20, 0.9e-20], [0.1e-20, 1e-20]])
    with pytest.raises(ValueError, match="symmetric"):
        CovariancePrior(dof=4.0, scale=tiny)
    with pytest.raises(ValueError, match="positive definite"):
        CovariancePrior(dof=4.0, scale=np.array([[1e10, 2e0], [2e0, 1e-10]]))
