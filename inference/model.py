"""BayesianModel: a Simulator, priors over its parameters and a likelihood, as a NumPyro model."""

from __future__ import annotations

import abc
import contextlib
import copy
import difflib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro.infer import Predictive
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

import brainmass as bm

from . import _cache
from .likelihoods import AbstractLikelihood
from .priors import Hierarchical, check_priors, prior_shape, sample_prior

__all__ = ["AbstractBayesianModel", "BayesianModel", "LogDensity"]

OBS = "obs"  # the observed site
FAILED = "simulation_failed"  # the factor that rejects failed simulations


class LogDensity(NamedTuple):
    """The model's log density on a flat unconstrained vector (for BlackJAX, optax, ...).

    - `fn`: `(d,) -> ()`, the unnormalised log posterior (log prior + log
      likelihood + log |Jacobian| of the transforms to the constrained space);
      `-inf` where the simulation failed or the value is NaN.
    - `init`: `(d,)`, a starting point (each site's prior median).
    - `unravel`: `(d,) -> {site: unconstrained value}`.
    - `constrain`: `(d,) -> {site: value}` in the constrained space, with the
      deterministic sites (the members of hierarchical priors).
    - `size`: `d`.
    - `fn_data`: `(flat (d,), data) -> ()`, the same density with the data as
      an argument (one compiled function serves every dataset of that shape).
    """

    fn: Callable
    init: Any
    unravel: Callable
    constrain: Callable
    size: int
    fn_data: Callable


