"""W2 in The Virtual Brain (tvb-library): the W1 network (SupHopf, HeunStochastic) read out as BOLD.

    benchmarks/.peers/tvb/bin/python benchmarks/peers/run_tvb_w2.py \
        --connectome path.npz --repeats 3 [--G 0.5] [--a -0.02] [--bold monitor|balloon]

Network: exactly as run_tvb.py (W1): SupHopf(a, omega), Connectivity(weights=W,
tract_lengths=L, speed=5), LinearXOnly(a=G, b=0) (TVB's Linear coupling with SupHopf's y row
zeroed), HeunStochastic(dt=0.1) with noise.Additive(nsig = sigma^2 / 2), constant history
x = 0.1, y = 0. A fresh Simulator is built and configured for every timed run.

BOLD, --bold monitor (default, what W2 times): monitors.Bold(period=TR=720 ms), variable of
interest x, TVB defaults: hrf_kernel = equations.FirstOrderVolterra (tau_s = 0.8 s,
tau_f = 0.4 s, k_1 = 5.6, V_0 = 0.02), hrf_length = 20 s. This is NOT the balloon ODE: every step
x goes into an interim buffer; every 40 steps (4 ms) its mean is pushed into a 5000-sample
(20 s) ring; every TR the monitor returns
    k_1 V_0 (sum_m G(t_m) xbar(t - t_m) - 1),
G(t) = 1/3 exp(-t / (2 tau_s)) sin(w t) / w with w = sqrt(1/tau_f - 1/(4 tau_s^2)), t_m = m * 4 ms:
the first-order Volterra kernel of the balloon model (Friston 2000), summed without the 4 ms
step, over a ring that starts at zero (so the first 20 s ramp up from -k_1 V_0).
83 samples at t = 720, 1440, ..., 59760 ms. TVB 2.10 has no balloon-ODE monitor: all of the
Bold monitor's kernels (FirstOrderVolterra, Gamma, DoubleExponential, MixtureOfGammas) are
fixed HRFs.

BOLD, --bold balloon (variant, not the default): TVB's balloon ODE exists only as the offline
analyzer tvb.analyzers.fmri_balloon.BalloonModel (Stephan 2007, revised non-linear BOLD model,
TVB defaults tau_s = 1.54 s, tau_f = 1.44 s, tau_o = 0.98 s, alpha = 0.32, E0 = 0.4, V0 = 4,
TE = 0.04 s, epsilon = 0.5, nu_0 = 40.3, r_0 = 25; HeunDeterministic at the input's sample
period; s = 0, f = v = q = 1 at t = 0). The simulation records x with
monitors.TemporalAverage(period=--balloon-input-ms, default 1 ms), the analyzer integrates the
balloon on it (a Python loop, one step per input sample), and the runner keeps the value at the
end of every TR: 83 samples at t = 720, ..., 59760 ms. The analyzer's time is inside the timed run.
"""

import _w1  # noqa: I001  (first: keeps stdout for the JSON line)

import time

import numpy as np

from run_tvb import LinearXOnly, _version  # noqa: E402  (also sets TVB's library profile)

from tvb.analyzers.fmri_balloon import BalloonModel  # noqa: E402
from tvb.datatypes import connectivity, time_series  # noqa: E402
from tvb.simulator import integrators, models, monitors, noise, simulator  # noqa: E402


