"""Flat summaries side by side: `combine(FC(pca=10), Spectral(), ...)`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._modules import evolve
from ._base import AbstractSummary

__all__ = ["Combined", "combine"]


def _split(x: Any, sizes: list[int], axis: int) -> list[Any]:
    """`x` cut along `axis` into consecutive pieces of the given sizes (numpy or JAX)."""
    bounds = np.cumsum(sizes)[:-1].tolist()
    if isinstance(x, np.ndarray):
        return np.split(x, bounds, axis=axis)
    return jnp.split(x, bounds, axis=axis)


@final
class Combined(AbstractSummary):
    """Flat summaries concatenated: features, names, fit and project part by part.

    Build with `combine(*summaries)`.

    **Arguments:**

    - `parts`: flat summaries (`summary.flat`), in the order of the features.
    """

    parts: tuple[AbstractSummary, ...]
    _period: float | None = eqx.field(static=True)
    _signal_shape: tuple[int, int] | None = eqx.field(static=True)

    def __init__(self, parts: Sequence[AbstractSummary]):
        parts = tuple(parts)
        if not parts:
            raise ValueError("summaries: expected at least one summary to combine.")
        for i, p in enumerate(parts):
            if not isinstance(p, AbstractSummary):
                raise ValueError(f"summaries[{i}]: expected a Summary, got {p!r}.")
            if not p.flat:
                raise ValueError(
                    f"summaries[{i}]: {type(p).__name__} is not flat (its output is not a "
                    "vector); only flat summaries can be combined (use it on its own with an "
                    "embedding network)."
                )
        self.parts = parts
        self._period = None
        self._signal_shape = None

    def _config(self):
        return {"parts": list(self.parts)}

    def __repr__(self):
        inner = ", ".join(repr(p) for p in self.parts)
        return f"combine({inner})"

    def _with_signal(self, period, shape):
        parts = tuple(p.bind_signal(period, shape) for p in self.parts)
        return evolve(self, parts=parts, _period=period, _signal_shape=shape)

    def _sizes(self) -> list[int]:
        return [p.shape[0] for p in self.parts]

    def _shape(self):
        return (sum(self._sizes()),)

    def _names(self):
        return [n for p in self.parts for n in p.names]

    def _compute(self, x):
        return jnp.concatenate([p._compute(x) for p in self.parts])

    def fit(self, features: Any) -> Combined:
        """Fit every part on its slice of the bank.

        **Arguments:**

        - `features`: shape `(n, d)`, finite.

        **Returns:** a new, fitted `Combined`.
        """
        x = self._check_features(features)
        chunks = _split(x, self._sizes(), axis=1)
        return evolve(self, parts=tuple(p.fit(c) for p, c in zip(self.parts, chunks, strict=True)))

    def project(self, features: Any) -> jax.Array:
        """Every part's projection of its slice, concatenated.

        **Arguments:**

        - `features`: shape `(..., d)`.

        **Returns:** shape `(..., out_shape[0])`.
        """
        self._require_bound("project")
        x = jnp.asarray(features)
        d = self.shape[0]
        if x.ndim < 1 or x.shape[-1] != d:
            raise ValueError(f"features: expected shape (..., {d}), got {x.shape}.")
        chunks = _split(x, self._sizes(), axis=-1)
        return jnp.concatenate(
            [p.project(c) for p, c in zip(self.parts, chunks, strict=True)], axis=-1
        )

    @property
    def out_shape(self):
        """The summed projected sizes of the parts."""
        return (sum(p.out_shape[0] for p in self.parts),)

    @property
    def out_names(self):
        """The parts' projected names, concatenated."""
        return [n for p in self.parts for n in p.out_names]


def combine(*summaries: AbstractSummary) -> Combined:
    """Concatenate flat summaries into one (nested `Combined` are flattened).

    **Arguments:**

    - `*summaries`: flat summaries (bound or not; `bind` binds them all).

    **Returns:** a `Combined` whose features, `names`, `fit` and `project` are
    those of the parts, in order.
    """
    parts: list[AbstractSummary] = []
    for s in summaries:
        parts.extend(s.parts if isinstance(s, Combined) else [s])
    return Combined(parts)
