"""Cognitive-task generators for training networks such as `HORNSeqNetwork`.

Every generator returns `(inputs, targets)`: `inputs` float32 of shape
`(n_trials, T, n_inputs)` and `targets` int32 class labels of shape
`(n_trials,)`, the same arrays for the same key.

Convention: a trial's label is the network's decision at the LAST time step,
`argmax(outputs[-1])` (the `Trainer`'s default loss is the cross-entropy of
`outputs[-1]` against the label). Tasks with a fixation channel switch it off for
the final `response_steps` steps: the go cue, after which the answer is read.

Generators:

- `delayed_match_to_sample`: is the test stimulus the sample shown before a delay?
- `context_dependent_integration`: the sign of the contextually cued of two
  noisy evidence streams (Mante et al. 2013).
- `sequential_digits`: scikit-learn's 8x8 handwritten digits, row by row or
  pixel by pixel (a small sequential MNIST).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Float, Int, PRNGKeyArray
from .checks import check_int

__all__ = ["context_dependent_integration", "delayed_match_to_sample", "sequential_digits"]

Inputs = Float[Array, "n_trials T n_inputs"]
Targets = Int[Array, " n_trials"]


def _nonnegative(value: float, name: str) -> float:
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}.")
    return value


def _rng(key: PRNGKeyArray) -> np.random.Generator:
    """A NumPy generator seeded by 128 bits drawn from `key`: the same key, the same draws.

    Generating trials in NumPy avoids compiling a JAX program per task configuration.
    """
    return np.random.default_rng(np.asarray(jax.random.bits(key, (4,), jnp.uint32)))


def _balanced_labels(rng: np.random.Generator, n_trials: int) -> np.ndarray:
    """Labels 0/1 in equal numbers (one more 0 when n_trials is odd), shuffled."""
    return rng.permutation(np.arange(n_trials, dtype=np.int32) % 2)


def _fixation(n_trials: int, T: int, response_steps: int) -> np.ndarray:
    """Fixation channel `(n_trials, T, 1)`: 1 before the response epoch, 0 in it."""
    on = (np.arange(T) < T - response_steps).astype(np.float32)
    return np.broadcast_to(on[None, :, None], (n_trials, T, 1))


def delayed_match_to_sample(
    key: PRNGKeyArray,
    n_trials: int,
    *,
    n_stimuli: int = 4,
    sample_steps: int = 5,
    delay_steps: int = 10,
    test_steps: int = 5,
    response_steps: int = 1,
    noise: float = 0.0,
) -> tuple[Inputs, Targets]:
    """Delayed match-to-sample: report whether the test stimulus equals the sample.

    A trial shows a sample stimulus (one-hot over `n_stimuli` channels) for
    `sample_steps`, nothing for `delay_steps`, a test stimulus for `test_steps`,
    then nothing for `response_steps` (fixation off: respond). Half the trials
    (exactly, up to one for odd `n_trials`) are matches; on a non-match the test
    is drawn uniformly from the other stimuli. Chance is 50 %.

    **Arguments:**

    - `key`: a `jax.random` key; the same key gives the same trials.
    - `n_trials`: number of trials.
    - `n_stimuli`: number of distinct stimuli (>= 2).
    - `sample_steps`, `delay_steps`, `test_steps`, `response_steps`: epoch
      lengths in time steps (sample and test >= 1, delay and response >= 0).
    - `noise`: standard deviation of Gaussian noise added to every stimulus
      channel at every step (the fixation channel stays clean).

    **Returns:** `(inputs, targets)`: inputs float32 `(n_trials, T, 1 + n_stimuli)`
    with `T = sample_steps + delay_steps + test_steps + response_steps`; channel
    0 is fixation (1 until the response epoch, then 0), channels `1 + k` the
    stimuli. Targets int32 `(n_trials,)`: 1 for a match, 0 otherwise, read at
    the last time step.
    """
    n_trials = check_int(n_trials, "n_trials", 1)
    n_stimuli = check_int(n_stimuli, "n_stimuli", 2)
    sample_steps = check_int(sample_steps, "sample_steps", 1)
    delay_steps = check_int(delay_steps, "delay_steps", 0)
    test_steps = check_int(test_steps, "test_steps", 1)
    response_steps = check_int(response_steps, "response_steps", 0)
    noise = _nonnegative(noise, "noise")
    rng = _rng(key)
    labels = _balanced_labels(rng, n_trials)
    sample = rng.integers(0, n_stimuli, n_trials)
    offset = rng.integers(1, n_stimuli, n_trials)
    test = np.where(labels == 1, sample, (sample + offset) % n_stimuli)

    T = sample_steps + delay_steps + test_steps + response_steps
    t_test = sample_steps + delay_steps
    stimuli = np.zeros((n_trials, T, n_stimuli), dtype=np.float32)
    trials = np.arange(n_trials)
    stimuli[trials, :sample_steps, sample] = 1.0
    stimuli[trials, t_test : t_test + test_steps, test] = 1.0
    if noise > 0:
        stimuli += (noise * rng.standard_normal(stimuli.shape)).astype(np.float32)
    inputs = np.concatenate([_fixation(n_trials, T, response_steps), stimuli], axis=-1)
    return jnp.asarray(inputs, dtype=jnp.float32), jnp.asarray(labels, dtype=jnp.int32)


def context_dependent_integration(
    key: PRNGKeyArray,
    n_trials: int,
    *,
    stimulus_steps: int = 20,
    response_steps: int = 1,
    coherences: Sequence[float] = (0.1, 0.2, 0.4),
    noise: float = 0.5,
) -> tuple[Inputs, Targets]:
    r"""Context-dependent integration: report the sign of the cued one of two noisy streams.

    Two evidence streams ("motion" and "colour") are shown for
    `stimulus_steps`: stream $k$ at step $t$ is $c_k + \sigma \xi_{k,t}$ with a
    signed coherence $c_k = \pm$ one of `coherences` and $\xi$ standard normal.
    A context cue (one-hot, shown throughout) says which stream matters; the
    label is 1 when the cued stream's coherence is positive, 0 otherwise. The
    other stream is irrelevant: its sign is drawn independently (congruent and
    incongruent trials equally likely). Labels are balanced (exactly, up to one),
    contexts drawn uniformly; chance is 50 %. The label follows the coherence
    (the stream's mean), so with noise a trial's empirical mean can have the
    other sign and even an ideal observer errs on weak trials.

    Mante, Sussillo, Shenoy & Newsome (2013), "Context-dependent computation
    by recurrent dynamics in prefrontal cortex", Nature 503:78-84.

    **Arguments:**

    - `key`: a `jax.random` key; the same key gives the same trials.
    - `n_trials`: number of trials.
    - `stimulus_steps`: steps of evidence (>= 1).
    - `response_steps`: steps after the evidence, fixation off (>= 0).
    - `coherences`: the positive coherence magnitudes, drawn uniformly per stream.
    - `noise`: standard deviation $\sigma$ of the per-step evidence noise (>= 0).

    **Returns:** `(inputs, targets)`: inputs float32 `(n_trials, T, 5)` with
    `T = stimulus_steps + response_steps`; channels: 0 fixation (1 until the
    response epoch), 1 motion stream, 2 colour stream, 3 motion context cue,
    4 colour context cue. Targets int32 `(n_trials,)`: 1 if the cued coherence
    is positive, read at the last time step.
    """
    n_trials = check_int(n_trials, "n_trials", 1)
    stimulus_steps = check_int(stimulus_steps, "stimulus_steps", 1)
    response_steps = check_int(response_steps, "response_steps", 0)
    noise = _nonnegative(noise, "noise")
    cohs = np.asarray(coherences, dtype=np.float32)
    if cohs.ndim != 1 or cohs.size == 0 or not np.all(np.isfinite(cohs)) or np.any(cohs <= 0):
        raise ValueError(
            f"coherences: expected a non-empty sequence of positive magnitudes, got {coherences!r}."
        )
    rng = _rng(key)
    labels = _balanced_labels(rng, n_trials)
    context = rng.integers(0, 2, n_trials)  # 0: motion, 1: colour
    other_sign = np.where(rng.random(n_trials) < 0.5, 1.0, -1.0)
    magnitude = cohs[rng.integers(0, cohs.size, (n_trials, 2))]
    cued_sign = np.where(labels == 1, 1.0, -1.0)
    trials = np.arange(n_trials)
    signs = np.empty((n_trials, 2))
    signs[trials, context] = cued_sign
    signs[trials, 1 - context] = other_sign
    coherence = (signs * magnitude).astype(np.float32)  # (n_trials, 2)

    T = stimulus_steps + response_steps
    streams = np.zeros((n_trials, T, 2), dtype=np.float32)
    streams[:, :stimulus_steps] = coherence[:, None, :]
    if noise > 0:
        eps = rng.standard_normal((n_trials, stimulus_steps, 2))
        streams[:, :stimulus_steps] += (noise * eps).astype(np.float32)
    cue = np.zeros((n_trials, T, 2), dtype=np.float32)
    cue[trials, :, context] = 1.0
    inputs = np.concatenate([_fixation(n_trials, T, response_steps), streams, cue], axis=-1)
    return jnp.asarray(inputs, dtype=jnp.float32), jnp.asarray(labels, dtype=jnp.int32)


@functools.cache
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "sequential_digits needs scikit-learn (its bundled 8x8 digits, no download): "
            "pip install scikit-learn"
        ) from err
    data = load_digits()
    images = np.asarray(data.images, dtype=np.float32) / 16.0  # (1797, 8, 8), in [0, 1]
    return images, np.asarray(data.target, dtype=np.int32)


def sequential_digits(
    key: PRNGKeyArray,
    *,
    split: Literal["train", "test"] = "train",
    test_fraction: float = 0.2,
    pixelwise: bool = False,
) -> tuple[Inputs, Targets]:
    """Handwritten digits presented as sequences: scikit-learn's 8x8 digits (a small sMNIST).

    The 1797 images of `sklearn.datasets.load_digits()` (bundled with
    scikit-learn, no download), scaled from 0..16 to [0, 1], are shown row by
    row (`T = 8` steps of 8 pixels) or pixel by pixel (`pixelwise=True`,
    `T = 64` steps of 1 pixel, row-major). The key shuffles the images once; the
    first `round(test_fraction * 1797)` of the shuffle are the test split, the
    rest the training split, so the two splits of one key are disjoint and
    together the whole set.

    **Arguments:**

    - `key`: a `jax.random` key fixing the split and the order of the trials.
    - `split`: `"train"` or `"test"`.
    - `test_fraction`: the share of images in the test split, in (0, 1).
    - `pixelwise`: one pixel per step instead of one row.

    **Returns:** `(inputs, targets)`: inputs float32 `(n, 8, 8)` or `(n, 64, 1)`
    in [0, 1], targets int32 `(n,)`, the digit 0-9, read at the last time step.

    **Raises:** `ImportError` without scikit-learn (`pip install scikit-learn`).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}.")
    test_fraction = float(test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}.")
    images, digits = _load_digits()
    n = images.shape[0]
    n_test = round(test_fraction * n)
    if not 0 < n_test < n:
        raise ValueError(
            f"test_fraction: {test_fraction} leaves an empty split of the {n} images; "
            "expected a fraction that keeps both splits non-empty."
        )
    order = _rng(key).permutation(n)
    idx = order[:n_test] if split == "test" else order[n_test:]
    seq = images[idx].reshape(len(idx), 64, 1) if pixelwise else images[idx]
    return jnp.asarray(seq, dtype=jnp.float32), jnp.asarray(digits[idx], dtype=jnp.int32)
