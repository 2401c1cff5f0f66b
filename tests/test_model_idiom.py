"""The models' idiom: composition over inheritance, pure samplers, one weak compile cache.

- `CohortModel` is not a `BayesianModel` subclass: both implement `AbstractBayesianModel`,
  the interface the samplers check, and a cohort composes the model of one subject.
- `map_estimate`, `nuts` and `laplace` add nothing to the model or the `MAPResult`.
- Compiled samplers are reused across datasets of one shape (counted by traces of the
  likelihood) and are released with the model (a weak reference dies).

The problem: a deterministic 2-region linear network relaxing from a known state
(x' = -lam x + G W x), 20 steps, observed through 5 ms averages with Gaussian noise: every
sampler here compiles in seconds.
"""

import copy
import dataclasses
import gc
import math
import weakref

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import brainmass as bm
import inference as inf
from brainmass import cache as _cache
from inference import likelihoods as L
from inference.model import AbstractBayesianModel

SIGMA = 0.05
X0 = np.array([1.0, -0.5])
PRIORS = {"model.lam": dist.LogNormal(math.log(0.05), 0.5), "coupling.G": dist.Uniform(0.0, 0.2)}
COHORT_PRIORS = {
    "model.lam": inf.Hierarchical(
        dist.Normal(math.log(0.05), 0.5),
        dist.HalfNormal(0.3),
        transform=dist.transforms.ExpTransform(),
    ),
    "coupling.G": dist.Uniform(0.0, 0.2),
}
# the start is not under test here (tests/test_starts.py): the priors' medians skip the MAP
TINY_NUTS = dict(
    num_warmup=5, num_samples=5, num_chains=1, chunk_size=10, progress=False, init="prior"
)
TINY_MAP = dict(num_starts=2, steps=5, chunk_size=5, progress=False)

# the interface the samplers use (map.py, mcmc.py, model.predictive)
INTERFACE = (
    "numpyro_model", "prior_model", "predict", "check_data", "dims", "logdensity",
    "logdensity_fn", "flatten", "sample_prior", "latent_sites",
)  # fmt: skip
FIELDS = ("sim", "priors", "likelihood", "paths", "units", "n_regions", "noise_key")


def make_sim():
    conn = bm.Connectome.synthetic(2, seed=0)
    net = bm.Network(bm.models.Linear(lam=0.05), conn, coupling=bm.coupling.Linear(G=0.02))
    monitor = bm.monitors.TemporalAverage(period=5.0)
    return bm.Simulator(net, dt=1.0, duration=20.0, monitor=monitor, init={"x": X0})


@pytest.fixture(scope="module")
def sim():
    return make_sim()


def _data(sim, seed, lam=0.05):
    signal = np.asarray(sim.with_params({"model.lam": lam}).run().signal)
    rng = np.random.default_rng(seed)
    return signal + SIGMA * rng.standard_normal(signal.shape)


def _snapshot(obj):
    """The object's attributes by name, with the identity of each value."""
    return {k: id(v) for k, v in vars(obj).items()}


# ----------------------------------------------------------------------------- composition


def test_cohort_model_composes_a_bayesian_model(sim):
    """Not a subclass; the same sampler interface; its predictions are the subject model's."""
    assert not issubclass(inf.CohortModel, inf.BayesianModel)
    assert not issubclass(inf.BayesianModel, inf.CohortModel)
    with pytest.raises(TypeError):
        AbstractBayesianModel()  # abstract: the concrete models are built, not this
    bmodel = inf.BayesianModel(sim, PRIORS, L.TimeSeries(sigma=SIGMA))
    cohort = inf.CohortModel(sim, COHORT_PRIORS, L.TimeSeries(sigma=SIGMA), n_subjects=3)
    for model in (bmodel, cohort):
        assert isinstance(model, AbstractBayesianModel)
        for name in INTERFACE:
            assert callable(getattr(model, name)), name
        for name in FIELDS:
            assert hasattr(model, name), name
    assert isinstance(cohort.subject_model, inf.BayesianModel)
    assert cohort.likelihood is cohort.subject_model.likelihood
    assert repr(cohort).startswith("CohortBayesianModel(") and "3 subjects" in repr(cohort)

    # the cohort's prediction: each subject's simulation (independent: the simulator itself)
    lams = jnp.array([0.03, 0.05, 0.08])
    prediction, ok = cohort.predict({"model.lam": lams, "coupling.G": jnp.asarray(0.1)})
    assert np.all(np.asarray(ok)) and prediction.shape[0] == 3
    for i, lam in enumerate(np.asarray(lams)):
        direct = sim.with_params({"model.lam": float(lam), "coupling.G": 0.1}).run().signal
        np.testing.assert_allclose(np.asarray(prediction[i]), np.asarray(direct), rtol=1e-5)

    # the sampler interface works on the cohort: sites, draws, flat vector, density
    latent = cohort.latent_sites()
    assert latent == ["coupling.G", "model.lam.loc", "model.lam.scale", "model.lam.z"]
    draws = cohort.sample_prior(jax.random.key(0), 4)
    assert draws["model.lam"].shape == (4, 3)
    flat = cohort.flatten({s: jnp.asarray(draws[s][0]) for s in latent})
    data = np.stack([_data(sim, seed) for seed in range(3)])
    ld = cohort.logdensity(data)
    assert flat.shape == (ld.size,) == (6,) and np.isfinite(float(ld.fn(flat)))
    back = ld.constrain(flat)
    np.testing.assert_allclose(np.asarray(back["model.lam"]), draws["model.lam"][0], rtol=1e-5)

    # samplers check the interface, not a class
    with pytest.raises(ValueError, match="BayesianModel or CohortModel"):
        inf.map_estimate(object(), data[0], jax.random.key(0))
    with pytest.raises(ValueError, match="BayesianModel or CohortModel"):
        inf.nuts(object(), data[0], jax.random.key(0))


