r"""Bad inputs that used to pass silently or crash obscurely (issue 15, item 5).

- out-of-domain conduction speeds in `Simulator.function` (concrete: a ValueError naming
  `network.speed`; traced: the failed-simulation path, a NaN signal with `ok` False);
- delay ring buffers too large to allocate (refused when the simulator is built);
- cycle frequencies (Hz) given for angular-frequency parameters (rad/ms): converted by $2\pi$;
- gradient-free fits in which every evaluation fails (a FitResult with loss inf, not a crash);
- MAP with most / all starts failing (a warning / an error naming the counts).

The workhorse is a 3-region `models.Linear` network $\dot x = -\lambda x + G W x$ (cheap to
compile); $G = 40$ makes it grow past float32 within 20 ms (a simulation that always fails).
"""

from __future__ import annotations

import math
import warnings

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import brainmass as bm
import inference as inf
from inference import likelihoods as L

W = np.array([[0.0, 1.0, 0.5], [0.3, 0.0, 1.0], [1.0, 0.2, 0.0]])
LENGTHS = np.array([[0.0, 20.0, 40.0], [20.0, 0.0, 30.0], [40.0, 30.0, 0.0]])  # mm
X0 = {"x": np.array([1.0, -0.5, 0.3])}


def _delayed_sim(speed=5.0, **kw):
    """3 regions with delays of 4-8 ms (16-32 steps of 0.25 ms), 20 ms."""
    conn = bm.Connectome.from_arrays(W, LENGTHS)
    net = bm.Network(bm.models.Linear(lam=0.2), conn, bm.coupling.Linear(G=0.1), speed=speed)
    monitor = bm.monitors.Raw(period=1.0)
    return bm.Simulator(net, 0.25, 20.0, monitor, X0, remat=False, **kw)


@pytest.fixture(scope="module")
def delayed():
    return _delayed_sim()


def _plain_sim(G=0.1):
    """3 regions, no delays, 20 ms at dt = 0.5 ms; G = 40 blows up."""
    conn = bm.Connectome.from_arrays(W, np.zeros_like(W))
    net = bm.Network(bm.models.Linear(lam=0.2), conn, bm.coupling.Linear(G=G))
    return bm.Simulator(net, 0.5, 20.0, bm.monitors.Raw(period=1.0), X0, remat=False)


# ----------------------------------------------------------------------------- speed


@pytest.mark.parametrize("speed", [0.0, -1.0, math.nan, -2.0 * u.meter / u.second])
def test_function_refuses_a_concrete_speed_outside_its_domain(delayed, speed):
    f = delayed.function(["network.speed"])
    with pytest.raises(ValueError, match=r"network\.speed: expected .*> 0|network\.speed.*finite"):
        f({"network.speed": speed})
    with pytest.raises(ValueError, match=r"network\.speed"):
        delayed.with_params({"network.speed": speed})
    conn = bm.Connectome.from_arrays(W, LENGTHS)
    with pytest.raises(ValueError, match="speed"):
        bm.Network(bm.models.Linear(), conn, speed=speed)


def test_traced_speed_outside_its_domain_is_a_failed_simulation(delayed):
    f = delayed.function(["network.speed"], output="result")
    good = f({"network.speed": 5.0})
    assert bool(good.ok) and np.all(np.isfinite(good.signal))
    jf = jax.jit(f)
    same = jf({"network.speed": 5.0})
    np.testing.assert_allclose(same.signal, good.signal, rtol=1e-5, atol=1e-7)
    # the delays would be clipped to the planned range and look plausible: they are NaN instead
    for bad in (0.0, -3.0, math.nan):
        res = jf({"network.speed": bad})
        assert not bool(res.ok), bad
        assert np.all(np.isnan(res.signal)), bad
    # in a vmapped batch only the bad lane fails
    batch = jax.vmap(lambda v: f({"network.speed": v}).signal)(jnp.array([5.0, 0.0]))
    np.testing.assert_allclose(batch[0], good.signal, rtol=1e-5, atol=1e-7)
    assert np.all(np.isnan(batch[1]))


