"""Where NUTS starts: a multi-start MAP, its modes grouped and weighed, the metric from it.

Against closed forms: on a mixture of two well-separated Gaussians the Laplace mass of
each mode is the mixture weight (the other component adds less than e^-30 at a mode).
End to end: a delayed 4-region Hopf network with G and a unknown has local modes at
strong coupling (log density thousands of nats below the global one): the old default
start (around the priors' medians) put chains there (R-hat 1.5, measured), the default
multi-start MAP start does not.
"""

from __future__ import annotations

import math
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy.stats import multivariate_normal

import brainmass as bm
import inference as inf
from inference import likelihoods as L
from inference.diagnostics import MultimodalWarning, convergence
from inference.map import _group_modes
from inference.mcmc._nuts import _adapt, _dense, _warn_multimodal
from inference.model import LogDensity

WEIGHTS = (0.7, 0.3)
MEANS = (np.array([-3.0, 0.0]), np.array([3.0, 1.0]))
COVS = (np.diag([0.25, 1.0]), np.array([[0.5, 0.2], [0.2, 0.3]]))


def _log_mixture(z, data=None):
    terms = [
        math.log(w) + jax.scipy.stats.multivariate_normal.logpdf(z, jnp.asarray(m), jnp.asarray(c))
        for w, m, c in zip(WEIGHTS, MEANS, COVS, strict=True)
    ]
    return jax.nn.logsumexp(jnp.stack(terms))


class _Owner:
    """Stands in for a model: the compiled-function cache's owner."""


def _mixture_density() -> LogDensity:
    return LogDensity(
        fn=_log_mixture,
        init=jnp.zeros(2),
        unravel=lambda z: {"z": z},
        constrain=lambda z: {"z": z},
        size=2,
        fn_data=_log_mixture,
    )


def test_modes_of_a_gaussian_mixture_carry_the_mixture_weights():
    ld, owner = _mixture_density(), _Owner()
    sd2 = np.sqrt(np.diag(COVS[1]))
    ends = np.array(
        [
            MEANS[1],  # the lower mode first: grouping sorts by log density
            MEANS[0],
            MEANS[0] + np.array([0.05, -0.1]),  # the same mode, not converged
            MEANS[1] + 0.5 * sd2,  # inside mode 2's 99.9 % region
            np.array([0.0, 12.0]),  # far below both: not examined
        ],
        dtype=np.float32,
    )
    lps = np.array([float(_log_mixture(jnp.asarray(z))) for z in ends])
    modes = _group_modes(owner, ld, None, jnp.asarray(ends), lps)
    assert [m.n_starts for m in modes] == [2, 2, 1]
    np.testing.assert_allclose(modes[0].z, MEANS[0], atol=1e-6)
    np.testing.assert_allclose(modes[1].z, MEANS[1], atol=1e-6)
    np.testing.assert_allclose([m.weight for m in modes[:2]], WEIGHTS, atol=1e-3)
    # the Laplace mass of an exact Gaussian component is its weight: log w_k (normalised)
    np.testing.assert_allclose([m.log_mass for m in modes[:2]], np.log(WEIGHTS), atol=1e-3)
    assert math.isnan(modes[2].log_mass) and modes[2].weight == 0.0
    exact = math.log(WEIGHTS[0] * multivariate_normal(MEANS[0], COVS[0]).pdf(MEANS[0]))
    assert modes[0].log_density == pytest.approx(exact, abs=1e-4)
    summary = modes[1].summary()
    assert summary["n_starts"] == 2 and summary["params"]["z"] == pytest.approx(MEANS[1].tolist())


def _heavy_tailed(z, data=None):
    """One mode, Student-t-like in z[0] (curvature 1 at the top, log-tails), narrow in z[1]."""
    return -2.0 * jnp.log1p(z[0] ** 2 / 4.0) - 0.5 * (z[1] / 0.1) ** 2


def test_a_start_that_stopped_short_on_the_same_hill_joins_the_mode():
    ld = _mixture_density()._replace(fn=_heavy_tailed, fn_data=_heavy_tailed)
    # z[0] = 5 is 5 Laplace sd out (Mahalanobis^2 25 > chi2_2(0.999) = 13.8), 4 nats down,
    # but the density rises all the way to the top: one hill, one mode
    ends = jnp.asarray([[0.0, 0.0], [5.0, 0.0], [-4.0, 0.02]])
    lps = np.array([float(_heavy_tailed(z)) for z in ends])
    modes = _group_modes(_Owner(), ld, None, ends, lps)
    assert len(modes) == 1 and modes[0].n_starts == 3 and modes[0].weight == 1.0


