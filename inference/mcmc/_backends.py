"""The samplers behind `nuts`: NumPyro's NUTS kernel and BlackJAX's, on the flat density."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from .. import _cache

# the statistics every backend records per draw (ArviZ's sample_stats names)
STATS = ("diverging", "n_steps", "step_size", "acceptance_rate", "lp", "energy")


def _stats(diverging, n_steps, step_size, acceptance, lp, energy) -> dict[str, Any]:
    """One draw's statistics; `energy` is the Hamiltonian at the draw (for E-BFMI)."""
    return dict(zip(STATS, (diverging, n_steps, step_size, acceptance, lp, energy), strict=True))


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

    def init(self, inits, key, data, lanes, metric=None):
        s, init_kernel = self.settings, self.init_kernel  # not self: it holds the model

        def one(z0, k, imm, data):
            return init_kernel(
                z0,
                s["num_warmup"],
                inverse_mass_matrix=imm,
                target_accept_prob=s["target_accept"],
                max_tree_depth=s["max_tree_depth"],
                dense_mass=s["dense_mass"],
                adapt_mass_matrix=s["adapt_metric"],
                model_args=(data,),
                rng_key=k,
            )

        imm = _inverse_mass(inits, metric, s["dense_mass"])
        return _init_lanes(self.bmodel, self._key, one, inits, key, imm, data, lanes)

    def run(self, state, data, n, done, lanes):
        sample_kernel = self.sample_kernel

        def step(s, data):
            s = sample_kernel(s, model_args=(data,))
            lp = -s.potential_energy
            st = _stats(
                s.diverging, s.num_steps, s.adapt_state.step_size, s.accept_prob, lp, s.energy
            )
            return s, (s.z, st)

        return _run_chunk(self.bmodel, self._key, step, lanes, n, state, data)


class _BlackJAXSampler:
    """BlackJAX: window adaptation per chain, then NUTS with each chain's parameters."""

    warmup_in_one_call = True

    def __init__(self, bmodel, ld, settings):
        self.bmodel, self.ld, self.settings = bmodel, ld, settings
        self._key = ("blackjax", _compile_key(settings))

    def init(self, inits, key, data, lanes, metric=None):
        import blackjax

        fn_data = self.ld.fn_data

        def one(z0, k, imm, data):
            state = blackjax.nuts.init(z0, partial(fn_data, data=data))
            params = {"step_size": jnp.asarray(0.1), "inverse_mass_matrix": imm}
            return {"state": state, "params": params, "key": k}

        imm = _inverse_mass(inits, metric, self.settings["dense_mass"])
        return _init_lanes(self.bmodel, self._key, one, inits, key, imm, data, lanes)

    def warmup(self, carry, data, lanes):
        import blackjax
        from blackjax.adaptation.base import get_filter_adapt_info_fn
        from blackjax.adaptation.step_size import dual_averaging_adaptation

        s, fn_data = self.settings, self.ld.fn_data

        def step_size_only(c, data):  # the metric kept: dual averaging of the step size
            logdensity = partial(fn_data, data=data)
            imm = c["params"]["inverse_mass_matrix"]
            da_init, da_update, da_final = dual_averaging_adaptation(s["target_accept"])
            key = jax.random.wrap_key_data(c["key"])
            k_warm, k_next = jax.random.split(key)

            def body(carry, k):
                state, da = carry
                kernel = blackjax.nuts(
                    logdensity,
                    step_size=jnp.exp(da.log_step_size),
                    inverse_mass_matrix=imm,
                    max_num_doublings=s["max_tree_depth"],
                )
                state, info = kernel.step(k, state)
                return (state, da_update(da, info.acceptance_rate)), None

            keys = jax.random.split(k_warm, s["num_warmup"])
            (state, da), _ = jax.lax.scan(body, (c["state"], da_init(1.0)), keys)
            params = {"step_size": da_final(da), "inverse_mass_matrix": imm}
            return {"state": state, "params": params, "key": jax.random.key_data(k_next)}

        def one(c, data):
            if not s["adapt_metric"]:
                return step_size_only(c, data)
            algo = blackjax.window_adaptation(
                blackjax.nuts,
                partial(fn_data, data=data),
                initial_inverse_mass_matrix=c["params"]["inverse_mass_matrix"],
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
            self._key + ("warmup", lanes.key),
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
                info.energy,
            )
            c = {"state": state, "params": c["params"], "key": jax.random.key_data(k_next)}
            return c, (state.position, st)

        return _run_chunk(self.bmodel, self._key, step, lanes, n, carry, data)


