"""EM against scikit-learn at the same start; properties of the objective and weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from bayesgmm import GaussianMixture
from bayesgmm.core.covariance import CollapsedComponentError, get_covariance_model
from bayesgmm.datasets import load_faithful, make_mixture


def shared_start(X, k, cov_type, seed=0):
    """Starting weights, means and precisions both implementations accept."""
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    means = X[rng.choice(X.shape[0], size=k, replace=False)]
    weights = np.full(k, 1.0 / k)
    full_prec = np.linalg.inv(np.atleast_2d(np.cov(X.T)) + 1e-3 * np.eye(d))
    prec = get_covariance_model(cov_type).from_full(np.repeat(full_prec[None], k, axis=0))
    return weights, means, prec


def test_matches_sklearn_from_the_same_start(dataset, covariance_type):
    X, k = dataset
    weights, means, prec = shared_start(X, k, covariance_type)
    kwargs = dict(
        n_components=k,
        covariance_type=covariance_type,
        weights_init=weights,
        means_init=means,
        precisions_init=prec,
        tol=1e-10,
        max_iter=300,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(**kwargs).fit(X)
        ref = SkGaussianMixture(**kwargs).fit(X)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.score(X), ref.score(X), rtol=1e-8)
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-8)
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=1e-8)
    np.testing.assert_allclose(ours.weights_, ref.weights_, atol=1e-6)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.precisions_, ref.precisions_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-8)
    assert ours.bic(X) == pytest.approx(ref.bic(X), rel=1e-8)
    assert ours.aic(X) == pytest.approx(ref.aic(X), rel=1e-8)


@pytest.mark.parametrize("init_params", ["kmeans", "random", "random_from_data"])
def test_same_random_state_gives_sklearns_fit(covariance_type, init_params):
    """Our starts draw the same random numbers as scikit-learn's."""
    X = load_faithful().to_numpy()
    kwargs = dict(
        covariance_type=covariance_type, init_params=init_params, random_state=7, tol=1e-8
    )
    ours = GaussianMixture(2, max_iter=500, **kwargs).fit(X)
    ref = SkGaussianMixture(2, max_iter=500, **kwargs).fit(X)
    if covariance_type == "tied" and init_params == "random_from_data":
        # scikit-learn's tied start sums x x^T over *all* rows, not weighted by the
        # one-hot responsibilities, so its start is a different (too wide) covariance.
        # Ours is the weighted scatter; it must not end worse.
        assert ours.score(X) >= ref.score(X) - 1e-9
        return
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-6)


