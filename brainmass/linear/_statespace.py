r"""The exact discrete-time state-space model of a linear(ised) network, as its monitor samples it.

Between two samples the delay-free linearised network, $dx = A x\,dt + \Sigma\,dW$
($x$ the deviation from the fixed point, $A = J_0 + K$, $\Sigma\Sigma^T = Q_c$), moves by
the exact transition of a linear SDE over $T$ ms: $x(t + T) = e^{AT} x(t) + w$,
$w \sim N(0, \int_0^T e^{As} Q_c e^{A^T s} ds)$, the integral of Van Loan (1978),
"Computing integrals involving the matrix exponential", IEEE Trans. Automat. Control
23:395. The monitor enters by augmenting the state (a point sample, the box-car mean over
the simulator's steps with a lead field on it, or the linearised Balloon-Windkessel
haemodynamics), so that $z_k = F z_{k-1} + w_k$, $y_k = H z_k + \text{offset}$ holds
exactly for the samples, whatever the simulator's solver; its dt enters only where the
monitor is defined on the dt grid (the box-car). Coloured noise is a state too.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..monitors import BOLD, AbstractSensorMonitor, Raw, TemporalAverage
from ..monitors.bold import BalloonState
from ._common import Simulator, _as_state, _check_sim, _Context, _observed_variable, _time_scale
from ._linearize import _linearize_jit

_S_PER_MS = 1e-3  # the haemodynamic model's time unit (s) in ms
_THETA = 0.25  # the Taylor step: ||A h||_1 <= 1/4
_MAX_DOUBLINGS = 32  # ||A T||_1 up to 2^30
_MAX_SUM_DOUBLINGS = 64  # discrete Lyapunov: sums of up to 2^64 terms
_BALLOON_NEWTON = 20  # Newton iterations for the haemodynamic steady state


class StateSpaceModel(eqx.Module):
    r"""A linear Gaussian state-space model of the monitor's samples.

    $$ z_k = F z_{k-1} + w_k,\ w_k \sim N(0, Q); \qquad y_k = H z_k + \text{offset};
       \qquad z_1 \sim N(\text{init\_mean}, \text{init\_cov}), $$

    $k = 1, \dots, n$ the monitor's retained samples, `period` ms apart
    (measurement noise is not part of it). $z$ is the deviation of the
    (augmented) state from the fixed point; `offset` is the observed signal at
    the fixed point.

    **Fields** (S states, C channels):

    - `F`: `(S, S)`, the transition over one period (dimensionless).
    - `Q`: `(S, S)`, the covariance of the state noise accumulated over one period.
    - `H`: `(C, S)`, the observation matrix; `offset`: `(C,)`.
    - `init_mean`: `(S,)`, `init_cov`: `(S, S)`: the distribution of $z_1$.
    - `stationary_cov`: `(S, S)`, the stationary covariance $P = F P F^T + Q$
      (NaN when the fixed point is unstable).
    - `ok`: boolean scalar: the fixed point converged (residual <= `tol`), it
      is stable, the haemodynamic steady state (BOLD) was found, and every
      array is finite. A likelihood returns -inf where it is False.
    - `period`: ms between samples. `n_regions`, `n_vars`: the network's sizes.
    - `blocks`: `((name, start, stop), ...)`: which components of $z$ are what:
      `"state"` (N, variable-major: `v * n_regions + i`), `"noise"` (N, the
      coloured-noise process), `"average"` (n_regions, the box-car mean of the
      observed variable over the last period), `"haemodynamics"` (4 n_regions,
      rows $s$ (1/s), $\log f$, $\log v$, $\log q$, each per region).
    """

    F: jax.Array
    Q: jax.Array
    H: jax.Array
    offset: jax.Array
    init_mean: jax.Array
    init_cov: jax.Array
    stationary_cov: jax.Array
    ok: jax.Array
    period: float = eqx.field(static=True)
    n_regions: int = eqx.field(static=True)
    n_vars: int = eqx.field(static=True)
    blocks: tuple[tuple[str, int, int], ...] = eqx.field(static=True)

    @property
    def n_states(self) -> int:
        """S, the dimension of the state $z$."""
        return self.F.shape[-1]

    @property
    def n_channels(self) -> int:
        """C, the number of observed channels."""
        return self.H.shape[-2]

    def block(self, name: str) -> slice:
        """The components of $z$ of a block (`"state"`, `"noise"`, `"average"`, ...)."""
        for label, start, stop in self.blocks:
            if label == name:
                return slice(start, stop)
        names = tuple(b[0] for b in self.blocks)
        raise ValueError(f"block: expected one of {names}, got {name!r}.")


# =====================================================================================
# exact discretisation
# =====================================================================================


def _blocks(rows: list[list[jax.Array]]) -> jax.Array:
    return jnp.concatenate([jnp.concatenate(r, axis=1) for r in rows], axis=0)


def _sym(x: jax.Array) -> jax.Array:
    return 0.5 * (x + x.T)


def _terms(dtype) -> tuple[int, int]:
    """Taylor degrees for e^{Ah} and for the noise integral, at ||A h|| <= _THETA."""
    eps = float(jnp.finfo(dtype).eps) / 8
    m_f = next(m for m in range(1, 40) if _THETA ** (m + 1) / math.factorial(m + 1) <= eps)
    m_q = next(m for m in range(1, 40) if (2 * _THETA) ** (m + 1) / math.factorial(m + 2) <= eps)
    return m_f, m_q


def _double(c: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Two steps of `(F, Q)`: `(F^2, Q + F Q F^T)`."""
    f, q = c
    return f @ f, _sym(q + f @ q @ f.T)


