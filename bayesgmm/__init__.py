"""bayesgmm: Gaussian mixtures fitted three ways (MLE, MAP, full posterior).

Public API only; see ``docs/architecture.md`` for the layout.
"""

from bayesgmm.core.covariance import CollapsedComponentError
from bayesgmm.mixture import GaussianMixture
from bayesgmm.priors import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior
from bayesgmm.selection import ModelSelection, select_model

__all__ = [
    "CollapsedComponentError",
    "CovariancePrior",
    "DirichletPrior",
    "GMMPrior",
    "GaussianMixture",
    "ModelSelection",
    "NormalMeanPrior",
    "select_model",
]

__version__ = "0.1.0"
