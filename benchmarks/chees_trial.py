"""Trial, not kept: ChEES-HMC (blackjax.chees_adaptation + dynamic_hmc) against `inf.nuts`.

Issue 16 asked to try ChEES-style adaptation and keep it where the benchmark shows it
pays; the figures and the decision are in benchmarks/README.md ("ChEES-HMC: tried").
Both samplers start from the same multi-start MAP; ChEES samples the space whitened by
its Laplace covariance (the metric `nuts` starts from), with an identity metric.

Usage: python benchmarks/chees_trial.py PROBLEM [--chains 4,16] [--jitter 1.0]
       [--warmup 200] [--samples 1000] [--no-nuts] [--seed 0] [--out DIR]
PROBLEM: "erp" (DCM-ERP source, 10 params) or "jr" (Jansen-Rit EEG, 7 params), the
problems of `inference.py --versus`. Writes DIR/PROBLEM.json (all numbers) and
DIR/PROBLEM_nuts.npz (NUTS draws, reused with --no-nuts); DIR defaults to $TMPDIR.
"""

# ruff: noqa: B023 - the loop bodies define and run their closures in the same iteration

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("problem", choices=["erp", "jr"])
ap.add_argument("--chains", default="4,16")
ap.add_argument("--jitter", type=float, default=1.0, help="start sd in Laplace-whitened units")
ap.add_argument("--warmup", type=int, default=200)
ap.add_argument("--samples", type=int, default=1000)
ap.add_argument("--lr", type=float, default=0.025)
ap.add_argument("--step0", type=float, default=0.5, help="initial step size (whitened space)")
ap.add_argument("--no-nuts", action="store_true", help="reuse the saved NUTS draws")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--tag", default="")
ap.add_argument("--out", default=os.environ.get("TMPDIR", "/tmp"), help="folder for results")
ap.add_argument(
    "--layouts",
    default="vmap,seq",
    help="how the chains' gradients run: vmap (batched) and/or seq (lax.map)",
)
args = ap.parse_args()

spec = importlib.util.spec_from_file_location("bench_inf", Path(__file__).parent / "inference.py")
B = importlib.util.module_from_spec(spec)
sys.modules["bench_inf"] = B
spec.loader.exec_module(B)
import arviz as az  # noqa: E402
import blackjax  # noqa: E402
import optax  # noqa: E402

import inference as inf  # noqa: E402
from inference.map import _gaussian  # noqa: E402
from inference.mcmc import _backends  # noqa: E402

problem = args.problem
OUT = os.path.join(args.out, f"{problem}{args.tag}")


def clocks():
    return time.perf_counter(), time.process_time()


def since(t):
    w, c = clocks()
    return w - t[0], c - t[1]


def log(*a):
    print(*a, flush=True)


arrays, clean, truth = B.versus_inputs(problem)
data = arrays["data"]
if problem == "erp":
    bmodel = B.source_bmodel(B.source_simulator())
else:
    sim0, _, _ = B.erp_problem(jax.random.key(0))
    bmodel = B.jr_bmodel(sim0)
ld = bmodel.logdensity(data, jax.random.key(0))
d = ld.size
t = clocks()
fit = inf.map_estimate(
    bmodel, data, jax.random.key(2), num_starts=8, steps=500, tol=0.01, newton=8, progress=False
)
mode, chol = _gaussian(fit, "auto")
mode = jnp.asarray(mode, jnp.float32)
chol = jnp.asarray(chol, jnp.float32)
log(
    f"[{problem}] d={d} MAP {since(t)[0]:.1f}s; Laplace sds (unconstrained):",
    np.round(np.sqrt(np.sum(np.asarray(chol) ** 2, 1)), 4),
)

data_j = jnp.asarray(data)
constrain = jax.jit(jax.vmap(ld.constrain))


def to_params(z_flat):
    """(n, d) unconstrained -> {site: (n,)} constrained (scalar sites only here)."""
    out = constrain(jnp.asarray(z_flat))
    return {k: np.asarray(v).reshape(np.asarray(v).shape[0], -1) for k, v in out.items()}


