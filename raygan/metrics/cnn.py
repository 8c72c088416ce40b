"""The networks of the metrics classifiers (trained in `raygan.metrics.classifier`).

- `ReferenceCNN`: the reference protocol's network (conv 10 - conv 20 - fc 50 - fc K, whose K
  class logits are the FID features), on 28x28 input; smaller images are resized up to it.
- `WideCNN`: the same role (class logits as features) for images larger than 28x28, colour
  photographs at 32x32 and 64x64 in particular, which the reference network could only see
  resized down to 28x28: one conv stage per halving down to 4x4.
- `LeNet`: a wider network with 128-d features for any size (raygan's older `fid_lenet`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from raygan.core.init import reset_parameters

FEATURE_DIM = 128


class _ImageClassifier(nn.Module):
    """What every metrics classifier shares: explicit-generator weights and an input check."""

    in_channels: int

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-draw all weights with PyTorch's default scheme from an explicit generator."""
        reset_parameters(self, generator)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )


class LeNet(_ImageClassifier):
    """Two conv blocks plus two fully connected layers, for any supported input size.

    Adaptive pooling to a fixed 4x4 grid lets one architecture serve 8x8, 28x28, 32x32 and
    64x64 inputs with 1 or 3 channels.

    Args:
        in_channels: Number of image channels (1 or 3).
        num_classes: Number of output classes.
        feature_dim: Size of the penultimate feature vector.
    """

    def __init__(self, in_channels: int, num_classes: int, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"LeNet supports 1 or 3 input channels, got {in_channels}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if feature_dim <= 0:
            raise ValueError(f"feature_dim must be positive, got {feature_dim}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2),
            nn.ReLU(True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(True),
            nn.AdaptiveMaxPool2d(4),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, feature_dim),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(feature_dim, num_classes))

    def arch_args(self) -> dict[str, int]:
        """Return the constructor arguments, stored with cached weights to rebuild the model."""
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
        }

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features of shape ``(B, feature_dim)``.

        They are taken before the ReLU: pre-activations have no dead (constant) dimensions,
        which keeps the feature covariance used by FID well conditioned.
        """
        self._check(x)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of shape ``(B, num_classes)``."""
        return self.head(self.features(x))


class ReferenceCNN(_ImageClassifier):
    """The reference protocol's classifier: conv 10 - conv 20 - fc 50 - fc K, on 28x28 input.

    Lipizzaner and Mustangs score MNIST with this network (its FID features are the K class
    logits). Inputs of another size are resized to 28x28 first, so the architecture is the
    same for 8x8 digits and 32x32 images.

    Args:
        in_channels: Number of image channels (1 or 3).
        num_classes: Number of output classes.
    """

    INPUT_SIZE = 28

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"ReferenceCNN supports 1 or 3 input channels, got {in_channels}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.feature_dim = num_classes
        self.conv1 = nn.Conv2d(in_channels, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(320, 50)
        self.fc1_drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(50, num_classes)

    def arch_args(self) -> dict[str, int]:
        """Return the constructor arguments, stored with cached weights to rebuild the model."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes}

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of shape ``(B, num_classes)``."""
        self._check(x)
        if tuple(x.shape[-2:]) != (self.INPUT_SIZE, self.INPUT_SIZE):
            x = nn.functional.interpolate(
                x, size=(self.INPUT_SIZE, self.INPUT_SIZE), mode="bilinear", align_corners=False
            )
        x = nn.functional.relu(max_pool2(self.conv1(x)))
        x = nn.functional.relu(max_pool2(self.conv2_drop(self.conv2(x))))
        x = self.fc1_drop(nn.functional.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)

    def features(self, x: Tensor) -> Tensor:
        """The FID features of the reference protocol: the class logits."""
        return self.forward(x)

    def head(self, features: Tensor) -> Tensor:
        """Class logits from `features` (which already are the logits)."""
        return features


def max_pool2(x: Tensor) -> Tensor:
    """2x2 max pooling with stride 2 of even-sized maps, equal to `max_pool2d(x, 2)`.

    Three element-wise maxima of strided views: on the CPU six times faster than
    `max_pool2d` on these small maps, which made up two thirds of the mixture ES's FID time.
    """
    return torch.maximum(
        torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]),
        torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]),
    )


class WideCNN(_ImageClassifier):
    """The reference protocol's classifier role for images larger than 28x28.

    Stages of conv 3x3 - batch norm - ReLU - 2x2 max pool with 16, 32, 64, 64 channels, one
    per halving of the image side down to 4x4 (32x32: three stages, 64x64: four), then
    fc 128 - fc K with dropout. Like `ReferenceCNN`, its FID features are the K class logits.

    Args:
        in_channels: Number of image channels (1 or 3).
        num_classes: Number of output classes.
        image_size: Side of the (square) input images, at least 8.
    """

    WIDTHS = (16, 32, 64, 64)

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"WideCNN supports 1 or 3 input channels, got {in_channels}")
        if num_classes < 2 or image_size < 8:
            raise ValueError(f"need num_classes >= 2 and image_size >= 8, got {num_classes} "
                             f"and {image_size}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = image_size
        self.feature_dim = num_classes
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for width in self.WIDTHS:
            if side <= 4:
                break
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width),
                       nn.ReLU(), nn.MaxPool2d(2)]
            channels, side = width, side // 2
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                  nn.Dropout(0.3), nn.Linear(channels * 16, 128), nn.ReLU(),
                                  nn.Dropout(0.3), nn.Linear(128, num_classes))

    def arch_args(self) -> dict[str, int]:
        """Return the constructor arguments, stored with cached weights to rebuild the model."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes,
                "image_size": self.image_size}

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of shape ``(B, num_classes)``."""
        self._check(x)
        return self.body(x)

    def features(self, x: Tensor) -> Tensor:
        """The FID features: the class logits, as the reference protocol's."""
        return self.forward(x)

    def head(self, features: Tensor) -> Tensor:
        """Class logits from `features` (which already are the logits)."""
        return features


Classifier = LeNet | ReferenceCNN | WideCNN
ARCHITECTURES: dict[str, type[LeNet] | type[ReferenceCNN] | type[WideCNN]] = {
    "lenet": LeNet,
    "reference": ReferenceCNN,
    "wide": WideCNN,
}
"""The classifier architectures by name (the name is part of the classifier's cache key)."""


def architecture_for(family: str, shape: tuple[int, ...]) -> str:
    """The architecture a classifier family trains on images of `shape` (C, H, W): the
    `reference` family's is `ReferenceCNN` up to 28x28 and `WideCNN` above."""
    if family == "reference" and max(shape[1:]) > ReferenceCNN.INPUT_SIZE:
        return "wide"
    return family


def build_classifier(arch: str, shape: tuple[int, ...], num_classes: int) -> Classifier:
    """A fresh classifier of architecture `arch` for images of `shape` (C, H, W)."""
    if arch == "wide":
        return WideCNN(shape[0], num_classes, max(shape[1:]))
    return ARCHITECTURES[arch](shape[0], num_classes)  # type: ignore[call-arg]
