"""How many simulations to vmap at once: chunk sizes from the compiled memory of a probe.

A parameter sweep (`brainmass.sweep`) or a simulation bank (`inference.simulate_bank`)
evaluates many points with one jitted, `jax.vmap`-ed function, a chunk of points at a
time. `auto_chunk_size` compiles that function for a 2-point chunk, reads the compiled
memory (`memory_analysis()`: arguments + outputs + temporaries), divides by 2 and returns
the largest chunk that fits a memory budget, by default half of the free memory
(`MEMORY_FRACTION` of `available_memory()`).

    def compile_for(size):                      # size -> (compiled, out_info)
        lowered = jax.jit(chunk_fn, static_argnums=1).lower(key_spec, size)
        return lowered.compile(), lowered.out_info

    plan = bm.chunking.auto_chunk_size(compile_for, n_points=10_000)
    compiled = plan.compiled or compile_for(plan.chunk_size)[0]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

__all__ = ["MEMORY_FRACTION", "ChunkSize", "auto_chunk_size", "available_memory", "compiled_bytes"]

# Default chunk memory budget: this fraction of the free memory (see `available_memory`).
MEMORY_FRACTION = 0.5


class ChunkSize(NamedTuple):
    """What `auto_chunk_size` decided (a tuple: it unpacks in this order).

    - `chunk_size`: points per chunk, `1 <= chunk_size <= n_points`.
    - `bytes_per_point`: compiled memory of the 2-point probe divided by 2, in bytes;
      None when the backend reports no memory (the chunk size is then `min(n_points, 256)`).
    - `memory_limit`: the budget used, in bytes (the argument, or the default).
    - `compiled`: the compiled probe when `chunk_size` equals the probe's size (so it
      can be used as is), else None.
    - `out_info`: the probe's `lowered.out_info` under the same condition, else None.
    """

    chunk_size: int
    bytes_per_point: float | None
    memory_limit: float
    compiled: Any
    out_info: Any


def available_memory() -> int:
    """Free memory in bytes: the default device's free memory on an accelerator, else host RAM.

    Host RAM is psutil's `available` if psutil is installed, else `MemAvailable`
    from /proc/meminfo, else 4 GiB.
    """
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


def compiled_bytes(compiled: Any) -> int | None:
    """Memory of a compiled computation in bytes: arguments + outputs + temporaries - aliases.

    `compiled` is what `jax.jit(f).lower(...).compile()` returns. **Returns** None when the
    backend does not report memory.
    """
    try:
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports memory
        return None
    if isinstance(stats, (list, tuple)):
        stats = stats[0] if stats else None
    if stats is None:
        return None
    return int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


def auto_chunk_size(
    compile_for: Callable[[int], tuple[Any, Any]],
    n_points: int,
    memory_limit: float | None = None,
) -> ChunkSize:
    """The chunk size that fits `memory_limit`, from the compiled memory of a 2-point chunk.

    **Arguments:**

    - `compile_for`: `compile_for(size) -> (compiled, out_info)`, the chunk function
      compiled for `size` points (`lowered.compile()`, `lowered.out_info`); `out_info` is a
      dict of `jax.ShapeDtypeStruct` with the chunk on the leading axis.
    - `n_points`: how many points there are in all (>= 1).
    - `memory_limit`: bytes one chunk may use. Default: `MEMORY_FRACTION` of
      `available_memory()`, less, on a CPU, the memory of every point's kept outputs
      (results share the host memory).

    **Returns:** a `ChunkSize` `(chunk_size, bytes_per_point, memory_limit, compiled,
    out_info)`. When even one point needs more than `memory_limit`, a warning says so and
    `chunk_size` is 1.
    """
    probe = min(2, n_points)
    compiled, out_info = compile_for(probe)
    probe_bytes = compiled_bytes(compiled)
    if memory_limit is None:
        kept = sum(math.prod(s.shape[1:]) * s.dtype.itemsize for s in out_info.values())
        on_host = jax.devices()[0].platform == "cpu"  # results share the host memory
        memory_limit = MEMORY_FRACTION * available_memory() - on_host * n_points * kept
    if probe_bytes is None:  # no memory report on this backend
        chunk_size, per_point = min(n_points, 256), None
    else:
        per_point = probe_bytes / probe
        chunk_size = int(min(n_points, max(1, memory_limit // per_point)))
        if memory_limit < per_point:
            warnings.warn(
                f"memory_limit: one simulation needs about {per_point / 2**20:.3g} MiB, more "
                f"than the {memory_limit / 2**20:.3g} MiB allowed; running one point at a time.",
                stacklevel=3,
            )
    if chunk_size != probe:
        compiled = out_info = None
    return ChunkSize(chunk_size, per_point, memory_limit, compiled, out_info)