class AbstractBayesianModel(eqx.Module):
    """What the samplers use of a model: a NumPyro program over a simulator's parameters.

    `map_estimate`, `nuts`, `laplace` and `predictive` take any
    `AbstractBayesianModel` (`isinstance` is their check). The concrete models
    are final: `BayesianModel` (one dataset, or a batch of independent ones)
    and `CohortModel` (group and per-subject parameters over a cohort's
    datasets; it composes the `BayesianModel` of one subject).

    Models are immutable equinox modules (pytrees: the simulator, the likelihood, the
    priors and the noise key are their children; paths, units and flags are static), and
    a concrete model has these attributes:

    - `sim`: the `brainmass.Simulator`.
    - `priors`: `{path: prior}` as given.
    - `likelihood`: the likelihood, bound to `sim`.
    - `paths`: the inferred parameter paths (the priors' keys, in order).
    - `units`: `{path: unit name}` of those parameters.
    - `n_regions`: the simulator's number of regions.
    - `conditional_on_noise`, `noise_key`: the fixed noise realisation, if any.

    It implements the NumPyro program (`numpyro_model`, `prior_model`), the
    prediction (`predict`), the data check (`check_data`) and the ArviZ labels
    (`dims`). Everything else here (the flat log density, flattening, prior
    draws, site names) is built from those, the same for every model.
    """

    sim: eqx.AbstractVar[bm.Simulator]
    likelihood: eqx.AbstractVar[AbstractLikelihood]
    paths: eqx.AbstractVar[tuple[str, ...]]
    n_regions: eqx.AbstractVar[int]
    conditional_on_noise: eqx.AbstractVar[bool]
    noise_key: eqx.AbstractVar[Any]
    # the priors in the order of `paths` (a tuple: a dict child would come back sorted by
    # key from a flatten/unflatten, reordering the sites and the repr); `priors` is the dict
    _priors: eqx.AbstractVar[tuple[Any, ...]]
    # `{path: unit name}`, static and hashable: pairs in the order of `paths`
    _units: eqx.AbstractVar[tuple[tuple[str, str], ...]]
    # NumPyro reparametrisations `(site, Reparam)` pairs, applied to the whole program
    _reparam: eqx.AbstractVar[tuple[tuple[str, Any], ...]]
    # whether the data hold one dataset per subject on a leading axis (CohortModel)
    _per_subject_data: ClassVar[bool] = False

    @property
    def priors(self) -> dict[str, Any]:
        """`{path: prior}` as given, in the order of `paths` (a new dict each time)."""
        return dict(zip(self.paths, self._priors, strict=True))

    @property
    def units(self) -> dict[str, str]:
        """`{path: unit name}` of the inferred parameters (a new dict each time)."""
        return dict(self._units)

    @property
    def reparam(self) -> dict[str, Any]:
        """`{site: numpyro.infer.reparam.Reparam}` as given (a new dict each time)."""
        return dict(self._reparam)

    def _reparametrised(self) -> Any:
        """The context the program runs in: NumPyro's `reparam` handler, or nothing."""
        if not self._reparam:
            return contextlib.nullcontext()
        return numpyro.handlers.reparam(config=dict(self._reparam))

    # ------------------------------------------------------------------ the program
    @abc.abstractmethod
    def numpyro_model(self, data: Any = None) -> None:
        """The NumPyro model: priors, simulation, likelihood of `data` (None: sample it)."""

    @abc.abstractmethod
    def prior_model(self) -> None:
        """The priors alone (parameters and noise parameters), as a NumPyro model."""

    @abc.abstractmethod
    def predict(self, theta: Mapping[str, Any]) -> tuple[Any, Any]:
        """The likelihood's prediction at `theta` `{path: value}` and an ok flag; pure."""

    @abc.abstractmethod
    def check_data(self, data: Any) -> Any:
        """Validate `data`; returns it prepared (as the likelihood compares it)."""

    def observed(self, data: Any, batch: bool = False) -> Any:
        """`data` with recordings turned into the simulator's signal layout.

        A `brainmass.Recording` becomes `rec.for_simulator(self.sim)` (its period,
        channels and sample times checked against the simulator's, channels reordered
        by label, the t = 0 sample kept only where the monitor records it); a list of
        recordings (a `CohortModel`'s subjects, or datasets with `batch=True`) is
        stacked on a leading axis. Anything else is returned unchanged. Every sampler
        and estimator calls this first, so they all accept recordings.
        """
        one = lambda rec: np.asarray(rec.for_simulator(self.sim))  # noqa: E731
        stacked = batch or self._per_subject_data
        if isinstance(data, bm.Recording):
            if stacked:
                raise ValueError(
                    "data: one recording given where a dataset per subject is expected "
                    "(a CohortModel, or batch=True): pass a list of recordings."
                )
            return one(data)
        if (
            isinstance(data, (list, tuple))
            and data
            and all(isinstance(d, bm.Recording) for d in data)
        ):
            if not stacked:
                raise ValueError(
                    f"data: {len(data)} recordings given for one dataset; pass one "
                    "recording, or batch=True to sample each."
                )
            return np.stack([one(d) for d in data])
        return data

    @abc.abstractmethod
    def dims(self) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """ArviZ dims `{site: [dim, ...]}` and coords `{dim: labels}`."""

    # ------------------------------------------------------------------ flat log density
    def logdensity(self, data: Any, key: Any = None) -> LogDensity:
        """The log posterior density on a flat unconstrained vector (see `LogDensity`).

        Built without compiling anything: the transforms come from the priors'
        supports, the starting point from 15 prior draws per site (their
        median, as NumPyro's `init_to_median`), and the density is NumPyro's
        `potential_energy` of `numpyro_model` (log prior + log likelihood +
        log |Jacobian|).
        """
        data = self.observed(data)
        self.check_data(data)
        key = jax.random.key(0) if key is None else key
        draws = self.sample_prior(key, 15)
        latent = self.latent_sites()
        median = {s: jnp.asarray(np.median(draws[s], axis=0)) for s in latent}
        z0 = unconstrain_fn(self.prior_model, (), {}, median)
        init, unravel = ravel_pytree(z0)
        # the functions close over a shallow copy (the same fields, another identity): the
        # samplers compiled from them are cached under this model, weakly (`inference._cache`),
        # and a value that held the model itself would keep it alive for ever
        twin = copy.copy(self)
        model, prior_model = twin.numpyro_model, twin.prior_model

        def fn_data(flat, data):
            value = -potential_energy(model, (data,), {}, unravel(flat))
            return jnp.where(jnp.isnan(value), -jnp.inf, value)

        def fn(flat):
            return fn_data(flat, data)

        def constrain(flat):
            return constrain_fn(prior_model, (), {}, unravel(flat), return_deterministic=True)

        return LogDensity(fn, init, unravel, constrain, int(init.shape[0]), fn_data)

    def logdensity_fn(self, data: Any) -> Callable:
        """`flat (d,) -> log density`: `logdensity(data).fn`, the function BlackJAX takes."""
        return self.logdensity(data).fn

    def flatten(self, values: Mapping[str, Any]) -> Any:
        """Constrained values of the latent sites `{site: value}` as the flat unconstrained vector.

        The inverse of `LogDensity.constrain` (on the latent sites). `values` must name
        exactly the latent sites (`latent_sites()`); a missing or unknown name is a ValueError
        that lists them (NumPyro's own check was a bare AssertionError).
        """
        sites = self.latent_sites()
        unknown = [k for k in values if k not in sites]
        missing = [k for k in sites if k not in values]
        if unknown or missing:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), sites, n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            problems = (["unknown: " + ", ".join(hints)] if unknown else []) + (
                [f"missing: {missing}"] if missing else []
            )
            raise ValueError(
                f"init: expected a value for each latent site, exactly {sites}; "
                + "; ".join(problems)
                + "."
            )
        z = unconstrain_fn(self.prior_model, (), {}, dict(values))
        return ravel_pytree(z)[0]

    def sample_prior(self, key: Any, num_samples: int) -> dict[str, np.ndarray]:
        """Draws from the priors: `{site: (num_samples, ...)}` (latent and deterministic sites).

        Drawn eagerly, one vmapped block (NumPyro's `Predictive(parallel=True)`) of at
        least 16 draws (a power of two) of which the first `num_samples` are returned.
        Nothing is compiled as one program: `Predictive`'s compiled loop over ten Gamma
        priors took 7 s to compile, once per call (the starting point, the MAP's starts);
        eagerly, each sampler compiles once per block size and serves every later call.
        """
        n = int(num_samples)
        block = max(16, 1 << (n - 1).bit_length())
        draws = Predictive(self.prior_model, num_samples=block, parallel=True)(key)
        return {k: np.asarray(v)[:n] for k, v in draws.items()}

    def latent_sites(self, key: Any = None) -> list[str]:
        """Names of the sampled (latent) sites, in the order of the flat vector."""
        return _latent_names(self.prior_model, key)

    def _compiled(self, name: Any, build: Callable) -> Any:
        """`build()` once per model and `name` (kept for callers): `inference._cache.compiled`.

        Nothing is stored on the model: the value lives in `inference._cache`, held
        weakly by the model.
        """
        return _cache.compiled(self, name, build)


