"""The continuous Lyapunov equation, the matrix exponential, box-car averages."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# =====================================================================================
# Lyapunov equation
# =====================================================================================


def _smith(a: jax.Array, q: jax.Array, max_iter: int = 64) -> jax.Array:
    r"""Solve $A X + X A^T + Q = 0$ by the Cayley transform and Smith's doubling.

    With $h > 0$, $M = (I - hA)^{-1}$ and $T = M(I + hA)$ (eigenvalues
    $(1 + h\lambda)/(1 - h\lambda)$, inside the unit circle when $A$ is
    stable), $X = T X T^T + 2h\, M Q M^T$, summed by doubling:
    $X \leftarrow X + T X T^T$, $T \leftarrow T^2$, until $T$ vanishes. With
    $h = 1/\|A\|_1$ a mode of rate $\lambda$ needs about
    $\log_2(20\,\|A\|/|\mathrm{Re}\,\lambda|)$ doublings (25 for a ratio of
    $10^6$ between the fastest and the slowest rate; at most 64 are done).
    Only matrix products and one inversion: works on every backend. Returns
    NaN when $A$ is not stable (the doubling does not converge).
    """
    n = a.shape[0]
    eye = jnp.eye(n, dtype=a.dtype)
    norm_a = jnp.max(jnp.sum(jnp.abs(a), axis=0))
    h = 1.0 / jnp.maximum(norm_a, 1e-30)
    m = jnp.linalg.inv(eye - h * a)
    t = m @ (eye + h * a)
    x = (2.0 * h) * (m @ q @ m.T)
    tol = float(jnp.finfo(a.dtype).eps) ** 2

    def size(t):
        return jnp.max(jnp.abs(t))

    def cond(carry):
        t, _, k = carry
        s = size(t)
        return (k < max_iter) & (s > tol) & (s < 1e30)

    def body(carry):
        t, x, k = carry
        return t @ t, x + t @ x @ t.T, k + 1

    t, x, _ = jax.lax.while_loop(cond, body, (t, x, jnp.zeros((), jnp.int32)))
    return jnp.where(size(t) <= tol, x, jnp.nan)


def lyapunov(a: jax.Array, q: jax.Array) -> jax.Array:
    r"""The solution $X$ of the continuous Lyapunov equation $A X + X A^T + Q = 0$.

    For a stable $A$ (every eigenvalue with a negative real part) this is the
    stationary covariance of $dx = A x\,dt + dW$, $\langle dW dW^T\rangle = Q dt$.
    Solved by Smith's doubling (matrix products only, about 20 to 40 of them:
    milliseconds for N = 136); derivatives with respect to $A$ and $Q$ by
    implicit differentiation (`lax.custom_linear_solve`: the adjoint is another
    Lyapunov equation), so forward and reverse mode work. NaN when $A$ is not
    stable.

    **Arguments:**

    - `a`: `(N, N)` real, 1/ms.
    - `q`: `(N, N)` real (symmetric for a covariance), state units^2 per ms.

    **Returns:** `(N, N)`, state units^2.
    """
    a = jnp.asarray(a)
    q = jnp.asarray(q)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or q.shape != a.shape:
        raise ValueError(
            f"lyapunov: expected a square a (N, N) and q of the same shape, got {a.shape} "
            f"and {q.shape}."
        )

    def matvec(x):
        return a @ x + x @ a.T

    def solve(_, b):
        return _smith(jax.lax.stop_gradient(a), -b)

    def transpose_solve(_, b):
        return _smith(jax.lax.stop_gradient(a).T, -b)

    return jax.lax.custom_linear_solve(matvec, -q, solve, transpose_solve)


def _expm(m: jax.Array, max_squarings: int = 40) -> jax.Array:
    r"""Matrix exponential by scaling and squaring with a degree-12 Taylor polynomial.

    $e^M = (T_{12}(M/2^s))^{2^s}$ with $s$ chosen so that $\|M/2^s\|_1 \le 1/2$
    (truncation error below 1e-13); the squarings are a fixed-length masked
    loop, so the function is cheap to compile and differentiable in both modes.
    """
    eye = jnp.eye(m.shape[0], dtype=m.dtype)
    norm = jnp.max(jnp.sum(jnp.abs(m), axis=0))
    s = jnp.clip(jnp.ceil(jnp.log2(jnp.maximum(norm, 1e-300) / 0.5)), 0, max_squarings)
    s = jax.lax.stop_gradient(jnp.where(jnp.isfinite(s), s, 0.0))
    b = m / jnp.exp2(s).astype(m.dtype)
    e = eye
    for k in range(12, 0, -1):
        e = eye + (b @ e) / k

    def square(k, e):
        return jnp.where(k < s, e @ e, e)

    return jax.lax.fori_loop(0, max_squarings, square, e)


def _boxcar_average_cov(a: jax.Array, sigma: jax.Array, P: int, dt: float) -> jax.Array:
    r"""Covariance of the mean of P samples spaced `dt` ms of the stationary process.

    $\frac{1}{P^2}\big(P\Sigma + \Psi\Sigma + \Sigma\Psi^T\big)$ with
    $\Psi = \sum_{m=1}^{P-1} (P - m) E^m$, $E = e^{A\,dt}$ (Horner's scheme).
    """
    if P == 1:
        return sigma
    e = _expm(a * dt)
    eye = jnp.eye(a.shape[0], dtype=a.dtype)

    # r_0 = I (the coefficient of E^{P-1}); r <- (P - m) I + E r for m = P-2, ..., 1
    r = jax.lax.fori_loop(0, P - 2, lambda k, r: (k + 2).astype(a.dtype) * eye + e @ r, eye)
    psi = e @ r
    return (P * sigma + psi @ sigma + sigma @ psi.T) / (P * P)


def _stationary_cov(a, sigma2, noise_tau, colored: bool, filt: tuple[int, float] | None):
    """State covariance `(N, N)` of the delay-free linear system `A`, optionally averaged."""
    n = a.shape[0]
    if colored:
        # augmented state [x, eta]: eta' = -eta / tau + xi, intensity sigma2 / tau^2
        inv_tau = 1.0 / noise_tau
        top = jnp.concatenate([a, jnp.eye(n, dtype=a.dtype)], axis=1)
        bottom = jnp.concatenate([jnp.zeros((n, n), a.dtype), -jnp.diag(inv_tau)], axis=1)
        a_full = jnp.concatenate([top, bottom], axis=0)
        q_full = jnp.diag(jnp.concatenate([jnp.zeros((n,), a.dtype), sigma2 * inv_tau**2]))
    else:
        a_full, q_full = a, jnp.diag(sigma2)
    cov = lyapunov(a_full, q_full)
    if filt is not None:
        cov = _boxcar_average_cov(a_full, cov, *filt)
    return cov[:n, :n]
