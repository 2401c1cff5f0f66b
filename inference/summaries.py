r"""Summary statistics and embedding networks for simulation-based inference.

A summary maps one simulation's monitor output, a signal of shape
`(n_samples, n_channels)` sampled every `period` ms, to a feature array. The
neural posterior estimator conditions its flow on these features (or on a
learned embedding of them).

Every summary follows one protocol (plain, picklable Python objects; nothing
is computed at construction):

- `bind(sim)` returns a copy that knows the simulator's sampling period (ms)
  and signal shape, and checks that it can be computed (`bind_signal(period,
  shape)` does the same without a simulator). An unbound summary cannot be
  called.
- `summary(signal)` is pure JAX, of shape `summary.shape`: it works under
  `jax.jit` and `jax.vmap` (a batch is `jax.vmap(summary)(signals)`). A signal
  holding any NaN or infinity gives all-NaN features (no exception), so failed
  simulations can be dropped afterwards.
- `names` labels the `d` features of a flat summary (`shape == (d,)`).
- `fit(bank)` learns a data-dependent reduction from raw features `(n, d)`
  (e.g. PCA) and returns a fitted copy; `project(features)` applies it (the
  identity by default), giving `out_shape` (and `out_names`).

Built-ins: `FC`, `FCD`, `Spectral`, `Order`, `Moments`, `TimeSeries`, and
`combine(*summaries)` to concatenate flat ones. Learned embeddings (trained
with the flow): `MLPEmbedding` and `CNNEmbedding`, whose `build(key,
in_shape)` returns an Equinox module mapping `in_shape` to `(out_dim,)`.

    import inference.summaries as S
    summary = S.combine(S.FC(pca=10), S.Spectral(), S.Order(band="alpha")).bind(sim)
    bank = jax.vmap(summary)(signals)                 # (n, d)
    ok = jnp.all(jnp.isfinite(bank), axis=1)
    summary = summary.fit(bank[ok])
    x = summary.project(bank[ok])                      # (n_ok, summary.out_shape[0])
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import brainmass as bm
from brainmass.units import MS, to_float

__all__ = [
    "Summary",
    "FC",
    "FCD",
    "Spectral",
    "Order",
    "Moments",
    "TimeSeries",
    "Combined",
    "combine",
    "MLPEmbedding",
    "CNNEmbedding",
    "MLPEmbeddingNet",
    "CNNEmbeddingNet",
]


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`, or a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}.")
    return int(value)


def _default_nperseg(n_samples: int, period: float) -> int:
    """About one second per Welch segment (<= 1 Hz resolution), >= 256 samples, <= the signal."""
    one_second = 2 ** math.ceil(math.log2(max(1000.0 / period, 1.0)))
    return min(n_samples, max(256, one_second))


def _freeze(value: Any) -> Any:
    """A hashable version of a settings value (dicts, lists, summaries, arrays)."""
    if isinstance(value, Summary):
        return value._static_key()
    if isinstance(value, Mapping):
        return tuple((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.shape, value.dtype.str, value.tobytes())
    return value


class _Static:
    """A summary as a static jit argument, equal to another with the same static key."""

    __slots__ = ("summary", "key")

    def __init__(self, summary: Summary):
        self.summary = summary
        self.key = summary._static_key()

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Static) and self.key == other.key


@functools.partial(jax.jit, static_argnums=0)
def _summarize(static: _Static, x: jax.Array) -> jax.Array:
    """`_compute`, compiled once per summary setting and signal; NaN for a non-finite signal."""
    out = static.summary._compute(x)
    return jnp.where(jnp.all(jnp.isfinite(x)), out, jnp.nan)


class Summary:
    """Base class of summary statistics: subclass and define `_setup`, `_shape`, `_compute`.

    Subclasses may also define `_names` (flat summaries), and `fit`, `project`,
    `out_shape`, `out_names` for a learned reduction. `_config()` must return
    every setting that `_compute` reads: with the bound period and shape it
    keys the compilation cache (`__call__` is jit-compiled once per setting).
    Class attribute `flat`: whether the output is a vector `(d,)` (False for
    `TimeSeries`).
    """

    flat: bool = True
    _period: float | None = None
    _signal_shape: tuple[int, int] | None = None

    # ------------------------------------------------------------------ binding
    def bind(self, sim: bm.Simulator) -> Summary:
        """A copy bound to a simulator's output: its sampling period and signal shape.

        **Arguments:**

        - `sim`: a `brainmass.Simulator`; its monitor's signal has shape
          `(sim.n_samples - sim.transient_samples, n_channels)`, sampled every
          `sim.period` ms.

        **Returns:** the bound copy (`self` is unchanged). Raises `ValueError`
        if the summary cannot be computed on that signal (window longer than
        the run, band above the Nyquist frequency, too few channels, ...).
        """
        try:
            period = float(sim.period)
            n_samples = int(sim.n_samples) - int(sim.transient_samples)
            n_channels = len(sim.monitor.channels(sim.network))
        except AttributeError as err:
            raise ValueError(
                f"sim: expected a brainmass.Simulator, got {type(sim).__name__} ({err}); use "
                "bind_signal(period, shape) to bind to a signal without a simulator."
            ) from None
        return self.bind_signal(period, (n_samples, n_channels))

    def bind_signal(self, period: Any, shape: Sequence[int]) -> Summary:
        """A copy bound to signals of a given sampling period and shape (no simulator needed).

        **Arguments:**

        - `period`: the sampling period, ms (or a brainunit time quantity).
        - `shape`: the signal shape `(n_samples, n_channels)`.

        **Returns:** the bound copy; raises `ValueError` as `bind`.
        """
        period = to_float(period, MS, "period")
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f"period: expected a sampling period > 0 ms, got {period}.")
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(f"shape: expected (n_samples, n_channels), got {shape!r}.")
        n, c = (_positive_int(s, "shape") for s in shape)
        out = copy.copy(self)
        out._period = period
        out._signal_shape = (n, c)
        out._setup()
        return out

    @property
    def bound(self) -> bool:
        """Whether the summary is bound (`bind` or `bind_signal` was called)."""
        return self._signal_shape is not None

    @property
    def period(self) -> float:
        """The bound sampling period, ms."""
        self._require_bound("period")
        return self._period

    @property
    def signal_shape(self) -> tuple[int, int]:
        """The bound signal shape `(n_samples, n_channels)`."""
        self._require_bound("signal_shape")
        return self._signal_shape

    def _require_bound(self, what: str) -> None:
        if self._signal_shape is None:
            raise ValueError(
                f"{type(self).__name__}.{what}: the summary is not bound to a simulator; call "
                "summary = summary.bind(sim) (or .bind_signal(period, shape)) first."
            )

    def _setup(self) -> None:
        """Validate against the bound period/shape and store derived settings (on the copy)."""

    # ------------------------------------------------------------------ features
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of `summary(signal)` (bound summaries only)."""
        self._require_bound("shape")
        return self._shape()

    def _shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def names(self) -> list[str]:
        """The labels of the `d` features of a flat summary, `len(names) == shape[0]`."""
        self._require_bound("names")
        if not self.flat:
            raise ValueError(
                f"{type(self).__name__}.names: the output has shape {self.shape}, not a flat "
                "vector of named features."
            )
        return self._names()

    def _names(self) -> list[str]:
        raise NotImplementedError

    def __call__(self, signal: Any) -> jax.Array:
        """The summary of one signal.

        **Arguments:**

        - `signal`: shape `(n_samples, n_channels)`, the bound shape.

        **Returns:** shape `self.shape`; all NaN if the signal holds any NaN
        or infinity.
        """
        self._require_bound("__call__")
        x = jnp.asarray(signal)
        if x.shape != self._signal_shape:
            raise ValueError(
                f"signal: {type(self).__name__} is bound to signals of shape (n_samples, "
                f"n_channels) = {self._signal_shape}, got {x.shape}; use jax.vmap for a batch."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        return _summarize(_Static(self), x)

    def _compute(self, x: jax.Array) -> jax.Array:
        raise NotImplementedError

    # ------------------------------------------------------------------ reductions
    def _check_features(self, features: Any, what: str = "fit") -> np.ndarray:
        """A bank of raw features as a finite numpy array `(n, *shape)`."""
        self._require_bound(what)
        x = np.asarray(features, dtype=float)
        if x.ndim != 1 + len(self.shape) or x.shape[1:] != self.shape or x.shape[0] < 1:
            raise ValueError(
                f"features: {type(self).__name__}.{what} expects a bank of raw features of shape "
                f"(n, *{self.shape}), got {x.shape}."
            )
        if not np.all(np.isfinite(x)):
            bad = int(np.sum(~np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)))
            raise ValueError(
                f"features: {bad} of {x.shape[0]} rows hold NaN or infinity; drop the failed "
                "simulations before fit."
            )
        return x

    def fit(self, features: Any) -> Summary:
        """Learn the data-dependent reduction from a bank of raw features.

        **Arguments:**

        - `features`: shape `(n, *self.shape)`, finite (e.g.
          `jax.vmap(summary)(signals)` without the failed simulations).

        **Returns:** the fitted summary (here: `self`, nothing to learn).
        """
        self._check_features(features)
        return self

    def project(self, features: Any) -> jax.Array:
        """Apply the learned reduction to raw features (here: the identity).

        **Arguments:**

        - `features`: shape `(..., *self.shape)`.

        **Returns:** shape `(..., *self.out_shape)`.
        """
        return jnp.asarray(features)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The shape of `project(summary(signal))`."""
        return self.shape

    @property
    def out_names(self) -> list[str]:
        """The labels of the projected features (flat summaries)."""
        return self.names

    def transform(self, signal: Any) -> jax.Array:
        """`project(self(signal))`: the reduced summary of one signal, shape `out_shape`."""
        return self.project(self(signal))

    # ------------------------------------------------------------------ display
    def _config(self) -> dict[str, Any]:
        """The settings: every one that `_compute` reads (they key the compilation cache)."""
        return {}

    def _static_key(self) -> tuple:
        """What `_compute` depends on: the type, the settings and the bound signal."""
        return (type(self), self._period, self._signal_shape, _freeze(self._config()))

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self._config().items()]
        if self.bound:
            args.append(f"bound to {self._signal_shape} @ {self._period} ms")
        return f"{type(self).__name__}({', '.join(args)})"


# ---------------------------------------------------------------------------- FC


class FC(Summary):
    r"""The upper triangle of the functional connectivity, Fisher-z transformed, optionally PCA.

    Features: $\operatorname{artanh} r_{ij}$ (or $r_{ij}$) of the Pearson
    correlations of the channels for $i < j$ (`bm.analysis.fc`,
    `upper_triangle`, `fisher_z`), `d = n_channels (n_channels - 1) / 2`,
    named `"fc[i,j]"`.

    With `pca=k`, `fit` stores the bank's mean and its first `k` principal
    axes (rows of $V^\top$ from the SVD $X - \bar x = U S V^\top$, each signed
    so that its largest-magnitude entry is positive), `explained_variance_`
    ($S^2 / (n - 1)$) and `explained_variance_ratio_`; `project` returns
    $(x - \bar x) V_k$, shape `(k,)`, named `"fc_pc0"`, ...

    **Arguments:**

    - `pca`: number of principal components kept, or `None` (no reduction).
    - `fisher`: apply Fisher's z-transform (default True).
    """

    def __init__(self, pca: int | None = None, fisher: bool = True):
        self.pca = None if pca is None else _positive_int(pca, "FC pca")
        self.fisher = bool(fisher)
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None
        self.explained_variance_: np.ndarray | None = None
        self.explained_variance_ratio_: np.ndarray | None = None

    def _config(self):
        return {"pca": self.pca, "fisher": self.fisher}

    def _setup(self):
        c = self._signal_shape[1]
        if c < 2:
            raise ValueError(f"shape: FC needs at least 2 channels, got {self._signal_shape}.")
        if self._signal_shape[0] < 2:
            raise ValueError(f"shape: FC needs at least 2 samples, got {self._signal_shape}.")
        d = c * (c - 1) // 2
        if self.pca is not None and self.pca > d:
            raise ValueError(
                f"FC pca: {self.pca} components, but {c} channels give only {d} FC values."
            )
        if self.components_ is not None and self.components_.shape[1] != d:
            raise ValueError(
                f"FC: fitted on {self.components_.shape[1]} FC values, but {c} channels give {d}; "
                "bind an unfitted FC and fit it again."
            )

    def _shape(self):
        c = self._signal_shape[1]
        return (c * (c - 1) // 2,)

    def _names(self):
        i, j = np.triu_indices(self._signal_shape[1], k=1)
        return [f"fc[{a},{b}]" for a, b in zip(i, j, strict=True)]

    def _compute(self, x):
        r = bm.analysis.upper_triangle(bm.analysis.fc(x))
        return bm.analysis.fisher_z(r) if self.fisher else r

    def fit(self, features: Any) -> FC:
        """Fit the PCA (when `pca` is set) on a bank of raw FC features.

        **Arguments:**

        - `features`: shape `(n, d)`, finite, `n >= 2`.

        **Returns:** a fitted copy (or `self` when `pca is None`).
        """
        x = self._check_features(features)
        if self.pca is None:
            return self
        n = x.shape[0]
        if n < 2 or self.pca > n:
            raise ValueError(
                f"features: FC(pca={self.pca}) needs at least max(2, {self.pca}) rows to fit, "
                f"got {n}."
            )
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean[None, :], full_matrices=False)
        comps = vt[: self.pca]
        # sign convention: the largest-magnitude entry of each component is positive
        signs = np.sign(comps[np.arange(self.pca), np.argmax(np.abs(comps), axis=1)])
        comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
        var = s**2
        out = copy.copy(self)
        out.mean_ = mean
        out.components_ = comps
        out.explained_variance_ = var[: self.pca] / (n - 1)
        total = var.sum()
        out.explained_variance_ratio_ = var[: self.pca] / (total if total > 0 else 1.0)
        return out

    def project(self, features: Any) -> jax.Array:
        """The principal-component scores `(x - mean) @ components.T` (identity without PCA).

        **Arguments:**

        - `features`: shape `(..., d)`.

        **Returns:** shape `(..., pca)` (or `(..., d)` without PCA).
        """
        x = jnp.asarray(features)
        if self.pca is None:
            return x
        if self.components_ is None:
            raise ValueError(
                f"FC(pca={self.pca}).project: the PCA is not fitted; call summary = "
                "summary.fit(bank) first."
            )
        d = self.components_.shape[1]
        if x.ndim < 1 or x.shape[-1] != d:
            raise ValueError(f"features: expected shape (..., {d}), got {x.shape}.")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        mean = jnp.asarray(self.mean_, x.dtype).reshape((1,) * (x.ndim - 1) + (d,))
        return (x - mean) @ jnp.asarray(self.components_, x.dtype).T

    @property
    def out_shape(self):
        """`(pca,)` with PCA, else `shape`."""
        return self.shape if self.pca is None else (self.pca,)

    @property
    def out_names(self):
        """`"fc_pc0"`, ... with PCA, else `names`."""
        return self.names if self.pca is None else [f"fc_pc{i}" for i in range(self.pca)]


# ---------------------------------------------------------------------------- FCD


class FCD(Summary):
    r"""The histogram of the FC dynamics values: the distribution of windowed-FC similarity.

    The FCD matrix of sliding-window FC patterns (`bm.analysis.fcd`) has its
    values above the diagonal (`fcd_values`, every pair of distinct windows)
    binned into `bins` equal bins over `range`; the features are the fractions
    of values in each bin (they sum to 1; values outside `range` count in the
    first or last bin). Named `"fcd[lo,hi)"` by bin edges. Not differentiable
    (counts).

    **Arguments:**

    - `window`, `step`: window length and step between window starts (ms, or
      brainunit time quantities), rounded to whole samples.
    - `bins`: number of bins (default 20).
    - `range`: `(low, high)` of the bins (default `(-1, 1)`, all correlations).
    """

    def __init__(
        self,
        window: Any,
        step: Any,
        bins: int = 20,
        range: tuple[float, float] = (-1.0, 1.0),
    ):
        self.window = to_float(window, MS, "FCD window")
        self.step = to_float(step, MS, "FCD step")
        for name, v in (("window", self.window), ("step", self.step)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"FCD {name}: expected a duration > 0 ms, got {v}.")
        self.bins = _positive_int(bins, "FCD bins")
        if not (isinstance(range, Sequence) and len(range) == 2):
            raise ValueError(f"FCD range: expected (low, high), got {range!r}.")
        lo, hi = float(range[0]), float(range[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"FCD range: expected finite low < high, got {range!r}.")
        self.range = (lo, hi)

    def _config(self):
        return {"window": self.window, "step": self.step, "bins": self.bins, "range": self.range}

    def _fcd(self, x):
        return bm.analysis.fcd(x, self.window, self.step, period=self._period)

    def _setup(self):
        shape = self._signal_shape
        if shape[1] < 3:
            raise ValueError(f"shape: FCD needs at least 3 channels, got {shape}.")
        # the analysis checks window and step against the signal (clear errors)
        spec = jax.ShapeDtypeStruct(shape, jnp.result_type(float))
        n_windows = jax.eval_shape(self._fcd, spec).shape[0]
        if n_windows < 2:
            raise ValueError(
                f"FCD window: a {self.window} ms window with a {self.step} ms step gives "
                f"{n_windows} window in a {shape[0] * self._period} ms signal; expected at least "
                "2 windows (use a shorter window or step, or a longer run)."
            )
        self.n_windows = int(n_windows)

    def _shape(self):
        return (self.bins,)

    def _names(self):
        e = np.linspace(self.range[0], self.range[1], self.bins + 1)
        return [f"fcd[{e[k]:.3g},{e[k + 1]:.3g})" for k in range(self.bins)]

    def _compute(self, x):
        values = bm.analysis.fcd_values(self._fcd(x))
        lo, hi = self.range
        scaled = (values - lo) * (self.bins / (hi - lo))
        index = jnp.clip(jnp.floor(scaled), 0, self.bins - 1).astype(jnp.int32)
        counts = jnp.sum(jax.nn.one_hot(index, self.bins, dtype=values.dtype), axis=0)
        return counts / values.shape[0]


# ---------------------------------------------------------------------------- spectra


class Spectral(Summary):
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
      Nyquist frequency and hold a frequency of the Welch grid.
    - `peak`: include the peak frequency (default True).
    - `log`: $\log_{10}$ of the band powers (default True).
    - `nperseg`: Welch segment length in samples; default about one second
      (the power of two >= 1000 ms / period, at least 256 samples), at most
      the whole signal.
    - `per_channel`: one set of features per channel instead of the spectrum
      averaged over channels.
    - `relative`: band power divided by the total power (default True).
    """

    def __init__(
        self,
        bands: Sequence[str] | Mapping[str, tuple[float, float]] = (
            "delta",
            "theta",
            "alpha",
            "beta",
            "gamma",
        ),
        peak: bool = True,
        log: bool = True,
        nperseg: int | None = None,
        per_channel: bool = False,
        relative: bool = True,
    ):
        if isinstance(bands, str):
            bands = (bands,)
        if isinstance(bands, Mapping):
            resolved = {
                str(k): bm.analysis.resolve_band(v, f"Spectral bands[{k!r}]")
                for k, v in bands.items()
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
                f"Spectral bands: expected band names or a dict name -> (low, high) Hz, "
                f"got {bands!r}."
            )
        if not resolved:
            raise ValueError("Spectral bands: expected at least one band (the peak's range).")
        self.bands = resolved
        self.peak = bool(peak)
        self.log = bool(log)
        self.nperseg = None if nperseg is None else _positive_int(nperseg, "Spectral nperseg", 4)
        self.per_channel = bool(per_channel)
        self.relative = bool(relative)

    def _config(self):
        return {
            "bands": self.bands,
            "peak": self.peak,
            "log": self.log,
            "nperseg": self.nperseg,
            "per_channel": self.per_channel,
            "relative": self.relative,
        }

    def _setup(self):
        n, _ = self._signal_shape
        period = self._period
        nyquist = 500.0 / period
        for name, (lo, hi) in self.bands.items():
            if hi > nyquist:
                raise ValueError(
                    f"Spectral bands[{name!r}]: ({lo:g}, {hi:g}) Hz reaches above the Nyquist "
                    f"frequency {nyquist:g} Hz of the {period:g} ms sampling period; expected "
                    "bands below it."
                )
        if self.nperseg is None:
            nperseg = _default_nperseg(n, period)
        else:
            nperseg = self.nperseg
            if nperseg > n:
                raise ValueError(
                    f"Spectral nperseg: {nperseg} samples per segment, but the signal has {n}; "
                    "expected at most that."
                )
        if nperseg < 4:
            raise ValueError(f"shape: Spectral needs at least 4 samples, got {n}.")
        freqs = np.fft.rfftfreq(nperseg, d=period / 1000.0)
        for name, (lo, hi) in self.bands.items():
            if not np.any((freqs >= lo) & (freqs <= hi)):
                raise ValueError(
                    f"Spectral bands[{name!r}]: no frequency of the Welch grid (steps of "
                    f"{freqs[1]:g} Hz, nperseg = {nperseg}) lies in ({lo:g}, {hi:g}) Hz; use a "
                    "longer nperseg (or run) or a wider band."
                )
        self._nperseg = nperseg
        self._nyquist = nyquist

    def _n_features(self):
        return len(self.bands) + int(self.peak)

    def _shape(self):
        per = self._signal_shape[1] if self.per_channel else 1
        return (self._n_features() * per,)

    def _names(self):
        base = [f"{b}_power" for b in self.bands] + (["peak_frequency"] if self.peak else [])
        if not self.per_channel:
            return base
        c = self._signal_shape[1]
        return [f"{b}[{i}]" for b in base for i in range(c)]

    def _compute(self, x):
        freqs, p = bm.analysis.psd(x, period=self._period, nperseg=self._nperseg)
        if not self.per_channel:
            p = jnp.mean(p, axis=1, keepdims=True)
        feats = []
        if self.relative:
            total = bm.analysis.band_power(freqs, p, (0.0, self._nyquist))
            total = jnp.where(total > 0, total, 1.0)
        for band in self.bands.values():
            power = bm.analysis.band_power(freqs, p, band)
            if self.relative:
                power = power / total
            if self.log:
                power = jnp.log10(jnp.maximum(power, jnp.finfo(power.dtype).tiny))
            feats.append(power)
        if self.peak:
            lo = min(b[0] for b in self.bands.values())
            hi = max(b[1] for b in self.bands.values())
            feats.append(bm.analysis.peak_frequency(freqs, p, (lo, hi)))
        return jnp.concatenate(feats)


