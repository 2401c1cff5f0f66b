"""Likelihoods: how the model makes the data probable.

Every likelihood follows one contract (`AbstractLikelihood`, see `_base`): `bind(sim)`
returns a bound copy, `prepare(data)` turns the data into what is compared, a prediction
comes from a simulation (`predict`) or from the linearised network alone
(`predict_without_simulation`), and `distribution(prediction, noise)` is a NumPyro
distribution of the prepared data whose `log_prob` gives the pointwise terms.

For deterministic simulators (the prediction is the signal):

- `TimeSeries(sigma)`: Gaussian measurement noise on the monitor's signal.
- `FC(sigma)`: Gaussian on the Fisher-z upper triangle of the FC.
- `Custom(fn)`: any `(prediction, data, params) -> log-likelihood`.

For noise-driven data (integrating over the process noise, no time stepping):

- `StateSpace(sigma)`: the exact likelihood of the observed series (a Kalman filter on
  the exact discretisation of the linear or linearised network and its monitor).
- `Linearized("fc")` (`LinearizedFC`): the FC of the linearised network.
- `Whittle(...)` (= `Linearized("spectrum")`): spectra of the linearised network.

A stochastic simulator with a simulating likelihood is refused by `BayesianModel`
unless `conditional_on_noise=True` asks for the likelihood given one noise draw.
"""

from ._base import AbstractLikelihood as AbstractLikelihood
from ._base import SignalSpec as SignalSpec
from ._linearized import Linearized as Linearized
from ._linearized import LinearizedFC as LinearizedFC
from ._linearized import Whittle as Whittle
from ._simulated import FC as FC
from ._simulated import Custom as Custom
from ._simulated import TimeSeries as TimeSeries
from ._statespace import StateSpace as StateSpace

__all__ = [
    "AbstractLikelihood",
    "Custom",
    "FC",
    "Linearized",
    "LinearizedFC",
    "SignalSpec",
    "StateSpace",
    "TimeSeries",
    "Whittle",
]
