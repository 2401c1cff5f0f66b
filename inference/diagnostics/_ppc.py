"""Posterior predictive checks in the data's own summary statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._common import _axes_grid, _check_names


@dataclass
class PPCResult:
    """Posterior predictive check of summary statistics.

    **Attributes:**

    - `observed`: `(k,)` statistics of the observed data.
    - `predicted`: `(n_draws, k)` the same statistics of posterior predictive
      simulations.
    - `names`: `k` statistic labels.
    - `pvalues`: `(k,)` two-sided predictive p-values,
      `min(1, 2 min(P(pred <= obs), P(pred >= obs)))`.
    - `zscores`: `(k,)` `(obs - mean(pred)) / std(pred)` (inf where the
      predictions do not vary and differ from the observation, 0 where they equal it).
    """

    observed: np.ndarray
    predicted: np.ndarray
    names: list[str]
    pvalues: np.ndarray
    zscores: np.ndarray

    def passed(self, alpha: float = 0.01) -> bool:
        """Whether every p-value exceeds `alpha / k` (Bonferroni over statistics).

        **Arguments:**

        - `alpha`: family-wise significance level in `(0, 1)`.

        **Returns:**

        True when no statistic is significantly outside its predictive distribution.
        """
        if not 0 < alpha < 1:
            raise ValueError(f"alpha: expected a level in (0, 1), got {alpha!r}.")
        return bool(np.all(self.pvalues > alpha / len(self.names)))

    def plot(self, ax: Any = None, bins: int = 30) -> np.ndarray:
        """Histogram of each statistic's predictive draws with the observed value marked.

        **Arguments:**

        - `ax`: `k` matplotlib axes, or None for a new figure.
        - `bins`: histogram bins.

        **Returns:**

        The `(k,)` array of axes.
        """
        axes = _axes_grid(ax, len(self.names))
        for j, a in enumerate(axes):
            a.hist(self.predicted[:, j], bins=bins, color="C0", alpha=0.7)
            a.axvline(self.observed[j], color="C3", lw=2, label="observed")
            a.set_title(f"{self.names[j]} (p = {self.pvalues[j]:.2g})", fontsize="medium")
        axes[0].set_ylabel("predictive draws")
        axes[0].legend(fontsize="small")
        return axes

    def __repr__(self) -> str:
        width = max(9, *(len(n) for n in self.names))
        lines = [
            f"PPCResult({len(self.names)} statistics, {self.predicted.shape[0]} draws; "
            f"passed(0.01) = {self.passed()})",
            f"  {'statistic':<{width}}  {'observed':>10}  {'p-value':>9}  {'z':>7}",
        ]
        for j, name in enumerate(self.names):
            lines.append(
                f"  {name:<{width}}  {self.observed[j]:>10.4g}  {self.pvalues[j]:>9.3g}  "
                f"{self.zscores[j]:>7.2f}"
            )
        return "\n".join(lines)


def ppc(observed: Any, predicted: Any, names: Sequence[str] | None = None) -> PPCResult:
    """Posterior predictive check: where the observed statistics fall in their predictive law.

    Compute the statistics (e.g. FC strength, spectral peak, BOLD variance) of
    the observed data and of data simulated at posterior draws; this function
    compares them per statistic.

    **Arguments:**

    - `observed`: `(k,)` observed statistics (a scalar for one).
    - `predicted`: `(n_draws, k)` statistics of posterior predictive
      simulations (`(n_draws,)` for one).
    - `names`: `k` statistic labels (default `stat[i]`).

    **Returns:**

    A `PPCResult` with two-sided predictive p-values
    `min(1, 2 min(P(pred <= obs), P(pred >= obs)))` and z-scores.
    """
    observed = np.asarray(observed, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if observed.ndim == 0:
        observed = observed[None]
        if predicted.ndim == 1:
            predicted = predicted[:, None]
    if observed.ndim != 1:
        raise ValueError(f"observed: expected shape (k,), got {observed.shape}.")
    k = observed.shape[0]
    if predicted.ndim != 2 or predicted.shape[1] != k or predicted.shape[0] < 1:
        raise ValueError(
            f"predicted: expected shape (n_draws, k) = (n_draws, {k}) to match observed of "
            f"shape {observed.shape}, got {predicted.shape}."
        )
    for name, arr in (("observed", observed), ("predicted", predicted)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: some values are not finite (NaN or inf).")
    if names is None:
        names = [f"stat[{i}]" for i in range(k)]
    names = _check_names(names, k, what="statistics")
    below = np.mean(predicted <= observed, axis=0)
    above = np.mean(predicted >= observed, axis=0)
    pvalues = np.minimum(1.0, 2.0 * np.minimum(below, above))
    mean, std = predicted.mean(axis=0), predicted.std(axis=0, ddof=1 if len(predicted) > 1 else 0)
    diff = observed - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, diff / np.where(std > 0, std, 1.0), np.sign(diff) * np.inf)
    z = np.where((std == 0) & (diff == 0), 0.0, z)
    return PPCResult(
        observed=observed, predicted=predicted, names=names, pvalues=pvalues, zscores=z
    )
