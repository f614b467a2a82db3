r"""Per-chunk kernels: the E-step log densities and the M-step moments as GEMMs.

A kernel holds the parameters of all ``K`` components, rearranged once per EM
iteration so that a block of rows ``X`` (n, D) needs one matrix product for the
log densities of every component and one more for the moments. Two formulations:

**Feature map** (:class:`FeatureMapKernel`). With the features
:math:`\phi(x) = [x, \; x_i x_j \; (i \le j)]` (full, tied) or :math:`[x, x^2]`
(diag, spherical), the log density is linear in :math:`\phi(x)`:

.. math:: \log N(x \mid \mu_k, \Sigma_k) = \phi(x)^T a_k + c_k, \quad
          a_k = [P_k \mu_k, \; -\tfrac12 (2 - \delta_{ij}) P_{k,ij}], \quad
          c_k = -\tfrac12 \|U_k^T \mu_k\|^2 + \log|U_k| - \tfrac D2 \log 2\pi

with :math:`P_k = U_k U_k^T`, so the E-step is ``Phi @ A`` (n, F) x (F, K) and the
M-step moments are ``Phi.T @ resp`` (F, n) x (n, K): :math:`\sum_n r_{nk} x_n` and
the upper triangle of :math:`\sum_n r_{nk} x_n x_n^T` in one GEMM. The expansion
:math:`x^T P x - 2\mu^T P x + \mu^T P \mu` loses about
:math:`\epsilon \|x - \mu\|_P^{-2}(\|x\|_P^2 + \|\mu\|_P^2)` relative accuracy, which is
why the data are centered first (the fit centers them at their mean; prediction
centers at the mixture mean).

**Whitening** (:class:`WhitenedFullKernel`, :class:`WhitenedTiedKernel`). For many
features (``F > K D``, i.e. roughly ``D > 2K``) the feature map is larger than the
whitened coordinates of all components together, and
:math:`y_k = (x - \mu_k) U_k` for all ``k`` is one GEMM ``X @ [U_1 ... U_K]``; the
full second moments are one GEMM ``X.T @ (X[:, :, None] * r[:, None, :])`` reshaped.

All products run in the dtype of ``X`` (float32 stays float32); the caller
accumulates the moments and the objective in float64.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FeatureMapKernel",
    "WhitenedFullKernel",
    "WhitenedTiedKernel",
    "diagonal_feature_kernel",
    "quadratic_feature_kernel",
]

_LOG_2PI = np.log(2.0 * np.pi)


def _quadratic_features(X: np.ndarray) -> np.ndarray:
    """``[x, x_i x_j for i <= j]`` (n, D + D(D+1)/2), in ``np.triu_indices`` order."""
    n, d = X.shape
    phi = np.empty((n, d + d * (d + 1) // 2), dtype=X.dtype)
    phi[:, :d] = X
    col = d
    for i in range(d):
        np.multiply(X[:, i : i + 1], X[:, i:], out=phi[:, col : col + d - i])
        col += d - i
    return phi


def _diagonal_features(X: np.ndarray) -> np.ndarray:
    """``[x, x^2]`` (n, 2D)."""
    n, d = X.shape
    phi = np.empty((n, 2 * d), dtype=X.dtype)
    phi[:, :d] = X
    np.multiply(X, X, out=phi[:, d:])
    return phi


class FeatureMapKernel:
    """Log densities ``phi(X) @ A + c`` and moments ``phi(X).T @ resp``.

    Parameters
    ----------
    A : ndarray of shape (F, K)
    c : ndarray of shape (K,)
    n_features : int
    second : {'full', 'tied', 'diag'}
        How the second-moment block of ``phi.T @ resp`` is returned: per component
        ``(K, D, D)``, summed over components ``(D, D)``, or the diagonal ``(K, D)``.
    dtype : numpy dtype
        The dtype of the data the kernel is applied to.
    """

    def __init__(self, A, c, n_features, second, dtype):
        self.A = np.ascontiguousarray(A, dtype=dtype)
        self.c = np.asarray(c, dtype=dtype)
        self.n_features = n_features
        self.second = second
        self.features = _diagonal_features if second == "diag" else _quadratic_features
        self.width = self.A.shape[0]

    def log_gaussian(self, X: np.ndarray):
        """``log N(x_n | mu_k, Sigma_k)`` (n, K) and the features, kept for the moments."""
        phi = self.features(X)
        out = phi @ self.A
        out += self.c
        return out, phi

    def moments(self, X: np.ndarray, resp: np.ndarray, phi: np.ndarray):
        """``(sum_x (K, D), sum_xx)`` of one chunk, float64."""
        d = self.n_features
        g = (phi.T @ resp).astype(np.float64, copy=False)  # (F, K)
        sum_x = g[:d].T
        if self.second == "diag":
            return sum_x, g[d:].T
        upper = g[d:]  # (D(D+1)/2, K)
        i, j = np.triu_indices(d)
        if self.second == "tied":
            out = np.empty((d, d))
            total = upper.sum(axis=1)
            out[i, j] = total
            out[j, i] = total
            return sum_x, out
        out = np.empty((resp.shape[1], d, d))
        out[:, i, j] = upper.T
        out[:, j, i] = upper.T
        return sum_x, out


def quadratic_feature_kernel(means, precisions_cholesky, log_det, tied, dtype):
    """Feature-map kernel for full ``(K, D, D)`` or tied ``(D, D)`` precision factors."""
    n_components, d = means.shape
    chol = np.broadcast_to(precisions_cholesky, (n_components, d, d))
    prec = chol @ np.swapaxes(chol, 1, 2)  # P_k = U_k U_k^T (no inverse)
    i, j = np.triu_indices(d)
    A = np.empty((d + i.size, n_components))
    A[:d] = np.einsum("kij,kj->ik", prec, means)
    A[d:] = (-0.5 * np.where(i == j, 1.0, 2.0))[:, None] * prec[:, i, j].T
    white_means = np.einsum("kd,kde->ke", means, chol)
    c = -0.5 * np.sum(white_means**2, axis=1) + log_det - 0.5 * d * _LOG_2PI
    return FeatureMapKernel(A, c, d, "tied" if tied else "full", dtype)


def diagonal_feature_kernel(means, precisions_cholesky, log_det, dtype):
    """Feature-map kernel for diag ``(K, D)`` or spherical ``(K,)`` precision factors."""
    n_components, d = means.shape
    prec = np.broadcast_to((precisions_cholesky**2).reshape(n_components, -1), (n_components, d))
    A = np.concatenate([(means * prec).T, -0.5 * prec.T], axis=0)
    c = -0.5 * np.sum(means**2 * prec, axis=1) + log_det - 0.5 * d * _LOG_2PI
    return FeatureMapKernel(A, c, d, "diag", dtype)


class WhitenedFullKernel:
    """Full covariances by whitening: ``Y = X @ [U_1 ... U_K] - [mu_1 U_1 ... mu_K U_K]``.

    Parameters
    ----------
    means : ndarray of shape (K, D)
    precisions_cholesky : ndarray of shape (K, D, D)
    log_det : ndarray of shape (K,)
    dtype : numpy dtype
    """

    def __init__(self, means, precisions_cholesky, log_det, dtype):
        n_components, d = means.shape
        self.n_features = d
        self.n_components = n_components
        self.W = np.ascontiguousarray(
            np.swapaxes(precisions_cholesky, 0, 1).reshape(d, n_components * d), dtype=dtype
        )
        self.offset = (-np.einsum("kd,kde->ke", means, precisions_cholesky)).ravel().astype(dtype)
        self.c = np.asarray(log_det - 0.5 * d * _LOG_2PI, dtype=dtype)
        self.width = n_components * d

    def log_gaussian(self, X):
        y = X @ self.W
        y += self.offset
        y *= y
        maha = y.reshape(X.shape[0], self.n_components, self.n_features).sum(axis=2)
        maha *= -0.5
        maha += self.c
        return maha, None

    def moments(self, X, resp, cache):
        n, d = X.shape
        k = resp.shape[1]
        sum_x = (resp.T @ X).astype(np.float64, copy=False)
        scaled = (X[:, :, None] * resp[:, None, :]).reshape(n, d * k)
        second = (X.T @ scaled).reshape(d, d, k).transpose(2, 0, 1)
        return sum_x, second.astype(np.float64)


class WhitenedTiedKernel:
    """Tied covariance by whitening once: ``y = x U``, ``log N_k = y . nu_k - |y|^2/2 + c_k``
    with ``nu_k = mu_k U``."""

    def __init__(self, means, precisions_cholesky, log_det, dtype):
        d = means.shape[1]
        self.U = np.asarray(precisions_cholesky, dtype=dtype)
        nu = means @ precisions_cholesky
        self.nu_t = np.ascontiguousarray(nu.T, dtype=dtype)
        self.c = np.asarray(-0.5 * np.sum(nu**2, axis=1) + log_det - 0.5 * d * _LOG_2PI, dtype)
        self.width = d + means.shape[0]

    def log_gaussian(self, X):
        y = X @ self.U
        out = y @ self.nu_t
        out -= 0.5 * np.einsum("ij,ij->i", y, y)[:, None]
        out += self.c
        return out, None

    def moments(self, X, resp, cache):
        sum_x = (resp.T @ X).astype(np.float64, copy=False)
        second = (X * resp.sum(axis=1, keepdims=True)).T @ X
        return sum_x, second.astype(np.float64)
