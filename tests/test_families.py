"""mclust's fourteen covariance families: M-steps, counts, EM, hc start, published BIC."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import linalg, optimize
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture, select_model
from bayesgmm.core import families
from bayesgmm.core.covariance import MCLUST_FAMILIES, InnerControl, get_covariance_model
from bayesgmm.core.hc import _terms, hc_partitions, hc_vvv, qclass, svd_transform
from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.priors import GMMPrior

NEW = ["EII", "EEI", "VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV"]


def n_var_params(name: str, d: int, g: int) -> float:
    """mclust's nVarParams, transcribed as a formula table."""
    return {
        "EII": 1, "VII": g, "EEI": d, "VEI": g + (d - 1), "EVI": 1 + g * (d - 1),
        "VVI": g * d, "EEE": d * (d + 1) / 2, "EVE": 1 + g * (d - 1) + d * (d - 1) / 2,
        "VEE": g + (d - 1) + d * (d - 1) / 2, "VVE": g + g * (d - 1) + d * (d - 1) / 2,
        "EEV": 1 + (d - 1) + g * d * (d - 1) / 2, "VEV": g + (d - 1) + g * d * (d - 1) / 2,
        "EVV": 1 - g + g * d * (d + 1) / 2, "VVV": g * d * (d + 1) / 2,
    }[name]  # fmt: skip


@pytest.mark.parametrize("name", MCLUST_FAMILIES)
def test_parameter_counts_are_mclusts(name):
    model = get_covariance_model(name)
    for g in (1, 2, 3, 7):
        for d in (1, 2, 3, 5):
            assert model.n_parameters(g, d) == n_var_params(name, d, g), (g, d)


# -- each M-step against a numerical maximizer -----------------------------------------
def _rotation(theta: np.ndarray, d: int) -> np.ndarray:
    skew = np.zeros((d, d))
    skew[np.triu_indices(d, 1)] = theta
    return linalg.expm(skew - skew.T)


def _family_covariances(name: str, theta: np.ndarray, k: int, d: int) -> np.ndarray:
    """Sigma_k = lambda_k D_k A_k D_k^T from unconstrained parameters."""
    vol_n = 1 if name[0] == "E" else k
    shape_n = 0 if name[1] == "I" else (1 if name[1] == "E" else k)
    orient_n = 0 if name[2] == "I" else (1 if name[2] == "E" else k)
    n_rot = d * (d - 1) // 2
    log_vol = np.broadcast_to(theta[:vol_n], (k,))
    pos = vol_n
    if shape_n:
        raw = theta[pos : pos + shape_n * (d - 1)].reshape(shape_n, d - 1)
        pos += shape_n * (d - 1)
        log_shape = np.concatenate([raw, -raw.sum(axis=1, keepdims=True)], axis=1)
        log_shape = np.broadcast_to(log_shape, (k, d))
    else:
        log_shape = np.zeros((k, d))
    rots = []
    for j in range(k):
        if orient_n == 0:
            rots.append(np.eye(d))
        else:
            idx = 0 if orient_n == 1 else j
            rots.append(_rotation(theta[pos + idx * n_rot : pos + (idx + 1) * n_rot], d))
    values = np.exp(log_vol[:, None] + log_shape)
    return np.stack([(r * v) @ r.T for r, v in zip(rots, values, strict=True)])


def _n_theta(name: str, k: int, d: int) -> int:
    vol_n = 1 if name[0] == "E" else k
    shape_n = 0 if name[1] == "I" else (1 if name[1] == "E" else k)
    orient_n = 0 if name[2] == "I" else (1 if name[2] == "E" else k)
    return vol_n + shape_n * (d - 1) + orient_n * d * (d - 1) // 2


