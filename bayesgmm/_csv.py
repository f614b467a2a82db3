"""Reading the numeric data of a real-world CSV file (used by the ``bayesgmm`` command).

:func:`read_numeric_csv` detects what spreadsheet programs and statistics packages write
(separator, decimal comma, encoding, a header or not, an index column, missing-value
placeholders) and returns a :class:`NumericData` record that says what it detected, which
columns it used and which it left out and why, and how many values are missing per
column. It never guesses silently: anything it cannot decide safely is a
:class:`CSVDataError`, whose message is one line naming the problem and the fix.

Rules (also in the ``bayesgmm fit --help`` text):

- **Encoding**: UTF-8 (a byte-order mark is removed), UTF-16 with a byte-order mark;
  a file that is not valid UTF-8 is read as Latin-1, with a note. ``encoding`` overrides.
- **Separator**: the one among tab, ``;``, ``,`` and runs of whitespace that splits every
  line into the same number (>= 2) of fields, in that order of preference; none of
  them: one column. ``sep`` overrides.
- **Decimal mark**: ``,`` if the separator is not ``,`` and numbers are written like
  ``1,5`` (more often than like ``1.5``), else ``.``. ``decimal`` overrides.
- **Header**: the first row is a header unless it is numeric where the rest of its
  columns are (then the columns are named ``x0, x1, ...``). ``header`` overrides.
- **Index column**: the first column is an index, left out, if its name is empty or
  ``Unnamed: 0`` or its values are exactly ``0..N-1`` or ``1..N``. ``index_col`` names
  it (or ``'none'``: no index column).
- **Missing values**: empty cells and the placeholders of :data:`MISSING_PLACEHOLDERS`
  (any case) are NaN, counted per column. Blank lines and rows with no value at all
  are skipped and counted.
- **Columns left out, with the reason**: text columns (fewer than half of their values
  are numbers), columns with no values, constant columns and exact duplicates of an
  earlier column. A column named in ``columns`` is never left out: it is an error if it
  cannot be used.
- **Errors**: a column that mixes numbers with text (at least half numbers), infinite
  values, duplicated column names, rows with a different number of fields, an unreadable
  or empty file.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

__all__ = [
    "MISSING_PLACEHOLDERS",
    "SEPARATORS",
    "CSVDataError",
    "Dialect",
    "LeftOut",
    "NumericData",
    "parse_separator",
    "read_numeric_csv",
]

#: Cell values read as missing (compared after stripping spaces, in any case).
MISSING_PLACEHOLDERS = ("", "na", "n/a", "nan", "null", "none", "-", "--", ".", "?", "#n/a")
#: Separators tried, in order of preference; ``"whitespace"`` is any run of spaces/tabs.
SEPARATORS = ("\t", ";", ",", "whitespace")
_SEP_NAMES = {"\t": "tab", ";": "';'", ",": "','", "whitespace": "whitespace", None: "none"}
_SEP_ALIASES = {
    "tab": "\t",
    "\\t": "\t",
    "space": "whitespace",
    "spaces": "whitespace",
    "whitespace": "whitespace",
    "comma": ",",
    "semicolon": ";",
}
_SNIFF_CHARS = 200_000
_SNIFF_LINES = 500
_COMMA_NUMBER = re.compile(r"^[-+]?\d*,\d+(?:[eE][-+]?\d+)?$")
_DOT_NUMBER = re.compile(r"^[-+]?\d*\.\d+(?:[eE][-+]?\d+)?$")
#: A column is text (left out) if fewer than this share of its values are numbers, else
#: a numeric column with bad cells (an error).
_TEXT_SHARE = 0.5
_NOT_CHOSEN = "not in --columns"


class CSVDataError(ValueError):
    """The file cannot be read as numeric data; the message is one line with the fix."""


@dataclass(frozen=True)
class Dialect:
    """How the file was read, and which of it was detected rather than given.

    Attributes
    ----------
    encoding : str
        Python codec name (``'utf-8'``, ``'utf-8-sig'``, ``'utf-16'``, ``'latin-1'``, ...).
    sep : str or None
        ``','``, ``';'``, ``'\\t'``, ``'whitespace'``, another character, or None for a
        single-column file.
    decimal : str
        ``'.'`` or ``','``.
    header : bool
        Whether the first row holds the column names.
    line_ending : str
        ``'LF'``, ``'CRLF'`` or ``'CR'``.
    detected : tuple of str
        Which of ``encoding``, ``sep``, ``decimal``, ``header`` were detected (not given).
    path : str
        The file, as given.
    """

    encoding: str
    sep: str | None
    decimal: str
    header: bool
    line_ending: str = "LF"
    detected: tuple[str, ...] = ()
    path: str = ""

    def describe(self) -> str:
        """One line, e.g. ``"separator ';', decimal ',', UTF-8 with BOM, CRLF, header"``."""

        def how(name: str) -> str:
            return " (detected)" if name in self.detected else " (given)"

        encoding = {"utf-8-sig": "UTF-8 with BOM", "utf-8": "UTF-8", "latin-1": "Latin-1"}.get(
            self.encoding, self.encoding
        )
        header = "header row" if self.header else "no header row (columns named x0, x1, ...)"
        return (
            f"separator {_SEP_NAMES.get(self.sep, repr(self.sep))}{how('sep')}, "
            f"decimal '{self.decimal}'{how('decimal')}, "
            f"encoding {encoding}{how('encoding')}, {self.line_ending} line ends, "
            f"{header}{how('header')}"
        )


@dataclass(frozen=True)
class LeftOut:
    """A column of the file that is not among the features, and why."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


