"""bm.Trainer: task training of sequence networks, checkpoints, resume, NeuralMassSeqNetwork."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest

import brainmass as bm
from brainmass.training import NeuralMassSeqNetwork, NonFiniteLossError, Trainer

matplotlib.use("Agg")


def sign_task(key, n_trials, n_steps=20, mu=0.25):
    """Classify the sign of the mean of a noisy sequence: label 1 when the mean is > 0."""
    k_sign, k_noise = jax.random.split(key)
    sign = jax.random.choice(k_sign, jnp.array([-1.0, 1.0]), (n_trials,))
    inputs = sign[:, None, None] * mu + jax.random.normal(k_noise, (n_trials, n_steps, 1))
    targets = (inputs.mean(axis=(1, 2)) > 0).astype(jnp.int32)
    return inputs, targets


class LinearRNN(eqx.Module):
    """$h_t = a \\odot h_{t-1} + B u_t$, $y_t = C h_t + d$: a pure-JAX reference network."""

    a: jax.Array
    b: jax.Array
    c: jax.Array
    d: jax.Array

    def __init__(self, key, n_inputs=1, n_hidden=3, n_outputs=2):
        kb, kc = jax.random.split(key)
        self.a = jnp.full((n_hidden,), 0.5)
        self.b = jax.random.normal(kb, (n_hidden, n_inputs)) / np.sqrt(n_inputs)
        self.c = jax.random.normal(kc, (n_outputs, n_hidden)) / np.sqrt(n_hidden)
        self.d = jnp.zeros((n_outputs,))

    def __call__(self, inputs, *, key=None):
        def step(h, u):
            h = self.a * h + self.b @ u
            return h, self.c @ h + self.d

        _, outputs = jax.lax.scan(step, jnp.zeros(self.a.shape), inputs)
        return outputs


def linear_outputs_numpy(net, inputs):
    """The LinearRNN's outputs `(n_trials, T, n_out)` computed in numpy."""
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (net.a, net.b, net.c, net.d))
    inputs = np.asarray(inputs, dtype=np.float64)
    h = np.zeros((inputs.shape[0], a.shape[0]))
    outs = []
    for t in range(inputs.shape[1]):
        h = a[None, :] * h + inputs[:, t, :] @ b.T
        outs.append(h @ c.T + d[None, :])
    return np.stack(outs, axis=1)


def same_tree(x, y):
    lx, ly = jax.tree.leaves(x), jax.tree.leaves(y)
    return len(lx) == len(ly) and all(np.array_equal(p, q) for p, q in zip(lx, ly, strict=True))


def history_without_time(history):
    return {k: v for k, v in history.items() if k != "time"}


@pytest.fixture(scope="module")
def data():
    return sign_task(jax.random.key(0), 256), sign_task(jax.random.key(1), 256)


@pytest.fixture(scope="module")
def wilson_cowan_run(data):
    train, test = data
    net = NeuralMassSeqNetwork(
        jax.random.key(2), bm.models.WilsonCowan(), n_inputs=1, n_units=4, n_outputs=2, dt=1.0
    )
    trainer = Trainer(net, "cross_entropy", learning_rate=0.05)
    before = trainer.evaluate(net, test)
    result = trainer.fit(
        jax.random.key(3), train, epochs=4, batch_size=32, validation=None, progress=False
    )
    return trainer, before, result


def test_wilson_cowan_network_learns_the_task(wilson_cowan_run, data):
    trainer, before, result = wilson_cowan_run
    after = trainer.evaluate(result.network, data[1])
    assert 0.35 < before["accuracy"] < 0.65
    assert after["accuracy"] > 0.85
    assert after["loss"] < 0.6 * before["loss"]
    assert result.history["train_loss"][-1] < 0.6 * result.history["train_loss"][0]
    # the model's own parameters trained too (default: every inexact leaf)
    assert not np.allclose(result.network.model.c_ee, trainer.network.model.c_ee)


def test_train_epoch_traced_once(wilson_cowan_run):
    trainer, _, result = wilson_cowan_run
    assert result.info["steps_per_epoch"] * result.n_epochs > 4
    assert eqx.debug.get_num_traces(trainer._train_epoch) == 1


