r"""Chains that do not mix, combined honestly: the galaxy data, K = 2 (issue 12).

Richardson & Green's (1997) 82 galaxy velocities (1000 km/s,
``load_galaxies("rg97")``), a two-component normal mixture with their prior:

.. math::

    \pi \sim \mathrm{Dirichlet}(1, 1), \quad
    \mu_k \sim N(\xi, \kappa^{-1}), \quad
    \sigma_k^{-2} \mid \beta \sim \mathrm{Gamma}(\alpha = 2, \beta), \quad
    \beta \sim \mathrm{Gamma}(g = 0.2, h = 10 / R^2),

with :math:`\xi` the midrange and :math:`R` the range of the data,
:math:`\kappa = 1/R^2`. The model is :func:`bayesgmm.bayes.build_model` (spherical =
one variance per component, the means' prior independent normal, the variances' part
``None``: flat) plus a ``pm.Potential`` for the hierarchical precision prior: the
Gamma(2, beta) density of :math:`\tau_k = \sigma_k^{-2}` written on
:math:`\sigma_k^2` is the InverseGamma(2, beta) density (the Jacobian of
:math:`\tau = 1/\sigma^2` included), and :math:`\beta` is a new ``pm.Gamma``.

NUTS (nutpie, through ``pm.sample``) runs 4 chains, all started at the same MLE EM fit
(no jitter). The deviance of a draw is :math:`-2 \sum_n \log p(y_n \mid \theta)`
(``log_likelihood`` from ``pm.compute_log_likelihood``). For each seed the script
reports each chain's mean deviance, the pooled mean, :func:`bayesgmm.bayes.stack_chains`
weights and the stacked mean deviance (the exact mean of the stacked mixture,
:math:`\sum_c w_c \bar D_c`, and the mean over the stacked resample), the same with
``stack_chains(method="mass", model=model)`` (each group of chains weighted by its
mode's posterior mass, bridge sampling on the model's log density), against

* the published answer, mixAK's Gibbs sampler (2 x 500 000 draws): 446.13;
* a reference computed here: a Gibbs sampler for the same model (allocations, weights,
  means, precisions, beta: every full conditional is conjugate), many independent
  chains from random starts, long runs; its mean deviance with a Monte Carlo standard
  error from the spread of the chain means.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_galaxy_stacking.py \
        [--seeds 0 1 2] [--draws 1000] [--tune 1000] [--cores 2] \
        [--gibbs-chains 64] [--gibbs-iter 20000] [--out PATH]

Not part of the test suite (``tests/test_galaxy_stacking.py``, marked slow, runs a
short version of it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.special import gammaln, logsumexp  # noqa: E402

PUBLISHED_MEAN_DEVIANCE = 446.13  # mixAK NMixMCMC, 2 x 500k draws (issue 12)
N_COMPONENTS = 2
ALPHA, G = 2.0, 0.2  # sigma^-2 ~ Gamma(ALPHA, beta), beta ~ Gamma(G, h = 10 / R^2)


def galaxy_data() -> np.ndarray:
    """The 82 velocities (1000 km/s), Richardson & Green's version (shape (82,))."""
    from bayesgmm.datasets import load_galaxies

    return load_galaxies("rg97")["velocity_kkms"].to_numpy()


def rg_hyperparameters(y: np.ndarray) -> dict[str, float]:
    """Richardson & Green's data-dependent constants: xi, kappa, alpha, g, h."""
    R = float(y.max() - y.min())
    return {
        "xi": float(y.min() + R / 2.0),
        "kappa": 1.0 / R**2,
        "alpha": ALPHA,
        "g": G,
        "h": 10.0 / R**2,
    }


def deviance(y: np.ndarray, weights, means, variances) -> np.ndarray:
    """-2 log-likelihood of ``y`` for each parameter set (leading dims of the params)."""
    weights, means, variances = (np.asarray(a, dtype=float) for a in (weights, means, variances))
    log_comp = (
        np.log(weights)[..., None, :]
        - 0.5 * np.log(2.0 * np.pi * variances)[..., None, :]
        - 0.5 * (y[:, None] - means[..., None, :]) ** 2 / variances[..., None, :]
    )
    return -2.0 * logsumexp(log_comp, axis=-1).sum(axis=-1)


