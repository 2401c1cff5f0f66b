r"""Parameter sweeps: a simulator evaluated on a Cartesian grid, vmapped in chunks.

`sweep(sim, {"coupling.G": Gs, "model.a": As}, key=key, objective=..., target=...)`
evaluates every grid point through `Simulator.function`, `jax.vmap`-ed over a
chunk of points and compiled once. Only per-point reductions (an objective, a
statistic) are kept, so the memory of a sweep is that of one chunk plus its
reductions. Chunks run in sequence from Python (progress bar, checkpoints); a
checkpointed sweep that is interrupted resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from .._params import check_domain
from ..chunking import auto_chunk_size, compiled_bytes
from ..progress import progress_bar
from ..simulator import Simulator
from ..storage import digest as _digest
from ..units import to_canonical
from ._result import SweepResult, _dataset
from ._store import _Checkpoint

__all__ = ["sweep", "SweepResult"]

# Warn when the kept per-point results of a sweep would take more than this many bytes.
LARGE_RESULT_BYTES = 2**30
_RESERVED = ("objective", "failed", "time", "region", "channel")

# ------------------------------------------------------------------ helpers


def _grid_values(sim: Simulator, grid: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Each path's values as a 1-D float64 array in the canonical unit (checked)."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(
            f"grid: expected a non-empty dict {{path: values}}, e.g. "
            f"{{'coupling.G': [0.1, 0.2]}}, got {grid!r}."
        )
    paths = [str(p) for p in grid]
    specs = {path: sim.spec(path) for path in paths}  # the simulator's unknown-path error
    out = {}
    for path in paths:
        if path.startswith("connectome."):
            raise ValueError(
                f"grid: {path!r} is a matrix; a sweep varies scalar values. Sweep coupling.G "
                "(scales the weights) or network.speed (scales the delays) instead."
            )
        values = grid[path]
        unit = specs[path].unit
        if isinstance(values, Sequence) and any(isinstance(v, u.Quantity) for v in values):
            values = [to_canonical(v, unit, path) for v in values]
        converted = to_canonical(values, unit, path)  # checks units and numbers
        # plain numbers keep their float64 values as coordinates (the simulation casts them)
        array = np.asarray(converted if isinstance(values, u.Quantity) else values, np.float64)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(
                f"grid[{path!r}]: expected a non-empty 1-D sequence of values, got shape "
                f"{array.shape}; a single value is [v] (or fix it with sim.with_params)."
            )
        check_domain(array, specs[path].domain, f"grid[{path!r}]")
        out[path] = array
    return out


def _name(fn: Any) -> str | None:
    if fn is None:
        return None
    if isinstance(fn, Mapping):
        return ",".join(f"{k}={_name(v)}" for k, v in fn.items())
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def _named_leaves(prefix: str, tree: Any, *, top: bool) -> dict[str, Any]:
    """`{name: array}` for a statistic's output pytree (dict keys become names)."""
    out = {}
    for keypath, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in keypath]
        named_first = bool(keypath) and not isinstance(keypath[0], jax.tree_util.SequenceKey)
        if not parts:
            name = prefix
        elif top and named_first:
            name = "_".join(parts)
        else:
            name = "_".join([prefix, *parts])
        out[name] = leaf
    return out


def _statistics(statistic: Any, signal: Any) -> dict[str, Any]:
    if statistic is None:
        return {}
    if isinstance(statistic, Mapping):
        out = {}
        for key, fn in statistic.items():
            out.update(_named_leaves(str(key), fn(signal), top=False))
        return out
    name = getattr(statistic, "__name__", "")
    prefix = name if name.isidentifier() else "statistic"  # `fc` for bm.analysis.fc
    return _named_leaves(prefix, statistic(signal), top=True)


def _signal(signal):
    """The full signal (the statistic when neither objective nor statistic is given)."""
    return signal


# ------------------------------------------------------------------ fingerprint, chunk size


