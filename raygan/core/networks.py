"""Network registry: MLP (Lipizzaner) and DCGAN generators and discriminators, adversarial
autoencoders (`raygan.core.aae`: an autoencoder as the G side, a latent discriminator as D),
architecture genomes (`raygan.arch`) and the user's own (`raygan.core.custom`).

Discriminators return raw logits of shape (B,); losses apply the sigmoid where they need it,
and `features(x)`, their penultimate activations (what feature matching compares).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from raygan.config import NetworksConfig, TrainingConfig
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


def reset_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear/Conv initialisation, drawn from an explicit generator."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)


NetworkBuilder = Callable[
    [NetworksConfig, tuple[int, ...], torch.Generator], tuple[nn.Module, nn.Module]
]


def _build_mlp(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    images = len(data_shape) == 3
    relu = cfg.g_activation == "relu"
    g = MLPGenerator(
        cfg.latent_dim, data_shape, cfg.g_hidden, cfg.hidden_layers, tanh=images, relu=relu
    )
    d = MLPDiscriminator(
        data_shape, cfg.d_hidden, cfg.hidden_layers, minibatch=minibatch_layer(cfg)
    )
    reset_parameters(g, generator)
    reset_parameters(d, generator)
    reset_minibatch(d, generator)
    return g, d


def minibatch_layer(cfg: NetworksConfig) -> tuple[int, int, int] | None:
    """(kernels, kernel_dims, group) of D's minibatch layer, None when it has none."""
    if not cfg.minibatch_discrimination:
        return None
    return cfg.minibatch_kernels, cfg.minibatch_kernel_dims, cfg.minibatch_group


def reset_minibatch(d: nn.Module, generator: torch.Generator) -> None:
    """Draw the minibatch layer's T (after the other weights, so their draws stay as without)."""
    for m in d.modules():
        if isinstance(m, MinibatchDiscrimination):
            m.reset_parameters(generator)


def _build_dcgan(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    from raygan.core.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights

    if len(data_shape) != 3:
        raise ValueError(f"dcgan needs image data (C, H, W), got shape {data_shape}")
    c, h, w = data_shape
    g = DCGANGenerator(
        cfg.latent_dim,
        (c, h, w),
        width=cfg.dcgan_width,
        norm=cfg.g_norm,
        reference=cfg.vbn_reference_size,
    )
    d = DCGANDiscriminator((c, h, w), width=cfg.dcgan_width, minibatch=minibatch_layer(cfg))
    init_dcgan_weights(g, generator)
    init_dcgan_weights(d, generator)
    reset_minibatch(d, generator)
    if g.reference_z is not None:  # the reference batch is fixed here, once
        g.reference_z.copy_(torch.randn(g.reference_z.shape, generator=generator))
    return g, d


def _build_aae(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    from raygan.core.aae import build_aae  # it builds on this module's networks

    return build_aae(cfg, data_shape, generator)


def _build_genome(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    from raygan.arch.build import build
    from raygan.arch.genome import Genome

    return build(Genome.decode(cfg.genome), cfg.latent_dim, data_shape, generator)


def _build_custom(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    from raygan.core.custom import build_custom  # it imports the user's module

    return build_custom(cfg, data_shape, generator)


NETWORKS: dict[str, NetworkBuilder] = {
    "mlp": _build_mlp, "dcgan": _build_dcgan, "aae": _build_aae, "genome": _build_genome,
    "custom": _build_custom,
}


def build_networks(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    """Build a freshly initialised (generator, discriminator) pair (for `aae`: autoencoder,
    latent discriminator).

    Args:
        cfg: architecture settings.
        data_shape: shape of one sample, (2,) for toy data or (C, H, W) for images.
        generator: RNG for the initial weights.
    """
    if cfg.kind not in NETWORKS:
        raise KeyError(f"unknown network {cfg.kind!r}; registered: {', '.join(NETWORKS)}")
    return NETWORKS[cfg.kind](cfg, data_shape, generator)


@dataclass(frozen=True)
class OptimizerSpec:
    """What `raygan.core.individual.make_optimizer` builds for one side of a cell."""

    name: str
    lr: float
    betas: tuple[float, float]


def optimizer_specs(nets: NetworksConfig, training: TrainingConfig) -> dict[str, OptimizerSpec]:
    """Each side's optimizer ("g", "d"): the genome's (kind and rate; its momentum is Adam's
    beta1) for `networks.kind: genome`, else Adam at `training.lr_g`/`lr_d` with
    `training.beta1`/`beta2`."""
    if nets.kind == "genome":
        from raygan.arch.genome import Genome

        genome = Genome.decode(nets.genome)
        return {side: OptimizerSpec(opt.name, opt.lr, (opt.momentum, training.beta2))
                for side, opt in (("g", genome.g_opt), ("d", genome.d_opt))}
    betas = (training.beta1, training.beta2)
    return {"g": OptimizerSpec("adam", training.lr_g, betas),
            "d": OptimizerSpec("adam", training.lr_d, betas)}