def test_cohort_subjects_are_named_by_their_ids(sim):
    """The subjects' IDs are the posterior's `subject` coordinate and name bad data."""
    ids = ["sub-01", "sub-07", "sub-12"]
    cohort = inf.CohortModel(sim, COHORT_PRIORS, L.TimeSeries(sigma=SIGMA), subjects=ids)
    assert cohort.n_subjects == 3 and cohort.subjects == tuple(ids)
    dims, coords = cohort.dims()
    assert dims["model.lam"] == ["subject"] and list(coords["subject"]) == ids
    data = np.stack([_data(sim, seed) for seed in range(3)])
    bad = data.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"data\[1\] \(subject 'sub-07'\): .*NaN"):
        cohort.check_data(bad)
    post = inf.nuts(cohort, data, jax.random.key(0), posterior_predictive=False, **TINY_NUTS)
    tree = post.to_arviz()
    assert list(tree["posterior"]["model.lam"].coords["subject"].values) == ids
    # the default: 0 .. n-1; the count and the IDs must agree, IDs unique and plain
    plain = inf.CohortModel(sim, COHORT_PRIORS, L.TimeSeries(sigma=SIGMA), n_subjects=2)
    assert plain.subjects == (0, 1)
    for kwargs, match in [
        (dict(n_subjects=2, subjects=ids), "n_subjects: 2 does not match the 3 subject IDs"),
        (dict(subjects=["a", "b", "a"]), r"unique; repeated: \['a'\]"),
        (dict(subjects="abc"), "sequence of subject IDs, got str"),
        (dict(subjects=[["a"], ["b"]]), r"as text or integers, got \['a'\]"),
        (dict(), r"n_subjects: expected the number of subjects \(or subjects=\[IDs\]\)"),
        (dict(n_subjects=0), "n_subjects"),
    ]:
        with pytest.raises(ValueError, match=match):
            inf.CohortModel(sim, COHORT_PRIORS, L.TimeSeries(sigma=SIGMA), **kwargs)


def test_models_are_final_frozen_equinox_pytrees(sim):
    """Both models: equinox modules, final, frozen, pytrees holding the simulator's arrays."""
    assert issubclass(AbstractBayesianModel, eqx.Module)
    assert not getattr(AbstractBayesianModel, "__final__", False)
    bmodel = inf.BayesianModel(sim, PRIORS, L.TimeSeries(sigma=SIGMA))
    cohort = inf.CohortModel(sim, COHORT_PRIORS, L.TimeSeries(sigma=SIGMA), n_subjects=2)
    sim_leaves = [x for x in jax.tree_util.tree_leaves(sim) if isinstance(x, jax.Array)]
    assert sim_leaves
    for model in (bmodel, cohort):
        cls = type(model)
        assert isinstance(model, eqx.Module) and cls.__final__ is True  # typing.final
        for name in ("paths", "priors", "sim", "noise_key"):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(model, name, None)
        leaves = {id(x) for x in jax.tree_util.tree_leaves(model)}
        assert all(id(x) in leaves for x in sim_leaves)
        # the configuration is static: a model with another prior has another structure
        assert model.paths == tuple(model.priors) and isinstance(model.units, dict)
        # a flatten/unflatten (eqx.tree_at, tree_map) keeps the priors' order and the repr
        # (the NUTS checkpoint's fingerprint): "model.lam" sorts after "coupling.G"
        rebuilt = jax.tree_util.tree_map(lambda x: x, model)
        assert type(rebuilt) is cls and repr(rebuilt) == repr(model)
        assert list(rebuilt.priors) == list(model.priors) == ["model.lam", "coupling.G"]
        assert weakref.ref(model)() is model
        twin = copy.copy(model)
        assert twin is not model and repr(twin) == repr(model) and twin.sim is model.sim
    other = inf.BayesianModel(sim, {"model.lam": PRIORS["model.lam"]}, L.TimeSeries(sigma=SIGMA))
    assert jax.tree_util.tree_structure(other) != jax.tree_util.tree_structure(bmodel)


