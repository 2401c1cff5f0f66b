"""Likelihoods: how a simulation's output makes the data probable.

Each likelihood turns the data into what it compares (`prepare`), the
simulation into the same thing (`predict`), and the two into a NumPyro
distribution of the prepared data (`distribution`), whose `log_prob` is the
pointwise log-likelihood (one term per observation, as ArviZ's LOO needs).
Observation-noise parameters (`sigma`, ...) are numbers or NumPyro priors; a
prior makes them inferred, sampled as sites `"likelihood.<name>"`.

- `TimeSeries(sigma)`: Gaussian on the monitor's signal of a deterministic
  simulation (raw, BOLD, EEG/MEG), `(n_samples, n_channels)`.
- `FC(sigma)`: Gaussian on the Fisher-z upper triangle of the FC.
- `Whittle(...)`: Whittle's likelihood of the Welch spectrum given the model
  spectrum.
- `Custom(fn)`: any `(prediction, data, params) -> log-likelihood`.

For stochastic simulators, `BayesianModel(..., noise_key=key)` fixes the
simulation's noise (common random numbers): the likelihood is then that of the
data given the parameters *and* that noise realisation, a deterministic and
differentiable function of the parameters. For FC and spectra of
noise-driven models the linearised model (`Linearized`, no time stepping)
gives the expected statistic instead.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

import brainmass as bm

__all__ = ["Likelihood", "TimeSeries", "FC", "Whittle", "Linearized", "Custom"]


class _Precomputed(dist.Distribution):
    """A 'distribution' whose log_prob is a given array (user log-likelihoods)."""

    support = constraints.real

    def __init__(self, log_values: Any):
        self.log_values = jnp.asarray(log_values)
        super().__init__(batch_shape=jnp.shape(self.log_values))

    def log_prob(self, value: Any) -> Any:
        """The precomputed log-likelihood terms (the value is the data they were computed for)."""
        return self.log_values

    def sample(self, key, sample_shape=()):
        """Not available: a user log-likelihood does not say how to draw data."""
        raise NotImplementedError(
            "likelihoods.Custom cannot draw data: pass sample= to Custom for posterior predictive."
        )


def _check_noise(name: str, value: Any) -> Any:
    """A noise parameter: a positive number/array, or a prior on positive values."""
    from .priors import support_bounds

    if isinstance(value, dist.Distribution):
        lo, _ = support_bounds(value.support)
        if lo is None or lo < 0:
            raise ValueError(
                f"{name}: expected a prior on positive values (HalfNormal, LogNormal, "
                f"Exponential, ...), got {type(value).__name__} with support {value.support}."
            )
        return value
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: expected a positive number (or a prior), got {value!r}.")
    return jnp.asarray(arr)


class Likelihood:
    """Base class: subclass and define `prepare`, `predict` and `distribution`.

    Attributes: `noise` (`{name: number or prior}`, the observation-noise
    parameters) and `needs_simulation` (False for statistics computed without
    time stepping, like the linearised model).
    """

    needs_simulation: bool = True
    noise: dict[str, Any]

    def prepare(self, data: Any, sim: bm.Simulator) -> Any:
        """The data as compared (validated against the simulator's output)."""
        raise NotImplementedError

    def predict(self, sim: bm.Simulator, result: Any) -> Any:
        """The model's counterpart of the prepared data, from a simulation `result`."""
        raise NotImplementedError

    def distribution(
        self, prediction: Any, noise: Mapping[str, Any], **context: Any
    ) -> dist.Distribution:
        """The distribution of the prepared data given the prediction and noise values.

        `context` holds `data` (the data as given) and `theta` (the inferred
        simulator parameters), for likelihoods that need them.
        """
        raise NotImplementedError

    def dims(self, sim: bm.Simulator) -> tuple[list[str], dict[str, Any]]:
        """Names of the prepared data's dimensions and their coordinates (for ArviZ)."""
        raise NotImplementedError

    def bind(self, sim: bm.Simulator) -> Likelihood:
        """Record what the likelihood needs to know of the simulator (done by BayesianModel).

        The monitor's output shape `(n_samples, n_channels)`, channel names,
        sample times (ms) and sampling period (ms). Returns `self`.
        """
        result = jax.eval_shape(lambda: sim.run(jax.random.key(0), check=False))
        self._shape = tuple(result.signal.shape)
        self._channels = np.asarray(sim.monitor.channels(sim.network))
        self._times = np.asarray(sim.time)[-self._shape[0] :]
        self._period = float(sim.period)
        return self

    def _signal_shape(self, sim: bm.Simulator) -> tuple[int, int]:
        return self._shape

    def _check_signal(self, data: Any, sim: bm.Simulator, what: str) -> Any:
        x = jnp.asarray(data)
        expected = self._signal_shape(sim)
        if x.shape != expected:
            raise ValueError(
                f"data: {what} expects the monitor's signal, shape (n_samples, n_channels) = "
                f"{expected} for this simulator, got {x.shape}."
            )
        if not isinstance(data, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(data))):
            raise ValueError("data: contains NaN or inf values.")
        return x

    def _channel_coords(self, sim: bm.Simulator) -> np.ndarray:
        return self._channels


