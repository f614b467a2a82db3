"""Old Faithful's 14-family BIC grid: bayesgmm next to pymclustR and mclust's published cells.

pymclustR (PyPI, GPL-3, import name ``mclust_py``) is an outside reference only: it is
never a dependency of bayesgmm and none of its code is used here. It runs in a separate
interpreter given by ``--peer-python`` (e.g. a throwaway venv made with
``python3.12 -m venv /tmp/pymclust-venv && /tmp/pymclust-venv/bin/pip install pymclustR``),
in a child process that only calls its public ``Mclust(X, G=range(1, 10))`` (all 14
families, its defaults) and reports the wall/CPU time and its BIC table as JSON.

Our side: ``select_model(faithful, range(1, 10), 'all', init_params='hc', n_init=1,
tol=1e-8, max_iter=2000, reg_covar=0)`` (mclust's ``mclustBIC`` settings), best of
``--repeats``, BLAS/OpenMP held to one thread, with and without the monotone repair.

The table puts, per cell (K, family), mclust's published BIC (Fraley, Raftery, Murphy &
Scrucca 2012, TR 597, p. 8; the cells in ``tests/test_families.py``), pymclustR's and
ours (mclust's sign: higher is better), and the log-likelihoods, pymclustR's recovered
from its BIC as ``(BIC + df log n) / 2`` with mclust's parameter count ``df`` (the
same count as ours, :meth:`GaussianMixture.n_parameters`).

Run:
``python benchmarks/bench_pymclust.py --peer-python /tmp/pymclust-venv/bin/python``
(runs both; about 5 minutes for pymclustR), or ``--peer-only --peer-json FILE`` (only
pymclustR, results to FILE), then ``--peer-json FILE`` to reuse them. Not part of the
test suite.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: mclust's published faithful cells (TR 597, p. 8), as in tests/test_families.py.
PUBLISHED = {
    (1, "EII"): -4024.7, (1, "VII"): -4024.7, (1, "EEI"): -3055.8, (1, "VEI"): -3055.8,
    (1, "EVI"): -3055.8, (1, "VVI"): -3055.8, (1, "EEE"): -2607.6, (1, "EEV"): -2607.6,
    (1, "VEV"): -2607.6, (1, "VVV"): -2607.6, (2, "EII"): -3453.0, (2, "VII"): -3458.3,
    (2, "EEI"): -2354.6, (2, "VVI"): -2346.1, (2, "EEE"): -2325.2, (2, "VVV"): -2322.2,
    (3, "EEE"): -2314.3,
}  # fmt: skip

# Runs in the peer's interpreter: only pymclustR's documented entry point.
_PEER_CODE = r"""
import json, os, sys, time
import numpy as np
X = np.loadtxt(sys.argv[1], delimiter=",")
from importlib.metadata import version
from mclust_py import Mclust
start, start_cpu = time.perf_counter(), time.process_time()
fit = Mclust(X, G=range(1, int(os.environ.get("PEER_GMAX", "9")) + 1))
seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
bic = fit.BIC
out = {
    "version": version("pymclustR"),
    "seconds": seconds,
    "cpu_seconds": cpu,
    "index": [str(i) for i in bic.index],
    "columns": [str(c) for c in bic.columns],
    "values": np.asarray(bic, dtype=float).tolist(),
    "best": str(fit),
}
with open(sys.argv[2], "w") as fh:
    json.dump(out, fh)
"""


def run_peer(python: str, X: np.ndarray, out: Path) -> dict:
    """pymclustR's grid in ``python`` (a child process); its JSON, also written to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "faithful.csv"
        np.savetxt(data, X, delimiter=",", fmt="%.17g")
        load = os.getloadavg()
        tree_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            [python, "-c", _PEER_CODE, str(data), str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        )
        process_seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"pymclustR run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    result["load_before"] = load
    result["load_after"] = os.getloadavg()
    # The whole child process tree (interpreter start, imports, any worker processes it
    # waited for), not only the grid's own process as ``cpu_seconds``.
    result["process_seconds"] = process_seconds
    result["process_tree_cpu_seconds"] = (after.ru_utime - tree_cpu.ru_utime) + (
        after.ru_stime - tree_cpu.ru_stime
    )
    out.write_text(json.dumps(result, indent=1))
    return result


def peer_cells(peer: dict) -> dict[tuple[int, str], float]:
    """``{(K, family): BIC}`` from the peer's table, whichever way round it is laid out
    (mclust's: K down, families across)."""
    values = np.asarray(peer["values"], dtype=float)
    index, columns = peer["index"], peer["columns"]
    cells = {}
    if all(c.isdigit() for c in index):
        for i, k in enumerate(index):
            for j, name in enumerate(columns):
                cells[(int(k), name)] = values[i, j]
    else:
        for i, name in enumerate(index):
            for j, k in enumerate(columns):
                cells[(int(k), name)] = values[i, j]
    return cells


