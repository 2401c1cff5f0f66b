"""Shared pieces of the W1 peer runners: the workload, CLI, timing, validation, output.

W1: an 80-region Hopf (Stuart-Landau) network on a given connectome,

    dx/dt = (a - x^2 - y^2) x - omega y + G * sum_j W_ij x_j(t - tau_ij) + sigma dW_x
    dy/dt = (a - x^2 - y^2) y + omega x                                  + sigma dW_y

time in ms, a = -0.02 /ms, omega = 2 pi 0.010 rad/ms (10 Hz), G = 0.5,
tau_ij = L_ij / v with v = 5 m/s = 5 mm/ms, sigma = 0.02 (per sqrt(ms)),
dt = 0.1 ms, 10 s of model time, x sampled every 1 ms. W_ij is the weight of
the connection from region j to region i (rows are targets). Every runner
starts from the constant history x = 0.1, y = 0 (brainmass's Hopf default).

Importing this module moves everything that the peers print on stdout
(vbjax prints banners there) to stderr, so that each runner's stdout is a
single line of JSON, written by `emit`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

# --- keep stdout for the one JSON line --------------------------------------
sys.stdout.flush()
_JSON_OUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)

import numpy as np  # noqa: E402

# --- the workload -------------------------------------------------------------
A = -0.02  # 1/ms
OMEGA = 2.0 * math.pi * 0.010  # rad/ms (10 Hz)
G = 0.5
SPEED = 5.0  # m/s == mm/ms
SIGMA = 0.02  # noise std per sqrt(ms), additive on x and y
DT = 0.1  # ms
PERIOD = 1.0  # ms between output samples
X0, Y0 = 0.1, 0.0  # constant initial history


def parse_args(peer: str, batch: bool = False, extra=()) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"W1 (Hopf network) in {peer}")
    p.add_argument("--connectome", required=True, help=".npz with `weights`, `tract_lengths` (mm)")
    p.add_argument("--duration-ms", type=float, default=10000.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    if batch:
        p.add_argument(
            "--batch",
            type=int,
            default=0,
            help="also time a vmapped batch of this many parameter sets "
            "(G spread over 0.25..0.75); 0 = skip",
        )
        p.add_argument(
            "--batch-duration-ms",
            type=float,
            default=None,
            help="model time of each batched simulation (default: --duration-ms)",
        )
        p.add_argument(
            "--batch-repeats", type=int, default=1, help="timed batch runs after the warm one"
        )
    for flags, kwargs in extra:
        p.add_argument(*flags, **kwargs)
    return p.parse_args()


def load_connectome(path: str) -> tuple[np.ndarray, np.ndarray]:
    d = np.load(path)
    w = np.asarray(d["weights"], dtype=np.float64)
    lengths = np.asarray(d["tract_lengths"], dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or lengths.shape != w.shape:
        raise SystemExit(f"bad connectome shapes: weights {w.shape}, tract_lengths {lengths.shape}")
    return w, lengths


def n_out(duration_ms: float) -> int:
    return int(round(duration_ms / PERIOD))


def time_runs(run, repeats: int):
    """Call `run(i)` once to warm/compile, then `repeats` times. `run` returns x (n_t, n)."""
    t0 = time.perf_counter()
    x = run(0)
    compile_s = time.perf_counter() - t0
    steady = []
    for i in range(repeats):
        t0 = time.perf_counter()
        x = run(i + 1)
        steady.append(time.perf_counter() - t0)
    return compile_s, steady, x


def check(x, duration_ms: float, n_regions: int) -> tuple[bool, str, float]:
    """Sanity of the last run's output: finite, (n_out, n_regions)."""
    x = np.asarray(x)
    want = (n_out(duration_ms), n_regions)
    finite = bool(np.isfinite(x).all())
    ok = finite and x.shape == want
    mean_x = float(np.mean(x)) if x.size else float("nan")
    msg = (
        f"x shape {x.shape} (want {want}), finite={finite}, "
        f"mean(x)={mean_x:.4f}, std(x)={float(np.std(x)):.4f}"
    )
    return ok, msg, mean_x


def emit(record: dict, ok: bool = True) -> None:
    record.setdefault("python", platform.python_version())
    record["ok"] = ok
    _JSON_OUT.write(json.dumps(record) + "\n")
    _JSON_OUT.flush()
    if not ok:
        sys.exit(1)


