"""Hand-written NumPyro models of `benchmarks/inference.py`'s NUTS comparison problems.

What a NumPyro user writes without brainmass: the vector field in `jax.numpy`, a `lax.scan`
integrator, the observation model and the priors in a NumPyro model, and NUTS with NumPyro's
own adaptation (diagonal mass matrix, step size and metric adapted over the warmup). Nothing
here imports brainmass: the runner is the independent implementation of each problem, and
`benchmarks/inference.py` checks that its forward model gives brainmass's signal at the true
parameters before it compares the samplers.

Problems:

- `erp`: one DCM-for-ERP source (Baldy, Woodman, Jirsa & Hashemi 2025, "Dynamic causal
  modelling in probabilistic programming languages", J R Soc Interface 22:20240880): nine
  states, ten parameters with Gamma priors (their shapes and scales), forward Euler with
  dt = 0.1 ms over 200 ms (2,000 steps) from rest, the potential x8 observed every 1 ms with
  t = 0 included (201 samples) under Gaussian noise of known sd 0.1. Their sampler settings:
  4 chains x (200 + 200), maximum tree depth 12, a diagonal mass matrix, every chain started
  at the 5th percentile of 100 prior draws of each parameter (their fix for chains stuck in
  poor modes).
- `jr`: `inference.py`'s case a, the 4-source Jansen-Rit evoked response seen by 12 EEG
  electrodes: sigmoidal coupling through the connectome's weights, a Gaussian input bump into
  one source, Heun with dt = 1 ms for 300 ms from the resting state, the average-referenced
  lead field applied to the mean of the pyramidal potential over each 2 ms, samples after
  60 ms; six LogNormal-prior parameters and the noise sd (HalfNormal(0.2)). NUTS with
  NumPyro's defaults (tree depth 10, diagonal mass matrix), chains started at the priors'
  medians (`init_to_median`, the usual choice).

`--oracle` starts every chain at the true parameters instead (the most a hand-written model
can be helped: no search for the mode, only NumPyro's warmup).

The constants of each problem (data, lead field, weights, resting state, the fixed
parameters) come in an `.npz` written by `inference.py`, so both tools see the same input.

    python benchmarks/peers/numpyro_handwritten.py PROBLEM DATA.npz OUT.npz \
        [--warmup 200] [--samples 200] [--chains 4] [--seed 0]

Output: OUT.npz with each parameter's draws `(chains, samples)` and `num_steps`,
`diverging` `(chains, samples)`; one JSON line on stdout: `cpu_s` and `wall_s` of the
inference (building the model, compiling and sampling: everything after the imports and the
data load), `steps_per_draw`, `divergences`, the versions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS, init_to_median, init_to_value

# ----------------------------------------------------------------------------- DCM for ERP

ERP_NAMES = ("g_1", "g_2", "g_3", "g_4", "delta", "tau_i", "h_i", "tau_e", "h_e", "u")
ERP_TRUE = (0.42, 0.76, 0.15, 0.16, 12.13, 7.77, 27.87, 5.77, 1.63, 3.94)
ERP_GAMMA_SHAPE = (18.16, 29.9, 29.14, 30.77, 22.87, 34.67, 20.44, 33.02, 24.17, 23.62)
ERP_GAMMA_SCALE = (0.03, 0.02, 0.005, 0.007, 0.51, 0.23, 0.96, 0.16, 0.07, 0.13)
ERP_DT, ERP_STEPS, ERP_EVERY, ERP_SIGMA = 0.1, 2000, 10, 0.1


def erp_rate(x, theta):
    """The DCM-ERP vector field (per ms) at state `x` (9,) for parameters `theta` (10,).

    The firing-rate sigmoid of this formulation, `1 / (1 + exp(-0.56 (v - delta dv))) - 1/2`,
    takes a potential and its rate of change.
    """
    g1, g2, g3, g4, delta, tau_i, h_i, tau_e, h_e, drive = theta

    def rate(v, dv):
        return 1.0 / (1.0 + jnp.exp(-0.56 * (v - delta * dv))) - 0.5

    out8 = rate(x[8], x[4] - x[5])
    return jnp.stack(
        [
            x[3],
            x[4],
            x[5],
            (h_e * (g1 * out8 + drive) - x[0] / tau_e - 2.0 * x[3]) / tau_e,
            (h_e * g2 * rate(x[0], x[3]) - x[1] / tau_e - 2.0 * x[4]) / tau_e,
            (h_i * g4 * rate(x[6], x[7]) - x[2] / tau_i - 2.0 * x[5]) / tau_i,
            x[7],
            (h_e * g3 * out8 - x[6] / tau_e - 2.0 * x[7]) / tau_e,
            x[4] - x[5],
        ]
    )


def erp_forward(theta):
    """x8 at t = 0, 1, ..., 200 ms: Euler from rest, (201,)."""

    def block(x, _):
        def step(y, _):
            return y + ERP_DT * erp_rate(y, theta), None

        x, _ = jax.lax.scan(step, x, None, length=ERP_EVERY)
        return x, x[8]

    x0 = jnp.zeros(9)
    _, out = jax.lax.scan(block, x0, None, length=ERP_STEPS // ERP_EVERY)
    return jnp.concatenate([x0[8:], out])


def erp_model(consts):
    theta = [
        numpyro.sample(name, dist.Gamma(shape, 1.0 / scale))
        for name, shape, scale in zip(ERP_NAMES, ERP_GAMMA_SHAPE, ERP_GAMMA_SCALE, strict=True)
    ]
    numpyro.sample("obs", dist.Normal(erp_forward(theta), ERP_SIGMA), obs=consts["data"][:, 0])


def erp_init(key):
    """The published start: each parameter's 5th percentile over 100 prior draws."""
    keys = jax.random.split(key, len(ERP_NAMES))
    values = {}
    for k, name, shape, scale in zip(
        keys, ERP_NAMES, ERP_GAMMA_SHAPE, ERP_GAMMA_SCALE, strict=True
    ):
        draws = scale * jax.random.gamma(k, shape, (100,))
        values[name] = float(np.quantile(np.asarray(draws), 0.05))
    return init_to_value(values=values)


