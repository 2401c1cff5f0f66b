r"""bm.Fitter: parameter transforms, errors, every method, multi-start, failures, noise, results.

The workhorse is a delay-free, deterministic 3-region `models.Linear` network,
$\dot x = (-\lambda I + G W) x$ from a fixed initial state. Heun's method on a
linear system is the matrix recursion $x_{n+1} = (I + hA + (hA)^2/2)\,x_n$
($h = dt$, $A = -\lambda I + GW$), so the simulated signal is known in closed
form (`_heun_signal`, numpy). Targets are made at known $(\lambda, G)$ with that
formula, and every fit must recover them; losses are checked against the RMSE
computed here.
"""

from __future__ import annotations

import dataclasses
import re

import brainunit as u
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest
import scipy.linalg as sla

import brainmass as bm
from brainmass.fitting import ParameterSpace

matplotlib.use("Agg")

W = np.array([[0.0, 1.0, 0.5], [0.3, 0.0, 1.0], [1.0, 0.2, 0.0]])
X0 = np.array([1.0, -0.5, 0.3])
DT, PERIOD, DURATION = 0.5, 1.0, 20.0  # ms: 40 steps, 20 samples
LAM0, G0 = 0.2, 0.1  # the simulator's own values (1/ms, dimensionless)
LAM, G = 0.3, 0.15  # the values the targets are made at
RMSE = bm.objectives.TimeSeriesRMSE()
PARAMS = {"model.lam": bm.Positive(), "coupling.G": bm.Bounded(0.0, 1.0)}


def _heun_signal(lam, g):
    """Closed form of the Heun-integrated network sampled every PERIOD, `(20, 3)`."""
    a = -np.diag(np.broadcast_to(np.asarray(lam, float), (3,))) + g * W
    h = a * DT
    step = np.linalg.matrix_power(np.eye(3) + h + h @ h / 2, round(PERIOD / DT))
    return np.array([np.linalg.matrix_power(step, k) @ X0 for k in range(1, 21)])


def _rmse(lam, g, target):
    return float(np.sqrt(np.mean((_heun_signal(lam, g) - target) ** 2)))


def _net(lam=LAM0, noise=None):
    conn = bm.Connectome.from_arrays(W, np.zeros_like(W))
    return bm.Network(bm.models.Linear(lam=lam), conn, bm.coupling.Linear(G=G0), noise=noise)


def _sim(lam=LAM0, noise=None):
    """The workhorse simulator (no checkpointing: short runs, and half the compile time)."""
    monitor = bm.monitors.Raw(period=PERIOD)
    net = _net(lam, noise)
    init = {"x": X0}
    return bm.Simulator(net, DT, DURATION, monitor, init, remat=False)


@pytest.fixture(scope="module")
def sim():
    return _sim()


@pytest.fixture(scope="module")
def target():
    return _heun_signal(LAM, G)


def _fitter(sim, params, target, method="adam", objective=RMSE, **kw):
    return bm.Fitter(sim, params, objective, target, method=method, progress=False, **kw)


def _counting(objective):
    """The objective, counting its traces (a Python side effect runs once per trace)."""
    count = [0]

    def wrapped(signal, target):
        count[0] += 1
        return objective(signal, target)

    return wrapped, count


def _check_histories(res, fitter):
    """Counters and histories agree with each other; the best loss is reproducible."""
    assert res.loss_history.shape == res.best_history.shape == res.simulations_history.shape
    assert res.n_iterations >= 1 and res.simulations_history[-1] == res.n_simulations
    assert np.all(np.diff(res.simulations_history) >= 1) and res.simulations_history[0] >= 1
    np.testing.assert_array_equal(res.best_history, np.minimum.accumulate(res.loss_history))
    assert np.all(np.diff(res.best_history) <= 0)
    assert res.loss == res.best_history[-1] == np.min(res.loss_history)
    # the best point was evaluated: its loss recomputed from the returned params agrees
    assert fitter.loss(res.params) == pytest.approx(res.loss, rel=1e-3, abs=2e-5)
    assert res.units == {p: fitter.space.units[p] for p in res.params}