# ----------------------------------------------------------------------------- purity


def test_samplers_add_nothing_to_the_model_or_the_map_result(sim):
    """vars() of the model and of the MAPResult are the same before and after sampling."""
    bmodel = inf.BayesianModel(sim, PRIORS, L.TimeSeries(sigma=SIGMA))
    data = _data(sim, 0)
    before = _snapshot(bmodel)
    mode = inf.map_estimate(bmodel, data, jax.random.key(0), **TINY_MAP)
    assert _snapshot(bmodel) == before
    after_map = _snapshot(mode)
    post = mode.laplace(jax.random.key(1), 20)
    mode.laplace_points(jax.random.key(2), 3)
    inf.nuts(bmodel, data, jax.random.key(3), **{**TINY_NUTS, "init": mode})
    assert _snapshot(mode) == after_map
    assert _snapshot(bmodel) == before
    assert post.info["hessian"] in ("autodiff", "fd")
    # what was computed is in the one cache, under the objects it belongs to
    assert ("laplace", "auto") in _cache.names(mode)
    assert any(name[0] == "numpyro" for name in _cache.names(bmodel))

    cohort = inf.CohortModel(sim, COHORT_PRIORS, L.TimeSeries(sigma=SIGMA), n_subjects=2)
    before = _snapshot(cohort)
    inf.map_estimate(cohort, np.stack([data, _data(sim, 1)]), jax.random.key(0), **TINY_MAP)
    assert _snapshot(cohort) == before


# ----------------------------------------------------------------------------- the cache


def _counting_model(sim):
    """A model whose likelihood counts its traces (one per compilation of a sampler)."""
    traces = {"n": 0}

    def log_lik(prediction, data, params):
        traces["n"] += 1  # Python side effect: runs when traced, not when a compiled call runs
        return -0.5 * jnp.sum((prediction - data) ** 2) / SIGMA**2

    return inf.BayesianModel(sim, PRIORS, L.Custom(log_lik)), traces


def test_compiled_samplers_are_reused_across_datasets(sim):
    """A second dataset of the same shape compiles nothing; a cleared cache compiles again."""
    bmodel, traces = _counting_model(sim)
    data_1, data_2 = _data(sim, 0, lam=0.03), _data(sim, 1, lam=0.08)

    default = {**TINY_NUTS, "init": "map"}  # the default start compiles nothing new either
    post_1 = inf.nuts(bmodel, data_1, jax.random.key(0), **default)
    first = traces["n"]
    assert first > 0
    post_2 = inf.nuts(bmodel, data_2, jax.random.key(0), **default)
    assert traces["n"] == first  # no new trace: every compiled function was reused
    # ...and it used the new data: the same key gives other draws
    assert not np.allclose(post_1.samples["model.lam"], post_2.samples["model.lam"])

    inf.map_estimate(bmodel, data_1, jax.random.key(0), **TINY_MAP)
    after_map = traces["n"]
    assert after_map > first
    inf.map_estimate(bmodel, data_2, jax.random.key(0), **TINY_MAP)
    assert traces["n"] == after_map

    _cache.clear(bmodel)  # as in a new process: the counter sees the compilation again
    assert _cache.names(bmodel) == []
    inf.nuts(bmodel, data_2, jax.random.key(0), **default)
    assert traces["n"] > after_map


def test_the_cache_dies_with_its_owner(sim):
    """Deleting the model and the MAPResult frees their compiled samplers and Laplace factor."""
    bmodel = inf.BayesianModel(sim, PRIORS, L.TimeSeries(sigma=SIGMA))
    data = _data(sim, 0)
    mode = inf.map_estimate(bmodel, data, jax.random.key(0), **TINY_MAP)
    inf.nuts(bmodel, data, jax.random.key(1), **{**TINY_NUTS, "init": mode})
    assert _cache.names(bmodel) and _cache.names(mode)
    n_tables = len(_cache._tables)
    model_ref, mode_ref = weakref.ref(bmodel), weakref.ref(mode)
    del bmodel, mode  # the MAPResult holds the model: both go
    gc.collect()
    assert model_ref() is None, gc.get_referrers(model_ref())
    assert mode_ref() is None
    assert len(_cache._tables) == n_tables - 2


