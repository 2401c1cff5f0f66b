"""The file formats and the synthetic generator behind `brainmass.connectome.Connectome`.

- `_io`: `read_arrays` / `write_npz`, TVB connectivity `.zip` and brainmass `.npz`
  files (`Connectome.load`, `Connectome.save`).
- `_synthetic`: `synthetic_arrays`, the arrays of `Connectome.synthetic`.

Both return or take plain arrays; the checks on their contents live in
`Connectome.from_arrays`.
"""

from ._io import read_arrays as read_arrays
from ._io import write_npz as write_npz
from ._synthetic import synthetic_arrays as synthetic_arrays

__all__ = ["read_arrays", "synthetic_arrays", "write_npz"]
