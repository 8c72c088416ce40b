"""What a run writes beside its checkpoints: the same files from `raygan train` and a Tune trial.

Files in the run's (or trial's) directory:
    config.yaml          the resolved config
    generations.jsonl    one summary per generation
    cells.jsonl          one row per cell per generation (`CellReport.to_dict`)
    history.parquet      the same rows as a table, rewritten at every checkpoint
    tensorboard/         run and per-cell scalars, the figures as images (`Board`)
    samples.png          the best cell's mixture    } figures of the last evaluation, drawn
    cells.png            each cell's mixture        } from the very samples it scored
    <metric>_heatmap.png each cell's score          }
    *_genNNNN.png        a copy of those figures every `output.plot_every` generations
    final.json           the best mixture's scores, once the run is done
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from raygan.atomic import atomic_write_text
from raygan.config import RunConfig
from raygan.config.catalog import best_scores, floor_name, format_scores
from raygan.core.task import preview_of
from raygan.engine.board import BOARD_DIR, Board
from raygan.engine.controller import Controller, GenerationSummary
from raygan.engine.history import HISTORY_FILE, write_history

RUN_CONFIG = "config.yaml"
"""A run's resolved config, the first file a run writes."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(_jsonable(row)) + "\n" for row in rows)


class RunOutputs:
    """The logs, tables and figures of one run directory.

    Args:
        config: the run configuration (written to `config.yaml`).
        out: the run's directory (created if missing).
    """

    def __init__(self, config: RunConfig, out: str | Path) -> None:
        self.config = config
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / RUN_CONFIG,
                          yaml.safe_dump(config.to_dict(), sort_keys=False))
        self.board = Board(self.out / BOARD_DIR)
        self._real: Any = None  # toy data for the scatter, loaded at the first figure
        self._synced = False  # the logs hold the controller's record (else: rewrite first)

    def rewrite(self, controller: Controller) -> None:
        """Logs and table from the controller's record (after a restore, and before the first
        record of a process), so nothing is duplicated or left over from generations that
        were rolled back. Until then, an earlier run's files stay as they were."""
        atomic_write_text(self.out / "generations.jsonl", _lines(controller.summaries))
        atomic_write_text(self.out / "cells.jsonl", _lines(controller.history))
        write_history(self.out / HISTORY_FILE, controller.history)
        self._synced = True

    def record(self, controller: Controller, summary: GenerationSummary) -> None:
        """One finished generation: log rows, TensorBoard scalars, and at evaluations the
        figures (unless `output.figures` is false; numbered copies every `output.plot_every`
        generations); `final.json` at the end."""
        if self._synced:
            with (self.out / "generations.jsonl").open("a") as f:
                f.write(_lines([summary.to_dict()]))
            with (self.out / "cells.jsonl").open("a") as f:
                f.write(_lines([r.to_dict() for r in summary.reports]))
        else:  # first record of this process: whatever the files hold is replaced, not extended
            self.rewrite(controller)
        self.board.generation(summary)
        gen = summary.generation + 1
        if summary.evaluated and self.config.output.figures:
            every = self.config.output.plot_every
            paths = self.figures(summary, f"_gen{gen:04d}" if every and gen % every == 0 else "")
            self.board.figures(paths, gen)
        if controller.done:
            final = {
                **controller.summaries[-1],
                "generations_completed": controller.generation,
                "metric": self.config.rank_by,
                "summary": format_scores(best_scores(controller.summaries[-1])),
            }
            atomic_write_text(self.out / "final.json", json.dumps(_jsonable(final), indent=2))

    def figures(self, summary: GenerationSummary, copy_tag: str = "") -> list[Path]:
        """The figures of an evaluated generation, from the samples it scored.

        Args:
            summary: an evaluated generation (`summary.evaluation` holds every cell's scores
                and preview).
            copy_tag: when set, each figure is also kept as `<name><copy_tag>.png`.

        Returns:
            The files written (without the copies).
        """
        import shutil

        from raygan.engine.plots import (
            plot_cell_grid,
            plot_heatmap,
            plot_image_samples,
            plot_toy_samples,
        )

        cfg, best, gen = self.config, summary.best_cell, summary.generation + 1
        previews = [scored.preview for scored in summary.evaluation]
        title = f"{cfg.name}: cell {best} mixture, generation {gen}"
        written = [self.out / "samples.png"]
        if previews[best].ndim == 2:  # toy points or vectors
            real, modes = self._real_points()
            plot_toy_samples(written[0], previews[best], real, modes, title)
        else:
            plot_image_samples(written[0], previews[best], title)
            written.append(self.out / "cells.png")
            plot_cell_grid(written[-1], [preview_of(p, 36) for p in previews],
                           cfg.grid.rows, cfg.grid.cols,
                           f"{cfg.name}: each cell's mixture, generation {gen}")
        key = cfg.rank_by
        values = [scored.scores.get(key, math.nan) for scored in summary.evaluation]
        if len(values) > 1 and all(math.isfinite(v) for v in values):
            floor = summary.scores.get(floor_name(key))
            written.append(self.out / f"{key}_heatmap.png")
            plot_heatmap(
                written[-1],
                np.array(values).reshape(cfg.grid.rows, cfg.grid.cols),
                key,
                f"{cfg.name}: per-cell mixture {key}, generation {gen}"
                + (f" (real data: {floor:.3g})" if floor is not None else ""),
            )
        if copy_tag:
            for path in written:
                shutil.copyfile(path, path.with_name(f"{path.stem}{copy_tag}{path.suffix}"))
        return written

    def _real_points(self) -> tuple[Any, np.ndarray]:
        if self._real is None:
            from raygan.data import load_dataset

            data = load_dataset(self.config.data, self.config.seed)
            self._real = (data.head(5000), data.modes)
        return self._real  # type: ignore[no-any-return]

    def flush(self, controller: Controller) -> None:
        """At a checkpoint: the Parquet table up to date, TensorBoard events on disk."""
        write_history(self.out / HISTORY_FILE, controller.history)
        self.board.flush()

    def close(self) -> None:
        """Close the event file."""
        self.board.close()

