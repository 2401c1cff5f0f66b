"""flowjax glue: the flow kinds, rank promotion for flowjax, and the training loop."""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from brainmass.progress import progress_bar

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
