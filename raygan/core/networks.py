"""Network registry: builds a cell's (G, D) by `networks.kind`: MLP (`raygan.core.mlp`), DCGAN
(`raygan.core.dcgan`), adversarial autoencoders (`raygan.core.aae`: an autoencoder as the G
side, a latent discriminator as D), architecture genomes (`raygan.arch.network`, registered
from there) and the user's own (`raygan.core.custom`); and each side's optimizer.

What the config knows of each kind is its spec (`raygan.core.network_specs`); a new kind is
a builder and one line, `raygan.register_network(spec, builder)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, overload

import torch
from torch import nn

from raygan.config import NetworksConfig, TrainingConfig
from raygan.config.specs import NETWORKS as SPECS
from raygan.config.specs import NetworkSpec, implement, implementation, remember
from raygan.core.init import init_dcgan_weights, reset_minibatch, reset_parameters
from raygan.core.mlp import MLPDiscriminator, MLPGenerator, minibatch_layer

NetworkBuilder = Callable[
    [NetworksConfig, tuple[int, ...], torch.Generator], tuple[nn.Module, nn.Module]
]
B = TypeVar("B", bound=NetworkBuilder)


@dataclass(frozen=True)
class OptimizerSpec:
    """What `raygan.core.individual.make_optimizer` builds for one side of a cell."""

    name: str
    lr: float
    betas: tuple[float, float]


OptimizersOf = Callable[[NetworksConfig, TrainingConfig], dict[str, OptimizerSpec]]
"""A kind's own optimizers: `(networks, training) -> {"g": spec, "d": spec}`."""


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


def _build_custom(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    from raygan.core.custom import build_custom  # it imports the user's module

    return build_custom(cfg, data_shape, generator)


NETWORKS: dict[str, NetworkBuilder] = {
    "mlp": _build_mlp, "dcgan": _build_dcgan, "aae": _build_aae, "custom": _build_custom,
}
"""Each kind's builder: `(networks section, one sample's shape, RNG) -> (G, D)`."""
OPTIMIZERS: dict[str, OptimizersOf] = {}
"""The kinds whose networks bring their own optimizers (`optimizer_specs`)."""


@overload
def register_network(spec: NetworkSpec | str, build: None = None,
                     optimizers: OptimizersOf | None = None) -> Callable[[B], B]: ...


@overload
def register_network(spec: NetworkSpec | str, build: B,
                     optimizers: OptimizersOf | None = None) -> B: ...


def register_network(
    spec: NetworkSpec | str, build: B | None = None, optimizers: OptimizersOf | None = None
) -> B | Callable[[B], B]:
    """Register a network kind: its spec in the config, so `networks.kind: <name>` selects
    it, and its builder. `register_network(spec, build)`, or `@register_network(spec)` above
    the builder.

    Args:
        spec: what the config knows of it (`raygan.NetworkSpec`; a name: a spec without
            traits).
        build: `(cfg, data_shape, generator) -> (G, D)`, freshly initialised from `generator`
            (a `torch.Generator`); G maps `(N, networks.latent_dim)` noise to
            `(N, *data_shape)`, D a batch to `(N, 1)` logits.
        optimizers: each side's optimizer if the kind sets its own (default: Adam at
            `training.lr_g` / `lr_d`).
    """
    if build is None:
        return lambda fn: register_network(spec, fn, optimizers)
    spec = NetworkSpec(spec) if isinstance(spec, str) else spec
    SPECS.add(spec)
    NETWORKS[spec.name] = build
    if optimizers is not None:
        OPTIMIZERS[spec.name] = optimizers
    remember(register_network, spec, build, optimizers)
    return build


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
    return implementation(SPECS, cfg.kind, NETWORKS)(cfg, data_shape, generator)


def optimizer_specs(nets: NetworksConfig, training: TrainingConfig) -> dict[str, OptimizerSpec]:
    """Each side's optimizer ("g", "d"): the kind's own (`OPTIMIZERS`: a genome's kind, rate
    and momentum), else Adam at `training.lr_g`/`lr_d` with `training.beta1`/`beta2`."""
    if nets.kind not in NETWORKS and nets.kind in SPECS:
        implement(SPECS, nets.kind, NETWORKS)
    if nets.kind in OPTIMIZERS:
        return OPTIMIZERS[nets.kind](nets, training)
    betas = (training.beta1, training.beta2)
    return {"g": OptimizerSpec("adam", training.lr_g, betas),
            "d": OptimizerSpec("adam", training.lr_d, betas)}
