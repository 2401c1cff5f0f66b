"""Where chains start: a multi-start MAP's best mode (default), the priors, given values."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .. import _cache
from ..model import LogDensity
from ._lanes import _Lanes

# NUTS's default start: a multi-start MAP with this many starts (one vmapped optimiser)
MAP_STARTS = 16
# ... stopped once no start's log density rose by more than this (nats) over 50 steps
MAP_TOL = 0.01
# Newton steps that finish each start's climb (Adam leaves ill-conditioned modes unfinished)
MAP_NEWTON = 8
# a mode other than the best that carries at least this share of the Laplace mass is
# reported (MultimodalWarning, info["init"]["modes"])
MODE_WEIGHT = 0.01


def _initial_points(
    bmodel,
    data,
    ld: LogDensity,
    init,
    key,
    num_chains: int,
    lanes: _Lanes,
    modes: str = "best",
    newton: int = MAP_NEWTON,
):
    """Starting points and how they were found.

    Returns flat unconstrained points `([subjects,] num_chains, d)` with a finite log
    density; a list (one per subject) of records `{"method", "modes", "chain_modes"}`
    (the MAP's modes as plain numbers, see `MAPResult.modes`, and the mode each chain
    starts in; empty for other starts); and the covariance each chain's metric starts
    from, `([subjects,] num_chains, d, d)` (the Laplace covariance of its mode; None
    when the start is not a MAP). `modes`: `"best"` (every chain at the best mode) or
    `"all"` (chains spread over the modes that carry mass, best first). `newton`: the
    MAP's Newton steps (`nuts` passes 0 for a diagonal metric, which the warmup
    re-estimates anyway: the finished mode matters for a kept dense Laplace metric).
    """
    from ..map import MAPResult, map_estimate

    batched = lanes.subjects is not None
    n_subjects = lanes.subjects if batched else 1
    if init is None or (isinstance(init, str) and init == "map"):
        init = map_estimate(
            bmodel,
            data,
            key,
            num_starts=MAP_STARTS,
            progress=False,
            batch=batched,
            tol=MAP_TOL,
            newton=newton,
        )
    results = init if isinstance(init, list) else [init] * n_subjects
    if len(results) == n_subjects and all(isinstance(r, MAPResult) for r in results):
        keys = jax.random.split(key, n_subjects)
        drawn = [_map_points(r, k, num_chains, modes) for r, k in zip(results, keys, strict=True)]
        points, centres, metric = (jnp.stack([x[j] for x in drawn]) for j in range(3))
        records = [
            dict(
                method="map",
                modes=[m.summary() for m in r.modes],
                chain_modes=x[3],
                map_steps=int(np.shape(r.history)[0]),
                laplace=bool(x[4]),
            )
            for r, x in zip(results, drawn, strict=True)
        ]
        if not batched:
            points, centres, metric = points[0], centres[0], metric[0]
        return _finite_starts(bmodel, ld, data, points, centres, batched), records, metric
    if isinstance(init, Mapping):
        flat = bmodel.flatten(init)
        points = flat[None, :] + 0.01 * jax.random.normal(key, (num_chains, ld.size))
        centres = jnp.broadcast_to(flat, points.shape)
        records = [dict(method="values", modes=[], chain_modes=[])] * n_subjects
        starts = _finite_starts(
            bmodel,
            ld,
            data,
            _broadcast_subjects(points, lanes),
            _broadcast_subjects(centres, lanes),
            batched,
        )
        return starts, records, None
    if not (isinstance(init, str) and init == "prior"):
        raise ValueError(
            "init: expected 'map', 'prior', a MAPResult (a list of them, one per subject, "
            f"with batch=True) or a dict of values, got {init!r}."
        )
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
    records = [dict(method="prior", modes=[], chain_modes=[])] * len(out)
    return (jnp.stack(out) if batched else out[0]), records, None


def _map_points(result, key, num_chains: int, modes: str):
    """Where the chains start around a MAP result's mode(s).

    Returns `(points (num_chains, d), centres (num_chains, d), covariances
    (num_chains, d, d), chain_modes, laplace)`: each chain starts at a draw from the Laplace
    Gaussian of its mode (`chain_modes[c]`, an index into `result.modes`), and its
    metric from that Gaussian's covariance. With `modes="best"` every chain is in the
    best mode; with `"all"` chain `c` is in the `c % k`-th of the `k` modes that carry
    at least `MODE_WEIGHT` of the mass (best first). Where the negative Hessian at the
    best mode is not positive definite (a ridge the optimiser has not finished
    climbing): a small isotropic jitter (sd 0.1 in the unconstrained space) and the
    identity, and `laplace` is False.
    """
    from ..map import _gaussian

    z = jnp.asarray(result.z)
    d = z.shape[0]
    eps = jax.random.normal(key, (num_chains, d), z.dtype)
    laplace = True
    try:
        _, chol = _gaussian(result, "auto")
        best = (z, chol, chol @ chol.T)
    except RuntimeError:
        best = (z, 0.1 * jnp.eye(d, dtype=z.dtype), jnp.eye(d, dtype=z.dtype))
        laplace = False
    gaussians, index = [best], [0]
    if modes == "all":
        for i, m in enumerate(result.modes[1:], start=1):
            if m.weight >= MODE_WEIGHT and m.covariance is not None:
                cov = np.asarray(m.covariance, dtype=np.float64)
                chol = jnp.asarray(np.linalg.cholesky(cov), z.dtype)
                gaussians.append((jnp.asarray(m.z, z.dtype), chol, jnp.asarray(cov, z.dtype)))
                index.append(i)
    which = [c % len(gaussians) for c in range(num_chains)]
    centres = jnp.stack([gaussians[w][0] for w in which])
    chols = jnp.stack([gaussians[w][1] for w in which])
    covariances = jnp.stack([gaussians[w][2] for w in which])
    points = centres + jnp.einsum("cij,cj->ci", chols, eps)
    return points, centres, covariances, [index[w] for w in which], laplace


def _finite_starts(bmodel, ld, data, points, centres, batched):
    """Replace starting points with a -inf log density by their centre; error if that fails too.

    `points` and `centres`: `([subjects,] chains, d)`.
    """
    evaluate = _cache.compiled(
        bmodel,
        ("start_lp", batched),
        lambda: jax.jit(
            jax.vmap(jax.vmap(ld.fn_data, (0, None)))
            if batched
            else jax.vmap(ld.fn_data, (0, None))
        ),
    )
    lp = np.asarray(evaluate(points, data))
    centre_lp = np.asarray(evaluate(centres, data))
    if not np.all(np.isfinite(centre_lp)):
        raise ValueError(
            "init: the log density is -inf at the given starting values (the simulation fails "
            "there, or the data are impossible); start from values where the model runs."
        )
    bad = ~np.isfinite(lp)
    return jnp.where(jnp.asarray(bad)[..., None], centres, points)


def _broadcast_subjects(points, lanes: _Lanes):
    if lanes.subjects is None:
        return points
    return jnp.broadcast_to(points, (lanes.subjects, *points.shape))
