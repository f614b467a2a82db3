"""The per-draw assignment of the relabelling (``relabel.assign_each``) against
scipy's ``linear_sum_assignment`` called draw by draw."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from bayesgmm.bayes.relabel import BRUTE_FORCE_MAX_COMPONENTS, assign_each


def _solver_loop(cost: np.ndarray) -> np.ndarray:
    perms = np.empty(cost.shape[:2], dtype=np.intp)
    for s in range(cost.shape[0]):
        rows, cols = linear_sum_assignment(cost[s])
        perms[s, cols] = rows
    return perms


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_equals_the_solver_draw_by_draw(k):
    rng = np.random.default_rng(k)
    cost = rng.exponential(size=(400, k, k)) * rng.choice([1e-3, 1.0, 1e4], size=(400, 1, 1))
    cost[1] = 1.0  # every assignment ties: the solver's choice
    cost[2] = np.add.outer(np.arange(k), np.arange(k))  # ties again (a sum of offsets)
    if k > 1:
        cost[3, 0, 0] = np.inf  # a feasible matrix with an infinite entry
    # near ties: assignments a rounding apart, where the summation order might decide
    cost[5:60] = 1.0 + rng.uniform(-1e-15, 1e-15, size=(55, k, k))
    got = assign_each(cost)
    np.testing.assert_array_equal(got, _solver_loop(cost))
    assert got.dtype == np.intp
    # each row a permutation
    np.testing.assert_array_equal(np.sort(got, axis=1), np.broadcast_to(np.arange(k), got.shape))


def test_brute_force_covers_the_common_sizes():
    assert BRUTE_FORCE_MAX_COMPONENTS >= 3


def test_a_nan_cost_is_the_solvers_error():
    cost = np.ones((3, 3, 3))
    cost[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="invalid"):
        _solver_loop(cost)  # the reference's own behaviour
    with pytest.raises(ValueError, match="invalid"):
        assign_each(cost)


def test_no_draws():
    assert assign_each(np.empty((0, 3, 3))).shape == (0, 3)
