"""``GaussianMixtureImputer``: missing values filled in under a fitted Gaussian mixture."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from bayesgmm._validation import check_data, check_random_state
from bayesgmm.mixture import GaussianMixture

__all__ = ["GaussianMixtureImputer"]


class GaussianMixtureImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    r"""Impute missing values (NaN) from a Gaussian mixture fitted to the observed values.

    A scikit-learn transformer in the manner of :class:`sklearn.impute.IterativeImputer`:
    ``fit`` fits a :class:`~bayesgmm.GaussianMixture` by exact EM for the observed-data
    likelihood (missing at random), ``transform`` replaces every NaN by its
    conditional mean under the mixture,

    .. math:: E[x_M \mid x_O] = \sum_k r_k(x_O)\,\bigl(\mu_{k,M}
              + \Sigma_{k,MO}\Sigma_{k,OO}^{-1}(x_O - \mu_{k,O})\bigr),

    or, with ``sample_posterior=True``, by one draw from :math:`p(x_M \mid x_O)`.
    Observed values pass through unchanged.

    Parameters
    ----------
    n_components : int, iterable of int or 'auto', default='auto'
        Number of mixture components. An iterable is a set of candidates, the one
        with the lowest BIC is used; ``'auto'`` means 1 to 5 (fewer for small data).
    covariance_type : str, default='full'
        Covariance structure (see :class:`~bayesgmm.GaussianMixture`).
    prior : None, 'default', 'pooled', 'mclust' or GMMPrior, default=None
        ``None``: maximum likelihood; otherwise a MAP fit (recommended for small data).
    sample_posterior : bool, default=False
        Draw the missing values from their conditional distribution instead of
        using the conditional mean (for multiple imputation, fit with several
        ``random_state`` values or use :meth:`GaussianMixture.impute` directly).
    n_init : int, default=3
        EM starts per fit.
    max_iter : int, default=200
    tol : float, default=1e-4
    reg_covar : float, default=1e-6
    random_state : int, RandomState instance or None, default=None
        Seeds the fits and the draws of ``sample_posterior``.

    Attributes
    ----------
    model_ : GaussianMixture
        The fitted mixture (the BIC-chosen one if several ``n_components`` were given).
    n_components_ : int
    n_iter_ : int
        EM iterations of the chosen fit.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` was a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixtureImputer
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> X_missing = X.copy()
    >>> X_missing[::10, 1] = np.nan
    >>> imputer = GaussianMixtureImputer(n_components=2, random_state=0)
    >>> filled = imputer.fit_transform(X_missing)
    >>> bool(np.isnan(filled).any()), imputer.n_components_
    (False, 2)
    >>> bool(np.array_equal(filled[1::10], X[1::10]))  # observed rows unchanged
    True
    """

    def __init__(
        self,
        n_components="auto",
        *,
        covariance_type: str = "full",
        prior=None,
        sample_posterior: bool = False,
        n_init: int = 3,
        max_iter: int = 200,
        tol: float = 1e-4,
        reg_covar: float = 1e-6,
        random_state=None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.prior = prior
        self.sample_posterior = sample_posterior
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _candidates(self, n_samples: int) -> list[int]:
        value = self.n_components
        if isinstance(value, str):
            if value != "auto":
                raise ValueError(
                    f"`n_components` must be an int, an iterable of ints or 'auto'; got {value!r}."
                )
            return list(range(1, max(1, min(5, n_samples // 10)) + 1))
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            candidates = [int(value)]
        elif isinstance(value, Iterable):
            candidates = [int(k) for k in value]
        else:
            raise ValueError(
                f"`n_components` must be an int, an iterable of ints or 'auto'; got {value!r}."
            )
        if not candidates or min(candidates) < 1:
            raise ValueError(f"`n_components` must be >= 1; got {value!r}.")
        if min(candidates) > n_samples:
            raise ValueError(
                f"`n_components`={value!r} exceeds the {n_samples} samples; give fewer components."
            )
        return [k for k in candidates if k <= n_samples]

    def fit(self, X, y=None) -> GaussianMixtureImputer:
        """Fit the mixture to the observed values of ``X`` (N, D), NaN where missing."""
        if not isinstance(self.sample_posterior, bool | np.bool_):
            raise ValueError(
                f"`sample_posterior` must be True or False; got {self.sample_posterior!r}."
            )
        data = X
        X = check_data(self, X, reset=True, min_samples=2)
        rng = check_random_state(self.random_state)
        best, best_bic, best_warnings = None, np.inf, []
        errors = []
        for k in self._candidates(X.shape[0]):
            model = GaussianMixture(
                k,
                covariance_type=self.covariance_type,
                prior=self.prior,
                n_init=self.n_init,
                max_iter=self.max_iter,
                tol=self.tol,
                reg_covar=self.reg_covar,
                random_state=int(rng.randint(np.iinfo(np.int32).max)),
            )
            try:
                # Warnings of the candidates that are not chosen would only confuse.
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    model.fit(data)
            except ValueError as err:
                errors.append(f"K={k}: {err}")
                continue
            bic = model.bic(data)
            if bic < best_bic:
                best, best_bic, best_warnings = model, bic, caught
        if best is None:
            raise ValueError("No mixture could be fitted: " + "; ".join(errors))
        for caught in best_warnings:
            warnings.warn(caught.message, caught.category, stacklevel=2)
        for message in errors:
            warnings.warn(f"Left out of the BIC choice: {message}", UserWarning, stacklevel=2)
        self.model_ = best
        self.n_components_ = best.n_components
        self.n_iter_ = best.n_iter_
        self._draw_rng = np.random.default_rng(rng.randint(np.iinfo(np.int32).max))
        return self

    def transform(self, X) -> np.ndarray:
        """``X`` with every NaN imputed, shape ``(N, D)``; observed values unchanged."""
        check_is_fitted(self)
        check_data(self, X, reset=False)
        if self.sample_posterior:
            seed = int(self._draw_rng.integers(np.iinfo(np.int32).max))
            return self.model_.impute(X, n_imputations=1, random_state=seed)[0]
        return self.model_.impute(X)
