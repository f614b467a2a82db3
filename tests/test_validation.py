"""Bad input raises a clear error that names the problem, at the boundary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from bayesgmm import GaussianMixture, select_model
from bayesgmm.datasets import make_mixture

X = make_mixture(60, n_components=2, random_state=0).X


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.column_stack([X[:, 0], np.full(60, np.nan)]), "no observed value in column 1"),
        (np.full((60, 2), np.nan), r"no observed value in column 0, column 1"),
        (np.where(np.arange(120).reshape(60, 2) == 7, np.inf, X), "infinite values"),
        (X[:, 0], "Expected 2D array"),
        (X[None], "dim 3"),
        (X[:1], "minimum of 2"),
        (np.array([["a", "b"], ["c", "d"]]), "must contain only numbers"),
    ],
)
def test_bad_arrays(bad, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(1).fit(bad)


def test_fewer_samples_than_components():
    with pytest.raises(ValueError, match="at least n_components=5 samples, got n_samples=3"):
        GaussianMixture(5).fit(X[:3])


def test_non_numeric_dataframe_column_is_named():
    df = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "species": ["x"] * 60})
    with pytest.raises(ValueError, match=r"non-numeric columns \['species'\]"):
        GaussianMixture(2).fit(df)


def test_feature_names_and_count_checked_at_predict():
    df = pd.DataFrame(X, columns=["height", "weight"])
    gm = GaussianMixture(2, random_state=0).fit(df)
    np.testing.assert_array_equal(gm.feature_names_in_, ["height", "weight"])
    assert gm.n_features_in_ == 2
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        GaussianMixture(2, random_state=0).fit(X).predict(np.c_[X, X[:, 0]])
    with pytest.raises(ValueError, match="feature names"):
        gm.predict(df.rename(columns={"weight": "mass"}))


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score", "score_samples", "bic", "aic", "icl"]
)
def test_unfitted_model(method):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(GaussianMixture(2), method)(X)
    with pytest.raises(NotFittedError):
        GaussianMixture(2).sample(3)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tol": -1.0}, "`tol` must be >= 0.0; got -1.0"),
        ({"covariance_type": "ful"}, "Unknown covariance_type 'ful'; expected one of"),
        ({"n_components": 0}, "`n_components` must be >= 1"),
        ({"n_components": 2.5}, "`n_components` must be an integer"),
        ({"reg_covar": -1e-3}, "`reg_covar` must be >= 0.0"),
        ({"max_iter": -1}, "`max_iter` must be >= 0"),
        ({"n_init": 0}, "`n_init` must be >= 1"),
        ({"init_params": "kmedoids"}, "Unknown init_params 'kmedoids'"),
        ({"tol": float("nan")}, "`tol` must be finite"),
        ({"warm_start": "yes"}, "`warm_start` must be True or False"),
    ],
)
def test_invalid_hyperparameters(params, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**{"n_components": 2, **params}).fit(X)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"weights_init": [0.3, 0.3]}, "`weights_init` must sum to 1; got a sum of 0.6"),
        ({"weights_init": [0.5, 0.5, 0.0]}, r"`weights_init` must have shape \(2,\)"),
        ({"weights_init": [1.5, -0.5]}, r"`weights_init` must lie in \[0, 1\]"),
        ({"means_init": np.zeros((3, 2))}, r"`means_init` must have shape \(2, 2\)"),
        ({"means_init": [[0, np.nan], [1, 1]]}, "`means_init` contains NaN"),
        (
            {"precisions_init": np.stack([np.eye(2), -np.eye(2)])},
            r"`precisions_init\[1\]` is not positive definite",
        ),
        (
            {"precisions_init": np.stack([np.eye(2), [[1, 0.5], [0, 1]]])},
            r"`precisions_init\[1\]` is not symmetric",
        ),
        ({"precisions_init": np.eye(2)}, r"`precisions_init` .* must have shape \(2, 2, 2\)"),
        (
            {"covariance_type": "diag", "precisions_init": [[1, 1], [1, 0]]},
            "must be strictly positive",
        ),
    ],
)
def test_invalid_initial_values(params, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, **params).fit(X)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(59), r"one weight per sample; got shape \(59,\)"),
        (-np.ones(60), "non-negative"),
        (np.zeros(60), "positive sum"),
        (np.r_[np.nan, np.ones(59)], "NaN or infinite"),
    ],
)
def test_invalid_sample_weight(weights, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2).fit(X, sample_weight=weights)


def test_sample_needs_positive_integer():
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        gm.sample(0)
    with pytest.raises(ValueError, match="positive integer"):
        gm.sample(2.5)


def test_select_model_bad_arguments():
    with pytest.raises(ValueError, match="Unknown criterion 'bix'"):
        select_model(X, criterion="bix")
    with pytest.raises(ValueError, match="integers >= 1"):
        select_model(X, n_components=[0, 1])
    with pytest.raises(ValueError, match="Unknown covariance_type"):
        select_model(X, covariance_types=["full", "VVV"])


def test_select_model_records_failed_cells():
    small = X[:4]
    sel = select_model(small, n_components=[1, 5], covariance_types=["diag"], random_state=0)
    failed = sel.table.set_index("n_components").loc[5]
    assert np.isnan(failed["bic"])
    assert "exceeds the 4 samples" in failed["error"]
    assert sel.best_params["n_components"] == 1


def test_select_model_keeps_dataframe_feature_names():
    df = pd.DataFrame(X, columns=["height", "weight"])
    sel = select_model(df, n_components=[1, 2], covariance_types=["diag"], random_state=0)
    np.testing.assert_array_equal(sel.best_estimator.feature_names_in_, ["height", "weight"])
