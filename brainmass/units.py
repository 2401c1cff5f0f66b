r"""Unit-safe inputs: brainunit quantities converted once to canonical units.

Every physical quantity that enters brainmass (a time step, a duration, a
conduction speed, a tract length, a time constant) may be given either as a
`brainunit` quantity or as a plain number. A plain number is read in the
documented canonical unit of that argument. Conversion happens once, when an
object is built; the simulation loop only ever sees plain arrays.

Canonical units used throughout brainmass:

| quantity          | canonical unit      |
|-------------------|---------------------|
| time (dt, tau)    | millisecond (ms)    |
| length            | millimetre (mm)     |
| conduction speed  | metre per second (m/s), which equals mm/ms |
| rate / frequency  | 1/ms (kHz); angular frequencies in rad/ms |

A model may declare another canonical time unit (see
`AbstractNeuralMass.time_unit`); its parameters are then read in that unit.

Angular frequencies (canonical unit `RAD_PER_MS`, rad/ms) follow the SI reading
of the hertz as cycles per second: a quantity whose unit carries radians
(`u.radian / u.second`, rad/ms) is an angular frequency and keeps its value; a
quantity of frequency dimension without radians (`10 * u.Hz`, `u.kHz`,
`1 / u.second`) is a cycle frequency $f$ and becomes $\omega = 2\pi f$, so
`10 * u.Hz` is $2\pi \cdot 10 / 1000 \approx 0.0628$ rad/ms, a 10 Hz
oscillation. A plain number is read in rad/ms. (Before this rule, `10 * u.Hz`
was read as 0.01 rad/ms, a 1.6 Hz oscillation; `2 * pi * 10 * u.Hz` now means
62.8 Hz: write `10 * u.Hz`.)
"""

from __future__ import annotations

from typing import Any

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "to_canonical",
    "is_quantity",
    "is_angular",
    "format_unit",
    "MS",
    "MM",
    "SPEED",
    "PER_MS",
    "RAD_PER_MS",
]

MS = u.ms
MM = u.mmeter
SPEED = u.meter / u.second
PER_MS = u.ms**-1
RAD_PER_MS = u.radian / u.ms
"""The canonical unit of angular frequencies (see the module docstring for Hz)."""


def is_quantity(value: Any) -> bool:
    """Whether `value` is a brainunit quantity."""
    return isinstance(value, u.Quantity)


def is_angular(unit: Any) -> bool:
    """Whether a unit (or a quantity's unit) carries radians, as rad/ms and rad/s do.

    Radians are dimensionless, so rad/ms and 1/ms have the same dimension; the
    unit's terms tell an angular frequency from a cycle frequency.
    """
    if unit is None:
        return False
    if is_quantity(unit):
        unit = unit.unit
    terms = getattr(unit, "_terms", None) or ()
    return any(getattr(atom, "name", None) == "radian" for atom, _ in terms)


def format_unit(unit: u.Unit | None) -> str:
    """A short printable name of a unit; `""` for dimensionless."""
    if unit is None:
        return ""
    if is_angular(unit) and unit == RAD_PER_MS:
        return "rad/ms"
    if u.get_dim(unit).is_dimensionless:
        return ""
    if unit == PER_MS:
        return "1/ms"  # brainunit prints kHz; rates and angular frequencies read better per ms
    return str(unit)


def to_canonical(value: Any, unit: u.Unit | None, name: str, *, dtype=None) -> Any:
    r"""Convert `value` to a plain array in the canonical `unit`.

    **Arguments:**

    - `value`: a brainunit quantity, a number or an array (read in `unit`), or
      a JAX tracer (passed through; it is assumed to be in `unit` already).
    - `unit`: the canonical unit of this argument, or `None` for a
      dimensionless quantity. For an angular unit (`RAD_PER_MS`), a quantity
      of frequency dimension without radians (Hz) is a cycle frequency and is
      multiplied by $2\pi$.
    - `name`: the argument's name, used in the error message.

    **Returns:** a JAX array (or the tracer) holding the value in `unit`.

    **Raises:** `ValueError` naming `name` when the quantity has the wrong
    physical dimension.
    """
    if is_quantity(value):
        target_dim = u.get_dim(unit) if unit is not None else u.get_dim(1.0)
        if u.get_dim(value) != target_dim:
            expected = format_unit(unit) or "a dimensionless number"
            raise ValueError(
                f"{name}: expected a quantity convertible to {expected}, got {value} "
                f"(dimension {u.get_dim(value)}). Pass a quantity of the right dimension, "
                f"or a plain number in {expected}."
            )
        if unit is None:
            out = value.to_decimal(u.UNITLESS) if hasattr(value, "to_decimal") else value.mantissa
        else:
            out = value.to_decimal(unit)
            if is_angular(unit) and not is_angular(value):
                out = 2 * np.pi * out  # a cycle frequency (Hz): omega = 2 pi f
    else:
        out = value
    if isinstance(out, jax.core.Tracer):
        return out
    if isinstance(out, (bool, np.bool_)):
        raise ValueError(f"{name}: expected a number, got a boolean {out!r}.")
    try:
        # concrete inputs stay concrete even while a function is being traced
        with jax.ensure_compile_time_eval():
            arr = jnp.asarray(out, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a number or an array, got {value!r}.") from err
    if not jnp.issubdtype(arr.dtype, jnp.number):
        raise ValueError(f"{name}: expected a number or an array, got {value!r}.")
    if jnp.issubdtype(arr.dtype, jnp.integer):
        arr = arr.astype(jnp.result_type(float))
    return arr


def to_float(value: Any, unit: u.Unit | None, name: str) -> float:
    """Convert a scalar `value` to a Python float in `unit` (see `to_canonical`)."""
    arr = to_canonical(value, unit, name)
    if isinstance(arr, jax.core.Tracer):
        raise ValueError(f"{name}: must be a concrete number here, not a traced value.")
    if np.ndim(arr) != 0:
        raise ValueError(f"{name}: expected a scalar, got an array of shape {np.shape(arr)}.")
    if arr.dtype == np.float32:
        # a float32 quantity such as 0.1 * u.ms: recover the decimal the user wrote
        return float(str(np.float32(arr)))
    return float(arr)
