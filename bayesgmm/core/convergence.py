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
from scipy import special

__all__ = ["average_ranks", "ess_bulk", "ess_tail", "rank_rhat", "rhat_ess"]

_BLOM = 3.0 / 8.0


def _split(x: np.ndarray) -> np.ndarray:
    """(E, C, S) -> (E, 2C, S // 2): each chain's first half, then each one's last half."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _twice_ranks_of_sorted(y: np.ndarray) -> np.ndarray:
    """``2 * rank - 2`` (an integer) of each position of the sorted rows ``y`` (..., n),
    ties given their average rank: a run of equal values at sorted positions
    ``first .. last`` (0-based) all get ``first + last``, i.e. the rank
    ``(first + last) / 2 + 1``, the half-integer scipy computes as
    ``first + 1 + (c - 1) / 2`` for a run of ``c`` (exact in float64). The order within
    a run does not matter, so any sort will do."""
    n = y.shape[-1]
    starts = np.empty(y.shape, dtype=bool)  # a sorted position that begins a run
    starts[..., :1] = True
    np.not_equal(y[..., 1:], y[..., :-1], out=starts[..., 1:])  # NaN != NaN: own runs
    position = np.arange(n)
    if starts.all():  # no ties: the ordinal ranks
        return np.broadcast_to(2 * position, y.shape)
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    ends = np.empty(y.shape, dtype=bool)  # a sorted position that ends a run
    ends[..., :-1] = starts[..., 1:]
    ends[..., -1:] = True
    last = np.flip(
        np.minimum.accumulate(np.flip(np.where(ends, position, n - 1), -1), axis=-1), -1
    )
    return first + last


def _unsort(sorted_values: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty(order.shape, dtype=sorted_values.dtype)
    np.put_along_axis(out, order, sorted_values, axis=-1)
    return out


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, ties given their average rank: the values of
    ``scipy.stats.rankdata(x, method="average", axis=-1)`` (a row holding NaN: all NaN),
    without its array-API dispatch and with one unstable argsort per row (the order of
    tied values does not change their average rank).

    Parameters
    ----------
    x : ndarray of shape (..., n)

    Returns
    -------
    ndarray of shape (..., n), float64

    Examples
    --------
    >>> average_ranks(np.array([[0.0, 2.0, 2.0, 1.0], [3.0, np.nan, 1.0, 2.0]]))
    array([[1. , 3.5, 3.5, 2. ],
           [nan, nan, nan, nan]])
    """
    x = np.asarray(x)
    if x.size == 0:
        return np.empty(x.shape, dtype=float)
    order = np.argsort(x, axis=-1)
    twice = _twice_ranks_of_sorted(np.take_along_axis(x, order, axis=-1))
    out = _unsort(twice / 2.0 + 1.0, order)
    if x.dtype.kind in "fc":
        out[np.isnan(x).any(axis=-1)] = np.nan
    return out


_SCORES: dict[int, np.ndarray] = {}  # size -> normal scores by twice the rank


def _scores_table(size: int) -> np.ndarray:
    """Blom's normal score of every rank a sample of ``size`` can have (the
    half-integers of ties included), indexed by ``2 * rank - 2``: the same float
    operations on the same rank values as scoring each draw, once per size."""
    table = _SCORES.get(size)
    if table is None:
        rank = np.arange(2 * size - 1) / 2.0 + 1.0
        # scipy.stats.norm.ppf is ndtri(q) * 1 + 0: the same values, without its overhead
        table = special.ndtri((rank - _BLOM) / (size - 2 * _BLOM + 1))
        if len(_SCORES) > 16:
            _SCORES.clear()
        _SCORES[size] = table
    return table


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of each element's values (average ties, Blom), of
    NaN-free ``x`` (E, M, S)."""
    e, m, n = x.shape
    flat = x.reshape(e, m * n)
    order = np.argsort(flat, axis=-1)
    twice = _twice_ranks_of_sorted(np.take_along_axis(flat, order, axis=-1))
    return _unsort(_scores_table(m * n)[twice], order).reshape(x.shape)


def _z_scale_split_and_folded(split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_z_scale(split)`` and ``_z_scale(|split - median|)`` (each element's median
    over all its split values) of NaN-free ``split`` (E, M, S), from one sort: the
    median is the sorted rows' middle, and the folded values, taken in that sorted
    order, fall then rise (subtraction and ``abs`` are monotone in floating point), so
    their sort is a merge of two runs (a stable sort finds them)."""
    e, m, n = split.shape
    size = m * n
    table = _scores_table(size)
    flat = split.reshape(e, size)
    order = np.argsort(flat, axis=-1)
    y = np.take_along_axis(flat, order, axis=-1)
    z = _unsort(table[_twice_ranks_of_sorted(y)], order).reshape(split.shape)
    half = size // 2
    # as np.median: the middle value, or the mean of the two middle values
    median = y[:, half] if size % 2 else (y[:, half - 1] + y[:, half]) / 2.0
    folded = np.abs(y - median[:, None])  # in y's (sorted) order
    order_f = np.argsort(folded, axis=-1, kind="stable")
    twice_f = _twice_ranks_of_sorted(np.take_along_axis(folded, order_f, axis=-1))
    z_f = _unsort(table[twice_f], np.take_along_axis(order, order_f, axis=-1))
    return z, z_f.reshape(split.shape)


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


