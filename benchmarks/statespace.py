"""State-space likelihood: the cost of one Kalman log-likelihood and of its gradient.

Workload: a linearised network of n damped oscillators (the Hopf normal form below its
bifurcation, a = -0.02/ms, omega = 2 pi 10 Hz, two states per region, so S = 2 n) on
`Connectome.synthetic(n, seed=0)` (n + 1 regions cut to n when n is odd) with linear
coupling G = 0.01/ms into x, additive noise sigma = 0.02, sampled every dt = 1 ms:
F = expm(A dt), Q = P - F P F^T with P the stationary
(Lyapunov) covariance (the exact discretisation), x of every region observed (C = n) with
noise variance R = 1e-3 (10 % of the stationary variance), z_1 from the stationary law. The
series is drawn from the model by `inference._kalman.sample`.

Compared on the same series, per state size S and length T:

- `sequential`: `log_likelihood_terms(..., method="sequential")`, exact, O(T S^3);
- `steady`: the same with `steady_after=K`, K from `choose_steady_after` (relative change of
  the predicted covariance below 100 eps of the dtype), then O(S^2) a step;
- `parallel`: the associative-scan filter (Särkkä & García-Fernández 2021);
- `dynamax`: dynamax 1.0.3's `lgssm_filter(...).marginal_loglik` (full R).

For each, the log-likelihood and its gradient with respect to (F, Q, R) (`jax.grad` of the
sum), each jitted. Compile = trace, lower and compile; beside the gradient, its XLA temporary
memory (`memory_analysis().temp_size_in_bytes`: what a reverse pass keeps). Then `--rounds`
rounds (fewer, at least 2, where they would take over `--cell-s`), each timing enough calls
to last about 0.2 s; the table gives the median seconds per call, the spread (min-max over
rounds) and the CPU seconds per call beside it (process time: above the wall time means both
cores were busy, below it that the process waited for a core). `|diff|` is each method's
log-likelihood minus the exact filter's in float64 on the same numbers (nats), a check; per
S, the steady path's own error at that K is printed too, both paths in float64 (T = 2000).
Combinations skipped: any whose previous (shorter) length at the same S took more than
`--budget-s` per call for that method, and `parallel` where its T x S x S element stacks
would exceed `--parallel-mb` (they are held in memory at once).

Usage:
    python benchmarks/statespace.py [--sizes 10 68 136] [--lengths 500 2000 8000]
        [--methods sequential steady parallel dynamax] [--rounds 5] [--x64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

# benchmarks/inference.py is named like the `inference` package: keep this folder off the path
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
# jaxlib's CPU Cholesky and triangular solves call scipy's OpenBLAS. With its threads on, a
# shared, oversubscribed 2-core machine made one 68 x 68 triangular solve take 16 ms instead
# of 32 us (spinning threads); one thread is also the faster choice at these sizes. Set the
# variable yourself to measure another setting.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import brainmass as bm  # noqa: E402
from inference import _kalman as kalman  # noqa: E402

METHODS = ("sequential", "steady", "parallel", "dynamax")


def network(n_regions: int, dtype) -> tuple:
    """(F, Q, H, offset, m1, P1, R) of the oscillator network of the module docstring."""
    a, omega, G, sigma, dt = -0.02, 2 * np.pi * 0.010, 0.01, 0.02, 1.0
    # synthetic connectomes have two equal hemispheres: an odd n takes the first n of n + 1
    W = np.asarray(bm.Connectome.synthetic(n_regions + n_regions % 2, seed=0).weights, float)
    W = W[:n_regions, :n_regions]
    S = 2 * n_regions
    A = np.zeros((S, S))
    x, y = np.arange(0, S, 2), np.arange(1, S, 2)
    A[x, x] = A[y, y] = a
    A[x, y], A[y, x] = -omega, omega
    A[np.ix_(x, x)] += G * (W - np.diag(W.sum(axis=1)))
    F = scipy.linalg.expm(A * dt)
    P = scipy.linalg.solve_continuous_lyapunov(A, -(sigma**2) * np.eye(S))
    P = 0.5 * (P + P.T)
    Q = P - F @ P @ F.T
    H = np.zeros((n_regions, S))
    H[np.arange(n_regions), x] = 1.0
    R = 1e-3 * np.eye(n_regions)
    model = (F, 0.5 * (Q + Q.T), H, np.zeros(n_regions), np.zeros(S), P, R)
    return tuple(np.asarray(m, dtype) for m in model)


def build(method: str, y, model, steady_after: int):
    """(loglik, grad) jitted functions of (F, Q, R) for one method."""
    _, _, H, offset, m1, P1, _ = model
    if method == "dynamax":
        from dynamax.linear_gaussian_ssm import lgssm_filter
        from dynamax.linear_gaussian_ssm.inference import make_lgssm_params

        def loglik(F, Q, R):
            params = make_lgssm_params(m1, P1, F, Q, H, R, emissions_bias=offset)
            return lgssm_filter(params, y).marginal_loglik

    else:
        options = {"method": "parallel"} if method == "parallel" else {}
        if method == "steady":
            options["steady_after"] = steady_after

        def loglik(F, Q, R):
            return kalman.log_likelihood_terms(y, F, Q, H, offset, m1, P1, R, **options).sum()

    return jax.jit(loglik), jax.jit(jax.grad(loglik, argnums=(0, 1, 2)))


def exact_float64(y, model) -> float:
    """The sequential filter's log-likelihood in float64 of the same (rounded) numbers."""
    with jax.enable_x64(True):
        args = [np.asarray(a, np.float64) for a in (y, *model)]
        return float(jax.jit(kalman.log_likelihood_terms)(*args).sum())


