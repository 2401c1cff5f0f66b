"""Built-in per-trial losses and metrics of `Trainer`, and small argument checks."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def _cross_entropy(outputs: Any, target: Any) -> Any:
    """Softmax cross-entropy of `outputs[-1]` `(n_outputs,)` against an integer label; scalar."""
    return optax.softmax_cross_entropy_with_integer_labels(outputs[-1], target)


def _mse(outputs: Any, target: Any) -> Any:
    """Mean squared error against `target` of shape `(T, n_outputs)` or `(n_outputs,)`."""
    prediction = outputs if jnp.shape(target) == jnp.shape(outputs) else outputs[-1]
    return jnp.mean((prediction - target) ** 2)


def _accuracy(outputs: Any, target: Any) -> Any:
    """1.0 when `argmax(outputs[-1])` equals the integer label, else 0.0 (float32 scalar)."""
    return (jnp.argmax(outputs[-1]) == target).astype(jnp.float32)


_LOSSES = {"cross_entropy": _cross_entropy, "mse": _mse}
_METRICS = {"accuracy": _accuracy}


def _key_data(key: Any) -> Any:
    """The raw uint32 data of a typed `jax.random.key` (a legacy uint32 key unchanged)."""
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key
