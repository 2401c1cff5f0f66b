"""Where chains start: around the priors' medians, at given values, or around a MAP mode."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .. import _cache
from ..model import LogDensity
from ._lanes import _Lanes


def _initial_points(bmodel, data, ld: LogDensity, init, key, num_chains: int, lanes: _Lanes):
    """Flat unconstrained starting points `([subjects,] num_chains, d)`, finite log density."""
    from ..map import MAPResult, map_estimate

    batched = lanes.subjects is not None
    if isinstance(init, str):
        if init != "map":
            raise ValueError(f"init: expected None, 'map', a MAPResult or a dict, got {init!r}.")
        init = map_estimate(bmodel, data, key, progress=False, batch=batched)
    given = None  # (points ([subjects,] chains, d), centres ([subjects,] d))
    if isinstance(init, list) and all(isinstance(r, MAPResult) for r in init):
        keys = jax.random.split(key, len(init))
        points = jnp.stack(
            [r.laplace_points(k, num_chains) for r, k in zip(init, keys, strict=True)]
        )
        given = points, jnp.stack([jnp.asarray(r.z) for r in init])
    elif isinstance(init, MAPResult):
        points = init.laplace_points(key, num_chains)
        given = _broadcast_subjects(points, lanes), _broadcast_subjects(jnp.asarray(init.z), lanes)
    elif isinstance(init, Mapping):
        flat = bmodel.flatten(init)
        points = flat[None, :] + 0.01 * jax.random.normal(key, (num_chains, ld.size))
        given = _broadcast_subjects(points, lanes), _broadcast_subjects(flat, lanes)
    if given is not None:
        return _finite_starts(bmodel, ld, data, *given, batched)
    if init is not None:
        raise ValueError(f"init: expected None, 'map', a MAPResult or a dict, got {init!r}.")
    # around the priors' medians: uniform jitter of +-1 in the unconstrained space, keeping
    # points with a finite log density (a start where the simulation fails stalls a chain)
    n_try = 4 * num_chains
    cand = ld.init[None, :] + jax.random.uniform(key, (n_try, ld.size), minval=-1.0, maxval=1.0)
    cand = jnp.concatenate([ld.init[None, :], cand])
    evaluate = _cache.compiled(
        bmodel,
        ("initial_lp", batched),
        lambda: jax.jit(
            jax.vmap(jax.vmap(ld.fn_data, (0, None)), (None, 0))
            if batched
            else jax.vmap(ld.fn_data, (0, None))
        ),
    )
    lp = np.asarray(evaluate(cand, data)).reshape(-1, cand.shape[0])
    out = []
    for i, row in enumerate(lp):
        good = np.flatnonzero(np.isfinite(row))
        if good.size == 0:
            raise RuntimeError(
                f"nuts: no starting point with a finite log density{f' (subject {i})' * batched} "
                "near the priors' medians (the simulation fails or the data are impossible "
                "there); pass init= values that work, or init='map'."
            )
        out.append(cand[np.resize(good[1:] if good.size > 1 else good, num_chains)])
    return jnp.stack(out) if batched else out[0]


def _finite_starts(bmodel, ld, data, points, centres, batched):
    """Replace starting points with a -inf log density by their centre; error if that fails too."""
    evaluate = _cache.compiled(
        bmodel,
        ("start_lp", batched),
        lambda: jax.jit(
            jax.vmap(jax.vmap(ld.fn_data, (0, None)))
            if batched
            else jax.vmap(ld.fn_data, (0, None))
        ),
    )
    lp = np.asarray(evaluate(points if batched else points, data))
    centre_lp = np.asarray(evaluate(centres[..., None, :], data))[..., 0]
    if not np.all(np.isfinite(centre_lp)):
        raise ValueError(
            "init: the log density is -inf at the given starting values (the simulation fails "
            "there, or the data are impossible); start from values where the model runs."
        )
    bad = ~np.isfinite(lp)
    return jnp.where(jnp.asarray(bad)[..., None], centres[..., None, :], points)


def _broadcast_subjects(points, lanes: _Lanes):
    if lanes.subjects is None:
        return points
    return jnp.broadcast_to(points, (lanes.subjects, *points.shape))
