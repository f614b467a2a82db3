"""stack_chains(method="mass") on PyMC models: chain weights by mode mass against grid
quadrature of a bimodal posterior; the unconstrained density against scipy."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from scipy import stats
from scipy.special import logsumexp

from bayesgmm.bayes import stack_chains
from bayesgmm.bayes.mass import pymc_density

SIGMA, PRIOR_SD, STEP = 1.5, 5.0, 0.03


def _data():
    """Three clusters (-5.5, 0, 5.5): with K = 2, equal weights and sd 1.5 the
    posterior of the means has two modes, {A}{B, C} (80% of the mass) and
    {A, B}{C} (20%), each with its label-swapped copy."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(c, 0.5, n) for c, n in ((-5.5, 20), (0.0, 20), (5.5, 18))])


def _model(y):
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, PRIOR_SD, shape=2)
        pm.HalfNormal("tau", 1.0)  # independent of the data: a transformed free variable
        pm.NormalMixture("y", w=np.array([0.5, 0.5]), mu=mu, sigma=SIGMA, observed=y)
    return model


def _grid(y):
    """log posterior (unnormalized, all constants; tau integrates to 1) on a grid of
    (mu_1, mu_2), with the cell area: logsumexp over cells = log of the mass."""
    g = np.arange(-9.0, 9.0, STEP) + STEP / 2
    m1, m2 = np.meshgrid(g, g, indexing="ij")
    const = np.log(0.5) - np.log(SIGMA * np.sqrt(2 * np.pi))
    like = np.zeros_like(m1)
    for yn in y:  # log(0.5 N(y_n | mu_1) + 0.5 N(y_n | mu_2)), summed over n
        like += const + np.logaddexp(
            -0.5 * ((yn - m1) / SIGMA) ** 2, -0.5 * ((yn - m2) / SIGMA) ** 2
        )
    prior = stats.norm.logpdf(m1, 0, PRIOR_SD) + stats.norm.logpdf(m2, 0, PRIOR_SD)
    return m1, m2, like + prior + 2 * np.log(STEP)


def _draws_in(rng, m1, m2, lp, region, n, swap=False):
    """Exact draws of the posterior restricted to one mode (cells by their mass,
    uniform within a cell), optionally with the labels swapped."""
    p = np.exp(lp[region] - lp[region].max())
    idx = rng.choice(p.size, size=n, p=p / p.sum())
    jitter = rng.uniform(-STEP / 2, STEP / 2, (n, 2))
    mu = np.column_stack([m1[region][idx], m2[region][idx]]) + jitter
    return mu[:, ::-1] if swap else mu


def _tree(y, mu, tau):
    ll = logsumexp(
        [np.log(0.5) + stats.norm.logpdf(y, mu[..., k, None], SIGMA) for k in range(2)], axis=0
    )
    return xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(
                {"mu": (("chain", "draw", "k"), mu), "tau": (("chain", "draw"), tau)}
            ),
            "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)}),
        }
    )


@pytest.fixture(scope="module")
def bimodal():
    y = _data()
    m1, m2, lp = _grid(y)
    domain = m1 < m2
    regions = [domain & (m1 + m2 < 0), domain & (m1 + m2 >= 0)]  # {A}{B,C}, {A,B}{C}
    rng = np.random.default_rng(1)
    n = 1000
    # one chain in the heavy mode, three in the light one (one with swapped labels)
    mu = np.stack(
        [
            _draws_in(rng, m1, m2, lp, regions[0], n),
            _draws_in(rng, m1, m2, lp, regions[1], n),
            _draws_in(rng, m1, m2, lp, regions[1], n, swap=True),
            _draws_in(rng, m1, m2, lp, regions[1], n),
        ]
    )
    tau = np.abs(rng.normal(size=(4, n)))
    return y, _model(y), _tree(y, mu, tau), (m1, m2, lp, regions)


