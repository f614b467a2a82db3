"""The full posterior: the PyMC model and the NUTS-sampled estimator.

PyMC takes seconds to import, so the model and the estimator are loaded on first use;
:mod:`bayesgmm.bayes.relabel` and :func:`stack_chains` need no PyMC.
"""

__all__ = ["PosteriorGaussianMixture", "SamplingWarning", "build_model", "stack_chains"]


def __getattr__(name: str):
    if name == "build_model":
        from bayesgmm.bayes.model import build_model

        return build_model
    if name in ("stack_chains", "ChainStacking"):
        from bayesgmm.bayes import stacking

        return getattr(stacking, name)
    if name in ("PosteriorGaussianMixture", "SamplingWarning"):
        from bayesgmm.bayes import posterior

        return getattr(posterior, name)
    raise AttributeError(f"module 'bayesgmm.bayes' has no attribute {name!r}")
