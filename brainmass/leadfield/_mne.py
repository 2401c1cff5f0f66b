"""Lead fields and electrode positions from MNE-Python (the optional extra `brainmass[mne]`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import brainunit as u
import numpy as np

from ..units import MM, to_float
from ._checks import CONDUCTIVITY, as_orientations, as_origin, as_points, check_off_origin

__all__ = ["leadfield_mne", "mne_montage"]

_M_PER_MM = 1e-3
_INNER_SHELL = 0.99  # relative radius of the (same-conductivity) inner shell of the default model


def _import_mne():
    try:
        import mne
    except ImportError as err:
        raise ImportError(
            "this function needs MNE-Python, which is not installed: install it with "
            "`pip install 'brainmass[mne]'` (or `pip install mne`). The analytic lead fields "
            "(eeg_sphere, eeg_infinite_medium, meg_sarvas) and standard_1020 work without it."
        ) from err
    return mne


def mne_montage(
    names: Sequence[str] | None = None, kind: str = "standard_1020"
) -> tuple[tuple[str, ...], np.ndarray]:
    """Electrode positions of one of MNE's template montages, in mm in MNE's head frame.

    MNE's head frame (x towards the right preauricular point, y towards the
    nasion, z up, origin midway between the preauricular points) has the
    axes of the brainmass head frame, but its origin lies about 40 mm below
    the centre of a sphere fitted to the scalp (MNE's default sphere centre
    is (0, 0, 40) mm): pass that as `origin` to the analytic lead fields, or
    fit one with `mne.bem.fit_sphere_to_headshape`. The template head is not
    a sphere; `eeg_sphere` projects the electrodes onto its sphere.

    **Arguments:**

    - `names`: the electrodes to return (case-insensitive), default all of
      the montage in its order.
    - `kind`: a name of `mne.channels.get_builtin_montages()`, default
      `"standard_1020"` (94 electrodes of the 10-20/10-10 systems on a
      template head; MNE >= 1.13 calls it `"colin27_1020"`, which is used
      when available).

    **Returns:** `(names, positions)`: names as in the montage and a NumPy
    array `(n, 3)` in mm.

    **Raises:** `ImportError` without MNE; `ValueError` for an unknown
    montage or electrode.
    """
    mne = _import_mne()
    builtin = mne.channels.get_builtin_montages()
    if kind == "standard_1020" and "colin27_1020" in builtin:
        kind = "colin27_1020"  # the same positions, under the name MNE keeps
    if kind not in builtin:
        raise ValueError(f"kind: unknown MNE montage {kind!r}; expected one of {builtin}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        montage = mne.channels.make_standard_montage(kind)
    info = mne.create_info(montage.ch_names, 1000.0, "eeg")
    info.set_montage(montage)  # transforms the template into the head frame (fiducials)
    lookup = {ch.lower(): i for i, ch in enumerate(info.ch_names)}
    if names is None:
        picks = list(range(len(info.ch_names)))
    else:
        if isinstance(names, str):
            raise ValueError(f"names: expected a sequence of names, got the string {names!r}.")
        missing = [n for n in names if str(n).lower() not in lookup]
        if missing:
            raise ValueError(
                f"names: {missing} not in the MNE montage {kind!r}; it has {info.ch_names}."
            )
        picks = [lookup[str(n).lower()] for n in names]
    positions = np.stack([info["chs"][i]["loc"][:3] for i in picks]) / _M_PER_MM
    return tuple(info.ch_names[i] for i in picks), positions


def _float64(value: Any, unit: Any, checked: Any) -> np.ndarray:
    """`value` (validated as `checked`) in `unit` as float64, without a float32 round trip."""
    if isinstance(value, u.Quantity):
        value = value.to_decimal(unit) if unit is not None else value.mantissa
    out = np.asarray(value, dtype=float)
    return out.reshape(np.shape(checked))


def _point_magnetometers(mne, positions_m: np.ndarray, normals: np.ndarray):
    """An Info with one point magnetometer per row (head frame = device frame)."""
    n = positions_m.shape[0]
    info = mne.create_info([f"MEG{i:03d}" for i in range(n)], 1000.0, "mag")
    for ch, pos, ez in zip(info["chs"], positions_m, normals, strict=True):
        # any two unit vectors completing ez to a right-handed frame
        helper = np.array([1.0, 0.0, 0.0]) if abs(ez[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        ex = np.cross(helper, ez)
        ex /= np.linalg.norm(ex)
        ey = np.cross(ez, ex)
        ch["loc"][:] = np.concatenate([pos, ex, ey, ez])
        ch["coil_type"] = mne.io.constants.FIFF.FIFFV_COIL_POINT_MAGNETOMETER
    info["dev_head_t"] = mne.transforms.Transform("meg", "head")  # identity
    return info


def _electrodes(mne, positions_m: np.ndarray):
    n = positions_m.shape[0]
    names = [f"E{i + 1}" for i in range(n)]  # (MNE reads "EEG000" as the reference)
    info = mne.create_info(names, 1000.0, "eeg")
    montage = mne.channels.make_dig_montage(
        ch_pos=dict(zip(names, positions_m, strict=True)), coord_frame="head"
    )
    info.set_montage(montage)
    return info


def leadfield_mne(
    centres: Any,
    orientations: Any,
    sensors: Any,
    *,
    sensor_orientations: Any = None,
    kind: str | None = None,
    sphere: Any = None,
    radius: Any = 90.0,
    conductivity: Any = 0.33,
    origin: Any = (0.0, 0.0, 0.0),
    trans: Any = None,
    verbose: bool | str = False,
) -> np.ndarray:
    """EEG or MEG lead field from MNE-Python's forward solver, one fixed dipole per region.

    Builds a discrete source space at the region centres
    (`mne.setup_volume_source_space(pos=dict(rr=..., nn=...))`), the sensors
    (electrodes, point magnetometers, or a given `mne.Info`), a head model
    (by default `mne.make_sphere_model` with one homogeneous shell, the same
    geometry as `eeg_sphere`), runs `mne.make_forward_solution` with free
    orientations and projects each region's three columns on its
    orientation. The units are those of the analytic functions: V/(A m) for
    EEG (unreferenced, as MNE returns it), T/(A m) for magnetometers (T/(m A m)
    for planar gradiometers of a real `Info`).

    **Arguments:**

    - `centres`: `(n_regions, 3)` dipole positions in mm, in the head frame
      (inside the innermost shell of the head model).
    - `orientations`: `(n_regions, 3)` dipole moment directions (not
      normalised: unit vectors give the lead field per A m), or `None` for
      radial from `origin` (EEG only: radial dipoles are silent in MEG).
    - `sensors`: `(n_sensors, 3)` positions in mm (electrodes; point
      magnetometers when `sensor_orientations` is given), or an `mne.Info`
      with digitised channels (then `kind` picks its EEG or MEG channels, in
      the Info's order).
    - `sensor_orientations`: `(n_sensors, 3)` magnetometer normals, for MEG
      from positions.
    - `kind`: `"eeg"` or `"meg"`; default from the other arguments.
    - `sphere`: an MNE `ConductorModel` (a sphere model or a BEM solution),
      or `None` for a homogeneous sphere of `radius` (mm) and
      `conductivity` (S/m) centred at `origin` (mm) (two shells of equal
      conductivity for MNE, which computes dipoles inside the inner one,
      0.99 `radius`).
    - `trans`: the head <-> MRI transform for a BEM (passed to MNE); `None`
      is the identity.
    - `verbose`: MNE's verbosity.

    **Returns:** a NumPy array `(n_sensors, n_regions)`.

    **Raises:** `ImportError` without MNE; `ValueError` for inconsistent
    arguments, or when MNE drops a source (outside the head model).
    """
    mne = _import_mne()
    centres_mm = as_points(centres, "centres")
    origin_mm = as_origin(origin)
    rr = _float64(centres, MM, centres_mm) * _M_PER_MM
    r0 = _float64(origin, MM, origin_mm) * _M_PER_MM
    if kind not in (None, "eeg", "meg"):
        raise ValueError(f"kind: expected 'eeg', 'meg' or None, got {kind!r}.")
    if isinstance(sensors, mne.Info):
        if kind is None:
            raise ValueError("kind: expected 'eeg' or 'meg' to pick the channels of an mne.Info.")
        picks = mne.pick_types(sensors, meg=kind == "meg", eeg=kind == "eeg", exclude=())
        if len(picks) == 0:
            raise ValueError(f"sensors: the mne.Info has no {kind.upper()} channels.")
        info = mne.pick_info(sensors, picks)
    else:
        positions = _float64(sensors, MM, as_points(sensors, "sensors")) * _M_PER_MM
        if sensor_orientations is not None:
            if kind == "eeg":
                raise ValueError("sensor_orientations: given, but kind='eeg' (electrodes).")
            kind = "meg"
            checked = as_orientations(sensor_orientations, positions, "sensor_orientations")
            normals = _float64(sensor_orientations, None, checked)
            norms = np.linalg.norm(normals, axis=1)
            if np.any(norms == 0):
                raise ValueError("sensor_orientations: expected nonzero sensor normals.")
            info = _point_magnetometers(mne, positions, normals / norms[:, None])
        else:
            if kind == "meg":
                raise ValueError("sensor_orientations: expected the magnetometer normals for MEG.")
            kind = "eeg"
            info = _electrodes(mne, positions)
    if orientations is None:
        if kind == "meg":
            raise ValueError(
                "orientations: expected the dipole directions for MEG (radial dipoles are silent)."
            )
        check_off_origin(centres_mm, origin_mm, "centres")
        moments = (rr - r0[None, :]) / np.linalg.norm(rr - r0[None, :], axis=1, keepdims=True)
    else:
        moments = _float64(orientations, None, as_orientations(orientations, centres_mm))
    if sphere is None:
        r = to_float(radius, MM, "radius")
        sigma = to_float(conductivity, CONDUCTIVITY, "conductivity")
        if not (r > 0 and sigma > 0):
            raise ValueError(
                f"radius, conductivity: expected positive values, got {r} mm, {sigma} S/m."
            )
        dist = np.linalg.norm(rr - r0[None, :], axis=1) / _M_PER_MM
        if np.any(dist >= _INNER_SHELL * r):
            raise ValueError(
                f"centres: expected every dipole within {_INNER_SHELL:g} x radius = "
                f"{_INNER_SHELL * r:g} mm of origin (MNE's inner shell), but centre "
                f"{int(dist.argmax())} is {dist.max():.4g} mm from it."
            )
        sphere = mne.make_sphere_model(
            r0=r0,
            head_radius=r * _M_PER_MM,
            relative_radii=(_INNER_SHELL, 1.0),  # MNE wants two shells: make them equal
            sigmas=(sigma, sigma),
            verbose=verbose,
        )
    norms = np.linalg.norm(moments, axis=1, keepdims=True)
    nn = np.where(norms > 0, moments / np.where(norms > 0, norms, 1.0), [[0.0, 0.0, 1.0]])
    src = mne.setup_volume_source_space(pos=dict(rr=rr, nn=nn), verbose=verbose)
    fwd = mne.make_forward_solution(
        info,
        trans=trans,
        src=src,
        bem=sphere,
        meg=kind == "meg",
        eeg=kind == "eeg",
        mindist=0.0,
        verbose=verbose,
    )
    if fwd["nsource"] != rr.shape[0]:
        raise ValueError(
            f"centres: MNE kept {fwd['nsource']} of {rr.shape[0]} sources (the others lie "
            "outside the inner shell of the head model)."
        )
    gain = fwd["sol"]["data"].reshape(fwd["sol"]["data"].shape[0], rr.shape[0], 3)
    return np.einsum("snk,nk->sn", gain, moments)
