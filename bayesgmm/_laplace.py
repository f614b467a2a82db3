r"""The Laplace approximation of the posterior at the MAP, in seconds.

A Gaussian on the unconstrained parameterization of the PyMC model
(:func:`bayesgmm.bayes.build_model`; its transforms are mirrored in
:mod:`bayesgmm.core.unconstrained`), centred at the MAP-EM fixed point mapped to that
space, with covariance the inverse of minus the Hessian of the model's
``logp(jacobian=True)`` there:

.. math:: z \sim N(\hat z, H^{-1}), \qquad
          H = -\nabla_z^2 \bigl[\log p(X \mid \theta(z)) + \log p(\theta(z))
              + \log|\det J_\theta(z)|\bigr]_{z = \hat z}.

No PyTensor graph is compiled. The Hessian is assembled from the exact Hessian of the
log posterior in the free parameters :math:`\theta` (the one behind
:func:`bayesgmm.observed_information`: closed-form log-likelihood Hessian plus the log
prior's) by the chain
rule, :math:`\nabla_z^2 = J^T (\nabla_\theta^2) J + \nabla_z^2 \log|\det J|`, with
:math:`J = \partial\theta/\partial z` by central differences of the (cheap) transform.
The term :math:`\sum_i \partial_{\theta_i}\log p \, \nabla_z^2\theta_i` vanishes at the
mode, where the gradient in :math:`\theta` is zero.

mclust's diagonal families EII, EEI, VEI and EVI (no closed-form Hessian in
:mod:`bayesgmm.core.information`): the Hessian is the central difference of the exact
gradient of the posterior's numba kernel (:mod:`bayesgmm.bayes._kernel`), the density
NUTS samples, in the same coordinates.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn.utils.validation import check_is_fitted

from bayesgmm._validation import check_data, check_number, check_random_state, observed_rows
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import log_mixture_density
from bayesgmm.core.params import GMMParams
from bayesgmm.core.unconstrained import unconstrained_layout
from bayesgmm.diagnostics import params_to_dataset
from bayesgmm.mixture import GaussianMixture

__all__ = ["laplace", "laplace_hessian"]


def _map_fit(model, X) -> GaussianMixture:
    """The fitted MAP (or ML) GaussianMixture behind ``model``."""
    if isinstance(model, GaussianMixture):
        check_is_fitted(model)
        return model
    from bayesgmm.bayes.posterior import PosteriorGaussianMixture

    if isinstance(model, PosteriorGaussianMixture):
        if hasattr(model, "map_"):
            return model.map_
        model._check_params()
        # The settings of PosteriorGaussianMixture.fit's MAP start (tight tolerance, no
        # reg_covar under a covariance prior, so that it is the posterior's mode); its
        # random_state seeds the EM starts directly (fit derives a seed from it).
        flat_covariances = getattr(model.prior, "covariances", True) is None
        return GaussianMixture(
            model.n_components,
            covariance_type=model.covariance_type,
            prior=model.prior,
            reg_covar=1e-6 if flat_covariances else 0.0,
            n_init=model.n_init,
            tol=1e-8,
            max_iter=2000,
            random_state=model.random_state,
        ).fit(X)
    raise TypeError(
        "`model` must be a fitted GaussianMixture (MAP, or MLE for flat priors) or a "
        f"PosteriorGaussianMixture (fitted or not); got {type(model).__name__}."
    )


def _jacobian(function, z: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Central-difference Jacobian, Richardson-extrapolated (error O(step^4))."""
    columns = []
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = step

        def diff(h, e=e):
            return (function(z + h * e) - function(z - h * e)) / (2 * h * step)

        columns.append((4 * diff(0.5) - diff(1.0)) / 3)
    return np.column_stack(columns)


