"""K local discriminators, each on a fixed random projection of the input (the hGAN mode).

With `losses.discriminators: local` a cell's D is a `LocalDiscriminators`: K MLP heads, head k
judging `x @ P_k`, a fixed random projection of the flattened sample to `projection_dim(n)`
dimensions (Neyshabur et al., "Stabilizing GAN training with multiple random projections";
Albuquerque et al. train one G against such Ds with the objectives of `raygan.core.multi_d`).

The module returns logits of shape (K, B), one row per head. Every registered loss is a mean
of element-wise terms, so a loss of (K, B) logits is the mean over the K heads of each head's
loss: the unchanged D step trains the K heads independently (their parameters are disjoint;
each head on its own loss scaled by 1/K, which Adam all but ignores), fitness is the mean over
the heads, and `multi_d.generator_step` splits the rows into the K losses `l_k` (it knows the
heads by `multi_head`). The projections are buffers: snapshots and checkpoints carry them.
The WGAN-GP penalty would act on the heads' sum, not per critic, so the config refuses
`wasserstein_gp` with local discriminators.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from raygan.core.init import reset_parameters
from raygan.core.mlp import MLPDiscriminator


def projection_dim(n: int) -> int:
    """Dimensions each head sees of an n-dimensional sample: a quarter, at least 1."""
    return max(1, n // 4)


class LocalDiscriminators(nn.Module):
    """K MLP discriminators, each on its own fixed random projection of the input.

    Attributes:
        multi_head: marks the (K, B) logits for `raygan.core.multi_d` (K discriminators).

    Args:
        in_shape: the shape of one sample.
        k: the number of heads.
        hidden, layers: each head's MLP width and hidden layer count.
        generator: RNG for the projections and the heads' initial weights.
    """

    multi_head: ClassVar[bool] = True

    def __init__(
        self, in_shape: tuple[int, ...], k: int, hidden: int, layers: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        n = math.prod(in_shape)
        m = projection_dim(n)
        proj = torch.randn(k, n, m, generator=generator)
        # each of the m directions a unit vector: a head's inputs keep the data's scale
        self.register_buffer("projections", proj / proj.norm(dim=1, keepdim=True))
        self.heads = nn.ModuleList(MLPDiscriminator((m,), hidden, layers) for _ in range(k))
        for head in self.heads:
            reset_parameters(head, generator)

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, *in_shape) samples to (K, B) logits, row k from head k."""
        flat = x.flatten(1)
        proj = self.get_buffer("projections")
        return torch.stack([head(flat @ proj[k]) for k, head in enumerate(self.heads)])

