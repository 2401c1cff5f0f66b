"""The linearised (fixed-point) spectral model of `brainmass.linear`.

Checked against closed forms (Lyapunov equation, Hopf normal form, the scalar
delayed Ornstein-Uhlenbeck process by quadrature), against brainmass
simulations (sample covariance, Welch spectra) and against finite differences.
Every test runs in float64 (`jax.enable_x64` inside the test).
"""

from __future__ import annotations

import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import brainmass as bm
from brainmass.linear import (
    covariance,
    cross_spectrum,
    default_freqs,
    fc,
    fixed_point,
    linear_summary,
    linearize,
    stability,
    transfer_function,
)

W4 = np.array(
    [
        [0.0, 1.0, 0.5, 0.0],
        [0.8, 0.0, 1.0, 0.3],
        [0.2, 0.9, 0.0, 1.0],
        [1.0, 0.0, 0.6, 0.0],
    ]
)
# tract lengths in mm; at 1 m/s these are delays of 4 to 14 ms, whole multiples of dt
L4 = np.array(
    [
        [0.0, 6.0, 10.0, 14.0],
        [6.0, 0.0, 4.0, 8.0],
        [10.0, 4.0, 0.0, 12.0],
        [14.0, 8.0, 12.0, 0.0],
    ]
)


def _f64(value):
    """A float64 array: parameters given as arrays (not Python floats) share compiled code."""
    return jnp.asarray(value, jnp.float64)


def _ou_sim(weights, lam, G, sigma, *, lengths=None, speed=None, monitor=None, duration=10.0):
    """An Ornstein-Uhlenbeck network: `bm.models.Linear` with linear coupling."""
    weights = np.asarray(weights, float)
    if lengths is None:
        lengths = np.zeros_like(weights)
    conn = bm.Connectome.from_arrays(weights, np.asarray(lengths, float))
    net = bm.Network(
        bm.models.Linear(lam=_f64(lam)),
        conn,
        coupling=bm.coupling.Linear(G=_f64(G)),
        noise=bm.noise.Additive(sigma=_f64(sigma)),
        speed=None if speed is None else _f64(speed),
    )
    return bm.Simulator(net, dt=0.1, duration=duration, monitor=monitor)


def _batch_mean_se(x: np.ndarray, n_batches: int = 40) -> np.ndarray:
    """Standard error of the sample covariance of `x` (n_times, C) from batch means."""
    blocks = np.array_split(x - x.mean(axis=0), n_batches)
    covs = np.array([b.T @ b / len(b) for b in blocks])
    return covs.std(axis=0, ddof=1) / math.sqrt(n_batches)


# ------------------------------------------------------------------ no delays: Lyapunov


def test_ou_covariance_is_the_lyapunov_solution():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        n, lam, G, sigma = 8, 0.1, 0.02, 0.02
        W = rng.uniform(0.0, 1.0, (n, n))
        np.fill_diagonal(W, 0.0)
        sim = _ou_sim(W, lam, G, sigma)
        A = -lam * np.eye(n) + G * W
        expected = scipy.linalg.solve_continuous_lyapunov(A, -(sigma**2) * np.eye(n))

        summary = linear_summary(sim)
        cov = summary.covariance
        assert cov.shape == (n, n) and cov.dtype == jnp.float64
        np.testing.assert_allclose(cov, expected, rtol=1e-5)
        d = np.sqrt(np.diag(expected))
        np.testing.assert_allclose(summary.fc, expected / np.outer(d, d), rtol=1e-5)
        assert bool(summary.ok)

        lin = summary.linearization
        np.testing.assert_allclose(lin.J0, -lam * np.eye(n), atol=1e-15)
        np.testing.assert_allclose(lin.K, G * W, atol=1e-15)
        np.testing.assert_allclose(lin.tau, 0.0)
        np.testing.assert_allclose(lin.sigma2, sigma**2)
        assert lin.observed == tuple(range(n)) and lin.obs.shape == (n, n)
        assert float(lin.residual) == 0.0

        st = summary.stability
        assert bool(st.stable) and float(st.n_unstable) == 0.0
        np.testing.assert_allclose(st.abscissa, np.max(np.linalg.eigvals(A).real), rtol=1e-10)

        # the frequency-domain model integrates to the same covariance (units: per Hz)
        f = np.arange(0.0, 5000.0, 0.5)
        spec = np.real(np.asarray(cross_spectrum(sim, f)))
        tail = sigma**2 / (math.pi * 2 * math.pi * f[-1] / 1000.0)  # leading 1/w^2 tail
        integral = np.diag(np.trapezoid(spec, f, axis=0)) + tail
        np.testing.assert_allclose(integral, np.diag(expected), rtol=1e-6)


