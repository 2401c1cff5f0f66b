"""The Simulator / Network API contract.

Parameters by dotted path (`params`, `parameter_info`, `with_params`), the pure
function `Simulator.function` under jit / vmap / grad without retracing, the
`Result` (fields, shapes, time grid), monitors, initial state and history,
solver choice, units of dt / duration / speed, and blow-up detection.

Every numeric check is against something written independently here: the
matrix exponential of the linear network (scipy), a NumPy Heun integration of
the Hopf network, the closed-form response of a delayed two-region linear
network, or a NumPy reduction of the every-step output.

Compilation is the cost here (a stochastic network takes ~10 s to compile on
CPU), so the simulators are module-scoped, small (8 regions, 20-30 ms), and no
noisy network is ever run: its API is checked without simulating.
"""

from __future__ import annotations

import math
import re

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm, expm_frechet

import brainmass as bm
from brainmass._integration import TRACES

N = 8
DT = 0.1  # ms
DURATION = 20.0  # ms
PERIOD = 1.0  # ms
T = int(DURATION / PERIOD)
STEPS_PER_SAMPLE = int(round(PERIOD / DT))
SAMPLED = slice(STEPS_PER_SAMPLE - 1, None, STEPS_PER_SAMPLE)  # every-step rows at t = k period

LAM, G_LIN = 0.1, 0.1  # Linear network
X0_LIN = np.linspace(-0.5, 0.8, N)

A_HOPF, OMEGA_HOPF, G_HOPF = 0.05, 2 * math.pi * 0.01, 0.2  # delay-free Hopf (limit cycle)
X0_HOPF = np.linspace(-0.4, 0.4, N)
Y0_HOPF = 0.1

A_DELAYED = np.full(N, -0.02)  # per-region a of the delayed Hopf network
SPEED = 5.0  # m/s


# ----------------------------------------------------------------- references


def linear_exact(weights, lam, G, x0, times):
    r"""$x(t) = e^{A t} x_0$, $A = -\lambda I + G W$; shape `(len(times), n)`."""
    w = np.asarray(weights, dtype=np.float64)
    a = -lam * np.eye(len(w)) + G * w
    return np.stack([expm(a * t) @ x0 for t in times])


def linear_integral(weights, lam, G, x0, t):
    r"""$\int_0^t e^{A s} x_0\, ds$ from the augmented matrix $[[A, x_0], [0, 0]]$ (Van Loan)."""
    w = np.asarray(weights, dtype=np.float64)
    n = len(w)
    m = np.zeros((n + 1, n + 1))
    m[:n, :n] = -lam * np.eye(n) + G * w
    m[:n, n] = x0
    return expm(m * t)[:n, n]


def hopf_heun_numpy(weights, a, omega, G, x0, y0, dt, n_steps):
    """The delay-free Hopf network with linear coupling, Heun's method in float64."""
    w = np.asarray(weights, dtype=np.float64)

    def field(x, y):
        r2 = x * x + y * y
        return (a - r2) * x - omega * y + G * (w @ x), (a - r2) * y + omega * x

    x = np.asarray(x0, dtype=np.float64).copy()
    y = np.broadcast_to(np.asarray(y0, dtype=np.float64), x.shape).copy()
    xs, ys = [], []
    for _ in range(n_steps):
        k1x, k1y = field(x, y)
        k2x, k2y = field(x + dt * k1x, y + dt * k1y)
        x = x + 0.5 * dt * (k1x + k2x)
        y = y + 0.5 * dt * (k1y + k2y)
        xs.append(x)
        ys.append(y)
    return np.array(xs), np.array(ys)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def conn():
    return bm.Connectome.synthetic(n_regions=N, seed=0)


@pytest.fixture(scope="module")
def noisy_sim(conn):
    """Every kind of parameter (model, coupling, noise, speed, connectome); never run."""
    net = bm.Network(
        bm.models.Hopf(a=0.1, omega=0.05),
        conn,
        coupling=bm.coupling.Linear(G=0.3),
        speed=SPEED,
        noise=bm.noise.Additive(sigma=0.01),
    )
    return bm.Simulator(
        net, dt=DT, duration=DURATION, monitor=bm.monitors.Raw(period=PERIOD), init={"x": 0.1}
    )


@pytest.fixture(scope="module")
def linear_net(conn):
    return bm.Network(bm.models.Linear(lam=LAM), conn, coupling=bm.coupling.Linear(G=G_LIN))


@pytest.fixture(scope="module")
def linear_sim(linear_net):
    return bm.Simulator(
        linear_net,
        dt=DT,
        duration=DURATION,
        monitor=bm.monitors.Raw(period=PERIOD),
        init={"x": X0_LIN},
    )


@pytest.fixture(scope="module")
def linear_result(linear_sim):
    return linear_sim.run()


