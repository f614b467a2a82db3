"""The pooled (empirical-Bayes) prior, GMMPrior.pooled: its scale against naive loops over
the preliminary fit's responsibilities (with and without NaN), its MAP fixed point
against scipy's numerical maximization, a monotone objective in every covariance type
that has a prior, equivariance, and the names that select it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import optimize, special, stats

from bayesgmm import GaussianMixture, GMMPrior
from bayesgmm.core.covariance import COVARIANCE_MODELS, get_covariance_model
from bayesgmm.core.density import log_mixture_density
from bayesgmm.core.params import GMMParams
from bayesgmm.datasets import make_mixture
from bayesgmm.priors import (
    PRIOR_NAMES,
    CovariancePrior,
    DirichletPrior,
    NormalMeanPrior,
    resolve_prior,
)

DATA = make_mixture(60, n_components=2, n_features=3, separation=4, random_state=3)
X = DATA.X


def _preliminary(Xz: np.ndarray, k: int, cov_type: str) -> GaussianMixture:
    """The preliminary fit the pooled prior documents, rebuilt through the estimator:
    mclust's form of prior with the identity (the standardized data's diagonal) / K^(2/d),
    3 k-means starts from seed 0, tol 1e-3, reg_covar 0."""
    d = Xz.shape[1]
    model = get_covariance_model(cov_type)
    prior = GMMPrior(
        DirichletPrior(1.0),
        NormalMeanPrior.conjugate(np.zeros(d), 0.01),
        CovariancePrior(d + 2.0, model.pooled_prior_scale(np.eye(d)) / k ** (2 / d)),
    )
    gm = GaussianMixture(
        k, covariance_type=cov_type, prior=prior, n_init=3, random_state=0, reg_covar=0.0
    )
    return gm.fit(Xz)


def _naive_pooled(X: np.ndarray, k: int, cov_type: str) -> np.ndarray:
    """S of the docstring by loops over rows and components (complete data)."""
    n, d = X.shape
    mean, sd = X.mean(0), X.std(0, ddof=1)
    Z = (X - mean) / sd
    resp = _preliminary(Z, k, cov_type).predict_proba(Z)
    W = np.zeros((d, d))
    for j in range(k):
        center = resp[:, j] @ Z / resp[:, j].sum()
        for i in range(n):
            W += resp[i, j] * np.outer(Z[i] - center, Z[i] - center)
    S = (W + np.eye(d) / k ** (2 / d)) / (n - k + 1)
    return S * np.outer(sd, sd)


# The prior-mode counts of the MAP updates in the design notes: full
# (Psi0 + W)/(nu0 + d + 2 + n_k), tied (Psi0 + W)/(nu0 + d + 1 + K + n), diag
# (psi0 + W)/(nu0 + 3 + n_k), spherical (psi0 + tr W)/(nu0 + 2 + d (n_k + 1)).
COUNTS = {
    "full": lambda nu, d, k: nu + d + 2,
    "tied": lambda nu, d, k: nu + d + 1 + k,
    "diag": lambda nu, d, k: nu + 3,
    "spherical": lambda nu, d, k: nu + 2 + d,
}


@pytest.mark.parametrize("cov_type", ["full", "tied", "diag", "spherical"])
def test_scale_is_the_pooled_within_component_covariance_times_the_prior_count(cov_type):
    k, d = 2, X.shape[1]
    prior = GMMPrior.pooled(X, k, cov_type)
    S = _naive_pooled(X, k, cov_type)
    expected = {"full": S, "tied": S, "diag": np.diag(S), "spherical": np.trace(S) / d}
    count = COUNTS[cov_type](d + 2.0, d, k)
    assert prior.covariances.dof == d + 2.0
    np.testing.assert_allclose(prior.covariances.scale / count, expected[cov_type], rtol=1e-6)
    np.testing.assert_allclose(prior.means.mean, X.mean(0), rtol=1e-12)
    assert prior.means.shrinkage == 0.01
    assert prior.name == "pooled"


def test_prior_mode_of_each_covariance_is_the_pooled_covariance():
    """With no data (n_k = 0, the conjugate mean's factor only) the M-step returns S."""
    k, d = 3, X.shape[1]
    prior = GMMPrior.pooled(X, k, "full")
    S = _naive_pooled(X, k, "full")
    model = get_covariance_model("full")
    mode = model.update(np.ones(k), np.zeros((k, d, d)), 0.0, prior.covariances.dof,
                        prior.covariances.scale)  # fmt: skip
    for cov in mode:
        np.testing.assert_allclose(cov, S, rtol=1e-6)


def test_scale_with_missing_values_uses_the_conditional_second_moments():
    """With NaN, S is built from E[x x^T | x_O, k]: checked against per-row conditional
    Gaussians (scipy densities on the observed coordinates, explicit regressions)."""
    rng = np.random.default_rng(0)
    Xm = X.copy()
    Xm[rng.random(Xm.shape) < 0.15] = np.nan
    Xm[np.isnan(Xm).all(axis=1), 0] = 0.0
    k, (n, d) = 2, Xm.shape
    prior = GMMPrior.pooled(Xm, k, "full")

    from bayesgmm.core.missing import observed_moments

    mean, cov = observed_moments(Xm)
    sd = np.sqrt(np.diag(cov))
    Z = (Xm - mean) / sd
    pre = _preliminary(Z, k, "full")
    W = np.zeros((d, d))
    moments = []
    for j in range(k):
        mu, sigma = pre.means_[j], pre.covariances_[j]
        rows = []
        for i in range(n):
            o = ~np.isnan(Z[i])
            m = ~o
            x = Z[i].copy()
            C = np.zeros((d, d))
            log_dens = stats.multivariate_normal(mu[o], sigma[np.ix_(o, o)]).logpdf(x[o])
            if m.any():
                gain = sigma[np.ix_(m, o)] @ np.linalg.inv(sigma[np.ix_(o, o)])
                x[m] = mu[m] + gain @ (x[o] - mu[o])
                C[np.ix_(m, m)] = sigma[np.ix_(m, m)] - gain @ sigma[np.ix_(o, m)]
            rows.append((np.log(pre.weights_[j]) + log_dens, x, C))
        moments.append(rows)
    log_w = np.array([[moments[j][i][0] for j in range(k)] for i in range(n)])
    resp = np.exp(log_w - special.logsumexp(log_w, axis=1, keepdims=True))
    for j in range(k):
        xs = np.array([moments[j][i][1] for i in range(n)])
        center = resp[:, j] @ xs / resp[:, j].sum()
        for i in range(n):
            dev = xs[i] - center
            W += resp[i, j] * (np.outer(dev, dev) + moments[j][i][2])
    S = (W + np.eye(d) / k ** (2 / d)) / (n - k + 1) * np.outer(sd, sd)
    np.testing.assert_allclose(prior.covariances.scale / (2 * d + 4), S, rtol=1e-5)


def test_exists_where_mclust_prior_does_not_and_names_constant_columns():
    """n <= d: the data covariance is singular (mclust's prior refuses), S is not."""
    small = np.random.default_rng(1).normal(size=(6, 8))
    with pytest.raises(ValueError, match="singular"):
        GMMPrior.mclust(small, 2)
    prior = GMMPrior.pooled(small, 2)
    assert np.linalg.eigvalsh(prior.covariances.scale).min() > 0
    with pytest.raises(ValueError, match=r"constant feature\(s\) 'column 1'"):
        GMMPrior.pooled(np.c_[X[:, 0], np.full(len(X), 2.0)], 2)
    with pytest.raises(ValueError, match="n_components <= the number of rows"):
        GMMPrior.pooled(X[:3], 5)


@pytest.mark.parametrize("factor", [1e-6, 1e6])
@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_prior_rescales_with_a_feature(cov_type, factor):
    scale = np.array([1.0, factor, 1.0])
    base = GMMPrior.pooled(X, 3, cov_type)
    scaled = GMMPrior.pooled(X * scale, 3, cov_type)
    np.testing.assert_allclose(scaled.means.mean, base.means.mean * scale, rtol=1e-10)
    outer = np.outer(scale, scale) if cov_type == "full" else scale**2
    np.testing.assert_allclose(scaled.covariances.scale, base.covariances.scale * outer, rtol=1e-7)


def _assert_same_prior(a: GMMPrior, b: GMMPrior) -> None:
    assert a.name == b.name
    np.testing.assert_array_equal(a.means.mean, b.means.mean)
    assert a.means.shrinkage == b.means.shrinkage
    assert a.covariances.dof == b.covariances.dof
    np.testing.assert_array_equal(a.covariances.scale, b.covariances.scale)
    assert a.weights.alpha == b.weights.alpha


def test_names_resolve_and_default_is_pooled():
    assert PRIOR_NAMES == ("default", "pooled", "mclust")
    default = resolve_prior("default", X, 2, "full")
    for other in (GMMPrior.pooled(X, 2), GMMPrior.default(X, 2)):
        _assert_same_prior(default, other)
    _assert_same_prior(resolve_prior("mclust", X, 2, "full"), GMMPrior.mclust(X, 2))
    assert resolve_prior(None, X, 2, "full") is None
    gm = GaussianMixture(2, prior="default", random_state=5).fit(X)
    _assert_same_prior(gm.prior_, default)  # the prior does not depend on the fit's seed
    text = gm.prior_.describe()
    assert text.startswith("pooled prior:")
    assert "nu0 = 5" in text
    assert "pooled within" in text
    assert "mclust's default prior" in GMMPrior.mclust(X, 2).describe()
    with pytest.raises(ValueError, match=r"one of \['default', 'pooled', 'mclust'\]"):
        resolve_prior("empirical", X, 2, "full")


def test_unsupported_families_say_so():
    with pytest.raises(ValueError, match="has no conjugate prior"):
        GaussianMixture(2, covariance_type="VEE", prior="pooled").fit(X)


PRIOR_FAMILIES = sorted(
    {m.name for m in COVARIANCE_MODELS.values() if m.supports_prior and m.name not in "EV"}
)


@pytest.mark.parametrize("cov_type", PRIOR_FAMILIES)
def test_map_objective_never_decreases_in_every_type_with_a_prior(cov_type):
    data = make_mixture(40, n_components=3, n_features=3, separation=2, random_state=7).X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(3, covariance_type=cov_type, prior="pooled", reg_covar=0.0,
                             tol=1e-10, max_iter=300, random_state=0).fit(data)  # fmt: skip
    bounds = gm.lower_bounds_
    assert np.all(np.diff(bounds) >= -1e-10 * np.abs(bounds[1:]))
    # the objective is log-likelihood + log prior (all constants), per point
    expected = (log_mixture_density(data, gm._params(), cov_type).sum()
                + gm.prior_.log_prob(gm._params(), cov_type)) / len(data)  # fmt: skip
    assert gm.lower_bound_ == pytest.approx(expected, abs=1e-6)


def _numerical_map(X, k, cov_type, prior, start: GMMParams):
    """Maximize log-likelihood + log prior over all parameters with BFGS (softmax
    weights, unconstrained Cholesky / log-variance parameters), from ``start``."""
    d = X.shape[1]
    model = get_covariance_model(cov_type)
    tril = np.tril_indices(d)
    n_cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[cov_type]

    def unpack(theta):
        logits, rest = np.r_[0.0, theta[: k - 1]], theta[k - 1 :]
        weights = np.exp(logits - special.logsumexp(logits))
        means = rest[: k * d].reshape(k, d)
        raw = rest[k * d :].reshape(k, n_cov)
        if cov_type == "full":
            covs = np.empty((k, d, d))
            for j in range(k):
                lower = np.zeros((d, d))
                lower[tril] = raw[j]
                lower[np.diag_indices(d)] = np.exp(lower[np.diag_indices(d)])
                covs[j] = lower @ lower.T
        else:
            covs = np.exp(raw) if cov_type == "diag" else np.exp(raw[:, 0])
        return GMMParams(weights, means, covs, model.precision_cholesky(covs))

    def pack(p):
        logits = np.log(p.weights[1:]) - np.log(p.weights[0])
        if cov_type == "full":
            raw = []
            for cov in p.covariances:
                lower = np.linalg.cholesky(cov)
                lower[np.diag_indices(d)] = np.log(np.diag(lower))
                raw.append(lower[tril])
            raw = np.array(raw)
        else:
            raw = np.log(p.covariances).reshape(k, n_cov)
        return np.r_[logits, p.means.ravel(), raw.ravel()]

    def negative(theta):
        p = unpack(theta)
        return -(log_mixture_density(X, p, cov_type).sum() + prior.log_prob(p, cov_type))

    res = optimize.minimize(negative, pack(start), method="BFGS", options={"gtol": 1e-8})
    return unpack(res.x)


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical"])
def test_map_fixed_point_is_the_numerical_posterior_mode(cov_type):
    """EM with the pooled prior converges to the maximum scipy finds for
    log-likelihood + log prior, started away from it (K = 1 and K = 2)."""
    data = make_mixture(25, n_components=2, n_features=2, separation=3, random_state=4).X
    for k in (1, 2):
        prior = GMMPrior.pooled(data, k, cov_type)
        gm = GaussianMixture(k, covariance_type=cov_type, prior=prior, reg_covar=0.0,
                             tol=1e-13, max_iter=20000, random_state=0).fit(data)  # fmt: skip
        rng = np.random.default_rng(k)
        covs = gm.covariances_ * (1.3 if cov_type != "full" else 1.0)
        if cov_type == "full":
            covs = covs + 0.2 * np.eye(2)
        start = GMMParams(
            np.full(k, 1.0 / k) if k > 1 else np.ones(1),
            gm.means_ + rng.normal(scale=0.3, size=gm.means_.shape),
            covs,
            get_covariance_model(cov_type).precision_cholesky(covs),
        )
        found = _numerical_map(data, k, cov_type, prior, start)
        np.testing.assert_allclose(found.weights, gm.weights_, atol=1e-5)
        np.testing.assert_allclose(found.means, gm.means_, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(found.covariances, gm.covariances_, rtol=1e-4, atol=1e-6)