# ----------------------------------------------------------------------------- the workhorse


def test_workhorse_signal_is_the_closed_form(sim):
    signal = np.asarray(sim.run().signal)
    np.testing.assert_allclose(signal, _heun_signal(LAM0, G0), atol=2e-6)
    # and Heun's recursion is close to the exact solution expm(A t) x0
    exact = np.array([sla.expm((-LAM0 * np.eye(3) + G0 * W) * t) @ X0 for t in range(1, 21)])
    assert np.abs(signal - exact).max() < 2e-3


# ----------------------------------------------------------------------------- transforms


def test_transforms_round_trip_and_match_formulas():
    b, bounds = bm.Bounded(-1.0, 3.0), (-1.0, 3.0)
    z = jnp.linspace(-6.0, 6.0, 25)
    theta = b.forward(z, bounds)
    np.testing.assert_allclose(theta, -1.0 + 4.0 / (1.0 + np.exp(-np.asarray(z))), atol=1e-6)
    np.testing.assert_allclose(b.inverse(theta, bounds), z, atol=2e-3)
    inside = jnp.linspace(-0.99, 2.99, 25)
    np.testing.assert_allclose(b.forward(b.inverse(inside, bounds), bounds), inside, atol=1e-5)
    extreme = b.forward(jnp.array([-jnp.inf, -1e4, -100.0, 100.0, 1e4, jnp.inf]), bounds)
    assert np.all(np.isfinite(extreme)) and np.all((extreme >= -1.0) & (extreme <= 3.0))

    p = bm.Positive()
    np.testing.assert_allclose(p.forward(z, None), np.exp(np.asarray(z)), rtol=1e-6)
    np.testing.assert_allclose(p.inverse(p.forward(z, None), None), z, atol=1e-5)
    assert np.all(np.asarray(p.forward(jnp.array([-1e4, -50.0, 50.0]), None)) >= 0)
    unb = bm.Unbounded()
    np.testing.assert_array_equal(unb.forward(z, None), z)
    np.testing.assert_array_equal(unb.inverse(z, None), z)


def test_quantities_are_converted_to_the_canonical_unit(sim):
    space = ParameterSpace(sim, {"model.lam": bm.Bounded(1 * u.Hz, 500 * u.Hz, init=300 * u.Hz)})
    assert space.entries[0].bounds == pytest.approx((0.001, 0.5))
    assert space.units == {"model.lam": "1/ms"}
    assert float(space.to_theta(space.z0)["model.lam"]) == pytest.approx(0.3, rel=1e-6)
    space = ParameterSpace(sim, {"model.lam": bm.Positive(init=250 * u.Hz)})
    assert float(space.to_theta(space.z0)["model.lam"]) == pytest.approx(0.25, rel=1e-6)
    # Unbounded's scale is a spread in the parameter's unit: 100 Hz = 0.1 / ms
    space = ParameterSpace(sim, {"model.lam": bm.Unbounded(scale=100 * u.Hz)})
    starts = np.asarray(space.random_starts(jax.random.key(0), 101))[1:, 0]
    assert np.std(starts) == pytest.approx(0.1, rel=0.25)
    assert np.mean(starts) == pytest.approx(LAM0, abs=0.03)


