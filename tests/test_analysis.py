"""brainmass.analysis against independent references.

numpy.corrcoef for FC, the closed-form Lyapunov covariance of an
Ornstein-Uhlenbeck network for FC of a simulation, scipy.signal.welch for the
PSD, scipy.signal.hilbert and the analytic phase of sinusoids, the analytic
power of sinusoids, scipy.stats for KS and Wasserstein distances, and the
statistics of random phases for the Kuramoto order parameter.
"""

from __future__ import annotations

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
import scipy.signal as ss
import scipy.stats as st

import brainmass as bm
import brainmass.analysis as ana


def _rng(seed=0):
    return np.random.default_rng(seed)


def _mixed(n_times=1000, n_channels=5, seed=0):
    """Correlated Gaussian channels: white noise mixed by a random matrix."""
    rng = _rng(seed)
    mix = rng.standard_normal((n_channels, n_channels)) + 2.0 * np.eye(n_channels)
    return (rng.standard_normal((n_times, n_channels)) @ mix.T).astype(np.float32)


# ----------------------------------------------------------------------------- FC


def test_fc_matches_numpy_corrcoef():
    x = _mixed()
    expected = np.corrcoef(x.T.astype(np.float64))
    got = np.asarray(ana.fc(x))
    np.testing.assert_allclose(got, expected, atol=2e-6)
    np.testing.assert_array_equal(np.diag(got), 1.0)
    # the same under vmap (and fc is jit-compiled already)
    batch = np.stack([x, _mixed(seed=1)])
    np.testing.assert_allclose(jax.vmap(ana.fc)(batch)[1], np.corrcoef(batch[1].T), atol=2e-6)


@jax.jit
def _fc_loss(s):
    return ana.fc(s)[0, 1] + 2.0 * ana.fc(s)[1, 2] + 0.5 * ana.fc(s)[2, 3]


_fc_loss_grad = jax.jit(jax.grad(_fc_loss))


def test_fc_gradient_matches_finite_differences():
    x = jnp.asarray(_mixed(n_times=50, n_channels=4))
    grad = np.asarray(_fc_loss_grad(x))
    direction = _rng(3).standard_normal(x.shape).astype(np.float32)
    h = 1e-2
    fd = (_fc_loss(x + h * direction) - _fc_loss(x - h * direction)) / (2 * h)
    np.testing.assert_allclose(np.sum(grad * direction), fd, rtol=2e-2)


def test_fc_constant_channel_is_zero_and_gradient_finite():
    x = _mixed(n_times=50, n_channels=4)
    x[:, 2] = 0.1  # a constant (float32 round-off must not turn it into noise)
    got = np.asarray(ana.fc(x))
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got[2, [0, 1, 3]], 0.0)
    np.testing.assert_array_equal(np.diag(got), 1.0)
    others = [0, 1, 3]
    np.testing.assert_allclose(got[np.ix_(others, others)], np.corrcoef(x[:, others].T), atol=2e-6)
    grad = np.asarray(_fc_loss_grad(jnp.asarray(x)))
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


# The OU network: x' = A x + sigma xi with A = -lam I + G W. Its stationary
# covariance solves A S + S A^T + sigma^2 I = 0 (scipy, independent of brainmass).
_W4 = np.array(
    [
        [0.0, 1.0, 0.2, 0.0],
        [0.6, 0.0, 0.8, 0.0],
        [0.0, 0.5, 0.0, 0.9],
        [0.3, 0.0, 0.7, 0.0],
    ]
)


def _corr_se(gammas, cov, i, j, n_samples):
    """Standard error of the sample correlation r_ij of a stationary Gaussian process.

    Bartlett's formula for the covariance of sample covariances,
    Cov(c_pq, c_lm) = (1/n) sum_k [G_pl(k) G_qm(k) + G_pm(k) G_ql(k)], with the
    exact autocovariances G(k), then the delta method for r = c_ij / sqrt(c_ii c_jj).
    """
    pairs = [(i, j), (i, i), (j, j)]
    c = (
        np.array(
            [
                [
                    np.sum(gammas[:, p, l] * gammas[:, q, m] + gammas[:, p, m] * gammas[:, q, l])
                    for (l, m) in pairs
                ]
                for (p, q) in pairs
            ]
        )
        / n_samples
    )
    r = cov[i, j] / np.sqrt(cov[i, i] * cov[j, j])
    g = np.array([1 / np.sqrt(cov[i, i] * cov[j, j]), -r / (2 * cov[i, i]), -r / (2 * cov[j, j])])
    return np.sqrt(g @ c @ g)