def test_lyapunov_for_136_states_is_fast_and_exact():
    # 68 Hopf regions x 2 variables with diffusive coupling (J0 holds -G s_i)
    with jax.enable_x64(True):
        conn = bm.Connectome.synthetic(n_regions=68, seed=0).normalized("max")
        net = bm.Network(
            bm.models.Hopf(a=-0.02),
            conn,
            coupling=bm.coupling.Diffusive(G=0.2),
            noise=bm.noise.Additive(sigma=0.01),
        )
        sim = bm.Simulator(net, dt=0.1, duration=10.0)
        f = jax.jit(lambda g: covariance(sim.with_params({"coupling.G": g}), observed_only=False))
        f(0.2).block_until_ready()
        start = time.perf_counter()
        cov = f(0.3).block_until_ready()
        elapsed = time.perf_counter() - start
        assert cov.shape == (136, 136)
        assert elapsed < 1.0, elapsed
        # J0 + K in closed form: per region [[a - G s_i, -omega], [omega, a]], plus G W on x
        W, a, omega, G = np.asarray(conn.weights), -0.02, 2 * math.pi * 0.010, 0.3
        n = W.shape[0]
        A = np.block(
            [
                [np.diag(a - G * W.sum(axis=1)) + G * W, -omega * np.eye(n)],
                [omega * np.eye(n), a * np.eye(n)],
            ]
        )
        expected = scipy.linalg.solve_continuous_lyapunov(A, -(0.01**2) * np.eye(2 * n))
        np.testing.assert_allclose(cov, expected, rtol=1e-6, atol=1e-12 * np.abs(expected).max())


def test_hopf_below_the_bifurcation():
    with jax.enable_x64(True):
        a, omega, sigma = -0.02, 2 * math.pi * 0.010, 0.01  # 1/ms, rad/ms (10 Hz)
        conn = bm.Connectome.from_arrays(np.zeros((3, 3)), np.zeros((3, 3)))
        net = bm.Network(
            bm.models.Hopf(a=a, omega=omega),
            conn,
            coupling=bm.coupling.Linear(G=0.0),
            noise=bm.noise.Additive(sigma=sigma),
        )
        sim = bm.Simulator(net, dt=0.1, duration=10.0)
        summary = linear_summary(sim)
        np.testing.assert_allclose(summary.state, 0.0, atol=1e-6)  # from init (0.1, 0)
        cov = summary.covariance
        np.testing.assert_allclose(np.diag(cov), sigma**2 / (2 * abs(a)), rtol=1e-8)
        np.testing.assert_allclose(cov - np.diag(np.diag(cov)), 0.0, atol=1e-15)

        f = np.arange(0.0, 30.0, 0.01)
        spec = np.asarray(cross_spectrum(sim, f))
        assert spec.shape == (f.size, 3, 3) and np.iscomplexobj(spec)
        w = 2 * math.pi * f / 1000.0
        closed = sigma**2 / 2 * (1 / (a**2 + (w - omega) ** 2) + 1 / (a**2 + (w + omega) ** 2))
        np.testing.assert_allclose(spec[:, 0, 0].real, 2 / 1000 * closed, rtol=1e-8)
        peak = f[np.argmax(spec[:, 1, 1].real)]
        assert abs(peak - omega / (2 * math.pi) * 1000.0) < 0.25, peak

        H = transfer_function(summary.linearization, f[:5])
        assert H.shape == (5, 6, 6)
        m = 1j * w[1] * np.eye(2) - np.array([[a, -omega], [omega, a]])
        # variable-major order: region 0's (x, y) are components 0 and 3
        np.testing.assert_allclose(np.asarray(H)[1][np.ix_([0, 3], [0, 3])], np.linalg.inv(m))


# ------------------------------------------------------------------ delays


def _delayed_scalar_sim(lam, g, tau, sigma=0.02):
    # one region with a self-loop of weight 1 and tract length tau mm at 1 m/s: delay tau ms
    return _ou_sim(np.ones((1, 1)), lam, g, sigma, lengths=np.full((1, 1), tau), speed=1.0)


