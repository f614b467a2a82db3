"""The self-contained HTML page: CSS, escaping, number formats, tables, figures as data: URIs."""

from __future__ import annotations

import base64
import contextlib
import html
import math
import platform
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from bayesgmm.report._tables import _DASH, ReportFigure

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