def _geyer(rho: np.ndarray, n_draw: int) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's initial positive then monotone sequence on each element's
    autocorrelations ``rho`` (E, S) (``rho[:, 0]`` unused: 1), vectorized over the
    elements; returns tau_hat (the ESS is total / tau_hat) and whether a NaN entered
    the sequence, per element.

    ArviZ walks pairs (rho[2j], rho[2j+1]) with P_0 = 1 + rho[1]: pair k >= 1 is read
    while 2k - 1 < n_draw - 3 and every earlier pair sum is > 0, and kept if its sum
    is >= 0; the even term of the last pair read is kept when > 0. Then each kept pair
    j = 1 .. K-1 whose sum exceeds the previous pair's (as modified) is set to half of
    that: the pair sums become their running minimum. tau_hat sums the kept terms one
    element at a time, as ArviZ (the same floating-point sums)."""
    e = rho.shape[0]
    k_lim = max(0, (n_draw - 3) // 2)  # pairs 1 .. k_lim may be read
    pairs = np.empty((e, k_lim + 1))
    pairs[:, 0] = 1.0 + rho[:, 1]
    pairs[:, 1:] = rho[:, 2 : 2 * k_lim + 2 : 2] + rho[:, 3 : 2 * k_lim + 2 : 2]
    stop = ~(pairs[:, :k_lim] > 0.0)  # NaN stops too
    n_read = np.full(e, k_lim)  # K: the pairs read
    if k_lim:
        found = stop.any(axis=1)
        n_read[found] = stop[found].argmax(axis=1)
    rho_t = np.zeros((e, n_draw))
    rho_t[:, 0] = 1.0
    rho_t[:, 1] = rho[:, 1]
    index = np.arange(n_draw)
    pair_of = index // 2  # the pair an index belongs to
    keep = (index[None, :] >= 2) & (
        (pair_of[None, :] < n_read[:, None])  # pairs 1 .. K-1: sums > 0
        | ((pair_of[None, :] == n_read[:, None]) & (pairs[np.arange(e), n_read] >= 0.0)[:, None])
    )
    np.copyto(rho_t, rho, where=keep)
    last_even = np.where(n_read > 0, rho[np.arange(e), 2 * n_read], 1.0)
    put = last_even > 0
    rho_t[put, 2 * n_read[put]] = last_even[put]
    tau = np.empty(e)
    for i in range(e):
        k = int(n_read[i])
        if k >= 2:  # the monotone pass over kept pairs 1 .. K-1
            _monotone(rho_t[i], k)
        # max_t = 2K - 1: sum(rho_t[:max_t + 1]) and the term after it
        tau[i] = -1.0 + 2.0 * np.sum(rho_t[i, : 2 * k]) + np.sum(rho_t[i, 2 * k : 2 * k + 1])
    return tau, np.isnan(rho_t).any(axis=1)


def _monotone(rho_t: np.ndarray, n_read: int) -> None:
    """ArviZ's monotone sequence on one element's kept pairs 1 .. n_read - 1, in place:
    pair sums -> their running minimum, a lowered pair set to half the minimum."""
    sums = rho_t[0 : 2 * n_read : 2] + rho_t[1 : 2 * n_read : 2]  # pairs 0 .. K-1
    low = np.minimum.accumulate(sums)
    lowered = np.flatnonzero(sums[1:] > low[:-1]) + 1
    if lowered.size == 0:
        return
    if np.any(np.abs(low[:-1]) < 4 * np.finfo(float).tiny):  # halves might round: step
        _monotone_steps(rho_t, n_read)
        return
    # a lowered pair's sum is then exactly the minimum (m/2 + m/2 == m)
    rho_t[2 * lowered] = low[lowered - 1] / 2.0
    rho_t[2 * lowered + 1] = rho_t[2 * lowered]


def _monotone_steps(rho_t: np.ndarray, n_read: int) -> None:
    t = 1
    while t <= 2 * n_read - 3:
        if (rho_t[t + 1] + rho_t[t + 2]) > (rho_t[t - 1] + rho_t[t]):
            rho_t[t + 1] = (rho_t[t - 1] + rho_t[t]) / 2.0
            rho_t[t + 2] = rho_t[t + 1]
        t += 2


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS of each (chains, draws) slice of ``x`` (E, C, S), as ArviZ's ``_ess``."""
    e, n_chain, n_draw = x.shape
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
    out = np.full(e, float(x[0].size) if e else 0.0)  # a constant element: its size
    varying = np.flatnonzero(~constant)
    if varying.size:
        tau, has_nan = _geyer(rho[varying], n_draw)
        tau = np.maximum(tau, 1 / np.log10(total))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[varying] = np.where(has_nan, np.nan, total / tau)
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
        z, z_folded = _z_scale_split_and_folded(_split(x[ok]))
        out[ok] = np.maximum(_rhat(z), _rhat(z_folded))
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
    """(rank R-hat, bulk ESS, tail ESS) of ``values`` (C, S, E), one value per element:
    :func:`rank_rhat`, :func:`ess_bulk` and :func:`ess_tail`, the split chains' normal
    scores computed once for the first two.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 500, 3))
    >>> rhat, bulk, tail = rhat_ess(x, 0.89)
    >>> bool((rhat < 1.01).all() and (bulk > 1000).all())
    True
    """
    x = np.moveaxis(np.asarray(values, dtype=float), -1, 0)
    rhat = np.full(x.shape[0], np.nan)
    bulk = np.full(x.shape[0], np.nan)
    ok = _valid(x, 1)  # _valid(x, 2) is this with two chains or more
    if ok.any():
        z, z_folded = _z_scale_split_and_folded(_split(x[ok]))
        bulk[ok] = _ess(z)
        if x.shape[1] >= 2:
            rhat[ok] = np.maximum(_rhat(z), _rhat(z_folded))
    return rhat, bulk, ess_tail(values, prob)
