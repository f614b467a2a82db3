"""The full posterior: the PyMC model and the NUTS-sampled estimator."""

from bayesgmm.bayes.model import build_model
from bayesgmm.bayes.posterior import PosteriorGaussianMixture, SamplingWarning

__all__ = ["PosteriorGaussianMixture", "SamplingWarning", "build_model"]
