"""Simulator: a network, a solver, a monitor and a duration; a pure function of its parameters."""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import brainunit as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Float, PRNGKeyArray, Signal, State
from ._integration import (
    DelayPlan,
    plan_delays,
    simulate_batchable,
    simulate_diffrax,
    simulate_fixed_step,
)
from ._params import broadcast_to_regions, check_domain, parameter_fields
from .checks import check_key
from .errors import SimulationError
from .monitors import AbstractMonitor, Raw, TemporalAverage
from .network import Network
from .solvers import AbstractSolver, Diffrax, default_solver
from .units import MM, MS, SPEED, format_unit, to_canonical, to_float

__all__ = ["Simulator", "Result", "ParameterInfo", "ParameterSpec"]


class ParameterInfo(NamedTuple):
    """One simulator parameter: its dotted path, value (canonical unit), unit, domain, doc."""

    path: str
    value: Any
    unit: str
    domain: str
    doc: str


class ParameterSpec(NamedTuple):
    """What one parameter path of a simulator is (`Simulator.spec(path)`).

    - `path`: the dotted path, e.g. `"coupling.G"`.
    - `value`: its current value, a plain array in the canonical unit.
    - `unit`: the canonical unit as a brainunit unit (values given as quantities are
      converted to it; plain numbers are read in it), or None when dimensionless.
    - `domain`: the admissible values: `"real"`, `"positive"`, `"nonnegative"` or
      `"unit_interval"`.
    - `doc`: one line saying what the parameter is.
    - `shape`: the shape of the current value: `()` for one shared value, `(n_regions,)`
      for one value per region, `(n_regions, n_regions)` for the connectome matrices.
    """

    path: str
    value: Any
    unit: Any
    domain: str
    doc: str
    shape: tuple[int, ...]


class _Spec(NamedTuple):
    attrs: tuple[str, ...]
    unit: Any
    domain: str
    doc: str


class Result(eqx.Module):
    """What a simulation returns.

    **Attributes:**

    - `time`: sample times in ms, shape `(n_samples,)`.
    - `signal`: the monitor's output, shape `(n_samples, n_channels)`.
    - `labels`: the channel names (region labels or sensor names).
    - `final_state`: the state at the end, `(n_vars, n_regions)`.
    - `ok`: a boolean scalar, False when the simulation produced non-finite values
      (blew up). Inside a jitted fit this is the flag to test; `check()` raises.
    """

    time: Float
    signal: Signal
    final_state: State
    ok: Any
    labels: tuple[str, ...] = eqx.field(static=True)

    def to_xarray(self, name: str = "signal") -> Any:
        """The signal as a labelled `xarray.DataArray` with dims `("time", "channel")`.

        Coordinates: `time` in ms (the sample times) and `channel` (the
        monitor's channel names: region labels or sensor names). Batched
        results (leading batch axes, from `jax.vmap`) keep those axes as
        `batch_0`, `batch_1`, ... in front.
        """
        import xarray as xr

        signal = np.asarray(self.signal)
        time = np.asarray(self.time)
        batch = tuple(f"batch_{i}" for i in range(signal.ndim - 2))
        if time.ndim > 1:  # vmapped: every lane has the same sample times
            time = time.reshape(-1, time.shape[-1])[0]
        return xr.DataArray(
            signal,
            dims=(*batch, "time", "channel"),
            coords={"time": ("time", time, {"units": "ms"}), "channel": list(self.labels)},
            name=name,
        )

    def check(self) -> Result:
        """Raise `SimulationError` (time and channels named) if the run blew up; else self."""
        if isinstance(self.ok, jax.core.Tracer) or bool(self.ok):
            return self
        signal = np.asarray(self.signal)
        bad = ~np.isfinite(signal)
        if bad.any():
            first = int(np.argmax(bad.any(axis=1)))
            channels = [self.labels[i] for i in np.flatnonzero(bad[first])]
            shown = ", ".join(channels[:8]) + (" ..." if len(channels) > 8 else "")
            where = (
                f"at t = {float(self.time[first]):.6g} ms in {len(channels)} channel(s): {shown}"
            )
        else:
            where = "in the final state (after the last sample)"
        if bad.any() and np.all(np.isfinite(np.asarray(self.final_state))):
            raise SimulationError(
                f"the monitor's output became non-finite {where}, while the neural state "
                "stayed finite: the forward model broke down, not the network. For BOLD, "
                "the Balloon-Windkessel model fails when the drive pushes blood flow to "
                "zero; reduce the drive with BOLD(scale=...) or subtract its mean with "
                "BOLD(baseline=...). run(key, check=False) returns the result without raising."
            )
        raise SimulationError(
            f"the simulation produced non-finite values (it blew up) {where}. "
            "Try a smaller dt, a weaker coupling or parameters in a stable regime; "
            "run(key, check=False) returns the result without raising."
        )


