"""NUTS through the solve: NumPyro and BlackJAX backends behind one function.

Both backends sample the model's flat unconstrained density
(`BayesianModel.logdensity`): NumPyro with its NUTS kernel and windowed
adaptation (`numpyro.infer.hmc.hmc(algo="NUTS")`), BlackJAX with
`window_adaptation` and `blackjax.nuts`. Chains run inside one compiled call,
either side by side (`chain_method="vectorized"`: one `jax.vmap`, the accelerator
default) or one after another (`"sequential"`: one `jax.lax.map`, the CPU default,
where vmapped chains cost 1.02-1.48x more); NumPyro's `chain_method="parallel"`
fails with diffrax's checkpointed adjoint (diffrax issue #765). The data enter
the compiled step as an argument, so one compilation serves every dataset of
the same shape, and a batch of datasets (a cohort of subjects, `batch=True`)
runs as one vmapped sampler.

A simulation that blows up makes the log density `-inf`: the sampler treats
the trajectory as divergent and rejects it (counted in
`sample_stats["diverging"]`); nothing crashes. Sampling runs in chunks of
iterations: a progress bar moves per chunk, and with `checkpoint=path` the
sampler state and the draws so far are written after every chunk, so an
interrupted run (Ctrl-C, a lost job) resumes from the last chunk by calling
`nuts(..., checkpoint=path)` again.
"""

from ._backends import _BlackJAXSampler as _BlackJAXSampler
from ._backends import _NumPyroSampler as _NumPyroSampler
from ._nuts import BACKENDS as BACKENDS
from ._nuts import _subjects as _subjects
from ._nuts import nuts as nuts

__all__ = ["nuts"]
