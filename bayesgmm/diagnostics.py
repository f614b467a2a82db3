"""Point estimates next to the posterior: comparison tables, memberships, model choice.

Everything here returns data (pandas or xarray); :mod:`bayesgmm.plotting` draws it.
Components are aligned across methods to the posterior's reference, its MAP fit
(the same assignment as the posterior's relabelling), so row ``means[0, x]`` is the
same component for MLE, MAP, bootstrap and posterior.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm._intervals import check_prob
from bayesgmm.core.covariance import COVARIANCE_TYPES, get_covariance_model
from bayesgmm.core.params import GMMParams

__all__ = [
    "ModelComparison",
    "compare_estimates",
    "compare_models",
    "membership_table",
    "params_to_dataset",
]

_PARAMS = ("weights", "means", "covariances")


def params_to_dataset(
    params: GMMParams,
    covariance_type: str,
    feature_names: Iterable[str],
    lead: tuple[str, ...] = (),
) -> xr.Dataset:
    """Parameters as a Dataset named and dimensioned like the posterior group's.

    ``lead`` names leading dimensions the arrays carry (e.g. ``("chain", "draw")``
    for stacked draws).

    Examples
    --------
    >>> import numpy as np
    >>> p = GMMParams(np.array([0.3, 0.7]), np.zeros((2, 1)), np.ones(2), np.ones(2))
    >>> params_to_dataset(p, "spherical", ["x"])["covariances"].dims
    ('component',)
    """
    names = list(feature_names)
    dims = get_covariance_model(covariance_type).dims
    coords = {
        "component": np.arange(np.shape(params.weights)[-1]),
        "feature": names,
        "feature_bis": names,
    }
    ds = xr.Dataset(
        {
            "weights": ((*lead, "component"), np.asarray(params.weights)),
            "means": ((*lead, "component", "feature"), np.asarray(params.means)),
            "covariances": ((*lead, *dims), np.asarray(params.covariances)),
        }
    )
    return ds.assign_coords({d: coords[d] for d in ds.dims if d in coords})


def _align(ds: xr.Dataset, means: np.ndarray, reference: GMMParams, cov_type: str):
    """Reorder ``ds``'s components (estimated with ``means``) to match ``reference``."""
    from bayesgmm.bayes.relabel import match_to_reference

    perm = match_to_reference(means[None], reference, cov_type)[0]
    return ds.isel(component=perm).assign_coords(component=np.arange(len(perm)))


def _feature_names(posterior) -> list[str]:
    return [str(f) for f in posterior.idata_["posterior"]["feature"].values]


