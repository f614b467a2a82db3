"""The posterior for mclust's VEI (lambda_k A) and EVI (lambda A_k): volumes on the log
transform, log-shapes on the zero-sum transform, MAP-EM's prior as a density in those
coordinates.

References: the NumPy MAP objective (``logp(jacobian=False)``), scipy's inverse-gamma
densities integrated by brute-force quadrature (propriety and normalization), a Bessel
closed form (EVI), PyMC's logp (the NumPy layout; the numba kernel's value and gradient are in
tests/test_bayes_kernel.py),
scipy's optimizer (the MAP-EM fit is the posterior mode), simulated parameters (NUTS).
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from scipy import integrate, optimize, special, stats

from bayesgmm import GaussianMixture
from bayesgmm.bayes import PosteriorGaussianMixture, build_model
from bayesgmm.bayes.model import initial_values, posterior_covariance_types
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import log_mixture_density
from bayesgmm.core.params import GMMParams
from bayesgmm.core.unconstrained import unconstrained_layout
from bayesgmm.priors import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior

K = 3
FAST = Mode(linker="py", optimizer="fast_run")
FAMILIES = ("VEI", "EVI")


def _data(n_features: int, n_samples: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(K, n_features))
    scales = np.exp(rng.normal(scale=0.4, size=(K, n_features)))
    labels = np.arange(n_samples) % K
    return centers[labels] + scales[labels] * rng.normal(size=(n_samples, n_features))


def _family_params(covariance_type: str, n_features: int, seed: int = 1) -> GMMParams:
    """Random parameters inside the family: variances lambda_k a_j or lambda a_kj."""
    rng = np.random.default_rng(seed)
    log_vol = rng.normal(scale=0.5, size=K)
    log_shape = rng.normal(scale=0.5, size=(K, n_features))
    if covariance_type == "VEI":
        log_shape[:] = log_shape[0]
    else:
        log_vol[:] = log_vol[0]
    log_shape -= log_shape.mean(axis=1, keepdims=True)
    covariances = np.exp(log_vol[:, None] + log_shape)
    prec_chol = get_covariance_model(covariance_type).precision_cholesky(covariances)
    weights = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(scale=3.0, size=(K, n_features))
    return GMMParams(weights, means, covariances, prec_chol)


def _point(model: pm.Model, params: GMMParams, covariance_type: str) -> dict:
    """``params`` as a point of the model's value variables, through PyMC's own
    transforms (not the NumPy mirror)."""
    values = initial_values(
        {"weights": params.weights, "means": params.means, "covariances": params.covariances},
        covariance_type,
    )
    point = {}
    for rv in model.free_RVs:
        value = np.asarray(values[rv.name], dtype=float)
        transform = model.rvs_to_transforms[rv]
        if transform is not None:
            value = transform.forward(pt.as_tensor(value), *rv.owner.inputs).eval(mode=FAST)
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


# --------------------------------------------------------------------------------------
# The density: MAP objective, layout, kernel
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", FAMILIES)
@pytest.mark.parametrize("n_features", [pytest.param(1, marks=pytest.mark.slow), 3])
def test_logp_equals_numpy_map_objective(covariance_type, n_features):
    X = _data(n_features)
    draws = [_family_params(covariance_type, n_features, seed) for seed in (1, 2)]
    for prior in _priors(X, covariance_type):
        model = build_model(X, K, covariance_type=covariance_type, prior=prior)
        logp = model.compile_logp(jacobian=False, mode=FAST)
        for params in draws:
            expected = log_mixture_density(X, params, covariance_type).sum()
            expected += prior.log_prob(params, covariance_type)
            np.testing.assert_allclose(
                logp(_point(model, params, covariance_type)), expected, rtol=1e-12
            )
    # flat parts: the likelihood plus the Dirichlet(1) constant log (K-1)!
    model = build_model(X, K, covariance_type=covariance_type, prior=GMMPrior())
    logp = model.compile_logp(jacobian=False, mode=FAST)(_point(model, params, covariance_type))
    loglik = log_mixture_density(X, params, covariance_type).sum()
    np.testing.assert_allclose(logp, loglik + np.log(2.0), rtol=1e-12)


def test_logp_with_missing_values_equals_the_observed_data_objective():
    """NaN cells: each row's density is its observed coordinates' (core's chunk kernel)."""
    X = _data(3)
    X[2, 1] = X[5, 0] = np.nan
    X[7, [0, 2]] = np.nan
    for covariance_type in FAMILIES:
        params = _family_params(covariance_type, 3)
        prior = GMMPrior.mclust(X, K, covariance_type)
        model = build_model(X, K, covariance_type=covariance_type, prior=prior)
        logp = model.compile_logp(jacobian=False, mode=FAST)(
            _point(model, params, covariance_type)
        )
        expected = log_mixture_density(X, params, covariance_type).sum()
        np.testing.assert_allclose(
            logp, expected + prior.log_prob(params, covariance_type), rtol=1e-12
        )


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_free_variables_and_deterministic_covariances(covariance_type):
    X = _data(2)
    model = build_model(X, K, covariance_type=covariance_type)
    shape, volume = (
        ("log_shape", "volumes") if covariance_type == "VEI" else ("log_shapes", "volume")
    )
    assert [rv.name for rv in model.free_RVs] == [shape, volume, "weights", "means"]
    expected_dims = {
        "log_shape": ("feature",),
        "volumes": ("component",),
        "log_shapes": ("component", "feature"),
    }
    assert model.named_vars_to_dims.get(shape, ()) == expected_dims[shape]
    assert model.named_vars_to_dims.get(volume, ()) == expected_dims.get(volume, ())
    assert model.named_vars_to_dims["covariances"] == ("component", "feature")
    point = model.initial_point()
    (cov,) = model.compile_fn(
        model.replace_rvs_by_values([model["covariances"]]),
        inputs=model.value_vars,
        on_unused_input="ignore",
        mode=FAST,
    )(point)
    assert cov.shape == (K, 2)
    # every |A| = 1; VEI: one shape (rows proportional); EVI: one volume
    shapes = cov / np.exp(np.log(cov).mean(axis=1))[:, None]
    np.testing.assert_allclose(np.prod(shapes, axis=1), 1.0, rtol=1e-12)
    if covariance_type == "VEI":
        np.testing.assert_allclose(shapes, np.broadcast_to(shapes[0], shapes.shape), rtol=1e-12)
    else:
        volumes = np.exp(np.log(cov).mean(axis=1))
        np.testing.assert_allclose(volumes, volumes[0], rtol=1e-12)
    assert {"VEI", "EVI"} <= set(posterior_covariance_types())


@pytest.mark.parametrize("covariance_type", ["VEI", "EVI", "EII", "EEI", "diag", "full"])
def test_numpy_layout_equals_the_pymc_model(covariance_type):
    """core.unconstrained (the kernel's and Laplace's map) against PyMC: value-variable
    names and shapes, and logp(jacobian=True) at random unconstrained points equals the
    NumPy log posterior plus the layout's log-Jacobian."""
    X = _data(3)
    prior = _priors(X, covariance_type)[0]
    model = build_model(X, K, covariance_type=covariance_type, prior=prior)
    layout = unconstrained_layout(K, 3, covariance_type)
    point = model.initial_point()
    assert set(point) == set(layout.names)
    for name, shape in zip(layout.names, layout.shapes, strict=True):
        assert point[name].shape == shape, name
    logp = model.compile_logp(jacobian=True, mode=FAST)
    table = get_covariance_model(covariance_type)
    rng = np.random.default_rng(3)
    for _ in range(2):
        z = 0.4 * rng.normal(size=layout.size)
        w, m, c = layout.backward(z)
        params = GMMParams(w, m, c, table.precision_cholesky(c))
        expected = (
            log_mixture_density(X, params, covariance_type).sum()
            + prior.log_prob(params, covariance_type)
            + layout.log_jac_det(z)
        )
        np.testing.assert_allclose(logp(layout.split(z)), expected, rtol=1e-10)
        np.testing.assert_allclose(layout.forward(w, m, c), z, atol=1e-12)


# --------------------------------------------------------------------------------------
# The prior is proper
# --------------------------------------------------------------------------------------


def _zero_sum_2d(z: float) -> np.ndarray:
    """PyMC's ZeroSumTransform of one coordinate (D = 2): (z, -z) / sqrt(2)."""
    return np.array([z, -z]) / np.sqrt(2.0)


def _prior_model(covariance_type: str, n_components: int, dof: float, scale) -> pm.Model:
    X = _data(len(scale), seed=4)[: max(n_components, 2)]
    prior = GMMPrior(covariances=CovariancePrior(dof=dof, scale=np.asarray(scale)))
    return build_model(X, n_components, covariance_type=covariance_type, prior=prior)


def _density(model: pm.Model, name: str):
    """The log density of the log-shape variable ``name`` as a function of a batch of
    its unconstrained (zero-sum) coordinates, (n, *value shape) -> (n,): PyMC's own
    transform and ``pm.logp`` (the model's term; the transform's Jacobian is 0)."""
    rv = model[name]
    transform = model.rvs_to_transforms[rv]
    value = pt.tensor("z", shape=(None, *model.initial_point()[f"{name}_zerosum__"].shape))
    mode = FAST.excluding("fusion")  # numpy ufuncs on the batch, not a scalar loop
    fn = pytensor.function([value], pm.logp(rv, transform.backward(value)), mode=mode)
    return lambda z: fn(np.asarray(z, dtype=float))


def test_vei_prior_is_proper_and_normalized():
    """D = 2, K = 1: brute force, the MAP prior prod_j InvGamma(lambda a_j; nu/2, psi_j/2)
    (scipy) integrated over the volume and the one zero-sum coordinate of log a (a
    trapezoid on a wide grid of log lambda and z) is finite and equals the closed form;
    the model's log-shape density integrates to the same mass and equals the
    brute-force marginal (the volume integrated out by quad) pointwise."""
    dof, psi = 3.0, np.array([0.6, 2.5])
    alpha, b = dof / 2, psi / 2
    prior = stats.invgamma(alpha, scale=b)

    def map_prior(lam, z):  # lam (...,), z (...,): prod_j InvGamma(lam a_j)
        var = lam[..., None] * np.exp(np.stack([z, -z], axis=-1) / np.sqrt(2.0))
        return np.exp(prior.logpdf(var).sum(axis=-1))

    log_lam = np.linspace(-12.0, 14.0, 1301)
    z = np.linspace(-30.0, 30.0, 1501)
    grid = map_prior(np.exp(log_lam)[:, None], z[None, :]) * np.exp(log_lam)[:, None]
    assert grid[[0, -1]].max() < 1e-12 * grid.max()  # negligible at the edges
    assert grid[:, [0, -1]].max() < 1e-12 * grid.max()
    total = integrate.trapezoid(integrate.trapezoid(grid, z, axis=1), log_lam)
    d, shape = 2, 2 * (alpha + 1) - 1  # alpha' = D(alpha + 1) - 1
    log_c = np.sum(alpha * np.log(b) - special.gammaln(alpha))
    closed = np.exp(log_c + d * special.gammaln(shape / d) - np.sum(shape / d * np.log(b)))
    closed /= np.sqrt(d)
    np.testing.assert_allclose(total, closed, rtol=1e-6)
    # the model's log-shape density (the volume integrated out analytically)
    density = _density(_prior_model("VEI", 1, dof, psi), "log_shape")
    mass = integrate.quad(lambda v: np.exp(density([[v]])[0]), -np.inf, np.inf, limit=200)[0]
    np.testing.assert_allclose(mass, total, rtol=1e-6)  # same constants, not just shape
    for v in (-3.0, -0.4, 0.0, 1.1, 4.0):
        brute = integrate.quad(lambda lam, v=v: map_prior(np.array(lam), np.array(v)), 0, np.inf)
        np.testing.assert_allclose(np.exp(density([[v]])[0]), brute[0], rtol=1e-6)


def test_vei_prior_draws_follow_the_density():
    """Prior draws of the log-shape (exact, via the Dirichlet) against the model's own
    density's CDF by quadrature (K = 3, so the marginal is beta(u)^(-K alpha'))."""
    dof, psi = 4.0, np.array([0.5, 3.0])
    model = _prior_model("VEI", 3, dof, psi)
    density = _density(model, "log_shape")
    grid = np.linspace(-12, 12, 4001)
    dens = np.exp(density(grid[:, None]))
    cdf = integrate.cumulative_trapezoid(dens, grid, initial=0.0)
    cdf /= cdf[-1]
    draws = pm.draw(model["log_shape"], draws=3000, random_seed=1, mode=FAST)
    np.testing.assert_allclose(draws.sum(axis=1), 0.0, atol=1e-12)
    z = draws[:, 0] * np.sqrt(2.0)
    assert stats.kstest(z, lambda v: np.interp(v, grid, cdf)).pvalue > 1e-3
    # and the volumes given the shape: InvGamma(D(alpha+1)-1, sum_j b_j / a_j)
    rvs = [model["volumes"], model["log_shape"]]
    vol, shape = pm.draw(rvs, draws=3000, random_seed=2, mode=FAST)
    beta = (psi / 2 * np.exp(-shape)).sum(axis=1)
    ratio = vol[:, 0] / beta  # ~ InvGamma(alpha', 1)
    assert stats.kstest(ratio, stats.invgamma(2 * (dof / 2 + 1) - 1).cdf).pvalue > 1e-3


def test_evi_prior_is_proper_and_normalized():
    """D = 2, K = 2: the model's log-shapes density (2-D trapezoid over the two
    zero-sum coordinates) integrates to the closed form through
    int exp(-t beta(u)) dz = 2 sqrt(2) K0(2 t sqrt(b1 b2)) and
    (sum_k beta_k)^-M = int t^(M-1) exp(-t sum_k beta_k) dt / Gamma(M)."""
    dof, psi = 3.0, np.array([0.6, 2.5])
    alpha, b = dof / 2, psi / 2
    k, d = 2, 2
    shape = k * d * (alpha + 1) - 1
    model = _prior_model("EVI", k, dof, psi)
    density = _density(model, "log_shapes")
    grid = np.linspace(-10, 10, 201)
    z1, z2 = np.meshgrid(grid, grid, indexing="ij")
    values = density(np.stack([z1, z2], axis=-1).reshape(-1, 2, 1)).reshape(z1.shape)
    assert values[0].max() < values.max() - 25  # negligible at the edges: decays
    mass = integrate.trapezoid(integrate.trapezoid(np.exp(values), grid), grid)
    log_c = np.sum(alpha * np.log(b) - special.gammaln(alpha))

    def integrand(t):
        return t ** (shape - 1) * (2 * np.sqrt(2) * special.k0(2 * t * np.sqrt(b.prod()))) ** k

    closed = np.exp(k * log_c) * integrate.quad(integrand, 0, np.inf, limit=200)[0]
    np.testing.assert_allclose(mass, closed, rtol=1e-6)


def test_evi_prior_draws_follow_the_density():
    """The exact rejection sampler's draws: moments of the first zero-sum coordinate
    against the model's density integrated on a grid (D = 2, K = 2)."""
    dof, psi = 3.0, np.array([0.6, 2.5])
    model = _prior_model("EVI", 2, dof, psi)
    density = _density(model, "log_shapes")
    grid = np.linspace(-10, 10, 161)
    z1, z2 = np.meshgrid(grid, grid, indexing="ij")
    values = density(np.stack([z1, z2], axis=-1).reshape(-1, 2, 1)).reshape(z1.shape)
    dens = np.exp(values - values.max())
    marginal = integrate.trapezoid(dens, grid, axis=1)
    marginal /= integrate.trapezoid(marginal, grid)
    mean = integrate.trapezoid(grid * marginal, grid)
    second = integrate.trapezoid(grid**2 * marginal, grid)
    draws = pm.draw(model["log_shapes"], draws=4000, random_seed=3, mode=FAST)
    np.testing.assert_allclose(draws.sum(axis=-1), 0.0, atol=1e-12)
    z = draws[:, 0, 0] * np.sqrt(2.0)
    se = z.std() / np.sqrt(z.size)
    assert abs(z.mean() - mean) < 4 * se
    assert abs((z**2).mean() - second) < 4 * (z**2).std() / np.sqrt(z.size)
    cdf = integrate.cumulative_trapezoid(marginal, grid, initial=0.0)
    assert stats.kstest(z, lambda v: np.interp(v, grid, cdf / cdf[-1])).pvalue > 1e-3


# --------------------------------------------------------------------------------------
# The MAP fit is the posterior mode in these coordinates
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", ["VEI", pytest.param("EVI", marks=pytest.mark.slow)])
def test_map_em_fit_is_the_posterior_mode(covariance_type):
    """scipy's BFGS on the unconstrained log posterior without Jacobian (PyMC's
    logp(jacobian=False) and its gradient), from a perturbed start, lands on
    GaussianMixture(prior='mclust').fit's parameters."""
    X = _data(2, n_samples=90, seed=5)
    gm = GaussianMixture(
        K,
        covariance_type=covariance_type,
        prior="mclust",
        reg_covar=0.0,
        tol=1e-13,
        max_iter=10000,
        inner_tol=1e-14,
        inner_max_iter=1000,
        random_state=0,
    ).fit(X)
    model = build_model(X, K, covariance_type=covariance_type, prior="mclust")
    layout = unconstrained_layout(K, 2, covariance_type)
    logp = model.compile_logp(jacobian=False, mode=FAST)
    dlogp = model.compile_dlogp(jacobian=False, mode=FAST)
    slices = dict(zip(layout.names, layout.slices, strict=True))
    order = [slices[v.name] for v in model.value_vars]

    def negative(z):
        point = layout.split(z)
        grad = np.empty_like(z)
        flat, pos = dlogp(point), 0
        for where in order:
            grad[where] = flat[pos : pos + where.stop - where.start]
            pos += where.stop - where.start
        return -float(logp(point)), -grad

    fit_z = layout.forward(gm.weights_, gm.means_, gm.covariances_)
    start = fit_z + 0.1 * np.random.default_rng(0).normal(size=fit_z.size)
    result = optimize.minimize(
        negative, start, jac=True, method="BFGS", options={"gtol": 1e-9, "maxiter": 5000}
    )
    w, m, c = layout.backward(result.x)
    np.testing.assert_allclose(w, gm.weights_, atol=1e-5)
    np.testing.assert_allclose(m, gm.means_, atol=1e-5)
    np.testing.assert_allclose(c, gm.covariances_, rtol=1e-5)
    assert -result.fun >= -negative(fit_z)[0] - 1e-8  # the fit is not beaten either
    assert np.abs(negative(fit_z)[1]).max() < 1e-5  # and the gradient vanishes there


# --------------------------------------------------------------------------------------
# One dimension
# --------------------------------------------------------------------------------------


def test_one_feature_vei_is_v():
    """D = 1: A = 1, so VEI's model is V's (VII): the same logp(jacobian=False) at the
    same variances, under the same prior."""
    X = _data(1)
    params = _family_params("VEI", 1)
    prior = GMMPrior.mclust(X, K, "VEI")
    vei = build_model(X, K, covariance_type="VEI", prior=prior)
    v = build_model(X, K, covariance_type="V", prior=prior)
    spherical = GMMParams(
        params.weights, params.means, params.covariances[:, 0], params.precisions_cholesky[:, 0]
    )
    a = vei.compile_logp(jacobian=False, mode=FAST)(_point(vei, params, "VEI"))
    b = v.compile_logp(jacobian=False, mode=FAST)(_point(v, spherical, "V"))
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert vei.initial_point()["log_shape_zerosum__"].shape == (0,)


# --------------------------------------------------------------------------------------
# NUTS
# --------------------------------------------------------------------------------------


def _simulated(covariance_type: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = np.array([[-6.0, 0.0], [6.0, 1.0]])
    if covariance_type == "VEI":
        shape = np.array([2.0, 0.5])
        covariances = np.array([0.6, 1.8])[:, None] * shape
    else:
        covariances = 1.2 * np.array([[2.0, 0.5], [0.4, 2.5]])
    labels = np.arange(400) % 2
    X = means[labels] + np.sqrt(covariances[labels]) * rng.normal(size=(400, 2))
    return X, means, covariances


@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_posterior_recovers_simulated_parameters(covariance_type):
    """A short NUTS run on the kernel: posterior means within 4 posterior sd of the
    simulated means and variances; chains mix (R-hat)."""
    import arviz as az

    X, means, covariances = _simulated(covariance_type)
    post = PosteriorGaussianMixture(
        2, covariance_type=covariance_type, draws=300, tune=300, chains=2, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post.fit(X)
    assert post.backend_ == "kernel"
    tree = post.idata_["posterior"].to_dataset()
    order = np.argsort(post.means_[:, 0])
    for name, truth in (("means", means), ("covariances", covariances)):
        mean = tree[name].mean(("chain", "draw")).values[order]
        sd = tree[name].std(("chain", "draw")).values[order]
        assert np.all(np.abs(mean - truth) < 4 * sd + 1e-3), (name, mean, truth, sd)
    cov = tree["covariances"].values.reshape(-1, 2, 2)
    shapes = cov / np.sqrt(cov.prod(axis=-1, keepdims=True))
    np.testing.assert_allclose(shapes.prod(axis=-1), 1.0, rtol=1e-10)  # |A_k| = 1
    if covariance_type == "VEI":
        np.testing.assert_allclose(shapes[:, 0], shapes[:, 1], rtol=1e-10)
    else:
        vol = np.sqrt(cov.prod(axis=-1))
        np.testing.assert_allclose(vol[:, 0], vol[:, 1], rtol=1e-10)
    rhat = az.rhat(post.idata_["posterior"].to_dataset()[["covariances"]])["covariances"]
    assert float(rhat.max()) < 1.05


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", FAMILIES)
def test_pymc_path_agrees_with_the_kernel(covariance_type):
    """The PyMC model sampled by PyMC's NUTS (a prior form the kernel does not know)
    against the kernel's posterior: means and variances agree within MCSE-scale."""

    class _OtherPrior(GMMPrior):
        pass

    X, _, _ = _simulated(covariance_type, seed=1)
    prior = GMMPrior.mclust(X, 2, covariance_type)
    other = _OtherPrior(prior.weights, prior.means, prior.covariances)
    fits = {}
    for name, p in (("kernel", prior), ("pymc", other)):
        post = PosteriorGaussianMixture(
            2, covariance_type=covariance_type, prior=p, draws=500, tune=500, chains=2,
            random_state=0,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post.fit(X)
        assert post.backend_ == name
        fits[name] = post
    tree = fits["kernel"].idata_["posterior"].to_dataset()
    sd = tree["covariances"].std(("chain", "draw")).values
    np.testing.assert_array_less(
        np.abs(fits["kernel"].covariances_ - fits["pymc"].covariances_), 0.5 * sd
    )
