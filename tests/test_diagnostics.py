"""Comparison tables: posterior columns equal ArviZ's summary, components aligned."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from bayesgmm import GaussianMixture
from bayesgmm.diagnostics import compare_estimates, compare_models, membership_table
from conftest import TWO_BLOBS

X = TWO_BLOBS.X


def _permuted(model: GaussianMixture, order) -> GaussianMixture:
    """A copy of a fitted model with its components listed in another order."""
    twin = clone(model)
    twin.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        value = getattr(model, attr)
        if model.covariance_type != "tied" or attr in ("weights_", "means_"):
            value = value[list(order)]
        setattr(twin, attr, value)
    return twin


@pytest.fixture(scope="module")
def mle() -> GaussianMixture:
    return GaussianMixture(2, random_state=5, tol=1e-8).fit(X)


def test_posterior_columns_equal_arviz_summary(two_blobs_posterior, mle):
    table = compare_estimates(two_blobs_posterior, mle, ci_prob=0.9, ci_kind="hdi")
    ref = az.summary(
        two_blobs_posterior.idata_,
        var_names=["weights", "means", "covariances"],
        ci_prob=0.9,
        ci_kind="hdi",
        round_to="none",
    )
    ref = pd.DataFrame(ref).loc[table["label"]]
    pairs = {
        "post_mean": "mean",
        "post_sd": "sd",
        "ci_lower": "hdi90_lb",
        "ci_upper": "hdi90_ub",
        "r_hat": "r_hat",
        "ess_bulk": "ess_bulk",
        "ess_tail": "ess_tail",
        "mcse_mean": "mcse_mean",
    }
    for ours, theirs in pairs.items():
        np.testing.assert_allclose(table[ours].to_numpy(float), ref[theirs].to_numpy(float))
    assert len(table) == 2 + 4 + 8


def test_point_estimate_columns_and_flags(two_blobs_posterior, mle):
    table = compare_estimates(two_blobs_posterior, mle).set_index("label")
    map_ = two_blobs_posterior.map_
    for k in range(2):
        assert table.loc[f"weights[{k}]", "map"] == pytest.approx(map_.weights_[k])
        assert table.loc[f"means[{k}, x1]", "map"] == pytest.approx(map_.means_[k, 1])
        assert table.loc[f"covariances[{k}, x0, x1]", "map"] == pytest.approx(
            map_.covariances_[k, 0, 1]
        )
    inside = (table["mle"] >= table["ci_lower"]) & (table["mle"] <= table["ci_upper"])
    np.testing.assert_array_equal(table["mle_in_ci"].astype(bool), inside)
    np.testing.assert_allclose(
        table["shrinkage_sd"], (table["map"] - table["mle"]) / table["post_sd"]
    )
    # the posterior mean's gap, from the draws themselves
    draws = two_blobs_posterior.idata_["posterior"]["means"].values.reshape(-1, 2, 2)
    for k in range(2):
        row = table.loc[f"means[{k}, x0]"]
        sd = draws[:, k, 0].std(ddof=1)
        assert row["mean_shift_sd"] == pytest.approx((draws[:, k, 0].mean() - row["mle"]) / sd)
    # without an MLE the MLE columns are missing values, not zeros
    bare = compare_estimates(two_blobs_posterior)
    assert bare["mle"].isna().all()
    assert bare["mle_in_ci"].isna().all()
    assert bare["map_in_ci"].notna().all()


def test_permuting_the_mle_labels_gives_the_same_table(two_blobs_posterior, mle):
    table = compare_estimates(two_blobs_posterior, mle)
    swapped = compare_estimates(two_blobs_posterior, _permuted(mle, [1, 0]))
    pd.testing.assert_frame_equal(table, swapped)
    # and the MLE rows are matched to the MAP rows, not left in the MLE's own order
    by_label = table.set_index("label")
    assert abs(by_label.loc["means[0, x0]", "mle"] - by_label.loc["means[0, x0]", "map"]) < 0.1


def test_xarray_format_has_a_statistic_dimension(two_blobs_posterior, mle):
    ds = compare_estimates(two_blobs_posterior, mle, fmt="xarray")
    assert ds["means"].dims == ("statistic", "component", "feature")
    assert "post_mean" in ds["statistic"].values
    assert ds.attrs["ci_kind"] == "eti"
    with pytest.raises(ValueError, match="Unknown fmt"):
        compare_estimates(two_blobs_posterior, fmt="csv")


def test_membership_table(two_blobs_posterior, mle):
    table = membership_table(X, mle, two_blobs_posterior, prob=0.9)
    resp = mle.predict_proba(X)
    order = [0, 1] if np.allclose(table["p0"], resp[:, 0]) else [1, 0]
    np.testing.assert_allclose(table[["p0", "p1"]].to_numpy(), resp[:, order])
    np.testing.assert_allclose(table["uncertainty"], 1 - resp.max(1))
    swapped = membership_table(X, _permuted(mle, [1, 0]), two_blobs_posterior, prob=0.9)
    pd.testing.assert_frame_equal(table, swapped)
    assert (table["classification"] == table["post_classification"]).mean() > 0.97
    assert np.all(table["post_p0_lower"] <= table["post_p0_upper"])
    with pytest.raises(ValueError, match="needs a fitted"):
        membership_table(X)


def test_compare_models_point_criteria_and_choices():
    result = compare_models(X, [1, 2, 3], ["full", "spherical"], random_state=0, n_init=2)
    table = result.table
    assert len(table) == 6
    assert {"bic", "aic", "icl", "bic_map", "aic_map", "icl_map"} <= set(table.columns)
    choices = result.choices.set_index("criterion")
    best = table.loc[table["bic"].idxmin()]
    assert choices.loc["bic", "n_components"] == best["n_components"] == 2
    assert "elpd_loo" not in choices.index


def test_compare_models_map_columns_use_the_given_prior():
    from bayesgmm import GaussianMixture

    grid = {p: compare_models(X, [2], ["full"], prior=p, random_state=0, n_init=2).table
            for p in ("mclust", "default")}  # fmt: skip
    # the MAP column is the BIC of a MAP fit under that prior (a direct fit, best of the
    # same number of starts, can only match or beat the grid's)
    for name, table in grid.items():
        direct = GaussianMixture(2, prior=name, n_init=5, random_state=0).fit(X).bic(X)
        assert table["bic_map"].iloc[0] == pytest.approx(direct, rel=1e-3), name
    assert grid["mclust"]["bic_map"].iloc[0] != grid["default"]["bic_map"].iloc[0]
    np.testing.assert_allclose(grid["mclust"]["bic"], grid["default"]["bic"])  # MLE alike


@pytest.mark.slow
def test_compare_models_with_loo_prefers_the_true_k():
    data = X[:, :1]
    result = compare_models(
        data, [1, 2], ["spherical"], posterior=True, draws=300, tune=300, chains=2,
        random_state=0,
    )  # fmt: skip
    table = result.table.set_index("n_components")
    assert table.loc[2, "elpd_loo"] > table.loc[1, "elpd_loo"] + 2 * table.loc[2, "se_loo"]
    assert result.choices.set_index("criterion").loc["elpd_loo", "n_components"] == 2


def test_observed_information_columns_aligned_and_at_the_ci_level(two_blobs_posterior, mle):
    from bayesgmm import observed_information

    swapped = _permuted(mle, [1, 0])
    info = observed_information(swapped, X)
    table = compare_estimates(two_blobs_posterior, mle, information=info, ci_prob=0.9)
    by_label = table.set_index("label")
    direct = observed_information(mle, X).standard_errors()
    # Components of the permuted fit's information are matched back to the MAP labels.
    for label in ("means[0, x0]", "means[1, x1]", "weights[0]"):
        assert by_label.loc[label, "info_se"] == pytest.approx(
            direct[_mle_label(mle, two_blobs_posterior, label)], rel=1e-8
        )
    width = (by_label["info_upper"] - by_label["info_lower"]) / (2 * by_label["info_se"])
    np.testing.assert_allclose(width.dropna(), 1.6448536269514722)


def _mle_label(mle, posterior, label):
    """The label of the same element in the MLE's own component order."""
    from bayesgmm.bayes.relabel import match_to_reference

    perm = match_to_reference(mle.means_[None], posterior.map_._params(), "full")[0]
    name, rest = label.split("[")
    parts = rest.rstrip("]").split(", ")
    parts[0] = str(int(perm[int(parts[0])]))
    return f"{name}[{', '.join(parts)}]"


