"""Simulation-based inference benchmark: bank throughput, NPE training, amortised latency.

Workload: a 68-region Ornstein-Uhlenbeck network (`Connectome.synthetic(68, seed=0)`,
max-normalised; `models.Linear`, decay rate lam, linear coupling G, no delays, additive
noise sigma = 0.002) integrated by stochastic Heun at dt = 5 ms for 140 s, recorded by the
BOLD monitor (Balloon-Windkessel, Stephan et al. 2007 coefficients, TR = 720 ms, the first
20 s dropped): 120 s of BOLD, 166 volumes x 68 regions per simulation. Priors (canonical
units, 1/ms): coupling.G ~ U(0, 0.003), model.lam ~ U(0.0045, 0.010); every draw is
stable (G * 1.349 / lam <= 0.9, 1.349 the largest eigenvalue of the connectome). Summary:
`combine(FC(pca=10), FCD(window=30 s, step=3.6 s))` (10 principal components of the
Fisher-z FC and a 20-bin FCD histogram: 30 features). The BOLD FC of an OU network
depends mostly on G / lam (the zero-frequency transfer (lam - G W)^-1 / lam), so the
posteriors are ridges along it: lam is weakly identified on its own.

Steps:

1. a bank of N + 20 simulations (`simulate_bank`, vmapped chunks): simulations per second
   without compilation (`bank.info["simulations_per_s"]`) and with it (the call's wall
   time), the chunk size; one unbatched simulation for reference. The last 20 are the
   held-out subjects.
2. `NPE(...).train_on(bank)` (flowjax MAF, default settings): training time (compilation
   included) and epochs, split into a fixed cost per call (a 1-epoch training, run after a
   first, cold one) and a cost per epoch.
3. per-subject posterior latency: 20 subjects x 1,000 draws, one batched call, and one
   subject at a time (first call with compilation; then the median).
4. NUTS per subject: the same network recorded through `TemporalAverage(720 ms)` instead
   of BOLD (`likelihoods.Linearized("fc")` takes Raw/TemporalAverage monitors only: the
   exact Lyapunov FC of the OU network with the monitor's box-car average, no time
   stepping), one held-out subject, 2 chains x (200 warm-up + 200 draws): the wall time
   of one `nuts` call (compilation included: ~10 s, as a second call showed) and the cost
   of one log-density gradient.
5. the `sbi` package (PyTorch, `benchmarks/peers/run_sbi_npe.py`, MAF, `--threads 1`)
   on the same bank: the same 30 features our flow conditions on (PCA projected, not
   standardised: sbi z-scores them itself), the same 20 held-out observations.
   Training time, epochs, sampling latency, and for both estimators: mean absolute error
   of the posterior means against the true parameters (in units of the prior width; the
   prior mean scores 0.25) and how many of the 40 90 % intervals cover the truth.

Usage:
    python benchmarks/sbi.py [--quick] [--num-simulations 2000] [--chunk-size N]
        [--max-epochs 500] [--nuts 200 200] [--no-sbi] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

# benchmarks/inference.py is named like the `inference` package: keep this folder off the path
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import jax  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402

import brainmass as bm  # noqa: E402
import inference as inf  # noqa: E402
import inference.summaries as S  # noqa: E402


def _load_runner():
    spec = importlib.util.spec_from_file_location("_runner", HERE / "_runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_peer_runner


run_peer_runner = _load_runner()

N_REGIONS, DT, DURATION, TRANSIENT, TR = 68, 5.0, 140_000.0, 20_000.0, 720.0
SIGMA = 0.002
BOUNDS = {"coupling.G": (0.0, 0.003), "model.lam": (0.0045, 0.010)}
N_HELD_OUT, NUM_DRAWS = 20, 1000
SBI_PYTHON = HERE / ".peers" / "sbi" / "bin" / "python"
SBI_RUNNER = HERE / "peers" / "run_sbi_npe.py"


def priors() -> dict:
    """The priors: bounded uniforms over `BOUNDS` (canonical units, 1/ms)."""
    return {p: dist.Uniform(lo, hi) for p, (lo, hi) in BOUNDS.items()}


def build(monitor: bm.monitors.AbstractMonitor | None = None) -> bm.Simulator:
    """The 68-region OU network (G, lam at the prior centre), recorded by `monitor`.

    **Arguments:**

    - `monitor`: default BOLD (TR 720 ms, 20 s transient dropped).

    **Returns:** a `brainmass.Simulator`, dt 5 ms, 140 s.
    """
    net = bm.Network(
        bm.models.Linear(lam=0.007),
        bm.Connectome.synthetic(N_REGIONS, seed=0),
        coupling=bm.coupling.Linear(G=0.0015),
        noise=bm.noise.Additive(sigma=SIGMA),
    )
    if monitor is None:
        monitor = bm.monitors.BOLD(period=TR, transient=TRANSIENT)
    return bm.Simulator(
        net, dt=DT, duration=DURATION, monitor=monitor, solver=bm.solvers.StochasticHeun()
    )


def summary() -> S.Combined:
    """The summary: 10 FC principal components and a 20-bin FCD histogram (30 features)."""
    return S.combine(S.FC(pca=10), S.FCD(window=30_000.0, step=3_600.0))


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


# ----------------------------------------------------------------------------- steps


def step_bank(sim: bm.Simulator, n: int, chunk_size: int | None, key) -> tuple[dict, object]:
    """Step 1: a bank of `n + N_HELD_OUT` simulations, and one unbatched simulation.

    **Returns:** `(figures, bank)`: simulations per second with and without compilation,
    chunk size, failures, and the unbatched simulation's compile and steady seconds.
    """
    f = jax.jit(sim.function(list(BOUNDS)))
    theta = {p: np.float32(0.5 * (lo + hi)) for p, (lo, hi) in BOUNDS.items()}
    _, first = _timed(f, theta, jax.random.key(1))
    steady = statistics.median(_timed(f, theta, jax.random.key(2 + i))[1] for i in range(3))
    t0 = time.perf_counter()
    bank = inf.simulate_bank(
        sim, priors(), summary(), key, n + N_HELD_OUT, chunk_size=chunk_size, progress=False
    )
    total = time.perf_counter() - t0
    figures = {
        "attempted": bank.n_attempted,
        "failed": bank.n_failed,
        "chunk_size": bank.chunk_size,
        "n_chunks": bank.n_chunks,
        "sims_per_s": bank.info["simulations_per_s"],
        "sims_per_s_with_compile": bank.n_attempted / total,
        "wall_s": total,
        "run_wall_s": bank.info["wall_s"],
        "single_compile_s": first - steady,
        "single_steady_s": steady,
        "x_raw_shape": list(bank.x.shape[1:]),
    }
    return figures, bank


def split_bank(bank, n: int):
    """(training bank of the first `n` rows, held-out theta (20, d), held-out raw x (20, k))."""
    if len(bank) < n + N_HELD_OUT:
        raise ValueError(
            f"bank: {len(bank)} successful simulations, fewer than {n} + {N_HELD_OUT} held out."
        )
    train = dataclasses.replace(bank, theta=bank.theta[:n], x=bank.x[:n])
    return train, bank.theta[n : n + N_HELD_OUT], bank.x[n : n + N_HELD_OUT]


def step_train(sim: bm.Simulator, train, max_epochs: int, key) -> tuple[inf.NPE, dict]:
    """Step 2: train the NPE; split its wall time into a fixed cost and a cost per epoch.

    Two 1-epoch trainings run first (the first also pays first-use costs); `fit_flow`
    compiles its epoch and validation pass on every call, so the second one's wall time
    is the fixed cost of a call, and `(train_s - fixed) / (epochs - 1)` the cost of an
    epoch.

    **Returns:** `(npe, figures)`: the trained `NPE` and `npe.info` with `cold_1_epoch_s`,
    `warm_1_epoch_s`, `fixed_s` (s) and `epoch_s` (s per epoch).
    """
    one = [
        inf.NPE(sim, priors(), summary()).train_on(train, key, max_epochs=1, progress=False)
        for _ in range(2)
    ]
    npe = inf.NPE(sim, priors(), summary()).train_on(
        train, key, max_epochs=max_epochs, progress=False
    )
    figures = {k: v for k, v in npe.info.items() if k != "versions"}
    fixed = one[1].info["train_s"]
    figures.update(
        cold_1_epoch_s=one[0].info["train_s"],
        warm_1_epoch_s=fixed,
        fixed_s=fixed,
        epoch_s=max(npe.info["train_s"] - fixed, 0.0) / max(npe.info["epochs"] - 1, 1),
    )
    return npe, figures


def step_latency(npe: inf.NPE, x_held: np.ndarray, key) -> tuple[dict, np.ndarray]:
    """Step 3: 1,000 draws for each held-out subject, batched and one at a time.

    **Returns:** `(figures, draws (20, 1000, d))`; seconds per call: first (compiling)
    and the median of later ones.
    """

    def batched(k):
        return npe.posterior(features=x_held).sample_flat(k, NUM_DRAWS)

    draws, first_batch = _timed(batched, key)
    steady_batch = statistics.median(
        _timed(batched, jax.random.fold_in(key, i))[1] for i in range(1, 4)
    )
    singles = [
        _timed(
            lambda k, x=x: npe.posterior(features=x).sample_flat(k, NUM_DRAWS),
            jax.random.fold_in(key, 100 + i),
        )[1]
        for i, x in enumerate(x_held)
    ]
    figures = {
        "batch_first_s": first_batch,
        "batch_s": steady_batch,
        "batch_per_subject_s": steady_batch / len(x_held),
        "single_first_s": singles[0],
        "single_s": statistics.median(singles[1:]),
    }
    return figures, np.asarray(draws)


def step_nuts(theta_true: np.ndarray, warmup: int, samples: int, key) -> dict:
    """Step 4: NUTS on one subject, linearised FC likelihood, TemporalAverage monitor.

    **Arguments:**

    - `theta_true`: the subject's flat parameters `(d,)` (order of `BOUNDS`).
    - `warmup`, `samples`: iterations per chain (2 chains).
    - `key`: a `jax.random` key (the subject's noise, the sampler).

    **Returns:** `wall_s` of one `nuts` call (compilation included), the cost of one
    compiled log-density gradient (`grad_s`), leapfrog steps of the kept draws, divergences,
    and the draws `(2 * samples, d)`.
    """
    sim = build(bm.monitors.TemporalAverage(period=TR, transient=TRANSIENT))
    truth = dict(zip(BOUNDS, (float(v) for v in theta_true), strict=True))
    data = np.asarray(sim.with_params(truth).run(jax.random.fold_in(key, 0)).signal)
    # the Fisher-z entries' covariance from the model's lagged covariances, at the simulator's
    # own values (the prior's centre)
    bmodel = inf.BayesianModel(sim, priors(), inf.likelihoods.Linearized("fc"))
    grad = jax.jit(jax.value_and_grad(bmodel.logdensity(data).fn_data))
    z, data_j = jax.numpy.zeros(len(BOUNDS)), jax.numpy.asarray(data)
    _timed(grad, z, data_j)
    grad_s = statistics.median(_timed(grad, z, data_j)[1] for _ in range(10))
    t0 = time.perf_counter()
    post = inf.nuts(
        bmodel,
        data,
        jax.random.fold_in(key, 1),
        num_warmup=warmup,
        num_samples=samples,
        num_chains=2,
        progress=False,
        posterior_predictive=False,
    )
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "grad_s": grad_s,
        "leapfrog_steps": int(np.sum(post.sample_stats["n_steps"])),
        "n_samples_data": int(data.shape[0]),
        "divergent": int(post.info.get("n_divergent", -1)),
        "draws": np.stack([post.samples[p].ravel() for p in BOUNDS], -1),
        "truth": np.asarray(theta_true),
    }


def step_sbi(train, fitted, x_held: np.ndarray, max_epochs: int, workdir: Path) -> dict:
    """Step 5: the sbi runner on the same bank and observations (projected features).

    **Returns:** the runner's JSON record plus `draws (20, 1000, d)`, or `{"error": ...}`.
    """
    if not SBI_PYTHON.exists():
        return {"error": f"sbi not installed ({SBI_PYTHON} missing; benchmarks/peers/setup_sbi.sh)"}
    bank_path, out_path = workdir / "bank.npz", workdir / "sbi_out.npz"
    np.savez(
        bank_path,
        theta=train.theta,
        x=np.asarray(fitted.project(train.x)),
        low=np.array([lo for lo, _ in BOUNDS.values()]),
        high=np.array([hi for _, hi in BOUNDS.values()]),
        x_obs=np.asarray(fitted.project(x_held)),
    )
    args = [
        "--bank", str(bank_path), "--out", str(out_path), "--density-estimator", "maf",
        "--num-draws", str(NUM_DRAWS), "--max-epochs", str(max_epochs), "--batch-size", "256",
        "--learning-rate", "5e-4", "--validation-fraction", "0.1", "--patience", "20",
        "--seed", "0", "--threads", "1",
    ]  # fmt: skip
    t0 = time.perf_counter()
    record = run_peer_runner(SBI_PYTHON, SBI_RUNNER, args, timeout_s=3 * 3600)
    record["process_s"] = time.perf_counter() - t0
    if "error" not in record:
        with np.load(out_path) as f:
            record["draws"] = np.asarray(f["samples"], dtype=float)
    return record


def quality(draws: np.ndarray, truth: np.ndarray) -> dict:
    """Posterior quality over subjects.

    **Arguments:**

    - `draws`: `(m, n_draws, d)`; `truth`: `(m, d)`, parameters in canonical units.

    **Returns:** `mae`: `{path: mean |posterior mean - truth| / prior width}`, `mae_all`
    (over every parameter), `covered`, `intervals`: 90 % central intervals holding the
    truth, of `m * d`.
    """
    width = np.array([hi - lo for lo, hi in BOUNDS.values()])
    err = np.abs(draws.mean(1) - truth) / width
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=1)
    inside = (lo <= truth) & (truth <= hi)
    return {
        "mae": dict(zip(BOUNDS, err.mean(0).tolist(), strict=True)),
        "mae_all": float(err.mean()),
        "covered": int(inside.sum()),
        "intervals": int(inside.size),
    }


def side_by_side(info: dict, lat: dict, q_npe: dict, rec: dict, q_sbi: dict | None) -> list:
    """Rows `(label, brainmass NPE, sbi)` of the comparison table (sbi cells "error" if failed)."""

    def cell(fmt):
        return "error" if q_sbi is None else fmt()

    ours_latency = (
        f"{lat['single_s'] * 1e3:.1f} ms ({lat['batch_per_subject_s'] * 1e3:.2f} batched)"
    )
    rows = [
        ("", "brainmass NPE (flowjax)", f"sbi {rec.get('version', '')} (torch)"),
        ("training time", f"{info['train_s']:.1f} s", cell(lambda: f"{rec['train_s']:.1f} s")),
        ("epochs", str(info["epochs"]), cell(lambda: str(rec["epochs"]))),
        (
            "s/epoch",
            f"{info['epoch_s']:.3f}",
            cell(lambda: f"{rec['epoch_s_median']:.3f} (median)"),
        ),
        (
            "fixed cost of a training call",
            f"{info['fixed_s']:.1f} s (a 1-epoch call)",
            cell(lambda: f"{rec['train_outside_epochs_s']:.1f} s (outside epochs)"),
        ),
        (
            "latency, 1,000 draws, per subject",
            ours_latency,
            cell(lambda: f"{rec['sample_s_median'] * 1e3:.1f} ms"),
        ),
    ]
    for p in BOUNDS:
        rows.append(
            (
                f"MAE {p} / prior width",
                f"{q_npe['mae'][p]:.3f}",
                cell(lambda p=p: f"{q_sbi['mae'][p]:.3f}"),
            )
        )
    rows.append(
        (
            "90 % intervals covering the truth",
            f"{q_npe['covered']} / {q_npe['intervals']}",
            cell(lambda: f"{q_sbi['covered']} / {q_sbi['intervals']}"),
        )
    )
    return rows


# ----------------------------------------------------------------------------- main


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("brainmass", "jax", "flowjax", "equinox", "numpyro"):
        try:
            out[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing distribution
            out[name] = "?"
    return out


def main(argv=None) -> int:
    """Run the benchmark and print its figures (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="64 simulations, 100 epochs at most, NUTS 25 + 25"
    )
    parser.add_argument("--num-simulations", type=int, default=None, help="bank size (2000)")
    parser.add_argument("--chunk-size", type=int, default=None, help="default: from memory")
    parser.add_argument("--max-epochs", type=int, default=None, help="500 (quick: 100)")
    parser.add_argument("--nuts", type=int, nargs=2, default=None, metavar=("WARMUP", "DRAWS"))
    parser.add_argument("--no-sbi", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    n = args.num_simulations or (64 if args.quick else 2000)
    max_epochs = args.max_epochs or (100 if args.quick else 500)
    warmup, samples = args.nuts or ((25, 25) if args.quick else (200, 200))
    for name, value in (("--num-simulations", n), ("--max-epochs", max_epochs)):
        if value < 1:
            raise ValueError(f"{name}: expected >= 1, got {value}.")

    key = jax.random.key(0)
    k_bank, k_npe, k_post, k_nuts = jax.random.split(key, 4)
    load = {"start": _load()}
    versions = _versions()
    print(
        f"SBI benchmark: {N_REGIONS}-region OU network, BOLD (TR {TR:g} ms), "
        f"{DURATION / 1000:g} s at dt {DT:g} ms ({(DURATION - TRANSIENT) / 1000:g} s of BOLD); "
        f"priors {BOUNDS}"
    )
    print(
        "  "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; {jax.devices()[0].platform}, {os.cpu_count()} CPUs, load {load['start']}"
    )

    sim = build()
    bank_fig, bank = step_bank(sim, n, args.chunk_size, k_bank)
    load["after_bank"] = _load()
    print(
        f"\n1. bank: {bank_fig['attempted']} simulations ({bank_fig['failed']} failed), chunks "
        f"of {bank_fig['chunk_size']} x {bank_fig['n_chunks']}; raw features "
        f"{bank_fig['x_raw_shape']}\n"
        f"   {bank_fig['sims_per_s']:.2f} simulations/s without compilation "
        f"({bank_fig['run_wall_s']:.0f} s), {bank_fig['sims_per_s_with_compile']:.2f} with "
        f"({bank_fig['wall_s']:.0f} s)\n"
        f"   one unbatched simulation: {bank_fig['single_steady_s']:.3f} s "
        f"(+{bank_fig['single_compile_s']:.1f} s compile); load {load['after_bank']}"
    )

    train, theta_held, x_held = split_bank(bank, n)
    npe, npe_fig = step_train(sim, train, max_epochs, k_npe)
    load["after_npe"] = _load()
    print(
        f"\n2. NPE (flowjax MAF) on {npe.info['n_train']} + {npe.info['n_validation']} "
        f"(validation): {npe.info['train_s']:.1f} s, {npe.info['epochs']} epochs (best "
        f"{npe.info['best_epoch']}), compilation included; one epoch "
        f"{npe_fig['epoch_s']:.3f} s, the fixed cost of a training call "
        f"{npe_fig['fixed_s']:.1f} s (1-epoch trainings: {npe_fig['cold_1_epoch_s']:.1f} s "
        f"cold, {npe_fig['warm_1_epoch_s']:.1f} s after it)"
    )

    lat, draws_npe = step_latency(npe, x_held, k_post)
    print(
        f"\n3. posterior, {N_HELD_OUT} subjects x {NUM_DRAWS} draws: batched "
        f"{lat['batch_s'] * 1e3:.1f} ms ({lat['batch_per_subject_s'] * 1e3:.2f} ms/subject; "
        f"first call {lat['batch_first_s']:.2f} s); one at a time "
        f"{lat['single_s'] * 1e3:.1f} ms/subject (first {lat['single_first_s']:.2f} s)"
    )

    nuts_fig = step_nuts(theta_held[0], warmup, samples, k_nuts)
    load["after_nuts"] = _load()
    print(
        f"\n4. NUTS, one subject (TemporalAverage, Linearized FC with its computed "
        f"covariance), 2 chains x ({warmup} + {samples}): "
        f"{nuts_fig['wall_s']:.1f} s (compilation included), {nuts_fig['divergent']} "
        f"divergent; {nuts_fig['leapfrog_steps']} leapfrog steps in the kept draws; one "
        f"gradient {nuts_fig['grad_s'] * 1e3:.1f} ms\n"
        f"   NUTS / NPE latency: {nuts_fig['wall_s'] / lat['single_s']:,.0f}x (one at a "
        f"time), {nuts_fig['wall_s'] / lat['batch_per_subject_s']:,.0f}x (batched)"
    )
    for j, p in enumerate(BOUNDS):
        print(
            f"   {p}: truth {theta_held[0, j]:.5f}, NUTS mean {nuts_fig['draws'][:, j].mean():.5f}"
            f", NPE mean {draws_npe[0, :, j].mean():.5f} (BOLD)"
        )

    q_npe = quality(draws_npe, theta_held)
    sbi_rec = {"error": "--no-sbi"}
    if not args.no_sbi:
        fitted = summary().bind(sim).fit(train.x)
        with tempfile.TemporaryDirectory() as tmp:
            sbi_rec = step_sbi(train, fitted, x_held, max_epochs, Path(tmp))
    load["end"] = _load()
    q_sbi = quality(sbi_rec["draws"], theta_held) if "draws" in sbi_rec else None

    print(f"\n5. side by side (same bank, same {N_HELD_OUT} held-out subjects, MAF):")
    if "error" in sbi_rec:
        print(f"   sbi failed: {sbi_rec['error'][:300]}")
    for row in side_by_side(npe_fig, lat, q_npe, sbi_rec, q_sbi):
        print(f"   {row[0]:36s} {row[1]:>28s} {row[2]:>24s}")
    sbi_s = sbi_rec.get("process_s", float("nan"))
    print(
        f"   (the prior mean scores an MAE of 0.25; load at start {load['start']}, end "
        f"{load['end']}; the sbi process took {sbi_s:.0f} s, imports included)"
    )

    if args.json:
        report = {
            "versions": versions,
            "load": load,
            "num_simulations": n,
            "bank": bank_fig,
            "npe": npe_fig,
            "latency": lat,
            "nuts": {k: v for k, v in nuts_fig.items() if k not in ("draws", "truth")},
            "quality": {"npe": q_npe, "sbi": q_sbi},
            "sbi": {k: v for k, v in sbi_rec.items() if k != "draws"},
        }
        args.json.write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