def test_loss_matches_numpy_cross_entropy(data):
    inputs, targets = (x[:40] for x in data[0])
    net = LinearRNN(jax.random.key(6))
    logits = linear_outputs_numpy(net, inputs)[:, -1, :]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    y = np.asarray(targets)
    expected = -np.mean(log_p[np.arange(y.size), y])
    accuracy = np.mean(np.argmax(logits, axis=1) == y)
    trainer = Trainer(net, optimizer=optax.sgd(0.0))
    got = trainer.evaluate(net, (inputs, targets), batch_size=16)  # 3 batches, the last padded
    np.testing.assert_allclose(got["loss"], expected, rtol=1e-5)
    assert got["accuracy"] == pytest.approx(accuracy)
    # the training loss of a full, unshuffled batch before any update is the same number
    result = trainer.fit(
        jax.random.key(0),
        (inputs, targets),
        epochs=1,
        batch_size=40,
        validation=None,
        shuffle=False,
        progress=False,
    )
    np.testing.assert_allclose(result.history["train_loss"][0], expected, rtol=1e-5)
    # mse against final-step targets
    goal = np.asarray(jax.random.normal(jax.random.key(7), (40, 2)))
    mse = Trainer(net, "mse", metrics=()).evaluate(net, (inputs, goal))
    np.testing.assert_allclose(mse["loss"], np.mean((logits - goal) ** 2), rtol=1e-5)


def test_gradient_matches_finite_differences():
    net = NeuralMassSeqNetwork(
        jax.random.key(8),
        bm.models.WilsonCowan(),
        n_inputs=1,
        n_units=2,
        n_outputs=2,
        dt=1.0,
        substeps=2,
        recurrent_scale=2.0,
    )
    inputs, targets = sign_task(jax.random.key(9), 3, n_steps=6, mu=1.0)
    trainer = Trainer(net)

    @eqx.filter_jit
    def loss(w_rec):
        return trainer.compute_loss(eqx.tree_at(lambda n: n.w_rec, net, w_rec), inputs, targets)

    grad = np.asarray(eqx.filter_jit(jax.grad(loss))(net.w_rec))
    eps = 1e-2
    fd = np.zeros_like(grad)
    for i in np.ndindex(grad.shape):
        step = jnp.zeros_like(net.w_rec).at[i].set(eps)
        fd[i] = (loss(net.w_rec + step) - loss(net.w_rec - step)) / (2 * eps)
    assert np.abs(grad).max() > 1e-3
    # weights only: the model's parameters are left out of the trainable partition
    params, _ = Trainer(net, trainable=net.filter_spec(model=False))._partition(net)
    assert params.model.c_ee is None and params.w_rec is not None
    assert Trainer(net)._partition(net)[0].model.c_ee is not None
    np.testing.assert_allclose(grad, fd, rtol=2e-2, atol=2e-4)


@pytest.fixture(scope="module")
def linear_trainer():
    """One Trainer (one compiled step) shared by the tests below; `fit` keeps no state."""
    return Trainer(LinearRNN(jax.random.key(10)), learning_rate=0.05)


@pytest.fixture(scope="module")
def small(data):
    """96 training trials (72 train + 24 validation with validation=0.25) and 24 others."""
    return tuple(x[:96] for x in data[0]), tuple(x[:24] for x in data[1])


SETTINGS = dict(batch_size=16, validation=0.25, progress=False)


def test_linear_network_learns_the_task(linear_trainer, small, data):
    before = linear_trainer.evaluate(linear_trainer.network, data[1])
    result = linear_trainer.fit(jax.random.key(5), small[0], epochs=6, **SETTINGS)
    after = linear_trainer.evaluate(result.network, data[1])
    assert before["accuracy"] < 0.7 and after["accuracy"] > 0.85
    assert result.history["val_loss"][-1] < 0.6 * result.history["val_loss"][0]


