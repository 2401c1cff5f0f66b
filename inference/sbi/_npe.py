"""Neural posterior estimation: `NPE` (amortized and truncated sequential) and its posterior."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_integers
from .._modules import evolve
from ..results import Posterior
from ._estimator import AbstractFlowEstimator
from ._flows import _flowjax
from ._io import _json


@final
class NPE(AbstractFlowEstimator):
    r"""Neural posterior estimation: a conditional normalizing flow $q(\theta \mid x)$.

    **Arguments:**

    - `sim`: the `brainmass.Simulator` (stochastic simulators get fresh noise per
      simulation: the posterior is that of the noisy model). None for an estimator trained
      on a bank made elsewhere (`SimulationBank.from_arrays`; no units, no simulation).
    - `priors`: `{parameter path: NumPyro distribution}` in canonical units (the dict
      `BayesianModel` takes; per-region parameters with `.expand([n_regions])`).
    - `summary`: an `inference.summaries` statistic (`FC()`, `combine(FC(), FCD(...))`,
      ...) or a function `signal (n_samples, n_channels) -> features`; None: the bank's
      features as they are.
    - `flow`: `"maf"` (masked autoregressive flow, default) or `"coupling"` (coupling
      flow; needs at least two parameters); both with rational-quadratic spline
      transformers of `knots` knots on `[-interval, interval]` (standardised units).
    - `embedding`: a learned embedding spec from `inference.summaries`
      (`MLPEmbedding(...)`, `CNNEmbedding(...)`) trained jointly with the flow, or None
      (the flow is conditioned on the standardised features directly).
    - `flow_layers`, `nn_width`, `nn_depth`: the flow's size.
    - `params`: a function `{name: value} -> {parameter path: value}` when the inferred
      quantities are not simulator parameters themselves (see `simulate_bank`); the keys
      of `priors` are then free names.

    After `train`/`train_on` (which return a new, trained NPE): `flow` (the flowjax
    distribution), `losses` (`{"train": [...], "val": [...]}`, mean negative
    log-likelihood per epoch in standardised units), `bank` (the training bank), `info`
    (training facts). An immutable equinox module (see `AbstractFlowEstimator`).
    """

    kind: ClassVar[str] = "npe"

    def __check_init__(self):
        if self.settings["flow"] == "coupling" and self.space.d < 2:
            raise ValueError(
                f"flow: a coupling flow needs at least two dimensions (this NPE infers "
                f"{self.space.d} parameter); use flow='maf'."
            )

    def _flow_shapes(self, raw_shape):
        return self.space.d, tuple(raw_shape)

    def _roles(self, zs, xs):
        return zs, xs

    def train(
        self,
        key: Any,
        num_simulations: int,
        *,
        rounds: int = 1,
        observed: Any = None,
        truncation: float = 1e-4,
        checkpoint: str | os.PathLike | None = None,
        chunk_size: int | None = None,
        progress: bool = True,
        **fit_kwargs: Any,
    ) -> NPE:
        """Simulate a bank and train on it; with `rounds > 1`, focus on one observation.

        **Arguments:**

        - `key`: a `jax.random` key (split for the banks and the training).
        - `num_simulations`: simulations in all (split evenly over the rounds).
        - `rounds`: 1 (default): an amortized estimator trained on prior simulations.
          More: truncated sequential NPE (Deistler, Goncalves & Macke 2022): after each
          round, the next round's parameters come from the prior truncated to the region
          where the current posterior for `observed` exceeds its `truncation` quantile
          (the highest-density region holding 1 - truncation of its mass); the flow is
          retrained on all rounds' simulations. Within that region the proposal is
          proportional to the prior, so the standard NPE loss stays valid; the result is
          accurate for `observed` (and data like it), no longer amortized over the prior.
        - `observed`: the signal to focus on (needed when `rounds > 1`).
        - `checkpoint`: keep the banks in `.npz` files (round r > 1 in `<stem>_round<r>.npz`).
        - `chunk_size`, `progress`: passed to `simulate_bank`.
        - `fit_kwargs`: passed to `train_on` (`max_epochs`, `patience`, ...).

        `info["rounds"]` records each round's simulations and the prior mass its proposal
        kept (the acceptance rate of the truncation).
        """
        check_integers(("rounds", rounds, 1))
        if rounds == 1:
            return self._simulate_and_train(
                key,
                num_simulations,
                checkpoint=checkpoint,
                chunk_size=chunk_size,
                progress=progress,
                **fit_kwargs,
            )
        if observed is None:
            raise ValueError("observed: sequential rounds (rounds > 1) focus on an observation.")
        if not 0.0 < truncation < 0.5:
            raise ValueError(f"truncation: expected a quantile in (0, 0.5), got {truncation}.")
        per_round = int(num_simulations) // int(rounds)
        check_integers(("num_simulations / rounds", per_round, 2))
        keys = jax.random.split(key, 2 * rounds)
        bank, history, est = None, [], self
        for r in range(rounds):
            proposal, kept = (
                (None, 1.0) if r == 0 else est._truncated_prior(observed, keys[2 * r], truncation)
            )
            path = None
            if checkpoint is not None:
                base = Path(checkpoint).with_suffix(".npz")
                path = base if r == 0 else base.with_name(f"{base.stem}_round{r + 1}.npz")
            new = self.simulate(
                keys[2 * r],
                per_round,
                chunk_size=chunk_size,
                checkpoint=path,
                progress=progress,
                proposal=proposal,
            )
            bank = new if bank is None else bank.merge(new)
            history.append({"round": r + 1, "simulations": len(new), "prior_mass_kept": kept})
            est = est.train_on(bank, keys[2 * r + 1], progress=progress, **fit_kwargs)
        return evolve(est, _info=_json({**est.info, "rounds": history}))

    def _truncated_prior(self, observed: Any, key: Any, truncation: float):
        """A jit-able proposal: the prior restricted to the posterior's HPD region."""
        k_post, k_prior = jax.random.split(key)
        post = self.posterior(observed)
        threshold = jnp.quantile(post.log_prob(post.sample_flat(k_post, 10_000)), truncation)
        trial = self.space.sample(k_prior, 20_000)
        kept = float(jnp.mean(post.log_prob(trial) >= threshold))
        factor = int(min(2_000, math.ceil(4.0 / max(kept, 1e-4))))
        space = self.space

        def proposal(key, n):
            candidates = space.sample(key, n * factor)
            inside = post.log_prob(candidates) >= threshold
            order = jnp.argsort(~inside, stable=True)  # accepted draws first, in order
            return candidates[order[:n]]

        return proposal, kept

    def posterior(self, observed: Any = None, *, features: Any = None) -> NPEPosterior:
        """The amortized posterior given an observation (or a batch of observations).

        **Arguments:**

        - `observed`: a signal `(n_samples, n_channels)` or a batch `(m, n_samples,
          n_channels)`, or a `brainmass.Recording` (a list for a batch); its summaries
          are computed here.
        - `features`: instead, raw summary features `(*summary shape)` or `(m, *summary
          shape)` (as in a bank's `x`).
        """
        self._need_trained()
        if (observed is None) == (features is None):
            raise ValueError("posterior: pass exactly one of observed= or features=.")
        if observed is not None:
            obs = jnp.asarray(self.observed_signal(observed))
            return NPEPosterior(self, self.features(obs), batch=obs.ndim == 3)
        raw = jnp.asarray(features, dtype=float)
        shape = tuple(self.summary.shape)
        if raw.shape[raw.ndim - len(shape) :] != shape or raw.ndim not in (
            len(shape),
            len(shape) + 1,
        ):
            raise ValueError(f"features: expected shape {shape} or (m, *{shape}), got {raw.shape}.")
        batch = raw.ndim == len(shape) + 1
        return NPEPosterior(self, self._standardise(raw if batch else raw[None], batch), batch)


