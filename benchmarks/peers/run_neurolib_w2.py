"""W2 in neurolib: the W1 Hopf network (HopfModel, numba) read out by neurolib's BOLD model.

    benchmarks/.peers/neurolib/bin/python benchmarks/peers/run_neurolib_w2.py \
        --connectome path.npz --repeats 3 [--G 0.5] [--a -0.02]

Network: exactly as run_neurolib.py (W1): a -> a, omega -> w, G -> K_gl, coupling="additive",
Cmat = W, Dmat = L, signalV = 5, OU noise with tau_ou = dt and sigma_ou = sigma / dt (== white
additive sigma), Euler-Maruyama at dt = 0.1 ms (the only integrator of neurolib's Hopf).

BOLD: neurolib's own `run(chunkwise=True, chunksize=..., bold=True)`. After each chunk neurolib
feeds the chunk's x at every integration step (dt = 0.1 ms) to its Balloon-Windkessel model
(neurolib.models.bold: Friston 2000/2003, Euler in seconds at dt = 1e-4 s, rho = 0.34,
alpha = 0.32, V0 = 0.02, k1 = 7 rho, k2 = 2, k3 = 2 rho - 0.2, gamma = 0.41 /s, kappa = 0.65 /s,
tau = 0.98 s; initial state X = F = Q = V = 1) and keeps every `samplingRate_NDt`-th value.
Deviations from neurolib's defaults, all needed to get W2:
  - TR: neurolib hard-codes its BOLD sampling at 2 s (samplingRate_NDt = round(2000 / dt)); a
    HopfModel subclass sets samplingRate_NDt = round(TR / dt) = 7200 after initializeBold().
  - chunk size: neurolib only appends BOLD across chunks whose length is a multiple of
    samplingRate_NDt (otherwise each chunk overwrites the BOLD so far). Its default chunk (2 s) is
    not a multiple of 0.72 s, so chunks are --chunk-trs TRs (default 1 = 7200 steps, as neurolib's
    default chunk equals its default 2 s TR). The last 240 ms of a 60 s run (shorter than a TR)
    get no BOLD sample: neurolib logs "Will not simulate BOLD" for it.
  - input: neurolib's HopfModel transforms x before the BOLD model, (x + 1) * 4 ("because this is
    not a rate model"); W2 drives BOLD with x itself, so boldInputTransform = None
    (--bold-input neurolib keeps neurolib's transform).
  - noise across chunks: neurolib calls np.random.seed(params["seed"]) at the start of every
    chunk, so a fixed seed would repeat the same noise every chunk (every 0.72 s). The runner
    advances the seed per chunk (seed * 100000 + chunk index).
  - fresh BOLD state each run: neurolib only re-creates the BOLD model when params["bold"] is set;
    the runner sets boldInitialized = False before each run.
Samples: 83 at t = 0.1, 720.1, ..., 59040.1 ms (neurolib's t_BOLD: the 2nd step of each chunk).
"""

import _w1  # noqa: I001  (first: keeps stdout for the JSON line)

import numpy as np

import neurolib
from neurolib.models.hopf import HopfModel
from neurolib.models.hopf import timeIntegration as hopf_ti


def main():
    args = _w1.parse_args_w2(
        "neurolib",
        extra=[
            (
                ("--chunk-trs",),
                dict(type=int, default=1, help="TRs per neurolib chunk (default 1)"),
            ),
            (
                ("--bold-input",),
                dict(
                    choices=["x", "neurolib"],
                    default="x",
                    help="x: drive BOLD with x (W2); neurolib: its Hopf transform (x + 1) * 4",
                ),
            ),
        ],
    )
    w, lengths = _w1.load_connectome(args.connectome)
    n = w.shape[0]
    dt = _w1.DT
    n_steps = int(round(args.duration_ms / dt))
    tr_steps = int(round(args.tr_ms / dt))
    chunk = args.chunk_trs * tr_steps
    rem = n_steps % chunk
    if rem >= tr_steps and rem % tr_steps:
        raise SystemExit(
            f"--chunk-trs {args.chunk_trs}: last chunk of {rem} steps is longer than a TR and not "
            f"a multiple of it; neurolib would overwrite the BOLD so far. Use 1 or a divisor of "
            f"{n_steps // tr_steps}."
        )

    class HopfW2(HopfModel):
        def initializeBold(self):
            super().initializeBold()
            self.boldModel.samplingRate_NDt = tr_steps  # neurolib hard-codes 2 s

    model = HopfW2(Cmat=w, Dmat=lengths)
    if args.bold_input == "x":
        model.boldInputTransform = None
    p = model.params
    p.update(
        dict(
            dt=dt,
            duration=float(args.duration_ms),
            sampling_dt=None,  # x is not needed; neurolib would also subsample BOLD.BOLD by it
            a=args.a,
            w=_w1.OMEGA,
            K_gl=args.G,
            coupling="additive",
            signalV=_w1.SPEED,
            tau_ou=dt,
            sigma_ou=_w1.SIGMA / dt,
            x_ou_mean=0.0,
            y_ou_mean=0.0,
        )
    )

    seeds = {"base": 0, "chunk": 0}

    def integration(params):
        # one seed per chunk: neurolib reseeds np.random with params["seed"] every chunk
        params["seed"] = seeds["base"] + seeds["chunk"]
        seeds["chunk"] += 1
        return hopf_ti.timeIntegration(params)

    model.integration = integration

    def run(i):
        seeds["base"], seeds["chunk"] = (args.seed + i) * 100_000, 0
        p.xs_init = np.full((n, 1), _w1.X0)
        p.ys_init = np.full((n, 1), _w1.Y0)
        p.x_ou = np.zeros(n)
        p.y_ou = np.zeros(n)
        model.boldInitialized = False  # fresh Balloon state and sample clock
        model.run(chunksize=chunk, bold=True)
        out = model.outputs["BOLD"]  # == model.boldModel.BOLD, .t_BOLD (sampling_dt is None)
        return np.asarray(out["BOLD"]).T, np.asarray(out["t_BOLD"])  # (n_TR, n), (n_TR,)

    compile_s, steady, (bold, t_bold) = _w1.time_runs(run, args.repeats)
    n_expected = _w1.n_bold_expected(args.duration_ms, args.tr_ms)
    ok, msg, stats = _w1.check_bold(bold, t_bold, n, n_expected, args.save_bold)
    bold_method = (
        "Balloon-Windkessel ODE (neurolib.models.bold, Friston 2003 coefficients "
        "k1=7rho, k2=2, k3=2rho-0.2, V0=0.02), Euler at dt=0.1 ms, driven by x at every step"
        + (" (input (x+1)*4, neurolib's Hopf default)" if args.bold_input != "x" else "")
        + f"; sample every {tr_steps} steps via neurolib chunkwise BOLD, {chunk}-step chunks"
    )
    notes = (
        f"{msg}; compile_s includes numba JIT of the Hopf loop and the BOLD loop; "
        f"{(n_steps + chunk - 1) // chunk} neurolib chunks, one noise seed per chunk; "
        "neurolib samples BOLD at the 2nd step of each TR window and the last partial TR gets none"
    )
    _w1.emit(
        _w1.result_w2(
            "neurolib",
            getattr(neurolib, "__version__", None) or _version("neurolib"),
            compile_s,
            steady,
            "Euler-Maruyama (neurolib Hopf has no Heun)",
            f"additive delayed linear into x, K_gl = G = {args.G}",
            bold_method,
            notes,
            args,
            n,
            stats,
            chunk_steps=chunk,
            bold_input=args.bold_input,
        ),
        ok,
    )


def _version(dist):
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
