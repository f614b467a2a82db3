"""The select report: the BIC/ICL grid, the sampler table of posterior cells, the HTML page."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from bayesgmm.report._fit import _text_table
from bayesgmm.report._html import _esc, _figure_html, _html_table, _meta, _page, _para, _verdicts
from bayesgmm.report._tables import _DASH, _RHAT_LIMIT, ReportFigure

_RELABEL_NAMES = {
    "map": "matching to the MAP fit",
    "stephens": "Stephens' (2000) Kullback-Leibler method",
}


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
                "draws permuted": _permuted(getattr(post, "relabel_info_", None)),
                "verdict": "; ".join(problems) if problems else "no problems detected",
            }
        )
    return pd.DataFrame(rows)


def _permuted(info: dict | None) -> str:
    """'12 of 400 (stephens)': how many draws the relabelling permuted, and its method."""
    if not info:
        return _DASH
    return f"{info['n_permuted']} of {info['n_draws']} ({info['method']})"


def _numbered_errors(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The table with each distinct error message (columns ``error``, ``error_map``)
    replaced by its number, ``[1]``, ``[2]``, ..., and the numbered messages: a grid
    of mclust's families repeats one message per K (e.g. no conjugate prior for the
    MAP fits of VEE), which would otherwise fill the table. selection.csv keeps the
    messages in full.

    Examples
    --------
    >>> t = pd.DataFrame({"error": ["", "E: x", "E: x"], "error_map": ["E: y", "", "E: x"]})
    >>> numbered, errors = _numbered_errors(t)
    >>> numbered["error"].tolist(), numbered["error_map"].tolist(), errors
    (['', '[1]', '[1]'], ['[2]', '', '[1]'], ['[1] E: x', '[2] E: y'])
    """
    columns = [c for c in ("error", "error_map") if c in table]
    numbers: dict[str, str] = {}
    for column in columns:
        for message in table[column]:
            if isinstance(message, str) and message and message not in numbers:
                numbers[message] = f"[{len(numbers) + 1}]"
    if not numbers:
        return table, []
    number = lambda m: numbers.get(m, m) if isinstance(m, str) else m  # noqa: E731
    numbered = table.assign(**{c: table[c].map(number) for c in columns})
    return numbered, [f"{number} {message}" for message, number in numbers.items()]


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

    table, errors = _numbered_errors(comparison.table)
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
            f"{settings['draws']} draws) per model, relabelled by "
            + _RELABEL_NAMES[settings.get("relabel", "map")]
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
        *([_para("Errors:"), _verdicts(errors, "bad")] if errors else []),
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
    if errors:
        lines += ["", "Errors:", *(f"  {e}" for e in errors)]
    lines += [
        "",
        "Files: selection.csv (the table), selection.png (the plot), report.html, summary.txt",
    ]
    return page, "\n".join(lines)
