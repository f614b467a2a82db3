"""Tests for the uncertainty plots: what was drawn, checked against independent numbers.

One real NUTS fit (2-D, 2 components, a few hundred draws) runs once per module. Every
other posterior is a stand-in: a :class:`PosteriorGaussianMixture` whose fitted
attributes are set directly, its "draws" a MAP fit plus small noise, so its own
``predict_proba``, ``membership_interval`` and ``co_clustering`` run unchanged.
"""

from __future__ import annotations

import dataclasses
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from arviz_plots import PlotCollection
from matplotlib.colors import to_rgba
from matplotlib.patches import Ellipse
from scipy.stats import gaussian_kde

from bayesgmm import GaussianMixture, default_ci_prob, select_model
from bayesgmm.bayes import PosteriorGaussianMixture
from bayesgmm.core.covariance import COVARIANCE_TYPES, get_covariance_model
from bayesgmm.datasets import make_mixture
from bayesgmm.plotting import (
    plot_co_clustering,
    plot_density_1d,
    plot_estimates,
    plot_membership,
    plot_membership_intervals,
    plot_model_selection,
    plot_posterior_ellipses,
    plot_prior_posterior,
    plot_sampler_diagnostics,
)
from bayesgmm.plotting._co_clustering import _co_clustering_order


# -- data, one real posterior and light stand-ins ----------------------------------------
def _data_1d() -> np.ndarray:
    rng = np.random.default_rng(4)
    return np.r_[rng.normal(-2.0, 0.7, 60), rng.normal(1.0, 1.5, 90)][:, None]


X1 = _data_1d()
X2 = make_mixture(120, n_components=2, n_features=2, separation=3, random_state=0).X
X5 = make_mixture(150, n_components=3, n_features=5, random_state=3).X


