"""The lanes of a run: chains (vectorised or one after another) and subjects in a batch."""

from __future__ import annotations

import jax

# how the chains of one run are laid out: "vectorized" (one `jax.vmap`: every chain
# takes as many leapfrog steps as the longest one at each draw) or "sequential" (one
# `jax.lax.map`: each chain runs its own trajectories, one chain after another)
CHAIN_METHODS = ("vectorized", "sequential")


class _Lanes:
    """Chains over `jax.vmap` (vectorized) or `jax.lax.map` (sequential); subjects vmapped.

    `subjects`: the batch's subject count (None: one dataset). `chain_method`: one of
    `CHAIN_METHODS`. `key` tells compiled functions of different layouts apart.
    """

    def __init__(self, subjects: int | None, chain_method: str = "vectorized"):
        if chain_method not in CHAIN_METHODS:
            raise ValueError(
                f"chain_method: expected one of {CHAIN_METHODS}, got {chain_method!r}."
            )
        self.subjects = subjects
        self.sequential = chain_method == "sequential"
        self.key = (subjects is None, chain_method)

    def map(self, fn, chain_axes, data_axis=None):
        """`fn` mapped over chains (in_axes `chain_axes`: 0 or None), then over subjects.

        Outputs carry the chain axis first (after the subject axis in a batch), either way.
        """
        mapper = sequential_map if self.sequential else jax.vmap
        over_chains = mapper(fn, chain_axes)
        if self.subjects is None:
            return over_chains
        subject_axes = tuple(0 if a is not None else None for a in chain_axes)
        if data_axis is not None:
            subject_axes = subject_axes[:data_axis] + (0,) + subject_axes[data_axis + 1 :]
        return jax.vmap(over_chains, in_axes=subject_axes)


def sequential_map(fn, in_axes):
    """`fn` over the lanes one after another (`jax.lax.map`), as `jax.vmap(fn, in_axes)`.

    Arguments whose entry in `in_axes` is 0 are split along their leading axis; those
    with `None` are shared. Outputs gain a leading axis.
    """
    if any(a not in (0, None) for a in in_axes):
        raise ValueError(f"in_axes: expected entries 0 or None, got {in_axes}.")

    def mapped(*args):
        pairs = tuple(zip(args, in_axes, strict=True))
        xs = tuple(a for a, ax in pairs if ax is not None)

        def one(x):
            it = iter(x)
            return fn(*(next(it) if ax is not None else a for a, ax in pairs))

        return jax.lax.map(one, xs)

    return mapped
