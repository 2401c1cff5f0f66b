"""The BOLD monitor (Balloon-Windkessel haemodynamics integrated inside the scan).

References written here, independently of `brainmass.monitors.bold`: the
published equations (Friston et al. 2000, 2003; Stephan et al. 2007) in the
linear variables (s, f, v, q), integrated with `scipy.integrate.solve_ivp`
(DOP853) at tight tolerance, and central finite differences for gradients.
The monitor's `sample` is driven directly with synthetic per-step values,
and inside Simulators (a delay-free Linear network whose activity is known in
closed form; a delayed, noisy Reduced Wong-Wang network).
"""

from __future__ import annotations

import math

import brainunit as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import brainmass as bm
from brainmass.monitors.bold import BOLD

# haemodynamic parameters in seconds, and the 1.5 T constants, as published
PUBLISHED = {
    "friston2003": dict(kappa=0.65, gamma=0.41, tau=0.98, alpha=0.32, E0=0.34, V0=0.02),
    "stephan2007": dict(kappa=0.64, gamma=0.32, tau=2.0, alpha=0.32, E0=0.4, V0=0.04),
}
TE, NU0, R0, EPSILON = 0.04, 40.3, 25.0, 1.0  # s, 1/s, 1/s, -


# ----------------------------------------------------------------- references


def reference_bold(p, coefficients, times, drive, breaks=()):
    """BOLD at `times` (s) of regions driven by `drive(t) -> (n,)` (1/s^2), from rest.

    `p` holds scalars or per-region arrays in seconds. Integrated piecewise
    between `breaks` (discontinuities of the drive), rtol 1e-12.
    """
    n = len(drive(0.0))
    kappa, gamma, tau, alpha, E0, V0 = (
        np.broadcast_to(np.asarray(p[k], float), (n,))
        for k in ("kappa", "gamma", "tau", "alpha", "E0", "V0")
    )

    def rhs(t, y):
        s, f, v, q = y.reshape(4, n)
        extraction = (1.0 - (1.0 - E0) ** (1.0 / f)) / E0
        out = v ** (1.0 / alpha)
        return np.concatenate(
            [
                drive(t) - kappa * s - gamma * (f - 1.0),
                s,
                (f - out) / tau,
                (f * extraction - out * q / v) / tau,
            ]
        )

    y = np.concatenate([np.zeros(n), np.ones(3 * n)])
    edges = [0.0] + sorted({b for b in breaks if 0 < b < times[-1]}) + [float(times[-1])]
    out = np.zeros((len(times), 4 * n))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (times > lo) & (times <= hi)
        t_eval = times[inside] if inside.any() and times[inside][-1] == hi else None
        if t_eval is None:
            t_eval = np.append(times[inside], hi)
        sol = solve_ivp(rhs, (lo, hi), y, method="DOP853", rtol=1e-12, atol=1e-14, t_eval=t_eval)
        out[inside] = sol.y.T[: inside.sum()]
        y = sol.y[:, -1]
    s, f, v, q = out.T.reshape(4, n, -1).transpose(0, 2, 1)
    if coefficients == "friston2003":
        k1, k2, k3 = 7.0 * E0, 2.0, 2.0 * E0 - 0.2
    else:
        k1, k2, k3 = 4.3 * NU0 * E0 * TE, EPSILON * R0 * E0 * TE, 1.0 - EPSILON
    return V0 * (k1 * (1.0 - q) + k2 * (1.0 - q / v) + k3 * (1.0 - v))


@eqx.filter_jit
def run_monitor(monitor, values, dt):
    """Drive `monitor.sample` with `values` `(n_tr, P, n)`; the samples `(n_tr, n)`."""
    state = monitor.init(values.shape[-1], values.dtype)
    _, samples = jax.lax.scan(lambda s, v: monitor.sample(s, v, dt), state, values)
    return samples


def box_car_values(onsets, offsets, amplitudes, tr, dt, n_tr):
    """Per-step values `(n_tr, P, n)`: step k (time (k+1) dt) is in (onset, offset]."""
    t = dt * np.arange(1, n_tr * int(round(tr / dt)) + 1)[:, None]
    on = (t > np.asarray(onsets)[None, :]) & (t <= np.asarray(offsets)[None, :])
    return (on * np.asarray(amplitudes)[None, :]).reshape(n_tr, -1, len(onsets))


# ----------------------------------------------------------------- at rest


