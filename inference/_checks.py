"""Argument checks shared by the inference entry points."""

from __future__ import annotations

import numbers
from typing import Any


def check_integers(*specs: tuple[str, Any, int]) -> None:
    """Raise a ValueError naming the first `(name, value, low)` that is not an integer >= low."""
    for name, value, low in specs:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and int(value) == value
        if not ok or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}.")
