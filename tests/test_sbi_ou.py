"""NPE and NLE on the Ornstein-Uhlenbeck network against NUTS on its exact likelihood.

The reference, written here independently of `inference`: a two-region OU network
$\\dot x = A x + \\sigma \\xi$, $A = -\\lambda I + G W$, sampled every $\\Delta$ is a Gaussian
VAR(1) process, $x_{n+1} = M x_n + e_n$ with $M = e^{A\\Delta}$ and
$e_n \\sim N(0, P - M P M^T)$, where $P$ solves the Lyapunov equation
$A P + P A^T + \\sigma^2 I = 0$; $x_0 \\sim N(0, P)$. That likelihood is exact, and NumPyro's
NUTS samples its posterior of (G, lam). The lag-0 and lag-1 sample covariances are
sufficient statistics of a Gaussian VAR(1) (up to the two end points), so NPE and NLE,
trained on simulations (stochastic Heun, dt = 0.25 ms) summarised by them, must find the
same posterior.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS

import brainmass as bm
from inference import NLE, NPE, BayesianModel, CohortModel, Hierarchical, nuts, simulate_bank
from inference.diagnostics import ppc

PERIOD, SIGMA = 1.0, 0.02  # ms between samples; noise (fixed, known)
W = np.array([[0.0, 1.0], [1.0, 0.0]])
PRIORS = {"coupling.G": dist.Uniform(0.0, 0.05), "model.lam": dist.Uniform(0.06, 0.16)}
TRUTH = {"coupling.G": 0.02, "model.lam": 0.1}
FLOW = dict(flow_layers=3, nn_width=32)
FIT = dict(max_epochs=300, patience=30, batch_size=128, learning_rate=1e-3, progress=False)


def lag_covariances(signal):
    """Summary: the lag-0 (upper triangle) and lag-1 sample covariances, (7,)."""
    x = signal - 0.0  # the process has mean zero: no centring, as in the likelihood
    c0 = x[:-1].T @ x[:-1] / (x.shape[0] - 1)
    c1 = x[1:].T @ x[:-1] / (x.shape[0] - 1)
    return jnp.concatenate([c0[jnp.triu_indices(2)], c1.reshape(-1)]) / SIGMA**2


def exact_log_likelihood(g, lam, x):
    """The Gaussian VAR(1) log likelihood of samples x (T, 2) of the OU network."""
    a = -lam * jnp.eye(2) + g * jnp.asarray(W)
    # Lyapunov A P + P A^T = -sigma^2 I as a linear system in vec(P)
    kron = jnp.kron(a, jnp.eye(2)) + jnp.kron(jnp.eye(2), a)
    p = jnp.linalg.solve(kron, -(SIGMA**2) * jnp.eye(2).reshape(-1)).reshape(2, 2)
    m = jax.scipy.linalg.expm(a * PERIOD)
    q = p - m @ p @ m.T
    first = dist.MultivariateNormal(jnp.zeros(2), p).log_prob(x[0])
    rest = dist.MultivariateNormal(x[:-1] @ m.T, q).log_prob(x[1:]).sum()
    return first + rest


def exact_model(x):
    g = numpyro.sample("coupling.G", PRIORS["coupling.G"])
    lam = numpyro.sample("model.lam", PRIORS["model.lam"])
    numpyro.factor("likelihood", exact_log_likelihood(g, lam, x))


@pytest.fixture(scope="module")
def setting():
    """The simulator, the observation at TRUTH, a 1500-simulation bank, the exact posterior."""
    conn = bm.Connectome.from_arrays(W, np.zeros((2, 2)))
    sim = bm.Simulator(
        bm.Network(
            bm.models.Linear(lam=0.1),
            conn,
            coupling=bm.coupling.Linear(G=0.02),
            noise=bm.noise.Additive(sigma=SIGMA),
        ),
        dt=0.25,
        duration=2048.0 + 200.0,  # 2,048 samples after 200 ms (20 relaxation times)
        monitor=bm.monitors.Raw(period=PERIOD, transient=200.0),
        solver=bm.solvers.StochasticHeun(),
        init={"x": 0.0},
    )
    signal = np.asarray(sim.with_params(TRUTH).run(jax.random.key(0)).signal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = simulate_bank(sim, PRIORS, lag_covariances, jax.random.key(1), 1500, progress=False)
    exact = exact_nuts(exact_model, jnp.asarray(signal), jax.random.key(2), num_warmup=200)
    return sim, signal, bank, exact


def exact_nuts(model, data, key, num_warmup, num_samples=1000):
    """NumPyro's NUTS on a reference model written here: 2 chains x `num_samples` draws."""
    mcmc = MCMC(
        NUTS(model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=2,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(key, data)
    return {k: np.asarray(v) for k, v in mcmc.get_samples().items()}


def _agree(samples, exact, mean_tol, sd_ratio):
    for name in PRIORS:
        ref, a = exact[name].ravel(), np.asarray(samples[name]).ravel()
        assert abs(a.mean() - ref.mean()) < mean_tol * ref.std(), (name, a.mean(), ref.mean())
        assert 1 / sd_ratio < a.std() / ref.std() < sd_ratio, (name, a.std(), ref.std())


def test_the_exact_posterior_is_informative(setting):
    _, _, bank, exact = setting
    assert bank.n_failed == 0 and len(bank) == 1500
    for name, prior in PRIORS.items():
        # the data narrow both priors (measured: G to 0.49, lam to 0.25 of the prior sd)
        assert exact[name].std() < 0.6 * float(np.sqrt(prior.variance)), name
        lo, hi = np.quantile(exact[name], [0.001, 0.999])
        assert lo < TRUTH[name] < hi, (name, lo, hi)


def _trained(estimator, setting, seed):
    """An NPE or NLE trained on the setting's bank of lag covariances."""
    sim, _, bank, _ = setting
    return estimator(sim, PRIORS, lag_covariances, **FLOW).train_on(
        bank, jax.random.key(seed), **FIT
    )


@pytest.fixture(scope="module")
def npe(setting):
    return _trained(NPE, setting, 3)


def test_npe_agrees_with_nuts_on_the_exact_likelihood(setting, npe):
    _, signal, _, exact = setting
    draws = npe.posterior(signal).sample(jax.random.key(4), 4000)
    # 1,500 simulations: means within half a posterior sd, sds within 30 % (measured: G
    # 0.31 sd apart, sd ratio 1.10; a flow that ignored the data would be ~2x wider)
    _agree(draws, exact, 0.5, 1.3)


@pytest.fixture(scope="module")
def nle(setting):
    return _trained(NLE, setting, 5)


def test_nuts_on_nle_agrees_with_nuts_on_the_exact_likelihood(setting, nle):
    sim, signal, _, exact = setting
    learned = nuts(
        BayesianModel(sim, PRIORS, nle.likelihood()),
        signal,
        jax.random.key(6),
        num_warmup=200,
        num_samples=400,
        num_chains=2,
        progress=False,
        posterior_predictive=False,
        init="prior",  # the start is not under test (test_starts.py): no MAP
    )
    # measured: means 0.20 (G) and 0.32 (lam) sd apart, sd ratios 0.94 and 0.98
    _agree(learned.samples, exact, 0.5, 1.3)


# the cohort: lam per subject around a group location (in the logit space of lam's bank
# range, so the hierarchy lives where the NLE was trained), G shared
LAM_LOW, LAM_WIDTH = 0.06, 0.10
SUBJECT_LAMS = np.array([0.08, 0.10, 0.13])


def _lam_of(u):
    return LAM_LOW + LAM_WIDTH * jax.nn.sigmoid(u)


def exact_cohort_model(xs):
    loc = numpyro.sample("model.lam.loc", dist.Normal(0.0, 1.0))
    scale = numpyro.sample("model.lam.scale", dist.HalfNormal(1.0))
    with numpyro.plate("subject", xs.shape[0]):
        u = numpyro.sample("model.lam.u", dist.Normal(loc, scale))
    lam = numpyro.deterministic("model.lam", _lam_of(u))
    g = numpyro.sample("coupling.G", PRIORS["coupling.G"])
    loglik = jax.vmap(exact_log_likelihood, in_axes=(None, 0, 0))(g, lam, xs)
    numpyro.factor("likelihood", loglik.sum())


def test_cohort_model_on_nle_agrees_with_the_exact_hierarchical_posterior(setting, nle):
    """3b: a hierarchical CohortModel runs NUTS on the learned likelihood of each subject."""
    sim, _, _, _ = setting
    signals = jnp.stack(
        [
            sim.with_params({"coupling.G": TRUTH["coupling.G"], "model.lam": lam})
            .run(jax.random.key(10 + i))
            .signal
            for i, lam in enumerate(SUBJECT_LAMS)
        ]
    )
    exact = exact_nuts(exact_cohort_model, signals, jax.random.key(11), 200, num_samples=500)
    transform = dist.transforms.ComposeTransform(
        [dist.transforms.SigmoidTransform(), dist.transforms.AffineTransform(LAM_LOW, LAM_WIDTH)]
    )
    cohort = CohortModel(
        sim,
        {
            "model.lam": Hierarchical(
                dist.Normal(0.0, 1.0), dist.HalfNormal(1.0), transform=transform, centered=True
            ),
            "coupling.G": PRIORS["coupling.G"],
        },
        nle.likelihood(),
        n_subjects=len(SUBJECT_LAMS),
    )
    learned = nuts(
        cohort,
        signals,
        jax.random.key(12),
        num_warmup=200,
        num_samples=300,
        num_chains=2,
        progress=False,
        posterior_predictive=False,
        init="prior",  # the start is not under test (test_starts.py): no MAP
    ).samples
    assert learned["model.lam"].shape == (2, 300, len(SUBJECT_LAMS))
    # measured: G 0.17 posterior sd apart (sd ratio 1.12), the subjects' lam 0.35, 0.38 and
    # 0.55 sd (ratios 0.82, 0.90, 1.10): one learned likelihood per subject, so a subject
    # near the edge of the bank (lam = 0.13 of 0.06-0.16) carries its own error. Asserted:
    # means within 1 sd, sds within 35 % (the lowest, 0.82, is 1/1.22). With jax 0.12.1 the
    # trained flow differs and G came out 0.81 sd apart (the same on the code before issue 14's
    # changes): the learned likelihood's own error, not a broken cohort path, which is off by
    # many sd.
    for name in ("coupling.G", "model.lam"):
        ref = exact[name].reshape(-1, *exact[name].shape[1:])
        got = np.asarray(learned[name]).reshape(-1, *ref.shape[1:])
        np.testing.assert_array_less(np.abs(got.mean(0) - ref.mean(0)), 1.0 * ref.std(0))
        ratio = got.std(0) / ref.std(0)
        assert np.all((1 / 1.35 < ratio) & (ratio < 1.35)), (name, ratio)
    # each subject's lam is told apart from the others' by its own data
    fitted = np.asarray(learned["model.lam"]).mean((0, 1))
    assert np.all(np.diff(fitted) > 0), fitted


def lagged_autocorrelations(signal):
    """The data's own statistic, beyond the summary: lag-1 and lag-2 autocorrelations, (4,)."""
    x = signal - jnp.mean(signal, 0, keepdims=True)
    c0 = jnp.mean(x * x, 0)
    return jnp.concatenate([jnp.mean(x[1:] * x[:-1], 0) / c0, jnp.mean(x[2:] * x[:-2], 0) / c0])


def test_posterior_predictive_check_of_an_npe_posterior(setting, npe):
    """diagnostics.ppc of NPE posteriors: simulations at posterior draws (a bank with the
    posterior as its proposal) reproduce the data's lag-1 and lag-2 autocorrelations; data
    with white measurement noise of the signal's own size (no OU network makes it) fail."""
    sim, signal, _, _ = setting
    noise = np.asarray(jax.random.normal(jax.random.key(30), signal.shape))
    noisy = signal + signal.std(0, keepdims=True) * noise
    results = []
    for i, observed in enumerate((signal, noisy)):
        post = npe.posterior(observed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predictive = simulate_bank(
                sim,
                PRIORS,
                lagged_autocorrelations,
                jax.random.key(31 + i),
                200,
                proposal=post.sample_flat,
                progress=False,
            )
        results.append(ppc(lagged_autocorrelations(jnp.asarray(observed)), predictive.x))
    good, bad = results
    # measured: p-values 0.63-0.88; with the measurement noise, 29 to 64 predictive sds off
    assert good.passed(0.01), good.pvalues
    assert not bad.passed(0.01), bad.pvalues
