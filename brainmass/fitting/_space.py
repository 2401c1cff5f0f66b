r"""Free parameters of a fit and the unconstrained space the optimisers search.

Each free parameter is declared by a transform from an unconstrained value
$z \in \mathbb{R}$ to the parameter $\theta$:

- `Bounded(low, high)`: $\theta = low + (high - low)\,\sigma(z)$, the logistic
  sigmoid, so $\theta$ never leaves $(low, high)$;
- `Positive()`: $\theta = e^{z}$ (equal relative steps, for rates, gains and
  time constants);
- `Unbounded()`: $\theta = z$.

`ParameterSpace` lays the free parameters out as one flat vector `z` of
length `size` (a scalar takes one entry, a per-region field `n_regions`), in
the order given, and maps it to the `theta` dict that `Simulator.function`
takes.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..simulator import Simulator
from ..units import format_unit, to_canonical

__all__ = ["AbstractParameter", "Bounded", "Positive", "Unbounded", "ParameterSpace"]


class AbstractParameter(eqx.Module):
    """How one free parameter is searched: its transform, initial value and shape.

    **Fields:** `init` (the initial value in the parameter's unit, a quantity,
    or None for the simulator's current value) and `per_region` (True: one
    value per region, a field of `n_regions` values; False: one shared
    value).
    """

    init: Any
    per_region: bool = eqx.field(static=True)

    @abc.abstractmethod
    def forward(self, z: Any, bounds: tuple[float, float] | None) -> Any:
        """The parameter value of the unconstrained value `z` (elementwise)."""

    @abc.abstractmethod
    def inverse(self, theta: Any, bounds: tuple[float, float] | None) -> Any:
        """The unconstrained value of the parameter value `theta` (elementwise)."""

    @abc.abstractmethod
    def random_start(self, key: Any, z0: Any, bounds: tuple[float, float] | None) -> Any:
        """A random unconstrained starting point of the shape of `z0` (for multi-start)."""

    def raw_bounds(self) -> tuple[Any, Any] | None:
        """The `(low, high)` as given (quantities or numbers), or None."""
        return None


@final
class Bounded(AbstractParameter):
    r"""A parameter in the open interval `(low, high)`: $\theta = low + (high - low)\,\sigma(z)$.

    **Arguments:**

    - `low`, `high`: the bounds, in the parameter's unit (quantities or
      numbers in its canonical unit), `low < high`.
    - `init`: the initial value, strictly inside the bounds; default the
      simulator's current value (which must then lie inside).
    - `per_region`: fit one value per region (default False: one shared value).

    Random starts (`num_starts > 1`) are drawn uniformly in `(low, high)`.
    """

    low: Any
    high: Any

    def __init__(self, low: Any, high: Any, *, init: Any = None, per_region: bool = False):
        self.low = low
        self.high = high
        self.init = init
        self.per_region = bool(per_region)

    def raw_bounds(self) -> tuple[Any, Any]:
        """The `(low, high)` as given."""
        return self.low, self.high

    def forward(self, z, bounds):
        """`low + (high - low) * sigmoid(z)`."""
        low, high = bounds
        return low + (high - low) * jax.nn.sigmoid(z)

    def inverse(self, theta, bounds):
        """`logit((theta - low) / (high - low))`."""
        low, high = bounds
        p = (theta - low) / (high - low)
        return jnp.log(p) - jnp.log1p(-p)

    def random_start(self, key, z0, bounds):
        """Uniform in the open interval, mapped to z."""
        p = jax.random.uniform(key, jnp.shape(z0), minval=0.02, maxval=0.98)
        return jnp.log(p) - jnp.log1p(-p)


@final
class Positive(AbstractParameter):
    r"""A positive parameter searched on a log scale: $\theta = e^{z}$.

    **Arguments:**

    - `init`: the initial value (> 0); default the simulator's current value.
    - `per_region`: fit one value per region (default False).

    Random starts multiply the initial value by $e^{u}$, $u$ uniform in
    $(-\log 3, \log 3)$ (a factor of three either way).
    """

    def __init__(self, *, init: Any = None, per_region: bool = False):
        self.init = init
        self.per_region = bool(per_region)

    def forward(self, z, bounds):
        """`exp(z)`."""
        return jnp.exp(z)

    def inverse(self, theta, bounds):
        """`log(theta)`."""
        return jnp.log(theta)

    def random_start(self, key, z0, bounds):
        """`z0` plus a uniform offset of up to log 3."""
        return z0 + jax.random.uniform(key, jnp.shape(z0), minval=-math.log(3), maxval=math.log(3))


@final
class Unbounded(AbstractParameter):
    r"""A real parameter searched as it is: $\theta = z$.

    **Arguments:**

    - `init`: the initial value; default the simulator's current value.
    - `per_region`: fit one value per region (default False).
    - `scale`: the spread of random starts, `init + scale * N(0, 1)` (in the
      parameter's unit; default 1).
    """

    scale: Any

    def __init__(self, *, init: Any = None, per_region: bool = False, scale: Any = 1.0):
        self.init = init
        self.per_region = bool(per_region)
        self.scale = scale

    def forward(self, z, bounds):
        """`z`."""
        return z

    def inverse(self, theta, bounds):
        """`theta`."""
        return jnp.asarray(theta)

    def random_start(self, key, z0, bounds):
        """`z0 + scale * N(0, 1)`."""
        return z0 + jnp.asarray(self.scale) * jax.random.normal(key, jnp.shape(z0))


class _Entry(eqx.Module):
    path: str = eqx.field(static=True)
    parameter: AbstractParameter
    shape: tuple[int, ...] = eqx.field(static=True)
    offset: int = eqx.field(static=True)
    bounds: tuple[float, float] | None = eqx.field(static=True)
    unit: str = eqx.field(static=True)
    z0: Any

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@final
class ParameterSpace(eqx.Module):
    """The free parameters of a fit as one flat unconstrained vector `z`.

    **Arguments:**

    - `sim`: the `Simulator` whose parameters are fitted.
    - `params`: `{path: parameter}` with `Bounded`, `Positive` or `Unbounded`
      values, in the order of `z`. Paths are those of `sim.params()`; matrix
      parameters (`connectome.*`) cannot be fitted this way.

    **Attributes:** `paths`, `size` (the length of `z`), `units` (`{path:
    unit name}`), `z0` (the initial `z`, shape `(size,)`).
    """

    entries: tuple[_Entry, ...]
    size: int = eqx.field(static=True)

    def __init__(self, sim: Simulator, params: Mapping[str, AbstractParameter]):
        if not isinstance(sim, Simulator):
            raise ValueError(f"sim: expected a brainmass.Simulator, got {sim!r}.")
        if not isinstance(params, Mapping) or not params:
            raise ValueError(
                "params: expected a non-empty dict {path: bm.Bounded(...) | bm.Positive() | "
                f"bm.Unbounded()}}, e.g. {{'coupling.G': bm.Bounded(0.0, 1.0)}}; got {params!r}."
            )
        specs = {path: sim.spec(path) for path in params}  # unknown paths: a clear error
        n_regions = sim.network.n_regions
        entries, offset = [], 0
        for path, parameter in params.items():
            if not isinstance(parameter, AbstractParameter):
                raise ValueError(
                    f"params[{path!r}]: expected bm.Bounded(low, high), bm.Positive() or "
                    f"bm.Unbounded(), got {parameter!r}."
                )
            if path.startswith("connectome."):
                raise ValueError(
                    f"params[{path!r}]: a matrix cannot be a free parameter of a fit; fit "
                    "coupling.G (scales the weights) or network.speed (scales the delays)."
                )
            spec = specs[path]
            current = np.asarray(spec.value, dtype=float)
            if parameter.per_region and path.startswith(("network.", "noise.")):
                raise ValueError(
                    f"params[{path!r}]: per_region=True needs a model, coupling or monitor "
                    "parameter; this one is shared by the network."
                )
            shape = (n_regions,) if parameter.per_region else ()
            bounds = _bounds(parameter, spec.unit, path)
            if isinstance(parameter, Unbounded):
                parameter = _canonical_scale(parameter, spec.unit, path)
            z0 = parameter.inverse(_initial(parameter, current, spec, shape, bounds, path), bounds)
            entries.append(
                _Entry(path, parameter, shape, offset, bounds, format_unit(spec.unit), z0)
            )
            offset += math.prod(shape)
        self.entries = tuple(entries)
        self.size = offset

    @property
    def paths(self) -> tuple[str, ...]:
        """The fitted parameter paths, in the order of `z`."""
        return tuple(e.path for e in self.entries)

    @property
    def units(self) -> dict[str, str]:
        """`{path: unit name}` of the fitted parameters (canonical units)."""
        return {e.path: e.unit for e in self.entries}

    @property
    def z0(self) -> Any:
        """The initial unconstrained vector, shape `(size,)`."""
        return jnp.concatenate([jnp.reshape(e.z0, (-1,)) for e in self.entries])

    def to_theta(self, z: Any) -> dict[str, Any]:
        """The parameter dict of an unconstrained vector `z` `(size,)` (canonical units)."""
        theta = {}
        for e in self.entries:
            block = jax.lax.dynamic_slice_in_dim(z, e.offset, e.size)
            theta[e.path] = e.parameter.forward(jnp.reshape(block, e.shape), e.bounds)
        return theta

    def to_z(self, theta: Mapping[str, Any]) -> Any:
        """The unconstrained vector `(size,)` of a parameter dict (values in canonical units)."""
        blocks = []
        for e in self.entries:
            value = jnp.broadcast_to(jnp.asarray(theta[e.path], dtype=float), e.shape)
            blocks.append(jnp.reshape(e.parameter.inverse(value, e.bounds), (-1,)))
        return jnp.concatenate(blocks)

    def random_starts(self, key: Any, n: int) -> Any:
        """`n` starting points `(n, size)`: the initial point first, then random ones."""
        if n == 1:
            return self.z0[None]
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(n - 1))
        blocks = [
            jax.vmap(
                lambda k, j=j, e=e: jnp.reshape(
                    e.parameter.random_start(jax.random.fold_in(k, j), e.z0, e.bounds), (-1,)
                )
            )(keys)
            for j, e in enumerate(self.entries)
        ]
        return jnp.concatenate([self.z0[None], jnp.concatenate(blocks, axis=1)])

    def box(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Lower and upper bounds of the parameter values `(size,)`, or None unless all Bounded."""
        if not all(e.bounds is not None for e in self.entries):
            return None
        low = np.concatenate([np.full(e.size, e.bounds[0]) for e in self.entries])
        high = np.concatenate([np.full(e.size, e.bounds[1]) for e in self.entries])
        return low, high

    def theta_to_vector(self, theta: Mapping[str, Any]) -> np.ndarray:
        """The parameter values of a dict as one flat vector `(size,)` (canonical units)."""
        blocks = [np.broadcast_to(np.asarray(theta[e.path], float), e.shape) for e in self.entries]
        return np.concatenate([b.ravel() for b in blocks])

    def vector_to_theta(self, x: Any) -> dict[str, Any]:
        """The inverse of `theta_to_vector`."""
        x = jnp.asarray(x)
        return {
            e.path: jnp.reshape(jax.lax.dynamic_slice_in_dim(x, e.offset, e.size), e.shape)
            for e in self.entries
        }


def _bounds(parameter: AbstractParameter, unit, path: str) -> tuple[float, float] | None:
    raw = parameter.raw_bounds()
    if raw is None:
        return None
    low, high = (float(np.asarray(to_canonical(v, unit, f"params[{path!r}]"))) for v in raw)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(
            f"params[{path!r}]: expected finite bounds low < high, got ({low}, {high})."
        )
    return low, high


def _canonical_scale(parameter: Unbounded, unit, path: str) -> Unbounded:
    """The parameter with its `scale` as a float in the canonical unit (> 0)."""
    scale = np.asarray(to_canonical(parameter.scale, unit, f"params[{path!r}].scale"), float)
    if not (scale.ndim == 0 and math.isfinite(scale) and scale > 0):
        raise ValueError(
            f"params[{path!r}].scale: expected a finite scalar spread > 0, got {parameter.scale!r}."
        )
    return Unbounded(init=parameter.init, per_region=parameter.per_region, scale=float(scale))


def _initial(parameter, current, spec, shape, bounds, path) -> np.ndarray:
    """The initial value, broadcast to `shape` and checked against the transform's domain."""
    name = f"params[{path!r}].init"
    if parameter.init is None:
        value = current
        source = f"the simulator's current value {np.round(current, 6).tolist()}"
    else:
        value = np.asarray(to_canonical(parameter.init, spec.unit, name), dtype=float)
        source = f"init = {np.round(value, 6).tolist()}"
    if value.ndim == 1 and value.size > 1 and shape == ():
        if not np.allclose(value, value[0]):
            raise ValueError(
                f"{name}: {path!r} holds one value per region ({source}); fit it with "
                "per_region=True, or give a scalar init."
            )
        value = value[0]
    if value.size == 1:
        value = value.reshape(())
    if value.shape not in ((), shape):
        raise ValueError(f"{name}: expected a scalar or shape {shape}, got {value.shape}.")
    value = np.broadcast_to(value, shape).astype(float)
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name}: expected finite values, got {source}.")
    if bounds is not None and not np.all((value > bounds[0]) & (value < bounds[1])):
        raise ValueError(
            f"{name}: {source} is not strictly inside the bounds ({bounds[0]}, {bounds[1]}) "
            f"of {path!r}; pass init= inside them."
        )
    if isinstance(parameter, Positive) and not np.all(value > 0):
        raise ValueError(f"{name}: a Positive parameter needs an initial value > 0, got {source}.")
    if spec.domain == "positive" and bounds is not None and bounds[0] < 0:
        raise ValueError(
            f"params[{path!r}]: {path} must be positive, but the bounds ({bounds[0]}, "
            f"{bounds[1]}) allow negative values; use low >= 0 or bm.Positive()."
        )
    return value
