"""Saving and loading NPE / NLE through brainmass.storage: no pickle, settings checked.

A saved estimator is arrays (flow weights, standardisation, the fitted summary's arrays)
and a JSON header; it is loaded into an estimator built again as it was built for
training, `NPE(sim, priors, summary, ...).load(path)`. The estimators here are tiny
(a few hundred simulations, 2 epochs): the tests are about the files, not the posteriors.
"""

from __future__ import annotations

import pathlib
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import brainmass as bm
from brainmass.storage import StorageError
from inference import summaries as S
from inference.bank import PriorSpace, SimulationBank
from inference.sbi import NLE, NPE

PRIORS = {"a": dist.Normal(0.0, 1.0).expand([2])}
SIM_PRIORS = {"coupling.G": dist.Uniform(0.0, 0.5), "model.lam": dist.Uniform(0.05, 0.2)}
SMALL = dict(flow_layers=2, nn_width=16)
FIT = dict(max_epochs=2, patience=2, batch_size=100, learning_rate=1e-3, progress=False)
N = 300
EMBED = S.MLPEmbedding(2, width=8, depth=1)


def _bank(space, key, n_features):
    """Prior draws and features that depend on them (a linear map plus noise)."""
    k_theta, k_noise = jax.random.split(key)
    theta = np.asarray(space.sample(k_theta, N))
    mix = np.linspace(0.5, 1.5, theta.shape[1] * n_features).reshape(theta.shape[1], n_features)
    noise = 0.3 * np.asarray(jax.random.normal(k_noise, (N, n_features)))
    return SimulationBank.from_arrays(theta, theta @ mix + noise, space)


def _log_variance(signal):
    """Summary: log variance of each channel over time, (n_channels,)."""
    return jnp.log(jnp.var(signal, axis=0))


def _simulator(dt=0.5):
    """A 2-region OU network (never run here: its settings enter the fingerprint)."""
    return bm.Simulator(
        bm.Network(
            bm.models.Linear(lam=0.1),
            bm.Connectome.synthetic(2, seed=0),
            coupling=bm.coupling.Linear(G=0.05),
            noise=bm.noise.Additive(sigma=0.05),
        ),
        dt=dt,
        duration=100.0,
        monitor=bm.monitors.TemporalAverage(period=2.0),
    )


@pytest.fixture(scope="module")
def npe():
    """A tiny NPE without a simulator, trained on features given as they are."""
    bank = _bank(PriorSpace(None, PRIORS), jax.random.key(0), 2)
    return NPE(None, PRIORS, None, **SMALL).train_on(bank, jax.random.key(1), **FIT)


@pytest.fixture(scope="module")
def saved(npe, tmp_path_factory):
    return npe.save(tmp_path_factory.mktemp("npe") / "npe.npz")


def _fc_summary():
    """FC of 3 channels with a 2-component PCA (fitted on the bank), bound without a simulator."""
    return S.FC(pca=2).bind_signal(2.0, (50, 3))


def test_round_trip_gives_bit_identical_samples_and_densities(npe, saved):
    loaded = NPE(None, PRIORS, None, **SMALL).load(saved)
    x = np.array([[0.3, -0.2], [1.0, 2.0]])
    for key in (jax.random.key(3), jax.random.key(4)):
        a = np.asarray(npe.posterior(features=x).sample_flat(key, 300))
        b = np.asarray(loaded.posterior(features=x).sample_flat(key, 300))
        np.testing.assert_array_equal(a, b)
    theta = {"a": np.array([[0.1, 0.2], [-1.0, 0.5]])}
    np.testing.assert_array_equal(
        np.asarray(npe.posterior(features=x[0]).log_prob(theta)),
        np.asarray(loaded.posterior(features=x[0]).log_prob(theta)),
    )
    assert loaded.losses == npe.losses and loaded.settings == npe.settings
    assert loaded.info["n_train"] == npe.info["n_train"] and "flowjax" in loaded.info["versions"]
    assert loaded is not npe and loaded.bank is None
    # the file is an npz of plain arrays: nothing in it needs pickle
    with np.load(saved, allow_pickle=False) as z:
        assert all(z[name].dtype != object for name in z.files)