def test_z_layout_and_per_region_shapes(sim):
    params = {
        "model.lam": bm.Positive(init=[0.1, 0.2, 0.4], per_region=True),
        "coupling.G": bm.Bounded(0.0, 2.0, init=1.0),
    }
    space = ParameterSpace(sim, params)
    assert space.paths == ("model.lam", "coupling.G") and space.size == 4
    np.testing.assert_allclose(space.z0, [*np.log([0.1, 0.2, 0.4]), 0.0], atol=1e-6)
    z = jnp.array([0.3, -1.0, 2.0, -0.7])
    theta = space.to_theta(z)
    assert theta["model.lam"].shape == (3,) and theta["coupling.G"].shape == ()
    np.testing.assert_allclose(theta["model.lam"], np.exp([0.3, -1.0, 2.0]), rtol=1e-6)
    assert float(theta["coupling.G"]) == pytest.approx(2.0 / (1.0 + np.exp(0.7)), rel=1e-6)
    np.testing.assert_allclose(space.to_z(theta), z, atol=1e-5)
    # a scalar value broadcasts to every region
    np.testing.assert_allclose(space.to_z({"model.lam": 1.0, "coupling.G": 1.0}), [0, 0, 0, 0])
    vector = space.theta_to_vector(theta)
    np.testing.assert_allclose(vector, [*np.exp([0.3, -1.0, 2.0]), theta["coupling.G"]], 1e-6)
    back = space.vector_to_theta(vector)
    assert all(np.allclose(back[p], theta[p]) for p in theta)
    assert space.box() is None
    # the order of the dict is the order of z
    swapped = ParameterSpace(sim, {p: params[p] for p in ("coupling.G", "model.lam")})
    np.testing.assert_allclose(swapped.z0, [0.0, *np.log([0.1, 0.2, 0.4])], atol=1e-6)


def test_random_starts_lie_inside_the_bounds(sim):
    params = {"coupling.G": bm.Bounded(0.05, 0.6), "model.lam": bm.Positive(init=0.2)}
    space = ParameterSpace(sim, params)
    starts = space.random_starts(jax.random.key(1), 64)
    assert starts.shape == (64, 2)
    np.testing.assert_array_equal(starts[0], space.z0)
    theta = jax.vmap(space.to_theta)(starts)
    assert np.all((theta["coupling.G"] > 0.05) & (theta["coupling.G"] < 0.6))
    assert np.all((theta["model.lam"] >= 0.2 / 3) & (theta["model.lam"] <= 0.6 + 1e-6))
    assert np.unique(np.asarray(starts[:, 0])).size == 64  # distinct points
    np.testing.assert_array_equal(starts, space.random_starts(jax.random.key(1), 64))
    low, high = ParameterSpace(sim, {"coupling.G": bm.Bounded(0.05, 0.6)}).box()
    np.testing.assert_allclose([low[0], high[0]], [0.05, 0.6])


# ----------------------------------------------------------------------------- errors

_BAD_PARAMS = [
    (
        {"model.lamda": bm.Positive()},
        "unknown parameter path 'model.lamda'. Did you mean model.lam",
    ),
    ({"model.lam": bm.Bounded(0.0, 0.25, init=0.3)}, "params['model.lam'].init: init = 0.3"),
    ({"model.lam": bm.Bounded(0.3, 1.0)}, "params['model.lam'].init: the simulator's current"),
    ({"model.lam": bm.Bounded(0.5, 0.5)}, "params['model.lam']: expected finite bounds low < h"),
    ({"model.lam": bm.Bounded(0.6, 0.5)}, "params['model.lam']: expected finite bounds low < h"),
    ({"coupling.G": bm.Positive(init=0.0)}, "params['coupling.G'].init: a Positive parameter"),
    ({"coupling.G": bm.Positive(init=-1.0)}, "params['coupling.G'].init: a Positive parameter"),
    ({"model.lam": bm.Bounded(-1.0, 1.0)}, "params['model.lam']: model.lam must be positive"),
    ({"model.lam": bm.Bounded(1 * u.mV, 2 * u.mV)}, "params['model.lam']: expected a quantity"),
    ({"model.lam": bm.Unbounded(scale=0.0)}, "params['model.lam'].scale: expected a finite"),
    ({"connectome.weights": bm.Positive()}, "params['connectome.weights']: a matrix cannot"),
    ({"coupling.G": (0.0, 1.0)}, "params['coupling.G']: expected bm.Bounded(low, high)"),
    ({}, "params: expected a non-empty dict"),
]


