"""The PyMC model on data with NaN: the observed-data likelihood, checked against SciPy."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp
from test_bayes_model import FAST, K, _point, _random_params

from bayesgmm.bayes import build_model
from bayesgmm.core.covariance import COVARIANCE_TYPES, get_covariance_model
from bayesgmm.core.density import log_mixture_density
from bayesgmm.priors import CovariancePrior, DirichletPrior, GMMPrior, NormalMeanPrior

D = 3


def _data_with_nan(n_samples: int = 40, seed: int = 0) -> np.ndarray:
    """Three clusters in 3-D with several missingness patterns: complete rows, one or
    two missing coordinates (rows 1-3 have a single observed coordinate)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(K, D))
    X = centers[np.arange(n_samples) % K] + rng.normal(size=(n_samples, D))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[1, [0, 1]] = np.nan  # only x2 observed
    X[2, [1, 2]] = np.nan  # only x0 observed
    X[3, [0, 2]] = np.nan  # only x1 observed
    X[4] = X[5] = X[6] = X[7] = centers[0] + 0.5  # complete
    X[np.isnan(X).all(axis=1)] = 1.0  # no empty rows here
    return X


def _full(params, covariance_type: str) -> np.ndarray:
    """(K, D, D) covariance matrices, built by hand for the reference."""
    cov = params.covariances
    return {
        "full": lambda: cov,
        "tied": lambda: np.broadcast_to(cov, (K, D, D)),
        "diag": lambda: np.stack([np.diag(v) for v in cov]),
        "spherical": lambda: np.stack([v * np.eye(D) for v in cov]),
    }[covariance_type]()


def _scipy_loglik(X: np.ndarray, params, covariance_type: str) -> np.ndarray:
    """Per-row observed-data log-likelihood: each row's observed coordinates only."""
    full = _full(params, covariance_type)
    out = np.empty(len(X))
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        comp = [
            np.log(params.weights[k])
            + stats.multivariate_normal(params.means[k, o], full[k][np.ix_(o, o)]).logpdf(x[o])
            for k in range(K)
        ]
        out[n] = logsumexp(comp)
    return out


def _scipy_log_prior(prior: GMMPrior, params, covariance_type: str) -> float:
    full = _full(params, covariance_type)
    total = stats.dirichlet.logpdf(params.weights, prior.weights.concentration(K))
    m0 = prior.means.mean
    for k in range(K):
        s0 = full[k] / prior.means.shrinkage if prior.means.form == "conjugate" else None
        s0 = prior.means.covariance if s0 is None else s0
        total += stats.multivariate_normal(m0, s0).logpdf(params.means[k])
    dof, scale = prior.covariances.dof, prior.covariances.scale
    cov = params.covariances
    if covariance_type == "full":
        total += sum(stats.invwishart(dof, scale).logpdf(c) for c in cov)
    elif covariance_type == "tied":
        total += stats.invwishart(dof, scale).logpdf(cov)
    elif covariance_type == "diag":
        psi = np.asarray(scale)[None, :]
        total += stats.invgamma(dof / 2.0, scale=psi / 2.0).logpdf(cov).sum()
    else:
        total += stats.invgamma(dof / 2.0, scale=scale / 2.0).logpdf(cov).sum()
    return float(total)


