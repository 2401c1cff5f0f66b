"""The flat layout of a priors dict (`PriorSpace`): draws as vectors, bijections to the supports."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from numpyro.distributions.transforms import biject_to

import brainmass as bm
from brainmass import storage

from ..priors import Hierarchical, check_prior, check_priors, prior_token


class PriorSpace:
    """The flat layout of a priors dict: every parameter draw as one vector of `d` numbers.

    (Named `PriorSpace`, not `ParameterSpace`: that is `brainmass.fitting.ParameterSpace`,
    the Fitter's bounded search space.)

    Parameters are laid out in the order of `priors`, each flattened (a per-region
    parameter takes `n_regions` entries). Each has a bijection from the real line onto its
    prior's support (`numpyro.distributions.biject_to`), so a density estimated in the
    unconstrained space puts no mass outside the support.

    **Arguments:**

    - `sim`: the `brainmass.Simulator` the priors are over (None: parameters of another
      simulator, any names, no unit or domain checks).
    - `priors`: `{parameter path: NumPyro distribution}` in the parameters' canonical units
      (a `Hierarchical` prior is not a flat prior: use `.expand([n])` per region here, or
      a `CohortModel` for group structure).

    **Attributes:** `paths`, `shapes` (`{path: shape}`), `sizes`, `units`, `names` (one label
    per entry: `"coupling.G"`, `"model.a[3]"`), `d`.
    """

    def __init__(self, sim: bm.Simulator | None, priors: Mapping[str, Any]):
        if sim is None:  # parameters of another simulator: names are free, no units
            if not isinstance(priors, Mapping) or not priors:
                raise ValueError(f"priors: expected a non-empty dict, got {priors!r}.")
            for path, prior in priors.items():
                _check_flat_prior(path, prior, "real", (tuple(prior.shape()),))
            info = {p: type("Info", (), {"unit": ""})() for p in priors}
        else:
            info = check_priors(sim, priors, _check_flat_prior)
        self.priors = dict(priors)
        self.paths = tuple(self.priors)
        self.shapes = {p: tuple(d.batch_shape + d.event_shape) for p, d in self.priors.items()}
        self.sizes = {p: math.prod(s) for p, s in self.shapes.items()}
        self.units = {p: info[p].unit for p in self.paths}
        self.names = [
            p if not s else f"{p}[{i}]" for p, s in self.shapes.items() for i in range(math.prod(s))
        ]
        self.d = len(self.names)

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
