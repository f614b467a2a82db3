"""Compiled functions of :func:`~bayesgmm.bayes.build_model`'s model, reused across fits.

The model reads its data (``x_data``, and for data with NaN the pattern containers
``x_pattern``, ``x_masks``) and its prior hyperparameters (``prior_*``) from shared
variables, and its likelihood with NaN is a masked one whose graph does not depend on
which missingness patterns occur. So two models of the same *structure* (covariance
type, K, D, missing values or not, the prior's form) have the same logp graph up to the
values of those shared variables, and the functions compiled for the first serve the
second with its data swapped in (``CompiledPyMCModel.with_data`` for nutpie): no
PyTensor rewriting, no numba compilation.

Reuse is decided in two steps: a key from the model's structure picks a cache entry,
and ``pytensor.graph.basic.equal_computations`` then checks that the new model's logp
graph is the entry's, variable for variable, constants included (the shared variables
and value variables matched by name). A model that differs in anything baked into the
graph (a new K or D, another prior form, a constant added by a user's extension) is
compiled afresh, never sampled with another model's functions.

What still compiles: the first fit of each structure in a process (nutpie's logp and
gradient, its expand function, and the small start function here).
The number of rows N, the data, the hyperparameters and the missingness patterns
(which and how many) are inputs.

The cache holds at most :data:`MAX_ENTRIES` models (the least recently used is dropped
first). A lookup and each entry's compilation hold a lock, so nutpie fits of one
structure running in several threads compile it once and each reads its own data
(``with_data`` gives every fit its own copy); :func:`pymc_nuts` swaps the data into the
entry's shared variables, so ``sampler='pymc'`` fits of one structure must not run
concurrently.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "COMPILES",
    "MAX_ENTRIES",
    "clear_cache",
    "compiled_for",
    "lookup",
    "pymc_nuts",
    "sample_nutpie",
]

#: How many times each kind of function was compiled in this process ("nutpie": logp,
#: gradient and expand functions; "start": the map to nutpie's unconstrained vector;
#: "pymc": the logp and gradient of PyMC's NUTS). Tests read it.
COMPILES: Counter = Counter()


@dataclass
class _Entry:
    """The functions compiled for one model (``model``), and its logp graph."""

    model: Any
    logp: Any
    values: dict[str, Any]  # value variables by name
    shared: dict[str, Any]  # shared variables of the logp graph by name
    key: tuple = ()
    nutpie: Any = None
    start: Any = None
    logp_dlogp: Any = None
    lock: Any = dataclasses.field(default_factory=threading.Lock, repr=False)


#: The most models the cache keeps (each holds its compiled functions and its data);
#: the least recently used is dropped when a new one would exceed it.
MAX_ENTRIES = 16

_CACHE: dict[tuple, list[_Entry]] = {}
_ORDER: list[_Entry] = []  # least recently used first
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every compiled model (the next fit of each structure compiles again)."""
    with _LOCK:
        _CACHE.clear()
        _ORDER.clear()


def _touch(entry: _Entry) -> None:
    """Mark ``entry`` most recently used and drop the least recently used entries past
    :data:`MAX_ENTRIES` (callers hold ``_LOCK``)."""
    if entry in _ORDER:
        _ORDER.remove(entry)
    _ORDER.append(entry)
    while len(_ORDER) > max(int(MAX_ENTRIES), 1):
        old = _ORDER.pop(0)
        siblings = _CACHE.get(old.key, [])
        if old in siblings:
            siblings.remove(old)
        if not siblings:
            _CACHE.pop(old.key, None)