def compare_estimates(
    posterior,
    mle=None,
    bootstrap=None,
    *,
    information=None,
    laplace=None,
    ci_prob: float | None = None,
    ci_kind: str | None = None,
    fmt: str = "dataframe",
):
    r"""MLE, MAP and the posterior side by side, one row per parameter element.

    Parameters
    ----------
    posterior : PosteriorGaussianMixture
        Fitted; its MAP fit (``posterior.map_``) is the MAP column and the alignment
        reference.
    mle : GaussianMixture, optional
        A maximum-likelihood fit of the same model (its labels need not match).
    bootstrap : BootstrapResult, optional
        Bootstrap of ``mle`` (or of any fit of the same model) for the MLE's standard
        error and percentile interval.
    information : ObservedInformation, optional
        :func:`bayesgmm.observed_information` of ``mle`` (or of any fit of the same
        model): the columns ``info_se``, ``info_lower``, ``info_upper`` (Wald interval
        at the same probability as the credible interval).
    laplace : xarray.DataTree, optional
        :func:`bayesgmm.laplace` of the same model: the columns ``laplace_mean``,
        ``laplace_sd``, ``laplace_lower``, ``laplace_upper`` (the interval of the
        approximation's draws, of the same kind and probability as the credible
        interval). Its components are aligned by its MAP (``laplace/map_means``).
    ci_prob, ci_kind : float, str, optional
        Credible interval probability and kind ('eti' or 'hdi'). When None, the
        package's one interval level, :func:`bayesgmm.default_ci_prob` (ArviZ's
        ``rcParams["stats.ci_prob"]``, 0.89 unless changed), and ArviZ's
        ``rcParams["stats.ci_kind"]``. The bootstrap and Wald intervals use the same
        probability; ``attrs["ci_prob"]`` and ``attrs["ci_kind"]`` of the result say which
        were used.
    fmt : {'dataframe', 'xarray'}
        A tidy DataFrame, or a Dataset with a ``statistic`` dimension.

    Returns
    -------
    pandas.DataFrame or xarray.Dataset
        Columns (statistics): ``mle``, ``mle_se``, ``mle_lower``, ``mle_upper``, ``map``,
        ``post_mean``, ``post_sd``, ``ci_lower``, ``ci_upper``, ``r_hat``, ``ess_bulk``,
        ``ess_tail``, ``mcse_mean``, ``info_se``, ``info_lower``, ``info_upper``,
        ``laplace_mean``, ``laplace_sd``, ``laplace_lower``, ``laplace_upper``,
        ``mle_in_ci``, ``map_in_ci``,
        ``shrinkage_sd`` :math:`= (\hat\theta_{MAP} - \hat\theta_{MLE}) / \mathrm{sd}`
        and ``mean_shift_sd`` :math:`= (E[\theta \mid X] - \hat\theta_{MLE}) /
        \mathrm{sd}`, in posterior standard deviations. Read them together: the prior
        moves the whole posterior (both columns), while the MAP is also the *mode* of a
        posterior that is skewed for variances and small weights, so
        ``shrinkage_sd`` mixes the prior's pull with that skewness (and depends on the
        parameterization: the mode of :math:`\Sigma` is not the mode of
        :math:`\log\Sigma`); ``mean_shift_sd`` is the gap between the posterior mean
        and the MLE. The DataFrame also has ``parameter``, ``component``, ``feature``,
        ``feature_bis`` and ``label`` (ArviZ's row label).
    """
    import arviz as az
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(posterior, "idata_")
    prob = check_prob(ci_prob, "ci_prob")
    if fmt not in ("dataframe", "xarray"):
        raise ValueError(f"Unknown fmt {fmt!r}; expected 'dataframe' or 'xarray'.")
    cov_type = posterior.covariance_type
    names = _feature_names(posterior)
    reference = posterior.map_._params()
    summary = az.summary(
        posterior.idata_,
        var_names=list(_PARAMS),
        fmt="xarray",
        round_to="none",
        ci_prob=prob,
        ci_kind=ci_kind,
    )
    stat_names = [str(s) for s in summary["summary"].values]
    lower = next(s for s in stat_names if s.endswith("_lb"))
    upper = next(s for s in stat_names if s.endswith("_ub"))

    def stat(name):
        return summary.sel(summary=name, drop=True)

    columns = {
        "map": params_to_dataset(reference, cov_type, names),
        "post_mean": stat("mean"),
        "post_sd": stat("sd"),
        "ci_lower": stat(lower),
        "ci_upper": stat(upper),
        "r_hat": stat("r_hat"),
        "ess_bulk": stat("ess_bulk"),
        "ess_tail": stat("ess_tail"),
        "mcse_mean": stat("mcse_mean"),
    }
    nan = xr.full_like(columns["map"], np.nan)
    columns["mle"] = nan
    columns["mle_se"] = nan
    columns["mle_lower"] = nan
    columns["mle_upper"] = nan
    if mle is not None:
        mle_ds = params_to_dataset(mle._params(), cov_type, names)
        columns["mle"] = _align(mle_ds, mle.means_, reference, cov_type)
    if bootstrap is not None:
        ref_means = bootstrap.reference.means_
        bounds = bootstrap.intervals(prob=prob)
        columns["mle_se"] = _align(bootstrap.standard_errors(), ref_means, reference, cov_type)
        columns["mle_lower"] = _align(
            bounds.sel(bound="lower", drop=True), ref_means, reference, cov_type
        )
        columns["mle_upper"] = _align(
            bounds.sel(bound="upper", drop=True), ref_means, reference, cov_type
        )
    columns["info_se"] = nan
    columns["info_lower"] = nan
    columns["info_upper"] = nan
    if information is not None:
        from scipy.stats import norm

        z = norm.ppf(0.5 + prob / 2.0)
        ref_means = information.estimate.means
        est = params_to_dataset(information.estimate, cov_type, names)
        se = information.se_dataset()
        columns["info_se"] = _align(se, ref_means, reference, cov_type)
        columns["info_lower"] = _align(est - z * se, ref_means, reference, cov_type)
        columns["info_upper"] = _align(est + z * se, ref_means, reference, cov_type)
    columns.update(_laplace_columns(laplace, nan, reference, cov_type, ci_prob, ci_kind))
    inside = {}
    for key in ("mle", "map"):
        value = columns[key]
        flag = (value >= columns["ci_lower"]) & (value <= columns["ci_upper"])
        inside[f"{key}_in_ci"] = flag.where(value.notnull())
    columns.update(inside)
    columns["shrinkage_sd"] = (columns["map"] - columns["mle"]) / columns["post_sd"]
    columns["mean_shift_sd"] = (columns["post_mean"] - columns["mle"]) / columns["post_sd"]
    order = [
        "mle", "mle_se", "mle_lower", "mle_upper", "map", "post_mean", "post_sd",
        "ci_lower", "ci_upper", "r_hat", "ess_bulk", "ess_tail", "mcse_mean",
        "info_se", "info_lower", "info_upper", *_LAPLACE_COLUMNS,
        "mle_in_ci", "map_in_ci", "shrinkage_sd", "mean_shift_sd",
    ]  # fmt: skip
    dataset = stack_statistics({c: columns[c] for c in order})
    dataset.attrs.update(ci_prob=prob, ci_kind=lower.split("_")[0][:3])
    if fmt == "xarray":
        return dataset
    return estimates_to_frame(dataset)


