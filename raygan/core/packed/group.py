"""`CellGroup`: the cells one worker hosts (`resources.cells_per_actor`), stepped together.

A group runs a generation as `begin` on every cell, the batches, `finish` on every cell. With
`resources.vectorise` the batches of all its cells are one stacked step (`PackedTrainer`, kept
across the rounds of a generation); without it each cell trains in turn. Either way the
cells' results are those of cells run alone: selection, replacement, fitness and the mixture
stay each cell's own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from raygan.core.cell import Cell, Snapshot
from raygan.core.packed.train import PackedTrainer
from raygan.core.report import CellReport
from raygan.core.rules.base import Rule


class CellGroup:
    """Cells of one process.

    Args:
        cells: the cells, in grid order.
        vectorise: train their batches as one stacked step.

    Raises:
        ValueError: vectorising cells whose rule has its own step (`egan`).
    """

    def __init__(self, cells: Sequence[Cell], vectorise: bool = False) -> None:
        self.cells = list(cells)
        self.vectorise = vectorise and len(self.cells) > 1
        self._start = 0.0
        # one stacked trainer per generation, kept across its rounds (rule `fresh`)
        self._trainer: PackedTrainer | None = None
        for cell in self.cells:
            if vectorise and type(cell.rule).train is not Rule.train:
                raise ValueError(f"training.rule {cell.rule.name!r} has its own step and "
                                 "cannot be vectorised; set resources.vectorise: false")

    @property
    def indices(self) -> list[int]:
        """The grid indices of the cells."""
        return [cell.index for cell in self.cells]

    def publish(self) -> list[Snapshot]:
        """Every cell's snapshot (`Cell.publish`)."""
        return [cell.publish() for cell in self.cells]

    def run_generation(
        self, generation: int, rows: Sequence[Sequence[Snapshot]]
    ) -> list[CellReport]:
        """A whole generation of every cell, `rows[i]` being cell i's neighbours' snapshots."""
        batches = self.begin(generation, rows)
        self.train(None, max(batches, default=0))
        return self.finish(generation)

    def begin(self, generation: int, rows: Sequence[Sequence[Snapshot]]) -> list[int]:
        """`Cell.begin` of every cell; returns their numbers of batches."""
        self._start = time.perf_counter()
        self._trainer = None
        return [cell.begin(generation, row) for cell, row in zip(self.cells, rows)]

    def train(self, rows: Sequence[Sequence[Snapshot] | None] | None, batches: int) -> None:
        """The next `batches` batches of every cell, after reloading the neighbours if given."""
        rows = [None] * len(self.cells) if rows is None else rows
        if not self.vectorise:
            for cell, row in zip(self.cells, rows):
                cell.train(row, batches)
            return
        runs = [cell.reload(row) for cell, row in zip(self.cells, rows)]
        start = runs[0].next_batch
        if any(run.next_batch != start for run in runs):
            raise RuntimeError("cells of a group are at different batches")
        if self._trainer is None:
            self._trainer = PackedTrainer([(run.gen, run.pairing, run.tally) for run in runs])
        elif rows is not None and any(row is not None for row in rows):
            self._trainer.refresh()
        self._trainer.train(start, start + batches)
        for cell in self.cells:
            cell.advance(batches)

    def finish(self, generation: int) -> list[CellReport]:
        """`Cell.finish` of every cell (vectorised cells' `seconds`: the group's whole
        generation, since their training time is shared)."""
        if self._trainer is not None:
            self._trainer.close()
            self._trainer = None
        reports = [cell.finish(generation) for cell in self.cells]
        if self.vectorise:
            for report in reports:
                report.seconds = time.perf_counter() - self._start
        return reports
