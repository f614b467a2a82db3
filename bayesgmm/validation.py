r"""Simulation-based calibration (SBC) of the uncertainty methods.

Talts, Betancourt, Simpson, Vehtari & Gelman (2018), *Validating Bayesian inference
algorithms with simulation-based calibration*: draw :math:`\tilde\theta` from the prior,
data :math:`\tilde X` from the model, then :math:`L` draws :math:`\theta_1..\theta_L`
from the method's posterior given :math:`\tilde X`. If the method's posterior is the
true one, the rank :math:`\#\{l : \theta_l < \tilde\theta\}` of every scalar parameter
is uniform on :math:`\{0, \dots, L\}`. Too-narrow intervals give a U-shaped rank
histogram, too-wide ones a hump, a bias a slope.

Label switching: each fit is relabelled to the true parameters before ranking (one
permutation per fit, matching the mean of its draws' component means to the true
means by the Hungarian algorithm, :func:`bayesgmm.bayes.relabel.match_to_reference`).
When the prior often draws overlapping components this matching itself favours the
truth and makes even a correct method look over-dispersed (ranks piled in the
middle); choose priors whose components are usually separated (a small conjugate
``shrinkage``), or read the weights' ranks with that in mind.

The uniformity test per parameter is Pearson's chi-square on ``n_bins`` bins of the
ranks (expected counts exact for the discrete ranks), plus the simultaneous ECDF band
of Säilynoja, Bürkner & Vehtari (2022) (by simulation); the overall verdict is a
Bonferroni correction over the parameters.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bayesgmm._validation import as_generator, check_number
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams
from bayesgmm.core.sampling import sample_mixture, sample_prior
from bayesgmm.priors import GMMPrior

__all__ = ["SBC_METHODS", "SBCResult", "covered", "ecdf_band", "sbc"]

#: The built-in methods of :func:`sbc`.
SBC_METHODS = ("nuts", "laplace", "laplace_mode", "bootstrap", "information")


# --------------------------------------------------------------------------------------
# Parameters as one flat vector of scalar elements (each symmetric pair once)
# --------------------------------------------------------------------------------------


def _element_index(n_components: int, n_features: int, covariance_type: str):
    """Labels and flat indices of the reported covariance elements (upper triangle)."""
    model = get_covariance_model(covariance_type)
    shape = model.shape(n_components, n_features)
    names = [f"x{j}" for j in range(n_features)]
    flat, labels = [], []
    for where in np.ndindex(*shape):
        matrix = tuple(model.dims[-2:]) == ("feature", "feature_bis")
        if matrix and where[-1] < where[-2]:
            continue
        parts = [
            names[i] if dim in ("feature", "feature_bis") else str(i)
            for dim, i in zip(model.dims, where, strict=True)
        ]
        labels.append(f"covariances[{', '.join(parts)}]")
        flat.append(int(np.ravel_multi_index(where, shape)))
    return labels, np.array(flat)


def _labels(n_components: int, n_features: int, covariance_type: str) -> list[str]:
    names = [f"x{j}" for j in range(n_features)]
    # one component: the weight is 1 in every draw, nothing to rank
    out = [f"weights[{k}]" for k in range(n_components)] if n_components > 1 else []
    out += [f"means[{k}, {f}]" for k in range(n_components) for f in names]
    return out + _element_index(n_components, n_features, covariance_type)[0]


def _flatten(weights, means, covariances, covariance_type: str) -> np.ndarray:
    """(S, n_elements) from draws of shapes (S, K), (S, K, D), (S, *cov_shape)."""
    n_draws, n_components, n_features = np.shape(means)
    _, index = _element_index(n_components, n_features, covariance_type)
    cov = np.reshape(covariances, (n_draws, -1))[:, index]
    weights = np.reshape(weights, (n_draws, -1)) if n_components > 1 else np.empty((n_draws, 0))
    return np.hstack([weights, np.reshape(means, (n_draws, -1)), cov])


def _permute(draws: dict, perm: np.ndarray, covariance_type: str) -> dict:
    per_component = get_covariance_model(covariance_type).dims[0] == "component"
    return {
        "weights": draws["weights"][:, perm],
        "means": draws["means"][:, perm],
        "covariances": draws["covariances"][:, perm] if per_component else draws["covariances"],
    }


# --------------------------------------------------------------------------------------
# The methods: each returns draws {'weights': (S, K), 'means': (S, K, D), 'covariances'}
# --------------------------------------------------------------------------------------


def _map_fit(X, prior, n_components, covariance_type, n_init, seed):
    from bayesgmm.mixture import GaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(
            n_components,
            covariance_type=covariance_type,
            prior=prior,
            reg_covar=0.0,
            tol=1e-8,
            max_iter=2000,
            n_init=n_init,
            random_state=seed,
        ).fit(X)


def _stack(dataset) -> dict:
    return {
        name: dataset[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        for name in ("weights", "means", "covariances")
    }


def _laplace_draws(X, prior, n_components, covariance_type, n_draws, seed, n_init, center="map"):
    from bayesgmm._laplace import laplace

    fit = _map_fit(X, prior, n_components, covariance_type, n_init, seed)
    tree = laplace(fit, X, draws=n_draws, center=center, log_likelihood=False, random_state=seed)
    return _stack(tree["posterior"].to_dataset())


def _laplace_mode_draws(X, prior, n_components, covariance_type, n_draws, seed, n_init):
    return _laplace_draws(
        X, prior, n_components, covariance_type, n_draws, seed, n_init, center="mode"
    )


def _information_draws(X, prior, n_components, covariance_type, n_draws, seed, n_init):
    """Marginal Gaussians N(MAP, se^2) per element (the ranks are marginal)."""
    from bayesgmm.information import observed_information

    fit = _map_fit(X, prior, n_components, covariance_type, n_init, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = observed_information(fit, X)
    rng = np.random.default_rng(seed)
    est, se = info.estimate, info.se
    return {
        name: getattr(est, name)
        + getattr(se, name) * rng.standard_normal((n_draws, *np.shape(getattr(est, name))))
        for name in ("weights", "means", "covariances")
    }


def _bootstrap_draws(X, prior, n_components, covariance_type, n_draws, seed, n_init):
    from bayesgmm._bootstrap import bootstrap

    fit = _map_fit(X, prior, n_components, covariance_type, n_init, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = bootstrap(fit, X, n_boot=n_draws, random_state=seed)
    return _stack(boot.draws)


def _nuts_draws(X, prior, n_components, covariance_type, n_draws, seed, n_init):
    from bayesgmm.bayes.posterior import PosteriorGaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = PosteriorGaussianMixture(
            n_components,
            covariance_type=covariance_type,
            prior=prior,
            draws=max(500, n_draws),
            tune=500,
            chains=2,
            n_init=n_init,
            random_state=seed,
        ).fit(X)
    draws = _stack(post.idata_["posterior"].to_dataset())
    total = draws["weights"].shape[0]
    keep = np.linspace(0, total - 1, n_draws).round().astype(int)  # evenly thinned
    return {name: value[keep] for name, value in draws.items()}


_METHOD_FUNCTIONS: dict[str, Callable] = {
    "nuts": _nuts_draws,
    "laplace": _laplace_draws,
    "laplace_mode": _laplace_mode_draws,
    "bootstrap": _bootstrap_draws,
    "information": _information_draws,
}


# --------------------------------------------------------------------------------------
# Uniformity
# --------------------------------------------------------------------------------------


def _bin_edges(n_draws: int, n_bins: int) -> np.ndarray:
    """Rank-value edges: bin b holds ranks ``edges[b] <= r < edges[b + 1]``."""
    return np.round(np.linspace(0, n_draws + 1, n_bins + 1)).astype(int)


def ecdf_band(
    n_sims: int, n_draws: int, n_bins: int, prob: float = 0.95, *, n_sim: int = 2000, seed=0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simultaneous ``prob`` band of the rank ECDF under uniformity.

    At the evaluation points :math:`z_b` (fraction of rank values below bin edge
    ``b``), the count of ranks below is Binomial(``n_sims``, :math:`z_b`) under
    uniformity. The band is the pointwise central interval at the level
    :math:`1 - \\gamma` with :math:`\\gamma` chosen by simulation so that all points
    lie in it jointly with probability ``prob`` (Säilynoja et al. 2022).

    Returns
    -------
    z : ndarray of shape (n_bins - 1,)
        The evaluation points (fractions in (0, 1)).
    lower, upper : ndarray of shape (n_bins - 1,)
        Band of the ECDF (fractions of ``n_sims``).
    """
    edges = _bin_edges(n_draws, n_bins)[1:-1]
    z = edges / (n_draws + 1.0)
    rng = np.random.default_rng(seed)
    # ranks of n_sims simulations under uniformity, their ECDF counts at the edges
    ranks = rng.integers(0, n_draws + 1, size=(n_sim, n_sims))
    counts = (ranks[:, :, None] < edges[None, None, :]).sum(axis=1)
    tails = np.minimum(stats.binom.cdf(counts, n_sims, z), stats.binom.sf(counts - 1, n_sims, z))
    gamma = 2.0 * np.quantile(tails.min(axis=1), 1.0 - prob)
    lower = stats.binom.ppf(gamma / 2.0, n_sims, z) / n_sims
    upper = stats.binom.ppf(1.0 - gamma / 2.0, n_sims, z) / n_sims
    return z, lower, upper


