"""Lane batching of delayed networks: vmap, grad and vmap-of-grad equal their loops."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass as bm


@pytest.fixture(scope="module")
def sims():
    conn = bm.Connectome.synthetic(6, seed=2)
    out = {}
    for batching in ("lanes", "vmap"):
        net = bm.Network(
            bm.models.Hopf(),
            conn,
            coupling=bm.coupling.Linear(G=0.3),
            speed=4.0,
            noise=bm.noise.Additive(0.01),
            delays="interpolated",
        )
        out[batching] = bm.Simulator(net, dt=0.1, duration=40.0, batching=batching)
    return out


@pytest.fixture(scope="module")
def f_lanes(sims):
    return sims["lanes"].function(["coupling.G", "model.a", "network.speed"])


KEY = jax.random.key(0)


def _loss(f):
    def loss(G, a, speed, key):
        signal = f({"coupling.G": G, "model.a": a, "network.speed": speed}, key)
        return jnp.mean(signal**2) + jnp.mean(signal[:, 0] * signal[:, 1])

    return loss


def test_vmap_equals_loop_for_parameters_keys_and_speeds(f_lanes):
    def one(G, a, speed, key):
        return f_lanes({"coupling.G": G, "model.a": a, "network.speed": speed}, key)

    Gs = jnp.asarray([0.1, 0.3, 0.5])
    a_rows = jnp.stack([jnp.full(6, -0.02), jnp.linspace(-0.05, 0.01, 6), jnp.full(6, 0.01)])
    keys = jax.random.split(KEY, 3)
    speeds = jnp.asarray([3.0, 4.0, 6.0])  # per-lane delays: the plain-vmap fallback
    cases = [
        ((Gs, -0.02, 4.0, KEY), (0, None, None, None)),
        ((0.3, a_rows, 4.0, KEY), (None, 0, None, None)),
        ((0.3, -0.02, 4.0, keys), (None, None, None, 0)),
        ((Gs, a_rows, 4.0, keys), (0, 0, None, 0)),
        ((0.3, -0.02, speeds, KEY), (None, None, 0, None)),
    ]
    for args, axes in cases:
        batched = jax.vmap(one, in_axes=axes)(*args)
        for i in range(3):
            lane = [arg if ax is None else arg[i] for arg, ax in zip(args, axes, strict=True)]
            np.testing.assert_allclose(batched[i], one(*lane), rtol=1e-5, atol=1e-6)


def test_vmap_of_grad_equals_loop_of_grads(f_lanes):
    loss = _loss(f_lanes)
    grad = jax.grad(loss, argnums=(0, 1, 2))
    Gs = jnp.asarray([0.2, 0.4])
    keys = jax.random.split(KEY, 2)
    for args, axes in [
        ((Gs, -0.02, 4.0, KEY), (0, None, None, None)),
        ((0.3, -0.02, 4.0, keys), (None, None, None, 0)),  # shared parameters, own keys
    ]:
        batched = jax.jit(jax.vmap(grad, in_axes=axes))(*args)
        for i in range(2):
            lane = [arg if ax is None else arg[i] for arg, ax in zip(args, axes, strict=True)]
            expected = grad(*lane)
            for b, e in zip(batched, expected, strict=True):
                np.testing.assert_allclose(b[i], e, rtol=2e-4, atol=1e-7)


def test_lanes_and_plain_batching_agree_with_finite_differences(sims, f_lanes):
    """Gradients of both batching modes against central differences (float64)."""
    with jax.enable_x64(True):
        fs = {name: sim.function(["coupling.G", "network.speed"]) for name, sim in sims.items()}

        def loss_of(f):
            def loss(theta):
                s = f({"coupling.G": theta[0], "network.speed": theta[1]}, KEY)
                return jnp.mean(s**2)

            return loss

        theta = jnp.asarray([0.3, 4.0])
        grads = {name: jax.grad(loss_of(f))(theta) for name, f in fs.items()}
        np.testing.assert_allclose(grads["lanes"], grads["vmap"], rtol=1e-9)
        loss = loss_of(fs["lanes"])
        for i in range(2):
            h = 1e-6
            e = jnp.zeros(2).at[i].set(h)
            fd = (loss(theta + e) - loss(theta - e)) / (2 * h)
            np.testing.assert_allclose(grads["lanes"][i], fd, rtol=1e-5)


def test_forward_mode_needs_plain_batching(sims):
    f = sims["lanes"].function(["coupling.G"])
    with pytest.raises(TypeError):
        jax.jvp(lambda g: f({"coupling.G": g}, KEY), (0.3,), (1.0,))
    g = sims["vmap"].function(["coupling.G"])
    _, tangent = jax.jvp(lambda x: jnp.sum(g({"coupling.G": x}, KEY)), (0.3,), (1.0,))
    assert np.isfinite(float(tangent))


def test_batching_option_is_validated():
    net = bm.Network(bm.models.Linear(), bm.Connectome.synthetic(2, seed=0), speed=5.0)
    with pytest.raises(ValueError, match="batching"):
        bm.Simulator(net, dt=0.1, duration=10.0, batching="fast")
