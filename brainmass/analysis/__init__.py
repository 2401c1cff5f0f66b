r"""Analysis of simulated (or recorded) signals: FC, FCD, spectra, phases, order parameters.

Every function here is pure `jax.numpy`: it works under `jax.jit`, `jax.vmap`
and `jax.grad` with respect to the signal. A signal is an array of shape
`(n_times, n_channels)`, sampled every `period` (ms, or a brainunit time
quantity) or equivalently at a rate `fs` (Hz, or a brainunit frequency
quantity); sampling settings, window lengths and frequency bands are concrete
numbers (not traced), converted once per call. Frequencies are in Hz. The
numerical core of each function is jit-compiled once per input shape and
setting, so eager calls are fast too.

    import brainmass as bm
    res = sim.run(key)
    fc = bm.analysis.fc(res.signal)                                  # (n, n)
    fcd = bm.analysis.fcd(res.signal, 60_000.0, 2_000.0, period=720.0)  # (n_windows, n_windows)
    freqs, p = bm.analysis.psd(res.signal, period=1.0, nperseg=1024)
    alpha = bm.analysis.band_power(freqs, p, "alpha")                # (n_channels,)
    R = bm.analysis.kuramoto_order(bm.analysis.phase(res.signal))    # (n_times,)
"""

from ._common import Scalar as Scalar
from ._common import _as_signal as _as_signal
from ._common import _safe_sqrt as _safe_sqrt
from ._common import _sampling_period as _sampling_period
from ._common import _to_float as _to_float
from ._distributions import ks_statistic as ks_statistic
from ._distributions import wasserstein_1 as wasserstein_1
from ._fc import fc as fc
from ._fc import fcd as fcd
from ._fc import fcd_values as fcd_values
from ._fc import windowed_fc as windowed_fc
from ._matrix import fisher_z as fisher_z
from ._matrix import from_upper_triangle as from_upper_triangle
from ._matrix import pearson as pearson
from ._matrix import upper_triangle as upper_triangle
from ._phase import analytic_signal as analytic_signal
from ._phase import kuramoto_order as kuramoto_order
from ._phase import metastability as metastability
from ._phase import phase as phase
from ._spectra import BANDS as BANDS
from ._spectra import band_power as band_power
from ._spectra import peak_frequency as peak_frequency
from ._spectra import psd as psd
from ._spectra import resolve_band as resolve_band

__all__ = [
    "BANDS",
    "analytic_signal",
    "band_power",
    "fc",
    "fcd",
    "fcd_values",
    "fisher_z",
    "from_upper_triangle",
    "kuramoto_order",
    "ks_statistic",
    "metastability",
    "peak_frequency",
    "pearson",
    "phase",
    "psd",
    "resolve_band",
    "upper_triangle",
    "wasserstein_1",
    "windowed_fc",
]