def _delayed_scalar_variance(lam, g, tau, sigma=0.02):
    r"""$\frac{1}{\pi}\int_0^\infty \sigma^2 / |i w + \lambda - g e^{-i w\tau}|^2 dw$."""

    def integrand(w):
        return sigma**2 / abs(1j * w + lam - g * np.exp(-1j * w * tau)) ** 2 / math.pi

    edges = np.arange(0.0, 1000.0 + 1e-9, 0.5)
    pieces = zip(edges[:-1], edges[1:], strict=True)
    total = sum(scipy.integrate.quad(integrand, lo, hi)[0] for lo, hi in pieces)
    return total + sigma**2 / (math.pi * edges[-1])  # the 1/w^2 tail beyond 1000 rad/ms


@pytest.mark.parametrize(
    "lam, g, tau", [(0.1, 0.05, 4.0), (0.1, -0.3, 4.0), (0.1, -0.09, 20.0), (0.02, -0.015, 30.0)]
)
def test_delayed_scalar_ou_variance_matches_quadrature(lam, g, tau):
    with jax.enable_x64(True):
        sim = _delayed_scalar_sim(lam, g, tau)
        summary = linear_summary(sim)
        expected = _delayed_scalar_variance(lam, g, tau)
        # default grid: 0.25 Hz to 100 Hz, 1 Hz to 500 Hz; truncation error ~ f_max^-3
        np.testing.assert_allclose(summary.covariance[0, 0], expected, rtol=1e-3)
        assert bool(summary.ok) and bool(summary.stability.stable)


def test_delayed_stability_counts_unstable_roots():
    with jax.enable_x64(True):
        # x' = -0.1 x + g x(t - tau): g > lam gives one real unstable root at any delay
        st = stability(_delayed_scalar_sim(0.1, 0.15, 4.0))
        assert float(st.n_unstable) == 1.0 and not bool(st.stable)
        # g = -0.3: stable without delay (abscissa -0.4) and for tau < 6.76 ms; beyond,
        # a complex pair crosses the imaginary axis
        st = stability(_delayed_scalar_sim(0.1, -0.3, 4.0))
        assert float(st.n_unstable) == 0.0 and bool(st.stable)
        summary = linear_summary(_delayed_scalar_sim(0.1, -0.3, 10.0))
        np.testing.assert_allclose(summary.stability.abscissa, -0.4)
        assert float(summary.stability.n_unstable) == 2.0
        assert not bool(summary.stability.stable) and not bool(summary.ok)


def test_delayed_covariance_tends_to_lyapunov_as_delays_vanish():
    with jax.enable_x64(True):
        lam, G, sigma = 0.2, 0.08, 0.05
        A = -lam * np.eye(4) + G * W4
        lyap = scipy.linalg.solve_continuous_lyapunov(A, -(sigma**2) * np.eye(4))
        errors = []
        for speed in (1.0, 1e2, 1e4, 1e6):  # delays of 4-14 ms down to 4-14 ns
            cov = np.asarray(covariance(_ou_sim(W4, lam, G, sigma, lengths=L4, speed=speed)))
            errors.append(np.max(np.abs(cov - lyap)) / np.max(np.abs(lyap)))
        assert errors[0] > 0.3  # delays of several ms matter here
        assert errors[1] < 1e-2 and errors[2] < 1e-4 and errors[3] < 1e-6, errors
        assert errors == sorted(errors, reverse=True)


def test_delayed_covariance_matches_a_long_simulation():
    with jax.enable_x64(True):
        lam, G, sigma = 0.2, 0.08, 0.05
        sim = _ou_sim(
            W4,
            lam,
            G,
            sigma,
            lengths=L4,
            speed=1.0,
            monitor=bm.monitors.Raw(period=1.0, transient=200.0),
            duration=100_000.0,
        )
        x = np.asarray(sim.run(jax.random.key(1)).signal)
        sample = np.cov(x.T)
        se = _batch_mean_se(x)
        model = np.asarray(covariance(sim))
        z = (sample - model) / se
        assert np.max(np.abs(z)) < 4.0, z  # within sampling error (batch means, 40 blocks)
        np.testing.assert_allclose(np.diag(sample), np.diag(model), rtol=0.05)
        # the delay-free model is far off: the delays are what the test resolves
        A = -lam * np.eye(4) + G * W4
        no_delay = scipy.linalg.solve_continuous_lyapunov(A, -(sigma**2) * np.eye(4))
        assert np.max(np.abs((sample - no_delay) / se)) > 20.0


