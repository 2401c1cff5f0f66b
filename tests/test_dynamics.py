"""Scientific validation of the simulator core against independent references.

Every test compares a brainmass simulation with something computed here, in
the test, without brainmass: closed forms (Hopf normal form, Ornstein-Uhlenbeck
covariances, the characteristic equation of a delayed linear equation), a
scipy reference (Lyapunov equation, a method-of-steps DDE solve), a NumPy loop
written out step by step, or finite differences. Only `models.Hopf` and
`models.Linear` are used. Solver convergence orders and the stochastic solvers
are in `test_solvers.py`.

Statistical tolerances are stated as a number of standard errors, with the
standard error computed from the exact autocovariance of the process (Bartlett's
formula), i.e. from the effective number of independent samples of the run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
from scipy.integrate import solve_ivp
from scipy.optimize import brentq
from scipy.special import lambertw

import brainmass as bm

# `jax.enable_x64` is the context manager of current JAX (0.12); older releases
# had it as `jax.experimental.enable_x64`.
_enable_x64 = getattr(jax, "enable_x64", None)
if _enable_x64 is None:  # pragma: no cover - older JAX
    from jax.experimental import enable_x64 as _enable_x64


@pytest.fixture
def x64():
    """Run the test in double precision (objects must be built inside the test)."""
    with _enable_x64(True):
        yield


def _conn(weights, lengths=None):
    weights = np.asarray(weights, dtype=float)
    if lengths is None:
        lengths = np.zeros_like(weights)
    return bm.Connectome.from_arrays(weights, np.asarray(lengths, dtype=float))


def _hopf_radius(t, a, r0):
    """Exact radius of the uncoupled Hopf normal form, $\\dot r = a r - r^3$ (any sign of a)."""
    return np.sqrt(a / (1.0 + (a / r0**2 - 1.0) * np.exp(-2.0 * a * t)))


def _zero_crossings(t, x):
    """Times where `x` changes sign, by linear interpolation between samples."""
    s = np.sign(x)
    k = np.flatnonzero(s[:-1] * s[1:] < 0)
    return t[k] - x[k] * (t[k + 1] - t[k]) / (x[k + 1] - x[k])


# ----------------------------------------------------------------------------- 1. Hopf


def test_hopf_uncoupled_converges_to_limit_cycle_radius_sqrt_a(x64):
    # G = 0, deterministic; regions approach the cycle from inside and outside.
    a = np.array([0.05, 0.1, 0.2, 0.4])
    omega = np.array([0.1, 0.2, 0.3, 0.15])
    r0 = np.array([0.1, 0.9, 0.05, 1.2])
    n = a.size
    net = bm.Network(
        bm.models.Hopf(a=a, omega=omega), _conn(np.ones((n, n))), bm.coupling.Linear(G=0.0)
    )
    sim = bm.Simulator(
        net,
        dt=0.05,
        duration=300.0,
        monitor=bm.monitors.Raw(period=0.5),
        init={"x": r0, "y": 0.0},
        solver=bm.solvers.RK4(),
    )
    res = sim.run()
    radius = np.hypot(*np.asarray(res.final_state))
    np.testing.assert_allclose(radius, np.sqrt(a), rtol=1e-7)
    # The whole trajectory: theta = omega t exactly, r(t) from the closed form.
    t = np.asarray(res.time)[:, None]
    expected = _hopf_radius(t, a, r0) * np.cos(omega * t)
    np.testing.assert_allclose(np.asarray(res.signal), expected, atol=1e-7)
    # On the cycle, the amplitude of x is sqrt(a): the last 100 ms (> one period) peak
    # at sqrt(a), up to the sampling grid (1 - cos(omega period / 2) < 3e-3).
    late = np.asarray(res.signal)[-200:]
    np.testing.assert_allclose(np.abs(late).max(axis=0), np.sqrt(a), rtol=3e-3)


def test_hopf_stable_focus_decays_as_exp_at_and_oscillates_at_omega(x64):
    a = np.array([-0.02, -0.05, -0.1])
    omega = np.array([0.2, 0.3, 0.5])
    r0 = 1e-3  # r^2 << |a|: the linear regime, r ~ r0 exp(a t)
    n = a.size
    net = bm.Network(
        bm.models.Hopf(a=a, omega=omega), _conn(np.ones((n, n))), bm.coupling.Linear(G=0.0)
    )
    traces = {}
    for var in ("x", "y"):
        sim = bm.Simulator(
            net,
            dt=0.05,
            duration=100.0,
            monitor=bm.monitors.Raw(period=0.1, variable=var),
            init={"x": r0, "y": 0.0},
            solver=bm.solvers.RK4(),
        )
        res = sim.run()
        traces[var] = np.asarray(res.signal)
    t = np.asarray(res.time)
    r = np.hypot(traces["x"], traces["y"])
    # log-slope of the radius is a (the cubic term shifts it by ~r0^2 = 1e-6)
    slopes = [np.polyfit(t, np.log(r[:, i]), 1)[0] for i in range(n)]
    np.testing.assert_allclose(slopes, a, rtol=1e-3)
    np.testing.assert_allclose(r, _hopf_radius(t[:, None], a, r0), rtol=1e-6)  # RK4 error
    # frequency from the zero crossings of x: consecutive crossings are pi/omega apart
    for i in range(n):
        crossings = _zero_crossings(t, traces["x"][:, i])
        assert crossings.size >= 5
        half_period = np.polyfit(np.arange(crossings.size), crossings, 1)[0]
        np.testing.assert_allclose(1.0 / (2.0 * half_period), omega[i] / (2 * np.pi), rtol=1e-5)


# ----------------------------------------------------------------------------- 2. OU network

# A hand-made asymmetric network: W[i, j] is the connection j -> i.
_W5 = np.array(
    [
        [0.0, 1.0, 0.0, 0.5, 0.0],
        [0.3, 0.0, 0.8, 0.0, 0.0],
        [0.0, 0.6, 0.0, 0.0, 1.0],
        [0.9, 0.0, 0.2, 0.0, 0.4],
        [0.0, 0.5, 0.0, 0.7, 0.0],
    ]
)


def _bartlett_se(gammas, lag, n_samples):
    """Standard errors of the lag-`lag` sample cross-covariances of a zero-mean Gaussian series.

    `gammas[k + K]` is the exact autocovariance $\\Gamma(k) = E[x_{t+k} x_t^T]$ for
    $k = -K..K$. The estimator $\\hat C_{ij} = \\frac1n \\sum_t x_i(t) x_j(t + lag)$ has
    (Bartlett 1946) $n \\operatorname{Var} \\hat C_{ij} \\approx \\sum_k [\\Gamma_{ii}(k)
    \\Gamma_{jj}(k) + \\Gamma_{ij}(k - lag) \\Gamma_{ji}(k + lag)]$; the ratio of this
    sum to its value for independent samples is the inverse effective sample fraction.
    """
    n_k = gammas.shape[0]
    diag = np.einsum("kii->ki", gammas)
    term1 = np.einsum("ki,kj->ij", diag, diag)
    k = np.arange(n_k)
    ok = (k - lag >= 0) & (k + lag < n_k)
    term2 = np.einsum("kij,kji->ij", gammas[k[ok] - lag], gammas[k[ok] + lag])
    return np.sqrt((term1 + term2) / n_samples)


def test_ou_network_stationary_covariance_matches_lyapunov():
    lam, G, sigma = 0.5, 0.25, 0.1
    n, copies = _W5.shape[0], 40
    A = -lam * np.eye(n) + G * _W5
    assert np.linalg.eigvals(A).real.max() < -0.1  # stable, correlation time ~ 6 ms
    cov = sla.solve_continuous_lyapunov(A, -(sigma**2) * np.eye(n))

    # 40 independent copies of the 5-region network: one simulator run under 40 noise keys,
    # vmapped (a block-diagonal 200-region connectome would cost 40x the coupling flops)
    dt, period, burn, duration = 0.05, 0.5, 100.0, 2100.0
    net = bm.Network(
        bm.models.Linear(lam=lam),
        _conn(_W5),
        bm.coupling.Linear(G=G),
        noise=bm.noise.Additive(sigma=sigma),
    )
    sim = bm.Simulator(
        net,
        dt=dt,
        duration=duration,
        monitor=bm.monitors.Raw(period=period),
        init={"x": 0.0},
        solver=bm.solvers.StochasticHeun(),
    )
    keys = jax.random.split(jax.random.key(0), copies)
    signals = jax.jit(jax.vmap(lambda k: sim.run(k).signal))(keys)  # (copy, time, region)
    x = np.asarray(signals, dtype=np.float64)[:, int(burn / period) :]
    x = np.moveaxis(x, 0, 1)  # (time, copy, region)
    n_t = x.shape[0]

    # The Heun scheme's own stationary covariance (discrete Lyapunov equation of
    # x' = M x + B xi) differs from the continuous one by O((lam dt)^2): negligible here.
    M = np.eye(n) + A * dt + A @ A * dt**2 / 2
    B = (np.eye(n) + A * dt / 2) * sigma * np.sqrt(dt)
    cov_discrete = sla.solve_discrete_lyapunov(M, B @ B.T)
    assert np.abs(cov_discrete - cov).max() < 1e-3 * np.abs(cov).max()

    # Exact autocovariance at the sampling lags, Gamma(k) = expm(A k period) Sigma.
    lags = np.arange(-200, 201)  # 100 ms: many correlation times
    gammas = np.array([sla.expm(A * abs(k) * period) @ cov for k in lags])
    gammas[lags < 0] = np.transpose(gammas[lags < 0], (0, 2, 1))
    # Effective samples: n_t * copies = 1.6e5 samples, correlated over ~6 ms, are
    # worth n_eff ~ 2e4 independent ones (Bartlett); the standard errors are about
    # 1 % of the largest entry. Allow 4.5 standard errors per entry (15 distinct
    # entries: a false alarm rate of about 1e-4 for a correct simulator).
    emp = np.einsum("tci,tcj->ij", x, x) / (n_t * copies)
    se = _bartlett_se(gammas, 0, n_t * copies)
    z = np.abs(emp - cov) / se
    assert z.max() < 4.5, (z.max(), emp, cov)
    # and the test has power: the transposed-coupling covariance is rejected
    A_t = -lam * np.eye(n) + G * _W5.T
    cov_t = sla.solve_continuous_lyapunov(A_t, -(sigma**2) * np.eye(n))
    assert (np.abs(emp - cov_t) / se).max() > 6.0

    # Lag-tau autocovariance E[x(t) x(t + tau)^T] = Sigma expm(A^T tau).
    m = 4  # tau = 2 ms
    tau = m * period
    emp_lag = np.einsum("tci,tcj->ij", x[:-m], x[m:]) / ((n_t - m) * copies)
    expected_lag = cov @ sla.expm(A.T * tau)
    se_lag = _bartlett_se(gammas, m, (n_t - m) * copies)
    z_lag = np.abs(emp_lag - expected_lag) / se_lag
    assert z_lag.max() < 4.5, (z_lag.max(), emp_lag, expected_lag)


# ----------------------------------------------------------------------------- 5. delays


def _zero_history(t):
    """Zero past state of the two-region pulse network (a function of t in ms)."""
    return {"x": jnp.zeros(2) * t}


def _pulse_sim(delay_steps, history_kind, dt=0.1, speed=1.0, delays="rounded"):
    """Two Linear regions, region 0 -> region 1 with a delay of `delay_steps` steps."""
    lam, G = 0.1, 1.0
    weights = np.array([[0.0, 0.0], [1.0, 0.0]])
    lengths = np.array([[0.0, 0.0], [delay_steps * dt * speed, 0.0]])
    if history_kind == "array":
        history = np.zeros((1, 1, 2))  # older rows repeat the last one: zero history
    else:
        history = _zero_history

    net = bm.Network(
        bm.models.Linear(lam=lam),
        _conn(weights, lengths),
        bm.coupling.Linear(G=G),
        speed=speed,
        delays=delays,
    )
    sim = bm.Simulator(
        net,
        dt=dt,
        duration=3.0,
        monitor=bm.monitors.Raw(period=dt),
        init={"x": np.array([1.0, 0.0])},
        history=history,
        solver=bm.solvers.Euler(),
    )
    return sim, lam, G


def _pulse_reference(n_steps, steps, mode, lam, G, dt):
    """Forward Euler written out: x1[k+1] = x1[k] + dt (-lam x1[k] + G x0(k - steps)).

    The delayed value x0(k - steps) is x0[k - round(steps)] (rounded), or the linear
    interpolation (1 - alpha) x0[k - f] + alpha x0[k - f - 1], f = floor(steps),
    alpha = steps - f (interpolated); x0 is zero before step 0.
    """
    x0 = np.zeros(n_steps + 1)
    x1 = np.zeros(n_steps + 1)
    x0[0] = 1.0

    def at(j):
        return x0[j] if j >= 0 else 0.0

    for k in range(n_steps):
        if mode == "rounded":
            past = at(k - int(np.rint(steps)))
        else:
            f = int(np.floor(steps))
            alpha = steps - f
            past = (1 - alpha) * at(k - f) + alpha * at(k - f - 1)
        x0[k + 1] = x0[k] + dt * (-lam * x0[k])
        x1[k + 1] = x1[k] + dt * (-lam * x1[k] + G * past)
    return np.stack([x0[1:], x1[1:]], axis=1)


_PULSES = [  # (delay in steps, delay mode, first nonzero sample of region 1)
    (7, "rounded", 7),
    (6.6, "rounded", 7),
    (7.4, "rounded", 7),
    (7.6, "rounded", 8),
    (7.4, "interpolated", 7),
    # part instantaneous (weight 0.6), part one step old (weight 0.4)
    (0.4, "interpolated", 0),
    (0.4, "rounded", 0),  # rounds to zero steps: instantaneous (with a warning)
]


def _pulse_id(case):
    d, m, _ = case.values if hasattr(case, "values") else case
    return f"{d}-{m}"


@pytest.mark.parametrize(
    ("delay_steps", "mode", "expected_first"), _PULSES, ids=[_pulse_id(c) for c in _PULSES]
)
@pytest.mark.parametrize("history_kind", ["array", "function"])
def test_delay_pulse_arrives_at_the_expected_step(
    x64, delay_steps, mode, expected_first, history_kind
):
    if mode == "rounded" and round(delay_steps) == 0:
        with pytest.warns(UserWarning, match="instantaneously"):
            sim, lam, G = _pulse_sim(delay_steps, history_kind, delays=mode)
    else:
        sim, lam, G = _pulse_sim(delay_steps, history_kind, delays=mode)
    res = sim.run()
    signal = np.asarray(res.signal)
    # Sample k (0-based) is the state after step k + 1. With Euler the input at step
    # k is x0 at step k - m, nonzero from k = m on, so x1 first moves at step m + 1.
    first = int(np.flatnonzero(signal[:, 1] != 0.0)[0])
    assert first == expected_first
    expected = _pulse_reference(sim.n_steps, delay_steps, mode, lam, G, sim.dt)
    np.testing.assert_allclose(signal, expected, rtol=1e-12, atol=0)


def _smooth_history(t):
    """A smooth past for the 3-region network below (t <= 0, ms)."""
    return {"x": jnp.array([1.0, 0.5, -0.8]) * jnp.cos(jnp.array([0.3, 0.5, 0.2]) * t + 0.4)}


_W3 = np.array([[0.0, 0.8, 0.3], [0.5, 0.0, 0.0], [0.4, 0.9, 0.0]])
_L3 = np.array([[0.0, 1.23, 2.57], [0.93, 0.0, 0.0], [1.71, 2.17, 0.0]])  # mm; speed 1 m/s
_LAM3, _G3 = 0.3, 0.6


def _delayed_linear_sim(dt, *, duration=20.0):
    """The deterministic 3-region delayed linear network, interpolated delays, Heun."""
    net = bm.Network(
        bm.models.Linear(lam=_LAM3),
        _conn(_W3, _L3),
        bm.coupling.Linear(G=_G3),
        speed=1.0,
        delays="interpolated",
    )
    x0 = np.asarray(_smooth_history(0.0)["x"])
    return bm.Simulator(
        net,
        dt=dt,
        duration=duration,
        monitor=bm.monitors.Raw(period=0.2),
        init={"x": x0},
        history=_smooth_history,
        solver=bm.solvers.Heun(),
    )


def _dde_reference(t_eval):
    """The delayed linear network solved by the method of steps with scipy (DOP853).

    $\\dot x_i = -\\lambda x_i + G \\sum_j W_{ij} x_j(t - L_{ij}/v)$, with the smooth
    history before 0. On each interval of length min(tau), the delayed values come
    from the history or from the dense output of earlier intervals.
    """
    tau = _L3 / 1.0  # speed 1 m/s = 1 mm/ms
    edges = [(i, j) for i in range(3) for j in range(3) if _W3[i, j] != 0]
    hist = np.array([1.0, 0.5, -0.8]), np.array([0.3, 0.5, 0.2])
    step = min(tau[i, j] for i, j in edges)
    segments = []

    def past(j, s):
        if s <= 0.0:
            return hist[0][j] * np.cos(hist[1][j] * s + 0.4)
        for t0, t1, sol in segments:
            if s <= t1 + 1e-12:  # (t0 + step) - step may exceed t0 by one rounding error
                return sol(min(max(s, t0), t1))[j]
        raise AssertionError(s)

    def rhs(t, x):
        dx = -_LAM3 * x
        for i, j in edges:
            dx[i] += _G3 * _W3[i, j] * past(j, t - tau[i, j])
        return dx

    x = hist[0] * np.cos(0.4)
    t0, t_end = 0.0, float(t_eval[-1])
    while t0 < t_end:
        t1 = min(t0 + step, t_end)
        sol = solve_ivp(
            rhs, (t0, t1), x, method="DOP853", rtol=1e-12, atol=1e-14, dense_output=True
        )
        segments.append((t0, t1, sol.sol))
        x, t0 = sol.y[:, -1], t1
    return np.array([past(j, t) for t in t_eval for j in range(3)]).reshape(len(t_eval), 3)


def test_interpolated_delays_converge_to_dde_reference(x64):
    dts = np.array([0.2, 0.1, 0.05, 0.025])  # every delay falls between steps
    errors = []
    for dt in dts:
        res = _delayed_linear_sim(dt).run()
        if dt == dts[0]:
            reference = _dde_reference(np.asarray(res.time))
        errors.append(np.abs(np.asarray(res.signal) - reference).max())
    errors = np.array(errors)
    assert np.all(np.diff(errors) < 0), errors
    order = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert order > 0.9, (order, errors)  # Heun + linear interpolation: about 2
    assert errors[-1] < 1e-3


def test_interpolated_delays_are_smooth_in_speed(x64):
    sim = _delayed_linear_sim(0.05, duration=10.0)
    f = sim.function(["network.speed"])

    def loss(speed):
        return jnp.sum(f({"network.speed": speed})[-10:] ** 2)

    # A grid of speeds over which the delays cross whole numbers of steps several
    # times (tau / dt = L / (v dt) moves by ~4 steps for the longest tract), plus
    # v0 +- h for a tight central difference at v0 = 1 (one batched call).
    v0, h = 1.0, 1e-6
    speeds = np.linspace(0.96, 1.04, 17)  # contains v0
    values = np.asarray(jax.vmap(loss)(jnp.asarray(np.r_[speeds, v0 + h, v0 - h])))
    grads = np.asarray(jax.vmap(jax.grad(loss))(jnp.asarray(speeds)))
    values, fd = values[:-2], (values[-2] - values[-1]) / (2 * h)
    grad = grads[np.argmin(np.abs(speeds - v0))]
    assert abs(grad) > 1e-3
    np.testing.assert_allclose(grad, fd, rtol=1e-6)
    # The output has no jumps (rounded delays would make it piecewise constant, with
    # zero gradient), and its centred differences follow jax.grad everywhere.
    centred = (values[2:] - values[:-2]) / (speeds[2:] - speeds[:-2])
    np.testing.assert_allclose(centred, grads[1:-1], rtol=1e-2)


def test_rounded_and_interpolated_delays_agree_on_whole_steps(x64):
    dt = 0.125  # binary-exact, and every delay below is a whole number of steps
    lengths = np.array([[0.0, 1.0, 2.5], [0.75, 0.0, 0.0], [1.5, 2.25, 0.0]])
    out = {}
    for mode in ("rounded", "interpolated"):
        net = bm.Network(
            bm.models.Linear(lam=_LAM3),
            _conn(_W3, lengths),
            bm.coupling.Linear(G=_G3),
            speed=1.0,
            delays=mode,
            noise=bm.noise.Additive(sigma=0.05),
        )
        sim = bm.Simulator(
            net,
            dt=dt,
            duration=20.0,
            monitor=bm.monitors.Raw(period=0.25),
            init={"x": np.array([1.0, 0.5, -0.8])},
            history=_smooth_history,
        )
        out[mode] = np.asarray(sim.run(jax.random.key(3)).signal)
    np.testing.assert_allclose(out["interpolated"], out["rounded"], rtol=0, atol=1e-12)
    assert np.abs(out["rounded"]).max() > 0.1


@pytest.mark.parametrize(
    ("G", "tau", "delays"),
    [(0.05, 5.0, "rounded"), (0.3, 5.0, "rounded"), (0.05, 5.03, "interpolated")],
    ids=["decaying", "growing", "decaying-interpolated"],
)
def test_self_delayed_region_follows_characteristic_root(x64, G, tau, delays):
    # dx/dt = -lam x + G x(t - tau): solutions ~ exp(s t) with s the real root of
    # s = -lam + G exp(-s tau), the rightmost root for G > 0. The other roots,
    # -lam + W_k(G tau e^{lam tau}) / tau (Lambert W, k != 0), lie >= 0.3/ms to its
    # left, so from t = 100 ms on they are below e^-30 of the dominant mode.
    lam, speed, dt = 0.1, 2.0, 0.05
    s = brentq(lambda z: z + lam - G * np.exp(-z * tau), -lam, 1.0)
    others = -lam + lambertw(G * tau * np.exp(lam * tau), 1) / tau
    assert s - others.real > 0.3
    net = bm.Network(
        bm.models.Linear(lam=lam),
        _conn([[1.0]], [[tau * speed]]),
        bm.coupling.Linear(G=G),
        speed=speed,
        delays=delays,
    )
    sim = bm.Simulator(
        net,
        dt=dt,
        duration=200.0,
        monitor=bm.monitors.Raw(period=0.5),
        init={"x": 1.0},
        solver=bm.solvers.Heun(),
    )
    res = sim.run()
    t, x = np.asarray(res.time), np.asarray(res.signal)[:, 0]
    late = t >= 100.0
    assert np.all(x[late] > 0)
    slope = np.polyfit(t[late], np.log(x[late]), 1)[0]
    np.testing.assert_allclose(slope, s, rtol=2e-3, atol=1e-5)


# ----------------------------------------------------------------------------- 6. determinism


_PATHS = ["coupling.G", "model.a", "noise.sigma"]


def _noisy_delayed_hopf(n=4, duration=20.0, remat=True, max_block=64):
    """A small noisy Hopf network with conduction delays (build it under x64)."""
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.2, 1.0, (n, n))
    np.fill_diagonal(weights, 0.0)
    lengths = rng.uniform(5.0, 20.0, (n, n))
    net = bm.Network(
        bm.models.Hopf(a=np.linspace(-0.05, 0.02, n), omega=0.3),
        _conn(weights, lengths),
        bm.coupling.Linear(G=0.1),
        speed=5.0,
        noise=bm.noise.Additive(sigma=0.02),
    )
    return bm.Simulator(
        net,
        dt=0.1,
        duration=duration,
        monitor=bm.monitors.Raw(period=1.0),
        init={"x": 0.1, "y": 0.0},
        remat=remat,
        max_block=max_block,
    )


def _theta(G=0.1, a=None, sigma=0.02):
    a = jnp.linspace(-0.05, 0.02, 4) if a is None else a
    return {
        "coupling.G": jnp.asarray(G),
        "model.a": jnp.asarray(a),
        "noise.sigma": jnp.asarray(sigma),
    }


# The tests below share one compiled forward function: `sim.function(_PATHS)` of
# equal simulators hits the same jit cache entry.


def test_same_key_same_signal_and_different_keys_differ(x64):
    f = _noisy_delayed_hopf().function(_PATHS)
    a = np.asarray(f(_theta(), jax.random.key(7)))
    b = np.asarray(f(_theta(), jax.random.key(7)))
    c = np.asarray(f(_theta(), jax.random.key(8)))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    # the noise really drives the signal, not just a rounding difference
    assert np.abs(a - c).max() > 1e-3


def test_block_size_does_not_change_the_result(x64):
    # Delayed inputs are read once per block of steps and the noise is drawn per
    # monitor sample: one step per block must give the same signal.
    sim = _noisy_delayed_hopf()
    one = _noisy_delayed_hopf(max_block=1)
    assert sim.plan.block > 1 and one.plan.block == 1
    key = jax.random.key(9)
    a = np.asarray(sim.function(_PATHS)(_theta(), key))
    b = np.asarray(one.function(_PATHS)(_theta(), key))
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_jit_equals_eager(x64):
    key = jax.random.key(2)
    sim = _noisy_delayed_hopf(duration=3.0)
    jitted = np.asarray(sim.run(key).signal)
    # Eager: every primitive dispatched one by one. (remat=False: jax.checkpoint
    # is very slow outside jit; checkpointing does not change the forward values.)
    eager_sim = _noisy_delayed_hopf(duration=3.0, remat=False)
    with jax.disable_jit():
        eager = np.asarray(eager_sim.run(key).signal)
    np.testing.assert_allclose(jitted, eager, rtol=1e-12, atol=1e-14)


def test_vmap_over_parameters_equals_loop(x64):
    f = _noisy_delayed_hopf().function(_PATHS)
    Gs = jnp.array([0.0, 0.1, 0.3])
    As = jnp.stack([jnp.full(4, -0.03), jnp.linspace(-0.05, 0.02, 4), jnp.full(4, 0.01)])
    sigmas = jnp.array([0.02, 0.0, 0.05])
    key = jax.random.key(4)
    batched = jax.vmap(lambda g, a, s: f(_theta(g, a, s), key))(Gs, As, sigmas)
    looped = jnp.stack([f(_theta(*p), key) for p in zip(Gs, As, sigmas, strict=True)])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-10, atol=1e-13)
    assert not np.allclose(batched[0], batched[2])


def test_gradient_matches_central_finite_differences(x64):
    f = _noisy_delayed_hopf().function(_PATHS)
    key = jax.random.key(5)
    theta = _theta()

    def loss(th):
        return jnp.mean(f(th, key) ** 2)

    grad = jax.grad(loss)(theta)
    h = 1e-6
    for path, value in theta.items():
        flat = np.atleast_1d(np.asarray(value))
        fd = np.empty_like(flat)
        for i in range(flat.size):
            e = np.zeros_like(flat)
            e[i] = h
            up = {**theta, path: jnp.asarray((flat + e).reshape(np.shape(value)))}
            down = {**theta, path: jnp.asarray((flat - e).reshape(np.shape(value)))}
            fd[i] = (float(loss(up)) - float(loss(down))) / (2 * h)
        g = np.atleast_1d(np.asarray(grad[path]))
        assert np.all(np.abs(g) > 1e-8), (path, g)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-12, err_msg=path)
