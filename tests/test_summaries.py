"""Summary statistics and embedding networks for SBI (the inference/summaries package).

References are numpy/scipy computations or closed forms: Fisher-z of np.corrcoef,
numpy SVD for the PCA, a numpy sliding-window FCD and np.histogram, the power
of sinusoids (A^2/2), the order parameter of identical / anti-phase / random phases.
"""

from __future__ import annotations

import math
import pickle

import brainunit as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass as bm
import inference.summaries as S

# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sim():
    conn = bm.Connectome.synthetic(4, seed=0)
    net = bm.Network(
        bm.models.Linear(lam=0.05),
        conn,
        coupling=bm.coupling.Linear(G=0.02),
        noise=bm.noise.Additive(sigma=0.02),
    )
    return bm.Simulator(
        net, dt=1.0, duration=1200.0, monitor=bm.monitors.Raw(period=1.0, transient=100.0)
    )


@pytest.fixture(scope="module")
def signals(sim):
    keys = jax.random.split(jax.random.key(1), 3)
    return jax.vmap(lambda k: sim.run(k, check=False).signal)(keys)


def full_summary():
    return S.combine(
        S.FC(pca=3),
        S.FCD(300.0, 100.0, bins=10),
        S.Spectral(),
        S.Order(band="alpha"),
        S.Moments(),
    )


def sinusoids(freqs, amps, phases, n=4000, period=1.0):
    """Columns sum_k A_k sin(2 pi f_k t + phi_k); t in s."""
    t = np.arange(n) * period / 1000.0
    return np.stack(
        [
            sum(a * np.sin(2 * np.pi * f * t + p) for f, a, p in zip(fs, as_, ps, strict=True))
            for fs, as_, ps in zip(freqs, amps, phases, strict=True)
        ],
        axis=1,
    )


# ---------------------------------------------------------------------------- binding


def test_bind_reads_the_simulator(sim, signals):
    s = S.Moments().bind(sim)
    assert s.signal_shape == tuple(signals.shape[1:]) == (1100, 4)  # transient dropped
    assert s.period == 1.0
    assert s.shape == (12,)
    unbound = S.Moments()
    assert not unbound.bound and s.bound  # bind returns a copy


def test_binding_errors(sim):
    x = np.zeros((1100, 4))
    with pytest.raises(ValueError, match="not bound"):
        S.FC()(x)
    with pytest.raises(ValueError, match="not bound"):
        _ = S.FC().shape
    with pytest.raises(ValueError, match="window"):
        S.FCD(5000.0, 100.0).bind(sim)  # longer than the 1100 ms run
    with pytest.raises(ValueError, match="at least 2 windows"):
        S.FCD(1000.0, 500.0).bind(sim)
    with pytest.raises(ValueError, match="Nyquist"):
        S.Spectral().bind_signal(10.0, (1000, 4))  # Nyquist 50 Hz < gamma's 80 Hz
    with pytest.raises(ValueError, match="Nyquist"):
        S.Order(band=(40.0, 60.0)).bind_signal(10.0, (1000, 4))
    with pytest.raises(ValueError, match="no frequency"):
        S.Spectral(bands={"narrow": (10.1, 10.2)}, nperseg=256).bind(sim)
    with pytest.raises(ValueError, match="nperseg"):
        S.Spectral(nperseg=5000).bind(sim)
    with pytest.raises(ValueError, match="3 channels"):
        S.FCD(100.0, 10.0).bind_signal(1.0, (1000, 2))
    with pytest.raises(ValueError, match="pca"):
        S.FC(pca=7).bind(sim)  # 4 channels: 6 pairs
    with pytest.raises(ValueError, match="Simulator"):
        S.FC().bind(object())
    with pytest.raises(ValueError, match="shape"):
        S.FC().bind(sim)(np.zeros((100, 4)))
    with pytest.raises(ValueError, match="not flat"):
        S.combine(S.FC(), S.TimeSeries())
    with pytest.raises(ValueError, match="not fitted"):
        S.FC(pca=2).bind(sim).project(np.zeros(6))
    with pytest.raises(ValueError, match="bins"):
        S.FCD(100.0, 10.0, bins=0)
    with pytest.raises(ValueError, match="bands"):
        S.Spectral(bands=("alpha", "mu"))


