r"""The Kalman-filter likelihood of a linear-Gaussian state-space model, and a sampler.

The model, for $k = 1, \dots, T$:

$$z_1 \sim \mathcal N(m_1, P_1),\quad z_k = F z_{k-1} + w_k,\ w_k \sim \mathcal N(0, Q),\quad
y_k = H z_k + d + v_k,\ v_k \sim \mathcal N(0, R),$$

with states $z_k$ `(S,)`, observations $y_k$ `(C,)` and offset $d$ `(C,)`. The Kalman filter
(Kalman 1960) gives the exact log-likelihood, integrated over the process noise, as a sum of
one-step prediction terms $\log p(y_k \mid y_{1:k-1}) = \log\mathcal N(y_k;\, H m_k + d,\, S_k)$,
$S_k = H P_k H^T + R$, where $m_k, P_k$ are the predicted mean and covariance of $z_k$.

Three ways to run it, one result:

- `"sequential"`: a `lax.scan`, one step $O(S^3)$. The covariance update is in Joseph's form
  (Bucy & Joseph 1968) folded into the prediction,
  $P_{k+1} = (F - F K_k H) P_k (F - F K_k H)^T + F K_k R K_k^T F^T + Q$ with
  $K_k = P_k H^T S_k^{-1}$: a sum of symmetric positive semi-definite terms, so float32 stays
  positive definite over thousands of steps, and $R = 0$ (exactly observed states, where the
  filtered covariance is singular and only the predicted one is not) needs no special case.
  Reverse mode stores one covariance per chunk of about $\sqrt T$ steps and recomputes the
  chunk (`jax.checkpoint`), so a gradient through $T$ steps needs $O(\sqrt T\, S^2)$ memory.
- `steady_after=K`: $P_k$ does not depend on the data and, for a time-invariant detectable
  model, converges geometrically to the solution of the discrete algebraic Riccati equation
  (Anderson & Moore 1979, *Optimal Filtering*, ch. 4). The exact recursion runs $K$ steps, then
  the gain and $S$ of $P_{K+1}$ are reused: the rest is the linear recursion
  $m_{k+1} = (F - FKH) m_k + FK(y_k - d)$, $O(S^2)$ a step, with the innovations whitened in one
  batched solve. Its error is set by how far $P_{K+1}$ is from convergence:
  `steady_state_change` gives $\|P_{K+1} - P_K\|_F / \|P_{K+1}\|_F$ (jit-able, for a check
  under NUTS) and `choose_steady_after` picks the first $K$ where it falls below a tolerance.
  Missing entries make $P_k$ depend on the data: the exact path is then taken (an eager check
  on concrete data, a `lax.cond` on traced data).
- `"parallel"`: the associative-scan filter of Särkkä & García-Fernández (2021), "Temporal
  parallelization of Bayesian smoothers", IEEE TAC 66:299, eqs. (10)-(15), by
  `jax.lax.associative_scan`: $O(\log T)$ depth but about 10x the matrix work of the
  sequential filter (an LU factorisation, two solves and seven products of $S \times S$
  matrices per combination, about $2T$ combinations), and $T$ covariances in memory.
  It needs $H Q H^T + R$ positive definite on the observed entries (the one-step conditionals);
  a singular one (e.g. $R = 0$ with noise-free observed states) gives NaN where the sequential
  filter does not. Measured on a 2-core CPU it is slower than the sequential filter at every
  size of `benchmarks/statespace.py`, so `"sequential"` is the default; it is meant for GPUs.

Missing entries are NaN in `y`. Each step masks them (Durbin & Koopman 2012, *Time Series
Analysis by State Space Methods*, sec. 4.10): the rows of $H$ are zeroed, $R$ gets a unit
diagonal and zero off-diagonals there, the innovation entry is 0 and the $\log 2\pi$ constant
is counted only for observed entries, so the term is the exact density of the observed entries
and a fully missing row contributes 0.

Why our own filter rather than dynamax's `lgssm_filter` (the independent reference in
`tests/test_kalman.py`): we need masking of single missing entries, $R = 0$ (dynamax's
diagonal-$R$ path divides by $R$), a steady-state fast path, Joseph-form updates for float32
(dynamax subtracts $K S K^T$), memory-bounded gradients, and no tensorflow-probability at run
time (dynamax's log densities come from it).
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import lu_factor, lu_solve, solve_triangular

from brainmass.checks import check_int

__all__ = ["log_likelihood_terms", "sample", "steady_state_change", "choose_steady_after"]

_LOG_2PI = math.log(2.0 * math.pi)
METHODS = ("sequential", "parallel")


# =====================================================================================
# Argument checks (eager, before tracing)
# =====================================================================================


def _shape_error(name: str, expected: str, value) -> ValueError:
    return ValueError(f"{name}: expected shape {expected}, got {jnp.shape(value)}.")


def _check_model(F, Q, H, offset, m1, P1, R) -> tuple[int, int]:
    """Raise a ValueError naming the first argument of the wrong shape; return (S, C)."""
    if jnp.ndim(F) != 2 or jnp.shape(F)[0] != jnp.shape(F)[1]:
        raise _shape_error("F", "(S, S) (a square state-transition matrix)", F)
    n_states = jnp.shape(F)[0]
    if jnp.ndim(H) != 2 or jnp.shape(H)[1] != n_states:
        raise _shape_error("H", f"(C, {n_states}) (C observed channels, S = {n_states})", H)
    n_channels = jnp.shape(H)[0]
    for name, value, shape in (
        ("Q", Q, (n_states, n_states)),
        ("P1", P1, (n_states, n_states)),
        ("m1", m1, (n_states,)),
        ("offset", offset, (n_channels,)),
    ):
        if jnp.shape(value) != shape:
            raise _shape_error(name, str(shape), value)
    if jnp.shape(R) not in ((), (n_channels,), (n_channels, n_channels)):
        raise _shape_error(
            "R", f"() (one variance), ({n_channels},) (variances) or {(n_channels,) * 2}", R
        )
    return n_states, n_channels


def _dtype(*arrays):
    dtype = jnp.result_type(*arrays)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def _as_matrix(R, n_channels: int, dtype) -> jax.Array:
    """R given as a scalar, variances `(C,)` or `(C, C)`, as a `(C, C)` matrix."""
    R = jnp.asarray(R, dtype)
    if R.ndim == 0:
        return R * jnp.eye(n_channels, dtype=dtype)
    if R.ndim == 1:
        return jnp.diag(R)
    return R


def _prepare(y, F, Q, H, offset, m1, P1, R):
    _, n_channels = _check_model(F, Q, H, offset, m1, P1, R)
    if jnp.ndim(y) != 2 or jnp.shape(y)[1] != n_channels or jnp.shape(y)[0] < 1:
        raise _shape_error("y", f"(T, {n_channels}) with T >= 1 (NaN marks a missing entry)", y)
    dtype = _dtype(y, F, Q, H, offset, m1, P1, R)
    cast = [jnp.asarray(a, dtype) for a in (y, F, Q, H, offset, m1, P1)]
    return (*cast, _as_matrix(R, n_channels, dtype))


# =====================================================================================
# One filter step
# =====================================================================================


def _sym(a: jax.Array) -> jax.Array:
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def _masked(H, R, y):
    """H, R and the data with the missing entries of `y` masked; the observed-entry mask."""
    observed = ~jnp.isnan(y)
    both = observed[:, None] & observed[None, :]
    H_k = jnp.where(observed[:, None], H, 0.0)
    R_k = jnp.where(both, R, 0.0) + jnp.diag(jnp.where(observed, 0.0, 1.0).astype(R.dtype))
    return H_k, R_k, jnp.where(observed, y, 0.0), observed


def _innovation(P, H_k, R_k, columns):
    r"""$S = H P H^T + R = L L^T$: $L$, the gain's transpose $K^T = S^{-1} H P$, $L^{-1}$ `columns`.

    Two triangular solves: $L^{-1} [H P, \text{columns}]$ at once, then $L^{-T}$ of the first
    block (each LAPACK call costs a fixed overhead on CPU; fewer and wider is faster).
    """
    HP = H_k @ P
    L = jnp.linalg.cholesky(_sym(HP @ H_k.T + R_k))
    X = solve_triangular(L, jnp.concatenate([HP, columns], axis=1), lower=True)
    n = P.shape[0]
    return L, solve_triangular(L, X[:, :n], lower=True, trans="T"), X[:, n:]


def _term(L, w, observed):
    r"""$\log\mathcal N(e; 0, LL^T)$ from $w = L^{-1} e$ (missing entries: 0 in e, unit in L)."""
    n_obs = jnp.sum(observed).astype(L.dtype)
    return -0.5 * (n_obs * _LOG_2PI + 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))) + w @ w)


def _step(F, Q, H, offset, R, carry, y):
    """One exact step: the term of `y` and the predicted mean and covariance of the next state."""
    m, P = carry
    H_k, R_k, y0, observed = _masked(H, R, y)
    e = jnp.where(observed, y0 - H @ m - offset, 0.0)
    L, Kt, w = _innovation(P, H_k, R_k, e[:, None])
    FK = F @ Kt.T
    FA = F - FK @ H_k
    P_next = _sym(FA @ P @ FA.T + FK @ R_k @ FK.T + Q)
    return (F @ m + FK @ e, P_next), _term(L, w[:, 0], observed)


def _chunked_scan(step, carry, xs):
    """`lax.scan` over chunks of ~sqrt(T) rows of `xs`, each chunk recomputed in reverse mode.

    Reverse mode stores the carry once per chunk and the residuals of one chunk at a time.
    The rows left over after the whole chunks (fewer than a chunk) are a plain scan.
    """
    n = xs.shape[0]
    size = math.ceil(math.sqrt(n))
    n_chunks, rest = divmod(n, size)

    @jax.checkpoint
    def chunk(c, x):
        return jax.lax.scan(step, c, x)

    whole = xs[: n - rest].reshape(n_chunks, size, *xs.shape[1:])
    carry, out = jax.lax.scan(chunk, carry, whole)
    if rest == 0:
        return carry, out.reshape(-1)
    carry, tail = jax.lax.scan(step, carry, xs[n - rest :])
    return carry, jnp.concatenate([out.reshape(-1), tail])


# =====================================================================================
# The three paths
# =====================================================================================


def _sequential(y, F, Q, H, offset, m1, P1, R):
    def step(carry, y_k):
        return _step(F, Q, H, offset, R, carry, y_k)

    return _chunked_scan(step, (m1, P1), y)


def _steady(y, F, Q, H, offset, m1, P1, R, steady_after: int):
    """Exact for `steady_after` steps, then the gain and innovation covariance held fixed."""
    (m, P), head = _sequential(y[:steady_after], F, Q, H, offset, m1, P1, R)
    L, Kt, _ = _innovation(P, H, R, jnp.zeros((H.shape[0], 0), H.dtype))
    FK = F @ Kt.T
    FA = F - FK @ H
    d = y[steady_after:] - offset[None, :]
    u = d @ FK.T

    def mean_step(m, u_k):
        return FA @ m + u_k, m

    _, means = jax.lax.scan(mean_step, m, u)
    w = solve_triangular(L, (d - means @ H.T).T, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    tail = -0.5 * (H.shape[0] * _LOG_2PI + logdet + jnp.sum(w * w, axis=0))
    return jnp.concatenate([head, tail])


def _parallel_elements(y, F, Q, H, offset, m1, P1, R):
    r"""The filtering elements $(A, b, C, \eta, J)$ of Särkkä & García-Fernández, eqs. (10)-(11)."""
    eye = jnp.eye(F.shape[0], dtype=F.dtype)

    def generic(y_k):
        H_k, R_k, y0, observed = _masked(H, R, y_k)
        r = jnp.where(observed, y0 - offset, 0.0)
        _, Kt, X = _innovation(Q, H_k, R_k, jnp.concatenate([H_k @ F, r[:, None]], axis=1))
        IKH = eye - Kt.T @ H_k
        V, v = X[:, :-1], X[:, -1]  # L^{-1} H F and L^{-1} r
        return (IKH @ F, Kt.T @ r, _sym(IKH @ Q @ IKH.T + Kt.T @ R_k @ Kt), V.T @ v, V.T @ V)

    H_1, R_1, y0, observed = _masked(H, R, y[0])
    _, Kt, _ = _innovation(P1, H_1, R_1, jnp.zeros((H.shape[0], 0), H.dtype))
    IKH = eye - Kt.T @ H_1
    b_1 = m1 + Kt.T @ jnp.where(observed, y0 - H_1 @ m1 - offset, 0.0)
    first = (
        jnp.zeros_like(F),
        b_1,
        _sym(IKH @ P1 @ IKH.T + Kt.T @ R_1 @ Kt),
        jnp.zeros_like(m1),
        jnp.zeros_like(F),
    )
    rest = jax.vmap(generic)(y[1:])
    return tuple(jnp.concatenate([a[None], b]) for a, b in zip(first, rest, strict=True))


def _combine(earlier, later):
    """The associative operator, Särkkä & García-Fernández eqs. (12)-(15), on `(n, ...)` stacks."""
    A1, b1, C1, eta1, J1 = earlier
    A2, b2, C2, eta2, J2 = later
    eye = jnp.eye(A1.shape[-1], dtype=A1.dtype)[None]
    T = jnp.swapaxes
    # A2 M^{-1} and A1^T (I + J2 C1)^{-1} = A1^T M^{-T} with M = I + C1 J2 (C1, J2 symmetric):
    # one LU factorisation for both
    lu = lu_factor(eye + C1 @ J2)
    left = T(lu_solve(lu, T(A2, -1, -2), trans=1), -1, -2)
    right = T(lu_solve(lu, A1, trans=0), -1, -2)
    return (
        left @ A1,
        (left @ (b1 + (C1 @ eta2[..., None])[..., 0])[..., None])[..., 0] + b2,
        _sym(left @ C1 @ T(A2, -1, -2) + C2),
        (right @ (eta2 - (J2 @ b1[..., None])[..., 0])[..., None])[..., 0] + eta1,
        _sym(right @ J2 @ A1 + J1),
    )


def _parallel(y, F, Q, H, offset, m1, P1, R):
    _, means, covs, _, _ = jax.lax.associative_scan(
        _combine, _parallel_elements(y, F, Q, H, offset, m1, P1, R)
    )
    pred_m = jnp.concatenate([m1[None], means[:-1] @ F.T])
    pred_P = jnp.concatenate([P1[None], _sym(F[None] @ covs[:-1] @ F.T[None] + Q[None])])

    def term(m, P, y_k):
        H_k, R_k, y0, observed = _masked(H, R, y_k)
        L = jnp.linalg.cholesky(_sym(H_k @ P @ H_k.T + R_k))
        e = jnp.where(observed, y0 - H @ m - offset, 0.0)
        return _term(L, solve_triangular(L, e, lower=True), observed)

    return jax.vmap(term)(pred_m, pred_P, y)


# =====================================================================================
# Public functions
# =====================================================================================


def log_likelihood_terms(
    y, F, Q, H, offset, m1, P1, R, *, method: str = "sequential", steady_after: int | None = None
) -> jax.Array:
    r"""The one-step prediction log-densities $\log p(y_k \mid y_{1:k-1})$ of a series.

    Their sum is the exact log-likelihood of the observed entries of `y` under the model of
    this module, the states integrated out. Differentiable in every argument (reverse mode
    through the scan, memory $O(\sqrt T S^2)$), jit- and vmap-able.

    **Arguments:**

    - `y`: `(T, C)` observations (signal units); NaN marks a missing entry.
    - `F`: `(S, S)` state transition over one sample.
    - `Q`: `(S, S)` process-noise covariance added per sample (state units^2).
    - `H`: `(C, S)` observation matrix; `offset`: `(C,)` added to $H z_k$.
    - `m1`, `P1`: `(S,)`, `(S, S)` mean and covariance of the first state $z_1$.
    - `R`: observation-noise variance: `()` (all channels), `(C,)` (independent channels) or
      `(C, C)`; zero is allowed where $H P_k H^T$ is positive definite.
    - `method`: `"sequential"` (the default, fastest on CPU) or `"parallel"` (associative
      scan; needs $HQH^T + R$ positive definite).
    - `steady_after`: with `"sequential"`, run the exact recursion this many steps, then hold
      the gain fixed; each term's error is then of the order of `steady_state_change` at
      that step (see `choose_steady_after`). Ignored (exact path) when `y` has missing
      entries. `None`: exact throughout.

    **Returns:** `(T,)` log-densities (nats); a fully missing row gives 0; NaN where the
    innovation covariance is not positive definite.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}.")
    given = y  # concrete data (not a tracer) are checked for NaN eagerly, before the trace
    y, F, Q, H, offset, m1, P1, R = _prepare(y, F, Q, H, offset, m1, P1, R)
    args = (y, F, Q, H, offset, m1, P1, R)
    if steady_after is not None:
        if method != "sequential":
            raise ValueError(
                f"steady_after: the steady-state path is part of method='sequential', got "
                f"method={method!r}; pass steady_after=None with method='parallel'."
            )
        _check_steps("steady_after", steady_after)
    if method == "parallel":
        return _parallel(*args)
    if steady_after is None or steady_after >= y.shape[0]:
        return _sequential(*args)[1]
    if not isinstance(given, jax.core.Tracer):
        if np.isnan(np.asarray(given)).any():
            return _sequential(*args)[1]
        return _steady(*args, steady_after)
    return jax.lax.cond(
        jnp.any(jnp.isnan(y)),
        lambda a: _sequential(*a)[1],
        lambda a: _steady(*a, steady_after),
        args,
    )


