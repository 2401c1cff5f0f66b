"""Convergence checks of MCMC draws (`inference.diagnostics.convergence`) and NUTS's energy.

Against closed forms: the ESS of AR(1) chains with coefficient rho is n (1 - rho) / (1 + rho);
the E-BFMI of independent energies is E[(E_n - E_{n-1})^2] / Var(E) = 2, of a random walk
near 0; at stationarity the kinetic energy at a NUTS draw (energy + lp) has mean d / 2 for a
unit mass matrix scaled to the posterior (the momentum's marginal is the canonical one).
"""

from __future__ import annotations

import math
import warnings

import arviz as az
import jax
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats as st

import brainmass as bm
import inference as inf
from inference import likelihoods as L
from inference.diagnostics import Convergence, ConvergenceWarning, convergence
from inference.results import Posterior


def _posterior(samples, sample_stats=None):
    return Posterior(samples=samples, sample_stats=sample_stats or {}, units={}, method="test")


def _ar1(rng, rho, shape):
    """AR(1) chains `(chains, n)` with coefficient `rho` and unit stationary variance."""
    chains, n = shape
    x = np.empty(shape)
    x[:, 0] = rng.standard_normal(chains)
    scale = math.sqrt(1 - rho**2)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + scale * rng.standard_normal(chains)
    return x


def test_mixed_draws_pass_and_the_ess_of_ar1_chains_is_the_closed_form():
    rng = np.random.default_rng(0)
    rho, chains, n = 0.8, 4, 4000
    post = _posterior(
        {
            "iid": rng.standard_normal((chains, n)),
            "ar": _ar1(rng, rho, (chains, n)),
            "vec": rng.standard_normal((chains, n, 3)),
        },
        {"diverging": np.zeros((chains, n), bool), "energy": rng.standard_normal((chains, n))},
    )
    conv = convergence(post)
    assert isinstance(conv, Convergence) and conv.ok, conv.problems
    assert set(conv.rhat) == {"iid", "ar", "vec[0]", "vec[1]", "vec[2]"}
    assert max(conv.rhat.values()) < 1.01
    expected = chains * n * (1 - rho) / (1 + rho)  # 1778
    assert 0.8 * expected < conv.ess_bulk["ar"] < 1.25 * expected, conv.ess_bulk["ar"]
    assert 0.85 * chains * n < conv.ess_bulk["iid"] < 1.15 * chains * n
    # independent energies: E-BFMI = 2 Var / Var = 2
    np.testing.assert_allclose(conv.bfmi, 2.0, rtol=0.1)
    assert conv.n_divergent == 0 and "ok" in repr(conv)


def test_each_failed_check_names_the_parameter_chain_and_threshold():
    rng = np.random.default_rng(1)
    chains, n = 2, 500
    stuck = rng.standard_normal((chains, n, 2))
    stuck[1, :, 1] += 4.0  # chain 1 sits in another mode for entry 1 only
    energy = rng.standard_normal((chains, n))
    energy[0] = np.cumsum(energy[0])  # chain 0: a random walk in energy, E-BFMI near 0
    diverging = np.zeros((chains, n), bool)
    diverging[0, :7] = True
    post = _posterior(
        {"model.a": stuck, "slow": _ar1(rng, 0.99, (chains, n))},
        {"diverging": diverging, "energy": energy},
    )
    conv = convergence(post)
    text = "\n".join(conv.problems)
    assert not conv.ok and len(conv.problems) == 5, conv.problems
    rhat_line = next(p for p in conv.problems if p.startswith("R-hat"))
    assert "'model.a[1]'" in rhat_line and "'model.a[0]'" not in rhat_line
    assert conv.rhat["model.a[1]"] > 1.5 and conv.rhat["model.a[0]"] < 1.01
    assert "bulk ESS below 200 (100 per chain)" in text and "'slow'" in text
    assert "tail ESS below 200" in text
    assert "7 divergent transitions after warmup" in text and "target_accept" in text
    assert "E-BFMI below 0.3 (chain 0:" in text and "chain 1" not in text.split("E-BFMI")[1]
    # thresholds are arguments
    lenient = convergence(post, rhat_max=10.0, ess_per_chain=1.0, bfmi_min=0.0)
    assert lenient.problems == ("7 divergent transitions after warmup (0.7% of the draws): "
                                "the sampler misses parts of the posterior; raise "
                                "target_accept (e.g. 0.95) or reparametrise (non-centred "
                                "hierarchical priors)",)  # fmt: skip


def test_without_statistics_only_the_draws_are_judged():
    rng = np.random.default_rng(2)
    conv = convergence(_posterior({"a": rng.standard_normal((4, 300))}))
    assert conv.n_divergent is None and conv.bfmi is None and conv.ok
    short = convergence(_posterior({"a": rng.standard_normal((1, 3))}))
    assert math.isnan(short.rhat["a"])  # too few draws to judge R-hat


