"""`initial=True` on TemporalAverage, EEG and MEG: a first sample at t = 0.

The t = 0 sample is the monitor applied to the instantaneous initial value (an
average over a window of zero length is the value itself): the value for
`TemporalAverage`, the (re-referenced) lead field @ the value for `EEG` and `MEG`.
The references below are written out in NumPy from the initial state given to the
simulator; the rows after the first must be those of the `initial=False` run.
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro.distributions as dist
import pytest

import brainmass as bm
from brainmass.leadfield import centres_in_sphere, eeg_sphere, standard_1020
from brainmass.monitors.meeg import EEG, MEG

N_REGIONS = 6
PERIOD = 4.0
DURATION = 40.0
N_SAMPLES = int(DURATION / PERIOD)

_rng = np.random.default_rng(7)
# Jansen-Rit initial state away from the default (all zero), so that row 0 is not trivially 0.
Y1 = _rng.uniform(5.0, 15.0, N_REGIONS)
Y2 = _rng.uniform(10.0, 25.0, N_REGIONS)
Y0 = _rng.uniform(0.05, 0.2, N_REGIONS)
INIT = {"y0": Y0, "y1": Y1, "y2": Y2}


@pytest.fixture(scope="module")
def setup():
    conn = bm.Connectome.synthetic(n_regions=N_REGIONS, seed=0)
    net = bm.Network(
        bm.models.JansenRit(),
        conn,
        coupling=bm.coupling.Sigmoidal(G=1.0),
        noise=bm.noise.Additive(sigma=0.01),
    )
    _, electrodes = standard_1020()
    eeg_lf = np.asarray(eeg_sphere(centres_in_sphere(conn.centres), None, electrodes), float)
    meg_lf = np.random.default_rng(1).normal(size=(5, N_REGIONS))
    key = jax.random.key(3)

    def sim(monitor):
        return bm.Simulator(net, dt=0.1, duration=DURATION, monitor=monitor, init=INIT)

    def run(monitor):
        s = sim(monitor)
        return s, s.run(key)

    return dict(run=run, eeg_lf=eeg_lf, meg_lf=meg_lf)


def _check_initial(setup, make, expected_row0):
    """`make(initial)` -> monitor; the initial=True run is [expected_row0, initial=False run]."""
    sim_t0, with_t0 = setup["run"](make(True))
    sim_plain, plain = setup["run"](make(False))
    n_channels = plain.signal.shape[1]
    assert plain.signal.shape == sim_plain.signal_shape == (N_SAMPLES, n_channels)
    assert with_t0.signal.shape == sim_t0.signal_shape == (N_SAMPLES + 1, n_channels)
    assert sim_t0.records_initial and not sim_plain.records_initial
    assert with_t0.labels == plain.labels
    # times 0, period, 2 period, ...; the simulator's `time` says the same
    np.testing.assert_allclose(np.asarray(with_t0.time), PERIOD * np.arange(N_SAMPLES + 1))
    assert float(with_t0.time[0]) == 0.0
    np.testing.assert_allclose(np.asarray(sim_t0.time), np.asarray(with_t0.time))
    np.testing.assert_array_equal(np.asarray(with_t0.time[1:]), np.asarray(plain.time))
    # row 0: the monitor's read-out of the initial value
    row0 = np.asarray(with_t0.signal[0], dtype=float)
    scale = np.abs(expected_row0).max()
    assert scale > 0
    np.testing.assert_allclose(row0, expected_row0, rtol=1e-5, atol=1e-6 * scale)
    # the rest: exactly the initial=False run
    np.testing.assert_array_equal(np.asarray(with_t0.signal[1:]), np.asarray(plain.signal))
    assert bool(with_t0.ok) and bool(plain.ok)
    # the first sample differs from the next one (it is not a copy of a loop sample)
    assert np.abs(row0 - np.asarray(plain.signal[0], dtype=float)).max() > 1e-3 * scale
    return with_t0


def test_temporal_average_initial_is_the_initial_value(setup):
    v0 = Y1 - Y2  # Jansen-Rit's observable, the pyramidal potential v = y1 - y2
    _check_initial(setup, lambda ini: bm.monitors.TemporalAverage(PERIOD, initial=ini), v0)


def test_temporal_average_initial_of_another_variable(setup):
    make = lambda ini: bm.monitors.TemporalAverage(PERIOD, variable="y0", initial=ini)  # noqa: E731
    _check_initial(setup, make, Y0)


def test_eeg_initial_is_average_referenced_leadfield_at_initial_value(setup):
    L = setup["eeg_lf"]
    referenced = L - L.mean(axis=0, keepdims=True)  # the average reference
    expected = referenced @ (Y1 - Y2)
    res = _check_initial(setup, lambda ini: EEG(L, period=PERIOD, initial=ini), expected)
    assert res.signal.shape[1] == 21
    # average reference: the t = 0 channels sum to zero too, and differ from L @ v0
    row0 = np.asarray(res.signal[0], dtype=float)
    assert abs(row0.sum()) < 1e-5 * np.abs(expected).max() * 21
    assert np.abs(L @ (Y1 - Y2) - expected).max() > 1e-2 * np.abs(expected).max()


def test_eeg_initial_with_a_reference_electrode(setup):
    L = setup["eeg_lf"]
    names = tuple(standard_1020()[0])
    ref = names[3]
    i = names.index(ref)
    referenced = np.delete(L - L[i][None, :], i, axis=0)
    make = lambda ini: EEG(L, period=PERIOD, sensor_names=names, reference=ref, initial=ini)  # noqa: E731
    res = _check_initial(setup, make, referenced @ (Y1 - Y2))
    assert ref not in res.labels and res.signal.shape[1] == 20


def test_meg_initial_is_leadfield_at_initial_value(setup):
    L = setup["meg_lf"]
    res = _check_initial(setup, lambda ini: MEG(L, period=PERIOD, initial=ini), L @ (Y1 - Y2))
    assert res.signal.shape[1] == 5


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: bm.monitors.Raw(period=PERIOD, **kw),
        lambda **kw: bm.monitors.TemporalAverage(period=PERIOD, **kw),
        lambda **kw: EEG(np.ones((3, N_REGIONS)), period=PERIOD, **kw),
        lambda **kw: MEG(np.ones((3, N_REGIONS)), period=PERIOD, **kw),
    ],
    ids=["Raw", "TemporalAverage", "EEG", "MEG"],
)
def test_initial_validation(make):
    assert make().initial is False
    assert make(initial=True).initial is True
    assert make(initial=False, transient=10.0).initial is False
    for bad in ("yes", 1, None, np.bool_(True)):
        with pytest.raises(ValueError, match=r"monitor\.initial: expected True or False"):
            make(initial=bad)
    with pytest.raises(ValueError, match=r"monitor\.initial: the t = 0 sample would be discarded"):
        make(initial=True, transient=10.0)


def test_bold_has_no_initial():
    """BOLD's read-out is not the identity: it keeps no `initial` (and takes none)."""
    bold = bm.monitors.BOLD(period=500.0)
    assert not hasattr(bold, "initial")
    with pytest.raises(TypeError):
        bm.monitors.BOLD(period=500.0, initial=True)


