r"""Analysis of simulated (or recorded) signals: FC, FCD, spectra, phases, order parameters.

Every function here is pure `jax.numpy`: it works under `jax.jit`, `jax.vmap`
and `jax.grad` with respect to the signal. A signal is an array of shape
`(n_times, n_channels)`, sampled every `period` (ms, or a brainunit time
quantity) or equivalently at a rate `fs` (Hz, or a brainunit frequency
quantity); sampling settings, window lengths and frequency bands are concrete
numbers (not traced), converted once per call. Frequencies are in Hz. The
numerical core of each function is jit-compiled once per input shape and
setting, so eager calls are fast too.

    import brainmass as bm
    res = sim.run(key)
    fc = bm.analysis.fc(res.signal)                                  # (n, n)
    fcd = bm.analysis.fcd(res.signal, 60_000.0, 2_000.0, period=720.0)  # (n_windows, n_windows)
    freqs, p = bm.analysis.psd(res.signal, period=1.0, nperseg=1024)
    alpha = bm.analysis.band_power(freqs, p, "alpha")                # (n_channels,)
    R = bm.analysis.kuramoto_order(bm.analysis.phase(res.signal))    # (n_times,)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Float, Signal
from .units import MS, is_quantity, to_float

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

__all__ = [
    "BANDS",
    "analytic_signal",
    "band_power",
    "fc",
    "fcd",
    "fcd_values",
    "fisher_z",
    "from_upper_triangle",
    "kuramoto_order",
    "ks_statistic",
    "metastability",
    "peak_frequency",
    "pearson",
    "phase",
    "psd",
    "resolve_band",
    "upper_triangle",
    "wasserstein_1",
    "windowed_fc",
]

BANDS: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 80.0),
}
"""The standard EEG/MEG frequency bands in Hz, closed intervals `[low, high]`."""


# ----------------------------------------------------------------------------- helpers


def _as_signal(signal: Any, name: str = "signal", *, min_times: int = 1) -> Signal:
    """A `(n_times, n_channels)` float array (a quantity is read in its own unit)."""
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


# ----------------------------------------------------------------------------- matrices


def upper_triangle(matrix: _Matrices, k: int = 1) -> _Vectors:
    """The entries above the `k`-th diagonal of a square matrix, row by row.

    **Arguments:**

    - `matrix`: shape `(..., n, n)`; leading axes are kept.
    - `k`: diagonal offset; `k = 1` (default) leaves out the diagonal, `k = 0`
      keeps it.

    **Returns:** shape `(..., m)` with `m = (n - k)(n - k + 1) / 2`, in the
    order of `numpy.triu_indices(n, k)`.
    """
    matrix = jnp.asarray(matrix)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"matrix: expected shape (..., n, n), got {matrix.shape}.")
    rows, cols = np.triu_indices(matrix.shape[-1], k)
    return matrix[..., rows, cols]


def from_upper_triangle(
    values: _Vectors, n: int | None = None, *, k: int = 1, diagonal: float = 1.0
) -> _Matrices:
    """The symmetric matrix whose `upper_triangle(., k)` is `values` (the inverse helper).

    **Arguments:**

    - `values`: shape `(..., m)`, in the order of `numpy.triu_indices(n, k)`.
    - `n`: matrix size; inferred from `m = (n - k)(n - k + 1) / 2` when omitted.
    - `k`: the diagonal offset the values were taken with (`k >= 0`).
    - `diagonal`: the value put on the diagonal when `k >= 1` (1 for a
      correlation matrix); other entries not covered by `values` are 0.

    **Returns:** shape `(..., n, n)`, symmetric.
    """
    values = jnp.asarray(values)
    if values.ndim < 1:
        raise ValueError(f"values: expected shape (..., m), got {values.shape}.")
    if k < 0:
        raise ValueError(f"k: expected a diagonal offset >= 0, got {k}.")
    m = values.shape[-1]
    if n is None:
        side = (math.isqrt(8 * m + 1) - 1) // 2  # n - k
        if side * (side + 1) // 2 != m:
            raise ValueError(
                f"values: {m} values are not the upper triangle of a square matrix "
                f"(expected m = (n - k)(n - k + 1) / 2 for some n, with k = {k})."
            )
        n = side + k
    rows, cols = np.triu_indices(n, k)
    if rows.size != m:
        raise ValueError(
            f"values: expected {rows.size} values for n = {n}, k = {k}, got {m} "
            f"(shape {values.shape})."
        )
    return _from_upper_kernel(values, n, k, float(diagonal))


@functools.partial(jax.jit, static_argnames=("n", "k", "diagonal"))
def _from_upper_kernel(values: _Vectors, n: int, k: int, diagonal: float) -> _Matrices:
    rows, cols = np.triu_indices(n, k)
    out = jnp.zeros(values.shape[:-1] + (n, n), values.dtype)
    if k >= 1:
        out = out + diagonal * jnp.eye(n, dtype=values.dtype)
    out = out.at[..., rows, cols].set(values)
    return out.at[..., cols, rows].set(values)


def fisher_z(r: Any, *, max_abs: float | None = None) -> Array:
    r"""Fisher's z-transform $z = \operatorname{artanh}(r)$ of correlations, clipped to stay finite.

    **Arguments:**

    - `r`: correlations, any shape.
    - `max_abs`: `|r|` is clipped to this value before the transform. Default
      `1 - 10 eps` of the dtype (`|z|` about 7.2 in float32, 17.2 in float64),
      so that `r = +-1` (e.g. the diagonal of an FC matrix) gives a finite `z`
      and a finite gradient.

    **Returns:** `z`, same shape as `r`.
    """
    r = jnp.asarray(r)
    if not jnp.issubdtype(r.dtype, jnp.floating):
        r = r.astype(jnp.result_type(float))
    if max_abs is None:
        max_abs = 1.0 - 10.0 * float(jnp.finfo(r.dtype).eps)
    elif not 0.0 < max_abs < 1.0:
        raise ValueError(f"max_abs: expected a value in (0, 1), got {max_abs}.")
    return _fisher_kernel(r, float(max_abs))


@functools.partial(jax.jit, static_argnames=("max_abs",))
def _fisher_kernel(r: Array, max_abs: float) -> Array:
    return jnp.arctanh(jnp.clip(r, -max_abs, max_abs))


# ----------------------------------------------------------------------------- FC / FCD


def pearson(x: _Vectors, y: _Vectors) -> _Batch:
    """Pearson correlation of `x` and `y` along the last axis.

    A constant `x` or `y` has correlation 0 (not NaN), with a finite gradient.

    **Arguments:**

    - `x`, `y`: shape `(..., m)`, the same shape, `m >= 2`.

    **Returns:** shape `(...)`, in `[-1, 1]`.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"y: expected the shape of x {x.shape}, got {y.shape}.")
    if x.ndim < 1 or x.shape[-1] < 2:
        raise ValueError(f"x: expected shape (..., m) with m >= 2, got {x.shape}.")
    return _pearson_kernel(x, y)


