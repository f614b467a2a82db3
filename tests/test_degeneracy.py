"""Degenerate fits warn (components on single points, weights below 1/N, covariances
that are mostly reg_covar); the standard fits of the bundled data sets do not."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesgmm import DegenerateFitWarning, GaussianMixture
from bayesgmm import datasets as ds
from bayesgmm._degeneracy import find_degeneracies
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams

RNG = np.random.default_rng(1)
DUPLICATED = np.repeat(RNG.normal(size=(20, 2)), 10, axis=0)  # 20 distinct rows x 10
THREE_POINTS = np.repeat(RNG.normal(size=(3, 2)), 10, axis=0)  # 3 distinct rows
FIVE_ROWS = RNG.normal(size=(5, 2))


def _fit(X, *args, **kwargs) -> GaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(*args, **kwargs).fit(X)


def test_duplicated_rows_with_a_component_on_one_row_warn():
    with pytest.warns(DegenerateFitWarning, match=r"components 0, 2 rest on 2.998, 1 effective"):
        gm = GaussianMixture(3, random_state=2).fit(DUPLICATED)
    kinds = {(d.kind, d.component) for d in gm.degeneracies_}
    assert ("few_points", 2) in kinds
    assert ("reg_covar", 2) in kinds
    np.testing.assert_allclose(np.diag(gm.covariances_[2]), 1e-6, rtol=1e-6)  # the floor


def test_duplicated_rows_fitted_well_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        gm = GaussianMixture(3, random_state=1).fit(DUPLICATED)
    assert gm.degeneracies_ == ()


def test_more_components_than_distinct_rows_warns_about_weights_and_points():
    with pytest.warns(DegenerateFitWarning) as record:
        gm = GaussianMixture(5, random_state=0).fit(THREE_POINTS)
    message = str(record[-1].message)
    assert "components 3, 4 have weights below one observation (1/N = 0.0333)" in message
    assert "components 0, 1, 2 rest on 1, 1, 1 effective distinct point(s)" in message
    assert "no more than the 3 parameters of its covariance" in message
    assert "fewer components" in message
    assert "prior='default'" in message
    assert {d.component for d in gm.degeneracies_ if d.kind == "small_weight"} == {3, 4}


def test_five_rows_two_components_warn():
    with pytest.warns(DegenerateFitWarning, match="component 1 rests on 1 effective"):
        gm = GaussianMixture(2, random_state=0).fit(FIVE_ROWS)
    assert gm.weights_[1] == pytest.approx(0.2)
    # its weight is one observation's (1/N up to rounding), not below it
    assert {d.kind for d in gm.degeneracies_} == {"few_points", "reg_covar"}


def test_a_flat_direction_that_is_no_single_feature_is_named():
    """Covariance [[1, 1], [1, 1]] + reg_covar I: each variance is fine, but along
    (1, -1) the variance is all reg_covar."""
    model = get_covariance_model("full")
    covs = np.array([[[1.0, 1.0], [1.0, 1.0]]]) + 1e-6 * np.eye(2)
    params = GMMParams(np.array([1.0]), np.zeros((1, 2)), covs, model.precision_cholesky(covs))
    X = np.random.default_rng(0).normal(size=(50, 1)) * [1.0, 1.0]
    (finding,) = find_degeneracies(
        X, np.ones((50, 1)), params, "full", reg_covar=1e-6, feature_names=["a", "b"]
    )
    assert finding.direction
    assert finding.features == ("a", "b")
    assert finding.value == pytest.approx(1.0, rel=1e-6)  # along (1, -1): all reg_covar
    assert finding.variance == pytest.approx(0.0, abs=1e-20)  # the data lie on a = b


def test_a_map_fit_on_single_points_warns_without_suggesting_a_prior():
    with pytest.warns(DegenerateFitWarning) as record:
        GaussianMixture(5, prior="default", random_state=0).fit(THREE_POINTS)
    message = str(record[-1].message)
    assert "(about one point)" in message
    assert "prior=" not in message


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_a_feature_on_a_tiny_scale_is_reported_at_the_reg_covar_floor(cov):
    """Its variance (1e-24) is reported as reg_covar (1e-6): the warning names it."""
    x = np.random.default_rng(0).normal(size=(200, 2)) * [1.0, 1e-12]
    df = pd.DataFrame(x, columns=["length", "tiny"])
    with pytest.warns(DegenerateFitWarning) as record:
        gm = GaussianMixture(1, covariance_type=cov, random_state=0).fit(df)
    message = str(record[-1].message)
    assert "makes up 100% of the variance of 'tiny' in component 0" in message
    assert "rescaling the features" in message
    (finding,) = gm.degeneracies_
    assert finding.features == ("tiny",)
    assert finding.variance == pytest.approx(np.var(x[:, 1]), rel=1e-6)
    # rescaled, or without reg_covar, the fit is fine
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        GaussianMixture(1, covariance_type=cov, reg_covar=0.0).fit(df)
        GaussianMixture(1, covariance_type=cov).fit(df * [1.0, 1e12])


def test_effective_distinct_points_against_a_naive_loop():
    """Kish's effective size over distinct rows, masses = responsibility x weight."""
    rng = np.random.default_rng(5)
    X = np.repeat(rng.normal(size=(6, 2)), [1, 2, 3, 1, 5, 2], axis=0)
    resp = rng.dirichlet([0.3, 0.3], size=len(X))
    weight = rng.integers(1, 4, size=len(X)).astype(float)
    model = get_covariance_model("full")
    covs = np.stack([np.eye(2)] * 2)
    params = GMMParams(
        np.array([0.5, 0.5]), np.zeros((2, 2)), covs, model.precision_cholesky(covs)
    )
    found = find_degeneracies(
        X, resp, params, "full", reg_covar=0.0, sample_weight=weight, feature_names=None
    )
    expected = []
    for k in range(2):
        masses = {}
        for row, r, w in zip(map(tuple, X), resp[:, k], weight, strict=True):
            masses[row] = masses.get(row, 0.0) + r * w
        m = np.array(list(masses.values()))
        expected.append(m.sum() ** 2 / (m**2).sum())
    got = {d.component: d.value for d in found if d.kind == "few_points"}
    for k in range(2):
        if expected[k] < 3.5:
            assert got[k] == pytest.approx(expected[k], rel=1e-12)
        else:
            assert k not in got


