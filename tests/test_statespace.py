"""`likelihoods.StateSpace`: the exact likelihood of a noise-driven network's series.

References written here, independent of brainmass.linear and inference._kalman:

- the dense multivariate normal of the whole observed series, its covariance built with
  scipy from the OU network's closed form, Cov(x(t), x(s)) = e^{A (t - s)} P for t >= s,
  P from the continuous Lyapunov equation, the box-car average as an explicit double sum;
- the exact VAR(1) factorisation of a fully observed OU series (the Markov property),
  evaluated on a grid: the grid posterior NUTS on StateSpace must reproduce.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.linalg
import scipy.stats as st

import brainmass as bm
import inference as inf
from inference import likelihoods as L

W2 = np.array([[0.0, 1.0], [0.6, 0.0]])
W3 = np.array([[0.0, 1.0, 0.4], [0.7, 0.0, 1.0], [0.2, 0.9, 0.0]])


def _ou(weights, *, lam, G, sigma, monitor, duration, dt=0.1, lengths=None, speed=None):
    weights = np.asarray(weights, float)
    conn = bm.Connectome.from_arrays(
        weights, np.zeros_like(weights) if lengths is None else np.asarray(lengths, float)
    )
    net = bm.Network(
        bm.models.Linear(lam=lam),
        conn,
        coupling=bm.coupling.Linear(G=G),
        noise=bm.noise.Additive(sigma=sigma),
        speed=speed,
    )
    return bm.Simulator(net, dt=dt, duration=duration, monitor=monitor)


def _ou_matrices(weights, lam, G, sigma):
    a = -lam * np.eye(len(weights)) + G * np.asarray(weights)
    p = scipy.linalg.solve_continuous_lyapunov(a, -(sigma**2) * np.eye(len(weights)))
    return a, p


def _dense_cov(a, p, times, *, average_steps=None, dt=None):
    """Covariance of the stacked series: point samples at `times`, or P-step box-car means."""
    n = a.shape[0]

    cache = {}

    def lagged(t):  # Cov(x(s + t), x(s)), computed once per distinct lag
        key = round(t, 9)
        if key not in cache:
            cache[key] = (
                scipy.linalg.expm(a * t) @ p if t >= 0 else (scipy.linalg.expm(a * -t) @ p).T
            )
        return cache[key]

    if average_steps is None:
        offsets = np.zeros(1)
    else:  # the mean of the values at the steps in (t - period, t]
        offsets = -dt * np.arange(average_steps)
    T = len(times)
    cov = np.zeros((T * n, T * n))
    for j in range(T):
        for k in range(T):
            block = np.zeros((n, n))
            for u in offsets:
                for v in offsets:
                    block += lagged((times[j] + u) - (times[k] + v))
            cov[j * n : (j + 1) * n, k * n : (k + 1) * n] = block / len(offsets) ** 2
    return cov


def _dense_loglik(y, cov, sigma_m=0.0):
    """Log density of the observed entries of y (T, n) under N(0, cov + sigma_m^2 I)."""
    flat = y.reshape(-1)
    seen = ~np.isnan(flat)
    c = cov[np.ix_(seen, seen)] + sigma_m**2 * np.eye(seen.sum())
    return st.multivariate_normal(np.zeros(seen.sum()), c).logpdf(flat[seen])


@pytest.mark.parametrize("monitor_kind", ["raw", "average"])
def test_log_density_is_the_dense_gaussian_of_the_series(monitor_kind):
    """BayesianModel + StateSpace = log prior + the series' exact Gaussian + log |Jacobian|."""
    lam, G, sigma, period = 0.1, 0.05, 0.05, 4.0
    monitor = (
        bm.monitors.Raw(period) if monitor_kind == "raw" else bm.monitors.TemporalAverage(period)
    )
    with jax.enable_x64(True):
        sim = _ou(W3, lam=lam, G=G, sigma=sigma, monitor=monitor, duration=30 * period, dt=0.5)
        y = np.array(sim.run(jax.random.key(0)).signal, float)
        y[3, 1] = y[7, :] = np.nan  # a missing channel and a missing sample
        priors = {"coupling.G": dist.Uniform(0.0, 0.15)}
        bmodel = inf.BayesianModel(sim, priors, L.StateSpace(sigma=dist.HalfNormal(0.02)))
        ld = bmodel.logdensity(y)
        assert bmodel.latent_sites() == ["coupling.G", "likelihood.sigma"]
        times = period * np.arange(1, y.shape[0] + 1)
        steps = None if monitor_kind == "raw" else int(period / 0.5)
        for g, s_m in ((0.03, 0.01), (0.07, 0.02)):
            a, p = _ou_matrices(W3, lam, g, sigma)
            cov = _dense_cov(a, p, times, average_steps=steps, dt=0.5)
            z_g = math.log(g / (0.15 - g))
            z_s = math.log(s_m)
            expected = (
                st.uniform(0, 0.15).logpdf(g)
                + st.halfnorm(scale=0.02).logpdf(s_m)
                + _dense_loglik(y, cov, s_m)
                + math.log(0.15 * (g / 0.15) * (1 - g / 0.15))  # dG/dz of the sigmoid
                + z_s  # d sigma / dz = sigma
            )
            got = float(ld.fn(jnp.asarray([z_g, z_s])))
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-7)


