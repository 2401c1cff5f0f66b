"""The Kalman-filter log-likelihood and sampler of `inference._kalman`.

References, all independent of the filter: the dense multivariate normal of the whole stacked
series (covariance built in numpy from the model), dynamax's `lgssm_filter`, central finite
differences, and Monte Carlo moments with their standard errors. Float64 inside
`jax.enable_x64(True)` except where float32 is the point.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from inference import _kalman as kalman

# one compiled program per shape and setting
terms_fn = jax.jit(kalman.log_likelihood_terms, static_argnames=("method", "steady_after"))


def _model(n_states, n_channels, R, seed=0, observe_states=False):
    """A random stable model (F, Q, H, offset, m1, P1, R), numpy float64."""
    rng = np.random.default_rng(seed)
    F = 0.7 * np.linalg.qr(rng.normal(size=(n_states, n_states)))[0]
    F += 0.1 * rng.normal(size=(n_states, n_states))
    B = rng.normal(size=(n_states, n_states))
    Q = 0.1 * B @ B.T + 0.05 * np.eye(n_states)
    B = rng.normal(size=(n_states, n_states))
    P1 = 0.2 * B @ B.T + 0.1 * np.eye(n_states)
    H = np.eye(n_states) if observe_states else rng.normal(size=(n_channels, n_states))
    offset = rng.normal(size=n_channels)
    return F, Q, H, offset, rng.normal(size=n_states), P1, np.asarray(R, float)


def _dense(F, Q, H, offset, m1, P1, R, n_samples):
    r"""Mean `(T C,)` and covariance of the stacked series: $H F^{j-k} P_k H^T + R\delta_{jk}$."""
    n_channels = H.shape[0]
    R = R * np.eye(n_channels) if R.ndim == 0 else np.diag(R) if R.ndim == 1 else R
    means, covs = [m1], [P1]
    for _ in range(n_samples - 1):
        means.append(F @ means[-1])
        covs.append(F @ covs[-1] @ F.T + Q)
    cov = np.zeros((n_samples * n_channels,) * 2)
    for j in range(n_samples):
        for k in range(j + 1):
            block = H @ np.linalg.matrix_power(F, j - k) @ covs[k] @ H.T + (R if j == k else 0)
            cov[j * n_channels : (j + 1) * n_channels, k * n_channels : (k + 1) * n_channels] = (
                block
            )
            cov[k * n_channels : (k + 1) * n_channels, j * n_channels : (j + 1) * n_channels] = (
                block.T
            )
    return np.concatenate([H @ m + offset for m in means]), cov


def _sqrt(M):
    """B with B B^T = M for a symmetric positive semi-definite M (numpy)."""
    w, V = np.linalg.eigh(M)
    return V * np.sqrt(np.maximum(w, 0.0))


def _simulate(model, n_samples, seed):
    """A series `(T, C)` drawn from the model by a numpy loop (long series; data only)."""
    F, Q, H, offset, m1, P1, R = model
    R = R * np.eye(H.shape[0]) if R.ndim == 0 else np.diag(R) if R.ndim == 1 else R
    rng = np.random.default_rng(seed)
    z = m1 + _sqrt(P1) @ rng.normal(size=m1.shape)
    states = [z]
    for _ in range(n_samples - 1):
        states.append(F @ states[-1] + _sqrt(Q) @ rng.normal(size=m1.shape))
    noise = rng.normal(size=(n_samples, H.shape[0])) @ _sqrt(R).T
    return np.array(states) @ H.T + offset + noise


def _draw(model, n_samples, seed=1):
    mean, cov = _dense(*model, n_samples)
    y = np.random.default_rng(seed).multivariate_normal(mean, cov)
    return y.reshape(n_samples, -1), mean, cov


CASES = {
    "R>0 scalar": dict(n_states=3, n_channels=2, R=0.3),
    "R>0 diagonal": dict(n_states=3, n_channels=2, R=[0.2, 0.5]),
    "R full": dict(n_states=3, n_channels=2, R=[[0.3, 0.1], [0.1, 0.2]]),
    "R=0 full state": dict(n_states=3, n_channels=3, R=0.0, observe_states=True),
    "R=0 partial": dict(n_states=3, n_channels=2, R=0.0),
}


def _with_missing(y):
    """Scattered missing entries and a fully missing row (row 4)."""
    y = y.copy()
    y[0, 0] = y[3, 1] = y[6, 0] = np.nan
    y[4] = np.nan
    return y


def _observed_logpdf(y, mean, cov):
    seen = ~np.isnan(y.ravel())
    return scipy.stats.multivariate_normal(mean[seen], cov[np.ix_(seen, seen)]).logpdf(
        y.ravel()[seen]
    )


@pytest.mark.parametrize("case", CASES)
def test_dense_gaussian_and_missing(case):
    """1 + 3: the sum of the terms is the dense MVN log density of the (observed) series."""
    with jax.enable_x64(True):
        model = _model(**CASES[case])
        y, mean, cov = _draw(model, n_samples=8)
        ref = scipy.stats.multivariate_normal(mean, cov).logpdf(y.ravel())
        terms = np.asarray(terms_fn(y, *model))
        # float64, 8 steps of 3x3 algebra on O(1) numbers: rounding ~1e-14
        assert terms.shape == (8,)
        np.testing.assert_allclose(terms.sum(), ref, rtol=1e-10, atol=1e-10)
        # each term is a conditional density: term k = log p(y_1..k) - log p(y_1..k-1)
        c = y.shape[1]
        cumulative = [
            scipy.stats.multivariate_normal(mean[: k * c], cov[: k * c, : k * c]).logpdf(
                y[:k].ravel()
            )
            for k in (1, 2)
        ]
        np.testing.assert_allclose(terms[:2], np.diff([0.0, *cumulative]), rtol=1e-10)
        # missing entries: the exact density of the observed entries (same compiled program)
        y = _with_missing(y)
        terms = np.asarray(terms_fn(y, *model))
        assert terms[4] == 0.0  # a fully missing row contributes nothing
        np.testing.assert_allclose(terms.sum(), _observed_logpdf(y, mean, cov), rtol=1e-10)


def test_parallel():
    """4: the associative-scan filter equals the dense MVN and the sequential filter.

    One compiled program (it compiles slowly: ~9 s), vmapped over models of one shape with R
    given as (C, C): R > 0, R full, R = 0 with partial observation, with and without missing
    entries; vmap over a batch of parameter sets is checked on the way.
    """
    with jax.enable_x64(True):
        models, ys, refs = [], [], []
        for case in ("R>0 scalar", "R full", "R=0 partial"):
            model = _model(**CASES[case])
            model = (*model[:-1], model[-1] * np.eye(2) if model[-1].ndim == 0 else model[-1])
            y, mean, cov = _draw(model, n_samples=8)
            for data in (y, _with_missing(y)):
                models.append(model)
                ys.append(data)
                refs.append(_observed_logpdf(data, mean, cov))
        stack = [np.stack(arrays) for arrays in zip(*models, strict=True)]
        parallel = jax.jit(jax.vmap(lambda *a: kalman.log_likelihood_terms(*a, method="parallel")))
        terms = np.asarray(parallel(np.stack(ys), *stack))
        np.testing.assert_allclose(terms.sum(axis=1), refs, rtol=1e-10)
        sequential = np.array([terms_fn(y, *m) for y, m in zip(ys, models, strict=True)])
        np.testing.assert_allclose(terms, sequential, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("R_form", ["diagonal", "full"])
def test_dynamax(R_form):
    """2: the marginal log-likelihood of dynamax's `lgssm_filter` (R > 0)."""
    lgssm = pytest.importorskip("dynamax.linear_gaussian_ssm.inference")
    with jax.enable_x64(True):
        R = (
            [0.2, 0.4, 0.3]
            if R_form == "diagonal"
            else [[0.3, 0.1, 0.0], [0.1, 0.4, 0.1], [0, 0.1, 0.2]]
        )
        F, Q, H, offset, m1, P1, R = _model(4, 3, R, seed=3)
        y = _simulate((F, Q, H, offset, m1, P1, R), 60, seed=3)
        params = lgssm.make_lgssm_params(
            jnp.asarray(m1), jnp.asarray(P1), jnp.asarray(F), jnp.asarray(Q), jnp.asarray(H),
            jnp.asarray(R), emissions_bias=jnp.asarray(offset),
        )  # fmt: skip
        ref = float(lgssm.lgssm_filter(params, jnp.asarray(y)).marginal_loglik)
        ours = float(terms_fn(y, F, Q, H, offset, m1, P1, R).sum())
        # two float64 filters, 60 steps; their different algebra agrees to rounding
        np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_steady_state():
    """4: the steady-state path equals the exact one to the stated tolerance; its fallback."""
    with jax.enable_x64(True):
        model = _model(4, 2, [0.05, 0.1], seed=5)
        F, Q, H, offset, m1, P1, R = model
        y = _simulate(model, 400, seed=5)
        exact = np.asarray(terms_fn(y, *model))

        def steady(y, K):
            # y is a constant of the program: checked for NaN at trace time, one path compiled
            return np.asarray(jax.jit(lambda *m: terms_fn(y, *m, steady_after=K))(*model))

        # the chooser's contract: the first K whose covariance change is below rtol
        changes = np.asarray(kalman._covariance_changes(F, Q, H, P1, np.diag(R), 60))
        assert np.all(np.diff(np.log(changes[2:25])) < 0)  # geometric decay, to rounding at 30
        for rtol in (1e-6, 1e-9):
            K = kalman.choose_steady_after(F, Q, H, P1, R, rtol=rtol)
            assert changes[K - 1] < rtol <= changes[K - 2]
            # the stated tolerance: each term within 10 rtol (measured 3 rtol and 0.6 rtol)
            np.testing.assert_allclose(steady(y, K), exact, rtol=0, atol=10 * rtol)
        assert float(kalman.steady_state_change(F, Q, H, P1, R, K)) == changes[K - 1]
        # switching too early is visibly wrong, and the change at K = 2 says so
        assert changes[1] > 1e-3
        assert np.abs(steady(y, 2) - exact).max() > 1e-4
        # missing entries: the exact path is taken, whether y is concrete or traced
        y[10, 0] = np.nan
        missing = np.asarray(terms_fn(y, *model))
        np.testing.assert_allclose(steady(y, K), missing, rtol=1e-12)
        traced = np.asarray(terms_fn(y, *model, steady_after=K))  # a lax.cond on the data
        np.testing.assert_allclose(traced, missing, rtol=1e-12)


