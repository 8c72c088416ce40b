"""The best cell of a checkpoint, rebuilt in this process: what `raygan sample`, `raygan export`
and `Result.generator()` draw from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from raygan.config import RunConfig
from raygan.core.cell import Cell
from raygan.engine.checkpoint import CheckpointError, load_checkpoint
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool


def best_cell(checkpoint: str | Path) -> tuple[RunConfig, Cell, list[Any]]:
    """The best cell of a checkpoint, rebuilt in this process, and its neighbours' snapshots.

    Raises:
        CheckpointError: one line, when no cell is finite or the best cell is not: nothing
            non-finite is ever handed out.
    """
    config, controller_state, cell_states = load_checkpoint(checkpoint)
    if config.training.device != "cpu" and not torch.cuda.is_available():
        config = config.replace(**{"training.device": "cpu"})
    pool = LocalCellPool(config)
    pool.load_state_dicts(cell_states)
    controller = Controller(config, pool)
    controller.load_state_dict(controller_state)
    best = controller.best_cell
    broken = {i: cell.nonfinite_networks() for i, cell in enumerate(pool.cells)}
    if all(broken.values()):
        raise CheckpointError(f"{checkpoint}: every cell is non-finite (NaN or inf weights); "
                              "there is no mixture to sample")
    if broken[best]:
        raise CheckpointError(
            f"{checkpoint}: the best cell, {best}, has non-finite {' and '.join(broken[best])} "
            "weights; refusing to sample it (training on re-seeds it from a finite neighbour "
            "and re-ranks the cells)")
    return config, pool.cells[best], controller.route(pool.publish())[best]