# ----------------------------------------------------------------------------- Jansen-Rit EEG

JR_NAMES = ("A", "B", "a", "G", "stim", "onset", "sigma")
# LogNormal(log median, sd) of inference.py's case a
JR_PRIORS = {
    "A": (3.25, 0.15),
    "B": (22.0, 0.15),
    "a": (0.1, 0.15),
    "G": (20.0, 0.3),
    "stim": (0.08, 0.25),
    "onset": (100.0, 0.1),
}


def jr_rate(y, t, p, consts):
    """Jansen & Rit (1995) columns (per ms), state `y` (6, n) at time `t` (ms).

    Potentials in mV, rates in 1/ms: `S(v) = 2 nu_max / (1 + exp(r (v0 - v)))`; the coupling
    `G W S(v)` (the same sigmoid with its own constants) and the input bump add to the
    pyramidal cells' input rate mu.
    """
    c = consts
    y0, y1, y2, y3, y4, y5 = y
    A, B, a, G, stim, onset = p["A"], p["B"], p["a"], p["G"], p["stim"], p["onset"]
    b, J = c["b"], c["J"]

    def S(v):
        return 2.0 * c["nu_max"] / (1.0 + jnp.exp(c["r"] * (c["v0"] - v)))

    v = y1 - y2
    coupled = G * (c["weights"] @ (c["cmax"] / (1.0 + jnp.exp(c["c_r"] * (c["c_v0"] - v)))))
    bump = stim * c["stim_weights"] * jnp.exp(-0.5 * ((t - onset) / c["width"]) ** 2)
    drive = c["mu"] + c["a_2"] * J * S(c["a_1"] * J * y0) + coupled + bump
    return jnp.stack(
        [
            y3,
            y4,
            y5,
            A * a * S(v) - 2.0 * a * y3 - a * a * y0,
            A * a * drive - 2.0 * a * y4 - a * a * y1,
            B * b * c["a_4"] * J * S(c["a_3"] * J * y0) - 2.0 * b * y5 - b * b * y2,
        ]
    )


