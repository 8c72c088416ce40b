"""raygan.atomic: a failed write leaves the old file and no temporary file behind."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import pytest

from raygan.atomic import atomic_write, atomic_write_text


def test_write_replaces_the_file_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]


def test_a_failing_writer_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    atomic_write(path, lambda handle: handle.write(b"good"))

    def torn(handle: IO[bytes]) -> None:
        handle.write(b"half")
        raise KeyboardInterrupt  # interrupted half way

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, torn)
    assert path.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]
