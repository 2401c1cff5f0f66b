"""Summaries of a bank: the features as they are (`Identity`), a plain function, `as_summary`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp

import brainmass as bm


def signal_shape(sim: bm.Simulator) -> tuple[int, int]:
    """`(n_samples, n_channels)` of the signal `sim.run()` returns (the transient dropped)."""
    return sim.signal_shape


class _AbstractPassThrough(eqx.Module):
    """A bank summary with nothing to learn: `fit` returns it, `project` changes nothing.

    An immutable equinox module with its feature shape a static field; `bind` returns a
    new summary bound to a simulator's signal.
    """

    shape: eqx.AbstractVar[tuple[int, ...] | None]

    @property
    def out_shape(self) -> tuple[int, ...] | None:
        """The shape of `project(features)`: the features' own shape."""
        return self.shape

    @property
    def names(self) -> list[str]:
        """One label per feature."""
        return [f"x[{i}]" for i in range(math.prod(self.shape or ()))]

    def fit(self, features: Any) -> Any:
        """Nothing to fit: the summary itself."""
        return self

    def project(self, features: Any) -> Any:
        """The features unchanged."""
        return features


@final
class Identity(_AbstractPassThrough):
    """The features as they are: a summary for banks whose `x` already holds statistics.

    **Arguments:**

    - `shape`: the shape of one row of features; None: taken from the bank it is trained
      on, or from the simulator's signal `(n_samples, n_channels)` it is bound to.
    """

    shape: tuple[int, ...] | None = eqx.field(static=True)

    def __init__(self, shape: tuple[int, ...] | None = None):
        self.shape = None if shape is None else tuple(int(n) for n in shape)

    def bind(self, sim: bm.Simulator) -> Identity:
        """Bound to a simulator: the features are its signal `(n_samples, n_channels)`."""
        return Identity(signal_shape(sim))

    def __call__(self, signal: Any) -> jax.Array:
        """The signal itself."""
        return jnp.asarray(signal)

    def __repr__(self) -> str:
        return f"Identity({self.shape})"


@final
class _FunctionSummary(_AbstractPassThrough):
    """A plain function `signal (n_samples, n_channels) -> features` used as a summary."""

    fn: Callable = eqx.field(static=True)
    shape: tuple[int, ...] | None = eqx.field(static=True)

    def __init__(self, fn: Callable, shape: tuple[int, ...] | None = None):
        self.fn = fn
        self.shape = None if shape is None else tuple(int(n) for n in shape)

    def bind(self, sim: bm.Simulator) -> _FunctionSummary:
        """Bound to a simulator: the feature shape from an abstract evaluation."""
        spec = jax.ShapeDtypeStruct(signal_shape(sim), jnp.result_type(float))
        return _FunctionSummary(self.fn, tuple(jax.eval_shape(self.fn, spec).shape))

    def __call__(self, signal: Any) -> jax.Array:
        """The function's features of one signal."""
        return jnp.asarray(self.fn(signal))

    def __repr__(self) -> str:
        return f"Function({getattr(self.fn, '__name__', repr(self.fn))})"


def as_summary(summary: Any, sim: bm.Simulator) -> Any:
    """A summary bound to `sim`: an `inference.summaries` statistic or a plain function.

    A plain function `signal (n_samples, n_channels) -> features` (pure JAX) is wrapped
    (an estimator using it is saved with a digest of the function's code and closure, and
    loaded into an estimator built with the same function).
    """
    if hasattr(summary, "bind"):
        return summary.bind(sim)
    if callable(summary):
        return _FunctionSummary(summary).bind(sim)
    raise ValueError(
        "summary: expected an inference.summaries statistic (FC, FCD, Spectral, ..., or "
        f"summaries.combine(...)) or a function signal -> features, got {summary!r}."
    )
