"""Atomic file writes: readers see the old file or the new one, never a torn one.

Every file raygan writes that another process may read while it is written (checkpoints,
histories, caches, figures, reports, JSON lines) goes through `atomic_write`.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

from raygan.errors import StorageError


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object],
                 suffix: str = ".tmp") -> Path:
    """Write `path` through a temporary sibling, flushed to disk, then `os.replace` it.

    On any error (or interrupt) the temporary file is removed and `path` is left as it was.

    Args:
        path: destination file; its folder is created if missing.
        write: called once with the open binary temporary file.
        suffix: the temporary file's suffix (for writers that look at it).

    Returns:
        `path` as a `Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
    # mode 0o666 less the umask, as open() gives; mkstemp's 0o600 made plain runs' files
    # unreadable to the group that reads Tune's
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def probe_writable(folder: str | Path) -> Path:
    """Check that files can be written in `folder` (or, while it does not exist, in its nearest
    existing parent, where it would be created) by writing and removing one, so that a full,
    read-only or forbidden place fails before any work starts, with one line. Nothing is left
    behind.

    Raises:
        StorageError: naming the folder and the operating system's reason.
    """
    folder = Path(folder).expanduser().absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(existing))
        atomic_write(existing / ".raygan-write-probe", lambda handle: handle.write(b"ok")).unlink()
    except OSError as exc:
        raise StorageError(exc.errno or 0, exc.strerror or str(exc), str(folder)) from None
    return folder


MIN_FREE_BYTES = 1 << 20
"""Room kept free beyond a checkpoint's size for the logs, figures and experiment state that
are written beside it."""


def check_free_space(folder: str | Path, needed: int) -> None:
    """Refuse to go on where `folder`'s disk has less than `needed` + `MIN_FREE_BYTES` free.

    A copy that runs out of space mid-file leaves a torn file behind (Tune's uploads of
    checkpoints and of its experiment state are not atomic); stopping before the disk is full
    keeps the last good ones, and the run resumes once there is room.

    Raises:
        StorageError: ENOSPC naming `folder`, the room needed and the room free.
    """
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < needed + MIN_FREE_BYTES:
        raise StorageError(
            errno.ENOSPC,
            f"No space left on device for the next checkpoint ({free / 2**20:.1f} MiB free, "
            f"{(needed + MIN_FREE_BYTES) / 2**20:.1f} MiB needed); the last checkpoint is kept: "
            "free some space, then `raygan resume` the run",
            str(folder),
        )
