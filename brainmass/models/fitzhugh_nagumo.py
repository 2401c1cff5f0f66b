"""FitzHugh-Nagumo excitable oscillator."""

from __future__ import annotations

from typing import ClassVar

import brainunit as u
import jax.numpy as jnp

from .._custom_types import Coupling, Float, State
from .._params import param
from ._base import AbstractNeuralMass

__all__ = ["FitzHughNagumo"]


class FitzHughNagumo(AbstractNeuralMass):
    r"""FitzHugh-Nagumo model: a fast excitable variable $v$ and a slow recovery $w$.

    $$
    \tau \dot v = v - \frac{v^3}{3} - w + I + c_v, \qquad
    \tau \dot w = \varepsilon\,(v + a - b w)
    $$

    with the classic constants $a = 0.7$, $b = 0.8$, $\varepsilon = 0.08$
    (FitzHugh's $\phi$, $= 1/c^2$ with his $c \approx 3.5$) and $c_v$ the
    afferent coupling. $v$, $w$, $I$ and $a$ are dimensionless; $\tau$ (ms)
    sets the time scale. With $\tau = 1$ ms a region rests at
    $(v, w) \approx (-1.20, -0.62)$ for $I = 0$, and for
    $0.33 \lesssim I \lesssim 1.42$ it oscillates on a relaxation limit cycle
    whose period is a few tens of ms (about 39 ms at $I = 0.5$, i.e. 25 Hz);
    a larger $\tau$ slows everything in proportion.

    FitzHugh (1961), "Impulses and physiological states in theoretical models
    of nerve membrane", Biophys. J. 1:445-466; Nagumo, Arimoto & Yoshizawa
    (1962), "An active pulse transmission line simulating nerve axon", Proc.
    IRE 50:2061-2070.
    """

    tau: Float = param(1.0, unit=u.ms, domain="positive", doc="time scale of both variables")
    a: Float = param(0.7, doc="offset of the recovery nullcline")
    b: Float = param(0.8, domain="nonnegative", doc="self-inhibition of the recovery variable")
    eps: Float = param(
        0.08, domain="positive", doc="time-scale ratio of recovery to excitation (FitzHugh's phi)"
    )
    I: Float = param(0.0, doc="external input current (dimensionless)")  # noqa: E741

    state_variables: ClassVar[tuple[str, ...]] = ("v", "w")
    coupled_variables: ClassVar[tuple[str, ...]] = ("v",)
    observable: ClassVar[str] = "v"
    initial_state: ClassVar[dict[str, float]] = {"v": -1.2, "w": -0.625}

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(2, n_regions)`, `coupling` `(1, n_regions)`, per ms."""
        v, w = state[0], state[1]
        dv = (v - v * v * v / 3.0 - w + self.I + coupling[0]) / self.tau
        dw = self.eps * (v + self.a - self.b * w) / self.tau
        return jnp.stack([dv, dw])
