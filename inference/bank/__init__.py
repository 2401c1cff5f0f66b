"""Simulation banks: parameters drawn from the priors, simulated, summarised, kept on disk.

A bank is the training set of simulation-based inference: `theta (n, d)`, the flat
parameter draws, and `x (n, *shape)`, the summary statistics of their simulations.
`simulate_bank` draws and simulates in vmapped chunks of one compiled size (chosen from
the compiled memory of a small chunk unless given), drops the simulations that failed
(non-finite output or summary; counted in `n_failed`), and with `checkpoint=` writes the bank
after every chunk (`brainmass.storage`: arrays and a JSON header, written atomically, safe
with concurrent writers): an interrupted run loses at most the chunk in flight, and calling
`simulate_bank` again with the same `checkpoint` continues it (with a larger `num_simulations`
it grows the bank). A bank is resumed only under the settings it was made with (its
`fingerprint`: priors, simulator, summary, params, proposal, key); any other is refused
naming what differs.

Chunk `c` draws its parameters and noise from `jax.random.fold_in(key, c)`: the same
key gives the same bank whatever the chunk size of a resumed run.
"""

from ._bank import SimulationBank as SimulationBank
from ._simulate import simulate_bank as simulate_bank
from ._space import PriorSpace as PriorSpace
from ._summary import Identity as Identity
from ._summary import _FunctionSummary as _FunctionSummary
from ._summary import as_summary as as_summary
from ._summary import signal_shape as signal_shape

__all__ = ["Identity", "PriorSpace", "SimulationBank", "as_summary", "simulate_bank"]