def _graph(model):
    """``model``'s logp graph, its value variables and the shared variables it reads."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import graph_inputs

    # a copy: compiling rewrites graphs in place (nutpie's rewrite_graph), and the
    # logp graph shares nodes with the model's (the hyperparameters' expressions)
    logp = clone_replace(model.logp())
    shared = {
        v.name: v for v in graph_inputs([logp]) if isinstance(v, SharedVariable) and not _is_rng(v)
    }
    values = {v.name: v for v in model.value_vars}
    return logp, values, shared


def _is_rng(var) -> bool:
    from pytensor.tensor.random.type import RandomType

    return isinstance(var.type, RandomType)


def _key(model, shared: dict[str, Any], values: dict[str, Any]) -> tuple:
    """The structure: free variables, observed variables, coords' lengths other than
    ``obs``, and the names and ranks of the shared inputs (the prior's form shows in
    which ``prior_*`` containers exist)."""
    lengths = tuple(
        (name, len(vals)) for name, vals in model.coords.items() if name != "obs" and vals
    )
    return (
        tuple(sorted(values)),
        tuple(rv.name for rv in model.observed_RVs),
        lengths,
        tuple(sorted((name, var.ndim, var.dtype) for name, var in shared.items())),
    )


def lookup(model) -> tuple[_Entry, bool]:
    """The cache entry whose functions compute ``model``'s logp; ``True`` if it is new
    (``model``'s own, nothing compiled yet) and ``False`` if an earlier model's is
    reused (its functions then read ``model``'s data, swapped in)."""
    from pytensor.graph.basic import equal_computations

    logp, values, shared = _graph(model)
    key = _key(model, shared, values)
    names_v, names_s = sorted(values), sorted(shared)
    with _LOCK:
        for entry in _CACHE.get(key, []):
            if equal_computations(
                [logp],
                [entry.logp],
                in_xs=[values[n] for n in names_v] + [shared[n] for n in names_s],
                in_ys=[entry.values[n] for n in names_v] + [entry.shared[n] for n in names_s],
            ):
                _touch(entry)
                return entry, False
        entry = _Entry(model=model, logp=logp, values=values, shared=shared, key=key)
        _CACHE.setdefault(key, []).append(entry)
        _touch(entry)
        return entry, True


def _shared_values(model) -> dict[str, np.ndarray]:
    """The current values of every shared variable of ``model`` that is data: its
    data containers, ``x_data`` and the coords' lengths."""
    from pytensor.compile.sharedvalue import SharedVariable

    out = {}
    for var in [*model.data_vars, *model.rvs_to_values.values(), *model.dim_lengths.values()]:
        if isinstance(var, SharedVariable) and var.name is not None:
            out[var.name] = var.get_value()
    return out


def _start_function(model):
    """Constrained values of the free variables (by name) -> their unconstrained values
    (by value-variable name, in ``model.free_RVs`` order: nutpie's flat vector is their
    concatenation), by :func:`bayesgmm.bayes.mass.forward_map`."""
    from bayesgmm.bayes.mass import forward_map

    forward, _names = forward_map(model, mode="FAST_COMPILE")
    value_names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    COMPILES["start"] += 1

    def start(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = forward(values)
        return {n: np.asarray(v, dtype=np.float64) for n, v in zip(value_names, out, strict=True)}

    return start


def _flat(point: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(v) for v in point.values()])


def compiled_for(entry: _Entry, model):
    """``entry``'s nutpie model (compiled now if it is not yet) reading ``model``'s data,
    hyperparameters and coords (``with_data``: no compilation)."""
    import nutpie
    from nutpie.compile_pymc import _prepare_dims_and_coords

    with entry.lock:  # concurrent fits of one structure compile it once
        if entry.nutpie is None:
            entry.nutpie = nutpie.compile_pymc_model(entry.model, jitter_rvs=set())
            COMPILES["nutpie"] += 1
    compiled = entry.nutpie
    if entry.model is model:
        return compiled
    data = _shared_values(model)
    names = {var.name for var in compiled.shared_var_keys}
    missing = names - set(data)
    if missing:  # not a data container of the model: the key and graph check prevent it
        raise RuntimeError(f"No value for the shared inputs {sorted(missing)} of the model.")
    compiled = compiled.with_data(**{name: data[name] for name in names})
    dims, coords = _prepare_dims_and_coords(
        model, compiled.shape_info, compiled.reparameterized_names
    )
    return dataclasses.replace(compiled, dims=dims, _coords=coords)


def sample_nutpie(
    entry: _Entry,
    model,
    starts: list[dict[str, np.ndarray]],
    *,
    draws: int,
    tune: int,
    seeds: list[int],
    target_accept: float,
    progressbar: bool,
) -> tuple[xr.DataTree, dict[str, float], np.ndarray]:
    """nutpie on ``model``, chain ``c`` from ``starts[c]`` (constrained values of the
    free variables, by name) with ``seeds[c]``, with the functions of ``entry``
    (:func:`lookup`), compiled for ``model`` or an earlier model of the same structure.
    One single-chain nutpie run per chain (nutpie gives every chain of one run the same
    start), the runs concurrent, as the kernel path does
    (:func:`bayesgmm.bayes._sampling.run_chains`).

    Returns the DataTree (posterior, sample_stats, observed_data, constant_data; the
    same groups as ``pm.sample(nuts_sampler="nutpie")``), the seconds spent compiling
    (0 on reuse) and sampling, and the starts as nutpie's unconstrained vectors
    (chains, n_dim).
    """
    from pymc.backends.arviz import patch_nutpie_idata

    from bayesgmm.bayes._sampling import sample_each

    t0 = time.perf_counter()
    compiled = compiled_for(entry, model)
    with entry.lock:
        if entry.start is None:
            entry.start = _start_function(entry.model)
    flats = [_flat(entry.start(start)) for start in starts]
    t_compile = time.perf_counter() - t0

    def start_at(flat):
        return lambda seed=None: flat.copy()

    results, t_sample = sample_each(
        [dataclasses.replace(compiled, initial_point_func=start_at(flat)) for flat in flats],
        draws=draws,
        tune=tune,
        seeds=seeds,
        target_accept=target_accept,
        progressbar=progressbar,
    )
    groups = {}
    for name in results[0].children:
        parts = [r[name].to_dataset() for r in results]
        if "chain" in parts[0].dims:
            merged = xr.concat(parts, dim="chain", coords="minimal", compat="override")
            merged = merged.assign_coords(chain=np.arange(len(parts)))
        else:
            merged = parts[0]
        groups[name] = merged.assign_attrs(parts[0].attrs)
    idata = xr.DataTree.from_dict(groups)
    patch_nutpie_idata(idata, model, sampling_time=t_sample)
    return idata, {"compile": t_compile, "sampling": t_sample}, np.stack(flats)


def pymc_nuts(entry: _Entry, model, starts: list[dict], *, seed: int, target_accept: float):
    """A ``pm.NUTS`` step for ``pm.sample(step=...)`` on ``model``, as ``pm.sample``'s
    ``init="jitter+adapt_diag"`` builds it (a diagonal mass matrix adapted from the mean
    of the chains' starts ``starts``, constrained values by name), but with the logp
    and gradient function of ``entry``, compiled once per structure, its shared
    variables set to ``model``'s data. The entry's own model is overwritten with
    ``model``'s data: it is private to the cache, and nutpie's compiled model keeps
    its own copy of its data. So two ``sampler='pymc'`` fits of one structure must not
    run at the same time in two threads (nutpie's reuse, above, may)."""
    import pymc as pm
    from pymc.step_methods.hmc import quadpotential

    with entry.lock:
        if entry.logp_dlogp is None:
            fn = entry.model.logp_dlogp_function(
                ravel_inputs=True, initial_point=entry.model.initial_point(0)
            )
            fn.trust_input = True
            entry.logp_dlogp = fn
            COMPILES["pymc"] += 1
        if entry.start is None:
            entry.start = _start_function(entry.model)
    if entry.model is not model:
        data = _shared_values(model)
        for name, var in entry.shared.items():
            var.set_value(data[name])
    points = [entry.start(values) for values in starts]
    mean = np.mean([_flat(point) for point in points], axis=0)
    potential = quadpotential.QuadPotentialDiagAdapt(
        len(mean), mean, np.ones_like(mean), 10, rng=np.random.default_rng(seed)
    )
    return pm.NUTS(
        potential=potential,
        model=model,
        rng=np.random.default_rng(seed + 1),
        initial_point=points[0],
        logp_dlogp_func=entry.logp_dlogp,
        target_accept=target_accept,
    )
