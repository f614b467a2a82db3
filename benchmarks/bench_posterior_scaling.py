"""How the posterior kernel's gradient cost grows with N, and a fit at N = 10 000.

Issue 12: at N = 10 000, D = 3, K = 3 ('full') report the wall time of a
``PosteriorGaussianMixture`` fit, and how the per-gradient cost grows with N, in µs per
row per gradient, against the floor of one ``exp`` and one ``log`` per row and component.

1. Gradient cost: for each N, data from ``make_mixture(N, K=3, D=3, separation=4)``, the
   kernel model (``bayesgmm.bayes._kernel.make_kernel_model``, what nutpie calls) at the
   MAP fit; ``logp_and_grad`` (value + gradient, one call) timed ``--repeats`` times
   (best of 5 rounds; wall and process CPU time). The floor: a numba loop over the same
   N x K with one ``exp`` and one ``log`` per element (what a log-sum-exp over K
   components needs at the least), timed the same way. Reported: µs per gradient,
   ns per row per gradient, and the ratio kernel / floor.
2. ``--fit``: ``PosteriorGaussianMixture(3, covariance_type='full', random_state=0)``
   on N = 10 000 (4 chains x (1000 + 1000)): wall and CPU time, ``timings_``, min bulk ESS
   and the post-warmup gradients (nutpie's ``n_steps``); ``us_per_gradient_in_sampler`` is
   the sampling wall time (tuning included) over those, an upper bound.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_posterior_scaling.py [--fit] [--out PATH]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

N_VALUES = (1000, 3000, 10_000, 30_000)


def _timed(fn, repeats: int, rounds: int = 5) -> tuple[float, float]:
    """Best-of-rounds seconds per call: (wall, process CPU)."""
    best_wall, best_cpu = np.inf, np.inf
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            fn()
        best_wall = min(best_wall, (time.perf_counter() - t0) / repeats)
        best_cpu = min(best_cpu, (time.process_time() - c0) / repeats)
    return best_wall, best_cpu


def _floor_kernel():
    import numba

    @numba.njit(cache=True)
    def exp_log(a):
        total = 0.0
        for i in range(a.shape[0]):
            for k in range(a.shape[1]):
                total += math.exp(a[i, k]) + math.log(a[i, k] + 2.0)
        return total

    return exp_log


def gradient_costs(n_values, repeats: int, D: int = 3, K: int = 3) -> list[dict]:
    from bayesgmm import GaussianMixture
    from bayesgmm.bayes._kernel import make_kernel_model, to_unconstrained
    from bayesgmm.datasets import make_mixture

    floor = _floor_kernel()
    rows = []
    for n in n_values:
        X = make_mixture(n, n_components=K, n_features=D, separation=4.0, random_state=n).X
        gm = GaussianMixture(K, covariance_type="full", prior="default", random_state=0).fit(X)
        km = make_kernel_model(X, gm.prior_, "full", K)
        theta = to_unconstrained(
            {"weights": gm.weights_, "means": gm.means_, "covariances": gm.covariances_},
            "full",
        )
        km.logp_and_grad(theta)  # compile / load
        reps = max(3, repeats * 1000 // n)
        wall, cpu = _timed(lambda km=km, theta=theta: km.logp_and_grad(theta), reps)
        a = np.random.default_rng(0).uniform(-1.0, 1.0, size=(n, K))
        floor(a)
        f_wall, f_cpu = _timed(lambda a=a: floor(a), reps)
        rows.append(
            {
                "N": n,
                "D": D,
                "K": K,
                "grad_us": 1e6 * wall,
                "grad_cpu_us": 1e6 * cpu,
                "ns_per_row": 1e9 * wall / n,
                "ns_per_row_cpu": 1e9 * cpu / n,
                "floor_ns_per_row": 1e9 * f_wall / n,
                "floor_ns_per_row_cpu": 1e9 * f_cpu / n,
                "ratio_to_floor": wall / f_wall,
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def fit_10k(n: int = 10_000) -> dict:
    import arviz as az

    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.datasets import make_mixture

    X = make_mixture(n, n_components=3, n_features=3, separation=4.0, random_state=n).X
    post = PosteriorGaussianMixture(3, covariance_type="full", random_state=0)
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post.fit(X)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = float(post.idata_["sample_stats"]["n_steps"].sum())
    ess = az.ess(post.idata_["posterior"].to_dataset(), method="bulk")
    return {
        "N": n,
        "wall_s": wall,
        "cpu_s": cpu,
        **{f"t_{k}": v for k, v in post.timings_.items()},
        "min_ess_bulk": min(float(ess[v].min()) for v in ("weights", "means", "covariances")),
        "max_rhat": float(post.diagnostics_.xs("relabelled", level="draws")["max_rhat"].max()),
        "divergences": post.n_divergences_,
        "gradients_post_warmup": steps,
        # sampling time covers tuning too, whose gradients nutpie does not report here:
        # an upper bound on the wall time per gradient (4 chains sharing the cores)
        "us_per_gradient_in_sampler": 1e6 * post.timings_["sampling"] / steps,
        "backend": post.backend_,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="also fit N = 10 000 with NUTS")
    parser.add_argument("--repeats", type=int, default=200, help="calls per round at N=1000")
    parser.add_argument("--n", nargs="+", type=int, default=list(N_VALUES))
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/posterior_scaling.txt")
    )
    args = parser.parse_args(argv)
    import pandas as pd
    from threadpoolctl import threadpool_limits

    load = os.getloadavg()[0]
    lines = [
        f"posterior kernel gradient cost vs N (D=3, K=3, full); load average {load:.1f} on "
        f"{os.cpu_count()} CPUs; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        f"command: python benchmarks/bench_posterior_scaling.py {' '.join(argv or sys.argv[1:])}",
    ]
    with threadpool_limits(1):
        table = pd.DataFrame(gradient_costs(args.n, args.repeats))
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if args.fit:
            result = fit_10k()
            lines.append("fit N=10000 D=3 K=3 full, 4 chains x (1000 + 1000), random_state=0:")
            lines.append(
                "  "
                + ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in result.items()
                )
            )
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        fh.write(text + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
