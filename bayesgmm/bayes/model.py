r"""The Gaussian mixture as a PyMC model, with the component labels marginalized out.

:func:`build_model` turns data and a :class:`~bayesgmm.priors.GMMPrior` into a
:class:`pymc.Model` whose posterior mode is the MAP-EM fit of
:class:`~bayesgmm.GaussianMixture` with the same prior, and whose ``logp(jacobian=False)``
equals the NumPy MAP objective (log-likelihood + log-prior, every constant included).

The PyTensor counterparts of the covariance types live in one table,
:data:`_SYMBOLIC_COVARIANCES`, the symbolic twin of
:data:`bayesgmm.core.covariance.COVARIANCE_MODELS`.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.distributions.dist_math import multigammaln
from pymc.distributions.transforms import CholeskyCovTransform, ZeroSumTransform
from scipy import stats

from bayesgmm.core.covariance import COVARIANCE_TYPES, get_covariance_model
from bayesgmm.core.missing import has_missing, missing_patterns
from bayesgmm.priors import (
    PRIOR_NAMES,
    CovariancePrior,
    GMMPrior,
    NormalMeanPrior,
    resolve_prior,
)

__all__ = [
    "build_model",
    "check_posterior_type",
    "initial_values",
    "posterior_covariance_types",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _hyper(name: str, value):
    """A prior hyperparameter as a data container (``pm.Data`` named ``prior_<name>``), not
    a constant: the compiled logp reads it, so a model of the same structure with other
    hyperparameters reuses the compiled functions (:mod:`bayesgmm.bayes._compiled`)."""
    return pm.Data(f"prior_{name}", np.asarray(value, dtype=np.float64))


# --------------------------------------------------------------------------------------
# Distributions PyMC does not have: inverse-Wishart and a flat density on SPD matrices
# --------------------------------------------------------------------------------------


def _log_det_chol(chol):
    """``log|A|`` from the lower Cholesky factor of ``A`` (batched)."""
    return 2.0 * pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def _inverse_wishart_logp(value, dof, scale_chol):
    r"""Log inverse-Wishart density, Cholesky form (no explicit inverse).

    .. math:: \tfrac{\nu}{2}\log|\Psi| - \tfrac{\nu d}{2}\log 2 - \log\Gamma_d(\tfrac{\nu}{2})
              - \tfrac{\nu+d+1}{2}\log|\Sigma| - \tfrac12 \operatorname{tr}(\Psi\Sigma^{-1})

    with :math:`\operatorname{tr}(\Psi\Sigma^{-1}) = \|L_\Sigma^{-1} L_\Psi\|_F^2`.
    """
    d = value.shape[-1]
    d_float = pt.cast(d, value.dtype)
    chol = pt.linalg.cholesky(value, lower=True)
    solved = pt.linalg.solve_triangular(
        chol, pt.broadcast_to(scale_chol, value.shape), lower=True, b_ndim=2
    )
    trace = pt.sum(solved**2, axis=(-2, -1))
    return (
        0.5 * dof * _log_det_chol(scale_chol)
        - 0.5 * dof * d_float * np.log(2.0)
        - multigammaln(0.5 * dof, d)
        - 0.5 * (dof + d_float + 1.0) * _log_det_chol(chol)
        - 0.5 * trace
    )


def _inverse_wishart_random(dof, scale_chol, rng=None, size=None):
    """Draws from InvWishart(dof, scale_chol @ scale_chol.T) (for predictive sampling)."""
    d = scale_chol.shape[-1]
    if size is None:
        size = np.broadcast_shapes(np.shape(dof), scale_chol.shape[:-2])
    dof = np.broadcast_to(dof, size)
    scale_chol = np.broadcast_to(scale_chol, (*size, d, d))
    out = np.empty((*size, d, d))
    for idx in np.ndindex(*size):
        scale = scale_chol[idx] @ scale_chol[idx].T
        draw = stats.invwishart.rvs(df=float(dof[idx]), scale=scale, random_state=rng)
        out[idx] = np.reshape(draw, (d, d))
    return out


def _inverse_wishart_mode(rv, size, dof, scale_chol):
    """The mode ``Psi / (nu + d + 1)``: SPD, so a valid start."""
    d = pt.cast(scale_chol.shape[-1], scale_chol.dtype)
    mode = scale_chol @ scale_chol.mT / (dof + d + 1.0)
    return pt.broadcast_to(mode, rv.shape)


def _flat_spd_logp(value, reference):
    """The flat (improper) density on SPD matrices: log density 0."""
    return pt.zeros(value.shape[:-2], dtype=value.dtype)


def _flat_spd_support_point(rv, size, reference):
    return pt.broadcast_to(reference, rv.shape)


def _spd_rv(name: str, prior: CovariancePrior | None, covariance_type: str, reference, dims):
    """An SPD matrix RV on :class:`CholeskyCovTransform`: InvWishart or flat."""
    n_features = reference.shape[-1]
    transform = CholeskyCovTransform(n_features)
    if prior is None:
        return pm.CustomDist(
            name,
            reference,
            logp=_flat_spd_logp,
            support_point=_flat_spd_support_point,
            signature="(d,d)->(d,d)",
            default_transform=transform,
            dims=dims,
        )
    table = get_covariance_model(covariance_type)
    scale = table.prior_scale(prior.dof, prior.scale, n_features)
    return pm.CustomDist(
        name,
        _hyper("covariances_dof", prior.dof),
        _hyper("covariances_scale_chol", np.linalg.cholesky(scale)),
        logp=_inverse_wishart_logp,
        random=_inverse_wishart_random,
        support_point=_inverse_wishart_mode,
        signature="(),(d,d)->(d,d)",
        default_transform=transform,
        dims=dims,
    )


def _variance_rv(name: str, prior: CovariancePrior | None, scale, dims):
    """Positive variances on the log transform: InvGamma(nu0/2, psi0/2) or flat."""
    if prior is None:
        return pm.HalfFlat(name, dims=dims)
    dof, scale = _hyper("covariances_dof", prior.dof), _hyper("covariances_scale", scale)
    return pm.InverseGamma(name, alpha=dof / 2.0, beta=scale / 2.0, dims=dims)


# --------------------------------------------------------------------------------------
# The symbolic table: one entry per covariance type
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SymbolicCovariance(ABC):
    """PyTensor functions of one covariance type (sklearn shapes, as in core)."""

    name: str
    signature: str  # of the likelihood: (weights, means, covariances) -> one row

    @property
    def dims(self) -> tuple[str, ...]:
        """Named dims of the covariance variable (the core table's)."""
        return get_covariance_model(self.name).dims

    @abstractmethod
    def covariance_rv(self, prior: CovariancePrior | None, reference: np.ndarray):
        """The ``covariances`` RV; ``reference`` (D, D) is the flat prior's support point."""

    @abstractmethod
    def log_gaussian(self, x, means, covariances):
        """``log N(x_n | mu_k, Sigma_k)``, shape (N, K)."""

    @abstractmethod
    def conjugate_means_rv(self, name, mean, shrinkage, covariances, dims):
        """``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)``."""


class _FullSymbolic(_SymbolicCovariance):
    def covariance_rv(self, prior, reference):
        return _spd_rv("covariances", prior, self.name, reference, self.dims)

    def log_gaussian(self, x, means, covariances):
        chol = pt.linalg.cholesky(covariances, lower=True)  # (K, D, D)
        diff = x[None, :, :] - means[:, None, :]  # (K, N, D)
        z = pt.linalg.solve_triangular(chol, diff.mT, lower=True, b_ndim=2)  # (K, D, N)
        maha = pt.sum(z**2, axis=1)  # (K, N)
        log_det = _log_det_chol(chol)  # (K,)
        d = pt.cast(x.shape[-1], x.dtype)
        return (-0.5 * (d * _LOG_2PI + maha + log_det[:, None])).T

    def conjugate_means_rv(self, name, mean, shrinkage, covariances, dims):
        chol = pt.linalg.cholesky(covariances, lower=True) / np.sqrt(shrinkage)
        return pm.MvNormal(name, mu=mean, chol=chol, dims=dims)


class _TiedSymbolic(_SymbolicCovariance):
    def covariance_rv(self, prior, reference):
        return _spd_rv("covariances", prior, self.name, reference, self.dims)

    def log_gaussian(self, x, means, covariances):
        chol = pt.linalg.cholesky(covariances, lower=True)  # (D, D)
        zx = pt.linalg.solve_triangular(chol, x.T, lower=True, b_ndim=2)  # (D, N)
        zm = pt.linalg.solve_triangular(chol, means.T, lower=True, b_ndim=2)  # (D, K)
        maha = pt.sum((zx[:, :, None] - zm[:, None, :]) ** 2, axis=0)  # (N, K)
        d = pt.cast(x.shape[-1], x.dtype)
        return -0.5 * (d * _LOG_2PI + maha + _log_det_chol(chol))

    def conjugate_means_rv(self, name, mean, shrinkage, covariances, dims):
        chol = pt.linalg.cholesky(covariances, lower=True) / np.sqrt(shrinkage)
        return pm.MvNormal(name, mu=mean, chol=chol, dims=dims)


class _DiagSymbolic(_SymbolicCovariance):
    def _variances(self, covariances):
        return covariances  # (K, D)

    def covariance_rv(self, prior, reference):
        n_features = reference.shape[-1]
        table = get_covariance_model(self.name)
        scale = None if prior is None else table.prior_scale(prior.dof, prior.scale, n_features)
        return _variance_rv("covariances", prior, scale, self.dims)

    def log_gaussian(self, x, means, covariances):
        var = pt.broadcast_to(self._variances(covariances), means.shape)  # (K, D)
        diff = x[:, None, :] - means[None, :, :]  # (N, K, D)
        maha = pt.sum(diff**2 / var[None], axis=-1)
        log_det = pt.sum(pt.log(var), axis=-1)  # (K,)
        d = pt.cast(x.shape[-1], x.dtype)
        return -0.5 * (d * _LOG_2PI + maha + log_det[None, :])

    def conjugate_means_rv(self, name, mean, shrinkage, covariances, dims):
        sigma = pt.sqrt(self._variances(covariances) / shrinkage)
        return pm.Normal(name, mu=mean, sigma=sigma, dims=dims)


class _SphericalSymbolic(_DiagSymbolic):
    def _variances(self, covariances):
        return covariances[:, None]  # (K, 1)


def _shared_variance_logp(value, dof, scale):
    r"""EII's prior on its one variance :math:`\lambda`, as MAP-EM has it
    (:meth:`~bayesgmm.core.covariance.CovarianceModel.log_prior`): one
    inverse-gamma(:math:`\nu_0/2, \psi_{0j}/2`) factor per feature, all at
    :math:`\lambda`,

    .. math:: \sum_{j=1}^d \log \mathrm{InvGamma}(\lambda \mid \nu_0/2, \psi_{0j}/2)
              = \log \mathrm{InvGamma}(\lambda \mid d(\nu_0/2 + 1) - 1,
                \textstyle\sum_j \psi_{0j}/2) + \text{const},

    a proper density of :math:`\lambda` (the inverse-gamma on the right), with MAP-EM's
    constant, so that ``logp(jacobian=False)`` is the MAP objective."""
    a = 0.5 * dof
    b = 0.5 * scale
    log_value = pt.log(value)
    return pt.sum(a * pt.log(b) - pt.gammaln(a) - (a + 1.0) * log_value - b / value, axis=-1)


def _shared_variance_params(dof, scale):
    """Shape and scale of the inverse-gamma proportional to :func:`_shared_variance_logp`."""
    d = scale.shape[-1]
    return d * (0.5 * dof + 1.0) - 1.0, 0.5 * scale.sum(axis=-1)


def _shared_variance_random(dof, scale, rng=None, size=None):
    alpha, beta = _shared_variance_params(np.asarray(dof), np.asarray(scale))
    return stats.invgamma.rvs(alpha, scale=beta, size=size, random_state=rng)


def _shared_variance_mode(rv, size, dof, scale):
    alpha, beta = _shared_variance_params(dof, scale)
    return pt.broadcast_to(beta / (alpha + 1.0), rv.shape)


@dataclass(frozen=True)
class _SharedDiagSymbolic(_DiagSymbolic):
    """EII (one variance) and EEI (one diagonal): the diagonal type's functions on
    covariances shared by every component. The free variable is the shared part,
    ``variance`` (scalar, EII) or ``variances`` (feature, EEI), log transform;
    ``covariances`` (component, feature) is its deterministic broadcast, in the core
    table's shape. The prior is the core table's, once for all components (MAP-EM
    adds it once: :class:`~bayesgmm.core.covariance.EIICovariance`)."""

    spherical: bool = False

    @property
    def free_name(self) -> str:
        return "variance" if self.spherical else "variances"

    def covariance_rv(self, prior, reference):
        n_features = reference.shape[-1]
        dims = () if self.spherical else ("feature",)
        if prior is None:
            shared = pm.HalfFlat(self.free_name, dims=dims)
        else:
            table = get_covariance_model(self.name)
            scale = np.asarray(table.prior_scale(prior.dof, prior.scale, n_features), float)
            if self.spherical:
                shared = pm.CustomDist(
                    self.free_name,
                    _hyper("covariances_dof", prior.dof),
                    _hyper("covariances_scale", scale),
                    logp=_shared_variance_logp,
                    random=_shared_variance_random,
                    support_point=_shared_variance_mode,
                    signature="(),(d)->()",
                    default_transform=pm.distributions.transforms.log,
                )
            else:
                dof = _hyper("covariances_dof", prior.dof)
                scale = _hyper("covariances_scale", scale)
                shared = pm.InverseGamma(
                    self.free_name, alpha=dof / 2.0, beta=scale / 2.0, dims=dims
                )
        n_components = len(pm.modelcontext(None).coords["component"])
        shape = (n_components, n_features)
        row = shared[None, None] if self.spherical else shared[None, :]
        return pm.Deterministic("covariances", pt.broadcast_to(row, shape), dims=self.dims)


# --------------------------------------------------------------------------------------
# VEI and EVI: volumes and log-shapes
# --------------------------------------------------------------------------------------


class _ZeroSumRows(ZeroSumTransform):
    """PyMC's zero-sum transform of the last axis for a variable whose density is one
    number for the whole (K, D) array (EVI's log-shapes, coupled across the rows):
    the Jacobian (0, an isometry) then has the density's dims, not one per row."""

    def __init__(self) -> None:
        super().__init__([-1])

    def log_jac_det(self, value, *rv_inputs):
        return value.sum(axis=(-2, -1)).zeros_like()


def _volume_shape_constants(dof, half_scale, n_factors):
    r"""Per-variance inverse-gamma(:math:`\alpha = \nu_0/2, b_j`) factors, ``n_factors``
    of them per volume (D for VEI's each :math:`\lambda_k`, K D for EVI's one
    :math:`\lambda`): the constant :math:`C = \sum_j (\alpha\log b_j - \log\Gamma(\alpha))`
    and the shape :math:`\alpha' = n(\alpha+1) - 1` of the inverse-gamma in the volume."""
    alpha = 0.5 * dof
    const = pt.sum(alpha * pt.log(half_scale) - pt.gammaln(alpha), axis=-1)
    return alpha, const, n_factors * (alpha + 1.0) - 1.0


def _vei_log_shape_logp(value, dof, half_scale, n_components):
    r"""VEI's log-shape :math:`u` (sum zero): the MAP prior
    :math:`\prod_{k,j}\mathrm{InvGamma}(\lambda_k e^{u_j} \mid \alpha, b_j)` with the
    volumes integrated out,
    :math:`K\,[C + \log\Gamma(\alpha') - \alpha'\log\sum_j b_j e^{-u_j}]`,
    :math:`\alpha' = D(\alpha+1)-1` (:func:`_volume_shape_constants`)."""
    d = pt.cast(value.shape[-1], "float64")
    _, const, shape = _volume_shape_constants(dof, half_scale, d)
    beta = pt.sum(half_scale * pt.exp(-value), axis=-1)
    return n_components * (const + pt.gammaln(shape) - shape * pt.log(beta))


def _evi_log_shapes_logp(value, dof, half_scale):
    r"""EVI's log-shapes :math:`u_k` (each row sum zero), the one volume integrated
    out: :math:`K C + \log\Gamma(M) - M\log\sum_{k,j} b_j e^{-u_{kj}}`,
    :math:`M = KD(\alpha+1)-1`."""
    k = pt.cast(value.shape[-2], "float64")
    d = pt.cast(value.shape[-1], "float64")
    _, const, shape = _volume_shape_constants(dof, half_scale[..., 0, :], k * d)
    beta = pt.sum(half_scale * pt.exp(-value), axis=(-2, -1))
    return k * const + pt.gammaln(shape) - shape * pt.log(beta)


def _centered(x):
    return x - x.mean(axis=-1, keepdims=True)


def _vei_log_shape_random(dof, half_scale, n_components, rng=None, size=None):
    r"""Exact draws: :math:`s = (b_j e^{-u_j})_j / \sum_j b_j e^{-u_j}` is
    Dirichlet(:math:`K\alpha'/D`) (see :class:`_VolumeShapeSymbolic`), and
    :math:`u = \operatorname{centre}(\log b - \log s)`."""
    half_scale = np.asarray(half_scale, dtype=float)
    d = half_scale.shape[-1]
    shape = d * (0.5 * float(dof) + 1.0) - 1.0
    size = () if size is None else tuple(size)
    s = rng.dirichlet(np.full(d, float(n_components) * shape / d), size=size)
    return _centered(np.log(half_scale) - np.log(s))


def _evi_log_shapes_random(dof, half_scale, rng=None, size=None):
    r"""Exact draws by rejection: :math:`\sum_k \beta_k \ge K(\prod_k\beta_k)^{1/K}`
    (AM-GM, :math:`\beta_k = \sum_j b_j e^{-u_{kj}}`), so the density
    :math:`(\sum_k\beta_k)^{-M}` is at most :math:`K^{-M}\prod_k \beta_k^{-M/K}`, a
    product of VEI-type densities (each row a Dirichlet(:math:`M/(KD)`) draw); accept
    with probability :math:`(\text{geometric}/\text{arithmetic mean of } \beta_k)^M`."""
    half_scale = np.asarray(half_scale, dtype=float)
    k, d = half_scale.shape[-2:]
    b = half_scale.reshape(-1, k, d)[0]
    shape = k * d * (0.5 * float(dof) + 1.0) - 1.0
    size = () if size is None else tuple(size)
    out = np.empty((*size, k, d))
    for idx in np.ndindex(*size):
        while True:
            s = rng.dirichlet(np.full(d, shape / (k * d)), size=k)
            u = _centered(np.log(b) - np.log(s))
            beta = (b * np.exp(-u)).sum(axis=-1)
            log_ratio = shape * (np.log(beta).mean() - np.log(beta.mean()))
            if np.log(rng.uniform()) < log_ratio:
                out[idx] = u
                break
    return out


def _log_shape_mode(rv, size, *params):
    r"""The mode of the log-shape's density: :math:`b_j e^{-u_j}` equal across ``j``,
    :math:`u = \operatorname{centre}(\log b)`."""
    half_scale = params[1]
    return pt.broadcast_to(_centered(pt.log(half_scale)), rv.shape)


def _flat_log_shape_logp(value, reference):
    return pt.zeros(value.shape[: value.ndim - reference.ndim], dtype=value.dtype)


def _flat_log_shape_support_point(rv, size, reference):
    return pt.zeros(rv.shape, dtype=rv.dtype)


@dataclass(frozen=True)
class _VolumeShapeSymbolic(_DiagSymbolic):
    r"""VEI (:math:`\Sigma_k = \lambda_k A`, one shape ``A``: ``shared_shape``) and EVI
    (:math:`\Sigma_k = \lambda A_k`), ``A`` diagonal with :math:`|A| = 1`.

    Free variables (:func:`bayesgmm.core.unconstrained.covariance_coordinates`): the
    volumes, :math:`\lambda_k` (``volumes``, component) or :math:`\lambda` (``volume``),
    log transform; the log-shapes :math:`u = \log a` (``log_shape``, feature, or
    ``log_shapes``, (component, feature)), each shape's vector summing to zero, on
    PyMC's :class:`~pymc.distributions.transforms.ZeroSumTransform` (an isometry of
    :math:`\mathbb{R}^{D-1}` onto that hyperplane, Jacobian 1). ``covariances``
    (component, feature) is the deterministic :math:`\lambda_k e^{u_j}` /
    :math:`\lambda e^{u_{kj}}`, in the core table's shape.

    **The prior** is MAP-EM's (:meth:`~bayesgmm.core.covariance.CovarianceModel.log_prior`),
    :math:`\prod_{k,j}\mathrm{InvGamma}(\sigma^2_{kj} \mid \alpha, b_j)` at the
    family's variances (:math:`\alpha = \nu_0/2`, :math:`b_j = \psi_{0j}/2`), taken as
    a density with respect to Lebesgue measure on the volumes and on the log-shapes'
    hyperplane(s) (the zero-sum transform's coordinates). That base measure is a
    choice: MAP-EM's objective is a function of the parameters, not a density of them,
    until one is fixed, and this one makes the MAP-EM fit the posterior mode in these
    coordinates (``logp(jacobian=False)`` is the MAP objective). With
    :math:`\prod_j a_j = 1` the factors :math:`a_j^{-(\alpha+1)}` drop out, and

    .. math::

        \prod_j \mathrm{InvGamma}(\lambda a_j \mid \alpha, b_j)
        = e^{C}\,\Gamma(\alpha')\,\beta(u)^{-\alpha'}\,
          \mathrm{InvGamma}(\lambda \mid \alpha', \beta(u)),\quad
        \beta(u) = \sum_j b_j e^{-u_j},\ \alpha' = D(\alpha+1)-1,

    :math:`C = \sum_j(\alpha\log b_j - \log\Gamma(\alpha))`. So the model factors as
    a proper inverse-gamma of the volumes given the shapes (VEI: each
    :math:`\lambda_k \sim \mathrm{InvGamma}(\alpha', \beta(u))`; EVI:
    :math:`\lambda \sim \mathrm{InvGamma}(M, \sum_k\beta(u_k))`,
    :math:`M = KD(\alpha+1)-1`) times the log-shapes' marginal, proportional to
    :math:`\beta(u)^{-K\alpha'}` (VEI) or :math:`(\sum_k\beta(u_k))^{-M}` (EVI).

    **It is proper.** On the hyperplane, :math:`-\min_j u_j \ge \|u\|_1/(2(D-1)) \ge
    \|u\|_2/(2(D-1))` (the negative parts sum to half of :math:`\|u\|_1` and there are
    at most :math:`D-1` of them), so :math:`\beta(u) \ge \min_j b_j\,
    e^{\|u\|/(2(D-1))}` and :math:`\beta(u)^{-m}` decays exponentially in
    :math:`\|u\|`: integrable. In closed form (substitute
    :math:`s_j = b_j e^{-u_j}/\beta(u)`: the Lebesgue measure on the hyperplane is
    :math:`\propto \prod_j s_j^{-1}\,ds` on the simplex),
    :math:`\int \beta(u)^{-m}\,du = \Gamma(m/D)^D \prod_j b_j^{-m/D} / (\sqrt{D}\,
    \Gamma(m))`, and :math:`s \sim \mathrm{Dirichlet}(m/D)`: VEI's exact prior draws.
    For EVI, :math:`\sum_k\beta_k \ge K(\prod_k\beta_k)^{1/K}` bounds its marginal by
    a product of K such integrable factors (its exact draws use it for rejection).

    In one dimension :math:`A = 1`: VEI is V (VII) with one inverse-gamma per
    variance, EVI one shared variance with K inverse-gamma factors (EII has one).
    """

    shared_shape: bool = True

    def covariance_rv(self, prior, reference):
        from bayesgmm.core.unconstrained import covariance_coordinates

        n_features = reference.shape[-1]
        n_components = len(pm.modelcontext(None).coords["component"])
        shape_var, volume_var = covariance_coordinates(self.name).variables(
            n_components, n_features
        )
        shape_kw = {"dims": shape_var.dims}
        if prior is None:
            ref = np.zeros(shape_var.shape[-1:] if self.shared_shape else shape_var.shape)
            log_shape = pm.CustomDist(
                shape_var.name,
                ref,
                logp=_flat_log_shape_logp,
                support_point=_flat_log_shape_support_point,
                signature="(d)->(d)" if self.shared_shape else "(k,d)->(k,d)",
                default_transform=ZeroSumTransform([-1]) if self.shared_shape else _ZeroSumRows(),
                **shape_kw,
            )
            volume = pm.HalfFlat(volume_var.name, dims=volume_var.dims)
        else:
            table = get_covariance_model(self.name)
            half = 0.5 * np.asarray(table.prior_scale(prior.dof, prior.scale, n_features), float)
            if not self.shared_shape:
                half = np.broadcast_to(half, (n_components, n_features)).copy()
            # hyperparameters as data (_hyper), so a refit reuses the compiled model
            dof = _hyper("covariances_dof", prior.dof)
            half = _hyper("covariances_half_scale", half)
            d = np.float64(n_features)
            alpha = 0.5 * dof
            if self.shared_shape:
                log_shape = pm.CustomDist(
                    shape_var.name,
                    dof,
                    half,
                    np.float64(n_components),
                    logp=_vei_log_shape_logp,
                    random=_vei_log_shape_random,
                    support_point=_log_shape_mode,
                    signature="(),(d),()->(d)",
                    default_transform=ZeroSumTransform([-1]),
                    **shape_kw,
                )
                beta = pt.sum(half * pt.exp(-log_shape), axis=-1)
                volume = pm.InverseGamma(
                    volume_var.name, alpha=d * (alpha + 1.0) - 1.0, beta=beta,
                    dims=volume_var.dims,
                )  # fmt: skip
            else:
                log_shape = pm.CustomDist(
                    shape_var.name,
                    dof,
                    half,
                    logp=_evi_log_shapes_logp,
                    random=_evi_log_shapes_random,
                    support_point=_log_shape_mode,
                    signature="(),(k,d)->(k,d)",
                    default_transform=_ZeroSumRows(),
                    **shape_kw,
                )
                beta = pt.sum(half * pt.exp(-log_shape))
                volume = pm.InverseGamma(
                    volume_var.name,
                    alpha=n_components * d * (alpha + 1.0) - 1.0,
                    beta=beta,
                    dims=volume_var.dims,
                )
        if self.shared_shape:
            covariances = volume[:, None] * pt.exp(log_shape)[None, :]
        else:
            covariances = volume * pt.exp(log_shape)
        return pm.Deterministic("covariances", covariances, dims=self.dims)


_SYMBOLIC_COVARIANCES: dict[str, _SymbolicCovariance] = {
    "full": _FullSymbolic("full", "(k),(k,d),(k,d,d)->(d)"),
    "tied": _TiedSymbolic("tied", "(k),(k,d),(d,d)->(d)"),
    "diag": _DiagSymbolic("diag", "(k),(k,d),(k,d)->(d)"),
    "spherical": _SphericalSymbolic("spherical", "(k),(k,d),(k)->(d)"),
    "EII": _SharedDiagSymbolic("EII", "(k),(k,d),(k,d)->(d)", spherical=True),
    "EEI": _SharedDiagSymbolic("EEI", "(k),(k,d),(k,d)->(d)", spherical=False),
    "VEI": _VolumeShapeSymbolic("VEI", "(k),(k,d),(k,d)->(d)", shared_shape=True),
    "EVI": _VolumeShapeSymbolic("EVI", "(k),(k,d),(k,d)->(d)", shared_shape=False),
}
assert tuple(_SYMBOLIC_COVARIANCES)[: len(COVARIANCE_TYPES)] == COVARIANCE_TYPES


def posterior_covariance_types() -> list[str]:
    """The covariance types :func:`build_model` supports, every name that reaches them
    (scikit-learn's and mclust's), in the core table's order."""
    from bayesgmm.core.covariance import COVARIANCE_MODELS

    return [
        name for name, model in COVARIANCE_MODELS.items() if model.name in _SYMBOLIC_COVARIANCES
    ]


def check_posterior_type(covariance_type: str) -> _SymbolicCovariance:
    """The symbolic entry of ``covariance_type``, or a ``ValueError`` naming the
    supported types."""
    table_name = get_covariance_model(covariance_type).name  # ValueError if unknown
    if table_name in _SYMBOLIC_COVARIANCES:
        return _SYMBOLIC_COVARIANCES[table_name]
    raise ValueError(
        f"The posterior (PyMC) model does not support covariance_type="
        f"{covariance_type!r} (a family with an orientation to estimate); supported: "
        f"{posterior_covariance_types()} ('full' = VVV, 'tied' = EEE, 'diag' = VVI, "
        "'spherical' = VII; E and V are EII and VII in one dimension). Fit the other "
        "families by maximum likelihood or MAP with GaussianMixture."
    )


def initial_values(params: dict, covariance_type: str) -> dict[str, np.ndarray]:
    """``weights``, ``means``, ``covariances`` (the core table's shapes) as values of
    the free variables of :func:`build_model`'s model (for ``initvals=``): the same
    names, except EII and EEI, whose free variable is the shared ``variance`` /
    ``variances``, and VEI and EVI, whose free variables are the volume(s) and the
    log-shape(s) (``volumes`` and ``log_shape``, ``volume`` and ``log_shapes``;
    variances outside the family are projected on it, in logarithms)."""
    from bayesgmm.core.unconstrained import covariance_coordinates

    check_posterior_type(covariance_type)
    out = {name: value for name, value in params.items() if name != "covariances"}
    return out | covariance_coordinates(covariance_type).split(params["covariances"])


# --------------------------------------------------------------------------------------
# The marginalized likelihood
# --------------------------------------------------------------------------------------


def _core_ndims(signature: str) -> list[int]:
    """Core dimensions of the inputs of a gufunc signature: "(k),(k,d)->(d)" -> [1, 2]."""
    inputs = signature.split("->")[0]
    return [0 if not part.strip("()") else part.count(",") + 1 for part in inputs.split("),")]


def _drop_batch_dims(param, core_ndim: int):
    """Drop the leading length-1 batch axes PyMC adds to a CustomDist's parameters
    (symbolic ones in ``logp``, NumPy arrays in ``random``)."""
    n_batch = param.ndim - core_ndim
    if n_batch == 0:
        return param
    batch = param.type.broadcastable[:n_batch] if hasattr(param, "type") else None
    if batch is None:  # a NumPy array (random draws)
        batch = tuple(n == 1 for n in param.shape[:n_batch])
    if not all(batch):
        raise ValueError(
            "The mixture likelihood takes one set of parameters for all observations; "
            "got parameters with batch dimensions."
        )
    return param.squeeze(axis=tuple(range(n_batch)))


class MaskedRows(NamedTuple):
    """The missingness of the rows of ``x`` as data (shared variables), so that the
    graph does not depend on which patterns occur or how many rows have each.

    Attributes
    ----------
    pattern : int tensor of shape (N,)
        The index of each row's pattern in ``masks``.
    masks : float tensor of shape (P, D)
        1 where a pattern observes a feature, 0 where not.
    """

    pattern: Any
    masks: Any


def _masked_log_gaussian(symbolic, rows, masked: MaskedRows, means, covariances):
    r"""``log N(x_{n,O_n} | mu_{k,O_n}, Sigma_{k,O_nO_n})`` for every row at once, (N, K);
    ``rows`` (N, D) holds NaN where a value is missing.

    The missing coordinates are masked, not indexed: with :math:`m` a pattern's 0/1
    mask, :math:`\tilde\Sigma = \Sigma \odot m m^\top + \operatorname{diag}(1 - m)` is
    :math:`\Sigma_{OO}` and an identity block on the missing coordinates (after a
    permutation), and :math:`\tilde x - \tilde\mu = m \odot (x - \mu)` is 0 there, so
    the D-dimensional density of the masked quantities is the observed marginal times
    :math:`(2\pi)^{-|M|/2}`, which the constant :math:`|O_n| \log 2\pi` removes.
    Matrices are inverted once per pattern (and component); a row picks its
    pattern's inverse and log-determinant by index. Variances need no pattern at all. The graph
    depends only on the storage layout (the core table's ``dims``), not on the data.
    """
    observed = ~pt.isnan(rows)
    weight = pt.cast(observed, rows.dtype)  # (N, D)
    filled = pt.where(observed, rows, 0.0)  # the missing cells are never read
    diff = (filled[:, None, :] - means[None, :, :]) * weight[:, None, :]  # (N, K, D)
    n_observed = pt.sum(weight, axis=-1)  # (N,)
    dims = symbolic.dims
    if dims[-2:] == ("feature", "feature_bis"):  # matrices: (K, D, D) or tied (D, D)
        per_component = len(dims) == 3
        m = masked.masks  # (P, D)
        eye = pt.eye(rows.shape[-1], dtype=rows.dtype)
        outer = m[:, :, None] * m[:, None, :]  # (P, D, D)
        fill = eye[None] * (1.0 - m)[:, None, :]  # diag(1 - m), (P, D, D)
        if per_component:
            block = covariances[None] * outer[:, None] + fill[:, None]  # (P, K, D, D)
        else:
            block = covariances[None] * outer + fill  # (P, D, D)
        # inverse and log-determinant, not a Cholesky factor: the gradients of a batched
        # Cholesky and of a batched pt.diagonal contain a Blockwise AllocDiag, which
        # numba runs in object mode (Python) inside nutpie's multi-threaded C callback,
        # and that corrupted the draws (every draw divergent with 2 threads)
        precision = pt.linalg.inv(block)  # (P, K, D, D) or (P, D, D)
        _sign, log_det = pt.linalg.slogdet(block)
        log_det = log_det[masked.pattern]  # (N, K) or (N,)
        prec_rows = precision[masked.pattern]  # (N, K, D, D) or (N, D, D)
        if not per_component:
            prec_rows, log_det = prec_rows[:, None], log_det[:, None]
        # diff^T P diff; the missing coordinates have diff 0 (and P the identity there)
        maha = pt.sum(pt.sum(prec_rows * diff[:, :, None, :], axis=-1) * diff, axis=-1)
    else:  # variances: (K, D) (diag, EII, EEI) or (K,) spherical
        var = covariances if len(dims) == 2 else covariances[:, None]
        var = pt.broadcast_to(var, means.shape)  # (K, D)
        maha = pt.sum(diff**2 / var[None], axis=-1)
        log_det = pt.dot(weight, pt.log(var).T)  # (N, K): observed variances only
    return -0.5 * (n_observed[:, None] * _LOG_2PI + maha + log_det)


def _make_likelihood(symbolic: _SymbolicCovariance, masked: MaskedRows | None = None):
    """The likelihood's ``logp`` and ``random``.

    With ``masked`` (the data have NaN), each row's log density is that of its
    observed coordinates (:func:`_masked_log_gaussian`); the missing cells are never
    read. Without, the graph is the complete-data one.
    """
    core_ndims = _core_ndims(symbolic.signature)

    def logp(value, *params):
        weights, means, covariances = (
            _drop_batch_dims(p, nd) for p, nd in zip(params, core_ndims, strict=True)
        )
        rows = value.reshape((-1, value.shape[-1]))  # (N, D)
        if masked is None:
            log_gauss = symbolic.log_gaussian(rows, means, covariances)  # (N, K)
        else:
            log_gauss = _masked_log_gaussian(symbolic, rows, masked, means, covariances)
        out = pt.logsumexp(log_gauss + pt.log(weights)[None, :], axis=-1)
        return out.reshape(value.shape[:-1])

    def random(*params, rng=None, size=None):
        weights, means, covariances = (
            _drop_batch_dims(p, nd) for p, nd in zip(params, core_ndims, strict=True)
        )
        n_components, n_features = means.shape
        full = get_covariance_model(symbolic.name).to_full(covariances, n_components, n_features)
        shape = () if size is None else tuple(size)
        labels = rng.choice(n_components, size=shape, p=weights / weights.sum())
        chol = np.linalg.cholesky(full)
        noise = rng.standard_normal((*shape, n_features))
        return means[labels] + np.einsum("...ij,...j->...i", chol[labels], noise)

    return logp, random


# --------------------------------------------------------------------------------------
# Boundary checks
# --------------------------------------------------------------------------------------


def _check_data(X) -> tuple[np.ndarray, list[str], list[Any]]:
    """A float64 copy of ``X`` (N, D), its feature names and its row index.

    NaN (and pandas' NA) mark missing values. Rows with no observed value carry no
    information and are dropped, with a warning; the returned data and index hold
    only the other rows.
    """
    if hasattr(X, "columns") and hasattr(X, "dtypes"):
        from pandas.api.types import is_numeric_dtype

        bad = [str(c) for c, dtype in X.dtypes.items() if not is_numeric_dtype(dtype)]
        if bad:
            raise ValueError(f"`X` must be numeric; these columns are not: {bad}.")
        features = [str(c) for c in X.columns]
        index = list(X.index)
        try:  # always a copy: X is never modified; pandas' NA becomes NaN
            data = X.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        except (TypeError, ValueError):
            raise ValueError("`X` must contain only numbers and missing values.") from None
    else:
        features = index = None
        try:
            data = np.array(X, dtype=np.float64)  # always a copy: X is never modified
        except (TypeError, ValueError):
            raise ValueError(
                f"`X` must be a numeric array-like; got {type(X).__name__}."
            ) from None
    if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 1:
        raise ValueError(
            f"`X` must be a 2-D array of shape (n_samples, n_features); got shape {data.shape}."
        )
    if features is None:
        features = [f"x{j}" for j in range(data.shape[1])]
        index = list(range(data.shape[0]))
    if np.isinf(data).any():
        raise ValueError(
            "`X` contains infinite values; only NaN is accepted (as a missing value)."
        )
    observed = ~np.isnan(data)
    empty_columns = [features[j] for j in np.flatnonzero(~observed.any(axis=0))]
    if empty_columns:
        raise ValueError(
            f"`X` has columns with no observed value (all NaN): {empty_columns}. Drop them."
        )
    empty_rows = ~observed.any(axis=1)
    if empty_rows.any():
        warnings.warn(
            f"{int(empty_rows.sum())} of {len(data)} rows of `X` have no observed value and "
            "carry no information: they are left out of the model.",
            UserWarning,
            stacklevel=3,
        )
        data = data[~empty_rows]
        index = [label for label, empty in zip(index, empty_rows, strict=True) if not empty]
    return data, features, index


def _check_n_components(n_components) -> int:
    if isinstance(n_components, bool) or not isinstance(n_components, int | np.integer):
        raise ValueError(f"`n_components` must be an integer >= 1; got {n_components!r}.")
    if n_components < 1:
        raise ValueError(f"`n_components` must be >= 1; got {n_components}.")
    return int(n_components)


def _resolve_prior(prior, X: np.ndarray, n_components: int, covariance_type: str) -> GMMPrior:
    if isinstance(prior, str) and prior in PRIOR_NAMES:  # built on X (priors.resolve_prior)
        return resolve_prior(prior, X, n_components, covariance_type)
    if isinstance(prior, GMMPrior):
        prior.check(n_components, X.shape[1], covariance_type)
        return prior
    raise ValueError(
        f"`prior` must be one of {list(PRIOR_NAMES)} ('default' = 'pooled', "
        "GMMPrior.pooled; 'mclust' = mclust's conjugate prior, GMMPrior.mclust) or a "
        f"GMMPrior (GMMPrior() puts flat priors on every part); got {prior!r}."
    )


def _reference_covariance(X: np.ndarray, n_components: int) -> np.ndarray:
    """cov(X) / K^(2/D), kept SPD: the support point of a flat covariance prior."""
    n_samples, n_features = X.shape
    if np.isnan(X).any():  # the observed variances (pairwise covariances may not be SPD)
        variances = np.nan_to_num(np.nanvar(X, axis=0, ddof=0), nan=1.0)
        cov = np.diag(np.where(variances > 0, variances, 1.0))
    elif n_samples > 1:
        cov = np.atleast_2d(np.cov(X, rowvar=False))
    else:
        cov = np.eye(n_features)
    cov = cov / n_components ** (2.0 / n_features)
    return cov + 1e-6 * max(float(np.trace(cov)) / n_features, 1e-12) * np.eye(n_features)


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


def _means_rv(prior: NormalMeanPrior | None, symbolic, covariances):
    dims = ("component", "feature")
    if prior is None:
        return pm.Flat("means", dims=dims)
    mean = _hyper("means_mean", prior.mean)
    if prior.form == "conjugate":
        shrinkage = _hyper("means_shrinkage", prior.shrinkage)
        return symbolic.conjugate_means_rv("means", mean, shrinkage, covariances, dims)
    chol = _hyper("means_covariance_chol", np.linalg.cholesky(prior.covariance))
    return pm.MvNormal("means", mu=mean, chol=chol, dims=dims)


def _parameter_rvs(symbolic, prior: GMMPrior, data: np.ndarray, n_components: int):
    """The ``weights``, ``means`` and ``covariances`` RVs, in the current model."""
    reference = _reference_covariance(data, n_components)
    covariances = symbolic.covariance_rv(prior.covariances, reference)
    alpha = (
        prior.weights.concentration(n_components)
        if prior.weights is not None
        else np.ones(n_components)
    )
    weights = pm.Dirichlet("weights", a=_hyper("weights_concentration", alpha), dims="component")
    means = _means_rv(prior.means, symbolic, covariances)
    return weights, means, covariances


def _likelihood_rv(symbolic, parameters, observed, masked: MaskedRows | None):
    """The observed ``x``: the marginalized mixture, observed-data form with ``masked``.

    Given a NumPy array with NaN and no ``masked``, PyMC imputes the NaN by data
    augmentation (a latent variable per missing cell): the reference the tests compare
    the analytic marginalization with.
    """
    logp, random = _make_likelihood(symbolic, masked)
    return pm.CustomDist(
        "x",
        *parameters,
        logp=logp,
        random=random,
        signature=symbolic.signature,
        observed=observed,
        dims=("obs", "feature"),
    )


def _masked_rows(data: np.ndarray) -> MaskedRows:
    """The missingness patterns of ``data`` as data containers ``x_pattern`` (obs) and
    ``x_masks``, in the current model."""
    patterns = missing_patterns(data)
    index = np.empty(len(data), dtype=np.int64)
    for p, rows in enumerate(patterns.rows):
        index[rows] = p
    return MaskedRows(
        pm.Data("x_pattern", index, dims="obs"),
        pm.Data("x_masks", patterns.patterns.astype(np.float64)),
    )


def build_model(
    X, n_components: int, *, covariance_type: str = "full", prior: GMMPrior | str = "default"
) -> pm.Model:
    r"""The Gaussian mixture with a :class:`~bayesgmm.priors.GMMPrior`, as a new PyMC model.

    The component labels are summed out, so every parameter is continuous and NUTS
    applies:

    .. math::

        \log p(X, \theta) = \sum_{n=1}^N \log \sum_{k=1}^K \pi_k\,
            N(x_n \mid \mu_k, \Sigma_k) + \log p(\pi) + \log p(\mu \mid \Sigma)
            + \log p(\Sigma)

    with :math:`\pi \sim \mathrm{Dirichlet}(\alpha)`; means either conjugate,
    :math:`\mu_k \mid \Sigma_k \sim N(m_0, \Sigma_k/\kappa_0)` (the shared
    :math:`\Sigma` for 'tied', the diagonal covariance for 'diag' and 'spherical'), or
    independent, :math:`\mu_k \sim N(m_0, S_0)`; and
    :math:`\Sigma_k \sim \mathrm{InvWishart}(\nu_0, \Psi_0)` ('full'; one shared
    :math:`\Sigma` for 'tied'),

    .. math::

        \log p(\Sigma) = \tfrac{\nu_0}{2}\log|\Psi_0| - \tfrac{\nu_0 d}{2}\log 2
            - \log\Gamma_d(\tfrac{\nu_0}{2}) - \tfrac{\nu_0+d+1}{2}\log|\Sigma|
            - \tfrac12 \operatorname{tr}(\Psi_0\Sigma^{-1}),

    or :math:`\sigma^2 \sim \mathrm{InvGamma}(\nu_0/2, \psi_0/2)` for each variance of
    'diag' and 'spherical'. mclust's EII (:math:`\Sigma_k = \lambda I`) and EEI
    (:math:`\Sigma_k = \operatorname{diag}(a)`) share their variance(s) across the
    components and carry the prior once: for EEI an inverse-gamma per :math:`a_j`;
    for EII, as in MAP-EM, one inverse-gamma(:math:`\nu_0/2, \psi_{0j}/2`) factor per
    feature at :math:`\lambda`, which is proportional to the (proper)
    :math:`\mathrm{InvGamma}(d(\nu_0/2+1)-1, \sum_j\psi_{0j}/2)` (prior predictive
    draws come from that). mclust's VEI (:math:`\Sigma_k = \lambda_k A`) and EVI
    (:math:`\Sigma_k = \lambda A_k`), :math:`A` diagonal with :math:`|A| = 1`, carry
    MAP-EM's prior, an inverse-gamma per variance at the family's variances, as a
    density with respect to Lebesgue measure on the volumes and on the log-shapes
    :math:`\log a` (sum zero; PyMC's zero-sum transform): a choice of base measure, in
    which the MAP-EM fit is the posterior mode; it is proper (the derivation:
    ``_VolumeShapeSymbolic`` here, and the inference guide). Every normalizing
    constant is included, so
    ``model.logp(jacobian=False)`` at a point equals the NumPy MAP objective
    ``log_mixture_density(X, params, covariance_type).sum() + prior.log_prob(params,
    covariance_type)``, and the posterior mode is the MAP-EM fixed point.

    Parameters
    ----------
    X : array-like or DataFrame of shape (N, D)
        Data; copied, never modified. DataFrame column names become the ``feature``
        coordinate and its index the ``obs`` coordinate. NaN (or pandas' NA) marks a
        missing value, taken as missing at random: see *Missing values* below. Rows
        with no observed value are left out (with a warning saying how many), so
        ``obs`` then holds the labels of the other rows.
    n_components : int
        ``K``.
    covariance_type : str, default='full'
        One of 'full', 'tied', 'diag', 'spherical', 'EII', 'EEI', 'VEI', 'EVI'.
        Or mclust's names of the first four: VVV, EEE, VVI, VII (E and V, EII and VII
        in one dimension). The families with an orientation have no posterior here
        (:func:`check_posterior_type` raises); fit them with
        :class:`~bayesgmm.GaussianMixture`.
    prior : 'default', 'pooled', 'mclust' or GMMPrior, default='default'
        ``'default'`` and ``'pooled'`` are :meth:`GMMPrior.pooled(X, K, covariance_type)
        <bayesgmm.priors.GMMPrior.pooled>` (empirical Bayes: covariances centred on the
        pooled within-component covariance of a preliminary fit; its hyperparameters
        are then fixed numbers), ``'mclust'`` is :meth:`GMMPrior.mclust
        <bayesgmm.priors.GMMPrior.mclust>` (mclust's conjugate prior); both with a
        flat Dirichlet.
        A :class:`~bayesgmm.priors.GMMPrior` is used as given. A part that is ``None``
        gets a flat prior: ``pm.Flat`` means; covariances with log density 0 on the SPD
        space (same transform), or ``pm.HalfFlat`` variances; weights Dirichlet(1),
        flat on the simplex (its density is the constant :math:`(K-1)!`, so with
        ``weights=None`` the model's logp exceeds the NumPy objective, where a missing
        part counts 0, by :math:`\log (K-1)!`). Flat means or covariances make the
        posterior improper (a component can collapse onto one point); use them for
        MAP-style optimization or with a replacement prior (see below).

    Returns
    -------
    pymc.Model
        A new model with coords ``component`` (0..K-1), ``feature``, ``feature_bis``
        (the same names, for the second axis of a matrix) and ``obs``, and variables

        - ``weights`` (component): Dirichlet, simplex transform;
        - ``means`` (component, feature);
        - ``covariances`` in scikit-learn's shape: (component, feature, feature_bis)
          for 'full', (feature, feature_bis) for 'tied', (component, feature) for
          'diag', (component,) for 'spherical', (component, feature) for EII and EEI
          (a ``pm.Deterministic``: the free variable is the shared ``variance``
          (scalar, EII) or ``variances`` (feature, EEI); :func:`initial_values` turns
          covariances into it, for ``initvals``), and for VEI and EVI (the
          deterministic :math:`\lambda_k e^{u_j}` / :math:`\lambda e^{u_{kj}}` of the
          free ``volumes`` (component) and ``log_shape`` (feature), or ``volume``
          (scalar) and ``log_shapes`` (component, feature); the log-shapes sum to zero
          over features and live on PyMC's ``ZeroSumTransform``). Matrices are SPD
          random variables on
          :class:`pymc.distributions.transforms.CholeskyCovTransform` (free vector =
          packed lower Cholesky factor with log diagonal); variances use the log
          transform. So ``jacobian=False`` gives the density in the covariance
          parameterization itself, like the MAP objective;
        - ``x`` (obs, feature): the observed data, a ``pm.CustomDist`` whose log
          density per row is :math:`\log\sum_k \pi_k N(x_n \mid \mu_k, \Sigma_k)`
          (over the observed coordinates only, for a row with NaN),
          computed with Cholesky factors and triangular solves; so
          ``pm.compute_log_likelihood`` gives the per-observation log-likelihood
          (dim ``obs``) that ``arviz.loo`` needs. It has a ``random`` method for
          posterior predictive sampling.

        The initial point is PyMC's default (support points): weights at the prior
        mean, every mean at ``m0`` (0 if flat), covariances at the prior mode
        (cov(X) / K^(2/D) if flat). Identical means are a saddle point of the
        likelihood, so start optimizers and samplers at a fitted point (the MAP-EM
        fit) with ``start=`` / ``initvals=``. Initial values are deliberately not
        stored in the model: PyMC's model transformations, which
        ``pm.compute_log_likelihood`` uses, reject models that carry them.

    Raises
    ------
    ValueError
        For data that are not a 2-D numeric array, contain ±inf or a column with no
        observed value (named in the message), a bad ``n_components`` or
        ``covariance_type``, or a ``prior`` that is not 'default' or a GMMPrior that
        fits the model.

    Notes
    -----
    **Missing values.** With NaN in ``X``, each row's likelihood is the mixture
    density of its observed coordinates :math:`O_n`, the missing ones integrated out
    analytically:

    .. math:: \log p(x_{n,O_n}) = \log \sum_k \pi_k\,
              N(x_{n,O_n} \mid \mu_{k,O_n}, \Sigma_{k,O_nO_n}).

    Rows are grouped by missingness pattern and each pattern's observed sub-vector of
    the means and sub-block of the covariances (for 'diag' just the observed
    variances, for 'spherical' the variance itself) is factorized once per component;
    there is no latent variable per missing cell (PyMC's automatic imputation would
    add one), so NUTS samples the same parameters as without NaN. ``x`` keeps the NaN
    in its observed data (as a constant; the likelihood never reads those cells), and
    its pointwise log density, hence ``log_likelihood`` and :func:`arviz.loo`, is the
    observed-data log-likelihood of each row, in the row order of ``X``. Without NaN
    the graph is exactly the complete-data one.

    **Changing the model.** The result is an ordinary ``pm.Model``: add variables
    inside ``with model:``. To replace a prior, build the model with that part set to
    ``None`` (flat) and add the new log density as a ``pm.Potential``, e.g. a
    hyperprior on the conjugate shrinkage :math:`\kappa_0`::

        prior = GMMPrior.default(X, 2)
        model = build_model(X, 2, prior=GMMPrior(prior.weights, None, prior.covariances))
        with model:
            kappa = pm.Gamma("kappa", alpha=2.0, beta=100.0)
            m0 = prior.means.mean
            chol = pt.linalg.cholesky(model["covariances"]) / pt.sqrt(kappa)
            means_logp = pm.logp(pm.MvNormal.dist(mu=m0, chol=chol), model["means"])
            pm.Potential("means_prior", means_logp.sum())

    or Student-t means, ``pm.Potential("means_prior", pm.logp(pm.StudentT.dist(nu=4,
    mu=m0, sigma=10.0), model["means"]).sum())``. A ``pm.Potential`` enters the
    model's logp (and NUTS) but not ``log_likelihood``, nor prior predictive draws.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.bayes import build_model
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (20, 2)), rng.normal(3, 1, (20, 2))])
    >>> model = build_model(X, 2, covariance_type="diag")
    >>> sorted(model.named_vars_to_dims.items())  # doctest: +NORMALIZE_WHITESPACE
    [('covariances', ('component', 'feature')), ('means', ('component', 'feature')),
     ('weights', ('component',)), ('x', ('obs', 'feature'))]
    >>> sorted(model.initial_point())  # value variables: log variances, simplex weights
    ['covariances_log__', 'means', 'weights_simplex__']
    >>> logp = model.compile_logp(jacobian=False)
    >>> bool(np.isfinite(logp(model.initial_point())))
    True
    """
    data, features, index = _check_data(X)
    n_components = _check_n_components(n_components)
    symbolic = check_posterior_type(covariance_type)
    prior = _resolve_prior(prior, data, n_components, covariance_type)

    coords = {
        "component": list(range(n_components)),
        "feature": features,
        "feature_bis": list(features),
        "obs": index,
    }
    with pm.Model(coords=coords) as model:
        parameters = _parameter_rvs(symbolic, prior, data, n_components)
        masked = _masked_rows(data) if has_missing(data) else None
        # a shared variable, not an array (PyMC would impute the NaN of an array, one
        # latent variable per missing cell) nor pm.Data (which refuses NaN): the data
        # are an input of the compiled logp, swapped without recompiling
        observed = pytensor.shared(data, name="x_data")
        _likelihood_rv(symbolic, parameters, observed, masked)
    return model
