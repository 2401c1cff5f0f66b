"""Learned embeddings, trained with the flow: an MLP on flat features, a 1-D CNN over time.

A spec (`MLPEmbedding`, `CNNEmbedding`) holds the architecture; `build(key, in_shape)`
returns the network, an equinox module mapping one input of `in_shape` to `(out_dim,)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp

from brainmass.checks import check_int

__all__ = ["CNNEmbedding", "CNNEmbeddingNet", "MLPEmbedding", "MLPEmbeddingNet"]


@final
class MLPEmbeddingNet(eqx.Module):
    """An MLP on the flattened input: `(*in_shape) -> (out_dim,)` (built by `MLPEmbedding`)."""

    mlp: eqx.nn.MLP
    in_shape: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, x: Any) -> jax.Array:
        """Embed one input of shape `in_shape`; returns `(out_dim,)`."""
        x = jnp.asarray(x)
        if x.shape != self.in_shape:
            raise ValueError(f"x: the embedding expects shape {self.in_shape}, got {x.shape}.")
        return self.mlp(x.reshape(-1))


@final
class MLPEmbedding(eqx.Module):
    """A multilayer-perceptron embedding (flattens its input).

    **Arguments:**

    - `out_dim`: embedding size.
    - `width`: hidden layer width.
    - `depth`: number of hidden layers (`eqx.nn.MLP`'s `depth`).
    - `activation`: hidden activation (default `jax.nn.gelu`).
    """

    out_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        out_dim: int = 16,
        width: int = 64,
        depth: int = 2,
        activation: Callable = jax.nn.gelu,
    ):
        self.out_dim = check_int(out_dim, "MLPEmbedding out_dim", 1)
        self.width = check_int(width, "MLPEmbedding width", 1)
        self.depth = check_int(depth, "MLPEmbedding depth", 0)
        if not callable(activation):
            raise ValueError(f"MLPEmbedding activation: expected a callable, got {activation!r}.")
        self.activation = activation

    def build(self, key: jax.Array, in_shape: Sequence[int]) -> MLPEmbeddingNet:
        """Initialise the network.

        **Arguments:**

        - `key`: a `jax.random` key.
        - `in_shape`: the shape of one input (e.g. a summary's `out_shape`).

        **Returns:** an `MLPEmbeddingNet` mapping `in_shape` to `(out_dim,)`.
        """
        in_shape = tuple(check_int(s, "in_shape", 1) for s in in_shape)
        mlp = eqx.nn.MLP(
            math.prod(in_shape), self.out_dim, self.width, self.depth, self.activation, key=key
        )
        return MLPEmbeddingNet(mlp=mlp, in_shape=in_shape)

    def __repr__(self):
        return (
            f"MLPEmbedding(out_dim={self.out_dim}, width={self.width}, depth={self.depth}, "
            f"activation={getattr(self.activation, '__name__', self.activation)})"
        )


@final
class CNNEmbeddingNet(eqx.Module):
    """A 1-D CNN over time: `(n_times, n_channels) -> (out_dim,)` (built by `CNNEmbedding`)."""

    convs: tuple[eqx.nn.Conv1d, ...]
    linear: eqx.nn.Linear
    activation: Callable = eqx.field(static=True)
    in_shape: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, x: Any) -> jax.Array:
        """Embed one input `(n_times, n_channels)`; returns `(out_dim,)`."""
        x = jnp.asarray(x)
        if x.shape != self.in_shape:
            raise ValueError(f"x: the embedding expects shape {self.in_shape}, got {x.shape}.")
        h = x.T  # Conv1d takes (channels, length)
        for conv in self.convs:
            h = self.activation(conv(h))
        return self.linear(jnp.mean(h, axis=1))


@final
class CNNEmbedding(eqx.Module):
    """A 1-D convolutional embedding of a time series `(n_times, n_channels)`.

    Convolutions over time (channels as input features; padding
    `kernel_size // 2`, stride `stride`, activation after each), global
    average pooling over time, then a linear layer to `out_dim`.

    **Arguments:**

    - `out_dim`: embedding size.
    - `channels`: output channels of each convolution layer.
    - `kernel_size`: convolution kernel length, samples.
    - `stride`: convolution stride, samples.
    - `activation`: activation (default `jax.nn.gelu`).
    """

    out_dim: int = eqx.field(static=True)
    channels: tuple[int, ...] = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)
    stride: int = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        out_dim: int = 16,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 5,
        stride: int = 2,
        activation: Callable = jax.nn.gelu,
    ):
        self.out_dim = check_int(out_dim, "CNNEmbedding out_dim", 1)
        channels = tuple(channels)
        if not channels:
            raise ValueError("CNNEmbedding channels: expected at least one layer.")
        self.channels = tuple(check_int(c, "CNNEmbedding channels", 1) for c in channels)
        self.kernel_size = check_int(kernel_size, "CNNEmbedding kernel_size", 1)
        self.stride = check_int(stride, "CNNEmbedding stride", 1)
        if not callable(activation):
            raise ValueError(f"CNNEmbedding activation: expected a callable, got {activation!r}.")
        self.activation = activation

    def build(self, key: jax.Array, in_shape: Sequence[int]) -> CNNEmbeddingNet:
        """Initialise the network.

        **Arguments:**

        - `key`: a `jax.random` key.
        - `in_shape`: `(n_times, n_channels)` of one input (e.g. `TimeSeries.out_shape`).

        **Returns:** a `CNNEmbeddingNet` mapping `in_shape` to `(out_dim,)`.
        """
        in_shape = tuple(in_shape)
        if len(in_shape) != 2:
            raise ValueError(
                f"in_shape: CNNEmbedding expects inputs (n_times, n_channels), got {in_shape!r}."
            )
        n_times, n_channels = (check_int(s, "in_shape", 1) for s in in_shape)
        pad = self.kernel_size // 2  # every layer keeps >= 1 time sample
        keys = jax.random.split(key, len(self.channels) + 1)
        sizes = (n_channels, *self.channels)
        convs = tuple(
            eqx.nn.Conv1d(
                sizes[i], sizes[i + 1], self.kernel_size, self.stride, padding=pad, key=keys[i]
            )
            for i in range(len(self.channels))
        )
        linear = eqx.nn.Linear(self.channels[-1], self.out_dim, key=keys[-1])
        return CNNEmbeddingNet(
            convs=convs, linear=linear, activation=self.activation, in_shape=(n_times, n_channels)
        )

    def __repr__(self):
        return (
            f"CNNEmbedding(out_dim={self.out_dim}, channels={self.channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, "
            f"activation={getattr(self.activation, '__name__', self.activation)})"
        )
