r"""M-steps of mclust's eigen-decomposed covariance families (pure NumPy).

Every covariance is :math:`\Sigma_k = \lambda_k D_k A_k D_k^T` with volume
:math:`\lambda_k = |\Sigma_k|^{1/d}`, shape :math:`A_k` (diagonal, :math:`|A_k| = 1`)
and orientation :math:`D_k` (orthogonal); each of the three is Equal (E) or Variable
(V) across components, or the identity (I) (Banfield & Raftery 1993; Celeux & Govaert
1995). Given effective counts :math:`c_k` and scatter matrices :math:`W_k` (the
weighted scatter about the means, plus any prior pseudo-data), each function here
minimizes

.. math:: f(\Sigma) = \sum_k \left[c_k \log|\Sigma_k| + \operatorname{tr}(W_k
          \Sigma_k^{-1})\right]

over its family (:func:`objective`), i.e. maximizes the expected complete-data
log-likelihood (or the MAP objective) in the covariances. Closed forms where they
exist (EII, VII, EEI, EVI, VVI, EEE, EEV, EVV, VVV); alternating conditional
minimization for VEI, VEE, VEV (Celeux & Govaert 1995); the MM algorithm of Browne &
McNicholas (2014) for the common orientation of EVE and VVE. The iterative ones start
from ``previous`` covariances when given (warm start), so each inner iteration, and
hence each M-step, never increases :math:`f` from the previous parameters: EM stays
monotone. They stop when the relative change of :math:`f` is below ``tol`` or after
``max_iter`` iterations (mclust's ``control$tol[2]``, ``control$itmax[2]``).

Diagonal families take and return ``(K, D)`` arrays of variances (the diagonals);
the others ``(K, D, D)`` matrices.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

_gesdd, _syevd = lapack.get_lapack_funcs(("gesdd", "syevd"), (np.zeros((1, 1)),))

__all__ = [
    "common_orientation",
    "objective",
    "update_eei",
    "update_eev",
    "update_eii",
    "update_eve",
    "update_evi",
    "update_evv",
    "update_vee",
    "update_vei",
    "update_vev",
    "update_vve",
]


def _geomean(x: np.ndarray) -> np.ndarray:
    """Geometric mean over the last axis (0 where a value is 0)."""
    if x.min() > 0.0:  # no log(0): skip the error-state switch (most calls)
        return np.exp(np.log(x).sum(axis=-1) / x.shape[-1])
    with np.errstate(divide="ignore"):
        return np.exp(np.log(x).sum(axis=-1) / x.shape[-1])


def objective(counts: np.ndarray, scatter: np.ndarray, covariances: np.ndarray) -> float:
    r""":math:`\sum_k c_k \log|\Sigma_k| + \operatorname{tr}(W_k \Sigma_k^{-1})`
    (diagonal ``(K, D)`` or full ``(K, D, D)`` inputs)."""
    if scatter.ndim == 2:
        return float(
            (counts * np.log(covariances).sum(axis=1) + (scatter / covariances).sum(axis=1)).sum()
        )
    sign, logdet = np.linalg.slogdet(covariances)
    if np.any(sign <= 0):
        return np.inf
    trace = np.einsum("kii->k", np.linalg.solve(covariances, scatter))
    return float((counts * logdet + trace).sum())


def _converged(old: float, new: float, tol: float) -> bool:
    return abs(old - new) <= tol * (1.0 + abs(new))


# -- diagonal families: inputs counts (K,), diagonal scatters (K, D) ------------------
def update_eii(counts: np.ndarray, scatter: np.ndarray) -> np.ndarray:
    r"""EII, :math:`\lambda I`: :math:`\lambda = \sum_k \operatorname{tr} W_k / (d \sum_k c_k)`."""
    n_features = scatter.shape[1]
    return np.full(scatter.shape, scatter.sum() / (n_features * counts.sum()))


def update_eei(counts: np.ndarray, scatter: np.ndarray) -> np.ndarray:
    r"""EEI, :math:`\lambda A`: the pooled diagonal :math:`\sum_k W_k / \sum_k c_k`."""
    return np.broadcast_to(scatter.sum(axis=0) / counts.sum(), scatter.shape).copy()


def update_evi(counts: np.ndarray, scatter: np.ndarray) -> np.ndarray:
    r"""EVI, :math:`\lambda A_k`: :math:`A_k = W_k / |W_k|^{1/d}`,
    :math:`\lambda = \sum_k |W_k|^{1/d} / \sum_k c_k` (``W_k`` diagonal)."""
    g = _geomean(scatter)
    return scatter / g[:, None] * (g.sum() / counts.sum())


def update_vei(
    counts: np.ndarray,
    scatter: np.ndarray,
    previous: np.ndarray | None = None,
    tol: float = 1.5e-8,
    max_iter: int = 100,
) -> np.ndarray:
    r"""VEI, :math:`\lambda_k A`: alternate :math:`A \propto \sum_k W_k/\lambda_k`
    (:math:`|A| = 1`) and :math:`\lambda_k = \operatorname{tr}(W_k A^{-1}) / (d c_k)`."""
    n_features = scatter.shape[1]
    if previous is None:
        shape = np.ones(n_features)
        volume = scatter.sum(axis=1) / (n_features * counts)
    else:
        volume = _geomean(previous)
        shape = previous[0] / volume[0]
    cov = volume[:, None] * shape
    value = objective(counts, scatter, cov)
    for _ in range(max_iter):
        pooled = (scatter / volume[:, None]).sum(axis=0)
        shape = pooled / _geomean(pooled)
        volume = (scatter / shape).sum(axis=1) / (n_features * counts)
        cov = volume[:, None] * shape
        new = objective(counts, scatter, cov)
        done = _converged(value, new, tol)
        value = new
        if done:
            break
    return cov


# -- full families: inputs counts (K,), scatters (K, D, D) ----------------------------
def _eigh_desc(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing) and eigenvectors of symmetric matrices (..., D, D)."""
    if matrices.ndim == 2:
        # One matrix: LAPACK's syevd (as NumPy's eigh) without NumPy's wrapper.
        values, vectors, info = _syevd(matrices, compute_v=1, lower=1)
        if info == 0:
            return values[::-1], vectors[:, ::-1]
    values, vectors = np.linalg.eigh(matrices)
    return values[..., ::-1], vectors[..., ::-1]


