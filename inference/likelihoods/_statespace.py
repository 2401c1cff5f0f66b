r"""`StateSpace`: the exact likelihood of an observed series of a noise-driven network.

A linear network, or a nonlinear one linearised at its stable fixed point, observed by a
monitor that is a linear filter (point samples, box-car averages, a lead field, the
linearised Balloon-Windkessel model) is a linear-Gaussian state-space model of its samples
(`brainmass.linear.state_space`, the exact discretisation between samples). The
likelihood of the series integrates over the process noise by a Kalman filter
(`inference._kalman`); no time stepping of the network, and no noise realisation is
conditioned on.
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

from .. import _kalman
from ._base import AbstractLikelihood, SignalSpec, check_no_initial, check_noise

__all__ = ["StateSpace"]

_MONITORS = (
    bm.monitors.Raw,
    bm.monitors.TemporalAverage,
    bm.monitors.BOLD,
    bm.monitors.EEG,
    bm.monitors.MEG,
)


class _Prediction(eqx.Module):
    """What StateSpace predicts: the state-space model's arrays and whether they are valid."""

    F: jax.Array
    Q: jax.Array
    H: jax.Array
    offset: jax.Array
    init_mean: jax.Array
    init_cov: jax.Array
    valid: jax.Array  # 1.0 where the model is valid, 0.0 for a fallback stand-in


class _KalmanDistribution(dist.Distribution):
    r"""The series' Gaussian law under a state-space model, as a NumPyro distribution.

    Batch shape `(n_samples,)` (a leading subject axis for cohorts), event shape
    `(n_channels,)`: `log_prob` gives the one-step prediction log-densities
    $\log p(y_k \mid y_{1:k-1})$, whose sum is the series' log-likelihood.
    """

    support = constraints.real_vector

    def __init__(
        self,
        prediction: _Prediction,
        R: Any,
        n_samples: int,
        method: str,
        steady_after: int | None,
    ):
        self.prediction = prediction
        self.method = method
        self.steady_after = steady_after
        n_channels = prediction.H.shape[-2]
        # a stand-in model (valid = 0) gets unit observation noise: finite, never used
        eye = jnp.eye(n_channels, dtype=prediction.H.dtype)
        self.R = _as_covariance(R, n_channels, prediction.H.dtype)
        batch = prediction.valid.shape
        invalid = jnp.reshape(1.0 - prediction.valid, batch + (1, 1))
        self.R_used = jnp.broadcast_to(self.R, batch + eye.shape) + invalid * jnp.broadcast_to(
            eye, batch + eye.shape
        )
        self.n_samples = n_samples
        batch = (*prediction.F.shape[:-2], n_samples)
        super().__init__(batch_shape=batch, event_shape=(n_channels,))

    def _terms(self, p: _Prediction, R: jax.Array, y: jax.Array) -> jax.Array:
        return _kalman.log_likelihood_terms(
            y,
            p.F,
            p.Q,
            p.H,
            p.offset,
            p.init_mean,
            p.init_cov,
            R,
            method=self.method,
            steady_after=self.steady_after,
        )

    def log_prob(self, value):
        """`(..., n_samples)`: one-step prediction log-densities; NaN entries are missing."""
        p, R = self.prediction, self.R_used
        if p.F.ndim == 2:
            return self._terms(p, R, value)
        return jax.vmap(self._terms)(p, R, value)

    def sample(self, key, sample_shape=()):
        """A series `(n_samples, n_channels)` drawn from the model (needs `n_samples`)."""
        if sample_shape:
            keys = jax.random.split(key, int(np.prod(sample_shape)))
            draws = jax.vmap(lambda k: self.sample(k))(keys)
            return draws.reshape(*sample_shape, *draws.shape[1:])
        p = self.prediction

        def one(k, p, R):
            return _kalman.sample(
                k, p.F, p.Q, p.H, p.offset, p.init_mean, p.init_cov, R, self.n_samples
            )

        if p.F.ndim == 2:
            return one(key, p, self.R)
        keys = jax.random.split(key, p.F.shape[0])
        return jax.vmap(one, in_axes=(0, 0, None))(keys, p, self.R)


