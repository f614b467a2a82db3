"""Laplace approximation: the NumPy transforms against the PyMC model, the closed-form
prior Hessian against finite differences, K = 1 against the NIW posterior mode and an
independently written log posterior, the DataTree against the posterior's layout, and
(slow) the intervals against NUTS."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import (
    DirichletPrior,
    GaussianMixture,
    GMMPrior,
    NormalMeanPrior,
    laplace,
)
from bayesgmm._laplace import laplace_hessian
from bayesgmm.core.covariance import COVARIANCE_TYPES
from bayesgmm.core.information import free_layout, log_prior_hessian, numerical_hessian
from bayesgmm.datasets import make_mixture


def _map(X, k, cov, prior="default"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(
            k,
            covariance_type=cov,
            prior=prior,
            reg_covar=0.0,
            tol=1e-12,
            max_iter=5000,
            random_state=0,
        ).fit(X)


def _fd_hessian(f, x, h=1e-4):
    """Plain central second differences (no Richardson), independent of the package's."""
    p = x.size
    out = np.zeros((p, p))
    for i in range(p):
        for j in range(i, p):

            def g(a, b, i=i, j=j):
                y = x.copy()
                y[i] += a
                y[j] += b
                return f(y)

            out[i, j] = out[j, i] = (g(h, h) - g(h, -h) - g(-h, h) + g(-h, -h)) / (4 * h * h)
    return out


@pytest.fixture(scope="module")
def data():
    return make_mixture(150, n_components=2, n_features=2, separation=5, random_state=1).X