@dataclass(frozen=True, eq=False)
class SBCResult:
    """Result of :func:`sbc`.

    Attributes
    ----------
    ranks : pandas.DataFrame of shape (n_sims, n_parameters)
        Rank of each true parameter element among the method's ``n_draws`` draws
        (0..n_draws), one row per successful simulation.
    truths : pandas.DataFrame
        The true parameter elements (same rows and columns).
    table : pandas.DataFrame
        Per parameter element: ``chi2`` and ``p_value`` (Pearson chi-square of the
        binned ranks against uniform), ``in_band`` (the rank ECDF inside the
        simultaneous band at level ``1 - alpha / n_parameters``), ``mean_rank``
        (``n_draws / 2`` expected).
    method : str
    n_draws, n_bins, n_failed : int
        Draws per fit, bins of the test, simulations whose fit failed (left out).
    alpha : float
        The family-wise level of :attr:`uniform`.
    """

    ranks: pd.DataFrame
    truths: pd.DataFrame
    table: pd.DataFrame
    method: str
    n_draws: int
    n_bins: int
    n_failed: int
    alpha: float

    @property
    def p_value(self) -> float:
        """Bonferroni-adjusted smallest per-parameter p-value."""
        return float(min(1.0, self.table["p_value"].min() * len(self.table)))

    @property
    def uniform(self) -> bool:
        """True when no parameter's ranks reject uniformity at the family-wise ``alpha``."""
        return bool(self.p_value >= self.alpha)


