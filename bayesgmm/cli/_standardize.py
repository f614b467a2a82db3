"""``bayesgmm fit --standardize``: fit in standardized units, report in the original ones.

With :math:`z = S^{-1}(x - m)`, :math:`S = \\mathrm{diag}(s)` (column means ``m`` and
standard deviations ``s``), a mixture fitted to ``z`` maps exactly to one of ``x``:

.. math::

    \\pi_k^{(x)} = \\pi_k, \\quad \\mu_k^{(x)} = m + S \\mu_k, \\quad
    \\Sigma_k^{(x)} = S \\Sigma_k S, \\quad U_k^{(x)} = S^{-1} U_k

(``U`` the precision Cholesky factor). The Gaussian likelihood is equivariant under this
map for full, tied and diagonal covariances, so the MLE of ``z`` mapped back is the MLE
of ``x``; the conjugate prior maps along (prior mean ``m + S m0``, scale ``S Psi0 S``),
so the MAP maps to the MAP of ``x`` under the mapped prior. So do mclust's families that
are closed under per-column scaling (EEI, VEI, EVI, VEE, EVV: ``scale_equivariant`` in the
covariance table). Spheres are not (a sphere in ``z`` is an axis-aligned ellipsoid in
``x``), nor the families that tie eigenvalues or orientations across components while
letting the others vary (EVE, VVE, EEV, VEV): they are refused, except for one column.
The one difference: ``reg_covar`` (1e-6) is added in
standardized units, i.e. ``1e-6 * s_j**2`` in column ``j``'s units.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesgmm.core.covariance import get_covariance_model

__all__ = ["Standardizer", "check_standardizable"]


def check_standardizable(command: str, covariance_type: str, n_features: int) -> None:
    """Fail (exit code 2) unless fits of ``covariance_type`` to standardized columns map
    back exactly to fits of the data (the family is closed under per-column scaling)."""
    from bayesgmm.cli._common import _fail
    from bayesgmm.core.covariance import COVARIANCE_MODELS

    if n_features == 1 or get_covariance_model(covariance_type).scale_equivariant:
        return
    kind = "spherical covariances" if covariance_type == "spherical" else covariance_type
    closed = [n for n, m in COVARIANCE_MODELS.items() if m.scale_equivariant and len(n) > 1]
    raise _fail(
        command,
        f"--standardize does not work with {kind} (its covariances in standardized units "
        "are not of the same family in the original units); leave out --standardize, or "
        f"use one of {', '.join(closed)}",
    )


@dataclass(frozen=True)
class Standardizer:
    """Column means and standard deviations, and the exact map back to the data's units.

    Attributes
    ----------
    center : numpy.ndarray of shape (D,)
    scale : numpy.ndarray of shape (D,)
        Population standard deviations (ddof=0), all > 0.
    columns : tuple of str
    """

    center: np.ndarray
    scale: np.ndarray
    columns: tuple[str, ...]

    @classmethod
    def from_data(cls, X: pd.DataFrame) -> Standardizer:
        values = X.to_numpy(dtype=np.float64)
        center = np.nanmean(values, axis=0)
        scale = np.nanstd(values, axis=0)
        return cls(center, scale, tuple(str(c) for c in X.columns))

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``(X - center) / scale``, same columns and index."""
        return (X - self.center) / self.scale

    def note(self) -> str:
        pairs = ", ".join(
            f"{name} {c:.6g} / {s:.6g}"
            for name, c, s in zip(self.columns, self.center, self.scale, strict=True)
        )
        return (
            "--standardize: fitted to (x - mean) / sd per column (mean / sd: "
            f"{pairs}); every estimate is mapped back exactly to the original units "
            "(reg_covar 1e-6 applies in standardized units)"
        )

    # -- parameters ---------------------------------------------------------------------
    # Dispatch on how the covariance table stores the type (its ``dims``): matrices,
    # variances per feature, or one variance (a sphere: one column only).
    def _covariances(self, covariances: np.ndarray, covariance_type: str) -> np.ndarray:
        s = self.scale
        dims = get_covariance_model(covariance_type).dims
        if "feature_bis" in dims:
            return covariances * s[:, None] * s[None, :]
        if "feature" in dims:
            return covariances * s**2
        return covariances * s[0] ** 2

    def _precisions_cholesky(self, factors: np.ndarray, covariance_type: str) -> np.ndarray:
        dims = get_covariance_model(covariance_type).dims
        if "feature_bis" in dims:
            return factors / self.scale[:, None]  # S^-1 U: rows scaled
        if "feature" in dims:
            return factors / self.scale  # 1 / sd per feature
        return factors / self.scale[0]

    def _prior(self, prior, covariance_type: str):
        if prior is None:
            return None
        s, m = self.scale, self.center
        means, covs = prior.means, prior.covariances
        if means is not None:
            changes = {"mean": m + s * np.asarray(means.mean, dtype=np.float64)}
            if means.covariance is not None:
                changes["covariance"] = np.asarray(means.covariance) * np.outer(s, s)
            means = dataclasses.replace(means, **changes)
        if covs is not None:
            scale = np.asarray(covs.scale, dtype=np.float64)
            # matrices, variances per feature, or one variance (one column only)
            factor = np.outer(s, s) if scale.ndim == 2 else s**2 if scale.ndim else s[0] ** 2
            scale = scale * factor
            covs = dataclasses.replace(covs, scale=scale)
        return dataclasses.replace(prior, means=means, covariances=covs)

    def model_to_original(self, model):
        """A copy of a fitted GaussianMixture with its parameters (and prior) in x units."""
        from bayesgmm.core.params import GMMParams

        cov = model.covariance_type
        p = model._params()
        mapped = copy.deepcopy(model)
        mapped._set_params(
            GMMParams(
                p.weights.copy(),
                self.center + p.means * self.scale,
                self._covariances(p.covariances, cov),
                self._precisions_cholesky(p.precisions_cholesky, cov),
            )
        )
        if getattr(model, "prior_", None) is not None:
            mapped.prior_ = self._prior(model.prior_, cov)
        else:
            # The log-likelihood per sample changes by -sum(log s) (the Jacobian).
            shift = float(np.log(self.scale).sum())
            mapped.lower_bound_ = model.lower_bound_ - shift
            if hasattr(model, "lower_bounds_"):
                mapped.lower_bounds_ = [b - shift for b in model.lower_bounds_]
        return mapped

    def bootstrap_to_original(self, boot, reference):
        """The bootstrap replicates mapped to x units, with ``reference`` (mapped) fit."""
        import xarray as xr

        draws = boot.draws
        s = xr.DataArray(self.scale, dims="feature")
        m = xr.DataArray(self.center, dims="feature")
        cov = draws["covariances"]
        if "feature_bis" in cov.dims:
            cov = cov * s * s.rename(feature="feature_bis")
        else:
            cov = cov * s**2
        draws = draws.assign(means=draws["means"] * s + m, covariances=cov)
        return dataclasses.replace(boot, draws=draws, reference=reference)
