"""Monitors: what is recorded from a simulation."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import equinox as eqx

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


class AbstractMonitor(eqx.Module):
    """A monitor records one variable of every region.

    The simulation loop reduces the per-step values of `variable` over each
    `period` (`reduction`: the last value, or the mean), giving samples at
    times `period, 2 period, ...`; `finalize` then maps those samples to the
    monitor's output (the identity for `Raw` and `TemporalAverage`).

    **Attributes:**

    - `period`: sampling period in ms (a multiple of the simulator's `dt`);
      `None` records every step.
    - `variable`: the model quantity recorded; `None` is the model's
      default `observable`.
    """

    period: float | None
    variable: str | None
    reduction: ClassVar[Literal["last", "mean"]]

    def channels(self, network) -> tuple[str, ...]:
        """Names of the output channels: the region labels."""
        return tuple(network.connectome.labels)

    def finalize(self, time: Float, samples: Float) -> tuple[Float, Float]:
        """Map reduced samples `(n_samples, n_regions)` at `time` (ms) to the output."""
        return time, samples


class Raw(AbstractMonitor):
    """Record `variable` every `period` (the instantaneous value at each sample time).

    **Arguments:**

    - `period`: sampling period (quantity or ms); `None` records every step.
    - `variable`: the variable to record; default the model's observable.
    """

    period: float | None = eqx.field(static=True)
    variable: str | None = eqx.field(static=True)
    reduction: ClassVar[Literal["last", "mean"]] = "last"

    def __init__(self, period: Any = None, variable: str | None = None):
        self.period = _period(period)
        self.variable = variable


class TemporalAverage(AbstractMonitor):
    r"""Record the mean of `variable` over each `period` (a box-car average).

    The sample at time $t$ is the mean of the values at the steps in
    $(t - \text{period}, t]$.

    **Arguments:**

    - `period`: averaging window and sampling period (quantity or ms).
    - `variable`: the variable to record; default the model's observable.
    """

    period: float | None = eqx.field(static=True)
    variable: str | None = eqx.field(static=True)
    reduction: ClassVar[Literal["last", "mean"]] = "mean"

    def __init__(self, period: Any = 1.0, variable: str | None = None):
        self.period = _period(period)
        self.variable = variable
