"""Compiling once: JAX's persistent compilation cache across processes, and within one process
the MAP's chunk compiled once and the priors drawn without compiling a program.

The cache is set when brainmass is imported, so each setting is checked in a fresh Python
process (`BRAINMASS_COMPILATION_CACHE`, a user's own `JAX_COMPILATION_CACHE_DIR`, an
unwritable folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import numpyro.distributions as dist
import pytest

import brainmass as bm
import inference as inf
from inference import _cache

# compiles a small program (with every compile cached: min time 0), counts JAX's disk hits
PROBE = textwrap.dedent(
    """
    import json, os, sys, warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import brainmass
    import jax, jax.numpy as jnp
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None
    )
    folder = brainmass.cache.compilation_cache_dir()
    if folder is not None and os.environ.get("PROBE_MIN_TIME_ZERO"):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    f = jax.jit(lambda x: jnp.sin(x) @ x.T + 1.0)
    jax.block_until_ready(f(jnp.ones((7, 7))))
    print(json.dumps({
        "folder": folder,
        "hits": len(hits),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
    }))
    """
)


def _probe(**env) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR",)}
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_cache_folder_is_used_and_read_back_by_the_next_process(tmp_path):
    folder = tmp_path / "cache"
    first = _probe(BRAINMASS_COMPILATION_CACHE=str(folder), PROBE_MIN_TIME_ZERO="1")
    assert first["folder"] == str(folder)
    assert first["hits"] == 0
    assert any(folder.iterdir()), "nothing was written to the cache folder"
    second = _probe(BRAINMASS_COMPILATION_CACHE=str(folder), PROBE_MIN_TIME_ZERO="1")
    assert second["hits"] >= 1, "the second process compiled again instead of reading the cache"


def test_the_cache_can_be_turned_off_and_a_users_own_setting_wins(tmp_path):
    assert _probe(BRAINMASS_COMPILATION_CACHE="off")["folder"] is None
    own = tmp_path / "mine"
    got = _probe(
        BRAINMASS_COMPILATION_CACHE=str(tmp_path / "ours"), JAX_COMPILATION_CACHE_DIR=str(own)
    )
    assert got["folder"] == str(own)
    assert not (tmp_path / "ours").exists()


def test_an_unwritable_cache_folder_warns_and_runs_without(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    got = _probe(BRAINMASS_COMPILATION_CACHE=str(blocker / "cache"))
    assert got["folder"] is None
    assert any("BRAINMASS_COMPILATION_CACHE" in w for w in got["warnings"]), got


def test_default_folder_is_per_user_and_per_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = bm.cache._default_dir()
    assert folder.parent == tmp_path / "brainmass" / "jax"
    assert folder.name == bm.cache._machine_tag()


@pytest.fixture(scope="module")
def tiny_bmodel():
    net = bm.Network(bm.models.Linear(lam=0.1))
    sim = bm.Simulator(net, dt=1.0, duration=20.0, monitor=bm.monitors.Raw(2.0))
    priors = {"model.lam": dist.Gamma(20.0, 200.0)}
    return inf.BayesianModel(sim, priors, inf.likelihoods.TimeSeries(sigma=0.1))


def test_the_map_chunk_compiles_once_for_every_chunk(tiny_bmodel):
    data = np.zeros((10, 1), np.float32)
    inf.map_estimate(tiny_bmodel, data, jax.random.key(0), steps=30, chunk_size=10, progress=False)
    (name,) = [n for n in _cache.names(tiny_bmodel) if n[0] == "map"]
    chunk = _cache.compiled(tiny_bmodel, name, lambda: None)
    # three chunks of 10 steps: a carry whose type changed after the first would compile twice
    assert chunk._cache_size() == 1


def test_prior_draws_are_the_first_of_a_block_and_latent_sites_draw_nothing(tiny_bmodel):
    key = jax.random.key(3)
    few, many = tiny_bmodel.sample_prior(key, 5), tiny_bmodel.sample_prior(key, 16)
    assert few["model.lam"].shape == (5,)
    np.testing.assert_array_equal(few["model.lam"], many["model.lam"][:5])
    # Gamma(20, 200): mean 0.1, sd 0.022
    draws = tiny_bmodel.sample_prior(jax.random.key(4), 400)["model.lam"]
    assert abs(draws.mean() - 0.1) < 0.005 and abs(draws.std() - 0.0224) < 0.004
    compiles = []
    listening = [True]

    def count(event, duration, **kwargs):
        if listening[0] and event.endswith("backend_compile_duration"):
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        assert tiny_bmodel.latent_sites(jax.random.key(11)) == ["model.lam"]
    finally:
        listening[0] = False
    assert compiles == [], "latent_sites compiled (drew from the priors) instead of tracing"
