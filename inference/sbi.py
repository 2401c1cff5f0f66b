r"""Neural posterior estimation with flowjax: amortized posteriors from simulations alone.

`NPE(sim, priors, summary)` learns $q(\theta \mid x)$, a conditional normalizing flow,
from a bank of simulations $(\theta_i, x_i)$, $\theta_i \sim p(\theta)$, by maximising
$\sum_i \log q(\theta_i \mid x_i)$ (Papamakarios & Murray 2016; Greenberg et al. 2019).
Trained once, a new observation's posterior costs one network evaluation: a cohort is
one vectorised call.

Layout of the estimate: parameters are mapped to the real line by the bijections of
their priors' supports (`ParameterSpace`), standardised with the bank's mean and
standard deviation, and modelled by a flow conditioned on the standardised summary
features (or on a learned embedding of them, trained jointly with the flow). Samples
are mapped back, so no posterior mass falls outside the prior's support, and
`log_prob` includes the Jacobians of both maps: it is a density over the parameters in
their canonical units.

    npe = inf.NPE(sim, {"coupling.G": dist.Uniform(0, 1)}, inf.summaries.FC())
    npe.train(jax.random.key(0), num_simulations=5_000)
    post = npe.posterior(observed_signal)        # (n_samples, n_channels) or a batch
    draws = post.sample(jax.random.key(1), 1_000)   # {path: (1000, *shape)}
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import pickle
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

import brainmass as bm
from brainmass._progress import progress_bar

from ._checks import check_integers
from .bank import (
    Identity,
    ParameterSpace,
    SimulationBank,
    as_summary,
    signal_shape,
    simulate_bank,
)
from .likelihoods import AbstractLikelihood, SignalSpec
from .results import Posterior

__all__ = ["NLE", "NPE", "Learned", "NPEPosterior", "fit_flow"]

FLOWS = ("maf", "coupling")
_FORMAT = 1


def _flowjax(fn):
    """Run `fn` with NumPy rank promotion allowed.

    flowjax relies on it (its masks broadcast `(n, 1)` against `(n,)`), and brainmass users
    may set `jax_numpy_rank_promotion="raise"`.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.numpy_rank_promotion("allow"):
            return fn(*args, **kwargs)

    return wrapped


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {}
    for name in ("brainmass", "flowjax", "equinox", "jax", "numpyro"):
        try:
            out[name] = version(name)
        except Exception:  # noqa: BLE001 - an uninstalled distribution
            out[name] = "unknown"
    return out


