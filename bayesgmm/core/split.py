r"""Starts for a ``K + 1`` component fit from a ``K`` component fit: split one component.

A ``K + 1`` mixture can always reach the likelihood of a ``K`` mixture (give two
components the parameters of one and half its weight each), so within one covariance
family the maximized log-likelihood cannot fall as ``K`` grows. EM from a fresh start
can still end below; :func:`bayesgmm.select_model` then refits from the smaller fit
with one component split in two (:func:`split_component`), trying the components in
the order of :func:`split_order`.

Splitting component :math:`j` along a direction :math:`a` (means
:math:`\mu_j \pm c\,a`, weights :math:`\pi_j/2`, the covariance copied) changes the
log-likelihood, to second order in :math:`c`, by

.. math:: \tfrac12 c^2 \left( (\Sigma_j^{-1} a)^T W_j (\Sigma_j^{-1} a)
          - n_j\, a^T \Sigma_j^{-1} a \right),

with :math:`n_j` and :math:`W_j` the component's responsibility-weighted count and
scatter about :math:`\mu_j`: positive where the component's points spread along
:math:`a` more than its fitted covariance says (a constrained family's covariance is
not the component's own scatter), zero at an unconstrained (VVV) maximum, where
higher-order terms decide. :func:`split_order` puts the largest gains first and,
among equal gains, the heaviest components; :func:`split_direction` is the main axis
of each component's own scatter, scaled to one standard deviation of its points
along it.
"""

from __future__ import annotations

import numpy as np

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import responsibilities
from bayesgmm.core.params import GMMParams

__all__ = ["split_component", "split_directions", "split_order"]

#: Gains below this times the number of points are rounding noise (set to zero).
_GAIN_RTOL = 1e-8


def _component_scatter(
    X: np.ndarray, params: GMMParams, covariance_type: str, sample_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts ``n`` (K,) and scatters about the fitted means ``W`` (K, D, D), from the
    complete rows of ``X`` (rows with NaN are left out)."""
    complete = ~np.isnan(X).any(axis=1)
    if not complete.all():
        X = X[complete]
        sample_weight = None if sample_weight is None else sample_weight[complete]
    n_components, n_features = params.means.shape
    if X.shape[0] == 0:
        return np.zeros(n_components), np.zeros((n_components, n_features, n_features))
    _, log_resp = responsibilities(X, params, covariance_type)
    resp = np.exp(log_resp)
    if sample_weight is not None:
        resp = resp * sample_weight[:, None]
    scatter = np.empty((n_components, n_features, n_features))
    for j in range(n_components):
        centred = X - params.means[j]
        scatter[j] = (centred * resp[:, j : j + 1]).T @ centred
    return resp.sum(axis=0), scatter


def split_directions(
    X: np.ndarray,
    params: GMMParams,
    covariance_type: str,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each component's split direction and the second-order gain of splitting it.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        The data; rows with NaN are left out of the scatters.
    params : GMMParams
        The fit to split from.
    covariance_type : str
    sample_weight : ndarray of shape (N,), optional

    Returns
    -------
    directions : ndarray of shape (K, D)
        The main axis of each component's responsibility-weighted scatter about its
        mean, scaled to one standard deviation of its points along that axis.
    gains : ndarray of shape (K,)
        The log-likelihood change per unit :math:`c^2` of splitting along it (see the
        module docstring); zero where it is below ``1e-8`` times the number of points
        (rounding).
    """
    n_components, n_features = params.means.shape
    counts, scatter = _component_scatter(X, params, covariance_type, sample_weight)
    full = get_covariance_model(covariance_type).to_full(
        params.covariances, n_components, n_features
    )
    directions = np.zeros((n_components, n_features))
    gains = np.zeros(n_components)
    for j in range(n_components):
        if counts[j] > 0:
            values, vectors = np.linalg.eigh(scatter[j] / counts[j])
        else:  # no complete row: the fitted covariance's main axis
            values, vectors = np.linalg.eigh(full[j])
        axis = vectors[:, -1] * np.sqrt(max(values[-1], 0.0))
        directions[j] = axis
        try:
            pa = np.linalg.solve(full[j], axis)
        except np.linalg.LinAlgError:  # a singular fitted covariance: no gain known
            continue
        gains[j] = 0.5 * (pa @ scatter[j] @ pa - counts[j] * (axis @ pa))
    # At an unconstrained maximum the gains are zero up to rounding: equal, so that
    # the weights decide.
    gains[np.abs(gains) <= _GAIN_RTOL * max(float(counts.sum()), 1.0)] = 0.0
    return directions, gains


def split_order(gains: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Components to split, most promising first: largest gain, then largest weight."""
    return np.lexsort((-np.asarray(weights), -np.asarray(gains)))


def split_component(
    params: GMMParams, component: int, direction: np.ndarray, covariance_type: str
) -> GMMParams:
    """``K + 1`` parameters: ``component`` in two, at its mean ``-/+ direction``.

    The two halves share the component's weight equally and keep its covariance
    (a shared covariance stays shared); the new component is the last. With a zero
    ``direction`` the mixture is the same distribution as ``params``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.core.params import GMMParams
    >>> p = GMMParams(np.array([1.0]), np.zeros((1, 2)), np.ones((1, 2)), np.ones((1, 2)))
    >>> q = split_component(p, 0, np.array([1.0, 0.0]), "diag")
    >>> q.weights.tolist(), q.means.tolist(), q.covariances.shape
    ([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], (2, 2))
    """
    j = int(component)
    weights = np.append(params.weights, params.weights[j] / 2.0)
    weights[j] /= 2.0
    means = np.vstack([params.means, params.means[j] + direction])
    means[j] = means[j] - direction
    if get_covariance_model(covariance_type).dims[0] == "component":
        covariances = np.concatenate([params.covariances, params.covariances[j : j + 1]])
        prec_chol = np.concatenate(
            [params.precisions_cholesky, params.precisions_cholesky[j : j + 1]]
        )
    else:  # one covariance shared by all components
        covariances, prec_chol = params.covariances, params.precisions_cholesky
    return GMMParams(weights, means, covariances, prec_chol)