def test_a_second_mode_with_mass_is_reported_and_a_negligible_one_is_not():
    ld, owner = _mixture_density(), _Owner()
    ends = jnp.asarray(np.stack(MEANS), dtype=jnp.float32)
    lps = np.array([float(_log_mixture(z)) for z in ends])
    record = dict(
        method="map", modes=[m.summary() for m in _group_modes(owner, ld, None, ends, lps)]
    )
    with pytest.warns(MultimodalWarning, match=r"2 modes carry mass.*weight 0\.70.*weight 0\.30"):
        _warn_multimodal([record], batch=False)
    record["modes"][1]["weight"] = 0.005  # below 1 %: the chains miss almost nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_multimodal([record], batch=False)
    with pytest.warns(MultimodalWarning, match="subject 1: 2 modes"):
        _warn_multimodal([dict(method="map", modes=[]), dict(record, modes=[
            dict(record["modes"][0], weight=0.5), dict(record["modes"][1], weight=0.5)])],
            batch=True)  # fmt: skip


def test_dense_mass_auto_and_bad_values():
    assert _dense("auto", 2) and _dense("auto", 50) and not _dense("auto", 51)
    assert _dense(True, 500) and not _dense(False, 2)
    flat = types.SimpleNamespace(priors={"model.a": dist.Normal(0.0, 1.0)})
    funnel = types.SimpleNamespace(
        priors={"model.a": inf.Hierarchical(dist.Normal(0.0, 1.0), dist.HalfNormal(1.0))}
    )
    assert _dense("auto", 3, flat) and not _dense("auto", 3, funnel)
    for bad in ("dense", 1, None):
        with pytest.raises(ValueError, match="dense_mass: expected True, False or 'auto'"):
            _dense(bad, 2)


def test_adapt_metric_auto_keeps_a_dense_laplace_metric_only():
    laplace = [dict(method="map", laplace=True)]
    assert _adapt("auto", True, laplace) is False  # the Laplace covariance is kept
    assert _adapt("auto", False, laplace) is True  # a diagonal metric is re-estimated
    assert _adapt("auto", True, [dict(method="map", laplace=False)]) is True  # no Hessian
    assert _adapt("auto", True, [dict(method="prior")]) is True
    assert _adapt("auto", True, [dict(method="checkpoint")]) is True  # an old checkpoint
    assert _adapt("auto", True, laplace * 2 + [dict(method="map", laplace=False)]) is True
    assert _adapt(True, True, laplace) is True and _adapt(False, False, []) is False


# ----------------------------------------------------------------------------- end to end

A, G, SIGMA = 0.05, 0.5, 0.05


@pytest.fixture(scope="module")
def hopf():
    conn = bm.Connectome.synthetic(4, seed=0)
    net = bm.Network(bm.models.Hopf(a=A), conn, coupling=bm.coupling.Linear(G=G), speed=5.0)
    sim = bm.Simulator(net, dt=0.5, duration=250.0, monitor=bm.monitors.TemporalAverage(period=5.0))
    truth = np.asarray(sim.run().signal)
    data = truth + SIGMA * np.asarray(jax.random.normal(jax.random.key(3), truth.shape))
    priors = {"model.a": dist.Uniform(-0.05, 0.15), "coupling.G": dist.Uniform(0.0, 2.0)}
    return inf.BayesianModel(sim, priors, L.TimeSeries(sigma=SIGMA)), data


@pytest.mark.parametrize("backend", ["numpyro", "blackjax"])
def test_default_nuts_finds_the_global_mode_of_a_multimodal_hopf_network(hopf, backend):
    bmodel, data = hopf
    with warnings.catch_warnings():
        warnings.simplefilter("error", MultimodalWarning)  # the local modes carry no mass
        post = inf.nuts(bmodel, data, jax.random.key(1), backend=backend, progress=False,
                        posterior_predictive=False)  # fmt: skip
    start = post.info["init"]
    assert start["method"] == "map" and post.info["dense_mass"] is True
    assert start["laplace"] is True and post.info["adapt_metric"] is False
    modes = start["modes"]
    # the trap exists: the starts found separated modes thousands of nats below the best
    assert len(modes) >= 2 and modes[1]["log_density"] < modes[0]["log_density"] - 1000
    assert modes[0]["weight"] == 1.0
    conv = convergence(post)
    assert max(conv.rhat.values()) <= 1.01, conv.rhat
    assert min(conv.ess_bulk.values()) > 400, conv.ess_bulk
    for name, true in (("model.a", A), ("coupling.G", G)):
        draws = post.samples[name].ravel()
        assert abs(draws.mean() - true) < 3 * draws.std(), (name, draws.mean(), draws.std())


