"""`live` (raygan's): neighbour copies train inside the cell, against live adversaries only.

The cell copies every neighbourhood member's G and D with its Adam state (snapshots carry
it for this rule) and trains all of them together: each batch every D steps against fakes of
a G drawn from the live Gs, and every G against a D drawn from the live Ds, so no adversary
is ever stale. Afterwards every trained G (and the untrained centre) is measured against the
start-of-generation neighbourhood on the start batch; the best becomes the centre, the
centre winning ties (elitist: the best is never lost). The same for D. Costs
`1 + neighbours` times the gradient steps of the other rules per generation.
"""

from __future__ import annotations

from raygan.core.individual import Individual
from raygan.core.rules.base import (
    Generation,
    Outcome,
    Pairing,
    Rule,
    SideOutcome,
    discarded,
    first_strictly_better,
    vary,
)


class Live(Rule):
    """Live copies of the whole neighbourhood trained together; the best becomes the centre."""

    name = "live"
    needs_optimizer_state = True

    def begin(self, gen: Generation) -> Pairing:
        """Copy and mutate every member's G and D; all of them train against each other."""
        slots = range(len(gen.members))
        gs = [gen.neighbourhood.adopt(k, "g") for k in slots]
        ds = [gen.neighbourhood.adopt(k, "d") for k in slots]
        mutated = {id(ind): vary(gen, ind) for ind in gs + ds}
        g_adv = [(gen.members[k], d.net) for k, d in enumerate(ds)]
        d_adv = [(gen.members[k], g.net) for k, g in enumerate(gs)]
        return Pairing(gs, ds, g_adv, d_adv, mutated)

    def end(self, gen: Generation, pairing: Pairing) -> Outcome:
        """The best of {centre, trained copies} on each side, on the start batch."""
        g_fit, _ = gen.fitness(
            [gen.g.net, *(g.net for g in pairing.gs)], [gen.d.net, *gen.d_slots], gen.start
        )
        _, d_fit = gen.fitness(
            [gen.g.net, *gen.g_slots], [gen.d.net, *(d.net for d in pairing.ds)], gen.start
        )
        return Outcome(
            self._side(gen, gen.g, pairing.gs, g_fit, pairing),
            self._side(gen, gen.d, pairing.ds, d_fit, pairing),
        )

    @staticmethod
    def _side(
        gen: Generation,
        centre: Individual,
        trained: list[Individual],
        fitness: list[float],
        pairing: Pairing,
    ) -> SideOutcome:
        best = first_strictly_better(fitness)
        if best == 0:
            return discarded(gen, centre, fitness[0])
        winner = trained[best - 1]
        winner.fitness = fitness[best]
        mutated = pairing.lr_mutated[id(winner)]
        return SideOutcome(winner, gen.members[best - 1], best > 1, False, mutated)
