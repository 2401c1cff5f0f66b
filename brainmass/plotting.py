"""Quick-look figures of a simulation: activity traces, functional connectivity, spectrum.

matplotlib is imported inside `plot_simulation` only, and drawn on an Agg canvas
(no pyplot, no global backend switch), so `import brainmass` never loads a
plotting backend and figures can be written on a machine without a display.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_simulation"]


def _functional_connectivity(signal: Any) -> np.ndarray:
    r"""Pearson correlation between channels, shape `(n_channels, n_channels)`.

    $FC_{ij} = \langle z_i z_j \rangle_t$ with $z$ each channel standardised
    over time. A channel of zero variance has no defined correlation: its row
    and column are NaN (the diagonal stays 1).

    **Arguments:**

    - `signal`: shape `(n_samples, n_channels)`.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(
            f"signal: expected shape (n_samples >= 2, n_channels), got {np.shape(signal)}."
        )
    x = x - x.mean(axis=0, keepdims=True)
    std = np.sqrt(np.mean(x * x, axis=0))
    flat = std <= 1e-12 * max(float(std.max(initial=0.0)), 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = x / np.where(flat, np.nan, std)[None, :]
    fc = (z.T @ z) / x.shape[0]
    np.fill_diagonal(fc, 1.0)
    return np.clip(fc, -1.0, 1.0)


def _mean_fc(fc: np.ndarray) -> float:
    """Mean off-diagonal entry of an FC matrix (NaN entries ignored; NaN if none is left)."""
    n = fc.shape[0]
    off = fc[~np.eye(n, dtype=bool)]
    off = off[np.isfinite(off)]
    return float(off.mean()) if off.size else float("nan")


def _power_spectrum(signal: Any, period_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density averaged over channels.

    **Arguments:**

    - `signal`: shape `(n_samples, n_channels)`, sampled every `period_ms` ms.

    **Returns:** `(freqs, power)`: frequencies in Hz `(n_freqs,)` and the
    channel-averaged density `(n_freqs,)` in signal units squared per Hz.
    """
    from scipy.signal import welch

    x = np.asarray(signal, dtype=np.float64)
    fs = 1000.0 / period_ms  # Hz
    nperseg = int(min(x.shape[0], 1024))
    freqs, power = welch(x, fs=fs, nperseg=nperseg, axis=0, detrend="constant")
    return freqs, power.mean(axis=1)


def _peak_frequency(freqs: np.ndarray, power: np.ndarray) -> float:
    """Frequency (Hz) of the largest spectral density, ignoring the 0 Hz bin."""
    if freqs.size < 2 or not np.any(np.isfinite(power[1:])):
        return float("nan")
    return float(freqs[1 + int(np.nanargmax(power[1:]))])


def plot_simulation(
    time: Any,
    signal: Any,
    path: str | os.PathLike,
    *,
    labels: tuple[str, ...] | None = None,
    n_traces: int = 8,
    window: float = 2000.0,
    fmax: float = 60.0,
    title: str | None = None,
) -> Path:
    """Write a PNG with activity traces, the FC matrix and the power spectrum.

    **Arguments:**

    - `time`: sample times in ms, shape `(n_samples,)`, evenly spaced.
    - `signal`: shape `(n_samples, n_channels)`.
    - `path`: the file to write (a PNG; other matplotlib formats by suffix).
    - `labels`: channel names, `n_channels` of them (used for the traces).
    - `n_traces`: how many channels to draw as traces (evenly spread).
    - `window`: the traces show the first `window` ms.
    - `fmax`: the spectrum shows 0 to `fmax` Hz.
    - `title`: a title over the figure.

    **Returns:** the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = np.asarray(time, dtype=np.float64)
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 2 or t.shape != (x.shape[0],):
        raise ValueError(
            f"time, signal: expected shapes (n_samples,) and (n_samples, n_channels), "
            f"got {t.shape} and {x.shape}."
        )
    n = x.shape[1]
    labels = tuple(labels) if labels is not None else tuple(str(i) for i in range(n))
    period = float(t[1] - t[0]) if t.size > 1 else 1.0

    fig = Figure(figsize=(11, 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, height_ratios=(1.0, 1.15))
    ax_tr = fig.add_subplot(grid[0, :])
    ax_fc = fig.add_subplot(grid[1, 0])
    ax_ps = fig.add_subplot(grid[1, 1])

    # traces, offset vertically
    shown = np.unique(np.linspace(0, n - 1, min(n_traces, n)).round().astype(int))
    keep = t <= t[0] + window
    spread = float(np.nanstd(x[:, shown])) if x.size else 1.0
    step = 4.0 * spread if spread > 0 else 1.0
    for k, i in enumerate(shown):
        ax_tr.plot(t[keep], x[keep, i] - k * step, lw=0.8)
    ax_tr.set_yticks([-k * step for k in range(len(shown))], [labels[i] for i in shown])
    ax_tr.set_xlabel("time (ms)")
    ax_tr.set_title(f"activity, {len(shown)} of {n} regions")
    ax_tr.margins(x=0)

    # functional connectivity
    if x.shape[0] >= 2:
        fc = _functional_connectivity(x)
        off = fc[~np.eye(n, dtype=bool)]
        finite = np.abs(off[np.isfinite(off)])
        # a robust colour range: a few strong pairs should not wash out the rest
        vmax = float(np.percentile(finite, 98)) if finite.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
        shown_fc = np.where(np.eye(n, dtype=bool), np.nan, fc)
        im = ax_fc.imshow(shown_fc, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        fig.colorbar(im, ax=ax_fc, shrink=0.85, label="Pearson r")
        ax_fc.set_title(f"functional connectivity (mean off-diagonal {_mean_fc(fc):.3f})")
        ax_fc.set_xlabel("region")
        ax_fc.set_ylabel("region")

    # power spectrum
    if x.shape[0] >= 8:
        freqs, power = _power_spectrum(x, period)
        band = (freqs > 0) & (freqs <= fmax)
        if np.any(band) and np.all(power[band] > 0):
            ax_ps.semilogy(freqs[band], power[band], color="k", lw=1.2)
            peak = _peak_frequency(freqs, power)
            ax_ps.axvline(peak, color="tab:red", ls="--", lw=0.8, label=f"peak {peak:.1f} Hz")
            ax_ps.legend(loc="upper right")
        ax_ps.set_xlabel("frequency (Hz)")
        ax_ps.set_ylabel("power (mean over regions)")
        ax_ps.set_title("power spectrum (Welch)")

    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