def summarise(samples):
    """samples: {site: (chains, draws[, k])} -> ESS/R-hat/means/sds per scalar component."""
    res = {}
    for k, v in samples.items():
        v = np.asarray(v, np.float64)
        v = v.reshape(v.shape[0], v.shape[1], -1)
        for j in range(v.shape[2]):
            name = k if v.shape[2] == 1 else f"{k}[{j}]"
            x = v[:, :, j]
            res[name] = dict(
                ess=float(az.ess(x, method="bulk")),
                ess_tail=float(az.ess(x, method="tail", prob=(0.05, 0.95))),
                rhat=float(az.rhat(x)),
                mean=float(x.mean()),
                sd=float(x.std()),
            )
    return res


results = {}
try:
    with open(OUT + ".json") as f:
        results = json.load(f)
except FileNotFoundError:
    pass


def save():
    with open(OUT + ".json", "w") as f:
        json.dump(results, f, indent=1)


# ----------------------------------------------------------------------------- NUTS
if not args.no_nuts:
    record = []  # per compiled chunk: (done, n_steps (chains, n), wall, cpu)
    orig_run = _backends._NumPyroSampler.run

    def timed_run(self, state, data, n, done, lanes):
        t0 = clocks()
        state, z, st = orig_run(self, state, data, n, done, lanes)
        ns = np.asarray(st["n_steps"])  # blocks until the chunk is done
        jax.block_until_ready(z)
        w, c = since(t0)
        record.append((done, ns, w, c))
        return state, z, st

    _backends._NumPyroSampler.run = timed_run
    timings = []
    for _ in range(2):  # the first call compiles; the second is the one timed
        record.clear()
        t = clocks()
        post = inf.nuts(
            bmodel,
            data,
            jax.random.key(1),
            num_warmup=args.warmup,
            num_samples=args.samples,
            init=fit,
            progress=False,
            posterior_predictive=False,
        )
        timings.append(since(t))
    (first_w, first_c), (total_w, total_c) = timings
    _backends._NumPyroSampler.run = orig_run
    log(
        f"[{problem}] NUTS settings:",
        {k: post.info[k] for k in ("dense_mass", "adapt_metric", "gradient", "chain_method")},
    )
    warm_steps = sum(int(ns.sum()) for done, ns, _, _ in record if done < args.warmup)
    samp = [(ns, w, c) for done, ns, w, c in record if done >= args.warmup]
    samp_steps = sum(int(ns.sum()) for ns, _, _ in samp)
    samp_w = sum(w for _, w, _ in samp)
    samp_c = sum(c for _, _, c in samp)
    warm_w = sum(w for done, _, w, _ in record if done < args.warmup)
    warm_c = sum(c for done, _, _, c in record if done < args.warmup)
    n_steps = np.asarray(post.sample_stats["n_steps"])
    assert n_steps.sum() == samp_steps, (n_steps.sum(), samp_steps)
    samples = {k: np.asarray(v) for k, v in post.samples.items()}
    np.savez(os.path.join(args.out, f"{problem}_nuts.npz"), **samples)
    s = summarise(samples)
    results["nuts"] = dict(
        chains=int(n_steps.shape[0]),
        draws=int(n_steps.shape[1]),
        warmup_leapfrog=warm_steps,
        sampling_leapfrog=samp_steps,
        leapfrog_per_draw=float(n_steps.mean()),
        step_size=float(np.mean(post.sample_stats["step_size"])),
        accept=float(np.mean(post.sample_stats["acceptance_rate"])),
        divergent=int(np.sum(post.sample_stats["diverging"])),
        sampling_wall=samp_w,
        sampling_cpu=samp_c,
        warmup_wall=warm_w,
        warmup_cpu=warm_c,
        first_call_wall=first_w,
        first_call_cpu=first_c,
        total_wall=total_w,
        total_cpu=total_c,
        params=s,
    )
    save()
    log(
        f"[{problem}] NUTS done: {samp_steps / n_steps.size:.1f} lf/draw, "
        f"min ESS {min(v['ess'] for v in s.values()):.0f}, sampling {samp_w:.1f}s wall "
        f"{samp_c:.1f}s cpu"
    )