class TimeSeries(Likelihood):
    r"""Gaussian observation noise on the monitor's signal.

    $y_{tc} \sim \mathcal N(\hat y_{tc}(\theta), \sigma_c^2)$ independently, for
    a deterministic simulation (or one with fixed noise), through any monitor.

    **Arguments:**

    - `sigma`: observation noise standard deviation in the signal's unit: a
      number, an array `(n_channels,)`, or a prior (e.g. `dist.HalfNormal(0.1)`;
      `.expand([n_channels])` for one per channel).
    """

    def __init__(self, sigma: Any = 0.05):
        self.noise = {"sigma": _check_noise("TimeSeries sigma", sigma)}

    def prepare(self, data, sim):
        """The signal itself, `(n_samples, n_channels)`."""
        return self._check_signal(data, sim, "TimeSeries")

    def predict(self, sim, result):
        """The simulated signal."""
        return result.signal

    def distribution(self, prediction, noise, **context):
        """Independent normals, batch shape `(n_samples, n_channels)`."""
        return dist.Normal(prediction, noise["sigma"])

    def dims(self, sim):
        """(time, channel)."""
        return ["time", "channel"], {"time": self._times, "channel": self._channels}


class FC(Likelihood):
    r"""Gaussian on the Fisher-z transformed upper triangle of the functional connectivity.

    $\operatorname{artanh} r^{obs}_{ij} \sim \mathcal N(\operatorname{artanh}
    \hat r_{ij}(\theta), \sigma^2)$ for $i < j$. For $T$ independent samples
    the sampling standard deviation of $\operatorname{artanh} r$ is about
    $1/\sqrt{T - 3}$ (Fisher 1921); BOLD samples are autocorrelated, so the
    effective $T$ is smaller: give `sigma` a prior, or a value from
    $1/\sqrt{T_{\text{eff}} - 3}$.

    **Arguments:**

    - `sigma`: standard deviation on the Fisher-z scale (number or prior).
    - `inputs`: `"signal"` (the data is a time series `(n_samples,
      n_channels)`, default) or `"fc"` (the data is an FC matrix
      `(n_channels, n_channels)`).
    - `max_abs`: correlations are clipped to this magnitude before artanh.
    """

    def __init__(self, sigma: Any = 0.1, *, inputs: str = "signal", max_abs: float = 0.999):
        if inputs not in ("signal", "fc"):
            raise ValueError(f"FC inputs: expected 'signal' or 'fc', got {inputs!r}.")
        if not 0 < max_abs < 1:
            raise ValueError(f"FC max_abs: expected a number in (0, 1), got {max_abs!r}.")
        self.noise = {"sigma": _check_noise("FC sigma", sigma)}
        self.inputs = inputs
        self.max_abs = float(max_abs)

    def _z(self, fc_matrix):
        return bm.analysis.fisher_z(bm.analysis.upper_triangle(fc_matrix), max_abs=self.max_abs)

    def prepare(self, data, sim):
        """The Fisher-z FC upper triangle, `(n_pairs,)`."""
        if self.inputs == "signal":
            return self._z(bm.analysis.fc(self._check_signal(data, sim, "FC")))
        x = jnp.asarray(data)
        n = self._signal_shape(sim)[1]
        if x.shape != (n, n):
            raise ValueError(f"data: FC(inputs='fc') expects an FC matrix {(n, n)}, got {x.shape}.")
        return self._z(x)

    def predict(self, sim, result):
        """The Fisher-z upper triangle of the simulated signal's FC."""
        return self._z(bm.analysis.fc(result.signal))

    def distribution(self, prediction, noise, **context):
        """Independent normals over the pairs."""
        return dist.Normal(prediction, noise["sigma"])

    def dims(self, sim):
        """(pair,), labelled 'a-b'."""
        labels = self._channel_coords(sim)
        i, j = np.triu_indices(len(labels), k=1)
        pairs = [f"{labels[a]}-{labels[b]}" for a, b in zip(i, j, strict=True)]
        return ["pair"], {"pair": np.array(pairs)}