def result(peer, version, compile_s, steady, integrator, coupling, notes, args, n_regions, **extra):
    rec = {
        "peer": peer,
        "version": version,
        "compile_s": round(compile_s, 4),
        "steady_s": round(statistics.median(steady), 4) if steady else None,
        "integrator": integrator,
        "coupling": coupling,
        "notes": notes,
        "steady_all_s": [round(s, 4) for s in steady],
        "duration_ms": args.duration_ms,
        "dt_ms": DT,
        "n_regions": n_regions,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    rec.update(extra)
    return rec


# --- W2: the W1 network read out as BOLD (additions; nothing above changes W1) -----------------
# W2: the same Hopf network, equations, parameters, coupling G, speed, noise and stochastic Heun
# at DT as W1, on a 68-region connectome, 60 s of model time, read out as BOLD with TR = 0.72 s
# by each peer's own haemodynamic model driven by x. See README.md (W2).
W2_N_REGIONS = 68
W2_DURATION_MS = 60_000.0
TR_MS = 720.0  # BOLD repetition time (0.72 s)


def parse_args_w2(peer: str, extra=()) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"W2 (Hopf network -> BOLD, TR 0.72 s) in {peer}")
    p.add_argument("--connectome", required=True, help=".npz with `weights`, `tract_lengths` (mm)")
    p.add_argument("--duration-ms", type=float, default=W2_DURATION_MS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--G", type=float, default=G, help=f"global coupling (default {G})")
    p.add_argument("--a", type=float, default=A, help=f"Hopf parameter a, 1/ms (default {A})")
    p.add_argument("--tr-ms", type=float, default=TR_MS, help=f"BOLD period, ms (default {TR_MS})")
    p.add_argument(
        "--save-bold", default=None, help="also write the last run's BOLD to this .npz (bold, t_ms)"
    )
    for flags, kwargs in extra:
        p.add_argument(*flags, **kwargs)
    return p.parse_args()


def n_bold_expected(duration_ms: float, tr_ms: float) -> int:
    """floor(duration / TR): the number of whole TRs in the run."""
    return int(math.floor(duration_ms / tr_ms + 1e-9))


def check_bold(
    bold, t_bold, n_regions: int, n_expected: int, save_path: str | None = None
) -> tuple[bool, str, dict]:
    """Sanity of the last run's BOLD: finite, shape (n_expected, n_regions); optionally saved."""
    bold = np.asarray(bold, dtype=np.float64)
    t_bold = np.asarray(t_bold, dtype=np.float64).ravel()
    finite = bool(np.isfinite(bold).all())
    ok = finite and bold.shape == (n_expected, n_regions) and t_bold.shape == (bold.shape[0],)
    stats = {
        "n_bold_samples": int(bold.shape[0]) if bold.ndim else 0,
        "n_bold_expected": n_expected,
        "bold_shape": list(bold.shape),
        "bold_finite": finite,
        "bold_t_first_ms": round(float(t_bold[0]), 4) if t_bold.size else None,
        "bold_t_last_ms": round(float(t_bold[-1]), 4) if t_bold.size else None,
        "bold_mean": float(np.mean(bold)) if bold.size else float("nan"),
        "bold_std": float(np.std(bold)) if bold.size else float("nan"),
        # spread over time, averaged over regions: is the signal moving at all?
        "bold_std_time": float(np.mean(np.std(bold, axis=0))) if bold.size else float("nan"),
    }
    if save_path:
        np.savez(save_path, bold=bold, t_ms=t_bold)
    msg = (
        f"BOLD shape {bold.shape} (want ({n_expected}, {n_regions}): floor(duration/TR) x n), "
        f"finite={finite}, t = {stats['bold_t_first_ms']} .. {stats['bold_t_last_ms']} ms, "
        f"mean={stats['bold_mean']:.4g}, std={stats['bold_std']:.4g}"
    )
    return ok, msg, stats


def result_w2(
    peer,
    version,
    compile_s,
    steady,
    integrator,
    coupling,
    bold_method,
    notes,
    args,
    n_regions,
    stats,
    **extra,
):
    rec = result(peer, version, compile_s, steady, integrator, coupling, notes, args, n_regions)
    rec = {"workload": "W2", **rec}
    rec.update(
        {
            "bold": bold_method,
            "tr_ms": args.tr_ms,
            "G": args.G,
            "a": args.a,
            "sigma": SIGMA,
            "speed_m_s": SPEED,
        }
    )
    rec.update(stats)
    rec.update(extra)
    return rec
