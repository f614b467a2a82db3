r"""The posterior's log density and its gradient, hand-written in numba, for nutpie.

The PyMC model of :func:`bayesgmm.bayes.build_model` compiled by nutpie costs tens of
seconds of numba compilation for every new data set (the data are constants of the
PyTensor graph, and its ~120 nodes each compile separately). This module writes the same
density in the same unconstrained parameterization as one numba function per covariance
type, with its gradient derived by hand, and hands it to nutpie as a C callback:

- it is compiled once per covariance type and cached on disk (``cache=True``), so a new
  process loads it in well under a second;
- the data and every hyperparameter are *inputs*, packed into one float64 buffer that
  nutpie passes to the callback: a new data set (any N, D or K), a new prior or new
  hyperparameters never recompile.

The parameterization is PyMC's (so the density is exactly ``model.logp()`` of
``build_model``, Jacobians included; the tests check value and gradient against it):

- weights: PyMC's ``simplex`` transform, ``K - 1`` reals (centered log-ratio, last
  coordinate dropped); its log-Jacobian is :math:`\log K + \sum_k \log \pi_k`;
- means: as they are, ``K x D`` (row-major);
- 'full' / 'tied' covariances: :class:`~pymc.distributions.transforms.CholeskyCovTransform`
  per matrix, the packed lower Cholesky factor ``L`` (row-major lower triangle) with a
  log diagonal; log-Jacobian :math:`D\log 2 + \sum_i (D - i + 1) \log L_{ii}` (0-based
  ``i``). The density is evaluated *on the factor*: one triangular solve per block of
  rows and component (vectorized over the rows, see ``_kernel_numba``), no Cholesky
  decomposition and no matrix inverse;
- 'diag' / 'spherical' variances: the log transform; EII and EEI (mclust's shared
  variance, shared diagonal): the log of the shared variance(s) only, once;
- VEI / EVI: the log-shape(s) on PyMC's zero-sum transform (``D - 1`` reals per
  shape), then the log volume(s). Their kernel maps these to the per-component log
  variances, calls the 'diag' kernel, and chains the gradient back (the prior is the
  'diag' one at the family's variances; only the Jacobian differs).

The vector's layout and the NumPy maps are :mod:`bayesgmm.core.unconstrained`'s (shared
with the Laplace approximation): :func:`to_unconstrained`, :func:`to_constrained`.

Gradients. With :math:`z = L^{-1}(x - \mu)`, the derivative of
:math:`-\tfrac12\|z\|^2` with respect to ``L`` is the lower triangle of
:math:`L^{-T} z z^T`, and with respect to :math:`\mu` it is :math:`L^{-T} z`. Every term
of the density (likelihood weighted by responsibilities, conjugate mean prior,
inverse-Wishart trace term :math:`\|L^{-1}B\|_F^2`) is of this form plus multiples of
:math:`\log L_{ii}`, so the kernel accumulates one matrix ``A`` and one coefficient per
factor and finishes with one triangular solve.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.special import gammaln, multigammaln

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.unconstrained import unconstrained_layout
from bayesgmm.priors import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior

__all__ = ["SUPPORTED_TYPES", "KernelModel", "make_kernel_model", "supports"]

SUPPORTED_TYPES = ("full", "tied", "diag", "spherical", "EII", "EEI", "VEI", "EVI")
# the diagonal kernel's variant of each diagonal type (buffer header, ``buf[9]``); VEI
# and EVI use the 'diag' buffer: their kernel maps volumes and log-shapes to the
# per-component variances and calls the 'diag' kernel (``logp_volume_shape``)
_DIAGONAL_VARIANT = {"diag": 0, "spherical": 1, "EEI": 2, "EII": 3, "VEI": 0, "EVI": 0}
# the numba kernel (``_kernel_numba.cfunc_for`` kind) of each type
_KERNEL_KIND = {
    "full": "spd", "tied": "spd", "diag": "diagonal", "spherical": "diagonal",
    "EII": "diagonal", "EEI": "diagonal", "VEI": "vei", "EVI": "evi",
}  # fmt: skip


def _canonical(covariance_type: str) -> str:
    """The core table's name of a type: mclust's aliases (VVV, EEE, VVI, VII, E, V)
    take the same kernel as the names they alias."""
    try:
        return get_covariance_model(covariance_type).name
    except ValueError:
        return covariance_type


_LOG_2PI = math.log(2.0 * math.pi)
# header of the buffer: total length, N, D, K, mean form (0 flat, 1 conjugate,
# 2 independent), covariance prior (0 flat, 1 inverse-Wishart / inverse-gamma),
# additive constant, kappa0, nu0, variant (1: tied; diagonal: _DIAGONAL_VARIANT)
_HEADER = 10


# --------------------------------------------------------------------------------------
# Packing: data and hyperparameters into one buffer (the "user data" nutpie passes)
# --------------------------------------------------------------------------------------


def cov_size(covariance_type: str, n_components: int, n_features: int) -> int:
    """Length of the covariances' unconstrained vector."""
    return n_dim(covariance_type, n_components, n_features) - n_components * (n_features + 1) + 1


