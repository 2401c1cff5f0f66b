"""Input validation: every bad input is a ValueError raised before anything runs.

Each message must name the argument, say what was expected and show what was
given. Nothing here may compile or run a simulation: an autouse fixture checks
that no simulation was traced. (Untrusted connectome files are covered in
tests/test_connectome.py.)
"""

from __future__ import annotations

import brainunit as u
import numpy as np
import pytest

import brainmass as bm
from brainmass._integration import TRACES

N = 8


@pytest.fixture(autouse=True)
def nothing_runs():
    """Validation happens at construction: no simulation is traced by any test here."""
    before = TRACES["simulate"]
    yield
    assert TRACES["simulate"] == before, "a simulation was traced during a validation test"


@pytest.fixture(scope="module")
def conn():
    return bm.Connectome.synthetic(n_regions=N, seed=0)


@pytest.fixture(scope="module")
def arrays(conn):
    return np.asarray(conn.weights, dtype=np.float64), np.asarray(conn.tract_lengths)


@pytest.fixture(scope="module")
def hopf_net(conn):
    return bm.Network(bm.models.Hopf(), conn)


@pytest.fixture(scope="module")
def delayed_net(conn):
    return bm.Network(bm.models.Hopf(), conn, speed=5.0)


@pytest.fixture(scope="module")
def noisy_net(conn):
    return bm.Network(bm.models.Hopf(), conn, noise=bm.noise.Additive(sigma=0.01))


@pytest.fixture(scope="module")
def hopf_sim(hopf_net):
    return bm.Simulator(hopf_net, dt=0.1, duration=10.0)


def raises(*fragments):
    """`pytest.raises(ValueError)` whose message must contain every fragment (verbatim)."""
    return _Raises(fragments)


class _Raises:
    def __init__(self, fragments):
        self.fragments = fragments

    def __enter__(self):
        self._ctx = pytest.raises(ValueError)
        self.info = self._ctx.__enter__()
        return self.info

    def __exit__(self, *exc):
        handled = self._ctx.__exit__(*exc)
        message = str(self.info.value)
        missing = [f for f in self.fragments if f not in message]
        assert not missing, f"message {message!r} lacks {missing}"
        return handled


# ----------------------------------------------------------------- connectome


def test_non_square_weights():
    with raises("weights", "square", "(3, 4)"):
        bm.Connectome.from_arrays(np.ones((3, 4)), np.ones((3, 4)))


def test_tract_lengths_shape_mismatch():
    with raises("tract_lengths", "(3, 3)", "(4, 4)"):
        bm.Connectome.from_arrays(np.ones((3, 3)), np.ones((4, 4)))


@pytest.mark.parametrize(
    "bad, fragments",
    [(np.nan, ("finite", "nan")), (np.inf, ("finite", "inf")), (-0.5, ("nonnegative", "-0.5"))],
    ids=["nan", "inf", "negative"],
)
def test_bad_weights(arrays, bad, fragments):
    weights, lengths = arrays
    weights = weights.copy()
    weights[1, 2] = bad
    with raises("weights", "[1, 2]", *fragments):
        bm.Connectome.from_arrays(weights, lengths)


def test_negative_tract_lengths(arrays):
    weights, lengths = arrays
    lengths = lengths.copy()
    lengths[3, 0] = -3.0
    with raises("tract_lengths", "nonnegative", "[3, 0]", "-3"):
        bm.Connectome.from_arrays(weights, lengths)


# ------------------------------------------------------------------- network


@pytest.mark.parametrize("speed", [0.0, -2.0, 0.0 * u.meter / u.second], ids=["0", "-2", "0 m/s"])
def test_speed_must_be_positive(conn, speed):
    with raises("speed", "> 0", "m/s"):
        bm.Network(bm.models.Hopf(), conn, speed=speed)


def test_speed_with_wrong_dimension(conn):
    with raises("speed", "m / s", "5 s"):
        bm.Network(bm.models.Hopf(), conn, speed=5 * u.second)


