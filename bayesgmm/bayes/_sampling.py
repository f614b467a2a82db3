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

# the pointwise log-likelihood and mean memberships of draws live with the rest of the
# post-processing (one pass over the draws); re-exported here for their callers
from bayesgmm.bayes._postprocess import mean_responsibilities, pointwise_log_likelihood

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


def decode(theta: np.ndarray, covariance_type: str, n_components: int, n_features: int):
    """Unconstrained draws -> (weights, means, covariances) arrays."""
    return to_constrained(theta, covariance_type, n_components, n_features)