@jax.jit
def _pearson_kernel(x: _Vectors, y: _Vectors) -> _Batch:
    r = jnp.sum(_standardize(x, -1) * _standardize(y, -1), axis=-1)
    return jnp.clip(r, -1.0, 1.0)


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


# ----------------------------------------------------------------------------- distributions


def ks_statistic(x: _Sample, y: _Sample) -> Scalar:
    r"""Two-sample Kolmogorov-Smirnov statistic $\sup_v |F_x(v) - F_y(v)|$.

    Equals `scipy.stats.ks_2samp(x, y).statistic`. Piecewise constant in the
    values: its gradient is zero almost everywhere (finite, but useless for
    gradient descent; use `wasserstein_1`).

    **Arguments:**

    - `x`, `y`: 1-D samples, of any sizes.

    **Returns:** a scalar in `[0, 1]`.
    """
    return _ks_kernel(_sample(x, "x"), _sample(y, "y"))


@jax.jit
def _ks_kernel(x: _Sample, y: _Sample) -> Scalar:
    xs, ys = jnp.sort(x), jnp.sort(y)
    both = jnp.concatenate([xs, ys])
    count_x = jnp.searchsorted(xs, both, side="right")
    count_y = jnp.searchsorted(ys, both, side="right")
    n, m = x.shape[0], y.shape[0]
    if n == m:  # integer differences: exactly 0 for identical samples
        return (jnp.max(jnp.abs(count_x - count_y)) / n).astype(both.dtype)
    return jnp.max(jnp.abs(count_x / n - count_y / m)).astype(both.dtype)