def _uniformity_table(ranks: pd.DataFrame, n_draws: int, n_bins: int, alpha: float):
    edges = _bin_edges(n_draws, n_bins)
    expected_share = np.diff(edges) / (n_draws + 1.0)
    n_sims, n_params = ranks.shape
    level = 1.0 - alpha / max(n_params, 1)
    _, lower, upper = ecdf_band(n_sims, n_draws, n_bins, prob=level)
    rows = []
    for label in ranks.columns:
        r = ranks[label].to_numpy()
        observed = np.histogram(r, bins=edges)[0]
        chi2, p_value = stats.chisquare(observed, expected_share * n_sims)
        ecdf = np.cumsum(observed)[:-1] / n_sims
        rows.append(
            {
                "parameter": label,
                "chi2": float(chi2),
                "p_value": float(p_value),
                "in_band": bool(np.all((ecdf >= lower - 1e-12) & (ecdf <= upper + 1e-12))),
                "mean_rank": float(r.mean()),
            }
        )
    return pd.DataFrame(rows).set_index("parameter")


# --------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------


def sbc(
    n_components: int,
    n_features: int,
    covariance_type: str,
    prior: GMMPrior,
    n_obs: int,
    n_sims: int,
    *,
    method: str | Callable = "laplace",
    n_draws: int = 99,
    n_bins: int | None = None,
    n_init: int = 1,
    alpha: float = 0.01,
    random_state=None,
    progress: bool = False,
) -> SBCResult:
    r"""Simulation-based calibration of an uncertainty method on simulated mixtures.

    For each of ``n_sims`` simulations: parameters from ``prior``
    (:func:`bayesgmm.core.sampling.sample_prior`), ``n_obs`` points from the mixture,
    a fit by ``method`` giving ``n_draws`` draws, relabelled to the true parameters
    (see the module docstring), and the rank of every true parameter element among
    them. Uniform ranks are what a calibrated method gives.

    Parameters
    ----------
    n_components, n_features : int
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    prior : GMMPrior
        Proper on every part (weights, means, covariances): it is drawn from. It is
        also the prior of the fits, so the test is of the method, not of the prior.
    n_obs : int
        Points per simulated data set.
    n_sims : int
        Simulations.
    method : {'laplace', 'laplace_mode', 'information', 'bootstrap', 'nuts'} or callable
        ``'laplace'``: :func:`bayesgmm.laplace` of the MAP fit (``'laplace_mode'``:
        with ``center='mode'``); ``'information'``:
        normal draws at the MAP with the observed-information standard errors;
        ``'bootstrap'``: the MAP fit's bootstrap replicates; ``'nuts'``:
        :class:`~bayesgmm.bayes.PosteriorGaussianMixture` (2 chains, thinned evenly
        to ``n_draws``; slow, one model compile per simulation). A callable
        ``method(X, prior, n_components, covariance_type, n_draws, seed, n_init)``
        returns a dict of draws ``{'weights': (S, K), 'means': (S, K, D),
        'covariances': (S, ...)}``: to calibrate your own method.
    n_draws : int, default=99
        Draws per fit (ranks lie in 0..n_draws).
    n_bins : int, optional
        Bins of the chi-square test and of the ECDF band; by default
        ``min(20, n_sims // 5, n_draws + 1)`` (at least 2).
    n_init : int, default=1
        EM starts of the MAP fits.
    alpha : float, default=0.01
        Family-wise level of :attr:`SBCResult.uniform` (Bonferroni over elements).
    random_state : int, numpy Generator, RandomState or None
    progress : bool, default=False
        One line per simulation on stderr.

    Returns
    -------
    SBCResult

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior
    >>> from bayesgmm.validation import sbc
    >>> prior = GMMPrior(DirichletPrior(5.0), NormalMeanPrior(np.zeros(1), shrinkage=0.02),
    ...                  CovariancePrior(5.0, 4.0))
    >>> result = sbc(1, 1, "full", prior, n_obs=50, n_sims=20, random_state=0)
    >>> result.ranks.shape  # one mean, one variance (a single weight is not ranked)
    (20, 2)
    """
    check_number("n_components", n_components, integer=True, low=1)
    check_number("n_features", n_features, integer=True, low=1)
    check_number("n_obs", n_obs, integer=True, low=2)
    check_number("n_sims", n_sims, integer=True, low=2)
    check_number("n_draws", n_draws, integer=True, low=1)
    check_number("n_init", n_init, integer=True, low=1)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must lie strictly between 0 and 1; got {alpha!r}.")
    if not isinstance(prior, GMMPrior):
        raise ValueError(f"`prior` must be a GMMPrior (proper on every part); got {prior!r}.")
    cov_type = get_covariance_model(covariance_type).name
    prior.check(n_components, n_features, cov_type)
    if callable(method):
        fit_draws, name = method, getattr(method, "__name__", "custom")
    elif method in _METHOD_FUNCTIONS:
        fit_draws, name = _METHOD_FUNCTIONS[method], method
    else:
        raise ValueError(
            f"Unknown method {method!r}; expected one of {SBC_METHODS} or a callable."
        )
    if n_bins is None:
        n_bins = max(2, min(20, n_sims // 5, n_draws + 1))
    check_number("n_bins", n_bins, integer=True, low=2)
    if n_bins > n_draws + 1:
        raise ValueError(f"`n_bins` must be <= n_draws + 1 = {n_draws + 1}; got {n_bins}.")

    from threadpoolctl import threadpool_limits

    rng = as_generator(random_state)
    labels = _labels(n_components, n_features, cov_type)
    # many small fits: BLAS/OpenMP threads only add overhead (k-means init: 30x here)
    with threadpool_limits(1):
        ranks, truths, n_failed = _simulate(
            rng, prior, n_components, n_features, cov_type, n_obs, n_sims, n_draws, n_init,
            fit_draws, progress,
        )  # fmt: skip
    if len(ranks) < 2:
        raise ValueError(f"Only {len(ranks)} of {n_sims} fits succeeded: nothing to test.")
    if n_failed:
        warnings.warn(
            f"{n_failed} of {n_sims} fits failed and are left out of the ranks (this can "
            "bias the calibration check if failures depend on the parameters).",
            UserWarning,
            stacklevel=2,
        )
    ranks_frame = pd.DataFrame(np.array(ranks), columns=labels)
    truths_frame = pd.DataFrame(np.array(truths), columns=labels)
    table = _uniformity_table(ranks_frame, n_draws, n_bins, alpha)
    return SBCResult(ranks_frame, truths_frame, table, name, n_draws, n_bins, n_failed, alpha)


def _simulate(
    rng, prior, n_components, n_features, cov_type, n_obs, n_sims, n_draws, n_init, fit_draws,
    progress,
):  # fmt: skip
    """The simulations: ranks, true values (lists of arrays) and the number of failures."""
    ranks, truths, n_failed = [], [], 0
    for sim in range(n_sims):
        truth = sample_prior(rng, prior, n_components, n_features, cov_type)
        X, _ = sample_mixture(rng, n_obs, truth, cov_type)
        seed = int(rng.integers(2**31 - 1))
        try:
            draws = fit_draws(X, prior, n_components, cov_type, n_draws, seed, n_init)
        except (ValueError, np.linalg.LinAlgError) as err:
            n_failed += 1
            if progress:
                print(f"sbc {sim + 1}/{n_sims}: fit failed ({err})", file=sys.stderr)
            continue
        draws = {k: np.asarray(v, dtype=float) for k, v in draws.items()}
        if draws["weights"].shape[0] != n_draws:
            raise ValueError(
                f"The method returned {draws['weights'].shape[0]} draws; expected {n_draws}."
            )
        perm = _to_truth(draws, truth, cov_type)
        draws = _permute(draws, perm, cov_type)
        flat = _flatten(draws["weights"], draws["means"], draws["covariances"], cov_type)
        true_flat = _flatten(
            truth.weights[None], truth.means[None], np.asarray(truth.covariances)[None], cov_type
        )[0]
        ranks.append((flat < true_flat[None, :]).sum(axis=0))
        truths.append(true_flat)
        if progress:
            print(f"sbc {sim + 1}/{n_sims}", file=sys.stderr)
    return ranks, truths, n_failed


def _to_truth(draws: dict, truth: GMMParams, covariance_type: str) -> np.ndarray:
    """One permutation for the whole fit: its mean component means matched to the truth."""
    from bayesgmm.bayes.relabel import match_to_reference

    centre = draws["means"].mean(axis=0)
    return match_to_reference(centre[None], truth, covariance_type)[0]


def covered(result: SBCResult, prob: float = 0.9) -> pd.DataFrame:
    r"""Whether each true element lies in the method's equal-tailed ``prob`` interval.

    The interval lies between the order statistics of the ``n_draws`` draws at
    ranks ``lo`` and ``n_draws + 1 - lo`` (1-based), with
    :math:`lo = (1 - prob)(n_draws + 1) / 2`; the truth lies in it exactly when its
    rank :math:`r` (draws below it) satisfies :math:`lo \le r \le n_draws - lo`.
    For a calibrated method the ranks are uniform on ``0..n_draws`` and this happens
    with probability ``prob`` exactly, so the mean of the returned frame is the
    empirical coverage (Bayesian coverage, averaged over the prior that drew the
    truths).

    Parameters
    ----------
    result : SBCResult
    prob : float, default=0.9
        Requires :math:`(1 - prob)(n\_draws + 1) / 2` to be an integer (e.g. 99 or
        199 draws for 0.9).

    Returns
    -------
    pandas.DataFrame of bool, same shape and labels as ``result.ranks``

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior
    >>> from bayesgmm.validation import covered, sbc
    >>> prior = GMMPrior(DirichletPrior(5.0), NormalMeanPrior(np.zeros(1), shrinkage=0.02),
    ...                  CovariancePrior(5.0, 4.0))
    >>> result = sbc(1, 1, "full", prior, n_obs=50, n_sims=20, random_state=0)
    >>> covered(result).shape
    (20, 2)
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"`prob` must lie strictly between 0 and 1; got {prob!r}.")
    lo = (1.0 - prob) * (result.n_draws + 1) / 2.0
    if abs(lo - round(lo)) > 1e-9 or round(lo) < 1:
        raise ValueError(
            f"(1 - prob) * (n_draws + 1) / 2 must be a positive integer for an exact "
            f"interval; got {lo!r} (prob={prob!r}, n_draws={result.n_draws})."
        )
    lo = round(lo)
    return (result.ranks >= lo) & (result.ranks <= result.n_draws - lo)
