"""`own`: every cell trains its own G against its own D; neighbours act through the rest.

With `evolution.selection`, tournaments over the neighbourhood pick which G and D are copied
and trained (a neighbour's copy starts a fresh optimizer); with `evolution.replacement`, the
trained offspring becomes the centre only if it beats every member on a fresh shared batch,
else the best member (the centre, or an adopted neighbour) is the centre: the best is never
lost. Without either, this is N independent GANs mixed by the ES.
"""

from __future__ import annotations

from raygan.core import operators as ops
from raygan.core.individual import Individual
from raygan.core.rules.base import (
    Generation,
    Outcome,
    Pairing,
    Rule,
    SideOutcome,
    discarded,
    vary,
)


class Own(Rule):
    """Each cell's own pair, with optional selection and elitist replacement."""

    name = "own"

    def begin(self, gen: Generation) -> Pairing:
        """Select (or clone the centre), then mutate; the pair trains against itself."""
        evo = gen.config.evolution
        gi = di = 0
        if evo.selection:
            gi, _ = ops.tournament_select(gen.g_fitness, evo.tournament_size, gen.rng)
            di, _ = ops.tournament_select(gen.d_fitness, evo.tournament_size, gen.rng)
        g, d = gen.neighbourhood.adopt(gi, "g"), gen.neighbourhood.adopt(di, "d")
        mutated = {id(g): vary(gen, g), id(d): vary(gen, d)}
        return Pairing([g], [d], [(d.source, d.net)], [(g.source, g.net)], mutated, (gi, di))

    def end(self, gen: Generation, pairing: Pairing) -> Outcome:
        """Elitist replacement on a fresh batch (or the offspring, without replacement)."""
        g_off, d_off = pairing.gs[0], pairing.ds[0]
        gs = [gen.g.net, *gen.g_slots, g_off.net]
        ds = [gen.d.net, *gen.d_slots, d_off.net]
        g_eval, d_eval = gen.fitness(gs, ds, gen.fitness_batch())
        g_off.fitness, d_off.fitness = g_eval[-1], d_eval[-1]
        return Outcome(
            self._side(gen, gen.g, g_off, g_eval, pairing.selected[0], "g", pairing),
            self._side(gen, gen.d, d_off, d_eval, pairing.selected[1], "d", pairing),
        )

    def _side(
        self,
        gen: Generation,
        centre: Individual,
        offspring: Individual,
        fitness: list[float],
        selected: int,
        side: str,
        pairing: Pairing,
    ) -> SideOutcome:
        mutated = pairing.lr_mutated[id(offspring)]
        parent = gen.members[selected]
        if not gen.config.evolution.replacement:
            return SideOutcome(offspring, parent, selected != 0, False, mutated)
        population = fitness[:-1]
        record = ops.elitist_replacement(population, fitness[-1])
        if record.replaced is not None and record.centre == record.replaced:
            return SideOutcome(offspring, parent, selected != 0, False, mutated)
        if record.centre == 0:  # the untrained centre is still the best
            return discarded(gen, centre, population[0])
        winner = gen.neighbourhood.adopt(record.centre, side)  # a neighbour's network is the best
        winner.fitness = population[record.centre]
        return SideOutcome(winner, gen.members[record.centre], True, True, False)
