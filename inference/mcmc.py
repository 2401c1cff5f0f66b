"""NUTS through the solve: NumPyro and BlackJAX backends behind one function.

Both backends sample the model's flat unconstrained density
(`BayesianModel.logdensity`): NumPyro with its NUTS kernel and windowed
adaptation (`numpyro.infer.hmc.hmc(algo="NUTS")`), BlackJAX with
`window_adaptation` and `blackjax.nuts`. Chains are vectorised (one
`jax.vmap` over chains inside one compiled step): NumPyro's
`chain_method="parallel"` fails with diffrax's checkpointed adjoint (diffrax
issue #765), and on one device vectorised chains are as fast. The data enter
the compiled step as an argument, so one compilation serves every dataset of
the same shape, and a batch of datasets (a cohort of subjects, `batch=True`)
runs as one vmapped sampler.

A simulation that blows up makes the log density `-inf`: the sampler treats
the trajectory as divergent and rejects it (counted in
`sample_stats["diverging"]`); nothing crashes. Sampling runs in chunks of
iterations: a progress bar moves per chunk, and with `checkpoint=path` the
sampler state and the draws so far are written after every chunk, so an
interrupted run (Ctrl-C, a lost job) resumes from the last chunk by calling
`nuts(..., checkpoint=path)` again.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from brainmass import storage
from brainmass.progress import progress_bar

from . import _cache
from ._checks import check_integers
from .model import AbstractBayesianModel, LogDensity, predictive
from .priors import prior_token
from .results import Posterior

__all__ = ["nuts"]

BACKENDS = ("numpyro", "blackjax")


def nuts(
    bmodel: AbstractBayesianModel,
    data: Any,
    key: Any,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    *,
    backend: str = "numpyro",
    init: Any = None,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    batch: bool = False,
    chunk_size: int = 100,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    posterior_predictive: bool = True,
) -> Posterior | list[Posterior]:
    """Sample the posterior of `bmodel` given `data` with NUTS.

    **Arguments:**

    - `bmodel`: an `inference.BayesianModel` or `inference.CohortModel`.
    - `data`: the observed data (the monitor's signal, or what the likelihood
      takes); with `batch=True`, a stack of datasets on a leading subject axis.
    - `key`: a `jax.random` key; the same key gives the same draws.
    - `num_warmup`, `num_samples`: iterations of adaptation (step size and the
      mass matrix; discarded) and of sampling, per chain.
    - `num_chains`: chains, run as one vectorised batch.
    - `backend`: `"numpyro"` (NumPyro's NUTS kernel and adaptation) or
      `"blackjax"` (BlackJAX's `nuts` after `window_adaptation`).
    - `init`: where chains start: None (around the priors' medians, jittered
      per chain, points with a failed simulation skipped), `"map"` (draws from
      the Laplace approximation at the MAP, see `inference.map_estimate`), a
      `MAPResult` (the same, from a MAP already computed), or `{site: value}`
      constrained values of the latent sites (every chain starts there,
      jittered slightly).
    - `target_accept`: target mean acceptance probability of the adaptation.
    - `max_tree_depth`: at most `2**max_tree_depth - 1` leapfrog steps a draw.
    - `dense_mass`: adapt a dense mass matrix (the posterior's covariance in the
      unconstrained space) instead of a diagonal one: far shorter trajectories
      when parameters trade off (neural-mass gains and rates, coupling), at
      `O(d^2)` memory and an `O(d^3)` factorisation per adaptation window;
      worth it up to a few hundred parameters.
    - `batch`: `data` holds several datasets on its first axis; they are
      sampled at once (one vmapped sampler) and a list of posteriors returned.
    - `chunk_size`: iterations per compiled chunk (progress, checkpoints).
    - `checkpoint`: a file to save the state and draws to after every chunk
      (`brainmass.storage`: arrays and a JSON header, written atomically), and
      to resume from when it exists and belongs to the same run; a file written
      under other settings (the simulator's `dt`, `duration`, `solver`,
      `monitor`, `network`; the priors, likelihood, data, key, `init`, or any
      sampler setting, `num_samples` included) is refused with a `StorageError`
      naming each setting that differs, and a damaged file with one naming it.
    - `progress`: show a progress bar.
    - `posterior_predictive`: also compute the pointwise log-likelihood and
      posterior predictive draws at every draw (one simulation each).

    **Returns:** a `Posterior` (`to_arviz()` for ArviZ), or a list of them
    with `batch=True`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}.")
    check_integers(
        ("num_warmup", num_warmup, 0),
        ("num_samples", num_samples, 1),
        ("num_chains", num_chains, 1),
        ("chunk_size", chunk_size, 1),
        ("max_tree_depth", max_tree_depth, 1),
    )
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept: expected a probability in (0, 1), got {target_accept}.")
    if not isinstance(bmodel, AbstractBayesianModel):
        raise ValueError(
            f"bmodel: expected an inference.BayesianModel or CohortModel, got {bmodel!r}."
        )
    subjects = _subjects(bmodel, data, batch)
    first = jax.tree.map(lambda x: x[0], data) if batch else data
    k_init, k_run, k_pred = jax.random.split(key, 3)
    t0 = time.perf_counter()
    ld = bmodel.logdensity(first, k_init)
    settings = dict(
        backend=backend,
        num_warmup=int(num_warmup),
        num_samples=int(num_samples),
        num_chains=int(num_chains),
        target_accept=float(target_accept),
        max_tree_depth=int(max_tree_depth),
        dense_mass=bool(dense_mass),
    )
    data_j = jax.tree.map(jnp.asarray, data)
    store = None if checkpoint is None else _Checkpoint(Path(checkpoint))
    fingerprint = _fingerprint(bmodel, data, key, settings, init, batch)
    saved = store.load(fingerprint) if store is not None else None
    sampler = (_NumPyroSampler if backend == "numpyro" else _BlackJAXSampler)(bmodel, ld, settings)
    lanes = _Lanes(subjects if batch else None)

    if saved is None:
        inits = _initial_points(bmodel, data_j, ld, init, k_init, num_chains, lanes)
        state, done, draws, stats = sampler.init(inits, k_run, data_j, lanes), 0, [], []
    else:
        # the saved state's skeleton: the state a fresh start builds. NumPyro's kernel
        # functions keep their adaptation schedule in closures that its init sets, so it
        # runs for real; BlackJAX's init is only traced
        shape = (*(() if lanes.subjects is None else (lanes.subjects,)), num_chains, ld.size)
        starts = jnp.broadcast_to(ld.init, shape)
        if backend == "numpyro":
            like = sampler.init(starts, k_run, data_j, lanes)
        else:
            spec = jax.eval_shape(lambda: sampler.init(starts, k_run, data_j, lanes))
            like = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), spec)
        state, done, draws, stats = store.restore(saved, like)
    total = int(num_warmup) + int(num_samples)
    label = f"NUTS ({backend}{', ' + str(subjects) + ' subjects' if batch else ''})"
    bar = progress_bar(total=total, desc=label, unit="it", disable=not progress)
    bar.update(done)
    interrupted = False
    warmup_divergent = int(saved.header["warmup_divergent"]) if saved else 0
    try:
        while done < total:
            if done < num_warmup and sampler.warmup_in_one_call:
                state = sampler.warmup(state, data_j, lanes)
                n, z, st = int(num_warmup), None, None
            else:
                # every chunk has the same length (one compilation); the last one may run
                # past the end, and the iterations beyond it are dropped
                length = min(
                    int(chunk_size), total - (num_warmup if sampler.warmup_in_one_call else 0)
                )
                n = min(length, total - done)
                state, z, st = sampler.run(state, data_j, length, done, lanes)
                z, st = z[..., :n, :], {k: v[..., :n] for k, v in st.items()}
            if z is not None:
                keep = min(n, done + n - int(num_warmup))
                warm = n - max(keep, 0)  # iterations of this chunk still in warmup
                if warm > 0:
                    warmup_divergent += int(np.sum(np.asarray(st["diverging"])[..., :warm]))
                if keep > 0:
                    draws.append(np.asarray(z)[..., n - keep :, :])
                    stats.append({k: np.asarray(v)[..., n - keep :] for k, v in st.items()})
            done += n
            bar.update(n)
            if store is not None:
                store.save(fingerprint, jax.device_get(state), done, draws, stats, warmup_divergent)
    except KeyboardInterrupt:
        interrupted = True
        warnings.warn(
            f"nuts: interrupted after {done} of {total} iterations; returning the draws so far"
            + (f" (resume with checkpoint={str(checkpoint)!r})." if store else "."),
            stacklevel=2,
        )
    finally:
        bar.close()
    if not draws:
        raise RuntimeError("nuts: interrupted before the first draw after warmup; no draws.")
    flat = np.concatenate(draws, axis=-2)  # ([subjects,] chains, draws, d)
    sample_stats = {k: np.concatenate([s[k] for s in stats], axis=-1) for k in stats[0]}
    sample_stats["tree_depth"] = np.ceil(np.log2(sample_stats["n_steps"] + 1.0)).astype(int)
    constrain = _cache.compiled(
        bmodel, ("constrain",), lambda: jax.jit(jax.vmap(jax.vmap(ld.constrain)))
    )
    dims, coords = bmodel.dims()
    wall = time.perf_counter() - t0
    posts = []
    for i in range(subjects if batch else 1):
        pick = (lambda x, i=i: x[i]) if batch else (lambda x: x)
        d_i = jax.tree.map(pick, data) if batch else data
        samples = {k: np.asarray(v) for k, v in constrain(jnp.asarray(pick(flat))).items()}
        st_i = {k: pick(v) for k, v in sample_stats.items()}
        log_lik = draws_pred = None
        if posterior_predictive and not interrupted:
            log_lik, draws_pred = predictive(bmodel, samples, d_i, jax.random.fold_in(k_pred, i))
        info = dict(
            settings,
            wall_time=wall,
            n_divergent=int(np.sum(st_i["diverging"])),
            # divergent warmup iterations (NumPyro backend; BlackJAX adapts in one call)
            n_divergent_warmup=warmup_divergent if backend == "numpyro" else None,
            interrupted=interrupted,
            resumed=saved is not None,
        )
        if batch:
            info.update(subject=i, subjects=subjects)
        posts.append(
            Posterior(
                samples=samples,
                sample_stats=st_i,
                units=dict(bmodel.units),
                method=f"nuts ({backend})",
                observed=np.asarray(bmodel.check_data(d_i)),
                log_likelihood=log_lik,
                posterior_predictive=draws_pred,
                dims=dims,
                coords=coords,
                info=info,
            )
        )
    return posts if batch else posts[0]


