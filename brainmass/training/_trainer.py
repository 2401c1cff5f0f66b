"""`Trainer`: minibatch gradient descent of a sequence network on a task."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..checks import check_int
from ..progress import progress_bar
from ..storage import digest as _digest
from ._checkpoint import _CheckpointFile
from ._losses import _LOSSES, _METRICS, _cross_entropy, _key_data, _mse
from ._result import NonFiniteLossError, TrainResult

__all__ = ["Trainer"]


class Trainer:
    """Train a sequence network on a task `(inputs, targets)` by minibatch gradient descent.

    **Arguments:**

    - `network`: an `eqx.Module` called as `network(inputs, *, key=None) -> outputs`,
      `inputs` `(T, n_inputs)`, `outputs` `(T, n_outputs)` (e.g. `NeuralMassSeqNetwork`).
    - `loss`: `"cross_entropy"` (softmax cross-entropy of `outputs[-1]` against integer
      labels), `"mse"` (mean squared error against float targets of the outputs' shape, or of
      `outputs[-1]`'s when targets are `(n_trials, n_outputs)`), or a function
      `loss(outputs, target) -> scalar` for one trial. The training loss is its mean over trials.
    - `optimizer`: an `optax.GradientTransformation`; default `adam(learning_rate)` after
      clipping the gradient's global norm to `clip_norm`.
    - `metrics`: `"accuracy"` (argmax of `outputs[-1]` equals the label) or functions
      `metric(outputs, target) -> scalar` for one trial (named by `__name__`); averaged over
      trials.
    - `trainable`: an equinox filter (a pytree of bools, or a function of a leaf) choosing the
      leaves that train; default every inexact array leaf (`eqx.is_inexact_array`).
    - `learning_rate`: a float or an optax schedule of the step (default optimizer only).
    - `clip_norm`: the global gradient norm clip (default optimizer only; None: no clipping).
    """

    def __init__(
        self,
        network: Any,
        loss: str | Callable = "cross_entropy",
        optimizer: optax.GradientTransformation | None = None,
        metrics: Sequence[str | Callable] = ("accuracy",),
        *,
        trainable: Any = None,
        learning_rate: Any = 1e-3,
        clip_norm: float | None = 1.0,
    ):
        if not callable(network):
            raise ValueError(f"network: expected a callable eqx.Module, got {type(network)}.")
        self.network = network
        if isinstance(loss, str):
            if loss not in _LOSSES:
                raise ValueError(
                    f"loss: unknown loss {loss!r}; expected one of {sorted(_LOSSES)} or a "
                    "function loss(outputs, target) -> scalar for one trial."
                )
            self.loss_name, self._loss_fn = loss, _LOSSES[loss]
        elif callable(loss):
            self.loss_name, self._loss_fn = getattr(loss, "__name__", "loss"), loss
        else:
            raise ValueError(f"loss: expected a name or a function, got {loss!r}.")
        if isinstance(metrics, str) or callable(metrics):
            metrics = (metrics,)
        self.metrics: dict[str, Callable] = {}
        for m in metrics:
            if isinstance(m, str) and m in _METRICS:
                self.metrics[m] = _METRICS[m]
            elif callable(m) and not isinstance(m, str):
                self.metrics[getattr(m, "__name__", f"metric{len(self.metrics)}")] = m
            else:
                raise ValueError(
                    f"metrics: unknown metric {m!r}; expected {sorted(_METRICS)} or functions "
                    "metric(outputs, target) -> scalar."
                )
        if optimizer is None:
            if not (callable(learning_rate) or float(learning_rate) > 0):
                raise ValueError(
                    f"learning_rate: expected a float > 0 or a schedule, got {learning_rate!r}."
                )
            if clip_norm is not None and not clip_norm > 0:
                raise ValueError(f"clip_norm: expected None or a norm > 0, got {clip_norm!r}.")
            optimizer = optax.adam(learning_rate)
            if clip_norm is not None:
                optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
            self._lr = learning_rate
        elif isinstance(optimizer, optax.GradientTransformation):
            self._lr = None
        else:
            raise ValueError(
                f"optimizer: expected an optax.GradientTransformation or None, got {optimizer!r}."
            )
        self.optimizer = optimizer
        self.trainable = eqx.is_inexact_array if trainable is None else trainable
        self._train_epoch = self._make_train_epoch()
        self._eval_batch = self._make_eval_batch()

    # ------------------------------------------------------------------ pieces
    def _partition(self, network: Any) -> tuple[Any, Any]:
        """`(params, static)`: the trainable inexact arrays, and everything else."""
        try:
            params, static = eqx.partition(network, self.trainable)
        except Exception as err:
            raise ValueError(f"trainable: not a filter of this network ({err}).") from err
        params, rest = eqx.partition(params, eqx.is_inexact_array)
        # strong dtypes: a weakly typed leaf would come back strong from the first step (retrace)
        params = jax.tree.map(lambda a: jnp.asarray(a, dtype=a.dtype), params)
        return params, eqx.combine(static, rest)

    def _per_trial(self, net: Any, x: Any, y: Any, key: Any) -> tuple[Any, Any]:
        outputs = net(x, key=key)
        value = jnp.reshape(jnp.asarray(self._loss_fn(outputs, y)), ())
        outputs = jax.lax.stop_gradient(outputs)
        mets = {k: jnp.reshape(jnp.asarray(f(outputs, y)), ()) for k, f in self.metrics.items()}
        return value, mets

    def _make_train_epoch(self) -> Callable:
        """One epoch as one compiled call: a `lax.scan` of optimiser steps over minibatches.

        Minibatch `s` takes the trials `order[s * batch_size : (s + 1) * batch_size]` and the
        key `fold_in(step_key, s)` (split into one key per trial). Returns the parameters and
        optimiser state after the last step, and per step the loss, the metrics, whether the
        loss, gradients and parameters were finite, and the learning rate the optimiser
        reports (NaN where it reports none).
        """

        def batch_loss(params, static, x, y, keys):
            net = eqx.combine(params, static)
            values, mets = jax.vmap(lambda a, b, k: self._per_trial(net, a, b, k))(x, y, keys)
            return jnp.mean(values), jax.tree.map(jnp.mean, mets)

        grad_fn = eqx.filter_value_and_grad(batch_loss, has_aux=True)

        @eqx.filter_jit
        @eqx.debug.assert_max_traces(max_traces=None)
        def train_epoch(params, opt_state, static, inputs, targets, order, step_key, batch_size):
            def step(carry, s):
                params, opt_state = carry
                idx = jax.lax.dynamic_slice_in_dim(order, s * batch_size, batch_size)
                keys = jax.random.split(jax.random.fold_in(step_key, s), batch_size)
                (value, mets), grads = grad_fn(params, static, inputs[idx], targets[idx], keys)
                updates, opt_state = self.optimizer.update(grads, opt_state, params)
                params = eqx.apply_updates(params, updates)
                finite = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves((grads, params))]
                ok = jnp.all(jnp.stack([jnp.isfinite(value), *finite]))
                return (params, opt_state), (value, mets, ok, _reported_lr(opt_state))

            steps = order.shape[0] // batch_size
            (params, opt_state), per_step = jax.lax.scan(
                step, (params, opt_state), jnp.arange(steps)
            )
            return params, opt_state, per_step

        return train_epoch

    def _make_eval_batch(self) -> Callable:
        @eqx.filter_jit
        def eval_batch(network, inputs, targets, idx, mask):
            def one(x, y):
                return self._per_trial(network, x, y, None)

            values, mets = jax.vmap(one)(inputs[idx], targets[idx])
            total = {k: jnp.sum(v * mask) for k, v in mets.items()}
            return jnp.sum(values * mask), total

        return eval_batch

    def _check_data(self, data: Any, name: str, network: Any) -> tuple[Any, Any]:
        """`(inputs, targets)` as arrays, checked against the network and the loss."""
        if not (isinstance(data, tuple | list) and len(data) == 2):
            raise ValueError(f"{name}: expected a tuple (inputs, targets), got {type(data)}.")
        inputs, targets = jnp.asarray(data[0]), jnp.asarray(data[1])
        if not jnp.issubdtype(inputs.dtype, jnp.inexact):
            inputs = inputs.astype(jnp.float32)
        if inputs.ndim != 3:
            raise ValueError(
                f"{name}: expected inputs of shape (n_trials, T, n_inputs), got {inputs.shape}."
            )
        if targets.ndim < 1 or targets.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"{name}: inputs have {inputs.shape[0]} trials but targets have shape "
                f"{targets.shape}; expected the same n_trials on the first axis."
            )
        if inputs.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one trial, got 0.")
        width = getattr(network, "n_inputs", None)
        if isinstance(width, int) and width != inputs.shape[2]:
            raise ValueError(
                f"{name}: inputs have width n_inputs={inputs.shape[2]}, but the network takes "
                f"n_inputs={width}."
            )
        try:
            out = eqx.filter_eval_shape(lambda x: network(x, key=None), inputs[0])
        except Exception as err:
            raise ValueError(
                f"{name}: the network cannot run one trial of inputs with shape "
                f"{inputs.shape[1:]}: {err}"
            ) from err
        if not (hasattr(out, "shape") and len(out.shape) == 2):
            raise ValueError(
                "network: expected outputs of shape (T, n_outputs), got "
                f"{getattr(out, 'shape', out)}."
            )
        n_out = out.shape[1]
        if self._loss_fn is _cross_entropy or "accuracy" in self.metrics:
            if targets.ndim != 1 or not jnp.issubdtype(targets.dtype, jnp.integer):
                raise ValueError(
                    f"{name}: cross-entropy and accuracy need integer class labels of shape "
                    f"(n_trials,), got targets of shape {targets.shape} and dtype {targets.dtype}."
                )
            if int(targets.min()) < 0 or int(targets.max()) >= n_out:
                raise ValueError(
                    f"{name}: class labels must lie in [0, n_outputs={n_out}), got labels in "
                    f"[{int(targets.min())}, {int(targets.max())}]."
                )
        if self._loss_fn is _mse and targets.shape[1:] not in (tuple(out.shape), (n_out,)):
            raise ValueError(
                f"{name}: mse needs targets of shape (n_trials, {out.shape[0]}, {n_out}) or "
                f"(n_trials, {n_out}), got {targets.shape}."
            )
        return inputs, targets

    # ------------------------------------------------------------------ evaluation
    def compute_loss(self, network: Any, inputs: Any, targets: Any, *, key: Any = None) -> Any:
        """The mean per-trial loss of `network` on a batch (differentiable, not jitted).

        **Arguments:**

        - `network`: the sequence network.
        - `inputs`: `(n_trials, T, n_inputs)`; `targets`: `(n_trials, ...)`.
        - `key`: split into one key per trial for stochastic networks (None: no key).

        **Returns:** a scalar.
        """
        inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
        keys = None if key is None else jax.random.split(key, inputs.shape[0])
        if keys is None:
            values, _ = jax.vmap(lambda x, y: self._per_trial(network, x, y, None))(inputs, targets)
        else:
            values, _ = jax.vmap(lambda x, y, k: self._per_trial(network, x, y, k))(
                inputs, targets, keys
            )
        return jnp.mean(values)

    def evaluate(self, network: Any, data: Any, batch_size: int = 256) -> dict[str, float]:
        """Loss and metrics of `network` on `data`, in compiled batches (without keys).

        **Arguments:**

        - `network`: the sequence network.
        - `data`: `(inputs, targets)`, inputs `(n_trials, T, n_inputs)`.
        - `batch_size`: trials per compiled batch (the last one is padded and masked, so every
          trial counts once).

        **Returns:** `{"loss": mean loss, <metric>: mean metric, ...}` as floats.
        """
        batch_size = check_int(batch_size, "batch_size", 1)
        inputs, targets = self._check_data(data, "data", network)
        return self._evaluate(network, inputs, targets, jnp.arange(inputs.shape[0]), batch_size)

    def _evaluate(self, network, inputs, targets, indices, batch_size) -> dict[str, float]:
        n = int(indices.shape[0])
        size = min(batch_size, n)
        loss, mets = 0.0, dict.fromkeys(self.metrics, 0.0)
        for start in range(0, n, size):
            idx = indices[start : start + size]
            k = int(idx.shape[0])
            mask = (jnp.arange(size) < k).astype(inputs.dtype)
            idx = jnp.concatenate([idx, jnp.zeros(size - k, idx.dtype)])
            total, m = self._eval_batch(network, inputs, targets, idx, mask)
            loss += float(total)
            mets = {key: mets[key] + float(m[key]) for key in mets}
        return {"loss": loss / n, **{key: v / n for key, v in mets.items()}}

    def _lr_of(self, reported: float, count: int) -> float:
        """The learning rate of step `count`: the default optimizer's, or the one reported."""
        if self._lr is not None:
            return float(self._lr(count)) if callable(self._lr) else float(self._lr)
        return reported

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        key: Any,
        data: Any,
        *,
        epochs: int,
        batch_size: int = 32,
        validation: float | tuple | None = 0.1,
        shuffle: bool = True,
        early_stopping: int | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        progress: bool = True,
        callbacks: Sequence[Callable] | None = None,
    ) -> TrainResult:
        """Train the network.

        Each epoch shuffles the training trials (key `fold_in(key, epoch)`) and takes one
        optimiser step per full batch; the ragged last `n_train % batch_size` trials of the
        shuffled order are dropped for that epoch (a different few each epoch), so every step
        has one compiled shape. Validation runs after every epoch in padded, masked batches.

        **Arguments:**

        - `key`: a `jax.random` key: validation split, shuffling and per-trial network keys.
        - `data`: `(inputs, targets)`, inputs `(n_trials, T, n_inputs)`, targets `(n_trials,)`
          integer labels (or float targets for mse).
        - `epochs`: the total number of epochs (a resumed run counts those in the checkpoint).
        - `batch_size`: trials per step (at most the number of training trials).
        - `validation`: a fraction of the trials held out (drawn from `key`), a tuple
          `(val_inputs, val_targets)`, or None / 0 for none.
        - `shuffle`: reshuffle the training trials every epoch (default True).
        - `early_stopping`: None, or a patience: stop when the validation loss has not improved
          for this many epochs and return the best epoch's network.
        - `checkpoint`: a file path. Every `checkpoint_every` epochs (and when the run ends,
          stops or is interrupted) the network, optimizer state, epoch, key and history are
          written there atomically. If the file exists, training resumes from it: the result
          is exactly that of an uninterrupted run with the same key. A checkpoint written with
          other settings (data, batch size, validation, loss, optimizer, network, key) is
          refused; `epochs` may differ (a resumed run may train longer; with `epochs` at or
          below the checkpoint's, it is returned as it is).
        - `checkpoint_every`: epochs between checkpoints (default 1).
        - `progress`: show a progress bar (default True).
        - `callbacks`: functions `callback(epoch, network, history) -> bool | None` called
          after each epoch (`epoch` 1-based, `history` the lists so far); returning True stops.

        **Returns:** a `TrainResult`. A KeyboardInterrupt (also from a callback) ends the run
        and returns the finished epochs. A non-finite training loss raises
        `NonFiniteLossError` naming the epoch; the network of the last good epoch is in its
        `.result` and in the checkpoint.
        """
        t_start = time.perf_counter()
        epochs = check_int(epochs, "epochs", 1)
        batch_size = check_int(batch_size, "batch_size", 1)
        checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1)
        if early_stopping is not None:
            early_stopping = check_int(early_stopping, "early_stopping", 1)
        callbacks = list(callbacks or [])
        network = self.network
        inputs, targets = self._check_data(data, "data", network)
        n = int(inputs.shape[0])
        train_idx, val_idx, val_data = self._split(key, n, validation, network)
        n_train = int(train_idx.shape[0])
        if batch_size > n_train:
            raise ValueError(
                f"batch_size: expected at most the {n_train} training trials, got {batch_size}."
            )
        if early_stopping is not None and val_idx is None and val_data is None:
            raise ValueError(
                "early_stopping: needs validation data (validation=fraction or tuple)."
            )
        if val_data is not None:
            val_inputs, val_targets = val_data
            val_indices = jnp.arange(val_inputs.shape[0])
        elif val_idx is not None:
            val_inputs, val_targets, val_indices = inputs, targets, val_idx
        has_val = val_data is not None or val_idx is not None
        steps = n_train // batch_size

        params, static = self._partition(network)
        opt_state = self.optimizer.init(params)
        best_params = params if early_stopping is not None else None
        history: dict[str, list[float]] = {"epoch": [], "train_loss": []}
        history.update({f"train_{m}": [] for m in self.metrics})
        if has_val:
            history["val_loss"] = []
            history.update({f"val_{m}": [] for m in self.metrics})
        history.update({"lr": [], "time": []})
        best_epoch, best_value = 0, np.inf

        fingerprint = self._fingerprint(
            key, inputs, targets, network, params, batch_size, validation, shuffle, early_stopping
        )
        store = None if checkpoint is None else _CheckpointFile(checkpoint)
        done = 0
        if store is not None and store.exists():
            meta, (params, opt_state, best_params) = store.read(
                fingerprint, (params, opt_state, best_params)
            )
            done, best_epoch, best_value = meta["epoch"], meta["best_epoch"], meta["best_value"]
            history = {k: list(v) for k, v in meta["history"].items()}
        resumed_from, saved = done, done

        def save() -> None:
            nonlocal saved
            if store is not None and saved != done and done > 0:
                meta = {
                    "epoch": done,
                    "best_epoch": best_epoch,
                    "best_value": best_value,
                    "history": history,
                    "key": np.asarray(_key_data(key)).tolist(),
                }
                store.write(fingerprint, meta, (params, opt_state, best_params))
                saved = done

        def result(stopped_early: bool, interrupted: bool) -> TrainResult:
            final = best_params if (early_stopping is not None and best_epoch > 0) else params
            return TrainResult(
                network=eqx.combine(final, static),
                history={k: np.asarray(v) for k, v in history.items()},
                best_epoch=best_epoch,
                info={
                    "n_train": n_train,
                    "n_val": int(val_indices.shape[0]) if has_val else 0,
                    "steps_per_epoch": steps,
                    "dropped_per_epoch": n_train - steps * batch_size,
                    "validation_indices": None if val_idx is None else np.asarray(val_idx),
                    "resumed_from": resumed_from,
                    "stopped_early": stopped_early,
                    "interrupted": interrupted,
                    "wall_time": time.perf_counter() - t_start,
                },
            )

        bar = progress_bar(total=epochs, desc="train", unit="epoch", disable=not progress)
        bar.update(min(done, epochs))
        stopped_early = interrupted = False
        try:
            while done < epochs:
                if early_stopping is not None and done - best_epoch >= early_stopping:
                    stopped_early = True
                    break
                t0 = time.perf_counter()
                epoch_key = jax.random.fold_in(key, done)
                order = train_idx
                if shuffle:
                    order = train_idx[
                        jax.random.permutation(jax.random.fold_in(epoch_key, 0), n_train)
                    ]
                step_key = jax.random.fold_in(epoch_key, 1)
                new_params, new_state, (losses, mets, oks, lrs) = self._train_epoch(
                    params,
                    opt_state,
                    static,
                    inputs,
                    targets,
                    order[: steps * batch_size],
                    step_key,
                    batch_size,
                )
                losses, oks = np.asarray(losses), np.asarray(oks)
                lr = self._lr_of(float(lrs[0]), done * steps)
                bad = np.flatnonzero(~oks)
                if bad.size:
                    save()
                    last = f"after epoch {done}" if done else "before training"
                    where = f" and in the checkpoint {store.path}" if store and done else ""
                    raise NonFiniteLossError(
                        f"fit: the training loss or its gradient became non-finite (loss "
                        f"{losses[bad[0]]}) in epoch {done + 1} (batch {bad[0] + 1} of {steps}); "
                        f"training stopped. The network {last} (the last good one) is in this "
                        f"error's .result{where}. "
                        "Lower the learning rate, clip the gradient (clip_norm) or check the "
                        "inputs and the network's stability.",
                        done + 1,
                        result(False, False),
                    )
                row = {"epoch": done + 1, "train_loss": float(np.mean(losses))}
                for m in self.metrics:
                    row[f"train_{m}"] = float(np.mean(np.asarray(mets[m])))
                if has_val:
                    trained = eqx.combine(new_params, static)
                    val = self._evaluate(trained, val_inputs, val_targets, val_indices, 256)
                    row["val_loss"] = val["loss"]
                    row.update({f"val_{m}": val[m] for m in self.metrics})
                row["lr"] = lr
                row["time"] = time.perf_counter() - t0
                # commit the epoch
                monitored = row["val_loss"] if has_val else row["train_loss"]
                for k in history:
                    history[k].append(row[k])
                params, opt_state, done = new_params, new_state, done + 1
                if monitored < best_value:
                    best_value, best_epoch = monitored, done
                    if early_stopping is not None:
                        best_params = params
                if done % checkpoint_every == 0:
                    save()
                bar.update(1)
                bar.set_postfix(loss=f"{row['train_loss']:.4g}", refresh=False)
                stop = False
                for callback in callbacks:
                    stop = bool(callback(done, eqx.combine(params, static), history)) or stop
                if stop:
                    break
        except KeyboardInterrupt:
            interrupted = True
            history = {k: v[:done] for k, v in history.items()}  # drop a half-committed row
        finally:
            bar.close()
        save()
        return result(stopped_early, interrupted)

    def _split(self, key: Any, n: int, validation: Any, network: Any) -> tuple:
        """`(train_idx, val_idx | None, (val_inputs, val_targets) | None)`."""
        if isinstance(validation, tuple | list):
            val = self._check_data(tuple(validation), "validation", network)
            return jnp.arange(n), None, val
        if validation is None or (isinstance(validation, float | int) and validation == 0):
            return jnp.arange(n), None, None
        if not (isinstance(validation, float | int) and 0 < validation < 1):
            raise ValueError(
                f"validation: expected a fraction in [0, 1), a tuple (inputs, targets) or None, "
                f"got {validation!r}."
            )
        n_val = int(round(validation * n))
        if n_val < 1 or n_val >= n:
            raise ValueError(
                f"validation: a fraction {validation} of {n} trials holds out {n_val}; expected "
                "at least one validation and one training trial."
            )
        perm = jax.random.permutation(jax.random.fold_in(key, 0x5A11D), n)
        return jnp.sort(perm[n_val:]), jnp.sort(perm[:n_val]), None

    def _fingerprint(
        self, key, inputs, targets, network, params, batch_size, validation, shuffle, early_stopping
    ) -> dict[str, str]:
        """What a resumed run must share with the checkpoint (everything but `epochs`)."""
        if isinstance(validation, tuple | list):
            validation = _digest(tuple(np.asarray(v) for v in validation))
        return {
            "data": _digest((np.asarray(inputs), np.asarray(targets))),
            "batch_size": repr(batch_size),
            "validation": repr(validation),
            "shuffle": repr(bool(shuffle)),
            "early_stopping": repr(early_stopping),
            "loss": _digest(self._loss_fn),
            "metrics": repr(sorted(self.metrics)),
            "optimizer": _digest((self.optimizer, self._lr)),
            "learning_rate": self._lr if not callable(self._lr) else _digest(self._lr),
            "trainable": str(jax.tree.structure(params))
            + repr([(a.shape, str(a.dtype)) for a in jax.tree.leaves(params)]),
            "network": _digest(network),
            "key": _digest(key),
        }


def _reported_lr(opt_state: Any) -> jax.Array:
    """The `learning_rate` an `optax.inject_hyperparams` state holds (NaN without one)."""
    nodes = jax.tree.leaves(opt_state, is_leaf=lambda x: hasattr(x, "hyperparams"))
    for node in nodes:
        if "learning_rate" in getattr(node, "hyperparams", {}):
            return jnp.asarray(node.hyperparams["learning_rate"], dtype=jnp.float32)
    return jnp.asarray(jnp.nan, dtype=jnp.float32)
