r"""The one chunk kernel: E-step densities, log-sum-exp, responsibilities, statistics.

Every computation of a mixture's densities over data goes through :func:`e_step`:
the EM loop (statistics and objective), and, through
:mod:`bayesgmm.core.density`, ``predict``, ``predict_proba``, ``score_samples``,
``score``, BIC/AIC/ICL, model selection and the bootstrap. It walks over blocks of
rows ("chunks"); per chunk it evaluates the log densities of all ``K`` components
with one GEMM (the kernel from the covariance table's ``chunk_kernel``), the
log-sum-exp and responsibilities in place, and the chunk's moments with one
more GEMM, then adds them to float64 accumulators. No ``N x K x D`` or ``N x D x D``
array is ever formed: the largest temporaries are ``chunk x F`` (``F`` the width
of the kernel's features), and the outputs that are asked for (``(N,)`` log
densities, ``(N, K)`` responsibilities).

Chunks that contain NaN go through the exact observed-data kernels of
:mod:`bayesgmm.core.missing` (:func:`~bayesgmm.core.missing.missing_chunk_kernel`):
the same log-sum-exp and responsibilities, with log densities of each row's observed
coordinates and the expected statistics of the completed rows; their statistics add to
the others' (:class:`~bayesgmm.core.suffstats.SufficientStats` are additive). Each
worker thread builds the kernel's per-pattern tables for the patterns of its own
chunks.

Chunk size
----------
By default a chunk holds about :data:`DEFAULT_CHUNK_BYTES` of the kernel's widest
per-row temporary (a few thousand rows at ``D = 10``, ``K = 10``). Set a number of
rows for a block of code with :func:`chunk_size`, for the whole session with
:func:`set_chunk_size`, or per call with the ``chunk_size`` argument. The results
do not depend on it beyond rounding (the tests check 1e-12).

Precision
---------
The products run in the dtype of ``X``: float32 data stay float32 in the heavy
passes (features, GEMMs, log-sum-exp, responsibilities), as in scikit-learn, while
the objective and the statistics are accumulated in float64, so the M-step and the
fitted parameters are float64.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
from threadpoolctl import ThreadpoolController

from bayesgmm.core.covariance import get_covariance_model
from bayesgmm.core.missing import (
    PatternPieces,
    has_missing,
    missing_chunk_kernel,
    missing_patterns,
)
from bayesgmm.core.params import GMMParams
from bayesgmm.core.suffstats import SufficientStats

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "ChunkPlan",
    "EStep",
    "chunk_size",
    "e_step",
    "get_chunk_size",
    "plan_chunks",
    "set_chunk_size",
    "worker_threads",
]

#: Bytes of the widest per-row temporary in one chunk when the size is automatic.
DEFAULT_CHUNK_BYTES = 2**20
_MIN_ROWS = 64
_chunk_rows: int | None = None
# Complete rows of data with NaN take the GEMM kernel (False: the per-pattern E-step,
# which the tests use to check that both give the same fit).
_COMPLETE_ROWS_BY_KERNEL = True
#: Most bytes of a feature map over all chunks that the EM loop keeps between
#: iterations (the features do not depend on the parameters).
CACHE_FEATURE_BYTES = 2**26
#: Most threads over chunks (``None``: as many as the user's BLAS limit allows).
MAX_WORKERS: int | None = None
#: A worker thread per this many chunks at least (below, thread hand-offs cost more than
#: they save: measured at N = 1e4, 7 chunks, 2 threads were up to 2x slower than one).
MIN_CHUNKS_PER_WORKER = 8


def set_chunk_size(rows: int | None) -> None:
    """Rows per chunk for every later E-step (``None``: automatic)."""
    global _chunk_rows
    if rows is not None and (isinstance(rows, bool) or int(rows) != rows or rows < 1):
        raise ValueError(f"chunk size must be a positive integer or None; got {rows!r}.")
    _chunk_rows = None if rows is None else int(rows)


def get_chunk_size() -> int | None:
    """The rows per chunk set by :func:`set_chunk_size` (``None``: automatic)."""
    return _chunk_rows


@contextmanager
def chunk_size(rows: int | None) -> Iterator[None]:
    """Use ``rows`` rows per chunk inside a ``with`` block.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture
    >>> X = np.random.default_rng(0).normal(size=(500, 2))
    >>> with chunk_size(128):
    ...     gm = GaussianMixture(2, random_state=0).fit(X)
    >>> gm.means_.shape
    (2, 2)
    """
    previous = _chunk_rows
    set_chunk_size(rows)
    try:
        yield
    finally:
        set_chunk_size(previous)


_controller: ThreadpoolController | None = None


def _threadpools() -> ThreadpoolController:
    """One controller per process: scanning the loaded libraries costs milliseconds
    (``threadpool_info()`` about 3 ms), reading and setting limits through it microseconds.
    The BLAS that NumPy and SciPy use are loaded when this package is imported."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def single_blas_thread():
    """A ``with`` block in which BLAS and OpenMP pools run one thread (as
    ``threadpoolctl.threadpool_limits(1)``, whose scan of the loaded libraries costs
    about 4 ms a call), through this process's one controller; the limits are restored
    on exit."""
    return _threadpools().limit(limits=1)


