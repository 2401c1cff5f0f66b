"""Persistence in `inference` through `brainmass.storage`: NUTS checkpoints and simulation banks.

What is checked: no pickle (a crafted file runs no code), resumes refused under any other
setting with a message naming it (dt, solver, key, summary, ...), damaged files named,
concurrent writers safe, and a BlackJAX run resumed from its checkpoint bit-identical to an
uninterrupted one (the NumPyro resume is checked in test_inference.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import brainmass as bm
import inference as inf
from brainmass import storage
from brainmass.storage import StorageError
from inference import likelihoods as L
from inference import mcmc
from inference.bank import PriorSpace, SimulationBank, simulate_bank

SIGMA = 0.05
NUTS_KIND = "inference.nuts checkpoint"


def make_sim(dt=0.5, duration=40.0, solver=None, noise=None):
    """A 2-region linear network relaxing from a known state, 5 ms averages."""
    net = bm.Network(
        bm.models.Linear(lam=0.1),
        bm.Connectome.synthetic(2, seed=0),
        coupling=bm.coupling.Linear(G=0.05),
        noise=noise,
    )
    return bm.Simulator(
        net,
        dt=dt,
        duration=duration,
        solver=solver,
        monitor=bm.monitors.TemporalAverage(period=5.0),
        init={"x": np.array([1.0, -0.5])},
    )


PRIORS = {"model.lam": dist.Uniform(0.05, 0.2)}


def bmodel_for(sim):
    return inf.BayesianModel(sim, PRIORS, L.TimeSeries(sigma=SIGMA))


@pytest.fixture(scope="module")
def data():
    truth = np.asarray(make_sim().run().signal)
    return truth + SIGMA * np.asarray(jax.random.normal(jax.random.key(0), truth.shape))


# the start is not under test here (tests/test_starts.py): the priors' medians skip the MAP
SETTINGS = dict(
    num_warmup=10, num_samples=20, num_chains=2, chunk_size=10, progress=False, init="prior"
)


@pytest.fixture(scope="module")
def checkpoint(data, tmp_path_factory):
    """A finished NumPyro run's checkpoint (dt 0.5 ms, Heun by default, key 1)."""
    path = tmp_path_factory.mktemp("nuts") / "run.ckpt"
    post = inf.nuts(bmodel_for(make_sim()), data, jax.random.key(1), checkpoint=path, **SETTINGS)
    return path, post


# ----------------------------------------------------------------------------- NUTS


def test_the_checkpoint_is_a_storage_file_without_pickle(checkpoint):
    path, post = checkpoint
    rec = storage.load(path, NUTS_KIND)
    assert rec.header["done"] == 30 and rec.header["format"] == storage.FORMAT_VERSION
    assert rec.arrays["draws"].shape == (2, 20, 1)  # (chains, draws, d)
    fp = rec.header["fingerprint"]
    assert fp["dt"] == 0.5 and fp["num_samples"] == 20 and fp["backend"] == "numpyro"
    assert fp["key"] == np.asarray(jax.random.key_data(jax.random.key(1))).tolist()
    # the stored draws are the posterior's, unconstrained: lam = 0.05 + 0.15 sigmoid(z)
    lam = 0.05 + 0.15 / (1.0 + np.exp(-rec.arrays["draws"][..., 0]))
    np.testing.assert_allclose(lam, post.samples["model.lam"], rtol=1e-5)
    package = Path(mcmc.__file__).parent  # inference/mcmc/: every module of the sampler
    assert not any("pickle" in f.read_text() for f in package.glob("*.py"))


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(sim=dict(dt=0.25)), "dt"),
        (dict(sim=dict(solver=bm.solvers.RK4())), "solver"),
        (dict(sim=dict(duration=42.0)), "duration"),
        (dict(key=2), "key"),
        (dict(nuts=dict(num_samples=30)), "num_samples"),
        (dict(nuts=dict(target_accept=0.9)), "target_accept"),
        (dict(nuts=dict(init={"model.lam": 0.1})), "init"),
        (dict(sigma=0.1), "likelihood"),
        (dict(data=1e-3), "data"),
    ],
)
def test_a_resume_under_another_setting_is_refused_naming_it(checkpoint, data, change, name):
    path, _ = checkpoint
    before = path.read_bytes()
    sim = make_sim(**change.get("sim", {}))
    bmodel = inf.BayesianModel(sim, PRIORS, L.TimeSeries(sigma=change.get("sigma", SIGMA)))
    settings = {**SETTINGS, **change.get("nuts", {})}
    key = jax.random.key(change.get("key", 1))
    with pytest.raises(StorageError, match=rf"{path.name}.*\b{name}: saved") as err:
        inf.nuts(bmodel, data + change.get("data", 0.0), key, checkpoint=path, **settings)
    assert "belongs to another run" in str(err.value)
    differ = str(err.value).split("settings (")[1].split(").")[0]
    assert len(differ.split("; ")) == 1, differ  # only the setting that changed
    assert path.read_bytes() == before  # the refused run wrote nothing


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_crafted_checkpoint_runs_no_code(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"fingerprint": "x", "state": _Boom()}))
    with pytest.raises(StorageError, match="checkpoint: .*evil.ckpt"):
        inf.nuts(bmodel_for(make_sim()), data, jax.random.key(1), checkpoint=path, **SETTINGS)
    assert not (tmp_path / "PWNED").exists()


