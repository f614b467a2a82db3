"""Post-processing of posterior draws (bayes/_postprocess.py) against independent
references: scipy.stats densities, naive loops over draws, ArviZ's R-hat/ESS on every
element, and the separate computations the fused pass replaced."""

from __future__ import annotations

import pickle
import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.bayes._postprocess import (
    chain_agreement,
    diagnostics_table,
    draw_pass,
    member_groups,
    posterior_pass,
)
from bayesgmm.bayes.relabel import relabel_dataset
from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.density import responsibilities
from bayesgmm.core.params import GMMParams

K, D = 3, 3
TYPES = ("full", "tied", "diag", "spherical")
_NAMES = ("weights", "means", "covariances")


def _draws(covariance_type: str, lead=(2, 5), n_features: int = D, seed: int = 0):
    """Random valid mixture draws of shape lead + the type's shapes."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 2.0), size=lead)
    means = rng.normal(scale=2.0, size=(*lead, K, n_features))
    if covariance_type in ("full", "tied"):
        shape = (*lead, K) if covariance_type == "full" else lead
        a = rng.normal(size=(*shape, n_features, n_features))
        cov = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(n_features)
        cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))  # symmetric to the last bit
    elif covariance_type == "diag":
        cov = rng.uniform(0.3, 2.0, size=(*lead, K, n_features))
    else:
        cov = rng.uniform(0.3, 2.0, size=(*lead, K))
    return weights, means, cov


def _full(cov, covariance_type, k):
    """Component k's covariance matrix of one draw."""
    if covariance_type == "full":
        return cov[k]
    if covariance_type == "tied":
        return cov
    if covariance_type == "diag":
        return np.diag(cov[k])
    return cov[k] * np.eye(D)


def _scipy_log_weighted(X, w, mu, cov, covariance_type):
    """log pi_k + log N(x_n | mu_k, Sigma_k), shape (K, N), by scipy.stats."""
    return np.stack(
        [
            np.log(w[k]) + multivariate_normal(mu[k], _full(cov, covariance_type, k)).logpdf(X)
            for k in range(K)
        ]
    )


def _data(n: int = 30, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=2.5, size=(n, D))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_draw_pass_matches_scipy_and_a_naive_loop(covariance_type):
    X = _data()
    w, mu, cov = _draws(covariance_type)
    n_draws = 10
    rng = np.random.default_rng(2)
    groups = rng.integers(-1, 3, size=n_draws)
    perms = np.stack([rng.permutation(K) for _ in range(n_draws)])
    out = draw_pass(
        X,
        w,
        mu,
        cov,
        covariance_type,
        groups=groups,
        permutations=perms,
        max_floats=200,
        probabilities=True,
    )
    assert out.log_likelihood.shape == (2, 5, len(X))
    assert out.probabilities.shape == (n_draws, len(X), K)
    flat = [a.reshape(n_draws, *a.shape[2:]) for a in (w, mu, cov)]
    totals = np.zeros((3, len(X), K))
    for s in range(n_draws):
        lw = _scipy_log_weighted(X, *(a[s] for a in flat), covariance_type)
        loglik = logsumexp(lw, axis=0)
        np.testing.assert_allclose(out.log_likelihood.reshape(n_draws, -1)[s], loglik, rtol=1e-10)
        resp = np.exp(lw - loglik).T  # (N, K)
        np.testing.assert_allclose(out.probabilities[s], resp, rtol=1e-10, atol=1e-300)
        if groups[s] >= 0:
            totals[groups[s]] += resp[:, perms[s]]
    counts = np.bincount(groups[groups >= 0], minlength=3)
    np.testing.assert_allclose(out.members, totals / counts[:, None, None], rtol=1e-10)


def test_draw_pass_does_not_depend_on_threads_and_chunks():
    X = _data(50)
    w, mu, cov = _draws("full", lead=(3, 7))
    groups = member_groups(3, 7, max_draws=4)
    perms = np.tile([2, 0, 1], (21, 1))
    one = draw_pass(X, w, mu, cov, "full", groups=groups, permutations=perms, n_threads=1,
                    max_floats=300)  # fmt: skip
    many = draw_pass(X, w, mu, cov, "full", groups=groups, permutations=perms, n_threads=3,
                     max_floats=300)  # fmt: skip
    np.testing.assert_array_equal(one.log_likelihood, many.log_likelihood)
    np.testing.assert_array_equal(one.members, many.members)
    whole = draw_pass(X, w, mu, cov, "full", groups=groups, permutations=perms)
    np.testing.assert_allclose(whole.log_likelihood, one.log_likelihood, rtol=1e-12)
    np.testing.assert_allclose(whole.members, one.members, rtol=1e-12, atol=1e-15)
    # inputs untouched
    np.testing.assert_array_equal(perms, np.tile([2, 0, 1], (21, 1)))


