"""Simulation banks: parameters drawn from the priors, simulated, summarised, kept on disk.

A bank is the training set of simulation-based inference: `theta (n, d)`, the flat
parameter draws, and `x (n, *shape)`, the summary statistics of their simulations.
`simulate_bank` draws and simulates in vmapped chunks of one compiled size (chosen from
the compiled memory of a small chunk unless given), drops the simulations that failed
(non-finite output or summary; counted in `n_failed`), and with `checkpoint=` writes the bank
after every chunk (`brainmass.storage`: arrays and a JSON header, written atomically, safe
with concurrent writers): an interrupted run loses at most the chunk in flight, and calling
`simulate_bank` again with the same `checkpoint` continues it (with a larger `num_simulations`
it grows the bank). A bank is resumed only under the settings it was made with (its
`fingerprint`: priors, simulator, summary, params, proposal, key); any other is refused
naming what differs.

Chunk `c` draws its parameters and noise from `jax.random.fold_in(key, c)`: the same
key gives the same bank whatever the chunk size of a resumed run.
"""

from __future__ import annotations

import math
import os
import time
import types
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
from brainmass import storage
from brainmass.chunking import auto_chunk_size
from brainmass.progress import progress_bar

from ._checks import check_integers
from .priors import Hierarchical, check_prior, check_priors, prior_token

__all__ = ["Identity", "PriorSpace", "SimulationBank", "as_summary", "simulate_bank"]


