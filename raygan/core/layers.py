"""Layers of the improved techniques (Salimans et al., 2016): minibatch discrimination and
virtual batch normalisation.

Both keep everything they need as parameters or buffers, so the numpy snapshots a cell sends its
neighbours (`module_to_numpy`) and the checkpoints carry them with the rest of the network.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_CHUNK_ELEMENTS = 1 << 22
"""Distances computed at once by `MinibatchDiscrimination` (bounds memory on large batches)."""


class MinibatchDiscrimination(nn.Module):
    """Salimans' minibatch layer: features plus, per kernel, the closeness to the other samples.

    For a batch of features `f(x_i)` (A values each), `M_i = f(x_i) T` is a B x C matrix (T is the
    A x B x C tensor); kernel b of sample i outputs `o_b(x_i) = sum_{j != i} exp(-||M_i,b -
    M_j,b||_1)`. The layer returns `[f(x_i), o(x_i)]`, so a sample's output depends on the other
    samples of its batch: a discriminator can see a batch of identical fakes.

    An input of more than `group` samples (a fitness or scoring sample, not a training batch) is
    split into nearly equal groups of at most `group`, and each sample is compared with its own
    group only: the sum then keeps the scale it had on training batches, and the cost grows
    linearly with the input, not quadratically.

    Args:
        in_features: A, the size of the features it receives.
        kernels: B, the number of kernels (the reference code uses 100).
        kernel_dims: C, the dimension of each kernel's projection (the reference code uses 5).
        group: the most samples compared with each other (the training batch size).
    """

    def __init__(
        self, in_features: int, kernels: int = 100, kernel_dims: int = 5, group: int = 100
    ) -> None:
        super().__init__()
        if min(in_features, kernels, kernel_dims) < 1 or group < 2:
            raise ValueError(
                f"in_features, kernels and kernel_dims must be >= 1 and group >= 2, got "
                f"{in_features}, {kernels}, {kernel_dims}, {group}"
            )
        self.kernels = kernels
        self.kernel_dims = kernel_dims
        self.group = group
        self.T = nn.Parameter(torch.zeros(in_features, kernels * kernel_dims))

    @property
    def out_features(self) -> int:
        """Size of the output: the input features and one value per kernel."""
        return self.T.shape[0] + self.kernels

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Draw T from N(0, 0.05), the reference code's initialisation."""
        with torch.no_grad():
            self.T.normal_(0.0, 0.05, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        """Map features (N, A) to (N, A + B)."""
        groups = -(-len(x) // self.group)
        closeness = [self._closeness(part) for part in torch.tensor_split(x, groups)]
        return torch.cat([x, torch.cat(closeness)], dim=1)

    def _closeness(self, x: Tensor) -> Tensor:
        """(N, B): per kernel, the summed closeness of each sample to the others of `x`."""
        n = len(x)
        m = (x @ self.T).view(n, self.kernels, self.kernel_dims).transpose(0, 1)  # (B, N, C)
        chunk = max(1, _CHUNK_ELEMENTS // max(1, self.kernels * n))
        parts = []
        for start in range(0, n, chunk):
            dist = torch.cdist(m[:, start : start + chunk], m, p=1)  # (B, chunk, N)
            # the sum runs over j != i: a sample's distance to itself is exactly 0, exp(0) = 1
            parts.append((torch.exp(-dist).sum(-1) - 1.0).t())
        return torch.cat(parts)


class VirtualBatchNorm2d(nn.Module):
    """Virtual batch normalisation over channels of (N, C, H, W) activations.

    The input's first `reference` rows are the activations of a reference batch fixed at the
    start of training (the generator prepends it); they are normalised with their own
    statistics. Every other example x is normalised with the statistics of the reference batch
    and x itself: `mean = (reference * ref_mean + mean_x) / (reference + 1)`, likewise for the
    mean square, where `mean_x` is x's mean over its spatial positions (as the reference code).
    An example's output therefore never depends on the other examples of its batch.

    Args:
        channels: C.
        reference: size of the reference batch at the front of every input.
        eps: added to the variance.
    """

    def __init__(self, channels: int, reference: int, eps: float = 1e-5) -> None:
        super().__init__()
        if reference < 1:
            raise ValueError(f"the reference batch needs at least one example, got {reference}")
        self.reference = reference
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def _normalise(self, x: Tensor, mean: Tensor, mean_sq: Tensor) -> Tensor:
        var = (mean_sq - mean**2).clamp_min(0.0)
        scale = self.weight[None, :, None, None] / torch.sqrt(var + self.eps)
        return (x - mean) * scale + self.bias[None, :, None, None]

    def forward(self, x: Tensor) -> Tensor:
        """Normalise the reference rows by themselves, every other row by reference + itself."""
        if len(x) <= self.reference:
            raise ValueError(
                f"expected the {self.reference} reference rows and at least one example, "
                f"got {len(x)} rows"
            )
        ref, live = x[: self.reference], x[self.reference :]
        ref_mean = ref.mean(dim=(0, 2, 3), keepdim=True)
        ref_sq = (ref**2).mean(dim=(0, 2, 3), keepdim=True)
        new = 1.0 / (self.reference + 1.0)
        mean = new * live.mean(dim=(2, 3), keepdim=True) + (1.0 - new) * ref_mean
        mean_sq = new * (live**2).mean(dim=(2, 3), keepdim=True) + (1.0 - new) * ref_sq
        return torch.cat(
            [self._normalise(ref, ref_mean, ref_sq), self._normalise(live, mean, mean_sq)]
        )
