"""Empirical coverage of the 90% intervals of the uncertainty methods (issue 13).

Design: K = 2, D = 1, 'full' covariances. Parameters are drawn from a proper prior,
data from the mixture, each method fits with that same prior, and each fit is
relabelled to the truth -- all by :func:`bayesgmm.validation.sbc`; the truth is inside
a method's equal-tailed 90% interval when its rank among the draws lies in the
central 90% (:func:`bayesgmm.validation.covered`). So the coverage is Bayesian
coverage averaged over the prior: exactly 0.90 for an exact posterior (NUTS) at every
N, while the frequentist methods (information, bootstrap) reach it only as N grows.

Prior (the one of ``tests/test_sbc.py``'s NUTS check): weights ~ Dirichlet(5, 5);
means mu_k | Sigma_k ~ N(0, Sigma_k / 0.02) (prior sd of a mean ~7 component sds, so
the two components are usually well separated, which the relabelling needs); variance
~ InvWishart(4, 1). Drawn rather than fixed so that NUTS's 0.90 is exact and not only
asymptotic, and so that the table averages over many configurations.

Methods (names of :data:`bayesgmm.validation.SBC_METHODS`): ``information`` (normal
draws N(MAP, se^2) per element, 199 of them: its 90% interval is the Wald interval up
to draw noise), ``laplace`` (:func:`bayesgmm.laplace` at the MAP, 199 draws),
``laplace_mode`` (``center='mode'``), ``bootstrap`` (99 replicates of the MAP fit),
``nuts`` (2 chains x (500 tune + 500 draws), thinned to 199).

Monte Carlo SE: per simulation, the share of covered elements (of a group); the SE is
the sd of those shares over simulations / sqrt(n_sims) (elements of one data set are
correlated, simulations are independent).

Run (each call writes its raw hits to ``results/coverage_raw_<tag>.csv``; the table is
built from all raw files present; give each run its own ``--tag`` and ``--seed``)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_coverage.py \\
        --sims 100 --n 50 200 1000 --methods nuts information laplace laplace_mode --tag a
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_coverage.py \\
        --sims 100 --n 50 200 --methods bootstrap --tag b
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_coverage.py \\
        --sims 100 --n 1000 --methods bootstrap --tag c
    python benchmarks/bench_coverage.py --table-only

(about 5 min for the first run, 10 and 7 min for the bootstrap runs, on a shared
2-core machine, two runs at a time).

Writes ``benchmarks/results/coverage.txt`` and ``coverage.csv``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior
from bayesgmm.validation import SBC_METHODS, covered, sbc

PROB = 0.9
PRIOR = GMMPrior(
    DirichletPrior(5.0),
    NormalMeanPrior(np.zeros(1), shrinkage=0.02),
    CovariancePrior(4.0, np.eye(1)),
)
N_DRAWS = {"bootstrap": 99}  # replicates; the others 199 draws
GROUPS = ("all", "weights", "means", "covariances")


def run_cell(method: str, n_obs: int, n_sims: int, seed: int, n_init: int = 1) -> pd.DataFrame:
    """Long frame of hits: method, n_obs, sim, element, covered."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n_draws = N_DRAWS.get(method, 199)
        result = sbc(2, 1, "full", PRIOR, n_obs=n_obs, n_sims=n_sims, n_draws=n_draws,
                     method=method, n_init=n_init, random_state=seed)  # fmt: skip
    hits = covered(result, PROB)
    long = hits.reset_index(names="sim").melt(
        id_vars="sim", var_name="element", value_name="covered"
    )
    long.insert(0, "n_obs", n_obs)
    long.insert(0, "method", method)
    long["n_failed"] = result.n_failed
    return long


def table(raw: pd.DataFrame) -> pd.DataFrame:
    raw = raw.assign(group=raw["element"].str.split("[", n=1).str[0])
    rows = []
    for (method, n_obs), cell in raw.groupby(["method", "n_obs"]):
        row = {"method": method, "n_obs": n_obs, "n_sims": cell["sim"].nunique(),
               "n_failed": int(cell["n_failed"].max())}  # fmt: skip
        for group in GROUPS:
            part = cell if group == "all" else cell[cell["group"] == group]
            per_sim = part.groupby("sim")["covered"].mean()
            row[group] = per_sim.mean()
            row[f"{group}_se"] = per_sim.std(ddof=1) / np.sqrt(len(per_sim))
        rows.append(row)
    order = {m: i for i, m in enumerate(SBC_METHODS)}
    out = pd.DataFrame(rows)
    return out.sort_values(
        ["method", "n_obs"], key=lambda c: c.map(order) if c.name == "method" else c
    )


def render(tab: pd.DataFrame) -> str:
    lines = [
        f"Coverage of equal-tailed {PROB:.0%} intervals, K=2, D=1, full; truths from the prior",
        "(Dirichlet(5), mu|Sigma ~ N(0, Sigma/0.02), Sigma ~ IW(4, 1)); coverage (MC SE)",
        "",
        f"{'method':<13}{'N':>6}{'sims':>6}  " + "".join(f"{g:>16}" for g in GROUPS),
    ]
    for _, r in tab.iterrows():
        cells = "".join(f"{r[g]:>9.3f} ({r[g + '_se']:.3f})" for g in GROUPS)
        lines.append(f"{r['method']:<13}{r['n_obs']:>6}{r['n_sims']:>6}  {cells}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=50)
    parser.add_argument("--n", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--methods", nargs="+", default=list(SBC_METHODS), choices=SBC_METHODS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="all")
    parser.add_argument("--n-init", type=int, default=1, help="EM starts of the MAP fits")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        frames = []
        for n_obs in args.n:
            for method in args.methods:
                start = time.perf_counter()
                # one seed per N: every method sees the same truths and data sets
                frames.append(run_cell(method, n_obs, args.sims, args.seed + n_obs, args.n_init))
                print(f"{method} N={n_obs}: {time.perf_counter() - start:.0f} s", flush=True)
                pd.concat(frames).to_csv(args.out / f"coverage_raw_{args.tag}.csv", index=False)
    # simulations of different runs (tags, seeds) are different data sets
    raw = pd.concat(
        pd.read_csv(p).assign(sim=lambda f, tag=p.stem: tag + ":" + f["sim"].astype(str))
        for p in sorted(args.out.glob("coverage_raw_*.csv"))
    )
    tab = table(raw)
    tab.to_csv(args.out / "coverage.csv", index=False, float_format="%.4f")
    text = render(tab)
    (args.out / "coverage.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
