"""Lead fields (brainmass.leadfield) against closed forms, series solutions and MNE-Python.

References written here, independently of the library: the infinite-medium
dipole potential at points worked out by hand; the Legendre series of the
potential of a point source in an insulated homogeneous sphere (differentiated
numerically into a dipole); the centre-of-sphere limit; the Biot-Savart
primary field, whose radial component the volume currents of a spherical
conductor leave unchanged, integrated along rays into the magnetic scalar
potential (Sarvas 1987's derivation, done numerically); and MNE's forward
solver for the same geometry.
"""

from __future__ import annotations

import sys

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy.special import eval_legendre

import brainmass as bm
from brainmass.leadfield import (
    ALIASES,
    STANDARD_1010,
    STANDARD_1020,
    centres_in_sphere,
    eeg_infinite_medium,
    eeg_sphere,
    leadfield_mne,
    meg_helmet,
    meg_sarvas,
    mne_montage,
    radial_orientations,
    standard_1010,
    standard_1020,
)

SIGMA = 0.33
R_MM = 90.0
MU0_4PI = 1e-7


def rel_err(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def random_sources(n, seed, r_min=5.0, r_max=70.0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n, 3))
    c *= rng.uniform(r_min, r_max, size=(n, 1)) / np.linalg.norm(c, axis=1, keepdims=True)
    return c, rng.normal(size=(n, 3))


# ------------------------------------------------------------------ EEG, infinite medium


def test_infinite_medium_by_hand():
    # one dipole, p = (1, 2, -1) A m at (10, 20, 30) mm; d = sensor - dipole in m
    centres = np.array([[10.0, 20.0, 30.0]])
    moments = np.array([[1.0, 2.0, -1.0]])
    sensors = np.array(
        [
            [40.0, -10.0, 70.0],  # d = (0.03, -0.03, 0.04): p.d = -0.07, |d|^2 = 0.0034
            [10.0, 20.0, 130.0],  # d = (0, 0, 0.1): p.d = -0.1
            [-10.0, 30.0, 30.0],  # d = (-0.02, 0.01, 0): p.d = 0
        ]
    )
    expected = np.array(
        [
            -0.07 / (4 * np.pi * 0.33 * 0.0034**1.5),
            -0.1 / (4 * np.pi * 0.33 * 0.1**3),
            0.0,
        ]
    )
    L = eeg_infinite_medium(centres, moments, sensors, conductivity=0.33)
    assert L.shape == (3, 1)
    np.testing.assert_allclose(np.asarray(L[:, 0]), expected, rtol=1e-5, atol=1e-6)
    # conductivity as a quantity; sensors in cm
    L2 = eeg_infinite_medium(
        centres, moments, sensors / 10.0 * u.cmeter, conductivity=330.0 * u.msiemens / u.meter
    )
    np.testing.assert_allclose(np.asarray(L2), np.asarray(L), rtol=1e-5, atol=1e-6)


def test_infinite_medium_radial_default():
    centres = np.array([[0.0, 0.0, 50.0], [30.0, 0.0, 0.0]])
    sensors = np.array([[0.0, 0.0, 100.0]])
    L = eeg_infinite_medium(centres, None, sensors)
    # radial dipole (0, 0, 1) 50 mm below the sensor: 1 / (4 pi sigma 0.05^2)
    assert float(L[0, 0]) == pytest.approx(1.0 / (4 * np.pi * SIGMA * 0.05**2), rel=1e-5)
    # radial (1, 0, 0) at (30, 0, 0): d = (-0.03, 0, 0.1)
    d = np.array([-0.03, 0.0, 0.1])
    assert float(L[0, 1]) == pytest.approx(d[0] / (4 * np.pi * SIGMA * np.linalg.norm(d) ** 3))


# ------------------------------------------------------------------ EEG, sphere


def series_point_potential(r0, electrode, n_terms=300):
    """Surface potential of a unit point source in an insulated sphere (Legendre series).

    Outside the source the primary potential is sum_n b^n / R^(n+1) P_n(cos g);
    the Neumann condition adds A_n r^n P_n with A_n = (n+1)/n b^n / R^(2n+1),
    so on the surface V = 1/(4 pi sigma R) sum_{n>=1} (2n+1)/n (b/R)^n P_n.
    """
    R = R_MM * 1e-3
    b = np.linalg.norm(r0)
    cos_g = r0 @ electrode / (b * np.linalg.norm(electrode))
    n = np.arange(1, n_terms)
    return np.sum((2 * n + 1) / n * (b / R) ** n * eval_legendre(n, cos_g)) / (
        4 * np.pi * SIGMA * R
    )