def _subjects(bmodel: AbstractBayesianModel, data: Any, batch: bool) -> int:
    """Validate the data (every subject with batch=True); returns the number of subjects."""
    if not batch:
        bmodel.check_data(data)
        return 1
    leaves = jax.tree.leaves(data)
    if not leaves or np.ndim(leaves[0]) < 1:
        raise ValueError("data: batch=True expects datasets stacked on a leading subject axis.")
    n = int(np.shape(leaves[0])[0])
    for i in range(n):
        try:
            bmodel.check_data(jax.tree.map(lambda x, i=i: np.asarray(x)[i], data))
        except ValueError as err:
            raise ValueError(f"data[{i}] (subject {i}): {err}") from None
    return n


class _Lanes:
    """vmap over chains, and over subjects in a batch."""

    def __init__(self, subjects: int | None):
        self.subjects = subjects

    def map(self, fn, chain_axes, data_axis=None):
        """`fn` vmapped over chains (in_axes `chain_axes`), then over subjects (data too)."""
        over_chains = jax.vmap(fn, in_axes=chain_axes)
        if self.subjects is None:
            return over_chains
        subject_axes = tuple(0 if a is not None else None for a in chain_axes)
        if data_axis is not None:
            subject_axes = subject_axes[:data_axis] + (0,) + subject_axes[data_axis + 1 :]
        return jax.vmap(over_chains, in_axes=subject_axes)


