r"""Likelihoods of noise-driven data from the linearised network's second-order statistics.

A network that fluctuates around a stable fixed point is, to first order, a linear
stochastic (delay) differential equation (`brainmass.linear`). The autocovariance
sequence of the signal *as the monitor samples it*, $\gamma(h) = \mathrm{Cov}(y_{k+h},
y_k)$, follows without simulating: exactly from the discrete-time model for delay-free
networks (`bm.linear.state_space`, then `autocovariance`: aliasing, box-car averages,
lead fields and the linearised BOLD filter included), and through the exact transfer
function with delays (`bm.linear.lagged_covariance`). Both likelihoods here are
functions of $\gamma$ (`inference._spectral_stats`), so they integrate over the process
noise instead of conditioning on one draw of it, and their calibration was measured by
simulation-based calibration (see benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

import brainmass as bm
from brainmass.checks import check_int

from .. import _spectral_stats as stats
from ._base import AbstractLikelihood, SignalSpec, check_no_initial, check_noise, check_signal
from ._simulated import pair_coords

__all__ = ["Whittle", "LinearizedFC", "Linearized"]


def check_noise_driven(sim: bm.Simulator, name: str) -> None:
    """A ValueError unless `sim` is a noise-driven network these likelihoods can describe."""
    if sim.network.noise is None:
        raise ValueError(
            f"likelihood: {name} describes noise-driven fluctuations; the network has no noise "
            "(Network(..., noise=...)). For a deterministic simulator use TimeSeries."
        )
    monitors = (bm.monitors.Raw, bm.monitors.TemporalAverage, bm.monitors.EEG, bm.monitors.MEG)
    if not sim.network.has_delays:
        monitors = (*monitors, bm.monitors.BOLD)
    if not isinstance(sim.monitor, monitors):
        extra = " (BOLD only without conduction delays)" if sim.network.has_delays else ""
        raise ValueError(
            f"likelihood: {name} models Raw, TemporalAverage, EEG, MEG and BOLD monitors{extra}, "
            f"got {type(sim.monitor).__name__}."
        )
    check_no_initial(sim, name)


def lagged(sim: bm.Simulator, n_lags: int, freqs_hz: Any) -> tuple[jax.Array, jax.Array]:
    """`(gamma (n_lags, C, C), ok)`: the sampled signal's autocovariances and a validity flag."""
    if sim.network.has_delays:  # NaN where the delayed system is unstable
        gamma = bm.linear.lagged_covariance(sim, n_lags, freqs_hz=freqs_hz)
        ok = bm.linear.fixed_point(sim).residual <= 1e-6
    else:
        model = bm.linear.state_space(sim)
        gamma, ok = bm.linear.autocovariance(model, n_lags), model.ok
    finite = jnp.all(jnp.isfinite(gamma)) & jnp.all(jnp.diagonal(gamma[0]) > 0)
    return gamma, ok & finite


class _ComplexGaussianSegments(dist.Distribution):
    """Segment DFTs `(F, K, C)`: per frequency, K independent circular complex normals."""

    support = constraints.real  # complex values; NumPyro does not validate observed data here

    def __init__(self, expected: jax.Array, noise_var: Any, n_segments: int):
        self.expected = expected  # (F, C, C)
        self.noise_var = noise_var
        self.n_segments = n_segments
        super().__init__(
            batch_shape=expected.shape[:1], event_shape=(n_segments, expected.shape[-1])
        )

    def _covariance(self):
        c = self.expected.shape[-1]
        if self.noise_var is None:
            return self.expected
        noise = jnp.broadcast_to(jnp.asarray(self.noise_var), (c,))
        return self.expected + jnp.diag(noise)[None].astype(self.expected.dtype)

    def log_prob(self, value):
        """`(F,)`: the debiased Whittle log-likelihood terms of the DFTs `value` `(F, K, C)`."""
        return stats.whittle_log_likelihood(
            jnp.swapaxes(value, 0, 1), self.expected, noise_var=self.noise_var
        )

    def sample(self, key, sample_shape=()):
        """DFTs `(*sample_shape, F, K, C)` drawn from the model."""
        s = self._covariance()
        chol = jnp.linalg.cholesky(s)  # (F, C, C)
        shape = (*sample_shape, *self.batch_shape, *self.event_shape)
        k1, k2 = jax.random.split(key)
        real = jnp.real(s).dtype
        z = (jax.random.normal(k1, shape, real) + 1j * jax.random.normal(k2, shape, real)) / (
            np.sqrt(2.0)
        )
        return jnp.einsum("fab,...fkb->...fka", chol, z)


