r"""Gaussian mixtures on Dask arrays: the chunk kernel mapped over blocks.

Each EM iteration runs :func:`bayesgmm.core.estep.e_step` on every block of rows
(where the block lives: on a ``distributed`` worker if a ``Client`` is open, else in
Dask's local scheduler) and adds the results up in a binary tree of tasks, so only
the objective and the statistics, ``K (1 + D + D(D+1)/2)`` numbers per block (a
``(K, D, D)`` array for full covariances), travel; the data never come to the
client. The M-step runs in the client, as in memory (:func:`bayesgmm.core.em.run_em`
with the mapped pass as its ``expectation``).

Initialization: from fully given ``weights_init``, ``means_init`` and
``precisions_init`` the fit is the in-memory fit from that start (to rounding). Else
each start runs ``init_params`` (k-means etc.) on a uniform random sample of
``min(N, max(10_000, 100 K))`` rows drawn with ``random_state``, then full EM on all
rows.

This module imports Dask; :mod:`bayesgmm.mixture` imports it only when it is given a
Dask collection (``pip install bayesgmm[dask]``).
"""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from bayesgmm._validation import (
    check_estimator_params,
    check_initial_params,
    check_random_state,
)
from bayesgmm.core.covariance import InnerControl
from bayesgmm.core.em import best_of_starts, run_em
from bayesgmm.core.estep import e_step
from bayesgmm.core.init import initial_params
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats
from bayesgmm.priors import GMMPrior

__all__ = ["as_dask_array", "dask_expectation", "fit_dask", "lazy_e_step"]

#: Rows of the sample that k-means (or another ``init_params``) sees.
INIT_SAMPLE_ROWS = 10_000


def as_dask_array(X) -> da.Array:
    """A 2-D float Dask array with one chunk along the features (a Dask DataFrame of
    numeric columns is converted with its partition lengths)."""
    if hasattr(X, "to_dask_array"):
        X = X.to_dask_array(lengths=True)
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D array (N, D); got a {X.ndim}-D Dask array.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def _block_expectation(block, params, covariance_type, weights):
    result = e_step(np.asarray(block), params, covariance_type, sample_weight=weights)
    return result.log_likelihood, result.stats


def _add(a, b):
    return a[0] + b[0], a[1] + b[1]