_LAPLACE_COLUMNS = ("laplace_mean", "laplace_sd", "laplace_lower", "laplace_upper")


def _laplace_columns(tree, nan, reference, cov_type, ci_prob, ci_kind) -> dict:
    """The Laplace approximation's mean, sd and interval, aligned to ``reference``."""
    if tree is None:
        return dict.fromkeys(_LAPLACE_COLUMNS, nan)
    import arviz as az

    summary = az.summary(
        tree,
        var_names=list(_PARAMS),
        kind="stats",
        fmt="xarray",
        round_to="none",
        ci_prob=ci_prob,
        ci_kind=ci_kind,
    )
    stat_names = [str(s) for s in summary["summary"].values]
    lower = next(s for s in stat_names if s.endswith("_lb"))
    upper = next(s for s in stat_names if s.endswith("_ub"))
    means = tree["laplace"]["map_means"].values
    return {
        column: _align(summary.sel(summary=name, drop=True), means, reference, cov_type)
        for column, name in zip(_LAPLACE_COLUMNS, ("mean", "sd", lower, upper), strict=True)
    }


def stack_statistics(columns: dict[str, xr.Dataset]) -> xr.Dataset:
    """Datasets of the same parameters (one per statistic) stacked along ``statistic``."""
    return xr.concat(
        [ds[list(_PARAMS)].astype(float) for ds in columns.values()],
        dim=pd.Index(list(columns), name="statistic"),
        coords="minimal",
        compat="override",
        join="override",
    )