def _discretize(a: jax.Array, qc: jax.Array, t: float) -> tuple[jax.Array, jax.Array]:
    r"""$F = e^{At}$ and $Q = \int_0^t e^{As} Q_c e^{A^T s} ds$ (Van Loan's integral).

    Scaling and squaring: with $h = t/2^s$ and $\|Ah\|_1 \le 1/4$, both by their
    Taylor series, $e^{Ah} = \sum_k (Ah)^k/k!$ and
    $Q_h = \sum_{k\ge0} \frac{h^{k+1}}{(k+1)!} L^k(Q_c)$ with
    $L(X) = AX + XA^T$ (Horner's scheme; the degrees give a truncation error
    below eps/8 in the working precision), then $s$ doublings
    $Q \leftarrow Q + F Q F^T$, $F \leftarrow F^2$: the blocks of Van Loan's
    $\exp\begin{pmatrix}-A & Q_c\\ 0 & A^T\end{pmatrix}t$ without its double
    size. $s$ is data-dependent: a fixed-length loop of `lax.cond`s, so forward
    and reverse mode work (under `vmap` every doubling is computed).
    """
    dtype = a.dtype
    m_f, m_q = _terms(dtype)
    eye = jnp.eye(a.shape[0], dtype=dtype)
    norm = jnp.max(jnp.sum(jnp.abs(a), axis=0)) * t
    s = jnp.ceil(jnp.log2(jnp.maximum(norm, jnp.finfo(dtype).tiny) / _THETA))
    s = jax.lax.stop_gradient(jnp.clip(jnp.where(jnp.isfinite(s), s, 0.0), 0.0, _MAX_DOUBLINGS))
    h = t / jnp.exp2(s)
    b = a * h

    def taylor_q(j, x):
        y = b @ x
        return qc + (y + y.T) / (m_q + 1 - j)

    f = jax.lax.fori_loop(0, m_f, lambda j, f: eye + (b @ f) / (m_f - j), eye)
    q = h * jax.lax.fori_loop(0, m_q, taylor_q, qc)

    def body(k, c):
        return jax.lax.cond(k < s, _double, lambda c: c, c)

    return jax.lax.fori_loop(0, _MAX_DOUBLINGS, body, (f, q))


