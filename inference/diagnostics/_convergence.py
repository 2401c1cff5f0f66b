"""Convergence of MCMC draws: R-hat, bulk and tail ESS, divergences and E-BFMI, by name.

The thresholds are the current recommendations:

- R-hat (rank-normalised, split; Vehtari, Gelman, Simpson, Carpenter & Buerkner 2021,
  "Rank-normalization, folding, and localization: an improved R-hat", Bayesian Analysis
  16:667) at most 1.01;
- bulk and tail ESS at least 100 per chain (the same paper: below that R-hat and the
  ESS estimates themselves are unreliable);
- no divergent transition after warmup (Betancourt 2017, "A conceptual introduction to
  Hamiltonian Monte Carlo", arXiv:1701.02434);
- E-BFMI at least 0.3 in every chain (Betancourt 2016, "Diagnosing suboptimal cotangent
  disintegrations in Hamiltonian Monte Carlo", arXiv:1604.00695).

The statistics are ArviZ's (`arviz.rhat`, `arviz.ess`, `arviz.bfmi`) on the draws'
arrays; this module names what fails and says what to do.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["Convergence", "ConvergenceWarning", "convergence"]

RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
BFMI_MIN = 0.3


class ConvergenceWarning(UserWarning):
    """MCMC draws that fail a convergence check (R-hat, ESS, divergences, E-BFMI)."""


class MultimodalWarning(ConvergenceWarning):
    """A posterior with separated modes that the chains do not all explore."""


@dataclasses.dataclass(frozen=True)
class Convergence:
    """The convergence checks of one posterior's draws.

    **Attributes:**

    - `rhat`, `ess_bulk`, `ess_tail`: `{name: value}` per scalar entry of every
      parameter (`"model.a[3]"` for entry 3 of a per-region parameter).
    - `n_divergent`: divergent transitions after warmup (None without the statistic).
    - `bfmi`: E-BFMI per chain, `(n_chains,)` (None without an `energy` statistic).
    - `n_chains`, `n_draws`: the draws' layout.
    - `problems`: one sentence per failed check, naming the parameters; empty when
      every check passes.
    """

    rhat: dict[str, float]
    ess_bulk: dict[str, float]
    ess_tail: dict[str, float]
    n_divergent: int | None
    bfmi: np.ndarray | None
    n_chains: int
    n_draws: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether every check passes."""
        return not self.problems

    def __repr__(self) -> str:
        worst = max(self.rhat.values(), default=math.nan)
        low = min(self.ess_bulk.values(), default=math.nan)
        state = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        return (
            f"Convergence({state}: max R-hat {worst:.3f}, min bulk ESS {low:.0f} of "
            f"{self.n_chains} x {self.n_draws} draws)"
        )


def convergence(
    posterior: Any,
    *,
    rhat_max: float = RHAT_MAX,
    ess_per_chain: float = ESS_PER_CHAIN,
    bfmi_min: float = BFMI_MIN,
) -> Convergence:
    """Check a posterior's MCMC draws: R-hat, bulk/tail ESS, divergences, E-BFMI.

    **Arguments:**

    - `posterior`: an `inference.Posterior` from `nuts` (samples `(chains, draws,
      *shape)`; `sample_stats` with `diverging` and `energy` `(chains, draws)`).
    - `rhat_max`: the largest acceptable R-hat (rank-normalised split R-hat).
    - `ess_per_chain`: the smallest acceptable bulk and tail ESS, per chain.
    - `bfmi_min`: the smallest acceptable E-BFMI of a chain.

    **Returns:** a `Convergence` whose `problems` name each failing parameter (entry)
    with its value and the threshold. R-hat needs at least two chains, or one chain of
    at least 4 draws (split); with fewer draws it is NaN and not judged.
    """
    import arviz as az

    samples = posterior.samples
    first = np.asarray(next(iter(samples.values())))
    n_chains, n_draws = int(first.shape[0]), int(first.shape[1])
    rhat, ess_bulk, ess_tail = {}, {}, {}
    for path, value in samples.items():
        v = np.asarray(value, dtype=float)
        flat = v.reshape(n_chains, n_draws, -1)
        for j in range(flat.shape[-1]):
            name = path if v.ndim == 2 else f"{path}[{j}]"
            x = flat[..., j]
            if not np.all(np.isfinite(x)):
                rhat[name] = ess_bulk[name] = ess_tail[name] = math.nan
                continue
            enough = n_draws >= 4
            rhat[name] = float(az.rhat(x)) if enough else math.nan
            ess_bulk[name] = float(az.ess(x, method="bulk")) if enough else math.nan
            ess_tail[name] = (
                float(az.ess(x, method="tail", prob=(0.05, 0.95))) if enough else math.nan
            )
    stats = getattr(posterior, "sample_stats", None) or {}
    n_divergent = int(np.sum(stats["diverging"])) if "diverging" in stats else None
    bfmi = None
    if "energy" in stats and n_draws >= 2:
        bfmi = np.atleast_1d(np.asarray(az.bfmi(np.asarray(stats["energy"], dtype=float))))

    problems = []
    high = {k: v for k, v in rhat.items() if v > rhat_max}
    if high:
        problems.append(
            f"R-hat above {rhat_max} for {_listed(high, '.3f', True)}: the chains disagree (a "
            "chain in another mode, or too little warmup); run longer, or give the MAP more "
            "starts (init=map_estimate(..., num_starts=32)) to find the modes"
        )
    need = ess_per_chain * n_chains
    for label, ess in (("bulk", ess_bulk), ("tail", ess_tail)):
        low = {k: v for k, v in ess.items() if v < need}
        if low:
            problems.append(
                f"{label} ESS below {need:g} ({ess_per_chain:g} per chain) for "
                f"{_listed(low, '.0f', False)}: too few effective draws for reliable means and "
                f"{'R-hat' if label == 'bulk' else 'tail quantiles'}; run more draws"
            )
    if n_divergent:
        share = n_divergent / (n_chains * n_draws)
        problems.append(
            f"{n_divergent} divergent transitions after warmup ({share:.1%} of the "
            "draws): the sampler misses parts of the posterior; raise target_accept "
            "(e.g. 0.95) or reparametrise (non-centred hierarchical priors)"
        )
    if bfmi is not None:
        low_chains = [i for i, b in enumerate(bfmi) if b < bfmi_min]
        if low_chains:
            values = ", ".join(f"chain {i}: {bfmi[i]:.2f}" for i in low_chains)
            problems.append(
                f"E-BFMI below {bfmi_min} ({values}): the momentum resampling explores the "
                "energy levels poorly (heavy tails or a funnel); reparametrise, or try "
                "dense_mass=True"
            )
    return Convergence(
        rhat=rhat,
        ess_bulk=ess_bulk,
        ess_tail=ess_tail,
        n_divergent=n_divergent,
        bfmi=bfmi,
        n_chains=n_chains,
        n_draws=n_draws,
        problems=tuple(problems),
    )


def _listed(values: dict[str, float], fmt: str, largest_first: bool, limit: int = 6) -> str:
    """`'a' (1.20), 'b' (1.05)`: the worst first, at most `limit` named."""
    order = sorted(values, key=values.__getitem__, reverse=largest_first)
    named = ", ".join(f"{k!r} ({values[k]:{fmt}})" for k in order[:limit])
    more = len(order) - limit
    return named + (f" and {more} more" if more > 0 else "")
