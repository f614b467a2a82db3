"""What the uncertainty plots share: reading the posterior's draws, thinning, checks.

The uncertainty plots (posterior ellipses, memberships, estimates, prior vs posterior,
sampler diagnostics, co-clustering; one module each) show what a point estimate hides.
The numbers come from the estimators and the comparison tables, never from here. The
posterior is read duck-typed: ``idata_["posterior"]`` with the relabelled draws
``weights`` (chain, draw, component), ``means`` (chain, draw, component, feature) and
``covariances`` (chain, draw, *dims of the covariance type), plus ``map_``,
``covariance_type``, ``n_components``, ``prior_``, ``predict_proba`` and
``membership_interval``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesgmm.core.covariance import get_covariance_model

if TYPE_CHECKING:
    from matplotlib.axes import Axes


_PARAMETERS = ("weights", "means", "covariances")
_SAMPLE_DIMS = ("chain", "draw")


# -- helpers ------------------------------------------------------------------------------
def _posterior_dataset(posterior):
    """The relabelled draws as an :class:`xarray.Dataset` (from a DataTree node or not)."""
    node = posterior.idata_["posterior"]
    return node.to_dataset() if hasattr(node, "to_dataset") else node


def _thin_index(n_samples: int, max_draws: int | None) -> np.ndarray:
    """Evenly spaced draw indices (all of them when there are at most ``max_draws``)."""
    if max_draws is None or n_samples <= max_draws:
        return np.arange(n_samples)
    return np.unique(np.linspace(0, n_samples - 1, max_draws).round().astype(int))


def _stacked(da) -> np.ndarray:
    """Draws of one variable as an array with the (chain, draw) axes merged first."""
    return da.stack(sample=_SAMPLE_DIMS).transpose("sample", ...).values


def _posterior_means_and_covariances(
    posterior, max_draws: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Thinned draws of the means ``(S, K, D)`` and full covariances ``(S, K, D, D)``."""
    ds = _posterior_dataset(posterior)
    means = _stacked(ds["means"])
    covariances = _stacked(ds["covariances"])
    index = _thin_index(means.shape[0], max_draws)
    n_components, n_features = means.shape[1:]
    cov_model = get_covariance_model(posterior.covariance_type)
    full = np.stack([cov_model.to_full(covariances[s], n_components, n_features) for s in index])
    return means[index], full


def _n_features(model) -> int:
    """D of a GaussianMixture (``means_``) or a posterior (its MAP fit's ``means_``)."""
    means = getattr(model, "means_", None)
    if means is None:
        means = getattr(getattr(model, "map_", None), "means_", None)
    if means is None:
        raise ValueError(
            f"This {type(model).__name__} is not fitted yet (it has no means_); call fit first."
        )
    return int(np.shape(means)[1])


def _check_posterior(posterior) -> None:
    """A clear error for an unfitted posterior or an object that is not one."""
    if not (hasattr(posterior, "idata_") and hasattr(posterior, "map_")):
        raise ValueError(
            "Expected a fitted PosteriorGaussianMixture (with idata_ and map_); got "
            f"{type(posterior).__name__} without them. Call fit first."
        )


def _colorbar(ax: Axes, mappable, label: str):
    return ax.get_figure().colorbar(mappable, ax=ax, label=label, fraction=0.05, pad=0.02)
