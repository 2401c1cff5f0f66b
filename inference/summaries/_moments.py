"""Time-domain summaries: per-channel moments, and the raw signal for a learned embedding."""

from __future__ import annotations

from typing import ClassVar, final

import equinox as eqx
import jax.numpy as jnp

import brainmass as bm
from brainmass.checks import check_int

from ._base import AbstractSummary

__all__ = ["Moments", "TimeSeries"]


@final
class Moments(AbstractSummary):
    r"""Per-channel mean, standard deviation and lag-1 autocorrelation.

    Features `(3 n_channels,)`: the means (`"mean[c]"`), the standard
    deviations with `ddof = 0` (`"std[c]"`), and the lag-1 autocorrelations
    (`"ac1[c]"`: the Pearson correlation of $x_{t}$ and $x_{t+1}$,
    `bm.analysis.pearson`, 0 for a constant channel). For a stationary
    Ornstein-Uhlenbeck process $dx = -\lambda x\,dt + \sigma\,dW$ sampled every
    $\Delta$ these estimate the mean, $\sigma / \sqrt{2\lambda}$ and
    $e^{-\lambda\Delta}$.
    """

    _period: float | None = eqx.field(static=True)
    _signal_shape: tuple[int, int] | None = eqx.field(static=True)

    def __init__(self):
        self._period = None
        self._signal_shape = None

    def __check_init__(self):
        if self._signal_shape is not None and self._signal_shape[0] < 3:
            raise ValueError(f"shape: Moments needs at least 3 samples, got {self._signal_shape}.")

    def _shape(self):
        return (3 * self._signal_shape[1],)

    def _names(self):
        c = self._signal_shape[1]
        return [f"{m}[{i}]" for m in ("mean", "std", "ac1") for i in range(c)]

    def _compute(self, x):
        mean = jnp.mean(x, axis=0)
        std = jnp.std(x, axis=0)
        ac1 = bm.analysis.pearson(x[:-1].T, x[1:].T)
        return jnp.concatenate([mean, std, ac1])


@final
class TimeSeries(AbstractSummary):
    """The raw signal, subsampled in time: the input of a `CNNEmbedding`.

    Output shape `(n_samples // stride, n_channels)`: samples `0, stride,
    2 stride, ...`. Not flat (no `names`; cannot be `combine`d).

    **Arguments:**

    - `stride`: keep every `stride`-th sample (default 1, all).
    """

    flat: ClassVar[bool] = False
    stride: int = eqx.field(static=True)
    _period: float | None = eqx.field(static=True)
    _signal_shape: tuple[int, int] | None = eqx.field(static=True)

    def __init__(self, stride: int = 1):
        self.stride = check_int(stride, "TimeSeries stride", 1)
        self._period = None
        self._signal_shape = None

    def __check_init__(self):
        if self._signal_shape is not None and self._signal_shape[0] < self.stride:
            raise ValueError(
                f"TimeSeries stride: {self.stride} is longer than the signal "
                f"({self._signal_shape[0]} samples)."
            )

    def _shape(self):
        n, c = self._signal_shape
        return (n // self.stride, c)

    def _compute(self, x):
        m = x.shape[0] // self.stride
        return x[: m * self.stride : self.stride]
