"""Benchmark W1: 80-region delayed Hopf network, stochastic Heun, 10 s at dt = 0.1 ms.

Workload (issue 2): synthetic 80-region connectome (max-normalised), Hopf
(a = -0.02/ms, omega = 2 pi 10 Hz), linear coupling G = 0.5, conduction speed
5 m/s, additive noise sigma = 0.02 on x and y, stochastic Heun at dt = 0.1 ms,
10 s of model time, output every 1 ms (Raw).

Prints, for brainmass:
- compile time (first call minus a steady call) and steady time (median of 3);
- a vmapped batch of 32 parameter sets: time per simulation and peak memory;
- the gradient of an FC-correlation loss with respect to G through the same
  run: time relative to the forward run and peak memory;
and runs the same workload in every peer installed by `setup_peers.sh`
(neurolib, TVB, vbjax, tvboptim) in the same run, printing the ratio.

Usage:
    python benchmarks/w1_hopf_delays.py [--duration-ms 10000] [--repeats 3]
        [--no-peers] [--batch 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _runner import run_peer_runner

import brainmass as bm

HERE = Path(__file__).resolve().parent
PEERS = {
    "neurolib": ("neurolib", "run_neurolib.py"),
    "tvb": ("tvb", "run_tvb.py"),
    "vbjax": ("vbjax", "run_vbjax.py"),
    "tvboptim": ("tvboptim", "run_tvboptim.py"),
}


def build(duration_ms: float, n_regions: int = 80, batching: str = "lanes") -> bm.Simulator:
    """The W1 simulator."""
    conn = bm.Connectome.synthetic(n_regions, seed=0)
    net = bm.Network(
        bm.models.Hopf(a=-0.02, omega=2 * np.pi * 0.010),
        conn,
        coupling=bm.coupling.Linear(G=0.5),
        speed=5.0,
        noise=bm.noise.Additive(sigma=0.02),
    )
    return bm.Simulator(
        net,
        dt=0.1,
        duration=duration_ms,
        monitor=bm.monitors.Raw(period=1.0),
        solver=bm.solvers.StochasticHeun(),
        batching=batching,
    )


def _fc(signal):
    x = signal - signal.mean(axis=0)
    x = x / jnp.sqrt(jnp.sum(x * x, axis=0))
    return x.T @ x


def _fc_loss(signal, target):
    iu = np.triu_indices(signal.shape[1], 1)
    a, b = _fc(signal)[iu], target[iu]
    a, b = a - a.mean(), b - b.mean()
    return 1.0 - jnp.sum(a * b) / jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    return time.perf_counter() - t, out


def _memory(compiled) -> float:
    """Peak memory of a compiled computation (arguments + outputs + temporaries), MB."""
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
    return total / 2**20


def bench_brainmass(duration_ms: float, repeats: int, batch: int) -> dict:
    sim = build(duration_ms)
    key = jax.random.key(0)
    f = jax.jit(sim.function(["coupling.G"]))
    theta = {"coupling.G": jnp.asarray(0.5)}
    first, _ = _timed(f, theta, key)
    steady = [_timed(f, theta, jax.random.key(i + 1))[0] for i in range(repeats)]
    out = {
        "plan": repr(sim.plan),
        "first_s": first,
        "steady_s": statistics.median(steady),
    }
    out["compile_s"] = first - out["steady_s"]
    out["forward_memory_mb"] = _memory(f.lower(theta, key).compile())

    # batch of parameter sets through vmap
    gs = jnp.linspace(0.3, 0.6, batch)
    fb = jax.jit(jax.vmap(lambda g: f({"coupling.G": g}, key)))
    compiled = fb.lower(gs).compile()
    _timed(fb, gs)
    t_batch = statistics.median(_timed(fb, gs)[0] for _ in range(max(1, repeats - 1)))
    out["batch"] = batch
    out["batch_per_sim_s"] = t_batch / batch
    out["batch_memory_mb"] = _memory(compiled)

    # gradient of an FC-correlation loss w.r.t. G
    target = _fc(f({"coupling.G": jnp.asarray(0.4)}, jax.random.key(99)))

    def loss(g):
        return _fc_loss(f({"coupling.G": g}, key), target)

    grad = jax.jit(jax.value_and_grad(loss))
    compiled = grad.lower(jnp.asarray(0.5)).compile()
    _timed(grad, jnp.asarray(0.5))
    t_grad = statistics.median(_timed(grad, jnp.asarray(0.5))[0] for _ in range(repeats))
    out["grad_s"] = t_grad
    out["grad_over_forward"] = t_grad / out["steady_s"]
    out["grad_memory_mb"] = _memory(compiled)
    return out


JAX_PEERS = ("vbjax", "tvboptim")


def run_peers(
    duration_ms: float,
    repeats: int,
    batch: int,
    *,
    n_regions: int = 80,
    suffix: str = "",
    extra: tuple[str, ...] = (),
) -> dict:
    """Run each installed peer's runner on the same connectome; {peer: result or error}.

    `suffix` selects the workload's runners (`run_<peer><suffix>.py`); `extra`
    are further command-line arguments for every runner.
    """
    results = {}
    conn = bm.Connectome.synthetic(n_regions, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "connectome.npz"
        np.savez(
            path,
            weights=np.asarray(conn.weights, dtype=np.float64),
            tract_lengths=np.asarray(conn.tract_lengths, dtype=np.float64),
        )
        for peer, (env, script) in PEERS.items():
            python = HERE / ".peers" / env / "bin" / "python"
            runner = HERE / "peers" / script.replace(".py", f"{suffix}.py")
            if not python.exists() or not runner.exists():
                results[peer] = {"error": "not installed (run benchmarks/setup_peers.sh)"}
                continue
            cmd = ["--connectome", str(path), "--duration-ms", str(duration_ms)]
            cmd += ["--repeats", str(repeats), *extra]
            if batch and peer in JAX_PEERS:
                cmd += ["--batch", str(batch), "--batch-repeats", "1"]
            results[peer] = run_peer_runner(python, runner, cmd)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-ms", type=float, default=10_000.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--no-peer-batch", action="store_true", help="skip the peers' batch runs (minutes each)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    print(f"W1: 80-region delayed Hopf, {args.duration_ms / 1000:g} s, dt 0.1 ms, stochastic Heun")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}"
    )
    ours = bench_brainmass(args.duration_ms, args.repeats, args.batch)
    print(f"brainmass {bm.__version__}  {ours['plan']}")
    print(f"  compile            {ours['compile_s']:8.2f} s")
    print(
        f"  steady (median {args.repeats}) {ours['steady_s']:8.3f} s"
        f"   ({ours['steady_s'] / (args.duration_ms * 10) * 1e6:.2f} us/step)"
    )
    print(f"  forward memory     {ours['forward_memory_mb']:8.1f} MB")
    print(
        f"  batch of {ours['batch']}: {ours['batch_per_sim_s']:8.3f} s per simulation "
        f"({ours['batch_per_sim_s'] / ours['steady_s']:.2f}x unbatched), "
        f"peak memory {ours['batch_memory_mb']:.0f} MB"
    )
    print(
        f"  gradient of FC loss wrt G: {ours['grad_s']:8.3f} s "
        f"({ours['grad_over_forward']:.2f}x forward), peak memory {ours['grad_memory_mb']:.0f} MB"
    )
    parser_batch = 0 if args.no_peer_batch else args.batch
    peers = {} if args.no_peers else run_peers(args.duration_ms, args.repeats, parser_batch)
    for peer, res in peers.items():
        if "error" in res:
            print(f"{peer:10s} -- {res['error'][:200]}")
            continue
        ratio = res["steady_s"] / ours["steady_s"]
        # the runners report the whole first run; subtract a steady run as for brainmass
        compile_s = res.get("compile_s", float("nan")) - res["steady_s"]
        # no JIT (TVB): the first run is no slower than the others
        compile_txt = f"{compile_s:7.2f} s" if compile_s > 0.05 else "    n/a  "
        print(
            f"{peer:10s} {res.get('version', '?'):>10s}  compile {compile_txt}"
            f"  steady {res['steady_s']:8.3f} s  -> brainmass is {ratio:.2f}x faster"
            f"  [{res.get('integrator', '')}; {res.get('coupling', '')}]"
        )
        key = f"batch{args.batch}_per_sim_s"
        if key in res:
            per_sim = res[key]
            print(
                f"{'':10s} batch of {args.batch}: {per_sim:.3f} s per simulation "
                f"-> brainmass is {per_sim / ours['batch_per_sim_s']:.2f}x faster"
            )
    if args.json:
        args.json.write_text(json.dumps({"brainmass": ours, "peers": peers}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
