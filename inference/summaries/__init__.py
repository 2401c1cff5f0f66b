r"""Summary statistics and embedding networks for simulation-based inference.

A summary maps one simulation's monitor output, a signal of shape
`(n_samples, n_channels)` sampled every `period` ms, to a feature array. The
neural posterior estimator conditions its flow on these features (or on a
learned embedding of them).

Every summary is an immutable equinox module (`AbstractSummary`, see `_base`; the
concrete ones are final) and follows one protocol; nothing is computed at
construction:

- `bind(sim)` returns a new summary that knows the simulator's sampling period (ms)
  and signal shape, and checks that it can be computed (`bind_signal(period,
  shape)` does the same without a simulator). An unbound summary cannot be
  called.
- `summary(signal)` is pure JAX, of shape `summary.shape`: it works under
  `jax.jit` and `jax.vmap` (a batch is `jax.vmap(summary)(signals)`). A signal
  holding any NaN or infinity gives all-NaN features (no exception), so failed
  simulations can be dropped afterwards.
- `names` labels the `d` features of a flat summary (`shape == (d,)`).
- `fit(bank)` learns a data-dependent reduction from raw features `(n, d)`
  (e.g. PCA) and returns a new, fitted summary; `project(features)` applies it (the
  identity by default), giving `out_shape` (and `out_names`).

Built-ins: `FC`, `FCD`, `Spectral`, `Order`, `Moments`, `TimeSeries`, and
`combine(*summaries)` to concatenate flat ones. Learned embeddings (trained
with the flow): `MLPEmbedding` and `CNNEmbedding`, whose `build(key,
in_shape)` returns an Equinox module mapping `in_shape` to `(out_dim,)`.

    import inference.summaries as S
    summary = S.combine(S.FC(pca=10), S.Spectral(), S.Order(band="alpha")).bind(sim)
    bank = jax.vmap(summary)(signals)                 # (n, d)
    ok = jnp.all(jnp.isfinite(bank), axis=1)
    summary = summary.fit(bank[ok])
    x = summary.project(bank[ok])                      # (n_ok, summary.out_shape[0])
"""

from ._base import AbstractSummary as AbstractSummary
from ._base import Summary as Summary
from ._combined import Combined as Combined
from ._combined import combine as combine
from ._embeddings import CNNEmbedding as CNNEmbedding
from ._embeddings import CNNEmbeddingNet as CNNEmbeddingNet
from ._embeddings import MLPEmbedding as MLPEmbedding
from ._embeddings import MLPEmbeddingNet as MLPEmbeddingNet
from ._fc import FC as FC
from ._fc import FCD as FCD
from ._moments import Moments as Moments
from ._moments import TimeSeries as TimeSeries
from ._spectral import Order as Order
from ._spectral import Spectral as Spectral

__all__ = [
    "AbstractSummary",
    "Summary",
    "FC",
    "FCD",
    "Spectral",
    "Order",
    "Moments",
    "TimeSeries",
    "Combined",
    "combine",
    "MLPEmbedding",
    "CNNEmbedding",
    "MLPEmbeddingNet",
    "CNNEmbeddingNet",
]