# ----------------------------------------------------------------------------- ChEES


def logdensity_vmap(x):
    """Log density in the Laplace-whitened space: z = mode + L x (constant Jacobian)."""
    return ld.fn_data(mode + chol @ x, data_j)


# The same density whose value and gradient run chain after chain (lax.map) when vmapped,
# like our NUTS's sequential chains on the CPU; blackjax vmaps the kernel over chains.
_seq_value = jax.custom_batching.sequential_vmap(logdensity_vmap)
_seq_value_grad = jax.custom_batching.sequential_vmap(jax.value_and_grad(logdensity_vmap))


@jax.custom_vjp
def logdensity_seq(x):
    return _seq_value(x)


def _seq_fwd(x):
    return _seq_value_grad(x)


def _seq_bwd(grad, ct):
    return (ct * grad,)


logdensity_seq.defvjp(_seq_fwd, _seq_bwd)

runs = [(int(c), lay) for c in args.chains.split(",") if c for lay in args.layouts.split(",")]
for nc, layout in runs:
    logdensity = logdensity_vmap if layout == "vmap" else logdensity_seq
    key = jax.random.key(100 + args.seed + nc)
    k_init, k_warm, k_samp = jax.random.split(key, 3)
    x0 = args.jitter * jax.random.normal(k_init, (nc, d), jnp.float32)
    lp0 = jax.vmap(logdensity)(x0)
    assert bool(jnp.all(jnp.isfinite(lp0))), lp0

    warmup = blackjax.chees_adaptation(logdensity, nc)
    optim = optax.adam(args.lr)

    def run_warmup(k, x0):
        (states, params), info = warmup.run(
            k, x0, args.step0, optim, args.warmup, max_sampling_steps=args.samples
        )
        nsteps = info.info.num_integration_steps  # (warmup, chains)
        return (
            states,
            params["step_size"],
            params["integration_steps_params"][0],
            nsteps,
            info.info.acceptance_rate,
            info.info.is_divergent,
        )

    t = clocks()
    warm_c = jax.jit(run_warmup).lower(k_warm, x0).compile()
    cw, _ = since(t)
    t = clocks()
    states, step_size, n_lf, w_nsteps, w_acc, w_div = jax.block_until_ready(warm_c(k_warm, x0))
    ww, wc = since(t)
    # the same integration_steps_fn as the adaptation's (Halton jitter, same max_bits)
    max_bits = np.ceil(np.log2(args.warmup + args.samples))

    def integration_steps_fn(i, num_leapfrog_steps):
        h = blackjax.mcmc.dynamic_hmc.halton_sequence(i, max_bits)
        return jnp.asarray(jnp.ceil(h * num_leapfrog_steps), dtype=int)

    def run_sampling(k, states, step_size, n_lf):
        alg = blackjax.dynamic_hmc(
            logdensity,
            step_size=step_size,
            inverse_mass_matrix=jnp.ones(d),
            next_random_arg_fn=lambda i: i + 1,
            integration_steps_fn=integration_steps_fn,
            integration_steps_params=(n_lf,),
        )

        def one(states, k):
            ks = jax.random.split(k, nc)
            states, info = jax.vmap(alg.step)(ks, states)
            return states, (
                states.position,
                info.num_integration_steps,
                info.acceptance_rate,
                info.is_divergent,
            )

        return jax.lax.scan(one, states, jax.random.split(k, args.samples))[1]

    t = clocks()
    samp_c = jax.jit(run_sampling).lower(k_samp, states, step_size, n_lf).compile()
    cs, _ = since(t)
    t = clocks()
    xs, s_nsteps, s_acc, s_div = jax.block_until_ready(samp_c(k_samp, states, step_size, n_lf))
    sw, sc = since(t)
    # vmapped chains share the Halton draw: every chain takes the same steps each iteration
    s_nsteps = np.asarray(s_nsteps)
    w_nsteps = np.asarray(w_nsteps)
    xs = np.asarray(xs).transpose(1, 0, 2)  # (chains, draws, d)
    z = np.asarray(mode)[None, None] + np.einsum("ij,cnj->cni", np.asarray(chol), xs)
    flat = to_params(z.reshape(-1, d))
    samples = {k: v.reshape(nc, args.samples, *v.shape[1:]) for k, v in flat.items()}
    s = summarise(samples)
    results[f"chees{nc}_{layout}"] = dict(
        chains=nc,
        layout=layout,
        draws=args.samples,
        jitter=args.jitter,
        lr=args.lr,
        step_size=float(step_size),
        mean_leapfrog_param=float(n_lf),
        warmup_leapfrog=int(w_nsteps.sum()),
        sampling_leapfrog=int(s_nsteps.sum()),
        leapfrog_per_draw=float(s_nsteps.mean()),
        leapfrog_per_iteration=float(s_nsteps[:, 0].mean()),
        accept=float(np.mean(s_acc)),
        warmup_accept=float(np.mean(np.asarray(w_acc))),
        divergent=int(np.sum(s_div)),
        warmup_divergent=int(np.sum(np.asarray(w_div))),
        sampling_wall=sw,
        sampling_cpu=sc,
        warmup_wall=ww,
        warmup_cpu=wc,
        compile_warmup_wall=cw,
        compile_sampling_wall=cs,
        params=s,
    )
    save()
    log(
        f"[{problem}] ChEES {nc} chains {layout}: step {float(step_size):.3f}, "
        f"{float(n_lf):.1f} mean lf "
        f"param, {s_nsteps.mean():.1f} lf/draw, accept {np.mean(s_acc):.2f}, min ESS "
        f"{min(v['ess'] for v in s.values()):.0f}, sampling {sw:.1f}s wall {sc:.1f}s cpu"
    )