@pytest.fixture(scope="module")
def linear_f(linear_sim):
    return linear_sim.function(["coupling.G", "model.lam"])


@pytest.fixture(scope="module")
def hopf_net(conn):
    return bm.Network(
        bm.models.Hopf(a=A_HOPF, omega=OMEGA_HOPF), conn, coupling=bm.coupling.Linear(G=G_HOPF)
    )


def hopf_sim(net, monitor, **kwargs):
    return bm.Simulator(
        net,
        dt=DT,
        duration=DURATION,
        monitor=monitor,
        init={"x": X0_HOPF, "y": Y0_HOPF},
        **kwargs,
    )


@pytest.fixture(scope="module")
def hopf_every_step(hopf_net):
    return hopf_sim(hopf_net, bm.monitors.Raw(period=None)).run()


@pytest.fixture(scope="module")
def hopf_reference(conn):
    return hopf_heun_numpy(
        conn.weights, A_HOPF, OMEGA_HOPF, G_HOPF, X0_HOPF, Y0_HOPF, DT, int(DURATION / DT)
    )


@pytest.fixture(scope="module")
def delayed_sim(conn):
    net = bm.Network(
        bm.models.Hopf(a=A_DELAYED), conn, coupling=bm.coupling.Linear(G=0.1), speed=SPEED
    )
    return bm.Simulator(
        net,
        dt=DT,
        duration=DURATION,
        monitor=bm.monitors.Raw(period=PERIOD),
        init={"x": X0_HOPF, "y": 0.0},
    )


@pytest.fixture(scope="module")
def delayed_result(delayed_sim):
    return delayed_sim.run()


@pytest.fixture(scope="module")
def delayed_result_fn(delayed_sim):
    """`function(["model.a"], output="result")` under `jax.jit` (one compilation)."""
    return jax.jit(delayed_sim.function(["model.a"], output="result"))


def _quantity_value(value, unit):
    assert isinstance(value, u.Quantity), f"expected a brainunit quantity, got {type(value)}"
    return np.asarray(value.to_decimal(unit))


# ---------------------------------------------------------------- parameters

EXPECTED_PATHS = {
    "model.a": u.ms**-1,
    "model.omega": u.ms**-1,
    "coupling.G": None,
    "noise.sigma": None,
    "network.speed": u.meter / u.second,
    "connectome.weights": None,
    "connectome.tract_lengths": u.mmeter,
}


def test_params_lists_every_path_with_units(noisy_sim, conn):
    params = noisy_sim.params()
    assert set(params) == set(EXPECTED_PATHS)
    for path, unit in EXPECTED_PATHS.items():
        if unit is None:
            assert not isinstance(params[path], u.Quantity), path
    np.testing.assert_allclose(_quantity_value(params["model.a"], u.ms**-1), 0.1, rtol=1e-6)
    # 1/ms is 1000/s: the quantity converts to other units of the same dimension
    np.testing.assert_allclose(_quantity_value(params["model.a"], u.second**-1), 100.0, rtol=1e-6)
    np.testing.assert_allclose(_quantity_value(params["model.omega"], u.ms**-1), 0.05, rtol=1e-6)
    np.testing.assert_allclose(_quantity_value(params["network.speed"], u.meter / u.second), 5.0)
    np.testing.assert_allclose(
        _quantity_value(params["connectome.tract_lengths"], u.mmeter),
        np.asarray(conn.tract_lengths),
    )
    np.testing.assert_allclose(
        _quantity_value(params["connectome.tract_lengths"], u.meter),
        np.asarray(conn.tract_lengths) / 1000.0,
        rtol=1e-6,
    )
    np.testing.assert_allclose(np.asarray(params["connectome.weights"]), np.asarray(conn.weights))
    np.testing.assert_allclose(np.asarray(params["coupling.G"]), 0.3, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(params["noise.sigma"]), 0.01, rtol=1e-6)


def test_params_without_delays_or_noise_has_no_speed_or_sigma(linear_sim):
    assert set(linear_sim.params()) == {
        "model.lam",
        "coupling.G",
        "connectome.weights",
        "connectome.tract_lengths",
    }


def test_parameter_info(noisy_sim, linear_sim):
    info = noisy_sim.parameter_info()
    assert all(isinstance(i, bm.ParameterInfo) for i in info)
    by_path = {i.path: i for i in info}
    assert set(by_path) == set(noisy_sim.params())
    for path, unit in EXPECTED_PATHS.items():
        entry = by_path[path]
        assert isinstance(entry.doc, str) and entry.doc, path
        if unit is None:
            assert entry.unit == "", path
        else:
            # the printed unit is the canonical unit's name, and the value is in it
            printed = str(noisy_sim.params()[path].unit)
            if unit == u.ms**-1:  # brainunit equates rad/ms and 1/ms; the name tells them apart
                printed = "rad/ms" if path.endswith("omega") else "1/ms"
            assert entry.unit == printed, path
            np.testing.assert_allclose(
                np.asarray(entry.value), _quantity_value(noisy_sim.params()[path], unit)
            )
    assert by_path["network.speed"].domain == "positive"
    assert by_path["noise.sigma"].domain == "nonnegative"
    assert by_path["connectome.weights"].domain == "nonnegative"
    assert by_path["model.a"].domain == "real"
    lam = {i.path: i for i in linear_sim.parameter_info()}["model.lam"]
    assert lam.domain == "positive"
    np.testing.assert_allclose(float(lam.value), LAM, rtol=1e-6)


