"""The full posterior: the PyMC model and the NUTS-sampled estimator.

PyMC takes seconds to import, so the model and the estimator are loaded on first use;
:mod:`bayesgmm.bayes.relabel` needs no PyMC.
"""

__all__ = ["PosteriorGaussianMixture", "SamplingWarning", "build_model"]


def __getattr__(name: str):
    if name == "build_model":
        from bayesgmm.bayes.model import build_model

        return build_model
    if name in ("PosteriorGaussianMixture", "SamplingWarning"):
        from bayesgmm.bayes import posterior

        return getattr(posterior, name)
    raise AttributeError(f"module 'bayesgmm.bayes' has no attribute {name!r}")
