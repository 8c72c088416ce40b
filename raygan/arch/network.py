"""The `genome` network kind's builder and optimizers, registered in `raygan.core.networks`.

Imported when a genome's networks are first built (its spec, `raygan.arch.spec`, names this
module), so the network registry never imports the architecture package.
"""

from __future__ import annotations

import torch
from torch import nn

from raygan.arch.build import build
from raygan.arch.genome import Genome
from raygan.config import NetworksConfig, TrainingConfig
from raygan.core.networks import NETWORKS, OPTIMIZERS, OptimizerSpec


def build_genome(
    cfg: NetworksConfig, data_shape: tuple[int, ...], generator: torch.Generator
) -> tuple[nn.Module, nn.Module]:
    """The (G, D) `networks.genome` describes, initialised from `generator`."""
    return build(Genome.decode(cfg.genome), cfg.latent_dim, data_shape, generator)


def genome_optimizers(nets: NetworksConfig, training: TrainingConfig) -> dict[str, OptimizerSpec]:
    """Each side's optimizer as the genome sets it: kind and rate, its momentum as Adam's beta1
    (beta2 is `training.beta2`)."""
    genome = Genome.decode(nets.genome)
    return {side: OptimizerSpec(opt.name, opt.lr, (opt.momentum, training.beta2))
            for side, opt in (("g", genome.g_opt), ("d", genome.d_opt))}


NETWORKS["genome"] = build_genome  # a built-in kind: its spec is registered with raygan
OPTIMIZERS["genome"] = genome_optimizers
