"""The covariance-model interface, :class:`CovarianceModel`, and scikit-learn's four
types (``full``, ``tied``, ``diag``, ``spherical``; mclust's VVV, EEE, VVI, VII).

The table from a covariance type's name to its model is :mod:`bayesgmm.core.covariance`
(import from there); mclust's other ten families are in
:mod:`bayesgmm.core.covariance_mclust`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
from scipy import linalg
from scipy.special import gammaln, multigammaln

from bayesgmm.core import families
from bayesgmm.core.kernels import (
    WhitenedFullKernel,
    WhitenedTiedKernel,
    diagonal_feature_kernel,
    quadratic_feature_kernel,
)

_LOG_2PI = np.log(2.0 * np.pi)


class CollapsedComponentError(ValueError):
    """A component's covariance is not positive definite (it collapsed).

    Attributes
    ----------
    component : int or None
        Index of the offending component (``None`` for a tied covariance).
    iteration : int or None
        EM iteration at which it happened (0 or ``None``: at initialization).
    init : int or None
        Index of the EM start (restart) in which it happened.
    """

    def __init__(self, message: str, component: int | None = None) -> None:
        super().__init__(message)
        self.component = component
        self.iteration: int | None = None
        self.init: int | None = None


def _collapsed(component: int | None, covariance_type: str) -> CollapsedComponentError:
    which = "the tied covariance" if component is None else f"component {component}"
    return CollapsedComponentError(
        f"The {covariance_type!r} covariance of {which} is not positive definite: the "
        "component collapsed onto too few (or identical) points. Increase `reg_covar`, "
        "fit with a prior (prior='default' gives a MAP fit that keeps covariances "
        "positive definite), reduce `n_components`, or rescale the data.",
        component=component,
    )


@dataclass(frozen=True)
class InnerControl:
    """Inner iterations of the iterative M-steps (VEI, VEE, VEV, EVE, VVE).

    Parameters
    ----------
    tol : float, default=sqrt(machine epsilon)
        Stop when the relative change of the M-step objective is at most ``tol``
        (mclust's ``emControl()$tol[2]``).
    max_iter : int, default=100
        At most this many inner iterations per M-step (mclust: unlimited). Warm
        starts at the previous covariances make a few enough after the first steps.
    """

    tol: float = float(np.sqrt(np.finfo(float).eps))
    max_iter: int = 100


_DEFAULT_CONTROL = InnerControl()


@dataclass(frozen=True)
class CovarianceModel(ABC):
    """Functions of one covariance structure (base class; see the subclasses).

    Parameters
    ----------
    name : str
        scikit-learn's name (``'full'``, ``'tied'``, ``'diag'``, ``'spherical'``).
    mclust_name : str
        mclust's three-letter model name.
    """

    name: str
    mclust_name: str
    #: Named dimensions of the covariance array (as in the PyMC model and its DataTree).
    dims: tuple[str, ...] = ()
    #: Whether every covariance is diagonal (features independent within a component):
    #: the missing-data E-step then needs no conditional regression.
    independent_features: ClassVar[bool] = False
    #: How the orientation of the eigen-decomposition is shared, for
    #: :meth:`decompose`: ``'identity'`` (diagonal covariances), ``'common'`` (one
    #: orientation for all components) or ``'variable'``.
    orientation_kind: ClassVar[str] = "variable"
    #: Whether a conjugate covariance prior (MAP) is supported.
    supports_prior: ClassVar[bool] = True
    #: Whether the family is closed under per-feature scaling,
    #: :math:`\Sigma_k \mapsto S \Sigma_k S` with ``S`` diagonal and positive: then a
    #: fit to rescaled (e.g. standardized) columns maps back exactly to a fit of the
    #: data. False for spheres (a sphere becomes an axis-aligned ellipsoid) and for the
    #: families that tie eigenvalues or orientations across components while letting
    #: the others vary (EVE, VVE, EEV, VEV). Every family is closed in one dimension.
    scale_equivariant: ClassVar[bool] = True

    # -- additive hooks (the mclust families) ----------------------------------
    def update_from(
        self,
        counts: np.ndarray,
        scatter: np.ndarray,
        reg_covar: float,
        dof: float | None = None,
        scale=None,
        *,
        previous: np.ndarray | None = None,
        control: InnerControl | None = None,
    ) -> np.ndarray:
        """:meth:`update`, for the iterative M-steps warm-started at the ``previous``
        covariances with the inner ``control`` (tolerance, iteration cap); the closed
        forms ignore both."""
        return self.update(counts, scatter, reg_covar, dof, scale)

    def check_prior_support(self) -> None:
        """Raise ``ValueError`` if this family has no MAP (prior) support."""
        if not self.supports_prior:
            from bayesgmm.core.covariance import COVARIANCE_MODELS  # the table imports this

            supported = [n for n, m in COVARIANCE_MODELS.items() if m.supports_prior]
            raise ValueError(
                f"covariance_type={self.name!r} has no conjugate prior (mclust has none "
                f"for VEE, EVE, VVE, EVV either): fit it by maximum likelihood "
                f"(prior=None), or use one of {supported} for a MAP fit."
            )

    def decompose(
        self, covariances: np.ndarray, n_components: int, n_features: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""Volumes, shapes and orientations, :math:`\Sigma_k = \lambda_k D_k A_k D_k^T`.

        Returns
        -------
        volumes : ndarray of shape (K,)
            :math:`\lambda_k = |\Sigma_k|^{1/d}`.
        shapes : ndarray of shape (K, D)
            Diagonals of :math:`A_k` (product one): decreasing where the family
            estimates an orientation, in feature order for the diagonal families.
        orientations : ndarray of shape (K, D, D)
            :math:`D_k` (columns are the axes); the identity for diagonal families,
            the same matrix for every component where the orientation is common.
        """
        full = self.to_full(covariances, n_components, n_features)
        if self.orientation_kind == "identity":
            values = np.diagonal(full, axis1=1, axis2=2).copy()
            vectors = np.broadcast_to(np.eye(n_features), full.shape).copy()
        elif self.orientation_kind == "common":
            common, values = families.common_orientation(full)
            vectors = np.broadcast_to(common, full.shape).copy()
        else:
            values, vectors = np.linalg.eigh(full)
            values, vectors = values[:, ::-1], vectors[:, :, ::-1]
        # The volume from the log-determinant (a Cholesky factor: accurate whatever the
        # features' units), not from eigenvalues, which rounding can make <= 0 when the
        # features' scales differ by many orders of magnitude.
        sign, log_det = np.linalg.slogdet(full)
        volumes = np.exp(np.where(sign > 0, log_det, -np.inf) / n_features)
        values = np.maximum(values, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return volumes, values / volumes[:, None], vectors

    # -- shapes and counting --------------------------------------------------
    @abstractmethod
    def shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of the covariance (and precision Cholesky) array."""

    @abstractmethod
    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Number of free covariance parameters."""

    # -- sufficient statistics ------------------------------------------------
    @abstractmethod
    def second_moment(self, X: np.ndarray, resp: np.ndarray) -> np.ndarray:
        """Weighted uncentered second moments ``sum_n r_nk x_n x_n^T`` in this type's shape.

        ``full``: ``(K, D, D)``; ``tied``: ``(D, D)`` summed over components;
        ``diag`` and ``spherical``: ``(K, D)`` (the diagonal only).
        """

    @abstractmethod
    def second_moment_from_full(self, second: np.ndarray) -> np.ndarray:
        """Project full per-component second moments ``(K, D, D)`` onto this type's
        shape (as :meth:`second_moment` returns it)."""

    @abstractmethod
    def scatter(
        self, nk: np.ndarray, sum_x: np.ndarray, sum_xx: np.ndarray, centers: np.ndarray
    ) -> np.ndarray:
        """Scatter about ``centers`` (K, D), ``sum_n r_nk (x_n - c_k)(x_n - c_k)^T``,
        from the moments, in this type's shape (summed over components for ``tied``)."""

    @abstractmethod
    def update(
        self,
        counts: np.ndarray,
        scatter: np.ndarray,
        reg_covar: float,
        dof: float | None = None,
        scale: np.ndarray | float | None = None,
    ) -> np.ndarray:
        r"""Covariance update (the mode given the means) from counts and scatter.

        Without a prior (``dof=None``) this is the maximum-likelihood update
        ``W_k / n_k``. With an inverse-Wishart(``dof``, ``scale``) prior (full, tied)
        or an inverse-gamma(``dof``/2, ``scale``/2) prior per variance (diag,
        spherical) it is the conditional posterior mode, e.g. for ``full``

        .. math:: \Sigma_k = (\Psi_0 + S_k) / (\nu_0 + d + 1 + c_k)

        where ``counts`` ``c_k`` is ``n_k`` plus one when a conjugate prior on the
        mean adds its own factor of ``|Sigma_k|^{-1/2}``. ``reg_covar`` is added to
        the diagonal afterwards.
        """

    @abstractmethod
    def prior_scale(self, dof: float, scale: np.ndarray, n_features: int):
        """The covariance prior's ``scale`` in the form this type needs.

        ``full``/``tied``: a (D, D) SPD matrix (a scalar or (D,) vector is taken as a
        diagonal) and ``dof > D - 1``; ``diag``: one scale per feature (D,) (a scalar
        is repeated); ``spherical``: a scalar. Raises ``ValueError`` otherwise.
        """

    @abstractmethod
    def default_prior_scale(self, data_covariance: np.ndarray):
        """mclust's default ``scale`` before the ``K^(-2/d)`` factor: the data
        covariance (full, tied) or the average variance (diag, spherical)."""

    def pooled_prior_scale(self, covariance: np.ndarray):
        """A (D, D) covariance in the form this type's prior ``scale`` takes: the
        matrix (full, tied and the oriented families), its diagonal (diag and the
        diagonal families) or its average variance (spherical). Per-feature forms
        rescale with the features (the pooled prior, :meth:`GMMPrior.pooled
        <bayesgmm.priors.GMMPrior.pooled>`)."""
        return np.array(covariance, dtype=float)

    @abstractmethod
    def log_prior(self, covariances: np.ndarray, dof: float, scale) -> float:
        """Log density of the covariances under the inverse-Wishart (full, tied) or
        inverse-gamma per variance (diag, spherical) prior, normalizing constants
        included."""

    # -- factorizations -------------------------------------------------------
    @abstractmethod
    def precision_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        """Precision Cholesky factors; raises :class:`CollapsedComponentError`."""

    @abstractmethod
    def precision_cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """Precision Cholesky factors from precision matrices (user-given init)."""

    @abstractmethod
    def precisions(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        """Precision matrices ``U @ U.T`` in this type's shape."""

    @abstractmethod
    def covariances_from_precision_cholesky(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        """Covariances ``inv(U @ U.T)`` computed with triangular solves."""

    # -- the chunk kernel -------------------------------------------------------
    @abstractmethod
    def chunk_kernel(self, means: np.ndarray, precisions_cholesky: np.ndarray, dtype):
        """The per-chunk E- and M-step kernel of these parameters (see
        :mod:`bayesgmm.core.kernels`): ``kernel.log_gaussian(X)`` gives the log densities
        (n, K) and a cache, ``kernel.moments(X, resp, cache)`` the chunk's
        ``(sum_x, sum_xx)`` in this type's shape, in float64. Products run in ``dtype``.
        """

    @abstractmethod
    def log_det_precision_cholesky(self, precisions_cholesky: np.ndarray, n_features: int):
        """``sum(log(diag(U)))`` per component, i.e. ``-0.5 * log det(Sigma_k)``."""

    @abstractmethod
    def squared_mahalanobis(
        self, X: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray
    ) -> np.ndarray:
        """``(x_n - mu_k)^T Sigma_k^{-1} (x_n - mu_k)``, shape ``(N, K)``."""

    @abstractmethod
    def free_parameters(self, n_components: int, n_features: int) -> list[tuple[int, ...]]:
        """The free covariance parameters, as indices into this type's covariance array.

        Every covariance type here is linear in its free parameters: the entries at
        these indices (upper triangle with the diagonal for full and tied; every
        entry for diag and spherical). Their number is :meth:`n_parameters`.
        """

    def linear_basis(self, n_components: int, n_features: int) -> np.ndarray:
        r"""Basis matrices ``B`` of shape ``(J, K, D, D)`` with
        :math:`\Sigma_k = \sum_j 	heta_j B_{jk}`, ``theta`` the free parameters in
        the order of :meth:`free_parameters`."""
        index = self.free_parameters(n_components, n_features)
        basis = np.empty((len(index), n_components, n_features, n_features))
        shape = self.shape(n_components, n_features)
        for j, where in enumerate(index):
            unit = np.zeros(shape)
            unit[where] = 1.0
            if self.dims[-2:] == ("feature", "feature_bis") and where[-1] != where[-2]:
                unit[(*where[:-2], where[-1], where[-2])] = 1.0  # symmetric partner
            basis[j] = self.to_full(unit, n_components, n_features)
        return basis

    @abstractmethod
    def to_full(self, covariances: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
        """Expand covariances to full matrices, shape ``(K, D, D)``."""

    @abstractmethod
    def from_full(self, full: np.ndarray) -> np.ndarray:
        """Project full covariances ``(K, D, D)`` onto this type (its nearest form)."""

    @abstractmethod
    def sample(
        self, rng, means: np.ndarray, covariances: np.ndarray, counts: np.ndarray
    ) -> list[np.ndarray]:
        """``counts[k]`` draws from component ``k``, one array per component.

        Uses the random numbers in the order scikit-learn's ``sample`` does.
        """

    # -- derived, shared by every type ----------------------------------------
    def log_gaussian(
        self, X: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray
    ) -> np.ndarray:
        r"""Log densities of every point under every component, shape ``(N, K)``.

        .. math:: \log N(x_n \mid \mu_k, \Sigma_k) = -\tfrac12 \left(D \log 2\pi
                  + (x_n-\mu_k)^T \Sigma_k^{-1} (x_n-\mu_k)\right) - \tfrac12 \log|\Sigma_k|
        """
        n_features = X.shape[1]
        log_det = self.log_det_precision_cholesky(precisions_cholesky, n_features)
        maha = self.squared_mahalanobis(X, means, precisions_cholesky)
        return -0.5 * (n_features * _LOG_2PI + maha) + log_det

    def check_shape(self, array: np.ndarray, n_components: int, n_features: int, name: str):
        """Raise ``ValueError`` naming ``name`` if ``array`` has the wrong shape."""
        expected = self.shape(n_components, n_features)
        if np.shape(array) != expected:
            raise ValueError(
                f"`{name}` for covariance_type={self.name!r} must have shape {expected}, "
                f"got {np.shape(array)}."
            )


def _lapack_precision_cholesky(covariances: np.ndarray) -> np.ndarray | int:
    """``inv(chol(S_k)).T`` for each ``S_k`` of ``covariances`` (K, D, D): upper
    triangular ``U_k`` with ``U_k U_k^T = S_k^{-1}``; or the index of the first matrix
    that is not finite and positive definite.

    LAPACK's Cholesky (potrf) and triangular inverse (trtri) per component, called
    directly: scipy's batched cholesky / solve_triangular loop over the matrices in
    Python with input checks on each, and NumPy's batched cholesky has its own error
    handling to enter, which dominated the run time at small D (170 us vs 12 us for 6
    components in 2-D). The inverse is exactly triangular.
    """
    covariances = np.asarray(covariances)
    finite = bool(np.isfinite(covariances).all())
    potrf, trtri = linalg.lapack.get_lapack_funcs(("potrf", "trtri"), (covariances,))
    out = np.empty_like(covariances)
    for k, cov in enumerate(covariances):
        chol, info = potrf(cov, lower=1, clean=1)
        if info == 0:
            inv, info = trtri(chol, lower=1)
        if info != 0 or not (finite or np.isfinite(cov).all()):
            return k
        out[k] = inv.T
    return out


def _cov_from_prec_chol(prec_chol: np.ndarray) -> np.ndarray:
    """``inv(U @ U.T) = L^T L`` with ``L = inv(U)`` (a triangular solve)."""
    # U is upper triangular when it came from a covariance and lower triangular when
    # it came from a user-given precision matrix (as in scikit-learn).
    lower = not np.any(np.triu(prec_chol, 1))
    inv_u = linalg.solve_triangular(prec_chol, np.eye(prec_chol.shape[0]), lower=lower)
    return inv_u.T @ inv_u


@lru_cache(maxsize=256)
def _multigammaln(a: float, d: int) -> float:
    """``scipy.special.multigammaln`` (its checks and list building are most of its
    cost at small D), cached: the prior's ``a = dof / 2`` and D do not change in a fit."""
    return float(multigammaln(a, d))


def _cholesky_lower(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor by LAPACK's potrf, raising what ``scipy.linalg.cholesky``
    raises (ValueError for inf/NaN, LinAlgError if not positive definite), without its
    wrappers' per-call cost."""
    if not np.isfinite(matrix).all():
        raise ValueError("array must not contain infs or NaNs")
    (potrf,) = linalg.lapack.get_lapack_funcs(("potrf",), (matrix,))
    chol, info = potrf(matrix, lower=1, clean=1)
    if info > 0:
        raise linalg.LinAlgError(f"{info}-th leading minor of the array is not positive definite")
    if info < 0:
        raise ValueError(f"LAPACK reported an illegal value in {-info}-th argument")
    return chol


def _log_invwishart(covariances: np.ndarray, dof: float, scale: np.ndarray) -> float:
    r"""Log inverse-Wishart density, as ``scipy.stats.invwishart(dof, scale).logpdf``,
    of one covariance (D, D) or summed over a stack (K, D, D).

    .. math:: \tfrac{\nu}{2}\log|\Psi| - \tfrac{\nu d}{2}\log 2 - \log\Gamma_d(\tfrac{\nu}{2})
              - \tfrac{\nu+d+1}{2}\log|\Sigma| - \tfrac12 \operatorname{tr}(\Psi\Sigma^{-1})

    LAPACK's potrf and potrs are called directly (the MAP-EM objective evaluates this
    every iteration; at small D scipy's wrappers cost more than the arithmetic); the
    terms are formed in the same order as before, so the values are the same.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import invwishart
    >>> cov, scale = np.array([[2.0, 0.3], [0.3, 1.0]]), np.eye(2)
    >>> bool(np.isclose(_log_invwishart(cov, 5.0, scale), invwishart(5.0, scale).logpdf(cov)))
    True
    """
    covariances = np.asarray(covariances, dtype=float)
    stack = covariances[None] if covariances.ndim == 2 else covariances
    scale = np.asarray(scale, dtype=float)
    d = stack.shape[-1]
    log_det_scale = 2.0 * np.sum(np.log(np.diag(_cholesky_lower(scale))))
    head = 0.5 * dof * log_det_scale - 0.5 * dof * d * np.log(2.0) - _multigammaln(0.5 * dof, d)
    (potrs,) = linalg.lapack.get_lapack_funcs(("potrs",), (stack, scale))
    total = 0.0
    for cov in stack:
        chol = _cholesky_lower(cov)
        log_det_cov = 2.0 * np.sum(np.log(np.diag(chol)))
        solved, info = potrs(chol, scale, lower=1)
        if info != 0:
            raise ValueError(f"LAPACK reported an illegal value in {-info}-th argument")
        total += head - 0.5 * (dof + d + 1.0) * log_det_cov - 0.5 * np.trace(solved)
    return float(total)


def _log_invgamma(x: np.ndarray, shape: float, scale) -> np.ndarray:
    """Log inverse-gamma density, as ``scipy.stats.invgamma(shape, scale=scale).logpdf``."""
    return shape * np.log(scale) - gammaln(shape) - (shape + 1.0) * np.log(x) - scale / x


def _bad_prior_scale(scale, n_features: int, covariance_type: str) -> ValueError:
    return ValueError(
        f"A covariance prior `scale` of shape {np.shape(scale)} does not fit "
        f"covariance_type={covariance_type!r} with {n_features} features."
    )


def _inverse_wishart_scale(dof: float, scale, n_features: int, covariance_type: str):
    if dof <= n_features - 1:
        raise ValueError(
            f"An inverse-Wishart prior in {n_features} dimensions needs dof > "
            f"{n_features - 1}; got dof={dof}."
        )
    scale = np.asarray(scale, dtype=float)
    if scale.ndim < 2 and scale.shape in ((), (n_features,)):
        return np.diag(np.broadcast_to(scale, (n_features,)))
    if scale.shape == (n_features, n_features):
        return scale
    raise _bad_prior_scale(scale, n_features, covariance_type)


def _first_nonpositive(variances: np.ndarray) -> int | None:
    """Index of the first component with a non-finite or non-positive variance."""
    bad = ~(np.isfinite(variances) & (variances > 0.0))
    rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
    return int(rows[0]) if rows.size else None


@dataclass(frozen=True)
class FullCovariance(CovarianceModel):
    """Each component has its own unrestricted covariance (mclust ``VVV``)."""

    def shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def n_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def free_parameters(self, n_components, n_features):
        rows, cols = np.triu_indices(n_features)
        return [
            (k, int(a), int(b))
            for k in range(n_components)
            for a, b in zip(rows, cols, strict=True)
        ]

    def second_moment(self, X, resp):
        return np.stack([(X * resp[:, k : k + 1]).T @ X for k in range(resp.shape[1])])

    def second_moment_from_full(self, second):
        return second

    def scatter(self, nk, sum_x, sum_xx, centers):
        cross = sum_x[:, :, None] * centers[:, None, :]
        outer = centers[:, :, None] * centers[:, None, :]
        return sum_xx - cross - cross.transpose(0, 2, 1) + nk[:, None, None] * outer

    def update(self, counts, scatter, reg_covar, dof=None, scale=None):
        n_features = scatter.shape[-1]
        if dof is None:
            cov = scatter / counts[:, None, None]
        else:
            cov = (scale + scatter) / (dof + n_features + 1.0 + counts)[:, None, None]
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        if reg_covar:
            cov[:, np.arange(n_features), np.arange(n_features)] += reg_covar
        return cov

    def log_prior(self, covariances, dof, scale):
        return _log_invwishart(covariances, dof, scale)

    def precision_cholesky(self, covariances):
        out = _lapack_precision_cholesky(covariances)
        if isinstance(out, int):
            raise _collapsed(out, self.name)
        return out

    def precision_cholesky_from_precisions(self, precisions):
        out = np.empty_like(precisions)
        for k, prec in enumerate(precisions):
            out[k] = linalg.cholesky(prec, lower=True)
        return out

    def precisions(self, precisions_cholesky):
        return precisions_cholesky @ np.swapaxes(precisions_cholesky, 1, 2)

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return np.stack([_cov_from_prec_chol(u) for u in precisions_cholesky])

    def chunk_kernel(self, means, precisions_cholesky, dtype):
        n_components, n_features = means.shape
        log_det = self.log_det_precision_cholesky(precisions_cholesky, n_features)
        # The feature map while it is narrower than all components' whitened coordinates.
        if n_features + n_features * (n_features + 1) // 2 <= n_components * n_features:
            return quadratic_feature_kernel(means, precisions_cholesky, log_det, False, dtype)
        return WhitenedFullKernel(means, precisions_cholesky, log_det, dtype)

    def log_det_precision_cholesky(self, precisions_cholesky, n_features):
        diag = precisions_cholesky.diagonal(axis1=1, axis2=2)
        return np.log(diag).sum(axis=1)

    def squared_mahalanobis(self, X, means, precisions_cholesky):
        out = np.empty((X.shape[0], means.shape[0]))
        for k, (mu, u) in enumerate(zip(means, precisions_cholesky, strict=True)):
            y = X @ u - mu @ u
            out[:, k] = np.einsum("ij,ij->i", y, y)
        return out

    def from_full(self, full):
        return np.array(full, dtype=float)

    def prior_scale(self, dof, scale, n_features):
        return _inverse_wishart_scale(dof, scale, n_features, self.name)

    def default_prior_scale(self, data_covariance):
        return np.array(data_covariance, dtype=float)

    def to_full(self, covariances, n_components, n_features):
        return np.asarray(covariances, dtype=float).copy()

    def sample(self, rng, means, covariances, counts):
        return [
            rng.multivariate_normal(mu, cov, int(c))
            for mu, cov, c in zip(means, covariances, counts, strict=True)
        ]


@dataclass(frozen=True)
class TiedCovariance(CovarianceModel):
    """All components share one unrestricted covariance (mclust ``EEE``)."""

    orientation_kind: ClassVar[str] = "common"

    def shape(self, n_components, n_features):
        return (n_features, n_features)

    def n_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def free_parameters(self, n_components, n_features):
        rows, cols = np.triu_indices(n_features)
        return [(int(a), int(b)) for a, b in zip(rows, cols, strict=True)]

    def second_moment(self, X, resp):
        return (X * resp.sum(axis=1, keepdims=True)).T @ X

    def second_moment_from_full(self, second):
        return second.sum(axis=0)

    def scatter(self, nk, sum_x, sum_xx, centers):
        cross = sum_x.T @ centers
        return sum_xx - cross - cross.T + (centers.T * nk) @ centers

    def update(self, counts, scatter, reg_covar, dof=None, scale=None):
        n_features = scatter.shape[-1]
        if dof is None:
            cov = scatter / counts.sum()
        else:
            cov = (scale + scatter) / (dof + n_features + 1.0 + counts.sum())
        cov = 0.5 * (cov + cov.T)
        if reg_covar:
            cov.flat[:: n_features + 1] += reg_covar
        return cov

    def log_prior(self, covariances, dof, scale):
        return _log_invwishart(covariances, dof, scale)

    def precision_cholesky(self, covariances):
        out = _lapack_precision_cholesky(np.asarray(covariances)[None])
        if isinstance(out, int):
            raise _collapsed(None, self.name)
        return out[0]

    def precision_cholesky_from_precisions(self, precisions):
        return linalg.cholesky(precisions, lower=True)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky @ precisions_cholesky.T

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return _cov_from_prec_chol(precisions_cholesky)

    def chunk_kernel(self, means, precisions_cholesky, dtype):
        n_components, n_features = means.shape
        log_det = np.full(n_components, self.log_det_precision_cholesky(precisions_cholesky, 0))
        if n_features + n_features * (n_features + 1) // 2 <= n_components * n_features:
            return quadratic_feature_kernel(means, precisions_cholesky, log_det, True, dtype)
        return WhitenedTiedKernel(means, precisions_cholesky, log_det, dtype)

    def log_det_precision_cholesky(self, precisions_cholesky, n_features):
        return np.log(precisions_cholesky.diagonal()).sum()

    def squared_mahalanobis(self, X, means, precisions_cholesky):
        y = X @ precisions_cholesky
        mu = means @ precisions_cholesky
        out = np.empty((X.shape[0], means.shape[0]))
        for k in range(means.shape[0]):
            diff = y - mu[k]
            out[:, k] = np.einsum("ij,ij->i", diff, diff)
        return out

    def from_full(self, full):
        return np.mean(full, axis=0)

    def prior_scale(self, dof, scale, n_features):
        return _inverse_wishart_scale(dof, scale, n_features, self.name)

    def default_prior_scale(self, data_covariance):
        return np.array(data_covariance, dtype=float)

    def to_full(self, covariances, n_components, n_features):
        return np.repeat(np.asarray(covariances, dtype=float)[None], n_components, axis=0)

    def sample(self, rng, means, covariances, counts):
        return [
            rng.multivariate_normal(mu, covariances, int(c))
            for mu, c in zip(means, counts, strict=True)
        ]


@dataclass(frozen=True)
class DiagCovariance(CovarianceModel):
    """Each component has its own diagonal covariance (mclust ``VVI``)."""

    independent_features: ClassVar[bool] = True
    orientation_kind: ClassVar[str] = "identity"

    def shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_parameters(self, n_components, n_features):
        return n_components * n_features

    def free_parameters(self, n_components, n_features):
        return [(k, a) for k in range(n_components) for a in range(n_features)]

    def second_moment(self, X, resp):
        return resp.T @ (X * X)

    def second_moment_from_full(self, second):
        return np.diagonal(second, axis1=1, axis2=2).copy()

    def scatter(self, nk, sum_x, sum_xx, centers):
        return sum_xx - 2.0 * sum_x * centers + nk[:, None] * centers**2

    def update(self, counts, scatter, reg_covar, dof=None, scale=None):
        offset, psi = (0.0, 0.0) if dof is None else (dof + 2.0, scale)
        return (psi + scatter) / (offset + counts)[:, None] + reg_covar

    def log_prior(self, covariances, dof, scale):
        return float(np.sum(_log_invgamma(covariances, dof / 2.0, np.asarray(scale) / 2.0)))

    def precision_cholesky(self, covariances):
        bad = _first_nonpositive(covariances)
        if bad is not None:
            raise _collapsed(bad, self.name)
        return 1.0 / np.sqrt(covariances)

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky**2

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return 1.0 / precisions_cholesky**2

    def chunk_kernel(self, means, precisions_cholesky, dtype):
        # Spherical inherits this: its (K,) factors broadcast over the features.
        log_det = self.log_det_precision_cholesky(precisions_cholesky, means.shape[1])
        return diagonal_feature_kernel(means, precisions_cholesky, log_det, dtype)

    def log_det_precision_cholesky(self, precisions_cholesky, n_features):
        return np.log(precisions_cholesky).sum(axis=1)

    def squared_mahalanobis(self, X, means, precisions_cholesky):
        prec = precisions_cholesky**2
        return np.sum(means**2 * prec, axis=1) - 2.0 * (X @ (means * prec).T) + (X**2) @ prec.T

    def from_full(self, full):
        return np.diagonal(full, axis1=1, axis2=2).copy()

    def prior_scale(self, dof, scale, n_features):
        if np.ndim(scale) == 0 or np.shape(scale) == (n_features,):
            return np.broadcast_to(np.asarray(scale, dtype=float), (n_features,))
        raise _bad_prior_scale(scale, n_features, self.name)

    def default_prior_scale(self, data_covariance):
        return float(np.trace(data_covariance)) / data_covariance.shape[0]

    def pooled_prior_scale(self, covariance):
        return np.diagonal(covariance).copy()

    def to_full(self, covariances, n_components, n_features):
        return np.stack([np.diag(c) for c in np.asarray(covariances, dtype=float)])

    def sample(self, rng, means, covariances, counts):
        scales = np.sqrt(covariances)
        return [
            mu + rng.standard_normal(size=(int(c), means.shape[1])) * scale
            for mu, scale, c in zip(means, scales, counts, strict=True)
        ]


@dataclass(frozen=True)
class SphericalCovariance(DiagCovariance):
    """Each component has its own single variance (mclust ``VII``).

    Shares the diagonal type's element-wise functions; a variance broadcasts over
    the features.
    """

    scale_equivariant: ClassVar[bool] = False

    def shape(self, n_components, n_features):
        return (n_components,)

    def n_parameters(self, n_components, n_features):
        return n_components

    def free_parameters(self, n_components, n_features):
        return [(k,) for k in range(n_components)]

    def update(self, counts, scatter, reg_covar, dof=None, scale=None):
        n_features = scatter.shape[-1]
        offset, psi = (0.0, 0.0) if dof is None else (dof + 2.0, scale)
        return (psi + scatter.sum(axis=1)) / (offset + n_features * counts) + reg_covar

    def log_det_precision_cholesky(self, precisions_cholesky, n_features):
        return n_features * np.log(precisions_cholesky)

    def squared_mahalanobis(self, X, means, precisions_cholesky):
        prec = precisions_cholesky**2
        return (
            np.sum(means**2, axis=1) * prec
            - 2.0 * (X @ means.T) * prec
            + np.outer(np.sum(X**2, axis=1), prec)
        )

    def from_full(self, full):
        return np.diagonal(full, axis1=1, axis2=2).mean(axis=1)

    def prior_scale(self, dof, scale, n_features):
        if np.ndim(scale) == 0:
            return float(scale)
        raise _bad_prior_scale(scale, n_features, self.name)

    def pooled_prior_scale(self, covariance):
        return float(np.trace(covariance)) / covariance.shape[0]

    def to_full(self, covariances, n_components, n_features):
        covariances = np.asarray(covariances, dtype=float)
        return covariances[:, None, None] * np.eye(n_features)[None]