def _fingerprint(sim, values, objective, statistic, target, key, key_per_point) -> dict:
    """What identifies a sweep in its checkpoint (hashes stable across processes)."""
    return {
        "paths": list(values),
        "grid": _digest(list(values.values())),
        "objective": f"{_name(objective)}:{_digest(objective)}",
        "statistic": f"{_name(statistic)}:{_digest(statistic)}",
        "target": _digest(target),
        "key": f"{_digest(key)}:{'per_point' if key_per_point else 'common'}",
        **sim.fingerprint(),  # dt, duration, solver, monitor, network, ... by name
    }


# ------------------------------------------------------------------ sweep


def sweep(
    sim: Simulator,
    grid: Mapping[str, Any],
    *,
    key: Any,
    objective: Callable | None = None,
    target: Any = None,
    statistic: Callable | Mapping[str, Callable] | None = None,
    chunk_size: int | None = None,
    memory_limit: int | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    key_per_point: bool = False,
) -> SweepResult:
    r"""Evaluate a simulator on the Cartesian product of parameter values.

    Every grid point is simulated through `sim.function(paths)`, `jax.vmap`-ed
    over chunks of `chunk_size` points and compiled once (the last chunk is
    padded to full size and the padding dropped, so nothing retraces). Only
    the per-point objective and statistics are kept.

    **Arguments:**

    - `sim`: the `Simulator`.
    - `grid`: `{path: values}`, dotted paths of `sim.params()` (e.g.
      `"coupling.G"`, `"model.a"`) and 1-D sequences of values (quantities or
      numbers in the parameter's canonical unit). A per-region parameter is
      swept as one value broadcast to all regions. All combinations are run,
      in C order (the last path varies fastest).
    - `key`: a `jax.random` key (may be None for a deterministic network). By
      default every point uses this same key: common random numbers, so that
      differences between points come from the parameters, not the noise.
    - `key_per_point`: give point `i` (flat C-order index over the grid) the key
      `jax.random.fold_in(key, i)` instead: independent noise per point.
    - `objective`: `objective(signal, target) -> scalar` per point, `signal` of
      shape `(n_samples, n_channels)`; stored as the variable `"objective"`.
    - `target`: the second argument of `objective` (any pytree of arrays).
    - `statistic`: `statistic(signal) -> array` (or a pytree of arrays) per
      point, e.g. `bm.analysis.fc`; or a dict `{name: statistic}`. Variable
      names: the dict keys (of the argument, or of a returned dict), else the
      function's name (`"fc"`; `"statistic"` for a lambda), with `_0`, `_1`, ...
      for the items of a returned tuple.
      Without an objective and a statistic, the full signal is kept (variable
      `"signal"`; a warning says when that takes more than 1 GiB).
    - `chunk_size`: points per vmapped chunk. Default: chosen from
      `memory_limit` and the compiled memory of a 2-point chunk
      (`memory_analysis()` of the compiled computation, divided by 2: an upper
      bound on the memory per point).
    - `memory_limit`: bytes one chunk may use. Default: `chunking.MEMORY_FRACTION` (half)
      of the free memory, which is the device's free memory on an accelerator
      and the available host RAM on CPU (psutil if installed, else
      /proc/meminfo), less the memory of the kept results.
    - `progress`: show a tqdm progress bar (and resume messages) on stderr.
    - `checkpoint`: a `.npz` file, or a directory (one file per chunk),
      written after every chunk (atomically), with a fingerprint of the sweep
      (grid, paths, chunk size, objective/statistic/target, key, simulator).
    - `resume`: with an existing checkpoint of the same sweep, skip its
      finished chunks; a checkpoint of a different sweep is an error. False
      starts over and overwrites it.

    **Returns:** a `SweepResult`: `.data` (an `xarray.Dataset` with dims the
    swept paths), `.n_failed`, `.best()`, `.plot()`.

    Points whose simulation produced non-finite values (`Result.ok` false)
    have NaN objective and statistics and are counted in `n_failed`; they never
    raise.
    """
    started = time.perf_counter()
    if not isinstance(sim, Simulator):
        raise ValueError(f"sim: expected a brainmass.Simulator, got {sim!r}.")
    values = _grid_values(sim, grid)
    paths = tuple(values)
    f = sim.function(paths, output="result")
    if key is None and (sim.network.noise is not None or key_per_point):
        raise ValueError("key: this sweep needs a jax.random key (noisy network or key_per_point).")
    if objective is not None and not callable(objective):
        raise ValueError(
            f"objective: expected a function (signal, target) -> scalar, got {objective!r}."
        )
    if isinstance(statistic, Mapping):
        bad = [k for k, fn in statistic.items() if not callable(fn)]
        if bad or not statistic:
            raise ValueError(
                f"statistic: expected a non-empty dict of functions, got {statistic!r}."
            )
    elif statistic is not None and not callable(statistic):
        raise ValueError(f"statistic: expected a function signal -> array, got {statistic!r}.")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size: expected a positive integer, got {chunk_size!r}.")
    if memory_limit is not None and not memory_limit > 0:
        raise ValueError(f"memory_limit: expected a number of bytes > 0, got {memory_limit!r}.")
    keep_signal = objective is None and statistic is None
    if keep_signal:
        statistic = {"signal": _signal}

    shape = tuple(len(v) for v in values.values())
    n_points = math.prod(shape)
    mesh = np.meshgrid(*values.values(), indexing="ij")
    flat = {p: m.reshape(-1) for p, m in zip(paths, mesh, strict=True)}
    specs = sim._specs()
    param_shapes = {p: jnp.shape(sim._get(specs[p].attrs)) for p in paths}
    labels = tuple(sim.monitor.channels(sim.network))
    n_samples = sim.n_samples - sim.transient_samples
    dtype = jnp.result_type(float)
    target = jax.tree.map(jnp.asarray, target)

    if keep_signal:
        kept = n_points * n_samples * len(labels) * np.dtype(dtype).itemsize
        if kept > LARGE_RESULT_BYTES:
            warnings.warn(
                f"sweep keeps the full signal of {n_points} points: {kept / 2**30:.2g} GiB. "
                "Pass objective= or statistic= to keep a reduction per point instead.",
                stacklevel=2,
            )

    order: list[str] = []

    def one(theta, index, key, target):
        theta = {p: jnp.broadcast_to(theta[p], param_shapes[p]) for p in paths}
        result = f(theta, jax.random.fold_in(key, index) if key_per_point else key)
        ok = jnp.asarray(result.ok)
        out = {}
        if objective is not None:
            value = jnp.asarray(objective(result.signal, target))
            if value.size != 1:
                raise ValueError(
                    f"objective: expected a scalar per point, got shape {value.shape}."
                )
            out["objective"] = value.reshape(())
        for name, value in _statistics(statistic, result.signal).items():
            if name in out or name in _RESERVED or name in paths:
                raise ValueError(
                    f"statistic: the name {name!r} is taken (by the objective, a swept path "
                    f"or a dimension); rename it, e.g. statistic={{'my_{name}': ...}}."
                )
            value = jnp.asarray(value)
            if not jnp.issubdtype(value.dtype, jnp.inexact):
                value = value.astype(dtype)
            out[name] = value
        out = {n: jnp.where(ok, v, jnp.nan) for n, v in out.items()}
        out["failed"] = ~ok
        order[:] = list(out)  # jax sorts dict outputs by key; keep this order
        return out

    def evaluate(theta, indices, key, target):
        return jax.vmap(one, in_axes=(0, 0, None, None))(theta, indices, key, target)

    def compile_for(size: int):
        theta = {p: jax.ShapeDtypeStruct((size,), dtype) for p in paths}
        indices = jax.ShapeDtypeStruct((size,), jnp.int32)
        lowered = jax.jit(evaluate).lower(theta, indices, key, target)
        return lowered.compile(), lowered.out_info

    fingerprint = _fingerprint(sim, values, objective, statistic, target, key, key_per_point)
    checkpoint = None if checkpoint is None else _Checkpoint(checkpoint)
    meta, chunks_done = {}, {}
    if checkpoint is not None:
        meta, chunks_done = checkpoint.resume(fingerprint, chunk_size, resume)
        chunk_size = meta.get("chunk_size", chunk_size)

    compiled = out_info = None
    per_point = None
    if chunk_size is None:
        chunk_size, per_point, memory_limit, compiled, out_info = auto_chunk_size(
            compile_for, n_points, memory_limit
        )
    n_chunks = -(-n_points // chunk_size)
    todo = [c for c in range(n_chunks) if c not in chunks_done]
    if todo and compiled is None:
        compiled, out_info = compile_for(chunk_size)
        used = compiled_bytes(compiled)
        if per_point is not None and used is not None and used > memory_limit and chunk_size > 1:
            # memory grew faster than linearly in the chunk size: shrink once
            chunk_size = max(1, int(chunk_size * memory_limit / used))
            n_chunks = -(-n_points // chunk_size)
            todo = list(range(n_chunks))
            compiled, out_info = compile_for(chunk_size)
    chunk_memory = None if compiled is None else compiled_bytes(compiled)

    if out_info is not None:
        names = list(order)
        if chunks_done and names != list(meta["names"]):
            raise ValueError(
                f"checkpoint: {checkpoint.path} holds the variables {meta['names']}, this "
                f"sweep makes {names}; pass resume=False to start over."
            )
        arrays = {
            n: np.full((n_points, *out_info[n].shape[1:]), np.nan, out_info[n].dtype) for n in names
        }
    else:
        names = list(meta["names"])
        first = next(iter(chunks_done.values()))
        arrays = {n: np.empty((n_points, *first[n].shape[1:]), first[n].dtype) for n in names}
    for c, chunk in chunks_done.items():
        for n in names:
            arrays[n][c * chunk_size : c * chunk_size + len(chunk[n])] = chunk[n]
    if chunks_done and progress:
        print(
            f"sweep: resuming from {checkpoint.path}: {len(chunks_done)} of {n_chunks} chunks "
            "already done, skipped.",
            file=sys.stderr,
        )
    meta = {
        "fingerprint": fingerprint,
        "chunk_size": chunk_size,
        "n_points": n_points,
        "names": names,
        "done": sorted(chunks_done),
    }

    bar = progress_bar(
        total=n_points,
        initial=n_points - sum(min(chunk_size, n_points - c * chunk_size) for c in todo),
        unit="sim",
        desc="sweep",
        disable=not progress,
        file=sys.stderr,
    )
    run_time = 0.0
    with bar:
        for c in todo:
            start, stop = c * chunk_size, min(n_points, (c + 1) * chunk_size)
            index = np.arange(start, start + chunk_size)
            index = np.where(index < n_points, index, 0)  # pad with point 0, dropped below
            theta = {p: jnp.asarray(flat[p][index], dtype) for p in paths}
            t0 = time.perf_counter()
            out = jax.device_get(compiled(theta, jnp.asarray(index, jnp.int32), key, target))
            run_time += time.perf_counter() - t0
            for n in names:
                arrays[n][start:stop] = out[n][: stop - start]
            if checkpoint is not None:
                meta["done"].append(c)
                checkpoint.save(meta, c, arrays, start, stop)
            bar.update(stop - start)

    n_run = sum(min(chunk_size, n_points - c * chunk_size) for c in todo)
    data = _dataset(sim, values, arrays, shape, labels, n_samples)
    n_failed = int(np.sum(arrays["failed"]))
    wall = time.perf_counter() - started
    rate = n_run / run_time if run_time > 0 else float("nan")
    data.attrs.update(
        paths=",".join(paths),
        n_failed=n_failed,
        chunk_size=chunk_size,
        wall_time_s=wall,
        simulations_per_second=rate,
        objective=str(_name(objective)),
        statistic=str(_name(statistic)),
    )
    return SweepResult(
        data=data,
        n_failed=n_failed,
        wall_time=wall,
        simulations_per_second=rate,
        chunk_size=chunk_size,
        n_chunks=n_chunks,
        n_resumed=len(chunks_done),
        memory_per_point=per_point,
        chunk_memory=chunk_memory,
    )
