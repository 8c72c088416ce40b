"""Atomic file writes: readers see the old file or the new one, never a torn one.

Every file raygan writes that another process may read while it is written (checkpoints,
histories, caches, figures, reports, JSON lines) goes through `atomic_write`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
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
