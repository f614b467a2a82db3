"""Log densities, mixture log density and responsibilities (pure NumPy/SciPy).

All three are views of one pass of the chunk kernel (:func:`bayesgmm.core.estep.e_step`),
which evaluates every component per block of rows; rows with NaN use the marginal
density of their observed coordinates (see :mod:`bayesgmm.core.missing`).
"""

from __future__ import annotations

import numpy as np

from bayesgmm.core.estep import e_step
from bayesgmm.core.params import GMMParams

__all__ = ["log_component_densities", "log_mixture_density", "responsibilities"]


def log_component_densities(X: np.ndarray, params: GMMParams, covariance_type: str) -> np.ndarray:
    r"""Weighted log densities ``log pi_k + log N(x_n | mu_k, Sigma_k)``.

    Rows with NaN use the marginal density of their observed coordinates (see
    :mod:`bayesgmm.core.missing`); a row with no observed value gets ``log pi_k``.

    Parameters
    ----------
    X : ndarray of shape (N, D), NaN where missing
    params : GMMParams
    covariance_type : str

    Returns
    -------
    ndarray of shape (N, K), float64

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.core.params import GMMParams
    >>> p = GMMParams(np.array([1.0]), np.zeros((1, 1)), np.ones(1), np.ones(1))
    >>> float(np.round(log_component_densities(np.zeros((1, 1)), p, "spherical")[0, 0], 4))
    -0.9189
    """
    out = np.empty((X.shape[0], params.means.shape[0]))
    e_step(X, params, covariance_type, statistics=False, log_weighted=out)
    return out


def log_mixture_density(X: np.ndarray, params: GMMParams, covariance_type: str) -> np.ndarray:
    r"""Log density of the mixture at every point, shape ``(N,)``, float64.

    .. math:: \log p(x_n) = \log \sum_k \pi_k N(x_n \mid \mu_k, \Sigma_k)
    """
    out = np.empty(X.shape[0])
    e_step(X, params, covariance_type, statistics=False, log_prob_norm=out)
    return out


def responsibilities(
    X: np.ndarray, params: GMMParams, covariance_type: str
) -> tuple[np.ndarray, np.ndarray]:
    r"""Log mixture density and log responsibilities.

    .. math:: \log r_{nk} = \log \pi_k + \log N(x_n \mid \mu_k, \Sigma_k) - \log p(x_n)

    Returns
    -------
    log_prob_norm : ndarray of shape (N,), float64
    log_resp : ndarray of shape (N, K), float64
    """
    log_prob_norm = np.empty(X.shape[0])
    log_resp = np.empty((X.shape[0], params.means.shape[0]))
    e_step(
        X,
        params,
        covariance_type,
        statistics=False,
        log_prob_norm=log_prob_norm,
        log_resp=log_resp,
    )
    return log_prob_norm, log_resp
