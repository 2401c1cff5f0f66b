"""`SimulationBank`: parameter draws and their summaries, saved and loaded via `storage`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brainmass import storage

from ._space import PriorSpace

_KIND = "inference.SimulationBank"
_MAY_DIFFER_IN_MERGE = ("key", "proposal")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class SimulationBank:
    """Parameter draws and the summaries of their simulations (the failed ones dropped).

    **Attributes:**

    - `theta`: `(n, d)` flat parameter draws in canonical units (layout: `names`).
    - `x`: `(n, *shape)` summary features of each draw's simulation.
    - `names`: the `d` parameter labels; `paths`, `shapes`: the layout (see
      `PriorSpace`).
    - `n_failed`: simulations dropped because their output or summary was not finite.
    - `n_chunks`, `chunk_size`: chunks simulated so far and their size.
    - `fingerprint`: the settings the bank was made under, by name (JSON values, as
      `brainmass.storage.describe` writes them): `"priors"` (`PriorSpace.fingerprint`),
      the simulator's (`dt`, `duration`, `solver`, `monitor`, `network`, ...: see
      `Simulator.fingerprint`), `"summary"`, `"params"`, `"proposal"` and `"key"`. A bank
      from `from_arrays` records only `"priors"` and `"summary": "given"`.
    - `info`: wall time, simulations per second, summary description.
    """

    theta: np.ndarray
    x: np.ndarray
    names: list[str]
    paths: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    n_failed: int = 0
    n_chunks: int = 0
    chunk_size: int = 0
    fingerprint: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.theta.shape[0])

    @classmethod
    def from_arrays(cls, theta: Any, x: Any, space: PriorSpace) -> SimulationBank:
        """A bank from arrays made elsewhere: `theta (n, d)` in `space`'s layout, `x (n, ...)`.

        Rows where either is not finite are dropped and counted in `n_failed`.
        """
        theta, x = np.asarray(theta, dtype=float), np.asarray(x, dtype=float)
        if theta.ndim != 2 or theta.shape[1] != space.d:
            raise ValueError(f"theta: expected shape (n, {space.d}), got {theta.shape}.")
        if x.ndim < 2 or x.shape[0] != theta.shape[0]:
            raise ValueError(
                f"x: expected shape ({theta.shape[0]}, ...) (one row per theta), got {x.shape}."
            )
        ok = np.all(np.isfinite(theta), 1) & np.all(np.isfinite(x.reshape(len(x), -1)), 1)
        return cls(
            theta=theta[ok],
            x=x[ok],
            names=list(space.names),
            paths=space.paths,
            shapes=dict(space.shapes),
            n_failed=int((~ok).sum()),
            fingerprint={"priors": space.fingerprint(), "summary": "given"},
            info={"summary": "given"},
        )

    @property
    def n_attempted(self) -> int:
        """Simulations run, failed ones included."""
        return len(self) + self.n_failed

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank to `path` (`.npz` added if missing) through `brainmass.storage`.

        Atomic and durable (a unique temporary file, fsync, rename): readers see the old
        file or the new one, and concurrent writers of one path leave one valid file.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        header = {
            "names": list(self.names),
            "paths": list(self.paths),
            "shapes": {p: list(self.shapes[p]) for p in self.paths},
            "n_failed": int(self.n_failed),
            "n_chunks": int(self.n_chunks),
            "chunk_size": int(self.chunk_size),
            "info": self.info,
        }
        return storage.save(
            path,
            _KIND,
            {"theta": self.theta, "x": self.x},
            fingerprint=self.fingerprint,
            header=header,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimulationBank:
        """Read a bank written by `save`.

        **Raises:** `FileNotFoundError`; `brainmass.storage.StorageError` (a `ValueError`)
        naming `path` for a damaged, truncated or foreign file.
        """
        return cls._from_record(storage.load(path, _KIND))

    @classmethod
    def _from_record(cls, record: storage.Record) -> SimulationBank:
        h, a = record.header, record.arrays
        try:
            paths = tuple(str(p) for p in h["paths"])
            bank = cls(
                theta=np.asarray(a["theta"]),
                x=np.asarray(a["x"]),
                names=[str(n) for n in h["names"]],
                paths=paths,
                shapes={p: tuple(int(n) for n in h["shapes"][p]) for p in paths},
                n_failed=int(h["n_failed"]),
                n_chunks=int(h["n_chunks"]),
                chunk_size=int(h["chunk_size"]),
                fingerprint=dict(h.get("fingerprint", {})),
                info=dict(h.get("info", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise storage.StorageError(
                f"path: {record.path} is not a complete simulation bank ({err!r} missing or bad)."
            ) from err
        if bank.theta.ndim != 2 or len(bank.x) != len(bank.theta):
            raise storage.StorageError(
                f"path: {record.path}: theta {bank.theta.shape} and x {bank.x.shape} do not "
                "form a bank (n, d) and (n, ...)."
            )
        return bank

    def merge(self, *others: SimulationBank) -> SimulationBank:
        """Concatenate this bank and `others`, made under the same settings.

        The priors, simulator, summary and `params` must agree (a `ValueError` names each
        setting that differs); the key and proposal may differ (banks drawn with other keys,
        or the rounds of sequential NPE). Where they differ the merged bank records
        `"merged"` for them, so it cannot be resumed by `simulate_bank`.
        """
        fingerprint = dict(self.fingerprint)
        for i, o in enumerate(others):
            if not isinstance(o, SimulationBank):
                raise ValueError(f"others[{i}]: expected a SimulationBank, got {o!r}.")
            differ = []
            for k in sorted(set(self.fingerprint) | set(o.fingerprint)):
                a = self.fingerprint.get(k, "<not recorded>")
                b = o.fingerprint.get(k, "<not recorded>")
                if a == b:
                    continue
                if k in _MAY_DIFFER_IN_MERGE:
                    fingerprint[k] = "merged"
                else:
                    differ.append(f"{k}: this bank {_short(a)}, others[{i}] {_short(b)}")
            if differ:
                raise ValueError(
                    f"others[{i}]: a bank made under other settings cannot be merged "
                    f"({'; '.join(differ)})."
                )
        banks = (self, *others)
        return SimulationBank(
            theta=np.concatenate([b.theta for b in banks]),
            x=np.concatenate([b.x for b in banks]),
            names=list(self.names),
            paths=self.paths,
            shapes=dict(self.shapes),
            n_failed=sum(b.n_failed for b in banks),
            n_chunks=sum(b.n_chunks for b in banks),
            chunk_size=self.chunk_size,
            fingerprint=fingerprint,
            info=dict(self.info),
        )

    def __repr__(self) -> str:
        rate = self.info.get("simulations_per_s")
        rate = f", {rate:.3g} simulations/s" if rate else ""
        return (
            f"SimulationBank({len(self)} simulations of {len(self.names)} parameters, x "
            f"{self.x.shape[1:]}, {self.n_failed} failed{rate})"
        )