def steady_error(S: int, K: int, T: int = 2000) -> dict:
    """The steady path's own error: steady_after=K against the exact filter, both in float64."""
    with jax.enable_x64(True):
        model = network(S // 2, np.float64)
        y = jax.jit(kalman.sample, static_argnums=8)(jax.random.key(0), *model, T)
        terms = jax.jit(kalman.log_likelihood_terms, static_argnames="steady_after")
        exact = np.asarray(terms(y, *model))
        steady = np.asarray(terms(y, *model, steady_after=K))
    return {
        "T": T,
        "max_term": float(np.abs(steady - exact).max()),
        "sum": float(abs(steady.sum() - exact.sum())),
    }


def timed(fn, args, rounds: int, cell_s: float) -> dict:
    """Compile seconds, XLA temporary memory, wall seconds per call over rounds, CPU s per call.

    Compile = trace, lower and compile (`fn.lower(*args).compile()`). Rounds of about 0.2 s
    each (at least one call); fewer rounds (at least 2) where `rounds` of them would take more
    than `cell_s` seconds.
    """
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    temp_mb = compiled.memory_analysis().temp_size_in_bytes / 2**20
    out = jax.block_until_ready(compiled(*args))
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    one = time.perf_counter() - t0
    calls = max(1, int(0.2 / max(one, 1e-6)))
    rounds = max(2, min(rounds, int(cell_s / (calls * one))))
    walls, cpus = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            jax.block_until_ready(compiled(*args))
        walls.append((time.perf_counter() - w0) / calls)
        cpus.append((time.process_time() - c0) / calls)
    return {
        "value": out,
        "compile_s": compile_s,
        "temp_mb": temp_mb,
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
        "cpu_s": statistics.median(cpus),
        "calls_per_round": calls,
        "rounds": rounds,
    }


def fmt(seconds: float) -> str:
    """Seconds in a readable unit."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def run(args) -> list[dict]:
    """Every (S, T, method) cell; prints a row per cell as it goes."""
    dtype = np.float64 if args.x64 else np.float32
    rows = []
    header = (
        f"{'S':>4s} {'T':>5s} {'method':>10s} | {'loglik':>9s} {'spread':>17s} {'cpu':>9s} "
        f"{'compile':>7s} | {'gradient':>9s} {'spread':>17s} {'cpu':>9s} {'compile':>7s} "
        f"{'memory':>8s} | {'|diff|':>8s}"
    )
    print(header + "\n" + "-" * len(header), flush=True)
    for S in args.sizes:
        model = network(S // 2, dtype)
        F, Q, H, offset, m1, P1, R = model
        K = kalman.choose_steady_after(F, Q, H, P1, R)
        change = float(kalman.steady_state_change(F, Q, H, P1, R, K))
        error = steady_error(S, K)
        print(
            f"S = {S}: steady_after K = {K} (relative covariance change {change:.1e}); in "
            f"float64, T = 2000: max |steady - exact| per term {error['max_term']:.1e}, "
            f"summed {error['sum']:.1e} nats",
            flush=True,
        )
        rows.append({"S": S, "steady_after": K, "change": change, "steady_error_f64": error})
        too_slow = set()
        for T in args.lengths:
            y = jax.jit(kalman.sample, static_argnums=8)(jax.random.key(T), *model, T)
            reference = exact_float64(y, model)
            for method in args.methods:
                parallel_mb = 3 * T * S * S * np.dtype(dtype).itemsize / 2**20
                skip = None
                if method in too_slow:
                    skip = f"a shorter series took over {args.budget_s:.0f} s a call"
                elif method == "parallel" and parallel_mb > args.parallel_mb:
                    skip = f"element stacks {parallel_mb:.0f} MB > {args.parallel_mb:.0f} MB"
                elif method == "steady" and K >= T:
                    skip = f"K = {K} >= T: the exact path"
                if skip:
                    print(f"{S:4d} {T:5d} {method:>10s} | skipped: {skip}", flush=True)
                    rows.append({"S": S, "T": T, "method": method, "skipped": skip})
                    continue
                loglik, grad = build(method, y, model, K)
                f = timed(loglik, (F, Q, R), args.rounds, args.cell_s)
                g = timed(grad, (F, Q, R), args.rounds, args.cell_s)
                value = float(f.pop("value"))
                g.pop("value")
                diff = abs(value - reference)
                if max(f["median_s"], g["median_s"]) > args.budget_s:
                    too_slow.add(method)
                print(
                    f"{S:4d} {T:5d} {method:>10s} | {fmt(f['median_s']):>9s} "
                    f"{fmt(f['min_s']) + '-' + fmt(f['max_s']):>17s} {fmt(f['cpu_s']):>9s} "
                    f"{f['compile_s']:6.1f}s | {fmt(g['median_s']):>9s} "
                    f"{fmt(g['min_s']) + '-' + fmt(g['max_s']):>17s} {fmt(g['cpu_s']):>9s} "
                    f"{g['compile_s']:6.1f}s {g['temp_mb']:6.1f}MB | {diff:8.1e}",
                    flush=True,
                )
                rows.append(
                    {"S": S, "T": T, "method": method, "loglik": f, "gradient": g}
                    | {"value": value, "abs_diff_vs_exact_float64": diff, "steady_after": K}
                )
    return rows


def main(argv=None) -> int:
    """Parse the arguments, run every cell, print the table and write `--json`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 68, 136], help="S (even)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[500, 2000, 8000], help="T")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per cell")
    parser.add_argument("--cell-s", type=float, default=40.0, help="fewer rounds beyond this")
    parser.add_argument("--budget-s", type=float, default=20.0, help="see the docstring")
    parser.add_argument("--parallel-mb", type=float, default=600.0, help="see the docstring")
    parser.add_argument("--x64", action="store_true", help="float64 (default float32)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)
    if any(S % 2 or S < 2 for S in args.sizes):
        parser.error(f"--sizes: expected even state sizes (two states a region), got {args.sizes}")
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    print(
        f"jax {jax.__version__} on {jax.devices()[0]}, {os.cpu_count()} CPUs, "
        f"{'float64' if args.x64 else 'float32'}, OPENBLAS_NUM_THREADS="
        f"{os.environ['OPENBLAS_NUM_THREADS']}; load average at start "
        f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
        flush=True,
    )
    rows = run(args)
    load1 = os.getloadavg()
    total = time.perf_counter() - t0
    print(
        f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; total "
        f"{total / 60:.1f} min"
    )
    if args.json:
        out = {"x64": args.x64, "load_start": load0, "load_end": load1, "total_s": total}
        args.json.write_text(json.dumps(out | {"rows": rows}, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