# ---------------------------------------------------------------------------- phases


class Order(Summary):
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

    def __init__(self, band: Any = None):
        self.band = None if band is None else bm.analysis.resolve_band(band, "Order band")

    def _config(self):
        return {"band": self.band}

    def _setup(self):
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
            freqs = np.fft.rfftfreq(n, d=self._period / 1000.0)
            keep = (freqs >= lo) & (freqs <= hi) & (freqs > 0)
            if not keep.any():
                raise ValueError(
                    f"Order band: no frequency of the signal's FFT grid (steps of {freqs[1]:g} "
                    f"Hz) lies in ({lo:g}, {hi:g}) Hz; use a longer run or a wider band."
                )
            self._keep = keep

    def _shape(self):
        return (2,)

    def _names(self):
        return ["order", "metastability"]

    def _compute(self, x):
        if self.band is not None:
            n = x.shape[0]
            spectrum = jnp.fft.rfft(x, axis=0)
            keep = jnp.asarray(self._keep)[:, None]
            x = jnp.fft.irfft(jnp.where(keep, spectrum, 0.0), n=n, axis=0).astype(x.dtype)
        phases = bm.analysis.phase(x)
        order = bm.analysis.kuramoto_order(phases)
        return jnp.stack([jnp.mean(order), bm.analysis.metastability(phases)])


