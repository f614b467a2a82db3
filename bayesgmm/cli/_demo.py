"""``bayesgmm demo``: model selection on the bundled Old Faithful data."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm.cli._common import (
    DEMO_FILES,
    PROG,
    CommandError,
    _add_sampling_arguments,
    _indent,
    _int_at_least,
)
from bayesgmm.cli._output import _save_plot, _write_atomically


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
            prior="default",
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            relabel=args.relabel,
            bootstrap=200,
            seed=args.seed,
            out=out / "fit",
            quiet=args.quiet,
        )
        from bayesgmm.cli._fit import _run_fit

        return _run_fit(fit_args)


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
