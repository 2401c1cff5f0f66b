"""Bayesian inference benchmarks: NUTS (NumPyro and BlackJAX) and MAP through the model.

Case a (evoked response, deterministic ODE): a 4-source Jansen-Rit network
(`Connectome.synthetic(4, seed=0)`, sigmoidal coupling, no delays) at rest on
its stable fixed point (mu = 0.09/ms) is driven by a Gaussian input bump into
source L00 (`EvokedJansenRit`: the bump's height `stim`, peak time `onset` and
width `width` are parameters; a clock state variable carries the time), and
seen by 12 scalp electrodes through a homogeneous-sphere lead field (scaled to
a largest gain of 1, average reference), sampled every 2 ms from 60 to 300 ms.
Heun at dt = 1 ms. Data: the simulation at known parameters plus Gaussian
noise. Seven inferred parameters (DCM for ERP, Baldy et al. 2025, fits 10):
A, B, a (shared by the sources), G, the input's height and onset, and the
noise sigma (`likelihoods.TimeSeries(sigma=HalfNormal)`); b and the input's
width stay at their true values.

Case b (resting-state FC, linearised): a 68-region Ornstein-Uhlenbeck network
(`models.Linear`, `coupling.Linear`, additive noise, no delays) with one decay
rate lam per region; data: the FC of a 120 s simulation at known parameters;
`likelihoods.Linearized("fc")` (the exact Lyapunov covariance, no time
stepping). 68 + 2 inferred parameters: lam per region (LogNormal prior), G and
the Fisher-z noise sigma.

For each case: `map_estimate` wall time (first call, with compilation, and a
second, cached call), then `nuts` with both backends, initialised from the MAP
(draws from its Laplace approximation), run twice on the same data (the second
run reuses the compiled sampler). Per run: wall time, min and median bulk ESS
over every parameter (ArviZ), ESS per second, gradient evaluations (leapfrog
steps, summed over chains and post-warmup draws: `nuts` does not record the
warmup's) and their rate, divergences, largest R-hat, and how many 90 %
intervals cover the truth; case b adds the correlation of the per-region
posterior means with the true lam. A direct measurement of the log density's
gradient (single point, and one vmapped batch of the chains, as NUTS evaluates
it) tells what a gradient costs.

`--versus erp jr`: instead of cases a and b, NUTS against hand-written NumPyro models
(`peers/numpyro_handwritten.py`) of the DCM-ERP source of Baldy et al. (2025) and of
case a, on the same data: interleaved rounds, each tool in its own process with its own
persistent compilation cache (round 0 cold, later rounds warm), CPU time of the
inference, ESS-bulk (min) per CPU-second and its ratio to the hand-written model's,
R-hat, and the largest shift of a posterior mean in the reference's sd.

Usage:
    python benchmarks/inference.py [--case a b] [--quick] [--b-draws 200 200]
        [--dense-mass] [--json out.json]
    python benchmarks/inference.py --versus erp jr [--rounds 3] [--tools ...]
        [--warmup 200] [--samples 200] [--chains 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import ClassVar

# this file is named like the `inference` package: keep its folder off the import path
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import arviz as az  # noqa: E402
import brainunit as u  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402

import brainmass as bm  # noqa: E402
import inference as inf  # noqa: E402
from brainmass.leadfield import centres_in_sphere, eeg_sphere, standard_1020  # noqa: E402
from brainmass.models import param  # noqa: E402

BACKENDS = ("numpyro", "blackjax")
ELECTRODES = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "T7", "T8"]


# ----------------------------------------------------------------------------- case a: model


class EvokedJansenRit(bm.models.JansenRit):
    r"""Jansen-Rit columns driven by a Gaussian input bump (an evoked response).

    The input rate $u_i(t) = w_i\, s\, e^{-(t - t_0)^2 / 2 w_t^2}$ (1/ms) adds
    to the pyramidal cells' external input $\mu$ (the drive of $y_4$), as the
    stimulus in DCM for ERP. A seventh state variable `t` is a clock
    ($\dot t = 1$, start it at 0): the vector field stays autonomous, so any
    brainmass solver, monitor and transformation applies.
    """

    stim: float = param(0.1, unit=u.ms**-1, domain="nonnegative", doc="input bump height s")
    onset: float = param(100.0, unit=u.ms, domain="positive", doc="input peak time t0")
    width: float = param(8.0, unit=u.ms, domain="positive", doc="input bump width w_t (sd)")
    stim_weights: float = param(1.0, domain="nonnegative", doc="input weight w_i per source")

    state_variables: ClassVar[tuple[str, ...]] = ("y0", "y1", "y2", "y3", "y4", "y5", "t")
    initial_state: ClassVar[dict[str, float]] = {**bm.models.JansenRit.initial_state, "t": 0.0}

    def dfun(self, state, coupling):
        """Vector field; `state` `(7, n_regions)`, `coupling` `(1, n_regions)`, per ms."""
        base = super().dfun(state[:6], coupling)
        t = state[6]
        bump = self.stim * self.stim_weights * jnp.exp(-0.5 * ((t - self.onset) / self.width) ** 2)
        dy4 = base[4] + self.A * self.a * bump
        return jnp.concatenate([base[:4], dy4[None], base[5:], jnp.ones_like(t)[None]])


ERP_TRUE = {  # the parameters that made the data (canonical units: mV, 1/ms, ms)
    "model.A": 3.5,
    "model.B": 20.0,
    "model.a": 0.095,
    "coupling.G": 25.0,
    "model.stim": 0.09,
    "model.onset": 95.0,
}
ERP_SIGMA = 0.1  # observation noise sd, in the channels' unit
ERP_MU = 0.09  # 1/ms: below the alpha-oscillation range, a stable resting state
DT = 1.0  # ms, Heun


def erp_priors() -> dict:
    """Priors of case a: LogNormal around the Jansen-Rit defaults (not at the truth)."""
    ln = lambda median, sd: dist.LogNormal(math.log(median), sd)  # noqa: E731
    return {
        "model.A": ln(3.25, 0.15),
        "model.B": ln(22.0, 0.15),
        "model.a": ln(0.1, 0.15),
        "coupling.G": ln(20.0, 0.3),
        "model.stim": ln(0.08, 0.25),
        "model.onset": ln(100.0, 0.1),
    }


def erp_problem(key) -> tuple[bm.Simulator, np.ndarray, dict]:
    """The case a simulator (started on the resting state), the data and the truth.

    **Arguments:**

    - `key`: a `jax.random` key for the observation noise.

    **Returns:** `(sim, data (n_samples, 12), truth {site: value})`.
    """
    conn = bm.Connectome.synthetic(4, seed=0)
    names, positions = standard_1020(ELECTRODES)
    lf = np.asarray(eeg_sphere(centres_in_sphere(conn.centres), None, positions))
    lf = lf / np.abs(lf).max()  # gains up to 1: the channels are in mV of source potential
    weights = np.array([1.0, 0.0, 0.0, 0.0])  # the input enters source L00

    def network(stim):
        model = EvokedJansenRit(mu=ERP_MU, stim=stim, stim_weights=weights)
        return bm.Network(model, conn, coupling=bm.coupling.Sigmoidal(G=1.0))

    rest = bm.Simulator(network(0.0), dt=DT, duration=3000.0, monitor=bm.monitors.Raw(10.0))
    rest = rest.with_params({k: v for k, v in ERP_TRUE.items() if k != "model.stim"})
    init = np.array(rest.run().final_state)
    init[6] = 0.0  # the clock starts at 0
    monitor = bm.monitors.EEG(lf, period=2.0, transient=60.0, sensor_names=names)
    sim = bm.Simulator(network(0.1), dt=DT, duration=300.0, monitor=monitor, init=init)
    clean = np.asarray(sim.with_params(ERP_TRUE).run().signal)
    data = clean + ERP_SIGMA * np.asarray(jax.random.normal(key, clean.shape))
    truth = {**ERP_TRUE, "likelihood.sigma": ERP_SIGMA}
    return sim, data, truth


# ----------------------------------------------------------------------------- case b: model


def fc_problem(n_regions: int, duration_ms: float, key) -> tuple[bm.Simulator, np.ndarray, dict]:
    """The case b simulator (an OU network), its simulated signal and the truth.

    The decay rates are `0.1 * exp(0.3 z)`/ms (z standard normal, seed 1) and
    G is 70 % of the value where the network loses stability.

    **Arguments:**

    - `n_regions`: regions of `Connectome.synthetic(n_regions, seed=0)`.
    - `duration_ms`: simulated time (ms); the signal is sampled every 20 ms.
    - `key`: the `jax.random` key of the simulation's noise.

    **Returns:** `(sim, data (n_samples, n_regions), truth {site: value})`.
    """
    conn = bm.Connectome.synthetic(n_regions, seed=0)
    lam = 0.1 * np.exp(0.3 * np.random.default_rng(1).standard_normal(n_regions))
    w = np.asarray(conn.weights, dtype=float)

    def abscissa(g):
        return np.max(np.linalg.eigvals(-np.diag(lam) + g * w).real)

    lo, hi = 0.0, 1.0
    for _ in range(50):  # bisection for the critical coupling
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if abscissa(mid) < 0 else (lo, mid)
    g_true = 0.7 * lo
    net = bm.Network(
        bm.models.Linear(lam=lam),
        conn,
        coupling=bm.coupling.Linear(G=g_true),
        noise=bm.noise.Additive(sigma=0.01),
    )
    sim = bm.Simulator(net, dt=0.5, duration=duration_ms, monitor=bm.monitors.Raw(20.0))
    data = np.asarray(sim.run(key).signal)
    return sim, data, {"model.lam": lam.astype(np.float32), "coupling.G": np.float32(g_true)}


def fc_priors(n_regions: int, g_true: float) -> dict:
    """Priors of case b: lam per region LogNormal(log 0.1, 0.5); G LogNormal around 0.7 G_true."""
    return {
        "model.lam": dist.LogNormal(math.log(0.1), 0.5).expand([n_regions]),
        "coupling.G": dist.LogNormal(math.log(0.7 * g_true), 0.5),
    }


# ----------------------------------------------------------------------------- measuring


def timed_map(bmodel, data, steps: int, learning_rate: float) -> tuple[inf.MAPResult, dict]:
    """`map_estimate` twice (compiling, then cached): the second result and both wall times.

    The optimiser is Adam with a cosine-decayed learning rate (from
    `learning_rate` to 0 over `steps`), 4 starts (the priors' medians and 3
    prior draws), one vmapped loop.
    """
    import optax

    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
    fits = [
        inf.map_estimate(
            bmodel, data, jax.random.key(1), steps=steps, optimizer=opt, progress=False
        )
        for _ in range(2)
    ]
    return fits[1], {"first_s": fits[0].wall_time, "second_s": fits[1].wall_time}


def gradient_rate(bmodel, data, z, n_chains: int, repeats: int = 20) -> dict:
    """Evaluations per second of the log density's value and gradient (compiled).

    **Arguments:**

    - `z`: `(n_chains, d)` flat unconstrained points (where NUTS starts).
    - `n_chains`: the batch of one vmapped evaluation (as NUTS runs chains).

    **Returns:** `{"single_per_s", "batch_per_s"}`: point evaluations per
    second, one point at a time and in vmapped batches of `n_chains` (each
    batch counts `n_chains` evaluations).
    """
    ld = bmodel.logdensity(data)
    data_j = jnp.asarray(data)
    single = jax.jit(jax.value_and_grad(ld.fn_data))
    batch = jax.jit(jax.vmap(jax.value_and_grad(ld.fn_data), (0, None)))
    out = {}
    for name, fn, arg, count in (
        ("single_per_s", single, z[0], 1),
        ("batch_per_s", batch, z[:n_chains], n_chains),
    ):
        jax.block_until_ready(fn(arg, data_j))
        t0 = time.perf_counter()
        for _ in range(repeats):
            jax.block_until_ready(fn(arg, data_j))
        out[name] = count * repeats / (time.perf_counter() - t0)
    return out


def summarise(post: inf.Posterior, truth: dict, wall: float) -> dict:
    """The figures of one NUTS run.

    **Arguments:**

    - `post`: the `Posterior`.
    - `truth`: `{site: true value}` (sites without a truth are skipped in the
      coverage count).
    - `wall`: the run's wall time (s).

    **Returns:** a dict: wall time, min/median bulk ESS over every scalar
    parameter, min ESS per second, gradient evaluations (post-warmup leapfrog
    steps summed over chains and draws) and per second, mean leapfrog steps
    per draw, divergences, largest R-hat, intervals covering the truth.
    """
    tree = post.to_arviz()
    ess = az.ess(tree, method="bulk")
    rhat = az.rhat(tree)
    sites = list(post.samples)
    ess_all = np.concatenate([np.ravel(np.asarray(ess[s])) for s in sites])
    rhat_all = np.concatenate([np.ravel(np.asarray(rhat[s])) for s in sites])
    intervals = post.interval(0.9)
    covered = total = 0
    for site, value in truth.items():
        lo, hi = (np.asarray(b) for b in intervals[site])
        inside = (lo <= value) & (value <= hi)
        covered += int(np.sum(inside))
        total += int(np.size(inside))
    n_steps = np.asarray(post.sample_stats["n_steps"])
    grads = int(n_steps.sum())
    return {
        "wall_s": wall,
        "ess_min": float(ess_all.min()),
        "ess_median": float(np.median(ess_all)),
        "ess_min_per_s": float(ess_all.min()) / wall,
        "gradients": grads,
        "gradients_per_s": grads / wall,
        "steps_per_draw": float(n_steps.mean()),
        "divergent": post.n_divergent,
        "rhat_max": float(rhat_all.max()),
        "covered": covered,
        "n_covered_of": total,
    }


def run_nuts(bmodel, data, fit, truth: dict, settings: dict, extra=None) -> dict:
    """NUTS with both backends from the MAP, twice each on the same data.

    **Arguments:**

    - `fit`: the `MAPResult` the chains start from (Laplace draws around it).
    - `truth`: `{site: true value}`.
    - `settings`: keyword arguments of `nuts` (`num_warmup`, `num_samples`,
      `num_chains`, ...).
    - `extra`: optional `(posterior) -> {name: number}`, more figures per run.

    **Returns:** `{"init": how the chains started, backend: {"first": figures,
    "second": figures}}` (figures as `summarise`, plus `extra`'s).
    """
    t0 = time.perf_counter()
    try:  # draws from the Laplace approximation at the MAP, when the Hessian there is definite
        fit.laplace_points(jax.random.key(0), 1)
        init, how = fit, "Laplace draws at the MAP"
    except RuntimeError:  # not converged: the MAP itself, jittered
        latent = bmodel.latent_sites()
        init, how = {k: v for k, v in fit.params.items() if k in latent}, "the MAP, jittered"
    hessian_s = time.perf_counter() - t0
    print(f"NUTS starts from {how} (Hessian at the MAP: {hessian_s:.1f} s)", flush=True)
    out = {"init": how, "hessian_s": hessian_s}
    for backend in BACKENDS:
        runs = {}
        for run, key in (("first", 2), ("second", 3)):
            t0 = time.perf_counter()
            post = inf.nuts(
                bmodel,
                data,
                jax.random.key(key),
                backend=backend,
                init=init,
                progress=False,
                posterior_predictive=False,
                **settings,
            )
            r = summarise(post, truth, time.perf_counter() - t0)
            if extra is not None:
                r.update(extra(post))
            runs[run] = r
            print(
                f"  {backend:8s} {run:6s} run: {r['wall_s']:6.1f} s, ESS min {r['ess_min']:.0f}, "
                f"{r['gradients']} gradients, {r['divergent']} divergent",
                flush=True,
            )
        out[backend] = runs
    return out


def print_table(rows: dict, extra: str | None = None) -> None:
    """The per-backend, per-run table of `run_nuts` results."""
    head = (
        f"{'backend':8s} {'run':6s} {'wall s':>7s} {'ESS min':>7s} {'ESS med':>7s} "
        f"{'ESS/s':>6s} {'grads':>7s} {'grads/s':>7s} {'steps/draw':>10s} {'div':>4s} "
        f"{'R-hat max':>9s} {'90% cover':>9s}"
    )
    if extra:
        head += f" {extra:>10s}"
    print(head)
    for backend in BACKENDS:
        runs = rows[backend]
        for run in ("first", "second"):
            r = runs[run]
            line = (
                f"{backend:8s} {run:6s} {r['wall_s']:7.1f} {r['ess_min']:7.0f} "
                f"{r['ess_median']:7.0f} {r['ess_min_per_s']:6.2f} {r['gradients']:7d} "
                f"{r['gradients_per_s']:7.0f} {r['steps_per_draw']:10.1f} {r['divergent']:4d} "
                f"{r['rhat_max']:9.3f} {r['covered']:>4d}/{r['n_covered_of']:<4d}"
            )
            if extra:
                line += f" {r.get(extra, float('nan')):10.3f}"
            print(line)


# ----------------------------------------------------------------------------- the cases


def _map_report(fit: inf.MAPResult, truth: dict, times: dict) -> dict:
    """Print the MAP's wall times and its error against the truth; return them."""
    print(
        f"MAP (adam, cosine-decayed rate, 4 starts): {times['first_s']:.1f} s first call "
        f"(with compilation), {times['second_s']:.1f} s second call; log density "
        f"{fit.log_density:.1f}, {fit.n_failed} failed evaluations"
    )
    errors = {}
    for site, value in truth.items():
        est = np.asarray(fit.params[site])
        errors[site] = float(np.max(np.abs(est - value) / np.abs(value)))
        if np.ndim(value) == 0:
            print(f"  {site:18s} true {float(value):9.4g}  MAP {float(est):9.4g}")
        else:
            corr = float(np.corrcoef(est, value)[0, 1])
            print(f"  {site:18s} {np.size(value)} values: correlation of MAP with truth {corr:.3f}")
            errors[site + " corr"] = corr
    return {**times, "log_density": fit.log_density, "relative_error": errors}


def _gradient_report(rates: dict, n_chains: int) -> None:
    print(
        f"log density + gradient, compiled: {rates['single_per_s']:.0f}/s one point at a time, "
        f"{rates['batch_per_s']:.0f}/s in vmapped batches of {n_chains} (as NUTS runs chains)"
    )


def map_and_gradients(bmodel, data, truth, map_steps, chains, warmup, samples, args):
    """MAP (timed, reported), the log density's gradient rate near it, and the NUTS settings.

    **Returns:** `(fit, out, settings)`: the `MAPResult`, the report so far
    `{"map", "gradient_rate"}`, and keyword arguments for `nuts` (chunks of 100 draws; tree
    depth at most 5 in the quick run; a dense mass matrix with `--dense-mass`).
    """
    fit, times = timed_map(bmodel, data, map_steps, 0.05)
    out = {"map": _map_report(fit, truth, times)}
    z = jnp.asarray(fit.z)[None] + 0.01 * jax.random.normal(jax.random.key(5), (chains, fit.z.size))
    out["gradient_rate"] = gradient_rate(bmodel, data, z, chains)
    _gradient_report(out["gradient_rate"], chains)
    settings = dict(
        num_warmup=warmup,
        num_samples=samples,
        num_chains=chains,
        chunk_size=100,
        dense_mass=args.dense_mass,
    )
    if args.quick:
        settings["max_tree_depth"] = 5  # at most 31 leapfrog steps a draw
    return fit, out, settings


def run_case_a(args) -> dict:
    """Case a: the Jansen-Rit evoked response through an EEG lead field (see the module doc)."""
    chains, warmup, samples = (2, 20, 20) if args.quick else (4, 200, 200)
    map_steps = 200 if args.quick else 1500
    sim, data, truth = erp_problem(jax.random.key(0))
    priors = erp_priors()
    bmodel = inf.BayesianModel(sim, priors, inf.likelihoods.TimeSeries(sigma=dist.HalfNormal(0.2)))
    n_par = bmodel.logdensity(data).size
    print(
        f"\nCase a: Jansen-Rit evoked response, {sim.network.n_regions} sources, "
        f"{data.shape[1]} EEG channels x {data.shape[0]} samples, {n_par} parameters "
        f"({', '.join(bmodel.latent_sites())}); {sim.n_steps} Heun steps of {DT:g} ms; NUTS "
        f"{chains} chains x ({warmup} + {samples})",
        flush=True,
    )
    fit, out, settings = map_and_gradients(
        bmodel, data, truth, map_steps, chains, warmup, samples, args
    )
    out["n_parameters"] = n_par
    rows = run_nuts(bmodel, data, fit, truth, settings)
    print_table(rows)
    out["nuts"] = rows
    if not args.quick:
        first = rows["numpyro"]["first"]["wall_s"]
        second = rows["numpyro"]["second"]["wall_s"]
        print(
            f"Reference: Baldy et al. 2025 (J R Soc Interface), DCM for ERP in NumPyro, 10 "
            f"parameters, 4 x (200 + 200): about 55 s on their machine; here {n_par} "
            f"parameters, NumPyro backend: {first:.0f} s first run, {second:.0f} s second run "
            "(another machine and model: an order of magnitude, not a ratio)"
        )
    return out


def run_case_b(args) -> dict:
    """Case b: per-region decay rates of an OU network from FC, linearised likelihood."""
    n = 16 if args.quick else 68
    duration = 30_000.0 if args.quick else 120_000.0
    chains, warmup, samples = (2, 20, 20) if args.quick else (2, *args.b_draws)
    map_steps = 200 if args.quick else 1000
    t0 = time.perf_counter()
    sim, data, truth = fc_problem(n, duration, jax.random.key(0))
    sim_s = time.perf_counter() - t0
    bmodel = inf.BayesianModel(
        sim,
        fc_priors(n, float(truth["coupling.G"])),
        inf.likelihoods.Linearized("fc"),
    )
    density = bmodel.logdensity(data)
    n_par = sum(int(np.size(v)) for v in density.constrain(density.init).values())
    print(
        f"\nCase b: OU network, {n} regions, FC of {duration / 1000:g} s ({data.shape[0]} "
        f"samples, simulated in {sim_s:.1f} s); G = {float(truth['coupling.G']):.4f} (70 % of "
        f"critical); Linearized('fc'), {n_par} parameters; NUTS {chains} chains x ({warmup} + "
        f"{samples})",
        flush=True,
    )
    fit, out, settings = map_and_gradients(
        bmodel, data, truth, map_steps, chains, warmup, samples, args
    )
    out.update(n_parameters=n_par, n_regions=n)

    def lam_corr(post):
        mean = post.mean()["model.lam"]
        return {"lam_corr": float(np.corrcoef(mean, truth["model.lam"])[0, 1])}

    rows = run_nuts(bmodel, data, fit, truth, settings, extra=lam_corr)
    print_table(rows, extra="lam_corr")
    print("(lam_corr: correlation of the per-region posterior means with the true lam)")
    out["nuts"] = rows
    return out


# ----------------------------------------------------------------------------- versus NumPyro

HANDWRITTEN = HERE / "peers" / "numpyro_handwritten.py"
# hand-written NumPyro (its own start; started at the truth), brainmass with either backend
VERSUS_TOOLS = ("handwritten", "handwritten_oracle", "numpyro", "blackjax")
TOOL_LABEL = {
    "handwritten": "NumPyro, hand-written",
    "handwritten_oracle": "NumPyro, hand-written, at truth",
    "numpyro": "brainmass, NumPyro backend",
    "blackjax": "brainmass, BlackJAX backend",
}


class DCMERPSource(bm.models.AbstractNeuralMass):
    r"""One source of DCM for ERP as in Baldy et al. (2025): nine states, a constant input.

    $$
    \begin{aligned}
    \dot x_0 &= x_3, & \dot x_3 &= \big(h_e (g_1 S(x_8, x_4 - x_5) + u) - x_0/\tau_e
        - 2 x_3\big)/\tau_e, \\
    \dot x_1 &= x_4, & \dot x_4 &= \big(h_e\, g_2 S(x_0, x_3) - x_1/\tau_e - 2 x_4\big)/\tau_e, \\
    \dot x_2 &= x_5, & \dot x_5 &= \big(h_i\, g_4 S(x_6, x_7) - x_2/\tau_i - 2 x_5\big)/\tau_i, \\
    \dot x_6 &= x_7, & \dot x_7 &= \big(h_e\, g_3 S(x_8, x_4 - x_5) - x_6/\tau_e
        - 2 x_7\big)/\tau_e, \\
    \dot x_8 &= x_4 - x_5, &
    S(v, \dot v) &= \frac{1}{1 + e^{-r (v - \delta \dot v)}} - \frac12 .
    \end{aligned}
    $$

    x8 (the pyramidal potential, mV) is observed. Baldy, Woodman, Jirsa & Hashemi (2025),
    "Dynamic causal modelling in probabilistic programming languages", J R Soc Interface
    22:20240880 (their ten parameters and priors; `u` is `drive` here). A model of one's own,
    defined in the benchmark: what a user writes to bring a published model to brainmass.
    """

    g_1: float = param(0.42, domain="positive", doc="connectivity g1 (pyramidal to stellate)")
    g_2: float = param(0.76, domain="positive", doc="connectivity g2 (stellate to pyramidal)")
    g_3: float = param(0.15, domain="positive", doc="connectivity g3 (pyramidal to inhibitory)")
    g_4: float = param(0.16, domain="positive", doc="connectivity g4 (inhibitory to pyramidal)")
    delta: float = param(12.13, unit=u.ms, domain="positive", doc="the sigmoid's rate weight")
    tau_i: float = param(7.77, unit=u.ms, domain="positive", doc="inhibitory time constant")
    h_i: float = param(27.87, unit=u.mV, domain="positive", doc="inhibitory synaptic gain")
    tau_e: float = param(5.77, unit=u.ms, domain="positive", doc="excitatory time constant")
    h_e: float = param(1.63, unit=u.mV, domain="positive", doc="excitatory synaptic gain")
    drive: float = param(3.94, domain="nonnegative", doc="constant input u")
    r: float = param(0.56, unit=u.mV**-1, domain="positive", doc="sigmoid steepness")

    state_variables: ClassVar[tuple[str, ...]] = tuple(f"x{i}" for i in range(9))
    coupled_variables: ClassVar[tuple[str, ...]] = ("x8",)
    observable: ClassVar[str] = "x8"
    initial_state: ClassVar[dict[str, float]] = {f"x{i}": 0.0 for i in range(9)}

    def rate(self, v, dv):
        """The sigmoid $S(v, \\dot v)$ (dimensionless, in (-1/2, 1/2))."""
        return 1.0 / (1.0 + jnp.exp(-self.r * (v - self.delta * dv))) - 0.5

    def dfun(self, state, coupling):
        """Vector field; `state` `(9, n_regions)`, per ms (no coupling: one source)."""
        x0, x1, x2, x3, x4, x5, x6, x7, x8 = state
        te, ti, he = self.tau_e, self.tau_i, self.h_e
        out8 = self.rate(x8, x4 - x5)
        dx3 = (he * (self.g_1 * out8 + self.drive) - x0 / te - 2.0 * x3) / te
        dx4 = (he * self.g_2 * self.rate(x0, x3) - x1 / te - 2.0 * x4) / te
        dx5 = (self.h_i * self.g_4 * self.rate(x6, x7) - x2 / ti - 2.0 * x5) / ti
        dx7 = (he * self.g_3 * out8 - x6 / te - 2.0 * x7) / te
        return jnp.stack([x3, x4, x5, dx3, dx4, dx5, x7, dx7, x4 - x5])


# the published truth, priors (Gamma shape, scale) and noise; sites as in the hand-written model
SOURCE_SITES = ("g_1", "g_2", "g_3", "g_4", "delta", "tau_i", "h_i", "tau_e", "h_e", "drive")
SOURCE_TRUE = (0.42, 0.76, 0.15, 0.16, 12.13, 7.77, 27.87, 5.77, 1.63, 3.94)
SOURCE_SHAPE = (18.16, 29.9, 29.14, 30.77, 22.87, 34.67, 20.44, 33.02, 24.17, 23.62)
SOURCE_SCALE = (0.03, 0.02, 0.005, 0.007, 0.51, 0.23, 0.96, 0.16, 0.07, 0.13)
SOURCE_SIGMA = 0.1


def source_simulator() -> bm.Simulator:
    """DCM-ERP source: Euler, dt 0.1 ms, 200 ms from rest, x8 every 1 ms with t = 0."""
    return bm.Simulator(
        bm.Network(DCMERPSource()),
        dt=0.1,
        duration=200.0,
        solver=bm.solvers.Euler(),
        monitor=bm.monitors.Raw(1.0, initial=True),
    )


def source_bmodel(sim) -> inf.BayesianModel:
    """The source problem's priors (Gamma, the published shapes and scales); sigma known."""
    priors = {
        f"model.{name}": dist.Gamma(shape, 1.0 / scale)
        for name, shape, scale in zip(SOURCE_SITES, SOURCE_SHAPE, SOURCE_SCALE, strict=True)
    }
    return inf.BayesianModel(sim, priors, inf.likelihoods.TimeSeries(sigma=SOURCE_SIGMA))


def jr_bmodel(sim) -> inf.BayesianModel:
    """Case a's priors and likelihood (as `run_case_a`)."""
    return inf.BayesianModel(
        sim, erp_priors(), inf.likelihoods.TimeSeries(sigma=dist.HalfNormal(0.2))
    )


# hand-written site name -> brainmass site
VERSUS_SITES = {
    "erp": {("u" if name == "drive" else name): f"model.{name}" for name in SOURCE_SITES},
    "jr": {
        "A": "model.A",
        "B": "model.B",
        "a": "model.a",
        "G": "coupling.G",
        "stim": "model.stim",
        "onset": "model.onset",
        "sigma": "likelihood.sigma",
    },
}


def versus_inputs(problem: str) -> tuple[dict, np.ndarray, dict]:
    """One problem's input for both tools: `(npz arrays, brainmass's clean signal, truth)`.

    The arrays hold the data and everything the hand-written model needs (the JR case's
    connectome weights, referenced lead field, resting state and fixed parameters, taken
    from the brainmass simulator so both tools see the same input).
    """
    if problem == "erp":
        sim = source_simulator()
        truth = dict(zip(VERSUS_SITES["erp"], SOURCE_TRUE, strict=True))
        clean = np.asarray(sim.run().signal)
        noise = np.random.default_rng(0).standard_normal(clean.shape)
        arrays = {"data": clean + SOURCE_SIGMA * noise}
        return {**arrays, **{f"truth_{k}": v for k, v in truth.items()}}, clean, truth
    sim, data, truth_bm = erp_problem(jax.random.key(0))
    clean = np.asarray(sim.with_params(ERP_TRUE).run().signal)
    m, c, mon = sim.network.model, sim.network.coupling, sim.monitor
    fixed = {k: float(getattr(m, k)) for k in ("b", "J", "nu_max", "r", "v0", "mu", "width")}
    fixed.update({k: float(getattr(m, k)) for k in ("a_1", "a_2", "a_3", "a_4")})
    arrays = {
        "data": data,
        "weights": np.asarray(sim.network.connectome.weights),
        "leadfield": np.asarray(mon.leadfield),
        "init": np.asarray(sim.init)[:6],
        "stim_weights": np.asarray(m.stim_weights),
        "cmax": float(c.cmax),
        "c_r": float(c.r),
        "c_v0": float(c.midpoint),
        "dt": DT,
        "n_steps": sim.n_steps,
        "every": int(round(mon.period / DT)),
        "skip": int(round(mon.transient / mon.period)),
        **fixed,
    }
    truth = {hw: truth_bm[bm_site] for hw, bm_site in VERSUS_SITES["jr"].items()}
    return {**arrays, **{f"truth_{k}": v for k, v in truth.items()}}, clean, truth


def _handwritten():
    """The hand-written runner, imported as a module (it imports no brainmass)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("numpyro_handwritten", HANDWRITTEN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_same_forward(problem: str, arrays: dict, clean: np.ndarray, truth: dict) -> float:
    """Largest |hand-written forward - brainmass signal| at the truth, relative to the peak."""
    hw = _handwritten()
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"versus_check_{os.getpid()}.npz"
    np.savez(path, **arrays)
    consts = hw.load_consts(path)
    path.unlink()
    if problem == "erp":
        theta = jnp.asarray(list(truth.values()))
        out = np.asarray(jax.jit(hw.erp_forward)(theta))[:, None]
    else:
        p = {k: jnp.asarray(v, jnp.float32) for k, v in truth.items() if k != "sigma"}
        out = np.asarray(jax.jit(lambda p: hw.jr_forward(p, consts))(p))
    if out.shape != clean.shape:
        raise RuntimeError(f"{problem}: hand-written shape {out.shape} != {clean.shape}")
    return float(np.max(np.abs(out - clean)) / np.max(np.abs(clean)))


def versus_worker(args) -> int:
    """One brainmass run of the comparison (own process): timed model building + `nuts`."""
    jax.config.update("jax_compilation_cache_dir", args.cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    problem, backend = args.worker
    with np.load(args.data) as f:
        arrays = {k: f[k] for k in f.files}
    if problem == "jr":  # the simulator's resting state is data preparation: not timed
        sim0, _, _ = erp_problem(jax.random.key(0))
    c0, t0 = time.process_time(), time.perf_counter()
    if problem == "erp":
        bmodel = source_bmodel(source_simulator())
    else:
        bmodel = jr_bmodel(sim0)
    post = inf.nuts(
        bmodel,
        arrays["data"],
        jax.random.key(args.seed),
        backend=backend,
        num_warmup=args.warmup,
        num_samples=args.samples,
        num_chains=args.chains,
        progress=False,
        posterior_predictive=False,
    )
    draws = {hw: np.asarray(post.samples[site]) for hw, site in VERSUS_SITES[problem].items()}
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    n_steps = np.asarray(post.sample_stats["n_steps"])
    np.savez(args.out, **draws, num_steps=n_steps)
    info = post.info.get("init", {})
    print(
        json.dumps(
            {
                "tool": backend,
                "problem": problem,
                "cpu_s": cpu,
                "wall_s": wall,
                "steps_per_draw": float(n_steps.mean()),
                "divergences": int(post.n_divergent),
                "map_steps": info.get("map_steps"),
            }
        )
    )
    return 0


def _run_tool(tool, problem, data_path, cache, seed, draws) -> dict:
    """One run in its own process: JSON figures + the draws it saved, CPU of the process."""
    import resource
    import subprocess
    import tempfile

    out = Path(tempfile.mkstemp(suffix=".npz")[1])
    warmup, samples, chains = draws
    common = ["--warmup", str(warmup), "--samples", str(samples), "--chains", str(chains)]
    common += ["--seed", str(seed)]
    if tool.startswith("handwritten"):
        cmd = [sys.executable, str(HANDWRITTEN), problem, str(data_path), str(out), *common]
        cmd += ["--cache", str(cache)] + (["--oracle"] if tool.endswith("oracle") else [])
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", problem, tool]
        cmd += ["--data", str(data_path), "--out", str(out), "--cache", str(cache), *common]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{tool} on {problem} failed:\n{proc.stderr[-3000:]}")
    r = json.loads(lines[-1])
    r["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r["load_1m"] = load
    with np.load(out) as f:
        r["draws"] = {k: f[k] for k in f.files if k not in ("num_steps", "diverging")}
    out.unlink()
    return r


def _figures(r: dict) -> dict:
    """ESS (bulk, min over parameters), R-hat (max) and ESS per CPU-second of one run."""
    ess = {k: float(az.ess(v, method="bulk")) for k, v in r["draws"].items()}
    rhat = {k: float(az.rhat(v)) for k, v in r["draws"].items()}
    worst = min(ess, key=ess.get)
    return {
        "ess_min": ess[worst],
        "ess_min_site": worst,
        "rhat_max": max(rhat.values()),
        "ess_per_cpu_s": ess[worst] / r["cpu_s"],
    }


def _spread(values) -> str:
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return f"{values[0]:.3g}"
    return f"{np.median(values):.3g} [{values.min():.3g}-{values.max():.3g}]"


def _ratios(figs: list, ref: list | None, idx: list) -> list:
    """ESS/CPU-s of a tool over a reference's (`_figures` per round), round by round.

    NaN without the reference.
    """
    if not ref:
        return [float("nan")]
    return [figs[i]["ess_per_cpu_s"] / ref[i]["ess_per_cpu_s"] for i in idx]


def versus_report(problem: str, runs: dict) -> dict:
    """Per tool: cold (round 0) and warm (later rounds) figures, ratios, posterior agreement.

    Ratios: ESS-bulk (min over parameters) per CPU-second over the hand-written model's
    (its own start, "x hand"; started at the truth, "x oracle"), same round. `shift/sd`:
    the largest |posterior mean - reference mean| / reference sd over the parameters, the
    reference being the hand-written model started at the truth (pooled over rounds).
    """
    figures = {tool: [_figures(r) for r in rs] for tool, rs in runs.items()}
    hand, oracle = figures.get("handwritten"), figures.get("handwritten_oracle")
    ref = runs.get("handwritten_oracle") or runs.get("handwritten") or next(iter(runs.values()))
    pooled = {k: np.concatenate([r["draws"][k].ravel() for r in ref]) for k in ref[0]["draws"]}
    out = {}
    print(
        f"\n{problem}: {'tool':31s} {'cache':5s} {'CPU s':>14s} {'wall s':>14s} "
        f"{'ESS min':>14s} {'ESS/CPU-s':>14s} {'x hand':>14s} {'x oracle':>14s} {'steps':>5s} "
        f"{'R-hat':>6s} {'shift/sd':>8s}"
    )
    for tool, rs in runs.items():
        figs = figures[tool]
        shift = max(
            float(abs(np.mean(mine) - np.mean(pooled[k])) / np.std(pooled[k]))
            for k in pooled
            for mine in [np.concatenate([r["draws"][k].ravel() for r in rs])]
        )
        out[tool] = {"runs": [{**_strip(r), **f} for r, f in zip(rs, figs, strict=True)]}
        out[tool]["mean_shift_sd"] = shift
        for phase, idx in (("cold", [0]), ("warm", list(range(1, len(rs))))):
            if not idx:
                continue
            x_hand, x_oracle = _ratios(figs, hand, idx), _ratios(figs, oracle, idx)
            out[tool][phase] = {"x_hand": x_hand, "x_oracle": x_oracle}
            print(
                f"{'':5s} {TOOL_LABEL[tool]:31s} {phase:5s} "
                f"{_spread([rs[i]['cpu_s'] for i in idx]):>14s} "
                f"{_spread([rs[i]['wall_s'] for i in idx]):>14s} "
                f"{_spread([figs[i]['ess_min'] for i in idx]):>14s} "
                f"{_spread([figs[i]['ess_per_cpu_s'] for i in idx]):>14s} "
                f"{_spread(x_hand):>14s} {_spread(x_oracle):>14s} "
                f"{np.mean([rs[i]['steps_per_draw'] for i in idx]):5.0f} "
                f"{max(figs[i]['rhat_max'] for i in idx):6.3f} {shift:8.2f}"
            )
    return out


def _strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "draws"}


def run_versus(args) -> dict:
    """Interleaved rounds of the hand-written NumPyro model and brainmass, own processes."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="versus_"))
    draws = (args.warmup, args.samples, args.chains)
    out = {"rounds": args.rounds, "draws": draws}
    for problem in args.versus:
        arrays, clean, truth = versus_inputs(problem)
        gap = check_same_forward(problem, arrays, clean, truth)
        print(
            f"\n{problem}: hand-written forward vs brainmass at the truth: largest difference "
            f"{gap:.1e} of the peak",
            flush=True,
        )
        if gap > 1e-4:
            raise RuntimeError(f"{problem}: the two models differ ({gap:.1e}); not comparable")
        data_path = work / f"{problem}.npz"
        np.savez(data_path, **arrays)
        runs = {tool: [] for tool in args.tools}
        for k in range(args.rounds):
            order = args.tools[k % len(args.tools) :] + args.tools[: k % len(args.tools)]
            for tool in order:  # each tool keeps its own persistent compilation cache
                r = _run_tool(tool, problem, data_path, work / f"cache_{tool}_{problem}", k, draws)
                f = _figures(r)
                print(
                    f"  round {k} {TOOL_LABEL[tool]:28s} CPU {r['cpu_s']:6.1f} s, wall "
                    f"{r['wall_s']:6.1f} s (process CPU {r['process_cpu_s']:.1f} s, load "
                    f"{r['load_1m']:.2f}); ESS min {f['ess_min']:.0f} ({f['ess_min_site']}), "
                    f"R-hat max {f['rhat_max']:.3f}, {r['steps_per_draw']:.0f} steps a draw",
                    flush=True,
                )
                runs[tool].append(r)
        out[problem] = versus_report(problem, runs)
        out[problem]["forward_gap"] = gap
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", default=["a", "b"], choices=["a", "b"])
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks that it runs")
    parser.add_argument(
        "--b-draws",
        type=int,
        nargs=2,
        default=[200, 200],
        metavar=("WARMUP", "SAMPLES"),
        help="case b: NUTS warmup and sampling iterations per chain (full settings)",
    )
    parser.add_argument(
        "--dense-mass",
        action="store_true",
        help="NUTS adapts a dense mass matrix (nuts(..., dense_mass=True)) instead of a diagonal",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--versus",
        nargs="+",
        choices=["erp", "jr"],
        default=None,
        help="the NUTS comparison with hand-written NumPyro models instead of cases a/b",
    )
    parser.add_argument("--rounds", type=int, default=3, help="--versus: interleaved rounds")
    parser.add_argument("--tools", nargs="+", default=list(VERSUS_TOOLS), choices=VERSUS_TOOLS)
    parser.add_argument("--warmup", type=int, default=200, help="--versus: warmup per chain")
    parser.add_argument("--samples", type=int, default=200, help="--versus: draws per chain")
    parser.add_argument("--chains", type=int, default=4, help="--versus: chains")
    # one brainmass run of the comparison, in its own process (used by --versus)
    parser.add_argument("--worker", nargs=2, metavar=("PROBLEM", "BACKEND"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return versus_worker(args)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    print(
        f"jax {jax.__version__} on {jax.devices()[0]}, {os.cpu_count()} CPUs; "
        f"{'quick' if args.quick else 'full'} settings, "
        f"{'dense' if args.dense_mass else 'diagonal'} mass matrix; load average at start "
        f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
        flush=True,
    )
    out = {"quick": args.quick, "load_start": load0}
    if args.versus:
        out["versus"] = run_versus(args)
    elif "a" in args.case:
        out["case_a"] = run_case_a(args)
    if "b" in args.case and not args.versus:
        out["case_b"] = run_case_b(args)
    load1 = os.getloadavg()
    out["load_end"], out["total_s"] = load1, time.perf_counter() - t0
    print(
        f"\nload average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; total "
        f"{out['total_s'] / 60:.1f} min"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
