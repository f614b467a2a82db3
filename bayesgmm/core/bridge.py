r"""Bridge sampling: the normalizing constant of an unnormalized density from its draws.

For an unnormalized density :math:`p` (here the joint log density of a model on its
unconstrained space, Jacobians included) with normalizer :math:`Z = \int p`, draws
:math:`\theta^*_j \sim p / Z` and draws :math:`\tilde\theta_i \sim q` from a proposal
with known density, Meng & Wong's (1996) identity

.. math:: Z = \frac{E_q[p(\tilde\theta)\, h(\tilde\theta)]}
                   {E_{p/Z}[q(\theta^*)\, h(\theta^*)]}

holds for any bridge function :math:`h`. The optimal bridge
:math:`h \propto 1 / (s_1 p / Z + s_2 q)` depends on :math:`Z`, so the estimate is the
fixed point of

.. math:: \hat Z^{(t+1)} = \frac{\frac{1}{N_2}\sum_i \ell_{2i} /
          (s_1 \ell_{2i} + s_2 \hat Z^{(t)})}{\frac{1}{N_1}\sum_j 1 /
          (s_1 \ell_{1j} + s_2 \hat Z^{(t)})}, \qquad \ell = p / q,

with :math:`s_1 = N_{1,\text{eff}} / (N_{1,\text{eff}} + N_2)`, :math:`s_2 = 1 - s_1`
(Gronau et al. 2017, the R package ``bridgesampling``). The proposal is a multivariate
normal fitted to the first half of each chain's draws; the second half and as many
proposal draws enter the estimate. Its relative mean squared error is
Frühwirth-Schnatter's (2004)

.. math:: \mathrm{RE}^2 = \frac{1}{N_2}\frac{V_q(f_1)}{E_q(f_1)^2}
          + \frac{\tau_{f_2}}{N_1}\frac{V_{p}(f_2)}{E_{p}(f_2)^2},
          \quad f_1 = \frac{p/Z}{s_1 p/Z + s_2 q}(\tilde\theta),
          \; f_2 = \frac{q}{s_1 p/Z + s_2 q}(\theta^*),

:math:`\tau_{f_2}` the integrated autocorrelation time of :math:`f_2` along the chain;
:math:`\mathrm{RE}` is the standard error of :math:`\log\hat Z`.

:func:`chain_log_masses` applies this to MCMC chains that sample different modes: each
chain's own bridge estimate of the mass of the region its draws cover.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

__all__ = [
    "BridgeEstimate",
    "ChainMasses",
    "NormalProposal",
    "bridge_log_normalizer",
    "chain_log_masses",
    "fit_normal",
    "group_masses",
    "integrated_time",
    "split_inconsistent",
]


class NormalProposal(NamedTuple):
    """A multivariate normal: ``mean`` (P,), lower Cholesky factor ``chol`` (P, P)."""

    mean: np.ndarray
    chol: np.ndarray

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density at the rows of ``x`` (M, P), shape (M,)."""
        z = solve_triangular(self.chol, (np.atleast_2d(x) - self.mean).T, lower=True)
        p = self.mean.size
        return (
            -0.5 * np.sum(z**2, axis=0)
            - np.log(np.diag(self.chol)).sum()
            - 0.5 * p * np.log(2.0 * np.pi)
        )

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws, shape (size, P)."""
        return self.mean + rng.standard_normal((size, self.mean.size)) @ self.chol.T


def fit_normal(draws: np.ndarray) -> NormalProposal:
    """The normal with the draws' (M, P) mean and covariance (a tiny ridge where the
    sample covariance is singular)."""
    draws = np.asarray(draws, dtype=float)
    cov = np.atleast_2d(np.cov(draws, rowvar=False))
    scale = np.mean(np.diag(cov)) if cov.size else 1.0
    for ridge in (0.0, 1e-10, 1e-8, 1e-6):
        try:
            chol = np.linalg.cholesky(cov + ridge * scale * np.eye(cov.shape[0]))
            break
        except np.linalg.LinAlgError:
            continue
    else:
        raise ValueError(
            "The draws' covariance is not positive definite: a coordinate does not move "
            "(a chain stuck at one point?)."
        )
    return NormalProposal(draws.mean(axis=0), chol)


def integrated_time(x: np.ndarray) -> float:
    r"""Integrated autocorrelation time :math:`\tau = 1 + 2\sum_t \rho_t` of a series
    (S,) or of chains (C, S) (their autocovariances averaged), by Geyer's initial
    monotone sequence; ``S / tau`` is the effective sample size per chain.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(integrated_time(rng.standard_normal(20000)), 1)
    1.0
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    n = x.shape[1]
    if n < 4:
        return 1.0
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.abs(np.fft.rfft(centred, size, axis=1)) ** 2
    acov = np.fft.irfft(spectrum, size, axis=1)[:, :n].mean(axis=0) / n
    if acov[0] <= 0:
        return 1.0
    rho = acov / acov[0]
    # Geyer: sums of adjacent pairs, positive and monotone
    pairs = rho[: 2 * (n // 2)].reshape(-1, 2).sum(axis=1)
    positive = np.flatnonzero(pairs <= 0)
    pairs = pairs[: positive[0]] if positive.size else pairs
    pairs = np.minimum.accumulate(pairs)
    return float(max(-1.0 + 2.0 * pairs.sum(), 1.0 / np.log10(max(n, 10))))


class BridgeEstimate(NamedTuple):
    """Result of :func:`bridge_log_normalizer`.

    Attributes
    ----------
    log_normalizer : float
        :math:`\\log \\hat Z`.
    se : float
        Its standard error (the relative root mean squared error of :math:`\\hat Z`).
    iterations : int
    converged : bool
    """

    log_normalizer: float
    se: float
    iterations: int
    converged: bool


def bridge_log_normalizer(
    log_p_draws: np.ndarray,
    log_q_draws: np.ndarray,
    log_p_proposal: np.ndarray,
    log_q_proposal: np.ndarray,
    *,
    n_eff: float | None = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> BridgeEstimate:
    """Iterative optimal bridge sampling (Meng & Wong 1996) from log density values.

    Parameters
    ----------
    log_p_draws, log_q_draws : ndarray of shape (S,) or (C, S)
        Unnormalized target and proposal log densities at draws from the target
        (chains along the first axis, for the autocorrelation of the error term).
    log_p_proposal, log_q_proposal : ndarray of shape (M,)
        The same at draws from the proposal.
    n_eff : float, optional
        Effective size of the target draws (for :math:`s_1`); their number if None.
    tol, max_iter :
        Stop when the relative change of the estimate is below ``tol``.

    Returns
    -------
    BridgeEstimate

    Examples
    --------
    A normal density with a known normalizer, :math:`\\int e^{-x^2/2} = \\sqrt{2\\pi}`:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(0, 1, 2000), rng.normal(0.1, 1.2, 2000)
    >>> def log_q(t):
    ...     return -0.5 * ((t - 0.1) / 1.2) ** 2 - np.log(1.2 * np.sqrt(2 * np.pi))
    >>> est = bridge_log_normalizer(-x**2 / 2, log_q(x), -y**2 / 2, log_q(y))
    >>> bool(abs(est.log_normalizer - 0.5 * np.log(2 * np.pi)) < 4 * est.se)
    True
    """
    lp1 = np.atleast_2d(np.asarray(log_p_draws, dtype=float))
    lq1 = np.atleast_2d(np.asarray(log_q_draws, dtype=float))
    l1 = lp1 - lq1
    l2 = np.ravel(np.asarray(log_p_proposal, float) - np.asarray(log_q_proposal, float))
    l2 = np.where(np.isnan(l2), -np.inf, l2)  # a proposal draw the density rejects: p = 0
    n1, n2 = l1.size, l2.size
    if not np.all(np.isfinite(l1)):
        raise ValueError(
            "The target log density is not finite at some of its own draws: the draws do "
            "not come from this density (wrong model, or draws outside its support)."
        )
    n1_eff = float(n1 if n_eff is None else min(max(n_eff, 1.0), n1))
    log_s1 = np.log(n1_eff / (n1_eff + n2))
    log_s2 = np.log(n2 / (n1_eff + n2))
    shift = float(np.median(l1))
    a1, a2 = l1.ravel() - shift, l2 - shift
    log_r, converged, it = 0.0, False, 0
    for it in range(1, max_iter + 1):  # noqa: B007
        log_num = -np.logaddexp(log_s1, log_s2 + log_r - a2)  # l2 / (s1 l2 + s2 r)
        log_den = -np.logaddexp(log_s1 + a1, log_s2 + log_r)  # 1 / (s1 l1 + s2 r)
        new = float(logsumexp(log_num) - np.log(n2) - logsumexp(log_den) + np.log(n1))
        change = abs(np.expm1(np.clip(new - log_r, -700.0, 700.0)))
        log_r = new
        if change < tol:
            converged = True
            break
    log_z = log_r + shift
    # Frühwirth-Schnatter's relative MSE (s1, s2 from the actual sizes, as bridgesampling)
    ls1, ls2 = np.log(n1 / (n1 + n2)), np.log(n2 / (n1 + n2))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        b1, b2 = l1 - log_z, l2 - log_z  # log (p/Z) / q
        f1 = np.exp(-np.logaddexp(ls1, ls2 - b2))  # (p/Z) / (s1 p/Z + s2 q), proposal draws
        f2 = np.exp(-np.logaddexp(ls1 + b1, ls2))  # q / (s1 p/Z + s2 q), target draws (C, S)
        tau = integrated_time(f2) if f2.shape[1] >= 4 else 1.0
        term1 = f1.var(ddof=1) / f1.mean() ** 2 / n2 if f1.mean() > 0 else np.inf
        # no target draw where the proposal has mass: the estimate is not to be trusted
        term2 = tau * f2.var(ddof=1) / f2.mean() ** 2 / n1 if f2.mean() > 0 else np.inf
        se = float(np.sqrt(term1 + term2))
    return BridgeEstimate(float(log_z), se if np.isfinite(se) else np.inf, it, converged)


class ChainMasses(NamedTuple):
    """Result of :func:`chain_log_masses`.

    Attributes
    ----------
    log_mass : ndarray of shape (C,)
        Each chain's estimate of the log of the posterior mass (unnormalized: the
        model's normalizer restricted to the chain's region) of the mode it samples.
    log_mass_se : ndarray of shape (C,)
        Their standard errors.
    group_log_mass, group_log_mass_se : ndarray of shape (G,)
        Per group of chains: the inverse-variance weighted mean of its chains' log
        masses, and its standard error.
    group_consistency : ndarray of shape (G,)
        Per group, :math:`\\chi^2 / (C_g - 1)` of its chains' estimates around the
        group's (about 1 when they estimate the same mass; NaN for one chain).
    weights : ndarray of shape (C,)
        Each group's share of the total mass, shared equally by its chains.
    """

    log_mass: np.ndarray
    log_mass_se: np.ndarray
    group_log_mass: np.ndarray
    group_log_mass_se: np.ndarray
    group_consistency: np.ndarray
    weights: np.ndarray


def chain_log_masses(
    draws: np.ndarray,
    log_density: Callable[[np.ndarray], np.ndarray],
    groups: np.ndarray,
    *,
    random_state=None,
) -> ChainMasses:
    r"""The posterior mass of the mode each group of chains samples, by bridge sampling.

    Each chain ``c`` gets its own bridge estimate (:func:`bridge_log_normalizer`): a
    normal proposal :math:`q_c` fitted to the first half of its draws, the second half
    and as many proposal draws for the estimate. What it estimates is the mass of the
    region the chain's draws cover (the mode it samples). A proposal draw that lands in
    a heavier mode nearby adds at most :math:`\hat Z / s_1` to the numerator (the
    optimal bridge bounds it), so a light mode next to a heavy one is inflated only in
    proportion to the share of its proposal that reaches the heavy one. (A soft
    partition of the space between groups by their proposals, tried here, made
    overlapping modes' masses worse: the chains' draws do not follow its boundary.)

    The standard error is Frühwirth-Schnatter's, which leaves out the noise of the
    fitted proposal: for a normal target with 4 x 1000 AR(1) draws
    (``benchmarks/results/bridge_calibration.txt``) it matches the spread of the
    estimates up to P = 11 unconstrained coordinates (ratio 1.05-1.09) and understates
    it 1.5 times at P = 30 and 62 (a 5-D, K = 3 'full' mixture).

    Label switching: a chain must stay in one labelling (or its draws be relabelled);
    chains of one group need not share one: symmetric copies of a mode have equal
    mass, and each chain estimates the mass of its own copy. A group's log mass is the
    inverse-variance weighted mean of its chains' estimates.

    Parameters
    ----------
    draws : ndarray of shape (C, S, P)
        Draws on the unconstrained space, chain by chain (S >= 8).
    log_density : callable
        ``log_density(theta)`` for ``theta`` of shape (M, P): the unnormalized log
        density of the model on that space (joint log density with the Jacobians),
        shape (M,).
    groups : ndarray of shape (C,)
        Group label of each chain (0, 1, ...): chains that sample the same mode.
    random_state : int, Generator or None
        Seed of the proposal draws.

    Returns
    -------
    ChainMasses

    Examples
    --------
    Two normal "modes" with masses 0.8 and 0.2 (their normalizers known):

    >>> import numpy as np
    >>> from scipy.special import logsumexp
    >>> def log_p(t):
    ...     t = t[:, 0]
    ...     return logsumexp([np.log(0.8) - 0.5 * (t + 5) ** 2,
    ...                       np.log(0.2) - 0.5 * (t - 5) ** 2], axis=0)
    >>> rng = np.random.default_rng(1)
    >>> draws = np.stack([rng.normal(-5, 1, (800, 1)), rng.normal(5, 1, (800, 1))])
    >>> masses = chain_log_masses(draws, log_p, np.array([0, 1]), random_state=0)
    >>> np.round(masses.weights, 2).tolist()
    [0.8, 0.2]
    """
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 3:
        raise ValueError(f"`draws` must have shape (chains, draws, P); got {draws.shape}.")
    n_chains, n_draws, _ = draws.shape
    if n_draws < 8:
        raise ValueError(f"Bridge sampling needs at least 8 draws per chain; got {n_draws}.")
    groups = np.asarray(groups, dtype=int)
    if groups.shape != (n_chains,):
        raise ValueError(f"`groups` must have shape ({n_chains},); got {groups.shape}.")
    rng = np.random.default_rng(random_state)
    half = n_draws // 2
    proposals = [fit_normal(draws[c, :half]) for c in range(n_chains)]
    log_mass = np.empty(n_chains)
    log_mass_se = np.empty(n_chains)
    for c in range(n_chains):
        q = proposals[c]
        kept = draws[c, half:]
        proposal = q.sample(rng, kept.shape[0])
        log_p1 = log_density(kept)
        log_p2 = log_density(proposal)
        taus = [integrated_time(kept[:, j]) for j in range(kept.shape[1])]
        est = bridge_log_normalizer(
            log_p1, q.logpdf(kept), log_p2, q.logpdf(proposal),
            n_eff=kept.shape[0] / float(np.median(taus)),
        )  # fmt: skip
        log_mass[c], log_mass_se[c] = est.log_normalizer, est.se
    return group_masses(log_mass, log_mass_se, groups)


def group_masses(log_mass: np.ndarray, log_mass_se: np.ndarray, groups: np.ndarray) -> ChainMasses:
    """Groups' log masses from their chains' (inverse-variance weighted means), their
    consistency and the chains' weights (:class:`ChainMasses`).

    Examples
    --------
    >>> import numpy as np
    >>> res = group_masses(np.log([3.0, 3.0, 1.0]), np.full(3, 0.01), np.array([0, 0, 1]))
    >>> np.round(res.weights, 3).tolist()
    [0.375, 0.375, 0.25]
    """
    log_mass = np.asarray(log_mass, dtype=float)
    log_mass_se = np.asarray(log_mass_se, dtype=float)
    groups = np.asarray(groups, dtype=int)
    n_groups = int(groups.max()) + 1
    members = [np.flatnonzero(groups == g) for g in range(n_groups)]
    group_log_mass = np.empty(n_groups)
    group_se = np.empty(n_groups)
    consistency = np.full(n_groups, np.nan)
    for g, m in enumerate(members):
        precision = 1.0 / np.maximum(log_mass_se[m], 1e-12) ** 2
        group_log_mass[g] = float(precision @ log_mass[m] / precision.sum())
        group_se[g] = float(1.0 / np.sqrt(precision.sum()))
        if m.size > 1:
            chi2 = float(precision @ (log_mass[m] - group_log_mass[g]) ** 2)
            consistency[g] = chi2 / (m.size - 1)
    group_share = np.exp(group_log_mass - logsumexp(group_log_mass))
    weights = group_share[groups] / np.bincount(groups, minlength=n_groups)[groups]
    return ChainMasses(log_mass, log_mass_se, group_log_mass, group_se, consistency, weights)


def split_inconsistent(
    log_mass: np.ndarray, log_mass_se: np.ndarray, groups: np.ndarray, n_se: float = 3.0
) -> np.ndarray:
    r"""Split groups whose chains' log masses disagree beyond Monte Carlo error.

    Chains that sample one mode (in any labelling) estimate one mass; two chains of
    a group are kept together when
    :math:`|\log\hat Z_a - \log\hat Z_b| \le n_{se}\sqrt{se_a^2 + se_b^2}`, and the
    new groups are the connected components within each old group (a chain that
    wanders between modes, covering more mass than the others, is split off). The
    threshold trades two errors: a false split doubles the weight of that mode (each
    part gets the mode's whole mass), a missed one leaves a wandering chain's region
    averaged with the mode's; at 3 standard errors a false split of two chains of one
    mode has probability 0.3%.

    Returns
    -------
    ndarray of shape (C,)
        Group labels 0, 1, ... in order of first appearance.

    Examples
    --------
    >>> import numpy as np
    >>> split_inconsistent(np.array([-10.0, -10.02, -6.0]), np.full(3, 0.05),
    ...                    np.array([0, 0, 0])).tolist()
    [0, 0, 1]
    """
    log_mass = np.asarray(log_mass, dtype=float)
    se = np.asarray(log_mass_se, dtype=float)
    groups = np.asarray(groups, dtype=int)
    labels = np.arange(groups.size)
    for a in range(groups.size):
        for b in range(a + 1, groups.size):
            same = groups[a] == groups[b]
            close = abs(log_mass[a] - log_mass[b]) <= n_se * np.hypot(se[a], se[b])
            if same and close:
                labels[labels == labels[b]] = labels[a]
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]
