"""mclust's ten eigen-decomposed families beyond scikit-learn's four (EII, EEI, VEI, EVI
stored as variances like ``diag``; VEE, EVE, VVE, EEV, VEV, EVV stored as full matrices),
as :class:`~bayesgmm.core.covariance_types.CovarianceModel` subclasses. Their M-steps are
:mod:`bayesgmm.core.families`. The table from names to models is
:mod:`bayesgmm.core.covariance` (import from there).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bayesgmm.core import families
from bayesgmm.core.covariance_types import (
    _DEFAULT_CONTROL,
    DiagCovariance,
    FullCovariance,
    InnerControl,
    _log_invgamma,
)


# -- mclust's other ten families ------------------------------------------------------
def _no_information(name: str) -> ValueError:
    return ValueError(
        f"The observed information is not available for covariance_type={name!r}: its "
        "covariances are not linear in their parameters (volume, shape, orientation). "
        "Supported: 'full', 'tied', 'diag', 'spherical' (mclust VVV, EEE, VVI, VII); "
        "use the bootstrap for standard errors of the other families."
    )


def _add_prior(counts, scatter, dof, scale, pseudo_count, shared):
    """The covariance prior as pseudo-data: ``pseudo_count`` observations with scatter
    ``scale`` per component, or spread over the components when the covariance is
    shared by all of them (one prior factor in all)."""
    if dof is None:
        return counts, scatter
    share = 1.0 / counts.shape[0] if shared else 1.0
    return counts + share * pseudo_count, scatter + share * np.asarray(scale)


class _Family:
    """What every eigen-decomposed mclust family shares (a mixin before its storage
    class, ``DiagCovariance`` or ``FullCovariance``): mclust's parameter count, the
    M-step through :meth:`update_from`, and no observed information (the families are
    not linear in their parameters). Each family supplies :meth:`_n_params` and
    :meth:`_solve`.
    """

    @abstractmethod
    def _n_params(self, k: int, d: int) -> int:
        """mclust's ``nVarParams`` for ``k`` components in ``d`` dimensions."""

    @abstractmethod
    def _solve(self, counts, scatter, previous, control):
        """The family's M-step from the counts and the (prior-augmented, regularized)
        scatter; ``previous`` covariances warm-start the iterative ones."""

    def n_parameters(self, n_components, n_features):
        return int(self._n_params(n_components, n_features))

    def free_parameters(self, n_components, n_features):
        raise _no_information(self.name)

    def linear_basis(self, n_components, n_features):
        raise _no_information(self.name)

    def update(self, counts, scatter, reg_covar, dof=None, scale=None):
        return self.update_from(counts, scatter, reg_covar, dof, scale)

    def prior_scale(self, dof, scale, n_features):
        self.check_prior_support()  # a clear error for the families without a prior
        return super().prior_scale(dof, scale, n_features)


@dataclass(frozen=True)
class _DiagonalFamily(_Family, DiagCovariance):
    """A diagonal mclust family, stored as variances ``(K, D)`` like ``diag``.

    The M-step minimizes :func:`bayesgmm.core.families.objective` over the family,
    with ``reg_covar`` times the counts added to the scatter diagonal (for the
    unconstrained families that is the same as adding ``reg_covar`` to the variances;
    here it keeps the result inside the family). With an inverse-gamma(``dof``/2,
    ``scale``/2) prior per variance the prior enters as ``dof + 2`` pseudo-observations
    with scatter ``scale`` (once in all for EII and EEI, whose covariance is shared).
    """

    shared: ClassVar[bool] = False

    def update_from(
        self, counts, scatter, reg_covar, dof=None, scale=None, *, previous=None, control=None
    ):
        counts, scatter = _add_prior(
            counts,
            scatter,
            dof,
            None if dof is None else scale,
            None if dof is None else dof + 2.0,
            self.shared,
        )
        if reg_covar:
            scatter = scatter + reg_covar * counts[:, None]
        return self._solve(counts, scatter, previous, control or _DEFAULT_CONTROL)

    def log_prior(self, covariances, dof, scale):
        variances = covariances[:1] if self.shared else covariances
        return float(np.sum(_log_invgamma(variances, dof / 2.0, np.asarray(scale) / 2.0)))

    def from_full(self, full):
        diag = np.diagonal(full, axis1=1, axis2=2).copy()
        return self._solve(np.ones(diag.shape[0]), diag, None, InnerControl())


@dataclass(frozen=True)
class EIICovariance(_DiagonalFamily):
    """mclust ``EII``: one variance for all features and components, ``lambda I``."""

    scale_equivariant: ClassVar[bool] = False
    shared: ClassVar[bool] = True

    def _n_params(self, k, d):
        return 1

    def _solve(self, counts, scatter, previous, control):
        return families.update_eii(counts, scatter)


@dataclass(frozen=True)
class EEICovariance(_DiagonalFamily):
    """mclust ``EEI``: one diagonal covariance shared by all components, ``lambda A``."""

    shared: ClassVar[bool] = True

    def _n_params(self, k, d):
        return d

    def _solve(self, counts, scatter, previous, control):
        return families.update_eei(counts, scatter)


