r"""Neural posterior estimation with flowjax: amortized posteriors from simulations alone.

`NPE(sim, priors, summary)` learns $q(\theta \mid x)$, a conditional normalizing flow,
from a bank of simulations $(\theta_i, x_i)$, $\theta_i \sim p(\theta)$, by maximising
$\sum_i \log q(\theta_i \mid x_i)$ (Papamakarios & Murray 2016; Greenberg et al. 2019).
Trained once, a new observation's posterior costs one network evaluation: a cohort is
one vectorised call.

Layout of the estimate: parameters are mapped to the real line by the bijections of
their priors' supports (`PriorSpace`), standardised with the bank's mean and
standard deviation, and modelled by a flow conditioned on the standardised summary
features (or on a learned embedding of them, trained jointly with the flow). Samples
are mapped back, so no posterior mass falls outside the prior's support, and
`log_prob` includes the Jacobians of both maps: it is a density over the parameters in
their canonical units.

    npe = inf.NPE(sim, {"coupling.G": dist.Uniform(0, 1)}, inf.summaries.FC())
    npe = npe.train(jax.random.key(0), num_simulations=5_000)  # a new, trained NPE
    post = npe.posterior(observed_signal)        # (n_samples, n_channels) or a batch
    draws = post.sample(jax.random.key(1), 1_000)   # {path: (1000, *shape)}
"""

from ._estimator import AbstractFlowEstimator as AbstractFlowEstimator
from ._flows import FLOWS as FLOWS
from ._flows import fit_flow as fit_flow
from ._nle import NLE as NLE
from ._nle import Learned as Learned
from ._npe import NPE as NPE
from ._npe import NPEPosterior as NPEPosterior

__all__ = ["NLE", "NPE", "AbstractFlowEstimator", "Learned", "NPEPosterior", "fit_flow"]
