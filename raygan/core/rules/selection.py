"""`lipizzaner-selection`: the reference CelebA rule, selected clones trained against each other.

Tournaments over the neighbourhood's start-of-generation fitness pick one G and one D; their
clones train against each other (the opponent is always the live clone, never a frozen
snapshot). Afterwards each clone replaces the centre only if its fitness, measured against the
same neighbourhood on the same batch, is strictly lower than the centre's start-of-generation
fitness; otherwise its training is discarded (`g_discarded` / `d_discarded` in the report).
"""

from __future__ import annotations

from raygan.core import operators as ops
from raygan.core.individual import Individual
from raygan.core.rules.base import Generation, Outcome, Pairing, Rule, SideOutcome, discarded, vary


class LipizzanerSelection(Rule):
    """Selected clones train against each other and replace the centre only if better."""

    name = "lipizzaner-selection"

    def begin(self, gen: Generation) -> Pairing:
        """Tournament-select a G and a D, clone and mutate them; they train as a pair."""
        size = gen.config.evolution.tournament_size
        gi, _ = ops.tournament_select(gen.g_fitness, size, gen.rng)
        di, _ = ops.tournament_select(gen.d_fitness, size, gen.rng)
        g, d = gen.neighbourhood.adopt(gi, "g"), gen.neighbourhood.adopt(di, "d")
        mutated = {id(g): vary(gen, g), id(d): vary(gen, d)}
        return Pairing([g], [d], [(d.source, d.net)], [(g.source, g.net)], mutated, (gi, di))

    def end(self, gen: Generation, pairing: Pairing) -> Outcome:
        """Each clone against the start-of-generation neighbourhood, on the start batch."""
        g, d = pairing.gs[0], pairing.ds[0]
        (g.fitness,), _ = gen.fitness([g.net], [gen.d.net, *gen.d_slots], gen.start)
        _, (d.fitness,) = gen.fitness([gen.g.net, *gen.g_slots], [d.net], gen.start)
        return Outcome(
            self._side(gen, gen.g, g, gen.g_fitness[0], pairing.selected[0], pairing),
            self._side(gen, gen.d, d, gen.d_fitness[0], pairing.selected[1], pairing),
        )

    @staticmethod
    def _side(
        gen: Generation,
        centre: Individual,
        clone: Individual,
        centre_fitness: float,
        selected: int,
        pairing: Pairing,
    ) -> SideOutcome:
        if ops.finite_or_inf(clone.fitness) < ops.finite_or_inf(centre_fitness):
            parent = gen.members[selected]
            return SideOutcome(clone, parent, selected != 0, False, pairing.lr_mutated[id(clone)])
        return discarded(gen, centre, centre_fitness)
