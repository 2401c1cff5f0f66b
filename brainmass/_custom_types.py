"""Shape-annotated array aliases used across brainmass (jaxtyping)."""

from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

__all__ = [
    "Array",
    "Bool",
    "Centres",
    "Coupling",
    "Features",
    "Float",
    "Int",
    "PRNGKeyArray",
    "RegionParam",
    "Signal",
    "State",
    "TractLengths",
    "Weights",
]

Weights = Float[Array, "n_regions n_regions"]
TractLengths = Float[Array, "n_regions n_regions"]
Centres = Float[Array, "n_regions 3"]
State = Float[Array, "n_vars n_regions"]
Coupling = Float[Array, "n_coupled n_regions"]
Features = Float[Array, "n_features n_regions"]
RegionParam = Float[Array, ""] | Float[Array, " n_regions"]
Signal = Float[Array, "n_times n_channels"]