def _var1_loglik(x, lam, G, sigma, period):
    """The exact log likelihood of a fully observed OU series: VAR(1), stationary start."""
    a, p = _ou_matrices(W2, lam, G, sigma)
    m = scipy.linalg.expm(a * period)
    q = p - m @ p @ m.T
    resid = x[1:] - x[:-1] @ m.T
    ll = st.multivariate_normal(np.zeros(2), p).logpdf(x[0])
    return ll + st.multivariate_normal(np.zeros(2), q).logpdf(resid).sum()


def test_nuts_on_statespace_equals_the_exact_grid_posterior():
    """NUTS on StateSpace vs the exact posterior on a grid (independent VAR(1) likelihood)."""
    lam, G, sigma, period = 0.1, 0.06, 0.05, 2.0
    sim = _ou(W2, lam=lam, G=G, sigma=sigma, monitor=bm.monitors.Raw(period), duration=1000.0)
    x = np.asarray(sim.run(jax.random.key(5)).signal, float)  # simulated: Euler at dt = 0.1 ms
    priors = {"model.lam": dist.Uniform(0.03, 0.25), "coupling.G": dist.Uniform(0.0, 0.15)}
    bmodel = inf.BayesianModel(sim, priors, L.StateSpace(steady_after=10))
    post = inf.nuts(  # the start is not under test (test_starts.py): no MAP, ~20 s less
        bmodel, x, jax.random.key(1), num_warmup=200, num_samples=500, num_chains=2,
        progress=False, init="prior",
    )  # fmt: skip
    # the grid: uniform priors, so the posterior is the normalised likelihood (posterior here
    # lam 0.093 +- 0.0096, G 0.048 +- 0.0116: the grid spans 6 sd, G from its prior bound 0)
    lams = np.linspace(0.03, 0.16, 88)
    gs = np.linspace(0.0, 0.12, 81)
    stable = lams[:, None] - gs[None, :] * math.sqrt(0.6) > 0  # eigenvalues of A below 0
    ll = np.array(
        [
            [
                _var1_loglik(x, lm, g, sigma, period) if s else -np.inf
                for g, s in zip(gs, row, strict=True)
            ]
            for lm, row in zip(lams, stable, strict=True)
        ]
    )
    w = np.exp(ll - ll.max())
    w /= w.sum()
    assert w[[0, -1], :].sum() + w[:, -1].sum() < 1e-6  # the grid holds the posterior
    grid = {"model.lam": (lams, w.sum(1)), "coupling.G": (gs, w.sum(0))}
    for name, (values, marginal) in grid.items():
        mean = float((values * marginal).sum())
        sd = math.sqrt(float(((values - mean) ** 2 * marginal).sum()))
        draws = np.asarray(post.samples[name]).ravel()
        # measured: means within 0.0x sd, sds within x % (NUTS, 1200 draws)
        assert abs(draws.mean() - mean) < 0.25 * sd, (name, draws.mean(), mean, sd)
        assert abs(draws.std() / sd - 1) < 0.15, (name, draws.std(), sd)
    assert post.n_divergent == 0
    # the truth lies in the posterior (one dataset: a loose check, calibration is benchmarked)
    for name, truth in (("model.lam", lam), ("coupling.G", G)):
        lo, hi = post.interval(0.99)[name]
        assert lo < truth < hi, (name, lo, hi)


def test_cohort_posterior_predictive_and_refusals():
    """Cohorts vmap the filter; draws are series of the model; delays are refused clearly."""
    period = 4.0
    sim = _ou(W2, lam=0.1, G=0.05, sigma=0.05, monitor=bm.monitors.Raw(period), duration=800.0)
    keys = jax.random.split(jax.random.key(0), 3)
    data = np.stack([np.asarray(sim.run(k).signal) for k in keys])
    cohort = inf.CohortModel(
        sim,
        {
            "model.lam": inf.Hierarchical(
                dist.Normal(math.log(0.1), 0.3),
                dist.HalfNormal(0.2),
                transform=dist.transforms.ExpTransform(),
            ),
            "coupling.G": dist.Uniform(0.0, 0.1),
        },
        L.StateSpace(),
        n_subjects=3,
    )
    ld = cohort.logdensity(data)
    value, grad = jax.value_and_grad(ld.fn)(ld.init)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    single = inf.BayesianModel(
        sim, {"model.lam": dist.LogNormal(math.log(0.1), 0.3)}, L.StateSpace()
    )
    # posterior predictive draws: series with the model's stationary variance
    d = single.likelihood.distribution(single.predict({"model.lam": jnp.asarray(0.1)})[0], {})
    draws = np.asarray(d.sample(jax.random.key(2), (400,)))
    assert draws.shape == (400, *data.shape[1:])
    a, p = _ou_matrices(W2, 0.1, 0.05, 0.05)
    np.testing.assert_allclose(draws.var(axis=(0, 1)), np.diag(p), rtol=0.08)
    # refusals, each naming the way out
    delayed = _ou(
        W2, lam=0.1, G=0.05, sigma=0.05, monitor=bm.monitors.Raw(period), duration=800.0,
        lengths=np.array([[0.0, 10.0], [10.0, 0.0]]), speed=1.0,
    )  # fmt: skip
    with pytest.raises(ValueError, match="without conduction delays.*Whittle.*Linearized"):
        inf.BayesianModel(delayed, {"coupling.G": dist.Uniform(0, 0.1)}, L.StateSpace())
    with pytest.raises(ValueError, match="initial"):
        L.StateSpace(initial="zero")
    with pytest.raises(ValueError, match="data.*infinite"):
        single.check_data(np.full(data.shape[1:], np.inf))
