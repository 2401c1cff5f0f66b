"""Simulation banks: parameters drawn from the priors, simulated, summarised, kept on disk.

A bank is the training set of simulation-based inference: `theta (n, d)`, the flat
parameter draws, and `x (n, *shape)`, the summary statistics of their simulations.
`simulate_bank` draws and simulates in vmapped chunks of one compiled size (chosen from
the compiled memory of a small chunk unless given), drops the simulations that failed
(non-finite output or summary; counted in `n_failed`), and with `path=` writes the bank
after every chunk: an interrupted run loses at most the chunk in flight, and calling
`simulate_bank` again with the same `path` continues it (with a larger `num_simulations`
it grows the bank).

Chunk `c` draws its parameters and noise from `jax.random.fold_in(key, c)`: the same
key gives the same bank whatever the chunk size of a resumed run.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.transforms import biject_to

import brainmass as bm
from brainmass._progress import progress_bar
from brainmass._sweep import _auto_chunk_size

from ._checks import check_integers
from .priors import Hierarchical, check_prior, check_priors, prior_token

__all__ = ["Identity", "ParameterSpace", "SimulationBank", "as_summary", "simulate_bank"]


# ---------------------------------------------------------------------- parameters
class ParameterSpace:
    """The flat layout of a priors dict: every parameter draw as one vector of `d` numbers.

    Parameters are laid out in the order of `priors`, each flattened (a per-region
    parameter takes `n_regions` entries). Each has a bijection from the real line onto its
    prior's support (`numpyro.distributions.biject_to`), so a density estimated in the
    unconstrained space puts no mass outside the support.

    **Arguments:**

    - `sim`: the `brainmass.Simulator` the priors are over (None: parameters of another
      simulator, any names, no unit or domain checks).
    - `priors`: `{parameter path: NumPyro distribution}` in the parameters' canonical units
      (a `Hierarchical` prior is not a flat prior: use `.expand([n])` per region here, or
      a `CohortModel` for group structure).

    **Attributes:** `paths`, `shapes` (`{path: shape}`), `sizes`, `units`, `names` (one label
    per entry: `"coupling.G"`, `"model.a[3]"`), `d`.
    """

    def __init__(self, sim: bm.Simulator | None, priors: Mapping[str, Any]):
        if sim is None:  # parameters of another simulator: names are free, no units
            if not isinstance(priors, Mapping) or not priors:
                raise ValueError(f"priors: expected a non-empty dict, got {priors!r}.")
            for path, prior in priors.items():
                _check_flat_prior(path, prior, "real", (tuple(prior.shape()),))
            info = {p: type("Info", (), {"unit": ""})() for p in priors}
        else:
            info = check_priors(sim, priors, _check_flat_prior)
        self.priors = dict(priors)
        self.paths = tuple(self.priors)
        self.shapes = {p: tuple(d.batch_shape + d.event_shape) for p, d in self.priors.items()}
        self.sizes = {p: math.prod(s) for p, s in self.shapes.items()}
        self.units = {p: info[p].unit for p in self.paths}
        self.names = [
            p if not s else f"{p}[{i}]" for p, s in self.shapes.items() for i in range(math.prod(s))
        ]
        self.d = len(self.names)

    @property
    def _transforms(self):
        return {p: biject_to(d.support) for p, d in self.priors.items()}

    def sample(self, key: Any, n: int) -> jax.Array:
        """`n` prior draws as a flat array `(n, d)` (canonical units); jit-able."""
        keys = jax.random.split(key, len(self.paths))
        parts = [
            self.priors[p].sample(k, (n,)).reshape(n, self.sizes[p])
            for p, k in zip(self.paths, keys, strict=True)
        ]
        return jnp.concatenate([jnp.asarray(a, dtype=float) for a in parts], axis=-1)

    def split(self, theta: Any) -> dict[str, Any]:
        """Flat `(..., d)` -> `{path: (..., *shape)}`."""
        theta = jnp.asarray(theta)
        out, start = {}, 0
        for p in self.paths:
            size = self.sizes[p]
            out[p] = theta[..., start : start + size].reshape(theta.shape[:-1] + self.shapes[p])
            start += size
        return out

    def join(self, values: Mapping[str, Any]) -> jax.Array:
        """`{path: (..., *shape)}` -> flat `(..., d)`; a clear error for a missing path."""
        missing = [p for p in self.paths if p not in values]
        if missing:
            raise ValueError(f"theta: expected values for {list(self.paths)}, missing {missing}.")
        parts = []
        for p in self.paths:
            v = jnp.asarray(values[p], dtype=float)
            batch = v.shape[: v.ndim - len(self.shapes[p])]
            if v.shape[len(batch) :] != self.shapes[p]:
                raise ValueError(
                    f"theta[{p!r}]: expected trailing shape {self.shapes[p]}, got {v.shape}."
                )
            parts.append(v.reshape(batch + (self.sizes[p],)))
        batch = jnp.broadcast_shapes(*(a.shape[:-1] for a in parts))
        return jnp.concatenate([jnp.broadcast_to(a, batch + a.shape[-1:]) for a in parts], -1)

    def unconstrain(self, theta: Any) -> jax.Array:
        """Flat constrained `(..., d)` -> flat unconstrained `(..., d)`."""
        parts = self.split(theta)
        t = self._transforms
        return self._flat({p: t[p].inv(v) for p, v in parts.items()})

    def constrain(self, z: Any) -> tuple[jax.Array, jax.Array]:
        """Flat unconstrained `(..., d)` -> (flat constrained `(..., d)`, log |d theta / d z|)."""
        parts = self.split(z)
        t = self._transforms
        values, logdet = {}, 0.0
        for p, v in parts.items():
            y = t[p](v)
            values[p] = y
            ld = t[p].log_abs_det_jacobian(v, y)
            logdet = logdet + _sum_last(ld, len(self.shapes[p]))
        return self._flat(values), logdet

    def log_prior(self, theta: Any) -> jax.Array:
        """The prior log density of flat `(..., d)` draws, `(...)`."""
        total = 0.0
        for p, v in self.split(theta).items():
            prior = self.priors[p]
            total = total + _sum_last(prior.log_prob(v), len(prior.batch_shape))
        return total

    def _flat(self, values: Mapping[str, Any]) -> jax.Array:
        return jnp.concatenate(
            [
                jnp.reshape(values[p], jnp.shape(values[p])[: jnp.ndim(values[p]) - len(s)] + (-1,))
                for p, s in self.shapes.items()
            ],
            -1,
        )

    def token(self) -> str:
        """A text identifying the layout and the priors (for fingerprints)."""
        return repr([(p, self.shapes[p], prior_token(d)) for p, d in self.priors.items()])

    def __repr__(self) -> str:
        layout = ", ".join(f"{p}{list(s)}" for p, s in self.shapes.items())
        return f"ParameterSpace({layout}, d={self.d})"


def _sum_last(a: Any, n: int) -> jax.Array:
    """Sum over the last `n` axes (none for n = 0)."""
    return jnp.sum(a, axis=tuple(range(-n, 0))) if n else a


def _check_flat_prior(path, prior, domain, shapes) -> None:
    if isinstance(prior, Hierarchical):
        raise ValueError(
            f"priors[{path!r}]: simulation-based inference takes plain NumPyro distributions "
            "(a per-region parameter: dist.Uniform(lo, hi).expand([n_regions])); hierarchical "
            "group structure belongs in inference.CohortModel (with a learned likelihood, NLE)."
        )
    check_prior(path, prior, domain, shapes)


# ---------------------------------------------------------------------- summaries
def signal_shape(sim: bm.Simulator) -> tuple[int, int]:
    """`(n_samples, n_channels)` of the signal `sim.run()` returns (the transient dropped)."""
    n_ch = len(sim.monitor.channels(sim.network))
    return (int(sim.n_samples) - int(sim.transient_samples), n_ch)


class Identity:
    """The features as they are: a summary for banks whose `x` already holds statistics."""

    def __init__(self, shape: tuple[int, ...] | None = None):
        self.shape = None if shape is None else tuple(shape)
        self.out_shape = self.shape

    def bind(self, sim):
        """Bound to a simulator: the features are its signal `(n_samples, n_channels)`."""
        return Identity(signal_shape(sim))

    def __call__(self, signal):
        """The signal itself."""
        return jnp.asarray(signal)

    @property
    def names(self):
        """One label per feature."""
        return [f"x[{i}]" for i in range(math.prod(self.shape or ()))]

    def fit(self, features):
        """Nothing to fit."""
        return self

    def project(self, features):
        """The features unchanged."""
        return features

    def __repr__(self) -> str:
        return f"Identity({self.shape})"


class _FunctionSummary(Identity):
    """A plain function `signal (n_samples, n_channels) -> features` used as a summary."""

    def __init__(self, fn: Callable, shape: tuple[int, ...] | None = None):
        super().__init__(shape)
        self.fn = fn

    def bind(self, sim):
        """Bound to a simulator: the feature shape from an abstract evaluation."""
        spec = jax.ShapeDtypeStruct(signal_shape(sim), jnp.result_type(float))
        return _FunctionSummary(self.fn, tuple(jax.eval_shape(self.fn, spec).shape))

    def __call__(self, signal):
        """The function's features of one signal."""
        return jnp.asarray(self.fn(signal))

    def __repr__(self) -> str:
        return f"Function({getattr(self.fn, '__name__', repr(self.fn))})"


