"""Your own images, your own networks, from Python: train on the Ray pool, export, sample.

    python examples/own_images.py [IMAGES] [--out RUN_DIR] [--tiny] [--set KEY=VALUE ...]

IMAGES is a folder of pictures (searched recursively; PNG, JPEG, ...). When it does not exist
the script first fills it with 2,048 synthetic 16x16 pictures (a coloured disc on a dark
background), so the example runs as it is. The generator and discriminator below are plain
PyTorch modules defined in this file: `raygan.train` ships them to the Ray cell actors
(cloudpickled), so nothing has to be importable on the workers. The trained mixture is exported
as one TorchScript file, which `torch.jit.load` opens and samples without raygan.

`--tiny` (or RAYGAN_EXAMPLE_TINY=1) trains for seconds instead of minutes (CI uses it).
`examples/own_images.yaml` is the same run from the command line (examples/README.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.utils import save_image

import raygan

TINY = ["training.generations=2", "training.max_batches=2", "grid.cols=1",
        "metrics.samples=64", "evolution.fitness_sample_size=32", "mixture.samples=32"]
"""Overrides that make the run take seconds (`--tiny`; tests/test_examples.py reuses them)."""


class Generator(nn.Sequential):
    """(N, latent_dim) noise -> (N, C, S, S) images in [-1, 1], for S divisible by 4."""

    def __init__(self, latent_dim: int, data_shape: tuple[int, ...], width: int = 32) -> None:
        channels, side = data_shape[0], data_shape[1] // 4
        super().__init__(
            nn.Linear(latent_dim, 2 * width * side * side), nn.ReLU(),
            nn.Unflatten(1, (2 * width, side, side)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1), nn.Tanh(),
        )


class Discriminator(nn.Sequential):
    """(N, C, S, S) images -> (N, 1) logits (no sigmoid: raygan's losses apply it)."""

    def __init__(self, data_shape: tuple[int, ...], width: int = 32) -> None:
        channels, side = data_shape[0], data_shape[1] // 4
        super().__init__(
            nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * side * side, 1),
        )


def write_images(folder: Path, n: int = 2048, size: int = 16, seed: int = 0) -> None:
    """Fill `folder` with `n` PNG pictures of a coloured disc on a dark background."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    folder.mkdir(parents=True)
    for i in range(n):
        y, x = rng.uniform(4, size - 4, 2)
        disc = (rows - y) ** 2 + (cols - x) ** 2 <= rng.uniform(2, 5) ** 2
        image = np.full((size, size, 3), 20, np.uint8)
        image[disc] = rng.integers(80, 256, 3)
        Image.fromarray(image).save(folder / f"{i:04d}.png")


def main() -> None:
    """Train, export, load the export and sample it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="?", default="results/own_images_data",
                        help="folder of images (written first when it does not exist)")
    parser.add_argument("--out", default="results/own_images",
                        help="the run's folder (must not hold a run yet)")
    parser.add_argument("--tiny", action="store_true",
                        default=os.environ.get("RAYGAN_EXAMPLE_TINY") == "1")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, as raygan train --set does")
    args = parser.parse_args()
    images, out = Path(args.images), Path(args.out)
    if not images.exists():
        write_images(images)

    config = raygan.load_config({
        "name": "own_images",
        "data": {"name": "folder", "root": str(images), "image_size": 16,
                 "sharding": "replicate"},  # every cell trains on every image
        "networks": {"latent_dim": 32},
        "losses": {"generator": ["heuristic"]},
        "grid": {"rows": 2, "cols": 2},
        "evolution": {"lr_mutation": "none"},
        "training": {"generations": 25, "batch_size": 64,
                     "lr_g": 5e-4, "lr_d": 5e-4, "device": "cpu"},
        "metrics": {"every": 5, "samples": 500},
        "resources": {"cpus_per_cell": 0.25},
    }, overrides=(TINY if args.tiny else []) + args.set)
    # the networks are this file's classes: raygan ships them to the Ray actors by value
    result = raygan.train(config, storage=out.parent, name=out.name, backend="ray",
                          generator=Generator, discriminator=Discriminator)
    print(result)
    print(result.history[["generation", "cell", "g_train_loss", "d_train_loss"]].tail(4))

    exported = result.export(out / "mixture.pt")
    mixture = torch.jit.load(str(exported))  # torch alone: no raygan needed from here on
    samples = mixture.sample(64, 0)  # (64, 3, 16, 16) in [-1, 1]
    save_image(samples * 0.5 + 0.5, out / "exported_samples.png", nrow=8)
    print(f"{exported}: sample(64, 0) -> {tuple(samples.shape)} in "
          f"[{samples.min():.2f}, {samples.max():.2f}], drawn to {out / 'exported_samples.png'}")


if __name__ == "__main__":
    main()
