"""Bridge sampling's error against its reported standard error, by dimension.

A correlated normal target in P dimensions (its normalizer known), 4 AR(1) chains
(coefficient 0.5) of 1000 draws, :func:`bayesgmm.core.bridge.chain_log_masses` with the
chains in one group; over ``--reps`` repetitions, the mean and standard deviation of
each chain's log-mass error, against the mean reported standard error. P = 6 is the
galaxy model, 11 a 2-D K = 2 'full' mixture, 62 a 5-D K = 3 'full' one.

Run::

    python benchmarks/bench_bridge_calibration.py [--dims 6 11 30 62] [--reps 20]
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from bayesgmm.core.bridge import chain_log_masses  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[6, 11, 30, 62])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    for p in args.dims:
        rng = np.random.default_rng(0)
        a = rng.normal(size=(p, p))
        cov = a @ a.T / p + np.eye(p)
        prec = np.linalg.inv(cov)
        chol = np.linalg.cholesky(cov)
        log_z = 0.5 * p * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(cov)[1]

        def log_p(t, prec=prec):
            return -0.5 * np.einsum("mi,ij,mj->m", t, prec, t)

        errors, ses = [], []
        for rep in range(args.reps):
            e = rng.standard_normal((4, args.draws, p)) @ chol.T
            x = np.empty_like(e)
            x[:, 0] = e[:, 0]
            for t in range(1, args.draws):
                x[:, t] = 0.5 * x[:, t - 1] + np.sqrt(0.75) * e[:, t]
            res = chain_log_masses(x, log_p, np.zeros(4, int), random_state=rep)
            errors.append(res.log_mass - log_z)
            ses.append(res.log_mass_se)
        errors, ses = np.array(errors), np.array(ses)
        print(
            f"P = {p:3d}: a chain's log-mass error mean {errors.mean():+.3f}, sd "
            f"{errors.std(ddof=1):.3f}; mean reported se {ses.mean():.3f} (ratio "
            f"{errors.std(ddof=1) / ses.mean():.2f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
