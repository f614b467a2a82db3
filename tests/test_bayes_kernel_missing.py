"""The numba kernel on data with NaN: each row's density of its observed coordinates.

The reference is the PyMC model of :func:`bayesgmm.bayes.build_model` on the same data
(its masked observed-data likelihood, Jacobians included) and its PyTensor gradient at
the same unconstrained point, plus central finite differences of the kernel itself and
SciPy's marginal densities.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from test_bayes_kernel import K, _covariance_matrices, _priors, _pymc_reference

from bayesgmm.bayes import _kernel as kern
from bayesgmm.bayes import build_model
from bayesgmm.priors import GMMPrior


def _nan_data(n_features: int, n_samples: int = 60, seed: int = 0, frac: float = 0.25):
    """Three clusters with many missingness patterns, rows with a single observed
    value, and complete rows; no row without an observed value."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(K, n_features))
    X = centers[np.arange(n_samples) % K] + rng.normal(size=(n_samples, n_features))
    X[rng.random(X.shape) < frac] = np.nan
    if n_features > 1:
        X[1, 1:] = np.nan  # only x0 observed
        X[2, :-1] = np.nan  # only the last observed
    X[3:6] = centers[0] + 0.5  # complete
    empty = np.isnan(X).all(axis=1)
    X[empty, -1] = 1.0
    return X


def _filled(X):
    """``X`` with each NaN replaced by its column's mean (the priors' data)."""
    return np.where(np.isnan(X), np.nanmean(X, axis=0), X)


def _theta(km, X, rng):
    d = X.shape[1]
    theta = 0.4 * rng.normal(size=km.n_dim)
    theta[K - 1 : K - 1 + K * d] += np.nan_to_num(X[3 : 3 + K]).ravel()
    return theta


# one prior form per covariance type (each case compiles two PyMC graphs); D = 3 has
# patterns with 1 and 2 observed of 3 (non-prefix blocks of L), D = 1 none complete
FAST_CASES = [
    ("full", 3, "default"),
    ("tied", 3, "independent"),
    ("diag", 3, "flat_covariances"),
    ("spherical", 2, "default"),
    ("EII", 3, "independent"),
    ("EEI", 2, "default"),
    ("VEI", 3, "independent"),
    ("EVI", 3, "default"),
]
SLOW_CASES = [
    pytest.param(ct, d, p, marks=pytest.mark.slow)
    for ct in kern.SUPPORTED_TYPES
    for d in (2, 4)
    for p in ("default", "independent", "flat")
    if (ct, d, p) not in FAST_CASES
]


@pytest.mark.parametrize(("covariance_type", "n_features", "prior_name"), FAST_CASES + SLOW_CASES)
def test_kernel_with_nan_equals_pymc_masked_model(covariance_type, n_features, prior_name):
    X = _nan_data(n_features)
    assert np.isnan(X).any()
    assert (~np.isnan(X)).all(axis=1).any()
    rng = np.random.default_rng(11)
    prior = _priors(_filled(X), covariance_type)[prior_name]
    km = kern.make_kernel_model(X, prior, covariance_type, K)
    assert km.missing
    model = build_model(X, K, covariance_type=covariance_type, prior=prior)
    reference = _pymc_reference(model, covariance_type)
    for _ in range(2):
        theta = _theta(km, X, rng)
        logp, grad = km.logp_and_grad(theta)
        ref_logp, ref_grad = reference(theta)
        np.testing.assert_allclose(logp, ref_logp, rtol=1e-10)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("layout", ["one pattern", "no complete row"])
