"""A run's fingerprint and its checkpoint file (`brainmass.storage`): save, load, restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from brainmass import storage

from ..priors import prior_token
from ._backends import STATS, _typed

_KIND = "inference.nuts checkpoint"
_HINT = "The file belongs to another run: delete it or pass another checkpoint path."


def _fingerprint(bmodel, data, key, settings, init, batch) -> dict[str, Any]:
    """Every setting that changes a run's draws, by name (see `brainmass.storage`).

    The simulator's own settings (`Simulator.fingerprint`: `dt`, `duration`, `solver`,
    `monitor`, `network`, ...; its initial state as `sim.init`), the model's priors and
    likelihood (digests of their process-independent tokens), its reparametrisations
    (when it has any), the data (a digest), the key (its data, readable), every sampler
    setting (`num_samples` included: a finished run is not grown) and the starting
    points `init`.
    """
    sim_settings = dict(bmodel.sim.fingerprint())
    sim_settings["sim.init"] = sim_settings.pop("init")  # `init` names nuts' own argument
    lik = bmodel.likelihood
    noise = sorted((k, prior_token(v)) for k, v in lik.noise_parameters().items())
    priors = sorted((p, prior_token(v)) for p, v in bmodel.priors.items())
    named = {
        "model": repr(bmodel),
        **sim_settings,
        "priors": f"digest:{storage.digest(priors)}",
        "likelihood": f"{type(lik).__name__} digest:{storage.digest((lik.token(), noise))}",
        "conditional_on_noise": bool(bmodel.conditional_on_noise),
        "noise_key": None if bmodel.noise_key is None else _key_text(bmodel.noise_key),
        "data": f"digest:{storage.digest(jax.tree.map(np.asarray, data))}",
        "key": _key_text(key),
        **settings,
        "batch": bool(batch),
        "init": _init_text(init),
    }
    if bmodel.reparam:  # only when given: checkpoints written without the field still resume
        named["reparam"] = _reparam_text(bmodel.reparam)
    return {k: storage.describe(v) for k, v in named.items()}  # digests computed once


def _reparam_text(reparam: dict[str, Any]) -> str:
    """The reparametrisations by site, class and settings (their `vars`), readable."""
    parts = [
        f"{site}: {type(how).__name__}({sorted((k, repr(v)) for k, v in vars(how).items())})"
        for site, how in sorted(reparam.items())
    ]
    return "; ".join(parts) or "none"


def _init_text(init) -> Any:
    """`init` in a fingerprint: None or a string as it is; starting values as a digest.

    A `MAPResult` (or a list of them) counts by its mode `z`: the Laplace draws around
    it are fixed by the mode, the model, the data and the key (its wall time is not).
    """
    from ..map import MAPResult

    if init is None or isinstance(init, str):
        return init
    if isinstance(init, MAPResult):
        return f"MAPResult digest:{storage.digest(np.asarray(init.z))}"
    if isinstance(init, list) and all(isinstance(r, MAPResult) for r in init):
        return f"list[MAPResult] digest:{storage.digest([np.asarray(r.z) for r in init])}"
    return f"{type(init).__name__} digest:{storage.digest(init)}"


def _key_text(key) -> list[int]:
    """A random key's data as a short list of integers (readable in messages)."""
    return np.asarray(jax.random.key_data(_typed(key))).ravel().tolist()


class _Checkpoint:
    """The sampler's state, the draws so far and the counts, in one `brainmass.storage` file.

    Arrays: the state's leaves (`state_*`, restored into the skeleton a fresh start
    builds), the draws after warmup `draws ([subjects,] chains, n, d)` and the sample
    statistics `stat_<name> ([subjects,] chains, n)`; header: `done` (iterations, warmup
    included) and `warmup_divergent`.
    """

    def __init__(self, path: Path):
        self.path = path

    def load(self, fingerprint: dict) -> storage.Record | None:
        """The saved record, or None without a file; a StorageError for another run's file."""
        if not self.path.exists():
            return None
        return storage.load(
            self.path, _KIND, fingerprint=fingerprint, what="checkpoint", hint=_HINT
        )

    def restore(self, record: storage.Record, like: Any):
        """`(state, done, draws, stats)` of a record; `like` is a fresh state (the skeleton)."""
        label = f"checkpoint: {self.path}"
        state = storage.tree_from_arrays(record.arrays, like, label=label, prefix="state")
        arrays = record.arrays
        draws, stats = [], []
        if "draws" in arrays:
            draws.append(arrays["draws"])
            names = record.header["stats"]
            missing = [n for n in STATS if n not in names or f"stat_{n}" not in arrays]
            if missing:
                raise storage.StorageError(
                    f"{label} lacks the statistics {missing} (written by an older version "
                    "or damaged); delete it to start the run again."
                )
            stats.append({n: arrays[f"stat_{n}"] for n in names})
        return state, int(record.header["done"]), draws, stats

    def save(self, fingerprint, state, done, draws, stats, warmup_divergent=0, init=None):
        """Write the state and everything drawn so far (atomically: the old file or the new).

        `init`: how the chains started (`nuts`'s `info["init"]` records, one per
        subject), kept so that a resumed run reports it too.
        """
        arrays = storage.tree_arrays(state, prefix="state")
        names = list(stats[0]) if stats else []
        if draws:
            arrays["draws"] = np.concatenate(draws, axis=-2)
            for n in names:
                arrays[f"stat_{n}"] = np.concatenate([s[n] for s in stats], axis=-1)
        header = {"done": int(done), "warmup_divergent": int(warmup_divergent), "stats": names}
        if init is not None:
            header["init"] = init
        storage.save(self.path, _KIND, arrays, fingerprint=fingerprint, header=header)
