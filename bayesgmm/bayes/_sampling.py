"""Running nutpie on the numba kernel: one sampler per chain, each from its own start.

nutpie takes one initial-point function for all the chains of a run, so to give every
chain its own start (and keep the draws a function of the seed) each chain is its own
nutpie run, all started at once (one thread each) and joined. The compiled callbacks are
shared: starting a run costs no compilation.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import NamedTuple

import numpy as np
import xarray as xr

from bayesgmm.bayes._kernel import KernelModel, to_constrained

# the pointwise log-likelihood and mean memberships of draws live with the rest of the
# post-processing (one pass over the draws); re-exported here for their callers
from bayesgmm.bayes._postprocess import mean_responsibilities, pointwise_log_likelihood

__all__ = [
    "ChainProgress",
    "RawRun",
    "mean_responsibilities",
    "pointwise_log_likelihood",
    "progress_default",
    "read_raw",
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
    raw: bool = False,
) -> tuple[list, float]:
    """One single-chain nutpie run per compiled model (chain ``c``: ``compiled[c]``, which
    carries its own start, with ``seeds[c]``), all concurrent; nutpie gives every chain of
    one run the same start, so dispersed starts need a run each. Returns the runs'
    results in chain order and the wall time of the sampling (nutpie's conversion of
    the traces included).

    The results are nutpie's DataTrees, or with ``raw`` its arrow traces, each as a
    :class:`RawRun` (no conversion: :func:`read_raw` reads them).
    """
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
            return_raw_trace=raw,
        )
        for c, model in enumerate(compiled)
    ]
    if raw:
        results = [RawRun(run.wait(), _settings_json(run)) for run in runs]
    else:
        results = [run.wait() for run in runs]
    seconds = time.perf_counter() - t0
    if progress is not None:
        progress.show(final=True)
    return results, seconds


class RawRun(NamedTuple):
    """One nutpie run's raw result: its trace (``nutpie``'s ``PyTrace``, arrow record
    batches; nutpie hands them out once: a second ``get_arrow_trace`` raises) and its
    settings as nutpie records them (JSON; None if unavailable)."""

    trace: object
    settings: str | None


def _settings_json(run) -> str | None:
    # what nutpie's own conversion stores as the ``inference_library_settings`` attribute
    settings = getattr(run, "_settings", None)
    return None if settings is None else json.dumps(settings.as_dict())


def _layout_error(chain: int, what: str) -> RuntimeError:
    import nutpie

    return RuntimeError(
        f"nutpie {nutpie.__version__}'s raw trace of chain {chain} is not laid out as "
        f"expected: {what}. bayesgmm reads the draws and sample statistics from nutpie's "
        "arrow batches (one batch per single-chain run, a 'theta' list column, scalar "
        "statistics, tuning rows first); a nutpie release that changed that layout is "
        "not supported."
    )


def _column(batch, name: str, chain: int):
    if name not in batch.schema.names:
        raise _layout_error(chain, f"no column {name!r} (columns: {batch.schema.names})")
    return batch.column(name)


def read_raw(results: list[RawRun], draws: int) -> tuple[np.ndarray, xr.Dataset]:
    """The unconstrained draws and the (chain, draw) sample statistics of single-chain
    nutpie runs' raw traces, posterior draws only (the rows with ``tuning`` False).

    The same arrays as nutpie's conversion to a DataTree (``_arrow_to_arviz``) followed
    by keeping ``posterior.theta`` and the sample statistics without extra dimensions
    (values, dtypes, missing values as NaN / None), and the same attributes (the
    first chain's), without building the warm-up groups and per-variable DataArrays.

    Raises
    ------
    RuntimeError
        If a trace is not laid out as expected (see the message).
    """
    import arviz_base
    import nutpie
    import pyarrow

    thetas, columns = [], {}
    names = None
    for c, result in enumerate(results):
        draw_batches, stat_batches = result.trace.get_arrow_trace()
        if len(draw_batches) != 1 or len(stat_batches) != 1:
            raise _layout_error(
                c, f"{len(draw_batches)} draw and {len(stat_batches)} stat batches, not 1 and 1"
            )
        # pyarrow's record batches (nutpie hands arro3's; the C data interface, no copy)
        draw, stat = (pyarrow.record_batch(b[0]) for b in (draw_batches, stat_batches))
        if draw.num_rows != stat.num_rows:
            raise _layout_error(c, f"{draw.num_rows} draw rows and {stat.num_rows} stat rows")
        tuning = _column(stat, "tuning", c).to_numpy(zero_copy_only=False)
        n_tune = int(tuning.sum())
        if tuning[:n_tune].sum() != n_tune or stat.num_rows - n_tune != draws:
            raise _layout_error(
                c,
                f"{stat.num_rows} rows of which {n_tune} tuning, expected the tuning rows "
                f"first and then {draws} draws",
            )
        theta = _column(draw, "theta", c)
        if not (pyarrow.types.is_list(theta.type) or pyarrow.types.is_large_list(theta.type)):
            raise _layout_error(c, f"'theta' is {theta.type}, not a list column")
        theta = theta.slice(n_tune)
        values = theta.flatten().to_numpy(zero_copy_only=False)
        if theta.null_count or values.size % draws:
            raise _layout_error(c, "'theta' has missing or ragged draws")
        thetas.append(values.reshape(draws, -1))
        kept = [
            name
            for name in stat.schema.names
            if name not in ("chain", "draw")  # nutpie's conversion drops them too
            and not pyarrow.types.is_nested(stat.schema.field(name).type)
            and b"shape" not in (stat.schema.field(name).metadata or {})
        ]
        if names is None:
            names = kept
        elif kept != names:
            raise _layout_error(c, f"statistics {kept}, chain 0 had {names}")
        for name in names:
            columns.setdefault(name, []).append(_column(stat, name, c).slice(n_tune))
    chains = len(results)
    stats = {}
    for name, parts in columns.items():
        dtype = parts[0].type.to_pandas_dtype()
        # as nutpie's _add_arrow_data: NaN / None where a value is missing
        if dtype in (np.float64, np.float32):
            data = np.full((chains, draws), np.nan, dtype=dtype)
        elif dtype == np.dtype("O"):
            data = np.full((chains, draws), None, dtype=dtype)
        else:
            data = np.zeros((chains, draws), dtype=dtype)
        for c, col in enumerate(parts):
            values = col.to_numpy(zero_copy_only=False)
            if col.null_count == 0:
                data[c] = values
            else:
                valid = ~col.is_null().to_numpy(zero_copy_only=False)
                data[c][valid] = values[valid] if values.shape[0] == draws else values
        if data.dtype == object:
            # xarray passes object arrays through pandas, whose string inference turns
            # None into NaN where an array holds a string (a divergence message): as
            # nutpie's conversion, array by array, so per chain, then joined
            stats[name] = xr.Variable.concat(
                [xr.Variable(("chain", "draw"), data[c : c + 1]) for c in range(chains)],
                dim="chain",
            )
        else:
            stats[name] = (("chain", "draw"), data)
    attrs = arviz_base.make_attrs(sample_dims=["chain", "draw"])
    attrs.update(
        inference_library="nutpie",
        inference_library_version=nutpie.__version__,
    )
    if results[0].settings is not None:
        attrs["inference_library_settings"] = results[0].settings
    sample_stats = xr.Dataset(
        stats,
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
        attrs=attrs,
    )
    return np.stack(thetas), sample_stats


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

    The draws and statistics are read from nutpie's raw arrow traces
    (:func:`read_raw`): nutpie's conversion to a DataTree per chain cost about as much
    as the sampling itself at Old Faithful scale.

    Returns
    -------
    theta : ndarray of shape (chains, draws, n_dim)
        The unconstrained draws.
    sample_stats : xarray.Dataset
        nutpie's statistics (``diverging``, ``logp``, ``step_size``, ...), dims
        (chain, draw).
    seconds : float
        Wall time of the sampling (reading the traces included).
    """
    results, seconds = sample_each(
        [model.compiled(start) for start in starts],
        draws=draws,
        tune=tune,
        seeds=seeds,
        target_accept=target_accept,
        progressbar=progressbar,
        raw=True,
    )
    t0 = time.perf_counter()
    theta, sample_stats = read_raw(results, draws)
    # as when nutpie's conversion ran inside the sampling's time
    return theta, sample_stats, seconds + time.perf_counter() - t0


def decode(theta: np.ndarray, covariance_type: str, n_components: int, n_features: int):
    """Unconstrained draws -> (weights, means, covariances) arrays."""
    return to_constrained(theta, covariance_type, n_components, n_features)
