"""Task generators: shapes, determinism, balance, and the label recomputed from the inputs."""

from __future__ import annotations

import sys

import jax
import numpy as np
import pytest

import brainmass as bm
from brainmass import tasks

# ------------------------------------------------------------------ delayed match-to-sample


@pytest.fixture(scope="module")
def dms():
    kw = dict(n_stimuli=4, sample_steps=3, delay_steps=6, test_steps=2, response_steps=2)
    inputs, targets = tasks.delayed_match_to_sample(jax.random.key(0), 200, **kw)
    return np.asarray(inputs), np.asarray(targets), kw


def test_dms_shapes_dtypes_and_determinism(dms):
    inputs, targets, kw = dms
    assert inputs.shape == (200, 3 + 6 + 2 + 2, 1 + 4) and inputs.dtype == np.float32
    assert targets.shape == (200,) and targets.dtype == np.int32
    again = tasks.delayed_match_to_sample(jax.random.key(0), 200, **kw)
    np.testing.assert_array_equal(again[0], inputs)
    np.testing.assert_array_equal(again[1], targets)
    other = tasks.delayed_match_to_sample(jax.random.key(1), 200, **kw)
    assert not np.array_equal(other[1], targets)


def test_dms_label_follows_the_rule(dms):
    inputs, targets, kw = dms
    assert np.sum(targets == 1) == 100  # balanced exactly
    stim = inputs[:, :, 1:]
    t_test = kw["sample_steps"] + kw["delay_steps"]
    sample = stim[:, 0].argmax(-1)
    test = stim[:, t_test].argmax(-1)
    np.testing.assert_array_equal(targets, (sample == test).astype(np.int32))
    # one-hot and constant within each epoch, silent in delay and response
    assert np.all(stim[:, : kw["sample_steps"]].sum(-1) == 1)
    assert np.all(stim[:, t_test : t_test + kw["test_steps"]].sum(-1) == 1)
    assert np.all(stim[:, kw["sample_steps"] : t_test] == 0)
    assert np.all(stim[:, t_test + kw["test_steps"] :] == 0)
    assert np.all(stim[:, : kw["sample_steps"]].argmax(-1) == sample[:, None])
    # fixation on until the response epoch, then off
    np.testing.assert_array_equal(inputs[0, :, 0], [1.0] * 11 + [0.0] * 2)
    # every stimulus is sampled, every wrong test stimulus occurs on non-matches
    assert set(sample) == {0, 1, 2, 3}
    offsets = (test - sample)[targets == 0] % 4
    assert set(offsets) == {1, 2, 3}


def test_dms_noise_is_added_to_stimuli_only(dms):
    clean, targets, kw = dms
    noisy, noisy_targets = tasks.delayed_match_to_sample(jax.random.key(0), 200, **kw, noise=0.3)
    np.testing.assert_array_equal(noisy_targets, targets)
    diff = np.asarray(noisy) - clean
    np.testing.assert_array_equal(diff[..., 0], 0.0)
    assert abs(diff[..., 1:].std() - 0.3) < 0.01


def test_dms_errors_name_the_argument():
    with pytest.raises(ValueError, match="n_stimuli: expected an integer >= 2"):
        tasks.delayed_match_to_sample(jax.random.key(0), 4, n_stimuli=1)
    with pytest.raises(ValueError, match="noise: expected a finite number >= 0"):
        tasks.delayed_match_to_sample(jax.random.key(0), 4, noise=-1.0)


# ------------------------------------------------------------ context-dependent integration


def test_context_integration_label_follows_the_cued_stream():
    kw = dict(stimulus_steps=15, response_steps=1, coherences=(0.1, 0.3))
    inputs, targets = tasks.context_dependent_integration(jax.random.key(2), 300, **kw, noise=0.0)
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    assert inputs.shape == (300, 16, 5) and inputs.dtype == np.float32
    assert targets.dtype == np.int32 and np.sum(targets) == 150
    context = inputs[:, 0, 3:5].argmax(-1)
    assert np.all(inputs[:, :, 3:5].sum(-1) == 1)  # a one-hot cue at every step
    means = inputs[:, :15, 1:3].mean(1)  # (trials, 2) stream means
    cued = means[np.arange(300), context]
    np.testing.assert_array_equal(targets, (cued > 0).astype(np.int32))
    np.testing.assert_allclose(np.sort(np.unique(np.abs(means).round(6))), [0.1, 0.3], rtol=1e-6)
    assert np.all(inputs[:, 15, 1:3] == 0) and np.all(inputs[:, :, 0] == np.r_[[1.0] * 15, 0.0])
    # the irrelevant stream is uninformative: congruent and incongruent trials both common
    irrelevant = means[np.arange(300), 1 - context]
    congruent = np.mean((irrelevant > 0) == (targets == 1))
    assert 0.4 < congruent < 0.6
    assert 0.4 < np.mean(context) < 0.6


