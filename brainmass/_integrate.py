r"""The simulation loop: one `lax.scan` over blocks of steps, with a delay ring buffer.

Loop structure (all sizes static):

- a *step* advances the state by `dt` with the solver;
- a *block* is `K = plan.block` steps that share one read of the delay buffer;
- a *group* is `max(K, P)` steps (`P`: steps per monitor sample), which holds
  whole blocks and whole samples; noise is drawn per sample from
  `fold_in(key, sample_index)`, so it does not depend on `K`;
- groups are scanned in two nested, checkpointed levels, so that reverse-mode
  gradients store about $2\\sqrt{n_{groups}}$ carries instead of one per step.
"""

from __future__ import annotations

import math
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np

from ._delays import DelayPlan, delay_tables, history_steps

__all__ = ["simulate_fixed_step", "TRACES", "checkpointed_scan", "split_chunks"]

# Python-side counters incremented when a simulation is traced (for tests).
TRACES: Counter = Counter()


def split_chunks(n: int) -> tuple[int, int]:
    """Factor `n` items into `(outer, inner)` chunks with inner about `sqrt(n)`.

    Returns a factorisation with `outer * inner >= n`; exact where `n` has a
    divisor near its square root.
    """
    if n <= 1:
        return 1, max(n, 1)
    root = math.isqrt(n)
    for inner in range(root, max(root // 2, 1) - 1, -1):
        if n % inner == 0:
            return n // inner, inner
    inner = max(root, 1)
    return -(-n // inner), inner


def checkpointed_scan(body, carry, n: int, *, checkpoint: bool = True):
    """`lax.scan(body, carry, jnp.arange(n))` in two checkpointed levels.

    `body(carry, i) -> (carry, out)`. Iterations `i >= n` added to fill the last
    chunk leave the carry unchanged and their outputs are dropped.
    """
    if not checkpoint:
        return jax.lax.scan(body, carry, jnp.arange(n))
    outer, inner = split_chunks(n)
    padded = outer * inner != n
    step = jax.checkpoint(body, prevent_cse=False)

    def masked(c, i):
        new_c, out = step(c, i)
        if padded:
            new_c = jax.tree.map(lambda a, b: jnp.where(i < n, a, b), new_c, c)
        return new_c, out

    @jax.checkpoint
    def chunk(c, j):
        return jax.lax.scan(masked, c, j * inner + jnp.arange(inner))

    carry, outs = jax.lax.scan(chunk, carry, jnp.arange(outer))
    outs = jax.tree.map(lambda a: a.reshape((outer * inner,) + a.shape[2:])[:n], outs)
    return carry, outs


def _history_states(sim, plan: DelayPlan, x0):
    """States at steps -(H)..-1 (oldest first), shape `(H, n_vars, n_regions)`."""
    n_hist = history_steps(plan)
    if n_hist == 0:
        return None
    history = sim.history
    if history is None:
        return jnp.broadcast_to(x0, (n_hist,) + x0.shape)
    if callable(history):
        times = -sim.dt * jnp.arange(n_hist, 0, -1, dtype=x0.dtype)
        states = jax.vmap(lambda t: sim.history_state(history(t)))(times)
        return states.astype(x0.dtype)
    past = jnp.asarray(history, dtype=x0.dtype)  # row k at time -(k+1) dt
    if past.shape[0] < n_hist:
        pad = jnp.broadcast_to(past[-1], (n_hist - past.shape[0],) + past.shape[1:])
        past = jnp.concatenate([past, pad])
    return past[:n_hist][::-1]


def simulate_fixed_step(sim, key, plan: DelayPlan):
    """Run `sim` with its fixed-step solver. Returns `(samples, final_state)`.

    `samples` has shape `(n_samples, n_regions)` (the monitor's reduced
    variable), `final_state` `(n_vars, n_regions)`.
    """
    TRACES["simulate"] += 1
    net = sim.network
    model = net.model
    solver = sim.solver
    monitor = sim.monitor
    variable = monitor.variable or model.observable
    n, nv = net.n_regions, net.n_vars
    dt_ms = sim.dt
    dt = sim.dt_model
    P = sim.period_steps
    K = plan.block
    group = max(K, P)
    g_b, g_s = group // K, group // P
    n_groups = sim.n_steps // group
    delayed = plan.length > 0
    L = plan.length

    x0 = jnp.asarray(sim.init)
    dtype = x0.dtype
    tables = delay_tables(net, dt_ms, plan)
    inst_w = tables.inst_weights
    has_inst = plan.has_inst
    strength = net.strength()
    stochastic = net.noise is not None
    colored = stochastic and net.noise.colored
    sigma = net.sigma().astype(dtype) if stochastic else None
    if key is None and stochastic:
        raise ValueError("key: this network is stochastic; pass a jax.random key to run it.")

    def drift(x, inputs):
        summed, eta = inputs
        efferent = model.efferent(x)
        if has_inst:
            inst = net.coupling.features(efferent) @ inst_w.T
            summed = inst if summed is None else summed + inst
        coupling = net.coupling.combine(efferent, summed, strength)
        dx = model.dfun(x, coupling)
        return dx if eta is None else dx + eta

    def diffusion(x):
        return net.noise.diffusion(x, sigma)

    periodic = [model.state_variables.index(v) for v in model.periodic_variables]
    periodic = np.asarray(periodic) if periodic else None
    sqrt_dt = jnp.sqrt(jnp.asarray(dt, dtype))

    def one_step(carry, inputs):
        x, eta = carry
        s0, s1, xi = inputs
        if colored:
            eta1 = net.noise.advance(eta, xi, dt, sigma)
            x1 = solver.step(drift, diffusion, x, dt, (s0, eta), (s1, eta1), None)
        else:
            eta1 = eta
            dW = None if xi is None else sqrt_dt * xi
            x1 = solver.step(drift, diffusion, x, dt, (s0, None), (s1, None), dW)
        if periodic is not None:
            x1 = x1.at[periodic].set(jnp.mod(x1[periodic], 2 * jnp.pi))
        obs = model.quantity(x1, variable)
        feats = net.features(x1) if delayed else None
        return (x1, eta1), (obs, feats)

    if delayed:
        interpolated = tables.hi_weights is not None
        window = K + 2 if interpolated else K + 1
        src = jnp.asarray(tables.sources)
        gather_dims = jax.lax.GatherDimensionNumbers(
            offset_dims=(2, 3), collapsed_slice_dims=(0,), start_index_map=(0, 1, 2)
        )

    def read_delayed(buf, t0):
        """Delayed weighted sums for steps t0..t0+K, shape (K + 1, n_features, n).

        The buffer `(n, 2 L, F)` holds the features of step t at position
        (t - 1) mod L and again L later, so every window is contiguous: one
        gather of a (window, F) slice per edge.
        """
        start = (t0 - tables.lo_steps - (window - K)) % L
        index = jnp.stack([src, start, jnp.zeros_like(src)], axis=-1)
        windows = jax.lax.gather(
            buf,
            index,
            gather_dims,
            slice_sizes=(1, window, buf.shape[-1]),
            mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS,
        )  # (n, M, window, F)
        out = jnp.einsum("imkf,im->kfi", windows[:, :, window - K - 1 :], tables.lo_weights)
        if interpolated:
            out = out + jnp.einsum("imkf,im->kfi", windows[:, :, : K + 1], tables.hi_weights)
        return out

    def write_delayed(buf, t0, feats):
        """Store the features of steps t0+1..t0+K (`(K, F, n)`) at positions t0 mod L (+L)."""
        block_feats = feats.transpose(2, 0, 1).astype(buf.dtype)  # (n, K, F)
        pos = t0 % L
        buf = jax.lax.dynamic_update_slice(buf, block_feats, (0, pos, 0))
        return jax.lax.dynamic_update_slice(buf, block_feats, (0, pos + L, 0))

    def block(carry, inputs):
        x, eta, buf = carry
        t0, xi = inputs  # xi: (K, nv, n) or None
        if delayed:
            summed = read_delayed(buf, t0)
            s0, s1 = summed[:-1], summed[1:]
        else:
            s0 = s1 = None
        (x, eta), (obs, feats) = jax.lax.scan(one_step, (x, eta), (s0, s1, xi), length=K)
        if delayed:
            buf = write_delayed(buf, t0, feats)
        return (x, eta, buf), obs

    def noise_for_group(g):
        """Standard normal draws for the group's steps, keyed per monitor sample."""
        if not stochastic:
            return None
        if g_s == 1:
            xi = jax.random.normal(jax.random.fold_in(noise_key, g), (group, nv, n), dtype)
        else:

            def draw(s):
                sample_key = jax.random.fold_in(noise_key, g * g_s + s)
                return jax.random.normal(sample_key, (P, nv, n), dtype)

            xi = jax.vmap(draw)(jnp.arange(g_s)).reshape(group, nv, n)
        return xi.reshape(g_b, K, nv, n)

    def group_body(carry, g):
        xi = noise_for_group(g)
        t0 = g * group + K * jnp.arange(g_b)
        carry, obs = jax.lax.scan(block, carry, (t0, xi))
        obs = obs.reshape(g_s, P, n)
        sample = obs[:, -1] if monitor.reduction == "last" else jnp.mean(obs, axis=1)
        return carry, sample

    if stochastic:
        init_key, noise_key = jax.random.split(key)
    eta0 = None
    if colored:
        eta0 = net.noise.stationary_std(sigma) * jax.random.normal(init_key, (nv, n), dtype)
    buf0 = None
    if delayed:
        past = _history_states(sim, plan, x0)
        states = jnp.concatenate([past, x0[None]])  # steps -(L-1)..0
        feats = jax.vmap(net.features)(states).transpose(2, 0, 1)  # (n, L, F)
        pos = (jnp.arange(-(L - 1), 1) - 1) % L
        ring = jnp.zeros_like(feats).at[:, pos].set(feats)
        buf0 = jnp.concatenate([ring, ring], axis=1)  # (n, 2 L, F)

    (x_end, _, _), samples = checkpointed_scan(
        group_body, (x0, eta0, buf0), n_groups, checkpoint=sim.checkpoint
    )
    samples = samples.reshape(n_groups * g_s, n)
    return samples, x_end
