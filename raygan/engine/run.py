"""Drive a run: `Run` is the one run loop of `raygan train` (here) and of a Tune trial.

A `Run` owns the controller and the run directory's outputs (`RunOutputs`: logs, Parquet
history, TensorBoard, figures, final scores); `step` runs one generation and records it,
`save`/`restore` checkpoint it. `train` drives a `Run` in this process, checkpointing every
`output.checkpoint_every` generations (`checkpoint.pt`, the previous one kept as
`checkpoint.prev.pt`); the Tune trainable drives one generation per Tune iteration.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

from raygan.config import RunConfig
from raygan.config.catalog import format_scores
from raygan.data import Dataset
from raygan.engine.checkpoint import (
    checkpoint_exists,
    load_checkpoint_or_previous,
    save_checkpoint,
)
from raygan.engine.controller import Controller, GenerationSummary
from raygan.engine.outputs import RunOutputs
from raygan.engine.pool import CellPool, LocalCellPool
from raygan.engine.task import prepare


class PoolFactory(Protocol):
    """Builds a run's cell pool over the data set the driver loaded (`LocalCellPool`,
    `raygan.distributed.RayCellPool`)."""

    def __call__(self, config: RunConfig, *, dataset: Dataset) -> CellPool:
        """The pool of `config`'s cells, training on `dataset`."""
        ...


CHECKPOINT = "checkpoint.pt"


class Run:
    """A run in progress over a cell pool, recorded in its directory.

    Args:
        config: the run configuration.
        pool: where the cells live (the run closes it).
        out: the run's directory.
    """

    def __init__(self, config: RunConfig, pool: CellPool, out: str | Path) -> None:
        self.config = config
        self.pool = pool
        self.controller = Controller(config, pool)
        self.outputs = RunOutputs(config, out)

    def step(self) -> GenerationSummary:
        """Run one generation and record it."""
        summary = self.controller.step()
        self.outputs.record(self.controller, summary)
        return summary

    def save(self, path: str | Path, keep_previous: bool = False) -> None:
        """Checkpoint the run (config, controller, every cell) and bring the table up to date."""
        save_checkpoint(path, self.config, self.controller.state_dict(),
                        self.pool.state_dicts(), keep_previous=keep_previous)
        self.outputs.flush(self.controller)

    def restore(self, controller_state: dict[str, Any], cell_states: list[dict[str, Any]]) -> None:
        """Continue from a checkpoint's states; the logs are rewritten from its record."""
        self.pool.load_state_dicts(cell_states)
        self.controller.load_state_dict(controller_state)
        self.outputs.rewrite(self.controller)

    def close(self) -> None:
        """Release the pool and close the logs."""
        try:
            self.pool.close()
        finally:
            self.outputs.close()


class Progress:
    """One status line per generation on stderr (a bar when it is a terminal)."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, unit="gen", dynamic_ncols=True)

    def update(self, summary: GenerationSummary) -> None:
        """Report one finished generation (every score of an evaluation, floors beside)."""
        if not self.enabled:
            return
        text = f"best cell {summary.best_cell}" + (
            f" {format_scores(summary.scores)}" if summary.scores else ""
        )
        if self._bar is not None:
            self._bar.set_postfix_str(text)
            self._bar.update(1)
        else:
            print(
                f"generation {summary.generation + 1}/{self.total} ({summary.seconds:.1f}s) {text}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()


def train(
    config: RunConfig,
    out_dir: str | Path,
    *,
    pool_factory: PoolFactory = LocalCellPool,
    dataset: Dataset | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
) -> Controller:
    """Run (or resume) a coevolution run, writing results to `out_dir`.

    The data set is loaded once, here (`engine.task.prepare`), and handed to the pool: the
    local pool's cells index it in this process, the Ray pool puts it in the object store once
    and this process lets go of it.

    Args:
        config: the run configuration (ignored in favour of the checkpoint's when resuming,
            except for `training.generations`, which may extend the run).
        out_dir: output directory.
        pool_factory: builds the cell pool (local or Ray).
        dataset: what `prepare(config)` returned with `config` (a caller that already checked
            the data with it); None, or resuming: prepared here.
        resume: continue from `out_dir/checkpoint.pt`.
        stop_after: stop after this many generations in this call (tests, time budgets).
        progress: print progress to stderr.

    Returns:
        The controller, holding the population history.
    """
    out = Path(out_dir)
    ckpt = out / CHECKPOINT
    if resume:
        (saved, controller_state, cell_states), note = load_checkpoint_or_previous(ckpt)
        if note:
            print(f"raygan: {note}", file=sys.stderr)
        config = saved.replace(**{"training.generations": config.training.generations})
    elif checkpoint_exists(ckpt):
        raise FileExistsError(
            f"{out} already holds a run; resume it with `raygan resume {out}` or choose another "
            "output directory (--out)"
        )
    if dataset is None or resume:
        config, dataset = prepare(config, cells_here=config.resources.backend == "local")
    pool = pool_factory(config, dataset=dataset)
    del dataset  # the Ray pool holds it in the object store; no second copy stays here
    run = Run(config, pool, out)
    try:
        if resume:
            run.restore(controller_state, cell_states)
        controller = run.controller
        bar = Progress(config.training.generations, controller.generation, progress)
        every, ran = config.output.checkpoint_every, 0
        try:
            while not controller.done and (stop_after is None or ran < stop_after):
                summary = run.step()
                ran += 1
                if controller.generation % every == 0 or controller.done:
                    run.save(ckpt, keep_previous=True)
                bar.update(summary)
            if ran and controller.generation % every != 0 and not controller.done:
                run.save(ckpt, keep_previous=True)  # stopped between checkpoints: keep what ran
        finally:
            bar.close()
        return controller
    finally:
        run.close()