def test_with_params_returns_new_simulator_and_leaves_old_unchanged(noisy_sim):
    before = {k: np.asarray(getattr(v, "mantissa", v)) for k, v in noisy_sim.params().items()}
    new = noisy_sim.with_params({"coupling.G": 0.7, "model.a": -0.3})
    assert isinstance(new, bm.Simulator) and new is not noisy_sim
    np.testing.assert_allclose(np.asarray(new.params()["coupling.G"]), 0.7, rtol=1e-6)
    np.testing.assert_allclose(_quantity_value(new.params()["model.a"], u.ms**-1), -0.3, rtol=1e-6)
    after = {k: np.asarray(getattr(v, "mantissa", v)) for k, v in noisy_sim.params().items()}
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    # untouched parameters carry over
    np.testing.assert_allclose(np.asarray(new.params()["noise.sigma"]), 0.01, rtol=1e-6)


def test_with_params_converts_model_quantities(noisy_sim):
    new = noisy_sim.with_params({"model.omega": 10 * u.Hz, "model.a": -20 * u.Hz})
    # omega is an angular frequency: 10 Hz (cycles) = 2 pi 10 rad/s = 0.0628 rad/ms;
    # a is a rate: -20 Hz = -20 / s = -0.02 / ms
    w = 2 * np.pi * 0.01
    np.testing.assert_allclose(_quantity_value(new.params()["model.omega"], u.ms**-1), w)
    np.testing.assert_allclose(_quantity_value(new.params()["model.a"], u.ms**-1), -0.02)
    np.testing.assert_allclose(float(new.network.model.omega), w, rtol=1e-6)


def test_with_params_per_region_arrays(noisy_sim):
    a = np.linspace(-0.1, 0.1, N)
    new = noisy_sim.with_params({"model.a": a, "coupling.G": 0.2})
    np.testing.assert_allclose(_quantity_value(new.params()["model.a"], u.ms**-1), a, rtol=1e-6)
    assert np.shape(new.network.model.a) == (N,)


@pytest.mark.parametrize(
    "speed",
    [500 * u.cmeter / u.second, 5 * u.mmeter / u.ms, 0.005 * u.meter / u.ms, 5.0],
    ids=["cm/s", "mm/ms", "m/ms", "plain m/s"],
)
def test_network_speed_quantities_are_converted(conn, speed):
    net = bm.Network(bm.models.Hopf(), conn, speed=speed)
    np.testing.assert_allclose(float(net.speed), 5.0, rtol=1e-6)  # m/s = mm/ms
    np.testing.assert_allclose(
        np.asarray(net.delays_ms()), np.asarray(conn.tract_lengths) / 5.0, rtol=1e-6
    )


def test_with_params_speed_quantities_are_converted(noisy_sim):
    for speed in (250 * u.cmeter / u.second, 2.5 * u.mmeter / u.ms, 2.5):
        new = noisy_sim.with_params({"network.speed": speed})
        np.testing.assert_allclose(
            _quantity_value(new.params()["network.speed"], u.meter / u.second), 2.5, rtol=1e-6
        )
    np.testing.assert_allclose(
        _quantity_value(noisy_sim.params()["network.speed"], u.meter / u.second), SPEED
    )


def test_dt_and_duration_quantities_equal_plain_numbers(linear_net, linear_sim, linear_result):
    sim_ms = bm.Simulator(
        linear_net,
        dt=0.1 * u.ms,
        duration=0.02 * u.second,
        monitor=bm.monitors.Raw(period=1 * u.ms),
        init={"x": X0_LIN},
    )
    sim_s = bm.Simulator(
        linear_net,
        dt=1e-4 * u.second,
        duration=20 * u.ms,
        monitor=bm.monitors.Raw(period=1e-3 * u.second),
        init={"x": X0_LIN},
    )
    for sim in (sim_ms, sim_s):
        assert (sim.dt, sim.duration, sim.period) == (linear_sim.dt, DURATION, PERIOD)
        assert sim.n_steps == linear_sim.n_steps
        res = sim.run()
        np.testing.assert_array_equal(np.asarray(res.time), np.asarray(linear_result.time))
        np.testing.assert_array_equal(np.asarray(res.signal), np.asarray(linear_result.signal))
    # ten seconds in units of seconds: built, not run
    long = bm.Simulator(linear_net, dt=1e-4 * u.second, duration=10 * u.second)
    assert long.dt == 0.1 and long.duration == 10_000.0
    assert long.n_steps == 100_000 and long.n_samples == 10_000  # default monitor: 1 ms


