"""`nuts`: the sampling loop in chunks (progress, checkpoints, interrupts) and its posteriors."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from brainmass.progress import progress_bar

from .. import _cache
from .._checks import check_integers
from ..diagnostics._convergence import ConvergenceWarning, MultimodalWarning, convergence
from ..model import AbstractBayesianModel, forward_gradient, predictive
from ..priors import Hierarchical
from ..results import Posterior
from ._backends import _BlackJAXSampler, _NumPyroSampler
from ._checkpoint import _Checkpoint, _fingerprint
from ._lanes import CHAIN_METHODS, _Lanes
from ._starts import MAP_NEWTON, MODE_WEIGHT, _initial_points

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
    init: Any = "map",
    modes: str = "best",
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool | str = "auto",
    adapt_metric: bool | str = "auto",
    gradient: str = "auto",
    chain_method: str = "auto",
    batch: bool = False,
    chunk_size: int = 100,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    posterior_predictive: bool = True,
    prior_draws: int = 0,
) -> Posterior | list[Posterior]:
    """Sample the posterior of `bmodel` given `data` with NUTS.

    **Arguments:**

    - `bmodel`: an `inference.BayesianModel` or `inference.CohortModel`.
    - `data`: the observed data (the monitor's signal, or what the likelihood
      takes); with `batch=True`, a stack of datasets on a leading subject axis.
    - `key`: a `jax.random` key; the same key gives the same draws.
    - `num_warmup`, `num_samples`: iterations of adaptation (step size and the
      mass matrix; discarded) and of sampling, per chain.
    - `num_chains`: chains (see `chain_method`).
    - `backend`: `"numpyro"` (NumPyro's NUTS kernel and adaptation) or
      `"blackjax"` (BlackJAX's `nuts` after `window_adaptation`).
    - `init`: where chains start. `"map"` (default): a multi-start MAP
      (`inference.map_estimate` from the priors' medians and 7 prior draws, one
      vmapped optimiser, at most 500 steps, stopped once no start gains 0.01
      nats in 50 steps), its end points grouped into separated modes
      (`MAPResult.modes`); every chain starts at the best mode, jittered by a
      draw from its Laplace approximation. A `MAPResult` (or a list, one per
      subject, with `batch=True`): the same from a MAP already computed (more
      starts: `map_estimate(..., num_starts=32)`). `"prior"`: around the
      priors' medians, jittered per chain (points with a failed simulation
      skipped); no optimisation. `{site: value}`: constrained values of the
      latent sites (every chain starts there, jittered slightly). None is
      `"map"`.
    - `modes`: with a MAP start, which modes the chains start in: `"best"` (default;
      every chain) or `"all"`: chain `c` in the `c % k`-th of the `k` modes that carry
      at least 1 % of the Laplace mass (best first), with that mode's Laplace metric.
      Chains in separated modes do not mix, so R-hat over all chains means nothing:
      the convergence checks run over each mode's chains on their own, and
      `inference.diagnostics.stack_chains(post)` weighs the modes by their
      leave-one-out predictive performance (Yao, Vehtari & Gelman 2022) and returns
      the stacked posterior. `info["init"]["chain_modes"]` records each chain's mode.
    - `target_accept`: target mean acceptance probability of the adaptation.
    - `max_tree_depth`: at most `2**max_tree_depth - 1` leapfrog steps a draw.
    - `dense_mass`: adapt a dense mass matrix (the posterior's covariance in the
      unconstrained space) instead of a diagonal one: far shorter trajectories
      when parameters trade off (neural-mass gains and rates, coupling), at
      `O(d^2)` memory and an `O(d^3)` factorisation per adaptation window.
      `"auto"` (default): dense up to `DENSE_MAX = 50` parameters (beyond that the
      warmup's windows hold too few draws to estimate `d^2` entries), diagonal above
      and for hierarchical models (a `Hierarchical` prior: the funnel between a
      group scale and its members changes shape along the chain; measured 15
      leapfrog steps a draw dense against 7 diagonal on a cohort).
      Either way, with a MAP start the metric starts from the Laplace covariance at
      the mode (the inverse of the observed Fisher information; its diagonal for a
      diagonal metric).
    - `adapt_metric`: re-estimate the metric from the warmup's draws (Stan's windowed
      adaptation) or keep the one the chains start with and adapt the step size alone.
      `"auto"` (default): keep the Laplace covariance when the chains start from a MAP
      whose Hessian is definite and the metric is dense; adapt otherwise (a diagonal
      metric, a prior start, a hierarchical model's funnel). Measured on
      `benchmarks/inference.py --versus`: with 200 warmup draws the windows' estimate
      of a 7x7 covariance was worse than the Laplace one it started from (a Jansen-Rit
      EEG fit: step size 0.006 and 150-350 leapfrog steps a draw adapted, 0.7 and 6
      kept; the DCM-ERP source: bulk ESS 390-510 adapted, 1,110 kept, of 800 draws).
    - `gradient`: how the sampler differentiates the log density: `"reverse"` mode
      (one simulation and its reverse sweep, whatever the parameter count),
      `"forward"` (one simulation carrying `d` tangents: cheaper for few parameters,
      and no stored trajectory) or `"auto"` (default): with vectorized chains, forward
      up to 8 parameters where the model has a forward mode, reverse above (measured,
      4 chains vmapped: forward takes 0.4-0.6x the time of reverse at 1-7 parameters,
      1.8x at 10); with sequential chains, reverse (one chain: forward takes 0.6-3.2x
      the time of reverse at 1 parameter, 1.25-10x at 2-10; `benchmarks/chain_layout.py`).
    - `chain_method`: how the chains run: `"vectorized"` (one `jax.vmap`: chains side
      by side, each draw as long as the longest chain's trajectory), `"sequential"`
      (one chain after another inside the same compiled call, each with its own
      trajectories) or `"auto"` (default): sequential on the CPU, vectorized on an
      accelerator. Measured on the CPU (`benchmarks/chain_layout.py`, 4 chains, whole
      runs): vmapped chains cost 1.02-1.08x the CPU time of sequential ones on the
      DCM-ERP source and a 68-region Hopf network, 1.16x (cold) to 1.48x (warm
      compilation cache) on the Jansen-Rit EEG case, never less; one value and gradient
      vmapped over 4 chains costs 2-25x one chain's. Either layout samples the same
      posterior (not the same draws: float rounding differs).
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
    - `prior_draws`: also draw this many parameter sets from the priors and data
      from the model at each (one simulation each): the `prior` and
      `prior_predictive` groups (`az.plot_prior_posterior`, prior predictive
      checks). 0 (default): none. They use `fold_in(key, 2)`, so the posterior
      draws do not depend on this setting.

    **Returns:** a `Posterior` (`to_arviz()` for ArviZ), or a list of them
    with `batch=True`. Its `sample_stats` hold, per chain and draw, `diverging`,
    `n_steps` (leapfrog steps), `tree_depth`, `step_size`, `acceptance_rate`, `lp`
    (the log density) and `energy` (the Hamiltonian: `az.bfmi`, `az.plot_energy`).

    **Several modes:** when a mode other than the best carries at least 1 % of the
    posterior mass under the Laplace approximation, a `MultimodalWarning` says so:
    the chains explore the best mode only, and the mass elsewhere is missing from
    the draws (`modes="all"` samples every mode). `info["init"]` records the start
    (`method`; `modes`: every mode's parameters, log density, Laplace mass and weight;
    `chain_modes`: the mode each chain started in; `map_steps`: the optimiser's steps).

    **Convergence:** the draws are checked (`inference.diagnostics.convergence`:
    R-hat <= 1.01, bulk and tail ESS >= 100 per chain, no divergent transition after
    warmup, E-BFMI >= 0.3 per chain); each failed check is listed in
    `info["convergence"]` and one `ConvergenceWarning` names the failing parameters.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}.")
    check_integers(
        ("prior_draws", prior_draws, 0),
        ("num_warmup", num_warmup, 0),
        ("num_samples", num_samples, 1),
        ("num_chains", num_chains, 1),
        ("chunk_size", chunk_size, 1),
        ("max_tree_depth", max_tree_depth, 1),
    )
    if modes not in ("best", "all"):
        raise ValueError(f"modes: expected 'best' or 'all', got {modes!r}.")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept: expected a probability in (0, 1), got {target_accept}.")
    if not isinstance(bmodel, AbstractBayesianModel):
        raise ValueError(
            f"bmodel: expected an inference.BayesianModel or CohortModel, got {bmodel!r}."
        )
    data = bmodel.observed(data, batch)
    layout = _chain_method(chain_method)
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
        dense_mass=_dense(dense_mass, ld.size, bmodel),
        adapt_metric=_check_adapt_metric(adapt_metric),
        modes=modes,
        chain_method=layout,
    )
    first_j = jax.tree.map(jnp.asarray, first)
    settings["gradient"] = _gradient(gradient, ld, first_j, bmodel, settings["chain_method"])
    data_j = jax.tree.map(jnp.asarray, data)
    store = None if checkpoint is None else _Checkpoint(Path(checkpoint))
    fingerprint = _fingerprint(bmodel, data, key, settings, init, batch)
    saved = store.load(fingerprint) if store is not None else None
    lanes = _Lanes(subjects if batch else None, settings["chain_method"])
    backend_cls = _NumPyroSampler if backend == "numpyro" else _BlackJAXSampler

    if saved is None:
        newton = MAP_NEWTON if settings["dense_mass"] else 0  # see _initial_points
        inits, starts_info, metric = _initial_points(
            bmodel, data_j, ld, init, k_init, num_chains, lanes, modes, newton
        )
        if modes == "best":
            _warn_multimodal(starts_info, batch)
        settings["adapt_metric"] = _adapt(adapt_metric, settings["dense_mass"], starts_info)
        sampler = backend_cls(bmodel, _sampled(ld, settings), settings)
        state = sampler.init(inits, k_run, data_j, lanes, metric)
        done, draws, stats = 0, [], []
    else:
        # the saved state's skeleton: the state a fresh start builds. NumPyro's kernel
        # functions keep their adaptation schedule in closures that its init sets, so it
        # runs for real; BlackJAX's init is only traced
        unknown = dict(method="checkpoint", modes=[], chain_modes=[])
        starts_info = saved.header.get("init") or [unknown] * (subjects if batch else 1)
        settings["adapt_metric"] = _adapt(adapt_metric, settings["dense_mass"], starts_info)
        sampler = backend_cls(bmodel, _sampled(ld, settings), settings)
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
                store.save(
                    fingerprint,
                    jax.device_get(state),
                    done,
                    draws,
                    stats,
                    warmup_divergent,
                    init=starts_info,
                )
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
    prior = prior_pred = None
    if prior_draws:  # shared by every subject: the priors and the model do not see the data
        k_prior, k_prior_pred = jax.random.split(jax.random.fold_in(key, 2))
        prior = {k: v[None] for k, v in bmodel.sample_prior(k_prior, int(prior_draws)).items()}
        _, prior_pred = predictive(bmodel, prior, first, k_prior_pred)
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
            init=starts_info[i],
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
                prior=prior,
                prior_predictive=prior_pred,
                dims=dims,
                coords=coords,
                info=info,
            )
        )
    _check_convergence(posts, batch)
    return posts if batch else posts[0]


