r"""Lagged autocovariances of the sampled, monitored signal of a (delayed) linearised network.

The monitor samples the observed signal every `period` ms; its autocovariance
at integer lags is the continuous-time one at $t = h\,\text{period}$,

$$
\gamma(h) = \mathrm{Cov}(y_{k+h}, y_k) = C(h\,\text{period}), \qquad
C(t) = \int_{-\infty}^{\infty} S(\omega)\, e^{i\omega t}\,\frac{d\omega}{2\pi}
     = \int_0^\infty \mathrm{Re}\big(P(f)\, e^{2\pi i f t}\big)\,df ,
$$

($S = H Q H^\dagger$, $P(f) = \frac{2}{1000} S(2\pi f / 1000)$ per Hz as in
`cross_spectrum`, $t$ in s in the exponent), with no aliasing problem: the
time domain is sampled exactly. The spectrum is split as in `covariance`:
$C = C_{ref} + \int \mathrm{Re}\big((P - P_{ref})\,e^{2\pi i f t}\big)\,df$,
with the delay-free, stable reference $A_{ref} = J_0 + K - sI$ done exactly in
the time domain, $C_{ref}(t) = e^{A_{ref} t}\, \Sigma_{ref}$ for $t \ge 0$
($\Sigma_{ref}$ its Lyapunov covariance), and the smooth, $f^{-3}$-decaying
difference by the trapezoid rule.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..monitors import BOLD, AbstractSensorMonitor, Raw, TemporalAverage
from ._common import (
    _TWO_PI_PER_KHZ,
    DEFAULT_DF_HIGH_HZ,
    DEFAULT_DF_HZ,
    DEFAULT_FMAX_HZ,
    DEFAULT_SPLIT_HZ,
    Simulator,
    _as_state,
    _check_sim,
    _complex_dtype,
    _Context,
    _observed_variable,
    _time_scale,
)
from ._covariance import (
    _check_grid,
    _chunk_size,
    _count_unstable,
    _reference_shift,
    _trapezoid_weights,
    default_freqs,
)
from ._linearize import Linearization, _linearize_jit
from ._lyapunov import _boxcar_average_cov, _expm, lyapunov
from ._spectra import _lu_solve, _monitor_response, _noise_spectrum, _spectrum_block, _system_matrix

ALIAS_FACTOR = 4.0
"""A grid of spacing df makes the result periodic in time with period 1000/df ms; it must be at
least this many times the longest lag (plus the averaging window)."""


class _Plan(NamedTuple):
    """The static part of a call (hashable): sampling, lags and the frequency grid."""

    period: float  # ms between samples
    n_lags: int
    grid: tuple[float, ...] | None  # Hz, None without delays


def _longest_time(sim: Simulator, n_lags: int, steps: int) -> float:
    """The longest time difference (ms) between two samples that enter `gamma(n_lags - 1)`."""
    return (n_lags - 1) * sim.period + (steps - 1) * sim.dt


def _lag_grid(t_max: float) -> np.ndarray:
    """The default grid: `default_freqs()`, refined so that 1000 / df >= 4 t_max in every band."""
    limit = np.inf if t_max <= 0 else 1000.0 / (ALIAS_FACTOR * t_max)
    top, high = DEFAULT_SPLIT_HZ, DEFAULT_FMAX_HZ - DEFAULT_SPLIT_HZ
    df = top / np.ceil(top / min(DEFAULT_DF_HZ, limit))  # divides the band exactly
    df_high = high / np.ceil(high / min(DEFAULT_DF_HIGH_HZ, limit))
    return default_freqs(df, DEFAULT_FMAX_HZ, split_hz=top, df_high_hz=df_high)


def _grid_for(freqs_hz: Any, t_max: float, n_lags: int, sim: Simulator) -> np.ndarray:
    if freqs_hz is None:
        return _lag_grid(t_max)
    f = _check_grid(freqs_hz)
    spacing = float(np.max(np.diff(f)))
    if t_max > 0 and 1000.0 / spacing < ALIAS_FACTOR * t_max:
        raise ValueError(
            f"freqs_hz: a grid spacing of {spacing:g} Hz makes the lagged covariance periodic "
            f"in time with period 1000/{spacing:g} = {1000.0 / spacing:g} ms, too short for "
            f"n_lags={n_lags} at a sampling period of {sim.period:g} ms (time differences up "
            f"to {t_max:g} ms, the monitor's averaging window included); expected a spacing of "
            f"at most {1000.0 / (ALIAS_FACTOR * t_max):.4g} Hz everywhere (a period of at least "
            f"{ALIAS_FACTOR:g} times the longest lag). Use a finer grid, fewer lags, or "
            "freqs_hz=None (a grid chosen from the lags)."
        )
    return f


def _monitor_plan(sim: Simulator) -> tuple[int, Any]:
    """Steps averaged per sample (1: point samples) and the lead field (or None)."""
    monitor = sim.monitor
    if isinstance(monitor, BOLD):
        if sim.network.has_delays:
            why = (
                "with conduction delays the haemodynamic filter (acting over tens of seconds) "
                "would need a frequency grid far finer than 0.25 Hz at low frequencies: the "
                "time-domain period 1000/df ms of the grid must exceed the haemodynamic response "
                "and the lags several times over, a grid of tens of thousands of frequencies"
            )
        else:
            why = "without delays the haemodynamics belong in an exact state-space model"
        raise ValueError(
            f"sim.monitor: lagged_covariance does not model the BOLD monitor: {why}. "
            "Alternatives: for a delay-free network, brainmass.linear.autocovariance("
            "brainmass.linear.state_space(sim), n_lags) (the linearised Balloon-Windkessel "
            "model in the state, exact); with "
            "delays, lagged_covariance of the neural signal under a TemporalAverage monitor, or "
            "simulation-based inference on the BOLD simulation."
        )
    if isinstance(monitor, Raw):
        return 1, None
    if isinstance(monitor, TemporalAverage):
        return sim.period_steps, None
    if isinstance(monitor, AbstractSensorMonitor):
        monitor.check(sim.network, sim.dt)
        return sim.period_steps, monitor.leadfield
    raise ValueError(
        f"sim.monitor: expected a Raw, TemporalAverage, EEG or MEG monitor, got "
        f"{type(monitor).__name__}."
    )


def lagged_covariance(
    sim: Simulator, n_lags: int, *, state: Any = None, freqs_hz: Any = None
) -> jax.Array:
    r"""Lagged covariances $\gamma(h) = \mathrm{Cov}(y_{k+h}, y_k)$ of the monitor's samples.

    The stationary lagged covariance of the signal the monitor records every
    `period` ms from the linearised network (`linearize`), delays included
    through the exact transfer function:

    - `Raw`: point samples, $\gamma(h) = C(h\,\text{period})$ with $C(t) =
      \mathrm{Cov}(y(t + u), y(u))$ the continuous-time autocovariance of the
      observed variable;
    - `TemporalAverage`: means of the $P = \text{period}/dt$ steps of each
      period, $\gamma(h) = P^{-2}\sum_{j,l=0}^{P-1} C(h\,\text{period} - j\,dt
      + l\,dt)$, in frequency the spectrum weighted by the box-car's power
      response (see `cross_spectrum`'s `monitor_filter`);
    - `EEG` / `MEG`: that average seen through the monitor's lead field $L$
      (as stored, re-referenced): $L\,\gamma_{avg}(h)\,L^T$;
    - `BOLD`: refused (a `ValueError` that names the alternatives).

    **Method.** $C = C_{ref} + (C - C_{ref})$ with the stable delay-free
    reference $A_{ref} = J_0 + K - sI$ of `covariance` ($s = 0$ when $J_0 + K$
    is comfortably stable). The reference is exact in the time domain:
    $\Sigma_{ref}$ from `lyapunov`, $C_{ref}(h\,\text{period}) = e^{A_{ref}
    h\,\text{period}}\Sigma_{ref}$, and for averages
    $\gamma_{ref}(h \ge 1) = P^{-2} e^{A_{ref}(h-1)\text{period}}\, E\,
    \mathcal{S}^2\, \Sigma_{ref}$ with $E = e^{A_{ref} dt}$, $\mathcal{S} =
    \sum_{l<P} E^l$ (coloured noise through the augmented state). The
    difference is $\int_0^\infty \mathrm{Re}\big((P - P_{ref})(f)\,|b(f)|^2
    e^{2\pi i f t}\big) df$ by the trapezoid rule ($|b|^2$ the box-car's power
    response). **Without delays** the difference vanishes, $s = 0$, and the
    result is exact (no frequency grid is used).

    **The grid.** A grid of spacing $\Delta f$ samples the spectrum, so the
    time-domain result is that of a process periodic with period
    $1000/\Delta f$ ms: the difference $C - C_{ref}$ at $t \pm 1000 m/\Delta f$
    is added to it. The spacing must therefore be fine enough for every band
    that the period exceeds four times $t_{max} = (L - 1)\,\text{period} +
    (P - 1)\,dt$, and the slowest mode must have decayed within the period
    (decay rates above about 0.003/ms with the default 0.25 Hz, as for
    `covariance`). Default (`freqs_hz=None`): `default_freqs()` (0.25 Hz steps
    to 100 Hz, 1 Hz steps to 500 Hz, 801 frequencies) when $t_{max} \le 250$
    ms; for longer lags each spacing is capped at $250/t_{max}$ Hz (rounded
    down to divide its band; the number of frequencies, and the cost, grow in
    proportion). A given grid whose largest spacing is too coarse for the lags
    is a `ValueError`. (Measured for the scalar process: with 1 Hz steps above
    100 Hz the error stays near 1e-5 of $\gamma(0)$ to $t = 500$ ms and reaches
    1e-2 at $t = 1000$ ms, the period of that band.) Measured
    error on the default grid (tests/test_lagged.py), against the closed form
    of the scalar delayed Ornstein-Uhlenbeck process (Küchler & Mensch 1992)
    at lags 0 to 59 ms: 1e-6 to 5e-4 of $\gamma(0)$, the largest for a strong
    delayed self-coupling ($|g| = 3\lambda$: the $f^{-3}$ tail beyond 500 Hz,
    as for `covariance`); against quadrature of a two-region cross-spectrum:
    7e-5.

    **Stability.** The characteristic roots in the right half-plane are
    counted on the same grid as `stability` does (argument principle); the
    result is NaN where the fixed point is unstable (and without delays where
    $J_0 + K$ is not stable). The fixed point's residual is not checked: see
    `linear_summary` or `fixed_point`.

    **Cost.** One pass over the grid with two complex LU factorisations of
    $N \times N$ per frequency (the network's and the reference's) and the full
    inverse for the root count; the lags add a `(F, L) x (F, C^2)` product.
    Without delays: a Lyapunov equation and a matrix exponential.

    **Arguments:**

    - `sim`: a `brainmass.Simulator` with a `Raw`, `TemporalAverage`, `EEG`
      or `MEG` monitor; its `period` (ms) is the lag unit.
    - `n_lags`: $L \ge 1$, the number of lags $0, \dots, L - 1$ (a Python int).
    - `state`: the expansion point (default: `fixed_point(sim).state`).
    - `freqs_hz`: integration grid for delayed networks (a concrete, strictly
      increasing array in Hz starting at 0, uniform within bands); default
      chosen from the lags as above. Ignored without delays.

    **Returns:** `(n_lags, C, C)` in (observed units)^2, C = n_regions (or
    n_sensors for EEG/MEG); entry `[h, a, b]` is
    $\mathrm{Cov}(y_{k+h,a}, y_{k,b})$ ($\gamma(-h) = \gamma(h)^T$). Pure and
    compiled: jit-, grad- and vmap-able with respect to the simulator's
    parameters, including a traced conduction speed set with
    `eqx.tree_at(lambda s: s.network.speed, sim, v)`.
    """
    sim = _check_sim(sim)
    if isinstance(n_lags, bool) or not isinstance(n_lags, (int, np.integer)) or n_lags < 1:
        raise ValueError(
            f"n_lags: expected a Python int >= 1 (lags 0 .. n_lags - 1), got {n_lags!r}."
        )
    n_lags = int(n_lags)
    if state is not None:
        state = _as_state(state, sim, "state")
    steps, leadfield = _monitor_plan(sim)
    grid = None
    if sim.network.has_delays:
        f = _grid_for(freqs_hz, _longest_time(sim, n_lags, steps), n_lags, sim)
        grid = tuple(float(v) for v in f)
    filt = (int(steps), float(sim.dt)) if steps > 1 else None
    ctx = _Context(_time_scale(sim), _observed_variable(sim), filt)
    plan = _Plan(float(sim.period), n_lags, grid)
    return _lagged_jit(sim.network, sim.init, state, leadfield, ctx, plan)


@eqx.filter_jit
def _lagged_jit(net, init, state, leadfield, ctx: _Context, plan: _Plan) -> jax.Array:
    lin = _linearize_jit(net, init, state, ctx)
    obs = lin.obs if leadfield is None else leadfield.astype(lin.obs.dtype) @ lin.obs
    return _lagged(lin, obs, ctx.filt, plan)


def _augmented(a, sigma2, noise_tau, colored: bool):
    """`(A, Q)` of the delay-free system, with the noise process as extra states if coloured."""
    n = a.shape[0]
    if not colored:
        return a, jnp.diag(sigma2)
    inv_tau = 1.0 / noise_tau  # eta' = -eta / tau + xi, intensity sigma2 / tau^2
    top = jnp.concatenate([a, jnp.eye(n, dtype=a.dtype)], axis=1)
    bottom = jnp.concatenate([jnp.zeros((n, n), a.dtype), -jnp.diag(inv_tau)], axis=1)
    q = jnp.diag(jnp.concatenate([jnp.zeros((n,), a.dtype), sigma2 * inv_tau**2]))
    return jnp.concatenate([top, bottom], axis=0), q


def _reference_lags(a, sigma2, noise_tau, colored, obs, filt, period: float, n_lags: int):
    r"""$\gamma_{ref}(h)$, `(L, C, C)`, of the delay-free system `a`, exactly in the time domain."""
    a, q = _augmented(a, sigma2, noise_tau, colored)
    n_full = a.shape[0]
    obs = jnp.concatenate([obs, jnp.zeros((obs.shape[0], n_full - obs.shape[1]), a.dtype)], axis=1)
    sigma = lyapunov(a, q)
    step = _expm(a * period)  # e^{A period}

    def advance(z, _):
        return step @ z, obs @ z

    if filt is None:
        _, lags = jax.lax.scan(advance, sigma @ obs.T, None, length=n_lags)
        return lags
    P, dt = filt
    e = _expm(a * dt)
    eye = jnp.eye(n_full, dtype=a.dtype)
    s = jax.lax.fori_loop(0, P - 1, lambda _, s: eye + e @ s, eye)  # sum_{l<P} E^l
    lag0 = obs @ _boxcar_average_cov(a, sigma, P, dt) @ obs.T
    if n_lags == 1:
        return lag0[None]
    z1 = e @ (s @ (s @ (sigma @ obs.T))) / (P * P)
    _, rest = jax.lax.scan(advance, z1, None, length=n_lags - 1)
    return jnp.concatenate([lag0[None], rest], axis=0)


def _lagged_pass(lin: Linearization, obs, f: np.ndarray, resp, a_ref, lags_ms: np.ndarray):
    r"""$\int_0^\infty \mathrm{Re}\big((P - P_{ref})|b|^2 e^{2\pi i f t_h}\big) df$, `(L, C, C)`.

    Also the phase of det M and its derivative for the root count (see
    `_delayed_pass` in `_covariance`, of which this is the lagged form).
    Scanned over checkpointed chunks of frequencies.
    """
    dtype = lin.J0.dtype
    n_f, n, c = f.shape[0], lin.n, obs.shape[0]
    b = _chunk_size(n)
    n_chunks = -(-n_f // b)
    pad = n_chunks * b - n_f
    wts = jnp.asarray(_trapezoid_weights(f) * (2.0 / 1000.0), dtype) * resp
    wts_all = jnp.concatenate([wts, jnp.zeros((pad,), dtype)]).reshape(n_chunks, b)
    f_pad = np.concatenate([f, np.full(pad, f[-1])])
    w_all = jnp.asarray(_TWO_PI_PER_KHZ * f_pad, dtype).reshape(n_chunks, b)
    lags = jnp.asarray(lags_ms, dtype)
    zero_k = jnp.zeros_like(lin.K)
    cdt = _complex_dtype(dtype)
    rhs = jnp.concatenate([obs.T.astype(cdt), jnp.eye(n, dtype=cdt)], axis=1)  # (N, C + N)
    eye = jnp.eye(n, dtype=cdt)[None]
    kd0 = jax.lax.stop_gradient(lin.K.astype(cdt) * lin.tau.astype(cdt))[None]
    tau_c = lin.tau.astype(cdt)[None]

    @jax.checkpoint
    def body(acc, inputs):
        w, wt = inputs
        m = _system_matrix(lin.J0, lin.K, lin.tau, w)
        sol, phase = _lu_solve(jnp.swapaxes(m, -1, -2), rhs)
        x = sol[..., :c]
        q = _noise_spectrum(lin.sigma2, lin.noise_tau, w).astype(cdt)
        s = jnp.einsum("bna,bn,bnc->bac", x, q, jnp.conj(x))
        z = jax.lax.stop_gradient(sol[..., c:])  # (M^T)^{-1}
        kd = kd0 * jnp.exp(-1j * w.astype(cdt)[:, None, None] * tau_c)
        deriv = jnp.sum(z * (1j * (eye + kd)), axis=(-2, -1)).imag
        s_ref, _ = _spectrum_block(a_ref, zero_k, lin.tau, lin.sigma2, lin.noise_tau, obs, w)
        d = s - s_ref
        arg = w[:, None] * lags[None, :]  # (b, L), rad
        cos_w, sin_w = wt[:, None] * jnp.cos(arg), wt[:, None] * jnp.sin(arg)
        acc = acc + jnp.einsum("bh,bac->hac", cos_w, d.real)
        acc = acc - jnp.einsum("bh,bac->hac", sin_w, d.imag)
        return acc, (phase, deriv)

    init = jnp.zeros((lags.shape[0], c, c), dtype)
    acc, (phase, deriv) = jax.lax.scan(body, init, (w_all, wts_all))
    return acc, phase.reshape(-1)[:n_f], deriv.reshape(-1)[:n_f]


def _lagged(lin: Linearization, obs, filt, plan: _Plan) -> jax.Array:
    a = lin.A
    eye = jnp.eye(lin.n, dtype=a.dtype)
    args = (lin.sigma2, lin.noise_tau, lin.colored, obs, filt, plan.period, plan.n_lags)
    if not lin.delayed:
        gamma = _reference_lags(a, *args)
    else:
        eig = jnp.linalg.eigvals(jax.lax.stop_gradient(a))
        shift = _reference_shift(eig)
        a_ref = a - shift * eye
        f = np.asarray(plan.grid, dtype=float)
        resp = _monitor_response(jnp.asarray(f, a.dtype), filt)
        lags_ms = plan.period * np.arange(plan.n_lags)
        diff, phase, deriv = _lagged_pass(lin, obs, f, resp, a_ref, lags_ms)
        gamma = _reference_lags(a_ref, *args) + diff
        n_unstable = _count_unstable(f, phase, deriv, eig - shift, lin, shift)
        gamma = jnp.where(n_unstable == 0, gamma, jnp.nan)
    lag0 = 0.5 * (gamma[0] + gamma[0].T)
    return jnp.concatenate([lag0[None], gamma[1:]], axis=0)
