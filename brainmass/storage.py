"""One persistence layer: safe files, atomic writes, fingerprints of the settings.

Everything brainmass and `inference` save (sweep checkpoints, simulation banks,
NUTS checkpoints, posteriors' companions, trained estimators, fits, Trainer
checkpoints) goes through this module, and so shares one format and one set of
guarantees:

- **No pickle.** A file is a NumPy `.npz` archive of plain arrays (numbers,
  booleans, unicode strings) plus one member `__header__`: a JSON document with
  the file's `kind`, the `format` version, the package versions that wrote it, a
  `fingerprint` of every setting that changes the result, and whatever else the
  writer needs. It is read with `allow_pickle=False`; a crafted file runs no code.
  Pytrees (equinox modules, optimiser states, flows) are stored as their array
  leaves (`tree_arrays`) and read back into a skeleton built from the same
  settings (`tree_from_arrays`), as `equinox.tree_deserialise_leaves` does.
- **Atomic, durable writes** (`atomic_write`): a unique temporary file in the
  target's folder, `fsync`, then `os.replace` and an `fsync` of the folder. A
  kill at any moment leaves the previous file or the new one, never half of one;
  two processes writing the same path concurrently leave one of the two valid
  files; a failed write removes its temporary file.
- **Fingerprints that name what differs** (`check_fingerprint`): a resume, a
  merge or a load under other settings is refused with a message listing each
  setting with its saved and current value.
- **Clear errors for damaged files** (`StorageError`, a `ValueError`): a
  truncated, corrupted, foreign or oversized file is an error that names the
  path and what is wrong, never a bare `EOFError` / `BadZipFile`.
- **Bounded memory**: the declared (uncompressed) size of every member is
  checked before anything is read (`max_bytes`), so a small compressed file
  cannot expand into gigabytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
import types
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "Record",
    "StorageError",
    "atomic_path",
    "atomic_write",
    "check_fingerprint",
    "describe",
    "digest",
    "load",
    "save",
    "tree_arrays",
    "tree_from_arrays",
    "versions",
]

FORMAT_VERSION = 1
"""The version of the file layout written by `save` (the `format` field of the header)."""

_HEADER = "__header__"
_MAX_DEPTH = 16  # nesting followed by `digest` (optax keeps a learning rate 6-8 closures deep)
_MIN_BUDGET = 256 * 2**20  # bytes a file may expand to, whatever its size on disk


class StorageError(ValueError):
    """A file that cannot be used: damaged, foreign, too large, or written under other settings.

    The message names the file and what is wrong. A subclass of `ValueError`.
    """


# ----------------------------------------------------------------------------- writing


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file so that readers only ever see the old or the complete new version.

    `write(f)` writes the contents to the open binary file `f`, which is a unique
    temporary file beside `path` (so concurrent writers never share one); the file
    is flushed and `fsync`-ed, then renamed over `path` (`os.replace`, atomic on
    POSIX and Windows) and the folder is `fsync`-ed. If `write` raises, the
    temporary file is removed and the previous `path` is left as it was.

    **Arguments:**

    - `path`: the file to write; its folder is created if missing.
    - `write`: a function of one open binary file.

    **Returns:** `path` as a `Path`.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A unique temporary path to write, renamed over `path` when the block succeeds.

    For writers that want a file name rather than an open file (xarray's
    `to_netcdf`, ...): `with atomic_path(p) as tmp: ds.to_netcdf(tmp)`. On success
    the temporary file is `fsync`-ed and atomically renamed over `path` (see
    `atomic_write`); on any exception it is removed and `path` is left as it was.
    The temporary name keeps `path`'s suffix, for writers that choose a format by it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a saved file is not
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (threads may be saving)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(
    path: str | os.PathLike,
    kind: str,
    arrays: Mapping[str, Any] | None = None,
    *,
    fingerprint: Mapping[str, Any] | None = None,
    header: Mapping[str, Any] | None = None,
) -> Path:
    """Write named arrays and a JSON header to an `.npz` file, atomically.

    **Arguments:**

    - `path`: the file (any suffix; `.npz` is conventional and is not added).
    - `kind`: what the file holds, e.g. `"inference.NPE"`; `load` refuses a file of
      another kind.
    - `arrays`: name -> array-like of numbers, booleans or unicode strings (object
      arrays are refused: they would need pickle). Names must not start with `__`.
    - `fingerprint`: setting name -> value, for every setting that changes the result;
      each value is stored through `describe` (readable for scalars, a digest for
      arrays and functions).
    - `header`: further JSON-serialisable metadata (losses, counts, labels, ...).

    **Returns:** `path` as a `Path`.

    **Raises:** `TypeError` for an object array or a header that is not JSON.
    """
    blobs: dict[str, np.ndarray] = {}
    for name, value in (arrays or {}).items():
        if name.startswith("__"):
            raise ValueError(f"arrays: the name {name!r} is reserved (starts with '__').")
        arr = _plain(value)
        if arr.dtype.kind not in "biufcUS":
            raise TypeError(
                f"arrays[{name!r}]: dtype {arr.dtype} cannot be stored without pickle; "
                "store numbers, booleans or strings."
            )
        blobs[name] = arr
    doc = {
        "kind": kind,
        "format": FORMAT_VERSION,
        "versions": versions(),
        "fingerprint": {k: describe(v) for k, v in (fingerprint or {}).items()},
        **dict(header or {}),
    }
    try:
        text = json.dumps(doc, default=_json_default)
    except (TypeError, ValueError) as err:
        raise TypeError(f"header: not JSON-serialisable ({err}).") from err
    blobs[_HEADER] = np.frombuffer(text.encode(), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **blobs))


def _plain(value: Any) -> np.ndarray:
    if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        value = jax.random.key_data(value)
    return np.asarray(value)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (np.ndarray, jax.Array)):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def versions() -> dict[str, str]:
    """The versions of the packages whose behaviour a saved file depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("brainmass", "jax", "equinox", "numpy", "numpyro", "flowjax", "optax"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Record:
    """What `load` read: the JSON `header` (a dict) and the named `arrays` (NumPy)."""

    header: dict
    arrays: dict[str, np.ndarray]
    path: Path


def load(
    path: str | os.PathLike,
    kind: str,
    *,
    fingerprint: Mapping[str, Any] | None = None,
    what: str = "path",
    hint: str = "",
    max_bytes: int | None = None,
) -> Record:
    """Read a file written by `save`, checking it before using any of it.

    Every array is read at once, so a truncated or corrupted file fails here, with
    its path, rather than halfway through a run.

    **Arguments:**

    - `path`: the file.
    - `kind`: the kind expected (as given to `save`).
    - `fingerprint`: the current settings (as given to `save`); when given, a file
      written under other settings is refused by `check_fingerprint`.
    - `what`: the name of the argument that gave `path`, used in messages.
    - `hint`: appended to the settings-mismatch message (what the user can do).
    - `max_bytes`: the most bytes the arrays may take once read; default
      `max(256 MiB, 2 x the file's size)` (`save` stores arrays uncompressed, so a
      genuine file never expands beyond its size on disk).

    **Returns:** a `Record` (`header`, `arrays`, `path`).

    **Raises:** `FileNotFoundError` when `path` does not exist; `StorageError`
    (a `ValueError`) naming `path` when it is damaged, not a brainmass file, of
    another kind, of a newer format, too large, or was written under other
    settings.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist.")
    label = f"{what}: {path}"
    size = path.stat().st_size
    budget = max(_MIN_BUDGET, 2 * size) if max_bytes is None else int(max_bytes)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            total = sum(info.file_size for info in infos)
            if total > budget:
                raise StorageError(
                    f"{label} declares {total / 2**20:.0f} MiB of contents, more than the "
                    f"{budget / 2**20:.0f} MiB allowed for a file of {size / 2**20:.1f} MiB "
                    "(a damaged or malicious archive: brainmass stores arrays uncompressed, "
                    "so its own files never expand beyond their size)."
                )
            names = [info.filename for info in infos]
            if f"{_HEADER}.npy" not in names:
                raise StorageError(
                    f"{label} is not a {kind} file (no header; members {names[:5]})."
                )
        with np.load(path, allow_pickle=False) as z:
            header = _read_header(z, label)
            _check_kind(header, kind, label)
            arrays = {n: z[n] for n in z.files if n != _HEADER}
    except StorageError:
        raise
    except zipfile.BadZipFile as err:
        raise StorageError(
            f"{label} is not a {kind} file or is truncated/corrupted ({err})."
        ) from err
    except (EOFError, OSError, zlib.error) as err:
        raise StorageError(
            f"{label} is truncated or corrupted ({type(err).__name__}: {err})."
        ) from err
    except ValueError as err:
        reason = str(err)
        if "allow_pickle" in reason or "pickle" in reason:
            reason = "an array header is damaged or holds objects, which brainmass never writes"
        raise StorageError(f"{label} is truncated or corrupted ({reason}).") from err
    if fingerprint is not None:
        check_fingerprint(header.get("fingerprint", {}), fingerprint, label=label, hint=hint)
    return Record(header=header, arrays=arrays, path=path)


def _read_header(z: Any, label: str) -> dict:
    raw = z[_HEADER]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise StorageError(f"{label}: the header is damaged (dtype {raw.dtype}).")
    try:
        header = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StorageError(f"{label}: the header is damaged ({err}).") from err
    if not isinstance(header, dict):
        raise StorageError(f"{label}: the header is damaged (not a JSON object).")
    return header


def _check_kind(header: dict, kind: str, label: str) -> None:
    if header.get("kind") != kind:
        raise StorageError(f"{label} holds a {header.get('kind')!r}, not a {kind!r}.")
    fmt = header.get("format")
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise StorageError(
            f"{label} has file format {fmt!r}; this brainmass reads format {FORMAT_VERSION} "
            "and older. Update brainmass to read it."
        )


# ------------------------------------------------------------------------ fingerprints


def describe(value: Any) -> Any:
    """A JSON value standing for `value` in a fingerprint.

    Numbers, strings, booleans and `None` stay readable (floats rounded to 12
    significant digits, so 0.1 + 0.2 and 0.3 agree); brainunit quantities become
    `"<mantissa> <unit>"`; short tuples and lists of those stay lists; anything
    else (arrays, functions, distributions, equinox modules) becomes
    `"digest:<16 hex>"` (`digest`).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(f"{float(value):.12g}")
    if _is_quantity(value):
        mantissa = np.asarray(value.mantissa)
        if mantissa.size == 1:
            return f"{float(mantissa):.12g} {value.unit}"
        return f"digest:{digest(mantissa)} {value.unit}"
    if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0:
        if not (isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key)):
            return describe(np.asarray(value).item())
    if isinstance(value, (list, tuple)) and len(value) <= 8:
        items = [describe(v) for v in value]
        if all(not isinstance(i, str) or not i.startswith("digest:") for i in items):
            return items
    return f"digest:{digest(value)}"


