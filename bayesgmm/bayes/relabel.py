"""Label switching: relabel posterior draws to a reference fit.

A mixture's likelihood is invariant to permuting its components, so posterior draws may
swap labels within and between chains. Each draw is matched to a reference (the MAP
fit) by the assignment that minimizes the summed squared Mahalanobis distance between
the draw's means and the reference means (in the reference components' metrics),
solved exactly with :func:`scipy.optimize.linear_sum_assignment`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.params import GMMParams

__all__ = ["match_to_reference", "relabel_dataset", "relabel_draws"]


def match_to_reference(
    means: np.ndarray, reference: GMMParams, covariance_type: str
) -> np.ndarray:
    """Permutations that align each draw's components with the reference's.

    Parameters
    ----------
    means : ndarray of shape (S, K, D)
        Component means of ``S`` draws.
    reference : GMMParams
        The reference fit (its means and precision Cholesky factors define the cost).
    covariance_type : str

    Returns
    -------
    ndarray of shape (S, K)
        ``perm[s, k]`` is the draw-``s`` component that plays reference component ``k``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.core.params import GMMParams
    >>> ref = GMMParams(np.array([0.5, 0.5]), np.array([[0.0], [5.0]]),
    ...                 np.ones(2), np.ones(2))
    >>> match_to_reference(np.array([[[5.1], [0.2]]]), ref, "spherical").tolist()
    [[1, 0]]
    """
    n_draws, n_components, n_features = means.shape
    model = get_covariance_model(covariance_type)
    cost = model.squared_mahalanobis(
        means.reshape(-1, n_features), reference.means, reference.precisions_cholesky
    ).reshape(n_draws, n_components, n_components)
    perms = np.empty((n_draws, n_components), dtype=np.intp)
    for s in range(n_draws):
        rows, cols = linear_sum_assignment(cost[s])
        perms[s, cols] = rows
    return perms


def relabel_dataset(posterior: xr.Dataset, perms: xr.DataArray) -> xr.Dataset:
    """Reorder every variable with a ``component`` dimension, draw by draw.

    ``perms`` has dims ``(chain, draw, component)``; variables without a
    ``component`` dimension (a tied covariance) are unchanged.
    """
    relabelled = posterior.isel(component=perms)
    return relabelled.assign_coords(component=posterior["component"])


def relabel_draws(
    draws: xr.Dataset, reference, *, permutations=None
) -> tuple[xr.Dataset, np.ndarray]:
    """Relabel draws of a mixture's parameters to a reference fit (label switching).

    Each draw's components are matched to ``reference``'s by the assignment minimizing
    the summed squared Mahalanobis distance between the draw's means and the reference
    means (in the reference components' metrics), as
    :class:`~bayesgmm.PosteriorGaussianMixture` does after sampling; or, with
    ``permutations``, reordered by the permutations given (to undo, or to construct, a
    label switch).

    Parameters
    ----------
    draws : xarray.Dataset
        Variables ``weights``, ``means``, ``covariances`` with dimensions ``chain``,
        ``draw``, ``component`` (and ``feature``, ...) as in
        ``posterior.idata_["posterior"]`` or ``BootstrapResult.draws``.
    reference : GaussianMixture or PosteriorGaussianMixture
        A fitted model with the same number of components and covariance type (for a
        posterior, its MAP fit ``map_`` is the reference).
    permutations : array-like of shape (chain, draw, K), optional
        ``permutations[c, s, k]`` is the component of draw ``(c, s)`` that becomes
        component ``k``. When given, no matching is done.

    Returns
    -------
    relabelled : xarray.Dataset
        ``draws`` with every ``component`` variable reordered draw by draw (a tied
        covariance, which has no ``component`` dimension, is unchanged).
    permutations : ndarray of shape (chain, draw, K)
        The permutations applied.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture, relabel_draws
    >>> from bayesgmm.diagnostics import params_to_dataset
    >>> X = np.r_[np.zeros((20, 1)), np.full((20, 1), 5.0)] + np.tile([[0.1], [-0.1]], (20, 1))
    >>> gm = GaussianMixture(2, covariance_type="spherical", random_state=0).fit(X)
    >>> swapped = params_to_dataset(gm._params(), "spherical", ["x"]).isel(component=[1, 0])
    >>> draws = swapped.expand_dims(chain=1, draw=1)
    >>> _, perms = relabel_draws(draws, gm)
    >>> perms.tolist()
    [[[1, 0]]]
    """
    model = getattr(reference, "map_", reference)
    params = model._params()
    n_components = params.weights.shape[0]
    missing = {"chain", "draw", "component"} - set(draws.dims)
    if missing or "means" not in draws:
        raise ValueError(
            "`draws` must be a Dataset with a `means` variable and the dimensions chain, "
            f"draw and component (as in posterior.idata_['posterior']); it lacks "
            f"{sorted(missing) or ['means']}."
        )
    if draws.sizes["component"] != n_components:
        raise ValueError(
            f"`draws` have {draws.sizes['component']} components but the reference has "
            f"{n_components}."
        )
    chains, n_draws = draws.sizes["chain"], draws.sizes["draw"]
    if permutations is None:
        means = draws["means"].transpose("chain", "draw", "component", ...).values
        perms = match_to_reference(
            means.reshape(chains * n_draws, *means.shape[2:]), params, model.covariance_type
        ).reshape(chains, n_draws, n_components)
    else:
        perms = np.asarray(permutations)
        if perms.shape != (chains, n_draws, n_components):
            raise ValueError(
                f"`permutations` must have shape (chain, draw, K) = "
                f"{(chains, n_draws, n_components)}; got {perms.shape}."
            )
        if not np.array_equal(
            np.sort(perms, axis=-1), np.broadcast_to(np.arange(n_components), perms.shape)
        ):
            raise ValueError(
                f"Every `permutations[c, s]` must be a permutation of 0..{n_components - 1}."
            )
        perms = perms.astype(np.intp)
    relabelled = relabel_dataset(draws, xr.DataArray(perms, dims=("chain", "draw", "component")))
    return relabelled, perms