def series_dipole_potential(r0, p, electrode, h=1e-7):
    grad = [
        (
            series_point_potential(r0 + h * e, electrode)
            - series_point_potential(r0 - h * e, electrode)
        )
        / (2 * h)
        for e in np.eye(3)
    ]
    return float(p @ np.array(grad))


def test_sphere_against_legendre_series():
    centres, moments = random_sources(4, seed=1, r_max=65.0)
    _, electrodes = standard_1020(radius=R_MM)
    L = np.asarray(eeg_sphere(centres, moments, electrodes, radius=R_MM, conductivity=SIGMA))
    ref = np.array(
        [
            [
                series_dipole_potential(c * 1e-3, p, e * 1e-3)
                for c, p in zip(centres, moments, strict=True)
            ]
            for e in electrodes
        ]
    )
    assert rel_err(L, ref) < 1e-4


def test_sphere_centre_limit():
    _, electrodes = standard_1020(radius=R_MM)
    centres = np.zeros((4, 3))
    moments = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.3, -0.4, 0.5]])
    L = eeg_sphere(centres, moments, electrodes, radius=R_MM, conductivity=SIGMA)
    R = R_MM * 1e-3
    cos_theta = (electrodes / R_MM) @ moments.T  # p . r_hat
    expected = 3 * cos_theta / (4 * np.pi * SIGMA * R**2)
    np.testing.assert_allclose(
        np.asarray(L), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()
    )


def test_sphere_projects_electrodes_and_shifts_with_origin():
    centres, moments = random_sources(4, seed=2)
    _, electrodes = standard_1020(radius=R_MM)
    L = np.asarray(eeg_sphere(centres, moments, electrodes))
    # electrodes off the surface (radially) are projected onto it
    L_far = np.asarray(eeg_sphere(centres, moments, 1.3 * electrodes))
    np.testing.assert_allclose(L_far, L, rtol=1e-5, atol=1e-6 * np.abs(L).max())
    # translating everything (sphere centre included) changes nothing
    shift = np.array([3.0, -10.0, 40.0])
    L_shift = np.asarray(eeg_sphere(centres + shift, moments, electrodes + shift, origin=shift))
    np.testing.assert_allclose(L_shift, L, rtol=1e-4, atol=1e-5 * np.abs(L).max())
    # the potential of every dipole averages to ~zero over a dense electrode cover
    pos, _ = meg_helmet(4000, radius=R_MM, min_elevation=-89.9)
    mean = np.asarray(eeg_sphere(centres, moments, pos)).mean(axis=0)
    assert np.all(np.abs(mean) < 0.02 * np.abs(L).max())


# ------------------------------------------------------------------ linearity, symmetry


def _eeg_inf(c, o, s):
    return eeg_infinite_medium(c, o, s)


def _eeg_sph(c, o, s):
    return eeg_sphere(c, o, s)


def _meg(c, o, s):
    normals = s / np.linalg.norm(s, axis=1, keepdims=True)
    return meg_sarvas(c, o, 1.3 * s, normals)


@pytest.mark.parametrize("leadfield", [_eeg_inf, _eeg_sph, _meg], ids=["inf", "sphere", "meg"])
def test_linear_in_moment(leadfield):
    centres, o1 = random_sources(4, seed=3)
    _, o2 = random_sources(4, seed=4)
    _, sensors = standard_1020(radius=R_MM)
    L1 = np.asarray(leadfield(centres, o1, sensors))
    L2 = np.asarray(leadfield(centres, o2, sensors))
    scale = np.abs(L1).max()
    np.testing.assert_allclose(
        np.asarray(leadfield(centres, 2.5 * o1, sensors)), 2.5 * L1, rtol=1e-5, atol=1e-6 * scale
    )
    np.testing.assert_allclose(
        np.asarray(leadfield(centres, o1 - 3.0 * o2, sensors)),
        L1 - 3.0 * L2,
        rtol=1e-4,
        atol=1e-5 * scale,
    )
    # one column per region: a region's column does not depend on the others
    np.testing.assert_allclose(
        np.asarray(leadfield(centres[2:3], o1[2:3], sensors))[:, 0],
        L1[:, 2],
        rtol=1e-6,
        atol=1e-7 * scale,  # float32 rounding at a sensor near the dipole's null line
    )


