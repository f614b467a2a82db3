"""Typed, immutable record of a fitted (or initial) mixture's parameters."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GMMParams(NamedTuple):
    """Parameters of a Gaussian mixture with ``K`` components in ``D`` dimensions.

    Attributes
    ----------
    weights : ndarray of shape (K,)
        Mixing proportions, summing to one.
    means : ndarray of shape (K, D)
        Component means.
    covariances : ndarray
        Covariances in the shape of the covariance type (see
        :mod:`bayesgmm.core.covariance`).
    precisions_cholesky : ndarray
        Precision Cholesky factors, same shape as ``covariances``.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray

    def shift_means(self, shift: np.ndarray) -> GMMParams:
        """The same mixture translated by ``shift`` (covariances are unchanged)."""
        return self._replace(means=self.means + shift)