def test_two_modes_of_equal_mass_warn_and_modes_all_samples_both():
    """Hopf with y(0) = 0 observed through x: omega and -omega give the same x(t) (the
    map y -> -y), so a symmetric prior gives two modes of exactly equal mass."""
    conn = bm.Connectome.synthetic(2, seed=0)
    net = bm.Network(bm.models.Hopf(a=0.01, omega=0.06), conn, coupling=bm.coupling.Linear(G=0.02))
    sim = bm.Simulator(net, dt=0.5, duration=100.0, monitor=bm.monitors.TemporalAverage(period=5.0))
    truth = np.asarray(sim.run().signal)
    data = truth + 0.02 * np.asarray(jax.random.normal(jax.random.key(3), truth.shape))
    priors = {"model.omega": dist.Uniform(-0.1, 0.1), "model.a": dist.Uniform(-0.05, 0.05)}
    bmodel = inf.BayesianModel(sim, priors, L.TimeSeries(sigma=0.02))
    fit = inf.map_estimate(bmodel, data, jax.random.key(0), num_starts=8, progress=False)
    assert len(fit.modes) >= 2
    top = sorted(fit.modes[:2], key=lambda m: float(m.params["model.omega"]))
    assert float(top[0].params["model.omega"]) == pytest.approx(-0.06, abs=0.002)
    assert float(top[1].params["model.omega"]) == pytest.approx(0.06, abs=0.002)
    np.testing.assert_allclose([m.weight for m in top], [0.5, 0.5], atol=0.01)  # symmetry
    settings = dict(num_warmup=150, num_samples=150, progress=False, init=fit)
    with pytest.warns(MultimodalWarning, match="2 modes carry mass"):
        best = inf.nuts(bmodel, data, jax.random.key(1), posterior_predictive=False, **settings)
    assert best.info["init"]["chain_modes"] == [0, 0, 0, 0]
    assert len(np.unique(np.sign(best.samples["model.omega"]))) == 1  # one mode only
    with warnings.catch_warnings():
        warnings.simplefilter("error", MultimodalWarning)
        post = inf.nuts(bmodel, data, jax.random.key(1), modes="all", **settings)
    assert post.info["init"]["chain_modes"] == [0, 1, 0, 1]
    signs = np.sign(post.samples["model.omega"]).mean(axis=1)
    assert signs[0] == signs[2] == -signs[1] == -signs[3] and abs(signs[0]) == 1.0
    # the checks run per mode: no R-hat across the modes (it would be huge)
    assert all(p.startswith("mode ") for p in post.info["convergence"])
    stacked = inf.diagnostics.stack_chains(post, weights="mass")
    np.testing.assert_allclose(stacked.weights, [0.5, 0.5], atol=0.01)
    omega = stacked.posterior.samples["model.omega"]
    assert np.mean(omega > 0) == pytest.approx(0.5, abs=0.02)


def test_bad_start_settings_are_named_before_anything_compiles(hopf):
    bmodel, data = hopf
    key = jax.random.key(0)
    for kw, match in (
        (dict(init="median"), "init: expected 'map', 'prior', a MAPResult"),
        (dict(init=[1.0, 2.0]), "init: expected 'map', 'prior', a MAPResult"),
        (dict(modes="both"), "modes: expected 'best' or 'all'"),
        (dict(dense_mass="yes"), "dense_mass: expected True, False or 'auto'"),
        (dict(adapt_metric="no"), "adapt_metric: expected True, False or 'auto'"),
        (dict(target_accept=1.0), "target_accept: expected a probability"),
        (dict(num_chains=0), "num_chains"),
        (dict(max_tree_depth=0), "max_tree_depth"),
    ):
        with pytest.raises(ValueError, match=match):
            inf.nuts(bmodel, data, key, progress=False, **kw)
