r"""Bootstrap uncertainty of a maximum-likelihood (or MAP) fit, as mclust's ``MclustBootstrap``.

Each replicate refits the model to a resampled data set, starting from the original
estimate, and is relabelled to the original fit's components. The replicates are kept
as an xarray Dataset named and dimensioned like the posterior group of
:class:`~bayesgmm.bayes.PosteriorGaussianMixture` (``chain`` = 1, ``draw`` = replicate),
so ArviZ's summaries and plots read bootstrap replicates as they read posterior draws.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from bayesgmm._degeneracy import DegenerateFitWarning, degeneracy_message
from bayesgmm._intervals import check_prob
from bayesgmm._validation import (
    as_generator,
    check_data,
    check_number,
    check_sample_weight,
    observed_rows,
)
from bayesgmm.core.params import GMMParams
from bayesgmm.core.sampling import sample_mixture
from bayesgmm.diagnostics import params_to_dataset
from bayesgmm.mixture import GaussianMixture

__all__ = ["BootstrapResult", "BootstrapWarning", "bootstrap"]

_KINDS = ("nonparametric", "parametric")
_PARAMS = ("weights", "means", "covariances")
_SAMPLE_DIMS = ("chain", "draw")


class BootstrapWarning(UserWarning):
    """Some bootstrap replicates failed and were left out."""


@dataclass(frozen=True, eq=False, repr=False)
class BootstrapResult:
    """Bootstrap replicates of a fitted :class:`~bayesgmm.GaussianMixture`.

    Attributes
    ----------
    kind : {'nonparametric', 'parametric'}
        How the data were resampled.
    n_boot : int
        Replicates requested; ``n_boot - n_failed`` of them are in ``draws``.
    n_failed : int
        Replicates whose refit failed (e.g. a collapsed component) and were left out.
    n_degenerate : int
        Replicates kept in ``draws`` whose refit is degenerate (a component on too
        few points, a weight below 1/N, or a variance that is mostly ``reg_covar``;
        see :class:`~bayesgmm.DegenerateFitWarning`): intervals that reach the
        ``reg_covar`` floor come from these.
    reference : GaussianMixture
        The original fit; every replicate is relabelled to its components.
    draws : xarray.Dataset
        Variables ``weights`` (chain, draw, component), ``means`` (chain, draw,
        component, feature) and ``covariances`` (chain, draw, \\*dims of the covariance
        type: ``(component, feature, feature_bis)`` full, ``(feature, feature_bis)``
        tied, ``(component, feature)`` diag, ``(component,)`` spherical), with
        ``chain`` of size 1 and one ``draw`` per successful replicate.
    """

    kind: str
    n_boot: int
    n_failed: int
    reference: GaussianMixture
    draws: xr.Dataset
    n_degenerate: int = 0

    def __repr__(self) -> str:
        return (
            f"BootstrapResult(kind={self.kind!r}, n_boot={self.n_boot}, "
            f"n_failed={self.n_failed}, n_degenerate={self.n_degenerate}, "
            f"n_components={self.reference.n_components}, "
            f"covariance_type={self.reference.covariance_type!r})"
        )

    def to_datatree(self) -> xr.DataTree:
        """The replicates as the ``posterior`` group of a DataTree.

        ``arviz.summary(result.to_datatree())``, ``arviz.plot_forest`` and friends
        then treat the replicates as draws of one chain (R-hat is meaningless here).
        """
        return xr.DataTree.from_dict({"posterior": self.draws})

    def estimates(self) -> xr.Dataset:
        """The original fit's parameters, dimensioned like one replicate."""
        features = [str(f) for f in self.draws["feature"].values]
        return params_to_dataset(
            self.reference._params(), self.reference.covariance_type, features
        )

    def standard_errors(self) -> xr.Dataset:
        """Bootstrap standard errors: the standard deviation over replicates (ddof=1)."""
        return self.draws.std(_SAMPLE_DIMS, ddof=1)

    def intervals(self, prob: float | None = None) -> xr.Dataset:
        """Percentile intervals holding ``prob`` of the replicates.

        Parameters
        ----------
        prob : float, optional
            Probability in (0, 1); the bounds are the ``(1 - prob)/2`` and
            ``(1 + prob)/2`` quantiles of the replicates (linear interpolation). When
            None, the package's one level, :func:`bayesgmm.default_ci_prob`.

        Returns
        -------
        xarray.Dataset
            The parameters with a leading dimension ``bound`` = ``['lower', 'upper']``;
            ``attrs["ci_prob"]`` is the probability.
        """
        prob = check_prob(prob)
        tail = (1.0 - prob) / 2.0
        bounds = self.draws.quantile([tail, 1.0 - tail], dim=_SAMPLE_DIMS)
        bounds = bounds.rename(quantile="bound").assign_coords(bound=["lower", "upper"])
        bounds.attrs["ci_prob"] = prob
        return bounds.transpose("bound", ...)

    def summary(self, prob: float | None = None) -> pd.DataFrame:
        """Tidy table: one row per parameter element.

        Parameters
        ----------
        prob : float, optional
            Probability of the percentile interval; :func:`bayesgmm.default_ci_prob`
            when None.

        Returns
        -------
        pandas.DataFrame
            Columns ``parameter``, ``component`` (nullable integer; missing for a tied
            covariance), ``feature``, ``feature_bis`` (``None`` where the parameter has
            no such dimension), ``estimate`` (the original fit), ``se``, ``lower`` and
            ``upper``. ``attrs`` holds ``n_boot``, ``n_failed``, ``n_degenerate`` and
            ``ci_prob``.
        """
        estimate = self.estimates()
        se = self.standard_errors()
        bounds = self.intervals(prob)
        frames = []
        for name in _PARAMS:
            table = xr.Dataset(
                {
                    "estimate": estimate[name],
                    "se": se[name],
                    "lower": bounds[name].sel(bound="lower", drop=True),
                    "upper": bounds[name].sel(bound="upper", drop=True),
                }
            )
            frame = table.to_dataframe().reset_index() if table.dims else _scalar_frame(table)
            frame.insert(0, "parameter", name)
            frames.append(frame)
        out = pd.concat(frames, ignore_index=True)
        for col in ("component", "feature", "feature_bis"):
            if col not in out:
                out[col] = None
        out["component"] = out["component"].astype("Int64")
        for col in ("feature", "feature_bis"):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
        columns = ["parameter", "component", "feature", "feature_bis"]
        out = out[[*columns, "estimate", "se", "lower", "upper"]]
        out.attrs.update(
            n_boot=self.n_boot,
            n_failed=self.n_failed,
            n_degenerate=self.n_degenerate,
            ci_prob=bounds.attrs["ci_prob"],
        )
        return out


