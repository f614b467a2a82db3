r"""Conjugate priors for Gaussian mixtures (Fraley & Raftery 2007, as in mclust).

One :class:`GMMPrior` drives both the MAP fit (``GaussianMixture(prior=...)``) and the
PyMC model, so the MAP estimate is the mode of the posterior that NUTS samples.

Per component ``k`` in ``d`` dimensions:

- weights: :math:`\pi \sim \mathrm{Dirichlet}(\alpha)` (:class:`DirichletPrior`);
- means, one of two forms (:class:`NormalMeanPrior`):

  - conjugate ("shrinkage"): :math:`\mu_k \mid \Sigma_k \sim N(m_0, \Sigma_k/\kappa_0)`;
  - independent: :math:`\mu_k \sim N(m_0, S_0)`;

- covariances (:class:`CovariancePrior`): :math:`\Sigma_k \sim
  \mathrm{InvWishart}(\nu_0, \Psi_0)` for 'full' (one shared draw for 'tied'), and
  :math:`\sigma^2 \sim \mathrm{InvGamma}(\nu_0/2, \psi_0/2)` for each variance of
  'diag' and 'spherical' (the one-dimensional inverse-Wishart).

Any part may be left out (``None``): that part then has a flat prior and its update is
the maximum-likelihood one.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln

from bayesgmm._validation import spd_problem
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.missing import observed_moments

__all__ = ["CovariancePrior", "DirichletPrior", "GMMPrior", "NormalMeanPrior"]

_LOG_2PI = np.log(2.0 * np.pi)


def _positive_scalar(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a real number; got {value!r}.")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be finite and > 0; got {value!r}.")
    return float(value)


def _finite_array(name: str, value, ndim: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be numeric; got {value!r}.") from None
    if arr.ndim not in ndim:
        raise ValueError(
            f"`{name}` must have {' or '.join(map(str, ndim))} dimensions; got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    arr.setflags(write=False)
    return arr


def _check_spd(name: str, matrix: np.ndarray) -> None:
    # Judged on the correlation form, so matrices in mixed units are not rejected.
    problem = spd_problem(matrix)
    if problem == "not symmetric" or (problem or "").startswith("not a square"):
        raise ValueError(f"`{name}` must be a symmetric matrix; got shape {matrix.shape}.")
    if problem is not None:
        raise ValueError(f"`{name}` must be positive definite; it is {problem}.")


@dataclass(frozen=True)
class DirichletPrior:
    r"""Dirichlet prior on the mixing weights.

    .. math:: p(\pi) = \frac{\Gamma(\sum_k \alpha_k)}{\prod_k \Gamma(\alpha_k)}
              \prod_k \pi_k^{\alpha_k - 1}

    Parameters
    ----------
    alpha : float or array-like of shape (K,), default=1.0
        Concentration, > 0. ``1`` is flat (MAP weights equal the MLE weights); larger
        values pull the weights towards equality. The MAP update
        ``pi_k = (n_k + alpha_k - 1) / (N + sum(alpha) - K)`` needs ``alpha >= 1``.

    Examples
    --------
    >>> import numpy as np
    >>> round(DirichletPrior(2.0).log_prob(np.array([0.5, 0.5])), 6)  # Beta(2, 2) at 0.5
    0.405465
    """

    alpha: float | np.ndarray = 1.0

    def __post_init__(self) -> None:
        alpha = _finite_array("alpha", self.alpha, (0, 1))
        if np.any(alpha <= 0):
            raise ValueError(f"Dirichlet `alpha` must be > 0; got {self.alpha!r}.")
        object.__setattr__(self, "alpha", float(alpha) if alpha.ndim == 0 else alpha)

    def concentration(self, n_components: int) -> np.ndarray:
        """``alpha`` as an array of shape (K,)."""
        if np.ndim(self.alpha) == 0:
            return np.full(n_components, float(self.alpha))
        if len(self.alpha) != n_components:
            raise ValueError(
                f"Dirichlet `alpha` has {len(self.alpha)} entries but the model has "
                f"{n_components} components."
            )
        return np.asarray(self.alpha, dtype=float)

    def log_prob(self, weights: np.ndarray) -> float:
        """Log Dirichlet density of ``weights`` (K,)."""
        alpha = self.concentration(len(weights))
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
        terms = np.where(alpha == 1.0, 0.0, (alpha - 1.0) * log_w)
        return float(gammaln(alpha.sum()) - gammaln(alpha).sum() + terms.sum())


@dataclass(frozen=True)
class NormalMeanPrior:
    r"""Normal prior on the component means, in its conjugate or independent form.

    Give exactly one of ``shrinkage`` (conjugate) and ``covariance`` (independent):

    - conjugate: :math:`\mu_k \mid \Sigma_k \sim N(m_0, \Sigma_k / \kappa_0)`, MAP
      update :math:`\mu_k = (n_k \bar x_k + \kappa_0 m_0) / (n_k + \kappa_0)`;
    - independent: :math:`\mu_k \sim N(m_0, S_0)`, MAP (ECM) update
      :math:`\mu_k = (S_0^{-1} + n_k\Sigma_k^{-1})^{-1}(S_0^{-1} m_0 + n_k\Sigma_k^{-1}
      \bar x_k)` — the textbook known-variance posterior mean, per component.

    Parameters
    ----------
    mean : array-like of shape (D,)
        Prior mean ``m0``.
    shrinkage : float, optional
        ``kappa0 > 0`` (mclust's default 0.01): the prior is worth ``kappa0`` points.
    covariance : float, array-like of shape (D,) or (D, D), optional
        ``S0``: a variance (times the identity), variances, or an SPD matrix.

    Examples
    --------
    >>> prior = NormalMeanPrior.independent([0.0], covariance=4.0)
    >>> prior.form, prior.covariance.tolist()
    ('independent', [[4.0]])
    """

    mean: np.ndarray
    shrinkage: float | None = None
    covariance: np.ndarray | None = None

    def __post_init__(self) -> None:
        mean = _finite_array("mean", self.mean, (0, 1))
        mean = mean.reshape(-1)
        mean.setflags(write=False)
        object.__setattr__(self, "mean", mean)
        if (self.shrinkage is None) == (self.covariance is None):
            raise ValueError(
                "NormalMeanPrior needs exactly one of `shrinkage` (conjugate form, "
                "mu_k | Sigma_k ~ N(m0, Sigma_k / shrinkage)) and `covariance` "
                "(independent form, mu_k ~ N(m0, covariance))."
            )
        if self.shrinkage is not None:
            object.__setattr__(self, "shrinkage", _positive_scalar("shrinkage", self.shrinkage))
            return
        cov = _finite_array("covariance", self.covariance, (0, 1, 2))
        d = mean.shape[0]
        if cov.ndim < 2:
            if np.any(cov <= 0):
                raise ValueError("`covariance` variances must be > 0.")
            cov = np.diag(np.broadcast_to(cov, (d,)).astype(float))
        if cov.shape != (d, d):
            raise ValueError(f"`covariance` must be ({d}, {d}) to match `mean`; got {cov.shape}.")
        _check_spd("covariance", cov)
        cov.setflags(write=False)
        object.__setattr__(self, "covariance", cov)

    @classmethod
    def conjugate(cls, mean, shrinkage: float = 0.01) -> NormalMeanPrior:
        """The conjugate (shrinkage) form, ``mu_k | Sigma_k ~ N(mean, Sigma_k/shrinkage)``."""
        return cls(mean=mean, shrinkage=shrinkage)

    @classmethod
    def independent(cls, mean, covariance) -> NormalMeanPrior:
        """The independent form, ``mu_k ~ N(mean, covariance)``."""
        return cls(mean=mean, covariance=covariance)

    @property
    def form(self) -> str:
        """``'conjugate'`` or ``'independent'``."""
        return "conjugate" if self.shrinkage is not None else "independent"

    def shifted(self, shift: np.ndarray) -> NormalMeanPrior:
        """The same prior for data translated by ``-shift``."""
        return NormalMeanPrior(self.mean - shift, self.shrinkage, self.covariance)

    def log_prob(
        self, means: np.ndarray, precisions_cholesky: np.ndarray, covariance_type: str
    ) -> float:
        """Log density of ``means`` (K, D); the conjugate form needs the components'
        precision Cholesky factors (in the shape of ``covariance_type``)."""
        model = get_covariance_model(covariance_type)
        if self.form == "conjugate":
            # N(mu_k | m0, Sigma_k / kappa) = N(m0 | mu_k, Sigma_k / kappa)
            scaled = precisions_cholesky * np.sqrt(self.shrinkage)
            return float(model.log_gaussian(self.mean[None, :], means, scaled).sum())
        full = get_covariance_model("full")
        prec_chol = full.precision_cholesky(self.covariance[None])
        return float(full.log_gaussian(means, self.mean[None, :], prec_chol).sum())


@dataclass(frozen=True)
class CovariancePrior:
    r"""Inverse-Wishart prior on covariances (inverse-gamma per variance when diagonal).

    For 'full' each :math:`\Sigma_k \sim \mathrm{InvWishart}(\nu_0, \Psi_0)`; for 'tied'
    the shared :math:`\Sigma` does. For 'diag' each variance
    :math:`\sigma^2_{kj} \sim \mathrm{InvGamma}(\nu_0/2, \psi_{0j}/2)` and for 'spherical'
    each :math:`\sigma^2_k \sim \mathrm{InvGamma}(\nu_0/2, \psi_0/2)` — the
    one-dimensional inverse-Wishart, so one ``dof`` means the same in every type.

    Parameters
    ----------
    dof : float
        ``nu0`` > 0 (> d - 1 for a proper inverse-Wishart). mclust's default is d + 2.
    scale : float, array-like of shape (D,) or (D, D)
        ``Psi0``: an SPD matrix for 'full'/'tied'; a variance scale for 'spherical';
        one per feature (or one for all) for 'diag'.

    Examples
    --------
    >>> import numpy as np
    >>> prior = CovariancePrior(dof=3.0, scale=2.0)
    >>> round(prior.log_prob(np.array([1.0]), "spherical", 1), 6)  # InvGamma(1.5, 1) at 1
    -0.879218
    """

    dof: float
    scale: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dof", _positive_scalar("dof", self.dof))
        if self.scale is None:
            raise ValueError("CovariancePrior needs a `scale` (Psi0).")
        scale = _finite_array("scale", self.scale, (0, 1, 2))
        if scale.ndim == 2:
            _check_spd("scale", scale)
        elif np.any(scale <= 0):
            raise ValueError(f"`scale` must be > 0; got {self.scale!r}.")
        object.__setattr__(self, "scale", scale)

    def check(self, covariance_type: str, n_features: int) -> None:
        """Raise ``ValueError`` if the prior does not fit the model."""
        get_covariance_model(covariance_type).prior_scale(self.dof, self.scale, n_features)

    def log_prob(self, covariances: np.ndarray, covariance_type: str, n_features: int) -> float:
        """Log prior density of ``covariances`` in the shape of ``covariance_type``."""
        model = get_covariance_model(covariance_type)
        scale = model.prior_scale(self.dof, self.scale, n_features)
        return model.log_prior(covariances, self.dof, scale)


#: Smallest eigenvalue of the correlation matrix below which the data covariance is
#: treated as singular (unit-free: the correlation matrix has ones on its diagonal).
_SINGULAR_CORRELATION = 1e-12


def _check_data_covariance(X: np.ndarray, cov: np.ndarray, feature_names) -> None:
    """Raise ``ValueError`` naming the constant or collinear features, if any.

    Scale-invariant: a column is constant when its range is at the rounding level of
    its own values, and singularity is judged on the correlation matrix.
    """
    n_rows, n_features = X.shape
    names = (
        [str(f) for f in feature_names]
        if feature_names is not None
        else [f"column {j}" for j in range(n_features)]
    )
    # NaN-aware (missing values): judged on each column's observed values.
    value_range = np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
    magnitude = np.nanmax(np.abs(X), axis=0)
    constant = np.flatnonzero(value_range <= 64 * np.finfo(float).eps * magnitude)
    if constant.size:
        first = np.nanmin(X, axis=0)
        which = ", ".join(f"{names[j]!r} (every row {first[j]:.6g})" for j in constant)
        raise ValueError(
            f"The default prior's scale is the data covariance, which is singular here: "
            f"constant feature(s) {which}. A constant feature carries no information "
            "for clustering; drop it, or give a GMMPrior with an explicit CovariancePrior."
        )
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    eigvals, eigvecs = np.linalg.eigh(0.5 * (corr + corr.T))
    if eigvals[0] > _SINGULAR_CORRELATION:
        return
    n_distinct = len(np.unique(X, axis=0)) if n_rows <= 100_000 else n_rows
    if n_distinct <= n_features:
        reason = (
            f"only {n_distinct} distinct rows for {n_features} features (the covariance "
            f"of n points has rank at most n - 1). Use more data or fewer features"
        )
    else:
        loadings = np.abs(eigvecs[:, 0])
        involved = [names[j] for j in np.flatnonzero(loadings >= 0.1 * loadings.max())]
        reason = (
            f"the features {', '.join(map(repr, involved))} are collinear (one is a "
            "linear combination of the others, up to rounding). Drop or combine the "
            "redundant features"
        )
    raise ValueError(
        "The default prior's scale is the data covariance, which is singular here "
        f"({n_rows} rows, {n_features} features): {reason}, or give a GMMPrior with an "
        "explicit CovariancePrior."
    )


@dataclass(frozen=True)
class GMMPrior:
    r"""Prior on all the parameters of a Gaussian mixture; any part may be ``None``.

    Parameters
    ----------
    weights : DirichletPrior, optional
    means : NormalMeanPrior, optional
    covariances : CovariancePrior, optional

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.datasets import load_faithful
    >>> prior = GMMPrior.default(load_faithful(), n_components=3, covariance_type="full")
    >>> prior.means.shrinkage, prior.covariances.dof
    (0.01, 4.0)
    """

    weights: DirichletPrior | None = None
    means: NormalMeanPrior | None = None
    covariances: CovariancePrior | None = None

    def __post_init__(self) -> None:
        for name, kind in (
            ("weights", DirichletPrior),
            ("means", NormalMeanPrior),
            ("covariances", CovariancePrior),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(
                    f"GMMPrior `{name}` must be a {kind.__name__} or None; got "
                    f"{type(value).__name__}."
                )

    @classmethod
    def default(
        cls,
        X,
        n_components: int,
        covariance_type: str = "full",
        *,
        sample_weight=None,
        shrinkage: float = 0.01,
        alpha: float = 1.0,
        feature_names=None,
    ) -> GMMPrior:
        r"""mclust's ``defaultPrior`` (Fraley & Raftery 2007), plus a Dirichlet on weights.

        - ``m0`` = column means of ``X``; ``kappa0`` = ``shrinkage`` (0.01);
        - ``nu0`` = d + 2;
        - ``Psi0`` = cov(X) / K^(2/d) for 'full' and 'tied'; for 'diag' and
          'spherical' the average variance ``trace(cov(X)) / d`` times
          :math:`(1/K)^{2/d}`; in one dimension var(X) / K^2 with nu0 = 3.
        - weights: Dirichlet(``alpha``), flat by default (mclust has no weight prior).

        ``cov`` uses the ``n - 1`` denominator, as R's ``var``. With NaN in ``X``
        (missing at random), ``m0`` and ``cov`` are the mean and covariance of one
        Gaussian fitted by EM to the observed values
        (:func:`bayesgmm.core.missing.observed_moments`). ``sample_weight`` are
        frequency weights (the prior equals the one for repeated rows).
        ``feature_names`` (taken from a DataFrame's columns when not given) name the
        features in errors.

        The prior needs a nonsingular data covariance. That is judged on the
        correlation matrix, so it does not depend on the units of the features:
        columns such as income (~8e4) and a rate (~0.05) are fine. A column that is
        constant (to rounding) is named in the error, as are collinear features.
        For 'full' and 'tied' the prior is equivariant: rescaling a feature by ``c``
        rescales ``m0`` and ``Psi0`` accordingly, so the MAP fit transforms exactly.
        For 'diag' and 'spherical' mclust's single average variance is not: with
        features in very different units it is dominated by the largest variance,
        so standardize the data or give a per-feature ``CovariancePrior(scale=...)``.
        """
        if feature_names is None and hasattr(X, "columns"):
            feature_names = [str(c) for c in X.columns]
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2:
            raise ValueError(
                f"GMMPrior.default needs a 2-D array with at least 2 rows; got shape {X.shape}."
            )
        model = get_covariance_model(covariance_type)
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
        n_features = X.shape[1]
        # With NaN: the mean and covariance of one Gaussian fitted to the observed
        # values (maximum likelihood under missing at random).
        mean, cov = observed_moments(X, w)
        _check_data_covariance(X[w > 0], cov, feature_names)
        factor = (1.0 / n_components) ** (2.0 / n_features)
        scale = model.default_prior_scale(cov) * factor
        return cls(
            weights=DirichletPrior(alpha),
            means=NormalMeanPrior.conjugate(mean, shrinkage),
            covariances=CovariancePrior(dof=n_features + 2.0, scale=scale),
        )

    def check(self, n_components: int, n_features: int, covariance_type: str) -> None:
        """Raise ``ValueError`` naming the part that does not fit the model."""
        get_covariance_model(covariance_type).check_prior_support()
        if self.weights is not None:
            alpha = self.weights.concentration(n_components)
            if np.any(alpha < 1):
                raise ValueError(
                    "A MAP fit needs Dirichlet alpha >= 1: with alpha < 1 the posterior "
                    "mode of the weights is on the boundary (a weight of 0). Use alpha >= 1, "
                    "or the full posterior."
                )
        if self.means is not None and self.means.mean.shape != (n_features,):
            raise ValueError(
                f"The means prior has mean of shape {self.means.mean.shape}; the data have "
                f"{n_features} features."
            )
        if self.covariances is not None:
            self.covariances.check(covariance_type, n_features)

    def shifted(self, shift: np.ndarray) -> GMMPrior:
        """The same prior for data translated by ``-shift`` (only ``m0`` moves)."""
        if self.means is None:
            return self
        return GMMPrior(self.weights, self.means.shifted(shift), self.covariances)

    def log_prob(self, params, covariance_type: str) -> float:
        """Log prior density at ``params`` (a :class:`~bayesgmm.core.params.GMMParams`),
        every normalizing constant included."""
        total = 0.0
        if self.weights is not None:
            total += self.weights.log_prob(params.weights)
        if self.means is not None:
            total += self.means.log_prob(params.means, params.precisions_cholesky, covariance_type)
        if self.covariances is not None:
            total += self.covariances.log_prob(
                params.covariances, covariance_type, params.means.shape[1]
            )
        return total
