"""Tests for :mod:`bayesgmm.plotting`: what was drawn, checked against independent numbers.

Ellipses are checked two ways: their (width, height, angle) against an eigen-decomposition
done here, and points on the drawn patch against the Mahalanobis contour of the marginal
covariance (which needs no convention for width, height or angle at all).
"""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.patches import Ellipse

from bayesgmm import GaussianMixture, select_model
from bayesgmm.core.covariance import COVARIANCE_TYPES
from bayesgmm.plotting import (
    plot_components,
    plot_convergence,
    plot_density_1d,
    plot_model_selection,
)
from bayesgmm.plotting._mixture import _ellipse_geometry


# -- data and fitted models (small, so the module runs in a few seconds) ---------------------
def _blobs(n_per: int, dim: int, seed: int) -> np.ndarray:
    """Three well-separated, correlated Gaussian clusters in ``dim`` dimensions."""
    rng = np.random.default_rng(seed)
    centers = np.array([np.zeros(dim), np.full(dim, 5.0), np.r_[10.0, np.zeros(dim - 1)]])
    mixing = np.eye(dim) + 0.4 * rng.standard_normal((dim, dim))
    return np.vstack([c + rng.standard_normal((n_per, dim)) @ mixing for c in centers])


@pytest.fixture(scope="module")
def X2() -> np.ndarray:
    return _blobs(40, 2, seed=0)


@pytest.fixture(scope="module")
def X5() -> np.ndarray:
    return _blobs(40, 5, seed=1)


@pytest.fixture(scope="module")
def models2(X2) -> dict[str, GaussianMixture]:
    return {
        cov: GaussianMixture(3, covariance_type=cov, random_state=0).fit(X2)
        for cov in COVARIANCE_TYPES
    }


@pytest.fixture(scope="module")
def selection(X2):
    return select_model(X2, range(1, 4), COVARIANCE_TYPES, n_init=1, random_state=0)


def _full_covariances(model: GaussianMixture) -> np.ndarray:
    """Reference expansion to (K, D, D), written out per type (independent of core)."""
    k, d = model.means_.shape
    cov = model.covariances_
    expand = {
        "full": lambda: cov,
        "tied": lambda: np.broadcast_to(cov, (k, d, d)),
        "diag": lambda: np.array([np.diag(v) for v in cov]),
        "spherical": lambda: np.array([v * np.eye(d) for v in cov]),
    }
    return expand[model.covariance_type]()


def _ellipses(ax) -> list[Ellipse]:
    return [p for p in ax.patches if isinstance(p, Ellipse)]


def _reference_geometry(cov: np.ndarray, n_std: float) -> tuple[float, float, float]:
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    major = eigenvectors[:, np.argmax(eigenvalues)]
    angle = np.degrees(np.arctan2(major[1], major[0])) % 180.0
    return (
        2 * n_std * np.sqrt(eigenvalues.max()),
        2 * n_std * np.sqrt(eigenvalues.min()),
        angle,
    )


def _assert_on_contour(patch: Ellipse, mean: np.ndarray, cov: np.ndarray, n_std: float):
    """Points of the drawn ellipse lie on (x - mu)^T Sigma^{-1} (x - mu) = n_std^2."""
    t = np.linspace(0.0, 2 * np.pi, 50)
    unit_circle = np.c_[np.cos(t), np.sin(t)]
    points = patch.get_patch_transform().transform(unit_circle)  # data coordinates
    diff = points - mean
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    np.testing.assert_allclose(maha, n_std**2, rtol=1e-8)
    np.testing.assert_allclose(patch.center, mean)


def _angle_close(a: float, b: float, atol: float = 1e-7) -> bool:
    """Angles of an ellipse axis are defined modulo 180 degrees."""
    d = (a - b) % 180.0
    return min(d, 180.0 - d) < atol


