r"""Standard errors from the observed information at the MLE or the MAP estimate.

The observed information is minus the Hessian of the log-likelihood (for a MAP fit:
of the log posterior, log-likelihood plus log prior) at the estimate, in the free
parameterization of :mod:`bayesgmm.core.information`: the first ``K - 1`` weights, the
means, and the covariance type's free entries. Its inverse is the (asymptotic)
covariance of the estimate; the standard errors of all ``K`` weights and of every
covariance entry follow by the delta method (here exact: the map from the free
parameters to the reported ones is linear).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.utils.validation import check_is_fitted

from bayesgmm._intervals import check_prob
from bayesgmm._validation import check_data, check_sample_weight, observed_rows
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.information import (
    free_layout,
    log_likelihood_hessian,
    log_prior_hessian,
    numerical_hessian,
)
from bayesgmm.core.params import GMMParams
from bayesgmm.diagnostics import estimates_to_frame, params_to_dataset, stack_statistics
from bayesgmm.mixture import GaussianMixture

__all__ = [
    "InformationWarning",
    "ObservedInformation",
    "check_information_type",
    "log_posterior_hessian",
    "observed_information",
]


class InformationWarning(UserWarning):
    """The observed information is singular, ill-conditioned or not positive definite."""


@dataclass(frozen=True)
class ObservedInformation:
    """The observed information of a fitted mixture and what follows from it.

    Attributes
    ----------
    matrix : ndarray of shape (p, p)
        Observed information of the free parameters (``free_parameters`` order).
    covariance : ndarray of shape (p, p)
        Its inverse (pseudo-inverse if singular): the asymptotic covariance.
    free_parameters : list of str
        Labels of the free parameters, e.g. ``weights[0]``, ``means[1, x]``,
        ``covariances[0, x, y]``.
    table : pandas.DataFrame
        One row per reported element (all ``K`` weights, every mean and covariance
        entry), labelled as :func:`bayesgmm.compare_estimates`'s rows: ``estimate``
        and ``se``.
    method : str
        ``'mle'`` (log-likelihood) or ``'map'`` (log posterior).
    condition_number : float
        Of the information scaled to unit diagonal.
    estimate, se : GMMParams
        The estimate and its standard errors in the parameters' own shapes.
    covariance_type : str
    feature_names : list of str
    """

    matrix: np.ndarray
    covariance: np.ndarray
    free_parameters: list
    table: pd.DataFrame
    method: str
    condition_number: float
    estimate: GMMParams
    se: GMMParams
    covariance_type: str
    feature_names: list

    def se_dataset(self):
        """The standard errors as an xarray Dataset named like the posterior group."""
        return params_to_dataset(self.se, self.covariance_type, self.feature_names)

    def standard_errors(self) -> pd.Series:
        """Standard errors indexed by element label (``means[0, x]``, ...)."""
        return self.table.set_index("label")["se"]

    def intervals(self, prob: float | None = None) -> pd.DataFrame:
        """Wald intervals ``estimate +- z se`` at level ``prob``, one row per element.

        ``prob`` defaults to the package's one level, :func:`bayesgmm.default_ci_prob`;
        ``attrs["ci_prob"]`` of the result is the level used.
        """
        prob = check_prob(prob)
        z = norm.ppf(0.5 + prob / 2.0)
        out = self.table.copy()
        out.attrs["ci_prob"] = prob
        out["lower"] = out["estimate"] - z * out["se"]
        out["upper"] = out["estimate"] + z * out["se"]
        return out


def _feature_names(model: GaussianMixture) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return [f"x{j}" for j in range(model.means_.shape[1])]


def _reported(layout, theta: np.ndarray) -> np.ndarray:
    """All weights, means and covariance entries: a linear function of ``theta``."""
    model = get_covariance_model(layout.covariance_type)
    head = theta[layout.weights]
    full = np.einsum("j,jkab->kab", theta[layout.covariances], layout.basis)
    return np.concatenate(
        [np.append(head, 1.0 - head.sum()), theta[layout.means], np.ravel(model.from_full(full))]
    )


def check_information_type(covariance_type: str) -> None:
    """Raise a ``ValueError`` saying why if :func:`observed_information` cannot take
    ``covariance_type`` (the families whose covariances are not linear in their
    parameters: the table's :meth:`~bayesgmm.core.covariance.CovarianceModel.free_parameters`
    refuses them).

    Examples
    --------
    >>> check_information_type("VVV")
    >>> check_information_type("VEV")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The observed information is not available for covariance_type='VEV': ...
    """
    get_covariance_model(covariance_type).free_parameters(1, 1)


def observed_information(model: GaussianMixture, X, sample_weight=None) -> ObservedInformation:
    r"""Observed information, covariance and standard errors of a fitted mixture.

    The Hessian of the log-likelihood is computed exactly (closed form, Louis'
    identity; see :mod:`bayesgmm.core.information`), with each row's observed
    coordinates when ``X`` has NaN. For a MAP fit (``model.prior_`` set) the log
    prior's Hessian is added (in closed form,
    :func:`~bayesgmm.core.information.log_prior_hessian`, for full, tied, diag and
    spherical; by Richardson-extrapolated central differences of
    :meth:`GMMPrior.log_prob` for the other families), so the standard errors are
    those of the Laplace approximation at the mode in these parameters.

    Parameters
    ----------
    model : GaussianMixture
        Fitted (maximum likelihood or MAP).
    X : array-like of shape (N, D)
        The data it was fitted to.
    sample_weight : array-like of shape (N,), optional
        The frequency weights of the fit.

    Returns
    -------
    ObservedInformation

    Warns
    -----
    InformationWarning
        When the information is not positive definite (not at a maximum), is
        ill-conditioned (naming the parameter most involved), or a weight is on
        the boundary (below ``1 / N``).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture, observed_information
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful()
    >>> gm = GaussianMixture(2, tol=1e-8, random_state=0).fit(X)
    >>> info = observed_information(gm, X)
    >>> se = info.standard_errors()
    >>> bool(se["weights[0]"] == se["weights[1]"])  # two weights, one free parameter
    True
    >>> info.intervals(prob=0.9).columns.tolist()[-4:]
    ['estimate', 'se', 'lower', 'upper']
    """
    X, w, params, layout, hessian, method = log_posterior_hessian(model, X, sample_weight)
    cov_type = model.covariance_type
    k, d = params.means.shape
    theta = layout.pack(params)
    information = -hessian
    labels = _free_labels(layout, _feature_names(model))
    covariance, cond = _invert(information, labels)
    n_total = X.shape[0] if w is None else float(w.sum())
    low = np.flatnonzero(params.weights < 1.0 / n_total)
    if low.size:
        warnings.warn(
            f"weights[{int(low[0])}] = {params.weights[low[0]]:.3g} is below 1/N: the "
            "estimate sits on the boundary of the simplex, where the observed-information "
            "standard errors are not valid. Use fewer components, a prior, or the bootstrap.",
            InformationWarning,
            stacklevel=2,
        )
    # Delta method (exact: the reported values are linear in theta).
    offset = _reported(layout, np.zeros_like(theta))
    jac = np.column_stack([_reported(layout, e) - offset for e in np.eye(theta.size)])
    se_flat = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", jac, covariance, jac), 0.0))
    model_table = get_covariance_model(cov_type)
    shape = model_table.shape(k, d)
    se_params = GMMParams(
        se_flat[:k],
        se_flat[k : k + k * d].reshape(k, d),
        se_flat[k + k * d :].reshape(shape),
        None,
    )
    names = _feature_names(model)
    columns = {
        "estimate": params_to_dataset(params, cov_type, names),
        "se": params_to_dataset(se_params, cov_type, names),
    }
    table = estimates_to_frame(stack_statistics(columns))
    return ObservedInformation(
        matrix=information,
        covariance=covariance,
        free_parameters=labels,
        table=table,
        method=method,
        condition_number=cond,
        estimate=params,
        se=se_params,
        covariance_type=cov_type,
        feature_names=names,
    )


def log_posterior_hessian(model: GaussianMixture, X, sample_weight=None):
    """The Hessian of the log-likelihood (MLE) or log posterior (MAP) of a fitted
    mixture in the free parameters, at its estimate: what :func:`observed_information`
    and :func:`bayesgmm.laplace` build on.

    Returns
    -------
    X : ndarray of shape (N', D)
        The validated data, rows with no observed value left out.
    sample_weight : ndarray of shape (N',) or None
    params : GMMParams
        The estimate.
    layout : FreeLayout
    hessian : ndarray of shape (p, p)
    method : {'mle', 'map'}
    """
    check_is_fitted(model)
    if not isinstance(model, GaussianMixture):
        raise TypeError(
            f"`model` must be a fitted bayesgmm GaussianMixture; got {type(model).__name__}."
        )
    X = check_data(model, X, reset=False, min_samples=2)
    w = check_sample_weight(sample_weight, X.shape[0])
    keep = observed_rows(X)
    X = X[keep]
    w = None if w is None else w[keep]
    cov_type = model.covariance_type
    params = model._params()
    k, d = params.means.shape
    layout = free_layout(k, d, cov_type)
    _, hessian = log_likelihood_hessian(X, params, cov_type, w)
    method = "mle"
    if model.prior_ is not None:
        method = "map"
        prior = model.prior_

        closed_form = log_prior_hessian(params, cov_type, prior)
        if closed_form is not None:
            hessian = hessian + closed_form[1]
        else:

            def log_prior(t):
                return prior.log_prob(layout.unpack(t), cov_type)

            theta = layout.pack(params)
            scale = np.maximum(np.abs(theta), np.sqrt(np.abs(np.diag(-hessian)) + 1e-300) ** -1)
            hessian = hessian + numerical_hessian(log_prior, theta, scale)
    return X, w, params, layout, hessian, method


def _free_labels(layout, names: list[str]) -> list[str]:
    model = get_covariance_model(layout.covariance_type)
    labels = [f"weights[{j}]" for j in range(layout.n_components - 1)]
    labels += [f"means[{j}, {f}]" for j in range(layout.n_components) for f in names]
    for where in layout.covariance_index:
        parts = [
            names[i] if dim in ("feature", "feature_bis") else str(i)
            for dim, i in zip(model.dims, where, strict=True)
        ]
        labels.append(f"covariances[{', '.join(parts)}]")
    return labels


def _invert(information: np.ndarray, labels: list[str]) -> tuple[np.ndarray, float]:
    """Inverse of the information (scaled to unit diagonal for accuracy), with warnings."""
    diag = np.abs(np.diag(information))
    scale = 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0))
    scaled = information * np.outer(scale, scale)
    eigval, eigvec = np.linalg.eigh(scaled)
    cond = float(eigval.max() / eigval.min()) if eigval.min() > 0 else np.inf
    worst = labels[int(np.argmax(np.abs(eigvec[:, 0])))]
    if eigval.min() <= 0:
        warnings.warn(
            f"The observed information is not positive definite (smallest scaled "
            f"eigenvalue {eigval.min():.3g}, mostly {worst}): the estimate is not a strict "
            "local maximum (not converged, or a flat direction). Standard errors use the "
            "pseudo-inverse and are not reliable; refit with a tighter tol or use the "
            "bootstrap.",
            InformationWarning,
            stacklevel=3,
        )
    elif cond > 1e10:
        warnings.warn(
            f"The observed information is ill-conditioned (condition number {cond:.3g}); "
            f"the parameter most involved is {worst}. A component with too few points "
            "makes its parameters poorly determined: use fewer components or a prior.",
            InformationWarning,
            stacklevel=3,
        )
    inv = np.linalg.pinv(scaled, hermitian=True)
    return inv * np.outer(scale, scale), cond
