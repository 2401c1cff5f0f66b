"""TARP (Lemos et al. 2023): expected coverage of random-reference credible regions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from brainmass.checks import check_int, check_key

from ._common import _check_samples_truths

# Elements of the (chunk, n_draws, d) distance work array in `tarp` (bounds its memory).
_TARP_BLOCK = 4_000_000


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
    key: Any,
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
    - `key`: a `jax.random` key (references, bootstrap).
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
    num_alpha = check_int(num_alpha, "num_alpha", 2)
    bootstrap = check_int(bootstrap, "bootstrap", 0)
    if not 0 < level < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}.")
    if distance not in ("euclidean", "manhattan"):
        raise ValueError(f"distance: expected 'euclidean' or 'manhattan', got {distance!r}.")
    key = check_key(key)
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