def _statistics(seed: int, k: int, d: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30 * k, d)) @ rng.normal(size=(d, d))
    resp = rng.dirichlet(np.ones(k), size=X.shape[0])
    counts = resp.sum(axis=0)
    means = resp.T @ X / counts[:, None]
    scatter = np.stack([(resp[:, j, None] * (X - means[j])).T @ (X - means[j]) for j in range(k)])
    return counts, scatter


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("name", MCLUST_FAMILIES)
def test_m_step_maximizes_the_expected_complete_data_loglik(name, d):
    k = 3
    counts, scatter = _statistics(11 * d + len(name), k, d)
    model = get_covariance_model(name)
    diagonal = "feature_bis" not in model.dims
    stat = np.einsum("kii->ki", scatter) if diagonal else scatter
    if model.dims[0] != "component":  # tied: pooled scatter
        stat = scatter.sum(axis=0)
    control = InnerControl(1e-13, 10_000)
    ours = model.to_full(model.update_from(counts, stat, 0.0, control=control), k, d)
    mine = families.objective(counts, scatter, ours)

    def f(theta):
        return families.objective(counts, scatter, _family_covariances(name, theta, k, d))

    rng = np.random.default_rng(0)
    best = None
    for _ in range(4):
        res = optimize.minimize(f, rng.normal(scale=0.5, size=_n_theta(name, k, d)),
                                method="BFGS", options={"gtol": 1e-9})  # fmt: skip
        if best is None or res.fun < best.fun:
            best = res
    assert mine <= best.fun + 1e-7 * abs(best.fun), (mine, best.fun)
    np.testing.assert_allclose(ours, _family_covariances(name, best.x, k, d), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["VEI", "VEE", "VEV", "EVE", "VVE"])
def test_warm_started_m_step_never_increases_the_objective(name):
    k, d = 3, 3
    counts, scatter = _statistics(5, k, d)
    model = get_covariance_model(name)
    stat = np.einsum("kii->ki", scatter) if "feature_bis" not in model.dims else scatter
    previous = model.update_from(counts * 1.3, stat * 0.7 + 0.1 * np.ones_like(stat), 0.0)
    before = families.objective(counts, scatter, model.to_full(previous, k, d))
    for max_iter in (1, 2, 5):
        after = model.update_from(
            counts, stat, 0.0, previous=previous, control=InnerControl(0.0, max_iter)
        )
        value = families.objective(counts, scatter, model.to_full(after, k, d))
        assert value <= before + 1e-9 * abs(before)


# -- EM through the estimator -----------------------------------------------------------
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 3),
    d=st.integers(2, 3),
    name=st.sampled_from(NEW),
    init=st.sampled_from(["kmeans", "random", "hc"]),
)
def test_objective_never_decreases(seed, k, d, name, init):
    data = make_mixture(40 * k * d, n_components=k, n_features=d, random_state=seed)
    gm = GaussianMixture(k, covariance_type=name, reg_covar=0.0, tol=0.0, max_iter=40,
                         init_params=init, random_state=seed)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            gm.fit(data.X)
        except ValueError:
            assume(False)  # a collapsed component (reg_covar=0)
    model = get_covariance_model(name)
    variances = np.diagonal(model.to_full(gm.covariances_, k, d), axis1=1, axis2=2)
    assume(variances.min() > 1e-8 * data.X.var(axis=0).min())
    lb = gm.lower_bounds_
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:])), np.diff(lb).min()


