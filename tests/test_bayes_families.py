"""The posterior for mclust's shared diagonal families EII and EEI (the PyMC model),
and a clear error for the families without one (the oriented ones; VEI and EVI:
tests/test_bayes_volume_shape.py)."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pymc as pm
import pytest
from pytensor.compile.mode import Mode
from scipy import stats

from bayesgmm import GaussianMixture
from bayesgmm.bayes import PosteriorGaussianMixture, build_model
from bayesgmm.bayes._kernel import supports
from bayesgmm.bayes.model import initial_values, posterior_covariance_types
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import log_mixture_density
from bayesgmm.core.params import GMMParams
from bayesgmm.priors import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior

K = 3
FAST = Mode(linker="py", optimizer="fast_run")
SHARED = ("EII", "EEI")


def _data(n_features: int, n_samples: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(K, n_features))
    return centers[np.arange(n_samples) % K] + rng.normal(size=(n_samples, n_features))


def _random_params(covariance_type: str, n_features: int, seed: int = 1) -> GMMParams:
    rng = np.random.default_rng(seed)
    row = rng.uniform(0.3, 3.0, size=n_features)
    if covariance_type == "EII":
        row = np.full(n_features, row[0])
    covariances = np.broadcast_to(row, (K, n_features)).copy()
    prec_chol = get_covariance_model(covariance_type).precision_cholesky(covariances)
    weights = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(scale=3.0, size=(K, n_features))
    return GMMParams(weights, means, covariances, prec_chol)


def _point(model: pm.Model, params: GMMParams, covariance_type: str) -> dict:
    """``params`` as a point of the model's value variables (transformed space)."""
    values = initial_values(
        {"weights": params.weights, "means": params.means, "covariances": params.covariances},
        covariance_type,
    )
    point = {}
    for rv in model.free_RVs:
        value = values[rv.name]
        transform = model.rvs_to_transforms[rv]
        if transform is not None:
            value = transform.forward(value, *rv.owner.inputs).eval(mode=FAST)
        point[model.rvs_to_values[rv].name] = value
    return point


def _priors(X: np.ndarray, covariance_type: str) -> list[GMMPrior]:
    d = X.shape[1]
    return [
        GMMPrior.mclust(X, K, covariance_type),
        GMMPrior.pooled(X, K, covariance_type),
        GMMPrior(  # independent means, non-flat Dirichlet, per-feature scales
            weights=DirichletPrior(np.array([1.5, 2.0, 3.0])),
            means=NormalMeanPrior.independent(X.mean(axis=0) + 1.0, covariance=3.0),
            covariances=CovariancePrior(dof=d + 1.5, scale=np.linspace(0.5, 2.0, d)),
        ),
    ]


