"""Sufficient statistics of a Gaussian mixture's complete-data likelihood."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesgmm.core.covariance import get_covariance_model

__all__ = ["SufficientStats"]


@dataclass(frozen=True)
class SufficientStats:
    """Weighted counts, sums and second moments per component.

    With responsibilities ``r_nk`` (already multiplied by any sample weight):

    .. math:: n_k = \\sum_n r_{nk}, \\quad s_k = \\sum_n r_{nk} x_n, \\quad
              S_k = \\sum_n r_{nk} x_n x_n^T

    ``sum_xx`` holds ``S_k`` in the shape the covariance type needs (see
    :meth:`bayesgmm.core.covariance.CovarianceModel.second_moment`). The statistics
    are additive: the statistics of two chunks of data add up to those of their union,
    so chunked, distributed and missing-data E-steps all reduce with ``+``.

    Attributes
    ----------
    n : ndarray of shape (K,)
    sum_x : ndarray of shape (K, D)
    sum_xx : ndarray
    covariance_type : str

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> resp = np.tile([0.25, 0.75], (6, 1))
    >>> whole = SufficientStats.from_responsibilities(X, resp, "diag")
    >>> halves = (SufficientStats.from_responsibilities(X[:3], resp[:3], "diag")
    ...           + SufficientStats.from_responsibilities(X[3:], resp[3:], "diag"))
    >>> bool(np.allclose(whole.sum_xx, halves.sum_xx))
    True
    """

    n: np.ndarray
    sum_x: np.ndarray
    sum_xx: np.ndarray
    covariance_type: str

    @classmethod
    def from_responsibilities(
        cls,
        X: np.ndarray,
        resp: np.ndarray,
        covariance_type: str,
        sample_weight: np.ndarray | None = None,
    ) -> SufficientStats:
        """Statistics of data ``X`` (N, D) with responsibilities ``resp`` (N, K)."""
        if sample_weight is not None:
            resp = resp * sample_weight[:, None]
        model = get_covariance_model(covariance_type)
        return cls(
            n=resp.sum(axis=0),
            sum_x=resp.T @ X,
            sum_xx=model.second_moment(X, resp),
            covariance_type=covariance_type,
        )

    def __add__(self, other: SufficientStats) -> SufficientStats:
        if not isinstance(other, SufficientStats):
            return NotImplemented
        if other.covariance_type != self.covariance_type:
            raise ValueError(
                "Cannot add sufficient statistics of covariance types "
                f"{self.covariance_type!r} and {other.covariance_type!r}."
            )
        return SufficientStats(
            self.n + other.n,
            self.sum_x + other.sum_x,
            self.sum_xx + other.sum_xx,
            self.covariance_type,
        )
