"""Checkpoints: config + version + controller + every cell + RNG states, in one file.

Written atomically (temp file in the same directory, then rename) so a crash mid-write never
leaves a truncated checkpoint; read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from raygan import __version__
from raygan.atomic import atomic_write
from raygan.config import RunConfig, config_from_dict

FORMAT = "raygan-checkpoint"
FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """`torch.save` to a temp file beside `path`, then rename over it."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def make_checkpoint(
    config: RunConfig, controller: dict[str, Any], cells: list[dict[str, Any]]
) -> dict[str, Any]:
    """The checkpoint payload."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "raygan_version": __version__,
        "config": config.to_dict(),
        "controller": controller,
        "cells": cells,
    }


def save_checkpoint(
    path: str | Path, config: RunConfig, controller: dict[str, Any], cells: list[dict[str, Any]]
) -> None:
    """Write a checkpoint atomically."""
    atomic_torch_save(make_checkpoint(config, controller, cells), path)


def load_checkpoint(path: str | Path) -> tuple[RunConfig, dict[str, Any], list[dict[str, Any]]]:
    """Read a checkpoint; returns (config, controller state, cell states).

    Raises:
        FileNotFoundError: when there is no file.
        ValueError: when the file is not a raygan checkpoint of a known version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a raygan checkpoint")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {data.get('format_version')} is not supported "
            f"(this raygan {__version__} reads format {FORMAT_VERSION})"
        )
    return config_from_dict(data["config"]), data["controller"], data["cells"]
