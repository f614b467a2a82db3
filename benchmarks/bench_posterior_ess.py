"""ESS per second of bayesgmm's posterior model vs the PyMC-documentation mixture model.

Compares, on the same data and with the same sampler settings, two PyMC models of a
K-component Gaussian mixture sampled with nutpie (``pm.sample(nuts_sampler="nutpie")``),
and KERNEL: OURS's density sampled by nutpie on bayesgmm's numba kernel
(``bayesgmm.bayes._kernel``, what ``PosteriorGaussianMixture`` runs; its "compile" is
the kernel's load from the numba disk cache, or its one-off compile when cold):

- OURS: :func:`bayesgmm.bayes.model.build_model` with the default (mclust conjugate)
  prior; 'spherical' covariances (one variance per component) for D = 1, 'full' for
  D > 1. Hand-written marginalized log-likelihood with Cholesky factors.
- REFERENCE: the model as PyMC's documentation writes it. D = 1: ``pm.NormalMixture``
  with ``w ~ Dirichlet(1)``, ``mu ~ Normal(mean(x), 10 sd(x))`` on the ``ordered``
  transform (as in the "Gaussian Mixture Model" example notebook) and
  ``sigma ~ HalfNormal(2 sd(x))``. D > 1: ``pm.Mixture`` of
  ``pm.MvNormal.dist(mu=mu[k], chol=chol_k)`` with one ``pm.LKJCholeskyCov(eta=2,
  sd_dist=Exponential(1 / sd(x_j)))`` per component and ``mu ~ Normal(mean(x),
  10 sd(x))`` per coordinate (no ordering).

Both models start every chain at the same MAP-EM fit (``GaussianMixture(K, prior='default',
n_init=3, random_state=0)``), mapped to each parameterization (the reference's weights
and sigmas permuted to the ordered means; LKJ packed Cholesky factors of the MAP
covariances), with no jitter (``compile_kwargs={"jitter_rvs": set()}``).

Measured per model: a warm-up compile (``nutpie.compile_pymc_model``, the first compile
of this graph in the process; the on-disk numba cache may already hold it from an
earlier run), then ``pm.sample`` timed as a whole: its compile time is the wall time
minus nutpie's sampling time (``idata.posterior.attrs["sampling_time"]``). The draws of
both models are mapped to (weights, means, covariances) in bayesgmm's shapes (reference:
variances ``sigma**2``; covariances ``L L^T`` from the packed LKJ factors), relabelled to
the MAP fit (:func:`~bayesgmm.bayes.relabel.match_to_reference`), and then summarised:
minimum bulk ESS over every scalar of the three (and per group), min-ESS per second of
sampling and of compile + sampling, divergences, max R-hat, mean leapfrog steps per
draw and min-ESS per 1000 gradient evaluations (post-warmup; independent of machine
load, unlike the timings).

Run::

    python benchmarks/bench_posterior_ess.py            # the four configurations
    python benchmarks/bench_posterior_ess.py --quick    # smoke test (N=200, D=1 and 2)

CPU time (``time.process_time``: all threads of the process, so nutpie's chains too) is
reported next to each wall time (``*_cpu_s``): on a loaded machine it is the steadier
figure. Options: ``--models kernel,reference`` (a subset: the PyMC ``build_model``
graph takes minutes to compile at D >= 5), ``--draws/--tune/--chains/--cores/--seed``,
``--configs N,D,K ...``,
``--no-warmup`` (skip the warm-up compile), ``--compiledir DIR`` (a fresh PyTensor base
compile dir, i.e. a cold numba cache), ``--out PATH``, ``--kernel-adaptation low_rank``
(nutpie's low-rank mass matrix for the kernel model only; row ``kernel_low_rank``).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

CONFIGS = ((500, 1, 3), (5000, 1, 3), (1000, 2, 3), (1000, 5, 3))
QUICK_CONFIGS = ((200, 1, 3), (200, 2, 3))
SEPARATION = 5.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: small data, short")
    parser.add_argument("--draws", type=int, default=None, help="default 1000 (200 quick)")
    parser.add_argument("--tune", type=int, default=None, help="default 1000 (200 quick)")
    parser.add_argument("--chains", type=int, default=None, help="default 4 (2 quick)")
    parser.add_argument("--cores", type=int, default=2, help="nutpie threads (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="data and sampler seed")
    parser.add_argument(
        "--configs", nargs="+", default=None, metavar="N,D,K", help="override the configs"
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up compile")
    parser.add_argument(
        "--models",
        default="kernel,ours,reference",
        help="comma-separated subset of kernel,ours,reference (default all three)",
    )
    parser.add_argument("--compiledir", type=Path, default=None, help="PyTensor base_compiledir")
    parser.add_argument(
        "--kernel-adaptation",
        default="diag",
        choices=("diag", "low_rank"),
        help="nutpie's mass-matrix adaptation for the kernel model only (default diag, "
        "as the PyMC models; 'low_rank': nutpie's low-rank modified mass matrix)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/posterior_ess.csv"))
    args = parser.parse_args(argv)
    args.draws = args.draws or (200 if args.quick else 1000)
    args.tune = args.tune or (200 if args.quick else 1000)
    args.chains = args.chains or (2 if args.quick else 4)
    args.models = [m for m in args.models.split(",") if m]
    unknown = set(args.models) - {"kernel", "ours", "reference"}
    if unknown:
        parser.error(f"unknown --models {sorted(unknown)}; expected kernel, ours, reference")
    if args.configs is not None:
        args.configs = [tuple(int(v) for v in c.split(",")) for c in args.configs]
    else:
        args.configs = list(QUICK_CONFIGS if args.quick else CONFIGS)
    return args


# PyTensor reads its flags at import: set the compile dir before importing PyMC.
_ARGS = parse_args() if __name__ == "__main__" else None
if _ARGS is not None and _ARGS.compiledir is not None:
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        f
        for f in (os.environ.get("PYTENSOR_FLAGS", ""), f"base_compiledir={_ARGS.compiledir}")
        if f
    )

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pymc as pm  # noqa: E402
import xarray as xr  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bayesgmm import GaussianMixture  # noqa: E402
from bayesgmm.bayes.model import build_model  # noqa: E402
from bayesgmm.bayes.relabel import match_to_reference, relabel_dataset  # noqa: E402
from bayesgmm.datasets import make_mixture  # noqa: E402

GROUPS = ("weights", "means", "covariances")


# --------------------------------------------------------------------------------------
# The two models and their starting points
# --------------------------------------------------------------------------------------


def ours(X: np.ndarray, K: int, covariance_type: str, map_fit):
    model = build_model(X, K, covariance_type=covariance_type, prior="default")
    start = {
        "weights": map_fit.weights_,
        "means": map_fit.means_,
        "covariances": map_fit.covariances_,
    }
    return model, start


def reference(X: np.ndarray, K: int, map_fit):
    """The PyMC-docs model and the MAP fit in its parameterization."""
    n_features = X.shape[1]
    center, scale = X.mean(axis=0), X.std(axis=0)
    coords = {"component": np.arange(K), "feature": np.arange(n_features)}
    if n_features == 1:
        order = np.argsort(map_fit.means_[:, 0])  # the ordered transform needs sorted means
        with pm.Model(coords=coords) as model:
            w = pm.Dirichlet("weights", a=np.ones(K), dims="component")
            mu = pm.Normal(
                "mu",
                mu=center[0],
                sigma=10.0 * scale[0],
                transform=pm.distributions.transforms.ordered,
                dims="component",
            )
            sigma = pm.HalfNormal("sigma", sigma=2.0 * scale[0], dims="component")
            pm.NormalMixture("x", w=w, mu=mu, sigma=sigma, observed=X[:, 0])
        start = {
            "weights": map_fit.weights_[order],
            "mu": map_fit.means_[order, 0],
            "sigma": np.sqrt(map_fit.covariances_[order]),
        }
        return model, start
    rows, cols = np.tril_indices(n_features)  # PyMC's packing order of the LKJ factor
    with pm.Model(coords=coords) as model:
        w = pm.Dirichlet("weights", a=np.ones(K), dims="component")
        mu = pm.Normal(
            "mu",
            mu=center,
            sigma=10.0 * scale,
            dims=("component", "feature"),
        )
        components = []
        for k in range(K):
            chol, _, _ = pm.LKJCholeskyCov(
                f"chol_cov_{k}",
                n=n_features,
                eta=2.0,
                sd_dist=pm.Exponential.dist(1.0 / scale, size=n_features),
                compute_corr=True,
            )
            components.append(pm.MvNormal.dist(mu=mu[k], chol=chol))
        pm.Mixture("x", w=w, comp_dists=components, observed=X)
    start = {"weights": map_fit.weights_, "mu": map_fit.means_}
    for k in range(K):
        start[f"chol_cov_{k}"] = np.linalg.cholesky(map_fit.covariances_[k])[rows, cols]
    return model, start


def common_dataset(posterior: xr.Dataset, which: str, K: int, D: int) -> xr.Dataset:
    """(weights, means, covariances) in bayesgmm's shapes, from either model's draws."""
    if which == "ours":
        return posterior[list(GROUPS)]
    dims = ("chain", "draw", "component")
    weights = xr.DataArray(posterior["weights"].values, dims=dims)
    if D == 1:
        means = xr.DataArray(posterior["mu"].values[..., None], dims=(*dims, "feature"))
        cov = xr.DataArray(posterior["sigma"].values ** 2, dims=dims)
    else:
        means = xr.DataArray(posterior["mu"].values, dims=(*dims, "feature"))
        rows, cols = np.tril_indices(D)
        packed = np.stack([posterior[f"chol_cov_{k}"].values for k in range(K)], axis=2)
        chol = np.zeros((*packed.shape[:3], D, D))
        chol[..., rows, cols] = packed
        cov = xr.DataArray(
            chol @ np.swapaxes(chol, -1, -2), dims=(*dims, "feature", "feature_bis")
        )
    ds = xr.Dataset({"weights": weights, "means": means, "covariances": cov})
    return ds.assign_coords(component=np.arange(K))


# --------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------


def run_model(label, model, start, args, *, map_fit, covariance_type, K, D) -> dict:
    import nutpie

    compile_first = np.nan
    if not args.no_warmup:
        t0 = time.perf_counter()
        nutpie.compile_pymc_model(model, backend="numba", initial_points=start, jitter_rvs=set())
        compile_first = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*initvals.*")
        idata = pm.sample(
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            cores=args.cores,
            blas_cores=None,  # keep the caller's threadpool_limits(1)
            random_seed=args.seed,
            model=model,
            nuts_sampler="nutpie",
            initvals=start,
            compile_kwargs={"jitter_rvs": set()},
            progressbar=False,
            compute_convergence_checks=False,
        )
    total = time.perf_counter() - t0
    total_cpu = time.process_time() - c0
    sampling = float(idata["posterior"].attrs["sampling_time"])

    ds = common_dataset(idata["posterior"].to_dataset(), label, K, D)
    means = ds["means"].values
    chains, draws = means.shape[:2]
    perms = match_to_reference(
        means.reshape(chains * draws, K, D), map_fit._params(), covariance_type
    ).reshape(chains, draws, K)
    relabelled = relabel_dataset(ds, xr.DataArray(perms, dims=("chain", "draw", "component")))
    ess = az.ess(relabelled, method="bulk")
    rhat = az.rhat(relabelled)
    group_ess = {name: float(ess[name].min()) for name in GROUPS}
    min_ess = min(group_ess.values())
    stats = idata["sample_stats"].to_dataset()
    return {
        "model": label,
        "compile_first_s": compile_first,
        "compile_s": total - sampling,
        "sample_s": sampling,
        "total_s": total,
        "total_cpu_s": total_cpu,
        "sample_cpu_s": np.nan,  # pm.sample does not split its CPU time
        "min_ess_bulk": min_ess,
        **{f"ess_{name}": value for name, value in group_ess.items()},
        "ess_per_s_sampling": min_ess / sampling,
        "ess_per_s_total": min_ess / total,
        "divergences": int(stats["diverging"].sum()),
        "max_rhat": max(float(rhat[name].max()) for name in GROUPS),
        "mean_steps": float(stats["n_steps"].mean()),
        "ess_per_1k_grads": 1000.0 * min_ess / float(stats["n_steps"].sum()),
        "n_switched": n_switched(perms),
    }


def run_kernel(X, args, *, map_fit, covariance_type, K, D) -> dict:
    """The same posterior as "ours", sampled by nutpie on the numba kernel
    (bayesgmm.bayes._kernel: the density on the Cholesky factor, no per-model compile),
    every chain from the same MAP start, as the two PyMC models."""
    import nutpie

    from bayesgmm.bayes._kernel import _cfuncs, make_kernel_model, to_constrained, to_unconstrained

    t0, c0 = time.perf_counter(), time.process_time()
    km = make_kernel_model(X, map_fit.prior_, covariance_type, K)
    _cfuncs(covariance_type)
    start = to_unconstrained(
        {
            "weights": map_fit.weights_,
            "means": map_fit.means_,
            "covariances": map_fit.covariances_,
        },
        covariance_type,
    )
    compiled = km.compiled(start)
    compile_s = time.perf_counter() - t0
    compile_cpu = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    idata = nutpie.sample(
        compiled,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        cores=args.cores,
        seed=args.seed,
        progress_bar=False,
        save_warmup=False,
        adaptation=args.kernel_adaptation,
    )
    sampling = time.perf_counter() - t0
    sampling_cpu = time.process_time() - c0
    theta = idata["posterior"].to_dataset()["theta"].values
    w, mu, cov = to_constrained(theta, covariance_type, K, D)
    dims = ("chain", "draw", "component")
    cov_dims = (*dims, "feature", "feature_bis") if covariance_type == "full" else dims
    ds = xr.Dataset(
        {
            "weights": (dims, w),
            "means": ((*dims, "feature"), mu),
            "covariances": (cov_dims, cov),
        }
    ).assign_coords(component=np.arange(K))
    means = ds["means"].values
    chains, draws = means.shape[:2]
    perms = match_to_reference(
        means.reshape(chains * draws, K, D), map_fit._params(), covariance_type
    ).reshape(chains, draws, K)
    relabelled = relabel_dataset(ds, xr.DataArray(perms, dims=("chain", "draw", "component")))
    ess = az.ess(relabelled, method="bulk")
    rhat = az.rhat(relabelled)
    group_ess = {name: float(ess[name].min()) for name in GROUPS}
    min_ess = min(group_ess.values())
    stats = idata["sample_stats"].to_dataset()
    total = compile_s + sampling
    return {
        "model": "kernel" if args.kernel_adaptation == "diag" else "kernel_low_rank",
        "compile_first_s": compile_s,
        "compile_s": compile_s,
        "sample_s": sampling,
        "total_s": total,
        "total_cpu_s": compile_cpu + sampling_cpu,
        "sample_cpu_s": sampling_cpu,
        "min_ess_bulk": min_ess,
        **{f"ess_{name}": value for name, value in group_ess.items()},
        "ess_per_s_sampling": min_ess / sampling,
        "ess_per_s_total": min_ess / total,
        "divergences": int(stats["diverging"].sum()),
        "max_rhat": max(float(rhat[name].max()) for name in GROUPS),
        "mean_steps": float(stats["n_steps"].mean()),
        "ess_per_1k_grads": 1000.0 * min_ess / float(stats["n_steps"].sum()),
        "n_switched": n_switched(perms),
    }


def n_switched(perms: np.ndarray) -> int:
    """Draws whose labelling differs from the most common one (label switches)."""
    flat = perms.reshape(-1, perms.shape[-1])
    _, counts = np.unique(flat, axis=0, return_counts=True)
    return int(flat.shape[0] - counts.max())


def warm_up_process() -> float:
    """Compile a trivial model once, so that no benchmarked model pays the one-off
    import and JIT costs of nutpie/numba in this process."""
    import nutpie

    t0 = time.perf_counter()
    with pm.Model() as model:
        pm.Normal("z", shape=2)
    nutpie.compile_pymc_model(model, backend="numba")
    return time.perf_counter() - t0


def run_config(n_samples: int, D: int, K: int, args) -> list[dict]:
    covariance_type = "spherical" if D == 1 else "full"
    data = make_mixture(
        n_samples,
        n_components=K,
        n_features=D,
        covariance_type=covariance_type,
        separation=SEPARATION,
        random_state=args.seed + 1000 * D + n_samples,
    )
    X = data.X
    map_fit = GaussianMixture(
        K, covariance_type=covariance_type, prior="default", n_init=3, random_state=0
    ).fit(X)
    rows = []
    if "kernel" in args.models:
        print(f"  N={n_samples} D={D} K={K}: kernel ...", file=sys.stderr, flush=True)
        result = run_kernel(X, args, map_fit=map_fit, covariance_type=covariance_type, K=K, D=D)
        rows.append({"N": n_samples, "D": D, "K": K, "covariance": covariance_type, **result})
    for label in [m for m in ("ours", "reference") if m in args.models]:
        if label == "ours":
            model, start = ours(X, K, covariance_type, map_fit)
        else:
            model, start = reference(X, K, map_fit)
        print(f"  N={n_samples} D={D} K={K}: {label} ...", file=sys.stderr, flush=True)
        result = run_model(
            label, model, start, args, map_fit=map_fit, covariance_type=covariance_type, K=K, D=D
        )
        rows.append({"N": n_samples, "D": D, "K": K, "covariance": covariance_type, **result})
    return rows


def main() -> int:
    args = _ARGS if _ARGS is not None else parse_args()
    print(
        f"draws={args.draws} tune={args.tune} chains={args.chains} cores={args.cores} "
        f"seed={args.seed} warmup={not args.no_warmup} PyMC {pm.__version__}",
        file=sys.stderr,
    )
    t_start = time.perf_counter()
    rows = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        print(f"process warm-up compile: {warm_up_process():.1f} s", file=sys.stderr)
        for n_samples, D, K in args.configs:
            rows.extend(run_config(n_samples, D, K, args))
    table = pd.DataFrame(rows)
    table.insert(4, "draws", args.draws)
    table.insert(5, "tune", args.tune)
    table.insert(6, "chains", args.chains)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.6g")
    shown = table.drop(columns=["K", "draws", "tune", "chains", "covariance"])
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nwrote {args.out} ({time.perf_counter() - t_start:.0f} s in all)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
