"""Phases: analytic signal, instantaneous phase, Kuramoto order, metastability."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Signal
from ._common import Scalar, _as_signal, _PerTime, _Phases, _safe_sqrt


def analytic_signal(signal: Signal) -> Array:
    r"""The analytic signal $x + i\,\mathcal{H}[x]$ along time, as `scipy.signal.hilbert`.

    Computed with the FFT: negative frequencies zeroed, positive ones doubled.
    The signal is treated as periodic, so the first and last few samples are
    distorted unless it holds whole periods (discard edges in practice).

    **Arguments:**

    - `signal`: shape `(n_times, n_channels)`.

    **Returns:** complex, shape `(n_times, n_channels)`.
    """
    return _analytic_kernel(_as_signal(signal))


@jax.jit
def _analytic_kernel(x: Signal) -> Array:
    n = x.shape[0]
    h = np.zeros(n)
    if n % 2 == 0:
        h[0] = h[n // 2] = 1.0
        h[1 : n // 2] = 2.0
    else:
        h[0] = 1.0
        h[1 : (n + 1) // 2] = 2.0
    return jnp.fft.ifft(jnp.fft.fft(x, axis=0) * jnp.asarray(h, x.dtype)[:, None], axis=0)


def phase(signal: Signal, *, center: bool = True) -> Signal:
    r"""Instantaneous phase from the analytic signal (Hilbert transform), in radians.

    For $x = A \cos(\omega t + \phi)$ this returns $\omega t + \phi$ wrapped to
    $(-\pi, \pi]$, so that order parameters of non-phase models (e.g. the `x`
    of a Hopf oscillator) can be computed with `kuramoto_order`.

    **Arguments:**

    - `signal`: shape `(n_times, n_channels)`; band-pass filter broadband
      signals first, the phase is meaningful for narrow-band ones.
    - `center`: subtract each channel's mean first (default), so an offset
      does not distort the phase.

    **Returns:** shape `(n_times, n_channels)`, in $(-\pi, \pi]$.
    """
    return _phase_kernel(_as_signal(signal), bool(center))


@functools.partial(jax.jit, static_argnames=("center",))
def _phase_kernel(x: Signal, center: bool) -> Signal:
    if center:
        x = x - jnp.mean(x, axis=0, keepdims=True)
    z = _analytic_kernel(x)
    re, im = jnp.real(z), jnp.imag(z)
    # arctan2 has a 0/0 gradient at z = 0: move those points to (1, 0)
    zero = (re == 0) & (im == 0)
    return jnp.where(zero, 0.0, jnp.arctan2(im, jnp.where(zero, 1.0, re)))


def kuramoto_order(phases: _Phases) -> _PerTime:
    r"""Kuramoto order parameter $R = |\frac{1}{N}\sum_j e^{i\theta_j}|$ over the last axis.

    $R = 1$ for identical phases; about $\sqrt{\pi / (4N)}$ for independent
    uniformly random phases ($E[R^2] = 1/N$). Kuramoto (1984), Chemical
    Oscillations, Waves, and Turbulence.

    **Arguments:**

    - `phases`: radians, shape `(n_times, n_oscillators)` (or `(n_oscillators,)`).

    **Returns:** shape `(n_times,)` (or `()`), in `[0, 1]`.
    """
    phases = jnp.asarray(phases)
    if phases.ndim < 1 or phases.shape[-1] < 1:
        raise ValueError(
            f"phases: expected shape (n_times, n_oscillators) or (n_oscillators,), "
            f"got {phases.shape}."
        )
    return _order_kernel(phases)


@jax.jit
def _order_kernel(phases: _Phases) -> _PerTime:
    c = jnp.mean(jnp.cos(phases), axis=-1)
    s = jnp.mean(jnp.sin(phases), axis=-1)
    return jnp.minimum(_safe_sqrt(c * c + s * s), 1.0)


def metastability(phases: _Phases) -> Scalar:
    r"""Metastability: the standard deviation over time of the Kuramoto order $R(t)$.

    Shanahan (2010), Chaos 20:013108; Deco et al. (2017), Sci. Rep. 7:3095.

    **Arguments:**

    - `phases`: radians, shape `(n_times, n_oscillators)` (e.g. from `phase`).

    **Returns:** a scalar >= 0; 0 for a constant order parameter.
    """
    phases = jnp.asarray(phases)
    if phases.ndim != 2:
        raise ValueError(f"phases: expected shape (n_times, n_oscillators), got {phases.shape}.")
    return _metastability_kernel(phases)


@jax.jit
def _metastability_kernel(phases: _Phases) -> Scalar:
    order = _order_kernel(phases)
    centred = order - jnp.mean(order)
    return _safe_sqrt(jnp.mean(centred * centred))