# ----------------------------------------------------------------------------- starts


def _initial_points(bmodel, data, ld: LogDensity, init, key, num_chains: int, lanes: _Lanes):
    """Flat unconstrained starting points `([subjects,] num_chains, d)`, finite log density."""
    from .map import MAPResult, map_estimate

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


# ----------------------------------------------------------------------------- backends


def _stats(diverging, n_steps, step_size, acceptance, lp) -> dict[str, Any]:
    return {
        "diverging": diverging,
        "n_steps": n_steps,
        "step_size": step_size,
        "acceptance_rate": acceptance,
        "lp": lp,
    }


class _NumPyroSampler:
    """NumPyro's NUTS (`numpyro.infer.hmc.hmc(algo="NUTS")`) on the flat density, data dynamic."""

    warmup_in_one_call = False

    def __init__(self, bmodel, ld, settings):
        from numpyro.infer.hmc import hmc

        self.bmodel, self.settings = bmodel, settings
        self.init_kernel, self.sample_kernel = hmc(
            potential_fn_gen=lambda data: lambda z: -ld.fn_data(z, data), algo="NUTS"
        )
        self._key = ("numpyro", _compile_key(settings))

    def init(self, inits, key, data, lanes):
        s, init_kernel = self.settings, self.init_kernel  # not self: it holds the model

        def one(z0, k, data):
            return init_kernel(
                z0,
                s["num_warmup"],
                target_accept_prob=s["target_accept"],
                max_tree_depth=s["max_tree_depth"],
                dense_mass=s["dense_mass"],
                model_args=(data,),
                rng_key=k,
            )

        fn = _cache.compiled(
            self.bmodel,
            self._key + ("init", lanes.subjects is None),
            lambda: jax.jit(lanes.map(one, (0, 0, None), data_axis=2)),
        )
        keys = jax.random.split(_typed(key), inits.shape[:-1])
        return fn(inits, jax.random.key_data(keys), data)

    def run(self, state, data, n, done, lanes):
        sample_kernel = self.sample_kernel

        def step(s, data):
            s = sample_kernel(s, model_args=(data,))
            lp = -s.potential_energy
            st = _stats(s.diverging, s.num_steps, s.adapt_state.step_size, s.accept_prob, lp)
            return s, (s.z, st)

        def build():
            stepped = lanes.map(step, (0, None), data_axis=1)

            def chunk(state, data):
                return jax.lax.scan(lambda s, _: stepped(s, data), state, None, length=n)

            return jax.jit(chunk)

        fn = _cache.compiled(self.bmodel, self._key + ("run", n, lanes.subjects is None), build)
        state, (z, st) = fn(state, data)
        return state, _draws_last(z, 1), {k: _draws_last(v, 0) for k, v in st.items()}


