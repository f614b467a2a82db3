"""Wall time of PosteriorGaussianMixture fits: cold process, same-shape refit, new N.

Issue 12's configuration: Old Faithful, K = 3, 'tied', 4 chains x (1000 tune + 1000
draws), ``random_state=0``. Each measurement runs in a fresh Python process whose
PyTensor compile dir and numba cache dir are new empty temporary directories (a cold
machine), unless ``--warm-disk`` reuses the previous process's caches. In that process:

1. first fit (everything cold: imports excluded, reported apart);
2. a second fit on other data of the same shape (a bootstrap resample of the rows);
3. a third fit with another N (200 rows), D and K unchanged;
4. a fourth with another K (2) and covariance type ('full').

Each line gives the wall time, the process CPU time (all threads: less sensitive than
wall time to other load on a shared machine) and ``timings_`` (MAP-EM, kernel load/compile, starts,
sampling, post-processing). ``--reference`` also runs the same fits through the PyMC
model (``pm.sample(nuts_sampler="nutpie")`` on ``build_model``, the path before the
kernel, forced by disabling the kernel) in its own cold process, for the ratio.

Run::

    python benchmarks/bench_posterior_speed.py [--reference] [--out PATH]

``--nan FRAC``: each data set gets a fraction ``FRAC`` of its cells set to NaN (no row
left empty); they sample on the kernel's missing-value callback (``--reference``: on
the PyMC model's masked likelihood), written to ``posterior_speed_nan.txt``, and the
cases become

1. first fit (cold);
2. same shape, other data (a bootstrap resample, a new NaN mask);
3. new N (200 rows, a new NaN mask);
4. other missingness patterns (only ``x1`` missing, in 5 rows);
5. new K=2, 'full' (a new structure: compiles).

``--sampler`` picks the sampler ('nutpie', the default, or 'pymc': ``pm.sample``,
which compiles its own functions for every fit). Each line then also shows
``bayesgmm.bayes._compiled.COMPILES`` after the fit (how many nutpie models this
process has compiled). ``--draws/--tune/--chains`` shorten the run.

Threads are pinned to 1 per chain (OMP/OpenBLAS/MKL = 1). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _with_nan(X, frac: float, rng):
    """``X`` with a fraction ``frac`` of its cells NaN, no row left empty."""
    import numpy as np

    X = X.copy()
    mask = rng.random(X.shape) < frac
    mask[mask.all(axis=1), 0] = False
    X[mask] = np.nan
    return X


def child(reference: bool, nan: float | None, sampler: str, sizes: dict) -> None:
    t0 = time.perf_counter()
    import warnings

    import numpy as np

    import bayesgmm.bayes.posterior as posterior_module
    from bayesgmm.bayes import PosteriorGaussianMixture, _compiled
    from bayesgmm.datasets import load_faithful

    t_import = time.perf_counter() - t0
    if reference:
        posterior_module.supports = lambda *args: False  # force the PyMC model path
    X = load_faithful().to_numpy()
    rng = np.random.default_rng(1)
    if nan is None:
        cases = [
            ("first fit (cold)", X, 3, "tied"),
            ("same shape, other data", X[rng.integers(len(X), size=len(X))], 3, "tied"),
            ("new N (200 rows)", X[rng.permutation(len(X))[:200]], 3, "tied"),
            ("new K=2, 'full'", X, 2, "full"),
        ]
    else:
        patterns = X.copy()
        patterns[:5, 1] = np.nan
        cases = [
            ("first fit (cold)", _with_nan(X, nan, rng), 3, "tied"),
            (
                "same shape, other data",
                _with_nan(X[rng.integers(len(X), size=len(X))], nan, rng),
                3,
                "tied",
            ),
            ("new N (200 rows)", _with_nan(X[rng.permutation(len(X))[:200]], nan, rng), 3, "tied"),
            ("other NaN patterns", patterns, 3, "tied"),
            ("new K=2, 'full'", _with_nan(X, nan, rng), 2, "full"),
        ]
    out = {"import_s": t_import, "fits": []}
    for label, data, k, cov in cases:
        post = PosteriorGaussianMixture(
            k, covariance_type=cov, random_state=0, progressbar=False, sampler=sampler, **sizes
        )
        t, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post.fit(data)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        diag = post.diagnostics_.xs("relabelled", level="draws")
        out["fits"].append(
            {
                "case": label,
                "wall_s": wall,
                "cpu_s": cpu,
                "timings": getattr(post, "timings_", {}),
                "backend": getattr(post, "backend_", "?"),
                "compiles": _compiled.COMPILES["nutpie"],
                "min_ess_bulk": float(diag["min_ess_bulk"].min()),
                "max_rhat": float(diag["max_rhat"].max()),
                "divergences": int(post.n_divergences_),
            }
        )
    print("RESULT " + json.dumps(out))


def run(reference: bool, cache: Path | None, extra: list[str] | None = None) -> dict:
    env = dict(os.environ)
    cache = cache or Path(tempfile.mkdtemp(prefix="bench_post_"))
    env.update(
        PYTENSOR_FLAGS=f"base_compiledir={cache / 'pytensor'}",
        NUMBA_CACHE_DIR=str(cache / "numba"),
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    args = [sys.executable, __file__, "--child"] + (["--reference"] if reference else [])
    args += extra or []
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["cache"] = str(cache)
    return result


def fmt(name: str, result: dict) -> list[str]:
    lines = [f"{name}: imports {result['import_s']:.1f} s (not counted below)"]
    for fit in result["fits"]:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in fit["timings"].items())
        backend = fit["backend"]
        if backend == "pymc":
            backend += f", nutpie compiles so far {fit['compiles']}"
        lines.append(
            f"  {fit['case']:<24} {fit['wall_s']:6.1f} s wall, {fit['cpu_s']:6.1f} s CPU "
            f"[{backend}] ({parts}); "
            f"min bulk ESS {fit['min_ess_bulk']:.0f}, max R-hat {fit['max_rhat']:.3f}, "
            f"{fit['divergences']} divergences"
        )
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help="also the PyMC-model path")
    parser.add_argument("--nan", type=float, default=None, help="fraction of cells NaN")
    parser.add_argument("--sampler", default="nutpie", choices=("nutpie", "pymc"))
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.out is None:
        name = "posterior_speed.txt" if args.nan is None else "posterior_speed_nan.txt"
        args.out = Path("benchmarks/results") / name
    sizes = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    if args.child:
        child(args.reference, args.nan, args.sampler, sizes)
        return
    extra = ["--sampler", args.sampler] + [f"--{k}={v}" for k, v in sizes.items()]
    if args.nan is not None:
        extra += ["--nan", str(args.nan)]
    load = os.getloadavg()
    what = "" if args.nan is None else f", {args.nan:.0%} of the cells NaN, sampler {args.sampler}"
    lines = [
        f"bayesgmm posterior wall times, Old Faithful K=3 tied{what}, {args.chains} chains x "
        f"({args.tune}+{args.draws}); load average at start {load[0]:.1f} on "
        f"{os.cpu_count()} CPUs"
    ]
    cold = run(False, None, extra)
    lines += fmt("new process, empty caches", cold)
    warm = run(False, Path(cold["cache"]), extra)
    lines += fmt("new process, caches from the run above", warm)
    if args.reference:
        lines += fmt("PyMC model (reference), new process, empty caches", run(True, None, extra))
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