def test_a_truncated_checkpoint_names_the_file(checkpoint, data, tmp_path):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(checkpoint[0].read_bytes()[:-100])
    with pytest.raises(StorageError, match="checkpoint: .*cut.ckpt"):
        inf.nuts(bmodel_for(make_sim()), data, jax.random.key(1), checkpoint=path, **SETTINGS)


def test_a_checkpoint_without_the_energy_statistic_is_refused_naming_it(checkpoint, data, tmp_path):
    """A run saved before `energy` was recorded cannot be resumed into draws that have it."""
    rec = storage.load(checkpoint[0], NUTS_KIND)
    header = {k: v for k, v in rec.header.items() if k in ("done", "warmup_divergent")}
    header["stats"] = [n for n in rec.header["stats"] if n != "energy"]
    arrays = {k: v for k, v in rec.arrays.items() if k != "stat_energy"}
    old = tmp_path / "old.ckpt"
    storage.save(old, NUTS_KIND, arrays, fingerprint=rec.header["fingerprint"], header=header)
    with pytest.raises(StorageError, match=r"old\.ckpt lacks the statistics \['energy'\]"):
        inf.nuts(bmodel_for(make_sim()), data, jax.random.key(1), checkpoint=old, **SETTINGS)


def test_blackjax_resume_is_bit_identical(data, tmp_path, monkeypatch):
    """Interrupted after the warmup and one chunk, resumed: the same draws as one run."""
    bmodel = bmodel_for(make_sim())
    settings = {**SETTINGS, "backend": "blackjax"}
    full = inf.nuts(bmodel, data, jax.random.key(4), **settings)
    path = tmp_path / "bj.ckpt"
    real_run = mcmc._BlackJAXSampler.run
    calls = {"n": 0}

    def interrupted_run(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(mcmc._BlackJAXSampler, "run", interrupted_run)
    with pytest.warns(UserWarning, match="interrupted after 20 of 30"):
        part = inf.nuts(bmodel, data, jax.random.key(4), checkpoint=path, **settings)
    assert part.n_draws == 10
    monkeypatch.setattr(mcmc._BlackJAXSampler, "run", real_run)
    resumed = inf.nuts(bmodel, data, jax.random.key(4), checkpoint=path, **settings)
    assert resumed.info["resumed"] and resumed.n_draws == 20
    np.testing.assert_array_equal(resumed.samples["model.lam"], full.samples["model.lam"])
    np.testing.assert_array_equal(resumed.sample_stats["n_steps"], full.sample_stats["n_steps"])
    assert [p.name for p in tmp_path.iterdir()] == ["bj.ckpt"]  # no temporary file left


# ----------------------------------------------------------------------------- banks


def _log_variance(signal):
    """Summary: log variance of each channel over time, (n_channels,)."""
    return jnp.log(jnp.var(signal, axis=0))


def _mean(signal):
    """Another summary of the same shape: the mean of each channel."""
    return jnp.mean(signal, axis=0)


NOISE = bm.noise.Additive(sigma=0.05)
BANK_PRIORS = {"model.lam": dist.Uniform(0.05, 0.2), "coupling.G": dist.Uniform(0.0, 0.1)}


def _bank(path=None, n=8, key=0, sim=None, summary=_log_variance, **kw):
    sim = make_sim(noise=NOISE) if sim is None else sim
    return simulate_bank(
        sim, BANK_PRIORS, summary, jax.random.key(key), n, chunk_size=4, checkpoint=path,
        progress=False, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def bank_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bank") / "bank.npz"
    bank = _bank(path, n=4)
    return path, bank


def test_a_bank_records_its_settings_by_name(bank_file):
    path, bank = bank_file
    fp = bank.fingerprint
    assert fp["priors"] == PriorSpace(make_sim(), BANK_PRIORS).fingerprint()
    assert fp["dt"] == 0.5 and fp["duration"] == 40.0
    assert fp["solver"].startswith("StochasticHeun digest:")
    assert fp["summary"].startswith("_FunctionSummary digest:")
    assert fp["key"] == np.asarray(jax.random.key_data(jax.random.key(0))).tolist()
    assert fp["proposal"] is None and fp["params"] is None
    loaded = SimulationBank.load(path)
    assert loaded.fingerprint == fp and loaded.shapes == bank.shapes
    np.testing.assert_array_equal(loaded.theta, bank.theta)
    # other priors over the same names: another digest
    other = PriorSpace(None, {**BANK_PRIORS, "coupling.G": dist.Uniform(0.0, 0.2)})
    assert other.fingerprint() != fp["priors"]


def _uniform_proposal(key, n):
    return jnp.stack([jax.random.uniform(key, (n,), minval=0.1, maxval=0.2),
                      jnp.full((n,), 0.05)], -1)  # fmt: skip


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(sim=make_sim(dt=0.25, noise=NOISE)), "dt"),
        (dict(sim=make_sim(noise=NOISE, solver=bm.solvers.EulerMaruyama())), "solver"),
        (dict(key=1), "key"),
        (dict(summary=_mean), "summary"),
        (dict(proposal=_uniform_proposal), "proposal"),
    ],
)
def test_a_bank_resumed_under_another_setting_is_refused_naming_it(bank_file, change, name):
    path, _ = bank_file
    before = path.read_bytes()
    with pytest.raises(StorageError, match=rf"checkpoint: .*bank.npz.*\b{name}: saved") as err:
        _bank(path, n=8, **change)
    differ = str(err.value).split("settings (")[1].split(").")[0]
    assert len(differ.split("; ")) == 1, differ
    assert path.read_bytes() == before


