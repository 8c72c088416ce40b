"""Drive a whole run in this process: generations, logs, checkpoints and figures.

Output directory layout:
    config.yaml        the resolved config
    generations.jsonl  one summary per generation
    cells.jsonl        one row per cell per generation (the population history)
    checkpoint.pt      latest checkpoint (config, controller, every cell, RNG states)
    samples.png        samples of the best cell's mixture
    final.json         final scores of the best mixture
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from raygan.atomic import atomic_write_text
from raygan.config import RunConfig
from raygan.engine.checkpoint import (
    checkpoint_exists,
    load_checkpoint_or_previous,
    save_checkpoint,
)
from raygan.engine.controller import Controller, GenerationSummary, eval_seed
from raygan.engine.pool import CellPool, LocalCellPool
from raygan.engine.task import check_inputs
from raygan.metrics.catalog import best_scores, floor_name, format_scores

PoolFactory = Callable[[RunConfig], CellPool]
CHECKPOINT = "checkpoint.pt"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(_jsonable(row)) + "\n" for row in rows))


def _append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(_jsonable(row)) + "\n")


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


def write_figures(controller: Controller, out_dir: Path, tag: str = "") -> list[Path]:
    """PNGs: best mixture's samples, each cell's samples (images) and a per-cell score heatmap.

    Toy data give a scatter over the real points; images give sample grids.

    Returns:
        The files written.
    """
    import numpy as np

    from raygan.data import load_dataset
    from raygan.engine.plots import (
        plot_cell_grid,
        plot_heatmap,
        plot_image_samples,
        plot_toy_samples,
    )

    cfg = controller.config
    best = controller.best_cell
    inputs = controller.route(controller.pool.publish())
    seed = eval_seed(cfg, controller.generation)
    gen = controller.generation
    title = f"{cfg.name}: cell {best} mixture, generation {gen}"
    written = [out_dir / f"samples{tag}.png"]
    if cfg.data.is_toy:
        samples = controller.pool.sample(best, inputs[best], cfg.eval_samples, seed + best)
        data = load_dataset(cfg.data, cfg.seed)
        assert data.modes is not None
        plot_toy_samples(
            out_dir / f"samples{tag}.png", samples, data.samples[:5000], data.modes, title
        )
    else:
        samples = controller.pool.sample(best, inputs[best], 100, seed + best)
        plot_image_samples(out_dir / f"samples{tag}.png", samples, title)
        per_cell = [
            controller.pool.sample(i, inputs[i], 36, seed + i, centre_only=True)
            for i in range(controller.pool.size)
        ]
        written.append(out_dir / f"cells{tag}.png")
        plot_cell_grid(
            written[-1],
            per_cell,
            cfg.grid.rows,
            cfg.grid.cols,
            f"{cfg.name}: each cell's generator, generation {gen}",
        )
    key = cfg.rank_by
    rows = [r for r in controller.history if r.get("scores")]
    last = {r["cell"]: r["scores"].get(key) for r in rows}
    floor = rows[-1]["scores"].get(floor_name(key)) if rows else None
    if len(last) == controller.pool.size and all(v is not None for v in last.values()):
        values = np.array([last[i] for i in range(controller.pool.size)], dtype=np.float64)
        written.append(out_dir / f"{key}_heatmap{tag}.png")
        plot_heatmap(
            written[-1],
            values.reshape(cfg.grid.rows, cfg.grid.cols),
            key,
            f"{cfg.name}: per-cell mixture {key}, generation {gen}"
            + (f" (real data: {floor:.3g})" if floor is not None else ""),
        )
    return written


def train(
    config: RunConfig,
    out_dir: str | Path,
    *,
    pool_factory: PoolFactory = LocalCellPool,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
) -> Controller:
    """Run (or resume) a coevolution run, writing results to `out_dir`.

    Args:
        config: the run configuration (ignored in favour of the checkpoint's when resuming,
            except for `training.generations`, which may extend the run).
        out_dir: output directory.
        pool_factory: builds the cell pool (local or Ray).
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
    check_inputs(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    pool = pool_factory(config)
    try:
        controller = Controller(config, pool)
        if resume:
            pool.load_state_dicts(cell_states)
            controller.load_state_dict(controller_state)
        # rewrite the logs from the controller's record so nothing is duplicated on resume
        _write_jsonl(out / "generations.jsonl", controller.summaries)
        _write_jsonl(out / "cells.jsonl", controller.history)
        _run_loop(controller, out, stop_after, progress)
        if controller.done:
            write_figures(controller, out)
            last = controller.summaries[-1] if controller.summaries else {}
            final = {
                **last,
                "generations_completed": controller.generation,
                "metric": config.rank_by,
                "summary": format_scores(best_scores(last)),
            }
            (out / "final.json").write_text(json.dumps(_jsonable(final), indent=2))
        return controller
    finally:
        pool.close()


def _run_loop(controller: Controller, out: Path, stop_after: int | None, progress: bool) -> None:
    cfg = controller.config
    bar = Progress(cfg.training.generations, controller.generation, progress)
    ran = 0
    try:
        while not controller.done and (stop_after is None or ran < stop_after):
            summary = controller.step()
            ran += 1
            _append_jsonl(out / "generations.jsonl", [summary.to_dict()])
            _append_jsonl(out / "cells.jsonl", [r.to_dict() for r in summary.reports])
            if controller.generation % cfg.output.checkpoint_every == 0 or controller.done:
                save_checkpoint(out / CHECKPOINT, cfg, controller.state_dict(),
                                controller.pool.state_dicts(), keep_previous=True)
            if cfg.output.plot_every and controller.generation % cfg.output.plot_every == 0:
                write_figures(controller, out, f"_gen{controller.generation:04d}")
            bar.update(summary)
        if ran and controller.generation % cfg.output.checkpoint_every != 0:
            # stopped between checkpoints: keep what ran
            save_checkpoint(out / CHECKPOINT, cfg, controller.state_dict(),
                            controller.pool.state_dicts(), keep_previous=True)
    finally:
        bar.close()
