"""Summaries of a bank: the features as they are (`Identity`), a plain function, `as_summary`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import brainmass as bm


def signal_shape(sim: bm.Simulator) -> tuple[int, int]:
    """`(n_samples, n_channels)` of the signal `sim.run()` returns (the transient dropped)."""
    return sim.signal_shape


class Identity:
    """The features as they are: a summary for banks whose `x` already holds statistics."""

    def __init__(self, shape: tuple[int, ...] | None = None):
        self.shape = None if shape is None else tuple(shape)
        self.out_shape = self.shape

    def bind(self, sim):
        """Bound to a simulator: the features are its signal `(n_samples, n_channels)`."""
        return Identity(signal_shape(sim))

    def __call__(self, signal):
        """The signal itself."""
        return jnp.asarray(signal)

    @property
    def names(self):
        """One label per feature."""
        return [f"x[{i}]" for i in range(math.prod(self.shape or ()))]

    def fit(self, features):
        """Nothing to fit."""
        return self

    def project(self, features):
        """The features unchanged."""
        return features

    def __repr__(self) -> str:
        return f"Identity({self.shape})"


class _FunctionSummary(Identity):
    """A plain function `signal (n_samples, n_channels) -> features` used as a summary."""

    def __init__(self, fn: Callable, shape: tuple[int, ...] | None = None):
        super().__init__(shape)
        self.fn = fn

    def bind(self, sim):
        """Bound to a simulator: the feature shape from an abstract evaluation."""
        spec = jax.ShapeDtypeStruct(signal_shape(sim), jnp.result_type(float))
        return _FunctionSummary(self.fn, tuple(jax.eval_shape(self.fn, spec).shape))

    def __call__(self, signal):
        """The function's features of one signal."""
        return jnp.asarray(self.fn(signal))

    def __repr__(self) -> str:
        return f"Function({getattr(self.fn, '__name__', repr(self.fn))})"


def as_summary(summary: Any, sim: bm.Simulator) -> Any:
    """A summary bound to `sim`: an `inference.summaries` statistic or a plain function.

    A plain function `signal (n_samples, n_channels) -> features` (pure JAX) is wrapped;
    it must be picklable (a module-level function) for banks and estimators to be saved.
    """
    if hasattr(summary, "bind"):
        return summary.bind(sim)
    if callable(summary):
        return _FunctionSummary(summary).bind(sim)
    raise ValueError(
        "summary: expected an inference.summaries statistic (FC, FCD, Spectral, ..., or "
        f"summaries.combine(...)) or a function signal -> features, got {summary!r}."
    )