def test_the_template_is_not_changed_and_the_class_call_explains_the_new_form(saved):
    template = NPE(None, PRIORS, None, **SMALL)
    template.load(saved)
    assert template.flow is None
    with pytest.raises(TypeError, match=r"NPE\(sim, priors, summary, \.\.\.\)\.load\(path\)"):
        NPE.load(saved)


def test_a_fitted_summary_and_an_embedding_round_trip_without_a_simulator(tmp_path):
    bank = _bank(PriorSpace(None, PRIORS), jax.random.key(2), 3)  # 3 "FC values"
    npe = NPE(None, PRIORS, _fc_summary(), embedding=EMBED, **SMALL)
    npe = npe.train_on(bank, jax.random.key(5), **FIT)
    assert npe._fitted_summary.components_.shape == (2, 3)  # the PCA was fitted on the bank
    path = npe.save(tmp_path / "fc.npz")
    # the template's summary is unbound: it is bound to the saved signal shape and period
    template = NPE(None, PRIORS, S.FC(pca=2), embedding=EMBED, **SMALL)
    loaded = template.load(path)
    np.testing.assert_array_equal(
        loaded._fitted_summary.components_, npe._fitted_summary.components_
    )
    signal = np.asarray(jax.random.normal(jax.random.key(6), (2, 50, 3)))  # two observations
    a = np.asarray(npe.posterior(signal).sample_flat(jax.random.key(7), 200))
    b = np.asarray(loaded.posterior(signal).sample_flat(jax.random.key(7), 200))
    assert a.shape == (2, 200, 2)
    np.testing.assert_array_equal(a, b)
    # a summary with another PCA size, or no embedding, is refused by name
    with pytest.raises(StorageError, match="summary: saved FC\\(pca=2"):
        NPE(None, PRIORS, S.FC(pca=1), embedding=EMBED, **SMALL).load(path)
    with pytest.raises(StorageError, match="embedding: saved MLPEmbedding"):
        NPE(None, PRIORS, S.FC(pca=2), **SMALL).load(path)


def test_nle_round_trip_gives_identical_log_likelihoods(tmp_path):
    space = PriorSpace(None, PRIORS)
    nle = NLE(None, PRIORS, None, **SMALL).train_on(
        _bank(space, jax.random.key(8), 2), jax.random.key(9), **FIT
    )
    path = nle.save(tmp_path / "nle.npz")
    loaded = NLE(None, PRIORS, None, **SMALL).load(path)
    features = jnp.asarray([0.2, -0.4])
    theta = jnp.asarray([[0.0, 0.0], [0.5, -1.0]])
    np.testing.assert_array_equal(
        np.asarray(nle.log_likelihood(features, theta)),
        np.asarray(loaded.log_likelihood(features, theta)),
    )
    with pytest.raises(StorageError, match="holds a 'inference.NLE', not a 'inference.NPE'"):
        NPE(None, PRIORS, None, **SMALL).load(path)