# -- the ellipse geometry helper ---------------------------------------------------------
def test_ellipse_geometry_diagonal():
    width, height, angle = _ellipse_geometry(np.diag([4.0, 1.0]), 1.0)
    assert (width, height) == pytest.approx((4.0, 2.0))
    assert _angle_close(angle, 0.0)
    width, height, angle = _ellipse_geometry(np.diag([1.0, 4.0]), 2.0)
    assert (width, height) == pytest.approx((8.0, 4.0))
    assert _angle_close(angle, 90.0)


@pytest.mark.parametrize("theta", [10.0, 30.0, 75.0, 120.0, 165.0])
def test_ellipse_geometry_rotated(theta):
    r = np.radians(theta)
    rotation = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    cov = rotation @ np.diag([9.0, 1.0]) @ rotation.T
    width, height, angle = _ellipse_geometry(cov, 1.5)
    assert (width, height) == pytest.approx((2 * 1.5 * 3.0, 2 * 1.5 * 1.0))
    assert _angle_close(angle, theta)
    ref = _reference_geometry(cov, 1.5)
    assert (width, height) == pytest.approx(ref[:2])
    assert _angle_close(angle, ref[2])
    assert 0.0 <= angle < 180.0


def test_ellipse_geometry_singular_is_flat():
    width, height, _ = _ellipse_geometry(np.array([[1.0, 1.0], [1.0, 1.0]]), 1.0)
    assert width == pytest.approx(2 * np.sqrt(2.0))
    assert height == pytest.approx(0.0, abs=1e-7)


# -- plot_components -----------------------------------------------------------------------
@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_plot_components_draws_data_ellipses_and_means(models2, X2, cov):
    model = models2[cov]
    n_std = (1.0, 2.0, 3.0)
    ax = plot_components(model, X2, n_std=n_std)

    scatter, means = ax.collections[0], ax.collections[1]
    np.testing.assert_array_equal(scatter.get_offsets(), X2)
    np.testing.assert_allclose(means.get_offsets(), model.means_)

    ellipses = _ellipses(ax)
    assert len(ellipses) == model.n_components * len(n_std) == len(ax.patches)
    covariances = _full_covariances(model)
    for idx, patch in enumerate(ellipses):
        k, r = divmod(idx, len(n_std))
        radius = sorted(n_std)[r]
        _assert_on_contour(patch, model.means_[k], covariances[k], radius)
        ref = _reference_geometry(covariances[k], radius)
        assert (patch.width, patch.height) == pytest.approx(ref[:2])
        if not np.isclose(ref[0], ref[1]):  # a circle has no defined angle
            assert _angle_close(patch.angle, ref[2])


def test_plot_components_colours_are_consistent(models2, X2):
    model = models2["full"]
    n_std = (1.0, 2.0)
    ax = plot_components(model, X2, n_std=n_std)
    labels = model.predict(X2)
    point_colors = ax.collections[0].get_facecolors()[:, :3]
    ellipses = _ellipses(ax)
    for k in range(model.n_components):
        ellipse_color = np.array(to_rgba(ellipses[k * len(n_std)].get_edgecolor()))[:3]
        np.testing.assert_allclose(
            point_colors[labels == k], ellipse_color[None].repeat((labels == k).sum(), axis=0)
        )
    distinct = {tuple(c) for c in np.round(point_colors, 6)}
    assert len(distinct) == len(np.unique(labels))


def test_plot_components_uses_the_chosen_marginal_of_5d_data(X5):
    model = GaussianMixture(3, covariance_type="full", random_state=0).fit(X5)
    ax = plot_components(model, X5, features=(2, 4), n_std=1.0)
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), X5[:, [2, 4]])
    np.testing.assert_allclose(ax.collections[1].get_offsets(), model.means_[:, [2, 4]])
    ellipses = _ellipses(ax)
    assert len(ellipses) == 3
    for k, patch in enumerate(ellipses):
        sub = model.covariances_[k][np.ix_([2, 4], [2, 4])]
        ref = _reference_geometry(sub, 1.0)
        assert (patch.width, patch.height) == pytest.approx(ref[:2])
        assert _angle_close(patch.angle, ref[2])
        _assert_on_contour(patch, model.means_[k, [2, 4]], sub, 1.0)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x2", "x4")