# ---------------------------------------------------------------------------- moments


class Moments(Summary):
    r"""Per-channel mean, standard deviation and lag-1 autocorrelation.

    Features `(3 n_channels,)`: the means (`"mean[c]"`), the standard
    deviations with `ddof = 0` (`"std[c]"`), and the lag-1 autocorrelations
    (`"ac1[c]"`: the Pearson correlation of $x_{t}$ and $x_{t+1}$,
    `bm.analysis.pearson`, 0 for a constant channel). For a stationary
    Ornstein-Uhlenbeck process $dx = -\lambda x\,dt + \sigma\,dW$ sampled every
    $\Delta$ these estimate the mean, $\sigma / \sqrt{2\lambda}$ and
    $e^{-\lambda\Delta}$.
    """

    def _setup(self):
        if self._signal_shape[0] < 3:
            raise ValueError(f"shape: Moments needs at least 3 samples, got {self._signal_shape}.")

    def _shape(self):
        return (3 * self._signal_shape[1],)

    def _names(self):
        c = self._signal_shape[1]
        return [f"{m}[{i}]" for m in ("mean", "std", "ac1") for i in range(c)]

    def _compute(self, x):
        mean = jnp.mean(x, axis=0)
        std = jnp.std(x, axis=0)
        ac1 = bm.analysis.pearson(x[:-1].T, x[1:].T)
        return jnp.concatenate([mean, std, ac1])


