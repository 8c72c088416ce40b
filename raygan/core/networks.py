"""Network registry: builds a cell's (G, D) by `networks.kind`: MLP (`raygan.core.mlp`), DCGAN
(`raygan.core.dcgan`), adversarial autoencoders (`raygan.core.aae`: an autoencoder as the G
side, a latent discriminator as D), architecture genomes (`raygan.arch`) and the user's own
(`raygan.core.custom`); and each side's optimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from raygan.config import NetworksConfig, TrainingConfig
from raygan.core.init import init_dcgan_weights, reset_minibatch, reset_parameters
from raygan.core.mlp import MLPDiscriminator, MLPGenerator, minibatch_layer

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


def _build_dcgan(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    from raygan.core.dcgan import DCGANDiscriminator, DCGANGenerator

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
    from raygan.core.aae import build_aae

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
