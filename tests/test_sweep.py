"""Parameter sweeps: a vmapped, chunked grid equals the same points simulated one by one.

References are independent of the sweep machinery: each grid point is run
through `Simulator.function` on its own, and the objective and statistics are
recomputed from that signal with NumPy. Every `sweep` call compiles once, so
the sweeps are module-scoped fixtures shared by several tests; the networks
are tiny (4 regions, 20-30 ms) and deterministic except where noise is the
point of the test.
"""

from __future__ import annotations

import importlib

import brainunit as u
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
import xarray as xr

import brainmass as bm
from brainmass import SweepResult, sweep
from brainmass._integration import TRACES

# the module itself (private; `bm.sweep` is the function)
sweep_module = importlib.import_module("brainmass._sweep._run")

matplotlib.use("Agg")

N = 4
DT = 0.1  # ms
DURATION = 30.0  # ms
X0 = np.linspace(-0.5, 0.8, N)
KEY = jax.random.key(3)
# the last two couplings make the linear network explode (Heun, dt = 0.1 ms): non-finite
G_1D = np.array([0.0, 0.05, 0.1, 0.2, 0.4, 60.0, 80.0])
N_EXPLODING = 2
G_2D = np.array([0.05, 0.1, 0.3])
LAM_2D_HZ = np.array([50.0, 100.0])  # swept as quantities in Hz: 0.05 and 0.1 / ms


def objective(signal, target):
    return jnp.mean((signal - target) ** 2)


STATISTICS = {"mean": lambda s: jnp.mean(s, axis=0), "fc": lambda s: jnp.corrcoef(s.T)}


def np_objective(signal, target):
    return np.mean((np.asarray(signal, np.float64) - target) ** 2)


def np_statistics(signal):
    s = np.asarray(signal, np.float64)
    return {"mean": s.mean(axis=0), "fc": np.corrcoef(s.T)}


@pytest.fixture(scope="module")
def linear_sim():
    conn = bm.Connectome.synthetic(N, seed=1)
    # per-region relaxation rates: a swept scalar is broadcast to all regions
    model = bm.models.Linear(lam=np.full(N, 0.1))
    net = bm.Network(model, conn, coupling=bm.coupling.Linear(G=0.1))
    return bm.Simulator(net, dt=DT, duration=DURATION, init={"x": X0})


@pytest.fixture(scope="module")
def target(linear_sim):
    return 0.1 * np.sin(np.arange(int(DURATION))[:, None] * 0.3 + np.arange(N)[None, :])


@pytest.fixture(scope="module")
def pointwise(linear_sim):
    """Signals of single points, simulated one at a time."""
    f = linear_sim.function(["coupling.G", "model.lam"], output="result")

    def run(G, lam=0.1):
        result = f({"coupling.G": float(G), "model.lam": float(lam)})
        return np.asarray(result.signal), bool(result.ok)

    return run


@pytest.fixture(scope="module")
def sweep_1d(linear_sim, target):
    before = TRACES["simulate"]
    res = sweep(
        linear_sim,
        {"coupling.G": G_1D},
        key=None,
        objective=objective,
        target=target,
        statistic=STATISTICS,
        chunk_size=3,  # 7 points: chunks of 3, 3 and 1 (+2 padding)
        progress=False,
    )
    return res, TRACES["simulate"] - before


@pytest.fixture(scope="module")
def sweep_2d(linear_sim, target):
    return sweep(
        linear_sim,
        {"coupling.G": list(G_2D), "model.lam": LAM_2D_HZ * u.Hz},
        key=None,
        objective=objective,
        target=target,
        statistic=STATISTICS,
        chunk_size=4,
        progress=False,
    )


@pytest.fixture(scope="module")
def sweep_auto(linear_sim, target):
    """The same 1-D sweep with the chunk size chosen from the (ample) free memory."""
    return sweep(
        linear_sim,
        {"coupling.G": G_1D},
        key=None,
        objective=objective,
        target=target,
        statistic=STATISTICS,
        progress=False,
    )


# ----------------------------------------------------------------- values


