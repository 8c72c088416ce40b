"""Weight initialisation drawn from an explicit generator, for every network raygan builds.

A leaf module (torch and raygan's layers only): the network kinds (`raygan.core.mlp`,
`raygan.core.dcgan`, `raygan.arch.build`) and the metrics classifiers all initialise through
it, so none of them imports another to reach an initialiser.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from raygan.core.layers import MinibatchDiscrimination, VirtualBatchNorm2d


def reset_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear/Conv initialisation, drawn from an explicit generator."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def reset_minibatch(d: nn.Module, generator: torch.Generator) -> None:
    """Draw the minibatch layer's T (after the other weights, so their draws stay as without)."""
    for m in d.modules():
        if isinstance(m, MinibatchDiscrimination):
            m.reset_parameters(generator)


def init_dcgan_weights(module: nn.Module, generator: torch.Generator) -> None:
    """Apply the DCGAN initialisation to every layer of ``module`` in place.

    Conv and linear weights are drawn from N(0, 0.02), (virtual) batch-norm scales from
    N(1, 0.02); biases and batch-norm shifts are set to zero, running statistics reset and
    PReLU slopes set to their constant 0.25, so a network made on the meta device and moved
    with ``to_empty`` (`raygan.arch.build`) comes out whole.

    Args:
        module: Network whose layers are re-initialised.
        generator: Source of randomness, so that initialisation never touches global RNG.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, VirtualBatchNorm2d)):
                nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
                nn.init.zeros_(m.bias)
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    m.reset_running_stats()
            elif isinstance(m, nn.PReLU):
                m.reset_parameters()