def _check_adapt_metric(adapt_metric: bool | str) -> bool | str:
    if isinstance(adapt_metric, str) and adapt_metric == "auto":
        return adapt_metric
    if not isinstance(adapt_metric, (bool, np.bool_)):
        raise ValueError(f"adapt_metric: expected True, False or 'auto', got {adapt_metric!r}.")
    return bool(adapt_metric)


def _adapt(adapt_metric: bool | str, dense: bool, starts_info: list[dict]) -> bool:
    """Resolve `adapt_metric`: "auto" keeps a dense Laplace metric from a MAP start.

    `starts_info`: the records of `_initial_points` (also a checkpoint's, so a resumed
    run adapts as the run it resumes did).
    """
    if adapt_metric != "auto":
        return bool(adapt_metric)
    laplace = all(r.get("method") == "map" and r.get("laplace", False) for r in starts_info)
    return not (dense and laplace)


# the largest parameter count that gets a dense mass matrix with dense_mass="auto"
DENSE_MAX = 50
# the largest parameter count whose gradient runs in forward mode with gradient="auto"
FORWARD_MAX = 8


def _sampled(ld, settings: dict):
    """The log density the sampler differentiates: `ld`, or its forward-mode twin.

    `settings["gradient"] == "forward"`: `fn_data` wrapped by `model.forward_gradient`.
    """
    if settings["gradient"] != "forward":
        return ld
    return ld._replace(fn_data=forward_gradient(ld.fn_data))