@pytest.mark.parametrize("name", NEW)
def test_family_fit_predict_sample_and_decomposition(name):
    X = load_faithful().to_numpy()
    gm = GaussianMixture(2, covariance_type=name, init_params="hc", tol=1e-6).fit(X)
    model = get_covariance_model(name)
    full = model.to_full(gm.covariances_, 2, 2)
    rebuilt = np.einsum("kij,kj,klj->kil", gm.orientations_, gm.volumes_[:, None] * gm.shapes_,
                        gm.orientations_)  # fmt: skip
    np.testing.assert_allclose(rebuilt, full, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(np.prod(gm.shapes_, axis=1), 1.0)
    if name[0] == "E":
        np.testing.assert_allclose(gm.volumes_, gm.volumes_[0])
    if name[1] == "E":
        np.testing.assert_allclose(gm.shapes_, np.broadcast_to(gm.shapes_[0], (2, 2)), rtol=1e-6)
    if name[2] == "E":
        # same axes up to sign
        np.testing.assert_allclose(np.abs(gm.orientations_), np.abs(gm.orientations_[[0, 0]]),
                                   atol=1e-6)  # fmt: skip
    assert gm.predict(X).shape == (272,)
    Xs, labels = gm.sample(50)
    assert Xs.shape == (50, 2)
    assert labels.shape == (50,)
    # missing values: exact EM for the observed-data likelihood
    holes = X.copy()
    holes[::7, 1] = np.nan
    gm_nan = GaussianMixture(2, covariance_type=name, tol=0.0, max_iter=30, reg_covar=0.0,
                             random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm_nan.fit(holes)
    assert np.all(np.diff(gm_nan.lower_bounds_) >= -1e-10 * np.abs(gm_nan.lower_bounds_[1:]))
    assert np.isfinite(gm_nan.impute(holes)).all()


def test_information_and_posterior_say_what_is_supported():
    X = load_faithful().to_numpy()
    gm = GaussianMixture(2, covariance_type="VEV", random_state=0).fit(X)
    from bayesgmm.core.information import free_layout

    with pytest.raises(ValueError, match="not linear"):
        free_layout(2, 2, "VEV")
    pytest.importorskip("pymc")
    from bayesgmm.bayes import build_model

    with pytest.raises(ValueError, match="supported"):
        build_model(X, 2, covariance_type="VEV")
    assert gm.converged_


# -- MAP --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["EII", "EEI", "VEI", "EVI", "EEV", "VEV"])
def test_map_objective_never_decreases(name):
    X = make_mixture(150, n_components=3, n_features=2, random_state=1).X
    gm = GaussianMixture(3, covariance_type=name, prior="default", reg_covar=0.0, tol=0.0,
                         max_iter=40, random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    lb = gm.lower_bounds_
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:]))


@pytest.mark.parametrize("name", ["EII", "EEI", "VEI", "EEV", "VEV"])
def test_map_update_is_the_mode_given_the_statistics(name):
    """MAP covariances maximize loglik-part + log prior (numerical maximizer)."""
    k, d = 2, 2
    counts, scatter = _statistics(3, k, d)
    model = get_covariance_model(name)
    X = make_mixture(100, n_components=2, n_features=2, random_state=0).X
    prior = GMMPrior.default(X, k, name).covariances
    scale = model.prior_scale(prior.dof, prior.scale, d)
    diagonal = "feature_bis" not in model.dims
    stat = np.einsum("kii->ki", scatter) if diagonal else scatter
    ours = model.update_from(counts, stat, 0.0, prior.dof, scale)

    def neg(cov_store):
        full = model.to_full(cov_store, k, d)
        return 0.5 * families.objective(counts, scatter, full) - model.log_prior(
            cov_store, prior.dof, scale
        )

    def f(theta):
        full = _family_covariances(name, theta, k, d)
        store = np.diagonal(full, axis1=1, axis2=2) if diagonal else full
        return neg(store)

    rng = np.random.default_rng(1)
    best = min(
        (optimize.minimize(f, rng.normal(scale=0.3, size=_n_theta(name, k, d)), method="BFGS")
         for _ in range(3)), key=lambda r: r.fun,
    )  # fmt: skip
    assert neg(ours) <= best.fun + 1e-7 * abs(best.fun)


@pytest.mark.parametrize("name", ["VEE", "EVE", "VVE", "EVV"])
def test_families_without_a_prior_raise(name):
    X = load_faithful().to_numpy()
    with pytest.raises(ValueError, match="no conjugate prior"):
        GaussianMixture(2, covariance_type=name, prior="default").fit(X)


