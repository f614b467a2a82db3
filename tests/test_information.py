"""Observed information: exact Hessian against finite differences, textbook K = 1 SEs,
weights, MAP, warnings, and (slow) agreement with the bootstrap."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture, InformationWarning, bootstrap, observed_information
from bayesgmm.core.covariance import COVARIANCE_TYPES
from bayesgmm.core.density import log_mixture_density
from bayesgmm.core.information import free_layout, log_likelihood_hessian, numerical_hessian
from bayesgmm.datasets import load_faithful, make_mixture


def _fit(X, cov, k=2, sample_weight=None, **kw):
    kw = {"tol": 1e-12, "max_iter": 5000, "random_state": 0, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(k, covariance_type=cov, **kw).fit(X, sample_weight=sample_weight)


def _with_holes(X, fraction, seed):
    out = X.copy()
    holes = np.random.default_rng(seed).random(X.shape) < fraction
    holes[holes.all(axis=1), 0] = False
    out[holes] = np.nan
    return out


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_exact_hessian_equals_finite_differences(cov, missing):
    X = make_mixture(150, n_components=2, n_features=3, separation=3, random_state=1).X
    X = _with_holes(X, missing, seed=2) if missing else X
    w = np.random.default_rng(3).integers(1, 3, len(X)).astype(float)
    gm = _fit(X, cov, sample_weight=None)
    params = gm._params()
    layout = free_layout(2, 3, cov)
    theta = layout.pack(params)

    def loglik(t):
        return float(log_mixture_density(X, layout.unpack(t), cov) @ w)

    gradient, hessian = log_likelihood_hessian(X, params, cov, w)
    reference = numerical_hessian(loglik, theta, np.maximum(np.abs(theta), 0.1))
    np.testing.assert_allclose(hessian, reference, rtol=1e-5, atol=1e-5 * np.abs(hessian).max())
    # The gradient too (against central differences of the same function).
    h = 1e-6 * np.maximum(np.abs(theta), 0.1)
    numeric = [(loglik(theta + hi * e) - loglik(theta - hi * e)) / (2 * hi)
               for hi, e in zip(h, np.eye(theta.size), strict=True)]  # fmt: skip
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-4)


def test_one_component_gives_the_textbook_standard_errors():
    rng = np.random.default_rng(4)
    n = 400
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.6], [0.6, 1.0]], n)
    gm = _fit(X, "full", k=1, reg_covar=0.0)
    info = observed_information(gm, X)
    se = info.standard_errors()
    s = np.cov(X.T, bias=True)  # the MLE
    assert se["means[0, x0]"] == pytest.approx(np.sqrt(s[0, 0] / n), rel=1e-6)
    assert se["means[0, x1]"] == pytest.approx(np.sqrt(s[1, 1] / n), rel=1e-6)
    # Asymptotic variances of the sample covariance of a Gaussian.
    assert se["covariances[0, x0, x0]"] == pytest.approx(np.sqrt(2 * s[0, 0] ** 2 / n), rel=1e-6)
    assert se["covariances[0, x0, x1]"] == pytest.approx(
        np.sqrt((s[0, 0] * s[1, 1] + s[0, 1] ** 2) / n), rel=1e-6
    )
    assert se["covariances[0, x1, x0]"] == se["covariances[0, x0, x1]"]
    # One dimension: se(sigma^2) = sigma^2 sqrt(2/n).
    x = X[:, :1]
    gm1 = _fit(x, "spherical", k=1, reg_covar=0.0)
    var = x.var()
    assert observed_information(gm1, x).standard_errors()["covariances[0]"] == pytest.approx(
        var * np.sqrt(2 / n), rel=1e-6
    )


def test_frequency_weights_equal_repeated_rows():
    X = make_mixture(120, n_components=2, n_features=2, separation=4, random_state=5).X
    w = np.random.default_rng(5).integers(1, 4, len(X))
    gm = _fit(X, "diag", sample_weight=w.astype(float))
    a = observed_information(gm, X, sample_weight=w.astype(float)).matrix
    b = observed_information(gm, np.repeat(X, w, axis=0)).matrix
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10 * np.abs(b).max())


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_map_information_is_minus_the_log_posterior_hessian(cov):
    X = make_mixture(80, n_components=2, n_features=2, separation=4, random_state=6).X
    gm = _fit(X, cov, prior="default", reg_covar=0.0)
    info = observed_information(gm, X)
    assert info.method == "map"
    layout = free_layout(2, 2, cov)
    theta = layout.pack(gm._params())

    def log_posterior(t):
        params = layout.unpack(t)
        return float(log_mixture_density(X, params, cov).sum()) + gm.prior_.log_prob(params, cov)

    reference = -numerical_hessian(log_posterior, theta, np.maximum(np.abs(theta), 0.1))
    np.testing.assert_allclose(
        info.matrix, reference, rtol=1e-4, atol=1e-6 * np.abs(reference).max()
    )


def test_wald_intervals_and_labels_match_compare_estimates_rows():
    X = load_faithful()
    gm = _fit(X, "tied", k=2)
    table = observed_information(gm, X).intervals(prob=0.9)
    assert {"weights[1]", "means[0, eruptions]", "covariances[eruptions, waiting]"} <= set(
        table["label"]
    )
    width = (table["upper"] - table["lower"]) / (2 * table["se"])
    np.testing.assert_allclose(width, 1.6448536269514722)


def test_boundary_weight_warns_naming_it():
    X = make_mixture(200, n_components=2, n_features=2, separation=4, random_state=7).X
    start = _fit(X, "diag")
    gm = _fit(
        X,
        "diag",
        max_iter=0,
        weights_init=[0.999, 0.001],
        means_init=start.means_,
        precisions_init=start.precisions_,
    )
    with pytest.warns(InformationWarning, match=r"weights\[1\].*boundary"):
        observed_information(gm, X)


def test_singular_and_ill_conditioned_information_warn_naming_the_parameter():
    from bayesgmm.information import _invert

    labels = ["a", "b", "c"]
    nearly = np.array([[1.0, 1.0 - 1e-12, 0.0], [1.0 - 1e-12, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.warns(InformationWarning, match="ill-conditioned.*(a|b)"):
        _invert(nearly, labels)
    singular = np.diag([1.0, -1.0, 1.0])
    with pytest.warns(InformationWarning, match="not positive definite.*b"):
        _invert(singular, labels)


@pytest.mark.slow
def test_standard_errors_agree_with_the_bootstrap_on_large_data():
    data = make_mixture(3000, n_components=2, n_features=2, separation=5, random_state=8)
    gm = _fit(data.X, "full")
    se = observed_information(gm, data.X).standard_errors()
    boot_se = bootstrap(gm, data.X, n_boot=400, random_state=0).standard_errors()
    np.testing.assert_allclose(
        se[[f"means[{k}, x{j}]" for k in range(2) for j in range(2)]].to_numpy(),
        boot_se["means"].to_numpy().ravel(),
        rtol=0.1,
    )
