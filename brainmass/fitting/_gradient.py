"""Gradient fitting: optax steps on all starts at once, through the solve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

if TYPE_CHECKING:
    from ._fitter import Fitter, _Recorder

__all__ = ["run_gradient"]


def _make_step(fitter: Fitter):
    """One jitted optimiser step for a batch of starts.

    A start whose loss or gradient is not finite keeps its point and optimiser
    state (the step is skipped and counted as failed).
    """
    optimizer = fitter.optimizer
    value_and_grad = jax.value_and_grad(fitter._loss, has_aux=True)

    def one(z, state, key):
        (value, ok), grad = value_and_grad(z, key)
        good = ok & jnp.all(jnp.isfinite(grad))
        grad = jnp.where(good, grad, 0.0)
        updates, new_state = optimizer.update(grad, state, z)
        new_z = optax.apply_updates(z, updates)
        new_z = jnp.where(good, new_z, z)
        new_state = jax.tree.map(lambda n, o: jnp.where(good, n, o), new_state, state)
        return new_z, new_state, jnp.where(good, value, jnp.inf)

    @eqx.filter_jit
    def step(zs, states, key):
        return jax.vmap(one, in_axes=(0, 0, None))(zs, states, key)

    return step


def run_gradient(
    fitter: Fitter, key: Any, steps: int, starts: Any, recorder: _Recorder
) -> tuple[Any, np.ndarray]:
    """Run `steps` optimiser steps from `starts` `(num_starts, size)`.

    The loss recorded for a step is the loss at the point *before* the update
    (the point whose gradient was taken), so the best point is one that was
    evaluated. Returns the best point and the best loss of each start.
    """
    step = fitter._jitted("gradient_step", _make_step)
    zs = jnp.asarray(starts)
    states = jax.vmap(fitter.optimizer.init)(zs)
    start_best = np.full(zs.shape[0], np.inf)
    for i in range(steps):
        evaluated = zs
        zs, states, losses = step(zs, states, fitter._key(key, i))
        losses = np.asarray(losses)
        start_best = np.minimum(start_best, np.where(np.isfinite(losses), losses, np.inf))
        if recorder.record(evaluated, losses, gradients=zs.shape[0]):
            break
    return zs[int(np.argmin(start_best))], start_best
