"""µs per log density + gradient: bayesgmm's numba kernel vs the LKJ reference model.

The per-gradient cost is what separates the two samplers in ``bench_posterior_ess.py``
(their ESS per gradient and leapfrog steps per draw are the same), so this times one
evaluation of each, exactly as nutpie calls it: the C callback (``logp + gradient``)
through ``ctypes``, at the same MAP-EM start as the ESS benchmark (same data: N, D, K,
'full' covariances, ``make_mixture(..., separation=5)`` with the ESS benchmark's seeds).

- KERNEL: ``bayesgmm.bayes._kernel`` (what ``PosteriorGaussianMixture`` samples), the
  callback of :func:`bayesgmm.bayes._kernel._cfuncs` with the data set's buffer;
- REFERENCE: PyMC's documented LKJ mixture model (``bench_posterior_ess.reference``),
  compiled by ``nutpie.compile_pymc_model(backend="numba")``; its ``compiled_logp_func``
  with its ``user_data``;
- CALL: the overhead of one ``ctypes`` call of a trivial callback (nutpie's ``expand``
  of the kernel), included in both figures above.

Each figure is the best of ``--rounds`` short rounds of ``--repeats`` calls (wall time
per call; a round lasts about a millisecond, shorter than a scheduler time slice, so on a
loaded machine some rounds run undisturbed and the minimum is robust to load from other
processes), with BLAS and OpenMP threads pinned to 1.
The reference's compile is cached in ``--compiledir`` (PyTensor's base_compiledir,
default a fixed directory under /tmp) so a second run does not pay it again.

Run::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        python benchmarks/bench_gradient_cost.py [--dims 2 5 10] [--models kernel,reference]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", nargs="+", type=int, default=[2, 5, 10])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="as bench_posterior_ess --seed")
    parser.add_argument("--repeats", type=int, default=20, help="calls per round")
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--models", default="kernel,reference")
    parser.add_argument(
        "--compiledir", type=Path, default=Path("/tmp/bayesgmm-bench-gradient-pytensor")
    )
    parser.add_argument("--out", type=Path, default=None, help="append the table here")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    return args


_ARGS = parse_args() if __name__ == "__main__" else None
if _ARGS is not None:
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        f
        for f in (os.environ.get("PYTENSOR_FLAGS", ""), f"base_compiledir={_ARGS.compiledir}")
        if f
    )

import numpy as np  # noqa: E402

_DOUBLE_P = ctypes.POINTER(ctypes.c_double)


def _caller(cfunc, dim: int, theta: np.ndarray, user_data_ptr: int):
    """A zero-argument function calling ``cfunc`` (nutpie's logp signature) once."""
    fn = cfunc.ctypes
    x = np.ascontiguousarray(theta, dtype=np.float64)
    grad = np.zeros(dim)
    logp = np.zeros(1)
    args = (
        ctypes.c_uint64(dim),
        x.ctypes.data_as(_DOUBLE_P),
        grad.ctypes.data_as(_DOUBLE_P),
        logp.ctypes.data_as(_DOUBLE_P),
        ctypes.c_void_p(user_data_ptr),
    )

    def call():
        return fn(*args)

    status = call()
    if status != 0:
        raise RuntimeError(f"callback returned status {status}")
    return call, logp, grad


def _best(call, repeats: int, rounds: int) -> float:
    best = np.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeats):
            call()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best


def _data(n: int, d: int, k: int, seed: int):
    from bayesgmm import GaussianMixture
    from bayesgmm.datasets import make_mixture

    X = make_mixture(
        n,
        n_components=k,
        n_features=d,
        covariance_type="full",
        separation=5.0,
        random_state=seed + 1000 * d + n,
    ).X
    gm = GaussianMixture(k, covariance_type="full", prior="default", n_init=3, random_state=0)
    return X, gm.fit(X)


