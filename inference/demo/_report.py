"""The demo's report: posteriors beside the truth, the calibration of both routes, plots.

Private to `brainmass demo` (`inference.demo._run` runs the fits and hands their facts here):
`table` (one row per parameter), `write_report` (`report.md`), `plots` (the PNG files) and
the tolerant reader of the stored calibration benchmark, `stored_calibration` /
`stored_lines`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._run import (
    BOUNDS,
    CONNECTOME_SEED,
    DT,
    NPE_FLOW,
    PERIOD,
    SBC_DRAWS,
    STORED_CALIBRATION,
    TRUTH,
    UNITS,
)

# =====================================================================================
# the stored calibration of the exact-likelihood route
# =====================================================================================


def stored_calibration() -> dict[str, Any] | None:
    """`benchmarks/calibration_results.json` of a source checkout, if it has been written.

    `{"path", "results"}` with the parsed JSON, `{"path", "error"}` when it cannot be read,
    None when there is no such file (an installed package has no benchmarks folder).
    """
    path = Path(__file__).resolve().parents[2] / STORED_CALIBRATION
    if not path.is_file():
        return None
    try:
        return {"path": str(path), "results": json.loads(path.read_text())}
    except (OSError, ValueError) as err:
        return {"path": str(path), "error": f"{type(err).__name__}: {err}"}


_EXACT_ROUTE = ("statespace", "state_space", "exact", "nuts")


def _coverage_entries(tree: Any, where: tuple[str, ...] = (), about: str | None = None):
    """Every dict in a JSON tree that holds a coverage figure: `(path of keys, dict, about)`.

    `about` is the nearest enclosing `"description"` string (the benchmark problem).
    """
    if isinstance(tree, Mapping):
        if isinstance(tree.get("description"), str):
            about = tree["description"]
        if any(str(k).lower().startswith("coverage") for k in tree):
            yield where, tree, about
        for k, v in tree.items():
            yield from _coverage_entries(v, (*where, str(k)), about)
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _coverage_entries(v, (*where, str(i)), about)


def _short(value: Any) -> str:
    """A JSON value in a few characters: numbers to 2 decimals, dicts as `k v, ...`."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.2f}" if isinstance(value, float) else str(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value[:6]) + (", ...]" if len(value) > 6 else "]")
    return str(value)


def stored_lines(stored: Mapping[str, Any] | None, limit: int = 12) -> list[str]:
    """What the stored benchmark says about the exact-likelihood route, one line per entry.

    Tolerant of the file's layout: it looks for dicts with a `coverage...` key under a path
    that names the exact route (StateSpace / NUTS) and prints their figures; otherwise it
    says what the file holds.
    """
    if stored is None:
        return []
    if "error" in stored:
        return [f"could not be read ({stored['error']})"]
    entries = list(_coverage_entries(stored["results"]))
    exact = [e for e in entries if any(r in "/".join(e[0]).lower() for r in _EXACT_ROUTE)]
    if not exact:
        results = stored["results"]
        keys = list(results)[:10] if isinstance(results, Mapping) else type(results).__name__
        return [f"no entry for the exact-likelihood route found (top level: {keys})"]
    lines = []
    for where, entry, about in exact[:limit]:
        figures = "; ".join(
            f"{k}: {_short(v)}"
            for k, v in entry.items()
            if str(k).lower() == "n" or str(k).lower().startswith(("coverage", "sbc"))
        )
        problem = "" if about is None else f" ({about[:100]}{'...' * (len(about) > 100)})"
        lines.append(f"{' / '.join(where) or '(top level)'}: {figures}{problem}")
    if len(exact) > limit:
        lines.append(f"... and {len(exact) - limit} more entries in the file")
    return lines


def calibration_text(facts: Mapping[str, Any]) -> str:
    """The calibration of both routes, as printed at the end of the run."""
    lines = ["calibration:"]
    if "sbc" in facts:
        s = facts["sbc"]
        lines.append(
            f"  NPE, this problem, {s['n']} held-out simulations: 90 % intervals cover "
            + ", ".join(f"{p} {v:.2f}" for p, v in s["coverage90"].items())
            + "; SBC rank p = "
            + ", ".join(f"{v:.2f}" for v in s["pvalues"].values())
            + f" ({'passed' if s['passed'] else 'FAILED'}); TARP ATC {s['tarp_atc']:+.3f}"
        )
    stored = facts["stored_calibration"]
    if stored is None:
        lines.append(
            "  NUTS on the exact likelihood: not measured (no benchmarks/calibration_results.json;"
            " run benchmarks/calibration.py)"
        )
    else:
        lines.append(f"  exact likelihood (StateSpace), stored benchmark {stored['path']}:")
        lines += [f"    {line}" for line in stored_lines(stored)]
    return "\n".join(lines)


# =====================================================================================
# the report
# =====================================================================================