# ---------------------------------------------------------------------------- raw signal


class TimeSeries(Summary):
    """The raw signal, subsampled in time: the input of a `CNNEmbedding`.

    Output shape `(n_samples // stride, n_channels)`: samples `0, stride,
    2 stride, ...`. Not flat (no `names`; cannot be `combine`d).

    **Arguments:**

    - `stride`: keep every `stride`-th sample (default 1, all).
    """

    flat = False

    def __init__(self, stride: int = 1):
        self.stride = _positive_int(stride, "TimeSeries stride")

    def _config(self):
        return {"stride": self.stride}

    def _setup(self):
        if self._signal_shape[0] < self.stride:
            raise ValueError(
                f"TimeSeries stride: {self.stride} is longer than the signal "
                f"({self._signal_shape[0]} samples)."
            )

    def _shape(self):
        n, c = self._signal_shape
        return (n // self.stride, c)

    def _compute(self, x):
        m = x.shape[0] // self.stride
        return x[: m * self.stride : self.stride]


# ---------------------------------------------------------------------------- combined


class Combined(Summary):
    """Flat summaries concatenated: features, names, fit and project part by part.

    Build with `combine(*summaries)`.

    **Arguments:**

    - `parts`: flat summaries (`summary.flat`), in the order of the features.
    """

    def __init__(self, parts: Sequence[Summary]):
        parts = tuple(parts)
        if not parts:
            raise ValueError("summaries: expected at least one summary to combine.")
        for i, p in enumerate(parts):
            if not isinstance(p, Summary):
                raise ValueError(f"summaries[{i}]: expected a Summary, got {p!r}.")
            if not p.flat:
                raise ValueError(
                    f"summaries[{i}]: {type(p).__name__} is not flat (its output is not a "
                    "vector); only flat summaries can be combined (use it on its own with an "
                    "embedding network)."
                )
        self.parts = parts

    def _config(self):
        return {"parts": list(self.parts)}

    def __repr__(self):
        inner = ", ".join(repr(p) for p in self.parts)
        return f"combine({inner})"

    def _setup(self):
        self.parts = tuple(p.bind_signal(self._period, self._signal_shape) for p in self.parts)

    def _shape(self):
        return (sum(p.shape[0] for p in self.parts),)

    def _names(self):
        return [n for p in self.parts for n in p.names]

    def _compute(self, x):
        return jnp.concatenate([p._compute(x) for p in self.parts])

    def _split(self, x: Any, sizes: list[int], axis: int) -> list[Any]:
        bounds = np.cumsum(sizes)[:-1].tolist()
        return (
            np.split(x, bounds, axis=axis)
            if isinstance(x, np.ndarray)
            else jnp.split(x, bounds, axis=axis)
        )

    def fit(self, features: Any) -> Combined:
        """Fit every part on its slice of the bank.

        **Arguments:**

        - `features`: shape `(n, d)`, finite.

        **Returns:** a fitted copy.
        """
        x = self._check_features(features)
        chunks = self._split(x, [p.shape[0] for p in self.parts], axis=1)
        out = copy.copy(self)
        out.parts = tuple(p.fit(c) for p, c in zip(self.parts, chunks, strict=True))
        return out

    def project(self, features: Any) -> jax.Array:
        """Every part's projection of its slice, concatenated.

        **Arguments:**

        - `features`: shape `(..., d)`.

        **Returns:** shape `(..., out_shape[0])`.
        """
        self._require_bound("project")
        x = jnp.asarray(features)
        d = self.shape[0]
        if x.ndim < 1 or x.shape[-1] != d:
            raise ValueError(f"features: expected shape (..., {d}), got {x.shape}.")
        chunks = self._split(x, [p.shape[0] for p in self.parts], axis=-1)
        return jnp.concatenate(
            [p.project(c) for p, c in zip(self.parts, chunks, strict=True)], axis=-1
        )

    @property
    def out_shape(self):
        """The summed projected sizes of the parts."""
        return (sum(p.out_shape[0] for p in self.parts),)

    @property
    def out_names(self):
        """The parts' projected names, concatenated."""
        return [n for p in self.parts for n in p.out_names]


def combine(*summaries: Summary) -> Combined:
    """Concatenate flat summaries into one (nested `Combined` are flattened).

    **Arguments:**

    - `*summaries`: flat summaries (bound or not; `bind` binds them all).

    **Returns:** a `Combined` whose features, `names`, `fit` and `project` are
    those of the parts, in order.
    """
    parts: list[Summary] = []
    for s in summaries:
        parts.extend(s.parts if isinstance(s, Combined) else [s])
    return Combined(parts)


# ---------------------------------------------------------------------------- embeddings


class MLPEmbeddingNet(eqx.Module):
    """An MLP on the flattened input: `(*in_shape) -> (out_dim,)` (built by `MLPEmbedding`)."""

    mlp: eqx.nn.MLP
    in_shape: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, x: Any) -> jax.Array:
        """Embed one input of shape `in_shape`; returns `(out_dim,)`."""
        x = jnp.asarray(x)
        if x.shape != self.in_shape:
            raise ValueError(f"x: the embedding expects shape {self.in_shape}, got {x.shape}.")
        return self.mlp(x.reshape(-1))


