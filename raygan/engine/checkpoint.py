"""Checkpoints: config + version + controller + every cell + RNG states, in one file.

Written atomically (temp file in the same directory, then rename) so a crash mid-write never
leaves a truncated checkpoint; read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from raygan import __version__
from raygan.atomic import atomic_write
from raygan.config import RunConfig, config_from_saved

FORMAT = "raygan-checkpoint"
FORMAT_VERSION = 1


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


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: truncated, corrupt, or not raygan's."""


def previous_of(path: str | Path) -> Path:
    """Where `save_checkpoint(..., keep_previous=True)` keeps the checkpoint it replaced."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def checkpoint_exists(path: str | Path) -> bool:
    """Whether `path` or the previous checkpoint kept beside it is there to resume from."""
    return Path(path).is_file() or previous_of(path).is_file()


def save_checkpoint(
    path: str | Path, config: RunConfig, controller: dict[str, Any], cells: list[dict[str, Any]],
    keep_previous: bool = False,
) -> None:
    """Write a checkpoint atomically; with `keep_previous`, first move the one it replaces to
    `previous_of(path)`, so a checkpoint damaged later still leaves a good one."""
    path = Path(path)
    if keep_previous and path.is_file():
        os.replace(path, previous_of(path))
    payload = make_checkpoint(config, controller, cells)
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | Path) -> tuple[RunConfig, dict[str, Any], list[dict[str, Any]]]:
    """Read a checkpoint; returns (config, controller state, cell states).

    Raises:
        FileNotFoundError: when there is no file.
        CheckpointError: one line naming the file, when it is truncated, corrupt or not a
            raygan checkpoint.
        ValueError: when it is a raygan checkpoint of an unknown format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds on a torn zip or pickle
        raise CheckpointError(
            f"{path} is truncated or corrupt ({type(exc).__name__}); it cannot be resumed from"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a raygan checkpoint")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {data.get('format_version')} is not supported "
            f"(this raygan {__version__} reads format {FORMAT_VERSION})"
        )
    return config_from_saved(data["config"]), data["controller"], data["cells"]


def load_checkpoint_or_previous(
    path: str | Path,
) -> tuple[tuple[RunConfig, dict[str, Any], list[dict[str, Any]]], str | None]:
    """`load_checkpoint(path)`, or, if that file is missing or damaged, the previous one kept by
    `save_checkpoint(..., keep_previous=True)`.

    Returns:
        The loaded checkpoint and a one-line note when it fell back (None otherwise).

    Raises:
        FileNotFoundError, CheckpointError: `path`'s own error when there is no previous
            checkpoint, the previous one's when it is damaged too.
    """
    try:
        return load_checkpoint(path), None
    except (FileNotFoundError, CheckpointError) as exc:
        previous = previous_of(path)
        if not previous.is_file():
            raise
        loaded = load_checkpoint(previous)
        generation = loaded[1].get("generation", "?")
        return loaded, f"{exc}; resuming from {previous} (generation {generation})"