# -- the hierarchical start ---------------------------------------------------------------
def test_hc_criterion_by_hand():
    alpha, beta, p = 0.7, 1.0, 2
    # two points: n <= p, n log(beta (tr W + alpha) / n)
    W = np.array([[0.5, 0.0], [0.0, 0.0]])
    assert np.isclose(_terms(np.array([2.0]), W[None], alpha, beta, p)[0],
                      2 * np.log((0.5 + alpha) / 2))  # fmt: skip
    # three points: n > p, n log(|W/n| + beta (tr W + alpha) / n)
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    W = (pts - pts.mean(0)).T @ (pts - pts.mean(0))
    expected = 3 * np.log(np.linalg.det(W / 3) + (np.trace(W) + alpha) / 3)
    assert np.isclose(_terms(np.array([3.0]), W[None], alpha, beta, p)[0], expected)


def test_hc_merge_order_on_a_few_points():
    # Two equally tight pairs: the tie goes to the pair mclust's Fortran finds last
    # (highest slot), then the other pair, then the two pairs together.
    Z = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0], [5.0, 1.0]])
    merges = hc_vvv(Z)
    first = (sorted(merges[0][0].tolist()), sorted(merges[0][1].tolist()))
    assert first == ([2], [3])
    second = (sorted(merges[1][0].tolist()), sorted(merges[1][1].tolist()))
    assert second == ([0], [1])
    # closest pair first when there is no tie
    Z = np.array([[0.0, 0.0], [3.0, 0.1], [3.2, 0.0], [9.0, 4.0], [0.5, 8.0]])
    a, b = hc_vvv(Z)[0]
    assert sorted([int(a[0]), int(b[0])]) == [1, 2]
    parts = hc_partitions(Z, [1, 4, 5])
    assert len(np.unique(parts[4])) == 4
    assert parts[4][1] == parts[4][2]


def test_qclass_matches_mclusts_quantile_classes():
    x = np.arange(10.0)
    np.testing.assert_array_equal(qclass(x, 2), [0] * 5 + [1] * 5)
    assert sorted(np.bincount(qclass(x, 3))) == [3, 3, 4]


def test_svd_transform_whitens():
    X = load_faithful().to_numpy()
    Z = svd_transform(X)
    s = np.linalg.svd((X - X.mean(0)) / X.std(0, ddof=1), compute_uv=False)
    np.testing.assert_allclose(Z.T @ Z, np.diag(s), atol=1e-8)


# -- published figures -------------------------------------------------------------------
# Fraley, Raftery, Murphy & Scrucca (2012), TR 597, p. 8: mclustBIC(faithful), mclust's sign.
FAITHFUL_PUBLISHED = {
    (1, "EII"): -4024.7, (1, "VII"): -4024.7, (1, "EEI"): -3055.8, (1, "VEI"): -3055.8,
    (1, "EVI"): -3055.8, (1, "VVI"): -3055.8, (1, "EEE"): -2607.6, (1, "EEV"): -2607.6,
    (1, "VEV"): -2607.6, (1, "VVV"): -2607.6, (2, "EII"): -3453.0, (2, "VII"): -3458.3,
    (2, "EEI"): -2354.6, (2, "VVI"): -2346.1, (2, "EEE"): -2325.2, (2, "VVV"): -2322.2,
    (3, "EEE"): -2314.3,
}  # fmt: skip


def test_faithful_published_bic_cells():
    X = load_faithful()
    cells = {}
    for k in (1, 2, 3):
        for name in sorted({c for kk, c in FAITHFUL_PUBLISHED if kk == k}):
            gm = GaussianMixture(k, covariance_type=name, init_params="hc", tol=1e-8,
                                 max_iter=2000, reg_covar=0.0).fit(X)  # fmt: skip
            cells[(k, name)] = -gm.bic(X)
    for key, value in FAITHFUL_PUBLISHED.items():
        assert abs(cells[key] - value) < 0.1, (key, cells[key], value)