@pytest.fixture(scope="module")
def real_post() -> PosteriorGaussianMixture:
    post = PosteriorGaussianMixture(2, draws=100, tune=100, chains=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: ESS warnings are expected
        return post.fit(X2)


@pytest.fixture(scope="module")
def mle2() -> GaussianMixture:
    return GaussianMixture(2, random_state=1).fit(X2)


def _full(covariances: np.ndarray, covariance_type: str, k: int, d: int) -> np.ndarray:
    """Reference expansion to (K, D, D), written out per type (independent of core)."""
    expand = {
        "full": lambda: covariances,
        "tied": lambda: np.broadcast_to(covariances, (k, d, d)),
        "diag": lambda: np.array([np.diag(v) for v in covariances]),
        "spherical": lambda: np.array([v * np.eye(d) for v in covariances]),
    }
    return np.asarray(expand[covariance_type]())


def _stand_in(X, n_components, covariance_type, *, draws=30, scale=0.05, seed=0):
    """A PosteriorGaussianMixture with 2 chains of 'draws' = MAP fit + small noise."""
    map_fit = GaussianMixture(
        n_components, covariance_type=covariance_type, prior="default", random_state=0
    ).fit(X)
    rng = np.random.default_rng(seed)
    k, d = map_fit.means_.shape
    cov_model = get_covariance_model(covariance_type)
    full = _full(map_fit.covariances_, covariance_type, k, d)
    sd = np.sqrt(np.diagonal(full, axis1=1, axis2=2))
    shape = (2, draws)
    factors = np.exp(scale * rng.standard_normal((*shape, k)))
    covariances = np.array(
        [[cov_model.from_full(full * f[:, None, None]) for f in chain] for chain in factors]
    )
    names = [f"x{j}" for j in range(d)]
    posterior = xr.Dataset(
        {
            "weights": (
                ("chain", "draw", "component"),
                rng.dirichlet(500 * map_fit.weights_, shape),
            ),
            "means": (
                ("chain", "draw", "component", "feature"),
                map_fit.means_ + scale * sd * rng.standard_normal((*shape, k, d)),
            ),
            "covariances": (("chain", "draw", *cov_model.dims), covariances),
        },
        coords={
            "chain": [0, 1],
            "draw": np.arange(draws),
            "component": np.arange(k),
            "feature": names,
            "feature_bis": names,
        },
    )
    post = PosteriorGaussianMixture(n_components, covariance_type=covariance_type)
    post.idata_ = xr.DataTree.from_dict({"posterior": posterior, "posterior_raw": posterior})
    post.map_ = map_fit
    post.prior_ = map_fit.prior_
    post.n_features_in_ = d
    mean = posterior.mean(("chain", "draw"))
    post.weights_ = mean["weights"].values
    post.means_ = mean["means"].values
    post.covariances_ = mean["covariances"].values
    return post


@pytest.fixture(scope="module")
def stand_ins() -> dict:
    """Stand-ins for every covariance type in 2-D (K=3), and 1-D and 5-D ones."""
    posts = {(2, ct): _stand_in(X2, 3, ct, scale=0.1) for ct in COVARIANCE_TYPES}
    posts[(1, "spherical")] = _stand_in(X1, 2, "spherical", scale=0.15)
    posts[(5, "full")] = _stand_in(X5, 3, "full")
    posts[(5, "diag")] = _stand_in(X5, 3, "diag")
    return posts


def _draws(post, name: str) -> np.ndarray:
    """(chain, draw) merged, chain-major: the reference order of the thinned draws."""
    values = post.idata_["posterior"][name].values
    return values.reshape(-1, *values.shape[2:])


def _reference_geometry(cov: np.ndarray, n_std: float) -> tuple[float, float, float]:
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    major = eigenvectors[:, np.argmax(eigenvalues)]
    angle = np.degrees(np.arctan2(major[1], major[0])) % 180.0
    return (
        2 * n_std * np.sqrt(eigenvalues.max()),
        2 * n_std * np.sqrt(eigenvalues.min()),
        angle,
    )


def _assert_ellipse(patch: Ellipse, mean: np.ndarray, cov: np.ndarray, n_std: float) -> None:
    """Points of the drawn ellipse lie on (x - mu)^T Sigma^{-1} (x - mu) = n_std^2, and
    its width/height are the reference eigen-geometry."""
    t = np.linspace(0.0, 2 * np.pi, 40)
    points = patch.get_patch_transform().transform(np.c_[np.cos(t), np.sin(t)])
    diff = points - mean
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    np.testing.assert_allclose(maha, n_std**2, rtol=1e-8)
    np.testing.assert_allclose(patch.center, mean)
    width, height, _ = _reference_geometry(cov, n_std)
    assert (patch.width, patch.height) == pytest.approx((width, height))


def _ellipses(ax) -> list[Ellipse]:
    return [p for p in ax.patches if isinstance(p, Ellipse)]


def _rgb(color) -> np.ndarray:
    return np.array(to_rgba(color))[:3]


# -- 1. posterior ellipses ---------------------------------------------------------------
def test_posterior_ellipses_of_a_real_fit(real_post, mle2):
    n_draws, n_std = 25, 2.0
    ax = plot_posterior_ellipses(real_post, X2, n_draws=n_draws, n_std=n_std, mle=mle2)
    k = real_post.n_components
    ellipses = _ellipses(ax)
    assert len(ellipses) == k * n_draws + k + k

    means, covs = _draws(real_post, "means"), _draws(real_post, "covariances")
    picked = np.linspace(0, means.shape[0] - 1, n_draws).round().astype(int)
    for comp in range(k):
        for s in (0, n_draws // 2, n_draws - 1):  # component-major order
            patch = ellipses[comp * n_draws + s]
            _assert_ellipse(patch, means[picked[s], comp], covs[picked[s], comp], n_std)
    map_patches = ellipses[k * n_draws : k * n_draws + k]
    for comp, patch in enumerate(map_patches):
        _assert_ellipse(
            patch, real_post.map_.means_[comp], real_post.map_.covariances_[comp], n_std
        )
        drawn_colour = _rgb(ellipses[comp * n_draws].get_edgecolor())
        np.testing.assert_allclose(_rgb(patch.get_edgecolor()), drawn_colour)
        assert patch.get_linewidth() > ellipses[comp * n_draws].get_linewidth()
    for comp, patch in enumerate(ellipses[-k:]):
        _assert_ellipse(patch, mle2.means_[comp], mle2.covariances_[comp], n_std)
        assert patch.get_linestyle() == "--"
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), X2)
    np.testing.assert_allclose(ax.collections[1].get_offsets(), real_post.map_.means_)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    weights = real_post.map_.weights_
    assert labels == [
        f"component 0 (MAP weight {weights[0]:.2f})",
        f"component 1 (MAP weight {weights[1]:.2f})",
        f"{n_draws} posterior draws",
        "MAP",
        "MLE",
    ]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_posterior_ellipses_every_covariance_type(stand_ins, covariance_type):
    post = stand_ins[(2, covariance_type)]
    ax = plot_posterior_ellipses(post, X2, n_draws=10, n_std=1.5)
    k, d = post.map_.means_.shape
    ellipses = _ellipses(ax)
    assert len(ellipses) == k * 10 + k  # no MLE given
    n_total = 2 * 30
    picked = np.linspace(0, n_total - 1, 10).round().astype(int)
    means = _draws(post, "means")
    covs = _draws(post, "covariances")
    for comp in range(k):
        s = 3
        full = _full(covs[picked[s]], covariance_type, k, d)
        _assert_ellipse(ellipses[comp * 10 + s], means[picked[s], comp], full[comp], 1.5)
    map_full = _full(post.map_.covariances_, covariance_type, k, d)
    for comp, patch in enumerate(ellipses[k * 10 :]):
        _assert_ellipse(patch, post.map_.means_[comp], map_full[comp], 1.5)