def test_sample_matches_sklearn(covariance_type):
    X = make_mixture(300, n_components=2, random_state=1).X
    ours = GaussianMixture(2, covariance_type=covariance_type, random_state=3).fit(X)
    ref = SkGaussianMixture(2, covariance_type=covariance_type, random_state=3).fit(X)
    Xo, yo = ours.sample(50)
    Xr, yr = ref.sample(50)
    np.testing.assert_array_equal(yo, yr)
    np.testing.assert_allclose(Xo, Xr, rtol=1e-6, atol=1e-8)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 4),
    d=st.integers(1, 4),
    cov_type=st.sampled_from(["full", "tied", "diag", "spherical"]),
    init=st.sampled_from(["kmeans", "random"]),
)
def test_objective_never_decreases(seed, k, d, cov_type, init):
    data = make_mixture(40 * k * d, n_components=k, n_features=d, random_state=seed)
    gm = GaussianMixture(
        k,
        covariance_type=cov_type,
        reg_covar=0.0,
        tol=0.0,
        max_iter=60,
        init_params=init,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            gm.fit(data.X)
        except CollapsedComponentError:
            # With reg_covar=0 a component can shrink onto one point; whether its
            # covariance fails to factorize at iteration 16 or 17 is decided by
            # rounding. Such draws say nothing about monotonicity (as below).
            assume(False)
    lb = gm.lower_bounds_
    assert lb.shape == (gm.n_iter_,)
    # A component that collapsed onto a single point (variance at rounding level,
    # possible with reg_covar=0) has an unbounded likelihood: rounding, not EM, then
    # moves the objective. Such draws say nothing about monotonicity.
    variances = np.diagonal(
        get_covariance_model(cov_type).to_full(gm.covariances_, k, d), axis1=1, axis2=2
    )
    assume(variances.min() > 1e-8 * data.X.var(axis=0).min())
    steps = np.diff(lb)
    assert np.all(steps >= -1e-10 * np.abs(lb[1:])), steps.min()
    # lower_bound_ is the per-sample log-likelihood at the last E-step
    assert gm.lower_bound_ == lb[-1]


def test_sample_weight_equals_repeated_rows(covariance_type):
    data = make_mixture(120, n_components=2, n_features=2, random_state=5)
    rng = np.random.default_rng(0)
    w = rng.integers(0, 4, size=120)
    X_rep = np.repeat(data.X, w, axis=0)
    weights, means, prec = shared_start(data.X, 2, covariance_type, seed=1)
    kwargs = dict(
        covariance_type=covariance_type,
        weights_init=weights,
        means_init=means,
        precisions_init=prec,
        tol=1e-10,
        max_iter=500,
    )
    a = GaussianMixture(2, **kwargs).fit(data.X, sample_weight=w)
    b = GaussianMixture(2, **kwargs).fit(X_rep)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-9)
    assert a.bic(data.X, sample_weight=w) == pytest.approx(b.bic(X_rep), rel=1e-10)
    assert a.icl(data.X, sample_weight=w) == pytest.approx(b.icl(X_rep), rel=1e-10)
    assert a.score(data.X, sample_weight=w) == pytest.approx(b.score(X_rep), rel=1e-10)


def test_sample_weight_kmeans_start_reaches_same_optimum():
    data = make_mixture(200, n_components=3, random_state=2)
    w = np.full(200, 2)
    a = GaussianMixture(3, n_init=3, random_state=0, tol=1e-8).fit(data.X, sample_weight=w)
    b = GaussianMixture(3, n_init=3, random_state=0, tol=1e-8).fit(np.repeat(data.X, 2, 0))
    assert a.score(data.X) == pytest.approx(b.score(data.X), rel=1e-6)


def test_same_random_state_is_bit_identical(covariance_type):
    X = make_mixture(300, n_components=3, n_features=3, random_state=0).X
    fits = [
        GaussianMixture(3, covariance_type=covariance_type, n_init=3, random_state=42).fit(X)
        for _ in range(2)
    ]
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(fits[0], attr), getattr(fits[1], attr))
    other = GaussianMixture(
        3, covariance_type=covariance_type, init_params="random", random_state=43
    ).fit(X)
    assert not np.array_equal(other.lower_bounds_, fits[0].lower_bounds_)


