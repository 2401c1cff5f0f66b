"""Saving and loading trained estimators: fingerprints, the fitted summary's state, the file.

No pickle: the flow's weights, the standardisation and the fitted summary's arrays go
into a `brainmass.storage` archive with a JSON header; the priors, the summary and the
embedding are built again from code and checked against the file's fingerprint.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from brainmass import storage

from .._modules import evolve
from ..bank import Identity, _FunctionSummary
from ..priors import prior_token

if TYPE_CHECKING:
    from ._estimator import AbstractFlowEstimator

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


def _json(value: Any) -> str:
    """`value` (dicts, lists and numbers: training facts) as JSON text, a hashable static."""

    def plain(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        raise TypeError(f"info: {type(v).__name__} is not a JSON value.")

    return json.dumps(value, default=plain)


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
    if dataclasses.is_dataclass(obj):  # an equinox summary: a new one with the field set
        return evolve(obj, **{head: child})
    new = copy.copy(obj)  # a plain summary object of the user's
    object.__setattr__(new, head, child)
    return new


def estimator_fingerprint(est: AbstractFlowEstimator) -> dict[str, Any]:
    """`AbstractFlowEstimator._fingerprint` (see its docstring)."""
    fp: dict[str, Any] = {"parameters": list(est.space.paths)}
    fp.update({f"priors.{p}": prior_token(d) for p, d in est.space.priors.items()})
    fp["summary"] = _described(est.summary)
    fp["feature_shape"] = list(_shape_of(est.summary) or ())
    fp["embedding"] = _described(est.embedding)
    fp.update(est.settings)
    if est.sim is not None:
        fp["signal_shape"] = list(est._signal_shape())
        fp["params"] = _described(est.params)
        fp.update({f"simulator.{k}": v for k, v in est.sim.fingerprint().items()})
    return fp


def save_estimator(est: AbstractFlowEstimator, path: str | os.PathLike) -> Path:
    """`AbstractFlowEstimator.save` (see its docstring)."""
    est._need_trained()
    fitted, values = _summary_state(est._fitted_summary, est.summary)
    arrays = storage.tree_arrays(est.flow, prefix="flow")
    arrays.update({f"norm.{k}": np.asarray(v) for k, v in est._norm.items()})
    arrays.update({f"fitted.{k}": np.asarray(v) for k, v in fitted.items()})
    signal = est._signal_shape()
    header = {
        "settings": est.settings,
        "losses": est.losses,
        "info": {k: v for k, v in est.info.items() if k != "versions"},
        "labels": None if est.labels is None else [str(s) for s in est.labels],
        "signal_shape": None if signal is None else [int(n) for n in signal],
        "period": getattr(est.summary, "_period", None),
        "feature_shape": list(_shape_of(est.summary) or ()),
        "raw_shape": [int(n) for n in est._raw_shape()],
        "fitted_arrays": {
            k: "jax" if isinstance(v, jax.Array) else "numpy" for k, v in fitted.items()
        },
        "fitted_values": values,
    }
    return storage.save(
        path, est._storage_kind, arrays, fingerprint=est._fingerprint(), header=header
    )


def load_estimator(est: AbstractFlowEstimator, path: str | os.PathLike) -> AbstractFlowEstimator:
    """`AbstractFlowEstimator.load` (see its docstring): a trained copy of `est`."""
    path = Path(path)
    label = f"path: {path}"
    record = storage.load(path, est._storage_kind, what="path")
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
            f"{label} is not a complete saved {type(est).__name__} ({err!r} missing or bad)."
        ) from err
    summary = _template_summary(est.summary, signal, h.get("period"), feature_shape)
    # the loaded estimator is a new one (`est` is the template, left as it was); the
    # template's fields with the file's summary state, weights and training facts
    new = evolve(est, summary=summary, _signal=signal if est.sim is None else None)
    saved = dict(h.get("fingerprint", {}))
    now = new._fingerprint()
    if est.sim is None or not any(k.startswith("simulator.") for k in saved):
        # posteriors only (or a file trained without a simulator): nothing to compare
        saved = {k: v for k, v in saved.items() if not _simulator_setting(k)}
        now = {k: v for k, v in now.items() if not _simulator_setting(k)}
    storage.check_fingerprint(
        saved,
        now,
        label=label,
        hint=(
            f"Build the {type(est).__name__} with the settings it was trained with, then "
            "call .load(path) on it."
        ),
    )
    fitted = {k[len("fitted.") :]: a for k, a in arrays.items() if k.startswith("fitted.")}
    fitted = {k: jnp.asarray(a) if fitted_kinds.get(k) == "jax" else a for k, a in fitted.items()}
    fitted_summary = _restore_summary(summary, fitted, values, label)
    new = evolve(new, _fitted_summary=fitted_summary)
    if tuple(new._raw_shape()) != raw_shape:
        raise storage.StorageError(
            f"{label}: the fitted summary gives features of shape {new._raw_shape()}, the "
            f"saved flow takes {raw_shape}: it was saved with another summary."
        )
    skeleton = new._build_flow(jax.random.key(0), raw_shape)
    return evolve(
        new,
        flow=storage.tree_from_arrays(arrays, skeleton, label=label, prefix="flow"),
        _norm=norm,
        _losses=tuple((k, tuple(v)) for k, v in losses.items()),
        _info=_json({**info, "versions": dict(h.get("versions", {}))}),
        labels=(None if labels is None else tuple(labels)) if est.sim is None else est.labels,
        _bank=None,
    )
