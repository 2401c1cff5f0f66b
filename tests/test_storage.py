"""brainmass.storage: the one persistence layer (safe format, atomic writes, fingerprints)."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import pickle
import zipfile

import brainunit as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainmass import storage
from brainmass.storage import StorageError


def _save(path, **kw):
    return storage.save(
        path,
        "test.Thing",
        {"a": np.arange(6.0).reshape(2, 3), "names": np.asarray(["x", "y"])},
        fingerprint={"dt": 0.5, "solver": "heun", "w": np.ones(3)},
        header={"losses": [1.0, 0.5]},
        **kw,
    )


def test_round_trip_keeps_arrays_header_and_versions(tmp_path):
    path = _save(tmp_path / "f.npz")
    rec = storage.load(
        path, "test.Thing", fingerprint={"dt": 0.5, "solver": "heun", "w": np.ones(3)}
    )
    np.testing.assert_array_equal(rec.arrays["a"], np.arange(6.0).reshape(2, 3))
    assert list(rec.arrays["names"]) == ["x", "y"]
    assert rec.header["losses"] == [1.0, 0.5]
    assert rec.header["format"] == storage.FORMAT_VERSION
    assert "jax" in rec.header["versions"]
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]  # no temporary file left
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # as open() would make it


def test_a_mismatch_names_each_setting_with_both_values(tmp_path):
    path = _save(tmp_path / "f.npz")
    with pytest.raises(StorageError) as err:
        storage.load(
            path,
            "test.Thing",
            what="checkpoint",
            fingerprint={"dt": 0.25, "solver": "heun", "w": np.ones(3) * 2},
            hint="Choose another path.",
        )
    msg = str(err.value)
    assert "checkpoint: " in msg and str(path) in msg
    assert "dt: saved 0.5, now 0.25" in msg and "w: saved digest:" in msg
    assert "solver" not in msg and msg.endswith("Choose another path.")
    # a setting recorded on one side only is a difference as well
    with pytest.raises(StorageError, match="key: saved <not recorded>"):
        storage.load(
            path, "test.Thing", fingerprint={"dt": 0.5, "solver": "heun", "w": np.ones(3), "key": 1}
        )


def test_describe_is_readable_for_scalars_and_units_and_stable_for_arrays():
    assert storage.describe(0.1 + 0.2) == storage.describe(0.3) == 0.3
    assert storage.describe(0.5 * u.ms) == "0.5 ms"
    assert storage.describe(0.5 * u.ms) != storage.describe(0.5 * u.second)
    assert storage.describe((1, "a")) == [1, "a"]
    a, b = storage.describe(np.ones(4)), storage.describe(np.ones(4))
    assert a == b and a.startswith("digest:") and a != storage.describe(np.zeros(4))
    k0, k1 = jax.random.key(0), jax.random.key(1)
    assert storage.describe(k0) == storage.describe(jax.random.key(0)) != storage.describe(k1)
    assert storage.digest(lambda x: x + 1) != storage.digest(lambda x: x + 2)


def test_kind_and_newer_format_are_refused(tmp_path):
    path = _save(tmp_path / "f.npz")
    with pytest.raises(StorageError, match="holds a 'test.Thing', not a 'inference.NPE'"):
        storage.load(path, "inference.NPE")
    storage.save(tmp_path / "g.npz", "test.Thing", header={"format": 99})
    with pytest.raises(StorageError, match="file format 99"):
        storage.load(tmp_path / "g.npz", "test.Thing")


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_crafted_pickle_runs_no_code_in_any_shape(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw.pkl"  # a bare pickle
    raw.write_bytes(pickle.dumps(_Boom()))
    obj = tmp_path / "obj.npz"  # an npz whose header and array are pickled objects
    np.savez(
        obj, __header__=np.asarray([_Boom()], dtype=object), a=np.asarray([_Boom()], dtype=object)
    )
    for path in (raw, obj):
        with pytest.raises(StorageError, match=str(path.name)):
            storage.load(path, "test.Thing")
    assert not (tmp_path / "PWNED").exists()


def test_truncated_and_garbage_files_name_the_path(tmp_path):
    good = _save(tmp_path / "f.npz").read_bytes()
    for i, data in enumerate([good[: len(good) // 2], good[:-30], b"hello world\n" * 50, b""]):
        path = tmp_path / f"bad{i}.npz"
        path.write_bytes(data)
        with pytest.raises(StorageError, match=f"bad{i}.npz") as err:
            storage.load(path, "test.Thing")
        assert type(err.value.__cause__) is not StorageError or err.value.__cause__ is None
    # a flipped byte inside an array: the CRC check reports it
    flipped = bytearray(good)
    pos = good.index(np.arange(6.0).tobytes()) + 3
    flipped[pos] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(StorageError, match="flip.npz"):
        storage.load(tmp_path / "flip.npz", "test.Thing")
    with pytest.raises(FileNotFoundError, match="bank: .*missing.npz"):
        storage.load(tmp_path / "missing.npz", "test.Thing", what="bank")


def test_a_small_compressed_archive_cannot_expand_into_gigabytes(tmp_path):
    path = tmp_path / "bomb.npz"
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(2**27, np.uint8))  # 128 MiB of zeros
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__header__.npy", b"x")
        for i in range(4):
            zf.writestr(f"a{i}.npy", buf.getvalue())
    assert path.stat().st_size < 2**20
    with pytest.raises(StorageError, match="512 MiB of contents, more than the 256 MiB"):
        storage.load(path, "test.Thing")


def _writer(path, value, n):
    for _ in range(n):
        storage.save(path, "test.Thing", {"v": np.full(20_000, value)})


def test_concurrent_writers_leave_one_valid_file(tmp_path):
    path = tmp_path / "shared.npz"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, v, 30)) for v in (1.0, 2.0)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    v = storage.load(path, "test.Thing").arrays["v"]
    assert v[0] in (1.0, 2.0) and np.all(v == v[0])
    assert [p.name for p in tmp_path.iterdir()] == ["shared.npz"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_litter(tmp_path):
    path = _save(tmp_path / "f.npz")
    before = path.read_bytes()

    def fail(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        storage.atomic_write(path, fail)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]
    with pytest.raises(TypeError, match="cannot be stored without pickle"):
        storage.save(tmp_path / "o.npz", "test.Thing", {"o": np.asarray([{}], dtype=object)})


class _Net(eqx.Module):
    w: jax.Array
    b: jax.Array
    key: jax.Array
    act: str = eqx.field(static=True, default="tanh")


def test_trees_round_trip_into_a_skeleton_and_refuse_another_structure(tmp_path):
    net = _Net(jnp.arange(6.0).reshape(2, 3), jnp.ones(2, jnp.float32), jax.random.key(3))
    storage.save(tmp_path / "t.npz", "test.Thing", storage.tree_arrays(net))
    rec = storage.load(tmp_path / "t.npz", "test.Thing")
    skeleton = _Net(jnp.zeros((2, 3)), jnp.zeros(2, jnp.float32), jax.random.key(0))
    back = storage.tree_from_arrays(rec.arrays, skeleton, label="t")
    np.testing.assert_array_equal(back.w, net.w)
    assert back.b.dtype == jnp.float32 and back.act == "tanh"
    assert jnp.all(jax.random.key_data(back.key) == jax.random.key_data(net.key))
    wrong = _Net(jnp.zeros((3, 3)), jnp.zeros(2, jnp.float32), jax.random.key(0))
    with pytest.raises(StorageError, match=r"array 0 has shape \(2, 3\).*expected \(3, 3\)"):
        storage.tree_from_arrays(rec.arrays, wrong, label="t")


def test_no_library_module_imports_pickle():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for package in ("brainmass", "inference"):
        for file in sorted((root / package).rglob("*.py")):
            tree = ast.parse(file.read_text(), filename=str(file))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(
                    n.split(".")[0] in ("pickle", "cloudpickle", "dill", "joblib") for n in names
                ):
                    offenders.append(f"{file.relative_to(root)}:{node.lineno}")
    assert not offenders, offenders


_DIGEST_SCRIPT = """
import functools, jax, numpy as np, numpyro.distributions as dist, optax
from brainmass.storage import digest
def summary(x):
    return jax.numpy.sin(x) * np.float64(2.0)
print(digest(dist.Uniform(0.0, 1.0)), digest(dist.Normal(np.zeros(3), 1.0).to_event(1)),
      digest(optax.adam(1e-3)), digest(functools.partial(summary)), digest(summary),
      digest({"b": [1, 2.5], "a": dist.LogNormal(0.0, 1.0)}))
"""


def test_digests_are_equal_across_processes_and_hash_seeds():
    import subprocess
    import sys

    outs = {
        subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT],
            env={**os.environ, "PYTHONHASHSEED": seed, "JAX_PLATFORMS": "cpu"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1, outs
    import numpyro.distributions as dist
    import optax

    d = storage.digest
    assert d(dist.Uniform(0.0, 1.0)) != d(dist.Uniform(0.0, 2.0))
    assert d(dist.Uniform(0.1, 1.0)) != d(dist.LogUniform(0.1, 1.0))
    assert d(optax.adam(1e-3)) != d(optax.adam(1e-2))  # the rate sits 6-8 closures deep
