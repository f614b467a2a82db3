"""The NUTS posterior: closed-form conjugate check, MAP = mode, relabelling, summaries."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pymc as pm
import pytest
import xarray as xr
from scipy import stats

from bayesgmm import CovariancePrior, GaussianMixture, GMMPrior, NormalMeanPrior
from bayesgmm.bayes import PosteriorGaussianMixture, SamplingWarning, build_model
from bayesgmm.bayes.relabel import match_to_reference, relabel_dataset
from conftest import TWO_BLOBS


@pytest.fixture(scope="module")
def fitted(two_blobs_posterior) -> PosteriorGaussianMixture:
    return two_blobs_posterior


def test_posterior_contents_and_point_summaries(fitted):
    post = fitted
    groups = set(post.idata_.children)
    assert {"posterior", "posterior_raw", "sample_stats", "log_likelihood"} <= groups
    ll = post.idata_["log_likelihood"].to_dataset()["x"]
    assert ll.dims == ("chain", "draw", "obs")
    assert ll.shape == (2, 300, 150)
    loo = az.loo(post.idata_)
    assert np.isfinite(loo.elpd)
    # posterior means near the MAP (large, well-separated sample) and the truth
    np.testing.assert_allclose(post.means_, post.map_.means_, atol=0.25)
    order = np.argsort(post.means_[:, 0])
    np.testing.assert_allclose(post.means_[order], TWO_BLOBS.params.means, atol=0.5)
    np.testing.assert_allclose(post.weights_.sum(), 1.0)
    assert post.covariances_.shape == (2, 2, 2)
    summary = post.summary()
    assert "r_hat" in summary.columns
    assert summary.loc["means[0, x0]", "mean"] == pytest.approx(post.means_[0, 0], abs=1e-2)
    assert post.diagnostics_.loc[("means", "relabelled"), "max_rhat"] < 1.05


def test_relabelled_draws_match_the_reference(fitted):
    raw = fitted.idata_["posterior_raw"].to_dataset()
    post = fitted.idata_["posterior"].to_dataset()
    perms = fitted.label_permutations_
    c, d = 1, 17
    np.testing.assert_array_equal(
        post["means"].values[c, d], raw["means"].values[c, d][perms[c, d]]
    )
    # every relabelled draw is closest to its own MAP component
    dist = np.linalg.norm(post["means"].values - fitted.map_.means_, axis=-1)
    swapped = np.linalg.norm(post["means"].values - fitted.map_.means_[::-1], axis=-1)
    assert np.all(dist.sum(-1) <= swapped.sum(-1))


def test_predictions_are_posterior_averages(fitted):
    X = TWO_BLOBS.X
    proba = fitted.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    intervals = fitted.membership_interval(X, prob=0.9)
    assert intervals.shape == (150, 2, 2)
    # naive reference for a few points: responsibilities per draw with scipy densities
    post = fitted.idata_["posterior"].to_dataset()
    w = post["weights"].values.reshape(-1, 2)
    mu = post["means"].values.reshape(-1, 2, 2)
    cov = post["covariances"].values.reshape(-1, 2, 2, 2)
    index = np.linspace(0, len(w) - 1, 600).round().astype(int)
    for n in (0, 75, 149):
        dens = np.array(
            [
                [
                    w[s, k] * stats.multivariate_normal(mu[s, k], cov[s, k]).pdf(X[n])
                    for k in range(2)
                ]
                for s in index
            ]
        )
        resp = dens / dens.sum(1, keepdims=True)
        np.testing.assert_allclose(
            intervals[n], np.quantile(resp, [0.05, 0.95], axis=0).T, atol=1e-9
        )
        np.testing.assert_allclose(proba[n], resp.mean(0), atol=1e-9)
    assert np.mean(fitted.predict(X) == fitted.map_.predict(X)) > 0.97
    # log posterior predictive density: log-mean-exp of the per-draw densities
    ll = fitted.idata_["log_likelihood"].to_dataset()["x"].values.reshape(-1, 150)
    direct = np.log(np.mean(np.exp(ll), axis=0))
    np.testing.assert_allclose(fitted.score_samples(X), direct, rtol=1e-8)
    co = fitted.co_clustering(X[:20])
    np.testing.assert_allclose(co, co.T)
    same = TWO_BLOBS.labels[:20, None] == TWO_BLOBS.labels[None, :20]
    assert co[same].min() > 0.9
    assert co[~same].max() < 0.1
    Xs, ys = fitted.sample(500)
    assert Xs.shape == (500, 2)
    assert set(np.unique(ys)) <= {0, 1}


def test_same_random_state_same_draws(fitted):
    again = PosteriorGaussianMixture(2, draws=300, tune=300, chains=2, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again.fit(TWO_BLOBS.X)
    np.testing.assert_array_equal(
        again.idata_["posterior"].to_dataset()["means"].values,
        fitted.idata_["posterior"].to_dataset()["means"].values,
    )


def test_one_component_matches_the_normal_inverse_wishart_posterior():
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([1.0, -1.0], [[1.0, 0.5], [0.5, 2.0]], size=40)
    n, d = X.shape
    m0, kappa0, nu0, psi0 = np.zeros(2), 1.0, 5.0, np.eye(2)
    prior = GMMPrior(
        means=NormalMeanPrior.conjugate(m0, kappa0), covariances=CovariancePrior(nu0, psi0)
    )
    post = PosteriorGaussianMixture(
        1, prior=prior, draws=1000, tune=1000, chains=2, random_state=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post.fit(X)
    xbar = X.mean(0)
    kappa_n, nu_n = kappa0 + n, nu0 + n
    m_n = (kappa0 * m0 + n * xbar) / kappa_n
    psi_n = (
        psi0 + (X - xbar).T @ (X - xbar) + kappa0 * n / kappa_n * np.outer(xbar - m0, xbar - m0)
    )
    # mu | X ~ Student-t(nu_n - d + 1, m_n, psi_n / (kappa_n (nu_n - d + 1)))
    mean_sd = np.sqrt(np.diag(psi_n) / (kappa_n * (nu_n - d - 1)))
    # Sigma | X ~ InvWishart(nu_n, psi_n)
    sigma_mean = psi_n / (nu_n - d - 1)
    p = nu_n - d
    sigma_var = ((p + 1) * psi_n**2 + (p - 1) * np.outer(np.diag(psi_n), np.diag(psi_n))) / (
        p * (p - 1) ** 2 * (p - 3)
    )
    draws = post.idata_["posterior"].to_dataset()
    mcse = az.mcse(post.idata_)
    means = draws["means"].values.reshape(-1, d)
    assert np.all(np.abs(means.mean(0) - m_n) < 4 * mcse["means"].values[0])
    np.testing.assert_allclose(means.std(0), mean_sd, rtol=0.10)
    covs = draws["covariances"].values.reshape(-1, d, d)
    assert np.all(np.abs(covs.mean(0) - sigma_mean) < 4 * mcse["covariances"].values[0])
    np.testing.assert_allclose(covs.std(0), np.sqrt(sigma_var), rtol=0.10)
    # and the marginal of one mean coordinate is the Student-t (KS test on thinned draws)
    t = stats.t(nu_n - d + 1, loc=m_n[0], scale=np.sqrt(psi_n[0, 0] / (kappa_n * (nu_n - d + 1))))
    assert stats.kstest(means[::4, 0], t.cdf).pvalue > 1e-3


@pytest.mark.parametrize("prior", ["pooled", "mclust"])
def test_find_map_lands_on_the_map_em_fit(prior):
    gm = GaussianMixture(
        2, prior=prior, reg_covar=0.0, tol=1e-12, max_iter=5000, random_state=0
    ).fit(TWO_BLOBS.X)
    model = build_model(TWO_BLOBS.X, 2, prior=prior)  # the same prior, rebuilt by name
    start = {
        "weights": np.array([0.45, 0.55]),
        "means": gm.means_ + 0.3,
        "covariances": np.stack([np.eye(2), np.eye(2)]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = pm.find_MAP(model=model, initvals=start, progressbar=False)
    np.testing.assert_allclose(point["weights"], gm.weights_, atol=1e-4)
    np.testing.assert_allclose(point["means"], gm.means_, atol=1e-4)
    np.testing.assert_allclose(point["covariances"], gm.covariances_, atol=1e-4)


def test_relabelling_fixes_swapped_chains():
    """Chain 1 has its labels swapped: R-hat is huge before relabelling and ~1 after."""
    rng = np.random.default_rng(0)
    ref = GaussianMixture(2, random_state=0).fit(TWO_BLOBS.X)
    means = ref.means_ + 0.05 * rng.standard_normal((2, 400, 2, 2))
    weights = np.clip(ref.weights_ + 0.01 * rng.standard_normal((2, 400, 2)), 0.01, None)
    means[1] = means[1][:, ::-1]
    weights[1] = weights[1][:, ::-1]
    raw = xr.Dataset(
        {
            "means": (("chain", "draw", "component", "feature"), means),
            "weights": (("chain", "draw", "component"), weights),
        },
        coords={"component": [0, 1]},
    )
    assert float(az.rhat(raw)["means"].max()) > 1.5
    perms = match_to_reference(means.reshape(800, 2, 2), ref._params(), "full")
    perm_da = xr.DataArray(perms.reshape(2, 400, 2), dims=("chain", "draw", "component"))
    fixed = relabel_dataset(raw, perm_da)
    assert float(az.rhat(fixed)["means"].max()) < 1.02
    np.testing.assert_array_equal(fixed["component"].values, [0, 1])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"prior": None}, "needs a proper prior"),
        ({"sampler": "stan"}, "Unknown sampler 'stan'"),
        ({"draws": 0}, "`draws` must be >= 1"),
        ({"chains": 1.5}, "`chains` must be an integer"),
        ({"target_accept": 1.5}, "target_accept"),
        ({"covariance_type": "XYZ"}, "Unknown covariance_type"),
    ],
)
def test_bad_arguments(params, message):
    with pytest.raises(ValueError, match=message):
        PosteriorGaussianMixture(2, **params).fit(TWO_BLOBS.X)


def test_unfitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PosteriorGaussianMixture(2).predict_proba(TWO_BLOBS.X)


def test_predictive_membership_of_new_points_weights_draws_by_their_density(fitted):
    from scipy.stats import multivariate_normal

    post = fitted
    X_train = TWO_BLOBS.X
    # New points: between the blobs and far out along one axis, where draws disagree.
    centre = post.means_.mean(axis=0)
    shift_x, shift_y = np.array([6.0, 0.0]), np.array([0.0, -6.0])
    new = np.array([centre, centre + shift_x, centre + shift_y, post.means_[0]])
    draws = post.idata_["posterior"].to_dataset()
    w = draws["weights"].stack(s=("chain", "draw")).transpose("s", ...).values
    mu = draws["means"].stack(s=("chain", "draw")).transpose("s", ...).values
    cov = draws["covariances"].stack(s=("chain", "draw")).transpose("s", ...).values
    joint = np.array(
        [
            [w[s, k] * multivariate_normal(mu[s, k], cov[s, k]).pdf(new) for k in range(2)]
            for s in range(len(w))
        ]
    )  # (S, K, N)
    brute = (joint.sum(axis=0) / joint.sum(axis=(0, 1))).T
    predictive = post.predict_proba(new)  # not the training data: the predictive form
    np.testing.assert_allclose(predictive, brute, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(post.predict_proba(new, new_data=True), brute, rtol=1e-8)
    unweighted = (joint / joint.sum(axis=1, keepdims=True)).mean(axis=0).T
    np.testing.assert_allclose(post.predict_proba(new, new_data=False), unweighted, rtol=1e-8)
    assert np.abs(predictive - unweighted).max() > 1e-3  # the two forms really differ
    # The training rows keep the posterior mean of the responsibilities.
    train = post.predict_proba(X_train)
    np.testing.assert_allclose(train, post.predict_proba(X_train, new_data=False))


def test_each_chain_starts_at_its_own_point(fitted):
    from bayesgmm.bayes._kernel import make_kernel_model

    starts = fitted.chain_starts_
    assert starts.shape[0] == 2
    assert np.abs(starts[0] - starts[1]).max() > 1e-3  # distinct starts
    km = make_kernel_model(TWO_BLOBS.X, fitted.prior_, "full", 2)
    assert all(np.isfinite(km.logp_and_grad(theta)[0]) for theta in starts)
    assert fitted.backend_ == "kernel"


def test_a_good_fit_is_not_flagged(fitted):
    assert not fitted.chains_disagree_
    assert fitted.diagnostics_.attrs["message"] == "The chains agree (one mode)."
    assert fitted.diagnostics_.attrs["chains"]["membership_shift"].max() < 0.05
    assert "posterior_stacked" not in fitted.idata_.children


def test_chains_in_different_modes_are_detected_and_stacked():
    """K = 2 on three equally spaced, equal clusters: {A, B}{C} and {A}{B, C} are equally
    good partitions, and dispersed chains settle in both."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.5, 50) for c in (-6, 0, 6)])[:, None]
    post = PosteriorGaussianMixture(2, draws=200, tune=200, chains=4, random_state=0)
    with pytest.warns(SamplingWarning) as record:
        post.fit(X)
    messages = " ".join(str(w.message) for w in record)
    assert "different modes" in messages
    assert "fewer" in messages
    assert post.chains_disagree_
    table = post.diagnostics_.attrs["chains"]
    assert table["membership_shift"].max() > 0.1
    np.testing.assert_allclose(table["stacking_weight"].sum(), 1.0)
    assert "posterior_stacked" in post.idata_.children
    assert "posterior_raw" in post.idata_.children  # raw chains kept
    stacked = post.idata_["posterior_stacked"].to_dataset()
    np.testing.assert_allclose(post.means_, stacked["means"].mean(("chain", "draw")).values)
    # the summaries weight the chains by their modes' mass; stacking is reported too
    assert post.diagnostics_.attrs["weights_method"] == "mass"
    assert "bridge sampling" in messages
    np.testing.assert_allclose(table["mass_weight"], post.stacking_.weights)
    np.testing.assert_allclose(table["mass_weight"].sum(), 1.0)
    np.testing.assert_allclose(post.diagnostics_.attrs["stacking"], table["stacking_weight"])
    # each group's log mass against plain importance sampling of the same density, a
    # multivariate t fitted to the group's (relabelled) draws
    from scipy.special import logsumexp

    from bayesgmm.bayes.mass import estimator_density

    density = estimator_density(post, X)
    theta = density.to_unconstrained(post.idata_["posterior"].to_dataset())
    groups = post.stacking_.groups
    assert len(set(groups.tolist())) == 2
    for g in range(2):
        d = theta[groups == g].reshape(-1, theta.shape[-1])
        t = stats.multivariate_t(d.mean(0), np.cov(d.T) * 1.5**2, df=5, seed=g)
        x = t.rvs(20000)
        log_w = density.log_density(x) - t.logpdf(x)
        log_z = logsumexp(log_w) - np.log(x.shape[0])
        w = np.exp(log_w - log_w.max())
        se_is = np.sqrt(w.var() / x.shape[0]) / w.mean()
        se = np.hypot(se_is, post.stacking_.group_log_mass_se[g])
        assert abs(log_z - post.stacking_.group_log_mass[g]) < 4 * se + 0.02, (g, log_z, se)