@pytest.mark.parametrize(("params", "message"), _BAD_PARAMS)
def test_bad_parameters_are_named(sim, target, params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _fitter(sim, params, target)


def test_per_region_simulator_value_needs_per_region(target):
    sim = _sim(lam=np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=re.escape("params['model.lam'].init: 'model.lam' holds")):
        _fitter(sim, {"model.lam": bm.Positive()}, target)
    space = ParameterSpace(sim, {"model.lam": bm.Positive(per_region=True)})
    np.testing.assert_allclose(space.to_theta(space.z0)["model.lam"], [0.1, 0.2, 0.3], 1e-6)


_BAD_OPTIONS = [
    ({"method": "adma"}, "method: unknown method 'adma'. Did you mean adam"),
    ({"method": "differential-evolution"}, "Did you mean differential_evolution?"),
    ({"method": 3}, "method: expected a name or an optax.GradientTransformation"),
    ({"method": "differential_evolution"}, "but ['model.lam'] have no bounds"),
    ({"method": "CMA", "num_starts": 2}, "num_starts: several starts are for gradient methods"),
    ({"method": "Nelder-Mead", "num_starts": 2}, "num_starts: several starts"),
    ({"num_starts": 0}, "num_starts: expected an integer >= 1"),
    ({"clip_norm": 0.0}, "clip_norm: expected a norm > 0"),
    ({"population": 1}, "population: expected an integer >= 2"),
    ({"batch_size": 0}, "batch_size: expected an integer >= 1"),
    ({"noise": "sometimes"}, "noise: expected 'fixed' or 'fresh'"),
    ({"patience": 0}, "patience: expected None or an integer >= 1"),
]


@pytest.mark.parametrize(("options", "message"), _BAD_OPTIONS)
def test_bad_options_are_named(sim, target, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _fitter(sim, PARAMS, target, **options)


def test_bad_fit_arguments_are_named(sim, target):
    with pytest.raises(ValueError, match="objective: expected a function"):
        bm.Fitter(sim, {"coupling.G": bm.Bounded(0.0, 1.0)}, "rmse", target)
    fitter = _fitter(sim, {"model.lam": bm.Positive(), "coupling.G": bm.Bounded(0, 1)}, target)
    for steps in (0, -1, 2.5, None):
        with pytest.raises(ValueError, match="steps: expected an integer >= 1"):
            fitter.fit(steps=steps)
    with pytest.raises(ValueError, match=re.escape("init[0]: missing values for ['coupling.G']")):
        fitter.fit(steps=1, init={"model.lam": 0.2})
    with pytest.raises(ValueError, match=re.escape("init[0]: the values of ['coupling.G'] lie")):
        fitter.fit(steps=1, init={"model.lam": 0.2, "coupling.G": 1.5})
    with pytest.raises(ValueError, match="init: expected one dict or a list of num_starts = 1"):
        fitter.fit(steps=1, init=[{"model.lam": 0.2, "coupling.G": 0.1}] * 2)
    multi = _fitter(sim, {"coupling.G": bm.Bounded(0.0, 1.0)}, target, num_starts=2)
    with pytest.raises(ValueError, match=re.escape("key: random starts (num_starts > 1)")):
        multi.fit(steps=1)


# ----------------------------------------------------------------------------- every method

_METHODS = [
    ("adam", {"learning_rate": optax.cosine_decay_schedule(0.1, 150)}, 150, 1e-3),
    ("L-BFGS-B", {}, 50, 1e-4),
    ("Nelder-Mead", {}, 200, 1e-3),
    ("differential_evolution", {"population": 10}, 30, 2e-3),
    ("CMA", {"population": 12}, 30, 1e-3),
    ("NGOpt", {"population": 8}, 40, 1e-2),
]


@pytest.mark.parametrize(
    ("method", "options", "steps", "rtol"), _METHODS, ids=[m[0] for m in _METHODS]
)
def test_every_method_recovers_the_known_optimum(sim, target, method, options, steps, rtol):
    lam = bm.Bounded(50 * u.Hz, 1 * u.kHz) if method == "differential_evolution" else bm.Positive()
    fitter = _fitter(sim, {**PARAMS, "model.lam": lam}, target, method, **options)
    res = fitter.fit(jax.random.key(0), steps=steps)
    assert res.method == method and not res.stopped_early and res.n_failed == 0
    assert res.units == {"model.lam": "1/ms", "coupling.G": ""}
    assert all(isinstance(v, np.ndarray) and v.shape == () for v in res.params.values())
    assert float(res.params["model.lam"]) == pytest.approx(LAM, rel=rtol)
    assert float(res.params["coupling.G"]) == pytest.approx(G, rel=rtol)
    by_hand = _rmse(res.params["model.lam"], res.params["coupling.G"], target)
    assert res.loss == pytest.approx(by_hand, rel=1e-3, abs=2e-5)
    assert res.loss < 1e-2 * _rmse(LAM0, G0, target)
    _check_histories(res, fitter)
    per_iteration = np.diff(res.simulations_history, prepend=0)
    if method == "adam":
        assert res.n_iterations == steps and np.all(per_iteration == 1)
        assert res.n_gradient_evaluations == res.n_simulations == steps
    elif method == "L-BFGS-B":
        assert res.n_gradient_evaluations == res.n_simulations == res.n_iterations
    elif method == "Nelder-Mead":
        assert res.n_gradient_evaluations == 0 and np.all(per_iteration == 1)
    elif method == "differential_evolution":
        assert res.n_gradient_evaluations == 0 and np.all(per_iteration == 2 * 10)
    else:
        assert res.n_gradient_evaluations == 0 and res.n_iterations == steps
        assert np.all(per_iteration == options["population"])


@pytest.fixture(scope="module")
def adam_fit(sim, target):
    """A short adam fit with a learning-rate schedule: `(fitter, result)`."""
    schedule = optax.exponential_decay(0.1, 40, 0.1)
    fitter = _fitter(sim, PARAMS, target, "adam", learning_rate=schedule)
    return fitter, fitter.fit(steps=40)


def test_an_optax_transformation_is_the_same_as_its_name(sim, target, adam_fit):
    _, named = adam_fit
    method = optax.adam(optax.exponential_decay(0.1, 40, 0.1))
    res = _fitter(sim, PARAMS, target, method).fit(steps=40)
    assert res.method == "optax"
    np.testing.assert_allclose(res.loss_history, named.loss_history, rtol=1e-5)
    assert res.params["model.lam"] == pytest.approx(named.params["model.lam"], rel=1e-5)


def test_learning_rate_schedule_and_clip_norm_are_applied(sim, target):
    # sgd steps for two iterations, then a zero learning rate: the point stops moving
    stop = optax.piecewise_constant_schedule(0.05, {2: 0.0})
    res = _fitter(sim, PARAMS, target, "sgd", learning_rate=stop).fit(steps=5)
    h = res.loss_history
    assert h[0] > h[1] > h[2] and np.all(h[2:] == h[2])
    # clipped sgd: each step moves z by at most clip_norm
    fitter = _fitter(sim, PARAMS, target, "sgd", learning_rate=1.0, clip_norm=0.01)
    res = fitter.fit(steps=5)
    moved = float(jnp.linalg.norm(fitter.space.to_z(res.params) - fitter.space.z0))
    assert 0.03 < moved <= 0.04 + 1e-4
    assert np.all(np.diff(res.loss_history) < 0)


def test_per_region_field_is_recovered(target):
    sim = _sim(lam=np.array([0.2, 0.2, 0.2]))
    lams = np.array([0.15, 0.3, 0.45])
    field = _heun_signal(lams, G0)
    fitter = _fitter(sim, {"model.lam": bm.Positive(per_region=True)}, field, "L-BFGS-B")
    res = fitter.fit(steps=60)
    assert res.params["model.lam"].shape == (3,)
    np.testing.assert_allclose(res.params["model.lam"], lams, rtol=1e-3)
    assert "model.lam = [3 values, mean 0.3" in repr(res)


# ----------------------------------------------------------------------------- multi-start

_STARTS = [
    {"model.lam": 0.2, "coupling.G": 0.1},
    {"model.lam": 0.5, "coupling.G": 0.6},
    {"model.lam": 80 * u.Hz, "coupling.G": 0.3},
]


@pytest.mark.parametrize("method", ["adam", "L-BFGS-B"])
def test_multi_start_equals_each_start_alone(sim, target, method):
    steps = 15 if method == "adam" else 8
    multi = _fitter(sim, PARAMS, target, method, num_starts=3)
    res = multi.fit(steps=steps, init=_STARTS)
    single = _fitter(sim, PARAMS, target, method)
    alone = [single.fit(steps=steps, init=s) for s in _STARTS]
    np.testing.assert_allclose(res.start_losses, [a.loss for a in alone], rtol=1e-4)
    best = int(np.argmin(res.start_losses))
    assert res.loss == res.start_losses[best] == pytest.approx(min(a.loss for a in alone))
    for p in PARAMS:
        assert res.params[p] == pytest.approx(alone[best].params[p], rel=1e-4)
    assert res.n_simulations == sum(a.n_simulations for a in alone)
    if method == "adam":  # one vmapped batch per step: 3 simulations an iteration
        assert res.n_iterations == steps and np.all(np.diff(res.simulations_history) == 3)
        np.testing.assert_allclose(
            res.loss_history, np.min([a.loss_history for a in alone], axis=0), rtol=1e-4
        )
        # one given start, the others random; the given one is run as it would be alone
        mixed = multi.fit(jax.random.key(2), steps=steps, init=_STARTS[0])
        assert mixed.start_losses.shape == (3,)
        assert mixed.start_losses[0] == pytest.approx(alone[0].loss, rel=1e-4)


# ----------------------------------------------------------------------------- failures


def test_failed_evaluations_count_as_infinite_and_the_fit_goes_on(sim):
    assert not bool(sim.with_params({"coupling.G": 40.0}).run(check=False).ok)
    assert bool(sim.with_params({"coupling.G": 1.0}).run(check=False).ok)
    target = _heun_signal(LAM0, G)
    params = {"coupling.G": bm.Bounded(0.0, 50.0)}
    # differential evolution over a range that mostly blows up
    fitter = _fitter(sim, params, target, "differential_evolution", population=10)
    res = fitter.fit(jax.random.key(0), steps=25)
    assert 0 < res.n_failed < res.n_simulations
    assert np.isfinite(res.loss) and res.params["coupling.G"] == pytest.approx(G, rel=1e-2)
    # gradient starts: a failing start is skipped every step, the other converges
    two = _fitter(sim, params, target, num_starts=2, learning_rate=0.1)
    res = two.fit(steps=20, init=[{"coupling.G": 0.1}, {"coupling.G": 40.0}])
    assert res.n_failed == 20 and res.n_simulations == 40
    assert np.isfinite(res.start_losses[0]) and res.start_losses[1] == np.inf
    assert np.isfinite(res.loss) and np.all(np.isfinite(res.loss_history))
    # only failing starts: every step skipped, the point unchanged, the loss inf
    with pytest.warns(UserWarning, match="every one of the 10 evaluations failed"):
        res = two.fit(steps=5, init=[{"coupling.G": 40.0}, {"coupling.G": 45.0}])
    assert res.n_failed == 10 and res.loss == np.inf and np.all(res.best_history == np.inf)
    assert res.params["coupling.G"] == pytest.approx(40.0, rel=1e-6)


# ----------------------------------------------------------------------------- early stopping


@pytest.mark.parametrize("method", [optax.sgd(0.0), "Nelder-Mead", "L-BFGS-B", "CMA"])
def test_patience_stops_a_plateau(sim, target, method):
    # min_delta larger than any improvement: only the first iteration improves (from inf)
    fitter = _fitter(sim, PARAMS, target, method, patience=3, min_delta=1e9)
    res = fitter.fit(jax.random.key(0), steps=50)
    assert res.stopped_early and res.n_iterations == 4


def test_patience_follows_the_documented_rule(sim, target):
    fitter = _fitter(sim, PARAMS, target, learning_rate=0.05, patience=4, min_delta=1e-3)
    res = fitter.fit(steps=300)
    assert res.stopped_early and res.n_iterations < 300
    best, since = np.inf, 0
    for i, loss in enumerate(res.loss_history):
        since = 0 if loss < best - 1e-3 else since + 1
        best = min(best, loss)
        assert (since >= 4) == (i == res.n_iterations - 1)


# ----------------------------------------------------------------------------- noise


@pytest.fixture(scope="module")
def noisy_sim():
    return _sim(noise=bm.noise.Additive(sigma=0.05))


def test_stochastic_simulators_need_a_key(noisy_sim, target):
    fitter = _fitter(noisy_sim, {"coupling.G": bm.Bounded(0.0, 1.0)}, target)
    with pytest.raises(ValueError, match="key: this simulator is stochastic"):
        fitter.fit(steps=2)
    with pytest.raises(ValueError, match="key: this simulator is stochastic"):
        fitter.loss({"coupling.G": 0.1})


def test_fixed_noise_is_common_random_numbers(noisy_sim, target):
    key = jax.random.key(3)
    fitter = _fitter(noisy_sim, {"coupling.G": bm.Bounded(0.0, 1.0)}, target, learning_rate=0.1)
    a, b = fitter.fit(key, steps=4), fitter.fit(key, steps=4)
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
    assert a.params["coupling.G"] == b.params["coupling.G"]
    # the first loss is the loss at the initial point with that key, by hand
    signal = np.asarray(noisy_sim.run(key).signal)
    by_hand = float(np.sqrt(np.mean((signal - target) ** 2)))
    assert a.loss_history[0] == pytest.approx(by_hand, rel=1e-5)
    assert fitter.loss({"coupling.G": G0}, key) == pytest.approx(by_hand, rel=1e-5)
    assert fitter.loss({"coupling.G": G0}, jax.random.key(4)) != pytest.approx(by_hand, rel=1e-3)


@pytest.mark.parametrize("noise", ["fixed", "fresh"])
def test_fresh_noise_draws_a_key_per_iteration(noisy_sim, target, noise):
    key = jax.random.key(5)
    params = {"coupling.G": bm.Bounded(0.0, 1.0)}
    objective, traces = _counting(RMSE)
    fitter = _fitter(noisy_sim, params, target, optax.sgd(0.0), objective, noise=noise)
    res = fitter.fit(key, steps=4)  # sgd(0): the point never moves
    assert traces[0] == 1  # a new key each iteration does not retrace
    if noise == "fixed":
        assert np.all(res.loss_history == res.loss_history[0])
    else:
        assert np.unique(res.loss_history).size == 4
        # iteration i uses fold_in(key, i); loss(theta, key) uses the key as given
        for i, loss in enumerate(res.loss_history):
            by_hand = fitter.loss({"coupling.G": G0}, jax.random.fold_in(key, i))
            assert loss == pytest.approx(by_hand, rel=1e-5)


# ----------------------------------------------------------------------------- FitResult


def test_fit_result_save_load_round_trip(adam_fit, tmp_path):
    _, res = adam_fit
    path = res.save(tmp_path / "fit")
    assert path.name == "fit.npz"
    back = bm.FitResult.load(path)
    for field in dataclasses.fields(bm.FitResult):
        mine, theirs = getattr(res, field.name), getattr(back, field.name)
        if isinstance(mine, dict):
            assert mine.keys() == theirs.keys()
            for k in mine:
                np.testing.assert_array_equal(mine[k], theirs[k])
        elif isinstance(mine, np.ndarray):
            np.testing.assert_array_equal(mine, theirs)
            assert mine.dtype == theirs.dtype
        else:
            assert mine == theirs, field.name
    np.savez(tmp_path / "other.npz", meta=np.asarray('{"format": "x"}'))
    with pytest.raises(ValueError, match="other.npz is not a brainmass.FitResult file"):
        bm.FitResult.load(tmp_path / "other.npz")
    path.write_bytes(path.read_bytes()[:-100])  # truncated: an error naming the file
    with pytest.raises(ValueError, match="fit.npz is not a brainmass.FitResult file or is trunc"):
        bm.FitResult.load(path)


def _hand_made_result():
    losses = np.array([5.0, 3.0, 4.0, 1.0])
    return bm.FitResult(
        params={"coupling.G": np.asarray(0.2)},
        units={"coupling.G": ""},
        loss=1.0,
        method="CMA",
        loss_history=losses,
        best_history=np.minimum.accumulate(losses),
        simulations_history=np.array([8, 16, 24, 32]),
        start_losses=np.array([1.0]),
        n_simulations=32,
        n_gradient_evaluations=0,
        n_failed=0,
        wall_time=0.5,
    )


def test_simulations_to_reach():
    res = _hand_made_result()
    assert res.simulations_to_reach(10.0) == 8 and res.simulations_to_reach(5.0) == 8
    assert res.simulations_to_reach(3.5) == 16 and res.simulations_to_reach(3.0) == 16
    assert res.simulations_to_reach(2.0) == 32 and res.simulations_to_reach(0.5) is None
    assert res.time_to_reach(3.0) is None  # no time history recorded
    timed = dataclasses.replace(res, time_history=np.array([0.1, 0.2, 0.3, 0.4]))
    assert timed.time_to_reach(3.5) == 0.2 and timed.time_to_reach(0.5) is None


def test_time_history_is_recorded(adam_fit):
    _, res = adam_fit
    times = res.time_history
    assert times.shape == res.loss_history.shape
    assert np.all(np.diff(times) >= 0) and 0 < times[-1] <= res.wall_time


def test_plot_and_repr(adam_fit):
    import matplotlib.pyplot as plt

    _, res = adam_fit
    ax = res.plot()
    assert isinstance(ax, matplotlib.axes.Axes)
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, res.simulations_history)
    np.testing.assert_array_equal(y, res.best_history)
    assert res.plot(ax, x="iterations", label="again") is ax
    np.testing.assert_array_equal(ax.lines[1].get_data()[0], np.arange(1, res.n_iterations + 1))
    assert res.plot(ax, x="time") is ax
    np.testing.assert_array_equal(ax.lines[2].get_data()[0], res.time_history)
    with pytest.raises(ValueError, match="x: expected 'simulations', 'iterations' or 'time'"):
        res.plot(ax, x="wall")
    plt.close("all")
    text = repr(res)
    assert text.startswith("FitResult(adam: loss") and "1/ms" in text and "40 simulations" in text


# ----------------------------------------------------------------------------- no retrace


@pytest.mark.parametrize(
    ("method", "options"),
    [("adam", {"num_starts": 2}), ("CMA", {"population": 10, "batch_size": 4})],
)
def test_one_compilation_per_fit(sim, target, method, options):
    objective, traces = _counting(RMSE)
    fitter = _fitter(sim, PARAMS, target, method, objective, **options)
    res = fitter.fit(jax.random.key(0), steps=6)
    assert res.n_iterations == 6 and traces[0] == 1
    fitter.fit(jax.random.key(1), steps=3)  # a second fit reuses the compiled step
    assert traces[0] == 1


def test_compiled_functions_live_in_brainmass_cache_not_on_the_fitter(sim, target):
    import gc
    import weakref

    objective, traces = _counting(RMSE)
    fitter = _fitter(sim, PARAMS, target, "adam", objective=objective)
    before = dict(vars(fitter))
    fitter.fit(steps=2)
    fitter.fit(steps=2)  # the second fit reuses the compiled step
    assert traces[0] == 1
    assert vars(fitter).keys() == before.keys()  # nothing stored on the Fitter
    assert ("fitter", "gradient_step") in bm.cache.names(fitter)
    ref = weakref.ref(fitter)
    del fitter
    gc.collect()
    assert ref() is None  # the cached functions hold a copy, not the Fitter
