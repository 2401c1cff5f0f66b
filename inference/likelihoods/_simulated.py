r"""Likelihoods that compare a simulation with the data: for deterministic simulators.

A deterministic simulation (an evoked response, a relaxation from a known state) predicts
the signal itself, so Gaussian measurement noise on it is the likelihood. A stochastic
simulation does not: its signal is one draw of the process noise, and a likelihood given
one draw is not the parameters' likelihood. `BayesianModel` therefore refuses these
likelihoods on stochastic simulators unless `conditional_on_noise=True` asks for exactly
that (see `BayesianModel`); noise-driven data go to `StateSpace`, `Whittle`,
`Linearized("fc")` or simulation-based inference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import brainmass as bm

from ._base import AbstractLikelihood, Precomputed, SignalSpec, check_noise, check_signal

__all__ = ["TimeSeries", "FC", "Custom"]


@final
class TimeSeries(AbstractLikelihood):
    r"""Gaussian measurement noise on the monitor's signal of a deterministic simulation.

    $y_{tc} \sim \mathcal N(\hat y_{tc}(\theta), \sigma_c^2)$ independently, through any
    monitor (raw, temporal average, BOLD, EEG/MEG).

    **Arguments:**

    - `sigma`: measurement noise standard deviation in the signal's unit: a number, an
      array `(n_channels,)`, or a prior (e.g. `dist.HalfNormal(0.1)`;
      `.expand([n_channels])` for one per channel).

    Pointwise terms: `(time, channel)`.
    """

    needs_simulation: ClassVar[bool] = True
    sigma: Any
    signal: SignalSpec | None = eqx.field(static=True)

    def __init__(self, sigma: Any = 0.05):
        self.sigma = check_noise("TimeSeries sigma", sigma)
        self.signal = None

    def noise_parameters(self):
        """`{"sigma": ...}`."""
        return {"sigma": self.sigma}

    def prepare(self, data):
        """The signal itself, `(n_samples, n_channels)`."""
        return check_signal(data, self.spec, "TimeSeries")

    def predict(self, sim, result):
        """The simulated signal."""
        return result.signal

    def distribution(self, prediction, noise, *, data=None, theta=None):
        """Independent normals, batch shape `(n_samples, n_channels)`."""
        return dist.Normal(prediction, noise["sigma"])

    def dims(self):
        """(time [ms], channel)."""
        spec = self.spec
        return ["time", "channel"], {"time": spec.times, "channel": np.asarray(spec.channels)}


def fisher_z(fc_matrix: Any, max_abs: float) -> jax.Array:
    """The Fisher-z transformed upper triangle of an FC matrix, `(n_pairs,)`."""
    return bm.analysis.fisher_z(bm.analysis.upper_triangle(fc_matrix), max_abs=max_abs)


def pair_coords(channels: tuple[str, ...]) -> tuple[list[str], dict[str, Any]]:
    """ArviZ dims of an upper-triangle vector: `(pair,)` labelled 'a-b'."""
    i, j = np.triu_indices(len(channels), k=1)
    pairs = [f"{channels[a]}-{channels[b]}" for a, b in zip(i, j, strict=True)]
    return ["pair"], {"pair": np.array(pairs)}


@final
class FC(AbstractLikelihood):
    r"""Gaussian on the Fisher-z upper triangle of the FC of a deterministic simulation.

    $\operatorname{artanh} r^{obs}_{ij} \sim \mathcal N(\operatorname{artanh}
    \hat r_{ij}(\theta), \sigma^2)$ for $i < j$, independently. The independence and the
    single scatter $\sigma$ are assumptions: for noise-driven data use
    `Linearized("fc")`, whose covariance of the FC entries follows from the model.

    **Arguments:**

    - `sigma`: standard deviation on the Fisher-z scale (number or prior).
    - `inputs`: `"signal"` (the data is a time series `(n_samples, n_channels)`,
      default) or `"fc"` (the data is an FC matrix `(n_channels, n_channels)`).
    - `max_abs`: correlations are clipped to this magnitude before artanh.
    """

    needs_simulation: ClassVar[bool] = True
    sigma: Any
    inputs: str = eqx.field(static=True)
    max_abs: float = eqx.field(static=True)
    signal: SignalSpec | None = eqx.field(static=True)

    def __init__(self, sigma: Any = 0.1, *, inputs: str = "signal", max_abs: float = 0.999):
        if inputs not in ("signal", "fc"):
            raise ValueError(f"FC inputs: expected 'signal' or 'fc', got {inputs!r}.")
        if not 0 < max_abs < 1:
            raise ValueError(f"FC max_abs: expected a number in (0, 1), got {max_abs!r}.")
        self.sigma = check_noise("FC sigma", sigma)
        self.inputs = inputs
        self.max_abs = float(max_abs)
        self.signal = None

    def noise_parameters(self):
        """`{"sigma": ...}`."""
        return {"sigma": self.sigma}

    def prepare(self, data):
        """The Fisher-z FC upper triangle, `(n_pairs,)`."""
        spec = self.spec
        if self.inputs == "signal":
            return fisher_z(bm.analysis.fc(check_signal(data, spec, "FC")), self.max_abs)
        x = jnp.asarray(data)
        n = spec.n_channels
        if x.shape != (n, n):
            raise ValueError(f"data: FC(inputs='fc') expects an FC matrix {(n, n)}, got {x.shape}.")
        if not isinstance(x, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(x))):
            raise ValueError("data: the FC matrix has NaN or inf values.")
        return fisher_z(x, self.max_abs)

    def predict(self, sim, result):
        """The Fisher-z upper triangle of the simulated signal's FC."""
        return fisher_z(bm.analysis.fc(result.signal), self.max_abs)

    def distribution(self, prediction, noise, *, data=None, theta=None):
        """Independent normals over the pairs."""
        return dist.Normal(prediction, noise["sigma"])

    def dims(self):
        """(pair,), labelled 'a-b'."""
        return pair_coords(self.spec.channels)