@pytest.mark.slow
def test_faithful_grid_all_families_best_is_eee3():
    sel = select_model(load_faithful(), range(1, 10), "all", init_params="hc", n_init=1,
                       tol=1e-8, max_iter=2000, reg_covar=0.0)  # fmt: skip
    assert sel.best_params == {"n_components": 3, "covariance_type": "EEE"}
    assert abs(-sel.table["bic"].min() - (-2314.3)) < 0.1


# -- LAPACK called directly (small-data speed) ------------------------------------------
@pytest.mark.parametrize("d", [1, 2, 5])
def test_direct_lapack_helpers_match_numpy(d):
    """The M-steps call LAPACK's syevd / gesdd / potrf+trtri without NumPy's or SciPy's
    wrappers; the results must be NumPy's eigh, the polar factor from NumPy's SVD and
    scipy's inv(cholesky).T."""
    rng = np.random.default_rng(d)
    a = rng.normal(size=(d, d))
    sym = a @ a.T + 0.1 * np.eye(d)
    values, vectors = families._eigh_desc(sym)
    ref_values, ref_vectors = np.linalg.eigh(sym)
    np.testing.assert_allclose(values, ref_values[::-1], rtol=1e-13)
    np.testing.assert_allclose(vectors @ np.diag(values) @ vectors.T, sym, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.abs(vectors), np.abs(ref_vectors[:, ::-1]), atol=1e-10)
    p, _, rt = np.linalg.svd(a)
    np.testing.assert_allclose(families._minus_polar(a), -p @ rt, atol=1e-12)
    stack = np.stack([sym, sym + np.eye(d), 2.0 * sym])
    reference = np.stack(
        [linalg.solve_triangular(linalg.cholesky(s, lower=True), np.eye(d), lower=True).T
         for s in stack]
    )  # fmt: skip
    full = get_covariance_model("full").precision_cholesky(stack)
    np.testing.assert_allclose(full, reference, rtol=1e-12, atol=1e-14)
    assert not np.tril(full, -1).any()  # exactly triangular
    tied = get_covariance_model("tied").precision_cholesky(stack[1])
    np.testing.assert_allclose(tied, reference[1], rtol=1e-12, atol=1e-14)
    bad = stack.copy()
    bad[1] = -np.eye(d)
    with pytest.raises(ValueError, match="component 1"):
        get_covariance_model("full").precision_cholesky(bad)
    bad[1] = np.nan
    with pytest.raises(ValueError, match="component 1"):
        get_covariance_model("full").precision_cholesky(bad)


@pytest.mark.parametrize("name", MCLUST_FAMILIES)
def test_scale_equivariant_families_are_closed_under_column_scaling(name):
    """``scale_equivariant`` against a membership test: the family's M-step from the
    scatter ``n_k Sigma_k`` returns ``Sigma_k`` exactly when ``Sigma_k`` is in the
    family (it is the maximizer over the family). A fitted member, rescaled per column
    (S Sigma_k S), stays a member exactly for the flagged families."""
    model = get_covariance_model(name)
    X = make_mixture(300, n_components=3, n_features=3, separation=4, random_state=1).X
    fit = GaussianMixture(3, covariance_type=name, random_state=0, n_init=1).fit(X)
    full = model.to_full(fit.covariances_, 3, 3)
    nk = np.array([50.0, 80.0, 120.0])
    zeros = np.zeros((3, 3))
    control = InnerControl(tol=1e-14, max_iter=10_000)

    def refit_error(target):
        sxx = model.second_moment_from_full(nk[:, None, None] * target)
        scatter = model.scatter(nk, zeros, sxx, zeros)
        start = model.update_from(nk, scatter, 0.0)
        got = model.update_from(nk, scatter, 0.0, previous=start, control=control)
        return np.abs(model.to_full(got, 3, 3) - target).max() / np.abs(target).max()

    assert refit_error(full) < 1e-5  # the membership test recognizes a member
    s = np.array([0.3, 2.0, 5.0])
    scaled = refit_error(full * np.outer(s, s))
    if model.scale_equivariant:
        assert scaled < 1e-9
    else:
        assert scaled > 1e-2