def _check_steps(name: str, value) -> None:
    check_int(value, name, 1)


def _covariance_changes(F, Q, H, P1, R, n_steps: int) -> jax.Array:
    r"""$\|P_{k+1} - P_k\|_F / \|P_{k+1}\|_F$ for k = 1..n_steps (data-free recursion)."""
    no_offset = jnp.zeros(H.shape[0], F.dtype)

    def step(P, _):
        (_, P_next), _ = _step(F, Q, H, no_offset, R, (jnp.zeros_like(F[0]), P), no_offset)
        change = jnp.linalg.norm(P_next - P) / jnp.linalg.norm(P_next)
        return P_next, change

    return jax.lax.scan(step, P1, None, length=n_steps)[1]


def _prepare_covariance(F, Q, H, P1, R):
    n_states = jnp.shape(F)[0] if jnp.ndim(F) == 2 else 0
    n_channels = jnp.shape(H)[0] if jnp.ndim(H) == 2 else 0
    _check_model(F, Q, H, np.zeros(n_channels), np.zeros(n_states), P1, R)
    dtype = _dtype(F, Q, H, P1, R)
    F, Q, H, P1 = (jnp.asarray(a, dtype) for a in (F, Q, H, P1))
    return F, Q, H, P1, _as_matrix(R, n_channels, dtype)


