"""2-D Gaussian mixtures of the PacGAN/VEEGAN benchmarks: a ring of 8 and a grid of 25."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

RING8_STD = 0.01
GRID25_STD = 0.05


def ring_modes(n_modes: int = 8, radius: float = 1.0) -> np.ndarray:
    """Means of `n_modes` Gaussians evenly spaced on a circle, shape (n_modes, 2)."""
    angles = 2 * math.pi * np.arange(n_modes) / n_modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_modes(side: int = 5, spacing: float = 2.0) -> np.ndarray:
    """Means on a `side x side` lattice centred at 0 ({-4,-2,0,2,4}^2 by default)."""
    coords = (np.arange(side) - (side - 1) / 2) * spacing
    xx, yy = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def toy_modes(name: str, radius: float = 1.0) -> np.ndarray:
    """Mode means of a named toy data set ("ring8" or "grid25")."""
    if name == "ring8":
        return ring_modes(8, radius)
    if name == "grid25":
        return grid_modes(5, 2.0)
    raise ValueError(f"unknown toy data set {name!r}; allowed: ring8, grid25")


def default_std(name: str) -> float:
    """PacGAN's standard deviation for the named data set."""
    return RING8_STD if name == "ring8" else GRID25_STD


def sample_mixture(modes: np.ndarray, std: float, n: int, rng: np.random.Generator) -> Tensor:
    """`n` points from an equal-weight isotropic Gaussian mixture, float32 (n, 2)."""
    which = rng.integers(len(modes), size=n)
    points = modes[which] + rng.normal(0.0, std, size=(n, 2))
    return torch.from_numpy(points.astype(np.float32))