def n_dim(covariance_type: str, n_components: int, n_features: int) -> int:
    """Length of the unconstrained parameter vector."""
    return unconstrained_layout(n_components, n_features, covariance_type).size


# The prior records (and their fields) the kernel implements. A prior form added
# elsewhere (a new record type, or a new field on one of these) is not silently
# ignored: `supports` returns False and the estimator samples the PyMC model instead.
_KNOWN_FIELDS = {
    GMMPrior: ("weights", "means", "covariances"),
    DirichletPrior: ("alpha",),
    NormalMeanPrior: ("mean", "shrinkage", "covariance"),
    CovariancePrior: ("dof", "scale"),
}


def _known(record) -> bool:
    if record is None:
        return True
    # Descriptive fields (a prior's name and note: compare=False) do not change the density.
    fields = _KNOWN_FIELDS.get(type(record))
    defining = tuple(f.name for f in dataclasses.fields(record) if f.compare)
    return fields is not None and defining == fields


def supports(prior: GMMPrior, covariance_type: str) -> bool:
    """Whether the kernel covers this prior form and covariance type (else: PyMC)."""
    covariance_type = _canonical(covariance_type)
    if covariance_type not in SUPPORTED_TYPES or type(prior) is not GMMPrior:
        return False
    if not all(_known(r) for r in (prior, prior.weights, prior.means, prior.covariances)):
        return False
    return prior.means is None or prior.means.form in ("conjugate", "independent")