def test_laplace_columns_aligned_and_near_the_posterior(two_blobs_posterior):
    from bayesgmm import laplace

    map_fit = two_blobs_posterior.map_
    swapped = _permuted(map_fit, [1, 0])
    tree = laplace(swapped, X, draws=2000, random_state=0)
    table = compare_estimates(two_blobs_posterior, laplace=tree, ci_prob=0.9).set_index("label")
    draws = tree["posterior"]["means"].values.reshape(-1, 2, X.shape[1])
    # component 0 of the table is component 1 of the swapped fit
    assert table.loc["means[0, x0]", "laplace_mean"] == pytest.approx(draws[:, 1, 0].mean())
    lo, hi = np.quantile(draws[:, 1, 0], [0.05, 0.95])
    assert table.loc["means[0, x0]", "laplace_lower"] == pytest.approx(lo, rel=1e-3)
    assert table.loc["means[0, x0]", "laplace_upper"] == pytest.approx(hi, rel=1e-3)
    # well-separated blobs: the Gaussian at the MAP is close to the NUTS posterior
    means = table[table.index.str.startswith("means")]
    np.testing.assert_allclose(means["laplace_mean"], means["post_mean"], atol=0.1)
    np.testing.assert_allclose(means["laplace_sd"], means["post_sd"], rtol=0.25)
    assert table["laplace_lower"].lt(table["laplace_upper"]).all()
