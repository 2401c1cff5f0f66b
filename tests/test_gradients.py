r"""Autodiff gradients vs central finite differences, for the fitting case studies.

One check per model, monitor and objective that the fitting case studies
(issue 4) differentiate through: the loss is `objective(sim.function(paths)(theta,
key), target)` with a fixed key (common random numbers, noise included), so it
is a deterministic, smooth function of the parameters and its central
difference $(L(x + h) - L(x - h)) / 2h$ must agree with `jax.grad`.

- Hopf network (delays, noise), TemporalAverage, FC correlation: w.r.t. `coupling.G`
  and the per-region bifurcation parameter `model.a` (directional derivatives).
- Hopf network (noise), BOLD, FC correlation: w.r.t. `coupling.G`.
- Jansen-Rit network (noise on the input) through the EEG monitor (sphere lead field,
  average reference; the EEG sample is the lead field times the TemporalAverage one):
  `PeakFrequencyError` and `SpectralDistance` w.r.t. `model.a` and `model.A`, in float64
  and in float32.
- A user-written model (subclassing `AbstractNeuralMass`) with a user objective.
- The Fitter's unconstrained space: the gradient of `Fitter._loss(z, key)` w.r.t. `z`
  for `Bounded` parameters, a scalar and a per-region field.

Precision. The checks run in float32, the precision fits use, except where said.
The step sizes come from a study of the error against h (noted at each check):
too large a step and the truncation error $h^2 L'''/6$ dominates, too small and
float32 round-off in the loss ($\sim 10^{-7} L / h$) does. The tolerances are
a few times the largest error seen over that study, not tuned to pass.

Already covered elsewhere, and not repeated here: raw Hopf signals w.r.t. G, a and
sigma in float64 (test_dynamics), every model's parameters through a short raw
run (test_model_contract), the BOLD monitor's own parameters and a Wong-Wang BOLD
run w.r.t. G (test_bold), the batching modes (test_batching), the FC function
itself (test_analysis).
"""

from __future__ import annotations

from typing import ClassVar

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass as bm
from brainmass.leadfield import centres_in_sphere, eeg_sphere, standard_1020
from brainmass.models import param  # how a model declares a fittable parameter

_enable_x64 = getattr(jax, "enable_x64", None)
if _enable_x64 is None:  # pragma: no cover - older JAX
    from jax.experimental import enable_x64 as _enable_x64

KEY = jax.random.key(0)  # the fixed key of every loss (common random numbers)
TARGET_KEY = jax.random.key(1)  # the target's own noise


def jit(fn):
    """`jax.jit(fn)` on strongly typed float arrays, so that a Python float, a NumPy
    array and a JAX array of the same shape share one compilation."""
    compiled = jax.jit(fn)

    def call(x):
        return compiled(jax.tree.map(lambda v: jnp.asarray(v, dtype=jnp.result_type(float)), x))

    return call


def value_and_grad(loss):
    """`(loss, grad)` from one compiled `jax.value_and_grad` (compiling the gradient is
    most of the cost; central differences reuse its value)."""
    both = jit(jax.value_and_grad(loss))
    return (lambda x: both(x)[0]), (lambda x: both(x)[1])


def central(loss, x, h):
    """Central difference of a scalar `loss` at `x` (a float) with step `h`."""
    return (float(loss(x + h)) - float(loss(x - h))) / (2 * h)


def assert_close(ad, fd, rtol, what):
    """`|ad - fd| <= rtol |fd|`, with a message naming the check and both numbers."""
    ad, fd = float(ad), float(fd)
    assert np.isfinite(ad) and ad != 0.0, f"{what}: autodiff gradient {ad}"
    err = abs(ad - fd) / abs(fd)
    assert err <= rtol, f"{what}: autodiff {ad:.6g} vs finite differences {fd:.6g} (rel {err:.2e})"


# ----------------------------------------------------------------- Hopf, TemporalAverage, FC

