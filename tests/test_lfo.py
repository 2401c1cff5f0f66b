"""Leave-future-out cross-validation against a quadrature reference.

One unknown (the decay rate of a noise-driven 2-region linear network, observed
exactly every 5 ms: an Ornstein-Uhlenbeck process, correlation time 20 ms, so the
samples are autocorrelated). The reference computes each origin's predictive
density on a fine grid of the rate: the posterior given the past is the prior
times the one-step predictive densities of the samples before the origin, and the
score of origin c is log sum_grid w(lam) p(y_c | y_<c, lam). `inf.lfo` gets the
same numbers from NUTS refits on the series with its future set to NaN (exact) and
from importance sampling between refits (approx).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy.special import logsumexp

import brainmass as bm
import inference as inf
from inference import likelihoods as L

N_TIME = 30
ORIGINS = 4  # the last 4 samples are forecast
PRIOR = dist.LogNormal(math.log(0.05), 0.4)
NUTS = dict(num_warmup=200, num_samples=500, num_chains=2, progress=False)


@pytest.fixture(scope="module")
def problem():
    conn = bm.Connectome.synthetic(2, seed=0)
    net = bm.Network(
        bm.models.Linear(lam=0.05),
        conn,
        coupling=bm.coupling.Linear(G=0.005),
        noise=bm.noise.Additive(sigma=0.1),
    )
    sim = bm.Simulator(net, dt=0.5, duration=5.0 * N_TIME, monitor=bm.monitors.Raw(5.0))
    data = np.asarray(sim.run(jax.random.key(4)).signal)
    bmodel = inf.BayesianModel(sim, {"model.lam": PRIOR}, L.StateSpace())
    post = inf.nuts(bmodel, data, jax.random.key(0), **NUTS)
    return bmodel, data, post


def quadrature_lfo(bmodel, data, min_observations):
    """Per-origin elpd on a grid of the rate (the grid spans the prior's 1e-4 tails).

    The grid is uniform in log(lam): each point's weight carries d lam = lam d log(lam).
    """
    grid = np.exp(np.linspace(math.log(0.05) - 1.6, math.log(0.05) + 1.6, 1201))
    ll, _ = inf.predictive(bmodel, {"model.lam": grid[None, :]}, data, jax.random.key(0))
    ll = np.asarray(ll[0], dtype=np.float64)  # (grid, time): log p(y_t | y_<t, lam)
    log_prior = np.asarray(PRIOR.log_prob(jnp.asarray(grid)), dtype=np.float64) + np.log(grid)
    out = []
    for c in range(min_observations, N_TIME):
        log_w = log_prior + ll[:, :c].sum(axis=1)
        out.append(logsumexp(log_w + ll[:, c]) - logsumexp(log_w))
    return np.array(out)


@pytest.mark.parametrize("method", ["exact", "approx"])
def test_lfo_matches_quadrature(problem, method):
    bmodel, data, post = problem
    m = N_TIME - ORIGINS
    reference = quadrature_lfo(bmodel, data, m)
    result = inf.lfo(
        bmodel, data, jax.random.key(1), min_observations=m, posterior=post, method=method, **NUTS
    )
    assert result.n_data_points == ORIGINS
    np.testing.assert_allclose(np.asarray(result.elpd_i), reference, atol=0.02)
    assert float(result.elpd) == pytest.approx(reference.sum(), abs=0.05)
    if method == "exact":
        assert result.n_refits == ORIGINS
    # LOO on the same series is not the same number: it conditions on the future too
    assert np.isfinite(float(result.elpd))


def test_lfo_refuses_what_it_cannot_score(problem):
    bmodel, data, post = problem
    with pytest.raises(ValueError, match="complete series"):
        bad = data.copy()
        bad[3] = np.nan
        inf.lfo(bmodel, bad, jax.random.key(0), min_observations=5, posterior=post)
    sim = bmodel.sim
    det = bm.Simulator(
        bm.Network(bm.models.Linear(lam=0.05), sim.network.connectome),
        dt=0.5,
        duration=50.0,
        monitor=bm.monitors.Raw(5.0),
        init={"x": np.ones(2)},
    )
    ts = inf.BayesianModel(det, {"model.lam": PRIOR}, L.TimeSeries(sigma=0.1))
    with pytest.raises(ValueError, match="StateSpace.*use LOO"):
        inf.lfo(ts, np.zeros((10, 2)), jax.random.key(0), min_observations=5)
    with pytest.raises(ValueError, match="batch: lfo scores one series"):
        inf.lfo(bmodel, data, jax.random.key(0), min_observations=5, posterior=post, batch=True)
    with pytest.raises(ValueError, match="shape"):
        inf.lfo(bmodel, data[:-1], jax.random.key(0), min_observations=5, posterior=post)
