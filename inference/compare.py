"""Comparing fitted models: LOO predictive performance and, on request, the evidence.

`compare({"name": posterior, ...})` ranks models by PSIS-LOO expected log predictive
density with ArviZ (`arviz.compare`: elpd, its standard error, the difference to the best
model and its standard error, stacking weights, Pareto k warnings). With
`evidence={"name": inf.log_evidence(...)}` it adds each model's log marginal likelihood
and the posterior model probabilities under equal prior odds (the Bayes factors
normalised).

LOO and the evidence answer different questions: LOO how well the fitted model predicts
a left-out observation (insensitive to how wide a prior is where the data dominate), the
evidence how probable the data were under the model's prior (sensitive to it).

Time series: LOO treats the pointwise log-likelihood terms as exchangeable. Given the
parameters, the samples of a deterministic simulation with independent measurement noise
(`likelihoods.TimeSeries`) are independent, so LOO measures interpolation of a left-out
sample; where the residuals are autocorrelated (noise-driven models) it overstates how
well a model forecasts, and leave-future-out cross-validation (`inference.lfo`: the
StateSpace likelihood's one-step predictive densities, refits by NUTS on the past) is
the honest measure. `compare` warns when the pointwise terms run along a time axis.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import logsumexp

from .results import Posterior

__all__ = ["compare"]


def compare(
    posteriors: Mapping[str, Posterior],
    *,
    evidence: Mapping[str, Any] | None = None,
    method: str = "stacking",
) -> Any:
    """Rank fitted models by their LOO predictive performance (and their evidence).

    **Arguments:**

    - `posteriors`: `{name: Posterior}`, at least two, each with the pointwise
      log-likelihood (`nuts(..., posterior_predictive=True)`, the default, or
      `laplace`) of the same observed data.
    - `evidence`: optional `{name: Evidence}` (`inference.log_evidence`) for every model.
    - `method`: how ArviZ weighs the models: `"stacking"` (default), `"BB-pseudo-BMA"`
      or `"pseudo-BMA"`.

    **Returns:** a pandas DataFrame, one row per model, best first: ArviZ's columns
    (`rank`, `elpd`, `p`, `elpd_diff`, `weight`, `se`, `dse`, `warning`), and with
    `evidence` also `log_z`, `log_z_se` and `p_model` (the posterior probability of
    each model among these, equal prior odds).
    """
    import arviz as az

    if not isinstance(posteriors, Mapping) or len(posteriors) < 2:
        raise ValueError(
            f"posteriors: expected a dict of at least two {{name: Posterior}}, got {posteriors!r}."
        )
    observed = None
    for name, post in posteriors.items():
        if not isinstance(post, Posterior):
            raise ValueError(f"posteriors[{name!r}]: expected a Posterior, got {post!r}.")
        if post.log_likelihood is None:
            raise ValueError(
                f"posteriors[{name!r}]: has no pointwise log-likelihood; run nuts(..., "
                "posterior_predictive=True) (the default) or laplace(...)."
            )
        shape = np.shape(post.log_likelihood)[2:]
        if observed is None:
            observed = (name, shape, post.observed)
        elif shape != observed[1] or (
            post.observed is not None
            and observed[2] is not None
            and not np.array_equal(np.asarray(post.observed), np.asarray(observed[2]))
        ):
            raise ValueError(
                f"posteriors[{name!r}]: fitted to other data than posteriors[{observed[0]!r}] "
                f"(pointwise shapes {shape} and {observed[1]}, or other values); models are "
                "compared on the same data."
            )
    if evidence is not None and set(evidence) != set(posteriors):
        raise ValueError(
            f"evidence: expected an Evidence for every model {sorted(posteriors)}, got "
            f"{sorted(evidence)}."
        )
    temporal = [n for n, p in posteriors.items() if "time" in (p.dims.get("obs") or [])]
    if temporal:
        warnings.warn(
            f"compare: the pointwise terms of {temporal} run along a time axis; LOO treats "
            "them as exchangeable (right for independent measurement noise on a deterministic "
            "simulation; for autocorrelated residuals it overstates forecasting, use "
            "leave-future-out, inference.lfo).",
            UserWarning,
            stacklevel=2,
        )
    table = az.compare({n: p.to_arviz() for n, p in posteriors.items()}, method=method)
    if evidence is not None:
        log_z = np.array([float(evidence[n].log_z) for n in table.index])
        if not np.all(np.isfinite(log_z)):
            raise ValueError(f"evidence: a non-finite log evidence among {evidence!r}.")
        table["log_z"] = log_z
        table["log_z_se"] = [float(evidence[n].se) for n in table.index]
        table["p_model"] = np.exp(log_z - logsumexp(log_z))
    return table
