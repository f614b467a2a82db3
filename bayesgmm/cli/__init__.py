"""The ``bayesgmm`` command line.

- ``bayesgmm fit DATA.csv --components K --out DIR`` fits a mixture by maximum likelihood,
  MAP and the full posterior and writes a self-contained ``report.html``, ``estimates.csv``,
  ``posterior.nc``, ``models.joblib`` and ``summary.txt`` (the report is rendered by
  :mod:`bayesgmm.report`).
- ``bayesgmm select DATA.csv --components 1-9 --out DIR`` compares numbers of components
  and covariance types (BIC/AIC/ICL, PSIS-LOO with ``--posterior``).
- ``bayesgmm demo`` runs model selection on the bundled Old Faithful data, prints a
  summary and saves plots and tables.

One module per responsibility:

- :mod:`bayesgmm.cli._main`: the parser (:func:`build_parser`) and :func:`main` (exit
  codes, one-line errors, SIGTERM handled like Ctrl-C);
- :mod:`bayesgmm.cli._common`: errors, argument types, shared options, progress and
  the collection of warnings;
- :mod:`bayesgmm.cli._data`: reading the data file (rules in :mod:`bayesgmm._csv`) and
  the one policy for rows with missing values;
- :mod:`bayesgmm.cli._fit`, :mod:`bayesgmm.cli._select`, :mod:`bayesgmm.cli._demo`:
  one subcommand each, as an ``_add_<name>_parser`` function that registers its
  arguments and its handler (``handler(args) -> int``);
- :mod:`bayesgmm.cli._output`: output folders written atomically (never left
  half-written), plots and saved models.

Exit codes: 0 success, 1 the command failed (a one-line message on stderr), 2 bad
arguments or unusable data (a one-line message on stderr), 130 interrupted (Ctrl-C),
143 terminated (SIGTERM).
"""

from bayesgmm.cli._common import (
    DEMO_FILES,
    EM_SETTINGS,
    FIT_FILES,
    METHODS,
    PROG,
    SELECT_FILES,
    CommandError,
)
from bayesgmm.cli._main import build_parser, main
from bayesgmm.cli._output import _dump_models

__all__ = [
    "DEMO_FILES",
    "EM_SETTINGS",
    "FIT_FILES",
    "METHODS",
    "PROG",
    "SELECT_FILES",
    "CommandError",
    "_dump_models",
    "build_parser",
    "main",
]
