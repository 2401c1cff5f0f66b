r"""How regions drive each other.

Every coupling in brainmass has the form

$$
c_i(t) = \mathrm{post}\Big(e_i(t),\ \sum_j W_{ij}\, f\big(e_j(t - \tau_{ij})\big)\Big)
$$

where $e$ are the model's efferent (coupled) variables, $f$ a feature map
applied at the sending region (`features`) and `post` (`combine`) a function of
the delayed weighted sum and of the receiving region's own current state. This
split is what lets delays be read once per block of steps from a ring buffer of
features, for any coupling: the network only ever forms weighted sums of
delayed features.

| coupling      | $f(e_j)$                  | $\mathrm{post}(e_i, s)$                          |
|---------------|---------------------------|--------------------------------------------------|
| `Linear`      | $e_j$                     | $G s$                                            |
| `Diffusive`   | $e_j$                     | $G (s - e_i \sum_j W_{ij})$                     |
| `Sigmoidal`   | $c_{max} / (1 + e^{r(v_0 - e_j)})$ | $G s$                                   |
| `Kuramoto`    | $(\sin e_j, \cos e_j)$    | $G(\cos e_i\, s_{\sin} - \sin e_i\, s_{\cos})$ |
| `Uncoupled`   | $e_j$                     | $0$ (no parameters: a single region)            |

so `Diffusive` is $G\sum_j W_{ij}(e_j(t-\tau_{ij}) - e_i(t))$ and `Kuramoto`
is $G\sum_j W_{ij}\sin(\theta_j(t-\tau_{ij}) - \theta_i(t))$.

`G` is a dimensionless gain (the coupling is added to the model's derivative,
so with weights normalised to 1 it is in the model's state units per time unit).
"""

from __future__ import annotations

import abc

import jax.numpy as jnp

from ._custom_types import Coupling, Features, Float
from ._params import ParameterModule, param

__all__ = ["AbstractCoupling", "Linear", "Diffusive", "Sigmoidal", "Kuramoto", "Uncoupled"]


class AbstractCoupling(ParameterModule):
    """A coupling function: `features` at the sender, `combine` at the receiver."""

    @abc.abstractmethod
    def n_features(self, n_coupled: int) -> int:
        """Number of feature rows for `n_coupled` coupled variables."""

    @abc.abstractmethod
    def features(self, efferent: Coupling) -> Features:
        """Feature map at the sending region: `(n_coupled, n)` -> `(n_features, n)`."""

    @abc.abstractmethod
    def combine(self, efferent: Coupling, summed: Features, strength: Float) -> Coupling:
        r"""Afferent input from the weighted sum of delayed features.

        **Arguments:**

        - `efferent`: the receiving regions' own coupled variables now, `(n_coupled, n)`.
        - `summed`: $\sum_j W_{ij} f(e_j(t-\tau_{ij}))$, shape `(n_features, n)`.
        - `strength`: row sums of the weights $\sum_j W_{ij}$, shape `(n,)`.

        **Returns:** the coupling input per coupled variable, `(n_coupled, n)`.
        """


class Linear(AbstractCoupling):
    r"""Linear coupling $c_i = G \sum_j W_{ij}\, e_j(t - \tau_{ij})$."""

    G: float = param(0.1, doc="global coupling gain")

    def n_features(self, n_coupled: int) -> int:
        """One feature per coupled variable."""
        return n_coupled

    def features(self, efferent: Coupling) -> Features:
        """Identity."""
        return efferent

    def combine(self, efferent: Coupling, summed: Features, strength: Float) -> Coupling:
        """$G s$."""
        return self.G * summed


class Diffusive(AbstractCoupling):
    r"""Difference coupling $c_i = G \sum_j W_{ij}\,(e_j(t - \tau_{ij}) - e_i(t))$."""

    G: float = param(0.1, doc="global coupling gain")

    def n_features(self, n_coupled: int) -> int:
        """One feature per coupled variable."""
        return n_coupled

    def features(self, efferent: Coupling) -> Features:
        """Identity."""
        return efferent

    def combine(self, efferent: Coupling, summed: Features, strength: Float) -> Coupling:
        r"""$G (s - e_i \sum_j W_{ij})$."""
        return self.G * (summed - strength[None, :] * efferent)


