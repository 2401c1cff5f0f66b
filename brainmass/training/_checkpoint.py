"""`_CheckpointFile`: the atomic, fingerprinted checkpoint file of `Trainer.fit`."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import equinox as eqx

_CHECKPOINT_FORMAT = "brainmass.Trainer/1"


class _CheckpointFile:
    """One file: an 8-byte header length, a JSON header, then `eqx.tree_serialise_leaves`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def write(self, fingerprint: dict, meta: dict, trees: Any) -> None:
        header = json.dumps(
            {"format": _CHECKPOINT_FORMAT, "fingerprint": fingerprint, **meta}
        ).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            eqx.tree_serialise_leaves(f, trees)
        os.replace(tmp, self.path)

    def read(self, fingerprint: dict, like: Any) -> tuple[dict, Any]:
        with open(self.path, "rb") as f:
            try:
                (size,) = struct.unpack("<Q", f.read(8))
                meta = json.loads(f.read(size))
            except (struct.error, ValueError, UnicodeDecodeError) as err:
                raise ValueError(
                    f"checkpoint: {self.path} is not a brainmass Trainer checkpoint ({err})."
                ) from err
            if meta.get("format") != _CHECKPOINT_FORMAT:
                raise ValueError(
                    f"checkpoint: {self.path} is not a brainmass Trainer checkpoint "
                    f"(format {meta.get('format')!r})."
                )
            differ = [k for k in fingerprint if meta["fingerprint"].get(k) != fingerprint[k]]
            if differ:
                raise ValueError(
                    f"checkpoint: {self.path} was written by a run with other settings "
                    f"({', '.join(differ)} differ); resume with the same data, key, network "
                    "and settings (only `epochs` may change), or choose another path."
                )
            try:
                trees = eqx.tree_deserialise_leaves(f, like)
            except Exception as err:
                raise ValueError(f"checkpoint: {self.path} cannot be read ({err}).") from err
        return meta, trees
