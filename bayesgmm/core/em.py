"""The EM loop: initialize, E-step, M-step, objective, convergence, restarts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from bayesgmm.core.covariance import CollapsedComponentError, InnerControl
from bayesgmm.core.estep import ChunkPlan, e_step, plan_chunks, worker_threads
from bayesgmm.core.init import HC_SUBSET, initial_params
from bayesgmm.core.missing import has_missing, weighted_column_means
from bayesgmm.core.mstep import m_step
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats

if TYPE_CHECKING:
    from bayesgmm.priors import GMMPrior

__all__ = ["EMResult", "best_of_starts", "fit_mixture", "run_em"]

#: ``callback(init, iteration, lower_bound, change)`` called after every EM iteration.
Callback = Callable[[int, int, float, float], None]


class EMResult(NamedTuple):
    """Outcome of EM from one start (or the best of several).

    Attributes
    ----------
    params : GMMParams
        Parameters after the last M-step.
    converged : bool
    n_iter : int
        Number of EM iterations run.
    lower_bound : float
        Objective per unit of sample weight at the last E-step: the mean
        log-likelihood (as scikit-learn's ``lower_bound_``), or with a prior
        ``(log-likelihood + log prior) / sum of weights``.
    lower_bounds : ndarray of shape (n_iter,)
        The objective at every iteration.
    init : int
        Index of the start that produced this result.
    """

    params: GMMParams
    converged: bool
    n_iter: int
    lower_bound: float
    lower_bounds: np.ndarray
    init: int = 0


def run_em(
    X: np.ndarray,
    params: GMMParams,
    *,
    covariance_type: str,
    tol: float,
    max_iter: int,
    reg_covar: float,
    prior: GMMPrior | None = None,
    sample_weight: np.ndarray | None = None,
    lower_bound: float = -np.inf,
    init: int = 0,
    callback: Callback | None = None,
    control: InnerControl | None = None,
    chunk_size: int | None = None,
    plan: ChunkPlan | None = None,
    n_workers: int | None = None,
    expectation: Callable[[GMMParams], tuple[float, SufficientStats]] | None = None,
) -> EMResult:
    """EM (MAP-EM if ``prior`` is given) from one start until the objective changes by
    less than ``tol``.

    The objective is ``(sum_n w_n log p(x_n) + log p(theta)) / sum_n w_n`` (no prior
    term without a prior), evaluated at each E-step; as in scikit-learn, the returned
    parameters are one M-step past the last objective.

    Every E-step is one pass of the chunk kernel (:func:`bayesgmm.core.estep.e_step`)
    that returns the objective and the sufficient statistics only (no ``(N, K)``
    array); ``chunk_size`` rows per chunk (``None``: the session setting or automatic),
    or a precomputed ``plan``; ``n_workers`` threads over chunks when called inside
    :func:`~bayesgmm.core.estep.worker_threads` (``None``: decided here).
    ``X`` (float64 or float32) is expected centered (as :func:`fit_mixture` does).
    ``expectation(params) -> (weighted log-likelihood, statistics)`` replaces that pass
    (e.g. the same kernel mapped over the blocks of a Dask array); ``X`` is then only
    used for its number of rows.
    """
    total_weight = X.shape[0] if sample_weight is None else float(sample_weight.sum())
    # Chunks cut, and rows with NaN grouped by missingness pattern, once for every E-step.
    if expectation is not None:
        plan, n_workers = ChunkPlan((), ()), 1
    elif plan is None:
        plan = plan_chunks(X, params.means.shape[0], covariance_type, chunk_size)
    history: list[float] = []
    cache: dict = {}  # what the E-steps keep across iterations (features of X)
    converged = False
    n_iter = 0
    # Threads over chunks for the whole loop (BLAS held to one per worker meanwhile).
    with worker_threads(len(plan.chunks), n_workers) as n_workers:
        for n_iter in range(1, max_iter + 1):
            previous = lower_bound
            if expectation is not None:
                objective, stats = expectation(params)
            else:
                objective, stats = e_step(
                    X,
                    params,
                    covariance_type,
                    sample_weight=sample_weight,
                    plan=plan,
                    n_workers=n_workers,
                    cache=cache,
                )
            if prior is not None:
                objective += prior.log_prob(params, covariance_type)
            lower_bound = objective / total_weight
            try:
                params = m_step(stats, reg_covar, prior, previous=params, control=control)
            except CollapsedComponentError as err:
                err.iteration = n_iter
                raise
            history.append(lower_bound)
            change = lower_bound - previous
            if callback is not None:
                callback(init, n_iter, lower_bound, change)
            if abs(change) < tol:
                converged = True
                break
    return EMResult(params, converged, n_iter, lower_bound, np.asarray(history), init)


def best_of_starts(
    n_starts: int, run: Callable[[int], EMResult]
) -> tuple[EMResult, list[CollapsedComponentError]]:
    """Run ``run(init)`` for ``init`` in ``range(n_starts)``; keep the highest objective.

    Starts that collapse are collected (with ``err.init`` set); if every one does, the
    last error is raised. Shared by the in-memory and the Dask fits.
    """
    best: EMResult | None = None
    failures: list[CollapsedComponentError] = []
    for init in range(n_starts):
        try:
            result = run(init)
        except CollapsedComponentError as err:
            err.init = init
            failures.append(err)
            continue
        if best is None or result.lower_bound > best.lower_bound:
            best = result
    if best is None:
        raise failures[-1]
    return best, failures


def fit_mixture(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    *,
    tol: float,
    max_iter: int,
    reg_covar: float,
    n_init: int,
    init_params: str,
    random_state: np.random.RandomState,
    prior: GMMPrior | None = None,
    sample_weight: np.ndarray | None = None,
    weights_init: np.ndarray | None = None,
    means_init: np.ndarray | None = None,
    precisions_init: np.ndarray | None = None,
    start: GMMParams | None = None,
    start_lower_bound: float = -np.inf,
    callback: Callback | None = None,
    control: InnerControl | None = None,
    chunk_size: int | None = None,
) -> tuple[EMResult, list[CollapsedComponentError]]:
    """Best of ``n_init`` EM runs (or one run from ``start``, for warm starts).

    The data are centered at their weighted mean for the computation (and the
    result translated back), which keeps the moment-based updates accurate for
    data far from the origin. ``X`` may hold NaN (missing at random): EM is then
    exact EM for the observed-data likelihood (:mod:`bayesgmm.core.missing`); every
    row must have at least one observed value. Inputs are trusted (validated at the
    boundary).

    ``control`` sets the inner iterations of the iterative M-steps (mclust's VEI,
    VEE, VEV, EVE, VVE). ``init_params='hc'`` is deterministic up to 2000 rows (mclust's
    hierarchical start): one start then stands for all ``n_init``.

    Returns
    -------
    best : EMResult
        The run with the highest final objective.
    failures : list of CollapsedComponentError
        Runs that collapsed; raised if every run collapsed.
    """
    shift = np.asarray(weighted_column_means(X, sample_weight), dtype=np.float64)
    # float32 data stay float32 (the heavy passes run in the data's dtype).
    Xc = np.subtract(X, shift.astype(X.dtype), dtype=X.dtype)
    if means_init is not None:
        means_init = np.asarray(means_init, dtype=float) - shift
    if prior is not None:
        prior = prior.shifted(shift)
    missing = has_missing(X)
    # Fully user-given starts draw no random numbers: every start would be the same.
    given = weights_init is not None and means_init is not None and precisions_init is not None
    deterministic = init_params == "hc" and X.shape[0] <= HC_SUBSET
    X_start = np.nan_to_num(Xc, nan=0.0) if missing else Xc
    # Chunks cut once for every start; BLAS held to one thread per worker for the fit.
    plan = plan_chunks(Xc, n_components, covariance_type, chunk_size)

    def one_start(init: int) -> EMResult:
        if start is not None:
            params0, lb0 = start.shift_means(-shift), start_lower_bound
        else:
            params0 = initial_params(
                # With NaN: the start (k-means etc. and its M-step) sees each missing
                # value filled with its column mean (0 once centered).
                X_start,
                n_components,
                covariance_type,
                method=init_params,
                rng=random_state,
                reg_covar=reg_covar,
                prior=prior,
                sample_weight=sample_weight,
                weights_init=weights_init,
                means_init=means_init,
                precisions_init=precisions_init,
                control=control,
            )
            lb0 = -np.inf
        return run_em(
            Xc,
            params0,
            covariance_type=covariance_type,
            tol=tol,
            max_iter=max_iter,
            reg_covar=reg_covar,
            prior=prior,
            sample_weight=sample_weight,
            lower_bound=lb0,
            init=init,
            callback=callback,
            control=control,
            plan=plan,
            n_workers=n_workers,
        )

    with worker_threads(len(plan.chunks)) as n_workers:
        n_starts = 1 if start is not None or given or deterministic else n_init
        best, failures = best_of_starts(n_starts, one_start)
    return best._replace(params=best.params.shift_means(shift)), failures
