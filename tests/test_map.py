"""MAP fits against closed-form conjugate posteriors, numerical optimization and MLE."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, stats
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import CovariancePrior, DirichletPrior, GaussianMixture, GMMPrior, NormalMeanPrior
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import log_mixture_density
from bayesgmm.datasets import make_mixture


def _fit(X, k, cov_type, prior, **kw):
    kw = {"reg_covar": 0.0, "tol": 1e-12, "max_iter": 5000, "random_state": 0, **kw}
    return GaussianMixture(k, covariance_type=cov_type, prior=prior, **kw).fit(X)


def test_one_component_full_is_the_normal_inverse_wishart_mode():
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([1.0, -2.0, 0.5], [[2, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 0.5]], 25)
    n, d = X.shape
    m0, kappa0, nu0 = np.array([0.0, 0.0, 1.0]), 0.7, d + 3.0
    psi0 = np.diag([1.0, 2.0, 0.5])
    prior = GMMPrior(
        means=NormalMeanPrior.conjugate(m0, kappa0), covariances=CovariancePrior(nu0, psi0)
    )
    xbar = X.mean(0)
    scatter = (X - xbar).T @ (X - xbar)
    kappa_n, nu_n = kappa0 + n, nu0 + n
    m_n = (kappa0 * m0 + n * xbar) / kappa_n
    psi_n = psi0 + scatter + kappa0 * n / kappa_n * np.outer(xbar - m0, xbar - m0)
    mode_cov = psi_n / (nu_n + d + 2)  # joint mode of NIW(m_n, kappa_n, nu_n, psi_n)
    for cov_type in ("full", "tied"):
        gm = _fit(X, 1, cov_type, prior)
        np.testing.assert_allclose(gm.means_[0], m_n, rtol=1e-10, atol=1e-12)
        cov = gm.covariances_ if cov_type == "tied" else gm.covariances_[0]
        np.testing.assert_allclose(cov, mode_cov, rtol=1e-10)


def test_one_component_diag_and_spherical_are_normal_inverse_gamma_modes():
    rng = np.random.default_rng(1)
    X = rng.normal([3.0, -1.0], [2.0, 0.5], size=(15, 2))
    n, d = X.shape
    m0, kappa0, nu0 = np.array([1.0, 1.0]), 2.0, 4.0
    scale = np.array([0.5, 3.0])
    xbar = X.mean(0)
    dev = kappa0 * n / (kappa0 + n) * (xbar - m0) ** 2
    w = ((X - xbar) ** 2).sum(0)
    means = (kappa0 * m0 + n * xbar) / (kappa0 + n)
    # diag: each coordinate is an independent 1-D Normal-inverse-gamma(nu0/2, scale/2)
    prior = GMMPrior(
        means=NormalMeanPrior.conjugate(m0, kappa0), covariances=CovariancePrior(nu0, scale)
    )
    gm = _fit(X, 1, "diag", prior)
    np.testing.assert_allclose(gm.means_[0], means, rtol=1e-10)
    np.testing.assert_allclose(gm.covariances_[0], (scale + w + dev) / (nu0 + n + 3), rtol=1e-10)
    # spherical: one variance for all coordinates, mclust's VII update
    prior = GMMPrior(
        means=NormalMeanPrior.conjugate(m0, kappa0), covariances=CovariancePrior(nu0, 1.5)
    )
    gm = _fit(X, 1, "spherical", prior)
    expected = (1.5 + w.sum() + dev.sum()) / (nu0 + n * d + d + 2)
    np.testing.assert_allclose(gm.covariances_[0], expected, rtol=1e-10)


def _numerical_map(X, cov_type, prior):
    """Maximize log-likelihood + log prior with scipy (one component, independent of EM)."""
    d = X.shape[1]
    model = get_covariance_model(cov_type)
    n_cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[cov_type]
    tril = np.tril_indices(d)

    def unpack(theta):
        mean = theta[:d]
        if cov_type == "full":
            lower = np.zeros((d, d))
            lower[tril] = theta[d:]
            lower[np.diag_indices(d)] = np.exp(lower[np.diag_indices(d)])
            cov = (lower @ lower.T)[None]
        else:
            cov = np.exp(theta[d:])[None] if cov_type == "diag" else np.exp(theta[d:])
        return mean[None], cov

    def negative(theta):
        means, cov = unpack(theta)
        full = model.to_full(cov, 1, d)[0]
        value = stats.multivariate_normal(means[0], full).logpdf(X).sum()
        params = (np.ones(1), means, cov, model.precision_cholesky(cov))
        from bayesgmm.core.params import GMMParams

        return -(value + prior.log_prob(GMMParams(*params), cov_type))

    theta0 = np.r_[X.mean(0), np.zeros(n_cov)]
    res = optimize.minimize(negative, theta0, method="BFGS", options={"gtol": 1e-9})
    return unpack(res.x)


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("form", ["conjugate", "independent"])
def test_fixed_point_is_the_numerical_posterior_mode(cov_type, form):
    rng = np.random.default_rng(2)
    X = rng.normal([2.0, -1.0], [1.5, 0.7], size=(12, 2))
    means_prior = (
        NormalMeanPrior.conjugate([0.0, 0.0], 3.0)
        if form == "conjugate"
        else NormalMeanPrior.independent([0.0, 0.0], [[0.5, 0.1], [0.1, 0.8]])
    )
    scale = np.eye(2) * 2.0 if cov_type == "full" else 2.0
    prior = GMMPrior(means=means_prior, covariances=CovariancePrior(4.0, scale))
    gm = _fit(X, 1, cov_type, prior)
    means, cov = _numerical_map(X, cov_type, prior)
    np.testing.assert_allclose(gm.means_, means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gm.covariances_, cov, rtol=1e-5, atol=1e-6)


def test_independent_prior_one_dimension_is_the_textbook_posterior_mean():
    rng = np.random.default_rng(3)
    X = rng.normal(4.0, 2.0, size=(20, 1))
    mu0, sigma0_sq = -1.0, 0.5
    prior = GMMPrior(means=NormalMeanPrior.independent([mu0], sigma0_sq))
    with warnings.catch_warnings():  # tol=0: iterate ECM to its fixed point
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = _fit(X, 1, "spherical", prior, tol=0.0, max_iter=500)
    n, xbar = len(X), X.mean()
    sigma_sq = gm.covariances_[0]  # the fitted variance
    sigma_n_sq = 1.0 / (n / sigma_sq + 1.0 / sigma0_sq)
    mu_n = sigma_n_sq * (n * xbar / sigma_sq + mu0 / sigma0_sq)
    assert gm.means_[0, 0] == pytest.approx(mu_n, rel=1e-9)
    # and the variance is the MLE given that mean (flat covariance prior)
    assert sigma_sq == pytest.approx(np.mean((X[:, 0] - mu_n) ** 2), rel=1e-9)


def test_dirichlet_weights_update():
    data = make_mixture(200, n_components=2, n_features=1, separation=12.0, random_state=4)
    alpha = np.array([3.0, 7.0])
    gm = _fit(data.X, 2, "diag", GMMPrior(weights=DirichletPrior(alpha)))
    resp = gm.predict_proba(data.X)
    nk = resp.sum(0)
    np.testing.assert_allclose(gm.weights_, (nk + alpha - 1) / (200 + alpha.sum() - 2), atol=1e-8)
    flat = _fit(data.X, 2, "diag", GMMPrior(weights=DirichletPrior(1.0)))
    mle = _fit(data.X, 2, "diag", None)
    np.testing.assert_allclose(flat.weights_, mle.weights_, rtol=1e-9)


PRIORS = {
    "default": "default",
    "independent": "independent",
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 4),
    d=st.integers(1, 3),
    n_per=st.integers(2, 30),
    cov_type=st.sampled_from(["full", "tied", "diag", "spherical"]),
    form=st.sampled_from(["conjugate", "independent"]),
    alpha=st.sampled_from([1.0, 2.5]),
)
def test_map_objective_never_decreases(seed, k, d, n_per, cov_type, form, alpha):
    data = make_mixture(n_per * k + d + 1, n_components=k, n_features=d, random_state=seed)
    prior = GMMPrior.default(data.X, k, cov_type, alpha=alpha)
    if form == "independent":
        prior = GMMPrior(
            prior.weights, NormalMeanPrior.independent(data.X.mean(0), 4.0), prior.covariances
        )
    gm = GaussianMixture(
        k,
        covariance_type=cov_type,
        prior=prior,
        reg_covar=0.0,
        tol=0.0,
        max_iter=40,
        init_params="random",
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(data.X)
    lb = gm.lower_bounds_
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:])), np.diff(lb).min()


def test_lower_bound_is_log_likelihood_plus_log_prior(covariance_type):
    data = make_mixture(150, n_components=3, random_state=5)
    gm = GaussianMixture(
        3,
        covariance_type=covariance_type,
        prior="default",
        reg_covar=0.0,
        tol=1e-12,
        max_iter=3000,
        random_state=0,
    ).fit(data.X)
    params = gm._params()
    objective = log_mixture_density(data.X, params, covariance_type).sum()
    objective += gm.prior_.log_prob(params, covariance_type)
    assert gm.lower_bound_ * 150 == pytest.approx(objective, abs=1e-8)
    assert isinstance(gm.prior_, GMMPrior)


def test_shrinkage_pulls_means_to_m0_and_more_data_approaches_mle():
    data = make_mixture(300, n_components=2, n_features=2, separation=6.0, random_state=6)
    m0 = np.array([10.0, -10.0])
    default = GMMPrior.default(data.X, 2)
    distances = []
    for kappa in (0.01, 1.0, 100.0, 1e5):
        prior = GMMPrior(
            means=NormalMeanPrior.conjugate(m0, kappa), covariances=default.covariances
        )
        gm = _fit(data.X, 2, "full", prior, tol=1e-9)
        distances.append(np.abs(gm.means_ - m0).max())
    assert all(a > b for a, b in itertools.pairwise(distances))
    assert distances[-1] < 0.05
    gaps = []
    for n in (30, 300, 3000):
        sample = make_mixture(n, n_components=2, n_features=2, separation=6.0, random_state=7)
        mle = _fit(sample.X, 2, "full", None, tol=1e-9)
        map_ = GaussianMixture(
            2,
            prior="default",
            reg_covar=0.0,
            tol=1e-9,
            max_iter=5000,
            means_init=mle.means_,
            weights_init=mle.weights_,
            precisions_init=mle.precisions_,
        ).fit(sample.X)
        gaps.append(np.abs(map_.covariances_ - mle.covariances_).max())
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.01


def test_map_keeps_small_components_positive_definite_where_mle_collapses():
    rng = np.random.default_rng(8)
    d = 5
    X = np.r_[rng.normal(0, 1, size=(4, d)), rng.normal(6, 1, size=(4, d))]
    means_init = X[[0, 4]]
    with pytest.raises(ValueError, match=r"not positive definite.*prior='default'"):
        GaussianMixture(2, reg_covar=0.0, means_init=means_init).fit(X)
    gm = GaussianMixture(2, prior="default", reg_covar=0.0, means_init=means_init).fit(X)
    assert np.all(np.linalg.eigvalsh(gm.covariances_) > 0)
    assert np.all(np.isfinite(gm.score_samples(X)))


def test_map_sample_weight_equals_repeated_rows(covariance_type):
    data = make_mixture(80, n_components=2, random_state=9)
    w = np.arange(80) % 3
    start = _fit(data.X, 2, covariance_type, None, tol=1e-3)
    kw = dict(
        covariance_type=covariance_type,
        prior="default",
        means_init=start.means_,
        weights_init=start.weights_,
        precisions_init=start.precisions_,
        tol=1e-10,
        max_iter=500,
    )
    a = GaussianMixture(2, **kw).fit(data.X, sample_weight=w)
    b = GaussianMixture(2, **kw).fit(np.repeat(data.X, w, axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-10)


@pytest.mark.parametrize(
    ("prior", "message"),
    [
        ("flat", r"must be None .*, one of \['default', 'pooled', 'mclust'\].* got 'flat'"),
        (GMMPrior(weights=DirichletPrior(0.5)), "alpha >= 1"),
        (GMMPrior(weights=DirichletPrior([1.0, 1.0, 1.0])), "3 entries but the model has 2"),
        (GMMPrior(means=NormalMeanPrior.conjugate([0.0, 0.0, 0.0])), "3,\\).*2 features"),
        (GMMPrior(covariances=CovariancePrior(0.5, np.eye(2))), "needs dof > 1"),
        (GMMPrior(covariances=CovariancePrior(3.0, np.eye(3))), "does not fit"),
    ],
)
def test_bad_priors_are_rejected_with_a_reason(prior, message):
    X = make_mixture(40, n_components=2, random_state=0).X
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, prior=prior).fit(X)


def test_bic_at_map_uses_the_data_likelihood():
    data = make_mixture(100, n_components=2, random_state=10)
    gm = GaussianMixture(2, prior="default", random_state=0).fit(data.X)
    loglik = gm.score(data.X) * 100
    assert gm.bic(data.X) == pytest.approx(-2 * loglik + gm.n_parameters() * np.log(100))
