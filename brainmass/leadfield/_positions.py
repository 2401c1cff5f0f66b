r"""Sensor positions on a spherical head: the 10-20 and 10-10 systems, an MEG helmet.

The built-in electrode table needs no MNE. It is the idealised spherical
10-20 / 10-10 system (Oostenveld & Praamstra 2001, Clin. Neurophysiol.
112:713) with the convention of BESA and EEGLAB's head plots: the head is a
sphere of radius `radius` centred at `origin`, Cz at its top, and the
circumference through Fpz, T7, Oz and T8 (10 % above the nasion, the
preauricular points and the inion) is its equator z = 0, so the nasion and
the ears lie 22.5 degrees below it. The midline arc Fpz - Cz - Oz is divided
in steps of 10 % (22.5 degrees: Fz and Pz at 45 degrees from Cz), the
circumference in steps of 5 % (18 degrees: Fp1 at 18 degrees left of Fpz,
F7 at 54, T7 at 90); each anterior-posterior level (AF, F, FC, C, CP, P, PO)
is the arc on the sphere through its left circumference point, its midline
point and its right circumference point, divided into four equal angles
(F7, F5, F3, F1, Fz, F2, F4, F6, F8). This puts F3 at 60 degrees from Cz,
39 degrees left of the midline, as in BESA; the directions agree with MNE's
template-head montage (seen from a sphere fitted to it) within 12 degrees.
The old names T3, T4, T5, T6 are accepted for T7, T8, P7, P8.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..checks import check_int
from ..units import MM, to_canonical, to_float
from ._checks import as_origin

__all__ = [
    "STANDARD_1010",
    "STANDARD_1020",
    "ALIASES",
    "centres_in_sphere",
    "meg_helmet",
    "standard_1010",
    "standard_1020",
]

STANDARD_1020: tuple[str, ...] = (
    "Fp1", "Fpz", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz",
    "C4", "T8", "P7", "P3", "Pz", "P4", "P8", "O1", "Oz", "O2",
)  # fmt: skip
"""The 21 electrodes of the 10-20 system (19 plus Fpz and Oz), modern names."""

STANDARD_1010: tuple[str, ...] = (
    "Fp1", "Fpz", "Fp2",
    "AF7", "AF5", "AF3", "AF1", "AFz", "AF2", "AF4", "AF6", "AF8",
    "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8",
    "FT7", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8",
    "T7", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "T8",
    "TP7", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "TP8",
    "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8",
    "PO7", "PO5", "PO3", "PO1", "POz", "PO2", "PO4", "PO6", "PO8",
    "O1", "Oz", "O2",
)  # fmt: skip
"""The 69 electrodes of the built-in 10-10 table, front to back, left to right."""

ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
"""Old 10-20 names and the modern (10-10) names they stand for."""

# the seven levels between Fp and O: (prefix of the inner points, left end name,
# azimuth of the left end in degrees from the front, midline name, midline fraction)
_LEVELS = (
    ("AF", "AF7", 36.0, "AFz", 0.2),
    ("F", "F7", 54.0, "Fz", 0.3),
    ("FC", "FT7", 72.0, "FCz", 0.4),
    ("C", "T7", 90.0, "Cz", 0.5),
    ("CP", "TP7", 108.0, "CPz", 0.6),
    ("P", "P7", 126.0, "Pz", 0.7),
    ("PO", "PO7", 144.0, "POz", 0.8),
)
_CIRCUMFERENCE_POLAR = np.deg2rad(90.0)


def _circumference(azimuth_deg: float) -> np.ndarray:
    """Unit vector on the 10 % circumference; azimuth from the front, positive to the right."""
    phi = np.deg2rad(azimuth_deg)
    s = np.sin(_CIRCUMFERENCE_POLAR)
    return np.array([s * np.sin(phi), s * np.cos(phi), np.cos(_CIRCUMFERENCE_POLAR)])


def _midline(fraction: float) -> np.ndarray:
    """Unit vector at `fraction` of the arc nasion (0) -> vertex -> inion (1).

    Fpz (0.1) and Oz (0.9) lie on the equator, Cz (0.5) at the top: 10 % of
    the arc is 22.5 degrees.
    """
    alpha = np.pi * (fraction - 0.1) / 0.8
    return np.array([0.0, np.cos(alpha), np.sin(alpha)])


def _mirror(name: str, index: int) -> str:
    """The right-hemisphere name of a left one: odd number k -> k + 1 (F7 -> F8, F3 -> F4)."""
    return name[:index] + str(int(name[index:]) + 1)


def _unit_table() -> dict[str, np.ndarray]:
    """Every 10-10 electrode as a unit vector, keyed by its name."""
    table: dict[str, np.ndarray] = {}
    flip = np.array([-1.0, 1.0, 1.0])
    for name, az in (("Fp1", -18.0), ("O1", -162.0)):
        table[name] = _circumference(az)
        table[_mirror(name, len(name) - 1)] = _circumference(az) * flip
    table["Fpz"] = _midline(0.1)
    table["Oz"] = _midline(0.9)
    for prefix, left_name, az, mid_name, fraction in _LEVELS:
        left = _circumference(-az)
        mid = _midline(fraction)
        right = left * flip
        # the circle through left, mid and right: its plane contains the x axis
        normal = np.cross(left - mid, right - mid)
        normal /= np.linalg.norm(normal)
        centre = np.dot(normal, left) * normal
        u = (mid - centre) / np.linalg.norm(mid - centre)
        v = np.array([1.0, 0.0, 0.0])
        rho = np.linalg.norm(mid - centre)
        end = np.arctan2(np.dot(left - centre, v), np.dot(left - centre, u))  # < 0
        table[left_name] = left
        table[_mirror(left_name, len(left_name) - 1)] = right
        table[mid_name] = mid
        for k, number in ((1, 5), (2, 3), (3, 1)):
            angle = end * (1.0 - k / 4.0)
            point = centre + rho * (np.cos(angle) * u + np.sin(angle) * v)
            table[f"{prefix}{number}"] = point
            table[f"{prefix}{number + 1}"] = point * flip
    return table


def _canonical_names(table: dict[str, np.ndarray]) -> dict[str, str]:
    lookup = {name.lower(): name for name in table}
    lookup.update({old.lower(): new for old, new in ALIASES.items()})
    return lookup


def _positions(
    names: Sequence[str] | None, default: Sequence[str], radius: Any, origin: Any
) -> tuple[tuple[str, ...], np.ndarray]:
    r = to_float(radius, MM, "radius")
    if not r > 0:
        raise ValueError(f"radius: expected a head radius > 0 mm, got {r}.")
    centre = np.asarray(as_origin(origin), dtype=float)
    table = _unit_table()
    lookup = _canonical_names(table)
    if names is None:
        names = default
    if isinstance(names, str):
        raise ValueError(
            f"names: expected a sequence of electrode names, got the string {names!r}."
        )
    out_names = []
    for name in names:
        key = str(name).lower()
        if key not in lookup:
            raise ValueError(
                f"names: unknown electrode {name!r}; expected 10-10 names such as "
                f"{', '.join(STANDARD_1020[:6])} (the known names: {', '.join(sorted(table))})."
            )
        out_names.append(lookup[key])
    if len(set(out_names)) != len(out_names):
        raise ValueError(f"names: expected distinct electrodes, got {list(names)!r}.")
    positions = (
        np.stack([centre + r * table[n] for n in out_names]) if out_names else np.zeros((0, 3))
    )
    return tuple(out_names), positions


def standard_1020(
    names: Sequence[str] | None = None, *, radius: Any = 90.0, origin: Any = (0.0, 0.0, 0.0)
) -> tuple[tuple[str, ...], np.ndarray]:
    """Electrode positions of the 10-20 system on a spherical head (no MNE needed).

    The idealised spherical construction described in `brainmass.leadfield`
    (Oostenveld & Praamstra 2001), in the brainmass head frame: x towards the
    right ear, y towards the nasion, z up; Cz at the top, the circumference
    Fpz - T8 - Oz - T7 on the equator of the sphere (see
    `brainmass.leadfield._positions` for the construction). The positions lie
    exactly on the sphere, as `eeg_sphere` assumes. (MNE's template-head
    montages: `mne_montage`.)

    **Arguments:**

    - `names`: electrode names (case-insensitive; any 10-10 name, and T3, T4,
      T5, T6); default the 21 of `STANDARD_1020` (Fp1, Fpz, Fp2, F7, F3, Fz,
      F4, F8, T7, C3, Cz, C4, T8, P7, P3, Pz, P4, P8, O1, Oz, O2).
    - `radius`: head radius in mm (or a quantity), default 90 mm (an adult
      head; MNE's default sphere is 90 mm too).
    - `origin`: `(3,)` the head-sphere centre in mm.

    **Returns:** `(names, positions)`: the canonical names (tuple of str) and
    a NumPy array `(n, 3)` of positions in mm.

    **Raises:** `ValueError` for an unknown or repeated name, or a
    non-positive radius.
    """
    return _positions(names, STANDARD_1020, radius, origin)


def standard_1010(
    names: Sequence[str] | None = None, *, radius: Any = 90.0, origin: Any = (0.0, 0.0, 0.0)
) -> tuple[tuple[str, ...], np.ndarray]:
    """Electrode positions of the 10-10 system on a spherical head (69 electrodes).

    As `standard_1020`, with every electrode of the idealised 10-10 system
    from Fp to O (the levels Fp, AF, F, FC/FT, C/T, CP/TP, P, PO, O, each with
    its midline electrode; no electrodes below the 10 % circumference).

    **Arguments:**

    - `names`: electrode names; default all 69 of `STANDARD_1010`, front to
      back, left to right.
    - `radius`: head radius in mm (or a quantity), default 90 mm.
    - `origin`: `(3,)` the head-sphere centre in mm.

    **Returns:** `(names, positions)` as in `standard_1020`.
    """
    return _positions(names, STANDARD_1010, radius, origin)


def meg_helmet(
    n_sensors: int = 64,
    *,
    radius: Any = 115.0,
    min_elevation: float = -20.0,
    origin: Any = (0.0, 0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """An idealised MEG helmet: radial magnetometers spread evenly on a spherical cap.

    Points of a Fibonacci spiral on the sphere of `radius` around `origin`,
    above the elevation `min_elevation` (degrees from the equatorial plane
    z = 0; negative reaches below the ears), each with its outward radial
    normal. A sketch of a whole-head system (real helmets are about 115-125
    mm from the head centre) for `meg_sarvas` without MNE.

    **Arguments:**

    - `n_sensors`: the number of magnetometers (>= 1).
    - `radius`: distance from `origin` in mm (or a quantity), default 115 mm.
    - `min_elevation`: lowest sensor elevation in degrees, in (-90, 90).
    - `origin`: `(3,)` the sphere centre in mm.

    **Returns:** `(positions, orientations)`, NumPy arrays `(n_sensors, 3)`:
    positions in mm and unit normals.
    """
    n_sensors = check_int(n_sensors, "n_sensors", 1)
    r = to_float(radius, MM, "radius")
    if not r > 0:
        raise ValueError(f"radius: expected a radius > 0 mm, got {r}.")
    if not -90.0 < float(min_elevation) < 90.0:
        raise ValueError(f"min_elevation: expected degrees in (-90, 90), got {min_elevation}.")
    z_min = np.sin(np.deg2rad(float(min_elevation)))
    k = np.arange(n_sensors) + 0.5
    z = 1.0 - (1.0 - z_min) * k / n_sensors  # uniform in z: uniform in area on the cap
    rho = np.sqrt(1.0 - z**2)
    phi = k * np.pi * (3.0 - np.sqrt(5.0))
    normals = np.stack([rho * np.sin(phi), rho * np.cos(phi), z], axis=1)
    centre = np.asarray(as_origin(origin), dtype=float)
    return centre[None, :] + r * normals, normals


def centres_in_sphere(
    centres: Any, *, radius: Any = 90.0, fraction: float = 0.8, origin: Any = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """Map region centres into a head sphere: centre the brain, then scale it to fit.

    Connectome centres come in the frame of their atlas (MNI-like for TVB
    data; the synthetic connectome is centred near the origin with its
    cortex extending ~86 mm from it), which rarely matches a head sphere. This
    assumes that the centres' axes already point as in the head frame (x
    right, y anterior, z up) and that the brain should sit in the middle of
    the sphere: it translates the centre of the centres' bounding box to
    `origin`, then scales all centres by one factor so that the farthest lies
    at `fraction * radius` from `origin` (cortex is about 70-80 % of the
    head radius deep in a sphere fitted to the scalp). Relative geometry
    (angles, distance ratios) is kept.

    **Arguments:**

    - `centres`: `(n_regions, 3)` positions in mm (e.g. `Connectome.centres`).
    - `radius`: head-sphere radius in mm (or a quantity), default 90 mm.
    - `fraction`: the farthest centre's distance from `origin` over `radius`,
      in (0, 1), default 0.8.
    - `origin`: `(3,)` the sphere centre in mm.

    **Returns:** a NumPy array `(n_regions, 3)` of positions in mm.
    """
    c = np.asarray(to_canonical(centres, MM, "centres"), dtype=float)
    if c.ndim != 2 or c.shape[1] != 3 or c.shape[0] == 0:
        raise ValueError(f"centres: expected an array of shape (n, 3) in mm, got shape {c.shape}.")
    if not np.all(np.isfinite(c)):
        raise ValueError("centres: expected finite positions, got NaN or infinity.")
    r = to_float(radius, MM, "radius")
    if not r > 0:
        raise ValueError(f"radius: expected a radius > 0 mm, got {r}.")
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"fraction: expected a number in (0, 1), got {fraction}.")
    middle = 0.5 * (c.min(axis=0) + c.max(axis=0))
    rel = c - middle[None, :]
    extent = np.linalg.norm(rel, axis=1).max()
    scale = 1.0 if extent == 0 else float(fraction) * r / extent
    return np.asarray(as_origin(origin), dtype=float)[None, :] + scale * rel
