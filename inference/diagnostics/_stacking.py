"""Stacking of chains that do not mix (Yao, Vehtari & Gelman 2022).

When chains sit in separated modes, pooling them weights each mode by the number of
chains that happened to land there, and R-hat over all chains only says that they
disagree. Yao, Vehtari & Gelman ("Stacking for non-mixing Bayesian computations: the
curse and blessing of multimodal posteriors", JMLR 23(79), 2022) instead weigh the
groups of chains by how well their mixture predicts left-out data: the weights `w`
maximise

    sum_i log sum_k w_k exp(elpd_loo[k, i])

over the simplex, where `elpd_loo[k, i]` is the PSIS-LOO log predictive density of
observation `i` under the draws of group `k` alone. The stacked posterior is the
mixture of the groups' draws with these weights.

Note: LOO treats the pointwise terms as exchangeable. For an autocorrelated time
series this is an approximation (the left-out sample is partly predictable from its
neighbours); the weights then favour the groups that fit the data's fine structure.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

__all__ = ["Stacking", "stack_chains", "stacking_weights"]

PARETO_K_MAX = 0.7


@dataclasses.dataclass(frozen=True)
class Stacking:
    """The outcome of `stack_chains`.

    **Attributes:**

    - `weights`: `(groups,)`, the weight of each group of chains (sum 1): stacking
      weights, or the modes' Laplace mass with `weights="mass"`.
    - `groups`: the chains of each group (indices into the chain axis).
    - `elpd`: `(groups,)`, the PSIS-LOO expected log predictive density of each group
      on its own (nats); `elpd_stacked` the same of the weighted mixture.
    - `dse`: `(groups,)`, the standard error of each group's elpd difference to the
      group with the highest elpd (0 for that group), over the data; `mcse` the Monte
      Carlo error of each group's elpd (the spread of its chains' own elpd).
    - `pareto_k`: `(groups,)`, the largest Pareto k of each group's PSIS-LOO (above
      0.7 the group's LOO estimate is unreliable; a warning says so).
    - `posterior`: the stacked posterior: one chain holding `round(w_k N)` draws of
      group `k` (`N` all draws), spread evenly over the group's draws.
    """

    weights: np.ndarray
    groups: list[list[int]]
    elpd: np.ndarray
    elpd_stacked: float
    dse: np.ndarray
    mcse: np.ndarray
    pareto_k: np.ndarray
    posterior: Any


def stacking_weights(elpd_pointwise: Any) -> np.ndarray:
    """Stacking weights from pointwise log predictive densities.

    **Arguments:**

    - `elpd_pointwise`: `(groups, n_obs)`, `log p(y_i | group k)` (PSIS-LOO values).

    **Returns:** `(groups,)` on the simplex, maximising
    `sum_i log sum_k w_k exp(elpd_pointwise[k, i])`. The objective is concave in `w`;
    it is optimised over a softmax parametrisation (the last logit fixed at 0).
    """
    lp = np.asarray(elpd_pointwise, dtype=float)
    if lp.ndim != 2 or lp.shape[0] < 1 or not np.all(np.isfinite(lp)):
        raise ValueError(
            "elpd_pointwise: expected a finite (groups, n_obs) array of log predictive "
            f"densities, got shape {lp.shape}"
            + ("" if np.all(np.isfinite(lp)) else " with NaN/inf")
        )
    k = lp.shape[0]
    if k == 1:
        return np.ones(1)

    def objective(theta):
        logits = np.append(theta, 0.0)
        log_w = logits - logsumexp(logits)
        mix = logsumexp(lp + log_w[:, None], axis=0)  # (n_obs,)
        # gradient wrt the logits: w_k (r_k - 1) summed over i, r_ik = p_ik w_k / mix_i
        resp = np.exp(lp + log_w[:, None] - mix[None, :])  # (groups, n_obs)
        grad = resp.sum(axis=1) - lp.shape[1] * np.exp(log_w)
        return -mix.sum(), -grad[:-1]

    res = minimize(objective, np.zeros(k - 1), jac=True, method="L-BFGS-B")
    return softmax(np.append(res.x, 0.0))


def stack_chains(
    posterior: Any, groups: Sequence[Sequence[int]] | None = None, *, weights: str = "stacking"
) -> Stacking:
    """Stack groups of chains by their leave-one-out predictive performance.

    **Arguments:**

    - `posterior`: an `inference.Posterior` with the pointwise log-likelihood
      (`nuts(..., posterior_predictive=True)`, the default).
    - `groups`: the chains of each group (lists of chain indices). By default the
      modes the chains were started in (`nuts(..., modes="all")` records them in
      `info["init"]["chain_modes"]`), or else one group per chain.
    - `weights`: `"stacking"` (default): the weights that maximise the LOO predictive
      density of the mixture (Yao, Vehtari & Gelman 2022). `"mass"`: each group's
      share of the posterior mass under the Laplace approximation at its mode
      (`info["init"]["modes"]`; needs `nuts(..., modes="all")` and the default
      grouping), that is the posterior probability of each mode.

    Stacking weighs prediction, not posterior mass. Where two groups predict the data
    equally well (a symmetry of the model: a sign, a label switch), the data cannot
    choose between them and the stacking weights follow Monte Carlo noise; a
    `UserWarning` says so when the best two groups' elpd differ by less than two
    standard errors, and `weights="mass"` is the posterior's own answer there.

    **Returns:** a `Stacking`: the weights, each group's PSIS-LOO elpd, Pareto k and
    the standard error of its elpd difference to the best group, and the stacked
    posterior (`Stacking.posterior`, one chain).
    """
    if posterior.log_likelihood is None:
        raise ValueError(
            "posterior: stacking needs the pointwise log-likelihood; run nuts(..., "
            "posterior_predictive=True) (the default)."
        )
    if weights not in ("stacking", "mass"):
        raise ValueError(f"weights: expected 'stacking' or 'mass', got {weights!r}.")
    n_chains = posterior.n_chains
    modes = posterior.info.get("init", {}).get("chain_modes")
    if weights == "mass" and (groups is not None or not modes or len(set(modes)) < 2):
        raise ValueError(
            "weights='mass' needs chains started in several modes (nuts(..., modes='all'), "
            "info['init']['chain_modes']) and the default grouping (groups=None)."
        )
    if groups is None:
        if modes:
            labels = sorted(set(modes))
            groups = [[c for c in range(n_chains) if modes[c] == m] for m in labels]
        else:
            groups = [[c] for c in range(n_chains)]
    groups = [[int(c) for c in g] for g in groups]
    flat = sorted(c for g in groups for c in g)
    if not groups or any(not g for g in groups) or flat != sorted(set(flat)):
        raise ValueError(f"groups: expected non-empty, disjoint lists of chains, got {groups}.")
    if flat[0] < 0 or flat[-1] >= n_chains:
        raise ValueError(f"groups: chain indices must lie in [0, {n_chains}), got {groups}.")
    ll = np.asarray(posterior.log_likelihood, dtype=float)
    ll = ll.reshape(ll.shape[0], ll.shape[1], -1)
    pointwise, elpd, pareto_k, mcse = [], [], [], []
    for g in groups:
        loo = _loo(ll[g])
        pointwise.append(np.asarray(loo.elpd_i).ravel())
        elpd.append(float(loo.elpd))
        pareto_k.append(float(np.max(np.asarray(loo.pareto_k))))
        # Monte Carlo error of the group's elpd: the spread of its chains' own elpd (of
        # the halves of its draws when it has one chain)
        blocks = ll[g] if len(g) > 1 else np.stack(np.array_split(ll[g][0], 2))
        each = [float(_loo(b[None]).elpd) for b in blocks]
        mcse.append(float(np.std(each, ddof=1) / np.sqrt(len(each))))
    pointwise = np.stack(pointwise)
    top = int(np.argmax(elpd))
    diff = pointwise[top][None, :] - pointwise  # (groups, n_obs)
    dse = np.sqrt(diff.shape[1] * np.var(diff, axis=1))
    if weights == "mass":
        mass = [posterior.info["init"]["modes"][m]["weight"] for m in sorted(set(modes))]
        w = np.asarray(mass, dtype=float) / np.sum(mass)
    else:
        w = stacking_weights(pointwise)
        runner = sorted(range(len(groups)), key=lambda k: -elpd[k])[1:2]
        if runner:
            r = runner[0]
            se = float(np.sqrt(dse[r] ** 2 + mcse[top] ** 2 + mcse[r] ** 2))
        if runner and elpd[top] - elpd[r] <= 2 * se:
            warnings.warn(
                f"stack_chains: groups {top} and {r} predict the data equally well (elpd "
                f"difference {elpd[top] - elpd[r]:.2f} < 2 x its standard error {se:.2f}, "
                "data and Monte Carlo error): the stacking weights between them follow the "
                "noise. For their posterior probabilities use weights='mass'.",
                UserWarning,
                stacklevel=2,
            )
    weights = w
    log_w = np.log(np.maximum(weights, 1e-300))
    stacked_elpd = float(logsumexp(pointwise + log_w[:, None], axis=0).sum())
    bad = [i for i, k in enumerate(pareto_k) if k > PARETO_K_MAX]
    if bad:
        warnings.warn(
            f"stack_chains: PSIS-LOO is unreliable for group(s) {bad} (Pareto k "
            f"{', '.join(f'{pareto_k[i]:.2f}' for i in bad)} > {PARETO_K_MAX}); their weights "
            "are approximate.",
            UserWarning,
            stacklevel=2,
        )
    total = n_chains * posterior.n_draws
    picks = []  # (chain, draw) pairs of the stacked posterior
    for g, w in zip(groups, weights, strict=True):
        m = int(round(w * total))
        if m == 0:
            continue
        pool = [(c, d) for c in g for d in range(posterior.n_draws)]
        at = np.round(np.linspace(0, len(pool) - 1, m)).astype(int)
        picks += [pool[i] for i in at]
    chains = np.array([c for c, _ in picks])
    draws = np.array([d for _, d in picks])

    def pick(x):
        return None if x is None else np.asarray(x)[chains, draws][None]

    stacked = dataclasses.replace(
        posterior,
        samples={k: pick(v) for k, v in posterior.samples.items()},
        sample_stats={},
        log_likelihood=pick(posterior.log_likelihood),
        posterior_predictive=pick(posterior.posterior_predictive),
        method=f"{posterior.method}, stacked",
        info=dict(posterior.info, stacking_weights=weights.tolist(), stacking_groups=groups),
    )
    return Stacking(
        mcse=np.array(mcse),
        weights=weights,
        groups=groups,
        elpd=np.array(elpd),
        elpd_stacked=stacked_elpd,
        dse=dse,
        pareto_k=np.array(pareto_k),
        posterior=stacked,
    )


def _loo(ll: np.ndarray) -> Any:
    """ArviZ's PSIS-LOO (pointwise) of a log-likelihood array `(chains, draws, n_obs)`.

    Where the log-likelihood is the same at every draw (a chain that never moved), the
    leave-one-out density is that value exactly (and PSIS would fail on the constant
    tail): it is returned directly, with Pareto k 0.
    """
    import types

    import arviz as az

    if np.all(np.ptp(ll.reshape(-1, ll.shape[-1]), axis=0) == 0):
        elpd_i = ll[0, 0]
        return types.SimpleNamespace(
            elpd_i=elpd_i, elpd=float(elpd_i.sum()), pareto_k=np.zeros_like(elpd_i)
        )

    tree = az.from_dict(
        {"posterior": {"mu": np.zeros(ll.shape[:2])}, "log_likelihood": {"obs": ll}}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Pareto k warning: stack_chains reports it
        return az.loo(tree, pointwise=True)
