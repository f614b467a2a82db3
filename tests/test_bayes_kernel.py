"""The numba kernel nutpie samples: value and gradient equal the PyMC model's.

The reference is :func:`bayesgmm.bayes.build_model`'s ``logp()`` (Jacobians included)
and its PyTensor gradient, evaluated with the Python linker at the same unconstrained
point, and central finite differences of the kernel itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytensor.compile.mode import Mode

from bayesgmm.bayes import _kernel as kern
from bayesgmm.bayes import build_model
from bayesgmm.core.covariance import COVARIANCE_TYPES
from bayesgmm.core.unconstrained import unconstrained_layout
from bayesgmm.priors import (
    PRIOR_NAMES,
    CovariancePrior,
    DirichletPrior,
    GMMPrior,
    NormalMeanPrior,
    resolve_prior,
)

FAST = Mode(linker="py", optimizer="fast_run")
K = 3


def _data(n_features: int, n_samples: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(K, n_features))
    return centers[np.arange(n_samples) % K] + rng.normal(size=(n_samples, n_features))


def _priors(X: np.ndarray, covariance_type: str) -> dict[str, GMMPrior]:
    d = X.shape[1]
    rng = np.random.default_rng(5)
    a = rng.normal(size=(d, d))
    spd = a @ a.T + np.eye(d)
    per_feature = np.linspace(0.5, 2.0, d)
    scale = {"full": spd, "tied": spd, "diag": per_feature, "VEI": per_feature, "EVI": per_feature}
    scale = scale.get(covariance_type, 1.7)
    default = GMMPrior.default(X, K, covariance_type)
    return {
        "default": default,
        "independent": GMMPrior(
            weights=DirichletPrior(np.array([1.5, 2.0, 3.0])),
            means=NormalMeanPrior.independent(X.mean(axis=0) + 1.0, covariance=3.0 * spd),
            covariances=CovariancePrior(dof=d + 1.5, scale=scale),
        ),
        "flat": GMMPrior(),
        "flat_covariances": GMMPrior(default.weights, default.means, None),
    }


def _pymc_reference(model, covariance_type: str):
    """theta -> (logp, gradient) of the PyMC model at the kernel's vector ``theta``
    (its layout: :func:`bayesgmm.core.unconstrained.unconstrained_layout`, whose value
    names and shapes must be the model's)."""
    n_features = len(model.coords["feature"])
    layout = unconstrained_layout(K, n_features, covariance_type)
    shapes = {name: value.shape for name, value in model.initial_point().items()}
    assert shapes == dict(zip(layout.names, layout.shapes, strict=True))
    slices = dict(zip(layout.names, layout.slices, strict=True))
    logp_fn = model.compile_logp(jacobian=True, mode=FAST)
    dlogp_fn = model.compile_dlogp(mode=FAST)  # in model.value_vars order

    def reference(theta):
        point = layout.split(theta)
        dlogp = dlogp_fn(point)
        grad = np.empty_like(theta)
        pos = 0
        for value in model.value_vars:
            where = slices[value.name]
            n = where.stop - where.start
            grad[where] = dlogp[pos : pos + n]
            pos += n
        return float(logp_fn(point)), grad

    return reference


PRIORS = ("default", "independent", "flat", "flat_covariances")
# one prior form per covariance type in the default suite (each case compiles two PyMC
# graphs); every combination, and D = 1 and 3, in the slow suite
FAST_CASES = [(ct, 2, p) for ct, p in zip(COVARIANCE_TYPES, PRIORS, strict=True)] + [
    ("EII", 3, "independent"),
    ("EEI", 2, "default"),
    ("VEI", 3, "independent"),
    ("EVI", 1, "flat_covariances"),
]
SLOW_CASES = [
    pytest.param(ct, d, p, marks=pytest.mark.slow)
    for ct, d in [(ct, 2) for ct in kern.SUPPORTED_TYPES]
    + [("full", 3), ("tied", 1), ("spherical", 3), ("EII", 3), ("EEI", 3), ("EII", 1)]
    + [("VEI", 3), ("EVI", 3), ("VEI", 1), ("EVI", 1)]
    for p in PRIORS
    if (ct, d, p) not in FAST_CASES
]


@pytest.mark.parametrize(("covariance_type", "n_features", "prior_name"), FAST_CASES + SLOW_CASES)
def test_kernel_equals_pymc_logp_and_gradient(covariance_type, n_features, prior_name):
    X = _data(n_features)
    rng = np.random.default_rng(11)
    prior = _priors(X, covariance_type)[prior_name]
    km = kern.make_kernel_model(X, prior, covariance_type, K)
    model = build_model(X, K, covariance_type=covariance_type, prior=prior)
    reference = _pymc_reference(model, covariance_type)
    for _ in range(2):
        theta = 0.4 * rng.normal(size=km.n_dim)
        theta[K - 1 : K - 1 + K * n_features] += X[:K].ravel()
        logp, grad = km.logp_and_grad(theta)
        ref_logp, ref_grad = reference(theta)
        np.testing.assert_allclose(logp, ref_logp, rtol=1e-10)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-8, atol=1e-8)