def test_member_groups_are_evenly_spaced_draws_per_chain():
    groups = member_groups(2, 10, max_draws=4).reshape(2, 10)
    index = np.unique(np.linspace(0, 9, 4).astype(int))
    for c in range(2):
        assert np.flatnonzero(groups[c] == c).tolist() == index.tolist()
        assert (np.delete(groups[c], index) == -1).all()


def _posterior(covariance_type, chains=3, draws=40, seed=0):
    w, mu, cov = _draws(covariance_type, lead=(chains, draws), seed=seed)
    dims = get_covariance_model(covariance_type).dims
    return xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), w),
            "means": (("chain", "draw", "component", "feature"), mu),
            "covariances": (("chain", "draw", *dims), cov),
        },
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
    )


def _perms(chains, draws, seed=3, switch=0.3):
    rng = np.random.default_rng(seed)
    perms = np.tile(np.arange(K), (chains, draws, 1))
    for c in range(chains):
        for s in range(draws):
            if rng.random() < switch:
                perms[c, s] = rng.permutation(K)
    return perms


def _scipy_observed_loglik(X, w, mu, cov, covariance_type):
    """log p(x_{n,O_n}): each row's marginal of its observed coordinates, by scipy.stats
    (rows with NaN one at a time), shape (N,)."""
    out = np.empty(X.shape[0])
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        terms = [
            np.log(w[k])
            + multivariate_normal(mu[k][o], _full(cov, covariance_type, k)[np.ix_(o, o)]).logpdf(
                x[o]
            )
            for k in range(K)
        ]
        out[n] = logsumexp(terms)
    return out


@pytest.mark.parametrize(
    ("covariance_type", "missing"),
    [("full", False), ("spherical", False), ("full", True), ("tied", True), ("diag", True)],
)
def test_posterior_pass_equals_the_separate_computations(covariance_type, missing):
    """The fused pass against what the fit computed before: the log-likelihood of the
    raw draws, and each chain's memberships from its relabelled draws, draw by draw
    with the chunk kernel (core.density.responsibilities). With NaN (several patterns,
    rows with one observed value, complete rows): the log-likelihood of each row's
    observed coordinates against SciPy's marginals, the memberships against the chunk
    kernel's missing-data responsibilities."""
    X = _data(25)
    if missing:
        X[np.random.default_rng(7).random(X.shape) < 0.25] = np.nan
        X[0] = [np.nan, 1.0, np.nan]  # one observed value
        X[np.isnan(X).all(axis=1)] = 0.5
        assert len({tuple(row) for row in np.isnan(X)}) >= 3  # several patterns
        assert (~np.isnan(X)).all(axis=1).any()  # and complete rows
    raw = _posterior(covariance_type)
    perms = _perms(3, 40)
    relabelled = relabel_dataset(raw, xr.DataArray(perms, dims=("chain", "draw", "component")))
    loglik, members, table = posterior_pass(
        X, raw, relabelled, perms, covariance_type, max_draws=7, diagnostics=True
    )
    model = get_covariance_model(covariance_type)
    index = np.unique(np.linspace(0, 39, 7).astype(int))
    for c in range(3):
        total = 0.0
        for s in range(40):
            w, mu, cov = (raw[name].values[c, s] for name in ("weights", "means", "covariances"))
            if missing:
                want = _scipy_observed_loglik(X, w, mu, cov, covariance_type)
            else:
                want = logsumexp(_scipy_log_weighted(X, w, mu, cov, covariance_type), axis=0)
            np.testing.assert_allclose(loglik[c, s], want, rtol=1e-10)
            if s in index:
                r = relabelled.isel(chain=c, draw=s)
                cov_r = r["covariances"].values
                params = GMMParams(
                    r["weights"].values, r["means"].values, cov_r, model.precision_cholesky(cov_r)
                )
                total = total + np.exp(responsibilities(X, params, covariance_type)[1])
        np.testing.assert_allclose(members[c], total / len(index), rtol=1e-10, atol=1e-14)
    assert table.equals(diagnostics_table(raw, relabelled, perms))


def _arviz_table(raw, relabelled):
    """The table as the fit computed it before: ArviZ on every element of both."""
    out = {}
    for label, ds in (("raw", raw), ("relabelled", relabelled)):
        rhat, bulk, tail = az.rhat(ds), az.ess(ds, method="bulk"), az.ess(ds, method="tail")
        for name in ("weights", "means", "covariances"):
            out[(name, label)] = (
                float(rhat[name].max()),
                float(bulk[name].min()),
                float(tail[name].min()),
            )
    return out


