"""EEG and MEG monitors (brainmass.monitors.meeg): lead field @ the period mean of the activity.

The reference is the `TemporalAverage` monitor of the same run (same network,
key and period) multiplied by the lead field in NumPy, and the average
reference written out here.
"""

from __future__ import annotations

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass as bm
from brainmass.leadfield import centres_in_sphere, eeg_sphere, standard_1020
from brainmass.monitors.meeg import EEG, MEG

PERIOD = 4.0
TRANSIENT = 20.0


@pytest.fixture(scope="module")
def setup():
    conn = bm.Connectome.synthetic(n_regions=6, seed=0)
    net = bm.Network(
        bm.models.JansenRit(),
        conn,
        coupling=bm.coupling.Sigmoidal(G=1.0),
        noise=bm.noise.Additive(sigma=0.01),
    )
    names, electrodes = standard_1020()
    leadfield = np.asarray(eeg_sphere(centres_in_sphere(conn.centres), None, electrodes))
    key = jax.random.key(3)

    def run(monitor):
        return bm.Simulator(net, dt=0.1, duration=160.0, monitor=monitor).run(key)

    average = run(bm.monitors.TemporalAverage(period=PERIOD, transient=TRANSIENT))
    eeg = run(EEG(leadfield, period=PERIOD, transient=TRANSIENT, sensor_names=names))
    return dict(net=net, names=names, leadfield=leadfield, average=average, eeg=eeg)


def test_eeg_in_simulator_is_leadfield_at_temporal_average(setup):
    avg, eeg, L = setup["average"], setup["eeg"], setup["leadfield"]
    n_samples = int(160.0 / PERIOD) - int(TRANSIENT / PERIOD)
    assert eeg.signal.shape == (n_samples, 21)
    assert eeg.labels == setup["names"] == tuple(standard_1020()[0])
    np.testing.assert_allclose(np.asarray(eeg.time), np.asarray(avg.time))
    assert float(eeg.time[0]) == pytest.approx(TRANSIENT + PERIOD)
    x = np.asarray(avg.signal, dtype=float)  # (T, 6)
    assert x.std(axis=0).min() > 0  # the regions do move
    L64 = L.astype(float)
    referenced = L64 - L64.mean(axis=0, keepdims=True)  # average reference
    expected = x @ referenced.T
    np.testing.assert_allclose(
        np.asarray(eeg.signal), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max()
    )
    # average reference: the channels sum to zero at every time
    sums = np.asarray(eeg.signal, dtype=float).sum(axis=1)
    assert np.abs(sums).max() < 1e-5 * np.abs(expected).max() * 21
    # and it is not the unreferenced projection
    assert np.abs(x @ L64.T - expected).max() > 1e-2 * np.abs(expected).max()
    assert bool(eeg.ok)


def test_reference_options():
    rng = np.random.default_rng(0)
    L = rng.normal(size=(5, 3))
    names = ("A", "B", "C", "D", "E")
    values = jnp.asarray(rng.normal(size=(8, 3)), dtype=jnp.float32)  # one period of 8 steps
    mean = np.asarray(values, dtype=float).mean(axis=0)

    def out(monitor):
        state = monitor.init(3, jnp.float32)
        state, sample = monitor.sample(state, values, 0.5)
        assert state is None
        return np.asarray(sample, dtype=float)

    average = EEG(L, period=4.0, sensor_names=names)
    np.testing.assert_allclose(out(average), (L - L.mean(axis=0)) @ mean, rtol=1e-5, atol=1e-6)
    assert average.reference == "average" and average.sensor_names == names
    plain = EEG(L, period=4.0, sensor_names=names, reference=None)
    np.testing.assert_allclose(out(plain), L @ mean, rtol=1e-5, atol=1e-6)
    single = EEG(L, period=4.0, sensor_names=names, reference="C")
    assert single.sensor_names == ("A", "B", "D", "E")
    expected = (L[[0, 1, 3, 4]] - L[2][None, :]) @ mean
    np.testing.assert_allclose(out(single), expected, rtol=1e-5, atol=1e-6)
    assert EEG(L, period=4.0).sensor_names == ("EEG000", "EEG001", "EEG002", "EEG003", "EEG004")
    # batched samples: vmap over a batch of periods equals one call per period
    batch = jnp.stack([values, 2.0 * values, values[::-1]])
    vmapped = jax.vmap(lambda v: plain.sample(None, v, 0.5)[1])(batch)
    for k in range(3):
        np.testing.assert_allclose(np.asarray(vmapped[k]), plain.sample(None, batch[k], 0.5)[1])


def test_meg_monitor():
    rng = np.random.default_rng(1)
    L = rng.normal(size=(4, 3)) * 1e-9
    values = jnp.asarray(rng.normal(size=(5, 3)), dtype=jnp.float32)
    meg = MEG(L, period=2.0)
    assert meg.sensor_names == ("MEG000", "MEG001", "MEG002", "MEG003")
    _, sample = meg.sample(meg.init(3, jnp.float32), values, 0.4)
    expected = L @ np.asarray(values, dtype=float).mean(axis=0)
    np.testing.assert_allclose(np.asarray(sample), expected, rtol=1e-5)
    # a lead field as a quantity in T/(A m) (here fT/(nA m) = 1e-6 T/(A m))
    q = MEG(L * 1e6 * u.ftesla / (u.namp * u.meter), period=2.0)
    np.testing.assert_allclose(np.asarray(q.leadfield), L, rtol=1e-6)
    with pytest.raises(ValueError, match="leadfield"):
        MEG(L * u.volt / (u.amp * u.meter), period=2.0)
    eeg_q = EEG(L * 1e-3 * u.uvolt / (u.namp * u.meter), period=2.0, reference=None)
    np.testing.assert_allclose(np.asarray(eeg_q.leadfield), L, rtol=1e-6)


def test_validation(setup):
    net, L = setup["net"], setup["leadfield"]
    wrong = L[:, :4]
    monitor = EEG(wrong, period=PERIOD)
    message = r"leadfield: expected shape \(21, 6\).*got shape \(21, 4\)"
    with pytest.raises(ValueError, match=message):
        monitor.channels(net)
    with pytest.raises(ValueError, match=message):
        monitor.check(net, 0.1)  # the hook the Simulator calls at construction
    with pytest.raises(ValueError, match=message):
        monitor.init(6, jnp.float32)
    with pytest.raises(ValueError, match=message):
        bm.Simulator(net, dt=0.1, duration=8.0, monitor=monitor)  # fails when built
    EEG(L, period=PERIOD).check(net, 0.1)  # a matching lead field passes
    assert EEG(L, period=PERIOD).n_sensors == 21
    with pytest.raises(ValueError, match="leadfield: expected a 2-D array"):
        EEG(L[0], period=PERIOD)
    with pytest.raises(ValueError, match="leadfield: expected finite"):
        EEG(np.full((2, 6), np.nan), period=PERIOD)
    with pytest.raises(ValueError, match="sensor_names: expected 21 names"):
        EEG(L, period=PERIOD, sensor_names=["Cz"])
    with pytest.raises(ValueError, match="sensor_names: expected distinct"):
        MEG(L[:2], period=PERIOD, sensor_names=["a", "a"])
    with pytest.raises(ValueError, match="reference: expected 'average', None or one of"):
        EEG(L, period=PERIOD, reference="Cz")  # default names are EEG000, ...
    with pytest.raises(ValueError, match="monitor.period"):
        EEG(L, period=-1.0)
    with pytest.raises(TypeError):
        EEG(L)  # the period is required
