r"""mclust's start: model-based agglomerative hierarchical clustering (``hcVVV``).

Following mclust (Fraley 1998; mclust >= 5.4 defaults ``hcModelName = "VVV"``,
``hcUse = "SVD"``):

1. the data are standardized (column means 0, standard deviations 1, ``n - 1``
   denominator) and projected on their right singular vectors scaled by the inverse
   square roots of the singular values, :math:`Z = X_s V \operatorname{diag}(d)^{-1/2}`
   (:func:`svd_transform`);
2. starting from singletons, the two clusters whose merge changes the criterion

   .. math:: t(C) = \begin{cases} n_C \log\!\big(\beta(\operatorname{tr} W_C + \alpha)/n_C\big)
             & n_C \le p \\ n_C \log\!\big(|W_C/n_C| + \beta(\operatorname{tr} W_C
             + \alpha)/n_C\big) & n_C > p \end{cases}

   least, :math:`t(C_i \cup C_j) - t(C_i) - t(C_j)`, are merged, with :math:`W_C` the
   scatter of cluster :math:`C`, :math:`\beta = 1` and
   :math:`\alpha = \operatorname{tr} W_{\text{all}} / (n p)` (:func:`hc_vvv`);
3. ties go to the pair mclust's Fortran finds last: clusters live in slots
   ``0..g-1``, the merged cluster takes the lower slot of the pair, the cluster in the
   last slot moves into the higher one, and among equal changes the pair with the
   largest (higher slot, lower slot) wins. That matters for data with repeated rows
   (Old Faithful has many), whose merges tie exactly.

One-dimensional data use quantile classes instead (mclust's ``qclass``). Above 2000
rows mclust clusters a random subset of 2000 (``mclust.options("subset")``); so does
:func:`hc_responsibilities`, with the other rows given zero responsibility, which makes
the first M-step use the subset only, as mclust's ``mstep`` on the subset does.
Differences from mclust: sample weights are ignored by the start (as mclust has none);
and the costs are computed from explicit scatter matrices rather than mclust's
Cholesky updates, which can only differ by rounding. Each slot keeps its smallest cost
to a lower slot (with that slot), so a merge step is linear in the number of clusters
(after a merge only the rows whose minimum was in a changed column are rescanned); the
merge order is that of scanning every pair (``tests/test_hc.py``). Within
:func:`bayesgmm.select_model` every cell of a grid uses the same subset, hence one tree.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = [
    "HC_SUBSET",
    "hc_partitions",
    "hc_responsibilities",
    "hc_vvv",
    "qclass",
    "svd_transform",
]

#: mclust.options("subset"): rows used by the hierarchical start.
HC_SUBSET = 2000

_CACHE: dict[tuple, list[tuple[int, int]]] = {}
_CACHE_SIZE = 8


def svd_transform(X: np.ndarray) -> np.ndarray:
    """mclust's ``hcUse = "SVD"``: standardized data on scaled singular vectors."""
    X = np.asarray(X, dtype=float)
    sd = X.std(axis=0, ddof=1)
    keep = np.isfinite(sd) & (sd > 0)
    Xs = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    _, s, vt = np.linalg.svd(Xs, full_matrices=False)
    good = s > s[0] * 1e-12
    return (Xs @ vt[good].T) / np.sqrt(s[good])


def _terms(n: np.ndarray, scatter: np.ndarray, alpha: float, beta: float, p: int) -> np.ndarray:
    """The criterion ``t(C)`` of clusters of sizes ``n`` (m,) and scatters (m, p, p)."""
    trace = np.einsum("kii->k", scatter)
    small = beta * (trace + alpha) / n
    out = n * np.log(small)
    big = n > p
    if np.any(big):
        sign, logdet = np.linalg.slogdet(scatter[big] / n[big, None, None])
        nb, sb = n[big], small[big]
        detlog = np.where(sign > 0, logdet, -np.inf)
        value = np.where(
            detlog <= 0,
            np.log(np.exp(np.minimum(detlog, 0.0)) + sb),
            np.log1p(np.exp(-np.maximum(detlog, 0.0)) * sb) + np.maximum(detlog, 0.0),
        )
        value = np.where(trace[big] == 0, np.log(alpha * beta / nb), value)
        out[big] = nb * value
    return out