def main():
    args = _w1.parse_args_w2(
        "tvb",
        extra=[
            (
                ("--bold",),
                dict(
                    choices=["monitor", "balloon"],
                    default="monitor",
                    help="monitor: monitors.Bold (HRF convolution, default); balloon: "
                    "TemporalAverage of x + the BalloonModel analyzer (balloon ODE)",
                ),
            ),
            (
                ("--balloon-input-ms",),
                dict(
                    type=float,
                    default=1.0,
                    help="--bold balloon: TemporalAverage period of x fed to BalloonModel (ms)",
                ),
            ),
        ],
    )
    w, lengths = _w1.load_connectome(args.connectome)
    n = w.shape[0]
    horizon = int(np.round(lengths.max() / _w1.SPEED / _w1.DT)) + 1
    init = np.zeros((horizon, 2, n, 1))
    init[:, 0] = _w1.X0
    init[:, 1] = _w1.Y0
    voi = np.array([0])  # x

    def build(seed):
        conn = connectivity.Connectivity(
            weights=w.copy(),
            tract_lengths=lengths.copy(),
            speed=np.array([_w1.SPEED]),
            centres=np.zeros((n, 3)),
            region_labels=np.array([f"r{i}" for i in range(n)]),
        )
        model = models.SupHopf(
            a=np.array([args.a]), omega=np.array([_w1.OMEGA]), variables_of_interest=("x",)
        )
        integ = integrators.HeunStochastic(
            dt=_w1.DT, noise=noise.Additive(nsig=np.array([_w1.SIGMA**2 / 2]), noise_seed=seed)
        )
        if args.bold == "monitor":
            mon = monitors.Bold(period=args.tr_ms, variables_of_interest=voi)
        else:
            mon = monitors.TemporalAverage(period=args.balloon_input_ms, variables_of_interest=voi)
        sim = simulator.Simulator(
            model=model,
            connectivity=conn,
            coupling=LinearXOnly(a=np.array([args.G]), b=np.array([0.0])),
            integrator=integ,
            monitors=(mon,),
            simulation_length=float(args.duration_ms),
            initial_conditions=init.copy(),
        )
        sim.configure()
        return sim

    analyzer_s = []

    def balloon(t, xs):
        """BalloonModel analyzer on the x time series; the value at the end of every TR."""
        t0 = time.perf_counter()
        period = args.balloon_input_ms
        ts = time_series.TimeSeries(data=xs, time=t, sample_period=period, sample_period_unit="ms")
        ts.configure()
        res = BalloonModel(time_series=ts).evaluate()  # data (T, 1, n, 1)
        per_tr = int(round(args.tr_ms / period))
        idx = np.arange(per_tr - 1, res.data.shape[0], per_tr)
        analyzer_s.append(time.perf_counter() - t0)
        return res.data[idx, 0, :, 0], (idx + 1) * period

    def run(i):
        sim = build(args.seed + i)
        ((t, xs),) = sim.run()  # xs: (T, 1, n, 1)
        if args.bold == "monitor":
            return xs[:, 0, :, 0], t
        return balloon(t, xs)

    compile_s, steady, (bold, t_bold) = _w1.time_runs(run, args.repeats)
    n_expected = _w1.n_bold_expected(args.duration_ms, args.tr_ms)
    ok, msg, stats = _w1.check_bold(bold, t_bold, n, n_expected, args.save_bold)
    extra = {"bold_variant": args.bold}
    if args.bold == "monitor":
        bold_method = (
            f"monitors.Bold(period={args.tr_ms:g}): HRF convolution, not the balloon ODE; x avg "
            "over 4 ms, 20 s ring, FirstOrderVolterra kernel (first Volterra kernel of the balloon "
            "model, tau_s=0.8 s, tau_f=0.4 s), BOLD = k1 V0 (sum_m G(t_m) xbar(t-t_m) - 1), "
            "k1=5.6, V0=0.02; ring starts at 0, first 20 s are a warm-up"
        )
    else:
        bold_method = (
            "balloon ODE via the offline analyzer tvb.analyzers.fmri_balloon.BalloonModel "
            "(Stephan 2007 revised non-linear, TVB defaults tau_s=1.54 s, tau_f=1.44 s, V0=4), "
            f"HeunDeterministic at {args.balloon_input_ms:g} ms on monitors.TemporalAverage("
            f"period={args.balloon_input_ms:g}) of x; value at the end of each TR"
        )
        extra["balloon_analyzer_s"] = [round(s, 4) for s in analyzer_s]
    notes = (
        f"{msg}; NumPy backend (no JIT: compile_s is just a first run); coupling into y zeroed "
        "via a Linear subclass; nsig = sigma^2/2"
    )
    _w1.emit(
        _w1.result_w2(
            "tvb-library",
            _version("tvb-library"),
            compile_s,
            steady,
            "HeunStochastic (TVB), dt = 0.1 ms",
            f"coupling.Linear(a=G={args.G}, b=0), delayed, into x only (y row zeroed)",
            bold_method,
            notes,
            args,
            n,
            stats,
            **extra,
        ),
        ok,
    )


if __name__ == "__main__":
    main()
