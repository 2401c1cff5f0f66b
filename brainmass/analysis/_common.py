"""Shared pieces of `brainmass.analysis`: shape aliases and argument conversion."""

from __future__ import annotations

import math
from typing import Any

import brainunit as u
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Signal
from ..units import MS, is_quantity, to_float

Scalar = Float[Array, ""]
_Matrices = Float[Array, "*batch n n"]
_Vectors = Float[Array, "*batch m"]
_Batch = Float[Array, "*batch"]
_FC = Float[Array, "n_channels n_channels"]
_WindowedFC = Float[Array, "n_windows n_channels n_channels"]
_FCD = Float[Array, "n_windows n_windows"]
_Sample = Float[Array, " n"]
_Freqs = Float[Array, " n_freqs"]
_Spectrum = Float[Array, "n_freqs n_channels"]
_AnySpectrum = Float[Array, "n_freqs *channels"]
_PerChannel = Float[Array, " *channels"]
_Phases = Float[Array, "*times n_oscillators"]
_PerTime = Float[Array, " *times"]


def _as_signal(signal: Any, name: str = "signal", *, min_times: int = 1) -> Signal:
    """A `(n_times, n_channels)` float array (a quantity is read in its own unit).

    A `brainmass.Recording` gives its signal, checked for NaN and flat channels (the
    sampling period is not read here: pass `period=rec.period` where one is needed).
    """
    from ..recording import Recording

    if isinstance(signal, Recording):  # checked where concrete (not inside a trace)
        traced = isinstance(signal.signal, jax.core.Tracer)
        signal = signal.signal if traced else signal.check().signal
    if is_quantity(signal):
        signal = u.get_mantissa(signal)
    x = jnp.asarray(signal)
    if x.ndim != 2:
        raise ValueError(
            f"{name}: expected an array of shape (n_times, n_channels), got shape {x.shape}."
        )
    if x.shape[0] < min_times:
        raise ValueError(
            f"{name}: expected at least {min_times} time samples, got shape {x.shape}."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def _to_float(value: Any, unit: Any, name: str) -> float:
    """`units.to_float`, also inside a jit trace (where `jnp.asarray` of a constant is traced)."""
    with jax.ensure_compile_time_eval():
        return to_float(value, unit, name)


def _sampling_period(period: Any, fs: Any) -> float:
    """The sampling period in ms from exactly one of `period` (ms) and `fs` (Hz)."""
    if (period is None) == (fs is None):
        raise ValueError(
            "period, fs: give exactly one of the sampling period `period` (ms, or a time "
            "quantity) and the sampling rate `fs` (Hz, or a frequency quantity); got "
            f"period={period!r}, fs={fs!r}."
        )
    if period is not None:
        value = _to_float(period, MS, "period")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"period: expected a sampling period > 0 ms, got {value}.")
        return value
    rate = _to_float(fs, u.Hz, "fs")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"fs: expected a sampling rate > 0 Hz, got {rate}.")
    return 1000.0 / rate


def _safe_sqrt(x: Array) -> Array:
    """`sqrt(x)` for `x >= 0` with a finite gradient (zero) where `x == 0`."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _standardize(x: Array, axis: int) -> Array:
    """Centre and scale `x` to unit norm along `axis`; constant slices become exactly 0.

    The slice is first shifted by its first element, so that a constant slice
    is exactly zero after centring (no round-off turns it into noise).
    """
    shifted = x - jax.lax.slice_in_dim(x, 0, 1, axis=axis)
    centred = shifted - jnp.mean(shifted, axis=axis, keepdims=True)
    sumsq = jnp.sum(centred * centred, axis=axis, keepdims=True)
    ok = sumsq > jnp.finfo(centred.dtype).tiny
    return centred * jnp.where(ok, jax.lax.rsqrt(jnp.where(ok, sumsq, 1.0)), 0.0)
