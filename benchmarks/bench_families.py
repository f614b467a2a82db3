"""mclust's fourteen families: the BIC grid's cost, against the four-family grid.

Times ``select_model(X, range(1, 10), 'all', init_params='hc')`` (mclust's ``mclustBIC``:
14 families x K = 1..9 from mclust's hierarchical start, one start per cell, EM until
the mean log-likelihood per point changes by less than 1e-8, no ``reg_covar``) and the
same grid over scikit-learn's four
types (VVV, EEE, VVI, VII), on Old Faithful (272 x 2) and on a simulated mixture with
N = 10 000, D = 5 (4 components, ``make_mixture(..., random_state=0)``). Each grid runs
with the monotone repair (the default; ``--no-repair`` also without it); the table gives
the wall and CPU time of this process (best of ``--repeats``; on a busy machine the CPU
time is the steadier figure), the number of cells the repair refitted, the cells where the
log-likelihood falls with K (relative 1e-6), and the faithful grid's best model with its
BIC in mclust's sign (published: EEE, 3, -2314.3). BLAS and OpenMP are held to one
thread; the load average is printed, as the machine is shared.

Run: ``python benchmarks/bench_families.py [--data faithful sim] [--repeats 3]
[--no-repair] [--out benchmarks/results/families.csv]``. Not part of the test suite.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import bayesgmm  # noqa: E402
from bayesgmm import select_model  # noqa: E402
from bayesgmm.core import hc  # noqa: E402
from bayesgmm.core.covariance import COVARIANCE_TYPES  # noqa: E402
from bayesgmm.datasets import load_faithful, make_mixture  # noqa: E402

MCLUST = {"init_params": "hc", "n_init": 1, "tol": 1e-8, "max_iter": 2000, "reg_covar": 0.0}


def data(name: str):
    if name == "faithful":
        return load_faithful()
    return make_mixture(10_000, n_components=4, n_features=5, random_state=0).X


def falls(table: pd.DataFrame, rtol: float = 1e-6) -> int:
    grid = table.pivot(index="n_components", columns="covariance_type", values="log_likelihood")
    diff = grid.diff()
    return int((diff < -rtol * grid.shift().abs()).sum().sum())


def run(X, types, monotone: bool, repeats: int):
    times, cpu = [], []
    for _ in range(repeats):
        hc._CACHE.clear()  # every grid builds its own hierarchical tree
        start, start_cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sel = select_model(X, range(1, 10), types, monotone=monotone, random_state=0, **MCLUST)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(times), min(cpu), sel


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["faithful", "sim"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-repair", action="store_true", help="also time each grid with monotone=False"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/families.csv"))
    args = parser.parse_args(argv)

    print(
        f"bayesgmm {bayesgmm.__version__}, numpy {np.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()}; BLAS/OpenMP threads: 1"
    )
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    rows = []
    with threadpool_limits(1):
        for name in args.data:
            X = data(name)
            for label, types in (("14 families", "all"), ("4 types", list(COVARIANCE_TYPES))):
                for monotone in (True, False) if args.no_repair else (True,):
                    seconds, cpu_seconds, sel = run(X, types, monotone, args.repeats)
                    table = sel.table
                    best = table.loc[table["bic"].idxmin()]
                    rows.append(
                        {
                            "data": name,
                            "n": len(X),
                            "d": np.shape(X)[1],
                            "grid": label,
                            "cells": len(table),
                            "monotone": monotone,
                            "seconds": round(seconds, 3),
                            "cpu_seconds": round(cpu_seconds, 3),
                            "em_iterations": int(table["n_iter"].sum()),
                            "refitted": int((~table["start"].isin(["hc", ""])).sum()),
                            "falls": falls(table),
                            "failed": int((table["error"] != "").sum()),
                            "best": f"{best['mclust_name']},{int(best['n_components'])}",
                            "best_bic_mclust_sign": round(-float(best["bic"]), 2),
                        }
                    )
                    text = pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1)
                    print(text, flush=True)
    out = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False)
    for name in args.data:
        sub = out[(out["data"] == name) & out["monotone"]].set_index("grid")
        times = sub[["seconds", "cpu_seconds"]]
        ratio = times.loc["14 families"] / times.loc["4 types"]
        print(f"{name}: 14-family grid / 4-type grid (monotone): wall {ratio['seconds']:.2f}, "
              f"CPU {ratio['cpu_seconds']:.2f}")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