def wasserstein_1(x: _Sample, y: _Sample) -> Scalar:
    r"""Wasserstein-1 (earth mover's) distance between two empirical distributions.

    $W_1 = \int_0^1 |Q_x(q) - Q_y(q)|\,dq$ with $Q$ the empirical quantile
    functions (step functions through the sorted samples). With equal sizes
    this is `mean(|sort(x) - sort(y)|)`; otherwise the integral is exact over
    the merged grid of quantile levels $\{i/n\} \cup \{j/m\}$. Equals
    `scipy.stats.wasserstein_distance(x, y)`; differentiable in both samples.

    **Arguments:**

    - `x`, `y`: 1-D samples, of any sizes.

    **Returns:** a scalar >= 0, in the units of the samples.
    """
    return _wasserstein_kernel(_sample(x, "x"), _sample(y, "y"))


@jax.jit
def _wasserstein_kernel(x: _Sample, y: _Sample) -> Scalar:
    n, m = x.shape[0], y.shape[0]
    xs, ys = jnp.sort(x), jnp.sort(y)
    if n == m:
        return jnp.mean(jnp.abs(xs - ys))
    levels = np.union1d(np.arange(n + 1) / n, np.arange(m + 1) / m)
    widths = np.diff(levels)
    mid = 0.5 * (levels[1:] + levels[:-1])
    ix = np.minimum(np.floor(mid * n).astype(int), n - 1)
    iy = np.minimum(np.floor(mid * m).astype(int), m - 1)
    return jnp.sum(jnp.asarray(widths, xs.dtype) * jnp.abs(xs[ix] - ys[iy]))


def _sample(x: Any, name: str) -> Array:
    x = jnp.asarray(x)
    if x.ndim != 1 or x.shape[0] < 1:
        raise ValueError(f"{name}: expected a non-empty 1-D sample, got shape {x.shape}.")
    return x


# ----------------------------------------------------------------------------- spectra


def psd(
    signal: Signal,
    fs: Any = None,
    *,
    period: Any = None,
    nperseg: int = 256,
    noverlap: int | None = None,
    detrend: str | None = "constant",
) -> tuple[_Freqs, _Spectrum]:
    r"""Power spectral density by Welch's method, as `scipy.signal.welch`.

    The signal is cut into segments of `nperseg` samples overlapping by
    `noverlap`; each is detrended, multiplied by a (periodic) Hann window $w$
    and Fourier transformed; the one-sided periodograms
    $2|X_k|^2 / (f_s \sum_n w_n^2)$ (not doubled at 0 Hz and at the Nyquist
    frequency) are averaged. Summed over all frequencies times the frequency
    step, the PSD is the (window-weighted) mean power of the signal. Welch
    (1967), IEEE Trans. Audio Electroacoust. 15:70.

    **Arguments:**

    - `signal`: shape `(n_times, n_channels)`, in any unit `U`.
    - `fs` or `period`: the sampling rate (Hz, or a frequency quantity) or
      period (ms, or a time quantity); exactly one.
    - `nperseg`: segment length in samples (default 256); a signal shorter
      than that is one segment of its full length (as in scipy, which warns).
    - `noverlap`: overlap in samples, default `nperseg // 2` (50 %).
    - `detrend`: `"constant"` (remove each segment's mean, default),
      `"linear"` (remove a least-squares line) or `None`.

    **Returns:** `(freqs, psd)`: `freqs` in Hz, shape `(nperseg // 2 + 1,)`;
    `psd` in `U^2/Hz`, shape `(n_freqs, n_channels)`.
    """
    x = _as_signal(signal)
    period_ms = _sampling_period(period, fs)
    rate = 1000.0 / period_ms
    n_times = x.shape[0]
    nperseg = int(nperseg)
    if nperseg < 1:
        raise ValueError(f"nperseg: expected a segment length >= 1 sample, got {nperseg}.")
    nperseg = min(nperseg, n_times)
    if noverlap is None:
        noverlap = nperseg // 2
    noverlap = int(noverlap)
    if not 0 <= noverlap < nperseg:
        raise ValueError(
            f"noverlap: expected an overlap in [0, nperseg = {nperseg}) samples, got {noverlap}."
        )
    if detrend not in ("constant", "linear", None):
        raise ValueError(f"detrend: expected 'constant', 'linear' or None, got {detrend!r}.")
    freqs = jnp.asarray(np.fft.rfftfreq(nperseg, d=1.0 / rate), x.dtype)
    return freqs, _welch_kernel(x, rate, nperseg, noverlap, detrend)


