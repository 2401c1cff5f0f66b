"""A bank's fingerprint: every setting that changes its rows, by name (see `brainmass.storage`)."""

from __future__ import annotations

import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import brainmass as bm
from brainmass import storage

from ._space import PriorSpace
from ._summary import _FunctionSummary


def _function_text(fn: Any) -> str | None:
    """A function's name and a digest of its code and closure (None for None)."""
    if fn is None:
        return None
    name = getattr(fn, "__qualname__", type(fn).__name__)
    try:
        return f"{name} digest:{storage.digest(_without_modules(fn))}"
    except Exception:  # an object the digest cannot read: its code alone
        code = getattr(fn, "__code__", None)
        return f"{name} code digest:{storage.digest(None if code is None else code.co_code)}"


def _without_modules(fn: Any, depth: int = 0) -> Any:
    """`fn` with the modules it closes over (`jax`, `np`, ...) replaced by their names.

    A module is code, not data: only its name identifies it (walking its attributes
    would be slow and meets objects a digest cannot read). Nested closures likewise.
    """
    if isinstance(fn, types.MethodType):  # a bound method: its function and its object
        return (_without_modules(fn.__func__, depth + 1), fn.__self__)
    if not isinstance(fn, types.FunctionType) or not fn.__closure__ or depth > 4:
        return fn
    cells = []
    for cell in fn.__closure__:
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            value = None
        if isinstance(value, types.ModuleType):
            value = f"module {value.__name__}"
        else:
            value = _without_modules(value, depth + 1)
        cells.append(types.CellType(value))
    out = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, tuple(cells)
    )
    out.__qualname__, out.__module__ = fn.__qualname__, fn.__module__
    return out


def _summary_text(summary: Any) -> str:
    """The summary's class, settings and bound signal as a name and a digest."""
    if hasattr(summary, "_config"):  # an inference.summaries statistic: its settings
        state = (repr(summary), summary._period, summary._signal_shape, summary._config())
    elif isinstance(summary, _FunctionSummary):  # a wrapped function: its code and closure
        state = (repr(summary), summary.shape, _without_modules(summary.fn))
    else:  # another object with the summary methods
        state = (repr(summary), summary)
    return f"{type(summary).__name__} digest:{storage.digest(state)}"


def _fingerprint(
    space: PriorSpace, summary: Any, sim: bm.Simulator, params, proposal, key
) -> dict[str, Any]:
    """Every setting that changes a bank's rows, by name, as `storage.describe` writes them."""
    settings = {
        "priors": space.fingerprint(),
        **sim.fingerprint(),  # dt, duration, solver, monitor, network, ...
        "summary": _summary_text(summary),
        "params": _function_text(params),
        "proposal": _function_text(proposal),
        "key": np.asarray(jax.random.key_data(_typed_key(key))).ravel().tolist(),
    }
    return {k: storage.describe(v) for k, v in settings.items()}


def _typed_key(key: Any) -> Any:
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(jnp.asarray(key, dtype=jnp.uint32))
