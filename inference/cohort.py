"""CohortModel: group-level and per-subject parameters over a cohort's datasets, one model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import brainmass as bm

from .likelihoods import AbstractLikelihood
from .model import OBS, BayesianModel
from .priors import Hierarchical, check_prior, sample_prior

__all__ = ["CohortModel"]


class CohortModel(BayesianModel):
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
      this length.
    - `conditional_on_noise`, `noise_key`: as for `BayesianModel`.

    Sites: `path.loc`, `path.scale`, `path.z` (`(n_subjects,)`) and `path`
    (deterministic, `(n_subjects,)`) for per-subject parameters; `path` for
    shared ones; `obs` with a leading subject axis.
    """

    def __init__(
        self,
        sim: bm.Simulator,
        priors: Mapping[str, Any],
        likelihood: AbstractLikelihood,
        n_subjects: int,
        *,
        conditional_on_noise: bool = False,
        noise_key: Any = None,
    ):
        if int(n_subjects) != n_subjects or n_subjects < 1:
            raise ValueError(f"n_subjects: expected a positive integer, got {n_subjects!r}.")
        self.n_subjects = int(n_subjects)
        super().__init__(
            sim, priors, likelihood, conditional_on_noise=conditional_on_noise, noise_key=noise_key
        )
        self.subject_paths = tuple(p for p, v in self.priors.items() if isinstance(v, Hierarchical))
        if not self.subject_paths:
            raise ValueError(
                "priors: a CohortModel needs at least one per-subject parameter "
                "(an inference.Hierarchical prior); with shared parameters only, use "
                "BayesianModel with batch=True in nuts/map_estimate."
            )

    def _check_prior(self, path, prior, domain, shapes) -> None:
        if isinstance(prior, Hierarchical):
            if prior.size not in (None, self.n_subjects):
                raise ValueError(
                    f"priors[{path!r}]: Hierarchical size={prior.size}, expected None or "
                    f"n_subjects = {self.n_subjects} (one value per subject)."
                )
            sized = Hierarchical(
                prior.loc, prior.scale, size=self.n_subjects, transform=prior.transform
            )
            check_prior(path, sized, domain, ((self.n_subjects,),))
        else:
            check_prior(path, prior, domain, shapes)

    def _sample_parameters(self) -> dict[str, Any]:
        out = {}
        for path, prior in self.priors.items():
            size = self.n_subjects if isinstance(prior, Hierarchical) else self.n_regions
            out[path] = sample_prior(path, prior, size)
        return out

    def predict(self, theta: Mapping[str, Any]) -> tuple[Any, Any]:
        """Predictions of every subject, `(n_subjects, ...)`, and their ok flags (vmapped)."""
        axes = {p: (0 if p in self.subject_paths else None) for p in theta}
        return jax.vmap(super().predict, in_axes=(axes,))(dict(theta))

    def numpyro_model(self, data: Any = None) -> None:
        """The cohort's NumPyro model; `data` `(n_subjects, ...)` or None."""
        import numpyro

        from .model import FAILED

        theta = self._sample_parameters()
        noise = self._sample_noise()
        prediction, ok = self.predict(theta)
        observed = None if data is None else self._prepare(data)
        safe = self._safe_prediction(prediction, ok, observed)
        numpyro.factor(FAILED, jnp.sum(jnp.where(ok, 0.0, -jnp.inf)))
        d = self.likelihood.distribution(safe, noise, data=data, theta=theta)
        numpyro.sample(OBS, d, obs=observed)

    def _prepare(self, data: Any) -> Any:
        return jax.vmap(self.likelihood.prepare)(jnp.asarray(data))

    def check_data(self, data: Any) -> Any:
        """Validate every subject's data; returns them prepared, `(n_subjects, ...)`."""
        if data is None:
            raise ValueError("data: expected the observed data, got None.")
        arr = np.asarray(data)
        if arr.ndim < 1 or arr.shape[0] != self.n_subjects:
            raise ValueError(
                f"data: expected {self.n_subjects} subjects on the first axis, got shape "
                f"{arr.shape}."
            )
        prepared = []
        for i in range(self.n_subjects):
            try:
                prepared.append(self.likelihood.prepare(arr[i]))
            except ValueError as err:
                raise ValueError(f"data[{i}] (subject {i}): {err}") from None
        return jnp.stack(prepared)

    def dims(self) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """As `BayesianModel.dims`, with a `subject` dimension on per-subject sites and data."""
        dims, coords = super().dims()
        for path in self.subject_paths:
            dims[path] = ["subject"]
            dims[f"{path}.{self.priors[path].member_site}"] = ["subject"]
        obs_dims, obs_coords = self.likelihood.dims()
        dims[OBS] = ["subject", *obs_dims]
        coords.update(obs_coords)
        coords["subject"] = np.arange(self.n_subjects)
        return dims, coords

    def __repr__(self) -> str:
        return f"Cohort{super().__repr__()[:-1]}, {self.n_subjects} subjects)"
