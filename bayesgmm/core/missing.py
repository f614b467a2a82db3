r"""Missing values (NaN, missing at random): the observed-data E-step and imputation.

A row :math:`x_n` with observed coordinates :math:`O` and missing coordinates
:math:`M` has the observed-data density

.. math:: p(x_{n,O}) = \sum_k \pi_k \, N(x_{n,O} \mid \mu_{k,O}, \Sigma_{k,OO}),

so the E-step's responsibilities use each row's marginal on its observed coordinates.
Given component :math:`k`, the missing coordinates are Gaussian
(Ghahramani & Jordan 1994):

.. math::

    E[x_M \mid x_O, k] &= \hat x_{nk,M} = \mu_{k,M}
        + \Sigma_{k,MO} \Sigma_{k,OO}^{-1} (x_{n,O} - \mu_{k,O}) \\
    \operatorname{Cov}[x_M \mid x_O, k] &= C_{k} = \Sigma_{k,MM}
        - \Sigma_{k,MO} \Sigma_{k,OO}^{-1} \Sigma_{k,OM}

and the expected complete-data sufficient statistics are

.. math::

    n_k = \sum_n r_{nk}, \quad s_k = \sum_n r_{nk} \hat x_{nk}, \quad
    S_k = \sum_n r_{nk} \left(\hat x_{nk} \hat x_{nk}^T + C_{k} \text{ on the } MM
          \text{ block}\right)

with :math:`\hat x_{nk}` the row completed by its conditional mean. These are ordinary
:class:`~bayesgmm.core.suffstats.SufficientStats`, so every M-step (maximum likelihood
or MAP, every covariance type) is unchanged, and EM on them is exact EM for the
observed-data likelihood: its objective never decreases.

Two kernels, chosen by the covariance table's ``independent_features`` flag (never by
a type's name):

- covariance types with diagonal covariances (``diag``, ``spherical``) need no
  conditional regression: the observed marginal is a product over the observed
  coordinates, :math:`\hat x_{nk,M} = \mu_{k,M}` and :math:`C_k` is the diagonal of the
  missing variances. The E-step is then whole-array products with the observation
  mask, with no grouping of rows at all;
- the others group rows by missingness pattern and factorize each observed block once
  per pattern (all components at once), not once per row.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm.core.covariance import CovarianceModel, get_covariance_model
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats

__all__ = [
    "MissingPatterns",
    "has_missing",
    "impute_draws",
    "impute_mean",
    "missing_e_step",
    "missing_patterns",
    "missing_statistics",
    "observed_log_gaussian",
    "observed_moments",
    "pattern_conditionals",
    "weighted_column_means",
]

_LOG_2PI = np.log(2.0 * np.pi)


class MissingPatterns(NamedTuple):
    """Rows of a data matrix grouped by which coordinates are observed.

    Attributes
    ----------
    observed : ndarray of bool, shape (N, D)
        ``True`` where a value is observed.
    patterns : ndarray of bool, shape (P, D)
        The distinct rows of ``observed``.
    rows : tuple of P int arrays
        Indices of the rows with each pattern.
    """

    observed: np.ndarray
    patterns: np.ndarray
    rows: tuple[np.ndarray, ...]


def has_missing(X: np.ndarray) -> bool:
    """Whether ``X`` has any NaN (one pass, no copy of the data)."""
    return bool(np.isnan(X).any())


def missing_patterns(X: np.ndarray) -> MissingPatterns:
    """Group the rows of ``X`` (N, D) by missingness pattern.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 1.0], [4.0, np.nan]])
    >>> p = missing_patterns(X)
    >>> p.patterns.tolist()
    [[False, True], [True, False], [True, True]]
    >>> [r.tolist() for r in p.rows]
    [[2], [0, 3], [1]]
    """
    observed = ~np.isnan(X)
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(patterns)))[:-1]
    return MissingPatterns(observed, patterns, tuple(np.split(order, bounds)))


def weighted_column_means(X: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Column means over the observed values (weighted), shape ``(D,)``.

    Without NaN this is exactly ``np.average(X, axis=0, weights=sample_weight)``.
    """
    if not has_missing(X):
        return np.average(X, axis=0, weights=sample_weight)
    observed = ~np.isnan(X)
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    filled = np.where(observed, X, 0.0)
    return (w @ filled) / (w @ observed)


