"""How NUTS's chains should run on this machine: vmapped side by side, or one after another.

Backs `inf.nuts(chain_method="auto")` (sequential on the CPU) and `gradient="auto"`
(reverse mode with sequential chains). Two parts:

- `grad`: milliseconds of one compiled value-and-gradient of the log density, reverse
  and forward mode (`inference.model.forward_gradient`), for one chain, 4 chains
  vmapped and 4 chains one after another (`jax.lax.map`); on the DCM-ERP source and the
  Jansen-Rit EEG case of `inference.py --versus`, and Hopf networks of 4 regions (500
  and 2,500 steps, 1-4 parameters) and 68 regions (1-4 parameters).
- `e2e`: whole `inf.nuts` runs, 4 chains x (warmup + samples), every default but
  `chain_method`, each run in its own process with its own compilation cache (cold,
  then warm: the same call with the cache the cold run filled; a shared cache would
  hand the second layout the MAP's compiled code): CPU seconds, minimum bulk ESS,
  leapfrog steps a draw; ERP and JR on both backends, Hopf-68 on NumPyro.

Usage: `python benchmarks/chain_layout.py [--parts grad e2e] [--warmup 200]
[--samples 200]`. Figures of 2026-12-08 in benchmarks/README.md ("Chain layout").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the `inference` package, not benchmarks/inference.py beside this script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def _bench():
    """benchmarks/inference.py as a module (its problems)."""
    spec = importlib.util.spec_from_file_location("bench_inf", HERE / "inference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_inf"] = module
    spec.loader.exec_module(module)
    return module


def problem(name: str, d: int = 2, steps_dt: float = 0.5):
    """`(bmodel, data)` of a named problem: "erp", "jr", "hopf4", "hopf68"."""
    import jax
    import numpy as np
    import numpyro.distributions as dist

    import brainmass as bm
    import inference as inf

    if name in ("erp", "jr"):
        B = _bench()
        arrays, _, _ = B.versus_inputs(name)
        if name == "erp":
            return B.source_bmodel(B.source_simulator()), arrays["data"]
        sim0, _, _ = B.erp_problem(jax.random.key(0))
        return B.jr_bmodel(sim0), arrays["data"]
    n = 4 if name == "hopf4" else 68
    conn = bm.Connectome.synthetic(n, seed=0)
    net = bm.Network(bm.models.Hopf(a=0.05), conn, coupling=bm.coupling.Linear(G=0.5))
    sim = bm.Simulator(
        net, dt=steps_dt, duration=250.0, monitor=bm.monitors.TemporalAverage(period=5.0)
    )
    clean = np.asarray(sim.run().signal)
    data = clean + 0.05 * np.asarray(jax.random.normal(jax.random.key(3), clean.shape))
    every = {
        "model.a": dist.Uniform(-0.05, 0.15),
        "coupling.G": dist.Uniform(0.0, 2.0),
        "model.omega": dist.Uniform(0.5, 1.5),
        "likelihood.sigma": dist.HalfNormal(0.2),
    }
    priors = dict(list(every.items())[:d])
    sigma = priors.pop("likelihood.sigma", 0.05)
    return inf.BayesianModel(sim, priors, inf.likelihoods.TimeSeries(sigma=sigma)), data


def gradient_times(bmodel, data, repeats: int = 20) -> dict:
    """ms per value and gradient: {reverse,forward} x {one, vmap4, map4}."""
    import jax
    import jax.numpy as jnp

    from inference.mcmc._lanes import sequential_map
    from inference.model import forward_gradient

    data = jnp.asarray(data)
    ld = bmodel.logdensity(data, jax.random.key(0))
    z = jnp.stack([ld.init + 0.01 * i for i in range(4)])
    out = {"d": ld.size}
    for mode, f in (("reverse", ld.fn_data), ("forward", forward_gradient(ld.fn_data))):
        vg = jax.value_and_grad(f)
        for layout, fn, arg in (
            ("one", jax.jit(vg), z[0]),
            ("vmap4", jax.jit(jax.vmap(vg, (0, None))), z),
            ("map4", jax.jit(sequential_map(vg, (0, None))), z),
        ):
            jax.block_until_ready(fn(arg, data))
            t0 = time.perf_counter()
            for _ in range(repeats):
                jax.block_until_ready(fn(arg, data))
            out[f"{mode}_{layout}_ms"] = 1e3 * (time.perf_counter() - t0) / repeats
    return out


def worker(args) -> int:
    """One end-to-end `inf.nuts` run (own process); prints one JSON line."""
    import arviz as az
    import jax
    import numpy as np

    import inference as inf

    bmodel, data = problem(args.worker[0])
    c0 = time.process_time()
    post = inf.nuts(
        bmodel,
        data,
        jax.random.key(1),
        num_warmup=args.warmup,
        num_samples=args.samples,
        backend=args.worker[1],
        chain_method=args.worker[2],
        progress=False,
        posterior_predictive=False,
    )
    cpu = time.process_time() - c0
    ess = min(float(az.ess(np.asarray(v), method="bulk")) for v in post.samples.values())
    rhat = max(float(az.rhat(np.asarray(v))) for v in post.samples.values())
    steps = float(np.mean(post.sample_stats["n_steps"]))
    info = {k: post.info[k] for k in ("gradient", "chain_method")}
    print(json.dumps(dict(cpu_s=cpu, ess=ess, rhat=rhat, steps=steps, **info)), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["grad", "e2e"], choices=["grad", "e2e"])
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    print(f"load average at start {os.getloadavg()}", flush=True)
    if "grad" in args.parts:
        print("\nvalue and gradient, ms (one chain; 4 chains vmapped; 4 chains lax.map)")
        cases = [("jr", {}), ("erp", {})]
        cases += [("hopf4", dict(d=d, steps_dt=dt)) for dt in (0.5, 0.1) for d in (1, 2, 3, 4)]
        cases += [("hopf68", dict(d=d)) for d in (1, 2, 4)]
        for name, kw in cases:
            r = gradient_times(*problem(name, **kw))
            label = f"{name} d={r['d']}" + (f" dt={kw['steps_dt']}" if "steps_dt" in kw else "")
            cells = "  ".join(
                f"{m[:3]} {r[f'{m}_one_ms']:.2f}/{r[f'{m}_vmap4_ms']:.2f}/{r[f'{m}_map4_ms']:.2f}"
                for m in ("reverse", "forward")
            )
            print(f"  {label:22s} {cells}", flush=True)
    if "e2e" in args.parts:
        print(f"\nnuts, 4 chains x ({args.warmup} + {args.samples}), own process per run")
        runs = [(p, b) for p in ("erp", "jr") for b in ("numpyro", "blackjax")]
        runs.append(("hopf68", "numpyro"))
        print("  vectorized -> sequential; cold: an empty compilation cache of its own per")
        print("  layout, warm: the same call again with the cache the cold run filled")
        for name, backend in runs:
            row = {}
            for layout in ("vectorized", "sequential"):
                with tempfile.TemporaryDirectory() as cache:
                    env = dict(os.environ, BRAINMASS_COMPILATION_CACHE=cache)
                    for state in ("cold", "warm"):
                        cmd = [sys.executable, __file__, "--worker", name, backend, layout]
                        cmd += ["--warmup", str(args.warmup), "--samples", str(args.samples)]
                        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                        if proc.returncode or not lines:
                            raise RuntimeError(
                                f"{name}/{backend}/{layout} failed:\n{proc.stderr[-2000:]}"
                            )
                        row[layout, state] = json.loads(lines[-1])
            for state in ("cold", "warm"):
                v, s = row["vectorized", state], row["sequential", state]
                print(
                    f"  {name:7s} {backend:9s} {state} CPU s {v['cpu_s']:6.1f} -> "
                    f"{s['cpu_s']:6.1f} (x{v['cpu_s'] / s['cpu_s']:.2f}); ESS {v['ess']:.0f} / "
                    f"{s['ess']:.0f}; steps {v['steps']:.1f} / {s['steps']:.1f}; gradient "
                    f"{v['gradient']} / {s['gradient']}; R-hat {v['rhat']:.3f} / {s['rhat']:.3f}",
                    flush=True,
                )
    print(f"load average at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
