"""Stationary covariance, FC and stability of the linearised network."""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._common import (
    _REF_MARGIN,
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
    _context,
    _wrap,
)
from ._linearize import Linearization, _linearize_jit
from ._lyapunov import _stationary_cov
from ._spectra import (
    _lu_solve,
    _monitor_response,
    _noise_spectrum,
    _spectrum_block,
    _system_matrix,
)

# =====================================================================================
# covariance, stability
# =====================================================================================


def default_freqs(
    df_hz: float = DEFAULT_DF_HZ,
    fmax_hz: float = DEFAULT_FMAX_HZ,
    *,
    split_hz: float = DEFAULT_SPLIT_HZ,
    df_high_hz: float = DEFAULT_DF_HIGH_HZ,
) -> np.ndarray:
    """The integration grid for delayed networks, in Hz.

    `0, df, 2 df, ...` up to `split_hz`, then steps of `df_high_hz` up to
    `fmax_hz` (uniform when `split_hz >= fmax_hz`). Default: 0.25 Hz steps to
    100 Hz, 1 Hz steps to 500 Hz, 801 frequencies.

    **Returns:** a NumPy array `(F,)` in Hz, starting at 0.
    """
    df_hz, fmax_hz = float(df_hz), float(fmax_hz)
    split_hz, df_high_hz = float(split_hz), float(df_high_hz)
    if not (df_hz > 0 and fmax_hz > df_hz):
        raise ValueError(f"default_freqs: expected 0 < df < fmax, got df={df_hz}, fmax={fmax_hz}.")
    if not (df_high_hz > 0 and split_hz > 0):
        raise ValueError(
            "default_freqs: expected split_hz > 0 and df_high_hz > 0, got "
            f"{split_hz}, {df_high_hz}."
        )
    top = min(split_hz, fmax_hz)
    low = np.arange(int(round(top / df_hz)) + 1) * df_hz
    if top >= fmax_hz:
        return low
    n_high = int(round((fmax_hz - low[-1]) / df_high_hz))
    return np.concatenate([low, low[-1] + df_high_hz * np.arange(1, n_high + 1)])


def _check_grid(freqs_hz: Any) -> np.ndarray:
    if freqs_hz is None:
        return default_freqs()
    if isinstance(freqs_hz, jax.core.Tracer):
        raise ValueError(
            "freqs_hz: expected a concrete grid (a NumPy array or list), not a traced value."
        )
    f = np.asarray(freqs_hz, dtype=float)
    if f.ndim != 1 or f.size < 2:
        raise ValueError(f"freqs_hz: expected a 1-D grid of at least 2 frequencies, got {f.shape}.")
    if not (np.all(np.isfinite(f)) and f[0] == 0.0 and np.all(np.diff(f) > 0)):
        raise ValueError(
            "freqs_hz: expected a strictly increasing grid of finite frequencies in Hz starting "
            f"at 0 (uniform for spectral accuracy), got {f[:3]}...{f[-1:]}."
        )
    return f


def _trapezoid_weights(f: np.ndarray) -> np.ndarray:
    d = np.diff(f)
    w = np.zeros_like(f)
    w[:-1] += d / 2
    w[1:] += d / 2
    return w


def _reference_shift(eig: jax.Array) -> jax.Array:
    """A shift s >= 0 (1/ms) that makes the abscissa of `A - s I` at most -0.01/ms.

    The reference's spectral peaks are then at least 3 Hz wide and resolved by
    the default grid; s = 0 (the reference is `J0 + K` itself) when `J0 + K`
    is already that stable. Computed from the eigenvalues, without gradient.
    """
    alpha = jnp.max(eig.real)
    s = jnp.maximum(alpha + _REF_MARGIN, 0.0)
    return jnp.where(jnp.isfinite(s), s, 0.0).astype(eig.real.dtype)


