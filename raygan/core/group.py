"""`CellGroup`: the cells one worker hosts (`resources.cells_per_actor`), stepped together.

The group drives a generation from top to bottom: `begin` on every cell (each returns its
`GenerationInProgress`), one or more `train` rounds (rule `fresh` reloads the neighbours'
snapshots before every round but the first), `finish` on every cell. With `resources.vectorise`
a round's batches of all its cells are one stacked step (`PackedTrainer`, kept across the
rounds of a generation); without it each cell trains in turn. Either way the cells' results are
those of cells run alone: selection, replacement, fitness and the mixture stay each cell's own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from raygan.core.cell import Cell, GenerationInProgress
from raygan.core.neighbourhood import Snapshot
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
        self._current: list[GenerationInProgress] = []  # between `begin` and `finish`
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
        self, generation: int, neighbours: Sequence[Sequence[Snapshot]]
    ) -> list[CellReport]:
        """A whole generation of every cell, `neighbours[i]` being cell i's neighbours'
        snapshots."""
        batches = self.begin(generation, neighbours)
        self.train(None, max(batches, default=0))
        return self.finish()

    def begin(self, generation: int, neighbours: Sequence[Sequence[Snapshot]]) -> list[int]:
        """`Cell.begin` of every cell; returns their numbers of batches."""
        self._start = time.perf_counter()
        self._trainer = None
        self._current = [cell.begin(generation, snapshots)
                         for cell, snapshots in zip(self.cells, neighbours)]
        return [len(current.gen.batches) for current in self._current]

    def train(self, neighbours: Sequence[Sequence[Snapshot] | None] | None, batches: int) -> None:
        """The next `batches` batches of every cell (fewer for a cell with fewer left), after
        reloading the neighbours' snapshots `neighbours[i]` into cell i where given."""
        if not self._current:
            raise RuntimeError("no generation begun in this group (call begin first)")
        refreshed = neighbours is not None and any(s is not None for s in neighbours)
        for current, snapshots in zip(self._current, neighbours or [None] * len(self._current)):
            if snapshots is not None:
                current.refresh(snapshots)
        if not self.vectorise:
            for current in self._current:
                current.train(batches)
            return
        start = self._current[0].next_batch
        if any(current.next_batch != start for current in self._current):
            raise RuntimeError("cells of a group are at different batches")
        if self._trainer is None:
            self._trainer = PackedTrainer([(c.gen, c.pairing, c.tally) for c in self._current])
        elif refreshed:  # the stacked adversaries are copies: read the reloaded ones back in
            self._trainer.refresh()
        self._trainer.train(start, start + batches)
        for current in self._current:
            current.advance(batches)

    def finish(self) -> list[CellReport]:
        """`Cell.finish` of every cell, once every batch is trained (vectorised cells'
        `seconds`: the group's whole generation, since their training time is shared)."""
        if self._trainer is not None:
            self._trainer.close()
            self._trainer = None
        reports = [cell.finish(current) for cell, current in zip(self.cells, self._current)]
        self._current = []
        if self.vectorise:
            for report in reports:
                report.seconds = time.perf_counter() - self._start
        return reports
