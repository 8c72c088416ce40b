"""The limits of an architecture search (`Bounds`) and the check that a genome keeps them and
can be built for the data (`check`).

Apart from `raygan.arch.genome`, whose genomes are plain values that know nothing of building,
because the check needs build-time facts (`raygan.arch.build`: whether the layers fit the image
side, how many parameters the networks have).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from raygan.arch.build import infeasibility, parameter_count
from raygan.arch.genome import OPTIMIZERS, Genome


@dataclass(frozen=True)
class Bounds:
    """Limits of the architecture search; every genome that variation returns stays within them.

    Args:
        min_g_blocks: Fewest G conv blocks.
        max_g_blocks: Most G conv blocks.
        min_d_blocks: Fewest D conv blocks.
        max_d_blocks: Most D conv blocks.
        max_d_linear: Most D linear (head) blocks; the fewest is 0.
        channels: Allowed conv widths, also G's base channels.
        kernels: Allowed conv kernel sizes.
        linear_widths: Allowed widths of D's linear blocks.
        bn_momenta: Allowed batch-norm momenta; None in it allows blocks without batch norm.
        optimizers: Allowed optimizer names.
        momenta: Allowed optimizer momenta (Adam's beta1).
        lr_min: Smallest learning rate.
        lr_max: Largest learning rate.
        max_params: Most parameters of each network (G and D separately).
    """

    min_g_blocks: int = 1
    max_g_blocks: int = 4
    min_d_blocks: int = 1
    max_d_blocks: int = 4
    max_d_linear: int = 2
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    kernels: tuple[int, ...] = (3, 4, 5)
    linear_widths: tuple[int, ...] = (32, 64, 128, 256)
    bn_momenta: tuple[float | None, ...] = (None, 0.1, 0.01)
    optimizers: tuple[str, ...] = ("adam", "rmsprop")
    momenta: tuple[float, ...] = (0.0, 0.5, 0.9)
    lr_min: float = 1e-5
    lr_max: float = 1e-2
    max_params: int = 1_500_000

    def __post_init__(self) -> None:
        for lo, hi in (("min_g_blocks", "max_g_blocks"), ("min_d_blocks", "max_d_blocks")):
            if not 1 <= getattr(self, lo) <= getattr(self, hi):
                raise ValueError(f"Bounds.{lo} must be in [1, {hi}], got {getattr(self, lo)}")
        if self.max_d_linear < 0:
            raise ValueError(f"Bounds.max_d_linear must be >= 0, got {self.max_d_linear}")
        for name in ("channels", "kernels", "linear_widths"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"Bounds.{name} must be a non-empty tuple of positive ints")
        if not self.bn_momenta or any(m is not None and not 0 < m <= 1 for m in self.bn_momenta):
            raise ValueError("Bounds.bn_momenta must be non-empty, each None or in (0, 1]")
        if not self.optimizers or set(self.optimizers) - set(OPTIMIZERS):
            raise ValueError(f"Bounds.optimizers must be a non-empty subset of {OPTIMIZERS}")
        if not self.momenta or any(not 0 <= m < 1 for m in self.momenta):
            raise ValueError("Bounds.momenta must be non-empty, each in [0, 1)")
        if not 0 < self.lr_min <= self.lr_max:
            raise ValueError(f"Bounds.lr_min must be in (0, lr_max], got {self.lr_min}")
        if not math.isfinite(self.lr_max):
            raise ValueError(f"Bounds.lr_max must be finite, got {self.lr_max}")
        if self.max_params < 1:
            raise ValueError(f"Bounds.max_params must be positive, got {self.max_params}")


def check(genome: Genome, data_shape: tuple[int, ...], bounds: Bounds, latent_dim: int) -> None:
    """Raise if ``genome`` is outside ``bounds`` or cannot be built for ``data_shape``.

    Args:
        genome: The genome to check.
        data_shape: ``(C, H, W)`` of one image.
        bounds: The limits.
        latent_dim: G's input size (it counts towards G's parameters).

    Raises:
        ValueError: One line naming the first violated limit.
    """
    n_dl = len(genome.d_linears)
    counts = (
        ("G blocks", len(genome.g_blocks), bounds.min_g_blocks, bounds.max_g_blocks),
        ("D conv blocks", len(genome.d_convs), bounds.min_d_blocks, bounds.max_d_blocks),
        ("D linear blocks", n_dl, 0, bounds.max_d_linear),
    )
    for what, n, lo, hi in counts:
        if not lo <= n <= hi:
            raise ValueError(f"{what}: {n} outside [{lo}, {hi}]")
    if genome.g_channels not in bounds.channels:
        raise ValueError(f"G base channels {genome.g_channels} not in {bounds.channels}")
    for side, blocks in (("G", genome.g_blocks), ("D", genome.d_blocks)):
        for i, b in enumerate(blocks):
            allowed = bounds.channels if b.kind == "conv" else bounds.linear_widths
            if b.width not in allowed:
                raise ValueError(f"{side} block {i}: width {b.width} not in {allowed}")
            if b.kind == "conv" and b.kernel not in bounds.kernels:
                raise ValueError(f"{side} block {i}: kernel {b.kernel} not in {bounds.kernels}")
            if b.bn not in bounds.bn_momenta:
                raise ValueError(f"{side} block {i}: batch norm {b.bn} not in {bounds.bn_momenta}")
    for side, opt in (("G", genome.g_opt), ("D", genome.d_opt)):
        if opt.name not in bounds.optimizers:
            raise ValueError(f"{side} optimizer {opt.name!r} not in {bounds.optimizers}")
        if not bounds.lr_min <= opt.lr <= bounds.lr_max:
            raise ValueError(f"{side} lr {opt.lr} outside [{bounds.lr_min}, {bounds.lr_max}]")
        if opt.momentum not in bounds.momenta:
            raise ValueError(f"{side} momentum {opt.momentum} not in {bounds.momenta}")
    problem = infeasibility(genome, data_shape)
    if problem is not None:
        raise ValueError(problem)
    for side, n in zip("GD", parameter_count(genome, latent_dim, data_shape)):
        if n > bounds.max_params:
            raise ValueError(f"{side} has {n} parameters, more than max_params {bounds.max_params}")
