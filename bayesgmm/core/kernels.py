r"""Per-chunk kernels: the E-step log densities and the M-step moments as GEMMs.

A kernel holds the parameters of all ``K`` components, rearranged once per EM
iteration so that a block of rows ``X`` (n, D) needs one matrix product for the
log densities of every component and one more for the moments. Two formulations:

**Feature map** (:class:`FeatureMapKernel`). With the features
:math:`\phi(x) = [1, x, \; x_i x_j \; (i \le j)]` (full, tied) or :math:`[1, x, x^2]`
(diag, spherical), the log density is linear in :math:`\phi(x)`:

.. math:: \log N(x \mid \mu_k, \Sigma_k) = \phi(x)^T a_k + c_k, \quad
          a_k = [P_k \mu_k, \; -\tfrac12 (2 - \delta_{ij}) P_{k,ij}], \quad
          c_k = -\tfrac12 \|U_k^T \mu_k\|^2 + \log|U_k| - \tfrac D2 \log 2\pi

with :math:`P_k = U_k U_k^T`, so the E-step is one GEMM ``A.T @ Phi`` (K, F) x (F, n)
and the M-step moments are one more, ``Phi @ resp.T`` (F, n) x (n, K): the counts,
:math:`\sum_n r_{nk} x_n` and the upper triangle of :math:`\sum_n r_{nk} x_n x_n^T`. The expansion
:math:`x^T P x - 2\mu^T P x + \mu^T P \mu` loses about
:math:`\epsilon \|x - \mu\|_P^{-2}(\|x\|_P^2 + \|\mu\|_P^2)` relative accuracy, which is
why the data are centered first (the fit centers them at their mean; prediction
centers at the mixture mean).

**Whitening** (:class:`WhitenedFullKernel`, :class:`WhitenedTiedKernel`). For many
features (``F > K D``, i.e. roughly ``D > 2K``) the feature map is larger than the
whitened coordinates of all components together, and
:math:`y_k = (x - \mu_k) U_k` for all ``k`` is one GEMM ``X @ [U_1 ... U_K]``; the
full second moments are one GEMM ``X.T @ (X[:, :, None] * r[:, None, :])`` reshaped.

Kernels work on the transposed layout, component by row: densities and
responsibilities are ``(K, n)`` arrays, so the log-sum-exp over components is a few
long contiguous passes. All products run in the dtype of ``X`` (float32 stays
float32); the moments are accumulated in float64 (:meth:`accumulate` adds a chunk
into a float64 accumulator, :meth:`unpack` turns it into counts and moments).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "FeatureMapKernel",
    "WhitenedFullKernel",
    "WhitenedTiedKernel",
    "diagonal_feature_kernel",
    "quadratic_feature_kernel",
]

_LOG_2PI = np.log(2.0 * np.pi)


@lru_cache(maxsize=64)
def _triu_indices(d: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(d)``, computed once per ``d`` (read-only): it was built twice
    per E-step, a tenth of the run time of small grids such as Old Faithful's."""
    i, j = np.triu_indices(d)
    i.setflags(write=False)
    j.setflags(write=False)
    return i, j