# ---------------------------------------------------------------------- parameters
class PriorSpace:
    """The flat layout of a priors dict: every parameter draw as one vector of `d` numbers.

    (Named `PriorSpace`, not `ParameterSpace`: that is `brainmass.fitting.ParameterSpace`,
    the Fitter's bounded search space.)

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

    def fingerprint(self) -> str:
        """The `"priors"` entry of a bank's `fingerprint`: a digest of `token()`.

        Equal for equal priors in any process; compare it with
        `bank.fingerprint["priors"]` to check a bank was drawn under these priors.
        """
        return f"digest:{storage.digest(self.token())}"

    def __repr__(self) -> str:
        layout = ", ".join(f"{p}{list(s)}" for p, s in self.shapes.items())
        return f"PriorSpace({layout}, d={self.d})"


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
    return sim.signal_shape


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
      `PriorSpace`).
    - `n_failed`: simulations dropped because their output or summary was not finite.
    - `n_chunks`, `chunk_size`: chunks simulated so far and their size.
    - `fingerprint`: the settings the bank was made under, by name (JSON values, as
      `brainmass.storage.describe` writes them): `"priors"` (`PriorSpace.fingerprint`),
      the simulator's (`dt`, `duration`, `solver`, `monitor`, `network`, ...: see
      `Simulator.fingerprint`), `"summary"`, `"params"`, `"proposal"` and `"key"`. A bank
      from `from_arrays` records only `"priors"` and `"summary": "given"`.
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
    fingerprint: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.theta.shape[0])

    @classmethod
    def from_arrays(cls, theta: Any, x: Any, space: PriorSpace) -> SimulationBank:
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
            fingerprint={"priors": space.fingerprint(), "summary": "given"},
            info={"summary": "given"},
        )

    @property
    def n_attempted(self) -> int:
        """Simulations run, failed ones included."""
        return len(self) + self.n_failed

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank to `path` (`.npz` added if missing) through `brainmass.storage`.

        Atomic and durable (a unique temporary file, fsync, rename): readers see the old
        file or the new one, and concurrent writers of one path leave one valid file.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        header = {
            "names": list(self.names),
            "paths": list(self.paths),
            "shapes": {p: list(self.shapes[p]) for p in self.paths},
            "n_failed": int(self.n_failed),
            "n_chunks": int(self.n_chunks),
            "chunk_size": int(self.chunk_size),
            "info": self.info,
        }
        return storage.save(
            path,
            _KIND,
            {"theta": self.theta, "x": self.x},
            fingerprint=self.fingerprint,
            header=header,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimulationBank:
        """Read a bank written by `save`.

        **Raises:** `FileNotFoundError`; `brainmass.storage.StorageError` (a `ValueError`)
        naming `path` for a damaged, truncated or foreign file.
        """
        return cls._from_record(storage.load(path, _KIND))

    @classmethod
    def _from_record(cls, record: storage.Record) -> SimulationBank:
        h, a = record.header, record.arrays
        try:
            paths = tuple(str(p) for p in h["paths"])
            bank = cls(
                theta=np.asarray(a["theta"]),
                x=np.asarray(a["x"]),
                names=[str(n) for n in h["names"]],
                paths=paths,
                shapes={p: tuple(int(n) for n in h["shapes"][p]) for p in paths},
                n_failed=int(h["n_failed"]),
                n_chunks=int(h["n_chunks"]),
                chunk_size=int(h["chunk_size"]),
                fingerprint=dict(h.get("fingerprint", {})),
                info=dict(h.get("info", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise storage.StorageError(
                f"path: {record.path} is not a complete simulation bank ({err!r} missing or bad)."
            ) from err
        if bank.theta.ndim != 2 or len(bank.x) != len(bank.theta):
            raise storage.StorageError(
                f"path: {record.path}: theta {bank.theta.shape} and x {bank.x.shape} do not "
                "form a bank (n, d) and (n, ...)."
            )
        return bank

    def merge(self, *others: SimulationBank) -> SimulationBank:
        """Concatenate this bank and `others`, made under the same settings.

        The priors, simulator, summary and `params` must agree (a `ValueError` names each
        setting that differs); the key and proposal may differ (banks drawn with other keys,
        or the rounds of sequential NPE). Where they differ the merged bank records
        `"merged"` for them, so it cannot be resumed by `simulate_bank`.
        """
        fingerprint = dict(self.fingerprint)
        for i, o in enumerate(others):
            if not isinstance(o, SimulationBank):
                raise ValueError(f"others[{i}]: expected a SimulationBank, got {o!r}.")
            differ = []
            for k in sorted(set(self.fingerprint) | set(o.fingerprint)):
                a = self.fingerprint.get(k, "<not recorded>")
                b = o.fingerprint.get(k, "<not recorded>")
                if a == b:
                    continue
                if k in _MAY_DIFFER_IN_MERGE:
                    fingerprint[k] = "merged"
                else:
                    differ.append(f"{k}: this bank {_short(a)}, others[{i}] {_short(b)}")
            if differ:
                raise ValueError(
                    f"others[{i}]: a bank made under other settings cannot be merged "
                    f"({'; '.join(differ)})."
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
            fingerprint=fingerprint,
            info=dict(self.info),
        )

    def __repr__(self) -> str:
        rate = self.info.get("simulations_per_s")
        rate = f", {rate:.3g} simulations/s" if rate else ""
        return (
            f"SimulationBank({len(self)} simulations of {len(self.names)} parameters, x "
            f"{self.x.shape[1:]}, {self.n_failed} failed{rate})"
        )


def _simulator_values(sim: bm.Simulator, space: PriorSpace, params) -> Callable:
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
    for path in paths:
        sim.spec(path)  # a clear error naming an unknown path
    return to_sim


_KIND = "inference.SimulationBank"
_MAY_DIFFER_IN_MERGE = ("key", "proposal")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _function_text(fn: Any) -> str | None:
    """A function's name and a digest of its code and closure (None for None)."""
    if fn is None:
        return None
    name = getattr(fn, "__qualname__", type(fn).__name__)
    try:
        return f"{name} digest:{storage.digest(_without_modules(fn))}"
    except Exception:  # an object the digest cannot read: its code alone
        code = getattr(fn, "__code__", None)
        return f"{name} code digest:{storage.digest(None if code is None else code.co_code)}"


def _without_modules(fn: Any, depth: int = 0) -> Any:
    """`fn` with the modules it closes over (`jax`, `np`, ...) replaced by their names.

    A module is code, not data: only its name identifies it (walking its attributes
    would be slow and meets objects a digest cannot read). Nested closures likewise.
    """
    if isinstance(fn, types.MethodType):  # a bound method: its function and its object
        return (_without_modules(fn.__func__, depth + 1), fn.__self__)
    if not isinstance(fn, types.FunctionType) or not fn.__closure__ or depth > 4:
        return fn
    cells = []
    for cell in fn.__closure__:
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            value = None
        if isinstance(value, types.ModuleType):
            value = f"module {value.__name__}"
        else:
            value = _without_modules(value, depth + 1)
        cells.append(types.CellType(value))
    out = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, tuple(cells)
    )
    out.__qualname__, out.__module__ = fn.__qualname__, fn.__module__
    return out