def _compose(vectors: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``D diag(values) D^T``, batched; ``vectors`` (K, D, D) or (D, D)."""
    out = (vectors * values[..., None, :]) @ np.swapaxes(vectors, -1, -2)
    return 0.5 * (out + np.swapaxes(out, -1, -2))


def update_evv(counts: np.ndarray, scatter: np.ndarray) -> np.ndarray:
    r"""EVV, :math:`\lambda C_k`: :math:`C_k = W_k/|W_k|^{1/d}`,
    :math:`\lambda = \sum_k |W_k|^{1/d} / \sum_k c_k`."""
    n_features = scatter.shape[-1]
    sign, logdet = np.linalg.slogdet(scatter)
    g = np.where(sign > 0, np.exp(logdet / n_features), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return scatter / g[:, None, None] * (g.sum() / counts.sum())


def update_eev(counts: np.ndarray, scatter: np.ndarray) -> np.ndarray:
    r"""EEV, :math:`\lambda D_k A D_k^T`: :math:`D_k` the eigenvectors of :math:`W_k`
    (eigenvalues :math:`\omega_k` decreasing), :math:`A \propto \sum_k \omega_k`,
    :math:`\lambda = |\sum_k \omega_k|^{1/d} / \sum_k c_k`."""
    values, vectors = _eigh_desc(scatter)
    pooled = values.sum(axis=0)
    return _compose(vectors, np.broadcast_to(pooled / counts.sum(), values.shape))


def update_vev(
    counts: np.ndarray,
    scatter: np.ndarray,
    previous: np.ndarray | None = None,
    tol: float = 1.5e-8,
    max_iter: int = 100,
) -> np.ndarray:
    r"""VEV, :math:`\lambda_k D_k A D_k^T`: :math:`D_k` the eigenvectors of :math:`W_k`
    (paired with :math:`A` sorted decreasingly), then alternate
    :math:`A \propto \sum_k \omega_k/\lambda_k` and
    :math:`\lambda_k = \sum_j \omega_{kj}/a_j / (d c_k)`."""
    n_features = scatter.shape[-1]
    values, vectors = _eigh_desc(scatter)
    values = np.maximum(values, 0.0)
    if previous is None:
        volume = values.sum(axis=1) / (n_features * counts)
        shape = np.ones(n_features)
    else:
        prev_values = _eigh_desc(previous)[0]
        volume = _geomean(prev_values)
        shape = np.sort(prev_values[0] / volume[0])[::-1]

    def value(volume, shape):
        return float(
            (n_features * counts * np.log(volume) + (values / shape).sum(axis=1) / volume).sum()
        )

    current = value(volume, shape)
    for _ in range(max_iter):
        pooled = (values / volume[:, None]).sum(axis=0)
        shape = pooled / _geomean(pooled)
        volume = (values / shape).sum(axis=1) / (n_features * counts)
        new = value(volume, shape)
        done = _converged(current, new, tol)
        current = new
        if done:
            break
    return _compose(vectors, volume[:, None] * shape)


def update_vee(
    counts: np.ndarray,
    scatter: np.ndarray,
    previous: np.ndarray | None = None,
    tol: float = 1.5e-8,
    max_iter: int = 100,
) -> np.ndarray:
    r"""VEE, :math:`\lambda_k C` (:math:`|C| = 1`): alternate
    :math:`C \propto \sum_k W_k/\lambda_k` and
    :math:`\lambda_k = \operatorname{tr}(W_k C^{-1}) / (d c_k)`."""
    n_features = scatter.shape[-1]
    if previous is None:
        volume = np.einsum("kii->k", scatter) / (n_features * counts)
        shape = np.eye(n_features)
    else:
        _, logdet = np.linalg.slogdet(previous)
        volume = np.exp(logdet / n_features)
        shape = previous[0] / volume[0]
    cov = volume[:, None, None] * shape
    current = objective(counts, scatter, cov)
    for _ in range(max_iter):
        pooled = (scatter / volume[:, None, None]).sum(axis=0)
        _, logdet = np.linalg.slogdet(pooled)
        shape = pooled / np.exp(logdet / n_features)
        shape = 0.5 * (shape + shape.T)
        volume = np.einsum("kii->k", np.linalg.solve(shape, scatter)) / (n_features * counts)
        cov = volume[:, None, None] * shape
        new = objective(counts, scatter, cov)
        done = _converged(current, new, tol)
        current = new
        if done:
            break
    return cov


def common_orientation(covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Common eigenvectors ``D`` (D, D) of covariances that share them, and each
    component's eigenvalues ``diag(D^T Sigma_k D)`` (K, D), ordered by the sum."""
    _, vectors = _eigh_desc(covariances.sum(axis=0))
    values = np.einsum("ji,kjl,li->ki", vectors, covariances, vectors)
    return vectors, values


def _mm_orientation(
    scatter: np.ndarray, inv_diag: np.ndarray, orientation: np.ndarray, shifted_scatter: np.ndarray
) -> np.ndarray:
    r"""One MM 1 plus one MM 2 step (Browne & McNicholas 2014) for the orthogonal
    :math:`D` minimizing :math:`\sum_k \operatorname{tr}(W_k D M_k^{-1} D^T)`, with
    ``inv_diag`` the diagonals of :math:`M_k^{-1}` (K, D) and ``shifted_scatter``
    :math:`W_k - \omega_k I` (:math:`\omega_k` the largest eigenvalue of
    :math:`W_k`). Each step minimizes a linear majorizer of the target over the
    orthogonal matrices (an SVD), so the target never increases."""
    # MM 1: W_k - omega_k I is negative semidefinite; gradient sum_k (W_k - w_k I) D M_k^-1.
    grad = ((shifted_scatter @ orientation) * inv_diag[:, None, :]).sum(axis=0)
    orientation = _minus_polar(grad)
    # MM 2 (in B = D^T): M_k^-1 - max(M_k^-1) I is negative semidefinite.
    shifted = inv_diag - inv_diag.max(axis=1, keepdims=True)
    grad = (shifted[:, :, None] * (orientation.T[None] @ scatter)).sum(axis=0)
    return _minus_polar(grad).T


def _minus_polar(grad: np.ndarray) -> np.ndarray:
    """``-P R^T`` from the SVD ``grad = P S R^T`` (D, D): the orthogonal matrix that
    minimizes ``tr(grad^T O)``. LAPACK's gesdd called directly (NumPy's ``svd``
    wrapper costs three times the factorization of a small matrix); NumPy's on failure
    (which raises its ``LinAlgError``)."""
    p, _, rt, info = _gesdd(grad, compute_uv=1, full_matrices=1)
    if info != 0:
        p, _, rt = np.linalg.svd(grad)
    return -p @ rt


def _project(orientation: np.ndarray, scatter: np.ndarray) -> np.ndarray:
    """Diagonals of ``D^T W_k D`` (K, D)."""
    return (orientation[None] * (scatter @ orientation)).sum(axis=1)


def _common_orientation_update(counts, scatter, previous, tol, max_iter, diagonals):
    n_features = scatter.shape[-1]
    omega = np.linalg.eigvalsh(scatter)[:, -1]
    shifted_scatter = scatter - omega[:, None, None] * np.eye(n_features)
    if previous is None:
        orientation = np.eye(n_features)
        current_diag = diagonals(np.einsum("kii->ki", scatter))
    else:
        orientation, current_diag = common_orientation(previous)

    def value(diag, projected):
        return float((counts * np.log(diag).sum(axis=1) + (projected / diag).sum(axis=1)).sum())

    current = value(current_diag, _project(orientation, scatter))
    for _ in range(max_iter):
        orientation = _mm_orientation(scatter, 1.0 / current_diag, orientation, shifted_scatter)
        projected = _project(orientation, scatter)
        current_diag = diagonals(projected)
        new = value(current_diag, projected)
        done = _converged(current, new, tol)
        current = new
        if done:
            break
    return _compose(orientation[None], current_diag)


def update_eve(
    counts: np.ndarray,
    scatter: np.ndarray,
    previous: np.ndarray | None = None,
    tol: float = 1.5e-8,
    max_iter: int = 100,
) -> np.ndarray:
    r"""EVE, :math:`\lambda D A_k D^T`: MM steps for :math:`D`, then
    :math:`A_k = \operatorname{diag}(D^T W_k D)` normalized to :math:`|A_k| = 1` and
    :math:`\lambda = \sum_k |\operatorname{diag}(D^T W_k D)|^{1/d} / \sum_k c_k`."""

    def diagonals(projected):
        g = _geomean(projected)
        return projected / g[:, None] * (g.sum() / counts.sum())

    return _common_orientation_update(counts, scatter, previous, tol, max_iter, diagonals)


def update_vve(
    counts: np.ndarray,
    scatter: np.ndarray,
    previous: np.ndarray | None = None,
    tol: float = 1.5e-8,
    max_iter: int = 100,
) -> np.ndarray:
    r"""VVE, :math:`D M_k D^T` (:math:`M_k = \lambda_k A_k`): MM steps for :math:`D`,
    then :math:`M_k = \operatorname{diag}(D^T W_k D) / c_k`."""

    def diagonals(projected):
        return projected / counts[:, None]

    return _common_orientation_update(counts, scatter, previous, tol, max_iter, diagonals)