def _naive_float32(y, F, Q, H, offset, m1, P1, R):
    """The textbook filter ($P - K S K^T$, no symmetrisation), to show the case is hard."""

    def step(carry, y_k):
        m, P = carry
        S = H @ P @ H.T + jnp.diag(R)
        K = P @ H.T @ jnp.linalg.inv(S)
        e = y_k - H @ m - offset
        term = -0.5 * (jnp.linalg.slogdet(S)[1] + e @ jnp.linalg.solve(S, e))
        return (F @ (m + K @ e), F @ (P - K @ S @ K.T) @ F.T + Q), term

    return jax.lax.scan(step, (m1, P1), y)[1] - 0.5 * H.shape[0] * math.log(2 * math.pi)


def test_float32_long_ill_conditioned():
    """5: float32 stays within 1e-2 nats of float64 over 2000 steps, slow and fast modes."""
    rng = np.random.default_rng(1)
    rates = np.geomspace(1e-4, 2.0, 8)  # 1/ms: time constants 0.5 ms to 10 s, dt = 1 ms
    V = np.eye(8) + 0.5 * rng.normal(size=(8, 8))
    A = -V @ np.diag(rates) @ np.linalg.inv(V)
    F = scipy.linalg.expm(A)
    P_inf = scipy.linalg.solve_continuous_lyapunov(A, -0.01 * np.eye(8))
    Q = P_inf - F @ P_inf @ F.T  # exact discretisation of the OU process
    H = rng.normal(size=(3, 8))
    model = (F, 0.5 * (Q + Q.T), H, np.zeros(3), np.zeros(8), P_inf, np.full(3, 1e-5))
    assert np.linalg.cond(P_inf) > 1e5  # condition number 1.7e5
    with jax.enable_x64(True):
        y = _simulate(model, 2000, seed=0)
        ref = np.asarray(terms_fn(y, *model), float)
    args = [np.asarray(a, np.float32) for a in (y, *model)]
    terms = np.asarray(terms_fn(*args), float)
    # measured 3e-4 per term, 1e-3 summed; the naive update below: 0.05 and 0.08
    assert np.abs(terms - ref).max() < 2e-3
    assert abs(terms.sum() - ref.sum()) < 1e-2
    naive = np.asarray(jax.jit(_naive_float32)(*args), float)
    assert abs(naive.sum() - ref.sum()) > 3e-2


