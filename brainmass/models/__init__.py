"""Neural mass models, one per file; `list_models()` lists them."""

from ._base import AbstractNeuralMass as AbstractNeuralMass
from .hopf import Hopf as Hopf
from .linear import Linear as Linear

_MODELS: dict[str, type[AbstractNeuralMass]] = {
    cls.__name__: cls
    for cls in (
        Hopf,
        Linear,
    )
}


def list_models() -> list[str]:
    """Names of the built-in neural mass models."""
    return sorted(_MODELS)


def get_model(name: str) -> type[AbstractNeuralMass]:
    """The model class called `name` (see `list_models()`)."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(
            f"model: unknown model {name!r}; expected one of {list_models()}."
        ) from None


__all__ = ["AbstractNeuralMass", "get_model", "list_models", *sorted(_MODELS)]