def laplace_hessian(model: GaussianMixture, X, sample_weight=None):
    """Mode and Hessian of the unconstrained log posterior at a fitted mixture.

    Parameters
    ----------
    model : GaussianMixture
        A fitted MAP (or ML) mixture: its estimate is taken as the mode.
    X : array-like of shape (N, D)
    sample_weight : array-like of shape (N,), optional

    Returns
    -------
    mode : ndarray of shape (p,)
        The estimate in the unconstrained space (``UnconstrainedLayout`` order).
    hessian : ndarray of shape (p, p)
        :math:`\\nabla_z^2` of the log posterior with the log-Jacobian, at ``mode``.
    layout : UnconstrainedLayout
    params : GMMParams
        The estimate.
    """
    from bayesgmm.information import log_posterior_hessian

    if check_laplace_type(model.covariance_type) in _KERNEL_FAMILIES:
        return _kernel_hessian(model, X, sample_weight)
    _, _, params, free, hessian_theta, _ = log_posterior_hessian(model, X, sample_weight)
    k, d = params.means.shape
    layout = unconstrained_layout(k, d, model.covariance_type)
    mode = layout.forward(params.weights, params.means, params.covariances)

    def theta(z):
        w, m, c = layout.backward(z)
        return free.pack(GMMParams(w, m, c, None))

    jac = _jacobian(theta, mode)
    hessian = jac.T @ hessian_theta @ jac + layout.log_jac_det_hessian(mode)
    return mode, 0.5 * (hessian + hessian.T), layout, params


def check_laplace_type(covariance_type: str) -> str:
    """The table name of ``covariance_type`` (``'full'`` for ``'VVV'``), or a
    ``ValueError`` naming the types the Laplace approximation supports.

    Examples
    --------
    >>> check_laplace_type("VVV"), check_laplace_type("VEI")
    ('full', 'VEI')
    """
    from bayesgmm.core.covariance import COVARIANCE_TYPES

    name = get_covariance_model(covariance_type).name
    if name not in COVARIANCE_TYPES and name not in _KERNEL_FAMILIES:
        raise ValueError(
            f"The Laplace approximation lives on the PyMC model's parameterization, which "
            f"supports covariance_type in {list(COVARIANCE_TYPES) + list(_KERNEL_FAMILIES)}; "
            f"got {covariance_type!r}. Use the bootstrap for the other families."
        )
    return name


#: mclust's diagonal families beyond scikit-learn's four, whose Hessian comes from the
#: posterior's numba kernel (exact gradient, differenced) instead of the closed form.
def _kernel_families() -> tuple[str, ...]:
    from bayesgmm.bayes._kernel import SUPPORTED_TYPES  # no numba: a light import
    from bayesgmm.core.covariance import COVARIANCE_TYPES

    return tuple(t for t in SUPPORTED_TYPES if t not in COVARIANCE_TYPES)


_KERNEL_FAMILIES = _kernel_families()


def _kernel_model(model: GaussianMixture, X, sample_weight):
    """The posterior's numba kernel (:mod:`bayesgmm.bayes._kernel`) of ``model``'s data
    and prior: ``logp(jacobian=True)`` and its exact gradient in the unconstrained
    coordinates (the layout of :func:`~bayesgmm.core.unconstrained.unconstrained_layout`)."""
    from bayesgmm.bayes._kernel import make_kernel_model, supports

    data = check_data(model, X, reset=False, min_samples=2)
    if sample_weight is not None:
        raise ValueError(
            f"laplace with covariance_type={model.covariance_type!r} does not take "
            "sample_weight (its Hessian is the posterior kernel's, which has no weights)."
        )
    data = data[observed_rows(data)]  # rows with no observed value carry nothing
    prior = model.prior_
    if prior is None or not supports(prior, model.covariance_type):
        raise ValueError(
            f"laplace with covariance_type={model.covariance_type!r} needs the fit's "
            "conjugate prior (prior='default', 'mclust' or a GMMPrior with all three parts); "
            f"got prior={model.prior!r}."
        )
    k = model.means_.shape[0]
    return make_kernel_model(data, prior, model.covariance_type, k)