# -------------------------------------------------------------------- Result


def test_result_fields_and_closed_form(linear_sim, linear_result, conn):
    res = linear_result
    assert isinstance(res, bm.Result)
    np.testing.assert_allclose(np.asarray(res.time), PERIOD * np.arange(1, T + 1), rtol=1e-6)
    assert res.signal.shape == (T, N)
    assert res.final_state.shape == (1, N)
    assert tuple(res.labels) == tuple(conn.labels)
    assert bool(res.ok) is True
    exact = linear_exact(conn.weights, LAM, G_LIN, X0_LIN, np.asarray(res.time, dtype=float))
    np.testing.assert_allclose(np.asarray(res.signal), exact, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(res.final_state[0]), exact[-1], atol=2e-5, rtol=1e-4)


def test_result_to_xarray_is_labelled(linear_sim, linear_result, conn):
    da = linear_result.to_xarray()
    assert da.dims == ("time", "channel")
    assert list(da["channel"].values) == list(conn.labels)
    assert da["time"].attrs["units"] == "ms"
    np.testing.assert_array_equal(da.values, np.asarray(linear_result.signal))
    np.testing.assert_array_equal(da["time"].values, np.asarray(linear_result.time))
    label = conn.labels[1]
    np.testing.assert_array_equal(
        da.sel(channel=label).values, np.asarray(linear_result.signal)[:, 1]
    )
    # a vmapped result keeps its batch axis in front
    batched = jax.vmap(lambda _: linear_sim.run(None))(jnp.arange(2))
    db = batched.to_xarray()
    assert db.dims == ("batch_0", "time", "channel")
    assert db.shape == (2, T, N)


def test_result_of_delayed_two_variable_network(delayed_sim, delayed_result, conn):
    res = delayed_result
    np.testing.assert_allclose(np.asarray(res.time), PERIOD * np.arange(1, T + 1), rtol=1e-6)
    assert res.signal.shape == (T, N)
    assert res.final_state.shape == (2, N)  # (n_vars, n_regions)
    assert tuple(res.labels) == tuple(conn.labels)
    assert bool(res.ok)
    # the monitored observable (x) at the last sample is the first row of the final state
    np.testing.assert_array_equal(np.asarray(res.signal[-1]), np.asarray(res.final_state[0]))


def test_default_solver_choice(linear_sim, noisy_sim):
    assert isinstance(linear_sim.solver, bm.solvers.Heun)
    assert isinstance(noisy_sim.solver, bm.solvers.StochasticHeun)


# ------------------------------------------------------------------ function


def test_function_matches_with_params_run(linear_sim, linear_f):
    theta = {"coupling.G": 0.05, "model.lam": 0.2}
    signal = linear_f(theta)
    assert signal.shape == (T, N)
    np.testing.assert_allclose(
        np.asarray(signal), np.asarray(linear_sim.with_params(theta).run().signal), rtol=1e-6
    )
    exact = linear_exact(
        linear_sim.network.connectome.weights, 0.2, 0.05, X0_LIN, PERIOD * np.arange(1, T + 1)
    )
    np.testing.assert_allclose(np.asarray(signal), exact, atol=2e-5, rtol=1e-4)
    # quantities are accepted in theta and converted
    np.testing.assert_allclose(
        np.asarray(linear_f({"coupling.G": 0.05, "model.lam": 200 * u.Hz})), np.asarray(signal)
    )


def test_function_jit_equals_eager(linear_f):
    theta = {"coupling.G": jnp.asarray(0.15), "model.lam": jnp.asarray(0.12)}
    np.testing.assert_allclose(
        np.asarray(jax.jit(linear_f)(theta)), np.asarray(linear_f(theta)), rtol=1e-6, atol=1e-7
    )


def test_function_vmap_equals_loop(linear_f):
    gs = jnp.array([0.0, 0.05, 0.2])
    batched = jax.vmap(lambda g: linear_f({"coupling.G": g, "model.lam": 0.1}))(gs)
    assert batched.shape == (3, T, N)
    for i, g in enumerate(gs):
        one = linear_f({"coupling.G": g, "model.lam": 0.1})
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(one), rtol=1e-6, atol=1e-7)