def steady_state_change(F, Q, H, P1, R, steady_after: int) -> jax.Array:
    r"""How far the predicted covariance still moves at the switch to the steady state.

    $\|P_{K+1} - P_K\|_F / \|P_{K+1}\|_F$ with $K$ = `steady_after`: the relative change of
    the predicted state covariance over the last exact step before `log_likelihood_terms`
    holds $P_{K+1}$ fixed. The recursion converges geometrically, so the remaining distance
    to the limit is of the order of this change divided by one minus the contraction rate.
    jit-able (a flag under NUTS: compare it with a tolerance inside the model).

    **Arguments:** `F`, `Q`, `H`, `P1`, `R` as in `log_likelihood_terms`; `steady_after`:
    the number of exact steps $K \ge 1$.

    **Returns:** a scalar (dimensionless).
    """
    _check_steps("steady_after", steady_after)
    return _covariance_changes(*_prepare_covariance(F, Q, H, P1, R), steady_after)[-1]


def choose_steady_after(F, Q, H, P1, R, *, rtol: float = 1e-9, max_steps: int = 10_000) -> int:
    r"""The first $K$ with `steady_state_change(..., K)` below `rtol` (eager, not under jit).

    The covariance recursion runs in float64 whatever the arrays' dtype (float32 rounding
    alone moves $P_k$ by about 1e-6), and stops at the first $K$ below `rtol`. The steady
    path's largest error per log-likelihood term (nats) was 8-45x the change at $K$ in the
    networks of `benchmarks/statespace.py` (S = 10 to 136; 1.4e-4 at a change of 1.1e-5,
    3e-8 at 2e-9) and 0.6-3x in `tests/test_kalman.py`; the default 1e-9 keeps it near float32
    rounding of a term, for a few more exact steps (the change falls geometrically).

    **Arguments:** `F`, `Q`, `H`, `P1`, `R` (concrete arrays) as in `log_likelihood_terms`;
    `rtol`: tolerance on $\|P_{K+1} - P_K\|_F / \|P_{K+1}\|_F$; `max_steps`: the longest
    recursion tried.

    **Returns:** $K$, a Python int, for `log_likelihood_terms(..., steady_after=K)`.
    A ValueError when the change stays above `rtol` for `max_steps` steps (an unstable or
    undetectable model, or a tolerance below float64 rounding).
    """
    _check_steps("max_steps", max_steps)
    if any(isinstance(a, jax.core.Tracer) for a in (F, Q, H, P1, R)):
        raise ValueError(
            "choose_steady_after: needs concrete arrays (it returns a Python int); call it "
            "outside jit/vmap/grad and pass the result as steady_after."
        )
    if not (isinstance(rtol, numbers.Real) and rtol > 0):
        raise ValueError(f"rtol: expected a positive number, got {rtol!r}.")
    with jax.enable_x64(True):
        args = _prepare_covariance(*(np.asarray(a, np.float64) for a in (F, Q, H, P1, R)))
        steps, change = jax.jit(_steps_to_converge)(*args, rtol, max_steps)
        steps, change = int(steps), float(change)
    if not change < rtol:
        raise ValueError(
            f"choose_steady_after: the predicted covariance still changes by {change:.2e} "
            f"(relative) after max_steps={max_steps} steps, above rtol={rtol:.2e}; the model "
            "may be unstable, or raise max_steps / rtol."
        )
    return steps