@pytest.mark.parametrize(
    "covariance_type",
    ["full", *(pytest.param(ct, marks=pytest.mark.slow) for ct in ("diag", "tied", "EEI"))],
)
def test_one_pattern_and_no_complete_row(covariance_type, layout):
    """A single pattern besides the complete rows (the middle coordinate missing: a
    non-prefix block of L); and every row incomplete (the blocked path sees N = 0),
    two patterns. Against PyMC."""
    X = _nan_data(3, n_samples=30, frac=0.0)
    X[1:3] = X[4:6]  # undo _nan_data's single-value rows
    X[::2, 1] = np.nan
    if layout == "no complete row":
        X[1::2, 0] = np.nan
    rng = np.random.default_rng(3)
    prior = _priors(_filled(X), covariance_type)["default"]
    km = kern.make_kernel_model(X, prior, covariance_type, K)
    trailer = int(km.buffer[-1])
    assert km.buffer[trailer] == (1 if layout == "one pattern" else 2)
    assert km.buffer[1] == (15 if layout == "one pattern" else 0)  # complete rows
    model = build_model(X, K, covariance_type=covariance_type, prior=prior)
    reference = _pymc_reference(model, covariance_type)
    theta = _theta(km, X, rng)
    logp, grad = km.logp_and_grad(theta)
    ref_logp, ref_grad = reference(theta)
    np.testing.assert_allclose(logp, ref_logp, rtol=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("covariance_type", kern.SUPPORTED_TYPES)
def test_likelihood_with_nan_matches_scipy_marginals(covariance_type):
    """Flat prior: the kernel's value minus its value on no data is the sum of the
    rows' observed-data mixture log densities (SciPy's normal on the observed block);
    a row with no observed value adds nothing."""
    d = 4
    X = _nan_data(d, n_samples=50, seed=5)
    X_empty = np.vstack([X, np.full((1, d), np.nan)])
    prior = GMMPrior()
    km = kern.make_kernel_model(X_empty, prior, covariance_type, K)
    theta = _theta(km, X, np.random.default_rng(1))
    value = km.logp_and_grad(theta)[0]
    empty = kern.make_kernel_model(X[:0], prior, covariance_type, K).logp_and_grad(theta)[0]
    w, mu, cov = kern.to_constrained(theta, covariance_type, K, d)
    sigmas = _covariance_matrices(cov, covariance_type, d)
    expected = 0.0
    for x in X:
        o = ~np.isnan(x)
        expected += logsumexp(
            [
                np.log(w[k]) + multivariate_normal(mu[k, o], sigmas[k][np.ix_(o, o)]).logpdf(x[o])
                for k in range(K)
            ]
        )
    np.testing.assert_allclose(value - empty, expected, rtol=1e-11)
    # the empty row changes nothing
    without = kern.make_kernel_model(X, prior, covariance_type, K).logp_and_grad(theta)
    np.testing.assert_allclose(value, without[0], rtol=1e-14)


@pytest.mark.parametrize("covariance_type", kern.SUPPORTED_TYPES)
def test_gradient_with_nan_matches_finite_differences(covariance_type):
    X = _nan_data(3, n_samples=45, seed=2)
    prior = GMMPrior.default(_filled(X), K, covariance_type)
    km = kern.make_kernel_model(X, prior, covariance_type, K)
    theta = _theta(km, X, np.random.default_rng(4))
    _, grad = km.logp_and_grad(theta)
    eps = 1e-6
    fd = np.array(
        [
            (km.logp_and_grad(theta + eps * e)[0] - km.logp_and_grad(theta - eps * e)[0])
            / (2 * eps)
            for e in np.eye(km.n_dim)
        ]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "VEI"])
def test_complete_data_keep_the_complete_kernel(covariance_type):
    """Without NaN: the same buffer and callback as before; the missing-value callback
    on a buffer with an empty trailer gives bit for bit the same value and gradient."""
    X = _filled(_nan_data(3))
    prior = GMMPrior.default(X, K, covariance_type)
    km = kern.make_kernel_model(X, prior, covariance_type, K)
    assert not km.missing
    np.testing.assert_array_equal(km.buffer, kern.pack(X, prior, covariance_type, K))
    theta = _theta(km, X, np.random.default_rng(0))
    buf = kern.pack_missing(X, prior, covariance_type, K)
    assert buf[int(buf[-1])] == 0  # no pattern
    a = km.logp_and_grad(theta)
    b = kern.logp_and_grad(theta, buf, covariance_type, missing=True)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


def test_nan_parameters_give_a_non_finite_result():
    X = _nan_data(3)
    km = kern.make_kernel_model(X, GMMPrior.default(_filled(X), K, "full"), "full", K)
    theta = _theta(km, X, np.random.default_rng(0))
    theta[-1] = np.nan  # a covariance coordinate
    logp, grad = km.logp_and_grad(theta)
    assert not (np.isfinite(logp) and np.all(np.isfinite(grad)))


