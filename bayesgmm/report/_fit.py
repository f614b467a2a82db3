"""The fit report: its header, the estimates table as read, the HTML page, the files list
and the text summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from bayesgmm._intervals import level_columns, level_label
from bayesgmm.report._figures import _fit_figures, _upper_triangle
from bayesgmm.report._html import (
    _esc,
    _figure_html,
    _fmt,
    _html_table,
    _meta,
    _page,
    _para,
    _verdicts,
)
from bayesgmm.report._tables import (
    _DASH,
    _N_UNCERTAIN,
    _RHAT_LIMIT,
    FitResult,
    _ci_prob,
    _membership,
    _table_prob,
    estimates_table,
    relabel_description,
    sampler_messages,
)

# -- the fit report ----------------------------------------------------------------------
_METHOD_NAMES = {
    "mle": "maximum likelihood (EM)",
    "map": "MAP (EM with the conjugate prior below)",
    "posterior": "full posterior (NUTS)",
    "information": "observed-information standard errors of the MLE (Wald intervals)",
    "laplace": "Laplace approximation of the posterior at the MAP",
}


def _header_items(result: FitResult, version: str) -> list[tuple[str, str]]:
    X = result.X
    s = result.settings
    methods = ", ".join(_METHOD_NAMES[m] for m in result.methods)
    items = [
        ("data file", result.data_path),
        ("observations (N)", str(X.shape[0])),
        ("features (D)", str(X.shape[1])),
        ("columns", ", ".join(str(c) for c in X.columns)),
        ("components (K)", str(result.n_components)),
        ("covariance type", result.covariance_type),
        ("methods", methods),
    ]
    if "posterior" in result.methods:
        items.append(
            ("sampling", f"{s['chains']} chains x ({s['tune']} tuning + {s['draws']} draws)")
        )
        info = getattr(result.models.get("posterior"), "relabel_info_", None)
        if info is not None:
            items.append(("label switching", relabel_description(info)))
    if result.bootstrap is not None:
        boot = result.bootstrap
        items.append(
            (
                "bootstrap",
                f"{boot.n_boot} replicates of the MLE ({boot.n_failed} failed, "
                f"{boot.n_degenerate} degenerate)",
            )
        )
    items += _prior_items(result)
    items += [("seed", str(result.seed)), ("bayesgmm version", version)]
    if result.timings:
        items.append(
            ("fitting time", ", ".join(f"{m} {t:.1f} s" for m, t in result.timings.items()))
        )
    for note in result.data_notes:
        items.append(("note", note))
    return items


def _prior_items(result: FitResult) -> list[tuple[str, str]]:
    """The prior of the MAP fit and the posterior, in plain words with its
    hyperparameters (:meth:`bayesgmm.priors.GMMPrior.describe`); for mclust's families
    beyond scikit-learn's four, a note that the covariance prior is that density
    evaluated on the family's covariances (as mclust's priorControl)."""
    from bayesgmm.core.covariance import COVARIANCE_TYPES, get_covariance_model

    for key in ("map", "posterior"):
        prior = getattr(result.models.get(key), "prior_", None)
        if prior is not None:
            text = prior.describe()
            family = get_covariance_model(result.covariance_type)
            if prior.covariances is not None and family.name not in COVARIANCE_TYPES:
                text += (
                    f" For {result.covariance_type} ({family.mclust_name}) the covariance "
                    "prior is that density evaluated on the family's covariances (once for "
                    "what all components share), as mclust's conjugate prior."
                )
            return [("prior", text)]
    return []


_TABLE_COLUMNS = {
    "label": "element",
    "mle": "MLE",
    "mle_se": "MLE s.e. (bootstrap)",
    "mle_interval": "MLE {level} interval (bootstrap)",
    "info_se": "MLE s.e. (information)",
    "info_interval": "MLE {level} interval (Wald)",
    "map": "MAP",
    "laplace_sd": "Laplace sd",
    "laplace_interval": "Laplace {level} interval",
    "post_mean": "posterior mean",
    "post_sd": "posterior sd",
    "ci": "{level} credible interval",
    "r_hat": "R-hat",
    "ess_bulk": "ESS bulk",
    "shrinkage_sd": "MAP - MLE (sd)",
    "mean_shift_sd": "posterior mean - MLE (sd)",
}


def _table_titles(prob: float) -> dict[str, str]:
    """The column titles, the interval ones carrying the level (``89% credible interval``)."""
    return {k: v.format(level=level_label(prob)) for k, v in _TABLE_COLUMNS.items()}


_DIAGNOSTIC_COLUMNS = {
    "max_rhat": "max R-hat",
    "min_ess_bulk": "min ESS bulk",
    "min_ess_tail": "min ESS tail",
}


def _display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The estimates condensed for reading: intervals as 'lower – upper', empty columns out."""

    def interval(lower: str, upper: str) -> pd.Series:
        return pd.Series(
            [
                _DASH if np.isnan(lo) else f"[{lo:.4g}, {hi:.4g}]"
                for lo, hi in zip(table[lower], table[upper], strict=True)
            ],
            index=table.index,
        )

    shown = pd.DataFrame(index=table.index)
    shown["parameter"] = table["parameter"]
    for key in _TABLE_COLUMNS:
        if key == "mle_interval" and "mle_lower" in table:
            if table["mle_lower"].notna().any():
                shown[key] = interval("mle_lower", "mle_upper")
        elif key == "info_interval" and "info_lower" in table:
            if table["info_lower"].notna().any():
                shown[key] = interval("info_lower", "info_upper")
        elif key == "laplace_interval" and "laplace_lower" in table:
            if table["laplace_lower"].notna().any():
                shown[key] = interval("laplace_lower", "laplace_upper")
        elif key == "ci" and "ci_lower" in table:
            shown[key] = interval("ci_lower", "ci_upper")
        elif key in table and (key == "label" or table[key].notna().any()):
            shown[key] = table[key]
    return shown