MIRROR = np.array([-1.0, 1.0, 1.0])


def _mirror_permutation(names):
    """Index of each electrode's mirror image (x -> -x): odd <-> even number, z stays."""

    def mirror(name):
        if name.endswith("z"):
            return name
        k = len(name.rstrip("0123456789"))
        num = int(name[k:])
        return name[:k] + str(num + 1 if num % 2 else num - 1)

    return [names.index(mirror(n)) for n in names]


@pytest.mark.parametrize("leadfield", [_eeg_inf, _eeg_sph, _meg], ids=["inf", "sphere", "meg"])
def test_mirror_symmetry(leadfield):
    # reflecting dipoles (positions and moments, polar vectors) and sensors in x = 0
    # keeps a potential; the magnetic field is an axial vector: n.B changes sign.
    names, sensors = standard_1020(radius=R_MM)
    perm = _mirror_permutation(list(names))
    np.testing.assert_allclose(sensors[perm] * MIRROR, sensors, atol=1e-9)
    centres, moments = random_sources(4, seed=5)
    L = np.asarray(leadfield(centres, moments, sensors))
    L_mirror = np.asarray(leadfield(centres * MIRROR, moments * MIRROR, sensors))
    sign = -1.0 if leadfield is _meg else 1.0
    np.testing.assert_allclose(L_mirror[perm], sign * L, rtol=1e-4, atol=1e-5 * np.abs(L).max())


def test_rotation_invariance_of_sphere_models():
    rng = np.random.default_rng(6)
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    centres, moments = random_sources(4, seed=7)
    _, sensors = standard_1020(radius=R_MM)
    for fn in (_eeg_sph, _meg):
        L = np.asarray(fn(centres, moments, sensors))
        L_rot = np.asarray(fn(centres @ Q.T, moments @ Q.T, sensors @ Q.T))
        np.testing.assert_allclose(L_rot, L, rtol=1e-4, atol=1e-5 * np.abs(L).max())


# ------------------------------------------------------------------ MEG


def biot_savart_radial(r, r0, q):
    """Radial component of the primary (Biot-Savart) field at r (m) of dipole q at r0."""
    d = r - r0
    return MU0_4PI * np.cross(q, d) @ (r / np.linalg.norm(r)) / np.linalg.norm(d) ** 3


def test_sarvas_radial_dipole_and_centre_are_silent():
    positions, normals = meg_helmet(21)
    centres, moments = random_sources(4, seed=8)
    tangential = np.cross(centres, moments)
    L_tan = np.asarray(meg_sarvas(centres, tangential, positions, normals))
    L_rad = np.asarray(meg_sarvas(centres, radial_orientations(centres), positions, normals))
    assert np.abs(L_tan).max() > 0
    assert (
        np.abs(L_rad).max() < 1e-5 * np.abs(L_tan).max() / np.linalg.norm(tangential, axis=1).max()
    )
    L_centre = np.asarray(meg_sarvas(np.zeros((1, 3)), moments[:1], positions, normals))
    assert np.abs(L_centre).max() == 0.0


def test_sarvas_radial_component_is_biot_savart():
    positions, normals = meg_helmet(21, radius=115.0)
    centres, moments = random_sources(4, seed=9)
    L = np.asarray(meg_sarvas(centres, moments, positions, normals))
    ref = np.array(
        [
            [
                biot_savart_radial(s * 1e-3, c * 1e-3, q)
                for c, q in zip(centres, moments, strict=True)
            ]
            for s in positions
        ]
    )
    assert rel_err(L, ref) < 1e-4


def test_sarvas_full_field_from_scalar_potential():
    # Outside the conductor B = -mu0 grad U with mu0 U(r) = int_0^inf B_r(r + t r_hat) dt,
    # and B_r is the primary field's: integrate it numerically and differentiate.
    c, q = random_sources(1, seed=10, r_min=40.0, r_max=60.0)
    r0, q = c[0] * 1e-3, q[0]

    def mu0_U(r):
        r_hat = r / np.linalg.norm(r)
        value, _ = integrate.quad(
            lambda t: biot_savart_radial(r + t * r_hat, r0, q), 0, np.inf, epsabs=0, epsrel=1e-12
        )
        return value

    rng = np.random.default_rng(11)
    points = rng.normal(size=(4, 3))
    points *= 0.11 / np.linalg.norm(points, axis=1, keepdims=True)
    h = 1e-5
    B = np.array(
        [[-(mu0_U(p + h * e) - mu0_U(p - h * e)) / (2 * h) for e in np.eye(3)] for p in points]
    )  # (4, 3)
    # three sensors per point, along x, y, z
    positions = np.repeat(points, 3, axis=0) * 1e3
    normals = np.tile(np.eye(3), (4, 1))
    L = np.asarray(meg_sarvas(c, q[None, :], positions, normals))[:, 0]
    assert rel_err(L, B.reshape(-1)) < 1e-4


