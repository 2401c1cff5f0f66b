"""Calibration diagnostics (inference.diagnostics): SBC, TARP, the calibrate driver and PPC.

The reference model is conjugate: theta ~ N(0, I_2), x = theta + N(0, 0.5^2 I_2), whose
posterior is N(0.8 x, 0.2 I_2) exactly.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

from inference.diagnostics import (
    PPCResult,
    SBCResult,
    TARPResult,
    calibrate,
    ppc,
    sbc,
    sbc_ranks,
    tarp,
)

D = 2
NOISE_SD = 0.5
POST_SD = float(np.sqrt(1.0 / (1.0 + 1.0 / NOISE_SD**2)))  # sqrt(0.2)
POST_GAIN = 1.0 / (1.0 + NOISE_SD**2)  # 0.8


@pytest.fixture(scope="module")
def conjugate():
    """500 simulations, 100 draws each: truths, exact, overconfident and biased draws."""
    rng = np.random.default_rng(4)
    n, m = 500, 100
    theta = rng.normal(size=(n, D))
    x = theta + NOISE_SD * rng.normal(size=(n, D))
    mu = POST_GAIN * x
    eps = rng.normal(size=(n, m, D))
    return {
        "theta": theta,
        "exact": mu[:, None, :] + POST_SD * eps,
        "over": mu[:, None, :] + 0.5 * POST_SD * eps,
        "under": mu[:, None, :] + 2.0 * POST_SD * eps,
        "biased": mu[:, None, :] + POST_SD + POST_SD * eps,
    }


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------------------- SBC
def test_sbc_ranks_matches_loop_and_range():
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(7, 13, 3))
    truths = rng.normal(size=(7, 3))
    truths[0] = -10.0  # below every draw -> rank 0
    truths[1] = 10.0  # above every draw -> rank n_draws
    samples[2, :4, 0] = truths[2, 0]  # ties are not below
    expected = np.zeros((7, 3), dtype=int)
    for i in range(7):
        for j in range(3):
            for k in range(13):
                if samples[i, k, j] < truths[i, j]:
                    expected[i, j] += 1
    ranks = sbc_ranks(samples, truths)
    assert ranks.dtype.kind == "i"
    np.testing.assert_array_equal(ranks, expected)
    np.testing.assert_array_equal(ranks[0], 0)
    np.testing.assert_array_equal(ranks[1], 13)
    assert ranks.min() >= 0 and ranks.max() <= 13


def test_sbc_pvalue_is_pearson_chi_square():
    # 99 draws -> 100 rank values, 20 bins of 5 values: equal expected counts.
    rng = np.random.default_rng(1)
    ranks = rng.integers(0, 100, size=(400, 2))
    ranks[:, 1] = np.minimum(ranks[:, 1], 70)  # a pile-up at 70: not uniform
    res = SBCResult(ranks=ranks, n_draws=99, names=["a", "b"], bins=20)
    for j in range(2):
        counts, _ = np.histogram(ranks[:, j], bins=20, range=(0, 100))
        assert res.pvalues[j] == pytest.approx(stats.chisquare(counts).pvalue, rel=1e-10)
    assert res.pvalues[1] < 1e-10


def test_sbc_default_bins_keep_expected_count_at_least_five():
    # 101 rank values: 10 bins hold 10 or 11 values -> 50 * 10 / 101 < 5; 9 bins -> >= 5.
    rng = np.random.default_rng(2)
    res = sbc(rng.normal(size=(50, 100, 1)), rng.normal(size=(50, 1)))
    assert res.bins == 9
    res = sbc(rng.normal(size=(500, 100, 1)), rng.normal(size=(500, 1)))
    assert res.bins == 20  # capped


def test_sbc_exact_posterior_passes(conjugate):
    res = sbc(conjugate["exact"], conjugate["theta"], names=["a", "b"])
    assert res.n_sims == 500 and res.n_draws == 100 and res.n_failed == 0
    assert res.passed(0.01)
    assert np.all(res.pvalues > 0.01)
    text = repr(res)
    assert "SBCResult(500 simulations x 100 draws" in text and "a" in text


def test_passed_is_bonferroni_over_parameters_and_statistics():
    res = SBCResult(ranks=np.zeros((20, 2), dtype=int), n_draws=10, names=["a", "b"])
    res._pvalues = np.array([0.007, 0.5])  # above 0.01 / 2
    assert res.passed(0.01)
    res._pvalues = np.array([0.004, 0.5])
    assert not res.passed(0.01)
    p = PPCResult(
        np.zeros(4), np.zeros((5, 4)), list("abcd"), np.array([0.003, 1, 1, 1]), 0 * np.ones(4)
    )
    assert p.passed(0.01)  # 0.003 > 0.01 / 4
    assert not p.passed(0.02)


@pytest.mark.parametrize("kind", ["over", "biased"])
def test_sbc_miscalibrated_posterior_fails(conjugate, kind):
    res = sbc(conjugate[kind], conjugate["theta"])
    assert not res.passed(0.01)
    assert np.all(res.pvalues < 1e-4)


def test_sbc_coverage_of_central_intervals(conjugate):
    """Exact posteriors cover at the nominal rate (binomial sd 0.013-0.022 for 500
    simulations); intervals half as wide as they should be cover P(|Z| < z_l / 2)."""
    from scipy.stats import norm

    exact = sbc(conjugate["exact"], conjugate["theta"])
    over = sbc(conjugate["over"], conjugate["theta"])
    for level in (0.5, 0.9):
        assert exact.coverage(level).shape == (2,)
        np.testing.assert_allclose(exact.coverage(level), level, atol=0.07)
        expected = 2 * norm.cdf(norm.ppf(0.5 + level / 2) / 2) - 1  # 0.26, 0.59
        np.testing.assert_allclose(over.coverage(level), expected, atol=0.07)
    with pytest.raises(ValueError, match="level"):
        exact.coverage(1.0)


# ---------------------------------------------------------------------------- TARP
def test_tarp_hand_derived_1d():
    # Reference points fixed, no normalisation; f = fraction of draws closer to the reference
    # than the truth:
    #   sim 0: truth 0,  ref 1: distances 3, .5, .5, 2 vs 1    -> f = 2/4
    #   sim 1: truth 2,  ref 0: distances 1, 3, 3, 2.5 vs 2    -> f = 1/4
    #   sim 2: truth -1, ref 0: distances .2, .5, .9, .1 vs 1  -> f = 4/4
    samples = np.array([[-2.0, 0.5, 1.5, 3.0], [1.0, 3.0, -3.0, 2.5], [0.2, -0.5, 0.9, -0.1]])[
        ..., None
    ]
    truths = np.array([[0.0], [2.0], [-1.0]])
    refs = np.array([[1.0], [0.0], [0.0]])
    res = tarp(samples, truths, jax.random.key(0), references=refs, num_alpha=5, norm=False)
    np.testing.assert_allclose(res.f, [0.5, 0.25, 1.0])
    np.testing.assert_allclose(res.alpha, [0.0, 0.25, 0.5, 0.75, 1.0])
    # ECP(alpha) = #{f < alpha} / 3
    np.testing.assert_allclose(res.ecp, [0.0, 0.0, 1 / 3, 2 / 3, 2 / 3])
    assert res.max_deviation == pytest.approx(1 / 3)
    # trapezoid of ecp - alpha = (-1/6, -1/12, -1/3) at alpha = (.5, .75, 1)
    assert res.atc == pytest.approx(-1 / 12)
    # In 1-D the normalisation is a positive affine map (references mapped too) and the two
    # distances coincide: the same coverage fractions.
    for kwargs in ({"norm": True}, {"norm": False, "distance": "manhattan"}):
        other = tarp(samples, truths, jax.random.key(0), references=refs, num_alpha=5, **kwargs)
        np.testing.assert_allclose(other.f, res.f)


def test_tarp_exact_posterior_on_diagonal(conjugate):
    res = tarp(conjugate["exact"], conjugate["theta"], jax.random.key(4))
    assert isinstance(res, TARPResult)
    assert res.alpha.shape == res.ecp.shape == (101,)
    assert res.max_deviation < 0.08
    assert abs(res.atc) < 0.02
    assert "TARPResult(500 simulations x 100 draws" in repr(res)


def test_tarp_miscalibrated_posteriors_deviate(conjugate):
    theta = conjugate["theta"]
    over = tarp(conjugate["over"], theta, jax.random.key(4))
    under = tarp(conjugate["under"], theta, jax.random.key(4))
    biased = tarp(conjugate["biased"], theta, jax.random.key(4))
    assert over.max_deviation > 0.15
    assert biased.max_deviation > 0.1
    # ATC sign convention: overconfident below the diagonal above alpha = 1/2, underconfident
    # above it.
    assert over.atc < -0.03
    assert under.atc > 0.03


def test_tarp_is_reproducible_by_key_refuses_seeds_and_references_are_random(conjugate):
    a = tarp(conjugate["exact"], conjugate["theta"], jax.random.key(3))
    b = tarp(conjugate["exact"], conjugate["theta"], jax.random.key(3))
    c = tarp(conjugate["exact"], conjugate["theta"], jax.random.key(5))
    np.testing.assert_array_equal(a.f, b.f)
    assert not np.array_equal(a.f, c.f)
    with pytest.raises(ValueError, match=r"key: .*pass jax.random.key\(3\) instead of the int"):
        tarp(conjugate["exact"], conjugate["theta"], 3)


def test_tarp_bootstrap_band_width_matches_binomial(conjugate):
    res = tarp(conjugate["exact"], conjugate["theta"], jax.random.key(0), bootstrap=300)
    assert res.lower.shape == res.upper.shape == res.ecp.shape
    assert np.all(res.lower <= res.upper)
    # At alpha = 1/2 the ECP is a proportion over 500 simulations: 95 % band width
    # ~ 2 * 1.96 * sqrt(ecp (1 - ecp) / 500) ~ 0.088.
    i = 50
    expected = 2 * 1.96 * np.sqrt(res.ecp[i] * (1 - res.ecp[i]) / 500)
    assert res.upper[i] - res.lower[i] == pytest.approx(expected, rel=0.25)


# ---------------------------------------------------------------------------- calibrate
def _normal(key, shape):
    """Standard normals fixed by a JAX key (numpy draws: no XLA compile per shape)."""
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    return np.random.default_rng(seed).standard_normal(shape)


def _prior_sample(key, n):
    return _normal(key, (n, D))


def _simulate(key, theta):
    return theta + NOISE_SD * _normal(key, theta.shape)


def _posterior_samples(key, x, num_draws):
    assert np.all(np.isfinite(x)), "the posterior was handed non-finite data"
    eps = _normal(key, (x.shape[0], num_draws, D))
    return POST_GAIN * x[:, None, :] + POST_SD * eps


def _by_hand(key, n, num_draws, chunk, simulate=_simulate):
    """What `calibrate` documents: split in 4, fold the chunk index into the keys."""
    k_prior, k_sim, k_post, k_tarp = jax.random.split(key, 4)
    theta = _prior_sample(k_prior, n)
    xs, draws = [], []
    for c, start in enumerate(range(0, n, chunk)):
        th = theta[start : start + chunk]
        x = simulate(jax.random.fold_in(k_sim, c), th)
        xs.append(np.asarray(x))
        x_ok = np.where(np.isfinite(x), x, 0.0)
        draws.append(np.asarray(_posterior_samples(jax.random.fold_in(k_post, c), x_ok, num_draws)))
    return np.asarray(theta), np.concatenate(xs), np.concatenate(draws), k_tarp


def test_calibrate_reproduces_sbc_and_tarp_on_same_arrays():
    key = jax.random.key(11)
    n, m, chunk = 150, 50, 64  # three chunks, the last one partial
    res_sbc, res_tarp = calibrate(
        key, _prior_sample, _simulate, _posterior_samples, n, num_draws=m,
        names=["a", "b"], chunk_size=chunk, progress=True,
    )  # fmt: skip
    theta, _, draws, k_tarp = _by_hand(key, n, m, chunk)
    ref_sbc = sbc(draws, theta, names=["a", "b"])
    ref_tarp = tarp(draws, theta, k_tarp)
    np.testing.assert_array_equal(res_sbc.ranks, ref_sbc.ranks)
    np.testing.assert_allclose(res_sbc.pvalues, ref_sbc.pvalues)
    np.testing.assert_allclose(res_tarp.ecp, ref_tarp.ecp)
    assert res_sbc.n_failed == 0 and res_sbc.n_draws == m and res_sbc.names == ["a", "b"]
    assert res_sbc.passed()


def test_calibrate_drops_and_counts_failed_simulations():
    def simulate(key, theta):
        x = _simulate(key, theta)
        return np.where(theta[:, :1] > 1.0, np.nan, x)  # rows with theta_0 > 1 fail

    key = jax.random.key(5)
    n, m, chunk = 120, 30, 50
    res_sbc, res_tarp = calibrate(
        key, _prior_sample, simulate, _posterior_samples, n, num_draws=m,
        chunk_size=chunk, progress=False,
    )  # fmt: skip
    theta, x, draws, _ = _by_hand(key, n, m, chunk, simulate=simulate)
    ok = np.all(np.isfinite(x), axis=1)
    n_bad = int(np.sum(theta[:, 0] > 1.0))
    assert n_bad > 5
    assert res_sbc.n_failed == n_bad == n - ok.sum()
    assert res_sbc.ranks.shape == (n - n_bad, D)
    assert res_tarp.n_sims == n - n_bad
    # The kept simulations are the finite ones, in order, with their own draws.
    np.testing.assert_array_equal(res_sbc.ranks, sbc_ranks(draws[ok], theta[ok]))
    assert f"{n_bad} failed" in repr(res_sbc)


def test_calibrate_errors():
    with pytest.raises(ValueError, match="num_simulations"):
        calibrate(jax.random.key(0), _prior_sample, _simulate, _posterior_samples, 0)
    with pytest.raises(ValueError, match="posterior_samples: expected shape"):
        calibrate(
            jax.random.key(0), _prior_sample, _simulate,
            lambda k, x, m: _posterior_samples(k, x, m)[:, :, :1], 10, num_draws=5, progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match="all 10 simulations"):
        calibrate(
            jax.random.key(0), _prior_sample, lambda k, th: np.full_like(th, np.nan),
            _posterior_samples, 10, progress=False,
        )  # fmt: skip


# ---------------------------------------------------------------------------- PPC
def test_ppc_observed_from_predictive_is_not_extreme():
    rng = np.random.default_rng(7)
    predicted = rng.normal(size=(4000, 3))
    observed = rng.normal(size=3)
    res = ppc(observed, predicted, names=["fc", "peak", "var"])
    assert isinstance(res, PPCResult)
    assert np.all(res.pvalues > 0.01)
    assert res.passed(0.01)
    # closed form for a standard-normal predictive: p = 2 min(Phi(obs), 1 - Phi(obs))
    exact = 2 * np.minimum(stats.norm.cdf(observed), stats.norm.sf(observed))
    np.testing.assert_allclose(res.pvalues, exact, atol=0.03)
    np.testing.assert_allclose(res.zscores, observed, atol=0.06)
    assert "fc" in repr(res)


def test_ppc_observed_far_outside_fails():
    rng = np.random.default_rng(8)
    predicted = rng.normal(size=(2000, 3))
    res = ppc(np.array([5.0, -6.0, 0.1]), predicted)
    assert res.pvalues[0] < 0.01 and res.pvalues[1] < 0.01
    assert res.pvalues[2] > 0.5
    assert res.zscores[0] > 4 and res.zscores[1] < -5
    assert not res.passed(0.01)


def test_ppc_hand_pvalue():
    # P(pred <= 2) = 2/5, P(pred >= 2) = 4/5 -> p = 2 * 2/5
    res = ppc(2.0, np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert res.pvalues[0] == pytest.approx(0.8)
    assert res.zscores[0] == pytest.approx((2.0 - 3.0) / np.std([1, 2, 3, 4, 5], ddof=1))


# ---------------------------------------------------------------------------- plots
def test_plots_return_axes(conjugate):
    res = sbc(conjugate["exact"][:100], conjugate["theta"][:100])
    axes = res.plot()
    assert len(axes) == D and all(isinstance(a, matplotlib.axes.Axes) for a in axes)
    _, given = plt.subplots(1, D)
    assert list(res.plot(ax=given, bins=10)) == list(given)
    assert isinstance(res.plot_ecdf(), matplotlib.axes.Axes)
    t = tarp(conjugate["exact"][:100], conjugate["theta"][:100], jax.random.key(0), bootstrap=20)
    assert isinstance(t.plot(), matplotlib.axes.Axes)
    p = ppc(np.zeros(3), np.random.default_rng(0).normal(size=(50, 3)))
    assert len(p.plot()) == 3


# ---------------------------------------------------------------------------- errors
def test_shape_errors_name_arguments_and_shapes():
    samples = np.zeros((5, 10, 2))
    with pytest.raises(ValueError, match=r"truths: expected shape \(n_sims, d\) = \(5, 2\).*"
                       r"\(5, 10, 2\).*got \(5, 3\)"):  # fmt: skip
        sbc_ranks(samples, np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"samples: expected shape \(n_sims, n_draws, d\)"):
        sbc(np.zeros((5, 10)), np.zeros((5,)))
    with pytest.raises(ValueError, match=r"truths: .*got \(4, 2\)"):
        tarp(samples, np.zeros((4, 2)), jax.random.key(0))
    with pytest.raises(ValueError, match=r"references: expected shape .*\(5, 2\).*got \(5, 1\)"):
        tarp(samples, np.zeros((5, 2)), jax.random.key(0), references=np.zeros((5, 1)))
    with pytest.raises(ValueError, match="distance"):
        tarp(samples, np.zeros((5, 2)), jax.random.key(0), distance="cosine")
    with pytest.raises(ValueError, match="names: expected 2 labels"):
        sbc(np.zeros((20, 10, 2)), np.zeros((20, 2)), names=["a"])
    with pytest.raises(ValueError, match="samples: 1 values are not finite"):
        sbc(np.where(np.arange(200).reshape(10, 10, 2) == 3, np.nan, 0.0), np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"predicted: expected shape \(n_draws, k\) = "
                       r"\(n_draws, 3\).*got \(10, 2\)"):  # fmt: skip
        ppc(np.zeros(3), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="alpha"):
        sbc(np.zeros((20, 10, 1)), np.zeros((20, 1))).passed(1.5)
