r"""The observed information of a Gaussian mixture: the exact Hessian of the log-likelihood.

Free parameters :math:`\theta` (in this order): the first ``K - 1`` weights
(:math:`\pi_K = 1 - \sum_{j<K} \pi_j`), the means row by row, then the covariance
type's free entries (:meth:`~bayesgmm.core.covariance.CovarianceModel.free_parameters`:
the upper triangle of each :math:`\Sigma_k` for full, of the shared one for tied, the
variances for diag and spherical). Every covariance type is linear in its free
parameters, :math:`\Sigma_k = \sum_j \theta_j B_{jk}`, so one set of formulas serves
them all.

With :math:`\ell_{nk} = \log \pi_k + \log N(x_n \mid \mu_k, \Sigma_k)` and responsibilities
:math:`r_{nk}`, the Hessian of :math:`\log p(x_n) = \log\sum_k e^{\ell_{nk}}` is exactly

.. math:: \nabla^2 \log p(x_n) = \sum_k r_{nk} \nabla^2 \ell_{nk}
          + \sum_k r_{nk} s_{nk} s_{nk}^T - \bar s_n \bar s_n^T, \qquad
          s_{nk} = \nabla \ell_{nk}, \ \bar s_n = \sum_k r_{nk} s_{nk}

(Louis' identity: expected complete-data Hessian plus the conditional covariance of the
complete-data score). For one component, with :math:`d = x - \mu`,
:math:`P = \Sigma^{-1}`, :math:`u = P d` and basis directions :math:`E_i, E_j`:

.. math::

    \partial_\mu \ell = u, \quad \partial_{\theta_i} \ell = \tfrac12 (u^T E_i u
        - \operatorname{tr} P E_i), \quad \partial^2_{\mu\mu} \ell = -P, \quad
    \partial^2_{\mu \theta_i} \ell = -P E_i u, \quad
    \partial^2_{\theta_i \theta_j} \ell = -u^T E_i P E_j u
        + \tfrac12 \operatorname{tr}(P E_i P E_j).

A row with missing values uses the marginal of its observed coordinates: the same
formulas with :math:`d` and :math:`P` replaced by their observed parts padded with
zeros (:math:`P` the inverse of the observed block), so rows are grouped by pattern.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.missing import missing_patterns
from bayesgmm.core.params import GMMParams

__all__ = [
    "FreeLayout",
    "free_layout",
    "log_likelihood_hessian",
    "log_prior_hessian",
    "numerical_hessian",
]

#: The covariance types whose prior is inverse-Wishart on each matrix (full, tied) or
#: inverse-gamma on each variance (diag, spherical) of their free entries: the closed
#: form of :func:`log_prior_hessian` applies to them.
_CLOSED_FORM_PRIOR_TYPES = ("full", "tied", "diag", "spherical")


class FreeLayout(NamedTuple):
    """Where each block of free parameters sits in the vector ``theta``.

    Attributes
    ----------
    n_components, n_features : int
    covariance_type : str
    weights : slice
        The first ``K - 1`` weights.
    means : slice
        ``K * D`` means, row-major.
    covariances : slice
        The covariance type's free entries.
    basis : ndarray of shape (J, K, D, D)
        :math:`\\Sigma_k = \\sum_j \\theta_j B_{jk}`.
    covariance_index : list of tuple
        Index of each free covariance parameter in the covariance array.
    """

    n_components: int
    n_features: int
    covariance_type: str
    weights: slice
    means: slice
    covariances: slice
    basis: np.ndarray
    covariance_index: list

    @property
    def size(self) -> int:
        return self.covariances.stop

    def pack(self, params: GMMParams) -> np.ndarray:
        """``theta`` from parameters."""
        cov = np.asarray(params.covariances)
        values = [cov[where] for where in self.covariance_index]
        return np.concatenate([params.weights[:-1], np.ravel(params.means), values])

    def unpack(self, theta: np.ndarray) -> GMMParams:
        """Parameters from ``theta`` (precision Cholesky factors included)."""
        model = get_covariance_model(self.covariance_type)
        head = theta[self.weights]
        weights = np.append(head, 1.0 - head.sum())
        means = theta[self.means].reshape(self.n_components, self.n_features)
        full = np.einsum("j,jkab->kab", theta[self.covariances], self.basis)
        covariances = model.from_full(full)
        return GMMParams(weights, means, covariances, model.precision_cholesky(covariances))


def free_layout(n_components: int, n_features: int, covariance_type: str) -> FreeLayout:
    """The free parameterization of a mixture (see the module docstring)."""
    model = get_covariance_model(covariance_type)
    n_w = n_components - 1
    n_m = n_components * n_features
    index = model.free_parameters(n_components, n_features)
    return FreeLayout(
        n_components,
        n_features,
        covariance_type,
        slice(0, n_w),
        slice(n_w, n_w + n_m),
        slice(n_w + n_m, n_w + n_m + len(index)),
        model.linear_basis(n_components, n_features),
        index,
    )


def log_likelihood_hessian(
    X: np.ndarray,
    params: GMMParams,
    covariance_type: str,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact gradient and Hessian of :math:`\\sum_n w_n \\log p(x_n)` in ``theta``.

    Parameters
    ----------
    X : ndarray of shape (N, D), NaN where missing
    params : GMMParams
    covariance_type : str
    sample_weight : ndarray of shape (N,), optional

    Returns
    -------
    gradient : ndarray of shape (p,)
    hessian : ndarray of shape (p, p)
    """
    n_components, n_features = params.means.shape
    layout = free_layout(n_components, n_features, covariance_type)
    model = get_covariance_model(covariance_type)
    full = model.to_full(params.covariances, n_components, n_features)
    basis = layout.basis  # (J, K, D, D)
    w_all = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    size = layout.size
    gradient = np.zeros(size)
    hessian = np.zeros((size, size))
    weights = params.weights
    n_w = n_components - 1
    w_grad, w_hess = _weight_derivatives(weights, size)  # of log pi_k, K - 1 free weights
    # Which free covariance parameters each component depends on.
    active = [np.flatnonzero(np.abs(basis[:, k]).sum(axis=(1, 2))) for k in range(n_components)]
    patterns = missing_patterns(X)
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    for pattern, rows in zip(patterns.patterns, patterns.rows, strict=True):
        obs = np.flatnonzero(pattern)
        if obs.size == 0:
            continue  # no information in the row
        x = np.where(pattern, X[rows], 0.0)
        w = w_all[rows]
        n_p = rows.size
        prec = np.zeros((n_components, n_features, n_features))
        log_dens = np.empty((n_p, n_components))
        u = np.empty((n_components, n_p, n_features))
        for k in range(n_components):
            block = full[k][np.ix_(obs, obs)]
            chol = np.linalg.cholesky(block)
            inv_chol = np.linalg.solve(chol, np.eye(obs.size))
            prec[k][np.ix_(obs, obs)] = inv_chol.T @ inv_chol
            diff = np.where(pattern, x - params.means[k], 0.0)
            u[k] = diff @ prec[k]
            log_dens[:, k] = (
                -0.5 * (obs.size * np.log(2 * np.pi) + np.einsum("nd,nd->n", diff, u[k]))
                - np.log(np.diag(chol)).sum()
                + log_weights[k]
            )
        top = log_dens.max(axis=1, keepdims=True)
        resp = np.exp(log_dens - top)
        resp /= resp.sum(axis=1, keepdims=True)
        scores = np.zeros((n_components, n_p, size))
        for k in range(n_components):
            wr = w * resp[:, k]
            mean_slice = slice(n_w + k * n_features, n_w + (k + 1) * n_features)
            idx = layout.covariances.start + active[k]
            E = basis[active[k], k]  # (J_k, D, D)
            P = prec[k]
            uk = u[k]
            uE = np.einsum("nd,jde->nje", uk, E)  # u^T E_j, (n, J_k, D)
            s_cov = 0.5 * (np.einsum("nje,ne->nj", uE, uk) - np.einsum("de,jed->j", P, E))
            scores[k, :, :size] = w_grad[k]
            scores[k, :, mean_slice] = uk
            scores[k][:, idx] = s_cov
            # sum_n w r_nk * (Hessian of l_nk), from the weighted moments of u.
            mass = wr.sum()
            su = wr @ uk
            M = (uk * wr[:, None]).T @ uk
            hessian += mass * w_hess[k]
            hessian[mean_slice, mean_slice] -= mass * P
            h_mc = -np.einsum("de,jef,f->dj", P, E, su)
            hessian[mean_slice, idx] += h_mc
            hessian[idx, mean_slice] += h_mc.T
            PE = np.einsum("ab,jbc->jac", P, E)  # P E_j
            trace_term = 0.5 * np.einsum("iab,jba->ij", PE, PE) * mass
            quad = -np.einsum("iab,bc,jcd,da->ij", E, P, E, M)
            hessian[np.ix_(idx, idx)] += quad + trace_term
        mean_score = np.einsum("nk,knp->np", resp, scores)
        for k in range(n_components):
            weighted = scores[k] * np.sqrt(w * resp[:, k])[:, None]
            hessian += weighted.T @ weighted
        hessian -= (mean_score * w[:, None]).T @ mean_score
        gradient += w @ mean_score
    return gradient, 0.5 * (hessian + hessian.T)


