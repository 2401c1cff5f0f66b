"""NPE, NLE and NPEPosterior are frozen equinox modules whose weights are pytree leaves.

Training returns a new estimator; the flow's weights, the standardisation and the
fitted summary are leaves, so an estimator is an argument of `eqx.filter_jit` and
`jax.vmap` like any pytree, and a copy with other weights reuses the compiled function.
Tiny estimators (300 linear-Gaussian simulations, 2 epochs): the tests are about the
structure, not the posteriors (tests/test_sbi.py checks those).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from inference.bank import PriorSpace, SimulationBank
from inference.sbi import NLE, NPE, AbstractFlowEstimator, Learned, NPEPosterior

PRIORS = {"a": dist.Normal(0.0, 1.0).expand([2])}
SMALL = dict(flow_layers=1, nn_width=8)
FIT = dict(max_epochs=2, patience=2, batch_size=100, learning_rate=1e-3, progress=False)
A = np.array([[1.0, 0.6], [0.4, 1.0]])


@pytest.fixture(scope="module")
def bank():
    space = PriorSpace(None, PRIORS)
    theta = np.asarray(space.sample(jax.random.key(0), 300))
    noise = 0.4 * np.asarray(jax.random.normal(jax.random.key(1), theta.shape))
    return SimulationBank.from_arrays(theta, theta @ A.T + noise, space)


@pytest.fixture(scope="module")
def npe(bank):
    return NPE(None, PRIORS, None, **SMALL).train_on(bank, jax.random.key(2), **FIT)


@pytest.fixture(scope="module")
def nles(bank):
    """Two NLEs of the same structure trained with other keys: other weights."""
    untrained = NLE(None, PRIORS, None, **SMALL)
    return tuple(untrained.train_on(bank, jax.random.key(k), **FIT) for k in (3, 4))


def _weights(module):
    return jax.tree.leaves(eqx.filter(module, eqx.is_array))


def _with_weights_of(est, donor):
    """`est` with the flow weights of `donor`: the same structure, only the arrays differ.

    (Not `eqx.tree_at(lambda e: e.flow, est, donor.flow)`: a flowjax flow holds a function
    made when it is built among its leaves, so two flows built apart differ in a static
    leaf and a jitted function retraces for each, as for any two separately built flows.)
    """
    _, static = eqx.partition(est.flow, eqx.is_array)
    flow = eqx.combine(eqx.filter(donor.flow, eqx.is_array), static)
    return eqx.tree_at(lambda e: e.flow, est, flow)


def test_estimators_and_posteriors_are_frozen_final_modules(npe, nles):
    post = npe.posterior(features=np.array([0.2, -0.1]))
    untrained = NPE(None, PRIORS, None, **SMALL)
    for obj in (untrained, npe, nles[0], post):
        assert isinstance(obj, eqx.Module) and type(obj).__final__
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.flow = None  # a field (NPEPosterior has none of that name: refused too)
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.extra = 1
    assert isinstance(npe, AbstractFlowEstimator) and isinstance(nles[0], AbstractFlowEstimator)
    assert isinstance(post, NPEPosterior)
    with pytest.raises(TypeError, match="abstract"):
        AbstractFlowEstimator(None, PRIORS, None)
    # the settings, losses and facts read as before, as new dicts the caller may change
    info = npe.info
    info["epochs"] = -1
    assert npe.info["epochs"] == 2 and npe.settings["flow_layers"] == 1
    assert len(npe.losses["train"]) == 2
    # every static part hashes: the structure is a valid jit cache key
    hash(jax.tree.structure(npe))
    hash(jax.tree.structure(post))


def test_training_returns_a_new_estimator_and_leaves_the_old_one_as_built(bank):
    untrained = NPE(None, PRIORS, None, **SMALL)
    before = jax.tree.structure(untrained)
    trained = untrained.train_on(bank, jax.random.key(5), **FIT)
    assert trained is not untrained and trained.bank is bank
    assert untrained.flow is None and untrained._norm is None and untrained.bank is None
    assert untrained.losses == {"train": [], "val": []} and untrained.info == {}
    assert jax.tree.structure(untrained) == before and untrained.summary.shape is None
    # the trained one's weights are leaves; the untrained has none of them
    flow_leaves = _weights(trained.flow)
    assert len(flow_leaves) > 0 and not _weights(untrained.flow)
    ids = {id(x) for x in _weights(trained)}
    assert all(id(x) in ids for x in flow_leaves)
    assert all(id(x) in ids for x in trained._norm.values())
    # retraining the trained one gives a third estimator; the second is unchanged
    again = trained.train_on(bank, jax.random.key(6), **FIT)
    assert again is not trained and trained.info["n_train"] == again.info["n_train"]
    assert not np.array_equal(np.asarray(_weights(again.flow)[0]), np.asarray(flow_leaves[0]))
    np.testing.assert_array_equal(np.asarray(_weights(trained.flow)[0]), flow_leaves[0])


def test_a_jitted_nle_density_equals_the_eager_one_and_compiles_once(nles):
    first, second = nles
    other = _with_weights_of(first, second)  # the same structure, other weights
    traces = []

    @eqx.filter_jit
    def log_likelihood(est, features, theta):
        traces.append(1)
        return est.log_likelihood(features, theta)

    features = jnp.asarray([0.3, -0.5])
    theta = jnp.asarray([[0.0, 0.0], [0.5, -1.0], [1.2, 0.4]])
    for est in (first, other):
        np.testing.assert_allclose(
            log_likelihood(est, features, theta),
            est.log_likelihood(features, theta),
            rtol=1e-5,
            atol=1e-5,
        )
    assert len(traces) == 1, "a copy with other weights retraced"
    a, b = log_likelihood(first, features, theta), log_likelihood(other, features, theta)
    assert not np.allclose(a, b)  # the weights are arguments, not constants of the trace
    np.testing.assert_allclose(b, second.log_likelihood(features, theta), rtol=1e-5, atol=1e-5)
    # jax.vmap with the estimator as an unmapped argument, over parameter draws
    mapped = jax.vmap(lambda est, t: est.log_likelihood(features, t), in_axes=(None, 0))
    np.testing.assert_allclose(mapped(first, theta), a, rtol=1e-5, atol=1e-5)


def test_a_jitted_npe_posterior_density_equals_the_eager_one_and_compiles_once(npe, bank):
    retrained = NPE(None, PRIORS, None, **SMALL).train_on(bank, jax.random.key(7), **FIT)
    other = _with_weights_of(npe, retrained)
    traces = []

    @eqx.filter_jit
    def log_prob(est, features, theta):
        traces.append(1)
        return est.posterior(features=features).log_prob(theta)

    features = jnp.asarray([0.5, -0.3])
    theta = jnp.asarray([[0.1, 0.2], [-1.0, 0.5]])
    values = []
    for est in (npe, other):
        jitted = log_prob(est, features, theta)
        eager = est.posterior(features=features).log_prob(theta)
        np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)
        values.append(jitted)
    assert len(traces) == 1
    assert not np.allclose(*values)
    # the posterior itself is a pytree argument too (its condition a leaf)
    post = npe.posterior(features=features)
    at = eqx.filter_jit(lambda p, t: p.log_prob(t))
    np.testing.assert_allclose(at(post, theta), values[0], rtol=1e-5, atol=1e-5)
    assert any(x is post.condition for x in jax.tree.leaves(post))


def test_the_learned_likelihood_holds_the_nle_as_a_child(nles):
    nle = nles[0]
    likelihood = nle.likelihood()
    assert isinstance(likelihood, Learned) and likelihood.nle is nle
    ids = {id(x) for x in _weights(likelihood)}
    assert all(id(x) in ids for x in _weights(nle.flow))
    with pytest.raises(dataclasses.FrozenInstanceError):
        likelihood.nle = nles[1]


def test_load_is_a_method_of_an_estimator_and_returns_a_new_one(npe, tmp_path):
    path = npe.save(tmp_path / "npe.npz")
    template = NPE(None, PRIORS, None, **SMALL)
    loaded = NPE.load(template, path)  # the class form with the estimator passed explicitly
    assert loaded is not template and template.flow is None
    assert isinstance(loaded, NPE) and loaded.losses == npe.losses
    for a, b in zip(_weights(loaded.flow), _weights(npe.flow), strict=True):
        np.testing.assert_array_equal(a, b)
    assert template.load(path).info["n_train"] == npe.info["n_train"]
    with pytest.raises(TypeError, match=r"NPE\.load: call it on an estimator"):
        NPE.load(path)
    with pytest.raises(TypeError, match=r"NLE\.load: call it on an estimator"):
        NLE.load(path)