def as_summary(summary: Any, sim: bm.Simulator) -> Any:
    """A summary bound to `sim`: an `inference.summaries` statistic or a plain function.

    A plain function `signal (n_samples, n_channels) -> features` (pure JAX) is wrapped;
    it must be picklable (a module-level function) for banks and estimators to be saved.
    """
    if hasattr(summary, "bind"):
        return summary.bind(sim)
    if callable(summary):
        return _FunctionSummary(summary).bind(sim)
    raise ValueError(
        "summary: expected an inference.summaries statistic (FC, FCD, Spectral, ..., or "
        f"summaries.combine(...)) or a function signal -> features, got {summary!r}."
    )


# ---------------------------------------------------------------------- the bank
@dataclass
class SimulationBank:
    """Parameter draws and the summaries of their simulations (the failed ones dropped).

    **Attributes:**

    - `theta`: `(n, d)` flat parameter draws in canonical units (layout: `names`).
    - `x`: `(n, *shape)` summary features of each draw's simulation.
    - `names`: the `d` parameter labels; `paths`, `shapes`: the layout (see
      `ParameterSpace`).
    - `n_failed`: simulations dropped because their output or summary was not finite.
    - `n_chunks`, `chunk_size`: chunks simulated so far and their size.
    - `fingerprint`: a hash of the priors, summary and simulator the bank was made with.
    - `info`: wall time, simulations per second, summary description.
    """

    theta: np.ndarray
    x: np.ndarray
    names: list[str]
    paths: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    n_failed: int = 0
    n_chunks: int = 0
    chunk_size: int = 0
    fingerprint: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.theta.shape[0])

    @classmethod
    def from_arrays(cls, theta: Any, x: Any, space: ParameterSpace) -> SimulationBank:
        """A bank from arrays made elsewhere: `theta (n, d)` in `space`'s layout, `x (n, ...)`.

        Rows where either is not finite are dropped and counted in `n_failed`.
        """
        theta, x = np.asarray(theta, dtype=float), np.asarray(x, dtype=float)
        if theta.ndim != 2 or theta.shape[1] != space.d:
            raise ValueError(f"theta: expected shape (n, {space.d}), got {theta.shape}.")
        if x.ndim < 2 or x.shape[0] != theta.shape[0]:
            raise ValueError(
                f"x: expected shape ({theta.shape[0]}, ...) (one row per theta), got {x.shape}."
            )
        ok = np.all(np.isfinite(theta), 1) & np.all(np.isfinite(x.reshape(len(x), -1)), 1)
        return cls(
            theta=theta[ok],
            x=x[ok],
            names=list(space.names),
            paths=space.paths,
            shapes=dict(space.shapes),
            n_failed=int((~ok).sum()),
            fingerprint=hashlib.sha256(space.token().encode()).hexdigest(),
            info={"summary": "given"},
        )

    @property
    def n_attempted(self) -> int:
        """Simulations run, failed ones included."""
        return len(self) + self.n_failed

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank to `path` (`.npz`), atomically (a temporary file, then a rename)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            theta=self.theta,
            x=self.x,
            names=np.asarray(self.names, dtype=str),
            paths=np.asarray(self.paths, dtype=str),
            shapes=np.asarray([repr(self.shapes[p]) for p in self.paths], dtype=str),
            counts=np.asarray([self.n_failed, self.n_chunks, self.chunk_size]),
            fingerprint=np.asarray(self.fingerprint),
            info=np.asarray(repr(self.info)),
        )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimulationBank:
        """Read a bank written by `save`."""
        import ast

        with np.load(Path(path), allow_pickle=False) as f:
            paths = tuple(str(p) for p in f["paths"])
            shapes = {p: ast.literal_eval(str(s)) for p, s in zip(paths, f["shapes"], strict=True)}
            n_failed, n_chunks, chunk_size = (int(v) for v in f["counts"])
            return cls(
                theta=np.asarray(f["theta"]),
                x=np.asarray(f["x"]),
                names=[str(n) for n in f["names"]],
                paths=paths,
                shapes=shapes,
                n_failed=n_failed,
                n_chunks=n_chunks,
                chunk_size=chunk_size,
                fingerprint=str(f["fingerprint"]),
                info=ast.literal_eval(str(f["info"])),
            )

    def merge(self, *others: SimulationBank) -> SimulationBank:
        """Concatenate this bank and `others` (same priors, summary and simulator)."""
        for o in others:
            if o.fingerprint != self.fingerprint:
                raise ValueError(
                    "others: a bank made with other priors, summary or simulator cannot be "
                    "merged (fingerprints differ)."
                )
        banks = (self, *others)
        return SimulationBank(
            theta=np.concatenate([b.theta for b in banks]),
            x=np.concatenate([b.x for b in banks]),
            names=list(self.names),
            paths=self.paths,
            shapes=dict(self.shapes),
            n_failed=sum(b.n_failed for b in banks),
            n_chunks=sum(b.n_chunks for b in banks),
            chunk_size=self.chunk_size,
            fingerprint=self.fingerprint,
            info=dict(self.info),
        )

    def __repr__(self) -> str:
        rate = self.info.get("simulations_per_s")
        rate = f", {rate:.3g} simulations/s" if rate else ""
        return (
            f"SimulationBank({len(self)} simulations of {len(self.names)} parameters, x "
            f"{self.x.shape[1:]}, {self.n_failed} failed{rate})"
        )


