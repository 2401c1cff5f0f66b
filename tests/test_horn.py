"""HORN: the neural mass against the damped oscillator's closed form, and the task network.

The neural mass runs through `bm.Simulator` and is compared with the exact
solution of $\\ddot x + 2\\gamma \\dot x + \\omega^2 x = 0$ and with the fixed point
$x^* = \\alpha \\tanh(I) / \\omega^2$. `HORNSeqNetwork` is compared with a plain
NumPy loop of the published symplectic-Euler step (Effenberger et al. 2025,
reference `model.py`), and its gradients with central finite differences in float64.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass as bm
from brainmass.models.horn import HORN, HORNSeqNetwork


def _two_regions(weights, G):
    conn = bm.Connectome.from_arrays(np.asarray(weights, dtype=float), np.zeros((2, 2)))
    return conn, bm.coupling.Linear(G=G)


def test_free_oscillation_matches_damped_oscillator_closed_form():
    omega = np.array([2 * math.pi / 28, 0.5])
    gamma = np.array([0.01, 0.05])
    x0, y0 = np.array([0.1, -0.2]), np.array([0.0, 0.05])
    conn, coupling = _two_regions(np.zeros((2, 2)), 0.0)
    model = HORN(omega=jnp.asarray(omega), gamma=jnp.asarray(gamma))
    sim = bm.Simulator(
        bm.Network(model, conn, coupling=coupling),
        dt=0.01,
        duration=100.0,
        monitor=bm.monitors.Raw(period=1.0),
        init={"x": x0, "y": y0},
    )
    res = sim.run(jax.random.key(0))
    t = np.asarray(res.time)[:, None]
    wd = np.sqrt(omega**2 - gamma**2)
    exact = np.exp(-gamma * t) * (x0 * np.cos(wd * t) + (y0 + gamma * x0) / wd * np.sin(wd * t))
    assert res.signal.shape == (100, 2)
    # several periods of both oscillators (period 28 ms and 12.6 ms)
    np.testing.assert_allclose(np.asarray(res.signal), exact, atol=2e-5)


def test_constant_drive_reaches_the_static_response():
    """Region 0 driven by I_ext; region 1 by I_ext plus G * x_0 through the coupling."""
    alpha, omega, gamma, G = 0.8, 1.0, 0.5, 0.5
    drive = np.array([0.5, 0.2])
    conn, coupling = _two_regions([[0.0, 0.0], [1.0, 0.0]], G)  # weights[target, source]
    model = HORN(omega=omega, gamma=gamma, alpha=alpha, I_ext=jnp.asarray(drive))
    sim = bm.Simulator(
        bm.Network(model, conn, coupling=coupling),
        dt=0.02,
        duration=80.0,
        monitor=bm.monitors.Raw(period=1.0, variable="x"),
        init={"x": 0.0, "y": 0.0},
    )
    x_end = np.asarray(sim.run(jax.random.key(0)).signal[-1])
    x0_star = alpha * np.tanh(drive[0]) / omega**2
    x1_star = alpha * np.tanh(drive[1] + G * x0_star) / omega**2
    np.testing.assert_allclose(x_end, [x0_star, x1_star], rtol=1e-5)


# ------------------------------------------------------------------- HORNSeqNetwork


def _reference_outputs(net, inputs):
    """The published step (Effenberger's `HORN.dynamics_step`) as a NumPy loop, float64."""
    p = {k: np.asarray(getattr(net, k), dtype=np.float64) for k in ("W_in", "b_in", "W_rec")}
    omega, gamma, alpha = (
        np.asarray(v, dtype=np.float64) for v in (net.omega, net.gamma, net.alpha)
    )
    n = p["W_rec"].shape[0]
    x, y = np.zeros(n), np.zeros(n)
    xs, ys = [], []
    for s in np.asarray(inputs, dtype=np.float64):
        for _ in range(net.substeps):
            forcing = alpha * np.tanh(p["W_in"] @ s + p["b_in"] + p["W_rec"] @ y / math.sqrt(n))
            y = y + net.h * (forcing - omega * omega * x - 2.0 * gamma * y)
            x = x + net.h * y
        xs.append(x)
        ys.append(y)
    xs = np.stack(xs)
    out = xs @ np.asarray(net.W_out, dtype=np.float64).T + np.asarray(net.b_out)
    return out, np.stack([xs, np.stack(ys)], axis=1)


@pytest.fixture(scope="module")
def small():
    key = jax.random.key(0)
    net = HORNSeqNetwork(key, n_inputs=3, n_units=6, n_outputs=2, heterogeneous=True, substeps=2)
    # larger recurrent and input weights than the default so the recurrence matters
    net = eqx.tree_at(lambda m: (m.W_rec, m.W_in), net, (3.0 * net.W_rec, 5.0 * net.W_in))
    inputs = jax.random.normal(jax.random.key(1), (4, 25, 3))
    return net, inputs


def test_network_matches_the_published_step_and_shapes(small):
    net, inputs = small
    out = net(inputs[0])
    states = net.states(inputs[0])
    assert out.shape == (25, 2) and states.shape == (25, 2, 6)
    ref_out, ref_states = _reference_outputs(net, inputs[0])
    np.testing.assert_allclose(np.asarray(states), ref_states, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out), ref_out, rtol=1e-4, atol=1e-6)
    assert float(jnp.max(jnp.abs(states))) > 1e-2  # the test exercises non-trivial dynamics
    # heterogeneous frequencies and damping in the published ranges
    base_omega = 2 * math.pi / 28
    assert bool(jnp.all((net.omega >= 0.5 * base_omega) & (net.omega <= 2.0 * base_omega)))
    assert bool(jnp.all((net.gamma >= 0.005) & (net.gamma <= 0.02)))
    assert len(np.unique(np.asarray(net.omega))) == 6