def _weight_derivatives(weights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (K, p) and Hessian (K, p, p) of each ``log pi_k`` in the first
    ``K - 1`` weights (``pi_K = 1 - sum``)."""
    n_components = weights.size
    n_w = n_components - 1
    w_grad = np.zeros((n_components, size))
    w_hess = np.zeros((n_components, size, size))
    for k in range(n_components):
        if k < n_w:
            w_grad[k, k] = 1.0 / weights[k]
            w_hess[k, k, k] = -1.0 / weights[k] ** 2
        else:
            w_grad[k, :n_w] = -1.0 / weights[k]
            w_hess[k, :n_w, :n_w] = -1.0 / weights[k] ** 2
    return w_grad, w_hess


def log_prior_hessian(
    params: GMMParams, covariance_type: str, prior
) -> tuple[np.ndarray, np.ndarray] | None:
    r"""Exact gradient and Hessian of the log prior in ``theta`` (closed form).

    ``prior`` is a :class:`~bayesgmm.priors.GMMPrior`; a part that is ``None`` adds
    nothing. With :math:`P = \Sigma_k^{-1}` and basis directions :math:`E_i`:

    - Dirichlet: :math:`\sum_k (\alpha_k - 1)\log\pi_k`;
    - conjugate means, :math:`\log N(m_0 \mid \mu_k, \Sigma_k/\kappa_0)`, with
      :math:`v = P(m_0 - \mu_k)`: :math:`\partial_\mu = \kappa_0 v`,
      :math:`\partial_{\theta_i} = -\tfrac12\operatorname{tr}PE_i
      + \tfrac{\kappa_0}{2} v^TE_iv`, :math:`\partial^2_{\mu\mu} = -\kappa_0 P`,
      :math:`\partial^2_{\mu\theta_i} = -\kappa_0 PE_iv`,
      :math:`\partial^2_{\theta_i\theta_j} = \tfrac12\operatorname{tr}(PE_iPE_j)
      - \kappa_0 v^TE_iPE_jv`; independent means: :math:`-S_0^{-1}`;
    - inverse-Wishart on each matrix, :math:`-\tfrac{\nu+d+1}{2}\log|\Sigma|
      - \tfrac12\operatorname{tr}\Psi P`: :math:`\partial^2_{ij} =
      \tfrac{\nu+d+1}{2}\operatorname{tr}(PE_iPE_j) - \tfrac12[\operatorname{tr}
      (\Psi PE_iPE_jP) + \operatorname{tr}(\Psi PE_jPE_iP)]`; inverse-gamma on
      each variance :math:`\sigma^2`: :math:`(\nu/2+1)/\sigma^4 - \psi/\sigma^6`.

    Returns None for a covariance type outside ``full, tied, diag, spherical`` (use
    :func:`numerical_hessian` of ``prior.log_prob`` there).
    """
    model = get_covariance_model(covariance_type)
    if model.name not in _CLOSED_FORM_PRIOR_TYPES:
        return None
    n_components, n_features = params.means.shape
    layout = free_layout(n_components, n_features, covariance_type)
    size = layout.size
    grad = np.zeros(size)
    hess = np.zeros((size, size))
    basis = layout.basis
    full = model.to_full(params.covariances, n_components, n_features)
    prec = np.linalg.inv(full)
    cov_start = layout.covariances.start
    active = [np.flatnonzero(np.abs(basis[:, k]).sum(axis=(1, 2))) for k in range(n_components)]
    if prior.weights is not None:
        alpha = prior.weights.concentration(n_components)
        w_grad, w_hess = _weight_derivatives(params.weights, size)
        grad += np.einsum("k,kp->p", alpha - 1.0, w_grad)
        hess += np.einsum("k,kpq->pq", alpha - 1.0, w_hess)
    if prior.means is not None:
        means_prior = prior.means
        n_w = n_components - 1
        for k in range(n_components):
            ms = slice(n_w + k * n_features, n_w + (k + 1) * n_features)
            if means_prior.form != "conjugate":
                s0_inv = np.linalg.inv(means_prior.covariance)
                grad[ms] += -s0_inv @ (params.means[k] - means_prior.mean)
                hess[ms, ms] -= s0_inv
                continue
            kappa = means_prior.shrinkage
            P = prec[k]
            E = basis[active[k], k]
            idx = cov_start + active[k]
            v = P @ (means_prior.mean - params.means[k])
            PE = np.einsum("ab,jbc->jac", P, E)
            grad[ms] += kappa * v
            grad[idx] += -0.5 * np.einsum("jaa->j", PE) + 0.5 * kappa * np.einsum(
                "a,jab,b->j", v, E, v
            )
            hess[ms, ms] -= kappa * P
            h_mc = -kappa * np.einsum("jab,b->aj", PE, v)
            hess[ms, idx] += h_mc
            hess[idx, ms] += h_mc.T
            hess[np.ix_(idx, idx)] += 0.5 * np.einsum("iab,jba->ij", PE, PE) - kappa * np.einsum(
                "a,iab,jbc,c->ij", v, E, PE, v
            )
    if prior.covariances is not None:
        dof = prior.covariances.dof
        scale = model.prior_scale(dof, prior.covariances.scale, n_features)
        cov_shape = model.shape(n_components, n_features)
        if tuple(model.dims[-2:]) == ("feature", "feature_bis"):
            # one inverse-Wishart per matrix of the covariance array (K full, 1 tied)
            n_matrices = int(np.prod(cov_shape[:-2], dtype=int))
            for k in range(n_matrices):
                P = prec[k]
                E = basis[active[k], k]
                idx = cov_start + active[k]
                PE = np.einsum("ab,jbc->jac", P, E)
                Q = P @ scale @ P
                c = 0.5 * (dof + n_features + 1.0)
                grad[idx] += -c * np.einsum("jaa->j", PE) + 0.5 * np.einsum("ab,jba->j", Q, E)
                tr_pp = np.einsum("iab,jba->ij", PE, PE)
                tr_psi = np.einsum("ab,ibc,jca->ij", Q, E, PE)  # tr(Psi P E_i P E_j P)
                hess[np.ix_(idx, idx)] += c * tr_pp - 0.5 * (tr_psi + tr_psi.T)
        else:
            # inverse-gamma(nu/2, psi/2) on each free variance
            psi = np.broadcast_to(np.asarray(scale, dtype=float), cov_shape)
            cov = np.asarray(params.covariances, dtype=float)
            for j, where in enumerate(layout.covariance_index):
                s2, p_j = cov[where], psi[where]
                grad[cov_start + j] += -(0.5 * dof + 1.0) / s2 + 0.5 * p_j / s2**2
                hess[cov_start + j, cov_start + j] += (0.5 * dof + 1.0) / s2**2 - p_j / s2**3
    return grad, 0.5 * (hess + hess.T)


def numerical_hessian(
    function: Callable[[np.ndarray], float], theta: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Central-difference Hessian (Richardson-extrapolated) of a smooth scalar function.

    ``scale`` (p,) sets each coordinate's step (``1e-3 * scale``); used for the log
    prior, whose terms are cheap and smooth.
    """
    p = theta.size
    out = np.zeros((p, p))

    def second(i, j, h_i, h_j):
        def f(di, dj):
            t = theta.copy()
            t[i] += di
            t[j] += dj
            return function(t)

        return (f(h_i, h_j) - f(h_i, -h_j) - f(-h_i, h_j) + f(-h_i, -h_j)) / (4 * h_i * h_j)

    steps = 1e-3 * scale
    for i in range(p):
        for j in range(i, p):
            coarse = second(i, j, steps[i], steps[j])
            fine = second(i, j, steps[i] / 2, steps[j] / 2)
            out[i, j] = out[j, i] = (4 * fine - coarse) / 3
    return out