def estimates_to_frame(dataset: xr.Dataset) -> pd.DataFrame:
    """One row per parameter element, one column per statistic (a tidy table).

    The leading columns are ``parameter``, ``component``, ``feature``, ``feature_bis``
    (missing where a parameter has no such dimension) and ``label`` (ArviZ's).
    """
    frames = []
    for name in _PARAMS:
        da = dataset[name]
        element_dims = [d for d in da.dims if d != "statistic"]
        frame = da.to_series().unstack("statistic").reset_index()
        frame.insert(0, "parameter", name)
        frame["label"] = [
            f"{name}[{', '.join(str(row[d]) for d in element_dims)}]" if element_dims else name
            for _, row in frame.iterrows()
        ]
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    for col in ("component", "feature", "feature_bis"):
        if col not in table:
            table[col] = np.nan
    lead = ["parameter", "component", "feature", "feature_bis", "label"]
    stats_cols = list(dataset["statistic"].values)
    table = table[lead + stats_cols]
    for flag in ("mle_in_ci", "map_in_ci"):
        if flag in table:
            table[flag] = table[flag].map({1.0: True, 0.0: False}).astype("boolean")
    table.attrs.update(dataset.attrs)
    return table


def membership_table(X, model=None, posterior=None, *, prob: float | None = None) -> pd.DataFrame:
    """Membership uncertainty per point: point estimate next to the posterior.

    Parameters
    ----------
    X : array-like of shape (N, D)
    model : GaussianMixture, optional
        MLE or MAP fit: columns ``p{k}`` (responsibilities), ``classification`` and
        mclust's ``uncertainty`` = 1 - max responsibility.
    posterior : PosteriorGaussianMixture, optional
        Columns ``post_p{k}`` (posterior mean membership), ``post_p{k}_lower``/
        ``_upper`` (equal-tailed ``prob`` intervals), ``post_classification`` and
        ``post_uncertainty``. When both are given, ``model``'s components are aligned to
        the posterior's.
    prob : float, optional
        Probability of the intervals; the package's one level,
        :func:`bayesgmm.default_ci_prob`, when None.

    Returns
    -------
    pandas.DataFrame
        One row per point; ``attrs["ci_prob"]`` is the intervals' probability.
    """
    if model is None and posterior is None:
        raise ValueError("membership_table needs a fitted `model`, `posterior`, or both.")
    prob = check_prob(prob)
    columns: dict[str, np.ndarray] = {}
    if model is not None:
        resp = model.predict_proba(X)
        if posterior is not None:
            from bayesgmm.bayes.relabel import match_to_reference

            perm = match_to_reference(
                model.means_[None], posterior.map_._params(), posterior.covariance_type
            )[0]
            resp = resp[:, perm]
        for k in range(resp.shape[1]):
            columns[f"p{k}"] = resp[:, k]
        columns["classification"] = resp.argmax(axis=1)
        columns["uncertainty"] = 1.0 - resp.max(axis=1)
    if posterior is not None:
        mean = posterior.predict_proba(X)
        bounds = posterior.membership_interval(X, prob=prob)
        for k in range(mean.shape[1]):
            columns[f"post_p{k}"] = mean[:, k]
            columns[f"post_p{k}_lower"] = bounds[:, k, 0]
            columns[f"post_p{k}_upper"] = bounds[:, k, 1]
        columns["post_classification"] = mean.argmax(axis=1)
        columns["post_uncertainty"] = 1.0 - mean.max(axis=1)
    table = pd.DataFrame(columns)
    if posterior is not None:
        table.attrs["ci_prob"] = prob
    return table


@dataclass(frozen=True)
class ModelComparison:
    """Result of :func:`compare_models`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (n_components, covariance_type): ``bic``, ``aic``, ``icl`` (MLE) and
        ``bic_map``, ``aic_map``, ``icl_map`` (MAP fits, data likelihood at the MAP;
        lower is better), ``error`` and ``error_map`` (why a fit failed, ``''`` if it
        did not: a failing MAP grid leaves the MLE results intact), and with
        posteriors ``elpd_loo``, ``se_loo``, ``p_loo`` (PSIS-LOO; higher is better).
    choices : pandas.DataFrame
        The model each criterion chooses.
    posteriors : dict
        The fitted :class:`PosteriorGaussianMixture` per (K, covariance_type).
    """

    table: pd.DataFrame
    choices: pd.DataFrame
    posteriors: dict


