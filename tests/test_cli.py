"""The `brainmass` command: `simulate` and its private FC / spectrum helpers, and `demo`
(from `inference`, found through the `brainmass.commands` entry points)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

import brainmass as bm
from brainmass.__main__ import build_parser, main
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


# ------------------------------------------------------------------------------ demo

# 6 regions, 100 samples, short chains and a tiny bank: every step of the demo runs and
# writes its files (the posteriors are not converged: the shape is tested, not the science)
TINY = dict(
    n_regions=6,
    n_samples=100,
    map_steps=10,
    num_warmup=20,
    num_samples=20,
    num_chains=2,
    bank=60,
    sbc=20,
    epochs=3,
    ppc=20,
)
DEMO_FILES = (
    "report.md",
    "data.npy",
    "posterior_nuts.nc",
    "posterior_npe.nc",
    "posterior_vs_truth.png",
    "trace.png",
    "ppc.png",
    "calibration.png",
    "npe_losses.png",
    "npe.npz",
    "bank.npz",
)


def _markdown_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of the markdown table whose header's first cell is `first_cell`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _interval(cell: str) -> tuple[float, float]:
    lo, hi = cell.strip("[]").split(",")
    return float(lo), float(hi)


def test_demo_tiny_run_writes_the_report(tmp_path):
    """The whole demo on a 6-region subject with tiny settings: files, report shape, bank."""
    import arviz as az

    import inference as inf
    from inference.demo import _run as _demo

    out = tmp_path / "demo"
    lines: list[str] = []
    facts = _demo.run_demo(out, quick=True, seed=0, settings=TINY, say=lines.append)
    printed = "\n".join(lines)

    for name in DEMO_FILES:
        assert (out / name).is_file(), name
    for name in DEMO_FILES:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    assert np.load(out / "data.npy").shape == (TINY["n_samples"], TINY["n_regions"])
    tree = az.from_netcdf(out / "posterior_nuts.nc")
    assert tree["posterior"]["coupling.G"].shape == (TINY["num_chains"], TINY["num_samples"])
    for step in range(1, 6):
        assert f"[{step}/5]" in printed

    # one row per parameter, three parameters, the same table printed and in report.md
    report = (out / "report.md").read_text()
    table = _markdown_rows(report, "parameter")
    header, body = table[0], table[2:]
    assert [row[0] for row in body] == ["coupling.G", "model.lam", "noise.sigma"]
    assert all(len(row) == len(header) for row in body)
    assert "NUTS mean ± sd" in header and "NPE mean ± sd" in header
    assert _markdown_rows(printed, "parameter") == table
    for row in body:
        cells = dict(zip(header, row, strict=True))
        truth = _demo.TRUTH[cells["parameter"]]
        assert float(cells["truth"]) == truth
        lo, hi = _demo.BOUNDS[cells["parameter"]]
        for route in ("NUTS", "NPE"):
            lo90, hi90 = _interval(cells[f"{route} 90 % interval"])
            lo99, hi99 = _interval(cells[f"{route} 99 % interval"])
            # nested intervals inside the prior box, and the yes/no column agrees with them
            assert lo <= lo99 <= lo90 < hi90 <= hi99 <= hi
            inside = cells[f"truth in {route} 90 % / 99 %"].split(" / ")
            assert inside == [
                "yes" if a <= truth <= b else "no" for a, b in ((lo90, hi90), (lo99, hi99))
            ]
        assert lo <= float(cells["MAP"]) <= hi

    # the posterior predictive check: five statistics with p-values in [0, 1]
    ppc = _markdown_rows(report, "statistic")[2:]
    assert [row[0] for row in ppc] == list(_demo.PPCStatistics.names)
    assert all(0.0 <= float(row[2]) <= 1.0 for row in ppc)
    assert set(facts["ppc"]) == set(_demo.PPCStatistics.names)
    # the calibration of both routes is reported (NUTS: the stored benchmark or 'not measured')
    assert "NPE on this problem: SBC on 20 held-out" in report
    assert "NUTS on the exact likelihood: not measured" in report or "stored benchmark" in report

    # resumable bank: the demo's own request for its bank finds it complete in bank.npz
    stored = inf.SimulationBank.load(out / "bank.npz")
    assert facts["bank"] == {"simulations": len(stored), "failed": 0, "resumed": 0}
    sim = _demo.default_subject(TINY["n_regions"], TINY["n_samples"])
    estimator = inf.NPE(sim, _demo.priors(), _demo.LagStatistics(sim.network.connectome.weights))
    cfg = _demo._settings(True, TINY)
    again = _demo._bank(estimator, _demo._keys(0)["bank"], cfg, out / "bank.npz")
    np.testing.assert_array_equal(again.theta, stored.theta)
    assert len(again) == len(stored) == TINY["bank"] + TINY["sbc"]


def test_demo_statistics_match_numpy():
    """The NPE summary and the PPC statistics against plain NumPy on a random series."""
    from inference.demo import _run as _demo

    rng = np.random.default_rng(3)
    n = 6
    weights = np.abs(rng.standard_normal((n, n)))
    x = rng.standard_normal((400, n)) @ rng.standard_normal((n, n)) * 0.1
    x0, x1 = x[:-1], x[1:]
    c00 = np.mean(x0**2)
    expected = [
        np.log(c00),
        np.trace(weights @ (x0.T @ x0)) / x0.size / c00,
        np.trace(weights.T @ weights @ (x0.T @ x0)) / x0.size / c00,
        np.trace(x1.T @ x0) / x0.size / c00,
        np.trace(weights @ (x0.T @ x1)) / x0.size / c00,
        np.log(np.mean((x1 - x0) ** 2)),
    ]
    got = np.asarray(_demo.LagStatistics(weights)(x.astype(np.float32)))
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6)

    fc = np.corrcoef(x.T)
    iu = np.triu_indices(n, 1)
    xc = x - x.mean(axis=0)
    lag1 = [np.mean(xc[1:, i] * xc[:-1, i]) / np.var(x[:, i]) for i in range(n)]
    expected = [
        np.mean(np.var(x, axis=0)),
        np.mean(lag1),
        np.mean(fc[iu]),
        np.corrcoef(fc[iu], weights[iu])[0, 1],
        np.var(x.mean(axis=1)) / np.mean(np.var(x, axis=0)),
    ]
    got = np.asarray(_demo.PPCStatistics(weights)(x.astype(np.float32)))
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6)


def test_demo_stored_calibration_reader_is_tolerant():
    """The stored benchmark is summarised whatever its layout, and never crashes the report."""
    from inference.demo import _report as _demo_report

    by_problem = {
        "ou_raw": {
            "description": "OU, 3 regions",
            "statespace": {
                "n": 100,
                "coverage50": {"coupling.G": 0.49, "model.lam": 0.52},
                "coverage90": {"coupling.G": 0.9, "model.lam": 0.88},
                "sbc_p": {"coupling.G": 0.4, "model.lam": 0.7},
                "wall_s": 12.0,
            },
            "whittle": {"n": 100, "coverage90": {"coupling.G": 0.85}},
        },
        "meta": {"version": 1},
    }
    lines = _demo_report.stored_lines({"path": "x.json", "results": by_problem})
    assert len(lines) == 1
    assert lines[0].startswith("ou_raw / statespace: n: 100; coverage50: coupling.G 0.49")
    assert "coverage90: coupling.G 0.90, model.lam 0.88" in lines[0]
    assert "sbc_p" in lines[0] and "wall_s" not in lines[0]
    assert lines[0].endswith("(OU, 3 regions)")
    as_list = {"rows": [{"route": "x", "StateSpace": {"coverage90": 0.91, "n": 50}}]}
    assert _demo_report.stored_lines({"path": "x", "results": as_list}) == [
        "rows / 0 / StateSpace: coverage90: 0.91; n: 50"
    ]
    other = _demo_report.stored_lines({"path": "x", "results": {"fc": {"coverage90": 0.9}}})
    assert other == ["no entry for the exact-likelihood route found (top level: ['fc'])"]
    assert _demo_report.stored_lines({"path": "x", "results": [1, 2]})[0].startswith("no entry")
    assert _demo_report.stored_lines({"path": "x", "error": "ValueError: bad"}) == [
        "could not be read (ValueError: bad)"
    ]
    assert _demo_report.stored_lines(None) == []


def test_demo_help_describes_the_run(capsys):
    from inference.demo import _run as _demo

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for option in ("--out", "--seed", "--quick", "--no-npe"):
        assert option in text
    full, quick = _demo.SETTINGS["full"], _demo.SETTINGS["quick"]
    assert f"synthetic {full['n_regions']}-region connectome" in text
    assert (
        f"recorded every {_demo.PERIOD:g} ms ({full['n_samples'] * _demo.PERIOD / 1000:g} s" in text
    )
    assert f"trained on {full['bank']:,} simulations" in text
    assert f"({full['num_chains']} chains)" in text
    assert f"{quick['num_chains']} shorter chains, {quick['bank']:,} simulations" in text
    assert "StateSpace" in text and "MAP" in text and "posterior predictive" in text
    assert _demo.DEMO_TIME["full"] in text and _demo.DEMO_TIME["quick"] in text
    assert "default: brainmass-demo" in text


def test_demo_bad_arguments(tmp_path, capsys):
    from inference.demo import _run as _demo

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--seed", "-1", "--out", str(tmp_path / "a")])
    assert exc.value.code == 2
    assert "non-negative" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--seed", "one"])
    assert exc.value.code == 2
    assert "invalid int value" in capsys.readouterr().err
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["demo", "--out", str(afile)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()

    out = tmp_path / "never"
    for settings, message in (
        ({"regions": 6}, "unknown setting 'regions'"),
        ({"n_regions": 7}, "must be even"),
        ({"num_chains": 1}, "num_chains must be an integer >= 2"),
        ({"bank": 100.0}, "bank must be an integer"),
        ({"epochs": True}, "epochs must be an integer"),
        ([("bank", 100)], "expected a dict"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            _demo.run_demo(out, settings=settings)
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed: expected a non-negative integer"):
            _demo.run_demo(out, seed=seed)
    assert not out.exists()  # refused before anything is written


def test_demo_is_registered_by_inference_through_an_entry_point():
    from importlib.metadata import entry_points

    import inference.demo

    (ep,) = [ep for ep in entry_points(group="brainmass.commands") if ep.name == "demo"]
    assert ep.load() is inference.demo.register
    parser = build_parser()
    args = parser.parse_args(["demo", "--quick", "--seed", "3"])
    assert args.quick and args.seed == 3 and callable(args.handler)


def test_demo_unavailable_without_inference(monkeypatch, capsys, tmp_path):
    """`inference` not importable: `brainmass demo` says so; `simulate` is unaffected."""
    monkeypatch.setitem(sys.modules, "inference.demo", None)  # import fails
    assert main(["demo", "--quick", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "brainmass demo: unavailable: inference.demo:register failed to load (" in err
    assert "ModuleNotFoundError" in err
    assert not (tmp_path / "d").exists()
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0


def test_demo_unavailable_without_the_entry_point(monkeypatch, capsys):
    import brainmass.__main__ as cli

    monkeypatch.setattr(cli, "_entry_points", lambda: [])
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "brainmass demo: unavailable: no installed package registers it" in err
    assert "comes with the `inference` package" in err
    with pytest.raises(SystemExit) as exc:  # other commands still reject unknown options
        main(["simulate", "--bogus"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
