"""Fitting: simulator parameters fitted to data by gradients or gradient-free search.

fitter = bm.Fitter(
sim,
params={"coupling.G": bm.Bounded(0.0, 0.5, init=0.1)},
objective=bm.objectives.FCCorrelation(),
target=empirical_bold,
method="adam",              # or "CMA", "NGOpt", "L-BFGS-B", "Nelder-Mead", ...
)
result = fitter.fit(jax.random.key(0), steps=200)
result.params, result.loss, result.plot()
"""

from ._fitter import GRADIENT_METHODS as GRADIENT_METHODS
from ._fitter import SCIPY_METHODS as SCIPY_METHODS
from ._fitter import Fitter as Fitter
from ._result import FitResult as FitResult
from ._space import AbstractParameter as AbstractParameter
from ._space import Bounded as Bounded
from ._space import ParameterSpace as ParameterSpace
from ._space import Positive as Positive
from ._space import Unbounded as Unbounded

__all__ = [
    "AbstractParameter",
    "Bounded",
    "FitResult",
    "Fitter",
    "GRADIENT_METHODS",
    "ParameterSpace",
    "Positive",
    "SCIPY_METHODS",
    "Unbounded",
]
