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
- `convergence` / `Convergence`: R-hat, bulk and tail ESS, divergences and E-BFMI of
  MCMC draws, each failing parameter named (`nuts` runs it on every posterior and
  warns with a `ConvergenceWarning`).
- `stack_chains` / `Stacking` / `stacking_weights`: chains stuck in separated modes
  weighed by their leave-one-out predictive performance (Yao, Vehtari & Gelman 2022),
  instead of pooled with a mixed R-hat.

    samples = post.samples["coupling.G"].reshape(-1)       # one site of a NUTS run
    res_sbc, res_tarp = calibrate(key, prior_sample, simulate, posterior_samples, 500)
    res_sbc.passed(), res_tarp.atc
"""

from ._calibrate import calibrate as calibrate
from ._convergence import Convergence as Convergence
from ._convergence import ConvergenceWarning as ConvergenceWarning
from ._convergence import MultimodalWarning as MultimodalWarning
from ._convergence import convergence as convergence
from ._ppc import PPCResult as PPCResult
from ._ppc import ppc as ppc
from ._sbc import SBCResult as SBCResult
from ._sbc import sbc as sbc
from ._sbc import sbc_ranks as sbc_ranks
from ._stacking import Stacking as Stacking
from ._stacking import stack_chains as stack_chains
from ._stacking import stacking_weights as stacking_weights
from ._tarp import TARPResult as TARPResult
from ._tarp import tarp as tarp

__all__ = [
    "Convergence",
    "ConvergenceWarning",
    "MultimodalWarning",
    "Stacking",
    "stack_chains",
    "stacking_weights",
    "PPCResult",
    "SBCResult",
    "TARPResult",
    "calibrate",
    "convergence",
    "ppc",
    "sbc",
    "sbc_ranks",
    "tarp",
]
