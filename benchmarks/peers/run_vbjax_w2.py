"""W2 in vbjax: the W1 network (make_sdde stochastic Heun, JAX) read out by vbjax's BOLD monitor.

    benchmarks/.peers/vbjax/bin/python benchmarks/peers/run_vbjax_w2.py \
        --connectome path.npz --repeats 3 [--G 0.5] [--a -0.02]

Network: exactly as run_vbjax.py (W1): Hopf vector field written here (vbjax has no Hopf model),
delays floor(L / v / dt) from vb.make_delay_helper(W.T, L, dt, v_c=5), G sum_j W_ij x_j(t - lag)
into dx, constant diffusion sigma on x and y, vb.make_sdde (stochastic Heun) run in chunks of
--chunk-steps steps (default 100) inside one jit, float32, history x = 0.1, y = 0.

BOLD: vbjax's own monitor vb.make_bold((n,), dt, vb.bold_default_theta): the balloon ODE
(vb.bold_dfun; Stephan 2007 revised BOLD model, tau_s = 0.65 s, tau_f = 0.41 s,
tau_o = 0.98 s, alpha = 0.32, E0 = 0.4, v0 = 4, TE = 0.04 s, epsilon = 0.5, nu_0 = 40.3,
r_0 = 25: k1 = 4.3 nu_0 E0 TE, k2 = epsilon r_0 E0 TE, k3 = 1 - epsilon), stepped with
vb.heun_step (deterministic Heun). Its parameters are in seconds, so dt = 0.1 ms = 1e-4 s; it
is stepped once per integration step with that step's x (as vbjax's own test_monitor does),
from s = 0, f = v = q = 1. After each chunk the runner takes the monitor's sample
v0 (k1 (1 - q) + k2 (1 - q/v) + k3 (1 - v)) and keeps those at the end of each TR:
83 samples at t = 720, ..., 59760 ms. (Chunks divide the TR, 7200 steps.)
"""

import _w1  # noqa: I001  (first: keeps stdout for the JSON line)

from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np

import vbjax as vb

State = namedtuple("State", "x y")


def main():
    args = _w1.parse_args_w2(
        "vbjax",
        extra=[
            (
                ("--chunk-steps",),
                dict(
                    type=int,
                    default=100,
                    help="steps per buffer chunk; must divide the TR in steps (default 100)",
                ),
            )
        ],
    )
    w, lengths = _w1.load_connectome(args.connectome)
    n = w.shape[0]
    n_steps = int(round(args.duration_ms / _w1.DT))
    tr_steps = int(round(args.tr_ms / _w1.DT))
    n_full = (n_steps // tr_steps) * tr_steps  # steps up to the last whole TR

    dh = vb.make_delay_helper(jnp.asarray(w.T), jnp.asarray(lengths), dt=_w1.DT, v_c=_w1.SPEED)
    nh = int(dh.max_lag)
    W = dh.Wt[..., 0].T  # == w (float32), rows are targets
    lags, src = dh.lags, dh.ix_lag_from
    zero_lag = int(((np.asarray(lags) == 0) & (w != 0)).sum())

    def dfun(buf, x, t, p):
        g, a, omega = p
        cx = g * (W * buf.x[t - lags, src]).sum(axis=1)
        r2 = x.x * x.x + x.y * x.y
        return State((a - r2) * x.x - omega * x.y + cx, (a - r2) * x.y + omega * x.x)

    chunk = min(args.chunk_steps, tr_steps)
    while n_steps % chunk or tr_steps % chunk:
        chunk -= 1
    chunks_per_tr = tr_steps // chunk
    _, loop = vb.make_sdde(_w1.DT, nh, dfun, _w1.SIGMA)
    bold0, bold_step, bold_sample = vb.make_bold((n,), _w1.DT * 1e-3, vb.bold_default_theta)

    def run_fn(p, key):
        size = nh + 1 + chunk
        buf = State(jnp.full((size, n), _w1.X0), jnp.full((size, n), _w1.Y0))

        def body(carry, k):
            buf, bb = carry
            kx, ky = jax.random.split(k)
            buf = State(
                buf.x.at[nh + 1 :].set(jax.random.normal(kx, (chunk, n))),
                buf.y.at[nh + 1 :].set(jax.random.normal(ky, (chunk, n))),
            )
            buf, xs = loop(buf, p)
            bb, _ = jax.lax.scan(lambda b, x: (bold_step(b, x), None), bb, xs.x)
            buf = State(jnp.roll(buf.x, -chunk, axis=0), jnp.roll(buf.y, -chunk, axis=0))
            _, b = bold_sample(bb)
            return (buf, bb), b

        _, bs = jax.lax.scan(body, (buf, bold0), jax.random.split(key, n_steps // chunk))
        return bs[chunks_per_tr - 1 :: chunks_per_tr]  # BOLD at the end of each TR

    sim = jax.jit(run_fn)
    params = (jnp.float32(args.G), jnp.float32(args.a), jnp.float32(_w1.OMEGA))
    t_bold = np.arange(1, n_full // tr_steps + 1) * args.tr_ms

    def run(i):
        return np.asarray(jax.block_until_ready(sim(params, jax.random.PRNGKey(args.seed + i))))

    compile_s, steady, bold = _w1.time_runs(run, args.repeats)
    n_expected = _w1.n_bold_expected(args.duration_ms, args.tr_ms)
    ok, msg, stats = _w1.check_bold(bold, t_bold[: len(bold)], n, n_expected, args.save_bold)
    bold_method = (
        "balloon ODE: vbjax's monitor vb.make_bold (vb.bold_dfun, Stephan 2007 revised "
        "coefficients, tau_s=0.65 s, tau_f=0.41 s, tau_o=0.98 s, v0=4), vb.heun_step "
        "(deterministic Heun) at dt=1e-4 s, driven by x at every step; sampled at each TR's end"
    )
    notes = (
        f"{msg}; JAX {jax.__version__} on {jax.default_backend()}, float32; Hopf dfun written "
        f"here (vbjax has none); delays floor(L/v/dt); make_sdde run in chunks of {chunk} steps "
        "(one jit, lax.scan over chunks), BOLD monitor stepped inside the same scan"
    )
    if zero_lag:
        notes += (
            f"; WARNING {zero_lag} weighted edges have lag 0 (make_sdde reads noise slots there)"
        )
    _w1.emit(
        _w1.result_w2(
            "vbjax",
            _version("vbjax"),
            compile_s,
            steady,
            "stochastic Heun (vb.make_sdde), dt = 0.1 ms",
            f"linear delayed, G * sum_j W_ij x_j(t - tau_ij) into x, G = {args.G}",
            bold_method,
            notes,
            args,
            n,
            stats,
            jax_backend=jax.default_backend(),
            chunk_steps=chunk,
        ),
        ok,
    )


def _version(dist):
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