class _BlackJAXSampler:
    """BlackJAX: window adaptation per chain, then NUTS with each chain's parameters."""

    warmup_in_one_call = True

    def __init__(self, bmodel, ld, settings):
        self.bmodel, self.ld, self.settings = bmodel, ld, settings
        self._key = ("blackjax", _compile_key(settings))

    def init(self, inits, key, data, lanes):
        import blackjax

        fn_data, dense = self.ld.fn_data, self.settings["dense_mass"]

        def one(z0, k, data):
            state = blackjax.nuts.init(z0, partial(fn_data, data=data))
            inverse_mass = jnp.eye(z0.shape[-1], dtype=z0.dtype) if dense else jnp.ones_like(z0)
            params = {"step_size": jnp.asarray(0.1), "inverse_mass_matrix": inverse_mass}
            return {"state": state, "params": params, "key": k}

        fn = _cache.compiled(
            self.bmodel,
            self._key + ("init", lanes.subjects is None),
            lambda: jax.jit(lanes.map(one, (0, 0, None), data_axis=2)),
        )
        keys = jax.random.split(_typed(key), inits.shape[:-1])
        return fn(inits, jax.random.key_data(keys), data)

    def warmup(self, carry, data, lanes):
        import blackjax
        from blackjax.adaptation.base import get_filter_adapt_info_fn

        s, fn_data = self.settings, self.ld.fn_data

        def one(c, data):
            algo = blackjax.window_adaptation(
                blackjax.nuts,
                partial(fn_data, data=data),
                target_acceptance_rate=s["target_accept"],
                adaptation_info_fn=get_filter_adapt_info_fn(),
                is_mass_matrix_diagonal=not s["dense_mass"],
                max_num_doublings=s["max_tree_depth"],
            )
            key = jax.random.wrap_key_data(c["key"])
            k_warm, k_next = jax.random.split(key)
            (state, params), _ = algo.run(k_warm, c["state"].position, num_steps=s["num_warmup"])
            params = {k: params[k] for k in ("step_size", "inverse_mass_matrix")}
            return {"state": state, "params": params, "key": jax.random.key_data(k_next)}

        fn = _cache.compiled(
            self.bmodel,
            self._key + ("warmup", lanes.subjects is None),
            lambda: jax.jit(lanes.map(one, (0, None), data_axis=1)),
        )
        return fn(carry, data)

    def run(self, carry, data, n, done, lanes):
        import blackjax

        fn_data, depth = self.ld.fn_data, self.settings["max_tree_depth"]

        def step(c, data):
            logdensity = partial(fn_data, data=data)
            kernel = blackjax.nuts(logdensity, max_num_doublings=depth, **c["params"])
            key, k_next = jax.random.split(jax.random.wrap_key_data(c["key"]))
            state, info = kernel.step(key, c["state"])
            st = _stats(
                info.is_divergent,
                info.num_integration_steps,
                c["params"]["step_size"],
                info.acceptance_rate,
                state.logdensity,
            )
            c = {"state": state, "params": c["params"], "key": jax.random.key_data(k_next)}
            return c, (state.position, st)

        def build():
            stepped = lanes.map(step, (0, None), data_axis=1)

            def chunk(carry, data):
                return jax.lax.scan(lambda c, _: stepped(c, data), carry, None, length=n)

            return jax.jit(chunk)

        fn = _cache.compiled(self.bmodel, self._key + ("run", n, lanes.subjects is None), build)
        carry, (z, st) = fn(carry, data)
        return carry, _draws_last(z, 1), {k: _draws_last(v, 0) for k, v in st.items()}


