"""Simulation-based calibration (Talts et al. 2018): ranks, their uniformity test, plots."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from brainmass.checks import check_int

from ._common import _axes_grid, _check_names, _check_samples_truths

_MAX_SBC_BINS = 20
_MIN_EXPECTED = 5.0


def sbc_ranks(samples: Any, truths: Any) -> np.ndarray:
    """Rank of each true parameter among the posterior draws of its simulation.

    The rank is the number of draws strictly below the truth (continuous
    parameters: ties have probability zero), so it lies in `[0, n_draws]` and is
    uniform on those `n_draws + 1` values when the posterior is exact and the
    draws are independent (thin autocorrelated MCMC draws first).

    **Arguments:**

    - `samples`: `(n_sims, n_draws, d)` posterior draws, one set per simulation.
    - `truths`: `(n_sims, d)` the parameters each simulation was run with.

    **Returns:**

    `(n_sims, d)` integer ranks in `[0, n_draws]`.
    """
    samples, truths = _check_samples_truths(samples, truths)
    return np.sum(samples < truths[:, None, :], axis=1).astype(np.int64)


def _default_bins(n_sims: int, n_draws: int) -> int:
    """Most bins (<= 20 and <= n_draws + 1) whose smallest expected count is >= 5."""
    bins = min(_MAX_SBC_BINS, n_draws + 1)
    while bins > 2 and _bin_probs(n_draws, bins).min() * n_sims < _MIN_EXPECTED:
        bins -= 1
    return max(bins, 1)


def _bin_index(ranks: np.ndarray, n_draws: int, bins: int) -> np.ndarray:
    """Bin of each rank: equal-width bins `[b (L+1)/B, (b+1) (L+1)/B)` of `[0, L+1)`."""
    return (np.asarray(ranks) * bins) // (n_draws + 1)


def _bin_probs(n_draws: int, bins: int) -> np.ndarray:
    """Probability of each bin under uniform ranks (bins hold whole rank values)."""
    counts = np.bincount(_bin_index(np.arange(n_draws + 1), n_draws, bins), minlength=bins)
    return counts / (n_draws + 1)


@dataclass
class SBCResult:
    """Simulation-based calibration ranks and their uniformity tests.

    **Attributes:**

    - `ranks`: `(n_sims, d)` integer ranks of the truths among `n_draws` draws.
    - `n_draws`: posterior draws per simulation (ranks lie in `[0, n_draws]`).
    - `names`: `d` parameter labels.
    - `bins`: the number of equal-width bins of the rank range `[0, n_draws + 1)`
      used by the chi-square test (`None` -> the most bins, at most 20 and at
      most `n_draws + 1`, whose smallest expected count is at least 5; a warning
      when even 2 bins cannot reach 5, i.e. fewer than 10 simulations).
    - `n_failed`: simulations dropped before ranking (non-finite data, see
      `calibrate`).

    A bin holds whole rank values; when `n_draws + 1` is not a multiple of
    `bins` the bins hold one value more or less, and the expected counts use
    the exact number of values in each bin.
    """

    ranks: np.ndarray
    n_draws: int
    names: list[str]
    bins: int | None = None
    n_failed: int = 0
    _pvalues: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.ranks = np.asarray(self.ranks)
        if self.ranks.ndim != 2:
            raise ValueError(f"ranks: expected shape (n_sims, d), got {self.ranks.shape}.")
        self.n_draws = check_int(self.n_draws, "n_draws", 1)
        if self.ranks.size and (self.ranks.min() < 0 or self.ranks.max() > self.n_draws):
            raise ValueError(f"ranks: expected integers in [0, n_draws={self.n_draws}].")
        self.names = _check_names(self.names, self.ranks.shape[1])
        if self.bins is None:
            self.bins = _default_bins(self.n_sims, self.n_draws)
        self.bins = check_int(self.bins, "bins", 2)
        if self.bins > self.n_draws + 1:
            raise ValueError(
                f"bins: expected at most n_draws + 1 = {self.n_draws + 1} bins, got {self.bins}."
            )
        if _bin_probs(self.n_draws, self.bins).min() * self.n_sims < _MIN_EXPECTED:
            warnings.warn(
                f"SBC: {self.n_sims} simulations in {self.bins} bins give expected counts "
                f"below {_MIN_EXPECTED:g}; the chi-square p-values are approximate.",
                stacklevel=3,
            )

    @property
    def n_sims(self) -> int:
        """Number of simulations ranked."""
        return int(self.ranks.shape[0])

    @property
    def pvalues(self) -> np.ndarray:
        """`(d,)` chi-square p-values of rank uniformity, one per parameter.

        Pearson's chi-square of the counts in `bins` equal-width bins of the rank
        range against their expected counts under uniform ranks, `bins - 1`
        degrees of freedom.
        """
        if self._pvalues is None:
            probs = _bin_probs(self.n_draws, self.bins)
            expected = probs * self.n_sims
            idx = _bin_index(self.ranks, self.n_draws, self.bins)
            counts = np.stack(
                [np.bincount(idx[:, j], minlength=self.bins) for j in range(idx.shape[1])]
            )
            chi2 = np.sum((counts - expected) ** 2 / expected, axis=1)
            self._pvalues = stats.chi2.sf(chi2, df=self.bins - 1)
        return self._pvalues

    def coverage(self, level: float) -> np.ndarray:
        """`(d,)`: the fraction of simulations whose truth is in the central `level` interval.

        A truth is inside when its normalised rank is in `[(1 - level) / 2, (1 + level) / 2]`;
        the fraction is about `level` when calibrated, below it when posteriors are too narrow.
        """
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"level: expected a number in (0, 1), got {level!r}.")
        u = self.ranks / self.n_draws
        return np.mean(np.abs(u - 0.5) <= float(level) / 2, axis=0)

    def passed(self, alpha: float = 0.01) -> bool:
        """Whether every parameter's p-value exceeds `alpha / d` (Bonferroni over parameters).

        **Arguments:**

        - `alpha`: family-wise significance level in `(0, 1)`.

        **Returns:**

        True when no parameter's rank histogram is significantly non-uniform.
        """
        if not 0 < alpha < 1:
            raise ValueError(f"alpha: expected a level in (0, 1), got {alpha!r}.")
        return bool(np.all(self.pvalues > alpha / len(self.names)))

    def plot(self, ax: Any = None, bins: int | None = None) -> np.ndarray:
        """Rank histogram per parameter with the 99 % band of uniform ranks.

        The grey band is the pointwise 0.5 %-99.5 % range of each bin's count,
        `Binomial(n_sims, p_bin)`, under uniform ranks.

        **Arguments:**

        - `ax`: `d` matplotlib axes to draw on, or None for a new figure.
        - `bins`: histogram bins (default: the test's `bins`).

        **Returns:**

        The `(d,)` array of axes.
        """
        bins = self.bins if bins is None else check_int(bins, "bins", 1)
        if bins > self.n_draws + 1:
            raise ValueError(f"bins: expected at most n_draws + 1 = {self.n_draws + 1}.")
        axes = _axes_grid(ax, len(self.names))
        probs = _bin_probs(self.n_draws, bins)
        edges = np.linspace(0, self.n_draws + 1, bins + 1)
        lo = stats.binom.ppf(0.005, self.n_sims, probs)
        hi = stats.binom.ppf(0.995, self.n_sims, probs)
        idx = _bin_index(self.ranks, self.n_draws, bins)
        for j, a in enumerate(axes):
            counts = np.bincount(idx[:, j], minlength=bins)
            a.fill_between(
                edges, np.append(lo, lo[-1]), np.append(hi, hi[-1]), step="post",
                color="0.85", label="99 % band (uniform)",
            )  # fmt: skip
            a.stairs(counts, edges, fill=True, alpha=0.7, color="C0")
            a.axhline(self.n_sims / bins, color="0.5", lw=0.8)
            a.set_xlim(0, self.n_draws + 1)
            a.set_title(f"{self.names[j]} (p = {self.pvalues[j]:.2g})", fontsize="medium")
            a.set_xlabel("rank")
        axes[0].set_ylabel("count")
        return axes

    def plot_ecdf(self, ax: Any = None, level: float = 0.99) -> Any:
        """ECDF of the fractional ranks minus the uniform CDF, one line per parameter.

        The grey band is pointwise (not simultaneous): at each rank value `k` the
        `level` central interval of `Binomial(n_sims, k / (n_draws + 1)) / n_sims`
        minus `k / (n_draws + 1)`; a calibrated curve leaves it at a few points by
        chance.

        **Arguments:**

        - `ax`: a matplotlib axes, or None for a new figure.
        - `level`: the band's pointwise probability in `(0, 1)`.

        **Returns:**

        The axes.
        """
        import matplotlib.pyplot as plt

        if not 0 < level < 1:
            raise ValueError(f"level: expected a probability in (0, 1), got {level!r}.")
        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")
        k = np.arange(self.n_draws + 2)
        z = k / (self.n_draws + 1)
        lo = stats.binom.ppf((1 - level) / 2, self.n_sims, z) / self.n_sims - z
        hi = stats.binom.ppf((1 + level) / 2, self.n_sims, z) / self.n_sims - z
        ax.fill_between(z, lo, hi, step="post", color="0.85", label=f"{level:.0%} pointwise")
        for j, name in enumerate(self.names):
            ecdf = np.mean(self.ranks[:, j][:, None] < k[None, :], axis=0)
            ax.step(z, ecdf - z, where="post", lw=1.2, label=name)
        ax.axhline(0.0, color="0.4", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("fractional rank")
        ax.set_ylabel("ECDF - uniform")
        ax.legend(fontsize="small")
        return ax

    def __repr__(self) -> str:
        width = max(9, *(len(n) for n in self.names))
        lines = [
            f"SBCResult({self.n_sims} simulations x {self.n_draws} draws, {self.bins} bins, "
            f"{self.n_failed} failed; passed(0.01) = {self.passed()})",
            f"  {'parameter':<{width}}  {'p-value':>9}  {'mean rank/L':>11}",
        ]
        for j, name in enumerate(self.names):
            mean = self.ranks[:, j].mean() / self.n_draws
            lines.append(f"  {name:<{width}}  {self.pvalues[j]:>9.3g}  {mean:>11.3f}")
        return "\n".join(lines)


def sbc(
    samples: Any, truths: Any, names: Sequence[str] | None = None, *, bins: int | None = None
) -> SBCResult:
    """Simulation-based calibration from posterior draws and the truths they should cover.

    **Arguments:**

    - `samples`: `(n_sims, n_draws, d)` posterior draws, one set per simulation.
    - `truths`: `(n_sims, d)` the parameters each simulation was run with
      (drawn from the prior the posterior was built with).
    - `names`: `d` parameter labels (default `theta[i]`).
    - `bins`: chi-square bins (default: see `SBCResult`).

    **Returns:**

    An `SBCResult` (ranks, p-values, `passed`, plots).
    """
    samples = np.asarray(samples)
    ranks = sbc_ranks(samples, truths)
    return SBCResult(ranks=ranks, n_draws=samples.shape[1], names=names, bins=bins)
