"""`simulate_bank`: draw, simulate in vmapped chunks, keep the summaries, checkpoint per chunk."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import brainmass as bm
from brainmass import storage
from brainmass.chunking import auto_chunk_size
from brainmass.progress import progress_bar

from .._checks import check_integers
from ._bank import _KIND, SimulationBank
from ._fingerprint import _fingerprint
from ._space import PriorSpace
from ._summary import as_summary


def _simulator_values(sim: bm.Simulator, space: PriorSpace, params) -> Callable:
    """`theta_flat (d,) -> {path: value}`: the simulator parameters of a flat draw."""
    if params is None:
        return space.split

    def to_sim(theta_flat):
        values = params(space.split(theta_flat))
        if not isinstance(values, Mapping) or not values:
            raise ValueError(
                f"params: expected a non-empty dict {{parameter path: value}}, got {values!r}."
            )
        return dict(values)

    paths = list(jax.eval_shape(to_sim, jnp.zeros(space.d)))
    for path in paths:
        sim.spec(path)  # a clear error naming an unknown path
    return to_sim


def simulate_bank(
    sim: bm.Simulator,
    priors: Mapping[str, Any] | PriorSpace,
    summary: Any,
    key: Any,
    num_simulations: int,
    *,
    chunk_size: int | None = None,
    memory_limit: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    proposal: Callable[[Any, int], Any] | None = None,
    params: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    progress: bool = True,
) -> SimulationBank:
    """Draw parameters from the priors, simulate them in vmapped chunks, keep the summaries.

    **Arguments:**

    - `sim`: the `brainmass.Simulator`; a stochastic one gets fresh noise per simulation.
    - `priors`: `{parameter path: NumPyro distribution}` in canonical units (the same dict
      `BayesianModel` takes), or a `PriorSpace`.
    - `summary`: an `inference.summaries` statistic (or a function signal -> features).
    - `key`: a `jax.random` key; chunk `c` uses `fold_in(key, c)`.
    - `num_simulations`: how many simulations the bank should have attempted in all (failed
      ones included); a resumed bank simulates only the rest.
    - `chunk_size`: simulations per vmapped chunk; default from the compiled memory of a
      2-simulation chunk and `memory_limit` (as `bm.sweep`: half the free memory).
    - `checkpoint`: the bank's `.npz` file, written after every chunk (atomically; read it
      with `SimulationBank.load`); an existing file made
      under the same settings is resumed (its chunk size kept). One made under other
      priors, simulator settings (`dt`, `duration`, `solver`, `monitor`, `network`, ...),
      summary, `params`, `proposal` or `key` is refused with a
      `brainmass.storage.StorageError` naming each setting that differs; a damaged file
      with one naming it.
    - `proposal`: draw parameters from `proposal(key, n) -> (n, d)` (flat, canonical units;
      jit-able) instead of the priors, e.g. a prior truncated to a posterior's support.
    - `params`: a pure JAX function `{name: value} -> {parameter path: value}` from the
      inferred quantities (the keys of `priors`, free names) to simulator parameters, e.g.
      an excitability gradient `{"slope": s} -> {"model.a": a0 + s * y}` over regions.
      Without it the priors' keys are simulator parameter paths.
    - `progress`: show a progress bar.

    **Returns:** a `SimulationBank` with `theta (n, d)`, `x (n, *summary shape)` of the
    `n` successful simulations; `n_failed` counts the dropped ones (a warning says how many).
    """
    if not isinstance(sim, bm.Simulator):
        raise ValueError(f"sim: expected a brainmass.Simulator, got {type(sim).__name__}.")
    check_integers(("num_simulations", num_simulations, 1))
    if chunk_size is not None:
        check_integers(("chunk_size", chunk_size, 1))
    if params is not None and not callable(params):
        raise ValueError(
            f"params: expected a function {{name: value}} -> {{path: value}}, got {params!r}."
        )
    if not isinstance(priors, PriorSpace):
        priors = PriorSpace(sim if params is None else None, priors)
    space = priors
    summary = as_summary(summary, sim)
    fingerprint = _fingerprint(space, summary, sim, params, proposal, key)
    path = None if checkpoint is None else Path(checkpoint).with_suffix(".npz")

    bank = None
    if path is not None and path.exists():
        record = storage.load(
            path,
            _KIND,
            fingerprint=fingerprint,
            what="checkpoint",
            hint="Pass another checkpoint (or delete the file) to start a new bank.",
        )
        bank = SimulationBank._from_record(record)
        chunk_size = bank.chunk_size
    num_simulations = int(num_simulations)
    done = 0 if bank is None else bank.n_chunks * bank.chunk_size
    todo = max(0, num_simulations - done)
    if bank is not None and todo == 0:
        return bank

    to_sim = _simulator_values(sim, space, params)
    simulate = sim.function(list(jax.eval_shape(to_sim, jnp.zeros(space.d))), output="result")
    stochastic = sim.network.noise is not None

    def one(theta_flat, key):
        result = simulate(to_sim(theta_flat), key if stochastic else None)
        x = summary(result.signal)
        ok = jnp.asarray(result.ok) & jnp.all(jnp.isfinite(x))
        return x, ok

    def chunk(key, size):
        k_theta, k_noise = jax.random.split(key)
        theta = space.sample(k_theta, size) if proposal is None else proposal(k_theta, size)
        x, ok = jax.vmap(one)(theta, jax.random.split(k_noise, size))
        return {"theta": theta, "x": x, "ok": ok}

    key_spec = jax.eval_shape(lambda: jax.random.key(0))

    def compile_for(size: int):
        lowered = jax.jit(chunk, static_argnums=1).lower(key_spec, size)
        return lowered.compile(), lowered.out_info

    compiled = None
    if chunk_size is None:
        chunk_size, _, _, compiled, _ = auto_chunk_size(compile_for, todo, memory_limit)
    if compiled is None:
        compiled, _ = compile_for(chunk_size)
    chunk_size = int(chunk_size)

    x_shape = tuple(summary.shape)
    if bank is None:
        bank = SimulationBank(
            theta=np.zeros((0, space.d)),
            x=np.zeros((0, *x_shape)),
            names=list(space.names),
            paths=space.paths,
            shapes=dict(space.shapes),
            chunk_size=chunk_size,
            fingerprint=fingerprint,
            info={"summary": repr(summary), "wall_s": 0.0},
        )
    n_chunks = -(-todo // chunk_size)
    thetas, xs = [bank.theta], [bank.x]
    n_failed = bank.n_failed
    wall = float(bank.info.get("wall_s", 0.0))
    bar = progress_bar(
        total=n_chunks * chunk_size, desc="simulations", unit="sim", disable=not progress
    )
    try:
        for c in range(bank.n_chunks, bank.n_chunks + n_chunks):
            t0 = time.perf_counter()
            out = jax.device_get(compiled(jax.random.fold_in(key, c)))
            ok = np.asarray(out["ok"])
            thetas.append(np.asarray(out["theta"])[ok])
            xs.append(np.asarray(out["x"])[ok])
            n_failed += int((~ok).sum())
            wall += time.perf_counter() - t0
            bank = SimulationBank(
                theta=np.concatenate(thetas),
                x=np.concatenate(xs),
                names=list(space.names),
                paths=space.paths,
                shapes=dict(space.shapes),
                n_failed=n_failed,
                n_chunks=c + 1,
                chunk_size=chunk_size,
                fingerprint=fingerprint,
                info={
                    "summary": repr(summary),
                    "wall_s": wall,
                    "simulations_per_s": (c + 1) * chunk_size / wall if wall > 0 else None,
                },
            )
            thetas, xs = [bank.theta], [bank.x]
            if path is not None:
                bank.save(path)
            bar.update(chunk_size)
    finally:
        bar.close()
    if bank.n_failed:
        warnings.warn(
            f"simulate_bank: {bank.n_failed} of {bank.n_attempted} simulations failed (non-finite "
            "output or summary) and were dropped.",
            stacklevel=2,
        )
    return bank