def pack(X: np.ndarray, prior: GMMPrior, covariance_type: str, n_components: int) -> np.ndarray:
    """The buffer: header, ``X`` feature-major (``X.T``, D*N), alpha (K), m0 (D),
    P0 (D*D), the covariance prior's scale (B (D*D) for full/tied: its Cholesky factor;
    b (D) for diag, b (1) for spherical: half the scale)."""
    covariance_type = _canonical(covariance_type)
    n, d = X.shape
    k = n_components
    table = get_covariance_model(covariance_type)
    alpha = (prior.weights.concentration(k) if prior.weights is not None else np.ones(k)).astype(
        float
    )
    const = gammaln(alpha.sum()) - gammaln(alpha).sum() + math.log(k)  # Dirichlet, simplex
    const -= 0.5 * n * d * _LOG_2PI  # likelihood
    spd = covariance_type in ("full", "tied")
    n_mats = k if covariance_type == "full" else 1
    if spd:
        const += n_mats * d * math.log(2.0)  # CholeskyCovTransform's D log 2
    m0, P0, kappa0 = np.zeros(d), np.zeros((d, d)), 0.0
    mean_form = 0
    if prior.means is not None:
        m0 = np.asarray(prior.means.mean, dtype=float).reshape(d)
        if prior.means.form == "conjugate":
            mean_form = 1
            kappa0 = float(prior.means.shrinkage)
            const += k * d * (0.5 * math.log(kappa0) - 0.5 * _LOG_2PI)
        else:
            mean_form = 2
            S0 = np.asarray(prior.means.covariance, dtype=float).reshape(d, d)
            chol = np.linalg.cholesky(S0)
            P0 = np.linalg.inv(S0)  # D x D, once: the kernel needs the quadratic form
            const += k * (-0.5 * d * _LOG_2PI - np.log(np.diag(chol)).sum())
    nu = 0.0
    cov_prior = 0
    if spd:
        scale = np.zeros((d, d))
    elif covariance_type == "spherical":
        scale = np.zeros(1)
    else:
        scale = np.zeros(d)
    if prior.covariances is not None:
        cov_prior = 1
        nu = float(prior.covariances.dof)
        psi = table.prior_scale(nu, prior.covariances.scale, d)
        if spd:
            B = np.linalg.cholesky(np.asarray(psi, dtype=float))
            scale = B
            const += n_mats * (
                nu * np.log(np.diag(B)).sum()
                - 0.5 * nu * d * math.log(2.0)
                - multigammaln(0.5 * nu, d)
            )
        else:
            b = 0.5 * np.atleast_1d(np.asarray(psi, dtype=float))
            scale = b
            a = 0.5 * nu
            # inverse-gamma factors: K*D (diag, and VEI, EVI: one per variance at the
            # family's variances), K (spherical), D (EEI, EII: the shared variance(s)
            # carry the prior once; EII one factor per feature)
            per = {"spherical": k, "EEI": d, "EII": d}.get(covariance_type, k * d)
            const += (per // b.size) * np.sum(a * np.log(b) - gammaln(a))
    variant = float(covariance_type == "tied" if spd else _DIAGONAL_VARIANT[covariance_type])
    header = np.array(
        [0.0, n, d, k, mean_form, cov_prior, const, kappa0, nu, variant], dtype=np.float64
    )
    # X feature-major (X^T, D x N): the kernels' loops run over contiguous rows
    buf = np.concatenate([header, X.T.ravel(), alpha, m0, P0.ravel(), np.ravel(scale)]).astype(
        np.float64
    )
    buf[0] = buf.size
    return np.ascontiguousarray(buf)


def pack_missing(
    X: np.ndarray, prior: GMMPrior, covariance_type: str, n_components: int
) -> np.ndarray:
    """The buffer of data with NaN (missing at random): :func:`pack` of the complete
    rows (the kernels' blocked path reads it unchanged), then a trailer with the other
    rows grouped by missingness pattern (:func:`~bayesgmm.core.missing.missing_patterns`):
    the number of patterns, then per pattern its number of observed coordinates ``p``,
    of rows ``n``, the ``p`` observed indices and the rows' observed values (``p * n``,
    feature-major like the complete rows); the last entry is the trailer's offset.
    Each such row contributes its density of the observed coordinates
    (``_kernel_numba._missing_spd`` / ``_missing_diagonal``); its ``-p log(2 pi) / 2``
    is added to the constant ``buf[6]``. A row with no observed value contributes
    nothing (density 1)."""
    from bayesgmm.core.missing import missing_patterns

    observed = ~np.isnan(X)
    complete = observed.all(axis=1)
    head = pack(X[complete], prior, covariance_type, n_components)
    partial = X[~complete & observed.any(axis=1)]
    parts = []
    n_cells = 0
    if partial.shape[0]:
        patterns = missing_patterns(partial)
        for pattern, rows in zip(patterns.patterns, patterns.rows, strict=True):
            o = np.flatnonzero(pattern)
            parts += [[o.size, rows.size], o, partial[np.ix_(rows, o)].T.ravel()]
            n_cells += o.size * rows.size
    trailer = np.concatenate([[len(parts) // 3], *parts]).astype(np.float64)
    head[6] -= 0.5 * n_cells * _LOG_2PI
    buf = np.concatenate([head, trailer, [head.size]])
    buf[0] = buf.size
    return np.ascontiguousarray(buf)


# --------------------------------------------------------------------------------------
# Unconstrained <-> constrained (NumPy, vectorized over draws)
# --------------------------------------------------------------------------------------


def to_unconstrained(params: dict, covariance_type: str) -> np.ndarray:
    """(weights, means, covariances) in scikit-learn's shapes -> the flat vector (the
    layout of :func:`bayesgmm.core.unconstrained.unconstrained_layout`)."""
    means = np.asarray(params["means"], dtype=float)
    layout = unconstrained_layout(*means.shape, covariance_type)
    return layout.forward(params["weights"], means, params["covariances"])


def to_constrained(theta: np.ndarray, covariance_type: str, n_components: int, n_features: int):
    """Flat vectors (..., n_dim) -> weights (..., K), means (..., K, D), covariances."""
    layout = unconstrained_layout(n_components, n_features, covariance_type)
    return layout.backward(np.asarray(theta, dtype=float))


# --------------------------------------------------------------------------------------
# The numba kernels
# --------------------------------------------------------------------------------------


def _kind(covariance_type: str, missing: bool) -> str:
    """The numba callback's kind: the type's, with '_missing' for a buffer of data
    with NaN (:func:`pack_missing`)."""
    return _KERNEL_KIND[_canonical(covariance_type)] + ("_missing" if missing else "")


def logp_and_grad(theta: np.ndarray, buf: np.ndarray, covariance_type: str, missing=False):
    """The kernel called from Python (tests, starting points): (logp, gradient).
    ``missing``: ``buf`` is :func:`pack_missing`'s."""
    from bayesgmm.bayes import _kernel_numba as kn

    theta = np.ascontiguousarray(theta, dtype=np.float64)
    return kn.evaluate(_kind(covariance_type, missing), theta, buf)


def prefetch(covariance_type: str, missing: bool = False) -> None:
    """Start compiling the kernel of ``covariance_type`` (``missing``: its callback for
    data with NaN) in a child process if numba's disk cache lacks it
    (:func:`bayesgmm.bayes._kernel_numba.start_compiling`), so that it compiles while
    the caller fits the MAP start."""
    from bayesgmm.bayes import _kernel_numba as kn

    kn.start_compiling(_kind(covariance_type, missing))


def _cfuncs(covariance_type: str, missing: bool = False):
    """nutpie's C callbacks (logp + gradient, expand) for one covariance type (and
    data with NaN or not: another callback, compiled on first use)."""
    from bayesgmm.bayes import _kernel_numba as kn

    return kn.cfunc_for(_kind(covariance_type, missing)), kn.cfunc_for("expand")


# --------------------------------------------------------------------------------------
# The nutpie model
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KernelModel:
    """A nutpie-ready model: the compiled callbacks (shared by every model of the
    same covariance type, one set for data with NaN: ``missing``) and this data set's
    buffer."""

    covariance_type: str
    n_components: int
    n_features: int
    buffer: np.ndarray
    missing: bool = False

    @property
    def n_dim(self) -> int:
        return n_dim(self.covariance_type, self.n_components, self.n_features)

    def logp_and_grad(self, theta: np.ndarray):
        return logp_and_grad(theta, self.buffer, self.covariance_type, self.missing)

    def compiled(self, start: np.ndarray):
        """A ``nutpie.compile_pymc.CompiledPyMCModel`` that starts at ``start``."""
        from nutpie.compile_pymc import CompiledPyMCModel

        logp_c, expand_c = _cfuncs(self.covariance_type, self.missing)
        dim = self.n_dim
        start = np.array(start, dtype=np.float64, copy=True)

        def initial_point(seed=None):
            return start.copy()

        shape_info = (["theta"], [slice(0, dim)], [(dim,)])
        return CompiledPyMCModel(
            _n_dim=dim,
            dims={"theta": ["unconstrained_parameter"]},
            _coords={"unconstrained_parameter": np.arange(dim)},
            _shapes={"theta": (dim,)},
            compiled_logp_func=logp_c,
            compiled_expand_func=expand_c,
            initial_point_func=initial_point,
            shared_data={},
            shared_var_keys={},
            user_data=self.buffer,
            n_expanded=dim,
            shape_info=shape_info,
            logp_func=None,
            expand_func=None,
        )


def make_kernel_model(
    X: np.ndarray, prior: GMMPrior, covariance_type: str, n_components: int
) -> KernelModel:
    """The kernel model of data ``X`` (N, D) under ``prior``. NaN marks a missing value:
    each row's density is then that of its observed coordinates, the missing ones
    integrated out (:func:`pack_missing`; the density of ``build_model``'s masked
    likelihood)."""
    covariance_type = _canonical(covariance_type)
    X = np.ascontiguousarray(X, dtype=np.float64)
    missing = bool(np.isnan(X).any())
    buf = (pack_missing if missing else pack)(X, prior, covariance_type, n_components)
    return KernelModel(covariance_type, n_components, X.shape[1], buf, missing)
