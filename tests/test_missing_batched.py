"""The batched missing-data E-step against a naive per-row reference.

The kernels of :mod:`bayesgmm.core.missing` batch the work over missingness patterns
(one factorization per pattern size, one GEMM per run of rows, statistics from each
pattern's moments) or need no patterns at all (diagonal types). The reference here
goes row by row and component by component: the scipy marginal of the observed
coordinates, and the conditional mean and covariance of the missing ones by
``np.linalg.solve``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.estep import e_step, plan_chunks
from bayesgmm.core.missing import missing_statistics, observed_log_gaussian
from bayesgmm.core.params import GMMParams

# The four scikit-learn names and some mclust families (both kernels, every table path).
TYPES = ["full", "tied", "diag", "spherical", "VEV", "EEE", "VEI", "EII"]


def _random_params(rng, k, d, covariance_type):
    model = get_covariance_model(covariance_type)
    full = np.empty((k, d, d))
    for j in range(k):
        a = rng.standard_normal((d, d))
        full[j] = a @ a.T / d + 0.3 * np.eye(d)
    covariances = model.from_full(full)
    return GMMParams(
        rng.dirichlet(np.ones(k) * 2),
        rng.normal(size=(k, d)),
        covariances,
        model.precision_cholesky(covariances),
    )


def _data(rng, n, d):
    """Random patterns: complete rows, rows with one observed value, one empty row."""
    X = rng.normal(size=(n, d)) * 1.5
    holes = rng.random((n, d)) < 0.35
    holes[:5] = False  # complete rows
    for row in range(5, 15):  # everything missing but one value
        holes[row] = True
        holes[row, rng.integers(d)] = False
    holes[15] = True  # nothing observed
    X[holes] = np.nan
    return X


def _naive(X, params, covariance_type, weights):
    """Per row and component: log pi_k + log N(x_O), responsibilities, and the
    completed-row statistics with the conditional covariance on the missing block."""
    k, d = params.means.shape
    full = get_covariance_model(covariance_type).to_full(params.covariances, k, d)
    log_weighted = np.zeros((len(X), k))
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        for j in range(k):
            dens = 0.0
            if o.any():
                dens = multivariate_normal(params.means[j][o], full[j][np.ix_(o, o)]).logpdf(x[o])
            log_weighted[n, j] = np.log(params.weights[j]) + dens
    log_norm = logsumexp(log_weighted, axis=1)
    resp = np.exp(log_weighted - log_norm[:, None])
    counts, sum_x, second = np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
    for n, x in enumerate(X):
        o, m = ~np.isnan(x), np.isnan(x)
        for j in range(k):
            mu, s = params.means[j], full[j]
            x_hat = x.copy()
            cond = np.zeros((d, d))
            if o.any():
                gain = np.linalg.solve(s[np.ix_(o, o)], s[np.ix_(o, m)]).T  # S_MO S_OO^-1
                x_hat[m] = mu[m] + gain @ (x[o] - mu[o])
                cond[np.ix_(m, m)] = s[np.ix_(m, m)] - gain @ s[np.ix_(o, m)]
            else:
                x_hat, cond = mu.copy(), s.copy()
            r = resp[n, j] * weights[n]
            counts[j] += r
            sum_x[j] += r * x_hat
            second[j] += r * (np.outer(x_hat, x_hat) + cond)
    return log_weighted, log_norm, counts, sum_x, second


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize(("chunk", "n_workers"), [(None, 1), (7, 1), (7, 3)])
def test_batched_e_step_equals_naive_rows(covariance_type, chunk, n_workers):
    rng = np.random.default_rng(11)
    d, k = 4, 3
    X = _data(rng, 80, d)
    params = _random_params(rng, k, d, covariance_type)
    w = rng.random(len(X)) + 0.5
    log_weighted, log_norm, counts, sum_x, second = _naive(X, params, covariance_type, w)
    plan = plan_chunks(X, k, covariance_type, chunk_size=chunk)
    out_lw = np.empty((len(X), k))
    out_lr = np.empty((len(X), k))
    out_norm = np.empty(len(X))
    result = e_step(
        X,
        params,
        covariance_type,
        sample_weight=w,
        log_weighted=out_lw,
        log_resp=out_lr,
        log_prob_norm=out_norm,
        plan=plan,
        n_workers=n_workers,
    )
    np.testing.assert_allclose(out_lw, log_weighted, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out_norm, log_norm, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out_lr, log_weighted - log_norm[:, None], rtol=1e-9, atol=1e-11)
    assert result.log_likelihood == pytest.approx(w @ log_norm, rel=1e-11)
    model = get_covariance_model(covariance_type)
    stats = result.stats
    np.testing.assert_allclose(stats.n, counts, rtol=1e-11)
    np.testing.assert_allclose(stats.sum_x, sum_x, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(
        stats.sum_xx, model.second_moment_from_full(second), rtol=1e-10, atol=1e-10
    )
    # Scoring (statistics=False) centers at the mixture mean: the same densities.
    scored = np.empty((len(X), k))
    e_step(X, params, covariance_type, statistics=False, log_weighted=scored, plan=plan)
    np.testing.assert_allclose(scored, log_weighted, rtol=1e-10, atol=1e-12)
    assert scored[15] == pytest.approx(np.log(params.weights), abs=1e-14)  # nothing observed


@pytest.mark.parametrize("covariance_type", ["full", "diag", "EEE"])
def test_whole_array_helpers_equal_naive_rows(covariance_type):
    """``observed_log_gaussian`` and ``missing_statistics`` (all rows as one chunk)."""
    rng = np.random.default_rng(5)
    d, k = 5, 2
    X = _data(rng, 60, d)
    params = _random_params(rng, k, d, covariance_type)
    w = rng.integers(1, 4, len(X)).astype(float)
    log_weighted, log_norm, counts, sum_x, second = _naive(X, params, covariance_type, w)
    np.testing.assert_allclose(
        observed_log_gaussian(X, params, covariance_type) + np.log(params.weights),
        log_weighted,
        rtol=1e-10,
        atol=1e-12,
    )
    resp = np.exp(log_weighted - log_norm[:, None])
    stats = missing_statistics(X, resp, params, covariance_type, sample_weight=w)
    model = get_covariance_model(covariance_type)
    np.testing.assert_allclose(stats.n, counts, rtol=1e-11)
    np.testing.assert_allclose(stats.sum_x, sum_x, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(
        stats.sum_xx, model.second_moment_from_full(second), rtol=1e-10, atol=1e-10
    )


def test_plan_groups_rows_only_where_the_kernel_needs_it():
    """Types with ``independent_features`` get no pattern table (no grouping); the
    others get runs of rows that each share one pattern."""
    rng = np.random.default_rng(0)
    X = _data(rng, 50, 3)
    assert plan_chunks(X, 2, "diag", chunk_size=8).pattern_table is None
    plan = plan_chunks(X, 2, "full", chunk_size=8)
    table = plan.pattern_table
    for rows, pieces in zip(plan.chunks, plan.patterns, strict=True):
        if pieces is None:
            assert not np.isnan(X[rows]).any()
            continue
        block = ~np.isnan(X[rows])
        covered = 0
        for start, stop, pattern in pieces.pieces:
            assert start == covered
            covered = stop
            np.testing.assert_array_equal(
                block[start:stop], np.broadcast_to(table[pattern], (stop - start, 3))
            )
        assert covered == len(block)
