r"""Objectives: `(prediction, target) -> scalar` losses, composable with `combine`.

Each objective is a small final equinox Module that holds its options (static,
hashable fields), so it is a pytree that can be closed over or passed through
`jax.jit`, and it is differentiable with respect to the prediction (except
`FCDKS`, which is reported rather than optimised). Signals are
`(n_times, n_channels)` arrays, as `Result.signal`; prediction and target must
have the same channels, and the same number of samples where the objective
compares them sample by sample.

    import brainmass as bm
    loss = bm.objectives.combine({
        bm.objectives.FCCorrelation(): 1.0,
        bm.objectives.SpectralDistance(period=1.0, band=(2.0, 40.0)): 0.1,
    })
    value = loss(simulated_signal, empirical_signal)

Any user function `(prediction, target) -> scalar` plugs into `combine` too.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, final

import brainunit as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import analysis
from ._custom_types import Array
from .analysis import Scalar
from .recording import Recording
from .units import MS, is_quantity

__all__ = [
    "AbstractObjective",
    "Combined",
    "FCCorrelation",
    "FCDDistance",
    "FCDKS",
    "FCRMSE",
    "PeakFrequencyError",
    "SpectralDistance",
    "TimeSeriesRMSE",
    "combine",
]


# ----------------------------------------------------------------------------- helpers


def _signal(x: Any, name: str, *, min_times: int = 1) -> Array:
    return analysis._as_signal(x, name, min_times=min_times)


def _signal_pair(
    prediction: Any, target: Any, *, same_length: bool, min_times: int = 1
) -> tuple[Array, Array]:
    """Two signals with the same channels (and, if asked, the same number of samples).

    Quantities are read in their own unit; a target quantity is first converted
    to the unit of a prediction quantity.
    """
    if is_quantity(prediction) and is_quantity(target):
        if u.get_dim(prediction) != u.get_dim(target):
            raise ValueError(
                f"target: expected a signal in units of the prediction's dimension "
                f"({u.get_dim(prediction)}), got {u.get_dim(target)}."
            )
        target = target.to_decimal(prediction.unit)
    p = _signal(prediction, "prediction", min_times=min_times)
    t = _signal(target, "target", min_times=min_times)
    if same_length and p.shape != t.shape:
        raise ValueError(
            f"target: expected the shape of prediction {p.shape} (n_times, n_channels), "
            f"got {t.shape}."
        )
    if p.shape[1] != t.shape[1]:
        raise ValueError(
            f"target: expected {p.shape[1]} channels like prediction {p.shape}, got shape "
            f"{t.shape}."
        )
    return p, t


def _both(fn: Callable[[Array], Array], prediction: Array, target: Array) -> tuple[Array, Array]:
    """`fn(prediction), fn(target)`; one vmapped call (one compiled copy) when shapes agree."""
    if prediction.shape != target.shape:
        return fn(prediction), fn(target)
    out = jax.vmap(fn)(jnp.stack([prediction, target]))
    return out[0], out[1]


def _matrix_pair(prediction: Any, target: Any, what: str) -> tuple[Array, Array]:
    p, t = jnp.asarray(prediction), jnp.asarray(target)
    for x, name in ((p, "prediction"), (t, "target")):
        if x.ndim != 2 or x.shape[0] != x.shape[1]:
            raise ValueError(f"{name}: expected a square {what} matrix (n, n), got {x.shape}.")
    if p.shape != t.shape:
        raise ValueError(f"target: expected the shape of prediction {p.shape}, got {t.shape}.")
    return p, t


def _check_inputs(inputs: str, allowed: tuple[str, ...]) -> str:
    if inputs not in allowed:
        raise ValueError(f"inputs: expected one of {allowed}, got {inputs!r}.")
    return inputs


def _rmse(diff: Array) -> Array:
    return analysis._safe_sqrt(jnp.mean(diff * diff))


def _fc_upper(prediction: Any, target: Any, inputs: str, min_channels: int) -> tuple[Array, Array]:
    if inputs == "fc":
        p, t = _matrix_pair(prediction, target, "FC")
    else:
        ps, ts = _signal_pair(prediction, target, same_length=False, min_times=2)
        p, t = _both(analysis.fc, ps, ts)
    if p.shape[0] < min_channels:
        raise ValueError(
            f"prediction: expected at least {min_channels} channels, got {p.shape[0]}."
        )
    return analysis.upper_triangle(p), analysis.upper_triangle(t)


def _sampling_period_or_none(period: Any, fs: Any) -> float | None:
    if period is None and fs is None:
        return None
    return analysis._sampling_period(period, fs)


class AbstractObjective(eqx.Module):
    """A loss `objective(prediction, target) -> scalar`.

    Subclasses are final Modules whose options are static fields; they
    implement `loss`, and calling the objective runs `loss` jit-compiled (one
    compilation per objective and input shapes; inside an outer `jax.jit`,
    `jax.vmap` or `jax.grad` it is traced as usual). `differentiable` says
    whether the gradient with respect to the prediction is informative (it is
    always finite).
    """

    differentiable: ClassVar[bool] = True
    # whether prediction and target are compared sample by sample (then a
    # `brainmass.Recording` target is aligned with the simulator's sample times; else
    # its period and channels are checked and every sample kept)
    _same_samples: ClassVar[bool] = False

    @property
    def sample_aligned(self) -> bool:
        """Whether the objective compares the two signals sample by sample."""
        return self._same_samples

    @abc.abstractmethod
    def loss(self, prediction: Any, target: Any) -> Scalar:
        """The loss of `prediction` against `target` (a scalar), not compiled."""

    def __call__(self, prediction: Any, target: Any) -> Scalar:
        """The loss of `prediction` against `target` (a scalar).

        A `brainmass.Recording` target gives its signal, checked for NaN and flat
        channels (no simulator here to align it with: `Fitter` does that).
        """
        if isinstance(target, Recording):
            target = target.check().signal
        return _compiled_loss(self, prediction, target)


@eqx.filter_jit
def _compiled_loss(objective: AbstractObjective, prediction: Any, target: Any) -> Scalar:
    return objective.loss(prediction, target)


# ----------------------------------------------------------------------------- time series


@final
class TimeSeriesRMSE(AbstractObjective):
    r"""Root-mean-square difference of two signals, $\sqrt{\langle (p - t)^2 \rangle}$.

    **Call arguments:** `prediction`, `target` of the same shape
    `(n_times, n_channels)`. **Returns:** a scalar in the signals' unit.
    """

    _same_samples: ClassVar[bool] = True

    def loss(self, prediction: Any, target: Any) -> Scalar:
        """RMSE over all samples and channels."""
        p, t = _signal_pair(prediction, target, same_length=True)
        return _rmse(p - t)


# ----------------------------------------------------------------------------- FC


@final
class FCCorrelation(AbstractObjective):
    r"""One minus the Pearson correlation of the FC upper triangles: $1 - r(FC_p, FC_t)$.

    The usual goodness of fit of whole-brain models to resting-state FC
    (Honey et al. 2009, PNAS 106:2035; Deco et al. 2013). In `[0, 2]`, 0 for FC
    matrices that agree up to an affine map.

    **Arguments:**

    - `inputs`: `"signal"` (default): prediction and target are signals
      `(n_times, n_channels)` (their lengths may differ); `"fc"`: they are FC
      matrices `(n, n)` already.
    """

    inputs: str = eqx.field(default="signal", static=True)

    def __check_init__(self):
        _check_inputs(self.inputs, ("signal", "fc"))

    def loss(self, prediction: Any, target: Any) -> Scalar:
        """$1 - r$ of the upper triangles (diagonal excluded); needs 3 or more channels."""
        p, t = _fc_upper(prediction, target, self.inputs, min_channels=3)
        return 1.0 - analysis.pearson(p, t)


@final
class FCRMSE(AbstractObjective):
    r"""Root-mean-square difference of the FC upper triangles (diagonal excluded).

    **Arguments:**

    - `inputs`: `"signal"` (default) or `"fc"`, as in `FCCorrelation`.
    """

    inputs: str = eqx.field(default="signal", static=True)

    def __check_init__(self):
        _check_inputs(self.inputs, ("signal", "fc"))

    def loss(self, prediction: Any, target: Any) -> Scalar:
        """RMSE of the FC entries above the diagonal; needs 2 or more channels."""
        p, t = _fc_upper(prediction, target, self.inputs, min_channels=2)
        return _rmse(p - t)


# ----------------------------------------------------------------------------- FCD


class _FCDOptions(eqx.Module):
    window: float | None = eqx.field(static=True)
    step: float | None = eqx.field(static=True)
    period: float | None = eqx.field(static=True)
    k: int = eqx.field(static=True)
    inputs: str = eqx.field(static=True)

    def __init__(self, window, step, period, fs, k, inputs):
        self.inputs = _check_inputs(inputs, ("signal", "fcd"))
        if int(k) != k or k < 0:
            raise ValueError(f"k: expected a diagonal offset >= 0, got {k!r}.")
        self.k = int(k)
        if inputs == "signal":
            if window is None or step is None:
                raise ValueError(
                    "window, step: FCD of signals needs the window length and step (ms, or "
                    f"time quantities); got window={window!r}, step={step!r}."
                )
            self.window = analysis._to_float(window, MS, "window")
            self.step = analysis._to_float(step, MS, "step")
            self.period = analysis._sampling_period(period, fs)
        else:
            self.window = None if window is None else analysis._to_float(window, MS, "window")
            self.step = None if step is None else analysis._to_float(step, MS, "step")
            self.period = _sampling_period_or_none(period, fs)

    def values(self, prediction: Any, target: Any) -> tuple[Array, Array]:
        if self.inputs == "fcd":
            p, t = jnp.asarray(prediction), jnp.asarray(target)
            for x, name in ((p, "prediction"), (t, "target")):
                if x.ndim != 2 or x.shape[0] != x.shape[1]:
                    raise ValueError(
                        f"{name}: expected a square FCD matrix (n_windows, n_windows), got "
                        f"{x.shape}."
                    )
        else:
            ps, ts = _signal_pair(prediction, target, same_length=False)
            p, t = _both(
                lambda s: analysis.fcd(s, self.window, self.step, period=self.period), ps, ts
            )
        return analysis.fcd_values(p, self.k), analysis.fcd_values(t, self.k)


@final
class FCDKS(AbstractObjective):
    r"""Kolmogorov-Smirnov statistic between the FCD value distributions.

    The FCD fit criterion of Hansen et al. (2015), NeuroImage 105:525 and Deco
    et al. (2017). In `[0, 1]`, 0 for identical distributions. Piecewise
    constant: its gradient is zero almost everywhere, so report it, or use it
    with gradient-free fitting; optimise `FCDDistance` instead.

    **Arguments:**

    - `window`, `step`: window length and step of the sliding-window FC (ms, or
      time quantities); required when `inputs="signal"`.
    - `period` or `fs`: the sampling period (ms) or rate (Hz) of the signals.
    - `k`: which FCD entries form the distribution: those above the `k`-th
      diagonal (default 1: every pair of distinct windows; see
      `analysis.fcd_values`).
    - `inputs`: `"signal"` (default): prediction and target are signals (their
      lengths may differ); `"fcd"`: they are FCD matrices already (their sizes
      may differ).
    """

    differentiable: ClassVar[bool] = False
    options: _FCDOptions

    def __init__(
        self,
        window: Any = None,
        step: Any = None,
        *,
        period: Any = None,
        fs: Any = None,
        k: int = 1,
        inputs: str = "signal",
    ):
        self.options = _FCDOptions(window, step, period, fs, k, inputs)

    def loss(self, prediction: Any, target: Any) -> Scalar:
        """`analysis.ks_statistic` of the two FCD value sets."""
        return analysis.ks_statistic(*self.options.values(prediction, target))


@final
class FCDDistance(AbstractObjective):
    r"""Wasserstein-1 distance between the FCD value distributions (differentiable).

    $W_1 = \int_0^1 |Q_p(q) - Q_t(q)|\,dq$ between the empirical quantile
    functions of the FCD values (`analysis.wasserstein_1`): the mean absolute
    difference of the sorted values when the counts agree, the exact integral
    over the merged quantile grid when they differ. A differentiable stand-in
    for `FCDKS`; in correlation units, in `[0, 2]`.

    **Arguments:**

    - `window`, `step`: window length and step of the sliding-window FC (ms, or
      time quantities); required when `inputs="signal"`.
    - `period` or `fs`: the sampling period (ms) or rate (Hz) of the signals.
    - `k`: which FCD entries form the distribution: those above the `k`-th
      diagonal (default 1: every pair of distinct windows; see
      `analysis.fcd_values`).
    - `inputs`: `"signal"` (default): prediction and target are signals (their
      lengths may differ); `"fcd"`: they are FCD matrices already (their sizes
      may differ).
    """

    options: _FCDOptions

    def __init__(
        self,
        window: Any = None,
        step: Any = None,
        *,
        period: Any = None,
        fs: Any = None,
        k: int = 1,
        inputs: str = "signal",
    ):
        self.options = _FCDOptions(window, step, period, fs, k, inputs)

    def loss(self, prediction: Any, target: Any) -> Scalar:
        """`analysis.wasserstein_1` of the two FCD value sets."""
        return analysis.wasserstein_1(*self.options.values(prediction, target))


# ----------------------------------------------------------------------------- spectra


class _SpectrumOptions(eqx.Module):
    period: float = eqx.field(static=True)
    band: tuple[float, float] | None = eqx.field(static=True)
    nperseg: int = eqx.field(static=True)

    def __init__(self, period, fs, band, nperseg):
        self.period = analysis._sampling_period(period, fs)
        self.band = None if band is None else analysis.resolve_band(band)
        if int(nperseg) != nperseg or nperseg < 2:
            raise ValueError(f"nperseg: expected a segment length >= 2 samples, got {nperseg!r}.")
        self.nperseg = int(nperseg)

    def spectra(self, prediction: Any, target: Any) -> tuple[np.ndarray, Array, Array]:
        """Band frequencies (Hz) and the two PSDs restricted to the band, `(n_band, n_channels)`."""
        p, t = _signal_pair(prediction, target, same_length=False)
        nperseg = min(self.nperseg, p.shape[0], t.shape[0])
        if nperseg < 2:
            raise ValueError(
                f"prediction, target: expected at least 2 samples, got {p.shape} and {t.shape}."
            )
        psd_p, psd_t = _both(
            lambda s: analysis.psd(s, period=self.period, nperseg=nperseg)[1], p, t
        )
        freqs = np.fft.rfftfreq(nperseg, d=self.period / 1000.0)
        if self.band is None:
            keep = np.arange(freqs.size)
        else:
            low, high = self.band
            keep = np.flatnonzero((freqs >= low) & (freqs <= high))
            if keep.size == 0:
                raise ValueError(
                    f"band: no frequency of the {nperseg}-sample spectrum (resolution "
                    f"{freqs[1]:.4g} Hz, up to {freqs[-1]:.4g} Hz) lies in [{low}, {high}] Hz; "
                    "widen the band or use longer signals and nperseg."
                )
        return freqs[keep], psd_p[keep], psd_t[keep]


@final
class SpectralDistance(AbstractObjective):
    r"""Mean squared difference of the log power spectra over a band.

    $\langle (\log(P_p + \epsilon) - \log(P_t + \epsilon))^2 \rangle$ over the
    frequencies in the band and the channels, with Welch PSDs
    (`analysis.psd`) and $\epsilon$ = `floor` times the mean target power in
    the band (so the loss is finite for silent channels and scale-free).

    **Arguments:**

    - `period` or `fs`: the sampling period (ms) or rate (Hz) of the signals.
    - `band`: a band name or `(low, high)` in Hz; default all frequencies.
    - `nperseg`: Welch segment length in samples (default 256; clipped to the
      shorter signal).
    - `normalize`: compare relative spectra (each PSD divided by its power in
      the band, per channel), ignoring the overall amplitude. Default False.
    - `floor`: the relative floor $\epsilon$ (default 1e-8).
    """

    spectrum: _SpectrumOptions
    normalize: bool = eqx.field(static=True)
    floor: float = eqx.field(static=True)

    def __init__(
        self,
        period: Any = None,
        band: Any = None,
        *,
        fs: Any = None,
        nperseg: int = 256,
        normalize: bool = False,
        floor: float = 1e-8,
    ):
        self.spectrum = _SpectrumOptions(period, fs, band, nperseg)
        self.normalize = bool(normalize)
        if not (math.isfinite(floor) and floor > 0):
            raise ValueError(f"floor: expected a relative floor > 0, got {floor!r}.")
        self.floor = float(floor)

    def loss(self, prediction: Any, target: Any) -> Scalar:
        """Mean squared log-PSD difference over band and channels."""
        _, p, t = self.spectrum.spectra(prediction, target)
        tiny = jnp.finfo(t.dtype).tiny
        if self.normalize:
            p = p / (jnp.sum(p, axis=0, keepdims=True) + tiny)
            t = t / (jnp.sum(t, axis=0, keepdims=True) + tiny)
        eps = self.floor * jax.lax.stop_gradient(jnp.mean(t)) + tiny
        diff = jnp.log(p + eps) - jnp.log(t + eps)
        return jnp.mean(diff * diff)


@final
class PeakFrequencyError(AbstractObjective):
    r"""Mean squared difference of the spectral peak frequencies (Hz$^2$), per channel.

    Peaks from `analysis.peak_frequency` of Welch PSDs within the band. With
    the default `temperature` the peak is the soft-arg-max (weights
    $\propto P^{1/T}$), so the loss is differentiable; `temperature=None`
    uses the hard arg-max (gradient zero almost everywhere).

    **Arguments:**

    - `period` or `fs`: the sampling period (ms) or rate (Hz) of the signals.
    - `band`: a band name or `(low, high)` in Hz; default all frequencies.
    - `nperseg`: Welch segment length in samples (default 256); the frequency
      resolution is `fs / nperseg`.
    - `temperature`: soft-arg-max temperature (default 0.1), or None.
    """

    spectrum: _SpectrumOptions
    temperature: float | None = eqx.field(static=True)

    def __init__(
        self,
        period: Any = None,
        band: Any = None,
        *,
        fs: Any = None,
        nperseg: int = 256,
        temperature: float | None = 0.1,
    ):
        self.spectrum = _SpectrumOptions(period, fs, band, nperseg)
        if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature: expected None or a value > 0, got {temperature!r}.")
        self.temperature = None if temperature is None else float(temperature)

    def loss(self, prediction: Any, target: Any) -> Scalar:
        """Mean over channels of the squared peak-frequency difference, Hz^2."""
        freqs, p, t = self.spectrum.spectra(prediction, target)
        freqs = jnp.asarray(freqs, p.dtype)
        peak_p = analysis.peak_frequency(freqs, p, temperature=self.temperature)
        peak_t = analysis.peak_frequency(freqs, t, temperature=self.temperature)
        diff = peak_p - peak_t
        return jnp.mean(diff * diff)


# ----------------------------------------------------------------------------- combine


@final
class Combined(AbstractObjective):
    r"""A weighted sum of objectives, $\sum_k w_k\, L_k(p, t)$; build it with `combine`.

    **Fields:** `objectives` (a tuple of callables) and `weights` (a tuple of
    floats), in the same order.
    """

    objectives: tuple[Callable[[Any, Any], Any], ...]
    weights: tuple[float, ...]

    @property
    def sample_aligned(self) -> bool:
        """Whether any part compares the signals sample by sample (user functions do)."""
        return any(getattr(o, "sample_aligned", True) for o in self.objectives)

    def loss(self, prediction: Any, target: Any) -> Scalar:
        """The weighted sum of the terms."""
        total = None
        for objective, weight in zip(self.objectives, self.weights, strict=True):
            value = jnp.asarray(objective(prediction, target))
            if value.shape != ():
                raise ValueError(
                    f"objectives: {objective!r} returned shape {value.shape}; an objective "
                    "must return a scalar."
                )
            term = weight * value
            total = term if total is None else total + term
        return total


def combine(
    terms: Mapping[Callable[[Any, Any], Any], float] | Sequence[tuple[Callable, float]],
) -> Combined:
    """Combine objectives into one: the weighted sum of their values.

    **Arguments:**

    - `terms`: `{objective: weight, ...}` or a list of `(objective, weight)`
      pairs (the list may repeat an objective). An objective is any callable
      `(prediction, target) -> scalar`: the objectives of this module, another
      `combine`, or a user function.

    **Returns:** a `Combined` objective, `(prediction, target) -> scalar`.
    """
    items = list(terms.items()) if isinstance(terms, Mapping) else list(terms)
    if not items:
        raise ValueError("terms: expected at least one (objective, weight), got none.")
    objectives, weights = [], []
    for i, item in enumerate(items):
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise ValueError(
                f"terms[{i}]: expected an (objective, weight) pair, got {item!r}; pass a dict "
                "{objective: weight} or a list of (objective, weight)."
            )
        objective, weight = item
        if not callable(objective):
            raise ValueError(
                f"terms[{i}]: expected a callable (prediction, target) -> scalar, got "
                f"{objective!r}."
            )
        try:
            weight = float(weight)
        except (TypeError, ValueError) as err:
            raise ValueError(f"terms[{i}]: expected a number as weight, got {weight!r}.") from err
        if not math.isfinite(weight):
            raise ValueError(f"terms[{i}]: expected a finite weight, got {weight}.")
        objectives.append(objective)
        weights.append(weight)
    return Combined(tuple(objectives), tuple(weights))