@final
class NPEPosterior(eqx.Module):
    """The posterior of an `NPE` at one observation, or at a batch of `m` observations.

    Made by `NPE.posterior`. Draws are in the parameters' canonical units, inside the
    priors' supports. An immutable equinox module: the NPE and the standardised
    condition (`(k,)`, or `(m, k)` for a batch) are its children, `batch` is static.
    """

    npe: NPE
    condition: jax.Array
    batch: bool = eqx.field(static=True)

    def __init__(self, npe: NPE, condition: Any, batch: bool):
        self.npe = npe
        self.condition = jnp.asarray(condition)
        self.batch = bool(batch)

    @property
    def n_observations(self) -> int:
        """`m` for a batch, 1 for a single observation."""
        return int(self.condition.shape[0]) if self.batch else 1

    @_flowjax
    def sample_flat(self, key: Any, num_samples: int) -> jax.Array:
        """Draws as flat vectors: `(num_samples, d)`, or `(m, num_samples, d)` for a batch."""
        check_integers(("num_samples", num_samples, 1))
        return _sample_flat(
            self.npe.flow,
            self.npe._norm,
            self.npe.space,
            key,
            self.condition,
            int(num_samples),
            self.batch,
        )

    def sample(self, key: Any, num_samples: int) -> dict[str, np.ndarray]:
        """Draws `{path: (num_samples, *shape)}` (a batch: `(m, num_samples, *shape)`)."""
        flat = self.sample_flat(key, num_samples)
        return {p: np.asarray(v) for p, v in self.npe.space.split(flat).items()}

    @_flowjax
    def log_prob(self, theta: Any) -> jax.Array:
        """Posterior log density at `theta` (`{path: value}` or flat `(..., d)`), per draw.

        A density over the parameters in canonical units (the Jacobians of the support
        bijection and of the standardisation included); `-inf` outside the support. For a
        batch posterior, `theta` broadcasts against the `m` observations: pass `(m, ..., d)`
        values or one set for all.
        """
        space, norm = self.npe.space, self.npe._norm
        flat = space.join(theta) if isinstance(theta, Mapping) else jnp.asarray(theta, float)
        z = space.unconstrain(flat)
        _, logdet = space.constrain(z)
        u = (z - norm["z_mean"]) / norm["z_std"]
        cond = self.condition
        if self.batch:
            extra = u.ndim - 2  # (m, ..., d): align the conditions with the leading axis
            cond = cond.reshape(cond.shape[:1] + (1,) * max(extra, 0) + cond.shape[1:])
        lp = self.npe.flow.log_prob(u, cond) - jnp.sum(jnp.log(norm["z_std"])) - logdet
        return jnp.where(jnp.isfinite(lp), lp, -jnp.inf)

    def to_posterior(self, key: Any, num_samples: int = 1000) -> Posterior | list[Posterior]:
        """Draws as a `Posterior` (one chain; `.to_arviz()`, `summary()`); a batch: a list."""
        t0 = time.perf_counter()
        draws = self.sample(key, num_samples)
        wall = time.perf_counter() - t0
        dims, coords = _dims(self.npe)
        units = {p: str(u) for p, u in self.npe.space.units.items()}

        def make(i: int | None) -> Posterior:
            samples = {p: (v if i is None else v[i])[None] for p, v in draws.items()}
            return Posterior(
                samples=samples,
                sample_stats={},
                units=units,
                method="npe",
                dims=dims,
                coords=coords,
                info={"wall_time": wall, "num_samples": int(num_samples), "num_chains": 1},
            )

        return [make(i) for i in range(self.n_observations)] if self.batch else make(None)

    def __repr__(self) -> str:
        what = f"{self.n_observations} observations" if self.batch else "one observation"
        return f"NPEPosterior({self.npe.space!r}, {what})"


@eqx.filter_jit
def _sample_flat(flow, norm, space, key, condition, n, batch):
    u = flow.sample(key, (n,), condition=condition)  # (n, d) or (n, m, d)
    z = u * norm["z_std"] + norm["z_mean"]
    theta, _ = space.constrain(z)
    return jnp.moveaxis(theta, 0, 1) if batch else theta


def _dims(npe: NPE) -> tuple[dict[str, list[str]], dict[str, Any]]:
    dims, coords = {}, {}
    n = None if npe.labels is None else len(npe.labels)
    for p, shape in npe.space.shapes.items():
        if shape and n is not None and shape == (n,):
            dims[p] = ["region"]
            coords["region"] = np.asarray(npe.labels)
        elif shape:
            dims[p] = [f"{p}_dim_{i}" for i in range(len(shape))]
    return dims, coords
