"""Neural likelihood estimation: `NLE`, and its flow as a likelihood (`Learned`)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

from ..bank import signal_shape
from ..likelihoods import AbstractLikelihood, SignalSpec
from ._estimator import AbstractFlowEstimator
from ._flows import _flowjax


@final
class NLE(AbstractFlowEstimator):
    r"""Neural likelihood estimation: a conditional flow $q(x \mid \theta)$ of the summaries.

    The same flows, trained on the same banks as `NPE`, but as the density of the
    (standardised) summary features given the parameters (Papamakarios, Sterratt &
    Murray 2019). `likelihood()` turns it into an `inference.likelihoods` likelihood, so
    `BayesianModel` (NUTS, MAP, Laplace) and `CohortModel` (group and subject parameters)
    run on a learned likelihood of a stochastic simulator whose exact likelihood is
    intractable. Unlike NPE it does not depend on the prior it was trained under (within
    the region the bank covers), so one NLE serves many priors and hierarchical models.

    Arguments as `NPE`, except `embedding` (none: the flow models the flat features
    themselves). A summary must be flat (`(k,)` features). An immutable equinox module
    (see `AbstractFlowEstimator`): `train`, `train_on` and `load` return new NLEs.
    """

    kind: ClassVar[str] = "nle"

    def __check_init__(self):
        if self.embedding is not None:
            raise ValueError(
                "embedding: an NLE models the summary features themselves; learned embeddings "
                "belong to NPE."
            )

    def train(self, key: Any, num_simulations: int, **kwargs: Any) -> NLE:
        """Simulate a bank from the priors and train on it; returns the trained NLE.

        A new estimator (`nle = nle.train(key, n)`); this one is left as it was. The
        arguments are those of `NPE.train` with one round: `key`, `num_simulations`,
        `checkpoint` (keep the bank in this `.npz`, resumed if it exists), `chunk_size`,
        `progress`, and `train_on`'s (`max_epochs`, `patience`, ...).
        """
        return self._simulate_and_train(key, num_simulations, **kwargs)

    def _flow_shapes(self, raw_shape):
        return int(math.prod(raw_shape)), (self.space.d,)

    def _roles(self, zs, xs):
        return xs.reshape(xs.shape[0], -1), zs

    @_flowjax
    def log_likelihood(self, features: Any, theta: Any) -> jax.Array:
        """The learned log density of standardised features given parameters.

        **Arguments:**

        - `features`: standardised features `(..., k)`, as `NLE.features(observed)` gives.
        - `theta`: `{path: value}` or flat `(..., d)` parameters in canonical units.

        **Returns:** `(...)`, the log density of the (raw, unstandardised) features: the
        standardisation's Jacobian is included, so values compare with exact likelihoods.
        """
        self._need_trained()
        space, norm = self.space, self._norm
        flat = space.join(theta) if isinstance(theta, Mapping) else jnp.asarray(theta, float)
        u = (space.unconstrain(flat) - norm["z_mean"]) / norm["z_std"]
        x = jnp.asarray(features)
        lp = self.flow.log_prob(x, u) - jnp.sum(jnp.log(norm["x_std"]))
        return jnp.where(jnp.isfinite(lp), lp, -jnp.inf)

    def likelihood(self) -> Learned:
        """The trained flow as a likelihood for `BayesianModel` / `CohortModel`."""
        self._need_trained()
        return Learned(self)


@final
class Learned(AbstractLikelihood):
    """A likelihood learned by an `NLE`: the data's summaries under the trained flow.

    The data are the observed signal `(n_samples, n_channels)` (its summaries are
    computed once, in `prepare`); the parameters the model infers must be the NLE's
    (same paths and shapes). No simulation runs inside the model (`needs_simulation` is
    False), so NUTS costs a flow evaluation per gradient. The pointwise log-likelihood is
    one value per observation (the features' joint density), and posterior predictive
    draws are summary features (standardised), not signals.
    """

    needs_simulation: ClassVar[bool] = False
    nle: NLE  # a child: the flow's weights are leaves of the likelihood (and of the model)
    signal: SignalSpec | None = eqx.field(static=True)

    def __init__(self, nle: NLE):
        if not isinstance(nle, NLE):
            raise ValueError(f"nle: expected a trained inference.NLE, got {nle!r}.")
        self.nle = nle
        self.signal = None

    def noise_parameters(self):
        """None: the flow is the whole observation model."""
        return {}

    def check_simulator(self, sim):
        """Check that the simulator gives the signals the NLE's summary expects."""
        expected = self.nle._signal_shape()
        if expected is not None and tuple(signal_shape(sim)) != tuple(expected):
            raise ValueError(
                f"likelihood: the NLE was trained on signals of shape {expected}, this "
                f"simulator gives {signal_shape(sim)}."
            )

    def prepare(self, data):
        """The observed signal's standardised summary features `(k,)`."""
        x = jnp.asarray(data)
        if x.shape != self.spec.shape:
            raise ValueError(
                f"data: expected the monitor's signal of shape {self.spec.shape}, got {x.shape}."
            )
        return self.nle.features(x)

    def predict_without_simulation(self, sim):
        """Nothing to predict (the flow takes the parameters): zeros of the features' shape."""
        k = int(math.prod(self.nle._raw_shape()))
        return jnp.zeros((k,)), jnp.asarray(True)

    def distribution(self, prediction, noise, *, data=None, theta=None):
        """The flow at the model's parameters, as a NumPyro distribution over the features."""
        missing = [p for p in self.nle.space.paths if p not in theta]
        if missing:
            raise ValueError(
                f"likelihood: the NLE needs the parameters {list(self.nle.space.paths)}; the "
                f"model does not infer {missing}."
            )
        values = {p: theta[p] for p in self.nle.space.paths}
        return _FlowDistribution(self.nle, self.nle.space.join(values))

    def dims(self):
        """One dimension: the summary feature."""
        k = int(math.prod(self.nle._raw_shape()))
        return ["feature"], {"feature": np.arange(k)}

    def token(self):
        """The NLE's parameters and a hash of its trained flow's weights (for fingerprints)."""
        h = hashlib.sha256()
        for leaf in jax.tree.leaves(eqx.filter(self.nle.flow, eqx.is_array)):
            h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
        return f"Learned({list(self.nle.space.paths)}, flow {h.hexdigest()[:16]})"


class _FlowDistribution(dist.Distribution):
    """The NLE's flow at fixed parameters, as a NumPyro distribution over standardised features."""

    support = constraints.real_vector

    def __init__(self, nle: NLE, theta_flat: Any):
        self.nle = nle
        self.theta = jnp.asarray(theta_flat)
        k = int(math.prod(nle._raw_shape()))
        super().__init__(batch_shape=self.theta.shape[:-1], event_shape=(k,))

    def log_prob(self, value):
        """The learned log likelihood of standardised features `value` `(..., k)`."""
        return self.nle.log_likelihood(value, self.theta)

    @_flowjax
    def sample(self, key, sample_shape=()):
        """Standardised features drawn from the flow at these parameters."""
        norm, space = self.nle._norm, self.nle.space
        u = (space.unconstrain(self.theta) - norm["z_mean"]) / norm["z_std"]
        return self.nle.flow.sample(key, tuple(sample_shape), condition=u)