@pytest.mark.slow
def test_posterior_with_nan_kernel_agrees_with_the_pymc_model():
    """The same NaN data, prior and starts sampled two ways: nutpie on the numba kernel
    and nutpie on build_model's masked PyMC model (the kernel switched off). Posterior
    means agree within Monte Carlo error and the posterior sds within 15%."""
    import warnings
    from unittest import mock

    import arviz as az

    from bayesgmm.bayes import PosteriorGaussianMixture
    from conftest import TWO_BLOBS

    rng = np.random.default_rng(4)
    X = TWO_BLOBS.X.copy()
    X[rng.random(X.shape) < 0.2] = np.nan
    X[np.isnan(X).all(axis=1), 0] = TWO_BLOBS.X[np.isnan(X).all(axis=1), 0]
    fits = {}
    for backend in ("kernel", "pymc"):
        post = PosteriorGaussianMixture(
            2, covariance_type="full", draws=1000, tune=1000, chains=4, random_state=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if backend == "pymc":
                with mock.patch("bayesgmm.bayes.posterior.supports", return_value=False):
                    post.fit(X)
            else:
                post.fit(X)
        assert post.backend_ == backend
        assert post.n_divergences_ == 0
        fits[backend] = post.idata_["posterior"].to_dataset()[["weights", "means", "covariances"]]
    a, b = fits["kernel"], fits["pymc"]
    mcse = np.sqrt(az.mcse(a).to_array() ** 2 + az.mcse(b).to_array() ** 2)
    z = np.abs((a.mean(("chain", "draw")) - b.mean(("chain", "draw"))).to_array()) / mcse
    assert float(z.max()) < 4.5, z.values
    ratio = (a.std(("chain", "draw")) / b.std(("chain", "draw"))).to_array()
    assert float(ratio.min()) > 0.85, ratio.values
    assert float(ratio.max()) < 1.15, ratio.values


def test_nan_fit_on_the_kernel_disperses_starts_and_reproduces():
    """PosteriorGaussianMixture on data with NaN takes the kernel: each chain starts at
    its own point (Laplace scale of the NaN kernel), the same random_state gives the
    same starts and draws, and log_likelihood holds each row's observed-data value."""
    import warnings

    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.bayes.posterior import _laplace_scale
    from conftest import TWO_BLOBS

    rng = np.random.default_rng(4)
    X = TWO_BLOBS.X.copy()
    X[rng.random(X.shape) < 0.15] = np.nan
    X[np.isnan(X).all(axis=1), 0] = TWO_BLOBS.X[np.isnan(X).all(axis=1), 0]

    def fit(seed):
        post = PosteriorGaussianMixture(
            2, covariance_type="diag", draws=100, tune=150, chains=2, n_init=2,
            random_state=seed,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return post.fit(X)

    post = fit(3)
    assert post.backend_ == "kernel"
    starts = post.chain_starts_
    assert starts.shape == (2, kern.n_dim("diag", 2, 2))
    assert np.abs(starts[0] - starts[1]).max() > 1e-3, "the chains share a start"
    km = kern.make_kernel_model(X, post.prior_, "diag", 2)
    center = kern.to_unconstrained(
        {n: getattr(post.map_, f"{n}_") for n in ("weights", "means", "covariances")}, "diag"
    )
    scale = _laplace_scale(km, center)
    assert np.all(np.isfinite(scale))
    assert np.all(scale > 0)
    assert np.all(scale != 0.1)  # a negative curvature everywhere at the MAP
    again = fit(3)
    np.testing.assert_array_equal(again.chain_starts_, starts)
    a = post.idata_["posterior_raw"].to_dataset()
    b = again.idata_["posterior_raw"].to_dataset()
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    ll = post.idata_["log_likelihood"].to_dataset()["x"].values
    assert ll.shape == (2, 100, len(X))
    # the stored value at a draw is the kernel's own likelihood there: flat prior, so
    # logp(data) - logp(no data) at that draw's unconstrained point
    theta = kern.to_unconstrained(
        {n: a[n].values[1, 50] for n in ("weights", "means", "covariances")}, "diag"
    )
    flat = GMMPrior()
    value = kern.make_kernel_model(X, flat, "diag", 2).logp_and_grad(theta)[0]
    empty = kern.make_kernel_model(X[:0], flat, "diag", 2).logp_and_grad(theta)[0]
    np.testing.assert_allclose(ll[1, 50].sum(), value - empty, rtol=1e-10)
