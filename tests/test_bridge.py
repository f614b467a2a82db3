"""Bridge sampling (core/bridge.py): normalizers against closed forms, the error
estimate against the spread of repeated estimates, mode masses against known weights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from bayesgmm.core.bridge import (
    bridge_log_normalizer,
    chain_log_masses,
    fit_normal,
    integrated_time,
    split_inconsistent,
)

P = 3
A = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 0.5]])  # precision
LOG_Z = 0.5 * P * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(A)[1] + 1.7


def _log_p(theta):
    """exp(1.7) x an unnormalized N(0, A^-1): normalizer LOG_Z."""
    return -0.5 * np.einsum("mi,ij,mj->m", theta, A, theta) + 1.7


def _ar1_draws(rng, n, phi, cov):
    """A stationary AR(1) chain with marginal N(0, cov), shape (n, P)."""
    chol = np.linalg.cholesky(cov)
    e = rng.standard_normal((n, cov.shape[0])) @ chol.T
    out = np.empty_like(e)
    out[0] = e[0]
    for t in range(1, n):
        out[t] = phi * out[t - 1] + np.sqrt(1 - phi**2) * e[t]
    return out


def _estimate(rng, n, phi):
    draws = _ar1_draws(rng, n, phi, np.linalg.inv(A))
    q = fit_normal(draws[: n // 2])
    kept = draws[n // 2 :]
    proposal = q.sample(rng, kept.shape[0])
    tau = np.median([integrated_time(kept[:, j]) for j in range(P)])
    return bridge_log_normalizer(
        _log_p(kept), q.logpdf(kept), _log_p(proposal), q.logpdf(proposal),
        n_eff=kept.shape[0] / tau,
    )  # fmt: skip


def test_normal_proposal_is_scipys():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, P)) @ np.diag([1.0, 2.0, 0.5])
    q = fit_normal(x)
    ref = stats.multivariate_normal(x.mean(0), np.cov(x.T))
    np.testing.assert_allclose(q.logpdf(x[:7]), ref.logpdf(x[:7]), rtol=1e-12)
    draws = q.sample(rng, 20000)
    np.testing.assert_allclose(np.cov(draws.T), np.cov(x.T), rtol=0.05, atol=0.02)


def test_integrated_time_of_an_ar1_chain_is_its_closed_form():
    rng = np.random.default_rng(1)
    for phi in (0.0, 0.5, 0.8):
        x = _ar1_draws(rng, 40000, phi, np.eye(1))[:, 0]
        assert integrated_time(x) == pytest.approx((1 + phi) / (1 - phi), rel=0.1)


@pytest.mark.parametrize("phi", [0.0, 0.6])
def test_log_normalizer_and_its_error_are_right(phi):
    """Normalizer of a correlated normal with a known constant: the estimates over 40
    repetitions centre on the closed form, and their spread is the reported standard
    error (also for autocorrelated draws, where ignoring the autocorrelation would
    understate it)."""
    rng = np.random.default_rng(2)
    estimates = [_estimate(rng, 1000, phi) for _ in range(40)]
    values = np.array([e.log_normalizer for e in estimates])
    se = np.array([e.se for e in estimates])
    assert all(e.converged for e in estimates)
    assert abs(values.mean() - LOG_Z) < 4 * values.std(ddof=1) / np.sqrt(values.size)
    assert 0.6 < values.std(ddof=1) / np.sqrt(np.mean(se**2)) < 1.6


def test_draws_outside_the_density_are_an_error():
    with pytest.raises(ValueError, match="not finite at some of its own draws"):
        bridge_log_normalizer(np.array([0.0, -np.inf]), np.zeros(2), np.zeros(3), np.zeros(3))


def _two_modes(weights=(0.95, 0.05), const=2.0):
    """exp(const) x (w1 N(m1, S1) + w2 N(m2, S2)) in 2-D: mode masses w exp(const)."""
    m = [np.array([-4.0, 0.0]), np.array([4.0, 1.0])]
    S = [np.array([[1.0, 0.5], [0.5, 1.0]]), np.array([[0.5, 0.0], [0.0, 2.0]])]
    comps = [stats.multivariate_normal(mi, Si) for mi, Si in zip(m, S, strict=True)]

    def log_p(theta):
        return const + logsumexp(
            [np.log(w) + c.logpdf(theta) for w, c in zip(weights, comps, strict=True)], axis=0
        )

    return log_p, m, S


def test_mode_masses_match_the_known_weights():
    """Three chains in the heavy mode, one in the light one (which pooling would give
    25%): the groups' log masses are log(w_g) + const, the weights w / chains."""
    log_p, m, S = _two_modes()
    rng = np.random.default_rng(3)
    draws = np.stack(
        [m[0] + _ar1_draws(rng, 1000, 0.5, S[0]) for _ in range(3)]
        + [m[1] + _ar1_draws(rng, 1000, 0.5, S[1])]
    )
    res = chain_log_masses(draws, log_p, np.array([0, 0, 0, 1]), random_state=0)
    want = np.log([0.95, 0.05]) + 2.0
    assert np.all(np.abs(res.group_log_mass - want) < 4 * res.group_log_mass_se + 1e-3)
    np.testing.assert_allclose(res.weights, [0.95 / 3] * 3 + [0.05], rtol=0.05)
    assert res.group_consistency[0] < 5.0
    np.testing.assert_allclose(res.weights.sum(), 1.0)


