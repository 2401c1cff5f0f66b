"""Hopf (Stuart-Landau) normal form."""

from __future__ import annotations

import math
from typing import ClassVar

import brainunit as u
import jax.numpy as jnp

from .._custom_types import Coupling, State
from .._params import param
from ..units import RAD_PER_MS
from ._base import AbstractNeuralMass

__all__ = ["Hopf"]


class Hopf(AbstractNeuralMass):
    r"""Hopf normal form (Stuart-Landau oscillator) per region.

    $$
    \dot x = (a - x^2 - y^2)\,x - \omega y + c_x, \qquad
    \dot y = (a - x^2 - y^2)\,y + \omega x
    $$

    where $c_x$ is the afferent coupling. For $a < 0$ the origin is a stable
    focus (noise-driven damped oscillations at $\omega$); for $a > 0$ a stable
    limit cycle of radius $\sqrt a$. Time in ms: $a$ in 1/ms, $\omega$ in rad/ms.

    $\omega$ is an angular frequency: a plain number is read in rad/ms, a
    quantity in rad/s or rad/ms keeps its value, and a quantity in Hz is the
    cycle frequency $f$ of the oscillation, converted to $\omega = 2\pi f$:
    `Hopf(omega=10 * u.Hz)` oscillates at 10 Hz ($\omega \approx 0.0628$ rad/ms).
    Note that `2 * pi * 10 * u.Hz` is therefore 62.8 Hz.

    Deco, Kringelbach, Jirsa & Ritter (2017), "The dynamics of resting
    fluctuations in the brain: metastability and its dynamical cortical core",
    Sci. Rep. 7:3095; Kuznetsov (2004), Elements of Applied Bifurcation Theory.

    Defaults: $a = -0.02$/ms (just below the bifurcation), $\omega = 2\pi \cdot 10$ Hz.
    """

    a: float = param(-0.02, unit=u.ms**-1, doc="bifurcation parameter (distance to the Hopf point)")
    omega: float = param(
        2 * math.pi * 0.010,
        unit=RAD_PER_MS,
        doc="angular frequency (rad/ms; a quantity in Hz is f, read as 2 pi f); 10 Hz by default",
    )

    state_variables: ClassVar[tuple[str, ...]] = ("x", "y")
    coupled_variables: ClassVar[tuple[str, ...]] = ("x",)
    observable: ClassVar[str] = "x"
    initial_state: ClassVar[dict[str, float]] = {"x": 0.1, "y": 0.0}

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(2, n_regions)`, `coupling` `(1, n_regions)`, per ms."""
        x, y = state[0], state[1]
        r2 = x * x + y * y
        dx = (self.a - r2) * x - self.omega * y + coupling[0]
        dy = (self.a - r2) * y + self.omega * x
        return jnp.stack([dx, dy])
