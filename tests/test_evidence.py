"""The marginal likelihood (`inference.log_evidence`) against a conjugate closed form.

The model: a deterministic 4-region linear network at rest (x(0) = 0, so its signal is
exactly 0 whatever its decay rate lam, which keeps its LogNormal prior) observed with
Gaussian noise of unknown variance, sigma^2 ~ InverseGamma(alpha, beta). The prior of lam
integrates to 1, and with the mean `mu = 0` known the evidence is

    p(y) = (2 pi)^(-n/2) beta^alpha Gamma(alpha + n/2) / (Gamma(alpha) (beta + SS/2)^(alpha + n/2))

with SS = sum (y - mu)^2. In the sampler's unconstrained space (log sigma) the posterior
is a log-gamma, not a Gaussian: the Laplace estimate is close, bridge sampling matches
within its standard error.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.distributions.transforms import PowerTransform
from scipy.special import gammaln

import brainmass as bm
import inference as inf
from inference import likelihoods as L

ALPHA, BETA = 3.0, 0.002  # prior mean of sigma^2: 0.001, sigma about 0.03


@pytest.fixture(scope="module")
def problem():
    conn = bm.Connectome.synthetic(4, seed=0)
    net = bm.Network(bm.models.Linear(lam=0.05), conn, coupling=bm.coupling.Linear(G=0.02))
    sim = bm.Simulator(
        net,
        dt=0.5,
        duration=20.0,
        monitor=bm.monitors.TemporalAverage(period=5.0),
        init={"x": np.zeros(4)},
    )
    mu = np.asarray(sim.run().signal)
    assert np.all(mu == 0.0)
    y = mu + 0.03 * np.asarray(jax.random.normal(jax.random.key(3), mu.shape))
    sigma_prior = dist.TransformedDistribution(dist.InverseGamma(ALPHA, BETA), PowerTransform(0.5))
    lam_prior = dist.LogNormal(math.log(0.05), 0.5)
    bmodel = inf.BayesianModel(sim, {"model.lam": lam_prior}, L.TimeSeries(sigma=sigma_prior))
    n, ss = y.size, float(np.sum((y - mu) ** 2))
    exact = (
        -0.5 * n * math.log(2 * math.pi)
        + ALPHA * math.log(BETA)
        + gammaln(ALPHA + n / 2)
        - gammaln(ALPHA)
        - (ALPHA + n / 2) * math.log(BETA + ss / 2)
    )
    return bmodel, y, exact


def test_bridge_sampling_matches_the_conjugate_evidence(problem):
    bmodel, y, exact = problem
    fit = inf.map_estimate(bmodel, y, jax.random.key(0), progress=False)
    post = inf.nuts(bmodel, y, jax.random.key(1), num_warmup=200, num_samples=500, init=fit,
                    progress=False, posterior_predictive=False)  # fmt: skip
    ev = inf.log_evidence(bmodel, y, post, jax.random.key(2))
    assert ev.method == "bridge" and ev.info["converged"]
    assert 0 < ev.se < 0.05, ev
    assert abs(ev.log_z - exact) < max(4 * ev.se, 0.02), (ev, exact)  # measured: 1.3 se
    # the Laplace estimate over the MAP's modes: close (the log-gamma posterior of log
    # sigma is nearly Gaussian with 16 observations; measured 0.008 nats off), not exact
    lap = inf.log_evidence(bmodel, y, fit)
    assert lap.method == "laplace" and math.isnan(lap.se)
    assert abs(lap.log_z - exact) < 0.1, (lap, exact)
    # early stopping (nuts's default start): fewer steps, the same mode
    quick = inf.map_estimate(bmodel, y, jax.random.key(0), progress=False, tol=1e-3)
    assert fit.history.shape[0] == 500 and quick.history.shape[0] < 500, quick.history.shape
    assert quick.history.shape[0] % 50 == 0  # whole chunks
    assert quick.log_density == pytest.approx(fit.log_density, abs=1e-2)


def test_bad_evidence_inputs(problem):
    bmodel, y, _ = problem
    with pytest.raises(ValueError, match="posterior: expected a Posterior or a MAPResult"):
        inf.log_evidence(bmodel, y, {"sigma": 1.0})
    short = inf.Posterior(
        samples={s: np.full((1, 10), 0.03) for s in bmodel.latent_sites()}, sample_stats={},
        units={}, method="test",
    )  # fmt: skip
    with pytest.raises(ValueError, match="at least 100 draws"):
        inf.log_evidence(bmodel, y, short)
    other = inf.Posterior(samples={"coupling.G": np.zeros((2, 100))}, sample_stats={}, units={},
                          method="test")  # fmt: skip
    with pytest.raises(ValueError, match="lacks the latent sites"):
        inf.log_evidence(bmodel, y, other)
    with pytest.raises(ValueError, match="bmodel: expected"):
        inf.log_evidence(object(), y, short)
