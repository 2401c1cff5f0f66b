"""Training throughput: a HORN network on sequential digits, `bm.Trainer` vs a plain JAX loop.

Workload: scikit-learn's 8x8 handwritten digits shown row by row
(`bm.tasks.sequential_digits`, T = 8 steps of 8 pixels, 10 classes; the
training split of 1438 images), a `bm.HORNSeqNetwork` of 64 oscillators (the
published defaults h = 1, omega = 2 pi/28, gamma = 0.01, alpha = 0.04, one
step per sample, per-unit trainable omega, gamma, alpha), cross-entropy of the
last step's readout, minibatches of 64, Adam (learning rate 1e-2) after
clipping the global gradient norm to 1.

Two ways to train the same thing:

- `bm.Trainer(net).fit(...)`: one compiled call per epoch, a scan over the
  minibatches (it also computes the batch accuracy and checks the loss and
  gradients are finite), no validation, no checkpoint, no progress bar;
- a hand-written JAX loop: the HORN equations written again as a pure function
  of a dict of arrays (checked equal to `HORNSeqNetwork` on a batch), one
  `jax.jit` of a `value_and_grad` + optax update per minibatch, batches sliced
  from NumPy arrays.

Both start from the same weights and run the same number of epochs. Per epoch
the throughput is (steps x batch) / the epoch's wall time (after the device
finished); the table gives the median over the epochs after the first, and
the compile time as the first epoch's time minus that median. The ratio is
Trainer throughput / plain-loop throughput. Both models' held-out accuracy on
the test split is printed as a check that both trained.

Usage:
    python benchmarks/training.py [--quick] [--epochs 20] [--units 64] [--batch 64]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import brainmass as bm

LEARNING_RATE, CLIP_NORM = 1e-2, 1.0


# ----------------------------------------------------------------------------- plain JAX
def horn_forward(params: dict, inputs: jax.Array, h: float) -> jax.Array:
    """The HORN network written out: one trial's readout at the last step.

    **Arguments:**

    - `params`: `W_in` `(n, n_in)`, `b_in` `(n,)`, `W_rec` `(n, n)`, `W_out` `(n_out, n)`,
      `b_out` `(n_out,)`, `log_omega`, `log_gamma`, `log_alpha` (each `(n,)`; rad/ms, 1/ms, 1).
    - `inputs`: one trial, shape `(T, n_in)`.
    - `h`: the symplectic Euler step (ms).

    **Returns:** the logits at the last step, shape `(n_out,)`.
    """
    n = params["W_rec"].shape[0]
    omega2 = jnp.exp(2.0 * params["log_omega"])
    damp = 2.0 * jnp.exp(params["log_gamma"])
    alpha = jnp.exp(params["log_alpha"])
    drive = inputs @ params["W_in"].T + params["b_in"]

    def step(carry, d):
        x, y = carry
        rec = (params["W_rec"] @ y) / math.sqrt(n)
        y = y + h * (alpha * jnp.tanh(d + rec) - damp * y - omega2 * x)
        x = x + h * y
        return (x, y), None

    zeros = jnp.zeros((n,), drive.dtype)
    (x, _), _ = jax.lax.scan(step, (zeros, zeros), drive)
    return params["W_out"] @ x + params["b_out"]


def plain_loop(
    params: dict,
    h: float,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
) -> tuple[dict, list[float]]:
    """Train `params` with a hand-written jitted step over shuffled minibatches.

    **Arguments:**

    - `params`: the initial arrays (see `horn_forward`).
    - `h`: the integration step (ms).
    - `inputs`: `(n_trials, T, n_in)` float32; `targets`: `(n_trials,)` int labels.
    - `epochs`, `batch_size`: epochs over the data, trials per step (the ragged rest of
      each shuffled epoch is dropped, as the Trainer does).
    - `seed`: NumPy seed of the shuffling.

    **Returns:** `(params, epoch_seconds)`: the trained arrays and each epoch's wall time (s).
    """
    optimizer = optax.chain(optax.clip_by_global_norm(CLIP_NORM), optax.adam(LEARNING_RATE))

    def loss_fn(p, x, y):
        logits = jax.vmap(lambda trial: horn_forward(p, trial, h))(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(p, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, state = optimizer.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    opt_state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    steps = inputs.shape[0] // batch_size
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(inputs.shape[0])
        for s in range(steps):
            idx = order[s * batch_size : (s + 1) * batch_size]
            params, opt_state, loss = step(params, opt_state, inputs[idx], targets[idx])
        jax.block_until_ready((params, loss))
        times.append(time.perf_counter() - t0)
    return params, times


def plain_accuracy(params: dict, h: float, inputs: np.ndarray, targets: np.ndarray) -> float:
    """Accuracy of `argmax` of the last-step logits on `(inputs, targets)` (a fraction)."""
    logits = jax.jit(jax.vmap(lambda trial: horn_forward(params, trial, h)))(inputs)
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == np.asarray(targets)))


# ----------------------------------------------------------------------------- benchmark
def summarise(epoch_seconds: list[float], sequences_per_epoch: int) -> dict:
    """Compile seconds (first epoch minus the steady median) and steady sequences/s."""
    steady = statistics.median(epoch_seconds[1:]) if len(epoch_seconds) > 1 else math.nan
    return {
        "epoch_seconds": [float(t) for t in epoch_seconds],
        "first_epoch_s": float(epoch_seconds[0]),
        "steady_epoch_s": float(steady),
        "compile_s": float(epoch_seconds[0] - steady),
        "sequences_per_s": float(sequences_per_epoch / steady),
    }


def run(args) -> dict:
    """Train both ways and return the measurements."""
    key = jax.random.key(0)
    train = bm.tasks.sequential_digits(key, split="train")
    test = bm.tasks.sequential_digits(key, split="test")
    n_train, T, n_in = train[0].shape
    net = bm.HORNSeqNetwork(jax.random.key(1), n_inputs=n_in, n_units=args.units, n_outputs=10)
    steps = n_train // args.batch
    per_epoch = steps * args.batch
    print(
        f"sequential digits, row-wise: {n_train} training sequences of T = {T} x {n_in}, "
        f"{test[0].shape[0]} test; HORN with {args.units} units; batch {args.batch} "
        f"({steps} steps/epoch, {per_epoch} sequences); {args.epochs} epochs"
    )
    load = os.getloadavg()
    print(f"jax {jax.__version__} on {jax.devices()[0]}; load average {load[0]:.2f}")

    trainer = bm.Trainer(net, "cross_entropy", learning_rate=LEARNING_RATE, clip_norm=CLIP_NORM)
    result = trainer.fit(
        jax.random.key(2),
        train,
        epochs=args.epochs,
        batch_size=args.batch,
        validation=None,
        progress=False,
    )
    ours = summarise(list(result.history["time"]), per_epoch)
    ours["test_accuracy"] = trainer.evaluate(result.network, test)["accuracy"]
    ours["wall_s"] = float(result.info["wall_time"])

    names = ("W_in", "b_in", "W_rec", "W_out", "b_out", "log_omega", "log_gamma", "log_alpha")
    params = {name: jnp.asarray(getattr(net, name)) for name in names}
    reference = np.asarray(jax.vmap(net)(train[0][:8])[:, -1])
    written = np.asarray(jax.vmap(lambda x: horn_forward(params, x, net.h))(train[0][:8]))
    agreement = float(np.max(np.abs(reference - written)))
    if agreement > 1e-4:
        raise AssertionError(f"the plain HORN differs from HORNSeqNetwork by {agreement:.2e}")
    x_np, y_np = np.asarray(train[0]), np.asarray(train[1])
    t0 = time.perf_counter()
    trained, times = plain_loop(
        params, net.h, x_np, y_np, epochs=args.epochs, batch_size=args.batch, seed=2
    )
    plain = summarise(times, per_epoch)
    plain["wall_s"] = time.perf_counter() - t0
    plain["test_accuracy"] = plain_accuracy(trained, net.h, *(np.asarray(a) for a in test))

    ratio = ours["sequences_per_s"] / plain["sequences_per_s"]
    print(f"\n{'':18s} {'compile s':>9s} {'s/epoch':>8s} {'sequences/s':>11s} {'test acc':>8s}")
    for name, row in (("bm.Trainer", ours), ("plain JAX loop", plain)):
        print(
            f"{name:18s} {row['compile_s']:9.2f} {row['steady_epoch_s']:8.3f} "
            f"{row['sequences_per_s']:11.0f} {row['test_accuracy']:8.1%}"
        )
    print(
        f"Trainer / plain throughput: {ratio:.2f} (max |plain - HORNSeqNetwork| logits "
        f"{agreement:.1e})"
    )
    return {
        "workload": {
            "task": "sequential_digits row-wise",
            "n_train": int(n_train),
            "T": int(T),
            "n_inputs": int(n_in),
            "n_units": args.units,
            "batch_size": args.batch,
            "epochs": args.epochs,
            "steps_per_epoch": steps,
            "optimizer": f"clip_by_global_norm({CLIP_NORM}) + adam({LEARNING_RATE})",
        },
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "load_average": list(load),
        "trainer": ours,
        "plain_jax": plain,
        "ratio_trainer_over_plain": ratio,
        "forward_max_abs_difference": agreement,
    }


def main(argv=None) -> int:
    """Parse the arguments, run the benchmark, print the table and write `--json`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each run (>= 2)")
    parser.add_argument("--units", type=int, default=64, help="HORN oscillators")
    parser.add_argument("--batch", type=int, default=64, help="sequences per minibatch")
    parser.add_argument("--quick", action="store_true", help="5 epochs (a smoke run)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 5
    if args.epochs < 2:
        parser.error(f"--epochs: expected at least 2 (compile + timed), got {args.epochs}")
    if args.units < 1 or args.batch < 1:
        parser.error("--units and --batch: expected positive integers")
    out = run(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