# ----------------------------------------------------------------------------- buffer size


def test_a_delay_buffer_too_large_is_refused_before_allocating():
    # 40 mm at 1e-7 m/s (a speed in the wrong unit) is 4e8 ms: 1.6e9 steps of 0.25 ms, ~36 GiB
    with pytest.raises(ValueError, match=r"(?s)delay buffer.*GiB.*speed.*tract.*dt") as err:
        _delayed_sim(speed=1e-7 * u.meter / u.second)
    msg = str(err.value)
    assert "max_buffer_gib" in msg
    # the size it names is the buffer's: regions x 2 x rows x features x bytes per value
    need = float(msg.split(" GiB")[0].split()[-1])
    rows = 2 * (40.0 / 1e-7 / 0.25)
    itemsize = jnp.zeros((), jnp.result_type(float)).dtype.itemsize
    assert need == pytest.approx(3 * rows * itemsize / 2**30, rel=1e-3)
    # the limit is a setting: a normal simulator under a tiny limit is refused too ...
    with pytest.raises(ValueError, match="max_buffer_gib"):
        _delayed_sim(max_buffer_gib=1e-9)
    # ... and the traced plan (room for slower speeds) is checked as well
    # (0.05 m/s: 40 mm is 3200 steps; the traced plan keeps twice as many rows)
    limit = 3 * 2 * 4800 * itemsize / 2**30
    sim = _delayed_sim(speed=0.05, max_buffer_gib=limit)
    assert sim.plan.length < 4800
    with pytest.raises(ValueError, match="delay buffer.*room for traced delays"):
        sim.function(["network.speed"])
    with pytest.raises(ValueError, match="max_buffer_gib"):
        _delayed_sim(max_buffer_gib=0.0)


# ----------------------------------------------------------------------------- angular freqs


def _peak_hz(model, duration=1000.0):
    conn = bm.Connectome.from_arrays(np.zeros((1, 1)), np.zeros((1, 1)))
    net = bm.Network(model, conn)
    sim = bm.Simulator(net, 0.1, duration, bm.monitors.Raw(period=1.0), remat=False)
    x = np.asarray(sim.run().signal[:, 0])
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    return np.fft.rfftfreq(x.size, d=1e-3)[int(np.argmax(spectrum))]  # Hz (1 ms samples)


def test_a_frequency_in_hz_is_a_cycle_frequency():
    hopf = bm.models.Hopf(a=0.05, omega=10 * u.Hz)
    assert float(hopf.omega) == pytest.approx(2 * math.pi * 0.010, rel=1e-6)
    assert _peak_hz(hopf) == pytest.approx(10.0, abs=1.0)  # it was 1.6 Hz
    # angular quantities and plain numbers (rad/ms) keep their value
    rad_per_s = 2 * math.pi * 10 * u.radian / u.second
    assert float(bm.models.Hopf(omega=rad_per_s).omega) == pytest.approx(0.02 * math.pi, rel=1e-6)
    assert float(bm.models.Hopf(omega=0.0628).omega) == pytest.approx(0.0628)
    assert float(bm.models.Kuramoto(omega=0.04 * u.kHz).omega) == pytest.approx(0.08 * math.pi)
    assert float(bm.models.HORN(omega=30 * u.Hz).omega) == pytest.approx(0.06 * math.pi)
    net = bm.HORNSeqNetwork(
        jax.random.key(0), n_inputs=1, n_units=2, n_outputs=1, omega=30 * u.Hz, gamma=10 * u.Hz
    )
    np.testing.assert_allclose(net.omega, 0.06 * math.pi, rtol=1e-6)
    np.testing.assert_allclose(net.gamma, 0.01, rtol=1e-6)  # a rate: no 2 pi
    # the same rule by path; a rate (model.a, 1/ms) is not an angular frequency
    sim = bm.Simulator(
        bm.Network(hopf, bm.Connectome.from_arrays(np.zeros((1, 1)), np.zeros((1, 1)))), 0.1, 10.0
    )
    new = sim.with_params({"model.omega": 20 * u.Hz, "model.a": -20 * u.Hz})
    assert float(new.network.model.omega) == pytest.approx(0.04 * math.pi, rel=1e-6)
    assert float(new.network.model.a) == pytest.approx(-0.02, rel=1e-6)
    f = sim.function(["model.omega"], output="result")
    assert float(f({"model.omega": 20 * u.Hz}).final_state[0, 0]) == pytest.approx(
        float(new.with_params({"model.a": 0.05}).run().final_state[0, 0]), rel=1e-5
    )
    # params() round-trips: the quantity it gives is in rad/ms
    back = new.with_params({"model.omega": new.params()["model.omega"]})
    assert float(back.network.model.omega) == pytest.approx(0.04 * math.pi, rel=1e-6)
    assert new.parameter_info()[1].unit == "rad/ms"


