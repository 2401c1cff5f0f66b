"""Kuramoto phase oscillator."""

from __future__ import annotations

import math
from typing import ClassVar

import jax.numpy as jnp

from .._custom_types import Coupling, Float, State
from .._params import param
from ..units import RAD_PER_MS
from ._base import AbstractNeuralMass

__all__ = ["Kuramoto"]


class Kuramoto(AbstractNeuralMass):
    r"""Phase oscillator per region (Kuramoto model).

    $$
    \dot\theta_i = \omega_i + C_i
    $$

    With `coupling.Kuramoto(G)` the network input is
    $C_i = G \sum_j W_{ij} \sin(\theta_j(t - \tau_{ij}) - \theta_i(t))$, the
    delayed Kuramoto network of Breakspear, Heitmann & Daffertshofer (2010)
    and Cabral et al. (2011); with all-to-all weights $W_{ij} = 1$ and
    $G = K/N$ it is Kuramoto's original model.

    Kuramoto (1984), Chemical Oscillations, Waves, and Turbulence, Springer;
    Yeung & Strogatz (1999), "Time delay in the Kuramoto model of coupled
    oscillators", Phys. Rev. Lett. 82:648; Cabral, Hugues, Sporns & Deco
    (2011), NeuroImage 57:130.

    Conventions:

    - Time in ms, $\omega$ in rad/ms. The default is $2\pi \cdot 10$ Hz
      $\approx 0.0628$ rad/ms (alpha band, as `Hopf`). The Virtual Brain's
      `Kuramoto` defaults to $\omega = 1$ rad/ms ($\approx 159$ Hz); Cabral et
      al. (2011) use 40-60 Hz.
    - $\omega$ is an angular frequency: a plain number is read in rad/ms, a
      quantity in rad/s or rad/ms keeps its value, and a quantity in Hz is the
      cycle frequency $f$, converted to $\omega = 2\pi f$
      (`Kuramoto(omega=10 * u.Hz)` turns ten times a second).
    - $\theta$ is a periodic variable: fixed-step solvers wrap it into
      $[0, 2\pi)$ after every step (the dynamics see it only through sines
      and cosines), so long runs keep full float32 resolution. Frequencies are
      the slope of the unwrapped phase (`numpy.unwrap`). The `Diffrax` solver
      does not wrap: use float64 there for long runs.
    - The derived variable `"x"` $= \sin\theta$ is the default observable:
      unlike the unbounded, ever-growing phase it is smooth, bounded and
      stationary, so its FC, spectra and forward models (BOLD, EEG) are
      meaningful. Record `Raw(period, variable="theta")` for the phase itself.
    """

    omega: float = param(
        2 * math.pi * 0.010,
        unit=RAD_PER_MS,
        doc="natural angular frequency (rad/ms; a quantity in Hz is f, read as 2 pi f); 10 Hz",
    )

    state_variables: ClassVar[tuple[str, ...]] = ("theta",)
    coupled_variables: ClassVar[tuple[str, ...]] = ("theta",)
    periodic_variables: ClassVar[tuple[str, ...]] = ("theta",)
    derived_variables: ClassVar[tuple[str, ...]] = ("x",)
    observable: ClassVar[str] = "x"
    initial_state: ClassVar[dict[str, float]] = {"theta": 0.0}

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(1, n_regions)` (rad), `coupling` `(1, n_regions)`, rad/ms."""
        return (self.omega + coupling[0])[None]

    def derived(self, name: str, state: State) -> Float:
        r"""`"x"`: $\sin\theta$, shape `(n_regions,)`."""
        if name == "x":
            return jnp.sin(state[0])
        raise KeyError(name)
