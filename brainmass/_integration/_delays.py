r"""Conduction delays: the static plan (block size, ring buffer) and the delay tables.

The simulation loop keeps a ring buffer of the coupling features $f(e_j)$ of
the last `length` steps. Instead of one gather per step, it reads the delayed
features for a whole block of `block` steps at once: for every step $k$ of a
block starting at step $t_0$ (state $x_{t_0}$ already in the buffer) it needs
the rows $t_0 + k - d_{ij}$, $k = 0..K$ (row $K$ feeds the end-of-step stage of
the last step). These are all in the buffer when $K \le \min d_{ij}$, the
smallest delay in steps over the edges that carry weight. One gather of shape
`(K + 1, n, n)` per block then replaces $K$ gathers, and the rest of the block
runs as a delay-free scan.

Edges whose delay rounds to zero steps act instantaneously: they are summed
from the current state inside the step (`inst_weights`).

With `delays="interpolated"`, the delayed feature is interpolated linearly
between the two neighbouring steps,
$f(t - \tau) \approx (1 - \alpha) f_{t - \lfloor d \rfloor} + \alpha f_{t - \lfloor d \rfloor - 1}$,
$\alpha = d - \lfloor d \rfloor$, so the coupling is a differentiable
function of the delay, the speed and the tract lengths.

When delays are traced (the speed or the tract lengths are free parameters of
`Simulator.function`), the plan is sized from the values at hand with room to
spare (block at most half the smallest delay, buffer twice the largest), and
delays are clipped into that range.

The ring buffer holds `n_regions x 2 length x n_features` values (it is stored
twice over so that a block's read never wraps). Its size is checked against a
limit (`Simulator(max_buffer_gib=8)`) when the plan is made, before anything is
allocated: a speed in the wrong unit (1e-6 m/s) or a tiny `dt` would otherwise
ask for tens of GB when the simulation starts.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .._custom_types import Float, Int

__all__ = [
    "DelayPlan",
    "plan_delays",
    "buffer_bytes",
    "DelayIndex",
    "DelayWeights",
    "delay_index",
    "delay_weights",
]


class DelayPlan(NamedTuple):
    """Static layout of the delay machinery (Python ints: part of the compiled shape).

    - `block`: steps per block $K$ (delayed features read once per block).
    - `length`: rows of the ring buffer $L$, a multiple of `block` (0: no
      delayed edges, no buffer).
    - `min_steps`, `max_steps`: the range delays are clipped to (traced delays).
    - `has_inst`: whether some edges act instantaneously (delay of 0 steps).
    - `traced`: delays may change between calls (sized with headroom).
    - `sources`: for each target region, the source regions of its buffered
      edges (the sparsity pattern of the weights); `None` means all regions.
    """

    block: int
    length: int
    min_steps: int
    max_steps: int
    has_inst: bool
    traced: bool
    sources: tuple[tuple[int, ...], ...] | None = None

    def __repr__(self) -> str:
        edges = "all" if self.sources is None else sum(len(s) for s in self.sources)
        return (
            f"DelayPlan(block={self.block}, length={self.length}, steps=[{self.min_steps}, "
            f"{self.max_steps}], has_inst={self.has_inst}, traced={self.traced}, edges={edges})"
        )


def _edge_mask(weights: np.ndarray, traced_weights: bool) -> np.ndarray:
    if traced_weights:
        return np.ones(weights.shape, dtype=bool)
    return weights != 0


def _block_size(limit: int, period_steps: int, n_steps: int, max_block: int) -> int:
    """Largest K <= limit that divides or is a multiple of the period and divides n_steps."""
    limit = max(1, min(limit, max_block))
    for k in range(limit, 0, -1):
        if (period_steps % k == 0 or k % period_steps == 0) and n_steps % k == 0:
            return k
    return 1


def plan_delays(
    network,
    dt: float,
    period_steps: int,
    n_steps: int,
    *,
    traced_delays: bool = False,
    traced_weights: bool = False,
    max_block: int = 64,
    max_buffer_gib: float | None = None,
) -> DelayPlan:
    """Size the block and the ring buffer from concrete delays.

    **Arguments:**

    - `network`: the `Network` (its speed and tract lengths must be concrete).
    - `dt`: the time step in ms.
    - `period_steps`: steps per monitor sample.
    - `n_steps`: total number of steps.
    - `traced_delays`, `traced_weights`: whether the speed / tract lengths, or
      the weights, will be traced parameters (headroom and all edges).
    - `max_block`: the largest block size considered.
    - `max_buffer_gib`: the largest ring buffer allowed, in GiB (None: no limit).

    **Raises:** `ValueError` when the ring buffer would need more than
    `max_buffer_gib` GiB, naming the size, the speed, the longest tract and `dt`.
    """
    if not network.has_delays:
        k = _block_size(period_steps, period_steps, n_steps, max_block)
        return DelayPlan(k, 0, 0, 0, True, False)
    weights = np.asarray(network.connectome.weights)
    steps = np.asarray(network.delays_ms()) / dt
    mask = _edge_mask(weights, traced_weights)
    if not mask.any():
        k = _block_size(period_steps, period_steps, n_steps, max_block)
        return DelayPlan(k, 0, 0, 0, True, False)
    interpolated = network.delays == "interpolated"
    if interpolated:
        base = np.floor(steps[mask]).astype(int)
        newest = np.maximum(base, 1)
        oldest = int(base.max()) + 1
        zero = base == 0
    else:
        base = np.rint(steps[mask]).astype(int)
        newest = base[base >= 1] if (base >= 1).any() else np.array([1])
        oldest = int(base.max())
        zero = base == 0
        rounded_away = zero & (steps[mask] > 0)
        if rounded_away.any():
            warnings.warn(
                f"{int(rounded_away.sum())} weighted connection(s) have a conduction delay below "
                f"half a time step (dt = {dt} ms) and act instantaneously; use a smaller dt or "
                "delays='interpolated' to resolve them.",
                stacklevel=3,
            )
    sources = None
    if not traced_weights:
        sources = tuple(tuple(int(j) for j in np.flatnonzero(row)) for row in mask)
    if traced_delays:
        lo = max(1, int(newest.min()) // 2)
        block = _block_size(lo, period_steps, n_steps, max_block)
        hi = 2 * max(oldest, 1) + 1
        length = _round_up(hi + block + 2, block)
        _check_buffer_size(network, dt, steps, mask, length, max_buffer_gib, traced=True)
        return DelayPlan(block, length, block, hi, False, True, sources)
    if oldest < 1:
        # every weighted edge rounds to zero: a delay-free network in effect
        k = _block_size(period_steps, period_steps, n_steps, max_block)
        return DelayPlan(k, 0, 0, 0, True, False)
    block = _block_size(int(newest.min()), period_steps, n_steps, max_block)
    length = _round_up(oldest + block + 2, block)
    _check_buffer_size(network, dt, steps, mask, length, max_buffer_gib, traced=False)
    return DelayPlan(block, length, 1, oldest, bool(zero.any()), False, sources)


def buffer_bytes(network, length: int) -> int:
    """Bytes of the ring buffer of one simulation: `n_regions x 2 length x n_features` floats."""
    itemsize = jnp.dtype(jnp.result_type(float)).itemsize
    return network.n_regions * 2 * int(length) * network.n_features * itemsize


def _check_buffer_size(
    network,
    dt: float,
    steps: np.ndarray,
    mask: np.ndarray,
    length: int,
    max_buffer_gib: float | None,
    *,
    traced: bool,
) -> None:
    """Refuse a ring buffer above `max_buffer_gib` GiB, before it is allocated."""
    if max_buffer_gib is None:
        return
    size = buffer_bytes(network, length)
    if size <= max_buffer_gib * 2**30:
        return
    edge = np.unravel_index(int(np.argmax(np.where(mask, steps, -np.inf))), steps.shape)
    tract = float(np.asarray(network.connectome.tract_lengths)[edge])
    speed = float(np.asarray(network.speed))
    room = " (twice the longest delay: room for traced delays)" if traced else ""
    raise ValueError(
        f"delay buffer: {size / 2**30:.4g} GiB would be needed, more than max_buffer_gib = "
        f"{max_buffer_gib:g} GiB. The longest weighted delay, {tract:.4g} mm / {speed:.4g} m/s "
        f"(tract length / speed) = {tract / speed:.4g} ms, is {steps[edge]:.4g} steps of dt = "
        f"{dt:g} ms, and the ring buffer keeps {network.n_regions} regions x 2 x {length} "
        f"steps{room} x {network.n_features} coupling feature(s). Check the speed (m/s, "
        "which is mm/ms: 1-10 m/s is typical) and the tract lengths (mm), use a larger dt, "
        "or allow a bigger buffer with Simulator(max_buffer_gib=...)."
    )


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class DelayIndex(NamedTuple):
    """Where and how each edge reads the buffer, from the delays alone (JAX arrays).

    Buffered edges are stored per target region in slots: `sources[i, m]` is
    the m-th source of target i (padded to the largest in-degree). Weights
    enter through multiplicative factors, so one index serves every set of
    weights (for example a batch of simulations that share their delays).

    - `sources`: `(n, M)` int numpy array (static), the source of each slot.
    - `valid`: `(n, M)` bool numpy array, False for padding.
    - `steps`: `(n, M)` int, the delay in steps of the main read.
    - `lo_factor`: `(n, M)` factor of the weight at the main read.
    - `hi_factor`: `(n, M)` factor at the read one step older (interpolated
      delays), or None.
    - `inst_factor`: `(n, n)` factor of the weight acting instantaneously, or
      None when no edge does.
    """

    sources: np.ndarray
    valid: np.ndarray
    steps: Int
    lo_factor: Float
    hi_factor: Float | None
    inst_factor: Float | None


class DelayWeights(NamedTuple):
    """The weights split by how they are read: `(n, M)` slots and `(n, n)` instantaneous."""

    lo: Float
    hi: Float | None
    inst: Float | None


def _slots(plan: DelayPlan, n: int) -> tuple[np.ndarray, np.ndarray]:
    if plan.sources is None:
        return np.broadcast_to(np.arange(n), (n, n)).copy(), np.ones((n, n), bool)
    width = max(1, max(len(s) for s in plan.sources))
    sources = np.zeros((n, width), dtype=np.int32)
    valid = np.zeros((n, width), dtype=bool)
    for i, row in enumerate(plan.sources):
        sources[i, : len(row)] = row
        valid[i, : len(row)] = True
    return sources, valid


def delay_index(network, dt: float, plan: DelayPlan) -> DelayIndex:
    """The buffer reads of every edge (traceable in the speed and tract lengths)."""
    n = network.n_regions
    steps = network.delays_ms() / dt
    if plan.traced:
        steps = jnp.clip(steps, plan.min_steps, plan.max_steps - 1)
    sources, valid = _slots(plan, n)
    s_slot = steps[np.arange(n)[:, None], sources]
    one = jnp.ones_like(s_slot)
    if network.delays == "interpolated":
        base = jnp.floor(steps)
        inst = jnp.where(base >= 1, 0.0, 1.0 - (steps - base)) if plan.has_inst else None
        base_slot = jnp.floor(s_slot)
        alpha = s_slot - base_slot
        base_i = base_slot.astype(jnp.int32)
        # an edge below one step: (1 - alpha) acts now, alpha is read one step back
        buffered = base_i >= 1
        lo = jnp.where(buffered, one - alpha, alpha)
        hi = jnp.where(buffered, alpha, 0.0)
        return DelayIndex(sources, valid, jnp.maximum(base_i, 1), lo, hi, inst)
    inst = jnp.where(jnp.round(steps) >= 1, 0.0, 1.0) if plan.has_inst else None
    rounded = jnp.round(s_slot).astype(jnp.int32)
    lo = jnp.where(rounded >= 1, one, 0.0)
    return DelayIndex(
        sources, valid, jnp.clip(rounded, plan.block, plan.length - 2), lo, None, inst
    )


def delay_weights(weights: Float, index: DelayIndex) -> DelayWeights:
    """Weights per slot and instantaneous weights for one weight matrix `(n, n)`."""
    n = weights.shape[0]
    w_slot = jnp.where(index.valid, weights[np.arange(n)[:, None], index.sources], 0.0)
    hi = None if index.hi_factor is None else w_slot * index.hi_factor
    inst = None if index.inst_factor is None else weights * index.inst_factor
    return DelayWeights(w_slot * index.lo_factor, hi, inst)


def history_steps(plan: DelayPlan) -> int:
    """How many past steps (before t = 0) the buffer holds."""
    return max(plan.length - 1, 0)
