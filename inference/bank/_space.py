"""The flat layout of a priors dict (`PriorSpace`): draws as vectors, bijections to the supports."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
from numpyro.distributions.transforms import biject_to

import brainmass as bm
from brainmass import storage

from ..priors import Hierarchical, check_prior, check_priors, prior_token


@final
class PriorSpace(eqx.Module):
    """The flat layout of a priors dict: every parameter draw as one vector of `d` numbers.

    (Named `PriorSpace`, not `ParameterSpace`: that is `brainmass.fitting.ParameterSpace`,
    the Fitter's bounded search space.)

    Parameters are laid out in the order of `priors`, each flattened (a per-region
    parameter takes `n_regions` entries). Each has a bijection from the real line onto its
    prior's support (`numpyro.distributions.biject_to`), so a density estimated in the
    unconstrained space puts no mass outside the support.

    An immutable equinox module: the prior distributions are its pytree children (their
    parameters are leaves, so a space can be passed through `jax.jit`), the layout
    (paths, shapes, units) is static.

    **Arguments:**

    - `sim`: the `brainmass.Simulator` the priors are over (None: parameters of another
      simulator, any names, no unit or domain checks).
    - `priors`: `{parameter path: NumPyro distribution}` in the parameters' canonical units
      (a `Hierarchical` prior is not a flat prior: use `.expand([n])` per region here, or
      a `CohortModel` for group structure).

    **Attributes:** `priors` (`{path: distribution}`, in the given order), `paths`,
    `shapes` (`{path: shape}`), `sizes`, `units`, `names` (one label per entry:
    `"coupling.G"`, `"model.a[3]"`), `d`.
    """

    # the distributions in the order of `paths` (a dict field would be re-sorted by tree
    # operations, and the layout depends on the order)
    _distributions: tuple[Any, ...]
    paths: tuple[str, ...] = eqx.field(static=True)
    _shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    _units: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, sim: bm.Simulator | None, priors: Mapping[str, Any]):
        if sim is None:  # parameters of another simulator: names are free, no units
            if not isinstance(priors, Mapping) or not priors:
                raise ValueError(f"priors: expected a non-empty dict, got {priors!r}.")
            for path, prior in priors.items():
                _check_flat_prior(path, prior, "real", (tuple(prior.shape()),))
            units = {p: "" for p in priors}
        else:
            info = check_priors(sim, priors, _check_flat_prior)
            units = {p: info[p].unit for p in priors}
        self.paths = tuple(priors)
        self._distributions = tuple(priors[p] for p in self.paths)
        self._shapes = tuple(
            tuple(int(n) for n in d.batch_shape + d.event_shape) for d in self._distributions
        )
        self._units = tuple(str(units[p]) for p in self.paths)

    @property
    def priors(self) -> dict[str, Any]:
        """`{path: NumPyro distribution}`, in the layout's order."""
        return dict(zip(self.paths, self._distributions, strict=True))

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """`{path: shape}` of each parameter (`()` for a scalar)."""
        return dict(zip(self.paths, self._shapes, strict=True))

    @property
    def sizes(self) -> dict[str, int]:
        """`{path: number of entries}` in the flat vector."""
        return {p: math.prod(s) for p, s in zip(self.paths, self._shapes, strict=True)}

    @property
    def units(self) -> dict[str, str]:
        """`{path: canonical unit}` (`""` without a simulator or for dimensionless ones)."""
        return dict(zip(self.paths, self._units, strict=True))

    @property
    def names(self) -> list[str]:
        """One label per entry of the flat vector: `"coupling.G"`, `"model.a[3]"`."""
        return [
            p if not s else f"{p}[{i}]"
            for p, s in zip(self.paths, self._shapes, strict=True)
            for i in range(math.prod(s))
        ]

    @property
    def d(self) -> int:
        """The length of the flat vector."""
        return sum(math.prod(s) for s in self._shapes)

    @property
    def _transforms(self):
        return {p: biject_to(d.support) for p, d in self.priors.items()}

    def sample(self, key: Any, n: int) -> jax.Array:
        """`n` prior draws as a flat array `(n, d)` (canonical units); jit-able."""
        keys = jax.random.split(key, len(self.paths))
        parts = [
            self.priors[p].sample(k, (n,)).reshape(n, self.sizes[p])
            for p, k in zip(self.paths, keys, strict=True)
        ]
        return jnp.concatenate([jnp.asarray(a, dtype=float) for a in parts], axis=-1)

    def split(self, theta: Any) -> dict[str, Any]:
        """Flat `(..., d)` -> `{path: (..., *shape)}`."""
        theta = jnp.asarray(theta)
        out, start = {}, 0
        for p in self.paths:
            size = self.sizes[p]
            out[p] = theta[..., start : start + size].reshape(theta.shape[:-1] + self.shapes[p])
            start += size
        return out

    def join(self, values: Mapping[str, Any]) -> jax.Array:
        """`{path: (..., *shape)}` -> flat `(..., d)`; a clear error for a missing path."""
        missing = [p for p in self.paths if p not in values]
        if missing:
            raise ValueError(f"theta: expected values for {list(self.paths)}, missing {missing}.")
        parts = []
        for p in self.paths:
            v = jnp.asarray(values[p], dtype=float)
            batch = v.shape[: v.ndim - len(self.shapes[p])]
            if v.shape[len(batch) :] != self.shapes[p]:
                raise ValueError(
                    f"theta[{p!r}]: expected trailing shape {self.shapes[p]}, got {v.shape}."
                )
            parts.append(v.reshape(batch + (self.sizes[p],)))
        batch = jnp.broadcast_shapes(*(a.shape[:-1] for a in parts))
        return jnp.concatenate([jnp.broadcast_to(a, batch + a.shape[-1:]) for a in parts], -1)

    def unconstrain(self, theta: Any) -> jax.Array:
        """Flat constrained `(..., d)` -> flat unconstrained `(..., d)`."""
        parts = self.split(theta)
        t = self._transforms
        return self._flat({p: t[p].inv(v) for p, v in parts.items()})

    def constrain(self, z: Any) -> tuple[jax.Array, jax.Array]:
        """Flat unconstrained `(..., d)` -> (flat constrained `(..., d)`, log |d theta / d z|)."""
        parts = self.split(z)
        t = self._transforms
        values, logdet = {}, 0.0
        for p, v in parts.items():
            y = t[p](v)
            values[p] = y
            ld = t[p].log_abs_det_jacobian(v, y)
            logdet = logdet + _sum_last(ld, len(self.shapes[p]))
        return self._flat(values), logdet

    def log_prior(self, theta: Any) -> jax.Array:
        """The prior log density of flat `(..., d)` draws, `(...)`."""
        total = 0.0
        for p, v in self.split(theta).items():
            prior = self.priors[p]
            total = total + _sum_last(prior.log_prob(v), len(prior.batch_shape))
        return total

    def _flat(self, values: Mapping[str, Any]) -> jax.Array:
        return jnp.concatenate(
            [
                jnp.reshape(values[p], jnp.shape(values[p])[: jnp.ndim(values[p]) - len(s)] + (-1,))
                for p, s in self.shapes.items()
            ],
            -1,
        )

    def token(self) -> str:
        """A text identifying the layout and the priors (for fingerprints)."""
        return repr([(p, self.shapes[p], prior_token(d)) for p, d in self.priors.items()])

    def fingerprint(self) -> str:
        """The `"priors"` entry of a bank's `fingerprint`: a digest of `token()`.

        Equal for equal priors in any process; compare it with
        `bank.fingerprint["priors"]` to check a bank was drawn under these priors.
        """
        return f"digest:{storage.digest(self.token())}"

    def __repr__(self) -> str:
        layout = ", ".join(f"{p}{list(s)}" for p, s in self.shapes.items())
        return f"PriorSpace({layout}, d={self.d})"


def _sum_last(a: Any, n: int) -> jax.Array:
    """Sum over the last `n` axes (none for n = 0)."""
    return jnp.sum(a, axis=tuple(range(-n, 0))) if n else a


def _check_flat_prior(path, prior, domain, shapes) -> None:
    if isinstance(prior, Hierarchical):
        raise ValueError(
            f"priors[{path!r}]: simulation-based inference takes plain NumPyro distributions "
            "(a per-region parameter: dist.Uniform(lo, hi).expand([n_regions])); hierarchical "
            "group structure belongs in inference.CohortModel (with a learned likelihood, NLE)."
        )
    check_prior(path, prior, domain, shapes)
