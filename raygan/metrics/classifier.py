"""A small LeNet-style classifier that serves as the feature extractor for image metrics.

FID and inception score need a network that "knows" the data set. For the digit sets a
few-second CNN is far cheaper than Inception and, unlike Inception, needs no download.
Trained models are cached on disk keyed by the data content and the training settings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from raygan.core.networks import reset_parameters
from raygan.data.images import ImageData

# Bump whenever the architecture or training procedure changes, so stale caches are ignored.
CLASSIFIER_VERSION = "lenet-v1"
FEATURE_DIM = 128
# Bytes hashed per data set: enough to tell data sets apart, cheap for 60k images.
_FINGERPRINT_BYTES = 1 << 20


class LeNet(nn.Module):
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

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-draw all weights with PyTorch's default scheme from an explicit generator."""
        reset_parameters(self, generator)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features of shape ``(B, feature_dim)``.

        They are taken before the ReLU: pre-activations have no dead (constant) dimensions,
        which keeps the feature covariance used by FID well conditioned.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of shape ``(B, num_classes)``."""
        return self.head(self.features(x))


@dataclass(frozen=True)
class ClassifierSettings:
    """How the metrics classifier is trained.

    Attributes:
        epochs: Passes over the training part.
        batch_size: Mini-batch size.
        lr: Adam learning rate.
        holdout_fraction: Share of the data kept aside to measure accuracy.
        seed: Seed for the split, initialisation and batch order.
    """

    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    holdout_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0 or self.lr <= 0:
            raise ValueError(f"epochs, batch_size and lr must be positive: {self}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")


def split_indices(n: int, holdout_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded random split of ``range(n)`` into (train, held-out) index tensors."""
    held = max(1, round(n * holdout_fraction))
    if held >= n:
        raise ValueError(f"cannot hold out {held} of {n} images and still train")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[held:], order[:held]


def _check_labelled(data: ImageData) -> None:
    if data.num_classes < 2 or bool((data.labels < 0).any()):
        raise ValueError(
            f"data set {data.name!r} has no class labels, so the LeNet metrics classifier "
            "cannot be trained; use InceptionFID (set metrics.inception_weights) instead"
        )


@torch.no_grad()
def accuracy(model: LeNet, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose predicted class equals ``labels``."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(images[i : i + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == labels[i : i + batch_size]).sum())
    return correct / max(1, len(images))


def train_classifier(
    data: ImageData, settings: ClassifierSettings, device: str = "cpu"
) -> tuple[LeNet, float]:
    """Train a :class:`LeNet` on a seeded split of ``data``.

    Args:
        data: Labelled image data set.
        settings: Training settings.
        device: Torch device to train on.

    Returns:
        The model in eval mode and its accuracy on the held-out part, which is never
        trained on.

    Raises:
        ValueError: When the data set has no labels or is too small to split.
    """
    _check_labelled(data)
    train_idx, held_idx = split_indices(len(data), settings.holdout_fraction, settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    model = LeNet(data.shape[0], data.num_classes)
    model.reset_parameters(generator)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
    # One-cycle reaches high accuracy in a handful of epochs, which keeps training cheap.
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch
    )
    images, labels = data.images[train_idx], data.labels[train_idx]
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(train_idx), generator=generator)
        for i in range(0, len(order), settings.batch_size):
            batch = order[i : i + settings.batch_size]
            logits = model(images[batch].to(device))
            loss = nn.functional.cross_entropy(logits, labels[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    held_accuracy = accuracy(model, data.images[held_idx], data.labels[held_idx])
    return model.eval(), held_accuracy


def data_fingerprint(data: ImageData) -> str:
    """Cheap content hash: shape, dtype and a strided subsample of image and label bytes."""
    digest = hashlib.sha256()
    digest.update(f"{data.name}|{tuple(data.images.shape)}|{data.images.dtype}".encode())
    flat = data.images.detach().cpu().contiguous().view(-1)
    stride = max(1, flat.numel() * flat.element_size() // _FINGERPRINT_BYTES)
    digest.update(flat[::stride].numpy().tobytes())
    digest.update(data.labels.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def classifier_cache_key(data: ImageData, settings: ClassifierSettings) -> str:
    """Key identifying a trained classifier: data content, settings and code version."""
    payload = json.dumps(
        {
            "data": data_fingerprint(data),
            "settings": asdict(settings),
            "version": CLASSIFIER_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def atomic_write(path: Path, write: Callable[[Any], None], suffix: str = ".tmp") -> None:
    """Write a file via a temporary sibling and ``os.replace``, so readers never see a torn file.

    Args:
        path: Destination file.
        write: Called with an open binary file object to write the contents.
        suffix: Suffix of the temporary file (some writers care about it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_train_classifier(
    data: ImageData, settings: ClassifierSettings, cache_dir: str | Path, device: str = "cpu"
) -> tuple[LeNet, float]:
    """Return a trained classifier, loading it from ``cache_dir`` when one was saved before.

    Args:
        data: Labelled image data set.
        settings: Training settings (part of the cache key).
        cache_dir: Directory of cached classifiers; created when missing.
        device: Torch device for the returned model.

    Returns:
        The model in eval mode and its held-out accuracy.
    """
    path = Path(cache_dir) / f"classifier-{data.name}-{classifier_cache_key(data, settings)}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model = LeNet(**saved["arch"])
            model.load_state_dict(saved["state_dict"])
            return model.to(device).eval(), float(saved["accuracy"])
        except (RuntimeError, KeyError, TypeError, EOFError, ValueError):
            pass  # an unreadable cache entry is simply rebuilt below
    model, held_accuracy = train_classifier(data, settings, device)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    record = {"state_dict": state, "accuracy": held_accuracy, "arch": model.arch_args()}
    atomic_write(path, lambda handle: torch.save(record, handle))
    return model, held_accuracy