def test_mode_masses_and_the_weighted_expectation_match_quadrature(bimodal):
    """The groups' log masses are the quadrature's (each mode's one labelled copy),
    the light mode gets its 20% (pooling gives it 75%), and the mass-weighted mean of
    max(mu) (label-free) is the posterior mean by quadrature."""
    _, model, tree, (m1, m2, lp, regions) = bimodal
    exact_log_mass = np.array([logsumexp(lp[r]) for r in regions])
    share = np.exp(exact_log_mass - logsumexp(exact_log_mass))
    assert 0.15 < share[1] < 0.25  # the constructed case is what the test claims
    result = stack_chains(tree, method="mass", model=model, random_state=0)
    assert result.method == "mass"
    assert result.groups.tolist() == [0, 1, 1, 1]
    err = np.abs(result.group_log_mass - exact_log_mass)
    assert np.all(err < 4 * result.group_log_mass_se + 0.01), (err, result.group_log_mass_se)
    np.testing.assert_allclose(result.weights, [share[0], *[share[1] / 3] * 3], rtol=0.05)
    np.testing.assert_allclose(result.weights.sum(), 1.0)
    # the swapped chain estimates the same mass as the others of its mode
    assert result.group_consistency[1] < 5.0
    # posterior mean of max(mu): quadrature over the whole plane (both copies)
    f_grid = np.maximum(m1, m2)
    p = np.exp(lp - lp.max())
    exact_mean = float((p * f_grid).sum() / p.sum())
    per_chain = tree["posterior"]["mu"].max("k").mean("draw").values
    mass_mean = float(result.weights @ per_chain)
    pooled = float(per_chain.mean())
    stacked = float(result.stacking_weights @ per_chain)
    assert abs(mass_mean - exact_mean) < 0.05
    assert abs(pooled - exact_mean) > 1.0
    assert abs(stacked - exact_mean) > abs(mass_mean - exact_mean)
    # the resampled posterior follows the mass weights
    resampled = result.posterior["mu"].max("k").values.ravel()
    assert abs(resampled.mean() - exact_mean) < 0.15
    assert result.posterior.attrs["weights_method"] == "mass"


def test_stacking_is_unchanged_by_the_new_method(bimodal):
    _, _, tree, _ = bimodal
    plain = stack_chains(tree, random_state=0)
    assert plain.method == "stacking"
    assert plain.log_mass is None
    np.testing.assert_allclose(plain.weights, plain.stacking_weights)


def test_mass_needs_the_model_and_matching_draws(bimodal):
    _, _, tree, _ = bimodal
    with pytest.raises(ValueError, match="model="):
        stack_chains(tree, method="mass")
    with pytest.raises(ValueError, match="Unknown method"):
        stack_chains(tree, method="bridge")
    with pm.Model() as other:
        pm.Normal("nu", 0.0, 1.0)
    with pytest.raises(ValueError, match="no draws of"):
        stack_chains(tree, method="mass", model=other)


def test_unconstrained_density_of_a_transform_with_a_random_bound():
    """x ~ Uniform(0, b), b ~ Gamma: x's interval transform depends on b's draw. The
    map gives (log b, logit(x / b)) and the density is scipy's with both Jacobians."""
    with pm.Model() as model:
        b = pm.Gamma("b", 2.0, 1.0)
        pm.Uniform("x", 0.0, b)
    density = pymc_density(model)
    rng = np.random.default_rng(0)
    bv = rng.gamma(2.0, 1.0, (2, 5))
    xv = rng.uniform(0, bv)
    post = xr.Dataset({"b": (("chain", "draw"), bv), "x": (("chain", "draw"), xv)})
    z = density.to_unconstrained(post)
    names = [rv.name for rv in model.free_RVs]
    zb, zx = z[..., names.index("b")], z[..., names.index("x")]
    np.testing.assert_allclose(zb, np.log(bv))
    np.testing.assert_allclose(zx, np.log(xv / bv) - np.log1p(-xv / bv))
    u = xv / bv
    want = (
        stats.gamma.logpdf(bv, 2.0) + np.log(bv)  # d b / d log b
        + stats.uniform.logpdf(xv, 0, bv) + np.log(bv * u * (1 - u))  # d x / d logit
    )  # fmt: skip
    np.testing.assert_allclose(density.log_density(z.reshape(-1, 2)), want.ravel(), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "EII", "VEI"])