def test_function_grad_matches_closed_form_derivative(linear_f, conn):
    g0, lam0 = 0.1, 0.1
    times = PERIOD * np.arange(1, T + 1)

    def loss(theta):
        return jnp.sum(linear_f(theta) ** 2)

    grad = jax.grad(loss)({"coupling.G": jnp.asarray(g0), "model.lam": jnp.asarray(lam0)})
    # d/dp sum_t |x(t)|^2 with x(t) = e^{A t} x0, A = -lam I + G W:
    # dx/dG = Frechet derivative of expm at A t in the direction W t; dx/dlam = -t x(t)
    w = np.asarray(conn.weights, dtype=np.float64)
    a = -lam0 * np.eye(N) + g0 * w
    d_g = d_lam = 0.0
    for t in times:
        x = expm(a * t) @ X0_LIN
        dx_dg = expm_frechet(a * t, w * t, compute_expm=False) @ X0_LIN
        d_g += 2 * x @ dx_dg
        d_lam += 2 * x @ (-t * x)
    np.testing.assert_allclose(float(grad["coupling.G"]), d_g, rtol=2e-3)
    np.testing.assert_allclose(float(grad["model.lam"]), d_lam, rtol=2e-3)


def test_function_does_not_retrace_for_new_values(linear_net):
    # a duration no other test uses: its first call must compile afresh
    sim = bm.Simulator(linear_net, dt=DT, duration=13.0, init={"x": X0_LIN})
    f = sim.function(["coupling.G", "model.lam"])
    before = TRACES["simulate"]
    first = f({"coupling.G": 0.1, "model.lam": 0.1})
    assert TRACES["simulate"] == before + 1
    second = f({"coupling.G": 0.3, "model.lam": 0.05})
    f({"coupling.G": 0.0, "model.lam": 1.0})
    assert TRACES["simulate"] == before + 1
    assert not np.allclose(np.asarray(first), np.asarray(second))


def test_function_does_not_retrace_for_floats_versus_arrays(linear_net):
    sim = bm.Simulator(linear_net, dt=DT, duration=14.0, init={"x": X0_LIN})
    f = sim.function(["coupling.G", "model.lam"])
    before = TRACES["simulate"]
    f({"coupling.G": 0.1, "model.lam": 0.1})
    assert TRACES["simulate"] == before + 1
    f({"coupling.G": jnp.asarray(0.2, dtype=jnp.float32), "model.lam": np.float32(0.2)})
    f({"coupling.G": np.asarray(0.3), "model.lam": jnp.asarray(0.3)})
    f({"coupling.G": 0.4, "model.lam": 0.4})
    assert TRACES["simulate"] == before + 1, "a new trace for arrays instead of Python floats"


def test_function_rejects_wrong_theta_keys(linear_f):
    with pytest.raises(ValueError, match="theta"):
        linear_f({"coupling.G": 0.1})
    with pytest.raises(ValueError, match="theta"):
        linear_f({"coupling.G": 0.1, "model.lam": 0.1, "model.a": 0.0})
    with pytest.raises(ValueError, match="theta"):
        linear_f({"coupling.g": 0.1, "model.lam": 0.1})


def test_function_rejects_unknown_path_and_output(linear_sim):
    with pytest.raises(ValueError, match="coupling.G"):  # suggested
        linear_sim.function(["coupling.g"])
    with pytest.raises(ValueError, match="output"):
        linear_sim.function(["coupling.G"], output="states")


def test_stochastic_network_needs_a_key(noisy_sim):
    before = TRACES["simulate"]
    with pytest.raises(ValueError, match="key"):
        noisy_sim.run()
    f = noisy_sim.function(["coupling.G"])
    with pytest.raises(ValueError, match="key"):
        f({"coupling.G": 0.1})
    assert TRACES["simulate"] == before


@pytest.mark.parametrize(
    "bad, says",
    [
        (0, r"jax\.random\.key\(0\) instead of the integer 0"),
        (np.int64(7), r"jax\.random\.key\(7\) instead of the integer 7"),
        ("seed", "got str 'seed'"),
        (np.zeros(3, np.float32), r"shape \(3,\) and dtype float32"),
        (np.zeros(2, np.int32), r"shape \(2,\) and dtype int32"),
    ],
)
def test_a_seed_or_array_is_not_a_key(noisy_sim, bad, says):
    """An integer seed or another array is refused before anything is traced, naming `key`
    and how to make one (JAX's own error spoke of 'PRNG key data')."""
    before = TRACES["simulate"]
    with pytest.raises(ValueError, match=r"^key: expected a jax\.random key .*" + says):
        noisy_sim.run(bad)
    f = noisy_sim.function(["coupling.G"])
    with pytest.raises(ValueError, match=r"^key: .*" + says):
        f({"coupling.G": 0.1}, bad)
    assert TRACES["simulate"] == before


