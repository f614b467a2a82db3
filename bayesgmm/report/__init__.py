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

from bayesgmm.report._fit import fit_report
from bayesgmm.report._select import select_report
from bayesgmm.report._tables import (
    FitResult,
    ReportFigure,
    estimates_table,
    sampler_messages,
)

__all__ = [
    "FitResult",
    "ReportFigure",
    "estimates_table",
    "fit_report",
    "sampler_messages",
    "select_report",
]
