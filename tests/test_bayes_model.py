"""The PyMC model: its logp equals the NumPy MAP objective at the same parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import pytest
from pymc.distributions.transforms import CholeskyCovTransform
from pymc.logprob.transforms import LogTransform
from pytensor.compile.mode import Mode
from scipy.special import gammaln

from bayesgmm.bayes import build_model
from bayesgmm.core.covariance import COVARIANCE_TYPES, get_covariance_model
from bayesgmm.core.density import log_mixture_density
from bayesgmm.core.params import GMMParams
from bayesgmm.priors import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior

K = 3
# The Python linker compiles in a fraction of a second (numba takes seconds per graph,
# on a cold cache tens of seconds) and runs the same rewritten graph; the doctest and
# test_initial_point_is_valid cover the default backend.
FAST = Mode(linker="py", optimizer="fast_run")


def _data(n_features: int, n_samples: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(K, n_features))
    labels = np.arange(n_samples) % K
    return centers[labels] + rng.normal(size=(n_samples, n_features))


def _random_params(covariance_type: str, n_features: int, seed: int = 1) -> GMMParams:
    """Random parameters, far from the prior mean and the data's moments."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(scale=3.0, size=(K, n_features))
    a = rng.normal(size=(K, n_features, n_features))
    full = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(n_features)
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": rng.uniform(0.3, 3.0, size=(K, n_features)),
        "spherical": rng.uniform(0.3, 3.0, size=K),
    }[covariance_type]
    prec_chol = get_covariance_model(covariance_type).precision_cholesky(covariances)
    return GMMParams(weights, means, covariances, prec_chol)


def _point(model: pm.Model, params: GMMParams) -> dict[str, np.ndarray]:
    """``params`` as a point of the model's value variables (transformed space)."""
    values = {"weights": params.weights, "means": params.means, "covariances": params.covariances}
    point = {}
    for rv in model.free_RVs:
        value_var = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms[rv]
        value = values[rv.name]
        if transform is not None:
            value = transform.forward(value, *rv.owner.inputs).eval(mode=FAST)
        point[value_var.name] = value
    return point


def _log_jac_det(model: pm.Model, point: dict[str, np.ndarray]) -> float:
    total = 0.0
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms[rv]
        if transform is not None:
            value = point[model.rvs_to_values[rv].name]
            total += float(
                np.sum(
                    transform.log_jac_det(pt.as_tensor(value), *rv.owner.inputs).eval(mode=FAST)
                )
            )
    return total


def _independent_prior(X: np.ndarray, covariance_type: str) -> GMMPrior:
    """Independent means, non-flat Dirichlet, non-default inverse-Wishart."""
    n_features = X.shape[1]
    rng = np.random.default_rng(5)
    a = rng.normal(size=(n_features, n_features))
    spd = a @ a.T + np.eye(n_features)
    scale = {"full": spd, "tied": spd, "diag": np.linspace(0.5, 2.0, n_features)}
    return GMMPrior(
        weights=DirichletPrior(np.array([1.5, 2.0, 3.0])),
        means=NormalMeanPrior.independent(X.mean(axis=0) + 1.0, covariance=3.0 * spd),
        covariances=CovariancePrior(dof=n_features + 1.5, scale=scale.get(covariance_type, 1.7)),
    )


CASES = [(ct, 2) for ct in COVARIANCE_TYPES] + [("full", 1), ("spherical", 1)]


