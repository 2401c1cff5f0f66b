"""Argument checks shared by brainmass and `inference`: one message for one mistake.

Every public entry point checks its arguments with these functions, so that the
same mistake gives the same error everywhere: a `ValueError` that names the
argument, says what was expected and shows what was given.

The vocabulary they enforce (see docs/api.md, "Conventions"):

- Randomness comes only from `jax.random` keys, always in an argument named `key`
  (`jax.random.key(seed)`; raw `jax.random.PRNGKey` keys are accepted). An integer
  seed is not a key: the error says how to make one.
- Counts of work to do are `num_*` (`num_samples`, `num_chains`, `num_starts`,
  `num_simulations`); sizes of data are `n_*` (`n_regions`, `n_trials`).
- Values in a parameter's domain (`"real"`, `"positive"`, `"nonnegative"`,
  `"unit_interval"`) are checked where they are concrete; traced values pass.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import numpy as np

from ._params import check_domain

__all__ = ["check_domain", "check_int", "check_key", "is_key"]


def is_key(key: Any) -> bool:
    """Whether `key` is a `jax.random` key: typed (`jax.random.key`) or raw uint32 `(..., 2)`."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return True
    shape = getattr(key, "shape", None)
    return dtype == np.uint32 and bool(shape) and shape[-1] == 2


def check_key(key: Any, name: str = "key", *, optional: bool = False) -> Any:
    """`key` itself if it is a `jax.random` key, else a ValueError naming `name`.

    **Arguments:**

    - `key`: the value to check.
    - `name`: the argument's name, for the message.
    - `optional`: accept `None` (returned as it is), for calls where randomness is
      only needed sometimes (a deterministic simulator).

    **Returns:** `key` unchanged.

    **Raises:** `ValueError` naming `name`: for an integer seed, the message says to
    pass `jax.random.key(seed)`; for anything else it shows the type or shape given.
    """
    if key is None and optional:
        return None
    if is_key(key):
        return key
    shape, dtype = getattr(key, "shape", None), getattr(key, "dtype", None)
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        hint = f"pass jax.random.key({int(key)}) instead of the integer {int(key)}"
    elif key is None:
        hint = "got None; pass jax.random.key(seed)"
    elif shape is not None:
        hint = f"got an array of shape {tuple(shape)} and dtype {dtype}"
    else:
        hint = f"got {type(key).__name__} {key!r}"
    raise ValueError(f"{name}: expected a jax.random key (jax.random.key(seed)); {hint}.")


def check_int(value: Any, name: str, minimum: int = 0) -> int:
    """`value` as an `int` if it is a whole number >= `minimum`, else a ValueError naming `name`.

    Integers (Python or NumPy) and whole floats (`1e4`, as in `num_simulations=1e4`) are
    accepted; booleans, fractions, NaN and infinities are not.
    """
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and bool(np.isfinite(value))
        and int(value) == value
    )
    if not ok or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}.")
    return int(value)
