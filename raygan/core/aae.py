"""Adversarial autoencoders (Makhzani et al. 2015) as a kind of individual (`networks.kind: aae`).

An AAE sits on the grid like a GAN. Its "G" side is the autoencoder: one module holding the
encoder and the decoder, whose `forward(z)` is the decoder, so sampling, mixtures, snapshots and
the FID of decoded prior samples work as for a generator. Its "D" side is the latent
discriminator, which tells prior samples (real) from encoder codes (fake). Each batch of
`raygan.core.rules.base.train_batches` then runs the two phases of the paper:

- reconstruction: the autoencoder minimises the mean squared error of `decode(encode(x))` on
  the real batch (`reconstruction_step`);
- regularisation: a latent D steps on prior samples against the codes of an encoder drawn from
  the neighbourhood, and the encoder steps to fool a latent D drawn from the neighbourhood
  (the G loss on its codes), exactly as Gs and Ds face their neighbours in a GAN grid.

A latent code is drawn from the prior `networks.aae_prior`: N(0, I) (`gaussian`) or a mixture
of `MIXTURE_COMPONENTS` 2-D Gaussians on a circle (`mixture2d`). `latent` draws the cell's
noise for every kind, so an AAE cell's samples are decoder(prior).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raygan.config import NetworksConfig
from raygan.core import techniques
from raygan.core.individual import Individual
from raygan.core.init import reset_minibatch, reset_parameters
from raygan.core.mlp import MLPDiscriminator, MLPGenerator, minibatch_layer

MIXTURE_COMPONENTS = 10
"""Components of the `mixture2d` prior, evenly spaced on a circle."""
MIXTURE_RADIUS = 2.0
"""Radius of the circle the `mixture2d` components' means lie on."""
MIXTURE_STD = 0.2
"""Standard deviation of each `mixture2d` component (per coordinate)."""


class Encoder(nn.Module):
    """Sample -> latent code: LeakyReLU hidden layers, a linear output (codes are unbounded)."""

    def __init__(self, in_shape: tuple[int, ...], latent_dim: int, hidden: int,
                 layers: int) -> None:
        super().__init__()
        dims = [math.prod(in_shape)] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        body.append(nn.Linear(dims[-1], latent_dim))
        self.net = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, *in_shape) samples to (B, latent_dim) codes."""
        return self.net(x.flatten(1))


class AdversarialAutoencoder(nn.Module):
    """Encoder and decoder in one module; `forward(z)` decodes, so it samples like a G.

    Args:
        latent_dim: size of a code.
        data_shape: shape of one sample.
        hidden: width of both networks' hidden layers.
        layers: hidden layers of each network.
        tanh: the decoder ends in tanh (images in [-1, 1]).
        relu: the decoder's hidden layers use ReLU instead of LeakyReLU.
    """

    def __init__(self, latent_dim: int, data_shape: tuple[int, ...], hidden: int, layers: int,
                 tanh: bool, relu: bool = False) -> None:
        super().__init__()
        self.encoder = Encoder(data_shape, latent_dim, hidden, layers)
        self.decoder = MLPGenerator(latent_dim, data_shape, hidden, layers, tanh, relu)

    def forward(self, z: Tensor) -> Tensor:
        """Decode (B, latent_dim) codes to (B, *data_shape) samples."""
        return self.decoder(z)

    def encode(self, x: Tensor) -> Tensor:
        """The codes of a batch of samples, (B, latent_dim)."""
        return self.encoder(x)


def build_aae(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    """A freshly initialised (autoencoder, latent discriminator) pair.

    The autoencoder's networks are `g_hidden` wide, the latent D (an MLP discriminator on codes,
    with the minibatch layer when `networks.minibatch_discrimination`) `d_hidden` wide; both
    have `hidden_layers` hidden layers.
    """
    images = len(data_shape) == 3
    ae = AdversarialAutoencoder(cfg.latent_dim, data_shape, cfg.g_hidden, cfg.hidden_layers,
                                tanh=images, relu=cfg.g_activation == "relu")
    d = MLPDiscriminator((cfg.latent_dim,), cfg.d_hidden, cfg.hidden_layers,
                         minibatch=minibatch_layer(cfg))
    reset_parameters(ae, generator)
    reset_parameters(d, generator)
    reset_minibatch(d, generator)
    return ae, d


def sample_prior(prior: str, n: int, latent_dim: int, generator: torch.Generator) -> Tensor:
    """`n` codes from the prior, on the CPU, drawn from `generator`.

    Args:
        prior: "gaussian" (N(0, I)) or "mixture2d" (`MIXTURE_COMPONENTS` Gaussians of std
            `MIXTURE_STD` on a circle of radius `MIXTURE_RADIUS`, equal weights).
        n: number of codes.
        latent_dim: size of a code (2 for "mixture2d").
        generator: the RNG.

    Raises:
        ValueError: an unknown prior, or "mixture2d" with `latent_dim` other than 2.
    """
    if prior == "gaussian":
        return torch.randn(n, latent_dim, generator=generator)
    if prior != "mixture2d":
        raise ValueError(f"unknown AAE prior {prior!r}; allowed: gaussian, mixture2d")
    if latent_dim != 2:
        raise ValueError(f"the mixture2d prior is 2-D, got latent_dim {latent_dim}")
    component = torch.randint(MIXTURE_COMPONENTS, (n,), generator=generator)
    angle = component.to(torch.float32) * (2 * math.pi / MIXTURE_COMPONENTS)
    means = MIXTURE_RADIUS * torch.stack([angle.cos(), angle.sin()], dim=1)
    return means + MIXTURE_STD * torch.randn(n, 2, generator=generator)


def latent(cfg: NetworksConfig, n: int, generator: torch.Generator) -> Tensor:
    """A cell's latent noise: the AAE prior for `kind: aae`, else N(0, I) (CPU tensor)."""
    if cfg.kind == "aae":
        return sample_prior(cfg.aae_prior, n, cfg.latent_dim, generator)
    return torch.randn(n, cfg.latent_dim, generator=generator)


def encoder_of(net: nn.Module) -> nn.Module:
    """The encoder of an autoencoder (the G side of an AAE cell).

    Raises:
        TypeError: `net` is not an `AdversarialAutoencoder`.
    """
    if not isinstance(net, AdversarialAutoencoder):
        raise TypeError(f"{type(net).__name__} is not an adversarial autoencoder")
    return net.encoder


def reconstruction_error(net: nn.Module, real: Tensor) -> Tensor:
    """Mean squared error of `decode(encode(real))` against `real` (per element)."""
    return F.mse_loss(net(encoder_of(net)(real)), real)


def reconstruction_step(ind: Individual, real: Tensor, historical_averaging: float) -> float:
    """The reconstruction phase: one optimiser step of the autoencoder on its error.

    Returns:
        The reconstruction error before the step.
    """
    error = reconstruction_error(ind.net, real)
    value = float(error.detach())
    techniques.step(ind, error, historical_averaging)
    return value
