"""Posterior draws with their sampler statistics, observed data and predictions; to ArviZ.

`Posterior` is what `nuts` and `laplace` return. `to_arviz()` gives an ArviZ
1.x `xarray.DataTree` with groups `posterior`, `sample_stats`,
`observed_data`, `posterior_predictive` and `log_likelihood`, named dimensions
(`chain`, `draw`, `region`, `time`, `channel`, `pair`, `frequency`) and the
region and sensor labels as coordinates, ready for the stock ArviZ functions
(`az.summary`, `az.plot_trace_dist`, `az.plot_pair`, `az.loo`, ...).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from brainmass import storage

__all__ = ["Posterior"]

_STATS_DOC = {
    "diverging": "True where the trajectory diverged (energy error too large, or the simulation "
    "failed)",
    "n_steps": "leapfrog steps taken in the draw",
    "tree_depth": "NUTS tree depth, ceil(log2(n_steps + 1))",
    "step_size": "the adapted leapfrog step size",
    "acceptance_rate": "mean Metropolis acceptance probability over the trajectory",
    "lp": "log posterior density (unnormalised) at the draw",
    "energy": "the Hamiltonian (potential plus kinetic energy) at the draw, for E-BFMI",
}


@dataclass
class Posterior:
    """Posterior draws of a `BayesianModel`.

    **Attributes:**

    - `samples`: `{site: (n_chains, n_draws, *shape)}` in the parameters'
      canonical units (`units`); latent sites, and the deterministic members of
      hierarchical priors.
    - `sample_stats`: `{name: (n_chains, n_draws)}`: `diverging`, `n_steps`,
      `tree_depth`, `step_size`, `acceptance_rate`, `lp` (NUTS; Laplace has
      `lp` only).
    - `units`: `{path: unit name}` of the simulator parameters.
    - `method`: `"nuts (numpyro)"`, `"nuts (blackjax)"`, `"laplace"` or `"map"`
      (`MAPResult.to_posterior`: the mode as one draw).
    - `observed`: the prepared data the likelihood compared (or None).
    - `log_likelihood`: `(n_chains, n_draws, *obs_shape)` pointwise
      log-likelihood at each draw (or None).
    - `posterior_predictive`: `(n_chains, n_draws, *obs_shape)` data drawn from
      the likelihood at each draw (or None).
    - `prior`: `{site: (1, n_prior, *shape)}` draws from the priors (or None), for
      `az.plot_prior_posterior` and prior-sensitivity checks.
    - `prior_predictive`: `(1, n_prior, *obs_shape)` data drawn from the model at the
      prior draws (or None; NaN where a simulation failed).
    - `dims`, `coords`: ArviZ dimension names per site and coordinates.
    - `info`: run facts: `wall_time` (s), `num_warmup`, `num_samples`,
      `num_chains`, `n_divergent`, `n_divergent_warmup` (NumPyro backend:
      rejected warmup trajectories, failed simulations among them),
      `interrupted`, `resumed`, ...
    """

    samples: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    units: dict[str, str]
    method: str
    observed: Any = None
    log_likelihood: np.ndarray | None = None
    posterior_predictive: np.ndarray | None = None
    prior: dict[str, np.ndarray] | None = None
    prior_predictive: np.ndarray | None = None
    dims: dict[str, list[str]] = field(default_factory=dict)
    coords: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_chains(self) -> int:
        """Number of chains."""
        return int(next(iter(self.samples.values())).shape[0])

    @property
    def n_draws(self) -> int:
        """Draws per chain."""
        return int(next(iter(self.samples.values())).shape[1])

    @property
    def n_divergent(self) -> int:
        """Divergent transitions after warmup (failed simulations count here)."""
        d = self.sample_stats.get("diverging")
        return 0 if d is None else int(np.sum(d))

    def mean(self) -> dict[str, np.ndarray]:
        """Posterior means `{site: value}` over chains and draws."""
        return {k: v.mean(axis=(0, 1)) for k, v in self.samples.items()}

    def std(self) -> dict[str, np.ndarray]:
        """Posterior standard deviations `{site: value}` over chains and draws."""
        return {k: v.std(axis=(0, 1)) for k, v in self.samples.items()}

    def interval(self, prob: float = 0.9) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Equal-tailed credible intervals `{site: (lower, upper)}` of probability `prob`."""
        if not 0 < prob < 1:
            raise ValueError(f"prob: expected a probability in (0, 1), got {prob!r}.")
        q = [(1 - prob) / 2, (1 + prob) / 2]
        out = {}
        for k, v in self.samples.items():
            lo, hi = np.quantile(v.reshape(-1, *v.shape[2:]), q, axis=0)
            out[k] = (lo, hi)
        return out

    def select_chains(self, chains: Any) -> Posterior:
        """The same posterior restricted to some chains (indices into the chain axis).

        Samples, sampler statistics, the pointwise log-likelihood and the predictive
        draws keep the chosen chains, in the order given; the prior groups, the data
        and `info` are kept (`info["chains"]` lists the chains chosen). Used to check
        the chains of one mode on their own (`nuts(..., modes="all")`).
        """
        idx = np.asarray(chains)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"chains: expected a non-empty list of chain indices, got {chains!r}.")
        if idx.min() < -self.n_chains or idx.max() >= self.n_chains:
            raise ValueError(
                f"chains: indices must lie in [0, {self.n_chains}) (this posterior has "
                f"{self.n_chains} chains), got {idx.tolist()}."
            )

        def pick(x):
            return None if x is None else np.asarray(x)[idx]

        return dataclasses.replace(
            self,
            samples={k: np.asarray(v)[idx] for k, v in self.samples.items()},
            sample_stats={k: np.asarray(v)[idx] for k, v in self.sample_stats.items()},
            log_likelihood=pick(self.log_likelihood),
            posterior_predictive=pick(self.posterior_predictive),
            info=dict(self.info, chains=(idx % self.n_chains).tolist()),
        )

    # ------------------------------------------------------------------ ArviZ
    def to_arviz(self) -> Any:
        """An ArviZ `xarray.DataTree` with every group this posterior has."""
        import arviz as az

        groups: dict[str, dict[str, Any]] = {"posterior": dict(self.samples)}
        if self.sample_stats:
            groups["sample_stats"] = dict(self.sample_stats)
        if self.observed is not None:
            groups["observed_data"] = {"obs": np.asarray(self.observed)}
        if self.log_likelihood is not None:
            groups["log_likelihood"] = {"obs": np.asarray(self.log_likelihood)}
        if self.posterior_predictive is not None:
            groups["posterior_predictive"] = {"obs": np.asarray(self.posterior_predictive)}
        if self.prior is not None:
            groups["prior"] = dict(self.prior)
        if self.prior_predictive is not None:
            groups["prior_predictive"] = {"obs": np.asarray(self.prior_predictive)}
        dims = {k: v for k, v in self.dims.items() if k in self.samples or k == "obs"}
        attrs = {
            "posterior": {"units": repr(self.units), "method": self.method},
            "/": {k: _attr(v) for k, v in self.info.items()},
        }
        if self.sample_stats:
            attrs["sample_stats"] = {k: v for k, v in _STATS_DOC.items() if k in self.sample_stats}
        tree = az.from_dict(groups, dims=dims, coords=dict(self.coords), attrs=attrs)
        for path, unit in self.units.items():
            for name in ("posterior",):
                if path in tree[name].data_vars:
                    tree[name][path].attrs["units"] = unit
        return tree

    def plot_vs_truth(self, truth: dict[str, Any], **kwargs: Any) -> Any:
        """Marginal posteriors with the true values drawn on them (simulation studies).

        `truth` maps sites to their true values (scalars, or one per region);
        the plot is ArviZ's `plot_dist` of those sites plus `add_lines` at the
        truth. `kwargs` go to `arviz.plot_dist` (e.g. `backend="matplotlib"`).
        Returns ArviZ's `PlotCollection`.
        """
        import arviz as az

        missing = [k for k in truth if k not in self.samples]
        if missing:
            raise ValueError(
                f"truth: no posterior samples of {missing}; sites: {list(self.samples)}."
            )
        tree = self.to_arviz()
        pc = az.plot_dist(tree, var_names=list(truth), **kwargs)
        az.add_lines(pc, {k: np.asarray(v) for k, v in truth.items()})
        return pc

    def summary(self, **kwargs: Any) -> Any:
        """`arviz.summary` of the posterior (mean, sd, eti89, ESS, R-hat, MCSE) as a DataFrame."""
        import arviz as az

        return az.summary(self.to_arviz(), **kwargs)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> Path:
        """Write the ArviZ DataTree to netCDF (`.nc`) or zarr (`.zarr`); returns the path.

        The write is atomic (`brainmass.storage.atomic_path`): the tree is written to a
        unique temporary file (or folder, for zarr) beside `path`, then renamed over
        it, so an interrupted save leaves the previous posterior. Another suffix is
        replaced by `.nc`.
        """
        path = Path(path)
        if path.suffix not in (".nc", ".zarr"):
            path = path.with_suffix(".nc")
        tree = self.to_arviz()
        if path.suffix == ".nc":
            with storage.atomic_path(path) as tmp:
                tree.to_netcdf(tmp)
            return path
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        try:
            tree.to_zarr(tmp, mode="w")
            if path.exists():  # a folder cannot be renamed over another: move it aside first
                old = tmp.with_suffix(".old")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Posterior:
        """Read a posterior written by `save` (or any ArviZ DataTree with a posterior group).

        **Raises:** `FileNotFoundError`; `brainmass.storage.StorageError` (a
        `ValueError`) naming the file when it cannot be read as a posterior.
        """
        import xarray as xr

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"path: no posterior at {path}.")
        engine = "zarr" if path.suffix == ".zarr" else None
        try:
            tree = xr.open_datatree(path, engine=engine) if engine else xr.open_datatree(path)
            tree = tree.load()
        except Exception as err:  # the netCDF/zarr stack raises many types
            raise storage.StorageError(
                f"path: {path} cannot be read as a posterior ({type(err).__name__}: {err})."
            ) from err
        if "posterior" not in tree.children:
            raise storage.StorageError(f"path: {path} has no posterior group.")
        return cls.from_arviz(tree)

    @classmethod
    def from_arviz(cls, tree: Any) -> Posterior:
        """A Posterior from an ArviZ DataTree (the groups this class knows)."""
        import ast

        post = tree["posterior"].to_dataset()
        samples = {k: np.asarray(v.values) for k, v in post.data_vars.items()}
        prior = None
        if "prior" in tree.children:
            ds = tree["prior"].to_dataset()
            prior = {k: np.asarray(v.values) for k, v in ds.data_vars.items()}
        dims, coords = {}, {}
        for k, v in post.data_vars.items():
            extra = [d for d in v.dims if d not in ("chain", "draw")]
            if extra:
                dims[k] = extra
                for d in extra:
                    coords[d] = np.asarray(post[d].values)
        stats = {}
        if "sample_stats" in tree.children:
            ds = tree["sample_stats"].to_dataset()
            stats = {k: np.asarray(v.values) for k, v in ds.data_vars.items()}

        def group(name):
            if name not in tree.children:
                return None
            ds = tree[name].to_dataset()
            if "obs" not in ds:
                return None
            var = ds["obs"]
            extra = [d for d in var.dims if d not in ("chain", "draw")]
            if extra:
                dims["obs"] = extra
                for d in extra:
                    coords[d] = np.asarray(ds[d].values)
            return np.asarray(var.values)

        units = ast.literal_eval(tree["posterior"].attrs.get("units", "{}"))
        method = tree["posterior"].attrs.get("method", "unknown")
        info = dict(tree.attrs)
        return cls(
            samples=samples,
            sample_stats=stats,
            units=units,
            method=method,
            observed=group("observed_data"),
            log_likelihood=group("log_likelihood"),
            posterior_predictive=group("posterior_predictive"),
            prior=prior,
            prior_predictive=group("prior_predictive"),
            dims=dims,
            coords=coords,
            info=info,
        )

    def __repr__(self) -> str:
        means, stds = self.mean(), self.std()
        parts = []
        for k in self.samples:
            m, s = np.asarray(means[k]), np.asarray(stds[k])
            if m.ndim == 0:
                unit = self.units.get(k, "")
                parts.append(f"{k} = {float(m):.4g} +- {float(s):.2g}{' ' + unit if unit else ''}")
            else:
                parts.append(f"{k}: shape {m.shape}")
        return (
            f"Posterior({self.method}: {self.n_chains} chains x {self.n_draws} draws, "
            f"{self.n_divergent} divergent; " + "; ".join(parts) + ")"
        )


def _attr(value: Any) -> Any:
    """A netCDF-safe attribute value."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    return repr(jax.device_get(value))