@pytest.mark.parametrize("cov", [*COVARIANCE_TYPES, "EII", "EEI", "VEI", "EVI"])
def test_unconstrained_hessian_equals_pymc_logp(data, cov):
    """Value-variable names/shapes, logp(jacobian=True) at a random point, and the
    Hessian at the mode: NumPy mirror against PyMC's compiled logp (finite differences).
    scikit-learn's four types: the closed-form Hessian; mclust's EII, EEI, VEI, EVI: the
    posterior kernel's gradient, differenced."""
    from bayesgmm.bayes import build_model
    from bayesgmm.core.covariance import get_covariance_model
    from bayesgmm.core.density import log_mixture_density
    from bayesgmm.core.params import GMMParams

    gm = _map(data, 2, cov)
    mode, hessian, layout, _ = laplace_hessian(gm, data)
    model = build_model(data, 2, covariance_type=cov, prior=gm.prior_)
    point = model.initial_point()
    assert set(point) == set(layout.names)
    assert all(
        point[name].shape == shape for name, shape in zip(layout.names, layout.shapes, strict=True)
    )
    logp = model.compile_logp(jacobian=True)

    def pymc_logp(z):
        return float(logp(layout.split(z)))

    table = get_covariance_model(cov)

    def numpy_logp(z):
        w, m, c = layout.backward(z)
        p = GMMParams(w, m, c, table.precision_cholesky(c))
        return (
            log_mixture_density(data, p, cov).sum()
            + gm.prior_.log_prob(p, cov)
            + layout.log_jac_det(z)
        )

    z = mode + 0.2 * np.random.default_rng(0).standard_normal(mode.size)
    assert numpy_logp(z) == pytest.approx(pymc_logp(z), rel=1e-10)
    reference = _fd_hessian(pymc_logp, mode)
    np.testing.assert_allclose(hessian, reference, atol=1e-5 * np.abs(reference).max())
    # the mode is the MAP-EM fit mapped to z, and the approximation's mean is the mode
    w, m, c = layout.backward(mode)
    np.testing.assert_allclose(m, gm.means_, rtol=1e-12)
    np.testing.assert_allclose(w, gm.weights_, rtol=1e-12)
    np.testing.assert_allclose(c, gm.covariances_, rtol=1e-10)
    # center='mode': the mode of PyMC's logp(jacobian=True) itself, Hessian there
    gauss = laplace(gm, data, draws=10, center="mode", log_likelihood=False)["laplace"]
    z_mode = gauss["mode"].values
    h = 1e-5
    eye = np.eye(mode.size)
    grad = [(pymc_logp(z_mode + h * e) - pymc_logp(z_mode - h * e)) / (2 * h) for e in eye]
    grad_map = [(pymc_logp(mode + h * e) - pymc_logp(mode - h * e)) / (2 * h) for e in eye]
    assert np.abs(grad).max() < 1e-4 * max(1.0, np.abs(grad_map).max())
    assert np.abs(grad_map).max() > 0.1  # the Jacobian moves the mode: a real test
    reference = _fd_hessian(pymc_logp, z_mode)
    np.testing.assert_allclose(
        np.linalg.inv(gauss["covariance"].values), -reference, atol=1e-5 * np.abs(reference).max()
    )


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
@pytest.mark.parametrize("means_form", ["conjugate", "independent"])
def test_log_prior_hessian_closed_form(cov, means_form):
    X = make_mixture(200, n_components=2, n_features=3, separation=3, random_state=0).X
    gm = _map(X, 2, cov)
    prior = gm.prior_
    if means_form == "independent":
        prior = GMMPrior(
            DirichletPrior(2.5),
            NormalMeanPrior(mean=np.ones(3), covariance=np.diag([1.0, 2.0, 3.0])),
            prior.covariances,
        )
    params = gm._params()
    layout = free_layout(2, 3, cov)
    theta = layout.pack(params)
    grad, hess = log_prior_hessian(params, cov, prior)

    def f(t):
        return prior.log_prob(layout.unpack(t), cov)

    reference = numerical_hessian(f, theta, np.maximum(np.abs(theta), 0.1))
    np.testing.assert_allclose(hess, reference, atol=1e-6 * np.abs(reference).max())
    h = 1e-6
    num_grad = [(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    np.testing.assert_allclose(grad, num_grad, atol=1e-6 * np.abs(num_grad).max())


def test_k1_conjugate_niw_mode_and_independent_hessian():
    """K = 1, full covariance, conjugate NIW prior: the Laplace mean is the NIW joint
    posterior mode (closed form) and its covariance the inverse of minus an
    independently written Hessian (scipy densities, a numerical Jacobian determinant)."""
    rng = np.random.default_rng(3)
    d = 2
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.6], [0.6, 1.0]], size=40)
    gm = _map(X, 1, "full")
    prior = gm.prior_
    m0, kappa = prior.means.mean, prior.means.shrinkage
    nu = prior.covariances.dof
    psi = np.asarray(prior.covariances.scale, dtype=float)
    assert psi.shape == (d, d)
    n, xbar = len(X), X.mean(axis=0)
    scatter = (X - xbar).T @ (X - xbar)
    mu_n = (n * xbar + kappa * m0) / (n + kappa)
    psi_n = psi + scatter + kappa * n / (kappa + n) * np.outer(xbar - m0, xbar - m0)
    sigma_mode = psi_n / (nu + n + d + 2)  # joint mode of NIW(mu, Sigma)

    tree = laplace(gm, X, draws=20, random_state=0, log_likelihood=False)
    gauss = tree["laplace"].to_dataset()
    mode = gauss["mode"].values
    np.testing.assert_allclose(gauss["map_means"].values[0], mu_n, rtol=1e-8)
    np.testing.assert_allclose(gauss["map_covariances"].values[0], sigma_mode, rtol=1e-6)

    tril = np.tril_indices(d)

    def sigma_of(z):  # an independent writing of the packed Cholesky, log diagonal
        chol = np.zeros((d, d))
        chol[tril] = z[d:]
        chol[np.diag_indices(d)] = np.exp(np.diag(chol))
        return chol @ chol.T

    def vech(z):
        return sigma_of(z)[tril]

    def log_jac(z):  # log|det d vech(Sigma) / d z|, numerically
        h = 1e-6
        jac = np.column_stack(
            [(vech(z + h * e) - vech(z - h * e))[:] / (2 * h) for e in np.eye(z.size)[d:]]
        )
        return np.linalg.slogdet(jac)[1]

    def log_post(z):
        mu, sigma = z[:d], sigma_of(z)
        return (
            stats.multivariate_normal(mu, sigma).logpdf(X).sum()
            + stats.multivariate_normal(m0, sigma / kappa).logpdf(mu)
            + stats.invwishart(nu, psi).logpdf(sigma)
            + log_jac(z)
        )

    # the mode: means then packed Cholesky of the closed-form mode
    chol = np.linalg.cholesky(sigma_mode)
    packed = chol[tril]
    packed[[0, 2]] = np.log(packed[[0, 2]])
    np.testing.assert_allclose(mode, np.concatenate([mu_n, packed]), rtol=1e-6, atol=1e-9)
    reference = np.linalg.inv(-_fd_hessian(log_post, mode, h=1e-3))
    np.testing.assert_allclose(gauss["covariance"].values, reference, rtol=2e-3, atol=1e-8)


