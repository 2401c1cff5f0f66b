"""NumPyro reparametrisation handlers pass through `BayesianModel` and `CohortModel`.

`reparam={"coupling.G": LocScaleReparam(0)}` samples the standardised value
`G_decentered = (G - mu) / s` of a Normal(mu, s) prior. The density of the new
site is the old one times the constant Jacobian s, so the log densities differ by
exactly log s at corresponding points, the mode is the same, and `G` stays in the
output as a deterministic site.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.infer.reparam import LocScaleReparam

import brainmass as bm
import inference as inf
from inference import likelihoods as L
from inference.mcmc._checkpoint import _fingerprint

MU, S = 0.02, 0.01
PRIORS = {"model.lam": dist.LogNormal(math.log(0.05), 0.5), "coupling.G": dist.Normal(MU, S)}


@pytest.fixture(scope="module")
def sim():
    conn = bm.Connectome.synthetic(4, seed=0)
    net = bm.Network(bm.models.Linear(lam=0.05), conn, coupling=bm.coupling.Linear(G=0.02))
    return bm.Simulator(
        net,
        dt=0.5,
        duration=60.0,
        monitor=bm.monitors.TemporalAverage(period=5.0),
        init={"x": np.array([1.0, 0.5, -0.5, 0.2])},
    )


@pytest.fixture(scope="module")
def data(sim):
    truth = np.asarray(sim.run().signal)
    return truth + 0.02 * np.asarray(jax.random.normal(jax.random.key(3), truth.shape))


@pytest.fixture(scope="module")
def models(sim):
    plain = inf.BayesianModel(sim, PRIORS, L.TimeSeries(sigma=0.02))
    reparam = inf.BayesianModel(
        sim, PRIORS, L.TimeSeries(sigma=0.02), reparam={"coupling.G": LocScaleReparam(0)}
    )
    return plain, reparam


def test_sites_and_log_density_differ_by_the_jacobian(models, data):
    plain, rep = models
    assert plain.latent_sites() == ["coupling.G", "model.lam"]
    assert rep.latent_sites() == ["coupling.G_decentered", "model.lam"]
    ld_plain, ld_rep = plain.logdensity(data), rep.logdensity(data)
    for g, lam in ((0.02, 0.05), (0.031, 0.04), (-0.005, 0.08)):
        z_plain = plain.flatten({"coupling.G": g, "model.lam": lam})
        z_rep = rep.flatten({"coupling.G_decentered": (g - MU) / S, "model.lam": lam})
        expected = float(ld_plain.fn(z_plain)) + math.log(S)
        assert float(ld_rep.fn(z_rep)) == pytest.approx(expected, rel=1e-6, abs=1e-6)
        out = ld_rep.constrain(z_rep)  # the parameter itself, as a deterministic site
        assert float(out["coupling.G"]) == pytest.approx(g, rel=1e-6, abs=1e-9)
    # prior draws carry the parameter with its prior's moments
    draws = rep.sample_prior(jax.random.key(0), 4000)
    assert abs(draws["coupling.G"].mean() - MU) < 4 * S / math.sqrt(4000)
    assert draws["coupling.G"].std() == pytest.approx(S, rel=0.05)


def test_the_mode_is_the_same(models, data):
    plain, rep = models
    kw = dict(steps=300, num_starts=4, progress=False)
    fit_plain = inf.map_estimate(plain, data, jax.random.key(0), **kw)
    fit_rep = inf.map_estimate(rep, data, jax.random.key(0), **kw)
    for name in ("coupling.G", "model.lam"):
        assert float(fit_rep.params[name]) == pytest.approx(
            float(fit_plain.params[name]), rel=2e-3
        ), name
    assert "coupling.G_decentered" in fit_rep.params
    assert fit_rep.log_density == pytest.approx(fit_plain.log_density + math.log(S), abs=1e-3)


def test_checkpoint_fingerprint_records_the_reparametrisation(models, data):
    plain, rep = models
    key = jax.random.key(0)
    fp_plain = _fingerprint(plain, data, key, {}, None, False)
    fp_rep = _fingerprint(rep, data, key, {}, None, False)
    assert "reparam" not in fp_plain  # checkpoints written before the field still resume
    assert "LocScaleReparam" in fp_rep["reparam"] and "coupling.G" in fp_rep["reparam"]


def test_bad_reparam_is_a_clear_error(sim):
    lik = L.TimeSeries(sigma=0.02)
    with pytest.raises(ValueError, match=r"reparam: 'coupling\.g'.*did you mean 'coupling\.G'"):
        inf.BayesianModel(sim, PRIORS, lik, reparam={"coupling.g": LocScaleReparam(0)})
    with pytest.raises(ValueError, match=r"reparam\['coupling\.G'\]: expected a numpyro"):
        inf.BayesianModel(sim, PRIORS, lik, reparam={"coupling.G": "noncentred"})
    with pytest.raises(ValueError, match="reparam: expected a dict"):
        inf.BayesianModel(sim, PRIORS, lik, reparam=[LocScaleReparam(0)])


def test_cohort_model_passes_reparam_through(sim):
    priors = {
        "model.lam": inf.Hierarchical(
            dist.Normal(math.log(0.05), 0.3),
            dist.HalfNormal(0.2),
            transform=dist.transforms.ExpTransform(),
        ),
        "coupling.G": dist.Normal(MU, S),
    }
    cohort = inf.CohortModel(
        sim,
        priors,
        L.TimeSeries(sigma=0.02),
        n_subjects=3,
        reparam={"model.lam.loc": LocScaleReparam(0)},
    )
    assert "model.lam.loc_decentered" in cohort.latent_sites()
    assert "model.lam.loc" not in cohort.latent_sites()
    draws = cohort.sample_prior(jax.random.key(1), 4000)
    assert draws["model.lam.loc"].mean() == pytest.approx(math.log(0.05), abs=0.03)
    assert draws["model.lam.loc"].std() == pytest.approx(0.3, rel=0.05)
    assert jnp.shape(draws["model.lam"]) == (4000, 3)
