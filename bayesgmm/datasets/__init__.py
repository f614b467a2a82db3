"""Bundled reference data sets for Gaussian-mixture modelling.

Each ``load_*`` function returns a :class:`pandas.DataFrame`; :func:`list_datasets` lists
the available names; :func:`load_penguins` is the one with missing values (NaN).
Provenance of every file is documented in ``data/SOURCES.md``.
"""

from __future__ import annotations

# --- real data sets (bundled CSV files) -------------------------------------------------
from bayesgmm.datasets._loaders import (
    list_datasets,
    load_acidity,
    load_banknote,
    load_diabetes,
    load_enzyme,
    load_faithful,
    load_galaxies,
    load_iris,
    load_penguins,
    load_precip,
    load_thyroid,
    load_trees,
    load_wreath,
)

# --- synthetic data ---------------------------------------------------------------------
from bayesgmm.datasets._synthetic import MixtureSample, make_mixture

__all__ = [
    "MixtureSample",
    "list_datasets",
    "load_acidity",
    "load_banknote",
    "load_diabetes",
    "load_enzyme",
    "load_faithful",
    "load_galaxies",
    "load_iris",
    "load_penguins",
    "load_precip",
    "load_thyroid",
    "load_trees",
    "load_wreath",
    "make_mixture",
]
