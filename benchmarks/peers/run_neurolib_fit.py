"""F1 in neurolib: fit G (K_gl) of a Hopf network to a target FC, the two ways neurolib offers.

    benchmarks/.peers/neurolib/bin/python benchmarks/peers/run_neurolib_fit.py \
        --connectome conn.npz --target-fc fc.npy [--duration-ms 10000] [--grid 0 0.5 21] \
        [--evolution-pop 8] [--evolution-gen 10] [--routes boxsearch evolution] [--seed 0]
    # a target FC from neurolib itself (one run at G, saved as .npy):
    ... run_neurolib_fit.py --connectome conn.npz --make-target 0.12 fc.npy --seed 1

Routes (each one JSON entry; wall time = the whole route, pypet/hdf/fork overheads included):
  "neurolib BoxSearch": neurolib.optimize.exploration.BoxSearch over ParameterSpace({"K_gl": grid})
      with an evalFunction that takes the run's model (`search.getModelFromTraj`), runs it,
      computes the loss and stores it with `search.saveToPypet`; then `search.loadResults()` and
      the minimum of `search.dfResults.loss`. pypet hdf file in a temp dir.
  "neurolib Evolution": neurolib.optimize.evolution.Evolution with ParameterSpace(["K_gl"],
      [[LOW, HIGH]]), fitness = (loss,) with weightList [-1.0] (neurolib: negative weight =
      minimise), POP_INIT_SIZE = POP_SIZE = --evolution-pop, NGEN = --evolution-gen, its default
      ("adaptive") algorithm; answer `evolution.best_ind`. neurolib runs the initial population,
      then NGEN - 1 generations of POP_SIZE offspring: POP + (NGEN - 1) POP simulations.
Both use neurolib's default ncores (multiprocessing.cpu_count()); pypet forks one process per
simulation (use_pool=False), so the parent runs the model once first (`jit_warmup_s`, reported
separately; not in a route's wall_s): the forks then inherit the numba-compiled loop instead of
each compiling it again.

Mapping (as W1, run_neurolib.py, except): coupling="diffusive" (neurolib's default:
K_gl * sum_l Cmat[i, l] (x_l(t - d_il) - x_i(t)) into x only), Dmat = zeros (no delays),
a = -0.01, sampling_dt = 2.0 ms (neurolib subsamples x every 2 ms; no averaging), noise = OU
input with tau_ou = dt, sigma_ou = sigma/dt (== white additive sigma, one step late),
Euler-Maruyama (neurolib's Hopf has no Heun). Every simulation uses seed --seed (common random
numbers) and starts from x = 0.1, y = 0 with the OU state at 0.
"""

import _fit  # noqa: I001  (first: keeps stdout for the JSON line)

import math
import os
import random
import tempfile
import time

import numpy as np

# pypet 0.6.1 (neurolib's optimisation backend, as installed) still uses aliases that NumPy 2
# removed; the neurolib env has numpy 2.4, so put them back before pypet is imported.
for _old, _new in (("string_", "bytes_"), ("float_", "float64"), ("complex_", "complex128")):
    if _old not in np.__dict__:
        setattr(np, _old, getattr(np, _new))

from neurolib.models.hopf import HopfModel  # noqa: E402
from neurolib.optimize.evolution import Evolution  # noqa: E402
from neurolib.optimize.exploration import BoxSearch  # noqa: E402
from neurolib.utils import paths  # noqa: E402
from neurolib.utils.parameterSpace import ParameterSpace  # noqa: E402

ROUTES = {"boxsearch": "neurolib BoxSearch", "evolution": "neurolib Evolution"}
EXTRA = (
    (("--evolution-pop",), dict(type=int, default=8, help="POP_INIT_SIZE = POP_SIZE (even)")),
    (("--evolution-gen",), dict(type=int, default=10, help="NGEN (>= 1)")),
)


def make_model(w: np.ndarray, duration_ms: float, seed: int) -> HopfModel:
    """A neurolib HopfModel set up for F1.

    Args:
        w: weights (n, n), rows are targets.
        duration_ms: model time per run, ms.
        seed: noise seed of every run.

    Returns:
        The model; its `x` after `run()` is (n, duration_ms / 2), x every 2 ms.
    """
    model = HopfModel(Cmat=w, Dmat=np.zeros_like(w))
    model.params.update(
        dict(
            dt=_fit.DT,
            duration=float(duration_ms),
            sampling_dt=_fit.PERIOD,
            a=_fit.A,
            w=_fit.OMEGA,
            coupling="diffusive",
            tau_ou=_fit.DT,
            sigma_ou=_fit.SIGMA / _fit.DT,
            x_ou_mean=0.0,
            y_ou_mean=0.0,
        )
    )
    reset_state(model, seed)
    return model


