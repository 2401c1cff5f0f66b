"""The `brainmass simulate` command and its private FC / spectrum helpers."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

import brainmass as bm
from brainmass.__main__ import main
from brainmass.plotting import (
    _functional_connectivity,
    _mean_fc,
    _peak_frequency,
    _power_spectrum,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _field(text: str, name: str) -> str:
    match = re.search(rf"^\s*{re.escape(name)}:\s+(.+)$", text, flags=re.MULTILINE)
    assert match is not None, f"no '{name}:' line in the summary:\n{text}"
    return match.group(1)


def _independent_mean_fc(n_regions: int, duration: float, seed: int) -> float:
    """The documented default network, built here through the public API; FC by np.corrcoef."""
    conn = bm.Connectome.synthetic(n_regions, seed=0)
    net = bm.Network(
        bm.models.Hopf(a=-0.04),
        conn,
        coupling=bm.coupling.Linear(G=0.08),
        speed=5.0,
        noise=bm.noise.Additive(sigma=0.01),
    )
    sim = bm.Simulator(
        net,
        dt=0.1,
        duration=duration,
        monitor=bm.monitors.TemporalAverage(period=1.0),
        init={"x": 0.0, "y": 0.0},
    )
    signal = np.asarray(sim.run(jax.random.key(seed)).signal, dtype=np.float64)
    fc = np.corrcoef(signal.T)
    return float(fc[~np.eye(n_regions, dtype=bool)].mean())


def test_simulate_prints_summary_and_writes_png(tmp_path, capsys):
    out = tmp_path / "x.png"
    code = main(["simulate", "--duration", "200", "--regions", "8", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0

    assert _field(text, "regions") == "8"
    assert _field(text, "duration").startswith("200 ms (200 samples")
    assert _field(text, "dt").startswith("0.1 ms (2000 steps")
    wall = float(re.match(r"([\d.]+) s", _field(text, "wall time")).group(1))
    assert wall > 0
    mean_fc = float(_field(text, "mean FC").split()[0])
    assert mean_fc == pytest.approx(_independent_mean_fc(8, 200.0, seed=0), abs=6e-4)
    mean_activity = float(_field(text, "mean activity").split()[0])
    assert np.isfinite(mean_activity)

    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000  # three panels, not an empty canvas
    assert str(out) in _field(text, "figure")


def test_simulate_blowup_exits_1(tmp_path, capsys):
    out = tmp_path / "never.png"
    # G = 1000 on max-normalised weights: the explicit step multiplies errors by ~G dt >> 1.
    code = main(
        ["simulate", "--duration", "200", "--regions", "8", "--coupling", "1000", "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "simulation failed" in captured.err
    assert "non-finite" in captured.err
    assert not out.exists()


def test_simulate_reads_connectome_file(tmp_path, capsys):
    path = bm.Connectome.synthetic(6, seed=3).save(tmp_path / "conn.npz")
    out = tmp_path / "c.png"
    code = main(["simulate", "--duration", "100", "--connectome", str(path), "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert _field(text, "regions") == "6"
    assert "conn.npz" in text
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_simulate_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["simulate", "--connectome", str(tmp_path / "missing.npz")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["simulate", "--regions", "7", "--out", str(tmp_path / "y.png")]) == 2
    assert "even" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--regions", "8", "--connectome", "c.npz"])
    assert exc.value.code == 2


def test_module_help_in_subprocess():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "brainmass", "simulate", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("--duration", "--regions", "--seed", "--coupling", "--noise", "--out"):
        assert option in proc.stdout
    assert "--connectome" in proc.stdout


def test_import_brainmass_loads_no_plotting():
    code = (
        "import sys, brainmass; "
        "print(sorted(m for m in ('brainmass.plotting', 'matplotlib.figure', "
        "'matplotlib.pyplot', 'matplotlib.backends.backend_agg') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_fc_helper_matches_corrcoef():
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((5, 5))
    signal = rng.standard_normal((400, 5)) @ mixing + 3.0
    fc = _functional_connectivity(signal)
    np.testing.assert_allclose(fc, np.corrcoef(signal.T), atol=1e-12)
    expected = np.corrcoef(signal.T)[~np.eye(5, dtype=bool)].mean()
    assert _mean_fc(fc) == pytest.approx(expected, abs=1e-12)


def test_fc_helper_constant_channel_is_nan_not_an_error():
    rng = np.random.default_rng(1)
    signal = rng.standard_normal((100, 3))
    signal[:, 1] = 2.0
    fc = _functional_connectivity(signal)
    assert np.isnan(fc[0, 1]) and np.isnan(fc[1, 2])
    assert fc[1, 1] == 1.0
    assert _mean_fc(fc) == pytest.approx(np.corrcoef(signal[:, [0, 2]].T)[0, 1], abs=1e-12)


def test_spectrum_peak_of_a_sine():
    t = np.arange(4000) * 1.0  # ms
    signal = np.stack([np.sin(2 * np.pi * 0.012 * t), np.cos(2 * np.pi * 0.012 * t + 1.0)], 1)
    freqs, power = _power_spectrum(signal, period_ms=1.0)
    assert freqs[1] == pytest.approx(1000.0 / 1024)  # Welch, 1024-sample segments at 1 kHz
    assert abs(_peak_frequency(freqs, power) - 12.0) <= freqs[1]


def test_demo_runs_end_to_end_on_a_tiny_subject(tmp_path, monkeypatch, capsys):
    """`brainmass demo` on an 8-region subject with tiny settings: every output is written."""
    import arviz as az

    from brainmass import _demo

    monkeypatch.setattr(_demo, "N_REGIONS", 8)
    tiny = dict(
        duration=4_000.0,
        num_warmup=30,
        num_samples=30,
        num_chains=2,
        map_steps=20,
        bank=64,
        epochs=3,
    )
    monkeypatch.setitem(_demo.SETTINGS, "quick", tiny)
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"coupling\.G\s+0\.0400 \|", out), out  # the side-by-side table
    for name in (
        "report.md",
        "posterior_nuts.nc",
        "posterior_npe.nc",
        "trace.png",
        "posterior_vs_truth.png",
        "npe_losses.png",
        "npe.pkl",
        "bank.npz",
        "data.npy",
    ):
        assert (tmp_path / "demo" / name).is_file(), name
    tree = az.from_netcdf(tmp_path / "demo" / "posterior_nuts.nc")
    assert tree["posterior"]["coupling.G"].shape == (2, 30)
    assert "NUTS" in (tmp_path / "demo" / "report.md").read_text()