def test_zero_input_and_input_at_baseline_give_exactly_zero_bold():
    level = jnp.array([0.1, 0.3, 2.0])
    constant = jnp.broadcast_to(level, (8, 500, 3))
    # a constant input equal to the (per-region) baseline is rest: exactly zero
    at_rest = BOLD(500.0, baseline=level)
    assert np.all(np.asarray(run_monitor(at_rest, constant, 1.0)) == 0.0)
    # zero input without a baseline (a zero baseline: the same compilation)
    bold = BOLD(500.0, baseline=jnp.zeros(3))
    assert np.all(np.asarray(run_monitor(bold, jnp.zeros_like(constant), 1.0)) == 0.0)
    # ... and the constant input without its baseline is not rest
    y = np.asarray(run_monitor(bold, constant, 1.0))
    assert np.all(y[-1] > 1e-3)


# ----------------------------------------------------------------- against the published equations


BOX_TR, BOX_DT, BOX_N_TR = 200.0, 1.0, 150  # 30 s
ONSETS, OFFSETS = [1.0, 1.0, 0.5], [2.0, 1.1, 4.5]  # s: 1 s, 100 ms and 4 s stimuli
AMPLITUDES = [1.0, 0.5, 0.8]
TAU_FACTOR = np.array([1.0, 1.0, 1.3])  # a per-region transit time


def box_car_bold(coefficients, gain=1.0):
    """The monitor's response `(BOX_N_TR, 3)` to the three box-cars times `gain` (float64)."""
    with jax.enable_x64(True):
        tau = PUBLISHED[coefficients]["tau"] * TAU_FACTOR * u.second
        bold = BOLD(BOX_TR, coefficients=coefficients, tau=tau)
        on, off = [1e3 * x for x in ONSETS], [1e3 * x for x in OFFSETS]
        values = box_car_values(on, off, AMPLITUDES, BOX_TR, BOX_DT, BOX_N_TR)
        return np.asarray(run_monitor(bold, jnp.asarray(gain * values), BOX_DT))


@pytest.mark.parametrize("coefficients", ["stephan2007", "friston2003"])
def test_box_car_response_matches_published_equations(coefficients):
    y = box_car_bold(coefficients)
    times = BOX_TR * np.arange(1, BOX_N_TR + 1) / 1e3  # s

    def drive(t):
        return np.where((t > np.array(ONSETS)) & (t <= np.array(OFFSETS)), AMPLITUDES, 0.0)

    p = dict(PUBLISHED[coefficients], tau=PUBLISHED[coefficients]["tau"] * TAU_FACTOR)
    expected = reference_bold(p, coefficients, times, drive, breaks=ONSETS + OFFSETS)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-7 * np.max(np.abs(expected)))

    # the shape of the haemodynamic response (region 0: a 1 s stimulus at t = 1 s)
    i = int(np.argmax(y[:, 0]))
    peak_time = times[i] - ONSETS[0]
    window = (4.0, 6.0) if coefficients == "stephan2007" else (3.0, 4.0)
    assert window[0] <= peak_time <= window[1], peak_time
    assert 0.005 < y[i, 0] < 0.05  # a response of a few percent
    undershoot = int(i + np.argmin(y[i:, 0]))
    assert y[undershoot, 0] < -0.05 * y[i, 0]  # post-stimulus undershoot
    assert 8.0 < times[undershoot] - ONSETS[0] < 14.0
    assert abs(y[-1, 0]) < 0.2 * abs(y[undershoot, 0])  # returning to rest


def test_convergence_in_dt_bold_is_second_order():
    # a smooth input with slow and 5 Hz content, sampled at the steps' midpoints
    def z(t):
        return 0.4 * (1 + np.sin(2 * np.pi * 0.1 * t)) + 0.2 * np.sin(2 * np.pi * 5.0 * t)

    tr, dt, n_tr = 800.0, 0.5, 15  # 12 s
    p = PUBLISHED["stephan2007"]
    times = tr * np.arange(1, n_tr + 1) / 1e3
    expected = reference_bold(p, "stephan2007", times, lambda t: np.full(1, z(t)))[:, 0]
    t_mid = (np.arange(n_tr * int(tr / dt)) + 0.5) * dt / 1e3
    steps = [40.0, 20.0, 10.0]
    with jax.enable_x64(True):
        values = jnp.asarray(z(t_mid).reshape(n_tr, -1, 1))
        errors = [
            np.max(
                np.abs(np.asarray(run_monitor(BOLD(tr, dt_bold=h), values, dt))[:, 0] - expected)
            )
            for h in steps
        ]
    order = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 1.8 < order < 2.3, (errors, order)
    assert errors[-1] < 2e-6 * np.max(np.abs(expected))  # the default 10 ms step