@final
class Whittle(AbstractLikelihood):
    r"""The debiased multivariate Whittle likelihood of the sampled, monitored signal.

    The series is cut into $K$ non-overlapping segments of $n$ = `nperseg` samples. At a
    Fourier frequency $f$ a segment's DFT vector $d_k(f)$ (all channels) is circular
    complex Gaussian with covariance the *exact expected periodogram*

    $$ \mathrm E\,[d(f) d(f)^\dagger] = \sum_{|h|<n} c_w(h)\,\gamma(h)\,e^{-2\pi i f h},$$

    $\gamma$ the model's autocovariances of the signal as the monitor samples it (aliases,
    the box-car average, lead fields and, without delays, the linearised BOLD filter are
    in it; delays through the exact transfer function), $c_w$ the taper's
    autocorrelation (Sykulski, Olhede, Guillaumin, Lilly & Early 2019, "The debiased
    Whittle likelihood", Biometrika 106:251). The full cross-spectral matrix is used:
    channels are correlated. Segments and the frequencies kept are treated as
    independent; $f = 0$ (it carries the unknown mean) and Nyquist are never used, so
    the data need not be centred.

    **Calibration** (`benchmarks/calibration.py`: SBC over 100 prior draws per problem,
    grid posteriors; and VAR(1) networks of 3 to 68 channels). With the Hann taper (the
    default; every second Fourier bin, so that the kept ordinates are nearly
    uncorrelated) 90 % intervals covered 88-92 % on an OU network seen as Raw,
    TemporalAverage and BOLD and on a delayed Hopf network down to a = -0.02, with a
    posterior sd 1.4-1.5 times the exact full-data posterior's. Without a taper
    (`taper="none"`) the sd is 1.02-1.13 times the exact one, *but only when segments
    span at least 20-40 correlation times of the signal*: with shorter segments the
    periodogram leaks power from the low frequencies into the high ones, the ordinates
    the likelihood treats as independent are not, and the posterior is overconfident
    (80 % coverage with segments of 10 correlation times; 22 % on BOLD with 50-volume
    segments, where the untapered expected periodogram spans a range of 800 and the
    tapered one of 5e5). So the default is the taper; drop it for the narrower posterior
    only where the segments are long. Near a bifurcation (Hopf, a -> 0) every linearised
    route is biased, tapered or not (the nonlinearity takes variance away): check with
    an NPE or by SBC there.

    **Arguments:**

    - `nperseg`: samples per segment (frequency resolution $1/(n\,\Delta t)$).
    - `taper`: `"hann"` (default: calibrated for short segments and steep spectra) or
      `"none"` (narrower, calibrated only with segments of 20-40 correlation times).
    - `fmin`, `fmax`: the band in Hz (default: every usable bin; the model describes
      the sampled signal exactly up to Nyquist).
    - `sigma`: white measurement noise standard deviation per sample in the signal's
      unit: `None` (default), a number, an array `(n_channels,)` or a prior.
    - `freqs_hz`: the frequency grid of the autocovariance integral for delayed networks
      (default: chosen by `bm.linear.lagged_covariance`).

    Data: the series `(n_samples, n_channels)`; prepared as DFTs `(F, K, C)`.
    Pointwise terms: `(frequency,)`.
    """

    needs_simulation: ClassVar[bool] = False
    nperseg: int = eqx.field(static=True)
    taper: str = eqx.field(static=True)
    fmin: float | None = eqx.field(static=True)
    fmax: float | None = eqx.field(static=True)
    sigma: Any
    freqs_hz: tuple[float, ...] | None = eqx.field(static=True)
    signal: SignalSpec | None = eqx.field(static=True)

    def __init__(
        self,
        nperseg: int = 256,
        *,
        taper: str = "hann",
        fmin: float | None = None,
        fmax: float | None = None,
        sigma: Any = None,
        freqs_hz: Any = None,
    ):
        check_int(nperseg, "Whittle nperseg", 8)
        stats.taper_window(int(nperseg), taper)  # checks the taper's name
        self.nperseg = int(nperseg)
        self.taper = taper
        self.fmin = None if fmin is None else float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        self.sigma = None if sigma is None else check_noise("Whittle sigma", sigma)
        self.freqs_hz = None if freqs_hz is None else tuple(float(f) for f in freqs_hz)
        self.signal = None

    def noise_parameters(self):
        """`{"sigma": ...}` when measurement noise is modelled, else `{}`."""
        return {} if self.sigma is None else {"sigma": self.sigma}

    def check_simulator(self, sim):
        """A noise-driven network, a segment no longer than the signal, a band on the grid."""
        check_noise_driven(sim, "Whittle")
        n_samples = SignalSpec.of(sim).n_samples
        if n_samples < self.nperseg:
            raise ValueError(
                f"Whittle nperseg: {self.nperseg} samples per segment, but the signal has "
                f"{n_samples}; use a shorter nperseg."
            )
        self._index(float(sim.period))

    def _index(self, period: float) -> np.ndarray:
        try:
            return stats.fourier_index(
                self.nperseg, taper=self.taper, period_ms=period, fmin=self.fmin, fmax=self.fmax
            )
        except ValueError as err:
            raise ValueError(f"Whittle fmin/fmax: {err}") from None

    @property
    def segments(self) -> int:
        """K, the number of segments."""
        return self.spec.n_samples // self.nperseg

    @property
    def freqs(self) -> np.ndarray:
        """The frequencies used, Hz `(F,)`."""
        return self._index(self.spec.period) / (self.nperseg * self.spec.period / 1000.0)

    def prepare(self, data):
        """The segments' DFTs at the frequencies used, `(F, K, C)` complex."""
        spec = self.spec
        y = check_signal(data, spec, "Whittle")
        _, d = stats.segment_dfts(
            y,
            self.nperseg,
            taper=self.taper,
            period_ms=spec.period,
            fmin=self.fmin,
            fmax=self.fmax,
        )
        return jnp.swapaxes(d, 0, 1)

    def predict_without_simulation(self, sim):
        """The expected periodogram `(F, C, C)` of a segment, and an ok flag."""
        gamma, ok = lagged(sim, self.nperseg, self.freqs_hz)
        index = self._index(self.spec.period)
        return stats.expected_periodogram(gamma, self.nperseg, index, taper=self.taper), ok

    def fallback(self, prediction, observed):
        """Identity cross-spectra (finite, never used: the model adds -inf)."""
        eye = jnp.eye(prediction.shape[-1], dtype=prediction.dtype)
        return jnp.broadcast_to(eye, prediction.shape)

    def distribution(self, prediction, noise, *, data=None, theta=None):
        """Circular complex normals per frequency, the segments independent."""
        noise_var = None if "sigma" not in noise else jnp.asarray(noise["sigma"]) ** 2
        return _ComplexGaussianSegments(prediction, noise_var, self.segments)

    def dims(self):
        """(frequency [Hz],)."""
        return ["frequency"], {"frequency": self.freqs}