def _summary_text(summary: Any) -> str:
    """The summary's class, settings and bound signal as a name and a digest."""
    if hasattr(summary, "_config"):  # an inference.summaries statistic: its settings
        state = (repr(summary), summary._period, summary._signal_shape, summary._config())
    elif isinstance(summary, _FunctionSummary):  # a wrapped function: its code and closure
        state = (repr(summary), summary.shape, _without_modules(summary.fn))
    else:  # another object with the summary methods
        state = (repr(summary), summary)
    return f"{type(summary).__name__} digest:{storage.digest(state)}"


def _fingerprint(
    space: PriorSpace, summary: Any, sim: bm.Simulator, params, proposal, key
) -> dict[str, Any]:
    """Every setting that changes a bank's rows, by name, as `storage.describe` writes them."""
    settings = {
        "priors": space.fingerprint(),
        **sim.fingerprint(),  # dt, duration, solver, monitor, network, ...
        "summary": _summary_text(summary),
        "params": _function_text(params),
        "proposal": _function_text(proposal),
        "key": np.asarray(jax.random.key_data(_typed_key(key))).ravel().tolist(),
    }
    return {k: storage.describe(v) for k, v in settings.items()}


def _typed_key(key: Any) -> Any:
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(jnp.asarray(key, dtype=jnp.uint32))


def simulate_bank(
    sim: bm.Simulator,
    priors: Mapping[str, Any] | PriorSpace,
    summary: Any,
    key: Any,
    num_simulations: int,
    *,
    chunk_size: int | None = None,
    memory_limit: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    proposal: Callable[[Any, int], Any] | None = None,
    params: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    progress: bool = True,
) -> SimulationBank:
    """Draw parameters from the priors, simulate them in vmapped chunks, keep the summaries.

    **Arguments:**

    - `sim`: the `brainmass.Simulator`; a stochastic one gets fresh noise per simulation.
    - `priors`: `{parameter path: NumPyro distribution}` in canonical units (the same dict
      `BayesianModel` takes), or a `PriorSpace`.
    - `summary`: an `inference.summaries` statistic (or a function signal -> features).
    - `key`: a `jax.random` key; chunk `c` uses `fold_in(key, c)`.
    - `num_simulations`: how many simulations the bank should have attempted in all (failed
      ones included); a resumed bank simulates only the rest.
    - `chunk_size`: simulations per vmapped chunk; default from the compiled memory of a
      2-simulation chunk and `memory_limit` (as `bm.sweep`: half the free memory).
    - `checkpoint`: the bank's `.npz` file, written after every chunk (atomically; read it
      with `SimulationBank.load`); an existing file made
      under the same settings is resumed (its chunk size kept). One made under other
      priors, simulator settings (`dt`, `duration`, `solver`, `monitor`, `network`, ...),
      summary, `params`, `proposal` or `key` is refused with a
      `brainmass.storage.StorageError` naming each setting that differs; a damaged file
      with one naming it.
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
    if not isinstance(priors, PriorSpace):
        priors = PriorSpace(sim if params is None else None, priors)
    space = priors
    summary = as_summary(summary, sim)
    fingerprint = _fingerprint(space, summary, sim, params, proposal, key)
    path = None if checkpoint is None else Path(checkpoint).with_suffix(".npz")

    bank = None
    if path is not None and path.exists():
        record = storage.load(
            path,
            _KIND,
            fingerprint=fingerprint,
            what="checkpoint",
            hint="Pass another checkpoint (or delete the file) to start a new bank.",
        )
        bank = SimulationBank._from_record(record)
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
        chunk_size, _, _, compiled, _ = auto_chunk_size(compile_for, todo, memory_limit)
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
