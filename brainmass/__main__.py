"""The `brainmass` command line: `brainmass simulate`, `brainmass demo` (or `python -m`).

`brainmass simulate` runs the bundled default network, a Hopf (Stuart-Landau)
oscillator on every region of the synthetic 68-region connectome, coupled
linearly with conduction delays and driven by noise; it prints a short summary
and writes a figure (activity traces, functional connectivity, power spectrum).

Other subcommands come from installed packages, so that brainmass never imports the
packages built on it. A package registers a subcommand as an entry point in the group
`brainmass.commands` (pyproject.toml):

    [project.entry-points."brainmass.commands"]
    demo = "inference.demo:register"

The entry point's name is the subcommand; its object is a function
`register(subparsers) -> handler` that adds one parser of that name to `subparsers` (the
`argparse` subparsers of the `brainmass` command) and returns
`handler(args, parser) -> int`, called with the parsed arguments and the top-level parser
and returning the exit code. A subcommand whose package cannot be imported stays listed,
and running it says why it is unavailable (exit code 2).

`brainmass demo`, registered by the `inference` package of this distribution, infers the
three hidden parameters of a bundled default subject, a noise-driven Ornstein-Uhlenbeck
network, by MAP and NUTS on the exact (Kalman) likelihood and by amortized neural posterior
estimation, and writes a results folder (see `inference.demo`).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "build_parser", "COMMANDS_GROUP"]

# The default network, chosen so that its activity is worth looking at.
# The synthetic connectome is max-normalised, with spectral radius rho(W) ~ 1.35
# for 68 regions. A Hopf node with a < 0 is a damped 10 Hz oscillator; coupled
# linearly with 5 m/s delays, the rest state of the network loses stability at
# a critical gain G_c (measured on the noise-free network: small perturbations
# decay for G below it and grow above it):
#   a = -0.02/ms: G_c ~ 0.043, through a ~8 Hz mode. Delays of 5-50 ms dephase
#                 10 Hz fluctuations, so at any stable G the FC is close to
#                 sampling noise (|r| < 0.1, no visible structure in 10 s).
#   a = -0.04/ms: G_c ~ 0.095, through the slow collective mode, for which
#                 delays do not matter (at s = 0 the threshold is
#                 G rho(W) = (a^2 + omega^2)/|a|, delay-independent).
# a = -0.04, G = 0.08 (0.85 G_c, slowest decay rate ~0.008/ms) gives noise-driven
# alpha fluctuations riding on slow network fluctuations whose FC follows the
# structure: hemispheric blocks, corr(SC, FC) ~ 0.55. sigma = 0.01 keeps the
# amplitude (~0.04) in the near-linear regime; larger noise lets the cubic term
# add damping and washes the structure out.
DEFAULT_REGIONS = 68
DEFAULT_CONNECTOME_SEED = 0
DEFAULT_A = -0.04  # 1/ms
DEFAULT_G = 0.08
DEFAULT_SIGMA = 0.01
DEFAULT_SPEED = 5.0  # m/s
DEFAULT_DT = 0.1  # ms
DEFAULT_DURATION = 10_000.0  # ms
DEFAULT_PERIOD = 1.0  # ms, TemporalAverage
DEFAULT_OUT = "brainmass-simulate.png"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `brainmass` command: `simulate` and the registered commands."""
    parser = argparse.ArgumentParser(
        prog="brainmass",
        description="Differentiable whole-brain modelling in JAX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sim = sub.add_parser(
        "simulate",
        help="simulate the default Hopf network and plot it",
        description=(
            "Simulate noise-driven Hopf oscillators (a = -0.04/ms, 10 Hz) on a connectome "
            "with linear delayed coupling (5 m/s), dt = 0.1 ms, recorded as 1 ms averages. "
            "Prints a summary (regions, duration, wall time, mean activity, mean FC) and "
            "writes a PNG with activity traces, the FC matrix and the power spectrum."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sim.add_argument(
        "--duration", type=float, default=DEFAULT_DURATION, help="simulated time in ms"
    )
    sim.add_argument(
        "--regions",
        type=int,
        default=None,
        help=f"regions of the synthetic connectome, an even number (default {DEFAULT_REGIONS})",
    )
    sim.add_argument("--seed", type=int, default=0, help="seed of the noise (jax.random.key)")
    sim.add_argument(
        "--coupling", type=float, default=DEFAULT_G, help="global coupling gain G (Linear)"
    )
    sim.add_argument(
        "--noise", type=float, default=DEFAULT_SIGMA, help="additive noise intensity sigma"
    )
    sim.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="the PNG to write")
    sim.add_argument(
        "--connectome",
        type=Path,
        default=None,
        metavar="PATH",
        help="a TVB connectivity .zip or a .npz from Connectome.save (weights are "
        "max-normalised); default: the synthetic connectome",
    )
    sim.set_defaults(handler=_simulate)

    _add_registered_commands(sub)
    return parser


COMMANDS_GROUP = "brainmass.commands"
# subcommands that this distribution's other package provides: named even when missing
_EXPECTED = {"demo": "inference"}


def _entry_points() -> list[Any]:
    """The installed `brainmass.commands` entry points, by name (not loaded)."""
    from importlib.metadata import entry_points

    return sorted(entry_points(group=COMMANDS_GROUP), key=lambda ep: ep.name)


def _add_registered_commands(sub: Any) -> None:
    """Add the subcommands of the installed `brainmass.commands` entry points to `sub`."""
    for ep in _entry_points():
        if ep.name in sub.choices:
            continue  # the first registration of a name wins
        try:
            handler = ep.load()(sub)
        except Exception as err:  # noqa: BLE001 - a broken package must not break `simulate`
            _add_unavailable(
                sub, ep.name, f"{ep.value} failed to load ({type(err).__name__}: {err})"
            )
            continue
        if ep.name not in sub.choices or not callable(handler):
            _add_unavailable(
                sub, ep.name, f"{ep.value} did not add a '{ep.name}' parser and return a handler"
            )
            continue
        sub.choices[ep.name].set_defaults(handler=handler)
    for name in _EXPECTED:
        if name not in sub.choices:
            _add_unavailable(sub, name, "no installed package registers it")


def _add_unavailable(sub: Any, name: str, reason: str) -> None:
    """A subcommand that says why it cannot run (its arguments are accepted and ignored)."""
    if name in _EXPECTED:
        reason += (
            f"; it comes with the `{_EXPECTED[name]}` package of the brainmass distribution: "
            "pip install brainmass (pip install -e . in a source checkout) installs both"
        )

    def handler(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        print(f"brainmass {name}: unavailable: {reason}.", file=sys.stderr)
        return 2

    stub = sub.choices.get(name)  # a registration that failed half-way left its parser
    if stub is None:
        stub = sub.add_parser(
            name, help=f"(unavailable: {reason})", description=f"Unavailable: {reason}."
        )
    stub.set_defaults(handler=handler, accepts_extra=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `brainmass` command with `argv` (default `sys.argv[1:]`); returns the exit code.

    Exit codes: 0 on success, 1 when the simulation blew up (`SimulationError`),
    2 for invalid arguments or input files, or a subcommand that is unavailable.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.handler(args, parser)


def _simulate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import jax

    import brainmass as bm

    from .plotting import _functional_connectivity, _mean_fc, _peak_frequency, _power_spectrum

    if args.connectome is not None and args.regions is not None:
        parser.error("--regions applies to the synthetic connectome; drop it with --connectome")
    try:
        if args.connectome is not None:
            conn = bm.Connectome.load(args.connectome, normalize="max")
            source = f"connectome {args.connectome}"
        else:
            n = DEFAULT_REGIONS if args.regions is None else args.regions
            conn = bm.Connectome.synthetic(n, seed=DEFAULT_CONNECTOME_SEED)
            source = f"synthetic connectome (seed {DEFAULT_CONNECTOME_SEED})"
        noise = bm.noise.Additive(sigma=args.noise) if args.noise > 0 else None
        model = bm.models.Hopf(a=DEFAULT_A)
        net = bm.Network(
            model,
            conn,
            coupling=bm.coupling.Linear(G=args.coupling),
            speed=DEFAULT_SPEED,
            noise=noise,
        )
        # Start at rest (the fixed point): no synchronous transient to discard.
        # Without noise nothing would move from rest, so start from the model's default.
        init = {"x": 0.0, "y": 0.0} if noise is not None else None
        sim = bm.Simulator(
            net,
            dt=DEFAULT_DT,
            duration=args.duration,
            monitor=bm.monitors.TemporalAverage(period=DEFAULT_PERIOD),
            init=init,
        )
    except (ValueError, OSError) as err:
        print(f"brainmass simulate: error: {err}", file=sys.stderr)
        return 2

    n = conn.n_regions
    weights = np.asarray(conn.weights, dtype=np.float64)
    rho = float(np.max(np.abs(np.linalg.eigvals(weights))))
    max_delay = float(np.max(np.asarray(net.delays_ms())))

    start = time.perf_counter()
    try:
        res = sim.run(jax.random.key(args.seed))
        signal = np.asarray(jax.block_until_ready(res.signal))
    except bm.SimulationError as err:
        print(f"brainmass simulate: simulation failed: {err}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start

    fc = _functional_connectivity(signal) if signal.shape[0] >= 2 else None
    mean_fc = _mean_fc(fc) if fc is not None else float("nan")
    period = sim.period
    peak = float("nan")
    if signal.shape[0] >= 8:
        peak = _peak_frequency(*_power_spectrum(signal, period))

    lines = [
        f"brainmass simulate: Hopf network on the {source}",
        f"  regions:        {n}",
        f"  model:          Hopf, a = {float(model.a):g}/ms, "
        f"omega = 2 pi x {float(model.omega) * 1000 / (2 * math.pi):.3g} Hz",
        f"  duration:       {sim.n_samples * period:g} ms "
        f"({sim.n_samples} samples, 1 ms temporal average)",
        f"  dt:             {sim.dt:g} ms ({sim.n_steps} steps, {type(sim.solver).__name__})",
        f"  coupling:       Linear G = {args.coupling:g} (G * rho(W) = {args.coupling * rho:.3g}),"
        f" delays up to {max_delay:.1f} ms at {DEFAULT_SPEED:g} m/s",
        "  noise:          "
        + (f"additive, sigma = {args.noise:g}" if noise is not None else "none"),
        f"  wall time:      {wall:.2f} s (including JIT compilation)",
        f"  mean activity:  {float(signal.mean()):.4g} (std {float(signal.std()):.4g})",
        f"  mean FC:        {mean_fc:.3f} (mean off-diagonal Pearson correlation)",
        f"  spectral peak:  {peak:.1f} Hz",
    ]
    print("\n".join(lines), flush=True)

    from .plotting import plot_simulation

    try:
        out = plot_simulation(
            np.asarray(res.time),
            signal,
            args.out,
            labels=res.labels,
            title=f"Hopf network, {n} regions, G = {args.coupling:g}, sigma = {args.noise:g}",
        )
    except OSError as err:
        print(f"brainmass simulate: cannot write {args.out}: {err}", file=sys.stderr)
        return 2
    print(f"  figure:         {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
