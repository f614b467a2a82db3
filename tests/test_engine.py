"""The chunk kernel: chunked = unchunked, both kernel formulations, float32, threads."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info

from bayesgmm import GaussianMixture
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.estep import (
    DEFAULT_CHUNK_BYTES,
    chunk_size,
    e_step,
    get_chunk_size,
    plan_chunks,
    set_chunk_size,
)
from bayesgmm.core.kernels import WhitenedFullKernel, WhitenedTiedKernel
from bayesgmm.core.params import GMMParams
from bayesgmm.datasets import make_mixture

N = 210


def _data(n_features: int, missing: bool = False, seed: int = 0) -> np.ndarray:
    X = make_mixture(N, n_components=3, n_features=n_features, random_state=seed).X + 5.0
    if missing:
        rng = np.random.default_rng(seed)
        holes = rng.random(X.shape) < 0.15
        holes[np.arange(N), rng.integers(0, n_features, N)] = False  # one value stays
        X = np.where(holes, np.nan, X)
    return X


def _fit(X, cov, k=3, chunk=None, sample_weight=None, **kwargs):
    est = GaussianMixture(k, covariance_type=cov, random_state=0, tol=1e-8, max_iter=40, **kwargs)
    with warnings.catch_warnings(), chunk_size(chunk):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, sample_weight=sample_weight)


def _assert_same_fit(a, b, rtol=1e-12):
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=rtol)


# D = 3, K = 3 full/tied use the feature map; D = 7 > 2K - 1 uses whitening. 30 rows
# per chunk divide N = 210, 37 do not, 1 is a row per chunk; None is one chunk.
_CASES = [
    (d, chunk, variant)
    for d in (3, 7)
    for chunk in (30, 37)
    for variant in ("plain", "weights", "prior", "nan")
] + [(3, 1, "plain"), (3, 1, "weights")]


@pytest.mark.parametrize(("n_features", "chunk", "variant"), _CASES)
def test_chunked_fit_equals_unchunked(covariance_type, n_features, chunk, variant):
    X = _data(n_features, missing=variant == "nan")
    kwargs = {}
    if variant == "weights":
        kwargs["sample_weight"] = np.random.default_rng(1).integers(1, 4, N).astype(float)
    if variant == "prior":
        kwargs["prior"] = "default"
    whole = _fit(X, covariance_type, chunk=None, **kwargs)
    parts = _fit(X, covariance_type, chunk=chunk, **kwargs)
    _assert_same_fit(whole, parts)
    with chunk_size(chunk):
        chunked_proba = parts.predict_proba(X)
        chunked_score = parts.score_samples(X)
        chunked_bic = parts.bic(X)
    np.testing.assert_allclose(chunked_proba, whole.predict_proba(X), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(chunked_score, whole.score_samples(X), rtol=1e-12)
    assert chunked_bic == pytest.approx(whole.bic(X), rel=1e-12)


def _random_params(rng, k, d, cov):
    full = np.empty((k, d, d))
    for j in range(k):
        a = rng.standard_normal((d, d))
        full[j] = a @ a.T / d + 0.3 * np.eye(d)
    model = get_covariance_model(cov)
    covariances = model.from_full(full)
    return GMMParams(
        rng.dirichlet(np.ones(k)),
        rng.normal(size=(k, d)) * 2,
        covariances,
        model.precision_cholesky(covariances),
    )


@pytest.mark.parametrize(("d", "k"), [(2, 4), (6, 2)])
def test_kernels_match_reference_densities_and_moments(covariance_type, d, k):
    """Feature map (D small against K) and whitening (D large) against the table's
    reference ``log_gaussian`` and the naive moments."""
    rng = np.random.default_rng(3)
    params = _random_params(rng, k, d, covariance_type)
    X = rng.normal(size=(57, d)) * 2
    model = get_covariance_model(covariance_type)
    kernel = model.chunk_kernel(params.means, params.precisions_cholesky, X.dtype)
    log_gauss, cache = kernel.log_gaussian(X)
    reference = model.log_gaussian(X, params.means, params.precisions_cholesky)
    np.testing.assert_allclose(log_gauss.T, reference, rtol=1e-11, atol=1e-11)
    resp = rng.dirichlet(np.ones(k), size=57)
    acc = kernel.new_accumulator()
    kernel.accumulate(acc, X, np.ascontiguousarray(resp.T), cache)
    counts, sum_x, sum_xx = kernel.unpack(acc)
    np.testing.assert_allclose(counts, resp.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sum_x, resp.T @ X, rtol=1e-12)
    np.testing.assert_allclose(sum_xx, model.second_moment(X, resp), rtol=1e-12)


def test_both_full_formulations_are_exercised():
    full = get_covariance_model("full")
    tied = get_covariance_model("tied")
    eye = np.repeat(np.eye(6)[None], 2, axis=0)
    assert isinstance(full.chunk_kernel(np.zeros((2, 6)), eye, np.float64), WhitenedFullKernel)
    assert isinstance(tied.chunk_kernel(np.zeros((2, 6)), eye[0], np.float64), WhitenedTiedKernel)
    small = np.repeat(np.eye(2)[None], 4, axis=0)
    feature_map = full.chunk_kernel(np.zeros((4, 2)), small, np.float64)
    assert not isinstance(feature_map, WhitenedFullKernel)


def test_e_step_on_far_from_origin_data_is_accurate():
    """Prediction centers at the mixture mean: data at 1e6 score like data at 0."""
    rng = np.random.default_rng(0)
    params = _random_params(rng, 3, 4, "full")
    X = rng.normal(size=(100, 4)) * 2
    shift = 1e6
    near = e_step(X, params, "full", statistics=False).log_likelihood
    far = e_step(X + shift, params.shift_means(shift), "full", statistics=False).log_likelihood
    assert far == pytest.approx(near, rel=1e-9)


def test_chunk_size_settings():
    assert get_chunk_size() is None
    with chunk_size(17):
        assert get_chunk_size() == 17
        chunks = plan_chunks(np.zeros((100, 2)), 2, "full").chunks
        assert max(c.stop - c.start for c in chunks) == 17
    assert get_chunk_size() is None
    with pytest.raises(ValueError, match="positive integer"):
        set_chunk_size(0)
    # Automatic: about DEFAULT_CHUNK_BYTES per chunk of the widest temporary.
    plan = plan_chunks(np.zeros((10**6, 10)), 10, "full")
    rows = plan.chunks[0].stop
    assert 500 <= rows <= DEFAULT_CHUNK_BYTES // (8 * 10)
    assert plan.chunks[-1].stop == 10**6


def test_float32_stays_float32_in_the_kernel_and_fits_like_float64(covariance_type):
    X64 = make_mixture(2000, n_components=3, n_features=4, random_state=2).X
    X32 = X64.astype(np.float32)
    start = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(X64)
    given = dict(
        weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_
    )
    kwargs = dict(covariance_type=covariance_type, tol=0.0, max_iter=30, **given)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        f64 = GaussianMixture(3, **kwargs).fit(X64)
        f32 = GaussianMixture(3, **kwargs).fit(X32)
    # Documented: fitted attributes are float64 whatever the input dtype.
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(f32, name).dtype == np.float64
    assert f32.predict_proba(X32).dtype == np.float64
    assert f32.score_samples(X32).dtype == np.float64
    # Documented tolerances (docs/user-guide, "Precision"): 1e-5 relative on the mean
    # log-likelihood, 1e-4 (relative to the data's scale) on the parameters.
    scale = float(np.abs(X64).max())
    np.testing.assert_allclose(f32.lower_bounds_, f64.lower_bounds_, rtol=1e-5)
    np.testing.assert_allclose(f32.weights_, f64.weights_, atol=1e-4)
    np.testing.assert_allclose(f32.means_, f64.means_, atol=1e-4 * scale)
    np.testing.assert_allclose(f32.covariances_, f64.covariances_, atol=1e-4 * scale**2)
    np.testing.assert_allclose(f32.predict_proba(X32), f64.predict_proba(X64), atol=1e-4)


def test_float32_heavy_passes_run_in_float32(monkeypatch):
    from bayesgmm.core import kernels

    seen = []
    real = kernels._quadratic_features
    monkeypatch.setattr(kernels, "_quadratic_features", lambda X: seen.append(X.dtype) or real(X))
    X = make_mixture(300, n_components=3, n_features=2, random_state=0).X.astype(np.float32)
    model = get_covariance_model("full")
    params = _random_params(np.random.default_rng(0), 3, 2, "full")
    kernel = model.chunk_kernel(params.means, params.precisions_cholesky, np.float32)
    kernel.features = kernels._quadratic_features
    log_gauss, phi = kernel.log_gaussian(X)
    assert seen == [np.float32]
    assert log_gauss.dtype == phi.dtype == np.float32


def test_fit_leaves_thread_limits_alone():
    before = [(p["filepath"], p["num_threads"]) for p in threadpool_info()]
    _fit(_data(3), "full")
    after = [(p["filepath"], p["num_threads"]) for p in threadpool_info()]
    assert after == before


def test_worker_threads_respect_the_user_limit_and_restore_it():
    from threadpoolctl import threadpool_limits

    from bayesgmm.core.estep import worker_threads

    def blas_limits():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    with threadpool_limits(1), worker_threads(10) as n:
        assert n == 1
        assert blas_limits() == [1] * len(blas_limits())
    before = blas_limits()
    with worker_threads(100) as n:
        assert 1 <= n <= max(before)
        assert set(blas_limits()) == {1}
    assert blas_limits() == before


def test_parallel_chunks_equal_serial(covariance_type):
    X = _data(3, missing=True)
    rng = np.random.default_rng(0)
    params = _random_params(rng, 3, 3, covariance_type).shift_means(5.0)
    w = rng.random(N)
    plan = plan_chunks(X, 3, covariance_type, chunk_size=20)
    serial = e_step(X, params, covariance_type, sample_weight=w, plan=plan, n_workers=1)
    threaded = e_step(X, params, covariance_type, sample_weight=w, plan=plan, n_workers=3)
    assert threaded.log_likelihood == pytest.approx(serial.log_likelihood, rel=1e-13)
    for name in ("n", "sum_x", "sum_xx"):
        np.testing.assert_allclose(
            getattr(threaded.stats, name), getattr(serial.stats, name), rtol=1e-12
        )


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "VEV"])
@pytest.mark.parametrize(("chunk", "missing"), [(None, False), (37, False), (37, True)])
def test_e_step_cache_gives_the_same_statistics_as_a_fresh_pass(covariance_type, chunk, missing):
    """The EM loop's ``cache`` keeps the features of X between E-steps: later calls at
    other parameters must give what a pass without a cache gives (a cache keyed wrongly,
    e.g. one chunk's features for another, fails this)."""
    rng = np.random.default_rng(5)
    X = _data(2, missing=missing) - 5.0
    plan = plan_chunks(X, 3, covariance_type, chunk)
    cache: dict = {}
    for _ in range(3):
        params = _random_params(rng, 3, 2, covariance_type)
        cached = e_step(X, params, covariance_type, plan=plan, n_workers=1, cache=cache)
        fresh = e_step(X, params, covariance_type, plan=plan, n_workers=1)
        assert cached.log_likelihood == pytest.approx(fresh.log_likelihood, rel=1e-13)
        for name in ("n", "sum_x", "sum_xx"):
            np.testing.assert_allclose(
                getattr(cached.stats, name), getattr(fresh.stats, name), rtol=1e-13, atol=1e-12
            )
    complete_chunks = sum(pieces is None for pieces in plan.patterns)
    assert len(cache) == complete_chunks  # one feature map per chunk of complete rows
