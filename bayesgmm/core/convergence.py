r"""Rank-normalized split R-hat and bulk / tail effective sample sizes, vectorized over
the elements of a parameter.

The same estimators as ArviZ's ``rhat`` (``method="rank"``) and ``ess`` (``method="bulk"``,
``"tail"``) (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021), step by step as
``arviz_stats.base.diagnostics`` writes them, but with the ranks, normal quantiles and
autocovariances of all elements computed in one NumPy call each instead of one call per
element: the fit's post-processing spent most of its time at small N in ArviZ's
per-element loop. Agreement with ArviZ is tested element by element (to rounding:
sums taken along other axes).

Input arrays are ``(chain, draw, element)``; each output has one value per element.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["ess_bulk", "ess_tail", "rank_rhat", "rhat_ess"]

_BLOM = 3.0 / 8.0


def _split(x: np.ndarray) -> np.ndarray:
    """(E, C, S) -> (E, 2C, S // 2): each chain's first half, then each one's last half."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of each element's values (average ties, Blom)."""
    e, m, n = x.shape
    rank = stats.rankdata(x.reshape(e, m * n), method="average", axis=1)
    # scipy.stats.norm.ppf is ndtri(q) * 1 + 0: the same values, without its overhead
    return special.ndtri((rank - _BLOM) / (m * n - 2 * _BLOM + 1)).reshape(x.shape)


def _rhat(x: np.ndarray) -> np.ndarray:
    """Classic R-hat of each (chains, draws) slice of ``x`` (E, C, S)."""
    n = x.shape[2]
    chain_mean = x.mean(axis=2)
    within = x.var(axis=2, ddof=1).mean(axis=1)
    between = n * chain_mean.var(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant element: NaN
        return np.sqrt((between / within + n - 1) / n)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance at every lag along the last axis (FFT, as ArviZ)."""
    from scipy.fftpack import next_fast_len

    n = x.shape[-1]
    m = next_fast_len(2 * n)
    x = x - x.mean(axis=-1, keepdims=True)
    f = np.fft.rfft(x, n=m, axis=-1)
    f *= np.conjugate(f)
    return np.fft.irfft(f, n=m, axis=-1)[..., :n] / n


def _geyer(rho: np.ndarray, n_draw: int) -> tuple[float, bool]:
    """ArviZ's initial positive then monotone sequence on one element's autocorrelations
    ``rho`` (rho[0] = 1); returns tau_hat (the ESS is total / tau_hat) and whether
    a NaN entered the sequence."""
    rho_t = np.zeros(n_draw)
    rho_t[0] = 1.0
    even, odd = 1.0, rho[1]
    rho_t[1] = odd
    t = 1
    while t < (n_draw - 3) and (even + odd) > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if (even + odd) >= 0:
            rho_t[t + 1] = even
            rho_t[t + 2] = odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho_t[max_t + 1] = even
    t = 1
    while t <= max_t - 2:
        if (rho_t[t + 1] + rho_t[t + 2]) > (rho_t[t - 1] + rho_t[t]):
            rho_t[t + 1] = (rho_t[t - 1] + rho_t[t]) / 2.0
            rho_t[t + 2] = rho_t[t + 1]
        t += 2
    tau = -1.0 + 2.0 * np.sum(rho_t[: max_t + 1]) + np.sum(rho_t[max_t + 1 : max_t + 2])
    return tau, bool(np.isnan(rho_t).any())


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS of each (chains, draws) slice of ``x`` (E, C, S), as ArviZ's ``_ess``."""
    e, n_chain, n_draw = x.shape
    out = np.empty(e)
    flat = x.reshape(e, -1)
    constant = (flat.max(axis=1) - flat.min(axis=1)) < np.finfo(float).resolution
    acov = _autocov(x)  # (E, C, S)
    chain_mean = x.mean(axis=2)
    mean_var = acov[:, :, 0].mean(axis=1) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus = var_plus + chain_mean.var(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]  # (E, S)
    total = n_chain * n_draw
    for i in range(e):
        if constant[i]:
            out[i] = x[i].size
            continue
        tau, has_nan = _geyer(rho[i], n_draw)
        tau = max(tau, 1 / np.log10(total))
        out[i] = np.nan if has_nan else total / tau
    return out


def _valid(x: np.ndarray, min_chains: int) -> np.ndarray:
    """ArviZ's ``not_valid``, negated, per element of ``x`` (E, C, S)."""
    ok = ~np.isnan(x).any(axis=(1, 2))
    return ok & (x.shape[1] >= min_chains) & (x.shape[2] >= 4)


def rank_rhat(values: np.ndarray) -> np.ndarray:
    """Rank-normalized split R-hat (max of bulk and folded) of ``values`` (C, S, E)."""
    x = np.moveaxis(np.asarray(values, dtype=float), -1, 0)
    out = np.full(x.shape[0], np.nan)
    ok = _valid(x, 2)
    if ok.any():
        split = _split(x[ok])
        folded = np.abs(
            split - np.median(split.reshape(split.shape[0], -1), axis=1)[:, None, None]
        )
        out[ok] = np.maximum(_rhat(_z_scale(split)), _rhat(_z_scale(folded)))
    return out


def ess_bulk(values: np.ndarray) -> np.ndarray:
    """Bulk ESS (rank-normalized split chains) of ``values`` (C, S, E)."""
    x = np.moveaxis(np.asarray(values, dtype=float), -1, 0)
    out = np.full(x.shape[0], np.nan)
    ok = _valid(x, 1)
    if ok.any():
        out[ok] = _ess(_z_scale(_split(x[ok])))
    return out


def ess_tail(values: np.ndarray, prob: float) -> np.ndarray:
    """Tail ESS: the smaller ESS of the indicators of the ``min(prob, 1 - prob)`` and
    ``max(...)`` quantiles, of ``values`` (C, S, E)."""
    x = np.moveaxis(np.asarray(values, dtype=float), -1, 0)
    out = np.full(x.shape[0], np.nan)
    ok = _valid(x, 1)
    if ok.any():
        sub = x[ok]
        flat = sub.reshape(sub.shape[0], -1)
        parts = []
        for p in sorted((prob, 1 - prob)):
            q = np.quantile(flat, p, axis=1, method="linear")
            parts.append(_ess(_split((sub <= q[:, None, None]).astype(float))))
        out[ok] = np.minimum(*parts)
    return out


def rhat_ess(values: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rank R-hat, bulk ESS, tail ESS) of ``values`` (C, S, E), one value per element.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 500, 3))
    >>> rhat, bulk, tail = rhat_ess(x, 0.89)
    >>> bool((rhat < 1.01).all() and (bulk > 1000).all())
    True
    """
    return rank_rhat(values), ess_bulk(values), ess_tail(values, prob)
