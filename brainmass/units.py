"""Unit-safe inputs: brainunit quantities converted once to canonical units.

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
"""

from __future__ import annotations

from typing import Any

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["to_canonical", "is_quantity", "format_unit", "MS", "MM", "SPEED", "PER_MS"]

MS = u.ms
MM = u.mmeter
SPEED = u.meter / u.second
PER_MS = u.ms**-1


def is_quantity(value: Any) -> bool:
    """Whether `value` is a brainunit quantity."""
    return isinstance(value, u.Quantity)


def format_unit(unit: u.Unit | None) -> str:
    """A short printable name of a unit; `""` for dimensionless."""
    if unit is None or u.get_dim(unit).is_dimensionless:
        return ""
    if unit == PER_MS:
        return "1/ms"  # brainunit prints kHz; rates and angular frequencies read better per ms
    return str(unit)


def to_canonical(value: Any, unit: u.Unit | None, name: str, *, dtype=None) -> Any:
    """Convert `value` to a plain array in the canonical `unit`.

    **Arguments:**

    - `value`: a brainunit quantity, a number or an array (read in `unit`), or
      a JAX tracer (passed through; it is assumed to be in `unit` already).
    - `unit`: the canonical unit of this argument, or `None` for a
      dimensionless quantity.
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