def _init_lanes(bmodel, key: tuple, one, inits, rng, imm, data, lanes):
    """Both backends' init: `one(z0, key data, imm, data)` over the chains' lanes, compiled once.

    The compiled function is cached on the model (`inference._cache`) under the
    backend's key; each lane gets its own key split from `rng` and its own initial
    inverse mass matrix from `imm` (`([subjects,] chains, d[, d])`).
    """
    fn = _cache.compiled(
        bmodel,
        key + ("init", lanes.key),
        lambda: jax.jit(lanes.map(one, (0, 0, 0, None), data_axis=3)),
    )
    keys = jax.random.split(_typed(rng), inits.shape[:-1])
    return fn(inits, jax.random.key_data(keys), imm, data)


def _inverse_mass(inits, metric, dense: bool):
    """The initial inverse mass matrix of every lane, `([subjects,] chains, d[, d])`.

    `metric` is `None` (the identity: the backends' own default) or a covariance in the
    unconstrained space per lane, `([subjects,] chains, d, d)`; a diagonal mass matrix
    takes its diagonal.
    """
    d = inits.shape[-1]
    if metric is None:
        metric = jnp.broadcast_to(jnp.eye(d, dtype=inits.dtype), (*inits.shape, d))
    metric = jnp.asarray(metric, inits.dtype)
    return metric if dense else jnp.diagonal(metric, axis1=-2, axis2=-1)


def _run_chunk(bmodel, key: tuple, step, lanes, n: int, carry, data):
    """`n` sampler steps over the chains' lanes as one compiled scan: `(carry, draws, stats)`.

    Both backends run this: `step(carry, data) -> (carry, (position, stats))`. Vectorized
    chains scan a vmapped step; sequential chains each scan their own `n` steps, one
    chain after another (`_Lanes`). The compiled scan is built once per model, backend
    settings (`key`), chunk length and lanes, and kept in `brainmass.cache`; draws come
    back with the draw axis after the chains'.
    """

    def build():
        if lanes.sequential:  # each chain runs its whole chunk, then the next chain
            lead = 1 if lanes.subjects is None else 2  # where the draw axis lands

            def one_chain(c, data):
                return jax.lax.scan(lambda c, _: step(c, data), c, None, length=n)

            chains = lanes.map(one_chain, (0, None), data_axis=1)

            def chunk(carry, data):
                carry, out = chains(carry, data)
                return carry, jax.tree.map(lambda x: jnp.moveaxis(x, lead, 0), out)

        else:  # one vmapped step of every chain at each iteration
            stepped = lanes.map(step, (0, None), data_axis=1)

            def chunk(carry, data):
                return jax.lax.scan(lambda c, _: stepped(c, data), carry, None, length=n)

        return jax.jit(chunk)

    fn = _cache.compiled(bmodel, key + ("run", n, lanes.key), build)
    carry, (z, st) = fn(carry, data)
    return carry, _draws_last(z, 1), {k: _draws_last(v, 0) for k, v in st.items()}


def _compile_key(settings: dict) -> tuple:
    """The settings a compiled sampler depends on (not the number of draws, nor `modes`)."""
    return tuple(sorted((k, v) for k, v in settings.items() if k not in ("num_samples", "modes")))


def _draws_last(x, trailing: int):
    """Move the scan's leading draw axis behind the chain (and subject) axes."""
    x = jnp.asarray(x)
    return jnp.moveaxis(x, 0, x.ndim - 1 - trailing)


def _typed(key):
    """A typed jax.random key from a typed key or raw key data."""
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(jnp.asarray(key, dtype=jnp.uint32))