def test_datatree_matches_posterior_layout(data):
    """Groups, names, dims and coords as the PyMC model's (what idata_ holds); ArviZ's
    summary and LOO read it; reproducible; draws centred on the mode."""
    import arviz as az

    from bayesgmm.bayes import build_model

    gm = _map(data, 2, "full")
    tree = laplace(gm, data, draws=400, random_state=5)
    again = laplace(gm, data, draws=400, random_state=5)
    assert {"posterior", "log_likelihood", "observed_data"} <= set(tree.children)
    model = build_model(data, 2, covariance_type="full", prior=gm.prior_)
    post = tree["posterior"].to_dataset()
    for name in ("weights", "means", "covariances"):
        assert post[name].dims == ("chain", "draw", *model.named_vars_to_dims[name])
        np.testing.assert_array_equal(post[name].values, again["posterior"][name].values)
    assert list(post["feature"].values) == list(model.coords["feature"])
    assert tree["log_likelihood"]["x"].dims == ("chain", "draw", "obs")
    # the batched pointwise log-likelihood equals the chunk kernel's, draw by draw
    from bayesgmm.core.density import log_mixture_density
    from bayesgmm.core.params import GMMParams

    full = GMMParams(*(post[n].values[0] for n in ("weights", "means", "covariances")), None)
    for s in (0, 123, 399):
        p = GMMParams(full.weights[s], full.means[s], full.covariances[s],
                      np.linalg.cholesky(np.linalg.inv(full.covariances[s])))  # fmt: skip
        np.testing.assert_allclose(
            tree["log_likelihood"]["x"].values[0, s], log_mixture_density(data, p, "full"),
            rtol=1e-10,
        )  # fmt: skip
    # means: z-space is the identity, so the draws' mean is the MAP within MC error
    sd = post["means"].std(("chain", "draw")).values
    np.testing.assert_array_less(
        np.abs(post["means"].mean(("chain", "draw")).values - gm.means_), 5 * sd / 20
    )
    summary = az.summary(tree, var_names=["means"], kind="stats")
    assert len(summary) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto k of a 150-point fit
        loo = az.loo(tree)
    assert np.isfinite(float(loo.elpd))


def test_bad_input(data):
    with pytest.raises(TypeError, match="GaussianMixture"):
        laplace("not a model", data)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        laplace(GaussianMixture(2, prior="default"), data)
    gm = _map(data, 2, "diag")
    with pytest.raises(ValueError, match="draws"):
        laplace(gm, data, draws=0)
    with pytest.raises(ValueError, match="center"):
        laplace(gm, data, center="mean")
    family = _map(data, 2, "EEV")  # oriented: no unconstrained parameterization
    with pytest.raises(ValueError, match="covariance_type"):
        laplace(family, data)
    vei = _map(data, 2, "VEI")
    with pytest.raises(ValueError, match="sample_weight"):
        laplace(vei, data, sample_weight=np.ones(len(data)))
    with pytest.raises(ValueError, match="conjugate prior"):
        laplace(_map(data, 2, "VEI", prior=None), data)


@pytest.mark.parametrize("cov", ["EEI", "VEI"])
def test_kernel_families_with_missing_values_equal_pymc(data, cov):
    """With NaN (the kernel's observed-data marginal, missing coordinates integrated
    out): the Hessian at the MAP equals PyMC's masked model's logp differenced."""
    from bayesgmm.bayes import build_model

    holes = data.copy()
    holes[np.random.default_rng(3).random(holes.shape) < 0.15] = np.nan
    holes[np.isnan(holes).all(axis=1), 0] = data[np.isnan(holes).all(axis=1), 0]
    gm = _map(holes, 2, cov)
    mode, hessian, layout, _ = laplace_hessian(gm, holes)
    model = build_model(holes, 2, covariance_type=cov, prior=gm.prior_)
    logp = model.compile_logp(jacobian=True)
    reference = _fd_hessian(lambda z: float(logp(layout.split(z))), mode)
    np.testing.assert_allclose(hessian, reference, atol=1e-5 * np.abs(reference).max())
    tree = laplace(gm, holes, draws=50, random_state=0)
    assert np.isfinite(tree["log_likelihood"]["x"].values).all()