def test_network_jit_and_vmap(small):
    net, inputs = small
    eager = net(inputs[0])
    np.testing.assert_allclose(eqx.filter_jit(net)(inputs[0]), eager, rtol=1e-5, atol=1e-7)
    batched = jax.vmap(net)(inputs)
    for i in range(inputs.shape[0]):
        np.testing.assert_allclose(batched[i], net(inputs[i]), rtol=1e-5, atol=1e-7)


def test_shared_parameters_and_constant_drive_fixed_point():
    """per_unit=False: scalar omega, gamma, alpha; without input or recurrence the discrete map
    has the fixed point x = alpha tanh(b_in) / omega^2."""
    net = HORNSeqNetwork(
        jax.random.key(2), n_inputs=1, n_units=3, n_outputs=1, omega=0.5, gamma=0.3, per_unit=False
    )
    assert net.log_omega.shape == ()
    net = eqx.tree_at(lambda m: (m.W_rec, m.W_in), net, (0.0 * net.W_rec, 0.0 * net.W_in))
    x = net.states(jnp.zeros((200, 1)))[-1, 0]
    np.testing.assert_allclose(x, 0.04 * np.tanh(np.asarray(net.b_in)) / 0.25, rtol=1e-5)


def test_gradients_match_finite_differences():
    with jax.enable_x64(True):
        net = HORNSeqNetwork(jax.random.key(3), n_inputs=2, n_units=4, n_outputs=3)
        net = eqx.tree_at(lambda m: (m.W_rec, m.W_in), net, (4.0 * net.W_rec, 5.0 * net.W_in))
        inputs = jax.random.normal(jax.random.key(4), (10, 2), dtype=jnp.float64)
        weights = jax.random.normal(jax.random.key(5), (10, 3), dtype=jnp.float64)
        assert net.W_rec.dtype == jnp.float64

        @jax.jit
        def loss(W_rec, log_omega):
            m = eqx.tree_at(lambda m: (m.W_rec, m.log_omega), net, (W_rec, log_omega))
            return jnp.sum(weights * m(inputs))

        g_W, g_om = jax.grad(loss, argnums=(0, 1))(net.W_rec, net.log_omega)
        eps = 1e-6
        for name, arr, grad in (("W_rec", net.W_rec, g_W), ("log_omega", net.log_omega, g_om)):
            flat = np.asarray(arr).ravel()
            fd = np.empty_like(flat)
            for i in range(flat.size):
                up, down = flat.copy(), flat.copy()
                up[i] += eps
                down[i] -= eps
                args_up = [net.W_rec, net.log_omega]
                args_down = [net.W_rec, net.log_omega]
                j = 0 if name == "W_rec" else 1
                args_up[j] = jnp.asarray(up.reshape(arr.shape))
                args_down[j] = jnp.asarray(down.reshape(arr.shape))
                fd[i] = (float(loss(*args_up)) - float(loss(*args_down))) / (2 * eps)
            ad = np.asarray(grad).ravel()
            assert np.max(np.abs(fd)) > 1e-4, f"{name}: the loss must depend on it"
            # central differences in float64: truncation ~eps^2, round-off ~1e-16 * loss / eps
            np.testing.assert_allclose(ad, fd, rtol=1e-6, atol=1e-6 * np.max(np.abs(fd)))


def test_positive_parameters_stay_positive_under_training():
    net = HORNSeqNetwork(jax.random.key(6), n_inputs=1, n_units=4, n_outputs=1)

    def loss(m):  # pushes every positive parameter down, by more than its value per step
        return jnp.sum(m.omega) + jnp.sum(m.gamma) + jnp.sum(m.alpha)

    params, static = eqx.partition(net, eqx.is_inexact_array)

    @jax.jit
    def sgd_step(params):
        grads = jax.grad(lambda p: loss(eqx.combine(p, static)))(params)
        return jax.tree.map(lambda p, g: p - 5.0 * g, params, grads)

    for _ in range(20):
        params = sgd_step(params)
    trained = eqx.combine(params, static)
    for name in ("omega", "gamma", "alpha"):
        value = getattr(trained, name)
        assert bool(jnp.all(value > 0)), name
        assert bool(jnp.all(value < getattr(net, name))), f"{name} did move"
    assert bool(jnp.all(jnp.isfinite(trained(jnp.ones((5, 1))))))


def test_network_errors_name_the_argument():
    key = jax.random.key(0)
    kw = dict(n_inputs=2, n_units=3, n_outputs=1)
    net = HORNSeqNetwork(key, **kw)
    with pytest.raises(ValueError, match="inputs: expected shape \\(T, 2\\)"):
        net(jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="h: symplectic Euler is unstable"):
        HORNSeqNetwork(key, **kw, h=10.0)
    with pytest.raises(ValueError, match="omega: expected a scalar \\(per_unit=False\\)"):
        HORNSeqNetwork(key, **kw, omega=jnp.ones(3) * 0.2, per_unit=False)
    with pytest.raises(ValueError, match="gamma: expected finite values > 0"):
        HORNSeqNetwork(key, **kw, gamma=-0.1)
    with pytest.raises(ValueError, match="heterogeneous"):
        HORNSeqNetwork(key, **kw, heterogeneous=True, per_unit=False)
    with pytest.raises(ValueError, match="n_units: expected a positive integer"):
        HORNSeqNetwork(key, n_inputs=2, n_units=0, n_outputs=1)
