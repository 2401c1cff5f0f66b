"""Sweep checkpoints on disk: `_Checkpoint` and the stable hashes that fingerprint a sweep.

A checkpoint is one `.npz` file or a directory of one file per chunk, written
atomically after every chunk. `_digest` hashes arrays, callables and pytrees
stably across processes, so a resumed sweep can tell whether a checkpoint
holds the same sweep.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _digest(obj: Any, depth: int = 0) -> str:
    """A stable (across processes) hash of arrays, callables and plain containers."""
    h = hashlib.sha256()
    if depth > 4:
        h.update(type(obj).__qualname__.encode())
    elif obj is None or isinstance(obj, (str, int, float, bool, complex)):
        h.update(repr(obj).encode())
    elif isinstance(obj, (np.ndarray, jax.Array, np.generic)):
        if isinstance(obj, jax.Array) and jnp.issubdtype(obj.dtype, jax.dtypes.prng_key):
            obj = jax.random.key_data(obj)
        arr = np.asarray(obj)
        h.update(f"{arr.dtype}{arr.shape}".encode() + np.ascontiguousarray(arr).tobytes())
    elif isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            h.update(str(k).encode() + _digest(obj[k], depth + 1).encode())
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            h.update(_digest(item, depth + 1).encode())
    elif hasattr(obj, "__code__"):  # a Python function: name, code, closure
        code = obj.__code__
        h.update(f"{getattr(obj, '__module__', '')}.{obj.__qualname__}".encode())
        h.update(_code_digest(code).encode())
        for cell in obj.__closure__ or ():
            try:
                h.update(_digest(cell.cell_contents, depth + 1).encode())
            except ValueError:  # an empty cell
                pass
    elif hasattr(obj, "func") and hasattr(obj, "keywords"):  # functools.partial
        h.update(_digest((obj.func, obj.args, dict(obj.keywords)), depth + 1).encode())
    else:  # a pytree (equinox Module, ...) or an opaque object
        leaves, treedef = jax.tree_util.tree_flatten(obj)
        if len(leaves) == 1 and leaves[0] is obj:
            h.update(re.sub(r" at 0x[0-9a-fA-F]+", "", repr(type(obj))).encode())
        else:
            h.update(re.sub(r" at 0x[0-9a-fA-F]+", "", str(treedef)).encode())
            for leaf in leaves:
                h.update(_digest(leaf, depth + 1).encode())
    return h.hexdigest()[:16]


def _code_digest(code) -> str:
    h = hashlib.sha256(code.co_code + repr(code.co_names).encode())
    for const in code.co_consts:
        h.update(
            _code_digest(const).encode() if hasattr(const, "co_code") else repr(const).encode()
        )
    return h.hexdigest()[:16]


class _Checkpoint:
    """Finished chunks on disk: one `.npz` file, or a directory of one file per chunk.

    Every write goes to a temporary file in the same folder, then `os.replace`s
    the target, so an interruption never leaves a half-written checkpoint.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.single = self.path.suffix == ".npz"
        self.meta_path = self.path if self.single else self.path / "sweep.json"

    def exists(self) -> bool:
        return self.meta_path.exists()

    def clear(self) -> None:
        if self.single:
            self.path.unlink(missing_ok=True)
            return
        self.meta_path.unlink(missing_ok=True)
        for f in self.path.glob("chunk_*.npz"):
            f.unlink()

    def _write(self, target: Path, write: Callable) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, target)

    def resume(self, fingerprint: dict, chunk_size: int | None, resume: bool):
        """`(meta, finished chunks)` of a matching checkpoint; `({}, {})` when starting over."""
        if not self.exists():
            return {}, {}
        if not resume:
            self.clear()
            return {}, {}
        meta, chunks = self.read()
        differ = [k for k in fingerprint if meta["fingerprint"].get(k) != fingerprint[k]]
        if chunk_size is not None and chunk_size != meta["chunk_size"]:
            differ.append("chunk_size")
        if differ:
            raise ValueError(
                f"checkpoint_path: {self.path} holds a different sweep ({', '.join(differ)} "
                "differ). To start over, pass resume=False (it is overwritten), delete it, or "
                "choose another checkpoint_path."
            )
        return meta, chunks

    def read(self) -> tuple[dict, dict[int, dict[str, np.ndarray]]]:
        """`(meta, {chunk: {name: array of the chunk's points}})`."""
        if self.single:
            with np.load(self.path, allow_pickle=False) as z:
                meta = json.loads(str(z["__meta__"]))
                arrays = {n: z[f"v{i}"] for i, n in enumerate(meta["names"])}
            size, n = meta["chunk_size"], meta["n_points"]
            chunks = {
                c: {k: a[c * size : min(n, (c + 1) * size)] for k, a in arrays.items()}
                for c in meta["done"]
            }
            return meta, chunks
        meta = json.loads(self.meta_path.read_text())
        chunks = {}
        for f in self.path.glob("chunk_*.npz"):
            with np.load(f, allow_pickle=False) as z:
                chunks[int(f.stem.split("_")[1])] = {
                    n: z[f"v{i}"] for i, n in enumerate(meta["names"])
                }
        return meta, chunks

    def save(self, meta: dict, chunk: int, arrays: dict[str, np.ndarray], start: int, stop: int):
        """Record a finished chunk (`arrays`: all points; rows `start:stop` are the chunk's)."""
        names = meta["names"]
        if self.single:
            blobs = {f"v{i}": arrays[n] for i, n in enumerate(names)}
            blobs["__meta__"] = np.asarray(json.dumps(meta))
            self._write(self.path, lambda f: np.savez(f, **blobs))
            return
        if not self.meta_path.exists():
            text = json.dumps({k: v for k, v in meta.items() if k != "done"}).encode()
            self._write(self.meta_path, lambda f: f.write(text))
        blobs = {f"v{i}": arrays[n][start:stop] for i, n in enumerate(names)}
        self._write(self.path / f"chunk_{chunk:06d}.npz", lambda f: np.savez(f, **blobs))
