"""MontbrioPazoRoxin, CoombesByrne and Kuramoto against independently written references.

Every reference here is written from the papers in a different form from the
models' code: the QIF mean fields in their complex (Lorentzian-ansatz) form,
fixed points and trajectories with scipy, and the Kuramoto results in closed
form (phase locking of two oscillators, the drift period, the delayed in-phase
frequency of Yeung & Strogatz 1999).
"""

from __future__ import annotations

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq, fsolve

import brainmass as bm
from brainmass.models.coombes_byrne import CoombesByrne
from brainmass.models.kuramoto import Kuramoto
from brainmass.models.montbrio_pazo_roxin import MontbrioPazoRoxin

N_REGIONS = 6


# ---------------------------------------------------------------- references
def mpr_ref(state, c, tau, Delta, eta, J, I, cr):
    r"""Montbrió, Pazó & Roxin (2015) in complex form, $w = \pi \tau r + i v$.

    $\tau \dot w = \Delta + i(\bar\eta + J\tau r + I - w^2)$; the network input
    is a current (added to $I$). `state` `(2, n)`, returns `(2, n)`.
    """
    r, v = state
    w = np.pi * tau * r + 1j * v
    dw = (Delta + 1j * (eta + J * tau * r + I + cr * c - w * w)) / tau
    return np.stack([dw.real / (np.pi * tau), dw.imag])


def cb_ref(state, c, Delta, alpha, v_syn, k, eta):
    r"""Coombes & Byrne (2019) in complex form, $z = v + i\pi r$.

    $\dot z = z^2 - g z + \eta + g v_{syn} + i\Delta$ (network input added to
    the real part). Conductance: $\ddot g = \alpha^2(\kappa\pi r - g) - 2\alpha\dot g$,
    with $q = \dot g/\alpha$. `state` `(4, n)`, returns `(4, n)`.
    """
    r, v, g, q = state
    z = v + 1j * np.pi * r
    dz = z * z - g * z + eta + g * v_syn + c + 1j * Delta
    g_dot = alpha * q
    g_ddot = alpha**2 * (k * np.pi * r - g) - 2.0 * alpha * g_dot
    return np.stack([dz.imag / np.pi, dz.real, g_dot, g_ddot / alpha])


def uncoupled(n):
    """A connectome of n regions without connections."""
    return bm.Connectome.from_arrays(np.zeros((n, n)), np.zeros((n, n)))


def numerical_jacobian(f, x, h=1e-6):
    """Central-difference Jacobian of f: R^n -> R^n at x."""
    x = np.asarray(x, float)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=1)


# ---------------------------------------------------------------- (1) dfun
def test_mpr_dfun_matches_complex_form():
    rng = np.random.default_rng(1)
    n = N_REGIONS
    p = dict(
        tau=rng.uniform(0.5, 3.0, n),
        Delta=rng.uniform(0.2, 2.0, n),
        eta=rng.uniform(-10.0, 5.0, n),
        J=rng.uniform(-5.0, 20.0, n),
        I=rng.uniform(-2.0, 2.0, n),
        cr=rng.uniform(0.0, 2.0, n),
    )
    state = np.stack([rng.uniform(0.01, 2.0, n), rng.uniform(-3.0, 2.0, n)])
    c = rng.normal(size=(1, n))
    got = MontbrioPazoRoxin(**p).dfun(jnp.asarray(state), jnp.asarray(c))
    want = mpr_ref(state, c[0], **p)
    assert got.shape == (2, n)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_cb_dfun_matches_complex_form():
    rng = np.random.default_rng(2)
    n = N_REGIONS
    p = dict(
        Delta=rng.uniform(0.1, 2.0, n),
        alpha=rng.uniform(0.2, 2.0, n),
        v_syn=rng.uniform(-15.0, 0.0, n),
        k=rng.uniform(0.0, 3.0, n),
        eta=rng.uniform(-5.0, 25.0, n),
    )
    state = np.stack(
        [
            rng.uniform(0.01, 2.0, n),
            rng.uniform(-3.0, 3.0, n),
            rng.uniform(0.0, 2.0, n),
            rng.uniform(-0.5, 0.7, n),
        ]
    )
    c = rng.normal(size=(1, n))
    got = CoombesByrne(**p).dfun(jnp.asarray(state), jnp.asarray(c))
    want = cb_ref(state, c[0], **p)
    assert got.shape == (4, n)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_kuramoto_dfun_and_observable():
    rng = np.random.default_rng(3)
    n = N_REGIONS
    omega = rng.uniform(0.01, 0.5, n)
    theta = rng.uniform(-10.0, 10.0, (1, n))
    c = rng.normal(size=(1, n))
    model = Kuramoto(omega=omega)
    np.testing.assert_allclose(
        model.dfun(jnp.asarray(theta), jnp.asarray(c)), (omega + c[0])[None], rtol=1e-6
    )
    np.testing.assert_allclose(
        model.quantity(jnp.asarray(theta), "x"), np.sin(theta[0]), rtol=1e-5, atol=1e-6
    )
    assert Kuramoto.observable == "x"