# ----------------------------------------------------------------------------- the rest
# Every public class of inference is an equinox module, except these containers of results
# and data (plain dataclasses and named tuples: they hold draws, tables and files, and are
# not passed through JAX transformations).
NOT_MODULES = {
    "LogDensity",  # a NamedTuple of functions, made by a model
    "MAPResult",
    "Mode",  # one mode of a MAPResult
    "Stacking",
    "Evidence",
    "Posterior",
    "SimulationBank",
    "SignalSpec",  # a frozen dataclass: a simulator's signal geometry
    "SBCResult",
    "TARPResult",
    "Convergence",
    "PPCResult",
}


def _public_classes():
    import inspect

    import inference.bank as B
    import inference.diagnostics as D
    import inference.summaries as S

    for mod in (inf, L, S, B, D):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and not issubclass(obj, Exception):
                yield f"{mod.__name__}.{name}", obj


def test_every_public_class_of_inference_is_an_equinox_module_or_a_result():
    plain = sorted(
        name
        for name, cls in _public_classes()
        if not issubclass(cls, eqx.Module) and name.rsplit(".", 1)[1] not in NOT_MODULES
    )
    assert not plain, f"plain classes in inference's public API: {plain}"
    # a concrete module is final: extended through its abstract base, not by subclassing
    open_concrete = sorted(
        name
        for name, cls in _public_classes()
        if issubclass(cls, eqx.Module)
        and not cls.__name__.startswith("Abstract")  # (summaries.Summary is an alias)
        and not getattr(cls, "__final__", False)
    )
    assert not open_concrete, f"concrete modules that are not @final: {open_concrete}"


def test_prior_space_is_a_frozen_pytree_that_keeps_its_layout():
    # NumPyro keeps Python numbers as they are (static under jit); arrays are leaves
    priors = {
        "model.lam": dist.LogNormal(jnp.array(-3.0), 0.5).expand([2]),
        "coupling.G": dist.Uniform(0.0, jnp.array(0.2)),
    }
    space = inf.PriorSpace(None, priors)
    assert isinstance(space, eqx.Module)
    with pytest.raises(dataclasses.FrozenInstanceError):
        space.paths = ()
    # the distributions' parameters are leaves; a tree operation keeps the given order
    # ("model.lam" sorts after "coupling.G"), the names and the fingerprint
    assert any(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(space))
    rebuilt = jax.tree_util.tree_map(lambda x: x, space)
    assert rebuilt.paths == ("model.lam", "coupling.G") == tuple(rebuilt.priors)
    assert rebuilt.names == ["model.lam[0]", "model.lam[1]", "coupling.G"] and rebuilt.d == 3
    assert rebuilt.fingerprint() == space.fingerprint()
    # passed through jit as an argument: the same densities, and a space of the same layout
    # with other (array) prior parameters reuses the compiled function
    traces = []

    @eqx.filter_jit
    def log_prior(s, theta):
        traces.append(1)
        return s.log_prior(theta)

    theta = space.sample(jax.random.key(0), 5)
    np.testing.assert_allclose(log_prior(space, theta), space.log_prior(theta), rtol=1e-6)
    wider = inf.PriorSpace(
        None,
        {
            "model.lam": dist.LogNormal(jnp.array(-2.0), 0.5).expand([2]),
            "coupling.G": dist.Uniform(0.0, jnp.array(0.3)),
        },
    )
    np.testing.assert_allclose(log_prior(wider, theta), wider.log_prior(theta), rtol=1e-6)
    assert len(traces) == 1
    assert not np.allclose(wider.log_prior(theta), space.log_prior(theta))


def test_hierarchical_prior_and_bank_summaries_are_frozen_modules():
    from inference.bank import Identity

    h = inf.Hierarchical(dist.Normal(0.0, 1.0), dist.HalfNormal(0.5), size=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.size = 4
    assert h.size == 3 and not h.centered
    assert len(jax.tree_util.tree_leaves(h)) >= 3  # loc's two numbers and scale's one
    ident = Identity((4,))
    assert ident.out_shape == (4,) and ident.fit(np.zeros((2, 4))) is ident
    with pytest.raises(dataclasses.FrozenInstanceError):
        ident.shape = (5,)
