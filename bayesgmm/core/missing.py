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

- covariance types with diagonal covariances (``diag``, ``spherical``, the diagonal
  mclust families) need no conditional regression: the observed marginal is a
  product over the observed coordinates, :math:`\hat x_{nk,M} = \mu_{k,M}` and
  :math:`C_k` is the diagonal of the missing variances.
  :class:`MaskedDiagonalKernel` is one GEMM per chunk on the features
  :math:`[1, o, \tilde x, \tilde x^2]` (mask, data filled with 0, squares), with no
  grouping of rows at all;
- the others (:class:`ObservedFeatureKernel`) group rows by missingness pattern once
  per fit. Per E-step the observed blocks :math:`\Sigma_{k,OO}` of all patterns with
  the same number of observed coordinates are factorized in one batched Cholesky
  (all patterns and components at once), giving each pattern's coefficients of the
  quadratic feature map of the filled row; per chunk each run of rows with one
  pattern costs two small GEMMs (log densities, moments), and the statistics come
  from each pattern's moments by :math:`D \times D` algebra per pattern, not per row.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from bayesgmm.core.covariance import CovarianceModel, get_covariance_model
from bayesgmm.core.kernels import _quadratic_features
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats

__all__ = [
    "MaskedDiagonalKernel",
    "MissingPatterns",
    "ObservedFeatureKernel",
    "PatternPieces",
    "has_missing",
    "impute_draws",
    "impute_mean",
    "missing_chunk_kernel",
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
    n_features = observed.shape[1]
    if n_features <= 62:
        # Each pattern as an integer, the first column the highest bit: sorting the
        # integers sorts the patterns as rows (np.unique(axis=0), ~50x slower).
        codes = observed.astype(np.int64) @ (np.int64(1) << np.arange(n_features - 1, -1, -1))
        codes, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        patterns = observed[first]
    else:
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


# -- the missing-data chunk kernels -------------------------------------------------------
class PatternPieces(NamedTuple):
    """The rows of one chunk of incomplete rows, as runs of one missingness pattern.

    Attributes
    ----------
    pieces : tuple of (start, stop, pattern)
        Rows ``start:stop`` of the chunk all have pattern ``pattern`` (a row of the
        plan's pattern table). Empty for the diagonal kernel, which needs no grouping.
    """

    pieces: tuple[tuple[int, int, int], ...] = ()


class ObservedFeatureKernel:
    r"""Observed-data E-step for covariances with correlations, batched over patterns.

    For a row with observed coordinates :math:`O` (pattern :math:`p`) and the data
    filled with 0 where missing (:math:`\tilde x`), the log marginal is a quadratic
    form in :math:`\tilde x`:

    .. math:: \log N(x_O \mid \mu_{k,O}, \Sigma_{k,OO})
              = \phi(\tilde x)^T a_{pk}, \quad
              \phi(\tilde x) = [1, \tilde x, \tilde x_i \tilde x_j \; (i \le j)]

    with :math:`a_{pk}` built from :math:`\Sigma_{k,OO}^{-1}` on the observed
    coordinates' entries and 0 elsewhere (as the complete-data feature map is built
    from :math:`\Sigma_k^{-1}`). With :math:`\tilde P_{pk}` that inverse embedded in a
    :math:`D \times D` matrix of zeros and
    :math:`v_{nk} = \tilde P_{pk} (\tilde x_n - \mu_k)`, the completed row is
    :math:`\hat x_{nk} = \mu_k + \Sigma_k v_{nk}` (on the observed coordinates
    :math:`\Sigma_{OO} \Sigma_{OO}^{-1} (x_O - \mu_O) = x_O - \mu_O`, on the missing
    ones the regression :math:`\mu_M + \Sigma_{MO} \Sigma_{OO}^{-1} (x_O - \mu_O)`), and
    the conditional covariance is :math:`\Sigma_k - \Sigma_k \tilde P_{pk} \Sigma_k`
    (zero outside the missing block). So the expected statistics are

    .. math:: s_k = n_k \mu_k + \Sigma_k \textstyle\sum_n r_{nk} v_{nk}, \quad
              S_k = n_k (\mu_k \mu_k^T + \Sigma_k) + \mu_k (s_k - n_k\mu_k)^T
              + (s_k - n_k\mu_k) \mu_k^T
              + \Sigma_k \Big(\textstyle\sum_n r_{nk} (v_{nk} v_{nk}^T
              - \tilde P_{pk})\Big) \Sigma_k,

    and each sum over rows is a sum over patterns of expressions in the pattern's
    moments :math:`\sum_{n \in p} r_{nk} \phi(\tilde x_n)`, on its observed block
    (:math:`|O|^3` work per pattern and component, none per row).

    Per E-step the observed blocks of all patterns with the same number of observed
    coordinates are factorized in one batched Cholesky; per chunk the features are
    built once and each run of rows with one pattern costs two small GEMMs
    (densities, moments), so the work per row is that of the complete-data feature map.

    Parameters
    ----------
    means : ndarray of shape (K, D)
    full : ndarray of shape (K, D, D)
        The covariances as full matrices.
    patterns : ndarray of bool, shape (P, D)
        ``True`` where observed.
    first : int, default=0
        The number of ``patterns[0]`` in the pieces this kernel is given: a worker
        thread builds the tables of its own consecutive range of patterns only.
    """

    def __init__(self, means: np.ndarray, full: np.ndarray, patterns: np.ndarray, first: int = 0):
        self.first = first
        n_components, d = means.shape
        n_patterns = patterns.shape[0]
        self.n_components, self.n_features = n_components, d
        self.means, self.full = means, full
        i, j = np.triu_indices(d)
        # Feature number of x_a x_b (either order) in phi.
        self._product = np.empty((d, d), dtype=np.intp)
        self._product[i, j] = self._product[j, i] = 1 + d + np.arange(i.size)
        self.width = 1 + d + i.size
        A = np.zeros((n_patterns, n_components, self.width))  # 0: nothing observed
        self._groups = []
        n_obs = patterns.sum(axis=1)
        components = np.arange(n_components)[None, :, None]
        for size in np.unique(n_obs):
            if size == 0:
                continue
            rows = np.flatnonzero(n_obs == size)
            obs = np.nonzero(patterns[rows])[1].reshape(rows.size, size)  # (P_o, |O|)
            # Observed blocks of every pattern of this size and every component.
            s_oo = np.swapaxes(full[:, obs[:, :, None], obs[:, None, :]], 0, 1)
            chol = np.linalg.cholesky(s_oo)  # (P_o, K, |O|, |O|)
            inv_chol = np.linalg.solve(chol, np.broadcast_to(np.eye(size), chol.shape))
            inv = np.swapaxes(inv_chol, 2, 3) @ inv_chol  # Sigma_OO^-1
            log_det = 2.0 * np.log(np.diagonal(chol, axis1=2, axis2=3)).sum(axis=2)
            mean_o = np.swapaxes(means[:, obs], 0, 1)  # (P_o, K, |O|)
            linear = (inv @ mean_o[..., None])[..., 0]
            at = rows[:, None, None]
            A[rows, :, 0] = (
                -0.5 * np.einsum("pko,pko->pk", mean_o, linear)
                - 0.5 * log_det
                - 0.5 * _LOG_2PI * size
            )
            A[at, components, 1 + obs[:, None, :]] = linear
            a, b = np.triu_indices(size)
            pairs = self._product[obs[:, a], obs[:, b]]  # (P_o, pairs)
            A[at, components, pairs[:, None, :]] = (
                -0.5 * np.where(a == b, 1.0, 2.0) * inv[:, :, a, b]
            )
            self._groups.append((rows, obs, inv, linear))
        self.A = A  # (P, K, F): one GEMM per run of rows

    def log_gaussian(self, X: np.ndarray, pieces: PatternPieces) -> tuple[np.ndarray, np.ndarray]:
        """Log densities ``(K, n)`` of the observed coordinates, and the features."""
        filled = np.where(np.isnan(X), 0.0, X).astype(np.float64, copy=False)
        phi = _quadratic_features(filled)  # (F, n)
        out = np.empty((self.n_components, X.shape[0]))
        A, first = self.A, self.first
        for start, stop, pattern in pieces.pieces:
            np.matmul(A[pattern - first], phi[:, start:stop], out=out[:, start:stop])
        return out, phi

    def new_accumulator(self) -> list[np.ndarray]:
        """Per pattern: ``sum_n r_nk phi(x_n)``, shape (P, F, K)."""
        return [np.zeros((self.A.shape[0], self.width, self.n_components))]

    def accumulate(self, acc, X, resp_t, phi, pieces: PatternPieces) -> None:
        moments, first = acc[0], self.first
        for start, stop, pattern in pieces.pieces:
            moments[pattern - first] += phi[:, start:stop] @ resp_t[:, start:stop].T

    def unpack(self, acc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(counts (K,), sum_x (K, D), second (K, D, D))`` of the completed rows
        (the formulas in the class docstring, one group of patterns at a time)."""
        d, k = self.n_features, self.n_components
        moments = np.swapaxes(acc[0], 1, 2)  # (P, K, F)
        counts = moments[:, :, 0].sum(axis=0)
        v1 = np.zeros(k * d)  # sum_n r v
        vv = np.zeros(k * d * d)  # sum_n r (v v^T - P~)
        component = np.arange(k)[None, :, None]
        for rows, obs, inv, linear in self._groups:
            size = obs.shape[1]
            m = moments[rows]  # (P_o, K, F)
            m0 = m[:, :, 0]
            m1 = np.take_along_axis(m, 1 + obs[:, None, :], axis=2)
            prod = self._product[obs[:, :, None], obs[:, None, :]].reshape(len(rows), 1, -1)
            m2 = np.take_along_axis(m, prod, axis=2).reshape(*m0.shape, size, size)
            p_m1 = (inv @ m1[..., None])[..., 0]
            # v = inv (x_O - mu_O) on the observed block: its weighted sums.
            w1 = p_m1 - m0[..., None] * linear
            cross = p_m1[..., :, None] * linear[..., None, :]
            block = inv @ m2 @ inv - cross - np.swapaxes(cross, 2, 3)
            block += m0[..., None, None] * (linear[..., :, None] * linear[..., None, :] - inv)
            at = component * d + obs[:, None, :]  # (P_o, K, |O|) into (K, D)
            v1 += np.bincount(at.ravel(), w1.ravel(), minlength=k * d)
            at2 = (at * d)[..., :, None] + obs[:, None, None, :]  # into (K, D, D)
            vv += np.bincount(at2.ravel(), block.ravel(), minlength=k * d * d)
        means, full = self.means, self.full
        shift = (full @ v1.reshape(k, d, 1))[..., 0]  # sum_x - n mu
        outer = means[:, :, None] * shift[:, None, :]
        second = counts[:, None, None] * (means[:, :, None] * means[:, None, :] + full)
        second += outer + np.swapaxes(outer, 1, 2) + full @ vv.reshape(k, d, d) @ full
        second = 0.5 * (second + np.swapaxes(second, 1, 2))
        return counts, counts[:, None] * means + shift, second


class MaskedDiagonalKernel:
    r"""Observed-data E-step for diagonal covariances: no patterns, one GEMM per chunk.

    With :math:`o_{nd}` the 0/1 observation mask and :math:`\tilde x` the data filled
    with 0 where missing, the observed marginal is a product of univariate Normals,

    .. math:: \log N(x_O \mid \mu_{k,O}, \Sigma_{k,OO}) = \sum_d o_{nd}
              \left(-\tfrac12 \log 2\pi\sigma^2_{kd} - \tfrac{\mu_{kd}^2}{2\sigma^2_{kd}}\right)
              + \tilde x_{nd} \frac{\mu_{kd}}{\sigma^2_{kd}}
              - \tilde x_{nd}^2 \frac{1}{2\sigma^2_{kd}},

    linear in the features :math:`[1, o, \tilde x, \tilde x^2]`; the missing
    coordinates' conditional means are :math:`\mu_{k,M}` and their conditional
    variances :math:`\sigma^2_{k,M}`, so the statistics need only the moments of the
    same features (one more GEMM), whatever the pattern of each row.
    """

    def __init__(self, means: np.ndarray, variances: np.ndarray):
        n_components, d = means.shape
        self.n_components, self.n_features = n_components, d
        self.means, self.variances = means, variances
        prec = 1.0 / variances
        A = np.zeros((n_components, 1 + 3 * d))  # the feature 1 has coefficient 0
        A[:, 1 : 1 + d] = -0.5 * (_LOG_2PI + np.log(variances) + means * means * prec)
        A[:, 1 + d : 1 + 2 * d] = means * prec
        A[:, 1 + 2 * d :] = -0.5 * prec
        self.A = A
        self.width = A.shape[1]

    def log_gaussian(self, X: np.ndarray, pieces: PatternPieces | None = None):
        """Log densities ``(K, n)`` and the features ``[1, o, x~, x~^2]`` (F, n)."""
        n, d = X.shape
        x_t = X.T
        missing = np.isnan(x_t)
        phi = np.empty((1 + 3 * d, n))
        phi[0] = 1.0
        np.logical_not(missing, out=phi[1 : 1 + d])
        filled = phi[1 + d : 1 + 2 * d]
        filled[...] = np.where(missing, 0.0, x_t)
        np.multiply(filled, filled, out=phi[1 + 2 * d :])
        return self.A @ phi, phi

    def new_accumulator(self) -> list[np.ndarray]:
        return [np.zeros((self.width, self.n_components))]

    def accumulate(self, acc, X, resp_t, phi, pieces: PatternPieces | None = None) -> None:
        acc[0] += phi @ resp_t.T

    def unpack(self, acc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(counts (K,), sum_x (K, D), second (K, D, D))``: a missing coordinate
        contributes its conditional mean and variance, ``mu_kd`` and ``sigma^2_kd``."""
        d = self.n_features
        moments = acc[0].T  # (K, F)
        counts = moments[:, 0]
        missing_mass = counts[:, None] - moments[:, 1 : 1 + d]
        sum_x = moments[:, 1 + d : 1 + 2 * d] + missing_mass * self.means
        diag = moments[:, 1 + 2 * d :] + missing_mass * (self.means**2 + self.variances)
        second = np.zeros((self.n_components, d, d))
        second[:, np.arange(d), np.arange(d)] = diag
        return counts, sum_x, second


def missing_chunk_kernel(
    params: GMMParams, covariance_type: str, patterns: np.ndarray | None, first: int = 0
) -> ObservedFeatureKernel | MaskedDiagonalKernel:
    """The kernel for chunks with NaN, chosen by the covariance table's
    ``independent_features`` flag: :class:`MaskedDiagonalKernel` (no grouping of
    rows) or :class:`ObservedFeatureKernel` over the pattern table ``patterns``
    (P, D), ``True`` where observed, whose first row is pattern number ``first``."""
    model = get_covariance_model(covariance_type)
    if model.independent_features:
        return MaskedDiagonalKernel(params.means, _diagonal_variances(params, model))
    return ObservedFeatureKernel(params.means, _full_covariances(params, model), patterns, first)


def _pattern_order(X: np.ndarray, patterns: MissingPatterns | None) -> tuple:
    """Rows sorted by pattern, the pieces of that order and the pattern table."""
    if patterns is None:
        patterns = missing_patterns(X)
    order = np.concatenate(patterns.rows) if patterns.rows else np.zeros(0, dtype=int)
    bounds = np.cumsum([0] + [r.size for r in patterns.rows]).tolist()
    pieces = PatternPieces(tuple((a, b, p) for p, (a, b) in enumerate(itertools.pairwise(bounds))))
    return order, pieces, patterns.patterns


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
    ``log N(x_n | mu_k, Sigma_k)``. The same kernels as the E-step
    (:func:`missing_chunk_kernel`), on all rows as one chunk.

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
    X = np.asarray(X, dtype=np.float64)
    if get_covariance_model(covariance_type).independent_features:
        kernel = missing_chunk_kernel(params, covariance_type, None)
        return kernel.log_gaussian(X)[0].T
    order, pieces, table = _pattern_order(X, patterns)
    kernel = missing_chunk_kernel(params, covariance_type, table)
    out = np.empty((X.shape[0], params.means.shape[0]))
    out[order] = kernel.log_gaussian(X[order], pieces)[0].T
    return out


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
    drop such rows before fitting). The same kernels as the E-step
    (:func:`missing_chunk_kernel`), on all rows as one chunk.
    """
    X = np.asarray(X, dtype=np.float64)
    model = get_covariance_model(covariance_type)
    if sample_weight is not None:
        resp = resp * sample_weight[:, None]
    if model.independent_features:
        order, pieces, table = slice(None), PatternPieces(), None
    else:
        order, pieces, table = _pattern_order(X, patterns)
    kernel = missing_chunk_kernel(params, covariance_type, table)
    block = X[order]
    _, phi = kernel.log_gaussian(block, pieces)
    acc = kernel.new_accumulator()
    kernel.accumulate(acc, block, np.ascontiguousarray(resp[order].T), phi, pieces)
    counts, sum_x, second = kernel.unpack(acc)
    return SufficientStats(counts, sum_x, model.second_moment_from_full(second), covariance_type)


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
