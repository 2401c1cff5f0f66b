"""brainmass: differentiable whole-brain modelling in JAX.

import jax, brainunit as u, brainmass as bm
conn = bm.Connectome.synthetic(n_regions=68, seed=0)
net = bm.Network(bm.models.Hopf(), conn, coupling=bm.coupling.Linear(G=0.5),
speed=5.0 * u.meter / u.second, noise=bm.noise.Additive(sigma=0.02))
sim = bm.Simulator(net, dt=0.1 * u.ms, duration=10 * u.second)
res = sim.run(key=jax.random.key(0))   # res.time (T,), res.signal (T, n_regions)
"""

from . import analysis as analysis
from . import cache as cache
from . import checks as checks
from . import chunking as chunking
from . import coupling as coupling
from . import fitting as fitting
from . import leadfield as leadfield
from . import linear as linear
from . import models as models
from . import monitors as monitors
from . import noise as noise
from . import objectives as objectives
from . import progress as progress
from . import solvers as solvers
from . import storage as storage
from . import tasks as tasks
from . import training as training
from . import units as units
from ._sweep import SweepResult as SweepResult
from ._sweep import sweep as sweep
from .connectome import Connectome as Connectome
from .errors import SimulationError as SimulationError
from .fitting import Bounded as Bounded
from .fitting import FitResult as FitResult
from .fitting import Fitter as Fitter
from .fitting import Positive as Positive
from .fitting import Unbounded as Unbounded
from .models.horn import HORNSeqNetwork as HORNSeqNetwork
from .network import Network as Network
from .recording import Recording as Recording
from .simulator import ParameterInfo as ParameterInfo
from .simulator import ParameterSpec as ParameterSpec
from .simulator import Result as Result
from .simulator import Simulator as Simulator
from .training import NeuralMassSeqNetwork as NeuralMassSeqNetwork
from .training import Trainer as Trainer
from .training import TrainResult as TrainResult

# JAX's persistent compilation cache, before anything compiles (BRAINMASS_COMPILATION_CACHE)
cache._enable_from_environment()

__version__ = "0.1.0"

__all__ = [
    "Bounded",
    "Connectome",
    "FitResult",
    "Fitter",
    "HORNSeqNetwork",
    "Network",
    "NeuralMassSeqNetwork",
    "ParameterInfo",
    "ParameterSpec",
    "Positive",
    "Recording",
    "Result",
    "SimulationError",
    "Simulator",
    "SweepResult",
    "TrainResult",
    "Trainer",
    "Unbounded",
    "analysis",
    "cache",
    "checks",
    "chunking",
    "coupling",
    "fitting",
    "leadfield",
    "linear",
    "models",
    "monitors",
    "noise",
    "objectives",
    "progress",
    "solvers",
    "storage",
    "sweep",
    "tasks",
    "training",
    "units",
]