def test_resume_gives_the_uninterrupted_trajectory(linear_trainer, small, tmp_path):
    train, _ = small
    key = jax.random.key(11)
    full = linear_trainer.fit(key, train, epochs=4, **SETTINGS)
    path = tmp_path / "run.ckpt"
    first = linear_trainer.fit(key, train, epochs=2, checkpoint=path, **SETTINGS)
    assert first.n_epochs == 2 and path.exists()
    resumed = linear_trainer.fit(key, train, epochs=4, checkpoint=path, **SETTINGS)
    assert resumed.info["resumed_from"] == 2
    assert same_tree(resumed.network, full.network)
    full_h, resumed_h = history_without_time(full.history), history_without_time(resumed.history)
    assert full_h.keys() == resumed_h.keys()
    for k in full_h:
        np.testing.assert_array_equal(resumed_h[k], full_h[k], err_msg=k)
    assert not same_tree(first.network, full.network)

    # a KeyboardInterrupt (here from a callback) returns the finished epochs, checkpointed
    def interrupt(epoch, network, history):
        if epoch == 3:
            raise KeyboardInterrupt

    path2 = tmp_path / "interrupted.ckpt"
    part = linear_trainer.fit(
        key,
        train,
        epochs=4,
        checkpoint=path2,
        checkpoint_every=2,
        callbacks=[interrupt],
        **SETTINGS,
    )
    assert part.info["interrupted"] and part.n_epochs == 3
    rest = linear_trainer.fit(key, train, epochs=4, checkpoint=path2, **SETTINGS)
    assert rest.info["resumed_from"] == 3
    assert same_tree(rest.network, full.network)
    np.testing.assert_array_equal(rest.history["val_loss"], full.history["val_loss"])


def test_checkpoint_from_other_settings_is_refused(linear_trainer, small, data, tmp_path):
    train, _ = small
    path = tmp_path / "run.ckpt"
    linear_trainer.fit(jax.random.key(0), train, epochs=1, checkpoint=path, **SETTINGS)
    cases = [
        ("batch_size", jax.random.key(0), train, dict(SETTINGS, batch_size=8)),
        ("key", jax.random.key(1), train, SETTINGS),
        ("data", jax.random.key(0), tuple(x[100:196] for x in data[0]), SETTINGS),
        ("validation", jax.random.key(0), train, dict(SETTINGS, validation=0.5)),
    ]
    for differs, key, other, settings in cases:
        with pytest.raises(ValueError, match=f"checkpoint: .*{differs}"):
            linear_trainer.fit(key, other, epochs=2, checkpoint=path, **settings)
    with pytest.raises(ValueError, match="checkpoint: .*network"):
        Trainer(LinearRNN(jax.random.key(99)), learning_rate=0.05).fit(
            jax.random.key(0), train, epochs=2, checkpoint=path, **SETTINGS
        )
    # the optimiser's learning rate is a setting: a resume with another one is refused
    with pytest.raises(ValueError, match=r"checkpoint: .*learning_rate: saved 0\.05, now 0\.01"):
        Trainer(linear_trainer.network, learning_rate=0.01).fit(
            jax.random.key(0), train, epochs=2, checkpoint=path, **SETTINGS
        )

    # ... also inside an optimiser given whole (its closures are hashed to the depth of optax's)
    path2 = tmp_path / "adam.ckpt"
    Trainer(linear_trainer.network, optimizer=optax.adam(0.05)).fit(
        jax.random.key(0), train, epochs=1, checkpoint=path2, **SETTINGS
    )
    with pytest.raises(ValueError, match=r"checkpoint: .*optimizer: saved \w+, now \w+"):
        Trainer(linear_trainer.network, optimizer=optax.adam(0.01)).fit(
            jax.random.key(0), train, epochs=2, checkpoint=path2, **SETTINGS
        )


