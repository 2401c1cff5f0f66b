"""Shared test configuration: strict rank promotion, shared data, small fixtures."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# The tests are bound by XLA compilation, not by running the compiled code: small networks,
# short runs, many distinct programs. LLVM's optimisation passes are most of each compile, and
# without them the tests spend ~30 % less CPU (test_sbi + the demo test: 142 s -> 99 s user
# time; the suite outside the notebooks about 1670 -> 1300 worker-seconds). Results change
# only by float32 rounding. Set before jax starts its backend; the notebooks that run long
# simulations get the flags from outside back (tests/test_notebooks.py), since unoptimised
# code runs them several times slower. An XLA_FLAGS of your own that sets the level wins;
# benchmarks never use this.
# the flags from outside, for the notebooks that run code rather than compile it
os.environ.setdefault("BRAINMASS_XLA_FLAGS_OUTSIDE", os.environ.get("XLA_FLAGS", ""))
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

# JAX's persistent compilation cache (brainmass turns it on when imported): one fresh folder
# per test session, shared by the xdist workers and the notebook kernels (they inherit the
# environment), so a session compiles each program once and starts from nothing, as in a
# fresh clone; the user's own cache is left alone. tests/test_compile_cache.py checks the
# default behaviour in separate processes.
if "BRAINMASS_COMPILATION_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _CACHE = tempfile.mkdtemp(prefix="brainmass-test-jax-cache-")
    os.environ["BRAINMASS_COMPILATION_CACHE"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("BRAINMASS_SHARED_DATA")
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "data"


SHARED_DATA = _shared_data_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of reference data (`../shared/data`); skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"reference data not found at {SHARED_DATA}: these tests need ../shared/data beside "
            "the project root (or BRAINMASS_SHARED_DATA pointing at it)"
        )
    return SHARED_DATA


# Test modules whose tests share an expensive module fixture (test_inference.py builds its
# NUTS posteriors under two backends once, ~1 min): under `pytest -n 2 --dist loadgroup` each
# runs as one unit on one worker, so the fixture is built once, not on every worker. xdist's
# own `xdist_group` mark stopped working with pytest 9.2 (it renames `item._nodeid`, which
# pytest no longer reads), so the grouping is done here through xdist's scheduler hook.
SINGLE_WORKER_MODULES = (
    "test_inference.py",
    "test_sbi_ou.py",
    "test_calibration.py",  # the grid posteriors of 80 datasets, ~28 s
    "test_sbi.py",  # a trained NPE, ~9 s
    "test_persistence_sbi.py",  # trained NPE and NLE, ~4 s
    "test_starts.py",  # the Hopf network's MAP, Hessian and samplers, ~15 s to compile
)

if importlib.util.find_spec("xdist") is not None:

    def pytest_xdist_make_scheduler(config, log):
        """`--dist loadgroup`, with every module of SINGLE_WORKER_MODULES one work unit."""
        if config.getvalue("dist") != "loadgroup":
            return None
        from xdist.scheduler import LoadGroupScheduling

        class ModuleGroupScheduling(LoadGroupScheduling):
            def _split_scope(self, nodeid: str) -> str:
                module = nodeid.split("::", 1)[0]
                if Path(module).name in SINGLE_WORKER_MODULES:
                    return module
                return super()._split_scope(nodeid)

        return ModuleGroupScheduling(config, log)