@functools.partial(jax.jit, static_argnames=("rate", "nperseg", "noverlap", "detrend"))
def _welch_kernel(
    x: Signal, rate: float, nperseg: int, noverlap: int, detrend: str | None
) -> _Spectrum:
    n_times = x.shape[0]
    hop = nperseg - noverlap
    n_segments = (n_times - noverlap) // hop
    index = np.arange(n_segments)[:, None] * hop + np.arange(nperseg)[None, :]
    segments = x[index]  # (n_segments, nperseg, n_channels)
    if detrend == "constant":
        segments = segments - jnp.mean(segments, axis=1, keepdims=True)
    elif detrend == "linear":
        t = np.arange(nperseg, dtype=float) - (nperseg - 1) / 2.0
        denom = float(np.sum(t * t)) if nperseg > 1 else 1.0
        tt = jnp.asarray(t, segments.dtype)[None, :, None]
        slope = jnp.sum(segments * tt, axis=1, keepdims=True) / denom
        segments = segments - jnp.mean(segments, axis=1, keepdims=True) - slope * tt
    # periodic Hann window, scipy.signal.get_window("hann", nperseg)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nperseg) / nperseg)
    scale = 1.0 / (rate * float(np.sum(window**2)))
    spectrum = jnp.fft.rfft(segments * jnp.asarray(window, x.dtype)[None, :, None], axis=1)
    power = (spectrum.real**2 + spectrum.imag**2) * scale
    one_sided = np.full(nperseg // 2 + 1, 2.0)
    one_sided[0] = 1.0
    if nperseg % 2 == 0:
        one_sided[-1] = 1.0
    return jnp.mean(power, axis=0) * jnp.asarray(one_sided, x.dtype)[:, None]


def resolve_band(band: Any, name: str = "band") -> tuple[float, float]:
    """A frequency band as `(low, high)` in Hz.

    **Arguments:**

    - `band`: a name from `BANDS` (`"delta"`, `"theta"`, `"alpha"`, `"beta"`,
      `"gamma"`) or a pair `(low, high)` of numbers in Hz or frequency
      quantities, `0 <= low < high`.

    **Returns:** `(low, high)` as floats in Hz.
    """
    if isinstance(band, str):
        if band not in BANDS:
            raise ValueError(
                f"{name}: expected one of {sorted(BANDS)} or (low, high), got {band!r}."
            )
        return BANDS[band]
    if not isinstance(band, Sequence) or len(band) != 2:
        raise ValueError(
            f"{name}: expected a band name {sorted(BANDS)} or a pair (low, high) in Hz, "
            f"got {band!r}."
        )
    low, high = (_to_float(b, u.Hz, name) for b in band)
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low < high):
        raise ValueError(f"{name}: expected 0 <= low < high (Hz), got ({low}, {high}).")
    return low, high


def _checked_band(freqs: Array, band: Any) -> tuple[float, float] | None:
    """`band` in Hz (None: all), checked to hold a frequency when `freqs` is concrete."""
    if band is None:
        return None
    low, high = resolve_band(band)
    if not isinstance(freqs, jax.core.Tracer):
        f = np.asarray(freqs)
        if not np.any((f >= low) & (f <= high)):
            raise ValueError(
                f"band: no frequency of the spectrum lies in [{low}, {high}] Hz (the spectrum "
                f"covers {f[0]:.6g} to {f[-1]:.6g} Hz); widen the band or use a longer nperseg."
            )
    return low, high


def _mask(freqs: Array, band: tuple[float, float] | None, ndim: int) -> Array:
    if band is None:
        mask = jnp.ones(freqs.shape, bool)
    else:
        mask = (freqs >= band[0]) & (freqs <= band[1])
    return mask[:, None] if ndim == 2 else mask


def _check_spectrum(freqs: Any, spectrum: Any) -> tuple[Array, Array]:
    freqs, spectrum = jnp.asarray(freqs), jnp.asarray(spectrum)
    if freqs.ndim != 1:
        raise ValueError(f"freqs: expected shape (n_freqs,), got {freqs.shape}.")
    if spectrum.ndim not in (1, 2) or spectrum.shape[0] != freqs.shape[0]:
        raise ValueError(
            f"psd: expected shape ({freqs.shape[0]},) or ({freqs.shape[0]}, n_channels) "
            f"to match freqs, got {spectrum.shape}."
        )
    return freqs, spectrum


