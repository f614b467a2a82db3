"""Bootstrap of MLE/MAP fits: shapes, relabelling, resampling, 1/sqrt(N), coverage, errors."""

from __future__ import annotations

import copy
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from bayesgmm import GaussianMixture, GMMPrior
from bayesgmm._bootstrap import (
    BootstrapResult,
    BootstrapWarning,
    _relabelled_draws,
    _resample_counts,
    bootstrap,
)
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams
from bayesgmm.datasets import make_mixture

TWO_1D = {
    "weights": [0.4, 0.6],
    "means": [[-3.0], [3.0]],
    "covariances": [1.0, 1.5],
    "covariance_type": "spherical",
    "n_components": 2,
    "n_features": 1,
}


def _two_1d(n: int, seed: int) -> np.ndarray:
    return make_mixture(n, **TWO_1D, random_state=seed).X


def _fit(X, k=2, covariance_type="full", sample_weight=None, **kwargs) -> GaussianMixture:
    return GaussianMixture(
        k, covariance_type=covariance_type, tol=1e-8, max_iter=500, random_state=0, **kwargs
    ).fit(X, sample_weight=sample_weight)


@pytest.fixture(scope="module")
def data2d() -> np.ndarray:
    return make_mixture(150, n_components=2, n_features=2, separation=6, random_state=1).X


# -- 1. shapes, dims, coords; arviz reads the DataTree -----------------------------------
def test_draws_dims_and_coords(data2d, covariance_type):
    frame = pd.DataFrame(data2d, columns=["length", "width"])
    gm = _fit(frame, covariance_type=covariance_type)
    res = bootstrap(gm, frame, n_boot=12, random_state=0)
    assert isinstance(res, BootstrapResult)
    assert (res.kind, res.n_boot, res.n_failed) == ("nonparametric", 12, 0)
    assert res.reference is gm
    draws = res.draws
    cov_dims = get_covariance_model(covariance_type).dims
    assert draws["weights"].dims == ("chain", "draw", "component")
    assert draws["means"].dims == ("chain", "draw", "component", "feature")
    assert draws["covariances"].dims == ("chain", "draw", *cov_dims)
    assert dict(draws.sizes)["chain"] == 1
    assert dict(draws.sizes)["draw"] == 12
    assert draws["covariances"].shape[2:] == gm.covariances_.shape
    assert draws["component"].values.tolist() == [0, 1]
    assert draws["feature"].values.tolist() == ["length", "width"]
    if "feature_bis" in draws.dims:
        assert draws["feature_bis"].values.tolist() == ["length", "width"]
    np.testing.assert_allclose(draws["weights"].sum("component"), 1.0)

    summary = az.summary(res.to_datatree(), round_to="none")
    means = draws.mean(("chain", "draw"))
    for k in range(2):
        for f in ("length", "width"):
            label = f"means[{k}, {f}]"
            assert summary.loc[label, "mean"] == pytest.approx(
                float(means["means"].sel(component=k, feature=f)), rel=1e-12
            )
        assert summary.loc[f"weights[{k}]", "mean"] == pytest.approx(
            float(means["weights"][k]), rel=1e-12
        )

    table = res.summary()
    n_cov = int(np.prod(gm.covariances_.shape))
    assert len(table) == 2 + 4 + n_cov
    assert list(table.columns) == [
        "parameter", "component", "feature", "feature_bis", "estimate", "se", "lower", "upper",
    ]  # fmt: skip
    means_rows = table[table["parameter"] == "means"]
    np.testing.assert_allclose(means_rows["estimate"], gm.means_.ravel())
    assert (table["se"] > 0).all()
    se = res.standard_errors()
    np.testing.assert_allclose(
        se["means"].values, draws["means"].values[0].std(axis=0, ddof=1), rtol=1e-12
    )
    bounds = res.intervals(0.8)
    assert bounds["means"].dims == ("bound", "component", "feature")
    assert bounds["bound"].values.tolist() == ["lower", "upper"]
    np.testing.assert_allclose(
        bounds["means"].sel(bound="upper").values,
        np.quantile(draws["means"].values[0], 0.9, axis=0),
    )


