"""Gradient MAP in the unconstrained space, and the Laplace approximation at the mode.

`map_estimate` maximises the log joint density (log prior + log likelihood +
log |Jacobian| of the transforms) over the flat unconstrained vector of
`BayesianModel.logdensity`, from several starts at once (one vmapped optax
step), and returns the best mode in the constrained space with units.
`MAPResult.laplace` approximates the posterior by a Gaussian in the
unconstrained space with the inverse of the negative Hessian of the log
density at the mode as covariance (as DCM's variational Laplace does),
mapped back through the transforms.

Note: the mode in the unconstrained space is the mode of the density of the
unconstrained parameters, which includes the Jacobian of the transforms (for a
positive parameter with a log transform, the mode of `log theta`). That is the
point the Laplace approximation is centred on, and it is what NumPyro's
`AutoLaplaceApproximation` uses too.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from brainmass.progress import progress_bar

from . import _cache
from ._checks import check_integers
from .model import AbstractBayesianModel, LogDensity, predictive
from .results import Posterior

__all__ = ["map_estimate", "MAPResult", "laplace"]


@dataclass
class MAPResult:
    """The outcome of `map_estimate`.

    **Attributes:**

    - `params`: `{site: value}` at the best mode, in the constrained space and
      the parameters' canonical units (`units`), with deterministic sites.
    - `units`: `{path: unit name}` of the simulator parameters.
    - `log_density`: the log joint density at the mode (unconstrained space).
    - `z`: `(d,)`, the mode in the flat unconstrained space.
    - `start_log_densities`: `(num_starts,)`, the best log density each start reached.
    - `history`: `(steps, num_starts)`, the log density at every step of every start.
    - `n_failed`: evaluations where the simulation failed (log density -inf).
    - `wall_time`: seconds (compilation included).
    - `n_failed_starts`: starts that never reached a finite log density (their
      entry of `start_log_densities` is -inf).
    """

    params: dict[str, np.ndarray]
    units: dict[str, str]
    log_density: float
    z: np.ndarray
    start_log_densities: np.ndarray
    history: np.ndarray
    n_failed: int
    wall_time: float
    n_failed_starts: int = 0
    _bmodel: AbstractBayesianModel | None = field(default=None, repr=False)
    _ld: LogDensity | None = field(default=None, repr=False)
    _data: Any = field(default=None, repr=False)

    def laplace(
        self,
        key: Any,
        num_draws: int = 1000,
        *,
        hessian: str = "auto",
        posterior_predictive: bool = True,
    ) -> Posterior:
        """The Laplace approximation at this mode, as a one-chain `Posterior` (see `laplace`)."""
        return laplace(
            self, key, num_draws, hessian=hessian, posterior_predictive=posterior_predictive
        )

    def laplace_points(self, key: Any, n: int) -> Any:
        """`n` flat unconstrained draws from the Laplace approximation (NUTS starting points)."""
        mean, chol = _gaussian(self, "auto")
        eps = jax.random.normal(key, (n, mean.shape[0]))
        return mean[None, :] + eps @ chol.T

    def __repr__(self) -> str:
        parts = []
        for k, v in self.params.items():
            v = np.asarray(v)
            unit = self.units.get(k, "")
            text = f"{float(v):.4g}" if v.ndim == 0 else f"shape {v.shape}"
            parts.append(f"{k} = {text}{' ' + unit if unit and v.ndim == 0 else ''}")
        return f"MAPResult(log density {self.log_density:.4g}; " + "; ".join(parts) + ")"


def map_estimate(
    bmodel: AbstractBayesianModel,
    data: Any,
    key: Any,
    *,
    num_starts: int = 4,
    steps: int = 500,
    learning_rate: float = 0.05,
    optimizer: optax.GradientTransformation | None = None,
    batch: bool = False,
    chunk_size: int = 50,
    progress: bool = True,
) -> MAPResult | list[MAPResult]:
    """The maximum a posteriori point by gradient ascent in the unconstrained space.

    **Arguments:**

    - `bmodel`: an `inference.BayesianModel` or `inference.CohortModel`.
    - `data`: the observed data; with `batch=True`, datasets stacked on a
      leading subject axis.
    - `key`: a `jax.random` key (the random starts).
    - `num_starts`: starts optimised at once (one vmapped step): the priors'
      medians and `num_starts - 1` prior draws.
    - `steps`: optimiser steps per start.
    - `learning_rate`: of the default optimiser, `optax.adam`.
    - `optimizer`: any optax optimiser (overrides `learning_rate`).
    - `batch`: fit every dataset of the batch at once (one vmapped optimiser);
      returns a list of results, one per subject.
    - `chunk_size`: steps per compiled chunk (the progress bar moves per chunk).
    - `progress`: show a progress bar.

    A start whose simulation fails (log density -inf or a NaN gradient) stays
    where it was; the count of such evaluations is `n_failed`, and the starts
    that never reached a finite log density are `n_failed_starts`. When more
    than half of the starts fail, a `UserWarning` says how many (the mode is
    then the best of the few that ran, possibly a poor one); when every start
    fails, a `RuntimeError` (per subject with `batch=True`).
    """
    check_integers(("num_starts", num_starts, 1), ("steps", steps, 1))
    if not isinstance(bmodel, AbstractBayesianModel):
        raise ValueError(
            f"bmodel: expected an inference.BayesianModel or CohortModel, got {bmodel!r}."
        )
    from .mcmc import _subjects

    subjects = _subjects(bmodel, data, batch)
    t0 = time.perf_counter()
    k_init, k_starts = jax.random.split(key)
    first = jax.tree.map(lambda x: x[0], data) if batch else data
    ld = bmodel.logdensity(first, k_init)
    starts = [ld.init[None, :]]
    if num_starts > 1:
        draws = bmodel.sample_prior(k_starts, num_starts - 1)
        latent = bmodel.latent_sites()
        flat = jax.vmap(bmodel.flatten)({s: jnp.asarray(draws[s]) for s in latent})
        starts.append(flat)
    z = jnp.concatenate(starts, axis=0)
    if batch:
        z = jnp.broadcast_to(z, (subjects, *z.shape))
    data_j = jax.tree.map(jnp.asarray, data)

    opt = optimizer if optimizer is not None else optax.adam(learning_rate)
    opt_name = ("adam", float(learning_rate)) if optimizer is None else ("user", id(optimizer))
    fn_data = ld.fn_data

    def step(carry, data):
        z, opt_state, best_z, best_lp, failed = carry
        lp, g = jax.vmap(jax.value_and_grad(fn_data), (0, None))(z, data)
        bad = ~(jnp.isfinite(lp) & jnp.all(jnp.isfinite(g), axis=-1))
        g = jnp.where(bad[:, None], 0.0, g)
        updates, new_state = jax.vmap(opt.update)(jax.tree.map(jnp.negative, g), opt_state, z)
        new_z = jnp.where(bad[:, None], z, optax.apply_updates(z, updates))
        lp_safe = jnp.where(bad, -jnp.inf, lp)
        better = lp_safe > best_lp
        best_z = jnp.where(better[:, None], z, best_z)
        best_lp = jnp.where(better, lp_safe, best_lp)
        return (new_z, new_state, best_z, best_lp, failed + jnp.sum(bad)), lp_safe

    def build(n):
        def chunk(carry, data):
            return jax.lax.scan(lambda c, _: step(c, data), carry, None, length=n)

        return jax.jit(jax.vmap(chunk) if batch else chunk)

    def final(z, data):
        return jax.vmap(fn_data, (0, None))(z, data)

    evaluate = _cache.compiled(
        bmodel, ("map-final", batch), lambda: jax.jit(jax.vmap(final) if batch else final)
    )
    init_opt = jax.vmap(opt.init)
    opt_state = jax.vmap(init_opt)(z) if batch else init_opt(z)
    lead = z.shape[:-1]
    carry = (z, opt_state, z, jnp.full(lead, -jnp.inf), jnp.zeros(lead[:-1], dtype=int))
    history = []
    bar = progress_bar(total=int(steps), desc="MAP", unit="step", disable=not progress)
    done = 0
    try:
        while done < steps:
            n = min(int(chunk_size), int(steps) - done)
            fn = _cache.compiled(bmodel, ("map", opt_name, n, batch), lambda n=n: build(n))
            carry, lps = fn(carry, data_j)
            history.append(np.asarray(lps))
            done += n
            bar.update(n)
    finally:
        bar.close()
    z_last, _, best_z, best_lp, failed = carry
    lp_last = evaluate(z_last, data_j)  # the last point has not been evaluated in the loop
    better = lp_last > best_lp
    best_z = np.asarray(jnp.where(better[..., None], z_last, best_z))
    best_lp = np.asarray(jnp.where(better, lp_last, best_lp))
    history = np.concatenate(history, axis=1 if batch else 0)
    wall = time.perf_counter() - t0
    results = []
    for i in range(subjects if batch else 1):
        pick = (lambda x, i=i: x[i]) if batch else (lambda x: x)
        lps = pick(best_lp)
        n_failed = int(pick(np.asarray(failed)))
        n_bad = int(np.sum(~np.isfinite(lps)))
        n_all = int(lps.shape[0])
        subject = f" for subject {i}" if batch else ""
        if n_bad == n_all:
            raise RuntimeError(
                f"map_estimate: every one of the {n_all} starts failed{subject} ({n_failed} "
                "evaluations failed: the simulation blew up or the log density is -inf "
                "everywhere visited); check the priors (their medians and draws are the "
                "starts) and the data."
            )
        if 2 * n_bad > n_all:
            warnings.warn(
                f"map_estimate: {n_bad} of {n_all} starts failed{subject} (the simulation "
                "blew up or the log density was -inf at every point they visited); the mode "
                f"is the best of the other {n_all - n_bad}, and may be a poor one. Narrow the "
                "priors or give more starts (num_starts=...).",
                UserWarning,
                stacklevel=2,
            )
        j = int(np.argmax(np.where(np.isfinite(lps), lps, -np.inf)))
        mode = pick(best_z)[j]
        params = {k: np.asarray(v) for k, v in ld.constrain(jnp.asarray(mode)).items()}
        results.append(
            MAPResult(
                params=params,
                units=dict(bmodel.units),
                log_density=float(lps[j]),
                z=np.asarray(mode),
                start_log_densities=lps,
                history=pick(history) if not batch else history[i],
                n_failed=n_failed,
                wall_time=wall,
                n_failed_starts=n_bad,
                _bmodel=bmodel,
                _ld=ld,
                _data=jax.tree.map(pick, data) if batch else data,
            )
        )
    return results if batch else results[0]


# ----------------------------------------------------------------------------- Laplace


def _hessian(fn, z, how: str):
    """Hessian of `fn` at `z` and how it was computed.

    Forward-over-reverse autodiff, or central differences of the gradient when
    forward mode is unavailable (delayed simulators with lane batching).
    """
    if how in ("auto", "autodiff"):
        try:
            return jax.jit(jax.hessian(fn))(z), "autodiff"
        except Exception as err:  # forward mode through a custom_vjp
            if how == "autodiff":
                raise
            warnings.warn(
                f"laplace: forward-mode autodiff failed ({type(err).__name__}); using central "
                "differences of the gradient for the Hessian.",
                stacklevel=3,
            )
    elif how != "fd":
        raise ValueError(f"hessian: expected 'auto', 'autodiff' or 'fd', got {how!r}.")
    d = z.shape[0]
    h = 1e-3 * jnp.maximum(1.0, jnp.abs(z))
    eye = jnp.eye(d) * h[:, None]
    grad = jax.vmap(jax.grad(fn))
    g_plus, g_minus = grad(z[None, :] + eye), grad(z[None, :] - eye)
    hess = (g_plus - g_minus) / (2 * h[:, None])
    return 0.5 * (hess + hess.T), "fd"


def _gaussian(result: MAPResult, how: str):
    """Mean and Cholesky factor of the Laplace Gaussian in the unconstrained space.

    Computed once per result and `how` (kept in `inference._cache`, held weakly by the
    result; nothing is stored on it): `laplace` and the NUTS starting points share it.
    """
    if how not in ("auto", "autodiff", "fd"):
        raise ValueError(f"hessian: expected 'auto', 'autodiff' or 'fd', got {how!r}.")
    if result._ld is None:
        raise ValueError("laplace: this MAPResult has no model attached (was it loaded?).")
    z, chol, _ = _cache.compiled(result, ("laplace", how), lambda: _factor(result, how))
    return z, chol


def _hessian_used(result: MAPResult, how: str) -> str:
    """How the Hessian of `_gaussian(result, how)` was computed: "autodiff" or "fd"."""
    return _cache.compiled(result, ("laplace", how), lambda: _factor(result, how))[2]


def _factor(result: MAPResult, how: str):
    """`(mode z, Cholesky factor of the covariance, how the Hessian was computed)`."""
    ld = result._ld
    z = jnp.asarray(result.z)
    hess, used = _hessian(partial(ld.fn_data, data=result._data), z, how)
    precision = -np.asarray(hess, dtype=np.float64)
    precision = 0.5 * (precision + precision.T)
    eig = np.linalg.eigvalsh(precision)
    if not np.all(np.isfinite(eig)) or eig.min() <= 0:
        raise RuntimeError(
            "laplace: the negative Hessian at the mode is not positive definite (smallest "
            f"eigenvalue {eig.min():.3g}); the MAP may not have converged (more steps) or the "
            "posterior is not locally Gaussian there."
        )
    cov = np.linalg.inv(precision)
    chol = np.linalg.cholesky(0.5 * (cov + cov.T))
    return z, jnp.asarray(chol, dtype=z.dtype), used


def laplace(
    result: MAPResult,
    key: Any,
    num_draws: int = 1000,
    *,
    hessian: str = "auto",
    posterior_predictive: bool = True,
) -> Posterior:
    """Draws from the Laplace approximation at a MAP mode, as a one-chain `Posterior`.

    **Arguments:**

    - `result`: a `MAPResult` from `map_estimate`.
    - `key`: a `jax.random` key.
    - `num_draws`: draws from the Gaussian (mapped to the constrained space).
    - `hessian`: `"auto"` (autodiff, falling back to central differences of the
      gradient where forward mode is unavailable), `"autodiff"` or `"fd"`.
    - `posterior_predictive`: also compute the pointwise log-likelihood and posterior
      predictive draws at every draw (one simulation each), as `nuts` does, so
      `az.loo` and posterior predictive checks work on the result. The Gaussian draws
      themselves do not depend on it (the predictive draws use `fold_in(key, 1)`).

    **Returns:** a `Posterior` with `method="laplace"`, one chain, `lp` (the log
    density at each draw) in `sample_stats`, the log-likelihood and posterior
    predictive groups (with `posterior_predictive=True`) and `info["covariance"]`
    (the unconstrained covariance, `(d, d)`).
    """
    check_integers(("num_draws", num_draws, 1))
    mean, chol = _gaussian(result, hessian)
    eps = jax.random.normal(key, (int(num_draws), mean.shape[0]), dtype=mean.dtype)
    flat = mean[None, :] + eps @ chol.T
    ld, bmodel = result._ld, result._bmodel
    samples = jax.jit(jax.vmap(ld.constrain))(flat)
    samples = {k: np.asarray(v)[None] for k, v in samples.items()}
    lp_fn = jax.vmap(ld.fn_data, (0, None))
    lp = np.asarray(jax.jit(lp_fn)(flat, jax.tree.map(jnp.asarray, result._data)))[None]
    dims, coords = bmodel.dims()
    cov = np.asarray(chol) @ np.asarray(chol).T
    log_lik = draws_pred = None
    if posterior_predictive:
        pred_key = jax.random.fold_in(key, 1)
        log_lik, draws_pred = predictive(bmodel, samples, result._data, pred_key)
    return Posterior(
        samples=samples,
        sample_stats={"lp": lp},
        units=dict(bmodel.units),
        method="laplace",
        observed=np.asarray(bmodel.check_data(result._data)),
        log_likelihood=log_lik,
        posterior_predictive=draws_pred,
        dims=dims,
        coords=coords,
        info={
            "num_draws": int(num_draws),
            "hessian": _hessian_used(result, hessian),
            "covariance": cov,
            "mode_log_density": result.log_density,
        },
    )