def test_small_inputs_respond_linearly_large_ones_do_not():
    y = {gain: box_car_bold("stephan2007", gain) for gain in (1e-3, 2e-3, 1.0, 2.0)}
    small = np.max(np.abs(y[2e-3] - 2 * y[1e-3])) / np.max(np.abs(y[2e-3]))
    large = np.max(np.abs(y[2.0] - 2 * y[1.0])) / np.max(np.abs(y[2.0]))
    assert small < 2e-3  # second order in the amplitude: ~7e-4 here
    assert large > 0.1  # the balloon saturates: linearity is a small-signal property


# ----------------------------------------------------------------- parameters: jit, vmap, grad


def test_parameters_vmap_and_gradients_match_loops_and_finite_differences():
    tr, dt, n_tr = 500.0, 1.0, 24
    theta0 = {"kappa": 0.64e-3, "tau": 2000.0, "E0": 0.4, "epsilon": 1.0, "scale": 1.0}
    with jax.enable_x64(True):
        bold = BOLD(tr, coefficients="stephan2007")
        values = jnp.asarray(box_car_values([500.0], [1500.0], [0.7], tr, dt, n_tr))

        @jax.jit
        def response(theta):
            names = tuple(theta)
            changed = eqx.tree_at(
                lambda b: [getattr(b, k) for k in names], bold, [theta[k] for k in names]
            )
            return run_monitor(changed, values, dt)[:, 0]

        def loss(theta):
            return jnp.sum(response(theta) ** 2)

        theta = {k: jnp.asarray(v) for k, v in theta0.items()}
        kappas = jnp.array([0.5e-3, 0.64e-3, 0.8e-3])
        batched = jax.vmap(lambda k: response({**theta, "kappa": k}))(kappas)
        looped = jnp.stack([response({**theta, "kappa": k}) for k in kappas])
        np.testing.assert_allclose(batched, looped, rtol=1e-12, atol=1e-15)

        grad = jax.grad(loss)(theta)
        for name, value in theta0.items():
            h = 1e-5 * value
            up, down = {**theta, name: value + h}, {**theta, name: value - h}
            fd = (loss(up) - loss(down)) / (2 * h)
            assert np.isfinite(grad[name]) and abs(grad[name]) > 0, name
            np.testing.assert_allclose(grad[name], fd, rtol=1e-6, err_msg=name)


# ----------------------------------------------------------------- inside a Simulator


def test_linear_decay_in_a_simulator_matches_the_reference():
    # two uncoupled regions relaxing from x0: z(t) = x0 exp(-lam t), known in closed form
    lam, x0 = 1.0 / 300.0, np.array([0.5, 1.0])  # 1/ms
    conn = bm.Connectome.from_arrays(np.zeros((2, 2)), np.zeros((2, 2)), labels=["A", "B"])
    net = bm.Network(bm.models.Linear(lam=lam), conn, coupling=bm.coupling.Linear(G=0.0))
    tr = 1.0 * u.second
    sim = bm.Simulator(
        net, dt=0.5, duration=20 * u.second, monitor=BOLD(tr, transient=2000.0), init={"x": x0}
    )
    res = sim.run()
    times = 1e3 * np.arange(3, 21)
    np.testing.assert_allclose(res.time, times)
    assert res.labels == ("A", "B")
    expected = reference_bold(
        PUBLISHED["stephan2007"],
        "stephan2007",
        times / 1e3,
        lambda t: x0 * math.exp(-lam * 1e3 * t),
    )
    np.testing.assert_allclose(res.signal, expected, rtol=0, atol=2e-3 * np.max(expected))
    assert 4.0 <= times[np.argmax(res.signal[:, 1])] / 1e3 <= 6.0


def test_haemodynamic_breakdown_is_reported_as_the_monitors_failure():
    # region B: a 0.1 Hz limit cycle of amplitude 0.5 drives the Balloon model at its
    # resonance; the blood flow is pushed to zero and the model has no solution, while the
    # neural state stays finite. Region A (amplitude 0.01) is fine.
    conn = bm.Connectome.from_arrays(np.zeros((2, 2)), np.zeros((2, 2)), labels=["A", "B"])
    hopf = bm.models.Hopf(a=[1e-4, 0.25], omega=0.1 * u.Hz)
    net = bm.Network(hopf, conn, coupling=bm.coupling.Linear(G=0.0))
    sim = bm.Simulator(
        net, dt=0.5, duration=30 * u.second, monitor=BOLD(1000.0), init={"x": [0.01, 0.5]}
    )
    res = sim.run(check=False)
    assert not bool(res.ok)
    assert np.all(np.isfinite(np.asarray(res.final_state)))
    assert np.all(np.isfinite(np.asarray(res.signal[:, 0])))
    with pytest.raises(bm.SimulationError, match=r"forward model broke down.*BOLD\(scale"):
        res.check()
    with pytest.raises(bm.SimulationError, match="channel.*: B"):
        res.check()
    # the remedy the message gives works: a smaller gain keeps the flow positive
    assert bool(sim.with_params({"monitor.scale": 0.1}).run().ok)


