"""Spectra: Welch PSD, frequency bands, peak frequency, band power."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Signal
from ._common import (
    _AnySpectrum,
    _as_signal,
    _Freqs,
    _PerChannel,
    _sampling_period,
    _Spectrum,
    _to_float,
)

BANDS: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 80.0),
}
"""The standard EEG/MEG frequency bands in Hz, closed intervals `[low, high]`."""


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
