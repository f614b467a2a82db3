"""``PosteriorGaussianMixture``: the full posterior of a Gaussian mixture, sampled with NUTS."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted

from bayesgmm._intervals import check_prob
from bayesgmm._validation import (
    as_generator,
    check_data,
    check_number,
    check_random_state,
    observed_rows,
)
from bayesgmm.bayes._kernel import prefetch, supports
from bayesgmm.bayes._postprocess import (
    _observed_log_likelihood,  # noqa: F401 (its home was here)
    chain_agreement,
    check_log_likelihood_memory,
    posterior_pass,
)
from bayesgmm.bayes._sampling import progress_default
from bayesgmm.bayes.relabel import RELABEL_METHODS, _relabel
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import responsibilities
from bayesgmm.core.estep import single_blas_thread
from bayesgmm.core.missing import impute_draws, impute_mean
from bayesgmm.core.params import GMMParams
from bayesgmm.core.sampling import sample_mixture
from bayesgmm.mixture import GaussianMixture
from bayesgmm.priors import PRIOR_NAMES, GMMPrior, resolve_prior

__all__ = ["PosteriorGaussianMixture", "SamplingWarning"]

_SAMPLERS = ("nutpie", "pymc", "numpyro")
_PARAMS = ("weights", "means", "covariances")


# chains disagree when the R-hat of the total log-likelihood exceeds this, or when a
# chain's membership probabilities move this much mass per point (total variation)
_RHAT_LOGLIK = 1.05
_MEMBERSHIP_SHIFT = 0.1


class SamplingWarning(UserWarning):
    """The sampler's output needs attention (divergences, R-hat, ESS, stuck chains)."""