class Whittle(Likelihood):
    r"""Whittle's likelihood of the Welch spectrum given the model spectrum.

    The data's spectrum is estimated by Welch's method with $K$
    non-overlapping Hann-windowed segments of `nperseg` samples; at each
    frequency (away from 0 and Nyquist) the averaged periodogram is
    approximately Gamma-distributed with shape $K$ and mean the true spectrum
    $S(f)$, independently across frequencies (Whittle 1953; $K = 1$ is the
    classic exponential form). The model spectrum is the Welch spectrum of the
    simulation (with fixed noise: an estimate of $S$) plus the flat spectrum
    $2\sigma_m^2 / f_s$ of white measurement noise of standard deviation
    $\sigma_m$ (`sigma`, in the signal's unit; `None`: no measurement noise).

    A caveat on calibration: with a Hann window, neighbouring frequencies of
    one periodogram are not independent. For a flat spectrum the correlation
    of adjacent ordinates is $(2/3)^2 = 4/9$ (the window's squared
    autocorrelation at one bin; $1/36$ at two bins), so the independence
    assumption counts the same information more than once and the posterior
    is too narrow. On a two-region OU network its standard deviations were
    1.65 times smaller than those of NPE and NLE posteriors of the same
    spectrum, which agreed with each other (see `tests/test_sbi_ou.py`).
    Use it for point estimates and fast exploration; where calibrated widths
    matter, prefer `Linearized("fc")` or a learned likelihood
    (`inference.NLE`) of the same spectrum. `Linearized("spectrum")` shares
    this caveat.

    **Arguments:**

    - `nperseg`: samples per segment (frequency resolution $f_s$/`nperseg`).
    - `fmin`, `fmax`: the band used, in Hz (default: every frequency above 0
      and below Nyquist).
    - `sigma`: measurement noise standard deviation (number, prior or None).
    """

    def __init__(
        self,
        nperseg: int = 256,
        *,
        fmin: float | None = None,
        fmax: float | None = None,
        sigma: Any = None,
    ):
        if int(nperseg) != nperseg or nperseg < 4:
            raise ValueError(f"Whittle nperseg: expected an integer >= 4, got {nperseg!r}.")
        self.nperseg = int(nperseg)
        self.fmin, self.fmax = fmin, fmax
        self.noise = {} if sigma is None else {"sigma": _check_noise("Whittle sigma", sigma)}

    def _segments(self, sim) -> int:
        n_times = self._signal_shape(sim)[0]
        k = n_times // self.nperseg
        if k < 1:
            raise ValueError(
                f"Whittle nperseg: {self.nperseg} samples per segment, but the signal has "
                f"{n_times}; use a shorter nperseg."
            )
        return k

    def _band(self, sim) -> np.ndarray:
        period = self._period
        freqs = np.fft.rfftfreq(self.nperseg, d=period / 1000.0)
        keep = freqs > 0
        if self.nperseg % 2 == 0:
            keep[-1] = False  # the Nyquist frequency: a chi-square with 1 degree of freedom
        if self.fmin is not None:
            keep &= freqs >= self.fmin
        if self.fmax is not None:
            keep &= freqs <= self.fmax
        if not keep.any():
            raise ValueError(
                f"Whittle fmin/fmax: no frequency of the Welch grid (0 to {freqs[-1]:g} Hz in "
                f"steps of {freqs[1]:g} Hz) lies in [{self.fmin}, {self.fmax}]."
            )
        return np.flatnonzero(keep)

    def _welch(self, x, sim):
        k = self._segments(sim)
        x = x[: k * self.nperseg]
        _, s = bm.analysis.psd(x, period=self._period, nperseg=self.nperseg, noverlap=0)
        return s[self._band(sim)]

    def prepare(self, data, sim):
        """The Welch spectrum in the band, `(n_freqs, n_channels)`, signal unit^2/Hz."""
        return self._welch(self._check_signal(data, sim, "Whittle"), sim)

    def predict(self, sim, result):
        """The Welch spectrum of the simulated signal in the band."""
        return self._welch(result.signal, sim)

    def distribution(self, prediction, noise, **context):
        """Gamma(K, K / S) per frequency and channel."""
        s = prediction
        if "sigma" in noise:
            s = s + 2.0 * noise["sigma"] ** 2 * self._period_s
        k = float(self._k)
        return dist.Gamma(k, k / s)

    def bind(self, sim) -> Whittle:
        """As `Likelihood.bind`, plus the number of Welch segments."""
        super().bind(sim)
        self._k = self._segments(sim)
        self._period_s = self._period / 1000.0
        return self

    def dims(self, sim):
        """(frequency [Hz], channel)."""
        period = self._period
        freqs = np.fft.rfftfreq(self.nperseg, d=period / 1000.0)[self._band(sim)]
        return ["frequency", "channel"], {"frequency": freqs, "channel": self._channel_coords(sim)}