def describe(samples: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per parameter: mean, sd, intervals and the truth's quantile, from `(chains, draws)`.

    The 90 % (`q05`, `q95`) and 99 % (`q005`, `q995`) equal-tailed intervals;
    `truth_quantile` is the fraction of draws below the truth.
    """
    rows = {}
    for p in TRUTH:
        v = np.asarray(samples[p], dtype=float).ravel()
        q05, q95, q005, q995 = np.quantile(v, (0.05, 0.95, 0.005, 0.995))
        rows[p] = dict(
            mean=float(np.mean(v)), sd=float(np.std(v)), q05=float(q05), q95=float(q95),
            q005=float(q005), q995=float(q995), truth_quantile=float(np.mean(v < TRUTH[p])),
        )  # fmt: skip
    return rows


def format_values(values: Mapping[str, float]) -> str:
    """`{path: value}` as `path = value, ...` (4 significant digits)."""
    return ", ".join(f"{p} = {v:.4g}" for p, v in values.items())


def _inside(r: Mapping[str, float], truth: float) -> str:
    """`yes / yes`: whether the truth is inside the 90 % and the 99 % interval."""
    return " / ".join(
        "yes" if r[lo] <= truth <= r[hi] else "no" for lo, hi in (("q05", "q95"), ("q005", "q995"))
    )


def table(facts: Mapping[str, Any]) -> str:
    """The posteriors beside the truth, one row per parameter (a markdown table).

    Columns: truth, MAP, then per route the mean ± sd, the 90 % and 99 % intervals and
    whether they hold the truth.
    """
    rows = facts["rows"]
    head = "| parameter | unit | truth | MAP |"
    for name in rows:
        head += (
            f" {name} mean ± sd | {name} 90 % interval | {name} 99 % interval |"
            f" truth in {name} 90 % / 99 % |"
        )
    lines = [head, "|" + "---|" * (4 + 4 * len(rows))]
    for p, truth in TRUTH.items():
        cells = [p, UNITS[p], f"{truth:g}", f"{facts['map'][p]:.4g}"]
        for route in rows.values():
            r = route[p]
            cells += [
                f"{r['mean']:.4g} ± {r['sd']:.2g}",
                f"[{r['q05']:.4g}, {r['q95']:.4g}]",
                f"[{r['q005']:.4g}, {r['q995']:.4g}]",
                _inside(r, truth),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(path: Path, facts: Mapping[str, Any]) -> None:
    """`report.md` from the facts of a run (see `inference.demo.run_demo`)."""
    cfg, t = facts["settings"], facts["time_s"]
    lines = [
        "# brainmass demo: the default subject",
        "",
        f"OU network on the synthetic {cfg['n_regions']}-region connectome (seed "
        f"{CONNECTOME_SEED}), every region recorded every {PERIOD:g} ms for "
        f"{cfg['n_samples']} samples (Raw, no measurement noise), simulated by stochastic "
        f"Heun at dt = {DT:g} ms from rest with noise seed {facts['seed']}. Priors: "
        + ", ".join(f"{p} ~ Uniform{b}" for p, b in BOUNDS.items())
        + ".",
        "",
        "## Posteriors beside the truth",
        "",
        table(facts),
        "",
        "Equal-tailed intervals. With three parameters, a calibrated posterior leaves the "
        "truth outside one of the three 90 % intervals for about one seed in four, and "
        "outside one of the 99 % intervals for about one in thirty-three. The truth's "
        "quantile in each posterior ("
        + " / ".join(facts["rows"])
        + "): "
        + ", ".join(
            f"{p} " + " / ".join(f"{r[p]['truth_quantile']:.2f}" for r in facts["rows"].values())
            for p in TRUTH
        )
        + ".",
        "",
        f"- MAP: 4 starts x {cfg['map_steps']} Adam steps on the exact likelihood "
        f"(StateSpace), {t['map']:.0f} s.",
        f"- NUTS (NumPyro, dense mass matrix, chains started at the MAP): {cfg['num_chains']} "
        f"chains x ({cfg['num_warmup']} warmup + {cfg['num_samples']}), "
        f"{facts['divergent']} divergent, {t['nuts']:.0f} s. R-hat "
        + ", ".join(f"{p} {v:.3f}" for p, v in facts["rhat"].items())
        + "; bulk ESS "
        + ", ".join(f"{p} {v:.0f}" for p, v in facts["ess"].items())
        + ".",
    ]
    if "bank" in facts:
        b = facts["bank"]
        lines.append(
            f"- NPE (MAF, {NPE_FLOW['flow_layers']} layers, on six lag-0/lag-1 statistics): "
            f"bank of {b['simulations']} prior simulations ({b['failed']} failed"
            + (f", {b['resumed']} resumed from bank.npz" if b["resumed"] else "")
            + f"), the last {facts['sbc']['n']} held out, {facts['npe_epochs']} epochs, "
            f"{t['npe']:.0f} s with its calibration."
        )
    else:
        lines.append("- NPE: skipped (--no-npe).")
    lines += [
        "",
        "## Posterior predictive check (NUTS)",
        "",
        f"{facts['ppc_n']} simulations at NUTS draws ({facts['ppc_failed']} failed). "
        "Two-sided predictive p-values (a statistic is flagged below 0.01/5):",
        "",
        "| statistic | observed | p-value |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {obs:.4g} | {p:.2f} |" for k, (obs, p) in facts["ppc"].items()]
    lines += ["", "## Calibration", ""]
    if "sbc" in facts:
        s = facts["sbc"]
        lines.append(
            f"- NPE on this problem: SBC on {s['n']} held-out prior simulations, "
            f"{SBC_DRAWS} draws each. Coverage of the 50 % intervals "
            + ", ".join(f"{p} {v:.2f}" for p, v in s["coverage50"].items())
            + "; of the 90 % intervals "
            + ", ".join(f"{p} {v:.2f}" for p, v in s["coverage90"].items())
            + "; rank-uniformity p-values "
            + ", ".join(f"{p} {v:.2f}" for p, v in s["pvalues"].items())
            + f" ({'passed' if s['passed'] else 'FAILED'} at 0.01, Bonferroni); TARP "
            f"area-to-curve {s['tarp_atc']:+.3f} (0 when calibrated). See calibration.png."
        )
    stored = facts["stored_calibration"]
    if stored is None:
        lines.append(
            "- NUTS on the exact likelihood: not measured by this demo (an SBC needs one NUTS "
            "run per simulated dataset, which does not fit its time); benchmarks/calibration.py "
            "measures the StateSpace route, and the demo reports its "
            "benchmarks/calibration_results.json here when a source checkout has it."
        )
    else:
        lines.append(
            f"- The exact likelihood (StateSpace), from the stored benchmark {stored['path']}: "
            "SBC over simulated datasets of its own small networks, not this one, with the "
            "posterior computed there on a grid (NUTS samples the same posterior):"
        )
        lines += [f"    - {line}" for line in stored_lines(stored)]
    load = facts["load"]
    lines += [
        "",
        "## Time",
        "",
        ", ".join(f"{k} {v:.0f} s" for k, v in t.items())
        + (" (npe in a second thread, beside map and nuts)" if "npe" in t else "")
        + f"; in all {facts['wall_s']:.0f} s wall, {facts['cpu_s']:.0f} s CPU (this process;"
        f" JAX compilation included), 1-minute load average {load[0]:.1f} at the start and "
        f"{load[1]:.1f} at the end.",
        "",
    ]
    path.write_text("\n".join(lines))


# =====================================================================================
# plots
# =====================================================================================


def plots(out, post, rows, facts, check, estimator, sbc, tarp, az) -> None:
    """Write the PNG files: posteriors beside the truth, traces, the predictive check, NPE.

    `calibration.png` and `npe_losses.png` only when NPE ran.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    npe_post = None
    if "NPE" in rows:
        from inference import Posterior

        npe_post = Posterior.load(out / "posterior_npe.nc")
    fig, axes = plt.subplots(1, len(TRUTH), figsize=(4.2 * len(TRUTH), 3.4))
    for ax, p in zip(axes, TRUTH, strict=True):
        sets = [("NUTS", post.samples[p], "C0")]
        if npe_post is not None:
            sets.append(("NPE", npe_post.samples[p], "C1"))
        # the x range: every route's 99 % interval, the truth and the MAP
        ends = [TRUTH[p], facts["map"][p]]
        ends += [rows[name][p][q] for name in rows for q in ("q005", "q995")]
        lo, hi = min(ends), max(ends)
        pad = 0.1 * (hi - lo)
        bins = np.linspace(lo - pad, hi + pad, 60)
        for name, v, color in sets:
            ax.hist(np.ravel(v), bins=bins, density=True, alpha=0.5, color=color, label=name)
        ax.axvline(TRUTH[p], color="k", lw=2, label="truth")
        ax.axvline(facts["map"][p], color="C3", ls="--", label="MAP")
        ax.set(xlabel=f"{p} ({UNITS[p]})", yticks=[], xlim=(bins[0], bins[-1]))
    axes[0].legend(fontsize="small")
    fig.suptitle("posterior beside the truth")
    _save(fig, out / "posterior_vs_truth.png", plt)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pc = az.plot_trace_dist(post.to_arviz(), var_names=list(TRUTH), backend="matplotlib")
    _save(getattr(pc, "figure", None) or plt.gcf(), out / "trace.png", plt)

    fig, axes = plt.subplots(
        1, len(check.names), figsize=(3.2 * len(check.names), 3.0), layout="constrained"
    )
    check.plot(ax=axes)
    fig.suptitle("posterior predictive check (NUTS draws)")
    _save(fig, out / "ppc.png", plt)

    if sbc is not None:
        d = len(sbc.names)
        fig, axes = plt.subplots(1, d + 2, figsize=(3.4 * (d + 2), 3.0), layout="constrained")
        sbc.plot(ax=axes[:d])
        sbc.plot_ecdf(ax=axes[d])
        tarp.plot(ax=axes[d + 1])
        fig.suptitle(f"NPE calibration on {sbc.n_sims} held-out prior simulations")
        _save(fig, out / "calibration.png", plt)
        _save(estimator.plot_losses().figure, out / "npe_losses.png", plt)


def _save(fig, path: Path, plt) -> None:
    fig = getattr(fig, "figure", fig)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close("all")