@dataclass(frozen=True)
class NumericData:
    """The numeric data of a CSV file and an account of how it was read.

    Attributes
    ----------
    frame : pandas.DataFrame of shape (N, D)
        The used columns as float64, NaN where a value is missing; one row per data row
        of the file that has at least one value (in file order, index ``0..N-1``).
    dialect : Dialect
    columns : tuple of str
        The used columns (the features), in file order or in the order of ``columns``.
    left_out : tuple of LeftOut
        Every other column of the file, with the reason.
    missing : Mapping of str to int
        Missing values per used column.
    lines : numpy.ndarray of shape (N,)
        The file line (from 1) of each row of ``frame``.
    skipped_rows : int
        Blank lines and rows without any value, skipped.
    notes : tuple of str
        Other remarks (an encoding fallback, a header decision).
    """

    frame: pd.DataFrame
    dialect: Dialect
    columns: tuple[str, ...]
    left_out: tuple[LeftOut, ...] = ()
    missing: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    skipped_rows: int = 0
    notes: tuple[str, ...] = ()

    @property
    def n_missing(self) -> int:
        """Missing values in the used columns, in all."""
        return int(sum(self.missing.values()))

    def describe(self) -> list[str]:
        """The account as lines for a summary: dialect, columns used and left out, missing."""
        lines = [f"read as: {self.dialect.describe()}"]
        lines += list(self.notes)
        lines.append(f"columns used ({len(self.columns)}): {', '.join(self.columns)}")
        not_chosen = [c.name for c in self.left_out if c.reason == _NOT_CHOSEN]
        left_out = [str(c) for c in self.left_out if c.reason != _NOT_CHOSEN]
        if left_out:
            lines.append(
                "columns left out: " + "; ".join(left_out) + " (choose columns with --columns)"
            )
        if not_chosen:
            lines.append(f"columns not in --columns: {', '.join(not_chosen)}")
        if self.skipped_rows:
            lines.append(f"{self.skipped_rows} blank line(s) or row(s) without values skipped")
        if self.n_missing:
            per = ", ".join(f"{name} {n}" for name, n in self.missing.items() if n)
            lines.append(f"missing values: {self.n_missing} ({per})")
        return lines


# -- argument parsing helpers -------------------------------------------------------------
def parse_separator(text: str) -> str:
    """``--sep`` as given (``,`` ``;`` ``tab`` ``\\t`` ``whitespace`` or one character)."""
    value = _SEP_ALIASES.get(text.strip().lower(), text)
    if value != "whitespace" and len(value) != 1:
        raise ValueError(
            f"must be one character, 'tab' or 'whitespace'; got {text!r} (quote it in the "
            "shell: --sep ';')"
        )
    return value


