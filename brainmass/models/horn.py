"""Harmonic oscillator recurrent network (HORN): the neural mass and the task network."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import brainunit as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Coupling, Float, PRNGKeyArray, State
from .._params import param
from ..units import PER_MS, RAD_PER_MS, to_canonical, to_float
from ._base import AbstractNeuralMass

__all__ = ["HORN", "HORNSeqNetwork"]

# Published defaults (Effenberger et al. 2025; reference code `model.py`/`training.py`, sMNIST):
# one integration step h = 1, natural frequency 2 pi / 28 per step, damping 0.01 per step,
# excitability 0.04. Read with h = 1 ms, the natural frequency is 1/28 kHz (about 36 Hz).
_OMEGA = 2.0 * math.pi / 28.0
_GAMMA = 0.01
_ALPHA = 0.04
_HETEROGENEITY = (0.5, 2.0)

# Shape-annotated aliases (jaxtyping) for the task network's arrays.
InputWeights = Float[Array, "n_units n_inputs"]
RecurrentWeights = Float[Array, "n_units n_units"]
OutputWeights = Float[Array, "n_outputs n_units"]
UnitVector = Float[Array, " n_units"]
OutputVector = Float[Array, " n_outputs"]
UnitParam = Float[Array, ""] | Float[Array, " n_units"]
InputSequence = Float[Array, "T n_inputs"]
StateSequence = Float[Array, "T 2 n_units"]
OutputSequence = Float[Array, "T n_outputs"]


class HORN(AbstractNeuralMass):
    r"""Harmonic oscillator recurrent network unit: a damped, driven harmonic oscillator per region.

    $$
    \dot x = y, \qquad
    \dot y = \alpha \tanh\big(c_x + I_{ext}\big) - 2\gamma\, y - \omega^2 x
    $$

    where $c_x$ is the afferent coupling (from the regions' $x$), $\omega$ the
    natural frequency (rad/ms), $\gamma$ the damping (1/ms; underdamped for
    $\gamma < \omega$, with damped frequency $\omega_d = \sqrt{\omega^2 -
    \gamma^2}$), $\alpha$ the excitability (gain of the input nonlinearity) and
    $I_{ext}$ a constant external drive. Without input the state decays as
    $x(t) = e^{-\gamma t}\big(x_0 \cos\omega_d t + \frac{y_0 + \gamma x_0}{\omega_d}
    \sin\omega_d t\big)$; a constant input $I$ has the fixed point
    $x^* = \alpha \tanh(I) / \omega^2$, $y^* = 0$.

    Effenberger, Carvalho, Dubinin & Singer (2025), "The functional role of
    oscillatory dynamics in neocortical circuits: a computational perspective",
    PNAS 122:e2412830122 (arXiv 2023). The published HORN couples units through
    their velocity $y$ with a $1/\sqrt{n}$ gain (see `HORNSeqNetwork`); as a
    whole-brain neural mass this model sends $x$ along the fibres like the other
    oscillator models, and the coupling gain $G$ takes the place of $1/\sqrt{n}$.

    Defaults are the published ones with one integration step $h = 1$ read as
    1 ms: $\omega = 2\pi/28$ rad/ms (about 36 Hz), $\gamma = 0.01$/ms,
    $\alpha = 0.04$. $\omega$ is an angular frequency: a plain number is read in
    rad/ms, a quantity in Hz is the cycle frequency $f$, read as $2\pi f$
    (`HORN(omega=36 * u.Hz)`). The default initial state is $x = 0.1$, $y = 0$ (the
    paper starts from rest; a small displacement makes the free oscillation
    visible without input).
    """

    omega: Float = param(
        _OMEGA,
        unit=RAD_PER_MS,
        domain="positive",
        doc="natural angular frequency (rad/ms; a quantity in Hz is f, read as 2 pi f)",
    )
    gamma: Float = param(_GAMMA, unit=u.ms**-1, domain="positive", doc="damping rate (1/ms)")
    alpha: Float = param(_ALPHA, domain="positive", doc="excitability: gain of the tanh input")
    I_ext: Float = param(0.0, doc="constant external drive inside the tanh")

    state_variables: ClassVar[tuple[str, ...]] = ("x", "y")
    coupled_variables: ClassVar[tuple[str, ...]] = ("x",)
    observable: ClassVar[str] = "x"
    initial_state: ClassVar[dict[str, float]] = {"x": 0.1, "y": 0.0}

    def dfun(self, state: State, coupling: Coupling) -> State:
        """Vector field; `state` `(2, n_regions)`, `coupling` `(1, n_regions)`, per ms."""
        x, y = state[0], state[1]
        drive = self.alpha * jnp.tanh(coupling[0] + self.I_ext)
        dy = drive - 2.0 * self.gamma * y - self.omega**2 * x
        return jnp.stack([y, dy])


def _draw(key: PRNGKeyArray, n_inputs: int, n_units: int, n_outputs: int) -> dict[str, np.ndarray]:
    """Initial weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and two U(0, 1) per-unit draws.

    One uniform draw, sliced: a single small computation to compile per network size.
    """
    layout = {
        "W_in": ((n_units, n_inputs), n_inputs),
        "b_in": ((n_units,), n_inputs),
        "W_rec": ((n_units, n_units), n_units),
        "W_out": ((n_outputs, n_units), n_units),
        "b_out": ((n_outputs,), n_units),
        "u_omega": ((n_units,), None),
        "u_gamma": ((n_units,), None),
    }
    total = sum(math.prod(shape) for shape, _ in layout.values())
    flat = np.asarray(jax.random.uniform(key, (total,)), dtype=np.float64)
    out, start = {}, 0
    for name, (shape, fan_in) in layout.items():
        size = math.prod(shape)
        u01 = flat[start : start + size].reshape(shape)
        start += size
        bound = 1.0 if fan_in is None else 1.0 / math.sqrt(fan_in)
        out[name] = u01 if fan_in is None else bound * (2.0 * u01 - 1.0)
    return out


def _positive(value: Any, n_units: int, per_unit: bool, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    allowed = ((), (n_units,)) if per_unit else ((),)
    if arr.shape not in allowed:
        expected = f"a scalar or shape ({n_units},)" if per_unit else "a scalar (per_unit=False)"
        raise ValueError(f"{name}: expected {expected}, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: expected finite values > 0, got {arr}.")
    return arr


class HORNSeqNetwork(eqx.Module):
    r"""A HORN sequence model for tasks: input projection, HORN layer, linear readout of $x$.

    For input samples $s_t$ ($t = 1, \dots, T$), each held for `substeps`
    symplectic-Euler steps of size $h$ (ms), every unit is a damped driven
    oscillator (Effenberger et al. 2025, eqs. of the reference `HORN` module):

    $$
    y \leftarrow y + h\Big(\alpha \tanh\big(W_{in} s_t + b_{in}
        + \tfrac{1}{\sqrt n} W_{rec}\, y\big) - 2\gamma\, y - \omega^2 x\Big), \qquad
    x \leftarrow x + h\, y
    $$

    from $x = y = 0$, and the output at sample $t$ is $o_t = W_{out} x_t +
    b_{out}$. As published, the recurrent input is the velocity $y$ scaled by
    $1/\sqrt{n}$ (the published recurrent bias is absorbed in $b_{in}$: both
    add inside the tanh).

    Defaults are the published ones (reference code `training.py`, sMNIST):
    $h = 1$, $\omega = 2\pi/28$, $\gamma = 0.01$, $\alpha = 0.04$, one step
    per sample; with `heterogeneous=True` every unit draws $\omega_i \sim
    U(0.5\omega, 2\omega)$ and $\gamma_i \sim U(0.5\gamma, 2\gamma)$, the
    published heterogeneous HORN (reference `dynamics.py`). Weights start as in
    the reference (PyTorch `Linear`): $U(-1/\sqrt{\text{fan in}}, 1/\sqrt{\text{fan in}})$.

    Positivity: $\omega$, $\gamma$, $\alpha$ are stored as their logarithms
    (`log_omega`, `log_gamma`, `log_alpha`, the trainable leaves) and read
    through `exp`, so any gradient update keeps them positive and moves them by
    relative steps. The properties `omega`, `gamma`, `alpha` give the values.

    Call contract: `net(inputs, *, key=None) -> outputs`, inputs `(T, n_inputs)`,
    outputs `(T, n_outputs)` (the readout at every sample); a pure function
    (`lax.scan` over time) that jit, vmap and grad accept. A classification
    task reads `outputs[-1]`.

    Effenberger, Carvalho, Dubinin & Singer (2025), "The functional role of
    oscillatory dynamics in neocortical circuits: a computational perspective",
    PNAS 122:e2412830122.
    """

    W_in: InputWeights
    b_in: UnitVector
    W_rec: RecurrentWeights
    W_out: OutputWeights
    b_out: OutputVector
    log_omega: UnitParam
    log_gamma: UnitParam
    log_alpha: UnitParam
    h: float = eqx.field(static=True)
    substeps: int = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        *,
        n_inputs: int,
        n_units: int,
        n_outputs: int,
        h: Any = 1.0,
        omega: Any = _OMEGA,
        gamma: Any = _GAMMA,
        alpha: Any = _ALPHA,
        per_unit: bool = True,
        heterogeneous: bool = False,
        heterogeneity: tuple[float, float] = _HETEROGENEITY,
        substeps: int = 1,
    ):
        r"""Build a HORN network with random weights.

        **Arguments:**

        - `key`: a `jax.random` key for the weights (and heterogeneous frequencies).
        - `n_inputs`, `n_units`, `n_outputs`: input channels, oscillators, outputs.
        - `h`: integration step (ms, or a brainunit time); default 1.
        - `omega`: natural angular frequency (rad/ms), a scalar or shape
          `(n_units,)`; a quantity in Hz is the cycle frequency $f$, read as
          $2\pi f$ (`omega=36 * u.Hz`).
        - `gamma`: damping (1/ms, or a brainunit rate), a scalar or shape `(n_units,)`.
        - `alpha`: excitability (dimensionless), a scalar or shape `(n_units,)`.
        - `per_unit`: one trainable $\omega, \gamma, \alpha$ per unit (True) or
          one shared value each (False).
        - `heterogeneous`: draw per-unit $\omega_i, \gamma_i$ uniformly from
          `heterogeneity` times the scalar `omega`, `gamma` (needs `per_unit`).
        - `heterogeneity`: `(low, high)` factors, default `(0.5, 2.0)` as published.
        - `substeps`: integration steps per input sample (default 1).

        **Returns:** the network (an equinox Module).
        """
        for name, value in (("n_inputs", n_inputs), ("n_units", n_units), ("n_outputs", n_outputs)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}.")
        if (
            isinstance(substeps, bool)
            or not isinstance(substeps, (int, np.integer))
            or substeps < 1
        ):
            raise ValueError(f"substeps: expected a positive integer, got {substeps!r}.")
        if key is None:
            raise ValueError("key: expected a jax.random key for the initial weights, got None.")
        h = to_float(h, u.ms, "h")
        if not (math.isfinite(h) and h > 0):
            raise ValueError(f"h: expected a step > 0 ms, got {h}.")
        omega = _positive(to_canonical(omega, RAD_PER_MS, "omega"), n_units, per_unit, "omega")
        gamma = _positive(to_canonical(gamma, PER_MS, "gamma"), n_units, per_unit, "gamma")
        alpha = _positive(alpha, n_units, per_unit, "alpha")
        draws = _draw(key, int(n_inputs), int(n_units), int(n_outputs))
        if heterogeneous:
            if not per_unit:
                raise ValueError("heterogeneous: per-unit frequencies need per_unit=True.")
            lo, hi = (float(v) for v in heterogeneity)
            if not (0 < lo <= hi):
                raise ValueError(
                    f"heterogeneity: expected factors 0 < low <= high, got {heterogeneity!r}."
                )
            if omega.ndim or gamma.ndim:
                raise ValueError("heterogeneous: expected scalar omega and gamma to scale.")
            omega = omega * (lo + (hi - lo) * np.asarray(draws["u_omega"], dtype=float))
            gamma = gamma * (lo + (hi - lo) * np.asarray(draws["u_gamma"], dtype=float))
        if float(np.max(omega)) * h >= 2.0:
            raise ValueError(
                f"h: symplectic Euler is unstable for h * omega >= 2; got h = {h} ms and "
                f"max omega = {float(np.max(omega)):.4g} rad/ms."
            )
        shape = (n_units,) if per_unit else ()
        self.W_in = jnp.asarray(draws["W_in"], dtype=float)
        self.b_in = jnp.asarray(draws["b_in"], dtype=float)
        self.W_rec = jnp.asarray(draws["W_rec"], dtype=float)
        self.W_out = jnp.asarray(draws["W_out"], dtype=float)
        self.b_out = jnp.asarray(draws["b_out"], dtype=float)
        self.log_omega = jnp.asarray(np.broadcast_to(np.log(omega), shape), dtype=float)
        self.log_gamma = jnp.asarray(np.broadcast_to(np.log(gamma), shape), dtype=float)
        self.log_alpha = jnp.asarray(np.broadcast_to(np.log(alpha), shape), dtype=float)
        self.h = h
        self.substeps = int(substeps)

    @property
    def omega(self) -> UnitParam:
        """Natural frequency (rad/ms), `exp(log_omega)`: shape `(n_units,)` or `()`."""
        return jnp.exp(self.log_omega)

    @property
    def gamma(self) -> UnitParam:
        """Damping (1/ms), `exp(log_gamma)`: shape `(n_units,)` or `()`."""
        return jnp.exp(self.log_gamma)

    @property
    def alpha(self) -> UnitParam:
        """Excitability (dimensionless), `exp(log_alpha)`: shape `(n_units,)` or `()`."""
        return jnp.exp(self.log_alpha)

    @property
    def n_inputs(self) -> int:
        """Number of input channels."""
        return self.W_in.shape[1]

    @property
    def n_units(self) -> int:
        """Number of oscillators."""
        return self.W_in.shape[0]

    @property
    def n_outputs(self) -> int:
        """Number of outputs."""
        return self.W_out.shape[0]

    def states(self, inputs: InputSequence) -> StateSequence:
        """The oscillator states after each input sample.

        **Arguments:**

        - `inputs`: shape `(T, n_inputs)`, one row per input sample.

        **Returns:** shape `(T, 2, n_units)`: `[:, 0]` the positions $x$, `[:, 1]`
        the velocities $y$ (per ms), after the sample's `substeps` steps.
        """
        inputs = jnp.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.n_inputs:
            raise ValueError(
                f"inputs: expected shape (T, {self.n_inputs}) (time, n_inputs), "
                f"got shape {inputs.shape}."
            )
        drive = inputs @ self.W_in.T + self.b_in[None, :]  # (T, n_units)
        omega2, damp, alpha = self.omega**2, 2.0 * self.gamma, self.alpha
        gain = 1.0 / math.sqrt(self.n_units)
        h = self.h

        def step(carry, d):
            x, y = carry
            rec = gain * (self.W_rec @ y)
            y = y + h * (alpha * jnp.tanh(d + rec) - damp * y - omega2 * x)
            x = x + h * y
            return (x, y), None

        def sample(carry, d):
            if self.substeps == 1:
                carry, _ = step(carry, d)
            else:
                carry, _ = jax.lax.scan(lambda c, _: step(c, d), carry, None, self.substeps)
            return carry, jnp.stack(carry)

        zeros = jnp.zeros((self.n_units,), dtype=drive.dtype)
        _, out = jax.lax.scan(sample, (zeros, zeros), drive)
        return out

    def __call__(self, inputs: InputSequence, *, key: PRNGKeyArray | None = None) -> OutputSequence:
        """The readout at every input sample.

        **Arguments:**

        - `inputs`: shape `(T, n_inputs)`.
        - `key`: unused (the network is deterministic); accepted for the
          `Trainer` call contract.

        **Returns:** shape `(T, n_outputs)`, $W_{out} x_t + b_{out}$.
        """
        x = self.states(inputs)[:, 0]
        return x @ self.W_out.T + self.b_out[None, :]
