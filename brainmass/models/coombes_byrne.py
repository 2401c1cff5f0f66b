"""Coombes-Byrne next-generation neural mass with conductance-based synapses."""

from __future__ import annotations

import math
from typing import ClassVar

import brainunit as u
import jax.numpy as jnp

from .._custom_types import Coupling, State
from .._params import param
from ._base import AbstractNeuralMass

__all__ = ["CoombesByrne"]


class CoombesByrne(AbstractNeuralMass):
    r"""Next-generation neural mass: QIF mean field with an alpha-function conductance.

    $$
    \begin{aligned}
    \dot r &= \frac{\Delta}{\pi} + 2 r v - g r, \\
    \dot v &= v^2 - \pi^2 r^2 + \eta + (v_{syn} - v)\, g + C_r, \\
    \dot g &= \alpha q, \\
    \dot q &= \alpha (\kappa \pi r - g - 2 q)
    \end{aligned}
    $$

    The exact (Ott-Antonsen) mean field of a population of quadratic
    integrate-and-fire (theta) neurons with Lorentzian excitabilities (centre
    $\eta$, half-width $\Delta$), coupled through a synaptic conductance $g$
    with reversal potential $v_{syn}$. The conductance follows the population
    rate through an alpha-function synapse,
    $(1 + \alpha^{-1} d/dt)^2 g = \kappa \pi r$, written as two first-order
    equations with $q = \dot g / \alpha$. $r$ is the firing rate (1/ms), $v$
    the mean (rescaled, dimensionless) membrane potential, $g$ the
    dimensionless conductance. $C_r$ is the network input formed from the
    other regions' rates (e.g. $G \sum_j W_{ij} r_j(t - \tau_{ij})$ with
    `coupling.Linear`), added to the $v$ equation as a current.

    Coombes & Byrne (2019), "Next generation neural mass models", in Corinto &
    Torcini (eds.), Nonlinear Dynamics in Computational Neuroscience, Springer,
    pp. 1-16; Byrne, Brookes & Coombes (2017), J. Comput. Neurosci. 43:143.

    Conventions, following The Virtual Brain's `CoombesByrne` (4-D):

    - The membrane time constant is absorbed ($\tau = 1$) and time is read in
      ms, so $\alpha$ is in 1/ms and $r$ in 1/ms (kHz).
    - Defaults are TVB's: $\Delta = 0.5$, $\alpha = 0.95$/ms, $v_{syn} = -10$,
      $\kappa = 1$, $\eta = 20$; a single region then oscillates on a stable
      limit cycle ($r$ between about 0.21 and 1.44/ms, period 2.08 ms). With
      $\tau = 1$ ms these are fast (~480 Hz) dynamics; resolve them with
      `dt` <= 0.01 ms. Other $\eta$ give a stable fixed point (e.g. $\eta = 0$
      or $\eta = 30$).
    - The rate equation has the term $-g r$ (as TVB's code; its docstring's
      $-g r^2$ is a typo: the Lorentzian ansatz for
      $\dot V_i = V_i^2 + \eta_i + g (v_{syn} - V_i)$ gives $-g r$).
    - Only $r$ is coupled (TVB lists all four variables as coupling variables
      but uses only the rate's); the observable is $r$ (TVB's first variable
      of interest).
    """

    Delta: float = param(
        0.5, domain="positive", doc="half-width of the Lorentzian excitability distribution"
    )
    alpha: float = param(
        0.95, unit=u.ms**-1, domain="positive", doc="rate constant of the alpha-function synapse"
    )
    v_syn: float = param(-10.0, doc="synaptic reversal potential (rescaled voltage)")
    k: float = param(1.0, domain="nonnegative", doc="local synaptic coupling strength kappa")
    eta: float = param(20.0, doc="centre of the Lorentzian excitability distribution")

    state_variables: ClassVar[tuple[str, ...]] = ("r", "v", "g", "q")
    coupled_variables: ClassVar[tuple[str, ...]] = ("r",)
    observable: ClassVar[str] = "r"
    initial_state: ClassVar[dict[str, float]] = {"r": 0.5, "v": 0.0, "g": 1.5, "q": 0.0}

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(4, n_regions)` (r, v, g, q), `coupling` `(1, n_regions)`.

        **Returns:** `(4, n_regions)`, per ms.
        """
        r, v, g, q = state[0], state[1], state[2], state[3]
        dr = self.Delta / math.pi + 2.0 * r * v - g * r
        dv = v * v - (math.pi * r) ** 2 + self.eta + (self.v_syn - v) * g + coupling[0]
        dg = self.alpha * q
        dq = self.alpha * (self.k * math.pi * r - g - 2.0 * q)
        return jnp.stack([dr, dv, dg, dq])