N_HOPF = 6


@pytest.fixture(scope="module")
def hopf_ta():
    """A noisy delayed 6-region Hopf network, 5 ms averages, FC loss of (G, a)."""
    net = bm.Network(
        bm.models.Hopf(),
        bm.Connectome.synthetic(N_HOPF, seed=0),
        bm.coupling.Linear(G=0.01),
        speed=5.0,
        noise=bm.noise.Additive(sigma=0.02),
    )
    sim = bm.Simulator(
        net, dt=0.2, duration=1500.0, monitor=bm.monitors.TemporalAverage(5.0, transient=100.0)
    )
    f = sim.function(["coupling.G", "model.a"])
    a0 = jnp.full(N_HOPF, -0.02)
    target = f({"coupling.G": 0.012, "model.a": a0}, TARGET_KEY)
    objective = bm.objectives.FCCorrelation()

    def loss(theta):
        return objective(f(theta, KEY), target)

    loss, grad = value_and_grad(loss)
    return dict(sim=sim, target=target, a0=a0, loss=loss, grad=grad)


def test_hopf_temporal_average_fc_gradient_wrt_G(hopf_ta):
    # Study (h/G from 1e-2 to 3e-5, G = 0.004, 0.01, 0.016): errors <= 2.5e-4 for h/G in
    # [1e-3, 1e-2]; round-off takes over below (3.7e-3 at 3e-4, 1.2e-2 at 1e-4). h = 1e-2 G.
    loss, grad, a0 = hopf_ta["loss"], hopf_ta["grad"], hopf_ta["a0"]
    for G in (0.004, 0.01, 0.016):
        ad = grad({"coupling.G": G, "model.a": a0})["coupling.G"]
        fd = central(lambda g: loss({"coupling.G": g, "model.a": a0}), G, 1e-2 * G)
        assert_close(ad, fd, 1e-2, f"Hopf/TemporalAverage/FC dL/dG at G={G}")


def test_hopf_temporal_average_fc_gradient_wrt_per_region_a(hopf_ta):
    # One value of a per region: the directional derivative grad . v along random unit
    # directions v against the central difference along v. Study (h from 3e-3 to 1e-5
    # 1/ms, a ~ -0.02, two points, two directions each): errors <= 1.7e-4 at h = 3e-4,
    # <= 1.1e-3 at 1e-3, round-off from 1e-4 (up to 7e-2 at 1e-5). h = 3e-4.
    loss, grad = hopf_ta["loss"], hopf_ta["grad"]
    G = 0.01
    rng = np.random.default_rng(0)
    for a in (jnp.linspace(-0.03, -0.01, N_HOPF), jnp.full(N_HOPF, -0.015)):
        g = np.asarray(grad({"coupling.G": G, "model.a": a})["model.a"])
        assert g.shape == (N_HOPF,) and np.all(g != 0)
        for _ in range(2):
            v = rng.normal(size=N_HOPF)
            v /= np.linalg.norm(v)
            fd = central(lambda t, a=a, v=v: loss({"coupling.G": G, "model.a": a + t * v}), 0, 3e-4)
            assert_close(g @ v, fd, 1e-2, "Hopf/TemporalAverage/FC directional dL/da")


# ----------------------------------------------------------------- Hopf, BOLD, FC


@pytest.fixture(scope="module")
def hopf_bold():
    """A noisy 6-region Hopf network seen through BOLD (TR 720 ms, 20 volumes)."""
    # No conduction delays here: the delayed coupling is checked above, the BOLD monitor
    # only sees the neural signal, and delays double the gradient's compile time.
    net = bm.Network(
        bm.models.Hopf(),
        bm.Connectome.synthetic(N_HOPF, seed=0),
        bm.coupling.Linear(G=0.01),
        noise=bm.noise.Additive(sigma=0.02),
    )
    tr = 720.0
    sim = bm.Simulator(
        net, dt=1.0, duration=20 * tr, monitor=bm.monitors.BOLD(tr, transient=3 * tr)
    )
    f = sim.function(["coupling.G"])
    target = f({"coupling.G": 0.012}, TARGET_KEY)
    objective = bm.objectives.FCCorrelation()

    def loss(G):
        return objective(f({"coupling.G": G}, KEY), target)

    loss, grad = value_and_grad(loss)
    return dict(loss=loss, grad=grad, n_volumes=target.shape[0])


