"""The classifiers that serve as feature extractors for image metrics, trained by us.

FID and inception score need a network that "knows" the data set. For the digit sets a
few-second CNN is far cheaper than Inception and, unlike Inception, needs no download.
`ReferenceCNN` is the reference protocol's network (conv 10 - conv 20 - fc 50 - fc 10, whose
10 class logits are the FID features), `WideCNN` takes its place for images larger than 28x28,
and `LeNet` is a wider one with 128-d features (the networks live in `raygan.metrics.cnn`).
A classifier trains on at most `CLASSIFIER_MAX_IMAGES` images of the data set (a float copy
made only while it trains). Trained models are cached on disk keyed by the architecture, the
data content and the settings; the reference classifiers of the built-in labelled sets are
shipped with raygan instead (`raygan.metrics.shipped`), so their FIDs are the same everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from raygan.atomic import atomic_write
from raygan.data.dataset import Dataset
from raygan.data.images import ImageData
from raygan.metrics.cnn import (
    ARCHITECTURES,
    FEATURE_DIM,
    Classifier,
    LeNet,
    ReferenceCNN,
    WideCNN,
    architecture_for,
    build_classifier,
    max_pool2,
)
from raygan.metrics.shipped import load_shipped_classifier

__all__ = [
    "ARCHITECTURES", "FEATURE_DIM", "Classifier", "LeNet", "ReferenceCNN", "WideCNN",
    "architecture_for", "build_classifier", "max_pool2",
]

# Bump whenever an architecture or the training procedure changes, so stale caches are ignored.
CLASSIFIER_VERSION = "classifier-v3"
# Bytes hashed per data set: enough to tell data sets apart, cheap for 60k images.
_FINGERPRINT_BYTES = 1 << 20
CLASSIFIER_MAX_IMAGES = 60_000
"""Images a metrics classifier trains on at most: all of MNIST, Fashion-MNIST and CIFAR-10
(so their classifiers are those trained on the whole set), a seeded subset of larger sets."""
CLASSIFIER_MAX_BYTES = 1 << 30
"""Bytes of float32 images a metrics classifier trains on at most (64x64 colour: 21,845)."""
CLASSIFIER_SUBSET_SEED = 0


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
    # the tiny reference network needs more passes and shifts of 2 px: MNIST-5k's held-out
    # accuracy is 98.6 % at 30 epochs (about 37 s on one thread; the shipped classifier)
    "reference": ClassifierSettings(epochs=30, lr=3e-3, shift=2),
    "wide": ClassifierSettings(epochs=15, lr=3e-3, shift=2),
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
        arch: a name in :data:`ARCHITECTURES` (``"lenet"``, ``"reference"``, ``"wide"``).

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
        model = build_classifier(arch, data.shape, data.num_classes)
        model.reset_parameters(generator)
        shift = 0 if settings.shift == 0 else max(1, round(settings.shift * data.shape[1] / 28))
        model.to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
        # One-cycle reaches high accuracy in a handful of epochs, which keeps training cheap.
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch
        )
        model.train()
        for _ in range(settings.epochs):
            order = torch.randperm(len(train_idx), generator=generator)
            for i in range(0, len(order), settings.batch_size):
                # gathered per batch: no second copy of the training images
                batch = train_idx[order[i : i + settings.batch_size]]
                logits = model(random_shift(data.images[batch], shift, generator).to(device))
                loss = nn.functional.cross_entropy(logits, data.labels[batch].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    held_accuracy = accuracy(model, data.images[held_idx], data.labels[held_idx])
    return model.eval(), held_accuracy


def data_fingerprint(data: ImageData | Dataset) -> str:
    """Cheap content hash: shape, dtype and a strided subsample of image and label bytes.

    A `Dataset` hashes to the same digest as the `ImageData` of its float images: the strided
    elements are converted from the stored form, so no float copy of the set is made.
    """
    digest = hashlib.sha256()
    if isinstance(data, ImageData):
        shape, numel = tuple(data.images.shape), data.images.numel()
        labels = data.labels.detach().cpu().contiguous().numpy()
    else:
        shape, numel = (len(data), *data.sample_shape), data.store.size
        labels = data.label_array(np.arange(len(data)))
    digest.update(f"{data.name}|{shape}|{torch.float32}".encode())
    stride = max(1, numel * 4 // _FINGERPRINT_BYTES)  # 4: bytes of a float32 element
    if isinstance(data, ImageData):
        picked = data.images.detach().cpu().contiguous().view(-1)[::stride]
    else:
        flat = torch.from_numpy(np.ascontiguousarray(data.store.reshape(-1)[::stride]))
        picked = flat.to(torch.float32) * data.scale + data.shift
    digest.update(picked.numpy().tobytes())
    digest.update(labels.tobytes())
    return digest.hexdigest()


def classifier_subset(n: int, sample_shape: tuple[int, ...]) -> np.ndarray:
    """Indices of the images a metrics classifier trains on: all of them in order when they fit
    `CLASSIFIER_MAX_IMAGES` and `CLASSIFIER_MAX_BYTES`, else a seeded sorted random subset."""
    per_image = 4 * math.prod(sample_shape)
    cap = max(2, min(CLASSIFIER_MAX_IMAGES, CLASSIFIER_MAX_BYTES // per_image))
    if n <= cap:
        return np.arange(n)
    rng = np.random.default_rng(CLASSIFIER_SUBSET_SEED)
    return np.sort(rng.choice(n, cap, replace=False))


def classifier_data(dataset: Dataset) -> ImageData:
    """The float images (of `classifier_subset`) a metrics classifier trains on.

    Labels are -1 for a set without labels (which `train_classifier` refuses).
    """
    idx = classifier_subset(len(dataset), dataset.sample_shape)
    labels = torch.from_numpy(dataset.label_array(idx))
    classes = dataset.num_classes or (int(labels.max()) + 1 if dataset.labels is not None else 0)
    return ImageData(dataset.take(idx).contiguous(), labels, dataset.name, classes)


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
        arch: a name in :data:`ARCHITECTURES` (part of the cache key).

    Returns:
        The model in eval mode and its held-out accuracy (stored with the cached weights).
        A classifier shipped with raygan for this key (`raygan.metrics.shipped`) is loaded
        instead of training one, with the accuracy its manifest records.

    Raises:
        ShippedFileError: when the shipped classifier for this key fails its sha256 check.
    """
    key = classifier_cache_key(data, settings, arch)
    shipped = load_shipped_classifier(key, device)
    if shipped is not None:
        return shipped
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
