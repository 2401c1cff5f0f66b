r"""`brainmass demo`: three unknown parameters of a noise-driven network, two ways, checked.

The default subject is an Ornstein-Uhlenbeck network: `models.Linear` on every region of
the synthetic 20-region connectome, linear coupling, additive noise, no conduction delays,

$$ dx = (-\lambda x + G W x)\,dt + \sigma\,dW_t, $$

recorded by a `Raw` monitor (every region, every 4 ms, no measurement noise), started at
rest. Its three parameters are hidden: the global coupling `coupling.G` (1/ms), the
regional decay rate `model.lam` (1/ms) and the noise intensity `noise.sigma`. The demo

1. simulates the subject (stochastic Heun, dt = 0.5 ms; 2 s of data, 0.6 s with `quick`);
2. finds the MAP and samples the posterior with NUTS (NumPyro, 4 chains (2 with `quick`)
   started at the MAP, dense mass matrix) on the exact likelihood of the series,
   `likelihoods.StateSpace`: a Kalman filter on the exact discretisation of the network
   between samples (Van Loan 1978), exact for this network, the process noise integrated
   out;
3. checks the fit by posterior predictive simulation (`diagnostics.ppc`): five statistics
   of the data (variance, lag-1 autocorrelation, mean FC, FC-SC correlation, global-signal
   variance) against their law under simulations at posterior draws;
4. trains a neural posterior estimator (`inference.NPE`, a flowjax MAF) on a bank of prior
   simulations summarised by six lag-0 / lag-1 covariance statistics (projections of the
   sufficient statistics of a fully observed OU series on I, W and W^T W), and reads off
   the subject's posterior in one network evaluation;
5. measures the calibration of NPE on this problem by simulation-based calibration
   (Talts et al. 2018) and TARP (Lemos et al. 2023) on held-out prior simulations (the
   estimator is amortized, so this costs one batched evaluation). The calibration of the
   exact-likelihood route is read from the stored benchmark,
   `benchmarks/calibration_results.json` (`benchmarks/calibration.py`), when a source
   checkout has it, and reported as not measured otherwise: an SBC of NUTS itself needs
   one NUTS run per simulated dataset, which does not fit the demo's time (a vmapped
   batch of samplers also pays the filter's data-dependent branch on every lane);
6. writes a results folder: `data.npy`, `posterior_nuts.nc` and `posterior_npe.nc`
   (ArviZ netCDF), `posterior_vs_truth.png`, `trace.png`, `ppc.png`, `calibration.png`,
   `npe_losses.png`, the trained estimator `npe.npz`, the bank `bank.npz` (a rerun
   resumes it) and `report.md` with one row per parameter.

Why 20 regions and not 68: the exact likelihood's gradient costs O(N^3) per evaluation and
NUTS needs thousands of them. Measured on the shared 2-core machine (load ~7), a
gradient for 4 vectorised chains took 197 ms at 68 regions and 15 ms at 20 regions.
Compilation, which costs the same at any size, is most of the demo's time.

The report (table, `report.md`, plots, the reader of the stored benchmark) is in
`inference.demo._report`.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

N_REGIONS = 20
CONNECTOME_SEED = 0
# synthetic(20, seed=0) has largest eigenvalue 1.75: the network is stable while
# G * 1.75 < lam, which holds on the whole prior box below (0.03 * 1.75 < 0.06).
TRUTH = {"coupling.G": 0.02, "model.lam": 0.1, "noise.sigma": 0.02}
BOUNDS = {"coupling.G": (0.0, 0.03), "model.lam": (0.06, 0.14), "noise.sigma": (0.01, 0.04)}
UNITS = {"coupling.G": "1/ms", "model.lam": "1/ms", "noise.sigma": "1/sqrt(ms)"}
DT = 0.5  # ms, the simulator's step
PERIOD = 4.0  # ms between samples (Raw monitor)

SETTINGS = {
    "full": dict(
        n_regions=N_REGIONS,
        n_samples=500,  # 2 s of data
        map_steps=200,
        num_warmup=200,
        num_samples=300,
        num_chains=4,
        bank=3000,
        sbc=300,
        epochs=300,
        ppc=200,
    ),
    "quick": dict(
        n_regions=N_REGIONS,
        n_samples=150,  # 0.6 s of data
        map_steps=100,
        num_warmup=100,
        num_samples=100,
        num_chains=2,
        bank=1000,
        sbc=150,
        epochs=150,
        ppc=100,
    ),
}
_MINIMUM = dict(
    n_regions=2, n_samples=20, map_steps=1, num_warmup=1, num_samples=10, num_chains=2,
    bank=20, sbc=10, epochs=1, ppc=10,
)  # fmt: skip
# `brainmass demo`'s wall time, measured on 2 otherwise idle CPU cores (JAX compilation
# included): full 88 s, --quick 58 s (2-3x that with a load average of ~5)
DEMO_TIME = {"full": "About 1.5 minutes", "quick": "about 1 minute"}
# NPE: the flow and its training (Adam on minibatches, early stopping on a validation split)
NPE_FLOW = dict(flow_layers=3, nn_width=32)
NPE_FIT = dict(batch_size=128, learning_rate=2e-3, patience=20)
NPE_DRAWS = 4000  # draws of the subject's NPE posterior
SBC_DRAWS = 200  # NPE draws per held-out simulation
STORED_CALIBRATION = Path("benchmarks") / "calibration_results.json"


# =====================================================================================
# the subject and its statistics
# =====================================================================================


def default_subject(n_regions: int = N_REGIONS, n_samples: int = 500, theta=None):
    """The demo's simulator: OU network, `n_regions` regions, `n_samples` samples 4 ms apart.

    At the true parameters unless `theta` `{path: value}` says otherwise.
    """
    import brainmass as bm

    values = dict(TRUTH, **(theta or {}))
    net = bm.Network(
        bm.models.Linear(lam=values["model.lam"]),
        bm.Connectome.synthetic(n_regions, seed=CONNECTOME_SEED),
        coupling=bm.coupling.Linear(G=values["coupling.G"]),
        noise=bm.noise.Additive(sigma=values["noise.sigma"]),
    )
    return bm.Simulator(
        net,
        dt=DT,
        duration=n_samples * PERIOD,
        monitor=bm.monitors.Raw(period=PERIOD),
        init={"x": 0.0},
    )


def priors() -> dict[str, Any]:
    """The demo's priors: uniform on a box where the network is stable."""
    import numpyro.distributions as dist

    return {p: dist.Uniform(lo, hi) for p, (lo, hi) in BOUNDS.items()}


