"""Frequency-domain summaries: band powers and peak frequency, and band-passed phase synchrony."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, final

import equinox as eqx
import jax.numpy as jnp
import numpy as np

import brainmass as bm
from brainmass.checks import check_int

from ._base import AbstractSummary

__all__ = ["Order", "Spectral"]

_EEG_BANDS = ("delta", "theta", "alpha", "beta", "gamma")


def _default_nperseg(n_samples: int, period: float) -> int:
    """About one second per Welch segment (<= 1 Hz resolution), >= 256 samples, <= the signal."""
    one_second = 2 ** math.ceil(math.log2(max(1000.0 / period, 1.0)))
    return min(n_samples, max(256, one_second))


def _resolve_bands(bands: Any) -> tuple[tuple[str, tuple[float, float]], ...]:
    """Band names or `{name: (low, high)}` Hz as `((name, (low, high)), ...)`."""
    if isinstance(bands, str):
        bands = (bands,)
    if isinstance(bands, Mapping):
        resolved = {
            str(k): bm.analysis.resolve_band(v, f"Spectral bands[{k!r}]") for k, v in bands.items()
        }
    elif isinstance(bands, Sequence):
        resolved = {}
        for b in bands:
            if not isinstance(b, str):
                raise ValueError(
                    f"Spectral bands: expected band names or a dict name -> (low, high) Hz, "
                    f"got the entry {b!r}."
                )
            resolved[b] = bm.analysis.resolve_band(b, "Spectral bands")
    else:
        raise ValueError(
            f"Spectral bands: expected band names or a dict name -> (low, high) Hz, got {bands!r}."
        )
    if not resolved:
        raise ValueError("Spectral bands: expected at least one band (the peak's range).")
    return tuple((k, (float(lo), float(hi))) for k, (lo, hi) in resolved.items())


@final
class Spectral(AbstractSummary):
    r"""Band powers and the peak frequency of the Welch spectrum.

    The Welch PSD (`bm.analysis.psd`, `nperseg` samples per segment, 50 %
    overlap) is averaged over channels (unless `per_channel`), then for each
    band the power `bm.analysis.band_power` is taken, relative (default: the
    fraction of the total power over all frequencies, insensitive to the
    signal's scale) or absolute (signal unit$^2$), as $\log_{10}$ by default;
    and the peak frequency (Hz, `bm.analysis.peak_frequency`, arg-max) is
    searched between the lowest band edge and the highest. Features, in
    order: one per band named `"<band>_power"`, then `"peak_frequency"`;
    with `per_channel`, each is repeated per channel (`"alpha_power[c]"`),
    feature-major. A zero power gives $\log_{10}$ of the smallest normal
    float (finite).

    **Arguments:**

    - `bands`: band names from `bm.analysis.BANDS` (default the five EEG bands)
      or a dict `{name: (low, high)}` in Hz. Every band must lie below the
      Nyquist frequency and hold a frequency of the Welch grid. Stored as the
      tuple `((name, (low, high)), ...)`.
    - `peak`: include the peak frequency (default True).
    - `log`: $\log_{10}$ of the band powers (default True).
    - `nperseg`: Welch segment length in samples; default about one second
      (the power of two >= 1000 ms / period, at least 256 samples), at most
      the whole signal.
    - `per_channel`: one set of features per channel instead of the spectrum
      averaged over channels.
    - `relative`: band power divided by the total power (default True).
    """

    bands: tuple[tuple[str, tuple[float, float]], ...] = eqx.field(static=True)
    peak: bool = eqx.field(static=True)
    log: bool = eqx.field(static=True)
    nperseg: int | None = eqx.field(static=True)
    per_channel: bool = eqx.field(static=True)
    relative: bool = eqx.field(static=True)
    _period: float | None = eqx.field(static=True)
    _signal_shape: tuple[int, int] | None = eqx.field(static=True)

    def __init__(
        self,
        bands: Sequence[str] | Mapping[str, tuple[float, float]] = _EEG_BANDS,
        peak: bool = True,
        log: bool = True,
        nperseg: int | None = None,
        per_channel: bool = False,
        relative: bool = True,
    ):
        self.bands = _resolve_bands(bands)
        self.peak = bool(peak)
        self.log = bool(log)
        self.nperseg = None if nperseg is None else check_int(nperseg, "Spectral nperseg", 4)
        self.per_channel = bool(per_channel)
        self.relative = bool(relative)
        self._period = None
        self._signal_shape = None

    def __check_init__(self):
        if self._signal_shape is None:
            return
        n, period, nyquist = self._signal_shape[0], self._period, self._nyquist()
        for name, (lo, hi) in self.bands:
            if hi > nyquist:
                raise ValueError(
                    f"Spectral bands[{name!r}]: ({lo:g}, {hi:g}) Hz reaches above the Nyquist "
                    f"frequency {nyquist:g} Hz of the {period:g} ms sampling period; expected "
                    "bands below it."
                )
        if self.nperseg is not None and self.nperseg > n:
            raise ValueError(
                f"Spectral nperseg: {self.nperseg} samples per segment, but the signal has {n}; "
                "expected at most that."
            )
        nperseg = self._segment()
        if nperseg < 4:
            raise ValueError(f"shape: Spectral needs at least 4 samples, got {n}.")
        freqs = np.fft.rfftfreq(nperseg, d=period / 1000.0)
        for name, (lo, hi) in self.bands:
            if not np.any((freqs >= lo) & (freqs <= hi)):
                raise ValueError(
                    f"Spectral bands[{name!r}]: no frequency of the Welch grid (steps of "
                    f"{freqs[1]:g} Hz, nperseg = {nperseg}) lies in ({lo:g}, {hi:g}) Hz; use a "
                    "longer nperseg (or run) or a wider band."
                )

    def _segment(self) -> int:
        """The Welch segment length used, samples."""
        if self.nperseg is not None:
            return self.nperseg
        return _default_nperseg(self._signal_shape[0], self._period)

    def _nyquist(self) -> float:
        """The Nyquist frequency of the bound sampling period, Hz."""
        return 500.0 / self._period

    def _shape(self):
        per = self._signal_shape[1] if self.per_channel else 1
        return ((len(self.bands) + int(self.peak)) * per,)

    def _names(self):
        base = [f"{b}_power" for b, _ in self.bands] + (["peak_frequency"] if self.peak else [])
        if not self.per_channel:
            return base
        c = self._signal_shape[1]
        return [f"{b}[{i}]" for b in base for i in range(c)]

    def _compute(self, x):
        freqs, p = bm.analysis.psd(x, period=self._period, nperseg=self._segment())
        if not self.per_channel:
            p = jnp.mean(p, axis=1, keepdims=True)
        feats = []
        if self.relative:
            total = bm.analysis.band_power(freqs, p, (0.0, self._nyquist()))
            total = jnp.where(total > 0, total, 1.0)
        for _, band in self.bands:
            power = bm.analysis.band_power(freqs, p, band)
            if self.relative:
                power = power / total
            if self.log:
                power = jnp.log10(jnp.maximum(power, jnp.finfo(power.dtype).tiny))
            feats.append(power)
        if self.peak:
            lo = min(b[0] for _, b in self.bands)
            hi = max(b[1] for _, b in self.bands)
            feats.append(bm.analysis.peak_frequency(freqs, p, (lo, hi)))
        return jnp.concatenate(feats)


@final
class Order(AbstractSummary):
    r"""Synchrony: the mean Kuramoto order parameter and the metastability.

    The signals are band-passed (an ideal FFT filter keeping the frequencies
    in `band`) or only mean-removed (`band=None`); their instantaneous phases
    come from the Hilbert transform (`bm.analysis.phase`, which treats the
    signal as periodic: the first and last few samples are distorted). The
    features are the time average of $R(t)$ (`kuramoto_order`), named
    `"order"`, and its standard deviation over time (`metastability`), named
    `"metastability"`. Identical signals give 1 and 0; independent noise
    gives an order about $\sqrt{\pi / (4 N)}$ for $N$ channels.

    **Arguments:**

    - `band`: `None` (the whole spectrum), a band name from `bm.analysis.BANDS`
      or `(low, high)` in Hz, below the Nyquist frequency.
    """

    band: tuple[float, float] | None = eqx.field(static=True)
    _period: float | None = eqx.field(static=True)
    _signal_shape: tuple[int, int] | None = eqx.field(static=True)

    def __init__(self, band: Any = None):
        if band is not None:
            lo, hi = bm.analysis.resolve_band(band, "Order band")
            band = (float(lo), float(hi))
        self.band = band
        self._period = None
        self._signal_shape = None

    def __check_init__(self):
        if self._signal_shape is None:
            return
        n, c = self._signal_shape
        if c < 2:
            raise ValueError(f"shape: Order needs at least 2 channels, got {self._signal_shape}.")
        if n < 4:
            raise ValueError(f"shape: Order needs at least 4 samples, got {self._signal_shape}.")
        if self.band is not None:
            lo, hi = self.band
            nyquist = 500.0 / self._period
            if hi > nyquist:
                raise ValueError(
                    f"Order band: ({lo:g}, {hi:g}) Hz reaches above the Nyquist frequency "
                    f"{nyquist:g} Hz of the {self._period:g} ms sampling period."
                )
            if not self._keep(n).any():
                step = 1000.0 / (n * self._period)
                raise ValueError(
                    f"Order band: no frequency of the signal's FFT grid (steps of {step:g} "
                    f"Hz) lies in ({lo:g}, {hi:g}) Hz; use a longer run or a wider band."
                )

    def _keep(self, n: int) -> np.ndarray:
        """Which of the `n`-sample signal's FFT frequencies lie in the band (not 0 Hz)."""
        lo, hi = self.band
        freqs = np.fft.rfftfreq(n, d=self._period / 1000.0)
        return (freqs >= lo) & (freqs <= hi) & (freqs > 0)

    def _shape(self):
        return (2,)

    def _names(self):
        return ["order", "metastability"]

    def _compute(self, x):
        if self.band is not None:
            n = x.shape[0]
            spectrum = jnp.fft.rfft(x, axis=0)
            keep = jnp.asarray(self._keep(n))[:, None]
            x = jnp.fft.irfft(jnp.where(keep, spectrum, 0.0), n=n, axis=0).astype(x.dtype)
        phases = bm.analysis.phase(x)
        order = bm.analysis.kuramoto_order(phases)
        return jnp.stack([jnp.mean(order), bm.analysis.metastability(phases)])