class PosteriorGaussianMixture(DensityMixin, BaseEstimator):
    r"""Full posterior of a Gaussian mixture: PyMC marginalized model sampled with NUTS.

    The model is :func:`bayesgmm.bayes.build_model` with the same prior a MAP fit
    uses, so the MAP-EM fit (``map_``) is the mode of the sampled posterior. With
    nutpie, the sampler runs a numba implementation of exactly that model's log density
    and gradient (tested equal to PyMC's, also on data with NaN): compiled once per
    covariance family (and once more for data with NaN) and cached on disk, so a new
    data set, N, D, K, missingness pattern or prior never recompiles. Draws are
    relabelled (label switching) to the MAP fit, or by Stephens'
    Kullback--Leibler method (``relabel``), keeping the raw draws in
    ``idata_["posterior_raw"]``.

    .. math:: p(\pi, \mu, \Sigma \mid X) \propto p(\pi)\,p(\mu, \Sigma)
              \prod_n \sum_k \pi_k N(x_n \mid \mu_k, \Sigma_k)

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : str, default='full'
        One of 'full', 'tied', 'diag', 'spherical', 'EII', 'EEI', 'VEI', 'EVI'.
        Or mclust's names of the same: VVV, EEE, VVI, VII (and E, V in one dimension).
        VEI and EVI: the prior is a density in volume and log-shape coordinates
        (:func:`~bayesgmm.bayes.build_model`).
    prior : 'default', 'pooled', 'mclust' or GMMPrior, default='default'
        ``'default'`` (= ``'pooled'``, :meth:`~bayesgmm.priors.GMMPrior.pooled`) or
        ``'mclust'`` (mclust's default conjugate prior), built on the training data. A
        proper prior is needed for a proper posterior, so ``None`` is not accepted.
    draws, tune, chains : int, default=1000, 1000, 4
        Posterior draws and tuning steps per chain, and the number of chains.
    sampler : {'nutpie', 'pymc', 'numpyro'}, default='nutpie'
        NUTS implementation (``'numpyro'`` needs numpyro installed).
    init : {'map'}, default='map'
        Chains start near MAP-EM fits, each at its own point: chain 0 near the MAP fit
        (best of ``n_init`` EM starts), chain ``c`` near the fit from its own single
        random EM start (another local optimum where the data have several), each
        overdispersed by a normal draw with twice the Laplace scale of every
        unconstrained coordinate (``chain_starts_``). So between-chain R-hat, and the
        mode check below, can see chains that settle in different modes. (With
        ``sampler='pymc'``, or nutpie on the PyMC model for a prior form the kernel does
        not know, a 5% jitter of the MAP fit per chain.)
    target_accept : float, default=0.8
        NUTS target acceptance rate; raise towards 0.95 if there are divergences.
    n_init : int, default=5
        EM starts for the MAP fit.
    random_state : int, numpy Generator, RandomState or None
        The same seed gives the same MAP fit and the same draws (a Generator gives
        one seed, drawn from it, to each call of ``fit`` and ``sample``).
    progressbar : bool or None, default=None
        Show sampling progress (chains, draws, divergences so far) on stderr.
        ``None``: only when stderr is an interactive terminal (never under pytest).
    relabel : {'map', 'stephens'}, default='map'
        Label switching. ``'map'``: each draw's components matched to the MAP fit's
        (Hungarian assignment on Mahalanobis distances of the means). ``'stephens'``:
        Stephens' (2000) algorithm, which aligns the draws' classification
        probabilities of the training rows (minimum total Kullback--Leibler divergence
        to their average), started from the MAP match; it needs the draws x N x K
        probabilities on every pass, kept in memory up to 256 MiB and recomputed block
        by block above that (``max_bytes`` of :func:`~bayesgmm.relabel_draws`).

    Attributes
    ----------
    idata_ : xarray.DataTree
        Groups ``posterior`` (relabelled), ``posterior_raw``, ``sample_stats``,
        ``log_likelihood`` (per observation, for :func:`arviz.loo`) and
        ``observed_data``. ``log_likelihood`` takes 8 bytes per draw and row (320 MB
        for 4 x 1000 draws of 10 000 rows): ``fit`` raises ``MemoryError`` before
        sampling when the memory available cannot hold it.
    map_ : GaussianMixture
        The MAP fit: starting point and relabelling reference.
    prior_ : GMMPrior
    weights_, means_, covariances_ : ndarray
        Posterior means (after relabelling), in scikit-learn's shapes.
    label_permutations_ : ndarray of shape (chains, draws, K)
        The relabelling applied to each draw.
    relabel_info_ : dict
        ``"method"`` used, ``"n_permuted"`` (draws whose labels were changed),
        ``"n_draws"``; for Stephens also ``"iterations"``, ``"converged"``,
        ``"objective"`` (per iteration), ``"n_changed_from_map"``,
        ``"probabilities_in_memory"`` and ``"draws_per_block"`` (None when in memory).
        The same record is ``diagnostics_.attrs["relabel"]``.
    diagnostics_ : pandas.DataFrame
        Max R-hat and min bulk/tail ESS per parameter, before and after relabelling.
    n_divergences_ : int
    chain_starts_ : ndarray of shape (chains, n_dim)
        Each chain's start in the sampler's unconstrained space (nutpie: on the kernel,
        or for a prior form it does not know on the PyMC model's value variables; not set by
        ``sampler="pymc"/"numpyro"``).
    chains_disagree_ : bool
        Whether the chains settled in different modes: R-hat of the total
        log-likelihood above 1.05, or one chain's posterior-mean membership
        probabilities more than 0.1 (total variation, averaged over points) from the
        others'. Then a :class:`SamplingWarning` says so and what to do, the chains are
        combined by their modes' posterior mass
        (:func:`~bayesgmm.bayes.stack_chains` with ``method="mass"``, bridge sampling on
        the density the sampler ran; ``stacking_``; Bayesian stacking if the mass cannot
        be estimated), the point summaries and predictions use
        ``idata_["posterior_stacked"]`` (the chains resampled with those weights), and
        the raw chains stay in ``posterior`` / ``posterior_raw``. ``diagnostics_.attrs``
        holds ``"chains"`` (per chain: mean log-likelihood, membership shift, stacking
        weight, mass weight, log mass and its standard error, group),
        ``"rhat_log_likelihood"``, ``"stacking"`` (the stacking weights, for
        prediction, or None), ``"mass"`` (the mass weights the summaries use, or None),
        ``"weights_method"`` and ``"message"``.
    backend_ : {'kernel', 'pymc'}
        ``'kernel'``: nutpie on the hand-written numba density (no compilation per fit;
        data with or without NaN); ``'pymc'``: NUTS on :func:`build_model` (with nutpie
        compiled once per structure: covariance type, K, D, NaN or not, prior form),
        taken with ``sampler='pymc'`` or ``'numpyro'`` or a prior form the kernel does
        not know.
    timings_ : dict
        Seconds spent in the MAP fit, kernel loading, starts, sampling, post-processing
        (``"postprocess"``: decoding the draws, relabelling, the ``log_likelihood``
        group, R-hat/ESS, the mode check; :mod:`bayesgmm.bayes._postprocess`).

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
        progressbar: bool | None = None,
        relabel: str = "map",
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
        self.relabel = relabel

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN = missing at random (see `fit`)
        return tags

    # -- fitting ------------------------------------------------------------------
    def _check_params(self) -> None:
        check_number("n_components", self.n_components, integer=True, low=1)
        from bayesgmm.bayes.model import check_posterior_type

        check_posterior_type(self.covariance_type)  # also lists the supported types
        check_number("n_init", self.n_init, integer=True, low=1)
        check_number("draws", self.draws, integer=True, low=1)
        check_number("tune", self.tune, integer=True, low=0)
        check_number("chains", self.chains, integer=True, low=1)
        if self.sampler not in _SAMPLERS:
            raise ValueError(f"Unknown sampler {self.sampler!r}; expected one of {_SAMPLERS}.")
        if self.relabel not in RELABEL_METHODS:
            raise ValueError(
                f"Unknown relabel {self.relabel!r}; expected one of {RELABEL_METHODS}."
            )
        if self.init != "map":
            raise ValueError(f"Unknown init {self.init!r}; expected 'map'.")
        check_number("target_accept", self.target_accept, low=0.5)
        if self.target_accept >= 1.0:
            raise ValueError(f"`target_accept` must be < 1; got {self.target_accept!r}.")
        if self.prior is None:
            raise ValueError(
                "PosteriorGaussianMixture needs a proper prior: use prior='default' "
                "(the pooled conjugate prior), 'mclust' or a GMMPrior."
            )

    def fit(self, X, y=None) -> PosteriorGaussianMixture:
        """Fit the MAP start, sample the posterior with NUTS, relabel and summarize.

        Parameters
        ----------
        X : array-like of shape (N, D)
            NaN marks a missing value (missing at random). The MAP start is the
            missing-data EM fit, and the model's likelihood is each row's density of
            its observed coordinates, the missing ones integrated out analytically
            (:func:`~bayesgmm.bayes.build_model`): no latent variable per missing
            cell. Rows with no observed value are left out, with a warning; the
            ``obs`` coordinate of ``idata_`` holds the positions in ``X`` of the rows
            kept, and ``log_likelihood`` each one's observed-data log-likelihood.
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        X = check_data(self, X, reset=True, min_samples=2)
        self._training_rows = _row_hashes(X)  # predict_proba tells training rows from new
        keep = observed_rows(X)
        if not keep.all():
            warnings.warn(
                f"{int((~keep).sum())} of {X.shape[0]} rows have no observed value (all NaN) "
                "and carry no information: the fit ignores them (log_likelihood has one "
                "entry per other row; `obs` holds their positions in X).",
                UserWarning,
                stacklevel=2,
            )
            X = X[keep]
        if X.shape[0] < 2:
            raise ValueError(f"Expected at least 2 rows with an observed value; got {X.shape[0]}.")
        check_log_likelihood_memory(self.chains * self.draws, X.shape[0])  # before sampling
        rng = check_random_state(self.random_state)
        map_seed, sample_seed, jitter_seed = (int(s) for s in rng.randint(2**31 - 1, size=3))
        prior = self.prior
        if isinstance(prior, str) and prior in PRIOR_NAMES:
            prior = resolve_prior(prior, X, self.n_components, self.covariance_type)
        elif not isinstance(prior, GMMPrior):
            raise ValueError(
                f"`prior` must be one of {list(PRIOR_NAMES)} or a GMMPrior; got {prior!r}."
            )
        if self.sampler == "nutpie" and supports(prior, self.covariance_type):
            # a cold kernel (data with NaN: its missing-value callback) compiles during
            # the MAP fit
            prefetch(self.covariance_type, missing=bool(np.isnan(X).any()))
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        map_fit = self._map_estimator(prior, self.n_init, map_seed)
        names = getattr(self, "feature_names_in_", None)
        columns = names if names is not None else [f"x{j}" for j in range(X.shape[1])]
        data = pd.DataFrame(X, columns=columns, index=np.flatnonzero(keep))
        map_fit.fit(data if names is not None else X)
        timings["map"] = time.perf_counter() - t0
        self.map_ = map_fit
        self.prior_ = map_fit.prior_
        progressbar = progress_default() if self.progressbar is None else bool(self.progressbar)
        # data with NaN too: the kernel integrates the missing coordinates out
        use_kernel = self.sampler == "nutpie" and supports(map_fit.prior_, self.covariance_type)
        if use_kernel:
            idata = self._sample_kernel(X, data, sample_seed, jitter_seed, progressbar, timings)
        else:
            idata = self._sample_pymc(data, sample_seed, jitter_seed, progressbar, timings)
        self.backend_ = "kernel" if use_kernel else "pymc"
        t0 = time.perf_counter()
        self._store(idata, X, np.asarray(data.index))
        timings["postprocess"] = timings.get("postprocess", 0.0) + time.perf_counter() - t0
        self.timings_ = timings
        return self

    def _map_estimator(
        self, prior: GMMPrior, n_init: int, seed: int, tol: float = 1e-8, max_iter: int = 2000
    ) -> GaussianMixture:
        return GaussianMixture(
            self.n_components,
            covariance_type=self.covariance_type,
            prior=prior,
            reg_covar=0.0 if prior.covariances is not None else 1e-6,
            n_init=n_init,
            tol=tol,
            max_iter=max_iter,
            random_state=seed,
        )

    def _start_fit(self, X: np.ndarray, chain: int, rng: np.random.Generator) -> dict:
        """The optimum chain ``chain`` starts near (weights, means, covariances): the MAP
        fit for chain 0, else the MAP-EM fit from one random EM start of its own (a
        different local optimum where the data have several; the MAP fit if that start
        degenerates). ``X`` may hold NaN (the observed-data EM)."""
        fit = self.map_
        if chain > 0:
            seed_c = int(rng.integers(2**31 - 1))  # a start, not a reference: looser tol
            candidate = self._map_estimator(self.prior_, 1, seed_c, tol=1e-5, max_iter=300)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = candidate.fit(X)
            except (ValueError, np.linalg.LinAlgError):  # a degenerate start
                fit = self.map_
        return {name: getattr(fit, f"{name}_") for name in _PARAMS}

    def _chain_starts(self, X: np.ndarray, kernel_model, seed: int) -> tuple[np.ndarray, list]:
        """One start per chain, in the sampler's unconstrained space.

        Chain 0 starts near the MAP fit (best of ``n_init`` EM starts); chain ``c >= 1``
        near the MAP-EM fit from its own single random EM start (a different local
        optimum where the data have several). Each start is then overdispersed: a
        normal draw around that optimum with twice the Laplace scale of every
        unconstrained coordinate (``1 / sqrt(-H_ii)``, the diagonal of the log
        posterior's Hessian by finite differences of the kernel's gradient), so that
        between-chain R-hat can reveal chains that do not mix.
        """
        from bayesgmm.bayes._kernel import to_unconstrained

        rng = np.random.default_rng(seed)
        starts, objectives = [], []
        for c in range(self.chains):
            center = to_unconstrained(self._start_fit(X, c, rng), self.covariance_type)
            objectives.append(float(kernel_model.logp_and_grad(center)[0]))
            scale = _laplace_scale(kernel_model, center)
            noise = rng.standard_normal(center.size)
            for shrink in (2.0, 1.0, 0.5, 0.25, 0.0):
                theta = center + shrink * scale * noise
                value, grad = kernel_model.logp_and_grad(theta)
                if np.isfinite(value) and np.all(np.isfinite(grad)):
                    break
            starts.append(theta)
        return np.stack(starts), objectives

    def _sample_kernel(self, X, data, sample_seed, jitter_seed, progressbar, timings):
        """nutpie on the numba kernel (no per-fit compilation), dispersed starts."""
        from bayesgmm.bayes._kernel import make_kernel_model
        from bayesgmm.bayes._sampling import decode, run_chains

        t0 = time.perf_counter()
        km = make_kernel_model(X, self.prior_, self.covariance_type, self.n_components)
        km.logp_and_grad(np.zeros(km.n_dim))  # loads (or compiles) the kernel
        from bayesgmm.bayes._kernel import _cfuncs

        _cfuncs(self.covariance_type, km.missing)
        timings["compile"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        starts, _objectives = self._chain_starts(X, km, jitter_seed)
        self.chain_starts_ = starts
        timings["starts"] = time.perf_counter() - t0
        seeds = [
            int(s)
            for s in np.random.default_rng(sample_seed).integers(2**31 - 1, size=self.chains)
        ]
        with single_blas_thread():
            theta, sample_stats, seconds = run_chains(
                km,
                starts,
                draws=self.draws,
                tune=self.tune,
                seeds=seeds,
                target_accept=self.target_accept,
                progressbar=progressbar,
            )
        timings["sampling"] = seconds
        t0 = time.perf_counter()
        K, D = self.n_components, X.shape[1]
        weights, means, covariances = decode(theta, self.covariance_type, K, D)
        dims = get_covariance_model(self.covariance_type).dims
        coords = {
            "chain": np.arange(self.chains),
            "draw": np.arange(self.draws),
            "component": np.arange(K),
            "feature": list(data.columns),
            "feature_bis": list(data.columns),
            "obs": np.asarray(data.index),
        }
        sample = ("chain", "draw")
        posterior = xr.Dataset(
            {
                "weights": ((*sample, "component"), weights),
                "means": ((*sample, "component", "feature"), means),
                "covariances": (sample + tuple(dims), covariances),
            },
            coords={
                name: coords[name]
                for name in ("chain", "draw", "component", "feature", "feature_bis")
            },
            attrs={"sampling_time": seconds, "tuning_steps": self.tune},
        )
        observed = xr.Dataset(
            {"x": (("obs", "feature"), X)},
            coords={name: coords[name] for name in ("obs", "feature")},
        )
        sample_stats = sample_stats.assign_coords(draw=np.arange(self.draws))
        idata = xr.DataTree.from_dict(
            {
                "posterior": posterior,
                "sample_stats": sample_stats,
                "observed_data": observed,  # log_likelihood: `_store`, before this
            }
        )
        timings["postprocess"] = time.perf_counter() - t0
        return idata

    def _sample_pymc(self, data, sample_seed, jitter_seed, progressbar, timings):
        """NUTS on :func:`build_model`: the PyMC and numpyro samplers, and nutpie where
        the kernel does not apply (a prior form the kernel does not know). nutpie's
        compiled model, and the logp and gradient of PyMC's NUTS, are
        reused across fits of the same structure (covariance type, K, D, missing
        values or not, the prior's form: :mod:`bayesgmm.bayes._compiled`);
        ``pm.sample`` still compiles its small initial-point and trace functions
        ('pymc') or everything ('numpyro'). The log-likelihood (NumPy) is `_store`'s."""
        import pymc as pm
        from threadpoolctl import threadpool_limits

        from bayesgmm.bayes import _compiled
        from bayesgmm.bayes.model import build_model, initial_values

        t0 = time.perf_counter()
        model = build_model(
            data, self.n_components, covariance_type=self.covariance_type, prior=self.prior_
        )
        entry, _new = _compiled.lookup(model)
        timings["build"] = time.perf_counter() - t0
        start = {name: getattr(self.map_, f"{name}_") for name in _PARAMS}
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*initvals.*")
            if self.sampler == "nutpie":
                # Dispersed starts, as on the kernel path but without its Laplace scale
                # (no kernel here): chain 0 at the MAP fit, chain c >= 1 at a 5% jitter
                # of the MAP-EM fit from its own EM start.
                t_starts = time.perf_counter()
                rng = np.random.default_rng(jitter_seed)
                X = data.to_numpy()
                starts = [
                    self._start_fit(X, c, rng) if c == 0 else _jittered(
                        self._start_fit(X, c, rng), self.covariance_type, rng
                    )
                    for c in range(self.chains)
                ]  # fmt: skip
                timings["starts"] = time.perf_counter() - t_starts
                seeds = np.random.default_rng(sample_seed).integers(2**31 - 1, size=self.chains)
                idata, seconds, self.chain_starts_ = _compiled.sample_nutpie(
                    entry,
                    model,
                    [initial_values(s, self.covariance_type) for s in starts],
                    draws=self.draws,
                    tune=self.tune,
                    seeds=[int(s) for s in seeds],
                    target_accept=self.target_accept,
                    progressbar=progressbar,
                )
                timings.update(seconds)
            else:
                kwargs = {
                    "draws": self.draws,
                    "tune": self.tune,
                    "chains": self.chains,
                    "random_seed": sample_seed,
                    "progressbar": progressbar,
                    "target_accept": self.target_accept,
                    "model": model,
                    "compute_convergence_checks": False,
                    "nuts_sampler": self.sampler,
                }
                if self.sampler == "pymc":
                    jitter_rng = np.random.default_rng(jitter_seed)
                    kwargs["initvals"] = [
                        initial_values(
                            _jittered(start, self.covariance_type, jitter_rng),
                            self.covariance_type,
                        )
                        for _ in range(self.chains)
                    ]
                    kwargs["cores"] = 1
                    t0 = time.perf_counter()
                    kwargs["step"] = _compiled.pymc_nuts(  # compiled once per structure
                        entry,
                        model,
                        kwargs["initvals"],
                        seed=sample_seed,
                        target_accept=kwargs.pop("target_accept"),
                    )
                    del kwargs["nuts_sampler"]
                    timings["compile"] = time.perf_counter() - t0
                else:
                    kwargs["initvals"] = initial_values(start, self.covariance_type)
                t0 = time.perf_counter()
                idata = pm.sample(**kwargs)
                timings["sampling"] = time.perf_counter() - t0  # pm.sample's compiles included
        return idata

    def _store(self, idata, X: np.ndarray, obs: np.ndarray) -> None:
        """Relabel, then one pass over the draws for the ``log_likelihood`` group and the
        chains' memberships, with the R-hat/ESS table computed meanwhile
        (:func:`~bayesgmm.bayes._postprocess.posterior_pass`), and the mode check."""
        self._draws = None  # the draws' cache (`_draw_cache`)
        raw = idata["posterior"].to_dataset()[list(_PARAMS)]
        relabelled, perms, info = _relabel(raw, self.map_, method=self.relabel, X=X)
        loglik, members, diagnostics = posterior_pass(
            X, raw, relabelled, perms, self.covariance_type, diagnostics=True
        )
        log_likelihood = xr.Dataset(
            {"x": (("chain", "draw", "obs"), loglik)},
            coords={"chain": raw["chain"].values, "draw": raw["draw"].values, "obs": obs},
        )
        # the kernel path's tree had log_likelihood before observed_data, the PyMC one last
        before = "observed_data" if self.backend_ == "kernel" else None
        idata = _insert_group(idata, "log_likelihood", log_likelihood, before)
        idata["posterior_raw"] = xr.DataTree(raw)
        idata["posterior"] = xr.DataTree(relabelled)
        self.idata_ = idata
        self.label_permutations_ = perms
        self.relabel_info_ = info
        post_mean = relabelled.mean(("chain", "draw"))
        self.weights_ = post_mean["weights"].values
        self.means_ = post_mean["means"].values
        self.covariances_ = post_mean["covariances"].values
        self.n_divergences_ = int(idata["sample_stats"]["diverging"].sum())
        self.diagnostics_ = diagnostics
        self.diagnostics_.attrs["relabel"] = info
        self._check_modes(X, loglik, members)
        self._warn_if_needed(X)

    def _check_modes(self, X: np.ndarray, loglik: np.ndarray, members: np.ndarray) -> None:
        """Do the chains sample one mode? Compare their log-likelihood levels (R-hat of
        the total log-likelihood ``loglik`` (chain, draw, N) summed over points) and their
        clusterings (each chain's posterior-mean membership probabilities ``members``
        (chain, N, K) against all chains': the average total-variation distance per
        point). When they disagree, weight the chains by their modes' posterior mass
        (:func:`~bayesgmm.bayes.stacking.combine_estimator_chains`): point summaries and
        predictions then use the combined draws (``idata_["posterior_stacked"]``); the
        chains stay in ``posterior`` and ``posterior_raw``."""
        from bayesgmm.bayes.stacking import combination_text, combine_estimator_chains

        chain_mean, rhat_total, shift = chain_agreement(loglik.sum(axis=-1), members)
        level = self.chains > 1 and rhat_total > _RHAT_LOGLIK
        clustering = self.chains > 1 and float(shift.max()) > _MEMBERSHIP_SHIFT
        self.chains_disagree_ = bool(level or clustering)
        table = pd.DataFrame(
            {"mean_log_likelihood": chain_mean, "membership_shift": shift},
            index=pd.Index(np.arange(self.chains), name="chain"),
        )
        start_density = getattr(self, "_start_log_density", None)
        if start_density is not None and self.backend_ == "kernel":
            # log posterior density at the EM optimum each chain's start is drawn around
            table["start_optimum_log_density"] = start_density
        attrs = {
            "chains": table,
            "rhat_log_likelihood": rhat_total,
            "stacking": None,
            "mass": None,
            "weights_method": None,
        }
        self.stacking_ = None
        if self.chains_disagree_:
            stacking, mass_error = combine_estimator_chains(self, X)
            self.stacking_ = stacking
            table["stacking_weight"] = stacking.stacking_weights
            if stacking.method == "mass":
                table["mass_weight"] = stacking.weights
                table["log_mass"] = stacking.log_mass
                table["log_mass_se"] = stacking.log_mass_se
            table["group"] = stacking.groups
            attrs["stacking"] = stacking.stacking_weights
            attrs["mass"] = stacking.weights if stacking.method == "mass" else None
            attrs["weights_method"] = stacking.method
            self.idata_["posterior_stacked"] = xr.DataTree(stacking.posterior)
            stacked_mean = stacking.posterior.mean(("chain", "draw"))
            self.weights_ = stacked_mean["weights"].values
            self.means_ = stacked_mean["means"].values
            self.covariances_ = stacked_mean["covariances"].values
            why = []
            if level:
                levels = ", ".join(f"{v:.1f}" for v in chain_mean)
                why.append(
                    f"different log-likelihood levels (chain means {levels}; R-hat "
                    f"{rhat_total:.2f})"
                )
            if clustering:
                worst = int(shift.argmax())
                why.append(
                    f"different clusterings (chain {worst}'s membership probabilities "
                    f"differ from the others' by {shift.max():.0%} on average)"
                )
            attrs["message"] = (
                "The chains settled in different modes of the posterior: "
                + " and ".join(why)
                + ". Pooling them would weight each mode by how many chains happened to "
                "land there, so "
                + combination_text(stacking, mass_error)
                + " (raw chains kept in idata_). What to do: a mixture with components "
                "the data do not "
                "support often does this, so compare fits with fewer (or more) "
                "components (`bayesgmm select`, or BIC of GaussianMixture); a stronger "
                "prior (larger shrinkage or covariance dof) can remove a minor mode; "
                "and more chains or longer runs show how much weight each mode has."
            )
        else:
            attrs["message"] = "The chains agree (one mode)."
        self.diagnostics_.attrs.update(attrs)

    def _warn_if_needed(self, X: np.ndarray) -> None:

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
        if self.chains_disagree_:
            messages.append(self.diagnostics_.attrs["message"])
        for message in messages:
            warnings.warn(message, SamplingWarning, stacklevel=3)

    # -- draws ----------------------------------------------------------------------
    def _stacked_draws(self) -> dict[str, np.ndarray]:
        """Relabelled posterior draws, chains stacked: name -> array (S, ...)."""
        return self._draw_cache()[0]

    def _draw_cache(self) -> tuple[dict[str, np.ndarray], dict[int, GMMParams]]:
        """The stacked draws and the GMMParams (with their precision Cholesky factors)
        built so far, kept across calls of ``predict_proba``, ``score_samples``, ... (for
        this ``idata_``: a new fit, or another ``idata_``, starts afresh)."""
        check_is_fitted(self)
        group = "posterior_stacked" if "posterior_stacked" in self.idata_.children else "posterior"
        node = self.idata_[group]  # kept in the cache: compared by identity
        cache = self.__dict__.get("_draws")
        if cache is None or cache[0] is not node:
            post = self.idata_[group].to_dataset()
            stacked = {
                name: post[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
                for name in _PARAMS
            }
            cache = (node, stacked, {})
            self._draws = cache
        return cache[1], cache[2]

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object's may be the live __dict__
        state.pop("_draws", None)  # a cache, rebuilt on use
        return state

    def _params_of(self, stacked: dict[str, np.ndarray], s: int) -> GMMParams:
        cov = stacked["covariances"][s]
        model = get_covariance_model(self.covariance_type)
        return GMMParams(
            stacked["weights"][s], stacked["means"][s], cov, model.precision_cholesky(cov)
        )

    def _draw_params(self, max_draws: int | None = None) -> Iterator[GMMParams]:
        """Relabelled posterior draws as GMMParams (evenly thinned to ``max_draws``); each
        draw's precision factors are computed once (then cached)."""
        stacked, params = self._draw_cache()
        n_samples = stacked["weights"].shape[0]
        index = np.arange(n_samples)
        if max_draws is not None and n_samples > max_draws:
            index = np.linspace(0, n_samples - 1, max_draws).round().astype(int)
        for s in index:
            s = int(s)
            if s not in params:
                params[s] = self._params_of(stacked, s)
            yield params[s]

    def _check_X(self, X) -> np.ndarray:
        """Validated data (NaN allowed; the chunk kernel groups its patterns)."""
        check_is_fitted(self)
        return check_data(self, X, reset=False)

    def _responsibilities(self, X, max_draws: int | None) -> Iterator[np.ndarray]:
        """Log mixture density (N,) and responsibilities (N, K) under each draw."""
        X = self._check_X(X)
        for params in self._draw_params(max_draws):
            log_norm, log_resp = responsibilities(X, params, self.covariance_type)
            yield log_norm, np.exp(log_resp)

    def predict_proba(self, X, *, new_data: bool | None = None, max_draws: int = 1000):
        r"""Posterior membership probabilities, shape ``(N, K)``.

        For the training rows, :math:`P(z_i = k \mid X) = E_{\theta \mid X}[r_{ik}(\theta)]`,
        the posterior mean of the responsibilities (the posterior already conditions
        on :math:`x_i`). For a new point the predictive membership weights each draw
        by how well it explains the point:

        .. math:: P(z = k \mid x, X) = \frac{E_{\theta \mid X}[\pi_k N(x \mid \mu_k,
                  \Sigma_k)]}{E_{\theta \mid X}[p(x \mid \theta)]}.

        Parameters
        ----------
        X : array-like of shape (N, D)
        new_data : bool, optional
            ``True``: every row is a new point (the predictive form); ``False``: rows of
            the training data (the posterior mean). ``None`` (default): row by row, the
            training form for a row equal to a training row, else the predictive form.
        max_draws : int, default=1000
            Posterior draws used (evenly thinned).

        A row with NaN uses its observed coordinates (the component densities are
        marginals); a row with no observed value gets the posterior mean weights.
        """
        pairs = list(self._responsibilities(X, max_draws))
        resp = np.stack([r for _, r in pairs])  # (S, N, K)
        log_norm = np.stack([lg for lg, _ in pairs])  # (S, N)
        if new_data is None:
            known = getattr(self, "_training_rows", np.zeros(0, dtype=np.uint64))
            new_rows = ~np.isin(_row_hashes(self._check_X(X)), known)
        else:
            new_rows = np.full(resp.shape[1], bool(new_data))
        out = resp.mean(axis=0)
        if new_rows.any():
            logs = log_norm[:, new_rows]
            weights = np.exp(logs - logs.max(axis=0))
            weights /= weights.sum(axis=0)
            out[new_rows] = np.einsum("sn,snk->nk", weights, resp[:, new_rows])
        return out

    def predict(self, X) -> np.ndarray:
        """Component with the highest posterior mean membership probability, ``(N,)``."""
        return self.predict_proba(X).argmax(axis=1)

    def membership_interval(self, X, prob: float | None = None, *, max_draws: int = 1000):
        """Equal-tailed credible intervals of each point's membership probabilities.

        Rows with NaN use their observed coordinates, as in :meth:`predict_proba`.
        ``prob`` is the intervals' probability; the package's one level,
        :func:`bayesgmm.default_ci_prob`, when None.

        Returns
        -------
        ndarray of shape (N, K, 2)
            Lower and upper bounds.
        """
        prob = check_prob(prob)
        draws = np.stack([resp for _, resp in self._responsibilities(X, max_draws)])
        tail = (1.0 - prob) / 2.0
        return np.moveaxis(np.quantile(draws, [tail, 1.0 - tail], axis=0), 0, -1)

    def score_samples(self, X, *, max_draws: int | None = None) -> np.ndarray:
        """Log posterior predictive density at each point (log-mean-exp over draws).

        For a row with NaN, the density of its observed coordinates (the posterior
        predictive marginal); 0 for a row with no observed value.
        """
        logs = np.stack([log_norm for log_norm, _ in self._responsibilities(X, max_draws)])
        top = logs.max(axis=0)
        return top + np.log(np.exp(logs - top).mean(axis=0))

    def score(self, X, y=None) -> float:
        """Mean log posterior predictive density per sample."""
        return float(self.score_samples(X).mean())

    # -- imputation -----------------------------------------------------------------
    def impute(
        self, X, *, n_imputations: int | None = None, random_state=None, max_draws: int = 1000
    ) -> np.ndarray:
        r"""Fill in the missing values (NaN) of ``X`` under the posterior.

        Without ``n_imputations``: each NaN replaced by its posterior mean
        :math:`E[x_M \mid x_O, X_{\text{train}}] = E_\theta\, E[x_M \mid x_O, \theta]`,
        the conditional mean (:meth:`GaussianMixture.impute
        <bayesgmm.GaussianMixture.impute>`) averaged over (at most ``max_draws``,
        evenly thinned) posterior draws; shape ``(N, D)``.

        With ``n_imputations=m``: ``m`` draws from the posterior predictive of the
        missing values, shape ``(m, N, D)``. Each imputation takes one posterior draw
        :math:`\theta_s` at random (uniformly over all draws), then for every row a
        component with probability :math:`r_k(x_O \mid \theta_s)`, then
        :math:`x_M \sim N(\hat x_{k,M}, C_k)` under :math:`\theta_s`; so the
        uncertainty about the parameters is in the imputations (proper multiple
        imputation), not only the noise around a point estimate. Observed values are
        never changed; a row with no observed value gets the mixture's mean (or draws
        from the mixture).

        Parameters
        ----------
        X : array-like of shape (N, D), NaN where missing
        n_imputations : int, optional
            Number of imputed data sets; ``None`` gives the posterior mean.
        random_state : int, Generator, RandomState or None
            Seed of the draws (``None``: fresh randomness).
        max_draws : int, default=1000
            Posterior draws averaged for the posterior mean.

        Returns
        -------
        ndarray of shape (N, D) or (n_imputations, N, D)

        See Also
        --------
        imputation_interval : credible intervals of the imputed cells.
        """
        X = self._check_X(X)
        if n_imputations is None:
            total, count = 0.0, 0
            for params in self._draw_params(max_draws):
                total = total + impute_mean(X, params, self.covariance_type)
                count += 1
            out = total / count
            out[~np.isnan(X)] = X[~np.isnan(X)]  # observed values exactly as given
            return out
        if isinstance(n_imputations, bool) or not isinstance(n_imputations, int | np.integer):
            raise ValueError(f"n_imputations must be a positive integer; got {n_imputations!r}.")
        if n_imputations < 1:
            raise ValueError(f"n_imputations must be >= 1; got {n_imputations}.")
        rng = as_generator(random_state)
        stacked = self._stacked_draws()
        chosen = rng.integers(stacked["weights"].shape[0], size=int(n_imputations))
        out = np.empty((int(n_imputations), *X.shape))
        for s in np.unique(chosen):
            which = np.flatnonzero(chosen == s)
            params = self._params_of(stacked, int(s))
            out[which] = impute_draws(X, params, self.covariance_type, which.size, rng)
        return out

    def imputation_interval(
        self, X, prob: float | None = None, *, n_imputations: int = 1000, random_state=None
    ) -> np.ndarray:
        """Equal-tailed posterior predictive intervals of the missing values.

        Quantiles of :meth:`impute` with ``n_imputations`` draws (parameter uncertainty
        included); an observed cell's interval is its value at both ends.

        Parameters
        ----------
        X : array-like of shape (N, D), NaN where missing
        prob : float, optional
            Probability of the intervals; :func:`bayesgmm.default_ci_prob` when None.
        n_imputations : int, default=1000
        random_state : int, Generator, RandomState or None

        Returns
        -------
        ndarray of shape (N, D, 2)
            Lower and upper bounds of each cell.
        """
        prob = check_prob(prob)
        draws = self.impute(X, n_imputations=n_imputations, random_state=random_state)
        tail = (1.0 - prob) / 2.0
        return np.moveaxis(np.quantile(draws, [tail, 1.0 - tail], axis=0), 0, -1)

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
        total, count = 0.0, 0
        for _, resp in self._responsibilities(X, max_draws):
            total = total + resp @ resp.T
            count += 1
        return total / count

    def summary(self, **kwargs) -> pd.DataFrame:
        """ArviZ summary (mean, sd, interval, MCSE, ESS, R-hat) of the relabelled draws."""
        import arviz as az

        check_is_fitted(self)
        return az.summary(self.idata_, var_names=list(_PARAMS), **kwargs)


def _insert_group(tree: xr.DataTree, name: str, ds: xr.Dataset, before: str | None):
    """``tree`` with the group ``name`` added before the group ``before`` (last when
    None or absent)."""
    if before is None or before not in tree.children:
        tree[name] = xr.DataTree(ds)
        return tree
    groups: dict = {"/": tree.to_dataset(inherit=False)}
    for key, node in tree.children.items():
        if key == before:
            groups[name] = ds
        groups[key] = node.to_dataset(inherit=False)
    return xr.DataTree.from_dict(groups)


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


def _laplace_scale(kernel_model, theta: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """``1 / sqrt(-H_ii)`` at ``theta``: the Laplace scale of each unconstrained
    coordinate (central differences of the gradient); 0.1 where the curvature is not
    negative."""
    scale = np.empty(theta.size)
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = step
        hii = (
            kernel_model.logp_and_grad(theta + e)[1][i]
            - kernel_model.logp_and_grad(theta - e)[1][i]
        ) / (2 * step)
        scale[i] = 1.0 / np.sqrt(-hii) if np.isfinite(hii) and hii < 0 else 0.1
    return scale


def _row_hashes(X: np.ndarray) -> np.ndarray:
    """A 64-bit hash of every row (NaN hashes alike), to recognize training rows."""
    return pd.util.hash_pandas_object(pd.DataFrame(X), index=False).to_numpy()
