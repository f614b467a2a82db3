"""Reports of the ``bayesgmm fit`` and ``bayesgmm select`` commands: tables, figures, HTML.

:mod:`bayesgmm.cli` reads the data and fits the models; this module turns the fitted
models into what a person reads: the estimates table, plain-language sampler warnings,
the figures (drawn with :mod:`bayesgmm.plotting` on :class:`matplotlib.figure.Figure`
objects, no pyplot state) and a self-contained HTML page (inline CSS, images embedded
as base64 PNG ``data:`` URIs, no scripts and no external resources), plus the text
summary.

A figure that cannot be drawn (or whose plotting function this version lacks) is left
out of the report with a note; it never costs the user the fitted models.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import math
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from bayesgmm._intervals import default_ci_prob, level_columns, level_label

__all__ = [
    "FitResult",
    "ReportFigure",
    "estimates_table",
    "fit_report",
    "sampler_messages",
    "select_report",
]

_PARAMS = ("weights", "means", "covariances")
#: Most rows of the forest plot before the covariances are left out of it.
_MAX_FOREST_ROWS = 60
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
                "relabelling every draw to the MAP fit's components; no action needed."
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


# -- figures -----------------------------------------------------------------------------
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _draw(
    title: str,
    caption: str,
    functions: Sequence[str],
    draw: Callable[..., bytes],
    warn: Callable[[str], None],
) -> ReportFigure:
    """Run ``draw(*plot_functions)``; a figure with an error note if drawing fails."""
    from bayesgmm import plotting

    found = [getattr(plotting, name) for name in functions]
    try:
        return ReportFigure(title, caption, png=draw(*found))
    except Exception as err:  # a figure must never cost the user the fitted models
        message = f"{type(err).__name__}: {err}".splitlines()[0]
        warn(f"figure {title!r} left out of the report: {message}")
        return ReportFigure(title, caption, error=message)


def _legend_outside(fig, ax, drop: Sequence[str] = ()) -> None:
    """Move ``ax``'s legend beside the plot (off the data), without the entries ``drop``."""
    legend = ax.get_legend()
    if legend is None:
        return
    kept = [
        (handle, text.get_text())
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True)
        if text.get_text() not in drop
    ]
    legend.remove()
    if kept:
        handles, labels = zip(*kept, strict=True)
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")


