"""Input conversion shared by the lead-field functions: points in mm, orientations, scalars."""

from __future__ import annotations

from typing import Any

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array
from ..units import MM, to_canonical

CONDUCTIVITY = u.siemens / u.meter
"""Canonical unit of a conductivity: siemens per metre."""


def is_concrete(x: Any) -> bool:
    """Whether `x` holds values (not a JAX tracer), so value checks can run."""
    return not isinstance(x, jax.core.Tracer)


def as_points(value: Any, name: str, n: int | None = None) -> Array:
    """Positions as a float array `(k, 3)` in mm (quantities converted); `n` fixes `k`."""
    arr = to_canonical(value, MM, name)
    arr = jnp.asarray(arr, dtype=jnp.result_type(float))
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name}: expected an array of shape (n, 3) in mm, got shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n}, 3), got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one position, got shape {arr.shape}.")
    if is_concrete(arr) and not np.all(np.isfinite(np.asarray(arr))):
        raise ValueError(f"{name}: expected finite positions, got NaN or infinity.")
    return arr


def as_origin(value: Any, name: str = "origin") -> Array:
    """A single point `(3,)` in mm."""
    arr = jnp.asarray(to_canonical(value, MM, name), dtype=jnp.result_type(float))
    if arr.shape != (3,):
        raise ValueError(
            f"{name}: expected a point (x, y, z) in mm of shape (3,), got {arr.shape}."
        )
    return arr


def as_positive(value: Any, unit: Any, name: str, what: str) -> Array:
    """A positive scalar in `unit` (traced values pass unchecked)."""
    arr = to_canonical(value, unit, name)
    if jnp.ndim(arr) != 0:
        raise ValueError(f"{name}: expected a scalar {what}, got shape {jnp.shape(arr)}.")
    if is_concrete(arr) and not float(arr) > 0:
        raise ValueError(f"{name}: expected a {what} > 0, got {float(arr)}.")
    return jnp.asarray(arr, dtype=jnp.result_type(float))


def check_off_origin(points: Array, origin: Array, name: str) -> None:
    """Raise when a (concrete) point lies at `origin`, where no radial direction exists."""
    if not (is_concrete(points) and is_concrete(origin)):
        return
    norm = np.linalg.norm(np.asarray(points) - np.asarray(origin)[None, :], axis=1)
    if np.any(norm == 0):
        i = int(np.argmin(norm))
        raise ValueError(
            f"{name}: position {i} lies at the origin {np.asarray(origin).tolist()} mm, where the "
            "radial direction is undefined; give the orientations explicitly."
        )


def radial(points: Array, origin: Array) -> Array:
    """Unit vectors `(k, 3)` from `origin` to each point (pure; no checks)."""
    rel = points - origin[None, :]
    return rel / jnp.linalg.norm(rel, axis=1)[:, None]


def as_orientations(value: Any, points: Array, name: str = "orientations") -> Array | None:
    """Directions `(n, 3)` at `points` as a float array (dimensionless); `None` stays `None`."""
    if value is None:
        return None
    arr = to_canonical(value, None, name)
    arr = jnp.asarray(arr, dtype=jnp.result_type(float))
    if arr.shape != points.shape:
        raise ValueError(
            f"{name}: expected one direction per position, shape {points.shape}, "
            f"got shape {arr.shape}."
        )
    if is_concrete(arr) and not np.all(np.isfinite(np.asarray(arr))):
        raise ValueError(f"{name}: expected finite values, got NaN or infinity.")
    return arr
