"""`NeuralMassSeqNetwork`: any brainmass neural mass model as a trainable sequence network."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Float
from .._params import broadcast_to_regions, parameter_fields
from ..checks import check_int
from ..models._base import AbstractNeuralMass
from ..units import to_float

__all__ = ["NeuralMassSeqNetwork"]


class NeuralMassSeqNetwork(eqx.Module):
    r"""Any brainmass neural mass model as a trainable sequence network.

    `n_units` regions of `model` are coupled by a trainable recurrent weight matrix and driven
    by the inputs through the model's first coupled variable $q$ (e.g. $E$ of `WilsonCowan`):

    $$
    c = W_\mathrm{rec}\, q(s) + W_\mathrm{in}\, u_t, \qquad
    s \leftarrow s + \Delta t\, f(s, c) \quad (\texttt{substeps} \text{ times per sample}),
    \qquad y_t = W_\mathrm{out}\, o(s) + b_\mathrm{out}
    $$

    with $f$ the model's `dfun(state, coupling)` (the first coupled input gets $c$, any
    others zero), $u_t$ held constant over the `substeps` Euler steps of sample $t$, $o$ the
    model's `observable` (or a derived variable) and $s_0$ the model's `initial_state`.
    The model's parameters broadcast per unit (scalars or shape `(n_units,)`). Phase
    variables (`periodic_variables`) are not wrapped: sequences are short.

    Every inexact array leaf trains by default, the model's parameters included. Training
    does not keep them in their domains (a time constant may turn negative under a large
    learning rate); to train the weights only, pass `trainable=net.filter_spec(model=False)`
    to `Trainer`.

    **Arguments:**

    - `key`: a `jax.random` key for the initial weights.
    - `model`: a neural mass model (`bm.models.WilsonCowan()`, ...).
    - `n_inputs`, `n_units`, `n_outputs`: widths of input, network and readout.
    - `dt`: Euler step, in the model's time unit (ms for most models) or a quantity.
    - `substeps`: Euler steps per input sample (default 1).
    - `observable`: the quantity read out; default the model's `observable`.
    - `input_scale`, `recurrent_scale`: standard deviations of the initial weights times
      $\sqrt{\text{fan-in}}$ (defaults 1.0 and 0.5).
    """

    model: AbstractNeuralMass
    w_in: Float
    w_rec: Float
    w_out: Float
    b_out: Float
    dt: float = eqx.field(static=True)
    substeps: int = eqx.field(static=True)
    observable: str = eqx.field(static=True)

    def __init__(
        self,
        key: Any,
        model: AbstractNeuralMass,
        *,
        n_inputs: int,
        n_units: int,
        n_outputs: int,
        dt: Any,
        substeps: int = 1,
        observable: str | None = None,
        input_scale: float = 1.0,
        recurrent_scale: float = 0.5,
    ):
        if not isinstance(model, AbstractNeuralMass):
            raise ValueError(f"model: expected a brainmass neural mass model, got {model!r}.")
        n_inputs, n_units, n_outputs, substeps = (
            check_int(v, name, 1)
            for name, v in (
                ("n_inputs", n_inputs),
                ("n_units", n_units),
                ("n_outputs", n_outputs),
                ("substeps", substeps),
            )
        )
        dt = to_float(dt, type(model).time_unit, "dt")
        if not dt > 0:
            raise ValueError(f"dt: expected a step > 0 (in {type(model).time_unit}), got {dt}.")
        observable = type(model).observable if observable is None else observable
        if observable not in model.variable_names():
            raise ValueError(
                f"observable: {type(model).__name__} has no variable {observable!r}; expected "
                f"one of {model.variable_names()}."
            )
        for f in parameter_fields(model):
            broadcast_to_regions(getattr(model, f.name), n_units, f"model.{f.name}")
        k_in, k_rec, k_out = jax.random.split(key, 3)
        self.model = model
        self.w_in = input_scale * jax.random.normal(k_in, (n_units, n_inputs)) / np.sqrt(n_inputs)
        self.w_rec = (
            recurrent_scale * jax.random.normal(k_rec, (n_units, n_units)) / np.sqrt(n_units)
        )
        self.w_out = jax.random.normal(k_out, (n_outputs, n_units)) / np.sqrt(n_units)
        self.b_out = jnp.zeros((n_outputs,))
        self.dt = dt
        self.substeps = substeps
        self.observable = observable

    @property
    def n_inputs(self) -> int:
        """Width of the input."""
        return self.w_in.shape[1]

    @property
    def n_units(self) -> int:
        """Number of units (regions of the model)."""
        return self.w_rec.shape[0]

    @property
    def n_outputs(self) -> int:
        """Width of the readout."""
        return self.w_out.shape[0]

    def filter_spec(self, *, model: bool = True) -> Any:
        """A `trainable` filter for `Trainer`: the weights, and the model's parameters if `model`.

        **Returns:** a pytree of bools with the structure of this network.
        """
        spec = jax.tree.map(eqx.is_inexact_array, self)
        return eqx.tree_at(lambda n: n.model, spec, jax.tree.map(lambda _: model, self.model))

    def __call__(self, inputs: Float, *, key: Any = None) -> Any:
        """Run the network over an input sequence (deterministic: `key` is unused).

        **Arguments:**

        - `inputs`: shape `(T, n_inputs)`, one sample per `substeps * dt`.
        - `key`: ignored (the contract of sequence networks).

        **Returns:** the readout, shape `(T, n_outputs)`.
        """
        if jnp.ndim(inputs) != 2 or jnp.shape(inputs)[1] != self.n_inputs:
            raise ValueError(
                f"inputs: expected shape (T, n_inputs={self.n_inputs}), got {jnp.shape(inputs)}."
            )
        model = self.model
        n_coupled = len(type(model).coupled_variables)

        def euler(state, drive_in):
            drive = self.w_rec @ model.efferent(state)[0] + drive_in
            coupling = jnp.zeros((n_coupled, self.n_units), state.dtype).at[0].set(drive)
            return state + self.dt * model.dfun(state, coupling), None

        def sample(state, u_t):
            drive_in = self.w_in @ u_t
            if self.substeps == 1:
                state, _ = euler(state, drive_in)
            else:
                step = lambda s, _: euler(s, drive_in)  # noqa: E731
                state, _ = jax.lax.scan(step, state, length=self.substeps)
            return state, self.w_out @ model.quantity(state, self.observable) + self.b_out

        state0 = model.default_state(self.n_units).astype(self.w_rec.dtype)
        _, outputs = jax.lax.scan(sample, state0, jnp.asarray(inputs, self.w_rec.dtype))
        return outputs