def _gradient_hessian(kernel, z: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Hessian of the kernel's logp at ``z``: central differences of its exact gradient,
    Richardson-extrapolated (error O(step^4)), symmetrized."""
    grad = lambda v: kernel.logp_and_grad(v)[1]  # noqa: E731
    hessian = _jacobian(grad, z, step)
    return 0.5 * (hessian + hessian.T)


def _kernel_hessian(model: GaussianMixture, X, sample_weight):
    """:func:`laplace_hessian` for :data:`_KERNEL_FAMILIES`."""
    kernel = _kernel_model(model, X, sample_weight)
    table = get_covariance_model(model.covariance_type)
    params = GMMParams(
        model.weights_,
        model.means_,
        model.covariances_,
        table.precision_cholesky(model.covariances_),
    )
    k, d = params.means.shape
    layout = unconstrained_layout(k, d, model.covariance_type)
    mode = layout.forward(params.weights, params.means, params.covariances)
    return mode, _gradient_hessian(kernel, mode), layout, params


def _kernel_mode(model: GaussianMixture, X, sample_weight, start, max_iter=50):
    """:func:`_unconstrained_mode` for :data:`_KERNEL_FAMILIES`: Newton's method on the
    kernel's logp (with the Jacobian), the Hessian from its gradient."""
    kernel = _kernel_model(model, X, sample_weight)

    def objective(z):
        value = kernel.logp_and_grad(z)[0]
        return value if np.isfinite(value) else -np.inf

    return _newton(objective, lambda z: (kernel.logp_and_grad(z)[1], _gradient_hessian(kernel, z)),
                   start, max_iter)  # fmt: skip


def _newton(objective, derivatives, start, max_iter):
    """Damped Newton ascent of ``objective`` from ``start`` (step halving, gradient
    fallback); returns the point and the Hessian there."""
    z, value = start.copy(), objective(start)
    for _ in range(max_iter):
        grad, hess = derivatives(z)
        step = np.linalg.solve(hess, -grad)
        if grad @ step <= 0:  # not an ascent direction: fall back to the gradient
            step = grad / max(np.abs(grad).max(), 1.0)
        t = 1.0
        while t > 1e-8:
            try:
                candidate = objective(z + t * step)
            except (ValueError, np.linalg.LinAlgError):
                candidate = -np.inf
            if candidate >= value:
                break
            t /= 2.0
        else:
            break
        z, value = z + t * step, candidate
        if np.abs(t * step).max() < 1e-9:
            break
    return z, derivatives(z)[1]


def _unconstrained_mode(model: GaussianMixture, X, sample_weight, start, layout, max_iter=50):
    """Newton's method from ``start`` for the mode of the unconstrained density (log
    posterior plus log-Jacobian); the exact Hessian there (with the transform's
    curvature term, nonzero away from the MAP)."""
    from bayesgmm._validation import check_data, check_sample_weight
    from bayesgmm.core.information import (
        free_layout,
        log_likelihood_hessian,
        log_prior_hessian,
        numerical_hessian,
    )

    cov_type = model.covariance_type
    prior = model.prior_
    data = check_data(model, X, reset=False, min_samples=2)
    w = check_sample_weight(sample_weight, data.shape[0])
    keep = observed_rows(data)
    data, w = data[keep], (None if w is None else w[keep])
    k, d = model.means_.shape
    free = free_layout(k, d, cov_type)
    table = get_covariance_model(cov_type)

    def params_of(z):
        wt, m, c = layout.backward(z)
        return GMMParams(wt, m, c, table.precision_cholesky(c))

    def objective(z):
        p = params_of(z)
        loglik = log_mixture_density(data, p, cov_type)
        total = loglik.sum() if w is None else w @ loglik
        if prior is not None:
            total += prior.log_prob(p, cov_type)
        return float(total + layout.log_jac_det(z))

    def theta(z):
        wt, m, c = layout.backward(z)
        return free.pack(GMMParams(wt, m, c, None))

    def derivatives(z):
        p = params_of(z)
        grad_t, hess_t = log_likelihood_hessian(data, p, cov_type, w)
        if prior is not None:
            grad_p, hess_p = log_prior_hessian(p, cov_type, prior)
            grad_t, hess_t = grad_t + grad_p, hess_t + hess_p
        jac = _jacobian(theta, z)
        logjac_grad = _jacobian(lambda v: np.array([layout.log_jac_det(v)]), z)[0]
        curvature = numerical_hessian(lambda v: float(grad_t @ theta(v)), z, np.ones(z.size))
        hess = jac.T @ hess_t @ jac + curvature + layout.log_jac_det_hessian(z)
        return jac.T @ grad_t + logjac_grad, 0.5 * (hess + hess.T)

    return _newton(objective, derivatives, start, max_iter)


def laplace(
    model,
    X,
    *,
    draws: int = 1000,
    center: str = "map",
    sample_weight=None,
    log_likelihood: bool = True,
    random_state=None,
) -> xr.DataTree:
    r"""Laplace approximation of the posterior at the MAP, as a DataTree of draws.

    The Gaussian :math:`N(\hat z, H^{-1})` on the unconstrained parameters of
    :func:`~bayesgmm.bayes.build_model` (simplex weights, Cholesky-packed
    covariances with log diagonal, log variances; see
    :mod:`bayesgmm.core.unconstrained`), :math:`\hat z` the MAP-EM fit mapped to that
    space and :math:`H` minus the Hessian of the model's ``logp(jacobian=True)``
    there. Its draws, mapped back, are named and dimensioned like
    :attr:`PosteriorGaussianMixture.idata_ <bayesgmm.bayes.PosteriorGaussianMixture>`'s,
    so ``arviz.summary``, ``arviz.loo``, the plots and
    :func:`bayesgmm.compare_estimates` (``laplace=``) read them as posterior draws.
    No PyTensor graph is compiled: it takes about as long as
    :func:`bayesgmm.observed_information` plus the draws.

    Parameters
    ----------
    model : GaussianMixture or PosteriorGaussianMixture
        Of covariance type 'full', 'tied', 'diag', 'spherical' (mclust VVV, EEE, VVI,
        VII), or mclust's EII, EEI, VEI, EVI (these need the conjugate prior and no
        ``sample_weight``).
        A fitted MAP :class:`~bayesgmm.GaussianMixture` (with ``prior``; fitted with a
        tight ``tol``, e.g. 1e-8, and ``reg_covar=0``, so that it is the mode), a fitted
        :class:`~bayesgmm.bayes.PosteriorGaussianMixture` (its ``map_``), or an
        unfitted one, whose settings (components, covariance type, prior, ``n_init``,
        ``random_state``) give the MAP fit. An MLE fit (``prior=None``) gives the
        Laplace approximation under flat priors.
    X : array-like of shape (N, D)
        The data the model was fitted to (NaN: missing at random).
    draws : int, default=1000
        Draws of the approximation (one chain).
    center : {'map', 'mode'}, default='map'
        ``'map'``: centred at the MAP-EM fit (the posterior mode in the model's own
        parameterization, ``logp(jacobian=False)``), as above. ``'mode'``: centred at
        the mode of the density of the unconstrained parameters themselves
        (``logp(jacobian=True)``), found by Newton's method from the MAP, with the
        exact Hessian there. For variances this mode lies between the posterior mode
        and mean, which calibrates better on small samples (see
        :func:`bayesgmm.validation.sbc`).
    sample_weight : array-like of shape (N,), optional
        Frequency weights of the fit (they enter the Hessian, not ``log_likelihood``).
    log_likelihood : bool, default=True
        Also compute the per-observation log-likelihood of every draw (for
        :func:`arviz.loo`; one E-step per draw).
    random_state : int, numpy Generator, RandomState or None

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (``weights``, ``means``, ``covariances``; dims ``chain``
        (1), ``draw`` and the parameters' own), ``log_likelihood`` (``x``: chain, draw,
        obs), ``observed_data`` (``x``: obs, feature) and ``laplace``: ``mode``
        (dim ``free``, the unconstrained labels), ``covariance`` (``free``,
        ``free_bis``) and the MAP itself (``map_weights``, ``map_means``,
        ``map_covariances``). Components are numbered as in ``model``.

    Raises
    ------
    ValueError
        When the Hessian is not negative definite (the fit is not a strict local
        maximum: refit with a tighter ``tol``), naming the direction most involved.

    Examples
    --------
    >>> from bayesgmm import GaussianMixture, laplace
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful()
    >>> gm = GaussianMixture(2, prior="default", tol=1e-8, random_state=0).fit(X)
    >>> tree = laplace(gm, X, draws=500, random_state=0)
    >>> sorted(tree.children)
    ['laplace', 'log_likelihood', 'observed_data', 'posterior']
    >>> tree["posterior"]["means"].dims
    ('chain', 'draw', 'component', 'feature')
    """
    check_number("draws", draws, integer=True, low=1)
    if center not in ("map", "mode"):
        raise ValueError(f"Unknown center {center!r}; expected 'map' or 'mode'.")
    fit = _map_fit(model, X)
    from bayesgmm.information import _feature_names

    mode, hessian, layout, estimate = laplace_hessian(fit, X, sample_weight)
    if center == "mode" and layout.covariance_type in _KERNEL_FAMILIES:
        mode, hessian = _kernel_mode(fit, X, sample_weight, mode)
    elif center == "mode":
        mode, hessian = _unconstrained_mode(fit, X, sample_weight, mode, layout)
    names = _feature_names(fit)
    labels = layout.labels(names)
    precision = -hessian
    eigval, eigvec = np.linalg.eigh(precision)
    if eigval.min() <= 0:
        worst = labels[int(np.argmax(np.abs(eigvec[:, 0])))]
        raise ValueError(
            "The log posterior's Hessian at the fit is not negative definite (smallest "
            f"eigenvalue of minus the Hessian {eigval.min():.3g}, mostly {worst}): the fit "
            "is not a strict local maximum. Refit with a tighter tol (e.g. 1e-8) or more "
            "starts, or use fewer components."
        )
    covariance = (eigvec / eigval) @ eigvec.T
    factor = eigvec / np.sqrt(eigval)  # factor @ factor.T = covariance
    rng = check_random_state(random_state)
    z = mode + rng.standard_normal((draws, mode.size)) @ factor.T
    weights, means, covariances = layout.backward(z)
    cov_type = fit.covariance_type
    draws_params = GMMParams(weights[None], means[None], covariances[None], None)
    posterior = params_to_dataset(draws_params, cov_type, names, lead=("chain", "draw"))
    posterior = posterior.assign_coords(chain=[0], draw=np.arange(draws))
    posterior.attrs.update(inference="laplace")

    data = check_data(fit, X, reset=False)
    keep = observed_rows(data)
    data = data[keep]
    obs = np.flatnonzero(keep)
    tree = {
        "posterior": posterior,
        "observed_data": xr.Dataset(
            {"x": (("obs", "feature"), data)}, coords={"obs": obs, "feature": names}
        ),
        "laplace": _gaussian_dataset(mode, covariance, labels, estimate, cov_type, names),
    }
    if log_likelihood:
        loglik = _pointwise_log_likelihood(data, weights, means, covariances, cov_type)
        tree["log_likelihood"] = xr.Dataset(
            {"x": (("chain", "draw", "obs"), loglik[None])},
            coords={"chain": [0], "draw": np.arange(draws), "obs": obs},
        )
    return xr.DataTree.from_dict(tree)


def _pointwise_log_likelihood(X, weights, means, covariances, cov_type):
    """``log p(x_n | theta_s)``, shape (S, N), for draws (S, ...) in the type's shapes: the
    posterior's pass over the draws (each row with NaN: its observed coordinates'
    density; :func:`bayesgmm.bayes._postprocess.pointwise_log_likelihood`)."""
    from bayesgmm.bayes._postprocess import pointwise_log_likelihood

    return pointwise_log_likelihood(X, weights, means, covariances, cov_type)


def _gaussian_dataset(mode, covariance, labels, estimate, cov_type, names) -> xr.Dataset:
    est = params_to_dataset(estimate, cov_type, names)
    ds = xr.Dataset(
        {
            "mode": (("free",), mode),
            "covariance": (("free", "free_bis"), covariance),
        },
        coords={"free": labels, "free_bis": labels},
    )
    for name in ("weights", "means", "covariances"):
        ds[f"map_{name}"] = est[name]
    return ds