def _tree_sum(parts):
    """Pairwise sums of delayed ``(objective, stats)`` pairs, depth ``log2(blocks)``."""
    while len(parts) > 1:
        parts = [
            dask.delayed(_add)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    return parts[0]


def dask_expectation(X: da.Array, covariance_type: str, sample_weight: da.Array | None = None):
    """``expectation(params) -> (sum_n w_n log p(x_n), SufficientStats)`` over the blocks
    of ``X`` (computed on the active scheduler)."""
    blocks = X.to_delayed().ravel()
    weights = [None] * len(blocks) if sample_weight is None else sample_weight.to_delayed()

    def expectation(params: GMMParams) -> tuple[float, SufficientStats]:
        parts = [
            dask.delayed(_block_expectation)(b, params, covariance_type, w)
            for b, w in zip(blocks, weights, strict=True)
        ]
        objective, stats = dask.compute(_tree_sum(parts))[0]
        return float(objective), stats

    return expectation


def lazy_e_step(X: da.Array, params: GMMParams, covariance_type: str, what: str) -> da.Array:
    """``'log_prob_norm'`` (N,), ``'log_resp'`` or ``'resp'`` (N, K) as lazy Dask arrays."""
    from bayesgmm.core.density import log_mixture_density, responsibilities

    n_components = params.means.shape[0]
    if what == "log_prob_norm":
        return X.map_blocks(
            lambda b: log_mixture_density(b, params, covariance_type),
            drop_axis=1,
            dtype=np.float64,
        )

    def block_resp(b):
        log_resp = responsibilities(b, params, covariance_type)[1]
        return np.exp(log_resp) if what == "resp" else log_resp

    return X.map_blocks(block_resp, chunks=(X.chunks[0], (n_components,)), dtype=np.float64)


def _weighted_shift(X: da.Array, w: da.Array | None):
    """Weighted column means over the observed values, shape (D,), and ``has NaN``."""
    observed = ~da.isnan(X)
    filled = da.where(observed, X, 0.0)
    if w is None:
        sums, counts = filled.sum(axis=0, dtype=np.float64), observed.sum(axis=0)
    else:
        sums = (filled * w[:, None]).sum(axis=0, dtype=np.float64)
        counts = (observed * w[:, None]).sum(axis=0)
    sums, counts, missing = dask.compute(sums, counts, (~observed).any())
    return sums / counts, bool(missing)


def fit_dask(est, X, sample_weight=None) -> None:
    """Fit ``est`` (a :class:`bayesgmm.GaussianMixture`) on a Dask array ``X``."""
    check_estimator_params(est)
    X = as_dask_array(X)
    n_samples, n_features = X.shape
    if n_samples < est.n_components:
        raise ValueError(
            f"Expected at least n_components={est.n_components} samples, got "
            f"n_samples={n_samples}."
        )
    if isinstance(est.prior, str):
        raise ValueError(
            "prior='default' is built from the data in memory; for a Dask array pass a "
            "GMMPrior (e.g. GMMPrior.default on a sample of the data)."
        )
    w = None
    if sample_weight is not None:
        w = da.asarray(sample_weight).astype(np.float64).rechunk((X.chunks[0],))
    inits = check_initial_params(
        est.weights_init,
        est.means_init,
        est.precisions_init,
        est.n_components,
        n_features,
        est.covariance_type,
    )
    prior = est.prior
    if prior is not None:
        if not isinstance(prior, GMMPrior):
            raise ValueError(f"`prior` must be None or a GMMPrior; got {prior!r}.")
        prior.check(est.n_components, n_features, est.covariance_type)
    shift, missing = _weighted_shift(X, w)
    Xc = (X - shift.astype(X.dtype)).astype(X.dtype)
    prior_c = None if prior is None else prior.shifted(shift)
    total_weight = float(n_samples) if w is None else float(w.sum().compute())
    expectation = dask_expectation(Xc, est.covariance_type, w)
    rng = check_random_state(est.random_state)
    given = all(v is not None for v in inits)
    means_init = None if inits[1] is None else inits[1] - shift
    sample = sample_w = None
    control = InnerControl(float(est.inner_tol), int(est.inner_max_iter))

    def one_start(init: int):
        nonlocal sample, sample_w
        if sample is None and not given:
            size = min(n_samples, max(INIT_SAMPLE_ROWS, 100 * est.n_components))
            rows = np.sort(rng.choice(n_samples, size=size, replace=False))
            sample = np.asarray(Xc[rows].compute())
            sample_w = None if w is None else np.asarray(w[rows].compute())
            if missing:
                sample = np.nan_to_num(sample, nan=0.0)
        params0 = initial_params(
            sample,
            est.n_components,
            est.covariance_type,
            method=est.init_params,
            rng=rng,
            reg_covar=est.reg_covar,
            prior=prior_c,
            sample_weight=sample_w,
            weights_init=inits[0],
            means_init=means_init,
            precisions_init=inits[2],
            control=control,
        )
        return run_em(
            np.empty((n_samples, 0)),  # only its number of rows is used
            params0,
            covariance_type=est.covariance_type,
            tol=est.tol,
            max_iter=est.max_iter,
            reg_covar=est.reg_covar,
            prior=prior_c,
            sample_weight=None if w is None else np.array([total_weight]),
            init=init,
            control=control,
            expectation=expectation,
        )

    best, failures = best_of_starts(1 if given else est.n_init, one_start)
    for err in failures:
        warnings.warn(f"Start {err.init} was discarded: {err}", ConvergenceWarning, stacklevel=3)
    if not best.converged and est.max_iter > 0:
        warnings.warn(
            f"The best of the starts did not converge in max_iter={est.max_iter} iterations.",
            ConvergenceWarning,
            stacklevel=3,
        )
    est.n_features_in_ = n_features
    est._set_params(best.params.shift_means(shift))
    est.prior_ = prior
    est.converged_ = bool(best.converged)
    est.n_iter_ = best.n_iter
    est.lower_bound_ = best.lower_bound
    est.lower_bounds_ = best.lower_bounds
