"""Cost of one log density + gradient of the numba kernel on data with NaN.

For each configuration the same rows are evaluated three ways, each through the C
callback nutpie calls (``_kernel.logp_and_grad``; the ctypes call from Python adds a
few microseconds, the same for all three):

- ``complete``: the data without NaN (the original values), the blocked kernel;
- ``with NaN``: a fraction of the cells set to NaN (no row left empty); the complete
  rows take the blocked kernel, the others the per-pattern scalar loop
  (``_kernel_numba._missing_spd`` / ``_missing_diagonal``);
- ``complete rows only``: the blocked kernel on the rows of the NaN data set that have
  no NaN, so ``with NaN - complete rows only`` is the cost of the incomplete rows.

Reports microseconds per call and, for the incomplete rows, per row. Threads pinned
to 1. Run::

    python benchmarks/bench_missing_kernel.py [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402


def _with_nan(X, frac: float, rng):
    X = X.copy()
    mask = rng.random(X.shape) < frac
    mask[mask.all(axis=1), 0] = False
    X[mask] = np.nan
    return X


def _per_call(km, theta, min_seconds: float = 0.5) -> float:
    km.logp_and_grad(theta)  # loads / compiles
    reps, elapsed = 1, 0.0
    while elapsed < min_seconds:
        reps *= 2
        t0 = time.perf_counter()
        for _ in range(reps):
            km.logp_and_grad(theta)
        elapsed = time.perf_counter() - t0
    return elapsed / reps * 1e6


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nan", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/missing_kernel.txt"))
    args = parser.parse_args(argv)

    from bayesgmm.bayes import _kernel as kern
    from bayesgmm.datasets import load_faithful, make_mixture
    from bayesgmm.priors import GMMPrior

    configs = [("Old Faithful", load_faithful().to_numpy(), 3, "tied")]
    for n, d, k, ct in [(10_000, 3, 3, "full"), (10_000, 5, 3, "full"), (10_000, 5, 3, "diag")]:
        X = make_mixture(n, n_components=k, n_features=d, random_state=0).X
        configs.append((f"N={n} D={d}", X, k, ct))
    load = os.getloadavg()[0]
    lines = [
        f"numba kernel, one logp + gradient (C callback), {args.nan:.0%} of the cells NaN; "
        f"load average at start {load:.1f} on {os.cpu_count()} CPUs"
    ]
    for name, X, k, ct in configs:
        rng = np.random.default_rng(1)
        Xn = _with_nan(X, args.nan, rng)
        complete = ~np.isnan(Xn).any(axis=1)
        prior = GMMPrior.default(X, k, ct)
        models = {
            "complete": kern.make_kernel_model(X, prior, ct, k),
            "with NaN": kern.make_kernel_model(Xn, prior, ct, k),
            "complete rows only": kern.make_kernel_model(X[complete], prior, ct, k),
        }
        theta = 0.1 * rng.standard_normal(models["complete"].n_dim)
        theta[k - 1 : k - 1 + k * X.shape[1]] += X[:k].ravel()
        us = {label: _per_call(km, theta) for label, km in models.items()}
        n_inc = int((~complete).sum())
        buf = models["with NaN"].buffer
        n_patterns = int(buf[int(buf[-1])])
        extra = us["with NaN"] - us["complete rows only"]
        lines.append(
            f"  {name:<13} K={k} {ct:<5} N={len(X):>6}: complete {us['complete']:8.1f} us, "
            f"with NaN {us['with NaN']:8.1f} us ({us['with NaN'] / us['complete']:.2f}x), "
            f"complete rows only {us['complete rows only']:8.1f} us; {n_inc} incomplete rows "
            f"in {n_patterns} patterns: {extra / max(n_inc, 1) * 1e3:.0f} ns per incomplete "
            f"row vs {us['complete'] / len(X) * 1e3:.0f} ns per complete row"
        )
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
