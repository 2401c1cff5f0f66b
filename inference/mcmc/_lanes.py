"""The vectorised lanes of a run: chains, and subjects in a batch, as nested `jax.vmap`s."""

from __future__ import annotations

import jax


class _Lanes:
    """vmap over chains, and over subjects in a batch."""

    def __init__(self, subjects: int | None):
        self.subjects = subjects

    def map(self, fn, chain_axes, data_axis=None):
        """`fn` vmapped over chains (in_axes `chain_axes`), then over subjects (data too)."""
        over_chains = jax.vmap(fn, in_axes=chain_axes)
        if self.subjects is None:
            return over_chains
        subject_axes = tuple(0 if a is not None else None for a in chain_axes)
        if data_axis is not None:
            subject_axes = subject_axes[:data_axis] + (0,) + subject_axes[data_axis + 1 :]
        return jax.vmap(over_chains, in_axes=subject_axes)
