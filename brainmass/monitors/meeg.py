r"""EEG and MEG monitors: sensors = lead field @ the temporal mean of the region activity.

Each output sample is the lead field `(n_sensors, n_regions)` applied to the
mean of the recorded variable over the sampling period,

$$\mathbf s(t) = L\, \frac{1}{P}\sum_{k=0}^{P-1} \mathbf x(t - k\,dt),$$

so an EEG or MEG signal is the `TemporalAverage` signal seen through the lead
field (the model's observable stands for the regions' dipole moments, e.g.
the pyramidal membrane potential of Jansen-Rit, as in TVB's projection
monitors). Lead fields come from `brainmass.leadfield` or from anywhere
else as a matrix; the output is in the lead field's unit times the
variable's unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import brainunit as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float
from ._base import AbstractMonitor, _initial, _period, _transient

__all__ = ["EEG", "MEG", "AbstractSensorMonitor"]

LeadField = Float[Array, "n_sensors n_regions"]

EEG_UNIT = u.volt / (u.amp * u.meter)
"""Unit of an EEG lead field given as a quantity: volt per ampere-metre."""
MEG_UNIT = u.tesla / (u.amp * u.meter)
"""Unit of an MEG lead field given as a quantity: tesla per ampere-metre."""


def _leadfield(value: Any, unit: Any) -> Array:
    if isinstance(value, u.Quantity):
        if u.get_dim(value) != u.get_dim(unit):
            raise ValueError(
                f"leadfield: expected a quantity in {unit} or a plain array, got dimension "
                f"{u.get_dim(value)}."
            )
        value = value.to_decimal(unit)
    arr = jnp.asarray(value)
    if not jnp.issubdtype(arr.dtype, jnp.number) or jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise ValueError(f"leadfield: expected a real array, got dtype {arr.dtype}.")
    arr = arr.astype(jnp.result_type(float))
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(
            f"leadfield: expected a 2-D array (n_sensors, n_regions), got shape {arr.shape}."
        )
    if not isinstance(arr, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(arr))):
        raise ValueError("leadfield: expected finite values, got NaN or infinity.")
    return arr


def _names(sensor_names: Sequence[str] | None, n: int, prefix: str) -> tuple[str, ...]:
    if sensor_names is None:
        return tuple(f"{prefix}{i:03d}" for i in range(n))
    if isinstance(sensor_names, str):
        raise ValueError(
            f"sensor_names: expected a sequence of {n} names, got the string {sensor_names!r}."
        )
    names = tuple(str(s) for s in sensor_names)
    if len(names) != n:
        raise ValueError(
            f"sensor_names: expected {n} names (one per lead-field row), got {len(names)}."
        )
    if len(set(names)) != n:
        raise ValueError(f"sensor_names: expected distinct names, got {names!r}.")
    return names


class AbstractSensorMonitor(AbstractMonitor):
    """A monitor that records `leadfield @ mean(values over the period)`.

    Shared by `EEG` and `MEG`; subclasses hold the fields and the constructor.
    """

    leadfield: eqx.AbstractVar[LeadField]
    sensor_names: eqx.AbstractVar[tuple[str, ...]]

    @property
    def n_sensors(self) -> int:
        """The number of output channels (lead-field rows)."""
        return self.leadfield.shape[0]

    def check(self, network, dt: float) -> None:
        """Raise `ValueError` when the lead field does not fit `network`'s regions."""
        self._check_regions(network.n_regions)

    def _check_regions(self, n_regions: int) -> None:
        shape = tuple(self.leadfield.shape)
        if shape[-1] != n_regions:
            raise ValueError(
                f"leadfield: expected shape ({shape[0]}, {n_regions}) (n_sensors, n_regions) "
                f"for this network of {n_regions} regions, got shape {shape}."
            )

    def init(self, n_regions: int, dtype) -> None:
        """Stateless; checks that the lead field has one column per region."""
        self._check_regions(n_regions)
        return None

    def sample(self, state, values, dt):
        """`leadfield @ mean(values, axis=0)`: shape `(n_sensors,)`."""
        self._check_regions(values.shape[-1])
        mean = jnp.mean(values, axis=0)
        return state, self.leadfield.astype(mean.dtype) @ mean

    def channels(self, network) -> tuple[str, ...]:
        """The sensor names."""
        self._check_regions(network.n_regions)
        return self.sensor_names