def test_parameter_domains_and_units():
    with pytest.raises(ValueError, match="tau"):
        MontbrioPazoRoxin(tau=-1.0)
    with pytest.raises(ValueError, match="Delta"):
        CoombesByrne(Delta=0.0)
    assert float(MontbrioPazoRoxin(tau=0.01 * u.second).tau) == pytest.approx(10.0)
    assert float(Kuramoto(omega=0.1 * u.kHz).omega) == pytest.approx(0.2 * np.pi)  # cycles
    assert float(Kuramoto(omega=0.1 * u.radian / u.ms).omega) == pytest.approx(0.1)
    assert float(CoombesByrne(alpha=500.0 * u.Hz).alpha) == pytest.approx(0.5)


# ---------------------------------------------------------------- (2) MPR fixed points
# Regions 0-2: monostable parameter sets; regions 3 and 4: the paper's bistable
# set (eta=-5, J=15, Delta=1) started near the low and the high state.
MPR_P = dict(
    tau=np.array([1.0, 2.0, 0.5, 1.0, 1.0]),
    Delta=np.array([0.5, 1.0, 2.0, 1.0, 1.0]),
    eta=np.array([-2.0, 1.0, -4.0, -5.0, -5.0]),
    J=np.array([5.0, 2.0, 8.0, 15.0, 15.0]),
    I=np.array([0.0, 0.5, 1.0, 0.0, 0.0]),
    cr=np.ones(5),
)
MPR_INIT = {"r": np.array([0.3, 0.3, 0.3, 0.1, 1.0]), "v": np.array([-1.0, -1.0, -1.0, -2.0, 0.0])}


def _mpr_region(i):
    return {k: v[i] for k, v in MPR_P.items()}


def _mpr_roots_r(p):
    """All positive roots r* of the reduced fixed-point equation (with v* eliminated)."""

    def h(r):
        v = -p["Delta"] / (2 * np.pi * p["tau"] * r)
        return v * v + p["eta"] + p["J"] * p["tau"] * r + p["I"] - (np.pi * p["tau"] * r) ** 2

    grid = np.geomspace(1e-4, 20.0, 20001)
    hs = h(grid)
    idx = np.flatnonzero(np.sign(hs[:-1]) != np.sign(hs[1:]))
    return [brentq(h, grid[i], grid[i + 1]) for i in idx]


def _mpr_stable_fixed_point(p, guess):
    """Fixed point of the complex-form equations by fsolve from `guess`, checked stable."""

    def f(x):
        return mpr_ref(x, 0.0, **p)

    x, info, ier, msg = fsolve(f, guess, full_output=True, xtol=1e-13)
    assert ier == 1, msg
    assert np.all(np.linalg.eigvals(numerical_jacobian(f, x)).real < 0)
    return x


@pytest.fixture(scope="module")
def mpr_final_state():
    net = bm.Network(MontbrioPazoRoxin(**MPR_P), uncoupled(5))
    sim = bm.Simulator(
        net, dt=0.01, duration=150.0, monitor=bm.monitors.Raw(period=1.0), init=MPR_INIT
    )
    return np.asarray(sim.run().final_state)


@pytest.mark.parametrize("region", [0, 1, 2])
def test_mpr_reaches_unique_fixed_point(mpr_final_state, region):
    p = _mpr_region(region)
    roots = _mpr_roots_r(p)
    assert len(roots) == 1  # precondition: a monostable parameter set
    x = _mpr_stable_fixed_point(p, [roots[0], -1.0])
    # the closed-form relations at a fixed point
    assert x[1] == pytest.approx(-p["Delta"] / (2 * np.pi * p["tau"] * x[0]), rel=1e-8)
    assert x[0] == pytest.approx(roots[0], rel=1e-6)
    np.testing.assert_allclose(mpr_final_state[:, region], x, rtol=1e-4, atol=1e-5)


