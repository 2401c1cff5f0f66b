"""The `brainmass demo` subcommand, registered through the `brainmass.commands` entry points.

brainmass's command line (`brainmass/__main__.py`) does not import `inference`: it finds
this command through the entry point `demo = "inference.demo:register"` that pyproject.toml
declares in the group `brainmass.commands`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register"]

Handler = Callable[[argparse.Namespace, argparse.ArgumentParser], int]


def register(subparsers: Any) -> Handler:
    """Add the `demo` subcommand to the `brainmass` command; returns its handler.

    **Arguments:**

    - `subparsers`: the `argparse` subparsers of the `brainmass` command
      (`parser.add_subparsers(...)`); this adds one parser to it, named `demo`.

    **Returns:** the handler, `handler(args, parser) -> exit code`, called with the parsed
    arguments and the top-level parser: 0 on success, 2 when the results folder cannot
    be written (an invalid argument exits 2 through `parser.error`).
    """
    from ._run import DEMO_TIME, N_REGIONS, PERIOD, SETTINGS

    full, quick = SETTINGS["full"], SETTINGS["quick"]
    demo = subparsers.add_parser(
        "demo",
        help="infer the default subject's three parameters by NUTS and by amortized NPE",
        description=(
            "The bundled default subject: an Ornstein-Uhlenbeck network on the synthetic "
            f"{N_REGIONS}-region connectome, driven by noise and recorded every {PERIOD:g} ms "
            f"({full['n_samples'] * PERIOD / 1000:g} s of data), with three hidden "
            "parameters: the global coupling G, the regional decay rate lam and the noise "
            "level sigma. Fits them by MAP, then NUTS "
            f"({full['num_chains']} chains) on the exact Kalman-filter likelihood of the "
            "series (inference.likelihoods.StateSpace), checks the fit by posterior predictive "
            "simulation, and fits them again by a neural posterior estimator trained on "
            f"{full['bank']:,} simulations, whose calibration is measured on "
            f"{full['sbc']} held-out simulations (SBC, TARP); the calibration of the exact "
            "route is read from benchmarks/calibration_results.json when present. Prints "
            "every parameter's posterior beside the truth and writes a results folder "
            "(report.md, netCDF posteriors, plots, the trained estimator, the simulation "
            f"bank, which a rerun resumes). {DEMO_TIME['full']} on 2 idle CPU cores, JAX "
            f"compilation included (longer on a busy machine); --quick "
            f"({quick['n_samples'] * PERIOD / 1000:g} s of "
            f"data, {quick['num_chains']} shorter chains, {quick['bank']:,} simulations) "
            f"{DEMO_TIME['quick']}."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--out", type=Path, default=Path("brainmass-demo"), help="results folder")
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the subject's noise, a non-negative integer"
    )
    demo.add_argument("--quick", action="store_true", help="the smaller preset (see above)")
    demo.add_argument(
        "--no-npe", action="store_true", help="skip the amortized path (NPE and its calibration)"
    )
    return _demo


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ._run import run_demo

    if args.seed < 0:
        parser.error(f"demo --seed: expected a non-negative integer, got {args.seed}")
    if args.out.exists() and not args.out.is_dir():
        print(f"brainmass demo: --out {args.out} is a file, not a folder", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        run_demo(args.out, quick=args.quick, seed=args.seed, npe=not args.no_npe)
    except OSError as err:
        print(f"brainmass demo: cannot write {args.out}: {err}", file=sys.stderr)
        return 2
    print(f"brainmass demo: done in {time.perf_counter() - start:.0f} s")
    return 0
