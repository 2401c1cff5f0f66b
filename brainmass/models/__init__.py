"""Neural mass models, one per file; `list_models()` lists them.

A model of your own subclasses `AbstractNeuralMass` and declares each of its
parameters with `param(default, unit=..., domain=..., doc=...)`, so that it
carries its unit and domain and appears in `Simulator.params()`, where sweeps,
the `Fitter` and inference find it by its dotted path (`"model.gain"`).
"""

from .._params import param as param
from ._base import AbstractNeuralMass as AbstractNeuralMass
from .coombes_byrne import CoombesByrne as CoombesByrne
from .fitzhugh_nagumo import FitzHughNagumo as FitzHughNagumo
from .hopf import Hopf as Hopf
from .horn import HORN as HORN
from .jansen_rit import JansenRit as JansenRit
from .kuramoto import Kuramoto as Kuramoto
from .linear import Linear as Linear
from .montbrio_pazo_roxin import MontbrioPazoRoxin as MontbrioPazoRoxin
from .reduced_wong_wang import ReducedWongWang as ReducedWongWang
from .wilson_cowan import WilsonCowan as WilsonCowan

_MODELS: dict[str, type[AbstractNeuralMass]] = {
    cls.__name__: cls
    for cls in (
        CoombesByrne,
        FitzHughNagumo,
        Hopf,
        HORN,
        JansenRit,
        Kuramoto,
        Linear,
        MontbrioPazoRoxin,
        ReducedWongWang,
        WilsonCowan,
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
        known = ", ".join(list_models())
        raise ValueError(f"model: unknown model {name!r}; expected one of {known}.") from None


__all__ = ["AbstractNeuralMass", "get_model", "list_models", "param", *sorted(_MODELS)]
