"""`data.name: folder`: a directory of image files, searched recursively.

Every file whose extension Pillow reads (`decode.IMAGE_EXTENSIONS`) is one sample, in the order
of their sorted relative paths; hidden files and folders (names starting with ".") are left out.
`data.image_size` resizes the short side and centre-crops to a square; `data.channels` is 1 or
3 (default: 1 when every image is grayscale). With `data.labels: folders` the class of an image
is the first-level sub-folder it lies in (classes numbered in sorted name order).

The images are decoded once into a uint8 array cached under `data.cache_dir`, keyed by the
file list, each file's size and modification time and the settings: a changed, added or
removed file decodes the folder again, an unchanged folder is memory-mapped without decoding.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from raygan.config.catalog import DataKind
from raygan.data.dataset import Dataset
from raygan.data.sources import Source, register_source
from raygan.data.sources.decode import IMAGE_EXTENSIONS, cached, decode_images
from raygan.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

    from raygan.config.model import DataConfig


def image_files(root: Path) -> list[str]:
    """The sorted relative (POSIX) paths of the image files under `root`.

    Raises:
        DataError: `root` is missing, not a directory or holds no image file.
    """
    if not root.exists():
        raise DataError(f"data.root: {root} does not exist; set it to a directory of images")
    if not root.is_dir():
        raise DataError(f"data.root: {root} is a file, not a directory of images "
                        "(for an .npy/.npz array use data.name: array)")
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [s for s in subfolders if not s.startswith(".")]
        base = Path(folder).relative_to(root)
        found += [(base / f).as_posix() for f in files
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise DataError(f"data.root: no image files under {root} (read: "
                        f"{', '.join(e[1:] for e in IMAGE_EXTENSIONS)})")
    return sorted(found)


def folder_labels(files: list[str], root: Path) -> tuple[np.ndarray, list[str]]:
    """Each file's class (its first-level sub-folder) and the sorted class names.

    Raises:
        DataError: an image lies directly under `root`, or there are fewer than 2 classes.
    """
    top = next((f for f in files if "/" not in f), None)
    if top is not None:
        raise DataError(f"data.labels: {root / top} lies directly under data.root; with "
                        "labels: folders every image must be in a class sub-folder "
                        "(root/<class>/...), or set data.labels: none")
    firsts = [f.split("/", 1)[0] for f in files]
    classes = sorted(set(firsts))
    if len(classes) < 2:
        raise DataError(f"data.labels: found {len(classes)} class sub-folder ({classes[0]}) "
                        f"under {root}; labels: folders needs at least 2, or set "
                        "data.labels: none")
    index = {c: k for k, c in enumerate(classes)}
    return np.asarray([index[f] for f in firsts], dtype=np.int64), classes


def load_folder(cfg: DataConfig, seed: int) -> Dataset:
    """The images under `data.root` as uint8 pixels (see the module docstring).

    Raises:
        DataError: a missing, empty or unreadable folder, mixed sizes without
            `data.image_size`, or bad class sub-folders.
    """
    from PIL import Image

    root = Path(cfg.root).expanduser().absolute()
    files = image_files(root)
    labels, classes = folder_labels(files, root) if cfg.labels == "folders" else (None, [])
    stats = [(root / f).stat() for f in files]
    key = {"source": "folder", "image_size": cfg.image_size, "channels": cfg.channels,
           "labels": cfg.labels,
           "files": [[f, s.st_size, s.st_mtime_ns] for f, s in zip(files, stats)]}

    def open_image(i: int) -> Image.Image:
        return Image.open(root / files[i])

    def build() -> tuple[np.ndarray, dict[str, np.ndarray]]:
        decoded = decode_images(len(files), open_image, lambda i: str(root / files[i]),
                                cfg.image_size, cfg.channels, "data.root", str(root))
        extras = {"classes": np.asarray(classes, dtype=str)}
        if labels is not None:
            extras["labels"] = labels[decoded.kept]
        return decoded.pixels, extras

    pixels, extras = cached(cfg.cache_dir, "folder", key, build, str(root))
    kept_labels = extras.get("labels")
    return Dataset.from_pixels(cfg.name, pixels, kept_labels, 255.0)


def _kind(cfg: DataConfig) -> DataKind:
    return DataKind(cfg.name, "images", cfg.labels == "folders")


register_source(Source(
    "folder", ("root", "image_size", "channels", "labels", "cache_dir"), load_folder, _kind,
    "a directory of image files (PNG, JPEG, WebP, ...), searched recursively"))