@final
class Custom(AbstractLikelihood):
    """A user log-likelihood `fn(prediction, data, params) -> log p(data | params)`.

    **Arguments:**

    - `fn`: takes the simulated signal `(n_samples, n_channels)` (or what `predict`
      returns), the data as given, and `params` (`{path: value}` of the simulator's
      inferred parameters plus the noise parameters by name); returns a scalar or an
      array of pointwise terms (summed for the joint, kept for LOO). Must be traceable.
    - `noise`: `{name: number or prior}` extra observation parameters passed to `fn`.
    - `predict`: optional `(result) -> prediction` applied to the simulation's `Result`
      (default: its signal).
    - `sample`: optional `(key, prediction, params) -> data` drawing data, for posterior
      predictive checks.

    A custom likelihood simulates, so it follows the rule for stochastic simulators of
    `BayesianModel` (refused unless `conditional_on_noise=True`).
    """

    needs_simulation: ClassVar[bool] = True
    fn: Callable = eqx.field(static=True)
    noise: dict[str, Any]
    predict_fn: Callable | None = eqx.field(static=True)
    sample_fn: Callable | None = eqx.field(static=True)
    signal: SignalSpec | None = eqx.field(static=True)

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
        for name, value in (("predict", predict), ("sample", sample)):
            if value is not None and not callable(value):
                raise ValueError(f"Custom {name}: expected a callable or None, got {value!r}.")
        self.fn = fn
        self.noise = {k: check_noise(f"Custom noise[{k!r}]", v) for k, v in (noise or {}).items()}
        self.predict_fn = predict
        self.sample_fn = sample
        self.signal = None

    def noise_parameters(self):
        """The `noise` given."""
        return dict(self.noise)

    def prepare(self, data):
        """The data as given (as JAX arrays); NaN or inf values are refused."""
        for leaf in jax.tree.leaves(data):
            if not isinstance(leaf, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(leaf))):
                raise ValueError("data: Custom got NaN or inf values.")
        return jax.tree.map(jnp.asarray, data)

    def predict(self, sim, result):
        """`predict(result)`, or the simulated signal."""
        return result.signal if self.predict_fn is None else self.predict_fn(result)

    def fallback(self, prediction, observed):
        """Zeros of the prediction's shape (the data need not look like the prediction)."""
        return jax.tree.map(jnp.zeros_like, prediction)

    def distribution(self, prediction, noise, *, data=None, theta=None):
        """The user's log-likelihood terms wrapped as a distribution."""
        params = {**(theta or {}), **noise}
        values = self.fn(prediction, data, params)
        sampler = None
        if self.sample_fn is not None:
            sample_fn = self.sample_fn

            def sampler(key):
                return sample_fn(key, prediction, params)

        return Precomputed(values, sampler)

    def dims(self):
        """Unnamed: ArviZ numbers the dimensions."""
        return [], {}

    def token(self):
        """The functions by qualified name (their `repr` holds a memory address)."""

        def name(f):
            return None if f is None else f"{f.__module__}.{f.__qualname__}"

        return f"Custom({name(self.fn)}, {name(self.predict_fn)}, {name(self.sample_fn)})"
