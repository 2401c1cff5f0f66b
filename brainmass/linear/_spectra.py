"""Transfer functions and cross-spectra of the linearised network."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._common import (
    _TWO_PI_PER_KHZ,
    Simulator,
    _as_state,
    _check_sim,
    _complex_dtype,
    _Context,
    _context,
)
from ._linearize import Linearization, _linearize_jit

# =====================================================================================
# spectra
# =====================================================================================


def _omega(freqs_hz: Any, dtype) -> jax.Array:
    f = jnp.asarray(freqs_hz, dtype)
    if f.ndim != 1:
        raise ValueError(f"freqs_hz: expected a 1-D array of frequencies in Hz, got {f.shape}.")
    return _TWO_PI_PER_KHZ * f


def _system_matrix(J0, K, tau, w) -> jax.Array:
    r"""$M(\omega) = i\omega I - J_0 - K e^{-i\omega\tau}$, `(F, N, N)` complex."""
    cdt = _complex_dtype(J0.dtype)
    N = J0.shape[0]
    wc = w.astype(cdt)[:, None, None]
    eye = jnp.eye(N, dtype=cdt)[None]
    delayed_k = K.astype(cdt)[None] * jnp.exp(-1j * wc * tau.astype(cdt)[None])
    return 1j * wc * eye - J0.astype(cdt)[None] - delayed_k


def _noise_spectrum(sigma2, noise_tau, w) -> jax.Array:
    r"""$Q(\omega)$ diagonal, `(F, N)`: white or Ornstein-Uhlenbeck noise."""
    return sigma2[None, :] / (1.0 + (w[:, None] * noise_tau[None, :]) ** 2)


def transfer_function(lin: Linearization, freqs_hz: Any) -> jax.Array:
    r"""The transfer function $H(\omega) = (i\omega I - J_0 - K\circ e^{-i\omega\tau})^{-1}$.

    **Arguments:**

    - `lin`: a `Linearization` (from `linearize`).
    - `freqs_hz`: frequencies in Hz, shape `(F,)` ($\omega = 2\pi f / 1000$ rad/ms).

    **Returns:** complex, `(F, N, N)`, in state units per (state units per ms):
    the response of component `a` to a sinusoidal drive of component `b`.
    """
    if not isinstance(lin, Linearization):
        raise ValueError(f"lin: expected a Linearization (from linearize), got {type(lin)}.")
    w = _omega(freqs_hz, lin.J0.dtype)
    return jnp.linalg.inv(_system_matrix(lin.J0, lin.K, lin.tau, w))


def _lu_solve(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Solve `a x = b` for a batch `a` `(B, N, N)`, `b` `(N, C)`; also the phase of det(a).

    Returns `x` `(B, N, C)` and `arg det a` `(B,)` (not reduced modulo 2 pi).
    """
    lu, pivots, perm = jax.lax.linalg.lu(a)
    rhs = b[perm]  # (B, N, C)
    y = jax.lax.linalg.triangular_solve(lu, rhs, left_side=True, lower=True, unit_diagonal=True)
    x = jax.lax.linalg.triangular_solve(lu, y, left_side=True, lower=False)
    n = a.shape[-1]
    swaps = jnp.sum(pivots != jnp.arange(n, dtype=pivots.dtype)[None, :], axis=-1)
    diag = jnp.diagonal(jax.lax.stop_gradient(lu), axis1=-2, axis2=-1)
    phase = jnp.sum(jnp.angle(diag), axis=-1) + jnp.pi * swaps.astype(diag.real.dtype)
    return x, phase


def _spectrum_block(J0, K, tau, sigma2, noise_tau, obs, w):
    r"""Two-sided spectral density (per rad/ms) of `obs x` and arg det M, for frequencies `w`.

    Returns `S` `(B, C, C)` complex with $S = (C H) Q (C H)^\dagger$ and the
    phase `(B,)`.
    """
    m = _system_matrix(J0, K, tau, w)
    # C H = (H^T C^T)^T, H^T = (M^T)^{-1}: solve M^T Z = C^T
    z, phase = _lu_solve(jnp.swapaxes(m, -1, -2), obs.T.astype(m.dtype))  # (B, N, C)
    q = _noise_spectrum(sigma2, noise_tau, w).astype(m.dtype)  # (B, N)
    s = jnp.einsum("bna,bn,bnc->bac", z, q, jnp.conj(z))
    return s, phase


