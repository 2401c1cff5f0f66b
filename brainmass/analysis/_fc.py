"""Functional connectivity (FC), windowed FC and FC dynamics (FCD)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Signal
from ..units import MS
from ._common import (
    _FC,
    _FCD,
    _as_signal,
    _Sample,
    _sampling_period,
    _standardize,
    _to_float,
    _WindowedFC,
)
from ._matrix import upper_triangle


def fc(signal: Signal) -> _FC:
    """Functional connectivity: the Pearson correlation matrix of the channels.

    Matches `numpy.corrcoef(signal.T)`, except that a constant channel has
    correlation 0 with every other channel (not NaN) and 1 with itself; the
    gradient is finite everywhere.

    **Arguments:**

    - `signal`: shape `(n_times, n_channels)`, `n_times >= 2`.

    **Returns:** shape `(n_channels, n_channels)`, symmetric, unit diagonal.
    """
    return _fc_kernel(_as_signal(signal, min_times=2))


@jax.jit
def _fc_kernel(x: Signal) -> _FC:
    z = _standardize(x, 0)
    corr = z.T @ z
    eye = jnp.eye(x.shape[1], dtype=bool)
    return jnp.where(eye, jnp.ones((), corr.dtype), jnp.clip(corr, -1.0, 1.0))


def _window_samples(window: Any, step: Any, period_ms: float, n_times: int) -> tuple[int, int]:
    """Window and step lengths in samples (rounded to the nearest sample)."""
    window_ms = _to_float(window, MS, "window")
    step_ms = _to_float(step, MS, "step")
    w = round(window_ms / period_ms)
    s = round(step_ms / period_ms)
    if w < 2:
        raise ValueError(
            f"window: expected at least 2 samples (2 x period = {2 * period_ms} ms), got "
            f"{window_ms} ms ({window_ms / period_ms:.3g} samples)."
        )
    if w > n_times:
        raise ValueError(
            f"window: {window_ms} ms is {w} samples, longer than the signal ({n_times} samples "
            f"of {period_ms} ms); expected a window of at most {n_times * period_ms} ms."
        )
    if s < 1:
        raise ValueError(
            f"step: expected at least 1 sample ({period_ms} ms), got {step_ms} ms "
            f"({step_ms / period_ms:.3g} samples)."
        )
    return w, s


def windowed_fc(
    signal: Signal, window: Any, step: Any, *, period: Any = None, fs: Any = None
) -> _WindowedFC:
    """FC in sliding windows.

    **Arguments:**

    - `signal`: shape `(n_times, n_channels)`.
    - `window`, `step`: window length and step between window starts (ms, or
      time quantities), rounded to whole samples.
    - `period` or `fs`: the sampling period (ms) or rate (Hz) of `signal`.

    **Returns:** shape `(n_windows, n_channels, n_channels)` with
    `n_windows = (n_times - w) // s + 1` for `w`, `s` the window and step in
    samples; window `k` covers samples `[k s, k s + w)`.
    """
    x = _as_signal(signal)
    w, s = _window_samples(window, step, _sampling_period(period, fs), x.shape[0])
    return _windowed_fc_kernel(x, w, s)


@functools.partial(jax.jit, static_argnames=("w", "s"))
def _windowed_fc_kernel(x: Signal, w: int, s: int) -> _WindowedFC:
    n_windows = (x.shape[0] - w) // s + 1
    index = np.arange(n_windows)[:, None] * s + np.arange(w)[None, :]
    return jax.vmap(_fc_kernel)(x[index])


@functools.partial(jax.jit, static_argnames=("w", "s"))
def _fcd_kernel(x: Signal, w: int, s: int) -> _FCD:
    patterns = upper_triangle(_windowed_fc_kernel(x, w, s))
    return _fc_kernel(patterns.T)


def fcd(signal: Signal, window: Any, step: Any, *, period: Any = None, fs: Any = None) -> _FCD:
    r"""Functional connectivity dynamics: correlations between windowed FC patterns.

    FC is computed in sliding windows (`windowed_fc`); entry $(k, l)$ is the
    Pearson correlation between the upper triangles (diagonal excluded) of the
    FC of windows $k$ and $l$. Hansen et al. (2015), NeuroImage 105:525;
    Deco et al. (2017), Sci. Rep. 7:3095.

    **Arguments:**

    - `signal`: shape `(n_times, n_channels)`, at least 3 channels.
    - `window`, `step`: window length and step (ms, or time quantities).
    - `period` or `fs`: the sampling period (ms) or rate (Hz) of `signal`.

    **Returns:** shape `(n_windows, n_windows)`, symmetric with unit diagonal.
    Use `fcd_values` for the values whose distribution FCD distances compare.
    """
    x = _as_signal(signal)
    if x.shape[1] < 3:
        raise ValueError(
            f"signal: FCD needs at least 3 channels (FC upper triangles of 3+ values), "
            f"got shape {x.shape}."
        )
    w, s = _window_samples(window, step, _sampling_period(period, fs), x.shape[0])
    return _fcd_kernel(x, w, s)


def fcd_values(fcd_matrix: _FCD, k: int = 1) -> _Sample:
    """The FCD values whose distribution FCD distances (KS, Wasserstein) compare.

    **Arguments:**

    - `fcd_matrix`: shape `(n_windows, n_windows)`, from `fcd`.
    - `k`: diagonal offset. The default 1 keeps every pair of distinct
      windows; overlapping windows are correlated by construction, and
      `k = ceil(window / step)` keeps only pairs of non-overlapping windows.

    **Returns:** `upper_triangle(fcd_matrix, k)`, shape `(m,)`.
    """
    values = upper_triangle(fcd_matrix, k)
    if values.shape[-1] == 0:
        raise ValueError(
            f"k: no FCD values above diagonal {k} of a {fcd_matrix.shape} matrix; use a "
            "longer signal, a shorter step or a smaller k."
        )
    return values