def test_posterior_ellipses_5d_marginal_and_all_draws(stand_ins):
    post = stand_ins[(5, "full")]
    ax = plot_posterior_ellipses(post, X5, features=(1, 3), n_draws=500)
    k = 3
    ellipses = _ellipses(ax)
    assert len(ellipses) == k * 60 + k  # only 60 draws exist: all of them
    idx = np.ix_([1, 3], [1, 3])
    covs, means = _draws(post, "covariances"), _draws(post, "means")
    _assert_ellipse(ellipses[61], means[1, 1, [1, 3]], covs[1, 1][idx], 2.0)
    for comp, patch in enumerate(ellipses[-k:]):
        _assert_ellipse(
            patch, post.map_.means_[comp, [1, 3]], post.map_.covariances_[comp][idx], 2.0
        )
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), X5[:, [1, 3]])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x3")


def test_posterior_ellipses_errors(stand_ins):
    with pytest.raises(ValueError, match="1-D"):
        plot_posterior_ellipses(stand_ins[(1, "spherical")], X1)
    post = stand_ins[(2, "full")]
    with pytest.raises(ValueError, match="distinct column indices"):
        plot_posterior_ellipses(post, X2, features=(0, 0))
    with pytest.raises(ValueError, match="n_draws"):
        plot_posterior_ellipses(post, X2, n_draws=0)
    with pytest.raises(ValueError, match="fitted PosteriorGaussianMixture"):
        plot_posterior_ellipses(PosteriorGaussianMixture(2), X2)
    with pytest.raises(ValueError, match="not fitted"):
        plot_membership(GaussianMixture(2), X2)
    with pytest.raises(ValueError, match="mle has 5 features"):
        plot_posterior_ellipses(post, X2, mle=GaussianMixture(2, random_state=0).fit(X5))
    _, ax = plt.subplots()
    assert plot_posterior_ellipses(post, X2, n_draws=2, ax=ax) is ax


# -- 2. KDE in the 1-D density plot ------------------------------------------------------
def test_density_1d_kde_reference_curve():
    model = GaussianMixture(2, random_state=0).fit(X1)
    ax = plot_density_1d(model, X1, kde=True)
    assert len(ax.lines) == model.n_components + 2
    kde_line = ax.lines[-1]
    assert "KDE" in kde_line.get_label()
    grid = np.asarray(kde_line.get_xdata())
    np.testing.assert_array_equal(grid, ax.lines[0].get_xdata())
    np.testing.assert_allclose(kde_line.get_ydata(), gaussian_kde(X1[:, 0])(grid))
    assert "KDE (Scott bandwidth)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(plot_density_1d(model, X1).lines) == model.n_components + 1  # default: no KDE


# -- 3. memberships ----------------------------------------------------------------------
def _check_membership_scatter(ax, proba, points):
    certainty = proba.max(axis=1)
    order = np.argsort(-certainty, kind="stable")
    scatter = ax.collections[0]
    np.testing.assert_allclose(scatter.get_array(), certainty[order])
    np.testing.assert_allclose(scatter.get_offsets(), points[order])
    assert scatter.norm.vmin == pytest.approx(1.0 / proba.shape[1])
    assert scatter.norm.vmax == pytest.approx(1.0)
    rgba = scatter.cmap(scatter.norm(certainty[order]))
    scatter.update_scalarmappable()  # colours are mapped at draw time
    np.testing.assert_allclose(scatter.get_facecolors(), rgba)  # colour = certainty
    assert len(ax.get_figure().axes) == 2  # the colour bar


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_membership_of_a_point_estimate(covariance_type):
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X2)
    ax = plot_membership(model, X2)
    _check_membership_scatter(ax, model.predict_proba(X2), X2)
    ellipses = _ellipses(ax)
    assert len(ellipses) == 3
    full = _full(model.covariances_, covariance_type, 3, 2)
    for k, patch in enumerate(ellipses):
        _assert_ellipse(patch, model.means_[k], full[k], 2.0)
    assert "point estimate" in ax.get_title()


