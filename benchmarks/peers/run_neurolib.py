"""W1 in neurolib (HopfModel, numba).

    benchmarks/.peers/neurolib/bin/python benchmarks/peers/run_neurolib.py \
        --connectome path.npz --duration-ms 10000 --repeats 3

Mapping (neurolib's Hopf is in ms, like W1):
  a -> a, omega -> w, G -> K_gl, W -> Cmat (rows are targets, as in W1),
  tract lengths (mm) -> Dmat, v = 5 m/s -> signalV = 5.0 (neurolib: delay = Dmat / signalV ms).
  coupling = "additive": K_gl * sum_l Cmat[i, l] x_l(t - d_il) into dx only (neurolib's default
      is "diffusive", K_gl * sum_l Cmat[i, l] (x_l(t - d_il) - x_i(t)); W1 is additive, which
      neurolib also offers, so we use that).
  noise: neurolib has no white additive noise; it drives x and y with an Ornstein-Uhlenbeck input
      (x_ou, y_ou), integrated by Euler-Maruyama. With tau_ou = dt the OU update is
      x_ou <- sigma_ou sqrt(dt) z (it forgets its past in one step), and it enters x as
      dt * x_ou, i.e. dt * sigma_ou * sqrt(dt) z. Setting sigma_ou = sigma / dt = 0.2 gives exactly
      sigma sqrt(dt) z per step: white additive noise of std sigma (one step late).
  integrator: neurolib's Hopf is Euler(-Maruyama) only; no Heun.
  delays: round(tau / dt) steps, as in TVB.
  output: sampling_dt = 1.0 ms (every 10th step).
"""

import _w1  # noqa: I001  (first: keeps stdout for the JSON line)

import numpy as np

import neurolib
from neurolib.models.hopf import HopfModel


def main():
    args = _w1.parse_args("neurolib")
    w, lengths = _w1.load_connectome(args.connectome)
    n = w.shape[0]

    model = HopfModel(Cmat=w, Dmat=lengths)
    p = model.params
    p.update(
        dict(
            dt=_w1.DT,
            duration=float(args.duration_ms),
            sampling_dt=_w1.PERIOD,
            a=_w1.A,
            w=_w1.OMEGA,
            K_gl=_w1.G,
            coupling="additive",
            signalV=_w1.SPEED,
            tau_ou=_w1.DT,
            sigma_ou=_w1.SIGMA / _w1.DT,
            x_ou_mean=0.0,
            y_ou_mean=0.0,
        )
    )

    def run(i):
        p.seed = args.seed + i
        p.xs_init = np.full((n, 1), _w1.X0)
        p.ys_init = np.full((n, 1), _w1.Y0)
        p.x_ou = np.zeros(n)
        p.y_ou = np.zeros(n)
        model.run()
        return np.asarray(model.x).T  # (n_t, n)

    compile_s, steady, x = _w1.time_runs(run, args.repeats)
    ok, msg, mean_x = _w1.check(x, args.duration_ms, n)
    notes = (
        f"{msg}; compile_s includes numba JIT of the integration loop; "
        "noise = OU input with tau_ou=dt, sigma_ou=sigma/dt (== white additive sigma); "
        "single-threaded numba loop"
    )
    _w1.emit(
        _w1.result(
            "neurolib",
            getattr(neurolib, "__version__", None) or _version("neurolib"),
            compile_s,
            steady,
            "Euler-Maruyama (neurolib Hopf has no Heun)",
            "additive delayed linear into x: K_gl * sum_j Cmat_ij x_j(t - d_ij), K_gl = G = 0.5 "
            "(neurolib default 'diffusive' not used)",
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
