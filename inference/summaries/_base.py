"""The summary contract: binding to a signal, features, and the learned reduction.

A summary is an immutable equinox module, abstract (`AbstractSummary`) or final (every
concrete summary). Its settings are static fields, fixed when it is built; its bound
signal (`_period`, `_signal_shape`) and what `fit` learns (arrays) are fields too, so
`bind`, `bind_signal` and `fit` return *new* summaries and never change the given one.
`tests/test_summary_contract.py` checks every public summary against this contract.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import brainmass as bm
from brainmass.checks import check_int
from brainmass.units import MS, to_float

from .._modules import evolve

__all__ = ["AbstractSummary", "Summary"]


@eqx.filter_jit
def _summarize(summary: AbstractSummary, x: jax.Array) -> jax.Array:
    """`summary._compute(x)`, NaN for a non-finite signal.

    The one compilation cache of the summaries: keyed by the summary's static structure
    (its type, settings and bound signal) and the signal's shape and dtype.
    """
    out = summary._compute(x)
    return jnp.where(jnp.all(jnp.isfinite(x)), out, jnp.nan)


class AbstractSummary(eqx.Module):
    """The contract every summary follows: bind, features, names, fit and project.

    - `bind(sim)` / `bind_signal(period, shape)` return a new summary bound to signals
      of shape `(n_samples, n_channels)` sampled every `period` ms, after checking that
      the summary can be computed on them (`__check_init__` of the concrete class).
    - `summary(signal)` is pure JAX, of shape `summary.shape`, under `jax.jit` and
      `jax.vmap`; a signal holding NaN or infinity gives all-NaN features.
    - `names` labels the features of a flat summary (`shape == (d,)`).
    - `fit(features)` returns a new summary that learned a reduction from a bank `(n,
      *shape)` (the summary itself when there is nothing to learn); `project` applies it,
      giving `out_shape` (and `out_names`).

    Concrete summaries are final: they declare their settings as static fields, the
    bound signal as the fields `_period` and `_signal_shape` (None until bound), and
    define `_shape` and `_compute` (and `_names` when flat).
    """

    flat: ClassVar[bool] = True
    _period: eqx.AbstractVar[float | None]
    _signal_shape: eqx.AbstractVar[tuple[int, int] | None]

    # ------------------------------------------------------------------ binding
    def bind(self, sim: bm.Simulator) -> Self:
        """A new summary bound to a simulator's output: its sampling period and signal shape.

        **Arguments:**

        - `sim`: a `brainmass.Simulator`; its signal has shape `sim.signal_shape =
          (n_samples, n_channels)` (the transient dropped), sampled every `sim.period` ms.

        **Returns:** the bound summary (`self` is unchanged). Raises `ValueError` if the
        summary cannot be computed on that signal (window longer than the run, band above
        the Nyquist frequency, too few channels, ...).
        """
        try:
            period = float(sim.period)
            shape = tuple(sim.signal_shape)
        except AttributeError as err:
            raise ValueError(
                f"sim: expected a brainmass.Simulator, got {type(sim).__name__} ({err}); use "
                "bind_signal(period, shape) to bind to a signal without a simulator."
            ) from None
        return self.bind_signal(period, shape)

    def bind_signal(self, period: Any, shape: Sequence[int]) -> Self:
        """A new summary bound to signals of a given sampling period and shape.

        **Arguments:**

        - `period`: the sampling period, ms (or a brainunit time quantity).
        - `shape`: the signal shape `(n_samples, n_channels)`.

        **Returns:** the bound summary; raises `ValueError` as `bind`.
        """
        period = to_float(period, MS, "period")
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f"period: expected a sampling period > 0 ms, got {period}.")
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(f"shape: expected (n_samples, n_channels), got {shape!r}.")
        n, c = (check_int(s, "shape", 1) for s in shape)
        return self._with_signal(period, (n, c))

    def _with_signal(self, period: float, shape: tuple[int, int]) -> Self:
        """A copy with the bound signal set (its `__check_init__` validates it)."""
        return evolve(self, _period=period, _signal_shape=shape)

    @property
    def bound(self) -> bool:
        """Whether the summary is bound (`bind` or `bind_signal` made it)."""
        return self._signal_shape is not None

    @property
    def period(self) -> float:
        """The bound sampling period, ms."""
        self._require_bound("period")
        return self._period

    @property
    def signal_shape(self) -> tuple[int, int]:
        """The bound signal shape `(n_samples, n_channels)`."""
        self._require_bound("signal_shape")
        return self._signal_shape

    def _require_bound(self, what: str) -> None:
        if self._signal_shape is None:
            raise ValueError(
                f"{type(self).__name__}.{what}: the summary is not bound to a simulator; call "
                "summary = summary.bind(sim) (or .bind_signal(period, shape)) first."
            )

    # ------------------------------------------------------------------ features
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of `summary(signal)` (bound summaries only)."""
        self._require_bound("shape")
        return self._shape()

    @abc.abstractmethod
    def _shape(self) -> tuple[int, ...]:
        """The feature shape, from the bound signal."""

    @property
    def names(self) -> list[str]:
        """The labels of the `d` features of a flat summary, `len(names) == shape[0]`."""
        self._require_bound("names")
        if not self.flat:
            raise ValueError(
                f"{type(self).__name__}.names: the output has shape {self.shape}, not a flat "
                "vector of named features."
            )
        return self._names()

    def _names(self) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} has no feature names.")

    def __call__(self, signal: Any) -> jax.Array:
        """The summary of one signal.

        **Arguments:**

        - `signal`: shape `(n_samples, n_channels)`, the bound shape.

        **Returns:** shape `self.shape`; all NaN if the signal holds any NaN or infinity.
        """
        self._require_bound("__call__")
        x = jnp.asarray(signal)
        if x.shape != self._signal_shape:
            raise ValueError(
                f"signal: {type(self).__name__} is bound to signals of shape (n_samples, "
                f"n_channels) = {self._signal_shape}, got {x.shape}; use jax.vmap for a batch."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        return _summarize(self, x)

    @abc.abstractmethod
    def _compute(self, x: jax.Array) -> jax.Array:
        """The features of one signal `x` of the bound shape (pure JAX)."""

    # ------------------------------------------------------------------ reductions
    def _check_features(self, features: Any, what: str = "fit") -> np.ndarray:
        """A bank of raw features as a finite numpy array `(n, *shape)`."""
        self._require_bound(what)
        x = np.asarray(features, dtype=float)
        if x.ndim != 1 + len(self.shape) or x.shape[1:] != self.shape or x.shape[0] < 1:
            raise ValueError(
                f"features: {type(self).__name__}.{what} expects a bank of raw features of shape "
                f"(n, *{self.shape}), got {x.shape}."
            )
        if not np.all(np.isfinite(x)):
            bad = int(np.sum(~np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)))
            raise ValueError(
                f"features: {bad} of {x.shape[0]} rows hold NaN or infinity; drop the failed "
                "simulations before fit."
            )
        return x

    def fit(self, features: Any) -> Self:
        """Learn the data-dependent reduction from a bank of raw features.

        **Arguments:**

        - `features`: shape `(n, *self.shape)`, finite (e.g. `jax.vmap(summary)(signals)`
          without the failed simulations).

        **Returns:** the fitted summary (here: `self`, nothing to learn).
        """
        self._check_features(features)
        return self

    def project(self, features: Any) -> jax.Array:
        """Apply the learned reduction to raw features (here: the identity).

        **Arguments:**

        - `features`: shape `(..., *self.shape)`.

        **Returns:** shape `(..., *self.out_shape)`.
        """
        return jnp.asarray(features)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The shape of `project(summary(signal))`."""
        return self.shape

    @property
    def out_names(self) -> list[str]:
        """The labels of the projected features (flat summaries)."""
        return self.names

    def transform(self, signal: Any) -> jax.Array:
        """`project(self(signal))`: the reduced summary of one signal, shape `out_shape`."""
        return self.project(self(signal))

    # ------------------------------------------------------------------ display
    def _config(self) -> dict[str, Any]:
        """The settings: every static field but the bound signal."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("static") and not f.name.startswith("_")
        }

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self._config().items()]
        if self.bound:
            args.append(f"bound to {self._signal_shape} @ {self._period} ms")
        return f"{type(self).__name__}({', '.join(args)})"


Summary = AbstractSummary
"""The former name of `AbstractSummary` (for `isinstance` checks)."""