@dataclass(frozen=True)
class VEICovariance(_DiagonalFamily):
    """mclust ``VEI``: ``lambda_k A``, volumes vary, one diagonal shape (alternating)."""

    def _n_params(self, k, d):
        return k + (d - 1)

    def _solve(self, counts, scatter, previous, control):
        return families.update_vei(counts, scatter, previous, control.tol, control.max_iter)


@dataclass(frozen=True)
class EVICovariance(_DiagonalFamily):
    """mclust ``EVI``: ``lambda A_k``, one volume, diagonal shapes vary."""

    def _n_params(self, k, d):
        return 1 + k * (d - 1)

    def _solve(self, counts, scatter, previous, control):
        return families.update_evi(counts, scatter)


@dataclass(frozen=True)
class _OrientedFamily(_Family, FullCovariance):
    """An mclust family with an orientation, stored as full matrices ``(K, D, D)``.

    The M-step minimizes :func:`bayesgmm.core.families.objective` over the family,
    with ``reg_covar`` times the counts added to the scatter diagonal (keeps the
    result inside the family). With an inverse-Wishart(``dof``, ``scale``) prior on
    each component's covariance the prior enters as ``dof + d + 1``
    pseudo-observations with scatter ``scale``.
    """

    def update_from(
        self, counts, scatter, reg_covar, dof=None, scale=None, *, previous=None, control=None
    ):
        n_features = scatter.shape[-1]
        counts, scatter = _add_prior(
            counts,
            scatter,
            dof,
            None if dof is None else scale,
            None if dof is None else dof + n_features + 1.0,
            False,
        )
        scatter = 0.5 * (scatter + scatter.transpose(0, 2, 1))
        if reg_covar:
            scatter = scatter + reg_covar * counts[:, None, None] * np.eye(n_features)
        cov = self._solve(counts, scatter, previous, control or _DEFAULT_CONTROL)
        return 0.5 * (cov + cov.transpose(0, 2, 1))

    def from_full(self, full):
        full = np.asarray(full, dtype=float)
        return self._solve(np.ones(full.shape[0]), full, None, InnerControl())


def _family_update(function_name: str, iterative: bool):
    def solve(self, counts, scatter, previous, control):
        function = getattr(families, function_name)
        if iterative:
            return function(counts, scatter, previous, control.tol, control.max_iter)
        return function(counts, scatter)

    return solve


@dataclass(frozen=True)
class VEECovariance(_OrientedFamily):
    """mclust ``VEE``: ``lambda_k C``, one shape and orientation (alternating)."""

    orientation_kind: ClassVar[str] = "common"
    supports_prior: ClassVar[bool] = False
    _solve = _family_update("update_vee", True)

    def _n_params(self, k, d):
        return k + (d - 1) + d * (d - 1) // 2


@dataclass(frozen=True)
class EVECovariance(_OrientedFamily):
    """mclust ``EVE``: ``lambda D A_k D^T``, one volume and orientation (MM)."""

    scale_equivariant: ClassVar[bool] = False

    orientation_kind: ClassVar[str] = "common"
    supports_prior: ClassVar[bool] = False
    _solve = _family_update("update_eve", True)

    def _n_params(self, k, d):
        return 1 + k * (d - 1) + d * (d - 1) // 2


@dataclass(frozen=True)
class VVECovariance(_OrientedFamily):
    """mclust ``VVE``: ``lambda_k D A_k D^T``, one orientation (MM)."""

    scale_equivariant: ClassVar[bool] = False

    orientation_kind: ClassVar[str] = "common"
    supports_prior: ClassVar[bool] = False
    _solve = _family_update("update_vve", True)

    def _n_params(self, k, d):
        return k + k * (d - 1) + d * (d - 1) // 2


@dataclass(frozen=True)
class EEVCovariance(_OrientedFamily):
    """mclust ``EEV``: ``lambda D_k A D_k^T``, one volume and shape (closed form)."""

    scale_equivariant: ClassVar[bool] = False
    _solve = _family_update("update_eev", False)

    def _n_params(self, k, d):
        return 1 + (d - 1) + k * d * (d - 1) // 2


@dataclass(frozen=True)
class VEVCovariance(_OrientedFamily):
    """mclust ``VEV``: ``lambda_k D_k A D_k^T``, one shape (alternating)."""

    scale_equivariant: ClassVar[bool] = False
    _solve = _family_update("update_vev", True)

    def _n_params(self, k, d):
        return k + (d - 1) + k * d * (d - 1) // 2


@dataclass(frozen=True)
class EVVCovariance(_OrientedFamily):
    """mclust ``EVV``: ``lambda C_k``, one volume (closed form)."""

    supports_prior: ClassVar[bool] = False
    _solve = _family_update("update_evv", False)

    def _n_params(self, k, d):
        return 1 - k + k * d * (d + 1) // 2
