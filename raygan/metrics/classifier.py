"""The classifiers that serve as feature extractors for image metrics, trained by us.

FID and inception score need a network that "knows" the data set. For the digit sets a
few-second CNN is far cheaper than Inception and, unlike Inception, needs no download.
`ReferenceCNN` is the reference protocol's network (conv 10 - conv 20 - fc 50 - fc 10, whose
10 class logits are the FID features); `LeNet` is a wider one with 128-d features. Trained
models are cached on disk keyed by the architecture, the data content and the settings.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from raygan.atomic import atomic_write
from raygan.core.networks import reset_parameters
from raygan.data.images import ImageData

# Bump whenever an architecture or the training procedure changes, so stale caches are ignored.
CLASSIFIER_VERSION = "classifier-v3"
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


class ReferenceCNN(nn.Module):
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

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-draw all weights with PyTorch's default scheme from an explicit generator."""
        reset_parameters(self, generator)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of shape ``(B, num_classes)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
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


Classifier = LeNet | ReferenceCNN
ARCHITECTURES: dict[str, type[LeNet] | type[ReferenceCNN]] = {
    "lenet": LeNet,
    "reference": ReferenceCNN,
}


@dataclass(frozen=True)
class ClassifierSettings:
    """How the metrics classifier is trained.

    Attributes:
        epochs: Passes over the training part.
        batch_size: Mini-batch size.
        lr: Adam learning rate.
        holdout_fraction: Share of the data kept aside to measure accuracy.
        seed: Seed for the split, initialisation and batch order.
        shift: Training augmentation: random translations of up to ``shift`` pixels per 28
            pixels of image side (at least one pixel when > 0; 0 turns it off).
    """

    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    holdout_fraction: float = 0.1
    seed: int = 0
    shift: int = 0

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0 or self.lr <= 0 or self.shift < 0:
            raise ValueError(f"epochs, batch_size and lr must be positive, shift >= 0: {self}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")


DEFAULT_SETTINGS: dict[str, ClassifierSettings] = {
    "lenet": ClassifierSettings(),
    # the tiny reference network needs more passes; shifts of 2 px take MNIST-5k's held-out
    # accuracy from 98.0 % to 99.2 % at 30 epochs (about 15 s on 2 cores)
    "reference": ClassifierSettings(epochs=30, lr=3e-3, shift=2),
}
"""Training settings of each architecture's metrics classifier."""


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
            f"data set {data.name!r} has no class labels, so no metrics classifier "
            "can be trained on it; use fid_inception (set metrics.inception_weights) instead"
        )


def random_shift(images: Tensor, pixels: int, generator: torch.Generator) -> Tensor:
    """Each image translated by its own random offset in ``[-pixels, pixels]`` on both axes.

    The border is filled with -1 (the background of images scaled to [-1, 1]).
    """
    if pixels == 0:
        return images
    n, _, h, w = images.shape
    padded = nn.functional.pad(images, (pixels,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator)
    rows = offsets[:, 0, None] + torch.arange(h)  # (n, h)
    cols = offsets[:, 1, None] + torch.arange(w)  # (n, w)
    batch = torch.arange(n)[:, None, None]
    # advanced indexing over (image, row, col) picks each image's own window
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(
        0, 3, 1, 2
    )


@torch.no_grad()
def accuracy(model: Classifier, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose predicted class equals ``labels``."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(images[i : i + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == labels[i : i + batch_size]).sum())
    return correct / max(1, len(images))


def train_classifier(
    data: ImageData, settings: ClassifierSettings, device: str = "cpu", arch: str = "lenet"
) -> tuple[Classifier, float]:
    """Train a classifier (:data:`ARCHITECTURES`) on a seeded split of ``data``.

    Args:
        data: Labelled image data set.
        settings: Training settings.
        device: Torch device to train on.
        arch: ``"lenet"`` or ``"reference"``.

    Returns:
        The model in eval mode and its accuracy on the held-out part, which is never
        trained on.

    Raises:
        ValueError: When the data set has no labels or is too small to split.
    """
    _check_labelled(data)
    train_idx, held_idx = split_indices(len(data), settings.holdout_fraction, settings.seed)
    # Construction and dropout draw from torch's global generator: fork it and seed it so the
    # classifier (and every FID on it) does not depend on what the caller did before, and the
    # caller's stream is left untouched.
    cuda = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(settings.seed)
        generator = torch.Generator().manual_seed(settings.seed)
        model = ARCHITECTURES[arch](data.shape[0], data.num_classes)
        model.reset_parameters(generator)
        shift = 0 if settings.shift == 0 else max(1, round(settings.shift * data.shape[1] / 28))
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
                logits = model(random_shift(images[batch], shift, generator).to(device))
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


def classifier_cache_key(
    data: ImageData, settings: ClassifierSettings, arch: str = "lenet"
) -> str:
    """Key identifying a trained classifier: architecture, data content, settings, version."""
    payload = json.dumps(
        {
            "arch": arch,
            "data": data_fingerprint(data),
            "settings": asdict(settings),
            "version": CLASSIFIER_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def load_or_train_classifier(
    data: ImageData,
    settings: ClassifierSettings,
    cache_dir: str | Path,
    device: str = "cpu",
    arch: str = "lenet",
) -> tuple[Classifier, float]:
    """Return a trained classifier, loading it from ``cache_dir`` when one was saved before.

    Args:
        data: Labelled image data set.
        settings: Training settings (part of the cache key).
        cache_dir: Directory of cached classifiers; created when missing.
        device: Torch device for the returned model.
        arch: ``"lenet"`` or ``"reference"`` (part of the cache key).

    Returns:
        The model in eval mode and its held-out accuracy (stored with the cached weights).
    """
    key = classifier_cache_key(data, settings, arch)
    path = Path(cache_dir) / f"classifier-{arch}-{data.name}-{key}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model = ARCHITECTURES[arch](**saved["arch"])
            model.load_state_dict(saved["state_dict"])
            return model.to(device).eval(), float(saved["accuracy"])
        except (RuntimeError, KeyError, TypeError, EOFError, ValueError):
            pass  # an unreadable cache entry is simply rebuilt below
    model, held_accuracy = train_classifier(data, settings, device, arch)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    record = {"state_dict": state, "accuracy": held_accuracy, "arch": model.arch_args()}
    atomic_write(path, lambda handle: torch.save(record, handle))
    return model, held_accuracy
