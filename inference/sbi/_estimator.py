"""The estimator NPE and NLE share: parameter space, summary, flow, training, saving."""

from __future__ import annotations

import abc
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import brainmass as bm

from .._checks import check_integers
from .._modules import evolve
from ..bank import Identity, PriorSpace, SimulationBank, as_summary, signal_shape, simulate_bank
from . import _io
from ._flows import FLOWS, _flowjax, _safe_std, fit_flow
from ._io import _json, _on_an_estimator


class _Held:
    """A value kept in a static field by reference: hashed and compared by identity.

    The training bank is a mutable dataclass (unhashable), and its arrays are data, not
    weights: held like this it is neither a leaf that `jax.jit` traces nor a key it
    cannot hash.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return f"{type(self.value).__name__}(...)"


class AbstractFlowEstimator(eqx.Module):
    """What NPE and NLE share: the parameter space, the summary, the flow, training, saving.

    Estimators are immutable equinox modules. The simulator, the `PriorSpace`, the summary
    (and, once trained, the flow, the standardisation `_norm` and the fitted summary) are
    pytree children, so the flow's weights are leaves (`eqx.filter(npe, eqx.is_array)`) and
    an estimator is an argument of `eqx.filter_jit`, or an unmapped one of `jax.vmap`, like
    any pytree. The settings, the region labels, the training facts (`losses`, `info`) and
    the training bank are static fields. A compiled function of an estimator is reused
    for a copy with other weights in the same flow (`eqx.combine` of new arrays with the
    flow's static part); separately trained or loaded estimators differ in static parts
    (their training facts, and a function flowjax builds into each flow), so it retraces
    for each.

    Training and loading return new estimators (`npe = npe.train_on(bank, key)`); nothing
    is assigned to an estimator once built. The fields and `__init__` are here; the final
    classes, `NPE` and `NLE`, say which way the flow runs (`_flow_shapes`, `_roles`),
    check their own settings (`__check_init__`) and train (`train`).
    """

    kind: eqx.AbstractClassVar[str]

    sim: bm.Simulator | None
    space: PriorSpace
    summary: Any
    embedding: Any
    flow: Any  # the flowjax distribution, None until trained
    _norm: dict[str, jax.Array] | None  # the standardisation: z_mean, z_std, x_mean, x_std
    _fitted_summary: Any
    params: Any = eqx.field(static=True)
    labels: tuple[str, ...] | None = eqx.field(static=True)
    # the flow settings as (name, value) pairs in a fixed order (`settings` is the dict)
    _settings: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    # the training losses per epoch, ("train", (...)), ("val", (...)) (`losses` is the dict)
    _losses: tuple[tuple[str, tuple[float, ...]], ...] = eqx.field(static=True)
    _info: str = eqx.field(static=True)  # the training facts as JSON text (`info`)
    _bank: _Held | None = eqx.field(static=True)
    _signal: tuple[int, int] | None = eqx.field(static=True)  # loaded without a simulator

    def __init__(
        self,
        sim: bm.Simulator | None,
        priors: Mapping[str, Any] | PriorSpace,
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
        if isinstance(priors, PriorSpace):
            self.space = priors
        else:
            self.space = PriorSpace(sim if params is None else None, priors)
        self.params = params
        self.sim = sim
        if summary is None:
            summary = Identity()
        self.summary = as_summary(summary, sim) if sim is not None else summary
        self._settings = (
            ("flow", flow),
            ("flow_layers", int(flow_layers)),
            ("knots", int(knots)),
            ("interval", float(interval)),
            ("nn_width", int(nn_width)),
            ("nn_depth", int(nn_depth)),
        )
        self.embedding = embedding
        self.flow = None
        self._norm = None
        self._fitted_summary = None
        self._losses = (("train", ()), ("val", ()))
        self._info = "{}"
        self._bank = None
        self._signal = None
        self.labels = None if sim is None else tuple(sim.network.connectome.labels)

    # ------------------------------------------------------------------ attributes
    @property
    def settings(self) -> dict[str, Any]:
        """The flow settings: `flow`, `flow_layers`, `knots`, `interval`, `nn_width`, `nn_depth`."""
        return dict(self._settings)

    @property
    def losses(self) -> dict[str, list[float]]:
        """`{"train": [...], "val": [...]}`: mean negative log-likelihood per epoch (a new dict)."""
        return {name: list(values) for name, values in self._losses}

    @property
    def info(self) -> dict[str, Any]:
        """Training facts: wall time, epochs, best epoch, simulations used (a new dict)."""
        return json.loads(self._info)

    @property
    def bank(self) -> SimulationBank | None:
        """The bank it was trained on (None untrained, or loaded from a file)."""
        return None if self._bank is None else self._bank.value

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

    @abc.abstractmethod
    def _flow_shapes(self, raw_shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        """(the flow's dimension, the shape of its condition) for features of `raw_shape`."""

    @abc.abstractmethod
    def _roles(self, zs: Any, xs: Any) -> tuple[Any, Any]:
        """(target, condition) of the training pairs from standardised parameters and features."""

    # ------------------------------------------------------------------ training
    def simulate(self, key: Any, num_simulations: int, **kwargs: Any) -> SimulationBank:
        """A bank of `num_simulations` prior simulations (see `simulate_bank` for kwargs)."""
        self._need_sim("simulate")
        return simulate_bank(
            self.sim, self.space, self.summary, key, num_simulations, params=self.params, **kwargs
        )

    @abc.abstractmethod
    def train(self, key: Any, num_simulations: int, **kwargs: Any) -> Self:
        """Simulate a bank from the priors and train on it; returns the trained estimator."""

    def _simulate_and_train(
        self,
        key: Any,
        num_simulations: int,
        *,
        checkpoint: str | os.PathLike | None = None,
        chunk_size: int | None = None,
        progress: bool = True,
        **fit_kwargs: Any,
    ) -> Self:
        """`train` with one bank of prior simulations (the arguments of `NPE.train`)."""
        k_bank, k_fit = jax.random.split(key)
        bank = self.simulate(
            k_bank, num_simulations, chunk_size=chunk_size, checkpoint=checkpoint, progress=progress
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
    ) -> Self:
        """Train the flow on a bank (maximum likelihood, Adam); returns the trained estimator.

        A new estimator is returned (`npe = npe.train_on(bank, key)`); this one is left as
        it was (untrained, or trained as before), as equinox modules are.

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
        self._check_bank_priors(bank)
        summary = self.summary
        if isinstance(summary, Identity) and summary.shape is None:
            summary = Identity(bank.x.shape[1:])  # features given as they are
        if tuple(bank.x.shape[1:]) != tuple(summary.shape):
            raise ValueError(
                f"bank: its summaries have shape {bank.x.shape[1:]}, this estimator's summary "
                f"gives {tuple(summary.shape)}."
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
        fitted = summary.fit(np.asarray(bank.x))
        x = np.asarray(fitted.project(jnp.asarray(bank.x)))
        z = np.asarray(self.space.unconstrain(jnp.asarray(bank.theta)))
        keep = np.all(np.isfinite(z), axis=1) & np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
        z, x = z[keep], x[keep]  # a draw exactly on a bound has an infinite z
        norm = {
            "z_mean": z.mean(0),
            "z_std": _safe_std(z),
            "x_mean": x.mean(0),
            "x_std": _safe_std(x),
        }
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
        best = int(np.argmin(losses["val"]))
        info = {
            "train_s": time.perf_counter() - t0,
            "epochs": len(losses["train"]),
            "best_epoch": best + 1,
            "best_val_loss": float(losses["val"][best]),
            "n_train": n_train,
            "n_validation": len(zs) - n_train,
            "n_dropped": int((~keep).sum()),
            "stopped_early": len(losses["train"]) < max_epochs,
        }
        # a new estimator (self is left untouched): the trained state replaces the untrained
        return evolve(
            self,
            summary=summary,
            _fitted_summary=fitted,
            _norm={k: jnp.asarray(v) for k, v in norm.items()},
            flow=flow,
            _losses=tuple((k, tuple(float(v) for v in vals)) for k, vals in losses.items()),
            _info=_json(info),
            _bank=_Held(bank),
        )

    def _check_bank_priors(self, bank: SimulationBank) -> None:
        """Refuse a bank drawn under other priors than this estimator's.

        Compares the bank's `fingerprint["priors"]` (a digest of its `PriorSpace`'s
        priors, recorded by `simulate_bank` and `SimulationBank.from_arrays`) with this
        estimator's `space.fingerprint()`. A bank that records no priors is refused too.
        """
        fp = bank.fingerprint if isinstance(bank.fingerprint, Mapping) else {}
        drawn, mine = fp.get("priors"), self.space.fingerprint()
        if drawn == mine:
            return
        what = (
            "records no priors (no fingerprint['priors'])"
            if drawn is None
            else f"was drawn under other priors (setting 'priors': bank {drawn}, this "
            f"estimator {mine})"
        )
        raise ValueError(
            f"bank: it {what}; the posterior would be that of the bank's priors. Train on a "
            f"bank of this estimator's priors ({self.space!r}): its simulate(...), "
            "simulate_bank(sim, estimator.space, ...) or SimulationBank.from_arrays(theta, x, "
            "estimator.space)."
        )

    # ------------------------------------------------------------------ using
    def observed_signal(self, observed: Any) -> Any:
        """`observed` with `brainmass.Recording`s turned into the simulator's signal.

        A recording becomes `rec.for_simulator(self.sim)` (period, channels and sample
        times checked and aligned; its signal, checked for NaN and flat channels, for
        an estimator without a simulator); a list of recordings is stacked into a
        batch. Anything else is returned unchanged.
        """

        def one(rec):
            if self.sim is None:  # nothing to align with: its signal, checked
                return np.asarray(rec.check().signal)
            return np.asarray(rec.for_simulator(self.sim))

        if isinstance(observed, bm.Recording):
            return one(observed)
        if (
            isinstance(observed, (list, tuple))
            and observed
            and all(isinstance(r, bm.Recording) for r in observed)
        ):
            return np.stack([one(r) for r in observed])
        return observed

    def features(self, observed: Any) -> jax.Array:
        """Standardised conditioning features of observed signals.

        `observed`: one signal `(n_samples, n_channels)` as the simulator's monitor gives
        it, or a batch `(m, n_samples, n_channels)`; or a `brainmass.Recording` (a list
        of them for a batch), aligned with the simulator (`observed_signal`). Returns
        `(k,)` or `(m, k)` (or the embedding's input shape).
        """
        self._need_trained()
        obs = jnp.asarray(self.observed_signal(observed), dtype=float)
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
        bound = getattr(self.summary, "_signal_shape", None)  # a summary bound to a signal
        return self._signal or bound

    def _need_sim(self, what: str) -> None:
        if self.sim is None:
            raise ValueError(
                f"{what}: this estimator has no simulator; build it with one, "
                f"{type(self).__name__}(sim, priors, summary, ...), to simulate and train (a "
                "saved one: then .load(path) on it)."
            )

    def _need_trained(self) -> None:
        if self.flow is None:
            raise ValueError(
                f"{type(self).__name__}: not trained yet; call train(key, num_simulations) first."
            )

    # ------------------------------------------------------------------ saving
    @property
    def _storage_kind(self) -> str:
        return f"inference.{self.kind.upper()}"

    def _fingerprint(self) -> dict[str, Any]:
        """Every setting that changes the trained estimator's answers, by name.

        Each prior (`"priors.<path>"`), the parameter layout, the summary, the embedding,
        the flow settings (`"flow"`, `"knots"`, ...) and the raw feature shape; with a
        simulator also `"signal_shape"`, `"params"` and the simulator's settings
        (`"simulator.dt"`, `"simulator.solver"`, ...: `Simulator.fingerprint`).
        """
        return _io.estimator_fingerprint(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Save the trained estimator: arrays and a JSON header, never a pickle.

        The file (`brainmass.storage`: an `.npz` archive written atomically) holds the
        flow's weights, the standardisation and the fitted summary's arrays (e.g. a PCA's
        mean and axes); its header the flow settings, the losses, `info`, the region
        labels, the signal and feature shapes, the package versions and a fingerprint of
        every setting that changes the answers (each prior, the summary, the embedding,
        the flow settings, the simulator's settings). What cannot be stored without
        pickle (the priors, the summary and the embedding objects, the simulator) is not
        in the file: build the estimator again as it was built for training and load the
        weights into it, `NPE(sim, priors, summary, ...).load(path)` (see `load`).

        **Arguments:**

        - `path`: the file (`.npz` by convention; the suffix is not changed).

        **Returns:** `path` as a `Path`.
        """
        return _io.save_estimator(self, path)

    def _raw_shape(self) -> tuple[int, ...]:
        shape = self._feature_shape()
        return shape if self.embedding is not None else (int(math.prod(shape)),)

    @_on_an_estimator
    def load(self, path: str | os.PathLike) -> Self:
        """A trained copy of this estimator, with the weights and state saved in `path`.

        The file holds arrays and settings only (see `save`), so the estimator is built
        again as it was built for training (the same priors, summary, embedding and flow
        settings) and the weights are loaded into it; `self` is not changed:

            npe = inf.NPE(sim, priors, summary, flow_layers=3).load("npe.npz")
            npe = inf.NPE(None, priors, summary, flow_layers=3).load("npe.npz")

        With the simulator (the first form) the estimator can also simulate and train
        again, and the simulator's settings are checked against the file's. Without one
        (`sim=None`, the second form) it computes posteriors only: an unbound
        `inference.summaries` statistic is bound to the saved signal shape and sampling
        period, so `posterior(observed_signal)` works, and `summary=None` takes the saved
        feature shape.

        **Arguments:**

        - `path`: a file written by `save`.

        **Returns:** the trained estimator (a new object).

        **Raises:** `FileNotFoundError` when `path` does not exist;
        `brainmass.storage.StorageError` (a `ValueError`) naming `path` when the file is
        damaged, truncated, not a saved estimator of this kind, or was written under
        other settings than this estimator's (each setting that differs is named:
        `priors.<path>`, `summary`, `embedding`, `flow_layers`, `simulator.dt`, ...).
        """
        return _io.load_estimator(self, path)

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