# ----------------------------------------------------------------------------- shared parts


def forward_gradient(fn_data: Callable) -> Callable:
    """`fn_data(flat, data)` whose gradient (reverse mode from outside) runs in forward mode.

    A `jax.custom_vjp`: its forward pass computes the value and the `d` directional
    derivatives along the unit vectors (one `jax.jvp`, vmapped over the tangents), and
    its backward pass scales that gradient. A sampler that calls `jax.value_and_grad`
    then pays `d` tangent propagations alongside one simulation instead of a simulation
    and its reverse sweep (which stores the trajectory): cheaper for few parameters.
    Not differentiable twice (a custom VJP): Hessians use the plain function.
    """

    @jax.custom_vjp
    def wrapped(flat, data):
        return fn_data(flat, data)

    def value_and_gradient(flat, data):
        def along(tangent):
            return jax.jvp(lambda z: fn_data(z, data), (flat,), (tangent,))

        eye = jnp.eye(flat.shape[0], dtype=flat.dtype)
        value, slopes = jax.vmap(along, out_axes=(None, 0))(eye)
        return value, slopes

    def fwd(flat, data):
        value, grad = value_and_gradient(flat, data)
        return value, (grad, data)

    def bwd(residual, cotangent):
        grad, data = residual
        return cotangent * grad, jax.tree.map(jnp.zeros_like, data)

    wrapped.defvjp(fwd, bwd)
    return wrapped


