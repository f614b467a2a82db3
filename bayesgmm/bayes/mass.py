r"""The model's log density on its unconstrained space, for the draws of a DataTree.

:func:`bayesgmm.bayes.stack_chains` with ``method="mass"`` weights groups of chains by
the posterior mass of the modes they sample (bridge sampling,
:func:`bayesgmm.core.bridge.chain_log_masses`). That needs two maps, bundled in an
:class:`UnconstrainedDensity`: the posterior draws (constrained values, as a
DataTree's ``posterior`` group has them) to the model's unconstrained vector, and the
unnormalized log density there (the joint log density, Jacobians of the transforms
included, so that it integrates to the model's normalizer over that space).

- :func:`pymc_density`: any PyMC model, also one extended from
  :func:`~bayesgmm.bayes.build_model` (a ``pm.Potential``, new free variables):
  ``model.compile_logp()`` on the value variables, each free variable's draws mapped
  through its own transform's ``forward``.
- :func:`kernel_density`: this package's models on the numba kernel the sampler
  runs (:mod:`bayesgmm.bayes._kernel`), draws mapped by
  :func:`bayesgmm.core.unconstrained.unconstrained_layout` (the same vector).
- :func:`numpy_density`: this package's models in NumPy on the same layout (priors the
  kernel does not cover; also data with NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import xarray as xr

__all__ = [
    "UnconstrainedDensity",
    "estimator_density",
    "forward_map",
    "kernel_density",
    "numpy_density",
    "pymc_density",
]


class UnconstrainedDensity(NamedTuple):
    """Maps for bridge sampling on a model's unconstrained space.

    Attributes
    ----------
    to_unconstrained : callable
        ``posterior`` (xarray.Dataset with dims ``chain``, ``draw``) -> ndarray of
        shape (chain, draw, P).
    log_density : callable
        ndarray (M, P) -> ndarray (M,): the unnormalized log density (Jacobians
        included).
    """

    to_unconstrained: Callable[[xr.Dataset], np.ndarray]
    log_density: Callable[[np.ndarray], np.ndarray]


def _chain_draw_loop(posterior: xr.Dataset, names, one: Callable) -> np.ndarray:
    """``one({name: value of one draw})`` -> vector, for every (chain, draw)."""
    missing = [n for n in names if n not in posterior]
    if missing:
        raise ValueError(
            f"The posterior has no draws of {missing} (it has {list(posterior.data_vars)}): "
            "the density's model is not the one that was sampled."
        )
    arrays = {n: posterior[n].transpose("chain", "draw", ...).values for n in names}
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    first = one({n: a[0, 0] for n, a in arrays.items()})
    out = np.empty((chains, draws, first.size))
    for c in range(chains):
        for s in range(draws):
            out[c, s] = one({n: a[c, s] for n, a in arrays.items()})
    return out


def forward_map(model, mode=None) -> tuple[Callable[[dict], list], list[str]]:
    """The map from constrained values of ``model``'s free variables (a dict by name) to
    their unconstrained values (a list, in ``model.free_RVs`` order: the value
    variables', and nutpie's flat vector is their concatenation), each through its
    transform's ``forward`` with the transform's parameters (which may be other free
    variables) at the same values. One compiled PyTensor function (``mode``: its
    compile mode). Returns the map and the free variables' names."""
    import pytensor
    from pytensor.graph.replace import graph_replace

    free = list(model.free_RVs)
    placeholders = {rv: rv.type(name=rv.name) for rv in free}
    outs = []
    for rv in free:
        transform = model.rvs_to_transforms.get(rv)
        outs.append(rv if transform is None else transform.forward(rv, *rv.owner.inputs))
    outs = graph_replace(outs, placeholders, strict=False)
    fn = pytensor.function(list(placeholders.values()), outs, mode=mode, on_unused_input="ignore")
    names = [rv.name for rv in free]

    def forward(values: dict) -> list:
        return fn(*(np.asarray(values[n], dtype=model[n].dtype) for n in names))

    return forward, names