def test_numpy_features_and_parametric(data2d):
    gm = _fit(data2d)
    res = bootstrap(gm, data2d, n_boot=10, kind="parametric", random_state=2)
    assert res.kind == "parametric"
    assert res.draws["feature"].values.tolist() == ["x0", "x1"]
    assert res.draws["feature_bis"].values.tolist() == ["x0", "x1"]
    table = res.summary()
    tied_free = table[table["parameter"] == "weights"]
    assert tied_free["feature"].isna().all()
    assert tied_free["feature_bis"].isna().all()


def test_tied_summary_has_no_component(data2d):
    gm = _fit(data2d, covariance_type="tied")
    table = bootstrap(gm, data2d, n_boot=5, random_state=0).summary()
    cov = table[table["parameter"] == "covariances"]
    assert len(cov) == 4
    assert cov["component"].isna().all()
    np.testing.assert_allclose(cov["estimate"], gm.covariances_.ravel())


# -- 2. relabelling ------------------------------------------------------------------------
def _permuted(gm: GaussianMixture, perm) -> GaussianMixture:
    """A copy of a fitted model with its components reordered by ``perm``."""
    out = copy.deepcopy(gm)
    out.weights_ = gm.weights_[perm]
    out.means_ = gm.means_[perm]
    has_component = gm.covariance_type != "tied"
    for name in ("covariances_", "precisions_cholesky_", "precisions_"):
        value = getattr(gm, name)
        setattr(out, name, value[perm] if has_component else value)
    return out


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_permuted_reference_permutes_summary(covariance_type):
    X = make_mixture(200, n_components=3, n_features=2, separation=5, random_state=4).X
    gm = _fit(X, k=3, covariance_type=covariance_type)
    perm = np.array([2, 0, 1])
    gm_perm = _permuted(gm, perm)
    a = bootstrap(gm, X, n_boot=15, random_state=5)
    b = bootstrap(gm_perm, X, n_boot=15, random_state=5)
    da, db = a.draws, b.draws
    np.testing.assert_allclose(db["weights"].values, da["weights"].values[..., perm], atol=1e-6)
    np.testing.assert_allclose(db["means"].values, da["means"].values[:, :, perm], atol=1e-6)
    # the replicates stay aligned with their reference's components
    for res, ref in ((a, gm), (b, gm_perm)):
        mean = res.draws["means"].mean(("chain", "draw")).values
        assert np.abs(mean - ref.means_).max() < 0.5
    sa, sb = a.summary(), b.summary()
    wa = sa[sa["parameter"] == "weights"]["se"].to_numpy()
    wb = sb[sb["parameter"] == "weights"]["se"].to_numpy()
    np.testing.assert_allclose(wb, wa[perm], rtol=1e-6)


def test_relabelling_undoes_label_switches(covariance_type):
    """Replicates handed over in shuffled component order come back aligned."""
    data = make_mixture(300, n_components=3, n_features=2, separation=6, random_state=7)
    gm = _fit(data.X, k=3, covariance_type=covariance_type)
    ref = gm._params()
    rng = np.random.default_rng(0)
    perms = [rng.permutation(3) for _ in range(6)]
    shuffled = []
    for p in perms:
        cov = ref.covariances if covariance_type == "tied" else ref.covariances[p]
        chol = ref.precisions_cholesky if covariance_type == "tied" else ref.precisions_cholesky[p]
        shuffled.append(GMMParams(ref.weights[p], ref.means[p] + 0.01, cov, chol))
    ds = _relabelled_draws(shuffled, ref, covariance_type, ["a", "b"])
    for s in range(6):
        np.testing.assert_allclose(ds["weights"].values[0, s], ref.weights)
        np.testing.assert_allclose(ds["means"].values[0, s], ref.means + 0.01)
        np.testing.assert_allclose(ds["covariances"].values[0, s], ref.covariances)


