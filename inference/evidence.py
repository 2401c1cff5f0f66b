"""The marginal likelihood (evidence) of a model, for choosing among a handful of models.

`log_evidence(bmodel, data, posterior)` estimates `log p(y | model)`, the normalising
constant of the posterior, by bridge sampling (Meng & Wong 1996, "Simulating ratios of
normalizing constants via a simple identity", Statistica Sinica 6:831; the iterative
scheme and error estimate of Gronau et al. 2017, "A tutorial on bridge sampling", J. Math.
Psych. 81:80, and Fruehwirth-Schnatter 2004): a Gaussian fitted to half of the posterior
draws (in the unconstrained space, where the density includes the Jacobian of the
transforms, so its integral is the evidence) bridges to the unnormalised posterior
density evaluated at the other half and at as many draws from the Gaussian. From a
`MAPResult`, the Laplace estimate: the sum over the separated modes of their Laplace
masses (exact for a Gaussian posterior, biased otherwise).

The ratio of two models' evidences is their Bayes factor. It depends on the priors
(their width enters directly), unlike LOO.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from . import _cache
from .model import AbstractBayesianModel

__all__ = ["Evidence", "log_evidence"]


@dataclasses.dataclass(frozen=True)
class Evidence:
    """A log marginal likelihood estimate.

    **Attributes:**

    - `log_z`: the estimate of `log p(y | model)` (nats).
    - `se`: its approximate standard error (nats; from the relative mean-squared error
      of the bridge estimator, Fruehwirth-Schnatter 2004); NaN for the Laplace estimate,
      whose error is a bias, not noise.
    - `method`: `"bridge"` or `"laplace"`.
    - `info`: `iterations` of the bridge scheme, `n_posterior` and `n_proposal` draws,
      the posterior draws' effective sample size `ess` used for the weights, ...
    """

    log_z: float
    se: float
    method: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        err = "" if math.isnan(self.se) else f" +- {self.se:.3g}"
        return f"Evidence(log_z = {self.log_z:.6g}{err} ({self.method}))"


def log_evidence(
    bmodel: AbstractBayesianModel,
    data: Any,
    posterior: Any,
    key: Any = None,
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> Evidence:
    """The log marginal likelihood `log p(y | model)` of `bmodel` given `data`.

    **Arguments:**

    - `bmodel`: the `inference.BayesianModel` (or `CohortModel`) the posterior is of.
    - `data`: the data it was fitted to.
    - `posterior`: a `Posterior` from `nuts` (bridge sampling; at least 100 draws in
      all), or a `MAPResult` (the Laplace estimate over its modes).
    - `key`: a `jax.random` key for the proposal draws (bridge sampling).
    - `tol`, `max_iter`: convergence of the iterative bridge scheme (change in `log_z`).

    **Returns:** an `Evidence` (`log_z`, `se`, `method`, `info`).

    Bridge sampling needs the posterior draws to cover the posterior: chains stuck in
    one of several modes give the evidence of that mode only. One compiled evaluation
    of the log density over the draws (cached on the model).
    """
    from .map import MAPResult
    from .results import Posterior

    if not isinstance(bmodel, AbstractBayesianModel):
        raise ValueError(f"bmodel: expected an inference.BayesianModel, got {bmodel!r}.")
    data = bmodel.observed(data)
    if isinstance(posterior, MAPResult):
        masses = [m.log_mass for m in posterior.modes if np.isfinite(m.log_mass)]
        if not masses:  # one mode (its mass was not needed for the weights), or none
            from .map import _gaussian, _laplace_log_mass

            try:
                _, chol = _gaussian(posterior, "auto")
            except RuntimeError as err:
                raise ValueError(
                    "posterior: the negative Hessian at this MAPResult's mode is not "
                    f"positive definite; the Laplace evidence needs one ({err})"
                ) from None
            chol = np.asarray(chol, np.float64)
            masses = [_laplace_log_mass(posterior.log_density, chol @ chol.T)]
        return Evidence(float(logsumexp(masses)), math.nan, "laplace", {"n_modes": len(masses)})
    if not isinstance(posterior, Posterior):
        raise ValueError(f"posterior: expected a Posterior or a MAPResult, got {posterior!r}.")
    latent = bmodel.latent_sites()
    missing = [s for s in latent if s not in posterior.samples]
    if missing:
        raise ValueError(
            f"posterior: lacks the latent sites {missing} of bmodel (is it the posterior of "
            "this model?)."
        )
    n_chains, n_draws = posterior.n_chains, posterior.n_draws
    if n_chains * n_draws < 100:
        raise ValueError(
            f"posterior: bridge sampling needs at least 100 draws, got {n_chains * n_draws}."
        )
    key = jax.random.key(0) if key is None else key
    ld = bmodel.logdensity(data)
    values = {
        s: jnp.asarray(posterior.samples[s]).reshape(-1, *np.shape(posterior.samples[s])[2:])
        for s in latent
    }
    z = np.asarray(jax.vmap(bmodel.flatten)(values), dtype=np.float64)  # (chains * draws, d)
    z = z.reshape(n_chains, n_draws, -1)
    # the first half of every chain fits the proposal, the second half enters the bridge
    half = n_draws // 2
    fit, rest = z[:, :half].reshape(-1, z.shape[-1]), z[:, half:].reshape(-1, z.shape[-1])
    d = z.shape[-1]
    mean = fit.mean(axis=0)
    cov = np.atleast_2d(np.cov(fit, rowvar=False))
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(d) * np.trace(cov) / d)
    n2 = rest.shape[0]
    eps = np.asarray(jax.random.normal(key, (n2, d)), dtype=np.float64)
    proposal = mean[None, :] + eps @ chol.T

    def log_g(x):
        return multivariate_normal(mean, chol @ chol.T, allow_singular=True).logpdf(x)

    evaluate = _cache.compiled(
        bmodel, ("evidence_lp",), lambda: jax.jit(jax.vmap(ld.fn_data, (0, None)))
    )
    data_j = jax.tree.map(jnp.asarray, data)
    dtype = ld.init.dtype
    q_post = np.asarray(evaluate(jnp.asarray(rest, dtype), data_j), dtype=np.float64)
    q_prop = np.asarray(evaluate(jnp.asarray(proposal, dtype), data_j), dtype=np.float64)
    l1 = q_post - log_g(rest)  # (n1,)
    l2 = np.where(np.isfinite(q_prop), q_prop, -np.inf) - log_g(proposal)  # (n2,)
    if not np.all(np.isfinite(l1)):
        raise ValueError(
            "posterior: the log density is not finite at some posterior draws (is it the "
            "posterior of this model and these data?)."
        )
    n1 = l1.shape[0]
    ess = _ess(z[:, half:])
    s1 = ess / (ess + n2)
    s2 = n2 / (ess + n2)
    shift = np.median(l1)  # work with r' = r exp(-shift): no overflow
    l1s, l2s = l1 - shift, l2 - shift
    log_r, iterations, change = 0.0, 0, math.inf
    while change >= tol and iterations < max_iter:
        num = logsumexp(l2s - np.logaddexp(math.log(s1) + l2s, math.log(s2) + log_r))
        den = logsumexp(-np.logaddexp(math.log(s1) + l1s, math.log(s2) + log_r))
        new = (num - math.log(n2)) - (den - math.log(n1))
        change, log_r, iterations = abs(new - log_r), new, iterations + 1
    # relative mean-squared error (Fruehwirth-Schnatter 2004), draws taken as independent
    # with the posterior's effective sample size
    f1 = np.exp(l2s - np.logaddexp(math.log(s1) + l2s, math.log(s2) + log_r))
    f2 = np.exp(-np.logaddexp(math.log(s1) + l1s, math.log(s2) + log_r))
    re2 = np.var(f1) / np.mean(f1) ** 2 / n2 + np.var(f2) / np.mean(f2) ** 2 / ess
    return Evidence(
        float(log_r + shift),
        float(math.sqrt(re2)),  # the relative error of Z is the absolute error of log Z
        "bridge",
        {
            "iterations": iterations,
            "converged": bool(change < tol),
            "n_posterior": int(n1),
            "n_proposal": int(n2),
            "ess": float(ess),
            "n_failed_proposals": int(np.sum(~np.isfinite(q_prop))),
        },
    )


def _ess(z: np.ndarray) -> float:
    """The smallest bulk ESS over the coordinates of draws `(chains, draws, d)`."""
    import arviz as az

    chains, draws = z.shape[:2]
    if draws < 4:
        return float(chains * draws)
    ess = [
        float(az.ess(np.ascontiguousarray(z[..., j]), method="bulk")) for j in range(z.shape[-1])
    ]
    return float(np.clip(np.min(ess), 1.0, chains * draws))
