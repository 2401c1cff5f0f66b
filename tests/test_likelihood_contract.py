"""One contract for every likelihood (the registry below), the way flowjax tests every bijection.

Each entry builds a likelihood and the simulator and data it is meant for. The test checks
what `inference.likelihoods._base` promises: an immutable, final equinox module; `bind`
returns a new bound copy; `prepare` gives finite data of the shape `dims` names and refuses
bad data with a ValueError naming `data`; the model's log density is finite, jit == eager,
vmap == loop, and its gradient is finite; draws from the distribution have the prepared
data's shape.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import brainmass as bm
import inference as inf
from inference import likelihoods as L

N_REGIONS = 4


def _sim(*, noisy: bool, monitor=None, duration=400.0):
    conn = bm.Connectome.synthetic(N_REGIONS, seed=1)
    net = bm.Network(
        bm.models.Linear(lam=0.1),
        conn,
        coupling=bm.coupling.Linear(G=0.05),
        noise=bm.noise.Additive(sigma=0.05) if noisy else None,
    )
    return bm.Simulator(
        net,
        dt=0.5,
        duration=duration,
        monitor=monitor or bm.monitors.TemporalAverage(period=2.0),
        init={"x": np.array([1.0, -0.5, 0.3, 0.2])},
    )


PRIORS = {"model.lam": dist.LogNormal(math.log(0.1), 0.3), "coupling.G": dist.Uniform(0.0, 0.1)}


def _gaussian(prediction, data, params):
    return jax.scipy.stats.norm.logpdf(data, prediction, params["sigma"])


# name -> (likelihood, stochastic simulator?, what it does with NaN: "refuse" or "missing")
REGISTRY = {
    "TimeSeries": (lambda: L.TimeSeries(sigma=dist.HalfNormal(0.1)), False, "refuse"),
    "FC": (lambda: L.FC(sigma=0.1), False, "refuse"),
    "FC(inputs='fc')": (lambda: L.FC(sigma=0.1, inputs="fc"), False, "refuse"),
    "Custom": (lambda: L.Custom(_gaussian, noise={"sigma": 0.05}), False, "refuse"),
    "Linearized('fc')": (lambda: L.Linearized("fc", sigma=dist.HalfNormal(0.2)), True, "refuse"),
    "Whittle": (lambda: L.Whittle(nperseg=50, sigma=dist.HalfNormal(0.01)), True, "refuse"),
    "StateSpace": (lambda: L.StateSpace(sigma=dist.HalfNormal(0.01)), True, "missing"),
}
SHAPE_FREE = {"Custom"}  # a custom likelihood takes data of any shape


@pytest.fixture(scope="module")
def sims():
    return {False: _sim(noisy=False), True: _sim(noisy=True)}


def _data(name, sim):
    key = jax.random.key(3)
    signal = np.asarray(sim.run(key).signal)
    if name == "FC(inputs='fc')":
        return np.corrcoef(signal.T)
    return signal + 0.01 * np.asarray(jax.random.normal(jax.random.key(4), signal.shape))


@pytest.mark.parametrize("name", list(REGISTRY))
def test_likelihood_contract(name, sims):
    make, stochastic, nan = REGISTRY[name]
    sim = sims[stochastic]
    lik = make()

    # an immutable, final equinox module; bind returns a new bound copy
    assert isinstance(lik, eqx.Module) and isinstance(lik, L.AbstractLikelihood)
    assert getattr(type(lik), "__final__", False), f"{type(lik).__name__} is not @final"
    assert lik.signal is None
    with pytest.raises(ValueError, match="not bound"):
        lik.spec  # noqa: B018
    bound = lik.bind(sim)
    assert bound is not lik and lik.signal is None and bound.signal is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        bound.signal = None
    assert isinstance(bound.token(), str) and bound.token() == make().bind(sim).token()

    # prepare: finite, the shape that dims names
    data = _data(name, sim)
    prepared = bound.prepare(data)
    dims, coords = bound.dims()
    assert np.all(np.isfinite(np.asarray(prepared)))

    # bad data: wrong shape, NaN (unless NaN means missing)
    if name not in SHAPE_FREE:
        with pytest.raises(ValueError, match="data"):
            bound.prepare(np.zeros((np.shape(data)[0] + 1, *np.shape(data)[1:])))
    bad = np.array(data)
    bad.flat[1] = np.nan
    if nan == "missing":
        bound.prepare(bad)  # accepted: a missing entry
    else:
        with pytest.raises(ValueError, match="data"):
            bound.prepare(bad)

    # the model: finite log density, jit == eager, vmap == loop, finite gradients
    bmodel = inf.BayesianModel(sim, PRIORS, lik)
    ld = bmodel.logdensity(data)
    z = ld.init
    value = float(jax.jit(ld.fn)(z))
    assert np.isfinite(value)
    np.testing.assert_allclose(float(ld.fn(z)), value, rtol=1e-5, atol=1e-4)
    batch = z[None, :] + 0.1 * jnp.arange(3.0)[:, None] * jnp.ones_like(z)[None, :]
    values, grads = jax.vmap(jax.value_and_grad(ld.fn))(batch)
    looped = np.array([float(jax.jit(ld.fn)(b)) for b in batch])
    np.testing.assert_allclose(np.asarray(values), looped, rtol=1e-5, atol=1e-3)
    assert grads.shape == batch.shape and np.all(np.isfinite(np.asarray(grads)))

    # pointwise terms and draws have the prepared data's shape
    pointwise, draw = inf.model._pointwise(bmodel, ld.constrain(z), data, jax.random.key(0))
    # dims name the pointwise terms, the leading dimensions of the prepared data (a custom
    # likelihood returns what its function returns, unnamed)
    if name not in SHAPE_FREE:
        assert np.shape(pointwise) == tuple(len(coords[d]) for d in dims)
        assert np.shape(prepared)[: len(dims)] == np.shape(pointwise)
    if name != "Custom":
        assert np.shape(draw) == np.shape(prepared)


def test_every_public_likelihood_is_in_the_registry():
    """A new likelihood must join the registry (and so the contract test)."""
    public = {
        n
        for n in L.__all__
        if isinstance(getattr(L, n), type)
        and issubclass(getattr(L, n), L.AbstractLikelihood)
        and getattr(getattr(L, n), "__final__", False)
    }
    covered = {type(make()).__name__ for make, _, _ in REGISTRY.values()}
    assert public <= covered, f"not in the contract registry: {sorted(public - covered)}"