def _priors(covariance_type: str) -> list[GMMPrior]:
    """A conjugate and an independent prior with explicit, non-default parameters."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=(D, D))
    spd = a @ a.T + np.eye(D)
    scale = {"full": spd, "tied": spd, "diag": np.array([0.5, 1.0, 2.0]), "spherical": 1.7}[
        covariance_type
    ]
    covariances = CovariancePrior(dof=D + 1.5, scale=scale)
    m0 = np.array([0.5, -1.0, 2.0])
    weights = DirichletPrior(np.array([1.5, 2.0, 3.0]))
    return [
        GMMPrior(weights, NormalMeanPrior.conjugate(m0, 0.05), covariances),
        GMMPrior(DirichletPrior(2.0), NormalMeanPrior.independent(m0, 3.0 * spd), covariances),
    ]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_logp_with_nan_equals_scipy_observed_loglik_plus_log_prior(covariance_type):
    X = _data_with_nan()
    params = _random_params(covariance_type, D)
    loglik = _scipy_loglik(X, params, covariance_type)
    patterns = {tuple(row) for row in np.isnan(X)}
    assert len(patterns) >= 5  # several patterns
    assert (False,) * D in patterns  # complete rows too
    assert np.isfinite(loglik).all()
    for prior in _priors(covariance_type):
        model = build_model(X, K, covariance_type=covariance_type, prior=prior)
        point = _point(model, params)
        logp = model.compile_logp(jacobian=False, mode=FAST)(point)
        expected = loglik.sum() + _scipy_log_prior(prior, params, covariance_type)
        np.testing.assert_allclose(logp, expected, rtol=1e-10)
        # the package's own log prior agrees with SciPy's
        np.testing.assert_allclose(
            prior.log_prob(params, covariance_type),
            _scipy_log_prior(prior, params, covariance_type),
            rtol=1e-10,
        )

    # pointwise: one observed-data log-likelihood per row, in the original row order
    x = model["x"]
    elementwise = model.compile_fn(
        model.logp(vars=[x], sum=False)[0], inputs=model.value_vars, mode=FAST
    )(point)
    assert elementwise.shape == (len(X),)
    np.testing.assert_allclose(elementwise, loglik, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_gradient_with_nan_matches_finite_differences(covariance_type):
    X = _data_with_nan(seed=3)
    model = build_model(X, K, covariance_type=covariance_type, prior=_priors(covariance_type)[0])
    point = _point(model, _random_params(covariance_type, D, seed=4))
    logp = model.compile_logp(mode=FAST)
    dlogp = model.compile_dlogp(mode=FAST)
    grad = dlogp(point)
    assert np.isfinite(grad).all()
    # central differences along the raveled value variables (in the order of value_vars)
    names = [v.name for v in model.value_vars]
    flat = np.concatenate([np.ravel(point[n]) for n in names])
    sizes = np.cumsum([0] + [np.size(point[n]) for n in names])

    def at(vector):
        return {
            n: vector[sizes[i] : sizes[i + 1]].reshape(np.shape(point[n]))
            for i, n in enumerate(names)
        }

    h = 1e-6
    numeric = np.array(
        [(logp(at(flat + h * e)) - logp(at(flat - h * e))) / (2 * h) for e in np.eye(len(flat))]
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_without_nan_the_model_is_unchanged(covariance_type):
    """Complete data: the observed array is the data itself (no constant, no pattern
    indexing) and logp is the NumPy objective; an incomplete copy differs only by the
    rows that lost a value."""
    X = _data_with_nan(seed=5)
    complete = np.where(np.isnan(X), 0.25, X)
    params = _random_params(covariance_type, D, seed=6)
    prior = _priors(covariance_type)[0]
    model = build_model(complete, K, covariance_type=covariance_type, prior=prior)
    value = model.rvs_to_values[model["x"]]
    np.testing.assert_array_equal(value.get_value(), complete)
    logp = model.compile_logp(jacobian=False, mode=FAST)(_point(model, params))
    expected = log_mixture_density(complete, params, covariance_type).sum() + prior.log_prob(
        params, covariance_type
    )
    np.testing.assert_allclose(logp, expected, rtol=1e-10)

    with_nan = build_model(X, K, covariance_type=covariance_type, prior=prior)
    logp_nan = with_nan.compile_logp(jacobian=False, mode=FAST)(_point(with_nan, params))
    incomplete = np.isnan(X).any(axis=1)
    difference = (
        log_mixture_density(complete, params, covariance_type)[incomplete].sum()
        - _scipy_loglik(X[incomplete], params, covariance_type).sum()
    )
    np.testing.assert_allclose(logp - logp_nan, difference, rtol=1e-10)


def test_rows_without_observed_values_are_dropped_with_a_warning():
    X = pd.DataFrame(_data_with_nan(12), columns=["a", "b", "c"], index=np.arange(12) + 100)
    X.iloc[[2, 5]] = np.nan
    prior = _priors("diag")[0]
    with pytest.warns(UserWarning, match="2 of 12 rows"):
        model = build_model(X, K, covariance_type="diag", prior=prior)
    kept = [i for i in range(100, 112) if i not in (102, 105)]
    assert model.coords["obs"] == tuple(kept)
    data = model.rvs_to_values[model["x"]].get_value()
    np.testing.assert_array_equal(data, X.loc[kept].to_numpy())  # NaN kept in the data
    params = _random_params("diag", D)
    elementwise = model.compile_fn(
        model.logp(vars=[model["x"]], sum=False)[0], inputs=model.value_vars, mode=FAST
    )(_point(model, params))
    np.testing.assert_allclose(elementwise, _scipy_loglik(X.loc[kept].to_numpy(), params, "diag"))
    # no PyMC imputation: no latent variable per missing cell
    assert {rv.name for rv in model.free_RVs} == {"weights", "means", "covariances"}
    assert [rv.name for rv in model.observed_RVs] == ["x"]


def test_pandas_na_is_missing():
    X = pd.DataFrame(_data_with_nan(12), columns=["a", "b", "c"]).astype("Float64")
    assert X.isna().to_numpy().any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_model(X, K, covariance_type="spherical", prior=_priors("spherical")[0])
    assert np.isnan(model.rvs_to_values[model["x"]].get_value()).sum() == X.isna().to_numpy().sum()


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[1.0, np.inf], [2.0, 3.0], [np.nan, 1.0]]), "infinite"),
        (np.array([[1.0, -np.inf], [2.0, 3.0]]), "infinite"),
        (np.array([[1.0, np.nan], [2.0, np.nan], [np.nan, np.nan]]), r"all NaN\): \['x1'\]"),
        (pd.DataFrame({"a": [1.0, 2.0], "b": [np.nan, np.nan]}), r"\['b'\]"),
        (np.full((4, 2), np.nan), r"\['x0', 'x1'\]"),
        (pd.DataFrame({"a": [1.0, np.nan], "b": ["u", "v"]}), "numeric"),
        (np.array([["1", "a"], ["2", "3"]]), "numeric"),
    ],
)
def test_bad_data_raise(X, match):
    with pytest.raises(ValueError, match=match):
        build_model(X, 2, prior=GMMPrior())


@pytest.mark.slow
def test_nuts_posterior_with_nan_agrees_with_pymc_data_augmentation():
    """Integrating the missing cells out analytically gives the same parameter
    posterior as PyMC's automatic imputation (one latent variable per missing cell) of
    the complete-data model with the same prior, within Monte Carlo error."""
    import arviz as az
    import pymc as pm
    from threadpoolctl import threadpool_limits

    from bayesgmm.bayes.model import _SYMBOLIC_COVARIANCES, _likelihood_rv, _parameter_rvs
    from bayesgmm.datasets import make_mixture

    truth = make_mixture(
        150,
        n_components=2,
        n_features=2,
        weights=[0.4, 0.6],
        # separated along both axes: where one coordinate alone told the clusters apart,
        # a cell missing it would be bimodal and the augmented chains could not cross
        # between its modes (their weights then differ by chain), a wrong reference
        means=[[-4.0, -3.0], [4.0, 3.0]],
        covariances=[[[1.0, 0.3], [0.3, 0.8]], [[0.7, -0.2], [-0.2, 1.2]]],
        random_state=0,
    )
    rng = np.random.default_rng(2)
    X = truth.X.copy()
    rows = rng.choice(150, size=45, replace=False)  # 15% of the values, one per row
    X[rows, rng.integers(2, size=45)] = np.nan
    prior = GMMPrior.default(truth.X, 2, "full")
    symbolic = _SYMBOLIC_COVARIANCES["full"]

    marginalized = build_model(X, 2, prior=prior)
    with pm.Model(coords=marginalized.coords) as augmented, warnings.catch_warnings():
        warnings.simplefilter("ignore", pm.exceptions.ImputationWarning)
        parameters = _parameter_rvs(symbolic, prior, X, 2)
        _likelihood_rv(symbolic, parameters, X, None)  # NaN in an array: PyMC imputes
    assert "x_unobserved" in {rv.name for rv in augmented.free_RVs}
    assert len(marginalized.free_RVs) == 3

    start = {
        "weights": truth.params.weights,
        "means": truth.params.means,
        "covariances": truth.params.covariances,
    }
    posteriors = []
    with threadpool_limits(1):
        for model in (marginalized, augmented):
            idata = pm.sample(
                draws=1000,
                tune=1000,
                chains=4,
                model=model,
                nuts_sampler="nutpie",
                initvals=start,
                random_seed=11,
                progressbar=False,
                compile_kwargs={"jitter_rvs": set()},
            )
            assert int(idata["sample_stats"]["diverging"].sum()) == 0
            ds = idata["posterior"].to_dataset()[["weights", "means", "covariances"]]
            assert float(az.rhat(ds).to_array().max()) < 1.01  # no label switching
            posteriors.append(ds)

    a, b = posteriors
    mcse = np.sqrt(az.mcse(a).to_array() ** 2 + az.mcse(b).to_array() ** 2)
    mean_a, mean_b = a.mean(("chain", "draw")), b.mean(("chain", "draw"))
    z = np.abs((mean_a - mean_b).to_array()) / mcse
    assert float(z.max()) < 4.0, z.values
    sd_ratio = (a.std(("chain", "draw")) / b.std(("chain", "draw"))).to_array()
    assert float(sd_ratio.min()) > 0.85, sd_ratio.values
    assert float(sd_ratio.max()) < 1.15, sd_ratio.values


# -- PosteriorGaussianMixture on data with NaN -------------------------------------------


def _blobs_with_nan() -> tuple[np.ndarray, np.ndarray]:
    """TWO_BLOBS with 15% of the values missing, one all-NaN row, and the truth."""
    from conftest import TWO_BLOBS

    rng = np.random.default_rng(4)
    X = TWO_BLOBS.X.copy()
    X[rng.random(X.shape) < 0.15] = np.nan
    empty = np.isnan(X).all(axis=1)
    X[empty, 0] = TWO_BLOBS.X[empty, 0]
    X[10] = np.nan  # the one row with no observed value
    return X, TWO_BLOBS.X


@pytest.fixture(scope="module")
def nan_posterior():
    from bayesgmm.bayes import PosteriorGaussianMixture

    X, _ = _blobs_with_nan()
    post = PosteriorGaussianMixture(2, draws=100, tune=150, chains=2, n_init=2, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post.fit(X)
    messages = [str(w.message) for w in caught]
    return post, X, messages


def _draw_list(post) -> list:
    return list(post._draw_params())


def _scipy_row(x, params) -> np.ndarray:
    """log pi_k + log N(x_O | mu_k,O, Sigma_k,OO) for one row (full covariances)."""
    o = ~np.isnan(x)
    if not o.any():
        return np.log(params.weights)
    return np.array(
        [
            np.log(params.weights[k])
            + stats.multivariate_normal(
                params.means[k, o], params.covariances[k][np.ix_(o, o)]
            ).logpdf(x[o])
            for k in range(len(params.weights))
        ]
    )


def test_fit_with_nan_log_likelihood_per_nonempty_row(nan_posterior):
    import arviz as az

    post, X, messages = nan_posterior
    assert post.backend_ == "kernel"  # NaN data on the numba kernel
    empty = [m for m in messages if "no observed value" in m]
    assert len(empty) == 1, messages  # the empty row, warned once
    assert "1 of 150 rows" in empty[0]
    ll = post.idata_["log_likelihood"].to_dataset()["x"]
    assert ll.dims == ("chain", "draw", "obs")
    assert ll.shape == (2, 100, 149)
    assert list(ll["obs"].values) == [i for i in range(150) if i != 10]
    assert np.isnan(post.idata_["observed_data"].to_dataset()["x"].values).any()
    assert np.isfinite(post.map_.means_).all()
    assert np.isfinite(az.loo(post.idata_).elpd)
    # the stored pointwise log-likelihood is the observed-data one, at the raw draws
    raw = post.idata_["posterior_raw"].to_dataset()
    kept = X[np.arange(150) != 10]
    for c, d in ((0, 0), (1, 57)):
        cov = raw["covariances"].values[c, d]
        params = _params(raw["weights"].values[c, d], raw["means"].values[c, d], cov)
        expected = [logsumexp(_scipy_row(x, params)) for x in kept]
        np.testing.assert_allclose(ll.values[c, d], expected, rtol=1e-8)
    # the chains found the two blobs
    np.testing.assert_allclose(np.sort(post.means_[:, 0]), [-4.0, 4.0], atol=0.6)


def _params(weights, means, covariances):
    from bayesgmm.core.params import GMMParams

    chol = get_covariance_model("full").precision_cholesky(covariances)
    return GMMParams(weights, means, covariances, chol)


def test_predictions_on_rows_with_nan_are_posterior_averages_of_marginals(nan_posterior):
    post, X, _ = nan_posterior
    rows = [*[i for i in range(150) if np.isnan(X[i]).any()][:4], 10, 0]
    Xq = X[rows]
    draws = _draw_list(post)
    logs = np.stack([[_scipy_row(x, p) for x in Xq] for p in draws])  # (S, n, K)
    log_norm = logsumexp(logs, axis=2)
    resp = np.exp(logs - log_norm[..., None])
    np.testing.assert_allclose(post.predict_proba(Xq, max_draws=None), resp.mean(0), rtol=1e-8)
    np.testing.assert_allclose(
        post.score_samples(Xq),
        logsumexp(log_norm, axis=0) - np.log(len(draws)),
        rtol=1e-8,
        atol=1e-12,
    )
    # the empty row: memberships = posterior mean weights, log density 0
    np.testing.assert_allclose(post.predict_proba(X[[10]], max_draws=None)[0], post.weights_)
    assert post.score_samples(X[[10]])[0] == pytest.approx(0.0, abs=1e-12)
    interval = post.membership_interval(Xq, prob=0.9)
    assert interval.shape == (len(rows), 2, 2)
    lo, hi = np.quantile(resp, [0.05, 0.95], axis=0)
    np.testing.assert_allclose(interval[..., 0], lo, atol=0.05)
    np.testing.assert_allclose(interval[..., 1], hi, atol=0.05)
    co = post.co_clustering(Xq)
    np.testing.assert_allclose(co, co.T)
    assert np.all(np.diag(co) <= 1 + 1e-12)


def test_impute_over_posterior_draws(nan_posterior, monkeypatch):
    post, X, _ = nan_posterior
    missing = np.isnan(X)
    filled = post.impute(X)
    assert filled.shape == X.shape
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[~missing], X[~missing])
    # the posterior mean of E[x_M | x_O, theta]: a brute-force conditional for one row
    n = int(np.flatnonzero(missing[:, 0] & ~missing[:, 1])[0])
    x1 = X[n, 1]
    cond = []
    for p in _draw_list(post):
        comp = _scipy_row(X[n], p)
        r = np.exp(comp - logsumexp(comp))
        s = p.covariances
        cm = p.means[:, 0] + s[:, 0, 1] / s[:, 1, 1] * (x1 - p.means[:, 1])
        cond.append(r @ cm)
    assert filled[n, 0] == pytest.approx(np.mean(cond), rel=1e-8)

    draws = post.impute(X, n_imputations=400, random_state=1)
    assert draws.shape == (400, *X.shape)
    np.testing.assert_array_equal(draws, post.impute(X, n_imputations=400, random_state=1))
    np.testing.assert_array_equal(draws[:, ~missing], np.tile(X[~missing], (400, 1)))
    assert np.isfinite(draws).all()
    # multiple imputations average to the posterior mean imputation (MC error)
    sd = draws.std(axis=0)[missing]
    z = (draws.mean(axis=0)[missing] - filled[missing]) / (sd / np.sqrt(400))
    assert np.abs(z).max() < 4.5
    # parameter uncertainty is in the draws: imputation i uses a random posterior draw
    from bayesgmm.bayes import posterior as posterior_module

    used = []

    def recording(X_, params, covariance_type, n, rng):
        used.append((params.means.copy(), n))
        return posterior_module.impute_draws.__wrapped__(X_, params, covariance_type, n, rng)

    recording.__wrapped__ = posterior_module.impute_draws
    monkeypatch.setattr(posterior_module, "impute_draws", recording)
    post.impute(X, n_imputations=50, random_state=2)
    monkeypatch.undo()
    assert sum(n for _, n in used) == 50
    assert len({m.tobytes() for m, _ in used}) > 30  # of the 200 posterior draws
    interval = post.imputation_interval(X, prob=0.9, n_imputations=400, random_state=1)
    assert interval.shape == (*X.shape, 2)
    np.testing.assert_array_equal(interval[~missing][:, 0], X[~missing])
    np.testing.assert_array_equal(interval[~missing][:, 1], X[~missing])
    assert np.all(interval[missing][:, 0] < filled[missing])
    assert np.all(filled[missing] < interval[missing][:, 1])
    with pytest.raises(ValueError, match="n_imputations"):
        post.impute(X, n_imputations=0)
    with pytest.raises(ValueError, match="prob"):
        post.imputation_interval(X, prob=1.5)


@pytest.mark.slow
def test_posterior_multiple_imputation_is_calibrated():
    """90% intervals of the posterior imputations cover the held-out true values of
    masked cells 90% +- 3% of the time (two simulated data sets pooled, ~1600 cells
    missing completely at random; the binomial SE of the rate is about 0.008)."""
    from bayesgmm.bayes import PosteriorGaussianMixture
    from bayesgmm.datasets import make_mixture

    inside = []
    for seed in (5, 7):
        truth = make_mixture(1000, n_components=2, n_features=4, separation=3.0, random_state=seed)
        rng = np.random.default_rng(seed + 1)
        mask = rng.random(truth.X.shape) < 0.2
        mask[mask.all(axis=1), 0] = False
        X = np.where(mask, np.nan, truth.X)
        post = PosteriorGaussianMixture(2, draws=300, tune=300, chains=2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post.fit(X)
        interval = post.imputation_interval(X, prob=0.9, n_imputations=2000, random_state=1)
        covered = (interval[..., 0] <= truth.X) & (interval[..., 1] >= truth.X)
        inside.append(covered[mask])
    rate = np.concatenate(inside).mean()
    print(f"coverage of the 90% imputation intervals: {rate:.3f} over {sum(map(len, inside))}")
    assert 0.87 <= rate <= 0.93, rate
