"""Reading nutpie's raw arrow traces (``_sampling.read_raw``) against nutpie's own
conversion to a DataTree, run for run: the same compiled models and seeds sampled both
ways must give bitwise the same draws and sample statistics."""

from __future__ import annotations

import numpy as np
import pyarrow
import pytest
import xarray as xr

from bayesgmm import GaussianMixture
from bayesgmm.bayes import _sampling
from bayesgmm.bayes._kernel import make_kernel_model, to_unconstrained
from bayesgmm.datasets import load_faithful
from bayesgmm.priors import resolve_prior


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype == object:  # None and NaN told apart
        return bool(np.array_equal(np.vectorize(repr)(x), np.vectorize(repr)(y)))
    return bool(np.array_equal(x, y, equal_nan=x.dtype.kind == "f"))


def _nutpie_way(results: list, chains: int) -> tuple[np.ndarray, xr.Dataset]:
    """What run_chains did before the raw traces: nutpie's DataTrees, theta and the
    statistics without extra dimensions, chains concatenated."""
    theta = np.concatenate([r["posterior"].to_dataset()["theta"].values for r in results])
    stats = [r["sample_stats"].to_dataset() for r in results]
    keep = [v for v in stats[0].data_vars if set(stats[0][v].dims) <= {"chain", "draw"}]
    merged = xr.concat([s[keep] for s in stats], dim="chain", coords="minimal")
    return theta, merged.assign_coords(chain=np.arange(chains))


def test_raw_traces_give_nutpie_conversions_arrays():
    X = load_faithful().to_numpy()
    prior = resolve_prior("default", X, 3, "tied")
    fit = GaussianMixture(3, covariance_type="tied", prior=prior, random_state=0).fit(X)
    km = make_kernel_model(X, fit.prior_, "tied", 3)
    center = to_unconstrained(
        {"weights": fit.weights_, "means": fit.means_, "covariances": fit.covariances_},
        "tied",
    )
    rng = np.random.default_rng(1)
    starts = [center + 0.3 * rng.standard_normal(center.size) for _ in range(3)]
    # a short warm-up: some chains diverge (messages with gaps), some do not
    kw = dict(draws=150, tune=40, seeds=[11, 12, 13], target_accept=0.3, progressbar=False)
    converted, _ = _sampling.sample_each([km.compiled(s) for s in starts], **kw)
    raw, _ = _sampling.sample_each([km.compiled(s) for s in starts], raw=True, **kw)
    theta_ref, stats_ref = _nutpie_way(converted, 3)
    theta, stats = _sampling.read_raw(raw, 150)

    assert theta.dtype == np.float64
    assert _same(theta, theta_ref)
    assert list(stats.data_vars) == list(stats_ref.data_vars)
    assert {"diverging", "logp", "n_steps", "step_size", "divergence_message"} <= set(stats)
    for name in stats_ref.data_vars:
        assert stats[name].dims == ("chain", "draw"), name
        assert _same(stats[name].values, stats_ref[name].values), name
    for name in ("chain", "draw"):
        assert _same(stats[name].values, stats_ref[name].values)
    drop = {"created_at"}  # the time each was built
    assert {k: v for k, v in stats.attrs.items() if k not in drop} == {
        k: v for k, v in stats_ref.attrs.items() if k not in drop
    }
    diverged = stats_ref["diverging"].values.any(axis=1)
    assert diverged.any()
    assert not diverged.all()


class _FakeTrace:
    def __init__(self, draw, stat):
        self.batches = ([draw], [stat])

    def get_arrow_trace(self):
        return self.batches


def _batches(tuning: list[bool], theta_name: str = "theta"):
    n = len(tuning)
    theta = pyarrow.array(
        [[float(i), -float(i)] for i in range(n)], pyarrow.large_list(pyarrow.float64())
    )
    draw = pyarrow.record_batch({theta_name: theta})
    stat = pyarrow.record_batch(
        {
            "tuning": pyarrow.array(tuning),
            "chain": pyarrow.array(np.zeros(n, dtype=np.uint64)),
            "draw": pyarrow.array(np.arange(n, dtype=np.uint64)),
            "diverging": pyarrow.array([False] * n),
            "logp": pyarrow.array([1.0] * (n - 1) + [None], pyarrow.float64()),
        }
    )
    return draw, stat


def test_raw_reader_reads_a_hand_made_trace():
    draw, stat = _batches([True, True, False, False, False])
    theta, stats = _sampling.read_raw([_sampling.RawRun(_FakeTrace(draw, stat), None)], 3)
    np.testing.assert_array_equal(theta[0], [[2.0, -2.0], [3.0, -3.0], [4.0, -4.0]])
    assert list(stats.data_vars) == ["tuning", "diverging", "logp"]
    np.testing.assert_array_equal(stats["logp"].values, [[1.0, 1.0, np.nan]])
    assert stats["diverging"].dtype == bool
    assert not stats["tuning"].values.any()


@pytest.mark.parametrize(
    ("tuning", "draws", "theta_name", "message"),
    [
        ([True, False, True, False], 2, "theta", "tuning rows first"),
        ([True, False, False], 3, "theta", "then 3 draws"),
        ([True, False, False], 2, "position", "no column 'theta'"),
    ],
)
def test_an_unexpected_raw_layout_is_a_clear_error(tuning, draws, theta_name, message):
    draw, stat = _batches(tuning, theta_name)
    with pytest.raises(RuntimeError, match=message) as info:
        _sampling.read_raw([_sampling.RawRun(_FakeTrace(draw, stat), None)], draws)
    assert "nutpie" in str(info.value)
    assert "chain 0" in str(info.value)
