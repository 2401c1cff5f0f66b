"""Fixed points and linearisation of a network around a state."""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ._common import (
    _DEFAULT_STEPS,
    _DEFAULT_TOL,
    Simulator,
    _as_state,
    _check_sim,
    _Context,
    _context,
    _max_abs,
    _network_drift,
    _time_scale,
)

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