@final
class LinearizedFC(AbstractLikelihood):
    r"""The FC of a noise-driven network, with the sampling covariance of its entries.

    The data's Fisher-z FC upper triangle $z = \operatorname{artanh} r_{ij}$ ($i < j$)
    is Gaussian with the mean and the full covariance of the delta method through the
    sample covariances of $T$ correlated samples (Bartlett 1946; Roy 1989,
    "Asymptotic covariance structure of serial correlations in multivariate time
    series", Biometrika 76:824), both computed from the model's autocovariances of the
    sampled, monitored signal (see the module docstring), the mean's second-order bias
    and the effect of subtracting the sample mean included. Entries are correlated, and
    their variance follows from the signal's autocorrelation: no scatter to guess.

    The mean follows the parameters; the covariance is held fixed at a reference point
    (`covariance_at`, default: the simulator's own parameter values when the likelihood
    is bound). A covariance that moved with the parameters would read information into
    the FC that it does not hold (Carron 2013, A&A 551:A88): with 68 regions its 90 %
    intervals covered 78 %. The recommended workflow is two-stage: fit (MAP) with the
    covariance at a central value, then rebind at the estimate (`at(fit.params)`) for
    the posterior. Measured by SBC on VAR(1) networks of 3 to 68 regions (T = 1,200): 90 %
    intervals cover 86-93 %, posterior sd 1.2 times the exact full-data posterior's (the
    FC holds less than the whole series, never more). The old independent-entries FC
    likelihood covered 34-59 %.

    **Arguments:**

    - `covariance_at`: `{path: value}` of simulator parameters at which the covariance
      is computed (others as in the simulator); default None: the simulator's values.
    - `n_lags`: autocovariance lags in the sums; default None: chosen when bound from the
      reference point: for the covariance until every autocorrelation is below 1e-4,
      twice over; for the mean (evaluated at every parameter value) until it is below
      1e-2 (the truncated tail of its $O(1/T)$ corrections is far below the entries'
      sampling sd); at most the series' length.
    - `sigma`: an optional extra scatter on the Fisher-z scale (model error) added to the
      covariance's diagonal: None (default), a number or a prior. With it the covariance
      is factorised at every evaluation ($O(P^3)$, P = number of pairs).
    - `freqs_hz`: the frequency grid for delayed networks (see `Whittle`).

    Data: the series `(n_samples, n_channels)`. One pointwise term (the entries are
    correlated).
    """

    needs_simulation: ClassVar[bool] = False
    covariance_at: tuple[tuple[str, float], ...] | None = eqx.field(static=True)
    n_lags: int | None = eqx.field(static=True)
    sigma: Any
    freqs_hz: tuple[float, ...] | None = eqx.field(static=True)
    covariance: jax.Array | None
    scale_tril: jax.Array | None
    signal: SignalSpec | None = eqx.field(static=True)

    def __init__(
        self,
        *,
        covariance_at: dict[str, Any] | None = None,
        n_lags: int | None = None,
        sigma: Any = None,
        freqs_hz: Any = None,
    ):
        if n_lags is not None:
            check_int(n_lags, "Linearized('fc') n_lags", 2)
        self.covariance_at = None if covariance_at is None else _freeze(covariance_at)
        self.n_lags = None if n_lags is None else int(n_lags)
        self.sigma = None if sigma is None else check_noise("Linearized('fc') sigma", sigma)
        self.freqs_hz = None if freqs_hz is None else tuple(float(f) for f in freqs_hz)
        self.covariance = None
        self.scale_tril = None
        self.signal = None

    def at(self, params: dict[str, Any]) -> LinearizedFC:
        """An unbound copy with the covariance at `params` (e.g. a MAP estimate's)."""
        return LinearizedFC(
            covariance_at=params, n_lags=self.n_lags, sigma=self.sigma, freqs_hz=self.freqs_hz
        )

    def noise_parameters(self):
        """`{"sigma": ...}` when an extra scatter is modelled, else `{}`."""
        return {} if self.sigma is None else {"sigma": self.sigma}

    def check_simulator(self, sim):
        """A noise-driven network the linear model describes."""
        check_noise_driven(sim, "Linearized('fc')")

    def bind(self, sim):
        """Bound to `sim`, with the FC covariance at the reference point and its whitening."""
        from .._modules import evolve

        bound = super().bind(sim)
        spec = bound.spec
        if spec.n_channels < 2:
            raise ValueError("likelihood: Linearized('fc') needs at least 2 channels.")
        reference = sim
        if self.covariance_at is not None:
            values = dict(self.covariance_at)
            known = set(sim.params())
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(
                    f"Linearized('fc') covariance_at: {unknown} are not parameters of the "
                    f"simulator (it has {sorted(known)})."
                )
            reference = sim.with_params(values)
        n_samples = spec.n_samples
        # the covariance (once): lags until the autocorrelations are below 1e-4, doubled; the
        # mean (every evaluation): below 1e-2, where the truncated tail of its O(1/T) bias and
        # demeaning terms is far below the entries' sampling sd
        if self.n_lags is None:
            decay = _decay(reference, n_samples, self.freqs_hz)
            cov_lags, n_lags = decay(1e-4, 2), decay(1e-2, 1)
        else:
            cov_lags = n_lags = self.n_lags
        gamma, ok = lagged(reference, min(cov_lags, n_samples), self.freqs_hz)
        if not bool(ok):
            raise ValueError(
                "Linearized('fc'): the reference point of the FC covariance (covariance_at, or "
                "the simulator's own parameters) has no stable fixed point; set the simulator's "
                "parameters (or covariance_at) to a stable, central value."
            )
        _, cov = stats.fc_z_moments(gamma, n_samples)
        chol = jnp.linalg.cholesky(cov)
        if not bool(jnp.all(jnp.isfinite(chol))):
            raise ValueError(
                "Linearized('fc'): the FC covariance at the reference point is not positive "
                "definite (too few samples for this many regions, or a degenerate network)."
            )
        n_lags = int(min(n_lags, n_samples))
        return evolve(bound, n_lags=n_lags, covariance=cov, scale_tril=chol)

    def prepare(self, data):
        """The data's Fisher-z FC upper triangle, `(n_pairs,)`."""
        x = check_signal(data, self.spec, "Linearized('fc')")
        return bm.analysis.fisher_z(bm.analysis.upper_triangle(bm.analysis.fc(x)), max_abs=0.9999)

    def predict_without_simulation(self, sim):
        """The model's mean Fisher-z FC `(n_pairs,)` at the simulator's parameters, and ok."""
        gamma, ok = lagged(sim, self.n_lags, self.freqs_hz)
        return stats.fc_z_mean(gamma, self.spec.n_samples), ok

    def distribution(self, prediction, noise, *, data=None, theta=None):
        """Multivariate normal with the reference covariance (plus `sigma^2` if modelled)."""
        if "sigma" in noise:
            cov = self.covariance + jnp.asarray(noise["sigma"]) ** 2 * jnp.eye(
                self.covariance.shape[0], dtype=self.covariance.dtype
            )
            return dist.MultivariateNormal(prediction, covariance_matrix=cov)
        return dist.MultivariateNormal(prediction, scale_tril=self.scale_tril)

    def dims(self):
        """No named dimension: one joint term."""
        return [], {}

    def pair_coords(self):
        """The pairs `(n_pairs,)` of the prepared data, labelled 'a-b'."""
        return pair_coords(self.spec.channels)