def _is_quantity(value: Any) -> bool:
    return hasattr(value, "mantissa") and hasattr(value, "unit") and not isinstance(value, type)


def check_fingerprint(
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    label: str,
    hint: str = "",
) -> None:
    """Refuse a file written under other settings, naming each that differs.

    **Arguments:**

    - `saved`: the fingerprint stored in the file (already `describe`d).
    - `current`: setting name -> current value (`describe`d here).
    - `label`: how to name the file in the message (`"checkpoint: run.npz"`).
    - `hint`: what the user can do, appended to the message.

    **Raises:** `StorageError` listing every setting whose saved and current values
    differ (a setting present on one side only counts as differing).
    """
    now = {k: describe(v) for k, v in current.items()}
    differ = []
    for key in sorted(set(now) | set(saved)):
        a, b = saved.get(key, "<not recorded>"), now.get(key, "<not given>")
        if a != b:
            differ.append(f"{key}: saved {_short(a)}, now {_short(b)}")
    if differ:
        msg = f"{label} was written under other settings ({'; '.join(differ)})."
        raise StorageError(f"{msg} {hint}".strip())


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def digest(obj: Any, depth: int = 0, _path: frozenset = frozenset()) -> str:
    """A stable hash (16 hex digits), equal across processes, of a value.

    Handles arrays (dtype, shape and bytes; random keys by their data), numbers and
    strings, mappings and sequences (recursively), Python functions (qualified name,
    bytecode, constants and closure), `functools.partial`, and pytrees such as
    equinox modules or numpyro distributions (tree structure and leaves). Memory
    addresses never enter the hash.
    """
    h = hashlib.sha256()
    if depth > _MAX_DEPTH or id(obj) in _path:  # very deep, or a cycle: its type only
        h.update(type(obj).__qualname__.encode())
        return h.hexdigest()[:16]
    _path = _path | {id(obj)}

    def sub(x: Any) -> str:
        return digest(x, depth + 1, _path)

    if obj is None or isinstance(obj, (str, int, float, bool, complex)):
        h.update(repr(obj).encode())
    elif isinstance(obj, (np.ndarray, jax.Array, np.generic)):
        if isinstance(obj, jax.Array) and jnp.issubdtype(obj.dtype, jax.dtypes.prng_key):
            obj = jax.random.key_data(obj)
        arr = np.asarray(obj)
        h.update(f"{arr.dtype}{arr.shape}".encode() + np.ascontiguousarray(arr).tobytes())
    elif isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            h.update(str(k).encode() + sub(obj[k]).encode())
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            h.update(sub(item).encode())
    elif hasattr(obj, "__code__"):  # a Python function: name, code, closure
        code = obj.__code__
        h.update(f"{getattr(obj, '__module__', '')}.{obj.__qualname__}".encode())
        h.update(_code_digest(code).encode())
        for cell in obj.__closure__ or ():
            try:
                h.update(sub(cell.cell_contents).encode())
            except ValueError:  # an empty cell
                pass
    elif isinstance(obj, functools.partial):
        h.update(sub((obj.func, obj.args, dict(obj.keywords))).encode())
    elif isinstance(obj, (types.ModuleType, type)):  # a module or a class: by name
        name = obj.__qualname__ if isinstance(obj, type) else obj.__name__
        h.update(f"{getattr(obj, '__module__', '')}.{name}".encode())
    elif hasattr(obj, "gather_pytree_data_fields"):  # a numpyro Distribution
        # its flattening order comes from sets (it changes with PYTHONHASHSEED): by name
        names = set(obj.gather_pytree_data_fields()) | set(obj.gather_pytree_aux_fields())
        h.update(f"{type(obj).__module__}.{type(obj).__qualname__}".encode())
        h.update(sub({n: getattr(obj, n, None) for n in sorted(names)}).encode())
    else:  # a pytree (equinox Module, ...) or an opaque object
        leaves, treedef = jax.tree_util.tree_flatten(obj)
        if len(leaves) == 1 and leaves[0] is obj:
            h.update(re.sub(r" at 0x[0-9a-fA-F]+", "", repr(type(obj))).encode())
            if hasattr(obj, "__dict__"):  # a plain object: its attributes
                h.update(sub(_public_attrs(obj)).encode())
        else:
            h.update(re.sub(r" at 0x[0-9a-fA-F]+", "", str(treedef)).encode())
            for leaf in leaves:
                h.update(sub(leaf).encode())
    return h.hexdigest()[:16]


