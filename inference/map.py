"""Gradient MAP in the unconstrained space, and the Laplace approximation at the mode.

`map_estimate` maximises the log joint density (log prior + log likelihood +
log |Jacobian| of the transforms) over the flat unconstrained vector of
`BayesianModel.logdensity`, from several starts at once (one vmapped optax
step), and returns the best mode in the constrained space with units.
`MAPResult.laplace` approximates the posterior by a Gaussian in the
unconstrained space with the inverse of the negative Hessian of the log
density at the mode as covariance (as DCM's variational Laplace does),
mapped back through the transforms.

Note: the mode in the unconstrained space is the mode of the density of the
unconstrained parameters, which includes the Jacobian of the transforms (for a
positive parameter with a log transform, the mode of `log theta`). That is the
point the Laplace approximation is centred on, and it is what NumPyro's
`AutoLaplaceApproximation` uses too.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from brainmass.progress import progress_bar

from . import _cache
from ._checks import check_integers
from .model import AbstractBayesianModel, LogDensity, predictive
from .results import Posterior

__all__ = ["map_estimate", "MAPResult", "Mode", "laplace"]


@dataclass
class MAPResult:
    """The outcome of `map_estimate`.

    **Attributes:**

    - `params`: `{site: value}` at the best mode, in the constrained space and
      the parameters' canonical units (`units`), with deterministic sites.
    - `units`: `{path: unit name}` of the simulator parameters.
    - `log_density`: the log joint density at the mode (unconstrained space).
    - `z`: `(d,)`, the mode in the flat unconstrained space.
    - `start_log_densities`: `(num_starts,)`, the best log density each start reached.
    - `history`: `(steps run, num_starts)`, the log density at every step of every start.
    - `n_failed`: evaluations where the simulation failed (log density -inf).
    - `wall_time`: seconds (compilation included).
    - `n_failed_starts`: starts that never reached a finite log density (their
      entry of `start_log_densities` is -inf).
    - `modes`: the separated modes the starts reached (`Mode`: where, how high, the
      Laplace share of the posterior mass, how many starts), best first; the first
      is the mode of `params`. More than one with a non-negligible `weight` means a
      multimodal posterior (see `nuts`, which warns about it).
    """

    params: dict[str, np.ndarray]
    units: dict[str, str]
    log_density: float
    z: np.ndarray
    start_log_densities: np.ndarray
    history: np.ndarray
    n_failed: int
    wall_time: float
    n_failed_starts: int = 0
    modes: tuple[Mode, ...] = ()
    _bmodel: AbstractBayesianModel | None = field(default=None, repr=False)
    _ld: LogDensity | None = field(default=None, repr=False)
    _data: Any = field(default=None, repr=False)
    # the Hessian at `z` from `map_estimate`'s Newton steps (None without them)
    _mode_hessian: np.ndarray | None = field(default=None, repr=False)

    def laplace(
        self,
        key: Any,
        num_draws: int = 1000,
        *,
        hessian: str = "auto",
        posterior_predictive: bool = True,
    ) -> Posterior:
        """The Laplace approximation at this mode, as a one-chain `Posterior` (see `laplace`)."""
        return laplace(
            self, key, num_draws, hessian=hessian, posterior_predictive=posterior_predictive
        )

    def to_posterior(self, key: Any = None, *, posterior_predictive: bool = True) -> Posterior:
        """The mode as a one-chain, one-draw `Posterior` (`method="map"`).

        For the tools that take a `Posterior`: ArviZ (`to_arviz`), posterior predictive
        checks at the point estimate, and the pointwise log-likelihood at the mode
        (`log_likelihood`, `(1, 1, *obs_shape)`: the terms whose sum with the log prior
        is `log_density` up to the Jacobian of the transforms, for deviance-type
        criteria). A single draw carries no posterior uncertainty: use `laplace` or
        `nuts` for LOO (`az.loo` needs many draws).

        **Arguments:**

        - `key`: a `jax.random` key for the predictive draw (default `key(0)`).
        - `posterior_predictive`: also compute the pointwise log-likelihood and one data
          draw at the mode (one simulation).

        **Returns:** a `Posterior` with `samples` `{site: (1, 1, *shape)}` (latent and
        deterministic sites, constrained, canonical units), `lp` `(1, 1)` in
        `sample_stats` and `info["mode_log_density"]`.
        """
        if self._ld is None:
            raise ValueError("to_posterior: this MAPResult has no model attached.")
        key = jax.random.key(0) if key is None else key
        samples = {k: np.asarray(v)[None, None] for k, v in self.params.items()}
        return _one_chain_posterior(
            self,
            "map",
            samples,
            np.full((1, 1), self.log_density),
            key if posterior_predictive else None,
            {"mode_log_density": self.log_density, "wall_time": self.wall_time},
            batch_size=1,
        )

    def to_arviz(self, key: Any = None) -> Any:
        """An ArviZ `xarray.DataTree` of the mode: `to_posterior(key).to_arviz()`.

        Groups `posterior` (one chain, one draw), `sample_stats` (`lp`),
        `observed_data`, `log_likelihood` and `posterior_predictive` at the mode;
        parameter units in the variables' attrs.
        """
        return self.to_posterior(key).to_arviz()

    def laplace_points(self, key: Any, n: int) -> Any:
        """`n` flat unconstrained draws from the Laplace approximation (NUTS starting points)."""
        mean, chol = _gaussian(self, "auto")
        eps = jax.random.normal(key, (n, mean.shape[0]))
        return mean[None, :] + eps @ chol.T

    def __repr__(self) -> str:
        parts = []
        for k, v in self.params.items():
            v = np.asarray(v)
            unit = self.units.get(k, "")
            text = f"{float(v):.4g}" if v.ndim == 0 else f"shape {v.shape}"
            parts.append(f"{k} = {text}{' ' + unit if unit and v.ndim == 0 else ''}")
        return f"MAPResult(log density {self.log_density:.4g}; " + "; ".join(parts) + ")"


@dataclass(frozen=True)
class Mode:
    """One of the separated modes the starts of `map_estimate` reached.

    Starts are grouped greedily from the highest log density down: a start joins
    the first mode to which it is joined by a straight path along which the log
    density never drops more than 1 nat below the lower end (a start that stopped
    short on a ridge of the same hill); otherwise it founds a mode of its own.

    **Attributes:**

    - `params`: `{site: value}` at the mode, constrained, in canonical units.
    - `z`: `(d,)`, the mode in the flat unconstrained space.
    - `log_density`: the log joint density at the mode (unconstrained space).
    - `log_mass`: the Laplace estimate of the log posterior mass around the mode,
      `log_density + d/2 log(2 pi) - 1/2 log det(-H)`, computed when two or more modes
      lie within `MODE_WINDOW` (50) nats of the best; NaN otherwise, and where `-H` is
      not positive definite (a saddle, or the optimiser stopped short of the mode).
    - `weight`: `exp(log_mass)` normalised over the modes with a finite `log_mass`
      (0 for the others): the share of the posterior mass the mode carries under
      the Laplace approximation; 1 for the best mode when it is the only one within
      the window.
    - `n_starts`: how many starts ended in the mode.
    - `covariance`: `(d, d)`, the Laplace covariance in the unconstrained space (the
      inverse of the negative Hessian at the mode); None where `log_mass` is NaN.
    """

    params: dict[str, np.ndarray]
    z: np.ndarray
    log_density: float
    log_mass: float
    weight: float
    n_starts: int
    covariance: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        """The mode as plain numbers (JSON-friendly): `params`, `log_density`, ...."""
        return dict(
            params={k: np.asarray(v).tolist() for k, v in self.params.items()},
            log_density=self.log_density,
            log_mass=self.log_mass,
            weight=self.weight,
            n_starts=self.n_starts,
        )


# modes further below the best in log density are not examined (their Laplace mass
# would need a volume ratio above e^50 to matter)
MODE_WINDOW = 50.0
MAX_MODES = 8
# the hill-valley test: points along the segment between two end points, and the drop
# in log density (nats) below the lower end that makes a valley between them
VALLEY_POINTS = 7
VALLEY = 1.0


def _group_modes(
    bmodel, ld: LogDensity, data, z_ends, lps, log_density=None, hessians=None
) -> tuple[Mode, ...]:
    """The separated modes among the starts' end points `z_ends (starts, d)`, best first.

    A start joins a mode when the log density along the straight segment between them
    never drops more than `VALLEY` nats below the lower end (a "hill-valley" test: an
    optimiser that stopped short on a ridge is on the same hill, a second mode is
    behind a valley); end points more than `MODE_WINDOW` nats below the best are
    grouped by distance alone. The Hessians (the Laplace masses, weights and
    covariances) are computed only when two or more modes lie within the window: a
    single mode has weight 1 without them (its `log_mass` is then NaN). `log_density`:
    `(n, d) -> (n,)`, the log density at points (the compiled one of `map_estimate`);
    by default `ld.fn_data` vmapped. `hessians`: `(starts, d, d)` at the end points (from
    the Newton steps), used instead of computing them.
    """
    if log_density is None:
        fn = jax.jit(jax.vmap(ld.fn_data, (0, None)))
        log_density = lambda pts: np.asarray(fn(jnp.asarray(pts), data))  # noqa: E731
    finite = np.flatnonzero(np.isfinite(lps))
    order = finite[np.argsort(-lps[finite], kind="stable")]
    best = float(lps[order[0]])
    groups: list[dict[str, Any]] = []  # z, lp, n, examined
    dtype = np.asarray(z_ends).dtype
    t = np.linspace(0.0, 1.0, VALLEY_POINTS + 2)[1:-1, None]

    def connected(g, z, lp):
        segment = (1 - t) * g["z"][None, :] + t * z[None, :]
        along = log_density(segment.astype(dtype))
        return bool(np.all(np.isfinite(along))) and along.min() >= min(g["lp"], lp) - VALLEY

    for i in order:
        z, lp = np.asarray(z_ends[i], dtype=np.float64), float(lps[i])
        examined = lp >= best - MODE_WINDOW
        for g in groups:
            if not (examined and g["examined"]):  # far below the best: a plain distance
                near = np.linalg.norm(z - g["z"]) <= 0.1 * (1.0 + np.linalg.norm(g["z"]))
                if near:
                    break
            elif connected(g, z, lp):
                break
        else:
            if len(groups) < MAX_MODES:
                groups.append(dict(z=z, lp=lp, n=1, examined=examined, start=i))
            continue
        g["n"] += 1
    several = sum(g["examined"] for g in groups) > 1
    covariances = []
    for g in groups:
        cov = None
        if several and g["examined"]:
            if hessians is not None:
                hess = hessians[g["start"]]
            else:
                hess, _ = _hessian(bmodel, ld, jnp.asarray(g["z"], dtype), data, "auto", warn=False)
            precision, lowest = _precision(hess)
            cov = np.linalg.inv(precision) if lowest > 0 else None
        covariances.append(cov)
    log_mass = np.array(
        [
            _laplace_log_mass(g["lp"], c) if c is not None else np.nan
            for g, c in zip(groups, covariances, strict=True)
        ]
    )
    ok = np.isfinite(log_mass)
    weight = np.zeros(len(groups))
    if ok.any():
        w = np.exp(log_mass[ok] - log_mass[ok].max())
        weight[ok] = w / w.sum()
    elif not several:
        weight[0] = 1.0  # one mode within the window: all the mass (to the Laplace order)
    return tuple(
        Mode(
            params={
                k: np.asarray(v)
                for k, v in ld.constrain(jnp.asarray(g["z"], ld.init.dtype)).items()
            },
            z=g["z"].astype(np.asarray(ld.init).dtype),
            log_density=g["lp"],
            log_mass=float(m),
            weight=float(w),
            n_starts=g["n"],
            covariance=c,
        )
        for g, m, w, c in zip(groups, log_mass, weight, covariances, strict=True)
    )


def map_estimate(
    bmodel: AbstractBayesianModel,
    data: Any,
    key: Any,
    *,
    num_starts: int = 4,
    steps: int = 500,
    learning_rate: float = 0.05,
    optimizer: optax.GradientTransformation | None = None,
    batch: bool = False,
    chunk_size: int = 50,
    progress: bool = True,
    tol: float | None = None,
    newton: int = 0,
) -> MAPResult | list[MAPResult]:
    """The maximum a posteriori point by gradient ascent in the unconstrained space.

    **Arguments:**

    - `bmodel`: an `inference.BayesianModel` or `inference.CohortModel`.
    - `data`: the observed data; with `batch=True`, datasets stacked on a
      leading subject axis.
    - `key`: a `jax.random` key (the random starts).
    - `num_starts`: starts optimised at once (one vmapped step): the priors'
      medians and `num_starts - 1` prior draws.
    - `steps`: optimiser steps per start.
    - `learning_rate`: of the default optimiser, `optax.adam`.
    - `optimizer`: any optax optimiser (overrides `learning_rate`).
    - `batch`: fit every dataset of the batch at once (one vmapped optimiser);
      returns a list of results, one per subject.
    - `chunk_size`: steps per compiled chunk (the progress bar moves per chunk).
    - `progress`: show a progress bar.
    - `tol`: stop early once no start's best log density rose by more than `tol`
      nats over the last chunk of `chunk_size` steps (every subject's, with
      `batch=True`); None (default): run all `steps`. `nuts`'s default start uses
      `tol=0.01`.
    - `newton`: damped Newton steps on every start after the optimiser (0: none; `nuts`'s
      default start uses 8). Adam's constant step leaves an ill-conditioned mode
      unfinished (a Jansen-Rit EEG fit: 1,065 nats after 500 steps, 1,283 at the mode);
      Newton's steps with the exact Hessian finish it in a few. Each step: the Hessian
      (`d` forward-over-reverse products), its eigendecomposition shifted to be negative
      definite (Levenberg-Marquardt), and the best of 7 step lengths (1, 1/2, ..., 1/32,
      0: never downhill). Skipped when the unconstrained dimension `d` exceeds 100.

    A start whose simulation fails (log density -inf or a NaN gradient) stays
    where it was; the count of such evaluations is `n_failed`, and the starts
    that never reached a finite log density are `n_failed_starts`. When more
    than half of the starts fail, a `UserWarning` says how many (the mode is
    then the best of the few that ran, possibly a poor one); when every start
    fails, a `RuntimeError` (per subject with `batch=True`).
    """
    check_integers(("num_starts", num_starts, 1), ("steps", steps, 1))
    if not isinstance(bmodel, AbstractBayesianModel):
        raise ValueError(
            f"bmodel: expected an inference.BayesianModel or CohortModel, got {bmodel!r}."
        )
    data = bmodel.observed(data, batch)
    from .mcmc import _subjects

    subjects = _subjects(bmodel, data, batch)
    t0 = time.perf_counter()
    k_init, k_starts = jax.random.split(key)
    first = jax.tree.map(lambda x: x[0], data) if batch else data
    ld = bmodel.logdensity(first, k_init)
    starts = [ld.init[None, :]]
    if num_starts > 1:
        draws = bmodel.sample_prior(k_starts, num_starts - 1)
        latent = bmodel.latent_sites()
        flat = jax.vmap(bmodel.flatten)({s: jnp.asarray(draws[s]) for s in latent})
        starts.append(flat)
    z = jnp.concatenate(starts, axis=0)
    if batch:
        z = jnp.broadcast_to(z, (subjects, *z.shape))
    data_j = jax.tree.map(jnp.asarray, data)

    opt = optimizer if optimizer is not None else optax.adam(learning_rate)
    opt_name = ("adam", float(learning_rate)) if optimizer is None else ("user", id(optimizer))
    fn_data = ld.fn_data

    def step(carry, data):
        z, opt_state, best_z, best_lp, failed = carry
        lp, g = jax.vmap(jax.value_and_grad(fn_data), (0, None))(z, data)
        bad = ~(jnp.isfinite(lp) & jnp.all(jnp.isfinite(g), axis=-1))
        g = jnp.where(bad[:, None], 0.0, g)
        updates, new_state = jax.vmap(opt.update)(jax.tree.map(jnp.negative, g), opt_state, z)
        new_z = jnp.where(bad[:, None], z, optax.apply_updates(z, updates))
        lp_safe = jnp.where(bad, -jnp.inf, lp)
        better = lp_safe > best_lp
        best_z = jnp.where(better[:, None], z, best_z)
        best_lp = jnp.where(better, lp_safe, best_lp)
        return (new_z, new_state, best_z, best_lp, failed + jnp.sum(bad)), lp_safe

    def build(n):
        def chunk(carry, data):
            return jax.lax.scan(lambda c, _: step(c, data), carry, None, length=n)

        return jax.jit(jax.vmap(chunk) if batch else chunk)

    def final(z, data):
        return jax.vmap(fn_data, (0, None))(z, data)

    evaluate = _cache.compiled(
        bmodel, ("map-final", batch), lambda: jax.jit(jax.vmap(final) if batch else final)
    )
    init_opt = jax.vmap(opt.init)
    opt_state = jax.vmap(init_opt)(z) if batch else init_opt(z)
    lead = z.shape[:-1]
    # strong dtypes: a weakly typed -inf would change type after the first chunk and
    # compile the chunk a second time
    best0 = jnp.full(lead, -jnp.inf, dtype=z.dtype)
    carry = (z, opt_state, z, best0, jnp.zeros(lead[:-1], dtype=jnp.int32))
    history = []
    bar = progress_bar(total=int(steps), desc="MAP", unit="step", disable=not progress)
    done = 0
    try:
        while done < steps:
            n = min(int(chunk_size), int(steps) - done)
            fn = _cache.compiled(bmodel, ("map", opt_name, n, batch), lambda n=n: build(n))
            before = np.asarray(carry[3])
            carry, lps = fn(carry, data_j)
            history.append(np.asarray(lps))
            done += n
            bar.update(n)
            if tol is not None and done > n:  # the first chunk starts from -inf
                with np.errstate(invalid="ignore"):  # -inf - -inf: a failed start
                    rise = np.asarray(carry[3]) - before
                if np.all(~np.isfinite(before) | (rise <= tol)):
                    break
    finally:
        bar.close()
    z_last, _, best_z, best_lp, failed = carry
    lp_last = evaluate(z_last, data_j)  # the last point has not been evaluated in the loop
    better = lp_last > best_lp
    best_z = np.asarray(jnp.where(better[..., None], z_last, best_z))
    best_lp = np.asarray(jnp.where(better, lp_last, best_lp))
    history = np.concatenate(history, axis=1 if batch else 0)
    hessians = None  # at each start's end point, from the Newton steps
    if newton > 0 and best_z.shape[-1] <= NEWTON_MAX_DIM:
        best_z, best_lp, hessians = _polish(bmodel, fn_data, best_z, data_j, int(newton), batch)
    wall = time.perf_counter() - t0
    results = []
    for i in range(subjects if batch else 1):
        pick = (lambda x, i=i: x[i]) if batch else (lambda x: x)
        lps = pick(best_lp)
        n_failed = int(pick(np.asarray(failed)))
        n_bad = int(np.sum(~np.isfinite(lps)))
        n_all = int(lps.shape[0])
        subject = f" for subject {i}" if batch else ""
        if n_bad == n_all:
            raise RuntimeError(
                f"map_estimate: every one of the {n_all} starts failed{subject} ({n_failed} "
                "evaluations failed: the simulation blew up or the log density is -inf "
                "everywhere visited); check the priors (their medians and draws are the "
                "starts) and the data."
            )
        if 2 * n_bad > n_all:
            warnings.warn(
                f"map_estimate: {n_bad} of {n_all} starts failed{subject} (the simulation "
                "blew up or the log density was -inf at every point they visited); the mode "
                f"is the best of the other {n_all - n_bad}, and may be a poor one. Narrow the "
                "priors or give more starts (num_starts=...).",
                UserWarning,
                stacklevel=2,
            )
        j = int(np.argmax(np.where(np.isfinite(lps), lps, -np.inf)))
        mode = pick(best_z)[j]
        params = {k: np.asarray(v) for k, v in ld.constrain(jnp.asarray(mode)).items()}
        data_i = jax.tree.map(pick, data_j) if batch else data_j
        results.append(
            MAPResult(
                params=params,
                units=dict(bmodel.units),
                log_density=float(lps[j]),
                z=np.asarray(mode),
                start_log_densities=lps,
                history=pick(history) if not batch else history[i],
                n_failed=n_failed,
                wall_time=wall,
                n_failed_starts=n_bad,
                modes=_group_modes(
                    bmodel,
                    ld,
                    data_i,
                    pick(best_z),
                    lps,
                    _rows(evaluate, data_j, i, batch, lead),
                    None if hessians is None else pick(hessians),
                ),
                _bmodel=bmodel,
                _ld=ld,
                _data=jax.tree.map(pick, data) if batch else data,
                _mode_hessian=None if hessians is None else pick(hessians)[j],
            )
        )
    return results if batch else results[0]


NEWTON_MAX_DIM = 100  # beyond it, a Hessian per start per step costs more than it saves
_NEWTON_LENGTHS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.0)


def _polish(bmodel, fn_data, z, data, steps: int, batch: bool):
    """`map_estimate`'s Newton steps on every start: `(z, log density, Hessian)` (NumPy).

    The Hessian is forward-over-reverse autodiff, or central differences of the gradient
    where forward mode fails through the model (a `custom_vjp`; recorded once per model,
    as for the Laplace approximation).
    """
    for forward in (True, False):
        if forward and _no_forward_mode(bmodel):
            continue
        fn = _cache.compiled(
            bmodel,
            ("map-newton", steps, batch, forward),
            lambda forward=forward: _newton_fn(fn_data, steps, batch, forward),
        )
        try:
            return tuple(np.asarray(x) for x in fn(jnp.asarray(z), data))
        except Exception as err:  # forward mode through a custom_vjp
            if not forward:
                raise
            _no_forward_mode(bmodel).append(type(err).__name__)
    raise AssertionError("unreachable")


def _newton_fn(fn_data, steps: int, batch: bool, forward: bool = True):
    """Compiled `(z ([subjects,] starts, d), data) -> (z, log density, Hessian)`: Newton steps.

    Each step solves `(-H + lam I) s = g` through the eigendecomposition of `-H`
    (`lam` lifts its smallest eigenvalue to 1e-3 + 1e-6 times its largest when it is
    below: a Levenberg-Marquardt step, an ascent direction) and moves by
    the best of `_NEWTON_LENGTHS` times `s`; a length of 0 keeps the point, so the log
    density never falls. Non-finite densities count as -inf. The Hessian returned,
    `([subjects,] starts, d, d)`, is the one at the final point.
    """
    lengths = jnp.asarray(_NEWTON_LENGTHS)

    def value(z, data):
        lp = fn_data(z, data)
        return jnp.where(jnp.isfinite(lp), lp, -jnp.inf)

    def hessian(z, data):
        return jax.hessian(fn_data)(z, data) if forward else _central_hessian(fn_data, z, data)

    def one(z, data):
        def step(z, last):
            g = jax.grad(fn_data)(z, data)
            hess = hessian(z, data)
            w, v = jnp.linalg.eigh(-hess)
            floor = 1e-3 + 1e-6 * jnp.max(jnp.abs(w))  # float32: condition numbers to 1e6
            w = w + jnp.maximum(0.0, floor - jnp.min(w))
            s = v @ ((v.T @ g) / w)
            s = jnp.where(jnp.all(jnp.isfinite(s)) & ~last, s, 0.0)
            trials = z[None, :] + lengths[:, None] * s[None, :]
            lps = jax.vmap(value, (0, None))(trials, data)
            return trials[jnp.argmax(lps)], hess

        # `steps` steps, then one that stays (`last`): the Hessian at the final point, for
        # the Laplace approximation and the modes' masses without another compiled Hessian
        last = jnp.arange(steps + 1) == steps
        z, hessians = jax.lax.scan(step, z, last)
        return z, value(z, data), hessians[-1]

    starts = jax.vmap(one, (0, None))
    return jax.jit(jax.vmap(starts, (0, 0)) if batch else starts)


def _rows(evaluate, data, i: int, batch: bool, lead: tuple):
    """`(n, d) -> (n,)`: the log density of subject `i` at points.

    Through the compiled `evaluate` of `map_estimate` (`lead`: its batch shape, to
    which the points are padded), so grouping the modes compiles nothing new.
    """
    width = lead[-1]

    def log_density(points):
        out = []
        for j in range(0, len(points), width):
            rows = np.asarray(points[j : j + width])
            pad = np.concatenate([rows, np.repeat(rows[-1:], width - len(rows), axis=0)])
            z = np.broadcast_to(pad, (*lead, pad.shape[-1])) if batch else pad
            lp = np.asarray(evaluate(jnp.asarray(z), data))
            out.append((lp[i] if batch else lp)[: len(rows)])
        return np.concatenate(out)

    return log_density


# ----------------------------------------------------------------------------- Laplace


def _hessian(bmodel: AbstractBayesianModel, ld: LogDensity, z, data, how: str, warn=True):
    """The Hessian `(d, d)` of the log density at `z` given `data`, and how it was computed.

    Forward-over-reverse autodiff, or central differences of the gradient when forward
    mode is unavailable (delayed simulators with lane batching). One compiled function
    per model and method (the data and the point are arguments): the Laplace
    approximation and every mode of `map_estimate` share it.
    """
    if how not in ("auto", "autodiff", "fd"):
        raise ValueError(f"hessian: expected 'auto', 'autodiff' or 'fd', got {how!r}.")
    if how in ("auto", "autodiff") and not _no_forward_mode(bmodel):
        fn = _cache.compiled(
            bmodel, ("hessian", "autodiff"), lambda: jax.jit(jax.hessian(ld.fn_data))
        )
        try:
            return fn(z, data), "autodiff"
        except Exception as err:  # forward mode through a custom_vjp
            if how == "autodiff":
                raise
            _no_forward_mode(bmodel).append(type(err).__name__)
            if warn:
                warnings.warn(
                    f"laplace: forward-mode autodiff failed ({type(err).__name__}); using "
                    "central differences of the gradient for the Hessian.",
                    stacklevel=3,
                )
    elif how == "autodiff":
        raise RuntimeError("hessian='autodiff': forward mode is unavailable for this model.")

    central = jax.jit(partial(_central_hessian, ld.fn_data))
    return _cache.compiled(bmodel, ("hessian", "fd"), lambda: central)(z, data), "fd"


def _central_hessian(fn_data, z, data):
    """The Hessian of `fn_data(., data)` at `z` by central differences of its gradient."""
    h = 1e-3 * jnp.maximum(1.0, jnp.abs(z))
    eye = jnp.eye(z.shape[0], dtype=z.dtype) * h[:, None]
    grad = jax.vmap(jax.grad(fn_data), (0, None))
    hess = (grad(z[None, :] + eye, data) - grad(z[None, :] - eye, data)) / (2 * h[:, None])
    return 0.5 * (hess + hess.T)


def _no_forward_mode(bmodel) -> list:
    """The model's record of failed forward-mode Hessians: empty (falsy) until one fails."""
    return _cache.compiled(bmodel, ("hessian-no-fwd",), list)