W_OU = np.array([[0.0, 0.3, 0.1], [0.2, 0.0, 0.3], [0.1, 0.2, 0.0]])
E_OU = scipy.linalg.expm(W_OU)


def _ou(lam, dt=1.0):
    r"""F of a 3-state OU system: $e^{(W - \lambda I) dt} = e^{-\lambda dt} e^{W dt}$."""
    return jnp.exp(-lam * dt) * E_OU


def test_gradient_jit_vmap():
    """6: d/d lam and d/d every argument against central differences; jit and vmap."""
    with jax.enable_x64(True):
        _, Q, H, offset, m1, P1, R = _model(3, 2, [[0.3, 0.1], [0.1, 0.2]], seed=7)
        y = _simulate((np.exp(-0.5) * E_OU, Q, H, offset, m1, P1, R), 50, seed=7)
        y[5, 1] = np.nan
        # every argument (the data too) moves along a random direction by eps[i]
        rng = np.random.default_rng(8)
        args = [np.zeros((3, 3)), Q, H, offset, m1, P1, R, y]
        dirs = [rng.normal(size=np.shape(a)) for a in args]
        for i in (1, 5, 6):  # covariances move symmetrically
            dirs[i] = dirs[i] + dirs[i].T

        def loglik(eps, lam):
            moved = [a + e * d for a, e, d in zip(args, eps, dirs, strict=True)]
            F = _ou(lam) + moved[0]
            return kalman.log_likelihood_terms(moved[-1], F, *moved[1:-1]).sum()

        value_and_grad = jax.jit(jax.value_and_grad(loglik, argnums=(0, 1)))
        lam = np.float64(0.5)  # one dtype (not weak) for every call: one compiled program
        _, (g_eps, g_lam) = value_and_grad(jnp.zeros(8), lam)

        def f(eps, lam):
            return float(value_and_grad(eps, lam)[0])

        h = 1e-5
        fd_lam = (f(np.zeros(8), lam + h) - f(np.zeros(8), lam - h)) / (2 * h)
        fd_eps = [(f(h * e, lam) - f(-h * e, lam)) / (2 * h) for e in np.eye(8)]
        # central differences: truncation h^2 |f'''| ~ 1e-9, rounding eps |f| / h ~ 1e-9
        np.testing.assert_allclose(float(g_lam), fd_lam, rtol=1e-6)
        assert np.all(np.isfinite(g_eps))  # a NaN in y gives no NaN gradient
        np.testing.assert_allclose(g_eps, fd_eps, rtol=1e-6, atol=1e-6)

        # vmap over a batch of parameter sets equals a loop of the jitted function
        lams = np.array([0.3, 0.5, 0.8])
        batched = jax.jit(jax.vmap(value_and_grad, in_axes=(None, 0)))(jnp.zeros(8), lams)
        for i, lam in enumerate(lams):
            value, (g_eps, g_lam) = value_and_grad(jnp.zeros(8), lam)
            np.testing.assert_allclose(batched[0][i], value, rtol=1e-10)
            np.testing.assert_allclose(batched[1][1][i], g_lam, rtol=1e-10)
            np.testing.assert_allclose(batched[1][0][i], g_eps, rtol=1e-10, atol=1e-12)


