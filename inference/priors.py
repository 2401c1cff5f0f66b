"""Priors over simulator parameters: checks against the parameters, and hierarchical priors.

A prior is a NumPyro distribution in the parameter's canonical unit (as listed
by `Simulator.parameter_info()`: time in ms, rates in 1/ms, ...). Its shape
says what is inferred: `()` one shared value, `(n_regions,)` one value per
region (`dist.Normal(0, 1).expand([n_regions])`, or a distribution with
per-region arguments). `Hierarchical` gives per-region (or per-member) values
drawn around a group-level location and scale, parametrised non-centred.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any, final

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

__all__ = ["Hierarchical", "check_prior", "check_priors", "prior_token", "support_bounds"]


@final
class Hierarchical(eqx.Module):
    r"""A non-centred hierarchical prior: members scattered around a group location.

    $$
    \mu \sim \text{loc},\quad s \sim \text{scale},\quad z_k \sim \mathcal N(0, 1),\quad
    \theta_k = T(\mu + s\, z_k),\qquad k = 1..K
    $$

    Sampling $z$ rather than $\theta$ (the non-centred form, default) removes
    the funnel between $s$ and the members that makes NUTS diverge when the
    data say little about each member. When each member is well determined by
    its own data, the centred form ($u_k \sim \mathcal N(\mu, s)$,
    $\theta_k = T(u_k)$; `centered=True`) samples far better, since then $z$
    and $(\mu, s)$ are strongly correlated (Papaspiliopoulos, Roberts & Skold
    2007, Statistical Science 22:59; Betancourt & Girolami 2015).

    **Arguments:**

    - `loc`: prior of the group location $\mu$ (a scalar NumPyro distribution),
      in the unconstrained space of `transform` (with `transform=None`, the
      parameter's own unit).
    - `scale`: prior of the group scale $s > 0$ (e.g. `dist.HalfNormal(0.1)`).
    - `size`: the number of members $K$; default the simulator's number of
      regions (one value per region).
    - `transform`: a NumPyro transform $T$ from the real line to the
      parameter's domain, e.g. `dist.transforms.ExpTransform()` for a positive
      parameter, or `dist.transforms.AffineTransform(...)` composed with a
      sigmoid for a bounded one; default identity (a real parameter).
    - `centered`: sample the members' unconstrained values $u_k$ directly
      (site `"{path}.u"`) instead of the standardised $z_k$.

    The model records sites `"{path}.loc"`, `"{path}.scale"`, `"{path}.z"`
    (or `"{path}.u"`; shape `(K,)`) and the parameter itself, `"{path}"`, as a
    deterministic site.

    An immutable equinox module: the two distributions and the transform are its pytree
    children, `size` and `centered` static.
    """

    loc: Any
    scale: Any
    transform: Any
    size: int | None = eqx.field(static=True)
    centered: bool = eqx.field(static=True)

    def __init__(
        self,
        loc: Any,
        scale: Any,
        *,
        size: int | None = None,
        transform: Any = None,
        centered: bool = False,
    ):
        for name, d in (("loc", loc), ("scale", scale)):
            if not isinstance(d, dist.Distribution):
                raise ValueError(
                    f"Hierarchical {name}: expected a NumPyro distribution, got {d!r}."
                )
            if d.batch_shape + d.event_shape != ():
                raise ValueError(
                    f"Hierarchical {name}: expected a scalar distribution, got shape "
                    f"{d.batch_shape + d.event_shape}."
                )
        lo, _ = support_bounds(scale.support)
        if lo is None or lo < 0:
            raise ValueError(
                f"Hierarchical scale: expected a prior on positive values (HalfNormal, "
                f"Exponential, LogNormal, ...), got {type(scale).__name__} with support "
                f"{scale.support}."
            )
        if size is not None and (int(size) != size or size < 1):
            raise ValueError(f"Hierarchical size: expected a positive integer, got {size!r}.")
        if transform is not None and not isinstance(transform, dist.transforms.Transform):
            raise ValueError(
                f"Hierarchical transform: expected a numpyro.distributions.transforms.Transform "
                f"(or None), got {transform!r}."
            )
        self.loc = loc
        self.scale = scale
        self.size = None if size is None else int(size)
        self.transform = transform
        self.centered = bool(centered)

    @property
    def member_site(self) -> str:
        """Suffix of the members' sampled site: `"z"` (non-centred) or `"u"` (centred)."""
        return "u" if self.centered else "z"

    @property
    def support(self) -> Any:
        """The constraint the members satisfy: the transform's image of the real line.

        The transform's declared codomain where it bounds the values; otherwise (a
        composed transform such as sigmoid then affine declares the last part's
        codomain, the real line) the image of an elementwise monotone transform,
        read off its values at -inf and +inf.
        """
        if self.transform is None:
            return constraints.real
        codomain = self.transform.codomain
        if support_bounds(codomain) != (-math.inf, math.inf):
            return codomain
        with np.errstate(all="ignore"):
            ends = np.asarray(self.transform(jnp.array([-jnp.inf, jnp.inf])), dtype=float)
        if ends.shape != (2,) or np.isnan(ends).any():
            return codomain
        lo, hi = float(ends.min()), float(ends.max())
        if math.isfinite(lo) and math.isfinite(hi):
            return constraints.interval(lo, hi)
        if math.isfinite(lo):
            return constraints.greater_than(lo)
        if math.isfinite(hi):
            return constraints.less_than(hi)
        return codomain

    def sample(self, path: str, size: int) -> Any:
        """Sample the group sites and the members inside a NumPyro model; `(size,)`."""
        mu = numpyro.sample(f"{path}.loc", self.loc)
        s = numpyro.sample(f"{path}.scale", self.scale)
        if self.centered:
            value = numpyro.sample(f"{path}.u", dist.Normal(mu, s).expand([size]))
        else:
            z = numpyro.sample(f"{path}.z", dist.Normal(0.0, 1.0).expand([size]))
            value = mu + s * z
        if self.transform is not None:
            value = self.transform(value)
        return numpyro.deterministic(path, value)

    def __repr__(self) -> str:
        t = "" if self.transform is None else f", transform={self.transform!r}"
        t += ", centered=True" if self.centered else ""
        return f"Hierarchical(loc={self.loc!r}, scale={self.scale!r}, size={self.size}{t})"


def support_bounds(support: Any) -> tuple[float | None, float | None]:
    """(lower, upper) bounds of a NumPyro constraint; None for a constraint that is not an interval.

    `real` is (-inf, inf); `positive` (0, inf); `interval(a, b)` (min a, max b)
    over its entries. Event-wrapped constraints (`independent`) are unwrapped.
    """
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    if support in (constraints.real, constraints.real_vector):
        return -math.inf, math.inf
    lower = getattr(support, "lower_bound", None)
    upper = getattr(support, "upper_bound", None)
    if lower is None and upper is None:
        return None, None
    lo = -math.inf if lower is None else float(np.min(np.asarray(lower)))
    hi = math.inf if upper is None else float(np.max(np.asarray(upper)))
    return lo, hi


_DOMAIN_HELP = {
    "positive": "LogNormal, Gamma, HalfNormal, Exponential or Uniform(low >= 0, high)",
    "nonnegative": "HalfNormal, Exponential, Gamma or Uniform(low >= 0, high)",
    "unit_interval": "Beta or Uniform(low >= 0, high <= 1)",
}


def check_prior(path: str, prior: Any, domain: str, shapes: tuple[tuple[int, ...], ...]) -> None:
    """Raise a ValueError naming `path` when `prior` does not fit the parameter.

    **Arguments:**

    - `path`: the parameter's dotted path (for messages).
    - `prior`: a NumPyro distribution or a `Hierarchical`.
    - `domain`: the parameter's domain (`"real"`, `"positive"`,
      `"nonnegative"`, `"unit_interval"`).
    - `shapes`: the shapes the parameter may take (e.g. `((), (n_regions,))`).
    """
    if isinstance(prior, Hierarchical):
        support, shape = prior.support, (prior.size,) if prior.size is not None else None
    elif isinstance(prior, dist.Distribution):
        support, shape = prior.support, tuple(prior.batch_shape + prior.event_shape)
    else:
        raise ValueError(
            f"priors[{path!r}]: expected a NumPyro distribution (numpyro.distributions) or "
            f"inference.Hierarchical, got {type(prior).__name__}: {prior!r}."
        )
    if shape is not None and shape not in shapes:
        raise ValueError(
            f"priors[{path!r}]: the prior has shape {shape}, expected one of {list(shapes)} "
            "(() for one shared value, (n_regions,) for one per region); use "
            ".expand([n]) or per-region arguments."
        )
    if getattr(prior, "is_discrete", False):
        raise ValueError(f"priors[{path!r}]: a discrete prior cannot drive a simulation.")
    lo, hi = support_bounds(support)
    if domain == "real":
        return
    name = type(prior).__name__
    if lo is None:
        raise ValueError(
            f"priors[{path!r}]: cannot tell whether the support {support} of {name} fits "
            f"the parameter's domain {domain!r}."
        )
    ok = lo >= 0.0 and (domain != "unit_interval" or hi <= 1.0)
    if not ok:
        raise ValueError(
            f"priors[{path!r}]: {name} puts mass on [{lo:g}, {hi:g}], but {path} must be "
            f"{domain.replace('_', ' ')} (e.g. a negative time constant or rate is not a "
            f"model); use {_DOMAIN_HELP[domain]}."
        )


def prior_shape(prior: Any, n_regions: int) -> tuple[int, ...]:
    """The shape of the values a prior gives its parameter."""
    if isinstance(prior, Hierarchical):
        return (prior.size if prior.size is not None else n_regions,)
    return tuple(prior.batch_shape + prior.event_shape)


def sample_prior(path: str, prior: Any, n_regions: int) -> Any:
    """Sample one parameter's prior inside a NumPyro model."""
    if isinstance(prior, Hierarchical):
        return prior.sample(path, prior.size if prior.size is not None else n_regions)
    return jnp.asarray(numpyro.sample(path, prior))


def check_priors(
    sim: Any, priors: Any, check: Callable[[str, Any, str, tuple], None] = check_prior
) -> dict[str, Any]:
    """Check a priors dict against a simulator; returns `{path: ParameterInfo}` of its paths.

    **Arguments:**

    - `sim`: the `brainmass.Simulator` whose parameters the priors are over.
    - `priors`: `{parameter path: NumPyro distribution or Hierarchical}`.
    - `check`: `check(path, prior, domain, shapes)` raising on a prior that does not fit
      (default `check_prior`).

    Raises a ValueError for an empty or non-dict `priors`, an unknown path (with the closest
    names), or a prior whose shape or support does not fit its parameter. A parameter may take
    its current shape, a scalar, or (regional parameters) one value per region.
    """
    if not isinstance(priors, Mapping) or not priors:
        raise ValueError(
            "priors: expected a non-empty dict {parameter path: NumPyro distribution}, "
            f"got {priors!r}."
        )
    info = {p.path: p for p in sim.parameter_info()}
    n = sim.network.n_regions
    for path, prior in priors.items():
        if path not in info:
            close = difflib.get_close_matches(path, list(info), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"priors: the simulator has no parameter {path!r}.{hint} "
                f"Its parameters: {', '.join(info)}."
            )
        shapes = {tuple(np.shape(info[path].value)), ()}
        if not path.startswith(("network.", "noise.", "connectome.")):
            shapes.add((n,))
        check(path, prior, info[path].domain, tuple(sorted(shapes)))
    return {path: info[path] for path in priors}


def prior_token(prior: Any) -> str:
    """A text that identifies a prior by its type, shape and parameter values.

    Equal priors give equal tokens in any process (unlike `repr`, which shows an object's
    address, and unlike NumPyro's pytree flattening, whose field order follows a set of
    names and changes with Python's hash seed); used in the fingerprints of checkpoints
    and simulation banks.
    """
    if isinstance(prior, Hierarchical):
        t = prior.transform
        transform = None if t is None else _value_text(t)
        return (
            f"Hierarchical({prior_token(prior.loc)}, {prior_token(prior.scale)}, "
            f"size={prior.size}, transform={transform}, centered={prior.centered})"
        )
    if isinstance(prior, dist.Distribution):
        base = getattr(prior, "base_dist", None)  # Expanded, Independent, Transformed...
        name = type(prior).__name__ + ("" if base is None else f"[{prior_token(base)}]")
        fields = sorted(type(prior).gather_pytree_data_fields())
        values = [(f, _value_text(prior.__dict__.get(f))) for f in fields if f != "base_dist"]
        return f"{name}{prior.batch_shape}{prior.event_shape}{values!r}"
    return repr(prior)


def _value_text(value: Any) -> Any:
    """A process-independent text of a prior's field: numbers, arrays, priors, transforms."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value)  # Normal(0, 1) and Normal(0.0, 1.0) are the same prior
    if isinstance(value, dist.Distribution):
        return prior_token(value)
    if isinstance(value, dist.transforms.ComposeTransform):
        return ["Compose", *(_value_text(p) for p in value.parts)]
    if isinstance(value, dist.transforms.Transform):
        attrs = sorted(vars(value).items())
        return [type(value).__name__, *((k, _value_text(v)) for k, v in attrs if _is_data(v))]
    if isinstance(value, list | tuple):
        return [_value_text(v) for v in value]
    if hasattr(value, "dtype") or isinstance(value, np.generic):
        arr = np.asarray(value)
        return (arr.astype(float) if arr.dtype.kind in "iuf" else arr).tolist()
    return type(value).__name__


def _is_data(value: Any) -> bool:
    return isinstance(value, int | float | dist.transforms.Transform) or hasattr(value, "dtype")