class Sigmoidal(AbstractCoupling):
    r"""Sigmoidal (Jansen-Rit style) coupling $c_i = G \sum_j W_{ij}\, S(e_j(t-\tau_{ij}))$.

    $S(v) = c_{min} + (c_{max} - c_{min}) / (1 + e^{r (v_0 - v)})$, the
    Jansen-Rit potential-to-rate sigmoid; defaults follow The Virtual Brain's
    `SigmoidalJansenRit` ($c_{max} = 0.005$/ms, i.e. $2 e_0$ with $e_0 = 2.5$/s,
    $v_0 = 6$ mV, $r = 0.56$/mV). Jansen & Rit (1995), Biol. Cybern. 73:357.
    """

    G: float = param(1.0, doc="global coupling gain")
    cmin: float = param(0.0, doc="sigmoid minimum (rate, 1/ms)")
    cmax: float = param(0.005, doc="sigmoid maximum (rate, 1/ms)")
    midpoint: float = param(6.0, doc="sigmoid midpoint v0 (mV)")
    r: float = param(0.56, domain="positive", doc="sigmoid steepness (1/mV)")

    def n_features(self, n_coupled: int) -> int:
        """One feature per coupled variable."""
        return n_coupled

    def features(self, efferent: Coupling) -> Features:
        """The sigmoid of the sending region's potential."""
        return self.cmin + (self.cmax - self.cmin) / (
            1.0 + jnp.exp(self.r * (self.midpoint - efferent))
        )

    def combine(self, efferent: Coupling, summed: Features, strength: Float) -> Coupling:
        """$G s$."""
        return self.G * summed


class Kuramoto(AbstractCoupling):
    r"""Phase coupling $c_i = G \sum_j W_{ij} \sin(\theta_j(t - \tau_{ij}) - \theta_i(t))$.

    For the classic all-to-all Kuramoto model $K/N \sum_j \sin(\theta_j - \theta_i)$
    use $W_{ij} = 1$ and $G = K/N$. Kuramoto (1984), Chemical Oscillations,
    Waves, and Turbulence; Breakspear, Heitmann & Daffertshofer (2010), Front.
    Hum. Neurosci. 4:190.
    """

    G: float = param(0.1, doc="global coupling gain")

    def n_features(self, n_coupled: int) -> int:
        """A sine and a cosine per coupled phase."""
        return 2 * n_coupled

    def features(self, efferent: Coupling) -> Features:
        r"""$(\sin\theta_j, \cos\theta_j)$ stacked along the first axis."""
        return jnp.concatenate([jnp.sin(efferent), jnp.cos(efferent)])

    def combine(self, efferent: Coupling, summed: Features, strength: Float) -> Coupling:
        r"""Combine: $\sin(\theta_j - \theta_i)$ from the summed sines and cosines.

        $\sin(\theta_j - \theta_i) = \sin\theta_j\cos\theta_i - \cos\theta_j\sin\theta_i$.
        """
        n = efferent.shape[0]
        s_sin, s_cos = summed[:n], summed[n:]
        return self.G * (jnp.cos(efferent) * s_sin - jnp.sin(efferent) * s_cos)


class Uncoupled(AbstractCoupling):
    r"""No coupling, $c_i = 0$, and no parameters: the coupling of a single region.

    `Network(model)` (no connectome) uses it, so a one-region simulator has only the
    model's parameters (and the noise's), not a coupling gain that does nothing.
    """

    def n_features(self, n_coupled: int) -> int:
        """One feature per coupled variable."""
        return n_coupled

    def features(self, efferent: Coupling) -> Features:
        """Identity."""
        return efferent

    def combine(self, efferent: Coupling, summed: Features, strength: Float) -> Coupling:
        """Zero."""
        return jnp.zeros_like(efferent)
