r"""The linearised (fixed-point) spectral model of a brainmass network.

A noise-driven network that fluctuates around a stable fixed point $x^*$ is,
to first order in the fluctuations, the linear delay stochastic differential
equation

$$
dx(t) = \Big(J_0\, x(t) + \sum_{j} K_{\cdot j}\, x_j(t - \tau_{\cdot j})\Big)\,dt
        + \Sigma\, dW(t),
$$

with $N = n_{vars} n_{regions}$ state components in variable-major order
(component `v * n_regions + i` is variable `v` of region `i`). Its transfer
function and cross-spectral density are

$$
H(\omega) = \big(i\omega I - J_0 - K \circ e^{-i\omega\tau}\big)^{-1}, \qquad
S(\omega) = H(\omega)\, Q(\omega)\, H(\omega)^\dagger ,
$$

($\omega$ in rad/ms $= 2\pi f_{Hz}/1000$, Fourier convention
$\hat x(\omega) = \int x(t) e^{-i\omega t} dt$), and the stationary covariance
is $\int_{-\infty}^{\infty} S(\omega)\,d\omega / 2\pi$; without delays it
solves the Lyapunov equation $A\Sigma + \Sigma A^T + Q = 0$, $A = J_0 + K$.

Everything is built from the network's own pieces with automatic
differentiation, so every model, coupling and noise of brainmass works:

- the fixed point solves `Network.drift(x, None, W, strength) = 0` (every
  delayed state equals $x^*$ at a fixed point);
- $J_0 = \partial\,\mathrm{drift} / \partial x$ with the summed coupling input
  held at its fixed-point value (the receiver's local coupling terms, such as
  diffusive coupling's $-G\,s_i\,e_i$, are in $J_0$);
- $K = \partial\,\mathrm{drift}/\partial(\text{summed input}) \cdot
  \partial(\sum_j W_{ij} f(e_j))/\partial x$, the coupled part, whose entry
  $(v, i), (u, j)$ carries the delay $\tau_{ij}$ of the edge $j \to i$;
- the noise: additive white noise gives $Q = \mathrm{diag}(\sigma^2)$
  (`Network.sigma()`, std per $\sqrt{ms}$); multiplicative noise is linearised
  at the fixed point, $Q = \mathrm{diag}(\sigma^2 x^{*2})$ (the
  Itô/Stratonovich drift correction is not modelled); coloured
  (Ornstein-Uhlenbeck) noise of correlation time $\tau_n$ enters as
  $Q(\omega) = \mathrm{diag}(\sigma^2 / (1 + \omega^2\tau_n^2))$.

**Delays.** brainmass rounds each delay to a whole number of time steps in its
simulations (`delays="rounded"`); this module uses the exact delays
$\tau_{ij} = L_{ij}/v$ (`Network.delays_ms()`), which is what an interpolated
or infinitely fine simulation converges to. Choose tract lengths that are
multiples of `dt * speed` to compare with a rounded simulation exactly.

**What is not modelled.** Haemodynamic (BOLD) and lead-field (EEG/MEG)
forward models: spectra and covariances are those of the neural variable the
monitor records, per region. Sampling: the spectra are those of the
continuous-time process; a signal sampled every `period` ms has, in addition,
the aliased power of frequencies above its Nyquist frequency (negligible well
below it).

All functions are pure and work under `jax.jit`, `jax.grad` and `jax.vmap`
with respect to the simulator's parameters (`sim.with_params({...})` inside
the traced function). `Simulator.with_params` refuses a traced conduction
speed or tract lengths (the simulation's delay buffer is sized from them);
the linearised model needs no buffer, so replace them with
`eqx.tree_at(lambda s: s.network.speed, sim, v)` instead: the covariance is
differentiable with respect to the delays. Each public function validates its
arguments eagerly and then runs compiled code (`eqx.filter_jit`), shared by
simulators of the same structure. Failures (no fixed point, an unstable fixed
point) never raise inside a trace: they show as flags (`FixedPoint.residual`,
`Stability.stable`, `LinearSummary.ok`) or as NaN.

Public functions: `fixed_point`, `linearize`, `transfer_function`,
`cross_spectrum`, `covariance`, `fc`, `stability`, `linear_summary` (all of
these in one pass, with an `ok` flag for a likelihood), `lyapunov`,
`default_freqs`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from brainmass.monitors import Raw, TemporalAverage
from brainmass.simulator import Simulator, _state_array

__all__ = [
    "DEFAULT_DF_HIGH_HZ",
    "DEFAULT_DF_HZ",
    "DEFAULT_FMAX_HZ",
    "DEFAULT_SPLIT_HZ",
    "FixedPoint",
    "LinearSummary",
    "Linearization",
    "Stability",
    "covariance",
    "cross_spectrum",
    "default_freqs",
    "fc",
    "fixed_point",
    "linear_summary",
    "linearize",
    "lyapunov",
    "stability",
    "transfer_function",
]

DEFAULT_DF_HZ = 0.25
"""Spacing (Hz) of the default frequency grid for delayed networks, up to `DEFAULT_SPLIT_HZ`."""

DEFAULT_FMAX_HZ = 500.0
"""Highest frequency (Hz) of the default frequency grid for delayed networks."""

DEFAULT_SPLIT_HZ = 100.0
"""Above this frequency (Hz) the default grid is coarser."""

DEFAULT_DF_HIGH_HZ = 1.0
"""Spacing (Hz) of the default grid above `DEFAULT_SPLIT_HZ`."""

_TWO_PI_PER_KHZ = 2.0 * math.pi / 1000.0  # rad/ms per Hz
_REF_MARGIN = 0.01  # 1/ms: the least decay rate of the delay-free reference
_DEFAULT_STEPS = 50  # Newton iterations of fixed_point
_DEFAULT_TOL = 1e-8  # fixed_point's tolerance, state units per ms


# =====================================================================================
# helpers
# =====================================================================================


def _check_sim(sim: Any, name: str = "sim") -> Simulator:
    if not isinstance(sim, Simulator):
        raise ValueError(f"{name}: expected a brainmass.Simulator, got {type(sim).__name__}.")
    return sim


def _time_scale(sim: Simulator) -> float:
    """Model time units per ms (1 for every built-in model, whose time unit is ms)."""
    return float(sim.dt_model / sim.dt)


def _observed_variable(sim: Simulator) -> str:
    return sim.monitor.variable or sim.network.model.observable


def _as_state(value: Any, sim: Simulator, name: str) -> jax.Array:
    """A state as an `(n_vars, n_regions)` array or a dict per variable (the rest: `sim.init`)."""
    return _state_array(
        value, sim.network.model, sim.network.n_regions, name, traced_ok=True, default=sim.init
    )


def _network_drift(net, x_flat: jax.Array, scale: float) -> jax.Array:
    """The fixed-point residual: the drift with every delayed state equal to `x`, per ms."""
    nv, n = net.n_vars, net.n_regions
    x = x_flat.reshape(nv, n)
    return scale * net.drift(x, None, net.connectome.weights, net.strength()).reshape(-1)


def _max_abs(r: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(r)) if r.size else jnp.zeros((), r.dtype)


def _complex_dtype(dtype) -> Any:
    return jnp.result_type(dtype, jnp.complex64)


def _wrap(phase: jax.Array) -> jax.Array:
    """An angle wrapped into [-pi, pi)."""
    return jnp.mod(phase + jnp.pi, 2.0 * jnp.pi) - jnp.pi


class _Context(NamedTuple):
    """What the compiled functions need from the simulator besides its network (hashable).

    - `scale`: model time units per ms; `variable`: the observed quantity;
    - `filt`: `(P, dt)` of a `TemporalAverage` monitor whose box-car average is
      modelled (`monitor_filter=True`), else None.

    Passing this instead of the whole `Simulator` keeps compiled code shared
    between simulators that differ only in static details (delay buffer plan,
    duration).
    """

    scale: float
    variable: str
    filt: tuple[int, float] | None = None


def _context(sim: Simulator, monitor_filter: bool = False) -> _Context:
    filt = None
    if monitor_filter:
        monitor = sim.monitor
        if not isinstance(monitor, (Raw, TemporalAverage)):
            raise ValueError(
                "monitor_filter: supported for Raw and TemporalAverage monitors only, got "
                f"{type(monitor).__name__}; use monitor_filter=False (the neural variable's "
                "spectrum)."
            )
        if isinstance(monitor, TemporalAverage):
            filt = (int(sim.period_steps), float(sim.dt))
    return _Context(_time_scale(sim), _observed_variable(sim), filt)


# =====================================================================================
# fixed point
# =====================================================================================


class FixedPoint(NamedTuple):
    r"""A fixed point of the network and how well it solves the fixed-point equation.

    - `state`: `(n_vars, n_regions)`, in the model's state units.
    - `residual`: scalar, $\max |\mathrm{drift}(x^*)|$ in state units per ms
      (with every delayed state equal to $x^*$). Compare it with a tolerance
      (e.g. 1e-6) to decide convergence; NaN when Newton's method broke down.
    """

    state: jax.Array
    residual: jax.Array


def _newton(F, x0: jax.Array, steps: int, tol: float) -> tuple[jax.Array, jax.Array]:
    r"""Newton's method damped by pseudo-transient continuation, on `F(x) = 0`.

    Each iteration solves $(I/h - J)\,\delta = F(x)$, $x \leftarrow x + \delta$: an
    implicit Euler step of length $h$ (ms) of $\dot x = F(x)$, linearised. It
    starts with $h = 1$ ms, so that early iterations follow the flow towards
    the attractor basin of `x0` (a stable fixed point rather than a saddle),
    and $h$ grows geometrically (times $2\,\|F_{old}\|/\|F_{new}\|$), so that
    the iteration turns into Newton's method with quadratic convergence. A step
    that makes the residual non-finite or four times larger is rejected and
    $h$ quartered. A `lax.while_loop` of at most `steps` iterations, stopping
    when $\max|F| \le$ `tol`. Kelley & Keyes (1998), SIAM J. Numer. Anal. 35:508.
    """
    n = x0.shape[0]
    eye = jnp.eye(n, dtype=x0.dtype)
    tiny = float(jnp.finfo(x0.dtype).tiny)

    def norm2(r):
        return jnp.sqrt(jnp.sum(r * r))

    def cond(carry):
        _, fx, _, k = carry
        r = _max_abs(fx)
        return (k < steps) & (r > tol) & jnp.isfinite(r)

    def body(carry):
        x, fx, h, k = carry
        jac = jax.jacfwd(F)(x)
        x_new = x + jnp.linalg.solve(eye / h - jac, fx)
        f_new = F(x_new)
        n_old, n_new = norm2(fx), norm2(f_new)
        accept = jnp.isfinite(n_new) & (n_new <= 4.0 * n_old)
        growth = 2.0 * jnp.clip(n_old / jnp.maximum(n_new, tiny), 0.5, 1e3)
        h_new = jnp.where(accept, jnp.minimum(h * growth, 1e15), 0.25 * h)
        x = jnp.where(accept, x_new, x)
        fx = jnp.where(accept, f_new, fx)
        return x, fx, h_new, k + 1

    h0 = jnp.ones((), x0.dtype)
    x, fx, _, _ = jax.lax.while_loop(cond, body, (x0, F(x0), h0, jnp.zeros((), jnp.int32)))
    return x, _max_abs(fx)


def fixed_point(
    sim: Simulator, init: Any = None, *, steps: int = _DEFAULT_STEPS, tol: float = _DEFAULT_TOL
) -> FixedPoint:
    r"""The fixed point $x^*$ of the network: `Network.drift(x, None, W, strength) = 0`.

    At a fixed point every delayed state equals the present one, so delays do
    not matter and the coupling acts through all the weights $W$.

    **Method.** Newton's method damped by pseudo-transient continuation (a
    `lax.while_loop` that stops when the residual $\max|\mathrm{drift}|$ falls
    below `tol` or after `steps` iterations; see `_newton`), with the exact
    Jacobian from `jax.jacfwd`: the first iterations follow the flow from
    `init` (implicit Euler steps of growing length, from 1 ms), the last ones
    are plain Newton steps. It therefore tends to find the stable fixed point
    that a simulation started at `init` approaches; when the flow leads to a
    limit cycle or a slow "ghost", the residual stays large. Derivatives with
    respect to the simulator's parameters use the implicit function theorem,
    $dx^* = -J^{-1}\,\partial_\theta \mathrm{drift} \cdot d\theta$ (a
    `jax.custom_jvp`: forward mode, reverse mode and higher orders all work,
    and the iterations themselves are not differentiated).
    Which fixed point is found depends on `init` when there are several.

    **Arguments:**

    - `sim`: a `brainmass.Simulator`.
    - `init`: starting point, an `(n_vars, n_regions)` array or a dict per state
      variable; default the simulator's initial state (`sim.init`). Its
      gradient is not propagated.
    - `steps`: the maximum number of Newton iterations (default 50).
    - `tol`: stop when the residual (state units per ms) is below this.

    **Returns:** `FixedPoint(state, residual)`: `state` `(n_vars, n_regions)`;
    `residual` a scalar (state units per ms) to compare with a tolerance; it
    is NaN (never an exception) when the iteration broke down.
    """
    sim = _check_sim(sim)
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps: expected a number of Newton iterations >= 0, got {steps}.")
    tol = float(tol)
    if not tol >= 0:
        raise ValueError(f"tol: expected a tolerance >= 0 (state units per ms), got {tol}.")
    x0 = sim.init if init is None else _as_state(init, sim, "init")
    return _fixed_point_jit(sim.network, x0, _time_scale(sim), steps, tol)


@eqx.filter_jit
def _fixed_point_jit(net, x0: jax.Array, scale: float, steps: int, tol: float) -> FixedPoint:
    nv, n = net.n_vars, net.n_regions
    dtype = jnp.result_type(x0.dtype, float)
    x0 = x0.astype(dtype)
    dyn, static = eqx.partition(net, eqx.is_inexact_array)

    def F(d, x):
        return _network_drift(eqx.combine(d, static), x, scale)

    @jax.custom_jvp
    def solve(d, start):
        return _newton(lambda x: F(d, x), start, steps, tol)

    @solve.defjvp
    def _solve_jvp(primals, tangents):
        d, start = primals
        d_dot, _ = tangents
        x, r = solve(d, start)
        jac = jax.jacfwd(lambda y: F(d, y))(x)
        _, f_dot = jax.jvp(lambda dd: F(dd, x), (d,), (d_dot,))
        x_dot = -jnp.linalg.solve(jac, f_dot)
        return (x, r), (x_dot, jnp.zeros_like(r))

    start = jax.lax.stop_gradient(x0.reshape(-1))
    x, r = solve(dyn, start)
    return FixedPoint(x.reshape(nv, n), r)


# =====================================================================================
# linearisation
# =====================================================================================


class Linearization(eqx.Module):
    r"""The linear(ised) network around a state, in ms.

    $N = n_{vars}\, n_{regions}$, variable-major order: component
    `v * n_regions + i` is state variable `v` of region `i`.

    **Fields:**

    - `state`: the expansion point $x^*$, `(n_vars, n_regions)`.
    - `residual`: $\max|\mathrm{drift}(x^*)|$, state units per ms (scalar).
    - `J0`: `(N, N)`, 1/ms: the local (undelayed) Jacobian.
    - `K`: `(N, N)`, 1/ms: the coupled part; entry `(v i, u j)` acts with the
      delay `tau[v i, u j]` $= \tau_{ij}$.
    - `tau`: `(N, N)`, ms: the exact conduction delays of the edges $j \to i$,
      repeated over every pair of variables (zeros without delays).
    - `sigma2`: `(N,)`: noise intensity $\sigma^2$ per component, in state
      units^2 per ms (for coloured noise: the white-noise intensity driving
      the noise process).
    - `noise_tau`: `(N,)`, ms: correlation time of the noise (zeros: white).
    - `obs`: `(n_regions, N)`: the observation matrix, the derivative of the
      observed variable (the monitor's variable or the model's observable) at
      $x^*$; a selection of rows of the identity for a state variable.
    - `observed`: the indices (into N) of the observed state variable, one per
      region, or None when the observed quantity is a derived variable.
    - `n_vars`, `n_regions`: sizes; `delayed`: whether the network has
      conduction delays; `colored`: whether the noise is coloured.
    """

    state: jax.Array
    residual: jax.Array
    J0: jax.Array
    K: jax.Array
    tau: jax.Array
    sigma2: jax.Array
    noise_tau: jax.Array
    obs: jax.Array
    observed: tuple[int, ...] | None = eqx.field(static=True)
    n_vars: int = eqx.field(static=True)
    n_regions: int = eqx.field(static=True)
    delayed: bool = eqx.field(static=True)
    colored: bool = eqx.field(static=True)

    @property
    def n(self) -> int:
        """N, the number of state components."""
        return self.n_vars * self.n_regions

    @property
    def A(self) -> jax.Array:
        """`J0 + K`, `(N, N)` 1/ms: the Jacobian with every delay set to zero."""
        return self.J0 + self.K


def linearize(sim: Simulator, state: Any = None) -> Linearization:
    r"""Linearise the network around a state (by default its fixed point).

    $J_0$ is the Jacobian of `Network.drift` with the summed coupling input
    $s_i = \sum_j W_{ij} f(e_j)$ held at its value at `state`; $K$ is
    $\partial\,\mathrm{drift}/\partial s \cdot \partial s/\partial x$ (both from
    `jax.jacfwd`, through the model's `efferent` and the coupling's `features`
    and `combine`), so any model and coupling work. Rates are converted to
    1/ms when a model's time unit is not ms.

    **Arguments:**

    - `sim`: a `brainmass.Simulator`.
    - `state`: the expansion point, `(n_vars, n_regions)` or a dict per
      variable; default `fixed_point(sim).state` (with default settings).

    **Returns:** a `Linearization` (see its fields; matrices `(N, N)` with
    `N = n_vars * n_regions`, rates in 1/ms, delays in ms).
    """
    sim = _check_sim(sim)
    if state is not None:
        state = _as_state(state, sim, "state")
    return _linearize_jit(sim.network, sim.init, state, _context(sim))


@eqx.filter_jit
def _linearize_jit(net, init: jax.Array, state: jax.Array | None, ctx: _Context) -> Linearization:
    nv, n = net.n_vars, net.n_regions
    N = nv * n
    scale = ctx.scale
    if state is None:
        state = _fixed_point_jit(net, init, scale, _DEFAULT_STEPS, _DEFAULT_TOL).state
    dtype = jnp.result_type(state.dtype, float)
    state = state.astype(dtype)
    x = state.reshape(-1)
    W = net.connectome.weights
    strength = net.strength()
    n_feat = net.n_features

    def summed(y):
        return net.features(y.reshape(nv, n)) @ W.T  # (n_features, n_regions)

    s_star = summed(x)

    def local(y):
        return scale * net.drift(y.reshape(nv, n), s_star, None, strength).reshape(-1)

    def through_input(s):
        return scale * net.drift(state, s.reshape(n_feat, n), None, strength).reshape(-1)

    J0 = jax.jacfwd(local)(x)  # (N, N)
    d_input = jax.jacfwd(through_input)(s_star.reshape(-1))  # (N, n_features n)
    d_summed = jax.jacfwd(lambda y: summed(y).reshape(-1))(x)  # (n_features n, N)
    K = d_input @ d_summed
    residual = _max_abs(_network_drift(net, x, scale))
    tau = jnp.tile(net.delays_ms().astype(dtype), (nv, nv))

    colored = bool(net.noise is not None and net.noise.colored)
    if net.noise is None:
        sigma2 = jnp.zeros((N,), dtype)
        noise_tau = jnp.zeros((N,), dtype)
    elif colored:
        sigma2 = scale * net.sigma().astype(dtype).reshape(-1) ** 2
        tau_n = jnp.asarray(net.noise.tau, dtype)
        tau_n = jnp.broadcast_to(tau_n.reshape(-1) if tau_n.ndim else tau_n, (n,))
        noise_tau = jnp.broadcast_to(tau_n[None, :], (nv, n)).reshape(-1) / scale
    else:
        g = net.noise.diffusion(state, net.sigma().astype(dtype))
        sigma2 = scale * (g.reshape(-1) ** 2)
        noise_tau = jnp.zeros((N,), dtype)

    variable = ctx.variable
    model = net.model
    obs = jax.jacfwd(lambda y: model.quantity(y.reshape(nv, n), variable))(x)  # (n, N)
    observed = None
    if variable in model.state_variables:
        v = model.state_variables.index(variable)
        observed = tuple(v * n + i for i in range(n))
    return Linearization(
        state=state,
        residual=residual,
        J0=J0,
        K=K,
        tau=tau,
        sigma2=sigma2,
        noise_tau=noise_tau,
        obs=obs.astype(dtype),
        observed=observed,
        n_vars=nv,
        n_regions=n,
        delayed=bool(net.has_delays),
        colored=colored,
    )


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