def hc_vvv(Z: np.ndarray, min_clusters: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Agglomerate rows of ``Z`` (N, p) from singletons down to ``min_clusters``.

    Returns
    -------
    list of (members_i, members_j)
        The row indices of the two clusters merged at each step, in order.
    """
    Z = np.asarray(Z, dtype=float)
    n_rows, p = Z.shape
    beta = 1.0
    centred = Z - Z.mean(axis=0)
    alpha = max(float(np.sum(centred * centred)) / (n_rows * p), np.finfo(float).eps)
    ab_log = np.log(beta * alpha)

    counts = np.ones(n_rows)
    means = Z.copy()
    scatters = np.zeros((n_rows, p, p))
    terms = np.full(n_rows, ab_log)
    members = [np.array([i]) for i in range(n_rows)]

    # Pair costs, symmetric; singletons: n = 2, tr W = |x_i - x_j|^2 / 2.
    sq = np.sum(Z * Z, axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * Z @ Z.T, 0.0)
    diff = Z[:, None, :] - Z[None, :, :] if n_rows <= 400 else None
    if diff is not None:
        dist = np.einsum("ijk,ijk->ij", diff, diff)  # exact zeros for repeated rows
    else:
        for i in range(n_rows):
            d = Z - Z[i]
            dist[i] = np.einsum("ij,ij->i", d, d)
    cost = 2.0 * np.log(beta * (0.5 * dist + alpha) / 2.0) - (ab_log + ab_log)
    np.fill_diagonal(cost, np.inf)

    # Each slot's smallest cost to a lower slot, and the highest such lower slot among
    # equal costs: the global choice (smallest cost; among ties the highest slot j,
    # then its highest i < j) is then one pass over the slots, and a merge changes
    # only a few rows' minima (the others are updated from the changed entries).
    row_min = np.full(n_rows, np.inf)
    row_arg = np.zeros(n_rows, dtype=int)

    def refresh(r: int) -> None:
        if r == 0:
            row_min[0], row_arg[0] = np.inf, 0
            return
        values = cost[r, :r]
        best = values.min()
        row_min[r] = best
        row_arg[r] = r - 1 - int(np.argmin(values[::-1]))  # the last of equal minima

    for r in range(n_rows):
        refresh(r)

    merges = []
    g = n_rows
    while g > min_clusters:
        j = g - 1 - int(np.argmin(row_min[:g][::-1]))  # the highest slot at the minimum
        i = int(row_arg[j])  # i < j
        merges.append((members[i], members[j]))
        # merged statistics into slot i
        n_i, n_j = counts[i], counts[j]
        n_ij = n_i + n_j
        delta = means[i] - means[j]
        scatters[i] = scatters[i] + scatters[j] + (n_i * n_j / n_ij) * np.outer(delta, delta)
        means[i] = (n_i * means[i] + n_j * means[j]) / n_ij
        counts[i] = n_ij
        terms[i] = _terms(np.array([n_ij]), scatters[i][None], alpha, beta, p)[0]
        members[i] = np.concatenate([members[i], members[j]])
        last_slot = g - 1
        if j != last_slot:  # the last slot moves into slot j
            counts[j], means[j], scatters[j] = (
                counts[last_slot],
                means[last_slot],
                scatters[last_slot],
            )
            terms[j], members[j] = terms[last_slot], members[last_slot]
            cost[j, :] = cost[last_slot, :]
            cost[:, j] = cost[:, last_slot]
            cost[j, j] = np.inf
        g -= 1
        cost[g, :] = np.inf
        cost[:, g] = np.inf
        if g <= 1:
            break
        others = np.delete(np.arange(g), i)
        n_o = counts[others]
        d = means[i] - means[others]
        n_m = n_o + counts[i]
        w = (
            scatters[i]
            + scatters[others]
            + (counts[i] * n_o / n_m)[:, None, None] * (d[:, :, None] * d[:, None, :])
        )
        merged = _terms(n_m, w, alpha, beta, p)
        new = merged - (terms[i] + terms[others])
        cost[i, others] = new
        cost[others, i] = new
        # Rows whose minimum may have moved: i and j (new contents), and rows whose
        # minimum sat in column i, j or the removed slot; the other rows above i (or j)
        # only see one changed entry, cost[r, i] (cost[r, j]).
        stale = {i, j} if j < g else {i}
        higher = np.arange(i + 1, g)
        stale.update(int(r) for r in higher[row_arg[higher] == i])
        if j < g:
            above_j = np.arange(j + 1, g)
            stale.update(int(r) for r in above_j[np.isin(row_arg[above_j], (j, last_slot))])
        fixed = np.array(sorted(stale))
        for column, rows in ((i, higher), (j, np.arange(j + 1, g) if j < g else higher[:0])):
            rows = rows[~np.isin(rows, fixed)]
            values = cost[rows, column]
            better = (values < row_min[rows]) | (
                (values == row_min[rows]) & (column > row_arg[rows])
            )
            row_min[rows[better]] = values[better]
            row_arg[rows[better]] = column
        for r in stale:
            refresh(r)
        row_min[g:] = np.inf
    return merges


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    """Relabel classes 0..G-1 in order of first appearance (mclust's ``partconv``)."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    relabel = np.empty(order.size, dtype=int)
    relabel[order] = np.arange(order.size)
    return relabel[np.searchsorted(np.unique(labels), labels)]


def hc_partitions(Z: np.ndarray, n_clusters: list[int]) -> dict[int, np.ndarray]:
    """The ``hc_vvv`` partitions of the rows of ``Z`` into each of ``n_clusters``."""
    key = (Z.shape, hashlib.sha1(np.ascontiguousarray(Z).tobytes()).hexdigest())
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = hc_vvv(Z)
    merges = _CACHE[key]
    n_rows = Z.shape[0]
    labels = np.arange(n_rows)
    wanted = set(n_clusters)
    out = {}
    if n_rows in wanted:
        out[n_rows] = _first_appearance(labels)
    for step, (a, b) in enumerate(merges):
        # the merged cluster takes the smaller label of its two parts
        la, lb = labels[a[0]], labels[b[0]]
        keep, drop = min(la, lb), max(la, lb)
        labels[labels == drop] = keep
        g = n_rows - step - 1
        if g in wanted:
            out[g] = _first_appearance(labels)
    return out


def qclass(x: np.ndarray, k: int) -> np.ndarray:
    """mclust's quantile classes of one variable into ``k`` groups (labels 0..k-1)."""
    x = np.asarray(x, dtype=float).ravel()
    eps = x.std(ddof=1) * np.sqrt(np.finfo(float).eps)
    q = np.array([np.nan])
    m = k
    while q.size < k + 1:
        m += 1
        q = np.unique(np.quantile(x, np.linspace(0.0, 1.0, m)))
    if q.size > k + 1:
        dq = np.diff(q)
        drop = np.argsort(dq, kind="stable")[: q.size - k - 1]
        q = np.delete(q, drop)
    q[0] = x.min() - eps
    q[-1] = x.max() + eps
    labels = np.full(x.size, -1)
    for i in range(k):
        labels[(x >= q[i]) & (x < q[i + 1])] = i
    return labels


def hc_responsibilities(X: np.ndarray, n_components: int, rng) -> np.ndarray:
    """One-hot responsibilities (N, K) of mclust's start (zero outside the subset)."""
    n_rows, n_features = X.shape
    resp = np.zeros((n_rows, n_components))
    rows = np.arange(n_rows)
    if n_rows > HC_SUBSET:
        rows = np.sort(rng.choice(n_rows, size=HC_SUBSET, replace=False))
    data = X[rows]
    if n_components == 1:
        labels = np.zeros(rows.size, dtype=int)
    elif n_features == 1:
        labels = qclass(data[:, 0], n_components)
    else:
        labels = hc_partitions(svd_transform(data), [n_components])[n_components]
    resp[rows, labels] = 1.0
    return resp
