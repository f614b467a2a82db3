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
        select_model(X, covariance_types=["full", "XYZ"])


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


def test_random_state_accepts_a_generator_everywhere():
    """A Generator seeds each call with one integer drawn from it: the same generator
    state gives the same result, and the generator advances."""
    from bayesgmm import bootstrap
    from bayesgmm._validation import as_generator, check_random_state

    gen = np.random.default_rng(0)
    seed = int(np.random.default_rng(0).integers(0, 2**32))
    by_gen = GaussianMixture(2, init_params="random", random_state=gen).fit(X)
    by_seed = GaussianMixture(2, init_params="random", random_state=seed).fit(X)
    np.testing.assert_array_equal(by_gen.means_, by_seed.means_)
    assert not np.array_equal(  # the generator has advanced
        check_random_state(gen).randint(2**31 - 1, size=4),
        check_random_state(np.random.default_rng(0)).randint(2**31 - 1, size=4),
    )
    one = select_model(X, [1, 2], ["diag"], random_state=np.random.default_rng(3))
    two = select_model(X, [1, 2], ["diag"], random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(one.table["bic"], two.table["bic"])
    sample = make_mixture(10, n_components=2, random_state=np.random.default_rng(1)).X
    np.testing.assert_array_equal(
        sample, make_mixture(10, n_components=2, random_state=np.random.default_rng(1)).X
    )
    boot = bootstrap(by_seed, X, n_boot=3, random_state=np.random.default_rng(0))
    assert boot.draws.sizes["draw"] == 3
    assert isinstance(as_generator(np.random.RandomState(0)), np.random.Generator)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("seed", "must be None, an int, a numpy Generator or a RandomState; got 'seed'"),
        (1.5, "must be None, an int, a numpy Generator or a RandomState; got 1.5"),
        (-1, r"must lie in \[0, 2\*\*32 - 1\]; got -1"),
    ],
)
def test_random_state_error_says_what_is_accepted(bad, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, random_state=bad).fit(X)
    with pytest.raises(ValueError, match=message):
        select_model(X, [1], ["diag"], random_state=bad)


def test_select_model_keeps_other_cells_when_one_raises_anything(monkeypatch):
    """A cell failing with any exception (not only ValueError) gets NaN criteria and
    its error; the other cells and the choice are unaffected."""
    original = GaussianMixture.fit

    def flaky(self, X, y=None, sample_weight=None):
        if self.n_components == 2:
            raise FloatingPointError("overflow in the E-step")
        return original(self, X, y, sample_weight)

    monkeypatch.setattr(GaussianMixture, "fit", flaky)
    sel = select_model(X, [1, 2, 3], ["diag"], random_state=0)
    failed = sel.table.set_index("n_components").loc[2]
    assert failed["error"] == "FloatingPointError: overflow in the E-step"
    assert np.isnan(failed["bic"])
    assert np.isfinite(sel.table.set_index("n_components").loc[[1, 3], "bic"]).all()


def test_select_model_says_which_cells_failed_and_why():
    from bayesgmm.selection import SelectionError

    const = np.c_[X[:, 0], np.full(len(X), 2.0)]
    with pytest.raises(SelectionError, match=r"Every fit of the grid \(2 cells\) failed") as info:
        select_model(const, [1, 2], ["full"], prior="default", random_state=0)
    message = str(info.value)
    assert "K=1 full, K=2 full: ValueError: " in message
    assert "constant feature(s) 'column 1'" in message
    assert list(info.value.table["n_components"]) == [1, 2]


def test_select_model_on_mixed_units_keeps_mle_and_map():
    """Income (~8e4) and rate (~0.05): the default prior used to call the data singular,
    and the MAP grid's failure sank the MLE results."""
    from bayesgmm import compare_models

    rng = np.random.default_rng(0)
    data = np.c_[rng.normal(8e4, 2e4, 120), rng.normal(0.05, 0.01, 120)]
    sel = select_model(data, [1, 2], ["full", "diag"], prior="default", random_state=0)
    assert (sel.table["error"] == "").all()
    comparison = compare_models(data, [1, 2], ["full"], n_init=2, random_state=0)
    assert np.isfinite(comparison.table[["bic", "bic_map"]].to_numpy()).all()


def test_select_model_warns_when_the_chosen_model_is_degenerate():
    """Three distinct rows, repeated: K=3 puts a component on each row, and its
    likelihood (covariances at the reg_covar floor) wins every criterion."""
    from bayesgmm import DegenerateFitWarning

    rows = np.repeat(np.random.default_rng(2).normal(size=(3, 2)), 10, axis=0)
    with pytest.warns(DegenerateFitWarning, match=r"chosen by BIC \(K=3, 'full'\) is degenerate"):
        sel = select_model(rows, [1, 2, 3], ["full"], random_state=0)
    assert "rest on 1, 1, 1 effective" in sel.table.set_index("n_components").loc[3, "degenerate"]
    assert sel.best_params["n_components"] == 3