def build_rg_model(y: np.ndarray):
    """:func:`build_model` with R&G's prior: the precision prior as a ``pm.Potential``."""
    import pymc as pm

    from bayesgmm.bayes import build_model
    from bayesgmm.priors import DirichletPrior, GMMPrior, NormalMeanPrior

    hp = rg_hyperparameters(y)
    prior = GMMPrior(
        weights=DirichletPrior(1.0),
        means=NormalMeanPrior.independent([hp["xi"]], [[1.0 / hp["kappa"]]]),
        covariances=None,  # flat here; the hierarchical prior is the Potential below
    )
    model = build_model(y[:, None], N_COMPONENTS, covariance_type="spherical", prior=prior)
    with model:
        beta = pm.Gamma("beta", alpha=hp["g"], beta=hp["h"])
        # tau = 1/sigma^2 ~ Gamma(alpha, beta)  <=>  sigma^2 ~ InverseGamma(alpha, beta)
        precision_prior = pm.logp(
            pm.InverseGamma.dist(alpha=hp["alpha"], beta=beta), model["covariances"]
        )
        pm.Potential("precision_prior", precision_prior.sum())
    return model


def em_start(y: np.ndarray, random_state: int = 0) -> dict[str, np.ndarray]:
    """The MLE EM fit (K = 2, one variance each), plus beta at its conditional mean."""
    from bayesgmm import GaussianMixture

    gm = GaussianMixture(
        N_COMPONENTS, covariance_type="spherical", n_init=5, random_state=random_state
    ).fit(y[:, None])
    hp = rg_hyperparameters(y)
    precision_sum = float((1.0 / gm.covariances_).sum())
    beta = (hp["g"] + N_COMPONENTS * hp["alpha"]) / (hp["h"] + precision_sum)
    return {
        "weights": gm.weights_,
        "means": gm.means_,
        "covariances": gm.covariances_,
        "beta": np.asarray(beta),
    }


def sample_nuts(model, start: dict, *, seed: int, draws: int, tune: int, chains: int, cores: int):
    """nutpie via ``pm.sample``, every chain at ``start`` (no jitter), + log_likelihood."""
    import pymc as pm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            model=model,
            nuts_sampler="nutpie",
            initvals=start,
            random_seed=seed,
            progressbar=False,
            compile_kwargs={"jitter_rvs": set()},
            compute_convergence_checks=False,
        )
        pm.compute_log_likelihood(idata, model=model, progressbar=False)
    return idata


