"""Montbrió-Pazó-Roxin mean field of quadratic integrate-and-fire neurons."""

from __future__ import annotations

import math
from typing import ClassVar

import brainunit as u
import jax.numpy as jnp

from .._custom_types import Coupling, State
from .._params import param
from ._base import AbstractNeuralMass

__all__ = ["MontbrioPazoRoxin"]


class MontbrioPazoRoxin(AbstractNeuralMass):
    r"""Exact firing-rate model of a population of QIF neurons (Montbrió, Pazó & Roxin).

    $$
    \tau \dot r = \frac{\Delta}{\pi \tau} + 2 r v, \qquad
    \tau \dot v = v^2 + \bar\eta + J \tau r + I - (\pi \tau r)^2 + c_r\, C_r
    $$

    $r$ is the population firing rate (1/ms, i.e. kHz) and $v$ the mean
    membrane potential (dimensionless, the QIF's rescaled voltage). The
    excitabilities $\eta_j$ of the neurons are Lorentzian with centre
    $\bar\eta$ and half-width $\Delta$; $J$ is the recurrent synaptic weight
    and $I$ an external current. $C_r$ is the afferent coupling of the network,
    formed from the rates $r_j$ of the other regions (e.g.
    $C_r = G \sum_j W_{ij} r_j(t - \tau_{ij})$ with `coupling.Linear`); it enters
    the $v$ equation like a current, as in The Virtual Brain.

    Montbrió, Pazó & Roxin (2015), "Macroscopic description for networks of
    spiking neurons", Phys. Rev. X 5:021028, eqs. (12)-(13).

    Fixed points satisfy $v^* = -\Delta / (2\pi\tau r^*)$ and
    $v^{*2} + \bar\eta + J\tau r^* + I - (\pi\tau r^*)^2 = 0$. With the defaults
    ($\bar\eta = -5$, $J = 15$, $\Delta = 1$) a low-activity node
    ($r^* \approx 0.081$/ms) and a high-activity focus ($r^* \approx 1.03$/ms)
    coexist (the paper's Fig. 1 bistability).

    Choices (documented deviations and conventions):

    - Time is in ms and $\tau = 1$ ms by default, as in TVB's
      `MontbrioPazoRoxin` (so the paper's dimensionless time $t/\tau$ is read
      as ms). Set `tau=10.0` for the paper's physiological time constant; the
      rate then changes scale accordingly ($r \propto 1/\tau$).
    - Only $r$ is a coupled variable. TVB also sends $v$ (weight `cv`, default
      0); supporting it would double the delay buffer of every network for a
      term that is off by default, so it is left out. `cr` scales the
      rate coupling per region (TVB default 1).
    - TVB's unused `Gamma` parameter is omitted.
    - State variables are named `r`, `v` (TVB: `r`, `V`); the observable is `r`.
    """

    tau: float = param(1.0, unit=u.ms, domain="positive", doc="membrane time constant")
    Delta: float = param(
        1.0, domain="positive", doc="half-width of the Lorentzian excitability distribution"
    )
    eta: float = param(-5.0, doc="centre of the Lorentzian excitability distribution")
    J: float = param(15.0, doc="recurrent synaptic weight")
    I: float = param(0.0, doc="external input current")
    cr: float = param(1.0, doc="gain of the network coupling through the rate r")

    state_variables: ClassVar[tuple[str, ...]] = ("r", "v")
    coupled_variables: ClassVar[tuple[str, ...]] = ("r",)
    observable: ClassVar[str] = "r"
    initial_state: ClassVar[dict[str, float]] = {"r": 0.1, "v": -2.0}

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(2, n_regions)` (r in 1/ms, v), `coupling` `(1, n_regions)`.

        **Returns:** `(2, n_regions)`, per ms.
        """
        r, v = state[0], state[1]
        tau = self.tau
        dr = (self.Delta / (math.pi * tau) + 2.0 * r * v) / tau
        dv = (
            v * v
            + self.eta
            + self.J * tau * r
            + self.I
            - (math.pi * tau * r) ** 2
            + self.cr * coupling[0]
        ) / tau
        return jnp.stack([dr, dv])
