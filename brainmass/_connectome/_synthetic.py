"""The arrays of `Connectome.synthetic`: a deterministic two-hemisphere connectome.

See `Connectome.synthetic` for the model (exponential distance rule of
Ercsey-Ravasz et al. 2013, lognormal variability, tortuous tract lengths).
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_arrays"]

_SYNTH_LAMBDA_MM = 30.0  # length constant of the exponential distance rule
_SYNTH_INTER_FACTOR = 0.1  # damping of heterotopic inter-hemispheric connections
_SYNTH_DENSITY = 0.4  # fraction of region pairs kept (homotopic pairs always kept)
_SYNTH_MIN_LENGTH_MM = 5.0  # shortest tract: 1 ms at 5 m/s
_SYNTH_SEMI_AXES_MM = (65.0, 85.0, 55.0)  # lateral half-width, half-length, half-height
_SYNTH_MIDLINE_GAP_MM = 4.0  # distance of the medial surface from x = 0
_SYNTH_Z_OFFSET_MM = 10.0  # cortex centroid above the origin (AC)


def synthetic_arrays(
    n_regions: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Weights, tract lengths, labels and centres of `Connectome.synthetic(n_regions, seed)`.

    **Returns:** `(weights, tract_lengths, labels, centres)`: raw (not
    normalised) symmetric weights (n_regions, n_regions), dimensionless; tract
    lengths (n_regions, n_regions) in mm; n_regions labels `"L.."` then `"R.."`;
    centres (n_regions, 3) in mm.

    **Raises:** `ValueError` when `n_regions` is not an even integer >= 2.
    """
    if isinstance(n_regions, bool) or not isinstance(n_regions, (int, np.integer)):
        raise ValueError(f"n_regions: expected an even integer >= 2, got {n_regions!r}.")
    if n_regions < 2 or n_regions % 2:
        raise ValueError(
            f"n_regions: expected an even integer >= 2 (two hemispheres of equal size), "
            f"got {n_regions}."
        )
    n = int(n_regions)
    half = n // 2
    rng = np.random.default_rng(seed)

    centres = _hemisphere_centres(half)
    diff = centres[:, None, :] - centres[None, :, :]
    distance = np.sqrt(np.sum(diff**2, axis=-1))

    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    left = np.arange(n) < half
    inter = left[:, None] != left[None, :]
    homotopic = np.zeros((n, n), dtype=bool)
    idx = np.arange(half)
    homotopic[idx, idx + half] = homotopic[idx + half, idx] = True

    noise = rng.lognormal(mean=0.0, sigma=1.0, size=(n, n))
    raw = np.exp(-distance / _SYNTH_LAMBDA_MM) * noise
    raw = np.where(inter, _SYNTH_INTER_FACTOR * raw, raw)
    intra_values = raw[upper & ~inter]
    strong = np.quantile(intra_values, 0.75) if intra_values.size else 1.0
    raw = np.where(homotopic, strong * noise, raw)

    candidates = raw[upper]
    threshold = np.quantile(candidates, 1.0 - _SYNTH_DENSITY)
    keep = upper & ((raw >= threshold) | homotopic)
    weights = np.where(keep, raw, 0.0)
    weights = weights + weights.T

    tortuosity = rng.uniform(1.2, 1.5, size=(n, n))
    tortuosity = np.triu(tortuosity, k=1)
    tortuosity = tortuosity + tortuosity.T
    tract_lengths = np.maximum(distance * tortuosity, _SYNTH_MIN_LENGTH_MM)
    np.fill_diagonal(tract_lengths, 0.0)

    width = max(2, len(str(half - 1)))
    labels = [f"L{i:0{width}d}" for i in range(half)] + [f"R{i:0{width}d}" for i in range(half)]
    return weights, tract_lengths, labels, centres


def _hemisphere_centres(half: int) -> np.ndarray:
    """Centres (2 * half, 3) in mm: left half-shell, then its mirror image on the right."""
    k = np.arange(half) + 0.5
    ux = k / half  # uniform in |x| -> uniform in area on the half-sphere
    radius = np.sqrt(1.0 - ux**2)
    phi = k * np.pi * (3.0 - np.sqrt(5.0))  # golden angle
    ax, ay, az = _SYNTH_SEMI_AXES_MM
    x = -(_SYNTH_MIDLINE_GAP_MM + ax * ux)
    y = ay * radius * np.cos(phi)
    z = az * radius * np.sin(phi) + _SYNTH_Z_OFFSET_MM
    left = np.stack([x, y, z], axis=1)
    right = left * np.array([-1.0, 1.0, 1.0])
    return np.concatenate([left, right], axis=0)
