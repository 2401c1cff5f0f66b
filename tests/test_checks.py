"""brainmass.checks: the one argument-check module (keys, counts) and its use at entry points."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import brainmass as bm
from brainmass.checks import check_int, check_key


def test_keys_typed_and_raw_pass_and_everything_else_is_named():
    typed, raw = jax.random.key(0), jax.random.PRNGKey(0)
    assert check_key(typed) is typed and check_key(raw) is raw
    assert check_key(jax.random.split(typed, 3)).shape == (3,)
    assert check_key(None, optional=True) is None
    with pytest.raises(ValueError, match=r"seed: .*pass jax.random.key\(7\) instead of the int"):
        check_key(7, "seed")
    cases = [
        (np.int64(3), r"pass jax.random.key\(3\)"),
        (None, "got None"),
        (np.zeros(2), r"got an array of shape \(2,\) and dtype float64"),
        ("0", "got str '0'"),
    ]
    for value, match in cases:
        with pytest.raises(ValueError, match=match):
            check_key(value)


def test_counts_are_whole_numbers_at_or_above_the_minimum():
    assert check_int(3, "num_samples", 1) == 3
    assert check_int(np.int32(5), "n", 0) == 5
    assert check_int(1e4, "num_simulations", 1) == 10_000  # written as a float, a whole number
    for bad in (0, -1, 2.5, True, float("nan"), float("inf"), "3", None):
        with pytest.raises(ValueError, match=r"num_samples: expected an integer >= 1, got"):
            check_int(bad, "num_samples", 1)


def test_entry_points_share_the_key_message():
    import inference as inf

    sim = bm.Simulator(
        bm.Network(bm.models.Linear(), bm.Connectome.synthetic(4, seed=0)), dt=1.0, duration=5.0
    )
    msgs = []
    for call in (
        lambda: sim.run(0),
        lambda: sim.function(["model.lam"])({"model.lam": 0.1}, 0),
        lambda: bm.Fitter(
            sim, params={"model.lam": bm.Positive()}, objective=lambda s, t: 0.0, target=None
        ).fit(0, steps=1),
    ):
        with pytest.raises(ValueError) as err:
            call()
        msgs.append(str(err.value))
    assert all("key: expected a jax.random key" in m and "jax.random.key(0)" in m for m in msgs)
    assert inf  # inference shares the count check (inference._checks delegates to check_int)
    from inference._checks import check_integers

    with pytest.raises(ValueError, match="num_chains: expected an integer >= 1, got 0"):
        check_integers(("num_chains", 0, 1))
