"""bayesgmm: Gaussian mixtures fitted three ways (MLE, MAP, full posterior).

Public API only; see ``docs/architecture.md`` for the layout.
"""

from bayesgmm._bootstrap import BootstrapResult, bootstrap
from bayesgmm._degeneracy import DegenerateFitWarning
from bayesgmm._intervals import default_ci_prob
from bayesgmm._laplace import laplace
from bayesgmm.bayes.relabel import relabel_draws
from bayesgmm.core.covariance import CollapsedComponentError
from bayesgmm.diagnostics import compare_estimates, compare_models, membership_table
from bayesgmm.impute import GaussianMixtureImputer
from bayesgmm.information import InformationWarning, ObservedInformation, observed_information
from bayesgmm.mixture import GaussianMixture
from bayesgmm.priors import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior
from bayesgmm.selection import ModelSelection, select_model

__all__ = [
    "BootstrapResult",
    "CollapsedComponentError",
    "CovariancePrior",
    "DegenerateFitWarning",
    "DirichletPrior",
    "GMMPrior",
    "GaussianMixture",
    "GaussianMixtureImputer",
    "InformationWarning",
    "ModelSelection",
    "NormalMeanPrior",
    "ObservedInformation",
    "PosteriorGaussianMixture",
    "bootstrap",
    "build_model",
    "compare_estimates",
    "compare_models",
    "default_ci_prob",
    "laplace",
    "membership_table",
    "observed_information",
    "relabel_draws",
    "select_model",
]

__version__ = "0.1.0"


def __getattr__(name: str):
    # PyMC takes seconds to import: load the posterior part only when it is asked for.
    if name in ("PosteriorGaussianMixture", "build_model"):
        from bayesgmm import bayes

        return getattr(bayes, name)
    if name == "validation":  # bayesgmm.validation.sbc without an explicit import
        import importlib

        return importlib.import_module("bayesgmm.validation")
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")