def _estimates_html(table: pd.DataFrame, names: Sequence[str], posterior) -> str:
    shown = _display_table(_upper_triangle(table, names))
    groups = shown.pop("parameter").to_numpy()
    prob = _table_prob(table)
    titles = _table_titles(prob)
    formats = {titles["ess_bulk"]: lambda v: _fmt(v) if pd.isna(v) else f"{v:.0f}"}
    bad = {titles["r_hat"]: lambda v: v > _RHAT_LIMIT}
    rendered = _html_table(shown.rename(columns=titles), formats=formats, bad=bad, groups=groups)
    if posterior is not None:
        kind = "highest-density" if table.attrs.get("ci_kind") == "hdi" else "equal-tailed"
        explain = (
            f"Credible intervals are {level_label(prob)} {kind} intervals of the posterior"
            " (the bootstrap and Wald intervals, where shown, are at the same level; set "
            "arviz.rcParams['stats.ci_prob'] to change it). "
            "MAP - MLE and posterior mean - MLE: the gaps, in "
            "posterior standard deviations. The prior moves the whole posterior (both "
            "gaps); the MAP is also the mode of a skewed posterior (variances, small "
            "weights), so its gap is often the larger. Components are aligned across "
            "methods to the posterior's MAP fit. Covariances: each symmetric pair is shown "
            "once. All rows and columns are in estimates.csv."
        )
    else:
        explain = (
            "Point estimates"
            + (
                f"; the MLE's bootstrap interval holds {level_label(prob)} of the replicates"
                if "mle_lower" in table and table["mle_lower"].notna().any()
                else ""
            )
            + ". MAP components are aligned to the MLE's. Covariances: each symmetric pair "
            "is shown once. All rows and columns are in estimates.csv."
        )
    return f"<p>{_esc(explain)}</p>{rendered}"


