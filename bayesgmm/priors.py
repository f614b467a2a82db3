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

Two priors are built from the data by name (``prior=`` of the estimators and of
:func:`bayesgmm.bayes.build_model`; :func:`resolve_prior`):

- ``'pooled'`` (:meth:`GMMPrior.pooled`), also ``'default'``: empirical Bayes; the
  covariance prior's mode is the pooled within-component covariance of a preliminary
  MAP fit, with mclust's degrees of freedom;
- ``'mclust'`` (:meth:`GMMPrior.mclust`): mclust's ``defaultPrior`` exactly.

``'default'`` is the pooled prior because it was as good as or better than both maximum
likelihood and mclust's prior in every cell of ``benchmarks/bench_small_data.py``
(see the user guide's prior page for the table).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln

from bayesgmm._validation import spd_problem
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.missing import observed_moments

__all__ = [
    "PRIOR_NAMES",
    "CovariancePrior",
    "DirichletPrior",
    "GMMPrior",
    "NormalMeanPrior",
    "resolve_prior",
]

#: The priors built from the data by name; ``'default'`` is an alias of ``'pooled'``.
PRIOR_NAMES: tuple[str, ...] = ("default", "pooled", "mclust")

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


def _check_data_covariance(
    X: np.ndarray, cov: np.ndarray, feature_names, *, collinear: bool = True
) -> None:
    """Raise ``ValueError`` naming the constant or (with ``collinear``) collinear
    features, if any.

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
            f"The prior's scale is built from the data covariance, which is singular here: "
            f"constant feature(s) {which}. A constant feature carries no information "
            "for clustering; drop it, or give a GMMPrior with an explicit CovariancePrior."
        )
    if not collinear:
        return
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
        "mclust's prior's scale is the data covariance, which is singular here "
        f"({n_rows} rows, {n_features} features): {reason}, or give a GMMPrior with an "
        "explicit CovariancePrior (or prior='pooled', which needs only nonconstant "
        "features)."
    )


@dataclass(frozen=True)
class GMMPrior:
    r"""Prior on all the parameters of a Gaussian mixture; any part may be ``None``.

    Parameters
    ----------
    weights : DirichletPrior, optional
    means : NormalMeanPrior, optional
    covariances : CovariancePrior, optional
    name : str, optional
        Which recipe built it (``'pooled'``, ``'mclust'``), ``None`` for a prior given
        by hand. Informational (reports); not compared by ``==``.
    note : str, optional
        How the hyperparameters were derived from the data, in plain words
        (:meth:`describe` shows it). Not compared by ``==``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.datasets import load_faithful
    >>> prior = GMMPrior.mclust(load_faithful(), n_components=3, covariance_type="full")
    >>> prior.means.shrinkage, prior.covariances.dof
    (0.01, 4.0)
    >>> GMMPrior.default(load_faithful(), 3).name  # the default is the pooled prior
    'pooled'
    """

    weights: DirichletPrior | None = None
    means: NormalMeanPrior | None = None
    covariances: CovariancePrior | None = None
    name: str | None = field(default=None, compare=False)
    note: str | None = field(default=None, compare=False)

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
    def default(cls, X, n_components: int, covariance_type: str = "full", **kwargs) -> GMMPrior:
        """The default prior: :meth:`pooled` (same arguments).

        Chosen by ``benchmarks/bench_small_data.py`` (d in {2, 5, 10}, n from 10 to
        1000, K in {2, 3, 5}, separated and overlapping clusters): the pooled prior's
        held-out log-likelihood was at least that of maximum likelihood and of mclust's
        prior in every cell. mclust's prior remains :meth:`mclust`.
        """
        return cls.pooled(X, n_components, covariance_type, **kwargs)

    @classmethod
    def mclust(
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

        Its scale is the spread of all the data: with separated clusters it pulls
        every covariance towards a multiple of the whole-data covariance, and its
        ``nu0 + d + 2`` pseudo-observations (at a small scatter) shrink covariances
        until the sample is large (see the user guide's prior page).
        """
        X, w, feature_names = _prior_data(X, sample_weight, feature_names, "GMMPrior.mclust")
        model = get_covariance_model(covariance_type)
        n_features = X.shape[1]
        # With NaN: the mean and covariance of one Gaussian fitted to the observed
        # values (maximum likelihood under missing at random).
        mean, cov = observed_moments(X, w)
        _check_data_covariance(X[w > 0], cov, feature_names)
        factor = (1.0 / n_components) ** (2.0 / n_features)
        scale = model.default_prior_scale(cov) * factor
        dof = n_features + 2.0
        what = "cov(X)" if np.ndim(scale) == 2 else "the average variance of X"
        return cls(
            weights=DirichletPrior(alpha),
            means=NormalMeanPrior.conjugate(mean, shrinkage),
            covariances=CovariancePrior(dof=dof, scale=scale),
            name="mclust",
            note=(
                f"mclust's default prior: prior mean m0 = the data mean, shrinkage "
                f"kappa0 = {shrinkage:g}; covariance prior with nu0 = d + 2 = {dof:g} and "
                f"scale Psi0 = {what} x (1/K)^(2/d), K = {n_components}, d = {n_features}."
            ),
        )

    @classmethod
    def pooled(
        cls,
        X,
        n_components: int,
        covariance_type: str = "full",
        *,
        sample_weight=None,
        shrinkage: float = 0.01,
        alpha: float = 1.0,
        dof: float | None = None,
        random_state=0,
        n_init: int = 3,
        feature_names=None,
    ) -> GMMPrior:
        r"""Empirical-Bayes prior: covariances centred on the pooled within-component
        covariance of a preliminary fit (the default prior).

        1. A preliminary MAP fit of ``n_components`` components of ``covariance_type``
           (k-means starts, ``n_init`` of them, ``random_state``), on the features
           standardized by their standard deviations, under mclust's form of prior with
           the *diagonal* of the data covariance (so it exists for any number of rows
           and rescales with every feature).
        2. Its pooled within-component covariance, from the responsibilities
           :math:`r_{nk}` and component means :math:`\bar x_k` (with NaN, the
           conditional expectations of the E-step),

           .. math:: S = \frac{\sum_k \sum_n w_n r_{nk} (x_n - \bar x_k)(x_n - \bar x_k)^T
                     + \operatorname{diag}(\operatorname{cov} X)\,K^{-2/d}}{N - K + 1},

           the diagonal term worth one observation (keeps ``S`` SPD when N <= d).
        3. The prior: Dirichlet(``alpha``) weights; conjugate means with ``m0`` the
           data mean and ``kappa0 = shrinkage``; the covariance prior with
           ``nu0 = dof`` (mclust's d + 2 by default) and the scale chosen so that its
           mode (with the conjugate mean's factor) *is* ``S``: :math:`\Psi_0 = c\,S`
           with :math:`c = \nu_0 + d + 2` for 'full' (the MAP update is then
           :math:`\Sigma_k = (c S + W_k + \dots)/(c + n_k)`, the sample covariance
           pulled towards ``S`` by ``c`` pseudo-observations), and the matching count
           for the other types (``S`` taken as its diagonal for 'diag' and the
           diagonal families, its average variance for 'spherical').

        So the prior says "a component looks like the typical component", not "like
        all the data" (mclust's :meth:`mclust`), and its weight falls as
        ``c / (c + n_k)``. Every hyperparameter is a fixed number once built: the MAP
        fit, the PyMC model and NUTS use it as any other :class:`GMMPrior`. The
        prior is a deterministic function of the data (``random_state=0``), and it
        rescales with every feature ('full', 'tied', 'diag' and the per-feature
        families; 'spherical' only under a common rescaling).

        Parameters
        ----------
        X : array-like of shape (N, D)
            NaN = missing at random.
        n_components : int
        covariance_type : str, default='full'
        sample_weight : array-like of shape (N,), optional
            Frequency weights.
        shrinkage, alpha : float
            ``kappa0`` and the Dirichlet concentration, as :meth:`mclust`.
        dof : float, optional
            ``nu0``; default d + 2 (> d - 1 needed for 'full' and 'tied').
        random_state : int, RandomState or None, default=0
            Seed of the preliminary fit's starts.
        n_init : int, default=3
            Starts of the preliminary fit.
        feature_names : list of str, optional
            Names for errors (a DataFrame's columns by default).

        Examples
        --------
        >>> from bayesgmm.datasets import load_faithful
        >>> prior = GMMPrior.pooled(load_faithful(), 2)
        >>> prior.name, prior.covariances.dof
        ('pooled', 4.0)
        """
        # Imported here: the EM engine imports this module's types for checking only.
        from bayesgmm._validation import check_random_state
        from bayesgmm.core.em import fit_mixture

        X, w, feature_names = _prior_data(X, sample_weight, feature_names, "GMMPrior.pooled")
        model = get_covariance_model(covariance_type)
        model.check_prior_support()
        n_features = X.shape[1]
        if isinstance(n_components, bool) or not isinstance(n_components, numbers.Integral):
            raise ValueError(f"`n_components` must be an integer >= 1; got {n_components!r}.")
        if not 1 <= n_components <= w.sum():
            raise ValueError(
                f"GMMPrior.pooled needs 1 <= n_components <= the number of rows; got "
                f"n_components={n_components} for {w.sum():g} rows."
            )
        nu0 = n_features + 2.0 if dof is None else _positive_scalar("dof", dof)
        mean, cov = observed_moments(X, w)
        _check_data_covariance(X[w > 0], cov, feature_names, collinear=False)
        sd = np.sqrt(np.diag(cov))
        factor = (1.0 / n_components) ** (2.0 / n_features)
        Z = (X - mean) / sd  # NaN stays NaN; unit-free, so k-means starts are too
        eye = np.eye(n_features)
        preliminary = GMMPrior(
            DirichletPrior(1.0),
            NormalMeanPrior.conjugate(np.zeros(n_features), shrinkage),
            CovariancePrior(n_features + 2.0, model.pooled_prior_scale(eye) * factor),
        )
        fit, _ = fit_mixture(
            Z,
            n_components,
            covariance_type,
            tol=1e-3,
            max_iter=100,
            reg_covar=0.0,
            n_init=n_init,
            init_params="kmeans",
            random_state=check_random_state(random_state),
            prior=preliminary,
            sample_weight=w,
        )
        pooled_z = _pooled_within_scatter(Z, fit.params, covariance_type, w)
        S = (pooled_z + eye * factor) / (w.sum() - n_components + 1.0)
        S = sd[:, None] * S * sd[None, :]
        S = 0.5 * (S + S.T)
        typed = model.pooled_prior_scale(S)
        count = _prior_pseudo_count(model, nu0, n_components, n_features)
        return cls(
            weights=DirichletPrior(alpha),
            means=NormalMeanPrior.conjugate(mean, shrinkage),
            covariances=CovariancePrior(dof=nu0, scale=count * typed),
            name="pooled",
            note=(
                f"pooled (empirical Bayes) prior: prior mean m0 = the data mean, shrinkage "
                f"kappa0 = {shrinkage:g}; covariance prior with nu0 = {nu0:g} and scale "
                f"Psi0 = {count:g} x S, S the pooled within-component covariance of a "
                f"preliminary {n_components}-component MAP fit, so every covariance's prior "
                f"mode is S, with the weight of {count:g} pseudo-observations in each "
                "covariance update."
            ),
        )

    def describe(self) -> str:
        """The prior in plain words, with its hyperparameters (for reports and the CLI).

        Examples
        --------
        >>> print(GMMPrior(weights=DirichletPrior(2.0)).describe())
        given prior: weights ~ Dirichlet(alpha = 2); means: flat; covariances: flat.
        """
        parts = []
        if self.weights is None:
            parts.append("weights: flat")
        else:
            alpha = np.atleast_1d(self.weights.alpha)
            text = ", ".join(f"{a:g}" for a in alpha)
            flat = " (flat)" if np.all(alpha == 1.0) else ""
            parts.append(f"weights ~ Dirichlet(alpha = {text}){flat}")
        if self.means is None:
            parts.append("means: flat")
        elif self.means.form == "conjugate":
            parts.append(
                f"means mu_k | Sigma_k ~ N(m0, Sigma_k / {self.means.shrinkage:g}), m0 = "
                f"[{', '.join(f'{v:.4g}' for v in self.means.mean)}]"
            )
        else:
            sd = np.sqrt(np.diag(self.means.covariance))
            parts.append(
                f"means mu_k ~ N(m0, S0), m0 = [{', '.join(f'{v:.4g}' for v in self.means.mean)}]"
                f", prior sd [{', '.join(f'{v:.4g}' for v in sd)}]"
            )
        if self.covariances is None:
            parts.append("covariances: flat")
        else:
            scale = np.asarray(self.covariances.scale)
            diag = np.diag(scale) if scale.ndim == 2 else np.atleast_1d(scale)
            parts.append(
                f"covariances ~ inverse-Wishart (inverse-gamma per variance when diagonal) "
                f"with nu0 = {self.covariances.dof:g}, scale diagonal "
                f"[{', '.join(f'{v:.4g}' for v in diag)}]"
            )
        head = f"{self.name} prior" if self.name else "given prior"
        text = f"{head}: " + "; ".join(parts) + "."
        return text if self.note is None else f"{text} {self.note}"

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
        return GMMPrior(
            self.weights, self.means.shifted(shift), self.covariances, self.name, self.note
        )

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


def _prior_data(X, sample_weight, feature_names, who: str):
    """``X`` as float64 (N, D), the weights (N,) and the feature names."""
    if feature_names is None and hasattr(X, "columns"):
        feature_names = [str(c) for c in X.columns]
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"{who} needs a 2-D array with at least 2 rows; got shape {X.shape}.")
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    return X, w, feature_names