def _freeze(values: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    out = []
    for k, v in sorted(values.items()):
        arr = np.asarray(v, dtype=float)
        out.append((k, float(arr) if arr.ndim == 0 else tuple(arr.ravel().tolist())))
    return tuple(out)


def _decay(sim: bm.Simulator, n_samples: int, freqs_hz: Any):
    """A function `lags(threshold, factor)` from one probe of the model at `sim`'s values.

    It gives the lags until every autocorrelation is below `threshold`, times `factor`, at
    least 10 and at most T.
    """
    probe = min(n_samples, 4096)
    gamma, ok = lagged(sim, probe, freqs_hz)
    if not bool(ok):
        return lambda threshold, factor: probe
    g = np.asarray(gamma)
    d = np.sqrt(np.diagonal(g[0]))
    profile = (np.abs(g) / (d[None, :, None] * d[None, None, :])).reshape(probe, -1).max(axis=1)

    def lags(threshold: float, factor: int) -> int:
        above = np.flatnonzero(profile > threshold)
        last = int(above[-1]) + 1 if above.size else 1
        return int(min(n_samples, max(10, factor * last)))

    return lags


def Linearized(statistic: str = "fc", **kwargs: Any) -> AbstractLikelihood:  # noqa: N802
    """A likelihood of the linearised network's second-order statistics, by name.

    `Linearized("fc", ...)` is `LinearizedFC(...)` (the FC); `Linearized("spectrum", ...)`
    is `Whittle(...)` (the spectra). Keyword arguments go to that class.
    """
    if statistic == "fc":
        return LinearizedFC(**kwargs)
    if statistic == "spectrum":
        return Whittle(**kwargs)
    raise ValueError(f"Linearized statistic: expected 'fc' or 'spectrum', got {statistic!r}.")
