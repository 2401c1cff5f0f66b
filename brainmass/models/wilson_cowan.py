"""Wilson-Cowan excitatory-inhibitory population model."""

from __future__ import annotations

from typing import ClassVar

import brainunit as u
import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Coupling, Float, State
from .._params import param
from ._base import AbstractNeuralMass

__all__ = ["WilsonCowan"]


class WilsonCowan(AbstractNeuralMass):
    r"""Wilson-Cowan model: coupled excitatory ($E$) and inhibitory ($I$) populations.

    $$
    \tau_e \dot E = -E + (k_e - r_e E)\, S_e\big(\alpha_e (c_{ee} E - c_{ei} I + P
        - \theta_e + c_E)\big), \qquad
    \tau_i \dot I = -I + (k_i - r_i I)\, S_i\big(\alpha_i (c_{ie} E - c_{ii} I + Q
        - \theta_i)\big)
    $$

    with the logistic response functions

    $$
    S_{e}(x) = c_{e} \left(\frac{1}{1 + e^{-a_{e}(x - b_{e})}}
        - \frac{1}{1 + e^{a_{e} b_{e}}}\right)
    $$

    (and likewise $S_i$ with $a_i, b_i, c_i$). The second term shifts the
    sigmoid so that $S(0) = 0$ and $E = I = 0$ is a resting state without input
    (`shift_sigmoid=True`, The Virtual Brain's default); with
    `shift_sigmoid=False` it is omitted. $c_E$ is the afferent long-range
    coupling, which drives the excitatory population only. $E$ and $I$ are the
    (dimensionless) fractions of active cells; time in ms.

    Wilson & Cowan (1972), "Excitatory and inhibitory interactions in localized
    populations of model neurons", Biophys. J. 12:1-24 (eqs. 11-12); Wilson &
    Cowan (1973), Kybernetik 13:55-80. Defaults and the shifted sigmoid follow
    The Virtual Brain's `WilsonCowan` (Sanz-Leon et al. 2015, NeuroImage 111:385).
    """

    c_ee: Float = param(12.0, domain="nonnegative", doc="excitatory to excitatory coupling")
    c_ei: Float = param(4.0, domain="nonnegative", doc="inhibitory to excitatory coupling")
    c_ie: Float = param(13.0, domain="nonnegative", doc="excitatory to inhibitory coupling")
    c_ii: Float = param(11.0, domain="nonnegative", doc="inhibitory to inhibitory coupling")
    tau_e: Float = param(10.0, unit=u.ms, domain="positive", doc="excitatory time constant")
    tau_i: Float = param(10.0, unit=u.ms, domain="positive", doc="inhibitory time constant")
    a_e: Float = param(1.2, domain="positive", doc="slope of the excitatory sigmoid")
    b_e: Float = param(2.8, doc="position of the excitatory sigmoid's maximum slope")
    c_e: Float = param(1.0, domain="nonnegative", doc="amplitude of the excitatory sigmoid")
    theta_e: Float = param(0.0, doc="excitatory threshold")
    a_i: Float = param(1.0, domain="positive", doc="slope of the inhibitory sigmoid")
    b_i: Float = param(4.0, doc="position of the inhibitory sigmoid's maximum slope")
    c_i: Float = param(1.0, domain="nonnegative", doc="amplitude of the inhibitory sigmoid")
    theta_i: Float = param(0.0, doc="inhibitory threshold")
    r_e: Float = param(1.0, domain="nonnegative", doc="excitatory refractoriness")
    r_i: Float = param(1.0, domain="nonnegative", doc="inhibitory refractoriness")
    k_e: Float = param(1.0, domain="nonnegative", doc="maximum of the excitatory response")
    k_i: Float = param(1.0, domain="nonnegative", doc="maximum of the inhibitory response")
    P: Float = param(0.0, doc="constant external input to the excitatory population")
    Q: Float = param(0.0, doc="constant external input to the inhibitory population")
    alpha_e: Float = param(1.0, domain="positive", doc="gain of the excitatory input")
    alpha_i: Float = param(1.0, domain="positive", doc="gain of the inhibitory input")
    shift_sigmoid: bool = eqx.field(default=True, static=True)

    state_variables: ClassVar[tuple[str, ...]] = ("E", "I")
    coupled_variables: ClassVar[tuple[str, ...]] = ("E",)
    observable: ClassVar[str] = "E"
    initial_state: ClassVar[dict[str, float]] = {"E": 0.0, "I": 0.0}

    def _sigmoid(self, x: Float, a: Float, b: Float, c: Float) -> Float:
        s = jnp.reciprocal(1.0 + jnp.exp(-a * (x - b)))
        if self.shift_sigmoid:
            s = s - jnp.reciprocal(1.0 + jnp.exp(a * b))
        return c * s

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(2, n_regions)`, `coupling` `(1, n_regions)`, per ms."""
        E, I = state[0], state[1]
        x_e = self.alpha_e * (self.c_ee * E - self.c_ei * I + self.P - self.theta_e + coupling[0])
        x_i = self.alpha_i * (self.c_ie * E - self.c_ii * I + self.Q - self.theta_i)
        s_e = self._sigmoid(x_e, self.a_e, self.b_e, self.c_e)
        s_i = self._sigmoid(x_i, self.a_i, self.b_i, self.c_i)
        dE = (-E + (self.k_e - self.r_e * E) * s_e) / self.tau_e
        dI = (-I + (self.k_i - self.r_i * I) * s_i) / self.tau_i
        return jnp.stack([dE, dI])
