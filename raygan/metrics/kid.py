"""Kernel distances without a download: KID on random convolutional features, energy distance.

KID (Binkowski et al. 2018, "Demystifying MMD GANs") is the unbiased estimate of the squared
MMD with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets
as torch-fidelity computes it (`KID_SUBSETS` subsets of up to `KID_SUBSET_SIZE` samples of
each set; when both sets fit in one subset every subset would be the same, so it is computed
once), and reported x 1e3. It may be slightly negative for two samples of one distribution.

Its features here come not from Inception but from `RandomFeatures`, a small convolutional
network with FIXED RANDOM weights (drawn from a seeded generator; never trained, nothing
downloaded). Random-initialised networks are a documented embedding for evaluating generative
models on domains without a suitable pretrained network (Naeem et al. 2020, "Reliable Fidelity
and Diversity Metrics for Generative Models", section 5, random VGG-16 features). Stride-2
convolutions and adaptive pooling serve any image size of at least 8x8 and 1 or 3 channels;
each feature is standardised with the real reference set's mean and standard deviation (a fixed
affine map per data set), so that no feature's offset dominates the kernel's dot product.

The energy distance (Szekely and Rizzo) of vectors, 2 E|X - Y| - E|X - X'| - E|Y - Y'|, is the
V-statistic (never negative), in data space, on at most `ENERGY_SAMPLES` vectors of each set.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

KID_SUBSETS = 10
KID_SUBSET_SIZE = 1000
KID_SCALE = 1e3
ENERGY_SAMPLES = 2000
SEED = 0
_WIDTHS = (16, 32, 64)
_POOL = 4


class RandomFeatures(nn.Module):
    """Three stride-2 conv layers with leaky ReLUs and a 4x4 average pool: 1024 features.

    Weights are drawn once from `torch.Generator().manual_seed(seed)` with He-normal scaling
    (variance-preserving through the leaky ReLUs) and zero biases.

    Args:
        in_channels: image channels (1 or 3).
        seed: seed of the weights.
    """

    def __init__(self, in_channels: int, seed: int = SEED) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"RandomFeatures supports 1 or 3 channels, got {in_channels}")
        layers: list[nn.Module] = []
        channels = in_channels
        for width in _WIDTHS:
            layers += [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(_POOL), nn.Flatten())
        self.in_channels = in_channels
        self.feature_dim = channels * _POOL * _POOL
        generator = torch.Generator().manual_seed(seed)
        gain = nn.init.calculate_gain("leaky_relu", 0.2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                with torch.no_grad():
                    m.weight.normal_(0.0, gain / math.sqrt(fan_in), generator=generator)
                    if m.bias is not None:
                        m.bias.zero_()
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        """Features (B, 1024) of images (B, C, H, W) in [-1, 1], H and W >= 8."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or min(x.shape[-2:]) < 8:
            raise ValueError(f"expected images (B, {self.in_channels}, H >= 8, W >= 8), got "
                             f"{tuple(x.shape)}")
        return self.body(x)


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x, y) = (x.y / d + 1)^3 for all pairs of rows."""
    return (x @ y.T).div_(x.shape[1]).add_(1.0).pow_(3)


def _subset_masks(n: int, size: int, subsets: int, generator: torch.Generator) -> Tensor:
    """(n, subsets) 0/1 columns, each marking `size` rows drawn without replacement."""
    masks = torch.zeros(n, subsets)
    for s in range(subsets):
        masks[torch.randperm(n, generator=generator)[:size], s] = 1.0
    return masks


def _block_means(k: Tensor, a: Tensor, b: Tensor, within: bool) -> Tensor:
    """Per subset, the mean of k over the rows marked in `a` and columns marked in `b`
    (leaving out the diagonal when `within`: the unbiased estimate)."""
    size = a[:, 0].sum()
    total = (a * (k @ b)).sum(0, dtype=torch.float64)
    if not within:
        return total / size**2
    return (total - (k.diagonal()[:, None] * a).sum(0, dtype=torch.float64)) / (size * (size - 1))


def kernel_inception_distance(x: Tensor, y: Tensor, subsets: int = KID_SUBSETS,
                              subset_size: int = KID_SUBSET_SIZE, seed: int = SEED,
                              kyy: Tensor | None = None) -> float:
    """Mean unbiased polynomial-kernel MMD^2 over random subsets of the rows of `x` and `y`.

    The kernel matrices are computed once for the whole sets; a subset's sums are then
    products with its 0/1 mask (one matrix product for all subsets).

    Args:
        x: features (M, d), M >= 2.
        y: features (N, d), N >= 2 (the reference set).
        subsets: number of subsets.
        subset_size: rows per subset (at most min(M, N)).
        seed: seed of the subset draws.
        kyy: `polynomial_kernel(y, y)`, when the caller keeps it.
    """
    x, y = x.to(torch.float32), y.to(torch.float32)
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {len(x)} and {len(y)}")
    if size == len(x) == len(y):  # every subset would be the whole of both sets
        mx, my = torch.ones(len(x), 1), torch.ones(len(y), 1)
    else:
        generator = torch.Generator().manual_seed(seed)
        mx = _subset_masks(len(x), size, subsets, generator)
        my = _subset_masks(len(y), size, subsets, generator)
    kyy = polynomial_kernel(y, y) if kyy is None else kyy
    mmd = (_block_means(polynomial_kernel(x, x), mx, mx, True)
           + _block_means(kyy, my, my, True)
           - 2.0 * _block_means(polynomial_kernel(x, y), mx, my, False))
    return float(mmd.mean())


class KID:
    """KID (x 1e3) of image sets against a fixed real reference set, on random features.

    Args:
        reference: real images (N, C, H, W) in [-1, 1].
        device: where the feature network runs.
        batch_size: images per forward pass.
    """

    def __init__(self, reference: Tensor, device: str = "cpu", batch_size: int = 500) -> None:
        self.image_shape = tuple(int(d) for d in reference.shape[1:])
        self.device = device
        self.batch_size = batch_size
        self.net = RandomFeatures(self.image_shape[0]).to(device)
        raw = self._raw(reference)
        self.mean = raw.mean(0)
        self.std = raw.std(0).clamp_min(1e-6)
        self.reference = (raw - self.mean) / self.std
        self.kyy = polynomial_kernel(self.reference, self.reference)

    @torch.no_grad()
    def _raw(self, images: Tensor) -> Tensor:
        out = [self.net(images[i : i + self.batch_size].to(self.device, torch.float32)).cpu()
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out)

    def features(self, images: Tensor) -> Tensor:
        """Standardised random features (N, 1024) on the CPU."""
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"samples must have shape (N, {', '.join(map(str, self.image_shape))})"
                             f", got {tuple(images.shape)}")
        return (self._raw(images.detach()) - self.mean) / self.std

    def __call__(self, images: Tensor) -> float:
        """KID x 1e3 of `images` against the reference set."""
        return KID_SCALE * kernel_inception_distance(self.features(images), self.reference,
                                                     kyy=self.kyy)


def _mean_distance(x: Tensor, y: Tensor) -> float:
    return float(torch.cdist(x, y).mean())


def _subsample(x: Tensor, limit: int, seed: int) -> Tensor:
    flat = x.detach().reshape(len(x), -1).to(torch.float64).cpu()
    if len(flat) <= limit:
        return flat
    return flat[torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))[:limit]]


class EnergyDistance:
    """The energy distance of vector sets against a fixed real reference set.

    Args:
        reference: real vectors (N, D).
        limit: vectors of each set used at most (a seeded random subset beyond it).
    """

    def __init__(self, reference: Tensor, limit: int = ENERGY_SAMPLES) -> None:
        self.limit = limit
        self.reference = _subsample(reference, limit, SEED)
        self.within = _mean_distance(self.reference, self.reference)

    def __call__(self, samples: Tensor) -> float:
        """2 E|X - Y| - E|X - X'| - E|Y - Y'| of `samples` X and the reference Y."""
        x = _subsample(samples, self.limit, SEED + 1)
        if x.shape[1] != self.reference.shape[1]:
            raise ValueError(f"samples must have {self.reference.shape[1]} values each, got "
                             f"{tuple(samples.shape)}")
        value = 2.0 * _mean_distance(x, self.reference) - _mean_distance(x, x) - self.within
        return max(0.0, value)
