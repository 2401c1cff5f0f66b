r"""Integrators.

Fixed-step solvers advance the network by one step of length $\Delta t$ inside
a `lax.scan`; delayed coupling reaches them as precomputed inputs at the start
and end of the step (`inputs0`, `inputs1`; their mean at the midpoint), so one
solver works with and without delays. A step of a stochastic solver receives
the Wiener increment $\Delta W = \sqrt{\Delta t}\,\xi$.

| solver            | order (ODE) | noise                                    |
|-------------------|-------------|------------------------------------------|
| `Euler`           | 1           | not allowed                              |
| `Heun`            | 2           | not allowed                              |
| `RK4`             | 4           | not allowed                              |
| `EulerMaruyama`   | 1           | Itô; strong order 1/2 (1 for additive)   |
| `StochasticHeun`  | 2           | Stratonovich; strong order 1 for additive noise |

With delays the coupling input at the midpoint of a step is interpolated
linearly between the step's ends, so `RK4` on a delayed network is second
order in the delayed terms.

`Diffrax(...)` solves delay-free deterministic networks with any diffrax
solver, adaptive step size control and diffrax's adjoints.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax

from ._custom_types import State

__all__ = [
    "AbstractSolver",
    "Euler",
    "Heun",
    "RK4",
    "EulerMaruyama",
    "StochasticHeun",
    "Diffrax",
]

Drift = Callable[[State, Any], State]
Diffusion = Callable[[State], State]


def _mid(a: Any, b: Any) -> Any:
    return jax.tree.map(lambda u, v: 0.5 * (u + v), a, b)


class AbstractSolver(eqx.Module):
    """A fixed-step integrator: `step(drift, diffusion, x, dt, inputs0, inputs1, dW)`."""

    stochastic: ClassVar[bool] = False
    order: ClassVar[float]

    @abc.abstractmethod
    def step(
        self,
        drift: Drift,
        diffusion: Diffusion,
        x: State,
        dt: float,
        inputs0: Any,
        inputs1: Any,
        dW: State | None,
    ) -> State:
        """Advance `x` by `dt`.

        **Arguments:**

        - `drift`: `drift(x, inputs) -> dx/dt`, the deterministic vector field.
        - `diffusion`: `diffusion(x) -> g(x)`, the noise coefficient.
        - `x`: the state, `(n_vars, n_regions)`.
        - `dt`: the step, in the model's time unit.
        - `inputs0`, `inputs1`: external inputs (delayed coupling, coloured
          noise) at the start and end of the step.
        - `dW`: the Wiener increment over the step (stochastic solvers), or None.
        """


class Euler(AbstractSolver):
    r"""Forward Euler, $x_{n+1} = x_n + \Delta t\, f(x_n)$."""

    order: ClassVar[float] = 1.0

    def step(self, drift, diffusion, x, dt, inputs0, inputs1, dW):
        """One Euler step."""
        return x + dt * drift(x, inputs0)


class Heun(AbstractSolver):
    """Heun's method (explicit trapezoid), second order."""

    order: ClassVar[float] = 2.0

    def step(self, drift, diffusion, x, dt, inputs0, inputs1, dW):
        """One Heun step."""
        k1 = drift(x, inputs0)
        k2 = drift(x + dt * k1, inputs1)
        return x + 0.5 * dt * (k1 + k2)


class RK4(AbstractSolver):
    """The classic fourth-order Runge-Kutta method."""

    order: ClassVar[float] = 4.0

    def step(self, drift, diffusion, x, dt, inputs0, inputs1, dW):
        """One RK4 step."""
        mid = _mid(inputs0, inputs1)
        k1 = drift(x, inputs0)
        k2 = drift(x + 0.5 * dt * k1, mid)
        k3 = drift(x + 0.5 * dt * k2, mid)
        k4 = drift(x + dt * k3, inputs1)
        return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


class EulerMaruyama(AbstractSolver):
    r"""Euler-Maruyama, $x_{n+1} = x_n + f(x_n)\Delta t + g(x_n)\Delta W_n$ (Itô)."""

    stochastic: ClassVar[bool] = True
    order: ClassVar[float] = 1.0

    def step(self, drift, diffusion, x, dt, inputs0, inputs1, dW):
        """One Euler-Maruyama step."""
        out = x + dt * drift(x, inputs0)
        if dW is not None:
            out = out + diffusion(x) * dW
        return out


class StochasticHeun(AbstractSolver):
    r"""Stochastic Heun (Stratonovich), the predictor-corrector TVB uses.

    $\tilde x = x_n + f(x_n)\Delta t + g(x_n)\Delta W$,
    $x_{n+1} = x_n + \tfrac12[f(x_n) + f(\tilde x)]\Delta t
    + \tfrac12[g(x_n) + g(\tilde x)]\Delta W$.
    Kloeden & Platen (1992), Numerical Solution of SDEs; Rümelin (1982).
    """

    stochastic: ClassVar[bool] = True
    order: ClassVar[float] = 2.0

    def step(self, drift, diffusion, x, dt, inputs0, inputs1, dW):
        """One stochastic Heun step."""
        k1 = drift(x, inputs0)
        if dW is None:
            k2 = drift(x + dt * k1, inputs1)
            return x + 0.5 * dt * (k1 + k2)
        g1 = diffusion(x)
        pred = x + dt * k1 + g1 * dW
        k2 = drift(pred, inputs1)
        return x + 0.5 * dt * (k1 + k2) + 0.5 * (g1 + diffusion(pred)) * dW


class Diffrax(eqx.Module):
    """Solve a delay-free deterministic network with diffrax.

    **Arguments:**

    - `solver`: a diffrax solver (default `diffrax.Tsit5()`; `diffrax.Kvaerno5()`
      for stiff problems).
    - `rtol`, `atol`: tolerances of the adaptive step size controller (a
      `diffrax.PIDController`); `adaptive=False` uses the Simulator's `dt` as a
      fixed step.
    - `adjoint`: how gradients are computed (default
      `diffrax.RecursiveCheckpointAdjoint()`; `diffrax.BacksolveAdjoint()` for
      the continuous adjoint).
    - `max_steps`: the most steps the solve may take.

    The Simulator's `dt` is the initial step size. Outputs are taken at the
    monitor's sample times; `TemporalAverage` integrates the observable
    alongside the state, so averages are exact up to the solver's tolerance.
    """

    solver: Any = None
    rtol: float = eqx.field(default=1e-6, static=True)
    atol: float = eqx.field(default=1e-8, static=True)
    adaptive: bool = eqx.field(default=True, static=True)
    adjoint: Any = None
    max_steps: int = eqx.field(default=1_000_000, static=True)

    stochastic: ClassVar[bool] = False

    def resolved(self):
        """The diffrax solver, step size controller and adjoint to use."""
        import diffrax

        solver = self.solver if self.solver is not None else diffrax.Tsit5()
        if self.adaptive:
            controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
        else:
            controller = diffrax.ConstantStepSize()
        adjoint = self.adjoint if self.adjoint is not None else diffrax.RecursiveCheckpointAdjoint()
        return solver, controller, adjoint


def default_solver(stochastic: bool) -> AbstractSolver:
    """`StochasticHeun()` for a noisy network, `Heun()` otherwise."""
    return StochasticHeun() if stochastic else Heun()