def reset_state(model: HopfModel, seed: int) -> None:
    """Initial state x = 0.1, y = 0, OU state 0, and the noise seed (neurolib mutates x_ou/y_ou)."""
    n = model.params["N"]
    model.params["seed"] = seed
    model.params["xs_init"] = np.full((n, 1), _fit.X0)
    model.params["ys_init"] = np.full((n, 1), _fit.Y0)
    model.params["x_ou"] = np.zeros(n)
    model.params["y_ou"] = np.zeros(n)


def simulate(model: HopfModel, g: float, seed: int, duration_ms: float) -> np.ndarray:
    """Run the model at K_gl = g; x every 2 ms as (duration_ms / 2, n)."""
    model.params["K_gl"] = float(g)
    model.params["duration"] = float(duration_ms)
    reset_state(model, seed)
    model.run()
    return np.asarray(model.x, dtype=np.float64).T


def route_boxsearch(model, args, fc_target, tmp):
    """BoxSearch over the grid (pypet, hdf in tmp); returns the route's JSON entry."""
    t0 = time.perf_counter()
    # neurolib's BoxSearch reads the hdf directory from neurolib.utils.paths (default ./data/hdf)
    paths.HDF_DIR = tmp
    seed, duration = args.seed, args.duration_ms

    def evaluate(traj):
        m = search.getModelFromTraj(traj)
        g = float(m.params["K_gl"])
        ts = time.perf_counter()
        x = simulate(m, g, seed, duration)
        sim_s = time.perf_counter() - ts
        loss = _fit.loss_of(x, duration, fc_target)
        search.saveToPypet({"loss": loss, "sim_s": sim_s}, traj)

    search = BoxSearch(
        model=model,
        evalFunction=evaluate,
        parameterSpace=ParameterSpace({"K_gl": np.array(args.grid)}),
        filename=os.path.join(tmp, "boxsearch.hdf"),
    )
    search.run()
    search.loadResults()
    df = search.dfResults
    wall = time.perf_counter() - t0
    losses = [float(v) if math.isfinite(float(v)) else math.inf for v in df["loss"]]
    evaluations = list(zip((float(g) for g in df["K_gl"]), losses, strict=True))
    i_best = int(np.argmin(losses))
    return _fit.route_record(
        ROUTES["boxsearch"],
        evaluations,
        wall,
        evaluations[i_best][0],
        evaluations[i_best][1],
        notes=(
            f"BoxSearch(model, evalFunction, ParameterSpace({{'K_gl': grid}})), ncores="
            f"{search.ncores} (neurolib default: cpu_count), pypet hdf in a temp dir; "
            "evalFunction stores loss with search.saveToPypet, best = argmin of "
            "search.dfResults.loss after search.loadResults(); evaluations in run-index order "
            f"(pypet runs {search.ncores} at a time); sim_s_mean = model.run() only"
        ),
        ncores=search.ncores,
        sim_s_mean=round(float(np.mean(df["sim_s"])), 4),
    )


