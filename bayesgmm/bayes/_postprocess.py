r"""Post-processing of posterior draws: one pass for the log-likelihood and memberships,
the R-hat/ESS table, the chains' agreement.

Everything a fit computes after sampling that grows with the draws lives here, so that
it costs a small fraction of the sampling (issue 12):

- :func:`draw_pass`: one pass over the draws, in chunks, that gives the pointwise
  log-likelihood ``log p(x_n | theta_s)`` of every draw (the ``log_likelihood`` group)
  and, from the same log densities, the mean membership probabilities of chosen groups
  of draws under given relabelling permutations (the mode check's per-chain
  memberships). The log densities of a chunk of draws are one GEMM on the EM engine's
  feature map (:mod:`bayesgmm.core.kernels`); chunks run on a few threads (NumPy and
  BLAS release the GIL; BLAS is held to one thread per chunk), each writing its own
  slice, so the result does not depend on the number of threads.
- :func:`diagnostics_table`: max R-hat and min bulk/tail ESS per parameter, before and
  after relabelling (ArviZ), without computing a number twice: a variable the
  relabelling cannot change (no ``component`` dimension: a tied covariance), or an
  element bitwise equal to another (the symmetric halves of a covariance matrix), is
  taken from the first computation.
- :func:`chain_agreement`: do the chains sample one mode (R-hat of the total
  log-likelihood, and each chain's membership shift)?
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm.core.covariance import get_covariance_model

__all__ = [
    "ChainAgreement",
    "DrawPass",
    "available_memory",
    "chain_agreement",
    "check_log_likelihood_memory",
    "diagnostics_table",
    "draw_pass",
    "mean_responsibilities",
    "member_groups",
    "pointwise_log_likelihood",
    "posterior_pass",
]

_PARAMS = ("weights", "means", "covariances")

#: Threads of :func:`draw_pass` by default: the cores this process may use, at most 4.
DEFAULT_THREADS = max(
    1,
    min(
        4,
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
    ),
)


class DrawPass(NamedTuple):
    """Outcome of :func:`draw_pass`.

    Attributes
    ----------
    log_likelihood : ndarray of shape (*lead, N)
        ``log p(x_n | theta_s)`` for every draw (leading axes of the parameters).
    members : ndarray of shape (G, N, K) or None
        Group ``g``'s mean membership probabilities (None when no groups were asked).
    probabilities : ndarray of shape (S, N, K) or None
        Every draw's membership probabilities, draws flattened, in the draws' own
        labels (only when asked).
    """

    log_likelihood: np.ndarray
    members: np.ndarray | None
    probabilities: np.ndarray | None = None


def _storage(covariance_type: str) -> str:
    """The storage layout, from the core table's dims (mclust's names and the diagonal
    families store like the four scikit-learn types)."""
    return {
        ("component", "feature", "feature_bis"): "full",
        ("feature", "feature_bis"): "tied",
        ("component", "feature"): "diag",
        ("component",): "spherical",
    }[get_covariance_model(covariance_type).dims]


def _chunk_kernel(storage, centred_means, cov, m, k, d):
    """The feature-map kernel of ``m`` draws' ``k`` components (one big mixture)."""
    from bayesgmm.core.kernels import diagonal_feature_kernel, quadratic_feature_kernel

    if storage in ("full", "tied"):
        c = cov if storage == "full" else np.broadcast_to(cov[:, None], (m, k, d, d))
        L = np.linalg.cholesky(c.reshape(m * k, d, d))
        U = np.swapaxes(np.linalg.inv(L), -1, -2)  # precision Cholesky, P = U U^T
        log_det = -np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)  # log |U|
        return quadratic_feature_kernel(centred_means, U, log_det, False, np.float64)
    var = cov if storage == "diag" else cov[:, :, None]
    var = np.broadcast_to(var, (m, k, d)).reshape(m * k, d)
    log_det = -0.5 * np.log(var).sum(-1)
    return diagonal_feature_kernel(centred_means, var**-0.5, log_det, np.float64)


