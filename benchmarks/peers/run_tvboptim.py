"""W1 in tvboptim (tvboptim.experimental.network_dynamics: SupHopf, native Heun, JAX).

    benchmarks/.peers/tvboptim/bin/python benchmarks/peers/run_tvboptim.py \
        --connectome path.npz --duration-ms 10000 --repeats 3 [--batch 32]

Mapping (tvboptim's SupHopf is TVB's normal form; W1 units, ms, are passed as they are):
  a -> SupHopf.a, omega -> SupHopf.omega (rad/ms).
  graph: DenseLengthGraph(weights=W, lengths=L mm, speed=5 mm/ms): delays = L / speed (ms);
      rows are targets (c_i = sum_j w_ij x_j(t - tau_ij)); read as the nearest step (rint).
  coupling: DelayedLinearCoupling(incoming_states="x", G=0.5) computes G * sum_j W_ij x_j(t-tau_ij)
      (one output row). SupHopf declares a 2-row "delayed" input and adds row 0 to dx and row 1 to
      dy; the stock coupling's single row is then also read as row 1 (JAX clamps the
      out-of-range index), so the y equation gets the x coupling too. W1 couples x only, so the
      subclass XOnlyDelayedLinearCoupling returns [G * sum_j W_ij x_j(t - tau_ij), 0].
  noise: AdditiveNoise(sigma=0.02) on x and y: sigma * sqrt(dt) * N(0, 1) per step.
  integrator: solvers.Heun() (stochastic Heun; the delayed coupling is held over the two stages,
      which is exact for a history-only coupling). dt = 0.1 ms, t0 = 0, t1 = duration.
  output: every step is returned; x is taken every 10th step (1 ms) inside the jitted function.
  initial history: constant x = 0.1, y = 0 (SupHopf's INITIAL_STATE).
  --batch N: jax.vmap over N configs with G = linspace(0.25, 0.75, N) and one noise key each.
"""

import _w1  # noqa: I001  (first: keeps stdout for the JSON line)

import time

import jax
import jax.numpy as jnp
import numpy as np

import tvboptim
from tvboptim.experimental.network_dynamics import DenseLengthGraph, Network, prepare
from tvboptim.experimental.network_dynamics.coupling import DelayedLinearCoupling
from tvboptim.experimental.network_dynamics.dynamics.tvb import SupHopf
from tvboptim.experimental.network_dynamics.noise import AdditiveNoise
from tvboptim.experimental.network_dynamics.solvers import Heun


class XOnlyDelayedLinearCoupling(DelayedLinearCoupling):
    """DelayedLinearCoupling whose output feeds SupHopf's x row only (y row = 0)."""

    def post(self, summed_inputs, local_states, params):
        c = params.G * summed_inputs + params.b
        return jnp.concatenate([c, jnp.zeros_like(c)], axis=0)


def main():
    args = _w1.parse_args(
        "tvboptim",
        batch=True,
        extra=[
            (
                ("--buffer-strategy",),
                dict(
                    default="roll",
                    choices=["roll", "circular", "preallocated"],
                    help="DelayedCoupling history buffer (tvboptim default: roll)",
                ),
            )
        ],
    )
    w, lengths = _w1.load_connectome(args.connectome)
    n = w.shape[0]
    stride = int(round(_w1.PERIOD / _w1.DT))

    def build(duration_ms):
        dyn = SupHopf(a=_w1.A, omega=_w1.OMEGA)
        dyn.INITIAL_STATE = (_w1.X0, _w1.Y0)
        graph = DenseLengthGraph(w, lengths, _w1.SPEED)
        cpl = XOnlyDelayedLinearCoupling(
            incoming_states="x", G=_w1.G, buffer_strategy=args.buffer_strategy
        )
        net = Network(dyn, {"delayed": cpl}, graph, noise=AdditiveNoise(sigma=_w1.SIGMA))
        return prepare(net, Heun(), t0=0.0, t1=float(duration_ms), dt=_w1.DT)

    solve, cfg = build(args.duration_ms)

    def with_params(c, g, key):
        c = jax.tree_util.tree_map(lambda leaf: leaf, c)  # fresh containers, shared leaves
        c.coupling.delayed.G = g
        c.noise.key = key
        return c

    @jax.jit
    def sim(g, key):
        ys = solve(with_params(cfg, g, key)).ys  # (n_steps, 2, n)
        return ys[stride - 1 :: stride, 0]

    def run(i):
        return np.asarray(jax.block_until_ready(sim(_w1.G, jax.random.PRNGKey(args.seed + i))))

    compile_s, steady, x = _w1.time_runs(run, args.repeats)
    ok, msg, mean_x = _w1.check(x, args.duration_ms, n)
    extra = {
        "mean_x": mean_x,
        "jax_backend": jax.default_backend(),
        "x64": bool(jax.config.jax_enable_x64),
    }

    if args.batch:
        bdur = args.batch_duration_ms or args.duration_ms
        bsolve, bcfg = build(bdur) if bdur != args.duration_ms else (solve, cfg)

        def one(g, key):
            return bsolve(with_params(bcfg, g, key)).ys[stride - 1 :: stride, 0]

        bsim = jax.jit(jax.vmap(one))
        gs = jnp.linspace(0.25, 0.75, args.batch)
        keys = jax.random.split(jax.random.PRNGKey(args.seed + 1000), args.batch)
        t0 = time.perf_counter()
        xb = np.asarray(jax.block_until_ready(bsim(gs, keys)))
        bcompile = time.perf_counter() - t0
        times = []
        for _ in range(args.batch_repeats):
            t0 = time.perf_counter()
            xb = np.asarray(jax.block_until_ready(bsim(gs, keys)))
            times.append(time.perf_counter() - t0)
        bmed = float(np.median(times))
        bok = bool(np.isfinite(xb).all()) and xb.shape == (args.batch, _w1.n_out(bdur), n)
        ok = ok and bok
        extra.update(
            {
                f"batch{args.batch}_per_sim_s": round(bmed / args.batch, 4),
                f"batch{args.batch}_s": round(bmed, 4),
                f"batch{args.batch}_compile_s": round(bcompile, 4),
                "batch_duration_ms": bdur,
                "batch_shape": list(xb.shape),
                "batch_finite": bool(np.isfinite(xb).all()),
            }
        )

    notes = (
        f"{msg}; JAX {jax.__version__} on {jax.default_backend()}, float32; coupling subclass "
        f"zeroes SupHopf's y coupling row; history buffer_strategy={args.buffer_strategy!r}; "
        "the full (n_steps, 2, n) trajectory is materialised and x subsampled every 1 ms"
    )
    _w1.emit(
        _w1.result(
            "tvboptim",
            tvboptim.__version__,
            compile_s,
            steady,
            "Heun (tvboptim native, stochastic Heun), dt = 0.1 ms",
            "DelayedLinearCoupling(G=0.5) on x, delays = lengths/speed (nearest step), into x only",
            notes,
            args,
            n,
            **extra,
        ),
        ok,
    )


if __name__ == "__main__":
    main()
