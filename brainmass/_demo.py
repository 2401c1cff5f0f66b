"""`brainmass demo`: posteriors for the bundled default subject, by NUTS and by amortized NPE.

The default subject is an Ornstein-Uhlenbeck network (`models.Linear` with linear
coupling and additive noise) on the synthetic 68-region connectome, recorded as 4 ms
averages for one minute, at a hidden true global coupling `G` (the regional decay rate
`lam` = 0.1/ms and the noise are known). The demo

1. simulates the subject's data;
2. fits a `BayesianModel` with the linearised FC likelihood (the network's stationary
   covariance from the Lyapunov equation, exact for this network: no time stepping;
   Gaussian on the Fisher-z FC with its scatter `likelihood.sigma` inferred too) by
   gradient MAP, then NUTS (NumPyro backend, vectorised chains started at the MAP);
3. trains a neural posterior estimator (flowjax) on a bank of simulations of the same
   simulator with summary statistics (FC principal components and per-region moments),
   then reads off the subject's posterior in one network evaluation;
4. prints the ArviZ summary and both posteriors side by side with the truth, and writes a
   results folder: the data, `posterior_nuts.nc` and `posterior_npe.nc` (ArviZ netCDF),
   `trace.png`, `posterior_vs_truth.png`, `npe_losses.png`, the trained estimator
   (`npe.pkl`), the simulation bank (`bank.npz`; a rerun resumes it) and `report.md`.

The truth is the simulator's own parameter values: the NUTS posterior (a continuous-time
likelihood) and the NPE posterior (trained on the Euler-Maruyama simulations at dt =
0.5 ms) should both cover it.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

N_REGIONS = 68
TRUTH = {"coupling.G": 0.04}  # unstable above G ~ 0.074 (lam / spectral radius of W)
LAM = 0.1  # 1/ms
SIGMA = 0.02  # additive noise per sqrt(ms)
DT = 0.5  # ms
PERIOD = 4.0  # ms, TemporalAverage

SETTINGS = {
    "full": dict(
        duration=60_000.0,
        num_warmup=300,
        num_samples=500,
        num_chains=4,
        map_steps=300,
        bank=2_000,
        epochs=300,
    ),
    "quick": dict(
        duration=20_000.0,
        num_warmup=100,
        num_samples=100,
        num_chains=2,
        map_steps=100,
        bank=300,
        epochs=40,
    ),
}


def default_subject(n_regions: int = N_REGIONS, duration: float = 60_000.0):
    """The demo's simulator at the true parameters (OU network, `n_regions`, `duration` ms)."""
    import brainmass as bm

    net = bm.Network(
        bm.models.Linear(lam=LAM),
        bm.Connectome.synthetic(n_regions, seed=0),
        coupling=bm.coupling.Linear(G=TRUTH["coupling.G"]),
        noise=bm.noise.Additive(sigma=SIGMA),
    )
    return bm.Simulator(
        net, dt=DT, duration=duration, monitor=bm.monitors.TemporalAverage(period=PERIOD)
    )


def priors():
    """The demo's prior: the coupling G, uniform below the instability."""
    import numpyro.distributions as dist

    return {"coupling.G": dist.Uniform(0.0, 0.07)}