def test_other_priors_settings_or_simulator_are_refused_naming_the_setting(tmp_path, saved):
    other = {"a": dist.Normal(0.0, 2.0).expand([2])}
    with pytest.raises(StorageError, match="priors.a: saved Expanded") as err:
        NPE(None, other, None, **SMALL).load(saved)
    assert str(saved) in str(err.value)
    with pytest.raises(StorageError, match="flow_layers: saved 2, now 3"):
        NPE(None, PRIORS, None, flow_layers=3, nn_width=16).load(saved)
    with pytest.raises(StorageError, match="parameters: saved"):
        NPE(None, {"b": PRIORS["a"]}, None, **SMALL).load(saved)

    sim = _simulator()
    est = NPE(sim, SIM_PRIORS, _log_variance, **SMALL)
    est = est.train_on(_bank(est.space, jax.random.key(10), 2), jax.random.key(11), **FIT)
    path = est.save(tmp_path / "sim.npz")
    same = NPE(_simulator(), SIM_PRIORS, _log_variance, **SMALL).load(path)
    signal = np.asarray(jax.random.normal(jax.random.key(12), sim.signal_shape))
    a = est.posterior(signal).sample(jax.random.key(13), 100)
    np.testing.assert_array_equal(
        a["coupling.G"], same.posterior(signal).sample(jax.random.key(13), 100)["coupling.G"]
    )
    with pytest.raises(StorageError, match="simulator.dt: saved 0.5, now 0.25"):
        NPE(_simulator(dt=0.25), SIM_PRIORS, _log_variance, **SMALL).load(path)
    # posteriors only: no simulator to compare, the summary function is bound to the saved shape
    alone = NPE(None, SIM_PRIORS, _log_variance, **SMALL).load(path)
    b = alone.posterior(signal).sample(jax.random.key(13), 100)
    np.testing.assert_array_equal(a["model.lam"], b["model.lam"])
    with pytest.raises(ValueError, match="no simulator"):
        alone.simulate(jax.random.key(0), 8)

    def _log_std(signal):
        return jnp.log(jnp.std(signal, axis=0))

    with pytest.raises(StorageError, match="summary: saved Function\\(_log_variance\\)"):
        NPE(None, SIM_PRIORS, _log_std, **SMALL).load(path)


class _Marker:
    """Unpickling it writes a file: the sign that a loader ran code from the file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.path), "code ran"))


def test_crafted_files_run_no_code_and_name_the_path(tmp_path, saved):
    marker = tmp_path / "marker.txt"
    template = NPE(None, PRIORS, None, **SMALL)
    raw = tmp_path / "raw.npz"  # a bare pickle, as the old format was
    raw.write_bytes(pickle.dumps({"flow_bytes": _Marker(marker)}))
    header = np.frombuffer(b'{"kind": "inference.NPE", "format": 1}', dtype=np.uint8)
    objects = tmp_path / "objects.npz"  # a valid header beside a pickled object array
    np.savez(objects, __header__=header, flow_00000=np.array([_Marker(marker)], dtype=object))
    pickled_header = tmp_path / "pickled_header.npz"
    np.savez(pickled_header, __header__=np.array([_Marker(marker)], dtype=object))
    for path in (raw, objects, pickled_header):
        with pytest.raises(StorageError) as err:
            template.load(path)
        assert str(path) in str(err.value)
    assert not marker.exists()
    # sanity of the test: unpickling the crafted object does run code
    pickle.loads(raw.read_bytes())
    assert marker.read_text() == "code ran"


def test_truncated_or_damaged_files_name_the_path(tmp_path, saved):
    data = saved.read_bytes()
    template = NPE(None, PRIORS, None, **SMALL)
    for n in (len(data) // 2, len(data) - 30, 100):
        cut = tmp_path / f"cut{n}.npz"
        cut.write_bytes(data[:n])
        with pytest.raises(StorageError, match=str(cut)):
            template.load(cut)
    # a complete archive whose flow weights were removed
    partial = tmp_path / "partial.npz"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(partial, "w") as dst:
        for item in src.infolist():
            if not item.filename.startswith("flow_00000"):
                dst.writestr(item, src.read(item.filename))
    with pytest.raises(StorageError, match=str(partial)):
        template.load(partial)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        template.load(tmp_path / "missing.npz")


def test_train_on_refuses_a_bank_drawn_under_other_priors():
    other = {"a": dist.Normal(0.5, 1.0).expand([2])}
    bank = _bank(PriorSpace(None, other), jax.random.key(14), 2)
    with pytest.raises(ValueError, match="bank: it was drawn under other priors.*'priors'"):
        NPE(None, PRIORS, None, **SMALL).train_on(bank, jax.random.key(15), **FIT)
    with pytest.raises(ValueError, match="priors"):
        NLE(None, PRIORS, None, **SMALL).train_on(bank, jax.random.key(15), **FIT)
