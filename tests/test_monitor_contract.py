"""One contract for every monitor (the registry below), the way flowjax tests every bijection.

Each entry builds a monitor with small settings for a stable 4-region linear network. The
test checks what a `Simulator` promises about its monitor: `sim.signal_shape` (computed
from the settings, without simulating) is the shape of `sim.run(key).signal`, with the
transient dropped; the signal is finite; the monitor is an immutable equinox module; and
`sim.function` over a parameter works under `jax.jit` and `jax.vmap`, giving the loop's
signals, which depend on the parameter.
"""

from __future__ import annotations

import dataclasses
import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass as bm

N_REGIONS = 4
_LEADFIELD = np.random.default_rng(0).standard_normal((3, N_REGIONS))

# name -> (a monitor, the expected signal shape of a 400 ms run at dt = 1 ms)
REGISTRY = {
    "Raw": (lambda: bm.monitors.Raw(period=2.0), (200, N_REGIONS)),
    "TemporalAverage": (
        lambda: bm.monitors.TemporalAverage(period=4.0, transient=40.0),
        (90, N_REGIONS),
    ),
    "BOLD": (lambda: bm.monitors.BOLD(period=20.0, dt_bold=10.0), (20, N_REGIONS)),
    "EEG": (lambda: bm.monitors.EEG(_LEADFIELD, period=4.0, reference="EEG001"), (100, 2)),
    "MEG": (lambda: bm.monitors.MEG(_LEADFIELD[:2], period=4.0, transient=8.0), (98, 2)),
}


def _sim(monitor):
    net = bm.Network(
        bm.models.Linear(lam=0.1),
        bm.Connectome.synthetic(N_REGIONS, seed=0),
        coupling=bm.coupling.Linear(G=0.05),
        noise=bm.noise.Additive(sigma=0.05),
    )
    return bm.Simulator(
        net, dt=1.0, duration=400.0, monitor=monitor, init={"x": np.array([0.5, -0.2, 0.1, 0.3])}
    )


@pytest.mark.parametrize("name", list(REGISTRY))
def test_monitor_contract(name):
    make, expected = REGISTRY[name]
    monitor = make()
    assert isinstance(monitor, eqx.Module) and isinstance(monitor, bm.monitors.AbstractMonitor)
    with pytest.raises(dataclasses.FrozenInstanceError):
        monitor.period = 1.0
    sim = _sim(monitor)
    key = jax.random.key(1)

    # the declared shape is the run's, without simulating
    assert sim.signal_shape == expected
    assert len(monitor.channels(sim.network)) == expected[1]
    res = sim.run(key)
    assert tuple(res.signal.shape) == sim.signal_shape
    assert tuple(res.time.shape) == (sim.signal_shape[0],)
    assert np.all(np.isfinite(np.asarray(res.signal)))
    assert float(np.std(np.asarray(res.signal))) > 0  # the monitor records something

    # a pure function of a parameter under jit(vmap): the row at the simulator's own G is
    # its run, and the signal depends on the parameter
    f = sim.function(["coupling.G"])
    gs = jnp.array([0.05, 0.0])  # the simulator's G = 0.05 first
    batch = jax.jit(jax.vmap(f, in_axes=({"coupling.G": 0}, None)))({"coupling.G": gs}, key)
    assert batch.shape == (2, *sim.signal_shape)
    batch = np.asarray(batch)
    np.testing.assert_allclose(batch[0], np.asarray(res.signal), rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(batch)) and not np.allclose(batch[0], batch[1], rtol=0, atol=1e-9)


def test_every_public_monitor_is_in_the_registry():
    """A new monitor must join the registry (and so the contract test)."""
    public = {
        name
        for name in bm.monitors.__all__
        if isinstance(getattr(bm.monitors, name), type)
        and issubclass(getattr(bm.monitors, name), bm.monitors.AbstractMonitor)
        and not inspect.isabstract(getattr(bm.monitors, name))
        and not name.startswith("Abstract")
    }
    covered = {type(make()).__name__ for make, _ in REGISTRY.values()}
    assert {"Raw", "BOLD", "EEG"} <= public
    assert public <= covered, f"not in the contract registry: {sorted(public - covered)}"
