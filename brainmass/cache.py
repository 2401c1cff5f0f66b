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
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["clear", "compiled", "names"]

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
