"""TensorBoard logs of one run or trial: run-level and per-cell scalars, and the figures as images.

Tags: `run/<score>` (the best mixture's scores), `run/seconds`, `run/best_cell`, and for cell i
`cell_ii/<field>` (every numeric `CellReport` field: learning rates, fitness, training losses,
replacements, steps, mixture score, ...) and
`cell_ii/score/<name>` at evaluations. The step is the number of generations completed.
Every score with a real-data floor (`fid` and `fid_floor`, ...) also gets one chart of both
under TensorBoard's "custom scalars" tab, so a value is never read without its floor.
Written with tensorboardX (a Ray Tune dependency), so no TensorFlow or tensorboard is needed.

Each step is shown once. A resumed run, a restarted or exploited trial, goes back to its
checkpoint's generation and writes the steps after it again, into a new event file: every
writer's file begins with TensorBoard's purge mark (a session start at its first step), so
readers drop what earlier files hold from that step on, the generations rolled back.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from raygan.config.catalog import floor_name
from raygan.core.report import scalar_fields
from raygan.engine.controller import GenerationSummary

BOARD_DIR = "tensorboard"

_CELL_FIELDS = tuple(scalar_fields())  # every numeric CellReport field, as it grows


class Board:
    """A TensorBoard writer for one run or trial.

    Args:
        logdir: the directory the event files go to.
    """

    def __init__(self, logdir: str | Path) -> None:
        # NaN is a value here, not an accident (a GAN's `reconstruction`, a metric before the
        # first evaluation): tensorboardX would warn about it for every cell, every generation
        logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
        self.logdir = Path(logdir)
        self._writer: Any = None  # opened at the first step, which its purge mark needs
        self._last_step: int | None = None
        self._layout_written = False

    def _session(self, step: int) -> Any:
        """The writer for a generation's `step`: a new event file, purging `step` on, at the
        first step of this board or at a step it has written before (a rollback)."""
        if self._writer is None or (self._last_step is not None and step <= self._last_step):
            from tensorboardX import SummaryWriter

            if self._writer is not None:
                self._writer.close()
            # the name's timestamp has whole seconds: two files of one second would be one
            # (the second truncating the first) and read in no set order
            suffix = f".{time.time_ns()}.{os.getpid()}"
            self._writer = SummaryWriter(str(self.logdir), flush_secs=30, purge_step=step,
                                         filename_suffix=suffix)
            self._layout_written = False
        self._last_step = step
        return self._writer

    def generation(self, summary: GenerationSummary) -> None:
        """Scalars of one finished generation, for the run and for every cell."""
        step = summary.generation + 1
        w = self._session(step)
        w.add_scalar("run/seconds", summary.seconds, step)
        if summary.evaluated:
            w.add_scalar("run/best_cell", summary.best_cell, step)
            for name, value in summary.scores.items():
                w.add_scalar(f"run/{name}", value, step)
            self._floor_layout(summary.scores)
        for report in summary.reports:
            prefix = f"cell_{report.cell:02d}"
            row = report.to_dict()
            for name in _CELL_FIELDS:
                w.add_scalar(f"{prefix}/{name}", float(row[name]), step)
            for name, value in report.scores.items():
                w.add_scalar(f"{prefix}/score/{name}", value, step)

    def _floor_layout(self, scores: dict[str, float]) -> None:
        if self._layout_written:
            return
        charts = {
            f"{name} vs real data": ["Multiline", [f"run/{name}", f"run/{floor_name(name)}"]]
            for name in scores
            if floor_name(name) in scores
        }
        if charts:
            self._writer.add_custom_scalars({"real-data floor": charts})
        self._layout_written = True

    def figures(self, paths: Iterable[Path], step: int) -> None:
        """PNG figures as images, tagged `figures/<file stem>`."""
        import matplotlib.image

        writer = self._writer or self._session(step)  # after its generation's scalars
        for path in paths:
            pixels = np.asarray(matplotlib.image.imread(path))[..., :3]  # drop alpha
            writer.add_image(f"figures/{path.stem}", pixels, step, dataformats="HWC")

    def flush(self) -> None:
        """Write pending events to disk."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None:
            self._writer.close()