@pytest.mark.parametrize(
    ("covariance_type", "switch", "asymmetric"),
    [("full", 0.3, False), ("full", 0.3, True), ("tied", 0.3, False), ("diag", 0.0, False)],
)
def test_diagnostics_table_equals_arviz_on_every_element(covariance_type, switch, asymmetric):
    raw = _posterior(covariance_type, chains=3, draws=60, seed=4)
    if asymmetric:  # mirror halves not bitwise equal: no element may be dropped
        cov = raw["covariances"].values.copy()
        cov[..., 0, 1] += 1e-3 * np.random.default_rng(0).normal(size=cov.shape[:-2])
        raw = raw.assign(covariances=(raw["covariances"].dims, cov))
    perms = _perms(3, 60, switch=switch)
    relabelled = relabel_dataset(raw, xr.DataArray(perms, dims=("chain", "draw", "component")))
    table = diagnostics_table(raw, relabelled, perms)
    expected = _arviz_table(raw, relabelled)
    if covariance_type == "full" and not asymmetric:  # the mirrored half was skipped
        from bayesgmm.bayes._postprocess import _distinct_elements

        keep = _distinct_elements(raw["covariances"].values, 3)
        assert keep is not None
        assert keep.sum() == K * D * (D + 1) // 2
    assert table.index.tolist() == [
        (name, label) for label in ("raw", "relabelled") for name in _NAMES
    ]
    for key, values in expected.items():
        got = tuple(table.loc[key, ["max_rhat", "min_ess_bulk", "min_ess_tail"]])
        assert got == values, key  # the same numbers, not merely close


def test_chain_agreement_against_direct_formulas():
    rng = np.random.default_rng(5)
    total = rng.normal(size=(3, 50)) + np.array([[0.0], [0.0], [3.0]])  # chain 2 apart
    members = rng.dirichlet(np.ones(K), size=(3, 20))
    got = chain_agreement(total, members)
    expected_rhat = float(az.rhat(xr.DataArray(total, dims=("chain", "draw"))))
    assert got.rhat_total == expected_rhat
    assert got.rhat_total > 1.05
    np.testing.assert_array_equal(got.chain_mean, total.mean(axis=1))
    average = members.mean(axis=0)
    for c in range(3):
        tv = np.mean([0.5 * np.abs(members[c, n] - average[n]).sum() for n in range(20)])
        assert got.shift[c] == pytest.approx(tv, rel=1e-12)
    assert chain_agreement(total[:1], members[:1]).rhat_total == 1.0


