"""A network: a neural mass model on a connectome, with coupling, delays and noise."""

from __future__ import annotations

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import coupling as _coupling
from ._custom_types import Float, State
from ._params import broadcast_to_regions, check_domain, parameter_fields
from .connectome import Connectome
from .coupling import AbstractCoupling
from .models._base import AbstractNeuralMass
from .noise import AbstractNoise
from .units import SPEED, to_canonical

__all__ = ["Network"]

DelayMode = Literal["rounded", "interpolated"]


class Network(eqx.Module):
    r"""A neural mass model on every region of a connectome.

    The network's vector field for region $i$ is the model's `dfun` with the
    afferent coupling
    $c_i = \mathrm{post}(e_i, \sum_j W_{ij} f(e_j(t - \tau_{ij})))$ (see
    `brainmass.coupling`), with conduction delays
    $\tau_{ij} = L_{ij} / v$ from tract lengths $L_{ij}$ (mm) and the
    conduction speed $v$ (m/s, which is mm/ms).

    **Arguments:**

    - `model`: an `AbstractNeuralMass`; its parameters are scalars or one value
      per region.
    - `connectome`: the `Connectome` (weights as given: normalise beforehand
      with `Connectome.normalized` if wanted). None (default): a single region
      (labelled `"region"`), uncoupled: `Network(bm.models.JansenRit())` is one
      neural mass, with no connectome to make up and no coupling parameter.
    - `coupling`: an `AbstractCoupling`; default `coupling.Linear()`, and
      `coupling.Uncoupled()` (no parameters) for a single region.
    - `speed`: conduction speed, a brainunit quantity or a number in m/s;
      `None` (default) means no delays.
    - `noise`: an `AbstractNoise`, or `None` for a deterministic network.
    - `delays`: `"rounded"` (default): each delay is rounded to a whole number of
      time steps; `"interpolated"`: delayed states are interpolated linearly
      between steps, so the speed and tract lengths are differentiable.
    """

    model: AbstractNeuralMass
    connectome: Connectome
    coupling: AbstractCoupling
    speed: Float | None
    noise: AbstractNoise | None
    delays: DelayMode = eqx.field(static=True)

    def __init__(
        self,
        model: AbstractNeuralMass,
        connectome: Connectome | None = None,
        coupling: AbstractCoupling | None = None,
        speed: Any = None,
        noise: AbstractNoise | None = None,
        delays: DelayMode = "rounded",
    ):
        if not isinstance(model, AbstractNeuralMass):
            raise ValueError(f"model: expected a brainmass neural mass model, got {model!r}.")
        if connectome is None:  # one region: nothing to couple to, nothing to delay
            if coupling is not None and not isinstance(coupling, _coupling.Uncoupled):
                raise ValueError(
                    f"coupling: a single region (connectome=None) has nothing to couple to; "
                    f"leave coupling out (got {coupling!r})."
                )
            if speed is not None:
                raise ValueError(
                    f"speed: a single region (connectome=None) has no tracts to delay; leave "
                    f"speed out (got {speed!r})."
                )
            connectome = Connectome(np.zeros((1, 1)), np.zeros((1, 1)), ("region",))
            coupling = _coupling.Uncoupled()
        if not isinstance(connectome, Connectome):
            raise ValueError(f"connectome: expected a brainmass.Connectome, got {connectome!r}.")
        if coupling is None:
            coupling = _coupling.Linear()
        if not isinstance(coupling, AbstractCoupling):
            raise ValueError(f"coupling: expected a brainmass.coupling module, got {coupling!r}.")
        if noise is not None and not isinstance(noise, AbstractNoise):
            raise ValueError(f"noise: expected a brainmass.noise module or None, got {noise!r}.")
        if delays not in ("rounded", "interpolated"):
            raise ValueError(f"delays: expected 'rounded' or 'interpolated', got {delays!r}.")
        self.model = model
        self.connectome = connectome
        self.coupling = coupling
        self.noise = noise
        self.delays = delays
        if speed is not None:
            speed = to_canonical(speed, SPEED, "speed")
            if jnp.ndim(speed) != 0:
                raise ValueError(f"speed: expected a scalar, got shape {jnp.shape(speed)}.")
            if not isinstance(speed, jax.core.Tracer) and not float(speed) > 0:
                raise ValueError(f"speed: expected a conduction speed > 0 m/s, got {float(speed)}.")
        self.speed = speed

    def __check_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check shapes and domains of every parameter; raises ValueError naming it."""
        n = self.n_regions
        for prefix, module in (("model", self.model), ("coupling", self.coupling)):
            for f in parameter_fields(module):
                value = getattr(module, f.name)
                broadcast_to_regions(value, n, f"{prefix}.{f.name}")
                check_domain(value, f.metadata["domain"], f"{prefix}.{f.name}")
        if self.noise is not None:
            rows = len(self.noise_variables())
            for f in parameter_fields(self.noise):
                value = jnp.asarray(getattr(self.noise, f.name))
                ok = value.ndim == 0 or value.shape in ((n,), (1,), (rows, 1), (rows, n))
                if f.name == "tau":
                    ok = value.shape in ((), (1,), (n,))
                if not ok:
                    raise ValueError(
                        f"noise.{f.name}: expected a scalar, one value per region ({n},) or per "
                        f"noisy variable ({rows}, 1) / ({rows}, {n}), got shape {value.shape}."
                    )
                check_domain(value, f.metadata["domain"], f"noise.{f.name}")
        if self.speed is not None and not isinstance(self.speed, jax.core.Tracer):
            if not float(self.speed) > 0:
                raise ValueError(f"speed: expected a conduction speed > 0 m/s, got {self.speed}.")

    # ---------------------------------------------------------------- structure
    @property
    def n_regions(self) -> int:
        """Number of regions."""
        return self.connectome.n_regions

    @property
    def n_vars(self) -> int:
        """Number of state variables per region."""
        return self.model.n_vars

    @property
    def n_coupled(self) -> int:
        """Number of coupled variables per region."""
        return len(self.model.coupled_variables)

    @property
    def n_features(self) -> int:
        """Number of delayed feature rows per region (see `brainmass.coupling`)."""
        return self.coupling.n_features(self.n_coupled)

    @property
    def has_delays(self) -> bool:
        """Whether conduction delays are modelled (a speed was given)."""
        return self.speed is not None

    def noise_variables(self) -> tuple[str, ...]:
        """The state variables that receive noise."""
        if self.noise is None:
            return ()
        names = self.noise.variables or self.model.state_variables
        unknown = [v for v in names if v not in self.model.state_variables]
        if unknown:
            raise ValueError(
                f"noise.variables: {type(self.model).__name__} has no state variable(s) "
                f"{unknown}; expected names from {self.model.state_variables}."
            )
        return tuple(names)

    # ---------------------------------------------------------------- numerics
    def delays_ms(self) -> Float:
        r"""Conduction delays $\tau_{ij} = L_{ij}/v$ in ms, shape `(n_regions, n_regions)`."""
        lengths = self.connectome.tract_lengths
        if self.speed is None:
            return jnp.zeros_like(lengths)
        return lengths / self.speed

    def strength(self) -> Float:
        r"""Row sums of the weights $\sum_j W_{ij}$, shape `(n_regions,)`."""
        return jnp.sum(self.connectome.weights, axis=1)

    def sigma(self) -> State:
        """Noise intensity per state variable and region, `(n_vars, n_regions)` (0: no noise)."""
        n, nv = self.n_regions, self.n_vars
        if self.noise is None:
            return jnp.zeros((nv, n))
        names = self.noise_variables()
        rows = self.noise.sigma_full(self.noise.sigma, len(names), n)
        idx = np.array([self.model.state_variables.index(v) for v in names])
        return jnp.zeros((nv, n), dtype=rows.dtype).at[idx].set(rows)

    def features(self, state: State) -> Float:
        """Coupling features of the state, `(n_features, n_regions)`."""
        return self.coupling.features(self.model.efferent(state))

    def drift(
        self,
        state: State,
        delayed: Float | None,
        inst_weights: Float | None,
        strength: Float,
    ) -> State:
        """The network's vector field (without noise), `(n_vars, n_regions)` per model time unit.

        **Arguments:**

        - `state`: `(n_vars, n_regions)`.
        - `delayed`: the weighted sum of delayed features read from the buffer,
          `(n_features, n_regions)`, or None.
        - `inst_weights`: `(n_regions, n_regions)` weights of the edges that act
          instantaneously (all of them without delays), or None.
        - `strength`: row sums of the weights, `(n_regions,)`.
        """
        efferent = self.model.efferent(state)
        summed = delayed
        if inst_weights is not None:
            inst = self.coupling.features(efferent) @ inst_weights.T
            summed = inst if summed is None else summed + inst
        coupling = self.coupling.combine(efferent, summed, strength)
        return self.model.dfun(state, coupling)
