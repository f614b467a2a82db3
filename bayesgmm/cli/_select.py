"""``bayesgmm select``: numbers of components and covariance types compared."""

from __future__ import annotations

import argparse
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm.cli._common import (
    EM_SETTINGS,
    SELECT_FILES,
    _add_data_arguments,
    _add_output_arguments,
    _add_sampling_arguments,
    _check_out,
    _CollectWarnings,
    _components_list,
    _covariance_list,
    _covariance_names,
    _fail,
    _progress,
    _supported_types,
    _unsupported,
    expand_covariances,
)
from bayesgmm.cli._data import READING_RULES, read_data, report_reading
from bayesgmm.cli._output import _write_atomically

# -- bayesgmm select ---------------------------------------------------------------------
_SELECT_EPILOG = """\
examples:
  bayesgmm select faithful.csv --components 1-9 --out faithful-select
      BIC, AIC and ICL of MLE and MAP fits, K = 1..9, all four covariance types
  bayesgmm select data.csv --components 2,3,5 --covariance full,diag --out sel
  bayesgmm select data.csv --components 1-9 --covariance mclust --out mclust-bic
      mclust's fourteen families (E and V for one column), as mclust's mclustBIC
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
        epilog=_SELECT_EPILOG + "\n" + READING_RULES,
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
        help="comma-separated covariance types, names in any case: "
        f"{_covariance_names()}; or the keywords 'all' = scikit-learn's four, "
        "full,tied,diag,spherical (the default, unchanged: the demo's grid) and "
        "'mclust' = mclust's fourteen (E,V for one column), mclustBIC's grid. Two names of "
        "one model (full and VVV) count once. MAP fits of VEE, EVE, VVE, EVV fail (no "
        "conjugate prior: their MAP criteria are empty); --posterior takes only the "
        "types without an orientation to estimate and EEE, VVV",
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
    _check_out(command, args.out)
    data = read_data(command, args, max(2, ks[-1]), ks[-1])
    X = data.X
    types = expand_covariances(args.covariance, X.shape[1])
    if args.posterior:
        refused = [cov for cov in types if _unsupported(cov, "posterior") is not None]
        if refused:
            kept = [cov for cov in types if cov not in refused]
            raise _fail(
                command,
                f"--posterior cannot sample {', '.join(refused)}; leave out --posterior, or "
                f"choose --covariance {','.join(kept) or 'full'} (the posterior takes "
                f"{', '.join(_supported_types('posterior'))}). Why ({refused[0]}): "
                f"{_unsupported(refused[0], 'posterior')}",
            )
    report_reading(command, args, data, progress)
    n_models = len(ks) * len(types)
    progress(
        f"Comparing {n_models} models (K = {','.join(map(str, ks))}; {', '.join(types)}): "
        "MLE and MAP fits" + (f", and {n_models} NUTS runs (slow)" if args.posterior else "")
    )
    fit_warnings: list[str] = []
    skip: tuple[type, ...] = ()
    if args.posterior:  # the report words the sampler's diagnostics per model itself
        from bayesgmm.bayes import SamplingWarning

        skip = (SamplingWarning,)
    start = time.perf_counter()
    collect = _CollectWarnings(fit_warnings, progress, skip, quiet=args.quiet)
    with threadpool_limits(limits=1), collect:
        comparison = compare_models(
            X,
            ks,
            types,
            posterior=args.posterior,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            relabel=args.relabel,
            n_init=EM_SETTINGS["n_init"],
            random_state=args.seed,
            progress=not args.quiet,
        )
    progress(f"Model comparison took {time.perf_counter() - start:.1f} s")
    try:
        with _CollectWarnings(fit_warnings, progress, quiet=args.quiet):
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
            "relabel": args.relabel,
        },
        plot_png=png,
        data_notes=data.notes,
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
