"""Benchmark W2: 68-region delayed Hopf network with BOLD (TR 0.72 s), 60 s at dt = 0.1 ms.

Workload (issue 3): synthetic 68-region connectome (max-normalised), Hopf
(a = -0.04/ms, omega = 2 pi 10 Hz) in its noise-driven regime below the
bifurcation, linear coupling G = 0.08, conduction speed 5 m/s, additive noise
sigma = 0.02, stochastic Heun at dt = 0.1 ms, 60 s of model time, BOLD
(Balloon-Windkessel, Stephan et al. 2007 coefficients, integrated inside the
scan at 10 ms) sampled every TR = 720 ms.

Prints brainmass's compile and steady time (median of 3), the throughput of a
sweep of BOLD simulations (`bm.sweep`, vmapped chunks), and runs the same
workload in every installed peer (`benchmarks/peers/run_<peer>_w2.py`: neurolib,
TVB, vbjax, tvboptim, each with its own BOLD model) with the ratio.

Usage:
    python benchmarks/w2_bold.py [--duration-ms 60000] [--sweep 32] [--no-peers]
        [--peer-repeats 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import brainmass as bm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from w1_hopf_delays import _memory, run_peers  # noqa: E402

N_REGIONS, G, A, SIGMA, TR_MS = 68, 0.08, -0.04, 0.02, 720.0


def build(duration_ms: float) -> bm.Simulator:
    """The W2 simulator."""
    conn = bm.Connectome.synthetic(N_REGIONS, seed=0)
    net = bm.Network(
        bm.models.Hopf(a=A, omega=2 * np.pi * 0.010),
        conn,
        coupling=bm.coupling.Linear(G=G),
        speed=5.0,
        noise=bm.noise.Additive(sigma=SIGMA),
    )
    return bm.Simulator(
        net,
        dt=0.1,
        duration=duration_ms,
        monitor=bm.monitors.BOLD(period=TR_MS),
        solver=bm.solvers.StochasticHeun(),
        init={"x": 0.0, "y": 0.0},
    )


def _timed(fn, *args):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t


def bench_brainmass(duration_ms: float, repeats: int, sweep_points: int) -> dict:
    sim = build(duration_ms)
    f = jax.jit(sim.function(["coupling.G"]))
    theta = {"coupling.G": jnp.asarray(G)}
    first = _timed(f, theta, jax.random.key(0))
    steady = statistics.median(_timed(f, theta, jax.random.key(i + 1)) for i in range(repeats))
    bold = f(theta, jax.random.key(0))
    out = {
        "plan": repr(sim.plan),
        "compile_s": first - steady,
        "steady_s": steady,
        "n_bold_samples": int(bold.shape[0]),
        "bold_std": float(jnp.std(bold[bold.shape[0] // 2 :], axis=0).mean()),
        "memory_mb": _memory(f.lower(theta, jax.random.key(0)).compile()),
    }
    if sweep_points:
        grid = {"coupling.G": np.linspace(0.02, 0.09, sweep_points)}
        t = time.perf_counter()
        result = bm.sweep(
            sim, grid, key=jax.random.key(0), statistic=bm.analysis.fc, progress=False
        )
        out["sweep_points"] = sweep_points
        out["sweep_total_s"] = time.perf_counter() - t
        out["sweep_per_second"] = result.simulations_per_second
        out["sweep_chunk"] = result.chunk_size
        out["sweep_chunk_memory_mb"] = result.chunk_memory / 2**20
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-ms", type=float, default=60_000.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", type=int, default=32, help="points of the sweep (0: none)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--peer-repeats", type=int, default=1, help="timed peer runs after the first (TVB: minutes)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    print(
        f"W2: {N_REGIONS}-region delayed Hopf with BOLD (TR {TR_MS:g} ms), "
        f"{args.duration_ms / 1000:g} s, dt 0.1 ms, stochastic Heun"
    )
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    ours = bench_brainmass(args.duration_ms, args.repeats, args.sweep)
    print(f"brainmass {bm.__version__}  {ours['plan']}")
    print(f"  compile            {ours['compile_s']:8.2f} s")
    print(f"  steady (median {args.repeats}) {ours['steady_s']:8.3f} s")
    print(
        f"  BOLD samples       {ours['n_bold_samples']:8d}  (std over time {ours['bold_std']:.2e})"
    )
    print(f"  memory             {ours['memory_mb']:8.1f} MB")
    if args.sweep:
        print(
            f"  sweep of {ours['sweep_points']} BOLD simulations: "
            f"{ours['sweep_per_second']:.2f} simulations/s (chunks of {ours['sweep_chunk']}, "
            f"{ours['sweep_chunk_memory_mb']:.0f} MB; {ours['sweep_total_s']:.0f} s with compile)"
        )
    peers = {}
    if not args.no_peers:
        extra = ("--G", str(G), "--a", str(A))
        peers = run_peers(
            args.duration_ms, args.peer_repeats, 0, n_regions=N_REGIONS, suffix="_w2", extra=extra
        )
    for peer, res in peers.items():
        if "error" in res:
            print(f"{peer:10s} -- {res['error'][:200]}")
            continue
        ratio = res["steady_s"] / ours["steady_s"]
        compile_s = res.get("compile_s", float("nan")) - res["steady_s"]
        compile_txt = f"{compile_s:7.2f} s" if compile_s > 0.05 else "    n/a  "
        print(
            f"{peer:10s} {res.get('version', '?'):>10s}  compile {compile_txt}"
            f"  steady {res['steady_s']:8.2f} s  -> brainmass is {ratio:.1f}x faster"
            f"  [{res.get('bold', res.get('notes', ''))[:120]}]"
        )
    if args.json:
        args.json.write_text(json.dumps({"brainmass": ours, "peers": peers}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