def test_sample_moments():
    """7: mean and covariance of 20,000 drawn series against the model, 5 standard errors."""
    with jax.enable_x64(True):
        F, _, H, offset, m1, P1, R = _model(3, 2, [[0.3, 0.1], [0.1, 0.2]], seed=9)
        Q = np.diag([0.2, 0.0, 0.1])  # singular: no noise into the second state
        model = (F, Q, H, offset, m1, P1, R)
        n, T = 20_000, 4
        keys = jax.random.split(jax.random.key(9), n)
        draws = jax.jit(jax.vmap(lambda k: kalman.sample(k, *model, T)))(keys)
        draws = np.asarray(draws).reshape(n, -1)
        mean, cov = _dense(*model, T)
        se_mean = np.sqrt(np.diag(cov) / n)
        assert np.all(np.abs(draws.mean(0) - mean) < 5 * se_mean)
        # standard error of a Gaussian sample covariance: sqrt((S_ii S_jj + S_ij^2) / n)
        se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
        assert np.all(np.abs(np.cov(draws.T) - cov) < 5 * se_cov)


def test_argument_errors():
    """Shapes and settings are checked eagerly, naming the argument."""
    F, Q, H, offset, m1, P1, R = _model(3, 2, 0.1)
    y = np.zeros((5, 2))
    with pytest.raises(ValueError, match="H: expected shape"):
        kalman.log_likelihood_terms(y, F, Q, H.T, offset, m1, P1, R)
    with pytest.raises(ValueError, match="R: expected shape"):
        kalman.log_likelihood_terms(y, F, Q, H, offset, m1, P1, np.zeros(3))
    with pytest.raises(ValueError, match="y: expected shape"):
        kalman.log_likelihood_terms(y[:, :1], F, Q, H, offset, m1, P1, R)
    with pytest.raises(ValueError, match="method"):
        kalman.log_likelihood_terms(y, F, Q, H, offset, m1, P1, R, method="fast")
    with pytest.raises(ValueError, match="steady_after"):
        kalman.log_likelihood_terms(y, F, Q, H, offset, m1, P1, R, steady_after=0)
    with pytest.raises(ValueError, match="n_samples"):
        kalman.sample(jax.random.key(0), F, Q, H, offset, m1, P1, R, 0)
