"""W2 in tvboptim: the W1 network (SupHopf, native Heun, JAX) read out by tvboptim's BOLD monitor.

    benchmarks/.peers/tvboptim/bin/python benchmarks/peers/run_tvboptim_w2.py \
        --connectome path.npz --repeats 3 [--G 0.5] [--a -0.02] [--bold balloon|hrf]

Network: exactly as run_tvboptim.py (W1): SupHopf(a, omega) with history x = 0.1, y = 0,
DenseLengthGraph(W, L, speed=5), XOnlyDelayedLinearCoupling(incoming_states="x", G) (the stock
coupling with SupHopf's y row zeroed), AdditiveNoise(sigma=0.02), solvers.Heun() at dt = 0.1 ms,
float32. The native solver returns the whole (n_steps, 2, n) trajectory; the BOLD monitor is
applied to it inside the same jit (tvboptim's monitors are post-hoc functions of a solution).

BOLD, --bold balloon (default): tvboptim.observations.tvb_monitors.BalloonWindkesselBold(
period=TR, dt_bw=0.1 ms, voi=0): the balloon ODE (Friston 2000 / Deco 2014 form, parameters in
seconds: taus = 0.65, tauf = 0.41, tauo = 0.98, alpha = 0.32, Eo = 0.4, vo = 0.04, TE = 0.04,
k1 = 4.3 * 40.3 Eo TE, k2 = 25 Eo TE, k3 = 1) integrated by forward Euler (a lax.scan) over x at
every integration step (tvboptim's default dt_bw is 1 ms, i.e. every 10th x; W2 drives it with
every step, --dt-bw to change), from s = 0, f = v = q = 1, sampled at the end of each TR:
83 samples at t = 720, ..., 59760 ms.

BOLD, --bold hrf (variant): HRFBold(period=TR, voi=0), tvboptim's port of TVB's Bold monitor
(TemporalAverage of x over 4 ms, FirstOrderVolterra kernel over 20 s, zero history, fftconvolve,
k_1 V_0 (conv - 1)).
"""

import _w1  # noqa: I001  (first: keeps stdout for the JSON line)

import jax
import numpy as np

import tvboptim
from run_tvboptim import XOnlyDelayedLinearCoupling  # noqa: E402
from tvboptim.experimental.network_dynamics import DenseLengthGraph, Network, prepare
from tvboptim.experimental.network_dynamics.dynamics.tvb import SupHopf
from tvboptim.experimental.network_dynamics.noise import AdditiveNoise
from tvboptim.experimental.network_dynamics.solvers import Heun
from tvboptim.observations.tvb_monitors import BalloonWindkesselBold, HRFBold


def main():
    args = _w1.parse_args_w2(
        "tvboptim",
        extra=[
            (
                ("--bold",),
                dict(
                    choices=["balloon", "hrf"],
                    default="balloon",
                    help="balloon: BalloonWindkesselBold (ODE, default); hrf: HRFBold (TVB-style)",
                ),
            ),
            (
                ("--dt-bw",),
                dict(
                    type=float,
                    default=_w1.DT,
                    help="BalloonWindkesselBold integration step in ms (default: dt = 0.1)",
                ),
            ),
            (
                ("--buffer-strategy",),
                dict(
                    default="roll",
                    choices=["roll", "circular", "preallocated"],
                    help="DelayedCoupling history buffer (tvboptim default: roll)",
                ),
            ),
        ],
    )
    w, lengths = _w1.load_connectome(args.connectome)
    n = w.shape[0]

    dyn = SupHopf(a=args.a, omega=_w1.OMEGA)
    dyn.INITIAL_STATE = (_w1.X0, _w1.Y0)
    graph = DenseLengthGraph(w, lengths, _w1.SPEED)
    cpl = XOnlyDelayedLinearCoupling(
        incoming_states="x", G=args.G, buffer_strategy=args.buffer_strategy
    )
    net = Network(dyn, {"delayed": cpl}, graph, noise=AdditiveNoise(sigma=_w1.SIGMA))
    solve, cfg = prepare(net, Heun(), t0=0.0, t1=float(args.duration_ms), dt=_w1.DT)

    if args.bold == "balloon":
        monitor = BalloonWindkesselBold(period=args.tr_ms, dt_bw=args.dt_bw, voi=0)
    else:
        monitor = HRFBold(period=args.tr_ms, voi=0)

    def with_params(c, g, key):
        c = jax.tree_util.tree_map(lambda leaf: leaf, c)  # fresh containers, shared leaves
        c.coupling.delayed.G = g
        c.noise.key = key
        return c

    @jax.jit
    def sim(g, key):
        bold = monitor(solve(with_params(cfg, g, key)))
        return bold.ys[:, 0, :], bold.ts

    def run(i):
        out = jax.block_until_ready(sim(args.G, jax.random.PRNGKey(args.seed + i)))
        return tuple(np.asarray(o) for o in out)

    compile_s, steady, (bold, t_bold) = _w1.time_runs(run, args.repeats)
    n_expected = _w1.n_bold_expected(args.duration_ms, args.tr_ms)
    ok, msg, stats = _w1.check_bold(bold, t_bold, n, n_expected, args.save_bold)
    if args.bold == "balloon":
        bold_method = (
            f"balloon ODE: BalloonWindkesselBold(period={args.tr_ms:g}, dt_bw={args.dt_bw:g}) "
            "(taus=0.65 s, tauf=0.41 s, tauo=0.98 s, alpha=0.32, Eo=0.4, vo=0.04, "
            "k1=4.3*40.3*Eo*TE, k2=25*Eo*TE, k3=1), forward Euler over x, "
            "post-hoc on the full trajectory inside the jit; value at the end of each TR"
        )
    else:
        bold_method = (
            f"HRFBold(period={args.tr_ms:g}): port of TVB's Bold monitor, x averaged over 4 ms, "
            "FirstOrderVolterra kernel over 20 s (zero history), fftconvolve, k1 V0 (conv - 1)"
        )
    notes = (
        f"{msg}; JAX {jax.__version__} on {jax.default_backend()}, float32; coupling subclass "
        f"zeroes SupHopf's y coupling row; buffer_strategy={args.buffer_strategy!r}; the full "
        "(n_steps, 2, n) trajectory is materialised before the BOLD monitor"
    )
    _w1.emit(
        _w1.result_w2(
            "tvboptim",
            tvboptim.__version__,
            compile_s,
            steady,
            "Heun (tvboptim native, stochastic Heun), dt = 0.1 ms",
            f"DelayedLinearCoupling(G={args.G}) on x, delays = lengths/speed (nearest step), "
            "into x only",
            bold_method,
            notes,
            args,
            n,
            stats,
            bold_variant=args.bold,
            jax_backend=jax.default_backend(),
            x64=bool(jax.config.jax_enable_x64),
        ),
        ok,
    )


if __name__ == "__main__":
    main()
