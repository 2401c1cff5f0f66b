"""S1 in `sbi` (mackelab/sbi, PyTorch): neural posterior estimation on a fixed simulation bank.

    benchmarks/.peers/sbi/bin/python benchmarks/peers/run_sbi_npe.py --bank BANK.npz --out OUT.npz \
        [--density-estimator maf|nsf] [--num-draws 1000] [--max-epochs N] [--batch-size 256] \
        [--learning-rate 5e-4] [--validation-fraction 0.1] [--patience 20] [--seed 0] [--threads N]

BANK.npz: `theta` (n, d) and `x` (n, k) floats (the simulations, theta drawn from the prior),
`low`, `high` (d,) the bounds of the uniform box prior (NaN/inf = unbounded on that side),
`x_obs` (m, k) (or (k,)) the observations.

What it does, with sbi's own single-round API: `NPE(prior=BoxUniform(low, high),
density_estimator="maf"|"nsf")` (sbi's default network: 5 transforms, 50 hidden units, 10 bins
for nsf; theta and x z-scored per dimension, sbi's default "independent"),
`append_simulations(theta, x)` (sbi drops rows with non-finite x), `train(training_batch_size,
learning_rate, validation_fraction, stop_after_epochs=--patience, max_num_epochs=--max-epochs)`
(Adam, gradient norm clipped at 5, early stopping on the validation loss, best weights kept),
`build_posterior()` (direct sampling, samples outside the prior box rejected), then
`posterior.sample((num_draws,), x=x_obs[i])` for each observation, each call timed.

Unbounded prior sides: BoxUniform needs finite bounds, so a non-finite `low[j]` becomes
`min(theta[:, j]) - 5 std(theta[:, j])` and a non-finite `high[j]` becomes
`max(theta[:, j]) + 5 std(theta[:, j])` (a wide box around the bank; in single-round NPE the
prior only serves to reject posterior samples outside its support). The bounds used are in the
JSON (`prior_low`, `prior_high`).

Output: OUT.npz with `samples` (m, num_draws, d) float32, `sample_s` (m,) seconds per
observation, `x_obs` (m, k), `prior_low`, `prior_high` (d,), `training_loss`, `validation_loss`
(epochs,) (sbi's per-epoch mean negative log-probability, nats), `epoch_s` (epochs,) seconds;
and one JSON line on stdout: peer, version, torch, density_estimator, n_train, train_s, epochs,
best_val_log_prob, sample_s_per_obs, threads, cpus, python (+ extras, see README.md, S1).
Everything else (sbi's warnings) goes to stderr.
"""

import _w1  # noqa: I001  (first: keeps stdout for the one JSON line)

import argparse
import os
import time
from importlib.metadata import version as dist_version

import numpy as np
import torch

from sbi.inference import NPE
from sbi.utils import BoxUniform

WIDE_BOX_STDS = 5.0  # a non-finite bound becomes min/max of theta -/+ this many stds


class NullTracker:
    """An sbi `Tracker` that records nothing (sbi's default writes TensorBoard logs to cwd)."""

    @property
    def log_dir(self):
        """No log directory: `None`."""
        return None

    def log_metric(self, name, value, step=None):
        """Ignore one metric."""

    def log_metrics(self, metrics, step=None):
        """Ignore a dict of metrics."""

    def log_params(self, params):
        """Ignore parameters."""

    def add_figure(self, name, figure, step=None):
        """Ignore a figure."""

    def flush(self):
        """Nothing to flush."""


