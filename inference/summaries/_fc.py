"""Functional connectivity summaries: the FC's upper triangle (with a PCA) and the FCD histogram."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import brainmass as bm
from brainmass.checks import check_int
from brainmass.units import MS, to_float

from .._modules import evolve
from ._base import AbstractSummary

__all__ = ["FC", "FCD"]


@final
class FC(AbstractSummary):
    r"""The upper triangle of the functional connectivity, Fisher-z transformed, optionally PCA.

    Features: $\operatorname{artanh} r_{ij}$ (or $r_{ij}$) of the Pearson
    correlations of the channels for $i < j$ (`bm.analysis.fc`,
    `upper_triangle`, `fisher_z`), `d = n_channels (n_channels - 1) / 2`,
    named `"fc[i,j]"`.

    With `pca=k`, `fit` returns a copy holding the bank's mean and its first `k`
    principal axes (rows of $V^\top$ from the SVD $X - \bar x = U S V^\top$, each
    signed so that its largest-magnitude entry is positive), `explained_variance_`
    ($S^2 / (n - 1)$) and `explained_variance_ratio_`; `project` returns
    $(x - \bar x) V_k$, shape `(k,)`, named `"fc_pc0"`, ...

    **Arguments:**

    - `pca`: number of principal components kept, or `None` (no reduction).
    - `fisher`: apply Fisher's z-transform (default True).
    """

    pca: int | None = eqx.field(static=True)
    fisher: bool = eqx.field(static=True)
    mean_: np.ndarray | None
    components_: np.ndarray | None
    explained_variance_: np.ndarray | None
    explained_variance_ratio_: np.ndarray | None
    _period: float | None = eqx.field(static=True)
    _signal_shape: tuple[int, int] | None = eqx.field(static=True)

    def __init__(self, pca: int | None = None, fisher: bool = True):
        self.pca = None if pca is None else check_int(pca, "FC pca", 1)
        self.fisher = bool(fisher)
        self.mean_ = None
        self.components_ = None
        self.explained_variance_ = None
        self.explained_variance_ratio_ = None
        self._period = None
        self._signal_shape = None

    def __check_init__(self):
        if self._signal_shape is None:
            return
        n, c = self._signal_shape
        if c < 2:
            raise ValueError(f"shape: FC needs at least 2 channels, got {self._signal_shape}.")
        if n < 2:
            raise ValueError(f"shape: FC needs at least 2 samples, got {self._signal_shape}.")
        d = c * (c - 1) // 2
        if self.pca is not None and self.pca > d:
            raise ValueError(
                f"FC pca: {self.pca} components, but {c} channels give only {d} FC values."
            )
        if self.components_ is not None and self.components_.shape[1] != d:
            raise ValueError(
                f"FC: fitted on {self.components_.shape[1]} FC values, but {c} channels give {d}; "
                "bind an unfitted FC and fit it again."
            )

    def _shape(self):
        c = self._signal_shape[1]
        return (c * (c - 1) // 2,)

    def _names(self):
        i, j = np.triu_indices(self._signal_shape[1], k=1)
        return [f"fc[{a},{b}]" for a, b in zip(i, j, strict=True)]

    def _compute(self, x):
        r = bm.analysis.upper_triangle(bm.analysis.fc(x))
        return bm.analysis.fisher_z(r) if self.fisher else r

    def fit(self, features: Any) -> FC:
        """Fit the PCA (when `pca` is set) on a bank of raw FC features.

        **Arguments:**

        - `features`: shape `(n, d)`, finite, `n >= 2`.

        **Returns:** a new, fitted FC (or `self` when `pca is None`).
        """
        x = self._check_features(features)
        if self.pca is None:
            return self
        n = x.shape[0]
        if n < 2 or self.pca > n:
            raise ValueError(
                f"features: FC(pca={self.pca}) needs at least max(2, {self.pca}) rows to fit, "
                f"got {n}."
            )
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean[None, :], full_matrices=False)
        comps = vt[: self.pca]
        # sign convention: the largest-magnitude entry of each component is positive
        signs = np.sign(comps[np.arange(self.pca), np.argmax(np.abs(comps), axis=1)])
        comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
        var = s**2
        total = var.sum()
        return evolve(
            self,
            mean_=mean,
            components_=comps,
            explained_variance_=var[: self.pca] / (n - 1),
            explained_variance_ratio_=var[: self.pca] / (total if total > 0 else 1.0),
        )

    def project(self, features: Any) -> jax.Array:
        """The principal-component scores `(x - mean) @ components.T` (identity without PCA).

        **Arguments:**

        - `features`: shape `(..., d)`.

        **Returns:** shape `(..., pca)` (or `(..., d)` without PCA).
        """
        x = jnp.asarray(features)
        if self.pca is None:
            return x
        if self.components_ is None:
            raise ValueError(
                f"FC(pca={self.pca}).project: the PCA is not fitted; call summary = "
                "summary.fit(bank) first."
            )
        d = self.components_.shape[1]
        if x.ndim < 1 or x.shape[-1] != d:
            raise ValueError(f"features: expected shape (..., {d}), got {x.shape}.")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        mean = jnp.asarray(self.mean_, x.dtype).reshape((1,) * (x.ndim - 1) + (d,))
        return (x - mean) @ jnp.asarray(self.components_, x.dtype).T

    @property
    def out_shape(self):
        """`(pca,)` with PCA, else `shape`."""
        return self.shape if self.pca is None else (self.pca,)

    @property
    def out_names(self):
        """`"fc_pc0"`, ... with PCA, else `names`."""
        return self.names if self.pca is None else [f"fc_pc{i}" for i in range(self.pca)]


@final
class FCD(AbstractSummary):
    r"""The histogram of the FC dynamics values: the distribution of windowed-FC similarity.

    The FCD matrix of sliding-window FC patterns (`bm.analysis.fcd`) has its
    values above the diagonal (`fcd_values`, every pair of distinct windows)
    binned into `bins` equal bins over `range`; the features are the fractions
    of values in each bin (they sum to 1; values outside `range` count in the
    first or last bin). Named `"fcd[lo,hi)"` by bin edges. Not differentiable
    (counts).

    **Arguments:**

    - `window`, `step`: window length and step between window starts (ms, or
      brainunit time quantities), rounded to whole samples.
    - `bins`: number of bins (default 20).
    - `range`: `(low, high)` of the bins (default `(-1, 1)`, all correlations).
    """

    window: float = eqx.field(static=True)
    step: float = eqx.field(static=True)
    bins: int = eqx.field(static=True)
    range: tuple[float, float] = eqx.field(static=True)
    _period: float | None = eqx.field(static=True)
    _signal_shape: tuple[int, int] | None = eqx.field(static=True)

    def __init__(
        self,
        window: Any,
        step: Any,
        bins: int = 20,
        range: tuple[float, float] = (-1.0, 1.0),
    ):
        self.window = to_float(window, MS, "FCD window")
        self.step = to_float(step, MS, "FCD step")
        for name, v in (("window", self.window), ("step", self.step)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"FCD {name}: expected a duration > 0 ms, got {v}.")
        self.bins = check_int(bins, "FCD bins", 1)
        if not (isinstance(range, Sequence) and len(range) == 2):
            raise ValueError(f"FCD range: expected (low, high), got {range!r}.")
        lo, hi = float(range[0]), float(range[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"FCD range: expected finite low < high, got {range!r}.")
        self.range = (lo, hi)
        self._period = None
        self._signal_shape = None

    def _fcd(self, x):
        return bm.analysis.fcd(x, self.window, self.step, period=self._period)

    def __check_init__(self):
        shape = self._signal_shape
        if shape is None:
            return
        if shape[1] < 3:
            raise ValueError(f"shape: FCD needs at least 3 channels, got {shape}.")
        n_windows = self.n_windows  # the analysis checks window and step (clear errors)
        if n_windows < 2:
            raise ValueError(
                f"FCD window: a {self.window} ms window with a {self.step} ms step gives "
                f"{n_windows} window in a {shape[0] * self._period} ms signal; expected at least "
                "2 windows (use a shorter window or step, or a longer run)."
            )

    @property
    def n_windows(self) -> int:
        """The number of sliding windows in the bound signal."""
        self._require_bound("n_windows")
        spec = jax.ShapeDtypeStruct(self._signal_shape, jnp.result_type(float))
        return int(jax.eval_shape(self._fcd, spec).shape[0])

    def _shape(self):
        return (self.bins,)

    def _names(self):
        e = np.linspace(self.range[0], self.range[1], self.bins + 1)
        return [f"fcd[{e[k]:.3g},{e[k + 1]:.3g})" for k in range(self.bins)]

    def _compute(self, x):
        values = bm.analysis.fcd_values(self._fcd(x))
        lo, hi = self.range
        scaled = (values - lo) * (self.bins / (hi - lo))
        index = jnp.clip(jnp.floor(scaled), 0, self.bins - 1).astype(jnp.int32)
        counts = jnp.sum(jax.nn.one_hot(index, self.bins, dtype=values.dtype), axis=0)
        return counts / values.shape[0]
