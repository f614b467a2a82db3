"""Stephens' (2000) KL relabelling: brute force over all K! permutations, monotone
objective, and recovery of a known posterior from label-switched draws (both methods)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from bayesgmm import GaussianMixture, relabel_draws
from bayesgmm.bayes.relabel import (
    _relabel,
    classification_probabilities,
    stephens_objective,
    stephens_permutations,
)
from bayesgmm.core.params import GMMParams
from bayesgmm.datasets import make_mixture
from bayesgmm.diagnostics import params_to_dataset


def _naive_kl(p_draw: np.ndarray, q: np.ndarray) -> float:
    """sum_i KL(p_i || q_i), a plain loop (0 log 0 = 0)."""
    total = 0.0
    for i in range(p_draw.shape[0]):
        for k in range(p_draw.shape[1]):
            if p_draw[i, k] > 0:
                total += p_draw[i, k] * np.log(p_draw[i, k] / q[i, k])
    return total


def _naive_objective(probs: np.ndarray, perms) -> float:
    permuted = [probs[s][:, list(perms[s])] for s in range(len(probs))]
    q = np.mean(permuted, axis=0)
    return float(np.mean([_naive_kl(p, q) for p in permuted]))


def _switched_probabilities(rng, n_draws=12, n_points=7, n_components=3, conc=4.0):
    """Draws of membership probabilities around a common truth, each in a random order."""
    truth = rng.dirichlet(np.full(n_components, 0.7), size=n_points)
    probs = np.array([[rng.dirichlet(conc * 10 * t + 0.1) for t in truth] for _ in range(n_draws)])
    shuffles = np.array([rng.permutation(n_components) for _ in range(n_draws)])
    return np.take_along_axis(probs, shuffles[:, None, :], axis=2), shuffles


def test_each_draw_gets_the_brute_force_minimizer_of_the_kl_objective():
    rng = np.random.default_rng(0)
    probs, _ = _switched_probabilities(rng)
    result = stephens_permutations(probs)
    assert result.converged
    # at convergence each draw's permutation is the best of all K! against the final Q
    q = np.mean([probs[s][:, result.permutations[s]] for s in range(len(probs))], axis=0)
    np.testing.assert_allclose(result.q, q, rtol=1e-12)
    for s in range(len(probs)):
        kls = {
            perm: _naive_kl(probs[s][:, list(perm)], q)
            for perm in itertools.permutations(range(3))
        }
        best = min(kls, key=kls.get)
        assert kls[tuple(result.permutations[s])] == pytest.approx(kls[best], abs=1e-12)
    assert result.objective[-1] == pytest.approx(
        _naive_objective(probs, result.permutations), rel=1e-12
    )
    assert stephens_objective(probs, result.permutations) == pytest.approx(
        result.objective[-1], rel=1e-12
    )


def test_reaches_the_global_minimum_of_a_small_case():
    """Joint brute force over all labellings (first draw fixed: the objective is
    invariant to permuting every draw alike)."""
    rng = np.random.default_rng(1)
    probs, shuffles = _switched_probabilities(rng, n_draws=4, n_points=6)
    result = stephens_permutations(probs)
    perms = list(itertools.permutations(range(3)))
    best = min(
        _naive_objective(probs, [(0, 1, 2), *rest]) for rest in itertools.product(perms, repeat=3)
    )
    assert result.objective[-1] == pytest.approx(best, rel=1e-10)
    # and the labelling found undoes the shuffles up to one common permutation
    # (label k of draw s is true component shuffles[s, perms[s, k]])
    undone = np.take_along_axis(shuffles, result.permutations, axis=1)
    assert (undone == undone[0]).all()


def test_objective_never_increases_and_stops_when_no_permutation_changes():
    rng = np.random.default_rng(2)
    # weakly separated draws, identity start: several iterations before it settles
    probs, _ = _switched_probabilities(rng, n_draws=200, n_points=10, n_components=4, conc=0.3)
    result = stephens_permutations(probs)
    assert result.converged
    assert result.n_iter >= 3, result.n_iter  # else the check below would be empty
    assert (np.diff(result.objective) <= 1e-12 * np.abs(result.objective[:-1])).all()
    assert result.objective[0] > result.objective[-1]
    # the iterate's objectives are those of a naive computation at the same labelling
    start = stephens_objective(probs, np.tile(np.arange(4), (200, 1)))
    assert result.objective[0] == pytest.approx(start, rel=1e-12)
    # max_iter=1 stops early and says so
    assert not stephens_permutations(probs, max_iter=1).converged


DATA = make_mixture(
    300,
    n_components=3,
    n_features=2,
    means=[[0, 0], [2.2, 0], [0, 2.2]],  # overlapping: unit covariances
    random_state=4,
)


@pytest.fixture(scope="module")
def known_posterior():
    """A known 'posterior sample' around a fit on overlapping data, and its draws with
    the labels of every draw permuted at random (what a switching sampler returns)."""
    gm = GaussianMixture(3, covariance_type="full", random_state=0).fit(DATA.X)
    rng = np.random.default_rng(5)
    chains, n_draws = 4, 150
    p = gm._params()
    n_k = p.weights * DATA.X.shape[0]
    weights = rng.dirichlet(n_k, size=(chains, n_draws))
    sd = np.sqrt(np.diagonal(p.covariances, axis1=1, axis2=2) / n_k[:, None])  # (K, D)
    means = p.means + sd * rng.standard_normal((chains, n_draws, 3, 2))
    covs = np.broadcast_to(p.covariances, (chains, n_draws, 3, 2, 2)).copy()
    truth = params_to_dataset(
        GMMParams(weights, means, covs, np.zeros_like(covs)),
        "full",
        ["x0", "x1"],
        lead=("chain", "draw"),
    )
    shuffles = np.array([[rng.permutation(3) for _ in range(n_draws)] for _ in range(chains)])
    switched, _ = relabel_draws(truth, gm, permutations=shuffles)
    return gm, truth, switched, shuffles


@pytest.mark.parametrize("method", ["map", "stephens"])
def test_both_methods_recover_the_per_component_posterior(known_posterior, method):
    gm, truth, switched, shuffles = known_posterior
    truth_mean = truth["means"].mean(("chain", "draw")).values
    truth_sd = truth["means"].std(("chain", "draw")).values
    # the switched draws' per-component summaries are wrong: labels do switch
    assert np.abs(switched["means"].mean(("chain", "draw")).values - truth_mean).max() > 0.5
    fixed, perms = relabel_draws(switched, gm, method=method, X=DATA.X)
    # nearly every draw gets back its true labelling (the inverse of its shuffle) ...
    recovered = (perms == np.argsort(shuffles, axis=-1)).all(axis=-1)
    assert recovered.mean() > 0.98, recovered.mean()
    # ... and the per-component posterior is the truth's: means, sds, weights
    for name in ("means", "weights"):
        got = fixed[name].mean(("chain", "draw")).values
        want = truth[name].mean(("chain", "draw")).values
        np.testing.assert_allclose(got, want, atol=0.05 * truth_sd.max())
    np.testing.assert_allclose(fixed["means"].std(("chain", "draw")).values, truth_sd, rtol=0.1)


def test_stephens_agrees_with_the_map_match_where_the_draws_are_clear(known_posterior):
    gm, _truth, switched, _shuffles = known_posterior
    _, map_perms = relabel_draws(switched, gm)
    _, st_perms = relabel_draws(switched, gm, method="stephens", X=DATA.X)
    # the classification probabilities the algorithm aligns are the draws' own
    probs = classification_probabilities(switched.isel(chain=[0], draw=[3]), DATA.X, "full")
    w, m = switched["weights"].values[0, 3], switched["means"].values[0, 3]
    cov = switched["covariances"].values[0, 3]
    from scipy import stats

    dens = np.column_stack(
        [w[k] * stats.multivariate_normal(m[k], cov[k]).pdf(DATA.X) for k in range(3)]
    )
    np.testing.assert_allclose(probs[0], dens / dens.sum(1, keepdims=True), rtol=1e-10)
    assert (map_perms == st_perms).all(axis=-1).mean() > 0.97


def test_stephens_from_the_raw_labels_also_undoes_the_switches(known_posterior):
    _gm, _truth, switched, shuffles = known_posterior
    probs = classification_probabilities(switched, DATA.X, "full")
    result = stephens_permutations(probs)  # identity start: no reference at all
    undone = np.take_along_axis(shuffles.reshape(-1, 3), result.permutations, axis=1)
    # one common relabelling of all draws (which label is which is arbitrary)
    common = (undone == undone[0]).all(axis=-1)
    assert common.mean() > 0.98, common.mean()


def test_bad_input_is_named(known_posterior):
    gm, _, switched, _ = known_posterior
    with pytest.raises(ValueError, match="Unknown relabel method 'kl'"):
        relabel_draws(switched, gm, method="kl", X=DATA.X)
    with pytest.raises(ValueError, match="needs the data `X`"):
        relabel_draws(switched, gm, method="stephens")
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        relabel_draws(switched, gm, method="stephens", X=DATA.X[:, :1])
    bad = DATA.X.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="observed value in every row"):
        relabel_draws(switched, gm, method="stephens", X=bad)
    with pytest.raises(ValueError, match=r"shape \(S, N, K\)"):
        stephens_permutations(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"`initial` must have shape \(S, K\)"):
        stephens_permutations(np.ones((2, 3, 3)) / 3, initial=np.zeros((2, 2), int))


@pytest.mark.parametrize("draws_per_block", [1, 7])
def test_capped_memory_gives_the_same_relabelling(known_posterior, draws_per_block):
    """Probabilities recomputed block by block under ``max_bytes`` give the permutations,
    objective path and Q of the in-memory algorithm, with a peak allocation far below
    the S x N x K array (tracemalloc sees NumPy's buffers)."""
    import tracemalloc

    gm, _truth, switched, _ = known_posterior
    n_draws = switched.sizes["chain"] * switched.sizes["draw"]
    per_draw = DATA.X.shape[0] * 3 * 8
    full_bytes = n_draws * per_draw
    cap = draws_per_block * per_draw + per_draw // 2  # a ragged last block for 7
    # the reference: Stephens on the whole array, no cap at all
    probs = classification_probabilities(switched, DATA.X, "full")
    _, map_perms = relabel_draws(switched, gm)
    want = stephens_permutations(probs, initial=map_perms.reshape(-1, 3))
    del probs

    peaks = {}
    for label, max_bytes in (("uncapped", None), ("capped", cap)):
        tracemalloc.start()
        _, perms, info = _relabel(switched, gm, method="stephens", X=DATA.X, max_bytes=max_bytes)
        peaks[label] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        np.testing.assert_array_equal(perms.reshape(-1, 3), want.permutations)
        assert info["iterations"] == want.n_iter
        np.testing.assert_allclose(info["objective"], want.objective, rtol=1e-12)
        assert info["probabilities_in_memory"] is (max_bytes is None)
    assert info["draws_per_block"] == draws_per_block
    assert peaks["uncapped"] >= full_bytes  # the array this test is about ...
    assert peaks["capped"] < 0.2 * full_bytes  # ... never exists under the cap
    # a cap the whole array fits in keeps it in memory (the fast path)
    _, _, info = _relabel(switched, gm, method="stephens", X=DATA.X, max_bytes=full_bytes)
    assert info["probabilities_in_memory"]
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="`max_bytes` must be a positive integer"):
            relabel_draws(switched, gm, method="stephens", X=DATA.X, max_bytes=bad)