def _monitor_response(freqs_hz: jax.Array, filt: tuple[int, float] | None) -> jax.Array:
    r"""Power response `(F,)` of a box-car average of P steps of `dt` ms (ones for None).

    $|\sin(\pi f P\,dt)/(P \sin(\pi f\,dt))|^2$, $f$ in Hz, $dt$ in s.
    """
    if filt is None:
        return jnp.ones(freqs_hz.shape, freqs_hz.dtype)
    P, dt = filt
    x = jnp.pi * freqs_hz * (dt / 1000.0)
    sx = jnp.sin(x)
    small = jnp.abs(sx) < 1e-12
    d = jnp.sin(P * x) / (P * jnp.where(small, 1.0, sx))
    return jnp.where(small, 1.0, d) ** 2


def cross_spectrum(
    sim: Simulator,
    freqs_hz: Any,
    *,
    state: Any = None,
    observed_only: bool = True,
    monitor_filter: bool = False,
) -> jax.Array:
    r"""One-sided cross-spectral density per Hz of the linearised network.

    $P(f) = \frac{2}{1000} S(2\pi f/1000)$ with $S = H Q H^\dagger$: the
    convention of `brainmass.analysis.psd` (one-sided Welch, per Hz), so that
    the diagonal of $P$ is what `psd` estimates from a long simulation and
    $\int_0^\infty \mathrm{Re}\,P(f)\,df$ is the covariance. Entry `[f, a, b]`
    is $\frac{2}{1000}\langle \hat x_a \hat x_b^*\rangle$ (this equals
    `scipy.signal.csd(x_b, x_a)`; its imaginary part is antisymmetric). Welch's
    estimate at exactly 0 Hz (and at the Nyquist frequency) is not doubled
    and, with the default detrending, removes the mean: compare at $f > 0$.

    **Arguments:**

    - `sim`: a `brainmass.Simulator`.
    - `freqs_hz`: frequencies in Hz, `(F,)` (any values, traced or not).
    - `state`: the expansion point (default: the fixed point, `fixed_point(sim)`).
    - `observed_only`: True (default): the observed variable, one channel per
      region (C = n_regions); False: every state component (C = N,
      variable-major order).
    - `monitor_filter`: with a `TemporalAverage` monitor, multiply by the power
      response of its box-car average of P = period / dt steps,
      $|\sin(\pi f P dt)/(P \sin(\pi f\, dt))|^2$ (exact for the discrete
      average; $\approx \mathrm{sinc}^2(f \cdot \text{period})$). No effect for
      `Raw`; an error for other monitors.

    **Returns:** complex, `(F, C, C)`, in (observed units)^2 per Hz.
    """
    sim = _check_sim(sim)
    if state is not None:
        state = _as_state(state, sim, "state")
    ctx = _context(sim, monitor_filter)
    freqs = jnp.asarray(freqs_hz)
    if freqs.ndim != 1:
        raise ValueError(f"freqs_hz: expected a 1-D array of frequencies in Hz, got {freqs.shape}.")
    return _cross_spectrum_jit(sim.network, sim.init, freqs, state, ctx, bool(observed_only))


@eqx.filter_jit
def _cross_spectrum_jit(net, init, freqs_hz, state, ctx: _Context, observed_only: bool):
    lin = _linearize_jit(net, init, state, ctx)
    w = _omega(freqs_hz, lin.J0.dtype)
    f = jnp.asarray(freqs_hz, lin.J0.dtype)
    obs = lin.obs if observed_only else jnp.eye(lin.n, dtype=lin.J0.dtype)
    s, _ = _spectrum_block(lin.J0, lin.K, lin.tau, lin.sigma2, lin.noise_tau, obs, w)
    resp = _monitor_response(f, ctx.filt)
    return s * (2.0 / 1000.0 * resp).astype(s.dtype)[:, None, None]
