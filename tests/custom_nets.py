"""Networks of a user's own for `networks.kind: custom` (tests/test_custom_networks.py).

Loaded by its file path (`networks.generator: "<this file>:Generator"`), so the Ray cell
actors import it as the test process does, whatever their `sys.path`.
"""

from __future__ import annotations

import math

from torch import Tensor, nn


class Generator(nn.Module):
    """Noise -> samples of the data's shape; sizes itself from what raygan passes."""

    def __init__(self, latent_dim: int, data_shape: tuple[int, ...], hidden: int = 32) -> None:
        super().__init__()
        self.shape = data_shape
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, math.prod(data_shape)))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(len(z), *self.shape)


def make_discriminator(data_shape: tuple[int, ...], hidden: int = 32) -> nn.Module:
    """A factory: samples -> (N, 1) logits."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data_shape), hidden),
                         nn.LeakyReLU(0.2), nn.Linear(hidden, 1))


def three_outputs(latent_dim: int) -> nn.Module:
    """A generator of the wrong shape: (N, 3) for any data."""
    return nn.Linear(latent_dim, 3)


class Reads(nn.Module):
    """A discriminator that reads its layer's weight directly (vmap's bank lays it out
    otherwise) and keeps a buffer."""

    def __init__(self, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.fc = nn.Linear(math.prod(data_shape), 1)
        self.norm = nn.BatchNorm1d(math.prod(data_shape))

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.flatten(1)) @ self.fc.weight.t() + self.fc.bias


class Batch(nn.Module):
    """A discriminator with batch norm (buffers), which vmap runs."""

    def __init__(self, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(math.prod(data_shape)),
                                 nn.Linear(math.prod(data_shape), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def broken() -> nn.Module:
    """A factory whose own code fails."""
    raise RuntimeError("no network here")


def not_a_module() -> object:
    """A factory that returns something else than a network."""
    return object()
