r"""Noise: additive and multiplicative white noise, Ornstein-Uhlenbeck coloured noise.

The network's state obeys the stochastic differential equation

$$
dx = f(x)\,dt + g(x)\,dW_t
$$

with $dW_t$ independent Wiener increments per state variable and region. The
intensity $\sigma$ is independent of the time step: a solver step of length
$\Delta t$ draws $\Delta W = \sqrt{\Delta t}\,\xi$, $\xi \sim N(0, 1)$. For
`Additive` noise $g = \sigma$; for `Multiplicative` noise $g(x) = \sigma x$
(Stratonovich with `StochasticHeun`, Itô with `EulerMaruyama`).

`OrnsteinUhlenbeck` (coloured) noise adds a process $\eta$ to the drift,
$\tau\, d\eta = -\eta\,dt + \sigma\,dW_t$, integrated exactly; its stationary
variance is $\sigma^2 / (2\tau)$ and it tends to white noise of intensity
$\sigma$ as $\tau \to 0$.

$\sigma$ is in state units per $\sqrt{\text{time unit}}$ of the model (ms for
the built-in models). It may be a scalar, one value per region `(n_regions,)`,
or per noisy variable: `Additive(sigma={"x": 0.01, "y": 0.02})`. By default
every state variable is noisy; `variables=("x",)` restricts it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import brainunit as u
import equinox as eqx
import jax.numpy as jnp

from ._custom_types import Float, State
from ._params import ParameterModule, param
from .units import to_canonical

__all__ = ["AbstractNoise", "Additive", "Multiplicative", "OrnsteinUhlenbeck"]


def _split_sigma(sigma: Any, variables: tuple[str, ...] | None, name: str):
    """Turn a `{variable: sigma}` mapping into `(array (k, 1), variables)`."""
    if isinstance(sigma, Mapping):
        if variables is not None and tuple(variables) != tuple(sigma):
            raise ValueError(
                f"{name}.variables: give the noisy variables either as the keys of sigma or "
                f"as variables=, not both (got {tuple(sigma)} and {tuple(variables)})."
            )
        values = [to_canonical(v, None, f"{name}.sigma[{k!r}]") for k, v in sigma.items()]
        if any(jnp.ndim(v) > 1 for v in values):
            raise ValueError(f"{name}.sigma: each value must be a scalar or one value per region.")
        shapes = {jnp.shape(v) for v in values}
        n = max((s[0] for s in shapes if s), default=1)
        arr = jnp.stack([jnp.broadcast_to(jnp.atleast_1d(v), (n,)) for v in values])
        return arr, tuple(sigma)
    return sigma, None if variables is None else tuple(variables)


class AbstractNoise(ParameterModule):
    """A noise process acting on some state variables (all when `variables` is None)."""

    colored: ClassVar[bool] = False

    def sigma_full(self, sigma: Float, n_rows: int, n_regions: int) -> Float:
        """`sigma` broadcast to `(n_rows, n_regions)` for the noisy variables."""
        s = jnp.asarray(sigma)
        if s.ndim == 1:
            s = s[None, :]
        return jnp.broadcast_to(s, (n_rows, n_regions))

    @abc.abstractmethod
    def diffusion(self, state: State, sigma: State) -> State:
        """$g(x)$ for white noise, given `sigma` broadcast to the state's shape."""


class Additive(AbstractNoise):
    r"""Additive white noise, $g(x) = \sigma$."""

    sigma: Float = param(0.01, domain="nonnegative", doc="noise intensity per sqrt(time unit)")
    variables: tuple[str, ...] | None = eqx.field(default=None, static=True)

    def __init__(self, sigma: Any = 0.01, variables: tuple[str, ...] | None = None):
        sig, var = _split_sigma(sigma, variables, "Additive")
        self.sigma = sig
        self.variables = var

    def diffusion(self, state: State, sigma: State) -> State:
        r"""$\sigma$."""
        return sigma


class Multiplicative(AbstractNoise):
    r"""Multiplicative white noise, $g(x) = \sigma x$."""

    sigma: Float = param(
        0.01, domain="nonnegative", doc="relative noise intensity per sqrt(time unit)"
    )
    variables: tuple[str, ...] | None = eqx.field(default=None, static=True)

    def __init__(self, sigma: Any = 0.01, variables: tuple[str, ...] | None = None):
        sig, var = _split_sigma(sigma, variables, "Multiplicative")
        self.sigma = sig
        self.variables = var

    def diffusion(self, state: State, sigma: State) -> State:
        r"""$\sigma x$."""
        return sigma * state


class OrnsteinUhlenbeck(AbstractNoise):
    r"""Coloured noise: an Ornstein-Uhlenbeck process added to the drift.

    $\tau\,d\eta = -\eta\,dt + \sigma\,dW$, stationary variance $\sigma^2/(2\tau)$,
    correlation time $\tau$ (ms). The process starts from its stationary
    distribution.
    """

    sigma: Float = param(0.01, domain="nonnegative", doc="noise intensity per sqrt(time unit)")
    tau: Float = param(10.0, unit=u.ms, domain="positive", doc="correlation time")
    variables: tuple[str, ...] | None = eqx.field(default=None, static=True)

    colored: ClassVar[bool] = True

    def __init__(
        self, sigma: Any = 0.01, tau: Any = 10.0, variables: tuple[str, ...] | None = None
    ):
        sig, var = _split_sigma(sigma, variables, "OrnsteinUhlenbeck")
        self.sigma = sig
        self.tau = tau
        self.variables = var

    def diffusion(self, state: State, sigma: State) -> State:
        """No white-noise term: the noise enters through the drift."""
        return jnp.zeros_like(state)

    def stationary_std(self, sigma: State) -> State:
        r"""Standard deviation of $\eta$ at stationarity, $\sigma/\sqrt{2\tau}$."""
        return sigma / jnp.sqrt(2.0 * self._tau_rows())

    def _tau_rows(self) -> Float:
        tau = jnp.asarray(self.tau)
        return tau[None, :] if tau.ndim == 1 else tau

    def advance(self, eta: State, xi: State, dt: float, sigma: State) -> State:
        r"""Exact update of $\eta$ over `dt` with standard normal draws `xi`."""
        decay = jnp.exp(-dt / self._tau_rows())
        return eta * decay + self.stationary_std(sigma) * jnp.sqrt(1.0 - decay**2) * xi
