"""Running nutpie on the numba kernel: one sampler per chain, each from its own start.

nutpie takes one initial-point function for all the chains of a run, so to give every
chain its own start (and keep the draws a function of the seed) each chain is its own
nutpie run, all started at once (one thread each) and joined. The compiled callbacks are
shared: starting a run costs no compilation.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import xarray as xr

from bayesgmm.bayes._kernel import KernelModel, to_constrained
from bayesgmm.core.covariance import get_covariance_model

__all__ = [
    "ChainProgress",
    "mean_responsibilities",
    "pointwise_log_likelihood",
    "progress_default",
    "run_chains",
    "sample_each",
]


def progress_default() -> bool:
    """Progress output by default only on an interactive terminal, never under pytest."""
    if "PYTEST_CURRENT_TEST" in os.environ:
        return False
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class ChainProgress:
    """One status line on stderr for all chains: draws done, warm-up or sampling,
    divergences so far (updated from nutpie's progress callbacks)."""

    def __init__(self, chains: int, total: int, stream=None) -> None:
        self.done = [0] * chains
        self.divergences = [0] * chains
        self.tuning = [True] * chains
        self.total = total * chains
        self.stream = stream if stream is not None else sys.stderr
        self.lock = threading.Lock()
        self.start = time.perf_counter()
        self.chains = chains

    def callback(self, chain: int):
        def update(progress_list) -> None:
            p = progress_list[0]
            with self.lock:
                self.done[chain] = int(p.finished_draws)
                self.divergences[chain] = int(p.divergences)
                self.tuning[chain] = bool(p.tuning)
                self.show()

        return update

    def show(self, final: bool = False) -> None:
        phase = "warm-up" if any(self.tuning) else "sampling"
        line = (
            f"\rNUTS: {self.chains} chains, {sum(self.done)}/{self.total} draws ({phase}), "
            f"{sum(self.divergences)} divergences, {time.perf_counter() - self.start:.0f} s"
        )
        self.stream.write(line + ("\n" if final else ""))
        self.stream.flush()


def sample_each(
    compiled: list,
    *,
    draws: int,
    tune: int,
    seeds: list[int],
    target_accept: float,
    progressbar: bool,
) -> tuple[list, float]:
    """One single-chain nutpie run per compiled model (chain ``c``: ``compiled[c]``, which
    carries its own start, with ``seeds[c]``), all concurrent; nutpie gives every chain of
    one run the same start, so dispersed starts need a run each. Returns the runs'
    results (DataTrees, in chain order) and the wall time of the sampling."""
    import nutpie

    progress = ChainProgress(len(compiled), draws + tune) if progressbar else None
    t0 = time.perf_counter()
    runs = [
        nutpie.sample(
            model,
            draws=draws,
            tune=max(tune, 1),  # nuts-rs needs at least one tuning step
            chains=1,
            cores=1,
            seed=int(seeds[c]),
            save_warmup=False,
            progress_bar=False,
            progress_callback=None if progress is None else progress.callback(c),
            blocking=False,
            target_accept=target_accept,
        )
        for c, model in enumerate(compiled)
    ]
    results = [run.wait() for run in runs]
    seconds = time.perf_counter() - t0
    if progress is not None:
        progress.show(final=True)
    return results, seconds


def run_chains(
    model: KernelModel,
    starts: np.ndarray,
    *,
    draws: int,
    tune: int,
    seeds: list[int],
    target_accept: float,
    progressbar: bool,
) -> tuple[np.ndarray, xr.Dataset, float]:
    """Sample ``len(starts)`` chains, chain ``c`` from ``starts[c]`` with ``seeds[c]``.

    Returns
    -------
    theta : ndarray of shape (chains, draws, n_dim)
        The unconstrained draws.
    sample_stats : xarray.Dataset
        nutpie's statistics (``diverging``, ``lp``, ``step_size``, ...), dims
        (chain, draw).
    seconds : float
        Wall time of the sampling.
    """
    results, seconds = sample_each(
        [model.compiled(start) for start in starts],
        draws=draws,
        tune=tune,
        seeds=seeds,
        target_accept=target_accept,
        progressbar=progressbar,
    )
    chains = len(starts)
    theta = np.concatenate([r["posterior"].to_dataset()["theta"].values for r in results], axis=0)
    stats = [r["sample_stats"].to_dataset() for r in results]
    keep = [v for v in stats[0].data_vars if set(stats[0][v].dims) <= {"chain", "draw"}]
    sample_stats = xr.concat([s[keep] for s in stats], dim="chain", coords="minimal")
    sample_stats = sample_stats.assign_coords(chain=np.arange(chains))
    return theta, sample_stats, seconds


def _log_weighted_chunks(X, weights, means, covariances, covariance_type, max_floats):
    """Yield (slice of draws, log pi_k + log N(x_n | mu_k, Sigma_k) of shape (s, k, n)),
    draws flattened, in chunks of at most ``max_floats`` numbers per (s, k, n) array.

    The draws' components of a chunk are one big mixture for the EM engine's
    feature-map kernel (:mod:`bayesgmm.core.kernels`): the features of the centred data
    are built once, and each chunk's log densities are one GEMM (s k, F) x (F, n)."""
    from bayesgmm.core.kernels import diagonal_feature_kernel, quadratic_feature_kernel

    k = weights.shape[-1]
    n, d = X.shape
    lead = weights.shape[:-1]
    # the storage layout, from the core table's dims (mclust's names and the diagonal
    # families store like the four scikit-learn types)
    storage = {
        ("component", "feature", "feature_bis"): "full",
        ("feature", "feature_bis"): "tied",
        ("component", "feature"): "diag",
        ("component",): "spherical",
    }[get_covariance_model(covariance_type).dims]
    w = weights.reshape(-1, k)
    mu = means.reshape(-1, k, d)
    cov = covariances.reshape(-1, *covariances.shape[len(lead) :])
    n_draws = w.shape[0]
    center = X.mean(axis=0)  # the expansion's accuracy needs centred data
    Xc = X - center
    phi = None
    step = max(1, int(max_floats // max(1, k * n)))
    for lo in range(0, n_draws, step):
        sl = slice(lo, min(lo + step, n_draws))
        m = sl.stop - sl.start
        centred_means = (mu[sl] - center).reshape(m * k, d)
        if storage in ("full", "tied"):
            c = cov[sl] if storage == "full" else np.broadcast_to(cov[sl][:, None], (m, k, d, d))
            L = np.linalg.cholesky(c.reshape(m * k, d, d))
            U = np.swapaxes(np.linalg.inv(L), -1, -2)  # precision Cholesky, P = U U^T
            log_det = -np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)  # log |U|
            kernel = quadratic_feature_kernel(centred_means, U, log_det, False, np.float64)
        else:
            var = cov[sl] if storage == "diag" else cov[sl][:, :, None]
            var = np.broadcast_to(var, (m, k, d)).reshape(m * k, d)
            log_det = -0.5 * np.log(var).sum(-1)
            kernel = diagonal_feature_kernel(centred_means, var**-0.5, log_det, np.float64)
        if phi is None:
            phi = kernel.features(Xc)  # the same for every chunk (one storage)
        log_gauss = kernel.log_gaussian_from_features(phi).reshape(m, k, n)
        yield sl, np.log(w[sl])[:, :, None] + log_gauss


def pointwise_log_likelihood(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    covariance_type: str,
    max_floats: int = 2_000_000,
) -> np.ndarray:
    """``log p(x_n | theta_s)`` for draws ``s`` (leading axes) and complete rows ``n``."""
    lead = weights.shape[:-1]
    out = np.empty((int(np.prod(lead)), X.shape[0]))
    for sl, lw in _log_weighted_chunks(
        X, weights, means, covariances, covariance_type, max_floats
    ):
        top = lw.max(axis=1)
        lw -= top[:, None]  # in place: lw is this chunk's own array
        np.exp(lw, out=lw)
        total = lw.sum(axis=1)
        np.log(total, out=total)
        out[sl] = total + top
    return out.reshape(*lead, X.shape[0])


def mean_responsibilities(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    covariance_type: str,
    max_floats: int = 2_000_000,
) -> np.ndarray:
    """Responsibilities averaged over the draws (leading axes flattened), (N, K)."""
    total = np.zeros((X.shape[0], weights.shape[-1]))
    count = 0
    for _sl, lw in _log_weighted_chunks(
        X, weights, means, covariances, covariance_type, max_floats
    ):
        resp = np.exp(lw - lw.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        total += resp.sum(axis=0).T
        count += lw.shape[0]
    return total / count


def decode(theta: np.ndarray, covariance_type: str, n_components: int, n_features: int):
    """Unconstrained draws -> (weights, means, covariances) arrays."""
    return to_constrained(theta, covariance_type, n_components, n_features)