def test_model_parameter_must_broadcast_to_regions(conn):
    with raises("model.a", f"({N},)", "(3,)"):
        bm.Network(bm.models.Hopf(a=np.zeros(3)), conn)


def test_model_parameter_shape_checked_in_with_params(hopf_sim):
    with raises("model.a", f"({N},)", "(3,)"):
        hopf_sim.with_params({"model.a": np.zeros(3)})


def test_negative_rate_constant():
    with raises("Linear.lam", "> 0", "-1"):
        bm.models.Linear(lam=-1)
    with raises("Linear.lam", "> 0", "min -1"):
        bm.models.Linear(lam=np.array([0.1, -1.0]))


def test_negative_rate_constant_in_with_params(conn):
    sim = bm.Simulator(bm.Network(bm.models.Linear(), conn), dt=0.1, duration=10.0)
    with raises("model.lam", "> 0", "-1"):
        sim.with_params({"model.lam": -1.0})


def test_noise_on_unknown_variable(conn):
    with raises("noise.variables", "'z'", "('x', 'y')"):
        bm.Network(bm.models.Hopf(), conn, noise=bm.noise.Additive(0.01, variables=("z",)))
    with raises("noise.variables", "'z'", "('x', 'y')"):
        bm.Network(bm.models.Hopf(), conn, noise=bm.noise.Additive({"x": 0.01, "z": 0.02}))


# ----------------------------------------------------------------- simulator


@pytest.mark.parametrize(
    "dt, given", [(0.0, "0.0"), (-0.1, "-0.1"), (-0.1 * u.ms, "-0.1")], ids=["0", "-0.1", "-0.1 ms"]
)
def test_dt_must_be_positive(hopf_net, dt, given):
    with raises("dt", "> 0", f"got {given}"):
        bm.Simulator(hopf_net, dt=dt, duration=10.0)


def test_dt_with_wrong_dimension(hopf_net):
    with raises("dt", "ms", "0.1 m"):
        bm.Simulator(hopf_net, dt=0.1 * u.meter, duration=10.0)


def test_duration_with_wrong_dimension(hopf_net):
    with raises("duration", "ms", "Hz"):
        bm.Simulator(hopf_net, dt=0.1, duration=10 * u.Hz)


def test_duration_shorter_than_dt(hopf_net):
    with raises("duration", "dt = 0.1 ms", "0.05 ms"):
        bm.Simulator(hopf_net, dt=0.1, duration=0.05)


def test_duration_shorter_than_monitor_period(hopf_net):
    with raises("duration", "5.0 ms", "period 10.0 ms"):
        bm.Simulator(hopf_net, dt=0.1, duration=5.0, monitor=bm.monitors.Raw(period=10.0))


def test_monitor_period_not_a_multiple_of_dt(hopf_net):
    with raises("monitor.period", "multiple of dt = 0.1 ms", "0.25 ms"):
        bm.Simulator(
            hopf_net, dt=0.1, duration=5.0, monitor=bm.monitors.TemporalAverage(period=0.25)
        )


def test_monitor_unknown_variable(hopf_net):
    with raises("monitor.variable", "'z'", "('x', 'y')"):
        bm.Simulator(hopf_net, dt=0.1, duration=5.0, monitor=bm.monitors.Raw(variable="z"))


def test_unknown_path_in_with_params_suggests_close_match(hopf_sim):
    with raises("'model.omgea'", "Did you mean model.omega", "model.a"):
        hopf_sim.with_params({"model.omgea": 1.0})
    with raises("'coupling.g'", "coupling.G"):
        hopf_sim.function(["coupling.g"])


def test_speed_on_network_without_delays(hopf_sim):
    with raises("'network.speed'", "no delays", "speed="):
        hopf_sim.with_params({"network.speed": 3.0})


def test_with_params_value_of_wrong_dimension(hopf_sim):
    with raises("model.a", "5 mV"):
        hopf_sim.with_params({"model.a": 5 * u.mV})


