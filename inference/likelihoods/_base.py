r"""The likelihood contract: what a likelihood declares, what it receives, what it returns.

A likelihood is an immutable equinox module, abstract (`AbstractLikelihood`) or final
(every concrete likelihood). `BayesianModel` uses it in four steps:

1. `bind(sim) -> likelihood`: a *new* likelihood that knows the simulator's output
   (a `SignalSpec`: samples, channels, labels, sampling period, sample times) and has
   checked that it can describe it (monitor, noise, delays). The given one is unchanged.
2. `prepare(data) -> prepared`: the data as compared (the signal itself, its Fisher-z FC,
   its segment Fourier transforms...), validated (shape, finite values: a ValueError that
   names `data`). Called once per dataset, outside the sampler.
3. a prediction at the parameters $\theta$, inside the sampler (pure, traced):
   `predict(sim, result)` from a simulation `result` when `needs_simulation` is True, or
   `predict_without_simulation(sim) -> (prediction, ok)` from the simulator alone (its
   linearisation) when it is False. `ok` False marks a failed simulation or an unstable
   linearisation; the model then adds `-inf` and hands the likelihood `fallback(...)`
   instead, so that gradients stay finite.
4. `distribution(prediction, noise, *, data, theta) -> numpyro Distribution` of the
   prepared data: its `log_prob(prepared)` gives the pointwise log-likelihood (the terms
   ArviZ's LOO sums over; their shape is `dims()`), and its `sample(key)` draws prepared
   data for posterior predictive checks. `noise` holds the values of the observation-noise
   parameters (`noise_parameters()`: numbers, or NumPyro priors sampled as sites
   `"likelihood.<name>"`).

What a likelihood declares: `needs_simulation` (a class variable), its observation-noise
parameters, and `dims()` (the names and coordinates of the pointwise terms). Everything
else is configuration, fixed when it is built. `tests/test_likelihood_contract.py` checks
every likelihood of the registry against this contract (shapes, jit, vmap, finite
gradients, refusal of bad data), the way flowjax tests every bijection.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import Any, Self

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

import brainmass as bm

from .._modules import evolve as evolve  # re-exported: the likelihoods' copy-with-changes

__all__ = ["AbstractLikelihood", "SignalSpec"]


@dataclasses.dataclass(frozen=True)
class SignalSpec:
    """What a bound likelihood knows of the simulator's output (hashable, static).

    - `n_samples`, `n_channels`: the signal's shape `(n_samples, n_channels)`.
    - `channels`: the channel labels (regions or sensors).
    - `period`: the sampling period, ms.
    - `first_time`: the time of the first retained sample, ms (`period` unless a
      transient is dropped).
    """

    n_samples: int
    n_channels: int
    channels: tuple[str, ...]
    period: float
    first_time: float

    @classmethod
    def of(cls, sim: bm.Simulator) -> SignalSpec:
        """The spec of `sim`'s signal (shape by `jax.eval_shape`, nothing is simulated)."""
        result = jax.eval_shape(lambda: sim.run(jax.random.key(0), check=False))
        n_samples, n_channels = (int(s) for s in result.signal.shape)
        times = np.asarray(sim.time)[-n_samples:]
        channels = tuple(str(c) for c in sim.monitor.channels(sim.network))
        return cls(n_samples, n_channels, channels, float(sim.period), float(times[0]))

    @property
    def shape(self) -> tuple[int, int]:
        """`(n_samples, n_channels)`."""
        return (self.n_samples, self.n_channels)

    @property
    def times(self) -> np.ndarray:
        """Sample times in ms, `(n_samples,)`."""
        return self.first_time + self.period * np.arange(self.n_samples)


def check_no_initial(sim: bm.Simulator, name: str) -> None:
    """A ValueError when `sim`'s monitor records a t = 0 sample, which `name` does not model.

    The likelihoods of noise-driven series (StateSpace, Whittle, Linearized) describe the
    samples at `period, 2 period, ...` of a stationary or filtered process; the t = 0 row
    of a monitor with `initial=True` is a point value of the initial state (not an
    average over a period), a different random variable.
    """
    if sim.records_initial:
        raise ValueError(
            f"likelihood: {name} models the monitor's samples at period, 2 period, ...; this "
            f"monitor also records the initial state at t = 0 ({type(sim.monitor).__name__}"
            "(initial=True)), which it does not model. Build the simulator with initial=False "
            "and drop the first row of the data (data[1:])."
        )


def check_noise(name: str, value: Any) -> Any:
    """An observation-noise parameter: a positive number/array, or a prior on positive values."""
    from ..priors import support_bounds

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