def test_function_output_result(delayed_sim, delayed_result, delayed_result_fn):
    res = delayed_result_fn({"model.a": jnp.asarray(A_DELAYED)})
    assert isinstance(res, bm.Result)
    assert bool(res.ok)
    assert tuple(res.labels) == tuple(delayed_sim.network.connectome.labels)
    np.testing.assert_allclose(np.asarray(res.time), np.asarray(delayed_result.time))
    np.testing.assert_allclose(
        np.asarray(res.signal), np.asarray(delayed_result.signal), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(res.final_state), np.asarray(delayed_result.final_state), rtol=1e-5, atol=1e-6
    )


# ------------------------------------------------------------------ monitors


def test_every_step_output_matches_numpy_heun(hopf_every_step, hopf_reference):
    xs, _ = hopf_reference
    res = hopf_every_step
    assert res.signal.shape == (int(DURATION / DT), N)
    np.testing.assert_allclose(np.asarray(res.time), DT * np.arange(1, len(xs) + 1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(res.signal), xs, atol=2e-5)


def test_raw_period_subsamples_every_step_output(hopf_net, hopf_every_step):
    res = hopf_sim(hopf_net, bm.monitors.Raw(period=PERIOD)).run()
    every = np.asarray(hopf_every_step.signal)
    np.testing.assert_allclose(np.asarray(res.signal), every[SAMPLED])
    np.testing.assert_allclose(np.asarray(res.time), np.asarray(hopf_every_step.time)[SAMPLED])


def test_temporal_average_is_mean_over_each_window(hopf_net, hopf_every_step):
    res = hopf_sim(hopf_net, bm.monitors.TemporalAverage(period=PERIOD)).run()
    every = np.asarray(hopf_every_step.signal, dtype=np.float64)
    windows = every.reshape(T, STEPS_PER_SAMPLE, N).mean(axis=1)  # steps in (t - period, t]
    np.testing.assert_allclose(np.asarray(res.signal), windows, atol=1e-6)
    np.testing.assert_allclose(np.asarray(res.time), PERIOD * np.arange(1, T + 1), rtol=1e-6)
    # and it is not the subsampled signal
    assert not np.allclose(windows, every[SAMPLED], atol=1e-3)


def test_raw_records_another_variable(hopf_net, hopf_reference):
    _, ys = hopf_reference
    res = hopf_sim(hopf_net, bm.monitors.Raw(period=PERIOD, variable="y")).run()
    np.testing.assert_allclose(np.asarray(res.signal), ys[SAMPLED], atol=2e-5)
    np.testing.assert_array_equal(np.asarray(res.signal[-1]), np.asarray(res.final_state[1]))


# --------------------------------------------------------------- init, history


def test_init_dict_scalars_per_region_and_defaults(hopf_net):
    defaults = bm.models.Hopf.initial_state
    sim = hopf_sim(hopf_net, bm.monitors.Raw(period=PERIOD))
    np.testing.assert_allclose(np.asarray(sim.init[0]), X0_HOPF, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sim.init[1]), np.full(N, Y0_HOPF), rtol=1e-6)
    only_y = bm.Simulator(hopf_net, dt=DT, duration=DURATION, init={"y": 0.3})
    assert only_y.init.shape == (2, N)
    np.testing.assert_allclose(np.asarray(only_y.init[0]), np.full(N, defaults["x"]))
    np.testing.assert_allclose(np.asarray(only_y.init[1]), np.full(N, 0.3), rtol=1e-6)
    no_init = bm.Simulator(hopf_net, dt=DT, duration=DURATION)
    np.testing.assert_allclose(
        np.asarray(no_init.init),
        np.stack([np.full(N, defaults["x"]), np.full(N, defaults["y"])]),
    )
    as_array = np.stack([X0_HOPF, np.linspace(0, 1, N)])
    from_array = bm.Simulator(hopf_net, dt=DT, duration=DURATION, init=as_array)
    np.testing.assert_allclose(np.asarray(from_array.init), as_array, rtol=1e-6)


# A two-region linear network with one delayed edge, sender -> receiver:
#   sender   x1' = -lam x1                       x1(0) = 1, history x1(s) = e^{k s} (s < 0)
#   receiver x0' = -lam x0 + G x1(t - d)         x0(0) = 0
# For t < d the receiver integrates the history, for t >= d the sender's decay:
#   x0(t) = G e^{-k d} (e^{k t} - e^{-lam t}) / (k + lam),        t < d
#   x0(t) = e^{-lam (t - d)} (x0(d) + G (t - d)),                  t >= d
# A history equal to init (x1 = 1 before 0) is the case k = 0.
LAM2, G2, K_HIST = 0.1, 0.5, 0.2
TRACT_MM = 10.0
DURATION2 = 30.0


def receiver_exact(times, delay, k):
    t = np.asarray(times, dtype=np.float64)

    def before(s):
        return G2 * np.exp(-k * delay) * (np.exp(k * s) - np.exp(-LAM2 * s)) / (k + LAM2)

    after = np.exp(-LAM2 * (t - delay)) * (before(delay) + G2 * (t - delay))
    return np.where(t < delay, before(t), after)


