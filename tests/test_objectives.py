"""brainmass.objectives: the objective contract for every objective, and references.

One list of every objective, one contract test: zero at prediction == target,
positive otherwise, a finite gradient with respect to the prediction, the same
value under jit and vmap. Values are checked against references computed here
(numpy, scipy.stats) and `combine` against the weighted sum.
"""

from __future__ import annotations

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal as ss
import scipy.stats as st

import brainmass.analysis as ana
import brainmass.objectives as obj

PERIOD = 2.0  # ms: 500 Hz
N_TIMES, N_CHANNELS = 600, 4


def _signal(peak_hz, seed):
    """Correlated channels with a spectral peak: a sinusoid plus mixed smoothed noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_TIMES) * PERIOD / 1000.0
    noise = rng.standard_normal((N_TIMES, N_CHANNELS))
    noise = ss.lfilter([0.3], [1.0, -0.7], noise, axis=0)  # AR(1): a smooth spectrum
    mix = rng.standard_normal((N_CHANNELS, N_CHANNELS)) + 2.0 * np.eye(N_CHANNELS)
    phases = rng.uniform(0, 2 * np.pi, N_CHANNELS)
    sine = np.sin(2 * np.pi * peak_hz * t[:, None] + phases[None, :])
    return (noise @ mix.T + 1.5 * sine).astype(np.float32)


@pytest.fixture(scope="module")
def signals():
    """(prediction, target): different FC, FCD and spectral peaks (20 Hz vs 10 Hz)."""
    return jnp.asarray(_signal(20.0, 1)), jnp.asarray(_signal(10.0, 2))


FCD = {"window": 120.0, "step": 40.0, "period": PERIOD}  # 60-sample windows, 27 windows

OBJECTIVES = {
    "TimeSeriesRMSE": obj.TimeSeriesRMSE(),
    "FCCorrelation": obj.FCCorrelation(),
    "FCRMSE": obj.FCRMSE(),
    "FCDKS": obj.FCDKS(**FCD),
    "FCDDistance": obj.FCDDistance(**FCD),
    "SpectralDistance": obj.SpectralDistance(PERIOD, (2.0, 100.0), nperseg=128),
    "PeakFrequencyError": obj.PeakFrequencyError(PERIOD, "beta", nperseg=128),
    "combine": obj.combine({obj.FCRMSE(): 1.0, obj.TimeSeriesRMSE(): 0.5}),
}


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_objective_contract(name, signals):
    objective = OBJECTIVES[name]
    prediction, target = signals
    # eager (the objective compiles itself once for these shapes)
    batch = jnp.stack([target, prediction, 0.5 * (prediction + target)])
    looped = np.array([float(objective(p, target)) for p in batch])
    assert abs(looped[0]) < 1e-6, looped  # zero at prediction == target
    assert looped[1] > 1e-3 and looped[2] > 1e-3, looped  # positive otherwise
    # jit of vmap of value-and-gradient (one compilation): the same values, and a finite
    # gradient w.r.t. the prediction, non-zero where the objective is differentiable
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(objective), in_axes=(0, None)))(
        batch, target
    )
    assert values.shape == (3,)
    np.testing.assert_allclose(values, looped, rtol=1e-4, atol=1e-6)
    grads = np.asarray(grads)
    assert grads.shape == batch.shape
    assert np.all(np.isfinite(grads))
    if getattr(objective, "differentiable", True):
        assert np.abs(grads[1]).max() > 0
    else:
        assert name == "FCDKS"


def _upper(m):
    return m[np.triu_indices(m.shape[0], 1)]


def test_fc_objectives_match_numpy(signals):
    p, t = (np.asarray(s, dtype=np.float64) for s in signals)
    fp, ft = _upper(np.corrcoef(p.T)), _upper(np.corrcoef(t.T))
    np.testing.assert_allclose(
        obj.FCCorrelation()(*signals), 1 - np.corrcoef(fp, ft)[0, 1], rtol=1e-4
    )
    np.testing.assert_allclose(obj.FCRMSE()(*signals), np.sqrt(np.mean((fp - ft) ** 2)), rtol=1e-4)
    np.testing.assert_allclose(
        obj.TimeSeriesRMSE()(*signals), np.sqrt(np.mean((p - t) ** 2)), rtol=1e-5
    )
    # FC matrices given directly
    fcs = ana.fc(signals[0]), ana.fc(signals[1])
    np.testing.assert_allclose(
        obj.FCCorrelation(inputs="fc")(*fcs), obj.FCCorrelation()(*signals), rtol=1e-6
    )
    np.testing.assert_allclose(obj.FCRMSE(inputs="fc")(*fcs), obj.FCRMSE()(*signals), rtol=1e-6)
    # FC is invariant to affine maps of each channel, and FCCorrelation to affine maps of FC
    scaled = 3.0 * signals[1] + 1.0
    assert float(obj.FCCorrelation()(scaled, signals[1])) < 1e-6
    # quantities: a target in volts is converted to the prediction's millivolts
    p_mv, t_v = np.asarray(signals[0]) * u.mV, np.asarray(signals[0]) / 1000.0 * u.volt
    assert float(obj.TimeSeriesRMSE()(p_mv, t_v)) < 1e-6
    with pytest.raises(ValueError, match="target"):
        obj.TimeSeriesRMSE()(p_mv, np.asarray(signals[0]) * u.second)
    # target of another length is fine for FC objectives
    assert np.isfinite(float(obj.FCCorrelation()(signals[0][:300], signals[1])))


def test_fcd_objectives_match_scipy(signals):
    prediction, target = signals
    fcd_p, fcd_t = ana.fcd(prediction, **FCD), ana.fcd(target, **FCD)
    vp = np.asarray(ana.fcd_values(fcd_p), dtype=np.float64)
    vt = np.asarray(ana.fcd_values(fcd_t), dtype=np.float64)
    np.testing.assert_allclose(
        obj.FCDKS(**FCD)(prediction, target), st.ks_2samp(vp, vt).statistic, rtol=1e-6
    )
    np.testing.assert_allclose(
        obj.FCDDistance(**FCD)(prediction, target), st.wasserstein_distance(vp, vt), rtol=1e-4
    )
    # FCD matrices given directly; a shorter target (the FCD of its first 20 windows:
    # fewer values, so W1 integrates over the merged quantile grid); only pairs of
    # non-overlapping windows (k = 3, window = 3 steps)
    short = fcd_t[:20, :20]
    kp, kt = np.asarray(ana.upper_triangle(fcd_p, 3)), np.asarray(ana.upper_triangle(short, 3))
    assert kp.size != kt.size
    np.testing.assert_allclose(
        obj.FCDDistance(inputs="fcd", k=3)(fcd_p, short), st.wasserstein_distance(kp, kt), rtol=1e-4
    )
    np.testing.assert_allclose(
        obj.FCDKS(inputs="fcd", k=3)(fcd_p, short), st.ks_2samp(kp, kt).statistic, rtol=1e-6
    )
    # quantities for window and step, a sampling rate for the period: the same options
    same = obj.FCDDistance(120 * u.ms, 0.04 * u.second, fs=500.0 * u.Hz)
    np.testing.assert_allclose(
        [same.options.window, same.options.step, same.options.period], [120.0, 40.0, PERIOD]
    )


def test_spectral_objectives_match_scipy(signals):
    prediction, target = signals
    f, pp = ss.welch(np.asarray(prediction, np.float64), fs=500.0, nperseg=128, axis=0)
    _, pt = ss.welch(np.asarray(target, np.float64), fs=500.0, nperseg=128, axis=0)
    band = (f >= 2.0) & (f <= 100.0)
    eps = 1e-8 * pt[band].mean()
    expected = np.mean((np.log(pp[band] + eps) - np.log(pt[band] + eps)) ** 2)
    got = obj.SpectralDistance(PERIOD, (2.0, 100.0), nperseg=128)(prediction, target)
    np.testing.assert_allclose(got, expected, rtol=1e-3)
    # normalize: the overall amplitude does not matter
    relative = obj.SpectralDistance(PERIOD, (2.0, 100.0), nperseg=128, normalize=True)
    assert float(relative(5.0 * target, target)) < 1e-6
    assert float(obj.SpectralDistance(PERIOD, (2.0, 100.0), nperseg=128)(5.0 * target, target)) > 1
    # the hard peak error: beta peaks at 20 Hz vs the target's beta-band maximum
    hard = obj.PeakFrequencyError(PERIOD, "beta", nperseg=128, temperature=None)
    fb = (f >= 13.0) & (f <= 30.0)
    peaks_p, peaks_t = f[fb][np.argmax(pp[fb], axis=0)], f[fb][np.argmax(pt[fb], axis=0)]
    np.testing.assert_allclose(
        hard(prediction, target), np.mean((peaks_p - peaks_t) ** 2), rtol=1e-5
    )


def test_combine_is_the_weighted_sum(signals):
    prediction, target = signals
    a, b = obj.TimeSeriesRMSE(), obj.FCRMSE()  # cheap to compile: the sum is what is tested

    @jax.jit
    def user(p, t):
        return jnp.mean(jnp.abs(p - t))

    va, vb, vu = (float(f(prediction, target)) for f in (a, b, user))
    combined = obj.combine({a: 2.0, b: 0.25, user: -1.0})
    np.testing.assert_allclose(combined(prediction, target), 2.0 * va + 0.25 * vb - vu, rtol=1e-5)
    as_list = obj.combine([(a, 1.0), (a, 1.0), (user, 3)])
    np.testing.assert_allclose(as_list(prediction, target), 2 * va + 3 * vu, rtol=1e-5)
    nested = obj.combine({combined: 0.5, b: 1.0})
    np.testing.assert_allclose(nested(prediction, target), va + 1.125 * vb - 0.5 * vu, rtol=1e-5)
    with pytest.raises(ValueError, match="terms"):
        obj.combine({})
    with pytest.raises(ValueError, match=r"terms\[0\]"):
        obj.combine([("not callable", 1.0)])
    with pytest.raises(ValueError, match=r"terms\[1\]"):
        obj.combine([(a, 1.0), (b, float("nan"))])
    with pytest.raises(ValueError, match="scalar"):
        obj.combine({lambda p, t: p - t: 1.0})(prediction, target)


def test_objectives_are_hashable_pytrees():
    a, b = obj.FCDDistance(**FCD), obj.FCDDistance(**FCD)
    assert a == b and hash(a) == hash(b)
    assert jax.tree_util.tree_leaves(a) == []  # every option is static
    # so an objective can be a (traced) argument of a jitted function
    x = jnp.asarray(_signal(10.0, 3))
    y = jnp.asarray(_signal(10.0, 4))
    passed = jax.jit(lambda o, p, t: o(p, t))(a, x, y)
    np.testing.assert_allclose(passed, b(x, y), rtol=1e-5)
    assert obj.SpectralDistance(PERIOD) != obj.SpectralDistance(1.0)


def test_shape_errors_name_the_argument(signals):
    prediction, target = signals
    with pytest.raises(ValueError, match="target"):
        obj.TimeSeriesRMSE()(prediction, target[:-1])
    with pytest.raises(ValueError, match="target"):
        obj.FCCorrelation()(prediction, target[:, :3])
    with pytest.raises(ValueError, match="prediction"):
        obj.FCRMSE()(prediction[:, 0], target)
    with pytest.raises(ValueError, match="prediction"):
        obj.FCCorrelation(inputs="fc")(np.zeros((3, 4)), np.eye(3))
    with pytest.raises(ValueError, match="target"):
        obj.FCCorrelation(inputs="fc")(np.eye(4), np.eye(3))
    with pytest.raises(ValueError, match="inputs"):
        obj.FCCorrelation(inputs="bold")
    with pytest.raises(ValueError, match="window, step"):
        obj.FCDKS(period=1.0)
    with pytest.raises(ValueError, match="period, fs"):
        obj.FCDDistance(100.0, 10.0)
    with pytest.raises(ValueError, match="period"):
        obj.SpectralDistance(2.0 * u.mV)
    with pytest.raises(ValueError, match="band"):
        obj.PeakFrequencyError(PERIOD, "mu")
    with pytest.raises(ValueError, match="band"):
        obj.SpectralDistance(PERIOD, (300.0, 400.0))(prediction, target)  # above Nyquist
    with pytest.raises(ValueError, match="window"):
        obj.FCDDistance(window=5000.0, step=10.0, period=PERIOD)(prediction, target)