def test_posterior_records_the_method_and_the_draws_permuted():
    from bayesgmm.bayes import PosteriorGaussianMixture

    post = PosteriorGaussianMixture(
        3, relabel="stephens", draws=100, tune=150, chains=2, random_state=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post.fit(DATA.X)
    info = post.relabel_info_
    assert info is post.diagnostics_.attrs["relabel"]
    assert info["method"] == "stephens"
    assert info["converged"]
    raw = post.idata_["posterior_raw"].to_dataset()
    perms = post.label_permutations_
    # the count is of draws whose labels changed; the MAP match is what it started from
    assert info["n_permuted"] == int((perms != np.arange(3)).any(-1).sum())
    assert info["n_draws"] == 200
    _, map_perms = relabel_draws(raw, post)
    assert info["n_changed_from_map"] == int((perms != map_perms).any(-1).sum())
    np.testing.assert_array_equal(
        post.idata_["posterior"]["means"].values,
        relabel_draws(raw, post, permutations=perms)[0]["means"].values,
    )
    # Stephens' labelling is a fixed point of its own iteration on these draws
    probs = classification_probabilities(raw, DATA.X, "full")
    again = stephens_permutations(probs, initial=perms.reshape(-1, 3))
    np.testing.assert_array_equal(again.permutations, perms.reshape(-1, 3))
    assert again.n_iter == 1
    with pytest.raises(ValueError, match="Unknown relabel 'kl'"):
        PosteriorGaussianMixture(3, relabel="kl").fit(DATA.X)


@pytest.mark.slow
def test_sampled_chains_that_switch_are_relabelled_alike_by_both_methods():
    """Real NUTS chains, started at the fits of different EM starts (whose labels come in
    their own order): the raw chains switch, both relabellings agree. (On DATA, whose
    components overlap more, the chains settle in different modes, which no relabelling
    can fix: R-hat stays above 1.1 with either method.)"""
    import arviz as az

    from bayesgmm.bayes import PosteriorGaussianMixture

    data = make_mixture(300, n_components=3, n_features=2, separation=4.0, random_state=8)

    fits = {}
    for method in ("map", "stephens"):
        post = PosteriorGaussianMixture(
            3, relabel=method, draws=500, tune=500, chains=4, random_state=7
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[method] = post.fit(data.X)
    raw = fits["map"].idata_["posterior_raw"].to_dataset()
    np.testing.assert_array_equal(
        raw["means"].values, fits["stephens"].idata_["posterior_raw"]["means"].values
    )
    assert fits["map"].relabel_info_["n_permuted"] > 0  # the raw labels do switch
    assert float(az.rhat(raw)["means"].max()) > 1.2
    summaries = {}
    for method, post in fits.items():
        fixed = post.idata_["posterior"].to_dataset()
        assert float(az.rhat(fixed)["means"].max()) < 1.05, method
        summaries[method] = fixed["means"].mean(("chain", "draw")).values
    sd = fits["map"].idata_["posterior"]["means"].std(("chain", "draw")).values
    np.testing.assert_allclose(summaries["map"], summaries["stephens"], atol=0.1 * sd.max())
    # and both are near the data's true component means (matched by the MAP fit)
    assert not fits["map"].chains_disagree_
    true_means = data.params.means
    cost = ((summaries["map"][:, None] - true_means[None]) ** 2).sum(-1)
    assert np.sqrt(cost.min(axis=1)).max() < 0.5