def _gradient(gradient: str, ld, data, bmodel: Any = None, chain_method: str = "vectorized") -> str:
    """Resolve `gradient` ("auto", "forward" or "reverse") for the log density `ld`.

    "auto": with vectorized chains, forward mode up to `FORWARD_MAX` parameters, where
    forward mode works through the model (a `custom_vjp` in the simulation has none:
    checked by lowering one JVP, nothing compiled, and a failure recorded on `bmodel` as
    for the Laplace Hessian), reverse mode otherwise; with sequential chains, reverse.
    Measured on the CPU (`benchmarks/inference.py` problems, one value and gradient;
    forward / reverse time): 4 chains vmapped, 0.40 at d = 1 and 0.84 at d = 2 (a
    linear network, 2,000 steps), 0.55-0.59 at d = 7 (the Jansen-Rit EEG case),
    1.83 at d = 10 (the DCM-ERP source); one chain (`benchmarks/chain_layout.py`),
    0.6-3.2 at d = 1, 3.6-10 at d = 2-4 (Hopf networks of 4 and 68 regions), 3.3 at
    d = 7 (JR), 1.25 at d = 10 (ERP): the d tangents are vmapped, and vmap is what
    makes reverse mode slow over chains.
    """
    if gradient not in ("auto", "forward", "reverse"):
        raise ValueError(f"gradient: expected 'auto', 'forward' or 'reverse', got {gradient!r}.")
    if gradient == "auto" and chain_method == "sequential":
        return "reverse"
    if gradient == "reverse" or (gradient == "auto" and ld.size > FORWARD_MAX):
        return "reverse"
    from ..map import _no_forward_mode

    known = _no_forward_mode(bmodel) if bmodel is not None else []
    # probed once per model (a second dataset traces nothing new)
    probed = _cache.compiled(bmodel, ("forward-mode-probed",), list) if bmodel is not None else []
    try:
        if known:
            raise TypeError(f"forward mode failed before ({known[0]})")
        if not probed:
            # lowered, not compiled: forward mode through a custom_vjp fails only here
            jvp = jax.jit(lambda z, t: jax.jvp(lambda x: ld.fn_data(x, data), (z,), (t,)))
            jvp.lower(ld.init, ld.init)
            probed.append(True)
    except Exception as err:  # noqa: BLE001 - forward mode through a custom_vjp
        if bmodel is not None and not known:
            known.append(type(err).__name__)
        if gradient == "forward":
            raise ValueError(
                f"gradient: 'forward' mode is unavailable for this model "
                f"({type(err).__name__}: {err}); use 'reverse' or 'auto'."
            ) from err
        return "reverse"
    return "forward"