def observed_moments(
    X: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean ``(D,)`` and covariance ``(D, D)`` of the data, ``n - 1`` denominator.

    Without NaN: the sample mean and covariance. With NaN: the maximum-likelihood
    mean and covariance of one Gaussian fitted to the observed values by EM (exact
    under missing at random; started at the observed column means and variances),
    with the covariance rescaled by ``n / (n - 1)``, ``n`` the total weight.
    """
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    total = w.sum()
    mean = weighted_column_means(X, w)
    if not has_missing(X):
        centered = X - mean
        return mean, (centered.T * w) @ centered / (total - 1.0)
    shift = mean
    Xc = X - shift  # NaN stays NaN; centering keeps the moments accurate
    observed = ~np.isnan(X)
    filled = np.where(observed, Xc, 0.0)
    variances = (w @ (filled * filled)) / (w @ observed)
    cov = np.diag(np.maximum(variances, np.finfo(float).tiny))
    mean = np.zeros(X.shape[1])
    patterns = missing_patterns(X)
    resp = np.ones((X.shape[0], 1))
    for _ in range(max_iter):
        params = GMMParams(np.ones(1), mean[None], cov[None], None)
        stats = missing_statistics(Xc, resp, params, "full", w, patterns)
        mean = stats.sum_x[0] / total
        new = stats.sum_xx[0] / total - np.outer(mean, mean)
        new = 0.5 * (new + new.T)
        change = np.max(np.abs(new - cov)) / np.max(np.abs(np.diag(new)))
        cov = new
        if change < tol:
            break
    return mean + shift, cov * total / (total - 1.0)


# -- per-pattern conditional Gaussians ---------------------------------------------------
class _Conditional(NamedTuple):
    """One missingness pattern under every component (the general kernel).

    ``log_gauss`` (n_p, K): log N(x_O | mu_O, Sigma_OO); ``coef`` (K, |M|, |O|):
    Sigma_MO Sigma_OO^-1; ``cond_cov`` (K, |M|, |M|).
    """

    log_gauss: np.ndarray
    coef: np.ndarray
    cond_cov: np.ndarray


def _full_covariances(params: GMMParams, model: CovarianceModel) -> np.ndarray:
    n_components, n_features = params.means.shape
    return model.to_full(params.covariances, n_components, n_features)


def _condition(
    X_obs: np.ndarray,
    means: np.ndarray,
    full: np.ndarray,
    obs: np.ndarray,
    miss: np.ndarray,
    regression: bool = True,
) -> _Conditional:
    """Marginal log density and conditional regression for rows ``X_obs`` (n_p, |O|).

    ``regression=False`` (scoring only) skips ``coef`` and ``cond_cov`` (``None``)."""
    n_rows, n_obs = X_obs.shape
    n_components = means.shape[0]
    s_mm = full[:, miss][:, :, miss]
    if n_obs == 0:
        coef = np.zeros((n_components, miss.size, 0))
        return _Conditional(np.zeros((n_rows, n_components)), coef, s_mm)
    s_oo = full[:, obs][:, :, obs]
    s_mo = full[:, miss][:, :, obs]
    chol = np.linalg.cholesky(s_oo)  # (K, |O|, |O|), lower
    eye = np.broadcast_to(np.eye(n_obs), chol.shape)
    # Precision Cholesky of the observed block: U = inv(L)^T, so U U^T = inv(S_OO).
    # One batched LAPACK solve for all K (scipy's batched solve_triangular loops over
    # the matrices in Python: slower here, where patterns are many and blocks small).
    prec_chol = np.swapaxes(np.linalg.solve(chol, eye), 1, 2)
    diff = X_obs[None, :, :] - means[:, None, obs]  # (K, n_p, |O|)
    y = diff @ prec_chol
    maha = np.einsum("knd,knd->nk", y, y)
    log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    log_gauss = -0.5 * (n_obs * _LOG_2PI + maha) - log_det
    if not regression:
        return _Conditional(log_gauss, None, None)
    coef = (s_mo @ prec_chol) @ np.swapaxes(prec_chol, 1, 2)  # S_MO inv(S_OO)
    cond_cov = s_mm - coef @ np.swapaxes(s_mo, 1, 2)
    cond_cov = 0.5 * (cond_cov + np.swapaxes(cond_cov, 1, 2))
    return _Conditional(log_gauss, coef, cond_cov)


def _conditional_means(
    X_obs: np.ndarray, means: np.ndarray, obs: np.ndarray, miss: np.ndarray, coef: np.ndarray
) -> np.ndarray:
    """``E[x_M | x_O, k]`` for every row and component, shape ``(K, n_p, |M|)``."""
    diff = X_obs[None, :, :] - means[:, None, obs]
    return means[:, None, miss] + diff @ np.swapaxes(coef, 1, 2)


def _diagonal_variances(params: GMMParams, model: CovarianceModel) -> np.ndarray:
    return np.diagonal(_full_covariances(params, model), axis1=1, axis2=2)  # (K, D)


# -- E-step ---------------------------------------------------------------------------
def observed_log_gaussian(
    X: np.ndarray,
    params: GMMParams,
    covariance_type: str,
    patterns: MissingPatterns | None = None,
) -> np.ndarray:
    r"""Log density of every row's observed coordinates under every component.

    .. math:: \log N(x_{n,O_n} \mid \mu_{k,O_n}, \Sigma_{k,O_nO_n}), \quad
              \text{shape } (N, K);

    0 for a row with no observed value. Without NaN this equals the complete-data
    ``log N(x_n | mu_k, Sigma_k)``.

    Parameters
    ----------
    X : ndarray of shape (N, D), NaN where missing
    params : GMMParams
    covariance_type : str
    patterns : MissingPatterns, optional
        ``missing_patterns(X)``, if already computed.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import multivariate_normal
    >>> from bayesgmm.core.params import GMMParams
    >>> cov = np.array([[[2.0, 0.5], [0.5, 1.0]]])
    >>> p = GMMParams(np.ones(1), np.zeros((1, 2)), cov, np.linalg.inv(cov))
    >>> X = np.array([[1.0, np.nan], [0.5, -1.0]])
    >>> lg = observed_log_gaussian(X, p, "full")
    >>> bool(np.isclose(lg[0, 0], multivariate_normal(0.0, 2.0).logpdf(1.0)))
    True
    """
    model = get_covariance_model(covariance_type)
    if model.independent_features:
        observed = ~np.isnan(X) if patterns is None else patterns.observed
        variances = _diagonal_variances(params, model)
        return _diagonal_log_gaussian(X, observed, params.means, variances)
    if patterns is None:
        patterns = missing_patterns(X)
    full = _full_covariances(params, model)
    out = np.empty((X.shape[0], params.means.shape[0]))
    for pattern, rows in zip(patterns.patterns, patterns.rows, strict=True):
        obs, miss = np.flatnonzero(pattern), np.flatnonzero(~pattern)
        x_obs = X[np.ix_(rows, obs)]
        out[rows] = _condition(x_obs, params.means, full, obs, miss, regression=False).log_gauss
    return out


def _diagonal_log_gaussian(
    X: np.ndarray, observed: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """Product over the observed coordinates of univariate normals, by whole-array
    products with the observation mask (centered data keep the expansion accurate)."""
    mask = observed.astype(float)
    filled = np.where(observed, X, 0.0)
    prec = 1.0 / variances
    maha = (
        (filled * filled) @ prec.T
        - 2.0 * (filled @ (means * prec).T)
        + mask @ (means * means * prec).T
    )
    return -0.5 * (maha + mask @ (_LOG_2PI + np.log(variances)).T)


def missing_statistics(
    X: np.ndarray,
    resp: np.ndarray,
    params: GMMParams,
    covariance_type: str,
    sample_weight: np.ndarray | None = None,
    patterns: MissingPatterns | None = None,
) -> SufficientStats:
    """Expected complete-data sufficient statistics of data with NaN.

    ``params`` are the parameters the responsibilities ``resp`` (N, K) were computed
    with (the conditional expectations are taken under them). Rows with no observed
    value contribute their responsibilities times the component moments (callers
    drop such rows before fitting).
    """
    model = get_covariance_model(covariance_type)
    if sample_weight is not None:
        resp = resp * sample_weight[:, None]
    n_components, n_features = params.means.shape
    means = params.means
    if model.independent_features:
        observed = ~np.isnan(X) if patterns is None else patterns.observed
        variances = _diagonal_variances(params, model)
        filled = np.where(observed, X, 0.0)
        missing_mass = resp.T @ (~observed).astype(float)  # (K, D)
        sum_x = resp.T @ filled + missing_mass * means
        diag = resp.T @ (filled * filled) + missing_mass * (means * means + variances)
        second = np.zeros((n_components, n_features, n_features))
        second[:, np.arange(n_features), np.arange(n_features)] = diag
    else:
        if patterns is None:
            patterns = missing_patterns(X)
        full = _full_covariances(params, model)
        sum_x = np.zeros((n_components, n_features))
        second = np.zeros((n_components, n_features, n_features))
        for pattern, rows in zip(patterns.patterns, patterns.rows, strict=True):
            obs, miss = np.flatnonzero(pattern), np.flatnonzero(~pattern)
            x_obs = X[np.ix_(rows, obs)]
            r = resp[rows].T  # (K, n_p)
            completed = np.empty((n_components, rows.size, n_features))
            completed[:, :, obs] = x_obs[None]
            if miss.size:
                cond = _condition(x_obs, means, full, obs, miss)
                completed[:, :, miss] = _conditional_means(x_obs, means, obs, miss, cond.coef)
                second[np.ix_(np.arange(n_components), miss, miss)] += (
                    r.sum(axis=1)[:, None, None] * cond.cond_cov
                )
            sum_x += np.einsum("kn,knd->kd", r, completed)
            second += np.swapaxes(completed * r[:, :, None], 1, 2) @ completed
    return SufficientStats(
        n=resp.sum(axis=0),
        sum_x=sum_x,
        sum_xx=model.second_moment_from_full(second),
        covariance_type=covariance_type,
    )


def missing_e_step(
    X: np.ndarray,
    params: GMMParams,
    covariance_type: str,
    patterns: MissingPatterns,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, SufficientStats]:
    """One E-step on data with NaN: log densities, log responsibilities, statistics.

    The same numbers as :func:`observed_log_gaussian` (plus ``log pi``, log-sum-exp)
    followed by :func:`missing_statistics`, in one pass: a row's responsibilities need
    only its own K log densities, so each pattern's statistics are accumulated right
    after its densities, with one factorization per pattern.

    Returns
    -------
    log_prob_norm : ndarray of shape (N,)
    log_resp : ndarray of shape (N, K)
    stats : SufficientStats
    """
    model = get_covariance_model(covariance_type)
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights)
    if model.independent_features:
        weighted = observed_log_gaussian(X, params, covariance_type, patterns) + log_weights
        log_prob_norm = _logsumexp(weighted)
        log_resp = weighted - log_prob_norm[:, None]
        stats = missing_statistics(
            X, np.exp(log_resp), params, covariance_type, sample_weight, patterns
        )
        return log_prob_norm, log_resp, stats
    n_components, n_features = params.means.shape
    means = params.means
    full = _full_covariances(params, model)
    log_prob_norm = np.empty(X.shape[0])
    log_resp = np.empty((X.shape[0], n_components))
    counts = np.zeros(n_components)
    sum_x = np.zeros((n_components, n_features))
    second = np.zeros((n_components, n_features, n_features))
    components = np.arange(n_components)
    for pattern, rows in zip(patterns.patterns, patterns.rows, strict=True):
        obs, miss = np.flatnonzero(pattern), np.flatnonzero(~pattern)
        x_obs = X[np.ix_(rows, obs)]
        cond = _condition(x_obs, means, full, obs, miss, regression=miss.size > 0)
        weighted = cond.log_gauss + log_weights
        norm = _logsumexp(weighted)
        lr = weighted - norm[:, None]
        log_prob_norm[rows] = norm
        log_resp[rows] = lr
        r = np.exp(lr).T  # (K, n_p)
        if sample_weight is not None:
            r = r * sample_weight[rows]
        mass = r.sum(axis=1)
        counts += mass
        if miss.size:
            completed = np.empty((n_components, rows.size, n_features))
            completed[:, :, obs] = x_obs[None]
            completed[:, :, miss] = _conditional_means(x_obs, means, obs, miss, cond.coef)
            second[np.ix_(components, miss, miss)] += mass[:, None, None] * cond.cond_cov
            sum_x += np.einsum("kn,knd->kd", r, completed)
            second += np.swapaxes(completed * r[:, :, None], 1, 2) @ completed
        else:  # complete rows: the ordinary moments
            sum_x += r @ x_obs
            second += (x_obs.T[None] * r[:, None, :]) @ x_obs
    stats = SufficientStats(counts, sum_x, model.second_moment_from_full(second), covariance_type)
    return log_prob_norm, log_resp, stats


# -- imputation ---------------------------------------------------------------------
def pattern_conditionals(
    X: np.ndarray, params: GMMParams, covariance_type: str
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, _Conditional, np.ndarray]]]:
    """Per-pattern conditional Gaussians of the missing coordinates.

    Returns the log responsibilities (N, K) of the rows under ``params`` (from their
    observed coordinates) and, for every pattern with a missing coordinate, a tuple
    ``(rows, miss, conditional, cond_means)`` with ``cond_means`` of shape
    ``(K, n_p, |M|)``.
    """
    model = get_covariance_model(covariance_type)
    patterns = missing_patterns(X)
    full = _full_covariances(params, model)
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights)
    weighted = np.empty((X.shape[0], params.means.shape[0]))
    parts = []
    for pattern, rows in zip(patterns.patterns, patterns.rows, strict=True):
        obs, miss = np.flatnonzero(pattern), np.flatnonzero(~pattern)
        x_obs = X[np.ix_(rows, obs)]
        cond = _condition(x_obs, params.means, full, obs, miss)
        weighted[rows] = cond.log_gauss + log_weights
        if miss.size:
            cond_means = _conditional_means(x_obs, params.means, obs, miss, cond.coef)
            parts.append((rows, miss, cond, cond_means))
    log_norm = _logsumexp(weighted)
    return weighted - log_norm[:, None], parts


def _logsumexp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=1)
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - shift[:, None]).sum(axis=1)) + shift


def impute_mean(X: np.ndarray, params: GMMParams, covariance_type: str) -> np.ndarray:
    r"""``X`` with every NaN replaced by :math:`E[x_M \mid x_O]` under the mixture.

    .. math:: E[x_M \mid x_O] = \sum_k r_k(x_O) \, \hat x_{k,M}

    Observed values are returned untouched; a row with no observed value gets the
    mixture mean. A new array is returned.
    """
    log_resp, parts = pattern_conditionals(X, params, covariance_type)
    out = np.array(X, dtype=float, copy=True)
    resp = np.exp(log_resp)
    for rows, miss, _, cond_means in parts:
        out[np.ix_(rows, miss)] = np.einsum("nk,knm->nm", resp[rows], cond_means)
    return out


def impute_draws(
    X: np.ndarray,
    params: GMMParams,
    covariance_type: str,
    n_imputations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    r"""Draws from :math:`p(x_M \mid x_O)`, shape ``(n_imputations, N, D)``.

    For every row and imputation: a component with probability :math:`r_k(x_O)`, then
    :math:`x_M \sim N(\hat x_{k,M}, C_k)`. Observed values are repeated untouched.
    """
    log_resp, parts = pattern_conditionals(X, params, covariance_type)
    out = np.repeat(np.asarray(X, dtype=float)[None], n_imputations, axis=0)
    resp = np.exp(log_resp)
    n_components = params.means.shape[0]
    for rows, miss, cond, cond_means in parts:
        # Cholesky of each component's conditional covariance (PD: a Schur complement).
        chol = np.linalg.cholesky(cond.cond_cov)
        cum = np.cumsum(resp[rows], axis=1)
        cum[:, -1] = 1.0
        u = rng.random((n_imputations, rows.size, 1))
        comp = np.minimum((u > cum[None]).sum(axis=2), n_components - 1)  # (m, n_p)
        z = rng.standard_normal((n_imputations, rows.size, miss.size))
        row_idx = np.arange(rows.size)[None, :]
        centre = cond_means[comp, row_idx]  # (m, n_p, |M|)
        noise = np.einsum("mnij,mnj->mni", chol[comp], z)
        out[:, rows[:, None], miss[None, :]] = centre + noise
    return out
