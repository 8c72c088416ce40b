"""The controller: drives generations over a pool of cells and keeps the population record.

It routes each cell's neighbours' snapshots (handles) to it, collects the cells' reports,
schedules evaluations and picks the best mixture. It holds no networks, so its bookkeeping
stays cheap as grids grow.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from raygan.config import RunConfig
from raygan.config.catalog import lower_is_better, result_key
from raygan.core.report import CellReport
from raygan.core.task import Scored
from raygan.engine.pool import CellPool
from raygan.engine.task import grid_of


def eval_seed(config: RunConfig, generation: int) -> int:
    """Seed for evaluation sampling, separate from every training stream."""
    return (config.seed * 1_000_003 + generation * 7919 + 17) % (2**62)


@dataclass
class GenerationSummary:
    """What one generation did, over the whole grid."""

    generation: int
    seconds: float
    evaluated: bool
    best_cell: int
    scores: dict[str, float]  # metrics of the best cell's mixture (empty if not evaluated)
    reports: list[CellReport]
    evaluation: list[Scored] = field(default_factory=list)  # by cell (empty if not evaluated)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for logs (without the per-cell reports)."""
        return {
            "generation": self.generation,
            "seconds": self.seconds,
            "evaluated": self.evaluated,
            "best_cell": self.best_cell,
            **{result_key(k): v for k, v in self.scores.items()},
        }


class Controller:
    """Runs generations on a `CellPool`.

    Args:
        config: the run configuration.
        pool: where the cells live.
    """

    def __init__(self, config: RunConfig, pool: CellPool) -> None:
        self.config = config
        self.pool = pool
        self.neighbourhoods = grid_of(config).all_neighbourhoods()
        if pool.size != len(self.neighbourhoods):
            raise ValueError(f"pool has {pool.size} cells, the grid {len(self.neighbourhoods)}")
        # rounds of this many batches per generation (rule `fresh`; the config requires it
        # there and refuses it elsewhere); None: one exchange per generation
        self.exchange_every = config.training.exchange_every
        self.generation = 0
        self.history: list[dict[str, Any]] = []  # one row per cell per generation
        self.summaries: list[dict[str, Any]] = []
        self.best_cell = 0
        # cells whose centre was non-finite after the last generation -> which networks; not
        # checkpointed, so a resumed process says again which cells are broken
        self.broken: dict[int, list[str]] = {}

    def route(self, handles: Sequence[Any]) -> list[list[Any]]:
        """Each cell's neighbours' handles, in neighbourhood order (self excluded)."""
        return [[handles[j] for j in nbh[1:]] for nbh in self.neighbourhoods]

    @property
    def done(self) -> bool:
        """True once the configured number of generations has run."""
        return self.generation >= self.config.training.generations

    def step(self) -> GenerationSummary:
        """Run one generation on every cell, then evaluate if one is due."""
        start = time.perf_counter()
        gen = self.generation
        if self.exchange_every is None:
            reports = self.pool.run_generation(gen, self.route(self.pool.publish()))
        else:  # synchronous rounds, every cell reloading its neighbours before each
            reports = self.pool.run_rounds(gen, self.exchange_every, self.route)
        self.generation += 1
        self._track_nonfinite(gen, reports)
        # a best cell that broke is re-ranked at once, not left best until the next evaluation
        rerank = self.best_cell in self.broken and len(self.broken) < self.pool.size
        due = self.generation % self.config.metrics.every == 0 or self.done or rerank
        scores: dict[str, float] = {}
        evaluation: list[Scored] = []
        if due:
            evaluation = self.evaluate(gen)
            for report, scored in zip(reports, evaluation):
                report.scores = dict(scored.scores)
            scores = dict(evaluation[self.best_cell].scores)
            if self.best_cell in self.broken:  # every cell is: there is no best mixture
                scores = {key: math.nan for key in scores}
        summary = GenerationSummary(
            gen, time.perf_counter() - start, due, self.best_cell, scores, reports, evaluation
        )
        self.history.extend(r.to_dict() for r in reports)
        self.summaries.append(summary.to_dict())
        return summary

    def evaluate(self, generation: int | None = None) -> list[Scored]:
        """Score every cell's mixture now and update `best_cell`.

        Args:
            generation: the generation the evaluation seed is derived from (default: the
                last completed one), so scheduled and extra evaluations are reproducible.

        Returns:
            Every cell's evaluation (its mixture's metrics, a preview of the samples scored),
            by cell index.
        """
        gen = self.generation - 1 if generation is None else generation
        seed = eval_seed(self.config, gen)
        inputs = self.route(self.pool.publish())
        per_cell = self.pool.evaluate(inputs, self.config.eval_samples, seed)
        key = self.config.rank_by
        sign = 1.0 if lower_is_better(key) else -1.0
        # a non-finite cell ranks after every finite one, whatever its mixture scores
        self.best_cell = min(
            range(len(per_cell)),
            key=lambda i: (i in self.broken,
                           _nan_last(sign * per_cell[i].scores.get(key, math.nan)), i),
        )
        return per_cell

    def _track_nonfinite(self, gen: int, reports: Sequence[CellReport]) -> None:
        """Update `broken` from the reports and say on stderr, once per event, which cell
        went non-finite (or finite again) and what raygan did about it."""
        was, n = self.broken, len(reports)
        self.broken = {r.cell: list(r.broken) for r in reports if r.broken}
        at = f"at generation {gen + 1}"
        for r in reports:
            if r.reseeded or (r.broken and r.cell not in was):
                sides = [s for s in ("G", "D") if s in r.reseeded or s in r.broken]
                did = [f"re-seeded its {s} from cell {r.reseeded[s]}"
                       for s in sides if s in r.reseeded]
                if r.broken:  # a finite G still feeds mixtures
                    left_out = "ranking and mixtures" if "G" in r.broken else "ranking"
                    did.append(f"no finite neighbour to re-seed its {' and '.join(r.broken)} "
                               f"from: excluded from {left_out}")
                _warn(f"cell {r.cell} went non-finite {at} ({' and '.join(sides)} parameters); "
                      + "; ".join(did))
            elif r.cell in was and not r.broken:
                _warn(f"cell {r.cell} is finite again {at}; back in ranking and mixtures")
        if len(self.broken) == n and len(was) < n:
            _warn(f"every cell is non-finite {at}: no mixture ranks best and the run's scores "
                  "are NaN until a cell is finite again")

    def state_dict(self) -> dict[str, Any]:
        """Controller state for checkpoints (the cells' states are saved by the pool)."""
        return {
            "generation": self.generation,
            "history": list(self.history),
            "summaries": list(self.summaries),
            "best_cell": self.best_cell,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict` output."""
        self.generation = int(state["generation"])
        self.history = list(state["history"])
        self.summaries = list(state["summaries"])
        self.best_cell = int(state["best_cell"])


def _warn(message: str) -> None:
    print(f"raygan: {message}", file=sys.stderr, flush=True)


def _nan_last(value: float) -> float:
    return value if math.isfinite(value) else math.inf