def _quadratic_features(X: np.ndarray) -> np.ndarray:
    """``[1, x, x_i x_j for i <= j]`` as rows, shape (1 + D + D(D+1)/2, n), in
    ``np.triu_indices`` order (transposed: every product is one long contiguous pass,
    about twice as fast as the (n, F) layout at D = 10)."""
    n, d = X.shape
    phi = np.empty((1 + d + d * (d + 1) // 2, n), dtype=X.dtype)
    phi[0] = 1.0
    xt = phi[1 : 1 + d]
    xt[...] = X.T
    row = 1 + d
    for i in range(d):
        np.multiply(xt[i], xt[i:], out=phi[row : row + d - i])
        row += d - i
    return phi


def _diagonal_features(X: np.ndarray) -> np.ndarray:
    """``[1, x, x^2]`` as rows, shape (1 + 2D, n)."""
    n, d = X.shape
    phi = np.empty((1 + 2 * d, n), dtype=X.dtype)
    phi[0] = 1.0
    phi[1 : 1 + d] = X.T
    np.multiply(phi[1 : 1 + d], phi[1 : 1 + d], out=phi[1 + d :])
    return phi


class FeatureMapKernel:
    """Log densities ``A.T @ phi(X)`` and moments ``phi(X) @ resp.T``.

    Parameters
    ----------
    A_t : ndarray of shape (K, 1 + F)
        ``A`` transposed, in the dtype of the data: column 0 holds the constants
        ``c_k`` (the feature 1).
    n_features : int
    second : {'full', 'tied', 'diag'}
        How the second-moment block is returned: per component ``(K, D, D)``, summed
        over components ``(D, D)``, or the diagonal ``(K, D)``.
    """

    def __init__(self, A_t, n_features, second):
        self.A_t = A_t  # (K, 1 + F), C-contiguous, the data's dtype
        self.n_features = n_features
        self.second = second
        self.features = _diagonal_features if second == "diag" else _quadratic_features
        #: Widest per-row temporary, in elements.
        self.width = A_t.shape[1]
        if second != "diag":
            self._upper = _triu_indices(n_features)

    def log_gaussian(self, X: np.ndarray):
        """``log N(x_n | mu_k, Sigma_k)`` as (K, n), and the features (for the moments)."""
        phi = self.features(X)
        return self.A_t @ phi, phi

    def log_gaussian_from_features(
        self, phi: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`log_gaussian` from features ``self.features(X)`` computed before (they
        do not depend on the parameters: the EM loop on one chunk keeps them); into
        ``out`` (K, n) when given."""
        return np.matmul(self.A_t, phi, out=out)

    def new_accumulator(self) -> list[np.ndarray]:
        """A list of float64 arrays; accumulators of two ranges of rows add elementwise."""
        return [np.zeros((self.A_t.shape[1], self.A_t.shape[0]))]

    def accumulate(self, acc, X, resp_t, phi) -> None:
        """Add the chunk's ``phi @ resp.T`` (1 + F, K) to ``acc`` (float64)."""
        acc[0] += phi @ resp_t.T

    def unpack(self, acc):
        """``(counts (K,), sum_x (K, D), sum_xx)`` from the accumulator."""
        d = self.n_features
        acc = acc[0]
        counts, sum_x, upper = acc[0], acc[1 : 1 + d].T, acc[1 + d :]
        if self.second == "diag":
            return counts, sum_x, upper.T
        i, j = self._upper
        if self.second == "tied":
            out = np.empty((d, d))
            total = upper.sum(axis=1)
            out[i, j] = total
            out[j, i] = total
            return counts, sum_x, out
        out = np.empty((acc.shape[1], d, d))
        out[:, i, j] = upper.T
        out[:, j, i] = upper.T
        return counts, sum_x, out


@lru_cache(maxsize=64)
def _upper_flat(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices ``i * d + j`` of ``np.triu_indices(d)`` and the coefficients
    ``-1/2 (2 - delta_ij)`` of ``P_ij`` in the log density (read-only)."""
    i, j = _triu_indices(d)
    flat = i * d + j
    coefficients = -0.5 * np.where(i == j, 1.0, 2.0)
    flat.setflags(write=False)
    coefficients.setflags(write=False)
    return flat, coefficients


def quadratic_feature_kernel(means, precisions_cholesky, log_det, tied, dtype):
    """Feature-map kernel for full ``(K, D, D)`` or tied ``(D, D)`` precision factors."""
    n_components, d = means.shape
    flat, coefficients = _upper_flat(d)
    chol = np.asarray(precisions_cholesky)
    A_t = np.empty((n_components, 1 + d + flat.size), dtype=dtype)
    if tied:
        prec = chol @ chol.T  # P = U U^T (no inverse)
        white_means = means @ chol
        A_t[:, 1 : 1 + d] = means @ prec  # P symmetric: row k is P mu_k
        A_t[:, 1 + d :] = prec.reshape(-1).take(flat) * coefficients
    else:
        prec = chol @ chol.transpose(0, 2, 1)  # P_k = U_k U_k^T
        white_means = (means[:, None, :] @ chol)[:, 0]
        A_t[:, 1 : 1 + d] = (prec @ means[:, :, None])[:, :, 0]
        A_t[:, 1 + d :] = prec.reshape(n_components, -1).take(flat, axis=1) * coefficients
    white_means *= white_means
    A_t[:, 0] = white_means.sum(axis=1) * -0.5 + (log_det - 0.5 * d * _LOG_2PI)
    return FeatureMapKernel(A_t, d, "tied" if tied else "full")


def diagonal_feature_kernel(means, precisions_cholesky, log_det, dtype):
    """Feature-map kernel for diag ``(K, D)`` or spherical ``(K,)`` precision factors."""
    n_components, d = means.shape
    prec = np.asarray(precisions_cholesky) ** 2
    if prec.ndim == 1:
        prec = prec[:, None]  # spherical: broadcasts over the features
    A_t = np.empty((n_components, 1 + 2 * d), dtype=dtype)
    lin = means * prec  # float64 for the constants, whatever the data's dtype
    A_t[:, 1 : 1 + d] = lin
    A_t[:, 1 + d :] = -0.5 * prec
    A_t[:, 0] = -0.5 * np.einsum("kd,kd->k", means, lin) + (log_det - 0.5 * d * _LOG_2PI)
    return FeatureMapKernel(A_t, d, "diag")


class WhitenedFullKernel:
    """Full covariances by whitening: ``Y = [U_1 ... U_K]^T X^T - [U_k^T mu_k]``, one GEMM.

    The moments are one GEMM too: ``(r[:, None, :] * X.T[None]).reshape(K D, n) @ X``.

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
        # Row k*D + e of W_t is column e of U_k.
        self.W_t = np.ascontiguousarray(
            np.swapaxes(precisions_cholesky, 1, 2).reshape(n_components * d, d), dtype=dtype
        )
        offset = -np.einsum("kd,kde->ke", means, precisions_cholesky).reshape(-1, 1)
        self.offset = offset.astype(dtype)
        self.c = np.asarray(log_det - 0.5 * d * _LOG_2PI, dtype=dtype)[:, None]
        self.width = 2 * n_components * d

    def log_gaussian(self, X):
        xt = np.ascontiguousarray(X.T)  # (D, n), reused by the moments
        y = self.W_t @ xt
        y += self.offset
        y *= y
        maha = y.reshape(self.n_components, self.n_features, X.shape[0]).sum(axis=1)
        maha *= -0.5
        maha += self.c
        return maha, xt

    def new_accumulator(self):
        k, d = self.n_components, self.n_features
        return [np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))]

    def accumulate(self, acc, X, resp_t, xt) -> None:
        k, d = self.n_components, self.n_features
        acc[0] += resp_t.sum(axis=1, dtype=np.float64)
        acc[1] += resp_t @ X
        scaled = (resp_t[:, None, :] * xt[None]).reshape(k * d, X.shape[0])
        acc[2] += (scaled @ X).reshape(k, d, d)

    def unpack(self, acc):
        return acc[0], acc[1], acc[2]


class WhitenedTiedKernel:
    """Tied covariance by whitening once: ``y = U^T x``, ``log N_k = nu_k . y - |y|^2/2 + c_k``
    with ``nu_k = U^T mu_k``."""

    def __init__(self, means, precisions_cholesky, log_det, dtype):
        n_components, d = means.shape
        self.n_features = d
        self.n_components = n_components
        self.U_t = np.ascontiguousarray(np.asarray(precisions_cholesky).T, dtype=dtype)
        nu = means @ precisions_cholesky
        self.nu = np.ascontiguousarray(nu, dtype=dtype)
        c = -0.5 * np.sum(nu**2, axis=1) + log_det - 0.5 * d * _LOG_2PI
        self.c = np.asarray(c, dtype=dtype)[:, None]
        self.width = d + n_components

    def log_gaussian(self, X):
        y = self.U_t @ X.T  # (D, n)
        out = self.nu @ y
        y *= y
        out -= 0.5 * y.sum(axis=0)
        out += self.c
        return out, None

    def new_accumulator(self):
        k, d = self.n_components, self.n_features
        return [np.zeros(k), np.zeros((k, d)), np.zeros((d, d))]

    def accumulate(self, acc, X, resp_t, cache) -> None:
        acc[0] += resp_t.sum(axis=1, dtype=np.float64)
        acc[1] += resp_t @ X
        acc[2] += (X.T * resp_t.sum(axis=0)) @ X

    def unpack(self, acc):
        return acc[0], acc[1], acc[2]
