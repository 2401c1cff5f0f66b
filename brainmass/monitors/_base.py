"""Monitors: what is recorded from a simulation."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Float
from ..units import MS, to_float

__all__ = ["AbstractMonitor", "Raw", "TemporalAverage"]


def _period(period: Any) -> float | None:
    if period is None:
        return None
    value = to_float(period, MS, "monitor.period")
    if not value > 0:
        raise ValueError(f"monitor.period: expected a sampling period > 0 ms, got {value}.")
    return value


def _transient(transient: Any) -> float:
    value = to_float(transient, MS, "monitor.transient")
    if not value >= 0:
        raise ValueError(f"monitor.transient: expected a duration >= 0 ms, got {value}.")
    return value


def _initial(initial: Any, transient: float) -> bool:
    """Validate a monitor's `initial` flag (record a t = 0 sample) against its `transient`."""
    if not isinstance(initial, bool):
        raise ValueError(f"monitor.initial: expected True or False, got {initial!r}.")
    if initial and transient > 0:
        raise ValueError(
            f"monitor.initial: the t = 0 sample would be discarded by the transient of "
            f"{transient} ms; use one or the other."
        )
    return initial


class AbstractMonitor(eqx.Module):
    """What a simulation records, as init / sample inside the simulation loop.

    The loop hands the monitor, once per output `period`, the per-step values
    of `variable` over that period (`(P, n_regions)`, P = period / dt steps);
    `sample(state, values, dt)` returns the monitor's new state and one output
    sample `(n_channels,)`. Stateless monitors (raw, temporal average) ignore
    the state; stateful ones (BOLD) integrate their own dynamics in it, inside
    the same scan as the neural model. `finalize` then maps the stacked
    samples to the result, and the simulator drops the `transient`.

    **Attributes:**

    - `period`: output sampling period in ms (a multiple of the simulator's
      `dt`); `None` records every step.
    - `variable`: the model quantity recorded; `None` is the model's default
      `observable`.
    - `transient`: outputs at times <= `transient` (ms) are discarded.

    A monitor may also have a bool `initial` (`Raw`, `TemporalAverage`, `EEG`,
    `MEG`): the simulator then puts a sample at t = 0 first, `sample` applied to
    the one-row window of the initial value of `variable`.
    """

    period: eqx.AbstractVar[float | None]
    variable: eqx.AbstractVar[str | None]
    transient: eqx.AbstractVar[float]

    def init(self, n_regions: int, dtype) -> Any:
        """The monitor's state before the first sample (a pytree; None when stateless)."""
        return None

    @abc.abstractmethod
    def sample(self, state: Any, values: Float, dt: float) -> tuple[Any, Float]:
        """One output sample from the per-step values of one period.

        **Arguments:**

        - `state`: the monitor's state (see `init`).
        - `values`: `(P, n_regions)`, the recorded variable at each step of the
          period, oldest first.
        - `dt`: the time step in ms.

        **Returns:** `(state, sample)` with `sample` of shape `(n_channels,)`.
        """

    def check(self, network, dt: float) -> None:
        """Raise a ValueError if this monitor cannot record `network` at time step `dt` (ms).

        Called by the Simulator when it is built (for example to compare a lead
        field's columns with the number of regions). The default accepts all.
        """

    def channels(self, network) -> tuple[str, ...]:
        """Names of the output channels: the region labels."""
        return tuple(network.connectome.labels)

    def finalize(self, time: Float, samples: Float) -> tuple[Float, Float]:
        """Map the stacked samples `(n_samples, n_channels)` at `time` (ms) to the output.

        The identity here; a monitor with a read-out after the loop overrides it.
        The simulator drops the samples at times <= `transient` afterwards.
        """
        return time, samples


class Raw(AbstractMonitor):
    """Record `variable` every `period` (the instantaneous value at each sample time).

    **Arguments:**

    - `period`: sampling period (quantity or ms); `None` records every step.
    - `variable`: the variable to record; default the model's observable.
    - `transient`: initial time (quantity or ms) whose samples are discarded.
    - `initial`: also record the initial state, as a first sample at t = 0 (a
      recording usually starts with one): the signal then has `n_samples + 1` rows
      at times `0, period, 2 period, ...`. Not with a `transient`, which would
      discard it.
    """

    period: float | None = eqx.field(static=True)
    variable: str | None = eqx.field(static=True)
    transient: float = eqx.field(static=True)
    initial: bool = eqx.field(static=True)

    def __init__(
        self,
        period: Any = None,
        variable: str | None = None,
        transient: Any = 0.0,
        initial: bool = False,
    ):
        self.period = _period(period)
        self.variable = variable
        self.transient = _transient(transient)
        self.initial = _initial(initial, self.transient)

    def sample(self, state, values, dt):
        """The last value of the period."""
        return state, values[-1]


class TemporalAverage(AbstractMonitor):
    r"""Record the mean of `variable` over each `period` (a box-car average).

    The sample at time $t$ is the mean of the values at the steps in
    $(t - \text{period}, t]$.

    **Arguments:**

    - `period`: averaging window and sampling period (quantity or ms).
    - `variable`: the variable to record; default the model's observable.
    - `transient`: initial time (quantity or ms) whose samples are discarded.
    - `initial`: also record the initial state, as a first sample at t = 0 (a
      recording usually starts with one): the signal then has `n_samples + 1` rows
      at times `0, period, 2 period, ...`, row 0 being the initial value of
      `variable` itself (an average over a window of zero length). Not with a
      `transient`, which would discard it.
    """

    period: float | None = eqx.field(static=True)
    variable: str | None = eqx.field(static=True)
    transient: float = eqx.field(static=True)
    initial: bool = eqx.field(static=True)

    def __init__(
        self,
        period: Any = 1.0,
        variable: str | None = None,
        transient: Any = 0.0,
        initial: bool = False,
    ):
        self.period = _period(period)
        self.variable = variable
        self.transient = _transient(transient)
        self.initial = _initial(initial, self.transient)

    def sample(self, state, values, dt):
        """The mean over the period."""
        return state, jnp.mean(values, axis=0)