# ---------------------------------------------------------------------------- FC and PCA


def test_fc_is_fisher_z_of_corrcoef():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 5)) @ rng.standard_normal((5, 5))
    s = S.FC().bind_signal(1.0, x.shape)
    i, j = np.triu_indices(5, k=1)
    r = np.corrcoef(x.T)[i, j]
    np.testing.assert_allclose(np.asarray(s(x)), np.arctanh(r), rtol=1e-4, atol=1e-5)
    raw = S.FC(fisher=False).bind_signal(1.0, x.shape)
    np.testing.assert_allclose(np.asarray(raw(x)), r, rtol=1e-5, atol=1e-6)
    assert s.names[:3] == ["fc[0,1]", "fc[0,2]", "fc[0,3]"] and len(s.names) == 10
    assert s.names[-1] == "fc[3,4]"


def test_pca_matches_numpy_svd():
    rng = np.random.default_rng(1)
    n, d, rank = 300, 10, 3
    bank = (
        (rng.standard_normal((n, rank)) * np.array([3.0, 1.0, 0.3]))
        @ rng.standard_normal((rank, d))
        + 0.01 * rng.standard_normal((n, d))
        + rng.standard_normal(d)[None, :]
    )
    s = S.FC(pca=rank).bind_signal(1.0, (100, 5))
    assert s.shape == (d,) and s.out_shape == (rank,)
    fitted = s.fit(bank)
    assert s.components_ is None  # fit returns a copy
    scores = np.asarray(fitted.project(bank))
    centred = bank - bank.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    ref = centred @ vt[:rank].T
    signs = np.sign(np.sum(scores * ref, axis=0))
    np.testing.assert_allclose(scores * signs, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        fitted.explained_variance_ratio_, sv[:rank] ** 2 / np.sum(sv**2), rtol=1e-8
    )
    assert fitted.explained_variance_ratio_.sum() > 0.999  # rank 3 + tiny noise
    np.testing.assert_allclose(fitted.explained_variance_, np.var(ref, axis=0, ddof=1), rtol=1e-8)
    # one vector projects like its row; the sign convention is the documented one
    np.testing.assert_allclose(np.asarray(fitted.project(bank[7])), scores[7], rtol=1e-5)
    comps = fitted.components_
    assert np.all(comps[np.arange(rank), np.argmax(np.abs(comps), axis=1)] > 0)
    assert fitted.out_names == ["fc_pc0", "fc_pc1", "fc_pc2"]
    with pytest.raises(ValueError, match="NaN"):
        s.fit(np.where(np.arange(n)[:, None] == 3, np.nan, bank))


# ---------------------------------------------------------------------------- FCD


def _numpy_fcd_values(x, w, s):
    n_windows = (x.shape[0] - w) // s + 1
    i, j = np.triu_indices(x.shape[1], k=1)
    patterns = np.stack([np.corrcoef(x[k * s : k * s + w].T)[i, j] for k in range(n_windows)])
    fcd = np.corrcoef(patterns)
    a, b = np.triu_indices(n_windows, k=1)
    return fcd[a, b]


