"""Distances between empirical distributions: Kolmogorov-Smirnov, Wasserstein-1."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array
from ._common import Scalar, _Sample


def ks_statistic(x: _Sample, y: _Sample) -> Scalar:
    r"""Two-sample Kolmogorov-Smirnov statistic $\sup_v |F_x(v) - F_y(v)|$.

    Equals `scipy.stats.ks_2samp(x, y).statistic`. Piecewise constant in the
    values: its gradient is zero almost everywhere (finite, but useless for
    gradient descent; use `wasserstein_1`).

    **Arguments:**

    - `x`, `y`: 1-D samples, of any sizes.

    **Returns:** a scalar in `[0, 1]`.
    """
    return _ks_kernel(_sample(x, "x"), _sample(y, "y"))


@jax.jit
def _ks_kernel(x: _Sample, y: _Sample) -> Scalar:
    xs, ys = jnp.sort(x), jnp.sort(y)
    both = jnp.concatenate([xs, ys])
    count_x = jnp.searchsorted(xs, both, side="right")
    count_y = jnp.searchsorted(ys, both, side="right")
    n, m = x.shape[0], y.shape[0]
    if n == m:  # integer differences: exactly 0 for identical samples
        return (jnp.max(jnp.abs(count_x - count_y)) / n).astype(both.dtype)
    return jnp.max(jnp.abs(count_x / n - count_y / m)).astype(both.dtype)


def wasserstein_1(x: _Sample, y: _Sample) -> Scalar:
    r"""Wasserstein-1 (earth mover's) distance between two empirical distributions.

    $W_1 = \int_0^1 |Q_x(q) - Q_y(q)|\,dq$ with $Q$ the empirical quantile
    functions (step functions through the sorted samples). With equal sizes
    this is `mean(|sort(x) - sort(y)|)`; otherwise the integral is exact over
    the merged grid of quantile levels $\{i/n\} \cup \{j/m\}$. Equals
    `scipy.stats.wasserstein_distance(x, y)`; differentiable in both samples.

    **Arguments:**

    - `x`, `y`: 1-D samples, of any sizes.

    **Returns:** a scalar >= 0, in the units of the samples.
    """
    return _wasserstein_kernel(_sample(x, "x"), _sample(y, "y"))


@jax.jit
def _wasserstein_kernel(x: _Sample, y: _Sample) -> Scalar:
    n, m = x.shape[0], y.shape[0]
    xs, ys = jnp.sort(x), jnp.sort(y)
    if n == m:
        return jnp.mean(jnp.abs(xs - ys))
    levels = np.union1d(np.arange(n + 1) / n, np.arange(m + 1) / m)
    widths = np.diff(levels)
    mid = 0.5 * (levels[1:] + levels[:-1])
    ix = np.minimum(np.floor(mid * n).astype(int), n - 1)
    iy = np.minimum(np.floor(mid * m).astype(int), m - 1)
    return jnp.sum(jnp.asarray(widths, xs.dtype) * jnp.abs(xs[ix] - ys[iy]))


def _sample(x: Any, name: str) -> Array:
    x = jnp.asarray(x)
    if x.ndim != 1 or x.shape[0] < 1:
        raise ValueError(f"{name}: expected a non-empty 1-D sample, got shape {x.shape}.")
    return x