def _state_array(
    value: Any,
    model,
    n_regions: int,
    name: str,
    *,
    traced_ok: bool,
    default: State | None = None,
) -> State:
    """A state given as a dict per variable, or an `(n_vars, n_regions)` array.

    Variables a dict leaves out take their row of `default` (the model's default state
    where None); values take `default`'s dtype where it is given, else float.
    """
    nv = model.n_vars
    dtype = float if default is None else default.dtype
    if default is None:
        default = model.default_state(n_regions)
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in model.state_variables]
        if unknown:
            raise ValueError(
                f"{name}: {type(model).__name__} has no state variable(s) {unknown}; "
                f"expected names from {model.state_variables}."
            )
        rows = []
        for i, var in enumerate(model.state_variables):
            if var in value:
                v = jnp.asarray(value[var], dtype=dtype)
                if v.shape not in ((), (1,), (n_regions,)):
                    raise ValueError(
                        f"{name}[{var!r}]: expected a scalar or one value per region "
                        f"({n_regions},), got shape {v.shape}."
                    )
                rows.append(jnp.broadcast_to(v, (n_regions,)))
            else:
                rows.append(default[i])
        arr = jnp.stack(rows)
    else:
        arr = jnp.asarray(value, dtype=dtype)
        if arr.shape != (nv, n_regions):
            raise ValueError(
                f"{name}: expected a dict per state variable or an array of shape "
                f"({nv}, {n_regions}) (n_vars, n_regions), got shape {arr.shape}."
            )
    if not traced_ok and not isinstance(arr, jax.core.Tracer):
        if not np.all(np.isfinite(np.asarray(arr))):
            raise ValueError(f"{name}: expected finite values, got NaN or infinity.")
    return arr


def _delays_in_domain(theta: Mapping[str, Any]) -> Any:
    """A boolean scalar: the traced speed (> 0) and tract lengths (>= 0) are finite and in range.

    Under tracing the delay tables clip delays into the planned buffer, so a speed of 0 or
    below would give plausible-looking but meaningless delays; `_run_core` turns such a run
    into a failed one (NaN signal, `ok` False) instead. None when neither is in `theta`.
    """
    checks = []
    if "network.speed" in theta:
        speed = theta["network.speed"]
        checks.append(jnp.all(jnp.isfinite(speed) & (speed > 0)))
    if "connectome.tract_lengths" in theta:
        lengths = theta["connectome.tract_lengths"]
        checks.append(jnp.all(jnp.isfinite(lengths) & (lengths >= 0)))
    if not checks:
        return None
    return jnp.all(jnp.stack(checks))


@eqx.filter_jit
def _run_core(sim: Simulator, theta: dict, key, plan: DelayPlan) -> Result:
    if theta:
        sim = sim._substitute(theta)
    if isinstance(sim.solver, Diffrax):
        samples, final_state, solve_ok = simulate_diffrax(sim)
    elif plan.length > 0 and sim.batching == "lanes":
        samples, final_state = simulate_batchable(sim, key, plan)
        solve_ok = True
    else:
        samples, final_state = simulate_fixed_step(sim, key, plan)
        solve_ok = True
    time, signal = sim.monitor.finalize(sim.loop_time, samples)
    skip = sim.transient_samples
    time, signal = time[skip:], signal[skip:]
    if sim.records_initial:  # monitor(initial=True): a sample at t = 0 first
        # The monitor's read-out of the one-row window of the initial value (an average over
        # a window of zero length is the value itself): x(0) for Raw and TemporalAverage,
        # leadfield @ x(0) for EEG and MEG.
        variable = sim.monitor.variable or sim.network.model.observable
        first = sim.network.model.quantity(sim.init, variable).astype(signal.dtype)
        state0 = sim.monitor.init(sim.network.n_regions, signal.dtype)
        first = sim.monitor.sample(state0, first[None, :], sim.dt)[1].astype(signal.dtype)
        time = jnp.concatenate([jnp.zeros(1, time.dtype), time])
        signal = jnp.concatenate([first[None, :], signal])
    valid = _delays_in_domain(theta)
    if valid is not None:
        signal = jnp.where(valid, signal, jnp.nan)
        final_state = jnp.where(valid, final_state, jnp.nan)
    ok = solve_ok & jnp.all(jnp.isfinite(signal)) & jnp.all(jnp.isfinite(final_state))
    labels = sim.monitor.channels(sim.network)
    return Result(time=time, signal=signal, final_state=final_state, ok=ok, labels=labels)