def test_the_estimators_densities_agree_with_the_pymc_model(covariance_type):
    """The estimator's density on the kernel and in NumPy (used with NaN): the same
    vector from the same draws, and both equal to the PyMC model's ``logp()``
    (Jacobians included) at random points; in NumPy also with NaN in the data."""
    import pandas as pd

    from bayesgmm.bayes._kernel import make_kernel_model
    from bayesgmm.bayes.mass import kernel_density, numpy_density
    from bayesgmm.bayes.model import build_model
    from bayesgmm.core.unconstrained import unconstrained_layout
    from bayesgmm.priors import GMMPrior

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 1, (30, 2)), rng.normal(2, 1, (30, 2))])
    prior = GMMPrior.default(X, 2, covariance_type)
    layout = unconstrained_layout(2, 2, covariance_type)
    z = rng.normal(0, 0.5, (3, 4, layout.size))
    w, m, c = layout.backward(z)
    post = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), w),
            "means": (("chain", "draw", "component", "feature"), m),
            "covariances": (("chain", "draw", *[f"d{i}" for i in range(c.ndim - 2)]), c),
        }
    )
    flat = z.reshape(-1, layout.size)[:5]
    X_nan = X.copy()
    X_nan[[1, 5, 40], [0, 1, 1]] = np.nan
    for data in (X, X_nan):
        model = build_model(pd.DataFrame(data, columns=["a", "b"]), 2,
                            covariance_type=covariance_type, prior=prior)  # fmt: skip
        logp = model.compile_logp(mode="FAST_COMPILE")
        want = [float(logp(layout.split(v))) for v in flat]
        numpy = numpy_density(data, prior, covariance_type, 2)
        np.testing.assert_allclose(numpy.to_unconstrained(post), z, atol=1e-10)
        np.testing.assert_allclose(numpy.log_density(flat), want, rtol=1e-9)
        if data is X:
            kernel = kernel_density(make_kernel_model(X, prior, covariance_type, 2))
            np.testing.assert_allclose(kernel.to_unconstrained(post), z, atol=1e-10)
            np.testing.assert_allclose(kernel.log_density(flat), want, rtol=1e-9)


def _estimator_like(fitted):
    """What combine_estimator_chains reads of a fitted estimator."""
    from types import SimpleNamespace

    return SimpleNamespace(
        idata_=fitted.idata_,
        random_state=0,
        backend_=fitted.backend_,
        prior_=fitted.prior_,
        covariance_type=fitted.covariance_type,
        n_components=fitted.n_components,
    )


def test_the_estimators_well_mixed_chains_keep_equal_weights(two_blobs_posterior):
    """Two chains in one mode (the shared two-blob fit): one group, equal weights, and
    the two chains' bridge estimates of the mode's log mass agree within their errors."""
    from bayesgmm.bayes.stacking import combination_text, combine_estimator_chains
    from conftest import TWO_BLOBS

    result, error = combine_estimator_chains(_estimator_like(two_blobs_posterior), TWO_BLOBS.X)
    assert error is None
    assert result.method == "mass"
    assert result.groups.tolist() == [0, 0]
    np.testing.assert_allclose(result.weights, 0.5, atol=1e-12)
    gap = abs(result.log_mass[0] - result.log_mass[1])
    assert gap < 4 * np.hypot(*result.log_mass_se)
    assert "bridge sampling" in combination_text(result)


def test_the_estimator_falls_back_to_stacking_and_says_why(two_blobs_posterior, monkeypatch):
    """Where the bridge sampler fails (here made to: a chain whose draws' covariance is
    singular), the chains are stacked and the text says why."""
    import bayesgmm.core.bridge as bridge
    from bayesgmm.bayes.stacking import combination_text, combine_estimator_chains
    from conftest import TWO_BLOBS

    def failing(*args, **kwargs):
        raise np.linalg.LinAlgError("singular draws")

    monkeypatch.setattr(bridge, "chain_log_masses", failing)
    result, error = combine_estimator_chains(_estimator_like(two_blobs_posterior), TWO_BLOBS.X)
    assert result.method == "stacking"
    assert error == "singular draws"
    np.testing.assert_allclose(result.weights, result.stacking_weights)
    text = combination_text(result, error)
    assert "could not be estimated: singular draws" in text
    assert "stacking does not weight by posterior mass" in text