# -- 3. multinomial weights == repeated rows -----------------------------------------------
def test_weighted_replicates_equal_fits_on_repeated_rows():
    X = make_mixture(120, n_components=2, n_features=2, separation=5, random_state=3).X
    gm = _fit(X, covariance_type="diag")
    res = bootstrap(gm, X, n_boot=3, random_state=11)
    rng = np.random.default_rng(11)  # the bootstrap's stream: one count vector per replicate
    for b in range(3):
        counts = _resample_counts(rng, len(X), len(X), None)
        assert counts.sum() == len(X)
        repeated = np.repeat(X, counts, axis=0)
        direct = GaussianMixture(
            2,
            covariance_type="diag",
            tol=gm.tol,
            max_iter=gm.max_iter,
            weights_init=gm.weights_,
            means_init=gm.means_,
            precisions_init=gm.precisions_,
        ).fit(repeated)
        replicate = res.draws.isel(chain=0, draw=b)
        np.testing.assert_allclose(replicate["weights"].values, direct.weights_, rtol=1e-7)
        np.testing.assert_allclose(replicate["means"].values, direct.means_, rtol=1e-7)
        np.testing.assert_allclose(replicate["covariances"].values, direct.covariances_, rtol=1e-7)


def test_resample_counts_follow_sample_weight():
    w = np.array([0.0, 1.0, 3.0, 6.0])
    rng = np.random.default_rng(0)
    counts = np.array([_resample_counts(rng, 4, 10, w / w.sum()) for _ in range(4000)])
    assert (counts.sum(axis=1) == 10).all()
    assert (counts[:, 0] == 0).all()
    np.testing.assert_allclose(counts.mean(axis=0), w, atol=0.1)


def test_integer_sample_weight_matches_repeated_data_distribution():
    """Bootstrapping weighted rows resamples sum(w) units: same spread as the expanded data."""
    X = _two_1d(150, seed=2)
    w = np.random.default_rng(1).integers(1, 4, size=len(X)).astype(float)
    gm_w = _fit(X, sample_weight=w)
    gm_r = _fit(np.repeat(X, w.astype(int), axis=0))
    se_w = bootstrap(gm_w, X, sample_weight=w, n_boot=150, random_state=0).standard_errors()
    se_r = bootstrap(gm_r, np.repeat(X, w.astype(int), axis=0), n_boot=150, random_state=1)
    ratio = se_w["means"].values / se_r.standard_errors()["means"].values
    assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio


# -- 4. standard errors shrink like 1/sqrt(N) ------------------------------------------------
def test_standard_errors_shrink_like_root_n():
    se = {}
    for n in (200, 800):
        X = _two_1d(n, seed=n)
        gm = _fit(X, covariance_type="spherical")
        res = bootstrap(gm, X, n_boot=150, random_state=0)
        se[n] = res.standard_errors()["means"].values.ravel()
    ratio = se[800] / se[200]
    assert np.all((ratio > 0.35) & (ratio < 0.65)), ratio


def test_one_component_mean_se_matches_analytic():
    rng = np.random.default_rng(3)
    X = rng.normal(1.0, 2.0, size=(400, 1))
    gm = _fit(X, k=1)
    se = float(bootstrap(gm, X, n_boot=300, random_state=0).standard_errors()["means"].item())
    analytic = X.std() / np.sqrt(len(X))
    assert se == pytest.approx(analytic, rel=0.2)


def test_map_fit_keeps_the_original_prior(monkeypatch, data2d):
    gm = _fit(data2d, prior="default")

    def refuse(*args, **kwargs):
        raise AssertionError("the bootstrap rebuilt the default prior")

    for builder in ("default", "pooled", "mclust"):  # prior="default" builds pooled
        monkeypatch.setattr(GMMPrior, builder, refuse)
    res = bootstrap(gm, data2d, n_boot=5, random_state=0)
    assert res.draws.sizes["draw"] == 5
    assert gm.prior == "default"  # the model itself is untouched


# -- failures and warnings -----------------------------------------------------------------
def test_failed_replicates_are_counted_and_warned(monkeypatch, data2d):
    gm = _fit(data2d)
    original_fit = GaussianMixture.fit
    calls = {"n": 0}

    def flaky(self, X, y=None, sample_weight=None):
        calls["n"] += 1
        if calls["n"] % 4 == 0:
            raise ValueError("boom")
        return original_fit(self, X, y, sample_weight)

    monkeypatch.setattr(GaussianMixture, "fit", flaky)
    with pytest.warns(BootstrapWarning, match="3 of 12 bootstrap replicates failed"):
        res = bootstrap(gm, data2d, n_boot=12, random_state=0)
    assert res.n_failed == 3
    assert res.draws.sizes["draw"] == 9

    def always_fails(self, X, y=None, sample_weight=None):
        raise ValueError("collapsed")

    monkeypatch.setattr(GaussianMixture, "fit", always_fails)
    with pytest.raises(ValueError, match=r"more than half.*collapsed"):
        bootstrap(gm, data2d, n_boot=10, random_state=0)


