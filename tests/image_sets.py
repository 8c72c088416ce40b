"""Built-in image sets as float images (`ImageData`) for tests, through a run's own path: the
uint8 arrays of `load_image_arrays` held as a `Dataset`, every row converted as a batch is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from raygan.data import Dataset
from raygan.data.images import ImageData, load_image_arrays


def image_data(name: str, root: str | Path = "./data", download: bool = False,
               image_size: int | None = None, train: bool = True) -> ImageData:
    """Every image of a built-in set in [-1, 1] (arguments as for `load_image_arrays`)."""
    arrays = load_image_arrays(name, root, download, image_size, train)
    dataset = Dataset.from_pixels(name, arrays.pixels, arrays.labels, arrays.max_value)
    idx = np.arange(len(dataset))
    labels = torch.from_numpy(dataset.label_array(idx))
    return ImageData(dataset.take(idx), labels, name, dataset.num_classes)


def as_dataset(data: ImageData) -> Dataset:
    """Float images as a `Dataset` that stores them as they are (scale 1, shift 0)."""
    labels = data.labels.numpy() if data.num_classes else None
    return Dataset(data.name, data.images.numpy(), labels, num_classes=data.num_classes)
