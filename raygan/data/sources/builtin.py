"""The built-in data sets as sources: the 2-D Gaussian mixtures and the named image sets.

`ring8`/`grid25` are generated from the run seed (every process gets the same points);
`mnist5k` and `digits8x8` ship with installed packages; `mnist`, `fashion_mnist`, `cifar10` and
`celeba` are read through torchvision from `data.root` (`data.download` fetches them online).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from raygan.config.catalog import BUILTIN_IMAGE_DATASETS, TOY_DATASETS, DataKind, builtin_kind
from raygan.data.dataset import Dataset
from raygan.data.sources import Source, register_source

if TYPE_CHECKING:
    from raygan.config.model import DataConfig


def _kind(cfg: DataConfig) -> DataKind:
    kind = builtin_kind(cfg.name)
    assert kind is not None
    return kind


def load_toy(cfg: DataConfig, seed: int) -> Dataset:
    """A toy mixture's `data.samples` points, generated from `seed`."""
    from raygan.data.toy import default_std, sample_mixture, toy_modes

    modes = toy_modes(cfg.name, cfg.radius)
    std = cfg.std if cfg.std is not None else default_std(cfg.name)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x70F]))
    points = sample_mixture(modes, std, cfg.samples, rng).numpy()
    return Dataset(cfg.name, points, modes=modes, std=std)


def load_builtin_images(cfg: DataConfig, seed: int) -> Dataset:
    """A named image set as uint8 pixels (see `raygan.data.images`). CelebA's 200,000 JPEGs
    are decoded once and cached under `data.cache_dir` like an image folder."""
    from raygan.data.images import load_image_arrays

    kind = _kind(cfg)
    if cfg.name == "celeba":
        return Dataset.from_pixels(cfg.name, _celeba_pixels(cfg), None, natural=True)
    arrays = load_image_arrays(cfg.name, cfg.root, cfg.download, cfg.image_size)
    return Dataset.from_pixels(cfg.name, arrays.pixels, arrays.labels, arrays.max_value,
                               natural=kind.natural)


def _celeba_pixels(cfg: DataConfig) -> np.ndarray:
    from raygan.data.images import check_image_dataset, load_image_arrays
    from raygan.data.sources.decode import cached

    check_image_dataset(cfg.name, cfg.root, cfg.download)  # the files, before keying on them
    root = Path(cfg.root).expanduser().resolve() / "celeba"
    images = root / "img_align_celeba"
    key = {"source": "celeba", "root": str(root), "image_size": cfg.image_size,
           "images": images.stat().st_mtime_ns,
           "split": [(root / "list_eval_partition.txt").stat().st_mtime_ns]}
    pixels, _ = cached(cfg.cache_dir, "celeba", key, lambda: (load_image_arrays(
        cfg.name, cfg.root, cfg.download, cfg.image_size).pixels, {}), str(images))
    return pixels


for _name in TOY_DATASETS:
    register_source(Source(_name, ("samples", "std", "radius"), load_toy, _kind,
                           "a 2-D Gaussian mixture (PacGAN/VEEGAN benchmark)"))
for _name in BUILTIN_IMAGE_DATASETS:
    _keys = ("root", "download", "image_size", *(("cache_dir",) if _name == "celeba" else ()))
    register_source(Source(_name, _keys, load_builtin_images, _kind, "a built-in image set"))