def test_gradient_matches_finite_differences():
    X = _data(2)
    km = kern.make_kernel_model(X, GMMPrior.default(X, K, "full"), "full", K)
    theta = 0.3 * np.random.default_rng(2).normal(size=km.n_dim)
    _, grad = km.logp_and_grad(theta)
    eps = 1e-6
    fd = np.array(
        [
            (km.logp_and_grad(theta + eps * e)[0] - km.logp_and_grad(theta - eps * e)[0])
            / (2 * eps)
            for e in np.eye(km.n_dim)
        ]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("covariance_type", kern.SUPPORTED_TYPES)
def test_unconstrained_round_trip(covariance_type):
    rng = np.random.default_rng(0)
    d = 3
    a = rng.normal(size=(K, d, d))
    full = a @ np.swapaxes(a, 1, 2) + np.eye(d)
    cov = {
        "full": full,
        "tied": full[0],
        "diag": rng.uniform(0.5, 2.0, (K, d)),
        "spherical": rng.uniform(0.5, 2.0, K),
        "EEI": np.broadcast_to(rng.uniform(0.5, 2.0, d), (K, d)),
        "EII": np.full((K, d), 1.3),
        "VEI": rng.uniform(0.5, 2.0, (K, 1)) * np.array([0.5, 1.0, 2.0]),
        "EVI": 1.3 * np.array([[0.5, 1.0, 2.0], [4.0, 0.5, 0.5], [1.0, 1.0, 1.0]]),
    }[covariance_type]
    params = {
        "weights": rng.dirichlet(np.ones(K)),
        "means": rng.normal(size=(K, d)),
        "covariances": cov,
    }
    theta = kern.to_unconstrained(params, covariance_type)
    assert theta.shape == (kern.n_dim(covariance_type, K, d),)
    back = kern.to_constrained(np.stack([theta, theta]), covariance_type, K, d)
    for value, name in zip(back, ("weights", "means", "covariances"), strict=True):
        np.testing.assert_allclose(value[1], params[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance_type", kern.SUPPORTED_TYPES)
def test_vectorized_log_likelihood_and_memberships_match_the_chunk_kernel(covariance_type):
    from bayesgmm.bayes._sampling import mean_responsibilities, pointwise_log_likelihood
    from bayesgmm.core.covariance import get_covariance_model
    from bayesgmm.core.density import log_mixture_density, responsibilities
    from bayesgmm.core.params import GMMParams

    X = _data(3, n_samples=25)
    rng = np.random.default_rng(4)
    theta = 0.3 * rng.normal(size=(2, 3, kern.n_dim(covariance_type, K, 3)))
    theta[..., K - 1 : K - 1 + 3 * K] += X[:K].ravel()
    w, mu, cov = kern.to_constrained(theta, covariance_type, K, 3)
    loglik = pointwise_log_likelihood(X, w, mu, cov, covariance_type, max_floats=500)
    assert loglik.shape == (2, 3, 25)
    table = get_covariance_model(covariance_type)
    total = 0.0
    for c in range(2):
        for s in range(3):
            params = GMMParams(w[c, s], mu[c, s], cov[c, s], table.precision_cholesky(cov[c, s]))
            expected = log_mixture_density(X, params, covariance_type)
            np.testing.assert_allclose(loglik[c, s], expected, rtol=1e-10)
            total = total + np.exp(responsibilities(X, params, covariance_type)[1])
    members = mean_responsibilities(X, w, mu, cov, covariance_type, max_floats=500)
    np.testing.assert_allclose(members, total / 6, rtol=1e-10, atol=1e-14)


def test_unknown_prior_forms_fall_back_to_the_pymc_model():
    import dataclasses

    X = _data(2)
    # every named prior (their name and note are descriptive fields) takes the fast path
    for name in PRIOR_NAMES:
        for covariance_type in kern.SUPPORTED_TYPES:
            named = resolve_prior(name, X, K, covariance_type)
            assert kern.supports(named, covariance_type), (name, covariance_type)
    prior = GMMPrior.default(X, K, "full")
    assert not kern.supports(prior, "VEV")

    @dataclasses.dataclass(frozen=True)
    class HeavierTailPrior(CovariancePrior):  # a new field the kernel does not know
        tail: float = 1.0

    other = GMMPrior(prior.weights, prior.means, HeavierTailPrior(dof=4.0, scale=1.0))
    assert not kern.supports(other, "full")


def test_mclust_aliases_take_the_same_kernel():
    """VVV, EEE, VVI, VII (and E, V) are the same entries as full, tied, diag,
    spherical (and EII, VII): the same buffer, vector and density."""
    aliases = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}
    for alias, name in aliases.items():
        X = _data(2)
        prior = GMMPrior.default(X, K, name)
        assert kern.supports(prior, alias)
        km_alias = kern.make_kernel_model(X, prior, alias, K)
        km = kern.make_kernel_model(X, prior, name, K)
        np.testing.assert_array_equal(km_alias.buffer, km.buffer)
        theta = 0.3 * np.random.default_rng(1).normal(size=km.n_dim)
        assert km_alias.n_dim == km.n_dim
        np.testing.assert_array_equal(km_alias.logp_and_grad(theta)[1], km.logp_and_grad(theta)[1])
        for a, b in zip(
            kern.to_constrained(theta, alias, K, 2),
            kern.to_constrained(theta, name, K, 2),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    X1 = _data(1)
    for alias, name in {"E": "EII", "V": "spherical"}.items():
        prior = GMMPrior.default(X1, K, name)
        np.testing.assert_array_equal(
            kern.pack(X1, prior, alias, K), kern.pack(X1, prior, name, K)
        )


# --------------------------------------------------------------------------------------
# The blocked likelihood (rows in blocks of _BLOCK, one log per _LOG_GROUP rows, the
# vectorized exp): many blocks, a partial last block, rows far from every component
# --------------------------------------------------------------------------------------


def _covariance_matrices(cov: np.ndarray, covariance_type: str, d: int) -> np.ndarray:
    """(K, D, D) covariance matrices from the kernel's constrained covariances."""
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (K, d, d))
    if covariance_type == "spherical":
        return cov[:, None, None] * np.eye(d)
    return np.stack([np.diag(c) for c in cov])  # diag, EEI, EII: (K, D)


def _blocked_case(covariance_type: str, d: int, seed: int = 3):
    from bayesgmm.bayes import _kernel_numba as kn

    rng = np.random.default_rng(seed)
    n = 2 * kn._BLOCK + kn._LOG_GROUP + 5  # two full blocks, a partial one and group
    X = _data(d, n_samples=n, seed=seed)
    X[:4] += 40.0 * rng.normal(size=(4, d))  # outliers: exp(lg - top) underflows to 0
    theta = 0.4 * rng.normal(size=kern.n_dim(covariance_type, K, d))
    theta[K - 1 : K - 1 + K * d] += X[10 : 10 + K].ravel()
    return X, theta


@pytest.mark.parametrize("n_features", [1, 2, 5])
@pytest.mark.parametrize("covariance_type", kern.SUPPORTED_TYPES)
def test_blocked_likelihood_matches_scipy(covariance_type, n_features):
    """Under a flat prior the kernel's value minus its value on no data is the mixture
    log-likelihood; against scipy's multivariate normal log-densities."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    X, theta = _blocked_case(covariance_type, n_features)
    prior = GMMPrior()
    full = kern.make_kernel_model(X, prior, covariance_type, K).logp_and_grad(theta)[0]
    empty = kern.make_kernel_model(X[:0], prior, covariance_type, K).logp_and_grad(theta)[0]
    w, mu, cov = kern.to_constrained(theta, covariance_type, K, n_features)
    sigmas = _covariance_matrices(cov, covariance_type, n_features)
    log_dens = np.stack(
        [
            np.log(w[k]) + multivariate_normal(mu[k], sigmas[k]).logpdf(X).reshape(-1)
            for k in range(K)
        ],
        axis=1,
    )
    expected = logsumexp(log_dens, axis=1).sum()
    np.testing.assert_allclose(full - empty, expected, rtol=1e-11)


@pytest.mark.parametrize("n_features", [1, 2, 5])
@pytest.mark.parametrize("covariance_type", kern.SUPPORTED_TYPES)
def test_blocked_gradient_matches_finite_differences(covariance_type, n_features):
    X, theta = _blocked_case(covariance_type, n_features, seed=7)
    km = kern.make_kernel_model(X, GMMPrior.default(X, K, covariance_type), covariance_type, K)
    _, grad = km.logp_and_grad(theta)
    eps = 1e-5
    fd = np.array(
        [
            (km.logp_and_grad(theta + eps * e)[0] - km.logp_and_grad(theta - eps * e)[0])
            / (2 * eps)
            for e in np.eye(km.n_dim)
        ]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-4)


def test_vectorized_exp_matches_numpy():
    from bayesgmm.bayes import _kernel_numba as kn

    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            -rng.exponential(5.0, 200),
            -rng.uniform(0.0, 707.9, 200),
            [0.0, -0.0, -1e-300, -0.34657359, -0.34657360, -707.99, -708.0, -709.0],
            [-1e4, -np.inf, np.nan],
        ]
    )
    rows = np.stack([x, x[::-1]])
    bits = np.empty(x.size, dtype=np.int64)
    kn._exp_nonpositive(rows, 1, bits, x.size)
    got = rows[1][::-1]
    np.testing.assert_array_equal(rows[0], x)  # the other row is untouched
    ok = x > -708.0
    np.testing.assert_allclose(got[ok], np.exp(x[ok]), rtol=4e-16, atol=0)
    assert np.all(got[x <= -708.0] == 0.0)
    assert np.isnan(got[-1])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_non_finite_parameters_give_a_non_finite_gradient(covariance_type):
    """nutpie rejects a step on the callback's status (non-finite gradient or value);
    a NaN parameter must not come out as a finite density and gradient."""
    X, theta = _blocked_case(covariance_type, 2)
    km = kern.make_kernel_model(X, GMMPrior.default(X, K, covariance_type), covariance_type, K)
    theta[K - 1] = np.nan  # a mean
    logp, grad = km.logp_and_grad(theta)
    assert not (np.isfinite(logp) and np.all(np.isfinite(grad)))


_SAME_BITS = """
import sys
import numpy as np
from bayesgmm import GaussianMixture
from bayesgmm.bayes import _kernel as K
from bayesgmm.datasets import load_faithful
from bayesgmm.priors import resolve_prior
X = np.asarray(load_faithful(), dtype=float)
prior = resolve_prior("default", X, 3, "tied")
gm = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
buf = K.pack(X, prior, "tied", 3)
fit = {"weights": gm.weights_, "means": gm.means_, "covariances": gm.covariances_}
rng = np.random.default_rng(0)
out = []
for _ in range(5):
    theta = K.to_unconstrained(fit, "tied") + 0.05 * rng.standard_normal(K.n_dim("tied", 3, 2))
    lp, grad = K.logp_and_grad(theta, buf, "tied")
    out.append(np.r_[lp, grad])
np.save(sys.argv[1], np.array(out))
"""


def test_a_compiling_process_and_a_loading_one_compute_the_same_bits(tmp_path):
    """The process that finds numba's cache empty and the next one, which loads the
    cache, evaluate the kernel to the same bits (so one random_state gives one set of
    draws everywhere). Before the callbacks were compiled in a child process, the
    gradient of the compiling process differed in its last bits."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    script = tmp_path / "bits.py"
    script.write_text(_SAME_BITS)
    outs = [tmp_path / "cold.npy", tmp_path / "warm.npy"]
    for out in outs:
        subprocess.run([sys.executable, str(script), str(out)], check=True, env=env)
    cold, warm = (np.load(out) for out in outs)
    assert np.isfinite(cold).all()
    np.testing.assert_array_equal(cold, warm)
