"""A corpus of awkward CSV files through ``bayesgmm fit`` (and ``select``).

Each file holds the same data (or a known part of it) written the way spreadsheets,
statistics packages and people write files. Each case is either read to exactly the
same fit as the clean data given to :class:`bayesgmm.GaussianMixture` directly (to
1e-8), or refused with exit code 2 and one line that names the problem and the fix. No
case may exit 0 with a different fit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cli import run_cli as _run

from bayesgmm import GaussianMixture, default_ci_prob
from bayesgmm._intervals import level_suffix
from bayesgmm.cli import EM_SETTINGS
from bayesgmm.datasets import make_mixture
from bayesgmm.diagnostics import estimates_to_frame, params_to_dataset, stack_statistics

N = 40
SAMPLE = make_mixture(N, n_components=2, n_features=2, separation=6, random_state=1)
CLEAN = pd.DataFrame(SAMPLE.X, columns=["x", "y"])
FAST = ["--components", "2", "--methods", "mle", "--bootstrap", "0", "--quiet"]


def _cell(value: float, decimal: str = ".") -> str:
    text = repr(float(value))
    return text.replace(".", ",") if decimal == "," else text


def _lines(
    frame: pd.DataFrame, sep: str = ",", decimal: str = ".", header: bool = True
) -> list[str]:
    lines = [sep.join(str(c) for c in frame.columns)] if header else []
    for row in frame.itertuples(index=False):
        cells = [v if isinstance(v, str) else _cell(v, decimal) for v in row]
        lines.append(sep.join(cells))
    return lines


def _text(lines: list[str], newline: str = "\n") -> str:
    return newline.join(lines) + newline


def _with(column: str, values, position: int | None = None) -> pd.DataFrame:
    frame = CLEAN.copy()
    frame.insert(len(frame.columns) if position is None else position, column, values)
    return frame


def _put(row: int, token: str, frame: pd.DataFrame = CLEAN) -> pd.DataFrame:
    """``frame`` with the cell (row, first column) replaced by the text ``token``."""
    frame = frame.astype(object)
    frame.iloc[row, 0] = token
    return frame


def _placeholders() -> tuple[bytes, list[int], list[tuple[int, str]]]:
    """Missing values written six ways; returns the file, the complete rows and the
    missing cells (row, column)."""
    lines = _lines(CLEAN)
    holes = {3: "NA", 7: "n/a", 11: "-", 15: ".", 19: "?", 23: ""}
    cells = []
    for j, (i, token) in enumerate(holes.items()):
        x, y = lines[i + 1].split(",")
        lines[i + 1] = f"{token},{y}" if j % 2 else f"{x},{token}"
        cells.append((i, "x" if j % 2 else "y"))
    return _text(lines).encode(), [i for i in range(N) if i not in holes], cells


def _blank_lines() -> bytes:
    lines = _lines(CLEAN)
    for i in (30, 20, 5):
        lines.insert(i, "")
    lines.insert(10, "   ")
    return (_text(lines) + "\n\n").encode()


def _whitespace() -> bytes:
    rows = [f"{'x':>24} {'y':>24}"]
    rows += [f"{_cell(x):>24}   {_cell(y):>24}" for x, y in CLEAN.to_numpy()]
    return _text(rows).encode()


_ALL = list(range(N))
_FILES: dict[str, Callable[[], tuple[bytes, list[str], list[int], list[str]]]] = {
    # name: () -> (file bytes, extra arguments, rows of CLEAN fitted, feature names)
    "comma": lambda: (_text(_lines(CLEAN)).encode(), [], _ALL, ["x", "y"]),
    "excel european: ; and decimal comma, BOM, CRLF": lambda: (
        b"\xef\xbb\xbf" + _text(_lines(CLEAN, ";", ","), "\r\n").encode(),
        [],
        _ALL,
        ["x", "y"],
    ),
    "semicolon with decimal point": lambda: (
        _text(_lines(CLEAN, ";")).encode(),
        [],
        _ALL,
        ["x", "y"],
    ),
    "tab": lambda: (_text(_lines(CLEAN, "\t")).encode(), [], _ALL, ["x", "y"]),
    "tab, decimal comma": lambda: (_text(_lines(CLEAN, "\t", ",")).encode(), [], _ALL, ["x", "y"]),
    "whitespace aligned": lambda: (_whitespace(), [], _ALL, ["x", "y"]),
    "latin-1 header": lambda: (
        _text(_lines(CLEAN.set_axis(["température", "y"], axis=1))).encode("latin-1"),
        [],
        _ALL,
        ["température", "y"],
    ),
    "latin-1 given": lambda: (
        _text(_lines(CLEAN.set_axis(["température", "y"], axis=1))).encode("latin-1"),
        ["--encoding", "latin-1"],
        _ALL,
        ["température", "y"],
    ),
    "utf-16 with BOM": lambda: (
        _text(_lines(CLEAN, "\t"), "\r\n").encode("utf-16"),
        [],
        _ALL,
        ["x", "y"],
    ),
    "no header": lambda: (_text(_lines(CLEAN, header=False)).encode(), [], _ALL, ["x0", "x1"]),
    "--no-header given, ; and ,": lambda: (
        _text(_lines(CLEAN, ";", ",", header=False)).encode(),
        ["--no-header", "--sep", ";", "--decimal", ","],
        _ALL,
        ["x0", "x1"],
    ),
    "pandas index column (empty name, 0..N-1)": lambda: (
        CLEAN.to_csv().encode(),
        [],
        _ALL,
        ["x", "y"],
    ),
    "Unnamed: 0 column": lambda: (
        _text(_lines(_with("Unnamed: 0", np.arange(5, 5 + N), 0))).encode(),
        [],
        _ALL,
        ["x", "y"],
    ),
    "id column 1..N": lambda: (
        _text(_lines(_with("id", np.arange(1, N + 1).astype(float), 0))).encode(),
        [],
        _ALL,
        ["x", "y"],
    ),
    "--index-col given": lambda: (
        _text(_lines(_with("row", np.arange(100, 100 + N).astype(float), 1))).encode(),
        ["--index-col", "row"],
        _ALL,
        ["x", "y"],
    ),
    # Missing values are fitted (integrated out): the reference is the clean frame with
    # NaN in those cells.
    "placeholders for missing values": lambda: (
        _placeholders()[0],
        [],
        _ALL,
        ["x", "y"],
        _placeholders()[2],
    ),
    "blank lines": lambda: (_blank_lines(), [], _ALL, ["x", "y"]),
    "a short row (its last field missing)": lambda: (
        _text([*_lines(CLEAN)[:8], _lines(CLEAN)[8].split(",")[0], *_lines(CLEAN)[9:]]).encode(),
        [],
        _ALL,
        ["x", "y"],
        [(7, "y")],
    ),
    "text ID column": lambda: (
        _text(_lines(_with("sample", [f"S{i:03d}" for i in range(N)], 0))).encode(),
        [],
        _ALL,
        ["x", "y"],
    ),
    "constant column": lambda: (
        _text(_lines(_with("batch", np.full(N, 3.0)))).encode(),
        [],
        _ALL,
        ["x", "y"],
    ),
    "duplicated column": lambda: (
        _text(_lines(_with("x_again", CLEAN["x"].to_numpy()))).encode(),
        [],
        _ALL,
        ["x", "y"],
    ),
    "--columns chooses": lambda: (
        _text(_lines(_with("z", np.arange(N) ** 2.0))).encode(),
        ["--columns", "y,x"],
        _ALL,
        ["y", "x"],
    ),
}

_ERRORS: dict[str, tuple[Callable[[], bytes], list[str], list[str]]] = {
    # name: (file, extra arguments, words the one-line message must contain)
    "a number with a text mark": (
        lambda: _text(_lines(_put(4, "<0.5"))).encode(),
        [],
        ["mixes numbers and text", "'<0.5' on line 6", "write missing values as empty"],
    ),
    "a decimal comma in a comma-point file": (
        lambda: _text(_lines(_put(2, "1.234,5"), sep=";")).encode(),
        [],
        ["mixes numbers and text", "'1.234,5'", "--decimal ,"],
    ),
    "two columns with the same name": (
        lambda: _text(
            _lines(_with("z", np.arange(N) ** 2.0).set_axis(["x", "y", "x"], axis=1))
        ).encode(),
        [],
        ["two columns named 'x'", "rename one"],
    ),
    "a row with an extra field": (
        lambda: _text([*_lines(CLEAN)[:5], "1.0,2.0,3.0", *_lines(CLEAN)[5:]]).encode(),
        [],
        ["line 6", "--sep"],
    ),
    "an infinite value": (
        lambda: _text(_lines(_put(9, "inf"))).encode(),
        [],
        ["infinite value", "line 11"],
    ),
    "more components than distinct rows": (
        lambda: _text(_lines(pd.concat([CLEAN.iloc[:3]] * 10, ignore_index=True))).encode(),
        ["--components", "5"],
        ["--components 5 is more than the 3 distinct row(s)", "use at most 3"],
    ),
    "wrong --encoding": (
        lambda: _text(_lines(CLEAN.set_axis(["température", "y"], axis=1))).encode("latin-1"),
        ["--encoding", "utf-8"],
        ["not valid utf-8", "--encoding"],
    ),
    "unknown --encoding": (
        lambda: _text(_lines(CLEAN)).encode(),
        ["--encoding", "klingon"],
        ["unknown --encoding 'klingon'"],
    ),
    "a constant column asked for": (
        lambda: _text(_lines(_with("batch", np.full(N, 3.0)))).encode(),
        ["--columns", "x,batch"],
        ["column 'batch' is constant", "--columns"],
    ),
    "identical columns asked for": (
        lambda: _text(_lines(_with("x_again", CLEAN["x"].to_numpy()))).encode(),
        ["--columns", "x,x_again"],
        ["identical values", "only one of them"],
    ),
    "an unnamed column in the middle": (
        lambda: _text(_lines(_with("", np.arange(N) ** 2.0, 1))).encode(),
        [],
        ["column 2 has no name", "--no-header"],
    ),
    "unknown --index-col": (
        lambda: _text(_lines(CLEAN)).encode(),
        ["--index-col", "id"],
        ["unknown column 'id' in --index-col", "the columns are: x, y"],
    ),
    "the wrong --sep": (
        lambda: _text(_lines(CLEAN, ";", ",")).encode(),
        ["--sep", ","],
        ["separator ','", "--sep"],
    ),
    "a header with a name too many": (
        lambda: _text(["x,y,z", *_lines(CLEAN)[1:]]).encode(),
        [],
        ["header", "has 3 field(s) but the data rows have 2", "--sep"],
    ),
    "only a header": (lambda: b"x,y\n", [], ["has a header but no data rows"]),
    "only text": (
        lambda: _text(["name,city", "a,b", "c,d", "e,f"]).encode(),
        [],
        ["has no numeric column", "--sep", "--decimal"],
    ),
}


def _estimates(frame: pd.DataFrame) -> pd.DataFrame:
    """The MLE rows of estimates.csv for a direct fit of ``frame``."""
    model = GaussianMixture(2, covariance_type="full", random_state=0, **EM_SETTINGS).fit(frame)
    names = [str(c) for c in frame.columns]
    dataset = params_to_dataset(model._params(), "full", names)
    return estimates_to_frame(stack_statistics({"mle": dataset}))


@pytest.mark.parametrize("case", sorted(_FILES))
def test_awkward_file_gives_the_clean_fit(case, tmp_path):
    content, extra, rows, names, *holes = _FILES[case]()
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    out = tmp_path / "out"
    code, stdout, stderr = _run(["fit", str(path), *FAST, *extra, "--out", str(out)])
    assert code == 0, stderr
    assert path.read_bytes() == content  # nothing the user gave is modified
    clean = CLEAN.copy()
    for row, column in holes[0] if holes else []:
        clean.loc[row, column] = np.nan
    clean = clean.iloc[rows].reset_index(drop=True)
    clean = clean[["x", "y"] if names[0] != "y" else ["y", "x"]].set_axis(names, axis=1)
    expected = _estimates(clean)
    table = pd.read_csv(out / "estimates.csv", keep_default_na=False, na_values=[""])
    assert list(table["label"]) == list(expected["label"])
    np.testing.assert_allclose(table["mle"], expected["mle"], rtol=1e-8, atol=1e-10)
    assert f"columns used (2): {', '.join(names)}" in stdout
    assert f"observations (N): {len(rows)}" in stdout


@pytest.mark.parametrize("case", sorted(_ERRORS))
def test_unusable_file_is_one_line_with_the_fix(case, tmp_path):
    write, extra, words = _ERRORS[case]
    path = tmp_path / "data.csv"
    path.write_bytes(write())
    out = tmp_path / "out"
    args = ["fit", str(path), *FAST, *extra, "--out", str(out)]
    if "--components" in extra:
        args.remove("2")
        args.remove("--components")
    code, stdout, stderr = _run(args)
    assert code == 2, (stdout, stderr)
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("bayesgmm fit: error: ")
    assert "Traceback" not in stderr
    for word in words:
        assert word in stderr, stderr
    assert not out.exists()


def test_summary_and_report_name_what_was_read_and_left_out(tmp_path):
    frame = _with("id", np.arange(1, N + 1).astype(float), 0)
    frame.insert(3, "site", [f"site {i % 3}" for i in range(N)])
    frame.insert(4, "batch", np.full(N, 7.0))
    lines = _lines(frame, ";", ",")
    _x, y, *rest = lines[5].split(";")[1:]
    lines[5] = ";".join([lines[5].split(";")[0], "NA", y, *rest])
    path = tmp_path / "messy.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _text(lines, "\r\n").encode())
    out = tmp_path / "out"
    code, stdout, stderr = _run(["fit", str(path), *FAST, "--out", str(out)])
    assert code == 0, stderr
    report = (out / "report.html").read_text(encoding="utf-8")
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert summary == stdout
    expected = [
        "separator ';' (detected), decimal ',' (detected), encoding UTF-8 with BOM "
        "(detected), CRLF line ends, header row (detected)",
        "columns used (2): x, y",
        "id (row index: values 1..40 in order; use it as a feature with --index-col none)",
        "site (text, e.g. 'site 0' on line 2)",
        "batch (constant: every value is 7, no information)",
        "missing values: 1 (x 1)",
        "1 incomplete row(s) (1 missing value(s)) kept: the fits use every observed value",
        "missing values are treated as missing at random",
    ]
    for words in expected:
        assert words in summary, words
        assert words.replace("'", "&#x27;") in report, words
    # What changes the fit is said on stderr even with --quiet.
    assert "columns left out: id" in stderr
    assert "1 incomplete row(s) (1 missing value(s)) kept" in stderr


def test_select_reads_the_same_way(tmp_path):
    eu = tmp_path / "eu.csv"
    eu.write_bytes(b"\xef\xbb\xbf" + _text(_lines(CLEAN, ";", ","), "\r\n").encode())
    clean = tmp_path / "clean.csv"
    clean.write_text(_text(_lines(CLEAN)))
    tables = []
    for path in (eu, clean):
        out = tmp_path / f"out-{path.stem}"
        code, stdout, stderr = _run(
            ["select", str(path), "--components", "1-2", "--covariance", "full,diag",
             "--quiet", "--out", str(out)]
        )  # fmt: skip
        assert code == 0, stderr
        tables.append(pd.read_csv(out / "selection.csv"))
        assert "columns used (2): x, y" in stdout
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_reader_record(tmp_path):
    from bayesgmm._csv import read_numeric_csv

    path = tmp_path / "data.csv"
    content, rows = _placeholders()[:2]
    path.write_bytes(content)
    data = read_numeric_csv(path)
    assert data.columns == ("x", "y")
    assert dict(data.missing) == {"x": 3, "y": 3}
    assert data.frame.shape == (N, 2)
    assert data.frame.dropna().index.tolist() == rows
    np.testing.assert_array_equal(data.frame.dropna().to_numpy(), CLEAN.iloc[rows].to_numpy())
    with pytest.raises(AttributeError):
        data.columns = ("z",)  # frozen
    assert Path(path).read_bytes() == content


def test_missing_cells_are_fitted_and_imputed(tmp_path):
    content, _, cells = _placeholders()
    path = tmp_path / "holes.csv"
    path.write_bytes(content)
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        ["fit", str(path), *FAST, "--methods", "mle,map", "--out", str(out)]
    )
    assert code == 0, stderr
    assert "missing at random" in stdout
    imputed = pd.read_csv(out / "imputed.csv")
    assert sorted(zip(imputed["row"], imputed["column"], strict=True)) == sorted(cells)
    # The file line of each row: the header is line 1.
    np.testing.assert_array_equal(imputed["line"], imputed["row"] + 2)
    frame = CLEAN.copy()
    for row, column in cells:
        frame.loc[row, column] = np.nan
    gm = GaussianMixture(2, prior="default", random_state=0, **EM_SETTINGS).fit(frame)
    filled = gm.impute(frame)
    expected = [
        filled[r, list(frame.columns).index(c)]
        for r, c in zip(imputed["row"], imputed["column"], strict=True)
    ]
    np.testing.assert_allclose(imputed["imputed"], expected, rtol=1e-6)
    level = level_suffix(default_ci_prob())  # the interval columns carry the level
    assert (imputed[f"lower_{level}"] < imputed["imputed"]).all()
    assert (imputed["imputed"] < imputed[f"upper_{level}"]).all()
