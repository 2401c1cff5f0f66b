"""FitResult: what a fit returns, with save/load and a loss-curve plot."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import storage

__all__ = ["FitResult"]

_KIND = "brainmass.FitResult"


@dataclasses.dataclass(frozen=True)
class FitResult:
    """The outcome of `Fitter.fit`.

    **Attributes:**

    - `params`: the best parameters found, `{path: value}` in the parameters'
      canonical units (numpy arrays: scalars or one value per region), ready
      for `Simulator.with_params`.
    - `units`: `{path: unit name}` of `params` (`""` for dimensionless).
    - `loss`: the best loss (inf when every evaluation failed).
    - `method`: the optimiser (`"adam"`, `"CMA"`, `"L-BFGS-B"`, ...).
    - `loss_history`: `(n_iterations,)`, the lowest loss evaluated in each
      iteration (a gradient step over all starts, a nevergrad generation, a
      SciPy evaluation batch); inf where all failed.
    - `best_history`: `(n_iterations,)`, the best loss so far.
    - `simulations_history`: `(n_iterations,)`, simulations run up to and
      including each iteration.
    - `start_losses`: `(num_starts,)`, the best loss of each start (gradient
      methods and L-BFGS-B with several starts; one entry otherwise). A start
      that early stopping cut off before it ran (L-BFGS-B) has inf.
    - `n_simulations`: forward simulations run (a gradient evaluation counts one).
    - `n_gradient_evaluations`: gradients computed (0 for gradient-free methods).
    - `n_failed`: evaluations that produced NaN or inf (counted as an infinite
      loss; the fit went on).
    - `wall_time`: seconds the fit took (compilation included).
    - `stopped_early`: True when early stopping ended the fit.
    - `time_history`: `(n_iterations,)`, seconds from the start of the fit to
      the end of each iteration (compilation included, as a user waits for it).
    """

    params: dict[str, np.ndarray]
    units: dict[str, str]
    loss: float
    method: str
    loss_history: np.ndarray
    best_history: np.ndarray
    simulations_history: np.ndarray
    start_losses: np.ndarray
    n_simulations: int
    n_gradient_evaluations: int
    n_failed: int
    wall_time: float
    stopped_early: bool = False
    time_history: np.ndarray | None = None

    @property
    def n_iterations(self) -> int:
        """Number of iterations recorded in the histories."""
        return int(self.loss_history.shape[0])

    def simulations_to_reach(self, loss: float) -> int | None:
        """Simulations run until the best loss first fell to `loss` or below (None: never)."""
        hit = np.flatnonzero(self.best_history <= loss)
        return None if hit.size == 0 else int(self.simulations_history[hit[0]])

    def time_to_reach(self, loss: float) -> float | None:
        """Seconds until the best loss first fell to `loss` or below (None: never, or no times)."""
        if self.time_history is None:
            return None
        hit = np.flatnonzero(self.best_history <= loss)
        return None if hit.size == 0 else float(self.time_history[hit[0]])

    def plot(self, ax: Any = None, *, x: str = "simulations", label: str | None = None) -> Any:
        """Plot the best loss so far against simulations (or `x="iterations"` or `"time"`).

        **Returns:** the matplotlib Axes (a new figure when `ax` is None).
        """
        if x not in ("simulations", "iterations", "time"):
            raise ValueError(f"x: expected 'simulations', 'iterations' or 'time', got {x!r}.")
        if x == "time" and self.time_history is None:
            raise ValueError("x: this result has no time history (saved by an older version).")
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots()
        xs = {
            "simulations": self.simulations_history,
            "iterations": np.arange(1, self.n_iterations + 1),
            "time": self.time_history,
        }[x]
        ax.plot(xs, self.best_history, label=label or self.method)
        ax.set_xlabel("time [s]" if x == "time" else x)
        ax.set_ylabel("best loss")
        return ax

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result to a `.npz` file (arrays plus a JSON header; no pickle).

        The write is atomic (`brainmass.storage`): an interrupted save leaves the
        previous file. `.npz` is appended to `path` when missing; returns the path.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta = {
            "units": self.units,
            "loss": self.loss,
            "method": self.method,
            "n_simulations": self.n_simulations,
            "n_gradient_evaluations": self.n_gradient_evaluations,
            "n_failed": self.n_failed,
            "wall_time": self.wall_time,
            "stopped_early": self.stopped_early,
            "paths": list(self.params),
        }
        arrays = {
            "loss_history": self.loss_history,
            "best_history": self.best_history,
            "simulations_history": self.simulations_history,
            "start_losses": self.start_losses,
            **({} if self.time_history is None else {"time_history": self.time_history}),
            **{f"param:{p}": np.asarray(v) for p, v in self.params.items()},
        }
        return storage.save(path, _KIND, arrays, header=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FitResult:
        """Read a result written by `save`.

        **Raises:** `FileNotFoundError`; `brainmass.storage.StorageError` (a
        `ValueError`) naming the file when it is damaged or not a `FitResult` file.
        """
        record = storage.load(path, _KIND)
        meta, data = record.header, record.arrays
        params = {p: data[f"param:{p}"] for p in meta["paths"]}
        return cls(
            params=params,
            units=meta["units"],
            loss=float(meta["loss"]),
            method=meta["method"],
            loss_history=data["loss_history"],
            best_history=data["best_history"],
            simulations_history=data["simulations_history"],
            start_losses=data["start_losses"],
            n_simulations=int(meta["n_simulations"]),
            n_gradient_evaluations=int(meta["n_gradient_evaluations"]),
            n_failed=int(meta["n_failed"]),
            wall_time=float(meta["wall_time"]),
            stopped_early=bool(meta["stopped_early"]),
            time_history=data.get("time_history"),
        )

    def __repr__(self) -> str:
        def show(p, v):
            v = np.asarray(v)
            unit = f" {self.units.get(p, '')}".rstrip()
            if v.ndim == 0:
                return f"{p} = {float(v):.6g}{unit}"
            return f"{p} = [{v.size} values, mean {float(v.mean()):.4g}]{unit}"

        params = "; ".join(show(p, v) for p, v in self.params.items())
        return (
            f"FitResult({self.method}: loss {self.loss:.6g}; {params}; "
            f"{self.n_simulations} simulations, {self.n_gradient_evaluations} gradients, "
            f"{self.n_failed} failed, {self.wall_time:.3g} s)"
        )