def _chain_method(chain_method: str) -> str:
    """Resolve `chain_method` ("auto", "vectorized" or "sequential").

    "auto": sequential on the CPU, vectorized on an accelerator (where vmapped chains
    run side by side). Measured on the CPU (`benchmarks/chain_layout.py`):
    one value and gradient of 4 chains vmapped costs 2-25x one chain's (a 4-region Hopf
    network: 13-25x; the Jansen-Rit EEG case: 12x; a 68-region Hopf network: 5x; the
    DCM-ERP source: 2x), and vmapped chains also pay the longest trajectory of every
    draw; whole runs took 1.02-1.48x the CPU time of sequential ones, never less (the
    multi-start MAP and compilation, shared by both layouts, dominate most runs).
    """
    if chain_method == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "vectorized"
    if chain_method not in CHAIN_METHODS:
        raise ValueError(
            f"chain_method: expected 'auto' or one of {CHAIN_METHODS}, got {chain_method!r}."
        )
    return chain_method


def _dense(dense_mass: bool | str, d: int, bmodel: Any = None) -> bool:
    """Resolve `dense_mass` (True, False or "auto") for `d` parameters of `bmodel`.

    "auto": dense up to `DENSE_MAX` parameters, unless the model is hierarchical (a
    `Hierarchical` prior: a group scale and its members form a funnel whose shape
    changes along the chain, which no single dense matrix fits; measured on the
    hierarchical-cohort notebook, 15 leapfrog steps a draw dense against 7 diagonal).
    """
    if isinstance(dense_mass, str):
        if dense_mass != "auto":
            raise ValueError(f"dense_mass: expected True, False or 'auto', got {dense_mass!r}.")
        hierarchical = bmodel is not None and any(
            isinstance(p, Hierarchical) for p in bmodel.priors.values()
        )
        return d <= DENSE_MAX and not hierarchical
    if not isinstance(dense_mass, (bool, np.bool_)):
        raise ValueError(f"dense_mass: expected True, False or 'auto', got {dense_mass!r}.")
    return bool(dense_mass)


