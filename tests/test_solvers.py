"""Solvers against exact solutions: convergence orders, and the statistics of the SDE schemes.

Deterministic solvers: the error at the sample times, regressed on dt in
log-log, has the slope of the solver's order, against the closed-form solution
of the uncoupled Hopf oscillator and, for coupled regions, against a diffrax
Tsit5 solve at tight tolerance of the equations written out here.

Stochastic solvers: moments of Ornstein-Uhlenbeck and geometric-Brownian-like
processes, compared with their closed forms and with the exact stationary
moments of each discrete scheme; tolerances are a stated number of standard
errors, computed from the exact autocorrelation of the process (Bartlett's
formula), i.e. from the effective number of independent samples.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla

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


# ----------------------------------------------------------------------------- 3. orders

# One network holds both problems: regions 0-1 are uncoupled Hopf oscillators
# (closed-form solution), regions 2-4 are coupled among themselves.
_A = np.array([1.0, -0.5, 0.5, -0.3, 0.8])
_OMEGA = np.array([2.0, 3.0, 1.5, 2.5, 1.0])
_X0 = np.array([0.2, 0.5, 0.3, -0.2, 0.5])
_Y0 = np.array([0.0, 0.0, 0.1, 0.4, -0.3])
_W = np.zeros((5, 5))
_W[2:, 2:] = [[0.0, 1.0, 0.5], [0.7, 0.0, 0.2], [0.3, 0.9, 0.0]]
_G = 0.8
_T, _PERIOD = 4.0, 0.1
_UNCOUPLED, _COUPLED = slice(0, 2), slice(2, 5)


def _hopf_exact(t, a, omega, r0):
    """Uncoupled Hopf normal form from (r0, 0): $r(t) = \\sqrt a / \\sqrt{1 + (a/r_0^2 - 1)
    e^{-2at}}$, $\\theta(t) = \\omega t$ (valid for either sign of a). Returns x(t)."""
    r = np.sqrt(a / (1.0 + (a / r0**2 - 1.0) * np.exp(-2.0 * a * t)))
    return r * np.cos(omega * t)


def _hopf_field(t, state, args):
    """The coupled Hopf network, written out independently of brainmass."""
    x, y = state
    r2 = x * x + y * y
    c = _G * (jnp.asarray(_W) @ x)
    return jnp.stack([(_A - r2) * x - _OMEGA * y + c, (_A - r2) * y + _OMEGA * x])


def _hopf_sim(dt, solver):
    net = bm.Network(
        bm.models.Hopf(a=_A, omega=_OMEGA),
        bm.Connectome.from_arrays(_W, np.zeros_like(_W)),
        bm.coupling.Linear(G=_G),
    )
    return bm.Simulator(
        net,
        dt=dt,
        duration=_T,
        monitor=bm.monitors.Raw(period=_PERIOD),
        init={"x": _X0, "y": _Y0},
        solver=solver,
        remat=False,  # cheaper to compile; the forward values are the same
    )


@pytest.fixture(scope="module")
def hopf_reference():
    """Sample times and x at them: closed form (uncoupled) and diffrax Tsit5 (coupled)."""
    with _enable_x64(True):
        times = _PERIOD * np.arange(1, round(_T / _PERIOD) + 1)
        exact = _hopf_exact(times[:, None], _A, _OMEGA, _X0)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_hopf_field),
            diffrax.Tsit5(),
            t0=0.0,
            t1=_T,
            dt0=1e-3,
            y0=jnp.stack([jnp.asarray(_X0), jnp.asarray(_Y0)]),
            saveat=diffrax.SaveAt(ts=jnp.asarray(times)),
            stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-14),
            max_steps=100_000,
        )
        coupled = np.asarray(sol.ys[:, 0, :])
        # the uncoupled rows of the diffrax solve agree with the closed form
        np.testing.assert_allclose(coupled[:, _UNCOUPLED], exact[:, _UNCOUPLED], atol=1e-10)
        return times, exact[:, _UNCOUPLED], coupled[:, _COUPLED]


def test_diffrax_solver_matches_reference(x64, hopf_reference):
    times, exact, coupled = hopf_reference
    sim = _hopf_sim(0.01, bm.solvers.Diffrax(rtol=1e-10, atol=1e-12))
    res = sim.run()
    np.testing.assert_allclose(np.asarray(res.time), times, rtol=1e-12)
    signal = np.asarray(res.signal)
    np.testing.assert_allclose(signal[:, _UNCOUPLED], exact, atol=1e-8)
    np.testing.assert_allclose(signal[:, _COUPLED], coupled, atol=1e-8)


@pytest.mark.parametrize(
    "solver",
    [bm.solvers.Euler(), bm.solvers.Heun(), bm.solvers.RK4()],
    ids=lambda s: type(s).__name__,
)
def test_convergence_order(x64, hopf_reference, solver):
    times, exact, coupled = hopf_reference
    dts = np.array([0.1, 0.05, 0.025, 0.0125])
    err_uncoupled, err_coupled = [], []
    for dt in dts:
        res = _hopf_sim(dt, solver).run()
        np.testing.assert_allclose(np.asarray(res.time), times, rtol=1e-12)
        signal = np.asarray(res.signal)
        err_uncoupled.append(np.abs(signal[:, _UNCOUPLED] - exact).max())
        err_coupled.append(np.abs(signal[:, _COUPLED] - coupled).max())
    for errors in (err_uncoupled, err_coupled):
        errors = np.array(errors)
        assert errors[-1] > 1e-9  # well above the reference's own error (~1e-11)
        slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
        assert abs(slope - solver.order) < 0.3, (slope, errors)


@pytest.mark.parametrize(
    ("stochastic", "deterministic"),
    [
        (bm.solvers.EulerMaruyama(), bm.solvers.Euler()),
        (bm.solvers.StochasticHeun(), bm.solvers.Heun()),
    ],
    ids=["EulerMaruyama", "StochasticHeun"],
)
def test_stochastic_solvers_without_noise_are_their_deterministic_schemes(
    x64, stochastic, deterministic
):
    # On a noise-free network the SDE schemes reduce to Euler and Heun (orders 1, 2).
    assert stochastic.order == deterministic.order
    a = np.asarray(_hopf_sim(0.1, stochastic).run().signal)
    b = np.asarray(_hopf_sim(0.1, deterministic).run().signal)
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- 4. SDEs


def _paths(sim, n_paths, seed):
    """`n_paths` independent runs of a one-region simulator, `(n_samples, n_paths)`."""
    f = sim.function([])
    keys = jax.random.split(jax.random.key(seed), n_paths)
    out = jax.vmap(lambda k: f({}, k))(keys)  # (n_paths, n_samples, 1)
    return np.asarray(out[:, :, 0], dtype=np.float64).T


def _variance_se(var, rho_squared_sum, n_samples):
    """Standard error of the sample second moment of a zero-mean Gaussian series.

    `rho_squared_sum` is $\\sum_{k=-\\infty}^{\\infty} \\rho(k)^2$ over the sampling
    lags (1 for independent samples); Bartlett: $\\operatorname{Var} \\hat s^2 =
    2 v^2 \\sum_k \\rho(k)^2 / n$, i.e. $n / \\sum_k \\rho(k)^2$ effective samples.
    """
    return var * np.sqrt(2.0 * rho_squared_sum / n_samples)


def _one_region(noise, lam, dt, duration, period, solver, init=0.0):
    net = bm.Network(
        bm.models.Linear(lam=lam),
        bm.Connectome.from_arrays(np.zeros((1, 1)), np.zeros((1, 1))),
        bm.coupling.Linear(G=0.0),
        noise=noise,
    )
    return bm.Simulator(
        net,
        dt=dt,
        duration=duration,
        monitor=bm.monitors.Raw(period=period),
        init={"x": init},
        solver=solver,
    )


@pytest.mark.parametrize("dt", [0.05, 0.2, 0.5])
@pytest.mark.parametrize(
    "solver",
    [bm.solvers.EulerMaruyama(), bm.solvers.StochasticHeun()],
    ids=lambda s: type(s).__name__,
)
def test_ou_stationary_variance_is_independent_of_dt(solver, dt):
    # dx = -lam x dt + sigma dW: stationary variance sigma^2 / (2 lam) for any dt.
    lam, sigma = 0.1, 0.1
    var = sigma**2 / (2 * lam)
    # Each scheme is a linear recursion x' = m x + b xi, whose stationary variance
    # b^2 / (1 - m^2) is exact for the discrete process (h = lam dt):
    #   Euler-Maruyama: m = 1 - h, b = sigma sqrt(dt)
    #     -> var_EM = sigma^2 dt / (1 - (1 - h)^2) = var / (1 - h / 2)
    #   stochastic Heun: m = 1 - h + h^2 / 2, b = sigma sqrt(dt) (1 - h / 2)
    #     -> var (1 + O(h^2)).
    h = lam * dt
    if isinstance(solver, bm.solvers.EulerMaruyama):
        m, b = 1 - h, sigma * np.sqrt(dt)
    else:
        m, b = 1 - h + h**2 / 2, sigma * np.sqrt(dt) * (1 - h / 2)
    var_discrete = b**2 / (1 - m**2)

    period, burn, duration, n_paths = 1.0, 100.0, 2100.0, 1024
    sim = _one_region(bm.noise.Additive(sigma=sigma), lam, dt, duration, period, solver)
    x = _paths(sim, n_paths, seed=11)[int(burn / period) :]  # 10 correlation times dropped
    emp = np.mean(x**2)
    # 2e6 samples 1 ms apart with correlation rho(k) = exp(-lam k period):
    # sum_k rho^2 = (1 + r) / (1 - r) = 10 with r = exp(-2 lam period), so
    # n_eff = 2e5 and the standard error is 0.3 % of var.
    r = np.exp(-2 * lam * period)
    se = _variance_se(var, (1 + r) / (1 - r), x.size)
    assert abs(emp - var_discrete) < 4.5 * se, (emp, var_discrete, se)
    bias = var_discrete - var
    if abs(bias) < se:
        # Heun at every dt, EM at dt = 0.05: the closed form itself, independent of dt
        assert abs(emp - var) < 4.5 * se, (emp, var, se)
    elif abs(bias) > 7 * se:
        # EM at dt = 0.5: its bias h / 2 (2.5 %, ~8 standard errors) is resolved
        assert abs(emp - var) > 4.5 * se, (emp, var, se)


@pytest.mark.parametrize(
    "solver",
    [bm.solvers.EulerMaruyama(), bm.solvers.StochasticHeun()],
    ids=lambda s: type(s).__name__,
)
def test_multiplicative_noise_mean_follows_ito_or_stratonovich(solver):
    # dx = -lam x dt + sigma x dW from x0: E[x(t)] = x0 exp(-lam t) (Ito, Euler-Maruyama)
    # or x0 exp((-lam + sigma^2 / 2) t) (Stratonovich, stochastic Heun), and
    # E[x(t)^2] = x0^2 exp((-2 lam + sigma^2) t) (Ito) or x0^2 exp((-2 lam + 2 sigma^2) t).
    lam, sigma, x0, dt, n_paths = 0.1, 0.3, 1.0, 0.01, 4000
    sim = _one_region(bm.noise.Multiplicative(sigma=sigma), lam, dt, 5.0, 0.5, solver, init=x0)
    x = _paths(sim, n_paths, seed=12)
    t = np.asarray(sim.time)
    ito = x0 * np.exp(-lam * t)
    strat = x0 * np.exp((-lam + sigma**2 / 2) * t)
    if isinstance(solver, bm.solvers.EulerMaruyama):
        mean, other = ito, strat
        second = x0**2 * np.exp((-2 * lam + sigma**2) * t)
    else:
        mean, other = strat, ito
        second = x0**2 * np.exp((-2 * lam + 2 * sigma**2) * t)
    se = np.sqrt((second - mean**2) / n_paths)  # independent paths
    emp = x.mean(axis=1)
    # 10 correlated sample times: 4.5 standard errors each
    assert np.all(np.abs(emp - mean) < 4.5 * se), (emp, mean, se)
    # the other calculus is rejected at the last time (25 % apart, 15-20 standard errors)
    assert np.abs(emp[-1] - other[-1]) > 8 * se[-1]


@pytest.mark.parametrize(
    "solver",
    [bm.solvers.EulerMaruyama(), bm.solvers.StochasticHeun()],
    ids=lambda s: type(s).__name__,
)
def test_coloured_noise_drives_closed_form_variance(solver):
    # dx = (-lam x + eta) dt, tau d eta = -eta dt + sigma dW: var eta = sigma^2 / (2 tau),
    # var x = sigma^2 / (2 tau) / (lam (lam + 1 / tau)).
    lam, sigma, tau, dt = 0.1, 0.1, 5.0, 0.1
    beta = 1.0 / tau
    var = sigma**2 / (2 * tau) / (lam * (lam + beta))
    # The exact stationary variance of each discrete scheme, (x, eta)' = M (x, eta) + B xi,
    # eta advanced exactly (decay d, innovation c), x by the solver with eta at both ends.
    h, d = lam * dt, np.exp(-dt / tau)
    c = sigma / np.sqrt(2 * tau) * np.sqrt(1 - d**2)
    if isinstance(solver, bm.solvers.EulerMaruyama):
        M = np.array([[1 - h, dt], [0.0, d]])
        B = np.array([[0.0], [c]])
    else:
        M = np.array([[1 - h + h**2 / 2, dt / 2 * (1 - h + d)], [0.0, d]])
        B = np.array([[dt / 2 * c], [c]])
    var_discrete = sla.solve_discrete_lyapunov(M, B @ B.T)[0, 0]
    assert abs(var_discrete / var - 1) < 0.01  # O(lam dt) at most

    period, burn, duration, n_paths = 1.0, 100.0, 2100.0, 512
    noise = bm.noise.OrnsteinUhlenbeck(sigma=sigma, tau=tau)
    sim = _one_region(noise, lam, dt, duration, period, solver)
    x = _paths(sim, n_paths, seed=13)[int(burn / period) :]
    emp = np.mean(x**2)
    # autocorrelation of x: rho(t) = (beta e^{-lam t} - lam e^{-beta t}) / (beta - lam)
    k = np.arange(-2000, 2001) * period
    rho = (beta * np.exp(-lam * np.abs(k)) - lam * np.exp(-beta * np.abs(k))) / (beta - lam)
    # 1e6 samples, sum_k rho^2 = 18: n_eff = 5.6e4, a standard error of 0.6 % of var
    se = _variance_se(var, np.sum(rho**2), x.size)
    assert abs(emp - var_discrete) < 4.5 * se, (emp, var_discrete, se)
    assert abs(emp - var) < 4.5 * se + abs(var_discrete - var), (emp, var, se)


def test_diffrax_stiff_solver_and_adjoints_agree():
    """Kvaerno5 (stiff, implicit) matches Tsit5; BacksolveAdjoint matches the default adjoint."""
    import diffrax

    with jax.enable_x64(True):
        conn = bm.Connectome.synthetic(4, seed=3)
        net = bm.Network(bm.models.Linear(lam=0.2), conn, coupling=bm.coupling.Linear(G=0.1))
        init = {"x": jnp.linspace(-1.0, 1.0, 4)}

        def sim_with(solver):
            return bm.Simulator(net, dt=0.05, duration=20.0, init=init, solver=solver)

        explicit = sim_with(bm.solvers.Diffrax(rtol=1e-9, atol=1e-11)).run().signal
        stiff = sim_with(bm.solvers.Diffrax(diffrax.Kvaerno5(), rtol=1e-9, atol=1e-11)).run().signal
        np.testing.assert_allclose(stiff, explicit, rtol=1e-6, atol=1e-9)

        def grad_with(adjoint):
            sim = sim_with(bm.solvers.Diffrax(rtol=1e-9, atol=1e-11, adjoint=adjoint))
            f = sim.function(["coupling.G", "model.lam"])
            return jax.grad(lambda th: jnp.sum(f(th) ** 2))({"coupling.G": 0.1, "model.lam": 0.2})

        default = grad_with(None)
        backsolve = grad_with(diffrax.BacksolveAdjoint())
        for p in default:
            np.testing.assert_allclose(backsolve[p], default[p], rtol=1e-5)