# ----------------------------------------------------------------------------- table


def row(name, r, ref):
    p = r["params"]
    ess = min(v["ess"] for v in p.values())
    rhat = max(v["rhat"] for v in p.values())
    shift = max(abs(p[k]["mean"] - ref[k]["mean"]) / ref[k]["sd"] for k in ref)
    # the shift over its Monte Carlo standard error (sd / sqrt(bulk ESS), both samplers)
    zmax = (
        max(
            abs(p[k]["mean"] - ref[k]["mean"])
            / np.sqrt(ref[k]["sd"] ** 2 / ref[k]["ess"] + p[k]["sd"] ** 2 / p[k]["ess"])
            for k in ref
            if r is not results["nuts"]
        )
        if r is not results["nuts"]
        else 0.0
    )
    tail = min(v["ess_tail"] for v in p.values())
    cpu_all = r["sampling_cpu"] + r["warmup_cpu"]
    sdr = [p[k]["sd"] / ref[k]["sd"] for k in ref]
    lf = r["sampling_leapfrog"]
    lf_all = lf + r["warmup_leapfrog"]
    return (
        f"{name:12s} {r['chains']:3d} {ess:7.0f} {tail:7.0f} {rhat:6.3f} "
        f"{r['leapfrog_per_draw']:6.2f} {1000 * ess / lf:7.1f} {1000 * ess / lf_all:7.1f} "
        f"{r['sampling_wall']:6.1f} {r['sampling_cpu']:6.1f} {r['warmup_cpu']:6.1f} "
        f"{ess / r['sampling_cpu']:7.0f} {ess / cpu_all:7.0f} {shift:6.3f} {zmax:5.2f} "
        f"{min(sdr):.3f}-{max(sdr):.3f}"
    )


if "nuts" not in results:
    with open(os.path.join(args.out, f"{problem}.json")) as f:
        results = {"nuts": json.load(f)["nuts"], **results}
ref = results["nuts"]["params"]
log(
    f"\n[{problem}{args.tag}]\nsampler       ch minbulk mintail maxRhat lf/drw ESS/klf +wu/klf "
    "wall_s  cpu_s wu_cpu ESS/cpu +wu/cpu shift/sd max|z| sd ratio"
)
for name, r in results.items():
    log(row(name, r, ref))