def test_fcd_histogram_matches_numpy():
    rng = np.random.default_rng(2)
    # a slowly rotating mixing makes the windowed FC move: FCD values spread over [-1, 1]
    t = np.arange(600)
    base = rng.standard_normal((600, 5))
    x = base + np.sin(2 * np.pi * t / 300.0)[:, None] * base[:, [0]] * np.arange(5)[None, :]
    s = S.FCD(100 * u.ms, 20.0, bins=20).bind_signal(2.0, x.shape)  # 50 and 10 samples
    h = np.asarray(s(x))
    values = _numpy_fcd_values(x, 50, 10)
    ref = np.histogram(values, bins=20, range=(-1, 1))[0] / values.size
    assert s.shape == (20,) and s.n_windows == 56
    assert abs(h.sum() - 1.0) < 1e-6
    np.testing.assert_allclose(h, ref, atol=1e-7)
    assert np.count_nonzero(ref) >= 5  # the check is not trivially on one bin
    assert s.names[0] == "fcd[-1,-0.9)" and s.names[-1] == "fcd[0.9,1)"
    # values outside a narrow range go to the edge bins: still a distribution
    narrow = S.FCD(100.0, 20.0, bins=4, range=(0.0, 0.5)).bind_signal(2.0, x.shape)
    hn = np.asarray(narrow(x))
    clipped = np.clip(values, 0.0, 0.5)
    np.testing.assert_allclose(hn, np.histogram(clipped, 4, (0.0, 0.5))[0] / values.size, atol=1e-7)


# ---------------------------------------------------------------------------- spectra


def test_spectral_two_sinusoids_relative():
    x = sinusoids([[10, 20], [10, 20]], [[2.0, 0.5], [2.0, 0.5]], [[0, 0], [1.0, 2.0]])
    s = S.Spectral(nperseg=1000).bind_signal(1.0, x.shape)  # 1 Hz bins: both on the grid
    out = dict(zip(s.names, np.asarray(s(x)), strict=True))
    assert s.names == [
        "delta_power",
        "theta_power",
        "alpha_power",
        "beta_power",
        "gamma_power",
        "peak_frequency",
    ]
    total = 2.0**2 / 2 + 0.5**2 / 2
    np.testing.assert_allclose(10 ** out["alpha_power"], 2.0 / total, rtol=1e-4)
    np.testing.assert_allclose(10 ** out["beta_power"], 0.125 / total, rtol=1e-3)
    for band in ("delta", "theta", "gamma"):
        assert out[f"{band}_power"] < -5  # no power there
    assert out["peak_frequency"] == pytest.approx(10.0)


def test_spectral_absolute_per_channel():
    x = sinusoids([[10], [25]], [[1.0], [3.0]], [[0.3], [0.0]])
    s = S.Spectral(
        bands={"alpha": (8, 13), "beta": (13, 30)},
        nperseg=1000,
        log=False,
        relative=False,
        per_channel=True,
    ).bind_signal(1.0 * u.ms, x.shape)
    assert s.names == [
        "alpha_power[0]",
        "alpha_power[1]",
        "beta_power[0]",
        "beta_power[1]",
        "peak_frequency[0]",
        "peak_frequency[1]",
    ]
    out = np.asarray(s(x))
    np.testing.assert_allclose(out[:4], [0.5, 0.0, 0.0, 4.5], atol=1e-4, rtol=1e-4)  # A^2/2
    np.testing.assert_allclose(out[4:], [10.0, 25.0])


# ---------------------------------------------------------------------------- order


def test_order_identical_and_antiphase_sinusoids():
    same = sinusoids([[10]] * 4, [[1.0]] * 4, [[0.0]] * 4, n=2000)
    for band in (None, "alpha"):
        s = S.Order(band=band).bind_signal(1.0, same.shape)
        r, meta = np.asarray(s(same))
        assert r == pytest.approx(1.0, abs=1e-4) and meta < 1e-4
    anti = sinusoids([[10]] * 4, [[1.0]] * 4, [[0.0], [0.0], [np.pi], [np.pi]], n=2000)
    r, _ = np.asarray(S.Order().bind_signal(1.0, anti.shape)(anti))
    assert r < 1e-3
    assert S.Order().bind_signal(1.0, anti.shape).names == ["order", "metastability"]


def test_order_band_pass_removes_other_rhythms():
    rng = np.random.default_rng(3)
    phases = rng.uniform(0, 2 * np.pi, (4, 1))
    x = sinusoids(
        [[10, 40]] * 4, [[1.0, 3.0]] * 4, [[0.0, p[0]] for p in phases], n=2000
    )  # common 10 Hz, strong 40 Hz with random phases
    r_alpha, meta = np.asarray(S.Order(band="alpha").bind_signal(1.0, x.shape)(x))
    r_all, _ = np.asarray(S.Order().bind_signal(1.0, x.shape)(x))
    assert r_alpha == pytest.approx(1.0, abs=1e-3) and meta < 1e-3
    assert r_all < 0.9