def _as_covariance(R: Any, n_channels: int, dtype) -> jax.Array:
    """Measurement-noise variances `()`, `(C,)` (or with a leading subject axis) as `(C, C)`."""
    R = jnp.asarray(R, dtype)
    if R.ndim == 0:
        return R * jnp.eye(n_channels, dtype=dtype)
    return R[..., :, None] * jnp.eye(n_channels, dtype=dtype)


@final
class StateSpace(AbstractLikelihood):
    r"""The exact Gaussian likelihood of the observed series, by a Kalman filter.

    For a network without conduction delays, linear or linearised at its stable fixed
    point $x^*$ (`brainmass.linear.state_space`), the monitor's samples follow

    $$ z_k = F z_{k-1} + w_k,\quad w_k \sim N(0, Q), \qquad
       y_k = H z_k + y^* + v_k,\quad v_k \sim N(0, \sigma^2 I), $$

    with $F = e^{AT}$ and $Q$ the exact (Van Loan 1978) noise covariance over one
    sampling period $T$, the monitor as part of the state: point samples (`Raw`), the
    box-car mean of each period (`TemporalAverage`; EEG/MEG through their lead field),
    or the Balloon-Windkessel model linearised at its steady state (`BOLD`). The
    likelihood $p(y_{1:n} \mid \theta) = \prod_k p(y_k \mid y_{1:k-1}, \theta)$
    integrates over the process noise exactly (Kalman 1960; Harvey 1989, ch. 3), so
    NUTS and MAP sample the parameters' posterior, not a posterior given one noise
    draw. It is exact for the Ornstein-Uhlenbeck network (`models.Linear`, linear
    coupling, additive noise), and a first-order approximation for nonlinear models,
    good while the fluctuations stay in the linear range of the fixed point. The
    simulator's `dt` and solver do not enter (a simulation converges to this model as
    dt shrinks).

    **Networks with conduction delays** have an infinite-dimensional state; StateSpace
    refuses them (a ValueError at `bind`): use `Whittle` or `Linearized("fc")`, which
    take delays through the exact transfer function, or simulation-based inference.

    **Arguments:**

    - `sigma`: measurement-noise standard deviation in the signal's unit: `None`
      (default: the monitor's output is observed exactly), a number, an array
      `(n_channels,)`, or a prior (e.g. `dist.HalfNormal(0.05)`), inferred as the site
      `likelihood.sigma`. Real recordings have measurement noise: give it a prior.
    - `initial`: the law of the first sample's state: `"stationary"` (default; a
      recording of a process in its steady state) or `"simulator"` (a simulation started
      at `sim.init` at t = 0, with the monitor's transient dropped).
    - `method`: `"sequential"` (default, the fastest on CPUs) or `"parallel"` (an
      associative scan, Särkkä & García-Fernández 2021; for long series on GPUs).
    - `steady_after`: run the exact covariance recursion this many samples, then hold the
      converged Kalman gain, so each later sample costs matrix-vector products only
      (the recursion converges geometrically; `inference._kalman.choose_steady_after`
      finds the step where it has converged for given parameters). `None` (default):
      exact at every sample.

    The data are the observed series `(n_samples, n_channels)` as the monitor records
    it; NaN marks a missing sample or channel (the likelihood of the observed entries).
    Pointwise terms: `(time,)`, the one-step prediction log-densities. Posterior
    predictive draws are series from the model.
    """

    needs_simulation: ClassVar[bool] = False
    sigma: Any
    initial: str = eqx.field(static=True)
    method: str = eqx.field(static=True)
    steady_after: int | None = eqx.field(static=True)
    signal: SignalSpec | None = eqx.field(static=True)

    def __init__(
        self,
        sigma: Any = None,
        *,
        initial: str = "stationary",
        method: str = "sequential",
        steady_after: int | None = None,
    ):
        if initial not in ("stationary", "simulator"):
            raise ValueError(
                f"StateSpace initial: expected 'stationary' or 'simulator', got {initial!r}."
            )
        if method not in _kalman.METHODS:
            raise ValueError(
                f"StateSpace method: expected one of {_kalman.METHODS}, got {method!r}."
            )
        if steady_after is not None and (
            isinstance(steady_after, bool) or int(steady_after) != steady_after or steady_after < 1
        ):
            raise ValueError(
                "StateSpace steady_after: expected a positive integer or None, got "
                f"{steady_after!r}."
            )
        if steady_after is not None and method != "sequential":
            raise ValueError("StateSpace steady_after: only with method='sequential'.")
        self.sigma = None if sigma is None else check_noise("StateSpace sigma", sigma)
        self.initial = initial
        self.method = method
        self.steady_after = None if steady_after is None else int(steady_after)
        self.signal = None

    def noise_parameters(self):
        """`{"sigma": ...}` when measurement noise is modelled, else `{}`."""
        return {} if self.sigma is None else {"sigma": self.sigma}

    def check_simulator(self, sim):
        """A delay-free, noise-driven network recorded by Raw, TemporalAverage, BOLD, EEG or MEG."""
        if not isinstance(sim.monitor, _MONITORS):
            raise ValueError(
                f"likelihood: StateSpace models Raw, TemporalAverage, BOLD, EEG and MEG monitors, "
                f"got {type(sim.monitor).__name__}."
            )
        if sim.network.noise is None:
            raise ValueError(
                "likelihood: StateSpace describes noise-driven fluctuations; the network has no "
                "noise (Network(..., noise=...)). For a deterministic simulator use TimeSeries."
            )
        check_no_initial(sim, "StateSpace")
        if sim.network.has_delays:
            raise ValueError(
                "likelihood: StateSpace needs a network without conduction delays: with delays "
                "the state is the whole history over the longest delay (infinite-dimensional), "
                "so there is no exact finite state-space model. Use likelihoods.Whittle (the "
                "spectra) or likelihoods.Linearized('fc') (the FC), which take delays through "
                "the exact transfer function, or simulation-based inference (inference.NPE / "
                "NLE); or set speed=None if the delays are negligible."
            )

    def prepare(self, data):
        """The series `(n_samples, n_channels)`; NaN = missing, inf refused."""
        spec = self.spec
        y = jnp.asarray(data)
        if y.shape != spec.shape:
            raise ValueError(
                f"data: StateSpace expects the monitor's signal, shape (n_samples, n_channels) = "
                f"{spec.shape} for this simulator, got {y.shape}."
            )
        if not isinstance(data, jax.core.Tracer):
            arr = np.asarray(data, dtype=float)
            if np.isinf(arr).any():
                raise ValueError("data: StateSpace got infinite values (NaN marks a missing one).")
            if np.isnan(arr).all():
                raise ValueError("data: StateSpace got no observed value (all NaN).")
        return y

    def predict_without_simulation(self, sim):
        """The state-space model at the simulator's parameters, and its ok flag."""
        model = bm.linear.state_space(sim, initial=self.initial)
        prediction = _Prediction(
            model.F,
            model.Q,
            model.H,
            model.offset,
            model.init_mean,
            model.init_cov,
            jnp.ones((), model.F.dtype),
        )
        return prediction, model.ok

    def fallback(self, prediction, observed):
        """A benign model of the same shapes (zero dynamics, unit covariances), marked invalid."""
        p = prediction
        eye_s = jnp.broadcast_to(jnp.eye(p.F.shape[-1], dtype=p.F.dtype), p.F.shape)
        return _Prediction(
            jnp.zeros_like(p.F),
            eye_s,
            jnp.zeros_like(p.H),
            jnp.zeros_like(p.offset),
            jnp.zeros_like(p.init_mean),
            eye_s,
            jnp.zeros_like(p.valid),
        )

    def distribution(self, prediction, noise, *, data=None, theta=None):
        """The series' law under the model: a Kalman filter in `log_prob`."""
        dtype = prediction.F.dtype
        R = jnp.zeros((), dtype) if "sigma" not in noise else jnp.asarray(noise["sigma"]) ** 2
        return _KalmanDistribution(
            prediction, R, self.spec.n_samples, self.method, self.steady_after
        )

    def dims(self):
        """(time [ms],)."""
        return ["time"], {"time": self.spec.times}
