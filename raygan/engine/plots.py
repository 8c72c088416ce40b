"""PNG figures of samples (matplotlib, headless)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from raygan.atomic import atomic_write  # noqa: E402


def plot_toy_samples(
    path: str | Path,
    samples: Tensor,
    real: Tensor,
    modes: np.ndarray | None,
    title: str = "",
) -> None:
    """Scatter of generated points over real points, with the modes marked (toy mixtures).

    Vectors of more than two dimensions are shown on the real data's first two principal
    axes, the view in which the real data spreads most.
    """
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    r = real.detach().cpu().double().numpy()
    s = samples.detach().cpu().double().numpy()
    if r.shape[1] > 2:
        centre = r.mean(axis=0)
        axes = np.linalg.svd(r - centre, full_matrices=False)[2][:2].T
        r, s = (r - centre) @ axes, (s - centre) @ axes
        ax.set_xlabel("principal axis 1 of the real data")
        ax.set_ylabel("principal axis 2")
    ax.scatter(r[:, 0], r[:, 1], s=2, c="0.7", label="real")
    ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:blue", alpha=0.6, label="generated")
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="tab:red", s=30, label="modes")
        span = float(np.abs(modes).max()) * 1.5 + 0.1
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
        ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def image_grid(images: Tensor, nrow: int | None = None) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (rows*H, cols*W, C) array in [0, 1]."""
    x = images.detach().cpu().float().clamp(-1, 1).add(1).div(2).numpy()
    n, c, h, w = x.shape
    cols = nrow or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, c), dtype=np.float32)
    for k in range(n):
        r, col = divmod(k, cols)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w] = x[
            k
        ].transpose(1, 2, 0)
    return grid


def _show_grid(ax: plt.Axes, images: Tensor) -> None:
    grid = image_grid(images)
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
    ax.axis("off")


def plot_image_samples(path: str | Path, images: Tensor, title: str = "") -> None:
    """A grid of image samples."""
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    _show_grid(ax, images)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_cell_grid(
    path: str | Path, images: list[Tensor], rows: int, cols: int, title: str = ""
) -> None:
    """Each cell's samples as a small image grid, laid out as the cells sit on the torus."""
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.2 * cols, 2.2 * rows + 0.4), dpi=100, squeeze=False
    )
    for i, imgs in enumerate(images):
        ax = axes[i // cols][i % cols]
        _show_grid(ax, imgs)
        ax.set_title(f"cell {i}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_heatmap(path: str | Path, values: np.ndarray, label: str, title: str = "") -> None:
    """Per-cell values (rows x cols) as an annotated heatmap."""
    fig, ax = plt.subplots(figsize=(1.2 * values.shape[1] + 2, 1.2 * values.shape[0] + 1), dpi=100)
    im = ax.imshow(values, cmap="viridis_r")
    for (r, c), v in np.ndenumerate(values):
        ax.text(
            c,
            r,
            f"{r * values.shape[1] + c}\n{v:.3g}",
            ha="center",
            va="center",
            fontsize=8,
            color="w",
        )
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    fig.colorbar(im, ax=ax, label=label)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> None:
    try:
        atomic_write(path, lambda handle: fig.savefig(handle, format="png"), suffix=".png")
    finally:
        plt.close(fig)