@pytest.mark.parametrize("monitor", ["raw", "average"])
def test_noise_likelihoods_refuse_the_t0_sample(monitor):
    """The likelihoods of noise-driven series model samples at period, 2 period, ...; a
    t = 0 row is another random variable (a point value of the initial state)."""
    import inference as inf
    from inference import likelihoods as L

    make = {"raw": bm.monitors.Raw, "average": bm.monitors.TemporalAverage}[monitor]
    conn = bm.Connectome.synthetic(4, seed=0)
    net = bm.Network(
        bm.models.Linear(lam=0.05),
        conn,
        coupling=bm.coupling.Linear(G=0.01),
        noise=bm.noise.Additive(sigma=0.1),
    )
    priors = {"model.lam": dist.LogNormal(-3.0, 0.5)}
    sim = bm.Simulator(net, dt=0.5, duration=400.0, monitor=make(5.0, initial=True))
    for lik in (L.StateSpace(), L.Whittle(nperseg=16), L.Linearized("fc")):
        with pytest.raises(ValueError, match=r"t = 0 .*initial=False.*data\[1:\]"):
            inf.BayesianModel(sim, priors, lik)
    plain = bm.Simulator(net, dt=0.5, duration=400.0, monitor=make(5.0))
    inf.BayesianModel(plain, priors, L.StateSpace())  # accepted without the t = 0 row
