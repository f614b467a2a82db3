"""Post-processing of a posterior fit against its sampling time, piece by piece (issue 12).

For each case, one ``PosteriorGaussianMixture`` fit (4 chains x (1000 + 1000), kernel
path), then its post-processing pieces again on the fit's own raw draws, each timed
``--repeats`` times (best; wall and process CPU):

- ``relabel``: the match to the MAP fit (``bayes.relabel._relabel``);
- ``pass_1thread`` / ``pass``: the one pass over the draws for the ``log_likelihood``
  group and the per-chain memberships (``_postprocess.draw_pass``), on one thread and on
  the default threads;
- ``diagnostics``: the R-hat/ESS table (``_postprocess.diagnostics_table``, ArviZ);
- ``store``: all of ``_store`` (relabel, pass with the table meanwhile, mode check,
  warnings), what ``timings_["postprocess"]`` covers after the draws are decoded.

Cases: Old Faithful K=3 tied (N=272) and ``make_mixture`` N=10 000, D=3, K=3 full; with
``--nan`` also N=3000, D=8, K=3 full with 10% of the cells missing (:func:`nan_case`).

Run::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_postprocess.py [--out PATH]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np


def _timed(fn, repeats: int) -> tuple[float, float]:
    best_wall, best_cpu = np.inf, np.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu


def case(name: str, X: np.ndarray, k: int, covariance_type: str, repeats: int) -> str:
    import xarray as xr

    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.bayes._postprocess import diagnostics_table, draw_pass, member_groups
    from bayesgmm.bayes.relabel import _relabel

    post = PosteriorGaussianMixture(k, covariance_type=covariance_type, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post.fit(X)
    t = post.timings_
    raw = post.idata_["posterior_raw"].to_dataset()
    w, mu, cov = (raw[v].values for v in ("weights", "means", "covariances"))
    chains, draws = w.shape[:2]
    relabelled, perms, _ = _relabel(raw, post.map_, method="map", X=X)
    groups = member_groups(chains, draws)
    tree = {
        g: post.idata_[g].to_dataset()
        for g in ("sample_stats", "observed_data")
        if g in post.idata_.children
    }
    obs = post.idata_["observed_data"]["obs"].values

    def store():
        idata = xr.DataTree.from_dict({"posterior": raw, **tree})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post._store(idata, X, obs)

    pieces = {
        "relabel": lambda: _relabel(raw, post.map_, method="map", X=X),
        "pass_1thread": lambda: draw_pass(
            X, w, mu, cov, covariance_type, groups=groups, permutations=perms, n_threads=1
        ),
        "pass": lambda: draw_pass(
            X, w, mu, cov, covariance_type, groups=groups, permutations=perms
        ),
        "diagnostics": lambda: diagnostics_table(raw, relabelled, perms),
        "store": store,
    }
    parts = []
    cpu_of = {}
    for label, fn in pieces.items():
        wall, cpu = _timed(fn, repeats)
        cpu_of[label] = cpu
        parts.append(f"{label} {wall:.3f}/{cpu:.3f}")
    # The floor: the log_likelihood group needs one likelihood evaluation per draw, and
    # sampling made n_steps gradient evaluations per kept draw (as many again in warm-up,
    # not stored). Express the one-thread pass in kernel gradients (logp + gradient at
    # the posterior mean, the sampler's own callback).
    from bayesgmm.bayes._kernel import make_kernel_model, to_unconstrained

    km = make_kernel_model(X, post.prior_, covariance_type, k)
    theta = to_unconstrained(
        {"weights": post.weights_, "means": post.means_, "covariances": post.covariances_},
        covariance_type,
    )
    km.logp_and_grad(theta)
    n_grad = 200
    t0 = time.process_time()
    for _ in range(n_grad):
        km.logp_and_grad(theta)
    grad_s = (time.process_time() - t0) / n_grad
    steps = float(post.idata_["sample_stats"]["n_steps"].mean())
    per_draw = cpu_of["pass_1thread"] / (chains * draws)
    floor = (
        f"; per draw: pass {per_draw * 1e6:.0f} us = {per_draw / grad_s:.2f} kernel gradients "
        f"({grad_s * 1e6:.0f} us each), sampling {steps:.1f} gradients per kept draw (and "
        f"about as many per warm-up draw), so the pass is about "
        f"{per_draw / grad_s / (2 * steps):.0%} of the sampler's gradient work"
    )
    return (
        f"{name}: fit timings_ sampling {t['sampling']:.2f} s, postprocess "
        f"{t['postprocess']:.2f} s ({t['postprocess'] / t['sampling']:.0%} of sampling); "
        f"pieces again, best of {repeats}, wall/CPU s: " + ", ".join(parts) + floor
    )


def nan_case(repeats: int) -> str:
    """Real data's shape: N=3000, D=8, K=3 'full', 10% of the cells NaN (about 95
    missingness patterns): the fit's timings_, and the pass (``_postprocess._pass``:
    the log_likelihood group and the chains' memberships, pattern by pattern) again."""
    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.bayes._postprocess import _pass
    from bayesgmm.core.missing import missing_patterns
    from bayesgmm.datasets import make_mixture

    rng = np.random.default_rng(0)
    X = make_mixture(3000, n_components=3, n_features=8, separation=3.0, random_state=1).X
    X = X.copy()
    X[rng.random(X.shape) < 0.1] = np.nan
    post = PosteriorGaussianMixture(3, covariance_type="full", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post.fit(X)
    t = post.timings_
    raw = post.idata_["posterior_raw"].to_dataset()
    wall, cpu = _timed(lambda: _pass(X, raw, post.label_permutations_, "full", 100), repeats)
    return (
        f"N=3000 D=8 K=3 full, 10% NaN ({len(missing_patterns(X).patterns)} patterns): fit "
        f"timings_ sampling {t['sampling']:.2f} s, postprocess {t['postprocess']:.2f} s "
        f"({t['postprocess'] / t['sampling']:.0%} of sampling); the pass again, best of "
        f"{repeats}, wall/CPU s: {wall:.3f}/{cpu:.3f}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--nan", action="store_true", help="also the N=3000, D=8 case with 10%% NaN (~30 s)"
    )
    args = parser.parse_args(argv)
    from bayesgmm.datasets import load_faithful, make_mixture

    load = os.getloadavg()[0]
    lines = [f"post-processing vs sampling; load average {load:.1f} on {os.cpu_count()} CPUs"]
    faithful = load_faithful().to_numpy()
    lines.append(case("Old Faithful K=3 tied", faithful, 3, "tied", args.repeats))
    X = make_mixture(10_000, n_components=3, n_features=3, separation=4.0, random_state=10_000).X
    lines.append(case("N=10000 D=3 K=3 full", X, 3, "full", args.repeats))
    if args.nan:
        lines.append(nan_case(args.repeats))
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
