"""`TrainResult` (what `Trainer.fit` returns) and `NonFiniteLossError`."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["NonFiniteLossError", "TrainResult"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `Trainer.fit` returns.

    **Attributes:**

    - `network`: the trained network (with early stopping: the best epoch's).
    - `history`: `{name: (n_epochs,) array}`: `epoch` (1-based), `train_loss` (mean over the
      epoch's batches, before each update), `train_<metric>`, `val_loss`, `val_<metric>`
      (after the epoch; with validation), `lr` (learning rate of the epoch's first step; NaN
      when unknown), `time` (seconds the epoch took).
    - `best_epoch`: the 1-based epoch of the lowest validation loss (training loss without
      validation); 0 when no epoch finished.
    - `info`: `n_train`, `n_val`, `steps_per_epoch`, `dropped_per_epoch`, `validation_indices`,
      `resumed_from` (epochs read from a checkpoint), `stopped_early`, `interrupted`,
      `wall_time`.
    """

    network: Any
    history: dict[str, np.ndarray]
    best_epoch: int
    info: dict[str, Any]

    @property
    def n_epochs(self) -> int:
        """Number of finished epochs."""
        return int(self.history["epoch"].shape[0])

    def plot(self) -> Any:
        """Learning curves: a loss panel and (with metrics) a metrics panel.

        **Returns:** the matplotlib Figure.
        """
        import matplotlib.pyplot as plt

        h = self.history
        names = sorted({k.split("_", 1)[1] for k in h if k.startswith(("train_", "val_"))})
        metrics = [m for m in names if m != "loss"]
        fig, axes = plt.subplots(1, 2 if metrics else 1, figsize=(9 if metrics else 5, 3.5))
        axes = np.atleast_1d(axes)
        for ax, panel in zip(axes, [["loss"], metrics], strict=False):
            for m in panel:
                for split in ("train", "val"):
                    if f"{split}_{m}" in h:
                        ax.plot(h["epoch"], h[f"{split}_{m}"], marker=".", label=f"{split} {m}")
            if self.best_epoch:
                ax.axvline(self.best_epoch, color="0.6", ls=":", label="best epoch")
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss" if panel == ["loss"] else "metric")
            ax.legend(fontsize="small")
        fig.tight_layout()
        return fig


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; `.result` holds the run up to the last good epoch."""

    def __init__(self, message: str, epoch: int, result: TrainResult):
        super().__init__(message)
        self.epoch = epoch
        self.result = result
