"""Fitting benchmarks: simulations and wall time to a target loss, per method.

Case a (F1, the "Fitting with gradients" / "Gradient-free fitting" notebooks):
recover the global coupling G of a 20-region Hopf network (a = -0.01/ms,
10 Hz, diffusive coupling, no delays, additive noise sigma = 0.02, dt = 0.1 ms,
10 s, x averaged over 2 ms, first 0.5 s dropped) from a target FC made at
G = 0.12 with another noise key. Loss: FC RMSE (upper triangle). Every method
starts at G = 0.3 in [0, 0.5], with common random numbers (one noise key).
Methods: adam (gradients through the solve), L-BFGS-B (JAX gradients),
Nelder-Mead, CMA, NGOpt, differential evolution, and a 21-point grid through
`bm.sweep`. Then the route a neurolib or TVB user takes on the same problem,
in their own simulators and the same run (`benchmarks/peers/run_*_fit.py`):
neurolib's BoxSearch and Evolution, a TVB grid loop.

Case c (F2, the "Per-region parameter fields" notebook): fit one bifurcation
parameter per region (68 values) of a delayed Hopf network (linear coupling
G = 0.06, 5 m/s, dt = 0.2 ms, 3 s, 4 ms averages) to a target FC made by a
true anterior-posterior field. adam against CMA and NGOpt with the same number
of simulations, and CMA given the same wall time as adam
(more simulations: a batch of forward runs costs less per simulation than a
gradient step).

The target loss ("reach") of each case: case a, the best loss any method found
plus 1 % of the way back to the start loss; case c, 5 % of the start loss. For
each fit, the script prints simulations and gradients run, compile time (first
fit minus a second, cached, fit), steady wall time, simulations and seconds to
reach the target, and the answer's error. Peers' answers are scored on the
same yardstick: brainmass's loss (same noise key) at the G they return.

Usage:
    python benchmarks/fitting.py [--case a c] [--no-peers] [--duration-ms 10000]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
KEY = jax.random.key(0)
G_TRUE, G_START, G_BOUNDS = 0.12, 0.3, (0.0, 0.5)
GRID = (0.0, 0.5, 21)
PEER_RUNNERS = {  # peer: (virtualenv, runner)
    "neurolib": ("neurolib", "run_neurolib_fit.py"),
    "TVB": ("tvb", "run_tvb_fit.py"),
}


# ----------------------------------------------------------------------------- case a


def case_a_problem(duration_ms: float) -> tuple[bm.Simulator, np.ndarray, bm.Connectome]:
    """The F1 simulator (G free), the target signal (samples, 20) and the connectome."""
    conn = bm.Connectome.synthetic(20, seed=1)
    sim = bm.Simulator(
        bm.Network(
            bm.models.Hopf(a=-0.01, omega=2 * np.pi * 0.010),
            conn,
            coupling=bm.coupling.Diffusive(G=0.1),
            noise=bm.noise.Additive(sigma=0.02),
        ),
        dt=0.1,
        duration=duration_ms,
        monitor=bm.monitors.TemporalAverage(period=2.0, transient=500.0),
    )
    target = np.asarray(sim.with_params({"coupling.G": G_TRUE}).run(jax.random.key(1)).signal)
    return sim, target, conn


CASE_A_METHODS = {  # method: (iterations, options)
    "adam": (40, {"learning_rate": 0.2}),
    "L-BFGS-B": (20, {}),
    "Nelder-Mead": (30, {}),
    "CMA": (15, {"population": 8}),
    "NGOpt": (15, {"population": 8}),
    "differential_evolution": (15, {"population": 8}),
}


def timed_fit(fitter: bm.Fitter, steps: int) -> tuple[bm.FitResult, float]:
    """Fit twice with the same key: (the second, cached result, compile seconds)."""
    first = fitter.fit(KEY, steps=steps)
    second = fitter.fit(KEY, steps=steps)
    return second, max(first.wall_time - second.wall_time, 0.0)


def run_case_a(args) -> dict:
    """Case a in brainmass (every method and a grid) and, unless --no-peers, in the peers."""
    sim, target, conn = case_a_problem(args.duration_ms)
    objective = bm.objectives.FCRMSE()
    params = {"coupling.G": bm.Bounded(*G_BOUNDS, init=G_START)}
    rows = {}
    for method, (steps, options) in CASE_A_METHODS.items():
        fitter = bm.Fitter(sim, params, objective, target, method=method, progress=False, **options)
        result, compile_s = timed_fit(fitter, steps)
        rows[method] = {"result": result, "compile_s": compile_s}
        print(f"  {method:24s} done: {result.n_simulations} simulations, {result.wall_time:.1f} s")

    grid = np.linspace(*GRID[:2], GRID[2])
    t0 = time.perf_counter()  # a sweep compiles on every call: its time includes compiling
    sweep = bm.sweep(
        sim,
        {"coupling.G": grid},
        key=KEY,
        objective=objective,
        target=target,
        chunk_size=GRID[2],
        progress=False,
    )
    elapsed = time.perf_counter() - t0
    losses = np.asarray(sweep.data["objective"])
    grid_row = {
        "G": float(grid[np.argmin(losses)]),
        "loss": float(losses.min()),
        "n_simulations": int(grid.size),
        "wall_s": elapsed,
    }

    yardstick = bm.Fitter(sim, params, objective, target, method="adam", progress=False)
    start_loss = float(rows["adam"]["result"].loss_history[0])
    optimum = min(min(r["result"].loss for r in rows.values()), grid_row["loss"])
    reach = optimum + 0.01 * (start_loss - optimum)

    seconds = args.duration_ms / 1000
    print(f"\nCase a: G of a 20-region Hopf network from FC ({seconds:g} s per run)")
    print(f"start loss (G = {G_START}) {start_loss:.4f}; best {optimum:.4f}; target {reach:.4f}")
    header = (
        f"{'method':24s} {'G':>6s} {'|dG|':>6s} {'loss':>8s} {'sims':>5s} {'grads':>5s} "
        f"{'compile s':>9s} {'steady s':>8s} {'s/sim':>6s} | {'sims to target':>14s} "
        f"{'s to target':>11s}"
    )
    print(header)
    out = {"start_loss": start_loss, "optimum": optimum, "reach": reach, "methods": {}}
    for method, row in rows.items():
        r = row["result"]
        g = float(r.params["coupling.G"])
        n_reach, t_reach = r.simulations_to_reach(reach), r.time_to_reach(reach)
        print(
            f"{method:24s} {g:6.3f} {abs(g - G_TRUE):6.3f} {r.loss:8.4f} {r.n_simulations:5d} "
            f"{r.n_gradient_evaluations:5d} {row['compile_s']:9.1f} {r.wall_time:8.1f} "
            f"{r.wall_time / r.n_simulations:6.3f} | {_fmt(n_reach):>14s} {_fmt(t_reach, 1):>11s}"
        )
        out["methods"][method] = {
            "G": g,
            "loss": r.loss,
            "n_simulations": r.n_simulations,
            "n_gradient_evaluations": r.n_gradient_evaluations,
            "compile_s": row["compile_s"],
            "wall_s": r.wall_time,
            "simulations_to_target": n_reach,
            "seconds_to_target": t_reach,
        }
    g = grid_row["G"]
    grid_reaches = grid_row["loss"] <= reach
    print(
        f"{'bm.sweep, 21-point grid':24s} {g:6.3f} {abs(g - G_TRUE):6.3f} {grid_row['loss']:8.4f} "
        f"{grid_row['n_simulations']:5d} {0:5d} {'(in wall)':>9s} "
        f"{grid_row['wall_s']:8.1f} {grid_row['wall_s'] / grid_row['n_simulations']:6.3f} | "
        f"{_fmt(grid_row['n_simulations'] if grid_reaches else None):>14s} "
        f"{_fmt(grid_row['wall_s'] if grid_reaches else None, 1):>11s}"
    )
    out["methods"]["bm.sweep grid"] = grid_row

    if not args.no_peers:
        out["peers"] = run_peers_case_a(args, conn, target, yardstick, reach)
    return out


def run_peers_case_a(args, conn, target, yardstick: bm.Fitter, reach: float) -> dict:
    """Run the peers' fitting routes on F1 and score their answers with brainmass's loss."""
    target_fc = np.asarray(bm.analysis.fc(jnp.asarray(target)), dtype=np.float64)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        conn_path, fc_path = Path(tmp) / "connectome.npz", Path(tmp) / "target_fc.npy"
        np.savez(
            conn_path,
            weights=np.asarray(conn.weights, dtype=np.float64),
            tract_lengths=np.asarray(conn.tract_lengths, dtype=np.float64),
        )
        np.save(fc_path, target_fc)
        for peer, (env, script) in PEER_RUNNERS.items():
            python, runner = HERE / ".peers" / env / "bin" / "python", HERE / "peers" / script
            if not python.exists() or not runner.exists():
                results[peer] = {"error": "not installed (run benchmarks/setup_peers.sh)"}
                continue
            cmd = ["--connectome", str(conn_path), "--target-fc", str(fc_path)]
            cmd += ["--duration-ms", str(args.duration_ms), "--grid", *(str(v) for v in GRID)]
            results[peer] = run_peer_runner(python, runner, cmd)

    print("\nThe peers' routes on the same problem (their own simulators, same target FC):")
    print(
        f"{'route':24s} {'G':>6s} {'|dG|':>6s} {'own loss':>8s} {'bm loss':>8s} {'sims':>5s} "
        f"{'wall s':>8s} {'s/sim':>6s} | reaches target"
    )
    for peer, res in results.items():
        if "error" in res:
            print(f"{peer:24s} -- {res['error'][:200]}")
            continue
        for route in res["routes"]:
            g = float(route["best_G"])
            scored = float(yardstick.loss({"coupling.G": g}, KEY))
            route["brainmass_loss"] = scored
            print(
                f"{route['route']:24s} {g:6.3f} {abs(g - G_TRUE):6.3f} {route['best_loss']:8.4f} "
                f"{scored:8.4f} {route['n_simulations']:5d} {route['wall_s']:8.1f} "
                f"{route['per_sim_s']:6.3f} | {'yes' if scored <= reach else 'no'}"
            )
    return results


# ----------------------------------------------------------------------------- case c


def run_case_c(args) -> dict:
    """Case c: a 68-value field by adam, and by CMA/NGOpt at adam's simulations and wall time."""
    n = 68
    conn = bm.Connectome.synthetic(n, seed=0)
    sim = bm.Simulator(
        bm.Network(
            bm.models.Hopf(a=-0.02, omega=2 * np.pi * 0.010),
            conn,
            coupling=bm.coupling.Linear(G=0.06),
            speed=5.0,
            noise=bm.noise.Additive(sigma=0.02),
        ),
        dt=0.2,
        duration=3000.0,
        monitor=bm.monitors.TemporalAverage(period=4.0, transient=500.0),
    )
    y = np.asarray(conn.centres)[:, 1]
    position = (y - (y.max() + y.min()) / 2) / ((y.max() - y.min()) / 2)
    rng = np.random.default_rng(0)
    a_true = np.clip(-0.025 + 0.012 * position + 0.004 * rng.standard_normal(n), -0.05, -0.004)
    target = sim.with_params({"model.a": a_true}).run(KEY).signal
    params = {"model.a": bm.Bounded(-0.08, 0.0, init=-0.02, per_region=True)}

    def fitter(method, **options):
        objective = bm.objectives.FCRMSE()
        return bm.Fitter(
            sim, params, objective, target, method=method, noise="fixed", progress=False, **options
        )

    population = 4 + int(3 * math.log(n))
    adam = fitter("adam", learning_rate=0.1)
    start_loss = float(adam.loss({"model.a": np.full(n, -0.02)}, KEY))
    reach = 0.05 * start_loss
    fits = {"adam (gradients)": timed_fit(adam, args.case_c_steps)}
    generations = math.ceil(fits["adam (gradients)"][0].n_simulations / population)
    gradient_free = {method: fitter(method, population=population) for method in ("CMA", "NGOpt")}
    for method, f in gradient_free.items():
        fits[f"{method}, same simulations"] = timed_fit(f, generations)
    # CMA given the wall time adam took (from its own steady seconds per generation)
    cma_same = fits["CMA, same simulations"][0]
    per_generation = cma_same.wall_time / cma_same.n_iterations
    adam_wall = fits["adam (gradients)"][0].wall_time
    wall_generations = max(generations, round(adam_wall / per_generation))
    fits["CMA, same wall time"] = (gradient_free["CMA"].fit(KEY, steps=wall_generations), 0.0)

    print("\nCase c: a 68-value field a_i from FC (delayed Hopf, 3 s per run; CMA/NGOpt ", end="")
    print(f"population {population})")
    print(f"start loss {start_loss:.4f}; target {reach:.2e} (5 % of the start)")
    print(
        f"{'method':24s} {'loss':>8s} {'r(field)':>8s} {'rmse(a)':>8s} {'sims':>5s} {'grads':>5s} "
        f"{'compile s':>9s} {'steady s':>8s} {'s/sim':>6s} | {'sims to target':>14s} "
        f"{'s to target':>11s}"
    )
    out = {"start_loss": start_loss, "reach": reach, "population": population, "methods": {}}
    for name, (r, comp) in fits.items():
        field = r.params["model.a"]
        corr = float(np.corrcoef(field, a_true)[0, 1])
        rmse = float(np.sqrt(np.mean((field - a_true) ** 2)))
        n_reach, t_reach = r.simulations_to_reach(reach), r.time_to_reach(reach)
        print(
            f"{name:24s} {r.loss:8.1e} {corr:8.3f} {rmse:8.1e} {r.n_simulations:5d} "
            f"{r.n_gradient_evaluations:5d} {comp:9.1f} {r.wall_time:8.1f} "
            f"{r.wall_time / r.n_simulations:6.3f} | {_fmt(n_reach):>14s} {_fmt(t_reach, 1):>11s}"
        )
        out["methods"][name] = {
            "loss": r.loss,
            "field_correlation": corr,
            "field_rmse": rmse,
            "n_simulations": r.n_simulations,
            "n_gradient_evaluations": r.n_gradient_evaluations,
            "compile_s": comp,
            "wall_s": r.wall_time,
            "simulations_to_target": n_reach,
            "seconds_to_target": t_reach,
        }
    return out


def _fmt(value, digits: int = 0) -> str:
    """A number for the tables, '-' for None (the target was never reached)."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits else str(int(value))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", default=["a", "c"], choices=["a", "c"])
    parser.add_argument("--duration-ms", type=float, default=10_000.0, help="case a run length")
    parser.add_argument("--case-c-steps", type=int, default=150, help="adam steps in case c")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0]}, {os.cpu_count()} CPUs")
    out = {}
    if "a" in args.case:
        out["case_a"] = run_case_a(args)
    if "c" in args.case:
        out["case_c"] = run_case_c(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
