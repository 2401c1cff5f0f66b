"""Calibration diagnostics for posterior estimators: SBC, TARP and posterior predictive checks.

The functions work on plain arrays and plain callables, so they serve neural
posterior estimators (flowjax flows) and NUTS posteriors (`Posterior.samples`,
flattened over chains and draws) alike.

- `sbc_ranks`, `sbc` / `SBCResult`: simulation-based calibration (Talts et al.
  2018, "Validating Bayesian inference algorithms with simulation-based
  calibration", arXiv:1804.06788): the rank of each true parameter among the
  posterior draws of its simulation is uniform on `{0, ..., n_draws}` when the
  posterior is exact.
- `tarp` / `TARPResult`: the expected coverage probability of random-reference
  credible regions (Lemos, Coogan, Hezaveh and Perreault-Levasseur 2023,
  "Sampling-based accuracy testing of posterior estimators for general
  inference", ICML, arXiv:2302.03026): on the diagonal when the posterior is
  exact.
- `calibrate`: draws truths from the prior, simulates, draws from the posterior
  and returns both diagnostics.
- `ppc` / `PPCResult`: posterior predictive checks in the data's own statistics.

    samples = post.samples["coupling.G"].reshape(-1)       # one site of a NUTS run
    res_sbc, res_tarp = calibrate(key, prior_sample, simulate, posterior_samples, 500)
    res_sbc.passed(), res_tarp.atc
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from scipy import stats

from brainmass.progress import progress_bar

__all__ = [
    "PPCResult",
    "SBCResult",
    "TARPResult",
    "calibrate",
    "ppc",
    "sbc",
    "sbc_ranks",
    "tarp",
]

_MAX_SBC_BINS = 20
_MIN_EXPECTED = 5.0
# Elements of the (chunk, n_draws, d) distance work array in `tarp` (bounds its memory).
_TARP_BLOCK = 4_000_000


# ---------------------------------------------------------------------------- helpers
def _check_int(name: str, value: Any, low: int) -> int:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}.")
    return int(value)


def _as_key(key_or_seed: Any, name: str = "key") -> jax.Array:
    if isinstance(key_or_seed, numbers.Integral) and not isinstance(key_or_seed, bool):
        return jax.random.key(int(key_or_seed))
    if isinstance(key_or_seed, jax.Array):
        return key_or_seed
    raise ValueError(
        f"{name}: expected a JAX PRNG key or an integer seed, got {type(key_or_seed).__name__}."
    )


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


# ---------------------------------------------------------------------------- SBC
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
        self.n_draws = _check_int("n_draws", self.n_draws, 1)
        if self.ranks.size and (self.ranks.min() < 0 or self.ranks.max() > self.n_draws):
            raise ValueError(f"ranks: expected integers in [0, n_draws={self.n_draws}].")
        self.names = _check_names(self.names, self.ranks.shape[1])
        if self.bins is None:
            self.bins = _default_bins(self.n_sims, self.n_draws)
        self.bins = _check_int("bins", self.bins, 2)
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
        bins = self.bins if bins is None else _check_int("bins", bins, 1)
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


# ---------------------------------------------------------------------------- TARP
@dataclass
class TARPResult:
    """TARP expected coverage probability (Lemos et al. 2023).

    **Attributes:**

    - `alpha`: `(num_alpha,)` credibility levels, `linspace(0, 1, num_alpha)`.
    - `ecp`: `(num_alpha,)` expected coverage probability at each level.
    - `f`: `(n_sims,)` coverage fraction of each simulation (fraction of draws
      closer to the reference than the truth).
    - `n_draws`: posterior draws per simulation.
    - `lower`, `upper`: `(num_alpha,)` bootstrap band of `ecp` (None without
      bootstrap).
    - `level`: the bootstrap band's probability.
    """

    alpha: np.ndarray
    ecp: np.ndarray
    f: np.ndarray
    n_draws: int
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    level: float = 0.95

    @property
    def n_sims(self) -> int:
        """Number of simulations."""
        return int(self.f.shape[0])

    @property
    def atc(self) -> float:
        """Signed area between the ECP curve and the diagonal above alpha = 1/2.

        `ATC = integral_{1/2}^{1} (ECP(alpha) - alpha) d alpha` (trapezoid rule on
        `alpha`); the half-curve "area to curve" of the paper's figure 2 as
        `sbi.diagnostics.check_tarp` reports it, here as an integral (independent
        of `num_alpha`) rather than a sum over grid points. Near 0 when
        calibrated; negative: overconfident (under-dispersed); positive:
        underconfident (over-dispersed). A bias with references spread around
        the truths deviates on both halves and may leave the ATC near 0: read
        it with `max_deviation`. Over the whole `[0, 1]` the signed area would
        be `1/2 - mean(f)`, blind to dispersion errors.
        """
        keep = self.alpha >= 0.5
        return float(np.trapezoid(self.ecp[keep] - self.alpha[keep], self.alpha[keep]))

    @property
    def max_deviation(self) -> float:
        """Largest `|ECP(alpha) - alpha|` over the grid."""
        return float(np.max(np.abs(self.ecp - self.alpha)))

    def plot(self, ax: Any = None) -> Any:
        """ECP against credibility level with the diagonal (and the bootstrap band if any).

        **Arguments:**

        - `ax`: a matplotlib axes, or None for a new figure.

        **Returns:**

        The axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(3.6, 3.4), layout="constrained")
        ax.plot([0, 1], [0, 1], color="0.4", ls="--", lw=0.8, label="calibrated")
        if self.lower is not None and self.upper is not None:
            ax.fill_between(
                self.alpha, self.lower, self.upper, color="C0", alpha=0.25,
                label=f"{self.level:.0%} bootstrap",
            )  # fmt: skip
        ax.plot(self.alpha, self.ecp, color="C0", lw=1.5, label="TARP")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("credibility level")
        ax.set_ylabel("expected coverage")
        ax.set_title(f"ATC = {self.atc:+.3f}", fontsize="medium")
        ax.legend(fontsize="small", loc="upper left")
        return ax

    def __repr__(self) -> str:
        band = "" if self.lower is None else f", {self.level:.0%} bootstrap band"
        return (
            f"TARPResult({self.n_sims} simulations x {self.n_draws} draws, "
            f"{self.alpha.size} levels{band}: ATC = {self.atc:+.4f}, "
            f"max |ECP - alpha| = {self.max_deviation:.4f})"
        )