# ----------------------------------------------------------------------------- fits


@pytest.fixture(scope="module")
def blowing_up():
    sim = _plain_sim(G=40.0)
    assert not bool(sim.run(check=False).ok)
    return sim


@pytest.mark.parametrize("method", ["Nelder-Mead", "L-BFGS-B", "CMA", "differential_evolution"])
def test_a_fit_in_which_every_evaluation_fails_returns_a_failed_result(blowing_up, method):
    params = {"coupling.G": bm.Bounded(39.0, 50.0, init=40.0)}
    target = np.zeros((20, 3))
    fitter = bm.Fitter(
        blowing_up, params, bm.objectives.TimeSeriesRMSE(), target, method, progress=False,
        population=4 if method != "L-BFGS-B" else None,
    )  # fmt: skip
    with pytest.warns(UserWarning, match=r"every one of the \d+ evaluations failed"):
        res = fitter.fit(jax.random.key(0), steps=2)
    assert res.loss == math.inf and np.all(res.best_history == math.inf)
    assert res.n_simulations > 0 and res.n_failed == res.n_simulations
    assert res.params["coupling.G"] == pytest.approx(40.0, rel=1e-5)  # the starting point


# ----------------------------------------------------------------------------- MAP


def _bmodel(G_prior):
    sim = _plain_sim()
    priors = {"model.lam": dist.LogNormal(math.log(0.2), 0.3), "coupling.G": G_prior}
    return inf.BayesianModel(sim, priors, L.TimeSeries(sigma=0.05))


@pytest.fixture(scope="module")
def data():
    return np.asarray(_plain_sim().run().signal)


def test_map_warns_when_most_starts_fail_and_refuses_when_all_do(data):
    # G ~ U(0, 8): G above ~3 grows past float32 within 20 ms; with this key 3 of 4 starts do
    bmodel = _bmodel(dist.Uniform(0.0, 8.0))
    # two chunks with tol (nuts's default start): the failed starts' -inf does not stop or
    # disturb the early stopping (no RuntimeWarning from -inf - -inf)
    with pytest.warns(UserWarning, match=r"map_estimate: (\d) of 4 starts failed") as rec:
        fit = inf.map_estimate(bmodel, data, jax.random.key(2), num_starts=4, steps=10,
                               chunk_size=5, tol=1e-9, progress=False)  # fmt: skip
    assert not [w for w in rec if issubclass(w.category, RuntimeWarning)], rec
    failed = int(np.sum(~np.isfinite(fit.start_log_densities)))
    assert failed == fit.n_failed_starts == 3
    assert "3 of 4 starts failed" in str(rec[0].message)
    assert fit.n_failed >= failed * 5 and np.isfinite(fit.log_density)
    # a good prior: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        inf.map_estimate(_bmodel(dist.Uniform(0.0, 0.2)), data, jax.random.key(0), num_starts=2,
                         steps=5, progress=False)  # fmt: skip
    # G ~ U(35, 40): every start fails
    with pytest.raises(RuntimeError, match=r"every one of the 3 starts failed.*\d+ evaluations"):
        inf.map_estimate(_bmodel(dist.Uniform(35.0, 40.0)), data, jax.random.key(0),
                         num_starts=3, steps=5, progress=False)  # fmt: skip
