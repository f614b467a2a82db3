"""Benchmark: EM on a Dask array on a LocalCluster against the in-memory fit.

What it measures
----------------
* The data of ``bench_em_vs_sklearn.py`` (``make_data``) at ``--n`` rows, ``--d``
  features, ``--k`` components, full covariances, and its shared start.
* In memory: time per EM iteration of ``GaussianMixture.fit`` (BLAS pinned to
  ``--threads``), as ``(t(2 m) - t(m)) / m`` for ``m = --iters`` iterations, so that
  validation, centering and the final E-step cancel; median of ``--repeats``.
* Dask: a ``distributed.LocalCluster`` with ``--workers`` worker processes x 1 thread,
  the array persisted on the workers in blocks of ``--block`` rows; the same
  difference of two fits. Reported: seconds per iteration and the ratio to in memory.
* Out of core (``--zarr-n`` rows, 0 to skip): the array written to a Zarr store in a
  temporary folder, workers with ``--memory-limit`` each (below the data's size), a fit
  read from Zarr every iteration; seconds per iteration.

How to run
----------
::

    .venv/bin/python benchmarks/bench_dask.py --n 1000000 --iters 3 --repeats 2

Not part of the test suite; needs the ``dask`` extra.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em_vs_sklearn import make_data, make_init

from bayesgmm import GaussianMixture


def _fit_seconds(X, k, init, iters) -> float:
    weights, means, precisions = init
    est = GaussianMixture(
        k,
        tol=0.0,
        max_iter=iters,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
    )
    t0 = time.perf_counter()
    est.fit(X)
    return time.perf_counter() - t0


def per_iteration(X, k, init, iters, repeats) -> float:
    diffs = []
    for _ in range(repeats):
        short = _fit_seconds(X, k, init, iters)
        long = _fit_seconds(X, k, init, 2 * iters)
        diffs.append((long - short) / iters)
    return statistics.median(diffs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--block", type=int, default=125_000)
    parser.add_argument("--zarr-n", type=int, default=4_000_000)
    parser.add_argument("--memory-limit", default="250MB")
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        default=32 * 2**20,
        help="MALLOC_MMAP_THRESHOLD_ for the worker processes (0: Dask's environment "
        "as is). distributed sets MALLOC_TRIM_THRESHOLD_, which switches off glibc's "
        "dynamic mmap threshold, so every chunk-sized temporary (about 1 MB) is a fresh "
        "mmap with page faults: measured 0.065 s per 125,000-row block, 0.044 s with 32 MB",
    )
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args(argv)
    if args.mmap_threshold:
        dask.config.set(
            {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": args.mmap_threshold}
        )
    warnings.simplefilter("ignore", ConvergenceWarning)
    X = make_data(args.n, args.d, args.k, args.seed)
    init = make_init(X, args.k, "full", args.seed)
    with threadpool_limits(args.threads):
        memory = per_iteration(X, args.k, init, args.iters, args.repeats)
    print(f"in memory ({args.threads} BLAS thread): {memory:.3f} s/iteration")
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        Xd = da.from_array(X, chunks=(args.block, args.d)).persist()
        client.wait_for_workers(args.workers)
        dask_s = per_iteration(Xd, args.k, init, args.iters, args.repeats)
    print(
        f"dask, LocalCluster {args.workers} workers x 1 thread, blocks of {args.block} rows: "
        f"{dask_s:.3f} s/iteration, {dask_s / memory:.2f} x in memory"
    )
    if args.zarr_n:
        big = make_data(args.zarr_n, args.d, args.k, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            store = str(Path(tmp) / "x.zarr")
            da.from_array(big, chunks=(args.block, args.d)).to_zarr(store)
            size_mb = big.nbytes / 1e6
            del big
            with (
                LocalCluster(
                    n_workers=args.workers,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit=args.memory_limit,
                    dashboard_address=None,
                ) as cluster,
                Client(cluster),
            ):
                Xz = da.from_zarr(store)
                zinit = make_init(Xz[: args.n].compute(), args.k, "full", args.seed)
                zarr_s = per_iteration(Xz, args.k, zinit, args.iters, 1)
        print(
            f"out of core: {args.zarr_n} rows ({size_mb:.0f} MB) from Zarr, workers limited "
            f"to {args.memory_limit} each: {zarr_s:.3f} s/iteration"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