def _scalar_frame(table: xr.Dataset) -> pd.DataFrame:
    return pd.DataFrame({name: [float(table[name])] for name in table.data_vars})


def bootstrap(
    model: GaussianMixture,
    X,
    *,
    n_boot: int = 200,
    kind: str = "nonparametric",
    sample_weight=None,
    tol: float | None = None,
    random_state=None,
    progress: bool = False,
) -> BootstrapResult:
    r"""Bootstrap the sampling distribution of a fitted mixture's parameters.

    Each replicate refits ``model``'s configuration (same ``n_components``,
    ``covariance_type``, ``tol``, ``reg_covar``, ``max_iter``; for a MAP fit the very
    prior the original fit used, ``model.prior_``, so ``prior='default'`` is not
    rebuilt from each resample) to resampled data, with one EM start at the original
    estimate. Replicates are then relabelled to the original components by the
    Mahalanobis assignment of :func:`bayesgmm.bayes.relabel.match_to_reference`.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model (maximum likelihood or MAP).
    X : array-like of shape (N, D)
        The data ``model`` was fitted to.
    n_boot : int, default=200
        Number of replicates (at least 2).
    kind : {'nonparametric', 'parametric'}, default='nonparametric'
        ``'nonparametric'`` resamples the rows with replacement: each replicate
        refits with multinomial counts as frequency weights, which is exactly the fit
        on the repeated rows. ``'parametric'`` draws a new data set of the same size
        from the fitted mixture.
    sample_weight : array-like of shape (N,), optional
        Frequency weights of the rows (as in ``fit``). A replicate then resamples
        ``round(sum(sample_weight))`` units, row ``n`` with probability proportional
        to its weight; the parametric bootstrap draws that many points.
    tol : float, optional
        EM convergence threshold of the replicates; by default ``min(model.tol, 1e-6)``
        (see Notes).
    random_state : int, numpy Generator, RandomState or None
        The same seed gives identical replicates.
    progress : bool, default=False
        Print a line to stderr about every 10% of the replicates, with the time so far
        and an estimate of the time left.

    Returns
    -------
    BootstrapResult
        The replicates (``draws``), with standard errors, percentile intervals and
        a summary table.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``model`` is not fitted.
    ValueError
        For a bad ``n_boot``, ``kind`` or ``sample_weight``, or if more than half of
        the replicates fail (each failure is reported, with a
        :class:`BootstrapWarning`, when fewer fail).

    Notes
    -----
    The nonparametric replicate :math:`b` maximizes
    :math:`\sum_n c_{bn} \log \sum_k \pi_k N(x_n \mid \mu_k, \Sigma_k)` with
    :math:`c_b \sim \mathrm{Multinomial}(N, (w_n / \sum_m w_m)_n)`. Because every
    replicate starts at the original estimate, EM stops as soon as the objective
    changes by less than ``tol`` per sample; with a loose threshold (such as the
    estimators' default ``1e-3``) and overlapping components the replicates would stop
    short and the standard errors come out too small, hence the tight default.

    Examples
    --------
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm import bootstrap
    >>> from bayesgmm.datasets import make_mixture
    >>> X = make_mixture(200, n_components=2, n_features=1, separation=6, random_state=0).X
    >>> gm = GaussianMixture(2, tol=1e-6, random_state=0).fit(X)
    >>> boot = bootstrap(gm, X, n_boot=40, random_state=0)
    >>> dict(boot.draws["means"].sizes)
    {'chain': 1, 'draw': 40, 'component': 2, 'feature': 1}
    >>> table = boot.summary(prob=0.9)
    >>> list(table.columns)
    ['parameter', 'component', 'feature', 'feature_bis', 'estimate', 'se', 'lower', 'upper']
    >>> bool((table["lower"] <= table["estimate"]).all() and (table["se"] > 0).all())
    True
    """
    check_is_fitted(model)
    if not isinstance(model, GaussianMixture):
        raise TypeError(
            f"`model` must be a fitted bayesgmm GaussianMixture; got {type(model).__name__}."
        )
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 2:
        raise ValueError(f"`n_boot` must be an integer >= 2; got {n_boot!r}.")
    n_boot = int(n_boot)
    if kind not in _KINDS:
        raise ValueError(f"Unknown `kind` {kind!r}; expected one of {list(_KINDS)}.")
    X = check_data(model, X, reset=False, min_samples=2)
    weights = check_sample_weight(sample_weight, X.shape[0])
    # Rows with nothing observed carry no information (the fit ignores them).
    informative = observed_rows(X)
    if not informative.all():
        X = X[informative]
        weights = None if weights is None else weights[informative]
    observed = None if not np.isnan(X).any() else ~np.isnan(X)
    n_units = X.shape[0] if weights is None else round(float(weights.sum()))
    if n_units < 2:
        raise ValueError(
            "`sample_weight` are frequency weights: their sum is the sample size, and it "
            f"must round to at least 2; got a sum of {weights.sum():.6g}."
        )
    rng = as_generator(random_state)
    cov_type = model.covariance_type
    reference = model._params()
    if tol is not None:
        check_number("tol", tol, low=0.0)
    refit = clone(model).set_params(
        tol=min(model.tol, 1e-6) if tol is None else tol,
        prior=model.prior_,
        n_init=1,
        weights_init=model.weights_,
        means_init=model.means_,
        precisions_init=model.precisions_,
        warm_start=False,
        verbose=0,
        random_state=0,
    )
    probabilities = None if weights is None else weights / weights.sum()

    replicates: list[GMMParams] = []
    n_failed = 0
    n_degenerate = 0
    first_degeneracy = ""
    n_not_converged = 0
    first_error: Exception | None = None
    step = max(1, math.ceil(n_boot / 10))
    started = time.perf_counter()
    for b in range(n_boot):
        if kind == "nonparametric":
            counts = _resample_counts(rng, X.shape[0], n_units, probabilities)
            keep = counts > 0
            data, data_weight = X[keep], counts[keep].astype(np.float64)
        else:
            data, _ = sample_mixture(rng, n_units, reference, cov_type)
            data_weight = None
            if observed is not None:
                # Each draw keeps the missingness pattern of a resampled row, so that
                # replicates carry as much information as the data (MAR).
                rows = rng.choice(X.shape[0], size=n_units, p=probabilities)
                data = np.where(observed[rows], data, np.nan)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", DegenerateFitWarning)
                refit.fit(data, sample_weight=data_weight)
        except ValueError as err:  # CollapsedComponentError, LinAlgError, too few points
            n_failed += 1
            first_error = first_error or err
            if n_failed > n_boot / 2:
                raise ValueError(
                    f"{n_failed} of the first {b + 1} bootstrap replicates failed (of "
                    f"n_boot={n_boot}), more than half, so the bootstrap distribution "
                    f"would be biased. First failure: {first_error} The model is too "
                    "flexible for resamples of these data: fit with a prior "
                    "(prior='default'), increase reg_covar, or reduce n_components."
                ) from err
        else:
            n_not_converged += not refit.converged_
            if refit.degeneracies_:
                n_degenerate += 1
                first_degeneracy = first_degeneracy or _describe(refit)
            replicates.append(GMMParams(*(np.array(p, copy=True) for p in refit._params())))
        if progress and ((b + 1) % step == 0 or b + 1 == n_boot):
            elapsed = time.perf_counter() - started
            left = elapsed / (b + 1) * (n_boot - b - 1)
            print(
                f"bootstrap ({kind}): {b + 1}/{n_boot} replicates, {n_failed} failed, "
                f"{n_degenerate} degenerate, {elapsed:.0f} s so far, about {left:.0f} s left",
                file=sys.stderr,
            )

    if n_failed:
        warnings.warn(
            f"{n_failed} of {n_boot} bootstrap replicates failed and were left out "
            f"(first failure: {first_error})",
            BootstrapWarning,
            stacklevel=2,
        )
    if n_degenerate:
        warnings.warn(
            f"{n_degenerate} of {len(replicates)} bootstrap replicates are degenerate and "
            "are kept, so the intervals may reach the reg_covar floor or zero weights "
            f"(first: {first_degeneracy})",
            DegenerateFitWarning,
            stacklevel=2,
        )
    if n_not_converged:
        warnings.warn(
            f"{n_not_converged} of {len(replicates)} bootstrap refits did not converge in "
            f"max_iter={model.max_iter} iterations (tol={refit.tol}); they are kept. "
            "Increase the model's max_iter.",
            ConvergenceWarning,
            stacklevel=2,
        )
    draws = _relabelled_draws(replicates, reference, cov_type, _feature_names(model))
    return BootstrapResult(
        kind=kind,
        n_boot=n_boot,
        n_failed=n_failed,
        reference=model,
        draws=draws,
        n_degenerate=n_degenerate,
    )