class EEG(AbstractSensorMonitor):
    r"""Scalp potentials: an EEG lead field applied to the period-averaged activity.

    The sample at time $t$ is $L_{\text{ref}}\,\bar{\mathbf x}$, with
    $\bar{\mathbf x}$ the mean of `variable` over the steps in
    $(t - \text{period}, t]$ and $L_{\text{ref}}$ the re-referenced lead
    field. EEG measures potential differences; by default every channel is
    referenced to the average of all electrodes (the average reference:
    $L_{\text{ref}} = L - \frac{1}{S}\mathbf 1 \mathbf 1^\top L$, so the channels
    sum to zero at every time). `reference=None` keeps the lead field as
    given (e.g. referenced to infinity or to the sphere's mean); a sensor
    name references every channel to that electrode, which is then dropped
    from the output (its signal would be zero).

    **Arguments:**

    - `leadfield`: `(n_sensors, n_regions)` lead field, e.g. from
      `brainmass.leadfield.eeg_sphere` (V/(A m)); a plain array in any unit,
      or a brainunit quantity in V/(A m). A JAX array leaf: it can be
      differentiated or batched like any other.
    - `period`: sampling period and averaging window (quantity or ms),
      required.
    - `variable`: the recorded variable (the regions' source activity);
      default the model's observable.
    - `transient`: initial time (quantity or ms) whose samples are discarded.
    - `sensor_names`: one name per lead-field row, default `"EEG000"`, ...
    - `reference`: `"average"` (default), `None`, or one of `sensor_names`.
    - `initial`: also record a first sample at t = 0 (a recording usually
      starts with one): the signal then has `n_samples + 1` rows at times
      `0, period, 2 period, ...`, row 0 being $L_{\text{ref}}\,\mathbf x(0)$,
      the re-referenced lead field applied to the initial value of `variable`
      (an average over a window of zero length). Not with a `transient`, which
      would discard it.

    **Raises:** `ValueError` for a lead field that is not a finite 2-D
    array, names that do not match its rows, an unknown reference, or an
    `initial` that is not a bool or comes with a `transient` > 0. A lead
    field whose columns do not match the network's regions is a `ValueError`
    naming `leadfield` and both shapes, from `check` (when the Simulator is built), `channels`,
    `init` and `sample` (so at the latest when the simulation is traced).
    """

    leadfield: LeadField
    sensor_names: tuple[str, ...] = eqx.field(static=True)
    reference: str | None = eqx.field(static=True)
    period: float | None = eqx.field(static=True)
    variable: str | None = eqx.field(static=True)
    transient: float = eqx.field(static=True)
    initial: bool = eqx.field(static=True)

    def __init__(
        self,
        leadfield: Any,
        *,
        period: Any,
        variable: str | None = None,
        transient: Any = 0.0,
        sensor_names: Sequence[str] | None = None,
        reference: str | None = "average",
        initial: bool = False,
    ):
        lf = _leadfield(leadfield, EEG_UNIT)
        names = _names(sensor_names, lf.shape[0], "EEG")
        if reference == "average":
            lf = lf - jnp.mean(lf, axis=0)[None, :]
        elif reference is not None:
            if reference not in names:
                raise ValueError(
                    f"reference: expected 'average', None or one of the sensor names "
                    f"{names}, got {reference!r}."
                )
            if len(names) < 2:
                raise ValueError("reference: a reference electrode needs at least two sensors.")
            i = names.index(reference)
            lf = jnp.delete(lf - lf[i][None, :], i, axis=0)
            names = names[:i] + names[i + 1 :]
        self.leadfield = lf
        self.sensor_names = names
        self.reference = reference
        self.period = _period(period)
        self.variable = variable
        self.transient = _transient(transient)
        self.initial = _initial(initial, self.transient)


class MEG(AbstractSensorMonitor):
    r"""Magnetic fields: an MEG lead field applied to the period-averaged activity.

    The sample at time $t$ is $L\,\bar{\mathbf x}$, with $\bar{\mathbf x}$ the
    mean of `variable` over the steps in $(t - \text{period}, t]$. MEG needs no
    reference.

    **Arguments:**

    - `leadfield`: `(n_sensors, n_regions)` lead field, e.g. from
      `brainmass.leadfield.meg_sarvas` (T/(A m)); a plain array in any unit,
      or a brainunit quantity in T/(A m). A JAX array leaf.
    - `period`: sampling period and averaging window (quantity or ms),
      required.
    - `variable`: the recorded variable; default the model's observable.
    - `transient`: initial time (quantity or ms) whose samples are discarded.
    - `sensor_names`: one name per lead-field row, default `"MEG000"`, ...
    - `initial`: also record a first sample at t = 0: the signal then has
      `n_samples + 1` rows at times `0, period, 2 period, ...`, row 0 being
      $L\,\mathbf x(0)$, the lead field applied to the initial value of
      `variable`. Not with a `transient`, which would discard it.

    **Raises:** as `EEG`.
    """

    leadfield: LeadField
    sensor_names: tuple[str, ...] = eqx.field(static=True)
    period: float | None = eqx.field(static=True)
    variable: str | None = eqx.field(static=True)
    transient: float = eqx.field(static=True)
    initial: bool = eqx.field(static=True)

    def __init__(
        self,
        leadfield: Any,
        *,
        period: Any,
        variable: str | None = None,
        transient: Any = 0.0,
        sensor_names: Sequence[str] | None = None,
        initial: bool = False,
    ):
        lf = _leadfield(leadfield, MEG_UNIT)
        self.leadfield = lf
        self.sensor_names = _names(sensor_names, lf.shape[0], "MEG")
        self.period = _period(period)
        self.variable = variable
        self.transient = _transient(transient)
        self.initial = _initial(initial, self.transient)
