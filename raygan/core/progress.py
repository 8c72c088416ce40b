"""One cell's generation in progress: begun by `Cell.begin`, trained in one or more rounds,
ended by `Cell.finish`.

Between those the cell's `CellGroup` holds it and trains its batches: `train` runs the rule's
loop (`Rule.train`), or the group runs a stacked step of all its cells (`PackedTrainer`) and
counts the batches with `advance`; rule `fresh` reloads the neighbours' snapshots between
rounds (`refresh`). Once every batch is trained, `end` gives the new centres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raygan.core.neighbourhood import Snapshot
from raygan.core.rules.base import Generation, Outcome, Pairing, Rule, SideOutcome
from raygan.core.steps import Tally


@dataclass
class GenerationInProgress:
    """One cell's generation between `Cell.begin` and `Cell.finish`: what its rule trains,
    what the batches did so far (`tally`) and how far they got (`next_batch`)."""

    generation: int
    rule: Rule
    gen: Generation
    pairing: Pairing
    tally: Tally
    start_time: float
    exchanges: int = 0
    next_batch: int = 0

    @property
    def left(self) -> int:
        """Batches not trained yet."""
        return len(self.gen.batches) - self.next_batch

    def refresh(self, snapshots: Sequence[Snapshot]) -> None:
        """Reload the neighbours' snapshots between rounds (rule `fresh`)."""
        self.gen.neighbourhood.receive(snapshots)
        self.exchanges += 1

    def train(self, batches: int) -> None:
        """Train the next `batches` batches with the rule's loop (`Rule.train`)."""
        stop = self.next_batch + batches
        self.rule.train(self.gen, self.pairing, self.next_batch, stop, self.tally)
        self.advance(batches)

    def advance(self, batches: int) -> None:
        """Count `batches` more batches as trained (by `train`, or by the stacked step of a
        group's cells)."""
        self.next_batch = min(self.next_batch + batches, len(self.gen.batches))

    def end(self) -> tuple[Outcome, dict[str, int]]:
        """The new centres: the rule's (`Rule.end`), each that is not finite replaced by a
        trainable copy of the fittest finite neighbour's network (as received for this
        generation, with its fitness of the start), so that a NaN neither stays in the grid nor
        spreads through the neighbours' training. A centre with no finite neighbour stays as
        it is (`Neighbourhood.broken` says so).

        Returns:
            The outcome and what was re-seeded: "G" / "D" -> the neighbour's cell.

        Raises:
            RuntimeError: batches of the generation are left to train.
        """
        gen = self.gen
        if self.left:
            raise RuntimeError(f"cell {gen.cell}: generation {self.generation} ended with "
                               f"{self.left} of {len(gen.batches)} batches untrained")
        outcome = self.rule.end(gen, self.pairing)
        sides = {"g": outcome.g, "d": outcome.d}
        reseeded: dict[str, int] = {}
        for side, kept in sides.items():
            fitness = gen.g_fitness if side == "g" else gen.d_fitness
            slot = gen.neighbourhood.donor(kept.individual, side, fitness)
            if slot is not None:
                donor = gen.neighbourhood.adopt(slot, side)
                donor.fitness = fitness[slot]
                sides[side] = SideOutcome(donor, gen.members[slot], replaced=True,
                                          discarded=True, lr_mutated=False)
                reseeded[side.upper()] = gen.members[slot]
        return Outcome(sides["g"], sides["d"]), reseeded