class _FlowEstimator:
    """What NPE and NLE share: the parameter space, the summary, the flow, training, saving."""

    kind = "estimator"

    def __init__(
        self,
        sim: bm.Simulator | None,
        priors: Mapping[str, Any] | ParameterSpace,
        summary: Any,
        *,
        flow: str = "maf",
        embedding: Any = None,
        flow_layers: int = 5,
        knots: int = 8,
        interval: float = 4.0,
        nn_width: int = 64,
        nn_depth: int = 1,
        params: Any = None,
    ):
        if flow not in FLOWS:
            raise ValueError(f"flow: expected one of {FLOWS}, got {flow!r}.")
        check_integers(
            ("flow_layers", flow_layers, 1),
            ("knots", knots, 2),
            ("nn_width", nn_width, 1),
            ("nn_depth", nn_depth, 0),
        )
        if sim is not None and not isinstance(sim, bm.Simulator):
            raise ValueError(
                f"sim: expected a brainmass.Simulator or None, got {type(sim).__name__}."
            )
        if isinstance(priors, ParameterSpace):
            self.space = priors
        else:
            self.space = ParameterSpace(sim if params is None else None, priors)
        self.params = params
        self.sim = sim
        if summary is None:
            summary = Identity()
        self.summary = as_summary(summary, sim) if sim is not None else summary
        self.settings = {
            "flow": flow,
            "flow_layers": int(flow_layers),
            "knots": int(knots),
            "interval": float(interval),
            "nn_width": int(nn_width),
            "nn_depth": int(nn_depth),
        }
        self.embedding = embedding
        if flow == "coupling" and self.kind == "npe" and self.space.d < 2:
            raise ValueError(
                f"flow: a coupling flow needs at least two dimensions (this NPE infers "
                f"{self.space.d} parameter); use flow='maf'."
            )
        self.flow = None
        self.losses: dict[str, list[float]] = {"train": [], "val": []}
        self.bank: SimulationBank | None = None
        self.info: dict[str, Any] = {}
        self._fitted_summary = None
        self._norm: dict[str, np.ndarray] = {}
        self.labels = None if sim is None else list(sim.network.connectome.labels)

    # ------------------------------------------------------------------ building
    def _feature_shape(self) -> tuple[int, ...]:
        s = self._fitted_summary if self._fitted_summary is not None else self.summary
        return tuple(getattr(s, "out_shape", None) or s.shape)

    @_flowjax
    def _build_flow(self, key: Any, raw_shape: tuple[int, ...]):
        from flowjax.bijections import EmbedCondition, RationalQuadraticSpline
        from flowjax.distributions import Normal, Transformed
        from flowjax.flows import coupling_flow, masked_autoregressive_flow

        k_flow, k_embed = jax.random.split(key)
        st = self.settings
        dim, cond_shape = self._flow_shapes(raw_shape)
        if st["flow"] == "coupling" and dim < 2:
            raise ValueError(
                f"flow: a coupling flow needs at least two dimensions (this {self.kind} models "
                f"{dim}); use flow='maf'."
            )
        if self.embedding is not None:
            net = self.embedding.build(k_embed, cond_shape)
            spec = jax.ShapeDtypeStruct(cond_shape, jnp.result_type(float))
            cond_dim = int(math.prod(jax.eval_shape(net, spec).shape))
        else:
            net, cond_dim = None, int(math.prod(cond_shape))
        make = masked_autoregressive_flow if st["flow"] == "maf" else coupling_flow
        flow = make(
            k_flow,
            base_dist=Normal(jnp.zeros(dim)),
            transformer=RationalQuadraticSpline(knots=st["knots"], interval=st["interval"]),
            cond_dim=cond_dim,
            flow_layers=st["flow_layers"],
            nn_width=st["nn_width"],
            nn_depth=st["nn_depth"],
        )
        if net is not None:
            flow = Transformed(flow.base_dist, EmbedCondition(flow.bijection, net, cond_shape))
        return flow

    def _flow_shapes(self, raw_shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        """(the flow's dimension, the shape of its condition) for features of `raw_shape`."""
        raise NotImplementedError

    def _roles(self, zs: Any, xs: Any) -> tuple[Any, Any]:
        """(target, condition) of the training pairs from standardised parameters and features."""
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def simulate(self, key: Any, num_simulations: int, **kwargs: Any) -> SimulationBank:
        """A bank of `num_simulations` prior simulations (see `simulate_bank` for kwargs)."""
        self._need_sim("simulate")
        return simulate_bank(
            self.sim, self.space, self.summary, key, num_simulations, params=self.params, **kwargs
        )

    def train(
        self,
        key: Any,
        num_simulations: int,
        *,
        bank_path: str | os.PathLike | None = None,
        chunk_size: int | None = None,
        progress: bool = True,
        **fit_kwargs: Any,
    ) -> NPE:
        """Simulate a bank from the priors and train on it; returns self.

        **Arguments:**

        - `key`: a `jax.random` key (split for the bank and the training).
        - `num_simulations`: simulations in the bank (failed ones are dropped).
        - `bank_path`: keep the bank in this `.npz` (resumed if it exists: see
          `simulate_bank`).
        - `chunk_size`, `progress`: passed to `simulate_bank`.
        - `fit_kwargs`: passed to `train_on` (`max_epochs`, `patience`, ...).
        """
        k_bank, k_fit = jax.random.split(key)
        bank = self.simulate(
            k_bank, num_simulations, chunk_size=chunk_size, path=bank_path, progress=progress
        )
        return self.train_on(bank, k_fit, progress=progress, **fit_kwargs)

    def train_on(
        self,
        bank: SimulationBank,
        key: Any,
        *,
        validation_fraction: float = 0.1,
        max_epochs: int = 500,
        patience: int = 20,
        batch_size: int = 256,
        learning_rate: float = 5e-4,
        progress: bool = True,
    ) -> NPE:
        """Train the flow on a bank (maximum likelihood, Adam); returns self.

        **Arguments:**

        - `bank`: a `SimulationBank` made with these priors and summary.
        - `key`: a `jax.random` key (initialisation, validation split, minibatches).
        - `validation_fraction`: share of the bank held out; training stops after
          `patience` epochs without a better validation loss and keeps the best flow.
        - `max_epochs`, `batch_size`, `learning_rate`: the optimisation.
        - `progress`: show a progress bar.

        A summary with a data-dependent reduction (`FC(pca=k)`) is fitted on the bank first.
        """
        if not isinstance(bank, SimulationBank):
            raise ValueError(f"bank: expected an inference.SimulationBank, got {bank!r}.")
        if list(bank.names) != list(self.space.names):
            raise ValueError(
                f"bank: it holds the parameters {bank.names}, this estimator infers "
                f"{self.space.names}."
            )
        if isinstance(self.summary, Identity) and self.summary.shape is None:
            self.summary = Identity(bank.x.shape[1:])  # features given as they are
        if tuple(bank.x.shape[1:]) != tuple(self.summary.shape):
            raise ValueError(
                f"bank: its summaries have shape {bank.x.shape[1:]}, this estimator's summary "
                f"gives {tuple(self.summary.shape)}."
            )
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction: expected a fraction in (0, 1), got {validation_fraction}."
            )
        check_integers(("max_epochs", max_epochs, 1), ("patience", patience, 0))
        check_integers(("batch_size", batch_size, 1))
        n_val = int(round(validation_fraction * len(bank)))
        if len(bank) - n_val < 2 or n_val < 1:
            raise ValueError(
                f"bank: {len(bank)} simulations are too few to train with a validation "
                f"fraction of {validation_fraction} (at least 2 training and 1 validation)."
            )
        t0 = time.perf_counter()
        self._fitted_summary = self.summary.fit(np.asarray(bank.x))
        x = np.asarray(self._fitted_summary.project(jnp.asarray(bank.x)))
        z = np.asarray(self.space.unconstrain(jnp.asarray(bank.theta)))
        keep = np.all(np.isfinite(z), axis=1) & np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
        z, x = z[keep], x[keep]  # a draw exactly on a bound has an infinite z
        norm = {
            "z_mean": z.mean(0),
            "z_std": _safe_std(z),
            "x_mean": x.mean(0),
            "x_std": _safe_std(x),
        }
        self._norm = {k: jnp.asarray(v) for k, v in norm.items()}
        zs = (z - norm["z_mean"]) / norm["z_std"]
        xs = (x - norm["x_mean"]) / norm["x_std"]
        if self.embedding is None:
            xs = xs.reshape(len(xs), -1)
        k_init, k_fit = jax.random.split(key)
        flow = self._build_flow(k_init, tuple(xs.shape[1:]))
        n_train = len(zs) - int(round(validation_fraction * len(zs)))
        target, condition = self._roles(jnp.asarray(zs), jnp.asarray(xs))
        flow, losses = fit_flow(
            k_fit,
            flow,
            target,
            condition,
            validation_fraction=validation_fraction,
            max_epochs=int(max_epochs),
            patience=int(patience),
            batch_size=int(min(batch_size, n_train)),
            learning_rate=learning_rate,
            progress=progress,
        )
        self.flow = flow
        self.losses = {k: [float(v) for v in vals] for k, vals in losses.items()}
        self.bank = bank
        best = int(np.argmin(self.losses["val"]))
        self.info = {
            "train_s": time.perf_counter() - t0,
            "epochs": len(self.losses["train"]),
            "best_epoch": best + 1,
            "best_val_loss": self.losses["val"][best],
            "n_train": n_train,
            "n_validation": len(zs) - n_train,
            "n_dropped": int((~keep).sum()),
            "stopped_early": len(self.losses["train"]) < max_epochs,
        }
        return self

    # ------------------------------------------------------------------ using
    def features(self, observed: Any) -> jax.Array:
        """Standardised conditioning features of observed signals.

        `observed`: one signal `(n_samples, n_channels)` as the simulator's monitor gives
        it, or a batch `(m, n_samples, n_channels)`. Returns `(k,)` or `(m, k)` (or the
        embedding's input shape).
        """
        self._need_trained()
        obs = jnp.asarray(observed, dtype=float)
        shape = self._signal_shape()
        if shape is not None and obs.shape[-2:] != shape or obs.ndim not in (2, 3):
            raise ValueError(
                f"observed: expected a signal of shape {shape} (n_samples, n_channels) or a "
                f"batch (m, *{shape}), got {obs.shape}."
            )
        raw = jax.vmap(self.summary)(obs.reshape((-1,) + obs.shape[-2:]))
        return self._standardise(raw, batch=obs.ndim == 3)

    @_flowjax
    def _standardise(self, raw: Any, batch: bool) -> jax.Array:
        x = self._fitted_summary.project(jnp.asarray(raw))
        x = (x - self._norm["x_mean"]) / self._norm["x_std"]
        if self.embedding is None:
            x = x.reshape(x.shape[0], -1)
        if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError("observed: its summary features are not finite (NaN or inf).")
        return x if batch else x[0]

    def _signal_shape(self) -> tuple[int, int] | None:
        if self.sim is not None:
            return signal_shape(self.sim)
        return getattr(self, "_signal", None)

    def _need_sim(self, what: str) -> None:
        if self.sim is None:
            raise ValueError(
                f"{what}: this estimator has no simulator (it was loaded); pass sim= to "
                "NPE.load to simulate and train again."
            )

    def _need_trained(self) -> None:
        if self.flow is None:
            raise ValueError(
                f"{type(self).__name__}: not trained yet; call train(key, num_simulations) first."
            )

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike) -> Path:
        """Save the trained estimator: flow weights (equinox) plus what is needed to rebuild it.

        The file (pickle; load only files you trust) holds the priors, the bound summary,
        the flow settings, the standardisation, the losses and the package versions. The
        simulator is not saved: `NPE.load(path)` gives an estimator that computes posteriors;
        `NPE.load(path, sim=sim)` one that can also simulate and train again.
        """
        self._need_trained()
        buffer = io.BytesIO()
        eqx.tree_serialise_leaves(buffer, self.flow)
        meta = {
            "format": _FORMAT,
            "kind": self.kind,
            "versions": _versions(),
            "priors": self.space.priors,
            "space": self.space,
            "summary": self.summary,
            "fitted_summary": self._fitted_summary,
            "embedding": self.embedding,
            "settings": self.settings,
            "norm": {k: np.asarray(v) for k, v in self._norm.items()},
            "losses": self.losses,
            "info": self.info,
            "labels": self.labels,
            "signal": self._signal_shape(),
            "raw_shape": tuple(self._raw_shape()),
            "flow_bytes": buffer.getvalue(),
        }
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(meta, f)
        os.replace(tmp, path)
        return path

    def _raw_shape(self) -> tuple[int, ...]:
        shape = self._feature_shape()
        return shape if self.embedding is not None else (int(math.prod(shape)),)

    @classmethod
    def load(
        cls, path: str | os.PathLike, sim: bm.Simulator | None = None, params: Any = None
    ) -> NPE:
        """Load an estimator written by `save` (see there).

        `sim` (and `params`, if it was trained with one) to simulate and train again.
        """
        with open(Path(path), "rb") as f:
            meta = pickle.load(f)
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise ValueError(
                f"path: {path} is not a saved inference.{cls.__name__} (format {_FORMAT})."
            )
        if meta.get("kind", "npe") != cls.kind:
            kind = str(meta.get("kind", "?")).upper()
            raise ValueError(f"path: {path} holds an inference.{kind}, not a {cls.__name__}.")
        npe = cls(
            sim,
            meta["space"],
            meta["summary"],
            embedding=meta["embedding"],
            params=params,
            **meta["settings"],
        )
        if sim is not None and params is None:
            npe.space = ParameterSpace(sim, meta["priors"])
        npe._fitted_summary = meta["fitted_summary"]
        npe._norm = {k: jnp.asarray(v) for k, v in meta["norm"].items()}
        npe.losses, npe.info, npe.labels = meta["losses"], meta["info"], meta["labels"]
        npe._signal = meta["signal"]
        npe.info["versions"] = meta["versions"]
        skeleton = npe._build_flow(jax.random.key(0), tuple(meta["raw_shape"]))
        npe.flow = eqx.tree_deserialise_leaves(io.BytesIO(meta["flow_bytes"]), skeleton)
        return npe

    def plot_losses(self, ax: Any = None) -> Any:
        """Training and validation loss per epoch (mean negative log-likelihood)."""
        import matplotlib.pyplot as plt

        self._need_trained()
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        for name, values in self.losses.items():
            ax.plot(np.arange(1, len(values) + 1), values, label=name)
        ax.axvline(self.info.get("best_epoch", len(self.losses["val"])), color="k", ls=":")
        ax.set(
            xlabel="epoch", ylabel="negative log-likelihood", title=f"{self.kind.upper()} training"
        )
        ax.legend()
        return ax

    def __repr__(self) -> str:
        state = "untrained" if self.flow is None else f"trained on {self.info.get('n_train')}"
        return (
            f"{type(self).__name__}({self.space!r}, summary={self.summary!r}, "
            f"flow={self.settings['flow']}, {state})"
        )


