"""The calibration driver: prior -> simulate -> posterior draws -> SBC and TARP."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from brainmass.checks import check_int, check_key
from brainmass.progress import progress_bar

from ._common import _check_names
from ._sbc import SBCResult, sbc
from ._tarp import TARPResult, tarp


def calibrate(
    key: Any,
    prior_sample: Callable[[Any, int], Any],
    simulate: Callable[[Any, Any], Any],
    posterior_samples: Callable[[Any, Any, int], Any],
    num_simulations: int,
    num_draws: int = 100,
    names: Sequence[str] | None = None,
    chunk_size: int = 100,
    progress: bool = True,
    *,
    tarp_options: Mapping[str, Any] | None = None,
) -> tuple[SBCResult, TARPResult]:
    """SBC and TARP of a posterior estimator: prior -> simulate -> posterior draws.

    Keys (so that a run can be reproduced by hand):
    `k_prior, k_sim, k_post, k_tarp = jax.random.split(key, 4)`; the truths are
    `prior_sample(k_prior, num_simulations)` in one call; chunk `c` (simulations
    `c * chunk_size` to `(c + 1) * chunk_size`) is simulated with
    `jax.random.fold_in(k_sim, c)` and its posterior drawn with
    `jax.random.fold_in(k_post, c)`; `tarp` gets `k_tarp`.

    Simulations whose data has any non-finite value are dropped (counted in
    `SBCResult.n_failed`); so that the posterior sees a fixed batch shape, their
    rows are replaced by a finite row of the same chunk before the call and
    their draws discarded.

    **Arguments:**

    - `key`: JAX PRNG key or integer seed.
    - `prior_sample`: `(key, n) -> theta (n, d)`.
    - `simulate`: `(key, theta (n, d)) -> x (n, ...)`.
    - `posterior_samples`: `(key, x (n, ...), num_draws) -> (n, num_draws, d)`.
    - `num_simulations`: number of (truth, data) pairs (>= 1).
    - `num_draws`: posterior draws per simulation (>= 1).
    - `names`: `d` parameter labels.
    - `chunk_size`: simulations per `simulate` / `posterior_samples` call.
    - `progress`: show a progress bar (simulations).
    - `tarp_options`: keyword arguments for `tarp` (`num_alpha`, `distance`,
      `norm`, `bootstrap`, `references`, ...).

    **Returns:**

    `(SBCResult, TARPResult)` over the simulations that did not fail.
    """
    num_simulations = check_int(num_simulations, "num_simulations", 1)
    num_draws = check_int(num_draws, "num_draws", 1)
    chunk_size = check_int(chunk_size, "chunk_size", 1)
    k_prior, k_sim, k_post, k_tarp = jax.random.split(check_key(key), 4)

    theta = np.asarray(prior_sample(k_prior, num_simulations), dtype=float)
    if theta.ndim != 2 or theta.shape[0] != num_simulations:
        raise ValueError(
            f"prior_sample: expected an array of shape (num_simulations, d) = "
            f"({num_simulations}, d), got {theta.shape}."
        )
    d = theta.shape[1]
    names = _check_names(names, d)

    kept_theta, kept_draws = [], []
    with progress_bar(
        total=num_simulations, desc="calibrate", unit="sim", disable=not progress
    ) as bar:
        for c, start in enumerate(range(0, num_simulations, chunk_size)):
            th = theta[start : start + chunk_size]
            nc = th.shape[0]
            x = np.asarray(simulate(jax.random.fold_in(k_sim, c), th))
            if x.ndim < 1 or x.shape[0] != nc:
                raise ValueError(
                    f"simulate: expected data with leading axis {nc} (one row per theta), "
                    f"got shape {x.shape}."
                )
            ok = np.all(np.isfinite(x.reshape(nc, -1)), axis=1)
            if ok.any():
                if not ok.all():
                    x = x.copy()
                    x[~ok] = x[np.argmax(ok)]
                draws = np.asarray(
                    posterior_samples(jax.random.fold_in(k_post, c), x, num_draws), dtype=float
                )
                if draws.shape != (nc, num_draws, d):
                    raise ValueError(
                        f"posterior_samples: expected shape (n, num_draws, d) = "
                        f"{(nc, num_draws, d)}, got {draws.shape}."
                    )
                kept_theta.append(th[ok])
                kept_draws.append(draws[ok])
            bar.update(nc)

    if not kept_theta:
        raise ValueError(f"simulate: all {num_simulations} simulations returned non-finite data.")
    truths = np.concatenate(kept_theta)
    samples = np.concatenate(kept_draws)
    n_failed = num_simulations - truths.shape[0]
    result = sbc(samples, truths, names)
    result.n_failed = n_failed
    return result, tarp(samples, truths, k_tarp, **dict(tarp_options or {}))