# -- reading ------------------------------------------------------------------------------
def read_numeric_csv(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    header: bool | None = None,
    index_col: str | None = None,
) -> NumericData:
    """Read the numeric columns of a CSV file, detecting its dialect.

    Parameters
    ----------
    path : str or Path
    columns : sequence of str, optional
        The columns to use; by default every usable numeric column.
    sep : str, optional
        ``','``, ``';'``, ``'\\t'``, ``'whitespace'`` or another single character;
        detected when None.
    decimal : {'.', ','}, optional
        Detected when None.
    encoding : str, optional
        A Python codec name; detected (UTF-8, UTF-16 with BOM, else Latin-1) when None.
    header : bool, optional
        Whether the first row is a header; detected when None.
    index_col : str, optional
        The name of the index column to leave out, or ``'none'`` for no index column;
        detected when None.

    Returns
    -------
    NumericData

    Raises
    ------
    CSVDataError
        With a one-line message naming the problem and the fix.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "eu.csv"
    >>> _ = path.write_bytes(b"\\xef\\xbb\\xbfx;y\\r\\n1,5;2\\r\\nNA;3,25\\r\\n4;5\\r\\n")
    >>> data = read_numeric_csv(path)
    >>> data.frame.to_numpy().tolist()
    [[1.5, 2.0], [nan, 3.25], [4.0, 5.0]]
    >>> data.dialect.sep, data.dialect.decimal, data.dialect.encoding, dict(data.missing)
    (';', ',', 'utf-8-sig', {'x': 1, 'y': 0})
    """
    path = Path(path)
    shown = str(path)
    if decimal not in (None, ".", ","):
        raise CSVDataError(f"--decimal must be '.' or ','; got {decimal!r}")
    detected: list[str] = []
    notes: list[str] = []
    text, used_encoding = _decode(path, encoding, notes)
    if encoding is None:
        detected.append("encoding")
    if not text.strip():
        raise CSVDataError(f"data file {shown!r} is empty")
    line_ending = "CRLF" if "\r\n" in text[:_SNIFF_CHARS] else "CR" if "\r" in text else "LF"
    sample = [line for line in text[:_SNIFF_CHARS].splitlines()[:_SNIFF_LINES] if line.strip()]
    if sep is None:
        sep = _detect_separator(sample)
        detected.append("sep")
    else:
        sep = parse_separator(sep)
    # Decimal mark and header from the first lines; then the whole file.
    head = "".join(text.splitlines(keepends=True)[: _SNIFF_LINES + 1])
    raw_head = _split(head, sep, shown)
    if decimal is None:
        decimal = _detect_decimal(raw_head, sep)
        detected.append("decimal")
    if header is None:
        head_missing = _missing(raw_head)
        head_values = raw_head.apply(lambda col: _to_number(col, decimal)).where(~head_missing)
        header = _looks_like_header(raw_head, head_values, head_missing)
        detected.append("header")
        if not header:
            notes.append(
                "the first row is numeric, so it is read as data and the columns are named "
                "x0, x1, ... (use --header if it holds the column names)"
            )
    values, missing_mask, strings = _parse(text, sep, decimal, header, shown)
    lines = np.arange(1 + header, len(values) + 1 + header)
    if header:
        names = [str(v).strip() for v in raw_head.iloc[0]]
        if len(names) != values.shape[1]:
            raise CSVDataError(
                f"the header of {shown!r} has {len(names)} field(s) but the data rows have "
                f"{values.shape[1]}; check the separator (--sep) or use --no-header"
            )
    else:
        names = [f"x{j}" for j in range(values.shape[1])]
    _check_names(names, shown)
    values.columns = missing_mask.columns = names

    # Blank lines and rows without a value: skipped (counted).
    empty_rows = missing_mask.all(axis=1).to_numpy()
    skipped = int(empty_rows.sum())
    keep = ~empty_rows
    values, missing_mask = values[keep], missing_mask[keep]
    strings = {j: column[keep] for j, column in strings.items()}
    lines = lines[keep]
    if len(values) == 0:
        raise CSVDataError(f"data file {shown!r} has a header but no data rows")

    dialect = Dialect(
        encoding=used_encoding,
        sep=sep,
        decimal=decimal,
        header=header,
        line_ending=line_ending,
        detected=tuple(detected),
        path=shown,
    )
    chosen, left_out = _choose_columns(
        names, strings, values, missing_mask, lines, columns, index_col, dialect
    )
    frame = values[list(chosen)].astype(np.float64).reset_index(drop=True)
    finite = np.isfinite(frame.to_numpy()) | np.isnan(frame.to_numpy())
    if not finite.all():
        j = int(np.flatnonzero(~finite.all(axis=0))[0])
        row = int(np.flatnonzero(~finite[:, j])[0])
        raise CSVDataError(
            f"column {chosen[j]!r} has an infinite value ({frame.iloc[row, j]} on line "
            f"{lines[row]}); replace it by a number or leave it empty (missing)"
        )
    missing = {name: int(missing_mask[name].sum()) for name in chosen}
    return NumericData(
        frame=frame,
        dialect=dialect,
        columns=tuple(chosen),
        left_out=tuple(left_out),
        missing=MappingProxyType(missing),
        lines=np.asarray(lines, dtype=np.int64),
        skipped_rows=skipped,
        notes=tuple(notes),
    )


