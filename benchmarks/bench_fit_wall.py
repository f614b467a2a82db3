"""Whole posterior fits in a warm process: wall time and its parts (issue 12's fixed costs).

For each case, one ``PosteriorGaussianMixture`` fit to warm the process up (kernel
cache, imports), then ``--fits`` more, each timed: the wall time of ``fit`` and its
``timings_`` (map, starts, sampling, postprocess). Reported: the median of each over the
timed fits, and ``wall - sampling``, the fixed costs around the sampling.

Cases: Old Faithful K=3 tied and full (N=272), 4 chains x (1000 + 1000), kernel path.

Run (compare two checkouts back to back, e.g. ``PYTHONPATH=/path/to/other``)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fit_wall.py [--fits 5]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def case(name: str, X: np.ndarray, k: int, covariance_type: str, fits: int) -> str:
    from bayesgmm.bayes import PosteriorGaussianMixture

    walls, parts = [], []
    for i in range(fits + 1):
        post = PosteriorGaussianMixture(k, covariance_type=covariance_type, random_state=i)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post.fit(X)
        if i:  # the first fit warms the process up
            walls.append(time.perf_counter() - t0)
            parts.append(post.timings_)
    wall = float(np.median(walls))
    keys = ("map", "starts", "sampling", "postprocess")
    med = {key: float(np.median([p.get(key, 0.0) for p in parts])) for key in keys}
    pieces = ", ".join(f"{key} {med[key]:.3f}" for key in keys)
    return (
        f"{name}: wall {wall:.3f} s (median of {fits}; min {min(walls):.3f}), "
        f"wall - sampling {wall - med['sampling']:.3f} s; timings_ medians: {pieces}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=5)
    args = parser.parse_args(argv)
    import bayesgmm
    from bayesgmm.datasets import load_faithful

    X = load_faithful().to_numpy()
    print(
        f"bayesgmm from {os.path.dirname(bayesgmm.__file__)}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    for covariance_type in ("tied", "full"):
        print(case(f"Old Faithful K=3 {covariance_type}", X, 3, covariance_type, args.fits))


if __name__ == "__main__":
    main()
