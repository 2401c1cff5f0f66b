"""Probabilistic inference for brainmass simulators.

NumPyro models built from a `brainmass.Simulator`, priors and a likelihood
(`BayesianModel`), gradient MAP with a Laplace approximation
(`map_estimate`, `laplace`), NUTS through the solve with NumPyro and BlackJAX
backends (`nuts`), neural posterior estimation on simulation banks with flowjax
(`simulate_bank`, `NPE`, `summaries`) and learned likelihoods (`NLE`), calibration
diagnostics (`diagnostics`: SBC, TARP, posterior predictive checks), and results as
ArviZ DataTrees (`Posterior.to_arviz`). `inference.demo` is the `brainmass demo`
command (registered as a `brainmass.commands` entry point; not imported here).

    import inference as inf
    bmodel = inf.BayesianModel(sim, {"coupling.G": dist.Uniform(0, 1)},
                               inf.likelihoods.TimeSeries(sigma=0.05))
    post = inf.nuts(bmodel, data, jax.random.key(0), backend="numpyro")
    post.to_arviz()
"""

from . import (
    _compat,  # noqa: F401  (first: repairs NumPyro when ArviZ lazy-loaded it)
    diagnostics,
    likelihoods,
    summaries,
)
from .bank import PriorSpace, SimulationBank, simulate_bank
from .cohort import CohortModel
from .compare import compare
from .evidence import Evidence, log_evidence
from .lfo import lfo
from .map import MAPResult, Mode, laplace, map_estimate
from .mcmc import nuts
from .model import BayesianModel, LogDensity, predictive
from .priors import Hierarchical
from .results import Posterior
from .sbi import NLE, NPE, NPEPosterior

__all__ = [
    "BayesianModel",
    "CohortModel",
    "Hierarchical",
    "LogDensity",
    "MAPResult",
    "Evidence",
    "log_evidence",
    "compare",
    "Mode",
    "NLE",
    "NPE",
    "NPEPosterior",
    "PriorSpace",
    "Posterior",
    "SimulationBank",
    "diagnostics",
    "laplace",
    "lfo",
    "likelihoods",
    "map_estimate",
    "nuts",
    "predictive",
    "simulate_bank",
    "summaries",
]

_RENAMED = {"ParameterSpace": "PriorSpace"}


def __getattr__(name: str):
    if name in _RENAMED:
        raise AttributeError(
            f"inference.{name} was renamed inference.{_RENAMED[name]} (brainmass.fitting."
            "ParameterSpace is the Fitter's search space; the priors' layout is PriorSpace)."
        )
    raise AttributeError(f"module 'inference' has no attribute {name!r}")