def _ecp(f: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Fraction of `f` strictly below each `alpha`."""
    return np.searchsorted(np.sort(f), alpha, side="left") / f.shape[0]


def tarp(
    samples: Any,
    truths: Any,
    key_or_seed: Any,
    references: Any = None,
    num_alpha: int = 101,
    distance: str = "euclidean",
    norm: bool = True,
    *,
    bootstrap: int = 0,
    level: float = 0.95,
) -> TARPResult:
    """Expected coverage probability of random-reference credible regions (TARP).

    Lemos, Coogan, Hezaveh and Perreault-Levasseur (2023), "Sampling-based
    accuracy testing of posterior estimators for general inference", ICML
    (arXiv:2302.03026), algorithm 2: for each simulation `i` draw a reference
    point `r_i`; the credible region of level `alpha` is the ball around `r_i`
    holding a fraction `alpha` of the posterior draws; the truth lies inside it
    when `f_i < alpha`, with

        f_i = (1 / n_draws) * #{j : dist(theta_ij, r_i) < dist(theta*_i, r_i)},
        ECP(alpha) = (1 / n_sims) * #{i : f_i < alpha}.

    An exact posterior gives `ECP(alpha) = alpha` for every reference
    distribution (up to the draws' discreteness: `f` takes `n_draws + 1` values,
    so `ECP(alpha) = ceil(n_draws alpha) / (n_draws + 1)`, at most
    `1 / (n_draws + 1)` below the diagonal); the paper proves the converse
    (theorem 3) for references whose distribution depends on the data.
    Here the references are drawn uniformly in the bounding box of the
    (normalised) truths, which does not depend on the data: like SBC, a passed
    test is necessary, not sufficient.

    **Arguments:**

    - `samples`: `(n_sims, n_draws, d)` posterior draws.
    - `truths`: `(n_sims, d)` true parameters.
    - `key_or_seed`: JAX PRNG key or integer seed (references, bootstrap).
    - `references`: `(n_sims, d)` reference points in the parameters' units
      (normalised like the parameters when `norm`), or None to draw them
      uniformly in the box `[min(truths), max(truths)]` per parameter.
    - `num_alpha`: number of credibility levels in `[0, 1]` (>= 2).
    - `distance`: `"euclidean"` or `"manhattan"`.
    - `norm`: standardise every parameter by the truths' mean and standard
      deviation first (a parameter with zero spread is only centred), so that
      distances do not depend on the parameters' units.
    - `bootstrap`: number of bootstrap resamplings of the simulations (with
      their references) for a band on ECP; 0 for none.
    - `level`: probability of the bootstrap band (equal-tailed quantiles).

    **Returns:**

    A `TARPResult` (`alpha`, `ecp`, `atc`, `max_deviation`, `plot`).
    """
    samples, truths = _check_samples_truths(samples, truths)
    n, m, d = samples.shape
    num_alpha = _check_int("num_alpha", num_alpha, 2)
    bootstrap = _check_int("bootstrap", bootstrap, 0)
    if not 0 < level < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}.")
    if distance not in ("euclidean", "manhattan"):
        raise ValueError(f"distance: expected 'euclidean' or 'manhattan', got {distance!r}.")
    key = _as_key(key_or_seed, "key_or_seed")
    k_ref, k_boot = jax.random.split(key)

    if norm:
        mean = truths.mean(axis=0)
        std = truths.std(axis=0)
        std = np.where(std > 0, std, 1.0)
    else:
        mean, std = np.zeros(d), np.ones(d)
    samples = (samples - mean) / std
    truths = (truths - mean) / std
    if references is None:
        lo, hi = truths.min(axis=0), truths.max(axis=0)
        u = np.asarray(jax.random.uniform(k_ref, (n, d)), dtype=float)
        references = lo + u * (hi - lo)
    else:
        references = np.asarray(references, dtype=float)
        if references.shape != (n, d):
            raise ValueError(
                f"references: expected shape (n_sims, d) = {(n, d)} like truths, "
                f"got {references.shape}."
            )
        if not np.all(np.isfinite(references)):
            raise ValueError("references: some values are not finite (NaN or inf).")
        references = (references - mean) / std

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        diff = a - b
        if distance == "euclidean":
            return np.sqrt(np.sum(diff * diff, axis=-1))
        return np.sum(np.abs(diff), axis=-1)

    f = np.empty(n)
    step = max(1, _TARP_BLOCK // (m * d))
    for s in range(0, n, step):
        sl = slice(s, s + step)
        ref = references[sl, None, :]
        d_draws = dist(samples[sl], ref)  # (chunk, m)
        d_truth = dist(truths[sl, None, :], ref)  # (chunk, 1)
        f[sl] = np.mean(d_draws < d_truth, axis=1)

    alpha = np.linspace(0.0, 1.0, num_alpha)
    ecp = _ecp(f, alpha)
    lower = upper = None
    if bootstrap:
        idx = np.asarray(jax.random.randint(k_boot, (bootstrap, n), 0, n))
        boot = np.stack([_ecp(f[row], alpha) for row in idx])
        lower, upper = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return TARPResult(alpha=alpha, ecp=ecp, f=f, n_draws=m, lower=lower, upper=upper, level=level)


# ---------------------------------------------------------------------------- driver
def calibrate(
    key: Any,
    prior_sample: Callable[[Any, int], Any],
    simulate: Callable[[Any, Any], Any],
    posterior_samples: Callable[[Any, Any, int], Any],
    num_simulations: int,
    num_draws: int = 100,
    names: Sequence[str] | None = None,
    chunk_size: int = 100,
    progress: bool = True,
    *,
    tarp_options: Mapping[str, Any] | None = None,
) -> tuple[SBCResult, TARPResult]:
    """SBC and TARP of a posterior estimator: prior -> simulate -> posterior draws.

    Keys (so that a run can be reproduced by hand):
    `k_prior, k_sim, k_post, k_tarp = jax.random.split(key, 4)`; the truths are
    `prior_sample(k_prior, num_simulations)` in one call; chunk `c` (simulations
    `c * chunk_size` to `(c + 1) * chunk_size`) is simulated with
    `jax.random.fold_in(k_sim, c)` and its posterior drawn with
    `jax.random.fold_in(k_post, c)`; `tarp` gets `k_tarp`.

    Simulations whose data has any non-finite value are dropped (counted in
    `SBCResult.n_failed`); so that the posterior sees a fixed batch shape, their
    rows are replaced by a finite row of the same chunk before the call and
    their draws discarded.

    **Arguments:**

    - `key`: JAX PRNG key or integer seed.
    - `prior_sample`: `(key, n) -> theta (n, d)`.
    - `simulate`: `(key, theta (n, d)) -> x (n, ...)`.
    - `posterior_samples`: `(key, x (n, ...), num_draws) -> (n, num_draws, d)`.
    - `num_simulations`: number of (truth, data) pairs (>= 1).
    - `num_draws`: posterior draws per simulation (>= 1).
    - `names`: `d` parameter labels.
    - `chunk_size`: simulations per `simulate` / `posterior_samples` call.
    - `progress`: show a progress bar (simulations).
    - `tarp_options`: keyword arguments for `tarp` (`num_alpha`, `distance`,
      `norm`, `bootstrap`, `references`, ...).

    **Returns:**

    `(SBCResult, TARPResult)` over the simulations that did not fail.
    """
    num_simulations = _check_int("num_simulations", num_simulations, 1)
    num_draws = _check_int("num_draws", num_draws, 1)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    k_prior, k_sim, k_post, k_tarp = jax.random.split(_as_key(key), 4)

    theta = np.asarray(prior_sample(k_prior, num_simulations), dtype=float)
    if theta.ndim != 2 or theta.shape[0] != num_simulations:
        raise ValueError(
            f"prior_sample: expected an array of shape (num_simulations, d) = "
            f"({num_simulations}, d), got {theta.shape}."
        )
    d = theta.shape[1]
    names = _check_names(names, d)

    kept_theta, kept_draws = [], []
    with progress_bar(
        total=num_simulations, desc="calibrate", unit="sim", disable=not progress
    ) as bar:
        for c, start in enumerate(range(0, num_simulations, chunk_size)):
            th = theta[start : start + chunk_size]
            nc = th.shape[0]
            x = np.asarray(simulate(jax.random.fold_in(k_sim, c), th))
            if x.ndim < 1 or x.shape[0] != nc:
                raise ValueError(
                    f"simulate: expected data with leading axis {nc} (one row per theta), "
                    f"got shape {x.shape}."
                )
            ok = np.all(np.isfinite(x.reshape(nc, -1)), axis=1)
            if ok.any():
                if not ok.all():
                    x = x.copy()
                    x[~ok] = x[np.argmax(ok)]
                draws = np.asarray(
                    posterior_samples(jax.random.fold_in(k_post, c), x, num_draws), dtype=float
                )
                if draws.shape != (nc, num_draws, d):
                    raise ValueError(
                        f"posterior_samples: expected shape (n, num_draws, d) = "
                        f"{(nc, num_draws, d)}, got {draws.shape}."
                    )
                kept_theta.append(th[ok])
                kept_draws.append(draws[ok])
            bar.update(nc)

    if not kept_theta:
        raise ValueError(f"simulate: all {num_simulations} simulations returned non-finite data.")
    truths = np.concatenate(kept_theta)
    samples = np.concatenate(kept_draws)
    n_failed = num_simulations - truths.shape[0]
    result = sbc(samples, truths, names)
    result.n_failed = n_failed
    return result, tarp(samples, truths, k_tarp, **dict(tarp_options or {}))


# ---------------------------------------------------------------------------- PPC
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
