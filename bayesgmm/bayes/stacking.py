r"""Bayesian stacking of MCMC chains that do not mix (Yao, Vehtari & Gelman 2022).

When chains settle in different modes, pooling their draws weights each mode by the
number of chains that happened to land there. Stacking weights chain ``c`` by how well
its draws predict left-out observations: with :math:`p_c(y_n \mid y_{-n})` the PSIS-LOO
predictive density of observation ``n`` under chain ``c`` alone,

.. math:: \hat w = \arg\max_{w \in \Delta} \sum_{n=1}^N
          \log \sum_c w_c\, p_c(y_n \mid y_{-n}).

Chains that predict alike make this objective flat (any split of the weight among them
is optimal, and an optimizer picks one at random). So chains are first grouped: two
chains are in the same group when their pointwise LOO predictions differ by no more
than Monte Carlo error (:func:`group_chains`; groups are the connected components).
Each group's predictive density is its chains' average; the groups are stacked; a
group's weight is shared equally by its chains. Well-mixed chains are one group and get
equal weights: stacking then changes nothing.

Stacking weights maximize predictive accuracy, not posterior mass: where two modes
predict some points differently, a mix of both can predict better than either, and
then gets weight even if the posterior puts little mass on one mode. The galaxy case
(``benchmarks/bench_galaxy_stacking.py``, the user guide's "Chains that do not mix,
weighted by mass") shows this: a minor mode with 2% of the posterior mass gets 45-48%
of the weight, and the stacked mean deviance removes about a fifth of pooling's error
(+1.54 against +1.98 over 7 runs). Use the stacked draws for prediction.

``method="mass"`` weights the groups by the posterior mass of the modes they sample
instead, estimated by bridge sampling on the model's unconstrained space
(:func:`bayesgmm.core.bridge.chain_log_masses`, the model's log density from
:mod:`bayesgmm.bayes.mass`). When each group samples one mode, the mass-weighted draws
are the posterior, so their averages are posterior expectations (on the galaxy data
the mean deviance's error is +0.10 over the same 7 runs, the minor mode's weight
2.4-2.6% against its 2.2%: ``benchmarks/results/galaxy_stacking.txt``); the stacking
weights are still computed and reported (``stacking_weights``), for prediction.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr
from scipy.optimize import minimize

from bayesgmm._validation import as_generator

__all__ = ["ChainStacking", "group_chains", "stack_chains", "stacking_weights"]

STACKING_METHODS = ("stacking", "mass")


class ChainStacking(NamedTuple):
    r"""Result of :func:`stack_chains`.

    Attributes
    ----------
    weights : ndarray of shape (chains,)
        Stacking weights (sum to 1).
    groups : ndarray of shape (chains,)
        The group (0, 1, ...) of each chain: chains that predict alike (for
        ``method="mass"`` also with log masses that agree within Monte Carlo error,
        :func:`bayesgmm.core.bridge.split_inconsistent`).
    elpd_loo : ndarray of shape (chains,)
        Each chain's PSIS-LOO expected log predictive density (sum over observations).
    pareto_k : ndarray of shape (chains,)
        Each chain's largest Pareto k (above 0.7: that chain's LOO is unreliable).
    pointwise : ndarray of shape (chains, N)
        ``log p_c(y_n | y_-n)``.
    posterior : xarray.Dataset
        Draws resampled from the chains with probabilities ``weights``: dims
        ``(chain, draw)`` with one chain, as many draws as the input had in all.
    method : {'stacking', 'mass'}
        What ``weights`` are.
    stacking_weights : ndarray of shape (chains,)
        The stacking weights (= ``weights`` for ``method="stacking"``).
    log_mass, log_mass_se : ndarray of shape (chains,) or None
        ``method="mass"``: each chain's bridge-sampling estimate of the log posterior
        mass (unnormalized) of the region its draws cover, and its standard error.
    group_log_mass, group_log_mass_se : ndarray of shape (groups,) or None
        The same per group (inverse-variance weighted over its chains); the groups'
        weights are ``softmax(group_log_mass)``.
    group_consistency : ndarray of shape (groups,) or None
        :math:`\chi^2/(C_g - 1)` of a group's chain estimates about the group's (about
        1 when its chains agree; much larger: a chain of the group samples another
        region, e.g. it wanders between modes). NaN for a group of one chain.
    """

    weights: np.ndarray
    groups: np.ndarray
    elpd_loo: np.ndarray
    pareto_k: np.ndarray
    pointwise: np.ndarray
    posterior: xr.Dataset
    method: str = "stacking"
    stacking_weights: np.ndarray | None = None
    log_mass: np.ndarray | None = None
    log_mass_se: np.ndarray | None = None
    group_log_mass: np.ndarray | None = None
    group_log_mass_se: np.ndarray | None = None
    group_consistency: np.ndarray | None = None


def group_chains(pointwise: np.ndarray, mc_variance: np.ndarray, n_se: float = 3.0) -> np.ndarray:
    r"""Group chains whose pointwise predictions agree within Monte Carlo error.

    Chains ``a`` and ``b`` are linked when the mean squared difference of their
    pointwise values is at most ``n_se**2`` times their Monte Carlo variance,

    .. math:: \frac1N \sum_n (\ell_{an} - \ell_{bn})^2 \le
              n_{se}^2\, \frac1N \sum_n (v_{an} + v_{bn}),

    and the groups are the connected components. Two chains in one mode differ by
    Monte Carlo noise only (the ratio is of order 1); chains in different modes differ by a
    fixed amount on the points the modes explain differently, which more draws do not
    shrink. (The sampling standard error of an elpd difference, as in
    :func:`arviz.compare`, is the wrong yardstick here: it measures whether one chain
    predicts new data better, and for modes that differ on a few points it is large, so
    it would put different modes in one group.)

    Parameters
    ----------
    pointwise : ndarray of shape (C, N)
        Each chain's pointwise values (LOO log predictive densities).
    mc_variance : ndarray of shape (C, N)
        Their Monte Carlo variances (e.g. batch means within each chain).
    n_se : float, default=3.0

    Returns
    -------
    ndarray of shape (C,)
        Group labels 0, 1, ... in order of first appearance.

    Examples
    --------
    >>> import numpy as np
    >>> lpd = np.array([[-1.0, -2.0], [-1.01, -2.01], [-1.5, -1.5]])
    >>> group_chains(lpd, np.full((3, 2), 1e-4)).tolist()
    [0, 0, 1]
    """
    lpd = np.asarray(pointwise, dtype=float)
    var = np.asarray(mc_variance, dtype=float)
    n_chains = lpd.shape[0]
    labels = np.arange(n_chains)
    for a in range(n_chains):
        for b in range(a + 1, n_chains):
            noise = float(np.mean(var[a] + var[b]))
            if np.mean((lpd[a] - lpd[b]) ** 2) <= n_se**2 * noise:
                old, new = labels[b], labels[a]
                labels[labels == old] = new
    _, first, groups = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # relabel groups by first appearance
    return order[groups]


def stacking_weights(pointwise: np.ndarray, penalty: float = 0.0) -> np.ndarray:
    """Weights maximizing ``sum_n log sum_c w_c exp(pointwise[c, n]) + penalty sum log w``.

    Parameters
    ----------
    pointwise : ndarray of shape (C, N)
        Log predictive densities per candidate (chain) and observation.
    penalty : float, default=0.0
        A Dirichlet(1 + penalty) log prior on the weights.

    Examples
    --------
    >>> import numpy as np
    >>> lpd = np.log(np.array([[0.9, 0.9, 0.9], [0.1, 0.1, 0.1]]))
    >>> w = stacking_weights(lpd, penalty=0.0)
    >>> bool(w[0] > 0.99)
    True
    """
    lpd = np.asarray(pointwise, dtype=float)
    n_chains = lpd.shape[0]
    if n_chains == 1:
        return np.ones(1)
    top = lpd.max(axis=0)
    E = np.exp(lpd - top)  # (C, N)

    def objective(a):
        a = a - a.max()
        w = np.exp(a) / np.exp(a).sum()
        mix = w @ E  # (N,)
        value = np.log(mix).sum() + penalty * np.log(w).sum()
        g = (E / mix).sum(axis=1)  # d/dw_c of the data term
        gw = g + penalty / w
        grad_a = w * (gw - w @ gw)
        return -value, -grad_a

    res = minimize(objective, np.zeros(n_chains), jac=True, method="L-BFGS-B")
    a = res.x - res.x.max()
    return np.exp(a) / np.exp(a).sum()


def stack_chains(
    idata,
    *,
    var_name: str | None = None,
    random_state=None,
    method: str = "stacking",
    model=None,
    density=None,
) -> ChainStacking:
    """Weight the chains of ``idata``: by Bayesian stacking of their LOO predictions, or
    by the posterior mass of the modes they sample.

    Parameters
    ----------
    idata : xarray.DataTree
        With a ``posterior`` group and a ``log_likelihood`` group (dims ``chain``,
        ``draw`` and the observation dims), e.g. ``PosteriorGaussianMixture().idata_``
        or ``pm.sample`` on a :func:`~bayesgmm.bayes.build_model` model followed by
        ``pm.compute_log_likelihood``.
    var_name : str, optional
        The log-likelihood variable (default: the only one; required if several).
    random_state : int, Generator or None
        Seed of the resampling (and of the bridge sampler's proposal draws).
    method : {'stacking', 'mass'}, default='stacking'
        ``'stacking'``: the groups of chains (below) weighted to maximize the stacked
        LOO predictive density (Yao, Vehtari & Gelman 2022): the better predictive
        distribution, not posterior mass. ``'mass'``: the groups weighted by their
        posterior mass, by bridge sampling (Meng & Wong 1996; Gronau et al. 2017) of
        the model's log density on its unconstrained space, so that weighted
        averages are posterior expectations (when each group samples one mode).
        Needs ``model`` or ``density``.
    model : pymc.Model, optional
        For ``method="mass"``: the model that was sampled (any PyMC model, also one
        extended from :func:`~bayesgmm.bayes.build_model`); ``idata["posterior"]``
        must hold draws of each of its free variables.
    density : UnconstrainedDensity, optional
        Instead of ``model``: the maps of :mod:`bayesgmm.bayes.mass` (this package's
        estimator passes its kernel's density).

    Returns
    -------
    ChainStacking

    Notes
    -----
    What ``method="mass"`` estimates (:func:`bayesgmm.core.bridge.chain_log_masses`):
    each chain's bridge estimate of the mass of the region its draws cover, a normal
    proposal fitted to the first half of the chain's draws, the second half and as
    many proposal draws for the estimate (the unnormalized log density: ``model``'s
    ``compile_logp()``, Jacobians included, at the draws mapped to the value
    variables). Groups are first the chains that predict alike (below), then split
    where their chains' log masses disagree beyond Monte Carlo error
    (:func:`bayesgmm.core.bridge.split_inconsistent`: a chain that wanders between
    modes covers more mass than chains that stay in one). A group's log mass is its
    chains' inverse-variance weighted mean, and its weight its share of the total.
    Label switching: each chain must stay in one labelling (or be relabelled); chains
    of one group may sit in different copies of their mode, which have equal mass. The
    weighted draws are the posterior when each group samples one mode in its
    posterior proportions; a chain that wanders between modes (in the wrong
    proportions) remains a source of error that no weighting of whole chains removes.

    Each chain's pointwise ``log p_c(y_n | y_-n)`` is :func:`arviz.loo` (PSIS-LOO) on
    that chain alone; its Monte Carlo variance, for :func:`group_chains`, comes from
    the LOO of four consecutive batches of the chain's draws (batch means). A chain
    with fewer than 40 draws cannot be told apart from noise and is grouped with every
    other chain.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=30)
    >>> mu = np.concatenate([rng.normal(y.mean(), 0.2, (1, 400)),
    ...                      rng.normal(y.mean() + 3, 0.2, (1, 400))])
    >>> ll = -0.5 * (y[None, None] - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    >>> tree = xr.DataTree.from_dict({
    ...     "posterior": xr.Dataset({"mu": (("chain", "draw"), mu)}),
    ...     "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)})})
    >>> result = stack_chains(tree, random_state=0)
    >>> bool(result.weights[0] > 0.9)
    True
    """

    if method not in STACKING_METHODS:
        raise ValueError(f"Unknown method {method!r}; expected one of {STACKING_METHODS}.")
    if method == "mass" and model is None and density is None:
        raise ValueError(
            "method='mass' needs the sampled model's log density: pass model= (the "
            "pymc.Model) or density= (bayesgmm.bayes.mass.UnconstrainedDensity)."
        )
    loglik = idata["log_likelihood"].to_dataset()
    if var_name is None:
        names = list(loglik.data_vars)
        if len(names) != 1:
            raise ValueError(
                f"`idata` has several log-likelihood variables {names}: pass var_name."
            )
        var_name = names[0]
    if var_name not in loglik:
        raise ValueError(f"No log-likelihood variable {var_name!r} in `idata`.")
    posterior = idata["posterior"].to_dataset()
    chains = posterior.sizes["chain"]
    pointwise, elpd, kmax, mc_variance = [], [], [], []
    for c in range(chains):
        ll = loglik[[var_name]].isel(chain=[c])
        elpd_i, pareto_k = _pointwise_loo(posterior.isel(chain=[c]), ll, var_name)
        pointwise.append(elpd_i)
        elpd.append(float(elpd_i.sum()))
        kmax.append(float(np.nanmax(pareto_k)))
        mc_variance.append(_batch_variance(posterior.isel(chain=[c]), ll, var_name))
    pointwise = np.stack(pointwise)
    groups = group_chains(pointwise, np.stack(mc_variance))
    n_groups = int(groups.max()) + 1
    group_lpd = np.stack(
        [
            np.logaddexp.reduce(pointwise[groups == g], axis=0) - np.log((groups == g).sum())
            for g in range(n_groups)
        ]
    )
    group_weights = stacking_weights(group_lpd)
    stack_w = group_weights[groups] / np.bincount(groups)[groups]
    weights = stack_w
    rng = as_generator(random_state)
    masses = None
    if method == "mass":
        masses, groups = _mass_weights(posterior, groups, model, density, rng)
        weights = masses.weights
    draws = posterior.sizes["draw"]
    total = chains * draws
    chain_idx = rng.choice(chains, size=total, p=weights)
    draw_idx = rng.integers(draws, size=total)
    stacked = posterior.stack(sample=("chain", "draw"))
    flat = chain_idx * draws + draw_idx
    # rebuild plain (chain, draw) dims: one chain of resampled draws
    resampled = stacked.isel(sample=flat).drop_vars(["sample", "chain", "draw"])
    resampled = resampled.rename({"sample": "draw"}).assign_coords(draw=np.arange(total))
    resampled = resampled.expand_dims(chain=[0]).transpose("chain", "draw", ...)
    resampled.attrs["stacking_weights"] = stack_w.tolist()
    resampled.attrs["chain_weights"] = weights.tolist()
    resampled.attrs["weights_method"] = method
    mass_fields = (
        (None,) * 5
        if masses is None
        else (
            masses.log_mass,
            masses.log_mass_se,
            masses.group_log_mass,
            masses.group_log_mass_se,
            masses.group_consistency,
        )
    )
    return ChainStacking(
        weights, groups, np.array(elpd), np.array(kmax), pointwise, resampled, method,
        stack_w, *mass_fields,
    )  # fmt: skip


def _mass_weights(posterior: xr.Dataset, groups, model, density, rng):
    """Bridge-sampling masses of the groups (one group: equal weights, still estimated)."""
    from bayesgmm.bayes.mass import pymc_density
    from bayesgmm.core.bridge import chain_log_masses, group_masses, split_inconsistent

    if density is None:
        density = pymc_density(model)
    theta = density.to_unconstrained(posterior)
    seed = int(rng.integers(2**31 - 1))
    masses = chain_log_masses(theta, density.log_density, groups, random_state=seed)
    refined = split_inconsistent(masses.log_mass, masses.log_mass_se, groups)
    if not np.array_equal(refined, groups):  # the chains' estimates, regrouped
        masses = group_masses(masses.log_mass, masses.log_mass_se, refined)
    bad = np.flatnonzero(~np.isfinite(masses.log_mass) | ~np.isfinite(masses.log_mass_se))
    if bad.size or not np.isfinite(masses.weights).all():
        raise ValueError(
            f"the bridge sampler's estimate is not finite for chain(s) {bad.tolist()} "
            "(a chain whose two halves sample different regions, or that barely moved)"
        )
    return masses, refined


_N_BATCHES = 4


def _loo_tree(posterior: xr.Dataset, loglik: xr.Dataset) -> xr.DataTree:
    return xr.DataTree.from_dict({"posterior": posterior, "log_likelihood": loglik})


#: ArviZ's PSIS errors where its Pareto tail cannot be fitted (arviz_stats'
#: ``loo_moment_match`` falls back to plain importance sampling on the same two).
_PSIS_TAIL_ERRORS = ("All tail values are the same", "n_draws_tail must be at least 5")


def _pointwise_loo(
    posterior: xr.Dataset, loglik: xr.Dataset, var_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise PSIS-LOO (:func:`arviz.loo`) of one chain or batch, and the Pareto k
    of each observation. Where PSIS cannot fit its tail (ArviZ's "All tail values are
    the same": a chain stuck at one point, whose log-likelihood does not vary), plain
    importance-sampling LOO, ``-log mean_s exp(-log p(y_n | theta_s))`` (exact for a
    constant log-likelihood), with Pareto k = inf to mark it unreliable; the same where
    the draws are too few for a tail of 5 (ArviZ's "n_draws_tail must be at least 5":
    fewer than 25 draws, e.g. a batch of :func:`_batch_variance` on a short run)."""
    import warnings

    import arviz as az

    try:
        with warnings.catch_warnings():  # high Pareto k: returned (the result's kmax)
            warnings.filterwarnings("ignore", message=".*shape parameter of Pareto.*")
            res = az.loo(_loo_tree(posterior, loglik), pointwise=True, var_name=var_name)
    except ValueError as exc:
        # only PSIS's tail fit failing, not bad input (the two errors ArviZ's own
        # moment matching falls back on)
        if not any(message in str(exc) for message in _PSIS_TAIL_ERRORS):
            raise
        ll = np.asarray(loglik[var_name].values, dtype=float)
        ll = ll.reshape(-1, ll[0, 0].size)  # (draws, observations)
        elpd_i = np.log(ll.shape[0]) - np.logaddexp.reduce(-ll, axis=0)
        return elpd_i, np.full(elpd_i.shape, np.inf)
    return np.asarray(res.elpd_i, dtype=float).ravel(), np.asarray(res.pareto_k).ravel()


def _batch_variance(posterior: xr.Dataset, loglik: xr.Dataset, var_name: str) -> np.ndarray:
    """Monte Carlo variance of one chain's pointwise PSIS-LOO values, by batch means:
    the chain cut into 4 consecutive batches, each's LOO, their variance / 4."""
    import warnings

    n_draws = posterior.sizes["draw"]
    size = n_draws // _N_BATCHES
    if size < 10:  # too short to tell noise from modes: infinite noise, one group
        return np.full(loglik[var_name].isel(chain=0, draw=0).size, np.inf)
    values = []
    for b in range(_N_BATCHES):
        part = {"draw": slice(b * size, (b + 1) * size)}
        with warnings.catch_warnings():  # short batches: Pareto k warnings are expected
            warnings.simplefilter("ignore")
            elpd_i, _ = _pointwise_loo(posterior.isel(part), loglik.isel(part), var_name)
        values.append(elpd_i)
    return np.var(np.stack(values), axis=0, ddof=1) / _N_BATCHES


def combine_estimator_chains(estimator, X: np.ndarray) -> tuple[ChainStacking, str | None]:
    """How :class:`~bayesgmm.bayes.PosteriorGaussianMixture` combines chains that
    disagree: weighted by their modes' posterior mass (``method="mass"``, the density
    it sampled: :func:`bayesgmm.bayes.mass.estimator_density`), so that its summaries
    are posterior expectations; the stacking weights are reported beside them. Where
    the mass cannot be estimated (an error of the bridge sampler), stacking, and the
    error's text as the second value."""
    from bayesgmm.bayes.mass import estimator_density

    try:
        density = estimator_density(estimator, X)
        result = stack_chains(
            estimator.idata_, random_state=estimator.random_state, method="mass", density=density
        )
        return result, None
    except (ValueError, np.linalg.LinAlgError) as exc:
        return stack_chains(estimator.idata_, random_state=estimator.random_state), str(exc)


def combination_text(result: ChainStacking, mass_error: str | None = None) -> str:
    """The sentence of the estimator's warning and report on how chains were combined."""
    stacking = ", ".join(f"{w:.2f}" for w in result.stacking_weights)
    if result.method == "mass":
        mass = ", ".join(f"{w:.3f}" for w in result.weights)
        log_mass = ", ".join(
            f"{v:.2f} +- {e:.2f}"
            for v, e in zip(result.group_log_mass, result.group_log_mass_se, strict=True)
        )
        return (
            "the summaries weight each group of chains by its mode's posterior mass, "
            f"estimated by bridge sampling (chain weights {mass}; log mass per group "
            f"{log_mass}); for prediction, stacking by how well each chain predicts "
            f"left-out points gives the weights {stacking}"
        )
    why = f" (the mass could not be estimated: {mass_error})" if mass_error else ""
    return (
        "the summaries use the chains stacked by how well each predicts left-out points "
        f"(stacking weights {stacking}){why}; stacking does not weight by posterior mass"
    )