def test_plot_components_axis_labels(models2, X2):
    model = models2["tied"]
    df = pd.DataFrame(X2, columns=["length", "width"])
    ax = plot_components(model, df)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("length", "width")
    ax = plot_components(model, X2, features=(1, 0), feature_names=["a", "b"])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("b", "a")
    ax = plot_components(model, X2)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x0", "x1")


def test_plot_components_model_fitted_on_dataframe():
    df = pd.DataFrame(_blobs(30, 2, seed=3), columns=["u", "v"])
    model = GaussianMixture(2, random_state=0).fit(df)
    ax = plot_components(model, df.to_numpy())  # names come from the model
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("u", "v")
    assert ax.collections[0].get_offsets().shape == (len(df), 2)


def test_plot_components_uses_given_axes(models2, X2):
    _, ax = plt.subplots()
    n_figures = len(plt.get_fignums())
    assert plot_components(models2["diag"], X2, ax=ax) is ax
    assert len(plt.get_fignums()) == n_figures


def test_plot_components_rejects_1d_and_bad_features(models2, X2):
    x = X2[:, :1]
    model_1d = GaussianMixture(2, random_state=0).fit(x)
    with pytest.raises(ValueError, match="plot_density_1d"):
        plot_components(model_1d, x)
    model = models2["full"]
    with pytest.raises(ValueError, match="distinct column indices"):
        plot_components(model, X2, features=(0, 0))
    with pytest.raises(ValueError, match="distinct column indices"):
        plot_components(model, X2, features=(0, 2))
    with pytest.raises(ValueError, match="n_std"):
        plot_components(model, X2, n_std=(1.0, -1.0))
    with pytest.raises(ValueError, match="shape"):
        plot_components(model, X2[:, :1])


# -- plot_model_selection --------------------------------------------------------------------
def test_plot_model_selection_lines_match_the_table(selection):
    ax = plot_model_selection(selection)
    table = selection.table
    assert [line.get_label() for line in ax.lines] == [
        "full (VVV)",
        "tied (EEE)",
        "diag (VVI)",
        "spherical (VII)",
    ]
    for line, cov in zip(ax.lines, COVARIANCE_TYPES, strict=True):
        rows = table[table["covariance_type"] == cov].sort_values("n_components")
        np.testing.assert_array_equal(line.get_xdata(), rows["n_components"])
        np.testing.assert_array_equal(line.get_ydata(), rows["bic"])
        assert line.get_marker() not in (None, "None", "")
    assert "lower is better" in ax.get_ylabel()

    best = selection.best_estimator
    best_bic = table["bic"].min()
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[best.n_components, best_bic]])
    (annotation,) = ax.texts
    assert annotation.get_text().startswith("chosen")
    assert f"K={best.n_components}" in annotation.get_text()
    assert best.covariance_type in annotation.get_text()
    np.testing.assert_allclose(annotation.xy, (best.n_components, best_bic))


def test_plot_model_selection_nan_is_a_gap_and_other_criteria(selection):
    table = selection.table.copy()
    failed = (table["covariance_type"] == "spherical") & (table["n_components"] == 2)
    table.loc[failed, ["bic", "aic", "icl"]] = np.nan
    broken = dataclasses.replace(selection, table=table)
    ax = plot_model_selection(broken)
    assert len(ax.lines) == 4
    y = np.asarray(ax.lines[3].get_ydata(), dtype=float)
    np.testing.assert_array_equal(np.isnan(y), [False, True, False])

    ax = plot_model_selection(selection, criterion="aic")
    rows = table[table["covariance_type"] == "tied"].sort_values("n_components")
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), rows["aic"])
    best = table.loc[table["aic"].idxmin()]
    np.testing.assert_allclose(
        ax.collections[0].get_offsets(), [[best["n_components"], best["aic"]]]
    )
    assert ax.get_ylabel().startswith("AIC")
    assert ax.texts[0].get_text().startswith("lowest AIC")  # BIC chose the model
    with pytest.raises(ValueError, match="criterion"):
        plot_model_selection(selection, criterion="likelihood")


