"""Monitors: what a simulation records (raw samples, temporal averages, BOLD, EEG, MEG)."""

from ._base import AbstractMonitor as AbstractMonitor
from ._base import Raw as Raw
from ._base import TemporalAverage as TemporalAverage
from .bold import BOLD as BOLD
from .bold import BalloonState as BalloonState
from .meeg import EEG as EEG
from .meeg import MEG as MEG
from .meeg import AbstractSensorMonitor as AbstractSensorMonitor

__all__ = [
    "AbstractMonitor",
    "AbstractSensorMonitor",
    "BOLD",
    "BalloonState",
    "EEG",
    "MEG",
    "Raw",
    "TemporalAverage",
]