def _precision(hess) -> tuple[np.ndarray, float]:
    """The negative Hessian symmetrised in float64, and its smallest eigenvalue.

    The Laplace precision, usable where the eigenvalue is positive (NaN if not finite).
    """
    precision = -np.asarray(hess, dtype=np.float64)
    precision = 0.5 * (precision + precision.T)
    eig = np.linalg.eigvalsh(precision)
    return precision, float(eig.min()) if np.all(np.isfinite(eig)) else float("nan")


def _laplace_log_mass(log_density: float, covariance) -> float:
    """The Laplace estimate of the log mass of a mode: `lp + d/2 log 2 pi + 1/2 log det C`."""
    d = np.shape(covariance)[0]
    return float(log_density + 0.5 * d * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(covariance)[1])


def _gaussian(result: MAPResult, how: str):
    """Mean and Cholesky factor of the Laplace Gaussian in the unconstrained space.

    Computed once per result and `how` (kept in `inference._cache`, held weakly by the
    result; nothing is stored on it): `laplace` and the NUTS starting points share it.
    """
    if how not in ("auto", "autodiff", "fd"):
        raise ValueError(f"hessian: expected 'auto', 'autodiff' or 'fd', got {how!r}.")
    if result._ld is None:
        raise ValueError("laplace: this MAPResult has no model attached (was it loaded?).")
    z, chol, _ = _cache.compiled(result, ("laplace", how), lambda: _factor(result, how))
    return z, chol