class LagStatistics:
    r"""NPE's summary: six lag-0 / lag-1 statistics of a series `(n_samples, n_regions)`.

    With $C_0 = \langle x_k x_k^T\rangle$, $C_1 = \langle x_{k+1} x_k^T\rangle$ (means over
    samples) and $\bar c(M) = \mathrm{tr}(M)/N$: $\log\bar c(C_0)$,
    $\bar c(WC_0)/\bar c(C_0)$, $\bar c(W^TWC_0)/\bar c(C_0)$, $\bar c(C_1)/\bar c(C_0)$,
    $\bar c(WC_1)/\bar c(C_0)$ and $\log\langle|x_{k+1}-x_k|^2\rangle/N$. $C_0, C_1$ are
    sufficient for a fully observed OU series up to its end points (a Gaussian VAR(1));
    these are their projections on $I$, $W$, $W^TW$, which carry $\sigma$ (the logs) and
    $\lambda$, $G$ (the dimensionless ratios).
    """

    names = ("log var", "c(W C0)", "c(WtW C0)", "lag-1 corr", "c(W C1)", "log incr var")

    def __init__(self, weights: Any):
        self.weights = np.asarray(weights, dtype=float)

    def __call__(self, signal):
        """`(6,)` features of one series; NaN where the series is not finite."""
        import jax.numpy as jnp

        x = jnp.asarray(signal)
        w = jnp.asarray(self.weights, x.dtype)
        x0, x1 = x[:-1], x[1:]
        wx0 = x0 @ w.T
        c00 = jnp.mean(x0 * x0)
        return jnp.stack(
            [
                jnp.log(c00),
                jnp.mean(x0 * wx0) / c00,
                jnp.mean(wx0 * wx0) / c00,
                jnp.mean(x1 * x0) / c00,
                jnp.mean(x1 * wx0) / c00,
                jnp.log(jnp.mean((x1 - x0) ** 2)),
            ]
        )

    def __repr__(self) -> str:
        return f"LagStatistics({self.weights.shape[0]} regions)"


