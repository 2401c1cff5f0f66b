r"""Calibration of every noise-driven inference route, measured by simulation-based calibration.

For each problem, `--n-datasets` datasets are drawn from the prior (parameters from the
uniform prior box, then one simulation each, by the simulator's own stochastic Heun
integration at `dt`) and every route's posterior is computed on each of them:

- `statespace`, `whittle`, `whittle_hann`, `fc`, `fc2` (grid posteriors): the
  log-likelihood of the public likelihood (`inference.likelihoods.StateSpace(steady_after=K)`,
  `Whittle(nperseg)` without and with the Hann taper, `Linearized("fc")` with the
  covariance at the prior centre, and `fc2`: the two-stage fit, the FC covariance rebound at
  the grid MAP of the single-stage one with `.at(map)`) on a `--grid` x `--grid` grid over the
  prior box. The model side is computed once per grid point and the data side vmapped over
  datasets: StateSpace through `BayesianModel.predict` and the distribution's `log_prob`;
  Whittle and FC from the sampled signal's autocovariances on the grid (the likelihoods' own
  `lagged`, once per problem with `nperseg` lags), and for Whittle the quadratic form
  contracted with the datasets' periodograms in one product. Every shortcut is checked against
  the public path on a few grid points and datasets (`predict_rel_err`, `loglik_abs_err`,
  `steady_abs_err` in the JSON). With delays, `fc2` fixes `n_lags` at `nperseg` (the
  autocorrelation is below 1e-7 there) instead of the default's 4,096-lag probe (10 s a bind).
- `npe`, `nle`: `inference.NPE` / `inference.NLE` (masked autoregressive flows, 3 layers,
  width 48) trained once per problem on a bank of `--bank` prior simulations summarised by
  `lag_summary` (log variances, Fisher-z correlations, lag-one cross-correlations: 15
  features); NPE's `log_prob` and NLE's learned likelihood are evaluated on the same grid
  (amortized: no retraining per dataset).

Figures per route and parameter (marginal posteriors of the grid; uniform priors, so the
posterior is the normalised likelihood): the PIT $u = F_{post}(\theta_{true})$ (trapezoid CDF
of the marginal), whose uniformity is the SBC check (Kolmogorov-Smirnov p-value), the
coverage of the central 50 % and 90 % intervals ($u \in [.25, .75]$ and $[.05, .95]$) with
the binomial 95 % band for n datasets, the posterior sd divided by the exact reference's
(StateSpace on the same dataset; absent with delays), the mean and sd of the z-scores
(posterior mean - truth) / posterior sd, and the posterior sd in grid steps (resolution).

Problems (3 regions: regions 0, 2, 3 of `Connectome.synthetic(4, seed=0)`, a chain with
weights 0.736 and 0.404; unknowns `coupling.G` and one regional parameter; prior boxes about
8-10 posterior sds wide so that a 41-point grid puts 3-6 points in a posterior sd):

- `ou_raw`, `ou_avg`: the OU network (`models.Linear`, `coupling.Linear`, additive noise
  sigma = 0.02), G in [0, 0.05], lam in [0.08, 0.12]/ms, dt = 0.1 ms, 1,024 samples 4 ms
  apart (`Raw(4)` / `TemporalAverage(4)`, 40 steps averaged) after a 200 ms transient;
  Whittle nperseg = 128 (8 segments of 20-40 correlation times). StateSpace holds the Kalman
  gain after 10 (Raw) / 40 (TemporalAverage) samples.
- `ou_bold`: the same network slowed tenfold (lam in [0.009, 0.011]/ms, G in [0, 0.0025],
  sigma = 0.005), dt = 1 ms, `BOLD(period=720 ms)`, 400 volumes (4.8 min) after 30 s;
  Whittle nperseg = 50 (8 segments). StateSpace (gain held after 100 volumes) is the
  linearised Balloon-Windkessel model here (a first-order approximation of the monitor).
- `hopf_a*`: the delayed Hopf network (`models.Hopf`, omega = 2 pi 10 Hz, sigma = 0.002 on
  x and y, speed 10 m/s, tract lengths 50 and 160 mm: delays 5 and 16 ms), dt = 0.5 ms,
  `Raw(10 ms)`, unknowns G in [0, |a0|] and a in [1.1 a0, 0.9 a0], for a0 = -0.05, -0.02,
  -0.01, -0.005; 16/|a0| samples (160 correlation times at a0) after 10/|a0| ms; Whittle
  nperseg = T/8 (20 correlation times). Linear-model amplitude: <r^2> = sigma^2/|a| =
  (0.0016, 0.01, 0.04, 0.16) |a0| at a0, so the linearisation degrades as a0 -> 0. No exact
  reference (delays: StateSpace refuses them).

Also measured per problem: the simulator against the continuous-time linear model at the
prior centre (mean of y^2 over `--n-datasets` simulations over the model's stationary
variance, with its standard error: dt error, BOLD and Hopf nonlinearity), and, for `ou_raw`,
the StateSpace route on data drawn exactly from its own model (`statespace_exact`: a control
of the harness and the grid, free of any simulator error).

Usage:
    python benchmarks/calibration.py [--quick] [--problems ou_raw hopf_a0.01 ...]
        [--routes statespace whittle whittle_hann fc fc2 npe nle] [--n-datasets 100]
        [--grid 41] [--bank 2000] [--json benchmarks/calibration_results.json]

Writes the JSON (per problem and route: n, coverage50/90, SBC p-values, sd ratio median and
IQR, z-scores, wall/CPU seconds, checks) and prints a markdown table. Default: every problem,
100 datasets, 41 x 41 grid, banks of 2,000 (~40 min on 2 busy CPU cores); `--quick`: `ou_raw`
and `hopf_a0.01` with half-length series, a 25 x 25 grid and banks of 600 (a few minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# benchmarks/inference.py is named like the `inference` package: keep this folder off the path
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import scipy.stats  # noqa: E402

import brainmass as bm  # noqa: E402
import inference as inf  # noqa: E402
from inference import likelihoods as L  # noqa: E402

GRID_ROUTES = ("statespace", "whittle", "whittle_hann", "fc", "fc2")
ROUTES = (*GRID_ROUTES, "npe", "nle")
HOPF_LEVELS = (-0.05, -0.02, -0.01, -0.005)
PROBLEMS = ("ou_raw", "ou_avg", "ou_bold", *(f"hopf_a{abs(a):g}" for a in HOPF_LEVELS))
FLOW = dict(flow_layers=3, nn_width=48)
FIT = dict(max_epochs=300, patience=25, batch_size=128, learning_rate=1e-3, progress=False)


# =====================================================================================
# problems
# =====================================================================================


@dataclasses.dataclass
class Problem:
    """One calibration problem: a simulator, a uniform prior box over two parameters."""

    name: str
    sim: bm.Simulator
    box: dict[str, tuple[float, float]]  # {path: (low, high)}
    nperseg: int
    description: str
    delays: bool
    steady_after: int | None = None  # StateSpace: hold the Kalman gain after this many samples

    @property
    def paths(self) -> list[str]:
        """The two unknowns, in grid order."""
        return list(self.box)

    @property
    def priors(self) -> dict[str, dist.Distribution]:
        """Uniform NumPyro priors on the box."""
        return {p: dist.Uniform(lo, hi) for p, (lo, hi) in self.box.items()}

    @property
    def centre(self) -> dict[str, float]:
        """The centre of the box."""
        return {p: 0.5 * (lo + hi) for p, (lo, hi) in self.box.items()}


def _chain() -> tuple[np.ndarray, np.ndarray]:
    """Weights and tract lengths (mm) of regions 0, 2, 3 of synthetic(4, seed=0)."""
    conn = bm.Connectome.synthetic(n_regions=4, seed=0)
    idx = np.array([0, 2, 3])
    w = np.asarray(conn.weights, float)[np.ix_(idx, idx)]
    lengths = np.asarray(conn.tract_lengths, float)[np.ix_(idx, idx)]
    return w, lengths


def make_problem(name: str, quick: bool = False) -> Problem:
    """The named problem (see the module docstring); `quick` shortens the series."""
    w, lengths = _chain()
    if name.startswith("ou_"):
        kind = name[3:]
        if kind == "bold":
            lam, g_max, sigma, dt = (0.009, 0.011), 0.0025, 0.005, 1.0
            n = 200 if quick else 400
            monitor = bm.monitors.BOLD(period=720.0, transient=30_000.0)
            duration, nperseg = 30_000.0 + 720.0 * n, n // 8
        else:
            lam, g_max, sigma, dt = (0.08, 0.12), 0.05, 0.02, 0.1
            n = 512 if quick else 1024
            cls = bm.monitors.Raw if kind == "raw" else bm.monitors.TemporalAverage
            monitor = cls(4.0, transient=200.0)
            duration, nperseg = 200.0 + 4.0 * n, n // 8
        net = bm.Network(
            bm.models.Linear(lam=float(np.mean(lam))),
            bm.Connectome.from_arrays(w, np.zeros_like(w)),
            coupling=bm.coupling.Linear(G=g_max / 2),
            noise=bm.noise.Additive(sigma=sigma),
        )
        sim = bm.Simulator(net, dt=dt, duration=duration, monitor=monitor, init={"x": 0.0})
        desc = (
            f"OU, 3 regions, {type(monitor).__name__}(period {monitor.period:g} ms), "
            f"{n} samples, dt {dt:g} ms, sigma {sigma:g}; G in [0, {g_max:g}], "
            f"lam in [{lam[0]:g}, {lam[1]:g}]/ms; Whittle nperseg {nperseg}"
        )
        box = {"coupling.G": (0.0, g_max), "model.lam": lam}
        steady = {"raw": 10, "avg": 40, "bold": 100}[kind]
        return Problem(name, sim, box, nperseg, desc, delays=False, steady_after=steady)
    if name.startswith("hopf_a"):
        a0 = -float(name[len("hopf_a") :])
        dt, period, sigma, speed = 0.5, 10.0, 0.002, 10.0
        n = int(round((8 if quick else 16) / abs(a0)))
        n -= n % 8
        transient = 10.0 / abs(a0)
        step = dt * speed  # lengths rounded to whole steps: the simulation's delays are exact
        lengths = np.round(lengths / step) * step * (w > 0)
        net = bm.Network(
            bm.models.Hopf(a=a0),
            bm.Connectome.from_arrays(w, lengths),
            coupling=bm.coupling.Linear(G=abs(a0) / 2),
            noise=bm.noise.Additive(sigma=sigma),
            speed=speed,
        )
        sim = bm.Simulator(
            net,
            dt=dt,
            duration=transient + period * n,
            monitor=bm.monitors.Raw(period, transient=transient),
            init={"x": 0.0, "y": 0.0},
        )
        delays = sorted({float(v) for v in np.asarray(net.delays_ms()).ravel() if v > 0})
        desc = (
            f"delayed Hopf a0 = {a0:g}/ms, 3 regions, delays {delays} ms, Raw(10 ms), "
            f"{n} samples, dt {dt:g} ms, sigma {sigma:g}; G in [0, {abs(a0):g}], "
            f"a in [{1.1 * a0:g}, {0.9 * a0:g}]/ms; Whittle nperseg {n // 8}"
        )
        box = {"coupling.G": (0.0, abs(a0)), "model.a": (1.1 * a0, 0.9 * a0)}
        return Problem(name, sim, box, n // 8, desc, delays=True)
    raise ValueError(f"problem: expected one of {PROBLEMS}, got {name!r}.")


def lag_summary(signal: jax.Array) -> jax.Array:
    """NPE/NLE features of a signal `(T, C)`: log variances `(C,)`, Fisher-z correlations
    `(C (C - 1) / 2,)` and lag-one cross-correlations `(C * C,)`; 15 for C = 3."""
    x = signal - jnp.mean(signal, axis=0, keepdims=True)
    c0 = x.T @ x / x.shape[0]
    d = jnp.sqrt(jnp.diagonal(c0))
    r0 = c0 / (d[:, None] * d[None, :])
    iu = jnp.triu_indices(x.shape[1], 1)
    c1 = x[1:].T @ x[:-1] / x.shape[0] / (d[:, None] * d[None, :])
    return jnp.concatenate([jnp.log(d**2), jnp.arctanh(r0[iu]), c1.reshape(-1)])


# =====================================================================================
# simulation
# =====================================================================================


def simulate(problem: Problem, key, n: int, *, summary: Callable | None = None, chunk=100):
    """`(theta (n, 2), out)`: prior draws and their signals `(n, T, C)` (or summaries)."""
    f = problem.sim.function(problem.paths)
    lows = jnp.asarray([lo for lo, _ in problem.box.values()])
    highs = jnp.asarray([hi for _, hi in problem.box.values()])

    @jax.jit
    def batch(k):
        k_theta, k_noise = jax.random.split(k)
        u = jax.random.uniform(k_theta, (chunk, len(lows)))
        theta = lows + u * (highs - lows)
        sig = jax.vmap(lambda t, kk: f(dict(zip(problem.paths, t, strict=True)), kk))(
            theta, jax.random.split(k_noise, chunk)
        )
        return theta, (sig if summary is None else jax.vmap(summary)(sig))

    thetas, outs = [], []
    for c in range(-(-n // chunk)):
        t, o = jax.device_get(batch(jax.random.fold_in(key, c)))
        thetas.append(np.asarray(t))
        outs.append(np.asarray(o))
    return np.concatenate(thetas)[:n], np.concatenate(outs)[:n]


# =====================================================================================
# grid posteriors
# =====================================================================================


@dataclasses.dataclass
class Grid:
    """A product grid over the prior box: `axes[i]` `(n_i,)`, `points` `(n_0 n_1, 2)`."""

    axes: list[np.ndarray]

    @property
    def points(self) -> np.ndarray:
        """Every grid point, row-major (the last axis fastest)."""
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1)

    @property
    def shape(self) -> tuple[int, ...]:
        """`(n_0, n_1)`."""
        return tuple(len(a) for a in self.axes)


def make_grid(problem: Problem, n: int) -> Grid:
    """`n` points per axis spanning the prior box, edges included."""
    return Grid([np.linspace(lo, hi, n) for lo, hi in problem.box.values()])


def marginal_stats(loglik: np.ndarray, grid: Grid, truths: np.ndarray) -> dict[str, np.ndarray]:
    """PIT, posterior mean and sd per dataset and parameter from grid log-likelihoods.

    `loglik`: `(n, n_grid)` (uniform priors: the posterior is the normalised likelihood),
    `truths`: `(n, 2)`. The marginal densities are trapezoid-integrated; the PIT is the
    piecewise-linear marginal CDF at the truth. Returns `pit`, `mean`, `sd` `(n, 2)` and
    `map_index` `(n,)` (the grid point of the largest log-likelihood).
    """
    n = loglik.shape[0]
    ll = loglik.reshape(n, *grid.shape)
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    peak = ll.max(axis=(1, 2), keepdims=True)
    dens = np.exp(ll - peak)
    pit, mean, sd = (np.zeros((n, 2)) for _ in range(3))
    for i, axis in enumerate(grid.axes):
        marg = dens.sum(axis=2 - i)  # (n, n_i): integrate out the other parameter
        cells = 0.5 * (marg[:, 1:] + marg[:, :-1]) * np.diff(axis)[None]
        cdf = np.concatenate([np.zeros((n, 1)), np.cumsum(cells, axis=1)], axis=1)
        total = cdf[:, -1:]
        cdf = cdf / total
        pit[:, i] = [np.interp(t, axis, c) for t, c in zip(truths[:, i], cdf, strict=True)]
        w = marg / np.trapezoid(marg, axis, axis=1)[:, None]
        mean[:, i] = np.trapezoid(w * axis[None], axis, axis=1)
        sd[:, i] = np.sqrt(np.trapezoid(w * (axis[None] - mean[:, i : i + 1]) ** 2, axis, axis=1))
    return {"pit": pit, "mean": mean, "sd": sd, "map_index": ll.reshape(n, -1).argmax(axis=1)}


def predictions(bmodel: inf.BayesianModel, grid: Grid, chunk: int = 64):
    """`(prediction pytree (n_grid, ...), ok (n_grid,))`: `bmodel.predict` at every point."""
    paths = list(bmodel.paths)

    @jax.jit
    def one_chunk(pts):
        return jax.vmap(lambda t: bmodel.predict(dict(zip(paths, t, strict=True))))(pts)

    pts = grid.points
    pad = -len(pts) % chunk
    padded = np.concatenate([pts, np.repeat(pts[-1:], pad, 0)]) if pad else pts
    outs = [jax.device_get(one_chunk(padded[i : i + chunk])) for i in range(0, len(padded), chunk)]
    pred, ok = jax.tree.map(lambda *xs: np.concatenate(xs)[: len(pts)], *outs)
    return pred, np.asarray(ok)


def grid_loglik_generic(bmodel, pred, ok, prepared, chunk: int = 32) -> np.ndarray:
    """`(n_data, n_grid)`: `distribution(pred).log_prob(prepared).sum()` over grid x datasets."""
    lik = bmodel.likelihood

    def one(p, y):
        return jnp.sum(lik.distribution(p, {}).log_prob(y))

    @jax.jit
    def block(p_chunk, ys):
        return jax.vmap(lambda p: jax.vmap(lambda y: one(p, y))(ys))(p_chunk)

    n_grid = len(ok)
    safe = jax.tree.map(
        lambda p, fb: np.where(ok.reshape((-1,) + (1,) * (p.ndim - 1)), p, fb),
        pred,
        jax.tree.map(np.asarray, jax.vmap(lambda p: lik.fallback(p, None))(pred)),
    )
    pad = -n_grid % chunk
    padded = jax.tree.map(lambda p: np.concatenate([p, np.repeat(p[-1:], pad, 0)]), safe)
    rows = []
    for i in range(0, n_grid + pad, chunk):
        part = jax.tree.map(lambda p, i=i: p[i : i + chunk], padded)
        rows.append(np.asarray(block(part, prepared)))
    out = np.concatenate(rows)[:n_grid].T
    return np.where(ok[None], out, -np.inf)


def whittle_loglik(bmodel, pred, ok, prepared) -> np.ndarray:
    r"""`(n_data, n_grid)` Whittle log-likelihoods by one contraction.

    $\ell = -K \sum_f (C \log\pi + \log\det S_g(f)) - \sum_f \mathrm{tr}(S_g(f)^{-1} I_n(f))$
    with $I_n(f) = \sum_k d_k d_k^\dagger$ the dataset's summed periodogram: the same value
    as the likelihood's `log_prob` (checked by the caller).
    """
    s = np.where(ok[:, None, None, None], pred, np.eye(pred.shape[-1])[None, None])
    inv = np.linalg.inv(s)  # (G, F, C, C)
    sign, logdet = np.linalg.slogdet(s)
    k_seg, c = prepared.shape[2], prepared.shape[3]
    const = -k_seg * np.sum(c * math.log(math.pi) + np.real(logdet), axis=1)  # (G,)
    d = np.asarray(prepared)  # (n, F, K, C)
    per = np.einsum("nfki,nfkj->nfij", d, np.conj(d))  # sum_k d d^H, (n, F, C, C)
    quad = np.real(np.einsum("gfij,nfji->ng", inv, per))
    out = const[None] - quad
    bad = ~ok | np.any(np.real(sign) <= 0, axis=1)
    return np.where(bad[None], -np.inf, out)


# =====================================================================================
# metrics
# =====================================================================================


def binomial_band(n: int, p: float) -> tuple[float, float]:
    """The central 95 % range of the observed coverage of n datasets at true rate p."""
    return (
        float(scipy.stats.binom.ppf(0.025, n, p) / n),
        float(scipy.stats.binom.ppf(0.975, n, p) / n),
    )


def summarise(stats: dict, truths: np.ndarray, names: list[str], reference=None) -> dict:
    """Coverage, SBC p-value and sd ratio per parameter from `marginal_stats` output."""
    pit = stats["pit"]
    n = len(pit)
    out = {"n": n, "coverage50": {}, "coverage90": {}, "sbc_p": {}, "sd_ratio": {}}
    for i, name in enumerate(names):
        u = pit[:, i]
        out["coverage50"][name] = float(np.mean((u >= 0.25) & (u <= 0.75)))
        out["coverage90"][name] = float(np.mean((u >= 0.05) & (u <= 0.95)))
        out["sbc_p"][name] = float(scipy.stats.kstest(u, "uniform").pvalue)
        if reference is not None:
            r = stats["sd"][:, i] / reference["sd"][:, i]
            q25, q50, q75 = np.quantile(r, [0.25, 0.5, 0.75])
            out["sd_ratio"][name] = {"median": float(q50), "q25": float(q25), "q75": float(q75)}
        z = (stats["mean"][:, i] - truths[:, i]) / stats["sd"][:, i]
        out.setdefault("z_mean", {})[name] = float(np.mean(z))
        out.setdefault("z_sd", {})[name] = float(np.std(z))
    return out


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def log(msg: str) -> None:
    """A progress line with the load average."""
    load = "/".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {msg}", flush=True)


# =====================================================================================
# routes
# =====================================================================================


class ModelSide:
    """What the linearised routes share on the grid: the sampled signal's autocovariances.

    `gamma` `(n_grid, L, C, C)` from the likelihoods' own function
    (`inference.likelihoods._linearized.lagged`) with L = the Whittle segment length,
    computed once per problem; Whittle's expected periodograms and the FC means at any
    number of lags <= L are made from it (checked against the likelihoods' own `predict`).
    """

    def __init__(self, problem: Problem, grid: Grid, n_lags: int, chunk: int = 32):
        from inference.likelihoods._linearized import lagged

        paths, sim = problem.paths, problem.sim

        @jax.jit
        def one_chunk(pts):
            return jax.vmap(
                lambda t: lagged(sim.with_params(dict(zip(paths, t, strict=True))), n_lags, None)
            )(pts)

        pts = grid.points
        pad = -len(pts) % chunk
        padded = np.concatenate([pts, np.repeat(pts[-1:], pad, 0)]) if pad else pts
        outs = [
            jax.device_get(one_chunk(padded[i : i + chunk])) for i in range(0, len(padded), chunk)
        ]
        gamma, ok = (np.concatenate(x)[: len(pts)] for x in zip(*outs, strict=True))
        self.gamma, self.ok, self.n_lags = gamma, np.asarray(ok, bool), n_lags
        self._means: dict[int, np.ndarray] = {}

    def fc_mean(self, n_lags: int, n_samples: int) -> np.ndarray:
        """`(n_grid, P)` FC Fisher-z means with `n_lags` lags (as `LinearizedFC.predict...`)."""
        from inference import _spectral_stats as stats

        if n_lags > self.n_lags:
            raise ValueError(f"FC needs {n_lags} lags, the grid has {self.n_lags}.")
        if n_lags not in self._means:
            f = jax.jit(jax.vmap(lambda g: stats.fc_z_mean(g, n_samples)))
            self._means[n_lags] = np.asarray(f(jnp.asarray(self.gamma[:, :n_lags])))
        return self._means[n_lags]

    def periodograms(self, whittle) -> np.ndarray:
        """`(n_grid, F, C, C)` Whittle expected periodograms (as `Whittle.predict...`)."""
        from inference import _spectral_stats as stats

        index = whittle._index(whittle.spec.period)
        f = jax.jit(
            jax.vmap(
                lambda g: stats.expected_periodogram(g, whittle.nperseg, index, taper=whittle.taper)
            )
        )
        return np.asarray(f(jnp.asarray(self.gamma[:, : whittle.nperseg])))


def check_against_public(bmodel, grid: Grid, pred: np.ndarray, n: int = 4) -> float:
    """Largest |our prediction - `bmodel.predict`| at `n` grid points, relative to its scale."""
    idx = np.linspace(0, len(grid.points) - 1, n).astype(int)
    err = 0.0
    for i in idx:
        theta = dict(zip(bmodel.paths, (float(v) for v in grid.points[i]), strict=True))
        public = np.asarray(bmodel.predict(theta)[0])
        scale = float(np.max(np.abs(public))) or 1.0
        err = max(err, float(np.max(np.abs(public - pred[i]))) / scale)
    return err


def grid_route(problem, route, grid, signals, side=None, fc_stage1=None, fc_cell=1):
    """`(loglik (n, n_grid), info)` of a grid route on the datasets `signals`.

    `side`: the problem's `ModelSide` (Whittle and FC); `fc_stage1`: the single-stage FC
    log-likelihoods (for `fc2`), whose grid MAP is moved to the nearest point of a sub-grid
    of every `fc_cell`-th point before rebinding (fewer rebinds; 1: the grid MAP itself).
    """
    sim, priors = problem.sim, problem.priors
    info = {}
    if route == "statespace":
        lik = L.StateSpace(steady_after=problem.steady_after)
    elif route.startswith("whittle"):
        lik = L.Whittle(problem.nperseg, taper="hann" if route == "whittle_hann" else "none")
    else:
        lik = L.Linearized("fc", covariance_at=problem.centre)
    bmodel = inf.BayesianModel(sim, priors, lik)
    bound = bmodel.likelihood
    prepared = jnp.stack([bound.prepare(y) for y in signals])
    if route == "statespace":
        pred, ok = predictions(bmodel, grid)
        info["grid_ok"] = float(ok.mean())
        ll = grid_loglik_generic(bmodel, pred, ok, prepared)
        if problem.steady_after is not None:  # the held gain against the exact filter
            exact = inf.BayesianModel(sim, priors, L.StateSpace())
            idx = np.linspace(0, len(ok) - 1, 4).astype(int)
            ref = grid_loglik_generic(
                exact, jax.tree.map(lambda p: p[idx], pred), ok[idx], prepared[:3]
            )
            info["steady_after"] = problem.steady_after
            info["steady_abs_err"] = float(np.max(np.abs(ref - ll[:3, idx])))
        return ll, info
    ok = side.ok
    info["grid_ok"] = float(ok.mean())
    if route.startswith("whittle"):
        pred = side.periodograms(bound)
        info["predict_rel_err"] = check_against_public(bmodel, grid, pred)
        ll = whittle_loglik(bmodel, pred, ok, np.asarray(prepared))
        # the contraction against the likelihood's own log_prob on a few points and datasets
        idx = np.flatnonzero(ok)[:: max(1, ok.sum() // 4)][:4]
        ref = grid_loglik_generic(bmodel, pred[idx], ok[idx], prepared[:3])
        err = float(np.max(np.abs(ref - ll[:3, idx])))
        assert err < 1e-6 * max(1.0, float(np.max(np.abs(ref)))), err
        info.update(loglik_abs_err=err, segments=bound.segments, frequencies=len(bound.freqs))
        return ll, info
    n_samples = bound.spec.n_samples
    if route == "fc":
        pred = side.fc_mean(bound.n_lags, n_samples)
        info["predict_rel_err"] = check_against_public(bmodel, grid, pred)
        info["n_lags"] = bound.n_lags
        return grid_loglik_generic(bmodel, pred, ok, prepared), info
    # two-stage: the covariance rebound at the single-stage grid MAP of each dataset
    maps = marginal_stats(fc_stage1, grid, np.zeros((len(signals), 2)))["map_index"]
    sub = [np.round(np.array(np.unravel_index(m, grid.shape)) / fc_cell) * fc_cell for m in maps]
    sub = [np.minimum(ix, np.array(grid.shape) - 1).astype(int) for ix in sub]
    maps = np.array([np.ravel_multi_index(tuple(ix), grid.shape) for ix in sub])
    out = np.empty((len(signals), len(grid.points)))
    errs = []
    for g in np.unique(maps):
        at = dict(zip(problem.paths, (float(v) for v in grid.points[g]), strict=True))
        # delays: n_lags fixed at the Whittle segment (autocorrelation < 1e-7 there), which
        # skips the default's 4,096-lag probe (~10 s a bind with delays)
        if problem.delays:
            lik2 = L.LinearizedFC(covariance_at=at, n_lags=side.n_lags)
        else:
            lik2 = lik.at(at)
        bm2 = inf.BayesianModel(sim, priors, lik2)
        pred = side.fc_mean(bm2.likelihood.n_lags, n_samples)
        if len(errs) < 3:
            errs.append(check_against_public(bm2, grid, pred, n=2))
        sel = np.flatnonzero(maps == g)
        out[sel] = grid_loglik_generic(bm2, pred, ok, prepared[sel])
    info["rebinds"] = int(len(np.unique(maps)))
    info["predict_rel_err"] = max(errs)
    info["mean_lag_settings"] = sorted(int(k) for k in side._means)
    return out, info


def flow_routes(problem, routes, grid, signals, key, n_bank):
    """`{route: (loglik (n, n_grid), info)}` for NPE and NLE trained on one prior bank."""
    out = {}
    with Clock() as c_bank:
        theta_bank, x_bank = simulate(problem, key, n_bank, summary=lag_summary)
    log(f"  bank of {n_bank}: {c_bank.wall:.0f} s")
    pts = jnp.asarray(grid.points)
    for route in routes:
        cls = inf.NPE if route == "npe" else inf.NLE
        with Clock() as clk:
            est = cls(problem.sim, problem.priors, lag_summary, **FLOW)
            bank = inf.SimulationBank.from_arrays(theta_bank, x_bank, est.space)
            est = est.train_on(bank, jax.random.fold_in(key, 7 if route == "npe" else 8), **FIT)
            if route == "npe":  # the flow's posterior density at every grid point
                raw = np.asarray(jax.vmap(lag_summary)(jnp.asarray(signals)))
                density = jax.jit(lambda r, est=est: est.posterior(features=r).log_prob(pts))
                lp = [np.asarray(density(r)) for r in raw]
            else:  # the learned likelihood of the dataset's features at every grid point
                feats = np.asarray(est.features(jnp.asarray(signals)))  # (n, k) standardised
                loglik = jax.jit(
                    lambda f, est=est: jax.vmap(lambda t: est.log_likelihood(f, t))(pts)
                )
                lp = [np.asarray(loglik(f)) for f in feats]
        info = dict(est.info, bank_wall_s=c_bank.wall, bank_cpu_s=c_bank.cpu)
        info = {k: v for k, v in info.items() if isinstance(v, (int, float, bool))}
        out[route] = (np.stack(lp), info, clk)
    return out


# =====================================================================================
# checks of the data against the linear model
# =====================================================================================


def model_variance(sim: bm.Simulator) -> np.ndarray:
    """The linear model's stationary variance of each channel of the sampled signal `(C,)`."""
    if sim.network.has_delays:
        gamma = bm.linear.lagged_covariance(sim, 2)
    else:
        gamma = bm.linear.autocovariance(bm.linear.state_space(sim), 2)
    return np.diagonal(np.asarray(gamma[0]))


def discretisation_check(problem: Problem, key, n: int) -> dict:
    """Simulated vs model variance at the prior centre: mean of y^2 over n runs / model's.

    Not demeaned (the process mean is zero), so no finite-sample bias: a ratio off 1 by more
    than its standard error is the simulator's dt error, the BOLD monitor's nonlinearity or
    (Hopf) the nonlinearity of the model.
    """
    centre = problem.centre
    sim = problem.sim.with_params(centre)
    f = sim.function([])
    sig = jax.jit(jax.vmap(lambda k: f({}, k)))(jax.random.split(key, n))
    m2 = np.mean(np.asarray(sig) ** 2, axis=1) / model_variance(sim)[None]  # (n, C)
    per_run = m2.mean(axis=1)
    return {
        "variance_ratio": float(per_run.mean()),
        "variance_ratio_se": float(per_run.std(ddof=1) / math.sqrt(n)),
        "n": n,
    }


# =====================================================================================
# driver
# =====================================================================================


def run_problem(name: str, routes: list[str], args) -> dict:
    """Every selected route on one problem; returns its JSON record."""
    problem = make_problem(name, quick=args.quick)
    grid = make_grid(problem, args.grid)
    key = jax.random.fold_in(jax.random.key(args.seed), PROBLEMS.index(name))
    load0 = os.getloadavg()
    log(f"{name}: {problem.description}")
    with Clock() as clk:
        truths, signals = simulate(problem, jax.random.fold_in(key, 1), args.n_datasets)
    log(f"  {args.n_datasets} datasets {signals.shape}: {clk.wall:.0f} s")
    record = {
        "description": problem.description,
        "parameters": problem.paths,
        "box": problem.box,
        "grid": list(grid.shape),
        "n_samples": int(signals.shape[1]),
        "simulate_datasets_s": clk.wall,
        "routes": {},
    }
    record["simulator_vs_model"] = discretisation_check(
        problem, jax.random.fold_in(key, 2), args.n_datasets
    )
    log(f"  simulator/model variance at the centre: {record['simulator_vs_model']}")
    names = problem.paths
    stats: dict[str, dict] = {}
    timing: dict[str, Clock] = {}
    infos: dict[str, dict] = {}
    lls: dict[str, np.ndarray] = {}
    todo = [r for r in GRID_ROUTES if r in routes]
    if "fc2" in todo and "fc" not in todo:
        todo.insert(todo.index("fc2"), "fc")
    reference_route = None if problem.delays else "statespace"
    if reference_route and reference_route not in todo:
        todo.insert(0, reference_route)
    if problem.delays:
        todo = [r for r in todo if r != "statespace"]
    side = None
    if any(r != "statespace" for r in todo):
        with Clock() as clk:
            side = ModelSide(problem, grid, problem.nperseg)
        side_clock = clk
        log(f"  autocovariances on the grid ({problem.nperseg} lags): {clk.wall:.1f} s")
    for route in todo:
        with Clock() as clk:
            ll, info = grid_route(problem, route, grid, signals, side, lls.get("fc"), args.fc_cell)
            if route != "statespace":
                info["model_side_s"] = side_clock.wall
            lls[route] = ll
            stats[route] = marginal_stats(ll, grid, truths)
        timing[route], infos[route] = clk, info
        log(f"  {route}: {clk.wall:.1f} s wall, {clk.cpu:.1f} s CPU {info}")
    flows = [r for r in ("npe", "nle") if r in routes]
    if flows:
        for route, (ll, info, clk) in flow_routes(
            problem, flows, grid, signals, jax.random.fold_in(key, 3), args.bank
        ).items():
            stats[route] = marginal_stats(ll, grid, truths)
            timing[route], infos[route] = clk, info
            log(f"  {route}: {clk.wall:.1f} s wall, {clk.cpu:.1f} s CPU (bank apart)")
    if name == "ou_raw" and "statespace" in stats:  # control: data from the model itself
        with Clock() as clk:
            exact_truths, exact = exact_model_data(problem, jax.random.fold_in(key, 4), truths)
            ll, info = grid_route(problem, "statespace", grid, exact)
            stats["statespace_exact"] = marginal_stats(ll, grid, exact_truths)
        timing["statespace_exact"], infos["statespace_exact"] = clk, info
        log(f"  statespace on exact-model data: {clk.wall:.1f} s")
    reference = stats.get(reference_route) if reference_route else None
    for route, st in stats.items():
        if route not in routes and route != "statespace_exact":
            continue
        ref = None if route == "statespace_exact" else reference
        rec = summarise(st, truths, names, ref)
        h = [np.diff(a)[0] for a in grid.axes]
        rec["sd_over_grid_step_median"] = {
            n_: float(np.median(st["sd"][:, i] / h[i])) for i, n_ in enumerate(names)
        }
        rec.update(wall_s=timing[route].wall, cpu_s=timing[route].cpu, info=infos[route])
        record["routes"][route] = rec
    record["load_average_start"], record["load_average_end"] = load0, os.getloadavg()
    return record


def exact_model_data(problem: Problem, key, truths: np.ndarray):
    """Series drawn from StateSpace's own model at `truths` `(n, 2)` (no simulator)."""
    bmodel = inf.BayesianModel(problem.sim, problem.priors, L.StateSpace())
    keys = jax.random.split(key, len(truths))

    @jax.jit
    def draw(t, k):
        pred, _ = bmodel.predict(dict(zip(problem.paths, t, strict=True)))
        return bmodel.likelihood.distribution(pred, {}).sample(k)

    return truths, np.stack([np.asarray(draw(t, k)) for t, k in zip(truths, keys, strict=True)])


def short(path: str) -> str:
    """`coupling.G` -> `G`, `model.lam` -> `lam`."""
    return path.split(".")[-1]


def table(results: dict) -> str:
    """The markdown table of every problem, route and parameter."""
    lines = [
        "| problem | route | n | parameter | 50 % cover | 90 % cover | SBC p (KS) "
        "| sd / exact (median [IQR]) | wall / CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for pname, prec in results["problems"].items():
        for route, r in prec["routes"].items():
            n = r["n"]
            b50, b90 = binomial_band(n, 0.5), binomial_band(n, 0.9)
            for i, par in enumerate(prec["parameters"]):
                sr = r["sd_ratio"].get(par)
                ratio = (
                    "-" if sr is None else f"{sr['median']:.2f} [{sr['q25']:.2f}, {sr['q75']:.2f}]"
                )
                flag50 = "" if b50[0] <= r["coverage50"][par] <= b50[1] else " **!**"
                flag90 = "" if b90[0] <= r["coverage90"][par] <= b90[1] else " **!**"
                p = r["sbc_p"][par]
                lines.append(
                    f"| {pname if (route, i) == (next(iter(prec['routes'])), 0) else ''} "
                    f"| {route if i == 0 else ''} | {n if i == 0 else ''} | {short(par)} "
                    f"| {r['coverage50'][par]:.2f}{flag50} | {r['coverage90'][par]:.2f}{flag90} "
                    f"| {p:.3f}{' **!**' if p < 0.01 else ''} | {ratio} "
                    f"| {f'{r["wall_s"]:.0f} / {r["cpu_s"]:.0f}' if i == 0 else ''} |"
                )
    n = next((r["n"] for p in results["problems"].values() for r in p["routes"].values()), None)
    if n:
        lines.append("")
        lines.append(
            f"Binomial 95 % band for n = {n}: 50 % coverage {binomial_band(n, 0.5)}, "
            f"90 % coverage {binomial_band(n, 0.9)}; **!** marks a figure outside it "
            "(or an SBC p-value below 0.01)."
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    """Parse arguments, run the problems, write the JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small settings (a few minutes)")
    parser.add_argument("--problems", nargs="+", default=None, choices=PROBLEMS)
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=ROUTES)
    parser.add_argument("--n-datasets", type=int, default=None)
    parser.add_argument("--grid", type=int, default=None, help="points per axis")
    parser.add_argument("--bank", type=int, default=None, help="NPE/NLE simulations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fc-cell",
        type=int,
        default=None,
        help="fc2 rebinds at the stage-1 MAP rounded to every k-th grid point",
    )
    parser.add_argument("--json", default=str(HERE / "calibration_results.json"))
    args = parser.parse_args(argv)
    if args.quick:
        problems = args.problems or ["ou_raw", "hopf_a0.01"]
        defaults = {"n_datasets": 100, "grid": 25, "bank": 600, "fc_cell": 1}
    else:
        problems = args.problems or list(PROBLEMS)
        defaults = {"n_datasets": 100, "grid": 41, "bank": 2000, "fc_cell": 1}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    jax.config.update("jax_enable_x64", True)
    log(f"calibration: problems {problems}, routes {args.routes}, {vars(args)}")
    results = {
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "machine": {"cpus": os.cpu_count(), "jax": jax.__version__, "date": time.ctime()},
        "problems": {},
    }
    with Clock() as total:
        for name in problems:
            results["problems"][name] = run_problem(name, args.routes, args)
            Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    results["total_wall_s"], results["total_cpu_s"] = total.wall, total.cpu
    results["load_average_end"] = os.getloadavg()
    Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    print()
    print(table(results))
    print(f"\ntotal {total.wall:.0f} s wall, {total.cpu:.0f} s CPU; load {os.getloadavg()}")
    for name, p in results["problems"].items():
        print(f"{name}: simulator / linear model variance at the centre {p['simulator_vs_model']}")
    return results


if __name__ == "__main__":
    main()
