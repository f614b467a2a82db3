"""One interval level for the whole package, changed everywhere by one setting.

Every interval (credible, bootstrap, Wald, membership, the report's table and the CLI's
CSV files) is checked against an independent computation at the level expected: NumPy
quantiles of the draws or replicates, scipy's normal quantile for the Wald interval, the
membership probabilities recomputed draw by draw with scipy.stats.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import arviz as az
import joblib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal, norm

from bayesgmm import (
    GaussianMixture,
    bootstrap,
    compare_estimates,
    default_ci_prob,
    membership_table,
    observed_information,
)
from bayesgmm._intervals import level_columns, level_label, level_suffix
from bayesgmm.cli import main
from bayesgmm.report import FitResult, estimates_table, fit_report
from conftest import TWO_BLOBS

X = TWO_BLOBS.X
#: None: the package's default (ArviZ's own default, 0.89); else set through ArviZ.
SETTINGS = [None, 0.5]


def _setting(prob):
    if prob is None:
        return contextlib.nullcontext()
    return az.rc_context(rc={"stats.ci_prob": prob})


def _expected(prob) -> float:
    return 0.89 if prob is None else prob


def _tails(prob) -> list[float]:
    return [(1.0 - prob) / 2.0, (1.0 + prob) / 2.0]


@pytest.fixture(scope="module")
def mle() -> GaussianMixture:
    return GaussianMixture(2, random_state=5, tol=1e-8).fit(X)


@pytest.fixture(scope="module")
def boot(mle):
    return bootstrap(mle, X, n_boot=20, random_state=1)


def test_default_is_arviz_default():
    assert az.rcParams["stats.ci_prob"] == 0.89  # no arvizrc in the test environment
    assert default_ci_prob() == 0.89
    with az.rc_context(rc={"stats.ci_prob": 0.7}):
        assert default_ci_prob() == 0.7
    assert default_ci_prob() == 0.89


def test_level_labels_and_columns():
    assert level_label(0.89) == "89%"
    assert level_suffix(0.945) == "94.5"
    table = pd.DataFrame(columns=["mle", "lower", "ci_upper", "map_in_ci", "mle_se"])
    out = level_columns(table, 0.95)
    assert list(out.columns) == ["mle", "lower_95", "ci_upper_95", "map_in_ci_95", "mle_se"]
    assert list(table.columns) == ["mle", "lower", "ci_upper", "map_in_ci", "mle_se"]


@pytest.mark.parametrize("prob", [0.0, 1.0, 1.5, True, "0.9"])
def test_bad_level_is_refused(prob, boot):
    with pytest.raises(ValueError, match="`prob` must be a number strictly between 0 and 1"):
        boot.intervals(prob)


@pytest.mark.parametrize("setting", SETTINGS)
def test_every_interval_uses_the_one_level(setting, two_blobs_posterior, mle, boot):
    post = two_blobs_posterior
    prob = _expected(setting)
    lo_q, hi_q = _tails(prob)
    info = observed_information(mle, X)
    with _setting(setting):
        table = compare_estimates(post, mle, boot, information=info)
        members = membership_table(X, mle, post)
        interval = post.membership_interval(X)
        boot_bounds = boot.intervals()
        boot_summary = boot.summary()
        wald = info.intervals()
        result = FitResult(
            "blobs.csv", pd.DataFrame(X, columns=["x0", "x1"]), 2, "full",
            ("mle", "map", "posterior"), 0, {}, {"mle": mle, "map": post.map_, "posterior": post},
            bootstrap=boot, information=info,
        )  # fmt: skip
        report_table = estimates_table(result)

    # Credible intervals: quantiles of the (relabelled) posterior draws.
    means = post.idata_["posterior"]["means"].values.reshape(-1, 2, 2)
    rows = table.set_index("label")
    for k in range(2):
        for j, name in enumerate(["x0", "x1"]):
            got = rows.loc[f"means[{k}, {name}]", ["ci_lower", "ci_upper"]].to_numpy(float)
            np.testing.assert_allclose(got, np.quantile(means[:, k, j], [lo_q, hi_q]), rtol=1e-10)
    # Bootstrap percentile intervals: quantiles of the replicates (as a set: the table
    # aligns the components to the posterior's).
    weights = boot.draws["weights"].values.reshape(-1, 2)
    reference = np.quantile(weights, [lo_q, hi_q], axis=0)
    np.testing.assert_allclose(boot_bounds["weights"].values, reference, rtol=1e-12)
    np.testing.assert_allclose(
        np.sort(boot_summary.query("parameter == 'weights'")["lower"]), np.sort(reference[0])
    )
    w = table[table["parameter"] == "weights"]
    np.testing.assert_allclose(np.sort(w["mle_lower"]), np.sort(reference[0]), rtol=1e-12)
    np.testing.assert_allclose(np.sort(w["mle_upper"]), np.sort(reference[1]), rtol=1e-12)
    # Wald intervals: estimate +- z se with scipy's normal quantile.
    z = norm.ppf(hi_q)
    np.testing.assert_allclose(table["info_upper"] - table["info_lower"], 2 * z * table["info_se"])
    np.testing.assert_allclose(wald["upper"] - wald["lower"], 2 * z * wald["se"])
    # Membership intervals: responsibilities recomputed draw by draw with scipy.
    draws = post.idata_["posterior"]
    stacked = {v: draws[v].values.reshape(-1, *draws[v].shape[2:]) for v in draws.data_vars}
    resp = []
    for s in range(stacked["weights"].shape[0]):
        dens = np.column_stack(
            [
                stacked["weights"][s, k]
                * multivariate_normal(stacked["means"][s, k], stacked["covariances"][s, k]).pdf(X)
                for k in range(2)
            ]
        )
        resp.append(dens / dens.sum(axis=1, keepdims=True))
    reference = np.quantile(np.stack(resp), [lo_q, hi_q], axis=0)  # (2, N, K)
    np.testing.assert_allclose(np.moveaxis(interval, -1, 0), reference, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(members["post_p1_lower"], reference[0, :, 1], atol=1e-10)
    np.testing.assert_allclose(members["post_p1_upper"], reference[1, :, 1], atol=1e-10)
    # The report's table is compare_estimates's, at the same level.
    pd.testing.assert_frame_equal(report_table, table)
    # Every result says its level.
    for carrier in (table, members, boot_bounds, boot_summary, wald, report_table):
        assert carrier.attrs["ci_prob"] == prob


def test_report_carries_the_level(two_blobs_posterior, mle, boot):
    post = two_blobs_posterior
    result = FitResult(
        "blobs.csv", pd.DataFrame(X, columns=["x0", "x1"]), 2, "full",
        ("mle", "map", "posterior"), 0, {"draws": 300, "tune": 300, "chains": 2},
        {"mle": mle, "map": post.map_, "posterior": post}, bootstrap=boot,
    )  # fmt: skip
    with az.rc_context(rc={"stats.ci_prob": 0.5}):
        table, page, summary = fit_report(result)
    assert table.attrs["ci_prob"] == 0.5
    for text in ("50% credible interval", "MLE 50% interval (bootstrap)", "prob_lower_50"):
        assert text in page
    assert "89%" not in page
    assert "94%" not in page
    assert "intervals at 50%" in summary
    assert "ci (50%)" in summary


def _fit_cli(data: Path, out: Path) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        args = ["--components", "2", "--methods", "mle,map", "--bootstrap", "20", "--quiet"]
        code = main(["fit", str(data), *args, "--seed", "3", "--out", str(out)])
    assert code == 0
    return stdout.getvalue()


@pytest.mark.parametrize("setting", SETTINGS)
def test_cli_estimates_csv_uses_the_one_level(setting, tmp_path):
    data = tmp_path / "blobs.csv"
    pd.DataFrame(X, columns=["x0", "x1"]).to_csv(data, index=False)
    prob = _expected(setting)
    with _setting(setting):
        summary = _fit_cli(data, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "estimates.csv")
    suffix = level_suffix(prob)
    assert {f"mle_lower_{suffix}", f"mle_upper_{suffix}"} <= set(table.columns)
    assert not {"mle_lower", "mle_upper"} & set(table.columns)
    assert f"intervals at {level_label(prob)}" in summary
    # The interval itself is at that level: the bootstrap of the same fit and seed.
    models = joblib.load(tmp_path / "out" / "models.joblib")
    boot = bootstrap(models["mle"], pd.read_csv(data), n_boot=20, random_state=3)
    weights = table[table["parameter"] == "weights"]
    reference = np.quantile(boot.draws["weights"].values.reshape(-1, 2), _tails(prob), axis=0)
    np.testing.assert_allclose(
        np.sort(weights[f"mle_lower_{suffix}"]), np.sort(reference[0]), rtol=1e-6
    )
