"""Wall time of the four uncertainty methods on the same model: information, Laplace,
bootstrap and NUTS.

Configurations: Old Faithful (N = 272, D = 2) with K = 3 tied covariances, and a
simulated N = 2000, D = 5, K = 4 mixture with full covariances
(``make_mixture(2000, n_components=4, n_features=5, separation=4, random_state=0)``).

Per configuration, in one process, BLAS/OpenMP held to one thread
(``threadpool_limits(1)``; set ``OMP_NUM_THREADS=1`` etc. too):

- ``mle_fit`` / ``map_fit``: the point fits the methods start from
  (``GaussianMixture(K, tol=1e-8, n_init=5, random_state=0)``, MAP with
  ``prior='default', reg_covar=0``);
- ``information``: :func:`bayesgmm.observed_information` of the MLE;
- ``laplace``: :func:`bayesgmm.laplace` of the MAP, 4000 draws, with the per-observation
  log-likelihood (what LOO needs) and without (``laplace_no_loglik``);
- ``bootstrap``: :func:`bayesgmm.bootstrap` of the MLE, 200 replicates;
- ``nuts``: :class:`~bayesgmm.bayes.PosteriorGaussianMixture` (nutpie, 4 chains x
  (1000 tune + 1000 draws), MAP start), the whole ``fit`` (MAP fit, model build,
  compile, sampling, log-likelihood, relabelling).

Each method's time excludes the point fit it starts from, except ``nuts`` (whose fit
includes its own MAP fit). Ratios are against ``nuts`` in the same run.

Run::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_uncertainty.py
    python benchmarks/bench_uncertainty.py --quick   # smoke test: no NUTS, 20 replicates

Writes ``benchmarks/results/uncertainty.csv`` and ``uncertainty.txt`` (``--out DIR``).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _configs():
    from bayesgmm.datasets import load_faithful, make_mixture

    return [
        ("faithful K=3 tied", load_faithful(), 3, "tied"),
        (
            "N=2000 D=5 K=4 full",
            make_mixture(2000, n_components=4, n_features=5, separation=4, random_state=0).X,
            4,
            "full",
        ),
    ]


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


def _one(X, k: int, cov: str, quick: bool, n_boot: int) -> dict[str, float]:
    """Seconds per step for one configuration."""
    from bayesgmm import GaussianMixture, bootstrap, laplace, observed_information

    settings = {"covariance_type": cov, "tol": 1e-8, "n_init": 5, "random_state": 0}
    mle, t_mle = _timed(GaussianMixture(k, **settings).fit, X)
    map_fit, t_map = _timed(GaussianMixture(k, prior="default", reg_covar=0.0, **settings).fit, X)
    times = {"mle_fit": t_mle, "map_fit": t_map}
    _, times["information"] = _timed(observed_information, mle, X)
    _, times["laplace"] = _timed(laplace, map_fit, X, draws=4000, random_state=0)
    _, times["laplace_no_loglik"] = _timed(
        laplace, map_fit, X, draws=4000, log_likelihood=False, random_state=0
    )
    _, times["bootstrap"] = _timed(bootstrap, mle, X, n_boot=n_boot, random_state=0)
    if not quick:
        from bayesgmm.bayes import PosteriorGaussianMixture

        posterior = PosteriorGaussianMixture(k, covariance_type=cov, random_state=0)
        _, times["nuts"] = _timed(posterior.fit, X)
    return times


def run(quick: bool, n_boot: int) -> pd.DataFrame:
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, X, k, cov in _configs():
            times = _one(X, k, cov, quick, n_boot)
            for method, seconds in times.items():
                rows.append(
                    {"config": name, "N": len(X), "method": method, "seconds": round(seconds, 3)}
                )
            print(name, {m: round(t, 2) for m, t in times.items()}, flush=True)
    table = pd.DataFrame(rows)
    if not quick:
        nuts = table[table["method"] == "nuts"].set_index("config")["seconds"]
        table["vs_nuts"] = (table["seconds"] / table["config"].map(nuts)).round(4)
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    n_boot = 20 if args.quick else args.n_boot
    table = run(args.quick, n_boot)
    suffix = "_quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / f"uncertainty{suffix}.csv", index=False)
    wide = table.pivot(index="method", columns="config", values="seconds")
    text = (
        f"bench_uncertainty.py{' --quick' if args.quick else ''} "
        f"({platform.machine()}, {platform.python_version()}, BLAS 1 thread, "
        f"bootstrap {n_boot} replicates, NUTS 4 x (1000 + 1000), Laplace 4000 draws)\n"
        f"seconds per method:\n{wide.to_string()}\n"
    )
    if "vs_nuts" in table:
        ratio = table.pivot(index="method", columns="config", values="vs_nuts")
        text += f"\nratio to NUTS (same run):\n{ratio.to_string()}\n"
    (args.out / f"uncertainty{suffix}.txt").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
