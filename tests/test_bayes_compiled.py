"""The PyMC-model path compiles once per structure: a second fit of the same structure
(other data, other N, other missingness patterns, other prior hyperparameters) reuses
nutpie's compiled functions, and they read the new model's data, not the old."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest
from test_bayes_model import FAST

from bayesgmm.bayes import PosteriorGaussianMixture, _compiled, build_model
from conftest import TWO_BLOBS


def _with_nan(X: np.ndarray, rate: float, seed: int, columns=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = X.copy()
    mask = rng.random(X.shape) < rate
    if columns is not None:
        mask[:, [j for j in range(X.shape[1]) if j not in columns]] = False
    mask[mask.all(axis=1), 0] = False  # no empty rows
    X[mask] = np.nan
    return X


def _data_a() -> np.ndarray:
    return _with_nan(TWO_BLOBS.X, 0.15, seed=4)


def _data_b() -> np.ndarray:
    """Other values (shifted by (10, -5)), fewer rows, and other patterns: only x1 is
    ever missing."""
    rows = np.random.default_rng(5).permutation(len(TWO_BLOBS.X))[:110]
    return _with_nan(TWO_BLOBS.X[rows] + np.array([10.0, -5.0]), 0.3, seed=6, columns=[1])


def _fit(X, seed=0):
    """A fit on the PyMC model under nutpie: data with NaN go to the numba kernel, so
    the kernel is switched off here (as for a prior form it does not know)."""
    from unittest import mock

    post = PosteriorGaussianMixture(2, draws=100, tune=150, chains=2, n_init=2, random_state=seed)
    with (
        warnings.catch_warnings(),
        mock.patch("bayesgmm.bayes.posterior.supports", return_value=False),
    ):
        warnings.simplefilter("ignore")
        return post.fit(X)


def _nutpie_logp(compiled, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """logp and gradient of nutpie's compiled C callback at ``theta``."""
    import ctypes

    theta = np.ascontiguousarray(theta, dtype=np.float64)
    grad = np.empty_like(theta)
    logp = np.empty(())
    pointer = ctypes.POINTER(ctypes.c_double)
    code = compiled.compiled_logp_func.ctypes(
        len(theta),
        theta.ctypes.data_as(pointer),
        grad.ctypes.data_as(pointer),
        logp.ctypes.data_as(pointer),
        ctypes.c_void_p(compiled.user_data.ctypes.data),
    )
    assert code == 0
    return float(logp), grad


def _point(compiled, theta: np.ndarray) -> dict[str, np.ndarray]:
    names, slices, shapes = compiled.shape_info
    n_free = compiled.n_dim
    return {
        name: theta[sl].reshape(shape)
        for name, sl, shape in zip(names, slices, shapes, strict=True)
        if sl.stop <= n_free
    }


def test_a_second_fit_of_the_same_structure_does_not_recompile():
    post_a = _fit(_data_a())  # compiles, unless this structure already was
    X = _data_b()
    before = dict(_compiled.COMPILES)
    post_b = _fit(X)
    assert dict(_compiled.COMPILES) == before, "the second fit compiled"
    assert post_b.backend_ == "pymc"

    # the draws are of B's posterior, not A's: posterior means near B's MAP fit
    order = lambda m: m[np.argsort(m[:, 0])]  # noqa: E731
    np.testing.assert_allclose(order(post_b.means_), order(post_b.map_.means_), atol=0.3)
    assert np.abs(order(post_b.means_) - order(post_a.means_)).min() > 3.0
    assert post_b.idata_["log_likelihood"]["x"].shape == (2, 100, len(X))

    # the reused callback computes the logp and gradient of B's model (data, patterns,
    # N and the prior's hyperparameters of B), as PyMC does on a fresh model of B
    model = build_model(X, 2, prior=post_b.prior_)
    entry, new = _compiled.lookup(model)
    assert not new
    compiled = _compiled.compiled_for(entry, model)
    assert dict(_compiled.COMPILES) == before
    logp_fn = model.compile_logp(mode=FAST)
    dlogp_fn = model.compile_dlogp(mode=FAST)
    names, slices, _shapes = compiled.shape_info
    means = slices[names.index("means")]
    rng = np.random.default_rng(0)
    for _ in range(3):
        theta = rng.normal(scale=0.5, size=compiled.n_dim)
        theta[means] += post_b.map_.means_.ravel()
        point = _point(compiled, theta)
        logp, grad = _nutpie_logp(compiled, theta)
        np.testing.assert_allclose(logp, logp_fn(point), rtol=1e-10)
        np.testing.assert_allclose(grad, dlogp_fn(point), rtol=1e-8, atol=1e-10)