def _chunk_size(n: int) -> int:
    return int(max(1, min(256, (1 << 21) // max(n * n, 1))))


def _delayed_pass(lin: Linearization, obs, f: np.ndarray, resp, a_ref, with_phase: bool = True):
    r"""$\int_0^\infty \mathrm{Re}(P - P_{ref})\,|D|^2 df$ on the grid, and the phase of det M.

    Scanned over chunks of frequencies (checkpointed, so reverse mode stores
    one chunk at a time). Returns the `(C, C)` integral, $\arg\det M(\omega)$
    modulo $2\pi$ `(F,)` and its derivative
    $d\arg\det M/d\omega = \mathrm{Im}\,\mathrm{tr}(M^{-1} M')$ `(F,)` (ms),
    $M' = i(I + \tau\circ K\circ e^{-i\omega\tau})$ (the latter needs $M^{-1}$
    in full: skipped, and returned as zeros, unless `with_phase`).
    """
    dtype = lin.J0.dtype
    n_f = f.shape[0]
    n = lin.n
    c = obs.shape[0]
    b = _chunk_size(n)
    n_chunks = -(-n_f // b)
    pad = n_chunks * b - n_f
    wts = _trapezoid_weights(f) * (2.0 / 1000.0)
    f_pad = np.concatenate([f, np.full(pad, f[-1])])
    wts_pad = jnp.concatenate([jnp.asarray(wts, dtype) * resp, jnp.zeros((pad,), dtype)])
    w_all = jnp.asarray(_TWO_PI_PER_KHZ * f_pad, dtype).reshape(n_chunks, b)
    wts_all = wts_pad.reshape(n_chunks, b)
    zero_k = jnp.zeros_like(lin.K)
    cdt = _complex_dtype(dtype)
    rhs = obs.T.astype(cdt)
    if with_phase:
        rhs = jnp.concatenate([rhs, jnp.eye(n, dtype=cdt)], axis=1)  # (N, C + N)
    eye = jnp.eye(n, dtype=cdt)[None]

    @jax.checkpoint
    def body(acc, inputs):
        w, wt = inputs
        m = _system_matrix(lin.J0, lin.K, lin.tau, w)
        sol, phase = _lu_solve(jnp.swapaxes(m, -1, -2), rhs)
        x = sol[..., :c]
        q = _noise_spectrum(lin.sigma2, lin.noise_tau, w).astype(cdt)
        s = jnp.einsum("bna,bn,bnc->bac", x, q, jnp.conj(x))
        if with_phase:
            z = jax.lax.stop_gradient(sol[..., c:])  # (M^T)^{-1} = (M^{-1})^T
            kd = jax.lax.stop_gradient(lin.K.astype(cdt) * lin.tau.astype(cdt))[None]
            kd = kd * jnp.exp(-1j * w.astype(cdt)[:, None, None] * lin.tau.astype(cdt)[None])
            deriv = jnp.sum(z * (1j * (eye + kd)), axis=(-2, -1)).imag
        else:
            deriv = jnp.zeros(w.shape, dtype)
        s_ref, _ = _spectrum_block(a_ref, zero_k, lin.tau, lin.sigma2, lin.noise_tau, obs, w)
        acc = acc + jnp.einsum("b,bac->ac", wt, (s - s_ref).real)
        return acc, (phase, deriv)

    acc, (phase, deriv) = jax.lax.scan(body, jnp.zeros((c, c), dtype), (w_all, wts_all))
    return acc, phase.reshape(-1)[:n_f], deriv.reshape(-1)[:n_f]


def _count_unstable(f: np.ndarray, phase, deriv, ref_eigs, lin: Linearization, shift) -> jax.Array:
    r"""Roots in the right half-plane from the winding of $\det M / \det M_{ref}$.

    By the argument principle, with $M_{ref}(s) = sI - A_{ref}$ stable and the
    ratio $r = \det M/\det M_{ref}$ tending to 1 for $|s| \to \infty$ in the
    right half-plane (retarded delays), the number of unstable roots is
    $Z = -\frac{1}{\pi}\,[\arg r(\infty) - \arg r(0)]$, the phase followed
    continuously along $0 \le \omega < \infty$. $\arg\det M$ is followed from
    its values modulo $2\pi$, each step's $2\pi$ ambiguity resolved by the
    trapezoid rule of its derivative; $\arg\det M_{ref} = \sum_k
    \arg(i\omega - \lambda_k)$ is continuous in closed form. Beyond the grid,
    $\arg r(\omega) \approx \mathrm{Re}\,\mathrm{tr}(A(\omega) - A_{ref})/\omega$
    (first order in $1/\omega$) picks the branch of the remaining change.
    """
    w = jnp.asarray(_TWO_PI_PER_KHZ * f, phase.dtype)
    phase = jax.lax.stop_gradient(phase)
    deriv = jax.lax.stop_gradient(deriv)
    predicted = 0.5 * (w[1:] - w[:-1]) * (deriv[1:] + deriv[:-1])
    steps = predicted + _wrap(phase[1:] - phase[:-1] - predicted)
    change_m = jnp.sum(steps)

    def ref_phase(wk):
        return jnp.sum(jnp.arctan2(wk - ref_eigs.imag, -ref_eigs.real))

    change_ref = ref_phase(w[-1]) - ref_phase(w[0])
    end = phase[-1] - ref_phase(w[-1])
    k_diag = jax.lax.stop_gradient(jnp.diagonal(lin.K))
    tau_diag = jax.lax.stop_gradient(jnp.diagonal(lin.tau))
    trace_diff = jnp.sum(k_diag * (jnp.cos(w[-1] * tau_diag) - 1.0)) + lin.n * shift
    asymptote = trace_diff / w[-1]
    tail = -(asymptote + _wrap(end - asymptote))
    change = change_m - change_ref + tail
    z = jnp.round(-change / jnp.pi)
    return jnp.where(jnp.isfinite(z), jnp.where(z == 0, 0.0, z), jnp.nan)


class _Analysis(NamedTuple):
    cov: jax.Array
    abscissa: jax.Array
    n_unstable: jax.Array


def _prepare(sim, state, freqs_hz, monitor_filter):
    """Validate eagerly: (network, init, state, context, grid as a hashable tuple or None)."""
    sim = _check_sim(sim)
    if state is not None:
        state = _as_state(state, sim, "state")
    ctx = _context(sim, monitor_filter)
    grid = tuple(float(v) for v in _check_grid(freqs_hz)) if sim.network.has_delays else None
    return sim.network, sim.init, state, ctx, grid


@eqx.filter_jit
def _analyse_jit(
    net, init, state, ctx: _Context, grid, observed_only: bool = True, count: bool = True
) -> tuple[Linearization, _Analysis]:
    """Linearise and analyse in one compiled function (cached per structure and grid)."""
    lin = _linearize_jit(net, init, state, ctx)
    return lin, _analyse(lin, ctx, grid, observed_only, count)


def _analyse(lin, ctx: _Context, grid, observed_only=True, count=True) -> _Analysis:
    a = lin.A
    if count or lin.delayed:
        eig = jnp.linalg.eigvals(jax.lax.stop_gradient(a))
        abscissa = jnp.max(eig.real)
    else:
        eig = abscissa = jnp.asarray(jnp.nan, a.dtype)
    filt = ctx.filt
    obs = lin.obs if observed_only else jnp.eye(lin.n, dtype=a.dtype)
    if not lin.delayed:
        cov_state = _stationary_cov(a, lin.sigma2, lin.noise_tau, lin.colored, filt)
        cov = obs @ cov_state @ obs.T
        n_unstable = jnp.sum(eig.real > 0).astype(a.dtype)
        n_unstable = jnp.where(jnp.isfinite(abscissa), n_unstable, jnp.nan)
    else:
        f = np.asarray(grid, dtype=float)
        resp = _monitor_response(jnp.asarray(f, a.dtype), filt)
        shift = _reference_shift(eig)
        a_ref = a - shift * jnp.eye(lin.n, dtype=a.dtype)
        cov_ref = _stationary_cov(a_ref, lin.sigma2, lin.noise_tau, lin.colored, filt)
        diff, phase, deriv = _delayed_pass(lin, obs, f, resp, a_ref, count)
        cov = obs @ cov_ref @ obs.T + diff
        if count:
            n_unstable = _count_unstable(f, phase, deriv, eig - shift, lin, shift)
        else:
            n_unstable = jnp.asarray(jnp.nan, a.dtype)
    cov = 0.5 * (cov + cov.T)
    return _Analysis(cov, abscissa, n_unstable)


def covariance(
    sim: Simulator,
    *,
    state: Any = None,
    freqs_hz: Any = None,
    monitor_filter: bool = False,
    observed_only: bool = True,
) -> jax.Array:
    r"""Stationary covariance of the observed variable of the linearised network.

    **Without delays** it is exact: $\Sigma$ solves $A\Sigma + \Sigma A^T + Q = 0$
    with $A = J_0 + K$ (`lyapunov`; coloured noise by augmenting the state
    with the noise process), milliseconds for N = 136.

    **With delays** it is $\int_0^\infty \mathrm{Re}\,P(f)\,df$ (see
    `cross_spectrum`), computed as the exact Lyapunov covariance of a
    delay-free reference $A_{ref} = J_0 + K - sI$ ($s \ge 0$ makes it stable;
    $s = 0$ when $J_0 + K$ is comfortably stable) plus the trapezoid rule of
    $P - P_{ref}$ on the frequency grid. The difference decays as $f^{-3}$
    (oscillating) or faster, so truncating at 500 Hz costs little, and the
    trapezoid rule on a uniform grid of an even, analytic integrand converges
    geometrically: error $\sim e^{-2\pi\gamma/\Delta f}$ for spectral peaks of
    half-width $\gamma$ Hz ($\gamma = 1000\,\delta/2\pi$ for a mode decaying at
    $\delta$/ms). Default grid `default_freqs()`: 0.25 Hz steps to 100 Hz, 1 Hz
    steps to 500 Hz (801 frequencies, two complex LU factorisations of N x N
    each; about 10 s for N = 136 in float64 on two CPU cores, much less in
    float32). Measured relative error against quadrature for the scalar
    delayed OU process (tests): 3e-5 to 5e-4 (the largest for a strong
    delayed self-coupling, $|g| = 3\lambda$; the truncation error falls as
    $f_{max}^{-3}$: 7e-5 at 1000 Hz). Peaks narrower than about 0.5 Hz (decay
    rates below 0.003/ms) or above 100 Hz need a finer grid.

    **Arguments:**

    - `sim`: a `brainmass.Simulator`.
    - `state`: the expansion point (default: `fixed_point(sim).state`).
    - `freqs_hz`: integration grid for delayed networks, a concrete,
      strictly increasing array in Hz starting at 0 (uniform for the accuracy
      above); default `default_freqs()`. Ignored without delays.
    - `monitor_filter`: with a `TemporalAverage` monitor, the covariance of the
      box-car averages of P = period / dt steps that the monitor records (exact
      without delays, through $e^{A\,dt}$); default False: the instantaneous
      variable.
    - `observed_only`: True (default): the observed variable (C = n_regions);
      False: every state component (C = N).

    **Returns:** `(C, C)`, in (observed units)^2. NaN when the delay-free
    system is unstable (no delays); check `stability` in every case.
    """
    args = _prepare(sim, state, freqs_hz, monitor_filter)
    return _analyse_jit(*args, bool(observed_only), False)[1].cov


def _correlation(cov: jax.Array) -> jax.Array:
    d = jnp.sqrt(jnp.diagonal(cov))
    return cov / (d[:, None] * d[None, :])


def fc(
    sim: Simulator,
    *,
    state: Any = None,
    freqs_hz: Any = None,
    monitor_filter: bool = False,
) -> jax.Array:
    """Functional connectivity: the correlation matrix of the observed variable.

    `covariance(sim, ...)` normalised by its diagonal. Arguments as `covariance`.

    **Returns:** `(n_regions, n_regions)`, dimensionless, ones on the diagonal
    (NaN for a region without fluctuations or an unstable system).
    """
    return _correlation(
        covariance(sim, state=state, freqs_hz=freqs_hz, monitor_filter=monitor_filter)
    )


class Stability(NamedTuple):
    """Linear stability of the fixed point.

    - `abscissa`: scalar, 1/ms: the largest real part of the eigenvalues of
      $J_0 + K$ (every delay set to zero).
    - `n_unstable`: scalar (float): the number of characteristic roots with a
      positive real part (of $J_0 + K$ without delays; of the delayed
      characteristic equation with delays); NaN when it could not be computed.
    - `stable`: boolean scalar: `n_unstable == 0` (False for NaN).
    """

    abscissa: jax.Array
    n_unstable: jax.Array
    stable: jax.Array


def _stability(lin: Linearization, analysis: _Analysis) -> Stability:
    stable = (analysis.n_unstable == 0) & jnp.isfinite(analysis.n_unstable)
    if not lin.delayed:
        stable = stable & (analysis.abscissa < 0)
    return Stability(analysis.abscissa, analysis.n_unstable, stable)


def stability(sim: Simulator, *, state: Any = None, freqs_hz: Any = None) -> Stability:
    r"""Linear stability of the fixed point: the number of unstable characteristic roots.

    **Without delays:** the eigenvalues of $A = J_0 + K$ (`jnp.linalg.eigvals`);
    stable iff their largest real part (`abscissa`) is negative.

    **With delays** the eigenvalues of $J_0 + K$ do not decide: delays can
    destabilise a stable $J_0 + K$ (and the converse). The roots of the
    characteristic function $\det(sI - J_0 - K\circ e^{-s\tau})$ in the right
    half-plane are counted by the argument principle (Nyquist criterion): the
    winding of $\det M(i\omega)/\det M_{ref}(i\omega)$ along the frequency
    grid, $M_{ref}$ the stable delay-free reference of `covariance`. The count
    is exact when the grid resolves the phase (steps well below the half-width
    of the sharpest spectral peak, as for the covariance) and extends to where
    the coupling is small against $\omega$ (500 Hz by default). `abscissa`
    still reports the delay-free value, for information.

    **Arguments:**

    - `sim`: a `brainmass.Simulator`.
    - `state`: the expansion point (default: `fixed_point(sim).state`).
    - `freqs_hz`: the grid for delayed networks (see `covariance`).

    **Returns:** `Stability(abscissa, n_unstable, stable)`; never raises under
    tracing: an unstable or broken linearisation gives `stable = False`.
    """
    lin, analysis = _analyse_jit(*_prepare(sim, state, freqs_hz, False), True, True)
    return _stability(lin, analysis)


class LinearSummary(NamedTuple):
    """Everything a linearised likelihood needs, from one pass.

    - `state`: the fixed point `(n_vars, n_regions)`; `residual` its residual
      (state units per ms).
    - `covariance`: `(n_regions, n_regions)` of the observed variable.
    - `fc`: `(n_regions, n_regions)` correlation matrix.
    - `stability`: a `Stability`.
    - `ok`: boolean scalar: the fixed point converged (`residual <= tol`), it is
      stable, and the covariance is finite with a positive diagonal. A
      likelihood returns -inf where it is False.
    - `linearization`: the `Linearization` (for spectra: `transfer_function`).
    """

    state: jax.Array
    residual: jax.Array
    covariance: jax.Array
    fc: jax.Array
    stability: Stability
    ok: jax.Array
    linearization: Linearization


def linear_summary(
    sim: Simulator,
    *,
    state: Any = None,
    freqs_hz: Any = None,
    monitor_filter: bool = False,
    tol: float = 1e-6,
) -> LinearSummary:
    """Fixed point, covariance, FC and stability in one pass (one frequency sweep).

    **Arguments:** as `covariance`; `tol` is the largest acceptable fixed-point
    residual (state units per ms, default 1e-6).

    **Returns:** a `LinearSummary`; its `ok` flag is False (never an
    exception) when the fixed point did not converge, is unstable, or the
    covariance is not finite and positive.
    """
    lin, analysis = _analyse_jit(*_prepare(sim, state, freqs_hz, monitor_filter), True, True)
    stab = _stability(lin, analysis)
    cov = analysis.cov
    diag = jnp.diagonal(cov)
    ok = (lin.residual <= float(tol)) & stab.stable & jnp.all(jnp.isfinite(cov)) & jnp.all(diag > 0)
    return LinearSummary(lin.state, lin.residual, cov, _correlation(cov), stab, ok, lin)