def test_delayed_noisy_network_shapes_times_and_gradient():
    tr, n_tr, skip = 720.0, 5, 2
    with jax.enable_x64(True):
        conn = bm.Connectome.synthetic(n_regions=4, seed=1)
        net = bm.Network(
            bm.models.ReducedWongWang(),
            conn,
            coupling=bm.coupling.Linear(G=0.5),
            speed=5.0,
            noise=bm.noise.Additive(sigma=1e-3),
        )
        sim = bm.Simulator(
            net,
            dt=1.0,
            duration=n_tr * tr,
            monitor=BOLD(period=tr, transient=skip * tr, baseline=0.1),
            init={"S": 0.1},
        )
        key = jax.random.key(3)
        f = sim.function(["coupling.G"], output="result")  # one compilation for every run
        res = f({"coupling.G": 0.5}, key)
        assert res.signal.shape == (n_tr - skip, 4)
        assert res.labels == tuple(conn.labels)
        np.testing.assert_allclose(res.time, tr * np.arange(skip + 1, n_tr + 1))
        assert np.all(np.isfinite(res.signal)) and bool(res.ok)
        assert np.max(np.abs(res.signal)) > 1e-3  # S rises above the baseline: a response

        def loss(G):
            return jnp.sum(f({"coupling.G": G}, key).signal ** 2)

        G, h = 0.5, 1e-4
        grad = jax.grad(loss)(G)
        fd = (loss(G + h) - loss(G - h)) / (2 * h)
        assert np.isfinite(grad) and abs(grad) > 0
        np.testing.assert_allclose(grad, fd, rtol=1e-5)


# ----------------------------------------------------------------- bad input


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="BOLD.period"):
        BOLD(None)
    with pytest.raises(ValueError, match="BOLD.coefficients"):
        BOLD(720.0, coefficients="buxton")
    with pytest.raises(ValueError, match=r"BOLD.dt_bold.*720.0 ms.*7.0 ms"):
        BOLD(720.0, dt_bold=7.0)
    with pytest.raises(ValueError, match="BOLD.tau.*1/ms|BOLD.tau.*ms"):
        BOLD(720.0, tau=1.0 / u.second)
    with pytest.raises(ValueError, match=r"BOLD.E0.*\(0, 1\)"):
        BOLD(720.0, E0=1.0)
    with pytest.raises(ValueError, match="BOLD.kappa.*> 0"):
        BOLD(720.0, kappa=-1.0)
    # dt_bold must be a whole number of neural steps
    with pytest.raises(ValueError, match=r"BOLD.dt_bold.*dt = 3.0 ms"):
        run_monitor(BOLD(720.0), jnp.zeros((1, 240, 2)), 3.0)
    # per-region parameters must match the regions
    with pytest.raises(ValueError, match=r"BOLD.tau.*\(2,\).*\(3,\)"):
        run_monitor(BOLD(720.0, tau=jnp.full(3, 2000.0)), jnp.zeros((1, 720, 2)), 1.0)
    # the TR must be a whole number of neural steps (the Simulator checks)
    net = bm.Network(bm.models.Linear(), bm.Connectome.synthetic(n_regions=2, seed=0))
    with pytest.raises(ValueError, match="monitor.period"):
        bm.Simulator(net, dt=0.7, duration=5000.0, monitor=BOLD(720.0))


def test_bold_parameters_are_simulator_parameters():
    """monitor.* paths: listed with units, replaceable, differentiable."""
    conn = bm.Connectome.synthetic(4, seed=0)
    net = bm.Network(bm.models.ReducedWongWang(), conn, coupling=bm.coupling.Linear(G=0.1))
    sim = bm.Simulator(net, dt=1.0, duration=4000.0, monitor=BOLD(period=1000.0, dt_bold=10.0))
    params = sim.params()
    assert {"monitor.kappa", "monitor.tau", "monitor.E0"} <= set(params)
    slow = sim.with_params({"monitor.tau": 3.0 * u.second})
    assert float(slow.monitor.tau) == pytest.approx(3000.0)
    with pytest.raises(ValueError, match="monitor.tau"):
        sim.with_params({"monitor.tau": np.ones(3)})
    f = sim.function(["monitor.tau"])
    g = jax.grad(lambda tau: jnp.sum(f({"monitor.tau": tau}) ** 2))(2000.0)
    assert np.isfinite(float(g)) and float(g) != 0.0
