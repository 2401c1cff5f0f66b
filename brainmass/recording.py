"""Recordings: a measured signal with its sampling period, channel labels, unit and events.

A `Recording` is what a user brings to a fit: parcellated BOLD from an fMRI pipeline,
EEG/MEG from MNE, LFP or any other multichannel series. It carries what an array does
not: the sampling period (ms), the channel names (region labels or sensor names), the
unit, the time of its first sample, events, and for EEG/MEG the sensor positions that
`brainmass.leadfield` builds a lead field from.

Loaders: `Recording.from_array`, `from_text` (delimited text, a header row of labels
read when present), `from_mat` (MATLAB files, the key chosen by the user) and
`from_mne` (MNE-Python's `Raw`, `Epochs` and `Evoked`; the `brainmass[mne]` extra) and
`from_nifti` (parcellated BOLD from a 4-D image and an atlas through nilearn; the
`brainmass[nifti]` extra).

Alignment with a simulator: `rec.for_simulator(sim)` returns the array a likelihood or
objective compares with `sim.run().signal`, after checking that the sampling period is
the monitor's, that the channels are the monitor's (reordered by label when the
recording is labelled) and that the recording has a sample at every time the simulator
samples, the t = 0 sample included when the monitor records it (`initial=True`) and
dropped when it does not. Times are measured from the recording's time zero, which is
the simulation's t = 0: 0 at the first sample of a resting-state recording, the
stimulus onset of an evoked response (MNE's `tmin` is then the negative `start`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import numpy as np

from .units import MS, to_float

__all__ = ["Recording"]

_TOL = 1e-6  # relative tolerance on sampling periods and sample times

# MNE channel types brainmass knows, with the unit MNE stores them in
_MNE_KINDS = {"eeg": ("eeg", "V"), "mag": ("meg", "T"), "grad": ("meg", "T/m")}


class Recording(eqx.Module):
    """A measured multichannel signal with its sampling period, labels, unit and events.

    **Attributes:**

    - `signal`: `(n_samples, n_channels)`, or `(n_epochs, n_samples, n_channels)` for
      epoched data, in `unit`.
    - `period`: the sampling period in ms (a TR of 0.72 s is 720.0).
    - `labels`: the channel names, `n_channels` of them (region labels or sensors).
    - `unit`: the signal's unit as text (`"V"`, `"T"`, `"%"`, `"a.u."`).
    - `start`: the time of the first sample in ms, from the recording's time zero
      (0 for a resting-state series; negative for an evoked response with a baseline).
    - `events`: `((time_ms, name), ...)`, from the recording's time zero.
    - `kind`: `"bold"`, `"eeg"`, `"meg"` or `"other"`.
    - `positions`: `(n_channels, 3)` sensor positions in mm (MNE's head frame, for
      `brainmass.leadfield.leadfield_mne`), or None.
    - `labelled`: whether `labels` came with the data (False: `"0", "1", ...`
      generated, and channels are matched to a simulator by position only).
    """

    signal: np.ndarray
    period: float = eqx.field(static=True)
    labels: tuple[str, ...] = eqx.field(static=True)
    unit: str = eqx.field(static=True, default="a.u.")
    start: float = eqx.field(static=True, default=0.0)
    events: tuple[tuple[float, str], ...] = eqx.field(static=True, default=())
    kind: str = eqx.field(static=True, default="other")
    positions: np.ndarray | None = None
    labelled: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        signal = np.asarray(self.signal)
        if signal.ndim not in (2, 3):
            raise ValueError(
                f"signal: expected (n_samples, n_channels) or (n_epochs, n_samples, "
                f"n_channels), got shape {signal.shape}."
            )
        if signal.shape[-2] < 1 or signal.shape[-1] < 1:
            raise ValueError(f"signal: expected samples and channels, got shape {signal.shape}.")
        if not (np.isfinite(self.period) and self.period > 0):
            raise ValueError(f"period: expected a sampling period > 0 ms, got {self.period}.")
        if len(self.labels) != signal.shape[-1]:
            raise ValueError(
                f"labels: expected {signal.shape[-1]} channel names (one per channel), "
                f"got {len(self.labels)}."
            )
        if len(set(self.labels)) != len(self.labels):
            dup = sorted({x for x in self.labels if self.labels.count(x) > 1})
            raise ValueError(f"labels: channel names must be unique; repeated: {dup[:8]}.")
        if self.kind not in ("bold", "eeg", "meg", "other"):
            raise ValueError(f"kind: expected 'bold', 'eeg', 'meg' or 'other', got {self.kind!r}.")
        if self.positions is not None and np.shape(self.positions) != (signal.shape[-1], 3):
            raise ValueError(
                f"positions: expected ({signal.shape[-1]}, 3) sensor positions in mm, "
                f"got shape {np.shape(self.positions)}."
            )

    # ------------------------------------------------------------------ loaders
    @classmethod
    def from_array(
        cls,
        signal: Any,
        period: Any,
        labels: Sequence[str] | None = None,
        *,
        unit: str = "a.u.",
        start: Any = 0.0,
        events: Sequence[tuple[Any, str]] = (),
        kind: str = "other",
        channel_axis: int = -1,
        positions: Any = None,
    ) -> Recording:
        """A recording from an array.

        **Arguments:**

        - `signal`: `(n_samples, n_channels)` (or channels first with
          `channel_axis=0`); `(n_epochs, n_samples, n_channels)` for epochs.
        - `period`: the sampling period, a `brainunit` time (`0.72 * u.second`) or
          a number in ms.
        - `labels`: channel names (default: `"0", "1", ...`, matched by position).
        - `unit`, `start` (time or ms), `events` (`(time, name)` pairs; times or ms),
          `kind`, `positions`: see the class.
        - `channel_axis`: the axis of `signal` that holds the channels.
        """
        arr = np.asarray(signal)
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise ValueError(f"signal: expected real numbers, got dtype {arr.dtype}.")
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"signal: expected a 2-D (samples x channels) or 3-D (epochs x samples x "
                f"channels) array, got shape {arr.shape}."
            )
        dtype = np.float64 if arr.dtype == np.float64 else np.float32
        arr = np.moveaxis(arr, channel_axis, -1).astype(dtype)
        given = labels is not None
        n = arr.shape[-1]
        names = tuple(str(x) for x in labels) if given else tuple(str(i) for i in range(n))
        return cls(
            signal=arr,
            period=to_float(period, MS, "period"),
            labels=names,
            unit=str(unit),
            start=to_float(start, MS, "start"),
            events=tuple((to_float(t, MS, "events"), str(name)) for t, name in events),
            kind=kind,
            positions=None if positions is None else np.asarray(positions, dtype=float),
            labelled=given,
        )

    @classmethod
    def from_text(
        cls,
        path: str | os.PathLike,
        period: Any,
        *,
        delimiter: str | None = None,
        labels: Sequence[str] | None = None,
        channel_axis: int = -1,
        **kwargs: Any,
    ) -> Recording:
        r"""A recording from delimited text (`.csv`, `.tsv`, whitespace): one row per sample.

        A first row that is not numbers is read as the channel labels (unless
        `labels` are given). `delimiter`: None for whitespace, `","` for CSV,
        `"\\t"` for TSV; by default `","` for `.csv` files and `"\\t"` for `.tsv`.
        `channel_axis=0` reads one row per channel instead. Other arguments as
        `from_array`.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no such file: {path}")
        if delimiter is None:
            delimiter = {".csv": ",", ".tsv": "\t"}.get(path.suffix.lower())
        with path.open() as f:
            first = f.readline()
        tokens = [t.strip() for t in (first.split(delimiter) if delimiter else first.split())]
        try:
            [float(t) for t in tokens if t]
            header = None
        except ValueError:
            header = [t.strip("\"'") for t in tokens]
        data = np.loadtxt(path, delimiter=delimiter, skiprows=0 if header is None else 1, ndmin=2)
        if labels is None and header is not None:
            labels = header
        return cls.from_array(data, period, labels, channel_axis=channel_axis, **kwargs)

    @classmethod
    def from_mat(
        cls,
        path: str | os.PathLike,
        key: str,
        period: Any,
        *,
        channel_axis: int = -1,
        labels: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Recording:
        """A recording from a MATLAB `.mat` file (v4-v7.2, through `scipy.io.loadmat`).

        `key`: the variable holding the signal (the file's variables are listed when it
        is missing). `channel_axis`: its channel axis (`0` for channels x samples, as
        many pipelines write parcellated BOLD). Other arguments as `from_array`.
        """
        from scipy.io import loadmat

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no such file: {path}")
        try:
            content = loadmat(path)
        except NotImplementedError as err:  # MATLAB v7.3 files are HDF5
            raise ValueError(
                f"path: {path.name} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; "
                "read it with h5py and use Recording.from_array."
            ) from err
        names = sorted(k for k in content if not k.startswith("__"))
        if key not in content:
            raise KeyError(f"key: {key!r} is not a variable of {path.name}; it holds {names}.")
        return cls.from_array(
            np.asarray(content[key]), period, labels, channel_axis=channel_axis, **kwargs
        )

    @classmethod
    def from_mne(cls, inst: Any, *, picks: Any = "data") -> Recording:
        """A recording from an MNE-Python `Raw`, `Epochs` or `Evoked` (the `mne` extra).

        The channels `picks` selects (default `"data"`: EEG and MEG, no EOG or stimulus
        channels) must be of one kind (EEG in V, magnetometers in T, or gradiometers in
        T/m: their units differ; pick one with `picks="eeg"`, `"mag"` or `"grad"`).
        The period is `1000 / sfreq` ms; `start` is the first sample's time (an evoked
        response's `tmin`); events come from a `Raw`'s annotations or an `Epochs`'
        events (times from the first sample); positions from the channels' locations
        (mm, MNE's head frame), None when any is missing. Bad channels
        (`info["bads"]`) are left out.
        """
        try:
            import mne
        except ImportError as err:
            raise ImportError(
                "Recording.from_mne needs MNE-Python: `pip install 'brainmass[mne]'`."
            ) from err
        if not isinstance(inst, (mne.io.BaseRaw, mne.BaseEpochs, mne.Evoked)):
            raise TypeError(
                f"inst: expected an mne Raw, Epochs or Evoked, got {type(inst).__name__}."
            )
        inst = inst.copy()
        if not getattr(inst, "preload", True):  # a Raw or Epochs read lazily from disk
            inst.load_data()
        inst = inst.pick(picks, exclude="bads")
        info = inst.info
        types = sorted(set(inst.get_channel_types()))
        if len(types) != 1 or types[0] not in _MNE_KINDS:
            raise ValueError(
                f"picks: expected channels of one kind (eeg, mag or grad: their units "
                f"differ), got {types}; pick one, for example picks='eeg'."
            )
        kind, unit = _MNE_KINDS[types[0]]
        names = list(info["ch_names"])
        sfreq = float(info["sfreq"])
        if isinstance(inst, mne.BaseEpochs):
            data = np.moveaxis(inst.get_data(), 1, 2)  # (epochs, times, channels)
        else:
            data = np.asarray(inst.get_data()).T
        start = 1000.0 * float(inst.times[0])
        events: list[tuple[float, str]] = []
        if isinstance(inst, mne.io.BaseRaw):
            t0 = inst.first_samp / sfreq
            for a in inst.annotations:
                events.append((1000.0 * (float(a["onset"]) - t0), str(a["description"])))
        elif isinstance(inst, mne.BaseEpochs):
            names_of = {v: k for k, v in inst.event_id.items()}
            first = inst.events[0, 0] if len(inst.events) else 0
            for sample, _, code in inst.events:
                when = 1000.0 * (sample - first) / sfreq
                events.append((float(when), names_of.get(int(code), str(code))))
        locs = np.array([ch["loc"][:3] for ch in info["chs"]], dtype=float)
        positions = None if not np.all(np.isfinite(locs)) or np.allclose(locs, 0) else 1e3 * locs
        return cls(
            signal=np.asarray(data, dtype=np.float64),
            period=1000.0 / sfreq,
            labels=tuple(names),
            unit=unit,
            start=start,
            events=tuple(events),
            kind=kind,
            positions=positions,
        )

    @classmethod
    def from_nifti(
        cls,
        img: Any,
        atlas: Any,
        *,
        labels: Sequence[str] | dict[int, str] | None = None,
        period: Any = None,
        unit: str = "a.u.",
        **masker_kwargs: Any,
    ) -> Recording:
        """Parcellated BOLD from a 4-D NIfTI image and a labels atlas (the `nifti` extra).

        Each region's series is the mean over its voxels
        (`nilearn.maskers.NiftiLabelsMasker`, the atlas resampled to the image; no
        standardisation, detrending or filtering unless asked for in `masker_kwargs`).

        **Arguments:**

        - `img`: a 4-D image `(x, y, z, volumes)`, a path or a nibabel image.
        - `atlas`: a 3-D labels image (integer region values, 0 the background).
        - `labels`: names of the regions, in the order of their atlas values, or
          `{atlas value: name}`; default the values as text. Regions the image does
          not cover are dropped by the masker, and their names with them.
        - `period`: the repetition time (a `brainunit` time or ms); default from the
          image header (`pixdim[4]` in its time unit), refused when the header has
          none.
        """
        try:
            import nibabel as nib
            from nilearn.maskers import NiftiLabelsMasker
        except ImportError as err:
            raise ImportError(
                "Recording.from_nifti needs nilearn: `pip install 'brainmass[nifti]'`."
            ) from err
        image = nib.load(img) if isinstance(img, (str, os.PathLike)) else img
        if len(image.shape) != 4:
            raise ValueError(
                f"img: expected a 4-D image (x, y, z, volumes), got shape {image.shape}."
            )
        if period is None:
            tr = float(image.header.get_zooms()[3])
            scale = {"sec": 1000.0, "msec": 1.0, "usec": 1e-3}.get(image.header.get_xyzt_units()[1])
            if scale is None or not tr > 0:
                raise ValueError(
                    "period: the image header gives no repetition time (pixdim[4] "
                    f"{tr}, time unit {image.header.get_xyzt_units()[1]!r}); pass period=."
                )
            period = tr * scale
        options = dict(resampling_target="data", standardize=None)
        options.update(masker_kwargs)
        atlas_img = nib.load(atlas) if isinstance(atlas, (str, os.PathLike)) else atlas
        masker = NiftiLabelsMasker(labels_img=atlas_img, **options)
        series = np.asarray(masker.fit_transform(image))
        columns = sorted(k for k in masker.region_ids_ if not isinstance(k, str))
        ids = [masker.region_ids_[k] for k in columns]  # column -> atlas value
        values = [int(v) for v in ids]
        if labels is None:
            names = [str(v) for v in values]
        elif isinstance(labels, dict):
            missing = [v for v in values if v not in labels]
            if missing:
                raise ValueError(f"labels: no name for the atlas values {missing[:8]}.")
            names = [str(labels[v]) for v in values]
        else:
            every = np.unique(np.asarray(atlas_img.dataobj).astype(int))
            atlas_values = [int(v) for v in every if v != 0]
            if len(labels) != len(atlas_values):
                raise ValueError(
                    f"labels: {len(labels)} names for the atlas's {len(atlas_values)} regions."
                )
            by_value = dict(zip(atlas_values, labels, strict=True))
            names = [str(by_value[v]) for v in values]
        return cls.from_array(series, period, names, unit=unit, kind="bold")

    # ------------------------------------------------------------------ views
    @property
    def n_samples(self) -> int:
        """Samples per channel (per epoch)."""
        return int(np.shape(self.signal)[-2])

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(np.shape(self.signal)[-1])

    @property
    def time(self) -> np.ndarray:
        """Sample times in ms from the recording's time zero, `(n_samples,)`."""
        return self.start + self.period * np.arange(self.n_samples)

    def select(self, labels: Sequence[str]) -> Recording:
        """The channels named in `labels`, in that order (a missing one is named)."""
        if not self.labelled:
            raise ValueError(
                "labels: this recording has no channel names (made without `labels`); "
                "select channels by position on the array instead."
            )
        where = {name: i for i, name in enumerate(self.labels)}
        missing = [str(x) for x in labels if str(x) not in where]
        if missing:
            raise ValueError(
                f"labels: {len(missing)} channel(s) not in the recording: {missing[:8]}"
                f"{' ...' if len(missing) > 8 else ''} (it holds {list(self.labels[:8])}"
                f"{' ...' if self.n_channels > 8 else ''})."
            )
        idx = np.asarray([where[str(x)] for x in labels], dtype=int)
        positions = None if self.positions is None else np.asarray(self.positions)[idx]
        return self._with(
            np.asarray(self.signal)[..., idx],
            labels=tuple(str(x) for x in labels),
            positions=positions,
        )

    def crop(self, tmin: Any = None, tmax: Any = None) -> Recording:
        """The samples with `tmin <= time <= tmax` (times or ms; None: no bound)."""
        t = self.time
        lo = -np.inf if tmin is None else to_float(tmin, MS, "tmin")
        hi = np.inf if tmax is None else to_float(tmax, MS, "tmax")
        keep = np.flatnonzero((t >= lo - _TOL * self.period) & (t <= hi + _TOL * self.period))
        if keep.size == 0:
            raise ValueError(
                f"tmin, tmax: no sample between {lo} and {hi} ms (the recording spans "
                f"{t[0]:.6g} to {t[-1]:.6g} ms)."
            )
        return self._with(np.asarray(self.signal)[..., keep, :], start=float(t[keep[0]]))

    def average(self) -> Recording:
        """The mean over epochs (an evoked response) of an epoched recording."""
        if np.ndim(self.signal) != 3:
            raise ValueError("average: this recording has no epochs axis.")
        return self._with(np.mean(np.asarray(self.signal), axis=0))

    def check(self) -> Recording:
        """Refuse non-finite or flat channels (each named); returns the recording.

        A flat channel (the same value throughout) is a dead sensor or a region the
        parcellation left empty; a NaN one a gap the pipeline did not fill.
        """
        x = np.asarray(self.signal)
        x2 = x.reshape(-1, x.shape[-1])
        bad = ~np.all(np.isfinite(x2), axis=0)
        if bad.any():
            names = [self.labels[i] for i in np.flatnonzero(bad)]
            raise ValueError(
                f"signal: {len(names)} channel(s) hold NaN or infinite values: {names[:8]}"
                f"{' ...' if len(names) > 8 else ''}; drop them (select) or fill the gaps."
            )
        flat = np.ptp(x2, axis=0) == 0
        if flat.any():
            names = [self.labels[i] for i in np.flatnonzero(flat)]
            raise ValueError(
                f"signal: {len(names)} channel(s) are flat (one value throughout): "
                f"{names[:8]}{' ...' if len(names) > 8 else ''}; drop them (select)."
            )
        return self

    # ------------------------------------------------------------------ alignment
    def for_simulator(self, sim: Any, *, crop: bool = False, times: bool = True) -> np.ndarray:
        """The signal aligned with `sim.run().signal`: `([epochs,] n_out, n_channels)`.

        Checks, each refusal naming what differs: the sampling period equals the
        monitor's; the channels are the monitor's channels (reordered by label when
        the recording is labelled, matched by count otherwise); the recording has a
        sample at each of the simulator's sample times (ms from the shared time zero:
        `period, 2 period, ...` after the monitor's transient, and `0` first when the
        monitor records the initial state), so a resting-state recording's t = 0
        sample is dropped for a monitor without `initial=True`. Samples the simulator
        does not produce are refused unless `crop=True` (which drops them); the
        signal is checked for NaN and flat channels (`check`). `times=False`: the
        period and channels only, every sample kept (for comparisons of statistics,
        such as FC or spectra, which do not need the same samples).
        """
        self.check()
        period = float(sim.period)
        if abs(self.period - period) > _TOL * period:
            raise ValueError(
                f"period: the recording is sampled every {self.period:.6g} ms, the "
                f"simulator's monitor every {period:.6g} ms (monitor.period); set the "
                f"monitor's period to {self.period:.6g} ms or resample the recording."
            )
        channels = tuple(sim.monitor.channels(sim.network))
        rec = self
        if self.labelled:
            extra = [c for c in self.labels if c not in set(channels)]
            if extra:
                raise ValueError(
                    f"labels: {len(extra)} recorded channel(s) are not the simulator's "
                    f"channels: {extra[:8]}{' ...' if len(extra) > 8 else ''}; keep the "
                    f"model's channels with rec.select(...) (the simulator has "
                    f"{len(channels)}: {list(channels[:4])} ...)."
                )
            rec = self.select(channels)  # names missing channels
        elif self.n_channels != len(channels):
            raise ValueError(
                f"signal: {self.n_channels} channels, but the simulator's monitor gives "
                f"{len(channels)}; give the recording labels to match them by name."
            )
        if not times:
            return np.asarray(rec.signal)
        # the signal's sample times (`sim.time`: t = 0 first for `initial=True`; a
        # transient, never beside `initial`, drops leading samples)
        wanted = np.asarray(sim.time)[sim.transient_samples :]
        k = (wanted - self.start) / self.period
        idx = np.rint(k).astype(int)
        off = np.abs(k - idx) * self.period
        if np.any(off > _TOL * self.period * max(1.0, float(np.max(np.abs(k))))):
            raise ValueError(
                f"start: the recording's samples fall {float(off.max()):.6g} ms off the "
                f"simulator's sample times (which are multiples of {period:.6g} ms from "
                f"the recording's time zero); set `start` to the first sample's time."
            )
        t = self.time
        if idx[0] < 0 or idx[-1] >= self.n_samples:
            raise ValueError(
                f"duration: the simulator samples {wanted.size} times from "
                f"{wanted[0]:.6g} to {wanted[-1]:.6g} ms, the recording spans "
                f"{t[0]:.6g} to {t[-1]:.6g} ms; shorten the simulation (duration) or "
                f"record from the earlier time."
            )
        if not crop and (idx[0] > 0 or idx[-1] < self.n_samples - 1):
            left = [f"{t[0]:.6g} to {t[idx[0] - 1]:.6g} ms"] if idx[0] > 0 else []
            if idx[-1] < self.n_samples - 1:
                left.append(f"{t[idx[-1] + 1]:.6g} to {t[-1]:.6g} ms")
            raise ValueError(
                f"duration: the recording has samples the simulator does not produce "
                f"({' and '.join(left)}; the simulator samples {wanted[0]:.6g} to "
                f"{wanted[-1]:.6g} ms); lengthen the simulation to "
                f"{float(t[-1]):.6g} ms, crop the recording (rec.crop), or pass crop=True."
            )
        return np.asarray(rec.signal)[..., idx, :]

    def _with(self, signal: np.ndarray, **changes: Any) -> Recording:
        fields = dict(
            signal=signal,
            period=self.period,
            labels=self.labels,
            unit=self.unit,
            start=self.start,
            events=self.events,
            kind=self.kind,
            positions=self.positions,
            labelled=self.labelled,
        )
        fields.update(changes)
        return Recording(**fields)

    def __repr__(self) -> str:
        epochs = f"{np.shape(self.signal)[0]} epochs x " if np.ndim(self.signal) == 3 else ""
        return (
            f"Recording({self.kind}: {epochs}{self.n_samples} samples x {self.n_channels} "
            f"channels every {self.period:.6g} ms from {self.start:.6g} ms, unit "
            f"{self.unit!r}, {len(self.events)} events)"
        )
