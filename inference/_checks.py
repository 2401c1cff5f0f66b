"""Argument checks shared by the inference entry points."""

from __future__ import annotations

from typing import Any

from brainmass.checks import check_int


def check_integers(*specs: tuple[str, Any, int]) -> None:
    """Check several `(name, value, low)` at once with `brainmass.checks.check_int`."""
    for name, value, low in specs:
        check_int(value, name, low)
