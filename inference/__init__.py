"""Probabilistic inference for brainmass simulators.

NumPyro models built from a `brainmass.Simulator`, priors and a likelihood
(`BayesianModel`), gradient MAP with a Laplace approximation
(`map_estimate`, `laplace`), NUTS through the solve with NumPyro and BlackJAX
backends (`nuts`), and results as ArviZ DataTrees (`Posterior.to_arviz`).

    import inference as inf
    bmodel = inf.BayesianModel(sim, {"coupling.G": dist.Uniform(0, 1)},
                               inf.likelihoods.TimeSeries(sigma=0.05))
    post = inf.nuts(bmodel, data, jax.random.key(0), backend="numpyro")
    post.to_arviz()
"""

from . import (
    _compat,  # noqa: F401  (first: repairs NumPyro when ArviZ lazy-loaded it)
    likelihoods,
)
from .cohort import CohortModel
from .map import MAPResult, laplace, map_estimate
from .mcmc import nuts
from .model import BayesianModel, LogDensity, predictive
from .priors import Hierarchical
from .results import Posterior

__all__ = [
    "BayesianModel",
    "CohortModel",
    "Hierarchical",
    "LogDensity",
    "MAPResult",
    "Posterior",
    "laplace",
    "likelihoods",
    "map_estimate",
    "nuts",
    "predictive",
]
