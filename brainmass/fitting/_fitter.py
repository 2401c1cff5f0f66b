r"""Fitter: fit simulator parameters to data by gradients or by gradient-free search.

The loss of a point $z$ of the unconstrained search space (`ParameterSpace`)
is `objective(sim.function(paths)(theta(z), key), target)`; a simulation
that blows up, or a loss that is NaN or inf, counts as an infinite loss and
the fit goes on (the result counts the failures).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import cache
from ..checks import check_int, check_key
from ..errors import SimulationError
from ..recording import Recording
from ..simulator import Simulator
from ..units import to_canonical
from ._result import FitResult
from ._space import AbstractParameter, ParameterSpace

__all__ = ["Fitter", "GRADIENT_METHODS", "SCIPY_METHODS"]

GRADIENT_METHODS: dict[str, Callable] = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "adabelief": optax.adabelief,
    "rmsprop": optax.rmsprop,
    "sgd": optax.sgd,
    "lion": optax.lion,
}
"""Gradient methods by name: the optax optimizer called with the learning rate."""

SCIPY_METHODS = ("L-BFGS-B", "Nelder-Mead", "differential_evolution")
"""SciPy methods: `scipy.optimize.minimize` (L-BFGS-B with JAX gradients, Nelder-Mead) and
`scipy.optimize.differential_evolution` (vectorised: each generation is one vmapped batch)."""


def _nevergrad_names() -> list[str]:
    import nevergrad as ng

    return sorted(ng.optimizers.registry)


def _method_kind(method: Any) -> tuple[str, str]:
    """`(kind, name)`: kind is "gradient", "nevergrad" or "scipy"."""
    if isinstance(method, optax.GradientTransformation):
        return "gradient", "optax"
    if not isinstance(method, str):
        raise ValueError(
            f"method: expected a name or an optax.GradientTransformation, got {method!r}."
        )
    if method in GRADIENT_METHODS:
        return "gradient", method
    if method in SCIPY_METHODS:
        return "scipy", method
    name = method.removeprefix("nevergrad:").removeprefix("ng:")
    names = _nevergrad_names()
    if name in names:
        return "nevergrad", name
    import difflib

    close = difflib.get_close_matches(name, [*GRADIENT_METHODS, *SCIPY_METHODS, *names], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"method: unknown method {method!r}.{hint} Expected a gradient method "
        f"{sorted(GRADIENT_METHODS)} (or an optax.GradientTransformation), a SciPy method "
        f"{list(SCIPY_METHODS)}, or a nevergrad optimizer name (NGOpt, CMA, DE, PSO, "
        "TwoPointsDE, OnePlusOne, ...)."
    )


class Fitter:
    r"""Fit parameters of a `Simulator` to a target by minimising an objective.

    **Arguments:**

    - `sim`: the `Simulator`.
    - `params`: the free parameters, `{path: bm.Bounded(low, high, init=...) |
      bm.Positive(init=...) | bm.Unbounded(init=...)}`, scalars or, with
      `per_region=True`, one value per region. Optimisers search the
      unconstrained values $z$ of these transforms (see `ParameterSpace`).
    - `objective`: `objective(signal, target) -> scalar`, e.g. from
      `bm.objectives`; `signal` is `sim`'s output `(n_samples, n_channels)`.
    - `target`: the second argument of the objective (an array or a pytree), or a
      `brainmass.Recording`: aligned with the simulator (`Recording.for_simulator`:
      its period and channels checked, channels reordered by label, and, for an
      objective comparing samples such as `TimeSeriesRMSE` or a user function, the
      simulator's sample times picked).
    - `method`:
        - gradient methods (the default `"adam"`, `"adamw"`, `"sgd"`,
          `"rmsprop"`, `"adabelief"`, `"lion"`, or any
          `optax.GradientTransformation`): backpropagation through the solve;
          all starts run as one vmapped batch;
        - nevergrad optimisers by name (`"NGOpt"`, `"CMA"`, `"DE"`, `"PSO"`,
          `"TwoPointsDE"`, `"OnePlusOne"`, ...; also `"nevergrad:NAME"`):
          each generation of `population` candidates is one vmapped batch;
        - SciPy: `"L-BFGS-B"` (with JAX gradients), `"Nelder-Mead"`,
          `"differential_evolution"` (needs every parameter `Bounded`; each
          generation one vmapped batch).
    - `learning_rate`: a float or an optax schedule (gradient methods by
      name; default 0.05, in units of $z$: for `Bounded` and `Positive`
      parameters a step of 0.05 changes the value by about 1-5 %).
    - `clip_norm`: clip the gradient to this global norm (default None).
    - `num_starts`: gradient methods: starts run at once (vmap); the first is
      the initial point, the others random (`Bounded`: uniform in the bounds;
      `Positive`: a factor of up to 3 from the initial value). Default 1.
    - `population`: nevergrad: candidates per generation (default: the
      optimiser's own, at least 8); differential_evolution: its `popsize`
      multiplier (default 15).
    - `batch_size`: gradient-free methods: the most simulations run at once
      (one vmapped chunk; larger populations run in several). Default 64.
    - `noise`: for stochastic simulators. `"fixed"` (default): the same key
      for every evaluation (common random numbers), so the loss is a smooth
      deterministic function of the parameters; `"fresh"`: a new key per
      iteration (`fold_in(key, iteration)`), an unbiased but noisy loss.
    - `patience`, `min_delta`: stop when the best loss has not improved by
      more than `min_delta` for `patience` iterations (default: never stop
      early).
    - `progress`: show a progress bar (default True).

    **Failed evaluations.** A simulation that blows up, or an objective that is
    NaN or inf, is an infinite loss: the fit goes on and `FitResult.n_failed`
    counts them. When *every* evaluation fails (any method), `fit` does not
    raise: it returns a `FitResult` marked failed, with `loss = inf`,
    `n_failed == n_simulations` and `params` at the starting point (the first
    start), and warns (`UserWarning`) with the count and the reason found at
    the starting point (the `SimulationError` message naming where the run blew
    up, or the objective's value).
    """

    def __init__(
        self,
        sim: Simulator,
        params: Mapping[str, AbstractParameter],
        objective: Callable[[Any, Any], Any],
        target: Any,
        method: Any = "adam",
        *,
        learning_rate: Any = 0.05,
        clip_norm: float | None = None,
        num_starts: int = 1,
        population: int | None = None,
        batch_size: int = 64,
        noise: str = "fixed",
        patience: int | None = None,
        min_delta: float = 0.0,
        progress: bool = True,
    ):
        self.space = ParameterSpace(sim, params)
        self.sim = sim
        if not callable(objective):
            raise ValueError(
                f"objective: expected a function (signal, target) -> scalar, got {objective!r}."
            )
        self.objective = objective
        if isinstance(target, Recording):  # aligned with the simulator (period, channels, times)
            target = target.for_simulator(sim, times=getattr(objective, "sample_aligned", True))
        self.target = jax.tree.map(jnp.asarray, target)
        self.kind, self.method_name = _method_kind(method)
        self.method = method
        if self.kind == "gradient":
            if isinstance(method, optax.GradientTransformation):
                optimizer = method
            else:
                optimizer = GRADIENT_METHODS[method](learning_rate)
            if clip_norm is not None:
                if not clip_norm > 0:
                    raise ValueError(f"clip_norm: expected a norm > 0, got {clip_norm!r}.")
                optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
            self.optimizer = optimizer
        num_starts = check_int(num_starts, "num_starts", 1)
        if num_starts > 1 and self.kind != "gradient" and self.method_name != "L-BFGS-B":
            raise ValueError(
                f"num_starts: several starts are for gradient methods and L-BFGS-B; {method!r} "
                "searches with a population instead (population=)."
            )
        self.num_starts = num_starts
        if population is not None:
            population = check_int(population, "population", 2)
        self.population = population
        batch_size = check_int(batch_size, "batch_size", 1)
        self.batch_size = batch_size
        if noise not in ("fixed", "fresh"):
            raise ValueError(f"noise: expected 'fixed' or 'fresh', got {noise!r}.")
        self.noise = noise
        if patience is not None and not (isinstance(patience, int) and patience >= 1):
            raise ValueError(f"patience: expected None or an integer >= 1, got {patience!r}.")
        self.patience = patience
        self.min_delta = float(min_delta)
        self.progress = bool(progress)
        self.stochastic = sim.network.noise is not None
        if self.method_name == "differential_evolution" and self.space.box() is None:
            unbounded = [e.path for e in self.space.entries if e.bounds is None]
            raise ValueError(
                f"method: differential_evolution searches a box, but {unbounded} have no "
                "bounds; give every parameter as bm.Bounded(low, high)."
            )
        self._simulate = sim.function(self.space.paths, output="result")

    # ------------------------------------------------------------------ loss
    def _loss(self, z: Any, key: Any) -> tuple[Any, Any]:
        """`(loss, ok)` at the unconstrained point `z` `(size,)`; inf where not ok."""
        result = self._simulate(self.space.to_theta(z), key)
        value = jnp.reshape(jnp.asarray(self.objective(result.signal, self.target)), ())
        ok = jnp.asarray(result.ok) & jnp.isfinite(value)
        return jnp.where(ok, value, jnp.inf), ok

    def _jitted(self, name: str, build: Callable[[Fitter], Any]) -> Any:
        """The compiled function `build(fitter)`, built once per Fitter: repeated fits reuse it.

        Kept in `brainmass.cache` (never on the Fitter), built from a shallow copy so that
        the cached function does not keep this Fitter alive.
        """
        return cache.compiled(self, ("fitter", name), lambda: build(copy.copy(self)))

    def _key(self, key: Any, iteration: int) -> Any:
        if key is None:
            return None
        return key if self.noise == "fixed" else jax.random.fold_in(key, iteration)

    def loss(self, theta: Mapping[str, Any], key: Any = None) -> float:
        """The loss at parameter values `theta` `{path: value}` (canonical units or quantities)."""
        z = self._z_of(theta, "theta")
        single = self._jitted("loss", lambda f: eqx.filter_jit(f._loss))
        value, _ = single(z, self._check_key(key))
        return float(value)

    def _check_key(self, key: Any) -> Any:
        if key is None and (self.stochastic or self.noise == "fresh"):
            raise ValueError(
                "key: this simulator is stochastic (or noise='fresh'); pass a jax.random key."
            )
        return check_key(key, optional=True)

    # ------------------------------------------------------------------ fit
    def fit(self, key: Any = None, steps: int = 100, *, init: Any = None) -> FitResult:
        """Run the optimiser.

        **Arguments:**

        - `key`: a `jax.random` key (needed for stochastic simulators,
          `noise="fresh"` and random starts); with `noise="fixed"` every
          evaluation uses it (common random numbers).
        - `steps`: iterations: gradient steps (each runs every start), nevergrad
          generations, SciPy iterations (`maxiter`).
        - `init`: starting values `{path: value}` overriding the parameters'
          `init` (gradient methods with several starts: a list of such dicts
          gives the starts themselves).

        **Returns:** a `FitResult`.
        """
        steps = check_int(steps, "steps", 1)
        key = self._check_key(key)
        starts = self._starts(key, init)
        recorder = _Recorder(self, steps)
        if self.kind == "gradient":
            from ._gradient import run_gradient

            best_z, start_losses = run_gradient(self, key, steps, starts, recorder)
        elif self.kind == "nevergrad":
            from ._gradient_free import run_nevergrad

            best_z, start_losses = run_nevergrad(self, key, steps, starts[0], recorder)
        else:
            from ._gradient_free import run_scipy

            best_z, start_losses = run_scipy(self, key, steps, starts, recorder)
        if best_z is None:  # no evaluation succeeded: report the starting point
            best_z = starts[0]
        result = recorder.result(best_z, start_losses, time.perf_counter() - recorder.t0)
        if result.n_simulations > 0 and result.n_failed == result.n_simulations:
            warnings.warn(
                f"Fitter.fit ({self.method_name}): every one of the {result.n_simulations} "
                "evaluations failed, so the result holds the starting point with loss inf. "
                f"At the starting point: {self._failure_reason(starts[0], key)} Check the "
                "parameters' bounds and initial values (params=..., init=...).",
                UserWarning,
                stacklevel=2,
            )
        return result

    def _failure_reason(self, z: Any, key: Any) -> str:
        """Why the evaluation at `z` failed: the SimulationError message, or the objective."""
        try:
            result = self._simulate(self.space.to_theta(jnp.asarray(z)), self._key(key, 0))
            if not bool(result.ok):
                try:
                    result.check()
                except SimulationError as err:
                    return str(err).split(" run(key, check=False)")[0].rstrip("; ") + "."
                return "the simulation failed."
            value = self.objective(result.signal, self.target)
            return f"the simulation ran, but the objective returned {float(value)}."
        except Exception as err:  # the diagnosis must never hide the result
            return f"(could not re-evaluate it: {type(err).__name__}: {err})"

    def _z_of(self, values: Mapping[str, Any], name: str) -> Any:
        """The unconstrained point of `{path: value}` (quantities or canonical units)."""
        missing = [p for p in self.space.paths if p not in values]
        if missing:
            raise ValueError(f"{name}: missing values for {missing}.")
        specs = self.sim._specs()
        canonical = {p: to_canonical(values[p], specs[p].unit, p) for p in self.space.paths}
        return self.space.to_z(canonical)

    def _starts(self, key: Any, init: Any) -> Any:
        """The starting points `(num_starts, size)` in z: given ones first, then random ones."""
        inits = [] if init is None else list(init) if isinstance(init, list | tuple) else [init]
        if len(inits) not in (0, 1, self.num_starts):
            raise ValueError(
                f"init: expected one dict or a list of num_starts = {self.num_starts} dicts, "
                f"got {len(inits)}."
            )
        zs = []
        for i, values in enumerate(inits):
            z = self._z_of(values, f"init[{i}]")
            outside = [
                e.path
                for e in self.space.entries
                if not bool(jnp.all(jnp.isfinite(z[e.offset : e.offset + e.size])))
            ]
            if outside:
                raise ValueError(
                    f"init[{i}]: the values of {outside} lie outside the parameters' domains "
                    f"(bounds, or > 0 for Positive); got {values}."
                )
            zs.append(z)
        if len(zs) < self.num_starts:  # the initial point (unless given), then random ones
            if key is None and self.num_starts > 1:
                raise ValueError("key: random starts (num_starts > 1) need a jax.random key.")
            sub = None if key is None else jax.random.fold_in(key, 0x5EED)
            zs += list(self.space.random_starts(sub, self.num_starts)[len(zs) :])
        return jnp.stack(zs)


class _Recorder:
    """The outer driver's state: histories, counters, best point, progress bar."""

    def __init__(self, fitter: Fitter, steps: int):
        from ..progress import progress_bar

        self.fitter = fitter
        self.losses: list[float] = []
        self.best: list[float] = []
        self.sims: list[int] = []
        self.times: list[float] = []
        self.t0 = time.perf_counter()
        self.n_simulations = 0
        self.n_gradients = 0
        self.n_failed = 0
        self.best_loss = np.inf
        self.best_z = None
        self.stopped_early = False
        self._since_improvement = 0
        self.bar = progress_bar(
            total=steps, desc=f"fit ({fitter.method_name})", unit="it", disable=not fitter.progress
        )

    def record(self, zs: Any, losses: Any, *, gradients: int = 0) -> bool:
        """Record one iteration's evaluated points `(m, size)` and losses `(m,)`.

        **Returns:** True when early stopping says to stop.
        """
        losses = np.asarray(losses, dtype=float).reshape(-1)
        failed = ~np.isfinite(losses)
        self.n_failed += int(failed.sum())
        self.n_simulations += losses.size
        self.n_gradients += gradients
        lowest = float(np.min(np.where(failed, np.inf, losses))) if losses.size else np.inf
        improved = lowest < self.best_loss - self.fitter.min_delta
        if lowest < self.best_loss:
            self.best_loss = lowest
            self.best_z = np.asarray(zs)[int(np.argmin(np.where(failed, np.inf, losses)))]
        self.losses.append(lowest)
        self.best.append(self.best_loss)
        self.sims.append(self.n_simulations)
        self.times.append(time.perf_counter() - self.t0)
        self.bar.update(1)
        self.bar.set_postfix(best=f"{self.best_loss:.4g}", refresh=False)
        self._since_improvement = 0 if improved else self._since_improvement + 1
        patience = self.fitter.patience
        if patience is not None and self._since_improvement >= patience:
            self.stopped_early = True
            return True
        return False

    def result(self, best_z: Any, start_losses: Any, wall: float) -> FitResult:
        self.bar.close()
        space = self.fitter.space
        z = self.best_z if self.best_z is not None else best_z
        theta = space.to_theta(jnp.asarray(z))
        return FitResult(
            params={p: np.asarray(v) for p, v in theta.items()},
            units=space.units,
            loss=float(self.best_loss),
            method=self.fitter.method_name,
            loss_history=np.asarray(self.losses),
            best_history=np.asarray(self.best),
            simulations_history=np.asarray(self.sims, dtype=np.int64),
            time_history=np.asarray(self.times, dtype=float),
            start_losses=np.asarray(start_losses, dtype=float).reshape(-1),
            n_simulations=self.n_simulations,
            n_gradient_evaluations=self.n_gradients,
            n_failed=self.n_failed,
            wall_time=wall,
            stopped_early=self.stopped_early,
        )
