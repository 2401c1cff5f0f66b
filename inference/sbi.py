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

import copy
import functools
import hashlib
import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

import brainmass as bm
from brainmass import storage
from brainmass.progress import progress_bar

from ._checks import check_integers
from .bank import (
    Identity,
    ParameterSpace,
    SimulationBank,
    _FunctionSummary,
    as_summary,
    signal_shape,
    simulate_bank,
)
from .likelihoods import AbstractLikelihood, SignalSpec
from .priors import prior_token
from .results import Posterior

__all__ = ["NLE", "NPE", "Learned", "NPEPosterior", "fit_flow"]

FLOWS = ("maf", "coupling")


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


_NORM = ("z_mean", "z_std", "x_mean", "x_std")


class _on_an_estimator:  # noqa: N801 - used as a method decorator
    """A method of a built estimator; called on the class, an error that shows the call."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self.fn = fn

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is not None:
            return self.fn.__get__(obj, owner)
        fn, name = self.fn, getattr(owner, "__name__", "NPE")

        @functools.wraps(fn)
        def on_class(*args: Any, **kwargs: Any) -> Any:
            if args and isinstance(args[0], owner):  # NPE.load(npe, path)
                return fn(*args, **kwargs)
            raise TypeError(
                f"{name}.{fn.__name__}: call it on an estimator built as for training, "
                f"{name}(sim, priors, summary, ...).{fn.__name__}(path) (sim=None for "
                "posteriors only): the file holds the weights and settings, not the priors "
                "or the summary, which could only be stored with pickle."
            )

        return on_class


def _described(obj: Any) -> str | None:
    """A readable name of an object (a summary, an embedding, a function) and its digest."""
    if obj is None:
        return None
    name = obj.__qualname__ if hasattr(obj, "__code__") else repr(obj)
    name = re.sub(r" at 0x[0-9a-fA-F]+", "", name)
    return f"{name} digest:{storage.digest(obj)}"


def _shape_of(summary: Any) -> tuple[int, ...] | None:
    """The raw feature shape of a summary, None when it is not bound yet."""
    try:
        shape = summary.shape
    except (AttributeError, ValueError):
        return None
    return None if shape is None else tuple(int(n) for n in shape)


def _simulator_setting(name: str) -> bool:
    """Whether a fingerprint entry describes the simulator (compared only when both have one)."""
    return name in ("signal_shape", "params") or name.startswith("simulator.")


def _template_summary(
    summary: Any, signal: tuple[int, int] | None, period: float | None, shape: tuple[int, ...]
) -> Any:
    """The summary of an estimator built without a simulator, bound as the saved one was."""
    if type(summary) is Identity and summary.shape is None:  # summary=None: the bank's x
        return Identity(shape)
    unbound = not getattr(summary, "bound", True)
    if hasattr(summary, "bind_signal") and unbound and None not in (signal, period):
        return summary.bind_signal(period, signal)
    if callable(summary) and not hasattr(summary, "fit"):  # a plain function
        return _FunctionSummary(summary, shape)
    return summary


def _is_summary(obj: Any) -> bool:
    return callable(getattr(obj, "fit", None)) and callable(getattr(obj, "project", None))


_JSON_SCALARS = (type(None), bool, int, float, str)


def _json_value(value: Any) -> bool:
    if isinstance(value, _JSON_SCALARS):
        return True
    return isinstance(value, (list, tuple)) and all(_json_value(v) for v in value)


def _summary_state(fitted: Any, template: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """What `fit` learned: the fitted summary's arrays, and its plain values that changed.

    Walks the attributes of the fitted summary and of the summaries it holds (a
    `Combined`'s parts), side by side with the unfitted `template`. Returns
    `({attribute path: array}, {attribute path: [kind, JSON value]})`; raises
    `TypeError` for a learned attribute that can be stored only with pickle.
    """
    arrays: dict[str, Any] = {}
    values: dict[str, Any] = {}

    def walk(obj: Any, like: Any, name: str, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(obj, (list, tuple)):
            for i, item in enumerate(obj):
                other = like[i] if isinstance(like, (list, tuple)) and i < len(like) else None
                walk(item, other, f"{name}{i}.", depth + 1)
            return
        for attr, value in vars(obj).items():
            old = getattr(like, attr, None)
            key = f"{name}{attr}"
            if isinstance(value, (np.ndarray, np.generic, jax.Array)):
                arrays[key] = value
            elif _is_summary(value) and hasattr(value, "__dict__"):
                walk(value, old, f"{key}.", depth + 1)
            elif isinstance(value, (list, tuple)) and any(_is_summary(v) for v in value):
                walk(value, old, f"{key}.", depth + 1)
            elif value is old:
                continue
            elif _json_value(value):
                same = _json_value(old) and type(old) is type(value) and old == value
                if not same:
                    plain = list(value) if isinstance(value, tuple) else value
                    values[key] = [type(value).__name__, plain]
            else:
                raise TypeError(
                    f"save: the fitted summary's {key} ({type(value).__name__}) cannot be "
                    "stored without pickle; a summary's fit should learn arrays or numbers."
                )

    if fitted is not None and hasattr(fitted, "__dict__"):
        walk(fitted, template, "", 0)
    return arrays, values


def _restore_summary(
    template: Any, arrays: Mapping[str, Any], values: Mapping[str, Any], label: str
) -> Any:
    """The fitted summary: `template` (unfitted, bound) with the saved state put back."""
    out = template
    items = [(k, v) for k, v in arrays.items()]
    for key, (kind, value) in values.items():
        items.append((key, tuple(value) if kind == "tuple" else value))
    for key, value in sorted(items, key=lambda kv: kv[0]):
        out = _assign(out, key.split("."), value, key, label)
    return out


def _assign(obj: Any, path: list[str], value: Any, key: str, label: str) -> Any:
    """A copy of `obj` with the attribute (or item) at `path` set to `value`."""
    head, rest = path[0], path[1:]
    if isinstance(obj, (list, tuple)):
        if not head.isdigit() or int(head) >= len(obj):
            raise storage.StorageError(
                f"{label} holds a fitted summary state ({key}) for another summary: it was "
                "saved with another summary."
            )
        items = list(obj)
        items[int(head)] = _assign(items[int(head)], rest, value, key, label) if rest else value
        return type(obj)(items)
    if not _is_summary(obj) or not hasattr(obj, head):
        raise storage.StorageError(
            f"{label} holds a fitted summary state ({key}) that this summary ({obj!r}) does "
            "not have: it was saved with another summary."
        )
    child = _assign(getattr(obj, head), rest, value, key, label) if rest else value
    new = copy.copy(obj)
    object.__setattr__(new, head, child)
    return new


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
        self._check_bank_priors(bank)
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

    def _check_bank_priors(self, bank: SimulationBank) -> None:
        """Refuse a bank drawn under other priors than this estimator's.

        Compares the bank's `fingerprint["priors"]` (a digest of its `ParameterSpace`'s
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
        bound = getattr(self.summary, "_signal_shape", None)  # a summary bound to a signal
        return getattr(self, "_signal", None) or bound

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
        fp: dict[str, Any] = {"parameters": list(self.space.paths)}
        fp.update({f"priors.{p}": prior_token(d) for p, d in self.space.priors.items()})
        fp["summary"] = _described(self.summary)
        fp["feature_shape"] = list(_shape_of(self.summary) or ())
        fp["embedding"] = _described(self.embedding)
        fp.update(self.settings)
        if self.sim is not None:
            fp["signal_shape"] = list(self._signal_shape())
            fp["params"] = _described(self.params)
            fp.update({f"simulator.{k}": v for k, v in self.sim.fingerprint().items()})
        return fp

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
        self._need_trained()
        fitted, values = _summary_state(self._fitted_summary, self.summary)
        arrays = storage.tree_arrays(self.flow, prefix="flow")
        arrays.update({f"norm.{k}": np.asarray(v) for k, v in self._norm.items()})
        arrays.update({f"fitted.{k}": np.asarray(v) for k, v in fitted.items()})
        signal = self._signal_shape()
        header = {
            "settings": self.settings,
            "losses": self.losses,
            "info": {k: v for k, v in self.info.items() if k != "versions"},
            "labels": None if self.labels is None else [str(s) for s in self.labels],
            "signal_shape": None if signal is None else [int(n) for n in signal],
            "period": getattr(self.summary, "_period", None),
            "feature_shape": list(_shape_of(self.summary) or ()),
            "raw_shape": [int(n) for n in self._raw_shape()],
            "fitted_arrays": {
                k: "jax" if isinstance(v, jax.Array) else "numpy" for k, v in fitted.items()
            },
            "fitted_values": values,
        }
        return storage.save(
            path, self._storage_kind, arrays, fingerprint=self._fingerprint(), header=header
        )

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
        path = Path(path)
        label = f"path: {path}"
        record = storage.load(path, self._storage_kind, what="path")
        h, arrays = record.header, record.arrays
        try:
            signal = None if h["signal_shape"] is None else tuple(int(n) for n in h["signal_shape"])
            feature_shape = tuple(int(n) for n in h["feature_shape"])
            raw_shape = tuple(int(n) for n in h["raw_shape"])
            norm = {k: jnp.asarray(arrays[f"norm.{k}"]) for k in _NORM}
            losses = {k: [float(v) for v in vals] for k, vals in h["losses"].items()}
            info, labels = dict(h["info"]), h["labels"]
            fitted_kinds, values = dict(h["fitted_arrays"]), dict(h["fitted_values"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise storage.StorageError(
                f"{label} is not a complete saved {type(self).__name__} ({err!r} missing or bad)."
            ) from err
        new = copy.copy(self)
        new.summary = _template_summary(self.summary, signal, h.get("period"), feature_shape)
        if self.sim is None:
            new._signal = signal
        saved = dict(h.get("fingerprint", {}))
        now = new._fingerprint()
        if self.sim is None or not any(k.startswith("simulator.") for k in saved):
            # posteriors only (or a file trained without a simulator): nothing to compare
            saved = {k: v for k, v in saved.items() if not _simulator_setting(k)}
            now = {k: v for k, v in now.items() if not _simulator_setting(k)}
        storage.check_fingerprint(
            saved,
            now,
            label=label,
            hint=(
                f"Build the {type(self).__name__} with the settings it was trained with, then "
                "call .load(path) on it."
            ),
        )
        fitted = {k[len("fitted.") :]: a for k, a in arrays.items() if k.startswith("fitted.")}
        fitted = {
            k: jnp.asarray(a) if fitted_kinds.get(k) == "jax" else a for k, a in fitted.items()
        }
        new._fitted_summary = _restore_summary(new.summary, fitted, values, label)
        if tuple(new._raw_shape()) != raw_shape:
            raise storage.StorageError(
                f"{label}: the fitted summary gives features of shape {new._raw_shape()}, the "
                f"saved flow takes {raw_shape}: it was saved with another summary."
            )
        skeleton = new._build_flow(jax.random.key(0), raw_shape)
        new.flow = storage.tree_from_arrays(arrays, skeleton, label=label, prefix="flow")
        new._norm = norm
        new.losses = losses
        new.info = {**info, "versions": dict(h.get("versions", {}))}
        new.labels = labels if self.sim is None else self.labels
        new.bank = None
        return new

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