def gibbs(
    y: np.ndarray, *, n_chains: int, n_iter: int, burn: int, seed: int, start: str = "random"
) -> dict[str, np.ndarray]:
    """Gibbs sampler of the same posterior, ``n_chains`` independent chains at once.

    Full conditionals (K = 2, z the allocations, n_k, S_k their counts and sums):
    ``pi ~ Dir(1 + n)``; ``mu_k ~ N((kappa xi + tau_k S_k) / (kappa + n_k tau_k),
    1 / (kappa + n_k tau_k))``; ``tau_k ~ Gamma(alpha + n_k / 2, beta + SS_k / 2)``;
    ``beta ~ Gamma(g + K alpha, h + sum tau)``. Each chain starts from random
    allocations. Returns the deviance of every kept iteration, shape
    (n_chains, n_iter - burn), and the smaller weight (label-free).
    """
    rng = np.random.default_rng(seed)
    hp = rg_hyperparameters(y)
    K, N = N_COMPONENTS, y.size
    if start == "random":
        z = rng.integers(K, size=(n_chains, N))
    else:  # "minor": the seven galaxies near 9.7 in one component, the rest in the other
        z = np.tile((y > 15.0).astype(int), (n_chains, 1))
    tau = np.full((n_chains, K), 1.0 / y.var())
    beta = np.full(n_chains, hp["g"] / hp["h"])
    mu = np.tile(np.quantile(y, [0.25, 0.75]), (n_chains, 1))
    dev = np.empty((n_chains, n_iter - burn))
    w_min = np.empty((n_chains, n_iter - burn))
    minor = np.empty((n_chains, n_iter - burn), dtype=bool)
    kept = {name: np.empty((n_chains, n_iter - burn)) for name in ("mu_low", "var_low", "beta")}
    onehot = np.arange(K)
    for it in range(n_iter):
        member = z[:, :, None] == onehot  # (C, N, K)
        n = member.sum(axis=1)
        s = (member * y[None, :, None]).sum(axis=1)
        w = _dirichlet(rng, 1.0 + n)
        prec = hp["kappa"] + n * tau
        mu = rng.normal((hp["kappa"] * hp["xi"] + tau * s) / prec, 1.0 / np.sqrt(prec))
        ss = (member * (y[None, :, None] - mu[:, None, :]) ** 2).sum(axis=1)
        tau = rng.gamma(hp["alpha"] + n / 2.0, 1.0 / (beta[:, None] + ss / 2.0))
        beta = rng.gamma(hp["g"] + K * hp["alpha"], 1.0 / (hp["h"] + tau.sum(axis=1)))
        log_p = (
            np.log(w)[:, None, :]
            + 0.5 * np.log(tau / (2.0 * np.pi))[:, None, :]
            - 0.5 * tau[:, None, :] * (y[None, :, None] - mu[:, None, :]) ** 2
        )
        log_norm = logsumexp(log_p, axis=-1)
        if it >= burn:
            dev[:, it - burn] = -2.0 * log_norm.sum(axis=1)
            w_min[:, it - burn] = w.min(axis=1)
            minor[:, it - burn] = in_minor_mode(mu, 1.0 / tau)
            low = np.argmin(mu, axis=1)[:, None]
            kept["mu_low"][:, it - burn] = np.take_along_axis(mu, low, axis=1)[:, 0]
            kept["var_low"][:, it - burn] = 1.0 / np.take_along_axis(tau, low, axis=1)[:, 0]
            kept["beta"][:, it - burn] = beta
        prob1 = np.exp(log_p[:, :, 1] - log_norm)
        z = (rng.random((n_chains, N)) < prob1).astype(int)
    return {"deviance": dev, "min_weight": w_min, "minor": minor, **kept}