def parse_args(argv=None) -> argparse.Namespace:
    """The command line of S1 (see the module docstring).

    **Arguments:**

    - `argv`: the arguments (list of str); `None` reads `sys.argv`.

    **Returns:**

    The parsed namespace; `threads` defaults to `os.cpu_count()`.
    """
    p = argparse.ArgumentParser(description="S1: neural posterior estimation in sbi")
    p.add_argument("--bank", required=True, help=".npz with theta, x, low, high, x_obs")
    p.add_argument("--out", required=True, help="output .npz (samples (m, num_draws, d), ...)")
    p.add_argument("--density-estimator", choices=("maf", "nsf"), default="maf")
    p.add_argument("--num-draws", type=int, default=1000, help="posterior draws per x_obs row")
    p.add_argument(
        "--max-epochs", type=int, default=None, help="cap on training epochs (default: sbi's, none)"
    )
    p.add_argument("--batch-size", type=int, default=256, help="training batch size")
    p.add_argument("--learning-rate", type=float, default=5e-4, help="Adam learning rate")
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument(
        "--patience", type=int, default=20, help="stop after this many epochs without improvement"
    )
    p.add_argument("--seed", type=int, default=0, help="torch/numpy seed (split, init, sampling)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: cpu count)")
    args = p.parse_args(argv)
    if args.threads is None:
        args.threads = os.cpu_count() or 1
    for name in ("num_draws", "batch_size", "patience", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(
                f"--{name.replace('_', '-')}: expected >= 1, got {getattr(args, name)}"
            )
    if args.max_epochs is not None and args.max_epochs < 1:
        raise ValueError(f"--max-epochs: expected >= 1, got {args.max_epochs}")
    if not 0.0 < args.validation_fraction < 1.0:
        raise ValueError(
            f"--validation-fraction: expected a number in (0, 1), got {args.validation_fraction}"
        )
    if not args.learning_rate > 0.0:
        raise ValueError(f"--learning-rate: expected > 0, got {args.learning_rate}")
    return args


def load_bank(path: str) -> dict:
    """Load and check a simulation bank.

    **Arguments:**

    - `path`: `.npz` with `theta` (n, d), `x` (n, k), `low` (d,), `high` (d,), `x_obs` (m, k)
        or (k,).

    **Returns:**

    A dict with the same keys as float64 arrays, `x_obs` as (m, k).

    **Raises:**

    `ValueError` naming the key whose shape or values are wrong.
    """
    with np.load(path) as f:
        missing = [key for key in ("theta", "x", "low", "high", "x_obs") if key not in f.files]
        if missing:
            raise ValueError(f"bank {path}: missing key(s) {missing}; has {f.files}")
        bank = {key: np.asarray(f[key], dtype=np.float64) for key in f.files}
    theta, x = bank["theta"], bank["x"]
    if theta.ndim != 2 or theta.shape[0] < 2:
        raise ValueError(f"bank theta: expected shape (n, d) with n >= 2, got {theta.shape}")
    if x.ndim != 2 or x.shape[0] != theta.shape[0]:
        raise ValueError(f"bank x: expected shape (n={theta.shape[0]}, k), got {x.shape}")
    n, d = theta.shape
    k = x.shape[1]
    if not np.isfinite(theta).all():
        raise ValueError("bank theta: expected finite values (sbi drops only non-finite x rows)")
    for key in ("low", "high"):
        if bank[key].shape != (d,):
            raise ValueError(f"bank {key}: expected shape (d,) = ({d},), got {bank[key].shape}")
    x_obs = bank["x_obs"]
    if x_obs.ndim == 1:
        x_obs = x_obs[None, :]
    if x_obs.ndim != 2 or x_obs.shape[1] != k or x_obs.shape[0] < 1:
        raise ValueError(f"bank x_obs: expected shape (m, k={k}) with m >= 1, got {x_obs.shape}")
    if not np.isfinite(x_obs).all():
        raise ValueError("bank x_obs: expected finite values")
    bank["x_obs"] = x_obs
    low, high = bank["low"], bank["high"]
    both = np.isfinite(low) & np.isfinite(high)
    if np.any(low[both] >= high[both]):
        raise ValueError(f"bank low/high: expected low < high, got low={low}, high={high}")
    tol = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(low), low, 0.0)))
    below = np.isfinite(low) & (theta.min(axis=0) < low - tol)
    tol = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(high), high, 0.0)))
    above = np.isfinite(high) & (theta.max(axis=0) > high + tol)
    if below.any() or above.any():
        raise ValueError(
            "bank theta: expected every row inside the prior box [low, high]; dimensions "
            f"{np.flatnonzero(below | above).tolist()} have values outside"
        )
    return bank


def prior_bounds(theta: np.ndarray, low: np.ndarray, high: np.ndarray):
    """Finite box bounds: non-finite sides replaced by theta's min/max -/+ WIDE_BOX_STDS stds.

    **Arguments:**

    - `theta`: the bank's parameters, (n, d).
    - `low`, `high`: the bank's bounds, (d,); NaN or inf means unbounded on that side.

    **Returns:**

    `(low, high, widened)`: float64 arrays (d,), (d,) and a bool array (d,) telling which
    dimensions had a side replaced.
    """
    std = theta.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    new_low = np.where(np.isfinite(low), low, theta.min(axis=0) - WIDE_BOX_STDS * std)
    new_high = np.where(np.isfinite(high), high, theta.max(axis=0) + WIDE_BOX_STDS * std)
    widened = ~(np.isfinite(low) & np.isfinite(high))
    return new_low, new_high, widened


