"""Declaring physical parameters on equinox Modules.

`param(default, unit=..., domain=..., doc=...)` declares a Module field that

- accepts a brainunit quantity or a plain number/array in the canonical `unit`
  and stores a plain JAX array (conversion once, at construction);
- carries its unit, domain and a one-line description as field metadata, so
  that `Simulator.params()` can list it and inference can check priors;
- names itself (`Owner.field`) in error messages.

Modules that declare parameters this way inherit from `ParameterModule`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import brainunit as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .units import format_unit, to_canonical

Domain = Literal["real", "positive", "nonnegative", "unit_interval"]
DOMAINS: tuple[str, ...] = ("real", "positive", "nonnegative", "unit_interval")

__all__ = ["param", "ParameterModule", "parameter_fields", "check_domain", "Domain"]


class _Convert:
    """Field converter: unit conversion that knows its field's name."""

    def __init__(self, unit: u.Unit | None):
        self.unit = unit
        self.name = "parameter"

    def __call__(self, value: Any) -> Any:
        return to_canonical(value, self.unit, self.name)


def param(
    default: Any,
    *,
    unit: u.Unit | None = None,
    domain: Domain = "real",
    doc: str = "",
) -> Any:
    """Declare a physical parameter field of a `ParameterModule`.

    **Arguments:**

    - `default`: the literature default, in `unit`.
    - `unit`: canonical unit of the parameter (`None`: dimensionless).
    - `domain`: the set of admissible values: `"real"`, `"positive"`,
      `"nonnegative"` or `"unit_interval"` ([0, 1]); checked at construction for
      concrete values, and used to check that priors fit the parameter.
    - `doc`: one line saying what the parameter is.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain: expected one of {DOMAINS}, got {domain!r}")
    conv = _Convert(unit)
    return eqx.field(
        default=default,
        converter=conv,
        metadata={"unit": unit, "domain": domain, "doc": doc, "is_param": True, "_conv": conv},
    )


def parameter_fields(cls_or_obj) -> list[dataclasses.Field]:
    """The fields of a module declared with `param`, in declaration order."""
    return [f for f in dataclasses.fields(cls_or_obj) if f.metadata.get("is_param", False)]


def check_domain(value: Any, domain: str, name: str) -> None:
    """Raise a ValueError naming `name` when a concrete `value` is outside `domain`."""
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got {_short(arr)}.")
    bad = {
        "real": None,
        "positive": arr <= 0,
        "nonnegative": arr < 0,
        "unit_interval": (arr < 0) | (arr > 1),
    }[domain]
    if bad is not None and np.any(bad):
        expected = {"positive": "> 0", "nonnegative": ">= 0", "unit_interval": "in [0, 1]"}[domain]
        raise ValueError(f"{name}: expected values {expected}, got {_short(arr)}.")


def _short(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return repr(arr.item())
    return f"an array of shape {arr.shape} (min {np.nanmin(arr):.4g}, max {np.nanmax(arr):.4g})"


class ParameterModule(eqx.Module):
    """Base for modules with `param` fields: names converters, checks domains."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for key, value in list(cls.__dict__.items()):
            if isinstance(value, dataclasses.Field) and "_conv" in value.metadata:
                value.metadata["_conv"].name = f"{cls.__name__}.{key}"

    def __check_init__(self):
        for f in parameter_fields(self):
            value = getattr(self, f.name)
            check_domain(value, f.metadata["domain"], f"{type(self).__name__}.{f.name}")

    def parameters(self) -> dict[str, jax.Array]:
        """The parameter values by field name, in canonical units."""
        return {f.name: getattr(self, f.name) for f in parameter_fields(self)}

    def parameter_units(self) -> dict[str, str]:
        """The canonical unit of each parameter, as printable strings."""
        return {f.name: format_unit(f.metadata["unit"]) for f in parameter_fields(self)}


def broadcast_to_regions(value: Any, n_regions: int, name: str) -> None:
    """Check that a parameter is a scalar or has one value per region."""
    shape = jnp.shape(value)
    if shape not in ((), (1,), (n_regions,)):
        raise ValueError(
            f"{name}: expected a scalar or one value per region (shape ({n_regions},)), "
            f"got shape {shape}."
        )