class Simulator(eqx.Module):
    """Simulate a network: `Simulator(network, dt, duration, monitor, init).run(key)`.

    **Arguments:**

    - `network`: the `Network`.
    - `dt`: time step (quantity or ms), default 0.1 ms.
    - `duration`: simulated time (quantity or ms), default 1000 ms. The run
      covers `floor(duration / period)` whole monitor periods.
    - `monitor`: what is recorded; default `monitors.Raw(period=1 ms)` (or every
      step when 1 ms is not a multiple of `dt`).
    - `init`: initial state: a dict `{"x": x0, ...}` with scalars or one value
      per region (missing variables take the model's defaults), or an array
      `(n_vars, n_regions)`.
    - `history`: the state before t = 0, read by delayed coupling. Default: equal
      to `init`. Either a function `history(t)` of the time in ms (t < 0)
      returning a dict or an `(n_vars, n_regions)` array, or an array
      `(n_past, n_vars, n_regions)` whose row k is the state at `-(k + 1) dt`
      (older steps repeat the last row).
    - `solver`: a fixed-step solver from `brainmass.solvers`, or
      `solvers.Diffrax(...)` for delay-free deterministic networks. Default
      `StochasticHeun()` for noisy networks, `Heun()` otherwise.
    - `remat`: rematerialise (`jax.checkpoint`) chunks of steps so that gradients
      through long runs use memory of order the square root of the number of
      steps (default True; forward runs are unaffected). Named `remat`, not
      `checkpoint`: across brainmass `checkpoint=` is a resumable file.
    - `max_block`: the most steps that share one read of the delay buffer.
    - `max_buffer_gib`: the largest delay ring buffer allowed, in GiB (default
      8). The buffer holds the coupling features of the last (twice the longest
      delay in steps) steps, `n_regions x 2 L x n_features` values per
      simulation (a vmapped batch of B lanes needs B times as much); a buffer
      above the limit (a speed in the wrong unit, such as 1e-6 m/s, or a tiny
      `dt` with long tracts) is refused when the simulator is built, before
      anything is allocated, with a ValueError naming the size, the speed, the
      longest tract and `dt`. Raise the limit for a machine with the memory.
    - `batching`: how `jax.vmap` batches a delayed network. `"lanes"` (default):
      a batch runs as one simulation with the batch on the last axis of the
      delay buffer (no batching penalty on CPU; `jax.grad` and
      `jax.vmap(jax.grad(...))` supported, forward-mode autodiff such as
      `jax.jvp` and `jax.hessian` not). `"vmap"`: plain JAX batching, every
      transformation. Delay-free networks always use plain JAX batching.

    The simulator is an immutable pytree: `with_params` returns a new one, and
    `function(paths)` gives a pure `f(theta, key) -> signal` for jit, vmap and grad.
    """

    network: Network
    solver: AbstractSolver | Diffrax
    monitor: AbstractMonitor
    init: State
    history: Any
    dt: float = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    remat: bool = eqx.field(static=True)
    max_block: int = eqx.field(static=True)
    max_buffer_gib: float = eqx.field(static=True)
    batching: str = eqx.field(static=True)
    plan: DelayPlan = eqx.field(static=True)

    def __init__(
        self,
        network: Network,
        dt: Any = 0.1,
        duration: Any = 1000.0,
        monitor: AbstractMonitor | None = None,
        init: Any = None,
        history: Any = None,
        solver: AbstractSolver | Diffrax | None = None,
        remat: bool = True,
        max_block: int = 64,
        batching: str = "lanes",
        max_buffer_gib: float = 8.0,
    ):
        if not isinstance(network, Network):
            raise ValueError(f"network: expected a brainmass.Network, got {network!r}.")
        dt = to_float(dt, MS, "dt")
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt: expected a time step > 0 ms, got {dt}.")
        duration = to_float(duration, MS, "duration")
        if not (math.isfinite(duration) and duration >= dt):
            raise ValueError(
                f"duration: expected a duration of at least one time step (dt = {dt} ms), "
                f"got {duration} ms."
            )
        if monitor is None:
            steps = 1.0 / dt
            monitor = Raw(period=1.0 if abs(steps - round(steps)) < 1e-9 and steps >= 1 else None)
        if not isinstance(monitor, AbstractMonitor):
            raise ValueError(f"monitor: expected a brainmass monitor, got {monitor!r}.")
        model = network.model
        variable = monitor.variable or model.observable
        if variable not in model.variable_names():
            raise ValueError(
                f"monitor.variable: {type(model).__name__} has no variable {variable!r}; "
                f"expected one of {model.variable_names()}."
            )
        stochastic = network.noise is not None
        if solver is None:
            solver = default_solver(stochastic)
        if not isinstance(solver, (AbstractSolver, Diffrax)):
            raise ValueError(f"solver: expected a brainmass solver, got {solver!r}.")
        if stochastic and not solver.stochastic:
            raise ValueError(
                f"solver: {type(solver).__name__} is deterministic but the network has noise; "
                "use solvers.StochasticHeun() or solvers.EulerMaruyama()."
            )
        if isinstance(solver, Diffrax) and network.has_delays:
            raise ValueError(
                "solver: solvers.Diffrax handles delay-free networks only (this network has a "
                "conduction speed); use a fixed-step solver such as solvers.Heun()."
            )
        n = network.n_regions
        self.network = network
        self.solver = solver
        self.monitor = monitor
        self.dt = dt
        self.duration = duration
        self.remat = bool(remat)
        self.max_block = int(max_block)
        if not (isinstance(max_buffer_gib, (int, float)) and 0 < max_buffer_gib < math.inf):
            raise ValueError(
                f"max_buffer_gib: expected the largest delay buffer in GiB, a number > 0, got "
                f"{max_buffer_gib!r}."
            )
        self.max_buffer_gib = float(max_buffer_gib)
        if batching not in ("lanes", "vmap"):
            raise ValueError(f"batching: expected 'lanes' or 'vmap', got {batching!r}.")
        self.batching = batching
        # validate the sampling grid before anything depends on it
        _ = self.period_steps, self.n_samples
        if self.transient_samples >= self.n_samples:
            raise ValueError(
                f"monitor.transient: {monitor.transient} ms discards every sample of a "
                f"{duration} ms run; expected a transient shorter than the duration."
            )
        monitor.check(network, dt)
        if isinstance(solver, Diffrax) and not isinstance(monitor, (Raw, TemporalAverage)):
            raise ValueError(
                f"monitor: solvers.Diffrax records Raw and TemporalAverage monitors only, got "
                f"{type(monitor).__name__}; use a fixed-step solver."
            )
        self.init = _state_array(
            model.default_state(n) if init is None else init, model, n, "init", traced_ok=False
        )
        if history is not None and not callable(history):
            history = jnp.asarray(history, dtype=float)
            if history.ndim != 3 or history.shape[1:] != (model.n_vars, n):
                raise ValueError(
                    f"history: expected a function of time or an array of shape "
                    f"(n_past, {model.n_vars}, {n}), got shape {history.shape}."
                )
            if not np.all(np.isfinite(np.asarray(history))):
                raise ValueError("history: expected finite values, got NaN or infinity.")
        self.history = history
        self.plan = self._make_plan(())

    # ------------------------------------------------------------ time grid
    @property
    def period(self) -> float:
        """The monitor's sampling period in ms."""
        return self.dt if self.monitor.period is None else self.monitor.period

    @property
    def period_steps(self) -> int:
        """Steps per monitor sample."""
        ratio = self.period / self.dt
        steps = round(ratio)
        if steps < 1 or abs(ratio - steps) > 1e-6 * max(ratio, 1.0):
            raise ValueError(
                f"monitor.period: expected a whole multiple of dt = {self.dt} ms, got "
                f"{self.period} ms ({ratio:.6g} steps)."
            )
        return steps

    @property
    def n_samples(self) -> int:
        """Number of monitor samples, `floor(duration / period)`."""
        count = int(math.floor(self.duration / self.period + 1e-9))
        if count < 1:
            raise ValueError(
                f"duration: {self.duration} ms is shorter than the monitor period {self.period} ms."
            )
        return count

    @property
    def transient_samples(self) -> int:
        """How many initial samples the monitor's `transient` discards."""
        return int(math.floor(self.monitor.transient / self.period + 1e-9))

    @property
    def n_steps(self) -> int:
        """Number of integration steps."""
        return self.n_samples * self.period_steps

    @property
    def dt_model(self) -> float:
        """The time step in the model's own time unit."""
        return float((self.dt * u.ms).to_decimal(self.network.model.time_unit))

    @property
    def loop_time(self) -> Float:
        """The times of the samples the simulation loop takes, ms: `period, 2 period, ...`."""
        return self.period * jnp.arange(1, self.n_samples + 1)

    @property
    def time(self) -> Float:
        """Sample times of the signal in ms, `(n_samples,)`: `period, 2 period, ...`.

        With a monitor recording the initial state (`initial=True`: `Raw`,
        `TemporalAverage`, `EEG`, `MEG`) `(n_samples + 1,)`: `0, period, ...`.
        """
        if self.records_initial:
            return self.period * jnp.arange(0, self.n_samples + 1)
        return self.loop_time

    @property
    def records_initial(self) -> bool:
        """Whether the signal starts with a sample of the initial state at t = 0.

        The monitor's `initial` attribute (`Raw`, `TemporalAverage`, `EEG`, `MEG`); False
        for a monitor without one (BOLD).
        """
        return bool(getattr(self.monitor, "initial", False))

    @property
    def signal_shape(self) -> tuple[int, int]:
        """The shape of `run(key).signal`, `(n_samples - transient_samples, n_channels)`.

        One row more when the monitor records the initial state (`initial=True`).

        Computed from the settings, without simulating: `n_channels` is the monitor's
        number of channels (one per region, or one per sensor for EEG and MEG).
        """
        n_channels = len(self.monitor.channels(self.network))
        extra = 1 if self.records_initial else 0
        return (self.n_samples - self.transient_samples + extra, n_channels)

    def history_state(self, value: Any) -> State:
        """A history value (dict or array) as an `(n_vars, n_regions)` array."""
        return _state_array(
            value, self.network.model, self.network.n_regions, "history", traced_ok=True
        )

    # ------------------------------------------------------------ parameters
    def _specs(self) -> dict[str, _Spec]:
        net = self.network
        specs: dict[str, _Spec] = {}
        for prefix, module, attrs in (
            ("model", net.model, ("network", "model")),
            ("coupling", net.coupling, ("network", "coupling")),
            ("noise", net.noise, ("network", "noise")),
            ("monitor", self.monitor, ("monitor",)),
        ):
            if module is None:
                continue
            for f in parameter_fields(module):
                md = f.metadata
                specs[f"{prefix}.{f.name}"] = _Spec(
                    attrs + (f.name,), md["unit"], md["domain"], md["doc"]
                )
        if net.has_delays:
            specs["network.speed"] = _Spec(
                ("network", "speed"), SPEED, "positive", "conduction speed"
            )
        specs["connectome.weights"] = _Spec(
            ("network", "connectome", "weights"), None, "nonnegative", "structural weights"
        )
        specs["connectome.tract_lengths"] = _Spec(
            ("network", "connectome", "tract_lengths"), MM, "nonnegative", "tract lengths"
        )
        return specs

    def _get(self, attrs: tuple[str, ...]) -> Any:
        obj = self
        for a in attrs:
            obj = getattr(obj, a)
        return obj

    def parameter_info(self) -> list[ParameterInfo]:
        """Every parameter: dotted path, value (canonical unit), unit, domain and description."""
        return [
            ParameterInfo(path, self._get(s.attrs), format_unit(s.unit), s.domain, s.doc)
            for path, s in self._specs().items()
        ]

    def spec(self, path: str) -> ParameterSpec:
        """What the parameter at a dotted `path` is: value, canonical unit, domain and shape.

        **Arguments:**

        - `path`: a dotted parameter path, one of the keys of `params()` (`"coupling.G"`,
          `"model.a"`, `"network.speed"`, ...).

        **Returns:** a `ParameterSpec` `(path, value, unit, domain, doc, shape)`.

        **Raises:** `ValueError` for an unknown path, naming the closest known paths.
        """
        s = self._check_paths([path])[path]
        value = self._get(s.attrs)
        return ParameterSpec(path, value, s.unit, s.domain, s.doc, tuple(jnp.shape(value)))

    def params(self) -> dict[str, Any]:
        """Every parameter by dotted path (`"coupling.G"`, `"model.a"`, ...).

        Values carry their units as brainunit quantities; dimensionless ones are
        plain arrays.
        """
        out = {}
        for path, s in self._specs().items():
            value = self._get(s.attrs)
            out[path] = value if s.unit is None else value * s.unit
        return out

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change what `run` returns, by name (for saved files).

        `dt` and `duration` (ms), the `solver` and the `monitor` (their type and
        settings), the remaining structure (`network`: model, connectome, coupling,
        delays, noise, with every parameter value; `init` and `history`) as digests,
        and the memory-saving options (`remat`, `max_block`, `batching`), which
        can change results in the last bits. `brainmass.storage.check_fingerprint`
        names each setting that differs between a saved file and this simulator.
        """
        from .storage import digest

        solver, monitor = self.solver, self.monitor
        return {
            "dt": self.dt,
            "duration": self.duration,
            "solver": f"{type(solver).__name__} digest:{digest(solver)}",
            "monitor": f"{type(monitor).__name__} digest:{digest(monitor)}",
            "network": self.network,
            "init": self.init,
            "history": self.history,
            "remat": self.remat,
            "max_block": self.max_block,
            "batching": self.batching,
        }

    def _check_paths(self, paths: Sequence[str]) -> dict[str, _Spec]:
        specs = self._specs()
        for path in paths:
            if path not in specs:
                close = difflib.get_close_matches(path, list(specs), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                extra = ""
                if path == "network.speed":
                    extra = " This network has no delays: build it with Network(..., speed=...)."
                raise ValueError(
                    f"unknown parameter path {path!r}.{hint}{extra} "
                    f"Known paths: {', '.join(specs)}."
                )
        return specs

    def _substitute(self, theta: Mapping[str, Any]) -> Simulator:
        """Replace parameters (no plan update, no domain checks on traced values)."""
        specs = self._check_paths(list(theta))
        sim = self
        for path, value in theta.items():
            spec = specs[path]
            value = to_canonical(value, spec.unit, path)
            old = self._get(spec.attrs)
            if spec.attrs[-1] in ("weights", "tract_lengths", "speed") and jnp.shape(
                value
            ) != jnp.shape(old):
                raise ValueError(
                    f"{path}: expected shape {jnp.shape(old)}, got {jnp.shape(value)}."
                )
            if path.startswith("monitor."):
                broadcast_to_regions(value, self.network.n_regions, path)
            sim = eqx.tree_at(lambda s, a=spec.attrs: s._get(a), sim, value)
        sim.network.validate()
        return sim

    def with_params(self, values: Mapping[str, Any]) -> Simulator:
        """A new Simulator with some parameters replaced, by dotted path.

        **Arguments:**

        - `values`: `{path: value}`; values are quantities or numbers in the
          parameter's canonical unit, scalars or one value per region (see
          `params()` for the paths and units).

        **Raises:** `ValueError` for an unknown path, a value of the wrong unit
        or shape, or outside the parameter's domain (e.g. a negative time constant).
        """
        specs = self._check_paths(list(values))
        for path, value in values.items():
            converted = to_canonical(value, specs[path].unit, path)
            check_domain(converted, specs[path].domain, path)
        sim = self._substitute(values)
        touched = {"network.speed", "connectome.tract_lengths", "connectome.weights"} & set(values)
        if touched:
            plan = sim._make_plan(())
            sim = copy.copy(sim)
            object.__setattr__(sim, "plan", plan)  # a static field: not reachable by tree_at
        return sim

    def _make_plan(self, traced_paths: Sequence[str]) -> DelayPlan:
        """The delay plan; traced paths (or traced values) get headroom."""
        net = self.network
        leaves = [net.connectome.tract_lengths, net.connectome.weights]
        if net.speed is not None:
            leaves.append(net.speed)
        concrete = not any(isinstance(x, jax.core.Tracer) for x in leaves)
        traced_paths = set(traced_paths)
        delays_traced = bool({"network.speed", "connectome.tract_lengths"} & traced_paths)
        weights_traced = "connectome.weights" in traced_paths
        if not concrete:
            if not hasattr(self, "plan"):
                raise ValueError("network: cannot size the delay buffer from traced values.")
            previous = self.plan
            if not previous.traced and previous.length > 0:
                raise ValueError(
                    "with_params: a traced conduction speed, tract lengths or weights needs a "
                    "buffer sized in advance; use Simulator.function(['network.speed', ...]) "
                    "instead of with_params inside jit."
                )
            return previous
        return plan_delays(
            net,
            self.dt,
            self.period_steps,
            self.n_steps,
            traced_delays=delays_traced,
            traced_weights=weights_traced,
            max_block=self.max_block,
            max_buffer_gib=self.max_buffer_gib,
        )

    # ------------------------------------------------------------ running
    def run(self, key: PRNGKeyArray | None = None, *, check: bool = True) -> Result:
        """Simulate. Returns a `Result` (`time` in ms, `signal`, `final_state`, `ok`).

        **Arguments:**

        - `key`: a `jax.random` key; required when the network has noise.
        - `check`: raise `SimulationError` (naming the time and regions) if the
          run produced non-finite values. Skipped automatically under tracing.
        """
        if key is None and self.network.noise is not None:
            raise ValueError("key: this network is stochastic; pass a jax.random key to run it.")
        if key is not None:
            check_key(key)
        result = _run_core(self, {}, key, self.plan)
        return result.check() if check else result

    def function(self, paths: Sequence[str], *, output: str = "signal") -> Callable:
        """A pure function `f(theta, key=None)` of the parameters at `paths`.

        `theta` is a dict `{path: value}` with exactly `paths` as keys. The
        function is jit-compiled once per input structure and works under
        `jax.jit`, `jax.vmap` and `jax.grad`; new values do not retrace.

        Concrete values are checked as in `with_params`: a value outside its
        parameter's domain (a conduction speed of 0 or below, a negative time
        constant, NaN) is a ValueError naming the path. Traced values cannot be
        checked; a traced `network.speed` that is not > 0, or traced
        `connectome.tract_lengths` below 0 (or NaN), make the run a failed
        simulation: a NaN signal, and `Result.ok` False (an infinite loss in
        the Fitter, a rejected point in NUTS). Other traced parameters outside
        their domain are simulated as given.

        **Arguments:**

        - `paths`: dotted parameter paths (see `params()`).
        - `output`: `"signal"` (default) returns the monitor's signal
          `(n_samples, n_channels)`; `"result"` the whole `Result`.
        """
        paths = tuple(paths)
        self._check_paths(paths)
        if output not in ("signal", "result"):
            raise ValueError(f"output: expected 'signal' or 'result', got {output!r}.")
        plan = self._make_plan(paths)
        base = self
        stochastic = self.network.noise is not None

        def f(theta: Mapping[str, Any], key: PRNGKeyArray | None = None):
            if set(theta) != set(paths):
                raise ValueError(
                    f"theta: expected exactly the keys {list(paths)}, got {list(theta)}."
                )
            if key is None and stochastic:
                raise ValueError("key: this network is stochastic; pass a jax.random key.")
            if key is not None:
                check_key(key)
            specs = base._specs()
            dtype = jnp.result_type(float)
            # strongly typed values of one dtype: floats and arrays share one compilation
            values = {}
            for p in paths:
                value = to_canonical(theta[p], specs[p].unit, p)
                check_domain(value, specs[p].domain, p)  # skipped for traced values
                values[p] = jnp.zeros((), dtype) + value
            result = _run_core(base, values, key, plan)
            return result.signal if output == "signal" else result

        f.__doc__ = f"Simulate with parameters {list(paths)}; returns the {output}."
        return f