def _decode(path: Path, encoding: str | None, notes: list[str]) -> tuple[str, str]:
    shown = str(path)
    if not path.exists():
        raise CSVDataError(f"data file {shown!r} not found")
    if path.is_dir():
        raise CSVDataError(f"{shown!r} is a directory, not a CSV file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CSVDataError(f"cannot read {shown!r}: {err.strerror or err}") from None
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise CSVDataError(
                f"unknown --encoding {encoding!r}; use e.g. utf-8, latin-1 or cp1252"
            ) from None
        if codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
            codec = "utf-8-sig"
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError as err:
            raise CSVDataError(
                f"{shown!r} is not valid {encoding} (byte {data[err.start]:#04x} at position "
                f"{err.start}); give its encoding with --encoding (e.g. latin-1)"
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise CSVDataError(
                f"{shown!r} starts like UTF-16 but is not valid UTF-16; give its encoding "
                "with --encoding"
            ) from None
    if data.startswith(codecs.BOM_UTF8):
        return data.decode("utf-8-sig", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        notes.append(
            f"{shown!r} is not valid UTF-8 (byte {data[err.start]:#04x} at position "
            f"{err.start}), so it was read as Latin-1; if names look wrong, give the "
            "encoding with --encoding (e.g. cp1252)"
        )
        return data.decode("latin-1"), "latin-1"


def _fields(line: str, sep: str) -> int:
    if sep == "whitespace":
        return len(line.split())
    return len(next(csv.reader([line], delimiter=sep), []))


def _detect_separator(sample: list[str]) -> str | None:
    """The first of :data:`SEPARATORS` that splits every line alike into >= 2 fields."""
    if not sample:
        return ","
    best, best_share = None, 0.0
    for sep in SEPARATORS:
        counts = [_fields(line, sep) for line in sample]
        values, freq = np.unique(counts, return_counts=True)
        mode = int(values[np.argmax(freq)])
        if mode < 2:
            continue
        share = float(freq.max()) / len(counts)
        if share == 1.0:
            return sep
        if share > best_share:
            best, best_share = sep, share
    # No separator splits every line alike: the most consistent one (the parser then
    # names the line that differs), or a single column.
    return best if best_share >= 0.5 else None


def _split(text: str, sep: str | None, shown: str) -> pd.DataFrame:
    """The cells as strings (no conversion, no NA handling), blank lines kept as rows."""
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, **_options(sep)
        )
    except pd.errors.EmptyDataError:
        raise CSVDataError(f"data file {shown!r} is empty") from None
    except pd.errors.ParserError as err:
        raise _parser_error(err, sep, shown) from None
    return frame.fillna("").astype(str)


def _options(sep: str | None) -> dict:
    return {
        "header": None,
        "skip_blank_lines": False,
        "skipinitialspace": True,
        "sep": r"\s+" if sep == "whitespace" else "\x1f" if sep is None else sep,
    }


def _parse(
    text: str, sep: str | None, decimal: str, header: bool, shown: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, pd.Series]]:
    """Numbers (NaN where missing), the missing mask, and the cells of non-numeric columns.

    Columns that pandas' C parser reads as numbers, with only placeholders as NA, are
    taken from it (fast); the others are read again as text and converted cell by cell
    (placeholders in any case, spaces around numbers).
    """
    skip = [0] if header else None
    na_values = sorted({v for p in MISSING_PLACEHOLDERS for v in (p, p.upper(), p.title())})
    try:
        fast = pd.read_csv(
            io.StringIO(text),
            skiprows=skip,
            decimal=decimal,
            na_values=na_values,
            keep_default_na=False,
            low_memory=False,
            **_options(sep),
        )
    except pd.errors.EmptyDataError:
        raise CSVDataError(f"data file {shown!r} has a header but no data rows") from None
    except pd.errors.ParserError as err:
        raise _parser_error(err, sep, shown) from None
    fast.columns = range(fast.shape[1])
    numeric = [
        j
        for j in fast.columns
        if pd.api.types.is_numeric_dtype(fast[j]) and not pd.api.types.is_bool_dtype(fast[j])
    ]
    values = pd.DataFrame(
        {j: fast[j].astype(np.float64) if j in numeric else np.nan for j in fast.columns},
        index=fast.index,
    )
    missing = values.isna()
    strings: dict[int, pd.Series] = {}
    others = [j for j in fast.columns if j not in numeric]
    if others:
        cells = pd.read_csv(
            io.StringIO(text),
            skiprows=skip,
            usecols=others,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            **_options(sep),
        )
        for j in others:
            column = cells[j].fillna("").astype(str)
            is_missing = _missing(column.to_frame())[j]
            strings[j] = column
            missing[j] = is_missing
            values[j] = _to_number(column, decimal).where(~is_missing)
    return values, missing, strings


def _missing(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.apply(lambda col: col.str.strip().str.lower().isin(MISSING_PLACEHOLDERS))


def _parser_error(err: Exception, sep: str | None, shown: str) -> CSVDataError:
    message = str(err).strip().splitlines()[-1] if str(err).strip() else "parse error"
    message = message.removeprefix("Error tokenizing data. C error: ")
    return CSVDataError(
        f"cannot read {shown!r} with separator {_SEP_NAMES.get(sep, repr(sep))}: "
        f"{message}; check that line, or give the separator with --sep"
    )


def _detect_decimal(raw: pd.DataFrame, sep: str | None) -> str:
    if sep == ",":
        return "."
    cells = pd.Series(raw.to_numpy().ravel()[: _SNIFF_LINES * 50]).str.strip()
    commas = int(cells.str.match(_COMMA_NUMBER).sum())
    dots = int(cells.str.match(_DOT_NUMBER).sum())
    return "," if commas > dots else "."


def _to_number(column: pd.Series, decimal: str) -> pd.Series:
    cells = column.str.strip()
    if decimal == ",":
        # "1.5" is not a number in a decimal-comma file (it could be a thousands mark).
        cells = cells.where(~cells.str.contains(".", regex=False), "x").str.replace(",", ".")
    return pd.to_numeric(cells, errors="coerce").astype(np.float64)


def _looks_like_header(raw: pd.DataFrame, values: pd.DataFrame, missing: pd.DataFrame) -> bool:
    """The first row is data if it is numeric in every column numeric below it."""
    if len(raw) < 2:
        return True
    rest_values, rest_missing = values.iloc[1:], missing.iloc[1:]
    numeric_below = (rest_values.notna() | rest_missing).all() & rest_values.notna().any()
    if not numeric_below.any():
        return True
    first_value, first_missing = values.iloc[0], missing.iloc[0]
    return bool((numeric_below & first_value.isna() & ~first_missing).any())


def _check_names(names: list[str], shown: str) -> None:
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if name and name in seen:
            raise CSVDataError(
                f"{shown!r} has two columns named {name!r} (columns {seen[name] + 1} and "
                f"{j + 1}); rename one in the header"
            )
        seen[name] = j


def _example(raw: pd.Series, mask: np.ndarray, lines: np.ndarray) -> str:
    i = int(np.flatnonzero(mask)[0])
    return f"{raw.iloc[i].strip()!r} on line {lines[i]}"


def _is_index(name: str, values: pd.Series) -> str | None:
    """Why the first column is an index, or None."""
    if name == "" or re.fullmatch(r"Unnamed: 0", name):
        return "unnamed first column: a row index or row names"
    v = values.to_numpy()
    if len(v) < 2 or np.isnan(v).any():
        return None
    n = len(v)
    for start in (0, 1):
        if np.array_equal(v, np.arange(start, start + n)):
            return f"row index: values {start}..{start + n - 1} in order"
    return None


def _choose_columns(
    names: list[str],
    strings: Mapping[int, pd.Series],
    values: pd.DataFrame,
    missing: pd.DataFrame,
    lines: np.ndarray,
    columns: Sequence[str] | None,
    index_col: str | None,
    dialect: Dialect,
) -> tuple[list[str], list[LeftOut]]:
    """The columns used as features, and every other column with its reason."""
    available = ", ".join(n if n else "''" for n in names)
    if index_col is not None and index_col.lower() != "none" and index_col not in names:
        raise CSVDataError(
            f"unknown column {index_col!r} in --index-col; the columns are: {available}"
        )
    if columns is not None:
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise CSVDataError(
                f"unknown column {unknown[0]!r} in --columns; the columns are: {available}"
            )
        twice = [c for c in dict.fromkeys(columns) if list(columns).count(c) > 1]
        if twice:
            raise CSVDataError(f"column {twice[0]!r} is given twice in --columns")
    explicit = columns is not None
    wanted = list(columns) if explicit else list(names)
    left_out: list[LeftOut] = []
    chosen: list[str] = []
    hint = "leave it out with --columns"

    index_name = None
    if index_col is not None:
        index_name = None if index_col.lower() == "none" else index_col
        if index_name is not None:
            left_out.append(LeftOut(index_name, "index column (--index-col)"))
    elif not explicit and names:
        reason = _is_index(names[0], values.iloc[:, 0])
        if reason is not None:
            index_name = names[0]
            left_out.append(
                LeftOut(
                    index_name or "column 1 (no name)",
                    f"{reason}; use it as a feature with --index-col none",
                )
            )
    if explicit and index_name in wanted:
        raise CSVDataError(f"column {index_name!r} is both in --columns and the --index-col")

    for j, name in enumerate(names):
        if name == index_name or (explicit and name not in wanted):
            continue
        number = values.iloc[:, j]
        is_missing = missing.iloc[:, j].to_numpy()
        present = ~is_missing
        is_number = number.notna().to_numpy()
        bad = present & ~is_number
        shown = name if name else f"column {j + 1} (no name)"
        if not present.any():
            if explicit:
                raise CSVDataError(f"column {name!r} has no values (every cell is missing)")
            left_out.append(LeftOut(shown, "no values: every cell is empty or a placeholder"))
            continue
        if bad.any():
            share = is_number.sum() / present.sum()
            example = _example(strings[j], bad, lines)
            decimal_hint = (
                f" or --decimal {'.' if dialect.decimal == ',' else ','}"
                if any(ch in strings[j].iloc[int(np.flatnonzero(bad)[0])] for ch in ".,")
                else ""
            )
            if share >= _TEXT_SHARE:
                raise CSVDataError(
                    f"column {shown!r} mixes numbers and text ({example}; {is_number.sum()} "
                    f"of its {present.sum()} values are numbers): write missing values as "
                    f"empty cells or NA{decimal_hint}, or {hint}"
                )
            if explicit:
                raise CSVDataError(
                    f"column {shown!r} in --columns is not numeric ({example}); leave it out "
                    "of --columns"
                )
            left_out.append(LeftOut(shown, f"text, e.g. {example}"))
            continue
        if not name:  # an unnamed numeric column that is not the first
            raise CSVDataError(
                f"column {j + 1} has no name in the header; name it, or use --no-header "
                "if the first row is data"
            )
        column = number.to_numpy()
        distinct = np.unique(column[present])
        if len(distinct) < 2:
            if explicit:
                raise CSVDataError(
                    f"column {name!r} is constant (every value is {distinct[0]:g}): a mixture "
                    f"cannot be fitted to it; {hint}"
                )
            left_out.append(
                LeftOut(name, f"constant: every value is {distinct[0]:g}, no information")
            )
            continue
        twin = next(
            (c for c in chosen if np.array_equal(values[c].to_numpy(), column, equal_nan=True)),
            None,
        )
        if twin is not None:
            if explicit:
                raise CSVDataError(
                    f"columns {twin!r} and {name!r} hold identical values: their covariance "
                    f"is singular; use only one of them in --columns"
                )
            left_out.append(LeftOut(name, f"identical to column {twin!r}"))
            continue
        chosen.append(name)
    if explicit:
        chosen = [c for c in wanted if c in chosen]
        for name in names:
            if name not in wanted and name != index_name:
                left_out.append(LeftOut(name or "(no name)", _NOT_CHOSEN))
    if not chosen:
        reasons = "; ".join(str(c) for c in left_out) or "none"
        raise CSVDataError(
            f"{dialect.path!r} has no numeric column to fit (columns: {available}; left out: "
            f"{reasons}); check "
            "the separator (--sep) and decimal mark (--decimal), or choose columns with "
            "--columns"
        )
    return chosen, left_out
