"""The exact state-space model of a monitor's samples (`brainmass.linear` `state_space`).

Checked against an independent float64 Van Loan discretisation (`scipy.linalg.expm` of the
block matrix), closed-form autocovariances (continuous Lyapunov solution, the box-car double
sum), Monte-Carlo simulations with brainmass (error bars from independent replicates), the
BOLD monitor's own response and finite differences. Tests run in float64 unless they say so.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import brainmass as bm
from brainmass.linear._statespace import StateSpaceModel, autocovariance, state_space
from brainmass.monitors import AbstractMonitor

W3 = np.array([[0.0, 1.0, 0.5], [0.8, 0.0, 1.0], [0.2, 0.9, 0.0]])


def _arr(value):
    """A float array of the default dtype (float64 under x64): parameters share compiled code."""
    return jnp.asarray(value, jnp.result_type(float))


def _ou_sim(monitor, *, lam=0.1, G=0.03, sigma=0.02, dt=0.1, duration=100.0, noise=None, **kw):
    """A 3-region Ornstein-Uhlenbeck network (`bm.models.Linear`, linear coupling)."""
    conn = bm.Connectome.from_arrays(W3, np.full((3, 3), 10.0))
    noise = bm.noise.Additive(sigma=_arr(sigma)) if noise is None else noise
    net = bm.Network(
        bm.models.Linear(lam=_arr(lam)),
        conn,
        coupling=bm.coupling.Linear(G=_arr(G)),
        noise=noise,
        speed=kw.pop("speed", None),
    )
    return bm.Simulator(net, dt=dt, duration=duration, monitor=monitor, **kw)


def _ou_matrices(lam=0.1, G=0.03, sigma=0.02):
    return -lam * np.eye(3) + G * W3, sigma**2 * np.eye(3)


def _van_loan(A, Qc, T):
    r"""F = e^{AT}, Q = \int_0^T e^{As} Qc e^{A^T s} ds from expm([[-A, Qc], [0, A^T]] T)."""
    n = A.shape[0]
    E = scipy.linalg.expm(np.block([[-A, Qc], [np.zeros((n, n)), A.T]]) * T)
    F = E[n:, n:].T
    return F, F @ E[:n, n:]


def _replicates(sim, n_rep: int, seed: int) -> np.ndarray:
    """`(n_rep, n_samples, C)`: independent runs (one key each), vmapped."""
    f = sim.function([])
    keys = jax.random.split(jax.random.key(seed), n_rep)
    return np.asarray(jax.jit(jax.vmap(lambda k: f({}, k)))(keys))


def _lagged_cov(y: np.ndarray, mean: np.ndarray, n_lags: int) -> np.ndarray:
    """Per replicate, `(R, n_lags, C, C)`: mean of (y_{t+h} - mean)(y_t - mean)^T."""
    d = y - mean
    t = y.shape[1]
    return np.stack(
        [np.einsum("rti,rtj->rij", d[:, h:], d[:, : t - h]) / (t - h) for h in range(n_lags)],
        axis=1,
    )


def _assert_within(estimates, expected, *, n_sigma: float, max_rel_se: float):
    """Replicate mean within `n_sigma` standard errors of `expected`, elementwise.

    The error bar comes from independent replicates (each a batch); `max_rel_se` asserts
    that it is small enough for the comparison to have power.
    """
    r = estimates.shape[0]
    mean = estimates.mean(axis=0)
    se = estimates.std(axis=0, ddof=1) / math.sqrt(r)
    scale = np.abs(expected).max()
    assert se.max() <= max_rel_se * scale, (se.max(), scale)
    z = np.abs(mean - expected) / np.maximum(se, 1e-3 * se.max())
    assert z.max() < n_sigma, (z.max(), mean, expected)


# ------------------------------------------------------------------ exact discretisation


def test_raw_transition_is_the_van_loan_discretisation():
    T = 5.0
    A, Qc = _ou_matrices()
    F, Q = _van_loan(A, Qc, T)
    P = scipy.linalg.solve_discrete_lyapunov(F, Q)
    with jax.enable_x64(True):
        model = state_space(_ou_sim(bm.monitors.Raw(period=T)))
        assert isinstance(model, StateSpaceModel) and model.F.dtype == jnp.float64
        assert bool(model.ok) and model.blocks == (("state", 0, 3),) and model.period == T
        np.testing.assert_allclose(model.F, F, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(model.Q, Q, rtol=1e-11, atol=1e-14 * np.abs(Q).max())
        np.testing.assert_allclose(model.H, np.eye(3))
        np.testing.assert_allclose(model.offset, 0.0)
        # stationary start: the discrete Lyapunov equation P = F P F^T + Q
        cov = np.asarray(model.init_cov)
        np.testing.assert_allclose(cov, F @ cov @ F.T + Q, rtol=0, atol=1e-13 * np.abs(P).max())
        np.testing.assert_allclose(cov, P, rtol=1e-10)
        np.testing.assert_allclose(model.init_mean, 0.0)

        # the simulator's dt does not enter a point sample
        other = state_space(_ou_sim(bm.monitors.Raw(period=T), dt=0.05, duration=50.0))
        np.testing.assert_allclose(other.Q, model.Q, rtol=1e-13)

        # coloured noise: state (x, eta), dx = (A x + eta) dt, tau d eta = -eta dt + sigma dW
        tau, sigma = 4.0, 0.02
        noise = bm.noise.OrnsteinUhlenbeck(sigma=_arr(sigma), tau=_arr(tau))
        col = state_space(_ou_sim(bm.monitors.Raw(period=T), noise=noise))
        A2 = np.block([[A, np.eye(3)], [np.zeros((3, 3)), -np.eye(3) / tau]])
        Q2 = np.diag(np.r_[np.zeros(3), np.full(3, sigma**2 / tau**2)])
        F2, Qd2 = _van_loan(A2, Q2, T)
        assert col.blocks == (("state", 0, 3), ("noise", 3, 6)) and bool(col.ok)
        np.testing.assert_allclose(col.F, F2, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(col.Q, Qd2, rtol=1e-10, atol=1e-14 * np.abs(Qd2).max())
        np.testing.assert_allclose(col.H, np.c_[np.eye(3), np.zeros((3, 3))])

    # float32, JAX's default: the same model to single precision
    m32 = state_space(_ou_sim(bm.monitors.Raw(period=T)))
    assert m32.F.dtype == jnp.float32 and bool(m32.ok)
    np.testing.assert_allclose(m32.F, F, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m32.Q, Q, rtol=2e-5)
    np.testing.assert_allclose(m32.init_cov, P, rtol=5e-5)


def test_autocovariance_matches_closed_forms_for_point_samples_and_box_cars():
    T, dt, steps = 5.0, 1.0, 5
    A, Qc = _ou_matrices()
    sigma = scipy.linalg.solve_continuous_lyapunov(A, -Qc)

    def lagged(tau):  # E[x(t + tau) x(t)^T] of the stationary process
        if tau >= 0:
            return scipy.linalg.expm(A * tau) @ sigma
        return sigma @ scipy.linalg.expm(A.T * -tau)

    with jax.enable_x64(True):
        raw = state_space(_ou_sim(bm.monitors.Raw(period=T), dt=dt))
        expected = np.stack([lagged(h * T) for h in range(4)])
        np.testing.assert_allclose(autocovariance(raw, 4), expected, rtol=1e-10)

        # the mean of the P = 5 steps in (t_k - T, t_k]: a double sum over step pairs
        avg = state_space(_ou_sim(bm.monitors.TemporalAverage(period=T), dt=dt))
        assert avg.blocks == (("state", 0, 3), ("average", 3, 6)) and bool(avg.ok)
        pairs = [(i, j) for i in range(steps) for j in range(steps)]
        expected = np.stack(
            [sum(lagged(h * T - (i - j) * dt) for i, j in pairs) / steps**2 for h in range(4)]
        )
        gamma = autocovariance(avg, 4)
        assert gamma.shape == (4, 3, 3)
        np.testing.assert_allclose(gamma, expected, rtol=1e-10)
        s, a = avg.block("state"), avg.block("average")
        cross = sum(lagged(i * dt) for i in range(steps)) / steps  # Cov(x(t_k), a_k)
        np.testing.assert_allclose(avg.stationary_cov[s, s], sigma, rtol=1e-10)
        np.testing.assert_allclose(avg.stationary_cov[s, a], cross, rtol=1e-10)


# ------------------------------------------------------------------ Monte Carlo


def _hopf_sim(monitor, duration):
    conn = bm.Connectome.from_arrays(W3, np.zeros((3, 3)))
    net = bm.Network(
        bm.models.Hopf(a=_arr(-0.05), omega=_arr(2 * math.pi * 0.02)),  # 20 Hz, decay 20 ms
        conn,
        coupling=bm.coupling.Linear(G=_arr(0.01)),
        noise=bm.noise.Additive(sigma=_arr(1e-3)),
    )
    return bm.Simulator(net, dt=0.1, duration=duration, monitor=monitor, init={"x": 0.0, "y": 0.0})


@pytest.mark.parametrize("case", ["ou_raw", "ou_average", "hopf_raw"])
def test_autocovariance_matches_long_simulations(case):
    # 32 independent runs of 2 s after a 200 ms transient (ten correlation times of the
    # slowest mode, ~20 ms: the variance has converged from the start at the fixed point to
    # e^-20). Solver error at dt = 0.1 ms: for the OU process, Heun's stationary variance is
    # off by (lam dt)^2 / 4 ~ 3e-5; Hopf's rotation by O((omega dt)^2) ~ 2e-4; its cubic
    # term changes the decay rate by ~2 var / |a| ~ 4e-4 (sigma = 1e-3). All well below
    # the ~2-3 % standard errors; the test allows 4.5 of them over 36 entries.
    period, transient, duration = 5.0, 200.0, 2200.0
    cls = bm.monitors.TemporalAverage if case == "ou_average" else bm.monitors.Raw
    monitor = cls(period=period, transient=transient)
    with jax.enable_x64(True):
        if case == "hopf_raw":
            sim = _hopf_sim(monitor, duration)
        else:
            sim = _ou_sim(monitor, duration=duration)
        model = state_space(sim)
        assert bool(model.ok)
        expected = np.asarray(autocovariance(model, 4))
        y = _replicates(sim, 32, seed=3)
    assert y.shape == (32, 400, 3)
    estimates = _lagged_cov(y, np.asarray(model.offset), 4)
    _assert_within(estimates, expected, n_sigma=4.5, max_rel_se=0.04)


# ------------------------------------------------------------------ BOLD


def _balloon_at_rest(mon: bm.monitors.BOLD):
    """The Balloon-Windkessel model linearised at rest by hand, per ms (Friston et al. 2000).

    State rows (s, log f, log v, log q); the monitor's rates are per ms, its equations per
    second: ds/dt = 1e-3 (x - kappa_s s - gamma_s (f - 1)), d log f/dt = 1e-3 s, ...
    Returns (J (4, 4), the drive's column (4,), the BOLD row (4,)).
    """
    kappa, gamma, tau, alpha, E0, V0 = (
        float(getattr(mon, k)) for k in ("kappa", "gamma", "tau", "alpha", "E0", "V0")
    )
    k1, k2, k3 = (float(k) for k in mon.output_coefficients())
    extraction = 1 + (1 - E0) * math.log(1 - E0) / E0  # d log(f E(f)/E0) / d log f at f = 1
    J = np.array(
        [
            [-kappa, -gamma, 0.0, 0.0],
            [1e-3, 0.0, 0.0, 0.0],
            [0.0, 1 / tau, -1 / (alpha * tau), 0.0],
            [0.0, extraction / tau, -(1 / alpha - 1) / tau, -1 / tau],
        ]
    )
    return J, np.array([1e-3, 0.0, 0.0, 0.0]), V0 * np.array([0.0, 0.0, k2 - k3, -(k1 + k2)])


def _bold_sim():
    """A slow OU network seen through BOLD (TR = 720 ms), 330 TRs, the first 30 dropped."""
    TR = 720.0
    mon = bm.monitors.BOLD(period=TR, transient=30 * TR)
    return _ou_sim(mon, lam=0.01, G=0.002, sigma=1e-3, dt=5.0, duration=330 * TR)


def test_bold_model_matches_the_balloon_linearised_by_hand():
    TR, n = 720.0, 3
    A, Qc = _ou_matrices(lam=0.01, G=0.002, sigma=1e-3)
    with jax.enable_x64(True):  # the monitor's parameters in float64
        sim = _bold_sim()
        J, gain, out = _balloon_at_rest(sim.monitor)
        model = state_space(sim)
    # augmented continuous system (x, h), h in variable-major order (row r of region i: r n + i)
    A_full = np.block(
        [[A, np.zeros((n, 4 * n))], [np.kron(gain[:, None], np.eye(n)), np.kron(J, np.eye(n))]]
    )
    Q_full = scipy.linalg.block_diag(Qc, np.zeros((4 * n, 4 * n)))
    F, Q = _van_loan(A_full, Q_full, TR)
    P = scipy.linalg.solve_continuous_lyapunov(A_full, -Q_full)
    H = np.c_[np.zeros((n, n)), np.kron(out[None, :], np.eye(n))]
    assert bool(model.ok) and model.blocks == (("state", 0, 3), ("haemodynamics", 3, 15))
    np.testing.assert_allclose(model.F, F, rtol=1e-9, atol=1e-12 * np.abs(F).max())
    np.testing.assert_allclose(model.Q, Q, rtol=1e-8, atol=1e-12 * np.abs(Q).max())
    np.testing.assert_allclose(model.H, H, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.offset, 0.0, atol=1e-15)
    np.testing.assert_allclose(model.stationary_cov, P, rtol=1e-7, atol=1e-9 * np.abs(P).max())


def test_bold_autocovariance_matches_a_long_simulation():
    # A slow OU network (lam = 0.01/ms) so that dt = 5 ms is exact where BOLD looks: Heun's
    # low-frequency spectrum of the OU process is exact at zero frequency and off by
    # O((omega dt)^2) ~ 1e-6 below 0.5 Hz. sigma = 1e-3 keeps the blood flow within ~5e-3
    # of its steady state: nonlinear corrections to the covariance are second order in it.
    # 16 runs of 300 TRs after a 30 TR transient (the haemodynamic variance builds up from
    # rest as e^{-0.64 t/s}).
    with jax.enable_x64(True):
        sim = _bold_sim()
        model = state_space(sim)
        expected = np.asarray(autocovariance(model, 4))
        logf = model.block("haemodynamics").start + 3  # log f of region 0
        assert math.sqrt(model.stationary_cov[logf, logf]) < 1e-2
        y = _replicates(sim, 16, seed=5)
    assert y.shape == (16, 300, 3)
    estimates = _lagged_cov(y, np.asarray(model.offset), 4)
    _assert_within(estimates, expected, n_sigma=4.5, max_rel_se=0.12)


def test_bold_impulse_response_matches_the_monitor():
    # A non-resting steady state (drive 0.05 / s^2 from the baseline), per-region scale and
    # the classical coefficients: the linear model against the monitor's own integration of
    # a small neural impulse, x(t) = e^{A t} delta, fed step by step from its steady state.
    # dt = 0.1 ms: the monitor reads the input at the end of each step, which for an input
    # that jumps at t = 0 misses lam dt / 2 of its integral (0.5 % at dt = 1 ms)
    TR, dt, lam, G = 720.0, 0.1, 0.01, 0.002
    A, _ = _ou_matrices(lam, G)
    scale = np.array([1.0, 0.5, 2.0])
    steps = int(TR / dt)
    with jax.enable_x64(True):
        mon = bm.monitors.BOLD(
            period=TR, coefficients="friston2003", baseline=-0.05, scale=jnp.asarray(scale)
        )
        model = state_space(_ou_sim(mon, lam=lam, G=G, dt=dt, duration=2 * TR))
        assert bool(model.ok)

        def advance(state, values):
            return mon.sample(state, values, dt)

        rest = jnp.zeros((steps, 3))
        state, _ = jax.lax.scan(
            advance, mon.init(3, jnp.float64), jnp.broadcast_to(rest, (300,) + rest.shape)
        )
        steady = np.asarray(mon.signal(state))
        assert np.abs(steady).max() > 1e-3  # a non-trivial steady state
        np.testing.assert_allclose(model.offset, steady, rtol=1e-8)

        delta = np.array([1e-3, 0.0, -5e-4])
        t = dt * np.arange(1, 8 * steps + 1)
        step = scipy.linalg.expm(A * dt)
        x = np.empty((t.size, 3))
        x[0] = step @ delta
        for m in range(1, t.size):
            x[m] = step @ x[m - 1]
        _, bold = jax.lax.scan(advance, state, jnp.asarray(x.reshape(8, steps, 3)))
        response = np.asarray(bold) - steady
        z0 = np.zeros(model.n_states)
        z0[:3] = delta
        F, H = np.asarray(model.F), np.asarray(model.H)
        linear = np.stack([H @ np.linalg.matrix_power(F, k) @ z0 for k in range(1, 9)])
    # measured 5.6e-4 of the peak: mostly the end-of-step reading (lam dt / 2 = 5e-4); the
    # nonlinearity (O(delta) relative) and the 10 ms input windows (O(dt_bold^2)) are less
    np.testing.assert_allclose(response, linear, atol=2e-3 * np.abs(linear).max())
    assert np.abs(linear).max() > 1e-6


# ------------------------------------------------------------------ EEG / MEG


def test_sensor_monitors_are_the_lead_field_on_the_box_car():
    lead = np.random.default_rng(0).normal(size=(4, 3))
    with jax.enable_x64(True):
        avg = state_space(_ou_sim(bm.monitors.TemporalAverage(period=2.0)))
        # the EEG's lead field is average-referenced (the monitor's default)
        for mon in (bm.monitors.EEG(lead, period=2.0), bm.monitors.MEG(lead, period=2.0)):
            model = state_space(_ou_sim(mon))
            L = np.asarray(mon.leadfield)
            assert model.H.shape == (L.shape[0], 6) and bool(model.ok)
            np.testing.assert_allclose(model.H, L @ np.asarray(avg.H), atol=1e-15)
            np.testing.assert_allclose(model.F, avg.F, rtol=1e-14, atol=1e-17)
            np.testing.assert_allclose(model.Q, avg.Q, rtol=1e-14, atol=1e-20)
            gamma = np.asarray(autocovariance(avg, 2))
            np.testing.assert_allclose(
                autocovariance(model, 2), L @ gamma @ L.T, rtol=1e-12, atol=1e-18
            )


# ------------------------------------------------------------------ initial distribution


@pytest.mark.parametrize("colored", [False, True])
def test_simulator_initial_distribution_matches_short_runs(colored):
    # 4000 runs from x0 != fixed point; the first retained sample (after a 10 ms transient:
    # the third box-car average, or the third point sample) against the model's mean and
    # covariance. Standard errors: sqrt(var / R) for the mean, sqrt((s_ii s_jj + s_ij^2) / R)
    # for the covariance (Gaussian); 4.5 of them allowed.
    x0 = np.array([0.2, -0.15, 0.1])
    if colored:
        noise = bm.noise.OrnsteinUhlenbeck(sigma=_arr(0.02), tau=_arr(3.0))
        monitor = bm.monitors.Raw(period=5.0, transient=10.0)
    else:
        noise, monitor = None, bm.monitors.TemporalAverage(period=5.0, transient=10.0)
    with jax.enable_x64(True):
        sim = _ou_sim(monitor, duration=15.0, noise=noise, init={"x": x0})
        model = state_space(sim, initial="simulator")
        assert bool(model.ok)
        mean = np.asarray(model.H @ model.init_mean + model.offset)
        cov = np.asarray(model.H @ model.init_cov @ model.H.T)
        y = _replicates(sim, 4000, seed=7)[:, 0]
    r = y.shape[0]
    se_mean = np.sqrt(np.diag(cov) / r)
    assert np.abs(mean).max() > 30 * se_mean.max()  # the start is not forgotten yet
    assert np.all(np.abs(y.mean(0) - mean) < 4.5 * se_mean), (y.mean(0), mean)
    d = np.sqrt(np.diag(cov))
    se_cov = np.sqrt((np.outer(d**2, d**2) + cov**2) / r)
    assert np.all(np.abs(np.cov(y.T) - cov) < 4.5 * se_cov), (np.cov(y.T), cov)


# ------------------------------------------------------------------ gradients, jit, vmap


def test_gradients_match_finite_differences_and_jit_vmap_work():
    with jax.enable_x64(True):
        avg = _ou_sim(bm.monitors.TemporalAverage(period=2.0))
        mon = bm.monitors.BOLD(period=720.0, coefficients="friston2003", baseline=-0.05)
        bold = _ou_sim(mon, lam=0.01, G=0.002, dt=1.0, duration=1440.0)

        def avg_loss(theta):  # reverse mode
            G, lam, sigma = theta
            sim = avg.with_params({"coupling.G": G, "model.lam": lam, "noise.sigma": sigma})
            return jnp.sum(autocovariance(state_space(sim), 3)) * 1e3

        def bold_loss(theta):  # forward mode; the baseline moves the haemodynamic steady state
            G, baseline = theta
            model = state_space(bold.with_params({"coupling.G": G, "monitor.baseline": baseline}))
            return jnp.sum(autocovariance(model, 2)) * 1e6 + jnp.sum(model.offset) * 1e2

        theta = jnp.asarray([0.03, 0.1, 0.02], jnp.float64)
        value_and_grad = jax.jit(jax.value_and_grad(avg_loss))
        grad = np.asarray(value_and_grad(theta)[1])
        for k in range(3):
            h = 1e-5 * float(theta[k]) * np.eye(3)[k]
            fd = (value_and_grad(theta + h)[0] - value_and_grad(theta - h)[0]) / (2 * h[k])
            np.testing.assert_allclose(grad[k], fd, rtol=1e-6, err_msg=f"avg, parameter {k}")

        theta = jnp.asarray([0.002, -0.05], jnp.float64)
        direction = jnp.asarray([0.002, 0.05], jnp.float64)  # both relative changes of 1
        jvp = jax.jit(lambda t: jax.jvp(bold_loss, (t,), (direction,)))
        value, slope = jvp(theta)
        h = 1e-5
        fd = (jvp(theta + h * direction)[0] - jvp(theta - h * direction)[0]) / (2 * h)
        assert abs(float(slope)) > 1e-3 * abs(float(value))
        np.testing.assert_allclose(slope, fd, rtol=1e-6, err_msg="BOLD")

        # vmap over G equals a loop; the unstable point is a flag and NaN, not an exception
        Gs = jnp.asarray([0.01, 0.03, 0.2], jnp.float64)  # 0.2 * rho(W) > lam: unstable
        batch = jax.vmap(lambda G: state_space(avg.with_params({"coupling.G": G})))(Gs)
        for i, G in enumerate(Gs):
            one = state_space(avg.with_params({"coupling.G": G}))
            assert bool(batch.ok[i]) == bool(one.ok) == (i < 2)
            np.testing.assert_allclose(batch.F[i], one.F, rtol=1e-12)
        assert np.all(np.isnan(np.asarray(batch.stationary_cov[2])))


# ------------------------------------------------------------------ refusals


class _Peak(AbstractMonitor):
    period: float = 1.0
    variable: None = None
    transient: float = 0.0

    def sample(self, state, values, dt):
        return state, jnp.max(values, axis=0)


def test_refusals_are_clear_value_errors():
    sim = _ou_sim(bm.monitors.Raw(period=1.0))
    delayed = _ou_sim(bm.monitors.Raw(period=1.0), speed=_arr(2.0))
    with pytest.raises(ValueError, match="infinite-dimensional.*Whittle.*NPE"):
        state_space(delayed)
    conn = bm.Connectome.from_arrays(W3, np.zeros((3, 3)))
    quiet = bm.Simulator(bm.Network(bm.models.Linear(), conn, bm.coupling.Linear(G=0.03)))
    with pytest.raises(ValueError, match="no noise"):
        state_space(quiet)
    with pytest.raises(ValueError, match="Raw, TemporalAverage, EEG, MEG and BOLD.*_Peak"):
        state_space(_ou_sim(_Peak()))
    with pytest.raises(ValueError, match="initial"):
        state_space(sim, initial="rest")
    with pytest.raises(ValueError, match="sim"):
        state_space(sim.network)
    with pytest.raises(ValueError, match="n_lags"):
        autocovariance(state_space(sim), 0)
    with pytest.raises(ValueError, match="model"):
        autocovariance(sim, 2)