def compare_models(
    X,
    n_components: Iterable[int] = range(1, 6),
    covariance_types: Iterable[str] = COVARIANCE_TYPES,
    *,
    posterior: bool = False,
    prior="default",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    relabel: str = "map",
    n_init: int = 5,
    random_state=None,
    progress: bool = False,
) -> ModelComparison:
    """BIC, AIC and ICL of MLE and MAP fits next to PSIS-LOO of posterior fits.

    Parameters
    ----------
    X : array-like of shape (N, D)
    n_components, covariance_types : iterables
        The grid.
    posterior : bool, default=False
        Also sample every model's posterior and compute PSIS-LOO (slow: one NUTS run,
        with its compile, per cell).
    prior : str or GMMPrior, default='default'
        The prior of the MAP fits and of the posterior fits: a name (``'default'`` =
        ``'pooled'``, ``'mclust'``) resolved per cell, as in :func:`bayesgmm.select_model`.
    draws, tune, chains : int
        For the posterior fits.
    relabel : {'map', 'stephens'}, default='map'
        The posterior fits' relabelling (``PosteriorGaussianMixture(relabel=...)``);
        it changes their per-component summaries, not their PSIS-LOO.
    n_init, random_state, progress
        As in :func:`bayesgmm.select_model`.

    Returns
    -------
    ModelComparison
    """
    from bayesgmm.selection import SelectionError, select_model

    ks = list(n_components)
    types = list(covariance_types)
    mle = select_model(
        X, ks, types, n_init=n_init, random_state=random_state, progress=progress
    ).table
    try:
        map_ = select_model(
            X, ks, types, n_init=n_init, random_state=random_state, progress=progress,
            prior=prior,
        ).table  # fmt: skip
    except SelectionError as err:  # the MAP grid failing must not sink the MLE one
        map_ = err.table
    keys = ["n_components", "covariance_type"]
    table = mle[[*keys, "mclust_name", "log_likelihood", "bic", "aic", "icl", "error"]].merge(
        map_[[*keys, "bic", "aic", "icl", "error"]], on=keys, suffixes=("", "_map")
    )
    fitted: dict = {}
    if posterior:
        import arviz as az

        from bayesgmm.bayes.posterior import PosteriorGaussianMixture

        elpd, se, p_loo = [], [], []
        for _, row in table.iterrows():
            key = (int(row["n_components"]), row["covariance_type"])
            if progress:
                print(f"posterior K={key[0]} {key[1]}", file=sys.stderr)
            post = PosteriorGaussianMixture(
                key[0], covariance_type=key[1], prior=prior, draws=draws, tune=tune,
                chains=chains, relabel=relabel, n_init=n_init, random_state=random_state,
            ).fit(X)  # fmt: skip
            loo = az.loo(post.idata_)
            fitted[key] = post
            elpd.append(float(loo.elpd))
            se.append(float(loo.se))
            p_loo.append(float(loo.p))
        table = table.assign(elpd_loo=elpd, se_loo=se, p_loo=p_loo)
    choices = []
    for criterion in ("bic", "aic", "icl", "bic_map", "aic_map", "icl_map", "elpd_loo"):
        if criterion not in table or table[criterion].isna().all():
            continue
        best = table[criterion].idxmax() if criterion == "elpd_loo" else table[criterion].idxmin()
        choices.append(
            {
                "criterion": criterion,
                "n_components": int(table.loc[best, "n_components"]),
                "covariance_type": table.loc[best, "covariance_type"],
                "value": float(table.loc[best, criterion]),
            }
        )
    return ModelComparison(table=table, choices=pd.DataFrame(choices), posteriors=fitted)
