"""Parameter sweeps (`brainmass.sweep`), one concept per module.

- `_run`: `sweep` itself: the grid, chunking, vmapped evaluation, progress, resuming.
- `_result`: `SweepResult` and the labelled xarray Dataset it wraps.
- `_store`: `_Checkpoint`, the on-disk checkpoint of an interrupted sweep.

The package is private (`_sweep`) so that it does not shadow the public function
`brainmass.sweep`.
"""

from ._result import SweepResult as SweepResult
from ._run import sweep as sweep

__all__ = ["sweep", "SweepResult"]