class Custom(Likelihood):
    """A user log-likelihood `fn(prediction, data, params) -> log p(data | params)`.

    **Arguments:**

    - `fn`: takes the simulated signal `(n_samples, n_channels)` (or what
      `predict` returns), the data as given, and `params` (`{path: value}` of
      the simulator's inferred parameters plus the noise parameters by name);
      returns a scalar or an array of pointwise terms (summed for the joint,
      kept for LOO). Must be traceable by JAX.
    - `noise`: `{name: number or prior}` extra observation parameters passed to
      `fn` in `params`.
    - `predict`: optional `(result) -> prediction` applied to the simulation's
      `Result` (default: its signal).
    - `sample`: optional `(key, prediction, params) -> data` drawing data, for
      posterior predictive checks.
    """

    def __init__(
        self,
        fn: Callable,
        *,
        noise: Mapping[str, Any] | None = None,
        predict: Callable | None = None,
        sample: Callable | None = None,
    ):
        if not callable(fn):
            raise ValueError(f"Custom fn: expected a callable, got {fn!r}.")
        self.fn = fn
        self.noise = {k: _check_noise(f"Custom noise[{k!r}]", v) for k, v in (noise or {}).items()}
        self._predict = predict
        self._sample = sample
        self._theta: dict[str, Any] = {}

    def prepare(self, data, sim):
        """The data as given (as a JAX array)."""
        return jax.tree.map(jnp.asarray, data)

    def predict(self, sim, result):
        """`predict(result)` or the simulated signal."""
        return result.signal if self._predict is None else self._predict(result)

    def distribution(self, prediction, noise, **context):
        """The user's log-likelihood terms wrapped as a distribution."""
        params = {**context.get("theta", {}), **noise}
        values = self.fn(prediction, context.get("data"), params)
        d = _Precomputed(values)
        if self._sample is not None:
            d.sample = lambda key, sample_shape=(): self._sample(key, prediction, params)
        return d

    def dims(self, sim):
        """Unnamed: ArviZ numbers the dimensions."""
        return [], {}


def fisher_sigma(n_samples: int) -> float:
    """The Fisher-z sampling standard deviation `1/sqrt(n - 3)` for n independent samples."""
    if n_samples <= 3:
        raise ValueError(f"n_samples: expected more than 3 samples, got {n_samples}.")
    return 1.0 / math.sqrt(n_samples - 3)