def peak_frequency(
    freqs: _Freqs,
    psd: _AnySpectrum,
    band: Any = None,
    *,
    temperature: float | None = None,
) -> _PerChannel:
    r"""The frequency of the largest spectral power (in a band).

    With `temperature=None` this is the arg-max (gradient zero almost
    everywhere). With a `temperature` $T > 0$ it is the differentiable
    soft-arg-max $\sum_k f_k\, \mathrm{softmax}_k(\log P_k / T)$, i.e. the
    mean frequency under weights $\propto P_k^{1/T}$ over the band: $T \to 0$
    gives the arg-max, $T = 1$ the spectral centroid. $T$ around 0.05-0.2
    gives a sub-bin estimate near the peak that moves smoothly with the
    spectrum.

    **Arguments:**

    - `freqs`: shape `(n_freqs,)` in Hz (from `psd`).
    - `psd`: shape `(n_freqs,)` or `(n_freqs, n_channels)`, non-negative.
    - `band`: restrict the search to a band (name or `(low, high)` Hz); default
      all frequencies.
    - `temperature`: `None` (hard arg-max) or a positive float.

    **Returns:** Hz, shape `()` or `(n_channels,)`.
    """
    freqs, spectrum = _check_spectrum(freqs, psd)
    band = _checked_band(freqs, band)
    if temperature is not None:
        temperature = float(temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature: expected None or a value > 0, got {temperature}.")
    return _peak_kernel(freqs, spectrum, band, temperature)


@functools.partial(jax.jit, static_argnames=("band", "temperature"))
def _peak_kernel(
    freqs: _Freqs,
    spectrum: _AnySpectrum,
    band: tuple[float, float] | None,
    temperature: float | None,
) -> _PerChannel:
    mask = _mask(freqs, band, spectrum.ndim)
    if temperature is None:
        index = jnp.argmax(jnp.where(mask, spectrum, -jnp.inf), axis=0)
        return freqs[index]
    grid = freqs if spectrum.ndim == 1 else freqs[:, None]
    tiny = jnp.finfo(spectrum.dtype).tiny
    logits = jnp.log(jnp.maximum(spectrum, tiny)) / temperature
    weights = jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=0)
    return jnp.sum(jnp.where(mask, weights * grid, 0.0), axis=0)


def band_power(freqs: _Freqs, psd: _AnySpectrum, band: Any) -> _PerChannel:
    r"""Power in a frequency band: the PSD integrated over the band.

    $\sum_{f_k \in [low, high]} P_k\, \Delta f$ on the uniform frequency grid
    of `psd` (bins on the band edges included), so that over all frequencies
    it is the signal's mean power (variance, for a zero-mean signal); a
    sinusoid of amplitude $A$ inside the band gives $A^2/2$.

    **Arguments:**

    - `freqs`: shape `(n_freqs,)` in Hz, uniformly spaced (from `psd`).
    - `psd`: shape `(n_freqs,)` or `(n_freqs, n_channels)`, in `U^2/Hz`.
    - `band`: a name from `BANDS` or `(low, high)` in Hz.

    **Returns:** in `U^2`, shape `()` or `(n_channels,)`.
    """
    freqs, spectrum = _check_spectrum(freqs, psd)
    if freqs.shape[0] < 2:
        raise ValueError(f"freqs: expected at least 2 frequencies, got {freqs.shape}.")
    return _band_power_kernel(freqs, spectrum, _checked_band(freqs, band))


@functools.partial(jax.jit, static_argnames=("band",))
def _band_power_kernel(
    freqs: _Freqs, spectrum: _AnySpectrum, band: tuple[float, float]
) -> _PerChannel:
    mask = _mask(freqs, band, spectrum.ndim)
    return jnp.sum(jnp.where(mask, spectrum, 0.0), axis=0) * (freqs[1] - freqs[0])


# ----------------------------------------------------------------------------- phases


