"""The hierarchical start: the fast agglomeration against a naive reference, and one
tree per model-selection grid (as mclust's one hc per mclustBIC call)."""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import select_model
from bayesgmm.core import em, hc
from bayesgmm.core.hc import _terms, hc_vvv, svd_transform
from bayesgmm.datasets import load_faithful, load_iris


# The O(n^3) agglomeration (every step scans every pair), kept as the reference.
def naive_hc_vvv(Z: np.ndarray, min_clusters: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
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
    lower = np.tril(np.ones((n_rows, n_rows), dtype=bool), -1)

    merges = []
    g = n_rows
    while g > min_clusters:
        block = cost[:g, :g]
        values = block[lower[:g, :g]]
        best = values.min()
        last = int(np.flatnonzero(values == best)[-1])
        rows, cols = np.nonzero(lower[:g, :g])
        j, i = int(rows[last]), int(cols[last])  # i < j
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
        others = np.array([k for k in range(g) if k != i])
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
    return merges


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: svd_transform(load_faithful().to_numpy()),  # many repeated rows: exact ties
        lambda: svd_transform(load_iris().select_dtypes("number").to_numpy()),
        lambda: np.random.default_rng(0).normal(size=(200, 3)),
        lambda: np.repeat(np.random.default_rng(1).integers(0, 4, (30, 2)), 3, axis=0) * 1.0,
    ],
    ids=["faithful", "iris", "normal", "repeated-grid"],
)
def test_merge_sequence_equals_the_naive_scan(make):
    Z = make()
    assert _same(hc_vvv(Z), naive_hc_vvv(Z))
    assert _same(hc_vvv(Z, min_clusters=5), naive_hc_vvv(Z, min_clusters=5))


def test_select_model_builds_one_tree_for_the_grid(monkeypatch):
    """Above the subset size every cell clusters the same subset: one tree in all."""
    monkeypatch.setattr(hc, "HC_SUBSET", 60)
    monkeypatch.setattr(em, "HC_SUBSET", 60)
    monkeypatch.setattr(hc, "_CACHE", {})
    calls = []
    original = hc.hc_vvv
    monkeypatch.setattr(hc, "hc_vvv", lambda Z, *a: calls.append(Z.shape) or original(Z, *a))
    X = np.random.default_rng(5).normal(size=(150, 2))
    sel = select_model(X, [1, 2, 3], ["VVV", "EEE", "VII"], init_params="hc", n_init=1,
                       random_state=0)  # fmt: skip
    assert (sel.table["error"] == "").all()
    assert calls == [(60, 2)]
