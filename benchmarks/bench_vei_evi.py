"""VEI and EVI on the posterior's numba kernel, against 'diag' measured in the same run.

VEI and EVI map their volumes and zero-sum log-shapes onto the per-component log
variances and call the 'diag' kernel (``_kernel_numba.logp_volume_shape``), so their cost
should be the diagonal kernel's. Reported:

1. ``logp_and_grad`` per call at N = 10 000, D = 3, K = 3 (``make_mixture``, mclust's
   prior), mean of 200 calls after one warm-up call, for 'diag', 'VEI', 'EVI';
2. a ``PosteriorGaussianMixture(3, covariance_type=..., random_state=0)`` fit on Old
   Faithful (4 chains x (1000 + 1000), the default prior): wall time (the first fit of a
   process also loads the kernels), backend, min bulk ESS and max R-hat of
   ``covariances``.

Run::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_vei_evi.py

Not part of the test suite.
"""

from __future__ import annotations

import time
import warnings

import arviz as az
import numpy as np

from bayesgmm.bayes import PosteriorGaussianMixture
from bayesgmm.bayes import _kernel as kern
from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.priors import GMMPrior

TYPES = ("diag", "VEI", "EVI")


def main() -> None:
    X = make_mixture(10000, n_components=3, n_features=3, random_state=0).X
    for ct in TYPES:
        km = kern.make_kernel_model(X, GMMPrior.mclust(X, 3, ct), ct, 3)
        theta = 0.1 * np.random.default_rng(0).normal(size=km.n_dim)
        km.logp_and_grad(theta)
        n = 200
        start = time.perf_counter()
        for _ in range(n):
            km.logp_and_grad(theta)
        per_call = (time.perf_counter() - start) / n
        print(f"kernel logp+grad N=1e4 D=3 K=3 {ct}: {per_call * 1e3:.3f} ms/call")
    faithful = load_faithful().to_numpy()
    for ct in TYPES:
        post = PosteriorGaussianMixture(
            3, covariance_type=ct, draws=1000, tune=1000, chains=4, random_state=0
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post.fit(faithful)
        wall = time.perf_counter() - start
        cov = post.idata_["posterior"].to_dataset()[["covariances"]]
        ess = float(az.ess(cov)["covariances"].min())
        rhat = float(az.rhat(cov)["covariances"].max())
        print(
            f"faithful K=3 {ct}: fit {wall:.1f} s wall, backend {post.backend_}, "
            f"min ESS(covariances) {ess:.0f}, max R-hat {rhat:.3f}"
        )


if __name__ == "__main__":
    main()
