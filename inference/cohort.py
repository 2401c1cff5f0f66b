"""CohortModel: group-level and per-subject parameters over a cohort's datasets, one model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import brainmass as bm
from brainmass.checks import check_int

from .likelihoods import AbstractLikelihood
from .model import (
    OBS,
    AbstractBayesianModel,
    BayesianModel,
    _check_components,
    _check_reparam,
    _observe,
    _parameter_dims,
    _sample_noise,
)
from .priors import Hierarchical, check_prior, check_priors, sample_prior

__all__ = ["CohortModel"]


@final
class CohortModel(AbstractBayesianModel):
    r"""A hierarchical model of a cohort: group parameters and one value per subject.

    Every subject has the same simulator (the same connectome, or a template
    one); a parameter with a `Hierarchical` prior takes one value per subject,
    drawn around group-level location and scale (non-centred,
    $\theta_s = T(\mu + \tau z_s)$); a parameter with a plain prior is shared by
    the cohort. The subjects' simulations run as one vmapped batch, and the
    likelihood multiplies over subjects. The posterior of the group location
    and scale is the cohort-level answer (how the parameter varies across
    people); each subject's value borrows strength from the others.

    **Arguments:**

    - `sim`: a `brainmass.Simulator`.
    - `priors`: `{path: prior}`; `inference.Hierarchical` priors give a value
      per subject (their `size`, if set, must equal `n_subjects`); NumPyro
      distributions give shared values (shape `()` or `(n_regions,)`).
    - `likelihood`: as for `BayesianModel`, applied to each subject; a learned
      one (`NLE.likelihood()`) evaluates the flow at each subject's parameters
      and runs no simulation. Its parameters must stay where the NLE's bank
      was simulated: give a per-subject parameter a `Hierarchical` transform
      onto the bank's range (sigmoid then affine for a uniform prior).
    - `n_subjects`: the number of subjects; the data have a leading axis of
      this length. May be left out when `subjects` is given.
    - `subjects`: the subjects' IDs (`["sub-01", "sub-02", ...]`, in the order of
      the data's leading axis): the `subject` coordinate of the posterior's
      per-subject sites and data (ArviZ), and the names in data errors. Default
      `0 .. n_subjects - 1`.
    - `conditional_on_noise`, `noise_key`, `reparam`: as for `BayesianModel`.

    A cohort composes the model of one subject, `subject_model` (a
    `BayesianModel` with the shared priors, and a flat prior on the support of
    each per-subject parameter: the cohort's hierarchy is their prior). Its
    prediction, vmapped over subjects, is the cohort's; its data check is
    applied to each subject. On its own it is one subject's likelihood to
    evaluate, not a model to sample (NumPyro cannot draw from a flat prior).

    Sites: `path.loc`, `path.scale`, `path.z` (`(n_subjects,)`) and `path`
    (deterministic, `(n_subjects,)`) for per-subject parameters; `path` for
    shared ones; `obs` with a leading subject axis.
    """

    _per_subject_data: ClassVar[bool] = True  # data: one dataset per subject
    sim: bm.Simulator
    _priors: tuple[Any, ...]
    likelihood: AbstractLikelihood
    noise_key: Any
    subject_model: BayesianModel
    paths: tuple[str, ...] = eqx.field(static=True)
    _units: tuple[tuple[str, str], ...] = eqx.field(static=True)
    n_regions: int = eqx.field(static=True)
    conditional_on_noise: bool = eqx.field(static=True)
    n_subjects: int = eqx.field(static=True)
    subject_paths: tuple[str, ...] = eqx.field(static=True)
    subjects: tuple[Any, ...] = eqx.field(static=True)
    _reparam: tuple[tuple[str, Any], ...] = eqx.field(static=True)

    def __init__(
        self,
        sim: bm.Simulator,
        priors: Mapping[str, Any],
        likelihood: AbstractLikelihood,
        n_subjects: int | None = None,
        *,
        subjects: Sequence[Any] | None = None,
        conditional_on_noise: bool = False,
        noise_key: Any = None,
        reparam: Mapping[str, Any] | None = None,
    ):
        n_subjects, self.subjects = _subject_ids(n_subjects, subjects)
        _check_components(sim, likelihood)

        def check(path, prior, domain, shapes) -> None:
            if not isinstance(prior, Hierarchical):
                return check_prior(path, prior, domain, shapes)
            if prior.size not in (None, n_subjects):
                raise ValueError(
                    f"priors[{path!r}]: Hierarchical size={prior.size}, expected None or "
                    f"n_subjects = {n_subjects} (one value per subject)."
                )
            sized = Hierarchical(prior.loc, prior.scale, size=n_subjects, transform=prior.transform)
            check_prior(path, sized, domain, ((n_subjects,),))

        check_priors(sim, priors, check)
        # one subject: shared priors as given, per-subject parameters flat on their support
        one = {
            p: dist.ImproperUniform(v.support, (), ()) if isinstance(v, Hierarchical) else v
            for p, v in priors.items()
        }
        subject = BayesianModel(
            sim, one, likelihood, conditional_on_noise=conditional_on_noise, noise_key=noise_key
        )
        self.n_subjects = n_subjects
        self.subject_model = subject
        self.sim = sim
        self.paths = tuple(priors)
        self._priors = tuple(priors[p] for p in self.paths)
        self.likelihood = subject.likelihood
        self.conditional_on_noise = subject.conditional_on_noise
        self.noise_key = subject.noise_key
        self._units = subject._units
        self.n_regions = subject.n_regions
        self.subject_paths = tuple(p for p, v in self.priors.items() if isinstance(v, Hierarchical))
        if not self.subject_paths:
            raise ValueError(
                "priors: a CohortModel needs at least one per-subject parameter "
                "(an inference.Hierarchical prior); with shared parameters only, use "
                "BayesianModel with batch=True in nuts/map_estimate."
            )
        self._reparam = ()
        self._reparam = _check_reparam(reparam, self.prior_model)

    # ------------------------------------------------------------------ the model
    def _sample_parameters(self) -> dict[str, Any]:
        out = {}
        for path, prior in self.priors.items():
            size = self.n_subjects if isinstance(prior, Hierarchical) else self.n_regions
            out[path] = sample_prior(path, prior, size)
        return out

    def predict(self, theta: Mapping[str, Any]) -> tuple[Any, Any]:
        """Predictions of every subject, `(n_subjects, ...)`, and their ok flags (vmapped)."""
        axes = {p: (0 if p in self.subject_paths else None) for p in theta}
        return jax.vmap(self.subject_model.predict, in_axes=(axes,))(dict(theta))

    def numpyro_model(self, data: Any = None) -> None:
        """The cohort's NumPyro model; `data` `(n_subjects, ...)` or None."""
        with self._reparametrised():
            theta = self._sample_parameters()
            noise = _sample_noise(self.likelihood)
        prediction, ok = self.predict(theta)
        observed = None if data is None else self._prepare(data)
        failed = jnp.sum(jnp.where(ok, 0.0, -jnp.inf))
        _observe(self.likelihood, theta, noise, prediction, ok, data, observed, failed)

    def prior_model(self) -> None:
        """The priors alone (group, per-subject, shared and noise parameters), as NumPyro."""
        with self._reparametrised():
            self._sample_parameters()
            _sample_noise(self.likelihood)

    def _prepare(self, data: Any) -> Any:
        return jax.vmap(self.likelihood.prepare)(jnp.asarray(data))

    # ------------------------------------------------------------------ checks
    def check_data(self, data: Any) -> Any:
        """Validate every subject's data; returns them prepared, `(n_subjects, ...)`."""
        if data is None:
            raise ValueError("data: expected the observed data, got None.")
        data = self.observed(data)
        arr = np.asarray(data)
        if arr.ndim < 1 or arr.shape[0] != self.n_subjects:
            raise ValueError(
                f"data: expected {self.n_subjects} subjects on the first axis, got shape "
                f"{arr.shape}."
            )
        prepared = []
        for i in range(self.n_subjects):
            try:
                prepared.append(self.subject_model.check_data(arr[i]))
            except ValueError as err:
                raise ValueError(f"data[{i}] (subject {self.subjects[i]!r}): {err}") from None
        return jnp.stack(prepared)

    # ------------------------------------------------------------------ labels
    def dims(self) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """As `BayesianModel.dims`, with a `subject` dimension on per-subject sites and data."""
        labels = np.asarray(self.sim.network.connectome.labels)
        dims, coords = _parameter_dims(self.priors, self.n_regions, labels)
        for path in self.subject_paths:
            dims[path] = ["subject"]
            dims[f"{path}.{self.priors[path].member_site}"] = ["subject"]
        obs_dims, obs_coords = self.likelihood.dims()
        dims[OBS] = ["subject", *obs_dims]
        coords.update(obs_coords)
        coords["subject"] = np.asarray(self.subjects)
        return dims, coords

    def __repr__(self) -> str:
        priors = ", ".join(f"{p}: {type(v).__name__}" for p, v in self.priors.items())
        like = type(self.likelihood).__name__
        return f"CohortBayesianModel({{{priors}}}, {like}, {self.n_subjects} subjects)"


def _subject_ids(n_subjects: Any, subjects: Any) -> tuple[int, tuple[Any, ...]]:
    """`(n_subjects, subject IDs)` from either or both arguments, checked against each other."""
    if subjects is not None:
        if isinstance(subjects, str) or not isinstance(subjects, Sequence | np.ndarray):
            raise ValueError(
                f"subjects: expected a sequence of subject IDs, got {type(subjects).__name__}."
            )
        ids = tuple(v.item() if isinstance(v, np.generic) else v for v in subjects)
        bad = [v for v in ids if isinstance(v, bool) or not isinstance(v, str | int)]
        if bad:
            raise ValueError(f"subjects: expected IDs as text or integers, got {bad[0]!r}.")
        if not ids:
            raise ValueError("subjects: expected at least one subject ID, got none.")
        if len(set(ids)) != len(ids):
            repeated = sorted({str(v) for v in ids if ids.count(v) > 1})
            raise ValueError(f"subjects: the IDs must be unique; repeated: {repeated}.")
        if n_subjects is not None and check_int(n_subjects, "n_subjects", 1) != len(ids):
            raise ValueError(
                f"n_subjects: {n_subjects} does not match the {len(ids)} subject IDs given."
            )
        return len(ids), ids
    if n_subjects is None:
        raise ValueError("n_subjects: expected the number of subjects (or subjects=[IDs]).")
    n = check_int(n_subjects, "n_subjects", 1)
    return n, tuple(range(n))
