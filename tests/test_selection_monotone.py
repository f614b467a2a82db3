"""select_model's grid: the log-likelihood never falls as K grows within a family.

A K + 1 mixture can always reach a K mixture's likelihood, so a grid whose
log-likelihood falls with K rests on local optima (issue 11: MASS crabs, full
covariances, K = 4, 5, 6: -1270.0, -1276.6, -1333.1; faithful with mclust's start:
EEE K = 6, 7 and EEI K = 7). The repair refits such a cell from the K - 1 fit with a
split component (bayesgmm.core.split).

mclust's published faithful cells (tests/test_families.py, all K <= 3) are fits from
the hc start and are not refitted. With the repair, faithful's K = 4 EVE, VVE and EEV
cells do get refitted (log-likelihood -1133.2, -1125.0, -1128.0 from the hc start ->
-1120.4, -1115.6, -1118.9), so they can differ from mclust's own K = 4 figures, which
come from the hc start alone; ``monotone=False`` gives the unrepaired table.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture, select_model
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.split import split_component, split_directions, split_order
from bayesgmm.datasets import load_diabetes, load_faithful, load_iris, make_mixture

CRABS = Path(__file__).parent / "data" / "crabs.csv"  # MASS::crabs, see data/SOURCES.md
HC = {"init_params": "hc", "n_init": 1, "tol": 1e-8, "max_iter": 2000, "reg_covar": 0.0}
RTOL = 1e-6


def load_crabs() -> pd.DataFrame:
    return pd.read_csv(CRABS)[["FL", "RW", "CL", "CW", "BD"]]


def falls(table: pd.DataFrame, rtol: float = RTOL) -> list[tuple[str, int, float, float]]:
    """Cells whose log-likelihood is below the previous K's of the same family."""
    out = []
    for cov, rows in table.groupby("covariance_type", sort=False):
        rows = rows.sort_values("n_components")
        ll = rows["log_likelihood"].to_numpy()
        ks = rows["n_components"].to_numpy()
        for i in range(1, len(ll)):
            both = np.isfinite(ll[i - 1]) and np.isfinite(ll[i])
            if both and ll[i] < ll[i - 1] - rtol * abs(ll[i - 1]):
                out.append((cov, int(ks[i]), float(ll[i - 1]), float(ll[i])))
    return out


def scipy_log_density(X: np.ndarray, gm_params, cov: str) -> np.ndarray:
    """Naive mixture log density with scipy.stats, component by component."""
    weights, means, covariances, _ = gm_params
    k, d = means.shape
    full = get_covariance_model(cov).to_full(covariances, k, d)
    dens = sum(
        w * stats.multivariate_normal(m, s).pdf(X)
        for w, m, s in zip(weights, means, full, strict=True)
    )
    return np.log(dens)