@pytest.mark.parametrize(("covariance_type", "n_features"), CASES)
def test_logp_equals_numpy_map_objective(covariance_type, n_features):
    X = _data(n_features)
    params = _random_params(covariance_type, n_features)
    loglik = log_mixture_density(X, params, covariance_type).sum()
    priors = (
        GMMPrior.mclust(X, K, covariance_type),
        GMMPrior.pooled(X, K, covariance_type),  # the default: empirical-Bayes scale
        _independent_prior(X, covariance_type),
    )
    for prior in priors:
        model = build_model(X, K, covariance_type=covariance_type, prior=prior)
        point = _point(model, params)
        expected = loglik + prior.log_prob(params, covariance_type)
        logp = model.compile_logp(jacobian=False, mode=FAST)(point)
        np.testing.assert_allclose(logp, expected, rtol=1e-8)

    # jacobian=True adds exactly the transforms' log-Jacobians (which are not zero)
    with_jacobian = model.compile_logp(jacobian=True, mode=FAST)(point)
    log_jac = _log_jac_det(model, point)
    assert abs(log_jac) > 1e-3
    np.testing.assert_allclose(with_jacobian, logp + log_jac, rtol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_flat_prior_parts(covariance_type):
    """None parts are flat: means and covariances add 0; Dirichlet(1) adds log (K-1)!."""
    X = _data(2)
    params = _random_params(covariance_type, 2, seed=2)
    model = build_model(X, K, covariance_type=covariance_type, prior=GMMPrior())
    logp = model.compile_logp(jacobian=False, mode=FAST)(_point(model, params))
    expected = log_mixture_density(X, params, covariance_type).sum() + gammaln(K)
    np.testing.assert_allclose(logp, expected, rtol=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_transforms(covariance_type):
    model = build_model(_data(2), K, covariance_type=covariance_type)
    transform = model.rvs_to_transforms[model["covariances"]]
    expected = CholeskyCovTransform if covariance_type in ("full", "tied") else LogTransform
    assert isinstance(transform, expected)
    assert model.rvs_to_transforms[model["weights"]].name == "simplex"
    assert model.rvs_to_transforms[model["means"]] is None


def test_per_observation_log_likelihood():
    X = _data(2)
    params = _random_params("tied", 2)
    model = build_model(X, K, covariance_type="tied")
    elementwise = model.compile_fn(
        model.logp(vars=[model["x"]], sum=False)[0], inputs=model.value_vars, mode=FAST
    )(_point(model, params))
    assert elementwise.shape == (X.shape[0],)
    np.testing.assert_allclose(elementwise, log_mixture_density(X, params, "tied"), rtol=1e-10)


def test_coords_dims_and_no_side_effects():
    X = pd.DataFrame(_data(2), columns=["waiting", "eruptions"], index=np.arange(30) + 100)
    before = X.copy()
    model = build_model(X, K)
    assert model.coords["component"] == (0, 1, 2)
    assert model.coords["feature"] == ("waiting", "eruptions")
    assert model.coords["feature_bis"] == ("waiting", "eruptions")
    assert model.coords["obs"] == tuple(range(100, 130))
    assert model.named_vars_to_dims == {
        "weights": ("component",),
        "means": ("component", "feature"),
        "covariances": ("component", "feature", "feature_bis"),
        "x": ("obs", "feature"),
    }
    pd.testing.assert_frame_equal(X, before)
    np.testing.assert_array_equal(model.rvs_to_values[model["x"]].get_value(), before.to_numpy())

    dims = {
        "tied": ("feature", "feature_bis"),
        "diag": ("component", "feature"),
        "spherical": ("component",),
    }
    array = _data(1)
    for covariance_type, expected in dims.items():
        other = build_model(array, K, covariance_type=covariance_type)
        assert other.named_vars_to_dims["covariances"] == expected
        assert other.coords["feature"] == ("x0",)
        assert other.coords["obs"] == tuple(range(30))

    # independent models, no model context left open
    again = build_model(X, K)
    assert again is not model
    with again:
        pm.Normal("extra")
    assert "extra" in again.named_vars
    assert "extra" not in model.named_vars
    with pytest.raises(TypeError):
        pm.modelcontext(None)


def test_initial_point_is_valid():
    """The default initial point has a finite logp, flat parts too (and the default
    compiled backend agrees with the Python linker)."""
    model = build_model(_data(2), K)
    point = model.initial_point()
    logp = model.compile_logp()(point)
    np.testing.assert_allclose(logp, model.compile_logp(mode=FAST)(point), rtol=1e-10)
    for covariance_type in COVARIANCE_TYPES:
        model = build_model(_data(2), K, covariance_type=covariance_type, prior=GMMPrior())
        assert np.isfinite(model.compile_logp(mode=FAST)(model.initial_point()))


@pytest.mark.parametrize(
    ("prior", "match"),
    [
        ("defaults", r"`prior` must be one of \['default', 'pooled', 'mclust'\]"),
        (None, r"`prior` must be one of \['default', 'pooled', 'mclust'\]"),
        ({"weights": 1.0}, r"`prior` must be one of \['default', 'pooled', 'mclust'\]"),
        (GMMPrior(means=NormalMeanPrior.conjugate([0.0, 0.0, 0.0])), "3 features|features"),
        (GMMPrior(covariances=CovariancePrior(dof=0.5, scale=1.0)), "dof"),
        (GMMPrior(weights=DirichletPrior(0.5)), "alpha"),
    ],
)
def test_bad_prior_raises(prior, match):
    with pytest.raises(ValueError, match=match):
        build_model(_data(2), K, prior=prior)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X": np.zeros(5)}, "2-D"),
        ({"X": np.full((5, 2), np.nan)}, "NaN"),
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"covariance_type": "XYZ"}, "covariance_type"),
        ({"covariance_type": "VEV"}, "covariance_type"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = {"X": _data(2), "n_components": K} | kwargs
    with pytest.raises(ValueError, match=match):
        build_model(args.pop("X"), args.pop("n_components"), **args)
