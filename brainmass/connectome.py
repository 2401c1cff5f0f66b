"""Connectome: who is wired to whom, how strongly, and over which distance.

A `Connectome` holds the structural connectivity of a whole-brain network:

- `weights` (n_regions, n_regions), dimensionless. `weights[i, j]` is the
  strength of the connection from region `j` to region `i` (row = target,
  column = source, the convention of TVB and of `network.py`).
- `tract_lengths` (n_regions, n_regions), in millimetres; divided by a
  conduction speed they give the coupling delays.
- `labels`, one name per region.
- `centres` (n_regions, 3), region positions in millimetres, or `None`.

It is an equinox Module (a pytree), so it can pass through `jit`, `vmap` and
`grad` like any other parameter. Build one with `Connectome.from_arrays`, read
one with `Connectome.load` (a TVB connectivity `.zip`, or an `.npz` written by
`Connectome.save`), or make the deterministic default with
`Connectome.synthetic`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._connectome import read_arrays, synthetic_arrays, write_npz
from ._custom_types import Array, Centres, TractLengths, Weights
from .units import MM, to_canonical

__all__ = ["Connectome", "NORMALIZATIONS"]

NORMALIZATIONS: tuple[str, ...] = ("max", "row_sum", "spectral_radius")
"""The weight normalisations understood by `Connectome.normalized`."""

Normalization = Literal["max", "row_sum", "spectral_radius"]


@final
class Connectome(eqx.Module):
    """Structural connectivity of a whole-brain network.

    Build it with `Connectome.from_arrays`, `Connectome.load` or
    `Connectome.synthetic`; these validate their inputs. A connectome is
    immutable: `normalized` returns a new one, and `eqx.tree_at` replaces a
    field.

    **Fields:**

    - `weights`: float array (n_regions, n_regions), dimensionless;
      `weights[i, j]` is the connection from source `j` to target `i`.
    - `tract_lengths`: float array (n_regions, n_regions), in mm.
    - `labels`: tuple of n_regions unique region names (static: not a leaf).
    - `centres`: float array (n_regions, 3) of region positions in mm, or `None`.
    """

    weights: Weights
    tract_lengths: TractLengths
    labels: tuple[str, ...] = eqx.field(static=True)
    centres: Centres | None = None

    def __check_init__(self):
        # Shape invariants only (they hold for tracers too); values are checked
        # by the constructors, which see concrete arrays.
        w_shape = np.shape(self.weights)
        if len(w_shape) != 2 or w_shape[0] != w_shape[1]:
            raise ValueError(f"weights: expected a square 2-D array, got shape {w_shape}.")
        if np.shape(self.tract_lengths) != w_shape:
            raise ValueError(
                f"tract_lengths: expected shape {w_shape} (the shape of weights), "
                f"got {np.shape(self.tract_lengths)}."
            )
        if len(self.labels) != w_shape[0]:
            raise ValueError(
                f"labels: expected {w_shape[0]} labels (one per region), got {len(self.labels)}."
            )
        if self.centres is not None and np.shape(self.centres) != (w_shape[0], 3):
            raise ValueError(
                f"centres: expected shape ({w_shape[0]}, 3), got {np.shape(self.centres)}."
            )

    def __repr__(self) -> str:
        labels = (
            self.labels if self.n_regions <= 6 else (*self.labels[:3], "...", *self.labels[-2:])
        )
        shown = ", ".join(labels)
        centres = "None" if self.centres is None else eqx.tree_pformat(self.centres)
        return (
            f"Connectome(n_regions={self.n_regions}, weights={eqx.tree_pformat(self.weights)}, "
            f"tract_lengths={eqx.tree_pformat(self.tract_lengths)} mm, labels=({shown}), "
            f"centres={centres})"
        )

    @property
    def n_regions(self) -> int:
        """The number of regions (nodes) of the network."""
        return len(self.labels)

    def summary(self) -> str:
        """Describe the connectome in a few lines: size, density, weight and length ranges."""
        n = self.n_regions
        w = np.asarray(self.weights)
        lengths = np.asarray(self.tract_lengths)
        off = ~np.eye(n, dtype=bool)
        nonzero = (w != 0) & off
        density = float(nonzero.sum() / max(off.sum(), 1))
        shown = ", ".join(self.labels[:4]) + (", ..." if n > 4 else "")
        lines = [
            f"Connectome with {n} regions ({shown})",
            f"  weights: {density:.0%} of off-diagonal entries nonzero, "
            f"range [{w.min():.4g}, {w.max():.4g}], "
            f"{'symmetric' if np.array_equal(w, w.T) else 'asymmetric'}",
        ]
        if nonzero.any():
            tl = lengths[nonzero]
            lines.append(
                f"  tract lengths of connected pairs: {tl.min():.3g} to {tl.max():.3g} mm "
                f"(median {np.median(tl):.3g} mm)"
            )
        lines.append(f"  centres: {'none' if self.centres is None else 'given (mm)'}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ build

    @classmethod
    def from_arrays(
        cls,
        weights: Any,
        tract_lengths: Any,
        labels: Sequence[str] | None = None,
        centres: Any = None,
        *,
        normalize: Normalization | None = None,
    ) -> Connectome:
        """Build a connectome from arrays, validating them.

        **Arguments:**

        - `weights`: array-like (n_regions, n_regions), nonnegative and finite;
          `weights[i, j]` is the connection from source `j` to target `i`. The
          diagonal (self-connections) is kept as given.
        - `tract_lengths`: array-like (n_regions, n_regions), nonnegative and
          finite, in mm; or a brainunit length quantity (converted to mm).
        - `labels`: n_regions unique region names; default `"region000"`,
          `"region001"`, ...
        - `centres`: array-like (n_regions, 3) in mm, or a brainunit length
          quantity, or `None`.
        - `normalize`: `None` (keep the weights as given) or one of
          `NORMALIZATIONS` (see `Connectome.normalized`).

        **Returns:** a `Connectome` holding float arrays of JAX's default float
        dtype.

        **Raises:** `ValueError` naming the argument, what was expected and what
        was given, for: weights not square 2-D; tract_lengths of another shape;
        NaN, infinite or negative weights or tract lengths; a quantity of the
        wrong dimension; the wrong number of labels, or duplicates; centres not
        (n_regions, 3) or not finite. Value checks are skipped for traced
        (abstract) inputs, shape checks never are.
        """
        weights = _as_float(weights, None, "weights")
        tract_lengths = _as_float(tract_lengths, MM, "tract_lengths")
        w_shape = tuple(weights.shape)
        if len(w_shape) != 2 or w_shape[0] != w_shape[1] or w_shape[0] == 0:
            raise ValueError(
                f"weights: expected a square 2-D array (n_regions, n_regions) with "
                f"n_regions >= 1, got shape {w_shape}."
            )
        n = w_shape[0]
        if tuple(tract_lengths.shape) != w_shape:
            raise ValueError(
                f"tract_lengths: expected shape {w_shape} (the shape of weights), "
                f"got {tuple(tract_lengths.shape)}."
            )
        _check_finite_nonnegative(weights, "weights")
        _check_finite_nonnegative(tract_lengths, "tract_lengths")

        labels = _check_labels(labels, n)

        if centres is not None:
            centres = _as_float(centres, MM, "centres")
            if tuple(centres.shape) != (n, 3):
                raise ValueError(
                    f"centres: expected shape ({n}, 3) (x, y, z in mm for each region), "
                    f"got {tuple(centres.shape)}."
                )
            if _is_concrete(centres) and not np.all(np.isfinite(np.asarray(centres))):
                raise ValueError(
                    "centres: expected finite coordinates, got NaN or infinite values."
                )

        if normalize is not None and normalize not in NORMALIZATIONS:
            raise ValueError(_unknown_normalization(normalize, "normalize"))

        conn = cls(weights=weights, tract_lengths=tract_lengths, labels=labels, centres=centres)
        return conn if normalize is None else conn.normalized(normalize)

    # ------------------------------------------------------------- normalise

    def normalized(self, method: Normalization) -> Connectome:
        r"""Return a copy of this connectome with rescaled weights.

        **Arguments:**

        - `method`: one of
            - `"max"`: $W / \max_{ij} W_{ij}$, so the largest weight is 1;
            - `"row_sum"`: $W_{ij} / \sum_k W_{ik}$, so every row (the input to
              one region) sums to 1; rows that are all zero stay zero;
            - `"spectral_radius"`: $W / \rho(W)$, with $\rho$ the largest
              absolute eigenvalue, so the linearised network is marginally
              stable at coupling 1. Needs concrete (not traced) weights.

        **Returns:** a new `Connectome`; tract lengths, labels and centres are
        unchanged.

        **Raises:** `ValueError` for an unknown method, or when the weights are
        all zero (or, for `"spectral_radius"`, have spectral radius 0).
        """
        if method not in NORMALIZATIONS:
            raise ValueError(_unknown_normalization(method, "method"))
        w = self.weights
        if _is_concrete(w):
            # Concrete weights: float64 NumPy, so that e.g. the maximum becomes exactly 1.
            new = _normalize_numpy(np.asarray(w, dtype=np.float64), method)
        elif method == "max":
            new = w / jnp.max(w)
        elif method == "row_sum":
            row_sum = jnp.sum(w, axis=1, keepdims=True)
            new = w / jnp.where(row_sum > 0, row_sum, 1.0)
        else:
            raise ValueError(
                "normalized('spectral_radius'): needs concrete weights (it calls "
                "numpy.linalg.eigvals); normalise before jit/vmap/grad."
            )
        return eqx.tree_at(lambda c: c.weights, self, jnp.asarray(new, dtype=w.dtype))

    # ------------------------------------------------------------- synthetic

    @classmethod
    def synthetic(
        cls,
        n_regions: int = 68,
        seed: int = 0,
        *,
        normalize: Normalization | None = "max",
    ) -> Connectome:
        r"""Make a deterministic, realistic-looking two-hemisphere connectome.

        Region centres lie on two mirrored ellipsoidal half-shells of human-brain
        size (about 140 x 170 x 110 mm; left hemisphere at x < 0, right at x > 0),
        spread evenly by a Fibonacci spiral; they depend on `n_regions` only.
        Region `i` (label `"L.."`) and region `i + n_regions // 2` (`"R.."`) are
        homotopic mirror images.

        Weights follow the exponential distance rule of Ercsey-Ravasz et al.
        (2013, Neuron 80:184) with lognormal variability,
        $w_{ij} = e^{-d_{ij}/\lambda}\,\epsilon_{ij}$, $\lambda = 30$ mm,
        $\log\epsilon_{ij} \sim \mathcal{N}(0, 1)$; heterotopic
        inter-hemispheric connections are damped by a factor 0.1, homotopic ones
        are as strong as a typical strong intra-hemispheric connection. The
        weakest connections are set to zero so that about 40 % of the pairs are
        connected (homotopic pairs always are). The matrix is symmetric with a
        zero diagonal, then normalised.

        Tract lengths are the Euclidean centre distances times a tortuosity
        factor drawn uniformly in [1.2, 1.5] per pair (symmetric), never shorter
        than 5 mm (so no delay is below 1 ms at 5 m/s); the diagonal is zero.

        All randomness comes from `numpy.random.default_rng(seed)`: the same
        arguments always give the same arrays.

        **Arguments:**

        - `n_regions`: an even number >= 2 (half per hemisphere).
        - `seed`: the seed of the weight and tortuosity variability.
        - `normalize`: see `Connectome.normalized`; `None` keeps the raw weights.

        **Returns:** a `Connectome` with labels `"L00".."L33", "R00".."R33"`
        (for 68 regions), tract lengths and centres in mm.

        **Raises:** `ValueError` when `n_regions` is not an even integer >= 2.
        """
        weights, tract_lengths, labels, centres = synthetic_arrays(n_regions, seed)
        return cls.from_arrays(weights, tract_lengths, labels, centres, normalize=normalize)

    # ------------------------------------------------------------------- I/O

    @classmethod
    def load(cls, path: str | os.PathLike, *, normalize: Normalization | None = None) -> Connectome:
        """Read a connectome from a TVB connectivity `.zip` or a brainmass `.npz`.

        A TVB zip must hold `weights.txt` (n x n), `tract_lengths.txt` (n x n,
        mm) and `centres.txt` (one line `label x y z` per region, mm); the
        labels come from `centres.txt`. Members may sit in a sub-folder; each is
        matched by its base name and must occur exactly once. Other members
        (`areas.txt`, `cortical.txt`, ...) are ignored. Members are read into
        memory by name; nothing is extracted to disk.

        An `.npz` is one written by `Connectome.save`: arrays `weights`,
        `tract_lengths`, `labels` (unicode strings) and optionally `centres`.
        It is read with `allow_pickle=False`.

        **Arguments:**

        - `path`: the file, ending in `.zip` or `.npz`.
        - `normalize`: `None` or one of `NORMALIZATIONS`, applied after reading.

        **Returns:** the validated `Connectome`.

        **Raises:** `FileNotFoundError` when `path` does not exist; `ValueError`
        for another suffix, or a missing or malformed member or key (named in
        the message), or invalid contents (see `from_arrays`).
        """
        path = Path(path)
        arrays = read_arrays(path)
        try:
            return cls.from_arrays(**arrays, normalize=normalize)
        except ValueError as err:
            raise ValueError(f"{path.name}: {err}") from err

    def save(self, path: str | os.PathLike) -> Path:
        """Write this connectome to an `.npz` file that `Connectome.load` reads back exactly.

        Arrays are stored as they are held (same dtype), labels as a numpy
        unicode array, `centres` only when present; nothing is pickled.

        **Arguments:**

        - `path`: the file to write; must end in `.npz`.

        **Returns:** the path written, as a `Path`.

        **Raises:** `ValueError` when `path` does not end in `.npz`.
        """
        return write_npz(self, path)


# -------------------------------------------------------------------- checks


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _as_float(value: Any, unit: Any, name: str) -> Array:
    arr = to_canonical(value, unit, name)
    if _is_concrete(arr) and not jnp.issubdtype(arr.dtype, jnp.floating):
        raise ValueError(f"{name}: expected a real-valued array, got dtype {arr.dtype}.")
    return jnp.asarray(arr, dtype=jnp.result_type(float))


def _check_finite_nonnegative(arr: Array, name: str) -> None:
    if not _is_concrete(arr):
        return
    values = np.asarray(arr)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: expected finite values, got {int(bad.sum())} NaN or infinite "
            f"entries (first at [{i}, {j}]: {values[i, j]})."
        )
    negative = values < 0
    if negative.any():
        i, j = np.argwhere(negative)[0]
        raise ValueError(
            f"{name}: expected nonnegative values, got {int(negative.sum())} negative "
            f"entries (first at [{i}, {j}]: {values[i, j]:.6g})."
        )


def _normalize_numpy(w: np.ndarray, method: str) -> np.ndarray:
    if method == "max":
        scale = w.max()
        if not scale > 0:
            raise ValueError(
                "normalized('max'): the weights are all zero; there is no maximum to divide by."
            )
        return w / scale
    if method == "row_sum":
        row_sum = w.sum(axis=1, keepdims=True)
        return w / np.where(row_sum > 0, row_sum, 1.0)
    radius = float(np.max(np.abs(np.linalg.eigvals(w))))
    if not radius > 0:
        raise ValueError(
            "normalized('spectral_radius'): the spectral radius of the weights is 0 "
            "(all-zero or nilpotent matrix); there is nothing to scale."
        )
    return w / radius


def _check_labels(labels: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if labels is None:
        width = max(3, len(str(n - 1)))
        return tuple(f"region{i:0{width}d}" for i in range(n))
    if isinstance(labels, (str, bytes)):
        raise ValueError(f"labels: expected a sequence of {n} strings, got a single string.")
    labels = tuple(np.asarray(labels).tolist()) if isinstance(labels, np.ndarray) else tuple(labels)
    if len(labels) != n:
        raise ValueError(f"labels: expected {n} labels (one per region), got {len(labels)}.")
    not_str = [lab for lab in labels if not isinstance(lab, str)]
    if not_str:
        raise ValueError(
            f"labels: expected strings, got {not_str[0]!r} ({type(not_str[0]).__name__})."
        )
    labels = tuple(str(lab) for lab in labels)
    if len(set(labels)) != n:
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        raise ValueError(f"labels: expected unique names, got duplicates {dup[:5]}.")
    return labels


def _unknown_normalization(method: Any, name: str) -> str:
    options = ", ".join(repr(m) for m in NORMALIZATIONS)
    return f"{name}: unknown normalisation {method!r}; expected one of {options}."
