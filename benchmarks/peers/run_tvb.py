"""W1 in The Virtual Brain (tvb-library: models.SupHopf, HeunStochastic, NumPy simulator).

    benchmarks/.peers/tvb/bin/python benchmarks/peers/run_tvb.py \
        --connectome path.npz --duration-ms 10000 --repeats 3

Mapping (TVB's SupHopf is the same normal form, time in ms):
  a -> SupHopf.a, omega -> SupHopf.omega (rad/ms), W -> Connectivity.weights (TVB rows are
  targets: k_i = sum_j weights[i, j] x_j(t - d_ij), as in W1), tract lengths (mm) ->
  Connectivity.tract_lengths, v = 5 m/s -> Connectivity.speed = 5.0 (mm/ms); TVB rounds the
  delays to round(tau / dt) steps.
  coupling: coupling.Linear(a=G, b=0) computes G * sum_j W_ij x_j(t - tau_ij) for every coupling
      variable; SupHopf couples both x and y (cvar = [0, 1]) and adds the y-term to dy. W1 couples
      x only, so we subclass Linear and zero the y row after `post` (LinearXOnly).
  noise: noise.Additive(nsig). TVB's additive noise is sqrt(2 nsig) dW, so nsig = sigma^2 / 2
      = 2e-4 gives std sigma = 0.02 per sqrt(ms), on x and y.
  integrator: integrators.HeunStochastic(dt=0.1).
  output: monitors.SubSample(period=1.0 ms), variable of interest x.
  initial history: constant x = 0.1, y = 0 over the whole delay horizon.
Each timed run builds and configures a fresh Simulator (a few ms) and runs it.
"""

import _w1  # noqa: I001  (first: keeps stdout for the JSON line)

import warnings

import numpy as np

warnings.filterwarnings("ignore")

from tvb.basic.profile import TvbProfile  # noqa: E402

TvbProfile.set_profile(TvbProfile.LIBRARY_PROFILE)

from tvb.datatypes import connectivity  # noqa: E402
from tvb.simulator import coupling, integrators, models, monitors, noise, simulator  # noqa: E402


class LinearXOnly(coupling.Linear):
    """TVB's Linear coupling, with the coupling into y (SupHopf's second cvar) set to zero."""

    def post(self, gx):
        out = super().post(gx)
        out[1:] = 0.0
        return out


def main():
    args = _w1.parse_args("tvb")
    w, lengths = _w1.load_connectome(args.connectome)
    n = w.shape[0]
    horizon = int(np.round(lengths.max() / _w1.SPEED / _w1.DT)) + 1
    init = np.zeros((horizon, 2, n, 1))
    init[:, 0] = _w1.X0
    init[:, 1] = _w1.Y0

    def build(seed):
        conn = connectivity.Connectivity(
            weights=w.copy(),
            tract_lengths=lengths.copy(),
            speed=np.array([_w1.SPEED]),
            centres=np.zeros((n, 3)),
            region_labels=np.array([f"r{i}" for i in range(n)]),
        )
        model = models.SupHopf(
            a=np.array([_w1.A]), omega=np.array([_w1.OMEGA]), variables_of_interest=("x",)
        )
        integ = integrators.HeunStochastic(
            dt=_w1.DT, noise=noise.Additive(nsig=np.array([_w1.SIGMA**2 / 2]), noise_seed=seed)
        )
        sim = simulator.Simulator(
            model=model,
            connectivity=conn,
            coupling=LinearXOnly(a=np.array([_w1.G]), b=np.array([0.0])),
            integrator=integ,
            monitors=(monitors.SubSample(period=_w1.PERIOD),),
            simulation_length=float(args.duration_ms),
            initial_conditions=init.copy(),
        )
        sim.configure()
        return sim

    def run(i):
        sim = build(args.seed + i)
        ((_, xs),) = sim.run()
        return xs[:, 0, :, 0]  # (n_t, n)

    compile_s, steady, x = _w1.time_runs(run, args.repeats)
    ok, msg, mean_x = _w1.check(x, args.duration_ms, n)
    version = _version("tvb-library")
    notes = (
        f"{msg}; NumPy backend (no JIT: compile_s is just a first run, incl. numba guvectorize of "
        "SupHopf.dfun); coupling into y zeroed via a Linear subclass (SupHopf couples x and y); "
        "nsig = sigma^2/2"
    )
    _w1.emit(
        _w1.result(
            "tvb-library",
            version,
            compile_s,
            steady,
            "HeunStochastic (TVB), dt = 0.1 ms",
            "coupling.Linear(a=G=0.5, b=0), delayed, into x only (y row zeroed)",
            notes,
            args,
            n,
            mean_x=mean_x,
        ),
        ok,
    )


def _version(dist):
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
