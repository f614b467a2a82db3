"""Densities against scipy.stats, the covariance table against naive definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import log_mixture_density, responsibilities
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats


def random_params(rng, k, d, cov_type) -> GMMParams:
    full = np.empty((k, d, d))
    for j in range(k):
        a = rng.standard_normal((d, d))
        full[j] = a @ a.T + 0.5 * np.eye(d)
    model = get_covariance_model(cov_type)
    cov = model.from_full(full)
    weights = rng.dirichlet(np.ones(k))
    return GMMParams(weights, rng.normal(size=(k, d)) * 3, cov, model.precision_cholesky(cov))


@pytest.mark.parametrize("d", [1, 2, 5])
def test_component_densities_match_scipy(covariance_type, d):
    rng = np.random.default_rng(0)
    k = 3
    params = random_params(rng, k, d, covariance_type)
    X = rng.normal(size=(50, d)) * 3
    model = get_covariance_model(covariance_type)
    got = model.log_gaussian(X, params.means, params.precisions_cholesky)
    full = model.to_full(params.covariances, k, d)
    for j in range(k):
        expected = multivariate_normal(params.means[j], full[j]).logpdf(X)
        np.testing.assert_allclose(got[:, j], expected, rtol=1e-10, atol=1e-10)


def test_mixture_density_and_responsibilities_match_naive_loop(covariance_type):
    rng = np.random.default_rng(1)
    k, d = 4, 3
    params = random_params(rng, k, d, covariance_type)
    X = rng.normal(size=(30, d)) * 3
    full = get_covariance_model(covariance_type).to_full(params.covariances, k, d)
    naive = np.zeros((30, k))
    for n in range(30):
        for j in range(k):
            naive[n, j] = params.weights[j] * multivariate_normal(params.means[j], full[j]).pdf(
                X[n]
            )
    np.testing.assert_allclose(
        log_mixture_density(X, params, covariance_type), np.log(naive.sum(1)), rtol=1e-10
    )
    log_norm, log_resp = responsibilities(X, params, covariance_type)
    np.testing.assert_allclose(np.exp(log_resp), naive / naive.sum(1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(log_norm, logsumexp(np.log(naive), axis=1), rtol=1e-10)


def test_precision_factorizations_round_trip(covariance_type):
    rng = np.random.default_rng(2)
    k, d = 3, 4
    params = random_params(rng, k, d, covariance_type)
    model = get_covariance_model(covariance_type)
    full_cov = model.to_full(params.covariances, k, d)
    prec = model.to_full(model.precisions(params.precisions_cholesky), k, d)
    np.testing.assert_allclose(prec, np.linalg.inv(full_cov), rtol=1e-9, atol=1e-12)
    back = model.covariances_from_precision_cholesky(params.precisions_cholesky)
    np.testing.assert_allclose(back, params.covariances, rtol=1e-10)
    # from precisions (the user-given init path): same covariance back
    pc = model.precision_cholesky_from_precisions(model.precisions(params.precisions_cholesky))
    np.testing.assert_allclose(
        model.covariances_from_precision_cholesky(pc), params.covariances, rtol=1e-9
    )
    sign, logdet = np.linalg.slogdet(full_cov)
    assert np.all(sign > 0)
    np.testing.assert_allclose(
        np.broadcast_to(model.log_det_precision_cholesky(params.precisions_cholesky, d), (k,)),
        -0.5 * logdet,
        rtol=1e-10,
    )


def test_mle_update_matches_weighted_definition(covariance_type):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    resp = rng.dirichlet(np.ones(2), size=40)
    model = get_covariance_model(covariance_type)
    stats = SufficientStats.from_responsibilities(X, resp, covariance_type)
    means = stats.sum_x / stats.n[:, None]
    scatter = model.scatter(stats.n, stats.sum_x, stats.sum_xx, means)
    cov = model.update(stats.n, scatter, reg_covar=0.0)
    naive_full = np.stack([np.cov(X.T, aweights=resp[:, j], bias=True) for j in range(2)])
    naive = {
        "full": naive_full,
        "tied": np.einsum("k,kij->ij", stats.n, naive_full) / stats.n.sum(),
        "diag": np.diagonal(naive_full, axis1=1, axis2=2),
        "spherical": np.diagonal(naive_full, axis1=1, axis2=2).mean(1),
    }[covariance_type]
    np.testing.assert_allclose(cov, naive, rtol=1e-10)


def test_sufficient_stats_are_additive(covariance_type):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 3))
    resp = rng.dirichlet(np.ones(3), size=60)
    w = rng.integers(0, 4, size=60).astype(float)
    whole = SufficientStats.from_responsibilities(X, resp, covariance_type, w)
    parts = SufficientStats.from_responsibilities(
        X[:25], resp[:25], covariance_type, w[:25]
    ) + SufficientStats.from_responsibilities(X[25:], resp[25:], covariance_type, w[25:])
    for a, b in zip(
        (whole.n, whole.sum_x, whole.sum_xx), (parts.n, parts.sum_x, parts.sum_xx), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    other = "full" if covariance_type != "full" else "diag"
    with pytest.raises(ValueError, match="Cannot add"):
        whole + SufficientStats.from_responsibilities(X, resp, other)


def test_collapsed_component_is_named():
    from bayesgmm.core.covariance import CollapsedComponentError

    model = get_covariance_model("full")
    cov = np.stack([np.eye(2), np.zeros((2, 2))])
    with pytest.raises(CollapsedComponentError, match="component 1") as info:
        model.precision_cholesky(cov)
    assert info.value.component == 1
    with pytest.raises(CollapsedComponentError, match="component 2"):
        get_covariance_model("diag").precision_cholesky(np.array([[1.0, 1], [1, 1], [1, 0]]))