def _upper_triangle(table: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The table without the lower-triangle copies of symmetric covariance elements."""
    if "feature_bis" not in table or table["feature_bis"].isna().all():
        return table
    order = {str(name): i for i, name in enumerate(names)}
    row = table["feature"].map(lambda f: order.get(str(f), -1))
    col = table["feature_bis"].map(lambda f: order.get(str(f), -1))
    lower = (table["parameter"] == "covariances") & table["feature_bis"].notna() & (col < row)
    return table[~lower]


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _fit_figures(
    result: FitResult, table: pd.DataFrame, warn: Callable[[str], None]
) -> dict[str, list[ReportFigure]]:
    """The report's figures by section."""
    X = result.X
    n_features = X.shape[1]
    posterior = result.posterior
    aligned = _aligned_models(result)
    points = list(aligned.items())
    level = level_label(_table_prob(table))
    names = {"mle": "maximum likelihood (MLE)", "map": "maximum a posteriori (MAP)"}
    pair = f"{X.columns[0]} and {X.columns[1]}" if n_features >= 2 else str(X.columns[0])
    more = (
        f" The data have {n_features} features; the first two are shown." if n_features > 2 else ""
    )
    sections: dict[str, list[ReportFigure]] = {
        "components": [],
        "estimates": [],
        "membership": [],
        "sampler": [],
    }

    def add(section: str, figure: ReportFigure | None) -> None:
        if figure is not None:
            sections[section].append(figure)

    if points:
        if n_features >= 2:

            def components(plot_components):
                fig = _new_figure(6.0 * len(points), 5.0)
                for ax, (key, model) in zip(
                    np.atleast_1d(fig.subplots(1, len(points))), points, strict=True
                ):
                    plot_components(model, X, ax=ax)
                    ax.set_title(names[key])
                return _png(fig)

            add(
                "components",
                _draw(
                    "Fitted components",
                    f"The data ({pair}) with each component's 1- and 2-standard-deviation "
                    "ellipses and its mean (cross), one panel per point estimate." + more,
                    ["plot_components"],
                    components,
                    warn,
                ),
            )
        else:

            def density(plot_density_1d):
                fig = _new_figure(6.0 * len(points), 4.5)
                for ax, (key, model) in zip(
                    np.atleast_1d(fig.subplots(1, len(points))), points, strict=True
                ):
                    plot_density_1d(model, X, ax=ax)
                    ax.set_title(names[key])
                return _png(fig)

            add(
                "components",
                _draw(
                    "Fitted density",
                    "Histogram of the data with the fitted mixture density (solid) and "
                    "its weighted components (dashed), one panel per point estimate.",
                    ["plot_density_1d"],
                    density,
                    warn,
                ),
            )
    if posterior is not None and n_features >= 2:

        def ellipses(plot_posterior_ellipses):
            fig = _new_figure(7.5, 5.5)
            plot_posterior_ellipses(posterior, X, mle=aligned.get("mle"), ax=fig.gca())
            return _png(fig)

        add(
            "components",
            _draw(
                "Posterior uncertainty of the components",
                "Faint ellipses: 2-standard-deviation contours of 40 posterior draws; "
                "solid: the MAP fit"
                + ("; dashed black: the MLE" if "mle" in result.models else "")
                + ". A wide cloud means the data pin that component down poorly."
                + more,
                ["plot_posterior_ellipses"],
                ellipses,
                warn,
            ),
        )

    forest = _upper_triangle(table, [str(c) for c in X.columns])
    if posterior is None:
        forest = table.assign(post_mean=np.nan, ci_lower=np.nan, ci_upper=np.nan)
    groups = [p for p in _PARAMS if p in set(forest["parameter"])]
    caption_extra = ""
    if len(forest) > _MAX_FOREST_ROWS and len(groups) > 1:
        groups = [g for g in groups if g != "covariances"]
        caption_extra = " Covariances are left out here (too many rows); see the table."
    forest = forest[forest["parameter"].isin(groups)]

    def estimates(plot_estimates):
        sizes = [int((forest["parameter"] == g).sum()) for g in groups]
        fig = _new_figure(9.0, 1.3 + 0.9 * len(groups) + 0.3 * sum(sizes))
        axes = fig.subplots(len(groups), 1, height_ratios=[s + 1.5 for s in sizes], squeeze=False)
        plot_estimates(forest, parameters=groups, ax=list(axes[:, 0]))
        if posterior is None:
            fig.suptitle("Estimates: " + " and ".join(k.upper() for k, _ in points))
        drop = () if posterior is not None else ("credible interval", "posterior mean")
        _legend_outside(fig, axes[0, 0], drop)
        return _png(fig)

    if posterior is not None:
        forest_caption = (
            f"Per parameter element: the posterior mean (dot) with its {level} credible "
            "interval (thick line), the MAP (diamond) and the MLE (square)"
            + (f" with its {level} bootstrap interval (thin line)" if result.bootstrap else "")
            + ". Components are aligned across methods. Red labels: R-hat above 1.01."
        )
    else:
        forest_caption = (
            "Per parameter element: the point estimates"
            + (f" and the MLE's {level} bootstrap interval" if result.bootstrap else "")
            + ". Fit with --methods posterior for credible intervals."
        )
    add(
        "estimates",
        _draw(
            "Estimates side by side",
            forest_caption + caption_extra,
            ["plot_estimates"],
            estimates,
            warn,
        ),
    )

    member_model = posterior if posterior is not None else dict(points).get("map")
    if member_model is None and points:
        member_model = points[0][1]
    if member_model is not None:

        def membership(plot_membership):
            fig = _new_figure(7.5, 5.5)
            plot_membership(member_model, X, ax=fig.gca())
            return _png(fig)

        which = (
            "posterior mean membership probabilities"
            if posterior is not None
            else "responsibilities of the " + ("MAP" if "map" in result.models else "MLE")
        )
        add(
            "membership",
            _draw(
                "How certain is each point's component?",
                f"Each point coloured by its largest membership probability ({which}): "
                "blue = certain, red = could belong to several components." + more,
                ["plot_membership"],
                membership,
                warn,
            ),
        )
    if posterior is not None:

        def intervals(plot_membership_intervals):
            fig = _new_figure(7.5, 5.0)
            plot_membership_intervals(posterior, X, prob=_table_prob(table), ax=fig.gca())
            return _png(fig)

        add(
            "membership",
            _draw(
                f"Membership probabilities with {level} credible intervals",
                "For the points whose membership is least certain: the posterior mean "
                f"probability of belonging to a component, with its {level} credible "
                "interval over the posterior draws.",
                ["plot_membership_intervals"],
                intervals,
                warn,
            ),
        )

        def trace(plot_sampler_diagnostics):
            import matplotlib.pyplot as plt

            pc = plot_sampler_diagnostics(posterior, kind="trace")
            fig = pc.viz["figure"].item()
            try:
                return _png(fig)
            finally:
                plt.close(fig)

        add(
            "sampler",
            _draw(
                "Trace plots",
                "Per chain: the density of the draws (left) and the draws in order "
                "(right), for the weights and means after relabelling. Chains that "
                "agree overlap; a trend or a chain apart from the others is a problem.",
                ["plot_sampler_diagnostics"],
                trace,
                warn,
            ),
        )
    return sections


# -- HTML --------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d2733; background: #f6f7f9; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 3rem; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 0.3rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 2px solid #dde3ea;
     padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 0.4rem; }