class MLPEmbedding:
    """A multilayer-perceptron embedding (flattens its input).

    **Arguments:**

    - `out_dim`: embedding size.
    - `width`: hidden layer width.
    - `depth`: number of hidden layers (`eqx.nn.MLP`'s `depth`).
    - `activation`: hidden activation (default `jax.nn.gelu`).
    """

    def __init__(
        self,
        out_dim: int = 16,
        width: int = 64,
        depth: int = 2,
        activation: Callable = jax.nn.gelu,
    ):
        self.out_dim = _positive_int(out_dim, "MLPEmbedding out_dim")
        self.width = _positive_int(width, "MLPEmbedding width")
        self.depth = _positive_int(depth, "MLPEmbedding depth", 0)
        if not callable(activation):
            raise ValueError(f"MLPEmbedding activation: expected a callable, got {activation!r}.")
        self.activation = activation

    def build(self, key: jax.Array, in_shape: Sequence[int]) -> MLPEmbeddingNet:
        """Initialise the network.

        **Arguments:**

        - `key`: a `jax.random` key.
        - `in_shape`: the shape of one input (e.g. a summary's `out_shape`).

        **Returns:** an `MLPEmbeddingNet` mapping `in_shape` to `(out_dim,)`.
        """
        in_shape = tuple(_positive_int(s, "in_shape") for s in in_shape)
        mlp = eqx.nn.MLP(
            math.prod(in_shape), self.out_dim, self.width, self.depth, self.activation, key=key
        )
        return MLPEmbeddingNet(mlp=mlp, in_shape=in_shape)

    def __repr__(self):
        return (
            f"MLPEmbedding(out_dim={self.out_dim}, width={self.width}, depth={self.depth}, "
            f"activation={getattr(self.activation, '__name__', self.activation)})"
        )


