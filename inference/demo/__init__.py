"""The `brainmass demo` command: a default subject's three parameters inferred two ways.

`run_demo(out)` simulates the bundled subject (an Ornstein-Uhlenbeck network on a synthetic
20-region connectome with three hidden parameters), fits it by MAP and NUTS on the exact
Kalman likelihood (`likelihoods.StateSpace`) and by amortized neural posterior estimation
(`NPE`), checks both (posterior predictive check, SBC, TARP) and writes a results folder
with a report. `register` adds the `demo` subcommand to the `brainmass` command line; it is
the `brainmass.commands` entry point named `demo` (see `brainmass/__main__.py`). The steps
are described in `inference.demo._run`, the report in `inference.demo._report`.

    from inference.demo import run_demo
    facts = run_demo("brainmass-demo", quick=True)     # or: brainmass demo --quick
"""

from ._command import register as register
from ._run import default_subject as default_subject
from ._run import priors as priors
from ._run import run_demo as run_demo

__all__ = ["default_subject", "priors", "register", "run_demo"]