def test_1d_chunked_sweep_equals_points_one_by_one(sweep_1d, pointwise, target):
    res, _ = sweep_1d
    assert res.chunk_size == 3 and res.n_chunks == 3
    for i, G in enumerate(G_1D):
        signal, ok = pointwise(G)
        if not ok:
            continue
        ref = np_statistics(signal)
        got = res.data.isel({"coupling.G": i})
        np.testing.assert_allclose(float(got["objective"]), np_objective(signal, target), rtol=1e-5)
        np.testing.assert_allclose(got["mean"].values, ref["mean"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got["fc"].values, ref["fc"], rtol=1e-4, atol=1e-5)


def test_failed_points_are_nan_and_counted(sweep_1d, pointwise):
    res, _ = sweep_1d
    ok = np.array([pointwise(G)[1] for G in G_1D])
    assert ok.sum() == len(G_1D) - N_EXPLODING  # the reference really blows up
    np.testing.assert_array_equal(res.data["failed"].values, ~ok)
    assert res.n_failed == N_EXPLODING == res.data.attrs["n_failed"]
    assert np.all(np.isnan(res.data["objective"].values[~ok]))
    assert np.all(np.isnan(res.data["fc"].values[~ok]))
    assert np.all(np.isfinite(res.data["objective"].values[ok]))


def test_no_retrace_across_chunks(sweep_1d):
    _, traces = sweep_1d
    assert traces == 1, f"{traces} traces for one sweep of 3 chunks"


def test_unchunked_sweep_equals_chunked(sweep_auto, sweep_1d):
    chunked, _ = sweep_1d
    assert sweep_auto.chunk_size == len(G_1D) and sweep_auto.n_chunks == 1
    assert sweep_auto.memory_per_point > 0 and sweep_auto.chunk_memory > 0
    xr.testing.assert_allclose(sweep_auto.data, chunked.data, rtol=1e-6)


def test_2d_sweep_equals_points_one_by_one(sweep_2d, pointwise, target):
    assert sweep_2d.data["objective"].dims == ("coupling.G", "model.lam")
    assert sweep_2d.n_chunks == 2 and sweep_2d.n_failed == 0
    for i, G in enumerate(G_2D):
        for j, lam in enumerate(LAM_2D_HZ / 1000.0):
            signal, ok = pointwise(G, lam)
            assert ok
            got = sweep_2d.data.isel({"coupling.G": i, "model.lam": j})
            ref = np_statistics(signal)
            np.testing.assert_allclose(
                float(got["objective"]), np_objective(signal, target), rtol=1e-5
            )
            np.testing.assert_allclose(got["mean"].values, ref["mean"], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(got["fc"].values, ref["fc"], rtol=1e-4, atol=1e-5)


def test_coordinates_dims_and_units(sweep_2d, linear_sim):
    data = sweep_2d.data
    np.testing.assert_allclose(data["coupling.G"].values, G_2D)
    np.testing.assert_allclose(data["model.lam"].values, [0.05, 0.1], rtol=1e-6)  # 1/ms
    assert data["model.lam"].attrs["units"] == "1/ms"
    assert data["coupling.G"].attrs["units"] == ""
    assert data["fc"].dims == ("coupling.G", "model.lam", "region_i", "region_j")
    assert data["mean"].dims == ("coupling.G", "model.lam", "region")
    labels = list(linear_sim.network.connectome.labels)
    assert list(data["region_i"].values) == labels == list(data["region"].values)
    assert data["failed"].dtype == bool
    assert sweep_2d.paths == ("coupling.G", "model.lam")


def test_full_signal_is_kept_without_objective_or_statistic(linear_sim, pointwise, monkeypatch):
    monkeypatch.setattr(sweep_module, "LARGE_RESULT_BYTES", 100)
    with pytest.warns(UserWarning, match="full signal"):
        res = sweep(linear_sim, {"coupling.G": [0.1, 0.3]}, key=None, chunk_size=2, progress=False)
    signal = res.data["signal"]
    assert signal.dims == ("coupling.G", "time", "region")
    np.testing.assert_allclose(signal["time"].values, np.arange(1, int(DURATION) + 1) * 1.0)
    assert signal["time"].attrs["units"] == "ms"
    np.testing.assert_allclose(signal.values[1], pointwise(0.3)[0], rtol=1e-5, atol=1e-7)


def test_best_point(sweep_2d, sweep_1d):
    values = sweep_2d.data["objective"].values
    i, j = np.unravel_index(np.argmin(values), values.shape)
    assert sweep_2d.best() == {
        "coupling.G": pytest.approx(G_2D[i]),
        "model.lam": pytest.approx(LAM_2D_HZ[j] / 1000),
    }
    i, j = np.unravel_index(np.argmax(values), values.shape)
    assert sweep_2d.best(minimize=False)["coupling.G"] == pytest.approx(G_2D[i])
    res, _ = sweep_1d  # NaN (failed) points are skipped when maximizing
    finite = res.data["objective"].values[: len(G_1D) - N_EXPLODING]
    assert res.best(minimize=False) == {"coupling.G": G_1D[int(np.argmax(finite))]}
    with pytest.raises(ValueError, match="one value per grid point"):
        sweep_2d.best(var="fc")


def test_plot_1d_and_2d_return_axes(sweep_1d, sweep_2d):
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    res, _ = sweep_1d
    ax = res.plot()
    assert isinstance(ax, Axes)
    assert ax.get_xlabel() == "coupling.G" and ax.get_ylabel() == "objective"
    np.testing.assert_allclose(ax.lines[0].get_xdata(), G_1D)
    import matplotlib.pyplot as plt

    plt.close(ax.figure)

    ax2 = Figure().subplots()
    out = sweep_2d.plot("objective", ax=ax2)
    assert out is ax2
    assert ax2.get_xlabel() == "coupling.G" and ax2.get_ylabel() == "model.lam [1/ms]"
    assert len(ax2.collections) == 1 and len(ax2.figure.axes) == 2  # heatmap and colorbar
    # a slice of a statistic plots as a line
    ax3 = sweep_2d.plot(
        sweep_2d.data["mean"].isel(region=0, **{"model.lam": 1}), ax=Figure().subplots()
    )
    assert ax3.get_ylabel() == "mean"
    with pytest.raises(ValueError, match="select a slice"):
        sweep_2d.plot("fc", ax=Figure().subplots())


def test_to_netcdf_round_trip(sweep_2d, tmp_path):
    path = tmp_path / "sweep.nc"
    assert sweep_2d.to_netcdf(path) == path
    assert sweep_2d.to_netcdf(path) == path  # over an existing file: atomic, no litter
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.nc"]
    with xr.open_dataset(path, engine="h5netcdf") as back:
        xr.testing.assert_allclose(back.load(), sweep_2d.data)
        assert back["model.lam"].attrs["units"] == "1/ms"


# ----------------------------------------------------------------- memory


def test_chunk_size_from_memory_limit(linear_sim, target, sweep_auto, sweep_1d):
    per_point = sweep_auto.memory_per_point
    limit = int(3.5 * per_point)
    res = sweep(
        linear_sim,
        {"coupling.G": G_1D},
        key=None,
        objective=objective,
        target=target,
        statistic=STATISTICS,
        memory_limit=limit,
        progress=False,
    )
    assert res.chunk_size == 3 and res.n_chunks == 3
    assert res.chunk_memory <= limit
    xr.testing.assert_allclose(res.data, sweep_1d[0].data, rtol=1e-6)


# ----------------------------------------------------------------- keys and delays


@pytest.fixture(scope="module")
def noisy_sim():
    conn = bm.Connectome.synthetic(N, seed=1)
    net = bm.Network(
        bm.models.Linear(), conn, coupling=bm.coupling.Linear(G=0.1), noise=bm.noise.Additive(0.05)
    )
    # remat=False: no gradients here, and the noisy loop compiles twice as fast
    return bm.Simulator(net, dt=DT, duration=20.0, remat=False)


def test_common_random_numbers_and_keys_per_point(noisy_sim):
    grid = {"coupling.G": [0.1, 0.1, 0.2]}
    common = sweep(noisy_sim, grid, key=KEY, statistic=STATISTICS, chunk_size=3, progress=False)
    per_point = sweep(
        noisy_sim,
        grid,
        key=KEY,
        statistic=STATISTICS,
        chunk_size=2,
        key_per_point=True,
        progress=False,
    )
    f = noisy_sim.function(["coupling.G"])
    for i, G in enumerate(grid["coupling.G"]):
        same = np_statistics(f({"coupling.G": G}, KEY))
        own = np_statistics(f({"coupling.G": G}, jax.random.fold_in(KEY, i)))
        np.testing.assert_allclose(
            common.data["mean"].values[i], same["mean"], rtol=1e-4, atol=1e-6
        )
        np.testing.assert_allclose(
            per_point.data["mean"].values[i], own["mean"], rtol=1e-4, atol=1e-6
        )
    mean_c, mean_p = common.data["mean"].values, per_point.data["mean"].values
    np.testing.assert_array_equal(mean_c[0], mean_c[1])  # same parameters, same noise
    assert not np.allclose(mean_p[0], mean_p[1])  # same parameters, other noise
    with pytest.raises(ValueError, match="key"):
        sweep(noisy_sim, grid, key=None, statistic=STATISTICS)


def test_delayed_network_sweep_equals_points_one_by_one():
    conn = bm.Connectome.synthetic(N, seed=2)
    net = bm.Network(bm.models.Hopf(), conn, coupling=bm.coupling.Linear(G=0.2), speed=3.0)
    sim = bm.Simulator(net, dt=DT, duration=DURATION, init={"x": X0, "y": 0.1}, remat=False)
    grid = {"coupling.G": [0.1, 0.5], "model.a": [-0.05, 0.02]}
    # a statistic returning a dict: its keys name the variables
    both = lambda s: {name: fn(s) for name, fn in STATISTICS.items()}  # noqa: E731
    res = sweep(sim, grid, key=None, statistic=both, chunk_size=3, progress=False)
    assert set(res.data.data_vars) == {"mean", "fc", "failed"}
    f = sim.function(["coupling.G", "model.a"])
    for i, G in enumerate(grid["coupling.G"]):
        for j, a in enumerate(grid["model.a"]):
            ref = np_statistics(f({"coupling.G": G, "model.a": a}))
            got = res.data.isel({"coupling.G": i, "model.a": j})
            np.testing.assert_allclose(got["mean"].values, ref["mean"], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(got["fc"].values, ref["fc"], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- checkpoints

G_RESUME = np.linspace(0.0, 0.3, 7)  # chunks of 2: 4 chunks
CALLS = {"count": 0, "fail_on": None}


def _count_chunk(x):
    CALLS["count"] += 1
    if CALLS["count"] == CALLS["fail_on"]:
        raise RuntimeError("simulated interruption")
    return np.zeros(x.shape, x.dtype)


def counting_mean(signal):
    """The time mean; a host callback counts the chunks evaluated (one call per chunk)."""
    zero = jax.pure_callback(
        _count_chunk,
        jax.ShapeDtypeStruct(signal.shape[1:], signal.dtype),
        signal[0],
        vmap_method="expand_dims",
    )
    return jnp.mean(signal, axis=0) + zero


def _resume_sweep(sim, default_target, path, **kwargs):
    options = dict(
        key=None,
        objective=objective,
        statistic=counting_mean,
        chunk_size=2,
        checkpoint=path,
    )
    options.update(kwargs)
    options.setdefault("target", default_target)
    grid = {"coupling.G": options.pop("grid", G_RESUME)}
    return sweep(sim, grid, **options)


@pytest.fixture(scope="module")
def resume_reference(linear_sim, target):
    CALLS.update(count=0, fail_on=None)
    res = _resume_sweep(linear_sim, target, None, progress=False)
    assert CALLS["count"] == 4
    return res


@pytest.mark.parametrize("name", ["sweep.npz", "sweep_dir"])
def test_interrupted_sweep_resumes(linear_sim, target, resume_reference, tmp_path, name, capsys):
    path = tmp_path / name
    CALLS.update(count=0, fail_on=3)
    with pytest.raises(Exception, match="simulated interruption"):
        _resume_sweep(linear_sim, target, path, progress=False)
    assert path.exists()

    CALLS.update(count=0, fail_on=None)
    res = _resume_sweep(linear_sim, target, path, progress=True)
    assert CALLS["count"] == 2, "finished chunks were recomputed"
    assert res.n_resumed == 2 and res.n_chunks == 4
    assert "2 of 4 chunks already done" in capsys.readouterr().err
    xr.testing.assert_identical(res.data.drop_attrs(), resume_reference.data.drop_attrs())

    # a finished sweep is read back without compiling or simulating anything
    before = TRACES["simulate"]
    again = _resume_sweep(linear_sim, target, path, progress=False)
    assert TRACES["simulate"] == before and CALLS["count"] == 2 and again.n_resumed == 4
    xr.testing.assert_identical(again.data.drop_attrs(), resume_reference.data.drop_attrs())


def test_checkpoint_of_another_sweep_is_an_error(linear_sim, target, resume_reference, tmp_path):
    path = tmp_path / "sweep.npz"
    CALLS.update(count=0, fail_on=None)
    _resume_sweep(linear_sim, target, path, progress=False)
    changes = {
        "grid": {"grid": G_RESUME[:5]},
        "chunk_size": {"chunk_size": 3},
        "key": {"key": KEY},
        "objective": {"objective": lambda s, t: jnp.mean(jnp.abs(s - t))},
        "target": {"target": target + 1.0},  # replaces the default target
    }
    for what, change in changes.items():
        with pytest.raises(
            ValueError, match=rf"holds a different sweep: .*[(; ]{what}: saved .*resume=False"
        ):
            _resume_sweep(linear_sim, target, path, progress=False, **change)
    other = linear_sim.with_params({"model.lam": 0.2})
    with pytest.raises(ValueError, match=r"\(network: saved digest:\w+, now digest:\w+\)"):
        _resume_sweep(other, target, path, progress=False)
    finer = bm.Simulator(linear_sim.network, dt=DT / 2, duration=DURATION, init={"x": X0})
    with pytest.raises(ValueError, match=rf"dt: saved {linear_sim.dt:g}, now {DT / 2:g}"):
        _resume_sweep(finer, target, path, progress=False)
    # resume=False starts over and overwrites the checkpoint
    CALLS.update(count=0)
    res = _resume_sweep(linear_sim, target, path, progress=False, resume=False, grid=G_RESUME[:5])
    assert CALLS["count"] == 3 and res.n_resumed == 0
    xr.testing.assert_allclose(
        res.data["objective"], resume_reference.data["objective"].isel({"coupling.G": slice(5)})
    )


# ----------------------------------------------------------------- validation


def test_bad_grids_are_errors_naming_the_argument(linear_sim):
    def check(grid, match, **kwargs):
        before = TRACES["simulate"]
        with pytest.raises(ValueError, match=match):
            sweep(linear_sim, grid, key=None, progress=False, **kwargs)
        assert TRACES["simulate"] == before

    check({"coupling.g": [0.1]}, r"unknown parameter path 'coupling.g'.*Did you mean coupling.G")
    check({"coupling.G": []}, r"grid\['coupling.G'\]: expected a non-empty 1-D")
    check({"coupling.G": 0.1}, r"grid\['coupling.G'\]: expected a non-empty 1-D")
    check({"coupling.G": [[0.1, 0.2]]}, r"non-empty 1-D")
    check({"model.lam": [0.1, -0.1]}, r"grid\['model.lam'\]: expected values > 0")
    check({"model.lam": [1.0, 2.0] * u.ms}, r"model.lam: expected a quantity convertible to 1/ms")
    check(
        {"connectome.weights": [1.0]}, r"grid: .connectome.weights. is a matrix.*Sweep coupling.G"
    )
    check({}, "grid: expected a non-empty dict")
    check({"coupling.G": [0.1]}, "chunk_size: expected a positive integer", chunk_size=0)
    check({"coupling.G": [0.1]}, "objective: expected a function", objective=3.0)
    check({"coupling.G": [0.1]}, "statistic: expected a function", statistic="fc")


def test_bad_objective_or_statistic_names_are_errors(linear_sim):
    with pytest.raises(ValueError, match="objective: expected a scalar per point"):
        sweep(
            linear_sim, {"coupling.G": [0.1]}, key=None, objective=lambda s, t: s[0], chunk_size=1
        )
    with pytest.raises(ValueError, match="the name 'objective' is taken"):
        sweep(
            linear_sim,
            {"coupling.G": [0.1]},
            key=None,
            statistic={"objective": lambda s: s[0]},
            chunk_size=1,
        )


def test_result_type_and_repr(sweep_2d):
    assert isinstance(sweep_2d, SweepResult)
    text = repr(sweep_2d)
    assert "coupling.G: 3" in text and "model.lam: 2" in text
    assert sweep_2d.simulations_per_second > 0 and sweep_2d.wall_time > 0


def test_statistic_names_from_outputs():
    s = jnp.ones((5, N))
    names = sweep_module._statistics
    assert list(names(lambda x: x.mean(0), s)) == ["statistic"]
    assert list(names(lambda x: {"fc": x.T @ x, "var": x.var(0)}, s)) == ["fc", "var"]
    assert list(names(lambda x: (x.mean(0), x.var(0)), s)) == ["statistic_0", "statistic_1"]

    def spread(x):
        return x.max(0) - x.min(0)

    assert list(names(spread, s)) == ["spread"]
    assert list(names({"m": lambda x: x.mean(0), "p": lambda x: {"lo": x[0]}}, s)) == ["m", "p_lo"]