def _compile_key(settings: dict) -> tuple:
    """The settings a compiled sampler depends on (not the number of draws)."""
    return tuple(sorted((k, v) for k, v in settings.items() if k != "num_samples"))


def _draws_last(x, trailing: int):
    """Move the scan's leading draw axis behind the chain (and subject) axes."""
    x = jnp.asarray(x)
    return jnp.moveaxis(x, 0, x.ndim - 1 - trailing)


def _typed(key):
    """A typed jax.random key from a typed key or raw key data."""
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(jnp.asarray(key, dtype=jnp.uint32))


# ----------------------------------------------------------------------------- checkpoints

_KIND = "inference.nuts checkpoint"
_HINT = "The file belongs to another run: delete it or pass another checkpoint path."


def _fingerprint(bmodel, data, key, settings, init, batch) -> dict[str, Any]:
    """Every setting that changes a run's draws, by name (see `brainmass.storage`).

    The simulator's own settings (`Simulator.fingerprint`: `dt`, `duration`, `solver`,
    `monitor`, `network`, ...; its initial state as `sim.init`), the model's priors and
    likelihood (digests of their process-independent tokens), the data (a digest), the
    key (its data, readable), every sampler setting (`num_samples` included: a finished
    run is not grown) and the starting points `init`.
    """
    sim_settings = dict(bmodel.sim.fingerprint())
    sim_settings["sim.init"] = sim_settings.pop("init")  # `init` names nuts' own argument
    lik = bmodel.likelihood
    noise = sorted((k, prior_token(v)) for k, v in lik.noise_parameters().items())
    priors = sorted((p, prior_token(v)) for p, v in bmodel.priors.items())
    named = {
        "model": repr(bmodel),
        **sim_settings,
        "priors": f"digest:{storage.digest(priors)}",
        "likelihood": f"{type(lik).__name__} digest:{storage.digest((lik.token(), noise))}",
        "conditional_on_noise": bool(bmodel.conditional_on_noise),
        "noise_key": None if bmodel.noise_key is None else _key_text(bmodel.noise_key),
        "data": f"digest:{storage.digest(jax.tree.map(np.asarray, data))}",
        "key": _key_text(key),
        **settings,
        "batch": bool(batch),
        "init": _init_text(init),
    }
    return {k: storage.describe(v) for k, v in named.items()}  # digests computed once


