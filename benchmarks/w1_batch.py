"""W1 batched: time per simulation for vmapped batches, lane batching vs plain JAX batching.

Runs the W1 workload (see `w1_hopf_delays.py`) on whatever device JAX sees
(CPU here; a GPU where one is lent), unbatched and as `jax.vmap` batches of
the given sizes over the coupling gain, with `batching="lanes"` (brainmass's
default) and `batching="vmap"` (plain JAX batching), plus the gradient of an
FC loss. Prints one line per configuration.

Usage:
    python benchmarks/w1_batch.py [--duration-ms 10000] [--sizes 1 32 256]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from w1_hopf_delays import _fc, _fc_loss, _memory, build  # noqa: E402


def _time(fn, *args, repeats=3):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-ms", type=float, default=10_000.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = jax.devices()[0]
    print(f"W1 batches, {args.duration_ms / 1000:g} s, on {device.platform} ({device.device_kind})")
    key = jax.random.key(0)
    for batching in ("lanes", "vmap"):
        sim = build(args.duration_ms, batching=batching)
        f = sim.function(["coupling.G"])
        single = None
        for size in args.sizes:
            gs = jnp.linspace(0.3, 0.6, size)
            fb = jax.jit(jax.vmap(lambda g, f=f: f({"coupling.G": g}, key)))
            t = _time(fb, gs, repeats=args.repeats)
            mem = _memory(fb.lower(gs).compile())
            per_sim = t / size
            single = per_sim if size == 1 else single
            ratio = f"  ({per_sim / single:.2f}x the unbatched time)" if single else ""
            print(
                f"  {batching:5s} batch {size:4d}: {per_sim * 1e3:9.2f} ms per simulation, "
                f"{mem:8.0f} MB{ratio}"
            )
        target = _fc(f({"coupling.G": jnp.asarray(0.4)}, jax.random.key(9)))
        grad = jax.jit(jax.grad(lambda g, f=f, t=target: _fc_loss(f({"coupling.G": g}, key), t)))
        t = _time(grad, jnp.asarray(0.5), repeats=args.repeats)
        print(f"  {batching:5s} gradient: {t * 1e3:9.2f} ms ({t / single:.2f}x forward)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