def _fit(X, k, cov, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(k, covariance_type=cov, **{**HC, **kw}).fit(X)


# -- the split itself -----------------------------------------------------------------------
@pytest.mark.parametrize("cov", ["VVV", "EEE", "EEI", "VEI", "VII", "EEV"])
def test_split_along_zero_is_the_same_mixture_and_halves_the_weight(cov):
    X = load_faithful().to_numpy()
    gm = _fit(X, 2, cov)
    params = gm._params()
    direction = np.array([0.3, 2.0])
    for j in range(2):
        same = split_component(params, j, np.zeros(2), cov)
        np.testing.assert_allclose(
            scipy_log_density(X, same, cov), scipy_log_density(X, params, cov), rtol=1e-12
        )
        moved = split_component(params, j, direction, cov)
        assert moved.weights.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(moved.weights[[j, 2]], params.weights[j] / 2)
        np.testing.assert_allclose(moved.means[j], params.means[j] - direction)
        np.testing.assert_allclose(moved.means[2], params.means[j] + direction)
        full = get_covariance_model(cov).to_full(moved.covariances, 3, 2)
        np.testing.assert_allclose(full[2], full[j])
        # the stored precision factors still invert the stored covariances
        np.testing.assert_allclose(
            get_covariance_model(cov).covariances_from_precision_cholesky(
                moved.precisions_cholesky
            ),
            moved.covariances,
            rtol=1e-10,
            atol=1e-12,
        )


@pytest.mark.parametrize("cov", ["EII", "EEE", "VVI"])
def test_split_gain_is_the_second_order_change_of_the_log_likelihood(cov):
    """Finite differences: ll(split by c a) - ll = gain c^2 + O(c^4) (odd terms vanish,
    by symmetry)."""
    X = load_faithful().to_numpy()
    params = _fit(X, 2, cov)._params()
    directions, gains = split_directions(X, params, cov)
    base = scipy_log_density(X, params, cov).sum()
    for j in range(2):
        errors = []
        for c in (1e-2, 1e-3):
            split = split_component(params, j, c * directions[j], cov)
            change = scipy_log_density(X, split, cov).sum() - base
            errors.append(abs(change / c**2 - gains[j]))
        assert errors[1] <= 1e-3 * abs(gains[j])
        assert errors[1] < errors[0] / 30  # the error shrinks as c^2
        # direction: one standard deviation of the component's points along their axis
        resp = GaussianMixture.predict_proba(_fit(X, 2, cov), X)[:, j]
        centred = X - params.means[j]
        spread = (centred * resp[:, None]).T @ centred / resp.sum()
        top = np.linalg.eigvalsh(spread)[-1]
        assert directions[j] @ directions[j] == pytest.approx(top, rel=1e-8)


def test_split_gain_vanishes_at_an_unconstrained_maximum():
    X = load_faithful().to_numpy()
    params = _fit(X, 2, "VVV", tol=1e-12, max_iter=20000)._params()
    _, gains = split_directions(X, params, "VVV")
    np.testing.assert_array_equal(gains, 0.0)  # rounding noise is set to exactly zero
    _, gains = split_directions(X, _fit(X, 2, "EEE")._params(), "EEE")
    assert np.all(gains > 0)  # a constrained fit: the points spread beyond the model


def test_split_order_puts_largest_gain_then_largest_weight_first():
    assert split_order(np.array([1.0, 5.0, 3.0]), np.array([0.5, 0.2, 0.3])).tolist() == [1, 2, 0]
    assert split_order(np.zeros(3), np.array([0.2, 0.5, 0.3])).tolist() == [1, 2, 0]  # weight
    assert split_order(np.array([2.0, 0, 0]), np.array([0.2, 0.5, 0.3])).tolist() == [0, 1, 2]


# -- the grid -----------------------------------------------------------------------------
def _grid(X, ks, types, monotone, **kw):
    return select_model(X, ks, types, monotone=monotone, **kw).table


def test_faithful_grid_from_mclusts_start_never_falls():
    """mclust's start (hc) on faithful: EEE falls at K = 6, 7 and EEI at 7 unrepaired."""
    X = load_faithful()
    before = _grid(X, range(1, 8), ["EEE", "EEI"], False, **HC)
    after = _grid(X, range(1, 8), ["EEE", "EEI"], True, **HC)
    assert falls(before), "the data no longer exercise the repair"
    assert falls(after) == []
    # the repair only ever raises a cell; untouched cells are the same fits
    gain = after["log_likelihood"].to_numpy() - before["log_likelihood"].to_numpy()
    assert np.all(gain >= -1e-9 * before["log_likelihood"].abs().to_numpy())
    repaired = after["start"] != "hc"
    assert repaired.any()
    np.testing.assert_array_equal(gain[~repaired.to_numpy()], 0.0)
    assert after.loc[repaired, "start"].str.match(r"(split|copy) \d+ of K=\d+").all()
    # mclust's K <= 3 cells (the published ones) are fits from the hc start
    assert (after.loc[after["n_components"] <= 3, "start"] == "hc").all()


@pytest.mark.parametrize(
    ("make", "types", "settings"),
    [
        # issue 11's case: k-means starts, as select_model's defaults
        (lambda: load_crabs(), ["full"], {"random_state": 0}),
        (lambda: make_mixture(500, n_components=3, random_state=2).X, ["diag"],
         {"random_state": 0}),
    ],
    ids=["crabs-full", "simulated-2d-diag"],
)  # fmt: skip
def test_grid_with_kmeans_starts_never_falls(make, types, settings):
    X = make()
    before = _grid(X, range(1, 8), types, False, **settings)
    after = _grid(X, range(1, 8), types, True, **settings)
    assert falls(before), "the data no longer exercise the repair"
    assert falls(after) == []
    assert np.all(after["log_likelihood"] >= before["log_likelihood"] - 1e-9)


def test_a_failed_cell_is_refitted_from_the_smaller_fit(monkeypatch):
    """A cell whose own fit raises gets the split refit (its error only if that fails)."""
    X = load_faithful()
    original = GaussianMixture.fit

    def no_fresh_k3(self, X, y=None, sample_weight=None):
        if self.n_components == 3 and self.means_init is None:
            raise FloatingPointError("the fresh start failed")
        return original(self, X, y, sample_weight)

    monkeypatch.setattr(GaussianMixture, "fit", no_fresh_k3)
    table = select_model(X, [1, 2, 3], ["VVV"], **HC).table.set_index("n_components")
    assert table.loc[3, "error"] == ""
    assert table.loc[3, "start"].startswith(("split", "copy"))
    assert table.loc[3, "log_likelihood"] >= table.loc[2, "log_likelihood"]
    table = select_model(X, [1, 2, 3], ["VVV"], monotone=False, **HC).table
    assert table.set_index("n_components").loc[3, "error"].startswith("FloatingPointError")


@pytest.mark.slow
@pytest.mark.parametrize(
    "load",
    [load_faithful, load_crabs, load_diabetes, load_iris],
    ids=["faithful", "crabs", "diabetes", "iris"],
)
def test_all_family_grid_never_falls_on_real_data(load):
    X = load().select_dtypes("number")
    before = _grid(X, range(1, 10), "all", False, **HC)
    after = _grid(X, range(1, 10), "all", True, **HC)
    assert falls(after) == [], falls(after)
    ok = np.isfinite(before["log_likelihood"]).to_numpy()
    lb, la = before["log_likelihood"].to_numpy()[ok], after["log_likelihood"].to_numpy()[ok]
    assert np.all(la >= lb - 1e-9 * np.abs(lb))
    # no cell that its own start could fit fails after the repair
    assert (after["error"][ok] == "").all()


@pytest.mark.parametrize(
    ("mclust", "sklearn"), [("EEE", "tied"), ("VVI", "diag"), ("VII", "spherical")]
)
def test_precisions_init_under_mclusts_names_as_under_sklearns(mclust, sklearn):
    """The split refits pass precisions_init: its check dispatches on the covariance
    table's storage, so mclust's names take what their scikit-learn aliases take."""
    X = load_faithful().to_numpy()
    gm = GaussianMixture(2, covariance_type=sklearn, random_state=0).fit(X)
    given = {"weights_init": gm.weights_, "means_init": gm.means_,
             "precisions_init": gm.precisions_}  # fmt: skip
    a = GaussianMixture(2, covariance_type=sklearn, **given).fit(X)
    b = GaussianMixture(2, covariance_type=mclust, **given).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    bad = -np.asarray(gm.precisions_)
    with pytest.raises(ValueError, match="precisions_init"):
        GaussianMixture(2, covariance_type=mclust, precisions_init=bad).fit(X)


def test_map_grids_are_not_refitted(monkeypatch):
    """With a prior each K maximizes its own posterior: no likelihood repair."""
    import bayesgmm.selection as selection

    def fail(*args, **kwargs):
        raise AssertionError("a MAP cell was refitted")

    monkeypatch.setattr(selection, "_not_below", fail)
    table = select_model(load_faithful(), [1, 2, 3], ["EEE", "VVV"], prior="default", **HC).table
    assert (table["start"] == "hc").all()
    assert (table["error"] == "").all()
