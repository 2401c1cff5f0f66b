r"""Lead fields: how region activity reaches EEG electrodes and MEG sensors.

A lead field `L` `(n_sensors, n_regions)` maps one current dipole per region
(at the region centre, with a fixed orientation) to the sensors, so that
sensors = `L @ activity`; `brainmass.monitors.EEG` and `MEG` apply it inside
the simulation. Three sources of lead fields:

- your own matrix (e.g. from a BEM computed elsewhere), passed to the monitor;
- analytic head models, pure JAX (jit/grad-able): `eeg_infinite_medium`,
  `eeg_sphere` (homogeneous sphere), `meg_sarvas` (any spherically symmetric
  conductor);
- MNE-Python's forward solver, `leadfield_mne` (sphere models or a BEM), with
  the optional extra `pip install 'brainmass[mne]'`.

**Frame and units.** Positions are in mm in one head frame: x towards the
right ear, y towards the nasion (anterior), z up (superior); the analytic
models place the head-sphere centre at `origin` (default the frame origin).
This is the frame of `Connectome.synthetic` (centres in mm around the origin)
and, up to the origin, MNE's head frame. Lead fields are SI per unit dipole
moment: V/(A m) for EEG (1 V/(A m) = 1e-3 uV/(nA m)), T/(A m) for MEG.

**Sensors.** `standard_1020` / `standard_1010` give electrode positions on a
spherical head by name without MNE; `mne_montage` reads MNE's template
montages; `meg_helmet` sketches a whole-head magnetometer array;
`centres_in_sphere` maps connectome centres into the head sphere.

```python
conn = bm.Connectome.synthetic(n_regions=68)
centres = bm.leadfield.centres_in_sphere(conn.centres, radius=90.0)
names, electrodes = bm.leadfield.standard_1020(radius=90.0)
L = bm.leadfield.eeg_sphere(centres, None, electrodes, radius=90.0)
monitor = bm.monitors.EEG(L, period=4.0, sensor_names=names)
```
"""

from ._analytic import eeg_infinite_medium as eeg_infinite_medium
from ._analytic import eeg_sphere as eeg_sphere
from ._analytic import meg_sarvas as meg_sarvas
from ._analytic import radial_orientations as radial_orientations
from ._mne import leadfield_mne as leadfield_mne
from ._mne import mne_montage as mne_montage
from ._positions import ALIASES as ALIASES
from ._positions import STANDARD_1010 as STANDARD_1010
from ._positions import STANDARD_1020 as STANDARD_1020
from ._positions import centres_in_sphere as centres_in_sphere
from ._positions import meg_helmet as meg_helmet
from ._positions import standard_1010 as standard_1010
from ._positions import standard_1020 as standard_1020

__all__ = [
    "ALIASES",
    "STANDARD_1010",
    "STANDARD_1020",
    "centres_in_sphere",
    "eeg_infinite_medium",
    "eeg_sphere",
    "leadfield_mne",
    "meg_helmet",
    "meg_sarvas",
    "mne_montage",
    "radial_orientations",
    "standard_1010",
    "standard_1020",
]