def ours(X, monotone: bool, repeats: int):
    from threadpoolctl import threadpool_limits

    from bayesgmm import select_model
    from bayesgmm.core import hc

    times, cpu = [], []
    with threadpool_limits(1):
        for _ in range(repeats):
            hc._CACHE.clear()
            start, start_cpu = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sel = select_model(
                    X, range(1, 10), "all", init_params="hc", n_init=1, tol=1e-8,
                    max_iter=2000, reg_covar=0.0, monotone=monotone, random_state=0,
                )  # fmt: skip
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return min(times), min(cpu), sel.table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", help="an interpreter where pymclustR is importable")
    parser.add_argument("--peer-json", type=Path, help="pymclustR's results (read or written)")
    parser.add_argument("--peer-only", action="store_true", help="only run pymclustR")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pymclust.csv"))
    args = parser.parse_args(argv)

    from bayesgmm.datasets import load_faithful

    X = load_faithful().to_numpy()
    n = X.shape[0]
    peer = None
    if args.peer_python:
        target = args.peer_json or Path(tempfile.mkdtemp()) / "pymclust.json"
        print(f"running pymclustR's Mclust(faithful, G=1..9) in {args.peer_python} ...")
        peer = run_peer(args.peer_python, X, target)
        print(f"wrote {target}")
    elif args.peer_json and args.peer_json.exists():
        peer = json.loads(args.peer_json.read_text())
    if peer is not None:
        print(
            f"pymclustR {peer['version']}: {peer['seconds']:.1f} s wall, "
            f"{peer['cpu_seconds']:.1f} s CPU in its process "
            f"({peer.get('process_tree_cpu_seconds', float('nan')):.1f} s CPU in its process "
            f"tree; load {peer['load_before'][0]:.2f} -> "
            f"{peer['load_after'][0]:.2f}); chose {peer['best']}"
        )
    else:
        print("pymclustR: not run (give --peer-python or an existing --peer-json)")
    if args.peer_only:
        return 0

    import bayesgmm
    from bayesgmm.core.covariance import get_covariance_model

    print(f"bayesgmm {bayesgmm.__version__}; load average {os.getloadavg()[0]:.2f}")
    timing = {}
    tables = {}
    for monotone in (True, False):
        seconds, cpu, table = ours(X, monotone, args.repeats)
        timing[monotone] = (seconds, cpu)
        tables[monotone] = table.set_index(["n_components", "mclust_name"])
        print(f"bayesgmm grid (monotone={monotone}): {seconds:.2f} s wall, {cpu:.2f} s CPU "
              f"(best of {args.repeats})")  # fmt: skip
    pcells = peer_cells(peer) if peer is not None else {}
    rows = []
    for (k, name), row in tables[True].iterrows():
        df = get_covariance_model(name).n_parameters(k, X.shape[1]) + k * X.shape[1] + k - 1
        peer_bic = pcells.get((k, name), np.nan)
        rows.append(
            {
                "K": k,
                "family": name,
                "df": df,
                "published_bic": PUBLISHED.get((k, name), np.nan),
                "ours_bic": -row["bic"],
                "ours_bic_no_repair": -tables[False].loc[(k, name), "bic"],
                "pymclust_bic": peer_bic,
                "ours_loglik": row["log_likelihood"],
                "ours_loglik_no_repair": tables[False].loc[(k, name), "log_likelihood"],
                "pymclust_loglik": (peer_bic + df * np.log(n)) / 2.0,
            }
        )
    out = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False, float_format="%.4f")
    pub = out.dropna(subset=["published_bic"])
    for col in ("ours_bic", "ours_bic_no_repair", "pymclust_bic"):
        hit = int((np.abs(pub[col] - pub["published_bic"]) < 0.1).sum())
        print(f"{col}: {hit} of {len(pub)} published cells within 0.1")
    diff = out["ours_loglik"] - out["pymclust_loglik"]
    if peer is not None:
        print(
            f"log-likelihood ours - pymclustR over {int(diff.notna().sum())} cells: "
            f"{int((diff > 1e-3).sum())} higher, {int((diff < -1e-3).sum())} lower, "
            f"{int((diff.abs() <= 1e-3).sum())} equal within 1e-3; "
            f"pymclustR / ours (with the repair): wall {peer['seconds'] / timing[True][0]:.0f}, "
            f"CPU {peer['cpu_seconds'] / timing[True][1]:.1f} (the two ran at different "
            "times: the wall ratio depends on the load then)"
        )
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(out.round(2).to_string(index=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