def test_hopf_bold_fc_gradient_wrt_G(hopf_bold):
    # Study (h/G from 3e-2 to 3e-4, G = 0.004, 0.01, 0.016): errors <= 1.5e-3 at h/G =
    # 1e-2 and 3e-2; round-off takes over from 3e-3 (up to 1.5e-2; 2e-1 at 3e-4). h = 2e-2 G.
    assert hopf_bold["n_volumes"] == 17
    loss, grad = hopf_bold["loss"], hopf_bold["grad"]
    for G in (0.004, 0.01, 0.016):
        fd = central(loss, G, 2e-2 * G)
        assert_close(grad(G), fd, 1e-2, f"Hopf/BOLD/FC dL/dG at G={G}")


# ----------------------------------------------------------------- Jansen-Rit, EEG, spectra

PERIOD_EEG = 2.0  # ms: 500 Hz
SPECTRAL = ("PeakFrequencyError", "SpectralDistance")


def _jansen_rit_eeg(sigma):
    """A noisy 4-region Jansen-Rit network through a 6-electrode EEG: the losses
    `(PeakFrequencyError, SpectralDistance)` of `(model.a, model.A)` and their Jacobian
    (one reverse pass per loss, one compilation). Build under the precision it runs in."""
    conn = bm.Connectome.synthetic(4, seed=0)
    names, electrodes = standard_1020(["Fz", "Cz", "Pz", "O1", "O2", "T7"])
    leadfield = eeg_sphere(centres_in_sphere(conn.centres), None, electrodes)
    net = bm.Network(
        bm.models.JansenRit(),
        conn,
        bm.coupling.Sigmoidal(G=1.0),
        noise=bm.noise.Additive(sigma=sigma, variables=("y4",)),  # on the input, as in TVB
    )
    monitor = bm.monitors.EEG(leadfield, period=PERIOD_EEG, transient=500.0, sensor_names=names)
    sim = bm.Simulator(net, dt=0.5, duration=2500.0, monitor=monitor)
    f = sim.function(["model.a", "model.A"])
    target = f({"model.a": 0.09, "model.A": 3.5}, TARGET_KEY)  # (1000, 6), alpha peak
    band = (2.0, 30.0)
    objectives = (
        bm.objectives.PeakFrequencyError(PERIOD_EEG, band=band, nperseg=256),
        bm.objectives.SpectralDistance(PERIOD_EEG, band=band, nperseg=256),
    )

    def losses(theta):
        signal = f(theta, KEY)
        values = jnp.stack([objective(signal, target) for objective in objectives])
        return values, values

    both = jit(jax.jacrev(losses, has_aux=True))  # (Jacobian, values): one compilation
    return dict(losses=lambda theta: both(theta)[1], jacobian=lambda theta: both(theta)[0])


@pytest.fixture(scope="module")
def jansen_rit_eeg_x64():
    with _enable_x64(True):
        return _jansen_rit_eeg(sigma=0.05)


@pytest.fixture(scope="module")
def jansen_rit_eeg_x32():
    return _jansen_rit_eeg(sigma=0.01)


