"""One contract for every summary statistic (the registry below), as flowjax tests bijections.

Each entry builds a summary with small settings. The test checks what
`inference.summaries._base` promises: an immutable, final equinox module; `bind` returns a
new bound summary and leaves the given one unbound; finite features of the declared shape
(and one name per feature when flat); jit and vmap give the loop's features; a signal of
the wrong shape is a ValueError naming `signal`; `fit` returns a new summary, the same
(equal `brainmass.storage.digest`) when fitted twice on the same bank, and its learned
state survives a round trip through its array leaves (`storage.tree_arrays`).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass as bm
from brainmass import storage
from inference import summaries as S

N_SIGNALS = 4

# name -> a summary with small settings for the simulator below (4 regions, 300 samples
# every 2 ms: Nyquist 250 Hz)
REGISTRY = {
    "FC(pca=2)": lambda: S.FC(pca=2, fisher=False),
    "FCD": lambda: S.FCD(100.0, 50.0, bins=5),
    "Spectral": lambda: S.Spectral(bands={"low": (2.0, 20.0), "high": (20.0, 60.0)}, nperseg=64),
    "Order": lambda: S.Order(band=(5.0, 40.0)),
    "Moments": lambda: S.Moments(),
    "TimeSeries": lambda: S.TimeSeries(stride=3),
    "Combined": lambda: S.combine(S.FC(pca=2), S.Moments()),
}


@pytest.fixture(scope="module")
def sim():
    net = bm.Network(
        bm.models.Linear(lam=0.1),
        bm.Connectome.synthetic(4, seed=0),
        coupling=bm.coupling.Linear(G=0.05),
        noise=bm.noise.Additive(sigma=0.05),
    )
    return bm.Simulator(
        net, dt=1.0, duration=640.0, monitor=bm.monitors.Raw(period=2.0, transient=40.0)
    )


@pytest.fixture(scope="module")
def signals(sim):
    keys = jax.random.split(jax.random.key(0), N_SIGNALS)
    return jax.vmap(lambda k: sim.run(k, check=False).signal)(keys)


def _equal(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_summary_contract(name, sim, signals):
    make = REGISTRY[name]
    summary = make()

    # an immutable, final equinox module (a pytree); unbound until bind
    assert isinstance(summary, eqx.Module) and isinstance(summary, S.AbstractSummary)
    assert getattr(type(summary), "__final__", False), f"{type(summary).__name__} is not @final"
    assert not summary.bound
    with pytest.raises(ValueError, match="not bound"):
        summary(signals[0])

    # bind returns a new, bound summary; the given one is unchanged
    before = storage.digest(summary)
    bound = summary.bind(sim)
    assert bound is not summary and bound.bound and not summary.bound
    assert storage.digest(summary) == before
    assert bound.signal_shape == sim.signal_shape == tuple(signals.shape[1:])
    assert bound.period == sim.period
    assert storage.digest(bound) == storage.digest(make().bind(sim))
    with pytest.raises(dataclasses.FrozenInstanceError):
        bound._period = 1.0
    leaves, treedef = jax.tree_util.tree_flatten(bound)
    assert storage.digest(jax.tree_util.tree_unflatten(treedef, leaves)) == storage.digest(bound)

    # finite features of the declared shape; one name per flat feature
    out = bound(signals[0])
    assert out.shape == bound.shape and np.all(np.isfinite(np.asarray(out)))
    if bound.flat:
        assert len(bound.names) == bound.shape[0] == len(set(bound.names))

    # jit and vmap over a batch of signals give the loop (the summary passed through jit as
    # a pytree argument)
    loop = np.stack([np.asarray(bound(x)) for x in signals])
    _equal(eqx.filter_jit(lambda s, x: jax.vmap(s)(x))(bound, signals), loop)

    # a signal of the wrong shape is refused, naming the argument
    n, c = bound.signal_shape
    with pytest.raises(ValueError, match="signal"):
        bound(jnp.zeros((n + 1, c)))
    with pytest.raises(ValueError, match="signal"):
        bound(signals)  # a batch without vmap

    # fit returns a summary; fitted twice on the same bank: the same one
    bank = np.asarray(jax.vmap(bound)(signals))
    bound_digest = storage.digest(bound)
    fitted = bound.fit(bank)
    assert storage.digest(bound) == bound_digest  # fit leaves the bound summary as it was
    assert storage.digest(bound.fit(bank)) == storage.digest(fitted)
    projected = fitted.project(bank)
    assert projected.shape == (N_SIGNALS, *fitted.out_shape)
    assert np.all(np.isfinite(np.asarray(projected)))
    _equal(fitted.transform(signals[1]), projected[1])
    if storage.digest(fitted) == bound_digest:  # nothing learned
        _equal(projected, bank)
    else:
        # what fit learned lives in the array leaves: written out and read back into a
        # summary fitted on another bank, it gives the first one back
        other = bound.fit(bank[::-1] * 1.5 + 0.25)
        assert storage.digest(other) != storage.digest(fitted)
        restored = storage.tree_from_arrays(
            storage.tree_arrays(fitted), other, label="contract test"
        )
        assert storage.digest(restored) == storage.digest(fitted)
        _equal(restored.project(bank), projected)
    with pytest.raises(ValueError, match="features"):
        bound.fit(bank[:, :-1])


def _exported_summaries():
    return {
        name
        for name in S.__all__
        if isinstance(getattr(S, name), type)
        and issubclass(getattr(S, name), S.AbstractSummary)
        and getattr(S, name) is not S.AbstractSummary
    }


def test_every_public_summary_is_in_the_registry():
    """A new summary must join the registry (and so the contract test)."""
    public = _exported_summaries()
    covered = {type(make()).__name__ for make in REGISTRY.values()}
    assert public, "no public summary found"
    assert public <= covered, f"not in the contract registry: {sorted(public - covered)}"
    # the abstract base cannot be built; the concrete ones are final
    with pytest.raises(TypeError):
        S.AbstractSummary()
    assert all(getattr(getattr(S, n), "__final__", False) for n in public)


def test_embedding_specs_are_final_modules():
    """The embedding specs (not summaries) are immutable, final equinox modules too."""
    for spec in (S.MLPEmbedding(4, width=8, depth=1), S.CNNEmbedding(4, channels=(4,))):
        assert isinstance(spec, eqx.Module) and getattr(type(spec), "__final__", False)
        assert storage.digest(spec) == storage.digest(type(spec)(4, *_args(spec)))
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.out_dim = 2


def _args(spec):
    if isinstance(spec, S.MLPEmbedding):
        return (8, 1)
    return ((4,),)