def test_kernel_hessian_equals_the_closed_form(data):
    """On scikit-learn's four types both routes apply: the kernel's differenced gradient
    equals the closed-form Hessian at a converged MAP fit."""
    from bayesgmm._laplace import _kernel_hessian

    for cov in COVARIANCE_TYPES:
        gm = _map(data, 2, cov)
        mode, hessian, _, _ = laplace_hessian(gm, data)
        mode_k, hessian_k, _, _ = _kernel_hessian(gm, data, None)
        np.testing.assert_array_equal(mode, mode_k)
        np.testing.assert_allclose(hessian_k, hessian, atol=1e-6 * np.abs(hessian).max())


@pytest.mark.slow
def test_intervals_within_10_percent_of_nuts():
    """Well-separated mixture: Laplace 94% interval widths within 10% of NUTS's."""
    from bayesgmm.bayes import PosteriorGaussianMixture

    X = make_mixture(600, n_components=2, n_features=2, separation=8, random_state=2).X
    post = PosteriorGaussianMixture(
        2, covariance_type="full", draws=1000, tune=1000, chains=4, random_state=0
    ).fit(X)
    tree = laplace(post, X, draws=8000, random_state=0, log_likelihood=False)
    lap = tree["posterior"].to_dataset()
    nuts = post.idata_["posterior"].to_dataset()
    for name in ("weights", "means", "covariances"):
        q_lap = lap[name].quantile([0.03, 0.97], dim=("chain", "draw"))
        q_nuts = nuts[name].quantile([0.03, 0.97], dim=("chain", "draw"))
        w_lap = (q_lap.sel(quantile=0.97) - q_lap.sel(quantile=0.03)).values
        w_nuts = (q_nuts.sel(quantile=0.97) - q_nuts.sel(quantile=0.03)).values
        np.testing.assert_allclose(w_lap, w_nuts, rtol=0.10, err_msg=name)
        mid = (q_nuts.sel(quantile=0.97) + q_nuts.sel(quantile=0.03)).values / 2
        np.testing.assert_array_less(np.abs(lap[name].median(("chain", "draw")) - mid), w_nuts)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_pointwise_log_likelihood_every_type(data, cov):
    """The batched log-likelihood of the draws equals the chunk kernel's, and with NaN
    it is the observed-data log-likelihood (the kernel's path)."""
    from bayesgmm._laplace import _pointwise_log_likelihood
    from bayesgmm.core.covariance import get_covariance_model
    from bayesgmm.core.density import log_mixture_density
    from bayesgmm.core.params import GMMParams

    gm = _map(data, 2, cov)
    tree = laplace(gm, data, draws=70, random_state=1, log_likelihood=False)
    post = tree["posterior"].to_dataset()
    w, m, c = (post[n].values[0] for n in ("weights", "means", "covariances"))
    table = get_covariance_model(cov)
    holes = data.copy()
    holes[::7, 0] = np.nan
    for X in (data, holes):
        got = _pointwise_log_likelihood(X, w, m, c, cov)
        for s in (0, 33, 69):
            p = GMMParams(w[s], m[s], c[s], table.precision_cholesky(c[s]))
            np.testing.assert_allclose(got[s], log_mixture_density(X, p, cov), rtol=1e-10)


def test_posterior_spec_gives_the_map_it_would_start_from(data):
    """An unfitted PosteriorGaussianMixture: its MAP settings (tight tol, reg_covar 0)."""
    from bayesgmm.bayes import PosteriorGaussianMixture

    spec = PosteriorGaussianMixture(2, covariance_type="diag", n_init=2, random_state=4)
    tree = laplace(spec, data, draws=50, random_state=0, log_likelihood=False)
    fit = GaussianMixture(
        2, covariance_type="diag", prior="default", reg_covar=0.0, n_init=2, tol=1e-8,
        max_iter=2000, random_state=4,
    ).fit(data)  # fmt: skip
    np.testing.assert_allclose(tree["laplace"]["map_means"].values, fit.means_, rtol=1e-10)
    assert not hasattr(spec, "map_")  # the spec is not modified
