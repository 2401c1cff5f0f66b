"""What the diagnostics share: argument checks, keys, parameter labels, panel grids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _check_samples_truths(samples: Any, truths: Any) -> tuple[np.ndarray, np.ndarray]:
    samples = np.asarray(samples, dtype=float)
    truths = np.asarray(truths, dtype=float)
    if samples.ndim != 3:
        raise ValueError(
            f"samples: expected shape (n_sims, n_draws, d), got {samples.shape} "
            f"({samples.ndim}-D); one parameter still needs a trailing axis of 1."
        )
    n, m, d = samples.shape
    if truths.shape != (n, d):
        raise ValueError(
            f"truths: expected shape (n_sims, d) = {(n, d)} to match samples of shape "
            f"{samples.shape} (n_sims, n_draws, d), got {truths.shape}."
        )
    if n < 1 or m < 1 or d < 1:
        raise ValueError(f"samples: every axis needs at least one entry, got {samples.shape}.")
    for name, arr in (("samples", samples), ("truths", truths)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(f"{name}: {bad} values are not finite (NaN or inf).")
    return samples, truths


def _check_names(names: Sequence[str] | None, d: int, what: str = "parameters") -> list[str]:
    if names is None:
        return [f"theta[{i}]" for i in range(d)]
    names = [str(n) for n in names]
    if len(names) != d:
        raise ValueError(f"names: expected {d} labels (one per {what[:-1]}), got {len(names)}.")
    return names


def _axes_grid(ax: Any, n: int, width: float = 3.2, height: float = 2.6) -> np.ndarray:
    """`n` axes: new ones in a row-major grid, or the ones given (one per panel)."""
    import matplotlib.pyplot as plt

    if ax is None:
        ncols = min(n, 4)
        nrows = -(-n // ncols)
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False
        )
        axes = axes.ravel()
        for extra in axes[n:]:
            extra.set_visible(False)
        fig.set_layout_engine("constrained")
        return axes[:n]
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if axes.size != n:
        raise ValueError(f"ax: expected {n} axes (one per panel), got {axes.size}.")
    return axes