# ------------------------------------------------------------------ spectra vs Welch


def test_spectrum_matches_welch_psd_of_a_simulation():
    with jax.enable_x64(True):
        W = W4[:3, :3]
        # one run recorded at every step (dt = 0.1 ms): its samples every 1 ms are what
        # Raw(period=1) records, its means over 50 steps what TemporalAverage(period=5) does
        steps = _ou_sim(
            W, 0.1, 0.04, 0.05, monitor=bm.monitors.Raw(period=None), duration=100_000.0
        )
        every_step = np.asarray(steps.run(jax.random.key(0)).signal)[1000:]  # 100 ms transient
        raw = _ou_sim(W, 0.1, 0.04, 0.05, monitor=bm.monitors.Raw(period=1.0))
        x = every_step[9::10]
        f, p = bm.analysis.psd(x, period=1.0, nperseg=1000)
        f, p = np.asarray(f), np.asarray(p)
        band = (f >= 2.0) & (f <= 60.0)  # below the aliasing of the 500 Hz Nyquist frequency
        model = np.real(np.diagonal(np.asarray(cross_spectrum(raw, f[band])), axis1=1, axis2=2))
        ratio = (p[band] / model).mean(axis=0)
        np.testing.assert_allclose(ratio, 1.0, atol=0.05)

        # a 5 ms box-car average: its |sinc|^2 response, and its covariance
        avg = _ou_sim(W, 0.1, 0.04, 0.05, monitor=bm.monitors.TemporalAverage(period=5.0))
        y = every_step.reshape(-1, 50, 3).mean(axis=1)
        f, p = bm.analysis.psd(y, period=5.0, nperseg=200)
        f, p = np.asarray(f), np.asarray(p)
        band = (f >= 2.0) & (f <= 60.0)
        high = (f[band] >= 40.0)[:, None]  # where the 5 ms average removes 12 to 26 %
        ratios = []
        for filtered in (True, False):
            spec = cross_spectrum(avg, f[band], monitor_filter=filtered)
            model = np.real(np.diagonal(np.asarray(spec), axis1=1, axis2=2))
            ratio = p[band] / model
            ratios.append((ratio.mean(axis=0), np.sum(ratio * high, axis=0) / np.sum(high)))
        np.testing.assert_allclose(ratios[0][0], 1.0, atol=0.05)
        np.testing.assert_allclose(ratios[0][1], 1.0, atol=0.07)
        assert np.all(ratios[1][1] < 0.9)  # without the filter the model misses this loss
        cov_avg = np.asarray(covariance(avg, monitor_filter=True))
        z = (np.cov(y.T) - cov_avg) / _batch_mean_se(y)
        assert np.max(np.abs(z)) < 4.0, z
        assert np.all(np.diag(cov_avg) < 0.95 * np.var(x, axis=0))  # averaging loses variance
        bold = bm.Simulator(avg.network, dt=0.1, duration=2000.0, monitor=bm.monitors.BOLD(1000.0))
        with pytest.raises(ValueError, match="monitor_filter"):
            cross_spectrum(bold, [1.0], monitor_filter=True)


# ------------------------------------------------------------------ gradients, jit


