"""DCGAN generator and discriminator (Radford et al., 2016) for small square images.

Each supported side length is reached from a small base grid by stride-2 steps:
28 = 7 * 2**2 (MNIST), 32 = 4 * 2**3 (CIFAR-10), 64 = 4 * 2**4 (CelebA); 8 and 16 are also
accepted so that the tiny embedded digits set can use the same networks.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from raygan.core.layers import MinibatchDiscrimination, VirtualBatchNorm2d

# side length -> (base grid side, number of stride-2 steps)
_LAYOUTS: dict[int, tuple[int, int]] = {8: (4, 1), 16: (4, 2), 28: (7, 2), 32: (4, 3), 64: (4, 4)}
SUPPORTED_SIZES: tuple[int, ...] = tuple(sorted(_LAYOUTS))


def _layout(image_shape: tuple[int, int, int], width: int) -> tuple[int, int, int]:
    """Validate the arguments and return (channels, base side, number of stride-2 steps)."""
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {image_shape}")
    channels, height, side = image_shape
    if channels <= 0:
        raise ValueError(f"image_shape needs a positive channel count, got {image_shape}")
    if height != side or side not in _LAYOUTS:
        sizes = ", ".join(f"{s}x{s}" for s in SUPPORTED_SIZES)
        raise ValueError(f"DCGAN supports square images of size {sizes}; got {height}x{side}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    base, steps = _LAYOUTS[side]
    return channels, base, steps


class DCGANGenerator(nn.Module):
    """Latent vector -> image with transposed convolutions, batch norm, ReLU and tanh output.

    Args:
        latent_dim: Size of the input noise vector.
        image_shape: Output ``(C, H, W)``; H == W must be one of :data:`SUPPORTED_SIZES`.
        width: Channel count of the last hidden layer; earlier layers double it per step.
        norm: ``"batch"`` (batch norm) or ``"virtual_batch"`` (Salimans' virtual batch norm:
            each example is normalised with the statistics of a reference batch of latent
            vectors, the buffer ``reference_z``, and of itself; the reference batch goes through
            the network with every call).
        reference: Size of the reference batch (``"virtual_batch"`` only).
    """

    reference_z: Tensor | None

    def __init__(
        self,
        latent_dim: int,
        image_shape: tuple[int, int, int],
        width: int = 64,
        norm: Literal["batch", "virtual_batch"] = "batch",
        reference: int = 100,
    ) -> None:
        super().__init__()
        if latent_dim <= 0:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        if norm not in ("batch", "virtual_batch"):
            raise ValueError(f"norm must be 'batch' or 'virtual_batch', got {norm!r}")
        channels, base, steps = _layout(image_shape, width)
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        # drawn by whoever builds the network (`build_networks`), then fixed; no buffer (None)
        # with batch norm
        ref = torch.zeros(reference, latent_dim) if norm == "virtual_batch" else None
        self.register_buffer("reference_z", ref)

        def normalise(n: int) -> nn.Module:
            return nn.BatchNorm2d(n) if norm == "batch" else VirtualBatchNorm2d(n, reference)

        hidden = width * 2 ** (steps - 1)
        # A full-size transposed conv on a 1x1 input is the classic DCGAN "project and reshape".
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, hidden, base, 1, 0, bias=False),
            normalise(hidden),
            nn.ReLU(True),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.ConvTranspose2d(hidden, hidden // 2, 4, 2, 1, bias=False),
                normalise(hidden // 2),
                nn.ReLU(True),
            ]
            hidden //= 2
        layers += [nn.ConvTranspose2d(hidden, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """Map noise of shape ``(B, latent_dim)`` to images ``(B, C, H, W)`` in ``[-1, 1]``."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected z of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        if self.reference_z is None:
            return self.net(z[:, :, None, None])
        both = torch.cat([self.reference_z, z])
        return self.net(both[:, :, None, None])[len(self.reference_z) :]


class DCGANDiscriminator(nn.Module):
    """Image -> logit with strided convolutions, LeakyReLU(0.2) and batch norm.

    The first layer has no batch norm (as in DCGAN); the output is a raw logit per image.

    Args:
        image_shape: Input ``(C, H, W)``; H == W must be one of :data:`SUPPORTED_SIZES`.
        width: Channel count of the first layer; later layers double it per step.
        minibatch: ``(kernels, kernel_dims[, group])`` of a minibatch-discrimination layer on the
            flattened last feature map, followed by a linear logit; None: the plain DCGAN
            ending (a ``base x base`` convolution to one logit).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        width: int = 64,
        minibatch: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        channels, base, steps = _layout(image_shape, width)
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        hidden = width
        for _ in range(steps - 1):
            layers += [
                nn.Conv2d(hidden, hidden * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(hidden * 2),
                nn.LeakyReLU(0.2, True),
            ]
            hidden *= 2
        self.mbd: MinibatchDiscrimination | None = None
        if minibatch is None:
            # A base x base kernel collapses the remaining grid to one logit.
            layers.append(nn.Conv2d(hidden, 1, base, 1, 0))
        else:
            self.mbd = MinibatchDiscrimination(hidden * base * base, *minibatch)
            self.head = nn.Linear(self.mbd.out_features, 1)
        self.net = nn.Sequential(*layers)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"expected images of shape (B, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(x.shape)}"
            )

    def features(self, x: Tensor) -> Tensor:
        """The penultimate activations (the input of the logit layer), flattened: ``(B, F)``."""
        self._check(x)
        if self.mbd is None:
            return self.net[:-1](x).flatten(1)
        return self.mbd(self.net(x).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        """Map images ``(B, C, H, W)`` to logits of shape ``(B,)``."""
        if self.mbd is not None:
            return self.head(self.features(x)).flatten()
        self._check(x)
        return self.net(x).flatten()