class PPCStatistics:
    """The posterior predictive check's statistics of a series `(n_samples, n_regions)`.

    Mean variance over regions, mean lag-1 autocorrelation (one sample, 4 ms), mean
    off-diagonal FC (Pearson), the correlation of FC with the structural weights over
    region pairs, and the variance of the global (region-mean) signal over the mean
    variance.
    """

    names = ("variance", "lag-1 autocorr", "mean FC", "corr(FC, SC)", "global var ratio")

    def __init__(self, weights: Any):
        self.weights = np.asarray(weights, dtype=float)

    def __call__(self, signal):
        """`(5,)` statistics of one series."""
        import jax.numpy as jnp

        x = jnp.asarray(signal)
        x = x - jnp.mean(x, axis=0, keepdims=True)
        n = x.shape[1]
        cov = x.T @ x / x.shape[0]
        var = jnp.diagonal(cov)
        fc = cov / jnp.sqrt(var[:, None] * var[None, :])
        iu = np.triu_indices(n, 1)
        f, s = fc[iu], jnp.asarray(self.weights, x.dtype)[iu]
        f, s = f - jnp.mean(f), s - jnp.mean(s)
        lag1 = jnp.mean(x[1:] * x[:-1], axis=0) / var
        return jnp.stack(
            [
                jnp.mean(var),
                jnp.mean(lag1),
                jnp.mean(fc[iu]),
                jnp.sum(f * s) / jnp.sqrt(jnp.sum(f * f) * jnp.sum(s * s)),
                jnp.var(jnp.mean(x, axis=1)) / jnp.mean(var),
            ]
        )

    def __repr__(self) -> str:
        return f"PPCStatistics({self.weights.shape[0]} regions)"


# =====================================================================================
# the run
# =====================================================================================


def _settings(quick: bool, settings: Mapping[str, int] | None) -> dict[str, int]:
    cfg = dict(SETTINGS["quick" if quick else "full"])
    if settings is not None and not isinstance(settings, Mapping):
        raise ValueError(f"settings: expected a dict {{name: int}}, got {settings!r}.")
    for name, value in (settings or {}).items():
        if name not in cfg:
            raise ValueError(f"settings: unknown setting {name!r}; expected some of {list(cfg)}.")
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or value < _MINIMUM[name]:
            raise ValueError(
                f"settings: {name} must be an integer >= {_MINIMUM[name]}, got {value!r}."
            )
        cfg[name] = value
    if cfg["n_regions"] % 2:
        raise ValueError(
            f"settings: n_regions must be even (the synthetic connectome has two hemispheres), "
            f"got {cfg['n_regions']}."
        )
    return cfg


