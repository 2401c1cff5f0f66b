"""Batching rules that keep a batch of delayed simulations fast under `jax.vmap`.

Under plain `jax.vmap`, the ring buffer of a delayed network gets a leading
batch axis and every buffer read becomes a batched gather of tiny strided
slices, which XLA runs several times slower per simulation than unbatched
(measured on CPU: ~4-5x per simulation for 80 regions). Here `jax.vmap` of a
simulation is instead routed to one simulation with B *lanes*
(`_integrate.Lanes`): the lanes share one buffer with the batch on its last
axis, so one gather of contiguous windows serves the whole batch.

Mechanics: the simulation is a `jax.custom_batching.custom_vmap` function
(its batching rule runs the lanes simulation) wrapped in a `jax.custom_vjp`
whose backward pass is itself a `custom_vmap` function,
so `jax.grad`, `jax.vmap`, `jax.vmap(jax.grad(...))` and `jax.jit` all take
the fast path. The backward pass recomputes the forward run from the
parameters (about one forward run more than plain JAX differentiation of the
checkpointed loop). The price: forward-mode differentiation (`jax.jvp`,
`jax.jacfwd`, `jax.hessian`) is not available on this path; build the
`Simulator` with `batching="vmap"` for those (plain JAX batching, every
transformation, slower batches of delayed networks on CPU).

Batches whose delays differ per lane (a batched conduction speed or tract
lengths) cannot share buffer reads: they fall back to plain `jax.vmap`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._delays import DelayPlan
from ._integrate import Lanes, simulate_fixed_step

__all__ = ["simulate_batchable"]


def _any(tree) -> bool:
    return any(bool(b) for b in jax.tree.leaves(tree))


def _axes(batched):
    return jax.tree.map(lambda b: 0 if b else None, batched)


def simulate_batchable(sim, key, plan: DelayPlan):
    """`simulate_fixed_step(sim, key, plan)` with lane batching under `jax.vmap`.

    Returns `(samples, final_state)` as `simulate_fixed_step`.
    """
    floats, rest = eqx.partition((sim, key), eqx.is_inexact_array)
    rest_arrays, static = eqx.partition(rest, eqx.is_array)

    def core(f, r, lanes=None):
        s, k = eqx.combine(f, r, static)
        return simulate_fixed_step(s, k, plan, lanes)

    def lanes_for(axis_size, f_batched, r_batched, check_delays=True):
        """Lanes for a batch, or None when the lanes' delays differ."""
        s_f, _ = f_batched
        net = s_f.network
        if check_delays and (_any(net.connectome.tract_lengths) or _any(net.speed)):
            return None
        s_r, k_r = r_batched
        # merge the batching flags of the simulator's float and non-float array leaves
        sim_flags = jax.tree.map(
            lambda a, b: bool(a) or bool(b),
            s_f,
            s_r,
            is_leaf=lambda x: x is None,
        )
        key_axis = 0 if _any(k_r) else None
        return Lanes(axis_size, _axes(sim_flags), key_axis)

    # ------------------------------------------------------------------ primal
    @jax.custom_batching.custom_vmap
    def primal(f, r):
        return core(f, r)

    @primal.def_vmap
    def _primal_rule(axis_size, in_batched, f, r):
        lanes = lanes_for(axis_size, *in_batched)
        if lanes is None:
            out = jax.vmap(core, in_axes=(_axes(in_batched[0]), _axes(in_batched[1])))(f, r)
        else:
            out = core(f, r, lanes)
        return out, jax.tree.map(lambda _: True, out)

    # ------------------------------------------------------------------ backward pass
    @jax.custom_batching.custom_vmap
    def backward(f, r, g):
        return jax.vjp(lambda ff: core(ff, r), f)[1](g)[0]

    @backward.def_vmap
    def _backward_rule(axis_size, in_batched, f, r, g):
        f_batched, r_batched, g_batched = in_batched
        lanes = lanes_for(axis_size, f_batched, r_batched)
        if lanes is None:
            axes = (_axes(f_batched), _axes(r_batched), _axes(g_batched))
            cot = jax.vmap(
                lambda ff, rr, gg: jax.vjp(lambda x: core(x, rr), ff)[1](gg)[0], in_axes=axes
            )(f, r, g)
            return cot, jax.tree.map(lambda _: True, cot)

        def lanes_first(x, b):
            return x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))

        # every float leaf gets its own copy per lane, so each lane gets its own cotangent;
        # the buffer reads keep using the shared delays
        sim_f, _ = f
        shared = (sim_f.network.connectome.tract_lengths, sim_f.network.speed)
        f = jax.tree.map(lanes_first, f, f_batched)
        g = jax.tree.map(lanes_first, g, g_batched)
        all_f = jax.tree.map(lambda _: True, f_batched)
        lanes = lanes_for(axis_size, all_f, r_batched, check_delays=False)._replace(
            shared_delays=shared
        )
        cot = jax.vjp(lambda ff: core(ff, r, lanes), f)[1](g)[0]
        return cot, jax.tree.map(lambda _: True, cot)

    # ------------------------------------------------------------------ custom vjp
    @jax.custom_vjp
    def run(f, r):
        return primal(f, r)

    def run_fwd(f, r):
        # residuals are the inputs: the backward pass recomputes the (checkpointed)
        # forward, so that both passes can take the lanes path under jax.vmap
        return primal(f, r), (f, r)

    def run_bwd(residuals, g):
        f, r = residuals
        return backward(f, r, g), None

    run.defvjp(run_fwd, run_bwd)
    return run(floats, rest_arrays)