class Linearized(Likelihood):
    r"""FC or spectra of the network linearised at its fixed point: no time stepping.

    For a noise-driven network near a stable fixed point $x^*$, the linear
    response $dx = (J_0 x + \sum K_{ij} x_j(t - \tau_{ij}))\,dt + \Sigma\,dW$
    (Jacobians by autodiff of the network's vector field) gives the model's
    stationary covariance (exact Lyapunov solution without delays; the
    integral of the cross-spectral density through the delayed transfer
    function with delays) and its spectra, so the likelihood costs a few
    linear solves instead of a simulation, and is exact for the
    Ornstein-Uhlenbeck network (`models.Linear` with linear coupling).
    Where the fixed point does not converge or is unstable, the log
    likelihood is `-inf`. See `brainmass.linear` for the numerics.

    **Arguments:**

    - `statistic`: `"fc"` (default): Gaussian on the Fisher-z upper triangle of
      the FC, as `FC`; `"spectrum"`: Whittle's likelihood of the Welch spectrum,
      as `Whittle`, with the model's power spectral density (and its caveat:
      adjacent Hann-window bins are correlated, so posteriors are too narrow).
    - `sigma`: for `"fc"`, the standard deviation on the Fisher-z scale
      (number or prior; about $1/\sqrt{T_{\text{eff}} - 3}$); for
      `"spectrum"`, the white measurement noise (number, prior or None).
    - `nperseg`, `fmin`, `fmax`: the Welch segments and band of `"spectrum"`.
    - `monitor_filter`: include the `TemporalAverage` monitor's box-car
      average in the model (default True; no effect for `Raw`).
    - `freqs_hz`: the frequency grid of the covariance integral for delayed
      networks (default: 0 to 500 Hz in 0.25 Hz steps).

    The data are the observed time series `(n_samples, n_channels)`, as the
    simulator's monitor would record them. Raw and temporal-average monitors
    only: a BOLD or EEG monitor's own dynamics are not linearised here.
    """

    needs_simulation = False

    def __init__(
        self,
        statistic: str = "fc",
        *,
        sigma: Any = None,
        nperseg: int = 256,
        fmin: float | None = None,
        fmax: float | None = None,
        monitor_filter: bool = True,
        freqs_hz: Any = None,
    ):
        if statistic not in ("fc", "spectrum"):
            raise ValueError(
                f"Linearized statistic: expected 'fc' or 'spectrum', got {statistic!r}."
            )
        self.statistic = statistic
        self.monitor_filter = bool(monitor_filter)
        self.freqs_hz = freqs_hz
        if statistic == "fc":
            self._inner: Likelihood = FC(sigma=0.1 if sigma is None else sigma)
        else:
            self._inner = Whittle(nperseg, fmin=fmin, fmax=fmax, sigma=sigma)
        self.noise = self._inner.noise

    def bind(self, sim):
        """As `Likelihood.bind`; checks the monitor (Raw or TemporalAverage)."""
        if not isinstance(sim.monitor, (bm.monitors.Raw, bm.monitors.TemporalAverage)):
            raise ValueError(
                f"likelihood: Linearized needs a Raw or TemporalAverage monitor, got "
                f"{type(sim.monitor).__name__}; fit BOLD/EEG data by simulation (TimeSeries, FC "
                "with noise_key) or simulation-based inference."
            )
        if sim.network.noise is None:
            raise ValueError(
                "likelihood: Linearized describes noise-driven fluctuations; the network has no "
                "noise (Network(..., noise=...))."
            )
        super().bind(sim)
        self._inner = copy.copy(self._inner).bind(sim)  # a copy: never rebind another model's
        if self.statistic == "spectrum":
            freqs = np.fft.rfftfreq(self._inner.nperseg, d=self._period / 1000.0)
            self._freqs = freqs[self._inner._band(sim)]
        return self

    def prepare(self, data, sim):
        """The data's Fisher-z FC upper triangle (`"fc"`) or Welch spectrum (`"spectrum"`)."""
        return self._inner.prepare(data, sim)

    def predict_without_simulation(self, sim) -> tuple[Any, Any]:
        """The model's statistic at the simulator's parameters, and an ok flag."""
        summary = bm.linear.linear_summary(
            sim, freqs_hz=self.freqs_hz, monitor_filter=self.monitor_filter
        )
        if self.statistic == "fc":
            return self._inner._z(summary.fc), summary.ok
        csd = bm.linear.cross_spectrum(
            sim, jnp.asarray(self._freqs), monitor_filter=self.monitor_filter
        )
        psd = jnp.real(jnp.diagonal(csd, axis1=1, axis2=2))
        return psd, summary.ok

    def predict(self, sim, result):
        """Not used: the linearised statistic needs no simulation."""
        raise NotImplementedError("Linearized predicts without simulating.")

    def distribution(self, prediction, noise, **context):
        """As `FC` or `Whittle`."""
        return self._inner.distribution(prediction, noise, **context)

    def dims(self, sim):
        """As `FC` or `Whittle`."""
        return self._inner.dims(sim)