def fit_report(
    result: FitResult,
    warn: Callable[[str], None] = lambda message: None,
    *,
    posterior_pickled: bool = True,
) -> tuple[pd.DataFrame, str, str]:
    """The estimates table, the HTML report and the text summary of a fit.

    Parameters
    ----------
    result : FitResult
    warn : callable, optional
        Called with a one-line message for each figure that could not be drawn.
    posterior_pickled : bool, default=True
        Whether ``models.joblib`` holds the posterior with its draws (``idata_``);
        if not, the files list says the draws are in ``posterior.nc``.

    Returns
    -------
    table : pandas.DataFrame
        For ``estimates.csv``.
    page : str
        The self-contained HTML report.
    summary : str
        The text summary (``summary.txt``).
    """
    from bayesgmm import __version__

    table = estimates_table(result)
    figures = _fit_figures(result, table, warn)
    membership = _membership(result)
    posterior = result.posterior
    if posterior is not None:
        messages, problem = sampler_messages(posterior)
    else:
        messages, problem = [], False

    title = (
        f"bayesgmm fit: {result.n_components}-component {result.covariance_type}-covariance "
        "Gaussian mixture"
    )
    body = [
        f"<h1>{_esc(title)}</h1>",
        f'<p class="lead">{_esc(result.data_path)}: '
        f"{result.X.shape[0]} observations of {result.X.shape[1]} features.</p>",
        _meta(_header_items(result, __version__)),
    ]
    if result.fit_warnings:
        body += ["<h3>Warnings while fitting</h3>", _verdicts(result.fit_warnings, "note")]
    if posterior is not None:
        verdict_kind = "warn" if problem else "ok"
        body += [
            "<h3>Sampler verdict</h3>",
            _verdicts(messages, verdict_kind),
        ]
    body += [
        "<h2>Estimates</h2>",
        _estimates_html(table, [str(c) for c in result.X.columns], posterior),
    ]
    body += [_figure_html(f) for f in figures["estimates"]]
    if figures["components"]:
        body += ["<h2>Components</h2>", *(_figure_html(f) for f in figures["components"])]
    if membership is not None:
        body.append("<h2>Membership uncertainty</h2>")
        body += [_figure_html(f) for f in figures["membership"]]
        top = membership.head(_N_UNCERTAIN)
        source = (
            f"posterior mean probabilities, with their {level_label(_table_prob(table))} "
            "credible intervals"
            if posterior is not None
            else "responsibilities at the point estimate"
        )
        n_unsure = int((membership["uncertainty"] > 0.01).sum())
        overview = (
            f"{n_unsure} of {len(membership)} points have a membership probability below 0.99. "
            if n_unsure
            else f"All {len(membership)} points belong to their component with probability "
            "at least 0.99. "
        )
        body += [
            f"<h3>The {len(top)} least certain points</h3>",
            _para(
                overview + "Row: position in the CSV file, counting data rows from 0; "
                f"component: the most probable one ({source}); uncertainty = 1 - probability."
            ),
            _html_table(level_columns(top, _table_prob(table)), index=True),
        ]
    if posterior is not None:
        diag = posterior.diagnostics_.reset_index().rename(columns=_DIAGNOSTIC_COLUMNS)
        body += [
            "<h2>Sampler diagnostics</h2>",
            _verdicts(messages, "warn" if problem else "ok"),
            _para(
                f"{posterior.n_divergences_} divergent transitions in {posterior.chains} "
                f"chains x {posterior.draws} draws. R-hat near 1 (at most {_RHAT_LIMIT}) "
                "means the chains agree; ESS is the number of independent draws the "
                "chains are worth. Rows 'raw': the draws as sampled; 'relabelled': "
                "after label switching was undone by "
                f"{relabel_description(getattr(posterior, 'relabel_info_', None))}."
            ),
            _html_table(
                diag,
                formats={
                    _DIAGNOSTIC_COLUMNS["min_ess_bulk"]: lambda v: f"{v:.0f}",
                    _DIAGNOSTIC_COLUMNS["min_ess_tail"]: lambda v: f"{v:.0f}",
                },
                bad={_DIAGNOSTIC_COLUMNS["max_rhat"]: lambda v: v > _RHAT_LIMIT},
            ),
        ]
        body += [_figure_html(f) for f in figures["sampler"]]
    files = _files_list(result, __version__, posterior_pickled, _table_prob(table))
    body += ["<h2>Files</h2>", _files_html(files)]
    page = _page(title, body, __version__)
    summary = _fit_summary(result, table, membership, messages, files, __version__)
    return table, page, summary