def _latent_names(program: Callable, key: Any = None) -> list[str]:
    """The sampled, unobserved sites of the NumPyro `program()`, sorted.

    Traced abstractly (`jax.eval_shape`): no prior is drawn, nothing compiles.
    """
    key = jax.random.key(0) if key is None else key
    names: list[str] = []

    def run(key):
        tr = numpyro.handlers.trace(numpyro.handlers.seed(program, key)).get_trace()
        names.extend(k for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"])
        return 0

    jax.eval_shape(run, key)
    return sorted(names)


def _check_reparam(reparam: Any, program: Callable) -> tuple[tuple[str, Any], ...]:
    """`reparam` as static `(site, Reparam)` pairs, each site a latent site of `program`."""
    from numpyro.infer.reparam import Reparam

    if reparam is None:
        return ()
    if not isinstance(reparam, Mapping):
        raise ValueError(
            f"reparam: expected a dict {{site: numpyro.infer.reparam.Reparam}}, got {reparam!r}."
        )
    sites = _latent_names(program)
    for site, how in reparam.items():
        if not isinstance(how, Reparam):
            raise ValueError(
                f"reparam[{site!r}]: expected a numpyro.infer.reparam.Reparam "
                f"(LocScaleReparam, TransformReparam, ...), got {how!r}."
            )
        if site not in sites:
            close = difflib.get_close_matches(str(site), sites, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"reparam: {site!r} is not a latent site of this model{hint}; its latent "
                f"sites are {sites}."
            )
    return tuple(reparam.items())


def _sample_noise(likelihood: AbstractLikelihood) -> dict[str, Any]:
    """The likelihood's noise parameters inside a NumPyro model (sites `likelihood.<name>`)."""
    out = {}
    for name, value in likelihood.noise_parameters().items():
        if isinstance(value, dist.Distribution):
            value = numpyro.sample(f"likelihood.{name}", value)
        out[name] = value
    return out


def _safe_prediction(
    likelihood: AbstractLikelihood, prediction: Any, ok: Any, observed: Any
) -> Any:
    """The prediction where the simulation succeeded, else the likelihood's `fallback`.

    A failed simulation (or a non-finite prediction: an unstable linearisation) is
    rejected by the `FAILED` factor; the likelihood still gets a finite argument so that
    its gradient is not NaN. `ok` has the prediction's leading (subject) axes, or none.
    """

    def pick(p, fallback):
        flag = jnp.reshape(ok, jnp.shape(ok) + (1,) * (jnp.ndim(p) - jnp.ndim(ok)))
        return jnp.where(flag, p, fallback)

    return jax.tree.map(pick, prediction, likelihood.fallback(prediction, observed))


def _observe(likelihood, theta, noise, prediction, ok, data, observed, failed) -> None:
    """The factor rejecting failed simulations (`failed`, log scale) and the observed site."""
    safe = _safe_prediction(likelihood, prediction, ok, observed)
    numpyro.factor(FAILED, failed)
    d = likelihood.distribution(safe, noise, data=data, theta=theta)
    numpyro.sample(OBS, d, obs=observed)


def _parameter_dims(
    priors: Mapping[str, Any], n_regions: int, labels: Any
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """ArviZ dims and coords of the parameter sites: `region` for per-region values."""
    dims, coords = {}, {}
    for path, prior in priors.items():
        shape = prior_shape(prior, n_regions)
        if shape == ():
            continue
        if shape == (n_regions,):
            dim = "region"
            coords["region"] = labels
        else:
            dim = f"{path}_member"
        dims[path] = [dim]
        if isinstance(prior, Hierarchical):
            dims[f"{path}.{prior.member_site}"] = [dim]
    return dims, coords


def _check_components(sim: Any, likelihood: Any) -> None:
    """The simulator and likelihood types (ValueErrors naming what was given)."""
    if not isinstance(sim, bm.Simulator):
        raise ValueError(f"sim: expected a brainmass.Simulator, got {type(sim).__name__}.")
    if not isinstance(likelihood, AbstractLikelihood):
        raise ValueError(
            "likelihood: expected an inference.likelihoods likelihood (StateSpace, Whittle, "
            f"Linearized, TimeSeries, FC, Custom, NLE.likelihood()), got {likelihood!r}."
        )


@final
class BayesianModel(AbstractBayesianModel):
    """A simulator with priors over its parameters and a likelihood of the data.

    **Arguments:**

    - `sim`: a `brainmass.Simulator`.
    - `priors`: `{path: prior}`: dotted parameter paths (as in
      `sim.params()`) to NumPyro distributions in the parameter's canonical
      unit (`sim.parameter_info()`), of shape `()` (one shared value) or
      `(n_regions,)` (one per region), or `inference.Hierarchical` priors.
      Parameters without a prior keep the simulator's values.
    - `likelihood`: an `inference.likelihoods` likelihood. Deterministic
      simulators: `TimeSeries`, `FC`, `Custom` (they compare a simulation with
      the data). Noise-driven (stochastic) simulators: `StateSpace`, `Whittle`,
      `Linearized("fc")`, or a learned likelihood (`NLE.likelihood()`), which
      integrate over the process noise.
    - `conditional_on_noise`: with a stochastic simulator and a likelihood
      that simulates, fix the simulation's noise to `noise_key` (common random
      numbers) and use the likelihood of the data given the parameters *and
      that noise realisation*. This is not the parameters' posterior (with
      another key than the data's, a decay rate landed +539 posterior sd off;
      with the data's own key the posterior collapses to a point), so it must
      be asked for by name; without it such a model is refused.
    - `noise_key`: the `jax.random` key of that fixed noise (with
      `conditional_on_noise=True`); ignored otherwise.
    - `reparam`: NumPyro reparametrisations `{site: Reparam}`, applied to the
      program with `numpyro.handlers.reparam` (so every sampler, the MAP and the
      prior draws see them), e.g. `{"coupling.G": LocScaleReparam(0)}` to sample
      a Normal prior's standardised value (site `"coupling.G_decentered"`; the
      parameter itself becomes a deterministic site and stays in the posterior),
      or `TransformReparam()` on a `TransformedDistribution` prior. Keys are latent
      sites of the model (a path, `path.loc`/`.scale`/`.z` of a `Hierarchical`
      prior, `likelihood.<name>`); another key is a ValueError listing them.

    A parameter the simulator does not have, a prior whose shape does not
    match, or whose support leaves the parameter's domain (a negative time
    constant, say) is a ValueError here, before any sampling.

    Sites: each prior's path (hierarchical: `path.loc`, `path.scale`,
    `path.z` and `path` as deterministic), each inferred noise parameter as
    `likelihood.<name>`, the observed data as `obs`, and a factor
    `simulation_failed` (`-inf` when the simulation blew up or gave NaN, so that
    NUTS rejects the proposal and optimisers step back).
    """

    sim: bm.Simulator
    _priors: tuple[Any, ...]
    likelihood: AbstractLikelihood
    noise_key: Any
    paths: tuple[str, ...] = eqx.field(static=True)
    _units: tuple[tuple[str, str], ...] = eqx.field(static=True)
    n_regions: int = eqx.field(static=True)
    conditional_on_noise: bool = eqx.field(static=True)
    _simulate: Callable = eqx.field(static=True)
    _reparam: tuple[tuple[str, Any], ...] = eqx.field(static=True)

    def __init__(
        self,
        sim: bm.Simulator,
        priors: Mapping[str, Any],
        likelihood: AbstractLikelihood,
        *,
        conditional_on_noise: bool = False,
        noise_key: Any = None,
        reparam: Mapping[str, Any] | None = None,
    ):
        _check_components(sim, likelihood)
        info = check_priors(sim, priors)
        n = sim.network.n_regions
        stochastic = sim.network.noise is not None
        conditional = stochastic and likelihood.needs_simulation
        if conditional and not conditional_on_noise:
            raise ValueError(
                f"likelihood: {type(likelihood).__name__} compares one simulation with the data, "
                "but this simulator is stochastic: each simulation is one draw of its noise, and "
                "the likelihood given one draw is not the parameters' likelihood (the posterior "
                "lands far off, or collapses to a point with the data's own key). Use a "
                "likelihood that integrates over the noise: likelihoods.StateSpace (the exact "
                "likelihood of the series of a linear or linearised network), "
                "likelihoods.Whittle (its spectra), likelihoods.Linearized('fc') (its FC), or "
                "simulation-based inference (inference.NPE, or NLE(...).likelihood()). To "
                "condition on one noise realisation anyway, pass conditional_on_noise=True and "
                "noise_key=jax.random.key(...)."
            )
        if conditional and noise_key is None:
            raise ValueError(
                "noise_key: conditional_on_noise=True fixes the simulation's noise to one "
                "realisation; pass noise_key=jax.random.key(...)."
            )
        self.sim = sim
        self.paths = tuple(priors)
        self._priors = tuple(priors[p] for p in self.paths)
        self.likelihood = likelihood.bind(sim)
        self.conditional_on_noise = bool(conditional)
        self.noise_key = noise_key if conditional else None
        self._units = tuple((p, info[p].unit) for p in self.paths)
        self.n_regions = n
        self._simulate = sim.function(list(self.paths), output="result")
        self._reparam = ()
        self._reparam = _check_reparam(reparam, self.prior_model)

    # ------------------------------------------------------------------ the model
    def _sample_parameters(self) -> dict[str, Any]:
        return {p: sample_prior(p, prior, self.n_regions) for p, prior in self.priors.items()}

    def predict(self, theta: Mapping[str, Any]) -> tuple[Any, Any]:
        """The likelihood's prediction at parameters `theta` `{path: value}`, and an ok flag.

        The flag is False where the simulation failed or the prediction is not
        finite. Pure: jit-, vmap- and grad-able.
        """
        lik = self.likelihood
        if lik.needs_simulation:
            result = self._simulate(dict(theta), self.noise_key)
            prediction, ok = lik.predict(self.sim, result), jnp.asarray(result.ok)
        else:
            prediction, ok = lik.predict_without_simulation(self.sim.with_params(dict(theta)))
        leaves = jax.tree.leaves(prediction)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in leaves]))
        return prediction, ok & finite

    def numpyro_model(self, data: Any = None) -> None:
        """The NumPyro model: priors, simulation, likelihood of `data`.

        With `data=None` the observed site is sampled (prior or posterior
        predictive). Use it with any NumPyro inference:
        `MCMC(NUTS(bmodel.numpyro_model), ...).run(key, data)`.
        """
        with self._reparametrised():
            theta = self._sample_parameters()
            noise = _sample_noise(self.likelihood)
        prediction, ok = self.predict(theta)
        observed = None if data is None else self.likelihood.prepare(data)
        failed = jnp.where(ok, 0.0, -jnp.inf)
        _observe(self.likelihood, theta, noise, prediction, ok, data, observed, failed)

    def prior_model(self) -> None:
        """The priors alone (parameters and noise parameters), as a NumPyro model."""
        with self._reparametrised():
            self._sample_parameters()
            _sample_noise(self.likelihood)

    # ------------------------------------------------------------------ checks
    def check_data(self, data: Any) -> Any:
        """Validate `data` against the simulator's output; returns it prepared (as compared)."""
        if data is None:
            raise ValueError("data: expected the observed data, got None.")
        data = self.observed(data)
        return self.likelihood.prepare(data)

    # ------------------------------------------------------------------ labels
    def dims(self) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """ArviZ dims `{site: [dim, ...]}` and coords `{dim: labels}` of the parameters."""
        labels = np.asarray(self.sim.network.connectome.labels)
        dims, coords = _parameter_dims(self.priors, self.n_regions, labels)
        obs_dims, obs_coords = self.likelihood.dims()
        if obs_dims:
            dims[OBS] = obs_dims
            coords.update(obs_coords)
        return dims, coords

    def __repr__(self) -> str:
        priors = ", ".join(f"{p}: {type(v).__name__}" for p, v in self.priors.items())
        return f"BayesianModel({{{priors}}}, {type(self.likelihood).__name__})"


