r"""Leave-future-out cross-validation (LFO-CV) of a fitted model of a noise-driven series.

LOO treats the pointwise log-likelihood terms as exchangeable. For a noise-driven
series they are not: each sample of the series depends on the ones before it, and
leaving one out while keeping its future lets the model interpolate. LFO scores
what a time-series model is for, predicting the future from the past (Bürkner,
Gabry & Vehtari 2020, J. Stat. Comput. Simul. 90:2499):

$$\text{elpd}_\text{LFO} = \sum_{c} \log \int p(y_{c:c+M} \mid y_{<c}, \theta)\,
p(\theta \mid y_{<c})\, d\theta,$$

over forecast origins $c \ge$ `min_observations`, with horizon $M$. The
`StateSpace` likelihood's pointwise terms are already the one-step predictive
densities $\log p(y_t \mid y_{<t}, \theta)$ of its Kalman filter, so the block's
density is their sum; and it takes missing samples as NaN, so the posterior given
$y_{<c}$ is `nuts` on the series with its future set to NaN: the same shape, the
same compiled sampler, no recompilation per origin. ArviZ's `lfo_cv` does the
bookkeeping: with `method="approx"` (default) the posterior is carried forward by
Pareto-smoothed importance sampling and refitted only where the Pareto k exceeds
`k_threshold`; `method="exact"` refits at every origin.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from .model import AbstractBayesianModel, BayesianModel, predictive
from .results import Posterior

__all__ = ["lfo"]


def lfo(
    bmodel: AbstractBayesianModel,
    data: Any,
    key: Any,
    *,
    min_observations: int,
    forecast_horizon: int = 1,
    posterior: Posterior | None = None,
    method: str = "approx",
    k_threshold: float = 0.7,
    **nuts_kwargs: Any,
) -> Any:
    """Leave-future-out cross-validation of `bmodel` on the series `data` (see the module).

    **Arguments:**

    - `bmodel`: a `BayesianModel` with a `likelihoods.StateSpace` likelihood (its
      pointwise terms are one-step predictive densities, and it takes missing samples).
    - `data`: `(n_samples, n_channels)`, the observed series.
    - `key`: a `jax.random` key (the full fit, when `posterior` is None, and each refit:
      `fold_in(key, origin)`).
    - `min_observations`: samples the first forecast is conditioned on (>= 1).
    - `forecast_horizon`: samples predicted from each origin (M >= 1): the score of an
      origin is the joint predictive density of the next M samples.
    - `posterior`: the `nuts` posterior given all of `data`, with its pointwise
      log-likelihood (the default of `nuts`); fitted here when None.
    - `method`: `"approx"` (PSIS between refits, default) or `"exact"` (a refit at every
      origin).
    - `k_threshold`: the Pareto k above which `"approx"` refits (0.7; 0.6 is stricter).
    - `nuts_kwargs`: passed to every `nuts` call (`num_samples`, `num_chains`,
      `backend`, ...; `progress` defaults to False in the refits).

    **Returns:** ArviZ's `ELPDDataLFO`: `elpd` (nats), `se`, `p`, `n_data_points`
    (forecast origins), `elpd_i` (per origin, along `time` in ms), `pareto_k` and
    `refits` (the origins refitted, as sample indices), `n_refits`.

    **Raises:** ValueError for a model whose likelihood is not `StateSpace`, a cohort
    model, `batch=True`, data of another shape, or a `posterior` without the pointwise
    log-likelihood.
    """
    import arviz_stats

    from .likelihoods import StateSpace
    from .mcmc import nuts

    if not isinstance(bmodel, BayesianModel) or not isinstance(bmodel.likelihood, StateSpace):
        raise ValueError(
            f"bmodel: lfo needs a BayesianModel with a likelihoods.StateSpace likelihood (its "
            f"pointwise terms are the one-step predictive densities of the series, and it takes "
            f"the future as missing samples), got {bmodel!r}. For a deterministic simulation with "
            "independent measurement noise (TimeSeries) the pointwise terms are exchangeable "
            "given the parameters: use LOO (inference.compare)."
        )
    data = bmodel.observed(data)
    observed = np.asarray(bmodel.check_data(data), dtype=float)
    if np.isnan(observed).any():
        raise ValueError(
            "data: lfo needs a complete series (NaN marks the future in the refits); got "
            f"{int(np.isnan(observed).sum())} missing values."
        )
    if nuts_kwargs.get("batch"):
        raise ValueError("batch: lfo scores one series; call it once per dataset.")
    n_time = observed.shape[0]
    kwargs = {"progress": False, **nuts_kwargs}
    if posterior is None:
        posterior = nuts(bmodel, data, key, **{**kwargs, "posterior_predictive": True})
    if not isinstance(posterior, Posterior) or posterior.log_likelihood is None:
        raise ValueError(
            "posterior: expected the nuts Posterior given all of data, with its pointwise "
            f"log-likelihood (posterior_predictive=True, the default), got {posterior!r}."
        )
    if np.shape(posterior.log_likelihood)[2:] != (n_time,):
        raise ValueError(
            f"posterior: its pointwise log-likelihood has shape "
            f"{np.shape(posterior.log_likelihood)[2:]} per draw, expected ({n_time},) (one "
            "term per sample of this data: was it fitted to other data?)."
        )
    wrapper = _refits(bmodel, observed, key, kwargs)
    return arviz_stats.lfo_cv(
        posterior.to_arviz(),
        wrapper,
        min_observations=int(min_observations),
        forecast_horizon=int(forecast_horizon),
        time_dim="time",
        pointwise=True,
        var_name="obs",
        method=method,
        k_threshold=float(k_threshold),
    )


def _refits(bmodel, observed: np.ndarray, key: Any, nuts_kwargs: dict) -> Any:
    """ArviZ's refitting interface (a `SamplingWrapper`): `nuts` on the masked series.

    The future of the series is set to NaN (missing). The class is built here, so that
    arviz_stats is imported only when LFO runs.
    """
    import arviz_stats
    import xarray as xr

    from .mcmc import nuts

    class Refits(arviz_stats.SamplingWrapper):
        def __init__(self, bmodel, observed: np.ndarray, key: Any, nuts_kwargs: dict):
            super().__init__(model=bmodel)
            self.observed = observed
            self.key = key
            self.nuts_kwargs = nuts_kwargs
            self.times = np.asarray(bmodel.likelihood.spec.times)

        def sel_observations(self, idx):
            """The series with the samples `idx` (the future) missing, and those indices."""
            idx = np.asarray(idx, dtype=int)
            masked = self.observed.copy()
            masked[idx] = np.nan
            return masked, idx

        def sample(self, modified_observed_data):
            """`nuts` given the past: the refit's key is `fold_in(key, first missing index)`."""
            missing = np.flatnonzero(np.isnan(modified_observed_data).all(axis=1))
            origin = int(missing[0]) if len(missing) else len(self.observed)
            kwargs = {**self.nuts_kwargs, "posterior_predictive": False}
            return nuts(
                self.model, modified_observed_data, jax.random.fold_in(self.key, origin), **kwargs
            )

        def get_inference_data(self, fitted_model):
            """The refit as an ArviZ DataTree (with the refit posterior draws)."""
            return fitted_model.to_arviz()

        def log_likelihood__i(self, excluded_obs, idata__i):
            """`log p(y_t | y_<t, theta)` at the refit's draws for the excluded samples `t`.

            Evaluated on the complete series: the chain-rule terms of the block's joint
            predictive density (ArviZ's convention for a horizon above 1).
            """
            samples = Posterior.from_arviz(idata__i).samples
            ll, _ = predictive(self.model, samples, self.observed, jax.random.key(0))
            idx = np.asarray(excluded_obs, dtype=int)
            return xr.DataArray(
                np.asarray(ll)[:, :, idx],
                dims=("chain", "draw", "time"),
                coords={"time": self.times[idx]},
            )

    return Refits(bmodel, observed, key, nuts_kwargs)
