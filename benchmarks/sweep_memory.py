"""A 32 x 32 = 1,024-point sweep of 68-region BOLD simulations in bounded memory.

The W2 network (`w2_bold.py`: 68-region delayed Hopf, stochastic Heun at
dt = 0.1 ms, BOLD at TR = 0.72 s) swept over the coupling G and the
bifurcation parameter a on an N x N grid with `bm.sweep`, keeping the FC
correlation with a target per point. The chunk size comes from
`memory_limit`; the script prints the chunk size, the compiled memory of one
chunk, the process's peak resident memory before and after the sweep, the
compiled memory one `vmap` over the whole grid would need (compiled, not
run), and the throughput.

Usage:
    python benchmarks/sweep_memory.py [--grid 32] [--duration-ms 10000] [--memory-limit-mb 256]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import brainmass as bm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from w1_hopf_delays import _memory  # noqa: E402
from w2_bold import build  # noqa: E402


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=32, help="points per axis")
    parser.add_argument("--duration-ms", type=float, default=10_000.0)
    parser.add_argument("--memory-limit-mb", type=float, default=256.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    sim = build(args.duration_ms)
    n = args.grid
    grid = {"coupling.G": np.linspace(0.02, 0.16, n), "model.a": np.linspace(-0.03, 0.0, n)}
    target = sim.run(jax.random.key(1)).signal
    objective = bm.objectives.FCCorrelation()
    device = jax.devices()[0]
    print(
        f"sweep of {n} x {n} = {n * n} BOLD simulations of the W2 network "
        f"({args.duration_ms / 1000:g} s each) on {device.platform} ({device.device_kind})"
    )

    # what one vmap over the whole grid would need (compiled only, never run)
    f = sim.function(["coupling.G", "model.a"])

    def loss(g, a):
        return objective(f({"coupling.G": g, "model.a": a}, jax.random.key(0)), target)

    whole = jax.ShapeDtypeStruct((n * n,), jnp.float32)
    t = time.perf_counter()
    whole_mb = _memory(jax.jit(jax.vmap(loss)).lower(whole, whole).compile())
    print(
        f"  one vmap over all {n * n} points would need {whole_mb:8.0f} MB (compiled in "
        f"{time.perf_counter() - t:.0f} s, not run)"
    )

    before = _peak_rss_mb()
    result = bm.sweep(
        sim,
        grid,
        key=jax.random.key(0),
        objective=objective,
        target=target,
        memory_limit=int(args.memory_limit_mb * 2**20),
    )
    after = _peak_rss_mb()
    out = {
        "grid": n,
        "points": n * n,
        "duration_ms": args.duration_ms,
        "memory_limit_mb": args.memory_limit_mb,
        "chunk_size": result.chunk_size,
        "n_chunks": result.n_chunks,
        "chunk_memory_mb": result.chunk_memory / 2**20,
        "whole_grid_memory_mb": whole_mb,
        "peak_rss_before_mb": before,
        "peak_rss_after_mb": after,
        "simulations_per_second": result.simulations_per_second,
        "wall_s": result.wall_time,
        "n_failed": result.n_failed,
        "best": result.best(),
    }
    print(f"  memory limit            {args.memory_limit_mb:8.0f} MB")
    print(f"  chunk size              {result.chunk_size:8d} points, {result.n_chunks} chunks")
    print(f"  compiled chunk memory   {out['chunk_memory_mb']:8.1f} MB")
    print(
        f"  peak RSS before / after {before:8.0f} / {after:.0f} MB "
        f"(+{after - before:.0f} MB for the sweep)"
    )
    print(
        f"  throughput              {result.simulations_per_second:8.2f} simulations/s "
        f"({result.wall_time:.0f} s in all, {result.n_failed} failed)"
    )
    print(f"  best grid point         {out['best']}")
    if result.n_failed:
        failed = result.data["failed"]
        stacked = failed.stack(point=("coupling.G", "model.a"))
        where = stacked.point.values[stacked.values]
        gs = [g for g, _ in where]
        as_ = [a for _, a in where]
        out["failed_G_range"] = [min(gs), max(gs)]
        out["failed_a_range"] = [min(as_), max(as_)]
        print(
            f"  failed points           G in [{min(gs):.3g}, {max(gs):.3g}], "
            f"a in [{min(as_):.3g}, {max(as_):.3g}] /ms"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