def analytic_signal(signal: Signal) -> Array:
    r"""The analytic signal $x + i\,\mathcal{H}[x]$ along time, as `scipy.signal.hilbert`.

    Computed with the FFT: negative frequencies zeroed, positive ones doubled.
    The signal is treated as periodic, so the first and last few samples are
    distorted unless it holds whole periods (discard edges in practice).

    **Arguments:**

    - `signal`: shape `(n_times, n_channels)`.

    **Returns:** complex, shape `(n_times, n_channels)`.
    """
    return _analytic_kernel(_as_signal(signal))


@jax.jit
def _analytic_kernel(x: Signal) -> Array:
    n = x.shape[0]
    h = np.zeros(n)
    if n % 2 == 0:
        h[0] = h[n // 2] = 1.0
        h[1 : n // 2] = 2.0
    else:
        h[0] = 1.0
        h[1 : (n + 1) // 2] = 2.0
    return jnp.fft.ifft(jnp.fft.fft(x, axis=0) * jnp.asarray(h, x.dtype)[:, None], axis=0)


def phase(signal: Signal, *, center: bool = True) -> Signal:
    r"""Instantaneous phase from the analytic signal (Hilbert transform), in radians.

    For $x = A \cos(\omega t + \phi)$ this returns $\omega t + \phi$ wrapped to
    $(-\pi, \pi]$, so that order parameters of non-phase models (e.g. the `x`
    of a Hopf oscillator) can be computed with `kuramoto_order`.

    **Arguments:**

    - `signal`: shape `(n_times, n_channels)`; band-pass filter broadband
      signals first, the phase is meaningful for narrow-band ones.
    - `center`: subtract each channel's mean first (default), so an offset
      does not distort the phase.

    **Returns:** shape `(n_times, n_channels)`, in $(-\pi, \pi]$.
    """
    return _phase_kernel(_as_signal(signal), bool(center))


@functools.partial(jax.jit, static_argnames=("center",))
def _phase_kernel(x: Signal, center: bool) -> Signal:
    if center:
        x = x - jnp.mean(x, axis=0, keepdims=True)
    z = _analytic_kernel(x)
    re, im = jnp.real(z), jnp.imag(z)
    # arctan2 has a 0/0 gradient at z = 0: move those points to (1, 0)
    zero = (re == 0) & (im == 0)
    return jnp.where(zero, 0.0, jnp.arctan2(im, jnp.where(zero, 1.0, re)))


def kuramoto_order(phases: _Phases) -> _PerTime:
    r"""Kuramoto order parameter $R = |\frac{1}{N}\sum_j e^{i\theta_j}|$ over the last axis.

    $R = 1$ for identical phases; about $\sqrt{\pi / (4N)}$ for independent
    uniformly random phases ($E[R^2] = 1/N$). Kuramoto (1984), Chemical
    Oscillations, Waves, and Turbulence.

    **Arguments:**

    - `phases`: radians, shape `(n_times, n_oscillators)` (or `(n_oscillators,)`).

    **Returns:** shape `(n_times,)` (or `()`), in `[0, 1]`.
    """
    phases = jnp.asarray(phases)
    if phases.ndim < 1 or phases.shape[-1] < 1:
        raise ValueError(
            f"phases: expected shape (n_times, n_oscillators) or (n_oscillators,), "
            f"got {phases.shape}."
        )
    return _order_kernel(phases)


@jax.jit
def _order_kernel(phases: _Phases) -> _PerTime:
    c = jnp.mean(jnp.cos(phases), axis=-1)
    s = jnp.mean(jnp.sin(phases), axis=-1)
    return jnp.minimum(_safe_sqrt(c * c + s * s), 1.0)


def metastability(phases: _Phases) -> Scalar:
    r"""Metastability: the standard deviation over time of the Kuramoto order $R(t)$.

    Shanahan (2010), Chaos 20:013108; Deco et al. (2017), Sci. Rep. 7:3095.

    **Arguments:**

    - `phases`: radians, shape `(n_times, n_oscillators)` (e.g. from `phase`).

    **Returns:** a scalar >= 0; 0 for a constant order parameter.
    """
    phases = jnp.asarray(phases)
    if phases.ndim != 2:
        raise ValueError(f"phases: expected shape (n_times, n_oscillators), got {phases.shape}.")
    return _metastability_kernel(phases)


@jax.jit
def _metastability_kernel(phases: _Phases) -> Scalar:
    order = _order_kernel(phases)
    centred = order - jnp.mean(order)
    return _safe_sqrt(jnp.mean(centred * centred))