def test_order_of_independent_noise():
    n_channels = 64
    x = np.random.default_rng(4).standard_normal((4000, n_channels))
    r, meta = np.asarray(S.Order().bind_signal(1.0, x.shape)(x))
    assert r == pytest.approx(math.sqrt(math.pi / (4 * n_channels)), rel=0.1)
    assert meta > 0.02  # R(t) fluctuates, Rayleigh std sqrt((4 - pi) / (4N)) ~ 0.058


# ---------------------------------------------------------------------------- moments, raw


def test_moments_match_numpy():
    rng = np.random.default_rng(5)
    e = rng.standard_normal((3000, 3))
    x = np.zeros_like(e)
    for t in range(1, len(e)):
        x[t] = 0.8 * x[t - 1] + e[t]
    x = x + [1.0, -2.0, 0.5]
    s = S.Moments().bind_signal(1.0, x.shape)
    out = np.asarray(s(x))
    ac1 = [np.corrcoef(x[:-1, c], x[1:, c])[0, 1] for c in range(3)]
    ref = np.concatenate([x.mean(0), x.std(0), ac1])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert np.all(np.abs(out[6:] - 0.8) < 0.05)  # the AR(1) coefficient
    assert s.names[:2] == ["mean[0]", "mean[1]"] and s.names[-1] == "ac1[2]"


def test_timeseries_stride():
    x = np.arange(21 * 2, dtype=float).reshape(21, 2)
    s = S.TimeSeries(stride=4).bind_signal(1.0, x.shape)
    assert s.shape == (5, 2) and not s.flat
    np.testing.assert_array_equal(np.asarray(s(x)), x[::4][:5])
    with pytest.raises(ValueError, match="flat"):
        _ = s.names


# ---------------------------------------------------------------------------- combine


