"""Controller bookkeeping per generation on simulated grids from 4 to 1,024 cells (no networks).

A fake pool stands in for the cells: its snapshot handles are integers and its reports and
evaluation scores are built before the clock starts (realistic `CellReport`s: a von Neumann
neighbourhood's members and mixture weights, loss counts, toy-metric scores). What is timed is
therefore only the controller's own work in `Controller.step`: routing every cell's neighbours'
handles, the reports' history rows, the generation summary, and (in the `evaluated` case) a
second routing, attaching each cell's scores and picking the best mixture.

Prints one JSON object: per grid size the median (and mean/min/max) milliseconds per generation,
microseconds per cell, and the growth against the smallest grid. Target from an earlier issue:
<= 50 ms per generation at 1,024 cells.

    python bench/controller_scale.py [--generations N] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import finish, log, machine, ms_stats  # noqa: E402

from raygan.config import RunConfig, config_from_dict  # noqa: E402
from raygan.core.report import CellReport, SideReport  # noqa: E402
from raygan.core.task import Scored  # noqa: E402
from raygan.engine.controller import Controller  # noqa: E402
from raygan.engine.task import grid_of  # noqa: E402

SIDES = [2, 4, 8, 16, 32]
TARGET_MS_AT_1024 = 50.0
# what a toy evaluation returns per cell (raygan.metrics on ring8 / grid25)
TOY_SCORES = {"coverage_score": 0.8, "modes_covered": 8.0, "hq_fraction": 0.6,
              "reverse_kl": 0.1, "mode_tvd": 0.3}


def fake_report(generation: int, cell: int, members: Sequence[int]) -> CellReport:
    """A report shaped like a real cell's (values are plausible constants)."""
    k = len(members)
    def side(parent: int, replaced: bool, loss: float) -> SideReport:
        return SideReport(
            lr=2e-4, fitness=loss, replaced=replaced, discarded=not replaced, parent=parent,
            lr_mutated=replaced, opponents={m: 20 // k for m in members}, steps=20,
            train_loss=loss,
        )

    return CellReport(
        generation=generation, cell=cell, rule="lipizzaner-selection",
        g=side(cell, True, 0.7), d=side(members[-1], False, 1.3),
        g_loss="heuristic", g_loss_counts={"heuristic": 20}, exchanges=0,
        mixture_members=list(members), mixture_weights=[1.0 / k] * k, mixture_score=0.4,
        mixture_accepted=False, steps=20, nonfinite=False, seconds=0.5, reconstruction=math.nan,
    )


class FakePool:
    """A `CellPool` without networks: everything it returns is precomputed.

    Args:
        config: the run configuration (grid shape and number of generations).
    """

    def __init__(self, config: RunConfig) -> None:
        grid = grid_of(config)
        self.size = grid.size
        first = [fake_report(0, i, grid.neighbours(i)) for i in range(self.size)]
        self._reports = [
            [dataclasses.replace(r, generation=g, scores={}) for r in first]
            for g in range(config.training.generations)
        ]
        # a different best cell each time, so the controller's pick is not trivially cell 0
        self._scores = [
            Scored({**TOY_SCORES, "mode_tvd": 0.3 + ((i * 7919) % self.size) / (10 * self.size)},
                   torch.zeros(0, 2))
            for i in range(self.size)
        ]

    def publish(self) -> list[Any]:
        """Integers stand in for snapshot handles."""
        return list(range(self.size))

    def run_generation(self, generation: int, inputs: Sequence[Sequence[Any]]) -> list[CellReport]:
        """That generation's precomputed reports."""
        return self._reports[generation]

    def run_rounds(self, generation: int, every: int, route: Any) -> list[CellReport]:
        """Not used: the fake grid's rule trains a generation in one round."""
        raise NotImplementedError

    def evaluate(self, inputs: Sequence[Sequence[Any]], n: int, seed: int) -> list[Scored]:
        """Precomputed toy scores (the controller copies them), empty previews."""
        return self._scores

    def sample(
        self, cell: int, inputs: Sequence[Any], n: int, seed: int, centre_only: bool = False
    ) -> Any:
        """Not used by `Controller.step`."""
        raise NotImplementedError

    def state_dicts(self) -> list[dict[str, Any]]:
        """No state."""
        return [{} for _ in range(self.size)]

    def load_state_dicts(self, states: Sequence[dict[str, Any]]) -> None:
        """Nothing to load."""

    def close(self) -> None:
        """Nothing to release."""


def time_controller(side: int, generations: int, evaluate: bool) -> dict[str, Any]:
    """Time `Controller.step` on a fake side x side grid.

    Args:
        side: grid rows (= cols).
        generations: timed generations (one untimed warm-up generation runs first).
        evaluate: evaluate every generation (else never, as between `metrics.every` steps).
    """
    config = config_from_dict({
        "seed": 0,
        "grid": {"rows": side, "cols": side},
        "training": {"generations": generations + 1},
        "metrics": {"every": 1 if evaluate else 1_000_000},
    })
    pool = FakePool(config)
    start = time.perf_counter()
    controller = Controller(config, pool)
    setup = time.perf_counter() - start
    controller.step()  # warm-up
    steps: list[float] = []
    for _ in range(generations):
        t0 = time.perf_counter()
        controller.step()
        steps.append(time.perf_counter() - t0)
    stats = ms_stats(steps)
    return {
        "controller_setup_ms": round(setup * 1e3, 3),
        **stats,
        "median_us_per_cell": round(stats["median_ms"] * 1e3 / (side * side), 3),
    }


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) on log(x): 1.0 means linear growth."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    num = sum((a - mx) * (b - my) for a, b in zip(lx, ly))
    den = sum((a - mx) ** 2 for a in lx)
    return num / den


def main(argv: list[str] | None = None) -> int:
    """Time every grid size and print the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generations", type=int, help="timed generations per size (default 30)")
    p.add_argument("--quick", action="store_true", help="5 generations per size, seconds")
    args = p.parse_args(argv)
    generations = args.generations or (5 if args.quick else 30)
    start = time.perf_counter()
    result: dict[str, Any] = {
        "bench": "controller_scale",
        "machine": machine(),
        "quick": args.quick,
        "generations_timed": generations,
        "target_ms_at_1024_cells": TARGET_MS_AT_1024,
        "sizes": [],
        "notes": [
            "fake pool: no networks; reports and scores are precomputed, so the time is the "
            "controller's routing, history rows, summaries (and score bookkeeping if evaluated)",
            "median over the timed generations, after one warm-up generation",
        ],
    }
    for side in SIDES:
        log(f"controller {side}x{side}")
        result["sizes"].append({
            "grid": f"{side}x{side}",
            "cells": side * side,
            "no_evaluation": time_controller(side, generations, evaluate=False),
            "evaluated_every_generation": time_controller(side, generations, evaluate=True),
        })
    cells = [s["cells"] for s in result["sizes"]]
    growth: dict[str, Any] = {"cells_ratio": cells[-1] / cells[0]}
    for case in ("no_evaluation", "evaluated_every_generation"):
        ms = [s[case]["median_ms"] for s in result["sizes"]]
        growth[case] = {
            "time_ratio_largest_vs_smallest": round(ms[-1] / ms[0], 1),
            "loglog_slope": round(loglog_slope(cells, ms), 3),
            "loglog_slope_64_to_1024_cells": round(loglog_slope(cells[2:], ms[2:]), 3),
            "median_ms_at_1024_cells": ms[-1],
            "within_target": ms[-1] <= TARGET_MS_AT_1024,
        }
    result["growth"] = growth
    finish(result, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
