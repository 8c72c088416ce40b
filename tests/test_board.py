"""TensorBoard logs of a resumed run: every generation shown once (`raygan.engine.board`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_toy_config

from raygan.engine.board import BOARD_DIR
from raygan.engine.run import train


def test_a_resumed_run_shows_each_step_once(tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    cfg = tiny_toy_config(**{"training.generations": 3, "output.checkpoint_every": 1,
                             "metrics.every": 3})  # evaluating is the slow part
    train(cfg, tmp_path, stop_after=2, progress=False)
    # generation 2 was logged, then the run died before its checkpoint landed: the resumed
    # run goes back to generation 1's and runs 2 again
    (tmp_path / "checkpoint.pt").unlink()
    train(cfg, tmp_path, resume=True, progress=False)

    board = tmp_path / BOARD_DIR
    assert len(list(board.glob("events.out.tfevents.*"))) == 2  # one per process

    def read(path: Path) -> Any:
        acc = event_accumulator.EventAccumulator(str(path), size_guidance={"scalars": 0,
                                                                           "images": 0})
        acc.Reload()
        return acc

    shown = read(board)  # as TensorBoard shows the run: every file, in order
    for tag in ("run/seconds", "cell_00/g_lr", "cell_03/g_fitness"):
        assert [e.step for e in shown.Scalars(tag)] == [1, 2, 3], tag
    # step 2 is the rerun's, from the second file
    _, rerun = sorted(board.glob("events.out.tfevents.*"))
    assert [e.step for e in read(rerun).Scalars("run/seconds")] == [2, 3]
    assert shown.Scalars("run/seconds")[1] == read(rerun).Scalars("run/seconds")[0]