def test_membership_of_posteriors_1d_2d_5d(stand_ins, real_post):
    ax = plot_membership(real_post, X2)
    _check_membership_scatter(ax, real_post.predict_proba(X2), X2)
    assert "posterior" in ax.get_title()

    post5 = stand_ins[(5, "diag")]
    ax = plot_membership(post5, X5, features=(0, 2))
    _check_membership_scatter(ax, post5.predict_proba(X5), X5[:, [0, 2]])

    post1 = stand_ins[(1, "spherical")]
    ax = plot_membership(post1, X1)
    proba = post1.predict_proba(X1)
    _check_membership_scatter(ax, proba, np.c_[X1[:, 0], proba.max(axis=1)])
    assert ax.get_ylabel() == "posterior mean membership probability"
    assert not _ellipses(ax)
    assert proba.max(axis=1).min() < 0.8  # the 1-D clusters overlap: some uncertainty


def _errorbar_data(ax):
    """(x, y, lower, upper, colour) of every point of the errorbar containers."""
    rows = []
    for container in ax.containers:
        line = container.lines[0]
        segments = container.lines[2][0].get_segments()
        for x, y, seg in zip(line.get_xdata(), line.get_ydata(), segments, strict=True):
            assert seg[0][0] == seg[1][0] == x
            rows.append((x, y, seg[0][1], seg[1][1], tuple(_rgb(line.get_color()))))
    rows.sort()
    return rows


def test_membership_intervals_equal_membership_interval(stand_ins):
    post = stand_ins[(1, "spherical")]
    max_points, prob = 40, 0.9
    ax = plot_membership_intervals(post, X1, prob=prob, max_points=max_points)
    proba = post.predict_proba(X1)
    chosen = proba.argmax(axis=1)
    value = proba.max(axis=1)
    shown = np.argsort(value, kind="stable")[:max_points]  # least certain, already sorted
    intervals = post.membership_interval(X1[shown], prob)
    lower = intervals[np.arange(max_points), chosen[shown], 0]
    upper = intervals[np.arange(max_points), chosen[shown], 1]
    rows = _errorbar_data(ax)
    assert len(rows) == max_points
    x, y, lo, hi, colours = zip(*rows, strict=True)
    np.testing.assert_array_equal(x, np.arange(max_points))
    np.testing.assert_allclose(y, value[shown])
    tol = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(lo, np.minimum(lower, value[shown]), **tol)  # clipped at the mean
    np.testing.assert_allclose(hi, np.maximum(upper, value[shown]), **tol)
    assert np.mean(np.isclose(lo, lower)) > 0.9  # clipping is the exception
    colours_by_component = {
        tuple(_rgb(c.lines[0].get_color())): c.get_label() for c in ax.containers
    }
    for colour, k in zip(colours, chosen[shown], strict=True):
        assert colours_by_component[colour] == f"component {k}"
    assert "least certain" in ax.get_xlabel()


