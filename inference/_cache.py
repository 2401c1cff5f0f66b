"""`inference`'s compiled-function cache is `brainmass.cache` (one cache for both packages)."""

from brainmass.cache import clear, compiled, names

__all__ = ["clear", "compiled", "names"]
