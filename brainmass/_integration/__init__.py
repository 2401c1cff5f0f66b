"""Time integration of a `Simulator`: the scan loop, conduction delays, batching, diffrax.

- `_integrate`: `simulate_fixed_step`, the `lax.scan` over blocks of steps with the
  delay ring buffer; `TRACES` counts its compilations.
- `_delays`: `DelayPlan` / `plan_delays`, the static block and buffer sizes and the
  delay tables.
- `_batching`: `simulate_batchable`, the `jax.vmap` rule that runs a batch of delayed
  simulations as lanes of one buffer.
- `_diffrax`: `simulate_diffrax`, delay-free deterministic networks with diffrax.
"""

from ._batching import simulate_batchable as simulate_batchable
from ._delays import DelayPlan as DelayPlan
from ._delays import plan_delays as plan_delays
from ._diffrax import simulate_diffrax as simulate_diffrax
from ._integrate import TRACES as TRACES
from ._integrate import simulate_fixed_step as simulate_fixed_step

__all__ = [
    "DelayPlan",
    "TRACES",
    "plan_delays",
    "simulate_batchable",
    "simulate_diffrax",
    "simulate_fixed_step",
]
