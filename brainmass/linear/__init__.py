r"""Linear analysis of a brainmass network: the linearised (fixed-point) model.

A noise-driven network that fluctuates around a stable fixed point $x^*$ is,
to first order in the fluctuations, the linear delay stochastic differential
equation

$$
dx(t) = \Big(J_0\, x(t) + \sum_{j} K_{\cdot j}\, x_j(t - \tau_{\cdot j})\Big)\,dt
        + \Sigma\, dW(t),
$$

with $N = n_{vars} n_{regions}$ state components in variable-major order
(component `v * n_regions + i` is variable `v` of region `i`). Its transfer
function and cross-spectral density are

$$
H(\omega) = \big(i\omega I - J_0 - K \circ e^{-i\omega\tau}\big)^{-1}, \qquad
S(\omega) = H(\omega)\, Q(\omega)\, H(\omega)^\dagger ,
$$

($\omega$ in rad/ms $= 2\pi f_{Hz}/1000$, Fourier convention
$\hat x(\omega) = \int x(t) e^{-i\omega t} dt$), and the stationary covariance
is $\int_{-\infty}^{\infty} S(\omega)\,d\omega / 2\pi$; without delays it
solves the Lyapunov equation $A\Sigma + \Sigma A^T + Q = 0$, $A = J_0 + K$.

Everything is built from the network's own pieces with automatic
differentiation, so every model, coupling and noise of brainmass works:

- the fixed point solves `Network.drift(x, None, W, strength) = 0` (every
  delayed state equals $x^*$ at a fixed point);
- $J_0 = \partial\,\mathrm{drift} / \partial x$ with the summed coupling input
  held at its fixed-point value (the receiver's local coupling terms, such as
  diffusive coupling's $-G\,s_i\,e_i$, are in $J_0$);
- $K = \partial\,\mathrm{drift}/\partial(\text{summed input}) \cdot
  \partial(\sum_j W_{ij} f(e_j))/\partial x$, the coupled part, whose entry
  $(v, i), (u, j)$ carries the delay $\tau_{ij}$ of the edge $j \to i$;
- the noise: additive white noise gives $Q = \mathrm{diag}(\sigma^2)$
  (`Network.sigma()`, std per $\sqrt{ms}$); multiplicative noise is linearised
  at the fixed point, $Q = \mathrm{diag}(\sigma^2 x^{*2})$ (the
  Itô/Stratonovich drift correction is not modelled); coloured
  (Ornstein-Uhlenbeck) noise of correlation time $\tau_n$ enters as
  $Q(\omega) = \mathrm{diag}(\sigma^2 / (1 + \omega^2\tau_n^2))$.

**Delays.** brainmass rounds each delay to a whole number of time steps in its
simulations (`delays="rounded"`); this module uses the exact delays
$\tau_{ij} = L_{ij}/v$ (`Network.delays_ms()`), which is what an interpolated
or infinitely fine simulation converges to. Choose tract lengths that are
multiples of `dt * speed` to compare with a rounded simulation exactly.

**The sampled, monitored signal.** `cross_spectrum`, `covariance` and `fc`
describe the neural variable the monitor records, per region, in continuous
time. `state_space` is the exact discrete-time model of what a monitor
records every `period` ms for a delay-free network (point samples, box-car
averages, EEG/MEG lead fields, the Balloon-Windkessel model linearised at its
steady state): matrix exponentials and Van Loan's integral, so aliasing and
the monitor's filtering are in it; `autocovariance` gives its lagged
covariances.

All functions are pure and work under `jax.jit`, `jax.grad` and `jax.vmap`
with respect to the simulator's parameters (`sim.with_params({...})` inside
the traced function). `Simulator.with_params` refuses a traced conduction
speed or tract lengths (the simulation's delay buffer is sized from them);
the linearised model needs no buffer, so replace them with
`eqx.tree_at(lambda s: s.network.speed, sim, v)` instead: the covariance is
differentiable with respect to the delays. Each public function validates its
arguments eagerly and then runs compiled code (`eqx.filter_jit`), shared by
simulators of the same structure. Failures (no fixed point, an unstable fixed
point) never raise inside a trace: they show as flags (`FixedPoint.residual`,
`Stability.stable`, `LinearSummary.ok`) or as NaN.

Public functions: `fixed_point`, `linearize`, `transfer_function`,
`cross_spectrum`, `covariance`, `fc`, `stability`, `linear_summary` (all of
these in one pass, with an `ok` flag for a likelihood), `lyapunov`,
`default_freqs`, `state_space` (a `StateSpaceModel`), `autocovariance`,
`lagged_covariance` (lagged covariances of the sampled signal, with delays).
"""

from ._common import DEFAULT_DF_HIGH_HZ as DEFAULT_DF_HIGH_HZ
from ._common import DEFAULT_DF_HZ as DEFAULT_DF_HZ
from ._common import DEFAULT_FMAX_HZ as DEFAULT_FMAX_HZ
from ._common import DEFAULT_SPLIT_HZ as DEFAULT_SPLIT_HZ
from ._covariance import LinearSummary as LinearSummary
from ._covariance import Stability as Stability
from ._covariance import covariance as covariance
from ._covariance import default_freqs as default_freqs
from ._covariance import fc as fc
from ._covariance import linear_summary as linear_summary
from ._covariance import stability as stability
from ._lagged import lagged_covariance as lagged_covariance
from ._linearize import FixedPoint as FixedPoint
from ._linearize import Linearization as Linearization
from ._linearize import fixed_point as fixed_point
from ._linearize import linearize as linearize
from ._lyapunov import lyapunov as lyapunov
from ._spectra import cross_spectrum as cross_spectrum
from ._spectra import transfer_function as transfer_function
from ._statespace import StateSpaceModel as StateSpaceModel
from ._statespace import autocovariance as autocovariance
from ._statespace import state_space as state_space

__all__ = [
    "DEFAULT_DF_HIGH_HZ",
    "DEFAULT_DF_HZ",
    "DEFAULT_FMAX_HZ",
    "DEFAULT_SPLIT_HZ",
    "FixedPoint",
    "LinearSummary",
    "Linearization",
    "Stability",
    "StateSpaceModel",
    "autocovariance",
    "covariance",
    "cross_spectrum",
    "default_freqs",
    "fc",
    "fixed_point",
    "lagged_covariance",
    "linear_summary",
    "linearize",
    "lyapunov",
    "stability",
    "state_space",
    "transfer_function",
]
