"""The one table from covariance type to its functions.

Every piece of code that depends on the covariance structure dispatches through
:data:`COVARIANCE_MODELS` (or :func:`get_covariance_model`); nothing else in the
package branches on ``covariance_type``.

Shapes follow scikit-learn's conventions, with ``K`` components and ``D`` features:

============  ==================  ==================  ==============
type          covariances         precisions_chol     mclust name
============  ==================  ==================  ==============
``full``      ``(K, D, D)``       ``(K, D, D)``       ``VVV``
``tied``      ``(D, D)``          ``(D, D)``          ``EEE``
``diag``      ``(K, D)``          ``(K, D)``          ``VVI``
``spherical`` ``(K,)``            ``(K,)``            ``VII``
============  ==================  ==================  ==============

The precision Cholesky factor ``U`` of a covariance ``S`` satisfies
``U @ U.T == inv(S)``; densities are evaluated as ``||(x - mu) @ U||^2`` with
``log det(S)^{-1/2} = sum(log(diag(U)))`` so no explicit inverse is ever formed.

The models themselves are in :mod:`bayesgmm.core.covariance_types` (the interface
:class:`CovarianceModel` and scikit-learn's four types) and
:mod:`bayesgmm.core.covariance_mclust` (mclust's other ten families); this module is the
table, and the one the rest of the package imports.
"""

from __future__ import annotations

from bayesgmm.core.covariance_mclust import (
    EEICovariance,
    EEVCovariance,
    EIICovariance,
    EVECovariance,
    EVICovariance,
    EVVCovariance,
    VEECovariance,
    VEICovariance,
    VEVCovariance,
    VVECovariance,
)
from bayesgmm.core.covariance_types import (
    CollapsedComponentError,
    CovarianceModel,
    DiagCovariance,
    FullCovariance,
    InnerControl,
    SphericalCovariance,
    TiedCovariance,
)

__all__ = [
    "COVARIANCE_MODELS",
    "COVARIANCE_TYPES",
    "MCLUST_FAMILIES",
    "MCLUST_UNIVARIATE",
    "CollapsedComponentError",
    "CovarianceModel",
    "InnerControl",
    "expand_covariance_types",
    "get_covariance_model",
]

COVARIANCE_MODELS: dict[str, CovarianceModel] = {
    "full": FullCovariance("full", "VVV", ("component", "feature", "feature_bis")),
    "tied": TiedCovariance("tied", "EEE", ("feature", "feature_bis")),
    "diag": DiagCovariance("diag", "VVI", ("component", "feature")),
    "spherical": SphericalCovariance("spherical", "VII", ("component",)),
}
COVARIANCE_TYPES: tuple[str, ...] = tuple(COVARIANCE_MODELS)

_DIAGONAL_DIMS = ("component", "feature")
_FULL_DIMS = ("component", "feature", "feature_bis")
# mclust's names: the four above under their mclust names (aliases: the same entries),
# the ten others, and E / V for one feature (EII and VII there).
COVARIANCE_MODELS.update(
    {
        "EII": EIICovariance("EII", "EII", _DIAGONAL_DIMS),
        "VII": COVARIANCE_MODELS["spherical"],
        "EEI": EEICovariance("EEI", "EEI", _DIAGONAL_DIMS),
        "VEI": VEICovariance("VEI", "VEI", _DIAGONAL_DIMS),
        "EVI": EVICovariance("EVI", "EVI", _DIAGONAL_DIMS),
        "VVI": COVARIANCE_MODELS["diag"],
        "EEE": COVARIANCE_MODELS["tied"],
        "VEE": VEECovariance("VEE", "VEE", _FULL_DIMS),
        "EVE": EVECovariance("EVE", "EVE", _FULL_DIMS),
        "VVE": VVECovariance("VVE", "VVE", _FULL_DIMS),
        "EEV": EEVCovariance("EEV", "EEV", _FULL_DIMS),
        "VEV": VEVCovariance("VEV", "VEV", _FULL_DIMS),
        "EVV": EVVCovariance("EVV", "EVV", _FULL_DIMS),
        "VVV": COVARIANCE_MODELS["full"],
    }
)
COVARIANCE_MODELS["E"] = COVARIANCE_MODELS["EII"]
COVARIANCE_MODELS["V"] = COVARIANCE_MODELS["VII"]
#: mclust's fourteen multivariate families, in mclust's order
#: (``mclust.options("emModelNames")``, mclust >= 5: EVE before VEE).
MCLUST_FAMILIES: tuple[str, ...] = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
    "EVE", "VEE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip
#: mclust's two univariate models (one feature).
MCLUST_UNIVARIATE: tuple[str, ...] = ("E", "V")


def expand_covariance_types(covariance_types, n_features: int) -> list[str]:
    """``'all'`` as mclust's models for ``n_features`` (the fourteen families, or E
    and V for one feature); a single name as a one-element list; a list as is."""
    if isinstance(covariance_types, str):
        if covariance_types == "all":
            return list(MCLUST_FAMILIES if n_features > 1 else MCLUST_UNIVARIATE)
        return [covariance_types]
    return list(covariance_types)


def get_covariance_model(covariance_type: str) -> CovarianceModel:
    """Look up a covariance type, with an error that lists the valid ones."""
    try:
        return COVARIANCE_MODELS[covariance_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown covariance_type {covariance_type!r}; expected one of "
            f"{list(COVARIANCE_MODELS)}."
        ) from None