def _public_attrs(obj: Any) -> dict:
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _code_digest(code) -> str:
    h = hashlib.sha256(code.co_code + repr(code.co_names).encode())
    for const in code.co_consts:
        h.update(
            _code_digest(const).encode() if hasattr(const, "co_code") else repr(const).encode()
        )
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------ pytrees


def tree_arrays(tree: Any, prefix: str = "leaf") -> dict[str, np.ndarray]:
    """The array leaves of a pytree as named NumPy arrays (`"<prefix>_00000"`, ...).

    Non-array leaves (Python numbers in static fields, functions) are not stored;
    they come back from the skeleton given to `tree_from_arrays`, as with
    `equinox.tree_serialise_leaves`. Random keys are stored as their key data.
    """
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))
    return {f"{prefix}_{i:05d}": _plain(leaf) for i, leaf in enumerate(leaves)}


def tree_from_arrays(
    arrays: Mapping[str, np.ndarray], like: Any, *, label: str, prefix: str = "leaf"
) -> Any:
    """Fill the array leaves of the skeleton `like` from `tree_arrays` output.

    **Arguments:**

    - `arrays`: the arrays read from a file (other names are ignored).
    - `like`: a pytree of the same structure (built from the same settings); its
      array leaves give the expected shapes and dtypes.
    - `label`: how to name the file in messages.

    **Returns:** `like` with its array leaves replaced (as `jax.numpy` arrays; random
    keys re-wrapped with the skeleton's implementation).

    **Raises:** `StorageError` when the number, shapes or dtypes of the leaves differ
    from the skeleton's (the file was written for another structure).
    """
    dynamic, static = eqx.partition(like, eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(dynamic)
    stored = sorted(n for n in arrays if n.startswith(f"{prefix}_"))
    if len(stored) != len(leaves):
        raise StorageError(
            f"{label} holds {len(stored)} arrays for this object, which has {len(leaves)}: "
            "it was written for another structure (other settings or network size)."
        )
    new = []
    for i, leaf in enumerate(leaves):
        arr = arrays[f"{prefix}_{i:05d}"]
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            ref = jax.random.key_data(leaf)
            _check_leaf(arr, ref.shape, ref.dtype, i, label)
            new.append(jax.random.wrap_key_data(jnp.asarray(arr), impl=jax.random.key_impl(leaf)))
            continue
        _check_leaf(arr, leaf.shape, leaf.dtype, i, label)
        new.append(jnp.asarray(arr) if isinstance(leaf, jax.Array) else np.asarray(arr))
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)


def _check_leaf(arr: np.ndarray, shape: tuple, dtype: Any, i: int, label: str) -> None:
    if tuple(arr.shape) != tuple(shape) or np.dtype(arr.dtype) != np.dtype(dtype):
        raise StorageError(
            f"{label}: array {i} has shape {tuple(arr.shape)} and dtype {arr.dtype}, expected "
            f"{tuple(shape)} and {np.dtype(dtype)}: it was written for another structure."
        )
