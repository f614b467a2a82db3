r"""Bayesian stacking of MCMC chains that do not mix (Yao, Vehtari & Gelman 2022).

When chains settle in different modes, pooling their draws weights each mode by the
number of chains that happened to land there. Stacking weights chain ``c`` by how well
its draws predict left-out observations: with :math:`p_c(y_n \mid y_{-n})` the PSIS-LOO
predictive density of observation ``n`` under chain ``c`` alone,

.. math:: \hat w = \arg\max_{w \in \Delta} \sum_{n=1}^N
          \log \sum_c w_c\, p_c(y_n \mid y_{-n}).

Chains that predict alike make this objective flat (any split of the weight among them
is optimal, and an optimizer picks one at random). So chains are first grouped: two
chains are in the same group when their elpd difference is within two standard errors
(:math:`|\Delta\mathrm{elpd}| \le 2\,\mathrm{se}`, as in :func:`arviz.compare`; groups
are the connected components). Each group's predictive density is its chains' average;
the groups are stacked; a group's weight is shared equally by its chains. Well-mixed
chains are one group and get equal weights: stacking then changes nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr
from scipy.optimize import minimize

from bayesgmm._validation import as_generator

__all__ = ["ChainStacking", "group_chains", "stack_chains", "stacking_weights"]


class ChainStacking(NamedTuple):
    """Result of :func:`stack_chains`.

    Attributes
    ----------
    weights : ndarray of shape (chains,)
        Stacking weights (sum to 1).
    groups : ndarray of shape (chains,)
        The group (0, 1, ...) of each chain: chains that predict alike.
    elpd_loo : ndarray of shape (chains,)
        Each chain's PSIS-LOO expected log predictive density (sum over observations).
    pareto_k : ndarray of shape (chains,)
        Each chain's largest Pareto k (above 0.7: that chain's LOO is unreliable).
    pointwise : ndarray of shape (chains, N)
        ``log p_c(y_n | y_-n)``.
    posterior : xarray.Dataset
        Draws resampled from the chains with probabilities ``weights``: dims
        ``(chain, draw)`` with one chain, as many draws as the input had in all.
    """

    weights: np.ndarray
    groups: np.ndarray
    elpd_loo: np.ndarray
    pareto_k: np.ndarray
    pointwise: np.ndarray
    posterior: xr.Dataset


def group_chains(pointwise: np.ndarray, n_se: float = 2.0) -> np.ndarray:
    """Connected components of "elpd difference within ``n_se`` standard errors"."""
    lpd = np.asarray(pointwise, dtype=float)
    n_chains, n_obs = lpd.shape
    labels = np.arange(n_chains)
    for a in range(n_chains):
        for b in range(a + 1, n_chains):
            diff = lpd[a] - lpd[b]
            se = np.sqrt(n_obs * diff.var())
            if abs(diff.sum()) <= n_se * se:
                old, new = labels[b], labels[a]
                labels[labels == old] = new
    _, groups = np.unique(labels, return_inverse=True)
    return groups


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


def stack_chains(idata, *, var_name: str | None = None, random_state=None) -> ChainStacking:
    """Weight the chains of ``idata`` by Bayesian stacking of their LOO predictions.

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
        Seed of the resampling.

    Returns
    -------
    ChainStacking

    Notes
    -----
    Each chain's pointwise ``log p_c(y_n | y_-n)`` is :func:`arviz.loo` (PSIS-LOO) on
    that chain alone.

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
    import arviz as az

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
    pointwise, elpd, kmax = [], [], []
    for c in range(chains):
        sub = xr.DataTree.from_dict(
            {
                "posterior": posterior.isel(chain=[c]),
                "log_likelihood": loglik[[var_name]].isel(chain=[c]),
            }
        )
        res = az.loo(sub, pointwise=True, var_name=var_name)
        pointwise.append(np.asarray(res.elpd_i).ravel())
        elpd.append(float(res.elpd))
        kmax.append(float(np.nanmax(np.asarray(res.pareto_k))))
    pointwise = np.stack(pointwise)
    groups = group_chains(pointwise)
    n_groups = int(groups.max()) + 1
    group_lpd = np.stack(
        [
            np.logaddexp.reduce(pointwise[groups == g], axis=0) - np.log((groups == g).sum())
            for g in range(n_groups)
        ]
    )
    group_weights = stacking_weights(group_lpd)
    weights = group_weights[groups] / np.bincount(groups)[groups]
    rng = as_generator(random_state)
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
    resampled.attrs["stacking_weights"] = weights.tolist()
    return ChainStacking(weights, groups, np.array(elpd), np.array(kmax), pointwise, resampled)