def test_jansen_rit_eeg_spectral_gradients_float64(jansen_rit_eeg_x64):
    # Float64, clearly noisy (sigma 0.05). The fixed-key spectral losses of noisy
    # Jansen-Rit have structure on parameter scales of ~1e-3 (relative) for some keys (the
    # gradient changes sign and grows tenfold within 0.1 % of A), in float32 and float64
    # alike: float32 central differences (h >= 1e-3 x; below that round-off) cannot
    # resolve it and disagree with autodiff at such points by O(1) at every h. In float64
    # they converge quadratically: study (h/x from 1e-4 to 1e-7, all four entries of the
    # Jacobian, both points): errors <= 3e-3 at 1e-4, <= 3e-7 at 1e-6. h = 1e-6 x.
    losses, jacobian = jansen_rit_eeg_x64["losses"], jansen_rit_eeg_x64["jacobian"]
    with _enable_x64(True):
        for a, A in ((0.1, 3.25), (0.11, 3.0)):
            theta = {"model.a": a, "model.A": A}
            jac = jacobian(theta)
            for path, x in theta.items():
                for i, name in enumerate(SPECTRAL):
                    fd = central(
                        lambda v, p=path, i=i, th=theta: losses({**th, p: v})[i], x, 1e-6 * x
                    )
                    what = f"Jansen-Rit/EEG/{name} d/d{path} at a={a}, A={A} (float64)"
                    assert_close(jac[path][i], fd, 1e-5, what)


def test_jansen_rit_eeg_spectral_gradients_float32(jansen_rit_eeg_x32):
    # Float32 at weaker noise (sigma 0.01: the alpha limit cycle dominates), where the
    # losses are smooth on the scale of a float32 step. Study over five keys and five
    # points (h/x = 3e-3, 1e-3, 3e-4): errors <= 1e-2 at 1e-3, up to 3e-2 at the others.
    # h = 1e-3 x. The points avoid minima of the peak-frequency loss (at a = 0.11,
    # A = 3.0 the peak matches the target's, dPF/da is 1e-3 of its size elsewhere and a
    # relative comparison means nothing).
    losses, jacobian = jansen_rit_eeg_x32["losses"], jansen_rit_eeg_x32["jacobian"]
    for a, A in ((0.1, 3.25), (0.105, 3.0), (0.12, 3.5)):
        theta = {"model.a": a, "model.A": A}
        jac = jacobian(theta)
        for i, (path, x) in enumerate(theta.items()):  # PeakFrequency/a, SpectralDistance/A
            fd = central(lambda v, p=path, i=i, th=theta: losses({**th, p: v})[i], x, 1e-3 * x)
            what = f"Jansen-Rit/EEG/{SPECTRAL[i]} d/d{path} at a={a}, A={A}"
            assert_close(jac[path][i], fd, 3e-2, what)


# ----------------------------------------------------------------- a user-written model


class SigmoidRate(bm.models.AbstractNeuralMass):
    r"""A firing-rate population, $\tau \dot r = -r + \tanh(g\,(r + I + c))$ (user-written).

    $c$ is the afferent coupling; for $g < 1$ one stable fixed point per region.
    """

    tau: float = param(20.0, unit=u.ms, domain="positive", doc="time constant")
    gain: float = param(0.8, domain="positive", doc="slope of the transfer function")
    drive: float = param(0.1, doc="external input")

    state_variables: ClassVar[tuple[str, ...]] = ("r",)
    coupled_variables: ClassVar[tuple[str, ...]] = ("r",)
    observable: ClassVar[str] = "r"
    initial_state: ClassVar[dict[str, float]] = {"r": 0.0}

    def dfun(self, state, coupling):
        """Vector field; `state` `(1, n_regions)`, `coupling` `(1, n_regions)`, per ms."""
        r = state[0]
        return ((-r + jnp.tanh(self.gain * (r + self.drive + coupling[0]))) / self.tau)[None]


def variance_and_memory_error(signal, target):
    """A user objective: mismatch of the per-region log-variance and lag-1 autocorrelation."""

    def stats(x):
        x = x - jnp.mean(x, axis=0, keepdims=True)
        var = jnp.mean(x * x, axis=0)
        return jnp.log(var), jnp.mean(x[1:] * x[:-1], axis=0) / var

    (v_p, m_p), (v_t, m_t) = stats(signal), stats(target)
    return jnp.mean((v_p - v_t) ** 2) + jnp.mean((m_p - m_t) ** 2)


