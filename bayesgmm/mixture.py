"""``GaussianMixture``: a scikit-learn estimator fitted by EM (maximum likelihood or MAP)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from bayesgmm._degeneracy import find_degeneracies, warn_degenerate
from bayesgmm._validation import (
    as_generator,
    check_data,
    check_estimator_params,
    check_initial_params,
    check_random_state,
    check_sample_weight,
    observed_rows,
)
from bayesgmm.core.covariance import InnerControl, get_covariance_model
from bayesgmm.core.density import log_mixture_density, responsibilities
from bayesgmm.core.em import fit_mixture
from bayesgmm.core.missing import impute_draws, impute_mean
from bayesgmm.core.params import GMMParams
from bayesgmm.core.sampling import sample_mixture
from bayesgmm.priors import GMMPrior, resolve_prior

__all__ = ["GaussianMixture"]


class GaussianMixture(DensityMixin, BaseEstimator):
    r"""Gaussian mixture fitted by EM: maximum likelihood, or MAP with a prior.

    A drop-in for :class:`sklearn.mixture.GaussianMixture` (same parameters, same
    fitted attributes, same results from the same start) with conjugate priors
    (``prior=``), frequency ``sample_weight``, missing values (NaN, integrated out
    exactly; :meth:`impute` fills them in), the objective at every iteration, ICL,
    and errors that say which component collapsed and what to do about it.

    The density is

    .. math:: p(x) = \sum_{k=1}^K \pi_k \, N(x \mid \mu_k, \Sigma_k).

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components ``K``.
    covariance_type : str, default='full'
        Covariance structure: scikit-learn's 'full', 'tied', 'diag', 'spherical'
        (mclust's VVV, EEE, VVI, VII, also accepted under those names), or any of
        mclust's families EII, VII, EEI, VEI, EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV,
        EVV, VVV (and E, V for one feature): :math:`\Sigma_k = \lambda_k D_k A_k
        D_k^T` with volume, shape and orientation Equal, Variable or the Identity
        (see :mod:`bayesgmm.core.families`).
    prior : None, 'default', 'pooled', 'mclust' or GMMPrior, default=None
        ``None`` fits by maximum likelihood. ``'pooled'`` (also ``'default'``) is the
        empirical-Bayes conjugate prior whose covariance prior is centred on the pooled
        within-component covariance of a preliminary fit
        (:meth:`bayesgmm.priors.GMMPrior.pooled`); ``'mclust'`` is mclust's default
        prior (:meth:`bayesgmm.priors.GMMPrior.mclust`). Both are built from the
        training data at fit time; a :class:`~bayesgmm.priors.GMMPrior` is used as
        given. With a prior the fit is the posterior mode (MAP): covariances stay
        positive definite even for components with fewer points than dimensions.
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood per sample.
    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of every covariance. With a prior
        it is added after the MAP update; set 0 for the exact posterior mode.
    max_iter : int, default=100
        Maximum number of EM iterations per start.
    n_init : int, default=1
        Number of starts; the fit with the highest objective is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data', 'hc'}, default='kmeans'
        How starting responsibilities are drawn (as in scikit-learn); ``'hc'`` is
        mclust's start, model-based hierarchical clustering (:mod:`bayesgmm.core.hc`).
    weights_init : array-like of shape (K,), optional
        Starting weights (summing to one).
    means_init : array-like of shape (K, D), optional
        Starting means.
    precisions_init : array-like, optional
        Starting precision matrices (inverse covariances) in the shape of
        ``covariance_type``; must be symmetric positive definite.
    random_state : int, numpy Generator, RandomState instance or None, default=None
        Seed for the starts and for :meth:`sample`. The same seed gives
        bit-identical fits, and the same starts as scikit-learn. A
        :class:`numpy.random.Generator` gives one seed (drawn from it) to each call of
        ``fit`` and ``sample``: the generator advances, as a RandomState would.
    warm_start : bool, default=False
        If True, ``fit`` starts from the previous fit (one start).
    verbose : int, default=0
        1 prints each start's outcome; 2 also the objective every
        ``verbose_interval`` iterations.
    verbose_interval : int, default=10
        Iterations between progress messages when ``verbose=2``.
    inner_tol : float, default=sqrt(machine epsilon)
        Relative tolerance of the inner iterations of the iterative M-steps (mclust's
        VEI, VEE, VEV, EVE, VVE; ``emControl()$tol[2]``); ignored by the others.
    inner_max_iter : int, default=100
        Inner iterations per M-step at most (warm-started at the previous
        covariances, so every M-step still raises the objective).

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, D)
    covariances_ : ndarray
        Shape ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical;
        ``(K, D)`` (the variances) for EII, EEI, VEI, EVI; ``(K, D, D)`` for VEE, EVE,
        VVE, EEV, VEV, EVV.
    volumes_ : ndarray of shape (K,)
        :math:`\lambda_k = |\Sigma_k|^{1/D}` (every covariance type).
    shapes_ : ndarray of shape (K, D)
        Diagonal of :math:`A_k` (product one; decreasing where an orientation is
        estimated, in feature order for the diagonal types).
    orientations_ : ndarray of shape (K, D, D)
        :math:`D_k`, columns the principal axes (identity for the diagonal types).
    precisions_ : ndarray
        Inverse covariances, same shape.
    precisions_cholesky_ : ndarray
        Cholesky factors ``U`` of the precisions (``U @ U.T = precision``).
    converged_ : bool
    n_iter_ : int
        EM iterations of the best start.
    lower_bound_ : float
        Objective per sample (weighted) at the last E-step of the best start: the
        mean log-likelihood, or with a prior the MAP objective
        ``(log-likelihood + log prior) / n_samples``.
    lower_bounds_ : ndarray of shape (``n_iter_``,)
        The objective at every iteration of the best start (never decreases).
    prior_ : GMMPrior or None
        The prior actually used (a name resolved on the training data);
        ``prior_.describe()`` says what it is in words.
    degeneracies_ : tuple of Degeneracy
        What is degenerate about the fit (empty if nothing): components with a weight
        below 1/N, on fewer distinct points than their covariance has parameters, or
        with a variance that is mostly ``reg_covar``; ``fit`` then issues a
        :class:`~bayesgmm.DegenerateFitWarning` (see :mod:`bayesgmm._degeneracy`).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` was a DataFrame with string column names.

    Notes
    -----
    Information criteria follow scikit-learn's sign convention, **lower is better**:
    ``bic = -2 log L + p log n``. mclust reports ``2 log L - p log n`` (higher is
    better), so mclust's BIC is minus ours; likewise for ICL. For a MAP fit, ``L`` is
    the data likelihood at the MAP estimate (the prior is not counted), as in mclust.

    Examples
    --------
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful()
    >>> gm = GaussianMixture(3, covariance_type="tied", n_init=5, tol=1e-6, random_state=0)
    >>> round(float(gm.fit(X).score(X) * len(X)), 2)
    -1126.32
    >>> gm_map = GaussianMixture(3, covariance_type="tied", prior="default", random_state=0)
    >>> gm_map.fit(X).prior_.covariances.dof  # the default (pooled) prior: d + 2, as mclust
    4.0
    >>> gm.predict(X.iloc[:3]).shape
    (3,)
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        prior=None,
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        inner_tol: float = float(np.sqrt(np.finfo(float).eps)),
        inner_max_iter: int = 100,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.prior = prior
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.inner_tol = inner_tol
        self.inner_max_iter = inner_max_iter

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN = missing at random (see `fit`)
        return tags

    # -- fitting ----------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None) -> GaussianMixture:
        """Fit the mixture by EM.

        Parameters
        ----------
        X : array-like of shape (N, D)
            NaN marks a missing value (missing at random): EM then maximizes the
            likelihood of the observed values exactly (each row's marginal on its
            observed coordinates; :mod:`bayesgmm.core.missing`). Rows with nothing
            observed are ignored, with a warning; a column with nothing observed is an
            error. With much missing, EM converges more slowly: a tighter ``tol``
            (e.g. 1e-6) keeps it from stopping early.
        y : ignored
        sample_weight : array-like of shape (N,), optional
            Frequency weights: a weight of 2 fits exactly as the row repeated twice.

        Returns
        -------
        self
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit, then return the most probable component of every sample, shape ``(N,)``."""
        return self._fit(X, sample_weight).argmax(axis=1)

    def _fit(self, X, sample_weight) -> np.ndarray:
        if _is_dask(X):
            from bayesgmm._dask import as_dask_array, fit_dask, lazy_e_step

            fit_dask(self, X, sample_weight)
            return lazy_e_step(as_dask_array(X), self._params(), self.covariance_type, "log_resp")
        check_estimator_params(self)
        X_all = X = check_data(self, X, reset=True, min_samples=2)
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        X, sample_weight = _drop_empty_rows(X, sample_weight)
        n_samples, n_features = X.shape
        if n_samples < self.n_components:
            raise ValueError(
                f"Expected at least n_components={self.n_components} samples, got "
                f"n_samples={n_samples}."
            )
        inits = check_initial_params(
            self.weights_init,
            self.means_init,
            self.precisions_init,
            self.n_components,
            n_features,
            self.covariance_type,
        )
        prior = self._resolve_prior(X, sample_weight)
        warm = self.warm_start and hasattr(self, "converged_")
        if warm and self.means_.shape != (self.n_components, n_features):
            raise ValueError(
                "warm_start=True needs the same n_components and number of features as the "
                f"previous fit: means_ has shape {self.means_.shape}."
            )
        result, failures = fit_mixture(
            X,
            self.n_components,
            self.covariance_type,
            tol=self.tol,
            max_iter=self.max_iter,
            reg_covar=self.reg_covar,
            n_init=self.n_init,
            init_params=self.init_params,
            random_state=check_random_state(self.random_state),
            prior=prior,
            sample_weight=sample_weight,
            weights_init=inits[0],
            means_init=inits[1],
            precisions_init=inits[2],
            start=self._params() if warm else None,
            start_lower_bound=self.lower_bound_ if warm else -np.inf,
            callback=self._progress if self.verbose >= 2 else None,
            control=InnerControl(float(self.inner_tol), int(self.inner_max_iter)),
        )
        for err in failures:
            warnings.warn(
                f"Start {err.init} of {self.n_init} was discarded: {err}",
                ConvergenceWarning,
                stacklevel=3,
            )
        if not result.converged and self.max_iter > 0:
            warnings.warn(
                f"The best of {self.n_init} start(s) did not converge in max_iter="
                f"{self.max_iter} iterations (tol={self.tol}). Increase max_iter, loosen "
                "tol, try more starts (n_init), or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._set_params(result.params)
        self.prior_ = prior
        self.converged_ = bool(result.converged)
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self.lower_bounds_ = result.lower_bounds
        if self.verbose >= 1:
            state = "converged" if result.converged else "did not converge"
            print(
                f"GaussianMixture: best start {result.init} {state} after {result.n_iter} "
                f"iterations, mean log-likelihood {result.lower_bound:.6f}",
                file=sys.stderr,
            )
        # A final E-step so that fit_predict(X) equals fit(X).predict(X).
        _, log_resp = responsibilities(X, self._params(), self.covariance_type)
        self.degeneracies_ = find_degeneracies(
            X, np.exp(log_resp), self._params(), self.covariance_type, reg_covar=self.reg_covar,
            sample_weight=sample_weight, feature_names=getattr(self, "feature_names_in_", None),
            covariance_prior=prior is not None and prior.covariances is not None,
        )  # fmt: skip
        warn_degenerate(
            self.degeneracies_, reg_covar=self.reg_covar, prior=prior is not None, stacklevel=3
        )
        if X_all is not X:  # rows with nothing observed: the weights as memberships
            _, log_resp = responsibilities(X_all, self._params(), self.covariance_type)
        return log_resp

    def _resolve_prior(self, X: np.ndarray, sample_weight) -> GMMPrior | None:
        if isinstance(self.prior, str):  # the families without a prior: their own error
            get_covariance_model(self.covariance_type).check_prior_support()
        prior = resolve_prior(
            self.prior,
            X,
            self.n_components,
            self.covariance_type,
            sample_weight=sample_weight,
            feature_names=getattr(self, "feature_names_in_", None),
        )
        if prior is not None:
            prior.check(self.n_components, X.shape[1], self.covariance_type)
        return prior

    def _progress(self, init: int, iteration: int, lower_bound: float, change: float) -> None:
        if iteration % self.verbose_interval == 0:
            print(
                f"  start {init}, iteration {iteration}: objective {lower_bound:.6f} "
                f"(change {change:.3g})",
                file=sys.stderr,
            )

    def _set_params(self, params: GMMParams) -> None:
        model = get_covariance_model(self.covariance_type)
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_cholesky
        self.precisions_ = model.precisions(params.precisions_cholesky)
        n_components, n_features = params.means.shape
        self.volumes_, self.shapes_, self.orientations_ = model.decompose(
            params.covariances, n_components, n_features
        )

    def _params(self) -> GMMParams:
        return GMMParams(self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    # -- prediction ---------------------------------------------------------------
    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self)
        return check_data(self, X, reset=False)

    def score_samples(self, X) -> np.ndarray:
        """Log density of the mixture at every sample, shape ``(N,)`` (lazy for a Dask
        array)."""
        if _is_dask(X):
            return self._lazy(X, "log_prob_norm")
        return log_mixture_density(self._check_X(X), self._params(), self.covariance_type)

    def score(self, X, y=None, sample_weight=None) -> float:
        """Mean log-likelihood per sample (weighted by ``sample_weight`` if given)."""
        log_density = self.score_samples(X)
        weights = check_sample_weight(sample_weight, log_density.shape[0])
        return float(np.average(log_density, weights=weights))

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities (membership probabilities), shape ``(N, K)`` (lazy for a Dask
        array)."""
        if _is_dask(X):
            return self._lazy(X, "resp")
        _, log_resp = responsibilities(self._check_X(X), self._params(), self.covariance_type)
        return np.exp(log_resp)

    def _lazy(self, X, what: str):
        from bayesgmm._dask import as_dask_array, lazy_e_step

        check_is_fitted(self)
        X = as_dask_array(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but GaussianMixture is expecting "
                f"{self.n_features_in_} features as input."
            )
        return lazy_e_step(X, self._params(), self.covariance_type, what)

    def predict(self, X) -> np.ndarray:
        """Most probable component of every sample, shape ``(N,)`` (lazy for a Dask
        array)."""
        return self.predict_proba(X).argmax(axis=1)

    def impute(self, X, *, n_imputations: int | None = None, random_state=None) -> np.ndarray:
        r"""Fill in the missing values (NaN) of ``X`` under the fitted mixture.

        Without ``n_imputations``: every NaN replaced by its conditional mean
        :math:`E[x_M \mid x_O] = \sum_k r_k(x_O)\,(\mu_{k,M} + \Sigma_{k,MO}
        \Sigma_{k,OO}^{-1}(x_O - \mu_{k,O}))`, shape ``(N, D)``. With
        ``n_imputations=m``: ``m`` draws from :math:`p(x_M \mid x_O)` (a component by
        its responsibility, then the conditional Gaussian), shape ``(m, N, D)``, for
        multiple imputation. Observed values are never changed; a row with no
        observed value gets the mixture mean (or draws from the mixture).

        Parameters
        ----------
        X : array-like of shape (N, D), NaN where missing
        n_imputations : int, optional
            Number of draws; ``None`` gives the conditional mean.
        random_state : int, Generator, RandomState or None
            Seed of the draws (``None``: fresh randomness).

        Returns
        -------
        ndarray of shape (N, D) or (n_imputations, N, D)

        Examples
        --------
        >>> import numpy as np
        >>> from bayesgmm import GaussianMixture
        >>> from bayesgmm.datasets import load_faithful
        >>> X = load_faithful().to_numpy()
        >>> gm = GaussianMixture(2, random_state=0).fit(X)
        >>> holes = X[:3].copy()
        >>> holes[0, 1] = np.nan
        >>> filled = gm.impute(holes)
        >>> bool(np.isfinite(filled).all() and filled[0, 0] == X[0, 0])
        True
        >>> gm.impute(holes, n_imputations=5, random_state=0).shape
        (5, 3, 2)
        """
        X = self._check_X(X)
        params = self._params()
        if n_imputations is None:
            return impute_mean(X, params, self.covariance_type)
        if isinstance(n_imputations, bool) or not isinstance(n_imputations, int | np.integer):
            raise ValueError(f"n_imputations must be a positive integer; got {n_imputations!r}.")
        if n_imputations < 1:
            raise ValueError(f"n_imputations must be >= 1; got {n_imputations}.")
        rng = as_generator(random_state)
        return impute_draws(X, params, self.covariance_type, int(n_imputations), rng)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` points from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, D)
        labels : ndarray of shape (n_samples,)
            Component of each draw (sorted by component, as scikit-learn).
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer):
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1; got {n_samples}.")
        rng = check_random_state(self.random_state)
        return sample_mixture(rng, n_samples, self._params(), self.covariance_type)

    # -- information criteria -------------------------------------------------------
    def n_parameters(self) -> int:
        """Number of free parameters: ``K - 1`` weights, ``K D`` means, covariances."""
        check_is_fitted(self)
        n_features = self.means_.shape[1]
        model = get_covariance_model(self.covariance_type)
        cov_params = model.n_parameters(self.n_components, n_features)
        return int(cov_params + self.n_components * n_features + self.n_components - 1)

    def _criterion_terms(self, X, sample_weight) -> tuple[float, float, float]:
        """Log-likelihood, effective sample size and hard-classification entropy."""
        if _is_dask(X):
            import dask

            log_resp = self._lazy(X, "log_resp")
            log_norm = self._lazy(X, "log_prob_norm")
            w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
            if w is None:
                terms = (log_norm.sum(), log_norm.shape[0], log_resp.max(axis=1).sum())
            else:
                terms = (log_norm @ w, w.sum(), log_resp.max(axis=1) @ w)
            loglik, n, max_sum = dask.compute(*terms)
            return float(loglik), float(n), -float(max_sum)
        X = self._check_X(X)
        w = check_sample_weight(sample_weight, X.shape[0])
        # Rows with no observed value carry no information: they add nothing to the
        # log-likelihood and are not counted in n.
        X, w = _drop_empty_rows(X, w, warn=False)
        log_prob_norm, log_resp = responsibilities(X, self._params(), self.covariance_type)
        log_max_resp = log_resp.max(axis=1)
        if w is None:
            return float(log_prob_norm.sum()), float(X.shape[0]), -float(log_max_resp.sum())
        return float(log_prob_norm @ w), float(w.sum()), -float(log_max_resp @ w)

    def information_criteria(self, X, sample_weight=None) -> dict[str, float]:
        """Log-likelihood, BIC, AIC and ICL from one pass over ``X`` (lower is better).

        Returns
        -------
        dict
            Keys ``log_likelihood``, ``bic``, ``aic``, ``icl``; the same values as the
            methods of those names.
        """
        loglik, n, entropy = self._criterion_terms(X, sample_weight)
        p = self.n_parameters()
        bic = -2.0 * loglik + p * np.log(n)
        return {
            "log_likelihood": loglik,
            "bic": bic,
            "aic": -2.0 * loglik + 2.0 * p,
            "icl": bic + 2.0 * entropy,
        }

    def bic(self, X, sample_weight=None) -> float:
        r"""Bayesian information criterion, lower is better.

        .. math:: \mathrm{BIC} = -2 \log L(\hat\theta) + p \log n

        mclust's BIC is the negative of this.
        """
        return self.information_criteria(X, sample_weight)["bic"]

    def aic(self, X, sample_weight=None) -> float:
        r"""Akaike information criterion, lower is better: :math:`-2 \log L + 2p`."""
        return self.information_criteria(X, sample_weight)["aic"]

    def icl(self, X, sample_weight=None) -> float:
        r"""Integrated completed likelihood (mclust's ``icl``), lower is better.

        BIC plus twice the entropy of the hard classification:

        .. math:: \mathrm{ICL} = \mathrm{BIC} - 2 \sum_n \log \max_k r_{nk}

        mclust reports the negative.
        """
        return self.information_criteria(X, sample_weight)["icl"]


def _is_dask(X) -> bool:
    """Whether ``X`` is a Dask array or DataFrame (without importing Dask)."""
    return type(X).__module__.split(".")[0] == "dask"


def _drop_empty_rows(X: np.ndarray, sample_weight, *, warn: bool = True):
    """The rows with at least one observed value (and their weights)."""
    keep = observed_rows(X)
    if keep.all():
        return X, sample_weight
    if not keep.any():
        raise ValueError("X has no observed value at all (every entry is NaN).")
    if warn:
        warnings.warn(
            f"{int((~keep).sum())} of {X.shape[0]} rows have no observed value (all NaN) "
            "and carry no information: the fit ignores them.",
            UserWarning,
            stacklevel=4,
        )
    return X[keep], None if sample_weight is None else sample_weight[keep]
