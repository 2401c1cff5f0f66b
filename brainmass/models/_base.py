"""The neural mass model contract."""

from __future__ import annotations

import abc
from typing import ClassVar

import brainunit as u
import jax.numpy as jnp

from .._custom_types import Coupling, Float, State
from .._params import ParameterModule, parameter_fields
from ..units import format_unit

__all__ = ["AbstractNeuralMass"]


class AbstractNeuralMass(ParameterModule):
    r"""A neural mass model: the local dynamics of one region, vectorised over regions.

    A model declares, as class variables:

    - `state_variables`: names of its state variables, in the order of the
      state array's first axis;
    - `coupled_variables`: the quantities a region sends along its fibres
      (state variables, or names in `derived_variables`); the network delivers
      one afferent coupling input per coupled variable;
    - `observable`: the default observed quantity (what `monitors.Raw` records);
    - `derived_variables`: names of quantities computed from the state (for
      example Jansen-Rit's pyramidal potential $y_1 - y_2$), see `derived`;
    - `initial_state`: a default initial value per state variable;
    - `time_unit`: the canonical time unit of its equations and parameters
      (milliseconds unless a model says otherwise);
    - `periodic_variables`: phase variables that fixed-step solvers wrap into
      $[0, 2\pi)$ after every step, so that long runs keep their precision in
      float32 (the dynamics must depend on them only through $2\pi$-periodic
      functions).

    and implements `dfun(state, coupling)`, the vector field. Parameters are
    declared with `brainmass._params.param` and broadcast per region: each is a
    scalar or has shape `(n_regions,)`.
    """

    state_variables: ClassVar[tuple[str, ...]]
    coupled_variables: ClassVar[tuple[str, ...]]
    observable: ClassVar[str]
    initial_state: ClassVar[dict[str, float]]
    derived_variables: ClassVar[tuple[str, ...]] = ()
    periodic_variables: ClassVar[tuple[str, ...]] = ()
    time_unit: ClassVar[u.Unit] = u.ms

    @abc.abstractmethod
    def dfun(self, state: State, coupling: Coupling) -> State:
        """The time derivative of the state.

        **Arguments:**

        - `state`: shape `(n_vars, n_regions)`, rows in `state_variables` order.
        - `coupling`: shape `(n_coupled, n_regions)`, the afferent input per
          coupled variable (already scaled by the coupling function).

        **Returns:** shape `(n_vars, n_regions)`, per unit of `time_unit`.
        """

    def derived(self, name: str, state: State) -> Float:
        """A derived quantity named in `derived_variables`, shape `(n_regions,)`."""
        raise KeyError(name)

    @property
    def n_vars(self) -> int:
        """Number of state variables."""
        return len(self.state_variables)

    @classmethod
    def variable_names(cls) -> tuple[str, ...]:
        """Every quantity that can be observed: state and derived variables."""
        return tuple(cls.state_variables) + tuple(cls.derived_variables)

    def quantity(self, state: State, name: str) -> Float:
        """A state or derived variable by name, shape `(n_regions,)`."""
        if name in self.state_variables:
            return state[self.state_variables.index(name)]
        if name in self.derived_variables:
            return self.derived(name, state)
        raise ValueError(
            f"variable: {type(self).__name__} has no variable {name!r}; "
            f"expected one of {self.variable_names()}."
        )

    def efferent(self, state: State) -> Coupling:
        """The coupled quantities a region sends, shape `(n_coupled, n_regions)`."""
        if all(v in self.state_variables for v in self.coupled_variables):
            idx = [self.state_variables.index(v) for v in self.coupled_variables]
            if idx == list(range(idx[0], idx[0] + len(idx))):
                return state[idx[0] : idx[0] + len(idx)]
            return state[jnp.asarray(idx)]
        return jnp.stack([self.quantity(state, v) for v in self.coupled_variables])

    def default_state(self, n_regions: int) -> State:
        """The default initial state, shape `(n_vars, n_regions)`."""
        values = [self.initial_state[v] for v in self.state_variables]
        return jnp.broadcast_to(jnp.asarray(values)[:, None], (self.n_vars, n_regions))

    @classmethod
    def describe(cls) -> str:
        """A one-screen summary: variables, parameters with units and defaults."""
        lines = [
            f"{cls.__name__} (time unit: {cls.time_unit})",
            f"  state variables:   {', '.join(cls.state_variables)}",
            f"  coupled variables: {', '.join(cls.coupled_variables)}",
            f"  observable:        {cls.observable}",
            "  parameters:",
        ]
        for f in parameter_fields(cls):
            unit_s = format_unit(f.metadata["unit"])
            unit_s = f" {unit_s}" if unit_s else ""
            lines.append(f"    {f.name} = {f.default}{unit_s}  ({f.metadata['doc']})")
        return "\n".join(lines)