def _init_text(init) -> Any:
    """`init` in a fingerprint: None or a string as it is; starting values as a digest.

    A `MAPResult` (or a list of them) counts by its mode `z`: the Laplace draws around
    it are fixed by the mode, the model, the data and the key (its wall time is not).
    """
    from .map import MAPResult

    if init is None or isinstance(init, str):
        return init
    if isinstance(init, MAPResult):
        return f"MAPResult digest:{storage.digest(np.asarray(init.z))}"
    if isinstance(init, list) and all(isinstance(r, MAPResult) for r in init):
        return f"list[MAPResult] digest:{storage.digest([np.asarray(r.z) for r in init])}"
    return f"{type(init).__name__} digest:{storage.digest(init)}"


def _key_text(key) -> list[int]:
    """A random key's data as a short list of integers (readable in messages)."""
    return np.asarray(jax.random.key_data(_typed(key))).ravel().tolist()


class _Checkpoint:
    """The sampler's state, the draws so far and the counts, in one `brainmass.storage` file.

    Arrays: the state's leaves (`state_*`, restored into the skeleton a fresh start
    builds), the draws after warmup `draws ([subjects,] chains, n, d)` and the sample
    statistics `stat_<name> ([subjects,] chains, n)`; header: `done` (iterations, warmup
    included) and `warmup_divergent`.
    """

    def __init__(self, path: Path):
        self.path = path

    def load(self, fingerprint: dict) -> storage.Record | None:
        """The saved record, or None without a file; a StorageError for another run's file."""
        if not self.path.exists():
            return None
        return storage.load(
            self.path, _KIND, fingerprint=fingerprint, what="checkpoint", hint=_HINT
        )

    def restore(self, record: storage.Record, like: Any):
        """`(state, done, draws, stats)` of a record; `like` is a fresh state (the skeleton)."""
        label = f"checkpoint: {self.path}"
        state = storage.tree_from_arrays(record.arrays, like, label=label, prefix="state")
        arrays = record.arrays
        draws, stats = [], []
        if "draws" in arrays:
            draws.append(arrays["draws"])
            names = record.header["stats"]
            missing = [n for n in names if f"stat_{n}" not in arrays]
            if missing:
                raise storage.StorageError(f"{label} lacks the statistics {missing}.")
            stats.append({n: arrays[f"stat_{n}"] for n in names})
        return state, int(record.header["done"]), draws, stats

    def save(self, fingerprint, state, done, draws, stats, warmup_divergent=0):
        """Write the state and everything drawn so far (atomically: the old file or the new)."""
        arrays = storage.tree_arrays(state, prefix="state")
        names = list(stats[0]) if stats else []
        if draws:
            arrays["draws"] = np.concatenate(draws, axis=-2)
            for n in names:
                arrays[f"stat_{n}"] = np.concatenate([s[n] for s in stats], axis=-1)
        header = {"done": int(done), "warmup_divergent": int(warmup_divergent), "stats": names}
        storage.save(self.path, _KIND, arrays, fingerprint=fingerprint, header=header)
