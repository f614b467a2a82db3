"""Shared pieces of the command line: errors, argument types, options, progress, warnings."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from bayesgmm.bayes.relabel import RELABEL_METHODS

PROG = "bayesgmm"
#: Files ``bayesgmm demo`` writes into its output folder.
DEMO_FILES = ("components.png", "bic.png", "bic_table.csv", "summary.txt")
#: Files ``bayesgmm fit`` writes (``posterior.nc`` only with the posterior).
FIT_FILES = (
    "report.html",
    "estimates.csv",
    "imputed.csv",
    "posterior.nc",
    "models.joblib",
    "summary.txt",
)
#: Files ``bayesgmm select`` writes.
SELECT_FILES = ("selection.csv", "selection.png", "report.html", "summary.txt")
#: Estimation methods of ``bayesgmm fit``, in the order they run.
METHODS = ("mle", "map", "posterior")
#: What --methods accepts: the fits, 'information' (observed-information standard
#: errors of the MLE, next to the bootstrap's) and 'laplace' (the Laplace approximation
#: of the posterior at the MAP).
ALL_METHODS = (*METHODS, "information", "laplace")
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
    """argparse ``type`` for ``--methods``: a comma-separated subset of :data:`ALL_METHODS`."""
    chosen = [m.lower() for m in _items(text)]
    unknown = [m for m in chosen if m not in ALL_METHODS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown method {unknown[0] if unknown else text!r}; choose from "
            f"{','.join(ALL_METHODS)}"
        )
    if "information" in chosen and "mle" not in chosen:
        raise argparse.ArgumentTypeError(
            "'information' gives standard errors of the MLE: add mle to --methods"
        )
    if "laplace" in chosen and "map" not in chosen:
        raise argparse.ArgumentTypeError(
            "'laplace' approximates the posterior at the MAP: add map to --methods"
        )
    return tuple(m for m in ALL_METHODS if m in chosen)


def _covariance_names() -> str:
    """The names ``--covariance`` takes, grouped, for help texts and errors."""
    from bayesgmm.core.covariance import (
        COVARIANCE_MODELS,
        COVARIANCE_TYPES,
        MCLUST_FAMILIES,
        MCLUST_UNIVARIATE,
    )

    grouped = (*COVARIANCE_TYPES, *MCLUST_FAMILIES, *MCLUST_UNIVARIATE)
    others = [name for name in COVARIANCE_MODELS if name not in grouped]
    return (
        f"{', '.join(COVARIANCE_TYPES)} (scikit-learn's), mclust's "
        f"{', '.join(MCLUST_FAMILIES)}, and {' and '.join(MCLUST_UNIVARIATE)} for one feature"
        + (f", {', '.join(others)}" if others else "")
    )


def _covariance_name(text: str) -> str:
    """argparse ``type`` for ``fit --covariance``: a name of the covariance table
    (:data:`bayesgmm.core.covariance.COVARIANCE_MODELS`: scikit-learn's four, mclust's
    fourteen, E and V), matched without regard to case and returned as the Python API
    spells it (``'vev'`` -> ``'VEV'``, ``'Full'`` -> ``'full'``).

    Examples
    --------
    >>> _covariance_name("vev"), _covariance_name("Tied"), _covariance_name("E")
    ('VEV', 'tied', 'E')
    """
    from bayesgmm.core.covariance import COVARIANCE_MODELS

    # The table's names stay distinct without case (full ... spherical, EII ... VVV, E, V).
    spelling = {name.lower(): name for name in COVARIANCE_MODELS}
    name = spelling.get(text.strip().lower())
    if name is None:
        raise argparse.ArgumentTypeError(
            f"unknown covariance type {text.strip()!r}; choose from {_covariance_names()}"
        )
    return name


def _covariance_list(text: str) -> tuple[str, ...]:
    """argparse ``type`` for ``select --covariance``: a comma-separated list of names
    (:func:`_covariance_name`) and the keywords ``all`` (scikit-learn's four) and
    ``mclust`` (mclust's fourteen, as ``mclustBIC`` and ``select_model(X, ks, 'all')``;
    kept as the keyword until the data's number of features is known, see
    :func:`expand_covariances`). ``all`` stays scikit-learn's four, the default since
    before mclust's families reached the command line (the demo's grid).

    Examples
    --------
    >>> _covariance_list("all")
    ('full', 'tied', 'diag', 'spherical')
    >>> _covariance_list("mclust,full"), _covariance_list("vvv,EEE")
    (('mclust', 'full'), ('VVV', 'EEE'))
    """
    from bayesgmm.core.covariance import COVARIANCE_TYPES

    chosen: list[str] = []
    for item in _items(text):
        word = item.lower()
        if word == "all":
            chosen += COVARIANCE_TYPES
        elif word == "mclust":
            chosen.append("mclust")
        else:
            try:
                chosen.append(_covariance_name(item))
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(
                    f"unknown covariance type {item!r}; choose 'all' (scikit-learn's four), "
                    f"'mclust' (mclust's fourteen, E and V for one feature) or from "
                    f"{_covariance_names()}"
                ) from None
    return tuple(dict.fromkeys(chosen))


def expand_covariances(names, n_features: int) -> list[str]:
    """``select --covariance``'s list with ``mclust`` expanded for ``n_features`` (the
    fourteen families, or E and V for one feature, as :func:`bayesgmm.select_model`),
    each model once: a second name of the same table entry (``VVV`` after ``full``, ``VII``
    after ``V``) is dropped, the first spelling kept.

    Examples
    --------
    >>> expand_covariances(("full", "mclust"), 2)[:4]
    ['full', 'EII', 'VII', 'EEI']
    >>> expand_covariances(("mclust", "spherical"), 1)
    ['E', 'V']
    """
    from bayesgmm.core.covariance import COVARIANCE_MODELS, expand_covariance_types

    types: list[str] = []
    for name in names:
        types += expand_covariance_types("all", n_features) if name == "mclust" else [name]
    seen: set[int] = set()
    unique = []
    for name in types:
        if id(COVARIANCE_MODELS[name]) not in seen:
            seen.add(id(COVARIANCE_MODELS[name]))
            unique.append(name)
    return unique


def _unsupported(covariance_type: str, method: str) -> str | None:
    """Why ``method`` (one of :data:`ALL_METHODS`) cannot take ``covariance_type``, in
    the library's words, or None if it can. The checks are the library's own, run before
    any fitting: the prior's support (map, and the posterior and laplace, which start
    from the MAP fit), :func:`bayesgmm.bayes.model.check_posterior_type`,
    :func:`bayesgmm._laplace.check_laplace_type` and
    :func:`bayesgmm.information.check_information_type`."""
    from bayesgmm.core.covariance import get_covariance_model

    model = get_covariance_model(covariance_type)
    try:
        if method in ("map", "posterior", "laplace"):
            model.check_prior_support()
        if method == "posterior":
            from bayesgmm.bayes.model import check_posterior_type

            check_posterior_type(covariance_type)
        elif method == "laplace":
            from bayesgmm._laplace import check_laplace_type

            check_laplace_type(covariance_type)
        elif method == "information":
            from bayesgmm.information import check_information_type

            check_information_type(covariance_type)
    except ValueError as err:
        return str(err)
    return None


def _supported_types(method: str) -> list[str]:
    """The covariance types ``method`` takes (the table's names, in its order)."""
    from bayesgmm.core.covariance import COVARIANCE_MODELS

    return [name for name in COVARIANCE_MODELS if _unsupported(name, method) is None]


def _check_methods_take(command: str, covariance_type: str, methods) -> None:
    """Fail (exit code 2, before any fitting) if a method in ``methods`` cannot fit
    ``covariance_type``: the message names each such method, the --methods that can,
    the covariance types they take, and why (the library's words)."""
    refused = {m: why for m in methods if (why := _unsupported(covariance_type, m)) is not None}
    if not refused:
        return
    kept = [m for m in methods if m not in refused]
    needs = {"information": "mle", "laplace": "map"}  # as _methods_list requires
    kept = [m for m in kept if needs.get(m, m) in kept] or ["mle"]
    names = ", ".join(refused)
    first = next(iter(refused))
    takes = [t for t in _supported_types(first) if not any(_unsupported(t, m) for m in refused)]
    raise _fail(
        command,
        f"--covariance {covariance_type} cannot be fitted by {names} (--methods); use "
        f"--methods {','.join(kept)} (the bootstrap of the MLE takes every covariance "
        f"type), or a covariance type {names} can take: {', '.join(takes)}. Why ({first}): "
        f"{refused[first]}",
    )


def _n_boot(text: str) -> int:
    """argparse ``type`` for ``--bootstrap``: 0 (none) or at least 2 replicates."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 0 or an integer >= 2, got {text!r}") from None
    if value < 0 or value == 1:
        raise argparse.ArgumentTypeError(f"must be 0 (no bootstrap) or >= 2, got {value}")
    return value


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


#: Libraries whose log messages are collected instead of printed under ``--quiet``.
_LOGGERS = ("pymc", "pytensor", "arviz", "nutpie", "numba")


class _CollectWarnings:
    """Record the warnings raised inside (first line, once each) and echo them.

    Deprecation and future warnings (meant for developers of the libraries) are not
    shown; warnings in ``skip`` (e.g. the sampler's, which the report words itself)
    are echoed but not kept. With ``quiet``, the log records of the libraries in
    :data:`_LOGGERS` do not reach the terminal either: those at WARNING or above are
    recorded like warnings (``"pymc log: ..."``), the others dropped.
    """

    def __init__(
        self, found: list[str], echo: Callable[[str], None], skip=(), *, quiet: bool = False
    ) -> None:
        self.found = found
        self.echo = echo
        self.skip = tuple(skip)
        self.quiet = quiet
        self._context = warnings.catch_warnings(record=True)
        self._loggers: list[tuple[logging.Logger, list, bool]] = []
        self._records: list[logging.LogRecord] = []

    def __enter__(self):
        self._caught = self._context.__enter__()
        warnings.simplefilter("always")
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        if self.quiet:
            collector = logging.Handler(logging.WARNING)
            collector.emit = self._records.append  # type: ignore[method-assign]
            for name in _LOGGERS:
                logger = logging.getLogger(name)
                self._loggers.append((logger, logger.handlers[:], logger.propagate))
                logger.handlers[:] = [collector]
                logger.propagate = False
        return self

    def __exit__(self, *exc_info):
        self._context.__exit__(*exc_info)
        for logger, handlers, propagate in self._loggers:
            logger.handlers[:] = handlers
            logger.propagate = propagate
        self._loggers.clear()
        seen = set(self.found)
        lines = []
        for record in self._caught:
            text = str(record.message).strip().splitlines()
            source = _package_of(record.filename)
            origin = f" (from {source})" if source and source != "bayesgmm" else ""
            line = f"{record.category.__name__}{origin}: {text[0] if text else ''}"
            lines.append((line, issubclass(record.category, self.skip)))
        for log in self._records:
            text = log.getMessage().strip().splitlines()
            lines.append((f"{log.name.split('.')[0]} log: {text[0] if text else ''}", False))
        for line, skipped in lines:
            if line in seen:
                continue
            seen.add(line)
            self.echo(f"warning: {line}")
            if not skipped:
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
    from bayesgmm.cli._data import add_reading_arguments

    parser.add_argument(
        "data",
        type=Path,
        metavar="DATA.csv",
        help="CSV file (separator, decimal mark, encoding, header and index column are "
        "detected; see 'reading the file')",
    )
    parser.add_argument(
        "--columns",
        metavar="a,b,...",
        help="comma-separated columns to use (default: every usable numeric column; the "
        "others are left out with a note saying why)",
    )
    add_reading_arguments(parser)


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
    parser.add_argument(
        "--relabel",
        choices=RELABEL_METHODS,
        default="map",
        help="label switching of the posterior draws: 'map' matches each draw's "
        "components to the MAP fit's (default); 'stephens' runs Stephens' (2000) "
        "Kullback-Leibler relabelling of the points' membership probabilities (slower; "
        "better when components overlap). The report says which was used and how many "
        "draws it permuted",
    )