def _pointwise(bmodel: AbstractBayesianModel, values: Mapping[str, Any], data: Any, key: Any):
    """Pointwise log-likelihood and a data draw at one parameter point (constrained latent values).

    Returns `(log_likelihood, draw)`: arrays of the prepared data's shape; the
    draw is None when the likelihood cannot draw data (`Custom` without `sample`).
    """
    model = numpyro.handlers.substitute(bmodel.numpyro_model, data=values)
    model = numpyro.handlers.seed(model, key)
    trace = numpyro.handlers.trace(model).get_trace(data)
    site = trace[OBS]
    log_lik = site["fn"].log_prob(site["value"])
    try:
        draw = site["fn"].sample(jax.random.fold_in(key, 1))
    except NotImplementedError:
        draw = None
    return log_lik, draw


def predictive(
    bmodel: AbstractBayesianModel,
    samples: Mapping[str, Any],
    data: Any,
    key: Any,
    *,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pointwise log-likelihood and posterior predictive draws at every posterior draw.

    **Arguments:**

    - `samples`: `{site: (n_chains, n_draws, ...)}` including every latent site.
    - `data`: the observed data (as given to the model).
    - `key`: a `jax.random` key for the predictive draws.
    - `batch_size`: draws simulated at once (one vmapped batch).

    **Returns:** `(log_likelihood, draws)`, each `(n_chains, n_draws, *obs_shape)`;
    `draws` is None for likelihoods that cannot draw data.
    """
    data = bmodel.observed(data)
    latent = bmodel.latent_sites()
    missing = [s for s in latent if s not in samples]
    if missing:
        raise ValueError(f"samples: missing the latent sites {missing}.")
    flat = {s: np.asarray(samples[s]) for s in latent}
    chains, draws = next(iter(flat.values())).shape[:2]
    n = chains * draws
    flat = {s: v.reshape(n, *v.shape[2:]) for s, v in flat.items()}
    keys = jax.random.split(key, n)

    def build():
        twin = copy.copy(bmodel)  # not bmodel: the cached value must not keep it alive
        return jax.jit(jax.vmap(lambda v, k, d: _pointwise(twin, v, d, k), (0, 0, None)))

    compiled = _cache.compiled(bmodel, ("predictive", batch_size), build)
    data_j = jax.tree.map(jnp.asarray, data)

    def batch(values, keys):
        return compiled(values, keys, data_j)

    lls, preds = [], []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        chunk = {s: v[start:stop] for s, v in flat.items()}
        pad = batch_size - (stop - start)
        if pad:  # one compiled batch size: repeat the last draw
            chunk = {s: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) for s, v in chunk.items()}
            k = jnp.concatenate([keys[start:stop], jnp.repeat(keys[stop - 1 : stop], pad, 0)])
        else:
            k = keys[start:stop]
        ll, pred = batch(chunk, k)
        lls.append(np.asarray(ll)[: stop - start])
        if pred is not None:
            preds.append(np.asarray(pred)[: stop - start])
    ll = np.concatenate(lls).reshape(chains, draws, *lls[0].shape[1:])
    pred = np.concatenate(preds).reshape(chains, draws, *preds[0].shape[1:]) if preds else None
    return ll, pred