@pytest.fixture(scope="module")
def pair_net():
    weights = np.array([[0.0, 1.0], [0.0, 0.0]])  # row = target: receiver <- sender
    lengths = np.array([[0.0, TRACT_MM], [TRACT_MM, 0.0]])
    conn = bm.Connectome.from_arrays(weights, lengths, labels=["receiver", "sender"])
    return bm.Network(
        bm.models.Linear(lam=LAM2), conn, coupling=bm.coupling.Linear(G=G2), speed=1.0
    )  # delay 10 ms


def pair_sim(net, history=None):
    return bm.Simulator(
        net,
        dt=DT,
        duration=DURATION2,
        monitor=bm.monitors.Raw(period=PERIOD),
        init={"x": np.array([0.0, 1.0])},
        history=history,
    )


def exp_history(t):
    return {"x": jnp.exp(K_HIST * t)}


@pytest.fixture(scope="module")
def pair_history_fn(pair_net):
    return pair_sim(pair_net, history=exp_history)


def _check_pair(res, delay, k):
    times = np.asarray(res.time, dtype=np.float64)
    np.testing.assert_allclose(np.asarray(res.signal[:, 1]), np.exp(-LAM2 * times), rtol=1e-4)
    np.testing.assert_allclose(
        np.asarray(res.signal[:, 0]), receiver_exact(times, delay, k), atol=2e-4
    )


def test_history_as_function(pair_history_fn):
    _check_pair(pair_history_fn.run(), delay=10.0, k=K_HIST)


def test_history_as_array(pair_net):
    n_past = 100  # the delay, in steps; row j is the state at -(j + 1) dt
    past_times = -DT * np.arange(1, n_past + 1)
    history = np.broadcast_to(np.exp(K_HIST * past_times)[:, None, None], (n_past, 1, 2))
    _check_pair(pair_sim(pair_net, history=history).run(), delay=10.0, k=K_HIST)


def test_history_defaults_to_init(pair_net):
    _check_pair(pair_sim(pair_net).run(), delay=10.0, k=0.0)


def test_with_params_speed_changes_the_delays(pair_history_fn):
    slower = pair_history_fn.with_params({"network.speed": 50 * u.cmeter / u.second})
    np.testing.assert_allclose(
        _quantity_value(slower.params()["network.speed"], u.meter / u.second), 0.5
    )
    _check_pair(slower.run(), delay=20.0, k=K_HIST)
    # the original is untouched
    np.testing.assert_allclose(
        _quantity_value(pair_history_fn.params()["network.speed"], u.meter / u.second), 1.0
    )


# ------------------------------------------------------------------- Diffrax


