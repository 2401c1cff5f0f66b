"""Stacking of chains (Yao, Vehtari & Gelman 2022) and `Posterior.select_chains`.

Against closed forms: with two groups the stacking objective sum_i log(w p1_i + (1-w) p2_i)
is concave in w, and its optimum is the root of its derivative (found here by bisection,
independently of the implementation); where a group's log-likelihood is the same at every
draw, its PSIS-LOO predictive density is exactly that value.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq

from inference.diagnostics import Stacking, stack_chains, stacking_weights
from inference.results import Posterior


def _optimum_two_groups(lp):
    """The stacking weight of group 0 for two groups, by bisection on the derivative."""
    p1, p2 = np.exp(lp[0]), np.exp(lp[1])

    def derivative(w):
        return np.sum((p1 - p2) / (w * p1 + (1 - w) * p2))

    if derivative(1e-12) <= 0:
        return 0.0
    if derivative(1 - 1e-12) >= 0:
        return 1.0
    return brentq(derivative, 1e-12, 1 - 1e-12, xtol=1e-12)


def test_stacking_weights_match_the_two_group_optimum_and_the_simplex():
    rng = np.random.default_rng(0)
    for trial in range(5):
        lp = rng.normal(-1.0, 1.0, size=(2, 60))
        w = stacking_weights(lp)
        assert w.shape == (2,) and w.sum() == pytest.approx(1.0) and np.all(w >= 0)
        assert w[0] == pytest.approx(_optimum_two_groups(lp), abs=1e-4), trial
    # a group that predicts every point better takes all the weight
    lp = np.stack([np.full(10, -1.0), np.full(10, -3.0)])
    np.testing.assert_allclose(stacking_weights(lp), [1.0, 0.0], atol=1e-6)
    # three groups: the optimum's gradient conditions (KKT) hold on the support
    lp = rng.normal(-1.0, 1.0, size=(3, 80))
    w = stacking_weights(lp)
    mix = np.log(np.exp(lp).T @ w)
    grad = np.exp(lp - mix[None, :]).sum(axis=1)  # d/dw_k of the objective
    support = w > 1e-4
    np.testing.assert_allclose(grad[support], lp.shape[1], rtol=1e-3)
    assert np.all(grad[~support] <= lp.shape[1] * (1 + 1e-3))
    assert stacking_weights(lp[:1]).tolist() == [1.0]
    for bad in (np.ones(3), np.full((2, 3), np.nan)):
        with pytest.raises(ValueError, match="elpd_pointwise"):
            stacking_weights(bad)


def _posterior(ll_per_chain, n_draws=50, chain_modes=None, mode_weights=None):
    """Chains whose log-likelihood is the same at every draw; `x` is the chain index."""
    ll = np.asarray(ll_per_chain, dtype=float)  # (chains, n_obs)
    chains = ll.shape[0]
    info = {}
    if chain_modes is not None:
        info["init"] = dict(
            method="map",
            modes=[dict(weight=w) for w in mode_weights],
            chain_modes=list(chain_modes),
        )
    return Posterior(
        samples={"x": np.repeat(np.arange(chains, dtype=float)[:, None], n_draws, axis=1)},
        sample_stats={"lp": np.zeros((chains, n_draws))},
        units={},
        method="test",
        log_likelihood=np.repeat(ll[:, None, :], n_draws, axis=1),
        info=info,
    )


def test_stack_chains_with_exact_loo_and_the_stacked_draws():
    rng = np.random.default_rng(1)
    lp = rng.normal(-1.0, 0.7, size=(2, 40))
    post = _posterior(lp, n_draws=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the groups are close: "predict equally well"
        res = stack_chains(post)
    assert isinstance(res, Stacking) and res.groups == [[0], [1]]
    np.testing.assert_allclose(res.elpd, lp.sum(axis=1), rtol=1e-6)  # LOO is exact here
    w0 = _optimum_two_groups(lp)
    np.testing.assert_allclose(res.weights, [w0, 1 - w0], atol=1e-4)
    stacked = res.posterior.samples["x"]
    assert stacked.shape[0] == 1 and abs(stacked.size - 100) <= 1
    assert np.mean(stacked == 0.0) == pytest.approx(w0, abs=0.011)
    expected = np.log(w0 * np.exp(lp[0]) + (1 - w0) * np.exp(lp[1])).sum()
    assert res.elpd_stacked == pytest.approx(expected, rel=1e-6)
    assert res.posterior.info["stacking_weights"] == pytest.approx(res.weights.tolist())


def test_groups_from_the_chains_modes_and_mass_weights():
    lp = np.stack([np.full(20, -1.0), np.full(20, -2.0), np.full(20, -1.0), np.full(20, -2.0)])
    post = _posterior(lp, chain_modes=[0, 1, 0, 1], mode_weights=[0.25, 0.75])
    res = stack_chains(post)
    assert res.groups == [[0, 2], [1, 3]]
    np.testing.assert_allclose(res.weights, [1.0, 0.0], atol=1e-6)
    mass = stack_chains(post, weights="mass")
    np.testing.assert_allclose(mass.weights, [0.25, 0.75])
    assert np.mean(np.isin(mass.posterior.samples["x"], [1.0, 3.0])) == pytest.approx(
        0.75, abs=0.01
    )
    with pytest.raises(ValueError, match="weights='mass' needs chains started in several modes"):
        stack_chains(_posterior(lp), weights="mass")
    with pytest.raises(ValueError, match="weights: expected 'stacking' or 'mass'"):
        stack_chains(post, weights="bma")


def test_groups_that_predict_equally_well_are_flagged():
    lp = np.full((2, 30), -1.2)
    with pytest.warns(UserWarning, match="predict the data equally well"):
        stack_chains(_posterior(lp))


def test_bad_groups_and_missing_log_likelihood():
    post = _posterior(np.full((3, 10), -1.0))
    for groups in ([[0, 1], [1, 2]], [[0], []], [[0, 5]], []):
        with pytest.raises(ValueError, match="groups"):
            stack_chains(post, groups)
    bare = Posterior(samples={"x": np.zeros((2, 5))}, sample_stats={}, units={}, method="t")
    with pytest.raises(ValueError, match="pointwise log-likelihood"):
        stack_chains(bare)


def test_select_chains_keeps_the_chosen_chains():
    post = _posterior(np.arange(12.0).reshape(4, 3), n_draws=5)
    post.posterior_predictive = np.arange(4 * 5 * 3.0).reshape(4, 5, 3)
    sub = post.select_chains([3, 1])
    assert sub.n_chains == 2 and sub.samples["x"][:, 0].tolist() == [3.0, 1.0]
    assert sub.log_likelihood.shape == (2, 5, 3) and sub.sample_stats["lp"].shape == (2, 5)
    np.testing.assert_array_equal(sub.posterior_predictive, post.posterior_predictive[[3, 1]])
    assert sub.info["chains"] == [3, 1] and post.n_chains == 4  # the original is unchanged
    for bad in ([], [4], [0.5], [[0, 1]]):
        with pytest.raises(ValueError, match="chains"):
            post.select_chains(bad)
    assert math.isclose(float(post.select_chains([-1]).samples["x"][0, 0]), 3.0)