def jr_forward(p, consts):
    """EEG channels `(n_samples, n_sensors)`: Heun, period means of v through the lead field."""
    dt, n_steps, every = consts["dt"], int(consts["n_steps"]), int(consts["every"])
    skip = int(consts["skip"])

    def step(y, k):
        t = k * dt
        k1 = jr_rate(y, t, p, consts)
        k2 = jr_rate(y + dt * k1, t + dt, p, consts)
        y = y + 0.5 * dt * (k1 + k2)
        return y, y[1] - y[2]

    _, v = jax.lax.scan(step, consts["init"], jnp.arange(n_steps, dtype=jnp.float32))
    means = v.reshape(n_steps // every, every, -1).mean(axis=1)
    return means[skip:] @ consts["leadfield"].T


def jr_model(consts):
    p = {
        name: numpyro.sample(name, dist.LogNormal(math.log(median), sd))
        for name, (median, sd) in JR_PRIORS.items()
    }
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.2))
    numpyro.sample("obs", dist.Normal(jr_forward(p, consts), sigma), obs=consts["data"])


# ----------------------------------------------------------------------------- running

PROBLEMS = {
    "erp": (erp_model, ERP_NAMES, lambda key: erp_init(key), 12),
    "jr": (jr_model, JR_NAMES, lambda key: init_to_median(), 10),
}


def oracle_init(consts: dict, names) -> Any:
    """Every chain started at the true parameters (`truth_<name>` in the constants)."""
    return init_to_value(values={name: float(consts[f"truth_{name}"]) for name in names})


def load_consts(path) -> dict:
    """The problem's constants: arrays as float32 JAX arrays, scalars as Python floats."""
    out = {}
    with np.load(path) as f:
        for key in f.files:
            value = f[key]
            out[key] = float(value) if value.ndim == 0 else jnp.asarray(value, jnp.float32)
    return out


def run(
    problem: str, consts: dict, warmup: int, samples: int, chains: int, seed: int, oracle: bool
):
    """NUTS on one problem; returns `(draws {name: (chains, samples)}, extra fields)`.

    `oracle`: start every chain at the true parameters instead of the problem's start.
    """
    model, names, init, depth = PROBLEMS[problem]
    key_init, key_run = jax.random.split(jax.random.key(seed))
    start = oracle_init(consts, names) if oracle else init(key_init)
    # the constants are closed over (the integers among them are loop lengths)
    kernel = NUTS(
        partial(model, consts), max_tree_depth=depth, dense_mass=False, init_strategy=start
    )
    mcmc = MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=samples,
        num_chains=chains,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(key_run, extra_fields=("num_steps", "diverging"))
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    return {k: draws[k] for k in names}, extra


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem", choices=sorted(PROBLEMS))
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=None, help="JAX's persistent compilation cache folder")
    parser.add_argument(
        "--oracle", action="store_true", help="start the chains at the truth (truth_<name>)"
    )
    args = parser.parse_args(argv)
    if args.cache:  # as the brainmass runs of the comparison: every compilation cached
        jax.config.update("jax_compilation_cache_dir", args.cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    consts = load_consts(args.data)
    c0, t0 = time.process_time(), time.perf_counter()
    draws, extra = run(
        args.problem, consts, args.warmup, args.samples, args.chains, args.seed, args.oracle
    )
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    np.savez(args.out, **draws, **extra)
    print(
        json.dumps(
            {
                "tool": "handwritten_oracle" if args.oracle else "handwritten",
                "problem": args.problem,
                "cpu_s": cpu,
                "wall_s": wall,
                "steps_per_draw": float(extra["num_steps"].mean()),
                "divergences": int(extra["diverging"].sum()),
                "numpyro": numpyro.__version__,
                "jax": jax.__version__,
                "loadavg_1m": os.getloadavg()[0],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
