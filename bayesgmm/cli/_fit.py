"""``bayesgmm fit``: MLE, MAP and the full posterior of one mixture, with a report."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bayesgmm._intervals import default_ci_prob, level_columns, level_label
from bayesgmm.cli._common import (
    EM_SETTINGS,
    FIT_FILES,
    METHODS,
    _add_data_arguments,
    _add_output_arguments,
    _add_sampling_arguments,
    _check_methods_take,
    _check_out,
    _CollectWarnings,
    _covariance_name,
    _covariance_names,
    _fail,
    _int_at_least,
    _methods_list,
    _n_boot,
    _progress,
)
from bayesgmm.cli._data import READING_RULES, read_data, report_reading
from bayesgmm.cli._output import _dump_models, _write_atomically

if TYPE_CHECKING:
    from bayesgmm.report import FitResult

# -- bayesgmm fit ------------------------------------------------------------------------
_FIT_EPILOG = """\
examples:
  bayesgmm fit faithful.csv --components 2 --out faithful-fit
      MLE, MAP and full posterior (4 chains x 1000 draws) of a 2-component mixture
  bayesgmm fit data.csv --components 3 --columns x,y --methods mle,map --out quick
      point estimates only (seconds), on two of the columns
  bayesgmm fit data.csv --components 2 --covariance diag --draws 500 --bootstrap 0 --out run2
  bayesgmm fit data.csv --components 3 --covariance VEV --methods mle,map --out vev
      one of mclust's families (VEV: no posterior or Laplace approximation for it)