def test_sarvas_far_field_falls_off_as_cube():
    centres, moments = random_sources(4, seed=12, r_min=30.0, r_max=60.0)
    moments = np.cross(centres, moments)  # tangential
    direction = np.array([[0.3, -0.5, 0.8]]) / np.linalg.norm([0.3, -0.5, 0.8])
    near = np.asarray(meg_sarvas(centres, moments, 5000.0 * direction, direction))
    far = np.asarray(meg_sarvas(centres, moments, 10000.0 * direction, direction))
    np.testing.assert_allclose(near / far, 8.0, rtol=0.03)


# ------------------------------------------------------------------ JAX


def test_jit_and_grad():
    centres, moments = random_sources(4, seed=13)
    _, sensors = standard_1020(radius=R_MM)

    def f(sigma):
        return eeg_sphere(centres, moments, sensors, conductivity=sigma)

    L = np.asarray(f(0.33))
    np.testing.assert_allclose(
        np.asarray(jax.jit(f)(0.33)), L, rtol=1e-5, atol=1e-5 * np.abs(L).max()
    )
    # V ~ 1 / sigma: d/d sigma sum V^2 = -2 sum V^2 / sigma
    g = jax.jit(jax.grad(lambda s: jnp.sum(f(s) ** 2)))(0.33)
    assert float(g) == pytest.approx(-2 * np.sum(L.astype(float) ** 2) / 0.33, rel=1e-4)
    # gradient with respect to a dipole position, against central differences (float64)
    positions, normals = meg_helmet(21)

    def fm(c):
        return jnp.sum(meg_sarvas(c, moments, positions, normals) ** 2) * 1e12

    grad = np.asarray(jax.jit(jax.grad(fm))(jnp.asarray(centres)))
    h = 1.0
    step = np.zeros_like(centres)
    step[1, 0] = h

    def fm64(c):
        return 1e12 * np.sum(np.asarray(meg_sarvas(c, moments, positions, normals), float) ** 2)

    fd = (fm64(centres + step) - fm64(centres - step)) / (2 * h)
    assert grad[1, 0] == pytest.approx(fd, rel=2e-2)


# ------------------------------------------------------------------ validation


def test_validation_errors():
    _, sensors = standard_1020(radius=R_MM)
    centres = np.array([[0.0, 0.0, 50.0]])
    with pytest.raises(ValueError, match="centres.*inside the sphere"):
        eeg_sphere(np.array([[0.0, 0.0, 95.0]]), None, sensors)
    with pytest.raises(ValueError, match=r"centres: expected an array of shape \(n, 3\)"):
        eeg_sphere(np.zeros((2, 2)), None, sensors)
    with pytest.raises(ValueError, match=r"orientations: expected .* shape \(1, 3\)"):
        eeg_sphere(centres, np.zeros((2, 3)), sensors)
    with pytest.raises(ValueError, match="conductivity"):
        eeg_sphere(centres, None, sensors, conductivity=-1.0)
    with pytest.raises(ValueError, match="conductivity"):
        eeg_sphere(centres, None, sensors, conductivity=0.33 * u.meter)
    with pytest.raises(ValueError, match="radial direction is undefined"):
        eeg_sphere(np.zeros((1, 3)), None, sensors)
    with pytest.raises(ValueError, match="sensor 0 coincides"):
        eeg_infinite_medium(centres, None, centres)
    positions, normals = meg_helmet(5)
    with pytest.raises(ValueError, match="orientations.*radial"):
        meg_sarvas(centres, None, positions, normals)
    with pytest.raises(ValueError, match="sensor_positions.*outside"):
        meg_sarvas(centres, np.ones((1, 3)), positions * 0.1, normals)
    with pytest.raises(ValueError, match="sensor_orientations"):
        meg_sarvas(centres, np.ones((1, 3)), positions, np.zeros((5, 3)))