p.lead { color: #4a5868; margin-top: 0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem;
          font-size: 0.92rem; }
dl.meta dt { font-weight: 600; color: #4a5868; }
dl.meta dd { margin: 0; }
table { border-collapse: collapse; font-size: 0.84rem; margin: 0.5rem 0 1rem; }
th, td { padding: 0.22rem 0.55rem; border-bottom: 1px solid #e4e8ee; }
th { background: #eef2f6; text-align: left; position: sticky; top: 0; }
td { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.bad { color: #b3261e; font-weight: 600; }
tr.group td { border-top: 2px solid #c9d2dc; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #e4e8ee; }
figcaption { font-size: 0.88rem; color: #4a5868; max-width: 60rem; }
ul.verdicts { padding-left: 0; list-style: none; }
ul.verdicts li { padding: 0.5rem 0.8rem; margin: 0.35rem 0; border-radius: 4px; }
li.warn { background: #fdf0ef; border-left: 4px solid #b3261e; }
li.note { background: #fff8e5; border-left: 4px solid #c98a00; }
li.ok { background: #edf7ee; border-left: 4px solid #2e7d32; }
p.missing { color: #b3261e; font-style: italic; }
footer { margin-top: 2.5rem; font-size: 0.8rem; color: #6b7886; }
code { background: #eef2f6; padding: 0 0.2rem; border-radius: 3px; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object, digits: int = 4) -> str:
    """A table cell as text: NaN as an en dash, booleans as yes/no, floats to 4 digits."""
    if value is None or value is pd.NA:
        return _DASH
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return _DASH
        return f"{value:.{digits}g}"
    return str(value)


def _html_table(
    frame: pd.DataFrame,
    *,
    formats: dict[str, Callable[[object], str]] | None = None,
    bad: dict[str, Callable[[object], bool]] | None = None,
    index: bool = False,
    groups: Sequence | None = None,
) -> str:
    """A plain HTML table; numeric cells right-aligned, ``bad`` cells flagged in red.

    ``groups`` (one value per row) draws a heavier line where the value changes.
    """
    formats = formats or {}
    bad = bad or {}
    data = frame.reset_index() if index else frame
    head = "".join(f"<th>{_esc(c)}</th>" for c in data.columns)
    rows = []
    for position, (_, row) in enumerate(data.iterrows()):
        cells = []
        for col in data.columns:
            value = row[col]
            text = formats.get(col, _fmt)(value)
            numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                value, bool | np.bool_
            )
            classes = ["num"] if numeric else []
            with contextlib.suppress(TypeError, ValueError):  # a missing value is not "bad"
                if col in bad and bad[col](value):
                    classes.append("bad")
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attr}>{_esc(text)}</td>")
        new_group = (
            groups is not None and position > 0 and groups[position] != groups[position - 1]
        )
        tr = '<tr class="group">' if new_group else "<tr>"
        rows.append(f"{tr}{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _figure_html(figure: ReportFigure) -> str:
    title = f"<h3>{_esc(figure.title)}</h3>"
    if figure.png is None:
        return title + f'<p class="missing">Not drawn: {_esc(figure.error)}</p>'
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'{title}<figure><img src="data:image/png;base64,{data}" alt="{_esc(figure.title)}">'
        f"<figcaption>{_esc(figure.caption)}</figcaption></figure>"
    )


def _page(title: str, body: Sequence[str], version: str) -> str:
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + f"\n<footer>Made by bayesgmm {_esc(version)} (Python {platform.python_version()}) "
        f"on {created}. This page is self-contained: it loads nothing from elsewhere."
        "</footer>\n</main>\n</body>\n</html>\n"
    )


def _para(text: str) -> str:
    return f"<p>{_esc(text)}</p>"


def _meta(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<dl class="meta">'
        + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items)
        + "</dl>"
    )


def _verdicts(messages: Sequence[str], kind: str) -> str:
    return (
        '<ul class="verdicts">'
        + "".join(f'<li class="{kind}">{_esc(m)}</li>' for m in messages)
        + "</ul>"
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
    hyperparameters (:meth:`bayesgmm.priors.GMMPrior.describe`)."""
    for key in ("map", "posterior"):
        prior = getattr(result.models.get(key), "prior_", None)
        if prior is not None:
            return [("prior", prior.describe())]
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
                "after aligning every draw to the MAP fit's components (label switching)."
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


# -- the select report -------------------------------------------------------------------
def _sampler_table(posteriors: dict) -> pd.DataFrame | None:
    """One row per sampled model: divergences, max R-hat, min bulk ESS and a verdict."""
    if not posteriors:
        return None
    rows = []
    for (k, cov), post in posteriors.items():
        after = post.diagnostics_.xs("relabelled", level="draws")
        rhat, ess = float(after["max_rhat"].max()), float(after["min_ess_bulk"].min())
        problems = []
        if post.n_divergences_:
            problems.append(f"{post.n_divergences_} divergences")
        if post.chains > 1 and rhat > _RHAT_LIMIT:
            problems.append(f"R-hat {rhat:.3f} > {_RHAT_LIMIT}")
        if ess < 100 * min(post.chains, 4):
            problems.append(f"bulk ESS {ess:.0f} < {100 * min(post.chains, 4)}")
        rows.append(
            {
                "n_components": k,
                "covariance_type": cov,
                "divergences": int(post.n_divergences_),
                "max R-hat": rhat,
                "min ESS bulk": ess,
                "verdict": "; ".join(problems) if problems else "no problems detected",
            }
        )
    return pd.DataFrame(rows)


_CRITERIA = {
    "bic": "BIC of the MLE (lower is better)",
    "aic": "AIC of the MLE (lower is better)",
    "icl": "ICL of the MLE (lower is better)",
    "bic_map": "BIC at the MAP (lower is better)",
    "aic_map": "AIC at the MAP (lower is better)",
    "icl_map": "ICL at the MAP (lower is better)",
    "elpd_loo": "PSIS-LOO expected log predictive density (higher is better)",
}


def select_report(
    comparison,
    *,
    data_path: str,
    X: pd.DataFrame,
    settings: dict,
    plot_png: bytes | None,
    data_notes: Sequence[str] = (),
    fit_warnings: Sequence[str] = (),
) -> tuple[str, str]:
    """The HTML report and the text summary of ``bayesgmm select``.

    Parameters
    ----------
    comparison : ModelComparison
        From :func:`bayesgmm.compare_models`.
    data_path : str
    X : pandas.DataFrame
        The data the models were fitted to.
    settings : dict
        ``components``, ``covariance_types``, ``posterior``, ``seed`` and, with the
        posterior, ``draws``, ``tune``, ``chains``.
    plot_png : bytes or None
        ``selection.png``, embedded in the page.
    data_notes : sequence of str
        What was done to the data on reading.
    fit_warnings : sequence of str
        Warnings raised while fitting.

    Returns
    -------
    page, summary : str
    """
    from bayesgmm import __version__

    table = comparison.table
    choices = comparison.choices.assign(
        meaning=lambda c: [_CRITERIA.get(x, x) for x in c["criterion"]]
    )
    ks = settings["components"]
    items = [
        ("data file", data_path),
        ("observations (N)", str(X.shape[0])),
        ("features (D)", str(X.shape[1])),
        ("columns", ", ".join(str(c) for c in X.columns)),
        ("components (K)", ", ".join(str(k) for k in ks)),
        ("covariance types", ", ".join(settings["covariance_types"])),
        (
            "posterior",
            f"yes: {settings['chains']} chains x ({settings['tune']} tuning + "
            f"{settings['draws']} draws) per model"
            if settings["posterior"]
            else "no (add --posterior for PSIS-LOO)",
        ),
        ("seed", str(settings["seed"])),
        ("bayesgmm version", __version__),
        *(("note", n) for n in data_notes),
    ]
    title = "bayesgmm select: how many components, which covariance type?"
    bic = choices[choices["criterion"] == "bic"]
    lead = ""
    if len(bic):
        row = bic.iloc[0]
        lead = f"BIC chooses K={row['n_components']} with {row['covariance_type']} covariances."
    body = [
        f"<h1>{_esc(title)}</h1>",
        f'<p class="lead">{_esc(lead)}</p>',
        _meta(items),
        *(
            ["<h3>Warnings while fitting</h3>", _verdicts(fit_warnings, "note")]
            if fit_warnings
            else []
        ),
        "<h2>Choice of each criterion</h2>",
        _html_table(choices),
    ]
    if plot_png is not None:
        body.append(
            _figure_html(
                ReportFigure(
                    "Criteria by number of components",
                    "One line per covariance type; the chosen model is circled. "
                    + (
                        "Right: PSIS-LOO with its standard error (higher is better)."
                        if "elpd_loo" in table
                        else ""
                    ),
                    png=plot_png,
                )
            )
        )
    sampler = _sampler_table(comparison.posteriors)
    if sampler is not None:
        body += [
            "<h2>Sampler diagnostics per model</h2>",
            _para(
                "PSIS-LOO is only as good as the posterior draws behind it: check the "
                "models whose sampling had problems (run them with bayesgmm fit and more "
                "draws) before trusting their ELPD."
            ),
            _html_table(
                sampler,
                formats={"min ESS bulk": lambda v: f"{v:.0f}"},
                bad={"max R-hat": lambda v: v > _RHAT_LIMIT},
            ),
        ]
    body += [
        "<h2>All models</h2>",
        _para(f"All columns are in selection.csv. {_DASH} marks a fit that failed."),
        _html_table(table),
    ]
    page = _page(title, body, __version__)

    summary_title = f"bayesgmm select: {data_path}"
    lines = [summary_title, "=" * len(summary_title)]
    lines += [f"{k}: {v}" for k, v in items]
    if fit_warnings:
        lines += ["", "Warnings while fitting:", *(f"  - {w}" for w in fit_warnings)]
    lines += ["", "Choice of each criterion:"]
    for _, row in choices.iterrows():
        lines.append(
            f"  {row['criterion']:<9} K={row['n_components']}, {row['covariance_type']:<9} "
            f"({row['value']:.2f}; {row['meaning']})"
        )
    if sampler is not None:
        lines += ["", "Sampler diagnostics per model:", _text_table(sampler, index=False)]
    lines += ["", "All models:", _text_table(table, index=False)]
    lines += [
        "",
        "Files: selection.csv (the table), selection.png (the plot), report.html, summary.txt",
    ]
    return page, "\n".join(lines)