def kernel_cost(X, map_fit, k: int, repeats: int, rounds: int) -> dict:
    from bayesgmm.bayes._kernel import _cfuncs, make_kernel_model, to_unconstrained

    t0 = time.perf_counter()
    km = make_kernel_model(X, map_fit.prior_, "full", k)
    logp_c, expand_c = _cfuncs("full")
    load = time.perf_counter() - t0
    params = {
        "weights": map_fit.weights_,
        "means": map_fit.means_,
        "covariances": map_fit.covariances_,
    }
    theta = to_unconstrained(params, "full")
    call, logp, grad = _caller(logp_c, km.n_dim, theta, km.buffer.ctypes.data)
    # the trivial callback: expand (copies theta), for the ctypes overhead
    fn = expand_c.ctypes
    out = np.zeros(km.n_dim)
    eargs = (
        ctypes.c_uint64(km.n_dim),
        ctypes.c_uint64(km.n_dim),
        theta.ctypes.data_as(_DOUBLE_P),
        out.ctypes.data_as(_DOUBLE_P),
        ctypes.c_void_p(km.buffer.ctypes.data),
    )
    overhead = _best(lambda: fn(*eargs), repeats, rounds)
    return {
        "us": 1e6 * _best(call, repeats, rounds),
        "call_us": 1e6 * overhead,
        "load_s": load,
        "logp": float(logp[0]),
        "grad_norm": float(np.linalg.norm(grad)),
    }


def reference_cost(X, map_fit, k: int, repeats: int, rounds: int) -> dict:
    import nutpie

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_posterior_ess import reference

    model, start = reference(X, k, map_fit)
    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(
        model, backend="numba", initial_points=start, jitter_rvs=set()
    )
    compile_s = time.perf_counter() - t0
    theta = compiled.initial_point_func(0)
    call, logp, grad = _caller(
        compiled.compiled_logp_func, compiled.n_dim, theta, compiled.user_data.ctypes.data
    )
    return {
        "us": 1e6 * _best(call, repeats, rounds),
        "compile_s": compile_s,
        "logp": float(logp[0]),
        "grad_norm": float(np.linalg.norm(grad)),
        "_keep": compiled,
    }


def main() -> int:
    args = _ARGS if _ARGS is not None else parse_args()
    from threadpoolctl import threadpool_limits

    header = (
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS')}; N={args.n} K={args.k} full; best of "
        f"{args.rounds} x {args.repeats} calls\n"
        f"# command: python benchmarks/bench_gradient_cost.py {' '.join(sys.argv[1:])}"
    )
    print(header, flush=True)
    lines = [header]
    title = f"{'D':>3} {'kernel_us':>10} {'reference_us':>13} {'ref/kernel':>10} {'call_us':>8}"
    print(title, flush=True)
    lines.append(title)
    with threadpool_limits(1):
        for d in args.dims:
            X, map_fit = _data(args.n, d, args.k, args.seed)
            ker = ref = None
            if "kernel" in args.models:
                ker = kernel_cost(X, map_fit, args.k, args.repeats, args.rounds)
            if "reference" in args.models:
                ref = reference_cost(X, map_fit, args.k, max(1, args.repeats // 4), args.rounds)
                ref.pop("_keep")
            k_us = ker["us"] if ker else np.nan
            r_us = ref["us"] if ref else np.nan
            line = (
                f"{d:>3} {k_us:>10.1f} {r_us:>13.1f} {r_us / k_us:>10.2f} "
                f"{ker['call_us'] if ker else np.nan:>8.2f}"
            )
            print(line, flush=True)
            extra = []
            if ker:
                extra.append(f"kernel logp {ker['logp']:.10g} |grad| {ker['grad_norm']:.6g}")
            if ref:
                extra.append(f"reference compile {ref['compile_s']:.1f} s")
            print("    " + "; ".join(extra), file=sys.stderr, flush=True)
            lines.append(line)
    if args.out is not None:
        with args.out.open("a") as fh:
            fh.write("\n".join(lines) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