def _simulator_values(sim: bm.Simulator, space: ParameterSpace, params) -> Callable:
    """`theta_flat (d,) -> {path: value}`: the simulator parameters of a flat draw."""
    if params is None:
        return space.split

    def to_sim(theta_flat):
        values = params(space.split(theta_flat))
        if not isinstance(values, Mapping) or not values:
            raise ValueError(
                f"params: expected a non-empty dict {{parameter path: value}}, got {values!r}."
            )
        return dict(values)

    paths = list(jax.eval_shape(to_sim, jnp.zeros(space.d)))
    sim._check_paths(tuple(paths))  # a clear error naming an unknown path
    return to_sim


def _fingerprint(space: ParameterSpace, summary: Any, sim: bm.Simulator, params=None) -> str:
    h = hashlib.sha256()
    h.update(space.token().encode())
    h.update(repr(summary).encode())
    h.update(repr(getattr(params, "__qualname__", params)).encode())
    for leaf in jax.tree.leaves(sim):  # the simulator's fixed parameters and structure
        if hasattr(leaf, "dtype") and not jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


def simulate_bank(
    sim: bm.Simulator,
    priors: Mapping[str, Any] | ParameterSpace,
    summary: Any,
    key: Any,
    num_simulations: int,
    *,
    chunk_size: int | None = None,
    memory_limit: float | None = None,
    path: str | os.PathLike | None = None,
    proposal: Callable[[Any, int], Any] | None = None,
    params: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    progress: bool = True,
) -> SimulationBank:
    """Draw parameters from the priors, simulate them in vmapped chunks, keep the summaries.

    **Arguments:**

    - `sim`: the `brainmass.Simulator`; a stochastic one gets fresh noise per simulation.
    - `priors`: `{parameter path: NumPyro distribution}` in canonical units (the same dict
      `BayesianModel` takes), or a `ParameterSpace`.
    - `summary`: an `inference.summaries` statistic (or a function signal -> features).
    - `key`: a `jax.random` key; chunk `c` uses `fold_in(key, c)`.
    - `num_simulations`: how many simulations the bank should have attempted in all (failed
      ones included); a resumed bank simulates only the rest.
    - `chunk_size`: simulations per vmapped chunk; default from the compiled memory of a
      2-simulation chunk and `memory_limit` (as `bm.sweep`: half the free memory).
    - `path`: a `.npz` file written after every chunk; an existing file made with the same
      priors, summary and simulator is resumed (its chunk size kept).
    - `proposal`: draw parameters from `proposal(key, n) -> (n, d)` (flat, canonical units;
      jit-able) instead of the priors, e.g. a prior truncated to a posterior's support.
    - `params`: a pure JAX function `{name: value} -> {parameter path: value}` from the
      inferred quantities (the keys of `priors`, free names) to simulator parameters, e.g.
      an excitability gradient `{"slope": s} -> {"model.a": a0 + s * y}` over regions.
      Without it the priors' keys are simulator parameter paths.
    - `progress`: show a progress bar.

    **Returns:** a `SimulationBank` with `theta (n, d)`, `x (n, *summary shape)` of the
    `n` successful simulations; `n_failed` counts the dropped ones (a warning says how many).
    """
    if not isinstance(sim, bm.Simulator):
        raise ValueError(f"sim: expected a brainmass.Simulator, got {type(sim).__name__}.")
    check_integers(("num_simulations", num_simulations, 1))
    if chunk_size is not None:
        check_integers(("chunk_size", chunk_size, 1))
    if params is not None and not callable(params):
        raise ValueError(
            f"params: expected a function {{name: value}} -> {{path: value}}, got {params!r}."
        )
    if not isinstance(priors, ParameterSpace):
        priors = ParameterSpace(sim if params is None else None, priors)
    space = priors
    summary = as_summary(summary, sim)
    fingerprint = _fingerprint(space, summary, sim, params)
    path = None if path is None else Path(path).with_suffix(".npz")

    bank = None
    if path is not None and path.exists():
        bank = SimulationBank.load(path)
        if bank.fingerprint != fingerprint:
            raise ValueError(
                f"path: {path} holds a bank made with other priors, summary or simulator; "
                "pass another path (or delete the file) to start a new bank."
            )
        chunk_size = bank.chunk_size
    num_simulations = int(num_simulations)
    done = 0 if bank is None else bank.n_chunks * bank.chunk_size
    todo = max(0, num_simulations - done)
    if bank is not None and todo == 0:
        return bank

    to_sim = _simulator_values(sim, space, params)
    simulate = sim.function(list(jax.eval_shape(to_sim, jnp.zeros(space.d))), output="result")
    stochastic = sim.network.noise is not None

    def one(theta_flat, key):
        result = simulate(to_sim(theta_flat), key if stochastic else None)
        x = summary(result.signal)
        ok = jnp.asarray(result.ok) & jnp.all(jnp.isfinite(x))
        return x, ok

    def chunk(key, size):
        k_theta, k_noise = jax.random.split(key)
        theta = space.sample(k_theta, size) if proposal is None else proposal(k_theta, size)
        x, ok = jax.vmap(one)(theta, jax.random.split(k_noise, size))
        return {"theta": theta, "x": x, "ok": ok}

    key_spec = jax.eval_shape(lambda: jax.random.key(0))

    def compile_for(size: int):
        lowered = jax.jit(chunk, static_argnums=1).lower(key_spec, size)
        return lowered.compile(), lowered.out_info

    compiled = None
    if chunk_size is None:
        chunk_size, _, _, compiled, _ = _auto_chunk_size(compile_for, todo, memory_limit)
    if compiled is None:
        compiled, _ = compile_for(chunk_size)
    chunk_size = int(chunk_size)

    x_shape = tuple(summary.shape)
    if bank is None:
        bank = SimulationBank(
            theta=np.zeros((0, space.d)),
            x=np.zeros((0, *x_shape)),
            names=list(space.names),
            paths=space.paths,
            shapes=dict(space.shapes),
            chunk_size=chunk_size,
            fingerprint=fingerprint,
            info={"summary": repr(summary), "wall_s": 0.0},
        )
    n_chunks = -(-todo // chunk_size)
    thetas, xs = [bank.theta], [bank.x]
    n_failed = bank.n_failed
    wall = float(bank.info.get("wall_s", 0.0))
    bar = progress_bar(
        total=n_chunks * chunk_size, desc="simulations", unit="sim", disable=not progress
    )
    try:
        for c in range(bank.n_chunks, bank.n_chunks + n_chunks):
            t0 = time.perf_counter()
            out = jax.device_get(compiled(jax.random.fold_in(key, c)))
            ok = np.asarray(out["ok"])
            thetas.append(np.asarray(out["theta"])[ok])
            xs.append(np.asarray(out["x"])[ok])
            n_failed += int((~ok).sum())
            wall += time.perf_counter() - t0
            bank = SimulationBank(
                theta=np.concatenate(thetas),
                x=np.concatenate(xs),
                names=list(space.names),
                paths=space.paths,
                shapes=dict(space.shapes),
                n_failed=n_failed,
                n_chunks=c + 1,
                chunk_size=chunk_size,
                fingerprint=fingerprint,
                info={
                    "summary": repr(summary),
                    "wall_s": wall,
                    "simulations_per_s": (c + 1) * chunk_size / wall if wall > 0 else None,
                },
            )
            thetas, xs = [bank.theta], [bank.x]
            if path is not None:
                bank.save(path)
            bar.update(chunk_size)
    finally:
        bar.close()
    if bank.n_failed:
        warnings.warn(
            f"simulate_bank: {bank.n_failed} of {bank.n_attempted} simulations failed (non-finite "
            "output or summary) and were dropped.",
            stacklevel=2,
        )
    return bank
