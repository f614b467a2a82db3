"""The ``bayesgmm`` command line.

``bayesgmm demo`` runs model selection on the bundled Old Faithful data, prints a summary
and saves plots and tables. Every subcommand is one ``_add_<name>_parser`` function in
:data:`_SUBCOMMANDS` that registers its arguments and its handler (``handler(args) -> int``),
so new commands (``fit``, ``select``) slot in without touching :func:`main`.

Exit codes: 0 success, 1 the command failed (a one-line message on stderr), 2 bad
arguments (a one-line message on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["build_parser", "main"]

PROG = "bayesgmm"
#: Files ``bayesgmm demo`` writes into its output folder.
DEMO_FILES = ("components.png", "bic.png", "bic_table.csv", "summary.txt")


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
            "summary and save components.png, bic.png, bic_table.csv and summary.txt to OUT."
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
    return 0


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


def _write_atomically(out: Path, writers: dict[str, Callable[[Path], object]]) -> None:
    """Write every file into a fresh staging folder, then move the results into ``out``.

    A new ``out`` is the staging folder renamed (``os.replace``), so it appears complete
    or not at all. An existing ``out`` gets each file replaced (``os.replace`` from a
    staging folder inside it); other files in it are left alone. On failure the staging
    folder is removed and ``out`` is as it was.
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


#: One function per subcommand; each adds its parser and sets ``handler``.
_SUBCOMMANDS: tuple[Callable[..., None], ...] = (_add_demo_parser,)


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