def test_the_graph_check_refuses_a_model_that_differs():
    """Same key (structure) but another graph: a user's extension with a constant, or
    another K, is a new entry; a model of the same structure is not."""
    X = _data_b()
    base = build_model(X, 2, covariance_type="diag")
    _compiled.lookup(base)
    assert not _compiled.lookup(build_model(_data_a(), 2, covariance_type="diag"))[1]
    extended = build_model(X, 2, covariance_type="diag")
    with extended:
        pm.Potential("extra", -0.5 * (extended["means"] ** 2).sum())
    assert _compiled.lookup(extended)[1]
    other = build_model(X, 2, covariance_type="diag")
    with other:
        pm.Potential("extra", -0.25 * (other["means"] ** 2).sum())  # another constant
    assert _compiled.lookup(other)[1]
    assert _compiled.lookup(build_model(X, 3, covariance_type="diag"))[1]
    assert not _compiled.lookup(build_model(X, 2, covariance_type="diag"))[1]


def test_nan_chains_start_at_their_own_points_and_reproduce():
    """With missing values (the PyMC model under nutpie) every chain starts at its own
    point, chain 0 at the MAP fit's unconstrained values, and the same random_state
    gives the same draws."""
    X = _data_a()
    post = _fit(X, seed=3)
    starts = post.chain_starts_
    assert starts.shape[0] == 2
    assert np.abs(starts[0] - starts[1]).max() > 1e-3, "the chains share a start"
    model = build_model(X, 2, prior=post.prior_)
    entry, _ = _compiled.lookup(model)
    compiled = _compiled.compiled_for(entry, model)
    names, slices, _shapes = compiled.shape_info
    means = starts[0][slices[names.index("means")]].reshape(post.map_.means_.shape)
    np.testing.assert_allclose(means, post.map_.means_, rtol=1e-12)
    again = _fit(X, seed=3)
    np.testing.assert_array_equal(again.chain_starts_, starts)
    a = post.idata_["posterior_raw"].to_dataset()
    b = again.idata_["posterior_raw"].to_dataset()
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    other = _fit(X, seed=4)
    assert not np.array_equal(other.idata_["posterior_raw"]["means"].values, a["means"].values)


@pytest.mark.slow
def test_reused_and_fresh_compilations_give_the_same_draws():
    _fit(_data_a())
    reused = _fit(_data_b(), seed=1)
    _compiled.clear_cache()
    before = _compiled.COMPILES["nutpie"]
    fresh = _fit(_data_b(), seed=1)
    assert _compiled.COMPILES["nutpie"] == before + 1
    a = reused.idata_["posterior_raw"].to_dataset()
    b = fresh.idata_["posterior_raw"].to_dataset()
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_pymc_sampler_reuses_its_logp_and_gradient():
    def fit(X):
        post = PosteriorGaussianMixture(
            2, draws=100, tune=150, chains=2, n_init=2, random_state=0, sampler="pymc"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return post.fit(X)

    fit(_data_a())
    before = dict(_compiled.COMPILES)
    post = fit(_data_b())
    assert dict(_compiled.COMPILES) == before
    order = lambda m: m[np.argsort(m[:, 0])]  # noqa: E731
    np.testing.assert_allclose(order(post.means_), order(post.map_.means_), atol=0.3)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "EII", "EEI"])
