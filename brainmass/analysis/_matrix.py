"""Matrix helpers: upper triangles and back, Fisher's z, Pearson correlation."""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array
from ._common import _Batch, _Matrices, _standardize, _Vectors


def upper_triangle(matrix: _Matrices, k: int = 1) -> _Vectors:
    """The entries above the `k`-th diagonal of a square matrix, row by row.

    **Arguments:**

    - `matrix`: shape `(..., n, n)`; leading axes are kept.
    - `k`: diagonal offset; `k = 1` (default) leaves out the diagonal, `k = 0`
      keeps it.

    **Returns:** shape `(..., m)` with `m = (n - k)(n - k + 1) / 2`, in the
    order of `numpy.triu_indices(n, k)`.
    """
    matrix = jnp.asarray(matrix)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"matrix: expected shape (..., n, n), got {matrix.shape}.")
    rows, cols = np.triu_indices(matrix.shape[-1], k)
    return matrix[..., rows, cols]


def from_upper_triangle(
    values: _Vectors, n: int | None = None, *, k: int = 1, diagonal: float = 1.0
) -> _Matrices:
    """The symmetric matrix whose `upper_triangle(., k)` is `values` (the inverse helper).

    **Arguments:**

    - `values`: shape `(..., m)`, in the order of `numpy.triu_indices(n, k)`.
    - `n`: matrix size; inferred from `m = (n - k)(n - k + 1) / 2` when omitted.
    - `k`: the diagonal offset the values were taken with (`k >= 0`).
    - `diagonal`: the value put on the diagonal when `k >= 1` (1 for a
      correlation matrix); other entries not covered by `values` are 0.

    **Returns:** shape `(..., n, n)`, symmetric.
    """
    values = jnp.asarray(values)
    if values.ndim < 1:
        raise ValueError(f"values: expected shape (..., m), got {values.shape}.")
    if k < 0:
        raise ValueError(f"k: expected a diagonal offset >= 0, got {k}.")
    m = values.shape[-1]
    if n is None:
        side = (math.isqrt(8 * m + 1) - 1) // 2  # n - k
        if side * (side + 1) // 2 != m:
            raise ValueError(
                f"values: {m} values are not the upper triangle of a square matrix "
                f"(expected m = (n - k)(n - k + 1) / 2 for some n, with k = {k})."
            )
        n = side + k
    rows, cols = np.triu_indices(n, k)
    if rows.size != m:
        raise ValueError(
            f"values: expected {rows.size} values for n = {n}, k = {k}, got {m} "
            f"(shape {values.shape})."
        )
    return _from_upper_kernel(values, n, k, float(diagonal))


@functools.partial(jax.jit, static_argnames=("n", "k", "diagonal"))
def _from_upper_kernel(values: _Vectors, n: int, k: int, diagonal: float) -> _Matrices:
    rows, cols = np.triu_indices(n, k)
    out = jnp.zeros(values.shape[:-1] + (n, n), values.dtype)
    if k >= 1:
        out = out + diagonal * jnp.eye(n, dtype=values.dtype)
    out = out.at[..., rows, cols].set(values)
    return out.at[..., cols, rows].set(values)


def fisher_z(r: Any, *, max_abs: float | None = None) -> Array:
    r"""Fisher's z-transform $z = \operatorname{artanh}(r)$ of correlations, clipped to stay finite.

    **Arguments:**

    - `r`: correlations, any shape.
    - `max_abs`: `|r|` is clipped to this value before the transform. Default
      `1 - 10 eps` of the dtype (`|z|` about 7.2 in float32, 17.2 in float64),
      so that `r = +-1` (e.g. the diagonal of an FC matrix) gives a finite `z`
      and a finite gradient.

    **Returns:** `z`, same shape as `r`.
    """
    r = jnp.asarray(r)
    if not jnp.issubdtype(r.dtype, jnp.floating):
        r = r.astype(jnp.result_type(float))
    if max_abs is None:
        max_abs = 1.0 - 10.0 * float(jnp.finfo(r.dtype).eps)
    elif not 0.0 < max_abs < 1.0:
        raise ValueError(f"max_abs: expected a value in (0, 1), got {max_abs}.")
    return _fisher_kernel(r, float(max_abs))


@functools.partial(jax.jit, static_argnames=("max_abs",))
def _fisher_kernel(r: Array, max_abs: float) -> Array:
    return jnp.arctanh(jnp.clip(r, -max_abs, max_abs))


def pearson(x: _Vectors, y: _Vectors) -> _Batch:
    """Pearson correlation of `x` and `y` along the last axis.

    A constant `x` or `y` has correlation 0 (not NaN), with a finite gradient.

    **Arguments:**

    - `x`, `y`: shape `(..., m)`, the same shape, `m >= 2`.

    **Returns:** shape `(...)`, in `[-1, 1]`.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"y: expected the shape of x {x.shape}, got {y.shape}.")
    if x.ndim < 1 or x.shape[-1] < 2:
        raise ValueError(f"x: expected shape (..., m) with m >= 2, got {x.shape}.")
    return _pearson_kernel(x, y)


@jax.jit
def _pearson_kernel(x: _Vectors, y: _Vectors) -> _Batch:
    r = jnp.sum(_standardize(x, -1) * _standardize(y, -1), axis=-1)
    return jnp.clip(r, -1.0, 1.0)