def _files_list(
    result: FitResult, version: str, posterior_pickled: bool = True, prob: float | None = None
) -> list[tuple[str, str]]:
    level = level_label(_ci_prob() if prob is None else prob)
    files = [
        ("report.html", "this report"),
        (
            "estimates.csv",
            f"the estimates table, all columns (the interval columns carry their level, "
            f"{level}, in their names: mle_lower_{level[:-1]}, ci_lower_{level[:-1]}, ...)",
        ),
    ]
    if result.X.isna().to_numpy().any():
        files.append(
            (
                "imputed.csv",
                "one row per missing cell: its file line and column, the conditional mean "
                f"under the fit and a {level} interval (with the posterior: over the posterior)",
            )
        )
    if result.posterior is not None:
        files.append(
            (
                "posterior.nc",
                "the posterior draws (groups posterior, posterior_raw, sample_stats, "
                "log_likelihood, observed_data); read with xarray.open_datatree or "
                "arviz.from_netcdf",
            )
        )
    keys = ", ".join(f"'{k}'" for k in result.models)
    detail = ""
    if result.posterior is not None and not posterior_pickled:
        detail = (
            "; the posterior is stored without its draws (they did not pickle): restore "
            "them with posterior.idata_ = xarray.open_datatree('posterior.nc')"
        )
    files += [
        (
            "models.joblib",
            f"the fitted models, a dict with keys {keys}; reload with joblib.load (needs "
            f"bayesgmm {version}, the version that wrote it){detail}",
        ),
        ("summary.txt", "this summary as text"),
    ]
    return files


def _files_html(files: Sequence[tuple[str, str]]) -> str:
    return (
        "<ul>" + "".join(f"<li><code>{_esc(n)}</code>: {_esc(d)}</li>" for n, d in files) + "</ul>"
    )


def _indent(text: str, n: int = 2) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


def _text_table(frame: pd.DataFrame, **kwargs) -> str:
    text = frame.to_string(float_format=lambda v: f"{v:.4g}", na_rep="NA", **kwargs)
    return _indent(text)


def _fit_summary(
    result: FitResult,
    table: pd.DataFrame,
    membership: pd.DataFrame | None,
    messages: Sequence[str],
    files: Sequence[tuple[str, str]],
    version: str,
) -> str:
    title = (
        f"bayesgmm fit: {result.n_components}-component {result.covariance_type}-covariance "
        f"Gaussian mixture of {result.data_path}"
    )
    lines = [title, "=" * len(title)]
    lines += [f"{k}: {v}" for k, v in _header_items(result, version)]
    if result.fit_warnings:
        lines += ["", "Warnings while fitting:", *(f"  - {w}" for w in result.fit_warnings)]
    names = [str(c) for c in result.X.columns]
    shown = _display_table(_upper_triangle(table, names))
    shown = shown.drop(columns="parameter").set_index("label")
    shown.index.name = None
    prob = _table_prob(table)
    shown = shown.rename(
        columns={k: f"{k} ({level_label(prob)})" for k in ("mle_interval", "info_interval", "ci")}
    )
    lines += [
        "",
        "Estimates (components aligned across methods; symmetric covariances once; "
        f"intervals at {level_label(prob)}; all in estimates.csv):",
        _text_table(shown),
    ]
    if messages:
        lines += ["", "Sampler diagnostics:", *(f"  - {m}" for m in messages)]
    if membership is not None:
        top = level_columns(membership.head(5), prob)
        lines += ["", "Least certain memberships (row = data row from 0):", _text_table(top)]
    lines += ["", "Files:", *(f"  {n}: {d}" for n, d in files)]
    return "\n".join(lines)