def run_demo(
    out: Path, *, quick: bool = False, seed: int = 0, npe: bool = True, say=print
) -> dict[str, Any]:
    """Run the demo and write its results folder; returns the figures of the report.

    **Arguments:**

    - `out`: the results folder (created).
    - `quick`: smaller settings (20 s of data, short chains, a 300-simulation bank): a smoke
      run of a minute or two, not a converged posterior.
    - `seed`: the data's noise seed (the other keys are derived from it).
    - `npe`: also run the amortized path.
    - `say`: where progress lines go.
    """
    import arviz as az
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import inference as inf

    cfg = SETTINGS["quick" if quick else "full"]
    out.mkdir(parents=True, exist_ok=True)
    keys = jax.random.split(jax.random.key(seed), 6)
    sim = default_subject(N_REGIONS, cfg["duration"])
    facts: dict[str, Any] = {"truth": dict(TRUTH), "settings": dict(cfg), "seed": seed}

    t0 = time.perf_counter()
    data = np.asarray(sim.run(keys[0]).signal)
    np.save(out / "data.npy", data)
    say(
        f"[1/4] subject: OU network, {N_REGIONS} regions (synthetic connectome), "
        f"{cfg['duration'] / 1000:g} s at dt = {DT} ms, {PERIOD:g} ms averages -> data "
        f"{data.shape} ({time.perf_counter() - t0:.1f} s)"
    )

    import numpyro.distributions as dist

    fc_likelihood = inf.likelihoods.Linearized("fc", sigma=dist.HalfNormal(0.2))
    bmodel = inf.BayesianModel(sim, priors(), fc_likelihood)
    t0 = time.perf_counter()
    fit = inf.map_estimate(
        bmodel, data, keys[1], num_starts=4, steps=cfg["map_steps"], progress=False
    )
    facts["map_s"] = time.perf_counter() - t0
    facts["map"] = {p: float(v) for p, v in fit.params.items()}
    say(
        f"[2/4] MAP ({facts['map_s']:.1f} s): "
        + ", ".join(f"{p} = {v:.4g}" for p, v in facts["map"].items())
    )

    t0 = time.perf_counter()
    post = inf.nuts(
        bmodel,
        data,
        keys[2],
        num_warmup=cfg["num_warmup"],
        num_samples=cfg["num_samples"],
        num_chains=cfg["num_chains"],
        init=fit,
        progress=True,
    )
    facts["nuts_s"] = time.perf_counter() - t0
    tree = post.to_arviz()
    summary = az.summary(tree)
    facts["nuts_divergent"] = int(post.n_divergent)
    say(
        f"[3/4] NUTS ({facts['nuts_s']:.1f} s, {cfg['num_chains']} chains x "
        f"({cfg['num_warmup']} + {cfg['num_samples']}), {post.n_divergent} divergent):"
    )
    say(summary.to_string())
    post.save(out / "posterior_nuts.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _save_figure(az.plot_trace_dist(tree, backend="matplotlib"), out / "trace.png", plt)
        _save_figure(
            post.plot_vs_truth(TRUTH, backend="matplotlib"), out / "posterior_vs_truth.png", plt
        )

    rows = {"NUTS": _describe(post.samples)}
    if npe:
        t0 = time.perf_counter()
        S = inf.summaries
        estimator = inf.NPE(sim, priors(), S.combine(S.FC(pca=8), S.Moments()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # failed (unstable) draws are counted below
            estimator.train(
                keys[3],
                cfg["bank"],
                bank_path=out / "bank.npz",
                max_epochs=cfg["epochs"],
                patience=20,
                progress=True,
            )
        facts["npe_train_s"] = time.perf_counter() - t0
        bank = estimator.bank
        estimator.save(out / "npe.pkl")
        amortized = estimator.posterior(data)
        amortized.sample(keys[4], 4000)  # compile once; the timing below is one evaluation
        t0 = time.perf_counter()
        draws = amortized.sample(keys[5], 4000)
        facts["npe_latency_ms"] = 1000 * (time.perf_counter() - t0)
        amortized.to_posterior(keys[5], 4000).save(out / "posterior_npe.nc")
        rows["NPE"] = _describe({p: v[None] for p, v in draws.items()})
        facts["bank"] = {
            "simulations": len(bank),
            "failed": bank.n_failed,
            "simulations_per_s": bank.info.get("simulations_per_s"),
        }
        facts["npe_epochs"] = estimator.info["epochs"]
        _save_figure(estimator.plot_losses(), out / "npe_losses.png", plt)
        say(
            f"[4/4] NPE: bank of {len(bank)} simulations ({bank.n_failed} failed, unstable "
            f"draws), {estimator.info['epochs']} epochs, {facts['npe_train_s']:.1f} s in all; "
            f"4,000 posterior draws in {facts['npe_latency_ms']:.1f} ms"
        )
    table = _side_by_side(rows)
    say(table)
    facts["posteriors"] = rows
    _write_report(out / "report.md", facts, summary.to_string(), table)
    say(f"results in {out}/ (report.md, posterior_*.nc, *.png, npe.pkl, bank.npz, data.npy)")
    return facts


def _save_figure(obj: Any, path: Path, plt) -> None:
    fig = getattr(obj, "figure", None) or getattr(obj, "viz", None)
    if fig is None or not hasattr(fig, "savefig"):
        fig = plt.gcf()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close("all")


def _describe(samples: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """{path: (mean, 5 %, 95 %)} of `(chains, draws)` samples."""
    out = {}
    for p in TRUTH:
        v = np.asarray(samples[p]).ravel()
        out[p] = (float(v.mean()), float(np.quantile(v, 0.05)), float(np.quantile(v, 0.95)))
    return out


def _side_by_side(rows: dict[str, dict[str, tuple[float, float, float]]]) -> str:
    head = f"{'parameter':12s} {'truth':>8s}" + "".join(
        f" | {name + ' mean [90% interval]':>30s}" for name in rows
    )
    lines = [head, "-" * len(head)]
    for p, truth in TRUTH.items():
        cells = "".join(
            f" | {m:8.4f} [{lo:8.4f}, {hi:8.4f}]{'  ' if lo <= truth <= hi else ' !'}"
            for m, lo, hi in (r[p] for r in rows.values())
        )
        lines.append(f"{p:12s} {truth:8.4f}{cells}")
    lines.append("(! marks an interval that misses the truth: expected 10 % of the time)")
    return "\n".join(lines)


def _write_report(path: Path, facts: dict[str, Any], summary: str, table: str) -> None:
    cfg = facts["settings"]
    lines = [
        "# brainmass demo: the default subject",
        "",
        f"OU network, {N_REGIONS} regions (synthetic connectome), {cfg['duration'] / 1000:g} s "
        f"of 4 ms averages; hidden truth {facts['truth']}; noise seed {facts['seed']}.",
        "",
        f"- MAP: {facts['map']} in {facts['map_s']:.1f} s",
        f"- NUTS (NumPyro, linearised FC likelihood): {cfg['num_chains']} chains x "
        f"({cfg['num_warmup']} + {cfg['num_samples']}) in {facts['nuts_s']:.1f} s, "
        f"{facts['nuts_divergent']} divergent",
    ]
    if "npe_train_s" in facts:
        lines.append(
            f"- NPE (flowjax MAF, FC PCs + moments): bank {facts['bank']}, "
            f"{facts['npe_epochs']} epochs, {facts['npe_train_s']:.1f} s to build; "
            f"4,000 draws for the subject in {facts['npe_latency_ms']:.1f} ms"
        )
    lines += ["", "## ArviZ summary (NUTS)", "", "```", summary, "```", ""]
    lines += ["## Posteriors side by side", "", "```", table, "```", ""]
    path.write_text("\n".join(lines))
