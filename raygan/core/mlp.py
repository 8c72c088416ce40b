"""The MLP generator and discriminator (Lipizzaner's networks), for points and small images.

Discriminators return raw logits of shape (B,); losses apply the sigmoid where they need it,
and `features(x)`, their penultimate activations (what feature matching compares).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from raygan.config import NetworksConfig
from raygan.core.layers import MinibatchDiscrimination


class MLPGenerator(nn.Module):
    """Latent vector -> sample, LeakyReLU (or ReLU) hidden layers; tanh output for images."""

    def __init__(
        self,
        latent_dim: int,
        out_shape: tuple[int, ...],
        hidden: int,
        layers: int,
        tanh: bool,
        relu: bool = False,
    ) -> None:
        super().__init__()
        self.out_shape = out_shape
        dims = [latent_dim] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.ReLU() if relu else nn.LeakyReLU(0.2)]
        body.append(nn.Linear(dims[-1], math.prod(out_shape)))
        if tanh:
            body.append(nn.Tanh())
        self.net = nn.Sequential(*body)

    def forward(self, z: Tensor) -> Tensor:
        """Map (B, latent_dim) noise to (B, *out_shape) samples."""
        return self.net(z).view(len(z), *self.out_shape)


class MLPDiscriminator(nn.Module):
    """Sample -> logit, LeakyReLU hidden layers, optionally a minibatch-discrimination layer.

    Args:
        in_shape: shape of one sample.
        hidden: width of the hidden layers.
        layers: number of hidden layers.
        minibatch: (kernels, kernel_dims[, group]) of a `MinibatchDiscrimination` layer between
            the last hidden layer and the logit; None: none.
    """

    def __init__(
        self,
        in_shape: tuple[int, ...],
        hidden: int,
        layers: int,
        minibatch: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        dims = [math.prod(in_shape)] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.mbd: MinibatchDiscrimination | None = None
        if minibatch is None:
            body.append(nn.Linear(dims[-1], 1))
        else:
            self.mbd = MinibatchDiscrimination(dims[-1], *minibatch)
            self.head = nn.Linear(self.mbd.out_features, 1)
        self.net = nn.Sequential(*body)

    def features(self, x: Tensor) -> Tensor:
        """The penultimate activations (the input of the logit layer), shape (B, features)."""
        if self.mbd is None:
            return self.net[:-1](x.flatten(1))
        return self.mbd(self.net(x.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, *in_shape) samples to (B,) logits."""
        if self.mbd is None:
            return self.net(x.flatten(1)).squeeze(1)
        return self.head(self.features(x)).squeeze(1)


def minibatch_layer(cfg: NetworksConfig) -> tuple[int, int, int] | None:
    """(kernels, kernel_dims, group) of D's minibatch layer, None when it has none."""
    if not cfg.minibatch_discrimination:
        return None
    return cfg.minibatch_kernels, cfg.minibatch_kernel_dims, cfg.minibatch_group