class NPE(_FlowEstimator):
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

    After `train`/`train_on`: `flow` (the flowjax distribution), `losses`
    (`{"train": [...], "val": [...]}`, mean negative log-likelihood per epoch in
    standardised units), `bank` (the training bank), `info` (training facts).
    """

    kind = "npe"

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
        bank_path: str | os.PathLike | None = None,
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
        - `bank_path`: keep the banks in `.npz` files (round r > 1 in `<stem>_round<r>.npz`).
        - `chunk_size`, `progress`: passed to `simulate_bank`.
        - `fit_kwargs`: passed to `train_on` (`max_epochs`, `patience`, ...).

        `info["rounds"]` records each round's simulations and the prior mass its proposal
        kept (the acceptance rate of the truncation).
        """
        check_integers(("rounds", rounds, 1))
        if rounds == 1:
            return super().train(
                key,
                num_simulations,
                bank_path=bank_path,
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
        bank, history = None, []
        for r in range(rounds):
            proposal, kept = (
                (None, 1.0) if r == 0 else self._truncated_prior(observed, keys[2 * r], truncation)
            )
            path = None
            if bank_path is not None:
                base = Path(bank_path).with_suffix(".npz")
                path = base if r == 0 else base.with_name(f"{base.stem}_round{r + 1}.npz")
            new = self.simulate(
                keys[2 * r],
                per_round,
                chunk_size=chunk_size,
                path=path,
                progress=progress,
                proposal=proposal,
            )
            bank = new if bank is None else bank.merge(new)
            history.append({"round": r + 1, "simulations": len(new), "prior_mass_kept": kept})
            self.train_on(bank, keys[2 * r + 1], progress=progress, **fit_kwargs)
        self.info["rounds"] = history
        return self

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
          n_channels)`; its summaries are computed here.
        - `features`: instead, raw summary features `(*summary shape)` or `(m, *summary
          shape)` (as in a bank's `x`).
        """
        self._need_trained()
        if (observed is None) == (features is None):
            raise ValueError("posterior: pass exactly one of observed= or features=.")
        if observed is not None:
            obs = jnp.asarray(observed)
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


class NLE(_FlowEstimator):
    r"""Neural likelihood estimation: a conditional flow $q(x \mid \theta)$ of the summaries.

    The same flows, trained on the same banks as `NPE`, but as the density of the
    (standardised) summary features given the parameters (Papamakarios, Sterratt &
    Murray 2019). `likelihood()` turns it into an `inference.likelihoods` likelihood, so
    `BayesianModel` (NUTS, MAP, Laplace) and `CohortModel` (group and subject parameters)
    run on a learned likelihood of a stochastic simulator whose exact likelihood is
    intractable. Unlike NPE it does not depend on the prior it was trained under (within
    the region the bank covers), so one NLE serves many priors and hierarchical models.

    Arguments as `NPE`, except `embedding` (none: the flow models the flat features
    themselves). A summary must be flat (`(k,)` features).
    """

    kind = "nle"

    def __init__(self, sim: bm.Simulator | None, priors: Any, summary: Any, **kwargs: Any):
        if kwargs.get("embedding") is not None:
            raise ValueError(
                "embedding: an NLE models the summary features themselves; learned embeddings "
                "belong to NPE."
            )
        super().__init__(sim, priors, summary, **kwargs)

    def _flow_shapes(self, raw_shape):
        return int(math.prod(raw_shape)), (self.space.d,)

    def _roles(self, zs, xs):
        return xs.reshape(xs.shape[0], -1), zs

    @_flowjax
    def log_likelihood(self, features: Any, theta: Any) -> jax.Array:
        """The learned log density of standardised features given parameters.

        **Arguments:**

        - `features`: standardised features `(..., k)`, as `NLE.features(observed)` gives.
        - `theta`: `{path: value}` or flat `(..., d)` parameters in canonical units.

        **Returns:** `(...)`, the log density of the (raw, unstandardised) features: the
        standardisation's Jacobian is included, so values compare with exact likelihoods.
        """
        self._need_trained()
        space, norm = self.space, self._norm
        flat = space.join(theta) if isinstance(theta, Mapping) else jnp.asarray(theta, float)
        u = (space.unconstrain(flat) - norm["z_mean"]) / norm["z_std"]
        x = jnp.asarray(features)
        lp = self.flow.log_prob(x, u) - jnp.sum(jnp.log(norm["x_std"]))
        return jnp.where(jnp.isfinite(lp), lp, -jnp.inf)

    def likelihood(self) -> Learned:
        """The trained flow as a likelihood for `BayesianModel` / `CohortModel`."""
        self._need_trained()
        return Learned(self)


@final
class Learned(AbstractLikelihood):
    """A likelihood learned by an `NLE`: the data's summaries under the trained flow.

    The data are the observed signal `(n_samples, n_channels)` (its summaries are
    computed once, in `prepare`); the parameters the model infers must be the NLE's
    (same paths and shapes). No simulation runs inside the model (`needs_simulation` is
    False), so NUTS costs a flow evaluation per gradient. The pointwise log-likelihood is
    one value per observation (the features' joint density), and posterior predictive
    draws are summary features (standardised), not signals.
    """

    needs_simulation: ClassVar[bool] = False
    nle: Any = eqx.field(static=True)
    signal: SignalSpec | None = eqx.field(static=True)

    def __init__(self, nle: NLE):
        if not isinstance(nle, NLE):
            raise ValueError(f"nle: expected a trained inference.NLE, got {nle!r}.")
        self.nle = nle
        self.signal = None

    def noise_parameters(self):
        """None: the flow is the whole observation model."""
        return {}

    def check_simulator(self, sim):
        """Check that the simulator gives the signals the NLE's summary expects."""
        expected = self.nle._signal_shape()
        if expected is not None and tuple(signal_shape(sim)) != tuple(expected):
            raise ValueError(
                f"likelihood: the NLE was trained on signals of shape {expected}, this "
                f"simulator gives {signal_shape(sim)}."
            )

    def prepare(self, data):
        """The observed signal's standardised summary features `(k,)`."""
        x = jnp.asarray(data)
        if x.shape != self.spec.shape:
            raise ValueError(
                f"data: expected the monitor's signal of shape {self.spec.shape}, got {x.shape}."
            )
        return self.nle.features(x)

    def predict_without_simulation(self, sim):
        """Nothing to predict (the flow takes the parameters): zeros of the features' shape."""
        k = int(math.prod(self.nle._raw_shape()))
        return jnp.zeros((k,)), jnp.asarray(True)

    def distribution(self, prediction, noise, *, data=None, theta=None):
        """The flow at the model's parameters, as a NumPyro distribution over the features."""
        missing = [p for p in self.nle.space.paths if p not in theta]
        if missing:
            raise ValueError(
                f"likelihood: the NLE needs the parameters {list(self.nle.space.paths)}; the "
                f"model does not infer {missing}."
            )
        values = {p: theta[p] for p in self.nle.space.paths}
        return _FlowDistribution(self.nle, self.nle.space.join(values))

    def dims(self):
        """One dimension: the summary feature."""
        k = int(math.prod(self.nle._raw_shape()))
        return ["feature"], {"feature": np.arange(k)}

    def token(self):
        """The NLE's parameters and a hash of its trained flow's weights (for fingerprints)."""
        h = hashlib.sha256()
        for leaf in jax.tree.leaves(eqx.filter(self.nle.flow, eqx.is_array)):
            h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
        return f"Learned({list(self.nle.space.paths)}, flow {h.hexdigest()[:16]})"


class _FlowDistribution(dist.Distribution):
    """The NLE's flow at fixed parameters, as a NumPyro distribution over standardised features."""

    support = constraints.real_vector

    def __init__(self, nle: NLE, theta_flat: Any):
        self.nle = nle
        self.theta = jnp.asarray(theta_flat)
        k = int(math.prod(nle._raw_shape()))
        super().__init__(batch_shape=self.theta.shape[:-1], event_shape=(k,))

    def log_prob(self, value):
        """The learned log likelihood of standardised features `value` `(..., k)`."""
        return self.nle.log_likelihood(value, self.theta)

    @_flowjax
    def sample(self, key, sample_shape=()):
        """Standardised features drawn from the flow at these parameters."""
        norm, space = self.nle._norm, self.nle.space
        u = (space.unconstrain(self.theta) - norm["z_mean"]) / norm["z_std"]
        return self.nle.flow.sample(key, tuple(sample_shape), condition=u)


@_flowjax
def fit_flow(
    key: Any,
    flow: Any,
    target: jax.Array,
    condition: jax.Array,
    *,
    validation_fraction: float = 0.1,
    max_epochs: int = 500,
    patience: int = 20,
    batch_size: int = 256,
    learning_rate: float = 5e-4,
    clip_norm: float = 5.0,
    progress: bool = True,
) -> tuple[Any, dict[str, list[float]]]:
    """Fit a conditional flowjax distribution to `(target, condition)` pairs by maximum likelihood.

    One compiled epoch (a `lax.scan` over shuffled minibatches of Adam steps, gradients
    clipped to `clip_norm`) and one compiled validation pass per epoch; stops after
    `patience` epochs without a lower validation loss and returns the flow of the best
    epoch.

    **Arguments:**

    - `key`: a `jax.random` key (validation split and shuffling).
    - `flow`: a flowjax distribution with `cond_shape` matching `condition.shape[1:]`.
    - `target`: `(n, d)` values whose density is learned; `condition`: `(n, ...)`.
    - `validation_fraction`, `max_epochs`, `patience`, `batch_size`, `learning_rate`,
      `clip_norm`: the optimisation; `progress`: a progress bar over epochs.

    **Returns:** `(flow, {"train": [...], "val": [...]})`, mean negative log-likelihood per
    epoch.
    """
    import optax
    import paramax

    n = int(target.shape[0])
    n_val = max(1, int(round(validation_fraction * n)))
    k_split, key = jax.random.split(key)
    order = jax.random.permutation(k_split, n)
    val = (target[order[:n_val]], condition[order[:n_val]])
    train = (target[order[n_val:]], condition[order[n_val:]])
    n_train = n - n_val
    batch_size = int(min(batch_size, n_train))
    n_batches = n_train // batch_size
    params, static = eqx.partition(
        flow, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )
    optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(learning_rate))
    opt_state = optimizer.init(params)

    def loss(params, t, c):
        dist = paramax.unwrap(eqx.combine(params, static))
        return -jnp.mean(dist.log_prob(t, c))

    @jax.jit
    def epoch(params, opt_state, key, t, c):
        perm = jax.random.permutation(key, t.shape[0])[: n_batches * batch_size]
        batches = (
            t[perm].reshape((n_batches, batch_size) + t.shape[1:]),
            c[perm].reshape((n_batches, batch_size) + c.shape[1:]),
        )

        def step(carry, batch):
            params, opt_state = carry
            value, grads = jax.value_and_grad(loss)(params, *batch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), values = jax.lax.scan(step, (params, opt_state), batches)
        return params, opt_state, jnp.mean(values)

    validate = jax.jit(loss)
    losses: dict[str, list[float]] = {"train": [], "val": []}
    best, best_params, since = np.inf, params, 0
    bar = progress_bar(total=max_epochs, desc="training", unit="epoch", disable=not progress)
    try:
        for _ in range(max_epochs):
            key, k_epoch = jax.random.split(key)
            params, opt_state, train_loss = epoch(params, opt_state, k_epoch, *train)
            val_loss = float(validate(params, *val))
            losses["train"].append(float(train_loss))
            losses["val"].append(val_loss)
            bar.update(1)
            if val_loss < best:
                best, best_params, since = val_loss, params, 0
            else:
                since += 1
                if since > patience:
                    break
    finally:
        bar.close()
    if not np.isfinite(best):
        raise ValueError(
            "training: the validation loss was never finite; check the bank for extreme "
            "summaries or lower learning_rate."
        )
    return eqx.combine(best_params, static), losses


def _safe_std(a: np.ndarray) -> np.ndarray:
    sd = a.std(0)
    return np.where(sd > 1e-12, sd, 1.0)


class NPEPosterior:
    """The posterior of an `NPE` at one observation, or at a batch of `m` observations.

    Made by `NPE.posterior`. Draws are in the parameters' canonical units, inside the
    priors' supports.
    """

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
