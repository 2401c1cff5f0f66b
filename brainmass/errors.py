"""Exceptions raised by brainmass."""

__all__ = ["SimulationError"]


class SimulationError(RuntimeError):
    """A simulation produced non-finite values (it blew up).

    The message names the first output time at which a non-finite value was
    seen and the channels (regions or sensors) where it appeared. Inside a
    jitted fit no exception is raised: check `Result.ok` (or the signal) instead.
    """
