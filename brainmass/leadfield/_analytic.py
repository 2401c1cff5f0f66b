r"""Analytic lead fields of current dipoles: EEG in an infinite medium and a sphere, MEG (Sarvas).

Every function maps one current dipole per region (at the region centre, with
the given moment direction) to the sensors. Positions are in mm in the head
frame of brainmass (x right, y anterior, z superior; see
`brainmass.leadfield`), converted to metres inside; the lead fields come out
in SI units per unit dipole moment: volt per ampere-metre for EEG, tesla per
ampere-metre for MEG. (1 V/(A m) = 1e-3 uV/(nA m); a cortical patch of 10 nA m
at 1000 V/(A m) gives 10 uV.)

All functions are pure `jax.numpy`: they can be jitted, vmapped and
differentiated with respect to positions, orientations and conductivity.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float
from ..units import MM
from ._checks import (
    CONDUCTIVITY,
    as_orientations,
    as_origin,
    as_points,
    as_positive,
    check_off_origin,
    is_concrete,
    radial,
)

__all__ = ["eeg_infinite_medium", "eeg_sphere", "meg_sarvas", "radial_orientations"]

MU0_OVER_4PI = 1e-7  # mu_0 / (4 pi) in T m / A

_M_PER_MM = 1e-3

LeadField = Float[Array, "n_sensors n_regions"]
Directions = Float[Array, "n 3"]


def radial_orientations(centres: Any, origin: Any = (0.0, 0.0, 0.0)) -> Directions:
    """Unit vectors pointing from `origin` (the sphere centre) to each centre.

    The default dipole orientation of the EEG lead fields. (A radial dipole in
    a spherically symmetric conductor produces no magnetic field outside it,
    so MEG lead fields need other orientations.)

    **Arguments:**

    - `centres`: `(n, 3)` positions in mm (or a length quantity).
    - `origin`: `(3,)` the sphere centre in mm.

    **Returns:** `(n, 3)` unit vectors.

    **Raises:** `ValueError` when a centre lies at `origin`.
    """
    centres = as_points(centres, "centres")
    origin = as_origin(origin)
    check_off_origin(centres, origin, "centres")
    return jax.jit(radial)(centres, origin)


def _moments(orientations: Any, centres: Array, origin: Array) -> Array | None:
    """The dipole moments as given, or None (radial, computed under jit) after checks."""
    moments = as_orientations(orientations, centres)
    if moments is None:
        check_off_origin(centres, origin, "centres")
    return moments


def _distances_ok(sensors: Array, centres: Array, name: str) -> None:
    if not (is_concrete(sensors) and is_concrete(centres)):
        return
    d = np.linalg.norm(np.asarray(sensors)[:, None, :] - np.asarray(centres)[None, :, :], axis=-1)
    if np.any(d == 0):
        i, j = np.argwhere(d == 0)[0]
        raise ValueError(f"{name}: sensor {i} coincides with region centre {j}.")


def eeg_infinite_medium(
    centres: Any,
    orientations: Any,
    sensors: Any,
    *,
    conductivity: Any = 0.33,
    origin: Any = (0.0, 0.0, 0.0),
) -> LeadField:
    r"""EEG lead field of current dipoles in an infinite homogeneous conductor.

    The potential at $\mathbf r$ of a dipole $\mathbf p$ at $\mathbf r_0$ in an
    unbounded medium of conductivity $\sigma$ is

    $$V(\mathbf r) = \frac{\mathbf p \cdot (\mathbf r - \mathbf r_0)}
    {4 \pi \sigma \lvert \mathbf r - \mathbf r_0 \rvert^3}$$

    (e.g. Nunez & Srinivasan 2006, *Electric Fields of the Brain*, ch. 4),
    referenced to infinity. No head boundary: a rough model, useful as a
    reference and for sensors inside tissue.

    **Arguments:**

    - `centres`: `(n_regions, 3)` dipole positions in mm (e.g.
      `Connectome.centres`).
    - `orientations`: `(n_regions, 3)` dipole moment directions, or `None` for
      unit vectors radial from `origin`. Not normalised: column `j` is the
      potential of a dipole of moment `orientations[j]` A m, so unit vectors
      give the lead field per A m.
    - `sensors`: `(n_sensors, 3)` electrode positions in mm.
    - `conductivity`: $\sigma$ in S/m (or a quantity), default 0.33 S/m
      (brain/scalp).
    - `origin`: `(3,)` in mm, only used for the default radial orientations.

    **Returns:** `(n_sensors, n_regions)` lead field in V/(A m).

    **Raises:** `ValueError` for shapes other than those above, a
    non-positive conductivity, or a sensor on a dipole.
    """
    centres = as_points(centres, "centres")
    sensors = as_points(sensors, "sensors")
    origin = as_origin(origin)
    moments = _moments(orientations, centres, origin)
    sigma = as_positive(conductivity, CONDUCTIVITY, "conductivity", "conductivity in S/m")
    _distances_ok(sensors, centres, "sensors")
    return _infinite_medium(centres, moments, sensors, sigma, origin)


@jax.jit
def _infinite_medium(centres, moments, sensors, sigma, origin):
    if moments is None:
        moments = radial(centres, origin)
    d = (sensors[:, None, :] - centres[None, :, :]) * _M_PER_MM  # (S, N, 3) m
    dist = jnp.linalg.norm(d, axis=-1)
    dot = jnp.sum(d * moments[None, :, :], axis=-1)
    return dot / (4.0 * jnp.pi * sigma * dist**3)


def eeg_sphere(
    centres: Any,
    orientations: Any,
    sensors: Any,
    *,
    radius: Any = 90.0,
    conductivity: Any = 0.33,
    origin: Any = (0.0, 0.0, 0.0),
) -> LeadField:
    r"""EEG lead field of current dipoles in a homogeneous sphere, electrodes on its surface.

    For a dipole $\mathbf p$ at $\mathbf r_0$ inside a sphere of radius $R$ and
    conductivity $\sigma$ (insulating outside), the potential at a surface
    point $\mathbf r$ ($\lvert\mathbf r\rvert = R$, positions relative to the
    sphere centre) is, with $\mathbf d = \mathbf r - \mathbf r_0$,
    $d = \lvert\mathbf d\rvert$ and
    $F = d\,(R d + R^2 - \mathbf r_0 \cdot \mathbf r)$,

    $$V(\mathbf r) = \frac{1}{4\pi\sigma}\, \mathbf p \cdot
    \left[\frac{2\mathbf d}{d^3} + \frac{d\,\mathbf r + R\,\mathbf d}{R F}\right]$$

    (Brody, Terry & Ideker 1973, IEEE Trans. Biomed. Eng. 20:141; the
    single-shell case of Mosher, Leahy & Lewis 1999, Phys. Med. Biol.
    44:423; it is the dipole limit of Frank's 1952 point-source solution).
    At the centre it reduces to
    $V = 3\,\mathbf p \cdot \hat{\mathbf r} / (4\pi\sigma R^2)$. The potential
    averages to zero over the sphere surface (an insulated conductor has no
    potential at infinity to refer to); the EEG monitor re-references it.

    Electrodes are projected radially onto the sphere surface, as MNE-Python
    does for its spherical head models, so electrode positions from a
    template head (`mne_montage`) can be used directly.

    **Arguments:**

    - `centres`: `(n_regions, 3)` dipole positions in mm, strictly inside the
      sphere (see `centres_in_sphere` to map a connectome into it).
    - `orientations`: `(n_regions, 3)` dipole moment directions, or `None` for
      unit vectors radial from `origin` (the usual first guess for cortical
      sources). Not normalised: unit vectors give the lead field per A m.
    - `sensors`: `(n_sensors, 3)` electrode positions in mm (projected onto
      the sphere).
    - `radius`: the sphere radius $R$ in mm (or a quantity), default 90 mm.
    - `conductivity`: $\sigma$ in S/m (or a quantity), default 0.33 S/m.
    - `origin`: `(3,)` the sphere centre in mm, default the frame origin.

    **Returns:** `(n_sensors, n_regions)` lead field in V/(A m).

    **Raises:** `ValueError` for wrong shapes, a non-positive radius or
    conductivity, a centre outside the sphere or an electrode at its centre.
    """
    centres = as_points(centres, "centres")
    sensors = as_points(sensors, "sensors")
    origin = as_origin(origin)
    moments = _moments(orientations, centres, origin)
    R_mm = as_positive(radius, MM, "radius", "radius in mm")
    sigma = as_positive(conductivity, CONDUCTIVITY, "conductivity", "conductivity in S/m")
    if is_concrete(centres) and is_concrete(origin) and is_concrete(R_mm):
        dist = np.linalg.norm(np.asarray(centres) - np.asarray(origin)[None, :], axis=1)
        if np.any(dist >= float(R_mm)):
            i = int(np.argmax(dist))
            raise ValueError(
                f"centres: expected every dipole inside the sphere of radius {float(R_mm)} mm "
                f"around origin {np.asarray(origin).tolist()} mm, but centre {i} is "
                f"{dist[i]:.4g} mm from it; see brainmass.leadfield.centres_in_sphere."
            )
    if is_concrete(sensors) and is_concrete(origin):
        s_norm = np.linalg.norm(np.asarray(sensors) - np.asarray(origin)[None, :], axis=1)
        if np.any(s_norm == 0):
            raise ValueError(
                "sensors: an electrode lies at the sphere centre; it cannot be projected."
            )
    return _sphere(centres, moments, sensors, R_mm, sigma, origin)


@jax.jit
def _sphere(centres, moments, sensors, R_mm, sigma, origin):
    if moments is None:
        moments = radial(centres, origin)
    rel_c = centres - origin[None, :]
    rel_s = sensors - origin[None, :]
    R = R_mm * _M_PER_MM
    s_norm = jnp.linalg.norm(rel_s, axis=1)
    r = R * rel_s / s_norm[:, None]  # (S, 3) m, on the surface
    r0 = rel_c * _M_PER_MM  # (N, 3) m
    d = r[:, None, :] - r0[None, :, :]  # (S, N, 3)
    dist = jnp.linalg.norm(d, axis=-1)
    F = dist * (R * dist + R**2 - r @ r0.T)  # (S, N)
    g = 2.0 * d / dist[..., None] ** 3 + (dist[..., None] * r[:, None, :] + R * d) / (
        R * F[..., None]
    )
    return jnp.sum(g * moments[None, :, :], axis=-1) / (4.0 * jnp.pi * sigma)


def meg_sarvas(
    centres: Any,
    orientations: Any,
    sensor_positions: Any,
    sensor_orientations: Any,
    *,
    origin: Any = (0.0, 0.0, 0.0),
) -> LeadField:
    r"""MEG lead field of current dipoles in a spherically symmetric conductor (Sarvas 1987).

    The magnetic field outside any spherically symmetric conductor, of a
    dipole $\mathbf q$ at $\mathbf r_0$ (positions relative to the sphere
    centre), is (Sarvas 1987, Phys. Med. Biol. 32:11, eq. 25)

    $$\mathbf B(\mathbf r) = \frac{\mu_0}{4\pi F^2}\left(F\, \mathbf q \times \mathbf r_0
    - (\mathbf q \times \mathbf r_0 \cdot \mathbf r)\, \nabla F\right)$$

    with $\mathbf a = \mathbf r - \mathbf r_0$, $a = \lvert\mathbf a\rvert$,
    $r = \lvert\mathbf r\rvert$,
    $F = a\,(r a + r^2 - \mathbf r_0 \cdot \mathbf r)$ and
    $\nabla F = (a^2/r + \mathbf a\cdot\mathbf r/a + 2a + 2r)\,\mathbf r
    - (a + 2r + \mathbf a\cdot\mathbf r/a)\,\mathbf r_0$.
    It includes the volume currents and does not depend on the conductivities
    or the radii of the shells. A radial dipole ($\mathbf q \parallel
    \mathbf r_0$) and a dipole at the centre produce no field. Each sensor is
    a point magnetometer measuring $\mathbf B \cdot \hat{\mathbf n}$ along
    its unit normal (a gradiometer is a difference of two such rows).

    **Arguments:**

    - `centres`: `(n_regions, 3)` dipole positions in mm.
    - `orientations`: `(n_regions, 3)` dipole moment directions (not
      normalised; unit vectors give the lead field per A m). Required: the
      radial default of the EEG functions would give a zero lead field.
    - `sensor_positions`: `(n_sensors, 3)` magnetometer positions in mm,
      outside the conductor (farther from `origin` than every centre).
    - `sensor_orientations`: `(n_sensors, 3)` sensor normals (normalised
      here).
    - `origin`: `(3,)` the sphere centre in mm.

    **Returns:** `(n_sensors, n_regions)` lead field in T/(A m).

    **Raises:** `ValueError` for wrong shapes, zero sensor normals or a
    sensor not outside the sources.
    """
    if orientations is None:
        raise ValueError(
            "orientations: expected the dipole directions (n_regions, 3); MEG has no radial "
            "default, because radial dipoles produce no field outside a spherical conductor."
        )
    centres = as_points(centres, "centres")
    origin = as_origin(origin)
    moments = as_orientations(orientations, centres)
    positions = as_points(sensor_positions, "sensor_positions")
    if sensor_orientations is None:
        raise ValueError("sensor_orientations: expected the sensor normals (n_sensors, 3).")
    normals = as_orientations(sensor_orientations, positions, name="sensor_orientations")
    if is_concrete(normals) and np.any(np.linalg.norm(np.asarray(normals), axis=1) == 0):
        raise ValueError("sensor_orientations: expected nonzero sensor normals, got a zero vector.")
    if is_concrete(positions) and is_concrete(centres) and is_concrete(origin):
        o = np.asarray(origin)[None, :]
        rs = np.linalg.norm(np.asarray(positions) - o, axis=1)
        rc = np.linalg.norm(np.asarray(centres) - o, axis=1)
        if rs.min() <= rc.max():
            raise ValueError(
                f"sensor_positions: expected every sensor outside the conductor, farther from "
                f"the origin than every centre ({rc.max():.4g} mm), but sensor "
                f"{int(rs.argmin())} is {rs.min():.4g} mm from it."
            )
    return _sarvas(centres, moments, positions, normals, origin)


@jax.jit
def _sarvas(centres, moments, positions, normals, origin):
    normals = normals / jnp.linalg.norm(normals, axis=1)[:, None]
    r = (positions - origin[None, :]) * _M_PER_MM  # (S, 3) m
    r0 = (centres - origin[None, :]) * _M_PER_MM  # (N, 3) m
    S, N = r.shape[0], r0.shape[0]
    rv = jnp.broadcast_to(r[:, None, :], (S, N, 3))
    r0v = jnp.broadcast_to(r0[None, :, :], (S, N, 3))
    qv = jnp.broadcast_to(moments[None, :, :], (S, N, 3))
    a_vec = rv - r0v
    a = jnp.linalg.norm(a_vec, axis=-1)
    rn = jnp.linalg.norm(rv, axis=-1)
    a_dot_r = jnp.sum(a_vec * rv, axis=-1)
    F = a * (rn * a + rn**2 - jnp.sum(r0v * rv, axis=-1))
    c_r = a**2 / rn + a_dot_r / a + 2.0 * a + 2.0 * rn
    c_r0 = a + 2.0 * rn + a_dot_r / a
    grad_F = c_r[..., None] * rv - c_r0[..., None] * r0v
    q_x_r0 = jnp.cross(qv, r0v)
    B = (
        MU0_OVER_4PI
        * (F[..., None] * q_x_r0 - jnp.sum(q_x_r0 * rv, axis=-1)[..., None] * grad_F)
        / F[..., None] ** 2
    )
    return jnp.sum(B * normals[:, None, :], axis=-1)
