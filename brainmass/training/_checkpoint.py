"""`_CheckpointFile`: the atomic, fingerprinted checkpoint file of `Trainer.fit`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import storage

_KIND = "brainmass.Trainer checkpoint"
_HINT = (
    "Resume with the same data, key, network and settings (only `epochs` may change), "
    "or choose another path."
)


class _CheckpointFile:
    """One `brainmass.storage` file: the trees' array leaves plus a JSON header."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def write(self, fingerprint: dict, meta: dict, trees: Any) -> None:
        storage.save(
            self.path, _KIND, storage.tree_arrays(trees), fingerprint=fingerprint, header=meta
        )

    def read(self, fingerprint: dict, like: Any) -> tuple[dict, Any]:
        record = storage.load(
            self.path, _KIND, fingerprint=fingerprint, what="checkpoint", hint=_HINT
        )
        trees = storage.tree_from_arrays(record.arrays, like, label=f"checkpoint: {self.path}")
        return record.header, trees