def test_fit_predict_equals_predict_after_fit():
    X = make_mixture(200, n_components=3, random_state=4).X
    gm = GaussianMixture(3, max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        labels = gm.fit_predict(X)
    np.testing.assert_array_equal(labels, gm.predict(X))
    np.testing.assert_allclose(gm.predict_proba(X).sum(1), 1.0)


def test_warm_start_continues_from_previous_fit():
    X = make_mixture(300, n_components=2, random_state=6).X
    gm = GaussianMixture(2, max_iter=3, tol=1e-10, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
        first = gm.lower_bounds_.copy()
        gm.fit(X)
    cold = GaussianMixture(2, max_iter=6, tol=1e-10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X)
    np.testing.assert_allclose(np.r_[first, gm.lower_bounds_], cold.lower_bounds_, rtol=1e-12)


def test_best_of_restarts_is_kept():
    """n_init starts draw from one random stream: the same starts, one per fit, give the
    candidates, and the n_init fit keeps exactly the best of them."""
    X = load_faithful().to_numpy()
    kwargs = dict(covariance_type="tied", init_params="random", tol=1e-6, max_iter=1000)
    stream = np.random.RandomState(0)
    singles = [GaussianMixture(3, random_state=stream, **kwargs).fit(X) for _ in range(3)]
    multi = GaussianMixture(3, n_init=3, random_state=np.random.RandomState(0), **kwargs).fit(X)
    bounds = [gm.lower_bound_ for gm in singles]
    assert len(set(np.round(bounds, 6))) > 1  # the starts really differ
    best = singles[int(np.argmax(bounds))]
    assert multi.lower_bound_ == max(bounds)
    np.testing.assert_array_equal(multi.means_, best.means_)


def test_icl_is_bic_plus_hard_classification_entropy():
    X = make_mixture(150, n_components=2, separation=2.0, random_state=8).X
    gm = GaussianMixture(2, random_state=0).fit(X)
    z = gm.predict_proba(X)
    entropy = -sum(np.log(z[n, z[n].argmax()]) for n in range(len(X)))
    assert gm.icl(X) == pytest.approx(gm.bic(X) + 2 * entropy, rel=1e-12)
    loglik = gm.score(X) * len(X)
    p = 2 * 2 + 2 * 3 + 1
    assert gm.n_parameters() == p
    assert gm.bic(X) == pytest.approx(-2 * loglik + p * np.log(len(X)), rel=1e-12)
    assert gm.aic(X) == pytest.approx(-2 * loglik + 2 * p, rel=1e-12)
    together = gm.information_criteria(X)
    assert together == pytest.approx(
        {"log_likelihood": loglik, "bic": gm.bic(X), "aic": gm.aic(X), "icl": gm.icl(X)},
        rel=1e-12,
    )


def test_collapsed_component_error_is_actionable():
    # Two distinct points repeated: a third component has nothing to explain.
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [5.0, 5.0]]), [10, 10, 1], axis=0)
    gm = GaussianMixture(3, reg_covar=0.0, random_state=0)
    with pytest.raises(ValueError, match=r"component \d.*not positive definite.*reg_covar"):
        gm.fit(X)


def test_far_from_origin_data_fit_like_centered_data():
    data = make_mixture(300, n_components=2, random_state=9)
    weights, means, prec = shared_start(data.X, 2, "full")
    kwargs = dict(weights_init=weights, precisions_init=prec, tol=1e-10, max_iter=200)
    shift = 1e6
    a = GaussianMixture(2, means_init=means, **kwargs).fit(data.X)
    b = GaussianMixture(2, means_init=means + shift, **kwargs).fit(data.X + shift)
    np.testing.assert_allclose(b.means_ - shift, a.means_, atol=1e-6)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-6)


def test_verbose_reports_progress_on_stderr(capsys):
    X = make_mixture(100, n_components=2, random_state=0).X
    GaussianMixture(2, verbose=2, verbose_interval=1, tol=1e-8, random_state=0).fit(X)
    err = capsys.readouterr().err
    assert "iteration 1: objective" in err
    assert "best start 0 converged" in err
    GaussianMixture(2, random_state=0).fit(X)
    assert capsys.readouterr().err == ""


def test_fully_given_start_runs_once_whatever_n_init(covariance_type, monkeypatch):
    """A fully given start draws no random numbers: n_init copies would be identical."""
    from bayesgmm.core import em

    calls = []
    real_run_em = em.run_em
    monkeypatch.setattr(em, "run_em", lambda *a, **k: calls.append(1) or real_run_em(*a, **k))
    X = make_mixture(150, n_components=2, random_state=3).X
    weights, means, prec = shared_start(X, 2, covariance_type)
    kwargs = dict(
        covariance_type=covariance_type, weights_init=weights, means_init=means,
        precisions_init=prec, tol=1e-8, n_init=5,
    )  # fmt: skip
    one = GaussianMixture(2, **kwargs).fit(X)
    assert len(calls) == 1
    GaussianMixture(2, **{**kwargs, "precisions_init": None}).fit(X)
    assert len(calls) == 1 + 5  # a partly given start still restarts
    assert one.converged_