def in_minor_mode(means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Whether each draw (leading dims; last dim the K = 2 components) is in the minor
    mode the issue describes: a narrow component (variance < 2) on the cluster of
    seven galaxies near 9.7 (mean < 12), the other covering the rest."""
    low = np.argmin(means, axis=-1)[..., None]
    mu_low = np.take_along_axis(means, low, axis=-1)[..., 0]
    var_low = np.take_along_axis(variances, low, axis=-1)[..., 0]
    return (mu_low < 12.0) & (var_low < 2.0)


def to_theta(weights, means, variances, beta) -> np.ndarray:
    """Unconstrained coordinates, labels ordered by their means (the lower first):
    (logit w_low, mu_low, mu_high, log var_low, log var_high, log beta), shape (M, 6)."""
    weights, means, variances = (
        np.asarray(a, dtype=float).reshape(-1, 2) for a in (weights, means, variances)
    )
    order = np.argsort(means, axis=1)
    w, mu, v = (np.take_along_axis(a, order, axis=1) for a in (weights, means, variances))
    return np.column_stack([np.log(w[:, 0] / w[:, 1]), mu, np.log(v), np.log(np.ravel(beta))])


def log_posterior_theta(y: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalized log posterior density of ``theta`` (M, 6) in :func:`to_theta`'s
    coordinates (Jacobians included; -inf outside mu_low < mu_high), and the deviance."""
    hp = rg_hyperparameters(y)
    a, mu, lv, lb = theta[:, 0], theta[:, 1:3], theta[:, 3:5], theta[:, 5]
    w_low = 1.0 / (1.0 + np.exp(-a))
    w = np.column_stack([w_low, 1.0 - w_low])
    v, beta = np.exp(lv), np.exp(lb)
    dev = deviance(y, w, mu, v)
    alpha, g, h = hp["alpha"], hp["g"], hp["h"]
    log_prior = (
        -0.5 * hp["kappa"] * ((mu - hp["xi"]) ** 2).sum(axis=1)  # N(xi, 1/kappa) means
        + 2.0 * (alpha * lb - gammaln(alpha))
        - ((alpha + 1.0) * lv).sum(axis=1)
        - beta * (1.0 / v).sum(axis=1)  # InvGamma(alpha, beta) variances
        + (g - 1.0) * lb
        - h * beta  # Gamma(g, h) beta (constants dropped)
    )
    log_jac = np.log(w_low) + np.log1p(-w_low) + lv.sum(axis=1) + lb
    out = -0.5 * dev + log_prior + log_jac
    return np.where(mu[:, 0] < mu[:, 1], out, -np.inf), dev


def importance_reference(
    y: np.ndarray, draw_sets: list[np.ndarray], *, n_draws: int, seed: int, df: float = 4.0
) -> dict:
    """The posterior mean deviance and the minor mode's mass by importance sampling,
    with no Markov chain at all: the proposal is an equal mixture of multivariate t
    distributions (``df``, covariance x 1.5^2) fitted to each set of draws (one per
    mode, in :func:`to_theta` coordinates). Exact up to the Monte Carlo error, which the
    effective sample size of the weights states."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    comps = [
        stats.multivariate_t(loc=d.mean(axis=0), shape=np.cov(d.T) * 1.5**2, df=df, seed=rng)
        for d in draw_sets
    ]
    counts = rng.multinomial(n_draws, np.full(len(comps), 1.0 / len(comps)))
    theta = np.concatenate([c.rvs(size=m) for c, m in zip(comps, counts, strict=True)])
    log_q = logsumexp([c.logpdf(theta) for c in comps], axis=0) - np.log(len(comps))
    log_p = np.empty(len(theta))
    dev = np.empty(len(theta))
    for start in range(0, len(theta), 20000):
        part = slice(start, start + 20000)
        log_p[part], dev[part] = log_posterior_theta(y, theta[part])
    log_w = log_p - log_q
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    mu = theta[:, 1:3]
    minor = in_minor_mode(mu, np.exp(theta[:, 3:5]))
    mean_dev = float(w @ dev)
    # delta-method Monte Carlo error of the self-normalized estimate
    mcse = float(np.sqrt(np.sum(w**2 * (dev - mean_dev) ** 2)))
    return {
        "draws": int(n_draws),
        "ess": float(1.0 / np.sum(w**2)),
        "mean_deviance": mean_dev,
        "mcse": mcse,
        "minor_mode_mass": float(w[minor].sum()),
        "mean_deviance_minor_mode": float(w[minor] @ dev[minor] / w[minor].sum())
        if w[minor].sum() > 0
        else float("nan"),
    }


def _dirichlet(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """Row-wise Dirichlet draws (normalized gammas)."""
    g = rng.gamma(alpha)
    return g / g.sum(axis=-1, keepdims=True)


def summarize_chains(y: np.ndarray, idata, seed: int, model=None) -> tuple[dict, np.ndarray]:
    """Per-chain, pooled, stacked and (with ``model``) mass-weighted mean deviance of a
    NUTS run, and the draws in :func:`to_theta` coordinates, shape (chain, draw, 6)."""
    from bayesgmm.bayes import stack_chains

    loglik = idata["log_likelihood"].to_dataset()["x"]
    dev = -2.0 * loglik.sum("obs").values  # (chain, draw)
    post = idata["posterior"].to_dataset()
    means = post["means"].values[..., 0]  # (chain, draw, K)
    weights = post["weights"].values
    chain_dev = dev.mean(axis=1)
    minor = in_minor_mode(means, post["covariances"].values)
    stacking = stack_chains(idata, random_state=seed)
    stacked = stacking.posterior
    resampled_dev = deviance(
        y,
        stacked["weights"].values[0],
        stacked["means"].values[0, ..., 0],
        stacked["covariances"].values[0],
    )
    # check: the deviance of the draws equals -2 x the log_likelihood group's sum
    direct = deviance(y, weights, means, post["covariances"].values)
    mass_fields = {}
    if model is not None:
        t0 = time.perf_counter()
        mass = stack_chains(idata, method="mass", model=model, random_state=seed)
        mass_fields = {
            "mass_weights": mass.weights.tolist(),
            "mass_groups": mass.groups.tolist(),
            "chain_log_mass": mass.log_mass.tolist(),
            "chain_log_mass_se": mass.log_mass_se.tolist(),
            "group_log_mass": mass.group_log_mass.tolist(),
            "group_log_mass_se": mass.group_log_mass_se.tolist(),
            "group_consistency": mass.group_consistency.tolist(),
            "mass_mean_deviance": float(mass.weights @ chain_dev),
            "mass_seconds": time.perf_counter() - t0,
        }
    return {
        "seed": seed,
        "chain_mean_deviance": chain_dev.tolist(),
        "chain_minor_mode_fraction": minor.mean(axis=1).tolist(),
        "chain_mean_min_weight": weights.min(axis=-1).mean(axis=1).tolist(),
        "chain_mean_means": np.sort(means, axis=-1).mean(axis=1).tolist(),
        "pooled_mean_deviance": float(dev.mean()),
        "stacking_weights": stacking.weights.tolist(),
        "stacking_groups": stacking.groups.tolist(),
        "elpd_loo": stacking.elpd_loo.tolist(),
        "pareto_k_max": stacking.pareto_k.tolist(),
        "stacked_mean_deviance": float(stacking.weights @ chain_dev),
        "stacked_resample_mean_deviance": float(resampled_dev.mean()),
        "max_abs_deviance_check": float(np.abs(direct - dev).max()),
        "divergences": int(idata["sample_stats"]["diverging"].sum()),
        **mass_fields,
    }, to_theta(weights, means, post["covariances"].values, post["beta"].values).reshape(
        *weights.shape[:2], 6
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--gibbs-chains", type=int, default=64)
    parser.add_argument("--gibbs-iter", type=int, default=20000)
    parser.add_argument("--gibbs-burn", type=int, default=2000)
    parser.add_argument("--is-draws", type=int, default=1_000_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    y = galaxy_data()
    result: dict = {"published_mean_deviance": PUBLISHED_MEAN_DEVIANCE, "runs": []}
    if args.gibbs_chains > 0:
        t0 = time.perf_counter()
        ref = gibbs(
            y,
            n_chains=args.gibbs_chains,
            n_iter=args.gibbs_iter,
            burn=args.gibbs_burn,
            seed=12345,
        )
        per_chain = ref["deviance"].mean(axis=1)
        minor = ref["minor"]
        result["gibbs"] = {
            "minor_mode_mass": float(minor.mean()),
            "chains_visiting_both_modes": int((minor.any(axis=1) & ~minor.all(axis=1)).sum()),
            "mean_deviance_minor_mode": float(ref["deviance"][minor].mean()),
            "mean_deviance_main_mode": float(ref["deviance"][~minor].mean()),
            "chains": args.gibbs_chains,
            "iterations": args.gibbs_iter,
            "burn": args.gibbs_burn,
            "mean_deviance": float(per_chain.mean()),
            "mcse": float(per_chain.std(ddof=1) / np.sqrt(per_chain.size)),
            "chain_mean_range": [float(per_chain.min()), float(per_chain.max())],
            "seconds": time.perf_counter() - t0,
        }
        g = result["gibbs"]
        print(
            f"Gibbs reference ({g['chains']} chains x {g['iterations'] - g['burn']} draws): "
            f"mean deviance {g['mean_deviance']:.2f} +- {g['mcse']:.2f} (chain means "
            f"{g['chain_mean_range'][0]:.1f}..{g['chain_mean_range'][1]:.1f}; "
            f"{g['seconds']:.0f} s); minor-mode mass {g['minor_mode_mass']:.3f}, mean deviance "
            f"there {g['mean_deviance_minor_mode']:.2f}, in the main mode "
            f"{g['mean_deviance_main_mode']:.2f}; {g['chains_visiting_both_modes']} of "
            f"{g['chains']} chains visit both",
            flush=True,
        )
    model = build_rg_model(y)
    start = em_start(y)
    result["em_start"] = {k: np.asarray(v).tolist() for k, v in start.items()}
    shown = (np.round(np.ravel(start[k]), 3).tolist() for k in ("weights", "means", "covariances"))
    print("EM start: weights {}, means {}, variances {}".format(*shown), flush=True)
    thetas = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        idata = sample_nuts(
            model,
            start,
            seed=seed,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            cores=args.cores,
        )
        run, theta = summarize_chains(y, idata, seed, model=model)
        run["seconds"] = time.perf_counter() - t0
        result["runs"].append(run)
        thetas.append(theta)
        chains = ", ".join(f"{d:.1f}" for d in run["chain_mean_deviance"])
        weights = ", ".join(f"{w:.2f}" for w in run["stacking_weights"])
        minor = ", ".join(f"{m:.2f}" for m in run["chain_minor_mode_fraction"])
        print(
            f"seed {seed}: chain mean deviance [{chains}] (minor-mode fraction [{minor}])"
            f"  pooled {run['pooled_mean_deviance']:.2f}"
            f"  stacking weights [{weights}]  stacked {run['stacked_mean_deviance']:.2f}"
            f" (resample {run['stacked_resample_mean_deviance']:.2f})"
            f"  mass weights [{', '.join(f'{w:.3f}' for w in run['mass_weights'])}]"
            f" (chain log mass [{', '.join(f'{v:.2f}' for v in run['chain_log_mass'])}]"
            f" +- [{', '.join(f'{v:.2f}' for v in run['chain_log_mass_se'])}])"
            f"  mass-weighted {run['mass_mean_deviance']:.2f} ({run['mass_seconds']:.0f} s)"
            f"  published {PUBLISHED_MEAN_DEVIANCE}  divergences {run['divergences']}"
            f"  ({run['seconds']:.0f} s)",
            flush=True,
        )
    # the exact answer by importance sampling, the proposal fitted to the NUTS draws of
    # the chains in each mode (all seeds together)
    theta = np.concatenate(thetas)
    minor = np.concatenate([r["chain_minor_mode_fraction"] for r in result["runs"]]) > 0.5
    if args.is_draws > 0 and minor.any() and (~minor).any():
        t0 = time.perf_counter()
        sets = [theta[minor].reshape(-1, 6), theta[~minor].reshape(-1, 6)]
        rng = np.random.default_rng(0)
        sets = [d[rng.permutation(len(d))[:20000]] for d in sets]
        ref = importance_reference(y, sets, n_draws=args.is_draws, seed=1)
        ref["seconds"] = time.perf_counter() - t0
        result["importance"] = ref
        print(
            f"Importance-sampling reference ({ref['draws']} draws, ESS {ref['ess']:.0f}): mean "
            f"deviance {ref['mean_deviance']:.2f} +- {ref['mcse']:.2f}; minor-mode mass "
            f"{ref['minor_mode_mass']:.3f} (mean deviance there "
            f"{ref['mean_deviance_minor_mode']:.2f}); {ref['seconds']:.0f} s",
            flush=True,
        )
        fractions = [np.array(r["chain_minor_mode_fraction"]) for r in result["runs"]]
        subsets = {
            "runs whose stacking groups split": [
                r for r in result["runs"] if len(set(r["stacking_groups"])) > 1
            ],
            "runs with chains mostly in each mode (minor fraction > 0.5 and < 0.5)": [
                r
                for r, f in zip(result["runs"], fractions, strict=True)
                if (f > 0.5).any() and (f < 0.5).any()
            ],
        }
        result["errors"] = {}
        for what, runs in subsets.items():
            if not runs:
                continue
            seeds = [r["seed"] for r in runs]
            print(f"over the {len(runs)} {what} (seeds {seeds}):", flush=True)
            for label, key in (
                ("pooled", "pooled_mean_deviance"),
                ("stacked", "stacked_mean_deviance"),
                ("mass-weighted", "mass_mean_deviance"),
            ):
                errors = [r[key] - ref["mean_deviance"] for r in runs if key in r]
                if errors:
                    result["errors"].setdefault(what, {})[label] = errors
                    print(
                        f"  {label}: mean error {np.mean(errors):+.2f} (range "
                        f"{min(errors):+.2f}..{max(errors):+.2f}), mean |error| "
                        f"{np.mean(np.abs(errors)):.2f}",
                        flush=True,
                    )
            shares = [
                float(
                    np.sum(
                        np.array(r["mass_weights"])[np.array(r["chain_minor_mode_fraction"]) > 0.5]
                    )
                )
                for r in runs
                if "mass_weights" in r
            ]
            if shares:
                print(
                    "  mass weight of the chains mostly in the minor mode: "
                    f"{', '.join(f'{v:.3f}' for v in shares)} (importance sampling's "
                    f"minor-mode mass {ref['minor_mode_mass']:.3f})",
                    flush=True,
                )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
