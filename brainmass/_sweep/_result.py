"""The outcome of a parameter sweep: `SweepResult` and its xarray Dataset.

`sweep` (in `_run.py`) collects per-point results as flat arrays; `_dataset`
reshapes them over the grid into an `xarray.Dataset` (dims: the swept paths,
then any per-point dimensions named by `_extra_dims`), which `SweepResult`
wraps with `best`, `plot` and `to_netcdf`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..storage import atomic_path
from ..units import format_unit

__all__ = ["SweepResult"]


@dataclasses.dataclass(frozen=True, eq=False)
class SweepResult:
    """The outcome of `sweep`.

    **Attributes:**

    - `data`: an `xarray.Dataset`. Dimensions: the swept paths in grid order
      (coordinates: the grid values in the parameter's canonical unit, in
      `attrs["units"]`), then any per-point dimensions of a statistic.
      Variables: `"objective"` (when an objective was given), each statistic,
      and `"failed"` (bool: the simulation produced non-finite values; its
      objective and statistics are NaN).
    - `n_failed`: number of failed grid points.
    - `wall_time`: seconds the `sweep` call took (compilation included).
    - `simulations_per_second`: points simulated in this call per second of
      running chunks (compilation excluded; NaN when every chunk was resumed).
    - `chunk_size`: grid points per vmapped chunk; `n_chunks` chunks in all, of
      which `n_resumed` were read from the checkpoint.
    - `memory_per_point`: estimated bytes per point (when the chunk size was
      chosen from the memory limit), `chunk_memory`: the compiled memory of one
      chunk in bytes (None when nothing was compiled).
    """

    data: Any
    n_failed: int
    wall_time: float
    simulations_per_second: float
    chunk_size: int
    n_chunks: int
    n_resumed: int
    memory_per_point: float | None
    chunk_memory: int | None

    @property
    def paths(self) -> tuple[str, ...]:
        """The swept parameter paths, in grid order."""
        return tuple(self.data.attrs["paths"].split(","))

    def best(self, minimize: bool = True, var: str = "objective") -> dict[str, float]:
        """The grid point with the smallest (or largest) value of `var`, failed points skipped.

        **Arguments:**

        - `minimize`: True for the smallest value, False for the largest.
        - `var`: a variable with one value per point (default `"objective"`).

        **Returns:** `{path: value}` in the parameters' canonical units (ready
        for `Simulator.with_params`).
        """
        if var not in self.data:
            raise ValueError(
                f"var: this sweep has no variable {var!r}; expected one of "
                f"{list(self.data.data_vars)} (pass objective= to sweep for 'objective')."
            )
        array = self.data[var]
        if array.dims != self.paths:
            raise ValueError(
                f"var: {var!r} has dimensions {array.dims}, expected one value per grid "
                f"point {self.paths}; reduce it first, e.g. with an objective."
            )
        values = np.asarray(array.values, dtype=float)
        if not np.any(np.isfinite(values)):
            raise ValueError(f"var: {var!r} has no finite value (every point failed or is NaN).")
        flat = np.where(np.isfinite(values), values if minimize else -values, np.inf)
        index = np.unravel_index(int(np.argmin(flat)), values.shape)
        return {p: float(self.data[p].values[i]) for p, i in zip(self.paths, index, strict=True)}

    def plot(self, var: Any = "objective", ax: Any = None) -> Any:
        """Draw `var` over the grid: a line for one swept path, a heatmap for two.

        **Arguments:**

        - `var`: a variable name, or an `xarray.DataArray` of it (e.g. a slice
          `res.data["objective"].sel({"model.a": -0.02})`) with one or two
          swept dimensions.
        - `ax`: a matplotlib Axes; default a new figure (pyplot).

        **Returns:** the matplotlib Axes. Failed points (NaN) are left blank.
        """
        array = self.data[var] if isinstance(var, str) else var
        name = array.name or "value"
        if array.ndim not in (1, 2) or any(d not in self.paths for d in array.dims):
            raise ValueError(
                f"var: expected one or two swept dimensions {self.paths}, got dims "
                f"{array.dims}; select a slice first, e.g. "
                f"res.plot(res.data[{name!r}].isel({{{array.dims[-1]!r}: 0}}))."
            )
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots()

        def label(dim: str) -> str:
            unit = self.data[dim].attrs.get("units", "")
            return f"{dim} [{unit}]" if unit else dim

        if array.ndim == 1:
            dim = array.dims[0]
            ax.plot(np.asarray(array[dim].values), np.asarray(array.values), marker="o")
            ax.set_xlabel(label(dim))
            ax.set_ylabel(name)
        else:
            xdim, ydim = array.dims
            mesh = ax.pcolormesh(
                np.asarray(array[xdim].values),
                np.asarray(array[ydim].values),
                np.asarray(array.values, dtype=float).T,
                shading="nearest",
            )
            ax.figure.colorbar(mesh, ax=ax, label=name)
            ax.set_xlabel(label(xdim))
            ax.set_ylabel(label(ydim))
        return ax

    def to_netcdf(self, path: str | os.PathLike) -> Path:
        """Write `data` to a netCDF file (h5netcdf engine); returns the path.

        The write is atomic (`brainmass.storage.atomic_path`): an interrupted write
        leaves the previous file. Read it back with `xarray.open_dataset(path)`.
        """
        with atomic_path(path) as tmp:
            self.data.to_netcdf(tmp, engine="h5netcdf")
        return Path(path)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{p}: {n}" for p, n in self.data.sizes.items() if p in self.paths)
        return (
            f"SweepResult({sizes}; variables {list(self.data.data_vars)}; "
            f"{self.n_failed} failed; {self.wall_time:.3g} s)"
        )


def _dataset(sim, values, arrays, shape, labels, n_samples):
    """The results as an xarray Dataset over the grid."""
    import xarray as xr

    specs = sim._specs()
    coords: dict[str, Any] = {
        p: xr.Variable((p,), v, attrs={"units": format_unit(specs[p].unit)})
        for p, v in values.items()
    }
    regions = labels == tuple(sim.network.connectome.labels)
    chan = "region" if regions else "channel"
    time_ms = np.asarray(sim.time)[sim.transient_samples :]
    data_vars = {}
    for name, array in arrays.items():
        extra = array.shape[1:]
        dims = _extra_dims(name, extra, n_samples, chan, len(labels))
        for d in dims:
            if d.startswith(chan):
                coords.setdefault(d, np.asarray(labels))
            elif d == "time" and len(time_ms) == n_samples:
                coords.setdefault("time", xr.Variable(("time",), time_ms, attrs={"units": "ms"}))
        data_vars[name] = (tuple(values) + tuple(dims), array.reshape(shape + extra))
    return xr.Dataset(data_vars, coords=coords)


def _extra_dims(name: str, shape: tuple, n_samples: int, chan: str, n_channels: int) -> list:
    if shape == (n_samples, n_channels):
        return ["time", chan]
    n_chan_axes = sum(s == n_channels for s in shape)
    suffixes = iter("ijklmn")
    dims = []
    for k, size in enumerate(shape):
        if size == n_channels and n_chan_axes == 1:
            dims.append(chan)
        elif size == n_channels:
            dims.append(f"{chan}_{next(suffixes, str(k))}")
        else:
            dims.append(f"{name}_dim_{k}")
    return dims
