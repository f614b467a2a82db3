r"""Label switching: relabel posterior draws to a reference fit, or by Stephens' method.

A mixture's likelihood is invariant to permuting its components, so posterior draws may
swap labels within and between chains. Two relabellings:

``"map"``
    Each draw is matched to a reference (the MAP fit) by the assignment that minimizes
    the summed squared Mahalanobis distance between the draw's means and the reference
    means (in the reference components' metrics), solved exactly with
    :func:`scipy.optimize.linear_sum_assignment`.
``"stephens"``
    Stephens' (2000) Kullback--Leibler algorithm on the draws' classification
    probabilities :math:`P^{(s)}_{ik} = P(z_i = k \mid x_i, \theta^{(s)})`: alternate
    :math:`Q = \frac1S \sum_s P^{(s)}_{\nu_s}` (the average under the current
    permutations :math:`\nu_s`) and, for each draw, the permutation minimizing
    :math:`\sum_i \mathrm{KL}(P^{(s)}_{i,\nu_s} \,\|\, Q_i)`, until no permutation
    changes (:func:`stephens_permutations`).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import responsibilities
from bayesgmm.core.params import GMMParams

__all__ = [
    "RELABEL_METHODS",
    "StephensResult",
    "assign_each",
    "classification_probabilities",
    "match_to_reference",
    "relabel_dataset",
    "relabel_draws",
    "stephens_objective",
    "stephens_permutations",
]

RELABEL_METHODS = ("map", "stephens")


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
    return assign_each(cost)


#: Components up to which :func:`assign_each` compares all K! assignments at once.
BRUTE_FORCE_MAX_COMPONENTS = 5


def assign_each(cost: np.ndarray) -> np.ndarray:
    """The least-cost assignment of every draw's (K, K) cost matrix: ``perm[s, k]`` is
    the row assigned to column ``k`` in ``cost[s]`` (rows: the draw's components).

    :func:`scipy.optimize.linear_sum_assignment`'s solution, draw by draw. Up to
    :data:`BRUTE_FORCE_MAX_COMPONENTS` components, all K! assignments are costed in
    one array operation instead of a Python loop of solver calls; a draw whose best
    assignment is not clearly better than the next (a near tie, within 1e-9 of the
    costs' scale, where rounding might decide) or whose costs are not all finite is
    left to the solver, so the result is the solver's throughout.

    Parameters
    ----------
    cost : ndarray of shape (S, K, K)

    Returns
    -------
    ndarray of shape (S, K), intp

    Examples
    --------
    >>> import numpy as np
    >>> cost = np.array([[[0.0, 9.0], [9.0, 0.0]], [[9.0, 0.0], [0.0, 9.0]]])
    >>> assign_each(cost).tolist()
    [[0, 1], [1, 0]]
    """
    cost = np.asarray(cost, dtype=float)
    n_draws, n_components = cost.shape[:2]
    perms = np.empty((n_draws, n_components), dtype=np.intp)
    solver = np.arange(n_draws)
    if n_components == 1:
        perms[:] = 0
        solver = np.flatnonzero(~np.isfinite(cost).all(axis=(1, 2)))  # the solver's error
    elif n_components <= BRUTE_FORCE_MAX_COMPONENTS and n_draws:
        candidates = np.array(list(itertools.permutations(range(n_components))), dtype=np.intp)
        totals = cost[:, candidates, np.arange(n_components)].sum(axis=-1)  # (S, K!)
        two = np.partition(totals, 1, axis=1)[:, :2]
        scale = np.abs(cost).max(axis=(1, 2)) * n_components
        with np.errstate(invalid="ignore"):
            clear = np.isfinite(cost).all(axis=(1, 2)) & (two[:, 1] - two[:, 0] > 1e-9 * scale)
        perms[clear] = candidates[totals[clear].argmin(axis=1)]
        solver = np.flatnonzero(~clear)
    for s in solver:
        rows, cols = linear_sum_assignment(cost[s])
        perms[s, cols] = rows
    return perms


class StephensResult(NamedTuple):
    r"""Outcome of :func:`stephens_permutations`.

    Attributes
    ----------
    permutations : ndarray of shape (S, K)
        ``permutations[s, k]`` is the draw-``s`` component that becomes component ``k``.
    q : ndarray of shape (N, K)
        The average classification probabilities under ``permutations``.
    objective : ndarray of shape (n_iter,)
        The mean over draws of :math:`\sum_i \mathrm{KL}(P^{(s)}_{i,\nu_s} \| Q_i)` after
        each iteration's averaging step (non-increasing).
    n_iter : int
        Iterations run (averaging + assignment steps).
    converged : bool
        Whether the last assignment step left every permutation unchanged.
    """

    permutations: np.ndarray
    q: np.ndarray
    objective: np.ndarray
    n_iter: int
    converged: bool


_CHUNK = 512  # draws per block: bounds the temporary (block, N, K) copies

#: Default cap on the memory of the classification probabilities (S x N x K floats) that
#: Stephens' method keeps: above it they are recomputed block by block on every pass.
DEFAULT_MAX_BYTES = 2**28  # 256 MiB


class _Blocks:
    """Classification probabilities of ``n_draws`` draws, served block by block.

    ``get(start, stop)`` returns the (stop - start, N, K) probabilities of those draws:
    a view of an array held in memory, or a fresh computation from the draws (then
    memory is one block, whatever the number of draws).
    """

    def __init__(
        self, n_draws: int, n_components: int, block_size: int, get, in_memory: bool = False
    ) -> None:
        self.n_draws, self.n_components = n_draws, n_components
        self.block_size, self._get = max(1, int(block_size)), get
        self.in_memory = in_memory

    @classmethod
    def of_array(cls, probs: np.ndarray) -> _Blocks:
        return cls(probs.shape[0], probs.shape[2], _CHUNK, lambda a, b: probs[a:b], True)

    def __iter__(self):
        for start in range(0, self.n_draws, self.block_size):
            stop = min(start + self.block_size, self.n_draws)
            yield slice(start, stop), self._get(start, stop)


def _permuted_mean(blocks: _Blocks, perms: np.ndarray) -> np.ndarray:
    """Q = mean over draws of P[s][:, perms[s]], block by block."""
    total = 0.0
    for block, probs in blocks:
        total = total + np.take_along_axis(probs, perms[block, None, :], axis=2).sum(axis=0)
    return total / blocks.n_draws


def _cross_entropy(blocks: _Blocks, log_q: np.ndarray) -> np.ndarray:
    """cost[s, a, j] = -sum_i P[s, i, a] log Q[i, j] (draw component a as label j)."""
    cost = np.empty((blocks.n_draws, blocks.n_components, log_q.shape[1]))
    for block, probs in blocks:
        cost[block] = -np.matmul(probs.transpose(0, 2, 1), log_q)
    return cost


def _neg_entropy(blocks: _Blocks) -> float:
    """sum_s sum_ik P log P (0 log 0 = 0): the permutation-invariant part of the KL."""
    total = 0.0
    for _, probs in blocks:
        total += float(np.sum(probs * np.log(np.where(probs > 0, probs, 1.0))))
    return total


def _log_q(q: np.ndarray) -> np.ndarray:
    # Q_ij = 0 only where every permuted draw gives 0 there; clipping keeps 0 * log 0 = 0
    return np.log(np.maximum(q, np.finfo(float).tiny))


def stephens_objective(probs: np.ndarray, permutations: np.ndarray, q=None) -> float:
    r"""Stephens' Kullback--Leibler objective of a relabelling.

    .. math:: \frac1S \sum_s \sum_i \sum_k P^{(s)}_{i,\nu_s(k)}
              \log \frac{P^{(s)}_{i,\nu_s(k)}}{Q_{ik}}

    with :math:`Q` the average of the permuted :math:`P^{(s)}` (or ``q`` when given).

    Parameters
    ----------
    probs : ndarray of shape (S, N, K)
        Classification probabilities of ``N`` points under each of ``S`` draws.
    permutations : ndarray of shape (S, K)
        ``permutations[s, k]`` is the draw-``s`` component that becomes component ``k``.
    q : ndarray of shape (N, K), optional

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[[0.9, 0.1]], [[0.1, 0.9]]])  # two draws, one point, swapped
    >>> round(stephens_objective(P, np.array([[0, 1], [1, 0]])), 12)  # aligned: Q = P
    0.0
    """
    blocks = _Blocks.of_array(np.asarray(probs, dtype=float))
    perms = np.asarray(permutations, dtype=np.intp)
    return _objective(blocks, perms, q)


def _objective(blocks: _Blocks, perms: np.ndarray, q=None) -> float:
    q = _permuted_mean(blocks, perms) if q is None else np.asarray(q, dtype=float)
    cost = _cross_entropy(blocks, _log_q(q))
    n_draws, n_components = perms.shape
    chosen = cost[np.arange(n_draws)[:, None], perms, np.arange(n_components)]
    return (_neg_entropy(blocks) + float(chosen.sum())) / n_draws


def stephens_permutations(
    probs: np.ndarray, *, initial: np.ndarray | None = None, max_iter: int = 100
) -> StephensResult:
    r"""Stephens' (2000) Kullback--Leibler relabelling of posterior draws.

    Iterates, from ``initial`` permutations :math:`\nu_s` (identity by default):

    1. :math:`Q_{ik} = \frac1S \sum_s P^{(s)}_{i,\nu_s(k)}`, the average classification
       probabilities under the current permutations (the :math:`Q` minimizing the
       objective for fixed permutations);
    2. for each draw, the permutation minimizing
       :math:`\sum_i \mathrm{KL}(P^{(s)}_{i,\nu_s} \| Q_i)`. The entropy of
       :math:`P^{(s)}` does not depend on the permutation, so this is the assignment of
       draw component :math:`a` to label :math:`j` with cost
       :math:`C^{(s)}_{aj} = -\sum_i P^{(s)}_{ia} \log Q_{ij}` (one batched matrix
       product over draws), solved exactly by
       :func:`scipy.optimize.linear_sum_assignment`;

    until no permutation changes. Neither step can raise the objective
    (:func:`stephens_objective`), so it is non-increasing and the iteration stops.

    Parameters
    ----------
    probs : ndarray of shape (S, N, K)
        Classification probabilities :math:`P(z_i = k \mid x_i, \theta^{(s)})`.
    initial : ndarray of shape (S, K), optional
        Starting permutations (e.g. the match to the MAP fit); identity by default.
    max_iter : int, default=100

    Returns
    -------
    StephensResult

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[[0.9, 0.1], [0.8, 0.2]], [[0.1, 0.9], [0.3, 0.7]],
    ...               [[0.85, 0.15], [0.7, 0.3]]])
    >>> stephens_permutations(P).permutations.tolist()  # the second draw is swapped
    [[0, 1], [1, 0], [0, 1]]
    """
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 3:
        raise ValueError(f"`probs` must have shape (S, N, K); got shape {probs.shape}.")
    return _stephens(_Blocks.of_array(probs), initial=initial, max_iter=max_iter)


def _stephens(blocks: _Blocks, *, initial=None, max_iter: int = 100) -> StephensResult:
    """:func:`stephens_permutations` on probabilities served in blocks of draws."""
    n_draws, n_components = blocks.n_draws, blocks.n_components
    if initial is None:
        perms = np.tile(np.arange(n_components, dtype=np.intp), (n_draws, 1))
    else:
        perms = np.array(initial, dtype=np.intp)
        if perms.shape != (n_draws, n_components):
            raise ValueError(
                f"`initial` must have shape (S, K) = {(n_draws, n_components)}; got {perms.shape}."
            )
    neg_entropy = _neg_entropy(blocks)
    rows = np.arange(n_draws)[:, None]
    labels = np.arange(n_components)
    objective = []
    converged = False
    for _ in range(max_iter):
        q = _permuted_mean(blocks, perms)
        cost = _cross_entropy(blocks, _log_q(q))
        objective.append((neg_entropy + float(cost[rows, perms, labels].sum())) / n_draws)
        new = assign_each(cost)
        # keep a draw's permutation on ties, so the loop cannot cycle between equals
        old_cost = cost[rows, perms, labels].sum(axis=1)
        new_cost = cost[rows, new, labels].sum(axis=1)
        new = np.where((new_cost < old_cost - 1e-12 * np.abs(old_cost))[:, None], new, perms)
        if np.array_equal(new, perms):
            converged = True
            break
        perms = new
    else:
        q = _permuted_mean(blocks, perms)
        objective.append(_objective(blocks, perms, q))
    return StephensResult(perms, q, np.asarray(objective), len(objective), converged)


def _stacked_params(draws: xr.Dataset) -> dict[str, np.ndarray]:
    return {
        name: draws[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        for name in ("weights", "means", "covariances")
    }


def _probabilities_of(stacked: dict, X: np.ndarray, covariance_type: str, start, stop):
    """Membership probabilities of the rows of ``X`` under draws ``start:stop``: complete
    rows in one vectorized pass over the draws (the posterior's post-processing pass,
    :func:`bayesgmm.bayes._postprocess.draw_pass`), rows with NaN draw by draw (the
    chunk kernel's marginals)."""
    if not np.isnan(X).any():
        from bayesgmm.bayes._postprocess import draw_pass

        w, mu, cov = (stacked[name][start:stop] for name in ("weights", "means", "covariances"))
        return draw_pass(X, w, mu, cov, covariance_type, probabilities=True).probabilities
    model = get_covariance_model(covariance_type)
    n_components = stacked["weights"].shape[1]
    probs = np.empty((stop - start, X.shape[0], n_components))
    for i, s in enumerate(range(start, stop)):
        cov = stacked["covariances"][s]
        params = GMMParams(
            stacked["weights"][s], stacked["means"][s], cov, model.precision_cholesky(cov)
        )
        probs[i] = np.exp(responsibilities(X, params, covariance_type)[1])
    return probs


def classification_probabilities(
    draws: xr.Dataset, X: np.ndarray, covariance_type: str
) -> np.ndarray:
    """Each draw's membership probabilities of the rows of ``X``, shape (S, N, K).

    Draws are taken in (chain, draw) order, chains stacked. Memory: S x N x K floats
    (4000 draws of N = 1000, K = 3: 96 MB); :func:`relabel_draws` caps it
    (``max_bytes``).
    """
    stacked = _stacked_params(draws)
    return _probabilities_of(stacked, X, covariance_type, 0, stacked["weights"].shape[0])


def _draw_blocks(draws: xr.Dataset, X: np.ndarray, covariance_type: str, max_bytes) -> _Blocks:
    """The draws' classification probabilities, all in memory when ``S N K`` floats fit
    in ``max_bytes`` (None: no cap), else recomputed per block of draws on every pass,
    each block at most ``max_bytes`` (at least one draw)."""
    stacked = _stacked_params(draws)
    n_draws, n_components = stacked["weights"].shape
    per_draw = X.shape[0] * n_components * np.dtype(float).itemsize
    if max_bytes is None or n_draws * per_draw <= max_bytes:
        return _Blocks.of_array(_probabilities_of(stacked, X, covariance_type, 0, n_draws))
    return _Blocks(
        n_draws,
        n_components,
        max(1, int(max_bytes) // per_draw),
        lambda a, b: _probabilities_of(stacked, X, covariance_type, a, b),
    )


def relabel_dataset(posterior: xr.Dataset, perms: xr.DataArray) -> xr.Dataset:
    """Reorder every variable with a ``component`` dimension, draw by draw.

    ``perms`` has dims ``(chain, draw, component)``; variables without a
    ``component`` dimension (a tied covariance) are unchanged.
    """
    relabelled = posterior.isel(component=perms)
    return relabelled.assign_coords(component=posterior["component"])


def relabel_draws(
    draws: xr.Dataset,
    reference,
    *,
    method: str = "map",
    X=None,
    permutations=None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> tuple[xr.Dataset, np.ndarray]:
    """Relabel draws of a mixture's parameters (label switching).

    With ``method="map"`` each draw's components are matched to ``reference``'s by the
    assignment minimizing the summed squared Mahalanobis distance between the draw's
    means and the reference means (in the reference components' metrics), as
    :class:`~bayesgmm.PosteriorGaussianMixture` does after sampling by default. With
    ``method="stephens"``, Stephens' (2000) Kullback--Leibler algorithm on the draws'
    classification probabilities of the rows of ``X``
    (:func:`~bayesgmm.bayes.relabel.stephens_permutations`), started from the MAP match
    (a local search: the start picks which of the equivalent labellings it settles in,
    so component ``k`` keeps meaning the reference's component ``k``). With
    ``permutations``, the draws are reordered by the permutations given (to undo, or to
    construct, a label switch).

    Parameters
    ----------
    draws : xarray.Dataset
        Variables ``weights``, ``means``, ``covariances`` with dimensions ``chain``,
        ``draw``, ``component`` (and ``feature``, ...) as in
        ``posterior.idata_["posterior"]`` or ``BootstrapResult.draws``.
    reference : GaussianMixture or PosteriorGaussianMixture
        A fitted model with the same number of components and covariance type (for a
        posterior, its MAP fit ``map_`` is the reference).
    method : {'map', 'stephens'}, default='map'
    X : array-like of shape (N, D), optional
        The data whose classification probabilities Stephens' method aligns (needed,
        and only used, with ``method="stephens"``; NaN marks a missing value).
    permutations : array-like of shape (chain, draw, K), optional
        ``permutations[c, s, k]`` is the component of draw ``(c, s)`` that becomes
        component ``k``. When given, no matching is done.
    max_bytes : int or None, default=2**28 (256 MiB)
        Memory cap for Stephens' method, which needs the draws' classification
        probabilities (draws x N x K floats, 8 bytes each) on every pass. When they fit
        in ``max_bytes`` they are computed once and kept; otherwise they are recomputed
        from the draws on every pass, in blocks of at most ``max_bytes`` (at least one
        draw), so memory stays bounded and time grows by one recomputation per pass
        (two per iteration, usually a few iterations). The permutations found are the
        same either way. ``None``: no cap.

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
    >>> relabel_draws(draws, gm, method="stephens", X=X)[1].tolist()
    [[[1, 0]]]
    """
    relabelled, perms, _ = _relabel(
        draws, reference, method=method, X=X, permutations=permutations, max_bytes=max_bytes
    )
    return relabelled, perms


def _relabel(
    draws: xr.Dataset,
    reference,
    *,
    method: str = "map",
    X=None,
    permutations=None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> tuple[xr.Dataset, np.ndarray, dict]:
    """:func:`relabel_draws`, plus a record of what was done (method, draws permuted)."""
    if method not in RELABEL_METHODS:
        raise ValueError(f"Unknown relabel method {method!r}; expected one of {RELABEL_METHODS}.")
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
    info: dict = {"method": "given" if permutations is not None else method}
    if permutations is None:
        means = draws["means"].transpose("chain", "draw", "component", ...).values
        flat = match_to_reference(
            means.reshape(chains * n_draws, *means.shape[2:]), params, model.covariance_type
        )
        if method == "stephens":
            if X is None:
                raise ValueError("method='stephens' needs the data `X` (shape (N, D)).")
            X = np.asarray(X, dtype=float)
            n_features = draws.sizes.get("feature", means.shape[-1])
            if X.ndim != 2 or X.shape[1] != n_features:
                raise ValueError(
                    f"`X` must have shape (N, {n_features}) for method='stephens'; "
                    f"got shape {X.shape}."
                )
            if np.isinf(X).any() or np.isnan(X).all(axis=1).any():
                raise ValueError(
                    "`X` for method='stephens' must have no inf and an observed value "
                    "in every row (NaN marks a missing value)."
                )
            if max_bytes is not None and (
                isinstance(max_bytes, bool)
                or not isinstance(max_bytes, int | np.integer)
                or max_bytes < 1
            ):
                raise ValueError(
                    f"`max_bytes` must be a positive integer or None; got {max_bytes!r}."
                )
            blocks = _draw_blocks(draws, X, model.covariance_type, max_bytes)
            result = _stephens(blocks, initial=flat)
            info.update(
                n_changed_from_map=int((result.permutations != flat).any(axis=1).sum()),
                iterations=result.n_iter,
                converged=result.converged,
                objective=result.objective.tolist(),
                probabilities_in_memory=blocks.in_memory,
                draws_per_block=None if blocks.in_memory else blocks.block_size,
            )
            flat = result.permutations
        perms = flat.reshape(chains, n_draws, n_components)
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
    info["n_permuted"] = int((perms != np.arange(n_components)).any(axis=-1).sum())
    info["n_draws"] = chains * n_draws
    relabelled = relabel_dataset(draws, xr.DataArray(perms, dims=("chain", "draw", "component")))
    return relabelled, perms, info