def test_with_params_zero_speed(delayed_net):
    sim = bm.Simulator(delayed_net, dt=0.1, duration=10.0)
    with raises("network.speed", "> 0", "0.0"):
        sim.with_params({"network.speed": 0.0})


def test_deterministic_solver_with_noise(noisy_net):
    with raises("solver", "Heun", "deterministic", "StochasticHeun"):
        bm.Simulator(noisy_net, dt=0.1, duration=10.0, solver=bm.solvers.Heun())


def test_diffrax_with_delays(delayed_net):
    with raises("solver", "Diffrax", "delay"):
        bm.Simulator(delayed_net, dt=0.1, duration=10.0, solver=bm.solvers.Diffrax())


def test_init_unknown_variable(hopf_net):
    with raises("init", "'z'", "('x', 'y')"):
        bm.Simulator(hopf_net, dt=0.1, duration=10.0, init={"x": 0.1, "z": 0.0})


@pytest.mark.parametrize(
    "init, fragments",
    [
        ({"x": np.zeros(3)}, ("init['x']", f"({N},)", "(3,)")),
        (np.zeros((3, N)), ("init", f"(2, {N})", f"(3, {N})")),
    ],
    ids=["dict", "array"],
)
def test_init_wrong_shape(hopf_net, init, fragments):
    with raises(*fragments):
        bm.Simulator(hopf_net, dt=0.1, duration=10.0, init=init)


@pytest.mark.parametrize(
    "init", [{"x": np.nan}, {"y": np.array([0.0] * (N - 1) + [np.inf])}], ids=["nan", "inf"]
)
def test_init_not_finite(hopf_net, init):
    with raises("init", "finite"):
        bm.Simulator(hopf_net, dt=0.1, duration=10.0, init=init)


@pytest.mark.parametrize(
    "shape", [(5, 3, N), (2, N), (5, 2, N + 1)], ids=["n_vars", "2-D", "n_regions"]
)
def test_history_array_of_wrong_shape(delayed_net, shape):
    with raises("history", f"(n_past, 2, {N})", str(shape)):
        bm.Simulator(delayed_net, dt=0.1, duration=10.0, history=np.zeros(shape))


def test_history_not_finite(delayed_net):
    history = np.zeros((4, 2, N))
    history[2, 1, 3] = np.nan
    with raises("history", "finite"):
        bm.Simulator(delayed_net, dt=0.1, duration=10.0, history=history)


# ------------------------------------------------------------------ warnings


def test_delay_rounding_to_zero_steps_warns(conn):
    # at 1000 m/s (mm/ms) the shortest tracts (~30 mm) take ~0.03 ms, under half of dt = 0.1 ms
    speed, dt = 1000.0, 0.1
    net = bm.Network(bm.models.Hopf(), conn, speed=speed)
    delays = np.asarray(conn.tract_lengths) / speed
    n_edges = int(np.sum((np.asarray(conn.weights) > 0) & (delays < dt / 2)))
    assert 0 < n_edges < np.count_nonzero(np.asarray(conn.weights))
    with pytest.warns(UserWarning, match="instantaneously") as record:
        bm.Simulator(net, dt=dt, duration=10.0)
    message = str(record[0].message)
    assert f"{n_edges} weighted connection(s)" in message
    assert "dt = 0.1 ms" in message


def test_one_short_edge_warns_others_do_not(recwarn):
    weights = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    lengths = np.array([[0.0, 0.02, 5.0], [0.02, 0.0, 5.0], [5.0, 5.0, 0.0]])  # mm
    conn = bm.Connectome.from_arrays(weights, lengths)
    net = bm.Network(bm.models.Linear(), conn, speed=1.0)  # delays 0.02 ms and 5 ms
    with pytest.warns(UserWarning, match="1 weighted connection") as record:
        bm.Simulator(net, dt=0.1, duration=10.0)
    assert "instantaneously" in str(record[0].message)
    # every delay resolvable at this dt: no warning
    recwarn.clear()
    bm.Simulator(net, dt=0.01, duration=10.0)
    assert not [w for w in recwarn if "instantaneously" in str(w.message)]
