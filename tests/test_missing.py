"""Missing values (NaN): exact observed-data EM, MAP, prediction and imputation.

References: the complete-data code, Little & Rubin's factored likelihood for a monotone
pattern, scipy.stats marginals, a numerical optimizer of the observed-data objective.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning

import bayesgmm.core.estep as estep_module
from bayesgmm import GaussianMixture, GMMPrior, bootstrap, select_model
from bayesgmm.core.covariance import (
    COVARIANCE_TYPES,
    CollapsedComponentError,
    get_covariance_model,
)
from bayesgmm.core.missing import missing_statistics, observed_log_gaussian, observed_moments
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats
from bayesgmm.datasets import load_faithful, load_iris, make_mixture


def _mask(X, fraction, seed, keep_one=True):
    """X with a fraction of its cells set to NaN (each row keeps one value)."""
    rng = np.random.default_rng(seed)
    holes = rng.random(X.shape) < fraction
    if keep_one:
        full_rows = holes.all(axis=1)
        holes[full_rows, rng.integers(0, X.shape[1], full_rows.sum())] = False
    out = np.array(X, dtype=float, copy=True)
    out[holes] = np.nan
    return out


def _brute_log_densities(X, gm):
    """log pi_k + log N(x_O | mu_O, Sigma_OO) row by row with scipy."""
    k, d = gm.means_.shape
    full = get_covariance_model(gm.covariance_type).to_full(gm.covariances_, k, d)
    out = np.zeros((X.shape[0], k))
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        for j in range(k):
            dens = (
                multivariate_normal(gm.means_[j][o], full[j][np.ix_(o, o)]).logpdf(x[o])
                if o.any()
                else 0.0
            )
            out[n, j] = np.log(gm.weights_[j]) + dens
    return out


def _fit(X, cov, k=3, sample_weight=None, **kw):
    kw = {"random_state": 0, "tol": 1e-10, "max_iter": 2000, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(k, covariance_type=cov, **kw).fit(X, sample_weight=sample_weight)


# -- no NaN: the missing-data code is the complete-data code --------------------------
@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "data",
    [
        lambda: load_faithful().to_numpy(),
        lambda: load_iris().to_numpy()[:, :4],
        lambda: make_mixture(300, n_components=3, n_features=4, random_state=3).X,
    ],
)
def test_missing_kernels_on_complete_data_equal_complete_code(data, cov, monkeypatch):
    X = np.asarray(data(), dtype=float)
    w = np.random.default_rng(0).integers(1, 4, X.shape[0]).astype(float)
    reference = _fit(X, cov, sample_weight=w, max_iter=50)
    # Force the missing-data E-step (patterns, conditional statistics) on every chunk.
    monkeypatch.setattr(estep_module, "has_missing", lambda X: True)
    monkeypatch.setattr(estep_module, "_COMPLETE_ROWS_BY_KERNEL", False)
    forced = _fit(X, cov, sample_weight=w, max_iter=50)
    assert forced.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(forced.lower_bounds_, reference.lower_bounds_, rtol=1e-12)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(
            getattr(forced, name), getattr(reference, name), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_statistics_and_densities_on_complete_data(cov):
    X = make_mixture(120, n_components=2, n_features=3, random_state=1).X
    gm = _fit(X, cov, k=2, max_iter=20)
    params = gm._params()
    resp = gm.predict_proba(X)
    complete = SufficientStats.from_responsibilities(X, resp, cov)
    missing = missing_statistics(X, resp, params, cov)
    for name in ("n", "sum_x", "sum_xx"):
        np.testing.assert_allclose(getattr(missing, name), getattr(complete, name), rtol=1e-12)
    np.testing.assert_allclose(
        observed_log_gaussian(X, params, cov),
        get_covariance_model(cov).log_gaussian(X, params.means, params.precisions_cholesky),
        rtol=1e-12,
    )


# -- monotone pattern: Little & Rubin's factored likelihood ---------------------------
def test_one_component_monotone_pattern_equals_factored_likelihood():
    rng = np.random.default_rng(7)
    n, n_complete = 200, 120
    x1 = rng.normal(2.0, 1.5, n)
    x2 = 1.0 + 0.8 * x1 + rng.normal(0.0, 0.7, n)
    X = np.column_stack([x1, x2])
    X[n_complete:, 1] = np.nan
    gm = _fit(X, "full", k=1, reg_covar=0.0, tol=1e-14, max_iter=10_000)
    # Factored likelihood: the marginal of x1 from all rows, the regression of x2 on x1
    # from the complete rows (maximum likelihood, 1/n denominators).
    mu1, s11 = x1.mean(), x1.var()
    c1, c2 = x1[:n_complete], X[:n_complete, 1]
    b = np.cov(c1, c2, bias=True)[0, 1] / c1.var()
    a = c2.mean() - b * c1.mean()
    s22_1 = np.mean((c2 - a - b * c1) ** 2)
    expected_mean = [mu1, a + b * mu1]
    expected_cov = [[s11, b * s11], [b * s11, s22_1 + b * b * s11]]
    np.testing.assert_allclose(gm.means_[0], expected_mean, rtol=1e-6)
    np.testing.assert_allclose(gm.covariances_[0], expected_cov, rtol=1e-6)
    mean, cov = observed_moments(X)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-6)
    np.testing.assert_allclose(cov, np.asarray(expected_cov) * n / (n - 1), rtol=1e-6)


# -- prediction on rows with NaN against scipy marginals ------------------------------
@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_score_and_memberships_equal_scipy_marginals(cov):
    X = make_mixture(200, n_components=3, n_features=3, separation=3, random_state=2).X
    Xm = _mask(X, 0.3, seed=1)
    Xm[5] = np.nan  # one row with nothing observed
    with pytest.warns(UserWarning, match="1 of 200 rows have no observed value"):
        gm = _fit(Xm, cov, max_iter=100)
    brute = _brute_log_densities(Xm, gm)
    np.testing.assert_allclose(
        gm.score_samples(Xm), logsumexp(brute, axis=1), rtol=1e-10, atol=1e-14
    )
    proba = np.exp(brute - logsumexp(brute, axis=1, keepdims=True))
    np.testing.assert_allclose(gm.predict_proba(Xm), proba, rtol=1e-9, atol=1e-12)
    # The row with nothing observed: density 1 (log 0), the weights as memberships.
    assert gm.score_samples(Xm)[5] == pytest.approx(0.0, abs=1e-14)
    np.testing.assert_allclose(gm.predict_proba(Xm)[5], gm.weights_)


def test_bic_counts_rows_with_an_observed_value():
    X = make_mixture(150, n_components=2, n_features=2, random_state=4).X
    Xm = _mask(X, 0.2, seed=2)
    Xm[:3] = np.nan
    with pytest.warns(UserWarning, match="rows have no observed value"):
        gm = _fit(Xm, "full", k=2, max_iter=100)
    loglik = gm.score_samples(Xm).sum()
    assert gm.bic(Xm) == pytest.approx(-2 * loglik + gm.n_parameters() * np.log(147))
    assert gm.information_criteria(Xm)["log_likelihood"] == pytest.approx(loglik)


# -- the EM fixed point maximizes the observed-data objective -------------------------
def _unpack(theta, k, d):
    logits = np.r_[theta[: k - 1], 0.0]
    weights = np.exp(logits - logsumexp(logits))
    means = theta[k - 1 : k - 1 + k * d].reshape(k, d)
    tri = np.tril_indices(d)
    covs = []
    for chunk in np.split(theta[k - 1 + k * d :], k):
        lower = np.zeros((d, d))
        lower[tri] = chunk
        lower[np.diag_indices(d)] = np.exp(lower[np.diag_indices(d)])
        covs.append(lower @ lower.T)
    return weights, means, np.array(covs)


def _pack(weights, means, covs):
    logw = np.log(weights)
    tri = np.tril_indices(means.shape[1])
    parts = [logw[:-1] - logw[-1], means.ravel()]
    for cov in covs:
        lower = np.linalg.cholesky(cov)
        lower[np.diag_indices(cov.shape[0])] = np.log(np.diag(lower))
        parts.append(lower[tri])
    return np.concatenate(parts)


def _objective(theta, X, k, d, prior):
    weights, means, covs = _unpack(theta, k, d)
    observed = ~np.isnan(X)
    total = 0.0
    for pattern in np.unique(observed, axis=0):
        rows = X[(observed == pattern).all(axis=1)][:, pattern]
        dens = [
            np.log(weights[j])
            + np.atleast_1d(
                multivariate_normal(means[j][pattern], covs[j][np.ix_(pattern, pattern)]).logpdf(
                    rows
                )
            )
            for j in range(k)
        ]
        total += logsumexp(np.array(dens), axis=0).sum()
    if prior is not None:
        prec_chol = get_covariance_model("full").precision_cholesky(covs)
        params = GMMParams(weights, means, covs, prec_chol)
        total += prior.log_prob(params, "full")
    return -total


@pytest.mark.parametrize("use_prior", [False, True])
@pytest.mark.parametrize("k", [2, 3])
def test_em_fixed_point_is_a_maximum_of_the_observed_data_objective(k, use_prior):
    X = make_mixture(50 * k, n_components=k, n_features=2, separation=5, random_state=k).X
    Xm = _mask(X, 0.25, seed=k)
    prior = GMMPrior.default(Xm, k, "full") if use_prior else None
    gm = _fit(Xm, "full", k=k, reg_covar=0.0, tol=1e-13, max_iter=20_000, prior=prior, n_init=5)
    theta = _pack(gm.weights_, gm.means_, gm.covariances_)
    at_em = _objective(theta, Xm, k, 2, gm.prior_)
    # The EM objective is the same function.
    assert -at_em == pytest.approx(gm.lower_bound_ * len(Xm), rel=1e-9)
    best = optimize.minimize(_objective, theta, args=(Xm, k, 2, gm.prior_), method="BFGS")
    assert best.fun >= at_em - 1e-6 * abs(at_em)


# -- monotone objective: types, patterns, prior on/off, weights -----------------------
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 3),
    d=st.integers(2, 4),
    cov=st.sampled_from(list(COVARIANCE_TYPES)),
    fraction=st.sampled_from([0.1, 0.3, 0.5]),
    with_prior=st.booleans(),
    weighted=st.booleans(),
)
def test_objective_never_decreases_with_missing_values(
    seed, k, d, cov, fraction, with_prior, weighted
):
    X = make_mixture(30 * k * d, n_components=k, n_features=d, random_state=seed).X
    Xm = _mask(X, fraction, seed)
    w = np.random.default_rng(seed).integers(1, 4, len(Xm)).astype(float) if weighted else None
    gm = GaussianMixture(
        k,
        covariance_type=cov,
        prior="default" if with_prior else None,
        reg_covar=0.0,
        tol=0.0,
        max_iter=40,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            gm.fit(Xm, sample_weight=w)
        except CollapsedComponentError:
            # An MLE start that collapses has no EM path to check (the error itself is
            # tested in test_degeneracy.py).
            assume(False)
    variances = np.diagonal(
        get_covariance_model(cov).to_full(gm.covariances_, k, d), axis1=1, axis2=2
    )
    assume(variances.min() > 1e-8 * np.nanvar(Xm, axis=0).min())
    lb = gm.lower_bounds_
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:])), np.diff(lb).min()


# -- weights, reproducibility -----------------------------------------------------------
@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_frequency_weights_equal_repeated_rows_with_nan(cov):
    X = make_mixture(90, n_components=2, n_features=3, random_state=5).X
    Xm = _mask(X, 0.2, seed=5)
    w = np.random.default_rng(1).integers(1, 4, len(Xm))
    start = _fit(Xm, cov, k=2, max_iter=5)
    inits = {
        "weights_init": start.weights_,
        "means_init": start.means_,
        "precisions_init": start.precisions_,
    }
    weighted = _fit(Xm, cov, k=2, sample_weight=w.astype(float), **inits)
    repeated = _fit(np.repeat(Xm, w, axis=0), cov, k=2, **inits)
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-8)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-8)
    assert weighted.lower_bound_ == pytest.approx(repeated.lower_bound_, rel=1e-10)


def test_random_state_gives_bit_identical_fits_with_nan():
    Xm = _mask(make_mixture(200, n_components=3, n_features=3, random_state=6).X, 0.2, 6)
    a = _fit(Xm, "full", n_init=3, random_state=11, tol=1e-3)
    b = _fit(Xm, "full", n_init=3, random_state=11, tol=1e-3)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.lower_bounds_, b.lower_bounds_)


def test_input_with_nan_is_not_modified():
    Xm = _mask(load_faithful().to_numpy(), 0.1, seed=0)
    copy = Xm.copy()
    gm = _fit(Xm, "tied", k=2, tol=1e-3)
    gm.impute(Xm)
    gm.impute(Xm, n_imputations=2, random_state=0)
    np.testing.assert_array_equal(Xm, copy)


# -- imputation ------------------------------------------------------------------------
@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_impute_is_the_conditional_mean(cov):
    X = make_mixture(150, n_components=2, n_features=3, separation=3, random_state=8).X
    Xm = _mask(X, 0.3, seed=8, keep_one=False)
    Xm[0] = np.nan
    with pytest.warns(UserWarning, match="no observed value"):
        gm = _fit(Xm, cov, k=2, max_iter=200)
    filled = gm.impute(Xm)
    observed = ~np.isnan(Xm)
    np.testing.assert_array_equal(filled[observed], Xm[observed])
    # A brute-force conditional mean, row by row.
    k, d = gm.means_.shape
    full = get_covariance_model(cov).to_full(gm.covariances_, k, d)
    resp = gm.predict_proba(Xm)
    for n in range(1, 40):
        o, m = observed[n], ~observed[n]
        if not m.any():
            continue
        expected = sum(
            resp[n, j]
            * (
                gm.means_[j][m]
                + full[j][np.ix_(m, o)]
                @ np.linalg.solve(full[j][np.ix_(o, o)], Xm[n, o] - gm.means_[j][o])
            )
            for j in range(k)
        )
        np.testing.assert_allclose(filled[n, m], expected, rtol=1e-10)
    # Nothing observed: the mixture mean.
    np.testing.assert_allclose(filled[0], gm.weights_ @ gm.means_)


def test_multiple_imputation_intervals_are_calibrated():
    data = make_mixture(2000, n_components=2, n_features=3, separation=2.5, random_state=9)
    X = data.X
    Xm = _mask(X, 0.2, seed=9)
    gm = _fit(Xm, "full", k=2, tol=1e-6)
    draws = gm.impute(Xm, n_imputations=400, random_state=1)
    assert draws.shape == (400, *X.shape)
    holes = np.isnan(Xm)
    lower, upper = np.quantile(draws, [0.05, 0.95], axis=0)
    covered = (lower <= X) & (upper >= X)
    coverage = covered[holes].mean()
    assert abs(coverage - 0.90) < 0.03, coverage
    # Observed cells are repeated untouched in every draw.
    kept = np.broadcast_to(Xm[~holes], (400, (~holes).sum()))
    np.testing.assert_array_equal(draws[:, ~holes], kept)


def test_impute_arguments_are_checked():
    gm = _fit(load_faithful().to_numpy(), "full", k=2, tol=1e-3)
    with pytest.raises(ValueError, match="n_imputations must be >= 1"):
        gm.impute(load_faithful(), n_imputations=0)
    with pytest.raises(ValueError, match="positive integer"):
        gm.impute(load_faithful(), n_imputations=2.5)
    with pytest.raises(ValueError, match="infinite"):
        gm.impute(np.array([[np.inf, 1.0]]))


# -- the rest of the package takes NaN ------------------------------------------------
@pytest.mark.parametrize("kind", ["nonparametric", "parametric"])
def test_bootstrap_with_missing_values(kind):
    X = make_mixture(200, n_components=2, n_features=2, separation=5, random_state=10).X
    Xm = _mask(X, 0.2, seed=10)
    Xm[0] = np.nan
    with pytest.warns(UserWarning, match="no observed value"):
        gm = _fit(Xm, "full", k=2, tol=1e-6)
    boot = bootstrap(gm, Xm, n_boot=20, kind=kind, random_state=0)
    assert boot.n_failed == 0
    se = boot.standard_errors()["means"].to_numpy()
    assert np.isfinite(se).all()
    assert (se > 0).all()
    # Fewer observed values, wider intervals: the complete data's bootstrap is tighter.
    complete = bootstrap(_fit(X, "full", k=2, tol=1e-6), X, n_boot=20, kind=kind, random_state=0)
    assert se.mean() > complete.standard_errors()["means"].to_numpy().mean()


def test_select_model_with_missing_values():
    data = make_mixture(300, n_components=3, n_features=2, separation=6, random_state=11)
    Xm = _mask(data.X, 0.15, seed=11)
    sel = select_model(Xm, range(1, 5), ["full", "diag"], random_state=0)
    assert sel.best_params["n_components"] == 3
    cell = sel.table.set_index(["n_components", "covariance_type"]).loc[(3, "full")]
    refit = sel.best_estimator if sel.best_params["covariance_type"] == "full" else None
    if refit is not None:
        assert cell["bic"] == pytest.approx(refit.bic(Xm))