def test_mpr_bistability(mpr_final_state):
    p = _mpr_region(3)
    roots = _mpr_roots_r(p)
    assert len(roots) == 3  # low node, saddle, high focus
    low = _mpr_stable_fixed_point(p, [roots[0], -p["Delta"] / (2 * np.pi * roots[0])])
    high = _mpr_stable_fixed_point(p, [roots[2], -p["Delta"] / (2 * np.pi * roots[2])])
    assert high[0] > 10 * low[0]
    np.testing.assert_allclose(mpr_final_state[:, 3], low, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mpr_final_state[:, 4], high, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- (3) Coombes-Byrne vs solve_ivp
def test_cb_matches_solve_ivp_limit_cycle_and_fixed_point():
    # region 0: TVB defaults (limit cycle); region 1: eta = 0, Delta = 1 (stable fixed point)
    p = dict(Delta=np.array([0.5, 1.0]), alpha=0.95, v_syn=-10.0, k=1.0, eta=np.array([20.0, 0.0]))
    init = np.array([[0.5, 0.5], [0.0, 0.0], [1.5, 1.5], [0.0, 0.0]])
    net = bm.Network(CoombesByrne(**p), uncoupled(2))
    sim = bm.Simulator(
        net,
        dt=0.01,
        duration=100.0,
        monitor=bm.monitors.Raw(period=0.1),
        init=init,
        solver=bm.solvers.RK4(),
    )
    res = sim.run()
    t = np.asarray(res.time)
    sol = solve_ivp(
        lambda _, y: cb_ref(y.reshape(4, 2), 0.0, **p).ravel(),
        (0.0, t[-1]),
        init.ravel(),
        method="DOP853",
        rtol=1e-9,
        atol=1e-10,
        t_eval=t,
    )
    assert sol.success
    ref = sol.y.reshape(4, 2, -1)
    np.testing.assert_allclose(res.signal, ref[0].T, atol=2e-3)
    np.testing.assert_allclose(res.final_state, ref[:, :, -1], atol=5e-3)
    # region 0 still oscillates at the end (r between about 0.21 and 1.44) ...
    last = np.asarray(res.signal[t > 80.0, 0])
    assert last.min() == pytest.approx(0.206, abs=0.01)
    assert last.max() == pytest.approx(1.44, abs=0.01)
    # ... and region 1 sits on the stable fixed point of the reference equations
    p1 = {k: (v[1] if np.ndim(v) else v) for k, v in p.items()}

    def f(x):
        return cb_ref(x, 0.0, **p1)

    fixed, _, ier, msg = fsolve(f, init[:, 1], full_output=True, xtol=1e-13)
    assert ier == 1, msg
    assert np.all(np.linalg.eigvals(numerical_jacobian(f, fixed)).real < 0)
    np.testing.assert_allclose(res.final_state[:, 1], fixed, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- (4) Kuramoto closed forms
def test_kuramoto_two_oscillators_lock_and_drift():
    """Pair (0, 1): d_omega = K < 2K locks at sin(phi) = d_omega / 2K; pair (2, 3) drifts.

    Run in float64: in float32 the growing phases lose resolution (see the
    Kuramoto docstring), which shifts the locked phase difference by ~1e-4.
    """
    with jax.enable_x64(True):
        _lock_and_drift()


def _lock_and_drift():
    K, omega0 = 0.02, 2 * np.pi * 0.010
    d_lock, d_drift = 1.0 * K, 3.0 * K
    omega = np.array(
        [omega0 - d_lock / 2, omega0 + d_lock / 2, omega0 - d_drift / 2, omega0 + d_drift / 2]
    )
    W = np.kron(np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]]))
    conn = bm.Connectome.from_arrays(W, np.zeros((4, 4)))
    net = bm.Network(Kuramoto(omega=omega), conn, coupling=bm.coupling.Kuramoto(G=K))
    sim = bm.Simulator(
        net,
        dt=0.1,
        duration=1500.0,
        monitor=bm.monitors.Raw(period=0.5, variable="theta"),
        init={"theta": np.array([0.0, 2.0, 0.0, 0.5])},
    )
    res = sim.run()
    assert res.signal.dtype == np.float64
    t, wrapped = np.asarray(res.time), np.asarray(res.signal, dtype=float)
    assert wrapped.min() >= 0.0 and wrapped.max() < 2 * np.pi  # theta is periodic
    theta = np.unwrap(wrapped, axis=0)
    # locked pair: constant phase difference with sin(phi) = d_omega / (2K), cos(phi) > 0
    phi = theta[:, 1] - theta[:, 0]
    late = t > 700.0
    assert np.sin(phi[late]) == pytest.approx(np.full(late.sum(), d_lock / (2 * K)), abs=1e-6)
    assert np.cos(phi[-1]) > 0
    # both run at the mean frequency
    slope = np.polyfit(t[late], theta[late, 0], 1)[0]
    assert slope == pytest.approx(omega0, rel=1e-6)
    # drifting pair: phi slips by 2 pi every 2 pi / sqrt(d_omega^2 - 4 K^2)
    psi = theta[:, 3] - theta[:, 2]
    levels = 2 * np.pi * np.arange(1, int(psi[-1] // (2 * np.pi)) + 1)
    crossings = np.interp(levels, psi, t)  # psi is increasing
    assert len(crossings) >= 5
    period = np.diff(crossings).mean()
    assert period == pytest.approx(2 * np.pi / np.sqrt(d_drift**2 - 4 * K**2), rel=2e-3)


def test_kuramoto_identical_oscillators_synchronise():
    n, K = 8, 0.2
    W = np.ones((n, n)) - np.eye(n)
    conn = bm.Connectome.from_arrays(W, np.zeros((n, n)))
    net = bm.Network(Kuramoto(), conn, coupling=bm.coupling.Kuramoto(G=K / n))
    theta0 = np.random.default_rng(0).uniform(0.0, 2 * np.pi, n)
    sim = bm.Simulator(net, dt=0.1, duration=300.0, init={"theta": theta0})
    res = sim.run()

    def order(theta):
        return np.abs(np.exp(1j * np.asarray(theta, dtype=float)).mean())

    assert order(theta0) < 0.7
    assert order(res.final_state[0]) > 0.9999
    # the default observable is sin(theta)
    np.testing.assert_allclose(res.signal[-1], np.sin(res.final_state[0]), atol=1e-6)


def test_kuramoto_delayed_in_phase_frequency():
    """Two identical delay-coupled oscillators lock in phase at Omega = omega - K sin(Omega tau)."""
    with jax.enable_x64(True):
        _delayed_in_phase()


def _delayed_in_phase():
    omega, K, speed, length, dt = 2 * np.pi * 0.010, 0.05, 5.0, 50.0, 0.1
    tau = length / speed  # 10 ms = 100 steps
    conn = bm.Connectome.from_arrays(
        np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.0, length], [length, 0.0]])
    )
    net = bm.Network(
        Kuramoto(omega=omega),
        conn,
        coupling=bm.coupling.Kuramoto(G=K),
        speed=speed,
        delays="rounded",
    )
    sim = bm.Simulator(
        net,
        dt=dt,
        duration=1200.0,
        monitor=bm.monitors.Raw(period=1.0, variable="theta"),
        init={"theta": np.array([0.0, 0.3])},
    )
    res = sim.run()
    t, theta = np.asarray(res.time), np.unwrap(np.asarray(res.signal, dtype=float), axis=0)
    assert K * tau < 1  # the root below is unique
    Omega = brentq(lambda w: w - omega + K * np.sin(w * tau), 0.0, 2 * omega)
    assert np.cos(Omega * tau) > 0  # the in-phase state is stable
    late = t > 800.0
    slope = np.polyfit(t[late], theta[late].mean(axis=1), 1)[0]
    # one step more or less of delay would move Omega by about 1e-4 rad/ms
    assert slope == pytest.approx(Omega, abs=1e-7)
    assert abs(np.angle(np.exp(1j * (theta[-1, 1] - theta[-1, 0])))) < 1e-6


# ---------------------------------------------------------------- (5) noisy delayed networks
@pytest.mark.parametrize(
    "model, coupling, dt",
    [
        (MontbrioPazoRoxin(), bm.coupling.Linear(G=0.5), 0.01),
        (CoombesByrne(), bm.coupling.Linear(G=0.5), 0.01),
        (Kuramoto(), bm.coupling.Kuramoto(G=0.1), 0.1),
    ],
    ids=["MontbrioPazoRoxin", "CoombesByrne", "Kuramoto"],
)
def test_noisy_delayed_network_stays_finite(model, coupling, dt):
    conn = bm.Connectome.synthetic(8, seed=0)
    net = bm.Network(model, conn, coupling=coupling, speed=5.0, noise=bm.noise.Additive(0.01))
    sim = bm.Simulator(net, dt=dt, duration=100.0, monitor=bm.monitors.Raw(period=1.0))
    res = sim.run(jax.random.key(0))
    assert bool(res.ok)
    assert res.signal.shape == (100, 8)
    assert np.all(np.isfinite(np.asarray(res.final_state)))
    assert np.std(np.asarray(res.signal)) > 0