def test_damaged_checkpoints_name_the_file(linear_trainer, small, tmp_path):
    train, _ = small
    text = tmp_path / "notes.txt"  # a text file given as a checkpoint (was a bare MemoryError)
    text.write_text("epoch 3 looked fine\n" * 40)
    path = tmp_path / "run.ckpt"
    linear_trainer.fit(jax.random.key(0), train, epochs=1, checkpoint=path, **SETTINGS)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for bad in (text, truncated):
        with pytest.raises(ValueError, match=f"checkpoint: .*{bad.name} is not a .*Trainer"):
            linear_trainer.fit(jax.random.key(0), train, epochs=2, checkpoint=bad, **SETTINGS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run.ckpt", "truncated.ckpt"]


def test_bad_arguments_are_value_errors(linear_trainer, data):
    inputs, targets = (x[:32] for x in data[0])
    trainer = linear_trainer
    key = jax.random.key(0)
    fit_kw = dict(epochs=1, progress=False)
    with pytest.raises(ValueError, match="data: inputs have 32 trials"):
        trainer.fit(key, (inputs, targets[:-1]), **fit_kw)
    with pytest.raises(ValueError, match="data: the network cannot run"):
        trainer.fit(key, (jnp.concatenate([inputs, inputs], axis=2), targets), **fit_kw)
    wc = NeuralMassSeqNetwork(
        key, bm.models.WilsonCowan(), n_inputs=2, n_units=2, n_outputs=2, dt=1.0
    )
    with pytest.raises(ValueError, match="data: inputs have width n_inputs=1"):
        Trainer(wc).fit(key, (inputs, targets), **fit_kw)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.fit(key, (inputs, targets), batch_size=0, **fit_kw)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.fit(key, (inputs, targets), batch_size=64, **fit_kw)
    with pytest.raises(ValueError, match="data: class labels"):
        trainer.fit(key, (inputs, targets + 2), **fit_kw)
    with pytest.raises(ValueError, match="validation"):
        trainer.fit(key, (inputs, targets), validation=1.5, **fit_kw)
    with pytest.raises(ValueError, match="early_stopping"):
        trainer.fit(key, (inputs, targets), validation=None, early_stopping=2, **fit_kw)
    with pytest.raises(ValueError, match="loss: unknown loss 'hinge'"):
        Trainer(LinearRNN(key), loss="hinge")
    with pytest.raises(ValueError, match="metrics"):
        Trainer(LinearRNN(key), metrics=("f1",))
    with pytest.raises(ValueError, match="n_units"):
        NeuralMassSeqNetwork(
            key, bm.models.WilsonCowan(), n_inputs=1, n_units=0, n_outputs=2, dt=1.0
        )
    with pytest.raises(ValueError, match="model.c_ee"):
        NeuralMassSeqNetwork(
            key,
            bm.models.WilsonCowan(c_ee=jnp.ones(3)),
            n_inputs=1,
            n_units=2,
            n_outputs=2,
            dt=1.0,
        )


def test_early_stopping_restores_the_best_epoch(linear_trainer, small):
    train, test = small
    flipped = (test[0], 1 - test[1])  # validation labels that training makes worse
    seen = []
    result = linear_trainer.fit(
        jax.random.key(12),
        train,
        epochs=12,
        **dict(SETTINGS, validation=flipped),
        early_stopping=2,
        callbacks=[lambda e, net, h: seen.append(net)],
    )
    val = result.history["val_loss"]
    assert result.info["stopped_early"] and result.info["n_val"] == 24
    assert result.best_epoch == int(np.argmin(val)) + 1
    assert result.n_epochs == result.best_epoch + 2 < 12
    assert same_tree(result.network, seen[result.best_epoch - 1])
    assert not same_tree(result.network, seen[-1])


def test_validation_split_and_lr_schedule(data):
    train = tuple(x[:50] for x in data[0])
    schedule = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.9)
    result = Trainer(LinearRNN(jax.random.key(13)), learning_rate=schedule).fit(
        jax.random.key(14), train, epochs=3, batch_size=16, validation=0.2, progress=False
    )
    info = result.info
    assert (info["n_train"], info["n_val"]) == (40, 10)
    assert (info["steps_per_epoch"], info["dropped_per_epoch"]) == (2, 8)
    val = info["validation_indices"]
    assert len(np.unique(val)) == 10 and val.min() >= 0 and val.max() < 50
    np.testing.assert_allclose(result.history["lr"], 0.1 * 0.9 ** np.array([0, 2, 4]), rtol=1e-6)
    fig = result.plot()
    assert len(fig.axes) == 2


def test_non_finite_loss_stops_with_the_last_good_network(data, tmp_path):
    train = tuple(x[:64] for x in data[0])
    # the learning rate jumps to 1e30 at the start of epoch 3 (4 steps per epoch): overflow
    schedule = optax.piecewise_constant_schedule(0.01, {8: 1e32})
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    trainer = Trainer(LinearRNN(jax.random.key(15)), optimizer=optimizer)
    path = tmp_path / "run.ckpt"
    kw = dict(batch_size=16, validation=None, checkpoint=path, checkpoint_every=5, progress=False)
    with pytest.raises(NonFiniteLossError, match="in epoch 3") as err:
        trainer.fit(jax.random.key(16), train, epochs=6, **kw)
    good = err.value.result
    assert err.value.epoch == 3 and good.n_epochs == 2
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(good.network))
    # an inject_hyperparams optimizer reports its learning rate (at each epoch's first step)
    np.testing.assert_allclose(good.history["lr"], [0.01, 0.01])
    loaded = trainer.fit(jax.random.key(16), train, epochs=2, **kw)  # reads the checkpoint
    assert loaded.info["resumed_from"] == 2
    assert same_tree(loaded.network, good.network)
    np.testing.assert_array_equal(loaded.history["train_loss"], good.history["train_loss"])
