"""Lagged autocovariances of the monitored signal of a delayed linearised network.

`brainmass.linear.lagged_covariance` against the closed form of the scalar
delayed Ornstein-Uhlenbeck process (Küchler & Mensch 1992, continued by the
method of steps), the exact $e^{At}\\Sigma$ of delay-free networks (scipy),
long simulations (batch-means error bars) and finite differences. Every test
runs in float64 (`jax.enable_x64` inside the test) unless it says otherwise.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import brainmass as bm
from brainmass.linear import default_freqs
from brainmass.linear._lagged import lagged_covariance

W3 = np.array([[0.0, 1.0, 0.5], [0.8, 0.0, 1.0], [0.2, 0.9, 0.0]])
L3 = np.array([[0.0, 6.0, 10.0], [6.0, 0.0, 4.0], [10.0, 4.0, 0.0]])  # mm; ms at 1 m/s


def _f64(value):
    """A float64 array: parameters given as arrays (not Python floats) share compiled code."""
    return jnp.asarray(value, jnp.float64)


def _ou_sim(weights, lam, G, sigma, *, lengths=None, speed=None, monitor=None, noise=None):
    """An Ornstein-Uhlenbeck network: `bm.models.Linear` with linear coupling."""
    weights = np.asarray(weights, float)
    lengths = np.zeros_like(weights) if lengths is None else np.asarray(lengths, float)
    net = bm.Network(
        bm.models.Linear(lam=_f64(lam)),
        bm.Connectome.from_arrays(weights, lengths),
        coupling=bm.coupling.Linear(G=_f64(G)),
        noise=bm.noise.Additive(sigma=_f64(sigma)) if noise is None else noise,
        speed=None if speed is None else _f64(speed),
    )
    return bm.Simulator(net, dt=0.1, duration=100.0, monitor=monitor)


def _boxcar(lags_of, n_lags: int, period_steps: int):
    r"""$P^{-2}\sum_{j,l<P} c(h P + l - j)$ for h < n_lags, from `lags_of(k)` = c(k dt)."""
    P = period_steps
    m = np.arange(-(P - 1), P)
    weights = (P - np.abs(m)) / P**2
    return np.array([np.tensordot(weights, lags_of(h * P + m), axes=1) for h in range(n_lags)])


# ------------------------------------------------------------------ scalar delayed OU


def _km_autocovariance(lam, g, tau, sigma, times):
    r"""$r(t)$ of $dx = (-\lambda x + g\,x(t-\tau))dt + \sigma dW$, $t \ge 0$ (ms).

    On $[0, \tau]$ the closed form of Küchler & Mensch (1992): $r(t) = r_0\cosh wt
    - \frac{\sigma^2}{2w}\sinh wt$, $w = \sqrt{\lambda^2 - g^2}$ (complex when
    $|g| > \lambda$), $r_0 = \sigma^2 (g\sinh w\tau - w) / (2w(g\cosh w\tau -
    \lambda))$; beyond, $r' = -\lambda r + g\,r(t - \tau)$ integrated interval by
    interval (method of steps, DOP853 at rtol 1e-12).
    """
    w = np.sqrt(complex(lam * lam - g * g))
    r0 = sigma**2 * (g * np.sinh(w * tau) - w) / (2 * w * (g * np.cosh(w * tau) - lam))

    def first(t):
        return np.real(r0 * np.cosh(w * t) - sigma**2 / (2 * w) * np.sinh(w * t))

    times = np.abs(np.asarray(times, float))
    pieces = [first]
    while len(pieces) * tau < times.max():
        k, prev = len(pieces), pieces[-1]
        sol = scipy.integrate.solve_ivp(
            lambda t, r, prev=prev: -lam * r + g * prev(t - tau),
            (k * tau, (k + 1) * tau),
            [float(prev(k * tau))],
            method="DOP853",
            rtol=1e-12,
            atol=1e-14 * sigma**2,
            dense_output=True,
        )
        pieces.append(lambda t, sol=sol: sol.sol(t)[0])
    index = np.minimum((times // tau).astype(int), len(pieces) - 1)
    return np.array([float(pieces[i](t)) for i, t in zip(index, times, strict=True)])


@pytest.mark.parametrize(
    "lam, g, tau", [(0.1, 0.05, 4.0), (0.1, -0.3, 4.0), (0.1, -0.09, 20.0), (0.02, -0.015, 30.0)]
)
def test_scalar_delayed_ou_matches_the_closed_form(lam, g, tau):
    with jax.enable_x64(True):
        sigma = 0.02
        one = dict(lengths=np.full((1, 1), tau), speed=1.0)  # a self-loop with delay tau ms
        raw = _ou_sim(np.ones((1, 1)), lam, g, sigma, monitor=bm.monitors.Raw(period=1.0), **one)
        gamma = np.asarray(lagged_covariance(raw, 60))[:, 0, 0]  # lags 0 .. 59 ms
        expected = _km_autocovariance(lam, g, tau, sigma, np.arange(60.0))
        # the default grid (0.25 Hz to 100 Hz, 1 Hz to 500 Hz); measured errors 1e-6 to 5.2e-4
        # of gamma(0), the largest for the strongest delayed self-coupling (g = -3 lam): the
        # f^-3 tail beyond 500 Hz, as for the zero-lag covariance
        np.testing.assert_allclose(gamma, expected, atol=1e-3 * expected[0], rtol=0)

        # 2 ms box-car averages of 20 steps: P^-2 sum (P - |m|) r(h period + m dt)
        avg = bm.monitors.TemporalAverage(period=2.0)
        averaged = _ou_sim(np.ones((1, 1)), lam, g, sigma, monitor=avg, **one)
        gamma = np.asarray(lagged_covariance(averaged, 20))[:, 0, 0]
        r = _km_autocovariance(lam, g, tau, sigma, 0.1 * np.arange(20 * 21))
        expected = _boxcar(lambda k: r[np.abs(k)], 20, 20)
        np.testing.assert_allclose(gamma, expected, atol=1e-3 * expected[0], rtol=0)

        # lags to 630 ms: the default grid refines itself (1409 frequencies, steps <= 0.4 Hz);
        # measured errors as above (at most 8e-5 of gamma(0) beyond lag 0)
        sparse = bm.Simulator(raw.network, dt=0.1, duration=1000.0, monitor=bm.monitors.Raw(10.0))
        gamma = np.asarray(lagged_covariance(sparse, 64))[:, 0, 0]
        expected = _km_autocovariance(lam, g, tau, sigma, 10.0 * np.arange(64))
        np.testing.assert_allclose(gamma, expected, atol=1e-3 * expected[0], rtol=0)


def test_cross_covariances_match_quadrature_of_the_spectrum():
    # two regions, asymmetric weights: gamma(h) is not symmetric, and the sign of the
    # imaginary part of the cross-spectrum decides which way
    with jax.enable_x64(True):
        lam, G, sigma = 0.1, 0.06, 0.02
        W, tau = np.array([[0.0, 1.0], [0.5, 0.0]]), np.array([[0.0, 5.0], [5.0, 0.0]])

        def spectrum(w):  # S = H Q H^dagger, per rad/ms
            H = np.linalg.inv((1j * w + lam) * np.eye(2) - G * W * np.exp(-1j * w * tau))
            return sigma**2 * H @ H.conj().T

        def autocovariance(t, a, b):  # (1/pi) int_0^inf Re(S e^{i w t}) dw, by QAWF
            def quad(part, weight):
                f = lambda w: part(spectrum(w)[a, b])  # noqa: E731
                return scipy.integrate.quad(f, 0, np.inf, weight=weight, wvar=t, limlst=200)[0]

            return (quad(np.real, "cos") - quad(np.imag, "sin")) / math.pi

        lags = (1, 3, 7)
        expected = np.array(
            [[[autocovariance(2.0 * h, a, b) for b in range(2)] for a in range(2)] for h in lags]
        )
        sim = _ou_sim(W, lam, G, sigma, lengths=tau, speed=1.0, monitor=bm.monitors.Raw(2.0))
        gamma = np.asarray(lagged_covariance(sim, 8))
        # measured 7e-5 of the largest entry; the asymmetry is 13 %
        np.testing.assert_allclose(gamma[list(lags)], expected, atol=5e-4 * expected.max())
        assert np.max(np.abs(expected[:, 0, 1] - expected[:, 1, 0])) > 0.1 * expected.max()


# ------------------------------------------------------------------ no delays: exact


def test_delay_free_network_is_exact():
    with jax.enable_x64(True):
        lam, G, sigma, tau_n = 0.2, 0.08, 0.05, 5.0
        A = -lam * np.eye(3) + G * W3  # not symmetric: gamma(h) is not
        sig = scipy.linalg.solve_continuous_lyapunov(A, -(sigma**2) * np.eye(3))

        raw = _ou_sim(W3, lam, G, sigma, monitor=bm.monitors.Raw(period=2.0))
        gamma = np.asarray(lagged_covariance(raw, 12))
        expected = np.array([scipy.linalg.expm(A * 2.0 * h) @ sig for h in range(12)])
        np.testing.assert_allclose(gamma, expected, rtol=1e-9, atol=1e-12 * sig.max())
        assert np.max(np.abs(gamma[3] - gamma[3].T)) > 0.05 * np.abs(gamma[3]).max()

        # 1 ms averages (P = 10) with coloured noise: the augmented state [x, eta]
        noise = bm.noise.OrnsteinUhlenbeck(sigma=_f64(sigma), tau=_f64(tau_n))
        avg = bm.monitors.TemporalAverage(period=1.0)
        colored = _ou_sim(W3, lam, G, sigma, monitor=avg, noise=noise)
        A2 = np.block([[A, np.eye(3)], [np.zeros((3, 3)), -np.eye(3) / tau_n]])
        Q2 = np.diag(np.r_[np.zeros(3), np.full(3, sigma**2 / tau_n**2)])
        sig2 = scipy.linalg.solve_continuous_lyapunov(A2, -Q2)
        E = scipy.linalg.expm(A2 * 0.1)
        powers = [np.eye(6)]
        for _ in range(10 * 9 + 9):
            powers.append(E @ powers[-1])

        def state_lag(k):  # C(k dt), either sign
            return np.array([powers[i] @ sig2 if i >= 0 else sig2 @ powers[-i].T for i in k])

        expected = _boxcar(state_lag, 10, 10)[:, :3, :3]
        gamma = np.asarray(lagged_covariance(colored, 10))
        np.testing.assert_allclose(gamma, expected, rtol=1e-9, atol=1e-12 * expected.max())

        # the delayed method with delays of nanoseconds (coloured noise, averaged): the
        # frequency part, the reference's shift and the root count all vanish
        with pytest.warns(UserWarning, match="below half a time step"):
            tiny = _ou_sim(W3, lam, G, sigma, monitor=avg, noise=noise, lengths=L3, speed=1e6)
        assert tiny.network.has_delays
        close = np.asarray(lagged_covariance(tiny, 10))
        np.testing.assert_allclose(close, expected, rtol=0, atol=1e-6 * expected.max())


# ------------------------------------------------------------------ simulations


def _lagged_sample(x: np.ndarray, n_lags: int, n_batches: int = 40):
    """Sample autocovariances `(n_lags, C, C)` of `x` `(T, C)` and their batch-means errors."""
    x = x - x.mean(axis=0)

    def lags(y):
        n = len(y)
        return np.array([y[h:].T @ y[: n - h] / (n - h) for h in range(n_lags)])

    blocks = np.array([lags(b) for b in np.array_split(x, n_batches)])
    return lags(x), blocks.std(axis=0, ddof=1) / math.sqrt(n_batches)


def _hopf_sim(speed, monitor):
    net = bm.Network(
        bm.models.Hopf(a=_f64(-0.05), omega=_f64(2 * math.pi * 0.02)),  # 20 Hz
        bm.Connectome.from_arrays(W3, L3),
        coupling=bm.coupling.Linear(G=_f64(0.03)),
        # small enough that the cubic saturation is negligible: <r^2> / |a| ~ 2e-3
        noise=bm.noise.Additive(sigma=_f64(0.002)),
        speed=None if speed is None else _f64(speed),
    )
    return bm.Simulator(net, dt=0.1, duration=100.0, monitor=monitor)


def _delayed(model, speed, monitor):
    if model == "ou":
        return _ou_sim(W3, 0.2, 0.08, 0.05, lengths=L3, speed=speed, monitor=monitor)
    return _hopf_sim(speed, monitor)


@pytest.mark.parametrize("model", ["ou", "hopf"])
def test_lagged_covariance_matches_a_long_simulation(model):
    with jax.enable_x64(True):
        every_step = bm.monitors.Raw(period=None)
        sim = bm.Simulator(
            _delayed(model, 1.0, every_step).network, dt=0.1, duration=100_000.0, monitor=every_step
        )
        x = np.asarray(sim.run(jax.random.key(3)).signal)[1000:]  # 100 ms transient
        # Raw(period=1) records every 10th step; TemporalAverage(period=5) means of 50 steps
        for monitor, y in (
            (bm.monitors.Raw(period=1.0), x[9::10]),
            (bm.monitors.TemporalAverage(period=5.0), x.reshape(-1, 50, 3).mean(axis=1)),
        ):
            sample, se = _lagged_sample(y, 6)
            gamma = np.asarray(lagged_covariance(_delayed(model, 1.0, monitor), 6))
            z = (sample - gamma) / se
            # 54 entries, sampling error from 40 batch means: |z| < 4.5 (measured max 1.0 to 3.1)
            assert np.max(np.abs(z)) < 4.5, (model, type(monitor).__name__, z)
        # the delays are what the comparison resolves: without them, far off (measured 25 to 29)
        no_delay = np.asarray(lagged_covariance(_delayed(model, None, monitor), 6))
        assert np.max(np.abs((sample - no_delay) / se)) > 15.0


# ------------------------------------------------------------------ EEG / MEG


def test_lead_field_gives_l_gamma_lt():
    lead = np.array([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0], [0.0, 0.4, 0.9], [-0.7, 0.1, 0.5]])

    def sim(dtype, monitor):
        net = bm.Network(
            bm.models.Linear(lam=jnp.asarray(0.2, dtype)),
            bm.Connectome.from_arrays(W3, L3),
            coupling=bm.coupling.Linear(G=jnp.asarray(0.08, dtype)),
            noise=bm.noise.Additive(sigma=jnp.asarray(0.05, dtype)),
            speed=jnp.asarray(1.0, dtype),
        )
        return bm.Simulator(net, dt=0.1, duration=100.0, monitor=monitor)

    eeg = bm.monitors.EEG(lead, period=2.0)  # average reference, stored in float32
    referenced = np.asarray(eeg.leadfield, np.float64)
    np.testing.assert_allclose(referenced, lead - lead.mean(axis=0), rtol=1e-6)
    with jax.enable_x64(True):
        sensors = np.asarray(lagged_covariance(sim(jnp.float64, eeg), 8))
        average = bm.monitors.TemporalAverage(period=2.0)
        regions = np.asarray(lagged_covariance(sim(jnp.float64, average), 8))
    expected = np.einsum("sa,hab,tb->hst", referenced, regions, referenced)
    assert sensors.shape == (8, 4, 4) and sensors.dtype == np.float64
    np.testing.assert_allclose(sensors, expected, rtol=1e-6, atol=1e-12 * expected.max())
    # average reference: the channels sum to zero (up to the float32 lead field)
    np.testing.assert_allclose(sensors.sum(axis=1), 0.0, atol=1e-6 * expected.max())
    # float32: the same within its rounding (measured 3e-7 of the largest entry)
    single = np.asarray(lagged_covariance(sim(jnp.float32, eeg), 8))
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, expected, rtol=0, atol=1e-5 * expected.max())


# ------------------------------------------------------------------ gradients, flags


def test_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        base = _ou_sim(W3, 0.2, 0.08, 0.05, lengths=L3, speed=1.0)
        grid = default_freqs(0.5, 200.0, split_hz=200.0)
        weights = np.linspace(-1.0, 1.0, 8 * 9).reshape(8, 3, 3)

        def loss(theta):
            g, speed = theta
            sim = base.with_params({"coupling.G": g})
            # with_params refuses a traced speed (the simulation's delay buffer is sized from
            # it); the linearised model needs no buffer
            sim = eqx.tree_at(lambda s: s.network.speed, sim, speed)
            return jnp.sum(weights * lagged_covariance(sim, 8, freqs_hz=grid)) / 0.05**2

        value_and_grad = jax.jit(jax.value_and_grad(loss))
        theta = jnp.asarray([0.08, 1.0], jnp.float64)
        grad = np.asarray(value_and_grad(theta)[1])
        for k in range(2):
            h = 1e-5 * theta[k] * np.eye(2)[k]
            fd = (value_and_grad(theta + h)[0] - value_and_grad(theta - h)[0]) / (2 * h[k])
            assert abs(grad[k]) > 1e-3, grad
            np.testing.assert_allclose(grad[k], fd, rtol=1e-6)

        # vmap over the coupling equals a loop
        thetas = jnp.asarray([[0.05, 1.0], [0.08, 1.0]], jnp.float64)
        batched = jax.vmap(loss)(thetas)
        loop = [value_and_grad(theta)[0] for theta in thetas]
        np.testing.assert_allclose(batched, loop, rtol=1e-10)


def test_unstable_is_nan_under_jit():
    with jax.enable_x64(True):
        one = dict(lengths=np.full((1, 1), 10.0), speed=1.0)
        sim = _ou_sim(np.ones((1, 1)), 0.1, -0.09, 0.02, **one)
        grid = default_freqs(0.5, 500.0, split_hz=500.0)
        f = jax.jit(
            lambda g: lagged_covariance(sim.with_params({"coupling.G": g}), 4, freqs_hz=grid)
        )
        assert np.all(np.isfinite(f(-0.09)))
        # g = 0.15 > lambda: a real unstable root; g = -0.3 with a 10 ms delay: a complex
        # pair crosses the imaginary axis at 6.76 ms (stable without delay)
        assert np.all(np.isnan(f(0.15))) and np.all(np.isnan(f(-0.3)))
        # without delays: the Lyapunov equation of an unstable J0 + K has no solution
        free = _ou_sim(W3, 0.1, 0.2, 0.02, monitor=bm.monitors.Raw(period=2.0))
        assert np.all(np.isnan(np.asarray(lagged_covariance(free, 12))))


def test_refusals_are_clear_value_errors():
    with jax.enable_x64(True):
        sim = _ou_sim(W3, 0.2, 0.08, 0.05, lengths=L3, speed=1.0)
        for speed in (1.0, None):
            bold = bm.Simulator(
                _delayed("ou", speed, None).network,
                dt=0.1,
                duration=4000.0,
                monitor=bm.monitors.BOLD(period=1000.0),
            )
            why = "frequency grid far finer" if speed else "exact state-space model"
            with pytest.raises(ValueError, match=f"BOLD.*{why}.*state_space"):
                lagged_covariance(bold, 4)
        # a 1 Hz grid repeats every 1000 ms: lags to 300 ms need at least 4 x 300 ms
        coarse = np.arange(0.0, 500.5, 1.0)
        with pytest.raises(ValueError, match=r"freqs_hz.*1000 ms.*n_lags=301.*0\.8333 Hz"):
            lagged_covariance(sim, 301, freqs_hz=coarse)
        accepted = jax.eval_shape(lambda: lagged_covariance(sim, 251, freqs_hz=coarse))
        assert accepted.shape == (251, 3, 3)
        for bad in (0, 2.0, True):
            with pytest.raises(ValueError, match="n_lags"):
                lagged_covariance(sim, bad)
        with pytest.raises(ValueError, match="sim"):
            lagged_covariance(sim.network, 4)