# ------------------------------------------------------------------ sensor positions


def test_standard_1020_table():
    names, pos = standard_1020(radius=R_MM)
    assert names == STANDARD_1020 and len(names) == 21 and pos.shape == (21, 3)
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), R_MM)
    table = dict(zip(names, pos, strict=True))
    np.testing.assert_allclose(table["Cz"], [0, 0, R_MM], atol=1e-9)
    np.testing.assert_allclose(table["Fpz"], [0, R_MM, 0], atol=1e-9)  # front, on the equator
    np.testing.assert_allclose(table["T7"], [-R_MM, 0, 0], atol=1e-9)  # left ear side
    np.testing.assert_allclose(table["Oz"], [0, -R_MM, 0], atol=1e-9)

    def polar(name):
        return np.degrees(np.arccos(table[name][2] / R_MM))

    # 10 % of the midline arc and 5 % of the circumference: Fz, C3 at 45 degrees,
    # Fp1 18 degrees left of Fpz; F3 at 60 degrees from Cz (BESA: theta 60, phi 51)
    assert polar("Fz") == pytest.approx(45.0) and polar("C3") == pytest.approx(45.0)
    assert np.degrees(np.arctan2(-table["Fp1"][0], table["Fp1"][1])) == pytest.approx(18.0)
    assert polar("F3") == pytest.approx(60.0, abs=0.5)
    assert np.degrees(np.arctan2(-table["F3"][0], table["F3"][1])) == pytest.approx(39.0, abs=0.5)
    # names: case-insensitive, old aliases, a subset in the given order, an origin
    sub, sub_pos = standard_1020(["cz", "T3", "t6"], radius=100.0, origin=(0.0, 0.0, 40.0))
    assert sub == ("Cz", ALIASES["T3"], "P8")
    np.testing.assert_allclose(sub_pos[0], [0, 0, 140.0], atol=1e-9)
    with pytest.raises(ValueError, match="unknown electrode 'Xy1'"):
        standard_1020(["Cz", "Xy1"])
    with pytest.raises(ValueError, match="distinct"):
        standard_1020(["T7", "T3"])


def test_standard_1010_table():
    names, pos = standard_1010(radius=R_MM)
    assert names == STANDARD_1010 and len(set(names)) == 69
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), R_MM)
    table = dict(zip(names, pos, strict=True))
    # the 10-20 electrodes are the same points
    _, pos20 = standard_1020(radius=R_MM)
    np.testing.assert_allclose(np.stack([table[n] for n in STANDARD_1020]), pos20)
    # each level is evenly divided: F7-F5-F3-F1-Fz at equal angles from one another
    level = np.stack([table[n] for n in ("F7", "F5", "F3", "F1", "Fz")])
    chord = np.linalg.norm(np.diff(level, axis=0), axis=1)
    np.testing.assert_allclose(chord, chord[0], rtol=1e-9)
    # C5 halfway between T7 and C3 on the coronal great circle: 67.5 degrees from Cz
    assert np.degrees(np.arccos(table["C5"][2] / R_MM)) == pytest.approx(67.5)


def test_meg_helmet_and_centres_in_sphere():
    pos, normals = meg_helmet(50, radius=120.0, min_elevation=-30.0)
    assert pos.shape == normals.shape == (50, 3)
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 120.0)
    np.testing.assert_allclose(pos / 120.0, normals, atol=1e-12)
    assert normals[:, 2].min() >= np.sin(np.radians(-30.0)) - 1e-12
    conn = bm.Connectome.synthetic(n_regions=68, seed=0)
    raw = np.asarray(conn.centres, dtype=float)
    c = centres_in_sphere(conn.centres, radius=R_MM, fraction=0.8)
    assert np.linalg.norm(c, axis=1).max() == pytest.approx(0.8 * R_MM)
    np.testing.assert_allclose(0.5 * (c.min(0) + c.max(0)), 0.0, atol=1e-9)
    # the map is a translation and one scale: distances keep their ratios
    d_raw = np.linalg.norm(raw[:, None] - raw[None], axis=-1)
    d_new = np.linalg.norm(c[:, None] - c[None], axis=-1)
    off = ~np.eye(68, dtype=bool)
    ratio = d_new[off] / d_raw[off]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
    # and the result can be used in the sphere model directly
    assert np.all(np.isfinite(np.asarray(eeg_sphere(c, None, standard_1020()[1]))))
    with pytest.raises(ValueError, match="inside the sphere"):
        eeg_sphere(raw * 1.2, None, standard_1020()[1])