def main(argv=None) -> None:
    """Train sbi's NPE on the bank, sample every observation, write OUT.npz and one JSON line.

    **Arguments:**

    - `argv`: the command line (list of str); `None` reads `sys.argv`.
    """
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    bank = load_bank(args.bank)
    theta_np, x_np, x_obs_np = bank["theta"], bank["x"], bank["x_obs"]
    n, d = theta_np.shape
    low, high, widened = prior_bounds(theta_np, bank["low"], bank["high"])

    dtype = torch.float32
    prior = BoxUniform(
        low=torch.as_tensor(low, dtype=dtype), high=torch.as_tensor(high, dtype=dtype)
    )
    theta = torch.as_tensor(theta_np, dtype=dtype)
    x = torch.as_tensor(x_np, dtype=dtype)
    n_invalid = int((~np.isfinite(x_np).all(axis=1)).sum())

    inference = NPE(
        prior=prior,
        density_estimator=args.density_estimator,
        device="cpu",
        tracker=NullTracker(),
        show_progress_bars=False,
    )
    train_kwargs = dict(
        training_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        validation_fraction=args.validation_fraction,
        stop_after_epochs=args.patience,
        show_train_summary=False,
    )
    if args.max_epochs is not None:
        # sbi runs epochs 0..max_num_epochs inclusive, i.e. max_num_epochs + 1 of them
        train_kwargs["max_num_epochs"] = args.max_epochs - 1

    t0 = time.perf_counter()
    inference.append_simulations(theta, x)
    t1 = time.perf_counter()
    density_estimator = inference.train(**train_kwargs)
    t2 = time.perf_counter()
    posterior = inference.build_posterior(density_estimator)
    t3 = time.perf_counter()
    summary = inference.summary
    validation_loss = np.asarray(summary["validation_loss"], dtype=np.float64)
    training_loss = np.asarray(summary["training_loss"], dtype=np.float64)
    best_val_loss = float(summary["best_validation_loss"][-1])
    epoch_s = np.asarray(summary["epoch_durations_sec"], dtype=np.float64)

    m = x_obs_np.shape[0]
    samples = np.empty((m, args.num_draws, d), dtype=np.float32)
    sample_s = np.empty(m)
    for i in range(m):
        x_o = torch.as_tensor(x_obs_np[i], dtype=dtype)
        ts = time.perf_counter()
        draws = posterior.sample((args.num_draws,), x=x_o, show_progress_bars=False)
        sample_s[i] = time.perf_counter() - ts
        samples[i] = draws.detach().cpu().numpy()

    finite = bool(np.isfinite(samples).all())
    np.savez(
        args.out,
        samples=samples,
        sample_s=sample_s,
        x_obs=x_obs_np,
        prior_low=low,
        prior_high=high,
        training_loss=training_loss,
        validation_loss=validation_loss,
        epoch_s=epoch_s,
    )
    record = {
        "peer": "sbi",
        "version": dist_version("sbi"),
        "torch": torch.__version__,
        "density_estimator": args.density_estimator,
        "n_train": n - n_invalid,
        "train_s": round(t2 - t1, 4),
        "epochs": int(len(validation_loss)),
        "best_val_log_prob": -best_val_loss,
        "sample_s_per_obs": round(float(sample_s.mean()), 6),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        # extras
        "n_bank": n,
        "n_invalid_x": n_invalid,
        "n_validation": int(round(args.validation_fraction * (n - n_invalid))),
        "d": d,
        "k": int(x_np.shape[1]),
        "n_obs": m,
        "num_draws": args.num_draws,
        "epoch_s_median": round(float(np.median(epoch_s)), 4) if epoch_s.size else None,
        "train_outside_epochs_s": round(t2 - t1 - float(epoch_s.sum()), 4),
        "append_s": round(t1 - t0, 4),
        "build_posterior_s": round(t3 - t2, 4),
        "sample_s_first": round(float(sample_s[0]), 6),
        "sample_s_median": round(float(np.median(sample_s)), 6),
        "max_epochs": args.max_epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "validation_fraction": args.validation_fraction,
        "patience": args.patience,
        "seed": args.seed,
        "prior": "BoxUniform" + (" (non-finite bounds widened)" if widened.any() else ""),
        "prior_low": low.tolist(),
        "prior_high": high.tolist(),
        "prior_widened": widened.tolist(),
        "z_score": "independent (sbi default, theta and x)",
        "samples_finite": finite,
        "out": args.out,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    _w1.emit(record, ok=finite)


if __name__ == "__main__":
    main()
