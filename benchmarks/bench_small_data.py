"""Small-data study: maximum likelihood vs MAP (mclust's default prior).

For n in {10, 20, 50, 200} training points drawn from a known 3-component mixture in
d = 2 and d = 5, over many seeds, fit a 3-component full-covariance mixture by MLE
(default ``reg_covar=1e-6``) and by MAP (``prior='default'``), and score both on a large
held-out sample from the same mixture. Reports the held-out log-likelihood per point
(median and mean over seeds; the true mixture's value for reference) and how often each
fit fails (raises) or collapses (a covariance eigenvalue below 1e-3 of the smallest true
one, or a non-finite held-out log-likelihood).

Run: ``python benchmarks/bench_small_data.py [--seeds 50] [--out PATH]``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from bayesgmm import GaussianMixture
from bayesgmm.core.density import log_mixture_density
from bayesgmm.datasets import make_mixture

N_TRAIN = (10, 20, 50, 200)
DIMS = (2, 5)
K = 3


def truth(d: int):
    """The fixed true mixture for dimension d (drawn once with a fixed seed)."""
    return make_mixture(1, n_components=K, n_features=d, separation=4.0, random_state=100 + d)


def fit_and_score(method: str, X, X_test, seed: int, min_true_eig: float):
    prior = None if method == "MLE" else "default"
    gm = GaussianMixture(K, prior=prior, n_init=3, random_state=seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(X)
    except ValueError:
        return np.nan, "failed"
    score = gm.score(X_test)
    min_eig = np.linalg.eigvalsh(gm.covariances_).min()
    collapsed = min_eig < 1e-3 * min_true_eig or not np.isfinite(score)
    return score, "collapsed" if collapsed else "ok"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/small_data.csv"))
    args = parser.parse_args(argv)
    rows = []
    start = time.perf_counter()
    with threadpool_limits(1):
        for d in DIMS:
            true = truth(d)
            test = make_mixture(
                args.n_test,
                n_components=K,
                n_features=d,
                weights=true.params.weights,
                means=true.params.means,
                covariances=true.params.covariances,
                random_state=10_000,
            ).X
            ref = float(log_mixture_density(test, true.params, "full").mean())
            min_true_eig = np.linalg.eigvalsh(true.params.covariances).min()
            for n in N_TRAIN:
                for seed in range(args.seeds):
                    X = make_mixture(
                        n,
                        n_components=K,
                        n_features=d,
                        weights=true.params.weights,
                        means=true.params.means,
                        covariances=true.params.covariances,
                        random_state=seed,
                    ).X
                    for method in ("MLE", "MAP"):
                        score, status = fit_and_score(method, X, test, seed, min_true_eig)
                        rows.append(
                            {
                                "d": d,
                                "n": n,
                                "seed": seed,
                                "method": method,
                                "heldout": score,
                                "status": status,
                                "truth": ref,
                            }
                        )
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)

    def summarize(g):
        ok = g["status"] == "ok"
        scores = g["heldout"].fillna(-np.inf)
        return pd.Series(
            {
                "median_heldout": float(np.median(scores)),
                "mean_heldout_ok": float(g.loc[ok, "heldout"].mean()) if ok.any() else np.nan,
                "truth": g["truth"].iloc[0],
                "failed_%": 100 * (g["status"] == "failed").mean(),
                "collapsed_%": 100 * (g["status"] == "collapsed").mean(),
            }
        )

    summary = table.groupby(["d", "n", "method"]).apply(summarize, include_groups=False)
    wins = (
        table.pivot_table(index=["d", "n", "seed"], columns="method", values="heldout")
        .fillna(-np.inf)
        .assign(map_wins=lambda t: t["MAP"] > t["MLE"])
        .groupby(["d", "n"])["map_wins"]
        .mean()
        .mul(100)
        .rename("MAP better on % of seeds")
    )
    with pd.option_context("display.width", 120, "display.precision", 3):
        print(summary)
        print()
        print(wins)
    print(f"\n{len(table)} fits in {time.perf_counter() - start:.0f} s; rows in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
