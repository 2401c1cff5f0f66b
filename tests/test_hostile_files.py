"""A crafted file handed to every loader runs no code and is a clear error naming it.

Two crafted files: a bare pickle whose unpickling would create a marker file, and an
`.npz` whose header and arrays are pickled objects with the same payload. Every loader of
brainmass and `inference` is given both; none may create the marker, and each must raise
a `ValueError` (`brainmass.storage.StorageError` is one) that names the file.
"""

from __future__ import annotations

import os
import pickle

import jax
import numpy as np
import numpyro.distributions as dist
import pytest

import brainmass as bm
import inference as inf


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.fixture
def crafted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw.npz"  # any suffix a loader expects; the contents are a pickle
    raw.write_bytes(pickle.dumps(_Payload()))
    obj = tmp_path / "objects.npz"
    bomb = np.asarray([_Payload()], dtype=object)
    np.savez(obj, __header__=bomb, weights=bomb, tract_lengths=bomb, labels=bomb, leaf_00000=bomb)
    yield [raw, obj]
    assert not (tmp_path / "PWNED").exists(), "a loader ran code from a crafted file"


def _sim():
    net = bm.Network(bm.models.Linear(), bm.Connectome.synthetic(4, seed=0))
    return bm.Simulator(net, dt=1.0, duration=8.0, monitor=bm.monitors.Raw(period=1.0))


def _loaders():
    sim = _sim()
    priors = {"a": dist.Normal(0.0, 1.0).expand([2])}
    grid = {"model.lam": np.array([0.1, 0.2])}
    return {
        "Connectome.load": lambda p: bm.Connectome.load(p),
        "FitResult.load": lambda p: bm.FitResult.load(p),
        "sweep(checkpoint=)": lambda p: bm.sweep(sim, grid, key=None, checkpoint=p, progress=False),
        "SimulationBank.load": lambda p: inf.SimulationBank.load(p),
        "simulate_bank(checkpoint=)": lambda p: inf.simulate_bank(
            sim, {"model.lam": dist.Uniform(0.05, 0.2)}, lambda s: s.mean(0), jax.random.key(0), 4,
            checkpoint=p, progress=False,
        ),
        "NPE.load": lambda p: inf.NPE(None, priors, None, flow_layers=1, nn_width=8).load(p),
        "NLE.load": lambda p: inf.NLE(None, priors, None, flow_layers=1, nn_width=8).load(p),
        "Posterior.load": lambda p: inf.Posterior.load(p.rename(p.with_suffix(".nc"))),
        "storage.load": lambda p: bm.storage.load(p, "brainmass.Trainer checkpoint"),
    }  # fmt: skip


@pytest.mark.parametrize("loader", list(_loaders()))
def test_every_loader_refuses_a_crafted_file_without_running_it(crafted, loader):
    load = _loaders()[loader]
    for path in crafted:
        data = path.read_bytes()
        with pytest.raises(ValueError) as err:
            load(path)
        assert path.stem in str(err.value), (loader, str(err.value))
        for p in path.parent.glob(f"{path.stem}.*"):  # restore for the next crafted file
            p.unlink()
        path.write_bytes(data)