def _lyapunov_corr(a_matrix, sigma):
    cov = sla.solve_continuous_lyapunov(a_matrix, -(sigma**2) * np.eye(a_matrix.shape[0]))
    d = np.sqrt(np.diag(cov))
    return cov, cov / np.outer(d, d)


def test_fc_of_ou_network_matches_lyapunov_correlation():
    lam, G, sigma, n = 0.5, 0.3, 0.1, 4
    A = -lam * np.eye(n) + G * _W4
    assert np.linalg.eigvals(A).real.max() < -0.1  # stable; slowest correlation time ~8.5 ms
    cov, corr = _lyapunov_corr(A, sigma)
    assert np.abs(corr[np.triu_indices(n, 1)]).min() > 0.3  # strong correlations to recover

    # 25 independent copies of the network, one block-diagonal connectome: one run.
    copies, dt, period, burn, duration = 25, 0.1, 0.5, 100.0, 2100.0
    weights = sla.block_diag(*[_W4] * copies)
    net = bm.Network(
        bm.models.Linear(lam=lam),
        bm.Connectome.from_arrays(weights, np.zeros_like(weights)),
        bm.coupling.Linear(G=G),
        noise=bm.noise.Additive(sigma=sigma),
    )
    sim = bm.Simulator(
        net,
        dt=dt,
        duration=duration,
        monitor=bm.monitors.Raw(period=period, transient=burn),  # 100 ms = 12 correlation times
        init={"x": 0.0},
    )
    signal = sim.run(jax.random.key(0)).signal
    n_t = signal.shape[0]
    full = np.asarray(ana.fc(signal))
    blocks = np.array([full[c * n : (c + 1) * n, c * n : (c + 1) * n] for c in range(copies)])
    emp = blocks.mean(axis=0)

    # Tolerance: the standard error of a correlation from n_t samples of each
    # copy (Bartlett + delta method with the exact autocovariances
    # G(k) = expm(A k period) S), divided by sqrt(copies) for the mean over
    # independent copies: about 0.006-0.008 here. The Heun scheme's own
    # stationary correlation differs from the continuous one by ~4e-4 (dt = 0.1
    # ms), far below that. 4.5 standard errors on 6 entries: a false alarm rate
    # of about 1e-4 for a correct FC and simulator.
    lags = np.arange(-200, 201)  # +-100 ms, 12 slowest correlation times
    gammas = np.array([sla.expm(A * abs(k) * period) @ cov for k in lags])
    gammas[lags < 0] = np.transpose(gammas[lags < 0], (0, 2, 1))
    rows, cols = np.triu_indices(n, 1)
    se = np.array(
        [_corr_se(gammas, cov, i, j, n_t * copies) for i, j in zip(rows, cols, strict=True)]
    )
    assert se.max() < 0.01
    z = np.abs(emp[rows, cols] - corr[rows, cols]) / se
    assert z.max() < 4.5, (z, emp, corr)
    # different copies are independent: their correlations are noise of size ~1/sqrt(n_eff)
    off = full.copy()
    for c in range(copies):
        off[c * n : (c + 1) * n, c * n : (c + 1) * n] = 0.0
    assert np.abs(off).mean() < 0.06
    # and the test has power: the correlation of the transposed coupling is rejected
    _, corr_t = _lyapunov_corr(-lam * np.eye(n) + G * _W4.T, sigma)
    assert (np.abs(emp[rows, cols] - corr_t[rows, cols]) / se).max() > 6.0


# ----------------------------------------------------------------------------- FCD


