"""What the fit command computed (FitResult) and the tables made from it: the estimates,
the sampler messages, the memberships."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesgmm._intervals import default_ci_prob

_PARAMS = ("weights", "means", "covariances")
#: Rows of the "most uncertain points" table.
_N_UNCERTAIN = 10
_RHAT_LIMIT = 1.01
_DASH = "\N{EN DASH}"


# -- what the fit command computed ------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FitResult:
    """Everything ``bayesgmm fit`` computed, as the report needs it.

    Attributes
    ----------
    data_path : str
        The CSV file as given on the command line.
    X : pandas.DataFrame of shape (N, D)
        The data the models were fitted to (selected numeric columns, complete rows).
    n_components : int
    covariance_type : str
    methods : tuple of str
        Among ``'mle'``, ``'map'``, ``'posterior'``.
    seed : int
    settings : dict
        Command-line settings shown in the header (draws, tune, chains, bootstrap, ...).
    models : dict
        ``{'mle': GaussianMixture, 'map': GaussianMixture, 'posterior':
        PosteriorGaussianMixture}``, the methods that were fitted.
    bootstrap : BootstrapResult or None
    information : ObservedInformation or None
        Observed-information standard errors of the MLE (``--methods ...,information``).
    laplace : xarray.DataTree or None
        :func:`bayesgmm.laplace` at the MAP (``--methods ...,laplace``).
    data_notes : tuple of str
        What was done to the data on reading (columns or rows dropped).
    fit_warnings : tuple of str
        Warnings raised while fitting (deduplicated).
    timings : dict
        Seconds per step.
    """

    data_path: str
    X: pd.DataFrame
    n_components: int
    covariance_type: str
    methods: tuple[str, ...]
    seed: int
    settings: dict
    models: dict
    bootstrap: object = None
    information: object = None
    laplace: object = None
    data_notes: tuple[str, ...] = ()
    fit_warnings: tuple[str, ...] = ()
    timings: dict = field(default_factory=dict)

    @property
    def posterior(self):
        return self.models.get("posterior")


@dataclass(frozen=True)
class ReportFigure:
    """One figure of a report: its title, a caption and the PNG (None if not drawn)."""

    title: str
    caption: str
    png: bytes | None = None
    error: str | None = None


# -- tables ----------------------------------------------------------------------------
def _ci_prob() -> float:
    # The package's one interval level (bayesgmm.default_ci_prob: ArviZ's rcParams).
    return default_ci_prob()


def _table_prob(table: pd.DataFrame) -> float:
    """The interval level a table was computed at (its ``attrs``), else the default."""
    return float(table.attrs.get("ci_prob") or _ci_prob())


def estimates_table(result: FitResult) -> pd.DataFrame:
    """The comparison table of the report and of ``estimates.csv``.

    With a posterior it is :func:`bayesgmm.compare_estimates` (components aligned to
    the posterior's MAP fit). Without, a point-estimate table with the same leading
    columns (``parameter``, ``component``, ``feature``, ``feature_bis``, ``label``)
    and the columns ``mle``, ``mle_se``, ``mle_lower``, ``mle_upper`` (bootstrap) and
    ``map`` of the methods fitted; the MAP's components are aligned to the MLE's.
    ``attrs["ci_prob"]`` is the intervals' probability (the package's one level,
    :func:`bayesgmm.default_ci_prob`).
    """
    from bayesgmm.diagnostics import (
        compare_estimates,
        estimates_to_frame,
        params_to_dataset,
        stack_statistics,
    )

    mle = result.models.get("mle")
    prob = _ci_prob()
    if result.posterior is not None:
        return compare_estimates(
            result.posterior,
            mle,
            result.bootstrap,
            information=result.information,
            laplace=result.laplace,
            ci_prob=prob,
        )
    aligned = _aligned_models(result)
    mle = aligned.get("mle")

    names = [str(c) for c in result.X.columns]
    cov_type = result.covariance_type
    columns: dict[str, object] = {}
    if mle is not None:
        columns["mle"] = params_to_dataset(mle._params(), cov_type, names)
        if result.bootstrap is not None:
            bounds = result.bootstrap.intervals(prob=prob)
            columns["mle_se"] = result.bootstrap.standard_errors()
            columns["mle_lower"] = bounds.sel(bound="lower", drop=True)
            columns["mle_upper"] = bounds.sel(bound="upper", drop=True)
        if result.information is not None:
            from scipy.stats import norm

            from bayesgmm.diagnostics import _align

            info = result.information
            z = norm.ppf(0.5 + prob / 2.0)
            est = params_to_dataset(info.estimate, cov_type, names)
            se = info.se_dataset()
            ref = mle._params()
            columns["info_se"] = _align(se, info.estimate.means, ref, cov_type)
            columns["info_lower"] = _align(est - z * se, info.estimate.means, ref, cov_type)
            columns["info_upper"] = _align(est + z * se, info.estimate.means, ref, cov_type)
    if "map" in aligned:
        columns["map"] = params_to_dataset(aligned["map"]._params(), cov_type, names)
    if result.laplace is not None:
        from bayesgmm.diagnostics import _laplace_columns

        ref = next(iter(aligned.values()))._params()
        columns.update(_laplace_columns(result.laplace, None, ref, cov_type, prob, None))
    table = estimates_to_frame(stack_statistics(columns))
    table.attrs["ci_prob"] = prob
    return table


def _aligned_models(result: FitResult) -> dict:
    """The point-estimate fits with their components in the report's order.

    The reference is the posterior's MAP fit when there is a posterior (as in
    :func:`bayesgmm.compare_estimates`), else the MLE; the other fits get their
    components reordered to match it (:func:`bayesgmm.bayes.relabel.match_to_reference`),
    so "component 0" is the same component in every table and figure. The models
    saved in ``models.joblib`` are the fits as they are.
    """
    import copy

    from bayesgmm.bayes.relabel import match_to_reference
    from bayesgmm.core.covariance import get_covariance_model
    from bayesgmm.core.params import GMMParams

    posterior = result.posterior
    points = {k: result.models[k] for k in ("mle", "map") if k in result.models}
    if posterior is not None:
        reference = posterior.map_
    elif points:
        reference = next(iter(points.values()))
    else:
        return {}
    cov_type = result.covariance_type
    per_component = get_covariance_model(cov_type).dims[0] == "component"
    aligned = {}
    for key, model in points.items():
        perm = match_to_reference(model.means_[None], reference._params(), cov_type)[0]
        if model is reference or np.array_equal(perm, np.arange(len(perm))):
            aligned[key] = model
            continue
        p = model._params()
        params = GMMParams(
            p.weights[perm],
            p.means[perm],
            p.covariances[perm] if per_component else p.covariances,
            p.precisions_cholesky[perm] if per_component else p.precisions_cholesky,
        )
        aligned[key] = copy.deepcopy(model)
        aligned[key]._set_params(params)
    return aligned


def relabel_description(info: dict | None) -> str:
    """The relabelling a posterior used, in words, from its ``relabel_info_``.

    Examples
    --------
    >>> text = relabel_description({"method": "stephens", "n_permuted": 12, "n_draws": 400,
    ...                             "iterations": 3, "converged": True})
    >>> text.startswith("Stephens' (2000) Kullback-Leibler relabelling")
    True
    >>> text.split("memberships ")[1]
    '(12 of 400 draws permuted; converged in 3 iterations)'
    >>> relabel_description({"method": "map", "n_permuted": 0, "n_draws": 400})
    "relabelling every draw to the MAP fit's components (0 of 400 draws permuted)"
    """
    info = info or {}
    if info.get("method") == "stephens":
        how = "Stephens' (2000) Kullback-Leibler relabelling of the memberships"
    else:
        how = "relabelling every draw to the MAP fit's components"
    details = []
    if "n_permuted" in info and "n_draws" in info:
        details.append(f"{info['n_permuted']} of {info['n_draws']} draws permuted")
    if info.get("method") == "stephens" and "iterations" in info:
        state = "converged" if info.get("converged") else "stopped without converging"
        details.append(f"{state} in {info['iterations']} iterations")
    return how + (f" ({'; '.join(details)})" if details else "")


def sampler_messages(posterior) -> tuple[list[str], bool]:
    """Plain-language verdicts on the NUTS run, and whether any is a problem.

    Reads ``posterior.n_divergences_``, ``posterior.diagnostics_`` (max R-hat, min bulk
    and tail ESS per parameter before and after relabelling) and the chains' total
    log-likelihoods.

    Returns
    -------
    messages : list of str
    problem : bool
        False when the only message is that no problem was detected.
    """
    import arviz as az

    chains, draws = int(posterior.chains), int(posterior.draws)
    n_total = chains * draws
    diag = posterior.diagnostics_
    after = diag.xs("relabelled", level="draws")
    before = diag.xs("raw", level="draws")
    messages: list[str] = []
    n_div = int(posterior.n_divergences_)
    if n_div:
        messages.append(
            f"{n_div} divergent transition{'s' if n_div > 1 else ''} (of {n_total} draws): "
            "the sampler met regions of the posterior it could not follow, so the draws "
            "may misrepresent them. Rerun with more --tune; if they persist, the model "
            "(number of components, covariance type) may be a poor fit to the data."
        )
    if chains == 1:
        messages.append(
            "Only one chain: R-hat cannot tell whether the sampler converged. "
            "Run --chains 2 or more to check."
        )
    else:
        bad = after[after["max_rhat"] > _RHAT_LIMIT]
        if len(bad):
            parts = ", ".join(f"{p} ({v:.3f})" for p, v in bad["max_rhat"].items())
            messages.append(
                f"R-hat above {_RHAT_LIMIT} for {parts}: the chains disagree about these "
                "parameters, so their summaries are not trustworthy yet. Run more draws "
                "and tuning steps (--draws, --tune), or try another number of components."
            )
        switched = before[(before["max_rhat"] > _RHAT_LIMIT) & (after["max_rhat"] <= _RHAT_LIMIT)]
        if len(switched):
            messages.append(
                "Label switching in the raw draws (R-hat up to "
                f"{switched['max_rhat'].max():.2f} before relabelling) was resolved by "
                f"{relabel_description(getattr(posterior, 'relabel_info_', None))}; "
                "no action needed."
            )
        loglik = posterior.idata_["log_likelihood"].to_dataset()
        total = loglik[next(iter(loglik.data_vars))].sum("obs")
        rhat_total = float(az.rhat(total))
        if getattr(posterior, "chains_disagree_", False):  # modes found, chains stacked
            messages.append(posterior.diagnostics_.attrs["message"])
        elif rhat_total > 1.05:
            messages.append(
                f"The chains reached different log-likelihoods (R-hat {rhat_total:.2f}): "
                "they are probably stuck in different modes. Compare other numbers of "
                "components with `bayesgmm select`, or run longer."
            )
    min_ess = 100 * min(chains, 4)
    low = after[after["min_ess_bulk"] < min_ess]
    if len(low):
        parts = ", ".join(f"{p} ({v:.0f})" for p, v in low["min_ess_bulk"].items())
        messages.append(
            f"Low effective sample size (bulk ESS below {min_ess}) for {parts}: the "
            "posterior means and intervals are noisy. Run more draws (--draws)."
        )
    fine = (
        f"no divergent transitions, R-hat at most {_RHAT_LIMIT} and bulk ESS at least "
        f"{min_ess} for every parameter."
    )
    if not messages:
        return [f"No sampler problems detected: {fine}"], False
    if len(messages) == 1 and messages[0].startswith("Label switching"):
        return [*messages, f"No other sampler problems detected: {fine}"], False
    return messages, True


def _membership(result: FitResult) -> pd.DataFrame | None:
    """The most uncertain memberships: one row per point, most uncertain first."""
    from bayesgmm.diagnostics import membership_table

    posterior = result.posterior
    aligned = _aligned_models(result)
    model = aligned.get("map", aligned.get("mle"))
    if posterior is None and model is None:
        return None
    table = membership_table(result.X, model if posterior is None else None, posterior)
    prefix = "post_" if posterior is not None else ""
    probs = table[[f"{prefix}p{k}" for k in range(result.n_components)]].to_numpy()
    chosen = probs.argmax(axis=1)
    out = pd.DataFrame(index=result.X.index)
    out.index.name = "row"
    for col in result.X.columns:
        out[str(col)] = result.X[col].to_numpy()
    out["component"] = chosen
    out["probability"] = probs.max(axis=1)
    if posterior is not None:
        rows = np.arange(len(table))
        lower = table[[f"post_p{k}_lower" for k in range(result.n_components)]].to_numpy()
        upper = table[[f"post_p{k}_upper" for k in range(result.n_components)]].to_numpy()
        out["prob_lower"] = lower[rows, chosen]
        out["prob_upper"] = upper[rows, chosen]
    out["uncertainty"] = 1.0 - out["probability"]
    return out.sort_values("uncertainty", ascending=False, kind="stable")