writes to DIR: report.html (self-contained: open it in a browser), estimates.csv,
imputed.csv (when the data have missing values: each missing cell's conditional mean
under the fit and an interval), posterior.nc (with the posterior; read it with
arviz.from_netcdf or xarray.open_datatree), models.joblib (the fitted models:
joblib.load(path) gives a dict with keys 'mle', 'map', 'posterior'; reloading needs the
same bayesgmm version) and summary.txt (also printed). Every interval is at one level,
ArviZ's rcParams["stats.ci_prob"] (89% unless an arvizrc file sets it), and the CSV
columns carry it in their names (ci_lower_89, mle_lower_89, ...).
"""


#: Which --methods take which covariance types (``_common._supported_types`` asks the
#: library; a test holds this text to it). Written out: asking needs PyMC, too slow
#: for ``--help``.
_METHOD_TYPES = (
    "posterior and laplace take full, tied, diag, spherical and EII, VII, EEI, VEI, EVI, "
    "VVI, EEE, VVV, E, V; map all but VEE, EVE, VVE, EVV (no conjugate prior); "
    "information full, tied, diag, spherical (VVV, EEE, VVI, VII) and V"
)


def _add_fit_parser(subparsers) -> None:
    from bayesgmm.priors import PRIOR_NAMES

    parser = subparsers.add_parser(
        "fit",
        help="fit a mixture to a CSV file by MLE, MAP and full posterior; HTML report",
        description=textwrap.fill(
            "Fit a K-component Gaussian mixture to the numeric columns of a CSV file by "
            "maximum likelihood (EM), MAP (EM with a conjugate prior, --prior) and "
            "the full posterior (NUTS), and write a report comparing the three.",
            width=88,
        ),
        epilog=_FIT_EPILOG + "\n" + READING_RULES,
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
        type=_covariance_name,
        default="full",
        metavar="TYPE",
        help=f"covariance type: {_covariance_names()} (default: full; full = VVV, tied = "
        "EEE, diag = VVI, spherical = VII; names in any case). Not every method takes "
        f"every type: {_METHOD_TYPES}; the bootstrap takes all. Another combination is "
        "refused before any fitting, naming the --methods that can",
    )
    parser.add_argument(
        "--methods",
        type=_methods_list,
        default=METHODS,
        metavar="LIST",
        help="comma-separated subset of mle,map,posterior (default: all three), plus "
        "'information' for observed-information standard errors and Wald intervals of "
        "the MLE (seconds; needs mle) and 'laplace' for the Laplace approximation of the "
        "posterior at the MAP (seconds; needs map)",
    )
    parser.add_argument(
        "--prior",
        choices=PRIOR_NAMES,
        default="default",
        help="the conjugate prior of the MAP fit and the posterior: 'pooled' (empirical "
        "Bayes: covariances centred on the pooled within-component covariance of a "
        "preliminary fit), 'mclust' (mclust's default prior) or 'default' (= pooled); "
        "the report states it with its hyperparameters",
    )
    _add_sampling_arguments(parser)
    parser.add_argument(
        "--bootstrap",
        type=_n_boot,
        default=None,
        metavar="N",
        help="bootstrap replicates of the MLE for its standard errors and intervals; "
        f"0 for none (default: {BOOTSTRAP_DEFAULT}, scaled down above N = "
        f"{BOOTSTRAP_FULL_UP_TO:,} rows to {BOOTSTRAP_DEFAULT} x {BOOTSTRAP_FULL_UP_TO:,} / N, "
        f"at least {BOOTSTRAP_MIN})",
    )
    parser.add_argument(
        "--standardize",
        action="store_true",
        help="fit to each column minus its mean, divided by its standard deviation, and "
        "report every estimate in the original units (an exact linear map); for columns "
        "on very different scales. Not with spherical covariances or the posterior",
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


#: ``bayesgmm fit``'s default bootstrap replicates, kept up to BOOTSTRAP_FULL_UP_TO rows.
BOOTSTRAP_DEFAULT = 200
BOOTSTRAP_FULL_UP_TO = 50_000
BOOTSTRAP_MIN = 50


def default_bootstrap(n_rows: int, given: int | None) -> tuple[int, str | None]:
    """Replicates to run, and a note when the default was scaled down for large N.

    The rule: ``BOOTSTRAP_DEFAULT`` (200) up to ``BOOTSTRAP_FULL_UP_TO`` (50,000) rows;
    above, ``200 * 50,000 / N`` rounded, at least ``BOOTSTRAP_MIN`` (50), so the
    bootstrap costs about as much as 200 replicates of 50,000 rows (each replicate is
    one EM fit, linear in N). A value given with ``--bootstrap`` is used as it is.

    Examples
    --------
    >>> default_bootstrap(272, None)
    (200, None)
    >>> default_bootstrap(1_000_000, None)[0], default_bootstrap(100_000, None)[0]
    (50, 100)
    >>> default_bootstrap(1_000_000, 500)
    (500, None)
    """
    if given is not None:
        return given, None
    if n_rows <= BOOTSTRAP_FULL_UP_TO:
        return BOOTSTRAP_DEFAULT, None
    n_boot = max(BOOTSTRAP_MIN, round(BOOTSTRAP_DEFAULT * BOOTSTRAP_FULL_UP_TO / n_rows))
    return n_boot, (
        f"bootstrap: {n_boot} replicates, the default {BOOTSTRAP_DEFAULT} scaled down for "
        f"N = {n_rows:,} rows ({BOOTSTRAP_DEFAULT} x {BOOTSTRAP_FULL_UP_TO:,} / N, at least "
        f"{BOOTSTRAP_MIN}); choose with --bootstrap"
    )


def _one_labelling(result: FitResult) -> FitResult:
    """The result with the point fits' components renumbered to the report's labelling.

    The reference is the posterior's MAP fit when there is a posterior (its components
    label the relabelled draws of ``posterior.nc``), else the MLE. Every output (the
    table, the plots, ``models.joblib``) is then written from these models, so a
    component number means the same component in all of them; a note names the
    renumbering.
    """
    from bayesgmm.report._tables import _aligned_models

    aligned = _aligned_models(result)
    notes = []
    for method, model in aligned.items():
        original = result.models[method]
        if model is original:
            continue
        perm = [
            int(np.flatnonzero((original.means_ == mean).all(axis=1))[0]) for mean in model.means_
        ]
        notes.append(
            f"components of the {method.upper()} fit renumbered to match the "
            f"{'posterior' if result.posterior is not None else 'MLE'} (its components "
            f"{perm} are components {list(range(len(perm)))} here); estimates.csv, "
            "models.joblib, posterior.nc and the plots use this one labelling"
        )
    if not notes:
        return result
    return dataclasses.replace(
        result,
        models={**result.models, **aligned},
        data_notes=(*result.data_notes, *notes),
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
    standardize = getattr(args, "standardize", False)
    prior = getattr(args, "prior", "default")
    relabel = args.relabel
    _check_methods_take(command, cov, methods)
    if "posterior" in methods:
        _check_netcdf_writer(command)
    data = read_data(command, args, max(2, k), k)
    X = data.X
    if standardize:
        from bayesgmm.cli._standardize import check_standardizable

        check_standardizable(command, cov, X.shape[1])
        if "posterior" in methods:
            raise _fail(
                command,
                "--standardize is not available with the posterior yet; use --methods mle,map, "
                "or leave out --standardize",
            )
        if "information" in methods:
            raise _fail(
                command,
                "--standardize is not available with 'information' yet; leave out one of them",
            )
        if "laplace" in methods:
            raise _fail(
                command, "--standardize is not available with 'laplace' yet; leave out one of them"
            )
    if X.isna().to_numpy().any():
        from bayesgmm.cli._impute import MAR_NOTE

        data = dataclasses.replace(data, notes=(*data.notes, MAR_NOTE))
    report_reading(command, args, data, progress)
    n_boot, boot_note = default_bootstrap(len(X), args.bootstrap)
    if boot_note and "mle" in methods:
        data = dataclasses.replace(data, notes=(*data.notes, boot_note))
        progress(f"note: {boot_note}")
    n_boot = n_boot if "mle" in methods else 0
    standardizer = None
    X_fit = X  # what the point fits and the bootstrap see
    if standardize:
        from bayesgmm.cli._standardize import Standardizer

        standardizer = Standardizer.from_data(X)
        X_fit = standardizer.transform(X)
        data = dataclasses.replace(data, notes=(*data.notes, standardizer.note()))
    if args.bootstrap and "mle" not in methods:
        progress("--bootstrap ignored: it bootstraps the MLE, which is not among --methods")
    if "posterior" in methods:
        from bayesgmm.bayes import SamplingWarning

        skip: tuple[type, ...] = (SamplingWarning,)
    else:
        skip = ()

    models: dict = {}
    boot = None
    information = None
    laplace_tree = None
    fit_warnings: list[str] = []
    timings: dict[str, float] = {}
    em = f"K={k}, {cov} covariances, {EM_SETTINGS['n_init']} EM starts"
    # Small data: BLAS threads only add overhead (see _run_demo).
    collect = _CollectWarnings(fit_warnings, progress, skip, quiet=args.quiet)
    with threadpool_limits(limits=1), collect:
        if "mle" in methods:
            progress(f"Maximum likelihood: {em} ...")
            start = time.perf_counter()
            models["mle"] = GaussianMixture(
                k, covariance_type=cov, random_state=seed, **EM_SETTINGS
            ).fit(X_fit)
            timings["mle"] = time.perf_counter() - start
        if "map" in methods and "posterior" not in methods:
            progress(f"MAP ({prior} conjugate prior): {em} ...")
            start = time.perf_counter()
            models["map"] = GaussianMixture(
                k, covariance_type=cov, prior=prior, random_state=seed, **EM_SETTINGS
            ).fit(X_fit)
            timings["map"] = time.perf_counter() - start
        if "information" in methods:
            from bayesgmm import observed_information

            progress("Observed information of the MLE (exact Hessian) ...")
            start = time.perf_counter()
            information = observed_information(models["mle"], X_fit)
            timings["information"] = time.perf_counter() - start
        if n_boot:
            progress(f"Bootstrap of the MLE: {n_boot} replicates ...")
            start = time.perf_counter()
            boot = bootstrap(
                models["mle"], X_fit, n_boot=n_boot, random_state=seed, progress=not args.quiet
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
                    prior=prior,
                    draws=args.draws,
                    tune=args.tune,
                    chains=args.chains,
                    random_state=seed,
                    progressbar=False if args.quiet else None,  # None: on a terminal
                    relabel=relabel,
                ).fit(X)
            timings["posterior"] = time.perf_counter() - start
            if "map" in methods:
                # One MAP everywhere: the posterior's MAP-EM fit (its mode, the chains'
                # start and the relabelling reference) is the MAP of the report.
                models["map"] = posterior.map_
            models["posterior"] = posterior
        if "laplace" in methods:
            from bayesgmm import laplace

            progress("Laplace approximation of the posterior at the MAP ...")
            start = time.perf_counter()
            laplace_tree = laplace(
                models.get("posterior", models["map"]), X_fit, draws=4000, random_state=seed
            )
            timings["laplace"] = time.perf_counter() - start
    progress("Fitted in " + ", ".join(f"{m} {t:.1f} s" for m, t in timings.items()))
    if standardizer is not None:  # back to the original units, exactly
        models = {m: standardizer.model_to_original(model) for m, model in models.items()}
        if boot is not None:
            boot = standardizer.bootstrap_to_original(boot, models["mle"])

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
            "relabel": relabel,
            "bootstrap": n_boot,
        },
        models={m: models[m] for m in METHODS if m in models},
        bootstrap=boot,
        information=information,
        laplace=laplace_tree,
        data_notes=data.notes,
        fit_warnings=tuple(fit_warnings),
        timings=timings,
    )
    result = _one_labelling(result)
    outputs: dict[str, object] = {}

    def write_models(path: Path) -> None:
        outputs["posterior_pickled"] = _dump_models(result.models, path)

    def write_report(path: Path) -> None:
        from bayesgmm.report import fit_report

        progress("Drawing the report ...")
        drawing: list[str] = []  # warnings while drawing: into the summary, not the terminal
        with _CollectWarnings(drawing, progress, quiet=args.quiet):
            table, page, summary = fit_report(
                result, warn=progress, posterior_pickled=outputs["posterior_pickled"]
            )
        if drawing:
            summary += "\n\nWarnings while drawing the report:\n" + "\n".join(
                f"  - {w}" for w in drawing
            )
        path.write_text(page, encoding="utf-8")
        outputs.update(table=table, summary=summary)

    writers: dict[str, Callable[[Path], object]] = {"models.joblib": write_models}
    if "posterior" in result.models:
        writers["posterior.nc"] = lambda path: result.posterior.idata_.to_netcdf(path)
    writers["report.html"] = write_report
    writers["estimates.csv"] = lambda path: level_columns(
        outputs["table"], outputs["table"].attrs["ci_prob"]
    ).to_csv(path, index=False)
    if X.isna().to_numpy().any():
        from bayesgmm.cli._impute import imputation_table

        prob = default_ci_prob()
        progress(
            f"Imputing the missing cells (conditional means and {level_label(prob)} intervals) ..."
        )
        imputed = imputation_table(
            result.X, result.models, seed=seed, prob=prob, lines=data.source.lines
        )
        writers["imputed.csv"] = lambda path: level_columns(imputed, prob).to_csv(
            path, index=False
        )
    writers["summary.txt"] = lambda path: path.write_text(
        outputs["summary"] + "\n", encoding="utf-8"
    )
    _write_atomically(args.out, writers, stale=FIT_FILES)
    print(outputs["summary"])
    progress(f"Wrote {', '.join(n for n in FIT_FILES if n in writers)} to {args.out}")
    return 0
