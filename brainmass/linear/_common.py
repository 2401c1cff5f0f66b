"""Constants and helpers shared by the linear-analysis modules."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..monitors import Raw, TemporalAverage
from ..simulator import Simulator, _state_array

DEFAULT_DF_HZ = 0.25
"""Spacing (Hz) of the default frequency grid for delayed networks, up to `DEFAULT_SPLIT_HZ`."""

DEFAULT_FMAX_HZ = 500.0
"""Highest frequency (Hz) of the default frequency grid for delayed networks."""

DEFAULT_SPLIT_HZ = 100.0
"""Above this frequency (Hz) the default grid is coarser."""

DEFAULT_DF_HIGH_HZ = 1.0
"""Spacing (Hz) of the default grid above `DEFAULT_SPLIT_HZ`."""

_TWO_PI_PER_KHZ = 2.0 * math.pi / 1000.0  # rad/ms per Hz
_REF_MARGIN = 0.01  # 1/ms: the least decay rate of the delay-free reference
_DEFAULT_STEPS = 50  # Newton iterations of fixed_point
_DEFAULT_TOL = 1e-8  # fixed_point's tolerance, state units per ms


# =====================================================================================
# helpers
# =====================================================================================


def _check_sim(sim: Any, name: str = "sim") -> Simulator:
    if not isinstance(sim, Simulator):
        raise ValueError(f"{name}: expected a brainmass.Simulator, got {type(sim).__name__}.")
    return sim


def _time_scale(sim: Simulator) -> float:
    """Model time units per ms (1 for every built-in model, whose time unit is ms)."""
    return float(sim.dt_model / sim.dt)


def _observed_variable(sim: Simulator) -> str:
    return sim.monitor.variable or sim.network.model.observable


def _as_state(value: Any, sim: Simulator, name: str) -> jax.Array:
    """A state as an `(n_vars, n_regions)` array or a dict per variable (the rest: `sim.init`)."""
    return _state_array(
        value, sim.network.model, sim.network.n_regions, name, traced_ok=True, default=sim.init
    )


def _network_drift(net, x_flat: jax.Array, scale: float) -> jax.Array:
    """The fixed-point residual: the drift with every delayed state equal to `x`, per ms."""
    nv, n = net.n_vars, net.n_regions
    x = x_flat.reshape(nv, n)
    return scale * net.drift(x, None, net.connectome.weights, net.strength()).reshape(-1)


def _max_abs(r: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(r)) if r.size else jnp.zeros((), r.dtype)


def _complex_dtype(dtype) -> Any:
    return jnp.result_type(dtype, jnp.complex64)


def _wrap(phase: jax.Array) -> jax.Array:
    """An angle wrapped into [-pi, pi)."""
    return jnp.mod(phase + jnp.pi, 2.0 * jnp.pi) - jnp.pi


class _Context(NamedTuple):
    """What the compiled functions need from the simulator besides its network (hashable).

    - `scale`: model time units per ms; `variable`: the observed quantity;
    - `filt`: `(P, dt)` of a `TemporalAverage` monitor whose box-car average is
      modelled (`monitor_filter=True`), else None.

    Passing this instead of the whole `Simulator` keeps compiled code shared
    between simulators that differ only in static details (delay buffer plan,
    duration).
    """

    scale: float
    variable: str
    filt: tuple[int, float] | None = None


def _context(sim: Simulator, monitor_filter: bool = False) -> _Context:
    filt = None
    if monitor_filter:
        monitor = sim.monitor
        if not isinstance(monitor, (Raw, TemporalAverage)):
            raise ValueError(
                "monitor_filter: supported for Raw and TemporalAverage monitors only, got "
                f"{type(monitor).__name__}; use monitor_filter=False (the neural variable's "
                "spectrum)."
            )
        if isinstance(monitor, TemporalAverage):
            filt = (int(sim.period_steps), float(sim.dt))
    return _Context(_time_scale(sim), _observed_variable(sim), filt)