def check_signal(data: Any, spec: SignalSpec, what: str) -> jax.Array:
    """The data as the monitor's signal `(n_samples, n_channels)`, or a ValueError naming `data`."""
    x = jnp.asarray(data)
    if x.shape != spec.shape:
        raise ValueError(
            f"data: {what} expects the monitor's signal, shape (n_samples, n_channels) = "
            f"{spec.shape} for this simulator, got {x.shape}."
        )
    if not isinstance(data, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(data))):
        raise ValueError(
            f"data: {what} got NaN or inf values; remove or interpolate them (the StateSpace "
            "likelihood accepts missing samples as NaN)."
        )
    return x


class Precomputed(dist.Distribution):
    """A 'distribution' whose log_prob is a given array (user log-likelihoods)."""

    support = constraints.real

    def __init__(self, log_values: Any, sampler: Any = None):
        self.log_values = jnp.asarray(log_values)
        self._sampler = sampler
        super().__init__(batch_shape=jnp.shape(self.log_values))

    def log_prob(self, value: Any) -> Any:
        """The precomputed log-likelihood terms (the value is the data they were computed for)."""
        return self.log_values

    def sample(self, key, sample_shape=()):
        """Draws from the user's sampler; NotImplementedError without one."""
        if self._sampler is None:
            raise NotImplementedError(
                "likelihoods.Custom cannot draw data: pass sample= to Custom for posterior "
                "predictive checks."
            )
        return self._sampler(key)


class AbstractLikelihood(eqx.Module):
    """The contract every likelihood follows (see the module docstring).

    Concrete likelihoods are final equinox modules holding their configuration and their
    observation-noise parameters; `signal` is None until `bind` returns a bound copy.
    """

    needs_simulation: eqx.AbstractClassVar[bool]
    signal: eqx.AbstractVar[SignalSpec | None]

    # ------------------------------------------------------------------ declared
    @abc.abstractmethod
    def noise_parameters(self) -> dict[str, Any]:
        """`{name: number or prior}`: the observation-noise parameters (priors are inferred)."""

    @abc.abstractmethod
    def dims(self) -> tuple[list[str], dict[str, Any]]:
        """Names of the pointwise terms' dimensions and their coordinates (for ArviZ)."""

    # ------------------------------------------------------------------ binding
    def bind(self, sim: bm.Simulator) -> Self:
        """A new likelihood bound to `sim`'s output (its `SignalSpec`); checks `sim` first."""
        self.check_simulator(sim)
        return evolve(self, signal=SignalSpec.of(sim))

    def check_simulator(self, sim: bm.Simulator) -> None:
        """Raise a ValueError if this likelihood cannot describe `sim` (default: accept)."""

    @property
    def spec(self) -> SignalSpec:
        """The bound `SignalSpec` (a ValueError before `bind`)."""
        if self.signal is None:
            raise ValueError(
                f"{type(self).__name__} is not bound to a simulator: use it through "
                "inference.BayesianModel, or call likelihood = likelihood.bind(sim) first."
            )
        return self.signal

    # ------------------------------------------------------------------ data and prediction
    @abc.abstractmethod
    def prepare(self, data: Any) -> Any:
        """The data as compared, validated against the bound signal (ValueErrors name `data`)."""

    def predict(self, sim: bm.Simulator, result: Any) -> Any:
        """The counterpart of the prepared data from a simulation `result` (simulating ones)."""
        raise NotImplementedError(f"{type(self).__name__} predicts without simulating.")

    def predict_without_simulation(self, sim: bm.Simulator) -> tuple[Any, Any]:
        """`(prediction, ok)` from the simulator alone (likelihoods that do not simulate)."""
        raise NotImplementedError(f"{type(self).__name__} needs a simulation.")

    def fallback(self, prediction: Any, observed: Any) -> Any:
        """A stand-in prediction where `ok` is False, on which `distribution` stays finite.

        Default: the prepared data (or zeros of the prediction's shape when there are none),
        for predictions with the prepared data's structure; likelihoods whose prediction is
        something else (model matrices) override it.
        """
        if observed is None:
            return jax.tree.map(jnp.zeros_like, prediction)
        return observed

    @abc.abstractmethod
    def distribution(
        self, prediction: Any, noise: Mapping[str, Any], *, data: Any = None, theta: Any = None
    ) -> dist.Distribution:
        """The distribution of the prepared data given the prediction and the noise values.

        `data` is the data as given (None for prior predictive draws), `theta` the
        inferred simulator parameters `{path: value}`.
        """

    # ------------------------------------------------------------------ identity
    def token(self) -> str:
        """A string of the settings that change the likelihood's value (for fingerprints).

        The class and every static field except the bound signal; noise priors are
        fingerprinted separately by the caller.
        """
        parts = [type(self).__name__]
        for f in dataclasses.fields(self):
            if f.metadata.get("static") and f.name != "signal":
                parts.append(f"{f.name}={getattr(self, f.name)!r}")
        return "(".join(parts[:1]) + "(" + ", ".join(parts[1:]) + ")"