def test_combine_shapes_names_fit():
    rng = np.random.default_rng(6)
    parts = (S.FC(pca=2), S.Moments(), S.Order())
    s = S.combine(S.combine(parts[0], parts[1]), parts[2]).bind_signal(1.0, (200, 4))
    assert len(s.parts) == 3  # nested combine flattened
    assert s.shape == (6 + 12 + 2,) and s.out_shape == (2 + 12 + 2,)
    fc_b, mo_b, or_b = (p.bind_signal(1.0, (200, 4)) for p in parts)
    assert s.names == fc_b.names + mo_b.names + or_b.names
    x = rng.standard_normal((200, 4))
    np.testing.assert_allclose(
        np.asarray(s(x)), np.concatenate([fc_b(x), mo_b(x), or_b(x)]), rtol=1e-6
    )
    bank = rng.standard_normal((50, 20))
    fitted = s.fit(bank)
    assert fitted.parts[0].components_ is not None and s.parts[0].components_ is None
    assert fitted.out_names == ["fc_pc0", "fc_pc1"] + mo_b.names + or_b.names
    fc_fit = fc_b.fit(bank[:, :6])
    expected = np.concatenate([fc_fit.project(bank[:, :6]), bank[:, 6:]], axis=1)
    np.testing.assert_allclose(np.asarray(fitted.project(bank)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(fitted.transform(x)), np.asarray(fitted.project(s(x))), rtol=1e-6
    )
    with pytest.raises(ValueError, match="features"):
        s.fit(bank[:, :10])


# ---------------------------------------------------------------------------- jax transforms


def test_jit_and_vmap_equal_the_loop(sim, signals):
    s = full_summary().bind(sim)
    loop = np.stack([np.asarray(s(sig)) for sig in signals])
    assert loop.shape == (3, s.shape[0]) and np.all(np.isfinite(loop))
    assert not np.allclose(loop[0], loop[1])
    # a summary inside a larger jitted function: vmap over the batch, and one signal
    failed = signals[1].at[7, 0].set(jnp.nan)
    batch, first = jax.jit(lambda xs: (jax.vmap(s)(xs), s(xs[0]) * 1.0))(
        jnp.concatenate([signals, failed[None]])
    )
    np.testing.assert_allclose(np.asarray(batch[:3]), loop, rtol=1e-5, atol=1e-6)
    assert np.all(np.isnan(batch[3]))  # a failed simulation: its row only
    np.testing.assert_allclose(np.asarray(first), loop[0], rtol=1e-5, atol=1e-6)
    ts = S.TimeSeries(stride=10).bind(sim)
    np.testing.assert_array_equal(
        np.asarray(jax.jit(jax.vmap(ts))(signals)), np.asarray(signals)[:, ::10]
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_signal_gives_nan(sim, signals, bad):
    x = np.array(signals[0])
    x[500, 2] = bad
    for summary in (full_summary(), S.TimeSeries(stride=7)):
        out = np.asarray(summary.bind(sim)(x))
        assert np.all(np.isnan(out)), type(summary).__name__


def test_pickle_bound_and_fitted(sim, signals):
    s = full_summary().bind(sim)
    bank = jax.vmap(s)(signals)
    fitted = s.fit(bank)
    for obj in (s, fitted, S.TimeSeries(stride=3).bind(sim), S.FC(pca=2)):
        clone = pickle.loads(pickle.dumps(obj))
        assert repr(clone) == repr(obj)
        if obj.bound:
            # a fresh trace of the clone (a call could reuse the original's compilation)
            fresh = jax.jit(lambda x, c=clone: c._compute(x))(signals[0])
            np.testing.assert_allclose(fresh, obj(signals[0]), rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(clone(signals[0]), obj(signals[0]))
    clone = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(np.asarray(clone.project(bank)), np.asarray(fitted.project(bank)))
    assert clone.out_names == fitted.out_names


# ---------------------------------------------------------------------------- embeddings


@eqx.filter_jit
def _outputs_and_grads(net, xs):
    """One input's output, the batch's (vmap) and the gradient of a loss w.r.t. the parameters."""

    def loss(model):
        return jnp.sum(jax.vmap(model)(xs) ** 2)

    return net(xs[1]), jax.vmap(net)(xs), eqx.filter_grad(loss)(net)


def _check_grads(grads):
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array))
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.sum(jnp.abs(g))) > 0 for g in leaves)  # every parameter is used


def test_mlp_embedding():
    spec = S.MLPEmbedding(out_dim=8, width=32, depth=2)
    net = spec.build(jax.random.key(0), (5, 4))
    xs = jax.random.normal(jax.random.key(1), (6, 5, 4))
    one, batch, grads = _outputs_and_grads(net, xs)
    assert one.shape == (8,) and batch.shape == (6, 8)
    np.testing.assert_allclose(batch[1], one, rtol=1e-5, atol=1e-6)
    assert net.mlp.in_size == 20 and net.mlp.depth == 2  # flattened input
    _check_grads(grads)
    with pytest.raises(ValueError, match="shape"):
        net(xs[0].T)
    assert pickle.loads(pickle.dumps(spec)).width == 32


def test_cnn_embedding():
    spec = S.CNNEmbedding(out_dim=6, channels=(8, 12), kernel_size=5, stride=2)
    net = spec.build(jax.random.key(0), (64, 3))
    assert net.convs[0].in_channels == 3 and net.convs[1].out_channels == 12  # channels in
    xs = jax.random.normal(jax.random.key(1), (4, 64, 3))
    one, batch, grads = _outputs_and_grads(net, xs)
    assert one.shape == (6,) and batch.shape == (4, 6)
    np.testing.assert_allclose(batch[1], one, rtol=1e-5, atol=1e-6)
    assert not np.allclose(batch[0], batch[1])  # depends on the input
    _check_grads(grads)
    with pytest.raises(ValueError, match="in_shape"):
        spec.build(jax.random.key(0), (64,))