def _power(f: jax.Array, q: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    r"""$k$ steps of $(F, Q)$: $(F^k, \sum_{j<k} F^j Q F^{jT})$, by binary powering.

    A scan over the bits of `k` (static, >= 1): about $2\log_2 k$ compositions
    $(F_b F_a,\ F_b Q_a F_b^T + Q_b)$.
    """
    if k == 1:
        return f, q
    bits = jnp.asarray([int(b) for b in reversed(bin(k)[2:])], bool)

    def body(carry, bit):
        result, (f, q) = carry

        def take(r):
            return f @ r[0], _sym(f @ r[1] @ f.T + q)

        result = jax.lax.cond(bit, take, lambda r: r, result)
        return (result, _double((f, q))), None

    start = (jnp.eye(f.shape[0], dtype=f.dtype), jnp.zeros_like(q))
    return jax.lax.scan(body, (start, (f, q)), bits)[0][0]


def _doubling_sum(f: jax.Array, b: jax.Array) -> jax.Array:
    r"""$X = \sum_{k\ge0} F^k B F^{kT}$ by doubling; NaN unless $F^{2^j} \to 0$ (stable)."""
    eps = float(jnp.finfo(b.dtype).eps)
    f_size = jnp.max(jnp.abs(f))

    def converged(t):
        return jnp.max(jnp.abs(t)) <= eps * f_size

    def cond(c):
        t, x, k = c
        return (k < _MAX_SUM_DOUBLINGS) & ~converged(t) & jnp.all(jnp.isfinite(x))

    def body(c):
        t, x, k = c
        return t @ t, x + t @ x @ t.T, k + 1

    t, x, _ = jax.lax.while_loop(cond, body, (f, b, jnp.zeros((), jnp.int32)))
    return jnp.where(converged(t), x, jnp.nan)


def _discrete_lyapunov(f: jax.Array, q: jax.Array) -> jax.Array:
    r"""The solution of $P = F P F^T + Q$ (stationary covariance of $z_k = F z_{k-1} + w_k$).

    Smith's doubling; derivatives by implicit differentiation
    (`lax.custom_linear_solve`, the adjoint is the transposed equation). NaN
    when $F$ has an eigenvalue on or outside the unit circle.
    """

    def matvec(x):
        return x - f @ x @ f.T

    def solve(_, rhs):
        return _doubling_sum(jax.lax.stop_gradient(f), rhs)

    def transpose_solve(_, rhs):
        return _doubling_sum(jax.lax.stop_gradient(f).T, rhs)

    return _sym(jax.lax.custom_linear_solve(matvec, q, solve, transpose_solve))


def _boxcar(a, qc, c, dt: float, steps: int) -> tuple[jax.Array, jax.Array]:
    r"""One period of $(x, \bar y)$: the state and the mean of $c\,x$ over `steps` dt-steps.

    The one-step transition of $(x_j, s_j)$ with the running sum
    $s_j = s_{j-1} + c\,x_j$ is
    $T = \begin{pmatrix}E & 0\\ cE & I\end{pmatrix}$, $E = e^{A\,dt}$, with noise
    covariance $\begin{pmatrix}Q_d & Q_d c^T\\ c Q_d & c Q_d c^T\end{pmatrix}$
    (`_discretize` over dt); `_power` takes it to P steps; the sum restarts
    at 0 each period (zero columns in $F$) and is divided by P.
    """
    e, qd = _discretize(a, qc, dt)
    n0, n = a.shape[0], c.shape[0]
    dtype = a.dtype
    cq = c @ qd
    t1 = _blocks([[e, jnp.zeros((n0, n), dtype)], [c @ e, jnp.eye(n, dtype=dtype)]])
    tp, qp = _power(t1, _blocks([[qd, cq.T], [cq, cq @ c.T]]), steps)
    d = jnp.concatenate([jnp.ones((n0,), dtype), jnp.full((n,), 1.0 / steps, dtype)])
    f = jnp.concatenate([tp[:, :n0], jnp.zeros((n0 + n, n), dtype)], axis=1)
    return f * d[:, None], qp * (d[:, None] * d[None, :])


def _local_jacobian(g, y: jax.Array) -> jax.Array:
    """`(m, k, n)`: d g[r, i] / d y[c, i] of a map `(k, n) -> (m, n)` local in each region.

    One `jvp` per row c of `y` (vmapped), its tangent 1 in every region at once: valid
    because region i's output depends on region i's state only.
    """
    k = y.shape[0]
    basis = jnp.broadcast_to(jnp.eye(k, dtype=y.dtype)[:, :, None], (k,) + y.shape)
    cols = jax.vmap(lambda t: jax.jvp(g, (y,), (t,))[1])(basis)  # (c, r, n)
    return jnp.swapaxes(cols, 0, 1)


def _balloon_steady(monitor: BOLD, drive: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""The haemodynamic steady state `(4, n)` under the constant drive, and its residual (1/s).

    Newton's method per region (4 x 4 Jacobians, `_BALLOON_NEWTON` iterations
    from rest, without gradient), then one more Newton step with gradient: at
    convergence its derivative is the implicit-function derivative
    $-J^{-1}\partial_\theta g$ (forward and reverse mode).
    """
    dyn, static = eqx.partition(monitor, eqx.is_array)
    frozen = eqx.combine(jax.lax.stop_gradient(dyn), static)
    frozen_drive = jax.lax.stop_gradient(drive)

    def newton(g, y):
        jac = jnp.moveaxis(_local_jacobian(g, y), -1, 0)  # (n, 4, 4)
        step = jnp.linalg.solve(jac, g(y).T[..., None])[..., 0]  # (n, 4)
        return y - step.T

    def g(y, mon=monitor, x=drive):
        return mon.vector_field(y, x)

    y0 = jnp.zeros((4,) + drive.shape, drive.dtype)
    frozen_g = functools.partial(g, mon=frozen, x=frozen_drive)
    y = jax.lax.fori_loop(0, _BALLOON_NEWTON, lambda _, y: newton(frozen_g, y), y0)
    y = newton(g, jax.lax.stop_gradient(y))
    return y, jnp.max(jnp.abs(g(y)))


def _balloon(monitor: BOLD, a: jax.Array, qc: jax.Array, c: jax.Array, quantity: jax.Array):
    r"""The neural system `(a, qc)` driving the linearised haemodynamics (ms).

    Returns `(a, qc, H, offset, rest, residual)`: the augmented system on
    $(x, h)$, $\dot h = J_h h + B x$ ($J_h$ block-diagonal, from the monitor's own
    `vector_field` at the steady state under the drive
    $\mathrm{scale}\,(y^* - \mathrm{baseline})$, its time unit s converted to
    ms), the BOLD read-out (`signal`'s derivative), the BOLD signal at the
    steady state, the haemodynamic rest state (the monitor's initial state) as
    a deviation, and the steady state's residual.
    """
    n, n0 = quantity.shape[0], a.shape[0]
    dtype = a.dtype
    scale = jnp.broadcast_to(jnp.asarray(monitor.scale, dtype), (n,))
    baseline = jnp.broadcast_to(jnp.asarray(monitor.baseline, dtype), (n,))
    drive = scale * (quantity - baseline)
    y, residual = _balloon_steady(monitor, drive)
    jac = _local_jacobian(lambda v: monitor.vector_field(v, drive), y)  # (4, 4, n), 1/s
    _, gain = jax.jvp(lambda x: monitor.vector_field(y, x), (drive,), (jnp.ones_like(drive),))

    def signal(v):
        return monitor.signal(BalloonState(v[0], v[1], v[2], v[3]))

    out = _local_jacobian(lambda v: signal(v)[None], y)[0]  # (4, n)
    b = _S_PER_MS * ((gain * scale[None, :])[:, :, None] * c[None]).reshape(4 * n, n0)
    qc_full = jax.scipy.linalg.block_diag(qc, jnp.zeros((4 * n, 4 * n), dtype))
    h = jnp.einsum("ri,ij->irj", out, jnp.eye(n, dtype=dtype)).reshape(n, 4 * n)
    h = jnp.concatenate([jnp.zeros((n, n0), dtype), h], axis=1)
    j_h = _S_PER_MS * jnp.einsum("rci,ij->ricj", jac, jnp.eye(n, dtype=dtype))
    a = _blocks([[a, jnp.zeros((n0, 4 * n), dtype)], [b, j_h.reshape(4 * n, 4 * n)]])
    return a, qc_full, h, signal(y), -y.reshape(-1), residual


# =====================================================================================
# the model
# =====================================================================================


class _Spec(NamedTuple):
    """Static settings of one compiled model (hashable).

    The monitor's kind ("raw", "average", "sensor", "bold"), model time units per ms,
    the observed variable, the period and dt (ms), simulator steps per period, the first
    retained sample (1-based; 0 unless `initial="simulator"`), `initial`, `tol`.
    """

    kind: str
    scale: float
    variable: str
    period: float
    dt: float
    steps: int
    first: int
    initial: str
    tol: float


_MONITORS = "Raw, TemporalAverage, EEG, MEG and BOLD"


def state_space(
    sim: Simulator, *, state: Any = None, initial: str = "stationary", tol: float = 1e-6
) -> StateSpaceModel:
    r"""The exact state-space model of the monitor's samples of the linearised network.

    The network (no conduction delays) is linearised at its fixed point
    (`linearize`: $A = J_0 + K$ in 1/ms, noise intensities $\sigma^2$ per ms;
    multiplicative noise linearised there; coloured noise as a state) and
    discretised exactly between the monitor's samples (see the module
    docstring): the model holds for any simulator dt and solver, up to the
    solver's own error.

    - `Raw(period)`: $z = x(t_k)$ (and the coloured-noise state), a point
      sample; $F = e^{AT}$.
    - `TemporalAverage(period)`: $z_k = (x(t_k), a_k)$ with $a_k$ the mean of
      the observed variable at the $P = T/dt$ steps in $(t_{k-1}, t_k]$, as the
      monitor defines it, built from $e^{A\,dt}$ and its noise covariance by
      doubling ($O(\log P)$ products). `EEG`/`MEG`: the lead field times it.
    - `BOLD(period=TR)`: the monitor's Balloon-Windkessel model linearised at
      its steady state under the constant drive
      $\mathrm{scale}\,(y^* - \mathrm{baseline})$ ($y^*$ the observed variable
      at the fixed point; derivatives of the monitor's own `vector_field` and
      `signal`, so any coefficient set works), driven one way by the neural
      state: $z = (x, h)$, $S = N + 4 n_{regions}$, the BOLD signal at the end
      of each TR a point sample. The monitor's averaging of its input over
      `dt_bold` windows and its RK4 steps are $O(dt_{bold}^2)$ details of the
      simulation that this continuous-time model neglects (they change the
      response to frequencies below 1 Hz by well under 0.1 %).

    **Arguments:**

    - `sim`: a `brainmass.Simulator` of a delay-free network with noise.
    - `state`: the expansion point (`(n_vars, n_regions)` or a dict per
      variable); default the fixed point (`fixed_point(sim).state`).
    - `initial`: `"stationary"` (default): $z_1 \sim N(0, P)$, the stationary
      covariance; `"simulator"`: the exact distribution of $z$ at the first
      retained sample (after the monitor's `transient`) of a simulation that
      starts at `sim.init` at t = 0 (coloured noise from its stationary
      distribution, haemodynamics at rest, as the simulator does).
    - `tol`: the largest acceptable fixed-point residual (state units per ms)
      for `ok`.

    **Returns:** a `StateSpaceModel` (`F`, `Q`, `H`, `offset`, `init_mean`,
    `init_cov`, `stationary_cov`, `ok`; S states, C channels: C = n_regions,
    or the lead field's sensors). Failures (no fixed point, instability) are
    `ok = False` and NaN, never exceptions; works under `jax.jit`, `jax.vmap`,
    `jax.grad` and `jax.jvp` with respect to the simulator's parameters.

    **Raises:** `ValueError` for a network with conduction delays, without
    noise, or a monitor other than Raw, TemporalAverage, EEG, MEG, BOLD.

    **Cost:** dense $S \times S$ products, about $3\log_2(4\|A\|_1 T) + 15$ for
    the discretisation and 3 per doubling of the Lyapunov sum. Measured (float32,
    CPU, 2 shared cores; call / reverse-mode gradient): 10 regions, every
    monitor, under 3 ms; 68 regions: Raw 1.5 / 6 ms, TemporalAverage (P = 10)
    4 / 34 ms, BOLD (S = 340) 0.2 / 0.9 s.
    """
    sim = _check_sim(sim)
    net, monitor = sim.network, sim.monitor
    if net.has_delays:
        raise ValueError(
            "sim: this network has conduction delays (Network(..., speed=...)); its state is the "
            "whole history over the longest delay, which is infinite-dimensional, so it has no "
            "exact finite state-space model. Delays are handled by the Whittle and FC "
            "likelihoods (inference.likelihoods.Whittle, Linearized('fc'): exact transfer "
            "function) or by simulation-based inference (NPE / NLE); or build the network "
            "without speed= to neglect the delays."
        )
    if net.noise is None:
        raise ValueError(
            "sim: the network has no noise (noise=None), so the linearised model is "
            "deterministic and has no state-space likelihood; build the Network with "
            "noise=bm.noise.Additive(...) (or Multiplicative, OrnsteinUhlenbeck)."
        )
    kinds = ((BOLD, "bold"), (AbstractSensorMonitor, "sensor"), (TemporalAverage, "average"))
    kind = next((k for cls, k in kinds + ((Raw, "raw"),) if isinstance(monitor, cls)), None)
    if kind is None:
        raise ValueError(
            f"sim.monitor: state_space models the {_MONITORS} monitors, got "
            f"{type(monitor).__name__}."
        )
    if initial not in ("stationary", "simulator"):
        raise ValueError(f"initial: expected 'stationary' or 'simulator', got {initial!r}.")
    tol = float(tol)
    if not tol >= 0:
        raise ValueError(f"tol: expected a tolerance >= 0 (state units per ms), got {tol}.")
    if state is not None:
        state = _as_state(state, sim, "state")
    boxcar = kind in ("average", "sensor")
    spec = _Spec(
        kind=kind,
        scale=_time_scale(sim),
        variable=_observed_variable(sim),
        period=float(sim.period),
        # only what the model depends on, so that compiled code is shared
        dt=float(sim.dt) if boxcar else 0.0,
        steps=int(sim.period_steps) if boxcar else 0,
        first=int(sim.transient_samples) + 1 if initial == "simulator" else 0,
        initial=initial,
        tol=tol,
    )
    arrays = monitor if kind in ("sensor", "bold") else None  # Raw, TemporalAverage: in spec
    return _state_space_jit(net, arrays, sim.init, state, spec)


@eqx.filter_jit
def _state_space_jit(net, monitor, init, state, spec: _Spec) -> StateSpaceModel:
    lin = _linearize_jit(net, init, state, _Context(spec.scale, spec.variable, None))
    dtype = lin.J0.dtype
    N, n = lin.n, lin.n_regions
    blocks = [("state", N)]
    # the neural system, with the coloured-noise process as a state
    a, qc = lin.A, jnp.diag(lin.sigma2)
    cov0 = jnp.zeros((N, N), dtype)
    if lin.colored:
        inv_tau = 1.0 / lin.noise_tau
        zero = jnp.zeros((N, N), dtype)
        a = _blocks([[lin.A, jnp.eye(N, dtype=dtype)], [zero, -jnp.diag(inv_tau)]])
        qc = jnp.diag(jnp.concatenate([jnp.zeros((N,), dtype), lin.sigma2 * inv_tau**2]))
        eta_var = 0.5 * lin.sigma2 * inv_tau  # sigma^2 / (2 tau): the stationary noise process
        cov0 = _blocks([[zero, zero], [zero, jnp.diag(eta_var)]])
        blocks.append(("noise", N))
    n0 = a.shape[0]
    c = jnp.concatenate([lin.obs, jnp.zeros((n, n0 - N), dtype)], axis=1)  # (n, n0)
    mean0 = jnp.concatenate([(init.astype(dtype) - lin.state).reshape(-1), jnp.zeros(n0 - N)])
    mean0 = mean0.astype(dtype)
    quantity = net.model.quantity(lin.state, spec.variable).astype(dtype)
    good = lin.residual <= spec.tol
    if spec.kind == "raw":
        f, q = _discretize(a, qc, spec.period)
        h, offset = c, quantity
    elif spec.kind in ("average", "sensor"):
        f, q = _boxcar(a, qc, c, spec.dt, spec.steps)
        h = jnp.concatenate([jnp.zeros((n, n0), dtype), jnp.eye(n, dtype=dtype)], axis=1)
        offset = quantity
        if spec.kind == "sensor":
            lead = monitor.leadfield.astype(dtype)
            h, offset = lead @ h, lead @ offset
        mean0 = jnp.concatenate([mean0, jnp.zeros((n,), dtype)])
        cov0 = jax.scipy.linalg.block_diag(cov0, jnp.zeros((n, n), dtype))
        blocks.append(("average", n))
    else:
        a, qc, h, offset, rest, residual = _balloon(monitor, a, qc, c, quantity)
        f, q = _discretize(a, qc, spec.period)
        mean0 = jnp.concatenate([mean0, rest])
        cov0 = jax.scipy.linalg.block_diag(cov0, jnp.zeros((4 * n, 4 * n), dtype))
        good = good & (_S_PER_MS * residual <= max(spec.tol, 100 * float(jnp.finfo(dtype).eps)))
        blocks.append(("haemodynamics", 4 * n))
    stationary = _discrete_lyapunov(f, q)
    if spec.initial == "stationary":
        init_mean, init_cov = jnp.zeros(q.shape[0], dtype), stationary
    else:
        fk, qk = _power(f, q, spec.first)
        init_mean, init_cov = fk @ mean0, _sym(fk @ cov0 @ fk.T + qk)
    arrays = (f, q, h, offset, init_mean, init_cov, stationary)
    ok = good & jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in arrays]))
    stops = list(itertools.accumulate(size for _, size in blocks))
    blocks = tuple(
        (name, stop - size, stop) for (name, size), stop in zip(blocks, stops, strict=True)
    )
    return StateSpaceModel(
        f, q, h, offset, init_mean, init_cov, stationary, ok, spec.period, n, lin.n_vars, blocks
    )


def autocovariance(model: StateSpaceModel, n_lags: int) -> jax.Array:
    r"""The stationary autocovariance of the observed samples, $\gamma(h) = H F^h P H^T$.

    $\gamma(h) = \mathrm{Cov}(y_{k+h}, y_k)$ for $h = 0, \dots,$ `n_lags - 1`
    sample periods, $P$ the model's `stationary_cov`.

    **Arguments:**

    - `model`: a `StateSpaceModel` (from `state_space`).
    - `n_lags`: the number of lags, >= 1.

    **Returns:** `(n_lags, C, C)` in (observed units)^2; NaN when the model is
    unstable.
    """
    if not isinstance(model, StateSpaceModel):
        raise ValueError(
            f"model: expected a StateSpaceModel (from state_space), got {type(model).__name__}."
        )
    if isinstance(n_lags, bool) or not isinstance(n_lags, int) or n_lags < 1:
        raise ValueError(f"n_lags: expected an int >= 1, got {n_lags!r}.")
    # F^h P H^T for h = 0..n_lags-1 by doubling: the first 2^k lags times F^(2^k) give the
    # next 2^k, so ceil(log2 n_lags) batched products instead of n_lags sequential ones
    block = (model.stationary_cov @ model.H.T)[None]  # (1, S, C)
    power = model.F
    while block.shape[0] < n_lags:
        block = jnp.concatenate([block, jnp.einsum("ab,hbc->hac", power, block)])
        power = power @ power
    return jnp.einsum("ca,hab->hcb", model.H, block[:n_lags])
