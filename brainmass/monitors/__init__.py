"""Monitors: what a simulation records (raw samples, temporal averages; BOLD, EEG, MEG next)."""

from ._base import AbstractMonitor as AbstractMonitor
from ._base import Raw as Raw
from ._base import TemporalAverage as TemporalAverage

__all__ = ["AbstractMonitor", "Raw", "TemporalAverage"]
