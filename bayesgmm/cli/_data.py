"""Reading the data file for ``fit`` and ``select`` (the reading rules: :mod:`bayesgmm._csv`).

The one decision about rows with missing values is :data:`FIT_WITH_MISSING`, applied in
:func:`apply_missing_policy`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesgmm._csv import CSVDataError, NumericData, read_numeric_csv
from bayesgmm.cli._common import PROG, _fail, _items

__all__ = [
    "FIT_WITH_MISSING",
    "LoadedData",
    "add_reading_arguments",
    "apply_missing_policy",
    "read_data",
    "report_reading",
]

#: True: rows with a missing value are kept with NaN (every estimator fits with missing
#: values, integrating them out). False would leave them out, with a note saying how
#: many. This is the only place that decides it.
FIT_WITH_MISSING = True


@dataclass(frozen=True)
class LoadedData:
    """The data a command fits, and the account of how it was read.

    Attributes
    ----------
    X : pandas.DataFrame of shape (N, D)
        What the models are fitted to (float64).
    source : NumericData
        The reader's record (dialect, used and left-out columns, missing counts).
    notes : tuple of str
        The account for the summary and the report, one line each.
    warnings : tuple of str
        The lines of ``notes`` that change what is fitted (columns or rows left out, an
        encoding fallback): printed on stderr even with ``--quiet``.
    """

    X: pd.DataFrame
    source: NumericData
    notes: tuple[str, ...]
    warnings: tuple[str, ...]


def apply_missing_policy(data: NumericData) -> tuple[pd.DataFrame, list[str]]:
    """The rows to fit under :data:`FIT_WITH_MISSING`, and a note on what was done."""
    X = data.frame
    incomplete = X.isna().any(axis=1).to_numpy()
    if not incomplete.any():
        return X, []
    if FIT_WITH_MISSING:
        n_missing = int(np.isnan(X.to_numpy()).sum())
        return X, [
            f"{int(incomplete.sum())} incomplete row(s) ({n_missing} missing value(s)) kept: "
            "the fits use every observed value (see imputed.csv for the filled-in cells)"
        ]
    kept = X[~incomplete].reset_index(drop=True)
    return kept, [
        f"{int(incomplete.sum())} row(s) with missing values left out (the fit uses the "
        f"{len(kept)} complete rows)"
    ]


def read_data(
    command: str, args: argparse.Namespace, min_rows: int, max_components: int
) -> LoadedData:
    """Read ``args.data`` with the dialect options of ``args``; CommandError (code 2) if unusable.

    Parameters
    ----------
    command : str
        ``'fit'`` or ``'select'`` (for the messages).
    args : argparse.Namespace
        With ``data``, ``columns``, ``sep``, ``decimal``, ``encoding``, ``header`` and
        ``index_col``.
    min_rows : int
        Rows (after :func:`apply_missing_policy`) the fit needs.
    max_components : int
        The largest number of components to fit: it may not exceed the distinct rows.
    """
    try:
        data = read_numeric_csv(
            args.data,
            columns=None if args.columns is None else _items(args.columns),
            sep=getattr(args, "sep", None),
            decimal=getattr(args, "decimal", None),
            encoding=getattr(args, "encoding", None),
            header=getattr(args, "header", None),
            index_col=getattr(args, "index_col", None),
        )
    except CSVDataError as err:
        raise _fail(command, str(err)) from None
    X, row_notes = apply_missing_policy(data)
    shown = str(args.data)
    if len(X) < min_rows:
        raise _fail(
            command,
            f"too few rows: {shown!r} has {len(X)} row(s) of numeric data, but "
            f"a {max_components}-component mixture needs at least {min_rows}",
        )
    n_distinct = len(X.drop_duplicates())
    if max_components > n_distinct:
        raise _fail(
            command,
            f"--components {max_components} is more than the {n_distinct} distinct row(s) of "
            f"data in {shown!r}: every component needs points of its own; use at most "
            f"{n_distinct} component(s)",
        )
    lines = data.describe()
    changes = list(data.notes)
    changes += [line for line in lines if line.startswith(("columns left out", "missing values"))]
    changes += row_notes
    return LoadedData(X=X, source=data, notes=(*lines, *row_notes), warnings=tuple(changes))


#: How the data file is read, for the epilog of ``fit --help`` and ``select --help``.
READING_RULES = """\
reading DATA.csv: the separator, decimal mark, encoding, header and index column are
detected (see 'reading the file' above). NA, n/a, -, ., ?, NaN, null and empty cells
are missing values (counted per column; rows with any are left out, with a note).
Left out with the reason: text columns, an index column, constant columns and exact
duplicates of another column. A column that mixes numbers with text, or more
components than distinct rows, is an error naming the fix.
"""


def report_reading(
    command: str, args: argparse.Namespace, data: LoadedData, progress: Callable[[str], None]
) -> None:
    """Print what changes the fit (even with ``--quiet``), then a progress line on the data."""
    for note in data.warnings:
        print(f"{PROG} {command}: note: {note}", file=sys.stderr, flush=True)
    X = data.X
    progress(
        f"Read {args.data} ({data.source.dialect.describe()}): {X.shape[0]} rows x "
        f"{X.shape[1]} columns ({', '.join(map(str, X.columns))})"
    )


def add_reading_arguments(parser: argparse.ArgumentParser) -> None:
    """``--sep``, ``--decimal``, ``--encoding``, ``--header/--no-header``, ``--index-col``."""
    from bayesgmm._csv import parse_separator

    def separator(text: str) -> str:
        try:
            return parse_separator(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    group = parser.add_argument_group(
        "reading the file",
        "Detected when not given; the summary says what was detected.",
    )
    group.add_argument(
        "--sep",
        type=separator,
        metavar="SEP",
        help="field separator: ',' ';' tab, whitespace or another character "
        "(default: detected among tab ; , and whitespace)",
    )
    group.add_argument(
        "--decimal",
        choices=(".", ","),
        metavar="MARK",
        help="decimal mark: . or , (default: ',' if numbers are written like 1,5 and the "
        "separator is not ',', else '.')",
    )
    group.add_argument(
        "--encoding",
        metavar="NAME",
        help="text encoding, e.g. utf-8, latin-1, cp1252 (default: UTF-8, with or without "
        "BOM; UTF-16 with BOM; else Latin-1 with a note)",
    )
    group.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the first row holds the column names (default: yes, unless it is "
        "numeric; then the columns are named x0, x1, ...)",
    )
    group.add_argument(
        "--index-col",
        metavar="NAME",
        help="a column to leave out as the row index, or 'none' (default: the first column "
        "if it is unnamed, 'Unnamed: 0', or holds exactly 0..N-1 or 1..N)",
    )
