"""Fits on Dask arrays, on a distributed.LocalCluster with 2 worker processes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture
from bayesgmm.datasets import make_mixture

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        warnings.simplefilter("ignore", UserWarning)
        yield client


def _start(X, k, cov):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g = GaussianMixture(k, covariance_type=cov, random_state=0, max_iter=1).fit(X)
    return {"weights_init": g.weights_, "means_init": g.means_, "precisions_init": g.precisions_}


_CASES = [
    pytest.param(cov, variant, marks=() if (cov, variant) == ("full", "nan") else pytest.mark.slow)
    for cov in ("full", "tied", "diag", "spherical")
    for variant in ("plain", "weights", "nan")
]


@pytest.mark.parametrize(("covariance_type", "variant"), _CASES)
def test_fit_on_dask_equals_in_memory_fit(client, covariance_type, variant):
    """Same start: the in-memory fit to 1e-9 (one case by default, all with -m slow)."""
    X = make_mixture(3000, n_components=3, n_features=3, random_state=1).X + 4.0
    w = None
    if variant == "nan":
        rng = np.random.default_rng(0)
        holes = rng.random(X.shape) < 0.1
        holes[:, 0] = False
        X = np.where(holes, np.nan, X)
    start = _start(np.nan_to_num(X), 3, covariance_type)
    kw = dict(covariance_type=covariance_type, tol=1e-10, max_iter=25, **start)
    if variant == "weights":
        w = np.random.default_rng(1).integers(1, 4, X.shape[0]).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(3, **kw).fit(X, sample_weight=w)
        got = GaussianMixture(3, **kw).fit(da.from_array(X, chunks=(700, 3)), sample_weight=w)
    assert got.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-9)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-9, atol=1e-9)


def test_predictions_are_lazy_and_match(client):
    X = make_mixture(2000, n_components=3, n_features=2, random_state=2).X
    gm = GaussianMixture(3, random_state=0).fit(X)
    Xd = da.from_array(X, chunks=(300, 2))
    proba = gm.predict_proba(Xd)
    scores = gm.score_samples(Xd)
    labels = gm.predict(Xd)
    for lazy in (proba, scores, labels):
        assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(proba.compute(), gm.predict_proba(X), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(scores.compute(), gm.score_samples(X), rtol=1e-12)
    np.testing.assert_array_equal(labels.compute(), gm.predict(X))
    assert gm.score(Xd) == pytest.approx(gm.score(X), rel=1e-12)
    assert gm.bic(Xd) == pytest.approx(gm.bic(X), rel=1e-12)
    assert gm.icl(Xd) == pytest.approx(gm.icl(X), rel=1e-12)


@pytest.mark.slow
def test_sampled_start_is_reproducible_and_reaches_the_in_memory_optimum(client):
    X = make_mixture(4000, n_components=3, n_features=2, random_state=3).X
    Xd = da.from_array(X, chunks=(1000, 2))
    a = GaussianMixture(3, random_state=5, n_init=2, tol=1e-8).fit(Xd)
    b = GaussianMixture(3, random_state=5, n_init=2, tol=1e-8).fit(Xd)
    np.testing.assert_array_equal(a.means_, b.means_)
    ref = GaussianMixture(3, random_state=5, n_init=2, tol=1e-8).fit(X)
    assert a.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-6)


def test_fit_from_zarr_matches_in_memory(client, tmp_path):
    zarr = pytest.importorskip("zarr")
    X = make_mixture(3000, n_components=2, n_features=3, random_state=4).X
    store = str(tmp_path / "x.zarr")
    da.from_array(X, chunks=(500, 3)).to_zarr(store)
    Xz = da.from_zarr(store)
    assert zarr is not None
    kw = dict(tol=1e-10, max_iter=20, **_start(X, 2, "full"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(2, **kw).fit(X)
        got = GaussianMixture(2, **kw).fit(Xz)
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-9)
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_out_of_core_fit_from_zarr_under_a_worker_memory_limit(tmp_path):
    """400 MB of data read from Zarr by 2 workers limited to 350 MB each: the fit
    completes and equals the in-memory fit of the same data (same start, 3 iterations)."""
    pytest.importorskip("zarr")
    rng = np.random.default_rng(0)
    n, d, k = 5_000_000, 10, 3
    centers = rng.normal(scale=5.0, size=(k, d))
    X = rng.standard_normal((n, d)) + centers[rng.integers(0, k, n)]
    store = str(tmp_path / "big.zarr")
    da.from_array(X, chunks=(100_000, d)).to_zarr(store)
    kw = dict(tol=0.0, max_iter=3, **_start(X[:20_000], k, "full"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(k, **kw).fit(X)
        del X
        with (
            distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                memory_limit="350MB",
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster),
        ):
            got = GaussianMixture(k, **kw).fit(da.from_zarr(store))
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-9)
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-9, atol=1e-9)


def test_dask_dataframe_of_numeric_columns(client):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X = make_mixture(2000, n_components=2, n_features=3, random_state=0).X
    frame = dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c"]), npartitions=4)
    kw = dict(tol=1e-10, max_iter=20, **_start(X, 2, "full"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        got = GaussianMixture(2, **kw).fit(frame)
        ref = GaussianMixture(2, **kw).fit(X)
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-9)
    proba = got.predict_proba(frame).compute()
    np.testing.assert_allclose(proba, ref.predict_proba(X), atol=1e-12)