def _allowed_threads() -> int:
    """Threads the user allows: the BLAS pools' current limit (threadpoolctl, or the
    environment such as ``OPENBLAS_NUM_THREADS``), at most the usable cores."""
    limits = [pool["num_threads"] for pool in _threadpools().select(user_api="blas").info()]
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min([cores, *limits]))


@contextmanager
def worker_threads(n_chunks: int, n_workers: int | None = None) -> Iterator[int]:
    """How many threads work on chunks in parallel, inside a ``with`` block.

    As many as the user's BLAS thread limit allows (never more: no
    oversubscription), at most one per :data:`MIN_CHUNKS_PER_WORKER` chunks. Inside
    the block BLAS is held to one thread (the previous limits are restored on exit),
    even with a single worker: the kernel's GEMMs are small, and
    multithreaded BLAS on small matrices loses badly (measured on a busy 2-core
    machine: a 10 x 10 triangular solve took 20 ms with 2 OpenBLAS threads, 0.09 ms
    with one). The total stays within the user's limit; with a limit of one (e.g.
    ``threadpoolctl.threadpool_limits(1)`` or ``OPENBLAS_NUM_THREADS=1``) everything
    runs serially and no limit is touched. An ``n_workers`` already decided by an
    enclosing block is passed through.
    """
    if n_workers is not None:
        yield n_workers
        return
    allowed = _allowed_threads()
    # Even a single worker runs with BLAS at one thread: a fit's small GEMMs and
    # factorizations gain nothing from BLAS threads.
    if allowed <= 1:
        yield 1
        return
    if MAX_WORKERS is not None:
        allowed = min(allowed, MAX_WORKERS)
    with _threadpools().limit(limits=1, user_api="blas"):
        yield max(1, min(allowed, n_chunks // MIN_CHUNKS_PER_WORKER))


class ChunkPlan(NamedTuple):
    """How the rows of a data matrix are cut into chunks, computed once per fit.

    Without NaN the chunks are consecutive slices. With NaN the complete rows are cut
    into chunks as well. For covariance types with correlations the incomplete rows
    are grouped by missingness pattern over the whole data and packed, pattern after
    pattern, into chunks of the same size (a large pattern spans several chunks), so
    each chunk is a few runs of rows with one pattern; for types whose table entry has
    ``independent_features`` they are chunked in their own order (their kernel needs
    no grouping).

    Attributes
    ----------
    chunks : tuple of slice or int ndarray
        The rows of each chunk.
    patterns : tuple of PatternPieces or None
        Per chunk, its runs of rows with one pattern (chunk-local positions, pattern
        numbers into ``pattern_table``), or ``None`` for a chunk of complete rows (the
        GEMM kernel).
    pattern_table : ndarray of bool, shape (P, D), or None
        The distinct missingness patterns (``True`` where observed) of the grouped rows.
    blocks : tuple of ndarray or None, or None
        Per chunk of incomplete rows that are not consecutive, a copy of its rows of
        the data the plan was made for (gathered once per fit, not once per E-step:
        the plan then holds another copy of those rows); ``None`` elsewhere. A plan
        is only valid for the data it was made from.
    """

    chunks: tuple[slice | np.ndarray, ...]
    patterns: tuple[PatternPieces | None, ...]
    pattern_table: np.ndarray | None = None
    blocks: tuple[np.ndarray | None, ...] | None = None


class EStep(NamedTuple):
    """Result of :func:`e_step`.

    Attributes
    ----------
    log_likelihood : float
        ``sum_n w_n log p(x_n)``, accumulated in float64.
    stats : SufficientStats or None
        Statistics with the responsibilities times the weights (``None`` unless asked).
    """

    log_likelihood: float
    stats: SufficientStats | None


def _rows_per_chunk(n_rows: int, width: int, itemsize: int, rows: int | None) -> int:
    if rows is None:
        rows = _chunk_rows
    if rows is None:
        rows = max(_MIN_ROWS, DEFAULT_CHUNK_BYTES // (itemsize * max(width, 1)))
    return max(1, min(int(rows), n_rows))


def plan_chunks(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    chunk_size: int | None = None,
) -> ChunkPlan:
    """Cut ``X`` (N, D) into chunks and group each chunk's rows by missingness pattern.

    ``chunk_size`` rows per chunk; ``None`` uses the session setting
    (:func:`set_chunk_size`) or the automatic size.
    """
    n_rows, n_features = X.shape
    model = get_covariance_model(covariance_type)
    # The kernel's widest per-row temporary (the same for any parameter values), plus
    # the (K, n) densities and responsibilities.
    eye = np.repeat(np.eye(n_features)[None], n_components, axis=0)
    identity = model.from_full(eye)  # identity covariances: their own precision factors
    kernel = model.chunk_kernel(np.zeros((n_components, n_features)), identity, X.dtype)
    width = kernel.width + 2 * n_components
    rows = _rows_per_chunk(n_rows, width, X.dtype.itemsize, chunk_size)
    if not has_missing(X):
        chunks = tuple(slice(s, min(s + rows, n_rows)) for s in range(0, n_rows, rows))
        return ChunkPlan(chunks, (None,) * len(chunks))
    complete = ~np.isnan(X).any(axis=1)
    if not _COMPLETE_ROWS_BY_KERNEL:
        complete[:] = False
    chunks: list[slice | np.ndarray] = []
    patterns: list[PatternPieces | None] = []
    done = np.flatnonzero(complete)
    for s in range(0, done.size, rows):
        chunks.append(_as_slice(done[s : s + rows]))
        patterns.append(None)
    incomplete = np.flatnonzero(~complete)
    if incomplete.size and model.independent_features:
        for s in range(0, incomplete.size, rows):
            chunks.append(_as_slice(incomplete[s : s + rows]))
            patterns.append(PatternPieces())
        return ChunkPlan(tuple(chunks), tuple(patterns), None, _blocks(X, chunks, patterns))
    table = None
    if incomplete.size:
        grouped = missing_patterns(X[incomplete])
        table = grouped.patterns
        pieces: list[tuple[int, np.ndarray]] = []  # (pattern, rows into `incomplete`)
        fill = 0

        def flush() -> None:
            nonlocal fill
            if not pieces:
                return
            index = incomplete[np.concatenate([r for _, r in pieces])]
            offsets = np.cumsum([0] + [r.size for _, r in pieces]).tolist()
            chunks.append(index)
            patterns.append(
                PatternPieces(
                    tuple(
                        (a, b, p)
                        for (a, b), (p, _) in zip(itertools.pairwise(offsets), pieces, strict=True)
                    )
                )
            )
            pieces.clear()
            fill = 0

        for p, members in enumerate(grouped.rows):
            pos = 0
            while pos < members.size:
                take = min(rows - fill, members.size - pos)
                pieces.append((p, members[pos : pos + take]))
                fill += take
                pos += take
                if fill == rows:
                    flush()
        flush()
    return ChunkPlan(tuple(chunks), tuple(patterns), table, _blocks(X, chunks, patterns))


def _blocks(X: np.ndarray, chunks: list, patterns: list) -> tuple[np.ndarray | None, ...]:
    """The rows of the chunks with NaN that are not slices, gathered once."""
    return tuple(
        None if pieces is None or isinstance(rows, slice) else X[rows]
        for rows, pieces in zip(chunks, patterns, strict=True)
    )


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive row indices as a slice (a view, no copy)."""
    if index.size and index[-1] - index[0] + 1 == index.size:
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _logsumexp_columns(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-sum-exp over the components of ``L`` (K, n), overwriting ``L`` with
    ``exp(L - max)``.

    Returns ``(log_norm (n,), total (n,))`` with ``total = sum_k exp(L - max)``; -inf
    where a column is all -inf.
    """
    top = L.max(axis=0)
    finite = np.isfinite(top)
    if finite.all():
        # Every column's largest term is exp(0) = 1: total >= 1, no log(0).
        L -= top
        np.exp(L, out=L)
        total = L.sum(axis=0)
        log_norm = np.log(total)
    else:
        top = np.where(finite, top, 0.0).astype(L.dtype)
        L -= top
        np.exp(L, out=L)
        total = L.sum(axis=0)
        with np.errstate(divide="ignore"):
            log_norm = np.log(total)
    log_norm += top
    return log_norm, total


def e_step(
    X: np.ndarray,
    params: GMMParams,
    covariance_type: str,
    *,
    sample_weight: np.ndarray | None = None,
    statistics: bool = True,
    log_prob_norm: np.ndarray | None = None,
    log_resp: np.ndarray | None = None,
    log_weighted: np.ndarray | None = None,
    plan: ChunkPlan | None = None,
    chunk_size: int | None = None,
    n_workers: int | None = None,
    cache: dict | None = None,
) -> EStep:
    r"""One pass of the chunk kernel over ``X``.

    .. math:: \log p(x_n) = \log \sum_k \pi_k N(x_n \mid \mu_k, \Sigma_k), \quad
              r_{nk} = \pi_k N(x_n \mid \mu_k, \Sigma_k) / p(x_n)

    Parameters
    ----------
    X : ndarray of shape (N, D), float64 or float32, NaN where missing
    params : GMMParams
    covariance_type : str
    sample_weight : ndarray of shape (N,), optional
        Multiplies the log densities in ``log_likelihood`` and the responsibilities
        in the statistics.
    statistics : bool, default=True
        Accumulate :class:`SufficientStats` (for the M-step). They are the
        moments of ``X`` as given, so a fit passes data centered beforehand. When
        ``False`` the densities are evaluated about the mixture mean
        ``sum_k pi_k mu_k`` (translation invariant, and accurate for data far from
        the origin).
    log_prob_norm : ndarray of shape (N,), optional
        Filled with ``log p(x_n)``.
    log_resp : ndarray of shape (N, K), optional
        Filled with ``log r_nk``.
    log_weighted : ndarray of shape (N, K), optional
        Filled with ``log pi_k + log N(x_n | mu_k, Sigma_k)``.
    plan : ChunkPlan, optional
        From :func:`plan_chunks` (reuse it across EM iterations).
    chunk_size : int, optional
        Rows per chunk when no ``plan`` is given.
    n_workers : int, optional
        Threads over chunks, from an enclosing :func:`worker_threads` (which already
        holds BLAS to one thread per worker); ``None`` decides here.
    cache : dict, optional
        Where repeated calls on the same ``X`` and ``plan`` may keep what does not
        depend on the parameters (the EM loop passes one per run): when ``X`` is one
        chunk, or while they take at most :data:`CACHE_FEATURE_BYTES` in all, the
        kernel's features of each chunk.

    Returns
    -------
    EStep

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.core.params import GMMParams
    >>> p = GMMParams(np.array([0.5, 0.5]), np.array([[-1.0], [1.0]]), np.ones(2), np.ones(2))
    >>> X = np.linspace(-2, 2, 7)[:, None]
    >>> whole = e_step(X, p, "spherical")
    >>> parts = e_step(X, p, "spherical", chunk_size=3)
    >>> bool(np.isclose(whole.log_likelihood, parts.log_likelihood))
    True
    >>> bool(np.allclose(whole.stats.sum_x, parts.stats.sum_x))
    True
    """
    model = get_covariance_model(covariance_type)
    if X.dtype.char not in "fd":  # float32 and float64 stay as they are
        X = np.asarray(X, dtype=np.float64)
    dtype = X.dtype
    if plan is None:
        plan = plan_chunks(X, params.means.shape[0], covariance_type, chunk_size)
    means = params.means
    if statistics:
        center = None
    else:
        center = params.weights @ means
        means = means - center
    kernel = model.chunk_kernel(means, params.precisions_cholesky, dtype)
    weights = params.weights
    if weights.min() > 0.0:
        log_w = np.log(weights)
    else:
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
    log_w = log_w.astype(dtype, copy=False)[:, None]
    w = None if sample_weight is None else np.asarray(sample_weight)
    n_chunks = len(plan.chunks)
    outputs = log_prob_norm is not None or log_resp is not None or log_weighted is not None
    features = getattr(kernel, "features", None)  # a feature-map kernel's phi(X)
    if (
        n_chunks == 1
        and plan.patterns[0] is None
        and statistics
        and w is None
        and not outputs
        and n_workers is not None
    ):
        # The EM loop on data that fit one chunk (e.g. small data sets): the same
        # kernel calls as below, without the machinery for chunks, threads and outputs.
        block = X[plan.chunks[0]]
        if cache is not None and features is not None:
            phi = cache.get(features)
            if phi is None:
                phi = cache[features] = features(block)
            L, kept = kernel.log_gaussian_from_features(phi), phi
        else:
            L, kept = kernel.log_gaussian(block)
        L += log_w
        lpn, col_total = _logsumexp_columns(L)
        total = float(lpn.sum(dtype=np.float64))
        L /= col_total
        acc = kernel.new_accumulator()
        kernel.accumulate(acc, block, L, kept)
        counts, sum_x, sum_xx = kernel.unpack(acc)
        return EStep(total, SufficientStats(counts, sum_x, sum_xx, covariance_type))
    center_d = None if center is None else center.astype(dtype)
    # Keep each chunk's features across calls while they fit in CACHE_FEATURE_BYTES.
    keep_features = (
        cache is not None
        and features is not None
        and center_d is None
        and X.shape[0] * kernel.width * dtype.itemsize <= CACHE_FEATURE_BYTES
    )

    def missing_kernel_for(chunks: range):
        """The observed-data kernel for the chunks with NaN among ``chunks``: its tables
        cover the patterns of these chunks only (consecutive in the plan), so worker
        threads build their share of them in parallel."""
        if not any(plan.patterns[i] is not None for i in chunks):
            return None
        params_c = params._replace(means=means)
        numbers = [p for i in chunks if plan.patterns[i] for _, _, p in plan.patterns[i].pieces]
        if plan.pattern_table is None or not numbers:
            return missing_chunk_kernel(params_c, covariance_type, None)
        first, last = min(numbers), max(numbers)
        table = plan.pattern_table[first : last + 1]
        return missing_chunk_kernel(params_c, covariance_type, table, first)

    def run(chunks: range) -> tuple[float, list | None, tuple | None]:
        """The chunks ``chunks`` of the plan: objective, complete-data accumulator and
        the statistics of the chunks with NaN."""
        total = 0.0
        acc = kernel.new_accumulator() if statistics else None
        missing_kernel = missing_kernel_for(chunks)
        missing_acc = None
        for index in chunks:
            rows, pieces = plan.chunks[index], plan.patterns[index]
            block = (
                X[rows]
                if plan.blocks is None or plan.blocks[index] is None
                else plan.blocks[index]
            )
            if center_d is not None:
                block = block - center_d
            w_block = None if w is None else w[rows]
            if pieces is None:
                if keep_features:
                    phi = cache.get((features, index))
                    if phi is None:
                        phi = cache[features, index] = features(block)
                    L, kept = kernel.log_gaussian_from_features(phi), phi
                else:
                    L, kept = kernel.log_gaussian(block)  # (K, n)
            else:
                # Exact observed-data densities (float64), the missing values integrated out.
                L, kept = missing_kernel.log_gaussian(block, pieces)
            L += log_w
            if log_weighted is not None:
                log_weighted[rows] = L.T
            lr = L.copy() if log_resp is not None else None
            lpn, col_total = _logsumexp_columns(L)  # L is now exp(L - max)
            if log_resp is not None:
                lr -= lpn
                log_resp[rows] = lr.T
            if statistics:
                L /= col_total  # responsibilities (K, n)
                if w_block is not None:
                    L *= w_block.astype(L.dtype)
                if pieces is None:
                    kernel.accumulate(acc, block, L, kept)
                else:
                    if missing_acc is None:
                        missing_acc = missing_kernel.new_accumulator()
                    missing_kernel.accumulate(missing_acc, block, L, kept, pieces)
            if w_block is None:
                total += float(np.sum(lpn, dtype=np.float64))
            else:
                total += float(lpn.astype(np.float64) @ w_block)
            if log_prob_norm is not None:
                log_prob_norm[rows] = lpn
        missing_stats = None if missing_acc is None else missing_kernel.unpack(missing_acc)
        return total, acc, missing_stats

    with worker_threads(n_chunks, n_workers) as workers:
        if workers <= 1:
            parts = [run(range(n_chunks))]
        else:
            # Contiguous ranges of chunks, one per worker (deterministic for a given
            # number of workers); the outputs are disjoint slices.
            cuts = np.linspace(0, n_chunks, workers + 1).round().astype(int)
            ranges = [range(a, b) for a, b in itertools.pairwise(cuts)]
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(run, ranges))
    total = float(sum(part[0] for part in parts))
    acc = None
    missing = None  # (counts, sum_x, full second moments) of the chunks with NaN
    for _, part_acc, part_missing in parts:
        if part_acc is not None:
            acc = part_acc if acc is None else [x + y for x, y in zip(acc, part_acc, strict=True)]
        if part_missing is not None:
            missing = (
                part_missing
                if missing is None
                else tuple(x + y for x, y in zip(missing, part_missing, strict=True))
            )
    stats = None
    if statistics:
        counts, sum_x, sum_xx = kernel.unpack(acc)
        stats = SufficientStats(counts, sum_x, sum_xx, covariance_type)
        if missing is not None:
            counts, sum_x, second = missing
            stats = stats + SufficientStats(
                counts, sum_x, model.second_moment_from_full(second), covariance_type
            )
    return EStep(total, stats)