# -- plot_convergence ------------------------------------------------------------------------
def test_plot_convergence_plots_lower_bounds(models2):
    model = models2["full"]
    ax = plot_convergence(model)
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_ydata(), model.lower_bounds_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, model.n_iter_ + 1))
    assert "iteration" in ax.get_xlabel()
    assert ax.get_ylabel() == "mean log-likelihood per sample"


def test_plot_convergence_of_a_map_fit(X2):
    model = GaussianMixture(2, prior="default", random_state=0).fit(X2)
    ax = plot_convergence(model)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), model.lower_bounds_)
    assert ax.get_ylabel().startswith("MAP objective")


# -- plot_density_1d -------------------------------------------------------------------------
@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_plot_density_1d(cov):
    rng = np.random.default_rng(4)
    x = np.r_[rng.normal(-2.0, 0.7, 80), rng.normal(3.0, 1.5, 120)][:, None]
    model = GaussianMixture(2, covariance_type=cov, random_state=0).fit(x)
    ax = plot_density_1d(model, x)

    assert len(ax.lines) == model.n_components + 1
    grid = np.asarray(ax.lines[0].get_xdata())
    mixture = np.asarray(ax.lines[0].get_ydata())
    assert grid.min() <= x.min()
    assert grid.max() >= x.max()
    np.testing.assert_allclose(mixture, np.exp(model.score_samples(grid[:, None])))
    assert np.trapezoid(mixture, grid) == pytest.approx(1.0, abs=1e-3)
    components = np.array([line.get_ydata() for line in ax.lines[1:]])
    np.testing.assert_allclose(components.sum(axis=0), mixture, rtol=1e-10)
    for k in range(model.n_components):  # each line is the weighted component
        assert np.trapezoid(components[k], grid) == pytest.approx(model.weights_[k], abs=1e-3)

    heights = np.array([p.get_height() for p in ax.patches])
    widths = np.array([p.get_width() for p in ax.patches])
    assert heights @ widths == pytest.approx(1.0)  # density=True histogram


def test_plot_density_1d_dataframe_1d_array_and_errors(models2, X2):
    df = pd.DataFrame({"velocity": np.random.default_rng(5).normal(size=60)})
    model = GaussianMixture(1, random_state=0).fit(df)
    _, ax = plt.subplots()
    assert plot_density_1d(model, df, bins=10, ax=ax) is ax
    assert ax.get_xlabel() == "velocity"
    assert len(ax.patches) == 10
    ax = plot_density_1d(model, df["velocity"].to_numpy())  # (N,) is accepted
    assert len(ax.lines) == 2
    with pytest.raises(ValueError, match="plot_components"):
        plot_density_1d(models2["full"], X2)


def test_plot_components_with_missing_values_shows_every_row(X2):
    from bayesgmm.plotting import plot_membership

    Xm = np.array(X2, dtype=float, copy=True)
    Xm[:5, 0] = np.nan  # 5 rows: only y observed -> ticks on the y axis
    Xm[5:8, 1] = np.nan  # 3 rows: only x observed -> ticks on the x axis
    gm = GaussianMixture(2, random_state=0).fit(Xm)
    ax = plot_components(gm, Xm)
    offsets = [c.get_offsets() for c in ax.collections]
    sizes = sorted(len(o) for o in offsets)
    assert len(Xm) - 8 in sizes  # the complete rows as points
    assert 5 in sizes
    assert 3 in sizes
    # The ticks sit on the axes: x-axis ticks carry the observed x values.
    x_ticks = next(o for o in offsets if len(o) == 3)
    np.testing.assert_allclose(np.sort(x_ticks[:, 0]), np.sort(Xm[5:8, 0]))
    notes = [t.get_text() for t in ax.texts]
    assert any("8 row(s) missing one coordinate" in t for t in notes), notes
    ax2 = plot_membership(gm, Xm)
    assert any("missing one coordinate" in t.get_text() for t in ax2.texts)