def test_a_light_mode_next_to_a_heavy_one_is_not_inflated():
    """A light mode (1%) whose proposal reaches a heavy neighbour 99 times heavier, 5 sd
    away, each chain restricted to its side of the saddle region (exact draws by
    rejection): the optimal bridge bounds what proposal draws in the heavy mode add,
    so the light mode's mass stays its own, well below the heavy one's spill-over."""
    comps = [stats.norm(0.0, 1.0), stats.norm(5.0, 1.0)]
    w = np.array([0.99, 0.01])

    def log_p(theta):
        return logsumexp(
            [np.log(wi) + c.logpdf(theta[:, 0]) for wi, c in zip(w, comps, strict=True)], axis=0
        )

    rng = np.random.default_rng(4)
    heavy = rng.normal(0.0, 1.0, 5000)
    heavy = heavy[heavy < 2.5][:2000]
    light = rng.normal(5.0, 1.0, 5000)
    light = light[light > 2.5][:2000]
    res = chain_log_masses(np.stack([heavy, light])[..., None], log_p, np.array([0, 1]),
                           random_state=0)  # fmt: skip
    mass = np.exp(res.group_log_mass)
    assert abs(mass[0] - 0.99) < 0.01
    # between the light component's own mass (0.010) and that of its side of 2.5 (0.016)
    assert 0.008 < mass[1] < 0.017


def test_chains_of_one_mode_in_different_labellings_get_its_mass():
    """A label-symmetric density: mode (a, b) and its copy (b, a) have equal mass. A
    group with one chain in each copy estimates one copy's mass (not two)."""

    def log_p(theta):
        a = stats.multivariate_normal([-2.0, 2.0], 0.3 * np.eye(2)).logpdf(theta)
        b = stats.multivariate_normal([2.0, -2.0], 0.3 * np.eye(2)).logpdf(theta)
        c = stats.multivariate_normal([0.0, 5.0], 0.3 * np.eye(2)).logpdf(theta)
        d = stats.multivariate_normal([5.0, 0.0], 0.3 * np.eye(2)).logpdf(theta)
        return logsumexp([np.log(0.4) + a, np.log(0.4) + b, np.log(0.1) + c, np.log(0.1) + d], 0)

    rng = np.random.default_rng(5)
    sd = np.sqrt(0.3)
    draws = np.stack(
        [
            rng.normal([-2.0, 2.0], sd, (800, 2)),
            rng.normal([2.0, -2.0], sd, (800, 2)),  # the same mode, labels swapped
            rng.normal([0.0, 5.0], sd, (800, 2)),
        ]
    )
    res = chain_log_masses(draws, log_p, np.array([0, 0, 1]), random_state=0)
    np.testing.assert_allclose(np.exp(res.group_log_mass), [0.4, 0.1], rtol=0.05)
    np.testing.assert_allclose(res.weights, [0.4, 0.4, 0.2], rtol=0.05)


def test_well_mixed_chains_get_equal_weights_even_as_separate_groups():
    """Four chains of one mode, each its own group: each estimates the mode's mass, and
    their weights are equal within the estimates' noise; in one group they are
    consistent and split_inconsistent keeps them together."""
    log_p, m, S = _two_modes()
    rng = np.random.default_rng(6)
    draws = np.stack([m[0] + _ar1_draws(rng, 1000, 0.3, S[0]) for _ in range(4)])
    res = chain_log_masses(draws, log_p, np.arange(4), random_state=1)
    np.testing.assert_allclose(res.weights, 0.25, atol=0.03)
    np.testing.assert_allclose(res.group_log_mass, np.log(0.95) + 2.0, atol=0.05)
    one = chain_log_masses(draws, log_p, np.zeros(4, dtype=int), random_state=1)
    np.testing.assert_allclose(one.weights, 0.25, atol=1e-12)
    assert one.group_consistency[0] < 5.0
    assert split_inconsistent(one.log_mass, one.log_mass_se, np.zeros(4, int)).tolist() == [0] * 4


def test_a_chain_that_covers_more_mass_is_split_off():
    log_p, m, S = _two_modes(weights=(0.5, 0.5))
    rng = np.random.default_rng(7)
    light = [m[0] + _ar1_draws(rng, 1000, 0.3, S[0]) for _ in range(2)]
    # a chain that samples both modes: its region holds both masses
    both = np.concatenate(
        [m[0] + _ar1_draws(rng, 500, 0.3, S[0]), m[1] + _ar1_draws(rng, 500, 0.3, S[1])]
    )
    both = both[rng.permutation(1000)]
    res = chain_log_masses(np.stack([*light, both]), log_p, np.zeros(3, int), random_state=0)
    assert res.log_mass[2] - res.log_mass[0] > 0.4  # about log 2
    assert res.group_consistency[0] > 10
    assert split_inconsistent(res.log_mass, res.log_mass_se, np.zeros(3, int)).tolist() == [
        0,
        0,
        1,
    ]


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="chains, draws, P"):
        chain_log_masses(np.zeros((10, 2)), lambda t: np.zeros(len(t)), np.zeros(10, int))
    with pytest.raises(ValueError, match="at least 8 draws"):
        chain_log_masses(np.zeros((2, 4, 1)), lambda t: np.zeros(len(t)), np.zeros(2, int))
    with pytest.raises(ValueError, match="groups"):
        chain_log_masses(np.zeros((2, 40, 1)), lambda t: np.zeros(len(t)), np.zeros(3, int))


def test_no_target_draw_under_the_proposal_gives_an_infinite_se_not_nan():
    """Target draws where the proposal has (numerically) no mass: the relative MSE's
    second term is 0/0; the estimate must say it cannot be trusted (se = inf), with no
    NaN and no warning."""
    import warnings

    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 500), rng.normal(60, 1, 500)

    def log_p(t):
        return -0.5 * t**2

    def log_q(t):
        return stats.norm(60, 1).logpdf(t)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = bridge_log_normalizer(log_p(x), log_q(x), log_p(y), log_q(y))
    assert est.se == np.inf