def run_demo(
    out: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    npe: bool = True,
    say: Callable[[str], Any] = print,
    settings: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Run the demo and write its results folder; returns the facts of the report.

    **Arguments:**

    - `out`: the results folder (created; a bank already in it is resumed).
    - `quick`: the smaller preset (0.6 s of data instead of 2 s, 2 shorter chains instead
      of 4, a 1,000-simulation bank instead of 3,000).
    - `seed`: a non-negative integer, the data's noise seed (every other key derives from it).
    - `npe`: also run the amortized path (NPE and its calibration).
    - `say`: where the progress lines go.
    - `settings`: overrides of the preset, `{name: int}` with names from `SETTINGS`
      (`n_regions` even, each at least its `_MINIMUM`).

    **Returns:** a dict: `truth`, `settings`, `map`, `rows` (per route, per parameter: mean,
    sd, 90 % and 99 % equal-tailed intervals, the truth's posterior quantile), `rhat`,
    `ess`, `ppc` (statistic: observed value and p-value), `sbc`, `stored_calibration`,
    `time_s` per step, `wall_s`, `cpu_s`, `load` (1-min load average at start and end).

    **Raises:** `ValueError` for a bad `seed` or `settings`; `OSError` when `out` cannot
    be written.
    """
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}.")
    cfg = _settings(quick, settings)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start, cpu0, load0 = time.perf_counter(), time.process_time(), _load()

    import scipy.linalg  # noqa: F401  (loaded before the BLAS thread limit below)
    from threadpoolctl import threadpool_limits

    # small (N x N) factorisations: one BLAS thread is faster, and spinning BLAS threads on
    # a busy 2-core machine made them 100x slower (benchmarks/statespace.py)
    with threadpool_limits(limits=1, user_api="blas"):
        facts = _run(out, cfg, seed, npe, say)
    from ._report import write_report

    facts["wall_s"] = time.perf_counter() - start
    facts["cpu_s"] = time.process_time() - cpu0
    facts["load"] = (load0, _load())
    write_report(out / "report.md", facts)
    say(
        f"results in {out}/ ({facts['wall_s']:.0f} s wall, {facts['cpu_s']:.0f} s CPU, load "
        f"{facts['load'][0]:.1f} -> {facts['load'][1]:.1f}): "
        + ", ".join(sorted(p.name for p in out.iterdir()))
    )
    return facts


def _load() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return float("nan")


def _run(out: Path, cfg, seed, use_npe, say) -> dict[str, Any]:
    import jax

    import inference as inf

    from ._report import calibration_text, describe, plots, stored_calibration, table

    keys = _keys(seed)
    n, n_samples = cfg["n_regions"], cfg["n_samples"]
    sim = default_subject(n, n_samples)
    weights = np.asarray(sim.network.connectome.weights)
    facts: dict[str, Any] = {"truth": dict(TRUTH), "settings": dict(cfg), "seed": seed}
    timer = _Timer(facts)
    steps = 5 if use_npe else 4

    with timer("data"):
        data = np.asarray(sim.run(keys["data"]).signal)
    np.save(out / "data.npy", data)
    say(
        f"[1/{steps}] subject: OU network on {n} regions, {n_samples} samples every "
        f"{PERIOD:g} ms (Raw); hidden truth "
        + ", ".join(f"{p} = {v:g}" for p, v in TRUTH.items())
        + f" ({timer.last:.0f} s)"
    )

    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=1) as pool:
        # failed simulations are counted in the report (set here, before the second thread)
        warnings.filterwarnings("ignore", message="simulate_bank: .* simulations failed")
        # NPE needs only the data: it runs in a second thread beside MAP and NUTS, whose time
        # is mostly XLA compilation on one core
        npe_job = (
            pool.submit(_npe, out, cfg, sim, weights, data, keys, jax, inf) if use_npe else None
        )
        post, fit_facts, check = _exact_route(out, cfg, sim, weights, data, keys, say, steps)
        facts["time_s"].update(fit_facts.pop("time_s"))
        facts.update(fit_facts)
        rows = {"NUTS": describe(post.samples)}
        estimator = sbc = tarp = None
        if npe_job is not None:
            estimator, rows["NPE"], sbc, tarp, npe_facts = npe_job.result()
            facts["time_s"].update(npe_facts.pop("time_s"))
            facts.update(npe_facts)
            bank = facts["bank"]
            say(
                f"[5/5] NPE ({facts['time_s']['npe']:.0f} s, beside MAP and NUTS): bank of "
                f"{bank['simulations']} ({bank['failed']} failed"
                + (
                    f", {bank['resumed']} resumed from {out / 'bank.npz'}"
                    if bank["resumed"]
                    else ""
                )
                + f"), {facts['npe_epochs']} epochs; SBC on {facts['sbc']['n']} held-out "
                "simulations: rank p = "
                + ", ".join(f"{v:.2f}" for v in facts["sbc"]["pvalues"].values())
                + f", TARP ATC = {facts['sbc']['tarp_atc']:+.3f}"
            )
    facts["rows"] = rows
    facts["stored_calibration"] = stored_calibration()

    import arviz as az

    with timer("plots"):
        plots(out, post, rows, facts, check, estimator, sbc, tarp, az)
    say(table(facts))
    say(calibration_text(facts))
    return facts


def _exact_route(out, cfg, sim, weights, data, keys, say, steps):
    """MAP, NUTS and the posterior predictive check on the exact likelihood."""
    import arviz as az
    import jax
    import jax.numpy as jnp

    import inference as inf

    from ._report import format_values

    facts: dict[str, Any] = {}
    timer = _Timer(facts)
    # Every region observed without noise: the state is known at each sample, so the
    # filter's predicted covariance is Q from the second sample on and the steady-state
    # path after 2 exact steps is exact.
    bmodel = inf.BayesianModel(
        sim, priors(), inf.likelihoods.StateSpace(initial="simulator", steady_after=2)
    )
    with timer("map"):
        # one chunk: one compilation of the optimiser's loop
        fit = inf.map_estimate(
            bmodel, data, keys["map"], num_starts=4, steps=cfg["map_steps"],
            chunk_size=cfg["map_steps"], progress=False,
        )  # fmt: skip
    facts["map"] = {p: float(fit.params[p]) for p in TRUTH}
    say(f"[2/{steps}] MAP ({timer.last:.0f} s): " + format_values(facts["map"]))

    with timer("nuts"):
        post = inf.nuts(
            bmodel,
            data,
            keys["nuts"],
            cfg["num_warmup"],
            cfg["num_samples"],
            cfg["num_chains"],
            init=dict(facts["map"]),
            dense_mass=True,
            progress=False,
            posterior_predictive=False,
        )
    post.save(out / "posterior_nuts.nc")
    facts["rhat"] = {p: float(az.rhat(post.samples[p])) for p in TRUTH}
    facts["ess"] = {p: float(az.ess(post.samples[p])) for p in TRUTH}
    facts["divergent"] = post.n_divergent
    say(
        f"[3/{steps}] NUTS ({timer.last:.0f} s): {cfg['num_chains']} chains x "
        f"({cfg['num_warmup']} + {cfg['num_samples']}), {post.n_divergent} divergent, "
        f"R-hat <= {max(facts['rhat'].values()):.3f}, bulk ESS >= "
        f"{min(facts['ess'].values()):.0f}"
    )

    # simulations at NUTS draws
    draws = jnp.asarray(np.stack([post.samples[p].reshape(-1) for p in TRUTH], axis=1))

    def from_posterior(key, m):
        return draws[jax.random.randint(key, (m,), 0, draws.shape[0])]

    stats = PPCStatistics(weights)
    with timer("ppc"):
        predictive = inf.simulate_bank(
            sim, priors(), stats, keys["ppc"], cfg["ppc"], proposal=from_posterior,
            chunk_size=cfg["ppc"], progress=False,
        )  # fmt: skip
    check = inf.diagnostics.ppc(np.asarray(stats(data)), predictive.x, list(stats.names))
    facts["ppc"] = {
        name: (float(check.observed[j]), float(check.pvalues[j]))
        for j, name in enumerate(stats.names)
    }
    facts["ppc_n"] = len(predictive)
    facts["ppc_failed"] = predictive.n_failed
    say(
        f"[4/{steps}] posterior predictive check ({timer.last:.0f} s, {len(predictive)} "
        "simulations at NUTS draws): "
        + ", ".join(f"{k} p = {p:.2f}" for k, (_, p) in facts["ppc"].items())
    )
    return post, facts, check


class _Timer:
    """`with timer(name):` records the block's wall seconds in `facts["time_s"][name]`."""

    def __init__(self, facts):
        self.wall = facts.setdefault("time_s", {})
        self.last = 0.0

    def __call__(self, name):
        timer = self

        class _Block:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.last = time.perf_counter() - self.t0
                timer.wall[name] = timer.last

        return _Block()


def _keys(seed: int) -> dict[str, Any]:
    """The run's `jax.random` keys, one per step, all from `seed`."""
    import jax

    names = ("data", "map", "nuts", "ppc", "bank", "train", "npe", "sbc")
    return dict(zip(names, jax.random.split(jax.random.key(seed), len(names)), strict=True))


def _bank(estimator: Any, key: Any, cfg: Mapping[str, int], path: Path) -> Any:
    """The NPE bank: `bank + sbc` prior simulations, kept in (and resumed from) `path`.

    Simulated in equal chunks of at most 500 (one compilation), so the bank holds
    `bank + sbc` simulations rounded up to a multiple of the chunk, by less than one per chunk.
    """
    total = cfg["bank"] + cfg["sbc"]
    chunk_size = -(-total // -(-total // 500))
    return estimator.simulate(key, total, chunk_size=chunk_size, checkpoint=path, progress=False)


def _npe(out, cfg, sim, weights, data, keys, jax, inf):
    """Bank, training, the subject's posterior, SBC and TARP on held-out simulations."""
    from ._report import describe

    t0 = time.perf_counter()
    path = out / "bank.npz"
    estimator = inf.NPE(sim, priors(), LagStatistics(weights), **NPE_FLOW)
    resumed = len(inf.SimulationBank.load(path)) if path.is_file() else 0
    bank = _bank(estimator, keys["bank"], cfg, path)
    # the last simulations are held out for the calibration (a resumed, larger bank keeps
    # its own order: its last `held` are still never trained on)
    held = min(cfg["sbc"], len(bank) // 4)
    train = dataclasses.replace(bank, theta=bank.theta[:-held], x=bank.x[:-held])
    estimator = estimator.train_on(
        train, keys["train"], max_epochs=cfg["epochs"], progress=False, **NPE_FIT
    )
    estimator.save(out / "npe.npz")
    npe_post = estimator.posterior(data).to_posterior(keys["npe"], NPE_DRAWS)
    npe_post.save(out / "posterior_npe.nc")
    # calibration: the amortized posterior of each held-out simulation, in one batch
    truths = bank.theta[-held:]
    batch = estimator.posterior(features=bank.x[-held:])
    k_draws, k_tarp = jax.random.split(keys["sbc"])
    samples = np.asarray(batch.sample_flat(k_draws, SBC_DRAWS))
    names = list(estimator.space.names)
    sbc = inf.diagnostics.sbc(samples, truths, names)
    tarp = inf.diagnostics.tarp(samples, truths, k_tarp)

    def coverage(level):
        return {p: float(c) for p, c in zip(names, sbc.coverage(level), strict=True)}

    facts = {
        "time_s": {"npe": time.perf_counter() - t0},
        "bank": {"simulations": len(bank), "failed": bank.n_failed, "resumed": resumed},
        "npe_epochs": estimator.info["epochs"],
        "sbc": {
            "n": held,
            "pvalues": {p: float(v) for p, v in zip(names, sbc.pvalues, strict=True)},
            "coverage50": coverage(0.5),
            "coverage90": coverage(0.9),
            "passed": bool(sbc.passed()),
            "tarp_atc": float(tarp.atc),
        },
    }
    return estimator, describe(npe_post.samples), sbc, tarp, facts