@pytest.fixture(scope="module")
def custom_model():
    net = bm.Network(
        SigmoidRate(),
        bm.Connectome.synthetic(6, seed=2),
        bm.coupling.Linear(G=0.2),
        noise=bm.noise.Additive(sigma=0.05),
    )
    sim = bm.Simulator(
        net, dt=0.5, duration=2000.0, monitor=bm.monitors.TemporalAverage(2.0, transient=200.0)
    )
    assert {"model.tau", "model.gain", "model.drive"} <= set(sim.params())
    f = sim.function(["model.gain", "model.tau"])
    target = f({"model.gain": 0.6, "model.tau": 30.0}, TARGET_KEY)

    def loss(theta):
        return variance_and_memory_error(f(theta, KEY), target)

    loss, grad = value_and_grad(loss)
    return dict(loss=loss, grad=grad)


def test_user_model_and_objective_gradients(custom_model):
    # Study (h/x from 3e-2 to 3e-4, both points and parameters): errors <= 1e-4 at h/x =
    # 3e-3 (<= 9e-4 at 1e-2, <= 5e-4 at 3e-4). h = 3e-3 x.
    loss, grad = custom_model["loss"], custom_model["grad"]
    for gain, tau in ((0.7, 20.0), (0.9, 40.0)):
        theta = {"model.gain": gain, "model.tau": tau}
        g = grad(theta)
        for path, x in theta.items():
            fd = central(lambda v, p=path, th=theta: loss({**th, p: v}), x, 3e-3 * x)
            assert_close(g[path], fd, 1e-2, f"SigmoidRate/user objective d/d{path} at {theta}")


# ----------------------------------------------------------------- through the Fitter


def test_fitter_loss_gradient_in_unconstrained_space(hopf_ta):
    # z = logit((theta - low) / (high - low)) for G (z[0]) and one a per region (z[1:]).
    # Study (h in z from 1e-1 to 1e-3, at z0 and a random point, three directions each):
    # errors <= 1.6e-4 at h = 1e-2 (<= 7.6e-4 at 1e-1, round-off up to 3e-3 at 1e-3).
    # h = 1e-2.
    fitter = bm.Fitter(
        hopf_ta["sim"],
        {
            "coupling.G": bm.Bounded(0.0, 0.05, init=0.01),
            "model.a": bm.Bounded(-0.05, 0.0, per_region=True),
        },
        bm.objectives.FCCorrelation(),
        hopf_ta["target"],
        progress=False,
    )
    z0 = fitter.space.z0
    assert z0.shape == (1 + N_HOPF,)

    def loss(z):
        return fitter._loss(z, KEY)[0]

    loss_z, grad_z = value_and_grad(loss)
    g = np.asarray(grad_z(z0))
    # the chain rule through the transform, against the gradient in theta
    theta = fitter.space.to_theta(z0)
    g_theta = hopf_ta["grad"](theta)
    dG_dz = 0.05 * jax.nn.sigmoid(z0[0]) * (1 - jax.nn.sigmoid(z0[0]))
    np.testing.assert_allclose(g[0], g_theta["coupling.G"] * dG_dz, rtol=1e-4)
    # finite differences in z: the G coordinate and a random direction in all of z
    rng = np.random.default_rng(1)
    v = rng.normal(size=z0.shape)
    v /= np.linalg.norm(v)
    e0 = np.eye(1 + N_HOPF)[0]
    for direction, what in ((e0, "dL/dz_G"), (v, "directional dL/dz")):
        fd = central(lambda t, d=direction: loss_z(z0 + t * d), 0.0, 1e-2)
        assert_close(g @ direction, fd, 1e-2, f"Fitter/Hopf/TemporalAverage/FC {what}")