def test_progress_prints_to_stderr(capsys, data2d):
    gm = _fit(data2d)
    bootstrap(gm, data2d, n_boot=20, random_state=0, progress=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 10
    assert "20/20" in err[-1]


# -- 6. errors and reproducibility --------------------------------------------------------
def test_unfitted_model_raises(data2d):
    with pytest.raises(NotFittedError):
        bootstrap(GaussianMixture(2), data2d)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kind": "jackknife"}, "kind"),
        ({"n_boot": 1}, "n_boot"),
        ({"n_boot": 2.5}, "n_boot"),
        ({"n_boot": True}, "n_boot"),
        ({"random_state": "seed"}, "random_state"),
    ],
)
def test_bad_arguments(data2d, kwargs, name):
    gm = _fit(data2d)
    with pytest.raises(ValueError, match=f"`{name}`"):
        bootstrap(gm, data2d, **kwargs)


def test_bad_prob(data2d):
    res = bootstrap(_fit(data2d), data2d, n_boot=3, random_state=0)
    with pytest.raises(ValueError, match="`prob`"):
        res.intervals(1.0)


def test_wrong_number_of_features(data2d):
    with pytest.raises(ValueError, match="features"):
        bootstrap(_fit(data2d), data2d[:, :1], n_boot=3)


@pytest.mark.parametrize("kind", ["nonparametric", "parametric"])
def test_same_seed_same_draws(data2d, kind):
    gm = _fit(data2d)
    a = bootstrap(gm, data2d, n_boot=6, kind=kind, random_state=42)
    b = bootstrap(gm, data2d, n_boot=6, kind=kind, random_state=42)
    c = bootstrap(gm, data2d, n_boot=6, kind=kind, random_state=43)
    assert a.draws.identical(b.draws)
    assert not np.allclose(a.draws["means"].values, c.draws["means"].values)
    rs = bootstrap(gm, data2d, n_boot=6, kind=kind, random_state=np.random.RandomState(0))
    rs2 = bootstrap(gm, data2d, n_boot=6, kind=kind, random_state=np.random.RandomState(0))
    assert rs.draws.identical(rs2.draws)


# -- 5. coverage (slow) -------------------------------------------------------------------
@pytest.mark.slow
def test_percentile_intervals_cover_at_nominal_rate():
    truth_w = np.array(TWO_1D["weights"])
    truth_mu = np.array(TWO_1D["means"])[:, 0]
    hits = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BootstrapWarning)
        for seed in range(40):
            X = _two_1d(200, seed=1000 + seed)
            gm = _fit(X, covariance_type="spherical")
            order = np.argsort(gm.means_[:, 0])  # align labels with the truth
            bounds = bootstrap(gm, X, n_boot=200, random_state=seed).intervals(0.9)
            for name, truth in (("weights", truth_w), ("means", truth_mu)):
                b = bounds[name].values.reshape(2, 2)[:, order]
                hits.extend((b[0] <= truth) & (truth <= b[1]))
    coverage = float(np.mean(hits))
    print(f"90% percentile interval coverage over 40 data sets: {coverage:.3f}")
    assert 0.8 <= coverage <= 0.97


def test_degenerate_replicates_are_counted_and_reported():
    """A small far cluster of 4 rows: the fit is fine, but resamples often hold 3 or
    fewer of those rows, and a 2-D full covariance has 3 parameters."""
    import warnings

    from bayesgmm import DegenerateFitWarning

    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(40, 2)), 12.0 + rng.normal(size=(4, 2))]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        gm = GaussianMixture(2, tol=1e-6, random_state=0).fit(X)
    with pytest.warns(DegenerateFitWarning, match=r"of \d+ bootstrap replicates are degenerate"):
        boot = bootstrap(gm, X, n_boot=20, random_state=0)
    assert 0 < boot.n_degenerate <= 20 - boot.n_failed
    assert f"n_degenerate={boot.n_degenerate}" in repr(boot)
    assert boot.summary().attrs["n_degenerate"] == boot.n_degenerate