def _proposal_from(draws, random):
    """A proposal that closes over data (`draws`) and a module (`random`), as in the demo."""

    def from_draws(key, n):
        return draws[random.randint(key, (n,), 0, draws.shape[0])]

    return from_draws


def test_a_proposal_is_fingerprinted_by_the_data_it_closes_over(tmp_path):
    path = tmp_path / "ppc.npz"
    draws = jnp.asarray([[0.1, 0.02], [0.15, 0.05], [0.12, 0.03]])
    bank = _bank(path, n=4, proposal=_proposal_from(draws, jax.random))
    assert bank.fingerprint["proposal"].startswith("_proposal_from.<locals>.from_draws digest:")
    again = _bank(path, n=4, proposal=_proposal_from(draws + 0.0, jax.random))  # equal: resumed
    np.testing.assert_array_equal(again.theta, bank.theta)
    with pytest.raises(StorageError, match=r"\bproposal: saved"):
        _bank(path, n=8, proposal=_proposal_from(draws * 1.01, jax.random))


def test_a_bank_resumed_under_the_same_settings_grows(bank_file, tmp_path):
    path = tmp_path / "grow.npz"
    path.write_bytes(bank_file[0].read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grown = _bank(path, n=8)
        full = _bank(None, n=8)
    np.testing.assert_array_equal(grown.theta, full.theta)
    np.testing.assert_array_equal(grown.x, full.x)
    assert SimulationBank.load(path).n_chunks == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grow.npz"]


def test_merging_refuses_other_settings_naming_them(bank_file):
    _, bank = bank_file
    with pytest.raises(ValueError, match=r"others\[0\]: .*summary: this bank"):
        bank.merge(_bank(n=4, summary=_mean))
    other_key = _bank(n=4, key=3)
    merged = bank.merge(other_key)  # another key: more draws under the same settings
    assert len(merged) == len(bank) + len(other_key) and merged.fingerprint["key"] == "merged"
    space = PriorSpace(None, {"a": dist.Normal(0.0, 1.0)})
    wide = PriorSpace(None, {"a": dist.Normal(0.0, 2.0)})
    a = SimulationBank.from_arrays(np.zeros((3, 1)), np.zeros((3, 2)), space)
    b = SimulationBank.from_arrays(np.ones((3, 1)), np.ones((3, 2)), wide)
    with pytest.raises(ValueError, match=r"priors: this bank digest:"):
        a.merge(b)


def test_damaged_bank_files_name_the_path(bank_file, tmp_path):
    good = bank_file[0].read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(StorageError, match="cut.npz"):
        SimulationBank.load(cut)
    with pytest.raises(StorageError, match="checkpoint: .*cut.npz"):
        _bank(cut, n=8)
    old = tmp_path / "old.npz"  # a bank in the format before brainmass.storage
    np.savez(old, theta=np.zeros((2, 2)), x=np.zeros((2, 2)), fingerprint=np.asarray("abc"))
    with pytest.raises(StorageError, match=r"old.npz is not .*inference.SimulationBank"):
        SimulationBank.load(old)


def _save_banks(path, value, n, barrier):
    space = PriorSpace(None, {"a": dist.Normal(0.0, 1.0)})
    bank = SimulationBank.from_arrays(np.full((2000, 1), value), np.full((2000, 4), value), space)
    barrier.wait(120)  # both processes imported: their writes overlap
    for _ in range(n):
        bank.save(path)


def test_two_processes_saving_one_bank_path_both_finish(tmp_path):
    path = tmp_path / "shared.npz"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_save_banks, args=(path, v, 100, barrier)) for v in (1.0, 2.0)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    bank = SimulationBank.load(path)
    assert bank.theta[0, 0] in (1.0, 2.0) and np.all(bank.x == bank.theta[0, 0])
    assert len(bank) == 2000
    assert [p.name for p in tmp_path.iterdir()] == ["shared.npz"]
