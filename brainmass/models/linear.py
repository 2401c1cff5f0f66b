"""Linear (Ornstein-Uhlenbeck) network model."""

from __future__ import annotations

from typing import ClassVar

import brainunit as u

from .._custom_types import Coupling, State
from .._params import param
from ._base import AbstractNeuralMass

__all__ = ["Linear"]


class Linear(AbstractNeuralMass):
    r"""Linear relaxation per region; with additive noise, an Ornstein-Uhlenbeck network.

    $$
    \dot x = -\lambda\, x + c_x
    $$

    With linear coupling $c = G W x$ and additive white noise of intensity
    $\sigma$, the network is the multivariate OU process
    $dx = A x\,dt + \sigma\, dW$ with $A = -\lambda I + G W$, whose stationary
    covariance $\Sigma$ solves the Lyapunov equation $A\Sigma + \Sigma A^T +
    \sigma^2 I = 0$ (stable when every eigenvalue of $A$ has a negative real
    part). Time in ms; $\lambda$ in 1/ms.

    Gardiner (2009), Stochastic Methods, sec. 4.5.6; Galán (2008), "On how
    network architecture determines the dominant patterns of spontaneous neural
    activity", PLoS ONE 3:e2148.
    """

    lam: float = param(
        0.1, unit=u.ms**-1, domain="positive", doc="relaxation rate (1/time constant)"
    )

    state_variables: ClassVar[tuple[str, ...]] = ("x",)
    coupled_variables: ClassVar[tuple[str, ...]] = ("x",)
    observable: ClassVar[str] = "x"
    initial_state: ClassVar[dict[str, float]] = {"x": 0.0}

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(1, n_regions)`, `coupling` `(1, n_regions)`, per ms."""
        return (-self.lam * state[0] + coupling[0])[None]
