"""The fit report's figures, drawn with bayesgmm.plotting on Figure objects (no pyplot state)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from bayesgmm._intervals import level_label
from bayesgmm.report._tables import _PARAMS, FitResult, ReportFigure, _aligned_models, _table_prob

#: Most rows of the forest plot before the covariances are left out of it.
_MAX_FOREST_ROWS = 60


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
