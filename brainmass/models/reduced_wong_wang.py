"""Reduced Wong-Wang (dynamic mean field) model."""

from __future__ import annotations

from typing import ClassVar

import brainunit as u
import jax.numpy as jnp

from .._custom_types import Coupling, Float, State
from .._params import param
from ._base import AbstractNeuralMass

__all__ = ["ReducedWongWang", "rate_function"]

# below this |d (a x - b)| the transfer function uses its Taylor series
_SERIES_THRESHOLD = 1e-2


def rate_function(y: Float, d: Float) -> Float:
    r"""The transfer function $H = y / (1 - e^{-d y})$, with $y = a x - b$.

    $H$ has a removable singularity at $y = 0$ (where $H = 1/d$). Written with
    $z = d y$ and $t = |z|$ as
    $H = \frac{1}{d}\, \frac{t\, e^{-\max(-z, 0)}}{1 - e^{-t}}$ (an identity
    for either sign of $z$), with the Taylor series
    $\frac{1}{d}(1 + z/2 + z^2/12)$ for $|z| < 10^{-2}$, so that it is finite
    with finite gradients everywhere and never overflows.

    **Arguments:**

    - `y`: $a x - b$, a rate (1/ms), any shape.
    - `d`: the curvature parameter (ms), broadcastable to `y`.

    **Returns:** $H$ in 1/ms (kHz), the shape of `y`.
    """
    z = d * y
    small = jnp.abs(z) < _SERIES_THRESHOLD
    z_safe = jnp.where(small, 1.0, z)
    t = jnp.abs(z_safe)
    e = jnp.exp(-t)
    # z >= 0: t / (1 - e^-t);  z < 0: t e^-t / (1 - e^-t) = z / (1 - e^-z)
    ratio = jnp.where(z_safe >= 0, t, t * e) / (-jnp.expm1(-t))
    series = 1.0 + z / 2.0 + z * z / 12.0
    return jnp.where(small, series, ratio) / d


class ReducedWongWang(AbstractNeuralMass):
    r"""Reduced Wong-Wang model: the NMDA gating $S$ of one excitatory population.

    $$
    x = w J_N S + I_o + J_N c_S, \qquad
    H(x) = \frac{a x - b}{1 - e^{-d (a x - b)}}, \qquad
    \dot S = -\frac{S}{\tau_s} + (1 - S)\, \gamma\, H(x)
    $$

    where $x$ is the synaptic input current (nA), $H$ the population firing rate
    and $c_S = G \sum_j W_{ij} S_j$ the afferent long-range coupling
    (dimensionless, scaled by $J_N$). $S \in [0, 1]$ is dimensionless.

    Units (time in ms): $a$ in 1/(ms nA) (270 Hz/nA = 0.270 kHz/nA), $b$ in
    1/ms (108 Hz = 0.108 kHz), $d$ in ms (0.154 s), so that $H$ is in kHz, and
    the kinetic parameter $\gamma = 0.641$ is dimensionless, as in Deco et al.
    (2013) and The Virtual Brain's current `ReducedWongWang`. (Codes that keep
    $a, b, d$ in Hz and s and time in ms write $\gamma = 0.641/1000$ instead:
    the same model.) With the defaults an isolated region rests at
    $S^* \approx 0.10$ (firing rate about 1.7 Hz). $H$ is evaluated through
    `rate_function`, which is finite with finite gradients at the removable
    singularity $a x = b$.

    Wong & Wang (2006), "A recurrent network mechanism of time integration in
    perceptual decisions", J. Neurosci. 26:1314-1328; Deco, Ponce-Alvarez,
    Mantini, Romani, Hagmann & Corbetta (2013), "Resting-state functional
    connectivity emerges from structurally and dynamically shaped slow linear
    fluctuations", J. Neurosci. 33:11239-11252.
    """

    a: Float = param(
        0.270, unit=u.ms**-1 / u.nA, domain="positive", doc="input gain of the transfer function"
    )
    b: Float = param(0.108, unit=u.ms**-1, doc="input shift of the transfer function")
    d: Float = param(154.0, unit=u.ms, domain="positive", doc="curvature of the transfer function")
    gamma: Float = param(0.641, domain="positive", doc="kinetic parameter (dimensionless)")
    tau_s: Float = param(100.0, unit=u.ms, domain="positive", doc="NMDA decay time constant")
    w: Float = param(0.6, domain="nonnegative", doc="local excitatory recurrence")
    J_N: Float = param(0.2609, unit=u.nA, domain="nonnegative", doc="NMDA synaptic coupling")
    I_o: Float = param(0.33, unit=u.nA, doc="effective external input current")

    state_variables: ClassVar[tuple[str, ...]] = ("S",)
    coupled_variables: ClassVar[tuple[str, ...]] = ("S",)
    observable: ClassVar[str] = "S"
    initial_state: ClassVar[dict[str, float]] = {"S": 0.1}

    def current(self, state: State, coupling: Coupling) -> Float:
        """The synaptic input current $x$ (nA), shape `(n_regions,)`."""
        return self.w * self.J_N * state[0] + self.I_o + self.J_N * coupling[0]

    def rate(self, x: Float) -> Float:
        """The firing rate $H(x)$ (kHz) for an input current `x` (nA)."""
        return rate_function(self.a * x - self.b, self.d)

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(1, n_regions)`, `coupling` `(1, n_regions)`, per ms."""
        S = state[0]
        H = self.rate(self.current(state, coupling))
        return (-S / self.tau_s + (1.0 - S) * self.gamma * H)[None]