def test_few_points_and_weights_do_not_depend_on_units():
    """The unit-free findings are the same after rescaling a column by 1e-8."""
    b = _fit(THREE_POINTS * [1.0, 1e-8], 5, random_state=0, init_params="random_from_data")
    c = _fit(THREE_POINTS, 5, random_state=0, init_params="random_from_data")
    unit_free = {"few_points", "small_weight"}
    assert {(d.kind, d.component) for d in b.degeneracies_ if d.kind in unit_free} == {
        (d.kind, d.component) for d in c.degeneracies_ if d.kind in unit_free
    }
    assert c.degeneracies_


# The standard fits of the bundled data sets (those the tests, notebooks and demo use,
# and mclust's choices): none of them may warn.
STANDARD_FITS = [
    ("faithful", 3, "tied", None),
    ("faithful", 3, "tied", "default"),
    ("faithful", 2, "full", None),
    ("iris", 2, "full", None),
    ("iris", 3, "full", None),
    ("iris", 3, "full", "default"),
    ("iris", 3, "diag", None),
    ("galaxies", 4, "full", None),
    ("galaxies", 4, "full", "default"),
    ("acidity", 2, "full", None),
    ("enzyme", 3, "full", None),
    ("diabetes", 3, "full", None),
    ("thyroid", 3, "diag", None),
    ("banknote", 2, "full", None),
    ("wreath", 14, "tied", None),
    ("trees", 2, "tied", None),
    ("precip", 2, "full", None),
]


@pytest.mark.parametrize(("name", "k", "cov", "prior"), STANDARD_FITS)
def test_standard_fits_of_the_bundled_data_do_not_warn(name, k, cov, prior):
    X = getattr(ds, f"load_{name}")().select_dtypes("number")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        gm = GaussianMixture(
            k, covariance_type=cov, prior=prior, n_init=3, tol=1e-6, max_iter=500, random_state=0
        ).fit(X)
    assert gm.degeneracies_ == ()
