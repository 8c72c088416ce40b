"""Checkpoints: config + version + controller + every cell + RNG states, in one file.

Written atomically (temp file in the same directory, then rename) so a crash mid-write never
leaves a truncated checkpoint; read with `torch.load(weights_only=True)`.

A checkpoint (format 2) is the `torch.save` archive of the payload followed by one line, the
archive's SHA-256 (`_TRAILER`, 80 bytes; zip readers, torch's included, find an archive from
its end and ignore what follows it, so `torch.load` still reads the file as it is). Loading
checks the digest before it unpickles anything, so a byte changed anywhere in the file, in
the weights, the optimizer states or the zip's own records, is a `CheckpointError`, never a
silently different run. Format 1 files (raygan before checksums: no trailer) are still read,
unverified; a format 2 payload without its trailer is damaged.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import IO, Any

import torch

from raygan.atomic import atomic_write
from raygan.config import RunConfig, config_from_saved
from raygan.version import __version__

FORMAT = "raygan-checkpoint"
FORMAT_VERSION = 2
_UNVERIFIED_VERSION = 1  # written before checksums: read as it is
_TRAILER = re.compile(rb"\nraygan-sha256:([0-9a-f]{64})\n")
_TRAILER_SIZE = 80


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


class _Hashing:
    """A binary file that hashes what is written through it (torch.save streams into it, so
    the archive is never held in memory)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def write_checkpoint(handle: IO[bytes], payload: dict[str, Any]) -> None:
    """Write `payload`'s `torch.save` archive, then its SHA-256 line, to `handle`."""
    hashing = _Hashing(handle)
    torch.save(payload, hashing)  # type: ignore[arg-type]  # has what torch.save calls
    handle.write(b"\nraygan-sha256:" + hashing.sha256.hexdigest().encode() + b"\n")


def _digest(handle: IO[bytes], size: int) -> str:
    """SHA-256 of the first `size` bytes of `handle`, read in chunks from its start."""
    sha, left = hashlib.sha256(), size
    handle.seek(0)
    while left > 0:
        chunk = handle.read(min(left, 1 << 22))
        if not chunk:
            break
        sha.update(chunk)
        left -= len(chunk)
    return sha.hexdigest()


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
    atomic_write(path, lambda handle: write_checkpoint(handle, payload))


def load_checkpoint(path: str | Path) -> tuple[RunConfig, dict[str, Any], list[dict[str, Any]]]:
    """Read a checkpoint; returns (config, controller state, cell states).

    Raises:
        FileNotFoundError: when there is no file.
        CheckpointError: one line naming the file, when it is truncated, corrupt (its SHA-256
            does not match), not a raygan checkpoint or of an unknown format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    damaged = f"{path} is truncated or corrupt"
    with path.open("rb") as handle:  # one open file: what is checked is what is loaded
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(size - _TRAILER_SIZE, 0))
        found = _TRAILER.fullmatch(handle.read())
        if found and _digest(handle, size - _TRAILER_SIZE) != found.group(1).decode():
            raise CheckpointError(f"{damaged} (its content does not match the SHA-256 it was "
                                  "saved with)")
        handle.seek(0)
        try:  # torch reads the archive and ignores the line after it
            data = torch.load(handle, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds on a torn zip or pickle
            raise CheckpointError(
                f"{damaged} ({type(exc).__name__}): not a readable raygan checkpoint"
            ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a raygan checkpoint")
    version = data.get("format_version")
    if version == FORMAT_VERSION and not found:
        raise CheckpointError(f"{damaged} (its SHA-256 line is missing or damaged)")
    if version not in (FORMAT_VERSION, _UNVERIFIED_VERSION):
        raise CheckpointError(
            f"{path}: checkpoint format {version} is not supported "
            f"(this raygan {__version__} reads formats {_UNVERIFIED_VERSION} and {FORMAT_VERSION})"
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