def _steps_to_converge(F, Q, H, P1, R, rtol, max_steps):
    """The first k with a relative covariance change below rtol (a while loop), and that change."""
    no_offset = jnp.zeros(H.shape[0], F.dtype)

    def body(carry):
        P, k, _ = carry
        (_, P_next), _ = _step(F, Q, H, no_offset, R, (jnp.zeros_like(F[0]), P), no_offset)
        return P_next, k + 1, jnp.linalg.norm(P_next - P) / jnp.linalg.norm(P_next)

    def cond(carry):
        _, k, change = carry
        return (k < max_steps) & ~(change < rtol)

    _, k, change = jax.lax.while_loop(cond, body, (P1, 0, jnp.asarray(jnp.inf, F.dtype)))
    return k, change


def _psd_sqrt(M: jax.Array) -> jax.Array:
    """A square root $B$ with $B B^T = M$ of a symmetric positive semi-definite matrix."""
    w, V = jnp.linalg.eigh(_sym(M))
    return V * jnp.sqrt(jnp.maximum(w, 0.0))[None, :]


def sample(key, F, Q, H, offset, m1, P1, R, n_samples: int) -> jax.Array:
    """Draw one series $y_{1:T}$ from the model (states and both noises drawn).

    **Arguments:** `key`: a `jax.random` key; `F`, `Q`, `H`, `offset`, `m1`, `P1`, `R` as in
    `log_likelihood_terms` (singular `Q`, `P1`, `R` allowed: the square roots are taken by
    eigendecomposition); `n_samples`: the length $T$ of the series.

    **Returns:** `(n_samples, C)`, the observations (no missing entries).
    """
    _check_steps("n_samples", n_samples)
    n_states, n_channels = _check_model(F, Q, H, offset, m1, P1, R)
    dtype = _dtype(F, Q, H, offset, m1, P1, R)
    F, Q, H, offset, m1, P1 = (jnp.asarray(a, dtype) for a in (F, Q, H, offset, m1, P1))
    R = _as_matrix(R, n_channels, dtype)
    k_init, k_state, k_obs = jax.random.split(key, 3)
    z1 = m1 + _psd_sqrt(P1) @ jax.random.normal(k_init, (n_states,), dtype)
    w = jax.random.normal(k_state, (n_samples - 1, n_states), dtype) @ _psd_sqrt(Q).T

    def step(z, w_k):
        z = F @ z + w_k
        return z, z

    _, rest = jax.lax.scan(step, z1, w)
    z = jnp.concatenate([z1[None], rest])
    v = jax.random.normal(k_obs, (n_samples, n_channels), dtype) @ _psd_sqrt(R).T
    return z @ H.T + offset[None, :] + v
