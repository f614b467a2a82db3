"""``PosteriorGaussianMixture``: the full posterior of a Gaussian mixture, sampled with NUTS."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted

from bayesgmm._validation import check_data, check_number, check_random_state
from bayesgmm.bayes.relabel import match_to_reference, relabel_dataset
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import log_mixture_density, responsibilities
from bayesgmm.core.params import GMMParams
from bayesgmm.core.sampling import sample_mixture
from bayesgmm.mixture import GaussianMixture
from bayesgmm.priors import GMMPrior

__all__ = ["PosteriorGaussianMixture", "SamplingWarning"]

_SAMPLERS = ("nutpie", "pymc", "numpyro")
_PARAMS = ("weights", "means", "covariances")


class SamplingWarning(UserWarning):
    """The sampler's output needs attention (divergences, R-hat, ESS, stuck chains)."""


class PosteriorGaussianMixture(DensityMixin, BaseEstimator):
    r"""Full posterior of a Gaussian mixture: PyMC marginalized model sampled with NUTS.

    The model is :func:`bayesgmm.bayes.build_model` with the same prior a MAP fit
    uses, so the MAP-EM fit (``map_``) is the mode of the sampled posterior. Chains
    start at the MAP fit; draws are relabelled to it (label switching), keeping the raw
    draws in ``idata_["posterior_raw"]``.

    .. math:: p(\pi, \mu, \Sigma \mid X) \propto p(\pi)\,p(\mu, \Sigma)
              \prod_n \sum_k \pi_k N(x_n \mid \mu_k, \Sigma_k)

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    prior : 'default' or GMMPrior, default='default'
        ``'default'`` is mclust's default conjugate prior on the training data. A
        proper prior is needed for a proper posterior, so ``None`` is not accepted.
    draws, tune, chains : int, default=1000, 1000, 4
        Posterior draws and tuning steps per chain, and the number of chains.
    sampler : {'nutpie', 'pymc', 'numpyro'}, default='nutpie'
        NUTS implementation (``'numpyro'`` needs numpyro installed).
    init : {'map'}, default='map'
        Chains start at the MAP-EM fit. With ``'pymc'`` each chain starts at its own
        small jitter of it; nutpie takes one starting point for all chains (its
        warm-up then differs by chain).
    target_accept : float, default=0.8
        NUTS target acceptance rate; raise towards 0.95 if there are divergences.
    n_init : int, default=5
        EM starts for the MAP fit.
    random_state : int, numpy Generator, RandomState or None
        The same seed gives the same MAP fit and the same draws (a Generator gives
        one seed, drawn from it, to each call of ``fit`` and ``sample``).
    progressbar : bool, default=False

    Attributes
    ----------
    idata_ : xarray.DataTree
        Groups ``posterior`` (relabelled), ``posterior_raw``, ``sample_stats``,
        ``log_likelihood`` (per observation, for :func:`arviz.loo`) and
        ``observed_data``.
    map_ : GaussianMixture
        The MAP fit: starting point and relabelling reference.
    prior_ : GMMPrior
    weights_, means_, covariances_ : ndarray
        Posterior means (after relabelling), in scikit-learn's shapes.
    label_permutations_ : ndarray of shape (chains, draws, K)
        The relabelling applied to each draw.
    diagnostics_ : pandas.DataFrame
        Max R-hat and min bulk/tail ESS per parameter, before and after relabelling.
    n_divergences_ : int

    Examples
    --------
    >>> from bayesgmm.bayes import PosteriorGaussianMixture
    >>> from bayesgmm.datasets import make_mixture
    >>> X = make_mixture(100, n_components=2, n_features=1, separation=8, random_state=0).X
    >>> post = PosteriorGaussianMixture(2, covariance_type="spherical", draws=200, tune=200,
    ...                                 chains=2, random_state=0)
    >>> post.fit(X).weights_.shape  # doctest: +SKIP
    (2,)
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        prior="default",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        sampler: str = "nutpie",
        init: str = "map",
        target_accept: float = 0.8,
        n_init: int = 5,
        random_state=None,
        progressbar: bool = False,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.prior = prior
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.sampler = sampler
        self.init = init
        self.target_accept = target_accept
        self.n_init = n_init
        self.random_state = random_state
        self.progressbar = progressbar

    # -- fitting ------------------------------------------------------------------
    def _check_params(self) -> None:
        check_number("n_components", self.n_components, integer=True, low=1)
        get_covariance_model(self.covariance_type)
        check_number("n_init", self.n_init, integer=True, low=1)
        check_number("draws", self.draws, integer=True, low=1)
        check_number("tune", self.tune, integer=True, low=0)
        check_number("chains", self.chains, integer=True, low=1)
        if self.sampler not in _SAMPLERS:
            raise ValueError(f"Unknown sampler {self.sampler!r}; expected one of {_SAMPLERS}.")
        if self.init != "map":
            raise ValueError(f"Unknown init {self.init!r}; expected 'map'.")
        check_number("target_accept", self.target_accept, low=0.5)
        if self.target_accept >= 1.0:
            raise ValueError(f"`target_accept` must be < 1; got {self.target_accept!r}.")
        if self.prior is None:
            raise ValueError(
                "PosteriorGaussianMixture needs a proper prior: use prior='default' "
                "(mclust's conjugate prior) or a GMMPrior."
            )

    def fit(self, X, y=None) -> PosteriorGaussianMixture:
        """Fit the MAP start, sample the posterior with NUTS, relabel and summarize.

        Parameters
        ----------
        X : array-like of shape (N, D)
        y : ignored

        Returns
        -------
        self
        """
        import pymc as pm
        from threadpoolctl import threadpool_limits

        from bayesgmm.bayes.model import build_model

        self._check_params()
        X_given = X
        X = check_data(self, X, reset=True, min_samples=2)
        rng = check_random_state(self.random_state)
        map_seed, sample_seed, jitter_seed = (int(s) for s in rng.randint(2**31 - 1, size=3))
        prior = self.prior
        if isinstance(prior, str) and prior == "default":
            prior = GMMPrior.default(X, self.n_components, self.covariance_type)
        elif not isinstance(prior, GMMPrior):
            raise ValueError(f"`prior` must be 'default' or a GMMPrior; got {prior!r}.")
        map_fit = GaussianMixture(
            self.n_components,
            covariance_type=self.covariance_type,
            prior=prior,
            reg_covar=0.0 if prior.covariances is not None else 1e-6,
            n_init=self.n_init,
            tol=1e-8,
            max_iter=2000,
            random_state=map_seed,
        ).fit(X_given)
        data = (
            pd.DataFrame(X, columns=self.feature_names_in_)
            if hasattr(self, "feature_names_in_")
            else X
        )
        model = build_model(
            data, self.n_components, covariance_type=self.covariance_type, prior=map_fit.prior_
        )
        start = {name: getattr(map_fit, f"{name}_") for name in _PARAMS}
        kwargs = {
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
            "random_seed": sample_seed,
            "progressbar": self.progressbar,
            "target_accept": self.target_accept,
            "model": model,
            "compute_convergence_checks": False,
        }
        if self.sampler == "pymc":
            jitter_rng = np.random.default_rng(jitter_seed)
            kwargs["initvals"] = [
                _jittered(start, self.covariance_type, jitter_rng) for _ in range(self.chains)
            ]
            kwargs["cores"] = 1
        else:
            kwargs["nuts_sampler"] = self.sampler
            kwargs["initvals"] = start
            if self.sampler == "nutpie":
                kwargs["compile_kwargs"] = {"jitter_rvs": set()}
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*initvals.*")
            idata = pm.sample(**kwargs)
            pm.compute_log_likelihood(idata, model=model, progressbar=False)

        self.map_ = map_fit
        self.prior_ = map_fit.prior_
        self._store(idata, X)
        return self

    def _store(self, idata, X: np.ndarray) -> None:
        raw = idata["posterior"].to_dataset()[list(_PARAMS)]
        means = raw["means"].values
        chains, draws = means.shape[:2]
        perms = match_to_reference(
            means.reshape(chains * draws, *means.shape[2:]),
            self.map_._params(),
            self.covariance_type,
        ).reshape(chains, draws, self.n_components)
        perm_da = xr.DataArray(perms, dims=("chain", "draw", "component"))
        relabelled = relabel_dataset(raw, perm_da)
        idata["posterior_raw"] = xr.DataTree(raw)
        idata["posterior"] = xr.DataTree(relabelled)
        self.idata_ = idata
        self.label_permutations_ = perms
        post_mean = relabelled.mean(("chain", "draw"))
        self.weights_ = post_mean["weights"].values
        self.means_ = post_mean["means"].values
        self.covariances_ = post_mean["covariances"].values
        self.n_divergences_ = int(idata["sample_stats"]["diverging"].sum())
        self.diagnostics_ = self._diagnostics(raw, relabelled)
        self._warn_if_needed(X)

    def _diagnostics(self, raw: xr.Dataset, relabelled: xr.Dataset) -> pd.DataFrame:
        import arviz as az

        rows = []
        for label, ds in (("raw", raw), ("relabelled", relabelled)):
            rhat = az.rhat(ds)
            bulk = az.ess(ds, method="bulk")
            tail = az.ess(ds, method="tail")
            for name in _PARAMS:
                rows.append(
                    {
                        "parameter": name,
                        "draws": label,
                        "max_rhat": float(rhat[name].max()),
                        "min_ess_bulk": float(bulk[name].min()),
                        "min_ess_tail": float(tail[name].min()),
                    }
                )
        return pd.DataFrame(rows).set_index(["parameter", "draws"])

    def _warn_if_needed(self, X: np.ndarray) -> None:
        import arviz as az

        after = self.diagnostics_.xs("relabelled", level="draws")
        n_total = self.chains * self.draws
        messages = []
        if self.n_divergences_:
            messages.append(
                f"{self.n_divergences_} divergent transitions (of {n_total} draws): the "
                "posterior has regions NUTS cannot explore; raise target_accept (e.g. 0.95) "
                "and check the divergences in idata_.sample_stats."
            )
        if after["max_rhat"].max() > 1.01 and self.chains > 1:
            worst = after["max_rhat"].idxmax()
            messages.append(
                f"R-hat up to {after['max_rhat'].max():.3f} (for {worst}) after relabelling "
                "(> 1.01): the chains disagree; run more draws/tune or check the fit."
            )
        if after["min_ess_bulk"].min() < 100 * min(self.chains, 4):
            messages.append(
                f"Bulk ESS as low as {after['min_ess_bulk'].min():.0f}: posterior summaries "
                "are noisy; run more draws."
            )
        total_loglik = self.idata_["log_likelihood"].to_dataset()["x"].sum("obs")
        if self.chains > 1 and float(az.rhat(total_loglik)) > 1.05:
            messages.append(
                "The chains' log-likelihoods differ (R-hat of the total log-likelihood "
                f"{float(az.rhat(total_loglik)):.2f}): chains are stuck in different modes. "
                "Compare fits with different n_components or priors, or run longer."
            )
        for message in messages:
            warnings.warn(message, SamplingWarning, stacklevel=3)

    # -- draws ----------------------------------------------------------------------
    def _draw_params(self, max_draws: int | None = None) -> Iterator[GMMParams]:
        """Relabelled posterior draws as GMMParams (evenly thinned to ``max_draws``)."""
        check_is_fitted(self)
        post = self.idata_["posterior"].to_dataset()
        stacked = {
            name: post[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
            for name in _PARAMS
        }
        n_samples = stacked["weights"].shape[0]
        index = np.arange(n_samples)
        if max_draws is not None and n_samples > max_draws:
            index = np.linspace(0, n_samples - 1, max_draws).round().astype(int)
        model = get_covariance_model(self.covariance_type)
        for s in index:
            cov = stacked["covariances"][s]
            yield GMMParams(
                stacked["weights"][s], stacked["means"][s], cov, model.precision_cholesky(cov)
            )

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self)
        return check_data(self, X, reset=False)

    def predict_proba(self, X, *, max_draws: int = 1000) -> np.ndarray:
        """Posterior mean membership probabilities, shape ``(N, K)``."""
        X = self._check_X(X)
        total = np.zeros((X.shape[0], self.n_components))
        count = 0
        for params in self._draw_params(max_draws):
            total += np.exp(responsibilities(X, params, self.covariance_type)[1])
            count += 1
        return total / count

    def predict(self, X) -> np.ndarray:
        """Component with the highest posterior mean membership probability, ``(N,)``."""
        return self.predict_proba(X).argmax(axis=1)

    def membership_interval(self, X, prob: float = 0.94, *, max_draws: int = 1000):
        """Equal-tailed credible intervals of each point's membership probabilities.

        Returns
        -------
        ndarray of shape (N, K, 2)
            Lower and upper bounds.
        """
        if not 0 < prob < 1:
            raise ValueError(f"`prob` must be in (0, 1); got {prob!r}.")
        X = self._check_X(X)
        draws = np.stack(
            [
                np.exp(responsibilities(X, params, self.covariance_type)[1])
                for params in self._draw_params(max_draws)
            ]
        )
        tail = (1.0 - prob) / 2.0
        return np.moveaxis(np.quantile(draws, [tail, 1.0 - tail], axis=0), 0, -1)

    def score_samples(self, X, *, max_draws: int | None = None) -> np.ndarray:
        """Log posterior predictive density at each point (log-mean-exp over draws)."""
        X = self._check_X(X)
        logs = np.stack(
            [
                log_mixture_density(X, params, self.covariance_type)
                for params in self._draw_params(max_draws)
            ]
        )
        top = logs.max(axis=0)
        return top + np.log(np.exp(logs - top).mean(axis=0))

    def score(self, X, y=None) -> float:
        """Mean log posterior predictive density per sample."""
        return float(self.score_samples(X).mean())

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Posterior predictive draws: a random posterior draw, then a point from it.

        Returns
        -------
        X : ndarray of shape (n_samples, D)
        labels : ndarray of shape (n_samples,)
            Component (after relabelling) of each point.
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer):
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1; got {n_samples}.")
        rng = check_random_state(self.random_state)
        draws = list(self._draw_params())
        chosen = np.bincount(rng.randint(len(draws), size=n_samples), minlength=len(draws))
        parts = [
            sample_mixture(rng, int(count), draws[s], self.covariance_type)
            for s, count in enumerate(chosen)
            if count
        ]
        return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def co_clustering(self, X, *, max_draws: int = 500) -> np.ndarray:
        """Posterior probability that two points share a component, shape ``(N, N)``.

        Label-free: ``mean_s R_s R_s^T`` with ``R_s`` the responsibilities under draw s.
        """
        X = self._check_X(X)
        total = np.zeros((X.shape[0], X.shape[0]))
        count = 0
        for params in self._draw_params(max_draws):
            resp = np.exp(responsibilities(X, params, self.covariance_type)[1])
            total += resp @ resp.T
            count += 1
        return total / count

    def summary(self, **kwargs) -> pd.DataFrame:
        """ArviZ summary (mean, sd, interval, MCSE, ESS, R-hat) of the relabelled draws."""
        import arviz as az

        check_is_fitted(self)
        return az.summary(self.idata_, var_names=list(_PARAMS), **kwargs)


def _jittered(start: dict, covariance_type: str, rng: np.random.Generator) -> dict:
    """A small random perturbation of a MAP point (5% scale), staying valid."""
    weights = start["weights"] * np.exp(0.05 * rng.standard_normal(start["weights"].shape))
    model = get_covariance_model(covariance_type)
    n_components, n_features = start["means"].shape
    full = model.to_full(start["covariances"], n_components, n_features)
    scales = np.sqrt(np.diagonal(full, axis1=1, axis2=2))
    factor = np.exp(0.05 * rng.standard_normal(n_components))[:, None, None]
    return {
        "weights": weights / weights.sum(),
        "means": start["means"] + 0.05 * scales * rng.standard_normal(scales.shape),
        "covariances": model.from_full(full * factor),
    }
