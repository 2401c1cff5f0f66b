"""Gradient-free fitting: nevergrad optimisers and SciPy, populations as vmapped batches."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from ._fitter import Fitter, _Recorder

__all__ = ["run_nevergrad", "run_scipy", "batch_loss"]


def batch_loss(fitter: Fitter):
    """`losses(zs (m, size), key) -> (m,)` numpy: vmapped in chunks of `fitter.batch_size`.

    The last chunk is padded to full size (repeating its last point) so one
    compilation serves every batch.
    """
    evaluate = fitter._jitted(
        "batch_loss",
        lambda f: eqx.filter_jit(jax.vmap(lambda z, key: f._loss(z, key)[0], in_axes=(0, None))),
    )
    chunk = fitter.batch_size

    def losses(zs: Any, key: Any) -> np.ndarray:
        zs = jnp.asarray(zs, dtype=jnp.result_type(float))
        m = zs.shape[0]
        size = min(chunk, m)
        out = []
        for start in range(0, m, size):
            block = zs[start : start + size]
            n = block.shape[0]
            if n < size:
                block = jnp.concatenate([block, jnp.repeat(block[-1:], size - n, axis=0)])
            out.append(np.asarray(evaluate(block, key))[:n])
        return np.concatenate(out)

    return losses


def run_nevergrad(
    fitter: Fitter, key: Any, steps: int, z0: Any, recorder: _Recorder
) -> tuple[Any, np.ndarray]:
    """`steps` generations of a nevergrad optimiser in z, each generation one batch."""
    import nevergrad as ng

    size = fitter.space.size
    population = fitter.population or max(8, 4 + int(3 * math.log(size)))
    parametrization = ng.p.Array(init=np.asarray(z0, dtype=np.float64))
    if key is not None:
        seed = int(jax.random.randint(jax.random.fold_in(key, 0xC0FFEE), (), 0, 2**31 - 1))
        parametrization.random_state = np.random.RandomState(seed)
    optimizer = ng.optimizers.registry[fitter.method_name](
        parametrization=parametrization, budget=steps * population, num_workers=population
    )
    losses_of = batch_loss(fitter)
    for i in range(steps):
        with _metamodel_guard():
            candidates = [optimizer.ask() for _ in range(population)]
        zs = np.stack([c.value for c in candidates])
        losses = losses_of(zs, fitter._key(key, i))
        with warnings.catch_warnings(), _metamodel_guard():
            warnings.simplefilter("ignore", ng.errors.LossTooLargeWarning)
            for candidate, loss in zip(candidates, losses, strict=True):
                optimizer.tell(candidate, float(loss) if np.isfinite(loss) else float("inf"))
        if recorder.record(zs, losses):
            break
    return recorder.best_z, np.asarray([recorder.best_loss])


@contextlib.contextmanager
def _metamodel_guard() -> Iterator[None]:
    """Turn off nevergrad's metamodel proposals where NumPy breaks them.

    nevergrad's `learn_on_k_best` (nevergrad 1.0.12; used by `NGOpt`, the
    `MetaModel*` and some `DE` variants) calls `float()` on a one-element
    array: an error from NumPy 2.5 on, raised while a thread of its inner
    Powell search waits for that value, so the fit fails and the process never
    exits. Where NumPy refuses that conversion, `learn_on_k_best` is replaced,
    for the duration of each `ask` and `tell`, by one that reports a metamodel
    failure, and the optimisers take their own step instead (what they do
    whenever the metamodel fails).
    """
    try:
        float(np.ones(1))
        broken = False
    except TypeError:
        broken = True
    if not broken:
        yield
        return
    from nevergrad.optimization import metamodel, optimizerlib

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise metamodel.MetaModelFailure("metamodel turned off: it needs NumPy < 2.5")

    saved = metamodel.learn_on_k_best, optimizerlib.learn_on_k_best
    metamodel.learn_on_k_best = optimizerlib.learn_on_k_best = unavailable
    try:
        yield
    finally:
        metamodel.learn_on_k_best, optimizerlib.learn_on_k_best = saved


def run_scipy(
    fitter: Fitter, key: Any, steps: int, starts: Any, recorder: _Recorder
) -> tuple[Any, np.ndarray]:
    """SciPy's L-BFGS-B (JAX gradients), Nelder-Mead or differential evolution."""
    if fitter.method_name == "differential_evolution":
        return _differential_evolution(fitter, key, steps, recorder)
    import scipy.optimize

    space_key = fitter._key(key, 0)
    start_best = [np.inf]  # the best loss of the start being run

    def record(z, value, gradients=0):
        start_best[0] = min(start_best[0], value)
        if recorder.record(z[None], [value], gradients=gradients):
            raise StopIteration

    if fitter.method_name == "L-BFGS-B":
        value_and_grad = fitter._jitted(
            "value_and_grad", lambda f: eqx.filter_jit(jax.value_and_grad(f._loss, has_aux=True))
        )

        def fun(z):
            (value, ok), grad = value_and_grad(jnp.asarray(z, jnp.result_type(float)), space_key)
            value, grad = float(value), np.asarray(grad, dtype=np.float64)
            good = bool(ok) and np.isfinite(value) and np.all(np.isfinite(grad))
            record(z, value if good else np.inf, gradients=1)
            return (value, grad) if good else (np.inf, np.zeros_like(grad))

        jac = True
    else:
        single = fitter._jitted("loss", lambda f: eqx.filter_jit(f._loss))

        def fun(z):
            value, ok = single(jnp.asarray(z, jnp.result_type(float)), space_key)
            value = float(value) if bool(ok) else np.inf
            record(z, value)
            return value

        jac = None
    starts = np.asarray(starts, dtype=np.float64)
    start_losses = np.full(starts.shape[0], np.inf)  # starts not run (early stop) stay inf
    for i, z0 in enumerate(starts):
        start_best[0] = np.inf
        options = {"maxiter": steps}
        if fitter.method_name == "Nelder-Mead":
            # a simplex one unit of z wide per parameter (scipy's default, 5 % of z0, is
            # a tiny step for logit- and log-scaled parameters near their initial value)
            options["initial_simplex"] = np.vstack([z0, z0 + np.eye(z0.size)])
        try:
            scipy.optimize.minimize(fun, z0, jac=jac, method=fitter.method_name, options=options)
        except StopIteration:
            recorder.stopped_early = True
        start_losses[i] = start_best[0]
        if recorder.stopped_early:
            break
    return recorder.best_z, start_losses