def test_log_likelihood_group_with_nan_matches_scipy(covariance_type):
    """The NumPy ``log_likelihood`` of the PyMC path (no compile), vectorized over draws
    pattern by pattern, against SciPy's marginal densities row by row."""
    import xarray as xr
    from scipy import stats
    from scipy.special import logsumexp

    from bayesgmm.bayes.posterior import _observed_log_likelihood
    from bayesgmm.core.covariance import get_covariance_model

    rng = np.random.default_rng(0)
    n, d, k, chains, draws = 25, 3, 2, 2, 3
    X = _with_nan(rng.normal(size=(n, d)), 0.3, seed=1)
    w = rng.dirichlet(np.ones(k), size=(chains, draws))
    mu = rng.normal(size=(chains, draws, k, d))
    a = rng.normal(size=(chains, draws, k, d, d))
    spd = a @ np.swapaxes(a, -1, -2) + np.eye(d)
    cov = {
        "full": spd,
        "tied": spd[:, :, 0],
        "diag": rng.uniform(0.5, 2.0, size=(chains, draws, k, d)),
        "EEI": np.broadcast_to(rng.uniform(0.5, 2.0, size=(chains, draws, 1, d)), mu.shape),
        "EII": np.broadcast_to(rng.uniform(0.5, 2.0, size=(chains, draws, 1, 1)), mu.shape),
        "spherical": rng.uniform(0.5, 2.0, size=(chains, draws, k)),
    }[covariance_type]
    cov_dims = tuple(f"c{i}" for i in range(cov.ndim - 2))
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), w),
            "means": (("chain", "draw", "component", "feature"), mu),
            "covariances": (("chain", "draw", *cov_dims), np.array(cov)),
        }
    )
    got = _observed_log_likelihood(X, posterior, covariance_type)
    to_full = get_covariance_model(covariance_type).to_full
    for c in range(chains):
        for s in range(draws):
            full = to_full(np.array(cov[c, s]), k, d)
            for i, x in enumerate(X):
                o = ~np.isnan(x)
                terms = [
                    np.log(w[c, s, j])
                    + stats.multivariate_normal(mu[c, s, j, o], full[j][np.ix_(o, o)]).logpdf(x[o])
                    for j in range(k)
                ]
                np.testing.assert_allclose(got[c, s, i], logsumexp(terms), rtol=1e-10)


@pytest.mark.parametrize(
    "covariance_type", ["full", "tied", "diag", "spherical", "EII", "EEI", "VEI", "EVI"]
)
def test_no_op_of_the_nan_model_runs_in_numba_object_mode(covariance_type):
    """nutpie calls the compiled logp from several threads at once: an op that numba
    runs in object mode (Python) there corrupted the draws (a batched pt.diagonal's
    gradient did, with 'tied': every draw divergent with cores=2, none with cores=1)."""
    from nutpie.compile_pymc import _make_functions
    from pymc.initial_point import make_initial_point_fn

    model = build_model(_data_a(), 2, covariance_type=covariance_type)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _make_functions(
            model,
            mode="NUMBA",
            compute_grad=True,
            join_expanded=True,
            pymc_initial_point_fn=make_initial_point_fn(model=model, return_transformed=True),
        )
    assert not [str(w.message) for w in caught if "object mode" in str(w.message)]


def test_the_cache_drops_the_least_recently_used_model(monkeypatch):
    """With room for two models, a third structure evicts the least recently used
    (looked up again: a new entry, i.e. it would compile), not the one just used."""
    _compiled.clear_cache()
    monkeypatch.setattr(_compiled, "MAX_ENTRIES", 2)
    X = _data_b()
    first = lambda: build_model(X, 2, covariance_type="diag")  # noqa: E731
    second = lambda: build_model(X, 3, covariance_type="diag")  # noqa: E731
    third = lambda: build_model(X, 2, covariance_type="spherical")  # noqa: E731
    assert _compiled.lookup(first())[1]
    assert _compiled.lookup(second())[1]
    assert not _compiled.lookup(first())[1]  # first is now the most recently used
    assert _compiled.lookup(third())[1]  # evicts second
    assert not _compiled.lookup(first())[1]
    assert _compiled.lookup(second())[1]  # it was dropped
    assert len(_compiled._ORDER) == 2
    assert sum(len(v) for v in _compiled._CACHE.values()) == 2
    _compiled.clear_cache()


def test_concurrent_fits_of_one_structure_compile_it_once(monkeypatch):
    """Threads asking for the same entry's nutpie model at once compile it once (the
    compiler is replaced by a slow stand-in that counts its calls)."""
    import threading
    import time

    import nutpie

    calls = []

    def slow_compile(model, **kwargs):
        calls.append(model)
        time.sleep(0.3)
        return object()

    monkeypatch.setattr(nutpie, "compile_pymc_model", slow_compile)
    _compiled.clear_cache()
    model = build_model(_data_b(), 2, covariance_type="diag")
    entry, new = _compiled.lookup(model)
    assert new
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(_compiled.compiled_for(entry, model)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 4
    assert all(r is results[0] for r in results)
    _compiled.clear_cache()