def _hessian_used(result: MAPResult, how: str) -> str:
    """How the Hessian of `_gaussian(result, how)` was computed: "autodiff" or "fd"."""
    return _cache.compiled(result, ("laplace", how), lambda: _factor(result, how))[2]


def _factor(result: MAPResult, how: str):
    """`(mode z, Cholesky factor of the covariance, how the Hessian was computed)`.

    With `how="auto"`, the covariance `map_estimate` already computed for the best mode
    (`modes[0].covariance`, present when several modes were weighed) is reused, or the
    Hessian its Newton steps computed at the mode.
    """
    z = jnp.asarray(result.z)
    best = result.modes[0] if result.modes else None
    if how == "auto" and best is not None and best.covariance is not None:
        cov = np.asarray(best.covariance, dtype=np.float64)
        used = "fd" if _no_forward_mode(result._bmodel) else "autodiff"
    else:
        if how == "auto" and result._mode_hessian is not None:  # from the Newton steps
            hess = result._mode_hessian
            used = "fd" if _no_forward_mode(result._bmodel) else "autodiff"
        else:
            data = jax.tree.map(jnp.asarray, result._data)
            hess, used = _hessian(result._bmodel, result._ld, z, data, how)
        precision, lowest = _precision(hess)
        if not lowest > 0:
            raise RuntimeError(
                "laplace: the negative Hessian at the mode is not positive definite (smallest "
                f"eigenvalue {lowest:.3g}); the MAP may not have converged (more steps) or the "
                "posterior is not locally Gaussian there."
            )
        cov = np.linalg.inv(precision)
    chol = np.linalg.cholesky(0.5 * (cov + cov.T))
    return z, jnp.asarray(chol, dtype=z.dtype), used