def pymc_density(model) -> UnconstrainedDensity:
    """The log density of any PyMC model on its value variables, and the map of its
    free variables' draws to them (each through its transform's ``forward``, with the
    transform's parameters at the same draw).

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> with pm.Model() as model:
    ...     s = pm.HalfNormal("s", 1.0)
    >>> density = pymc_density(model)
    >>> import xarray as xr
    >>> post = xr.Dataset({"s": (("chain", "draw"), [[0.5, 2.0]])})
    >>> z = density.to_unconstrained(post)  # log s
    >>> bool(np.allclose(z[0, :, 0], np.log([0.5, 2.0])))
    True
    >>> lp = density.log_density(z[0])  # HalfNormal(1) density of s, times ds/dz = s
    >>> from scipy import stats
    >>> bool(np.allclose(lp, stats.halfnorm.logpdf([0.5, 2.0]) + np.log([0.5, 2.0])))
    True
    """
    forward, names = forward_map(model)
    value_vars = [model.rvs_to_values[rv] for rv in model.free_RVs]
    logp = model.compile_logp()
    shapes: list[tuple] = []

    def one(values: dict) -> np.ndarray:
        parts = forward(values)
        if not shapes:
            shapes.extend(np.shape(p) for p in parts)
        return np.concatenate([np.ravel(p) for p in parts])

    def to_unconstrained(posterior: xr.Dataset) -> np.ndarray:
        return _chain_draw_loop(posterior, names, one)

    def log_density(theta: np.ndarray) -> np.ndarray:
        if not shapes:
            point = model.initial_point()
            shapes.extend(np.shape(point[v.name]) for v in value_vars)
        sizes = np.cumsum([0] + [int(np.prod(s, dtype=int)) for s in shapes])
        out = np.empty(len(theta))
        for i, z in enumerate(np.asarray(theta, dtype=float)):
            point = {
                v.name: z[sizes[j] : sizes[j + 1]].reshape(shapes[j])
                for j, v in enumerate(value_vars)
            }
            out[i] = float(logp(point))
        return out

    return UnconstrainedDensity(to_unconstrained, log_density)


def _layout_map(covariance_type: str, n_components: int, n_features: int):
    from bayesgmm.core.unconstrained import unconstrained_layout

    layout = unconstrained_layout(n_components, n_features, covariance_type)

    def one(values: dict) -> np.ndarray:
        return layout.forward(values["weights"], values["means"], values["covariances"])

    def to_unconstrained(posterior: xr.Dataset) -> np.ndarray:
        return _chain_draw_loop(posterior, ("weights", "means", "covariances"), one)

    return layout, to_unconstrained


def kernel_density(kernel_model) -> UnconstrainedDensity:
    """This package's model on the numba kernel nutpie samples (with or without NaN in
    the data): the draws' ``weights``, ``means``, ``covariances`` mapped to the
    kernel's vector."""
    _, to_unconstrained = _layout_map(
        kernel_model.covariance_type, kernel_model.n_components, kernel_model.n_features
    )

    def log_density(theta: np.ndarray) -> np.ndarray:
        return np.array([kernel_model.logp_and_grad(z)[0] for z in np.asarray(theta, float)])

    return UnconstrainedDensity(to_unconstrained, log_density)


def numpy_density(
    X: np.ndarray, prior, covariance_type: str, n_components: int
) -> UnconstrainedDensity:
    """This package's model in NumPy, also for data with NaN: the observed-data
    mixture log-likelihood (each row's marginal of its observed coordinates, the chunk
    kernel's), the prior's log density with every constant
    (:meth:`~bayesgmm.priors.GMMPrior.log_prob`) and the layout's log-Jacobian: the
    density of :func:`~bayesgmm.bayes.build_model`'s ``model.logp()`` (the MAP
    objective plus the Jacobian, as the Laplace approximation evaluates it)."""
    from bayesgmm.core.covariance import get_covariance_model
    from bayesgmm.core.density import log_mixture_density
    from bayesgmm.core.params import GMMParams

    X = np.asarray(X, dtype=float)
    X = X[~np.isnan(X).all(axis=1)]  # rows with no observed value carry nothing
    layout, to_unconstrained = _layout_map(covariance_type, n_components, X.shape[1])
    table = get_covariance_model(covariance_type)

    def one(z: np.ndarray) -> float:
        w, m, c = layout.backward(z)
        try:
            params = GMMParams(w, m, c, table.precision_cholesky(c))
        except (np.linalg.LinAlgError, ValueError):  # numerically singular: density 0
            return -np.inf
        total = log_mixture_density(X, params, covariance_type).sum()
        if prior is not None:
            total += prior.log_prob(params, covariance_type)
        return float(total + layout.log_jac_det(z))

    def log_density(theta: np.ndarray) -> np.ndarray:
        return np.array([one(z) for z in np.asarray(theta, dtype=float)])

    return UnconstrainedDensity(to_unconstrained, log_density)


def estimator_density(estimator, X: np.ndarray) -> UnconstrainedDensity:
    """The density a fitted :class:`~bayesgmm.bayes.PosteriorGaussianMixture` sampled:
    its kernel (``backend_ == "kernel"``, data with or without NaN), else the same
    model in NumPy (:func:`numpy_density`: ``sampler='pymc'``/``'numpyro'`` or a prior
    the kernel does not cover; compiling the PyMC model's logp for it took 30-40 s
    here), on the same vector."""
    if estimator.backend_ == "kernel":
        from bayesgmm.bayes._kernel import make_kernel_model

        km = make_kernel_model(
            X, estimator.prior_, estimator.covariance_type, estimator.n_components
        )
        return kernel_density(km)
    return numpy_density(X, estimator.prior_, estimator.covariance_type, estimator.n_components)