def route_evolution(model, args, fc_target, tmp):
    """neurolib's Evolution on [LOW, HIGH]; returns the route's JSON entry."""
    t0 = time.perf_counter()
    paths.HDF_DIR = tmp
    seed, duration = args.seed, args.duration_ms
    log_path = os.path.join(tmp, "evolution_evaluations.txt")
    random.seed(args.seed)  # deap's operators
    np.random.seed(args.seed)  # neurolib's random individuals

    def evaluate(traj):
        m = evolution.getModelFromTraj(traj)
        g = float(m.params["K_gl"])
        ts = time.perf_counter()
        x = simulate(m, g, seed, duration)
        sim_s = time.perf_counter() - ts
        loss = _fit.loss_of(x, duration, fc_target)
        # evaluation order across pypet's forks: one appended line per simulation
        with open(log_path, "a") as f:
            f.write(f"{int(traj.id)} {int(traj.generation)} {g!r} {loss!r} {sim_s!r}\n")
        return (loss,), {"sim_s": sim_s}

    low, high, _ = args.grid_spec
    evolution = Evolution(
        evaluate,
        ParameterSpace(["K_gl"], [[low, high]]),
        weightList=[-1.0],
        model=model,
        filename=os.path.join(tmp, "evolution.hdf"),
        POP_INIT_SIZE=args.evolution_pop,
        POP_SIZE=args.evolution_pop,
        NGEN=args.evolution_gen,
    )
    evolution.run(verbose=False, verbose_plotting=False)
    best = getattr(evolution, "best_ind", None)
    if best is None:  # NGEN == 1: no generation after the initial population
        best = evolution.toolbox.selBest(evolution.pop, 1)[0]
    wall = time.perf_counter() - t0

    rows = []
    with open(log_path) as f:
        for line in f:
            i, gen, g, loss, sim_s = line.split()
            rows.append((int(i), int(gen), float(g), float(loss), float(sim_s)))
    rows.sort()  # individual ids are handed out in creation (= evaluation) order
    evaluations = [(g, loss if math.isfinite(loss) else math.inf) for _, _, g, loss, _ in rows]
    best_g = float(best[0])
    best_loss = float(best.fitness.values[0])
    return _fit.route_record(
        ROUTES["evolution"],
        evaluations,
        wall,
        best_g,
        best_loss if math.isfinite(best_loss) else math.inf,
        notes=(
            f"Evolution(evalFunction, ParameterSpace(['K_gl'], [[{low}, {high}]]), "
            f"weightList=[-1.0], POP_INIT_SIZE=POP_SIZE={args.evolution_pop}, "
            f"NGEN={args.evolution_gen}, algorithm='adaptive'), ncores={evolution.ncores} "
            "(neurolib default: cpu_count), pypet hdf in a temp dir; neurolib evaluates the "
            "initial population then NGEN-1 generations of POP_SIZE offspring (+ random "
            "replacements of invalid individuals); answer = evolution.best_ind; evaluations "
            "ordered by individual id; sim_s_mean = model.run() only"
        ),
        ncores=evolution.ncores,
        generations=max(r[1] for r in rows) + 1,
        evaluation_counter=evolution.evaluationCounter,
        sim_s_mean=round(float(np.mean([r[4] for r in rows])), 4),
    )


def main():
    args = _fit.parse_args("neurolib", ROUTES, EXTRA)
    if args.evolution_pop < 2 or args.evolution_pop % 2:
        raise SystemExit(
            f"--evolution-pop: expected an even number >= 2 (neurolib), got {args.evolution_pop}"
        )
    if args.evolution_gen < 1:
        raise SystemExit(f"--evolution-gen: expected >= 1, got {args.evolution_gen}")
    w = _fit.load_weights(args.connectome)
    n = w.shape[0]
    version = _fit.version_of("neurolib")

    # numba JIT of neurolib's loop, once in the parent (pypet's forks inherit it)
    t0 = time.perf_counter()
    model = make_model(w, args.duration_ms, args.seed)
    if args.make_target is not None:
        g, out = args.make_target
        x = simulate(model, g, args.seed, args.duration_ms)
        target = _fit.fc(_fit.observe(x, args.duration_ms))
        np.save(out, target)
        _fit.emit_target("neurolib", version, args, target, time.perf_counter() - t0)
        return
    fc_target = _fit.load_target(args.target_fc, n)
    simulate(model, args.grid[0], args.seed, 10 * _fit.PERIOD)  # 20 ms: compiles the loop
    model.params["duration"] = float(args.duration_ms)
    jit_warmup_s = time.perf_counter() - t0

    routes = []
    with tempfile.TemporaryDirectory(prefix="f1_neurolib_") as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # anything neurolib/pypet writes relative to the cwd stays in tmp
        try:
            for key in args.routes:
                fn = route_boxsearch if key == "boxsearch" else route_evolution
                routes.append(fn(model, args, fc_target, tmp))
        finally:
            os.chdir(cwd)
    _fit.emit(
        "neurolib",
        version,
        routes,
        args,
        n,
        jit_warmup_s=round(jit_warmup_s, 4),
        integrator="Euler-Maruyama (neurolib Hopf has no Heun)",
        coupling="diffusive (neurolib default), K_gl = G, Dmat = 0, into x only",
        observation="x subsampled every 2 ms (sampling_dt), first 250 samples dropped",
    )


if __name__ == "__main__":
    main()
