"""Delay-free deterministic networks solved with diffrax (adaptive steps, adjoints)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..monitors import TemporalAverage
from ._integrate import TRACES

__all__ = ["simulate_diffrax"]


def simulate_diffrax(sim):
    """Solve `sim` with its `solvers.Diffrax` settings. Returns `(samples, final_state, ok)`.

    `samples` `(n_samples, n_regions)` holds the monitored variable at the sample
    times (`Raw`) or its average over each period (`TemporalAverage`, from the
    integral of the variable solved alongside the state). A failed solve (step
    limit, step size collapse) gives `ok = False` and NaN samples, never an
    exception, so that fits treat it as a rejected point.
    """
    import diffrax

    TRACES["simulate"] += 1
    net = sim.network
    model = net.model
    variable = sim.monitor.variable or model.observable
    average = isinstance(sim.monitor, TemporalAverage)
    solver, controller, adjoint = sim.solver.resolved()
    period = sim.period_steps * sim.dt_model
    ts = period * jnp.arange(1, sim.n_samples + 1)

    def field(t, y, net):
        # the network travels as `args`, so that every adjoint (BacksolveAdjoint
        # included) sees the parameters as explicit inputs
        x = y[0]
        dx = net.drift(x, None, net.connectome.weights, net.strength())
        if average:
            return dx, net.model.quantity(x, variable)
        return (dx,)

    x0 = jnp.asarray(sim.init)
    y0 = (x0, jnp.zeros_like(x0[0])) if average else (x0,)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver,
        t0=0.0,
        t1=sim.n_samples * period,
        dt0=sim.dt_model,
        y0=y0,
        args=net,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        adjoint=adjoint,
        max_steps=sim.solver.max_steps,
        throw=False,
    )
    ok = sol.result == diffrax.RESULTS.successful
    states = sol.ys[0]
    if average:
        integral = jnp.concatenate([jnp.zeros_like(sol.ys[1][:1]), sol.ys[1]])
        samples = jnp.diff(integral, axis=0) / period
    else:
        samples = jax.vmap(lambda x: model.quantity(x, variable))(states)
    samples = jnp.where(ok, samples, jnp.nan)
    return samples, states[-1], ok
