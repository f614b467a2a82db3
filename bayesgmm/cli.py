"""The ``bayesgmm`` command line.

- ``bayesgmm fit DATA.csv --components K --out DIR`` fits a mixture by maximum likelihood,
  MAP and the full posterior and writes a self-contained ``report.html``, ``estimates.csv``,
  ``posterior.nc``, ``models.joblib`` and ``summary.txt`` (the report is rendered by
  :mod:`bayesgmm.report`).
- ``bayesgmm select DATA.csv --components 1-9 --out DIR`` compares numbers of components
  and covariance types (BIC/AIC/ICL, PSIS-LOO with ``--posterior``).
- ``bayesgmm demo`` runs model selection on the bundled Old Faithful data, prints a
  summary and saves plots and tables.

Every subcommand is one ``_add_<name>_parser`` function in :data:`_SUBCOMMANDS` that
registers its arguments and its handler (``handler(args) -> int``). Output folders are
written through :func:`_write_atomically`, so they are never left half-written.

Exit codes: 0 success, 1 the command failed (a one-line message on stderr), 2 bad
arguments or unusable data (a one-line message on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["build_parser", "main"]

PROG = "bayesgmm"
#: Files ``bayesgmm demo`` writes into its output folder.
DEMO_FILES = ("components.png", "bic.png", "bic_table.csv", "summary.txt")
#: Files ``bayesgmm fit`` writes (``posterior.nc`` only with the posterior).
FIT_FILES = ("report.html", "estimates.csv", "posterior.nc", "models.joblib", "summary.txt")
#: Files ``bayesgmm select`` writes.
SELECT_FILES = ("selection.csv", "selection.png", "report.html", "summary.txt")
#: Estimation methods of ``bayesgmm fit``, in the order they run.
METHODS = ("mle", "map", "posterior")
#: EM settings of the MLE and MAP fits of ``bayesgmm fit`` (besides the seed).
EM_SETTINGS = {"n_init": 5, "tol": 1e-6, "max_iter": 1000}


class CommandError(Exception):
    """A failure reported as one line on stderr with exit code ``code`` (no traceback)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and do not exit the interpreter."""

    def error(self, message: str):
        raise CommandError(f"{self.prog}: error: {message} (see '{self.prog} --help')", code=2)


def _int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """argparse ``type`` for an integer in ``[minimum, maximum]``."""
    bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {value}")
        return value

    return parse


# -- bayesgmm demo -----------------------------------------------------------------------
def _add_demo_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="model selection on the bundled Old Faithful data; saves plots and tables",
        description=(
            "Fit Gaussian mixtures with K = 1..MAX_COMPONENTS components and all four "
            "covariance types to the Old Faithful geyser data, choose one by BIC, print a "
            "summary and save components.png, bic.png, bic_table.csv and summary.txt to OUT; "
            "then fit the chosen model three ways (MLE with a bootstrap, MAP, full "
            "posterior) as `bayesgmm fit` does, into OUT/fit/ (report.html, ...)."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bayesgmm-demo"),
        metavar="DIR",
        help="output folder, created if needed; bayesgmm's files in it are replaced "
        "(default: ./bayesgmm-demo)",
    )
    parser.add_argument(
        "--max-components",
        type=_int_at_least(1),
        default=9,
        metavar="K",
        help="largest number of components tried (default: 9)",
    )
    parser.add_argument(
        "--n-init",
        type=_int_at_least(1),
        default=5,
        metavar="N",
        help="EM starts per fit (default: 5)",
    )
    parser.add_argument(
        "--seed",
        type=_int_at_least(0, 2**32 - 1),
        default=0,
        help="random seed (default: 0)",
    )
    parser.add_argument(
        "--no-fit",
        action="store_true",
        help="stop after model selection (skip the MLE/MAP/posterior report in OUT/fit)",
    )
    _add_sampling_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_limits

    from bayesgmm.core.covariance import COVARIANCE_TYPES
    from bayesgmm.datasets import load_faithful
    from bayesgmm.selection import select_model

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise CommandError(
            f"{PROG} demo: error: --out {str(out)!r} exists and is not a directory", code=2
        )

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    X = load_faithful()
    settings = {"tol": 1e-6, "max_iter": 1000}
    n_fits = args.max_components * len(COVARIANCE_TYPES)
    progress(
        f"Fitting {n_fits} mixtures to Old Faithful ({X.shape[0]} x {X.shape[1]}): "
        f"K = 1..{args.max_components} x {len(COVARIANCE_TYPES)} covariance types, "
        f"{args.n_init} EM start(s) each"
    )
    start = time.perf_counter()
    # 272 x 2 data: BLAS threads only add overhead, and on a busy machine they spin
    # (measured 17x slower with 2 OpenBLAS threads beside one busy core).
    with threadpool_limits(limits=1):
        selection = select_model(
            X,
            range(1, args.max_components + 1),
            COVARIANCE_TYPES,
            n_init=args.n_init,
            random_state=args.seed,
            progress=not args.quiet,
            **settings,
        )
    progress(f"Model selection took {time.perf_counter() - start:.1f} s")

    summary = _demo_summary(X, selection, args, settings)
    print(summary)
    _write_atomically(
        out,
        {
            "components.png": lambda path: _save_plot(
                path, "plot_components", selection.best_estimator, X
            ),
            "bic.png": lambda path: _save_plot(path, "plot_model_selection", selection),
            "bic_table.csv": lambda path: selection.table.to_csv(path, index=False),
            "summary.txt": lambda path: path.write_text(summary + "\n", encoding="utf-8"),
        },
    )
    progress(f"Wrote {', '.join(DEMO_FILES)} to {out}")
    if args.no_fit:
        return 0
    from importlib.resources import as_file, files

    best = selection.best_estimator
    progress(
        f"Fitting the chosen model (K={best.n_components}, {best.covariance_type}) by MLE, "
        f"MAP and NUTS into {out / 'fit'}"
    )
    with as_file(files("bayesgmm.datasets") / "data" / "faithful.csv") as csv_path:
        fit_args = argparse.Namespace(
            data=csv_path,
            columns=None,
            components=best.n_components,
            covariance=best.covariance_type,
            methods=("mle", "map", "posterior"),
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            bootstrap=200,
            seed=args.seed,
            out=out / "fit",
            quiet=args.quiet,
        )
        return _run_fit(fit_args)


def _save_plot(path: Path, function: str, *args) -> None:
    """Draw ``bayesgmm.plotting.<function>(*args, ax=...)`` on a new figure and save it.

    Uses :class:`matplotlib.figure.Figure` directly (rendered by Agg when saved), so no
    pyplot state, GUI backend or display is involved.
    """
    from matplotlib.figure import Figure

    from bayesgmm import plotting

    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    getattr(plotting, function)(*args, ax=fig.add_subplot())
    fig.savefig(path, dpi=150)


def _write_atomically(
    out: Path, writers: dict[str, Callable[[Path], object]], stale: Sequence[str] = ()
) -> None:
    """Write every file into a fresh staging folder, then move the results into ``out``.

    A new ``out`` is the staging folder renamed (``os.replace``), so it appears complete
    or not at all. An existing ``out`` gets each file replaced (``os.replace`` from a
    staging folder inside it), and the files named in ``stale`` that were not written
    this time (left by an earlier run with other options) are removed; other files in
    it are left alone. On failure the staging folder is removed and ``out`` is as it was.
    """
    existed = out.is_dir()
    parent = out if existed else out.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{out.name or 'out'}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()  # honours the umask, unlike tempfile.mkdtemp
    try:
        for name, write in writers.items():
            write(staging / name)
        if existed:
            for name in writers:
                os.replace(staging / name, out / name)
            staging.rmdir()
            for name in stale:
                if name not in writers and (out / name).is_file():
                    (out / name).unlink()
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _demo_summary(X: pd.DataFrame, selection, args: argparse.Namespace, settings) -> str:
    """The text printed by ``bayesgmm demo`` (and saved as ``summary.txt``)."""
    from bayesgmm.core.covariance import get_covariance_model

    table = selection.table
    best = selection.best_estimator
    cov_model = get_covariance_model(best.covariance_type)
    names = [str(c) for c in X.columns]
    best_row = table[
        (table["n_components"] == best.n_components)
        & (table["covariance_type"] == best.covariance_type)
    ].iloc[0]

    # The BIC grid, covariance types in the table's order, the chosen cell starred.
    types = list(pd.unique(table["covariance_type"]))
    grid = selection.grid("bic")[types]
    cells = pd.DataFrame(index=grid.index, columns=grid.columns, dtype=object)
    for k in grid.index:
        for cov in types:
            value = grid.loc[k, cov]
            chosen = k == best.n_components and cov == best.covariance_type
            cells.loc[k, cov] = "NA" if np.isnan(value) else f"{value:.2f}{'*' if chosen else ' '}"
    cells.columns = [f"{cov} ({get_covariance_model(cov).mclust_name})" for cov in types]
    cells.index.name = "K"

    components = pd.DataFrame(
        {"weight": best.weights_, **{f"mean {n}": best.means_[:, i] for i, n in enumerate(names)}},
        index=[f"component {k}" for k in range(best.n_components)],
    )
    full = cov_model.to_full(best.covariances_, *best.means_.shape)
    shared = all(np.array_equal(full[0], cov) for cov in full[1:])
    labels = ["all components"] if shared else [f"component {k}" for k in range(len(full))]
    covariance_blocks = []
    for label, cov in zip(labels, full, strict=False):
        block = pd.DataFrame(cov, index=names, columns=names).to_string(
            float_format=lambda v: f"{v:.4g}"
        )
        covariance_blocks.append(f"  {label}:\n" + _indent(block, 4))

    state = "converged" if best.converged_ else "did NOT converge"
    title = "bayesgmm demo: Gaussian mixtures for the Old Faithful geyser data"
    lines = [
        title,
        "=" * len(title),
        f"Data: {X.shape[0]} eruptions x {X.shape[1]} features ({', '.join(names)}).",
        f"Grid: K = 1..{args.max_components} components x {len(types)} covariance types, "
        f"{args.n_init} EM start(s) each (seed {args.seed}, tol {settings['tol']:g}, "
        f"max_iter {settings['max_iter']}).",
        "",
        "BIC by number of components (rows) and covariance type (columns).",
        "Lower is better (mclust reports -BIC); * marks the chosen model, NA a failed fit.",
        "",
        _indent(cells.to_string(), 2),
        "",
        f"Chosen model: K={best.n_components}, covariance_type={best.covariance_type!r} "
        f"(mclust {cov_model.mclust_name})",
        f"  log-likelihood  {best_row['log_likelihood']:.2f}",
        f"  BIC             {best_row['bic']:.2f}  (mclust BIC {-best_row['bic']:.2f})",
        f"  parameters      {int(best_row['n_parameters'])}",
        f"  EM              {state} after {best.n_iter_} iterations (best of {args.n_init} "
        "start(s))",
        "",
        "Weights and means:",
        _indent(components.to_string(float_format=lambda v: f"{v:.4f}"), 2),
        "",
        f"Covariance matrices ({best.covariance_type}, mclust {cov_model.mclust_name}):",
        *covariance_blocks,
    ]
    return "\n".join(lines)


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


# -- shared by fit and select ------------------------------------------------------------
def _fail(command: str, message: str, code: int = 2) -> CommandError:
    return CommandError(f"{PROG} {command}: error: {message}", code=code)


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",")]


def _components_list(text: str) -> list[int]:
    """argparse ``type`` for ``--components``: ``1-9``, ``2,3,5``, ``4`` or ``1-3,6``."""
    example = "use a range like 1-9 or a list like 2,3,5"
    ks: set[int] = set()
    for item in _items(text):
        start, dash, end = item.partition("-")
        try:
            low = int(start)
            high = int(end) if dash else low
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not a number or range; {example}"
            ) from None
        if low > high:
            raise argparse.ArgumentTypeError(f"range {item!r} is empty (start > end); {example}")
        if low < 1:
            raise argparse.ArgumentTypeError(f"numbers of components must be >= 1; got {item!r}")
        if high - low > 1000:
            raise argparse.ArgumentTypeError(f"range {item!r} is too long; {example}")
        ks.update(range(low, high + 1))
    return sorted(ks)


def _methods_list(text: str) -> tuple[str, ...]:
    """argparse ``type`` for ``--methods``: a comma-separated subset of :data:`METHODS`."""
    chosen = [m.lower() for m in _items(text)]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown method {unknown[0] if unknown else text!r}; choose from {','.join(METHODS)}"
        )
    return tuple(m for m in METHODS if m in chosen)


def _covariance_list(text: str) -> list[str]:
    """argparse ``type`` for ``select --covariance``: ``all`` or a comma-separated list."""
    from bayesgmm.core.covariance import COVARIANCE_TYPES

    if text.strip().lower() == "all":
        return list(COVARIANCE_TYPES)
    chosen = list(dict.fromkeys(c.lower() for c in _items(text)))
    unknown = [c for c in chosen if c not in COVARIANCE_TYPES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown covariance type {unknown[0]!r}; choose 'all' or from "
            f"{','.join(COVARIANCE_TYPES)}"
        )
    return chosen


def _n_boot(text: str) -> int:
    """argparse ``type`` for ``--bootstrap``: 0 (none) or at least 2 replicates."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 0 or an integer >= 2, got {text!r}") from None
    if value < 0 or value == 1:
        raise argparse.ArgumentTypeError(f"must be 0 (no bootstrap) or >= 2, got {value}")
    return value


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _read_data(
    command: str, path: Path, columns: str | None, min_rows: int, why: str
) -> tuple[pd.DataFrame, list[str]]:
    """The numeric data of a CSV file, and notes on what was left out.

    Raises a :class:`CommandError` (exit code 2) for a missing or unreadable file, an
    unknown or non-numeric column in ``columns``, no numeric column, infinite values,
    or fewer than ``min_rows`` complete rows (``why`` says what needs them).
    """
    shown = str(path)
    if not path.exists():
        raise _fail(command, f"data file {shown!r} not found")
    if path.is_dir():
        raise _fail(command, f"{shown!r} is a directory, not a CSV file")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise _fail(command, f"data file {shown!r} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _fail(command, f"cannot read {shown!r} as CSV: {first}") from None
    except OSError as err:
        raise _fail(command, f"cannot read {shown!r}: {err.strerror or err}") from None
    frame.columns = [str(c) for c in frame.columns]
    available = ", ".join(frame.columns)
    notes = []
    if columns is not None:
        chosen = _items(columns)
        unknown = [c for c in chosen if c not in frame.columns]
        if unknown:
            raise _fail(
                command,
                f"unknown column {unknown[0]!r} in --columns; the columns are: {available}",
            )
        twice = [c for c in dict.fromkeys(chosen) if chosen.count(c) > 1]
        if twice:
            raise _fail(command, f"column {twice[0]!r} is given twice in --columns")
        for name in chosen:
            if not _is_numeric(frame[name]):
                values = frame[name]
                bad = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
                example = f" (e.g. {bad.iloc[0]!r} in data row {bad.index[0]})" if len(bad) else ""
                raise _fail(command, f"column {name!r} is not numeric{example}")
    else:
        chosen = [c for c in frame.columns if _is_numeric(frame[c])]
        dropped = [c for c in frame.columns if c not in chosen]
        if not chosen:
            raise _fail(command, f"{shown!r} has no numeric column (columns: {available})")
        if dropped:
            notes.append(
                f"non-numeric column(s) left out: {', '.join(dropped)} "
                "(choose columns with --columns)"
            )
    X = frame[chosen].astype(float)
    values = X.to_numpy()
    if np.isinf(values).any():
        name = X.columns[np.isinf(values).any(axis=0)][0]
        raise _fail(command, f"column {name!r} has infinite values")
    complete = ~np.isnan(values).any(axis=1)
    if not complete.all():
        notes.append(f"{int((~complete).sum())} row(s) with missing values left out")
        X = X[complete]
    if len(X) < min_rows:
        raise _fail(
            command,
            f"too few rows: {shown!r} has {len(X)} complete row(s) of numeric data, but "
            f"{why} needs at least {min_rows}",
        )
    return X, notes


def _check_out(command: str, out: Path) -> None:
    """Fail early (before any fitting) if ``out`` cannot become the output folder."""
    if out.exists() and not out.is_dir():
        raise _fail(command, f"--out {str(out)!r} exists and is not a directory")
    existing = out.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise _fail(command, f"--out {str(out)!r}: cannot write in {str(existing)!r}")


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    return progress


class _CollectWarnings:
    """Record the warnings raised inside (first line, once each) and echo them.

    Deprecation and future warnings (meant for developers of the libraries) are not
    shown; warnings in ``skip`` (e.g. the sampler's, which the report words itself)
    are echoed but not kept.
    """

    def __init__(self, found: list[str], echo: Callable[[str], None], skip=()) -> None:
        self.found = found
        self.echo = echo
        self.skip = tuple(skip)
        self._context = warnings.catch_warnings(record=True)

    def __enter__(self):
        self._caught = self._context.__enter__()
        warnings.simplefilter("always")
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        return self

    def __exit__(self, *exc_info):
        self._context.__exit__(*exc_info)
        seen = set(self.found)
        for record in self._caught:
            text = str(record.message).strip().splitlines()
            source = _package_of(record.filename)
            origin = f" (from {source})" if source and source != "bayesgmm" else ""
            line = f"{record.category.__name__}{origin}: {text[0] if text else ''}"
            if line in seen:
                continue
            seen.add(line)
            self.echo(f"warning: {line}")
            if not issubclass(record.category, self.skip):
                self.found.append(line)
        return False


def _package_of(filename: str) -> str | None:
    """The top-level package a source file belongs to (``.../site-packages/PKG/...``)."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1].removesuffix(".py")
    if "bayesgmm" in parts:
        return "bayesgmm"
    return None


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder, created if needed; written completely or not at all "
        "(bayesgmm's files in an existing folder are replaced, others left alone)",
    )
    parser.add_argument(
        "--seed",
        type=_int_at_least(0, 2**32 - 1),
        default=0,
        help="random seed (default: 0)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress messages or warnings on stderr"
    )


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, metavar="DATA.csv", help="CSV file with a header row")
    parser.add_argument(
        "--columns",
        metavar="a,b,...",
        help="comma-separated columns to use (default: every numeric column; the others "
        "are left out with a note)",
    )


def _add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--draws",
        type=_int_at_least(1),
        default=1000,
        metavar="N",
        help="posterior draws per chain (default: 1000)",
    )
    parser.add_argument(
        "--tune",
        type=_int_at_least(0),
        default=1000,
        metavar="N",
        help="tuning steps per chain, discarded (default: 1000)",
    )
    parser.add_argument(
        "--chains",
        type=_int_at_least(1),
        default=4,
        metavar="N",
        help="NUTS chains (default: 4)",
    )


# -- bayesgmm fit ------------------------------------------------------------------------
_FIT_EPILOG = """\
examples:
  bayesgmm fit faithful.csv --components 2 --out faithful-fit
      MLE, MAP and full posterior (4 chains x 1000 draws) of a 2-component mixture
  bayesgmm fit data.csv --components 3 --columns x,y --methods mle,map --out quick
      point estimates only (seconds), on two of the columns
  bayesgmm fit data.csv --components 2 --covariance diag --draws 500 --bootstrap 0 --out run2

writes to DIR: report.html (self-contained: open it in a browser), estimates.csv,
posterior.nc (with the posterior; read it with arviz.from_netcdf or
xarray.open_datatree), models.joblib (the fitted models: joblib.load(path) gives a dict
with keys 'mle', 'map', 'posterior'; reloading needs the same bayesgmm version) and
summary.txt (also printed).
"""


def _add_fit_parser(subparsers) -> None:
    from bayesgmm.core.covariance import COVARIANCE_TYPES

    parser = subparsers.add_parser(
        "fit",
        help="fit a mixture to a CSV file by MLE, MAP and full posterior; HTML report",
        description=textwrap.fill(
            "Fit a K-component Gaussian mixture to the numeric columns of a CSV file by "
            "maximum likelihood (EM), MAP (EM with mclust's default conjugate prior) and "
            "the full posterior (NUTS), and write a report comparing the three.",
            width=88,
        ),
        epilog=_FIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_arguments(parser)
    parser.add_argument(
        "--components",
        type=_int_at_least(1),
        required=True,
        metavar="K",
        help="number of mixture components",
    )
    parser.add_argument(
        "--covariance",
        choices=COVARIANCE_TYPES,
        default="full",
        metavar="TYPE",
        help=f"covariance type: {', '.join(COVARIANCE_TYPES)} (default: full)",
    )
    parser.add_argument(
        "--methods",
        type=_methods_list,
        default=METHODS,
        metavar="LIST",
        help="comma-separated subset of mle,map,posterior (default: all three)",
    )
    _add_sampling_arguments(parser)
    parser.add_argument(
        "--bootstrap",
        type=_n_boot,
        default=200,
        metavar="N",
        help="bootstrap replicates of the MLE for its standard errors and intervals; "
        "0 for none (default: 200)",
    )
    _add_output_arguments(parser)
    parser.set_defaults(handler=_run_fit)


def _check_netcdf_writer(command: str) -> None:
    """posterior.nc needs h5netcdf (with h5py) or netCDF4: fail before sampling, not after."""
    from importlib.util import find_spec

    if not ((find_spec("h5netcdf") and find_spec("h5py")) or find_spec("netCDF4")):
        raise _fail(
            command,
            "writing posterior.nc needs the h5netcdf package: pip install 'h5netcdf[h5py]' "
            "(or leave out the posterior: --methods mle,map)",
            code=1,
        )


def _run_fit(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_limits

    from bayesgmm import GaussianMixture, bootstrap
    from bayesgmm.report import FitResult

    command = "fit"
    progress = _progress(args)
    methods: tuple[str, ...] = args.methods
    k, cov, seed = args.components, args.covariance, args.seed
    _check_out(command, args.out)
    if "posterior" in methods:
        _check_netcdf_writer(command)
    X, notes = _read_data(command, args.data, args.columns, max(2, k), f"a {k}-component mixture")
    for note in notes:
        print(f"{PROG} {command}: note: {note}", file=sys.stderr, flush=True)
    progress(
        f"Read {args.data}: {X.shape[0]} rows x {X.shape[1]} columns ({', '.join(X.columns)})"
    )
    n_boot = args.bootstrap if "mle" in methods else 0
    if args.bootstrap and "mle" not in methods:
        progress("--bootstrap ignored: it bootstraps the MLE, which is not among --methods")
    if "posterior" in methods:
        from bayesgmm.bayes import SamplingWarning

        skip: tuple[type, ...] = (SamplingWarning,)
    else:
        skip = ()

    models: dict = {}
    boot = None
    fit_warnings: list[str] = []
    timings: dict[str, float] = {}
    em = f"K={k}, {cov} covariances, {EM_SETTINGS['n_init']} EM starts"
    # Small data: BLAS threads only add overhead (see _run_demo).
    with threadpool_limits(limits=1), _CollectWarnings(fit_warnings, progress, skip):
        if "mle" in methods:
            progress(f"Maximum likelihood: {em} ...")
            start = time.perf_counter()
            models["mle"] = GaussianMixture(
                k, covariance_type=cov, random_state=seed, **EM_SETTINGS
            ).fit(X)
            timings["mle"] = time.perf_counter() - start
        if "map" in methods and "posterior" not in methods:
            progress(f"MAP (default conjugate prior): {em} ...")
            start = time.perf_counter()
            models["map"] = GaussianMixture(
                k, covariance_type=cov, prior="default", random_state=seed, **EM_SETTINGS
            ).fit(X)
            timings["map"] = time.perf_counter() - start
        if n_boot:
            progress(f"Bootstrap of the MLE: {n_boot} replicates ...")
            start = time.perf_counter()
            boot = bootstrap(
                models["mle"], X, n_boot=n_boot, random_state=seed, progress=not args.quiet
            )
            timings["bootstrap"] = time.perf_counter() - start
        if "posterior" in methods:
            from bayesgmm.bayes import PosteriorGaussianMixture

            progress(
                f"Full posterior: NUTS, {args.chains} chains x ({args.tune} tuning + "
                f"{args.draws} draws), started at the MAP fit; compiling the model takes "
                "10-30 s ..."
            )
            start = time.perf_counter()
            # The sampler's progress bar goes to stdout; stdout is for the summary.
            with contextlib.redirect_stdout(sys.stderr):
                posterior = PosteriorGaussianMixture(
                    k,
                    covariance_type=cov,
                    draws=args.draws,
                    tune=args.tune,
                    chains=args.chains,
                    random_state=seed,
                    progressbar=not args.quiet,
                ).fit(X)
            timings["posterior"] = time.perf_counter() - start
            if "map" in methods:
                # One MAP everywhere: the posterior's MAP-EM fit (its mode, the chains'
                # start and the relabelling reference) is the MAP of the report.
                models["map"] = posterior.map_
            models["posterior"] = posterior
    progress("Fitted in " + ", ".join(f"{m} {t:.1f} s" for m, t in timings.items()))

    result = FitResult(
        data_path=str(args.data),
        X=X,
        n_components=k,
        covariance_type=cov,
        methods=methods,
        seed=seed,
        settings={
            "draws": args.draws,
            "tune": args.tune,
            "chains": args.chains,
            "bootstrap": n_boot,
        },
        models={m: models[m] for m in METHODS if m in models},
        bootstrap=boot,
        data_notes=tuple(notes),
        fit_warnings=tuple(fit_warnings),
        timings=timings,
    )
    outputs: dict[str, object] = {}

    def write_models(path: Path) -> None:
        outputs["posterior_pickled"] = _dump_models(result.models, path)

    def write_report(path: Path) -> None:
        from bayesgmm.report import fit_report

        progress("Drawing the report ...")
        table, page, summary = fit_report(
            result, warn=progress, posterior_pickled=outputs["posterior_pickled"]
        )
        path.write_text(page, encoding="utf-8")
        outputs.update(table=table, summary=summary)

    writers: dict[str, Callable[[Path], object]] = {"models.joblib": write_models}
    if "posterior" in result.models:
        writers["posterior.nc"] = lambda path: result.posterior.idata_.to_netcdf(path)
    writers["report.html"] = write_report
    writers["estimates.csv"] = lambda path: outputs["table"].to_csv(path, index=False)
    writers["summary.txt"] = lambda path: path.write_text(
        outputs["summary"] + "\n", encoding="utf-8"
    )
    _write_atomically(args.out, writers, stale=FIT_FILES)
    print(outputs["summary"])
    progress(f"Wrote {', '.join(n for n in FIT_FILES if n in writers)} to {args.out}")
    return 0


def _dump_models(models: dict, path: Path) -> bool:
    """``joblib.dump`` the models; False if the posterior had to go without its draws.

    If the posterior's DataTree does not pickle, the posterior is stored without
    ``idata_`` (its draws are in posterior.nc).
    """
    import copy
    import pickle

    import joblib

    try:
        joblib.dump(models, path)
        return True
    except (pickle.PicklingError, TypeError, AttributeError):
        posterior = models.get("posterior")
        if posterior is None:
            raise
        slim = copy.copy(posterior)
        del slim.idata_
        joblib.dump({**models, "posterior": slim}, path)
        return False


# -- bayesgmm select ---------------------------------------------------------------------
_SELECT_EPILOG = """\
examples:
  bayesgmm select faithful.csv --components 1-9 --out faithful-select
      BIC, AIC and ICL of MLE and MAP fits, K = 1..9, all four covariance types
  bayesgmm select data.csv --components 2,3,5 --covariance full,diag --out sel
  bayesgmm select data.csv --components 1-3 --covariance full --posterior --draws 500 --out loo
      also PSIS-LOO of each model's full posterior (one NUTS run per model: slow)

writes to DIR: selection.csv (one row per model), selection.png, report.html and
summary.txt (the choice of each criterion; also printed).
"""


def _add_select_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "select",
        help="compare numbers of components and covariance types (BIC/AIC/ICL, LOO)",
        description=textwrap.fill(
            "Fit Gaussian mixtures over a grid of numbers of components and covariance "
            "types to the numeric columns of a CSV file, and report the model each "
            "criterion chooses: BIC, AIC and ICL of the MLE and the MAP fits, and with "
            "--posterior the PSIS-LOO of the full posteriors.",
            width=88,
        ),
        epilog=_SELECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_arguments(parser)
    parser.add_argument(
        "--components",
        type=_components_list,
        default=list(range(1, 10)),
        metavar="RANGE",
        help="numbers of components: a range like 1-9 or a list like 2,3,5 (default: 1-9)",
    )
    parser.add_argument(
        "--covariance",
        type=_covariance_list,
        default=_covariance_list("all"),
        metavar="TYPES",
        help="'all' or a comma-separated list of full,tied,diag,spherical (default: all)",
    )
    parser.add_argument(
        "--posterior",
        action="store_true",
        help="also sample each model's posterior and compare them by PSIS-LOO (slow)",
    )
    _add_sampling_arguments(parser)
    _add_output_arguments(parser)
    parser.set_defaults(handler=_run_select)


def _run_select(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_limits

    from bayesgmm import compare_models
    from bayesgmm.report import select_report

    command = "select"
    progress = _progress(args)
    ks: list[int] = args.components
    types: list[str] = args.covariance
    _check_out(command, args.out)
    X, notes = _read_data(
        command, args.data, args.columns, max(2, ks[-1]), f"a {ks[-1]}-component mixture"
    )
    for note in notes:
        print(f"{PROG} {command}: note: {note}", file=sys.stderr, flush=True)
    n_models = len(ks) * len(types)
    progress(
        f"Read {args.data}: {X.shape[0]} rows x {X.shape[1]} columns. Comparing {n_models} "
        f"models (K = {','.join(map(str, ks))}; {', '.join(types)}): MLE and MAP fits"
        + (f", and {n_models} NUTS runs (slow)" if args.posterior else "")
    )
    fit_warnings: list[str] = []
    skip: tuple[type, ...] = ()
    if args.posterior:  # the report words the sampler's diagnostics per model itself
        from bayesgmm.bayes import SamplingWarning

        skip = (SamplingWarning,)
    start = time.perf_counter()
    with threadpool_limits(limits=1), _CollectWarnings(fit_warnings, progress, skip):
        comparison = compare_models(
            X,
            ks,
            types,
            posterior=args.posterior,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            n_init=EM_SETTINGS["n_init"],
            random_state=args.seed,
            progress=not args.quiet,
        )
    progress(f"Model comparison took {time.perf_counter() - start:.1f} s")
    try:
        png = _selection_png(comparison.table)
    except Exception as err:  # the table and summary still get written
        png = None
        progress(f"warning: selection.png not drawn: {type(err).__name__}: {err}")
    page, summary = select_report(
        comparison,
        data_path=str(args.data),
        X=X,
        settings={
            "components": ks,
            "covariance_types": types,
            "posterior": args.posterior,
            "seed": args.seed,
            "draws": args.draws,
            "tune": args.tune,
            "chains": args.chains,
        },
        plot_png=png,
        data_notes=notes,
        fit_warnings=fit_warnings,
    )
    writers: dict[str, Callable[[Path], object]] = {
        "selection.csv": lambda path: comparison.table.to_csv(path, index=False),
    }
    if png is not None:
        writers["selection.png"] = lambda path: path.write_bytes(png)
    writers["report.html"] = lambda path: path.write_text(page, encoding="utf-8")
    writers["summary.txt"] = lambda path: path.write_text(summary + "\n", encoding="utf-8")
    _write_atomically(args.out, writers, stale=SELECT_FILES)
    print(summary)
    progress(f"Wrote {', '.join(writers)} to {args.out}")
    return 0


def _selection_png(table: pd.DataFrame) -> bytes:
    """``plot_model_selection`` of the table (BIC, and LOO beside it when present)."""
    import io

    from matplotlib.figure import Figure

    from bayesgmm.plotting import plot_model_selection

    loo = "elpd_loo" in table and bool(np.isfinite(table["elpd_loo"].to_numpy(float)).any())
    fig = Figure(figsize=(12.0, 4.8) if loo else (7.5, 5.0), layout="constrained")
    axes = fig.subplots(1, 2) if loo else fig.add_subplot()
    plot_model_selection(table, ax=tuple(axes) if loo else axes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


#: One function per subcommand; each adds its parser and sets ``handler``.
_SUBCOMMANDS: tuple[Callable[..., None], ...] = (
    _add_fit_parser,
    _add_select_parser,
    _add_demo_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command.

    Examples
    --------
    >>> args = build_parser().parse_args(["demo", "--max-components", "3"])
    >>> args.command, args.max_components, args.n_init, args.seed
    ('demo', 3, 5, 0)
    """
    from bayesgmm import __version__

    parser = _Parser(
        prog=PROG,
        description="Gaussian mixtures fitted by maximum likelihood, MAP and full posterior.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True
    )
    for add_subcommand in _SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayesgmm`` command and return its exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 on success, 1 if the command failed, 2 for bad arguments, 130 if
        interrupted. Errors are one line on stderr, without a traceback.

    Examples
    --------
    >>> main(["demo", "--max-components", "0"])  # message on stderr
    2
    """
    try:
        args = build_parser().parse_args(argv)
    except CommandError as err:
        print(err, file=sys.stderr)
        return err.code
    except SystemExit as exc:  # --help and --version print, then exit
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    try:
        return int(args.handler(args))
    except CommandError as err:
        print(err, file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1
