"""Sweep checkpoints on disk: `_Checkpoint` and the stable hashes that fingerprint a sweep.

A checkpoint is one `.npz` file or a directory of one file per chunk, written
atomically after every chunk through `brainmass.storage`. `_digest`
(`storage.digest`) hashes arrays, callables and pytrees stably across
processes, so a resumed sweep can tell whether a checkpoint holds the same
sweep.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import storage


class _Checkpoint:
    """Finished chunks on disk: one `.npz` file, or a directory of one file per chunk.

    Every file is a `brainmass.storage` file (arrays plus a JSON header, no pickle),
    written atomically (a unique temporary file, fsync, rename), so an interruption
    or a second writer never leaves a half-written checkpoint.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.single = self.path.suffix == ".npz"
        self.meta_path = self.path if self.single else self.path / "sweep.npz"

    def exists(self) -> bool:
        return self.meta_path.exists()

    def clear(self) -> None:
        if self.single:
            self.path.unlink(missing_ok=True)
            return
        self.meta_path.unlink(missing_ok=True)
        for f in self.path.glob("chunk_*.npz"):
            f.unlink()

    def resume(self, fingerprint: dict, chunk_size: int | None, resume: bool):
        """`(meta, finished chunks)` of a matching checkpoint; `({}, {})` when starting over."""
        if not self.exists():
            return {}, {}
        if not resume:
            self.clear()
            return {}, {}
        meta, chunks = self.read()
        current = dict(fingerprint)
        if chunk_size is not None:
            current["chunk_size"] = chunk_size
        saved = dict(meta["fingerprint"], chunk_size=meta["chunk_size"])
        if chunk_size is None:
            saved.pop("chunk_size")
        storage.check_fingerprint(
            saved,
            current,
            label=f"checkpoint: {self.path} holds a different sweep: it",
            hint="To start over, pass resume=False (it is overwritten), delete it, or choose "
            "another checkpoint.",
        )
        return meta, chunks

    def _load(self, path: Path, kind: str) -> storage.Record:
        return storage.load(path, kind, what="checkpoint")

    def read(self) -> tuple[dict, dict[int, dict[str, np.ndarray]]]:
        """`(meta, {chunk: {name: array of the chunk's points}})`."""
        if self.single:
            record = self._load(self.path, _KIND)
            meta = record.header
            arrays = {n: record.arrays[f"v{i}"] for i, n in enumerate(meta["names"])}
            size, n = meta["chunk_size"], meta["n_points"]
            chunks = {
                c: {k: a[c * size : min(n, (c + 1) * size)] for k, a in arrays.items()}
                for c in meta["done"]
            }
            return meta, chunks
        meta = self._load(self.meta_path, _KIND).header
        chunks = {}
        for f in sorted(self.path.glob("chunk_*.npz")):
            record = self._load(f, _CHUNK_KIND)
            if record.header.get("sweep") != meta["fingerprint"]:
                raise storage.StorageError(
                    f"checkpoint: {f} belongs to another sweep than {self.meta_path}; "
                    "delete the folder or choose another checkpoint."
                )
            chunks[int(f.stem.split("_")[1])] = {
                n: record.arrays[f"v{i}"] for i, n in enumerate(meta["names"])
            }
        return meta, chunks

    def save(self, meta: dict, chunk: int, arrays: dict[str, np.ndarray], start: int, stop: int):
        """Record a finished chunk (`arrays`: all points; rows `start:stop` are the chunk's)."""
        names = meta["names"]
        header = {k: v for k, v in meta.items() if k != "fingerprint"}
        if self.single:
            blobs = {f"v{i}": arrays[n] for i, n in enumerate(names)}
            storage.save(self.path, _KIND, blobs, fingerprint=meta["fingerprint"], header=header)
            return
        if not self.meta_path.exists():
            header.pop("done")
            storage.save(self.meta_path, _KIND, fingerprint=meta["fingerprint"], header=header)
        blobs = {f"v{i}": arrays[n][start:stop] for i, n in enumerate(names)}
        sweep = {k: storage.describe(v) for k, v in meta["fingerprint"].items()}
        storage.save(
            self.path / f"chunk_{chunk:06d}.npz", _CHUNK_KIND, blobs, header={"sweep": sweep}
        )


_KIND = "brainmass.sweep checkpoint"
_CHUNK_KIND = "brainmass.sweep chunk"
