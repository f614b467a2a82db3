"""Rescaling a feature by 1e8 or 1e-8 changes no decision and transforms the estimates
exactly: means scale, covariances scale by the outer product, weights and memberships
are unchanged, and the log-likelihood shifts by -N log(c).

Two things are scale-dependent by design, so these tests hold them fixed:

- ``reg_covar`` is an absolute amount added to every variance (scikit-learn's
  semantics), so the MLE and MAP comparisons use ``reg_covar=0``;
- k-means (and k-means++) starts use Euclidean distances, so the tests start from
  ``init_params='random'`` (random responsibilities: the same at any scale).

'spherical' has one variance for all features, so it is only invariant under a common
rescaling of every feature; so is mclust's prior for 'diag' (one average variance),
hence MAP with ``prior='mclust'`` is checked for 'full' and 'tied'. The pooled (default)
prior is per-feature (its preliminary fit runs on standardized features, its scale is
the pooled covariance or its diagonal), so it is checked for 'diag' too.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import GaussianMixture, GMMPrior, select_model
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.datasets import make_mixture

X = make_mixture(150, n_components=2, n_features=3, separation=5, random_state=1).X
SETTINGS = {"reg_covar": 0.0, "tol": 1e-12, "max_iter": 2000, "init_params": "random"}


def _scaling(feature: int, factor: float) -> np.ndarray:
    scale = np.ones(X.shape[1])
    scale[feature] = factor
    return scale


def _assert_transformed(base: GaussianMixture, scaled: GaussianMixture, scale: np.ndarray):
    model = get_covariance_model(base.covariance_type)
    k, d = base.means_.shape
    outer = np.outer(scale, scale)
    full_base = model.to_full(base.covariances_, k, d)
    full_scaled = model.to_full(scaled.covariances_, k, d)
    np.testing.assert_allclose(scaled.weights_, base.weights_, rtol=1e-7)
    np.testing.assert_allclose(scaled.means_ / scale, base.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(full_scaled / outer, full_base, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        scaled.predict_proba(X * scale), base.predict_proba(X), rtol=1e-6, atol=1e-9
    )
    n = X.shape[0]
    shift = -n * np.log(np.prod(scale))
    loglik = base.score(X) * n
    assert scaled.score(X * scale) * n == pytest.approx(loglik + shift, abs=1e-6)


@pytest.mark.parametrize("factor", [1e8, 1e-8])
@pytest.mark.parametrize("cov", ["full", "tied", "diag"])
def test_mle_estimates_transform_exactly(cov, factor):
    base = GaussianMixture(2, covariance_type=cov, random_state=0, **SETTINGS).fit(X)
    for feature in range(X.shape[1]):
        scale = _scaling(feature, factor)
        scaled = GaussianMixture(2, covariance_type=cov, random_state=0, **SETTINGS)
        _assert_transformed(base, scaled.fit(X * scale), scale)


@pytest.mark.parametrize("factor", [1e8, 1e-8])
def test_mle_spherical_transforms_exactly_under_a_common_scale(factor):
    base = GaussianMixture(2, covariance_type="spherical", random_state=0, **SETTINGS).fit(X)
    scale = np.full(X.shape[1], factor)
    scaled = GaussianMixture(2, covariance_type="spherical", random_state=0, **SETTINGS)
    _assert_transformed(base, scaled.fit(X * scale), scale)


@pytest.mark.parametrize("factor", [1e8, 1e-8])
@pytest.mark.parametrize(
    ("prior", "cov"),
    [("mclust", "full"), ("mclust", "tied"), ("pooled", "full"), ("pooled", "tied"),
     ("pooled", "diag")],
)  # fmt: skip
def test_map_with_a_data_built_prior_transforms_exactly(prior, cov, factor):
    """mclust's and the pooled prior are built from the data, so they rescale with them."""
    base = GaussianMixture(2, covariance_type=cov, prior=prior, random_state=0, **SETTINGS)
    base.fit(X)
    for feature in range(X.shape[1]):
        scale = _scaling(feature, factor)
        scaled = GaussianMixture(
            2, covariance_type=cov, prior=prior, random_state=0, **SETTINGS
        ).fit(X * scale)
        _assert_transformed(base, scaled, scale)
        assert scaled.lower_bound_ * len(X) == pytest.approx(
            base.lower_bound_ * len(X) - len(X) * np.log(factor) - _prior_shift(cov, factor),
            abs=1e-6,
        )