class CNNEmbeddingNet(eqx.Module):
    """A 1-D CNN over time: `(n_times, n_channels) -> (out_dim,)` (built by `CNNEmbedding`)."""

    convs: tuple[eqx.nn.Conv1d, ...]
    linear: eqx.nn.Linear
    activation: Callable = eqx.field(static=True)
    in_shape: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, x: Any) -> jax.Array:
        """Embed one input `(n_times, n_channels)`; returns `(out_dim,)`."""
        x = jnp.asarray(x)
        if x.shape != self.in_shape:
            raise ValueError(f"x: the embedding expects shape {self.in_shape}, got {x.shape}.")
        h = x.T  # Conv1d takes (channels, length)
        for conv in self.convs:
            h = self.activation(conv(h))
        return self.linear(jnp.mean(h, axis=1))


class CNNEmbedding:
    """A 1-D convolutional embedding of a time series `(n_times, n_channels)`.

    Convolutions over time (channels as input features; padding
    `kernel_size // 2`, stride `stride`, activation after each), global
    average pooling over time, then a linear layer to `out_dim`.

    **Arguments:**

    - `out_dim`: embedding size.
    - `channels`: output channels of each convolution layer.
    - `kernel_size`: convolution kernel length, samples.
    - `stride`: convolution stride, samples.
    - `activation`: activation (default `jax.nn.gelu`).
    """

    def __init__(
        self,
        out_dim: int = 16,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 5,
        stride: int = 2,
        activation: Callable = jax.nn.gelu,
    ):
        self.out_dim = _positive_int(out_dim, "CNNEmbedding out_dim")
        channels = tuple(channels)
        if not channels:
            raise ValueError("CNNEmbedding channels: expected at least one layer.")
        self.channels = tuple(_positive_int(c, "CNNEmbedding channels") for c in channels)
        self.kernel_size = _positive_int(kernel_size, "CNNEmbedding kernel_size")
        self.stride = _positive_int(stride, "CNNEmbedding stride")
        if not callable(activation):
            raise ValueError(f"CNNEmbedding activation: expected a callable, got {activation!r}.")
        self.activation = activation

    def build(self, key: jax.Array, in_shape: Sequence[int]) -> CNNEmbeddingNet:
        """Initialise the network.

        **Arguments:**

        - `key`: a `jax.random` key.
        - `in_shape`: `(n_times, n_channels)` of one input (e.g. `TimeSeries.out_shape`).

        **Returns:** a `CNNEmbeddingNet` mapping `in_shape` to `(out_dim,)`.
        """
        in_shape = tuple(in_shape)
        if len(in_shape) != 2:
            raise ValueError(
                f"in_shape: CNNEmbedding expects inputs (n_times, n_channels), got {in_shape!r}."
            )
        n_times, n_channels = (_positive_int(s, "in_shape") for s in in_shape)
        pad = self.kernel_size // 2  # every layer keeps >= 1 time sample
        keys = jax.random.split(key, len(self.channels) + 1)
        sizes = (n_channels, *self.channels)
        convs = tuple(
            eqx.nn.Conv1d(
                sizes[i], sizes[i + 1], self.kernel_size, self.stride, padding=pad, key=keys[i]
            )
            for i in range(len(self.channels))
        )
        linear = eqx.nn.Linear(self.channels[-1], self.out_dim, key=keys[-1])
        return CNNEmbeddingNet(
            convs=convs, linear=linear, activation=self.activation, in_shape=(n_times, n_channels)
        )

    def __repr__(self):
        return (
            f"CNNEmbedding(out_dim={self.out_dim}, channels={self.channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, "
            f"activation={getattr(self.activation, '__name__', self.activation)})"
        )
