"""Jansen-Rit cortical column model."""

from __future__ import annotations

from typing import ClassVar

import brainunit as u
import jax.numpy as jnp

from .._custom_types import Coupling, Float, State
from .._params import param
from ._base import AbstractNeuralMass

__all__ = ["JansenRit"]


class JansenRit(AbstractNeuralMass):
    r"""Jansen-Rit model of a cortical column: pyramidal cells and two interneuron pools.

    $$
    \begin{aligned}
    \dot y_0 &= y_3, &
    \dot y_3 &= A a\, S(y_1 - y_2) - 2 a y_3 - a^2 y_0, \\
    \dot y_1 &= y_4, &
    \dot y_4 &= A a\,\big(\mu + \alpha_2 J\, S(\alpha_1 J y_0) + c_v\big) - 2 a y_4 - a^2 y_1, \\
    \dot y_2 &= y_5, &
    \dot y_5 &= B b\, \alpha_4 J\, S(\alpha_3 J y_0) - 2 b y_5 - b^2 y_2,
    \end{aligned}
    $$

    $$
    S(v) = \frac{2 \nu_{max}}{1 + e^{r (v_0 - v)}}.
    $$

    $y_0$ is the output of the pyramidal population (mV), $y_1$ and $y_2$ the
    excitatory and inhibitory postsynaptic potentials on the pyramidal cells
    (mV), $y_3, y_4, y_5$ their time derivatives (mV/ms). The pyramidal
    membrane potential $v = y_1 - y_2$ (mV, the EEG generator) is the derived
    variable `"v"`: the observable and the coupled variable. The afferent
    coupling $c_v$ (a firing rate in 1/ms, e.g. from `coupling.Sigmoidal`,
    $G \sum_j W_{ij} S(v_j)$) adds to the mean external input rate $\mu$ of
    the pyramidal cells, as in The Virtual Brain. With the defaults the column
    oscillates at about 11 Hz (alpha rhythm).

    Jansen & Rit (1995), "Electroencephalogram and visual evoked potential
    generation in a mathematical model of coupled cortical columns", Biol.
    Cybern. 73:357-366. Units and the coupling follow The Virtual Brain's
    `JansenRit` (time in ms), except $v_0 = 6$ mV (Jansen & Rit's value; TVB
    uses 5.52 mV).
    """

    A: Float = param(3.25, unit=u.mV, domain="positive", doc="maximum EPSP amplitude")
    B: Float = param(22.0, unit=u.mV, domain="positive", doc="maximum IPSP amplitude")
    a: Float = param(
        0.1, unit=u.ms**-1, domain="positive", doc="inverse excitatory synaptic time constant"
    )
    b: Float = param(
        0.05, unit=u.ms**-1, domain="positive", doc="inverse inhibitory synaptic time constant"
    )
    v0: Float = param(6.0, unit=u.mV, doc="potential at half-maximal firing rate")
    nu_max: Float = param(
        0.0025, unit=u.ms**-1, domain="positive", doc="half the maximum firing rate (e0)"
    )
    r: Float = param(0.56, unit=u.mV**-1, domain="positive", doc="steepness of the sigmoid")
    J: Float = param(135.0, domain="positive", doc="average number of synapses between populations")
    a_1: Float = param(1.0, domain="nonnegative", doc="pyramidal to excitatory interneurons")
    a_2: Float = param(0.8, domain="nonnegative", doc="excitatory interneurons to pyramidal")
    a_3: Float = param(0.25, domain="nonnegative", doc="pyramidal to inhibitory interneurons")
    a_4: Float = param(0.25, domain="nonnegative", doc="inhibitory interneurons to pyramidal")
    mu: Float = param(0.22, unit=u.ms**-1, domain="nonnegative", doc="mean external input rate")

    state_variables: ClassVar[tuple[str, ...]] = ("y0", "y1", "y2", "y3", "y4", "y5")
    coupled_variables: ClassVar[tuple[str, ...]] = ("v",)
    derived_variables: ClassVar[tuple[str, ...]] = ("v",)
    observable: ClassVar[str] = "v"
    initial_state: ClassVar[dict[str, float]] = {
        "y0": 0.0,
        "y1": 0.0,
        "y2": 0.0,
        "y3": 0.0,
        "y4": 0.0,
        "y5": 0.0,
    }

    def sigmoid(self, v: Float) -> Float:
        r"""Potential-to-rate sigmoid $S(v)$ (1/ms) of a potential `v` (mV)."""
        return 2.0 * self.nu_max / (1.0 + jnp.exp(self.r * (self.v0 - v)))

    def derived(self, name: str, state: State) -> Float:
        """The pyramidal potential `"v"` $= y_1 - y_2$ (mV), shape `(n_regions,)`."""
        if name == "v":
            return state[1] - state[2]
        raise KeyError(name)

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(6, n_regions)`, `coupling` `(1, n_regions)`, per ms."""
        y0, y1, y2, y3, y4, y5 = state
        a, b = self.a, self.b
        dy3 = self.A * a * self.sigmoid(y1 - y2) - 2.0 * a * y3 - a * a * y0
        drive = self.mu + self.a_2 * self.J * self.sigmoid(self.a_1 * self.J * y0) + coupling[0]
        dy4 = self.A * a * drive - 2.0 * a * y4 - a * a * y1
        dy5 = self.B * b * self.a_4 * self.J * self.sigmoid(self.a_3 * self.J * y0)
        dy5 = dy5 - 2.0 * b * y5 - b * b * y2
        return jnp.stack([y3, y4, y5, dy3, dy4, dy5])
