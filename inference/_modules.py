"""What inference's equinox modules share: `evolve`, a copy with some fields replaced."""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx

__all__ = ["evolve"]


def evolve(module: eqx.Module, **changes: Any) -> Any:
    """A copy of an equinox module with some fields replaced (static ones too).

    `dataclasses.replace` would call the module's own `__init__`, whose arguments are
    not its fields; this copies the fields and runs the module's `__check_init__`.
    """
    names = {f.name for f in dataclasses.fields(module)}
    unknown = set(changes) - names
    if unknown:
        raise TypeError(f"{type(module).__name__} has no fields {sorted(unknown)}.")
    new = object.__new__(type(module))
    for name in names:
        object.__setattr__(new, name, changes.get(name, getattr(module, name)))
    for cls in type(module).__mro__:
        check = cls.__dict__.get("__check_init__")
        if check is not None:
            check(new)
    return new