def draw_pass(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    covariance_type: str,
    *,
    groups: np.ndarray | None = None,
    permutations: np.ndarray | None = None,
    max_floats: int = 500_000,
    n_threads: int | None = None,
    probabilities: bool = False,
) -> DrawPass:
    r"""Pointwise log-likelihood of every draw and mean memberships of groups of draws,
    in one pass over the draws.

    .. math:: \ell_{sn} = \log \sum_k \pi^{(s)}_k N(x_n \mid \mu^{(s)}_k, \Sigma^{(s)}_k),
              \qquad M_{g,nk} = \frac{1}{|g|} \sum_{s \in g}
              r^{(s)}_{n, \nu_s(k)}, \quad r^{(s)}_{nk} = \pi^{(s)}_k
              N(x_n \mid \mu^{(s)}_k, \Sigma^{(s)}_k) e^{-\ell_{sn}}

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Complete rows.
    weights, means, covariances : ndarray
        Draws in the covariance type's shapes with the same leading axes (for example
        (chain, draw)), flattened in C order for ``groups`` and ``permutations``.
    covariance_type : str
    groups : ndarray of shape (S,), optional
        Group of each (flattened) draw for the memberships, ``-1`` for none.
    permutations : ndarray of shape (S, K), optional
        Relabelling of each draw: membership ``k`` of draw ``s`` is its component
        ``permutations[s, k]`` (identity when None).
    max_floats : int, default=500_000
        Numbers per chunk's (draws, K, N) array of log densities.
    n_threads : int, optional
        Threads over the chunks (:data:`DEFAULT_THREADS` when None); the result is the
        same for any number.
    probabilities : bool, default=False
        Also return every draw's membership probabilities, (S, N, K) (Stephens'
        relabelling needs them).

    Returns
    -------
    DrawPass

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0]])
    >>> w, mu, var = np.full((1, 2), 0.5), np.array([[[0.0], [1.0]]]), np.ones((1, 2))
    >>> out = draw_pass(X, w, mu, var, "spherical", groups=np.zeros(1, dtype=int))
    >>> out.log_likelihood.shape, out.members.shape
    ((1, 2), (1, 2, 2))
    """
    k = weights.shape[-1]
    n, d = X.shape
    lead = weights.shape[:-1]
    storage = _storage(covariance_type)
    w = weights.reshape(-1, k)
    mu = means.reshape(-1, k, d)
    cov = covariances.reshape(-1, *covariances.shape[len(lead) :])
    n_draws = w.shape[0]
    center = X.mean(axis=0)  # the expansion's accuracy needs centred data
    Xc = X - center
    phi = _chunk_kernel(storage, (mu[:1] - center).reshape(k, d), cov[:1], 1, k, d).features(Xc)
    out = np.empty((n_draws, n))
    probs = np.empty((n_draws, n, k)) if probabilities else None
    n_groups = 0
    if groups is not None:
        groups = np.asarray(groups, dtype=np.intp).reshape(n_draws)
        n_groups = int(groups.max()) + 1 if groups.size else 0
        if permutations is not None:
            permutations = np.asarray(permutations, dtype=np.intp).reshape(n_draws, k)
    step = max(1, int(max_floats // max(1, k * n)))
    longest = min(step, max(1, n_draws))  # the longest chunk: the work arrays' size
    chunks = [slice(lo, min(lo + step, n_draws)) for lo in range(0, n_draws, step)]

    local = threading.local()  # each thread's work arrays, reused chunk after chunk

    def one(sl: slice):
        m = sl.stop - sl.start
        if not hasattr(local, "lw"):
            local.lw, local.top, local.total = (
                np.empty((longest * k, n)), np.empty((longest, n)), np.empty((longest, n))
            )  # fmt: skip
        kernel = _chunk_kernel(storage, (mu[sl] - center).reshape(m * k, d), cov[sl], m, k, d)
        kernel.A_t[:, 0] += np.log(w[sl]).reshape(-1)  # log pi_k joins the constants
        lw = kernel.log_gaussian_from_features(phi, out=local.lw[: m * k]).reshape(m, k, n)
        # max and sum over the components as K - 1 elementwise operations on (m, N)
        # slices, contiguous along the rows (a reduction over the middle axis is not)
        top = local.top[:m]
        np.copyto(top, lw[:, 0])
        for j in range(1, k):
            np.maximum(top, lw[:, j], out=top)
        lw -= top[:, None]
        np.exp(lw, out=lw)
        total = local.total[:m]
        np.copyto(total, lw[:, 0])
        for j in range(1, k):
            total += lw[:, j]
        if probs is not None:
            np.divide(lw, total[:, None], out=probs[sl].transpose(0, 2, 1))
        partial = {}
        if n_groups:
            chunk_groups = groups[sl]
            for g in np.unique(chunk_groups[chunk_groups >= 0]):
                rows = np.flatnonzero(chunk_groups == g)
                resp = lw[rows] / total[rows, None]  # (r, K, N)
                if permutations is not None:
                    resp = np.take_along_axis(resp, permutations[sl][rows][:, :, None], axis=1)
                partial[int(g)] = (resp.sum(axis=0).T, rows.size)
        np.log(total, out=out[sl])
        out[sl] += top
        return partial

    n_threads = DEFAULT_THREADS if n_threads is None else max(1, int(n_threads))
    if n_threads > 1 and len(chunks) > 1:
        from bayesgmm.core.estep import single_blas_thread

        with single_blas_thread(), ThreadPoolExecutor(min(n_threads, len(chunks))) as pool:
            partials = list(pool.map(one, chunks))
    else:
        partials = [one(sl) for sl in chunks]
    members = None
    if groups is not None:
        totals = np.zeros((n_groups, n, k))
        counts = np.zeros(n_groups)
        for partial in partials:  # chunk order: the same sums for any number of threads
            for g, (total, count) in partial.items():
                totals[g] += total
                counts[g] += count
        members = totals / np.maximum(counts, 1)[:, None, None]
    return DrawPass(out.reshape(*lead, n), members, probs)


def pointwise_log_likelihood(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    covariance_type: str,
    max_floats: int = 500_000,
) -> np.ndarray:
    """``log p(x_n | theta_s)`` for draws ``s`` (leading axes) and rows ``n``; where a row
    has NaN, the density of its observed coordinates (:func:`_observed_pass`, which is
    :func:`draw_pass` without memberships on complete data)."""
    return _observed_pass(
        X, weights, means, covariances, covariance_type, max_floats=max_floats
    ).log_likelihood


def mean_responsibilities(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    covariance_type: str,
    max_floats: int = 500_000,
) -> np.ndarray:
    """Responsibilities averaged over the draws (leading axes flattened), (N, K)."""
    groups = np.zeros(int(np.prod(weights.shape[:-1])), dtype=np.intp)
    return draw_pass(
        X, weights, means, covariances, covariance_type, groups=groups, max_floats=max_floats
    ).members[0]


def member_groups(chains: int, draws: int, max_draws: int = 100) -> np.ndarray:
    """Group of each (chain, draw), flattened: chain ``c``'s ``max_draws`` evenly spaced
    draws are group ``c``, the others ``-1`` (the mode check's memberships)."""
    index = np.unique(np.linspace(0, draws - 1, min(max_draws, draws)).astype(int))
    groups = np.full((chains, draws), -1, dtype=np.intp)
    groups[:, index] = np.arange(chains)[:, None]
    return groups.reshape(-1)


def available_memory() -> int | None:
    """Bytes of memory the system can give without swapping (Linux's ``MemAvailable``
    in ``/proc/meminfo``), or None where that is not known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_log_likelihood_memory(n_draws: int, n_rows: int) -> None:
    """Raise ``MemoryError``, naming the sizes, when the ``log_likelihood`` group of
    ``n_draws`` draws (all chains) and ``n_rows`` rows (8 bytes each) would not fit in
    the memory available (:func:`available_memory`; no check where it is unknown), so
    that a fit fails before sampling rather than after.

    Examples
    --------
    >>> check_log_likelihood_memory(4000, 272)  # 8.7 MB
    """
    need = 8 * int(n_draws) * int(n_rows)
    have = available_memory()
    if have is not None and need > have:
        raise MemoryError(
            f"The posterior's pointwise log-likelihood (the log_likelihood group, which "
            f"LOO, the chains' mode check and their combination need) takes "
            f"{need / 2**30:.1f} GiB for {n_draws} draws x {n_rows} rows, more than the "
            f"{have / 2**30:.1f} GiB of memory available: use fewer draws or chains, or "
            "fit a subsample of the rows."
        )


# -- R-hat and ESS ------------------------------------------------------------------


def _distinct_elements(values: np.ndarray, core_ndim: int) -> np.ndarray | None:
    """For a (chain, draw, *core) array, the flat core indices of the elements kept
    when the ones bitwise equal to an earlier one (mirror halves of a symmetric matrix)
    are dropped; None when all are distinct (or the core is not a square matrix)."""
    if core_ndim < 2 or values.shape[-1] != values.shape[-2]:
        return None
    d = values.shape[-1]
    i, j = np.triu_indices(d, 1)
    if not np.array_equal(values[..., i, j], values[..., j, i]):
        return None
    keep = np.ones(values.shape[2:], dtype=bool)
    keep[..., j, i] = False  # the lower half repeats the upper
    return keep


def _elements(ds: xr.Dataset, name: str) -> np.ndarray:
    """Variable ``name`` of ``ds`` as (chain, draw, element), each element once (the
    ones bitwise equal to an earlier one dropped: :func:`_distinct_elements`)."""
    values = np.asarray(ds[name].values, dtype=float)
    keep = _distinct_elements(values, values.ndim - 2)
    flat = values.reshape(*values.shape[:2], -1)
    return flat if keep is None else flat[:, :, np.flatnonzero(keep.reshape(-1))]


def _minmax(blocks: dict) -> dict:
    """``key -> (max R-hat, min bulk ESS, min tail ESS)`` of each (chain, draw, element)
    array of ``blocks``, by ArviZ's estimators vectorized over the elements
    (:mod:`bayesgmm.core.convergence`), all blocks' elements in one call (each
    element's numbers are computed alone, so batching does not change them)."""
    from arviz_stats.validate import validate_ci_prob

    from bayesgmm.core.convergence import rhat_ess

    keys = list(blocks)
    if not keys:
        return {}
    prob = validate_ci_prob(None)  # ArviZ's tail-ESS quantiles: its interval level
    rhat, bulk, tail = rhat_ess(np.concatenate([blocks[k] for k in keys], axis=2), prob)
    bounds = np.cumsum([0] + [blocks[k].shape[2] for k in keys])
    return {
        key: (
            float(np.max(rhat[lo:hi])),
            float(np.min(bulk[lo:hi])),
            float(np.min(tail[lo:hi])),
        )
        for key, lo, hi in zip(keys, bounds[:-1], bounds[1:], strict=True)
    }


def diagnostics_table(raw: xr.Dataset, relabelled: xr.Dataset, perms: np.ndarray) -> pd.DataFrame:
    """Max R-hat and min bulk/tail ESS per parameter, before and after relabelling.

    The relabelled numbers are computed only where the relabelling changed the draws:
    when no draw was permuted, or for a variable without a ``component`` dimension (a
    tied covariance), they are the raw ones.

    Returns
    -------
    pandas.DataFrame
        Index (parameter, draws) with draws ``'raw'`` / ``'relabelled'``; columns
        ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``.
    """
    names = [name for name in _PARAMS if name in raw]
    unchanged = bool((perms == np.arange(perms.shape[-1])).all())
    changed = [] if unchanged else [n for n in names if "component" in relabelled[n].dims]
    blocks = {("raw", n): _elements(raw, n) for n in names}
    blocks.update({("relabelled", n): _elements(relabelled, n) for n in changed})
    values = _minmax(blocks)  # one vectorized call for every element
    before = {n: values[("raw", n)] for n in names}
    after = {n: values[("relabelled", n)] if n in changed else before[n] for n in names}
    rows = []
    for label, values in (("raw", before), ("relabelled", after)):
        for name in names:
            rhat, bulk, tail = values[name]
            rows.append(
                {
                    "parameter": name,
                    "draws": label,
                    "max_rhat": rhat,
                    "min_ess_bulk": bulk,
                    "min_ess_tail": tail,
                }
            )
    return pd.DataFrame(rows).set_index(["parameter", "draws"])


# -- do the chains agree? -----------------------------------------------------------


class ChainAgreement(NamedTuple):
    """The mode check's numbers (:func:`chain_agreement`)."""

    chain_mean: np.ndarray  # (C,) mean total log-likelihood per chain
    rhat_total: float  # R-hat of the total log-likelihood (1 for one chain)
    shift: np.ndarray  # (C,) mean total-variation distance of each chain's memberships


def chain_agreement(total_log_likelihood: np.ndarray, members: np.ndarray) -> ChainAgreement:
    """Per-chain log-likelihood levels and membership shifts.

    Parameters
    ----------
    total_log_likelihood : ndarray of shape (C, S)
        ``sum_n log p(x_n | theta_s)`` of each chain's draws.
    members : ndarray of shape (C, N, K)
        Each chain's posterior-mean membership probabilities.
    """
    from bayesgmm.core.convergence import rank_rhat

    chains = total_log_likelihood.shape[0]
    chain_mean = total_log_likelihood.mean(axis=1)
    rhat_total = 1.0
    if chains > 1:
        rhat_total = float(rank_rhat(np.asarray(total_log_likelihood)[..., None])[0])
    shift = 0.5 * np.abs(members - members.mean(axis=0)).sum(axis=-1).mean(axis=-1)
    return ChainAgreement(chain_mean, rhat_total, shift)


# -- the fit's pass -----------------------------------------------------------------


def posterior_pass(
    X: np.ndarray,
    raw: xr.Dataset,
    relabelled: xr.Dataset,
    perms: np.ndarray,
    covariance_type: str,
    max_draws: int = 100,
    *,
    diagnostics: bool = False,
):
    """The fit's pass over its draws: the ``log_likelihood`` group and the mode check's
    per-chain memberships (and, with ``diagnostics``, the R-hat/ESS table, computed
    while the pass runs on other threads).

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Training rows (NaN marks a missing value).
    raw, relabelled : xarray.Dataset
        The draws before and after relabelling (``weights``, ``means``,
        ``covariances``; dims chain, draw, ...).
    perms : ndarray of shape (chain, draw, K)
        The relabelling (``relabelled`` component ``k`` of a draw is its raw component
        ``perms[c, s, k]``).
    covariance_type : str
    max_draws : int, default=100
        Evenly spaced draws per chain averaged for its memberships.
    diagnostics : bool, default=False
        Also return :func:`diagnostics_table` of the draws.

    Returns
    -------
    log_likelihood : ndarray of shape (chain, draw, N)
        ``log p(x_{n,O_n} | theta_s)`` (observed coordinates of each row).
    members : ndarray of shape (chain, N, K)
        Each chain's mean membership probabilities (relabelled components) over its
        ``max_draws`` evenly spaced draws.
    table : pandas.DataFrame
        Only with ``diagnostics``.
    """
    if not diagnostics:
        return _pass(X, raw, perms, covariance_type, max_draws)
    # The pass is NumPy and LAPACK on large arrays (the GIL mostly released), the table
    # NumPy on small ones (R-hat, ESS): run the pass on its threads meanwhile.
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(_pass, X, raw, perms, covariance_type, max_draws)
        table = diagnostics_table(raw, relabelled, perms)
        loglik, members = future.result()
    return loglik, members, table


def _pass(X, raw, perms, covariance_type, max_draws):
    chains, draws = perms.shape[:2]
    weights, means, covariances = (raw[name].values for name in _PARAMS)
    out = _observed_pass(
        X,
        weights,
        means,
        covariances,
        covariance_type,
        groups=member_groups(chains, draws, max_draws),
        permutations=perms,
    )
    return out.log_likelihood, out.members


def _observed_pass(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    covariance_type: str,
    *,
    groups: np.ndarray | None = None,
    permutations: np.ndarray | None = None,
    max_floats: int = 500_000,
    n_threads: int | None = None,
) -> DrawPass:
    """:func:`draw_pass` for rows with NaN: ``log p(x_{n,O_n} | theta_s)`` (the observed
    coordinates of each row) and the groups' mean memberships, missingness pattern by
    pattern. A Gaussian's marginal is the observed sub-vector and sub-block, so each
    pattern is :func:`draw_pass` on its rows and observed features (one thread each),
    the patterns on a few threads. Complete data: one :func:`draw_pass` on its threads."""
    from bayesgmm.core.missing import missing_patterns

    if not np.isnan(X).any():
        return draw_pass(
            X, weights, means, covariances, covariance_type, groups=groups,
            permutations=permutations, max_floats=max_floats, n_threads=n_threads,
        )  # fmt: skip
    dims = get_covariance_model(covariance_type).dims
    lead = weights.shape[:-1]
    k = weights.shape[-1]
    patterns = missing_patterns(X)

    def one(pattern):
        observed, rows = pattern
        o = np.flatnonzero(observed)
        if dims[-2:] == ("feature", "feature_bis"):  # matrices: the observed block
            cov = covariances[..., o[:, None], o[None, :]]
        elif len(dims) == 2:  # variances per feature
            cov = covariances[..., o]
        else:  # one variance per component
            cov = covariances
        return draw_pass(
            X[np.ix_(rows, o)], weights, means[..., o], cov, covariance_type,
            groups=groups, permutations=permutations, max_floats=max_floats, n_threads=1,
        )  # fmt: skip

    pairs = list(zip(patterns.patterns, patterns.rows, strict=True))
    n_threads = DEFAULT_THREADS if n_threads is None else max(1, int(n_threads))
    if n_threads > 1 and len(pairs) > 1:
        from bayesgmm.core.estep import single_blas_thread

        with single_blas_thread(), ThreadPoolExecutor(min(n_threads, len(pairs))) as pool:
            results = list(pool.map(one, pairs))
    else:
        results = [one(pair) for pair in pairs]
    loglik = np.empty((*lead, X.shape[0]))
    members = None
    if groups is not None:
        members = np.empty((results[0].members.shape[0], X.shape[0], k))
    for (_, rows), res in zip(pairs, results, strict=True):
        loglik[..., rows] = res.log_likelihood
        if members is not None:
            members[:, rows] = res.members
    return DrawPass(loglik, members)


def _observed_log_likelihood(
    X: np.ndarray, posterior: xr.Dataset, covariance_type: str
) -> np.ndarray:
    """``log p(x_{n,O_n} | theta_s)`` for every draw (chain, draw) of ``posterior`` and
    row of ``X`` (NaN where missing): :func:`pointwise_log_likelihood` of its draws."""
    weights, means, covariances = (posterior[name].values for name in _PARAMS)
    return pointwise_log_likelihood(X, weights, means, covariances, covariance_type)