def _prior_shift(cov: str, factor: float) -> float:
    """How the log prior density moves when one feature is rescaled by ``factor``: the
    Jacobian of the parameters (means: K log c; covariances: (d + 1) log c per
    inverse-Wishart draw, K of them for 'full', one for 'tied')."""
    k, d = 2, X.shape[1]
    if cov == "diag":  # one inverse-gamma variance per component scales by c^2: 2 log c,
        return (k + 2 * k) * np.log(factor)  # minus log c from the conjugate mean's sd
    n_cov = k if cov == "full" else 1
    return (k + n_cov * (d + 1)) * np.log(factor)


@pytest.mark.parametrize("factor", [1e8, 1e-8])
@pytest.mark.parametrize("prior", [None, "mclust", "pooled"])
def test_select_model_chooses_the_same_model_and_fails_the_same_cells(prior, factor):
    # mclust's prior for 'diag' uses one average variance: not per-feature
    # equivariant (see the module docstring), so its MAP grid leaves it out.
    types = ["full", "tied"] if prior == "mclust" else ["full", "tied", "diag"]
    grid = {"n_components": [1, 2, 3], "covariance_types": types}
    settings = {**SETTINGS, "tol": 1e-8, "n_init": 2}
    base = select_model(X, **grid, prior=prior, random_state=0, **settings)
    scale = _scaling(1, factor)
    scaled = select_model(X * scale, **grid, prior=prior, random_state=0, **settings)
    assert scaled.best_params == base.best_params
    assert list(scaled.table["error"] == "") == list(base.table["error"] == "")
    # BIC shifts by the same 2 N log(c) in every cell, so its differences are unchanged
    shift = 2 * len(X) * np.log(factor)
    np.testing.assert_allclose(scaled.table["bic"], base.table["bic"] + shift, atol=1e-5)


@pytest.mark.parametrize("factor", [1e-8, 1.0, 1e8])
def test_default_prior_decisions_do_not_depend_on_units(factor):
    """Mixed units never error; a constant column always does; at every scale."""
    scale = _scaling(2, factor)
    GMMPrior.mclust(X * scale, 2, "full")
    GMMPrior.pooled(X * scale, 2, "full")
    constant = X.copy()
    constant[:, 2] = 5.0
    for build in (GMMPrior.mclust, GMMPrior.pooled):
        with pytest.raises(ValueError, match="constant feature"):
            build(constant * scale, 2, "full")
    collinear = np.c_[X[:, :2], X[:, 0] - 2 * X[:, 1]]
    with pytest.raises(ValueError, match="collinear"):
        GMMPrior.mclust(collinear * scale, 2, "full")
    # the pooled prior's scale is regularized by the diagonal: collinear data are fine
    assert GMMPrior.pooled(collinear * scale, 2, "full").name == "pooled"


def test_with_the_default_reg_covar_a_tiny_feature_does_not_change_the_fit_silently():
    """reg_covar=1e-6 swamps a feature of variance ~1e-16: the fit then differs from the
    rescaled one, and it says so."""
    import warnings

    from bayesgmm import DegenerateFitWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        GaussianMixture(2, random_state=0).fit(X)
        GaussianMixture(2, random_state=0).fit(X * _scaling(2, 1e8))
    with pytest.warns(DegenerateFitWarning, match="of the variance of 'x2' in component"):
        GaussianMixture(2, random_state=0).fit(X * _scaling(2, 1e-8))