def _pooled_within_scatter(X, params, covariance_type: str, sample_weight) -> np.ndarray:
    r""":math:`\sum_k \sum_n w_n r_{nk}(x_n - \bar x_k)(x_n - \bar x_k)^T`, (D, D), from the
    responsibilities of ``params`` (one E-step of the chunk kernel, in full form, so
    with NaN it holds the conditional second moments)."""
    from bayesgmm.core.estep import e_step
    from bayesgmm.core.params import GMMParams

    model = get_covariance_model(covariance_type)
    full = get_covariance_model("full")
    n_components, n_features = params.means.shape
    covs = model.to_full(params.covariances, n_components, n_features)
    as_full = GMMParams(params.weights, params.means, covs, full.precision_cholesky(covs))
    _, stats = e_step(X, as_full, "full", sample_weight=sample_weight)
    nk = stats.n + 10 * np.finfo(float).eps
    centers = stats.sum_x / nk[:, None]
    return full.scatter(nk, stats.sum_x, stats.sum_xx, centers).sum(axis=0)


def _prior_pseudo_count(model, dof: float, n_components: int, n_features: int) -> float:
    """``c`` such that the covariance prior with scale ``c * S`` has its mode (given
    the conjugate mean's extra factor) at ``S``: the M-step's count of prior
    pseudo-observations, read off the covariance table's own update with no data."""
    eye = model.pooled_prior_scale(np.eye(n_features))
    scale = model.prior_scale(dof, eye, n_features)
    zeros = np.zeros((n_components, n_features))
    scatter = model.scatter(
        np.zeros(n_components), zeros, model.second_moment_from_full(
            np.zeros((n_components, n_features, n_features))), zeros
    )  # fmt: skip
    mode = model.update_from(np.ones(n_components), scatter, 0.0, dof, scale)
    full = model.to_full(mode, n_components, n_features)[0]
    return float(n_features / np.trace(full))


def resolve_prior(
    prior,
    X,
    n_components: int,
    covariance_type: str,
    *,
    sample_weight=None,
    feature_names=None,
) -> GMMPrior | None:
    """The prior a fit uses: ``None``; a name in :data:`PRIOR_NAMES` built on ``X``
    (``'default'`` and ``'pooled'``: :meth:`GMMPrior.pooled`; ``'mclust'``:
    :meth:`GMMPrior.mclust`); or a :class:`GMMPrior` as given. The one place that
    reads the names (estimators, :func:`bayesgmm.bayes.build_model`)."""
    if prior is None or isinstance(prior, GMMPrior):
        return prior
    if isinstance(prior, str) and prior in PRIOR_NAMES:
        build = GMMPrior.mclust if prior == "mclust" else GMMPrior.pooled
        return build(
            X,
            n_components,
            covariance_type,
            sample_weight=sample_weight,
            feature_names=feature_names,
        )
    raise ValueError(
        f"`prior` must be None (maximum likelihood), one of {list(PRIOR_NAMES)} "
        "('default' = 'pooled', the empirical-Bayes prior; 'mclust' = mclust's default "
        f"prior) or a GMMPrior; got {prior!r}."
    )
