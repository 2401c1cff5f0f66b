"""The one cache of compiled functions, held weakly by owner (brainmass and `inference`).

Why it exists: compiling something that runs through a solve (the Fitter's loss and
gradient step, the NUTS step, the MAP optimiser, the posterior predictive, the
starting-point search) takes seconds to minutes, and the same compiled function
serves every dataset of the same shape: the data enter it as an argument.
`nuts(bmodel, data_1, key)` then `nuts(bmodel, data_2, key)` compiles once, and so
do repeated `fitter.fit(...)` calls. The Hessian and Cholesky factor of a
`MAPResult`'s Laplace approximation are kept the same way.

Why here: nothing is stored on the user's objects (a Fitter, a model, a
`MAPResult`); samplers stay pure functions and the objects stay what they were
built as (DESIGN.md, "no caches on user objects"). Everything cached lives in this
module's table, `owner -> {name: value}`.

Why weak: an owner's entries die with it. The table holds the owner by a weak
reference (keyed by `id`, since a `MAPResult` is an unhashable dataclass; the
reference's callback removes the entry when the owner is collected), so a
deleted model frees its compiled samplers. A value must therefore not hold its
owner strongly, or the owner never dies: the functions close over a shallow copy
of their owner (`AbstractBayesianModel.logdensity`, `Fitter`), not the owner.

`clear()` empties the table (tests: "as in a new process").

The table lives as long as the process. Across processes (a script run again, a notebook
restarted, the workers of a cohort study) brainmass keeps JAX's persistent compilation
cache on disk: `enable_compilation_cache` (called when brainmass is imported) points JAX at
a per-user folder, so a program compiled once is read back instead of compiled again. A
NUTS run on a small ODE model spends more CPU compiling than sampling (the DCM-ERP source
of `benchmarks/inference.py`: 37 s of CPU with an empty cache, 11 s with a filled one).
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
import weakref
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

__all__ = [
    "clear",
    "compilation_cache_dir",
    "compiled",
    "enable_compilation_cache",
    "names",
]

CACHE_ENV = "BRAINMASS_COMPILATION_CACHE"
"""Environment variable: a folder for the compilation cache, or `off` to keep none."""

_OFF = ("0", "off", "false", "no", "none", "disabled")

# id(owner) -> (weak reference to the owner, {name: value})
_tables: dict[int, tuple[weakref.ref, dict[Hashable, Any]]] = {}


def _forget(tables: dict, i: int) -> Callable[[weakref.ref], None]:
    """The weak reference's callback: drop the owner's table when the owner is collected.

    It holds the dict it was registered in (at interpreter exit the module's globals are
    gone before the last owners).
    """

    def callback(ref: weakref.ref) -> None:
        entry = tables.get(i)
        if entry is not None and entry[0] is ref:
            del tables[i]

    return callback


def _table(owner: Any, create: bool) -> dict[Hashable, Any] | None:
    i = id(owner)
    entry = _tables.get(i)
    if entry is not None and entry[0]() is owner:
        return entry[1]
    if not create:
        return None
    table: dict[Hashable, Any] = {}
    _tables[i] = (weakref.ref(owner, _forget(_tables, i)), table)
    return table


def compiled(owner: Any, name: Hashable, build: Callable[[], Any]) -> Any:
    """`build()` once per `owner` and `name`; later calls return the same value.

    **Arguments:**

    - `owner`: the object the value belongs to (a Fitter, a model, a `MAPResult`); held
      weakly, its entries are dropped when it is collected.
    - `name`: a hashable key naming the value among the owner's (e.g.
      `("map", "adam", 50, False)`: what the compiled function depends on
      besides the owner and the shapes of its arguments).
    - `build`: `() -> value`, called on the first request. The value must not
      reference `owner` (it would keep it alive).
    """
    table = _table(owner, create=True)
    if name not in table:
        table[name] = build()
    return table[name]


def names(owner: Any) -> list[Hashable]:
    """The names cached for `owner` (empty when none)."""
    table = _table(owner, create=False)
    return [] if table is None else list(table)


def clear(owner: Any = None) -> None:
    """Forget everything cached (`owner=None`) or everything cached for `owner`."""
    if owner is None:
        _tables.clear()
        return
    entry = _tables.get(id(owner))
    if entry is not None and entry[0]() is owner:
        del _tables[id(owner)]


# ----------------------------------------------------------------------------- on disk


def _machine_tag() -> str:
    """A short tag of this machine's architecture and CPU features.

    Executables compiled for one CPU may not run on another (a cluster's login and compute
    nodes sharing a home folder): each kind of machine gets its own folder.
    """
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    digest = hashlib.sha256(f"{platform.machine()}|{flags}".encode()).hexdigest()[:12]
    return f"{platform.machine() or 'unknown'}-{digest}"


def _default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "brainmass" / "jax" / _machine_tag()


def compilation_cache_dir() -> str | None:
    """The folder of JAX's persistent compilation cache in use, or None when there is none."""
    import jax

    return jax.config.jax_compilation_cache_dir


def enable_compilation_cache(
    path: str | os.PathLike | None = None,
    *,
    min_compile_time_s: float = 0.2,
    max_size_bytes: int = 2**31,
) -> Path:
    """Keep compiled programs on disk (JAX's persistent compilation cache) and reuse them.

    brainmass calls this when it is imported, unless the environment variable
    `BRAINMASS_COMPILATION_CACHE` is `off` (or `0`, `false`, `none`) or JAX already has a
    cache folder (`jax_compilation_cache_dir`, `JAX_COMPILATION_CACHE_DIR`): the user's own
    setting wins. `BRAINMASS_COMPILATION_CACHE=/some/folder` chooses the folder.

    **Arguments:**

    - `path`: the folder; None: `$XDG_CACHE_HOME/brainmass/jax/<machine>` (by default
      `~/.cache/brainmass/jax/<machine>`, one folder per CPU architecture and feature set).
    - `min_compile_time_s`: programs that compiled faster than this (s) are not stored
      (JAX's default, 1 s, leaves out most of a small model's programs).
    - `max_size_bytes`: the cache's size limit (bytes); the least recently used entries go
      first. `-1`: no limit (also what JAX does when the `filelock` package is missing).

    **Returns:** the folder.

    JAX reads the setting when it first compiles: enable the cache (or import brainmass)
    before anything is compiled. The cache is trusted code: keep it in a folder only you
    can write to. Results do not depend on it; only compile time does.
    """
    import jax

    folder = Path(path).expanduser() if path is not None else _default_dir()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    if int(max_size_bytes) != -1:
        try:  # JAX evicts old entries only with filelock (a dependency of brainmass)
            import filelock  # noqa: F401
        except ImportError:
            max_size_bytes = -1
    jax.config.update("jax_compilation_cache_max_size", int(max_size_bytes))
    return folder


def _enable_from_environment() -> None:
    """At import: the compilation cache as `BRAINMASS_COMPILATION_CACHE` says (default on)."""
    import jax

    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in _OFF:
        return
    if jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return  # the user's own cache
    try:
        enable_compilation_cache(setting or None)
    except OSError as err:  # a read-only home: run without, and say so once
        warnings.warn(
            f"brainmass: no persistent compilation cache ({err}); programs are compiled in "
            f"every new process. Set {CACHE_ENV} to a writable folder, or to 'off'.",
            RuntimeWarning,
            stacklevel=2,
        )
