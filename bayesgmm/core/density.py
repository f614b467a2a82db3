"""Log densities, mixture log density and responsibilities (pure NumPy/SciPy)."""

from __future__ import annotations

import numpy as np

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.missing import has_missing, observed_log_gaussian
from bayesgmm.core.params import GMMParams

__all__ = ["log_component_densities", "log_mixture_density", "responsibilities"]


def log_component_densities(
    X: np.ndarray, params: GMMParams, covariance_type: str, patterns=None
) -> np.ndarray:
    r"""Weighted log densities ``log pi_k + log N(x_n | mu_k, Sigma_k)``.

    Rows with NaN use the marginal density of their observed coordinates (see
    :mod:`bayesgmm.core.missing`); a row with no observed value gets ``log pi_k``.

    Parameters
    ----------
    X : ndarray of shape (N, D), NaN where missing
    params : GMMParams
    covariance_type : str
    patterns : MissingPatterns, optional
        The rows of ``X`` grouped by missingness pattern, if already computed (a
        value other than ``None`` also says that ``X`` has NaN).

    Returns
    -------
    ndarray of shape (N, K)

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.core.params import GMMParams
    >>> p = GMMParams(np.array([1.0]), np.zeros((1, 1)), np.ones(1), np.ones(1))
    >>> float(np.round(log_component_densities(np.zeros((1, 1)), p, "spherical")[0, 0], 4))
    -0.9189
    """
    if patterns is not None or has_missing(X):
        log_gauss = observed_log_gaussian(X, params, covariance_type, patterns)
    else:
        model = get_covariance_model(covariance_type)
        log_gauss = model.log_gaussian(X, params.means, params.precisions_cholesky)
    with np.errstate(divide="ignore"):
        return log_gauss + np.log(params.weights)


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """``log(sum(exp(a), axis=1))`` for an (N, K) array, stable; -inf where a row is
    all -inf. (A plain NumPy version: scipy's generic one makes extra passes.)"""
    row_max = a.max(axis=1)
    shift = np.where(np.isfinite(row_max), row_max, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - shift[:, None]).sum(axis=1)) + shift


def log_mixture_density(X: np.ndarray, params: GMMParams, covariance_type: str) -> np.ndarray:
    r"""Log density of the mixture at every point, shape ``(N,)``.

    .. math:: \log p(x_n) = \log \sum_k \pi_k N(x_n \mid \mu_k, \Sigma_k)
    """
    return _logsumexp_rows(log_component_densities(X, params, covariance_type))


def responsibilities(
    X: np.ndarray, params: GMMParams, covariance_type: str, patterns=None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Log mixture density and log responsibilities.

    .. math:: \log r_{nk} = \log \pi_k + \log N(x_n \mid \mu_k, \Sigma_k) - \log p(x_n)

    Returns
    -------
    log_prob_norm : ndarray of shape (N,)
    log_resp : ndarray of shape (N, K)
    """
    weighted = log_component_densities(X, params, covariance_type, patterns)
    log_prob_norm = _logsumexp_rows(weighted)
    return log_prob_norm, weighted - log_prob_norm[:, None]