def test_fc_gradient_matches_finite_differences_and_jits():
    with jax.enable_x64(True):
        conn = bm.Connectome.synthetic(n_regions=4, seed=1).normalized("max")
        net = bm.Network(
            bm.models.Hopf(a=-0.05),
            conn,
            coupling=bm.coupling.Diffusive(G=0.3),
            noise=bm.noise.Additive(sigma=0.01),
        )
        hopf = bm.Simulator(net, dt=0.1, duration=10.0)
        delayed = _ou_sim(W4, 0.2, 0.08, 0.05, lengths=L4, speed=1.0)
        grid = default_freqs(0.5, 200.0, split_hz=200.0)
        target = np.linspace(0.1, 0.4, 16).reshape(4, 4)

        def hopf_loss(g):
            return jnp.sum((fc(hopf.with_params({"coupling.G": g})) - target) ** 2)

        def delayed_loss(theta):
            g, speed = theta
            sim = delayed.with_params({"coupling.G": g})
            # with_params refuses a traced speed (the simulation's delay buffer is sized
            # from it); the linearised model needs no buffer
            sim = eqx.tree_at(lambda s: s.network.speed, sim, speed)
            return jnp.sum((fc(sim, freqs_hz=grid) - target) ** 2)

        for loss, value in (
            (hopf_loss, jnp.asarray(0.3, jnp.float64)),
            (delayed_loss, jnp.asarray([0.08, 1.0], jnp.float64)),
        ):
            value_and_grad = jax.jit(jax.value_and_grad(loss))  # one compilation for both

            def jit_loss(v, value_and_grad=value_and_grad):
                return value_and_grad(v)[0]

            grad = np.atleast_1d(value_and_grad(value)[1])
            for k in range(grad.size):
                h = 1e-5 * np.eye(grad.size)[k] * np.atleast_1d(value)[k]
                h = h.reshape(np.shape(value))
                fd = (jit_loss(value + h) - jit_loss(value - h)) / (2 * np.max(np.abs(h)))
                assert np.isfinite(grad[k]) and abs(grad[k]) > 1e-6, (loss.__name__, grad)
                np.testing.assert_allclose(grad[k], fd, rtol=1e-5, err_msg=loss.__name__)


def test_fixed_point_of_nonlinear_models_and_its_gradient():
    with jax.enable_x64(True):
        conn = bm.Connectome.synthetic(n_regions=6, seed=2).normalized("max")
        model, coupling = bm.models.WilsonCowan(P=1.0), bm.coupling.Linear(G=0.2)
        net = bm.Network(model, conn, coupling=coupling, noise=bm.noise.Additive(sigma=1e-3))
        sim = bm.Simulator(net, dt=0.1, duration=1000.0)
        summary = linear_summary(sim)
        assert float(summary.residual) < 1e-6
        assert bool(summary.ok) and bool(summary.stability.stable)
        assert np.max(np.abs(np.asarray(summary.state))) > 0.05  # not the origin
        drift = net.drift(summary.state, None, conn.weights, net.strength())
        assert float(jnp.max(jnp.abs(drift))) < 1e-6

        # implicit-function gradient, reverse and forward mode
        def total(g):
            return jnp.sum(fixed_point(sim.with_params({"coupling.G": g})).state)

        value_and_grad = jax.jit(jax.value_and_grad(total))
        fd = (value_and_grad(0.2 + 1e-6)[0] - value_and_grad(0.2 - 1e-6)[0]) / 2e-6
        np.testing.assert_allclose(value_and_grad(0.2)[1], fd, rtol=1e-6)
        np.testing.assert_allclose(jax.jacfwd(total)(0.2), fd, rtol=1e-6)


# ------------------------------------------------------------------ flags and errors


def test_failures_are_flags_not_exceptions():
    with jax.enable_x64(True):
        W = W4[:3, :3]
        sim = _ou_sim(W, 0.1, 0.04, 0.02)

        @jax.jit
        def summarise(G):
            return linear_summary(sim.with_params({"coupling.G": G}))

        assert bool(summarise(0.04).ok)
        unstable = summarise(0.2)  # G * spectral radius > lam
        assert not bool(unstable.ok) and not bool(unstable.stability.stable)
        assert float(unstable.stability.abscissa) > 0

        # a state that is not a fixed point is flagged through the residual
        off = linear_summary(sim, state=np.full((1, 3), 0.5))
        assert float(off.residual) > 1e-3 and not bool(off.ok)

        with pytest.raises(ValueError, match="freqs_hz"):
            covariance(_delayed_scalar_sim(0.1, 0.05, 4.0), freqs_hz=[1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match="state"):
            linearize(sim, state=np.zeros((2, 3)))
        with pytest.raises(ValueError, match="sim"):
            covariance(sim.network)
        # derived observables (Jansen-Rit's v = y1 - y2) give an observation matrix
        conn = bm.Connectome.synthetic(n_regions=2, seed=0)
        jr = bm.Network(bm.models.JansenRit(), conn, bm.coupling.Sigmoidal())
        jr_sim = bm.Simulator(jr, dt=0.1, duration=10.0)
        lin = linearize(jr_sim, state=jr_sim.init)
        assert lin.observed is None and lin.obs.shape == (2, 12)
        np.testing.assert_allclose(lin.obs[0, [2, 4]], [1.0, -1.0])