def laplace(
    result: MAPResult,
    key: Any,
    num_draws: int = 1000,
    *,
    hessian: str = "auto",
    posterior_predictive: bool = True,
) -> Posterior:
    """Draws from the Laplace approximation at a MAP mode, as a one-chain `Posterior`.

    **Arguments:**

    - `result`: a `MAPResult` from `map_estimate`.
    - `key`: a `jax.random` key.
    - `num_draws`: draws from the Gaussian (mapped to the constrained space).
    - `hessian`: `"auto"` (autodiff, falling back to central differences of the
      gradient where forward mode is unavailable), `"autodiff"` or `"fd"`.
    - `posterior_predictive`: also compute the pointwise log-likelihood and posterior
      predictive draws at every draw (one simulation each), as `nuts` does, so
      `az.loo` and posterior predictive checks work on the result. The Gaussian draws
      themselves do not depend on it (the predictive draws use `fold_in(key, 1)`).

    **Returns:** a `Posterior` with `method="laplace"`, one chain, `lp` (the log
    density at each draw) in `sample_stats`, the log-likelihood and posterior
    predictive groups (with `posterior_predictive=True`) and `info["covariance"]`
    (the unconstrained covariance, `(d, d)`).
    """
    check_integers(("num_draws", num_draws, 1))
    mean, chol = _gaussian(result, hessian)
    eps = jax.random.normal(key, (int(num_draws), mean.shape[0]), dtype=mean.dtype)
    flat = mean[None, :] + eps @ chol.T
    ld = result._ld
    samples = jax.jit(jax.vmap(ld.constrain))(flat)
    samples = {k: np.asarray(v)[None] for k, v in samples.items()}
    lp_fn = jax.vmap(ld.fn_data, (0, None))
    lp = np.asarray(jax.jit(lp_fn)(flat, jax.tree.map(jnp.asarray, result._data)))[None]
    cov = np.asarray(chol) @ np.asarray(chol).T
    info = {
        "num_draws": int(num_draws),
        "hessian": _hessian_used(result, hessian),
        "covariance": cov,
        "mode_log_density": result.log_density,
    }
    pred_key = jax.random.fold_in(key, 1) if posterior_predictive else None
    return _one_chain_posterior(result, "laplace", samples, lp, pred_key, info)


def _one_chain_posterior(result, method, samples, lp, pred_key, info, batch_size=64):
    """A one-chain `Posterior` of `result`'s model and data (`laplace`, `to_posterior`).

    `samples` `{site: (1, n, ...)}`, `lp` `(1, n)`; with a `pred_key`, the pointwise
    log-likelihood and posterior predictive draws at every draw (`predictive`).
    """
    bmodel = result._bmodel
    log_lik = draws_pred = None
    if pred_key is not None:
        log_lik, draws_pred = predictive(
            bmodel, samples, result._data, pred_key, batch_size=batch_size
        )
    dims, coords = bmodel.dims()
    return Posterior(
        samples=samples,
        sample_stats={"lp": lp},
        units=dict(bmodel.units),
        method=method,
        observed=np.asarray(bmodel.check_data(result._data)),
        log_likelihood=log_lik,
        posterior_predictive=draws_pred,
        dims=dims,
        coords=coords,
        info=info,
    )