def test_membership_intervals_of_one_component(real_post, stand_ins):
    ax = plot_membership_intervals(real_post, X2, component=1, max_points=500)
    proba = real_post.predict_proba(X2)[:, 1]
    order = np.argsort(proba, kind="stable")
    (container,) = ax.containers
    np.testing.assert_allclose(container.lines[0].get_ydata(), proba[order])
    # the plot's default level is the package's one level (bayesgmm.default_ci_prob)
    intervals = real_post.membership_interval(X2, default_ci_prob())[order, 1]
    segments = np.array(container.lines[2][0].get_segments())
    lower, upper = (
        np.minimum(intervals[:, 0], proba[order]),
        np.maximum(intervals[:, 1], proba[order]),
    )
    np.testing.assert_allclose(segments[:, 0, 1], lower, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(segments[:, 1, 1], upper, rtol=1e-10, atol=1e-12)
    assert ax.get_ylabel() == "P(point in component 1)"

    post5 = stand_ins[(5, "full")]
    ax = plot_membership_intervals(post5, X5, max_points=30)
    assert len(_errorbar_data(ax)) == 30
    with pytest.raises(ValueError, match="component"):
        plot_membership_intervals(post5, X5, component=3)
    with pytest.raises(ValueError, match="prob"):
        plot_membership_intervals(post5, X5, prob=1.0)


# -- 4. forest plot of estimates ---------------------------------------------------------
def _comparison_table(post, mle) -> pd.DataFrame:
    """A table in the comparison-table contract, built from a (stand-in) posterior."""
    rows = []
    posterior = post.idata_["posterior"].to_dataset()
    for name in ("weights", "means", "covariances"):
        da = posterior[name]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        draws = da.values.reshape(-1, *da.shape[2:])
        for idx in np.ndindex(*da.shape[2:]):
            x = draws[(slice(None), *idx)]
            coords = dict(zip(dims, idx, strict=True))
            estimate = float(np.asarray(getattr(mle, f"{name}_"))[idx])
            rows.append(
                {
                    "parameter": name,
                    "component": coords.get("component", np.nan),
                    "feature": coords.get("feature", np.nan),
                    "feature_bis": coords.get("feature_bis", np.nan),
                    "label": f"{name}[{', '.join(str(i) for i in idx)}]",
                    "mle": estimate,
                    "mle_lower": estimate - 2 * x.std(),
                    "mle_upper": estimate + 2 * x.std(),
                    "map": float(np.asarray(getattr(post.map_, f"{name}_"))[idx]),
                    "post_mean": x.mean(),
                    "post_sd": x.std(),
                    "ci_lower": np.quantile(x, 0.03),
                    "ci_upper": np.quantile(x, 0.97),
                    "r_hat": 1.0,
                    "ess_bulk": 400.0,
                    "ess_tail": 400.0,
                    "mcse_mean": 0.01,
                    "mle_in_ci": True,
                    "map_in_ci": True,
                    "shrinkage_sd": 0.0,
                }
            )
    table = pd.DataFrame(rows)
    table.loc[1, "r_hat"] = 1.05
    table.loc[table["parameter"] == "covariances", ["mle_lower", "mle_upper"]] = np.nan
    return table


def _line(ax, label):
    (line,) = [line for line in ax.lines if line.get_label() == label]
    return line


def _check_forest(ax, rows: pd.DataFrame):
    assert [t.get_text() for t in ax.get_yticklabels()] == list(rows["label"])
    np.testing.assert_allclose(ax.get_yticks(), np.arange(len(rows)))
    for label, column in (("posterior mean", "post_mean"), ("MLE", "mle"), ("MAP", "map")):
        np.testing.assert_allclose(_line(ax, label).get_xdata(), rows[column])
    ci = np.array(ax.collections[0].get_segments())  # credible intervals
    np.testing.assert_allclose(ci[:, 0, 0], rows["ci_lower"])
    np.testing.assert_allclose(ci[:, 1, 0], rows["ci_upper"])
    np.testing.assert_allclose(ci[:, 0, 1], np.arange(len(rows)))
    finite = np.isfinite(rows["mle_lower"].to_numpy())
    if finite.any():
        boot = np.array(ax.collections[1].get_segments())
        np.testing.assert_allclose(boot[:, 0, 0], rows["mle_lower"][finite])
        np.testing.assert_allclose(boot[:, 1, 0], rows["mle_upper"][finite])
    else:
        assert len(ax.collections) == 1


@pytest.mark.parametrize(("dim", "covariance_type"), [(2, "diag"), (5, "full"), (1, "spherical")])
def test_estimates_forest_plot(stand_ins, dim, covariance_type):
    post = stand_ins[(dim, covariance_type)]
    X = {1: X1, 2: X2, 5: X5}[dim]
    mle = GaussianMixture(post.n_components, covariance_type=covariance_type, random_state=0)
    table = _comparison_table(post, mle.fit(X))
    axes = plot_estimates(table)
    assert len(axes) == 3
    for ax, name in zip(axes, ["weights", "means", "covariances"], strict=True):
        assert ax.get_title(loc="left") == name
        _check_forest(ax, table[table["parameter"] == name])
    red = [t.get_text() for t in axes[0].get_yticklabels() if _rgb(t.get_color())[0] > 0.8]
    assert red == [table.loc[1, "label"]]  # r_hat 1.05 is flagged
    legend = axes[0].get_figure().legends[0]
    assert {t.get_text() for t in legend.get_texts()} >= {"posterior mean", "MLE", "MAP"}


def test_estimates_one_group_and_one_axes(stand_ins):
    post = stand_ins[(2, "tied")]
    table = _comparison_table(post, GaussianMixture(3, covariance_type="tied").fit(X2))
    ax = plot_estimates(table, parameters=["means"])
    _check_forest(ax, table[table["parameter"] == "means"])
    _, ax = plt.subplots()
    assert plot_estimates(table, parameters=["weights", "means"], ax=ax) is ax
    rows = table[table["parameter"].isin(["weights", "means"])]
    _check_forest(ax, rows)
    (separator,) = [line for line in ax.lines if line.get_label().startswith("_")]
    assert separator.get_ydata()[0] == pytest.approx(3 - 0.5)
    _, pair = plt.subplots(2, 1)
    assert plot_estimates(table, parameters=["covariances", "weights"], ax=pair) == list(pair)
    _check_forest(pair[0], table[table["parameter"] == "covariances"])
    with pytest.raises(ValueError, match="one Axes per parameter group"):
        plot_estimates(table, ax=pair)
    with pytest.raises(ValueError, match="parameters"):
        plot_estimates(table, parameters=["sigma"])
    with pytest.raises(ValueError, match="lacks"):
        plot_estimates(table.drop(columns="ci_lower"))


# -- 5. prior vs posterior ---------------------------------------------------------------
def test_prior_posterior_of_a_mean(real_post, mle2):
    ax = plot_prior_posterior(real_post, parameter="means", index=(0, 1), mle=mle2)
    draws = _draws(real_post, "means")[:, 0, 1]
    posterior_line, prior_line = ax.lines[0], ax.lines[1]
    grid = np.asarray(posterior_line.get_xdata())
    np.testing.assert_allclose(posterior_line.get_ydata(), gaussian_kde(draws)(grid))
    np.testing.assert_array_equal(prior_line.get_xdata(), grid)
    assert prior_line.get_label().startswith("prior")
    prior_y = np.asarray(prior_line.get_ydata())
    assert np.all(np.isfinite(prior_y))
    assert prior_y.max() > 0
    assert prior_y.max() < 0.2 * np.max(posterior_line.get_ydata())  # a vague prior
    (map_line,) = [line for line in ax.lines if line.get_label().startswith("MAP")]
    np.testing.assert_allclose(map_line.get_xdata(), real_post.map_.means_[0, 1])
    (mle_line,) = [line for line in ax.lines if line.get_label().startswith("MLE")]
    nearest = np.argmin(np.linalg.norm(mle2.means_ - real_post.map_.means_[0], axis=1))
    np.testing.assert_allclose(mle_line.get_xdata(), mle2.means_[nearest, 1])
    assert ax.get_xlabel() == "means[0, x1]"


def test_prior_posterior_weight_prior_is_uniform(real_post):
    # default prior: weights ~ Dirichlet(1, 1), so weights[0] ~ Beta(1, 1) = U(0, 1)
    ax = plot_prior_posterior(real_post, parameter="weights", index=0, show="both")
    grid = np.asarray(ax.lines[1].get_xdata())
    assert grid.min() >= 0.0
    assert grid.max() <= 1.0
    middle = (grid > 0.25) & (grid < 0.75)
    np.testing.assert_allclose(np.asarray(ax.lines[1].get_ydata())[middle], 1.0, atol=0.2)


@pytest.mark.parametrize(
    ("covariance_type", "index"),
    [("full", (1, 0, 1)), ("tied", (1, 1)), ("diag", (2, 0)), ("spherical", 1)],
)
def test_prior_posterior_of_covariances(stand_ins, covariance_type, index):
    post = stand_ins[(2, covariance_type)]
    ax = plot_prior_posterior(post, parameter="covariances", index=index, n_prior_draws=300)
    element = (slice(None), *np.atleast_1d(index))
    draws = _draws(post, "covariances")[element]
    grid = np.asarray(ax.lines[0].get_xdata())
    np.testing.assert_allclose(ax.lines[0].get_ydata(), gaussian_kde(draws)(grid))
    assert ax.lines[1].get_label().startswith("prior (KDE")
    assert len(ax.lines[1].get_ydata()) == grid.size
    (map_line,) = [line for line in ax.lines if line.get_label().startswith("MAP")]
    expected = np.asarray(post.map_.covariances_)[index]
    np.testing.assert_allclose(map_line.get_xdata(), expected)
    is_variance = covariance_type != "full"  # (1, 0, 1) is a covariance, the rest variances
    assert (grid.min() >= 0.0) or not is_variance


def test_prior_posterior_1d_and_errors(stand_ins):
    post = stand_ins[(1, "spherical")]
    ax = plot_prior_posterior(post, parameter="means", index=(1, 0), n_prior_draws=200)
    assert len([line for line in ax.lines if line.get_label().startswith("prior")]) == 1
    with pytest.raises(ValueError, match="index"):
        plot_prior_posterior(post, parameter="means", index=(0,))
    with pytest.raises(ValueError, match="parameter"):
        plot_prior_posterior(post, parameter="sigma")
    with pytest.raises(ValueError, match="covariance type"):
        plot_prior_posterior(post, mle=GaussianMixture(2, covariance_type="diag").fit(X1))


# -- 6. sampler diagnostics --------------------------------------------------------------
def test_sampler_diagnostics_trace_shows_the_draws(real_post):
    pc = plot_sampler_diagnostics(real_post)
    assert isinstance(pc, PlotCollection)
    trace = pc.viz["trace"]["weights"]
    weights = real_post.idata_["posterior"]["weights"].values
    for chain in range(2):
        for k in range(2):
            line = trace.sel(chain=chain, component=k).item()
            np.testing.assert_allclose(line.get_ydata(), weights[chain, :, k])
    raw = plot_sampler_diagnostics(real_post, var_names=["means"], relabelled=False)
    line = raw.viz["trace"]["means"].sel(chain=1, component=0, feature="x1").item()
    np.testing.assert_allclose(
        line.get_ydata(), real_post.idata_["posterior_raw"]["means"].values[1, :, 0, 1]
    )


@pytest.mark.parametrize("kind", ["rank", "ess"])
def test_sampler_diagnostics_rank_and_ess(stand_ins, kind):
    post = stand_ins[(5, "diag")]
    pc = plot_sampler_diagnostics(post, var_names=["weights"], kind=kind)
    figure = pc.viz["figure"].item()
    assert len([a for a in figure.axes if a.has_data()]) == 3  # one panel per weight
    with pytest.raises(ValueError, match="kind"):
        plot_sampler_diagnostics(post, kind="pair")
    with pytest.raises(ValueError, match="var_names"):
        plot_sampler_diagnostics(post, var_names=["sigma"])


# -- 7. model selection with LOO ---------------------------------------------------------
@pytest.fixture(scope="module")
def selection():
    return select_model(X2, range(1, 4), ["full", "diag", "spherical"], n_init=1, random_state=0)


def test_model_selection_draws_loo_beside_bic(selection):
    table = selection.table.copy()
    rng = np.random.default_rng(0)
    table["elpd_loo"] = -table["bic"] / 2 + rng.normal(0, 2, len(table))
    table["se_loo"] = rng.uniform(3, 6, len(table))
    table.loc[(table["covariance_type"] == "diag") & (table["n_components"] == 3), "elpd_loo"] = (
        np.nan
    )
    with_loo = dataclasses.replace(selection, table=table)
    bic_ax, loo_ax = plot_model_selection(with_loo)
    assert bic_ax.get_figure() is loo_ax.get_figure()
    assert len(bic_ax.lines) == 3  # the BIC panel is unchanged
    assert bic_ax.texts[0].get_text().startswith("chosen")
    assert len(loo_ax.containers) == 3
    for container, cov in zip(loo_ax.containers, ["full", "diag", "spherical"], strict=True):
        rows = table[table["covariance_type"] == cov].sort_values("n_components")
        line = container.lines[0]
        np.testing.assert_array_equal(line.get_ydata(), rows["elpd_loo"])
        np.testing.assert_allclose(line.get_xdata(), rows["n_components"], atol=0.1)
        segments = container.lines[2][0].get_segments()
        finite = np.isfinite(rows["elpd_loo"].to_numpy())
        assert [len(seg) > 0 for seg in segments] == list(finite)  # NaN: no bar
        half = [(seg[1, 1] - seg[0, 1]) / 2 for seg in segments if len(seg)]
        np.testing.assert_allclose(half, rows["se_loo"][finite])
    assert [c.get_label() for c in loo_ax.containers] == [
        line.get_label() for line in bic_ax.lines
    ]
    best = table.loc[table["elpd_loo"].idxmax()]
    np.testing.assert_allclose(loo_ax.collections[-1].get_offsets()[0, 1], best["elpd_loo"])
    assert "higher is better" in loo_ax.get_ylabel()

    # a plain DataFrame works too ("lowest", since no criterion chose a model)
    bic_ax, loo_ax = plot_model_selection(table)
    assert bic_ax.texts[0].get_text().startswith("lowest BIC")


def test_model_selection_loo_options(selection):
    table = selection.table.assign(elpd_loo=np.nan, se_loo=np.nan)
    ax = plot_model_selection(table)  # no finite LOO: one panel, as before
    assert not isinstance(ax, tuple)
    with pytest.raises(ValueError, match="elpd_loo"):
        plot_model_selection(table, loo=True)
    table["elpd_loo"] = -table["bic"] / 2
    _, single = plt.subplots()
    assert plot_model_selection(table, ax=single) is single  # one Axes: criterion only
    with pytest.raises(ValueError, match="two Axes"):
        plot_model_selection(table, loo=True, ax=single)
    assert not isinstance(plot_model_selection(table, loo=False), tuple)
    _, pair = plt.subplots(1, 2)
    out = plot_model_selection(table, ax=pair)
    assert out == (pair[0], pair[1])
    assert len(pair[1].containers) == 3


# -- 8. co-clustering --------------------------------------------------------------------
def _block_matrix(seed: int = 0):
    """Co-clustering of 3 shuffled clusters (sizes 12, 7, 5) with a few fuzzy points."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat([0, 1, 2], [12, 7, 5]))
    resp = np.eye(3)[labels] * 0.9 + 0.1 / 3
    for n in (0, 1):  # two fuzzy points, still more likely in their own cluster
        resp[n] = 0.0
        resp[n, labels[n]], resp[n, (labels[n] + 1) % 3] = 0.6, 0.4
    return resp @ resp.T, labels


def test_co_clustering_with_labels(stand_ins):
    post = stand_ins[(5, "full")]
    matrix = post.co_clustering(X5, max_draws=20)
    labels = post.predict(X5)
    ax = plot_co_clustering(matrix, labels=labels)
    order, sizes, _ = _co_clustering_order(matrix, labels)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(labels)))  # a permutation
    assert np.all(np.diff(labels[order]) >= 0)  # grouped by label, in label order
    np.testing.assert_allclose(ax.images[0].get_array(), matrix[np.ix_(order, order)])
    np.testing.assert_array_equal(sizes, np.bincount(labels))
    boundaries = np.cumsum(np.bincount(labels))[:-1] - 0.5
    horizontal = sorted(line.get_ydata()[0] for line in ax.lines[0::2])
    vertical = sorted(line.get_xdata()[0] for line in ax.lines[1::2])
    np.testing.assert_allclose(horizontal, boundaries)
    np.testing.assert_allclose(vertical, boundaries)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    assert ax.images[0].get_clim() == (0.0, 1.0)


def test_co_clustering_finds_the_blocks_without_labels():
    matrix, labels = _block_matrix()
    ax = plot_co_clustering(matrix)
    image = np.asarray(ax.images[0].get_array())
    order, sizes, _ = _co_clustering_order(matrix, None)
    np.testing.assert_allclose(image, matrix[np.ix_(order, order)])
    np.testing.assert_array_equal(sizes, [12, 7, 5])  # groups by size
    runs = labels[order]
    assert list(runs) == [runs[0]] * 12 + [runs[12]] * 7 + [runs[19]] * 5
    assert len(set(runs)) == 3
    assert len(ax.lines) == 2 * 2  # two boundaries, each a horizontal and a vertical line


def test_co_clustering_1d_posterior_and_errors(stand_ins):
    post = stand_ins[(1, "spherical")]
    matrix = post.co_clustering(X1, max_draws=10)
    ax = plot_co_clustering(matrix)
    assert ax.images[0].get_array().shape == (len(X1), len(X1))
    with pytest.raises(ValueError, match="square"):
        plot_co_clustering(np.ones((3, 2)))
    with pytest.raises(ValueError, match="probabilities"):
        plot_co_clustering(2 * np.eye(3))
    with pytest.raises(ValueError, match="labels"):
        plot_co_clustering(np.eye(3), labels=[0, 1])


def test_estimates_four_intervals_per_parameter():
    """NUTS, bootstrap, information and Laplace intervals: each drawn where given, with
    its own legend entry, its segments equal to its columns."""
    rng = np.random.default_rng(0)
    n = 4
    centre = rng.normal(size=n)
    table = pd.DataFrame(
        {
            "parameter": ["means"] * n,
            "label": [f"means[{i}, x]" for i in range(n)],
            "post_mean": centre,
            "map": centre + 0.01,
            "mle": centre - 0.01,
        }
    )
    for j, prefix in enumerate(["ci", "mle", "info", "laplace"]):
        table[f"{prefix}_lower"] = centre - 1.0 - 0.1 * j
        table[f"{prefix}_upper"] = centre + 1.0 + 0.1 * j
    table.loc[2, ["info_lower", "info_upper"]] = np.nan  # a row without a Wald interval
    ax = plot_estimates(table)
    by_label = {c.get_label(): c for c in ax.collections}
    expected = {
        "credible interval": "ci",
        "MLE bootstrap interval": "mle",
        "Wald interval (observed information)": "info",
        "Laplace interval": "laplace",
    }
    assert set(expected) <= set(by_label)
    for label, prefix in expected.items():
        segments = np.array(by_label[label].get_segments())
        finite = table[f"{prefix}_lower"].notna().to_numpy()
        np.testing.assert_allclose(segments[:, 0, 0], table[f"{prefix}_lower"][finite])
        np.testing.assert_allclose(segments[:, 1, 0], table[f"{prefix}_upper"][finite])
    legend = ax.get_figure().legends[0]
    assert set(expected) <= {t.get_text() for t in legend.get_texts()}
    plt.close("all")