def _describe(model: GaussianMixture) -> str:
    prior = model.prior_ is not None
    return degeneracy_message(model.degeneracies_, reg_covar=model.reg_covar, prior=prior)


# -- helpers -----------------------------------------------------------------------------
def _resample_counts(
    rng: np.random.Generator, n_rows: int, n_units: int, probabilities: np.ndarray | None
) -> np.ndarray:
    """How often each row is drawn: ``Multinomial(n_units, probabilities)``, shape (N,)."""
    if probabilities is None:
        return np.bincount(rng.integers(0, n_rows, size=n_units), minlength=n_rows)
    return rng.multinomial(n_units, probabilities)


def _feature_names(model: GaussianMixture) -> list[str]:
    if hasattr(model, "feature_names_in_"):
        return [str(f) for f in model.feature_names_in_]
    return [f"x{j}" for j in range(model.means_.shape[1])]


def _relabelled_draws(
    replicates: list[GMMParams], reference: GMMParams, covariance_type: str, features: list[str]
) -> xr.Dataset:
    """Stack replicates into a (chain=1, draw=B) Dataset aligned to ``reference``."""
    # Imported here: importing bayesgmm.bayes loads PyMC (seconds); relabel itself is NumPy.
    from bayesgmm.bayes.relabel import match_to_reference, relabel_dataset

    stacked = GMMParams(
        *(np.stack([getattr(r, f) for r in replicates])[None] for f in GMMParams._fields)
    )
    ds = params_to_dataset(stacked, covariance_type, features, lead=_SAMPLE_DIMS)
    ds = ds.assign_coords(chain=[0], draw=np.arange(len(replicates)))
    perms = match_to_reference(stacked.means[0], reference, covariance_type)
    return relabel_dataset(ds, xr.DataArray(perms[None], dims=("chain", "draw", "component")))