def _differential_evolution(
    fitter: Fitter, key: Any, steps: int, recorder: _Recorder
) -> tuple[Any, np.ndarray]:
    """SciPy's differential evolution in the box of the (Bounded) parameter values."""
    import scipy.optimize

    space = fitter.space
    low, high = space.box()
    margin = 1e-6 * (high - low)
    losses_of = batch_loss(fitter)
    to_z = fitter._jitted(
        "values_to_z", lambda f: jax.jit(jax.vmap(lambda x: space.to_z(space.vector_to_theta(x))))
    )
    generation = [0]

    def func(x):  # x: (size, S) with vectorized=True
        xs = np.clip(np.atleast_2d(np.asarray(x).T), low + margin, high - margin)
        zs = to_z(jnp.asarray(xs, jnp.result_type(float)))
        losses = losses_of(zs, fitter._key(key, generation[0]))
        generation[0] += 1
        if recorder.record(np.asarray(zs), losses):
            raise StopIteration
        return np.where(np.isfinite(losses), losses, np.inf)

    seed = None
    if key is not None:
        seed = int(jax.random.randint(jax.random.fold_in(key, 0xDE), (), 0, 2**31 - 1))
    x0 = np.clip(np.asarray(space.theta_to_vector(space.to_theta(space.z0))), low, high)
    try:
        scipy.optimize.differential_evolution(
            func,
            bounds=list(zip(low, high, strict=True)),
            maxiter=steps,
            popsize=fitter.population or 15,
            vectorized=True,
            updating="deferred",
            polish=False,
            seed=seed,
            x0=x0,
        )
    except StopIteration:
        recorder.stopped_early = True
    return recorder.best_z, np.asarray([recorder.best_loss])