@pytest.mark.parametrize("covariance_type", SHARED)
@pytest.mark.parametrize("n_features", [1, 3])
def test_logp_equals_numpy_map_objective(covariance_type, n_features):
    X = _data(n_features)
    params = _random_params(covariance_type, n_features)
    loglik = log_mixture_density(X, params, covariance_type).sum()
    for prior in _priors(X, covariance_type):
        model = build_model(X, K, covariance_type=covariance_type, prior=prior)
        logp = model.compile_logp(jacobian=False, mode=FAST)(
            _point(model, params, covariance_type)
        )
        expected = loglik + prior.log_prob(params, covariance_type)
        np.testing.assert_allclose(logp, expected, rtol=1e-10)
    # flat parts: the likelihood plus the Dirichlet(1) constant log (K-1)!
    model = build_model(X, K, covariance_type=covariance_type, prior=GMMPrior())
    logp = model.compile_logp(jacobian=False, mode=FAST)(_point(model, params, covariance_type))
    np.testing.assert_allclose(logp, loglik + np.log(2.0), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", SHARED)
def test_logp_with_missing_values_equals_the_observed_data_objective(covariance_type):
    """NaN cells: each row's density is its observed coordinates' (core's chunk kernel)."""
    X = _data(3)
    X[2, 1] = X[5, 0] = np.nan
    X[7, [0, 2]] = np.nan
    params = _random_params(covariance_type, 3)
    prior = GMMPrior.mclust(X, K, covariance_type)
    model = build_model(X, K, covariance_type=covariance_type, prior=prior)
    logp = model.compile_logp(jacobian=False, mode=FAST)(_point(model, params, covariance_type))
    expected = log_mixture_density(X, params, covariance_type).sum()
    np.testing.assert_allclose(
        logp, expected + prior.log_prob(params, covariance_type), rtol=1e-10
    )


def test_eii_prior_is_the_proportional_inverse_gamma():
    """EII's prior (one inverse-gamma factor per feature at the one variance) differs
    from the normalized InvGamma(d(nu/2 + 1) - 1, sum(psi)/2) by a constant, and its
    prior draws follow that inverse-gamma."""
    X = _data(3)
    prior = _priors(X, "EII")[2]
    model = build_model(X, K, covariance_type="EII", prior=prior)
    rv = model["variance"]
    dof, scale = prior.covariances.dof, np.linspace(0.5, 2.0, 3)
    alpha, beta = 3 * (dof / 2 + 1) - 1, scale.sum() / 2
    grid = np.array([0.2, 0.7, 1.5, 4.0])
    logp = [pm.logp(rv, v).eval(mode=FAST) for v in grid]
    ref = stats.invgamma(alpha, scale=beta).logpdf(grid)
    diff = np.asarray(logp) - ref
    np.testing.assert_allclose(diff, diff[0], atol=1e-10)
    draws = pm.draw(rv, draws=4000, random_seed=0)
    assert stats.kstest(draws, stats.invgamma(alpha, scale=beta).cdf).pvalue > 1e-3


def test_dims_and_shared_covariances():
    X = _data(2)
    for covariance_type, free, dims in (
        ("EII", "variance", ()),
        ("EEI", "variances", ("feature",)),
    ):
        model = build_model(X, K, covariance_type=covariance_type)
        assert [rv.name for rv in model.free_RVs] == [free, "weights", "means"]
        assert model.named_vars_to_dims.get(free, ()) == dims
        assert model.named_vars_to_dims["covariances"] == ("component", "feature")
        point = model.initial_point()
        cov = model.compile_fn(
            model["covariances"], inputs=model.value_vars, on_unused_input="ignore", mode=FAST
        )(point)
        assert cov.shape == (K, 2)
        np.testing.assert_array_equal(cov, np.broadcast_to(cov[0], cov.shape))
        if covariance_type == "EII":
            assert cov[0, 0] == cov[0, 1]


@pytest.mark.parametrize("covariance_type", SHARED)
def test_find_map_lands_on_the_map_em_fit(covariance_type):
    X = _data(2, n_samples=60)
    gm = GaussianMixture(
        K,
        covariance_type=covariance_type,
        prior="mclust",
        reg_covar=0.0,
        tol=1e-12,
        max_iter=5000,
        random_state=0,
    ).fit(X)
    model = build_model(X, K, covariance_type=covariance_type, prior="mclust")
    start = initial_values(
        {
            "weights": np.full(K, 1.0 / K),
            "means": gm.means_ + 0.3,
            "covariances": np.ones((K, 2)),
        },
        covariance_type,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = pm.find_MAP(
            model=model, initvals=start, progressbar=False, compile_kwargs={"mode": FAST}
        )
    np.testing.assert_allclose(point["weights"], gm.weights_, atol=1e-4)
    np.testing.assert_allclose(point["means"], gm.means_, atol=1e-4)
    np.testing.assert_allclose(point["covariances"], gm.covariances_, atol=1e-4)
    # sharper: at the MAP-EM fit the gradient of logp(jacobian=False) vanishes
    params = GMMParams(gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_)
    at_fit = _point(model, params, covariance_type)
    grad = model.compile_dlogp(jacobian=False, mode=FAST)(at_fit)
    scale = model.compile_dlogp(jacobian=False, mode=FAST)(model.initial_point())
    assert np.max(np.abs(grad)) < 1e-6 * max(1.0, np.max(np.abs(scale)))


class _OtherPrior(GMMPrior):
    """The same prior under a record type the kernel does not know: the PyMC path."""


def _closed_form_posterior_check(covariance_type: str, draws: int, backend: str) -> None:
    """K = 1 with a conjugate prior: the posterior of the shared variance is an
    inverse-gamma in closed form (the means integrated out); NUTS on the numba kernel
    or on the PyMC model must reproduce it."""
    rng = np.random.default_rng(3)
    X = rng.normal([1.0, -2.0], [1.0, 1.5], size=(15, 2))
    n, d = X.shape
    m0, kappa0, nu0, psi0 = np.zeros(d), 0.5, 4.0, np.array([1.0, 2.0])
    if covariance_type == "EII":
        psi0 = np.full(d, 1.5)
    prior = (GMMPrior if backend == "kernel" else _OtherPrior)(
        means=NormalMeanPrior.conjugate(m0, kappa0), covariances=CovariancePrior(nu0, psi0)
    )
    assert supports(prior, covariance_type) == (backend == "kernel")
    post = PosteriorGaussianMixture(
        1, covariance_type=covariance_type, prior=prior, draws=draws, tune=draws, chains=2,
        random_state=1,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post.fit(X)
    assert post.backend_ == backend
    xbar = X.mean(axis=0)
    scatter = ((X - xbar) ** 2).sum(axis=0) + kappa0 * n / (kappa0 + n) * (xbar - m0) ** 2
    cov = post.idata_["posterior"].to_dataset()["covariances"]
    assert cov.dims == ("chain", "draw", "component", "feature")
    values = cov.values.reshape(-1, d)
    if covariance_type == "EII":  # lambda ~ IG(d(nu/2+1) - 1 + nd/2, (sum psi + sum S)/2)
        np.testing.assert_array_equal(values[:, 0], values[:, 1])
        exact = [
            stats.invgamma(d * (nu0 / 2 + 1) - 1 + n * d / 2, scale=(psi0 + scatter).sum() / 2)
        ]
        samples = [values[:, 0]]
    else:  # a_j ~ IG(nu/2 + n/2, (psi_j + S_j)/2)
        exact = [
            stats.invgamma(nu0 / 2 + n / 2, scale=(psi0[j] + scatter[j]) / 2) for j in range(d)
        ]
        samples = [values[:, j] for j in range(d)]
    mcse = az.mcse(post.idata_["posterior"].to_dataset()[["covariances"]])["covariances"]
    for j, (dist, sample) in enumerate(zip(exact, samples, strict=True)):
        assert stats.kstest(sample[::4], dist.cdf).pvalue > 1e-3
        assert abs(sample.mean() - dist.mean()) < 4 * float(mcse.values[0, j])
        np.testing.assert_allclose(sample.std(), dist.std(), rtol=0.1)
    assert post.covariances_.shape == (1, d)
    assert np.isfinite(post.idata_["log_likelihood"].to_dataset()["x"].values).all()


@pytest.mark.parametrize("covariance_type", SHARED)
def test_posterior_matches_the_closed_form(covariance_type):
    _closed_form_posterior_check(covariance_type, draws=1000, backend="kernel")


@pytest.mark.parametrize("covariance_type", ["EII", pytest.param("EEI", marks=pytest.mark.slow)])
def test_pymc_path_posterior_matches_the_closed_form(covariance_type):
    _closed_form_posterior_check(covariance_type, draws=500, backend="pymc")


@pytest.mark.parametrize("covariance_type", ["VEV", "EVE", "VVE", "EEV", "VEE", "EVV"])
def test_unsupported_families_name_the_supported_ones(covariance_type):
    with pytest.raises(ValueError, match="does not support covariance_type") as info:
        build_model(_data(2), K, covariance_type=covariance_type)
    message = str(info.value)
    supported = ("full", "tied", "diag", "spherical", "EII", "VII", "EEI", "VEI", "EVI", "VVI")
    for name in (*supported, "EEE", "VVV"):
        assert repr(name) in message
    for name in ("VEV", "EVE", "VVE", "EEV", "VEE", "EVV"):
        assert repr(name) not in message.split("supported:")[1]
    # the estimator says so before any fitting
    with pytest.raises(ValueError, match="does not support covariance_type"):
        PosteriorGaussianMixture(K, covariance_type=covariance_type).fit(_data(2))


def test_supported_types_list():
    supported = posterior_covariance_types()
    for name in supported:  # each one builds
        build_model(_data(2), K, covariance_type=name)
    assert set(supported) == {
        "full", "tied", "diag", "spherical", "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
        "VVV", "E", "V",
    }  # fmt: skip