def _warn_multimodal(starts_info: list[dict], batch: bool) -> None:
    """One `MultimodalWarning` when a mode besides the best carries non-negligible mass."""
    lines = []
    for i, record in enumerate(starts_info):
        modes = record["modes"]
        others = [m for m in modes[1:] if m["weight"] >= MODE_WEIGHT]
        if not others:
            continue
        where = f"subject {i}: " if batch else ""
        shown = "; ".join(
            ", ".join(f"{k}={np.asarray(v).ravel()[0]:.4g}" for k, v in m["params"].items())
            + f" (weight {m['weight']:.2f})"
            for m in modes[: 1 + len(others)]
        )
        lines.append(f"{where}{1 + len(others)} modes carry mass: {shown}")
    if lines:
        warnings.warn(
            "nuts: the posterior is multimodal (Laplace weights of the MAP's modes; "
            "info['init']['modes']); the chains start at the best mode only, so the mass "
            "of the others is missing from the draws (nuts(..., modes='all') samples every "
            "mode; inference.diagnostics.stack_chains weighs them):\n  - " + "\n  - ".join(lines),
            MultimodalWarning,
            stacklevel=3,
        )


def _check_convergence(posts: list[Posterior], batch: bool) -> None:
    """Record each posterior's failed convergence checks in `info` and warn about them.

    `info["convergence"]` is the list of problems (`inference.diagnostics.convergence`:
    R-hat, bulk/tail ESS, divergences, E-BFMI), empty when every check passes; chains
    started in different modes (`modes="all"`) are checked mode by mode. One
    `ConvergenceWarning` names the failing parameters (and subjects, with `batch=True`).
    """
    lines = []
    for i, post in enumerate(posts):
        chain_modes = post.info.get("init", {}).get("chain_modes") or []
        if len(set(chain_modes)) > 1:  # chains in separated modes: each mode on its own
            problems = []
            for m in sorted(set(chain_modes)):
                group = [c for c, cm in enumerate(chain_modes) if cm == m]
                sub = convergence(post.select_chains(group)).problems
                problems += [f"mode {m} (chains {group}): {p}" for p in sub]
        else:
            problems = list(convergence(post).problems)
        post.info["convergence"] = problems
        lines += [f"subject {i}: {p}" if batch else p for p in problems]
    if lines:
        shown = lines[:8] + ([f"... and {len(lines) - 8} more"] if len(lines) > 8 else [])
        warnings.warn(
            "nuts: the draws fail convergence checks (info['convergence']; "
            "inference.diagnostics.convergence):\n  - " + "\n  - ".join(shown),
            ConvergenceWarning,
            stacklevel=3,
        )


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