# ----------------------------------------------------------------------------- NUTS


def _model():
    conn = bm.Connectome.synthetic(2, seed=0)
    net = bm.Network(bm.models.Linear(lam=0.05), conn, coupling=bm.coupling.Linear(G=0.02))
    monitor = bm.monitors.TemporalAverage(period=5.0)
    sim = bm.Simulator(net, dt=1.0, duration=20.0, monitor=monitor, init={"x": [1.0, -0.5]})
    signal = np.asarray(sim.run().signal)
    data = signal + 0.05 * np.random.default_rng(0).standard_normal(signal.shape)
    priors = {"model.lam": dist.LogNormal(math.log(0.05), 0.5), "coupling.G": dist.Uniform(0, 0.2)}
    return inf.BayesianModel(sim, priors, L.TimeSeries(sigma=0.05)), data


@pytest.mark.parametrize("backend", ["numpyro", "blackjax"])
def test_nuts_records_energy_and_warns_about_too_few_draws(backend):
    bmodel, data = _model()
    with pytest.warns(ConvergenceWarning, match=r"bulk ESS below 200 .* 'model\.lam'"):
        short = inf.nuts(bmodel, data, jax.random.key(0), num_warmup=30, num_samples=8,
                         num_chains=2, backend=backend, progress=False, init="prior",
                         posterior_predictive=False)  # fmt: skip
    assert any("ESS" in p for p in short.info["convergence"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = inf.nuts(bmodel, data, jax.random.key(1), num_warmup=300, num_samples=600,
                        num_chains=2, backend=backend, progress=False, init="prior",
                        posterior_predictive=False)  # fmt: skip
    energy, lp = post.sample_stats["energy"], post.sample_stats["lp"]
    assert energy.shape == lp.shape == (2, 600) and np.all(np.isfinite(energy))
    # energy = potential (-lp) + kinetic (>= 0); at stationarity the kinetic energy's mean is
    # d / 2 (d = 2 parameters)
    kinetic = energy + lp
    assert np.all(kinetic > -1e-3)
    assert 0.75 < kinetic.mean() < 1.3, kinetic.mean()
    # ArviZ reads it: E-BFMI, the energy plot
    tree = post.to_arviz()
    bfmi = np.asarray(az.bfmi(tree)["energy"]).ravel()
    assert bfmi.shape == (2,) and np.all(bfmi > 0.3)
    az.plot_energy(tree, backend="matplotlib")
    assert post.info["convergence"] == list(convergence(post).problems)


def test_prior_and_prior_predictive_groups_on_request(tmp_path):
    bmodel, data = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = inf.nuts(bmodel, data, jax.random.key(0), num_warmup=20, num_samples=20,
                        num_chains=1, progress=False, posterior_predictive=False,
                        prior_draws=400, init="prior")  # fmt: skip
        plain = inf.nuts(bmodel, data, jax.random.key(0), num_warmup=20, num_samples=20,
                         num_chains=1, progress=False, posterior_predictive=False,
                         init="prior")  # fmt: skip
    # asking for the prior changes nothing in the posterior draws
    for k, v in post.samples.items():
        np.testing.assert_array_equal(v, plain.samples[k])
    assert plain.prior is None and plain.prior_predictive is None
    lam, g = post.prior["model.lam"], post.prior["coupling.G"]
    assert lam.shape == g.shape == (1, 400)
    # the draws follow the priors (Kolmogorov-Smirnov against the distributions themselves)
    assert st.kstest(np.log(lam.ravel()), st.norm(math.log(0.05), 0.5).cdf).pvalue > 1e-3
    assert st.kstest(g.ravel(), st.uniform(0.0, 0.2).cdf).pvalue > 1e-3
    # the prior predictive: the simulator at each prior draw plus the likelihood's noise
    assert post.prior_predictive.shape == (1, 400, *data.shape)
    z = []
    for i in range(0, 400, 40):
        theta = {"model.lam": float(lam[0, i]), "coupling.G": float(g[0, i])}
        pred = np.asarray(bmodel.sim.with_params(theta).run().signal)
        z.append((post.prior_predictive[0, i] - pred) / 0.05)
    z = np.concatenate([a.ravel() for a in z])
    assert abs(z.mean()) < 0.2 and 0.85 < z.std() < 1.15, (z.mean(), z.std())
    tree = post.to_arviz()
    assert {"prior", "prior_predictive", "posterior"} <= set(tree.children)
    az.plot_prior_posterior(tree, backend="matplotlib")
    back = Posterior.load(post.save(tmp_path / "p.nc"))
    np.testing.assert_array_equal(back.prior["coupling.G"], g)
    np.testing.assert_array_equal(back.prior_predictive, post.prior_predictive)
    with pytest.raises(ValueError, match="prior_draws"):
        inf.nuts(bmodel, data, jax.random.key(0), prior_draws=-1, progress=False)