# ------------------------------------------------------------------ MNE


def test_leadfield_mne_missing_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mne", None)  # `import mne` raises ImportError
    with pytest.raises(ImportError, match=r"brainmass\[mne\]"):
        leadfield_mne(np.array([[0.0, 0.0, 50.0]]), None, standard_1020()[1])
    with pytest.raises(ImportError, match="MNE-Python"):
        mne_montage()


def test_mne_eeg_sphere_matches_analytic():
    pytest.importorskip("mne")
    centres, moments = random_sources(4, seed=14, r_max=70.0)
    _, electrodes = standard_1020(radius=R_MM)
    L = np.asarray(eeg_sphere(centres, moments, electrodes, radius=R_MM, conductivity=SIGMA))
    L_mne = leadfield_mne(centres, moments, electrodes, radius=R_MM, conductivity=SIGMA)
    assert L_mne.shape == (21, 4)
    # MNE's Berg-Scherg fit of one homogeneous shell: agreement far inside the 5 % one
    # would expect from a different head model; stated tolerance 1e-3 relative
    assert rel_err(L_mne, L) < 1e-3
    # radial default orientations, and a shifted sphere
    shift = np.array([0.0, 5.0, 40.0])
    L_r = np.asarray(eeg_sphere(centres + shift, None, electrodes + shift, origin=shift))
    L_r_mne = leadfield_mne(centres + shift, None, electrodes + shift, origin=shift)
    assert rel_err(L_r_mne, L_r) < 1e-3


def test_mne_meg_matches_sarvas():
    pytest.importorskip("mne")
    centres, moments = random_sources(4, seed=15, r_max=70.0)
    positions, normals = meg_helmet(21)
    L = np.asarray(meg_sarvas(centres, moments, positions, normals))
    L_mne = leadfield_mne(centres, moments, positions, sensor_orientations=normals)
    assert L_mne.shape == (21, 4)
    assert rel_err(L_mne, L) < 1e-5  # both are Sarvas's formula; float32 on our side


def test_mne_info_input_and_montage():
    mne = pytest.importorskip("mne")
    names, electrodes = mne_montage(["Cz", "fpz", "O1", "T7", "T8"])
    assert names == ("Cz", "Fpz", "O1", "T7", "T8") and electrodes.shape == (5, 3)
    # MNE's head frame, in mm: Cz above, Fpz in front, T7 on the left
    assert electrodes[0, 2] > 80 and electrodes[1, 1] > 80 and electrodes[3, 0] < -60
    # the built-in directions agree with MNE's template seen from a fitted sphere
    _, mne_pos = mne_montage(list(STANDARD_1020))
    A = np.c_[2 * mne_pos, np.ones(len(mne_pos))]
    sol = np.linalg.lstsq(A, (mne_pos**2).sum(1), rcond=None)[0]
    fitted = (mne_pos - sol[:3]) / np.linalg.norm(mne_pos - sol[:3], axis=1, keepdims=True)
    ours = standard_1020(radius=1.0)[1]
    angle = np.degrees(np.arccos(np.clip((fitted * ours).sum(1), -1, 1)))
    assert angle.max() < 15.0
    # an mne.Info with EEG channels: rows in the Info's order
    info = mne.create_info(list(names), 1000.0, "eeg")
    montage = mne.channels.make_dig_montage(
        ch_pos=dict(zip(names, electrodes * 1e-3, strict=True)), coord_frame="head"
    )
    info.set_montage(montage)
    centres = np.array([[0.0, 10.0, 60.0], [-20.0, -10.0, 50.0]])
    origin = (0.0, 0.0, 40.0)
    L_info = leadfield_mne(centres, None, info, kind="eeg", origin=origin, radius=95.0)
    L_pos = leadfield_mne(centres, None, electrodes, origin=origin, radius=95.0)
    np.testing.assert_allclose(L_info, L_pos, rtol=1e-10)
    with pytest.raises(ValueError, match="kind"):
        leadfield_mne(centres, None, info)
    with pytest.raises(ValueError, match="unknown electrode|not in the MNE montage"):
        mne_montage(["Cz", "Xy1"])