def test_fcd_shape_symmetry_and_diagonal():
    x = _mixed(n_times=400, n_channels=5)
    fcd = np.asarray(ana.fcd(x, 100.0, 20.0, period=1.0))
    assert fcd.shape == ((400 - 100) // 20 + 1,) * 2 == (16, 16)
    np.testing.assert_allclose(fcd, fcd.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(fcd), 1.0, atol=1e-6)
    # units: a quantity window and step, a sampling rate instead of a period
    same = ana.fcd(x, 0.1 * u.second, 20 * u.ms, fs=1000.0)
    np.testing.assert_allclose(same, fcd, atol=1e-6)
    # entry (k, l) is the correlation of the FC upper triangles of windows k and l
    fc3 = np.corrcoef(x[60:160].T)[np.triu_indices(5, 1)]
    fc7 = np.corrcoef(x[140:240].T)[np.triu_indices(5, 1)]
    np.testing.assert_allclose(fcd[3, 7], np.corrcoef(fc3, fc7)[0, 1], atol=1e-5)
    values = ana.fcd_values(fcd)
    assert values.shape == (16 * 15 // 2,)
    assert ana.fcd_values(fcd, k=5).shape == (11 * 12 // 2,)


def _driven(n_times, groups, seed):
    """Six channels; in each segment, the channels of one group share a common driver."""
    rng = _rng(seed)
    x = rng.standard_normal((n_times, 6))
    bounds = np.linspace(0, n_times, len(groups) + 1).astype(int)
    for (start, stop), group in zip(zip(bounds[:-1], bounds[1:], strict=True), groups, strict=True):
        driver = rng.standard_normal(stop - start)
        x[start:stop, group] += 1.5 * driver[:, None]
    return x.astype(np.float32)


def test_fcd_shows_a_switch_in_correlation_structure():
    window, step = 200.0, 100.0  # 19 windows of 2000 samples at 1 ms
    first, second = [0, 1, 2], [3, 4, 5]
    stationary = np.asarray(ana.fcd(_driven(2000, [first], 0), window, step, period=1.0))
    switching = np.asarray(ana.fcd(_driven(2000, [first, second], 1), window, step, period=1.0))
    assert stationary.shape == switching.shape == (19, 19)
    off_diag = ~np.eye(19, dtype=bool)
    assert stationary[off_diag].min() > 0.5  # one FC pattern throughout
    # windows 0-8 lie in the first half, 10-18 in the second (9 straddles the switch)
    a, b = slice(0, 9), slice(10, 19)
    within = np.concatenate(
        [switching[a, a][~np.eye(9, dtype=bool)], switching[b, b][~np.eye(9, dtype=bool)]]
    )
    across = switching[a, b]
    assert within.min() > 0.5
    assert across.max() < 0.2
    assert within.mean() - across.mean() > 0.8


def test_window_validation():
    x = _mixed(n_times=100, n_channels=4)
    with pytest.raises(ValueError, match="window"):
        ana.fcd(x, 200.0, 10.0, period=1.0)
    with pytest.raises(ValueError, match="period, fs"):
        ana.fcd(x, 20.0, 10.0)
    with pytest.raises(ValueError, match="period"):
        ana.fcd(x, 20.0, 10.0, period=1.0 * u.mV)
    with pytest.raises(ValueError, match="step"):
        ana.fcd(x, 20.0, 0.1, period=1.0)
    with pytest.raises(ValueError, match="signal"):
        ana.fc(x[:, 0])


# ----------------------------------------------------------------------------- triangles, z


def test_upper_triangle_and_inverse():
    rng = _rng(0)
    m = rng.standard_normal((6, 6))
    m = m + m.T
    for k in (0, 1, 2):
        rows, cols = np.triu_indices(6, k)
        v = ana.upper_triangle(m, k)
        np.testing.assert_array_equal(v, m[rows, cols].astype(np.float32))
        back = np.asarray(ana.from_upper_triangle(v, k=k, diagonal=7.0))
        np.testing.assert_allclose(back[rows, cols], m[rows, cols], rtol=1e-6)
        np.testing.assert_allclose(back, back.T)
        if k >= 1:
            np.testing.assert_array_equal(np.diag(back), 7.0)
    corr = np.corrcoef(_mixed(n_channels=5).T)
    np.testing.assert_allclose(ana.from_upper_triangle(ana.upper_triangle(corr)), corr, atol=1e-6)
    batch = np.stack([m, 2 * m])
    assert ana.upper_triangle(batch).shape == (2, 15)
    with pytest.raises(ValueError, match="values"):
        ana.from_upper_triangle(np.zeros(7))


def test_fisher_z():
    r = np.linspace(-0.99, 0.99, 41)
    np.testing.assert_allclose(ana.fisher_z(r), np.arctanh(r), rtol=1e-5, atol=1e-6)
    edge = np.asarray(ana.fisher_z(jnp.array([-1.0, 1.0])))
    assert np.all(np.isfinite(edge)) and edge[0] < -7 and edge[1] > 7
    grad = jax.grad(lambda x: jnp.sum(ana.fisher_z(x)))(jnp.array([-1.0, 0.5, 1.0]))
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(grad[1], 1 / (1 - 0.25), rtol=1e-5)


# ----------------------------------------------------------------------------- distances


def test_ks_and_wasserstein_match_scipy():
    rng = _rng(0)
    x = rng.standard_normal(60)
    y = 0.5 + 1.3 * rng.standard_normal(85)
    for a, b in ((x, y), (x, y[:60])):
        np.testing.assert_allclose(ana.ks_statistic(a, b), st.ks_2samp(a, b).statistic, rtol=1e-6)
        np.testing.assert_allclose(
            ana.wasserstein_1(a, b), st.wasserstein_distance(a, b), rtol=1e-5
        )
    # ties: the KS statistic counts equal values on both sides as scipy does
    a, b = np.array([0.0, 1.0, 1.0, 2.0]), np.array([1.0, 1.0, 3.0])
    np.testing.assert_allclose(ana.ks_statistic(a, b), st.ks_2samp(a, b).statistic)
    grad = jax.grad(ana.wasserstein_1)(jnp.asarray(x), jnp.asarray(y))
    assert np.all(np.isfinite(np.asarray(grad))) and np.abs(np.asarray(grad)).sum() > 0


# ----------------------------------------------------------------------------- spectra


@pytest.mark.parametrize(
    ("n_times", "nperseg", "noverlap", "detrend"),
    [(1000, 128, None, "constant"), (999, 101, 30, "linear"), (600, 256, 200, None)],
)
def test_psd_matches_scipy_welch(n_times, nperseg, noverlap, detrend):
    x = _mixed(n_times=n_times, n_channels=3) + np.float32(3.0)  # an offset for detrending
    freqs, p = ana.psd(x, period=2.0, nperseg=nperseg, noverlap=noverlap, detrend=detrend)
    f_ref, p_ref = ss.welch(
        x.astype(np.float64),
        fs=500.0,
        nperseg=nperseg,
        noverlap=noverlap,
        detrend=detrend if detrend is not None else False,
        axis=0,
    )
    assert p.shape == p_ref.shape == (nperseg // 2 + 1, 3)
    np.testing.assert_allclose(freqs, f_ref, rtol=1e-6)
    np.testing.assert_allclose(p, p_ref, rtol=2e-4, atol=2e-5 * p_ref.max())


def test_psd_units_and_short_signal():
    x = _mixed(n_times=300, n_channels=2)
    f1, p1 = ana.psd(x, period=1.0 * u.ms, nperseg=64)
    f2, p2 = ana.psd(x, 1.0 * u.kHz, nperseg=64)
    f3, p3 = ana.psd(x, fs=1000.0, nperseg=64)
    np.testing.assert_allclose(f1, f2)
    np.testing.assert_allclose(p1, p3)
    # a signal shorter than nperseg is one segment of its full length (as scipy)
    f4, p4 = ana.psd(x[:50], period=1.0)
    f_ref, p_ref = ss.welch(x[:50].astype(np.float64), fs=1000.0, nperseg=50, axis=0)
    np.testing.assert_allclose(f4, f_ref, rtol=1e-6)
    np.testing.assert_allclose(p4, p_ref, rtol=2e-4, atol=1e-6 * p_ref.max())
    with pytest.raises(ValueError, match="fs"):
        ana.psd(x, fs=1.0 * u.ms)
    with pytest.raises(ValueError, match="detrend"):
        ana.psd(x, period=1.0, detrend="quadratic")


def _sinusoids(freqs_hz, amplitudes, n_times=4000, period_ms=1.0):
    t = np.arange(n_times) * period_ms / 1000.0  # seconds
    return np.stack(
        [
            a * np.sin(2 * np.pi * f * t + 0.3 * i)
            for i, (f, a) in enumerate(zip(freqs_hz, amplitudes, strict=True))
        ],
        axis=1,
    ).astype(np.float32)


def test_peak_frequency_of_sinusoids():
    true = np.array([6.0, 10.0, 23.0, 41.0])
    x = _sinusoids(true, [1.0, 2.0, 0.5, 1.0])
    freqs, p = ana.psd(x, period=1.0, nperseg=1000)  # 1 Hz resolution
    np.testing.assert_array_equal(ana.peak_frequency(freqs, p), true)
    soft = ana.peak_frequency(freqs, p, temperature=0.1)
    np.testing.assert_allclose(soft, true, atol=1e-3)
    # one channel per call, and a band restricting the search
    mixed = x[:, 1:2] + 0.5 * x[:, 2:3]  # 10 Hz (power 2) + 23 Hz (power 1/32)
    f2, p2 = ana.psd(mixed, period=1.0, nperseg=1000)
    np.testing.assert_array_equal(ana.peak_frequency(f2, p2), [10.0])
    np.testing.assert_array_equal(ana.peak_frequency(f2, p2, "beta"), [23.0])
    np.testing.assert_allclose(
        ana.peak_frequency(f2, p2, (15, 30), temperature=0.1), [23.0], atol=1e-3
    )


def test_band_power_of_a_sinusoid():
    amplitude = 2.0
    x = _sinusoids([10.0, 20.0], [amplitude, 1.0])
    freqs, p = ana.psd(x, period=1.0, nperseg=1000)
    alpha = np.asarray(ana.band_power(freqs, p, "alpha"))
    # the analytic mean power of A sin(2 pi f t) is A^2 / 2
    np.testing.assert_allclose(alpha[0], amplitude**2 / 2, rtol=1e-3)
    assert alpha[1] < 1e-6
    np.testing.assert_allclose(ana.band_power(freqs, p, (15.0, 25.0))[1], 0.5, rtol=1e-3)
    # Parseval: over all frequencies, the mean power (variance) of a random signal
    noise = _mixed(n_times=20000, n_channels=2)
    f, pn = ana.psd(noise, period=1.0, nperseg=256)
    total = ana.band_power(f, pn, (0.0, 500.0))
    np.testing.assert_allclose(total, noise.var(axis=0), rtol=0.03)
    with pytest.raises(ValueError, match="band"):
        ana.band_power(freqs, p, "mu")
    with pytest.raises(ValueError, match="band"):
        ana.band_power(freqs, p, (600.0, 700.0))


# ----------------------------------------------------------------------------- phases


def test_phase_of_sinusoids_and_scipy_hilbert():
    # whole numbers of periods: the FFT Hilbert transform is exact
    period_ms, n_times = 1.0, 2000
    t = np.arange(n_times) * period_ms / 1000.0
    f = np.array([5.0, 12.0, 40.0])
    offset = np.array([0.0, 1.0, -2.0])
    x = np.cos(2 * np.pi * f[None, :] * t[:, None] + offset[None, :]) + 3.0  # with a mean
    ph = np.asarray(ana.phase(x.astype(np.float32)))
    expected = 2 * np.pi * f[None, :] * t[:, None] + offset[None, :]
    np.testing.assert_allclose(np.angle(np.exp(1j * (ph - expected))), 0.0, atol=1e-4)
    assert ph.min() >= -np.pi and ph.max() <= np.pi
    # a random signal of odd and even length vs scipy.signal.hilbert
    for n in (301, 300):
        y = _mixed(n_times=n, n_channels=2)
        np.testing.assert_allclose(
            ana.analytic_signal(y), ss.hilbert(y.astype(np.float64), axis=0), atol=2e-4
        )
        np.testing.assert_allclose(
            ana.phase(y, center=False),
            np.angle(ss.hilbert(y.astype(np.float64), axis=0)),
            atol=2e-3,
        )


def test_kuramoto_order_identical_and_random_phases():
    rng = _rng(0)
    common = rng.uniform(-np.pi, np.pi, size=(200, 1))
    np.testing.assert_allclose(ana.kuramoto_order(np.repeat(common, 50, axis=1)), 1.0, atol=1e-6)
    # independent uniform phases: N R^2 ~ Exp(1), E[R] = sqrt(pi / (4 N))
    n, n_t = 400, 500
    r = np.asarray(ana.kuramoto_order(rng.uniform(-np.pi, np.pi, size=(n_t, n))))
    assert r.shape == (n_t,)
    # mean of 500 Exp(1) draws: standard error 0.045; 4.5 se
    assert abs(np.mean(n * r**2) - 1.0) < 0.2
    assert abs(np.mean(r) / np.sqrt(np.pi / (4 * n)) - 1.0) < 0.1
    assert ana.kuramoto_order(np.array([0.0, np.pi])) < 1e-6
    grad = jax.grad(lambda p: ana.kuramoto_order(p))(jnp.array([0.0, np.pi]))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_metastability():
    rng = _rng(0)
    t = np.linspace(0.0, 10.0, 300)[:, None]
    spread = rng.uniform(-1.0, 1.0, size=(1, 30))
    rigid = 2 * np.pi * 3.0 * t + spread  # R(t) constant (and < 1)
    assert 0.2 < float(ana.kuramoto_order(rigid)[0]) < 0.99
    assert float(ana.metastability(rigid)) < 1e-5
    grad = jax.grad(ana.metastability)(jnp.asarray(rigid, dtype=jnp.float32))
    assert np.all(np.isfinite(np.asarray(grad)))
    # alternating synchrony (R = 1) and incoherence (R ~ 0): std of R near 1/2
    incoherent = rng.uniform(-np.pi, np.pi, size=(300, 30))
    switching = np.where(
        (np.arange(300) // 50 % 2 == 0)[:, None], np.broadcast_to(t, (300, 30)), incoherent
    )
    r = np.asarray(ana.kuramoto_order(switching))
    np.testing.assert_allclose(ana.metastability(switching), r.std(), rtol=1e-5)
    assert float(ana.metastability(switching)) > 0.4