def test_context_integration_noise_and_determinism():
    kw = dict(stimulus_steps=20, coherences=(0.2, 0.4), noise=0.5)
    a = tasks.context_dependent_integration(jax.random.key(3), 400, **kw)
    b = tasks.context_dependent_integration(jax.random.key(3), 400, **kw)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    inputs, targets = np.asarray(a[0]), np.asarray(a[1])
    clean, clean_targets = tasks.context_dependent_integration(
        jax.random.key(3), 400, **dict(kw, noise=0.0)
    )
    np.testing.assert_array_equal(clean_targets, targets)
    residual = inputs[:, :20, 1:3] - np.asarray(clean)[:, :20, 1:3]
    assert abs(residual.std() - 0.5) < 0.02
    # an ideal observer of the empirical mean: P(correct) = Phi(c sqrt(T) / sigma) = 0.96, 1.0
    context = inputs[:, 0, 3:5].argmax(-1)
    cued = inputs[:, :20, 1:3].mean(1)[np.arange(400), context]
    accuracy = np.mean((cued > 0) == (targets == 1))
    assert 0.94 < accuracy < 1.0


# ----------------------------------------------------------------------- sequential digits


@pytest.fixture(scope="module")
def digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    data = sklearn_datasets.load_digits()
    key = jax.random.key(4)
    train = tasks.sequential_digits(key, split="train", test_fraction=0.25)
    test = tasks.sequential_digits(key, split="test", test_fraction=0.25)
    return data, train, test


def _rows(images, labels):
    """Each (image, label) as one sortable row."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(labels), -1)
    table = np.concatenate([flat, np.asarray(labels, dtype=np.float64)[:, None]], axis=1)
    return table[np.lexsort(table.T[::-1])]


def test_digits_splits_partition_the_dataset(digits):
    data, (x_tr, y_tr), (x_te, y_te) = digits
    assert x_tr.shape == (1348, 8, 8) and x_te.shape == (449, 8, 8)
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int32
    assert len(y_tr) + len(y_te) == 1797
    together = _rows(np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te]))
    np.testing.assert_array_equal(together, _rows(data.images / 16.0, data.target))
    assert float(x_tr.min()) == 0.0 and float(x_tr.max()) == 1.0
    assert set(np.unique(y_te)) == set(range(10))


def test_digits_pixelwise_determinism_and_other_keys(digits):
    data, (x_tr, y_tr), _ = digits
    key = jax.random.key(4)
    px, py = tasks.sequential_digits(key, split="train", test_fraction=0.25, pixelwise=True)
    assert px.shape == (1348, 64, 1)
    np.testing.assert_array_equal(np.asarray(px).reshape(-1, 8, 8), x_tr)  # row-major pixels
    np.testing.assert_array_equal(py, y_tr)
    again = tasks.sequential_digits(key, split="train", test_fraction=0.25)
    np.testing.assert_array_equal(again[0], x_tr)
    other = tasks.sequential_digits(jax.random.key(5), split="train", test_fraction=0.25)
    assert not np.array_equal(other[1], y_tr)
    with pytest.raises(ValueError, match="split: expected 'train' or 'test'"):
        tasks.sequential_digits(key, split="valid")
    with pytest.raises(ValueError, match="test_fraction"):
        tasks.sequential_digits(key, test_fraction=1.5)


def test_digits_without_scikit_learn_says_how_to_install(monkeypatch):
    tasks._load_digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(ImportError, match="pip install scikit-learn"):
            bm.tasks.sequential_digits(jax.random.key(0))
    finally:
        tasks._load_digits.cache_clear()