@pytest.fixture(scope="module")
def small_posterior():
    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.datasets import make_mixture

    X = make_mixture(60, n_components=2, n_features=2, separation=5, random_state=0).X
    post = PosteriorGaussianMixture(
        2, covariance_type="full", draws=60, tune=60, chains=2, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post.fit(X)
    return post, X


def _naive_proba(post, X):
    """Posterior-mean responsibilities of training rows, draw by draw from idata_."""
    ds = post.idata_["posterior"].to_dataset()
    model = get_covariance_model(post.covariance_type)
    total, count = 0.0, 0
    for c in range(ds.sizes["chain"]):
        for s in range(ds.sizes["draw"]):
            cov = ds["covariances"].values[c, s]
            params = GMMParams(
                ds["weights"].values[c, s],
                ds["means"].values[c, s],
                cov,
                model.precision_cholesky(cov),
            )
            total = total + np.exp(responsibilities(X, params, post.covariance_type)[1])
            count += 1
    return total / count


def test_fit_log_likelihood_group_against_scipy(small_posterior):
    post, X = small_posterior
    ll = post.idata_["log_likelihood"].to_dataset()["x"]
    assert ll.dims == ("chain", "draw", "obs")
    assert list(post.idata_.children)[:4] == [
        "posterior",
        "sample_stats",
        "log_likelihood",
        "observed_data",
    ]
    raw = post.idata_["posterior_raw"].to_dataset()
    for c, s in [(0, 0), (1, 59)]:
        w, mu, cov = (raw[name].values[c, s] for name in ("weights", "means", "covariances"))
        expected = logsumexp(
            [np.log(w[k]) + multivariate_normal(mu[k], cov[k]).logpdf(X) for k in range(2)],
            axis=0,
        )
        np.testing.assert_allclose(ll.values[c, s], expected, rtol=1e-10)


def test_predictions_reuse_the_draws_precision_factors(small_posterior):
    post, X = small_posterior
    first = post.predict_proba(X, new_data=False)
    assert len(post._draws[2]) == 120  # every draw's GMMParams built once, kept
    np.testing.assert_allclose(first, _naive_proba(post, X), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(post.predict_proba(X, new_data=False), first)
    copy = pickle.loads(pickle.dumps(post))
    assert "_draws" not in copy.__dict__  # a cache, not state
    assert post._draws is not None  # pickling left the original's cache alone
    np.testing.assert_array_equal(copy.predict_proba(X, new_data=False), first)
    # another posterior group in idata_: the cache does not serve the old draws
    tree = copy.idata_.copy()
    ds = tree["posterior"].to_dataset()
    swapped = ds["means"].copy(data=ds["means"].values[:, :, ::-1])  # the means swapped
    tree["posterior"] = xr.DataTree(ds.assign(means=swapped))
    copy.idata_ = tree
    moved = copy.predict_proba(X, new_data=False)
    np.testing.assert_allclose(moved, _naive_proba(copy, X), rtol=1e-12, atol=1e-15)
    assert not np.allclose(moved, first)


def test_stephens_relabelling_on_the_vectorized_probabilities_is_unchanged():
    """Stephens' method gets complete rows' probabilities from the draw pass; its
    permutations equal those from per-draw probabilities (core.density), in memory and
    recomputed block by block."""
    from bayesgmm import GaussianMixture
    from bayesgmm.bayes.relabel import _relabel, match_to_reference, stephens_permutations

    rng = np.random.default_rng(8)
    X = np.r_[rng.normal(size=(40, D)), rng.normal(size=(40, D)) + 1.5]
    gm = GaussianMixture(K, covariance_type="full", random_state=0).fit(X)
    base = _posterior("full", chains=2, draws=30, seed=9)
    # draws near the fit, with labels switched at random: a relabelling to recover
    shuffles = _perms(2, 30, seed=10, switch=0.5)
    means = gm.means_ + 0.2 * rng.normal(size=(2, 30, K, D))
    covs = gm.covariances_ * np.exp(0.1 * rng.normal(size=(2, 30, K, 1, 1)))
    weights = gm.weights_ * np.exp(0.1 * rng.normal(size=(2, 30, K)))
    weights /= weights.sum(axis=-1, keepdims=True)
    draws = base.assign(
        weights=(base["weights"].dims, np.take_along_axis(weights, shuffles, axis=-1)),
        means=(base["means"].dims, np.take_along_axis(means, shuffles[..., None], axis=2)),
        covariances=(
            base["covariances"].dims,
            np.take_along_axis(covs, shuffles[..., None, None], axis=2),
        ),
    )
    model = get_covariance_model("full")
    flat = {n: draws[n].values.reshape(60, *draws[n].shape[2:]) for n in _NAMES}
    probs = np.stack(
        [
            np.exp(
                responsibilities(
                    X,
                    GMMParams(
                        flat["weights"][s],
                        flat["means"][s],
                        flat["covariances"][s],
                        model.precision_cholesky(flat["covariances"][s]),
                    ),
                    "full",
                )[1]
            )
            for s in range(60)
        ]
    )
    start = match_to_reference(flat["means"], gm._params(), "full")
    expected = stephens_permutations(probs, initial=start).permutations.reshape(2, 30, K)
    for max_bytes in (None, 2 * 80 * K * 8):
        _, perms, info = _relabel(draws, gm, method="stephens", X=X, max_bytes=max_bytes)
        np.testing.assert_array_equal(perms, expected)
    assert info["n_permuted"] > 0


def test_a_log_likelihood_too_big_for_memory_fails_before_sampling(monkeypatch):
    """The log_likelihood group (8 bytes per draw and row) is checked against the memory
    the system reports before the MAP fit and sampling start: a clear MemoryError naming
    its size; within the memory, no error. /proc/meminfo's MemAvailable is what is read
    (compared with its own line where it exists)."""
    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.bayes import _postprocess as pp
    from bayesgmm.bayes import posterior as posterior_module

    have = pp.available_memory()
    try:
        with open("/proc/meminfo") as f:
            line = next(x for x in f if x.startswith("MemAvailable:"))
        assert have == int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        assert have is None
    X = np.random.default_rng(0).normal(size=(50, 2))
    need = 8 * 2 * 30 * 50
    monkeypatch.setattr(pp, "available_memory", lambda: need - 1)

    def no_fit(*args, **kwargs):  # the MAP start must not begin
        raise AssertionError("fitting started")

    monkeypatch.setattr(posterior_module.PosteriorGaussianMixture, "_map_estimator", no_fit)
    post = PosteriorGaussianMixture(2, chains=2, draws=30, tune=30, random_state=0)
    with pytest.raises(MemoryError, match=r"60 draws x 50 rows"):
        post.fit(X)
    monkeypatch.setattr(pp, "available_memory", lambda: need)
    pp.check_log_likelihood_memory(60, 50)  # exactly fits: no error
    monkeypatch.setattr(pp, "available_memory", lambda: None)
    pp.check_log_likelihood_memory(10**9, 10**9)  # unknown memory: no check
