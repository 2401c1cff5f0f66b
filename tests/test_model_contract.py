"""One contract for every model: shapes, names, units, jit == eager, gradients vs FD.

The registry (`bm.models.list_models()`) is the list; a model added there is
tested here without further edits.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass as bm
from brainmass._params import parameter_fields

MODELS = bm.models.list_models()
N = 4

# Models whose coupling is not the default linear one.
COUPLINGS = {
    "JansenRit": lambda: bm.coupling.Sigmoidal(G=1.0),
    "Kuramoto": lambda: bm.coupling.Kuramoto(G=0.05),
}


def _model(name):
    return bm.models.get_model(name)()


def _network(name, *, noise=None, speed=5.0):
    conn = bm.Connectome.synthetic(N, seed=1)
    coupling = COUPLINGS.get(name, lambda: bm.coupling.Linear(G=0.05))()
    return bm.Network(_model(name), conn, coupling=coupling, speed=speed, noise=noise)


def test_registry_lists_the_issue_models():
    expected = {
        "Hopf",
        "WilsonCowan",
        "JansenRit",
        "MontbrioPazoRoxin",
        "CoombesByrne",
        "ReducedWongWang",
        "FitzHughNagumo",
        "Kuramoto",
        "Linear",
    }
    assert expected <= set(MODELS), f"missing: {expected - set(MODELS)}"
    with pytest.raises(ValueError, match="unknown model"):
        bm.models.get_model("NoSuchModel")


@pytest.mark.parametrize("name", MODELS)
def test_declarations(name):
    cls = bm.models.get_model(name)
    assert cls.__doc__ and "$" in cls.__doc__, "equations belong in the docstring"
    assert len(cls.state_variables) == len(set(cls.state_variables)) >= 1
    names = cls.variable_names()
    assert all(v in names for v in cls.coupled_variables)
    assert cls.observable in names
    assert set(cls.initial_state) == set(cls.state_variables)
    fields = parameter_fields(cls)
    assert fields, "a model has parameters"
    for f in fields:
        assert f.metadata["doc"], f"{name}.{f.name} has no description"
        assert f.default is not dataclasses.MISSING
    # abstract/final: the concrete model is final (no subclassing)
    assert "dfun" in cls.__dict__


@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_jit(name):
    model = _model(name)
    key = jax.random.key(0)
    state = model.default_state(N) + 0.01 * jax.random.normal(key, (model.n_vars, N))
    coupling = 0.01 * jnp.ones((len(model.coupled_variables), N))
    dx = model.dfun(state, coupling)
    assert dx.shape == state.shape
    assert bool(jnp.all(jnp.isfinite(dx)))
    np.testing.assert_allclose(
        jax.jit(lambda s, c: model.dfun(s, c))(state, coupling), dx, rtol=1e-5, atol=1e-7
    )
    assert model.efferent(state).shape == (len(model.coupled_variables), N)
    for var in model.variable_names():
        assert model.quantity(state, var).shape == (N,)
    # per-region parameters: region i of a vectorised model equals a scalar model
    first = parameter_fields(model)[0].name
    base = getattr(model, first)
    values = base * (1.0 + 0.1 * jnp.arange(N)) + 0.01 * jnp.arange(N)
    vec = dataclasses.replace(model, **{first: values})
    out = vec.dfun(state, coupling)
    for i in range(N):
        single = dataclasses.replace(model, **{first: values[i]})
        np.testing.assert_allclose(out[:, i], single.dfun(state, coupling)[:, i], rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_noisy_delayed_network_runs(name):
    net = _network(name, noise=bm.noise.Additive(sigma=1e-3))
    sim = bm.Simulator(net, dt=0.1, duration=50.0, monitor=bm.monitors.TemporalAverage(1.0))
    res = sim.run(jax.random.key(0))
    assert res.signal.shape == (50, N)
    assert bool(res.ok)
    # vmap over a parameter equals a loop
    field = parameter_fields(net.model)[0].name
    path = f"model.{field}"
    f = sim.function([path])
    base = float(jnp.mean(net.model.parameters()[field]))
    values = jnp.asarray([base, base * 1.05 + 1e-3])
    key = jax.random.key(1)
    batched = jax.vmap(lambda v: f({path: v}, key))(values)
    for i in range(2):
        np.testing.assert_allclose(batched[i], f({path: values[i]}, key), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_gradients_match_finite_differences(name):
    """Autodiff through a short delayed run vs central differences, every model parameter."""
    with jax.enable_x64(True):
        net = _network(name)
        sim = bm.Simulator(net, dt=0.1, duration=20.0, monitor=bm.monitors.Raw(0.5))
        paths = [f"model.{f.name}" for f in parameter_fields(net.model)]
        f = sim.function(paths)
        theta0 = {p: jnp.asarray(net.model.parameters()[p[6:]], dtype=jnp.float64) for p in paths}
        weights = jax.random.normal(jax.random.key(3), (40, N), dtype=jnp.float64)

        def loss(theta):
            return jnp.sum(weights * f(theta))

        grad = jax.grad(loss)(theta0)
        for p in paths:
            value = float(theta0[p])
            h = 1e-6 * max(abs(value), 1.0)
            up = dict(theta0, **{p: theta0[p] + h})
            down = dict(theta0, **{p: theta0[p] - h})
            fd = (float(loss(up)) - float(loss(down))) / (2 * h)
            ad = float(grad[p])
            assert np.isfinite(ad), f"{name}: non-finite gradient for {p}"
            scale = max(abs(fd), abs(ad), 1e-8 * max(abs(float(loss(theta0))), 1.0))
            assert abs(ad - fd) <= 1e-4 * scale + 1e-9, f"{name} {p}: autodiff {ad} vs FD {fd}"
