"""The public surface: `brainmass.__all__`, `Simulator.spec`, `signal_shape`, the chunk and
progress helpers that `inference` builds on."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass as bm

INIT = Path(bm.__file__)


def _names_bound_in_init() -> set[str]:
    """Every public name that brainmass/__init__.py binds by an import or an assignment."""
    names = set()
    for node in ast.parse(INIT.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {n for n in names if not n.startswith("_")}


def test_every_name_in_all_exists():
    assert len(bm.__all__) == len(set(bm.__all__)), "duplicates in brainmass.__all__"
    missing = [name for name in bm.__all__ if not hasattr(bm, name)]
    assert missing == []


def test_all_lists_exactly_what_the_package_exports():
    bound = _names_bound_in_init()
    assert bound - set(bm.__all__) == set(), "exported at top level but not in __all__"
    assert set(bm.__all__) - bound == set(), "in __all__ but not exported by __init__.py"
    # the names the issue found missing, by name
    for name in ("Trainer", "TrainResult", "HORNSeqNetwork", "NeuralMassSeqNetwork", "tasks"):
        assert name in bm.__all__


def test_star_import_gives_the_public_names():
    namespace: dict = {}
    exec("from brainmass import *", namespace)
    assert {"Simulator", "Trainer", "tasks", "progress", "chunking"} <= set(namespace)
    assert not any(name.startswith("_") for name in namespace if name != "__builtins__")


# ------------------------------------------------------------------ Simulator.spec


@pytest.fixture(scope="module")
def conn():
    return bm.Connectome.synthetic(4, seed=1)


@pytest.fixture(scope="module")
def sim(conn):
    net = bm.Network(
        bm.models.Hopf(a=jnp.array([-0.1, -0.2, -0.3, -0.4])),
        conn,
        coupling=bm.coupling.Linear(G=0.1),
        speed=5.0 * u.meter / u.second,
        noise=bm.noise.Additive(sigma=0.01),
    )
    return bm.Simulator(net, dt=0.1, duration=50.0)


def test_spec_agrees_with_params_and_parameter_info(sim):
    params = sim.params()
    info = {p.path: p for p in sim.parameter_info()}
    assert set(params) == set(info)
    for path in params:
        spec = sim.spec(path)
        assert isinstance(spec, bm.ParameterSpec)
        assert spec.path == path
        assert spec.domain == info[path].domain and spec.doc == info[path].doc
        np.testing.assert_array_equal(np.asarray(spec.value), np.asarray(info[path].value))
        assert spec.shape == np.shape(info[path].value)
        # the unit object converts the canonical value back to what params() reports
        expected = params[path]
        if spec.unit is None:
            np.testing.assert_array_equal(np.asarray(expected), np.asarray(spec.value))
        else:
            np.testing.assert_allclose(
                np.asarray(expected.to_decimal(spec.unit)), np.asarray(spec.value)
            )


def test_spec_values_units_and_shapes(sim):
    a = sim.spec("model.a")
    assert a.shape == (4,) and a.domain == "real"
    np.testing.assert_allclose(np.asarray(a.value), [-0.1, -0.2, -0.3, -0.4])
    speed = sim.spec("network.speed")
    assert speed.shape == () and speed.domain == "positive"
    # 5 m/s is 5 mm/ms: the canonical unit reads it back as 5
    assert float(speed.value) == pytest.approx(5.0)
    assert (1.0 * u.meter / u.second).to_decimal(speed.unit) == pytest.approx(1.0)
    assert sim.spec("connectome.weights").shape == (4, 4)
    assert sim.spec("coupling.G").unit is None


def test_spec_unknown_path_is_a_clear_error(sim):
    with pytest.raises(ValueError, match=r"unknown parameter path 'coupling\.g'.*coupling\.G"):
        sim.spec("coupling.g")
    delay_free = bm.Simulator(bm.Network(bm.models.Linear(), sim.network.connectome), dt=0.1)
    with pytest.raises(ValueError, match=r"no delays"):
        delay_free.spec("network.speed")


# ------------------------------------------------------------------ signal_shape


def _eeg(n_regions: int, n_sensors: int):
    leadfield = np.random.default_rng(0).standard_normal((n_sensors, n_regions))
    return bm.monitors.EEG(leadfield, period=2.0, transient=10.0)


@pytest.mark.parametrize(
    "make_monitor",
    [
        lambda n: bm.monitors.Raw(period=1.0),
        lambda n: bm.monitors.Raw(period=0.5, variable="y", transient=7.0),
        lambda n: bm.monitors.TemporalAverage(period=4.0, transient=20.0),
        lambda n: bm.monitors.BOLD(period=20.0),
        lambda n: _eeg(n, 7),
    ],
    ids=["raw", "raw-transient", "average-transient", "bold", "eeg-7-sensors"],
)
def test_signal_shape_is_the_shape_run_returns(sim, make_monitor):
    monitor = make_monitor(sim.network.n_regions)
    s = bm.Simulator(sim.network, dt=0.1, duration=100.0, monitor=monitor)
    key = jax.random.key(0)
    traced = jax.eval_shape(lambda k: s.run(k, check=False).signal, key)
    assert s.signal_shape == traced.shape
    assert s.signal_shape[0] < s.n_samples or monitor.transient == 0


def test_signal_shape_of_a_real_run(sim):
    assert sim.run(jax.random.key(1)).signal.shape == sim.signal_shape == (50, 4)


# ------------------------------------------------------------------ chunking, progress


def _compile_for(width: int):
    def chunk(x):
        return {"y": jnp.cumsum(jnp.sin(x) @ jnp.ones((width, width)), axis=1)}

    def compile_for(size: int):
        lowered = jax.jit(chunk).lower(jax.ShapeDtypeStruct((size, width), jnp.float32))
        return lowered.compile(), lowered.out_info

    return compile_for


def test_auto_chunk_size_from_the_probe_memory():
    compile_for = _compile_for(64)
    probe, _ = compile_for(2)
    probe_bytes = bm.chunking.compiled_bytes(probe)
    if probe_bytes is None:
        pytest.skip("this backend reports no compiled memory")
    per_point = probe_bytes / 2
    plan = bm.chunking.auto_chunk_size(compile_for, 1000, memory_limit=10.5 * per_point)
    assert plan.chunk_size == 10 and plan.bytes_per_point == pytest.approx(per_point)
    assert plan.memory_limit == 10.5 * per_point
    assert plan.compiled is None and plan.out_info is None  # compiled for 2, not 10
    # the budget holds more than every point: all of them in one chunk
    assert bm.chunking.auto_chunk_size(compile_for, 7, 1e12).chunk_size == 7
    # exactly the probe's size: the probe is handed back to be used as is
    two = bm.chunking.auto_chunk_size(compile_for, 2, 1e12)
    assert two.chunk_size == 2 and two.compiled is not None and set(two.out_info) == {"y"}
    # unpacks like a tuple, in the documented order
    chunk_size, bytes_per_point, limit, compiled, out_info = plan
    assert (chunk_size, limit) == (10, 10.5 * per_point)


def test_auto_chunk_size_warns_when_one_point_does_not_fit():
    with pytest.warns(UserWarning, match="memory_limit: one simulation needs about"):
        plan = bm.chunking.auto_chunk_size(_compile_for(64), 50, memory_limit=1.0)
    assert plan.chunk_size == 1


def test_auto_chunk_size_default_budget_is_a_fraction_of_free_memory():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = bm.chunking.auto_chunk_size(_compile_for(8), 5)
    free = bm.chunking.available_memory()
    assert 0 < plan.memory_limit <= bm.chunking.MEMORY_FRACTION * free * 1.5
    assert plan.chunk_size == 5


def test_auto_chunk_size_without_a_memory_report():
    class NoReport:
        def memory_analysis(self):
            raise NotImplementedError

    def compile_for(size):
        return NoReport(), {"y": jax.ShapeDtypeStruct((size, 3), jnp.float32)}

    assert bm.chunking.compiled_bytes(NoReport()) is None
    assert bm.chunking.auto_chunk_size(compile_for, 1000, 1e9).chunk_size == 256
    assert bm.chunking.auto_chunk_size(compile_for, 9, 1e9).chunk_size == 9


def test_progress_bar_counts_and_can_be_silent(capsys):
    bar = bm.progress.progress_bar(total=3, desc="work", unit="item", disable=False)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert bar.n == 3
    err = capsys.readouterr().err
    assert re.search(r"work: 100%.*3/3", err), err
    with bm.progress.progress_bar(total=2, desc="quiet", unit="item", disable=True) as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""


def test_top_level_names_of_brainmass_and_inference_name_one_thing_each():
    import inference as inf

    seen = {}
    for mod in (bm, bm.fitting, inf):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if isinstance(obj, type):
                assert seen.setdefault(name, obj) is obj, f"{name} names two classes"
    assert inf.PriorSpace is not bm.fitting.ParameterSpace
    with pytest.raises(AttributeError, match="renamed inference.PriorSpace"):
        inf.ParameterSpace  # noqa: B018


def _public_callables():
    import inspect

    import inference as inf

    seen, out = set(), []

    def walk(mod, prefix):
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name, None)
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            if inspect.ismodule(obj):
                walk(obj, f"{prefix}{name}.")
            elif inspect.isclass(obj):
                for meth, fn in vars(obj).items():
                    if (meth == "__init__" or not meth.startswith("_")) and callable(fn):
                        out.append((f"{prefix}{name}.{meth}", fn))
            elif callable(obj):
                out.append((f"{prefix}{name}", obj))

    walk(bm, "bm.")
    walk(inf, "inf.")
    return out


def test_randomness_is_always_an_argument_named_key():
    import inspect

    # the deterministic synthetic connectome is the one documented seed (DESIGN.md)
    allowed_seed = {"bm.Connectome.synthetic", "bm.connectome.synthetic_arrays"}
    offenders = []
    for name, fn in _public_callables():
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        for p in params:
            if p in ("rng", "prng", "random_state", "key_or_seed", "rng_key", "prng_key") or (
                p == "seed" and name not in allowed_seed
            ):
                offenders.append(f"{name}({p})")
    assert not offenders, offenders
    assert len(_public_callables()) > 150  # the walk reaches the public API