def test_diffrax_agrees_with_closed_form_and_heun(linear_net, linear_result, conn):
    sim = bm.Simulator(
        linear_net,
        dt=DT,
        duration=DURATION,
        monitor=bm.monitors.Raw(period=PERIOD),
        init={"x": X0_LIN},
        solver=bm.solvers.Diffrax(),
    )
    res = sim.run()
    assert bool(res.ok)
    np.testing.assert_allclose(np.asarray(res.time), PERIOD * np.arange(1, T + 1), rtol=1e-6)
    exact = linear_exact(conn.weights, LAM, G_LIN, X0_LIN, PERIOD * np.arange(1, T + 1))
    np.testing.assert_allclose(np.asarray(res.signal), exact, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(
        np.asarray(res.signal), np.asarray(linear_result.signal), atol=3e-5, rtol=1e-4
    )
    np.testing.assert_allclose(np.asarray(res.final_state[0]), exact[-1], atol=2e-5, rtol=1e-4)


def test_diffrax_temporal_average_is_the_windowed_mean(linear_net, conn):
    sim = bm.Simulator(
        linear_net,
        dt=DT,
        duration=DURATION,
        monitor=bm.monitors.TemporalAverage(period=PERIOD),
        init={"x": X0_LIN},
        solver=bm.solvers.Diffrax(),
    )
    res = sim.run()
    assert bool(res.ok)
    edges = PERIOD * np.arange(0, T + 1)
    integrals = np.stack([linear_integral(conn.weights, LAM, G_LIN, X0_LIN, t) for t in edges])
    window_means = np.diff(integrals, axis=0) / PERIOD
    np.testing.assert_allclose(np.asarray(res.signal), window_means, atol=2e-5, rtol=1e-4)


# ------------------------------------------------------------------- blow-up


@pytest.fixture(scope="module")
def blow_up_a():
    # region L02 is far past its Hopf bifurcation: with dt = 0.1 ms the explicit
    # solver overshoots the limit cycle and overflows within a few steps, long
    # before the delayed coupling (>= 6 ms here) carries it to other regions.
    a = A_DELAYED.copy()
    a[2] = 50.0
    return a


def test_blow_up_raises_simulation_error_naming_time_and_regions(delayed_sim, blow_up_a):
    sim = delayed_sim.with_params({"model.a": blow_up_a})
    labels = sim.network.connectome.labels
    unchecked = sim.run(check=False)
    assert bool(unchecked.ok) is False
    signal = np.asarray(unchecked.signal)
    bad_rows = np.flatnonzero(~np.isfinite(signal).all(axis=1))
    assert bad_rows.size > 0
    t_bad = float(unchecked.time[bad_rows[0]])
    assert t_bad <= 5.0
    with pytest.raises(bm.SimulationError) as info:
        sim.run()
    message = str(info.value)
    match = re.search(r"t = ([-+0-9.e]+) ms", message)
    assert match is not None, message
    assert float(match.group(1)) == pytest.approx(t_bad)
    assert "L02" in message
    for label in labels:
        if label != "L02":
            assert label not in message, (label, message)


def test_blow_up_inside_jit_sets_ok_false(delayed_result_fn, blow_up_a):
    f = delayed_result_fn
    res = f({"model.a": jnp.asarray(blow_up_a)})
    assert bool(res.ok) is False
    assert not np.isfinite(np.asarray(res.signal[:, 2])).all()
    good = f({"model.a": jnp.asarray(A_DELAYED)})
    assert bool(good.ok) is True


def test_a_single_region_needs_no_connectome_and_has_no_coupling():
    """`Network(model)`: one region, no coupling parameter; a Hopf oscillator above the
    bifurcation settles on its limit cycle of radius sqrt(a) (Kuznetsov 2004)."""
    a = 0.04
    net = bm.Network(bm.models.Hopf(a=a, omega=0.06))
    assert net.n_regions == 1 and isinstance(net.coupling, bm.coupling.Uncoupled)
    sim = bm.Simulator(net, dt=0.1, duration=1000.0, monitor=bm.monitors.Raw(), init={"x": 0.05})
    assert not [p for p in sim.params() if p.startswith("coupling.")]
    x = np.asarray(sim.run().signal)[-1100:, 0]  # the last 110 ms: one full period
    assert x.max() == pytest.approx(math.sqrt(a), rel=2e-3)
    assert x.min() == pytest.approx(-math.sqrt(a), rel=2e-3)
    # the same oscillator as one region of a 1x1 connectome with zero weights
    one = bm.Connectome(np.zeros((1, 1)), np.zeros((1, 1)), ("region",))
    ref = bm.Simulator(bm.Network(bm.models.Hopf(a=a, omega=0.06), one), dt=0.1,
                       duration=1000.0, monitor=bm.monitors.Raw(), init={"x": 0.05})  # fmt: skip
    np.testing.assert_allclose(np.asarray(ref.run().signal)[-1100:, 0], x, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="coupling: a single region"):
        bm.Network(bm.models.Hopf(), coupling=bm.coupling.Linear(G=0.1))
    with pytest.raises(ValueError, match="speed: a single region"):
        bm.Network(bm.models.Hopf(), speed=5.0)


def test_raw_can_record_the_initial_state_at_t0():
    """`Raw(initial=True)`: a first sample at t = 0 holding the initial state, then the
    same samples as `Raw()`; for x' = -lam x the whole signal is x0 exp(-lam t)."""
    lam, x0 = 0.05, np.array([1.0, -0.5])
    conn = bm.Connectome(np.zeros((2, 2)), np.zeros((2, 2)), ("a", "b"))
    net = bm.Network(bm.models.Linear(lam=lam), conn, coupling=bm.coupling.Linear(G=0.0))

    def sim(monitor):
        return bm.Simulator(net, dt=0.01, duration=20.0, monitor=monitor, init={"x": x0})

    with_t0, plain = sim(bm.monitors.Raw(period=1.0, initial=True)), sim(bm.monitors.Raw(1.0))
    res, ref = with_t0.run(), plain.run()
    assert res.signal.shape == with_t0.signal_shape == (21, 2) and ref.signal.shape == (20, 2)
    np.testing.assert_allclose(res.time, np.arange(21.0))
    np.testing.assert_allclose(with_t0.time, res.time)
    np.testing.assert_array_equal(res.signal[0], x0.astype(res.signal.dtype))
    np.testing.assert_array_equal(res.signal[1:], ref.signal)
    exact = x0[None, :] * np.exp(-lam * np.arange(21.0))[:, None]
    np.testing.assert_allclose(res.signal, exact, rtol=1e-5)
    with pytest.raises(ValueError, match="monitor.initial: the t = 0 sample would be discarded"):
        bm.monitors.Raw(period=1.0, transient=5.0, initial=True)
    with pytest.raises(ValueError, match="monitor.initial: expected True or False"):
        bm.monitors.Raw(period=1.0, initial="yes")
